"""The netcdf source on the shared real files (and broken files)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

from data_helpers import sections
from depthdif.data import netcdf, synthetic
from depthdif.errors import DataError

NORTH_SEA = {"lon_min": -13.0, "lon_max": 5.0, "lat_min": 47.0, "lat_max": 64.0}
GLOBE = {"lon_min": -180.0, "lon_max": 180.0, "lat_min": -90.0, "lat_max": 90.0}


def _cfg(paths, variable, depth_levels, region, **extra):
    data, _ = sections({"source": "netcdf", "variable": variable, "depth_levels": depth_levels,
                        "region": region, "eo": "none", "netcdf": {"paths": str(paths)}, **extra})
    return data


def _run(tmp_path, period, data, eo=False):
    out, eo_out = tmp_path / f"{period}.nc", (tmp_path / f"eo_{period}.nc" if eo else None)
    netcdf.write_netcdf_period(period, data, out, eo_out)
    with xr.open_dataset(out) as ds:
        result = ds.load()
    if eo_out is None:
        return result
    with xr.open_dataset(eo_out) as ds:
        return result, ds.load()


def test_north_sea_surface_file(real_data_dir, tmp_path) -> None:
    data = _cfg(real_data_dir / "cmems_glo12_so_surface_NorthSea_20250924.nc", "so", [0.494], NORTH_SEA)
    ds = _run(tmp_path, "2025-09", data)
    t = ds["thetao"]
    assert t.shape == (1, 1, 205, 217) and t.dtype == np.float32
    assert ds["time"].values[0] == np.datetime64("2025-09-01")
    assert float(t.isnull().mean()) == pytest.approx(0.228, abs=0.005)
    assert t.attrs["source_variable"] == "so" and 30 < float(t.median()) < 36
    assert np.all(np.diff(ds["latitude"]) > 0) and np.all(np.diff(ds["longitude"]) > 0)


def test_column_depth_by_value_and_index(real_data_dir, tmp_path) -> None:
    path = real_data_dir / "cmems_glo12_thetao_column_0N0E.nc"
    box = {"lon_min": -1.0, "lon_max": 1.0, "lat_min": -1.0, "lat_max": 1.0}
    by_value = _run(tmp_path, "2023-01", _cfg(path, "thetao", [0.5, 50.0, 318.0, 5700.0], box))
    by_index = _run(tmp_path, "t0002", _cfg(path, "thetao", [0, 17, 28, 49], box, depth_selection="index"))
    for ds in (by_value, by_index):
        np.testing.assert_allclose(ds["depth"], synthetic.GLORYS_DEPTHS[[0, 17, 28, 49]], rtol=1e-6)
        assert np.isnan(ds["thetao"].values[0, 3, 0, 0])  # 5728 m is below the sea floor at 0N 0E
    with xr.open_dataset(path) as raw:
        column = raw["thetao"].values[:, [0, 17, 28], 0, 0]
    np.testing.assert_allclose(by_value["thetao"].values[0, :3, 0, 0], column.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(by_index["thetao"].values[0, :3, 0, 0], column[2], rtol=1e-6)
    assert by_index["time"].values[0] == np.datetime64("2023-01-01T12:00")


def test_levitus_month_axis_and_land_growing_with_depth(real_data_dir, tmp_path) -> None:
    data = _cfg(real_data_dir / "levitus_mitgcm_4deg_15lev_monthly.nc", "theta", [0, 5, 10, 14], GLOBE,
                depth_selection="index")
    jan, jul = _run(tmp_path, "t0000", data), _run(tmp_path, "t0006", data)
    t = jan["thetao"].values[0]
    assert t.shape == (4, 40, 90)
    np.testing.assert_array_equal(jan["depth"], [25.0, 670.0, 2495.0, 4855.0])
    land = np.isnan(t).mean(axis=(1, 2))
    assert land[0] == pytest.approx(0.357, abs=0.01) and np.all(np.diff(land) > 0) and land[-1] > 0.7
    assert np.nanmin(t) >= -2.5  # the file's unphysical cells (down to -5.6 degC) are masked
    assert jan["time"].values[0] == np.datetime64("1970-01-01")
    assert jul["time"].values[0] == np.datetime64("1970-07-01")
    assert np.nanmax(np.abs(jan["thetao"].values - jul["thetao"].values)) > 1.0
    assert float(jan["longitude"].min()) == -178.0 and float(jan["longitude"].max()) == 178.0
    with pytest.raises(DataError, match="t0000"):
        _run(tmp_path, "2000-01", data)


def test_ostia_kelvin_and_0_360_longitudes(real_data_dir, tmp_path) -> None:
    path = real_data_dir / "ostia_monthly_tropics_2006_2010.nc"
    seam = {"lon_min": -20.0, "lon_max": 20.0, "lat_min": -5.0, "lat_max": 5.0}
    ds = _run(tmp_path, "2007-03", _cfg(path, "surface_temperature", [0.494], seam))
    lon = ds["longitude"].values
    assert lon.min() == pytest.approx(-20.0, abs=1e-4) and lon.max() == pytest.approx(20.0, abs=1e-4)
    assert np.all(np.diff(lon) > 0)
    t = ds["thetao"].values
    assert 20 < np.nanmin(t) and np.nanmax(t) < 33  # degC, converted from K
    assert ds["thetao"].attrs["converted_from_kelvin"] == 1
    dateline = {"lon_min": 170.0, "lon_max": -170.0, "lat_min": -5.0, "lat_max": 5.0}
    east = _run(tmp_path, "2007-03", _cfg(path, "surface_temperature", [0.494], dateline))["longitude"].values
    assert east[0] == pytest.approx(170.0, abs=1e-4) and east[-1] == pytest.approx(190.0, abs=1e-4)
    assert np.all(np.diff(east) > 0)
    with pytest.raises(DataError, match="2004-01"):
        _run(tmp_path, "2004-01", _cfg(path, "surface_temperature", [0.494], seam))


def test_eo_regridded_onto_thetao_grid(real_data_dir, tmp_path) -> None:
    region = {"lon_min": -10.0, "lon_max": 20.0, "lat_min": -4.0, "lat_max": 4.0}
    syn, _ = sections({"region": region, "synthetic": {"resolution": 0.5}})
    synthetic.write_synthetic_period("2007-03", syn, tmp_path / "thetao_src.nc")
    data = _cfg(tmp_path / "thetao_src.nc", "thetao", syn["depth_levels"], region, eo="ostia")
    data["netcdf"]["eo_paths"] = str(real_data_dir / "ostia_monthly_tropics_2006_2010.nc")
    thetao, eo = _run(tmp_path, "2007-03", data, eo=True)
    sst = eo["analysed_sst"]
    assert sst.dims == ("time", "latitude", "longitude") and sst.attrs["units"] == "degC"
    np.testing.assert_array_equal(eo["latitude"], thetao["latitude"])
    np.testing.assert_array_equal(eo["longitude"], thetao["longitude"])
    assert np.array_equal(np.isnan(sst.values[0]), np.isnan(thetao["thetao"].values[0, 0]))
    assert 22 < float(sst.min()) and float(sst.max()) < 33
    with xr.open_dataset(real_data_dir / "ostia_monthly_tropics_2006_2010.nc") as raw:
        ref = raw["surface_temperature"].sel(time="2007-03").sel(latitude=0.0, longitude=0.0, method="nearest")
        expected = float(ref.squeeze()) - 273.15
    assert float(sst.sel(latitude=0.25, longitude=0.25, method="nearest").squeeze()) == pytest.approx(expected, abs=0.5)


def test_unreadable_files(real_data_dir, tmp_path) -> None:
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"this is not a netCDF file\x00\x01" * 64)
    with pytest.raises(DataError, match="garbage.nc is not a readable netCDF"):
        _run(tmp_path, "2025-09", _cfg(garbage, "so", [0.494], NORTH_SEA))
    truncated = tmp_path / "truncated.nc"
    original = (real_data_dir / "cmems_glo12_so_surface_NorthSea_20250924.nc").read_bytes()
    truncated.write_bytes(original[: len(original) // 2])
    with pytest.raises(DataError, match="truncated.nc.*not a readable netCDF"):
        _run(tmp_path, "2025-09", _cfg(truncated, "so", [0.494], NORTH_SEA))


def test_missing_variable_and_files(real_data_dir, tmp_path) -> None:
    copy = tmp_path / "ns.nc"
    shutil.copy(real_data_dir / "cmems_glo12_so_surface_NorthSea_20250924.nc", copy)
    with pytest.raises(DataError, match=r"'thetao' not found.*\['so'\]"):
        _run(tmp_path, "2025-09", _cfg(copy, "thetao", [0.494], NORTH_SEA))
    with pytest.raises(DataError, match="data.netcdf.paths"):
        _run(tmp_path, "2025-09", _cfg(tmp_path / "none_*.nc", "so", [0.494], NORTH_SEA))
