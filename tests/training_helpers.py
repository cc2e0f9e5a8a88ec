"""Tiny configs and shard folders for the training / inference tests (dim 8, 16 px, a few steps).

Every section is complete: the schema's defaults (a minimal config validated by
`depthdif.config.validate_config`) with the tiny test values merged over them, so the tests
never repeat a default and the typed settings (which have none) get every key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from depthdif.config import validate_config
from depthdif.params import merge
from shard_factory import make_shards

#: the schema's defaults of every section
DEFAULTS: dict[str, Any] = validate_config({})

MODEL: dict[str, Any] = merge(DEFAULTS["model"], {
    "backbone": {"dim": 8, "dim_mults": [1, 2]},
    "diffusion": {"timesteps": 20},
    # global units (no first guess) unless a test asks for one
    "first_guess": {"method": "none", "max_fit_patches": 8},
})
OBJECTIVES: dict[str, dict[str, Any]] = merge(DEFAULTS["objectives"], {
    "ambient": {"mask_noisy_branch": False, "further_drop_pattern": "pixels"},
})
TRAIN: dict[str, Any] = merge(DEFAULTS["train"], {
    "batch_size": 4, "lr": 2e-3, "max_steps": 4, "ema_decay": 0.9, "accelerator": "cpu", "augment": False,
    "select": "last", "val_every_n_steps": 2, "val_ddim_steps": 2, "val_examples": 2, "log_every_n_steps": 1,
    "checkpoint_every_n_steps": 2,
})
#: the sample section of the inference tests (3 DDIM steps, 3 members, batches of 4)
# MODEL has no first guess: its misfit cannot be OI-interpolated (sample.final_update oi_increment)
SAMPLE: dict[str, Any] = merge(DEFAULTS["sample"], {"steps": 3, "members": 3, "batch_size": 4,
                                                    "final_update": "overwrite"})


def model_cfg(**backbone: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(MODEL)
    cfg["backbone"].update(backbone)
    return cfg


def train_cfg(**overrides: Any) -> dict[str, Any]:
    return {**TRAIN, **overrides}


def section(name: str, **overrides: Any) -> dict[str, Any]:
    """The schema's default section `name` (dotted, e.g. "model.diffusion") with `overrides` merged in."""
    node: Any = DEFAULTS
    for part in name.split("."):
        node = node[part]
    return merge(node, overrides)


def splits(root: Path, n: int = 8) -> dict[str, Path]:
    """train/val/test folders of the same fields, so their normalisation stats agree (as in the workflow)."""
    return {split: make_shards(root, n=n, split=split) for split in ("train", "val", "test")}
