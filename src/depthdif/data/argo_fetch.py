"""Argo profiles of the configured region and periods through argopy (rule ``retrieve_argo``).

A scenario with ``argo_source: argopy`` (modes argo, argo_profiles) gets its Argo file from
argopy instead of the user's ``argo_paths``::

    argopy.DataFetcher(src=argo_fetcher, mode=argo_user_mode, ds="phy"[, gdac=|server=argo_server])
        .region(box).to_xarray(errors="raise")

(``errors="raise"``: a float file that fails to download fails the job instead of going missing),
one call per box ``[lon_min, lon_max, lat_min, lat_max, pres_min, pres_max, date_min, date_max]``
(two boxes when ``data.region`` crosses the dateline; argopy wants lon_min < lon_max in
[-180, 180]). The dates are the first day of the first period and the first day of the month
after the last one: argopy's GDAC fetcher keeps ``date_min <= time < date_max`` (the argopy
docs' one-month example is ``'2007-08-01', '2007-09-01'``); its erddap fetcher asks for
``time <= date_max``, so a profile at exactly midnight of date_max may come back and is dropped
here, like anything outside the region. Pressure runs from 0 to the pressure of the deepest
``data.depth_levels`` (TEOS-10, at the region's highest |latitude|) plus ``argo_pres_margin``
dbar, so the interpolation onto that level has a value below it (argopy may return whole
profiles: its GDAC fetcher cuts by pressure only when more than 25 profiles match).
``argo_server`` (optional) is a GDAC mirror (URL, or a local folder with ``dac/`` and
``ar_index_global_prof.txt``) for the gdac fetcher, an erddap URL for the erddap fetcher.

argopy returns a collection of points (``N_POINTS``); ``Dataset.argo.point2profile()`` turns it
into profiles, written as a GDAC-like ``*_prof.nc`` (``N_PROF`` x ``N_LEVELS``, JULD, the QC
flags as characters) that :mod:`depthdif.data.argo` reads and QCs like the user's own files.
User mode ``expert`` (default) keeps the raw and adjusted values with all their flags, so the
observations are those of the same floats' GDAC files; ``standard`` lets argopy merge the
adjusted values in by data mode and drop every point with a flag other than 1/2 in any QC
variable (a bad salinity then drops the temperature too), before our QC runs on what is left.

argopy (``pip install 'depthdif[argo]'``, or the conda env ``envs/data.yaml``) is imported only
here, when the rule runs. It needs no login.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from depthdif.data import periods as _periods
from depthdif.data.argo import _text
from depthdif.errors import ConfigError, DataError
from depthdif.io import atomic_output

log = logging.getLogger(__name__)

FETCHERS = ("erddap", "gdac")
USER_MODES = ("expert", "standard")
#: deepest pressure argopy accepts in a box (dbar)
MAX_PRESSURE = 10000.0
INSTALL_HELP = (
    "install it with `pip install 'depthdif[argo]'` (or run the workflow with `--sdm conda`, whose "
    "envs/data.yaml has it)"
)
#: argopy point variables the conversion keeps (besides the coordinates TIME, LATITUDE, LONGITUDE)
PROFILE_VARIABLES = ("PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION", "DATA_MODE", "TIME_QC", "POSITION_QC")
LEVEL_VARIABLES = tuple(
    f"{param}{suffix}" for param in ("PRES", "TEMP", "PSAL") for suffix in ("", "_QC", "_ADJUSTED", "_ADJUSTED_QC")
)
REQUIRED_POINT_VARIABLES = (
    "PLATFORM_NUMBER", "CYCLE_NUMBER", "TIME", "TIME_QC", "LATITUDE", "LONGITUDE", "POSITION_QC",
    "DATA_MODE", "PRES", "PRES_QC", "TEMP", "TEMP_QC",
)
_GDAC_NAMES = {"TIME": "JULD", "TIME_QC": "JULD_QC"}
_JULD_ENCODING = {"units": "days since 1950-01-01 00:00:00", "calendar": "standard", "dtype": "float64",
                  "_FillValue": 999999.0}


# --- the request (the rule's params): pure functions of the config ---


def time_range(data_cfg: Mapping[str, Any]) -> tuple[str, str]:
    """('YYYY-MM-DD' first day of the first period, first day after the last period) of data.periods."""
    labels = _periods.list_periods(dict(data_cfg))
    bounds = [_periods.period_bounds(p) for p in labels]
    if any(b is None for b in bounds):
        raise ConfigError(
            f"config key 'data.periods' {labels[:3]}...: argo_source 'argopy' fetches the profiles of the "
            "periods' dates, so it needs monthly 'YYYY-MM' periods; use argo_source 'files' otherwise."
        )
    start = min(b[0] for b in bounds if b is not None)
    end = max(b[1] for b in bounds if b is not None)
    return str(start.astype("datetime64[D]")), str(end.astype("datetime64[D]"))


def lon_spans(lon_min: float, lon_max: float) -> list[tuple[float, float]]:
    """data.region's longitudes as argopy spans (lo < hi, in [-180, 180]); two across the dateline."""
    width = lon_max - lon_min if lon_max > lon_min else lon_max - lon_min + 360.0
    if width >= 360.0:
        return [(-180.0, 180.0)]
    lo = (lon_min + 180.0) % 360.0 - 180.0
    hi = lo + width
    if hi <= 180.0:
        return [(float(lo), float(hi))]
    return [(float(lo), 180.0), (-180.0, float(hi - 360.0))]


def deepest_level_m(data_cfg: Mapping[str, Any]) -> float | None:
    """Depth (m) of the deepest configured level; None when only the netcdf files know it."""
    levels = [float(v) for v in data_cfg["depth_levels"]]
    if data_cfg["depth_selection"] != "index":
        return max(levels)
    if data_cfg["source"] == "netcdf":
        return None
    from depthdif.data.synthetic import GLORYS_DEPTHS  # synthetic and copernicus index GLORYS levels

    deepest = int(max(levels))
    if deepest >= GLORYS_DEPTHS.size:
        return None
    return float(GLORYS_DEPTHS[deepest])


def pressure_max(data_cfg: Mapping[str, Any], margin: float) -> float:
    """Pressure (dbar, whole) of the deepest level at the region's highest |latitude|, plus `margin`."""
    depth = deepest_level_m(data_cfg)
    if depth is None:
        return MAX_PRESSURE
    import gsw

    region = data_cfg["region"]
    lat = max(abs(float(region["lat_min"])), abs(float(region["lat_max"])))
    pressure = float(gsw.p_from_z(-depth, lat))  # p grows with |lat| at a given depth
    return float(min(MAX_PRESSURE, math.ceil(pressure + float(margin))))


def fetch_request(scenario_cfg: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What rule retrieve_argo asks argopy for: {src, mode, ds, server, boxes} (its params: a change reruns it).

    Each box is ``[lon_min, lon_max, lat_min, lat_max, 0.0, pres_max, date_min, date_max]``.
    """
    region = data_cfg["region"]
    start, end = time_range(data_cfg)
    pres = pressure_max(data_cfg, float(scenario_cfg.get("argo_pres_margin", 100.0)))
    boxes = [[lo, hi, float(region["lat_min"]), float(region["lat_max"]), 0.0, pres, start, end]
             for lo, hi in lon_spans(float(region["lon_min"]), float(region["lon_max"]))]
    return {
        "src": scenario_cfg.get("argo_fetcher", "erddap"),
        "mode": scenario_cfg.get("argo_user_mode", "expert"),
        "ds": "phy",
        "server": scenario_cfg.get("argo_server"),
        "boxes": boxes,
    }


def fetcher_kwargs(request: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``argopy.DataFetcher``: the server goes as ``gdac=`` or ``server=`` (erddap)."""
    kwargs: dict[str, Any] = {"src": request["src"], "mode": request["mode"], "ds": request["ds"]}
    if request.get("server"):
        kwargs["gdac" if request["src"] == "gdac" else "server"] = str(request["server"])
    return kwargs


# --- the call boundary ---


def import_argopy(scenario: str = "?") -> Any:
    """The argopy module, or a ConfigError saying how to install it."""
    try:
        import argopy  # xarray is imported first (above): argopy 1.5's lazy import of xarray needs it
    except ImportError as exc:
        raise ConfigError(
            f"config key 'scenarios.{scenario}.argo_source' is 'argopy' but argopy is not installed "
            f"({exc}); {INSTALL_HELP}, or set argo_source: files with your own GDAC *_prof.nc files."
        ) from exc
    return argopy


def describe_call(request: Mapping[str, Any], box: Sequence[Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in fetcher_kwargs(request).items())
    return f"argopy.DataFetcher({args}).region({list(box)!r}).to_xarray(errors='raise')"


def fetch_points(request: Mapping[str, Any], scenario: str = "?") -> list[xr.Dataset]:
    """argopy's point collections of the request's boxes (empty boxes left out).

    argopy's own errors, network and file errors become a DataError naming the fetcher, the
    box and what to do; no profile in any box is a DataError too.
    """
    argopy = import_argopy(scenario)
    from argopy.errors import NoData  # DataNotFound, NoDataLeft: the request matched nothing

    found: list[xr.Dataset] = []
    for box in request["boxes"]:
        call = describe_call(request, box)
        log.info("%s", call)
        try:
            fetcher = argopy.DataFetcher(**fetcher_kwargs(request))
            points = fetcher.region(list(box)).to_xarray(errors="raise")
        except NoData:
            log.info("no Argo data in box %s", list(box))
            continue
        except Exception as exc:  # argopy, aiohttp, fsspec, requests, netCDF: no common base class
            raise DataError(
                f"scenarios.{scenario}: fetching Argo profiles with argopy's {request['src']!r} fetcher "
                f"failed for box {list(box)} ({type(exc).__module__}.{type(exc).__name__}: {exc}); call: "
                f"{call}. Check the network and that the {request['src']} server is up (or set "
                f"scenarios.{scenario}.argo_fetcher to {_other_fetcher(request['src'])!r}, or argo_server to "
                "a mirror), or download the floats' GDAC *_prof.nc files yourself and use argo_source: files "
                "with argo_paths."
            ) from exc
        if points is None or "N_POINTS" not in points.dims or points.sizes["N_POINTS"] == 0:
            log.info("no Argo data in box %s", list(box))
            continue
        log.info("box %s: %d points", list(box), points.sizes["N_POINTS"])
        found.append(points)
    if not found:
        raise _empty(request, scenario, "argopy returned no profile")
    return found


def _other_fetcher(src: str) -> str:
    return "gdac" if src == "erddap" else "erddap"


def _empty(request: Mapping[str, Any], scenario: str, what: str) -> DataError:
    return DataError(
        f"scenarios.{scenario}: {what} in box(es) {request['boxes']} (argopy fetcher {request['src']!r}, "
        f"mode {request['mode']!r}): no Argo float reported there in that time. Widen data.region or "
        "data.periods, or use argo_source: files with GDAC *_prof.nc files of floats in the region."
    )


# --- argopy points -> GDAC-like profiles ---


def _profile_keys(ds: xr.Dataset) -> np.ndarray:
    """'platform|cycle|direction' per point: argopy's profile identity."""
    platform = _platform_text(ds["PLATFORM_NUMBER"].values)
    cycle = np.nan_to_num(np.asarray(ds["CYCLE_NUMBER"].values, np.float64), nan=-1).astype(np.int64)
    direction = _text(ds["DIRECTION"].values) if "DIRECTION" in ds else np.full(platform.shape, "A")
    return np.char.add(np.char.add(np.char.add(platform, "|"), cycle.astype(str)), np.char.add("|", direction))


def _platform_text(values: np.ndarray) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind in "fiu":
        f = a.astype(np.float64)
        return np.array([str(int(v)) if np.isfinite(v) else "" for v in f.ravel()], dtype=str).reshape(a.shape)
    return _text(a)


def _qc_chars(values: np.ndarray) -> np.ndarray:
    """QC flags as GDAC characters (S1): digits 0-9 kept, anything else (fill, NaN) ' '."""
    a = np.asarray(values)
    out = np.full(a.shape, b" ", dtype="S1")
    if a.dtype.kind in "fiu":
        f = a.astype(np.float64)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(f) & (f == np.round(f)) & (f >= 0) & (f <= 9)
        out[ok] = np.char.encode(f[ok].astype(np.int64).astype(str), "ascii")
        return out
    text = _text(a)
    ok = np.char.str_len(text) == 1
    ok[ok] = np.char.isdigit(text[ok])
    out[ok] = np.char.encode(text[ok], "ascii")
    return out


def _select_points(points: Sequence[xr.Dataset], request: Mapping[str, Any]) -> xr.Dataset:
    """One point collection: needed variables, profiles in the boxes and dates, each profile once."""
    frames: list[xr.Dataset] = []
    seen: set[str] = set()
    for ds in points:
        ds = ds.reset_coords()
        missing = [v for v in REQUIRED_POINT_VARIABLES if v not in ds]
        if missing:
            raise DataError(
                f"argopy returned Argo points without {missing} (variables: {sorted(ds.data_vars)}); "
                f"argo_user_mode {request['mode']!r} must keep the QC flags (use 'expert')."
            )
        if "DIRECTION" not in ds:
            ds = ds.assign(DIRECTION=("N_POINTS", np.full(ds.sizes["N_POINTS"], "A")))
        keep = [v for v in (*PROFILE_VARIABLES, "TIME", "LATITUDE", "LONGITUDE", *LEVEL_VARIABLES) if v in ds]
        ds = ds[keep]
        keys = _profile_keys(ds)
        inside = ~np.isin(keys, list(seen)) & _in_request(ds, request)  # boxes across the dateline share 180°
        seen.update(np.unique(keys).tolist())
        frames.append(ds.isel(N_POINTS=np.nonzero(inside)[0]))
    merged = frames[0] if len(frames) == 1 else xr.concat(
        frames, dim="N_POINTS", data_vars="all", coords="minimal", compat="override", join="outer")
    return merged.assign_coords(N_POINTS=np.arange(merged.sizes["N_POINTS"]))


def _in_request(ds: xr.Dataset, request: Mapping[str, Any]) -> np.ndarray:
    """Points inside one of the boxes (positions inclusive, any longitude convention) and in [date_min, date_max)."""
    lat = np.asarray(ds["LATITUDE"].values, np.float64)
    lon = (np.asarray(ds["LONGITUDE"].values, np.float64) + 180.0) % 360.0 - 180.0  # [-180, 180)
    time = np.asarray(ds["TIME"].values).astype("datetime64[ns]")
    inside = np.zeros(lat.shape, bool)
    with np.errstate(invalid="ignore"):
        for b in request["boxes"]:
            in_lon = ((lon >= b[0]) & (lon <= b[1])) | ((lon + 360.0 >= b[0]) & (lon + 360.0 <= b[1]))  # 180 = -180
            inside |= in_lon & (lat >= b[2]) & (lat <= b[3])
    start, end = (np.datetime64(d, "ns") for d in request["boxes"][0][6:8])
    return inside & ~np.isnat(time) & (time >= start) & (time < end)


def points_to_profiles(points: xr.Dataset | Sequence[xr.Dataset], request: Mapping[str, Any],
                       scenario: str = "?") -> xr.Dataset:
    """argopy point collection(s) -> GDAC-like ``*_prof.nc`` Dataset (N_PROF x N_LEVELS).

    Profiles (platform, cycle, direction) via ``Dataset.argo.point2profile()``; per-profile
    variables at level 0, level variables broadcast to (N_PROF, N_LEVELS) where point2profile
    made them 1-D (a value constant within every profile); TIME -> JULD, TIME_QC -> JULD_QC;
    QC flags as characters; profiles sorted by (platform, JULD, cycle).
    """
    import_argopy(scenario)  # registers the Dataset.argo accessor
    chosen = _select_points([points] if isinstance(points, xr.Dataset) else list(points), request)
    if chosen.sizes["N_POINTS"] == 0:
        raise _empty(request, scenario, "no Argo point lies")
    prof = chosen.argo.point2profile().reset_coords()
    n_prof, n_levels = prof.sizes["N_PROF"], prof.sizes.get("N_LEVELS", 1)  # no N_LEVELS: single-level profiles

    def per_profile(name: str) -> np.ndarray:
        da = prof[name]
        return (da.isel(N_LEVELS=0) if "N_LEVELS" in da.dims else da).transpose("N_PROF").values

    def per_level(name: str) -> np.ndarray:
        da = prof[name]
        if "N_LEVELS" not in da.dims:
            da = da.expand_dims(N_LEVELS=n_levels, axis=-1)
        return da.transpose("N_PROF", "N_LEVELS").values

    platform = _platform_text(per_profile("PLATFORM_NUMBER"))
    time = np.asarray(per_profile("TIME")).astype("datetime64[ns]")
    cycle_values = np.asarray(per_profile("CYCLE_NUMBER"), np.float64)
    cycle = np.where(np.isfinite(cycle_values) & (np.abs(cycle_values) < 99999), cycle_values, 99999).astype(np.int32)
    order = np.lexsort((cycle, time, platform))
    profile_vars: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        "PLATFORM_NUMBER": (("N_PROF",), np.char.encode(platform, "ascii").astype("S8")),
        "CYCLE_NUMBER": (("N_PROF",), cycle),
        "DIRECTION": (("N_PROF",), np.char.encode(_text(per_profile("DIRECTION")), "ascii").astype("S1")),
        "DATA_MODE": (("N_PROF",), np.char.encode(_text(per_profile("DATA_MODE")), "ascii").astype("S1")),
        "JULD": (("N_PROF",), time),
        "JULD_QC": (("N_PROF",), _qc_chars(per_profile("TIME_QC"))),
        "LATITUDE": (("N_PROF",), np.asarray(per_profile("LATITUDE"), np.float64)),
        "LONGITUDE": (("N_PROF",), np.asarray(per_profile("LONGITUDE"), np.float64)),
        "POSITION_QC": (("N_PROF",), _qc_chars(per_profile("POSITION_QC"))),
    }
    level_vars = {
        name: (("N_PROF", "N_LEVELS"), _qc_chars(per_level(name)) if name.endswith("_QC")
               else np.asarray(per_level(name), np.float32))
        for name in LEVEL_VARIABLES if name in prof
    }
    data = {name: xr.Variable(dims, values[order]) for name, (dims, values) in {**profile_vars, **level_vars}.items()}
    out = xr.Dataset(data)
    out.attrs = {
        "title": "Argo float vertical profiles (GDAC *_prof.nc layout) fetched with argopy",
        "source": f"argopy {_argopy_version()}: " + "; ".join(describe_call(request, b) for b in request["boxes"]),
        "user_mode": str(request["mode"]),
        "references": "http://doi.org/10.17882/42182",
    }
    log.info("%d profiles of %d floats, %d levels at most", n_prof, len(set(platform.tolist())), n_levels)
    return out


def _argopy_version() -> str:
    try:
        from importlib.metadata import version

        return version("argopy")
    except Exception:  # not installed as a distribution
        return "?"


def write_profiles(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write the profiles atomically (netCDF4; JULD as days since 1950-01-01, like GDAC)."""
    encoding: dict[str, dict[str, Any]] = {"JULD": dict(_JULD_ENCODING)}
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f":
            encoding[name] = {"zlib": True, "complevel": 1}
        elif name == "CYCLE_NUMBER":
            encoding[name] = {"_FillValue": np.int32(99999)}
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def retrieve_argo(request: Mapping[str, Any], out_path: str | os.PathLike[str], scenario: str = "?") -> dict[str, Any]:
    """Fetch the request's profiles with argopy and write them to `out_path`; a summary."""
    prof = points_to_profiles(fetch_points(request, scenario), request, scenario)
    write_profiles(prof, out_path)
    summary = {
        "profiles": int(prof.sizes["N_PROF"]),
        "floats": int(len(np.unique(prof["PLATFORM_NUMBER"].values))),
        "levels": int(prof.sizes["N_LEVELS"]),
        "first": str(pd.Timestamp(prof["JULD"].values.min())),
        "last": str(pd.Timestamp(prof["JULD"].values.max())),
    }
    log.info("wrote %s: %s", out_path, summary)
    return summary
