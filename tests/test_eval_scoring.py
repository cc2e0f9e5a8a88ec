"""score_samples on hand-built netCDFs; summarize's pooled RMSE by hand; markdown table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depthdif.errors import DataError
from depthdif.eval.scoring import SCORE_COLUMNS, markdown_table, read_summary, score_samples, summarize, write_scores
from depthdif.samples import write_samples
from eval_factory import write_tiny_samples


def hand_samples(path: Path, members: bool) -> Path:
    """1 patch, 2 depths, 8x8; surface truth is a ramp 10..17 degC, deep = surface - 5.
    Observed: column 0. Hidden errors +1 (surface) and -2 (deep); deep row 0 is invalid."""
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
    ens = None
    if members:  # members truth+1, truth+3 on hidden pixels -> mean truth+2
        ens = np.stack([truth + 1.0, truth + 3.0], axis=1)
        pred = ens.mean(axis=1)
    write_samples(
        path, pred=pred, truth=truth, observed=observed, valid=valid, land=np.zeros((1, 8, 8), bool),
        depth=np.array([0.494, 47.37], np.float32), lat=np.arange(8.0)[None], lon=np.arange(8.0)[None],
        time=np.array([1420070400]), patch_id=np.array(["p0"]), members=ens,
        attrs={"method": "m", "scenario": "s", "checkpoint": "", "config_hash": "x"},
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
    assert df["crps"].isna().all() and df["spread_skill"].isna().all()


def test_score_samples_ensemble_crps_and_spread_skill_by_hand(tmp_path: Path) -> None:
    df = score_samples(hand_samples(tmp_path / "ens.nc", members=True), scenario="s", method="ens")
    # members y+1, y+3: mean|e-y| = 2, 1/2 mean|e_i-e_j| = 1/2 * (0+2+2+0)/4 -> CRPS 1.5
    assert df["crps"].tolist() == pytest.approx([1.5, 1.5])
    # spread sqrt(2) * sqrt(3/2) = sqrt(3); RMSE of the mean = 2
    assert df["spread_skill"].tolist() == pytest.approx([np.sqrt(3) / 2] * 2)
    assert df["rmse"].tolist() == pytest.approx([2.0, 2.0])


def test_score_samples_on_a_factory_file(tmp_path: Path) -> None:
    path = write_tiny_samples(tmp_path / "ambient.nc", method="ambient", members=4, n=3, channels=2, noise=0.5)
    df = score_samples(path, scenario="tiny", method="ambient")
    assert len(df) == 6 and df["patch_id"].nunique() == 3
    assert df["rmse"].between(0.2, 0.32).all()  # mean of 4 N(0, 0.5) members: error std 0.25
    assert df["crps"].notna().all() and (df["crps"] < df["mae"]).all()  # an ensemble beats its mean's MAE


def test_score_samples_names_the_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nc"
    bad.write_text("not a netcdf")
    with pytest.raises(DataError, match="broken.nc"):
        score_samples(bad, scenario="s", method="m")


def test_summarize_pools_rmse_over_hidden_pixels(tmp_path: Path) -> None:
    base = {"scenario": "s", "method": "idw", "ssim": 0.5, "crps": np.nan, "spread_skill": np.nan,
            "n_observed": 2, "observed_rmse": 0.0, "jump": 1.0, "jump_truth": 1.0, "n_jump": 2}
    rows = [
        {**base, "patch_id": "a", "depth": 0.5, "n_hidden": 1, "rmse": 2.0, "mae": 2.0, "bias": 2.0, "psnr": 10.0},
        {**base, "patch_id": "b", "depth": 0.5, "n_hidden": 3, "rmse": 1.0, "mae": 1.0, "bias": -1.0, "psnr": 20.0},
        {**base, "patch_id": "a", "depth": 50.0, "n_hidden": 4, "rmse": 3.0, "mae": 3.0, "bias": 0.0, "psnr": 30.0},
        {**base, "patch_id": "b", "depth": 50.0, "n_hidden": 0, "rmse": np.nan, "mae": np.nan, "bias": np.nan,
         "psnr": np.nan},
    ]
    write_scores(pd.DataFrame(rows)[SCORE_COLUMNS], tmp_path / "idw.csv")
    write_scores(pd.DataFrame([{**rows[0], "method": "oi"}])[SCORE_COLUMNS], tmp_path / "oi.csv")
    summary = summarize([tmp_path / "idw.csv", tmp_path / "oi.csv"])
    idw = summary[summary["method"] == "idw"].set_index("depth")
    assert list(idw.index) == [0.5, 50.0, "all"]
    assert idw.loc[0.5, "rmse"] == pytest.approx(np.sqrt((1 * 4 + 3 * 1) / 4))
    assert idw.loc[0.5, "bias"] == pytest.approx((2 - 3) / 4)
    assert idw.loc[0.5, "psnr"] == pytest.approx(15.0)
    assert idw.loc["all", "rmse"] == pytest.approx(np.sqrt((4 + 3 + 4 * 9) / 8))
    assert idw.loc["all", "mae"] == pytest.approx((2 + 3 + 12) / 8)
    assert idw.loc["all", "n_hidden"] == 8 and idw.loc["all", "n_rows"] == 3
    assert np.isnan(idw.loc["all", "crps"])
    assert len(summary[summary["method"] == "oi"]) == 2
    assert idw.loc["all", "observed_rmse"] == 0.0 and idw.loc["all", "jump_ratio"] == pytest.approx(1.0)

    write_scores(summary, tmp_path / "summary.csv")
    back = read_summary(tmp_path / "summary.csv")
    assert back["depth"].tolist()[:3] == ["0.5", "50.0", "all"] and np.isnan(back["depth_m"].iloc[2])
    table = markdown_table(summary)
    assert table.splitlines()[0].startswith("| scenario") and "| all " in table and "2.32" in table


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
