"""Helpers for the data tests: filled config sections and small contract files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from depthdif.config import validate_config
from depthdif.data import cf

_DEFAULTS = validate_config({})


def sections(data: dict[str, Any] | None = None, patches: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """(data_cfg, patches_cfg) = schema defaults updated (one level deep) with the overrides."""
    data_cfg = copy.deepcopy(_DEFAULTS["data"])
    patches_cfg = copy.deepcopy(_DEFAULTS["patches"])
    for cfg, extra in ((data_cfg, data or {}), (patches_cfg, patches or {})):
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
    return data_cfg, patches_cfg


def write_thetao(path: Path, values: np.ndarray, *, time: str = "2015-01-01",
                 lat0: float = 10.0, lon0: float = -30.0, step: float = 0.25,
                 depth: list[float] | None = None) -> Path:
    """Contract raw file around a (C, H, W) array on a regular grid."""
    c, h, w = values.shape
    ds = cf.make_dataset(
        values[None].astype(np.float32),
        time=np.array([time], dtype="datetime64[ns]"),
        depth=np.asarray(depth if depth is not None else [0.494, 47.37, 155.85, 318.13][:c]),
        latitude=lat0 + step * np.arange(h),
        longitude=lon0 + step * np.arange(w),
    )
    cf.write_cf(ds, path)
    return path


def write_argo_prof(path: Path, profiles: list[dict[str, Any]]) -> Path:
    """A tiny GDAC-like `*_prof.nc` (the variables depthdif.data.argo reads).

    Each profile: platform, cycle, time ('YYYY-MM-DDTHH'), lat, lon, pres, temp and optionally
    psal (lists of one length, NaN = fill), data_mode ('R'), *_qc strings of one flag per level
    (default all '1'), temp_adj / psal_adj / pres_adj with their *_qc (absent: fill, QC ' ').
    `psal=None` for every profile leaves the PSAL variables out (a temperature-only float).
    """
    n_levels = max(len(p["pres"]) for p in profiles)
    with_psal = any(p.get("psal") is not None for p in profiles)

    def levels(key: str) -> np.ndarray:
        out = np.full((len(profiles), n_levels), np.nan)
        for k, p in enumerate(profiles):
            if p.get(key) is not None:
                out[k, : len(p[key])] = p[key]
        return out

    def flags(key: str, values: str) -> np.ndarray:
        out = np.full((len(profiles), n_levels), b" ", dtype="S1")
        for k, p in enumerate(profiles):
            qc = p.get(f"{key}_qc", "1" * len(p["pres"]) if p.get(values) is not None else "")
            out[k, : len(qc)] = [c.encode() for c in qc]
        return out

    level_dims = ("N_PROF", "N_LEVELS")
    data = {
        "PLATFORM_NUMBER": ("N_PROF", np.array([p["platform"] for p in profiles], dtype="S8")),
        "CYCLE_NUMBER": ("N_PROF", np.array([p["cycle"] for p in profiles], np.int32)),
        "JULD": ("N_PROF", np.array([p["time"] for p in profiles], dtype="datetime64[ns]")),
        "JULD_QC": ("N_PROF", np.array([p.get("juld_qc", "1").encode() for p in profiles], dtype="S1")),
        "LATITUDE": ("N_PROF", np.array([p["lat"] for p in profiles], np.float64)),
        "LONGITUDE": ("N_PROF", np.array([p["lon"] for p in profiles], np.float64)),
        "POSITION_QC": ("N_PROF", np.array([p.get("position_qc", "1").encode() for p in profiles], dtype="S1")),
        "DATA_MODE": ("N_PROF", np.array([p.get("data_mode", "R").encode() for p in profiles], dtype="S1")),
    }
    for name, key in (("PRES", "pres"), ("TEMP", "temp"), ("PSAL", "psal")):
        if name == "PSAL" and not with_psal:
            continue
        data[name] = (level_dims, levels(key).astype(np.float32))
        data[f"{name}_QC"] = (level_dims, flags(key, key))
        data[f"{name}_ADJUSTED"] = (level_dims, levels(f"{key}_adj").astype(np.float32))
        data[f"{name}_ADJUSTED_QC"] = (level_dims, flags(f"{key}_adj", f"{key}_adj"))
    import xarray as xr

    xr.Dataset({k: xr.Variable(*v) for k, v in data.items()}).to_netcdf(path)
    return path
