"""IDW and OI baselines: exactness, a hand-computed IDW value, OI fit, OI vs IDW, run_baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from depthdif.errors import ConfigError
from depthdif.eval import metrics
from depthdif.eval.baselines import OIParams, fit_oi, idw, oi, run_baseline
from depthdif.samples import open_samples
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


@pytest.mark.parametrize(("method", "cfg"), [
    ("idw", {"power": 2.0, "neighbours": 16}),
    ("oi", {"covariance": "matern32", "max_fit_patches": 4}),
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
    np.testing.assert_array_equal(ds["thetao_std"].values[valid], 0.0)
    # truth is the de-normalised shard target in degC (factory: ~18 degC surface, ~12 degC deep)
    manifest = read_manifest(test_dir)
    assert abs(np.nanmean(truth[:, 0]) - manifest["stats"]["mean"][0]) < 3.0
    assert 14.0 < np.nanmean(truth[:, 0]) < 22.0 and np.nanmean(truth[:, 1]) < np.nanmean(truth[:, 0])
    tol = 1e-4 if method == "idw" else 0.5  # OI with a fitted nugget is a smoother
    np.testing.assert_allclose(pred[observed], truth[observed], atol=tol)
    hidden = valid & ~observed
    spread = np.nanstd(truth[:, 0])
    assert metrics.rmse(pred, truth, hidden) < spread  # better than nothing
    if method == "oi":
        assert set(result["params"]) == {"covariance", "length_scale", "variance", "nugget"}


def test_run_baseline_rejects_an_unknown_method(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="baseline method"):
        run_baseline("kriging", tmp_path, tmp_path, {}, scenario="s", out_nc=tmp_path / "x.nc")
