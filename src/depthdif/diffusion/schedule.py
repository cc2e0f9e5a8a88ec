"""Gaussian diffusion noise schedule q(x_t | x_0) and its posterior q(x_{t-1} | x_t, x_0)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from depthdif.errors import ConfigError

ScheduleKind = Literal["linear", "cosine"]


class DiffusionConfigError(ConfigError, ValueError):
    """A diffusion-model config value is inconsistent (a ConfigError that is also a ValueError)."""


def linear_betas(timesteps: int) -> Tensor:
    """Ho et al. (2020): β linear from 1e-4 to 0.02, scaled by 1000/T (clipped to 0.999 for tiny T)."""
    scale = 1000.0 / timesteps
    betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    return betas.clamp(max=0.999)


def cosine_betas(timesteps: int, s: float = 0.008) -> Tensor:
    """Nichol & Dhariwal (2021): ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), β_t = 1 - ᾱ_{t+1}/ᾱ_t ≤ 0.999."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    f = torch.cos((x / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(0, 0.999)


def extract(buffer: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """buffer[t] reshaped to (B, 1, 1, ...) so it broadcasts against `like` (B, ...)."""
    return buffer.gather(0, t.to(buffer.device, torch.long)).reshape(-1, *([1] * (like.ndim - 1)))


class NoiseSchedule(nn.Module):
    """β_t, ᾱ_t = Π(1-β_s) and the derived float32 buffers (T,), indexed by a (B,) long tensor t."""

    betas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_one_minus_alphas_cumprod: Tensor
    posterior_variance: Tensor
    posterior_log_variance_clipped: Tensor
    posterior_mean_coef1: Tensor
    posterior_mean_coef2: Tensor

    def __init__(self, timesteps: int, kind: ScheduleKind = "cosine") -> None:
        super().__init__()
        if timesteps < 2:
            raise DiffusionConfigError(
                f"model.diffusion.timesteps = {timesteps}: need at least 2 diffusion steps"
            )
        if kind == "linear":
            betas = linear_betas(timesteps)
        elif kind == "cosine":
            betas = cosine_betas(timesteps)
        else:
            raise DiffusionConfigError(
                f"model.diffusion.schedule = {kind!r}: use 'linear' or 'cosine'"
            )
        self.timesteps = timesteps
        self.kind = kind
        # Everything in float64, stored as float32 (as in lucidrains' GaussianDiffusion).
        alphas = 1 - betas
        ac = torch.cumprod(alphas, 0)
        ac_prev = torch.cat([ac.new_ones(1), ac[:-1]])
        post_var = betas * (1 - ac_prev) / (1 - ac)
        buffers = {
            "betas": betas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": ac.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - ac).sqrt(),
            "posterior_variance": post_var,
            # posterior variance is 0 at t = 0: log of the t = 1 value instead
            "posterior_log_variance_clipped": torch.cat([post_var[1:2], post_var[1:]]).log(),
            "posterior_mean_coef1": betas * ac_prev.sqrt() / (1 - ac),
            "posterior_mean_coef2": (1 - ac_prev) * alphas.sqrt() / (1 - ac),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.to(torch.float32), persistent=False)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε."""
        return (
            extract(self.sqrt_alphas_cumprod, t, x0) * x0
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def predict_x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t (inverse of q_sample)."""
        return (x_t - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t) * eps) / extract(
            self.sqrt_alphas_cumprod, t, x_t
        )

    def predict_eps_from_x0(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """ε = (x_t - √ᾱ_t x0) / √(1-ᾱ_t)."""
        return (x_t - extract(self.sqrt_alphas_cumprod, t, x_t) * x0) / extract(
            self.sqrt_one_minus_alphas_cumprod, t, x_t
        )

    def predict_v(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """v = √ᾱ_t ε - √(1-ᾱ_t) x0 (Salimans & Ho 2022)."""
        return extract(self.sqrt_alphas_cumprod, t, x0) * eps - extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * x0

    def predict_x0_from_v(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """x0 = √ᾱ_t x_t - √(1-ᾱ_t) v."""
        return extract(self.sqrt_alphas_cumprod, t, x_t) * x_t - extract(self.sqrt_one_minus_alphas_cumprod, t, x_t) * v

    def predict_eps_from_v(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """ε = √(1-ᾱ_t) x_t + √ᾱ_t v."""
        return extract(self.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t + extract(self.sqrt_alphas_cumprod, t, x_t) * v

    def snr(self, t: Tensor) -> Tensor:
        """SNR(t) = ᾱ_t / (1-ᾱ_t), shape (B,)."""
        ac = self.alphas_cumprod.gather(0, t.to(self.alphas_cumprod.device, torch.long))
        return ac / (1 - ac)

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q(x_{t-1} | x_t, x0) = N(c1_t x0 + c2_t x_t, β̃_t) → (mean, variance, log_variance)."""
        mean = (
            extract(self.posterior_mean_coef1, t, x_t) * x0
            + extract(self.posterior_mean_coef2, t, x_t) * x_t
        )
        variance = extract(self.posterior_variance, t, x_t)
        log_variance = extract(self.posterior_log_variance_clipped, t, x_t)
        return mean, variance, log_variance


def min_snr_weight(snr: Tensor, gamma: float, target: str) -> Tensor:
    """Min-SNR-γ loss weight (Hang et al. 2023) for a loss on `target`, all equal to min(SNR, γ) in x0 units:

    x0: min(SNR, γ); epsilon: min(SNR, γ)/SNR = min(1, γ/SNR); v: min(SNR, γ)/(SNR + 1).
    (‖ε̂ - ε‖² = SNR ‖x̂0 - x0‖² and ‖v̂ - v‖² = (SNR + 1) ‖x̂0 - x0‖².)
    """
    if gamma <= 0:
        raise DiffusionConfigError(f"model.diffusion.min_snr_gamma = {gamma}: must be > 0")
    if target == "x0":
        return snr.clamp(max=gamma)
    if target == "epsilon":
        return (gamma / snr).clamp(max=1.0)  # 1 at SNR = 0
    if target == "v":
        return snr.clamp(max=gamma) / (snr + 1)
    raise DiffusionConfigError(f"model.diffusion.parameterization = {target!r}: use 'x0', 'epsilon' or 'v'")
