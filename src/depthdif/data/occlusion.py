"""Occlusion shards of one scenario and split, built from the period patch files.

Rows of the split in index.parquet (sorted by patch_id), patch arrays from the period npz
files, the scenario's observation mask (`depthdif.masks.make_mask`) and the train
statistics of stats.json; written in the shard format of `depthdif.shards`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import ConfigError, DataError, NoPatchesError
from depthdif.io import atomic_output, read_json
from depthdif.masks import make_mask
from depthdif.shards import ShardWriter, manifest_head, normalise


def _load_period(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read patch file {path} ({exc}); rerun rule extract_patches") from exc


def _read_split_rows(index_path: Path, split: str) -> pd.DataFrame:
    try:
        index = pd.read_parquet(index_path, columns=["patch_id", "period", "split"])
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"cannot read patch index {index_path} ({exc}); rerun rule gather_patches") from exc
    rows = index[index["split"] == split].sort_values("patch_id", kind="stable").reset_index(drop=True)
    if rows.empty:
        counts = index["split"].value_counts().to_dict()
        raise NoPatchesError(
            f"no patch of split {split!r} in {index_path} (patches per split: {counts}); "
            "raise patches.split.fractions." + split + ", lower patches.split.block_px, or enlarge data.region"
        )
    return rows


def observation_mask(observed: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A = observed & valid, per depth level: `observed` (n,C,H,W) is a per-level mask (a profile
    covers only the levels it measured); (n,H,W) is shared by the column and broadcast."""
    per_level = observed if observed.ndim == valid.ndim else observed[:, None]
    return per_level & valid


def _normalise_period(
    data: dict[str, np.ndarray],
    sel: np.ndarray,
    stats: Mapping[str, Any],
    observed: np.ndarray,
    path: Path,
) -> dict[str, np.ndarray]:
    """Contract arrays for patches `sel` of one period file: y_n = (y-mean)/std (0 invalid), x = A * y_n,
    A = `observation_mask(observed, valid)`."""
    y = data["y"][sel].astype(np.float32)
    valid = np.isfinite(y)
    y_n = np.where(valid, normalise(y, stats, 1), 0.0).astype(np.float32)
    a = observation_mask(observed, valid)
    out = {
        "y": y_n, "y_valid": valid, "x": np.where(a, y_n, 0.0).astype(np.float32), "x_valid": a,
        "land": ~valid[:, 0], "lat": data["lat"][sel], "lon": data["lon"][sel], "time": data["time"][sel],
        "patch_id": data["patch_id"][sel],
    }
    if "eo" in data:
        if stats.get("eo_mean") is None or not stats.get("eo_std"):
            raise DataError(f"{path} has an eo array but stats.json has no eo_mean/eo_std; rerun rule gather_patches")
        eo = data["eo"][sel].astype(np.float32)
        ok = np.isfinite(eo) & valid[:, :1]
        eo_n = (eo - np.float32(stats["eo_mean"])) / np.float32(stats["eo_std"])
        out["eo"] = np.where(ok, eo_n, 0.0).astype(np.float32)
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
    `depthdif.masks.make_mask(scenario_cfg["mode"], ...)` ((H,W): the whole valid column, or (C,H,W)
    per level); A = `observation_mask(observed, y_valid)`;
    y normalised with stats.json. Returns a summary (n, n_shards, observed/hidden fraction).
    """
    index_path, stats_path = Path(index_path), Path(stats_path)
    rows = _read_split_rows(index_path, split)
    files = {Path(p).stem: Path(p) for p in patch_files}
    missing = sorted(set(rows["period"]) - set(files))
    if missing:
        raise DataError(f"index {index_path} has {split} patches of periods {missing[:5]} but no patch file for them")
    if not stats_path.is_file():
        raise DataError(f"normalisation stats {stats_path} not found; rerun rule gather_patches")
    stats = read_json(stats_path)
    if any(s <= 0 for s in stats["std"]):
        raise DataError(f"{stats_path} has a non-positive std {stats['std']}; check the train patches")
    mode, fraction, seed = scenario_cfg["mode"], float(scenario_cfg["fraction"]), int(scenario_cfg["seed"])
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
        writer = ShardWriter(tmp, shard_size)
        # consecutive runs of one period: each period file is loaded once, in patch_id order
        runs = (rows["period"] != rows["period"].shift()).cumsum()
        for _, run in rows.groupby(runs, sort=False):
            path = files[run["period"].iloc[0]]
            data = _load_period(path)
            if len(stats["mean"]) != data["y"].shape[1]:
                raise DataError(f"{path} has {data['y'].shape[1]} depth channels but {stats_path} has "
                                f"{len(stats['mean'])}; rerun rules extract_patches and gather_patches")
            depth = depth or [float(d) for d in data["depth"]]
            where = pd.Series(np.arange(len(data["patch_id"])), index=data["patch_id"].astype(str))
            absent = sorted(set(run["patch_id"]) - set(where.index))
            if absent:
                raise DataError(f"{path} lacks patches {absent[:3]} listed in {index_path}; "
                                "rerun rules extract_patches and gather_patches")
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
                raise DataError(
                    f"{path} does not match the earlier patch files: {exc}; rerun rule extract_patches"
                ) from exc
            del data, chunk
        manifest = writer.finish(**manifest_head(scenario, split, stats, depth or [], scenario_cfg))
    return {
        "scenario": scenario, "split": split, "n": manifest["n"], "n_shards": len(manifest["shards"]),
        "observed_fraction": manifest["observed_fraction"], "hidden_fraction": manifest["hidden_fraction"],
        "out_dir": str(out_dir),
    }
