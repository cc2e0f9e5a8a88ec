"""`rectangles` mode: observed pixels come in axis-aligned boxes (e.g. ship surveys)."""

from __future__ import annotations

from typing import Any

import numpy as np

from depthdif.errors import ConfigError
from depthdif.masks.common import collect, target_count


def rectangles_mask(
    ocean: np.ndarray, fraction: float, rng: np.random.Generator, options: dict[str, Any]
) -> np.ndarray:
    """Union of random boxes with sides in [min_side, max_side] (clipped to the patch).

    Boxes are placed uniformly inside the patch and added until the observed count reaches
    `target_count`; the last box is cut in raster order to hit the count exactly.
    """
    lo, hi = int(options["min_side"]), int(options["max_side"])
    if not 1 <= lo <= hi:
        raise ConfigError(f"scenario options min_side={lo}, max_side={hi}: need 1 <= min_side <= max_side")
    h, w = ocean.shape

    def box(rng: np.random.Generator) -> np.ndarray:
        bh, bw = (min(int(s), n) for s, n in zip(rng.integers(lo, hi + 1, 2), (h, w)))
        r, c = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        rows, cols = np.mgrid[r : r + bh, c : c + bw]
        return (rows * w + cols).ravel()

    k = target_count(int(ocean.sum()), fraction)
    return collect(ocean, k, rng, box, max_draws=100 + 50 * k)
