"""NoiseSchedule against the closed-form math of Ho et al. (2020) / Nichol & Dhariwal (2021)."""

from __future__ import annotations

import math

import pytest
import torch

from depthdif.diffusion import DiffusionConfigError, NoiseSchedule
from depthdif.errors import ConfigError

BUFFERS = [
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
]



@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("timesteps", [10, 200, 1000])
def test_buffers_and_monotone_alpha_bar(kind: str, timesteps: int) -> None:
    s = NoiseSchedule(timesteps, kind)
    assert s.timesteps == timesteps
    for name in BUFFERS:
        buf = getattr(s, name)
        assert buf.shape == (timesteps,) and buf.dtype == torch.float32, name
    ac = s.alphas_cumprod.double()
    assert bool((ac[1:] < ac[:-1]).all()) and bool((ac > 0).all())
    assert float(s.betas.max()) <= 0.999 + 1e-6
    # ᾱ_t = Π_{s ≤ t} (1 - β_s), ᾱ_prev shifted by one with ᾱ_{-1} = 1
    torch.testing.assert_close(ac, torch.cumprod(1 - s.betas.double(), 0), rtol=1e-5, atol=1e-9)
    assert float(s.alphas_cumprod_prev[0]) == 1.0
    torch.testing.assert_close(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])


def test_cosine_endpoints() -> None:
    s = NoiseSchedule(200, "cosine")
    assert float(s.alphas_cumprod[0]) > 0.999
    assert float(s.alphas_cumprod[-1]) < 1e-4
    assert float(s.betas[-1]) == pytest.approx(0.999)  # clipped
    # ᾱ follows cos²((t/T + s)/(1 + s) π/2) / cos²(s/(1 + s) π/2) away from the clipped end
    t = 100
    f = lambda u: math.cos((u / 200 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert float(s.alphas_cumprod[t]) == pytest.approx(f(t + 1) / f(0), rel=1e-5)


def test_linear_is_ho_scaled() -> None:
    ho = NoiseSchedule(1000, "linear")
    assert float(ho.betas[0]) == pytest.approx(1e-4) and float(ho.betas[-1]) == pytest.approx(0.02)
    short = NoiseSchedule(100, "linear")  # scaled by 1000/T = 10
    assert float(short.betas[0]) == pytest.approx(1e-3) and float(short.betas[-1]) == pytest.approx(0.2)
    assert float(ho.alphas_cumprod[-1]) == pytest.approx(4.04e-5, rel=0.05)


def test_q_sample_statistics() -> None:
    s = NoiseSchedule(100, "cosine")
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((50_000, 1), 1.5)
    for t_value in (5, 60):
        t = torch.full((50_000,), t_value, dtype=torch.long)
        x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=gen))
        a = float(s.alphas_cumprod[t_value])
        assert float(x_t.mean()) == pytest.approx(1.5 * math.sqrt(a), abs=0.02)
        assert float(x_t.std()) == pytest.approx(math.sqrt(1 - a), rel=0.02)


def test_predictions_invert_q_sample() -> None:
    s = NoiseSchedule(200, "cosine")
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(199, 3, 4, 4, generator=gen)
    eps = torch.randn(199, 3, 4, 4, generator=gen)
    t = torch.arange(199)  # every t but the clipped last one (√ᾱ ≈ 2e-4 amplifies rounding)
    x_t = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.predict_x0_from_eps(x_t, t, eps), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.predict_eps_from_x0(x_t, t, x0), eps, atol=1e-3, rtol=1e-3)


def test_q_posterior_closed_form() -> None:
    s = NoiseSchedule(50, "linear")
    t_value = 17
    b = s.betas.double()
    ac = torch.cumprod(1 - b, 0)
    a_t, a_prev, beta = ac[t_value], ac[t_value - 1], b[t_value]
    gen = torch.Generator().manual_seed(2)
    x0, x_t = torch.randn(2, 1, 3, 3, generator=gen), torch.randn(2, 1, 3, 3, generator=gen)
    t = torch.full((2,), t_value, dtype=torch.long)
    mean, var, log_var = s.q_posterior(x0, x_t, t)
    expected_mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x_t) / (1 - a_t)
    expected_var = beta * (1 - a_prev) / (1 - a_t)
    torch.testing.assert_close(mean, expected_mean.float())
    assert var.shape == (2, 1, 1, 1) and float(var[0]) == pytest.approx(float(expected_var), rel=1e-5)
    assert float(log_var[0]) == pytest.approx(math.log(float(expected_var)), rel=1e-5)
    # marginalising x_t ~ q(x_t|x0) through the posterior gives q(x_{t-1}|x0)
    c1, c2 = s.posterior_mean_coef1.double()[t_value], s.posterior_mean_coef2.double()[t_value]
    assert float(c1 + c2 * a_t.sqrt()) == pytest.approx(float(a_prev.sqrt()), rel=1e-5)
    assert float(c2**2 * (1 - a_t) + expected_var) == pytest.approx(float(1 - a_prev), rel=1e-5)
    # t = 0: the variance is 0, its log is clipped to the t = 1 value
    assert float(s.posterior_variance[0]) == 0.0
    assert float(s.posterior_log_variance_clipped[0]) == float(s.posterior_log_variance_clipped[1])


def test_bad_schedule_raises_config_error() -> None:
    with pytest.raises(ValueError, match="model.diffusion.schedule"):
        NoiseSchedule(10, "quadratic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model.diffusion.timesteps"):
        NoiseSchedule(1)
    assert issubclass(DiffusionConfigError, ValueError)


def test_v_prediction_round_trip_and_snr() -> None:
    """v = √ᾱ ε - √(1-ᾱ) x0 (Salimans & Ho); x0 and ε come back from (x_t, v); SNR = ᾱ/(1-ᾱ)."""
    s = NoiseSchedule(50, "cosine")
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 2, 3, 3, generator=gen), torch.randn(6, 2, 3, 3, generator=gen)
    t = torch.tensor([0, 1, 10, 25, 40, 49])
    v = s.predict_v(x0, t, eps)
    a = s.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)
    x_t = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.predict_x0_from_v(x_t, t, v), x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s.predict_eps_from_v(x_t, t, v), eps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s.snr(t), (a / (1 - a)).flatten())
