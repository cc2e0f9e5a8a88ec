"""Synthetic GLORYS-like monthly ocean (offline default source), deterministic by (seed, period).

Temperature at depth z (m, positive down) on a regular grid over ``data.region``::

    T = T_deep(z') + (T_up - T_deep(z')) * exp(-max(z' - 30 m, 0) / H(lat))  background
        + A_s(lat) * season * [1 above MLD, exp(-(z - MLD)/40 m) below]       seasonal cycle
        + a_e(lat) * E * exp(-z / 200 m)                                     surface eddies
        + 0.5 * S * exp(-((z - 300 m) / 250 m)^2)                            subsurface anomaly

with z' = z - 30 m * E (eddies heave the thermocline), T_up = meridional SST profile +
meandering fronts (decaying over 600 m), E and S independent unit-variance random fields with an isotropic
k^-3 energy spectrum beyond the ``eddy_scale_km`` knee whose Fourier phases drift
westward and decorrelate slowly month by month (so consecutive months are correlated).
E, S and the front meander are smoothed by a Gaussian of std ``SMOOTH_KM`` (52 km), i.e. their
spectrum falls off steeply below ~300 km wavelength (on the default 0.25° grid it rolls off
over wavelengths of 4-8 grid cells as fast as real L4 SST does on its own grid), and every
max/clip above is a smooth (softplus) one: a kink along a contour of
a random field would put power-law variance at the grid scale. The result has no white-noise-like
part: on the default 0.25° grid, 32 px patches of the surface have a top-octave variance share and
a fitted Matérn-3/2 OI nugget close to those of real L4 SST (NOAA CoralTemp, 0.05°; see
``bench/synthetic_realism.py`` and docs/benchmarks.md).
A static random bathymetry (coasts, shelves, islands) masks land as NaN; land grows with
depth. The EO field is the surface smoothed by ``eo_smooth_px`` plus white noise.
``tNNNN`` period labels are read as month NNNN counted from 1970-01.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr
from scipy import fft

from depthdif.data import cf, regrid, subset
from depthdif.data import periods as _periods
from depthdif.errors import ConfigError
from depthdif.io import seed_for

#: The 50 depth levels (m) of GLORYS12 / GLO12 (cmems_glo12_thetao_column_0N0E.nc).
GLORYS_DEPTHS = np.array([
    0.494025, 1.541375, 2.645669, 3.819495, 5.078224, 6.440614, 7.92956, 9.572997,
    11.405, 13.46714, 15.81007, 18.49556, 21.59882, 25.21141, 29.44473, 34.43415,
    40.34405, 47.37369, 55.76429, 65.80727, 77.85385, 92.32607, 109.7293, 130.666,
    155.8507, 186.1256, 222.4752, 266.0403, 318.1274, 380.213, 453.9377, 541.0889,
    643.5668, 763.3331, 902.3393, 1062.44, 1245.291, 1452.251, 1684.284, 1941.893,
    2225.078, 2533.336, 2865.703, 3220.82, 3597.032, 3992.484, 4405.224, 4833.291,
    5274.784, 5727.917,
])
KM_PER_DEG = 111.32
LAND_FRACTION = 0.10  # surface land share; shelves add a few % per 100 m below
# Bathymetry (m) as a function of the ocean's rank distance to land u in [0, 1].
_BATHY_U = np.array([0.0, 0.015, 0.03, 0.045, 0.15, 0.5, 1.0])
_BATHY_Z = np.array([0.0, 60.0, 180.0, 350.0, 1500.0, 4000.0, 6000.0])
SMOOTH_KM = 52.0  # Gaussian smoothing (km, std) of the eddy, subsurface and meander fields
_SOFT_M = 10.0  # width (m) of the smooth max in the heave / mixed-layer depth terms
_FRONTS = ((34.0, 1.5), (46.0, 2.5), (-40.0, 3.0), (-52.0, 2.5))  # (latitude, step degC)


def glorys_levels(data_cfg: dict[str, Any]) -> np.ndarray:
    """``data.depth_levels`` snapped to GLORYS levels (nearest value, or GLORYS index)."""
    levels = np.asarray(data_cfg["depth_levels"], dtype=np.float64)
    if data_cfg["depth_selection"] == "index":
        if np.any(levels != np.round(levels)) or levels.min() < 0 or levels.max() >= GLORYS_DEPTHS.size:
            raise ConfigError(
                f"config key 'data.depth_levels' {levels.tolist()}: with depth_selection 'index' "
                f"the synthetic source needs integer indices 0..{GLORYS_DEPTHS.size - 1}."
            )
        idx = levels.astype(np.int64)
    else:
        idx = np.abs(GLORYS_DEPTHS[None, :] - levels[:, None]).argmin(axis=1)
    if len(set(idx.tolist())) != idx.size:
        raise ConfigError(
            f"config key 'data.depth_levels' {levels.tolist()}: several levels snap to the same "
            f"GLORYS level ({GLORYS_DEPTHS[idx].round(2).tolist()}); pick distinct levels."
        )
    return GLORYS_DEPTHS[np.sort(idx)]


def synthetic_grid(data_cfg: dict[str, Any], shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitude, longitude over ``data.region`` (``shape`` overrides the resolution)."""
    region = data_cfg["region"]
    west, width = subset.lon_window(region)
    height = float(region["lat_max"]) - float(region["lat_min"])
    if shape is None:
        res = float(data_cfg["synthetic"]["resolution"])
        shape = (max(1, round(height / res)), max(1, round(width / res)))
    ny, nx = shape
    lat = region["lat_min"] + (np.arange(ny) + 0.5) * height / ny
    lon = west + (np.arange(nx) + 0.5) * width / nx
    return lat, lon


def _period_month(period: str) -> int:
    """Months since 1970-01 (``tNNNN`` counts months from 1970-01 too)."""
    if _periods.is_index_period(period):
        return _periods.time_index(period)
    return _periods.month_number(period)


def spectral_field(
    shape: tuple[int, int],
    spacing_km: tuple[float, float],
    scale_km: float,
    seed: int,
    month: float = 0.0,
    drift_km: float = 0.0,
    jitter: float = 0.0,
    smooth_km: float = 0.0,
) -> np.ndarray:
    """Unit-variance random field; 2-D spectrum P(k) = (1 + (pi scale k)^2)^-2 exp(-(2 pi smooth k)^2)
    (E(k) ~ k^-3 beyond the knee; with ``smooth_km`` > 0 the field is that k^-3 field convolved
    with a Gaussian of std ``smooth_km``, so its spectrum rolls off steeply near the grid scale).

    Mode k's phase advances by ``2 pi kx drift_km + jitter xi_k`` per month (westward drift
    for drift_km > 0 plus random decorrelation), so the field evolves smoothly in `month`.
    """
    ny, nx = shape
    rng = np.random.default_rng(seed)
    ky = fft.fftfreq(ny, d=spacing_km[0]).astype(np.float32)[:, None]
    kx = fft.fftfreq(nx, d=spacing_km[1]).astype(np.float32)[None, :]
    k2 = ky**2 + kx**2
    amp = 1.0 / (1.0 + np.float32(np.pi * scale_km) ** 2 * k2)
    if smooth_km > 0:
        amp *= np.exp(-np.float32(2.0 * (np.pi * smooth_km) ** 2) * k2)
    amp[0, 0] = 0.0
    norm = float(np.sqrt(np.sum(amp.astype(np.float64) ** 2))) / (ny * nx)
    if norm == 0:  # 1x1 grid: no fluctuation
        return np.zeros(shape, dtype=np.float32)
    real = rng.standard_normal((ny, nx), dtype=np.float32)
    imag = rng.standard_normal((ny, nx), dtype=np.float32)
    if drift_km or jitter:
        xi = rng.standard_normal((ny, nx), dtype=np.float32)
        # Phase per mode, reduced mod 2 pi in float64 so float32 cos/sin stay accurate.
        rate = (2 * np.pi * drift_km) * kx.astype(np.float64) + jitter * xi
        phase = np.remainder(month * rate, 2 * np.pi).astype(np.float32)
        cos, sin = np.cos(phase), np.sin(phase)
        real, imag = real * cos - imag * sin, real * sin + imag * cos
    coef = np.empty((ny, nx), dtype=np.complex64)
    coef.real, coef.imag = real * amp, imag * amp
    field = fft.ifft2(coef, workers=1, overwrite_x=True).real
    return (field / np.float32(norm)).astype(np.float32)


def _bathymetry(shape: tuple[int, int], spacing: tuple[float, float], seed: int, land: bool) -> np.ndarray:
    """Static sea-floor depth (m; 0 on land): rank transform of a coast-scale + island-scale field."""
    if not land:
        return np.full(shape, np.inf, dtype=np.float32)
    field = spectral_field(shape, spacing, 400.0, seed_for(seed, "bathy-large"))
    field += 0.2 * spectral_field(shape, spacing, 30.0, seed_for(seed, "bathy-small"))
    rank = np.empty(field.size, dtype=np.float64)
    rank[np.argsort(field, axis=None, kind="stable")] = (np.arange(field.size) + 0.5) / field.size
    rank = rank.reshape(shape)
    ocean_share = 1.0 - LAND_FRACTION
    distance = np.clip((ocean_share - rank) / ocean_share, 0.0, 1.0)  # 0 at the coast
    depth = np.interp(distance, _BATHY_U, _BATHY_Z)
    depth[rank >= ocean_share] = 0.0
    return depth.astype(np.float32)


def _smax0(x: np.ndarray, width: float) -> np.ndarray:
    """Smooth max(x, 0): width * log(1 + exp(x / width)) (softplus; exact to ~width * e^-|x|/width).

    A hard max/clip of a random field has a kink along a contour, which puts a power-law tail
    (grid-scale variance, a fitted OI nugget) into an otherwise smooth field.
    """
    return (np.float32(width) * np.logaddexp(np.float32(0.0), x / np.float32(width))).astype(np.float32, copy=False)


def _sclip(x: np.ndarray, lo: float, hi: float, width: float) -> np.ndarray:
    """Smooth clip of x to [lo, hi] (two softplus corners of `width`)."""
    return np.float32(lo) + _smax0(x - np.float32(lo), width) - _smax0(x - np.float32(hi), width)


def _month_state(lat: np.ndarray, eddy: np.ndarray, sub: np.ndarray, meander: np.ndarray,
                 season: float) -> dict[str, np.ndarray]:
    """Depth-independent 2-D float32 fields of one month (see module doc)."""
    lat = lat.astype(np.float32)
    phi = np.radians(lat)
    hemi = np.sign(lat) + (lat == 0)
    # Each front concentrates the local gradient into a meandering step: a tanh minus a
    # +-8 degree ramp of the same size, so it adds nothing far from the front.
    fronts = np.zeros_like(lat)
    for f, dt in _FRONTS:
        step = np.tanh((lat - f - meander) / 0.8) - _sclip((lat - f) / 8.0, -1.0, 1.0, 0.1)
        fronts -= np.float32(np.sign(f) * dt / 2) * step
    winter = 0.5 * (1.0 - season * hemi)
    mld = (15.0 + 150.0 * winter * _sclip(np.abs(lat) / 45.0, 0.15, 1.2, 0.05)) * _sclip(1 + 0.25 * eddy, 0.5, 2.0, 0.1)
    return {
        "t_surface": -1.0 + 29.5 * np.cos(phi) ** 1.6,
        "fronts": fronts,
        "mld": mld,
        "thermocline": 150.0 + 400.0 * np.exp(-(((np.abs(lat) - 30.0) / 15.0) ** 2)),
        "seasonal": 5.5 * np.sin(phi) * np.float32(season),
        "eddy": eddy,
        "eddy_surface": (0.35 + 0.5 * np.exp(-(((np.abs(lat) - 38.0) / 10.0) ** 2))) * eddy,
        "sub": sub,
    }


def _temperature(z: float, m: dict[str, np.ndarray]) -> np.ndarray:
    """Temperature (degC) at depth `z` from a month's fields (see module doc)."""
    t_up = m["t_surface"] + m["fronts"] * np.float32(np.exp(-z / 600.0))
    zz = _smax0(z - 30.0 * m["eddy"], _SOFT_M)  # heave: warm eddies push isotherms down
    t_deep = 1.0 + 3.5 * np.exp(-zz / 1000.0)
    # The permanent thermocline sits below a fixed 30 m layer; the seasonal MLD only shapes
    # how deep the seasonal anomaly reaches.
    temp = t_deep + (t_up - t_deep) * np.exp(-_smax0(zz - 30.0, _SOFT_M) / m["thermocline"])
    temp += m["seasonal"] * np.exp(-_smax0(z - m["mld"], _SOFT_M) / 40.0)
    temp += m["eddy_surface"] * np.float32(np.exp(-z / 200.0))
    temp += m["sub"] * np.float32(0.5 * np.exp(-(((z - 300.0) / 250.0) ** 2)))
    return temp.astype(np.float32, copy=False)


def synthetic_period_dataset(
    period: str, data_cfg: dict[str, Any], shape: tuple[int, int] | None = None, eo: bool = True
) -> xr.Dataset:
    """``thetao(1, C, H, W)`` degC (+ ``analysed_sst(1, H, W)`` when `eo`) for one period.

    ``shape=(ny, nx)`` overrides the grid size over ``data.region`` (e.g. a global 1/12°
    grid for benchmarks); the depth levels are ``data.depth_levels`` snapped to GLORYS.
    """
    syn = data_cfg["synthetic"]
    seed = int(syn["seed"])
    lat, lon = synthetic_grid(data_cfg, shape)
    ny, nx = lat.size, lon.size
    dlat = (lat[1] - lat[0]) if ny > 1 else 1.0
    dlon = (lon[1] - lon[0]) if nx > 1 else 1.0
    spacing = (dlat * KM_PER_DEG, dlon * KM_PER_DEG * max(np.cos(np.radians(lat.mean())), 0.1))
    month = _period_month(period)
    scale = float(syn["eddy_scale_km"])
    # Drift (km/month, westward) and jitter (rad/month) give a lag-1 correlation ~0.85.
    smooth = SMOOTH_KM  # the land (bathymetry) field is not smoothed: coasts and islands stay as they were
    eddy = spectral_field((ny, nx), spacing, scale, seed_for(seed, "eddy"), month, 25.0, 0.25, smooth)
    sub = spectral_field((ny, nx), spacing, 1.5 * scale, seed_for(seed, "subsurface"), month, 15.0, 0.2, smooth)
    meander = spectral_field((ny, nx), spacing, 3.0 * scale, seed_for(seed, "meander"), month, 30.0, 0.2, smooth)
    bathy = _bathymetry((ny, nx), spacing, seed, bool(syn["land"]))
    # Seasonal phase: +1 in late August (NH summer), mid-month.
    season = float(np.cos(2 * np.pi * ((month % 12 + 0.5) / 12.0 - 0.65)))
    state = _month_state(np.broadcast_to(lat[:, None], (ny, nx)), eddy, sub, meander, season)

    depths = glorys_levels(data_cfg)
    thetao = np.empty((1, depths.size, ny, nx), dtype=np.float32)
    for c, z in enumerate(depths):
        level = _temperature(float(z), state)
        level[bathy <= z] = np.nan
        thetao[0, c] = level
    time = np.array([np.datetime64("1970-01", "M") + month], dtype="datetime64[ns]")
    ds = cf.make_dataset(
        thetao, time=time, depth=depths, latitude=lat, longitude=lon,
        attrs={"source_variable": "synthetic"}, source=f"depthdif synthetic ocean (seed {seed})",
    )
    ds.attrs.update(period=period, synthetic_seed=seed)
    if eo:
        surface = thetao[0, 0] if depths[0] == GLORYS_DEPTHS[0] else _temperature(
            float(GLORYS_DEPTHS[0]), state)
        sst = regrid.smooth_nan(np.where(bathy > GLORYS_DEPTHS[0], surface, np.nan), float(syn["eo_smooth_px"]))
        rng = np.random.default_rng(seed_for(seed, period, "eo"))
        sst = sst + rng.normal(0.0, float(syn["eo_noise_std"]), sst.shape).astype(np.float32)
        ds["analysed_sst"] = (("time", "latitude", "longitude"), sst[None].astype(np.float32), {
            "units": "degC", "standard_name": "sea_surface_foundation_temperature",
            "long_name": "synthetic analysed SST (smoothed surface + noise)",
        })
    return ds


def write_synthetic_period(
    period: str,
    data_cfg: dict[str, Any],
    thetao_path: str | os.PathLike[str],
    eo_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the raw thetao file (and the EO file when `eo_path`) of one synthetic period."""
    ds = synthetic_period_dataset(period, data_cfg, eo=eo_path is not None)
    cf.write_cf(ds[["thetao"]], thetao_path)
    if eo_path is not None:
        cf.write_cf(ds[["analysed_sst"]].drop_vars("depth", errors="ignore"), eo_path)
