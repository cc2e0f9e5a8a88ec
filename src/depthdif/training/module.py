"""LightningModule for the conditional denoiser (standard | ambient) and the unet baseline.

`model_hparams` is what model.ckpt stores (plain values); `depthdif.reconstruction.ModelSpec`
rebuilds the typed settings from it and `build_model` the network (shared with inference).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from depthdif.diffusion import EDMSampling, ModelSettings, training_loss
from depthdif.diffusion.condition import frame_channels
from depthdif.diffusion.first_guess import PriorParams
from depthdif.errors import ConfigError
from depthdif.eval import metrics
from depthdif.io import seed_for
from depthdif.reconstruction import ModelSpec, build_model, build_prior, reconstruct
from depthdif.shards import denormalise
from depthdif.training.settings import TrainSettings

log = logging.getLogger("depthdif.training")

OBJECTIVES = ("standard", "ambient", "unet")
TRAIN_LOGS = ("observed_fraction", "kept_fraction", "field_std")
#: The validation sampler of an EDM model: Heun on Karras et al.'s deterministic σ grid (NVlabs/edm's
#: `edm_sampler`: σ 0.002…80, ρ 7, no churn), one member, `train.val_ddim_steps` steps. Fixed, not
#: read from the `sample` section: validation (and so the selected weights) must not change, and the
#: model not retrain, when a sampler key changes.
VAL_EDM_SAMPLING = EDMSampling(sigma_min=0.002, sigma_max=80.0, rho=7.0, s_churn=0.0, s_min=0.0, s_max=None,
                               s_noise=1.0)


def model_hparams(
    objective: str,
    model_cfg: Mapping[str, Any],
    objective_cfg: Mapping[str, Any],
    manifest: Mapping[str, Any],
    prior: PriorParams | None = None,
) -> dict[str, Any]:
    """Everything needed to rebuild and use the model, as plain (weights_only-safe) values.

    `prior`: the fitted observation frame (see `first_guess.fit_prior`), None for global units.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} is unknown: use one of {list(OBJECTIVES)}")
    channels = int(manifest["channels"])
    conditioning = ModelSettings.from_cfg(model_cfg).conditioning
    use_eo, use_mask = conditioning.eo, conditioning.mask_channels
    return {
        "objective": objective,
        "model_cfg": _plain(model_cfg),
        "objective_cfg": _plain(objective_cfg),
        "channels": channels,
        "cond_channels": frame_channels(channels, use_eo, use_mask, prior is not None),
        "prior": None if prior is None else prior.to_dict(),
        # set by training: a model trained with rot90/flip augmentation is used rotation-averaged
        "dihedral": False,
        "use_eo": use_eo,
        "use_mask_channels": use_mask,
        "has_eo": bool(manifest["has_eo"]),
        "stats": _plain(manifest["stats"]),
        "depth": [float(d) for d in manifest["depth"]],
        "size": int(manifest["size"]),
        "scenario": str(manifest.get("scenario", "")),
    }


def _plain(obj: Any) -> Any:
    """Deep copy into dict/list/str/float/int/bool/None (torch.load(weights_only=True) safe)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def patch_scores(pred: np.ndarray, truth: np.ndarray, observed: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """RMSE over hidden ocean pixels; PSNR and SSIM per channel (data_range = target max-min), averaged.

    Arrays (C, H, W) in degC; truth may hold anything where not valid.
    """
    hidden = metrics.hidden_mask(observed, valid)
    truth = np.where(valid.astype(bool), truth, np.nan)
    ranges = np.asarray(metrics.data_range(truth, valid))
    psnr = [metrics.psnr(pred[c], truth[c], ranges[c], hidden[c]) for c in range(len(pred))]
    ssim = [metrics.ssim(pred[c], truth[c], float(ranges[c]), hidden[c]) for c in range(len(pred))]
    finite = lambda v: [float(x) for x in v if np.isfinite(x)]  # noqa: E731
    return {
        "rmse": float(metrics.rmse(pred, truth, hidden)),
        "psnr": float(np.mean(finite(psnr))) if finite(psnr) else float("nan"),
        "ssim": float(np.mean(finite(ssim))) if finite(ssim) else float("nan"),
    }


class DepthDifModule(L.LightningModule):
    """Trains `net` with `training_loss(objective)`; validates loss + a short DDIM reconstruction.

    AdamW(lr, weight_decay); ReduceLROnPlateau on the mean val loss is stepped here after
    every validation (Lightning steps plateau schedulers by batch-in-epoch, not global step).
    """

    def __init__(self, hparams: Mapping[str, Any], settings: TrainSettings) -> None:
        super().__init__()
        self.model_hparams: dict[str, Any] = _plain(hparams)
        self.settings = settings
        self.save_hyperparameters({"model": self.model_hparams, "train": settings.to_dict()})
        #: the typed settings, rebuilt from the stored plain values exactly as at inference
        self.spec = ModelSpec.from_hparams(self.model_hparams)
        self.net, self.schedule = build_model(self.spec)
        self.prior = build_prior(self.spec)
        if settings.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.objective: str = self.spec.objective.name
        self._generator: torch.Generator | None = None
        self._generator_state: Tensor | None = None
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._plateau_state: dict[str, Any] | None = None
        self._scores: list[dict[str, float]] = []
        self._val_loss = torch.zeros(2, dtype=torch.float64)
        self._val_select = torch.zeros(2, dtype=torch.float64)
        self._lr_log: tuple[float, Tensor] | None = None  # (lr, the CPU tensor logged for it)
        #: degC arrays of validation patch 0 (input, target, prediction, masks) for the image callback
        self.val_example: dict[str, np.ndarray] | None = None

    # --- loss -------------------------------------------------------------------------
    def loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None) -> tuple[Tensor, dict[str, Tensor]]:
        return training_loss(
            self.net,
            self.schedule,
            batch,
            objective=self.spec.objective,
            diffusion=self.spec.model.diffusion,
            conditioning=self.spec.model.conditioning,
            generator=generator,
            prior=self.prior,
        )

    def _validation_sample(self, batch: Mapping[str, Tensor], generator: torch.Generator) -> Tensor:
        """(B, C, H, W): one-member reconstruction as validation samples it (DDIM, η 0, no clamp, or
        EDM's Heun with VAL_EDM_SAMPLING; `train.val_ddim_steps` steps)."""
        return reconstruct(
            self.net, self.schedule, batch, self.spec, sampler="ddim", steps=self.settings.val_ddim_steps, eta=0.0,
            clamp="none", members=1, edm_sampling=VAL_EDM_SAMPLING, prior=self.prior, clamp_final=True,
            generator=generator,
        )[:, 0]

    def train_generator(self) -> torch.Generator:
        """Seeded generator for the diffusion draws (t, ε, Ã); its state is checkpointed."""
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(seed_for("train", self.settings.seed, self.global_rank))
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
                self._generator_state = None
        return self._generator

    def _eval_generator(self, *parts: object) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed_for("val", self.settings.seed, *parts))
        return gen

    # --- Lightning hooks --------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # after the callbacks' setup, so the EMA copy holds the plain (uncompiled) network
        if stage == "fit" and self.settings.compile:
            self.net.compile()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Loss + logs without a per-step host sync: Lightning reads the logged device tensors
        only when a logger writes (every log_every_n_steps)."""
        loss, logs = self.loss(batch, self.train_generator())
        size = int(batch["y"].shape[0])
        self.log("train/loss", loss, on_step=True, batch_size=size)
        for key in TRAIN_LOGS:
            if key in logs:
                self.log(f"train/{key}", logs[key], on_step=True, batch_size=size)
        # a CPU tensor, made once per lr value: a Python float would become torch.tensor(lr,
        # device=cuda), a blocking copy every step
        lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        if self._lr_log is None or self._lr_log[0] != lr:
            self._lr_log = (lr, torch.tensor(lr, dtype=torch.float32))
        self.log("lr", self._lr_log[1], on_step=True, batch_size=size)
        # Lightning converts progress-bar metrics to numbers after every batch (a sync per step
        # for a device tensor): the bar gets a host copy, refreshed when the CSV log is written
        every = max(int(self.trainer.log_every_n_steps), 1)
        if batch_idx == 0 or (self.global_step + 1) % every == 0:
            self.log("loss", loss.detach().float().cpu(), on_step=True, prog_bar=True, logger=False, batch_size=size)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._scores = []
        self._val_loss = torch.zeros(2, dtype=torch.float64, device=self.device)  # Σ loss·B, Σ B
        self._val_select = torch.zeros(2, dtype=torch.float64, device=self.device)  # Σ selection score·B, Σ B
        self.val_example = None

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        size = int(batch["y"].shape[0])
        loss, _ = self.loss(batch, self._eval_generator("loss", batch_idx))
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        self._val_loss += torch.stack([loss.detach().double() * size, loss.new_tensor(size, dtype=torch.float64)])
        self._val_select += torch.stack([self._selection_score(batch, batch_idx, loss) * size,
                                         loss.new_tensor(size, dtype=torch.float64)])
        chosen = (batch["index"] < self.settings.val_examples).nonzero().flatten()
        if len(chosen) == 0:
            return
        sub = {k: v[chosen] for k, v in batch.items()}
        pred = self._validation_sample(sub, self._eval_generator("sample", batch_idx))
        stats = self.model_hparams["stats"]
        pred_c = denormalise(pred.cpu().numpy(), stats, 1)
        true_c = denormalise(sub["y"].float().cpu().numpy(), stats, 1)
        observed = sub["x_valid"].cpu().numpy() > 0.5
        valid = sub["y_valid"].cpu().numpy() > 0.5
        for i in range(len(pred_c)):
            self._scores.append(patch_scores(pred_c[i], true_c[i], observed[i], valid[i]))
            if int(sub["index"][i]) == 0:
                self.val_example = {
                    "observed_input": np.where(observed[i], true_c[i], np.nan),
                    "target": np.where(valid[i], true_c[i], np.nan),
                    "prediction": np.where(valid[i], pred_c[i], np.nan),
                    "observed": observed[i],
                    "valid": valid[i],
                }

    def _selection_score(self, batch: dict[str, Tensor], batch_idx: int, loss: Tensor) -> Tensor:
        """What `train.select` minimises: the loss of the unet (a reconstruction) and of ambient
        (withheld observations, no truth needed); for standard diffusion, whose denoising loss
        falls even when its reconstructions get worse, the MSE of a one-member DDIM
        reconstruction of the whole batch on the valid pixels (residual units)."""
        if self.objective != "standard":
            return loss.detach().double()
        pred = self._validation_sample(batch, self._eval_generator("select", batch_idx))
        err = (pred - batch["y"]).square() * batch["y_valid"]
        scale = 1.0 if self.prior is None else self.prior.residual_scale[None, :, None, None].to(err.dtype).square()
        return ((err / scale).sum() / batch["y_valid"].sum().clamp_min(1)).double()

    def mean_val_loss(self) -> float | None:
        """Mean validation selection score of the epoch just run (over all ranks; see
        `_selection_score`); None before any batch."""
        val_loss = self._val_select
        if self.trainer.world_size > 1:
            val_loss = self.all_gather(val_loss).sum(0)
        return float(val_loss[0] / val_loss[1]) if float(val_loss[1]) > 0 else None

    def on_validation_epoch_end(self) -> None:
        keys = ("rmse", "psnr", "ssim")
        # (sum, count) per metric, summed over ranks: a rank may hold none of the examples
        totals = torch.tensor(
            [[sum(s[k] for s in self._scores if np.isfinite(s[k])), sum(np.isfinite(s[k]) for s in self._scores)]
             for k in keys],
            dtype=torch.float64, device=self.device,
        )
        val_loss = self._val_loss
        if self.trainer.world_size > 1:
            totals = self.all_gather(totals).sum(0)
            val_loss = self.all_gather(val_loss).sum(0)
        for key, (total, count) in zip(keys, totals.tolist()):
            self.log(f"val/{key}", total / count if count else float("nan"))
        # here, not in on_validation_end: the resume checkpoint saved then must include this step
        if not self.trainer.sanity_checking and self._plateau is not None and val_loss[1] > 0:
            self._plateau.step(float(val_loss[0] / val_loss[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=self.settings.lr, weight_decay=self.settings.weight_decay
        )
        self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.settings.lr_factor, patience=self.settings.lr_patience,
        )
        if self._plateau_state is not None:
            self._plateau.load_state_dict(self._plateau_state)
            self._plateau_state = None
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["depthdif"] = {
            "plateau": None if self._plateau is None else self._plateau.state_dict(),
            "generator": None if self._generator is None else self._generator.get_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("depthdif", {})
        if state.get("plateau") is not None:
            if self._plateau is not None:
                self._plateau.load_state_dict(state["plateau"])
            else:
                self._plateau_state = state["plateau"]
        if state.get("generator") is not None:
            self._generator = None
            self._generator_state = state["generator"]
