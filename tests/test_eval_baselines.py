"""IDW, OI and oi_eo baselines: exactness, a hand-computed IDW value, OI fit, OI vs IDW, OI's Gaussian
posterior std (by hand and calibrated on GP draws), the EO regression, run_baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from depthdif.config import load_config
from depthdif.errors import ConfigError
from depthdif.eval import metrics
from depthdif.eval.baselines import idw, run_baseline
from depthdif.eval.oi import EORegression, OIParams, correlation, fit_eo_regression, fit_oi, oi, oi_eo, oi_posterior
from depthdif.eval.scoring import score_file
from depthdif.samples import PREDICTIVE_ATTR, open_samples
from depthdif.shards import read_manifest
from shard_factory import make_shards

SMOOTH_SIGMA = 3.0  # gaussian_filter sigma -> Gaussian covariance with length sqrt(2) * sigma


def smooth_fields(n: int, channels: int, size: int, seed: int) -> np.ndarray:
    """GP-like fields: Gaussian-filtered white noise scaled to unit std, offset per channel."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, channels, size, size))
    pad = int(4 * SMOOTH_SIGMA)
    for i in range(n):
        for k in range(channels):
            f = ndimage.gaussian_filter(rng.normal(size=(size + 2 * pad,) * 2), SMOOTH_SIGMA)[pad:-pad, pad:-pad]
            out[i, k] = 15.0 - 3.0 * k + f / f.std()
    return out


def sparse_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth = smooth_fields(4, 2, 24, seed)
    valid = np.ones(truth.shape, bool)
    valid[:, 1, :4, :6] = False  # deeper level loses a corner
    observed = (np.random.default_rng(seed + 100).random(truth.shape) < 0.1) & valid
    return truth, observed, valid


def test_idw_hand_value_and_exact_at_observations() -> None:
    values = np.array([0.0, np.nan, np.nan, 3.0]).reshape(1, 1, 1, 4)
    observed = np.isfinite(values)
    pred = idw(values, observed, np.ones_like(observed), power=2.0, neighbours=16)
    # x=1: weights 1/1^2 and 1/2^2 -> (0 + 3/4) / (5/4) = 0.6; x=2 symmetric -> 2.4
    np.testing.assert_allclose(pred.ravel(), [0.0, 0.6, 2.4, 3.0], rtol=1e-6)
    # power 1: x=1 -> (3/2) / (3/2) = 1.0
    pred = idw(values, observed, np.ones_like(observed), power=1.0, neighbours=16)
    np.testing.assert_allclose(pred.ravel()[1], 1.0, rtol=1e-6)


def test_idw_is_exact_bounded_and_nan_off_the_valid_pixels() -> None:
    truth, observed, valid = sparse_case()
    pred = idw(np.where(observed, truth, np.nan), observed, valid, power=2.0, neighbours=8)
    np.testing.assert_allclose(pred[observed], truth[observed], rtol=1e-6)
    assert np.isnan(pred[~valid]).all() and np.isfinite(pred[valid]).all()
    for i in range(truth.shape[0]):  # a convex combination stays within the observed range
        obs = truth[i, 0][observed[i, 0]]
        assert obs.min() - 1e-5 <= pred[i, 0].min() and pred[i, 0].max() <= obs.max() + 1e-5


def test_a_field_without_observations_gets_the_fill_value() -> None:
    truth, observed, valid = sparse_case()
    observed[1, 1] = False
    pred = idw(np.where(observed, truth, np.nan), observed, valid, power=2.0, neighbours=16, fill=[20.0, 7.5])
    np.testing.assert_allclose(pred[1, 1][valid[1, 1]], 7.5)


def test_fit_oi_recovers_the_length_scale_of_a_gaussian_field() -> None:
    train = smooth_fields(12, 1, 32, seed=3)
    params = fit_oi(train, np.ones(train.shape, bool), covariance="gaussian", max_fit_patches=12)
    assert params.length_scale[0] == pytest.approx(np.sqrt(2) * SMOOTH_SIGMA, rel=0.15)
    assert params.nugget[0] < 0.01 * params.variance[0]  # smooth field: (almost) no nugget


def test_oi_exact_with_zero_nugget_close_with_a_nugget() -> None:
    truth, observed, valid = sparse_case()
    obs = np.where(observed, truth, np.nan)
    exact = OIParams("gaussian", (4.0, 4.0), (1.0, 1.0), (0.0, 0.0))
    np.testing.assert_allclose(oi(obs, observed, valid, exact)[observed], truth[observed], atol=1e-3)
    smoother = OIParams("matern32", (4.0, 4.0), (1.0, 1.0), (0.05, 0.05))
    pred = oi(obs, observed, valid, smoother)
    gap = np.abs(pred - truth)[observed]
    assert 1e-4 < gap.max() < 0.3  # pulled towards the mean, but close
    assert np.isnan(pred[~valid]).all()


def test_oi_beats_idw_on_a_smooth_gp_like_field() -> None:
    truth, observed, valid = sparse_case(seed=5)
    train = smooth_fields(8, 2, 24, seed=6)
    params = fit_oi(train, np.ones(train.shape, bool), covariance="gaussian", max_fit_patches=8)
    obs = np.where(observed, truth, np.nan)
    hidden = metrics.hidden_mask(observed, valid)
    rmse_oi = metrics.rmse(oi(obs, observed, valid, params), truth, hidden)
    rmse_idw = metrics.rmse(idw(obs, observed, valid, power=2.0, neighbours=16), truth, hidden)
    assert rmse_oi < 0.6 * rmse_idw


def test_oi_params_round_trip_and_reject_unknown_covariance() -> None:
    params = OIParams("matern32", (3.0,), (2.0,), (0.1,))
    assert OIParams.from_dict(params.to_dict()) == params
    with pytest.raises(ConfigError, match="evaluate.oi.covariance"):
        OIParams("cubic", (3.0,), (2.0,), (0.1,))


def test_oi_posterior_std_by_hand_with_one_observation() -> None:
    """One observation at x=0 of a 1x5 field: var_post(x) = v - v^2 rho(x)^2 / (v + nugget) + nugget."""
    values = np.array([2.0, np.nan, np.nan, np.nan, np.nan]).reshape(1, 1, 1, 5)
    observed = np.isfinite(values)
    var, nug, ell = 1.5, 0.2, 2.0
    params = OIParams("gaussian", (ell,), (var,), (nug,))
    mean, std = oi_posterior(values, observed, np.ones_like(observed), params)
    r = np.arange(5.0)
    k = var * correlation(r, ell, "gaussian")
    diag = var + nug + 1e-8 * var
    np.testing.assert_allclose(std.ravel(), np.sqrt(var - k**2 / diag + nug), rtol=1e-5)
    np.testing.assert_allclose(mean.ravel(), 2.0, rtol=1e-6)  # one value: the mean is the observation
    np.testing.assert_allclose(oi(values, observed, np.ones_like(observed), params), mean)
    assert std[0, 0, 0, 0] < std[0, 0, 0, -1] <= np.sqrt(var + nug)  # grows away from the observation


def test_oi_posterior_std_without_nugget_vanishes_at_observations_and_fills_empty_fields() -> None:
    truth, observed, valid = sparse_case()
    observed[2, 1] = False  # a field without observations
    params = OIParams("matern32", (4.0, 4.0), (1.0, 1.0), (0.0, 0.0))
    mean, std = oi_posterior(np.where(observed, truth, np.nan), observed, valid, params, fill=[20.0, 7.5],
                             fill_std=[3.0, 2.5])
    assert std.dtype == np.float32 and np.isnan(std[~valid]).all() and (std[valid] >= 0).all()
    assert std[observed].max() < 1e-3  # exact interpolation: no uncertainty at the observations
    hidden = valid & ~observed
    hidden[2, 1] = False
    assert 0.05 < std[hidden].mean() < 1.0
    np.testing.assert_allclose(mean[2, 1][valid[2, 1]], 7.5)
    np.testing.assert_allclose(std[2, 1][valid[2, 1]], 2.5)


def gp_draws(n: int, size: int, params: OIParams, seed: int) -> np.ndarray:
    """n exact draws (n,1,size,size) of the zero-mean GP with `params` (covariance + nugget as white noise)."""
    yy, xx = np.mgrid[0:size, 0:size]
    pts = np.column_stack([yy.ravel(), xx.ravel()]).astype(float)
    dist = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
    cov = params.variance[0] * correlation(dist, params.length_scale[0], params.covariance)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(len(pts)))
    rng = np.random.default_rng(seed)
    smooth = (chol @ rng.normal(size=(len(pts), n))).T.reshape(n, 1, size, size)
    return smooth + np.sqrt(params.nugget[0]) * rng.normal(size=smooth.shape)


def test_oi_posterior_is_calibrated_on_draws_of_its_own_gp() -> None:
    """Truth drawn from the GP OI assumes: spread/skill ~ 1, a flat PIT histogram, Gaussian CRPS < MAE."""
    params = OIParams("matern32", (3.0,), (1.0,), (0.05,))
    truth = gp_draws(60, 14, params, seed=11)
    valid = np.ones(truth.shape, bool)
    observed = np.random.default_rng(12).random(truth.shape) < 0.25
    mean, std = oi_posterior(np.where(observed, truth, np.nan), observed, valid, params)
    hidden = valid & ~observed
    ratio = metrics.spread_skill_gaussian(mean, std, truth, hidden)
    assert ratio == pytest.approx(1.0, abs=0.08)
    counts = metrics.pit_histogram(mean, std, truth, hidden, 9)
    np.testing.assert_allclose(counts / counts.sum(), 1 / 9, atol=0.025)
    assert metrics.crps_gaussian(mean, std, truth, hidden) < 0.85 * metrics.mae(mean, truth, hidden)


def test_fit_eo_regression_recovers_the_per_level_line() -> None:
    rng = np.random.default_rng(0)
    eo = rng.normal(18.0, 2.0, (20, 1, 8, 8))
    eo[:, :, 0, 0] = np.nan  # land in the EO
    y = np.concatenate([3.0 + 0.9 * eo, 10.0 + 0.2 * eo], axis=1) + rng.normal(0, 0.1, (20, 2, 8, 8))
    valid = np.isfinite(y)
    valid[:, 1, :, :2] = False  # the deep level has fewer pixels
    y[~valid] = np.nan
    reg = fit_eo_regression(y, eo, valid)
    assert reg.intercept == pytest.approx((3.0, 10.0), abs=0.1) and reg.slope == pytest.approx((0.9, 0.2), abs=0.01)
    assert reg.residual_std == pytest.approx((0.1, 0.1), abs=0.01)
    field = reg.field(eo)
    assert field.shape == (20, 2, 8, 8) and np.isfinite(field).all()  # NaN EO -> the mean EO
    np.testing.assert_allclose(field[:, 1, 0, 0], reg.intercept[1] + reg.slope[1] * reg.eo_mean)
    # a constant EO carries no information: slope 0, intercept = the level mean
    flat = fit_eo_regression(y, np.ones_like(eo), valid)
    assert flat.slope == (0.0, 0.0) and flat.intercept[0] == pytest.approx(np.nanmean(y[:, 0]))


def test_oi_eo_uses_the_eo_where_oi_cannot() -> None:
    """Truth = a + b * eo + a small smooth residual: the regression carries the fine structure OI misses."""
    rng = np.random.default_rng(4)
    eo = 15.0 + 2.0 * rng.normal(size=(6, 1, 24, 24))  # white: no spatial correlation for OI to use
    residual = 0.3 * smooth_fields(6, 2, 24, seed=8) - 0.3 * smooth_fields(6, 2, 24, seed=8).mean()
    truth = np.concatenate([1.0 + 1.0 * eo, 5.0 + 0.5 * eo], axis=1) + residual
    valid = np.ones(truth.shape, bool)
    observed = (rng.random(truth.shape) < 0.1) & valid
    reg = fit_eo_regression(truth, eo, valid)
    params = fit_oi(truth - reg.field(eo), valid, covariance="gaussian", max_fit_patches=6)
    obs = np.where(observed, truth, np.nan)
    pred, std = oi_eo(obs, observed, valid, eo, reg, params)
    hidden = valid & ~observed
    plain = oi(obs, observed, valid, fit_oi(truth, valid, covariance="gaussian", max_fit_patches=6))
    assert metrics.rmse(pred, truth, hidden) < 0.3 * metrics.rmse(plain, truth, hidden)
    assert np.isfinite(std[valid]).all() and (std[valid] > 0).all()
    # no observation in a field: the regression field and its residual std
    observed[0, 0] = False
    pred, std = oi_eo(np.where(observed, truth, np.nan), observed, valid, eo, reg, params)
    np.testing.assert_allclose(pred[0, 0], reg.field(eo)[0, 0], rtol=1e-6)
    np.testing.assert_allclose(std[0, 0], reg.residual_std[0], rtol=1e-6)
    assert isinstance(reg, EORegression)


@pytest.mark.parametrize(("method", "cfg"), [
    ("idw", {"power": 2.0, "neighbours": 16}),
    ("oi", {"covariance": "matern32", "max_fit_patches": 4}),
    ("oi_eo", {"covariance": "matern32", "max_fit_patches": 4}),
])
def test_run_baseline_writes_a_valid_samples_netcdf(tmp_path: Path, method: str, cfg: dict) -> None:
    test_dir = make_shards(tmp_path, n=4, channels=2, size=16, split="test", seed=0)
    train_dir = make_shards(tmp_path, n=6, channels=2, size=16, split="train", seed=1)
    out = tmp_path / "samples" / f"{method}.nc"
    result = run_baseline(method, test_dir, train_dir, cfg, scenario="tiny", out_nc=out)
    assert result["n_patches"] == 4 and result["method"] == method
    ds = open_samples(out)
    assert ds.attrs["method"] == method and ds.attrs["scenario"] == "tiny"
    assert ds.attrs["config_hash"] == result["config_hash"] and int(ds.attrs["n_members"]) == 1
    assert "thetao_members" not in ds
    assert dict(ds.sizes) == {"patch": 4, "depth": 2, "y": 16, "x": 16}
    pred, truth = ds["thetao_pred"].values, ds["thetao_true"].values
    valid, observed = ds["valid"].values.astype(bool), ds["observed"].values.astype(bool)
    assert np.isfinite(pred[valid]).all() and np.isnan(pred[~valid]).all()
    std = ds["thetao_std"].values
    if method == "idw":
        np.testing.assert_array_equal(std[valid], 0.0)
        assert PREDICTIVE_ATTR not in ds.attrs
    else:  # the Gaussian predictive std, positive (it includes the nugget) and marked as such
        assert ds.attrs[PREDICTIVE_ATTR] == "gaussian" and "Gaussian" in ds["thetao_std"].attrs["long_name"]
        assert np.isfinite(std[valid]).all() and (std[valid] > 0).all()
        assert std[valid & ~observed].mean() > std[observed].mean()
    # truth is the de-normalised shard target in degC (factory: ~18 degC surface, ~12 degC deep)
    manifest = read_manifest(test_dir)
    assert abs(np.nanmean(truth[:, 0]) - manifest["stats"]["mean"][0]) < 3.0
    assert 14.0 < np.nanmean(truth[:, 0]) < 22.0 and np.nanmean(truth[:, 1]) < np.nanmean(truth[:, 0])
    tol = 1e-4 if method == "idw" else 0.5  # OI with a fitted nugget is a smoother
    np.testing.assert_allclose(pred[observed], truth[observed], atol=tol)
    hidden = valid & ~observed
    spread = np.nanstd(truth[:, 0])
    assert metrics.rmse(pred, truth, hidden) < spread  # better than nothing
    if method != "idw":
        assert set(result["params"]) == {"covariance", "length_scale", "variance", "nugget"}
        scores, calibration = score_file(out, scenario="tiny", method=method, rank_members=4)
        assert (scores["forecast"] == "gaussian").all() and scores["spread_skill"].notna().all()
        assert (scores["crps"] < scores["mae"]).all()
        assert len(calibration[(calibration["table"] == "rank") & (calibration["depth"] == "all")]) == 5
    if method == "oi_eo":
        assert set(result["regression"]) == {"intercept", "slope", "residual_std", "eo_mean"}
        assert 0.5 < result["regression"]["slope"][0] < 1.5  # the factory's EO is the smoothed surface


def test_oi_eo_beats_oi_when_the_eo_carries_the_surface(tmp_path: Path) -> None:
    test_dir = make_shards(tmp_path, n=6, channels=2, size=16, split="test", seed=0, fraction=0.97)
    train_dir = make_shards(tmp_path, n=8, channels=2, size=16, split="train", seed=1)
    cfg = {"covariance": "matern32", "max_fit_patches": 8}
    rmse = {}
    for method in ("oi", "oi_eo"):
        out = tmp_path / f"{method}.nc"
        run_baseline(method, test_dir, train_dir, cfg, scenario="tiny", out_nc=out)
        ds = open_samples(out)
        hidden = ds["valid"].values.astype(bool) & ~ds["observed"].values.astype(bool)
        rmse[method] = metrics.rmse(ds["thetao_pred"].values[:, 0], ds["thetao_true"].values[:, 0], hidden[:, 0])
    assert rmse["oi_eo"] < 0.7 * rmse["oi"]


def test_oi_eo_needs_the_eo(tmp_path: Path) -> None:
    test_dir = make_shards(tmp_path / "a", n=2, channels=2, size=16, split="test", has_eo=False)
    train_dir = make_shards(tmp_path / "a", n=4, channels=2, size=16, split="train", has_eo=False)
    with pytest.raises(ConfigError, match=r"evaluate\.methods.*data\.eo"):
        run_baseline("oi_eo", test_dir, train_dir, {"covariance": "matern32", "max_fit_patches": 4},
                     scenario="s", out_nc=tmp_path / "x.nc")


def test_config_check_refuses_oi_eo_without_eo() -> None:
    repo = Path(__file__).resolve().parents[1]
    overrides = {"data": {"source": "synthetic", "eo": "none"},
                 "evaluate": {"methods": ["idw", "oi", "oi_eo"]}}
    with pytest.raises(ConfigError, match=r"'evaluate\.methods' and 'data\.eo'"):
        load_config(repo / "config" / "config.yaml", overrides)
    overrides["data"]["eo"] = "surface"
    assert "oi_eo" in load_config(repo / "config" / "config.yaml", overrides)["evaluate"]["methods"]


def test_run_baseline_rejects_an_unknown_method(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="baseline method"):
        run_baseline("kriging", tmp_path, tmp_path, {}, scenario="s", out_nc=tmp_path / "x.nc")
