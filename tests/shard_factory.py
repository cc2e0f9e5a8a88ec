"""Tiny, smooth, learnable shard folders for tests (uses depthdif.shards.save_shards).

    from shard_factory import make_shards
    folder = make_shards(tmp_path, n=8, channels=2, size=16)   # -> tmp_path/shards/tiny/train

Fields: per channel a depth-decreasing mean (~18 degC at the surface to ~12 degC at the
deepest level) + a few low-wavenumber sinusoids whose amplitude decays with depth, so
the overall mean is ~15 degC and std ~3. Land is a disc near a corner; deeper levels lose
the pixels within `c` px of land (sea floor). Observed = iid ocean pixels, hidden share
`fraction` (exact count, at least one observed pixel), each observing its whole valid column;
with `per_level=True` each observed position is a profile over levels shallowest..deepest
(`profile_levels`): patch 0 has no observation at level 0, the others miss it at about half
their positions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from depthdif.io import seed_for
from depthdif.shards import save_shards

EPOCH_2015 = 1420070400  # 2015-01-01T00:00:00Z


def make_fields(n: int, channels: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Raw degC arrays following the patch contract: y (NaN invalid), eo, lat, lon, time, patch_id."""
    rng = np.random.default_rng(seed_for("shard_factory", seed))
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    depth_frac = np.arange(channels) / max(channels - 1, 1)
    y = np.empty((n, channels, size, size), np.float32)
    eo = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        pattern = np.zeros((size, size))
        for _ in range(3):
            kx, ky = rng.uniform(-1.5, 1.5, 2) * 2 * np.pi / size
            pattern += np.cos(kx * xx + ky * yy + rng.uniform(0, 2 * np.pi))
        pattern *= 2.0 / np.sqrt(1.5)  # ~2 degC spatial std at the surface
        offset = rng.normal(0.0, 1.0)
        for c, f in enumerate(depth_frac):
            y[i, c] = 18.0 - 6.0 * f + offset + (1.0 - 0.5 * f) * pattern
        land = _land(rng, size, yy, xx)
        for c in range(channels):
            invalid = ndimage.binary_dilation(land, iterations=c) if c else land
            y[i, c][invalid] = np.nan
        eo[i, 0] = ndimage.gaussian_filter(np.nan_to_num(y[i, 0], nan=float(np.nanmean(y[i, 0]))), 1.0)
        eo[i, 0] += rng.normal(0.0, 0.1, (size, size))
        eo[i, 0][land] = np.nan
    lat0 = rng.uniform(25.0, 45.0, n)
    lon0 = rng.uniform(-40.0, -15.0, n)
    step = 0.25 * np.arange(size)
    y0 = (np.arange(n) // 4) * size
    x0 = (np.arange(n) % 4) * size
    return {
        "y": y,
        "eo": eo,
        "lat": (lat0[:, None] + step).astype(np.float32),
        "lon": (lon0[:, None] + step).astype(np.float32),
        "time": (EPOCH_2015 + 30 * 86400 * np.arange(n)).astype(np.int64),
        "patch_id": np.array([f"2015-01_y{a:05d}_x{b:05d}_{i}" for i, (a, b) in enumerate(zip(y0, x0))], "<U64"),
    }


def _land(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    cy, cx = rng.choice([0, size - 1], 2)
    radius = rng.uniform(0.15, 0.3) * size
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def iid_observed(ocean: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round((1-fraction)*|ocean|) (>= 1) iid observed ocean pixels."""
    idx = np.flatnonzero(ocean)
    k = min(len(idx), max(1, int(round((1.0 - fraction) * len(idx)))))
    observed = np.zeros(ocean.size, bool)
    observed[rng.choice(idx, k, replace=False)] = True
    return observed.reshape(ocean.shape)


def profile_levels(observed: np.ndarray, channels: int, rng: np.random.Generator,
                   *, skip_surface: bool) -> np.ndarray:
    """(C,H,W) per-level mask from observed positions (H,W): each position covers the levels
    shallowest..deepest, shallowest in {0, 1} (1 everywhere with `skip_surface`, when C > 1),
    deepest uniform in shallowest..C-1, like Argo profiles between their first and last good value."""
    top = np.ones(observed.shape, int) if skip_surface and channels > 1 else rng.integers(0, min(2, channels),
                                                                                          observed.shape)
    bottom = rng.integers(top, channels)
    level = np.arange(channels)[:, None, None]
    return observed[None] & (level >= top[None]) & (level <= bottom[None])


def make_shards(
    tmp_path: Path,
    *,
    n: int = 8,
    channels: int = 2,
    size: int = 16,
    has_eo: bool = True,
    split: str = "train",
    scenario: str = "tiny",
    fraction: float = 0.9,
    seed: int = 0,
    shard_size: int | None = None,
    per_level: bool = False,
) -> Path:
    """Build and save a shard folder at `tmp_path/shards/{scenario}/{split}`; return it.

    `shard_size` defaults to ceil(n/2) so the folder has two shards (exercises concatenation);
    `per_level`: A from `profile_levels` (a per-level mask) instead of whole columns.
    """
    raw = make_fields(n, channels, size, seed)
    y = raw["y"]
    valid = np.isfinite(y)
    mean = np.array([np.nanmean(y[:, c]) for c in range(channels)])
    std = np.array([np.nanstd(y[:, c]) for c in range(channels)])
    eo_mean, eo_std = float(np.nanmean(raw["eo"])), float(np.nanstd(raw["eo"]))
    stats = {
        "mean": mean.tolist(), "std": std.tolist(),
        "eo_mean": eo_mean if has_eo else None, "eo_std": eo_std if has_eo else None,
        "depth": [float(d) for d in np.linspace(0.5, 300.0, channels)],
        "n_patches": n, "split": "train",
    }
    y_norm = np.where(valid, (y - mean[None, :, None, None]) / std[None, :, None, None], 0.0).astype(np.float32)
    land = ~valid[:, 0]
    rng = np.random.default_rng(seed_for("shard_factory_mask", seed))
    observed = np.stack([iid_observed(~land[i], fraction, rng) for i in range(n)])
    if per_level:
        levels_rng = np.random.default_rng(seed_for("shard_factory_levels", seed))
        observed = np.stack([profile_levels(observed[i], channels, levels_rng, skip_surface=i == 0)
                             for i in range(n)])
    a = (observed if per_level else observed[:, None]) & valid
    arrays = {
        "y": y_norm, "y_valid": valid, "x": np.where(a, y_norm, 0.0).astype(np.float32), "x_valid": a,
        "land": land, "lat": raw["lat"], "lon": raw["lon"], "time": raw["time"], "patch_id": raw["patch_id"],
    }
    if has_eo:
        arrays["eo"] = np.where(np.isfinite(raw["eo"]), (raw["eo"] - eo_mean) / eo_std, 0.0).astype(np.float32)
    out = Path(tmp_path) / "shards" / scenario / split
    save_shards(
        out, arrays, scenario=scenario, split=split, stats=stats, depth=stats["depth"],
        mask_cfg={"mode": "pixel", "fraction": fraction, "seed": seed},
        shard_size=shard_size or max(1, -(-n // 2)),
    )
    return out
