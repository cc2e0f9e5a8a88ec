"""Fit the ensemble inflation (a, p per depth level) on the validation split (depthdif.inflation)."""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))

import torch  # noqa: E402

from depthdif.logs import log_to  # noqa: E402

torch.set_num_threads(snakemake.threads)
from depthdif.inference import predict  # noqa: E402
from depthdif.inflation import fit_inflation  # noqa: E402
from depthdif.params import complete  # noqa: E402
from depthdif.shards import verify_shards  # noqa: E402

with log_to(snakemake.log[0]) as log:
    verify_shards(snakemake.input.val)
    out = Path(snakemake.output.inflation)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        val_nc = Path(tmp) / "val_samples.nc"
        # the test split's sampler settings, on the validation split (members saved: τ needs them)
        sample_cfg = {**complete(snakemake.params.sample, snakemake.params.runtime, "sample"), "save_members": True}
        predict(checkpoint=snakemake.input.checkpoint, test_dir=snakemake.input.val, sample_cfg=sample_cfg,
                method=snakemake.wildcards.learned, scenario=snakemake.wildcards.scenario, out_nc=val_nc)
        inflation = fit_inflation(val_nc)
    inflation.to_json(out)
    log.info("ensemble inflation (validation): %s from spread/skill %s", inflation.describe(), inflation.spread_skill)
