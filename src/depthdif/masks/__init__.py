"""Observation masks (True = observed) for the occlusion scenarios.

Modes: `pixel` (iid), `rectangles` (boxes), `tracks` (synthetic drifter tracks), `argo`
(real Argo float track shapes). Every mode observes exactly `target_count(|ocean|, fraction)`
ocean pixels (>= 1 when the ocean is nonempty) and is deterministic in (mode, seed, patch_id).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import ConfigError
from depthdif.io import seed_for
from depthdif.masks.argo import argo_mask
from depthdif.masks.common import target_count
from depthdif.masks.pixel import pixel_mask
from depthdif.masks.rectangles import rectangles_mask
from depthdif.masks.tracks import tracks_mask

MODES = ("pixel", "rectangles", "tracks", "argo")
__all__ = ["MODES", "make_mask", "target_count"]


def make_mask(
    mode: str,
    ocean: np.ndarray,
    fraction: float,
    seed: int,
    patch_id: str,
    options: dict[str, Any],
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    time: Any = None,
    argo_tracks: pd.DataFrame | None = None,
) -> np.ndarray:
    """Observed positions (H,W) bool, subset of `ocean`, hidden share of ocean ~ `fraction`.

    `options` is the scenario config (min_side, max_side, n_tracks, sample_every, ...).
    `lat` (H,), `lon` (W,) and `argo_tracks` (read_argo_tracks frame) are needed by mode
    argo only; `time` is accepted for the documented signature and unused.
    Random draws come from default_rng(seed_for("mask", mode, seed, patch_id)).
    """
    ocean = np.asarray(ocean, bool)
    if ocean.ndim != 2:
        raise ValueError(f"ocean must be (H,W), got shape {ocean.shape}")
    if mode not in MODES:
        raise ConfigError(f"scenario mode {mode!r} is unknown; use one of {list(MODES)}")
    if not 0.0 <= float(fraction) <= 1.0:
        raise ConfigError(f"scenario fraction {fraction!r} must be in [0, 1] (share of ocean pixels hidden)")
    if not ocean.any():
        return np.zeros(ocean.shape, bool)
    rng = np.random.default_rng(seed_for("mask", mode, seed, patch_id))
    if mode == "argo":
        return argo_mask(ocean, fraction, rng, options, lat=lat, lon=lon, argo_tracks=argo_tracks)
    return {"pixel": pixel_mask, "rectangles": rectangles_mask, "tracks": tracks_mask}[mode](
        ocean, fraction, rng, options
    )
