"""Argo GDAC reader QC on the shared real files, and argo masks built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from data_helpers import write_argo_prof
from depthdif.data.argo import argo_profiles, read_argo_tracks
from depthdif.errors import DataError
from depthdif.masks import make_mask, target_count

# platform -> (good profiles, lat box, lon box); boxes from the README, +-0.5 deg (4901079 reaches 45.18 N)
EXPECTED = {
    "1900857": (194, (-49.0, -34.0), (9.0, 94.0)),
    "2901746": (192, (36.5, 42.5), (130.0, 136.5)),  # 73 real-time profiles have JULD_QC 4
    "2902696": (51, (11.5, 13.5), (114.5, 117.0)),
    "4901079": (181, (35.0, 45.5), (-64.0, -30.0)),
}


@pytest.fixture(scope="module")
def tracks(real_data_dir: Path):
    return read_argo_tracks(str(real_data_dir / "argo" / "*_prof.nc"))


def test_tracks_qc_counts_and_boxes(tracks) -> None:
    assert list(tracks.columns) == ["platform", "cycle", "time", "lat", "lon", "n_good_levels", "temp_max"]
    counts = tracks["platform"].value_counts().to_dict()
    assert counts == {p: n for p, (n, _, _) in EXPECTED.items()}
    for platform, (_, (lat0, lat1), (lon0, lon1)) in EXPECTED.items():
        rows = tracks[tracks["platform"] == platform]
        assert rows["lat"].between(lat0, lat1).all() and rows["lon"].between(lon0, lon1).all(), platform
        assert rows["time"].is_monotonic_increasing
    assert (tracks["n_good_levels"] >= 1).all()
    assert tracks["temp_max"].max() < 35.0 and tracks["temp_max"].min() > -2.5


def test_qc_drops_spikes(real_data_dir: Path) -> None:
    raw_max = {}
    for path in sorted((real_data_dir / "argo").glob("*_prof.nc")):
        with xr.open_dataset(path) as ds:
            raw_max[path.name] = float(ds["TEMP"].max())
        prof = argo_profiles(path)
        assert prof["temp"].max() < 35.0 and prof["temp"].notna().all() and (prof["pres"] >= 0).all()
    assert max(raw_max.values()) > 40.0  # the raw file has the 48 degC spike
    one = argo_profiles(real_data_dir / "argo" / "4901079_prof.nc")
    tr = read_argo_tracks([real_data_dir / "argo" / "4901079_prof.nc"])
    assert one.groupby(["cycle", "time"]).size().sum() == tr["n_good_levels"].sum() == len(one)
    np.testing.assert_allclose(one.groupby("time")["temp"].max().to_numpy(), tr["temp_max"].to_numpy())


def test_missing_and_corrupt_files_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothing_prof.nc"):
        read_argo_tracks(str(tmp_path / "nothing_prof.nc"))
    with pytest.raises(DataError, match="matches no file"):
        read_argo_tracks(str(tmp_path / "*_prof.nc"))
    bad = tmp_path / "bad_prof.nc"
    bad.write_bytes(b"not a netCDF file")
    with pytest.raises(DataError, match="bad_prof.nc"):
        read_argo_tracks([bad])
    other = tmp_path / "other_prof.nc"
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(other)
    with pytest.raises(DataError, match="lacks"):
        read_argo_tracks(other)


def test_psal_follows_the_temperature_mode_and_its_own_qc(tmp_path: Path) -> None:
    nan = np.nan
    path = write_argo_prof(tmp_path / "x_prof.nc", [
        # real time: raw PSAL with its QC (2 good; 3, 4 not); a bad PSAL keeps the level, only psal is NaN
        {"platform": "1", "cycle": 1, "time": "2015-01-10T12", "lat": 40.0, "lon": -30.0, "pres": [5, 50, 100],
         "temp": [20, 15, 10], "psal": [35.0, 35.5, 36.0], "psal_qc": "243"},
        # delayed mode: adjusted PSAL only; its bad QC is not replaced by the good raw value
        {"platform": "1", "cycle": 2, "time": "2015-01-20T12", "lat": 40.5, "lon": -29.0, "pres": [5, 50],
         "temp": [19, 14], "psal": [34.0, 34.5], "data_mode": "D", "temp_adj": [19.25, 14.25],
         "psal_adj": [34.25, 34.75], "psal_adj_qc": "41", "pres_adj": [5.5, 50.5]},
        # a bad temperature drops the level whatever its PSAL
        {"platform": "2", "cycle": 1, "time": "2015-02-01T00", "lat": 41.0, "lon": -28.0, "pres": [10, 20],
         "temp": [18, 17], "temp_qc": "14", "psal": [35.0, 35.0]},
        # adjusted mode without any adjusted PSAL value: no salinity
        {"platform": "3", "cycle": 1, "time": "2015-02-02T00", "lat": 42.0, "lon": -27.0, "pres": [10],
         "temp": [16.0], "psal": [35.0], "data_mode": "A", "temp_adj": [16.5], "pres_adj": [10.0]},
    ])
    prof = argo_profiles(path)
    assert list(prof.columns) == ["platform", "cycle", "time", "lat", "lon", "pres", "temp", "psal"]
    np.testing.assert_allclose(prof["pres"], [5, 50, 100, 5.5, 50.5, 10, 10])
    np.testing.assert_allclose(prof["temp"], [20, 15, 10, 19.25, 14.25, 18, 16.5])
    np.testing.assert_allclose(prof["psal"], [35.0, nan, nan, nan, 34.75, 35.0, nan])
    tracks = read_argo_tracks(path)  # the temperature QC rules are unchanged by PSAL
    assert tracks["n_good_levels"].tolist() == [3, 2, 1, 1]


def test_file_without_psal_keeps_its_temperatures(tmp_path: Path) -> None:
    path = write_argo_prof(tmp_path / "t_prof.nc", [
        {"platform": "9", "cycle": 1, "time": "2016-05-03T00", "lat": 10.0, "lon": 150.0, "pres": [4, 40],
         "temp": [28.0, 27.0]},
    ])
    with xr.open_dataset(path) as ds:
        assert "PSAL" not in ds
    prof = argo_profiles(path)
    assert prof["temp"].tolist() == [28.0, 27.0] and prof["psal"].isna().all()


def test_real_psal_is_the_good_adjusted_salinity(real_data_dir: Path) -> None:
    """4901079 is all delayed/adjusted mode: psal = PSAL_ADJUSTED where its QC is 1/2, counted independently."""
    path = real_data_dir / "argo" / "4901079_prof.nc"
    prof = argo_profiles(path)
    with xr.open_dataset(path) as ds:
        assert set(ds["DATA_MODE"].values.astype(str)) == {"A", "D"}

        def good(name: str) -> np.ndarray:
            return np.isin(ds[f"{name}_QC"].values.astype(str), ["1", "2"]) & np.isfinite(ds[name].values)

        keep = np.isin(ds["POSITION_QC"].values.astype(str), ["1", "2"]) & np.isin(
            ds["JULD_QC"].values.astype(str), ["1", "2"])
        level = good("TEMP_ADJUSTED") & good("PRES_ADJUSTED")
        with_psal = level & good("PSAL_ADJUSTED")
        expected = np.sort(ds["PSAL_ADJUSTED"].values[keep][with_psal[keep]].astype(np.float64))
    assert len(prof) == int(level[keep].sum()) == 12735
    assert prof["psal"].notna().sum() == int(with_psal[keep].sum()) == 12724
    np.testing.assert_allclose(np.sort(prof["psal"].dropna().to_numpy()), expected)
    assert prof["psal"].dropna().between(32.0, 37.0).all()  # North Atlantic, 0-2000 dbar


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_argo_masks_from_shared_files(tracks, fraction: float) -> None:
    yy, xx = np.mgrid[:32, :32]
    ocean = ~((yy - 5) ** 2 + (xx - 25) ** 2 < 40)
    lat, lon = 40.0 + 0.25 * np.arange(32), -30.0 + 0.25 * np.arange(32)
    kw = {"lat": lat, "lon": lon, "argo_tracks": tracks}
    mask = make_mask("argo", ocean, fraction, 4, "2015-01_y00000_x00000", {}, **kw)
    assert not (mask & ~ocean).any() and mask.sum() == target_count(int(ocean.sum()), fraction)
    assert np.array_equal(mask, make_mask("argo", ocean, fraction, 4, "2015-01_y00000_x00000", {}, **kw))


def test_argo_masks_follow_real_tracks(tracks) -> None:
    """Real floats drift ~1-3 px of 0.25 deg per cycle: observed pixels chain into few
    8-connected pieces, unlike iid pixels at the same density."""
    ocean = np.ones((32, 32), bool)
    kw = {"lat": 40.0 + 0.25 * np.arange(32), "lon": -30.0 + 0.25 * np.arange(32), "argo_tracks": tracks}
    pieces = {}
    for mode in ("argo", "pixel"):
        masks = [make_mask(mode, ocean, 0.9, seed, "p", {}, **kw) for seed in range(4)]
        pieces[mode] = np.mean([ndimage.label(m, structure=np.ones((3, 3)))[1] / m.sum() for m in masks])
    assert pieces["argo"] < 0.5 * pieces["pixel"]
