"""DDIM / DDPM samplers: timestep mapping, determinism, update rule, clamping of known pixels."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from depthdif.diffusion import (
    NoiseSchedule,
    ddim_sample,
    ddim_sigma,
    ddim_timesteps,
    ddpm_sample,
    repeat_for_members,
    split_members,
)

SHAPE = (2, 2, 4, 4)



class SpyX0:
    """x0-prediction model: x0 = target + 0.3 tanh(x_t); records (x_t, t) of each call."""

    def __init__(self, target: Tensor, wobble: float = 0.3) -> None:
        self.target, self.wobble = target, wobble
        self.calls: list[tuple[Tensor, Tensor]] = []

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        self.calls.append((x_t.clone(), t.clone()))
        return self.target + self.wobble * torch.tanh(x_t)


def _target(seed: int = 0) -> Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def _known() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(9)
    mask = (torch.rand(SHAPE, generator=gen) < 0.4).float()
    return mask * torch.randn(SHAPE, generator=gen), mask


def test_ddim_timesteps() -> None:
    ts = ddim_timesteps(200, 25)
    assert ts.dtype == torch.long and len(ts) == 25 and int(ts[0]) == 199 and int(ts[-1]) == 0
    gaps = -ts.diff()
    assert bool((gaps > 0).all()) and set(gaps.tolist()) <= {8, 9}
    assert ddim_timesteps(10, 10).tolist() == list(range(9, -1, -1))
    assert ddim_timesteps(5, 50).tolist() == [4, 3, 2, 1, 0]  # capped at T
    assert ddim_timesteps(10, 1).tolist() == [9]
    with pytest.raises(ValueError, match="sample.steps"):
        ddim_timesteps(10, 0)


def test_model_receives_training_timesteps() -> None:
    schedule = NoiseSchedule(50)
    spy = SpyX0(_target())
    ddim_sample(spy, schedule, SHAPE, steps=6, eta=0.0, parameterization="x0",
                generator=torch.Generator().manual_seed(0))
    seen = [t.tolist() for _, t in spy.calls]
    assert seen == [[t, t] for t in ddim_timesteps(50, 6).tolist()]
    assert all(t.dtype == torch.long for _, t in spy.calls)
    spy = SpyX0(_target())
    ddpm_sample(spy, NoiseSchedule(5), SHAPE, parameterization="x0", generator=torch.Generator().manual_seed(0))
    assert [t.tolist() for _, t in spy.calls] == [[t, t] for t in (4, 3, 2, 1, 0)]


def test_ddim_eta0_is_deterministic_and_follows_the_update() -> None:
    schedule = NoiseSchedule(10, "linear")
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    runs = [
        ddim_sample(SpyX0(_target()), schedule, SHAPE, steps=4, eta=0.0, parameterization="x0", x_T=x_T,
                    generator=torch.Generator().manual_seed(s))
        for s in (0, 1)
    ]
    assert torch.equal(runs[0], runs[1])
    seeded = [ddim_sample(SpyX0(_target()), schedule, SHAPE, steps=4, eta=0.0, parameterization="x0",
                          generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(seeded[0], seeded[1])
    noisy = [ddim_sample(SpyX0(_target()), schedule, SHAPE, steps=4, eta=1.0, parameterization="x0", x_T=x_T,
                         generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    assert not torch.allclose(noisy[0], noisy[1])
    # one step T-1 → 0 by hand: x_0 = √ᾱ_0 x̂0 + √(1-ᾱ_0) ε̂, ε̂ = (x_T - √ᾱ_{T-1} x̂0)/√(1-ᾱ_{T-1})
    spy = SpyX0(_target())
    out = ddim_sample(spy, schedule, SHAPE, steps=2, eta=0.0, parameterization="x0", x_T=x_T)
    ac = schedule.alphas_cumprod.double()
    x0_hat = spy.target + 0.3 * torch.tanh(x_T)
    eps_hat = (x_T - ac[9].sqrt() * x0_hat) / (1 - ac[9]).sqrt()
    expected = ac[0].sqrt() * x0_hat + (1 - ac[0]).sqrt() * eps_hat
    torch.testing.assert_close(spy.calls[1][0], expected.float(), atol=1e-5, rtol=1e-5)
    # the last step (ᾱ_prev = 1) returns the model's x0 at t = 0
    torch.testing.assert_close(out, spy.target + 0.3 * torch.tanh(spy.calls[1][0]))


@pytest.mark.parametrize("parameterization", ["x0", "epsilon", "v"])
def test_oracle_model_recovers_a_point_mass(parameterization: str) -> None:
    """Data = one point x*: the exact x0 (ε, v) predictor makes every sampler return x*."""
    schedule = NoiseSchedule(20, "cosine")
    target = _target(3)

    def oracle(x_t: Tensor, t: Tensor) -> Tensor:
        if parameterization == "x0":
            return target
        eps = schedule.predict_eps_from_x0(x_t, t, target)
        return eps if parameterization == "epsilon" else schedule.predict_v(target, t, eps)

    gen = torch.Generator().manual_seed(0)
    for eta in (0.0, 1.0):
        out = ddim_sample(oracle, schedule, SHAPE, steps=5, eta=eta, parameterization=parameterization, generator=gen)
        torch.testing.assert_close(out, target, atol=1e-3, rtol=1e-3)
    out = ddpm_sample(oracle, schedule, SHAPE, parameterization=parameterization, generator=gen)
    torch.testing.assert_close(out, target, atol=1e-3, rtol=1e-3)


def test_ddim_sigma_matches_ddpm_posterior_at_eta_1() -> None:
    schedule = NoiseSchedule(30, "cosine")
    ac = schedule.alphas_cumprod.double()
    for t in (1, 10, 29):
        assert ddim_sigma(float(ac[t]), float(ac[t - 1]), 1.0) ** 2 == pytest.approx(
            float(schedule.posterior_variance[t]), rel=1e-4
        )
    assert ddim_sigma(float(ac[5]), float(ac[2]), 0.0) == 0.0
    assert ddim_sigma(0.5, 0.8, 0.5) == pytest.approx(0.5 * math.sqrt(0.2 / 0.5 * (1 - 0.5 / 0.8)))


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("clamp", ["overwrite", "renoise"])
def test_clamped_pixels_equal_observations(sampler: str, clamp: str) -> None:
    schedule = NoiseSchedule(8)
    known, mask = _known()
    spy = SpyX0(_target())
    kwargs = dict(known=known, known_mask=mask, clamp=clamp, generator=torch.Generator().manual_seed(2))
    if sampler == "ddim":
        out = ddim_sample(spy, schedule, SHAPE, steps=4, eta=0.5, parameterization="x0", **kwargs)  # type: ignore[arg-type]
    else:
        out = ddpm_sample(spy, schedule, SHAPE, parameterization="x0", **kwargs)  # type: ignore[arg-type]
    on = mask > 0
    assert torch.equal(out[on], known[on])
    assert not torch.allclose(out[~on], known[~on])
    # intermediate states: overwrite inserts the clean values, renoise a noised version
    x_mid = spy.calls[1][0]
    assert torch.equal(x_mid[on], known[on]) == (clamp == "overwrite")


def test_no_clamp_leaves_known_pixels_free() -> None:
    known, mask = _known()
    out = ddim_sample(SpyX0(_target()), NoiseSchedule(8), SHAPE, steps=3, eta=0.0, parameterization="x0",
                      known=known, known_mask=mask, clamp="none", generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out[mask > 0], known[mask > 0])
    with pytest.raises(ValueError, match="sample.clamp_known_pixels"):
        ddim_sample(SpyX0(_target()), NoiseSchedule(8), SHAPE, steps=3, eta=0.0, parameterization="x0",
                    known=known, known_mask=mask, clamp="always")  # type: ignore[arg-type]


def test_ddpm_tiny_t_runs_with_clip() -> None:
    out = ddpm_sample(SpyX0(3 * _target(), wobble=0.0), NoiseSchedule(3), SHAPE, parameterization="x0",
                      generator=torch.Generator().manual_seed(0), clip_x0=1.0)
    assert out.shape == SHAPE and float(out.abs().max()) <= 1.0
    torch.testing.assert_close(out, (3 * _target()).clamp(-1, 1))


def test_members_helpers() -> None:
    x = torch.arange(2 * 3).reshape(2, 3).float()
    rep = repeat_for_members(x, 4)
    assert rep.shape == (8, 3)
    assert torch.equal(rep[:4], x[:1].expand(4, 3)) and torch.equal(rep[4:], x[1:].expand(4, 3))
    grouped = split_members(rep, 4)
    assert grouped.shape == (2, 4, 3) and torch.equal(grouped[:, 2], x)
    with pytest.raises(ValueError, match="members"):
        split_members(rep, 3)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_v_output_gives_the_same_samples_as_the_equivalent_x0_output(sampler: str) -> None:
    """A v-model and an x0-model that imply the same x̂0 sample the same fields (same noise)."""
    schedule = NoiseSchedule(10, "cosine")
    spy = SpyX0(_target(4))

    def as_v(x_t: Tensor, t: Tensor) -> Tensor:
        x0 = spy(x_t, t)
        return schedule.predict_v(x0, t, schedule.predict_eps_from_x0(x_t, t, x0))

    outs = []
    for param, fn in (("x0", spy), ("v", as_v)):
        gen = torch.Generator().manual_seed(6)
        if sampler == "ddim":
            outs.append(ddim_sample(fn, schedule, SHAPE, steps=4, eta=1.0, parameterization=param, generator=gen))
        else:
            outs.append(ddpm_sample(fn, schedule, SHAPE, parameterization=param, generator=gen))
    torch.testing.assert_close(outs[1], outs[0], atol=2e-4, rtol=2e-4)
    with pytest.raises(ValueError, match="'v'"):
        ddim_sample(spy, schedule, SHAPE, steps=2, eta=0.0, parameterization="x1")
