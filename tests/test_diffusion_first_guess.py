"""The observation frame: batched OI first guess, anomalies, residual units, ambient leakage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from depthdif.diffusion.condition import frame_channels, observation_frame
from depthdif.diffusion.first_guess import ObservationPrior, PriorParams, eo_anomaly, fit_prior
from depthdif.diffusion.further_drop import ambient_masks
from depthdif.eval.oi import OIParams, oi


def _params(c: int = 2, nugget: float = 0.0, scale_mode: str = "constant") -> PriorParams:
    return PriorParams("matern32", (6.0,) * c, (0.5,) * c, (nugget,) * c, (0.3,) * c, 0.7, scale_mode, (0.1,) * c)


def _fields(b: int = 3, c: int = 2, h: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:h] / h
    y = np.stack([[np.sin(3 * yy + k + i) + xx * (k + 1) for k in range(c)] for i in range(b)]).astype(np.float32)
    a = rng.random((b, c, h, h)) < 0.1
    a[1, 1] = False  # a field without observations
    return torch.from_numpy(y), torch.from_numpy(a.astype(np.float32))


@pytest.mark.parametrize("nugget", [0.0, 0.05])
def test_first_guess_is_the_oi_baseline(nugget: float) -> None:
    """The batched torch OI equals the baseline's per-field scipy OI (same covariance model)."""
    y, a = _fields()
    prior = ObservationPrior(_params(nugget=nugget))
    level, guess, std = prior.interpolate(y * a, a)
    valid = np.ones(y.shape, bool)
    ref = oi(np.where(a.numpy() > 0, y.numpy(), np.nan), a.numpy() > 0, valid,
             OIParams("matern32", (6.0, 6.0), (0.5, 0.5), (nugget, nugget)), fill=[0.0, 0.0])
    assert np.abs(guess.numpy() - ref).max() < 2e-4
    # no observations: the level is 0, the guess is the level and its std the prior std
    assert float(level[1, 1]) == 0.0 and float(guess[1, 1].abs().max()) == 0.0
    assert torch.allclose(std[1, 1], torch.full_like(std[1, 1], 0.5**0.5))
    # the posterior std shrinks at the observations (to ~√(ν σ²/(σ²+ν)) for one isolated point)
    obs = a > 0.5
    assert float(std[obs].max()) < (0.05 if nugget == 0 else 0.25) and float(std[~obs].mean()) > float(std[obs].mean())


def test_untrained_residual_model_returns_the_first_guess() -> None:
    """Zero residual maps back to g exactly; the condition holds anomalies, A, g and s_g."""
    y, a = _fields()
    prior = ObservationPrior(_params())
    batch = {"x": y * a, "x_valid": a, "y": y, "y_valid": torch.ones_like(y)}
    frame = observation_frame(batch, prior, use_eo=False, use_mask_channels=True)
    assert frame.cond.shape[1] == frame_channels(2, False, True, True) == 8
    _, guess, _ = prior.interpolate(y * a, a)
    assert torch.equal(frame.to_field(torch.zeros_like(y)), guess)
    r = frame.to_residual(y)
    assert torch.allclose(frame.to_field(r), y, atol=1e-6)
    # residual units: (y - g) / ρ with the stored constant ρ
    assert torch.allclose(r, (y - guess) / 0.3, atol=1e-5)
    # anomalies: the observed channel has zero mean over the observations of each field
    anomaly = frame.cond[:, :2]
    assert float(((anomaly * a).sum((-2, -1))).abs().max()) < 1e-4


def test_pixelwise_scale_follows_the_first_guess_std() -> None:
    y, a = _fields()
    prior = ObservationPrior(_params(scale_mode="first_guess_std"))
    frame = observation_frame({"x": y * a, "x_valid": a}, prior, use_eo=False, use_mask_channels=True)
    _, _, std = prior.interpolate(y * a, a)
    assert torch.allclose(frame.scale, torch.clamp(std, min=0.1 * 0.5**0.5))
    # model.first_guess.scale_floor sets the floor (fraction of the anomaly scale √σ²)
    low = ObservationPrior(replace(_params(scale_mode="first_guess_std"), scale_floor=0.02))
    low_frame = observation_frame({"x": y * a, "x_valid": a}, low, use_eo=False, use_mask_channels=True)
    assert torch.allclose(low_frame.scale, torch.clamp(std, min=0.02 * 0.5**0.5))
    assert float((frame.scale - low_frame.scale).max()) > 0.01  # the floor binds near observations
    assert float(low_frame.scale[a > 0.5].max()) < 0.02


def test_ambient_frame_does_not_see_withheld_values() -> None:
    """Built from Ã, the frame is unchanged when withheld observations (A minus Ã) change."""
    y, a = _fields()
    gen = torch.Generator().manual_seed(0)
    a_tilde = ambient_masks(a, 0.5, 1, True, generator=gen, pattern="blocks", block_px=4)
    withheld = (a > 0.5) & (a_tilde < 0.5)
    assert bool(withheld.any())
    prior = ObservationPrior(_params())
    batch = {"x": y * a, "x_valid": a}
    changed = {"x": torch.where(withheld, y + 10.0, y) * a, "x_valid": a}
    f1 = observation_frame(batch, prior, use_eo=False, use_mask_channels=True, observed=a_tilde)
    f2 = observation_frame(changed, prior, use_eo=False, use_mask_channels=True, observed=a_tilde)
    assert torch.equal(f1.cond, f2.cond) and torch.equal(f1.offset, f2.offset)


def test_block_masks_withhold_whole_blocks() -> None:
    """Ã ⊆ A; withheld and kept observations never share a block of the shifted grid, so the
    distance from a withheld point to the nearest kept one is often several pixels."""
    h = 32
    a = torch.zeros(64, 1, h, h)
    a[:, :, ::2, ::2] = 1.0  # a regular grid of observations
    gen = torch.Generator().manual_seed(1)
    kept = ambient_masks(a, 0.5, 0, True, generator=gen, pattern="blocks", block_px=8)
    assert bool((kept <= a).all())
    withheld = (a - kept)[:, 0]
    share = float(withheld.sum() / a.sum())
    assert 0.35 < share < 0.65
    from scipy.ndimage import distance_transform_edt

    dists = []
    for i in range(64):
        k = kept[i, 0].numpy() > 0.5
        if k.any() and withheld[i].any():
            dists.append(distance_transform_edt(~k)[withheld[i].numpy() > 0.5])
    d = np.concatenate(dists)
    # per-pixel drops would put every withheld grid point within 2 px of a kept one
    pixel = ambient_masks(a, 0.5, 0, True, generator=torch.Generator().manual_seed(1), pattern="pixels")
    dp = np.concatenate([distance_transform_edt(~(pixel[i, 0].numpy() > 0.5))[((a - pixel)[i, 0] > 0.5).numpy()]
                         for i in range(64)])
    assert np.percentile(d, 75) >= 3.0 > np.percentile(dp, 75)


def test_fit_prior_from_observations_only_and_eo_anomaly() -> None:
    """Fitting on (x, A) gives a finite covariance and scales; the EO anomaly has zero ocean mean."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    y = np.stack([np.sin(yy / 5 + i) + np.cos(xx / 7 - i) for i in range(12)])[:, None].astype(np.float32)
    a = rng.random(y.shape) < 0.2
    x = np.where(a, y, 0.0).astype(np.float32)
    eo = (y + 0.1).astype(np.float32)
    land = np.zeros((12, 32, 32), bool)
    land[:, :4] = True
    params = fit_prior(x, a, a, eo, land, covariance="matern32", max_fit_patches=12, scale_mode="constant",
                       scale_floor=0.1, exact=False)
    assert params.length_scale[0] > 2 and 0 < params.residual_scale[0] < 1.5 and params.eo_scale > 0.1
    e = eo_anomaly(torch.from_numpy(eo), torch.from_numpy(land[:, None].astype(np.float32)), params.eo_scale)
    assert float(e[:, :, :4].abs().max()) == 0.0
    assert float(e[:, :, 4:].mean((-2, -1)).abs().max()) < 1e-5


def test_leave_one_out_errors_match_explicit_refits() -> None:
    """e_i = α_i / (K⁻¹)_ii equals observation minus the GP prediction from the others (level m fixed)."""
    from depthdif.eval.oi import correlation as np_correlation

    y, a = _fields(seed=3)
    prior = ObservationPrior(_params(nugget=0.01, scale_mode="patch_loo"))
    level, _, _, loo_ms, n_obs = prior.interpolate_with_loo(y * a, a)
    obs = a[0, 0].numpy() > 0.5
    pts = np.argwhere(obs).astype(float)
    vals = y[0, 0].numpy()[obs].astype(float) - float(level[0, 0, 0, 0])
    gram = 0.5 * np_correlation(np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1)), 6.0, "matern32")
    gram += (0.01 + 0.5e-6) * np.eye(len(pts))
    errors = []
    for i in range(len(pts)):
        rest = np.arange(len(pts)) != i
        pred = gram[i, rest] @ np.linalg.solve(gram[np.ix_(rest, rest)], vals[rest])
        errors.append(vals[i] - pred)
    assert int(n_obs[0, 0]) == len(pts) >= 5
    assert abs(float(loo_ms[0, 0]) - float(np.mean(np.square(errors)))) < 1e-3 * float(loo_ms[0, 0])
    # the patch factor is 1 at the train-mean error and grows with the patch's own error
    f = prior.patch_factor(torch.tensor([[0.01, 0.01], [0.04, 0.04]]), torch.tensor([[10, 10], [10, 10]]))
    assert abs(float(f[0, 0]) - 1.0) < 1e-6 and float(f[1, 0]) > 1.5


def test_cached_item_fields_give_the_same_frame() -> None:
    """The dataset's per-patch cache (item_fields, rotated with the item) equals the batched frame."""
    y, a = _fields()
    prior = ObservationPrior(_params())
    items = [prior.item_fields({"x": (y * a)[i].numpy(), "x_valid": a[i].numpy()}) for i in range(len(y))]
    batch = {"x": y * a, "x_valid": a}
    cached = {**batch, **{k: torch.stack([torch.from_numpy(it[k]) for it in items]) for k in items[0]}}
    f1 = observation_frame(batch, prior, use_eo=False, use_mask_channels=True)
    f2 = observation_frame(cached, prior, use_eo=False, use_mask_channels=True)
    # float32 s_g = √(σ² - k_*ᵀK⁻¹k_*) cancels near observations: equal to a few 1e-3 there
    assert float((f1.cond - f2.cond).abs().max()) < 5e-3 and torch.allclose(f1.offset, f2.offset, atol=1e-5)
    # OI is equivariant under rot90: the cached fields rotated with the item are the rotated item's fields
    rot = prior.item_fields({"x": torch.rot90(y * a, 1, (-2, -1))[0].numpy(),
                             "x_valid": torch.rot90(a, 1, (-2, -1))[0].numpy()})
    assert np.allclose(rot["fg"], np.rot90(items[0]["fg"], 1, (-2, -1)), atol=1e-4)


def _jump(field: torch.Tensor, observed: torch.Tensor) -> float:
    """Mean |f − mean of its 8 neighbours| at observed interior pixels."""
    kernel = torch.ones(1, 1, 3, 3) / 8.0
    kernel[0, 0, 1, 1] = 0.0
    flat = field.reshape(-1, 1, *field.shape[-2:])
    neighbours = torch.nn.functional.conv2d(flat, kernel).reshape(*field.shape[:-2], *(s - 2 for s in field.shape[-2:]))
    inner = observed[..., 1:-1, 1:-1] > 0.5
    return float((field[..., 1:-1, 1:-1] - neighbours).abs()[inner].mean())


@pytest.mark.parametrize("length_px", [None, 2.0])
def test_oi_increment_meets_the_observations_without_pasted_dots(length_px: float | None) -> None:
    """field + k_*ᵀK⁻¹(A ⊙ (x − field)): exact at the observations (zero nugget), no step next to them,
    and with a short kernel the field is unchanged far from every observation."""
    y, a = _fields(seed=3)
    prior = ObservationPrior(_params())
    field = y + 0.3  # a smooth field off its observations by 0.3 everywhere
    out = prior.increment(field, y * a, a, length_px)
    obs = a > 0.5
    assert float((out - y)[obs].abs().max()) < 2e-3
    pasted = torch.where(obs, y, field)  # what overwriting leaves
    assert _jump(pasted, a) > 0.25 and _jump(out, a) < 0.1 * _jump(pasted, a)
    # the increment solves the zero-mean OI of the misfit: its value at any pixel is k_*ᵀ K⁻¹ d
    ell = 6.0 if length_px is None else length_px
    i = 0
    pts = obs[i, 0].nonzero().double()
    d = (y - field)[i, 0][obs[i, 0]].double()
    k = lambda r: 0.5 * (1 + np.sqrt(3) * r / ell) * torch.exp(-np.sqrt(3) * r / ell)  # noqa: E731 matern32
    gram = k(torch.cdist(pts, pts)) + 1e-6 * 0.5 * torch.eye(len(pts), dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij"), -1).reshape(-1, 2)
    expected = field[i, 0].double().reshape(-1) + k(torch.cdist(grid.double(), pts)) @ torch.linalg.solve(gram, d)
    assert torch.allclose(out[i, 0].double().reshape(-1), expected, atol=2e-4)
    if length_px is not None:  # local: 3 observations in a corner leave the far side's field as it was
        corner = torch.zeros_like(a)
        corner[..., 1:4:2, 1:4:2] = 1.0
        local = prior.increment(field, y * corner, corner, length_px)
        assert torch.allclose(local[..., :, 14:], field[..., :, 14:], atol=1e-3)  # ≥ 5 lengths away
        assert float((local - field)[..., 1, 1].abs().min()) > 0.25
