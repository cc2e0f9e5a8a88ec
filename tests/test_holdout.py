"""Leave-floats-out validation: the float split, the holdout shards (no withheld value in x), the samples
netCDF carrying them, and score_holdout / score_references by hand."""

from __future__ import annotations

import json
from pathlib import Path

import gsw
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from data_helpers import write_argo_prof
from depthdif.config import validate_config
from depthdif.data.holdout import holdout_platforms
from depthdif.data.occlusion import write_split_shards
from depthdif.errors import ConfigError, DataError
from depthdif.eval.baselines import run_baseline
from depthdif.eval.holdout import (
    HOLDOUT_COLUMNS,
    Cells,
    bootstrap,
    gather_holdout,
    holdout_markdown,
    monthly_climatology,
    score_holdout,
    score_references,
)
from depthdif.eval.scoring import write_scores
from depthdif.io import write_json
from depthdif.params import holdout_scenarios, scenario_params
from depthdif.samples import HOLDOUT_ATTR, open_samples, read_holdout, write_samples
from depthdif.shards import Holdout, load_arrays, load_holdout, read_manifest, verify_shards

nan = np.nan

# --- the float split ---------------------------------------------------------------------------


def test_holdout_platforms_never_puts_a_float_on_both_sides() -> None:
    for n_floats in (2, 3, 7, 40):
        platforms = [f"69{k:05d}" for k in range(n_floats)]
        for share in (0.01, 0.1, 0.25, 0.5, 0.9, 0.99):
            for seed in range(25):
                withheld = holdout_platforms(platforms, share, seed)
                kept = set(platforms) - withheld
                assert withheld <= set(platforms) and not withheld & kept
                assert withheld and kept  # at least one on each side
                assert len(withheld) == min(max(int(np.floor(share * n_floats + 0.5)), 1), n_floats - 1)
                # determinism: the same floats whatever the order or repetition of the input
                assert holdout_platforms(platforms[::-1] + platforms[:3], share, seed) == withheld


def test_holdout_platforms_depends_on_the_seed_and_is_off_at_zero() -> None:
    platforms = [str(k) for k in range(100)]
    draws = {frozenset(holdout_platforms(platforms, 0.2, seed)) for seed in range(10)}
    assert len(draws) == 10 and all(len(d) == 20 for d in draws)
    assert holdout_platforms(platforms, 0.0, 3) == set() and holdout_platforms(["1"], 0.0, 3) == set()
    # a float's fate does not depend on any split: the same call gives the same set
    assert holdout_platforms(platforms, 0.2, 4) == holdout_platforms(list(reversed(platforms)), 0.2, 4)


def test_holdout_platforms_errors_name_the_key() -> None:
    with pytest.raises(DataError, match=r"scenarios.real.holdout_floats.*1 float.*at least 2"):
        holdout_platforms(["6901"], 0.3, 0, where="scenarios.real.holdout_floats")
    with pytest.raises(ConfigError, match="holdout_floats"):
        holdout_platforms(["1", "2"], 1.0, 0)


def test_config_holdout_keys() -> None:
    config = validate_config({"scenarios": {
        "real": {"mode": "argo_profiles", "argo_paths": "argo/*_prof.nc"},
        "cv": {"mode": "argo_profiles", "argo_paths": "argo/*_prof.nc", "holdout_floats": 0.2, "holdout_seed": 3},
        "px": {"mode": "pixel", "fraction": 0.5}}})
    real, cv, px = (config["scenarios"][k] for k in ("real", "cv", "px"))
    assert (real["holdout_floats"], real["holdout_seed"]) == (0.0, 0) and "holdout_floats" not in px
    # off: the shards' params are those of a scenario without the keys (no rerun of existing shards)
    assert "holdout_floats" not in scenario_params(config, "real") and "holdout_seed" not in scenario_params(
        config, "real")
    assert scenario_params(config, "cv")["holdout_floats"] == 0.2 and scenario_params(config, "cv")["holdout_seed"] == 3
    assert scenario_params(config, "px") == px
    assert holdout_scenarios(config) == ["cv"]
    for scenario, fragment in [
        ({"mode": "tracks", "fraction": 0.5, "holdout_floats": 0.2}, "scenarios.a.holdout_floats"),
        ({"mode": "argo_profiles", "argo_paths": "x", "holdout_floats": 1.0}, "scenarios.a.holdout_floats"),
        ({"mode": "argo_profiles", "argo_paths": "x", "holdout_floats": -0.1}, "scenarios.a.holdout_floats"),
    ]:
        with pytest.raises(ConfigError) as error:
            validate_config({"scenarios": {"a": scenario}})
        assert fragment in str(error.value), str(error.value)


# --- shards from hand-made profiles -------------------------------------------------------------

S = 8
DEPTH = [0.494, 47.37]
STATS = {"mean": [15.0, 12.0], "std": [2.0, 3.0], "eo_mean": None, "eo_std": None, "depth": DEPTH,
         "n_patches": 1, "split": "train"}
MONTH_START = {"2015-01": 1420070400, "2015-02": 1422748800}
LAT = 40.0 + 0.25 * np.arange(S)
#: (period, x0, split) of the patches; Jan x0=16 has only a withheld float (left out: no kept observation)
PATCHES = [("2015-01", 0, "train"), ("2015-01", 8, "test"), ("2015-01", 16, "test"), ("2015-02", 0, "test")]
KEPT, WITHHELD = {"1", "3"}, {"2", "4"}


def _truth(period: str) -> np.ndarray:
    rows, cols = np.mgrid[:S, :S]
    y = np.stack([20.0 - 0.1 * rows + (period == "2015-02"), 14.0 + 0.05 * cols]).astype(np.float32)
    y[:, 0, 0] = np.nan  # land
    y[1, 7, :] = np.nan  # below the sea floor at level 1
    return y


def _cell(row: int, col: int, x0: int) -> dict[str, float]:
    return {"lat": 40.0 + 0.25 * row + 0.02, "lon": -30.0 + 0.25 * (x0 + col) - 0.03}


def _prof(platform: str, cycle: int, day: str, row: int, col: int, x0: int, pres: list[float],
          temp: list[float]) -> dict:
    return {"platform": platform, "cycle": cycle, "time": day, **_cell(row, col, x0), "pres": pres, "temp": temp,
            "psal": [35.0] * len(pres)}


#: name -> profile; floats 1 and 3 are kept, 2 and 4 withheld (the seed is searched for below)
PROFILES = {
    # Jan, train patch x0=0
    "a": _prof("1", 1, "2015-01-05T00", 3, 2, 0, [5, 60], [18, 12]),
    "b": _prof("2", 1, "2015-01-07T00", 3, 2, 0, [5, 60], [17, 11]),  # the kept float's cell: not scored
    "c": _prof("2", 2, "2015-01-17T00", 5, 6, 0, [5, 60], [16, 10]),
    "d": _prof("3", 1, "2015-01-09T00", 1, 1, 0, [5, 60], [19, 13]),
    "e": _prof("4", 1, "2015-01-11T00", 7, 4, 0, [5, 60], [15, 9]),  # level 1 below the sea floor
    # Jan, test patch x0=8; g and h (two withheld floats) share a cell; g observes level 0 only
    "f": _prof("3", 2, "2015-01-19T00", 2, 1, 8, [5, 60], [18.5, 12.5]),
    "g": _prof("4", 2, "2015-01-21T00", 4, 5, 8, [4, 25], [16.5, 15.5]),
    "h": _prof("2", 3, "2015-01-27T00", 4, 5, 8, [5, 60], [17.5, 11.5]),
    # Jan, test patch x0=16: only a withheld float
    "l": _prof("4", 4, "2015-01-29T00", 2, 3, 16, [5, 60], [16, 10]),
    # Feb, test patch x0=0
    "i": _prof("1", 2, "2015-02-05T00", 3, 2, 0, [5, 60], [10, 8]),
    "j": _prof("4", 3, "2015-02-07T00", 2, 2, 0, [5, 60], [12, 9]),
    # outside every patch
    "k": _prof("2", 4, "2015-01-12T00", 20, 2, 0, [5, 60], [9, 7]),
}


def _theta(name: str) -> np.ndarray:
    """θ of a profile on DEPTH with gsw and np.interp (the surface rule: the shallowest value)."""
    prof = PROFILES[name]
    p, t = np.array(prof["pres"], float), np.array(prof["temp"], float)
    z = -gsw.z_from_p(p, prof["lat"])
    theta = gsw.pt0_from_t(gsw.SA_from_SP(np.full(p.size, 35.0), p, prof["lon"], prof["lat"]), t, p)
    out = np.array([np.interp(d, z, theta) if z[0] <= d <= z[-1] else nan for d in DEPTH])
    out[0] = theta[0] if z[0] - DEPTH[0] <= 10.0 else out[0]
    return out


def _seed() -> int:
    """A holdout_seed that withholds floats 2 and 4 of 1..4 at share 0.5."""
    return next(s for s in range(1000) if holdout_platforms(["1", "2", "3", "4"], 0.5, s) == WITHHELD)


@pytest.fixture()
def argo_set(tmp_path: Path) -> dict:
    folder = tmp_path / "patches"
    folder.mkdir()
    rows, files = [], []
    for period in ("2015-01", "2015-02"):
        x0s = [x0 for p, x0, _ in PATCHES if p == period]
        ids = [f"{period}_y00000_x{x0:05d}" for x0 in x0s]
        y = np.stack([_truth(period)] * len(x0s))
        np.savez(folder / f"{period}.npz", y=y, lat=np.tile(LAT.astype(np.float32), (len(x0s), 1)),
                 lon=np.stack([-30.0 + 0.25 * (x0 + np.arange(S)) for x0 in x0s]).astype(np.float32),
                 y0=np.zeros(len(x0s), np.int32), x0=np.array(x0s, np.int32),
                 time=np.full(len(x0s), MONTH_START[period], np.int64), patch_id=np.array(ids, "<U64"),
                 nodata_fraction=np.isnan(y).mean(axis=(1, 2, 3)).astype(np.float32),
                 depth=np.array(DEPTH, np.float32))
        files.append(str(folder / f"{period}.npz"))
        rows += [{"patch_id": pid, "period": period, "split": split}
                 for pid, (_, _, split) in zip(ids, [p for p in PATCHES if p[0] == period])]
    pd.DataFrame(rows).to_parquet(folder / "index.parquet")
    write_json(folder / "stats.json", STATS)
    every = write_argo_prof(tmp_path / "all_prof.nc", list(PROFILES.values()))
    kept = write_argo_prof(tmp_path / "kept_prof.nc", [p for p in PROFILES.values() if p["platform"] in KEPT])
    cfg = {"mode": "argo_profiles", "seed": 0, "argo_paths": [str(every)], "surface_within_m": 10.0,
           "salinity_fallback": 35.0, "min_observed_pixels": 1, "holdout_floats": 0.5, "holdout_seed": _seed()}
    return {"index": folder / "index.parquet", "stats": folder / "stats.json", "files": files, "cfg": cfg,
            "kept_paths": [str(kept)], "out": tmp_path / "shards"}


def _write(argo_set: dict, name: str, split: str, **cfg: object) -> Path:
    out = argo_set["out"] / name / split
    write_split_shards(argo_set["index"], argo_set["stats"], argo_set["files"], name, {**argo_set["cfg"], **cfg},
                       split, 4, out)
    return out


def test_no_withheld_value_reaches_x(argo_set: dict) -> None:
    for split in ("train", "test"):
        held = load_arrays(_write(argo_set, "cv", split))
        # the same shards from a file of the kept floats alone, without a holdout: x, A, obs_count identical
        alone = load_arrays(_write(argo_set, "kept", split, argo_paths=argo_set["kept_paths"], holdout_floats=0.0))
        assert list(held["patch_id"]) == list(alone["patch_id"])
        for name in ("x", "x_valid", "obs_count", "y", "y_valid"):
            np.testing.assert_array_equal(held[name], alone[name], err_msg=f"{split} {name}")
        assert "holdout" not in alone and set(held) - set(alone) == {"holdout", "holdout_valid", "holdout_float"}


def test_every_withheld_profile_is_in_holdout(argo_set: dict) -> None:
    train, test = _write(argo_set, "cv", "train"), _write(argo_set, "cv", "test")
    mt, ms = verify_shards(train), verify_shards(test)
    for manifest in (mt, ms):
        hold = manifest["holdout"]
        assert manifest["has_holdout"] is True
        # the same floats withheld in every split; no float on both sides
        assert hold["platforms_withheld"] == sorted(WITHHELD) and hold["platforms_kept"] == sorted(KEPT)
        assert (hold["floats_withheld"], hold["floats_kept"], hold["profiles_withheld"]) == (2, 2, 8)
        assert hold["share"] == 0.5 and hold["seed"] == argo_set["cfg"]["holdout_seed"]
    theta = {k: _theta(k) for k in PROFILES}
    mean, std = np.array(STATS["mean"]), np.array(STATS["std"])

    def degc(arrays: dict, i: int, c: int, r: int, col: int) -> float:
        return float(arrays["holdout"][i, c, r, col] * std[c] + mean[c])

    # train: b shares the kept float's cell (3, 2): not scored, x there is a's alone; c both levels; e level 0
    tr = load_arrays(train)
    hv = tr["holdout_valid"].astype(bool)
    assert [tuple(map(tuple, np.argwhere(hv[0, c]))) for c in (0, 1)] == [((5, 6), (7, 4)), ((5, 6),)]
    for c in (0, 1):
        assert degc(tr, 0, c, 5, 6) == pytest.approx(theta["c"][c], abs=1e-5)
        assert tr["x"][0, c, 3, 2] * std[c] + mean[c] == pytest.approx(theta["a"][c], abs=1e-5)
    assert degc(tr, 0, 0, 7, 4) == pytest.approx(theta["e"][0], abs=1e-5)
    assert tr["holdout_float"][0, 0, 5, 6] == 0 and tr["holdout_float"][0, 0, 7, 4] == 1  # "2", "4"
    assert np.all(tr["holdout"][~hv] == 0) and np.all(tr["holdout_float"][~hv] == -1)
    assert not (hv & tr["x_valid"].astype(bool)).any()
    expected = {"profiles_withheld_in_patches": 3, "profiles_scored": [2, 1], "profiles_scored_any": 2,
                "floats_scored": 2, "cells": [2, 1], "cells_shared_with_kept": [1, 1], "cells_outside_valid": [0, 1]}
    assert {k: mt["holdout"][k] for k in expected} == expected

    # test: patch x0=16 (only float 4) is left out; g and h share (4, 5): level 0 their mean, the first float
    ts = load_arrays(test)
    assert list(ts["patch_id"]) == ["2015-01_y00000_x00008", "2015-02_y00000_x00000"]
    hv = ts["holdout_valid"].astype(bool)
    assert [tuple(map(tuple, np.argwhere(hv[i, c]))) for i in (0, 1) for c in (0, 1)] == [
        ((4, 5),), ((4, 5),), ((2, 2),), ((2, 2),)]
    assert degc(ts, 0, 0, 4, 5) == pytest.approx((theta["g"][0] + theta["h"][0]) / 2, abs=1e-5)
    assert np.isnan(theta["g"][1]) and degc(ts, 0, 1, 4, 5) == pytest.approx(theta["h"][1], abs=1e-5)
    assert ts["holdout_float"][0, 0, 4, 5] == ts["holdout_float"][0, 1, 4, 5] == 0  # "2" < "4"
    for c in (0, 1):
        assert degc(ts, 1, c, 2, 2) == pytest.approx(theta["j"][c], abs=1e-5)
    assert ts["holdout_float"][1, 0, 2, 2] == 1
    hold = ms["holdout"]
    scored = (hold["profiles_withheld_in_patches"], hold["profiles_scored"], hold["profiles_scored_any"])
    assert scored == (3, [3, 2], 3)
    assert (hold["cells"], hold["cells_shared_with_kept"], hold["floats_scored"]) == ([2, 2], [0, 0], 2)
    assert ms["argo_profiles"]["patches_dropped"] == 1

    got = load_holdout(test)
    assert isinstance(got, Holdout) and np.array_equal(got.valid, hv)
    assert got.values[0, 1, 4, 5] == pytest.approx(theta["h"][1], abs=1e-5) and np.isnan(got.values[~hv]).all()


def test_scenarios_without_holdout_have_no_holdout_arrays(argo_set: dict) -> None:
    out = _write(argo_set, "plain", "test", holdout_floats=0.0)
    manifest = read_manifest(out)
    assert manifest["has_holdout"] is False and "holdout" not in manifest
    assert not list(out.rglob("holdout*.npy")) and load_holdout(out) is None
    # a config without the keys at all (written before they existed) gives the same shards
    cfg = {k: v for k, v in argo_set["cfg"].items() if k not in ("holdout_floats", "holdout_seed")}
    old = argo_set["out"] / "old"
    write_split_shards(argo_set["index"], argo_set["stats"], argo_set["files"], "plain", cfg, "test", 4, old)
    for name, arr in load_arrays(out).items():
        np.testing.assert_array_equal(arr, load_arrays(old)[name])
    px = argo_set["out"] / "px"
    write_split_shards(argo_set["index"], argo_set["stats"], argo_set["files"], "px",
                       {"mode": "pixel", "fraction": 0.5, "seed": 0}, "test", 4, px)
    assert read_manifest(px)["has_holdout"] is False and load_holdout(px) is None


def test_holdout_needs_two_floats(argo_set: dict, tmp_path: Path) -> None:
    one = write_argo_prof(tmp_path / "one_prof.nc", [p for p in PROFILES.values() if p["platform"] == "1"])
    with pytest.raises(DataError, match=r"scenarios.one.holdout_floats.*at least 2"):
        _write(argo_set, "one", "test", argo_paths=[str(one)])


# --- through the samples netCDF to the scores ---------------------------------------------------


def test_baseline_samples_carry_the_holdout_and_references_score_by_hand(argo_set: dict, tmp_path: Path) -> None:
    train, test = _write(argo_set, "cv", "train"), _write(argo_set, "cv", "test")
    nc = tmp_path / "idw.nc"
    run_baseline("idw", test, train, {"power": 2.0, "neighbours": 4}, scenario="cv", out_nc=nc)
    ds = open_samples(nc)
    got, want = read_holdout(ds), load_holdout(test)
    assert got is not None and want is not None
    assert np.array_equal(got.valid, want.valid) and np.array_equal(got.float_id, want.float_id)
    np.testing.assert_allclose(got.values[got.valid], want.values[want.valid], rtol=1e-6)
    # the counts as an attribute, the withheld platforms as a variable, the kept ones left out
    assert got.info == {k: v for k, v in want.info.items() if k != "platforms_kept"}
    assert json.loads(ds.attrs[HOLDOUT_ATTR]) == {k: v for k, v in got.info.items() if k != "platforms_withheld"}
    assert ds["holdout_platform"].values.tolist() == ["2", "4"]
    assert ds["holdout"].attrs["units"] == "degC"

    scores = score_holdout(nc, scenario="cv", method="idw")
    assert list(scores.columns) == HOLDOUT_COLUMNS and list(scores["depth"]) == [0.494, 47.37, "all"]
    assert scores["n_cells"].tolist() == [2, 2, 4] and scores["n_floats"].tolist() == [2, 2, 2]
    assert scores["n_profiles"].tolist() == [3, 2, 3] and (scores["forecast"] == "deterministic").all()
    cells = Cells.of(want)
    pred = ds["thetao_pred"].values.astype(np.float64)[want.valid]
    err = pred - cells.obs
    row = scores.iloc[2]
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean(err**2))) and row["bias"] == pytest.approx(err.mean())
    assert row["crps"] == pytest.approx(np.abs(err).mean()) == row["mae"]

    ref = score_references(test, train, scenario="cv")
    truth = ref[ref["method"] == "truth"].set_index(ref[ref["method"] == "truth"]["depth"].astype(str))
    # truth at the cells: Jan x0=8 (4, 5), Feb (2, 2); level 0: 20 - 0.1 row (+1 in Feb), level 1: 14 + 0.05 col
    at = {0: np.array([19.6, 20.8]), 1: np.array([14.25, 14.1])}
    theta = {k: _theta(k) for k in ("g", "h", "j")}
    obs = {0: np.array([(theta["g"][0] + theta["h"][0]) / 2, theta["j"][0]]),
           1: np.array([theta["h"][1], theta["j"][1]])}
    for c, label in ((0, "0.494"), (1, "47.37")):
        d = at[c] - obs[c]
        assert truth.loc[label, "bias"] == pytest.approx(d.mean(), abs=1e-5)
        assert truth.loc[label, "rmse"] == pytest.approx(np.sqrt(np.mean(d**2)), abs=1e-5)
    # climatology: January from the one train patch, February (no train patch) the all-months stats
    mean, sd = monthly_climatology(train)
    t = _truth("2015-01").astype(np.float64)
    for c in (0, 1):
        assert mean[0, c] == pytest.approx(np.nanmean(t[c]), rel=1e-5) and sd[0, c] == pytest.approx(
            np.nanstd(t[c]), rel=1e-4)
        assert (mean[1, c], sd[1, c]) == (STATS["mean"][c], STATS["std"][c])
    clim = ref[(ref["method"] == "climatology") & (ref["depth"] == 0.494)].iloc[0]
    mu, sigma = np.array([mean[0, 0], mean[1, 0]]), np.array([sd[0, 0], sd[1, 0]])
    z = (obs[0] - mu) / sigma
    crps = sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert clim["forecast"] == "gaussian" and clim["crps"] == pytest.approx(crps.mean(), rel=1e-5)
    assert clim["bias"] == pytest.approx((mu - obs[0]).mean(), rel=1e-5)

    # gathered: one table and its markdown
    write_scores(scores, tmp_path / "idw.holdout.csv")
    write_scores(ref, tmp_path / "reference.holdout.csv")
    table = gather_holdout([tmp_path / "idw.holdout.csv", tmp_path / "reference.holdout.csv"])
    assert table["method"].unique().tolist() == ["idw", "truth", "climatology"] and len(table) == 9
    text = holdout_markdown(table)
    assert "## cv" in text and "2 withheld floats, 3 withheld profiles, 4 cells" in text and "climatology" in text


def test_score_holdout_refuses_a_file_without_holdout(tmp_path: Path) -> None:
    nc = _hand_samples(tmp_path / "plain.nc", "deterministic", holdout=False)
    with pytest.raises(DataError, match=r"plain.nc.*no withheld floats.*holdout_floats"):
        score_holdout(nc, scenario="s", method="idw")


# --- score_holdout by hand on a tiny samples file -----------------------------------------------

#: withheld cells (level, row, col, float, observation): float 0 at two levels of one cell, float 1 once
CELLS = [(0, 0, 0, 0, 10.0), (1, 0, 0, 0, 5.0), (0, 2, 2, 1, 12.0)]
OFFSET = np.array([1.0, -1.0, 3.0])  # prediction - observation at those cells


def _hand_samples(path: Path, kind: str, holdout: bool = True, one_float: bool = False) -> Path:
    c, h, w = 2, 4, 4
    truth = np.full((1, c, h, w), 8.0)
    valid = np.ones(truth.shape, bool)
    values, hv, fid = np.full(truth.shape, nan), np.zeros(truth.shape, bool), np.full(truth.shape, -1, np.int32)
    pred = truth.copy()
    for (lev, r, col, f, v), off in zip(CELLS, OFFSET):
        values[0, lev, r, col], hv[0, lev, r, col], fid[0, lev, r, col] = v, True, 0 if one_float else f
        pred[0, lev, r, col] = v + off
    members = std = None
    attrs = {"method": "m", "scenario": "s", "checkpoint": "", "config_hash": "x"}
    if kind == "ensemble":  # members pred - 1 and pred + 1
        members = np.stack([pred - 1.0, pred + 1.0], axis=1)
    elif kind == "gaussian":
        std = np.full(truth.shape, 2.0)
        attrs["predictive"] = "gaussian"
    info = {"platforms_withheld": ["a", "b"], "profiles_scored": [2, 1], "profiles_scored_any": 2}
    write_samples(
        path, pred=pred, truth=truth, observed=np.zeros(truth.shape, bool), valid=valid,
        land=np.zeros((1, h, w), bool), depth=np.array([0.494, 47.37], np.float32), lat=np.arange(4.0)[None],
        lon=np.arange(4.0)[None], time=np.array([1420070400]), patch_id=np.array(["p0"]), members=members, std=std,
        attrs=attrs, holdout=Holdout(values, hv, fid, info) if holdout else None,
    )
    return path


def test_score_holdout_by_hand(tmp_path: Path) -> None:
    det = score_holdout(_hand_samples(tmp_path / "det.nc", "deterministic"), scenario="s", method="idw")
    level0, level1, overall = (det.iloc[k] for k in range(3))
    assert (level0["n_cells"], level0["n_floats"], level0["n_profiles"]) == (2, 2, 2)
    assert (level1["n_cells"], level1["n_floats"], level1["n_profiles"]) == (1, 1, 1)
    assert (overall["n_cells"], overall["n_floats"], overall["n_profiles"]) == (3, 2, 2)
    assert level0["rmse"] == pytest.approx(np.sqrt(5.0)) and level0["bias"] == pytest.approx(2.0)
    assert level1["rmse"] == pytest.approx(1.0) and level1["bias"] == pytest.approx(-1.0)
    assert overall["rmse"] == pytest.approx(np.sqrt(11.0 / 3)) and overall["bias"] == pytest.approx(1.0)
    assert overall["mae"] == pytest.approx(5.0 / 3) == overall["crps"]
    for _, row in det.iterrows():  # the interval holds the value
        for m in ("rmse", "bias", "mae", "crps"):
            assert row[f"{m}_lo"] - 1e-12 <= row[m] <= row[f"{m}_hi"] + 1e-12
    # one float at level 1: every resample is that float, the interval collapses
    assert level1["rmse_lo"] == level1["rmse_hi"] == level1["rmse"]
    assert level0["rmse_lo"] < level0["rmse_hi"]  # two floats: the resamples differ

    # fair CRPS of members pred -/+ 1 at errors 1, -1, 3: mean|e - y| - |e1 - e2| / 2 = 0, 0, 2
    ens = score_holdout(_hand_samples(tmp_path / "ens.nc", "ensemble"), scenario="s", method="standard")
    assert (ens["forecast"] == "ensemble").all()
    assert ens["crps"].tolist() == pytest.approx([1.0, 0.0, 2.0 / 3])
    assert ens["rmse"].tolist() == pytest.approx(det["rmse"].tolist())
    # Gaussian N(pred, 2²): the closed form
    gauss = score_holdout(_hand_samples(tmp_path / "g.nc", "gaussian"), scenario="s", method="oi")
    z = -OFFSET / 2.0
    crps = 2.0 * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert gauss["crps"].iloc[2] == pytest.approx(crps.mean()) and gauss["crps"].iloc[1] == pytest.approx(crps[1])

    # all cells of one float: every interval collapses onto the value
    one = score_holdout(_hand_samples(tmp_path / "one.nc", "deterministic", one_float=True), scenario="s", method="x")
    for m in ("rmse", "bias", "mae", "crps"):
        assert (one[f"{m}_lo"] == one[m]).all() and (one[f"{m}_hi"] == one[m]).all()
    assert one["n_floats"].tolist() == [1, 1, 1]


def test_bootstrap_resamples_floats_not_cells() -> None:
    # float 0: 50 cells of error +1, float 1: 50 cells of error -1. Resampling cells would give an interval
    # for the bias of about ±0.28; resampling the two floats gives bias -1, 0 or +1 (any mix of the two)
    float_id = np.repeat([0, 1], 50)
    err = np.where(float_id == 0, 1.0, -1.0)
    got = bootstrap(float_id, err, np.abs(err), n_boot=1000, seed=1)
    assert got["bias"][0] == 0.0 and got["bias"][1] == -1.0 and got["bias"][2] == 1.0
    assert got["rmse"] == (1.0, 1.0, 1.0)  # every cell has |error| 1
    # determinism
    assert bootstrap(float_id, err, np.abs(err), n_boot=1000, seed=1) == got


def test_predict_carries_the_holdout(tmp_path: Path) -> None:
    """A learned method's samples file carries the test shards' holdout arrays (the model never reads them)."""
    import torch

    from depthdif.inference import predict
    from depthdif.shards import ShardWriter, manifest_head
    from depthdif.training import train
    from training_helpers import OBJECTIVES, SAMPLE, model_cfg, splits, train_cfg

    torch.set_num_threads(1)
    folders = splits(tmp_path, n=4)
    train("unet", model_cfg(), OBJECTIVES["unet"], train_cfg(max_steps=1, val_every_n_steps=100), folders["train"],
          folders["val"], tmp_path / "unet", tmp_path / "state")
    # the test shards again, with one withheld observation per patch at a hidden valid cell
    arrays, manifest = load_arrays(folders["test"]), read_manifest(folders["test"])
    hv = np.zeros(arrays["y"].shape, bool)
    for i in range(len(hv)):
        r, col = np.argwhere(arrays["y_valid"][i, 0].astype(bool) & ~arrays["x_valid"][i, 0].astype(bool))[0]
        hv[i, 0, r, col] = True
    arrays |= {"holdout": np.where(hv, 0.5, 0.0).astype(np.float32), "holdout_valid": hv,
               "holdout_float": np.where(hv, np.arange(len(hv))[:, None, None, None] % 2, -1)}
    info = {"platforms_withheld": ["a", "b"], "profiles_scored": [4, 0], "profiles_scored_any": 4}
    folder = tmp_path / "held"
    writer = ShardWriter(folder, 2)
    writer.add(arrays)
    writer.finish(**manifest_head("tiny", "test", manifest["stats"], manifest["depth"], manifest["mask"]),
                  holdout=info)
    nc = tmp_path / "unet.nc"
    predict(tmp_path / "unet" / "model.ckpt", folder, SAMPLE, method="unet", scenario="tiny", out_nc=nc, device="cpu")
    got, want = read_holdout(open_samples(nc)), load_holdout(folder)
    assert got is not None and want is not None and got.info == info
    assert np.array_equal(got.valid, hv) and np.array_equal(got.float_id, want.float_id)
    np.testing.assert_allclose(got.values[hv], 0.5 * manifest["stats"]["std"][0] + manifest["stats"]["mean"][0],
                               rtol=1e-6)
    scores = score_holdout(nc, scenario="tiny", method="unet")
    assert scores["n_cells"].tolist() == [4, 0, 4] and scores["n_floats"].tolist() == [2, 0, 2]
    assert np.isnan(scores["rmse"].iloc[1]) and np.isfinite(scores["rmse"].iloc[2])
