"""Argo GDAC reader QC on the shared real files, and argo masks built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

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
