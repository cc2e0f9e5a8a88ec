"""Reconstruction metrics in degC on a boolean mask (normally hidden ocean = valid & ~observed).

Every function reduces over the masked pixels of the given `axis` (None = all axes) and
returns NaN where the mask selects nothing. Ensemble members are on axis 0 of `members`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scoringrules as sr
from scipy.special import ndtr
from skimage.metrics import structural_similarity

Axis = int | tuple[int, ...] | None


def hidden_mask(observed: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels that are scored: ocean at that depth and not observed (valid & ~observed)."""
    return valid.astype(bool) & ~observed.astype(bool)


def _masked_mean(values: np.ndarray, mask: np.ndarray, axis: Axis) -> np.ndarray | float:
    """Mean of `values` over `mask` (NaN where the mask is empty); NaNs outside the mask are ignored."""
    mask = np.broadcast_to(mask.astype(bool), values.shape)
    total = np.sum(np.where(mask, values, 0.0), axis=axis, dtype=np.float64)
    count = np.sum(mask, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def mse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Mean squared error mean((pred - truth)^2) over `mask`."""
    return _masked_mean(np.square(pred.astype(np.float64) - truth), mask, axis)


def rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Root mean squared error sqrt(mean((pred - truth)^2)) over `mask`."""
    return np.sqrt(mse(pred, truth, mask, axis))


def mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Mean absolute error mean(|pred - truth|) over `mask`."""
    return _masked_mean(np.abs(pred.astype(np.float64) - truth), mask, axis)


def bias(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Mean error mean(pred - truth) over `mask` (positive = too warm)."""
    return _masked_mean(pred.astype(np.float64) - truth, mask, axis)


def data_range(truth: np.ndarray, valid: np.ndarray, axis: Axis = (-2, -1)) -> np.ndarray | float:
    """Target range max - min over the valid pixels (default: per patch and channel); NaN if none."""
    valid = np.broadcast_to(valid.astype(bool), truth.shape)
    hi = np.max(np.where(valid, truth, -np.inf), axis=axis)
    lo = np.min(np.where(valid, truth, np.inf), axis=axis)
    out = np.where(np.isfinite(hi) & np.isfinite(lo), hi - lo, np.nan)
    return float(out) if np.ndim(out) == 0 else out


def psnr(
    pred: np.ndarray, truth: np.ndarray, data_range: np.ndarray | float, mask: np.ndarray, axis: Axis = None
) -> np.ndarray | float:
    """PSNR = 20 log10(data_range) - 10 log10(mse) in dB, with an explicit data_range.

    Inf for a perfect prediction; NaN where the mask is empty or data_range <= 0 (constant target).
    """
    err = np.asarray(mse(pred, truth, mask, axis))
    rng = np.asarray(data_range, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rng > 0, 20.0 * np.log10(np.where(rng > 0, rng, 1.0)) - 10.0 * np.log10(err), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float, mask: np.ndarray, win_size: int = 7) -> float:
    """SSIM of one 2-D field (skimage), averaged over the masked pixels only.

    Pixels outside `mask` are set to the truth in the prediction, and invalid (NaN) truth
    pixels to the mean of the finite truth in both, so land and observed pixels are
    identical in the two images; the local SSIM map is then averaged over `mask`. The
    window shrinks (odd) for fields smaller than `win_size`.
    """
    if pred.ndim != 2:
        raise ValueError(f"ssim expects a 2-D field, got shape {pred.shape}")
    mask = mask.astype(bool)
    if not mask.any() or not np.isfinite(data_range) or data_range <= 0:
        return float("nan")
    finite = np.isfinite(truth)
    fill = float(truth[finite].mean())
    t = np.where(finite, truth, fill).astype(np.float64)
    p = np.where(mask, pred, t).astype(np.float64)
    win = min(win_size, *pred.shape)
    win -= 1 - win % 2  # odd
    if win < 3:
        return float("nan")
    _, smap = structural_similarity(t, p, data_range=float(data_range), win_size=win, full=True)
    return float(smap[mask].mean())


#: pixels per scoringrules call (the fair estimator holds a (pixels, K, K) array)
CHUNK = 65_536


def _pointwise(score: Callable[..., np.ndarray], mask: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    """`score(*values)` at the pixels of `mask` (chunked), NaN elsewhere; arrays are (..., *mask.shape)
    with leading axes kept (members first), each compressed to (..., P) before the call."""
    out = np.full(mask.shape, np.nan)
    flat = [np.asarray(a, np.float64)[..., mask] for a in arrays]
    total = int(mask.sum())
    values = np.empty(total)
    for lo in range(0, total, CHUNK):
        values[lo : lo + CHUNK] = score(*(a[..., lo : lo + CHUNK] for a in flat))
    out[mask] = values
    return out


def crps_ensemble(
    members: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None, *, estimator: str = "fair"
) -> np.ndarray | float:
    """CRPS of an ensemble (members on axis 0) by `scoringrules.crps_ensemble`, averaged over `mask`.

    `fair` (default, unbiased for the CRPS of the distribution the K members are drawn from):
    mean_i|e_i - y| - 1/(2K(K-1)) sum_ij|e_i - e_j|; `nrg`: the same with K^2 (the CRPS of the
    empirical distribution of the members, which favours small ensembles).
    """
    k = members.shape[0]
    if estimator == "fair" and k < 2:
        raise ValueError("the fair CRPS needs at least 2 members")
    mask = np.broadcast_to(mask.astype(bool), truth.shape) & np.isfinite(truth)

    def score(y: np.ndarray, e: np.ndarray) -> np.ndarray:
        return np.asarray(sr.crps_ensemble(y, e, m_axis=0, estimator=estimator, backend="numpy"))

    return _masked_mean(_pointwise(score, mask, truth, members), mask, axis)


def crps_gaussian(
    mu: np.ndarray, sigma: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None
) -> np.ndarray | float:
    """Closed-form CRPS of N(mu, sigma^2) by `scoringrules.crps_normal`, averaged over `mask`:
    sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (y - mu)/sigma; |y - mu| where sigma = 0."""
    mask = np.broadcast_to(mask.astype(bool), truth.shape) & np.isfinite(truth)

    def score(y: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
        point = s <= 0
        out = np.abs(y - m)
        if not point.all():
            out[~point] = sr.crps_normal(y[~point], m[~point], s[~point], backend="numpy")
        return out

    mu, sigma = np.broadcast_to(mu, truth.shape), np.broadcast_to(sigma, truth.shape)
    return _masked_mean(_pointwise(score, mask, truth, mu, sigma), mask, axis)


def ensemble_spread(members: np.ndarray) -> np.ndarray:
    """Per pixel, the finite-ensemble corrected spread sqrt((K+1)/K) s, s the ddof=1 member std."""
    k = members.shape[0]
    if k < 2:
        raise ValueError("the ensemble spread needs at least 2 members")
    return np.sqrt((k + 1) / k) * np.std(members.astype(np.float64), axis=0, ddof=1)


def rms(values: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Root mean square sqrt(mean(v^2)) over `mask` (the spread of a set of pixels)."""
    return np.sqrt(_masked_mean(np.square(values.astype(np.float64)), mask, axis))


def spread_skill(members: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Spread-skill ratio sqrt((K+1)/K) * sqrt(mean s^2) / RMSE(ensemble mean), over `mask`.

    s^2 is the unbiased (ddof=1) member variance; the "mean ensemble std" is taken as the
    root of the mean variance (Fortin et al. 2014), so a calibrated ensemble gives 1.
    """
    spread = np.asarray(rms(ensemble_spread(members), mask, axis))
    return _ratio(spread, np.asarray(rmse(np.mean(members, axis=0), truth, mask, axis)))


def spread_skill_gaussian(
    mu: np.ndarray, sigma: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None
) -> np.ndarray | float:
    """Spread-skill ratio of a Gaussian forecast: sqrt(mean sigma^2) / RMSE(mu) over `mask` (1 = calibrated)."""
    return _ratio(np.asarray(rms(sigma, mask, axis)), np.asarray(rmse(mu, truth, mask, axis)))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return float(out) if np.ndim(out) == 0 else out


def rank_histogram(members: np.ndarray, truth: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """Counts (K+1,) of the rank of the truth among the K members (axis 0) over the pixels of `mask`.

    rank = #{e_i < y} + U{0..#{e_i = y}} (ties broken at random, `numpy.random.default_rng(seed)`),
    so a calibrated ensemble gives a flat histogram, a collapsed one fills the two extreme bins.
    """
    mask = np.broadcast_to(mask.astype(bool), truth.shape) & np.isfinite(truth)
    e, y = members[:, mask], truth[mask]
    k = members.shape[0]
    below = np.sum(e < y, axis=0)
    ties = np.sum(e == y, axis=0)
    rank = below + np.random.default_rng(seed).integers(0, ties + 1)
    return np.bincount(rank, minlength=k + 1).astype(np.int64)


def pit_histogram(mu: np.ndarray, sigma: np.ndarray, truth: np.ndarray, mask: np.ndarray, bins: int) -> np.ndarray:
    """Counts (bins,) of the PIT u = Phi((y - mu)/sigma) of a Gaussian forecast in equal bins of [0, 1].

    With bins = K + 1 it is the expected rank histogram of K members drawn from N(mu, sigma^2)
    (no draws, so no sampling noise): flat when calibrated. sigma = 0: u = 0, 1/2 or 1.
    """
    if bins < 2:
        raise ValueError(f"a PIT histogram needs at least 2 bins, got {bins}")
    mask = np.broadcast_to(mask.astype(bool), truth.shape) & np.isfinite(truth)
    y, m, s = truth[mask], np.broadcast_to(mu, truth.shape)[mask], np.broadcast_to(sigma, truth.shape)[mask]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(s > 0, ndtr((y - m) / np.where(s > 0, s, 1.0)), 0.5 * (1.0 + np.sign(y - m)))
    which = np.clip(np.floor(u * bins).astype(np.int64), 0, bins - 1)
    return np.bincount(which, minlength=bins).astype(np.int64)


def spread_error_bins(spread: np.ndarray, error: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Pixels sorted by spread and cut into `bins` equal-count bins (deciles for 10; stable sort, so ties
    are split deterministically): per bin n, spread = sqrt(mean spread^2), rmse = sqrt(mean error^2),
    ratio = rmse / spread (1 = the spread tracks the error). spread/error are 1-D over the same pixels.
    """
    order = np.argsort(spread, kind="stable")
    parts = [p for p in np.array_split(order, bins) if len(p)]
    n = np.array([len(p) for p in parts], np.int64)
    s = np.array([np.sqrt(np.mean(np.square(spread[p]))) for p in parts])
    e = np.array([np.sqrt(np.mean(np.square(error[p]))) for p in parts])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = e / s
    return {"n": n, "spread": s, "rmse": e, "ratio": ratio}


def neighbour_jump(field: np.ndarray, valid: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|f(p) - mean of f over the 8 neighbours of p| summed over the pixels p of `at` whose 8
    neighbours are all valid, and their count; arrays (..., H, W), sums over the last two axes.

    A reconstruction that writes observations into a field that disagrees with them ("pasted
    dots") has a much larger jump at observed pixels than the truth has there.
    """
    f = np.where(valid, field, 0.0).astype(np.float64)
    v = valid.astype(bool)
    h, w = f.shape[-2:]
    total = np.zeros_like(f)
    all_valid = np.ones_like(v)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            shifted = np.zeros_like(f)
            ok = np.zeros_like(v)
            ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
            xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
            shifted[..., yd, xd] = f[..., ys, xs]
            ok[..., yd, xd] = v[..., ys, xs]
            total += shifted
            all_valid &= ok
    use = at.astype(bool) & v & all_valid
    jump = np.where(use, np.abs(f - total / 8.0), 0.0)
    return jump.sum(axis=(-2, -1)), use.sum(axis=(-2, -1))
