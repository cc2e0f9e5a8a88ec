"""Patch extraction: exact nodata counts on a constructed field, EO modes, coarsening."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from data_helpers import sections, write_thetao
from depthdif.data import patches
from depthdif.errors import NoPatchesError


def _field() -> np.ndarray:
    """(2, 64, 96) field; NaN shares of its six 32x32 tiles (stride 32), row by row:
    0, 205/2048 (~0.10), 0.375 | 409/2048 (~0.1997, just under 0.2), 1.0, 0.25."""
    y = (np.arange(2 * 64 * 96, dtype=np.float32).reshape(2, 64, 96) % 97) / 10 + 5
    for ch, r, c, n in ((0, 0, 1, 205), (0, 1, 0, 409), (1, 1, 2, 512)):
        rows, cols = np.unravel_index(np.arange(n), (32, 32))
        y[ch, 32 * r + rows, 32 * c + cols] = np.nan
    y[:, 32:, 32:64] = np.nan  # tile (1, 1): all land
    y[0, :24, 64:96] = np.nan  # tile (0, 2): 768 / 2048
    return y


@pytest.mark.parametrize("block_bytes", [patches._BLOCK_BYTES, 1])
def test_nodata_filter_counts(tmp_path, monkeypatch, block_bytes) -> None:
    # block_bytes=1 writes one tile per block: the blockwise npz writer must give the same file.
    monkeypatch.setattr(patches, "_BLOCK_BYTES", block_bytes)
    y = _field()
    path = write_thetao(tmp_path / "t.nc", y, depth=[0.494, 47.37])
    data, cfg = sections({"eo": "none", "depth_levels": [0.494, 47.37]})
    out = tmp_path / "p" / "2015-01.npz"
    summary = patches.extract_period(path, None, "2015-01", data, cfg, out, source_file="src.nc")
    assert summary["examined"] == 6 and summary["kept"] == 3 and summary["best_nodata_fraction"] == 0.0
    with np.load(out, allow_pickle=False) as z:
        assert "eo" not in z.files
        assert z["y"].shape == (3, 2, 32, 32) and z["y"].dtype == np.float32
        np.testing.assert_array_equal(z["y0"], [0, 0, 32])
        np.testing.assert_array_equal(z["x0"], [0, 32, 0])
        np.testing.assert_allclose(z["nodata_fraction"], [0.0, 205 / 2048, 409 / 2048], rtol=1e-6)
        assert list(z["patch_id"]) == ["2015-01_y00000_x00000", "2015-01_y00000_x00032", "2015-01_y00032_x00000"]
        np.testing.assert_array_equal(z["y"][2], y[:, 32:64, 0:32])
        np.testing.assert_allclose(z["lat"][2], 10.0 + 0.25 * np.arange(32, 64))
        np.testing.assert_allclose(z["lon"][1], -30.0 + 0.25 * np.arange(32, 64))
        assert z["time"][0] == np.datetime64("2015-01-01", "s").astype(np.int64)
        assert str(z["source_file"]) == "src.nc" and z["depth"].dtype == np.float32
    # Overlapping tiles: stride 16 examines 3 x 5 positions.
    _, cfg16 = sections(patches={"stride": 16})
    assert patches.extract_period(path, None, "2015-01", data, cfg16, out)["examined"] == 15
    # A stricter threshold keeps only the clean tile and the 10 % one.
    _, strict = sections(patches={"max_nodata_fraction": 0.15})
    assert patches.extract_period(path, None, "2015-01", data, strict, out)["kept"] == 2


def test_no_patches_error_message(tmp_path) -> None:
    y = _field()
    y[:, :, :16] = np.nan  # left tiles >= 50 % NaN
    y[:, :32, 16:] = np.nan  # top row all NaN: the best tile is (1, 2) with 0.25
    path = write_thetao(tmp_path / "t.nc", y, depth=[0.494, 47.37])
    data, cfg = sections({"eo": "none"}, {"max_nodata_fraction": 0.05})
    message = r"Examined 6 tiles.*best nodata fraction was 0\.250 > patches\.max_nodata_fraction"
    with pytest.raises(NoPatchesError, match=message) as err:
        patches.extract_period(path, None, "2015-01", data, cfg, tmp_path / "x.npz")
    assert "patches.size" in str(err.value) and "data.region" in str(err.value)
    assert not (tmp_path / "x.npz").exists()
    _, big = sections(patches={"size": 128})
    with pytest.raises(NoPatchesError, match="Examined 0 tiles"):
        patches.extract_period(path, None, "2015-01", data, big, tmp_path / "x.npz")


def test_eo_modes(tmp_path) -> None:
    y = _field()
    path = write_thetao(tmp_path / "t.nc", y, depth=[0.494, 47.37])
    data, cfg = sections({"eo": "surface", "eo_surface": {"smooth_px": 1.0, "noise_std": 0.1, "seed": 3}})
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    patches.extract_period(path, None, "2015-01", data, cfg, a)
    patches.extract_period(path, None, "2015-01", data, cfg, b)
    with np.load(a) as za, np.load(b) as zb:
        np.testing.assert_array_equal(za["eo"], zb["eo"])  # deterministic by seed + period
        eo, surface = za["eo"][:, 0], za["y"][:, 0]
        assert za["eo"].shape == (3, 1, 32, 32)
        assert np.array_equal(np.isnan(eo), np.isnan(surface))
        diff = eo - surface
        assert 0.05 < np.nanstd(diff) and np.nanmean(np.abs(diff)) < 2.0
    # ostia: the EO file's analysed_sst is cut with the same windows.
    eo_field = np.where(np.isnan(y[0]), np.nan, 20.0 + np.arange(96)[None, :] / 100).astype(np.float32)
    eo_path = write_thetao(tmp_path / "eo.nc", eo_field[None], depth=[0.0])
    with xr.open_dataset(eo_path) as ds:
        sst = ds.load()["thetao"].isel(depth=0, drop=True).rename("analysed_sst").to_dataset()
    sst.to_netcdf(tmp_path / "sst.nc")
    data["eo"] = "ostia"
    patches.extract_period(path, tmp_path / "sst.nc", "2015-01", data, cfg, a)
    with np.load(a) as z:
        np.testing.assert_array_equal(z["eo"][1, 0], eo_field[0:32, 32:64])


def test_coarsen_nan_rule() -> None:
    a = np.array([[1, 3, 5, np.nan],
                  [np.nan, np.nan, np.nan, np.nan],
                  [2, 2, 4, 6],
                  [2, np.nan, 8, 6]], dtype=np.float32)[None]
    out = patches.coarsen_nan(a, 2)[0]
    # block (0,0): 2 of 4 NaN (not more than half) -> mean 2; block (0,1): 3 NaN -> NaN.
    np.testing.assert_allclose(out, [[2.0, np.nan], [2.0, 6.0]])
    np.testing.assert_allclose(patches.coarsen_axis(np.array([0.0, 1.0, 2.0, 3.0, 4.0]), 2), [0.5, 2.5])


def test_extract_with_coarsening(tmp_path) -> None:
    y = _field()
    path = write_thetao(tmp_path / "t.nc", y, depth=[0.494, 47.37])
    data, cfg = sections({"eo": "none"}, {"coarsen": 2, "size": 16, "stride": 16})
    summary = patches.extract_period(path, None, "2015-01", data, cfg, tmp_path / "c.npz")
    assert summary["grid"] == [32, 48] and summary["examined"] == 6
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_allclose(z["lat"][0, :2], [10.125, 10.625])
        assert z["y"].shape[1:] == (2, 16, 16)
