"""EDM formulation (Karras et al. 2022) against its equations; min-SNR/v losses; formulation dispatch."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from depthdif.diffusion import (
    ConditioningSettings,
    DiffusionConfigError,
    DiffusionSettings,
    EDMSampling,
    EDMTraining,
    ModelSettings,
    NoiseSchedule,
    edm,
    edm_sample,
    min_snr_weight,
    objective_from_cfg,
    repeat_for_members,
    split_members,
    training_loss,
)
from depthdif.diffusion.denoiser import ConditionalUNet, SinusoidalPosEmb
from depthdif.diffusion.objectives import standard_loss_mask
from depthdif.errors import ConfigError
from depthdif.reconstruction import ModelSpec, _with_legacy_keys, reconstruct
from training_helpers import section

SHAPE = (2, 2, 4, 4)
#: EDM's Heun sampler with the schema's sample.edm (σ 0.002…80, ρ 7, no churn)
HEUN = EDMSampling.from_cfg(section("sample.edm"))


def _known() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(9)
    mask = (torch.rand(SHAPE, generator=gen) < 0.4).float()
    return mask * torch.randn(SHAPE, generator=gen), mask


def gaussian_denoiser(mu: float, s: float):  # type: ignore[no-untyped-def]
    """The exact D(x; σ) = E[x0 | x0 + σ n = x] for x0 ~ N(μ, s²) iid: (s² x + σ² μ) / (s² + σ²)."""

    def d(x: Tensor, sigma: Tensor) -> Tensor:
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) ** 2
        return (s * s * x + s2 * mu) / (s * s + s2)

    return d


# --- preconditioning ------------------------------------------------------------------------


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
def test_preconditioning_matches_table_1(sigma_data: float) -> None:
    sigma = torch.tensor([0.002, 0.5, 1.0, 2.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm.preconditioning(sigma, sigma_data)
    for i, s in enumerate(sigma.tolist()):
        total = s * s + sigma_data**2
        assert float(c_skip[i]) == pytest.approx(sigma_data**2 / total, rel=1e-12)
        assert float(c_out[i]) == pytest.approx(s * sigma_data / math.sqrt(total), rel=1e-12)
        assert float(c_in[i]) == pytest.approx(1 / math.sqrt(total), rel=1e-12)
        assert float(c_noise[i]) == pytest.approx(math.log(s) / 4, rel=1e-12)
    # at σ = σ_d: c_skip = 1/2, c_out = c_in σ_d = σ_d/√2, c_noise = ln(σ_d)/4
    c_skip, c_out, c_in, _ = edm.preconditioning(torch.tensor([sigma_data]), sigma_data)
    assert float(c_skip) == pytest.approx(0.5)
    assert float(c_out) == pytest.approx(sigma_data / math.sqrt(2))
    assert float(c_in) == pytest.approx(1 / (sigma_data * math.sqrt(2)))
    # unit variance of the network input and of its target for data of std σ_d (EDM's derivation)
    assert float(c_in**2 * (sigma_data**2 + sigma_data**2)) == pytest.approx(1.0)


def test_denoiser_is_the_identity_as_sigma_goes_to_zero_for_any_network() -> None:
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))

    def wild(x_in: Tensor, label: Tensor) -> Tensor:  # any bounded F, even a large one
        return 50 * torch.sin(3 * x_in) + torch.cos(label)[:, None, None, None]  # bounded: |F| ≤ 51

    for sigma in (1e-3, 1e-5):
        d = edm.denoise(wild, x, torch.full((2,), sigma), 1.0)
        assert float((d - x).abs().max()) < 200 * sigma
    # and σ → ∞: c_skip → 0, c_out → σ_d, D → σ_d F
    d, branch = edm.denoise_parts(lambda u, lab: torch.ones_like(u), x, torch.full((2,), 1e6), 0.5)
    torch.testing.assert_close(d, torch.full_like(x, 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(branch, d, atol=1e-6, rtol=0)


def test_loss_weight_gives_unit_weight_on_the_network_target() -> None:
    """λ(σ) ‖D - y‖² = ‖F - (y - c_skip x)/c_out‖²: λ c_out² = 1 (EDM eq. 8)."""
    gen = torch.Generator().manual_seed(1)
    sigma = torch.tensor([0.01, 0.3, 1.0, 7.0, 60.0], dtype=torch.float64)
    sigma_data = 0.8
    c_skip, c_out, _, _ = edm.preconditioning(sigma, sigma_data)
    weight = edm.loss_weight(sigma, sigma_data)
    torch.testing.assert_close(weight * c_out**2, torch.ones_like(sigma))
    y = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    x = y + sigma[:, None] * torch.randn(5, 3, generator=gen, dtype=torch.float64)
    f = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    d = c_skip[:, None] * x + c_out[:, None] * f
    torch.testing.assert_close(weight[:, None] * (d - y) ** 2, (f - (y - c_skip[:, None] * x) / c_out[:, None]) ** 2)


def test_training_sigma_is_log_normal() -> None:
    cfg = EDMTraining(sigma_data=1.0, p_mean=-1.2, p_std=1.2)
    sigma = edm.sample_sigma(200_000, cfg, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    assert sigma.shape == (200_000,) and bool((sigma > 0).all())
    assert float(sigma.log().mean()) == pytest.approx(-1.2, abs=0.01)
    assert float(sigma.log().std()) == pytest.approx(1.2, abs=0.01)


def test_time_embedding_takes_the_float_noise_label() -> None:
    """The U-Net's sinusoidal embedding gets 250 c_noise: finite, distinct for nearby σ, over σ_min…σ_max."""
    sigma = torch.tensor([0.002, 0.0021, 0.5, 1.0, 80.0])
    label = edm.noise_label(sigma)
    torch.testing.assert_close(label, 250 * sigma.log() / 4)
    assert label.dtype == torch.float32 and float(label.min()) < -380 and float(label.max()) > 270
    emb = SinusoidalPosEmb(16)(label)
    assert emb.shape == (5, 16) and bool(torch.isfinite(emb).all())
    assert float((emb[0] - emb[1]).norm()) > 1e-2  # σ 5 % apart are told apart


# --- the σ grid and the sampler ---------------------------------------------------------------


def test_sigma_steps_follow_the_rho_schedule() -> None:
    s = edm.sigma_steps(18, 0.002, 80.0, 7.0)
    assert len(s) == 19 and s[-1] == 0.0
    assert s[0] == pytest.approx(80.0) and s[-2] == pytest.approx(0.002)
    assert all(a > b for a, b in zip(s[:-1], s[1:]))
    # uniform in σ^(1/ρ)
    roots = [v ** (1 / 7) for v in s[:-1]]
    gaps = [a - b for a, b in zip(roots[:-1], roots[1:])]
    assert max(gaps) == pytest.approx(min(gaps), rel=1e-9)
    assert edm.sigma_steps(1, 0.002, 80.0, 7.0) == [80.0, 0.0]
    with pytest.raises(DiffusionConfigError, match="sample.steps"):
        edm.sigma_steps(0, 0.002, 80.0, 7.0)


@pytest.mark.parametrize("churn", [False, True])
def test_heun_with_the_exact_denoiser_samples_a_gaussian(churn: bool) -> None:
    """Data N(μ, s²): Heun on the exact denoiser returns samples with mean μ and std s.

    (Coarse grids overshoot the std: Heun's error is 6 % at 18 steps, 2 % at 32, 0.4 % at 64 for
    s = 0.5; churn at its cap γ = √2 - 1 adds about 1 % at 64 steps.)
    """
    mu, s = 0.7, 0.4
    settings = replace(HEUN, s_churn=10.0, s_min=0.05, s_max=50.0) if churn else HEUN
    out = edm_sample(gaussian_denoiser(mu, s), (4000, 1, 4, 4), steps=64 if churn else 32, settings=settings,
                     generator=torch.Generator().manual_seed(0))
    assert float(out.mean()) == pytest.approx(mu, abs=0.01)
    assert float(out.std()) == pytest.approx(s, rel=0.03)


def test_heun_is_second_order_and_the_last_step_returns_the_denoiser() -> None:
    """Doubling the steps divides Heun's std error by ~4 and Euler's by ~2; σ_N = 0 returns D itself."""
    s = 0.5
    x_T = 80.0 * torch.randn(20_000, 1, 1, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = s * float(x_T.std()) / 80.0  # the ODE maps N(0, σ_max²) to N(0, s² σ_max²/(s² + σ_max²)) ≈ this
    err = {(order, steps): abs(float(edm_sample(gaussian_denoiser(0.0, s), x_T.shape, steps=steps, settings=HEUN,
                                                x_T=x_T, second_order=order == 2).std()) / exact - 1)
           for order in (1, 2) for steps in (16, 32)}
    assert err[2, 32] < 0.02 and err[2, 16] / err[2, 32] > 3.5
    assert 1.5 < err[1, 16] / err[1, 32] < 2.5
    seen: list[float] = []

    def spy(x: Tensor, sigma: Tensor) -> Tensor:
        seen.append(float(sigma[0]))
        return torch.full_like(x, 0.25)

    out = edm_sample(spy, SHAPE, steps=3, settings=HEUN, generator=torch.Generator().manual_seed(0))
    sig = edm.sigma_steps(3, 0.002, 80.0, 7.0)
    # Heun: two evaluations per step but the last (σ_i then σ_{i+1}), float32 σ
    expected = [sig[0], sig[1], sig[1], sig[2], sig[2]]
    assert seen == pytest.approx(expected, rel=1e-6)
    assert torch.equal(out, torch.full(SHAPE, 0.25))


def test_deterministic_without_churn_and_seeded_with_it() -> None:
    x_T = 80.0 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    d = gaussian_denoiser(0.0, 1.0)
    runs = [edm_sample(d, SHAPE, steps=5, settings=HEUN, x_T=x_T, generator=torch.Generator().manual_seed(s))
            for s in (0, 1)]
    assert torch.equal(runs[0], runs[1])
    churn = replace(HEUN, s_churn=10.0)
    noisy = [edm_sample(d, SHAPE, steps=5, x_T=x_T, settings=churn, generator=torch.Generator().manual_seed(s))
             for s in (0, 1, 0)]
    assert not torch.allclose(noisy[0], noisy[1]) and torch.equal(noisy[0], noisy[2])


@pytest.mark.parametrize("clamp", ["overwrite", "renoise"])
@pytest.mark.parametrize("churn", [0.0, 5.0])
def test_clamped_pixels_equal_observations(clamp: str, churn: float) -> None:
    known, mask = _known()
    calls: list[Tensor] = []

    def spy(x: Tensor, sigma: Tensor) -> Tensor:
        calls.append(x.clone())
        return 0.3 * torch.tanh(x)

    out = edm_sample(spy, SHAPE, steps=4, settings=replace(HEUN, s_churn=churn), known=known, known_mask=mask,
                     clamp=clamp, generator=torch.Generator().manual_seed(2))  # type: ignore[arg-type]
    on = mask > 0
    assert torch.equal(out[on], known[on])
    assert not torch.allclose(out[~on], known[~on])
    assert len(calls) == 7  # Heun: 2 evaluations per step, 1 for the last
    if churn == 0:
        # step 1 starts from the clamped x_1: the known values (overwrite) or known + σ_1 ε (renoise)
        assert torch.equal(calls[2][on], known[on]) == (clamp == "overwrite")


def test_no_clamp_and_clamp_final_false_return_the_model_estimate() -> None:
    known, mask = _known()

    def d(x: Tensor, sigma: Tensor) -> Tensor:
        return 0.3 * torch.tanh(x) + 1.0

    free = edm_sample(d, SHAPE, steps=3, settings=HEUN, known=known, known_mask=mask, clamp="none",
                      generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(free[mask > 0], known[mask > 0])
    own = edm_sample(d, SHAPE, steps=3, settings=HEUN, known=known, known_mask=mask, clamp="renoise",
                     clamp_final=False, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(own[mask > 0], known[mask > 0])
    with pytest.raises(ValueError, match="sample.clamp_known_pixels"):
        edm_sample(d, SHAPE, steps=2, settings=HEUN, known=known, known_mask=mask, clamp="always")  # type: ignore[arg-type]


def test_members_are_batched_and_distinct() -> None:
    """Member-minor rows: each member starts from its own noise, so a Gaussian prior gives distinct members."""
    cond = torch.arange(3.0)
    x_T = 80.0 * torch.randn(3 * 4, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    mu = repeat_for_members(cond, 4).reshape(-1, 1, 1, 1)

    def d(x: Tensor, sigma: Tensor) -> Tensor:
        s2 = sigma.reshape(-1, 1, 1, 1) ** 2
        return (x + s2 * mu) / (1 + s2)

    out = split_members(edm_sample(d, x_T.shape, steps=12, settings=HEUN, x_T=x_T), 4)
    assert out.shape == (3, 4, 1, 2, 2)
    assert float(out.std(1).mean()) > 0.3  # members differ (prior std 1)
    for b in range(3):  # each patch's members sit around its own mean
        assert abs(float(out[b].mean()) - b) < 1.5


# --- config ---------------------------------------------------------------------------------


def test_settings_from_the_schema_sections_missing_keys_and_errors() -> None:
    """The typed settings have no defaults: they take the schema's, and a missing key is an error naming it."""
    assert DiffusionSettings.from_cfg(section("model.diffusion")) == DiffusionSettings(
        "ddpm", 200, "cosine", "x0", "uniform", 5.0, EDMTraining(1.0, -1.2, 1.2))
    full = DiffusionSettings.from_cfg(section("model.diffusion", formulation="edm", edm={"sigma_data": 0.5}))
    assert full.formulation == "edm" and full.edm.sigma_data == 0.5 and full.edm.p_std == 1.2
    assert HEUN == EDMSampling(0.002, 80.0, 7.0, 0.0, 0.0, None, 1.0)
    assert EDMSampling.from_cfg(section("sample.edm", s_max=50)).s_max == 50.0
    for bad, key in (({"formulation": "vp"}, "formulation"), ({"loss_weighting": "snr"}, "loss_weighting"),
                     ({"min_snr_gamma": 0}, "min_snr_gamma"), ({"edm": {"sigma_data": 0}}, "sigma_data")):
        with pytest.raises(DiffusionConfigError, match=key):
            DiffusionSettings.from_cfg(section("model.diffusion", **bad))
    with pytest.raises(DiffusionConfigError, match="sigma_min"):
        EDMSampling.from_cfg(section("sample.edm", sigma_min=100.0))
    incomplete = section("model")
    del incomplete["diffusion"]["edm"]["p_mean"]
    with pytest.raises(ConfigError, match=r"config key 'model\.diffusion\.edm\.p_mean' is missing"):
        ModelSettings.from_cfg(incomplete)
    with pytest.raises(ConfigError, match=r"'sample\.edm\.s_max' is missing"):
        EDMSampling.from_cfg({k: v for k, v in section("sample.edm").items() if k != "s_max"})


# --- v-prediction and min-SNR ---------------------------------------------------------------


def test_min_snr_weights_at_known_snr() -> None:
    snr = torch.tensor([0.0, 0.5, 5.0, 20.0], dtype=torch.float64)
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "x0"), torch.tensor([0.0, 0.5, 5.0, 5.0], dtype=torch.float64))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "epsilon"),
                               torch.tensor([1.0, 1.0, 1.0, 0.25], dtype=torch.float64))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "v"),
                               torch.tensor([0.0, 0.5 / 1.5, 5 / 6, 5 / 21], dtype=torch.float64))
    # all three are min(SNR, γ) in x0 units: ‖ε̂-ε‖² = SNR ‖x̂0-x0‖², ‖v̂-v‖² = (SNR+1) ‖x̂0-x0‖²
    s = snr[1:]
    torch.testing.assert_close(min_snr_weight(s, 5.0, "epsilon") * s, min_snr_weight(s, 5.0, "x0"))
    torch.testing.assert_close(min_snr_weight(s, 5.0, "v") * (s + 1), min_snr_weight(s, 5.0, "x0"))


class _Linear(nn.Module):
    """A tiny network with the denoiser's signature f(x_t, t, cond, coords)."""

    def __init__(self, channels: int, cond_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels + cond_channels, channels, 1)
        self.seen: list[tuple[Tensor, Tensor]] = []

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
        self.seen.append((x_t.detach().clone(), t.detach().clone()))
        return self.conv(torch.cat([x_t, cond], 1)) + 1e-3 * t.float()[:, None, None, None]


def _batch(seed: int = 0, b: int = 3, c: int = 2, hw: int = 8) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(b, c, hw, hw, generator=gen)
    y_valid = torch.ones_like(y)
    y_valid[:, 1, :2] = 0
    y = y * y_valid
    x_valid = (torch.rand(b, 1, hw, hw, generator=gen) < 0.3).float().expand(b, c, hw, hw) * y_valid
    return {"y": y, "y_valid": y_valid, "x": x_valid * y, "x_valid": x_valid.contiguous()}


OBJ = {
    "standard": section("objectives.standard"),
    "ambient": section("objectives.ambient", further_drop_prob=0.3, min_kept_observed_pixels=1,
                       mask_noisy_branch=True, further_drop_pattern="pixels"),
}
NO_EO = ConditioningSettings(eo=False, mask_channels=True)
SCHEMA_DDPM = section("model.diffusion", timesteps=20)


def _loss(net: nn.Module, objective: str, parameterization: str = "x0", diffusion_cfg: dict | None = None,
          seed: int = 0) -> Tensor:
    cfg = {**(diffusion_cfg or SCHEMA_DDPM), "parameterization": parameterization}
    loss, _ = training_loss(
        net, NoiseSchedule(20), _batch(), objective=objective_from_cfg(objective, OBJ[objective]),
        diffusion=DiffusionSettings.from_cfg(cfg), conditioning=NO_EO, generator=torch.Generator().manual_seed(seed),
    )
    return loss


@pytest.mark.parametrize("objective", ["standard", "ambient"])
@pytest.mark.parametrize("parameterization", ["x0", "epsilon"])
def test_checkpoints_without_the_formulation_keys_are_the_schema_ddpm(objective: str, parameterization: str) -> None:
    """A model_cfg stored before the formulation keys existed reads as the schema's DDPM with a uniform
    weight (`LEGACY_MODEL_KEYS`), with bit-identical losses."""
    torch.manual_seed(0)
    net = _Linear(2, 4)
    obj = objective_from_cfg(objective, {**OBJ[objective], "require_x0_parameterization": False})
    schema = {**SCHEMA_DDPM, "parameterization": parameterization}
    stored = {k: schema[k] for k in ("timesteps", "schedule", "parameterization")}
    legacy = ModelSettings.from_cfg(_with_legacy_keys({**section("model"), "diffusion": stored}))
    assert legacy.diffusion == DiffusionSettings.from_cfg(schema)
    values = []
    for settings in (legacy.diffusion, DiffusionSettings.from_cfg(schema)):
        loss, _ = training_loss(
            net, NoiseSchedule(20), _batch(), objective=obj, diffusion=settings, conditioning=NO_EO,
            generator=torch.Generator().manual_seed(3),
        )
        values.append(loss)
    assert torch.equal(values[0], values[1])


@pytest.mark.parametrize("parameterization", ["x0", "epsilon", "v"])
def test_min_snr_standard_loss_by_hand(parameterization: str) -> None:
    torch.manual_seed(0)
    net = _Linear(2, 4)
    schedule = NoiseSchedule(20)
    cfg = {**SCHEMA_DDPM, "parameterization": parameterization, "loss_weighting": "min_snr", "min_snr_gamma": 0.5}
    got = _loss(net, "standard", parameterization, cfg, seed=4)
    # by hand with the same draws: t, ε, then f(x_t, t, cond)
    batch = _batch()
    gen = torch.Generator().manual_seed(4)
    r = batch["y"] * batch["y_valid"]  # no prior: global units
    t = torch.randint(0, 20, (3,), generator=gen)
    eps = torch.randn(r.shape, generator=gen)
    x_t = schedule.q_sample(r, t, eps)
    pred = net(x_t, t, torch.cat([batch["x"], batch["x_valid"]], 1))
    ac = schedule.alphas_cumprod[t].double()
    snr = ac / (1 - ac)
    target = {"x0": r, "epsilon": eps, "v": ac.sqrt().float()[:, None, None, None] * eps
              - (1 - ac).sqrt().float()[:, None, None, None] * r}[parameterization]
    w = {"x0": snr.clamp(max=0.5), "epsilon": (0.5 / snr).clamp(max=1.0),
         "v": snr.clamp(max=0.5) / (snr + 1)}[parameterization].float()[:, None, None, None]
    mask = standard_loss_mask(batch["y_valid"], batch["x_valid"], "valid")
    expected = (w * mask * (pred - target) ** 2).sum() / mask.sum()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    uniform = _loss(net, "standard", parameterization, {**cfg, "loss_weighting": "uniform"}, seed=4)
    assert not torch.allclose(got, uniform)


def test_edm_standard_loss_by_hand() -> None:
    torch.manual_seed(0)
    net = _Linear(2, 4)
    cfg = {**SCHEMA_DDPM, "formulation": "edm", "edm": {"sigma_data": 0.7, "p_mean": -0.5, "p_std": 1.0}}
    got = _loss(net, "standard", "x0", cfg, seed=5)
    batch = _batch()
    gen = torch.Generator().manual_seed(5)
    r = batch["y"] * batch["y_valid"]
    sigma = (torch.randn(3, generator=gen) * 1.0 - 0.5).exp()
    x = r + sigma[:, None, None, None] * torch.randn(r.shape, generator=gen)
    c_skip, c_out, c_in, c_noise = (c[:, None, None, None] for c in edm.preconditioning(sigma, 0.7))
    f = net(c_in * x, 250 * c_noise.flatten(), torch.cat([batch["x"], batch["x_valid"]], 1))
    d = c_skip * x + c_out * f
    lam = edm.loss_weight(sigma, 0.7)[:, None, None, None]
    mask = batch["y_valid"]
    expected = (lam * mask * (d - r) ** 2).sum() / mask.sum()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the network received c_in x and the float label 250 c_noise
    x_seen, t_seen = net.seen[0]
    torch.testing.assert_close(x_seen, c_in * x)
    assert t_seen.dtype == torch.float32


def test_edm_ambient_masks_the_noisy_branch_and_scores_on_a() -> None:
    net = _Linear(2, 4)
    cfg = {**SCHEMA_DDPM, "formulation": "edm", "parameterization": "epsilon"}  # ignored under EDM
    loss = _loss(net, "ambient", "epsilon", cfg)
    assert torch.isfinite(loss)
    x_seen, _ = net.seen[0]
    a = _batch()["x_valid"]
    assert float(x_seen[a < 0.5].abs().max()) == 0.0  # zero off Ã ⊆ A
    assert float(x_seen[a > 0.5].abs().max()) > 0.0


def test_v_parameterization_trains_under_ambient() -> None:
    net = _Linear(2, 4)
    cfg = {**SCHEMA_DDPM, "parameterization": "v", "loss_weighting": "min_snr"}
    assert torch.isfinite(_loss(net, "ambient", "v", cfg))
    with pytest.raises(DiffusionConfigError, match="parameterization"):
        _loss(net, "standard", "eps", cfg)


# --- reconstruct with an EDM model ----------------------------------------------------------


def _spec(formulation: str, objective: str = "standard", mask_noisy: bool = False, dihedral: bool = True) -> ModelSpec:
    objective_cfg = section(f"objectives.{objective}")
    if objective == "ambient":
        objective_cfg["mask_noisy_branch"] = mask_noisy
    model = section("model", diffusion={**SCHEMA_DDPM, "formulation": formulation},
                    conditioning={"eo": False, "mask_channels": True})
    return ModelSpec(objective=objective_from_cfg(objective, objective_cfg), model=ModelSettings.from_cfg(model),
                     channels=2, cond_channels=4, prior=None, dihedral=dihedral)


#: reconstruct's sampler arguments besides steps, clamp and members (DDIM η 0; EDM: Heun)
SAMPLING = dict(sampler="ddim", eta=0.0, edm_sampling=HEUN, prior=None, clamp_final=True)


@pytest.mark.parametrize("clamp", ["none", "overwrite", "renoise"])
def test_reconstruct_edm_members_and_known_pixels(clamp: str) -> None:
    torch.manual_seed(0)
    net = ConditionalUNet(2, 4, 2, dim=8, dim_mults=(1, 2)).eval()
    batch = _batch(hw=8)
    kwargs = {**SAMPLING, "steps": 3, "clamp": clamp, "members": 3, "edm_sampling": replace(HEUN, s_churn=2.0)}
    out = reconstruct(net, NoiseSchedule(20), batch, _spec("edm"), generator=torch.Generator().manual_seed(0),
                      **kwargs)  # type: ignore[arg-type]
    again = reconstruct(net, NoiseSchedule(20), batch, _spec("edm"), generator=torch.Generator().manual_seed(0),
                        **kwargs)  # type: ignore[arg-type]
    assert out.shape == (3, 3, 2, 8, 8) and torch.equal(out, again)
    assert float(out.std(1).mean()) > 0  # distinct members
    on = (batch["x_valid"] > 0.5)[:, None].expand_as(out)
    target = batch["x"][:, None].expand_as(out)
    assert torch.equal(out[on], target[on]) == (clamp != "none")


def test_reconstruct_edm_ambient_masks_the_network_input() -> None:
    seen: list[Tensor] = []

    class Spy(nn.Module):
        def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
            seen.append(x_t.clone())
            return torch.zeros_like(x_t)

    batch = _batch(hw=8)
    spec = _spec("edm", "ambient", mask_noisy=True, dihedral=False)
    reconstruct(Spy(), NoiseSchedule(20), batch, spec, steps=2, members=2, clamp="none",
                generator=torch.Generator().manual_seed(0), **SAMPLING)  # type: ignore[arg-type]
    known = repeat_for_members(batch["x_valid"], 2)
    assert all(float(x[known < 0.5].abs().max()) == 0.0 for x in seen)


# --- end to end: train → model.ckpt → samples netCDF -------------------------------------------


@pytest.mark.parametrize("objective, diffusion", [
    ("standard", {"formulation": "edm", "edm": {"sigma_data": 1.0, "p_mean": -1.2, "p_std": 1.2}}),
    ("ambient", {"formulation": "ddpm", "parameterization": "v", "loss_weighting": "min_snr", "min_snr_gamma": 5.0}),
])
def test_new_formulations_train_and_sample(tmp_path, objective: str, diffusion: dict) -> None:  # type: ignore[no-untyped-def]
    from depthdif.inference import predict
    from depthdif.samples import open_samples
    from depthdif.training import train
    from training_helpers import OBJECTIVES, SAMPLE, model_cfg, splits, train_cfg

    torch.set_num_threads(1)
    shards = splits(tmp_path)
    model = model_cfg()
    model["diffusion"].update(diffusion)
    objective_cfg = dict(OBJECTIVES[objective])
    if objective == "ambient":
        objective_cfg["mask_noisy_branch"] = True
    train(objective, model, objective_cfg, train_cfg(max_steps=2, val_every_n_steps=2), shards["train"],
          shards["val"], tmp_path / "out", tmp_path / "state")
    sample = {**SAMPLE, "members": 2, "edm": {**SAMPLE["edm"], "s_churn": 1.0}}
    predict(tmp_path / "out" / "model.ckpt", shards["test"], sample, method=objective, scenario="tiny",
            out_nc=tmp_path / "s.nc", device="cpu")
    ds = open_samples(tmp_path / "s.nc")
    edm_model = diffusion["formulation"] == "edm"
    assert (ds.attrs["sampler"], ds.attrs["steps"]) == ("edm_heun" if edm_model else "ddim", 3)
    members, valid = ds["thetao_members"].values, ds["valid"].values.astype(bool)
    assert members.shape[1] == 2 and np.isfinite(members.transpose(1, 0, 2, 3, 4)[:, valid]).all()
    observed = ds["observed"].values.astype(bool)
    assert float(abs(ds["thetao_pred"].values - ds["thetao_true"].values)[observed].max()) < 1e-4
