"""The `train` section as typed, frozen settings (no defaults: the schema is the one place for them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from depthdif.sections import choice, flag, integer, number, optional_integer

PRECISIONS = ("32", "16-mixed", "bf16-mixed", "auto")
ACCELERATORS = ("auto", "cpu", "gpu")
SELECTIONS = ("best_val", "last")


@dataclass(frozen=True)
class TrainSettings:
    """train: optimisation (batch, AdamW, plateau LR, clipping, EMA), run length, hardware, validation,
    weight selection, logging and checkpoint cadence (see config/README.md for each key)."""

    batch_size: int
    lr: float
    weight_decay: float
    max_steps: int
    max_epochs: int | None
    lr_patience: int
    lr_factor: float
    precision: str
    ema_decay: float
    grad_clip: float
    seed: int
    num_workers: int
    devices: int
    accelerator: str
    augment: bool
    select: str
    select_margin: float
    val_every_n_steps: int
    val_ddim_steps: int
    val_examples: int
    log_every_n_steps: int
    checkpoint_every_n_steps: int
    channels_last: bool
    compile: bool
    tensorboard: bool
    wandb: bool

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "train") -> TrainSettings:
        ints = ("batch_size", "max_steps", "lr_patience", "seed", "num_workers", "devices", "val_every_n_steps",
                "val_ddim_steps", "val_examples", "log_every_n_steps", "checkpoint_every_n_steps")
        floats = ("lr", "weight_decay", "lr_factor", "ema_decay", "grad_clip", "select_margin")
        flags = ("augment", "channels_last", "compile", "tensorboard", "wandb")
        return cls(
            **{k: integer(cfg, k, where) for k in ints},
            **{k: number(cfg, k, where) for k in floats},
            **{k: flag(cfg, k, where) for k in flags},
            max_epochs=optional_integer(cfg, "max_epochs", where),
            precision=choice(cfg, "precision", where, PRECISIONS),
            accelerator=choice(cfg, "accelerator", where, ACCELERATORS),
            select=choice(cfg, "select", where, SELECTIONS),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the checkpoint's hyperparameters are loaded with weights_only=True)."""
        return dataclasses.asdict(self)
