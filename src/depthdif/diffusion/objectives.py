"""Training objectives: standard conditional diffusion, ambient diffusion, deterministic U-Net.

Batch (normalised units): y, y_valid, x = A ⊙ y, x_valid = A (B,C,H,W); land (B,1,H,W);
optional eo (B,1,H,W); coords (B,4). Every objective works in the residual units of an
observation `Frame` (`first_guess.py`): with a prior, r = (y - g)/ρ around the OI first guess g
and the denoiser sees concat(r_t, frame.cond); without one, r = y and cond = concat(x, A, eo?).
`DiffusionSettings` (model.diffusion) picks the formulation: `ddpm` (discrete schedule, the network
predicts x0, ε or v, uniform or min-SNR-γ loss weight) or `edm` (`edm.py`: preconditioned
D(x; σ), log-normal σ, λ(σ) weight). Each objective is a small frozen object holding its
hyperparameters (the objectives.<name> section, in the spirit of NVlabs/edm's `VPLoss`/`EDMLoss`)
with the loss as a method; `training_loss` adds the batch logs. The condition and frame are built
in `condition.py`, the ambient further drop Ã in `further_drop.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from depthdif.diffusion import edm
from depthdif.diffusion.condition import observation_frame
from depthdif.diffusion.first_guess import ObservationPrior
from depthdif.diffusion.further_drop import DROP_PATTERNS, ambient_masks
from depthdif.diffusion.schedule import DiffusionConfigError, NoiseSchedule, min_snr_weight
from depthdif.diffusion.settings import PARAMETERIZATIONS, ConditioningSettings, DiffusionSettings
from depthdif.sections import choice, flag, integer, number

ObjectiveName = Literal["standard", "ambient", "unet"]
Parameterization = Literal["x0", "epsilon", "v"]
LossMask = Literal["valid", "missing", "all"]
LOSS_MASKS = ("valid", "missing", "all")


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
    """Σ m w (pred - target)² / max(Σ m, 1), with m (and w, e.g. (B,1,1,1)) broadcast to pred's shape
    (in ≥ float32); no weight is w = 1."""
    dtype = torch.promote_types(pred.dtype, torch.float32)  # bf16/fp16 sums lose counts
    mask = mask.to(dtype).expand_as(pred)
    err = (pred.to(dtype) - target.to(dtype)).square()
    if weight is not None:
        err = err * weight.to(dtype)
    return (mask * err).sum() / mask.sum().clamp_min(1)


def standard_loss_mask(
    y_valid: Tensor,
    x_valid: Tensor,
    loss_mask: LossMask,
    *,
    key: str = "objectives.standard.loss_mask",
) -> Tensor:
    """valid → y_valid; missing → y_valid ⊙ (1 - A); all → ones (includes land and sea floor)."""
    if loss_mask == "valid":
        return y_valid
    if loss_mask == "missing":
        return y_valid * (1 - x_valid)
    if loss_mask == "all":
        return torch.ones_like(y_valid)
    raise DiffusionConfigError(f"{key} = {loss_mask!r}: use 'valid', 'missing' or 'all'")


def _check_parameterization(parameterization: str) -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise DiffusionConfigError(
            f"model.diffusion.parameterization = {parameterization!r}: use 'x0', 'epsilon' or 'v'"
        )


def _snr_weight(settings: DiffusionSettings, schedule: NoiseSchedule, t: Tensor, target: str) -> Tensor | None:
    """Per-sample min-SNR-γ weight (B,1,1,1) for a loss on `target`; None for the uniform weight."""
    if settings.loss_weighting == "uniform":
        return None
    return min_snr_weight(schedule.snr(t), settings.min_snr_gamma, target).reshape(-1, 1, 1, 1)


def _edm_noisy(settings: DiffusionSettings, r: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """(σ (B,), x = r + σ n): ln σ ~ N(P_mean, P_std²), n ~ N(0, I) shaped like r (drawn in that order)."""
    sigma = edm.sample_sigma(r.shape[0], settings.edm, device=r.device, generator=generator)
    noise = torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype)
    return sigma, r + sigma.to(r.dtype).reshape(-1, *([1] * (r.ndim - 1))) * noise


def _sample_t_noise(
    schedule: NoiseSchedule, like: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """t ~ U{0..T-1} per sample and ε ~ N(0, I) shaped like `like`."""
    t = torch.randint(
        0, schedule.timesteps, (like.shape[0],), generator=generator, device=like.device
    )
    noise = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return t, noise


def _batch_logs(batch: Mapping[str, Any]) -> dict[str, Tensor]:
    """observed_fraction = ΣA / Σy_valid; field_std = std of y over valid values (n - 1, 0 if n ≤ 1).

    Masked sums, not y[valid]: 0-d device tensors, so no host sync (boolean indexing waits for the GPU).
    """
    valid = batch["y_valid"] > 0.5
    count = valid.sum()
    n = count.clamp_min(1)
    y = batch["y"].detach()
    y = y.to(torch.promote_types(y.dtype, torch.float32))
    m = valid.to(y.dtype)
    mean = (m * y).sum() / n
    variance = (m * (y - mean).square()).sum() / (count - 1).clamp_min(1)
    return {
        "observed_fraction": (batch["x_valid"].detach().sum() / n),
        "field_std": variance.sqrt(),
    }


def standard_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    batch: Mapping[str, Any],
    *,
    objective: StandardObjective,
    diffusion: DiffusionSettings,
    conditioning: ConditioningSettings,
    generator: torch.Generator | None = None,
    prior: ObservationPrior | None = None,
) -> Tensor:
    """DDPM: E_t,ε w(t) ‖M ⊙ (f(q_sample(r, t, ε), t, cond) - target)‖², r = frame residual of y,
    target = r (x0), ε (epsilon) or v = √ᾱ ε - √(1-ᾱ) r (v); w = 1 or min-SNR-γ.
    EDM: E_σ,n λ(σ) ‖M ⊙ (D(r + σ n; σ, cond) - r)‖²."""
    frame = observation_frame(batch, prior, use_eo=conditioning.eo, use_mask_channels=conditioning.mask_channels)
    r = frame.to_residual(batch["y"]) * batch["y_valid"]
    coords = batch.get("coords")
    parameterization = diffusion.parameterization
    if diffusion.formulation == "edm":
        sigma, x = _edm_noisy(diffusion, r, generator)
        sigma_data = diffusion.edm.sigma_data
        pred = edm.denoise(lambda x_in, label: model(x_in, label, frame.cond, coords), x, sigma, sigma_data)
        mask = standard_loss_mask(batch["y_valid"], batch["x_valid"], objective.loss_mask)
        return masked_mse(pred, r, mask, edm.loss_weight(sigma, sigma_data).reshape(-1, 1, 1, 1))
    t, noise = _sample_t_noise(schedule, r, generator)
    x_t = schedule.q_sample(r, t, noise)
    pred = model(x_t, t, frame.cond, coords)
    if parameterization == "v":
        target = schedule.predict_v(r, t, noise)
    else:
        target = r if parameterization == "x0" else noise
    mask = standard_loss_mask(batch["y_valid"], batch["x_valid"], objective.loss_mask)
    return masked_mse(pred, target, mask, _snr_weight(diffusion, schedule, t, parameterization))


def ambient_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    batch: Mapping[str, Any],
    *,
    objective: AmbientObjective,
    diffusion: DiffusionSettings,
    conditioning: ConditioningSettings,
    generator: torch.Generator | None = None,
    prior: ObservationPrior | None = None,
) -> tuple[Tensor, Tensor]:
    """Ambient diffusion (Daras et al. 2023): w ‖A ⊙ (x̂0(r_t, t, cond(Ã ⊙ x, Ã)) - r)‖², Ã ⊆ A.

    r = A ⊙ residual of x in the frame built from (Ã ⊙ x, Ã) only; r_t = q_sample(r, t, ε) (DDPM,
    x̂0 from the x0/ε/v output, w = 1 or min(SNR, γ)) or r + σ n (EDM, x̂0 = D(r_t; σ), w = λ(σ)),
    optionally Ã ⊙ r_t. Only x and A are read: dense y never enters. Returns (loss, Ã).
    """
    parameterization = diffusion.parameterization
    if (diffusion.formulation == "ddpm" and parameterization == "epsilon"
            and objective.require_x0_parameterization):
        raise DiffusionConfigError(
            "the ambient objective needs model.diffusion.parameterization = 'x0' (got 'epsilon'); "
            "set it to x0 or objectives.ambient.require_x0_parameterization to false"
        )
    x, a = batch["x"], batch["x_valid"]
    a_tilde = ambient_masks(
        a,
        objective.further_drop_prob,
        objective.min_kept_observed_pixels,
        objective.shared_spatial_mask,
        generator=generator,
        pattern=objective.further_drop_pattern,
        block_px=objective.further_drop_block_px,
    )
    frame = observation_frame(batch, prior, use_eo=conditioning.eo, use_mask_channels=conditioning.mask_channels,
                              observed=a_tilde)
    r = a * frame.to_residual(x)
    coords = batch.get("coords")
    # S = A ⊙ y_valid: A ⊆ y_valid by construction, so this is A (y_valid only guards it)
    support = a * batch["y_valid"]
    if diffusion.formulation == "edm":
        sigma, x_noisy = _edm_noisy(diffusion, r, generator)
        if objective.mask_noisy_branch:
            x_noisy = a_tilde * x_noisy
        sigma_data = diffusion.edm.sigma_data
        pred = edm.denoise(lambda x_in, label: model(x_in, label, frame.cond, coords), x_noisy, sigma, sigma_data)
        return masked_mse(pred, r, support, edm.loss_weight(sigma, sigma_data).reshape(-1, 1, 1, 1)), a_tilde
    t, noise = _sample_t_noise(schedule, r, generator)
    x_t = schedule.q_sample(r, t, noise)
    if objective.mask_noisy_branch:
        x_t = a_tilde * x_t
    pred = model(x_t, t, frame.cond, coords)
    if parameterization == "epsilon":
        pred = schedule.predict_x0_from_eps(x_t, t, pred)
    elif parameterization == "v":
        pred = schedule.predict_x0_from_v(x_t, t, pred)
    # the loss is on x0 whatever the network predicts: min-SNR in x0 units is min(SNR, γ)
    return masked_mse(pred, r, support, _snr_weight(diffusion, schedule, t, "x0")), a_tilde


def regression_loss(
    model: nn.Module,
    batch: Mapping[str, Any],
    *,
    objective: UnetObjective,
    conditioning: ConditioningSettings,
    prior: ObservationPrior | None = None,
) -> Tensor:
    """Deterministic U-Net baseline: ‖M ⊙ (f(0, t=0, cond) - r)‖², r = frame residual of y."""
    frame = observation_frame(batch, prior, use_eo=conditioning.eo, use_mask_channels=conditioning.mask_channels)
    r = frame.to_residual(batch["y"]) * batch["y_valid"]
    t = torch.zeros(r.shape[0], dtype=torch.long, device=r.device)
    pred = model(torch.zeros_like(r), t, frame.cond, batch.get("coords"))
    mask = standard_loss_mask(
        batch["y_valid"], batch["x_valid"], objective.loss_mask,
        key="objectives.unet.loss_mask",
    )
    return masked_mse(pred, r, mask)


@dataclass(frozen=True)
class StandardObjective:
    """objectives.standard: conditional diffusion on the dense truth, scored on `loss_mask`."""

    name: ClassVar[ObjectiveName] = "standard"
    loss_mask: LossMask

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "objectives.standard") -> StandardObjective:
        return cls(loss_mask=choice(cfg, "loss_mask", where, LOSS_MASKS, DiffusionConfigError))  # type: ignore[arg-type]

    def loss(
        self, model: nn.Module, schedule: NoiseSchedule, batch: Mapping[str, Any], *, diffusion: DiffusionSettings,
        conditioning: ConditioningSettings, generator: torch.Generator | None, prior: ObservationPrior | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(loss, extra logs) of one batch: `standard_loss`."""
        loss = standard_loss(model, schedule, batch, objective=self, diffusion=diffusion, conditioning=conditioning,
                             generator=generator, prior=prior)
        return loss, {}


@dataclass(frozen=True)
class AmbientObjective:
    """objectives.ambient: diffusion from the observations alone, with a further drop Ã ⊆ A (Daras et al. 2023)."""

    name: ClassVar[ObjectiveName] = "ambient"
    further_drop_prob: float
    min_kept_observed_pixels: int
    shared_spatial_mask: bool
    mask_noisy_branch: bool
    further_drop_pattern: str
    further_drop_block_px: int
    require_x0_parameterization: bool

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "objectives.ambient") -> AmbientObjective:
        return cls(
            further_drop_prob=number(cfg, "further_drop_prob", where),
            min_kept_observed_pixels=integer(cfg, "min_kept_observed_pixels", where),
            shared_spatial_mask=flag(cfg, "shared_spatial_mask", where),
            mask_noisy_branch=flag(cfg, "mask_noisy_branch", where),
            further_drop_pattern=choice(cfg, "further_drop_pattern", where, DROP_PATTERNS, DiffusionConfigError),
            further_drop_block_px=integer(cfg, "further_drop_block_px", where),
            require_x0_parameterization=flag(cfg, "require_x0_parameterization", where),
        )

    def loss(
        self, model: nn.Module, schedule: NoiseSchedule, batch: Mapping[str, Any], *, diffusion: DiffusionSettings,
        conditioning: ConditioningSettings, generator: torch.Generator | None, prior: ObservationPrior | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(loss, {kept_fraction = ΣÃ/ΣA}) of one batch: `ambient_loss`."""
        loss, a_tilde = ambient_loss(model, schedule, batch, objective=self, diffusion=diffusion,
                                     conditioning=conditioning, generator=generator, prior=prior)
        return loss, {"kept_fraction": (a_tilde.sum() / batch["x_valid"].sum().clamp_min(1)).detach()}


@dataclass(frozen=True)
class UnetObjective:
    """objectives.unet: the deterministic U-Net regression baseline, scored on `loss_mask`."""

    name: ClassVar[ObjectiveName] = "unet"
    loss_mask: LossMask

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "objectives.unet") -> UnetObjective:
        return cls(loss_mask=choice(cfg, "loss_mask", where, LOSS_MASKS, DiffusionConfigError))  # type: ignore[arg-type]

    def loss(
        self, model: nn.Module, schedule: NoiseSchedule, batch: Mapping[str, Any], *, diffusion: DiffusionSettings,
        conditioning: ConditioningSettings, generator: torch.Generator | None, prior: ObservationPrior | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(loss, extra logs) of one batch: `regression_loss` (no noise: schedule and diffusion unused)."""
        return regression_loss(model, batch, objective=self, conditioning=conditioning, prior=prior), {}


TrainingObjective = StandardObjective | AmbientObjective | UnetObjective
OBJECTIVE_TYPES: dict[str, type[StandardObjective] | type[AmbientObjective] | type[UnetObjective]] = {
    "standard": StandardObjective, "ambient": AmbientObjective, "unet": UnetObjective,
}


def objective_from_cfg(name: str, cfg: Mapping[str, Any]) -> TrainingObjective:
    """The typed objective `name` from its objectives.<name> section."""
    if name not in OBJECTIVE_TYPES:
        raise DiffusionConfigError(f"objective {name!r} is unknown: use 'standard', 'ambient' or 'unet'")
    return OBJECTIVE_TYPES[name].from_cfg(cfg, f"objectives.{name}")


def training_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    batch: Mapping[str, Any],
    *,
    objective: TrainingObjective,
    diffusion: DiffusionSettings,
    conditioning: ConditioningSettings,
    generator: torch.Generator | None = None,
    prior: ObservationPrior | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Loss of one batch for `objective` and its logs as detached 0-d tensors on the batch's device
    (loss, observed_fraction, field_std, kept_fraction = ΣÃ/ΣA for ambient): nothing here reads a
    value back to the host, so a GPU step is never stalled; callers log them or call .item()."""
    if not isinstance(objective, (StandardObjective, AmbientObjective, UnetObjective)):
        raise DiffusionConfigError(
            f"objective {objective!r} is unknown: pass a StandardObjective, AmbientObjective or UnetObjective "
            "(objective_from_cfg(name, section))"
        )
    _check_parameterization(diffusion.parameterization)
    logs = _batch_logs(batch)
    loss, extra = objective.loss(
        model, schedule, batch, diffusion=diffusion, conditioning=conditioning, generator=generator, prior=prior
    )
    logs.update(extra)
    logs["loss"] = loss.detach()
    return loss, logs
