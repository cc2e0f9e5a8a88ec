"""The user's own netCDF files as a data source (``data.source: netcdf``)."""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from depthdif.data import cf, regrid, subset
from depthdif.errors import DataError

EO_CANDIDATES = ("analysed_sst", "surface_temperature", "sst", "tos")


def expand_paths(paths: str | Sequence[str], key: str) -> list[Path]:
    """Files named by a path, a glob, or a list of them (sorted within each glob)."""
    items = [paths] if isinstance(paths, str) else list(paths)
    found: list[Path] = []
    for item in items:
        pattern = os.path.expanduser(str(item))
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for match in matches:
            if not Path(match).is_file():
                raise DataError(f"config key '{key}': file {match!r} does not exist.")
            found.append(Path(match))
    if not found:
        raise DataError(f"config key '{key}': {paths!r} matches no file; give a path or glob.")
    return found


def open_netcdf(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open lazily; an unreadable file raises DataError naming it."""
    try:
        return xr.open_dataset(path)
    except Exception as exc:  # netCDF4/h5py/scipy raise many types for bad files
        raise DataError(
            f"{path} is not a readable netCDF file ({type(exc).__name__}: {exc}); check that it is "
            "complete (re-download it) and in netCDF3/netCDF4 format."
        ) from exc


@contextlib.contextmanager
def _opened(paths: Sequence[Path]) -> Iterator[list[xr.Dataset]]:
    datasets: list[xr.Dataset] = []
    try:
        for path in paths:
            datasets.append(open_netcdf(path))
        yield datasets
    finally:
        for ds in datasets:
            ds.close()


def load_period(
    paths: Sequence[Path],
    variable: str,
    period: str,
    *,
    depth_levels: Sequence[float] | None,
    depth_selection: str,
    region: dict[str, float],
) -> xr.Dataset:
    """Contract Dataset (time=1) of `variable` for `period` from consecutive files."""
    with _opened(paths) as datasets:
        views = [
            (subset.select(ds, variable, depth_levels=depth_levels, depth_selection=depth_selection,
                       region=region, source_name=str(path)), str(path))
            for ds, path in zip(datasets, paths)
        ]
        try:
            step = subset.period_slice(views, period)
        except (OSError, RuntimeError) as exc:  # truncated files fail only when read
            raise DataError(
                f"one of {[str(p) for p in paths]} is not a readable netCDF file ({exc}); "
                "re-download or re-create it."
            ) from exc
        return cf.finalize(step, source_name=", ".join(map(str, paths)))


def detect_eo_variable(paths: Sequence[Path], configured: str | None) -> str:
    """``data.netcdf.eo_variable`` or the first of analysed_sst / surface_temperature / sst / tos."""
    if configured:
        return configured
    with _opened(paths[:1]) as (ds,):
        names = {str(n).lower(): str(n) for n in ds.data_vars}
    for candidate in EO_CANDIDATES:
        if candidate in names:
            return names[candidate]
    raise DataError(
        f"{paths[0]}: none of {list(EO_CANDIDATES)} found (available: {sorted(names.values())}); "
        "set config key 'data.netcdf.eo_variable'."
    )


def eo_for_grid(paths: Sequence[Path], variable: str, period: str, thetao: xr.Dataset) -> xr.Dataset:
    """EO field for `period` regridded onto `thetao`'s grid: ``analysed_sst(1, lat, lon)`` degC."""
    with _opened(paths[:1]) as (first,):
        region = regrid.padded_region(first, variable, _grid_region(thetao))
    eo = load_period(paths, variable, period, depth_levels=None, depth_selection="nearest", region=region)
    field = eo["thetao"].isel(time=0, depth=0)
    ocean = np.isfinite(thetao["thetao"].values[0, 0])
    values = regrid.regrid_surface(field, thetao["latitude"].values, thetao["longitude"].values, ocean,
                               source_name=", ".join(map(str, paths)))
    out = cf.make_dataset(values[None, None], time=thetao["time"].values, depth=[0.0],
                          latitude=thetao["latitude"].values, longitude=thetao["longitude"].values,
                          attrs={"source_variable": variable,
                                 "source_units": eo["thetao"].attrs.get("source_units", "")},
                          source=", ".join(map(str, paths)))
    return cf.surface_field(out)


def _grid_region(ds: xr.Dataset) -> dict[str, float]:
    lat, lon = ds["latitude"].values, ds["longitude"].values
    return {"lat_min": float(lat.min()), "lat_max": float(lat.max()),
            "lon_min": float(lon.min()), "lon_max": float(lon.max())}


def write_netcdf_period(
    period: str,
    data_cfg: dict[str, Any],
    thetao_path: str | os.PathLike[str],
    eo_path: str | os.PathLike[str] | None = None,
) -> None:
    """Raw thetao (and EO) file of one period from ``data.netcdf.paths`` / ``eo_paths``.

    Monthly period: mean of the file time steps in that month; ``tNNNN``: time index NNNN
    of the files' time axes laid end to end (sorted glob order). The EO files get the
    same period selection, then are regridded onto the thetao grid.
    """
    nc = data_cfg["netcdf"]
    paths = expand_paths(nc["paths"], "data.netcdf.paths")
    thetao = load_period(paths, data_cfg["variable"], period, depth_levels=data_cfg["depth_levels"],
                         depth_selection=data_cfg["depth_selection"], region=data_cfg["region"])
    if np.isnan(thetao["thetao"].values).all():
        raise DataError(
            f"{[str(p) for p in paths]}: variable {data_cfg['variable']!r} has no valid value in "
            f"data.region {data_cfg['region']} for period {period!r}."
        )
    if eo_path is not None:
        eo_paths = expand_paths(nc["eo_paths"], "data.netcdf.eo_paths")
        variable = detect_eo_variable(eo_paths, nc.get("eo_variable"))
        cf.write_cf(eo_for_grid(eo_paths, variable, period, thetao), eo_path)
    cf.write_cf(thetao, thetao_path)
