"""The map figure: one method's dense map of the region at one period and level."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from depthdif.errors import DataError
from depthdif.plots.style import (
    DEGC,
    SPREAD,
    THERMAL,
    dpi_of,
    extent,
    new_figure,
    robust_range,
    save_png,
    show_map,
    show_sparse,
)


def map_figure(nc: str | os.PathLike[str], out_png: str | os.PathLike[str], cfg: Mapping[str, Any],
               level: int = 0) -> None:
    """Panels at depth level `level` (the shallowest by default), land grey: the mean, the std (ensemble
    or OI posterior; absent for the unet and idw), member 0 (when the file holds members) and the
    observed cells on the mean."""
    try:
        with xr.open_dataset(nc, engine="netcdf4") as handle:
            ds = handle.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the map {nc} ({exc}); rerun rule map_region") from exc
    if "thetao_mean" not in ds or not 0 <= level < ds.sizes["depth"]:
        raise DataError(f"{nc} is not a map with depth level {level} (no thetao_mean); rerun rule map_region")
    ext = extent(ds["latitude"].values, ds["longitude"].values)
    mean = ds["thetao_mean"].values[0, level]
    panels: list[tuple[str, np.ndarray, str]] = [("mean", mean, "temp")]
    if "thetao_std" in ds:
        panels.append(("ensemble std" if ds.attrs.get("n_members", 1) > 1 else "predictive std",
                       ds["thetao_std"].values[0, level], "std"))
    if "thetao_members" in ds:
        panels.append(("member 0", ds["thetao_members"].values[0, 0, level], "temp"))
    count = ds["obs_count"].values[0, level]
    panels.append((f"{int((count > 0).sum())} observed cells", mean, "obs"))
    lo, hi = robust_range(mean, q=1.0)
    fig = new_figure(3.6 * len(panels) + 0.6, 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, field, kind) in zip(axes, panels):
        if kind == "std":
            im = show_map(ax, field, SPREAD, 0.0, max(robust_range(field, q=1.0)[1], 1e-6), ext)
            fig.colorbar(im, ax=ax, shrink=0.85, label=f"std ({DEGC})")
        elif kind == "obs":
            im = show_sparse(ax, field, count > 0, np.isfinite(field), lo, hi, ext)
        else:
            im = show_map(ax, field, THERMAL, lo, hi, ext)
            if ax is axes[0]:
                fig.colorbar(im, ax=ax, shrink=0.85, label=f"temperature ({DEGC})")
        ax.set_title(title)
    depth = float(ds["depth"].values[level])
    fig.suptitle(f"{ds.attrs.get('method', '')} map, {ds.attrs.get('period', '')}, {depth:.4g} m")
    save_png(fig, out_png, dpi_of(cfg))
