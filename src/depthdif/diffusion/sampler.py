"""Reverse-process samplers (DDPM ancestral, DDIM) with optional clamping of known pixels.

`model_fn(x_t, t) -> prediction` (x0, ε or v) closes over the condition; t is the (B,) long
tensor of the real training timestep. Ensembles: repeat the condition with
`repeat_for_members` and regroup the output with `split_members`.

Every sampler is a `Plan`: a list of `Step`s x ← post(update(pre(x))) run by `run_plan`. Only
`update` calls the network; `pre` (EDM's churn) and `post` (the known pixels) act on the whole
state. The tiled sampler of `diffusion/tiled.py` runs the same steps with `update` per window of
a larger shared state (MultiDiffusion), so the sampler math lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from depthdif.diffusion.schedule import DiffusionConfigError, NoiseSchedule

ModelFn = Callable[[Tensor, Tensor], Tensor]
Clamp = Literal["none", "overwrite", "renoise"]
CLAMPS = ("none", "overwrite", "renoise")
#: a standard normal draw shaped like its argument (from the sampler's generator)
Noise = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Step:
    """One reverse step, x ← post(update(pre(x))).

    update(fn, x, noise): the network part (fn = the model or EDM denoiser); row-wise and
    translation-local, so it may run on windows of a larger state. pre(x, noise) / post(x, noise):
    whole-state parts (EDM churn; writing the known pixels), or None.
    """

    update: Callable[[ModelFn, Tensor, Noise], Tensor]
    pre: Callable[[Tensor, Noise], Tensor] | None = None
    post: Callable[[Tensor, Noise], Tensor] | None = None


@dataclass(frozen=True)
class Plan:
    """A sampler's steps and its starting state x_T ~ N(0, init_std² I)."""

    steps: tuple[Step, ...]
    init_std: float

    def initial(self, shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.init_std * _randn(shape, like, generator)


def run_plan(fn: ModelFn, plan: Plan, x: Tensor, noise: Noise) -> Tensor:
    """x_T → x_0 through every step of `plan`."""
    for step in plan.steps:
        if step.pre is not None:
            x = step.pre(x, noise)
        x = step.update(fn, x, noise)
        if step.post is not None:
            x = step.post(x, noise)
    return x


def generator_noise(generator: torch.Generator | None) -> Noise:
    """ε ~ N(0, I) shaped like its argument, drawn from `generator`."""
    return lambda like: _randn(like.shape, like, generator)


def ddim_timesteps(timesteps: int, steps: int) -> Tensor:
    """round(linspace(T-1, 0, steps)), unique, strictly descending (T values at most)."""
    if steps < 1:
        raise DiffusionConfigError(f"sample.steps = {steps}: need at least 1 sampling step")
    grid = torch.linspace(timesteps - 1, 0, min(steps, timesteps), dtype=torch.float64)
    return torch.unique(torch.floor(grid + 0.5).long()).flip(0)


def repeat_for_members(tensor: Tensor, k: int) -> Tensor:
    """(B, ...) → (B·k, ...), member-minor: row b·k + m is member m of sample b."""
    return tensor.repeat_interleave(k, dim=0)


def split_members(tensor: Tensor, k: int) -> Tensor:
    """(B·k, ...) → (B, k, ...), the inverse grouping of `repeat_for_members`."""
    if tensor.shape[0] % k:
        raise ValueError(f"batch of {tensor.shape[0]} is not a multiple of {k} members")
    return tensor.reshape(tensor.shape[0] // k, k, *tensor.shape[1:])


def _randn(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(tuple(shape), generator=generator, device=like.device, dtype=like.dtype)


def _full_t(t: int, batch: int, device: torch.device) -> Tensor:
    return torch.full((batch,), t, dtype=torch.long, device=device)


def _as_bool(mask: Tensor | None) -> Tensor | None:
    """known_mask as bool (> 0.5); the samplers convert it once instead of every step."""
    return mask if mask is None or mask.dtype == torch.bool else mask > 0.5


def check_clamp(clamp: str) -> None:
    if clamp not in CLAMPS:
        raise DiffusionConfigError(
            f"sample.clamp_known_pixels = {clamp!r}: use 'none', 'overwrite' or 'renoise'"
        )


def ddim_sigma(alpha_cumprod: float, alpha_cumprod_prev: float, eta: float) -> float:
    """σ = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1-ᾱ_t/ᾱ_prev); η = 1 between consecutive t is DDPM's β̃_t."""
    a, a_prev = alpha_cumprod, alpha_cumprod_prev
    return eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))


def clamp_known(
    x: Tensor,
    schedule: NoiseSchedule,
    t_prev: int,
    *,
    known: Tensor | None,
    known_mask: Tensor | None,
    clamp: Clamp,
    generator: torch.Generator | None = None,
    noise: Noise | None = None,
) -> Tensor:
    """Replace x_{t_prev} on A by `known` (overwrite) or q_sample(known, t_prev, ε) (renoise).

    t_prev < 0 means the final x0: both modes then insert `known` exactly. ε from `noise`
    (default: drawn from `generator`).
    """
    draw = noise or generator_noise(generator)

    def renoise(target: Tensor) -> Tensor:
        return schedule.q_sample(target, _full_t(t_prev, x.shape[0], x.device), draw(x))

    return write_known(x, known=known, known_mask=known_mask, clamp=clamp, renoise=renoise if t_prev >= 0 else None)


def write_known(
    x: Tensor,
    *,
    known: Tensor | None,
    known_mask: Tensor | None,
    clamp: Clamp,
    renoise: Callable[[Tensor], Tensor] | None,
) -> Tensor:
    """x on A ← known (overwrite) or renoise(known) (renoise; None: the final step, known exactly).

    Shared by every sampler; each formulation supplies its own forward noising of `known`.
    """
    check_clamp(clamp)
    if clamp == "none" or known is None:
        return x
    if known_mask is None:
        raise ValueError("clamping known pixels needs known_mask (the observation mask A)")
    target = known.to(x.dtype)
    if clamp == "renoise" and renoise is not None:
        target = renoise(target)
    return torch.where(_as_bool(known_mask), target, x)  # type: ignore[arg-type]


def _x0_eps(
    schedule: NoiseSchedule,
    x_t: Tensor,
    t: Tensor,
    pred: Tensor,
    parameterization: str,
    clip_x0: float | None,
) -> tuple[Tensor, Tensor]:
    """(x0, ε) from the model output; with clip_x0, x0 ∈ [-c, c] and ε recomputed from it."""
    if parameterization == "x0":
        x0 = pred
    elif parameterization == "epsilon":
        x0 = schedule.predict_x0_from_eps(x_t, t, pred)
    elif parameterization == "v":
        x0 = schedule.predict_x0_from_v(x_t, t, pred)
    else:
        raise DiffusionConfigError(
            f"model.diffusion.parameterization = {parameterization!r}: use 'x0', 'epsilon' or 'v'"
        )
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
    elif parameterization == "epsilon":
        return x0, pred
    elif parameterization == "v":  # ε from v directly: no division by √(1-ᾱ_t) near t = 0
        return x0, schedule.predict_eps_from_v(x_t, t, pred)
    return x0, schedule.predict_eps_from_x0(x_t, t, x0)


def _clamp_step(
    schedule: NoiseSchedule, t_prev: int, known: Tensor | None, known_mask: Tensor | None, clamp: Clamp,
) -> Callable[[Tensor, Noise], Tensor]:
    return lambda x, noise: clamp_known(x, schedule, t_prev, known=known, known_mask=known_mask, clamp=clamp,
                                        noise=noise)


def ddim_plan(
    schedule: NoiseSchedule,
    *,
    steps: int,
    eta: float,
    parameterization: str,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    clamp: Clamp = "none",
    clip_x0: float | None = None,
    clamp_final: bool = True,
) -> Plan:
    """DDIM over `ddim_timesteps` (see `ddim_sample`), known pixels written after each step."""
    check_clamp(clamp)
    # ᾱ on the host: reading it per step from a CUDA buffer would block on the GPU twice a step
    ac = schedule.alphas_cumprod.detach().to("cpu", torch.float64)
    known_mask = _as_bool(known_mask)
    times = ddim_timesteps(schedule.timesteps, steps).tolist()

    def update(t: int, t_prev: int) -> Callable[[ModelFn, Tensor, Noise], Tensor]:
        a, a_prev = float(ac[t]), (float(ac[t_prev]) if t_prev >= 0 else 1.0)
        sigma = ddim_sigma(a, a_prev, eta)

        def run(model_fn: ModelFn, x: Tensor, noise: Noise) -> Tensor:
            tt = _full_t(t, x.shape[0], x.device)
            x0, eps = _x0_eps(schedule, x, tt, model_fn(x, tt), parameterization, clip_x0)
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * noise(x)
            return x

        return run

    out = []
    for i, t in enumerate(times):
        t_prev = times[i + 1] if i + 1 < len(times) else -1
        last_free = t_prev < 0 and not clamp_final
        out.append(Step(update(t, t_prev), post=None if last_free else _clamp_step(schedule, t_prev, known,
                                                                                   known_mask, clamp)))
    return Plan(tuple(out), 1.0)


def ddpm_plan(
    schedule: NoiseSchedule,
    *,
    parameterization: str,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    clamp: Clamp = "none",
    clip_x0: float | None = None,
    clamp_final: bool = True,
) -> Plan:
    """Ancestral sampling over t = T-1 … 0 (see `ddpm_sample`), known pixels written after each step."""
    check_clamp(clamp)
    known_mask = _as_bool(known_mask)

    def update(t: int) -> Callable[[ModelFn, Tensor, Noise], Tensor]:
        def run(model_fn: ModelFn, x: Tensor, noise: Noise) -> Tensor:
            tt = _full_t(t, x.shape[0], x.device)
            x0, _ = _x0_eps(schedule, x, tt, model_fn(x, tt), parameterization, clip_x0)
            mean, _, log_var = schedule.q_posterior(x0, x, tt)
            return mean + (0.5 * log_var).exp() * noise(x) if t > 0 else x0

        return run

    out = [
        Step(update(t), post=None if t == 0 and not clamp_final else _clamp_step(schedule, t - 1, known,
                                                                                 known_mask, clamp))
        for t in range(schedule.timesteps - 1, -1, -1)
    ]
    return Plan(tuple(out), 1.0)


@torch.no_grad()
def ddim_sample(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    steps: int,
    eta: float,
    parameterization: str,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    clamp: Clamp = "none",
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
    clip_x0: float | None = None,
    clamp_final: bool = True,
) -> Tensor:
    """DDIM (Song et al. 2021) over `ddim_timesteps`, ᾱ_prev = 1 after the last (t = 0) step:

    x_prev = √ᾱ_prev x0 + √(1-ᾱ_prev-σ²) ε + σ z,  σ = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1-ᾱ_t/ᾱ_prev).
    clamp_final=False returns the model's own last x0 (no known pixels written into it).
    """
    plan = ddim_plan(schedule, steps=steps, eta=eta, parameterization=parameterization, known=known,
                     known_mask=known_mask, clamp=clamp, clip_x0=clip_x0, clamp_final=clamp_final)
    x = x_T.to(schedule.betas.device) if x_T is not None else plan.initial(shape, schedule.betas, generator)
    return run_plan(model_fn, plan, x, generator_noise(generator))


@torch.no_grad()
def ddpm_sample(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    parameterization: str,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    clamp: Clamp = "none",
    generator: torch.Generator | None = None,
    x_T: Tensor | None = None,
    clip_x0: float | None = None,
    clamp_final: bool = True,
) -> Tensor:
    """Ancestral sampling (Ho et al. 2020): x_{t-1} ~ q(x_{t-1} | x_t, x̂0), t = T-1 … 0 (no noise at 0).

    clamp_final=False returns the model's own last x0 (no known pixels written into it).
    """
    plan = ddpm_plan(schedule, parameterization=parameterization, known=known, known_mask=known_mask, clamp=clamp,
                     clip_x0=clip_x0, clamp_final=clamp_final)
    x = x_T.to(schedule.betas.device) if x_T is not None else plan.initial(shape, schedule.betas, generator)
    return run_plan(model_fn, plan, x, generator_noise(generator))
