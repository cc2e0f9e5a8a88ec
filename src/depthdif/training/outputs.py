"""What a training run writes besides the checkpoint: its loggers, the merged metrics CSV
and the exported validation images."""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import pandas as pd
from lightning.pytorch.loggers import CSVLogger, Logger

from depthdif.io import atomic_output, read_json
from depthdif.training.settings import TrainSettings

log = logging.getLogger("depthdif.training")

LOGS = "logs"


def make_loggers(settings: TrainSettings, state_dir: Path, run_hash: str) -> list[Logger]:
    """CSV always (a new version_k per run, merged at export); TensorBoard / W&B on request."""
    loggers: list[Logger] = [
        CSVLogger(state_dir, name=LOGS, flush_logs_every_n_steps=settings.checkpoint_every_n_steps)
    ]
    if settings.tensorboard:
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(state_dir, name="tensorboard"))
        except ModuleNotFoundError as exc:
            log.warning("train.tensorboard is true but TensorBoard is not installed (%s): CSV log only", exc)
    if settings.wandb:
        try:
            from lightning.pytorch.loggers import WandbLogger

            loggers.append(
                WandbLogger(project="depthdif", save_dir=str(state_dir), id=f"depthdif-{run_hash}", resume="allow")
            )
        except ModuleNotFoundError as exc:
            log.warning("train.wandb is true but wandb is not installed (%s): CSV log only", exc)
    return loggers


def merge_metrics(log_root: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Concatenate logs/version_*/metrics.csv in run order under one header.

    Rows an interrupted run logged at or after the step the next run resumed from are
    dropped (they were recomputed), so each step appears once.
    """
    runs: list[tuple[int, pd.DataFrame]] = []
    folders = sorted(Path(log_root).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    for folder in folders:
        if (folder / "metrics.csv").is_file():
            start = int(read_json(folder / "run.json")["start_step"]) if (folder / "run.json").is_file() else 0
            runs.append((start, pd.read_csv(folder / "metrics.csv")))
    frames = []
    for i, (_, frame) in enumerate(runs):
        limit = min((start for start, _ in runs[i + 1 :]), default=math.inf)
        frames.append(frame[frame["step"] < limit])
    merged = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame({"step": []})
    first = [c for c in ("step", "epoch") if c in merged.columns]
    merged = merged[first + sorted(c for c in merged.columns if c not in first)]
    with atomic_output(out) as tmp:
        merged.to_csv(tmp, index=False)
    return Path(out)


def export_images(src: Path, dest: Path) -> int:
    """Copy the validation images into out_dir atomically; return how many."""
    with atomic_output(dest) as tmp:
        tmp.mkdir(parents=True)
        for png in sorted(src.glob("step-*.png")) if src.is_dir() else []:
            shutil.copy2(png, tmp / png.name)
        count = len(list(tmp.iterdir()))
    return count
