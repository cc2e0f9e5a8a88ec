"""Occlusion shards on disk: a folder of memory-mappable .npy arrays plus manifest.json.

Layout (docs/architecture.md, "Shards")::

    {out_dir}/manifest.json
    {out_dir}/shard-0000/{y,y_valid,x,x_valid,land,eo?,obs_count?,holdout*?,lat,lon,time,patch_id}.npy

The whole folder is written atomically (`depthdif.io.atomic_output` on the directory).
The manifest records the sha256 of every array file; a job that reads shards checks them
once at its start (`verify_shards`). Values are in normalised units, y_n = (y - mean) / std
with the train statistics in the manifest (`normalise`, `denormalise`, `load_degc`).
Building the shards of a scenario from the patch files: `depthdif.data.occlusion`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthdif.errors import DataError
from depthdif.io import atomic_output, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: what to do about a shard folder that is broken or changed after it was written
RERUN = "delete the folder and rerun rule make_shards (e.g. snakemake --forcerun make_shards)"

#: name -> (dtype, number of dims) of every shard array; the OPTIONAL ones are absent from some folders.
ARRAY_SPECS: dict[str, tuple[np.dtype, int]] = {
    "y": (np.dtype(np.float32), 4),
    "y_valid": (np.dtype(np.uint8), 4),
    "x": (np.dtype(np.float32), 4),
    "x_valid": (np.dtype(np.uint8), 4),
    "land": (np.dtype(np.uint8), 3),
    "eo": (np.dtype(np.float32), 4),
    # profiles averaged into each observed cell and level (scenario mode argo_profiles)
    "obs_count": (np.dtype(np.uint16), 4),
    # leave-floats-out validation (argo_profiles with holdout_floats > 0): the withheld floats' observations,
    # normalised like y (0 elsewhere), where they are, and which withheld float (manifest holdout.platforms_withheld)
    "holdout": (np.dtype(np.float32), 4),
    "holdout_valid": (np.dtype(np.uint8), 4),
    "holdout_float": (np.dtype(np.int32), 4),
    "lat": (np.dtype(np.float32), 2),
    "lon": (np.dtype(np.float32), 2),
    "time": (np.dtype(np.int64), 1),
    "patch_id": (np.dtype("<U64"), 1),
}
#: optional array -> the manifest flag that says a folder has it (absent flag: False, e.g. older folders)
OPTIONAL = {"eo": "has_eo", "obs_count": "has_obs_count", "holdout": "has_holdout", "holdout_valid": "has_holdout",
            "holdout_float": "has_holdout"}
#: optional arrays that come together or not at all
HOLDOUT = ("holdout", "holdout_valid", "holdout_float")
REQUIRED = tuple(k for k in ARRAY_SPECS if k not in OPTIONAL)


def shard_name(k: int) -> str:
    return f"shard-{k:04d}"


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[int, int, int, int, frozenset[str]]:
    """Validate names/shapes against the contract; return (n, C, H, W, optional arrays present)."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"shard arrays lack {missing}; required: {list(REQUIRED)} (+ optional {list(OPTIONAL)})")
    unknown = sorted(set(arrays) - set(ARRAY_SPECS))
    if unknown:
        raise ValueError(f"unknown shard arrays {unknown}; allowed: {list(ARRAY_SPECS)}")
    if np.ndim(arrays["y"]) != 4:
        raise ValueError(f"shard array 'y' must be (n,C,H,W), got shape {np.shape(arrays['y'])}")
    n, c, h, w = np.shape(arrays["y"])
    expected = {
        "y": (n, c, h, w), "y_valid": (n, c, h, w), "x": (n, c, h, w), "x_valid": (n, c, h, w),
        "land": (n, h, w), "eo": (n, 1, h, w), "obs_count": (n, c, h, w), "lat": (n, h), "lon": (n, w), "time": (n,),
        "patch_id": (n,), **{k: (n, c, h, w) for k in HOLDOUT},
    }
    present = [k for k in HOLDOUT if k in arrays]
    if present and len(present) != len(HOLDOUT):
        raise ValueError(f"shard arrays {present} come only with all of {list(HOLDOUT)}")
    for name, arr in arrays.items():
        if tuple(np.shape(arr)) != expected[name]:
            raise ValueError(f"shard array {name!r} has shape {np.shape(arr)}, expected {expected[name]}")
    return n, c, h, w, frozenset(k for k in OPTIONAL if k in arrays)


def _as_contract(name: str, arr: np.ndarray) -> np.ndarray:
    dtype = ARRAY_SPECS[name][0]
    out = np.asarray(arr)
    if name == "patch_id":
        return out.astype(dtype)
    if dtype == np.uint8:
        out = out.astype(bool)  # anything nonzero is "set"
    elif dtype == np.uint16:
        out = np.clip(out, 0, np.iinfo(np.uint16).max)  # a count saturates instead of wrapping around
    return np.ascontiguousarray(out, dtype=dtype)


class ShardWriter:
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
        self.optional: frozenset[str] | None = None  # optional arrays every chunk must have
        self.observed_sum = 0.0  # sum over samples of observed positions / surface ocean
        self.n = 0

    def add(self, arrays: Mapping[str, np.ndarray]) -> None:
        n, c, h, w, optional = _check_arrays(arrays)
        if self.shape is None:
            self.shape, self.optional = (c, h, w), optional
        elif self.shape != (c, h, w) or self.optional != optional:
            raise ValueError(
                f"chunk of shape (C,H,W)={(c, h, w)} with optional arrays {sorted(optional)} differs from earlier "
                f"{self.shape} with {sorted(self.optional or ())}"
            )
        if n == 0:
            return
        chunk = {k: _as_contract(k, v) for k, v in arrays.items()}
        ocean = chunk["land"] == 0
        # a position counts as observed when any level is (per-level A: a profile may miss the
        # surface); for a column-shared A this is the surface mask, as before
        observed = chunk["x_valid"].astype(bool).any(axis=1) & ocean
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
        sha256 = {}
        for key in self.buffer[0]:
            path = self.folder / name / f"{key}.npy"
            np.save(path, np.concatenate([b[key] for b in self.buffer]), allow_pickle=False)
            sha256[key] = sha256_file(path)
        self.shards.append({"name": name, "n": self.buffered, "sha256": sha256})
        self.buffer, self.buffered = [], 0

    def finish(self, **manifest: Any) -> dict[str, Any]:
        """Flush the last shard and write manifest.json; return the manifest."""
        self._flush()
        if self.n == 0 or self.shape is None or self.optional is None:
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
            **{flag: name in self.optional for name, flag in OPTIONAL.items()},
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
    `observed_fraction` = mean over samples of |positions observed at any level| / |surface ocean|.
    """
    with atomic_output(out_dir) as tmp:
        writer = ShardWriter(tmp, shard_size)
        writer.add(arrays)
        writer.finish(**manifest_head(scenario, split, stats, depth, mask_cfg))


def manifest_head(
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
        raise DataError(f"{path} not found: {folder} is not a shard folder; rerun rule make_shards")
    try:
        manifest = read_json(path)
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); {RERUN}") from exc
    for key in ("n", "shards", "channels", "size", "stats", "has_eo"):
        if key not in manifest:
            raise DataError(f"{path} lacks key {key!r}; {RERUN}")
    return manifest


def verify_shards(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every array file of a shard folder against the sha256 in its manifest; return the manifest.

    Call it once per job before reading (not in DataLoader workers): it reads every byte.
    A changed file, even one of the same size, raises a DataError naming it. Folders
    written before manifests had checksums are not checked (a warning says so).
    """
    start = time.perf_counter()
    folder = Path(folder)
    manifest = read_manifest(folder)
    unchecked = [s["name"] for s in manifest["shards"] if "sha256" not in s]
    if unchecked:
        log.warning("%s: manifest.json has no checksums for %s (written by an older version), not verified; "
                    "rerun rule make_shards to add them", folder, unchecked)
    checked = 0
    for shard in manifest["shards"]:
        for name, expected in shard.get("sha256", {}).items():
            path = folder / shard["name"] / f"{name}.npy"
            try:
                actual = sha256_file(path)
            except OSError as exc:
                raise DataError(f"cannot read shard array {path} ({exc}); {RERUN}") from exc
            if actual != expected:
                raise DataError(
                    f"shard array {path} changed after it was written: its sha256 {actual} differs from "
                    f"{expected} in {folder / MANIFEST} (a corrupted or edited file); {RERUN}"
                )
            checked += 1
    log.info("%s: %d shard arrays match their checksums (%.2f s)", folder, checked, time.perf_counter() - start)
    return manifest


# --- reading ------------------------------------------------------------------------------


def load_array(path: Path, mmap: bool) -> np.ndarray:
    """One shard array (memory-mapped read-only with `mmap`), no pickle."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read shard array {path} ({exc}); {RERUN}") from exc


def array_names(manifest: Mapping[str, Any]) -> list[str]:
    """The arrays a shard folder holds (contract order; an optional one only if its manifest flag is set)."""
    return [k for k in ARRAY_SPECS if k not in OPTIONAL or manifest.get(OPTIONAL[k], False)]


def load_arrays(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All shards of `folder` concatenated along the sample axis (contract names/dtypes)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    return {
        name: np.concatenate([load_array(folder / s["name"] / f"{name}.npy", mmap=False) for s in manifest["shards"]])
        for name in array_names(manifest)
    }


# --- units --------------------------------------------------------------------------------


def _per_channel(values: np.ndarray, stat: Any, channel_axis: int, dtype: type) -> np.ndarray:
    shape = [1] * values.ndim
    shape[channel_axis] = -1
    return np.asarray(stat, dtype).reshape(shape)


def normalise(
    values: np.ndarray, stats: Mapping[str, Any], channel_axis: int, dtype: type = np.float32
) -> np.ndarray:
    """(v - mean_c) / std_c in `dtype`, channels on `channel_axis` (stats: stats.json / manifest)."""
    mean = _per_channel(values, stats["mean"], channel_axis, dtype)
    std = _per_channel(values, stats["std"], channel_axis, dtype)
    return (values.astype(dtype) - mean) / std


def denormalise(
    values: np.ndarray, stats: Mapping[str, Any], channel_axis: int, dtype: type = np.float32
) -> np.ndarray:
    """degC = v · std_c + mean_c in `dtype`, channels on `channel_axis`."""
    mean = _per_channel(values, stats["mean"], channel_axis, dtype)
    std = _per_channel(values, stats["std"], channel_axis, dtype)
    return (values.astype(dtype) * std + mean).astype(dtype)


def load_degc(folder: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a shard folder in degC (float64) with the manifest stats: y * std + mean.

    Returns (arrays, manifest); arrays: truth (NaN where invalid), obs (NaN where not
    observed), observed, valid (bool), eo (degC, NaN on land; only if has_eo), mean (C,),
    land, lat, lon, time, patch_id, obs_count (only if has_obs_count).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    arrays = load_arrays(folder)
    stats = manifest["stats"]
    c = int(manifest["channels"])
    mean = np.asarray(stats["mean"], np.float64)
    std = np.asarray(stats["std"], np.float64)
    if mean.shape != (c,) or std.shape != (c,):
        raise DataError(f"{folder}/manifest.json: stats mean/std need {c} values, got {mean.shape}, {std.shape}")
    valid = arrays["y_valid"].astype(bool)
    observed = arrays["x_valid"].astype(bool)
    out = {
        "truth": np.where(valid, denormalise(arrays["y"], stats, 1, np.float64), np.nan),
        "obs": np.where(observed, denormalise(arrays["x"], stats, 1, np.float64), np.nan),
        "observed": observed,
        "valid": valid,
        "mean": mean,
    }
    out.update({k: arrays[k] for k in ("land", "lat", "lon", "time", "patch_id", "obs_count") if k in arrays})
    if manifest["has_eo"] and "eo" in arrays:
        if stats.get("eo_mean") is None or stats.get("eo_std") is None:
            raise DataError(f"{folder}/manifest.json: has_eo but stats lack eo_mean/eo_std; {RERUN}")
        eo = arrays["eo"] * float(stats["eo_std"]) + float(stats["eo_mean"])
        out["eo"] = np.where(arrays["land"][:, None].astype(bool), np.nan, eo)
    return out, manifest




@dataclass(frozen=True)
class Holdout:
    """The withheld floats' observations of a shard folder in degC (leave-floats-out validation)."""

    values: np.ndarray  # (N,C,H,W) float64 degC, NaN off `valid`
    valid: np.ndarray  # (N,C,H,W) bool: a withheld observation to score
    float_id: np.ndarray  # (N,C,H,W) int32: index into info["platforms_withheld"], -1 off `valid`
    info: dict[str, Any]  # the manifest's "holdout" entry (withheld floats, counts)


def load_holdout(folder: str | os.PathLike[str]) -> Holdout | None:
    """The holdout arrays of a shard folder (`Holdout`, values de-normalised with the manifest stats), or
    None for a folder without them (every scenario but argo_profiles with holdout_floats > 0)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest.get("has_holdout", False):
        return None
    if not isinstance(manifest.get("holdout"), dict):
        raise DataError(f"{folder / MANIFEST} has holdout arrays but no 'holdout' entry; {RERUN}")
    arrays = {
        name: np.concatenate([load_array(folder / s["name"] / f"{name}.npy", mmap=False) for s in manifest["shards"]])
        for name in HOLDOUT
    }
    valid = arrays["holdout_valid"].astype(bool)
    values = np.where(valid, denormalise(arrays["holdout"], manifest["stats"], 1, np.float64), np.nan)
    return Holdout(values, valid, np.where(valid, arrays["holdout_float"], -1).astype(np.int32),
                   dict(manifest["holdout"]))
