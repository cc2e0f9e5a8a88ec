"""Ensemble diagnostics on hidden pixels: calibration (Fig. 7) and radially averaged power spectra (Fig. 8)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from scipy.signal.windows import hann

from depthdif.errors import DataError
from depthdif.eval.metrics import hidden_mask
from depthdif.io import seed_for
from depthdif.plots.style import DEGC, dpi_of, has_members, load_samples, method_colour, new_figure, save_png

EARTH_KM_PER_DEG = 111.195
MAX_PIXELS = 200_000  # subsample for rank histograms / spread bins (deterministic)


def _hidden_members(ds: Any, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(members (K, P), truth (P,)) over hidden pixels, at most MAX_PIXELS of them."""
    hidden = hidden_mask(ds["observed"].values, ds["valid"].values) & np.isfinite(ds["thetao_true"].values)
    members = ds["thetao_members"].transpose("member", "patch", "depth", "y", "x").values[:, hidden]
    truth = ds["thetao_true"].values[hidden]
    if truth.size > MAX_PIXELS:
        rng = np.random.default_rng(seed_for("calibration", method))
        pick = np.sort(rng.choice(truth.size, MAX_PIXELS, replace=False))
        members, truth = members[:, pick], truth[pick]
    return members.astype(np.float64), truth.astype(np.float64)


def binned_spread_error(members: np.ndarray, truth: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per spread-quantile bin: RMS corrected spread sqrt((K+1)/K) s and RMSE of the ensemble mean."""
    k = members.shape[0]
    spread = np.sqrt((k + 1) / k) * members.std(axis=0, ddof=1)
    error = members.mean(axis=0) - truth
    edges = np.unique(np.quantile(spread, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, spread, side="right") - 1, 0, max(len(edges) - 2, 0))
    xs, ys = [], []
    for b in range(max(len(edges) - 1, 1)):
        sel = which == b
        if sel.any():
            xs.append(np.sqrt(np.mean(spread[sel] ** 2)))
            ys.append(np.sqrt(np.mean(error[sel] ** 2)))
    return np.asarray(xs), np.asarray(ys)


def rank_histogram(members: np.ndarray, truth: np.ndarray, seed: int) -> np.ndarray:
    """Frequencies (K+1,) of the rank of the truth among K members (ties broken at random)."""
    k = members.shape[0]
    below = np.sum(members < truth, axis=0)
    ties = np.sum(members == truth, axis=0)
    rank = below + np.random.default_rng(seed).integers(0, ties + 1)
    return np.bincount(rank, minlength=k + 1) / max(len(truth), 1)


def calibration(samples: Mapping[str, str | os.PathLike[str]], out_png: str | os.PathLike[str],
                cfg: Mapping[str, Any] | None = None) -> None:
    """Spread vs error in spread-quantile bins (1:1 = calibrated) and rank histograms
    (flat = calibrated, U = under-dispersed) for the methods with >= 2 ensemble members."""
    datasets = load_samples(samples)
    ensembles = {m: ds for m, ds in datasets.items() if has_members(ds)}
    if not ensembles:
        fig = new_figure(5.0, 2.0)
        ax = fig.subplots()
        ax.text(0.5, 0.5, f"no ensemble method among {', '.join(datasets)}:\nno calibration to show",
                ha="center", va="center")
        ax.set_axis_off()
        save_png(fig, out_png, dpi_of(cfg))
        return
    fig = new_figure(9.4, 4.0)
    ax_se, ax_rank = fig.subplots(1, 2)
    values: list[np.ndarray] = []
    for j, (method, ds) in enumerate(ensembles.items()):
        members, truth = _hidden_members(ds, method)
        colour = method_colour(method, j)
        xs, ys = binned_spread_error(members, truth)
        ok = (xs > 0) & (ys > 0)  # log axes: spread and error can differ by decades
        ax_se.loglog(xs[ok], ys[ok], marker="o", color=colour, label=method)
        values += [xs[ok], ys[ok]]
        k = members.shape[0]
        freq = rank_histogram(members, truth, seed_for("rank_histogram", method))
        # x = rank / K in [0, 1], density (K+1) * freq: uniform = 1 whatever K is
        ax_rank.step(np.arange(k + 2) / (k + 1), np.append(freq, freq[-1]) * (k + 1), where="post",
                     color=colour, label=f"{method} (K={k})")
    finite = np.concatenate(values) if values else np.array([])
    lo, hi = (finite.min() / 1.5, finite.max() * 1.5) if finite.size else (1e-2, 1.0)
    ax_se.loglog([lo, hi], [lo, hi], color="0.4", linestyle=":", label="1:1")
    ax_se.set_xlim(lo, hi)
    ax_se.set_ylim(lo, hi)
    ax_se.set_aspect("equal")
    ax_se.set_xlabel(f"ensemble spread √((K+1)/K)·s ({DEGC})")
    ax_se.set_ylabel(f"RMSE of the ensemble mean ({DEGC})")
    ax_se.set_title("spread vs error (hidden pixels, binned)")
    ax_rank.axhline(1.0, color="0.4", linestyle=":", label="uniform")
    ax_rank.set_xlabel("rank of the truth among the members (scaled to [0, 1])")
    ax_rank.set_ylabel("density")
    ax_rank.set_title("rank histogram")
    for ax in (ax_se, ax_rank):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    save_png(fig, out_png, dpi_of(cfg))


def pixel_km(lat: np.ndarray, lon: np.ndarray) -> float:
    """Mean pixel size in km: sqrt(dx dy) with dx scaled by cos(latitude)."""
    dy = np.nanmean(np.abs(np.diff(lat, axis=-1))) * EARTH_KM_PER_DEG
    dx = np.nanmean(np.abs(np.diff(lon, axis=-1))) * EARTH_KM_PER_DEG * np.cos(np.deg2rad(np.nanmean(lat)))
    return float(np.sqrt(dx * dy))


def radial_spectrum(fields: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean radially averaged power of (M,H,W) fields in cycles/px bins of width 1/max(H,W).

    Each field: invalid pixels set to its valid mean, de-meaned, 2-D Hann window, |FFT|^2
    normalised by sum(window^2) (so it sums to ~ the variance)."""
    m, h, w = fields.shape
    window = np.outer(hann(h, sym=False), hann(w, sym=False)) if min(h, w) > 2 else np.ones((h, w))
    count = np.maximum(valid.sum(axis=(1, 2), keepdims=True), 1)
    mean = np.where(valid, fields, 0.0).sum(axis=(1, 2), keepdims=True) / count
    anomaly = np.where(valid, fields - mean, 0.0) * window
    power = np.abs(np.fft.fft2(anomaly)) ** 2 / np.sum(window**2)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    step = 1.0 / max(h, w)
    index = np.rint(k / step).astype(int)
    keep = (index > 0) & (k <= 0.5)
    sums = np.bincount(index[keep], weights=power.mean(axis=0)[keep])
    counts = np.bincount(index[keep])
    used = counts > 0
    return np.flatnonzero(used) * step, sums[used] / counts[used]


def _spectrum_levels(valid: np.ndarray) -> list[int]:
    """The shallowest and the deepest level that has any valid pixel; valid (N,C,H,W)."""
    wet = np.flatnonzero(valid.any(axis=(0, 2, 3)))
    if not len(wet):
        raise DataError("no valid (ocean) pixel at any depth level: nothing to compute spectra of")
    return sorted({int(wet[0]), int(wet[-1])})


def power_spectra(samples: Mapping[str, str | os.PathLike[str]], out_png: str | os.PathLike[str],
                  cfg: Mapping[str, Any] | None = None, *, min_valid: float = 0.9) -> None:
    """Radially averaged power spectra (log-log) of truth, each method's prediction and, for
    ensembles, one member (dashed), at the shallowest and the deepest level. Uses the
    patches with >= `min_valid` valid pixels at that level (all patches if none qualifies)."""
    datasets = load_samples(samples)
    ref = next(iter(datasets.values()))
    depth = ref["depth"].values
    levels = _spectrum_levels(ref["valid"].values.astype(bool) & np.isfinite(ref["thetao_true"].values))
    km = pixel_km(ref["latitude"].values, ref["longitude"].values)
    fig = new_figure(4.6 * len(levels) + 0.4, 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(levels)))
    for ax, level in zip(axes, levels):
        valid = ref["valid"].values[:, level].astype(bool) & np.isfinite(ref["thetao_true"].values[:, level])
        share = valid.reshape(len(valid), -1).mean(axis=1)
        use = share >= min_valid if np.any(share >= min_valid) else share > 0
        f, p = radial_spectrum(ref["thetao_true"].values[use, level], valid[use])
        ax.loglog(f / km, p, color="black", linewidth=2.2, label="truth")
        for j, (method, ds) in enumerate(datasets.items()):
            colour = method_colour(method, j)
            pred = ds["thetao_pred"].values[use, level]
            ax.loglog(f / km, radial_spectrum(pred, valid[use] & np.isfinite(pred))[1], color=colour, label=method)
            if has_members(ds):
                member = ds["thetao_members"].values[use, 0, level]
                ax.loglog(f / km, radial_spectrum(member, valid[use] & np.isfinite(member))[1], color=colour,
                          linestyle="--", label=f"{method} member")
        ax.set_xlabel("wavenumber (cycles / km)")
        ax.set_ylabel(f"power ({DEGC}²)")
        ax.set_title(f"{depth[level]:.4g} m ({int(use.sum())} patches)")
        ax.grid(alpha=0.3, which="both")
        top = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
        for axis in (ax.xaxis, top.xaxis):  # 1-2-5 labels: a patch spans only ~1.5 decades
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
        top.set_xlabel("wavelength (km)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    save_png(fig, out_png, dpi_of(cfg))


def _inverse(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / np.asarray(x, np.float64)
