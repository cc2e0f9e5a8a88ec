"""Train one objective (standard | ambient diffusion, or the unet regression baseline)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

from depthdif.logs import log_to  # noqa: E402

import torch  # noqa: E402

# Small convolutions scale badly across threads; Snakemake runs one job per core instead.
torch.set_num_threads(snakemake.threads)
from depthdif.training.fit import train  # noqa: E402

with log_to(snakemake.log[0]) as log:
    result = train(
        snakemake.wildcards.objective,
        snakemake.params.model,
        snakemake.params.objective,
        snakemake.params.train,
        snakemake.input.train,
        snakemake.input.val,
        str(Path(snakemake.output.checkpoint).parent),
        snakemake.params.state_dir,
    )
    log.info("training finished: %s", result)
