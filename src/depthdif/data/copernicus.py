"""Copernicus Marine source: GLORYS thetao and OSTIA SST via ``copernicusmarine.subset`` (v2 API).

Credentials are never handled here: the toolbox reads COPERNICUSMARINE_SERVICE_USERNAME /
COPERNICUSMARINE_SERVICE_PASSWORD or its credentials file itself; we only check that one
of them exists so a missing login fails early with a useful message.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from depthdif.data import cf, regrid, subset
from depthdif.data import periods as _periods
from depthdif.data.netcdf import open_netcdf
from depthdif.data.synthetic import GLORYS_DEPTHS
from depthdif.errors import CredentialsError, DataError

log = logging.getLogger(__name__)

CREDENTIALS_FILENAME = ".copernicusmarine-credentials"  # toolbox's DEFAULT_CLIENT_CREDENTIALS_FILENAME
ENV_USER = "COPERNICUSMARINE_SERVICE_USERNAME"
ENV_PASSWORD = "COPERNICUSMARINE_SERVICE_PASSWORD"
_LOGIN_HELP = (
    "Log in once with `copernicusmarine login` (writes ~/.copernicusmarine/"
    ".copernicusmarine-credentials), or export COPERNICUSMARINE_SERVICE_USERNAME and "
    "COPERNICUSMARINE_SERVICE_PASSWORD, or set config key 'data.copernicus.credentials_file'. "
    "Register for free at https://data.marine.copernicus.eu/register."
)


def default_credentials_files() -> list[Path]:
    """Files the toolbox reads when no env vars are set (same order as copernicusmarine 2.x)."""
    base = os.environ.get("COPERNICUSMARINE_CREDENTIALS_DIRECTORY")
    directory = Path(base) if base else Path.home() / ".copernicusmarine"
    return [
        directory / CREDENTIALS_FILENAME,
        Path.home() / "motuclient" / "motuclient-python.ini",
        Path.home() / ".netrc",
    ]


def check_credentials(data_cfg: dict[str, Any]) -> None:
    """Raise CredentialsError (saying how to log in) when no credentials can be found."""
    if (os.environ.get(ENV_USER) or os.environ.get("COPERNICUS_MARINE_SERVICE_USERNAME")) and (
        os.environ.get(ENV_PASSWORD) or os.environ.get("COPERNICUS_MARINE_SERVICE_PASSWORD")
    ):
        return
    configured = data_cfg["copernicus"].get("credentials_file")
    if configured:
        path = Path(os.path.expanduser(configured))
        if path.is_file():
            return
        raise CredentialsError(
            f"config key 'data.copernicus.credentials_file': {path} does not exist. {_LOGIN_HELP}"
        )
    candidates = default_credentials_files()
    if any(path.is_file() for path in candidates):
        return
    raise CredentialsError(
        "no Copernicus Marine credentials found (neither the environment variables "
        f"{ENV_USER}/{ENV_PASSWORD} nor any of {[str(p) for p in candidates]}). {_LOGIN_HELP}"
    )


def request_depths(data_cfg: dict[str, Any]) -> list[float]:
    """Depth levels (m) to request: by value, or GLORYS indices turned into their depths."""
    levels = [float(v) for v in data_cfg["depth_levels"]]
    if data_cfg["depth_selection"] == "index":
        idx = np.asarray(levels)
        if np.any(idx != np.round(idx)) or idx.min() < 0 or idx.max() >= GLORYS_DEPTHS.size:
            raise DataError(
                f"config key 'data.depth_levels' {levels}: with depth_selection 'index' the "
                f"copernicus source needs integer GLORYS level indices 0..{GLORYS_DEPTHS.size - 1}."
            )
        return GLORYS_DEPTHS[idx.astype(int)].tolist()
    return levels


def subset_kwargs(
    period: str,
    data_cfg: dict[str, Any],
    kind: str,
    output_directory: str | os.PathLike[str],
    output_filename: str,
) -> dict[str, Any]:
    """Keyword arguments of ``copernicusmarine.subset`` for one month of thetao or EO.

    ``coordinates_selection_method='outside'`` returns the smallest box covering the region
    and depth range (so nearest levels and region edges are included); the extra time step
    it may add is dropped again in post-processing. No username/password is ever passed.
    """
    if kind not in {"thetao", "eo"}:
        raise ValueError(f"kind must be 'thetao' or 'eo', not {kind!r}")
    bounds = _periods.period_bounds(period)
    if bounds is None:
        raise DataError(
            f"period {period!r}: the copernicus source needs monthly 'YYYY-MM' labels in data.periods."
        )
    start, end = bounds
    cop, region = data_cfg["copernicus"], data_cfg["region"]
    kwargs: dict[str, Any] = {
        "dataset_id": cop["dataset_id"] if kind == "thetao" else cop["eo_dataset_id"],
        "variables": [data_cfg["variable"] if kind == "thetao" else cop["eo_variable"]],
        "minimum_longitude": float(region["lon_min"]),
        "maximum_longitude": float(region["lon_max"]),
        "minimum_latitude": float(region["lat_min"]),
        "maximum_latitude": float(region["lat_max"]),
        "start_datetime": str(start.astype("datetime64[s]")),
        "end_datetime": str((end - np.timedelta64(1, "s")).astype("datetime64[s]")),
        "coordinates_selection_method": "outside",
        "output_directory": str(output_directory),
        "output_filename": output_filename,
        "file_format": "netcdf",
        "overwrite": True,
        "disable_progress_bar": True,
    }
    if kind == "thetao":
        depths = request_depths(data_cfg)
        kwargs["minimum_depth"] = min(depths)
        kwargs["maximum_depth"] = max(depths)
        if cop.get("dataset_version"):
            kwargs["dataset_version"] = cop["dataset_version"]
    if cop.get("credentials_file"):
        kwargs["credentials_file"] = os.path.expanduser(cop["credentials_file"])
    return kwargs


def postprocess_thetao(raw: str | os.PathLike[str], data_cfg: dict[str, Any],
                       out: str | os.PathLike[str], period: str | None = None) -> xr.Dataset:
    """Downloaded subset -> contract thetao file (monthly mean of the steps in `period`)."""
    with open_netcdf(raw) as ds:
        view = subset.select(ds, data_cfg["variable"], depth_levels=request_depths(data_cfg),
                         depth_selection="nearest", region=data_cfg["region"], source_name=str(raw))
        step = _one_step(view, str(raw), period)
        result = cf.finalize(step, source_name=f"copernicus:{data_cfg['copernicus']['dataset_id']}")
    cf.write_cf(result, out)
    return result


def postprocess_ostia(raw_sst: str | os.PathLike[str], thetao_path: str | os.PathLike[str],
                      data_cfg: dict[str, Any], out: str | os.PathLike[str],
                      period: str | None = None) -> xr.Dataset:
    """Downloaded SST -> ``analysed_sst`` degC on the thetao grid (NaN on thetao land)."""
    with xr.open_dataset(thetao_path) as thetao_file:
        thetao = thetao_file.load()
    variable = data_cfg["copernicus"]["eo_variable"]
    with open_netcdf(raw_sst) as raw:
        region = regrid.padded_region(raw, variable, {
            "lat_min": float(thetao["latitude"].min()), "lat_max": float(thetao["latitude"].max()),
            "lon_min": float(thetao["longitude"].min()), "lon_max": float(thetao["longitude"].max()),
        })
        view = subset.select(raw, variable, depth_levels=None, region=region, source_name=str(raw_sst))
        step = _one_step(view, str(raw_sst), period)
        eo = cf.finalize(step, source_name=str(raw_sst))
    ocean = np.isfinite(thetao["thetao"].values[0, 0])
    values = regrid.regrid_surface(eo["thetao"].isel(time=0, depth=0), thetao["latitude"].values,
                               thetao["longitude"].values, ocean, source_name=str(raw_sst))
    grid = cf.make_dataset(values[None, None], time=thetao["time"].values, depth=[0.0],
                           latitude=thetao["latitude"].values, longitude=thetao["longitude"].values,
                           attrs={"source_variable": variable,
                                  "source_units": eo["thetao"].attrs.get("source_units", "")},
                           source=f"copernicus:{data_cfg['copernicus']['eo_dataset_id']}")
    result = cf.surface_field(grid)
    cf.write_cf(result, out)
    return result


def _one_step(view: xr.DataArray, name: str, period: str | None) -> xr.DataArray:
    """The month's mean (period given) or the file's mean over its time steps."""
    if period is not None:
        return subset.period_slice([(view, name)], period)
    if "time" in view.dims:
        first = view["time"].values[:1]
        return view.load().mean("time", keep_attrs=True).expand_dims(time=first)
    return view.load()


def retrieve_period(
    period: str,
    data_cfg: dict[str, Any],
    thetao_path: str | os.PathLike[str],
    eo_path: str | os.PathLike[str] | None = None,
) -> None:
    """Download one month of thetao (and OSTIA SST when `eo_path`) and post-process them."""
    import copernicusmarine  # heavy import; only this source needs it

    check_credentials(data_cfg)
    target = Path(thetao_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".copernicus-", dir=target.parent) as tmp:
        raw = _download(copernicusmarine, subset_kwargs(period, data_cfg, "thetao", tmp, "thetao.nc"))
        postprocess_thetao(raw, data_cfg, thetao_path, period=period)
        if eo_path is not None:
            raw_sst = _download(copernicusmarine, subset_kwargs(period, data_cfg, "eo", tmp, "sst.nc"))
            postprocess_ostia(raw_sst, thetao_path, data_cfg, eo_path, period=period)


def _download(toolbox: Any, kwargs: dict[str, Any]) -> Path:
    log.info("copernicusmarine.subset(%s)", ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items())))
    try:
        response = toolbox.subset(**kwargs)
    except Exception as exc:  # the toolbox raises its own exception types
        raise DataError(
            f"copernicusmarine.subset failed for dataset {kwargs['dataset_id']!r} "
            f"({kwargs['start_datetime']}..{kwargs['end_datetime']}): {type(exc).__name__}: {exc}. "
            "Check data.copernicus.dataset_id / eo_dataset_id, data.variable, data.region and "
            "your network / login."
        ) from exc
    path = Path(kwargs["output_directory"]) / kwargs["output_filename"]
    if not path.is_file() and getattr(response, "file_path", None):
        path = Path(response.file_path)
    if not path.is_file():
        raise DataError(f"copernicusmarine.subset wrote no file at {path} for {kwargs['dataset_id']!r}.")
    return path
