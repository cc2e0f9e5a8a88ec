"""Shared figure helpers: pyplot-free Agg figures, colour maps with grey land, map panels, atomic PNGs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import cmocean
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch

from depthdif.errors import DataError
from depthdif.io import atomic_output
from depthdif.samples import open_samples

LAND = "0.62"  # grey for land / below the sea floor
UNOBSERVED = "#f4f1ea"  # ocean without an observation
DEGC = "°C"
#: fixed colours so a method looks the same in every figure
METHOD_COLOURS = {"truth": "black", "idw": "#8c8c8c", "oi": "#a6761d", "oi_eo": "#01665e", "unet": "#1f78b4",
                  "standard": "#e6550d", "ambient": "#31a354"}
_FALLBACK = ["#6a3d9a", "#e7298a", "#66a61e", "#e6ab02", "#1b9e77", "#7570b3"]


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on the Agg canvas (no pyplot state, no display needed)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out_png: str | os.PathLike[str], dpi: int) -> None:
    """Write `fig` as PNG atomically."""
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def dpi_of(cfg: Mapping[str, Any]) -> int:
    """figures.dpi of the figures config section."""
    return int(cfg["dpi"])


def method_colour(method: str, index: int = 0) -> str:
    return METHOD_COLOURS.get(method, _FALLBACK[index % len(_FALLBACK)])


def with_land(cmap: Colormap) -> Colormap:
    """Copy of `cmap` drawing NaN/masked pixels (land, invalid) in grey."""
    return cmap.with_extremes(bad=LAND)


THERMAL = with_land(cmocean.cm.thermal)
BALANCE = with_land(cmocean.cm.balance)
SPREAD = with_land(cmocean.cm.amp)


def extent(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent (left, right, bottom, top) of pixel centres lon (W,), lat (H,) ascending."""
    dx = float(np.diff(lon).mean()) if len(lon) > 1 else 1.0
    dy = float(np.diff(lat).mean()) if len(lat) > 1 else 1.0
    return (float(lon[0]) - dx / 2, float(lon[-1]) + dx / 2, float(lat[0]) - dy / 2, float(lat[-1]) + dy / 2)


def show_map(ax: Axes, field: np.ndarray, cmap: Colormap, vmin: float, vmax: float,
             ext: tuple[float, float, float, float] | None = None) -> AxesImage:
    """Row 0 of the array is the southernmost latitude (ascending), so origin='lower'."""
    im = ax.imshow(np.ma.masked_invalid(field), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",
                   extent=ext, interpolation="nearest")
    bare(ax)
    return im


def show_sparse(ax: Axes, values: np.ndarray, observed: np.ndarray, ocean: np.ndarray, vmin: float, vmax: float,
                ext: tuple[float, float, float, float] | None = None) -> AxesImage:
    """Observed values on thermal over a background of unobserved ocean (light) and land (grey)."""
    background = ListedColormap([LAND, UNOBSERVED])
    ax.imshow(ocean.astype(float), cmap=background, vmin=0, vmax=1, origin="lower", extent=ext,
              interpolation="nearest")
    overlay = cmocean.cm.thermal.with_extremes(bad=(0.0, 0.0, 0.0, 0.0))  # masked = transparent
    im = ax.imshow(np.ma.masked_where(~observed, values), cmap=overlay, vmin=vmin, vmax=vmax, origin="lower",
                   extent=ext, interpolation="nearest")
    bare(ax)
    return im


def show_categories(ax: Axes, codes: np.ndarray, colours: list[str],
                    ext: tuple[float, float, float, float] | None = None) -> None:
    """Integer category map 0..len(colours)-1 with a fixed colour per category."""
    ax.imshow(codes, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(colours) - 0.5, origin="lower",
              extent=ext, interpolation="nearest")
    bare(ax)


def legend_patches(colours: list[str], labels: list[str]) -> list[Patch]:
    return [Patch(facecolor=c, edgecolor="0.3", label=lab) for c, lab in zip(colours, labels)]


def bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def robust_range(*arrays: np.ndarray, q: float = 0.0) -> tuple[float, float]:
    """(lo, hi) over the finite values of all arrays (percentiles q, 100-q); (0, 1) if none."""
    values = np.concatenate([np.asarray(a, np.float64)[np.isfinite(a)].ravel() for a in arrays])
    if not len(values):
        return 0.0, 1.0
    lo, hi = np.percentile(values, [q, 100 - q])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(hi) + 0.5)


def symmetric_limit(*arrays: np.ndarray, q: float = 99.0) -> float:
    """Colour limit for centred error maps: the q-th percentile of |values| (at least 1e-6)."""
    values = np.concatenate([np.abs(np.asarray(a, np.float64)[np.isfinite(a)]).ravel() for a in arrays])
    return max(float(np.percentile(values, q)), 1e-6) if len(values) else 1.0


def load_samples(samples: Mapping[str, str | os.PathLike[str]]) -> dict[str, Any]:
    """{method: xarray Dataset} in the given order (DataError naming a missing file)."""
    if not samples:
        raise DataError("no samples netCDF given; check evaluate.methods")
    out = {}
    for method, path in samples.items():
        try:
            out[method] = open_samples(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read samples netCDF {path} for method {method!r} ({exc})") from exc
    return out


def has_members(ds: Any) -> bool:
    return "thetao_members" in ds and ds.sizes.get("member", 0) >= 2
