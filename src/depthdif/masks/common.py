"""Shared mask helpers: the target count and a grow-then-trim collector."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def target_count(n_ocean: int, fraction: float) -> int:
    """Observed pixels k = round((1 - fraction) * n_ocean), clipped to [1, n_ocean].

    Edge: a nonempty ocean always gets >= 1 observed pixel, even for fraction -> 1 or a
    tiny ocean (then the hidden share can be below `fraction` by up to one pixel).
    An empty ocean gives 0.
    """
    if n_ocean <= 0:
        return 0
    return int(min(n_ocean, max(1, round((1.0 - float(fraction)) * n_ocean))))


def collect(
    ocean: np.ndarray,
    k: int,
    rng: np.random.Generator,
    draw: Callable[[np.random.Generator], np.ndarray],
    *,
    n_start: int = 1,
    max_draws: int = 10_000,
) -> np.ndarray:
    """Grow an observed mask from ordered groups of flat pixel indices, then trim to exactly k.

    `draw(rng)` returns one group (a box, a track...) as flat indices in path order; off-ocean
    and already observed pixels are dropped. At least `n_start` groups are drawn, then more
    until k pixels are observed. Trimming: when the starting groups already exceed k, every
    starting group keeps the same number of leading pixels (+-1); otherwise the tail of the
    last group is cut. If `max_draws` groups cannot reach k, the rest is filled with random
    ocean pixels (never happens for sane configs; keeps the fraction contract).
    """
    flat_ocean = ocean.ravel()
    observed = np.zeros(flat_ocean.size, bool)
    groups: list[np.ndarray] = []
    count = draws = 0
    while (len(groups) < n_start or count < k) and draws < max_draws and k > 0:
        draws += 1
        idx = np.asarray(draw(rng), np.int64)
        idx = idx[flat_ocean[idx]]
        idx = idx[np.sort(np.unique(idx, return_index=True)[1])]  # unique, path order kept
        idx = idx[~observed[idx]]
        if idx.size:
            observed[idx] = True
            groups.append(idx)
            count += idx.size
    if count < k:
        free = np.flatnonzero(flat_ocean & ~observed)
        groups.append(rng.choice(free, k - count, replace=False))
        count = k
    if count > k:
        starting = groups[:n_start]
        if len(groups) <= n_start:
            # equal-length heads: order by (rank within group, group) and keep the first k
            rank = np.concatenate([np.arange(g.size) for g in starting])
            gid = np.concatenate([np.full(g.size, i) for i, g in enumerate(starting)])
            allidx = np.concatenate(starting)
            keep = allidx[np.lexsort((gid, rank))[:k]]
            observed[:] = False
            observed[keep] = True
        else:
            observed[groups[-1][groups[-1].size - (count - k):]] = False
    return observed.reshape(ocean.shape)
