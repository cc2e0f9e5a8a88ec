"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from depthdif.eval import metrics

PRED = np.array([[1.0, 2.0], [3.0, 4.0]])
TRUTH = np.array([[1.0, 1.0], [1.0, 1.0]])
OBSERVED = np.array([[True, False], [False, False]])
VALID = np.ones((2, 2), bool)


def test_rmse_mae_bias_on_hidden_pixels_by_hand() -> None:
    hidden = metrics.hidden_mask(OBSERVED, VALID)  # errors 1, 2, 3
    assert metrics.rmse(PRED, TRUTH, hidden) == pytest.approx(np.sqrt(14 / 3))
    assert metrics.mae(PRED, TRUTH, hidden) == pytest.approx(2.0)
    assert metrics.bias(PRED, TRUTH, hidden) == pytest.approx(2.0)
    assert metrics.bias(TRUTH, PRED, hidden) == pytest.approx(-2.0)  # sign: pred - truth


def test_invalid_pixels_and_nan_outside_the_mask_do_not_count() -> None:
    truth = np.array([[np.nan, 1.0], [1.0, 1.0]])
    valid = np.isfinite(truth)
    hidden = metrics.hidden_mask(np.zeros((2, 2), bool), valid)
    assert metrics.rmse(PRED, truth, hidden) == pytest.approx(np.sqrt(14 / 3))
    assert np.isnan(metrics.rmse(PRED, truth, np.zeros((2, 2), bool)))  # empty mask -> NaN


def test_axis_reduction_per_patch_and_channel() -> None:
    pred = np.stack([PRED, PRED + 1.0])[:, None]  # (2,1,2,2)
    truth = np.broadcast_to(TRUTH, pred.shape)
    hidden = np.broadcast_to(metrics.hidden_mask(OBSERVED, VALID), pred.shape)
    np.testing.assert_allclose(metrics.mae(pred, truth, hidden, (-2, -1)), [[2.0], [3.0]])
    np.testing.assert_allclose(metrics.data_range(pred, np.ones(pred.shape, bool)), [[3.0], [3.0]])


def test_psnr_uses_the_explicit_data_range() -> None:
    hidden = metrics.hidden_mask(OBSERVED, VALID)
    expected = 20 * np.log10(10.0) - 10 * np.log10(14 / 3)
    assert metrics.psnr(PRED, TRUTH, 10.0, hidden) == pytest.approx(expected)
    assert metrics.psnr(PRED, TRUTH, 20.0, hidden) == pytest.approx(expected + 20 * np.log10(2))
    assert np.isnan(metrics.psnr(PRED, TRUTH, 0.0, hidden))  # constant target: undefined


def test_ssim_identical_is_one_and_noise_lowers_it() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    truth = 15 + 3 * np.sin(xx / 4.0) * np.cos(yy / 5.0)
    truth[:4, :4] = np.nan  # land
    valid = np.isfinite(truth)
    hidden = valid & (rng.random(truth.shape) < 0.8)
    drange = metrics.data_range(truth, valid)
    assert metrics.ssim(truth.copy(), truth, drange, hidden) == pytest.approx(1.0)
    noisy = truth + rng.normal(0, 1.0, truth.shape)
    assert metrics.ssim(noisy, truth, drange, hidden) < 0.9


def test_crps_of_a_known_ensemble_by_hand() -> None:
    members = np.array([0.0, 1.0, 2.0])[:, None]  # (K=3, 1 pixel)
    # mean|e - 1| = 2/3; pairs sum 8 over K^2 = 9 -> 1/2 * 8/9 = 4/9
    assert metrics.crps_ensemble(members, np.array([1.0]), np.array([True])) == pytest.approx(2 / 9)
    # fair: pairs over K(K-1) = 6 -> 2/3 - 2/3 = 0
    assert metrics.crps_ensemble(members, np.array([1.0]), np.array([True]), fair=True) == pytest.approx(0.0)
    # two pixels: truth 1 -> 2/9, truth 3 -> 2 - 4/9 = 14/9; mean 8/9
    two = np.repeat(members, 2, axis=1)
    assert metrics.crps_ensemble(two, np.array([1.0, 3.0]), np.ones(2, bool)) == pytest.approx(8 / 9)


def test_crps_of_a_single_member_is_the_absolute_error() -> None:
    pred = np.array([[1.0, 2.5, -1.0]])
    truth = np.array([0.0, 0.0, 0.0])
    assert metrics.crps_ensemble(pred, truth, np.ones(3, bool)) == pytest.approx(np.mean([1.0, 2.5, 1.0]))


def test_spread_skill_of_a_calibrated_ensemble_is_one() -> None:
    rng = np.random.default_rng(1)
    k, n = 4, 200_000
    centre = rng.normal(15.0, 3.0, n)
    sigma = rng.uniform(0.2, 2.0, n)  # heteroscedastic: mean std and RMS std differ
    truth = centre + sigma * rng.normal(size=n)
    members = centre + sigma * rng.normal(size=(k, n))
    ratio = metrics.spread_skill(members, truth, np.ones(n, bool))
    assert ratio == pytest.approx(1.0, abs=0.02)
    # an over-confident ensemble (half the spread) scores clearly below 1
    tight = centre + 0.5 * sigma * rng.normal(size=(k, n))
    assert metrics.spread_skill(tight, truth, np.ones(n, bool)) < 0.8
