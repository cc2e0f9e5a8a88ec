"""The trained model at use: rebuild it from a checkpoint's hparams and reconstruct a batch.

`build_model` (network + noise schedule), `build_prior` (the observation frame) and
`reconstruct` (one batch → K members, any formulation and sampler); shared by training
(validation) and inference, so inference needs nothing from the training stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from depthdif.diffusion import (
    ConditionalUNet,
    NoiseSchedule,
    ddim_sample,
    ddpm_sample,
    dihedral,
    edm,
    repeat_for_members,
    split_members,
)
from depthdif.diffusion.first_guess import ObservationPrior, PriorParams
from depthdif.diffusion.objectives import observation_frame
from depthdif.errors import ConfigError


def build_prior(hparams: Mapping[str, Any]) -> ObservationPrior | None:
    """The observation frame stored in `hparams` (None: global normalisation)."""
    params = hparams.get("prior")
    return None if params is None else ObservationPrior(PriorParams.from_dict(params))


def build_model(hparams: Mapping[str, Any]) -> tuple[ConditionalUNet, NoiseSchedule]:
    """ConditionalUNet (C + cond channels → C) and the NoiseSchedule described by `hparams`.

    With a first guess the output layer starts at zero, so an untrained model returns it.
    """
    backbone = hparams["model_cfg"]["backbone"]
    diffusion = hparams["model_cfg"]["diffusion"]
    net = ConditionalUNet(
        in_channels=hparams["channels"],
        cond_channels=hparams["cond_channels"],
        out_channels=hparams["channels"],
        dim=int(backbone["dim"]),
        dim_mults=tuple(backbone["dim_mults"]),
        attention=bool(backbone["attention"]),
        film=bool(backbone["film"]),
        dropout=float(backbone["dropout"]),
        zero_init_output=hparams.get("prior") is not None,
    )
    return net, NoiseSchedule(int(diffusion["timesteps"]), diffusion["schedule"])


@torch.no_grad()
def reconstruct(
    net: torch.nn.Module,
    schedule: NoiseSchedule,
    batch: Mapping[str, Tensor],
    hparams: Mapping[str, Any],
    *,
    sampler: str = "ddim",
    steps: int = 10,
    eta: float = 0.0,
    clamp: str = "none",
    members: int = 1,
    generator: torch.Generator | None = None,
    prior: ObservationPrior | None = None,
    clamp_final: bool = True,
    edm_sampling: Mapping[str, Any] | None = None,
) -> Tensor:
    """(B, K, C, H, W) normalised reconstructions of a batch; K = 1 for the deterministic unet.

    The model works in the residual units of the batch's observation frame (built once from
    (x, A)); diffusion repeats it member-minor (B·K rows per forward), samples with DDIM or
    DDPM (formulation ddpm) or EDM's Heun sampler with `steps` steps and the sample.edm
    settings `edm_sampling` (formulation edm; `sampler` and `eta` unused), known pixels A
    clamped per `clamp` (in residual units), and maps back to the field.
    A model trained with rot90/flip (hparams["dihedral"]) is averaged over the dihedral group
    (unet) or sampled with member m in the frame of group element m mod |G| (diffusion).
    """
    x, a = batch["x"], batch["x_valid"]
    frame = observation_frame(
        batch, prior, use_eo=hparams["use_eo"], use_mask_channels=hparams["use_mask_channels"]
    )
    coords = batch.get("coords")
    b, c, h, w = x.shape
    group = dihedral.elements(h, w) if hparams.get("dihedral") else [0]
    if hparams["objective"] == "unet":
        t0 = torch.zeros(b, dtype=torch.long, device=x.device)
        zero = torch.zeros_like(x)
        residual = torch.stack([
            dihedral.invert(net(zero, t0, dihedral.apply(frame.cond, i), coords), i) for i in group
        ]).mean(0)
        return frame.to_field(residual)[:, None].float()
    k = int(members)
    frame_k = frame.repeat(k)
    cond_k = frame_k.cond
    coords_k = None if coords is None else repeat_for_members(coords, k)
    known_mask = repeat_for_members(a, k)
    known = known_mask * frame_k.to_residual(repeat_for_members(x, k))
    # the ambient denoiser only ever saw Ã ⊙ x_t (Ã ⊆ A) when the noisy branch is masked
    mask_noisy = hparams["objective"] == "ambient" and bool(hparams["objective_cfg"].get("mask_noisy_branch"))

    element = torch.tensor(group, device=x.device)[torch.arange(b * k, device=x.device) % k % len(group)]

    def net_k(x_in: Tensor, t: Tensor) -> Tensor:
        if len(group) == 1:
            return net(x_in, t, cond_k, coords_k)
        return dihedral.per_row(
            lambda xr, cr, rows: net(xr, t[rows], cr, None if coords_k is None else coords_k[rows]),
            x_in, cond_k, element,
        )

    def model_fn(x_t: Tensor, t: Tensor) -> Tensor:
        return net_k(known_mask * x_t if mask_noisy else x_t, t)

    diffusion = hparams["model_cfg"]["diffusion"]
    settings = edm.DiffusionSettings.from_cfg(diffusion)
    if settings.formulation == "edm":
        sigma_data = settings.edm.sigma_data

        def denoise_fn(x_s: Tensor, sigma: Tensor) -> Tensor:
            return edm.denoise(net_k, known_mask * x_s if mask_noisy else x_s, sigma, sigma_data)

        out = edm.edm_sample(
            denoise_fn, (b * k, c, h, w), steps=steps, settings=edm.EDMSampling.from_cfg(edm_sampling),
            known=known, known_mask=known_mask, clamp=clamp, generator=generator, clamp_final=clamp_final,
            device=x.device,
        )
        return split_members(frame_k.to_field(out).float(), k)
    parameterization = diffusion["parameterization"]
    common: dict[str, Any] = dict(
        parameterization=parameterization, known=known, known_mask=known_mask, clamp=clamp, generator=generator,
        clamp_final=clamp_final,
    )
    if sampler == "ddim":
        out = ddim_sample(model_fn, schedule, (b * k, c, h, w), steps=steps, eta=eta, **common)
    elif sampler == "ddpm":
        out = ddpm_sample(model_fn, schedule, (b * k, c, h, w), **common)
    else:
        raise ConfigError(f"sample.sampler = {sampler!r}: use 'ddim' or 'ddpm'")
    return split_members(frame_k.to_field(out).float(), k)
