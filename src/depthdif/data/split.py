"""Spatial-block train/val/test split: a tile location never appears in two splits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import ConfigError
from depthdif.io import seed_for

SPLITS = ("train", "val", "test")


def block_counts(n_blocks: int, fractions: dict[str, float]) -> dict[str, int]:
    """Blocks per split by largest remainder; with >= 3 blocks every nonzero split gets >= 1."""
    shares = np.array([float(fractions[s]) for s in SPLITS])
    if shares.sum() <= 0:
        raise ConfigError("config key 'patches.split.fractions': all fractions are zero.")
    exact = shares / shares.sum() * n_blocks
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n_blocks - counts.sum()]:
        counts[i] += 1
    if n_blocks >= 3:
        for i in np.flatnonzero((shares > 0) & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1  # take from the largest split
            counts[i] = 1
    return dict(zip(SPLITS, counts.tolist()))


def assign_splits(index: pd.DataFrame, split_cfg: dict[str, Any]) -> pd.DataFrame:
    """Copy of `index` with ``block`` ("y{by}_x{bx}" of (y0, x0) // block_px) and ``split``.

    Blocks are shuffled with ``seed`` and dealt to train/val/test by ``fractions``; patches
    whose year is in ``test_years`` go to test whatever their block (a hold-out in time).
    """
    if split_cfg["method"] != "blocks":
        raise ConfigError(f"config key 'patches.split.method': {split_cfg['method']!r} is not 'blocks'.")
    block_px = int(split_cfg["block_px"])
    out = index.copy()
    by = out["y0"].to_numpy(dtype=np.int64) // block_px
    bx = out["x0"].to_numpy(dtype=np.int64) // block_px
    out["block"] = [f"y{a:04d}_x{b:04d}" for a, b in zip(by, bx)]
    blocks = np.array(sorted(set(out["block"])))
    rng = np.random.default_rng(seed_for(split_cfg["seed"], "spatial-blocks"))
    shuffled = blocks[rng.permutation(blocks.size)] if blocks.size else blocks
    counts = block_counts(blocks.size, split_cfg["fractions"])
    bounds = np.cumsum([counts[s] for s in SPLITS])
    owner = {}
    for split, start, stop in zip(SPLITS, np.r_[0, bounds[:-1]], bounds):
        owner.update(dict.fromkeys(shuffled[start:stop].tolist(), split))
    out["split"] = out["block"].map(owner)
    test_years = {int(y) for y in split_cfg["test_years"]}
    if test_years:
        out.loc[_years(out["time"]).isin(test_years).to_numpy(), "split"] = "test"
    return out


def _years(time: pd.Series) -> pd.Series:
    """Calendar year of datetime values or of int seconds since the epoch."""
    if pd.api.types.is_datetime64_any_dtype(time):
        return time.dt.year
    return pd.to_datetime(time.to_numpy(dtype=np.int64), unit="s").to_series(index=time.index).dt.year
