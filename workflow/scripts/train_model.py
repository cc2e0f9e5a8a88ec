"""Train one objective (standard | ambient diffusion, or the unet regression baseline)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import torch  # noqa: E402

from depthdif.logs import log_to  # noqa: E402

# Small convolutions scale badly across threads; Snakemake runs one job per core instead.
torch.set_num_threads(snakemake.threads)
from depthdif.params import complete  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402
from depthdif.training.fit import train  # noqa: E402

# params: the keys that change the model; the runtime file fills in the runtime-only keys
# (num_workers, loggers, ...) and, for the unet, the diffusion keys it does not use.
objective = snakemake.wildcards.learned
sections, runtime = snakemake.params.sections, snakemake.params.runtime

with log_to(snakemake.log[0]) as log:
    for folder in (snakemake.input.train, snakemake.input.val):
        verify_shards(folder)  # once per job, before any reader (or DataLoader worker) opens them
    # the complete validated sections: train() turns them into typed settings (a missing key names itself)
    result = train(
        objective=objective,
        model_cfg=complete(sections["model"], runtime, "model"),
        objective_cfg=complete(sections["objective"], runtime, "objectives", objective),
        train_cfg=complete(sections["train"], runtime, "train"),
        train_dir=snakemake.input.train,
        val_dir=snakemake.input.val,
        out_dir=str(Path(snakemake.output.checkpoint).parent),
        state_dir=snakemake.params.state_dir,
    )
    log.info("training finished: %s", result)
