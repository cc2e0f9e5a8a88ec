"""Does the denoiser use x_t? The sensitivity ‖Δx̂0‖ / ‖Δx_t‖ on hidden pixels per noise level.

At a fixed noise level and condition, x_t (in the residual units of the observation frame) is
perturbed by Δ on the hidden pixels (valid, not observed) and the change of the x0 estimate is
measured on the same pixels: ratio = √(Σ ‖H ⊙ Δx̂0‖² / Σ ‖H ⊙ Δx_t‖²), pooled over patches and
random directions. A denoiser that follows x_t has ratio ≈ 1/√ᾱ (DDPM) or ≈ 1 (EDM) at low noise
and shrinks towards 0 only at high noise; one that predicts the conditional mean whatever x_t
is (ensemble collapse) has ratio ≈ 0 at every level.

Every x0 estimate is skip · x_t + branch, with skip = 0 (x0), 1/√ᾱ (ε), √ᾱ (v) or c_skip(σ)
(EDM): `branch` is the network's own part and gets its own ratio (with a skip connection the
total is ≈ skip by construction). `white_ref` is the ratio of the exact denoiser for white
N(0, s²) residuals (s = RMS of the batch's residual on hidden pixels): √ᾱ s²/(ᾱ s² + 1 - ᾱ)
(DDPM) or s²/(s² + σ²) (EDM), an orientation for how much shrinkage a prior alone implies.
Dihedral models are probed in their identity orientation (member 0 of `reconstruct`). The model is
described by its `depthdif.reconstruction.ModelSpec` (the typed view of a checkpoint's hparams).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from depthdif.diffusion import edm
from depthdif.diffusion.condition import observation_frame
from depthdif.diffusion.first_guess import ObservationPrior
from depthdif.diffusion.sampler import _x0_eps
from depthdif.diffusion.schedule import NoiseSchedule

if TYPE_CHECKING:
    from depthdif.reconstruction import ModelSpec

#: default EDM noise levels σ (residual units)
EDM_SIGMAS = (0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0)
#: x_t ↦ (x̂0, branch)
Estimator = Callable[[Tensor], tuple[Tensor, Tensor]]
#: default DDPM levels as fractions of T - 1
DDPM_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def default_levels(spec: ModelSpec) -> list[float]:
    """EDM: EDM_SIGMAS; DDPM: round(f (T - 1)) for f in DDPM_FRACTIONS (unique)."""
    diffusion = spec.model.diffusion
    if diffusion.formulation == "edm":
        return list(EDM_SIGMAS)
    last = diffusion.timesteps - 1
    return sorted({float(round(f * last)) for f in DDPM_FRACTIONS})


@torch.no_grad()
def xt_sensitivity(
    net: nn.Module,
    schedule: NoiseSchedule,
    batch: Mapping[str, Tensor],
    spec: ModelSpec,
    *,
    prior: ObservationPrior | None = None,
    levels: Sequence[float] | None = None,
    delta: float = 1e-2,
    directions: int = 2,
    generator: torch.Generator | None = None,
) -> list[dict[str, float]]:
    """One row per level: level (t or σ), sigma (noise std in x0 units), total, branch, white_ref.

    x_t = q_sample(r, t, ε) (DDPM) or r + σ ε (EDM), r the frame residual of y; the network input
    is masked by A as in sampling when the model is an ambient one with a masked noisy branch.
    Δ = δ · RMS_H(x_t) · u / RMS_H(u), u ~ N(0, I) on the hidden pixels H.
    """
    conditioning = spec.model.conditioning
    frame = observation_frame(batch, prior, use_eo=conditioning.eo, use_mask_channels=conditioning.mask_channels)
    r = frame.to_residual(batch["y"]) * batch["y_valid"]
    hidden = ((batch["y_valid"] > 0.5) & (batch["x_valid"] < 0.5)).to(r.dtype)
    known = batch["x_valid"] > 0.5
    mask_noisy = spec.mask_noisy_branch
    coords = batch.get("coords")
    settings = spec.model.diffusion
    n_hidden = hidden.sum().clamp_min(1)
    s2 = float((r.square() * hidden).sum() / n_hidden)

    def net_fn(x_in: Tensor, label: Tensor) -> Tensor:
        return net(x_in, label, frame.cond, coords)

    def masked(x: Tensor) -> Tensor:
        return torch.where(known, x, torch.zeros_like(x)) if mask_noisy else x

    def probe(level: float, noise: Tensor) -> tuple[Tensor, Estimator, float, float]:
        """(x_t, x_t ↦ (x̂0, branch), noise std in x0 units, white-prior reference) at one level."""
        if settings.formulation == "edm":
            sigma = float(level)
            sig = torch.full((r.shape[0],), sigma, device=r.device)

            def estimate_edm(x: Tensor) -> tuple[Tensor, Tensor]:
                return edm.denoise_parts(net_fn, masked(x), sig, settings.edm.sigma_data)

            return r + sigma * noise, estimate_edm, sigma, s2 / (s2 + sigma**2)
        t = torch.full((r.shape[0],), int(level), dtype=torch.long, device=r.device)
        a = float(schedule.alphas_cumprod[int(level)])
        parameterization = settings.parameterization
        skip = {"x0": 0.0, "epsilon": 1 / math.sqrt(a), "v": math.sqrt(a)}[parameterization]

        def estimate_ddpm(x: Tensor) -> tuple[Tensor, Tensor]:
            x_in = masked(x)
            x0, _ = _x0_eps(schedule, x_in, t, net(x_in, t, frame.cond, coords), parameterization, None)
            return x0, x0 - skip * x_in

        ref = math.sqrt(a) * s2 / (a * s2 + 1 - a) if s2 > 0 else 0.0
        return schedule.q_sample(r, t, noise), estimate_ddpm, math.sqrt((1 - a) / a), ref

    rows = []
    for level in levels if levels is not None else default_levels(spec):
        noise = torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype)
        x_t, estimate, sigma, ref = probe(level, noise)
        base, base_branch = estimate(x_t)
        scale = float((x_t.square() * hidden).sum() / n_hidden) ** 0.5
        num = num_branch = den = 0.0
        for _ in range(directions):
            u = torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype) * hidden
            u = u * (delta * max(scale, 1e-6) / float((u.square().sum() / n_hidden) ** 0.5))
            out, out_branch = estimate(x_t + u)
            num += float(((out - base) * hidden).square().sum())
            num_branch += float(((out_branch - base_branch) * hidden).square().sum())
            den += float(u.square().sum())
        rows.append({
            "level": float(level), "sigma": sigma, "total": math.sqrt(num / den) if den else float("nan"),
            "branch": math.sqrt(num_branch / den) if den else float("nan"), "white_ref": ref,
        })
    return rows
