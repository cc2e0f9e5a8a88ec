"""Reconstruction metrics in degC on a boolean mask (normally hidden ocean = valid & ~observed).

Every function reduces over the masked pixels of the given `axis` (None = all axes) and
returns NaN where the mask selects nothing. Ensemble members are on axis 0 of `members`.
"""

from __future__ import annotations

import numpy as np
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


def crps_ensemble(
    members: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None, *, fair: bool = False
) -> np.ndarray | float:
    """CRPS of an ensemble (members on axis 0), averaged over `mask`.

    Standard (DESIGN) form: mean_i|e_i - y| - 1/2 mean_ij|e_i - e_j| (pairs over K^2, i = j
    included); `fair=True` divides the pair sum by K(K-1) instead (unbiased for K -> inf).
    """
    e = np.sort(members.astype(np.float64), axis=0)
    k = e.shape[0]
    skill = np.mean(np.abs(e - truth[None]), axis=0)
    # sum_ij |e_i - e_j| = 2 sum_i (2i - K + 1) e_(i) for sorted members (i = 0..K-1)
    coef = (2.0 * np.arange(k) - k + 1).reshape((k,) + (1,) * (e.ndim - 1))
    pair_sum = 2.0 * np.sum(coef * e, axis=0)
    denom = k * (k - 1) if fair else k * k
    if denom == 0:
        raise ValueError("fair CRPS needs at least 2 members")
    return _masked_mean(skill - 0.5 * pair_sum / denom, mask, axis)


def spread_skill(members: np.ndarray, truth: np.ndarray, mask: np.ndarray, axis: Axis = None) -> np.ndarray | float:
    """Spread-skill ratio sqrt((K+1)/K) * sqrt(mean s^2) / RMSE(ensemble mean), over `mask`.

    s^2 is the unbiased (ddof=1) member variance; the "mean ensemble std" is taken as the
    root of the mean variance (Fortin et al. 2014), so a calibrated ensemble gives 1.
    """
    k = members.shape[0]
    if k < 2:
        raise ValueError("spread_skill needs at least 2 members")
    spread = np.sqrt(_masked_mean(np.var(members.astype(np.float64), axis=0, ddof=1), mask, axis))
    skill = np.asarray(rmse(np.mean(members, axis=0), truth, mask, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt((k + 1) / k) * spread / skill
    return float(out) if np.ndim(out) == 0 else out


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
