"""`argo` mode: shapes of real Argo float tracks, projected into the patch.

A segment = consecutive QC'd positions of one float from a random profile on, as
displacements in km (equirectangular steps: dx = R dlon cos(mean lat), dy = R dlat).
It is anchored at a random ocean pixel, converted to pixels with the patch's own lat/lon
spacing, and cut where it first leaves the patch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import ConfigError
from depthdif.masks.common import collect, target_count

EARTH_RADIUS_KM = 6371.0


def track_km(tracks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(platform end index per row (exclusive), x_km, y_km): float positions in km from each float's first fix.

    Rows are sorted by (platform, time); x is east, y north.
    """
    missing = {"platform", "time", "lat", "lon"} - set(tracks.columns)
    if missing:
        raise ValueError(f"argo_tracks lacks columns {sorted(missing)} (use depthdif.data.argo.read_argo_tracks)")
    df = tracks.sort_values(["platform", "time"], kind="stable")
    lat = np.deg2rad(df["lat"].to_numpy(np.float64))
    lon = np.deg2rad(df["lon"].to_numpy(np.float64))
    platform = df["platform"].astype(str).to_numpy()
    new = np.r_[True, platform[1:] != platform[:-1]]
    dlon = np.angle(np.exp(1j * np.diff(lon, prepend=lon[:1])))  # wrapped to (-pi, pi]
    dlat = np.diff(lat, prepend=lat[:1])
    mean_lat = lat - dlat / 2
    dx = np.where(new, 0.0, EARTH_RADIUS_KM * dlon * np.cos(mean_lat))
    dy = np.where(new, 0.0, EARTH_RADIUS_KM * dlat)
    group = np.cumsum(new) - 1
    x = np.cumsum(dx) - np.cumsum(dx)[new][group]
    y = np.cumsum(dy) - np.cumsum(dy)[new][group]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(df)][group]
    return ends, x, y


def pixel_km(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """Signed (row, col) pixel size in km north/east per +1 index, from the patch coordinates."""
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if lat.size < 2 or lon.size < 2:
        raise ValueError("argo masks need lat (H,) and lon (W,) with at least 2 values each")
    dlat = float(np.median(np.diff(lat)))
    dlon = float(np.median((np.diff(lon) + 180.0) % 360.0 - 180.0))
    km_per_deg = EARTH_RADIUS_KM * np.pi / 180.0
    return dlat * km_per_deg, dlon * km_per_deg * float(np.cos(np.deg2rad(lat.mean())))


def argo_mask(
    ocean: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    options: dict[str, Any],
    *,
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    argo_tracks: pd.DataFrame | None,
) -> np.ndarray:
    """Real float segments added until `target_count`; the last segment's tail is trimmed."""
    if argo_tracks is None or len(argo_tracks) == 0:
        raise ConfigError(
            f"mode argo needs Argo tracks but none were given (argo_paths={options.get('argo_paths')!r}); "
            "set the scenario's argo_paths to GDAC *_prof.nc files with good positions"
        )
    if lat is None or lon is None:
        raise ValueError("mode argo needs the patch lat (H,) and lon (W,) to convert km to pixels")
    ends, x_km, y_km = track_km(argo_tracks)
    row_km, col_km = pixel_km(lat, lon)
    h, w = ocean.shape
    ocean_idx = np.flatnonzero(ocean)

    def segment(g: np.random.Generator) -> np.ndarray:
        i = int(g.integers(len(x_km)))
        r0, c0 = np.unravel_index(g.choice(ocean_idx), ocean.shape)
        rows = np.rint(r0 + (y_km[i : ends[i]] - y_km[i]) / row_km).astype(np.int64)
        cols = np.rint(c0 + (x_km[i : ends[i]] - x_km[i]) / col_km).astype(np.int64)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        end = inside.size if inside.all() else int(np.argmin(inside))
        return rows[:end] * w + cols[:end]

    k = target_count(ocean_idx.size, fraction)
    return collect(ocean, k, rng, segment, max_draws=100 + 20 * k)
