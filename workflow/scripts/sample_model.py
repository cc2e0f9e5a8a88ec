"""Reconstruct the test split with a trained model (ensembles for diffusion)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import torch  # noqa: E402

from depthdif.logs import log_to  # noqa: E402

# Small convolutions scale badly across threads; Snakemake runs one job per core instead.
torch.set_num_threads(snakemake.threads)
from depthdif.inference import predict  # noqa: E402
from depthdif.inflation import Inflation  # noqa: E402
from depthdif.params import complete  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]) as log:
    verify_shards(snakemake.input.test)  # once per job, before reading
    # the validation-fitted inflation per level (rule calibrate_ensemble) for methods in sample.inflation_methods
    inflation = Inflation.from_json(snakemake.input.inflation) if snakemake.input.inflation else None
    result = predict(
        checkpoint=snakemake.input.checkpoint,
        test_dir=snakemake.input.test,
        # params: the keys that change the samples; the runtime file fills in the rest (the complete
        # validated section: predict() turns it into SampleSettings)
        sample_cfg=complete(snakemake.params.sample, snakemake.params.runtime, "sample"),
        method=snakemake.wildcards.learned,
        scenario=snakemake.wildcards.scenario,
        out_nc=snakemake.output.samples,
        inflation=inflation,
    )
    log.info("sampling finished: %s", result)
