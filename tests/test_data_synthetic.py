"""Synthetic source: GLORYS levels, determinism, basic physics, contract files."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from data_helpers import sections
from depthdif.data import synthetic
from depthdif.data.patches import tile_nodata

DEEP = {"depth_levels": [0.494, 47.37, 318.13, 1062.44]}


def _anomaly(field: np.ndarray) -> np.ndarray:
    """Remove the zonal mean (meridional gradient, season) to keep eddies and meanders."""
    return field - np.nanmean(field, axis=1, keepdims=True)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def test_glorys_depths_match_real_file(real_data_dir) -> None:
    with xr.open_dataset(real_data_dir / "cmems_glo12_thetao_column_0N0E.nc") as ds:
        np.testing.assert_allclose(synthetic.GLORYS_DEPTHS, ds["depth"].values, rtol=1e-6)


def test_levels_snap_to_glorys() -> None:
    data, _ = sections({"depth_levels": [0.0, 50.0, 300.0]})
    np.testing.assert_allclose(synthetic.glorys_levels(data), [0.494025, 47.37369, 318.1274])
    data, _ = sections({"depth_levels": [0, 17], "depth_selection": "index"})
    np.testing.assert_allclose(synthetic.glorys_levels(data), [0.494025, 47.37369])


def test_default_grid_and_determinism() -> None:
    data, _ = sections()
    a = synthetic.synthetic_period_dataset("2015-03", data)
    b = synthetic.synthetic_period_dataset("2015-03", data)
    assert a["thetao"].shape == (1, 4, 96, 128) and a["analysed_sst"].shape == (1, 96, 128)
    assert a["thetao"].dtype == np.float32
    xr.testing.assert_identical(a, b)
    other, _ = sections({"synthetic": {"seed": 8}})
    c = synthetic.synthetic_period_dataset("2015-03", other)
    assert np.nanmax(np.abs(a["thetao"].values - c["thetao"].values)) > 0.5
    small = synthetic.synthetic_period_dataset("2015-03", data, shape=(24, 40), eo=False)
    assert small["thetao"].shape == (1, 4, 24, 40) and "analysed_sst" not in small


def test_physics() -> None:
    data, _ = sections(DEEP)
    ds = synthetic.synthetic_period_dataset("2015-08", data)
    t = ds["thetao"].values[0]
    means = np.nanmean(t, axis=(1, 2))
    assert np.all(np.diff(means) < 0) and means[0] - means[-1] > 8  # warm surface, cold depth
    land = np.isnan(t).mean(axis=(1, 2))
    assert 0.02 < land[0] <= 0.25 and np.all(np.diff(land) > 0)  # land grows with depth
    # Surface anomalies inform the subsurface but are not copied.
    assert 0.3 < _corr(_anomaly(t[0]), _anomaly(t[2])) < 0.95
    # North is colder than south (meridional gradient).
    assert np.nanmean(t[0, -10:]) < np.nanmean(t[0, :10]) - 5
    # August (NH summer) surface warmer than February.
    feb = synthetic.synthetic_period_dataset("2015-02", data)["thetao"].values[0]
    assert np.nanmean(t[0]) > np.nanmean(feb[0]) + 2
    assert abs(np.nanmean(t[3]) - np.nanmean(feb[3])) < 0.5  # no seasonal cycle at 1000 m


def test_months_are_correlated_but_evolve() -> None:
    data, _ = sections()
    surf = {p: _anomaly(synthetic.synthetic_period_dataset(p, data, eo=False)["thetao"].values[0, 0])
            for p in ("2015-01", "2015-02", "2015-07")}
    lag1 = _corr(surf["2015-01"], surf["2015-02"])
    lag6 = _corr(surf["2015-01"], surf["2015-07"])
    assert 0.6 < lag1 < 0.98 and lag6 < lag1 - 0.3


def test_eo_correlates_with_surface_but_differs() -> None:
    data, _ = sections()
    ds = synthetic.synthetic_period_dataset("2015-05", data)
    surface, eo = ds["thetao"].values[0, 0], ds["analysed_sst"].values[0]
    assert np.array_equal(np.isnan(eo), np.isnan(surface))
    assert _corr(eo, surface) > 0.95
    assert 0.15 < float(np.sqrt(np.nanmean((eo - surface) ** 2))) < 1.0


def test_no_land_option() -> None:
    data, _ = sections({"synthetic": {"land": False}})
    assert not np.isnan(synthetic.synthetic_period_dataset("2015-01", data, shape=(32, 32))["thetao"].values).any()


def test_default_patches_mostly_survive() -> None:
    data, patches = sections()
    kept = []
    for period in ("2015-01", "2015-07", "2016-04"):
        t = synthetic.synthetic_period_dataset(period, data, eo=False)["thetao"].values[0]
        _, _, fraction = tile_nodata(t, patches["size"], patches["stride"])
        kept.append(int((fraction <= patches["max_nodata_fraction"]).sum()))
    print("default synthetic patches kept per period (of 12):", kept)
    assert min(kept) >= 8


def test_write_synthetic_period_files(tmp_path) -> None:
    data, _ = sections()
    synthetic.write_synthetic_period("2016-02", data, tmp_path / "a.nc", tmp_path / "eo" / "a.nc")
    with xr.open_dataset(tmp_path / "a.nc") as ds, xr.open_dataset(tmp_path / "eo" / "a.nc") as eo:
        assert ds["thetao"].dims == ("time", "depth", "latitude", "longitude")
        assert ds["thetao"].attrs["units"] == "degC" and ds["thetao"].dtype == np.float32
        assert ds["time"].values[0] == np.datetime64("2016-02-01")
        assert eo["analysed_sst"].dims == ("time", "latitude", "longitude")
        np.testing.assert_array_equal(eo["latitude"], ds["latitude"])
        assert eo["analysed_sst"].attrs["units"] == "degC"
        assert float(ds["longitude"].min()) == pytest.approx(-39.875)


def test_retrieve_dispatch(tmp_path) -> None:
    from depthdif.data.retrieve import retrieve_period
    from depthdif.errors import ConfigError

    data, _ = sections({"eo": "none"})
    retrieve_period("2015-01", data, tmp_path / "a.nc")
    with xr.open_dataset(tmp_path / "a.nc") as ds:
        assert ds["thetao"].shape == (1, 4, 96, 128)
    with pytest.raises(ConfigError, match="data.source"):
        retrieve_period("2015-01", {**data, "source": "ftp"}, tmp_path / "b.nc")
    with pytest.raises(ConfigError, match="ostia"):
        retrieve_period("2015-01", {**data, "eo": "ostia"}, tmp_path / "b.nc", None)


def test_surface_has_no_oi_nugget() -> None:
    """The OI (Matérn-3/2) fit on 32 px surface patches finds almost no nugget, as on real L4 SST
    (CoralTemp: 0): no grid-scale noise-like variance (bench/synthetic_realism.py, full region:
    0.019; the generator before the smoothing / smooth-max change: 0.080 there, 0.059 here)."""
    from depthdif.eval.oi import fit_oi

    data, _ = sections({"region": {"lon_min": -40.0, "lon_max": -24.0, "lat_min": 24.0, "lat_max": 40.0}})
    tiles = []
    for period in ("2015-01", "2015-04", "2015-07", "2015-10", "2016-02", "2016-05", "2016-08", "2016-11"):
        surface = synthetic.synthetic_period_dataset(period, data, eo=False)["thetao"].values[0, 0]
        assert surface.shape == (64, 64)
        t = surface.reshape(2, 32, 2, 32).transpose(0, 2, 1, 3).reshape(-1, 32, 32)
        tiles.append(t[np.isnan(t).mean(axis=(1, 2)) <= 0.2])
    y = np.concatenate(tiles)[:, None].astype(np.float64)
    assert len(y) >= 16
    params = fit_oi(y, np.isfinite(y), covariance="matern32", max_fit_patches=64)
    share = params.nugget[0] / (params.nugget[0] + params.variance[0])
    print(f"synthetic surface OI nugget share {share:.4f}, length {params.length_scale[0]:.1f} px")
    assert share <= 0.02
