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

from depthdif.errors import ConfigError, DataError, NoPatchesError
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
    if np.ndim(arrays["y"]) != 4:
        raise ValueError(f"shard array 'y' must be (n,C,H,W), got shape {np.shape(arrays['y'])}")
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


def _load_period(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read patch file {path} ({exc}); rerun the patches rule") from exc


def _read_split_rows(index_path: Path, split: str) -> pd.DataFrame:
    try:
        index = pd.read_parquet(index_path, columns=["patch_id", "period", "split"])
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"cannot read patch index {index_path} ({exc}); rerun the patches rule") from exc
    rows = index[index["split"] == split].sort_values("patch_id", kind="stable").reset_index(drop=True)
    if rows.empty:
        counts = index["split"].value_counts().to_dict()
        raise NoPatchesError(
            f"no patch of split {split!r} in {index_path} (patches per split: {counts}); "
            "raise patches.split.fractions." + split + ", lower patches.split.block_px, or enlarge data.region"
        )
    return rows


def _normalise_period(
    data: dict[str, np.ndarray],
    sel: np.ndarray,
    stats: Mapping[str, Any],
    observed: np.ndarray,
    path: Path,
) -> dict[str, np.ndarray]:
    """Contract arrays for patches `sel` of one period file: y_n = (y-mean)/std (0 invalid), x = A * y_n."""
    y = data["y"][sel].astype(np.float32)
    valid = np.isfinite(y)
    mean = np.asarray(stats["mean"], np.float32)[None, :, None, None]
    std = np.asarray(stats["std"], np.float32)[None, :, None, None]
    y_n = np.where(valid, (y - mean) / std, 0.0).astype(np.float32)
    a = observed[:, None] & valid
    out = {
        "y": y_n, "y_valid": valid, "x": np.where(a, y_n, 0.0).astype(np.float32), "x_valid": a,
        "land": ~valid[:, 0], "lat": data["lat"][sel], "lon": data["lon"][sel], "time": data["time"][sel],
        "patch_id": data["patch_id"][sel],
    }
    if "eo" in data:
        if stats.get("eo_mean") is None or not stats.get("eo_std"):
            raise DataError(f"{path} has an eo array but stats.json has no eo_mean/eo_std; rerun the stats rule")
        eo = data["eo"][sel].astype(np.float32)
        ok = np.isfinite(eo) & valid[:, :1]
        out["eo"] = np.where(ok, (eo - np.float32(stats["eo_mean"])) / np.float32(stats["eo_std"]), 0.0).astype(np.float32)
    return out


def write_split_shards(
    index_path: str | os.PathLike[str],
    stats_path: str | os.PathLike[str],
    patch_files: Sequence[str | os.PathLike[str]],
    scenario: str,
    scenario_cfg: Mapping[str, Any],
    split: str,
    shard_size: int,
    out_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Occlusion shards of one split and scenario, streamed period file by period file.

    Rows of `split` in index.parquet, sorted by patch_id; patch arrays from the period npz
    whose file stem is the row's `period`. ocean = isfinite(y[:, 0]); observed from
    `depthdif.masks.make_mask(scenario_cfg["mode"], ...)`; A = observed[None] & y_valid;
    y normalised with stats.json. Returns a summary (n, n_shards, observed/hidden fraction).
    """
    from depthdif.masks import make_mask  # local: masks are only needed here

    index_path, stats_path = Path(index_path), Path(stats_path)
    rows = _read_split_rows(index_path, split)
    files = {Path(p).stem: Path(p) for p in patch_files}
    missing = sorted(set(rows["period"]) - set(files))
    if missing:
        raise DataError(f"index {index_path} has {split} patches of periods {missing[:5]} but no patch file for them")
    if not stats_path.is_file():
        raise DataError(f"normalisation stats {stats_path} not found; rerun the stats rule")
    stats = read_json(stats_path)
    if any(s <= 0 for s in stats["std"]):
        raise DataError(f"{stats_path} has a non-positive std {stats['std']}; check the train patches")
    mode, fraction, seed = scenario_cfg["mode"], float(scenario_cfg["fraction"]), int(scenario_cfg.get("seed", 0))
    tracks = None
    if mode == "argo":
        from depthdif.data.argo import read_argo_tracks

        if not scenario_cfg.get("argo_paths"):
            raise ConfigError(f"scenario {scenario!r} has mode argo but scenarios.{scenario}.argo_paths is empty; "
                            "point it at GDAC *_prof.nc files")
        tracks = read_argo_tracks(scenario_cfg["argo_paths"])
        if tracks.empty:
            raise DataError(f"scenarios.{scenario}.argo_paths={scenario_cfg['argo_paths']!r} has no profile with "
                            "good position/time/temperature QC")

    depth: list[float] | None = None
    with atomic_output(out_dir) as tmp:
        writer = _ShardWriter(tmp, shard_size)
        # consecutive runs of one period: each period file is loaded once, in patch_id order
        runs = (rows["period"] != rows["period"].shift()).cumsum()
        for _, run in rows.groupby(runs, sort=False):
            path = files[run["period"].iloc[0]]
            data = _load_period(path)
            if len(stats["mean"]) != data["y"].shape[1]:
                raise DataError(f"{path} has {data['y'].shape[1]} depth channels but {stats_path} has "
                                f"{len(stats['mean'])}; rerun the patches and stats rules")
            depth = depth or [float(d) for d in data["depth"]]
            where = pd.Series(np.arange(len(data["patch_id"])), index=data["patch_id"].astype(str))
            absent = sorted(set(run["patch_id"]) - set(where.index))
            if absent:
                raise DataError(f"{path} lacks patches {absent[:3]} listed in {index_path}; rerun the patches rule")
            sel = where.loc[run["patch_id"]].to_numpy()
            observed = np.stack([
                make_mask(mode, np.isfinite(data["y"][i, 0]), fraction, seed, str(data["patch_id"][i]),
                          dict(scenario_cfg), lat=data["lat"][i], lon=data["lon"][i], time=data["time"][i],
                          argo_tracks=tracks)
                for i in sel
            ])
            chunk = _normalise_period(data, sel, stats, observed, path)
            try:
                writer.add(chunk)
            except ValueError as exc:
                raise DataError(f"{path} does not match the earlier patch files: {exc}; rerun the patches rule") from exc
            del data, chunk
        manifest = writer.finish(**_manifest_head(scenario, split, stats, depth or [], scenario_cfg))
    return {
        "scenario": scenario, "split": split, "n": manifest["n"], "n_shards": len(manifest["shards"]),
        "observed_fraction": manifest["observed_fraction"], "hidden_fraction": manifest["hidden_fraction"],
        "out_dir": str(out_dir),
    }


#: name used in docs/architecture.md
write_shards = write_split_shards
