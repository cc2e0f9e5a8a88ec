"""Periods and CF standardisation on small constructed datasets."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from depthdif.data import cf, periods, regrid
from depthdif.errors import ConfigError, DataError

GLOBE = {"lon_min": -180.0, "lon_max": 180.0, "lat_min": -90.0, "lat_max": 90.0}


def test_list_periods_range_and_list() -> None:
    assert periods.list_periods({"periods": {"start": "2015-11", "end": "2016-02"}}) == [
        "2015-11", "2015-12", "2016-01", "2016-02"]
    assert periods.list_periods({"periods": ["t0000", "t0003"]}) == ["t0000", "t0003"]
    with pytest.raises(ConfigError, match="data.periods"):
        periods.list_periods({"periods": {"start": "2016-02", "end": "2015-11"}})
    with pytest.raises(ConfigError, match="2015-13"):
        periods.list_periods({"periods": ["2015-13"]})


def test_period_bounds() -> None:
    start, end = periods.period_bounds("2015-12")
    assert start == np.datetime64("2015-12-01") and end == np.datetime64("2016-01-01")
    assert periods.period_bounds("t0007") is None


def _grid_2d() -> xr.Dataset:
    """sst(lat desc, lon 0..359) in kelvin: value = 273.15 + lat/10 + lon/1000."""
    lat = np.arange(10.0, -11.0, -5.0)
    lon = np.arange(0.0, 360.0, 10.0)
    values = 273.15 + lat[:, None] / 10 + lon[None, :] / 1000
    return xr.Dataset({"sst": (("lat", "lon"), values.astype(np.float32), {"units": "K"})},
                      coords={"lat": lat, "lon": lon})


def test_standardize_2d_kelvin_0_360() -> None:
    out = cf.standardize(_grid_2d(), "sst", depth_levels=[0.5], depth_selection="nearest",
                         region={"lon_min": -30.0, "lon_max": 30.0, "lat_min": -5.0, "lat_max": 10.0})
    t = out["thetao"]
    assert t.dims == ("time", "depth", "latitude", "longitude") and t.dtype == np.float32
    assert t.attrs["units"] == "degC" and t.attrs["source_variable"] == "sst"
    np.testing.assert_array_equal(out["latitude"], [-5.0, 0.0, 5.0, 10.0])
    np.testing.assert_array_equal(out["longitude"], np.arange(-30.0, 31.0, 10.0))
    # lat 5, lon -20 (= 340 in the file): 5/10 + 340/1000 degC.
    assert float(t.sel(latitude=5.0, longitude=-20.0)[0, 0]) == pytest.approx(0.84, abs=1e-4)


def test_standardize_dateline_box_is_contiguous() -> None:
    out = cf.standardize(_grid_2d(), "sst", depth_levels=None, depth_selection="nearest",
                         region={"lon_min": 170.0, "lon_max": -170.0, "lat_min": 0.0, "lat_max": 0.0})
    np.testing.assert_array_equal(out["longitude"], [170.0, 180.0, 190.0])
    np.testing.assert_allclose(out["thetao"].values.ravel(), [0.17, 0.18, 0.19], atol=1e-4)


def _column_4d(positive_up: bool = False) -> xr.Dataset:
    depth = np.array([5.0, 50.0, 150.0, 300.0])
    temp = np.array([20.0, 15.0, 10.0, 5.0])[None, :, None, None] * np.ones((2, 4, 2, 3))
    z = -depth if positive_up else depth
    return xr.Dataset(
        {"votemper": (("time_counter", "deptht", "y", "x"), temp.astype(np.float32))},
        coords={"time_counter": np.array(["2015-01-05", "2015-01-20"], dtype="datetime64[ns]"),
                "deptht": ("deptht", z, {"positive": "up" if positive_up else "down"}),
                "nav_lat": (("y", "x"), np.repeat([[1.0], [2.0]], 3, axis=1)),
                "nav_lon": (("y", "x"), np.repeat([[1.0, 2.0, 3.0]], 2, axis=0))},
    )


@pytest.mark.parametrize("positive_up", [False, True])
def test_depth_selection_by_value_and_index(positive_up: bool) -> None:
    ds = _column_4d(positive_up)
    near = cf.standardize(ds, "votemper", depth_levels=[290.0, 40.0], depth_selection="nearest", region=GLOBE)
    idx = cf.standardize(ds, "votemper", depth_levels=[1, 3], depth_selection="index", region=GLOBE)
    for out in (near, idx):
        np.testing.assert_array_equal(out["depth"], [50.0, 300.0])
        np.testing.assert_array_equal(out["thetao"].values[0, :, 0, 0], [15.0, 5.0])
        assert out.sizes == {"time": 2, "depth": 2, "latitude": 2, "longitude": 3}
    with pytest.raises(DataError, match="same depth"):
        cf.standardize(ds, "votemper", depth_levels=[40.0, 60.0], depth_selection="nearest", region=GLOBE)
    with pytest.raises(DataError, match="0..3"):
        cf.standardize(ds, "votemper", depth_levels=[4], depth_selection="index", region=GLOBE)


def test_fill_values_range_and_errors() -> None:
    values = np.array([[-999.0, 290.0], [300.0, 1.0e20]], dtype=np.float32)  # undecoded fills
    ds = xr.Dataset({"t": (("latitude", "longitude"), values, {"_FillValue": -999.0})},
                    coords={"latitude": [0.0, 1.0], "longitude": [0.0, 1.0]})
    out = cf.standardize(ds, "t", depth_levels=None, depth_selection="nearest", region=GLOBE)
    got = out["thetao"].values[0, 0]
    assert np.isnan(got[0, 0]) and np.isnan(got[1, 1])  # fill value and absurd value
    np.testing.assert_allclose(got[0, 1], 16.85, atol=1e-4)  # clearly kelvin without units
    with pytest.raises(DataError, match=r"'nope' not found.*\['t'\]"):
        cf.standardize(ds, "nope", depth_levels=None, depth_selection="nearest", region=GLOBE)
    with pytest.raises(DataError, match="data.region"):
        cf.standardize(ds, "t", depth_levels=None, depth_selection="nearest",
                       region={"lon_min": 50.0, "lon_max": 60.0, "lat_min": 0.0, "lat_max": 1.0})


def test_smooth_nan_keeps_mean_and_mask() -> None:
    field = np.full((9, 9), 5.0, dtype=np.float32)
    field[4, :3] = np.nan
    out = regrid.smooth_nan(field, 2.0)
    assert np.array_equal(np.isnan(out), np.isnan(field))
    np.testing.assert_allclose(out[np.isfinite(out)], 5.0, atol=1e-5)
