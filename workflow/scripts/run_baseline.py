"""Reconstruct the test split with a classical gap-filler (IDW or optimal interpolation)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.eval.baselines import run_baseline  # noqa: E402
from depthdif.logs import log_to  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]) as log:
    for folder in (snakemake.input.test, snakemake.input.train):
        verify_shards(folder)  # once per job, before reading
    result = run_baseline(
        snakemake.wildcards.baseline,
        snakemake.input.test,
        snakemake.input.train,
        snakemake.params.baseline,
        scenario=snakemake.wildcards.scenario,
        out_nc=snakemake.output.samples,
    )
    log.info("baseline finished: %s", result)
