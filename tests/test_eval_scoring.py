"""score_samples on hand-built netCDFs; summarize's pooled RMSE by hand; markdown table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from depthdif.errors import DataError
from depthdif.eval.scoring import (
    CALIBRATION_COLUMNS,
    SCORE_COLUMNS,
    gather_calibration,
    markdown_report,
    markdown_table,
    read_summary,
    score_file,
    score_samples,
    summarize,
    write_calibration,
    write_scores,
)
from depthdif.samples import PREDICTIVE_ATTR, write_samples
from eval_factory import write_tiny_samples


def hand_samples(path: Path, members: bool, gaussian: float | None = None) -> Path:
    """1 patch, 2 depths, 8x8; surface truth is a ramp 10..17 degC, deep = surface - 5.
    Observed: column 0. Hidden errors +1 (surface) and -2 (deep); deep row 0 is invalid.
    `gaussian`: std = that value, marked as a Gaussian predictive std (like oi)."""
    ramp = np.tile(np.arange(8.0), (8, 1)) + 10.0
    truth = np.stack([ramp, ramp - 5.0])[None]
    valid = np.ones(truth.shape, bool)
    valid[0, 1, 0, :] = False
    truth[~valid] = np.nan
    observed = np.zeros(truth.shape, bool)
    observed[..., 0] = True
    observed &= valid
    offset = np.array([1.0, -2.0])[None, :, None, None]
    pred = np.where(observed, truth, truth + offset)
    ens, std, attrs = None, None, {"method": "m", "scenario": "s", "checkpoint": "", "config_hash": "x"}
    if gaussian is not None:
        std = np.full(truth.shape, gaussian)
        attrs[PREDICTIVE_ATTR] = "gaussian"
    if members:  # members truth+1, truth+3 on hidden pixels -> mean truth+2
        ens = np.stack([truth + 1.0, truth + 3.0], axis=1)
        pred = ens.mean(axis=1)
    write_samples(
        path, pred=pred, truth=truth, observed=observed, valid=valid, land=np.zeros((1, 8, 8), bool),
        depth=np.array([0.494, 47.37], np.float32), lat=np.arange(8.0)[None], lon=np.arange(8.0)[None],
        time=np.array([1420070400]), patch_id=np.array(["p0"]), members=ens, std=std, attrs=attrs,
    )
    return path


def test_score_samples_by_hand(tmp_path: Path) -> None:
    df = score_samples(hand_samples(tmp_path / "det.nc", members=False), scenario="s", method="det")
    assert list(df.columns) == SCORE_COLUMNS and len(df) == 2
    assert df["depth"].tolist() == [0.494, 47.37]
    surface, deep = df.iloc[0], df.iloc[1]
    assert surface["n_hidden"] == 8 * 7 and deep["n_hidden"] == 7 * 7
    assert surface[["rmse", "mae", "bias"]].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert deep[["rmse", "mae", "bias"]].tolist() == pytest.approx([2.0, 2.0, -2.0])
    # data_range = 7 degC (ramp 10..17 over valid pixels) -> 20 log10(7) - 10 log10(mse)
    assert surface["psnr"] == pytest.approx(20 * np.log10(7.0))
    assert deep["psnr"] == pytest.approx(20 * np.log10(7.0) - 10 * np.log10(4.0))
    assert 0.0 < surface["ssim"] < 1.0
    # a point forecast: CRPS = MAE, no spread
    assert (df["forecast"] == "deterministic").all()
    assert df["crps"].tolist() == pytest.approx(df["mae"].tolist())
    assert df["spread_skill"].isna().all() and df["spread"].isna().all()
    _, calibration = score_file(tmp_path / "det.nc", scenario="s", method="det")
    assert list(calibration.columns) == CALIBRATION_COLUMNS and calibration.empty


def test_score_samples_ensemble_crps_and_spread_skill_by_hand(tmp_path: Path) -> None:
    df, calibration = score_file(hand_samples(tmp_path / "ens.nc", members=True), scenario="s", method="ens")
    assert (df["forecast"] == "ensemble").all()
    # members y+1, y+3: mean|e-y| = 2; fair: 1/2 sum|e_i-e_j| / (K(K-1)) = 1/2 * (2+2)/2 = 1 -> CRPS 1
    assert df["crps"].tolist() == pytest.approx([1.0, 1.0])
    # spread sqrt(2) * sqrt(3/2) = sqrt(3); RMSE of the mean = 2
    assert df["spread"].tolist() == pytest.approx([np.sqrt(3)] * 2)
    assert df["spread_skill"].tolist() == pytest.approx([np.sqrt(3) / 2] * 2)
    assert df["rmse"].tolist() == pytest.approx([2.0, 2.0])
    # both members above the truth at every hidden pixel: all in rank bin 0 (K = 2: 3 bins)
    rank = calibration[(calibration["table"] == "rank") & (calibration["depth"] == "all")]
    assert rank["bin"].tolist() == [0, 1, 2] and rank["n"].tolist() == [56 + 49, 0, 0]
    assert rank["share"].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert calibration[(calibration["table"] == "rank") & (calibration["depth"] == 47.37)]["n"].tolist() == [49, 0, 0]
    # one spread value: ten equal-count bins, each RMSE 2 / spread sqrt(3)
    spread = calibration[(calibration["table"] == "spread") & (calibration["depth"] == "all")]
    assert len(spread) == 10 and spread["n"].sum() == 105
    assert spread["ratio"].tolist() == pytest.approx([2 / np.sqrt(3)] * 10)
    assert set(calibration["depth"]) == {0.494, 47.37, "all"}


def test_score_samples_gaussian_closed_form_by_hand(tmp_path: Path) -> None:
    """A Gaussian forecast (oi's posterior): closed-form CRPS, spread/skill sigma / RMSE, PIT histogram."""
    path = hand_samples(tmp_path / "gauss.nc", members=False, gaussian=0.5)
    df, calibration = score_file(path, scenario="s", method="oi", rank_members=2)
    assert (df["forecast"] == "gaussian").all()

    def crps(err: float, sigma: float) -> float:  # Gneiting et al. (2005), z = (y - mu) / sigma = -err / sigma
        z = -err / sigma
        return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))

    assert df["crps"].tolist() == pytest.approx([crps(1.0, 0.5), crps(-2.0, 0.5)])
    assert df["spread"].tolist() == pytest.approx([0.5, 0.5])
    assert df["spread_skill"].tolist() == pytest.approx([0.5 / 1.0, 0.5 / 2.0])
    # PIT Phi(-2) = 0.02 (surface, forecast too warm) -> bin 0; Phi(4) (deep, too cold) -> bin 2; K+1 = 3 bins
    rank = calibration[(calibration["table"] == "rank") & (calibration["depth"] == "all")]
    assert rank["n"].tolist() == [56, 0, 49]
    # the default K without rank_members: 8 -> 9 bins
    _, default = score_file(path, scenario="s", method="oi")
    assert len(default[(default["table"] == "rank") & (default["depth"] == "all")]) == 9


def test_gaussian_std_must_be_finite_on_hidden_pixels(tmp_path: Path) -> None:
    path = hand_samples(tmp_path / "bad.nc", members=False, gaussian=float("nan"))
    with pytest.raises(DataError, match="thetao_std"):
        score_samples(path, scenario="s", method="oi")


def test_calibrated_gaussian_factory_file_scores_near_one(tmp_path: Path) -> None:
    path = write_tiny_samples(tmp_path / "oi.nc", method="oi", n=12, noise=0.5, gaussian=0.5)
    df, calibration = score_file(path, scenario="tiny", method="oi", rank_members=4)
    summary = summarize([write_frame(df, tmp_path / "oi.csv")])
    overall = summary[summary["depth"] == "all"].iloc[0]
    assert overall["forecast"] == "gaussian"
    assert overall["spread_skill"] == pytest.approx(1.0, abs=0.05)
    rank = calibration[(calibration["table"] == "rank") & (calibration["depth"] == "all")]
    np.testing.assert_allclose(rank["share"], 0.2, atol=0.03)
    # a Gaussian's CRPS is below its MAE (CRPS -> MAE as sigma -> 0)
    assert overall["crps"] < overall["mae"]


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    write_scores(df, path)
    return path


def test_score_samples_on_a_factory_file(tmp_path: Path) -> None:
    path = write_tiny_samples(tmp_path / "ambient.nc", method="ambient", members=4, n=3, channels=2, noise=0.5)
    df = score_samples(path, scenario="tiny", method="ambient")
    assert len(df) == 6 and df["patch_id"].nunique() == 3
    assert df["rmse"].between(0.2, 0.32).all()  # mean of 4 N(0, 0.5) members: error std 0.25
    assert df["crps"].notna().all() and (df["crps"] < df["mae"]).all()  # an ensemble beats its mean's MAE
    # members centred on the truth are over-dispersed: sqrt(5/4) * 0.5 / 0.25 = 2.24
    assert (df["forecast"] == "ensemble").all() and df["spread_skill"].between(1.8, 2.7).all()


def test_score_samples_names_the_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nc"
    bad.write_text("not a netcdf")
    with pytest.raises(DataError, match="broken.nc"):
        score_samples(bad, scenario="s", method="m")


def test_summarize_pools_over_hidden_pixels(tmp_path: Path) -> None:
    base = {"scenario": "s", "method": "idw", "forecast": "deterministic", "ssim": 0.5, "spread_skill": np.nan,
            "spread": np.nan, "n_observed": 2, "observed_rmse": 0.0, "jump": 1.0, "jump_truth": 1.0, "n_jump": 2}
    rows = [
        {**base, "patch_id": "a", "depth": 0.5, "n_hidden": 1, "rmse": 2.0, "mae": 2.0, "bias": 2.0, "psnr": 10.0},
        {**base, "patch_id": "b", "depth": 0.5, "n_hidden": 3, "rmse": 1.0, "mae": 1.0, "bias": -1.0, "psnr": 20.0},
        {**base, "patch_id": "a", "depth": 50.0, "n_hidden": 4, "rmse": 3.0, "mae": 3.0, "bias": 0.0, "psnr": 30.0},
        {**base, "patch_id": "b", "depth": 50.0, "n_hidden": 0, "rmse": np.nan, "mae": np.nan, "bias": np.nan,
         "psnr": np.nan},
    ]
    rows = [{**r, "crps": r["mae"]} for r in rows]
    write_scores(pd.DataFrame(rows)[SCORE_COLUMNS], tmp_path / "idw.csv")
    # an ensemble: CRPS n-weighted; spread/skill = pooled RMS spread / pooled RMSE
    ens = {**rows[0], "method": "standard", "forecast": "ensemble"}
    ens_rows = [{**ens, "n_hidden": 1, "rmse": 2.0, "crps": 1.0, "spread": 1.0, "spread_skill": 0.5},
                {**ens, "patch_id": "b", "n_hidden": 3, "rmse": 1.0, "crps": 0.2, "spread": 2.0, "spread_skill": 2.0}]
    write_scores(pd.DataFrame(ens_rows)[SCORE_COLUMNS], tmp_path / "standard.csv")
    summary = summarize([tmp_path / "idw.csv", tmp_path / "standard.csv"])
    idw = summary[summary["method"] == "idw"].set_index("depth")
    assert list(idw.index) == [0.5, 50.0, "all"]
    assert idw.loc[0.5, "rmse"] == pytest.approx(np.sqrt((1 * 4 + 3 * 1) / 4))
    assert idw.loc[0.5, "bias"] == pytest.approx((2 - 3) / 4)
    assert idw.loc[0.5, "psnr"] == pytest.approx(15.0)
    assert idw.loc["all", "rmse"] == pytest.approx(np.sqrt((4 + 3 + 4 * 9) / 8))
    assert idw.loc["all", "mae"] == pytest.approx((2 + 3 + 12) / 8)
    assert idw.loc["all", "crps"] == pytest.approx(idw.loc["all", "mae"])  # deterministic: CRPS = MAE
    assert idw.loc["all", "n_hidden"] == 8 and idw.loc["all", "n_rows"] == 3
    assert np.isnan(idw.loc["all", "spread_skill"]) and (idw["forecast"] == "deterministic").all()
    standard = summary[summary["method"] == "standard"].set_index("depth")
    assert len(standard) == 2 and standard.loc["all", "forecast"] == "ensemble"
    assert standard.loc["all", "crps"] == pytest.approx((1 * 1.0 + 3 * 0.2) / 4)
    rmse = np.sqrt((4 + 3) / 4)
    assert standard.loc["all", "spread_skill"] == pytest.approx(np.sqrt((1 + 3 * 4) / 4) / rmse)
    assert idw.loc["all", "observed_rmse"] == 0.0 and idw.loc["all", "jump_ratio"] == pytest.approx(1.0)

    write_scores(summary, tmp_path / "summary.csv")
    back = read_summary(tmp_path / "summary.csv")
    assert back["depth"].tolist()[:3] == ["0.5", "50.0", "all"] and np.isnan(back["depth_m"].iloc[2])
    table = markdown_table(summary)
    assert table.splitlines()[0].startswith("| scenario") and "| all " in table and "2.32" in table


def test_summarize_rejects_score_files_without_the_new_columns(tmp_path: Path) -> None:
    pd.DataFrame([{"scenario": "s", "method": "idw", "depth": 0.5, "rmse": 1.0}]).to_csv(tmp_path / "old.csv")
    with pytest.raises(DataError, match="rerun the score rule"):
        summarize([tmp_path / "old.csv"])


def test_markdown_report_shows_every_method(tmp_path: Path) -> None:
    files = {
        "idw": write_tiny_samples(tmp_path / "idw.nc", method="idw", noise=0.6),
        "oi": write_tiny_samples(tmp_path / "oi.nc", method="oi", noise=0.5, gaussian=0.5),
        "standard": write_tiny_samples(tmp_path / "standard.nc", method="standard", members=4, noise=0.5),
    }
    scores, cals = [], []
    for method, path in files.items():
        df, cal = score_file(path, scenario="tiny", method=method, rank_members=4)
        scores.append(write_frame(df, tmp_path / f"{method}.csv"))
        write_calibration(cal, tmp_path / f"{method}.calibration.csv")
        cals.append(tmp_path / f"{method}.calibration.csv")
    summary, calibration = summarize(scores), gather_calibration(cals)
    assert set(calibration["method"]) == {"oi", "standard"}  # idw: header only
    report = markdown_report(summary, calibration)
    assert "## Scores on hidden pixels" in report and "## CRPS, spread/skill and rank histograms" in report
    lines = {line.split("|")[2].strip(): line for line in report.splitlines()
             if line.startswith("| tiny ") and "|" in line and ("= MAE" in line or "CRPS" in line or "fair" in line
                                                             or "Gaussian" in line)}
    assert "= MAE" in lines["idw"] and "Gaussian closed form" in lines["oi"] and "fair ensemble" in lines["standard"]
    assert lines["standard"].count(" / ") == 1  # extreme bins against the uniform share
    assert "## Spread deciles" in report and report.count("| tiny ") >= 3 + 3 + 2


def test_summarize_without_inputs_is_an_error() -> None:
    with pytest.raises(DataError, match="no metrics CSV"):
        summarize([])


def test_neighbour_jump_flags_pasted_observations() -> None:
    """Observations written into a field that disagrees with them jump against their 8 neighbours;
    a smooth field through the same observations does not (the jump ratio of the no-dots goal)."""
    from depthdif.eval.metrics import neighbour_jump

    yy, xx = np.mgrid[0:16, 0:16].astype(float)
    truth = 0.1 * yy + 0.05 * xx
    observed = np.zeros((16, 16), bool)
    observed[4, 4] = observed[10, 11] = True
    valid = np.ones((16, 16), bool)
    pasted = np.where(observed, truth, truth.mean())  # level field + clamped observations
    j_true, n = neighbour_jump(truth, valid, observed)
    j_pasted, _ = neighbour_jump(pasted, valid, observed)
    assert n == 2 and j_true == pytest.approx(0.0, abs=1e-12)  # a plane has no jump
    assert j_pasted == pytest.approx(abs(truth[4, 4] - truth.mean()) + abs(truth[10, 11] - truth.mean()))
    # edge pixels (a missing neighbour) and invalid neighbours are left out
    observed[0, 0] = True
    valid[10, 12] = False
    assert neighbour_jump(pasted, valid, observed)[1] == 1
