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
