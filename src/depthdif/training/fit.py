"""`train(...)`: the train_model rule's entry point — fit, resume from state_dir, export to out_dir.

state_dir (never deleted by Snakemake) holds everything needed to resume (layout and resume logic:
`state.py`). out_dir gets model.ckpt, metrics.csv and val_examples/ atomically at the very end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from depthdif.diffusion import FirstGuessSettings, ModelSettings, objective_from_cfg
from depthdif.diffusion.first_guess import PriorParams, fit_prior
from depthdif.errors import ConfigError, DataError, TrainingError
from depthdif.io import atomic_output, config_hash, write_json
from depthdif.shards import load_arrays, read_manifest
from depthdif.training.callbacks import EMA, BestWeights, DataEpoch, NaNGuard, ResumableCheckpoint, ValExampleImage
from depthdif.training.datamodule import ShardDataModule
from depthdif.training.module import DepthDifModule, model_hparams
from depthdif.training.outputs import LOGS, export_images, make_loggers, merge_metrics
from depthdif.training.settings import TrainSettings
from depthdif.training.state import BEST, IMAGES, LAST, prepare_state, resumable_config

log = logging.getLogger("depthdif.training")

#: manifest keys both splits must share
SHARED_MANIFEST_KEYS = ("channels", "size", "depth", "stats", "has_eo")


def train(
    objective: str,
    model_cfg: Mapping[str, Any],
    objective_cfg: Mapping[str, Any],
    train_cfg: Mapping[str, Any],
    train_dir: str | os.PathLike[str],
    val_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    state_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Fit `objective` (standard | ambient | unet) on the train shards, validating on val.

    model_cfg, objective_cfg and train_cfg are the validated `model`, `objectives.<objective>` and
    `train` sections: turned into typed settings here (a missing key is a ConfigError naming it),
    stored as given in model.ckpt. Resumes from state_dir/last.ckpt when the config hash matches
    (global step continues), else starts over. Writes out_dir/{model.ckpt, metrics.csv,
    val_examples/}; returns a summary. SIGTERM saves last.ckpt and exits with status 143; a
    NaN/inf loss raises TrainingError.
    """
    out_dir, state_dir = Path(out_dir), Path(state_dir)
    model, settings = ModelSettings.from_cfg(model_cfg), TrainSettings.from_cfg(train_cfg)
    objective_from_cfg(objective, objective_cfg)  # fails here, naming the key, before any data is read
    manifests = _read_splits(train_dir, val_dir)
    prior = fit_observation_prior(objective, model.first_guess, train_dir)
    hparams = model_hparams(objective, model_cfg, objective_cfg, manifests["train"], prior)
    settings = _augmentation(settings, model)
    hparams["dihedral"] = settings.augment
    train_plain = {**train_cfg, "augment": settings.augment}
    resume_config = resumable_config(objective, hparams, train_plain, manifests)
    run_hash = config_hash({**resume_config, "train": train_plain})
    on_cuda = _on_cuda(settings)

    L.seed_everything(settings.seed, workers=True, verbose=False)
    module = DepthDifModule(hparams, settings)
    datamodule = _datamodule(module, settings, train_dir, val_dir, on_cuda)
    _preflight(module, datamodule)  # before touching state_dir: a bad config keeps the old state
    resume_from, start_step, restarted = prepare_state(state_dir, resume_config)
    callbacks, ema, best = _callbacks(settings, objective, state_dir, hparams["depth"])
    loggers = make_loggers(settings, state_dir, run_hash)
    precision = _precision(settings.precision, on_cuda)
    trainer = _trainer(settings, callbacks, loggers, state_dir, on_cuda, precision, full_sanity=best is not None)
    if trainer.is_global_zero:
        loggers[0].experiment  # noqa: B018 - creates version_k now; a file written first would trip its cleanup warning
        write_json(Path(loggers[0].log_dir) / "run.json", {"start_step": start_step, "config_hash": run_hash})
    log.info(
        "training %s on %s (precision %s): %s", objective, trainer.strategy.root_device, precision,
        f"resuming from {resume_from} at step {start_step}" if resume_from else "from step 0",
    )
    _fit(trainer, module, datamodule, resume_from, state_dir)
    if not trainer.is_global_zero:
        return {}
    exported = _export(trainer, module, ema, best, hparams, run_hash, state_dir, out_dir)
    return {
        **exported, "resumed_from": start_step if resume_from else None, "restarted": restarted,
        "config_hash": run_hash, "precision": precision,
    }


def _read_splits(train_dir: str | os.PathLike[str], val_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Both manifests, checked to agree on what a model depends on."""
    manifests = {"train": read_manifest(train_dir), "val": read_manifest(val_dir)}
    _check_splits(manifests, train_dir, val_dir)
    return manifests


def _augmentation(settings: TrainSettings, model: ModelSettings) -> TrainSettings:
    """train.augment, off with FiLM (rot90/flip would falsify the patch coordinates it conditions on)."""
    if settings.augment and model.backbone.film:
        log.warning("train.augment is off: model.backbone.film conditions on patch coordinates, "
                    "which rot90/flip would falsify")
        return replace(settings, augment=False)
    return settings



def _on_cuda(settings: TrainSettings) -> bool:
    on_cuda = settings.accelerator in ("auto", "gpu") and torch.cuda.is_available()
    if settings.accelerator == "gpu" and not on_cuda:
        raise ConfigError("train.accelerator = 'gpu' but no CUDA device is visible: use 'auto' or 'cpu'")
    return on_cuda


def _datamodule(
    module: DepthDifModule, settings: TrainSettings, train_dir: str | os.PathLike[str],
    val_dir: str | os.PathLike[str], on_cuda: bool,
) -> ShardDataModule:
    return ShardDataModule(
        train_dir, val_dir, batch_size=settings.batch_size, num_workers=settings.num_workers,
        augment=settings.augment, seed=settings.seed, pin_memory=on_cuda, channels_last=settings.channels_last,
        # on CPU the first guess of x and A is computed once per patch and cached (ambient draws Ã anew)
        item_fn=(module.prior.item_fields
                 if module.prior is not None and module.objective != "ambient" and not on_cuda else None),
    )


def _callbacks(
    settings: TrainSettings, objective: str, state_dir: Path, depth: list[float]
) -> tuple[list[Callback], EMA | None, BestWeights | None]:
    """(callbacks in order, the EMA callback or None for the unet, the best-weights callback or None)."""
    ema = EMA(settings.ema_decay) if objective != "unet" else None
    callbacks: list[Callback] = [
        NaNGuard(state_dir / LAST),
        DataEpoch(),
        ValExampleImage(state_dir / IMAGES, depth),
        TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else settings.log_every_n_steps),
        # best before last: the resume file saved after a validation then holds the updated best score
        ResumableCheckpoint(
            dirpath=state_dir, filename=Path(BEST).stem, monitor="val/loss", mode="min", save_top_k=1,
            enable_version_counter=False, auto_insert_metric_name=False, save_on_train_epoch_end=False,
        ),
        ResumableCheckpoint(
            dirpath=state_dir, filename=Path(LAST).stem, every_n_train_steps=settings.checkpoint_every_n_steps,
            save_top_k=1, enable_version_counter=False, save_on_train_epoch_end=False, resume=True,
        ),
    ]
    if ema is not None:
        callbacks.insert(0, ema)
    best = BestWeights(settings.select_margin) if settings.select == "best_val" else None
    if best is not None:
        callbacks.insert(0, best)  # before EMA: it reads the EMA weights while they are swapped in
    return callbacks, ema, best


def _trainer(
    settings: TrainSettings, callbacks: list[Callback], loggers: list[Any], state_dir: Path, on_cuda: bool,
    precision: str, *, full_sanity: bool,
) -> L.Trainer:
    """`full_sanity`: validate on the whole set before the first step (the starting weights are a candidate)."""
    return L.Trainer(
        accelerator="gpu" if on_cuda else "cpu",
        devices=settings.devices,
        strategy="ddp" if settings.devices > 1 else "auto",
        precision=precision,  # type: ignore[arg-type]
        max_steps=settings.max_steps,
        max_epochs=settings.max_epochs,
        val_check_interval=settings.val_every_n_steps,
        check_val_every_n_epoch=None,
        log_every_n_steps=settings.log_every_n_steps,
        gradient_clip_val=settings.grad_clip or None,
        callbacks=callbacks,
        logger=loggers,
        default_root_dir=state_dir,
        enable_progress_bar=True,
        num_sanity_val_steps=-1 if full_sanity else 1,
        plugins=_cluster_environment(settings.devices),
    )


def _fit(
    trainer: L.Trainer, module: DepthDifModule, datamodule: ShardDataModule, resume_from: Path | None,
    state_dir: Path,
) -> None:
    """trainer.fit, resuming from `resume_from`; SIGTERM exits with 143 after saving last.ckpt."""
    try:
        with warnings.catch_warnings():
            # state_dir always holds our own files (config hash, logs): not a mistake
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException as exc:
        log.error("stopped by SIGTERM at step %d; rerun to resume from %s", trainer.global_step, state_dir / LAST)
        raise SIGTERMException(128 + signal.SIGTERM) from exc
    finally:
        # Lightning skips on_train_end when a fit is interrupted: close the bar now, not at exit.
        bar = getattr(trainer.progress_bar_callback, "_train_progress_bar", None)
        if bar is not None:
            bar.close()


def _export(
    trainer: L.Trainer, module: DepthDifModule, ema: EMA | None, best: BestWeights | None,
    hparams: Mapping[str, Any], run_hash: str, state_dir: Path, out_dir: Path,
) -> dict[str, Any]:
    """Write out_dir/{model.ckpt, metrics.csv, val_examples/} (rank 0): the EMA weights, or the best
    validation step's with train.select best_val; return what was written."""
    state = (ema.averaged_state() if ema is not None
             else {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()})
    selected_step = int(trainer.global_step)
    if best is not None and best.best_state is not None:
        state, selected_step = best.best_state, best.best_step
        log.info("exporting the weights of step %d (lowest validation loss %.5g)", selected_step, best.best_loss)
    export = {
        "state_dict": state, "hparams": hparams, "global_step": int(trainer.global_step),
        "selected_step": selected_step, "config_hash": run_hash, "ema": ema is not None,
    }
    if (best is not None and selected_step == 0 and best.trained_state is not None
            and module.objective != "unet"):
        # the first guess won: its members would all be the first guess; the best trained step's
        # members give the spread, recentred on it at sampling
        export.update(spread_state_dict=best.trained_state, spread_step=best.trained_step)
        log.info("members: the first guess recentres the members of step %d (validation loss %.5g)",
                 best.trained_step, best.trained_loss)
    images = export_images(state_dir / IMAGES, out_dir / IMAGES)
    metrics_path = merge_metrics(state_dir / LOGS, out_dir / "metrics.csv")
    with atomic_output(out_dir / "model.ckpt") as tmp:
        torch.save(export, tmp)
    best_scores = [
        float(cb.best_model_score) for cb in trainer.checkpoint_callbacks  # type: ignore[attr-defined]
        if cb.monitor and cb.best_model_score is not None  # type: ignore[attr-defined]
    ]
    log.info("wrote %s at step %d", out_dir / "model.ckpt", trainer.global_step)
    return {
        "checkpoint": str(out_dir / "model.ckpt"), "metrics": str(metrics_path), "val_examples": images,
        "global_step": int(trainer.global_step), "selected_step": selected_step,
        "best_val_loss": best_scores[0] if best_scores else None,
    }


def fit_observation_prior(
    objective: str, first_guess: FirstGuessSettings, train_dir: str | os.PathLike[str]
) -> PriorParams | None:
    """The OI first guess of `model.first_guess` fitted on the train shards (None for 'none').

    standard/unet fit the covariance on the dense truth, ambient on its observations alone.
    """
    if first_guess.method == "none":
        return None
    arrays = load_arrays(train_dir)
    observed = arrays["x_valid"].astype(bool)
    if objective == "ambient":
        fields, valid = arrays["x"], observed
    else:
        fields, valid = arrays["y"], arrays["y_valid"].astype(bool)
    try:
        prior = fit_prior(
            fields, valid, observed, arrays.get("eo"), arrays["land"].astype(bool),
            covariance=first_guess.covariance, max_fit_patches=first_guess.max_fit_patches,
            scale_mode=first_guess.residual_scale, scale_floor=first_guess.scale_floor,
            exact=first_guess.nugget == "zero",
            support=arrays["y_valid"].astype(bool),  # the ocean: geometry, not values
        )
    except DataError as exc:
        hint = "; the ambient objective fits it on the observations, so every depth level needs some" \
            if objective == "ambient" else ""
        raise DataError(f"model.first_guess: cannot fit the OI covariance on {train_dir} ({exc}){hint}") from exc
    log.info("first guess (%s, fitted on %s): %s", first_guess.method,
             "observations" if objective == "ambient" else "truth", prior.to_dict())
    return prior


def _check_splits(manifests: Mapping[str, Mapping[str, Any]], train_dir: Any, val_dir: Any) -> None:
    for key in SHARED_MANIFEST_KEYS:
        if manifests["train"].get(key) != manifests["val"].get(key):
            raise DataError(
                f"{train_dir} and {val_dir} disagree on manifest {key!r}; rebuild both shard folders "
                "from the same patches (rerun rule make_shards)"
            )



def _preflight(module: DepthDifModule, datamodule: ShardDataModule) -> None:
    """One no-grad loss on two train patches: config errors surface before Lightning starts."""
    datamodule.setup()
    assert datamodule.train_set is not None
    batch = next(iter(DataLoader(datamodule.train_set, batch_size=min(2, len(datamodule.train_set)))))
    module.eval()
    with torch.no_grad():
        loss, _ = module.loss(batch, torch.Generator().manual_seed(0))
    module.train()
    if not torch.isfinite(loss):
        raise TrainingError(
            f"the initial loss is {float(loss)} on {datamodule.train_dir}: check the shards for NaN/inf"
        )


def _cluster_environment(devices: int) -> list[Any] | None:
    """How the DDP ranks start inside a SLURM job.

    With one SLURM task per device (`srun --ntasks-per-node=<devices>`), SLURM starts the
    ranks: SLURMEnvironment. With one task (the slurm executor plugin's job step: `srun -n1`),
    Lightning starts the other ranks itself (re-running the script), as outside SLURM.
    Snakemake's retries own resubmission: never Lightning's auto-requeue.
    """
    if not SLURMEnvironment.detect():
        return None
    tasks = int(os.environ.get("SLURM_NTASKS_PER_NODE", os.environ.get("SLURM_NTASKS", "1")).split("(")[0])
    if devices > 1 and tasks != devices:
        return [LightningEnvironment()]
    return [SLURMEnvironment(auto_requeue=False)]


def _precision(precision: str, on_cuda: bool) -> str:
    """'auto' → bf16-mixed on CUDA (16-mixed without bf16 support), 32 on CPU."""
    if precision != "auto":
        return precision
    if not on_cuda:
        return "32"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
