"""Argo profiles -> observations on a grid (depthdif.data.profiles) and the argo_profiles shards.

(tests/test_profiles.py is the SLURM profile's dry run.)
"""

from __future__ import annotations

from pathlib import Path

import gsw
import numpy as np
import pandas as pd
import pytest

from data_helpers import write_argo_prof
from depthdif.config import validate_config
from depthdif.data.argo import argo_profiles
from depthdif.data.occlusion import write_split_shards
from depthdif.data.profiles import (
    ProfileLevels,
    bin_to_grid,
    depth_from_pressure,
    fill_salinity,
    grid_observations,
    interpolate_levels,
    potential_temperature,
    profiles_on_levels,
)
from depthdif.dataset import ShardDataset
from depthdif.errors import ConfigError, DataError, NoPatchesError
from depthdif.inputs import user_file_sets
from depthdif.io import write_json
from depthdif.shards import load_arrays, read_manifest, verify_shards

LEVELS = [0.494, 47.37, 155.85, 318.13]
nan = np.nan


# --- TEOS-10 conversions ----------------------------------------------------------------------


def test_depth_from_pressure_is_teos10_and_near_saunders() -> None:
    p, lat = np.array([0.0, 5.0, 1000.0, 2000.0]), np.array([40.0, 40.0, 40.0, 0.0])
    depth = depth_from_pressure(p, lat)
    np.testing.assert_allclose(depth, -gsw.z_from_p(p, lat), rtol=1e-12)
    assert depth[0] == 0.0
    # Saunders (1981): depth ~ (1 - c1) p - c2 p^2, c1 = (5.92 + 5.25 sin^2 lat) 1e-3, c2 = 2.21e-6
    c1 = (5.92 + 5.25 * np.sin(np.deg2rad(lat)) ** 2) * 1e-3
    np.testing.assert_allclose(depth, (1 - c1) * p - 2.21e-6 * p**2, atol=0.5)
    assert depth[2] == pytest.approx(989.95, abs=0.01)  # 1000 dbar at 40 N is 990 m, not 1000


def test_potential_temperature_is_teos10_pt0() -> None:
    t, sp = np.array([20.0, 4.0, 3.0]), np.array([36.0, 35.0, 34.9])
    p, lon, lat = np.array([0.0, 1000.0, 2000.0]), np.array([-40.0] * 3), np.array([40.0] * 3)
    theta = potential_temperature(t, sp, p, lon, lat)
    expected = gsw.pt0_from_t(gsw.SA_from_SP(sp, p, lon, lat), t, p)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)
    assert theta[0] == 20.0  # at the reference pressure theta = t
    assert 0.07 < t[1] - theta[1] < 0.09 and 0.14 < t[2] - theta[2] < 0.17  # adiabatic heating at depth
    # the docstring's salinity error: SP 34 vs 36 moves theta by 0.0034 degC at 1000, 0.0067 at 2000 dbar
    diff = [potential_temperature(tt, np.float64(34.0), pp, -40.0, 40.0)
            - potential_temperature(tt, np.float64(36.0), pp, -40.0, 40.0) for tt, pp in ((4.0, 1000.0), (3.0, 2000.0))]
    np.testing.assert_allclose(diff, [0.0034, 0.0067], atol=0.0001)
    at_320 = potential_temperature(10.0, np.float64(34.0), 320.0, -40.0, 40.0) - potential_temperature(
        10.0, np.float64(36.0), 320.0, -40.0, 40.0)
    assert at_320 == pytest.approx(0.0010, abs=0.0001)


# --- salinity fallback ------------------------------------------------------------------------


def test_salinity_fallback_interpolates_the_profile_else_a_constant() -> None:
    profile = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    pres = np.array([10.0, 100.0, 200.0, 10.0, 100.0, 200.0, 10.0, 1000.0, 2000.0])
    psal = np.array([34.0, nan, 36.0, 34.0, 35.0, nan, nan, nan, nan])
    sp, counts = fill_salinity(profile, pres, psal, fallback=30.0)
    # profile 0: 34 + (100 - 10) / (200 - 10) * 2; profile 1: below its deepest PSAL the deepest value
    np.testing.assert_allclose(sp, [34.0, 34.947368421, 36.0, 34.0, 35.0, 35.0, 30.0, 30.0, 30.0])
    assert counts == {"measured": 4, "profile": 2, "constant": 3}


def test_profiles_on_levels_counts_the_salinity_sources_and_uses_the_fallback() -> None:
    rows = [  # (cycle, pres, temp, psal): cycle 2 has no good PSAL
        (1, 10.0, 12.0, 35.5), (1, 300.0, 8.0, nan), (1, 400.0, 7.0, 35.1),
        (2, 10.0, 12.0, nan), (2, 300.0, 8.0, nan), (2, 400.0, 7.0, nan),
    ]
    frame = pd.DataFrame([{"platform": "7", "cycle": c, "time": pd.Timestamp("2016-05-10"), "lat": 30.0,
                           "lon": 150.0, "pres": p, "temp": t, "psal": s} for c, p, t, s in rows])
    out = {fb: profiles_on_levels(frame, [318.13], salinity_fallback=fb) for fb in (35.0, 20.0)}
    assert out[35.0].salinity == {"measured": 2, "profile": 1, "constant": 3}
    assert len(out[35.0]) == 2 and out[35.0].cycle.tolist() == [1, 2]
    # independently: SP 35.5 + 290/390 * (35.1 - 35.5) at 300 dbar of cycle 1, the constant for cycle 2
    p, t = np.array([300.0, 400.0]), np.array([8.0, 7.0])
    z = -gsw.z_from_p(p, 30.0)
    for fb, profiles in out.items():
        for k, sp in enumerate((np.array([35.5 + 290 / 390 * -0.4, 35.1]), np.array([fb, fb]))):
            theta = gsw.pt0_from_t(gsw.SA_from_SP(sp, p, 150.0, 30.0), t, p)
            assert profiles.theta[k, 0] == pytest.approx(np.interp(318.13, z, theta), abs=1e-9)
    # a 15-unit SP error costs ~0.5 mK per unit at ~320 dbar (the docstring's number)
    assert 0.0005 * 15 * 0.9 < abs(out[35.0].theta[1, 0] - out[20.0].theta[1, 0]) < 0.0005 * 15 * 1.2


# --- interpolation to the depth levels ---------------------------------------------------------


def test_interpolation_by_hand_no_extrapolation_and_the_surface_rule() -> None:
    profile = np.array([0, 0, 0, 1, 1])  # profile 2 has no row
    depth = np.array([5.0, 50.0, 200.0, 30.0, 100.0])
    values = np.array([20.0, 15.0, 10.0, 10.0, 8.0])
    out = interpolate_levels(profile, depth, values, LEVELS, 3, surface_within_m=10.0)
    # 20 - 42.37/45 * 5; 15 - 105.85/150 * 5; 318 m is below 200 m: NaN; 10 - 17.37/70 * 2
    np.testing.assert_allclose(out, [[20.0, 15.292222222, 11.471666667, nan],
                                     [nan, 9.503714286, nan, nan],
                                     [nan, nan, nan, nan]])
    # profile 1 starts 29.5 m under 0.494 m: within 30 m it takes its shallowest value; 0 disables the rule
    assert interpolate_levels(profile, depth, values, LEVELS, 3, surface_within_m=30.0)[1, 0] == 10.0
    off = interpolate_levels(profile, depth, values, LEVELS, 3, surface_within_m=0.0)
    assert np.isnan(off[:, 0]).all() and off[0, 1] == pytest.approx(15.292222222)
    # exact at the deepest good level, NaN a centimetre below it
    np.testing.assert_allclose(interpolate_levels(profile, depth, values, [200.0, 200.01], 3)[0], [10.0, nan])


def test_profiles_on_levels_matches_an_independent_teos10_chain() -> None:
    p, t, s = np.array([6.0, 60.0, 250.0]), np.array([22.0, 18.0, 11.0]), np.array([36.1, 36.0, 35.4])
    lat, lon = 25.0, -60.0
    frame = pd.DataFrame({"platform": "1", "cycle": 3, "time": pd.Timestamp("2016-05-02"), "lat": lat, "lon": lon,
                          "pres": p[::-1], "temp": t[::-1], "psal": s[::-1]})  # any row order
    got = profiles_on_levels(frame, LEVELS)
    z = -gsw.z_from_p(p, lat)
    theta = gsw.pt0_from_t(gsw.SA_from_SP(s, p, lon, lat), t, p)
    expected = [theta[0], np.interp(47.37, z, theta), np.interp(155.85, z, theta), nan]  # 318 m: below 250 dbar
    np.testing.assert_allclose(got.theta[0], expected, rtol=1e-12)
    assert got.salinity == {"measured": 3, "profile": 0, "constant": 0}


# --- binning ---------------------------------------------------------------------------------


def _levels(lat: list[float], lon: list[float], time: list[str], theta: list[list[float]]) -> ProfileLevels:
    n = len(lat)
    return ProfileLevels(
        platform=np.array(["1"] * n), cycle=np.arange(n), time=np.array(time, "datetime64[ns]"),
        lat=np.array(lat, float), lon=np.array(lon, float), depth=np.array([0.5, 50.0]),
        theta=np.array(theta, float),
    )


def test_binning_means_counts_month_grid_and_descending_latitude() -> None:
    grid_lat = np.array([41.0, 40.75, 40.5, 40.25])  # descending
    grid_lon = np.array([-30.0, -29.75, -29.5])
    profiles = _levels(
        lat=[40.80, 40.70, 41.10, 40.30, 41.20, 40.75],
        lon=[-29.55, -29.45, -30.10, -29.76, -30.0, -29.5],
        time=["2016-05-01T00", "2016-05-31T23", "2016-05-10", "2016-05-11", "2016-05-12", "2016-06-01T00"],
        theta=[[10.0, 8.0], [12.0, nan], [5.0, 4.0], [7.0, 6.0], [1.0, 1.0], [30.0, 30.0]],
    )
    obs, count = grid_observations(profiles, "2016-05", grid_lat, grid_lon)
    assert obs.shape == count.shape == (2, 4, 3)
    # two profiles in cell (1, 2); the second does not observe level 1
    assert obs[0, 1, 2] == 11.0 and count[0, 1, 2] == 2 and obs[1, 1, 2] == 8.0 and count[1, 1, 2] == 1
    # 41.10 N is within half a spacing of the 41.0 row; -30.10 of the -30.0 column
    assert obs[0, 0, 0] == 5.0 and obs[1, 0, 0] == 4.0
    assert obs[0, 3, 1] == 7.0  # -29.76 -> -29.75
    # 41.20 N is outside the grid, the June profile in another month: 4 observations in all
    assert count.sum() == 3 + 2 + 2 and np.isfinite(obs).sum() == 2 + 2 + 2
    assert np.isnan(obs[count == 0]).all()
    june, june_count = grid_observations(profiles, "2016-06", grid_lat, grid_lon)
    assert june[0, 1, 2] == 30.0 and june_count.sum() == 2


def test_binning_across_the_dateline_and_irregular_grids() -> None:
    obs, count = bin_to_grid(np.array([[1.0], [2.0], [3.0]]), np.array([0.0, 0.0, 0.0]),
                             np.array([-179.8, 179.6, 170.0]),
                             np.array([-0.25, 0.0, 0.25]), np.array([179.5, 179.75, -180.0, -179.75]))
    assert obs[0, 1, 3] == 1.0 and obs[0, 1, 0] == 2.0 and count.sum() == 2
    with pytest.raises(DataError, match="longitude.*regularly spaced"):
        bin_to_grid(np.ones((1, 1)), np.zeros(1), np.zeros(1), np.array([0.0, 1.0]), np.array([0.0, 1.0, 3.0]))


def test_real_float_4901079_on_the_levels(real_data_dir: Path) -> None:
    frame = argo_profiles(real_data_dir / "argo" / "4901079_prof.nc")
    assert frame["psal"].notna().sum() == 12724 and len(frame) == 12735
    got = profiles_on_levels(frame, LEVELS)
    assert len(got) == 181  # every good profile observes some level
    assert got.salinity == {"measured": 12724, "profile": 11, "constant": 0}
    assert np.isfinite(got.theta).sum(axis=0).tolist() == [178, 181, 181, 181]  # 3 profiles start below 10.5 m
    finite = got.theta[np.isfinite(got.theta)]
    assert finite.min() > -2.0 and finite.max() < 35.0
    # θ of every good level (0-2000 dbar): finite, in range, and below t where the pressure heats the water
    rows = frame.sort_values(["time", "pres"]).reset_index(drop=True)
    profile = rows.groupby(["time"], sort=False).ngroup().to_numpy()
    sp, counts = fill_salinity(profile, rows["pres"].to_numpy(), rows["psal"].to_numpy())
    assert counts == got.salinity
    theta = potential_temperature(rows["temp"].to_numpy(), sp, rows["pres"].to_numpy(), rows["lon"].to_numpy(),
                                  rows["lat"].to_numpy())
    assert np.isfinite(theta).all() and theta.min() > -2.0 and theta.max() < 35.0
    deep = rows["pres"].to_numpy() > 500.0
    assert deep.sum() > 1000 and (theta[deep] < rows["temp"].to_numpy()[deep]).all()


# --- argo_profiles shards ---------------------------------------------------------------------

S = 8
DEPTH = [0.494, 47.37]
STATS = {"mean": [15.0, 12.0], "std": [2.0, 3.0], "eo_mean": None, "eo_std": None, "depth": DEPTH,
         "n_patches": 3, "split": "train"}
MONTH_START = {"2015-01": 1420070400, "2015-02": 1422748800}
LAT = 40.0 + 0.25 * np.arange(S)


def _lon(x0: int) -> np.ndarray:
    return -30.0 + 0.25 * (x0 + np.arange(S))


def _truth(period: str) -> np.ndarray:
    rows, cols = np.mgrid[:S, :S]
    y = np.stack([20.0 - 0.1 * rows + (period == "2015-02"), 14.0 + 0.05 * cols]).astype(np.float32)
    y[:, 0, 0] = np.nan  # land
    y[1, 7, :] = np.nan  # below the sea floor at level 1
    return y


def _patch_file(path: Path, period: str, x0s: list[int]) -> list[str]:
    n = len(x0s)
    y = np.stack([_truth(period)] * n)
    ids = np.array([f"{period}_y00000_x{x0:05d}" for x0 in x0s], "<U64")
    np.savez(path, y=y, lat=np.tile(LAT.astype(np.float32), (n, 1)),
             lon=np.stack([_lon(x0) for x0 in x0s]).astype(np.float32), y0=np.zeros(n, np.int32),
             x0=np.array(x0s, np.int32), time=np.full(n, MONTH_START[period], np.int64), patch_id=ids,
             nodata_fraction=np.isnan(y).mean(axis=(1, 2, 3)).astype(np.float32), depth=np.array(DEPTH, np.float32))
    return list(ids)


#: hand-made profiles; (row, col) of patch x0=0 in the comments
PROFILES = [
    # P1, P2: cell (3, 2) in January, both levels; P2's middle PSAL is bad (interpolated)
    {"platform": "1", "cycle": 1, "time": "2015-01-10T06", "lat": 40.80, "lon": -29.47, "pres": [2, 20, 60],
     "temp": [18, 16, 12], "psal": [35.2, 35.3, 35.6]},
    {"platform": "2", "cycle": 1, "time": "2015-01-25T18", "lat": 40.70, "lon": -29.55, "pres": [3, 30, 80],
     "temp": [17, 15, 11], "psal": [35.0, 35.9, 35.4], "psal_qc": "141"},
    # P3: cell (5, 6), shallow: only level 0; no PSAL at all (the constant fallback)
    {"platform": "3", "cycle": 1, "time": "2015-01-15T00", "lat": 41.25, "lon": -28.5, "pres": [4, 25],
     "temp": [19, 17]},
    # P4: cell (3, 2) in February: only the February patch
    {"platform": "1", "cycle": 2, "time": "2015-02-05T00", "lat": 40.75, "lon": -29.5, "pres": [5, 60],
     "temp": [10, 8], "psal": [35.0, 35.0]},
    # P5: cell (7, 4), where level 1 is below the sea floor
    {"platform": "4", "cycle": 1, "time": "2015-01-12T00", "lat": 41.75, "lon": -29.0, "pres": [5, 70],
     "temp": [16, 13], "psal": [35.0, 35.0]},
    # P6 outside every patch; P7 in a month without patches
    {"platform": "5", "cycle": 1, "time": "2015-01-12T00", "lat": 50.0, "lon": -29.5, "pres": [5, 70],
     "temp": [9, 7], "psal": [34.0, 34.0]},
    {"platform": "1", "cycle": 3, "time": "2015-03-01T00", "lat": 40.75, "lon": -29.5, "pres": [5, 70],
     "temp": [9, 7], "psal": [35.0, 35.0]},
]


def _expected_theta(k: int, surface_within_m: float = 10.0) -> np.ndarray:
    """θ of profile k on DEPTH, computed here with gsw and np.interp (the fallback SP by hand)."""
    prof = PROFILES[k]
    p, t = np.array(prof["pres"], float), np.array(prof["temp"], float)
    if "psal" not in prof:
        sp = np.full(p.size, 35.0)
    else:
        sp = np.array(prof["psal"], np.float32).astype(float)
        if "psal_qc" in prof:  # P2: 35.0 + (30 - 3) / (80 - 3) * (35.4 - 35.0)
            sp[1] = sp[0] + (p[1] - p[0]) / (p[2] - p[0]) * (sp[2] - sp[0])
    z = -gsw.z_from_p(p, prof["lat"])
    theta = gsw.pt0_from_t(gsw.SA_from_SP(sp, p, prof["lon"], prof["lat"]), t, p)
    out = np.array([np.interp(d, z, theta) if z[0] <= d <= z[-1] else nan for d in DEPTH])
    if z[0] - DEPTH[0] <= surface_within_m and surface_within_m > 0:
        out[0] = theta[0]
    return out


@pytest.fixture()
def argo_set(tmp_path: Path) -> dict:
    folder = tmp_path / "patches"
    folder.mkdir()
    files, rows = [], []
    for period, x0s in (("2015-01", [0, 8]), ("2015-02", [0])):
        files.append(str(folder / f"{period}.npz"))
        rows += [{"patch_id": pid, "period": period, "split": "train"}
                 for pid in _patch_file(Path(files[-1]), period, x0s)]
    pd.DataFrame(rows).to_parquet(folder / "index.parquet")
    write_json(folder / "stats.json", STATS)
    argo = write_argo_prof(tmp_path / "hand_prof.nc", PROFILES)
    cfg = {"mode": "argo_profiles", "seed": 0, "argo_paths": [str(argo)], "surface_within_m": 10.0,
           "salinity_fallback": 35.0, "min_observed_pixels": 1}
    return {"index": folder / "index.parquet", "stats": folder / "stats.json", "files": files, "cfg": cfg,
            "out": tmp_path / "shards"}


def _write(argo_set: dict, name: str, **cfg: object) -> Path:
    out = argo_set["out"] / name
    write_split_shards(argo_set["index"], argo_set["stats"], argo_set["files"], name, {**argo_set["cfg"], **cfg},
                       "train", 4, out)
    return out


def test_argo_profiles_shards_hold_the_observations_not_the_truth(argo_set: dict) -> None:
    out = _write(argo_set, "argoprof")
    arrays, manifest = load_arrays(out), verify_shards(out)
    # the January patch x=8 has no profile: dropped (min_observed_pixels 1)
    assert list(arrays["patch_id"]) == ["2015-01_y00000_x00000", "2015-02_y00000_x00000"]
    theta = {k: _expected_theta(k) for k in range(5)}
    a = arrays["x_valid"].astype(bool)
    # per level: level 0 at three January cells, level 1 only at (3, 2) (P3 too shallow, P5 below the sea floor)
    assert [tuple(map(tuple, np.argwhere(a[0, c]))) for c in (0, 1)] == [((3, 2), (5, 6), (7, 4)), ((3, 2),)]
    assert [tuple(map(tuple, np.argwhere(a[1, c]))) for c in (0, 1)] == [((3, 2),), ((3, 2),)]
    expected = np.full((2, 2, S, S), nan)
    expected[0, :, 3, 2] = (theta[0] + theta[1]) / 2
    expected[0, 0, 5, 6], expected[0, 0, 7, 4] = theta[2][0], theta[4][0]
    expected[1, :, 3, 2] = theta[3]
    mean, std = np.array(STATS["mean"])[None, :, None, None], np.array(STATS["std"])[None, :, None, None]
    np.testing.assert_allclose(arrays["x"][a], ((expected - mean) / std)[a], rtol=1e-6)
    assert np.all(arrays["x"][~a] == 0)
    truth = np.stack([_truth("2015-01"), _truth("2015-02")])
    assert np.abs(arrays["x"][a] - ((truth - mean) / std)[a]).min() > 0.1  # not the truth
    np.testing.assert_allclose((arrays["y"] * std + mean)[arrays["y_valid"].astype(bool)],
                               truth[np.isfinite(truth)], rtol=1e-6)
    count = arrays["obs_count"]
    assert count.dtype == np.uint16 and count.sum() == 2 + 2 + 1 + 1 + 1 + 1
    assert count[0, 0, 3, 2] == count[0, 1, 3, 2] == 2 and count[0, 0, 5, 6] == 1 and count[0, 1, 7, 4] == 0
    # obs - truth per level at A, in degC
    d = (expected - truth)[a.reshape(expected.shape)]
    level = np.broadcast_to(np.arange(2)[None, :, None, None], a.shape)[a]
    stat = manifest["obs_minus_truth"]
    assert stat["depth"] == pytest.approx(DEPTH) and stat["n"] == [4, 2]
    np.testing.assert_allclose(stat["mean"], [d[level == c].mean() for c in (0, 1)], rtol=1e-6)
    np.testing.assert_allclose(stat["std"], [d[level == c].std() for c in (0, 1)], rtol=1e-5)
    assert manifest["argo_profiles"] == {
        "profiles_read": 7, "profiles_in_months": 6, "profiles_in_patches": 5, "patches_dropped": 1,
        "min_observed_pixels": 1, "salinity_levels": {"measured": 13, "profile": 1, "constant": 2},
        "observations_outside_valid": [0, 1],
    }
    assert manifest["has_obs_count"] is True and manifest["mask"]["mode"] == "argo_profiles"
    ds = ShardDataset(out)
    item = ds[1]
    assert "obs_count" not in item and np.array_equal(item["x"].numpy(), arrays["x"][1])


def test_argo_profiles_options_surface_rule_and_min_observed_pixels(argo_set: dict) -> None:
    arrays = load_arrays(_write(argo_set, "nosurface", surface_within_m=0.0))
    # every float starts below 0.494 m: without the surface rule level 0 is never observed
    assert arrays["x_valid"][:, 0].sum() == 0 and arrays["x_valid"][:, 1].sum() == 2
    arrays = load_arrays(_write(argo_set, "three", min_observed_pixels=3))
    assert list(arrays["patch_id"]) == ["2015-01_y00000_x00000"]  # 3 observed cells; February has 1
    with pytest.raises(NoPatchesError) as error:
        _write(argo_set, "many", min_observed_pixels=4)
    for fragment in ("'many'", "'train'", "none of its 3 patches", "of the 7 profiles", "6 fall in", "5 inside",
                     "scenarios.many.min_observed_pixels", "argo_paths"):
        assert fragment in str(error.value)
    assert not (argo_set["out"] / "many").exists()


def test_mask_modes_write_no_obs_count(argo_set: dict) -> None:
    out = argo_set["out"] / "px"
    write_split_shards(argo_set["index"], argo_set["stats"], argo_set["files"], "px",
                       {"mode": "pixel", "fraction": 0.5, "seed": 0}, "train", 4, out)
    manifest = read_manifest(out)
    assert manifest["has_obs_count"] is False and "obs_minus_truth" not in manifest and manifest["n"] == 3
    assert "obs_count" not in load_arrays(out) and not list(out.rglob("obs_count.npy"))
    assert len(ShardDataset(out)) == 3


def test_time_index_periods_are_refused(argo_set: dict, tmp_path: Path) -> None:
    folder = tmp_path / "tidx"
    folder.mkdir()
    ids = _patch_file(folder / "t0000.npz", "2015-01", [0])
    pd.DataFrame([{"patch_id": ids[0], "period": "t0000", "split": "train"}]).to_parquet(folder / "index.parquet")
    with pytest.raises(DataError, match=r"t0000.*time index.*YYYY-MM"):
        write_split_shards(folder / "index.parquet", argo_set["stats"], [str(folder / "t0000.npz")], "a",
                           argo_set["cfg"], "train", 4, tmp_path / "out")


# --- config --------------------------------------------------------------------------------


def test_config_argo_profiles_keys_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = validate_config({"scenarios": {"real": {"mode": "argo_profiles", "argo_paths": "argo/*_prof.nc"},
                                            "px": {"mode": "pixel", "fraction": 0.5}}})
    real, px = config["scenarios"]["real"], config["scenarios"]["px"]
    assert (real["surface_within_m"], real["salinity_fallback"], real["min_observed_pixels"]) == (10.0, 35.0, 1)
    assert "fraction" not in real and "surface_within_m" not in px  # other modes' params are unchanged
    cases = [
        ({"mode": "argo_profiles"}, "'scenarios.a.argo_paths'"),
        ({"mode": "argo_profiles", "argo_paths": "x", "fraction": 0.5}, "'scenarios.a.fraction'"),
        ({"mode": "tracks", "fraction": 0.5, "min_observed_pixels": 2}, "scenarios.a.min_observed_pixels"),
        ({"mode": "pixel"}, "'fraction' is a required property for mode 'pixel'"),
        ({"mode": "argo_profiles", "argo_paths": "x", "min_observed_pixels": 0}, "scenarios.a.min_observed_pixels"),
    ]
    for scenario, fragment in cases:
        with pytest.raises(ConfigError) as error:
            validate_config({"scenarios": {"a": scenario}})
        assert fragment in str(error.value), str(error.value)
    # the Argo files of an argo_profiles scenario are inputs of make_shards (globs expanded at start)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "argo").mkdir()
    (tmp_path / "argo" / "1_prof.nc").write_bytes(b"x")
    assert user_file_sets(config) == {"scenarios.real.argo_paths": ["argo/1_prof.nc"]}
