"""Patch extraction of one period: EO condition, optional coarsening, tiling, nodata filter."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from depthdif.data import regrid
from depthdif.errors import DataError, NoPatchesError
from depthdif.io import atomic_output, seed_for

#: the schema's minimum patches.size: no smaller patch to suggest below it
MIN_PATCH_SIZE = 8
_BLOCK_BYTES = 4 << 20  # tiles are copied and written this many bytes at a time


def coarsen_nan(values: np.ndarray, factor: int) -> np.ndarray:
    """Block mean over the last two axes using finite values only.

    A coarse cell is NaN when more than half of its factor x factor fine cells are NaN;
    trailing rows/columns that do not fill a block are dropped.
    """
    if factor == 1:
        return values
    *lead, h, w = values.shape
    ny, nx = h // factor, w // factor
    if ny == 0 or nx == 0:
        raise DataError(f"config key 'patches.coarsen' ({factor}) exceeds the grid size {h}x{w}.")
    blocks = values[..., : ny * factor, : nx * factor].reshape(*lead, ny, factor, nx, factor)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(-3, -1))
    total = np.where(valid, blocks, 0.0).sum(axis=(-3, -1), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean[2 * count < factor * factor] = np.nan
    return mean.astype(np.float32)


def coarsen_axis(coord: np.ndarray, factor: int) -> np.ndarray:
    """Mean of consecutive groups of `factor` coordinate values."""
    n = coord.size // factor
    return np.asarray(coord[: n * factor], dtype=np.float64).reshape(n, factor).mean(axis=1)


def surface_eo(surface: np.ndarray, eo_cfg: dict[str, Any], period: str) -> np.ndarray:
    """EO from the shallowest level: Gaussian smoothing + N(0, noise_std), NaN on land."""
    smooth = regrid.smooth_nan(surface, float(eo_cfg["smooth_px"]))
    rng = np.random.default_rng(seed_for(eo_cfg["seed"], period, "eo_surface"))
    noisy = smooth + rng.normal(0.0, float(eo_cfg["noise_std"]), surface.shape).astype(np.float32)
    noisy[~np.isfinite(surface)] = np.nan
    return noisy.astype(np.float32)


def _read_period(thetao_path: str | os.PathLike[str]) -> xr.Dataset:
    with xr.open_dataset(thetao_path) as ds:
        if "thetao" not in ds:
            raise DataError(f"{thetao_path}: no variable 'thetao'; re-run the retrieval step.")
        if ds.sizes.get("time", 1) != 1:
            raise DataError(f"{thetao_path}: expected one time step, found {ds.sizes['time']}.")
        return ds.load()


def _read_eo(eo_path: str | os.PathLike[str] | None, thetao: xr.Dataset) -> np.ndarray:
    if eo_path is None:
        raise DataError("data.eo is 'ostia' but no EO file was given to extract_period.")
    with xr.open_dataset(eo_path) as ds:
        if "analysed_sst" not in ds:
            raise DataError(f"{eo_path}: no variable 'analysed_sst'; re-run the retrieval step.")
        eo = ds["analysed_sst"].load()
    same = (eo.sizes.get("latitude") == thetao.sizes["latitude"]
            and eo.sizes.get("longitude") == thetao.sizes["longitude"]
            and np.allclose(eo["latitude"], thetao["latitude"], atol=1e-4)
            and np.allclose(eo["longitude"], thetao["longitude"], atol=1e-4))
    if not same:
        raise DataError(f"{eo_path}: analysed_sst is not on the thetao grid; re-run the retrieval step.")
    return np.asarray(eo.values, dtype=np.float32).reshape(thetao.sizes["latitude"], thetao.sizes["longitude"])


def tile_nodata(y: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left rows, columns and NaN share over C x size x size of every tile (grid of tiles)."""
    channels, h, w = y.shape
    y0 = np.arange(0, h - size + 1, stride, dtype=np.int64)
    x0 = np.arange(0, w - size + 1, stride, dtype=np.int64)
    if y0.size == 0 or x0.size == 0:
        return y0, x0, np.empty((y0.size, x0.size))
    nan_per_pixel = (~np.isfinite(y)).sum(axis=0, dtype=np.int32)
    windows = sliding_window_view(nan_per_pixel, (size, size))[::stride, ::stride]
    fraction = windows.sum(axis=(2, 3)) / float(channels * size * size)
    return y0, x0, fraction


def _tiles(grid: np.ndarray, y0: np.ndarray, x0: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """grid[:, a:a+size, b:b+size] for consecutive (a, b), as (k, C, size, size) float32 blocks of ~4 MiB."""
    windows = sliding_window_view(grid, (size, size), axis=(1, 2)).transpose(1, 2, 0, 3, 4)  # (H', W', C, s, s)
    step = max(1, _BLOCK_BYTES // (4 * grid.shape[0] * size * size))
    for start in range(0, y0.size, step):
        yield np.ascontiguousarray(windows[y0[start : start + step], x0[start : start + step]], dtype=np.float32)


def _write_member(zf: zipfile.ZipFile, key: str, shape: tuple[int, ...], parts: Iterator[np.ndarray]) -> None:
    """Write ``{key}.npy`` (float32, C order, `shape`) into `zf` from consecutive blocks of rows."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": shape}
    with zf.open(f"{key}.npy", "w", force_zip64=True) as fid:
        np.lib.format.write_array_header_1_0(fid, header)
        for part in parts:
            fid.write(part.data.cast("B"))  # the buffer itself, as bytes: no copy


@dataclass(frozen=True)
class Grid:
    """One period's field on the patch grid (after `patches.coarsen`), what patches are cut from.

    y (C, H, W) float32 degC, NaN where invalid; eo (H, W) float32 degC or None (data.eo none);
    lat (H,), lon (W,) float64 ascending; depth (C,) float32 m; time: seconds since 1970-01-01.
    """

    y: np.ndarray
    eo: np.ndarray | None
    lat: np.ndarray
    lon: np.ndarray
    depth: np.ndarray
    time: int


def read_grid(
    thetao_path: str | os.PathLike[str],
    eo_path: str | os.PathLike[str] | None,
    period: str,
    data_cfg: dict[str, Any],
    patches_cfg: dict[str, Any],
) -> Grid:
    """A period's raw file as the patch grid: the EO condition per `data.eo` (the OSTIA file, or the
    shallowest level smoothed + noised), then NaN-aware block means by `patches.coarsen`."""
    ds = _read_period(thetao_path)
    y = np.asarray(ds["thetao"].values[0], dtype=np.float32)  # (C, H, W)
    lat = ds["latitude"].values.astype(np.float64)
    lon = ds["longitude"].values.astype(np.float64)
    mode = data_cfg["eo"]
    eo: np.ndarray | None = None
    if mode == "ostia":
        eo = _read_eo(eo_path, ds)
    elif mode == "surface":
        eo = surface_eo(y[0], data_cfg["eo_surface"], period)

    factor = int(patches_cfg["coarsen"])
    if factor > 1:
        y = coarsen_nan(y, factor)
        eo = None if eo is None else coarsen_nan(eo, factor)
        lat, lon = coarsen_axis(lat, factor), coarsen_axis(lon, factor)
    time = int(ds["time"].values[0].astype("datetime64[s]").astype(np.int64))
    return Grid(y, eo, lat, lon, ds["depth"].values.astype(np.float32), time)


def extract_period(
    thetao_path: str | os.PathLike[str],
    eo_path: str | os.PathLike[str] | None,
    period: str,
    data_cfg: dict[str, Any],
    patches_cfg: dict[str, Any],
    out_npz: str | os.PathLike[str],
    source_file: str = "",
) -> dict[str, Any]:
    """Tile one period into ``results/patches/{period}.npz`` (see docs/architecture.md).

    Keeps tiles whose NaN share over C x H x W is <= ``patches.max_nodata_fraction``.
    Returns ``{"period", "examined", "kept", "best_nodata_fraction", "grid"}``.
    """
    grid = read_grid(thetao_path, eo_path, period, data_cfg, patches_cfg)
    y, eo, lat, lon = grid.y, grid.eo, grid.lat, grid.lon
    factor = int(patches_cfg["coarsen"])

    size, stride = int(patches_cfg["size"]), int(patches_cfg["stride"])
    limit = float(patches_cfg["max_nodata_fraction"])
    y0s, x0s, fraction = tile_nodata(y, size, stride)
    examined = int(fraction.size)
    best = float(fraction.min()) if examined else float("nan")
    iy, ix = np.nonzero(fraction <= limit + 1e-9)
    if iy.size == 0:
        grid = f"{y.shape[1]}x{y.shape[2]} px" + (f" after coarsen {factor}" if factor > 1 else "")
        raise NoPatchesError(
            f"period {period!r} ({thetao_path}): no patch passed the nodata filter. Examined "
            f"{examined} tiles of {size}x{size} px (stride {stride}) on the {grid} grid; the best "
            f"nodata fraction was {best:.3f} > patches.max_nodata_fraction = {limit}. Raise "
            "patches.max_nodata_fraction, "
            + ("use a smaller patches.size, " if size > MIN_PATCH_SIZE else "")
            + "or choose a data.region with more ocean."
        )
    y0, x0 = y0s[iy], x0s[ix]
    small: dict[str, np.ndarray] = {
        "lat": np.stack([lat[a : a + size] for a in y0]).astype(np.float32),
        "lon": np.stack([lon[a : a + size] for a in x0]).astype(np.float32),
        "y0": y0.astype(np.int32),
        "x0": x0.astype(np.int32),
        "time": np.full(y0.size, grid.time, dtype=np.int64),
        "patch_id": np.array([f"{period}_y{a:05d}_x{b:05d}" for a, b in zip(y0, x0)], dtype="<U64"),
        "nodata_fraction": fraction[iy, ix].astype(np.float32),
        "depth": grid.depth,
        "period": np.array(period, dtype="<U64"),
        "source_file": np.array(str(source_file), dtype="<U1024"),
    }
    # same members, order and bytes as np.savez(handle, y=..., **small, eo=...), but y/eo are
    # streamed block by block from the grid instead of first copied into (N, C, s, s)
    with (atomic_output(out_npz) as tmp, open(tmp, "wb") as handle,
          zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf):
        _write_member(zf, "y", (y0.size, y.shape[0], size, size), _tiles(y, y0, x0, size))
        for key, value in small.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, value, allow_pickle=False)
        if eo is not None:
            _write_member(zf, "eo", (y0.size, 1, size, size), _tiles(eo[None], y0, x0, size))
    return {"period": period, "examined": examined, "kept": int(y0.size),
            "best_nodata_fraction": best, "grid": [int(y.shape[1]), int(y.shape[2])]}
