"""CF standardisation: any gridded lat/lon(/depth/time) variable -> the raw-data contract.

Pipeline for every source: ``select`` (`depthdif.data.subset`; lazy: recognise axes,
rename, region / depth subset, sort) -> optional ``period_slice`` (load one period) ->
``finalize`` (load, fill values, kelvin -> degC, physical range mask, float32
``thetao(time, depth, latitude, longitude)``) -> ``write_cf``. ``standardize`` =
``finalize(select(...))``. EO fields are put on the thetao grid by `depthdif.data.regrid`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from depthdif.data.axes import ROLES
from depthdif.data.subset import select
from depthdif.errors import DataError
from depthdif.io import atomic_output

_KELVIN_UNITS = frozenset({"k", "kelvin", "kelvins", "degk", "deg_k", "degrees_k", "degree_k",
                           "degree_kelvin", "degrees_kelvin"})
# Sea water is never colder than about -2.5 degC (freezing point at depth) nor warmer than
# 40 degC (GLORYS valid_max); values outside are fill values or corrupt cells -> NaN.
TEMP_RANGE = (-2.5, 40.0)


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
