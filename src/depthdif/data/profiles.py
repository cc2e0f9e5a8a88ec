"""Argo profiles -> observations of GLORYS-like potential temperature on a patch grid.

Input: the long-form QC'd profiles of `depthdif.data.argo.argo_profiles` (one row per good
level: pressure p in dbar, in-situ temperature t in degC, practical salinity SP or NaN).

1. Depth (TEOS-10): z = gsw.z_from_p(p, lat) (negative below the surface), depth = -z in metres.
2. Potential temperature referenced to 0 dbar, the quantity of GLORYS `thetao`:
   SA = gsw.SA_from_SP(SP, p, lon, lat), θ = gsw.pt0_from_t(SA, t, p).
   SP where a level's PSAL is not good: the profile's own good PSAL interpolated linearly in
   pressure (held constant beyond its shallowest/deepest good PSAL, like np.interp) when the
   profile has any; otherwise the constant `salinity_fallback` (default 35.0). θ depends on SP
   only through the adiabatic lapse rate: SP 34 instead of 36 (40 N, 40 W) changes θ by
   0.0010 degC at t = 10 degC, 320 dbar, by 0.0034 degC at t = 4 degC, 1000 dbar and by
   0.0067 degC at t = 3 degC, 2000 dbar (gsw 3.6), i.e. ~0.0005 / 0.0017 / 0.0034 degC per unit
   of SP error: far below the representativeness error of a profile against a 1/12 degree
   monthly mean (tenths of a degree).
   Every level's SP source is counted (`ProfileLevels.salinity`: measured / profile / constant).
3. Per profile, θ on the configured depth levels L_c: linear in depth between the two good
   levels around L_c (exact at a good level); never extrapolated below the deepest good level
   or above the shallowest good depth d0, except the near-surface rule: L_c < d0 takes θ(d0)
   when d0 - L_c <= `surface_within_m` (default 10 m: floats start at 5-15 dbar, so the
   0.494 m level would rarely be observed otherwise); 0 disables it.
4. Binning on a patch grid (1-D regular cell centres; latitude may descend; longitude may
   cross the dateline): profiles whose time falls in the month 'YYYY-MM' and whose position
   lies in a cell (nearest centre within half a spacing) are averaged per cell and level over
   the profiles that observe that level; cells and levels without one are NaN, with count 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gsw
import numpy as np
import pandas as pd

from depthdif.data.periods import month_number
from depthdif.errors import DataError

#: defaults of the scenario keys surface_within_m and salinity_fallback (workflow/schemas/config.schema.yaml)
SURFACE_WITHIN_M = 10.0
SALINITY_FALLBACK = 35.0
LONG_COLUMNS = ("platform", "cycle", "time", "lat", "lon", "pres", "temp", "psal")


@dataclass(frozen=True)
class ProfileLevels:
    """Profiles on the configured depth levels: one row per profile with at least one observed level."""

    platform: np.ndarray  # (P,) str
    cycle: np.ndarray  # (P,) int64
    time: np.ndarray  # (P,) datetime64[ns], UTC
    lat: np.ndarray  # (P,) degrees north
    lon: np.ndarray  # (P,) degrees east in [-180, 180)
    depth: np.ndarray  # (C,) the levels, metres
    theta: np.ndarray  # (P, C) potential temperature degC, NaN where the level is not observed
    #: levels (of the input rows) by the source of their SP: measured, profile (interpolated), constant
    salinity: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    def subset(self, keep: np.ndarray) -> ProfileLevels:
        """The profiles where `keep` (P,) bool is True (salinity counts stay those of the whole read)."""
        return ProfileLevels(self.platform[keep], self.cycle[keep], self.time[keep], self.lat[keep],
                             self.lon[keep], self.depth, self.theta[keep], self.salinity)


def depth_from_pressure(pres: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Depth in metres, positive down: -gsw.z_from_p(p, lat) (TEOS-10, p in dbar)."""
    return -np.asarray(gsw.z_from_p(np.asarray(pres, np.float64), np.asarray(lat, np.float64)), np.float64)


def potential_temperature(
    temp: np.ndarray, sp: np.ndarray, pres: np.ndarray, lon: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    """θ (degC, reference 0 dbar) = gsw.pt0_from_t(gsw.SA_from_SP(SP, p, lon, lat), t, p)."""
    sa = gsw.SA_from_SP(sp, pres, lon, lat)
    return np.asarray(gsw.pt0_from_t(sa, temp, pres), np.float64)


def _profile_starts(profile: np.ndarray, n_profiles: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row, number of rows) of each profile; rows sorted by profile id 0..n_profiles-1."""
    n = np.bincount(profile, minlength=n_profiles)
    return np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64), n


def fill_salinity(
    profile: np.ndarray, pres: np.ndarray, psal: np.ndarray, fallback: float = SALINITY_FALLBACK
) -> tuple[np.ndarray, dict[str, int]]:
    """SP at every row, and how many rows took each source (measured, profile, constant).

    Rows sorted by (profile id, pressure). A NaN `psal` takes the profile's good PSAL
    interpolated linearly in pressure (the nearest good value beyond its ends); a profile
    without any good PSAL takes `fallback`.
    """
    profile = np.asarray(profile, np.int64)
    pres, psal = np.asarray(pres, np.float64), np.asarray(psal, np.float64)
    n = psal.size
    good = np.isfinite(psal)
    if n == 0:
        return psal.copy(), {"measured": 0, "profile": 0, "constant": 0}
    rows = np.arange(n)
    # last good row at or above each row and first good row at or below it, kept within the profile
    prev = np.maximum.accumulate(np.where(good, rows, -1))
    nxt = np.minimum.accumulate(np.where(good, rows, n)[::-1])[::-1]
    p0, p1 = np.clip(prev, 0, n - 1), np.clip(nxt, 0, n - 1)
    has_prev = (prev >= 0) & (profile[p0] == profile)
    has_next = (nxt < n) & (profile[p1] == profile)
    span = pres[p1] - pres[p0]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(span > 0, (pres - pres[p0]) / span, 0.0)
    between = psal[p0] + w * (psal[p1] - psal[p0])
    nearest = np.where(has_prev, psal[p0], np.where(has_next, psal[p1], fallback))
    sp = np.where(good, psal, np.where(has_prev & has_next, between, nearest))
    from_profile = ~good & (has_prev | has_next)
    counts = {
        "measured": int(good.sum()),
        "profile": int(from_profile.sum()),
        "constant": int((~good & ~from_profile).sum()),
    }
    return sp, counts


def interpolate_levels(
    profile: np.ndarray,
    depth: np.ndarray,
    values: np.ndarray,
    levels: np.ndarray,
    n_profiles: int,
    surface_within_m: float = SURFACE_WITHIN_M,
) -> np.ndarray:
    """(n_profiles, C) values at `levels`: linear in depth inside each profile, NaN outside.

    Rows sorted by (profile id, depth), every row finite. For level L and a profile with k
    rows at depth <= L: between rows k-1 and k linear interpolation; L beyond the deepest row
    NaN (exact at it); L above the shallowest depth d0 takes the shallowest value when
    d0 - L <= surface_within_m (0: never).
    """
    profile = np.asarray(profile, np.int64)
    depth, values = np.asarray(depth, np.float64), np.asarray(values, np.float64)
    out = np.full((n_profiles, len(levels)), np.nan)
    if depth.size == 0:
        return out
    start, n = _profile_starts(profile, n_profiles)
    has_rows = n > 0
    last = depth.size - 1
    first = np.clip(start, 0, last)
    for c, level in enumerate(np.asarray(levels, np.float64)):  # a few levels; profiles are vectorised
        k = np.bincount(profile, weights=(depth <= level).astype(np.float64), minlength=n_profiles).astype(np.int64)
        lo = np.clip(start + k - 1, 0, last)
        hi = np.clip(start + k, 0, last)
        inside = has_rows & (k >= 1) & (k < n)
        with np.errstate(invalid="ignore", divide="ignore"):  # rows outside `inside` may divide by 0
            w = (level - depth[lo]) / (depth[hi] - depth[lo])
            col = np.where(inside, values[lo] + w * (values[hi] - values[lo]), np.nan)
        exact = has_rows & (k >= 1) & (depth[lo] == level)
        col = np.where(exact, values[lo], col)
        surface = has_rows & (k == 0) & (surface_within_m > 0) & (depth[first] - level <= surface_within_m)
        out[:, c] = np.where(surface, values[first], col)
    return out


def profiles_on_levels(
    frame: pd.DataFrame,
    levels: np.ndarray | list[float],
    *,
    surface_within_m: float = SURFACE_WITHIN_M,
    salinity_fallback: float = SALINITY_FALLBACK,
) -> ProfileLevels:
    """θ of every profile of `frame` (argo_profiles long form) on the depth `levels` (steps 1-3).

    A profile is the rows sharing (platform, time, cycle); profiles observing none of the
    levels are left out.
    """
    missing = [c for c in LONG_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"profile frame lacks columns {missing} (use depthdif.data.argo.argo_profiles)")
    levels = np.asarray(levels, np.float64)
    rows = frame.sort_values(["platform", "time", "cycle", "pres"], kind="stable").reset_index(drop=True)
    key = rows[["platform", "time", "cycle"]]
    new = (key != key.shift()).any(axis=1).to_numpy()
    profile = np.cumsum(new) - 1
    n_profiles = int(profile[-1]) + 1 if len(rows) else 0
    pres, lat, lon = (rows[c].to_numpy(np.float64) for c in ("pres", "lat", "lon"))
    sp, counts = fill_salinity(profile, pres, rows["psal"].to_numpy(np.float64), salinity_fallback)
    theta = potential_temperature(rows["temp"].to_numpy(np.float64), sp, pres, lon, lat)
    depth = depth_from_pressure(pres, lat)
    ok = np.isfinite(theta) & np.isfinite(depth)  # gsw returns NaN outside its valid range
    on_levels = interpolate_levels(profile[ok], depth[ok], theta[ok], levels, n_profiles, surface_within_m)
    first = np.flatnonzero(new)
    keep = np.isfinite(on_levels).any(axis=1)
    head = rows.iloc[first[keep]]
    return ProfileLevels(
        platform=head["platform"].to_numpy(str),
        cycle=head["cycle"].to_numpy(np.int64),
        time=head["time"].to_numpy("datetime64[ns]"),
        lat=head["lat"].to_numpy(np.float64),
        lon=head["lon"].to_numpy(np.float64),
        depth=levels,
        theta=on_levels[keep],
        salinity=counts,
    )


def _cell_index(coord: np.ndarray, centres: np.ndarray, axis: str, wrap: bool) -> np.ndarray:
    """Index of the nearest centre within half a spacing, -1 outside the grid.

    `centres` must be regularly spaced (ascending or descending); with `wrap` (longitude)
    offsets are taken modulo 360 so a grid may cross the dateline.
    """
    centres = np.asarray(centres, np.float64)
    if centres.ndim != 1 or centres.size < 2:
        raise DataError(f"patch {axis} needs at least 2 cell centres to bin profiles, got shape {centres.shape}")

    def offset(a: np.ndarray) -> np.ndarray:
        return (a + 180.0) % 360.0 - 180.0 if wrap else a

    step = offset(centres[-1] - centres[0]) / (centres.size - 1)
    regular = centres[0] + step * np.arange(centres.size)
    if step == 0 or np.max(np.abs(offset(centres - regular))) > 0.01 * abs(step):
        raise DataError(
            f"patch {axis} centres {centres[:4].tolist()}... are not regularly spaced; profiles can only be "
            "binned on a regular grid (check the netcdf source's grid)"
        )
    idx = np.rint(offset(np.asarray(coord, np.float64) - centres[0]) / step).astype(np.int64)
    return np.where((idx >= 0) & (idx < centres.size), idx, -1)


def bin_to_grid(
    values: np.ndarray, lat: np.ndarray, lon: np.ndarray, grid_lat: np.ndarray, grid_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(obs (C,H,W) float64, count (C,H,W) int64): per cell and level mean of the finite `values`.

    values (P,C) at positions lat, lon (P,); grid_lat (H,), grid_lon (W,) cell centres.
    obs = Σ values / count over the profiles in the cell that observe the level; NaN where count = 0.
    """
    values = np.asarray(values, np.float64)
    c = values.shape[1]
    h, w = len(grid_lat), len(grid_lon)
    i = _cell_index(lat, grid_lat, "latitude", wrap=False)
    j = _cell_index(lon, grid_lon, "longitude", wrap=True)
    flat = (np.arange(c)[None, :] * h + i[:, None]) * w + j[:, None]
    use = np.isfinite(values) & (i >= 0)[:, None] & (j >= 0)[:, None]
    count = np.bincount(flat[use], minlength=c * h * w)
    total = np.bincount(flat[use], weights=values[use], minlength=c * h * w)
    with np.errstate(invalid="ignore", divide="ignore"):
        obs = np.where(count > 0, total / count, np.nan)
    return obs.reshape(c, h, w), count.reshape(c, h, w)


def in_month(time: np.ndarray, period: str) -> np.ndarray:
    """(P,) bool: `time` (datetime64) falls in the month 'YYYY-MM' (UTC)."""
    month_number(period)  # a ConfigError for anything but 'YYYY-MM'
    start = np.datetime64(period, "M")
    t = np.asarray(time, "datetime64[ns]")
    return (t >= start.astype("datetime64[ns]")) & (t < (start + 1).astype("datetime64[ns]"))


def profile_cells(
    profiles: ProfileLevels, period: str, grid_lat: np.ndarray, grid_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) (P,) int of the cell each profile is binned into by step 4; both -1 for a profile
    outside the grid or not of month `period`."""
    sel = in_month(profiles.time, period)
    i = _cell_index(profiles.lat, grid_lat, "latitude", wrap=False)
    j = _cell_index(profiles.lon, grid_lon, "longitude", wrap=True)
    inside = sel & (i >= 0) & (j >= 0)
    return np.where(inside, i, -1), np.where(inside, j, -1)


def inside_grid(profiles: ProfileLevels, period: str, grid_lat: np.ndarray, grid_lon: np.ndarray) -> np.ndarray:
    """(P,) bool: the profile is of month `period` and lies in a cell of the grid (binned by step 4)."""
    return profile_cells(profiles, period, grid_lat, grid_lon)[0] >= 0


def grid_observations(
    profiles: ProfileLevels, period: str, grid_lat: np.ndarray, grid_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(obs (C,H,W) degC, count (C,H,W)) of the profiles of month `period` on a patch grid (step 4)."""
    sel = in_month(profiles.time, period)
    return bin_to_grid(profiles.theta[sel], profiles.lat[sel], profiles.lon[sel], grid_lat, grid_lon)
