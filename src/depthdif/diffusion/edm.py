"""The EDM formulation (Karras et al. 2022; NVlabs/edm `EDMPrecond`, `EDMLoss`, `edm_sampler`).

Clean data x0 (here the residual r of the observation frame), noisy x = x0 + σ n, n ~ N(0, I), and

    D(x; σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x; c_noise(σ), cond)
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ σ_d / √(σ² + σ_d²),  c_in = 1 / √(σ² + σ_d²),  c_noise = ln(σ) / 4.

Training: ln σ ~ N(P_mean, P_std²), loss λ(σ) ‖D(x; σ) - x0‖² with λ = (σ² + σ_d²) / (σ σ_d)² = 1/c_out²,
i.e. unit weight on the network's own target (x0 - c_skip x) / c_out. Sampling: Heun's 2nd-order
method on σ_i = (σ_max^(1/ρ) + i/(N-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ, σ_N = 0, with EDM's optional
stochastic churn (Algorithm 2). The U-Net's sinusoidal time embedding (built for integer DDPM
steps 0…T-1) receives NOISE_EMBED_SCALE · c_noise = 62.5 ln σ: σ ∈ [0.002, 80] spans [-388, 274],
the training range ln σ ∈ P_mean ± 2 P_std about 300 units, as the DDPM steps of T = 200 do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from depthdif.diffusion.sampler import (
    Clamp,
    Noise,
    Plan,
    Step,
    _as_bool,
    check_clamp,
    generator_noise,
    run_plan,
    write_known,
)
from depthdif.diffusion.schedule import DiffusionConfigError
from depthdif.sections import number, optional_number

#: the denoiser's time embedding gets NOISE_EMBED_SCALE · c_noise(σ) (see the module docstring)
NOISE_EMBED_SCALE = 250.0

#: F(c_in x, noise_label) -> F_θ output: the network with its condition bound
NetFn = Callable[[Tensor, Tensor], Tensor]
#: D(x, σ) with σ of shape (B,)
DenoiseFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class EDMTraining:
    """model.diffusion.edm: σ_data (the residual's std: the frame scales it to ~1) and the log-normal σ."""

    sigma_data: float
    p_mean: float
    p_std: float

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "model.diffusion.edm") -> EDMTraining:
        out = cls(*(number(cfg, k, where, DiffusionConfigError) for k in ("sigma_data", "p_mean", "p_std")))
        if out.sigma_data <= 0 or out.p_std < 0:
            raise DiffusionConfigError(f"{where}: sigma_data must be > 0 and p_std >= 0 (got {out})")
        return out


@dataclass(frozen=True)
class EDMSampling:
    """sample.edm: the σ grid (σ_min, σ_max, ρ) and the churn (S_churn, S_min, S_max, S_noise); S_max None = ∞."""

    sigma_min: float
    sigma_max: float
    rho: float
    s_churn: float
    s_min: float
    s_max: float | None
    s_noise: float

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "sample.edm") -> EDMSampling:
        keys = ("sigma_min", "sigma_max", "rho", "s_churn", "s_min", "s_noise")
        values = {k: number(cfg, k, where, DiffusionConfigError) for k in keys}
        out = cls(**values, s_max=optional_number(cfg, "s_max", where, DiffusionConfigError))
        if not 0 < out.sigma_min < out.sigma_max or out.rho <= 0 or out.s_churn < 0 or out.s_noise < 0:
            raise DiffusionConfigError(
                f"{where}: need 0 < sigma_min < sigma_max, rho > 0, s_churn >= 0, s_noise >= 0 (got {out})"
            )
        return out


def _column(sigma: Tensor, like: Tensor) -> Tensor:
    """σ (B,) as (B, 1, …) in ≥ float32 on like's device."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    return sigma.to(like.device, dtype).reshape(-1, *([1] * (like.ndim - 1)))


def preconditioning(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) of EDM's Table 1, elementwise in σ."""
    total = sigma.square() + sigma_data**2
    return sigma_data**2 / total, sigma * sigma_data / total.sqrt(), total.rsqrt(), sigma.log() / 4


def loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """λ(σ) = (σ² + σ_d²) / (σ σ_d)² = 1 / c_out(σ)²."""
    return (sigma.square() + sigma_data**2) / (sigma * sigma_data).square()


def noise_label(sigma: Tensor) -> Tensor:
    """What the network's time embedding receives: NOISE_EMBED_SCALE · c_noise(σ), shape (B,)."""
    return NOISE_EMBED_SCALE * sigma.reshape(-1).float().log() / 4


def denoise(net_fn: NetFn, x: Tensor, sigma: Tensor, sigma_data: float) -> Tensor:
    """D(x; σ) = c_skip x + c_out F(c_in x, c_noise) (coefficients in ≥ float32, as EDMPrecond)."""
    return denoise_parts(net_fn, x, sigma, sigma_data)[0]


def denoise_parts(net_fn: NetFn, x: Tensor, sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor]:
    """(D(x; σ), c_out F): the denoiser and its network branch (the part that is learned)."""
    s = _column(sigma, x)
    c_skip, c_out, c_in, _ = preconditioning(s, sigma_data)
    xf = x.to(s.dtype)
    branch = c_out * net_fn(c_in * xf, noise_label(sigma)).to(s.dtype)
    return c_skip * xf + branch, branch


def sample_sigma(n: int, settings: EDMTraining, *, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """σ = exp(P_mean + P_std z), z ~ N(0, 1), shape (n,)."""
    z = torch.randn(n, generator=generator, device=device)
    return (z * settings.p_std + settings.p_mean).exp()


def sigma_steps(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """EDM's t_i: σ_max … σ_min in `steps` values spaced uniformly in σ^(1/ρ), then σ_N = 0."""
    if steps < 1:
        raise DiffusionConfigError(f"sample.steps = {steps}: need at least 1 sampling step")
    if steps == 1:
        return [float(sigma_max), 0.0]
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(hi + i / (steps - 1) * (lo - hi)) ** rho for i in range(steps)] + [0.0]


def clamp_known_sigma(
    x: Tensor,
    sigma: float,
    *,
    known: Tensor | None,
    known_mask: Tensor | None,
    clamp: Clamp,
    generator: torch.Generator | None = None,
    noise: Noise | None = None,
) -> Tensor:
    """x on A ← known (overwrite) or known + σ ε (renoise: the known values at noise level σ); σ = 0: known.

    ε from `noise` (default: drawn from `generator`)."""
    draw = noise or generator_noise(generator)

    def renoise(target: Tensor) -> Tensor:
        return target + sigma * draw(x)

    return write_known(x, known=known, known_mask=known_mask, clamp=clamp, renoise=renoise if sigma > 0 else None)


def _denoise_at(denoise_fn: DenoiseFn, x: Tensor, s: float) -> Tensor:
    """D(x; s) with σ as a float32 (B,) tensor, in x's dtype."""
    sigma = torch.full((x.shape[0],), s, device=x.device, dtype=torch.float32)
    return denoise_fn(x, sigma).to(x.dtype)


def edm_plan(
    steps: int,
    settings: EDMSampling,
    *,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    clamp: Clamp = "none",
    clamp_final: bool = True,
    second_order: bool = True,
) -> Plan:
    """EDM Algorithm 2 as `Step`s (see `edm_sample`): pre = the churn at σ_i, update = the Euler/Heun
    step σ̂ → σ_{i+1} (the network part), post = the known pixels at σ_{i+1}."""
    check_clamp(clamp)
    sigmas = sigma_steps(steps, settings.sigma_min, settings.sigma_max, settings.rho)
    known_mask = _as_bool(known_mask)
    s_max = math.inf if settings.s_max is None else settings.s_max
    gamma_churn = min(settings.s_churn / steps, math.sqrt(2) - 1)
    n = len(sigmas) - 1

    def churn(s_cur: float, s_hat: float) -> Callable[[Tensor, Noise], Tensor]:
        return lambda x, noise: x + math.sqrt(s_hat**2 - s_cur**2) * settings.s_noise * noise(x)

    def update(s_hat: float, s_next: float) -> Callable[[DenoiseFn, Tensor, Noise], Tensor]:
        def run(denoise_fn: DenoiseFn, x_hat: Tensor, noise: Noise) -> Tensor:
            denoised = _denoise_at(denoise_fn, x_hat, s_hat)
            if s_next == 0:  # the Euler step to σ = 0 lands on D(x̂; σ̂)
                return denoised
            d_cur = (x_hat - denoised) / s_hat
            x = x_hat + (s_next - s_hat) * d_cur
            if second_order:
                d_next = (x - _denoise_at(denoise_fn, x, s_next)) / s_next
                x = x_hat + (s_next - s_hat) * (0.5 * d_cur + 0.5 * d_next)
            return x

        return run

    def write(s_next: float) -> Callable[[Tensor, Noise], Tensor]:
        return lambda x, noise: clamp_known_sigma(x, s_next, known=known, known_mask=known_mask, clamp=clamp,
                                                  noise=noise)

    out = []
    for i in range(n):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        gamma = gamma_churn if settings.s_churn > 0 and settings.s_min <= s_cur <= s_max else 0.0
        s_hat = s_cur * (1 + gamma)
        out.append(Step(update(s_hat, s_next), pre=churn(s_cur, s_hat) if gamma > 0 else None,
                        post=None if i == n - 1 and not clamp_final else write(s_next)))
    return Plan(tuple(out), sigmas[0])


@torch.no_grad()
def edm_sample(
    denoise_fn: DenoiseFn,
    shape: Sequence[int],
    *,
    steps: int,
    settings: EDMSampling,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    clamp: Clamp = "none",
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
    clamp_final: bool = True,
    second_order: bool = True,
    device: torch.device | str = "cpu",
) -> Tensor:
    """EDM Algorithm 2: for i < N, γ_i = min(S_churn/N, √2 - 1) if S_min ≤ σ_i ≤ S_max else 0,

    σ̂ = σ_i (1 + γ_i), x̂ = x_i + √(σ̂² - σ_i²) S_noise ε, d = (x̂ - D(x̂; σ̂))/σ̂, x_{i+1} = x̂ + (σ_{i+1} - σ̂) d,
    and (Heun, σ_{i+1} > 0) x_{i+1} = x̂ + (σ_{i+1} - σ̂)(d + d')/2, d' = (x_{i+1} - D(x_{i+1}; σ_{i+1}))/σ_{i+1}.
    x_0 ~ N(0, σ_max² I) unless x_T is given. Known pixels are clamped after every step at σ_{i+1}
    (`clamp_known_sigma`); the last step (σ_N = 0) returns D, with known pixels written in unless
    clamp_final=False (the model's own last estimate).
    """
    plan = edm_plan(steps, settings, known=known, known_mask=known_mask, clamp=clamp, clamp_final=clamp_final,
                    second_order=second_order)
    like = torch.empty(0, device=device) if x_T is None else x_T
    x = x_T.clone() if x_T is not None else plan.initial(shape, like, generator)
    return run_plan(denoise_fn, plan, x, generator_noise(generator))
