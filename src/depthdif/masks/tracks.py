"""`tracks` mode: synthetic Argo-like drifter tracks thinned to one sample every few px."""

from __future__ import annotations

from typing import Any

import numpy as np

from depthdif.masks.common import collect, target_count

#: heading change per px of path (radians, std of a Gaussian): gently curving tracks
TURN_STD = 0.12


def walk(rng: np.random.Generator, ocean_idx: np.ndarray, shape: tuple[int, int], sample_every: int) -> np.ndarray:
    """One track as flat pixel indices in path order.

    Unit-px steps from a random ocean pixel (flat indices `ocean_idx`, +-0.5 px jitter) with
    heading theta_t = theta_0 + cumsum(N(0, TURN_STD)); the path stops where it first leaves
    the patch and is sampled at steps 0, s, 2s, ... (s = sample_every), rounded to pixels.
    """
    h, w = shape
    n_steps = 2 * (h + w)
    theta = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, TURN_STD, n_steps))
    start = np.array(np.unravel_index(rng.choice(ocean_idx), shape)) + rng.uniform(-0.5, 0.5, 2)
    steps = np.stack([np.sin(theta), np.cos(theta)], axis=1)
    path = start + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    rows, cols = np.rint(path[::sample_every]).astype(np.int64).T
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    end = inside.size if inside.all() else int(np.argmin(inside))
    return rows[:end] * w + cols[:end]


def tracks_mask(ocean: np.ndarray, fraction: float, rng: np.random.Generator, options: dict[str, Any]) -> np.ndarray:
    """`n_tracks` walks (more until `target_count` is reached), then trimmed at track ends.

    Samples that fall on land are skipped (the float is not observed there).
    """
    every = max(1, int(options["sample_every"]))
    n_tracks = max(1, int(options["n_tracks"]))
    ocean_idx = np.flatnonzero(ocean)
    k = target_count(ocean_idx.size, fraction)
    return collect(
        ocean, k, rng, lambda g: walk(g, ocean_idx, ocean.shape, every), n_start=n_tracks, max_draws=100 + 20 * k
    )
