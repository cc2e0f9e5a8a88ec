"""CF standardisation: any gridded lat/lon(/depth/time) variable -> the raw-data contract.

Pipeline for every source: ``select`` (lazy: recognise axes, rename, region / depth
subset, sort) -> optional ``period_slice`` (load one period) -> ``finalize`` (load, fill
values, kelvin -> degC, physical range mask, float32 ``thetao(time, depth, latitude,
longitude)``). ``standardize`` = ``finalize(select(...))``.

Longitudes: [-180, 180) ascending. A region that crosses the dateline (lon_min > lon_max
after wrapping) keeps a spatially contiguous, ascending axis that starts at lon_min and
runs past 180 (e.g. 170 .. 190), like ``copernicusmarine subset`` writes it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage

from depthdif.data import periods as _periods
from depthdif.errors import DataError
from depthdif.io import atomic_output

ROLES = ("time", "depth", "latitude", "longitude")
ROLE_NAMES: dict[str, frozenset[str]] = {
    "time": frozenset({"time", "month", "months", "t", "time_counter", "time_centered",
                       "valid_time", "date", "times"}),
    "depth": frozenset({"depth", "deptht", "depthu", "depthv", "depthw", "lev", "level",
                        "levels", "z", "z_t", "z_l", "zt", "olevel", "st_ocean", "sw_ocean",
                        "nav_lev"}),
    "latitude": frozenset({"latitude", "lat", "nav_lat", "y", "rlat", "yt_ocean", "yu_ocean",
                           "yh", "yq", "lat_rho", "gphit"}),
    "longitude": frozenset({"longitude", "lon", "nav_lon", "x", "rlon", "xt_ocean", "xu_ocean",
                            "xh", "xq", "lon_rho", "glamt"}),
}
_GENERIC = frozenset({"x", "y", "t", "z"})  # index-like names: weakest evidence
_KELVIN_UNITS = frozenset({"k", "kelvin", "kelvins", "degk", "deg_k", "degrees_k", "degree_k",
                           "degree_kelvin", "degrees_kelvin"})
# Sea water is never colder than about -2.5 degC (freezing point at depth) nor warmer than
# 40 degC (GLORYS valid_max); values outside are fill values or corrupt cells -> NaN.
TEMP_RANGE = (-2.5, 40.0)
_EPOCH = np.datetime64("1970-01-01", "ns")
_TOL = 1e-4  # degrees; float32 coordinates on a region edge still count as inside


# ----------------------------------------------------------------------------- axes

def _role_score(name: str, attrs: dict[str, Any], role: str, dtype: np.dtype | None = None) -> float:
    """Evidence that a variable/dimension is the `role` axis: 2 attrs, 1 name, 0.5 generic name."""
    standard = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower().replace(" ", "")
    axis = str(attrs.get("axis", "")).upper()
    if role == "latitude" and (standard in {"latitude", "grid_latitude"} or axis == "Y"
                               or units in {"degrees_north", "degree_north", "degrees_n", "degn"}):
        return 2.0
    if role == "longitude" and (standard in {"longitude", "grid_longitude"} or axis == "X"
                                or units in {"degrees_east", "degree_east", "degrees_e", "dege"}):
        return 2.0
    if role == "depth" and (standard in {"depth", "depth_below_sea_surface"} or axis == "Z"
                            or "positive" in attrs):
        return 2.0
    if role == "time" and (standard == "time" or axis == "T"
                           or (dtype is not None and np.issubdtype(dtype, np.datetime64))):
        return 2.0
    lname = name.lower()
    if lname in ROLE_NAMES[role]:
        return 0.5 if lname in _GENERIC else 1.0
    return 0.0


def find_axes(ds: xr.Dataset, da: xr.DataArray, source_name: str = "") -> dict[str, str | None]:
    """Map each role (time, depth, latitude, longitude) to a dimension of `da` (or None)."""
    found: dict[str, str | None] = dict.fromkeys(ROLES)
    unknown = []
    for dim in da.dims:
        var = ds.variables.get(dim)
        attrs = dict(var.attrs) if var is not None else {}
        dtype = var.dtype if var is not None else None
        scores = {role: _role_score(str(dim), attrs, role, dtype) for role in ROLES}
        role = max(scores, key=scores.__getitem__)
        if scores[role] == 0:
            unknown.append(dim)
            continue
        if found[role] is not None:
            raise DataError(
                f"{source_name or 'dataset'}: variable {da.name!r} has two {role} dimensions "
                f"({found[role]!r} and {dim!r}); keep one (e.g. with ncks) before using it."
            )
        found[role] = str(dim)
    for role in ("latitude", "longitude"):
        if found[role] is None:
            raise DataError(
                f"{source_name or 'dataset'}: variable {da.name!r} with dims {tuple(da.dims)} has "
                f"no {role} dimension; expected one of {sorted(ROLE_NAMES[role])} or CF attributes."
            )
    for dim in unknown:
        if da.sizes[dim] != 1:
            raise DataError(
                f"{source_name or 'dataset'}: variable {da.name!r} has dimension {dim!r} "
                f"(size {da.sizes[dim]}) that is not time, depth, latitude or longitude; "
                "select one element of it before using the file."
            )
    return found


def _horizontal_values(ds: xr.Dataset, da: xr.DataArray, dim: str, role: str,
                       source_name: str) -> np.ndarray:
    """1-D coordinate values of a horizontal dimension (also from separable 2-D lat/lon)."""
    best: tuple[float, bool, str] | None = None
    for name, var in ds.variables.items():
        if dim not in var.dims or var.ndim > 2 or not set(var.dims) <= set(da.dims):
            continue
        score = _role_score(str(name), dict(var.attrs), role)
        if score and (best is None or (score, var.ndim == 1) > best[:2]):
            best = (score, var.ndim == 1, str(name))
    if best is None:
        raise DataError(f"{source_name or 'dataset'}: no {role} coordinate for dimension {dim!r}.")
    var = ds.variables[best[2]]
    values = np.asarray(var.values, dtype=np.float64)
    if var.ndim == 2:
        other = var.dims.index(dim) ^ 1
        first = np.take(values, [0], axis=other)
        if np.nanmax(np.abs(values - first)) > 1e-4:
            raise DataError(
                f"{source_name or 'dataset'}: {best[2]!r} is a curvilinear 2-D {role}; regrid the "
                "file to a regular latitude/longitude grid first (e.g. with xesmf or cdo remapbil)."
            )
        values = first.ravel()
    if role == "latitude" and np.nanmax(np.abs(values)) > 90 + _TOL:
        raise DataError(f"{source_name or 'dataset'}: {best[2]!r} values exceed ±90, not a latitude.")
    return values


def _time_values(ds: xr.Dataset, dim: str | None, n: int, scalar: Any = None) -> tuple[np.ndarray, bool]:
    """datetime64[ns] values of the time axis and whether they are real dates.

    A climatological ``month`` axis (1..12) becomes 1970-MM-01 and a plain numeric axis
    the epoch; both are flagged as not dates (use ``tNNNN`` period labels for them).
    """
    raw = ds[dim].values if dim is not None and dim in ds.variables else scalar
    if raw is None:
        return np.full(n, _EPOCH), False
    raw = np.atleast_1d(np.asarray(raw))
    if np.issubdtype(raw.dtype, np.datetime64):
        return raw.astype("datetime64[ns]"), True
    if raw.dtype == object and hasattr(raw.flat[0], "year"):  # cftime: keep the calendar date
        text = [f"{t.year:04d}-{t.month:02d}-{min(t.day, 28):02d}" for t in raw]
        return np.array(text, dtype="datetime64[ns]"), True
    if np.issubdtype(raw.dtype, np.number) and dim is not None and "month" in dim.lower():
        months = raw.astype(np.int64)
        if np.all((months >= 1) & (months <= 12)) and np.all(months == raw):
            return np.array([f"1970-{m:02d}-01" for m in months], dtype="datetime64[ns]"), False
    return np.full(n, _EPOCH), False


def _depth_values(ds: xr.Dataset, dim: str) -> np.ndarray | None:
    """Depth in metres, positive down (None when the dimension has no coordinate)."""
    if dim not in ds.variables:
        return None
    var = ds.variables[dim]
    values = np.asarray(var.values, dtype=np.float64)
    units = str(var.attrs.get("units", "m")).lower()
    if units in {"cm", "centimeter", "centimeters", "centimetre", "centimetres"}:
        values = values / 100.0
    if str(var.attrs.get("positive", "")).lower() == "up" or (np.all(values <= 0) and np.any(values < 0)):
        values = -values
    return values


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
    lat_in = np.flatnonzero((lat >= region["lat_min"] - _TOL) & (lat <= region["lat_max"] + _TOL))
    west, width = lon_window(region)
    wrapped = wrap_lon(lon, region)
    lon_in = np.flatnonzero(wrapped - west <= width + _TOL)
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
    lat = _horizontal_values(ds, da, axes["latitude"], "latitude", src)  # type: ignore[arg-type]
    lon = _horizontal_values(ds, da, axes["longitude"], "longitude", src)  # type: ignore[arg-type]
    lat_idx, lon_idx, wrapped = _region_indices(lat, lon, region, src)

    time_dim, depth_dim = axes["time"], axes["depth"]
    scalar_time = _scalar_coord(da, "time")
    times, is_date = _time_values(ds, time_dim, da.sizes[time_dim] if time_dim else 1, scalar_time)

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


def _scalar_coord(da: xr.DataArray, role: str) -> Any:
    for name, coord in da.coords.items():
        if coord.ndim == 0 and _role_score(str(name), dict(coord.attrs), role, coord.dtype):
            return coord.values
    return None


def _scalar_depth(da: xr.DataArray, depth_levels: Sequence[float] | None, selection: str) -> float:
    value = _scalar_coord(da, "depth")
    if value is not None:
        return abs(float(value))
    if depth_levels and selection == "nearest":
        return float(depth_levels[0])
    return 0.0


def _depth_indices(ds: xr.Dataset, dim: str, n: int, levels: Sequence[float] | None,
                   selection: str, src: str) -> tuple[np.ndarray, np.ndarray]:
    values = _depth_values(ds, dim)
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


# ----------------------------------------------------------------------------- finalize

def to_celsius(values: np.ndarray, units: str) -> tuple[np.ndarray, bool]:
    """Kelvin -> degC when `units` says kelvin or values are clearly kelvin (median > 150)."""
    finite = values[np.abs(values) < 1e3]  # plausible in either unit; ignores NaN and fills
    kelvin = units.strip().lower().replace(" ", "_") in _KELVIN_UNITS
    if finite.size and float(np.median(finite)) > 150.0:
        kelvin = True
    return (values - np.float32(273.15) if kelvin else values), kelvin


def finalize(da: xr.DataArray, *, source_name: str = "") -> xr.Dataset:
    """Load a `select` view into the contract Dataset ``thetao(time, depth, lat, lon)`` degC."""
    attrs = dict(da.attrs)
    if "time" not in da.dims:
        da = da.expand_dims("time")
    if "depth" not in da.dims:
        da = da.expand_dims("depth")
    da = da.transpose(*ROLES)
    try:
        values = np.array(da.values, dtype=np.float32)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"{source_name or 'dataset'} is not a readable netCDF file (reading "
            f"{da.name!r} failed: {exc}); re-download or re-create it."
        ) from exc
    for key in ("_FillValue", "missing_value"):  # only present when not decoded by xarray
        if key in attrs:
            values[values == np.float32(attrs[key])] = np.nan
    values[~np.isfinite(values)] = np.nan
    values, converted = to_celsius(values, str(attrs.get("units", "")))
    outside = (values < TEMP_RANGE[0]) | (values > TEMP_RANGE[1])
    values[outside] = np.nan
    return make_dataset(
        values,
        time=da["time"].values,
        depth=da["depth"].values,
        latitude=da["latitude"].values,
        longitude=da["longitude"].values,
        attrs={
            "source_variable": str(attrs.get("source_variable", da.name)),
            "source_units": str(attrs.get("units", "")),
            "converted_from_kelvin": int(converted),
            "n_out_of_range_masked": int(outside.sum()),
        },
        source=source_name or str(attrs.get("source_name", "")),
    )


def make_dataset(
    values: np.ndarray,
    *,
    time: np.ndarray,
    depth: np.ndarray,
    latitude: np.ndarray,
    longitude: np.ndarray,
    attrs: dict[str, Any] | None = None,
    source: str = "",
    name: str = "thetao",
) -> xr.Dataset:
    """The contract Dataset around a (T, C, H, W) float32 degC array."""
    var_attrs = {
        "units": "degC",
        "standard_name": "sea_water_potential_temperature",
        "long_name": "sea water potential temperature",
        **(attrs or {}),
    }
    ds = xr.Dataset(
        {name: (ROLES, np.asarray(values, dtype=np.float32), var_attrs)},
        coords={
            "time": ("time", np.asarray(time).astype("datetime64[ns]"), {"standard_name": "time", "axis": "T"}),
            "depth": ("depth", np.asarray(depth, dtype=np.float32),
                      {"units": "m", "positive": "down", "standard_name": "depth", "axis": "Z"}),
            "latitude": ("latitude", np.asarray(latitude, dtype=np.float64),
                         {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
            "longitude": ("longitude", np.asarray(longitude, dtype=np.float64),
                          {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        },
        attrs={"Conventions": "CF-1.8", "source": source},
    )
    return ds


def surface_field(ds: xr.Dataset, name: str = "analysed_sst") -> xr.Dataset:
    """Rename a one-level contract Dataset into ``name(time, latitude, longitude)`` degC (EO files)."""
    field = ds["thetao"].isel(depth=0, drop=True).rename(name)
    field.attrs.update(standard_name="sea_surface_foundation_temperature" if name == "analysed_sst"
                       else "sea_surface_temperature", long_name="analysed sea surface temperature")
    return field.to_dataset().assign_attrs(ds.attrs)


def write_cf(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a contract Dataset atomically (netCDF4, float32, NaN fill, light compression)."""
    encoding: dict[str, dict[str, Any]] = {
        name: {"zlib": True, "complevel": 1, "dtype": "float32", "_FillValue": np.float32(np.nan)}
        for name in ds.data_vars
    }
    encoding["time"] = {"units": "seconds since 1970-01-01", "dtype": "int64"}
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def standardize(
    ds: xr.Dataset,
    variable: str,
    *,
    depth_levels: Sequence[float] | None,
    depth_selection: str,
    region: dict[str, float],
    source_name: str = "",
) -> xr.Dataset:
    """``thetao(time, depth, latitude, longitude)`` float32 degC from any gridded `variable`.

    Keeps every time step; accepts 2-D/3-D/4-D inputs and common axis names; see module doc.
    """
    view = select(ds, variable, depth_levels=depth_levels, depth_selection=depth_selection,
                  region=region, source_name=source_name)
    return finalize(view, source_name=source_name)


# ----------------------------------------------------------------------------- EO regrid

def padded_region(ds: xr.Dataset, variable: str, region: dict[str, float], cells: int = 3) -> dict[str, float]:
    """`region` grown by a few grid cells of `variable`'s grid, so interpolation covers its edges."""
    da = ds[variable]
    axes = find_axes(ds, da)
    steps = []
    for role in ("latitude", "longitude"):
        values = _horizontal_values(ds, da, axes[role], role, "")  # type: ignore[arg-type]
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
