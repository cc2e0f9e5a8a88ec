"""Gather per-period patch files into index.parquet (with splits) and train-only stats.json."""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthdif.data.split import assign_splits
from depthdif.errors import DataError
from depthdif.io import atomic_output, write_json

INDEX_COLUMNS = ["patch_id", "period", "source_file", "y0", "x0", "size", "lat_min", "lat_max",
                 "lon_min", "lon_max", "lat", "lon", "time", "nodata_fraction", "block", "split"]
CHUNK_VALUES = 1 << 18  # values per float64 moments update: 2 MiB of scratch, reused


def _load(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays `keys` that the patch file has (the others are left out)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys if k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable patch file ({exc}); re-run patch extraction.") from exc


def _has_eo(path: Path) -> bool:
    """Whether the patch file has an ``eo`` array (nothing is read but the zip directory)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "eo" in npz.files
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable patch file ({exc}); re-run patch extraction.") from exc


def _train_chunks(path: Path, key: str, train: np.ndarray) -> Iterator[np.ndarray]:
    """Rows of array `key` where `train` is True, read about CHUNK_VALUES values at a time.

    The npz member is read sequentially, so at most one chunk of the file is in memory.
    """
    try:
        with np.load(path, allow_pickle=False) as npz, npz.zip.open(f"{key}.npy") as fp:
            version = np.lib.format.read_magic(fp)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fp)
            if fortran or dtype.hasobject or len(shape) < 1 or shape[0] != train.size:
                raise ValueError(f"'{key}' has shape {shape} (fortran order {fortran}, dtype {dtype}), "
                                 f"expected {train.size} C-ordered numeric rows")
            row_values = math.prod(shape[1:])
            step = max(1, CHUNK_VALUES // max(row_values, 1))
            for start in range(0, train.size, step):
                stop = min(start + step, train.size)
                raw = fp.read((stop - start) * row_values * dtype.itemsize)
                keep = train[start:stop]
                if keep.any():
                    yield np.frombuffer(raw, dtype).reshape(stop - start, *shape[1:])[keep]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable patch file ({exc}); re-run patch extraction.") from exc


def _rows(path: Path) -> pd.DataFrame:
    """Index rows of one patch file (metadata only; `y` is not read)."""
    meta = _load(path, ["patch_id", "y0", "x0", "lat", "lon", "time", "nodata_fraction", "period", "source_file"])
    lat, lon = meta["lat"].astype(np.float64), meta["lon"].astype(np.float64)
    period = str(meta["period"]) if "period" in meta else path.stem
    return pd.DataFrame({
        "patch_id": meta["patch_id"].astype(str),
        "period": period,
        "source_file": str(meta.get("source_file", "")),
        "y0": meta["y0"].astype(np.int32),
        "x0": meta["x0"].astype(np.int32),
        "size": np.full(lat.shape[0], lat.shape[1], dtype=np.int32),
        "lat_min": lat.min(axis=1), "lat_max": lat.max(axis=1),
        "lon_min": lon.min(axis=1), "lon_max": lon.max(axis=1),
        "lat": lat.mean(axis=1), "lon": lon.mean(axis=1),
        "time": pd.to_datetime(meta["time"].astype(np.int64), unit="s"),
        "nodata_fraction": meta["nodata_fraction"].astype(np.float32),
    })


class _Moments:
    """Streaming per-channel count/mean/M2 in float64 (Chan et al. pairwise update)."""

    def __init__(self, channels: int) -> None:
        self.n = np.zeros(channels)
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)
        # scratch reused by every add: fresh MiB-sized temporaries per chunk cost more in page
        # faults (glibc returns them to the OS each time) than the arithmetic itself
        self._data = np.empty(0)
        self._invalid = np.empty(0, dtype=bool)

    def add(self, values: np.ndarray) -> None:
        """Add (N, C, H, W) values; NaNs are ignored."""
        channels, size = values.shape[1], values.size
        if self._data.size < size:
            self._data, self._invalid = np.empty(size), np.empty(size, dtype=bool)
        data = self._data[:size].reshape(channels, -1)
        invalid = self._invalid[:size].reshape(channels, -1)
        per_channel = np.moveaxis(values, 1, 0).reshape(channels, values.shape[0], -1)  # a view
        np.copyto(data.reshape(per_channel.shape), per_channel)  # float64 (C, N*H*W)
        np.logical_not(np.isfinite(data, out=invalid), out=invalid)
        n = (data.shape[1] - np.count_nonzero(invalid, axis=1)).astype(np.float64)
        np.copyto(data, 0.0, where=invalid)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, data.sum(axis=1) / n, 0.0)
        data -= mean[:, None]
        np.copyto(data, 0.0, where=invalid)
        m2 = np.square(data, out=data).sum(axis=1)
        both = self.n + n
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mean - self.mean
            self.mean = np.where(both > 0, self.mean + delta * n / both, 0.0)
            self.m2 = self.m2 + m2 + np.where(both > 0, delta**2 * self.n * n / both, 0.0)
        self.n = both

    def std(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(self.m2 / self.n)


def gather_patches(
    npz_paths: Sequence[str | os.PathLike[str]],
    patches_cfg: dict[str, Any],
    index_out: str | os.PathLike[str],
    stats_out: str | os.PathLike[str],
) -> None:
    """Write index.parquet (one row per patch, spatial-block split) and stats.json.

    Stats: per-channel mean/std (population) over finite values of TRAIN patches only,
    accumulated in float64 about CHUNK_VALUES values at a time; ``eo_mean``/``eo_std`` likewise
    (null when the patches have no EO).
    """
    paths = [Path(p) for p in npz_paths]
    if not paths:
        raise DataError("no patch files to gather; check data.periods.")
    index = pd.concat([_rows(p) for p in paths], ignore_index=True)
    if index["patch_id"].duplicated().any():
        dup = index.loc[index["patch_id"].duplicated(), "patch_id"].iloc[0]
        raise DataError(f"patch id {dup!r} occurs in several patch files; remove stale files.")
    index = assign_splits(index, patches_cfg["split"])[INDEX_COLUMNS]
    train_ids = set(index.loc[index["split"] == "train", "patch_id"])
    if not train_ids:
        raise DataError(
            f"the train split is empty ({len(index)} patches in {index['block'].nunique()} spatial "
            "blocks); lower patches.split.block_px, raise patches.split.fractions.train, or "
            "remove years from patches.split.test_years."
        )

    depth: np.ndarray | None = None
    y_moments: _Moments | None = None
    eo_moments = _Moments(1)
    has_eo: set[bool] = set()
    for path in paths:
        data = _load(path, ["patch_id", "depth"])
        if depth is None:
            depth = data["depth"].astype(np.float64)
            y_moments = _Moments(depth.size)
        elif data["depth"].shape != depth.shape or not np.allclose(data["depth"], depth):
            raise DataError(f"{path}: depth levels {data['depth'].tolist()} differ from {depth.tolist()}.")
        file_has_eo = _has_eo(path)
        has_eo.add(file_has_eo)
        ids = data["patch_id"].tolist()
        train = np.fromiter((pid in train_ids for pid in ids), dtype=bool, count=len(ids))  # set: O(1) per id
        if train.any():
            for chunk in _train_chunks(path, "y", train):
                y_moments.add(chunk)  # type: ignore[union-attr]
            if file_has_eo:
                for chunk in _train_chunks(path, "eo", train):
                    eo_moments.add(chunk)
    if len(has_eo) > 1:
        raise DataError("some patch files have an 'eo' array and others not; re-run patch extraction.")
    assert depth is not None and y_moments is not None
    std = y_moments.std()
    bad = np.flatnonzero(~(std > 0))
    if bad.size:
        raise DataError(
            f"train patches have no spread at depth(s) {depth[bad].tolist()} m (std {std[bad].tolist()}); "
            "check data.depth_levels and data.region."
        )
    with_eo = has_eo == {True}
    stats = {
        "mean": y_moments.mean.tolist(),
        "std": std.tolist(),
        "eo_mean": float(eo_moments.mean[0]) if with_eo else None,
        "eo_std": float(eo_moments.std()[0]) if with_eo else None,
        "depth": depth.tolist(),
        "n_patches": len(train_ids),
        "split": "train",
    }
    with atomic_output(index_out) as tmp:
        index.to_parquet(tmp, index=False)
    write_json(stats_out, stats)


def split_periods(index_path: str | os.PathLike[str], split: str, periods: Sequence[str]) -> list[str]:
    """The periods (in `periods` order) that hold patches of `split` in index.parquet."""
    try:
        index = pd.read_parquet(index_path, columns=["period", "split"])
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"cannot read patch index {index_path} ({exc}); rerun rule gather_patches") from exc
    found = set(index.loc[index["split"] == split, "period"].astype(str))
    out = [p for p in periods if p in found]
    if not out:
        raise DataError(f"{index_path} has no {split} patch, so there is no default period to map; set "
                        f"maps.periods or raise patches.split.fractions.{split}")
    return out
