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
    # fair (default): mean|e - 1| = 2/3; pairs sum 8 over K(K-1) = 6 -> 2/3 - 1/2 * 8/6 = 0
    assert metrics.crps_ensemble(members, np.array([1.0]), np.array([True])) == pytest.approx(0.0)
    # energy form ("nrg"): pairs over K^2 = 9 -> 2/3 - 4/9 = 2/9
    assert metrics.crps_ensemble(members, np.array([1.0]), np.array([True]), estimator="nrg") == pytest.approx(2 / 9)
    # two pixels, fair: truth 1 -> 0, truth 3 -> 2 - 2/3 = 4/3; mean 2/3
    two = np.repeat(members, 2, axis=1)
    assert metrics.crps_ensemble(two, np.array([1.0, 3.0]), np.ones(2, bool)) == pytest.approx(2 / 3)


def test_fair_crps_of_a_two_member_ensemble_by_hand() -> None:
    members = np.array([[0.0, 0.0], [2.0, 2.0]])  # K=2 members 0 and 2 at two pixels
    truth = np.array([3.0, 0.5])
    # y=3: mean|e - y| = (3 + 1)/2 = 2; sum_ij|e_i - e_j| = 4 over K(K-1) = 2 -> 2 - 1/2 * 2 = 1
    # y=0.5: (0.5 + 1.5)/2 = 1 -> 1 - 1 = 0
    np.testing.assert_allclose(metrics.crps_ensemble(members, truth, np.ones(2, bool), axis=()), [1.0, 0.0])
    # energy form over K^2 = 4: 2 - 1/2 and 1 - 1/2
    np.testing.assert_allclose(metrics.crps_ensemble(members, truth, np.ones(2, bool), axis=(), estimator="nrg"),
                               [1.5, 0.5])
    assert np.isnan(metrics.crps_ensemble(members, truth, np.zeros(2, bool)))  # nothing scored


def test_fair_crps_needs_two_members_and_one_member_energy_crps_is_the_absolute_error() -> None:
    pred = np.array([[1.0, 2.5, -1.0]])
    truth = np.array([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="at least 2 members"):
        metrics.crps_ensemble(pred, truth, np.ones(3, bool))
    assert metrics.crps_ensemble(pred, truth, np.ones(3, bool), estimator="nrg") == pytest.approx(np.mean([1, 2.5, 1]))


def test_gaussian_crps_closed_form_by_hand() -> None:
    # y = mu: sigma (2 phi(0) - 1/sqrt(pi)) = sigma (sqrt(2/pi) - 1/sqrt(pi)); sigma = 0: |y - mu|
    expected = 2.0 * (np.sqrt(2 / np.pi) - 1 / np.sqrt(np.pi))
    out = metrics.crps_gaussian(np.array([1.0, 1.0]), np.array([2.0, 0.0]), np.array([1.0, 3.5]), np.ones(2, bool),
                                axis=())
    np.testing.assert_allclose(out, [expected, 2.5])
    # far in the tail the CRPS tends to |y - mu| - sigma/sqrt(pi)
    far = metrics.crps_gaussian(np.array([0.0]), np.array([1.0]), np.array([40.0]), np.array([True]))
    assert far == pytest.approx(40.0 - 1 / np.sqrt(np.pi), rel=1e-6)


def test_fair_crps_of_a_gaussian_ensemble_matches_the_closed_form() -> None:
    """The fair estimator is unbiased: the mean fair CRPS of K members drawn from N(mu, sigma^2) is the
    closed-form CRPS of that Gaussian, even for small K (the energy form is too high by E|X-X'|/2K)."""
    rng = np.random.default_rng(3)
    n, k = 100_000, 4
    mu, sigma = rng.normal(10.0, 2.0, n), rng.uniform(0.3, 1.5, n)
    truth = mu + sigma * rng.normal(size=n)
    members = mu + sigma * rng.normal(size=(k, n))
    mask = np.ones(n, bool)
    closed = metrics.crps_gaussian(mu, sigma, truth, mask)
    assert metrics.crps_ensemble(members, truth, mask) == pytest.approx(closed, rel=0.01)
    assert metrics.crps_ensemble(members, truth, mask, estimator="nrg") > 1.05 * closed


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
    # the Gaussian forecast N(centre, sigma^2) is calibrated; half its sigma is not
    assert metrics.spread_skill_gaussian(centre, sigma, truth, np.ones(n, bool)) == pytest.approx(1.0, abs=0.01)
    assert metrics.spread_skill_gaussian(centre, 0.5 * sigma, truth, np.ones(n, bool)) == pytest.approx(0.5, abs=0.01)


def test_spread_skill_by_hand() -> None:
    members = np.array([[1.0, 1.0], [3.0, 3.0]])  # mean 2, ddof=1 std sqrt(2)
    truth = np.array([0.0, 4.0])  # error of the mean 2 at both pixels
    # sqrt(3/2) * sqrt(2) / 2 = sqrt(3) / 2
    assert metrics.spread_skill(members, truth, np.ones(2, bool)) == pytest.approx(np.sqrt(3) / 2)
    np.testing.assert_allclose(metrics.ensemble_spread(members), [np.sqrt(3), np.sqrt(3)])


def calibrated(k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truth and K members drawn from the same heteroscedastic Gaussian: (centre, sigma, truth, members)."""
    rng = np.random.default_rng(seed)
    centre, sigma = rng.normal(0, 2, n), rng.uniform(0.2, 2.0, n)
    return centre, sigma, centre + sigma * rng.normal(size=n), centre + sigma * rng.normal(size=(k, n))


def test_rank_histogram_flat_when_calibrated_extreme_when_collapsed() -> None:
    k, n = 5, 60_000
    centre, sigma, truth, members = calibrated(k, n, seed=0)
    mask = np.ones(n, bool)
    counts = metrics.rank_histogram(members, truth, mask, seed=0)
    assert counts.shape == (k + 1,) and counts.sum() == n and counts.dtype == np.int64
    np.testing.assert_allclose(counts / n, 1 / (k + 1), atol=0.01)
    # under-dispersed members: U shape
    tight = metrics.rank_histogram(centre + 0.3 * (members - centre), truth, mask, seed=0)
    assert tight[0] > 2 * n / (k + 1) and tight[-1] > 2 * n / (k + 1)
    # collapsed onto the mean (every member = the centre): only the two extreme bins
    collapsed = metrics.rank_histogram(np.repeat(centre[None], k, axis=0), truth, mask, seed=0)
    assert collapsed[0] + collapsed[-1] == n and collapsed[0] == pytest.approx(n / 2, rel=0.02)
    # only the mask counts
    assert metrics.rank_histogram(members, truth, np.arange(n) < 100, seed=0).sum() == 100


def test_rank_histogram_breaks_ties_at_random_with_a_fixed_seed() -> None:
    n, k = 30_000, 3
    truth = np.zeros(n)
    members = np.zeros((k, n))  # every member ties with the truth: uniform over the K+1 ranks
    counts = metrics.rank_histogram(members, truth, np.ones(n, bool), seed=7)
    np.testing.assert_allclose(counts / n, 1 / (k + 1), atol=0.01)
    np.testing.assert_array_equal(counts, metrics.rank_histogram(members, truth, np.ones(n, bool), seed=7))
    assert not np.array_equal(counts, metrics.rank_histogram(members, truth, np.ones(n, bool), seed=8))
    # one member below, one tie, one above: ranks 1 or 2 only
    one = metrics.rank_histogram(np.array([[-1.0] * 1000, [0.0] * 1000, [1.0] * 1000]), np.zeros(1000),
                                 np.ones(1000, bool), seed=0)
    assert one[0] == one[3] == 0 and one[1] + one[2] == 1000 and abs(one[1] - 500) < 80


def test_pit_histogram_of_a_gaussian_forecast() -> None:
    k, n = 7, 80_000
    centre, sigma, truth, _ = calibrated(k, n, seed=4)
    mask = np.ones(n, bool)
    counts = metrics.pit_histogram(centre, sigma, truth, mask, k + 1)
    assert counts.shape == (k + 1,) and counts.sum() == n
    np.testing.assert_allclose(counts / n, 1 / (k + 1), atol=0.01)
    narrow = metrics.pit_histogram(centre, 0.2 * sigma, truth, mask, k + 1)
    assert narrow[0] + narrow[-1] > 0.6 * n  # over-confident: U shape
    wide = metrics.pit_histogram(centre, 3.0 * sigma, truth, mask, k + 1)
    assert wide[0] + wide[-1] < 0.5 * 2 * n / (k + 1)  # under-confident: a hump
    # sigma = 0: below -> first bin, above -> last bin, equal -> the middle
    zero = metrics.pit_histogram(np.zeros(3), np.zeros(3), np.array([-1.0, 1.0, 0.0]), np.ones(3, bool), 3)
    np.testing.assert_array_equal(zero, [1, 1, 1])


def test_spread_error_bins_track_the_error_of_a_calibrated_ensemble() -> None:
    k, n = 60, 20_000  # per bin only with many members (small-K sample spread regresses to the mean)
    _, _, truth, members = calibrated(k, n, seed=2)
    bins = metrics.spread_error_bins(metrics.ensemble_spread(members), members.mean(axis=0) - truth, bins=10)
    assert len(bins["n"]) == 10 and bins["n"].sum() == n and bins["n"].max() - bins["n"].min() <= 1
    assert np.all(np.diff(bins["spread"]) > 0) and bins["spread"][-1] > 2 * bins["spread"][0]
    np.testing.assert_allclose(bins["ratio"], 1.0, atol=0.12)
    np.testing.assert_allclose(bins["ratio"], bins["rmse"] / bins["spread"])
    # pooled over any K the mean ratio is about 1 (equal-count bins)
    k, n = 5, 50_000
    _, _, truth, members = calibrated(k, n, seed=5)
    bins = metrics.spread_error_bins(metrics.ensemble_spread(members), members.mean(axis=0) - truth, bins=5)
    assert np.sqrt(np.mean(bins["rmse"] ** 2)) / np.sqrt(np.mean(bins["spread"] ** 2)) == pytest.approx(1.0, abs=0.03)
    # a constant spread (collapsed ensemble): ties split into equal-count bins, all finite
    flat = metrics.spread_error_bins(np.zeros(100), np.ones(100), bins=10)
    assert flat["n"].tolist() == [10] * 10 and np.isinf(flat["ratio"]).all()
