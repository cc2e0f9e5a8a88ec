"""Axis recognition: which dimension of a gridded variable is time, depth, latitude, longitude.

Evidence per dimension: CF attributes (standard_name, axis, units, positive) first, then
common names (e.g. ``nav_lat``, ``deptht``, ``time_counter``), generic ``x/y/z/t`` last.
Coordinate values: 1-D (or separable 2-D) latitude/longitude, depth in metres positive
down, datetime64 time (climatological ``month`` axes become 1970-MM-01).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from depthdif.errors import DataError

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
TOL = 1e-4  # degrees; float32 coordinates on a region edge still count as inside
_EPOCH = np.datetime64("1970-01-01", "ns")


def role_score(name: str, attrs: dict[str, Any], role: str, dtype: np.dtype | None = None) -> float:
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
        scores = {role: role_score(str(dim), attrs, role, dtype) for role in ROLES}
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


def horizontal_values(ds: xr.Dataset, da: xr.DataArray, dim: str, role: str,
                       source_name: str) -> np.ndarray:
    """1-D coordinate values of a horizontal dimension (also from separable 2-D lat/lon)."""
    best: tuple[float, bool, str] | None = None
    for name, var in ds.variables.items():
        if dim not in var.dims or var.ndim > 2 or not set(var.dims) <= set(da.dims):
            continue
        score = role_score(str(name), dict(var.attrs), role)
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
    if role == "latitude" and np.nanmax(np.abs(values)) > 90 + TOL:
        raise DataError(f"{source_name or 'dataset'}: {best[2]!r} values exceed ±90, not a latitude.")
    return values


def time_values(ds: xr.Dataset, dim: str | None, n: int, scalar: Any = None) -> tuple[np.ndarray, bool]:
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


def depth_values(ds: xr.Dataset, dim: str) -> np.ndarray | None:
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


def scalar_coord(da: xr.DataArray, role: str) -> Any:
    """Value of a scalar (0-d) coordinate of `da` that plays `role` (None if there is none)."""
    for name, coord in da.coords.items():
        if coord.ndim == 0 and role_score(str(name), dict(coord.attrs), role, coord.dtype):
            return coord.values
    return None
