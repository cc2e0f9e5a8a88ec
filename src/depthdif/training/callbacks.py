"""Training callbacks: EMA export, atomic resumable checkpoints (+ SIGTERM), NaN guard, val image."""

from __future__ import annotations

import itertools
import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from depthdif.errors import TrainingError
from depthdif.io import atomic_output

log = logging.getLogger("depthdif.training")


class EMA(EMAWeightAveraging):
    """EMA of the weights, θ̄ ← d θ̄ + (1-d) θ after every optimizer step; used for validation.

    Unlike Lightning's default, the live weights are kept at the end of training so a
    final resume checkpoint still holds both; export reads `averaged_state()`.
    """

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay)
        self._swapped = False
        self._updates: int | None = None  # host copy of the averaged model's n_averaged

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._updates = None  # after a checkpoint restore: read n_averaged once at the next update

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # as WeightAveraging.on_train_batch_end, with a sync-free AveragedModel.update_parameters
        if trainer.global_step > self._latest_update_step and self.should_update(step_idx=trainer.global_step - 1):
            self._update_average(pl_module)
            self._latest_update_step = trainer.global_step

    @torch.no_grad()
    def _update_average(self, pl_module: L.LightningModule) -> None:
        """AveragedModel.update_parameters (copy at the first update, then avg_fn on parameters and
        buffers), branching on a host count instead of `n_averaged == 0` (a GPU sync per step)."""
        average = self._average_model
        assert average is not None and average.avg_fn is not None
        if self._updates is None:
            self._updates = int(average.n_averaged)
        averaged = itertools.chain(average.module.parameters(), average.module.buffers())
        current = itertools.chain(pl_module.parameters(), pl_module.buffers())
        for p_average, p_model in zip(averaged, current, strict=True):
            p_model = p_model.detach().to(p_average.device)
            if self._updates == 0:
                p_average.detach().copy_(p_model)
            else:
                p_average.detach().copy_(average.avg_fn(p_average.detach(), p_model, average.n_averaged))
        average.n_averaged += 1
        self._updates += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)
        self._swapped = self._average_model is not None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_end(trainer, pl_module)
        self._swapped = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # a SIGTERM during validation: swap back before the (later) checkpoint callback saves
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def averaged_state(self, prefix: str = "net.") -> dict[str, torch.Tensor]:
        """EMA weights of the submodule `prefix` (state_dict keys without the prefix), on CPU."""
        if self._average_model is None:
            raise TrainingError("EMA weights requested before training started")
        state = self._average_model.module.state_dict()
        return {k[len(prefix):]: v.detach().cpu().clone() for k, v in state.items() if k.startswith(prefix)}


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint written atomically (tmp + os.replace); the resume file also on SIGTERM and at the end.

    With `resume=True` it also saves after a validation at a checkpoint step, on SIGTERM
    (Lightning raises SIGTERMException at the next batch boundary but saves nothing by
    itself) and when training ends, so `last.ckpt` always holds the latest step. Other
    exceptions (e.g. a NaN loss) never overwrite it.
    """

    def __init__(self, *args: Any, resume: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, save_on_exception=resume, **kwargs)
        self.resume = resume

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp-{os.getpid()}"
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        trainer.strategy.barrier("ResumableCheckpoint")
        self._last_checkpoint_saved = filepath

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.resume and isinstance(exception, SIGTERMException):
            super().on_exception(trainer, pl_module, exception)
            log.warning("SIGTERM at step %d: saved %s", trainer.global_step, self._last_checkpoint_saved)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # saved at this step just before validating: save again so the validation
        # (plateau scheduler, best score) is part of the resume state
        if self.resume and not trainer.sanity_checking and self._last_global_step_saved == trainer.global_step:
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.resume and self._last_global_step_saved != trainer.global_step:
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))


class NaNGuard(Callback):
    """Stop with TrainingError on a non-finite training loss before any checkpoint or export holds it.

    No host sync per step: each step folds isfinite(loss) into a device tensor (the step of the
    first non-finite loss, via torch.where), read on the host only every log_every_n_steps steps
    and before every checkpoint, validation and the end of training. The weights of the steps
    between a bad loss and that read may be non-finite, but nothing saves them.
    """

    NONE = torch.iinfo(torch.int64).max  # "no non-finite loss yet"

    def __init__(self, last_checkpoint: str | os.PathLike[str]) -> None:
        self.last_checkpoint = Path(last_checkpoint)
        self._first_bad: torch.Tensor | None = None  # step of the first non-finite loss, or NONE
        self._bad_loss: torch.Tensor | None = None  # that loss
        self._unchecked = False  # a loss was folded in since the last host read

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_bad = self._bad_loss = None
        self._unchecked = False

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        loss = loss.detach()
        if self._first_bad is None or self._bad_loss is None:
            self._first_bad = torch.full((), self.NONE, dtype=torch.int64, device=loss.device)
            self._bad_loss = torch.zeros((), dtype=torch.float32, device=loss.device)
        first = ~torch.isfinite(loss).all() & (self._first_bad == self.NONE)
        self._first_bad = torch.where(first, trainer.global_step, self._first_bad)
        self._bad_loss = torch.where(first, loss.float().sum(), self._bad_loss)
        self._unchecked = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % max(trainer.log_every_n_steps, 1) == 0:
            self.check(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # called while any checkpoint is assembled, before it is written
        self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)  # before the final checkpoint and train()'s export

    def check(self, trainer: L.Trainer) -> None:
        """Raise TrainingError if a loss folded in since the last check was not finite (one host read)."""
        if not self._unchecked or self._first_bad is None or self._bad_loss is None:
            return
        self._unchecked = False
        first = self._first_bad
        if trainer.world_size > 1:  # every rank checks at the same steps; a bad rank stops all
            first = trainer.strategy.reduce(first.clone(), reduce_op="min")
        step = int(first)
        if step == self.NONE:
            return
        value = f"{float(self._bad_loss)}" if int(self._first_bad) == step else "on another rank"
        last = str(self.last_checkpoint) if self.last_checkpoint.is_file() else "none yet"
        raise TrainingError(
            f"non-finite training loss ({value}) at step {step}; "
            f"last good checkpoint: {last}. Lower train.lr or train.grad_clip (or check the shards), "
            "then rerun: a changed config starts over, an unchanged one resumes from that checkpoint"
        )


class DataEpoch(Callback):
    """Tell the datamodule the epoch before its loader is iterated (shuffle order, augmentation)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(trainer.current_epoch)


class ValExampleImage(Callback):
    """After each validation write `folder/step-XXXXXX.png` of the module's `val_example`."""

    def __init__(self, folder: str | os.PathLike[str], depth: list[float]) -> None:
        self.folder = Path(folder)
        self.depth = depth

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        example = getattr(pl_module, "val_example", None)
        if trainer.sanity_checking or example is None:
            return
        path = self.folder / f"step-{trainer.global_step:06d}.png"
        plot_val_example(example, path, self.depth, title=f"validation patch 0, step {trainer.global_step}")


def plot_val_example(
    example: dict[str, np.ndarray], path: str | os.PathLike[str], depth: list[float], title: str
) -> None:
    """One row per depth: observed input, target, prediction (shared degC scale), |error|, masks."""
    import cmocean
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = example["target"]
    rows = target.shape[0]
    fig, axes = plt.subplots(rows, 5, figsize=(11, 2.1 * rows + 0.5), squeeze=False)
    error = np.abs(example["prediction"] - target)
    # masks: 0 land/sea floor, 1 hidden ocean, 2 observed
    masks = example["valid"].astype(np.int8) + example["observed"].astype(np.int8)
    for c in range(rows):
        finite = target[c][np.isfinite(target[c])]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        thermal = dict(cmap=cmocean.cm.thermal, vmin=lo, vmax=hi)
        panels = [
            ("observed input", example["observed_input"][c], thermal),
            ("target", target[c], thermal),
            ("prediction", example["prediction"][c], thermal),
            ("|error|", error[c], dict(cmap=cmocean.cm.amp, vmin=0.0)),
            ("hidden / observed", masks[c], dict(cmap="Greys", vmin=0, vmax=2)),
        ]
        images = []
        for ax, (name, data, style) in zip(axes[c], panels):
            images.append(ax.imshow(data, origin="lower", interpolation="nearest", **style))
            ax.set_axis_off()
            ax.set_title(f"{name}, {depth[c]:.0f} m" if c < len(depth) else name, fontsize=8)
        # one colorbar for the three temperature panels, one for the error (colorbars are slow)
        fig.colorbar(images[2], ax=axes[c, :3].tolist(), fraction=0.02, pad=0.01, label="degC")
        fig.colorbar(images[3], ax=axes[c, 3], fraction=0.046, pad=0.02, label="degC")
    fig.suptitle(title, fontsize=10)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


class BestWeights(Callback):
    """Keep the weights with the lowest mean validation loss (EMA weights where EMA is on).

    Place it before the EMA callback: its on_validation_epoch_end then runs while the EMA
    weights are still swapped in. The sanity check (the whole validation set, before the
    first step) makes the starting weights a candidate: a residual model that never beats its
    first guess on validation exports the first guess. A trained step replaces the starting
    weights only when its score is lower by more than `margin` (relative): on a small
    validation split, smaller gains are within the noise of the selection. The state
    travels in the resume checkpoint, so a resumed run keeps its best so far.

    The best trained step (lowest score after step 0, margin or not) is kept as well: when the
    starting weights win, a diffusion model's members are all its first guess, and the export
    recentres the trained step's members on it for their spread (`inference.sample_members`).
    """

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.start_loss = math.inf
        self.best_loss = math.inf
        self.best_step = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.trained_loss = math.inf
        self.trained_step = -1
        self.trained_state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = pl_module.mean_val_loss()  # type: ignore[operator]
        if loss is None or not math.isfinite(loss):
            return
        step = int(trainer.global_step)
        if step > 0 and loss < self.trained_loss:
            self.trained_loss, self.trained_step = loss, step
            self.trained_state = _cpu_state(pl_module)
        if loss >= self.best_loss:
            return
        if step == 0:
            self.start_loss = loss
        elif loss >= self.start_loss * (1.0 - self.margin):
            return
        self.best_loss, self.best_step = loss, step
        self.best_state = self.trained_state if step > 0 else _cpu_state(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_step": self.best_step, "best_state": self.best_state,
                "start_loss": self.start_loss, "trained_loss": self.trained_loss, "trained_step": self.trained_step,
                "trained_state": self.trained_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_loss = float(state_dict.get("best_loss", math.inf))
        self.best_step = int(state_dict.get("best_step", -1))
        self.best_state = state_dict.get("best_state")
        self.start_loss = float(state_dict.get("start_loss", math.inf))
        self.trained_loss = float(state_dict.get("trained_loss", math.inf))
        self.trained_step = int(state_dict.get("trained_step", -1))
        self.trained_state = state_dict.get("trained_state")


def _cpu_state(pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()}  # type: ignore[union-attr]
