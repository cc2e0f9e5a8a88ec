"""Subsetting a gridded variable: region, depth levels (``select``) and one period (``period_slice``).

``select`` is lazy: it recognises the axes (`depthdif.data.axes`), renames them to
(time, depth, latitude, longitude), subsets region and depth levels and sorts; values
are loaded by ``period_slice`` (one period) or ``depthdif.data.cf.finalize``.

Longitudes: [-180, 180) ascending. A region that crosses the dateline (lon_min > lon_max
after wrapping) keeps a spatially contiguous, ascending axis that starts at lon_min and
runs past 180 (e.g. 170 .. 190), like ``copernicusmarine subset`` writes it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from depthdif.data import periods as _periods
from depthdif.data.axes import (
    ROLES,
    TOL,
    depth_values,
    find_axes,
    horizontal_values,
    scalar_coord,
    time_values,
)
from depthdif.errors import DataError

# ----------------------------------------------------------------------------- region

def lon_window(region: dict[str, float]) -> tuple[float, float]:
    """(west edge in [-180, 180), eastward width in (0, 360]) of a region's longitudes."""
    west = (float(region["lon_min"]) + 180.0) % 360.0 - 180.0
    width = float(region["lon_max"]) - float(region["lon_min"])
    if width >= 360.0:
        return -180.0, 360.0
    width = width % 360.0
    if width == 0.0:
        width = 360.0 if region["lon_max"] != region["lon_min"] else 0.0
    return west, width


def wrap_lon(lon: np.ndarray, region: dict[str, float]) -> np.ndarray:
    """Longitudes in the region's window [west, west + 360): [-180, 180) unless it crosses 180."""
    west, _ = lon_window(region)
    return (np.asarray(lon, dtype=np.float64) - west) % 360.0 + west


def _region_indices(lat: np.ndarray, lon: np.ndarray, region: dict[str, float],
                    source_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending index arrays into lat/lon inside the region (inclusive), and wrapped lon."""
    lat_in = np.flatnonzero((lat >= region["lat_min"] - TOL) & (lat <= region["lat_max"] + TOL))
    west, width = lon_window(region)
    wrapped = wrap_lon(lon, region)
    lon_in = np.flatnonzero(wrapped - west <= width + TOL)
    if lat_in.size == 0 or lon_in.size == 0:
        raise DataError(
            f"config key 'data.region' {dict(region)} selects no grid point of "
            f"{source_name or 'the dataset'}: its latitude spans {np.nanmin(lat):g}..{np.nanmax(lat):g} "
            f"and its longitude {np.nanmin(lon):g}..{np.nanmax(lon):g}. Change data.region."
        )
    lat_in = lat_in[np.argsort(lat[lat_in], kind="stable")]
    # np.unique sorts and drops repeated columns (e.g. both 0 and 360 in a global file).
    lon_in = lon_in[np.unique(wrapped[lon_in], return_index=True)[1]]
    return lat_in, lon_in, wrapped


# ----------------------------------------------------------------------------- select

def select(
    ds: xr.Dataset,
    variable: str,
    *,
    depth_levels: Sequence[float] | None,
    depth_selection: str = "nearest",
    region: dict[str, float],
    source_name: str = "",
) -> xr.DataArray:
    """Lazy standard view of `variable`: dims among (time, depth, latitude, longitude).

    Region subset (inclusive), latitude ascending, longitudes wrapped (see module doc),
    depth levels picked by nearest value or by index into the ascending depth axis
    (``depth_levels=None`` keeps all levels). Values are not loaded.
    """
    src = source_name or "dataset"
    if variable not in ds.data_vars:
        raise DataError(
            f"{src}: variable {variable!r} not found (config key 'data.variable' or the EO "
            f"variable); available variables: {sorted(map(str, ds.data_vars))}."
        )
    da = ds[variable]
    axes = find_axes(ds, da, src)
    lat = horizontal_values(ds, da, axes["latitude"], "latitude", src)  # type: ignore[arg-type]
    lon = horizontal_values(ds, da, axes["longitude"], "longitude", src)  # type: ignore[arg-type]
    lat_idx, lon_idx, wrapped = _region_indices(lat, lon, region, src)

    time_dim, depth_dim = axes["time"], axes["depth"]
    scalar_time = scalar_coord(da, "time")
    times, is_date = time_values(ds, time_dim, da.sizes[time_dim] if time_dim else 1, scalar_time)

    keys: dict[str, Any] = {axes["latitude"]: lat_idx, axes["longitude"]: lon_idx}
    coords: dict[str, Any] = {"latitude": lat[lat_idx], "longitude": wrapped[lon_idx]}
    if time_dim is not None:
        coords["time"] = times
    depth_value = None
    if depth_dim is not None:
        depth_idx, depth_value = _depth_indices(ds, depth_dim, da.sizes[depth_dim], depth_levels,
                                                depth_selection, src)
        keys[depth_dim] = depth_idx
        coords["depth"] = depth_value
    elif depth_levels is not None and len(depth_levels) > 1:
        raise DataError(
            f"{src}: variable {variable!r} has no depth axis but config key 'data.depth_levels' "
            f"asks for {len(depth_levels)} levels {list(depth_levels)}; give one level or a 3-D/4-D file."
        )
    extra = [d for d in da.dims if d not in {axes[r] for r in ROLES}]
    keys.update({d: 0 for d in extra})

    out = da.drop_vars(list(da.coords)).isel(keys)
    out = out.rename({axes[r]: r for r in ROLES if axes[r] is not None})
    out = out.transpose(*[r for r in ROLES if r in out.dims])
    out = out.assign_coords({k: (k, np.asarray(v)) for k, v in coords.items()})
    if time_dim is None:
        out = out.assign_coords(time=times[0])
    if depth_dim is None:
        out = out.assign_coords(depth=_scalar_depth(da, depth_levels, depth_selection))
    out.attrs = dict(da.attrs)
    out.attrs.update(source_variable=variable, source_name=source_name, time_is_date=int(is_date))
    out.name = variable
    return out


def _scalar_depth(da: xr.DataArray, depth_levels: Sequence[float] | None, selection: str) -> float:
    value = scalar_coord(da, "depth")
    if value is not None:
        return abs(float(value))
    if depth_levels and selection == "nearest":
        return float(depth_levels[0])
    return 0.0


def _depth_indices(ds: xr.Dataset, dim: str, n: int, levels: Sequence[float] | None,
                   selection: str, src: str) -> tuple[np.ndarray, np.ndarray]:
    values = depth_values(ds, dim)
    if values is None:
        if levels is not None and selection == "nearest":
            raise DataError(
                f"{src}: depth dimension {dim!r} has no coordinate values, so levels cannot be "
                "picked by value; set config key 'data.depth_selection: index'."
            )
        values = np.arange(n, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    if levels is None:
        idx = order
    elif selection == "index":
        wanted = np.asarray(levels, dtype=np.float64)
        if np.any(wanted != np.round(wanted)) or np.any(wanted < 0) or np.any(wanted >= n):
            raise DataError(
                f"config key 'data.depth_levels' {list(levels)}: with depth_selection 'index' "
                f"they must be integer indices in 0..{n - 1} of the depth axis of {src}."
            )
        idx = order[wanted.astype(np.int64)]
    else:
        sorted_values = values[order]
        nearest = np.abs(sorted_values[None, :] - np.asarray(levels, float)[:, None]).argmin(axis=1)
        idx = order[nearest]
    if len(set(idx.tolist())) != len(idx):
        raise DataError(
            f"config key 'data.depth_levels' {list(levels or [])}: two levels map to the same depth "
            f"of {src} (its levels: {np.round(np.sort(values), 2).tolist()}); pick distinct levels."
        )
    idx = idx[np.argsort(values[idx], kind="stable")]  # output depth ascending
    return idx, values[idx]


# ----------------------------------------------------------------------------- time

def period_slice(pieces: Sequence[tuple[xr.DataArray, str]], period: str) -> xr.DataArray:
    """Load one period from lazy `select` outputs of consecutive files (time size 1).

    Monthly ``YYYY-MM``: mean of all time steps inside the month (stamped at the month
    start). ``tNNNN``: time index NNNN of the files' time axes laid end to end.
    """
    names = ", ".join(name for _, name in pieces)
    if _periods.is_index_period(period):
        index = _periods.time_index(period)
        offset = 0
        for da, _ in pieces:
            n = da.sizes.get("time", 1)
            if index < offset + n:
                local = index - offset
                step = da.isel(time=[local]) if "time" in da.dims else da.expand_dims("time")
                return step.load()
            offset += n
        raise DataError(
            f"period {period!r} (data.periods) is beyond the {offset} time steps of {names}; "
            f"use t0000..t{offset - 1:04d}."
        )
    start, end = _periods.period_bounds(period)  # type: ignore[misc]
    chosen, covered = [], []
    for da, name in pieces:
        if "time" not in da.dims:
            raise DataError(
                f"{name}: {da.name!r} has no time axis, so the monthly period {period!r} cannot be "
                "selected; label data.periods as ['t0000'] to use its single field."
            )
        if not da.attrs.get("time_is_date", 1):
            raise DataError(
                f"{name}: the time axis of {da.name!r} is not a date (e.g. a climatology 'month' "
                f"axis), so the monthly period {period!r} cannot be selected; label data.periods as "
                "t0000, t0001, ... (time indices) instead."
            )
        times = da["time"].values
        covered.append((times.min(), times.max()))
        inside = np.flatnonzero((times >= start) & (times < end))
        if inside.size:
            chosen.append(da.isel(time=inside).load())
    if not chosen:
        span = f"{min(c[0] for c in covered)} .. {max(c[1] for c in covered)}" if covered else "nothing"
        raise DataError(
            f"no time step of {names} falls in period {period!r} (data.periods); the files cover "
            f"{span}. Adjust data.periods or data.netcdf.paths."
        )
    joined = xr.concat(chosen, dim="time") if len(chosen) > 1 else chosen[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN land cells
        mean = joined.mean("time", skipna=True, keep_attrs=True)
    return mean.expand_dims(time=[start])
