"""The trained model at use: its typed description, rebuilt from a checkpoint's hparams, and reconstruction.

`ModelSpec.from_hparams` (the typed view of `model_hparams`, the plain values model.ckpt
stores), `build_model` (network + noise schedule), `build_prior` (the observation frame) and
`reconstruct` (one batch → K members, any formulation and sampler); shared by training
(validation) and inference, so inference needs nothing from the training stack.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from depthdif.diffusion import (
    AmbientObjective,
    ConditionalUNet,
    ModelSettings,
    NoiseSchedule,
    TrainingObjective,
    dihedral,
    edm,
    objective_from_cfg,
    repeat_for_members,
    split_members,
)
from depthdif.diffusion.condition import observation_frame
from depthdif.diffusion.first_guess import ObservationPrior, PriorParams
from depthdif.diffusion.sampler import ModelFn, Plan, ddim_plan, ddpm_plan, generator_noise, run_plan
from depthdif.errors import ConfigError, DataError

SAMPLERS = ("ddim", "ddpm")
#: Backward compatibility, the one place that fills keys a stored checkpoint may lack: model keys
#: added after checkpoints were first written (with the diffusion formulations and the first-guess
#: nugget option), with the values those checkpoints were trained with (every earlier model is a
#: DDPM with a uniform loss weight and a fitted nugget; min_snr_gamma and edm are then unused).
#: Applied only to keys absent from a checkpoint's stored `model_cfg`, never to a config section.
LEGACY_MODEL_KEYS: dict[str, dict[str, Any]] = {
    "diffusion": {"formulation": "ddpm", "loss_weighting": "uniform", "min_snr_gamma": 5.0,
                  "edm": {"sigma_data": 1.0, "p_mean": -1.2, "p_std": 1.2}},
    "first_guess": {"nugget": "fitted", "scale_floor": 0.1},
}


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint's `model_hparams` say about the network and how to use it, typed.

    objective: the typed objective it was trained with; model: its `ModelSettings`; channels
    and cond_channels: the network's input/condition width; prior: the fitted observation
    frame (None: global units); dihedral: trained with rot90/flip, so used rotation-averaged.
    """

    objective: TrainingObjective
    model: ModelSettings
    channels: int
    cond_channels: int
    prior: PriorParams | None
    dihedral: bool

    @property
    def deterministic(self) -> bool:
        """The unet regression baseline: one member, no sampler."""
        return self.objective.name == "unet"

    @property
    def mask_noisy_branch(self) -> bool:
        """An ambient denoiser that only ever saw Ã ⊙ x_t (Ã ⊆ A): sampling masks its input by A."""
        return isinstance(self.objective, AmbientObjective) and self.objective.mask_noisy_branch

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> ModelSpec:
        """Rebuild the typed description from the plain values `model_hparams` stored."""
        try:
            return cls(
                objective=objective_from_cfg(str(hparams["objective"]), hparams["objective_cfg"]),
                model=ModelSettings.from_cfg(_with_legacy_keys(hparams["model_cfg"])),
                channels=int(hparams["channels"]),
                cond_channels=int(hparams["cond_channels"]),
                prior=None if hparams["prior"] is None else PriorParams.from_dict(hparams["prior"]),
                dihedral=bool(hparams["dihedral"]),
            )
        except (ConfigError, KeyError) as exc:
            raise DataError(
                f"the checkpoint's hparams do not describe a model this DepthDif can use ({exc}); "
                "it was written by an older version: rerun the train_model rule"
            ) from exc


def _with_legacy_keys(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored model_cfg with the keys of LEGACY_MODEL_KEYS it lacks (see there)."""
    out = copy.deepcopy(dict(model_cfg))
    for name, keys in LEGACY_MODEL_KEYS.items():
        if isinstance(out.get(name), Mapping):
            out[name] = {**copy.deepcopy(keys), **out[name]}
    return out


def build_prior(spec: ModelSpec) -> ObservationPrior | None:
    """The observation frame of the model (None: global normalisation)."""
    return None if spec.prior is None else ObservationPrior(spec.prior)


def build_model(spec: ModelSpec) -> tuple[ConditionalUNet, NoiseSchedule]:
    """ConditionalUNet (C + cond channels → C) and the NoiseSchedule described by `spec`.

    With a first guess the output layer starts at zero, so an untrained model returns it.
    """
    backbone, diffusion = spec.model.backbone, spec.model.diffusion
    net = ConditionalUNet(
        in_channels=spec.channels,
        cond_channels=spec.cond_channels,
        out_channels=spec.channels,
        dim=backbone.dim,
        dim_mults=backbone.dim_mults,
        attention=backbone.attention,
        film=backbone.film,
        dropout=backbone.dropout,
        zero_init_output=spec.prior is not None,
    )
    return net, NoiseSchedule(diffusion.timesteps, diffusion.schedule)  # type: ignore[arg-type]


@torch.no_grad()
def reconstruct(
    net: torch.nn.Module,
    schedule: NoiseSchedule,
    batch: Mapping[str, Tensor],
    spec: ModelSpec,
    *,
    sampler: str,
    steps: int,
    eta: float,
    clamp: str,
    members: int,
    edm_sampling: edm.EDMSampling,
    prior: ObservationPrior | None,
    clamp_final: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, K, C, H, W) normalised reconstructions of a batch; K = 1 for the deterministic unet.

    The model works in the residual units of the batch's observation frame (built once from
    (x, A)); diffusion repeats it member-minor (B·K rows per forward), samples with DDIM or
    DDPM (formulation ddpm) or EDM's Heun sampler with `steps` steps and the σ grid and churn
    of `edm_sampling` (formulation edm; `sampler` and `eta` unused), known pixels A clamped per
    `clamp` (in residual units), and maps back to the field; clamp_final=False returns the
    model's own last estimate (no known pixels written into it). `prior` is `build_prior(spec)`
    on the batch's device. A model trained with rot90/flip (spec.dihedral) is averaged over the
    dihedral group (unet) or sampled with member m in the frame of group element m mod |G|.
    """
    x, a = batch["x"], batch["x_valid"]
    conditioning = spec.model.conditioning
    frame = observation_frame(batch, prior, use_eo=conditioning.eo, use_mask_channels=conditioning.mask_channels)
    coords = batch.get("coords")
    b, c, h, w = x.shape
    if spec.deterministic:
        return frame.to_field(unet_residual(net, spec, frame.cond, coords))[:, None].float()
    k = int(members)
    frame_k = frame.repeat(k)
    known_mask = repeat_for_members(a, k)
    known = known_mask * frame_k.to_residual(repeat_for_members(x, k))
    fn = member_fn(net, spec, frame_k.cond, None if coords is None else repeat_for_members(coords, k), known_mask, k)
    plan = sampler_plan(spec, schedule, sampler=sampler, steps=steps, eta=eta, clamp=clamp, edm_sampling=edm_sampling,
                        known=known, known_mask=known_mask, clamp_final=clamp_final)
    like = torch.empty(0, device=x.device) if spec.model.diffusion.formulation == "edm" else schedule.betas
    out = run_plan(fn, plan, plan.initial((b * k, c, h, w), like, generator), generator_noise(generator))
    return split_members(frame_k.to_field(out).float(), k)


def unet_residual(net: torch.nn.Module, spec: ModelSpec, cond: Tensor, coords: Tensor | None) -> Tensor:
    """The deterministic unet's residual (B, C, H, W) from its condition (averaged over the dihedral group)."""
    b, _, h, w = cond.shape
    group = dihedral.elements(h, w) if spec.dihedral else [0]
    t0 = torch.zeros(b, dtype=torch.long, device=cond.device)
    zero = cond.new_zeros((b, spec.channels, h, w))
    return torch.stack([
        dihedral.invert(net(zero, t0, dihedral.apply(cond, i), coords), i) for i in group
    ]).mean(0)


def member_fn(
    net: torch.nn.Module, spec: ModelSpec, cond_k: Tensor, coords_k: Tensor | None, known_mask: Tensor, k: int,
) -> ModelFn:
    """What the sampler's steps call on member-minor rows (row b·k + m): the DDPM model fn(x_t, t), or
    EDM's denoiser D(x, σ) (formulation edm). Member m runs in the frame of dihedral element m mod |G|
    (spec.dihedral); an ambient model trained on Ã ⊙ x_t sees A ⊙ x_t (spec.mask_noisy_branch)."""
    rows, _, h, w = cond_k.shape
    group = dihedral.elements(h, w) if spec.dihedral else [0]
    element = torch.tensor(group, device=cond_k.device)[torch.arange(rows, device=cond_k.device) % k % len(group)]
    mask_noisy = spec.mask_noisy_branch

    def net_k(x_in: Tensor, t: Tensor) -> Tensor:
        if len(group) == 1:
            return net(x_in, t, cond_k, coords_k)
        return dihedral.per_row(
            lambda xr, cr, sel: net(xr, t[sel], cr, None if coords_k is None else coords_k[sel]),
            x_in, cond_k, element,
        )

    diffusion = spec.model.diffusion
    if diffusion.formulation == "edm":
        sigma_data = diffusion.edm.sigma_data

        def denoise_fn(x_s: Tensor, sigma: Tensor) -> Tensor:
            return edm.denoise(net_k, known_mask * x_s if mask_noisy else x_s, sigma, sigma_data)

        return denoise_fn

    def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
        return net_k(known_mask * x_t if mask_noisy else x_t, t)

    return model_fn


def sampler_plan(
    spec: ModelSpec,
    schedule: NoiseSchedule,
    *,
    sampler: str,
    steps: int,
    eta: float,
    clamp: str,
    edm_sampling: edm.EDMSampling,
    known: Tensor | None,
    known_mask: Tensor | None,
    clamp_final: bool,
) -> Plan:
    """The steps of the model's sampler: EDM's Heun (formulation edm), else DDIM or DDPM (`sampler`)."""
    diffusion = spec.model.diffusion
    common: dict[str, Any] = dict(known=known, known_mask=known_mask, clamp=clamp, clamp_final=clamp_final)
    if diffusion.formulation == "edm":
        return edm.edm_plan(steps, edm_sampling, **common)
    if sampler == "ddim":
        return ddim_plan(schedule, steps=steps, eta=eta, parameterization=diffusion.parameterization, **common)
    if sampler == "ddpm":
        return ddpm_plan(schedule, parameterization=diffusion.parameterization, **common)
    raise ConfigError(f"sample.sampler = {sampler!r}: use 'ddim' or 'ddpm'")
