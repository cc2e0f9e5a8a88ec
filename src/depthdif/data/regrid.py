"""EO (surface) fields on the thetao grid: padded source region, bilinear regrid, NaN-aware smoothing."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from depthdif.data.axes import find_axes, horizontal_values
from depthdif.data.subset import lon_window
from depthdif.errors import DataError


def padded_region(ds: xr.Dataset, variable: str, region: dict[str, float], cells: int = 3) -> dict[str, float]:
    """`region` grown by a few grid cells of `variable`'s grid, so interpolation covers its edges."""
    da = ds[variable]
    axes = find_axes(ds, da)
    steps = []
    for role in ("latitude", "longitude"):
        values = horizontal_values(ds, da, axes[role], role, "")  # type: ignore[arg-type]
        steps.append(float(np.nanmax(np.abs(np.diff(values)))) if values.size > 1 else 1.0)
    pad = cells * max(steps)
    west, width = lon_window(region)
    grown = {
        "lat_min": max(-90.0, region["lat_min"] - pad),
        "lat_max": min(90.0, region["lat_max"] + pad),
        "lon_min": west - pad,
        "lon_max": west + width + pad,
    }
    if width + 2 * pad >= 360.0:
        grown["lon_min"], grown["lon_max"] = -180.0, 180.0
    return grown


def regrid_surface(field: xr.DataArray, latitude: np.ndarray, longitude: np.ndarray,
                   ocean: np.ndarray, source_name: str = "") -> np.ndarray:
    """Bilinear regrid of a 2-D (latitude, longitude) field onto a target grid.

    Source NaNs (its own land) are first filled with the nearest valid value so coastal
    target ocean cells get a value; the result is NaN where ``~ocean`` (target land) and
    where the source grid does not reach (more than 1.5 source cells beyond its edge).
    """
    values = np.asarray(field.values, dtype=np.float64)
    valid = np.isfinite(values)
    if not valid.any():
        raise DataError(f"{source_name or 'EO field'} has no valid value over data.region.")
    if not valid.all():
        _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
        values = values[iy, ix]
    centre = 0.5 * (float(np.min(longitude)) + float(np.max(longitude)))
    lon = (field["longitude"].values - (centre - 180.0)) % 360.0 + (centre - 180.0)
    order = np.argsort(lon, kind="stable")
    src_lat, src_lon = np.asarray(field["latitude"].values, dtype=np.float64), lon[order]
    src = xr.DataArray(values[:, order], dims=("latitude", "longitude"),
                       coords={"latitude": src_lat, "longitude": src_lon})
    # Targets within 1.5 source cells of the source edge take the edge value (clipped query);
    # farther out the source does not cover them -> NaN.
    query, covered = {}, []
    for name, target, source in (("latitude", latitude, src_lat), ("longitude", longitude, src_lon)):
        target = np.asarray(target, dtype=np.float64)
        step = float(np.max(np.abs(np.diff(source)))) if source.size > 1 else 1.0
        query[name] = np.clip(target, source.min(), source.max())
        covered.append((target >= source.min() - 1.5 * step) & (target <= source.max() + 1.5 * step))
    method = "linear" if min(src.sizes.values()) > 1 else "nearest"
    out = src.interp(query, method=method)
    result = np.asarray(out.values, dtype=np.float32)
    result[~(covered[0][:, None] & covered[1][None, :])] = np.nan
    result[~ocean] = np.nan
    return result


def smooth_nan(field: np.ndarray, sigma: float) -> np.ndarray:
    """NaN-aware Gaussian smoothing (normalised convolution): G*(f·m) / G*m, NaN stays NaN."""
    if sigma <= 0:
        return np.array(field, dtype=np.float32, copy=True)
    valid = np.isfinite(field)
    filled = np.where(valid, field, 0.0).astype(np.float64)
    num = ndimage.gaussian_filter(filled, sigma, mode="nearest")
    den = ndimage.gaussian_filter(valid.astype(np.float64), sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out.astype(np.float32)
