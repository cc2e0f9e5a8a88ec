"""The (patch, depth channel) loop shared by the classical gap-fillers (`baselines.idw`, `oi`).

Array convention: values/observed/valid are (N,C,H,W) in degC; `observed` (A) marks the
only pixels a baseline may read, `valid` where a prediction is wanted (NaN elsewhere).
Distances are in pixels of the patch grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def check_shapes(values: np.ndarray, observed: np.ndarray, valid: np.ndarray) -> None:
    if values.ndim != 4 or observed.shape != values.shape or valid.shape != values.shape:
        raise ValueError(
            f"values/observed/valid must share one (N,C,H,W) shape, got {values.shape}, {observed.shape}, {valid.shape}"
        )


def _fill_values(fill: float | Sequence[float], channels: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(fill, np.float64), (channels,))


Solver = Callable[[int, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def per_field(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    fill: float | Sequence[float],
    solve: Solver,
    fill_std: float | Sequence[float] = np.nan,
) -> tuple[np.ndarray, np.ndarray]:
    """Loop over (patch, channel); `solve(c, obs_yx, obs_values, query_yx)` returns the prediction at
    the valid pixels and its std (or None: NaN std). Returns float32 (pred, std), NaN where not valid.

    Fields with no observation get `fill[c]` (e.g. the channel's training mean) and `fill_std[c]`.
    """
    check_shapes(values, observed, valid)
    n, c, h, w = values.shape
    fills, fill_stds = _fill_values(fill, c), _fill_values(fill_std, c)
    out = np.full(values.shape, np.nan, np.float32)
    std = np.full(values.shape, np.nan, np.float32)
    obs_b = observed.astype(bool) & valid.astype(bool)
    valid_b = valid.astype(bool)
    for i in range(n):
        for k in range(c):
            query = np.argwhere(valid_b[i, k])
            if not len(query):
                continue
            pts = np.argwhere(obs_b[i, k])
            if not len(pts):
                out[i, k][valid_b[i, k]] = fills[k]
                std[i, k][valid_b[i, k]] = fill_stds[k]
                continue
            obs_vals = values[i, k][obs_b[i, k]].astype(np.float64)
            pred, sd = solve(k, pts.astype(np.float64), obs_vals, query.astype(np.float64))
            out[i, k][valid_b[i, k]] = pred
            if sd is not None:
                std[i, k][valid_b[i, k]] = sd
    return out, std
