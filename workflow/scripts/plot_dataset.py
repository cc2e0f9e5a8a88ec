"""Figure 1: a dataset example of one scenario (target, mask, sparse input per depth)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402
from depthdif.plots import dataset_example  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]):
    verify_shards(snakemake.input.shards)
    dataset_example(snakemake.input.shards, snakemake.output.figure, snakemake.params.figures)
