"""Tiny configs and shard folders for the training / inference tests (dim 8, 16 px, a few steps)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from shard_factory import make_shards

MODEL: dict[str, Any] = {
    "backbone": {"dim": 8, "dim_mults": [1, 2], "attention": False, "film": False, "dropout": 0.0},
    "diffusion": {"timesteps": 20, "schedule": "cosine", "parameterization": "x0"},
    "conditioning": {"eo": True, "mask_channels": True},
    # global units (no first guess) unless a test asks for one
    "first_guess": {"method": "none", "covariance": "matern32", "max_fit_patches": 8, "residual_scale": "constant",
                    "nugget": "fitted"},
}
OBJECTIVES: dict[str, dict[str, Any]] = {
    "standard": {"loss_mask": "valid"},
    "unet": {"loss_mask": "valid"},
    "ambient": {
        "further_drop_prob": 0.2, "min_kept_observed_pixels": 4, "shared_spatial_mask": True,
        "mask_noisy_branch": False, "require_x0_parameterization": True,
        "further_drop_pattern": "pixels", "further_drop_block_px": 8,
    },
}
TRAIN: dict[str, Any] = {
    "batch_size": 4, "lr": 2e-3, "weight_decay": 1e-4, "max_steps": 4, "max_epochs": None,
    "lr_patience": 3, "lr_factor": 0.5, "precision": "auto", "ema_decay": 0.9, "grad_clip": 1.0,
    "seed": 0, "num_workers": 0, "devices": 1, "accelerator": "cpu", "augment": False,
    "select": "last", "select_margin": 0.02,
    "val_every_n_steps": 2, "val_ddim_steps": 2, "val_examples": 2, "log_every_n_steps": 1,
    "checkpoint_every_n_steps": 2, "channels_last": False, "compile": False,
    "tensorboard": False, "wandb": False,
}


def model_cfg(**backbone: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(MODEL)
    cfg["backbone"].update(backbone)
    return cfg


def train_cfg(**overrides: Any) -> dict[str, Any]:
    return {**TRAIN, **overrides}


def splits(root: Path, n: int = 8) -> dict[str, Path]:
    """train/val/test folders of the same fields, so their normalisation stats agree (as in the workflow)."""
    return {split: make_shards(root, n=n, split=split) for split in ("train", "val", "test")}
