"""Calibration of every method on hidden pixels (Fig. 7) and radially averaged power spectra (Fig. 8)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from scipy.signal.windows import hann

from depthdif.errors import DataError
from depthdif.eval.scoring import read_summary
from depthdif.plots.style import DEGC, dpi_of, has_members, load_samples, method_colour, new_figure, save_png

EARTH_KM_PER_DEG = 111.195
#: the CRPS under each bar: fair ensemble CRPS, closed-form Gaussian CRPS, MAE of a point forecast
ESTIMATOR = {"ensemble": "fair", "gaussian": "Gauss", "deterministic": "= MAE"}


def calibration(summary_csv: str | os.PathLike[str], calibration_csv: str | os.PathLike[str],
                out_png: str | os.PathLike[str], cfg: Mapping[str, Any], *, scenario: str,
                methods: Sequence[str] | None = None) -> None:
    """Calibration of every method of one scenario on hidden pixels, all depths (from the summarize
    rule's summary.csv and calibration.csv): CRPS per method (fair ensemble CRPS, closed-form Gaussian
    CRPS, or MAE for deterministic methods: hatched) with its spread/skill; spread vs error in spread
    deciles (1:1 = calibrated); rank histograms (flat = calibrated, U = under-dispersed; a Gaussian
    forecast's PIT in K+1 bins). Deterministic methods have no spread and no histogram."""
    summary = read_summary(summary_csv)
    overall = summary[(summary["depth"] == "all") & (summary["scenario"] == scenario)]
    if methods is not None:
        overall = overall.set_index("method").reindex(list(methods)).reset_index()
    if overall.empty or overall["rmse"].isna().all():
        raise DataError(f"{summary_csv} has no depth 'all' rows of scenario {scenario!r}; rerun the summarize rule")
    try:
        cal = pd.read_csv(calibration_csv, dtype={"scenario": str, "method": str, "depth": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {calibration_csv} ({exc}); rerun the summarize rule") from exc
    cal = cal[(cal["scenario"] == scenario) & (cal["depth"] == "all")]
    fig = new_figure(13.5, 4.2)
    ax_crps, ax_se, ax_rank = fig.subplots(1, 3)
    names = overall["method"].tolist()
    for j, row in enumerate(overall.itertuples(index=False)):
        kind = str(row.forecast)
        ax_crps.bar(j, row.crps, color=method_colour(row.method, j), hatch="//" if kind == "deterministic" else None,
                    edgecolor="0.25")
        ratio = f"s/s {row.spread_skill:.2f}" if np.isfinite(row.spread_skill) else "no spread"
        ax_crps.annotate(f"{row.crps:.3g}\n{ratio}", (j, row.crps), ha="center", va="bottom", fontsize="x-small",
                         xytext=(0, 2), textcoords="offset points")
    ax_crps.set_xticks(range(len(names)), [f"{m}\n({ESTIMATOR.get(str(k), '?')})"
                                           for m, k in zip(names, overall["forecast"])], fontsize="x-small")
    ax_crps.set_ylabel(f"CRPS ({DEGC})")
    ax_crps.set_ylim(0, np.nanmax(overall["crps"].to_numpy(np.float64)) * 1.3 if overall["crps"].notna().any()
                     else 1.0)
    ax_crps.set_title(f"{scenario}: CRPS (fair / Gaussian / = MAE), spread/skill s/s", fontsize="medium")
    values: list[np.ndarray] = []
    shown = 0
    for j, method in enumerate(names):
        part = cal[cal["method"] == method]
        if part.empty:
            continue
        colour = method_colour(method, j)
        spread = part[part["table"] == "spread"].sort_values("bin")
        xs, ys = spread["spread"].to_numpy(np.float64), spread["rmse"].to_numpy(np.float64)
        ok = (xs > 0) & (ys > 0)  # log axes: spread and error can differ by decades
        if ok.any():
            ax_se.loglog(xs[ok], ys[ok], marker="o", color=colour, label=method)
            values += [xs[ok], ys[ok]]
        rank = part[part["table"] == "rank"].sort_values("bin")
        freq = rank["share"].to_numpy(np.float64)
        if len(freq):
            k = len(freq) - 1
            ensemble = str(part["forecast"].iloc[0]) == "ensemble"
            label = f"{method} (K={k})" if ensemble else f"{method} (PIT, {k + 1} bins)"
            # x = rank / (K+1) in [0, 1], density (K+1) * share: uniform = 1 whatever K is
            ax_rank.step(np.arange(k + 2) / (k + 1), np.append(freq, freq[-1]) * (k + 1), where="post",
                         color=colour, label=label)
            shown += 1
    finite = np.concatenate(values) if values else np.array([])
    lo, hi = (finite.min() / 1.5, finite.max() * 1.5) if finite.size else (1e-2, 1.0)
    ax_se.loglog([lo, hi], [lo, hi], color="0.4", linestyle=":", label="1:1")
    ax_se.set_xlim(lo, hi)
    ax_se.set_ylim(lo, hi)
    ax_se.set_aspect("equal")
    ax_se.set_xlabel(f"RMS spread per decile ({DEGC}): √((K+1)/K)·s or σ")
    ax_se.set_ylabel(f"RMSE of the mean ({DEGC})")
    ax_se.set_title("spread vs error (spread deciles)")
    ax_rank.axhline(1.0, color="0.4", linestyle=":", label="uniform")
    if not shown:
        ax_rank.text(0.5, 0.5, "no ensemble or Gaussian method", ha="center", va="center", transform=ax_rank.transAxes)
    ax_rank.set_xlabel("rank of the truth among the members (scaled to [0, 1])")
    ax_rank.set_ylabel("density")
    ax_rank.set_title("rank histogram (hidden pixels, all depths)")
    for ax in (ax_crps, ax_se, ax_rank):
        ax.grid(alpha=0.3)
    for ax in (ax_se, ax_rank):
        ax.legend(fontsize="x-small")
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
                  cfg: Mapping[str, Any], *, min_valid: float = 0.9) -> None:
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
