"""Fig. 2: reconstruction grid of one scenario (input, truth, each method, its error, ensemble spread)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from depthdif.errors import DataError
from depthdif.plots.style import (
    BALANCE,
    DEGC,
    LAND,
    SPREAD,
    THERMAL,
    UNOBSERVED,
    dpi_of,
    extent,
    has_members,
    legend_patches,
    load_samples,
    new_figure,
    robust_range,
    save_png,
    show_categories,
    show_map,
    show_sparse,
    symmetric_limit,
)

MASK_COLOURS = [LAND, UNOBSERVED, "black"]


def example_indices(n: int, examples: int) -> np.ndarray:
    """`examples` evenly spaced patch indices (deterministic, spread over the test split)."""
    return np.unique(np.linspace(0, n - 1, max(1, min(examples, n))).round().astype(int))


def same_patches(datasets: Mapping[str, Any]) -> None:
    """All methods must reconstruct the same test patches in the same order."""
    ref_method, ref = next(iter(datasets.items()))
    for method, ds in datasets.items():
        if ds["patch_id"].values.tolist() != ref["patch_id"].values.tolist():
            raise DataError(f"samples of {method!r} and {ref_method!r} cover different patches; "
                            "rerun their sample_model / run_baseline jobs")


def reconstruction_grid(samples: Mapping[str, str | os.PathLike[str]], out_png: str | os.PathLike[str],
                        cfg: Mapping[str, Any], scenario: str, *, level: int = 0) -> None:
    """Per example patch two rows at depth `level` (default the shallowest):
    row 1 sparse input | truth | prediction of each method (one thermal scale per example);
    row 2 ensemble std of up to two ensemble methods (else the observation mask) | error
    pred - truth of each method (balance, centred, one scale per example). Land is grey.
    """
    datasets = load_samples(samples)
    same_patches(datasets)
    methods = list(datasets)
    ref = datasets[methods[0]]
    idx = example_indices(ref.sizes["patch"], int(cfg["examples"]))
    ensembles = [m for m in methods if has_members(datasets[m])][:2]
    depth = float(ref["depth"].values[level])
    ncols = 2 + len(methods)
    fig = new_figure(1.75 * ncols + 1.6, 3.6 * len(idx) + 0.5)
    axes = fig.subplots(2 * len(idx), ncols, squeeze=False)
    for row, i in enumerate(idx):
        top, bottom = axes[2 * row], axes[2 * row + 1]
        truth = ref["thetao_true"].values[i, level]
        valid = ref["valid"].values[i, level].astype(bool)
        observed = ref["observed"].values[i, level].astype(bool)
        hidden = valid & ~observed
        ext = extent(ref["latitude"].values[i], ref["longitude"].values[i])
        lo, hi = robust_range(truth)
        show_sparse(top[0], truth, observed, valid, lo, hi, ext)
        top[0].set_title("sparse input")
        top[0].set_ylabel(str(ref["patch_id"].values[i]), fontsize="small")
        im = show_map(top[1], truth, THERMAL, lo, hi, ext)
        top[1].set_title("truth")
        errors = {m: datasets[m]["thetao_pred"].values[i, level] - truth for m in methods}
        lim = symmetric_limit(*(e[hidden] for e in errors.values()))
        for j, method in enumerate(methods):
            pred = datasets[method]["thetao_pred"].values[i, level]
            show_map(top[2 + j], pred, THERMAL, lo, hi, ext)
            rmse = float(np.sqrt(np.nanmean(np.square(errors[method][hidden])))) if hidden.any() else np.nan
            top[2 + j].set_title(f"{method}")
            err = show_map(bottom[2 + j], errors[method], BALANCE, -lim, lim, ext)
            bottom[2 + j].set_title(f"error, RMSE {rmse:.2f}", fontsize="small")
        fig.colorbar(im, ax=list(top), shrink=0.9, label=f"T ({DEGC})")
        fig.colorbar(err, ax=list(bottom), shrink=0.9, label=f"error ({DEGC})")
        _spread_panels(fig, bottom[:2], datasets, ensembles, i, level, valid, observed, ext)
    fig.suptitle(f"{scenario}: test reconstructions at {depth:.4g} m (grey: land)")
    save_png(fig, out_png, dpi_of(cfg))


def _spread_panels(fig: Any, axes: Any, datasets: Mapping[str, Any], ensembles: list[str], i: int, level: int,
                   valid: np.ndarray, observed: np.ndarray, ext: tuple[float, float, float, float]) -> None:
    """Fill the two left cells of the error row: ensemble std maps (shared scale), else the mask."""
    stds = {m: datasets[m]["thetao_std"].values[i, level] for m in ensembles}
    slots = list(axes)
    if len(stds) < 2:
        show_categories(slots[0], np.where(valid, 1 + observed, 0), MASK_COLOURS, ext)
        slots[0].set_title("observed (black)", fontsize="small")
        slots[0].legend(handles=legend_patches(MASK_COLOURS[1:], ["hidden", "observed"]), fontsize="xx-small",
                        loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=2, frameon=False)
        slots = slots[1:]
    if not stds:
        slots[0].set_axis_off()  # no ensemble method: nothing to show
        return
    hi = max(robust_range(*stds.values())[1], 1e-6)
    for ax, (method, std) in zip(slots, stds.items()):
        im = show_map(ax, std, SPREAD, 0.0, hi, ext)
        ax.set_title(f"{method} std", fontsize="small")
    fig.colorbar(im, ax=slots, location="left", shrink=0.9, label=f"ensemble std ({DEGC})")
