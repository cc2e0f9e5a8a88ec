"""The resumable state of `fit.train` in state_dir (never deleted by Snakemake):
    last.ckpt, best.ckpt       Lightning checkpoints (written atomically)
    config_hash.json           hash of the config that produced them
    logs/version_k/            one CSV log per run (+ run.json: the step it started at)
    val_examples/              validation images
A run resumes from last.ckpt when the hash of its `resumable_config` matches, else clears the state.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from depthdif.errors import TrainingError
from depthdif.io import config_hash, read_json, write_json
from depthdif.training.outputs import LOGS

log = logging.getLogger("depthdif.training")

LAST, BEST, HASH_FILE, IMAGES = "last.ckpt", "best.ckpt", "config_hash.json", "val_examples"
#: train keys that may change between runs without starting over (run length, logging, hardware)
RESUMABLE_TRAIN_KEYS = frozenset({
    "max_steps", "max_epochs", "num_workers", "devices", "accelerator", "val_every_n_steps",
    "val_ddim_steps", "val_examples", "log_every_n_steps", "checkpoint_every_n_steps",
    "channels_last", "compile", "tensorboard", "wandb",
})


def resumable_config(
    objective: str, hparams: Mapping[str, Any], train_plain: Mapping[str, Any], manifests: Mapping[str, Any]
) -> dict[str, Any]:
    """What a resumable run must share with the state it resumes (run length, logging, hardware may change)."""
    return {
        "objective": objective, "model": hparams["model_cfg"], "objective_cfg": hparams["objective_cfg"],
        "train": {k: v for k, v in sorted(train_plain.items()) if k not in RESUMABLE_TRAIN_KEYS},
        "data": manifests,
    }


def prepare_state(state_dir: Path, resume_config: Mapping[str, Any]) -> tuple[Path | None, int, bool]:
    """(checkpoint to resume or None, its global step, whether an older state was discarded).

    Only rank 0 changes state_dir: DDP ranks started later by Lightning's launcher re-run
    `train` and must find the state rank 0 left (they then resume or start like it).
    """
    new_hash = config_hash(resume_config)
    hash_file, last = state_dir / HASH_FILE, state_dir / LAST
    old = read_json(hash_file) if hash_file.is_file() else None
    if last.is_file() and old is not None and old.get("hash") == new_hash:
        return last, checkpoint_step(last, state_dir), False
    if rank_zero_only.rank != 0:
        return None, 0, False
    state_dir.mkdir(parents=True, exist_ok=True)
    restarted = last.is_file()
    if restarted:
        changed = changed_keys(old.get("config", {}), resume_config) if old else ["no config_hash.json"]
        log.warning(
            "config changed since %s was written (%s): starting over from step 0", last, ", ".join(changed) or "?"
        )
    clear_state(state_dir)
    write_json(hash_file, {"hash": new_hash, "config": resume_config})
    return None, 0, restarted


def checkpoint_step(path: Path, state_dir: Path) -> int:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["global_step"])
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise TrainingError(f"cannot read resume checkpoint {path} ({exc}); delete {state_dir} to start over") from exc


def clear_state(state_dir: Path) -> None:
    """Remove only what `train` itself writes (state_dir may be shared by mistake)."""
    for name in (LAST, BEST, HASH_FILE):
        (state_dir / name).unlink(missing_ok=True)
    for name in (LOGS, IMAGES, "tensorboard"):
        shutil.rmtree(state_dir / name, ignore_errors=True)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]
