"""`pixel` mode: iid observed ocean pixels, exact count."""

from __future__ import annotations

from typing import Any

import numpy as np

from depthdif.masks.common import target_count


def pixel_mask(ocean: np.ndarray, fraction: float, rng: np.random.Generator, options: dict[str, Any]) -> np.ndarray:
    """Exactly `target_count` ocean pixels drawn uniformly without replacement."""
    idx = np.flatnonzero(ocean)
    observed = np.zeros(ocean.size, bool)
    observed[rng.choice(idx, target_count(idx.size, fraction), replace=False)] = True
    return observed.reshape(ocean.shape)
