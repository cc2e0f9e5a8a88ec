"""Torch Dataset over a shard folder (see depthdif.shards), memory-mapped, no pickle."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from depthdif.errors import DataError
from depthdif.io import seed_for
from depthdif.shards import load_array, load_arrays, read_manifest

# load_arrays lives in depthdif.shards; the name stays here for the callers that import it from this module
__all__ = ["META", "SPATIAL", "ShardDataset", "augment_params", "load_arrays", "patch_coords"]

#: per-sample spatial arrays returned as float32 tensors
SPATIAL = ("y", "y_valid", "x", "x_valid", "land", "eo")
META = ("lat", "lon", "time", "patch_id")


def patch_coords(lat: np.ndarray, lon: np.ndarray, time: np.ndarray) -> np.ndarray:
    """(N,4) float32: unit-sphere (x, y, z) of each patch centre and the year phase.

    Centre latitude = mean of the row latitudes; centre longitude = circular mean of the
    column longitudes (safe across the dateline). Year phase = day-of-year angle / 2π, i.e.
    the elapsed fraction of the calendar year in [0, 1) (leap years handled by pandas).
    """
    phi = np.deg2rad(np.asarray(lat, np.float64).mean(axis=1))
    lam_cols = np.deg2rad(np.asarray(lon, np.float64))
    lam = np.arctan2(np.sin(lam_cols).mean(axis=1), np.cos(lam_cols).mean(axis=1))
    t = pd.to_datetime(np.asarray(time, np.int64), unit="s")
    year_start = t.to_period("Y").to_timestamp()
    year_len = (year_start + pd.offsets.YearBegin(1)) - year_start
    phase = np.asarray((t - year_start) / year_len, np.float64)
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi), phase], axis=1)
    return xyz.astype(np.float32)


def augment_params(seed: int, epoch: int, index: int, square: bool) -> tuple[int, bool]:
    """(k quarter-turns, horizontal flip) drawn from seed_for("augment", seed, epoch, index).

    Non-square patches only get k in {0, 2} so shapes stay batchable.
    """
    rng = np.random.default_rng(seed_for("augment", seed, epoch, index))
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    return k, bool(rng.integers(2))


class ShardDataset(Dataset):
    """Items of a shard folder as tensors.

    Item: `y, y_valid, x, x_valid` (C,H,W) float32; `land` (1,H,W) float32; `eo` (1,H,W)
    float32 if `has_eo`; `coords` (4,) float32 (see `patch_coords`); `index` int64.
    With `augment=True` one random rot90 + optional flip of the last two axes is applied
    identically to every spatial tensor, drawn deterministically from (seed, epoch, index);
    call `set_epoch` to vary it between epochs. `coords` are not augmented.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        augment: bool = False,
        seed: int = 0,
        item_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    ) -> None:
        self.folder = Path(folder)
        #: extra per-item arrays computed from the un-augmented item (e.g. the OI first guess), each
        #: (..., H, W) or (..., 1, 1), cached per index and augmented with the item
        self.item_fn = item_fn
        self._item_cache: dict[int, dict[str, np.ndarray]] = {}
        self.manifest: dict[str, Any] = read_manifest(self.folder)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0
        self.has_eo: bool = bool(self.manifest["has_eo"])
        self.channels: int = int(self.manifest["channels"])
        self.stats: dict[str, Any] = self.manifest["stats"]
        self._spatial = [k for k in SPATIAL if k != "eo" or self.has_eo]
        self._shards: list[dict[str, np.ndarray]] | None = None
        sizes = [len(s["y"]) for s in self._open()]
        if sizes != [s["n"] for s in self.manifest["shards"]] or sum(sizes) != self.manifest["n"]:
            raise DataError(f"{self.folder}: shard sizes {sizes} disagree with manifest.json; "
                            "delete the folder and rerun rule make_shards")
        self._starts = np.cumsum([0, *sizes])
        shards = self.manifest["shards"]
        meta = {
            k: np.concatenate([load_array(self.folder / s["name"] / f"{k}.npy", mmap=False) for s in shards])
            for k in META
        }
        self.lat: np.ndarray = meta["lat"]
        self.lon: np.ndarray = meta["lon"]
        self.time: np.ndarray = meta["time"]
        self.patch_ids: np.ndarray = meta["patch_id"]
        self.coords: np.ndarray = patch_coords(self.lat, self.lon, self.time)

    def _open(self) -> list[dict[str, np.ndarray]]:
        """Memory maps of every shard, opened lazily (again in each DataLoader worker)."""
        if self._shards is None:
            self._shards = [
                {k: load_array(self.folder / s["name"] / f"{k}.npy", mmap=True) for k in self._spatial}
                for s in self.manifest["shards"]
            ]
        return self._shards

    def __getstate__(self) -> dict[str, Any]:
        # spawn-started workers re-open the maps instead of pickling the arrays
        return {**self.__dict__, "_shards": None, "_item_cache": {}}

    def __len__(self) -> int:
        return int(self._starts[-1])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of this epoch (no effect without augment)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples in {self.folder}")
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        local = index - int(self._starts[k])
        arrays = {name: np.array(a[local], dtype=np.float32)  # copy: mmap is read-only
                  for name, a in self._open()[k].items()}
        arrays["land"] = arrays["land"][None]
        if self.item_fn is not None:
            if index not in self._item_cache:
                self._item_cache[index] = self.item_fn(arrays)
            arrays.update(self._item_cache[index])
        if self.augment:
            h, w = arrays["y"].shape[-2:]
            turns, flip = augment_params(self.seed, self.epoch, index, square=h == w)
            for name, a in arrays.items():
                a = np.rot90(a, turns, axes=(-2, -1))
                arrays[name] = a[..., ::-1] if flip else a
        # a copy: rotated views have negative strides (np.ascontiguousarray keeps them on 1×1 axes)
        item = {name: torch.from_numpy(np.array(a, copy=True, order="C")) for name, a in arrays.items()}
        item["coords"] = torch.from_numpy(self.coords[index].copy())
        item["index"] = torch.tensor(index, dtype=torch.int64)
        return item
