"""Argo GDAC `*_prof.nc` reader with QC: float positions (tracks) and good profiles.

QC (Argo user manual flags; good = 1 or 2):
- a profile needs POSITION_QC and JULD_QC good, finite LATITUDE/LONGITUDE and JULD;
- per profile, if it carries adjusted data (DATA_MODE A/D or any finite TEMP_ADJUSTED)
  only TEMP_ADJUSTED/PRES_ADJUSTED with good QC are used, otherwise raw TEMP/PRES with good
  QC (raw values flagged bad in delayed mode are never brought back);
- a level is good when both its temperature and pressure are good and finite;
  profiles without a good level are dropped;
- salinity follows the temperature's mode: PSAL_ADJUSTED/PSAL_ADJUSTED_QC in an adjusted
  profile, raw PSAL/PSAL_QC otherwise; it is kept (column `psal`) only at good levels where
  its own QC is good and its value finite, NaN elsewhere (also in an adjusted profile of a
  file without PSAL_ADJUSTED, and everywhere in a file without PSAL: temperature-only floats).
  A bad salinity never drops a level: the temperature stays usable (depthdif.data.profiles
  fills SP for the TEOS-10 conversion).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from depthdif.errors import DataError

GOOD_QC = ("1", "2")
TRACK_COLUMNS = ["platform", "cycle", "time", "lat", "lon", "n_good_levels", "temp_max"]
_VARS = (
    "PLATFORM_NUMBER", "CYCLE_NUMBER", "JULD", "JULD_QC", "LATITUDE", "LONGITUDE", "POSITION_QC",
    "DATA_MODE", "PRES", "PRES_QC", "TEMP", "TEMP_QC",
)
#: optional: temperature-only floats have no salinity
_PSAL_VARS = ("PSAL", "PSAL_QC", "PSAL_ADJUSTED", "PSAL_ADJUSTED_QC")


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named by `paths` (paths or glob patterns), sorted and de-duplicated.

    A pattern that matches nothing or a path that does not exist raises DataError.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise DataError("no Argo files given: set the scenario's argo_paths to GDAC *_prof.nc files or globs")
    found: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise DataError(f"Argo glob {text!r} matches no file; check argo_paths")
            found.extend(Path(m) for m in matches)
        elif not Path(text).is_file():
            raise DataError(f"Argo file {text} not found; check argo_paths")
        else:
            found.append(Path(text))
    return sorted(set(found))


def _text(a: np.ndarray) -> np.ndarray:
    """Char / bytes / NaN-filled object arrays -> stripped str arrays ('' for fill)."""
    flat = [v.decode("ascii", "replace") if isinstance(v, bytes) else ("" if v is None or v != v else str(v))
            for v in np.asarray(a, dtype=object).ravel()]
    return np.char.strip(np.array(flat, dtype=str)).reshape(np.shape(a))


def _good(qc: np.ndarray) -> np.ndarray:
    return np.isin(_text(qc), GOOD_QC)


def _read_qc(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """(profiles without level info, pres (P,L), temp (P,L), psal (P,L)) with NaN at non-good levels."""
    try:
        with xr.open_dataset(path, decode_timedelta=False) as ds:
            missing = [v for v in _VARS if v not in ds]
            if missing:
                raise DataError(f"{path} is not an Argo *_prof.nc file: it lacks {missing}")
            v = {name: ds[name].values for name in _VARS}
            for name in ("TEMP_ADJUSTED", "TEMP_ADJUSTED_QC", "PRES_ADJUSTED", "PRES_ADJUSTED_QC", *_PSAL_VARS):
                v[name] = ds[name].values if name in ds else None
    except DataError:
        raise
    except Exception as exc:  # netCDF/HDF errors have no common base class
        raise DataError(f"cannot read Argo file {path} ({type(exc).__name__}: {exc}); re-download it") from exc

    temp = np.asarray(v["TEMP"], np.float64)
    pres = np.asarray(v["PRES"], np.float64)
    t_ok = _good(v["TEMP_QC"]) & np.isfinite(temp)
    p_ok = _good(v["PRES_QC"]) & np.isfinite(pres)
    adjusted = np.zeros(temp.shape[0], bool)
    if v["TEMP_ADJUSTED"] is not None:
        temp_adj = np.asarray(v["TEMP_ADJUSTED"], np.float64)
        adjusted = np.isin(_text(v["DATA_MODE"]), ("A", "D")) | np.isfinite(temp_adj).any(axis=1)
        ta_ok = _good(v["TEMP_ADJUSTED_QC"]) & np.isfinite(temp_adj)
        temp = np.where(adjusted[:, None], temp_adj, temp)
        t_ok = np.where(adjusted[:, None], ta_ok, t_ok)
        if v["PRES_ADJUSTED"] is not None:
            pres_adj = np.asarray(v["PRES_ADJUSTED"], np.float64)
            pa_ok = _good(v["PRES_ADJUSTED_QC"]) & np.isfinite(pres_adj)
            pres = np.where(adjusted[:, None], pres_adj, pres)
            p_ok = np.where(adjusted[:, None], pa_ok, p_ok)
    level_ok = t_ok & p_ok
    temp = np.where(level_ok, temp, np.nan)
    pres = np.where(level_ok, pres, np.nan)
    psal = np.where(level_ok, _psal(v, adjusted), np.nan)

    lat = np.asarray(v["LATITUDE"], np.float64)
    lon = np.asarray(v["LONGITUDE"], np.float64)
    time = pd.to_datetime(np.asarray(v["JULD"]))
    keep = (
        _good(v["POSITION_QC"]) & _good(v["JULD_QC"]) & ~np.isnat(time.values)
        & np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 360)
        & level_ok.any(axis=1)
    )
    n_good = level_ok.sum(axis=1)
    with np.errstate(invalid="ignore"):
        temp_max = np.nanmax(np.where(level_ok, temp, -np.inf), axis=1)
    profiles = pd.DataFrame({
        "platform": _text(v["PLATFORM_NUMBER"]),
        "cycle": np.nan_to_num(np.asarray(v["CYCLE_NUMBER"], np.float64), nan=-1).astype(np.int64),
        "time": time,
        "lat": lat,
        "lon": (lon + 180.0) % 360.0 - 180.0,
        "n_good_levels": n_good.astype(np.int64),
        "temp_max": temp_max,
    })
    return profiles[keep], pres[keep], temp[keep], psal[keep]


def _psal(v: dict[str, np.ndarray | None], adjusted: np.ndarray) -> np.ndarray:
    """Practical salinity (P,L) under the temperature's mode (`adjusted` per profile), NaN where not good."""
    shape = np.shape(v["TEMP"])
    raw = np.full(shape, np.nan)
    if v["PSAL"] is not None and v["PSAL_QC"] is not None:
        raw = np.asarray(v["PSAL"], np.float64)
        raw = np.where(_good(v["PSAL_QC"]) & np.isfinite(raw), raw, np.nan)
    adj = np.full(shape, np.nan)
    if v["PSAL_ADJUSTED"] is not None and v["PSAL_ADJUSTED_QC"] is not None:
        adj = np.asarray(v["PSAL_ADJUSTED"], np.float64)
        adj = np.where(_good(v["PSAL_ADJUSTED_QC"]) & np.isfinite(adj), adj, np.nan)
    # like TEMP: a raw value of an adjusted (e.g. delayed-mode) profile is never brought back
    return np.where(adjusted[:, None], adj, raw)


def read_argo_tracks(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """QC'd float positions, one row per good profile, sorted by (platform, time).

    Columns: platform (str), cycle (int), time (datetime64), lat, lon (degrees, lon in
    [-180, 180)), n_good_levels (int), temp_max (degC, max over good levels).
    """
    frames = [_read_qc(p)[0] for p in expand_paths(paths)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRACK_COLUMNS)
    return out.sort_values(["platform", "time", "cycle"], kind="stable").reset_index(drop=True)[TRACK_COLUMNS]


#: name used in docs/architecture.md
read_argo_positions = read_argo_tracks


def argo_profiles(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """QC'd profiles in long form: one row per good level.

    Columns: platform, cycle, time, lat, lon, pres (dbar), temp (degC, in situ), psal
    (practical salinity, NaN where its QC is not good); sorted by (platform, time, pres).
    """
    frames = []
    for path in expand_paths(paths):
        prof, pres, temp, psal = _read_qc(path)
        i, j = np.nonzero(np.isfinite(temp))
        frame = prof.iloc[i][["platform", "cycle", "time", "lat", "lon"]].reset_index(drop=True)
        frame["pres"], frame["temp"], frame["psal"] = pres[i, j], temp[i, j], psal[i, j]
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["platform", "time", "pres"], kind="stable").reset_index(drop=True)
