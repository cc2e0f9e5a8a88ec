"""Occlusion shards: a folder of memory-mappable .npy arrays plus manifest.json.

Layout (docs/architecture.md, "Shards")::

    {out_dir}/manifest.json
    {out_dir}/shard-0000/{y,y_valid,x,x_valid,land,eo?,lat,lon,time,patch_id}.npy

The whole folder is written atomically (`depthdif.io.atomic_output` on the directory).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import DataError, NoPatchesError
from depthdif.io import atomic_output, read_json, write_json

MANIFEST = "manifest.json"

#: name -> (dtype, number of dims) of every shard array; `eo` is optional.
ARRAY_SPECS: dict[str, tuple[np.dtype, int]] = {
    "y": (np.dtype(np.float32), 4),
    "y_valid": (np.dtype(np.uint8), 4),
    "x": (np.dtype(np.float32), 4),
    "x_valid": (np.dtype(np.uint8), 4),
    "land": (np.dtype(np.uint8), 3),
    "eo": (np.dtype(np.float32), 4),
    "lat": (np.dtype(np.float32), 2),
    "lon": (np.dtype(np.float32), 2),
    "time": (np.dtype(np.int64), 1),
    "patch_id": (np.dtype("<U64"), 1),
}
REQUIRED = tuple(k for k in ARRAY_SPECS if k != "eo")


def shard_name(k: int) -> str:
    return f"shard-{k:04d}"


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[int, int, int, int, bool]:
    """Validate names/shapes against the contract; return (n, C, H, W, has_eo)."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"shard arrays lack {missing}; required: {list(REQUIRED)} (+ optional eo)")
    unknown = sorted(set(arrays) - set(ARRAY_SPECS))
    if unknown:
        raise ValueError(f"unknown shard arrays {unknown}; allowed: {list(ARRAY_SPECS)}")
    n, c, h, w = np.shape(arrays["y"])
    expected = {
        "y": (n, c, h, w), "y_valid": (n, c, h, w), "x": (n, c, h, w), "x_valid": (n, c, h, w),
        "land": (n, h, w), "eo": (n, 1, h, w), "lat": (n, h), "lon": (n, w), "time": (n,),
        "patch_id": (n,),
    }
    for name, arr in arrays.items():
        if tuple(np.shape(arr)) != expected[name]:
            raise ValueError(f"shard array {name!r} has shape {np.shape(arr)}, expected {expected[name]}")
    return n, c, h, w, "eo" in arrays


def _as_contract(name: str, arr: np.ndarray) -> np.ndarray:
    dtype = ARRAY_SPECS[name][0]
    out = np.asarray(arr)
    if name == "patch_id":
        return out.astype(dtype)
    if dtype == np.uint8:
        out = out.astype(bool)  # anything nonzero is "set"
    return np.ascontiguousarray(out, dtype=dtype)


class _ShardWriter:
    """Accumulate sample chunks and flush every `shard_size` samples into shard-k/ folders.

    Memory is bounded by one shard plus the chunk being added.
    """

    def __init__(self, folder: Path, shard_size: int) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.folder = folder
        self.shard_size = int(shard_size)
        self.buffer: list[dict[str, np.ndarray]] = []
        self.buffered = 0
        self.shards: list[dict[str, Any]] = []
        self.shape: tuple[int, int, int] | None = None  # (C, H, W)
        self.has_eo: bool | None = None
        self.observed_sum = 0.0  # sum over samples of surface observed / surface ocean
        self.n = 0

    def add(self, arrays: Mapping[str, np.ndarray]) -> None:
        n, c, h, w, has_eo = _check_arrays(arrays)
        if self.shape is None:
            self.shape, self.has_eo = (c, h, w), has_eo
        elif self.shape != (c, h, w) or self.has_eo != has_eo:
            raise ValueError(
                f"chunk of shape (C,H,W)={(c, h, w)}, eo={has_eo} differs from earlier {self.shape}, eo={self.has_eo}"
            )
        if n == 0:
            return
        chunk = {k: _as_contract(k, v) for k, v in arrays.items()}
        ocean = chunk["land"] == 0
        observed = chunk["x_valid"][:, 0].astype(bool) & ocean
        n_ocean = ocean.sum(axis=(1, 2))
        self.observed_sum += float(np.sum(observed.sum(axis=(1, 2)) / np.maximum(n_ocean, 1)))
        self.n += n
        start = 0
        while start < n:
            take = min(n - start, self.shard_size - self.buffered)
            self.buffer.append({k: v[start : start + take] for k, v in chunk.items()})
            self.buffered += take
            start += take
            if self.buffered == self.shard_size:
                self._flush()

    def _flush(self) -> None:
        if not self.buffered:
            return
        name = shard_name(len(self.shards))
        (self.folder / name).mkdir(parents=True)
        for key in self.buffer[0]:
            np.save(self.folder / name / f"{key}.npy", np.concatenate([b[key] for b in self.buffer]), allow_pickle=False)
        self.shards.append({"name": name, "n": self.buffered})
        self.buffer, self.buffered = [], 0

    def finish(self, **manifest: Any) -> dict[str, Any]:
        """Flush the last shard and write manifest.json; return the manifest."""
        self._flush()
        if self.n == 0 or self.shape is None:
            raise ValueError("no samples were added to the shard folder")
        observed = self.observed_sum / self.n
        full = {
            **manifest,
            "n": self.n,
            "shard_size": self.shard_size,
            "shards": self.shards,
            "channels": self.shape[0],
            "size": self.shape[1],
            "width": self.shape[2],
            "has_eo": bool(self.has_eo),
            "observed_fraction": observed,
            "hidden_fraction": 1.0 - observed,
        }
        write_json(self.folder / MANIFEST, full)
        return full


def save_shards(
    out_dir: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    *,
    scenario: str,
    split: str,
    stats: Mapping[str, Any],
    depth: Sequence[float] | np.ndarray,
    mask_cfg: Mapping[str, Any],
    shard_size: int,
) -> None:
    """Write already-normalised shard `arrays` (names/shapes of the contract) to `out_dir`.

    Arrays are cast to the contract dtypes (masks: nonzero -> 1). The manifest records
    `observed_fraction` = mean over samples of |surface observed| / |surface ocean|.
    """
    with atomic_output(out_dir) as tmp:
        writer = _ShardWriter(tmp, shard_size)
        writer.add(arrays)
        writer.finish(**_manifest_head(scenario, split, stats, depth, mask_cfg))


def _manifest_head(
    scenario: str, split: str, stats: Mapping[str, Any], depth: Iterable[float], mask_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "split": split,
        "depth": [float(d) for d in depth],
        "stats": dict(stats),
        "mask": dict(mask_cfg),
    }


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read `{folder}/manifest.json` (DataError when the folder is not a shard folder)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} not found: {folder} is not a shard folder; rerun the shards rule")
    try:
        manifest = read_json(path)
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); delete {folder} and rerun the shards rule") from exc
    for key in ("n", "shards", "channels", "size", "stats", "has_eo"):
        if key not in manifest:
            raise DataError(f"{path} lacks key {key!r}; delete {folder} and rerun the shards rule")
    return manifest
