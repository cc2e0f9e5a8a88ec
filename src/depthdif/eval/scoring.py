"""Score a samples netCDF per patch x depth on hidden ocean pixels, and summarise the scores."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from depthdif.errors import DataError
from depthdif.eval import metrics
from depthdif.io import atomic_output
from depthdif.samples import open_samples

SCORE_COLUMNS = ["scenario", "method", "patch_id", "depth", "n_hidden",
                 "rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill",
                 "n_observed", "observed_rmse", "jump", "jump_truth", "n_jump"]
SUMMARY_COLUMNS = ["scenario", "method", "depth", "n_hidden", "n_rows",
                   "rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill",
                   "observed_rmse", "jump_ratio"]
MEAN_COLUMNS = ["psnr", "ssim", "crps", "spread_skill"]
REQUIRED_VARS = ("thetao_pred", "thetao_true", "observed", "valid")


def score_samples(nc_path: str | os.PathLike[str], *, scenario: str, method: str) -> pd.DataFrame:
    """One row per patch x depth: n_hidden and the metrics of `depthdif.eval.metrics` on
    hidden = valid & ~observed; data_range = truth max - min over the valid pixels of that
    patch and depth. crps/spread_skill come from `thetao_members` (NaN without >= 2 members).
    """
    try:
        ds = open_samples(nc_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read samples netCDF {nc_path} ({exc}); rerun the method that writes it") from exc
    missing = [v for v in REQUIRED_VARS if v not in ds]
    if missing:
        raise DataError(f"{nc_path} lacks variables {missing}; rerun the method that writes it")
    pred = ds["thetao_pred"].transpose("patch", "depth", "y", "x").values.astype(np.float64)
    truth = ds["thetao_true"].transpose("patch", "depth", "y", "x").values.astype(np.float64)
    valid = ds["valid"].transpose("patch", "depth", "y", "x").values.astype(bool) & np.isfinite(truth)
    hidden = metrics.hidden_mask(ds["observed"].transpose("patch", "depth", "y", "x").values, valid)
    n, c = pred.shape[:2]
    space = (-2, -1)
    drange = metrics.data_range(truth, valid)
    cols: dict[str, np.ndarray] = {
        "n_hidden": hidden.sum(axis=space),
        "rmse": metrics.rmse(pred, truth, hidden, space),
        "mae": metrics.mae(pred, truth, hidden, space),
        "bias": metrics.bias(pred, truth, hidden, space),
        "psnr": metrics.psnr(pred, truth, drange, hidden, space),
        "ssim": np.array([[metrics.ssim(pred[i, k], truth[i, k], drange[i, k], hidden[i, k]) for k in range(c)]
                          for i in range(n)]).reshape(n, c),
    }
    if "thetao_members" in ds and ds.sizes.get("member", 0) >= 2:
        # members first: (K, N, C, H, W)
        members = ds["thetao_members"].transpose("member", "patch", "depth", "y", "x").values.astype(np.float64)
        cols["crps"] = metrics.crps_ensemble(members, truth, hidden, space)
        cols["spread_skill"] = metrics.spread_skill(members, truth, hidden, space)
    else:
        cols["crps"] = cols["spread_skill"] = np.full((n, c), np.nan)
    observed = ds["observed"].transpose("patch", "depth", "y", "x").values.astype(bool) & valid
    cols["n_observed"] = observed.sum(axis=space)
    if "observed_rmse" in ds:  # the model's own (unclamped) prediction at the observations
        cols["observed_rmse"] = ds["observed_rmse"].transpose("patch", "depth").values.astype(np.float64)
    else:
        cols["observed_rmse"] = metrics.rmse(pred, truth, observed, space)
    jump, n_jump = metrics.neighbour_jump(pred, valid, observed)
    jump_truth, _ = metrics.neighbour_jump(truth, valid, observed)
    cols["jump"], cols["jump_truth"], cols["n_jump"] = jump, jump_truth, n_jump
    frame = pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in cols.items()})
    # shortest decimal of the float32 level (0.494, not 0.49399998784065247)
    depth = [float(str(np.float32(d))) for d in ds["depth"].values]
    frame.insert(0, "depth", np.tile(depth, n))
    frame.insert(0, "patch_id", np.repeat(ds["patch_id"].values.astype(str), c))
    frame.insert(0, "method", method)
    frame.insert(0, "scenario", scenario)
    for col in ("n_hidden", "n_observed", "n_jump"):
        frame[col] = frame[col].astype(np.int64)
    return frame[SCORE_COLUMNS]


def write_scores(df: pd.DataFrame, csv_path: str | os.PathLike[str]) -> None:
    """Write a score (or summary) table as CSV atomically."""
    with atomic_output(csv_path) as tmp:
        df.to_csv(tmp, index=False)


def _pool(group: pd.DataFrame) -> pd.Series:
    """Pooled over hidden pixels: RMSE = sqrt(sum n rmse^2 / sum n), MAE/bias n-weighted; others plain means."""
    used = group[group["n_hidden"] > 0]
    n = used["n_hidden"].to_numpy(np.float64)
    total = n.sum()
    out = {"n_hidden": int(total), "n_rows": len(used)}
    if total > 0:
        out["rmse"] = float(np.sqrt(np.sum(n * used["rmse"].to_numpy() ** 2) / total))
        out["mae"] = float(np.sum(n * used["mae"].to_numpy()) / total)
        out["bias"] = float(np.sum(n * used["bias"].to_numpy()) / total)
    else:
        out.update(rmse=np.nan, mae=np.nan, bias=np.nan)
    for col in MEAN_COLUMNS:
        values = used[col].to_numpy(np.float64)
        values = values[~np.isnan(values)]
        out[col] = float(values.mean()) if len(values) else np.nan
    # observation consistency, pooled over observed pixels (absent in old score files: NaN)
    if {"n_observed", "observed_rmse"} <= set(group.columns):
        n_obs = group["n_observed"].to_numpy(np.float64)
        sq = np.nan_to_num(group["observed_rmse"].to_numpy(np.float64)) ** 2
        out["observed_rmse"] = float(np.sqrt(np.sum(n_obs * sq) / n_obs.sum())) if n_obs.sum() else np.nan
    else:
        out["observed_rmse"] = np.nan
    if {"jump", "jump_truth"} <= set(group.columns) and group["jump_truth"].sum() > 0:
        out["jump_ratio"] = float(group["jump"].sum() / group["jump_truth"].sum())
    else:
        out["jump_ratio"] = np.nan
    return pd.Series(out)


def summarize(csv_paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per scenario x method x depth plus depth "all" (every level pooled).

    RMSE/MAE/bias pooled over hidden pixels (weights n_hidden, RMSE from the pooled MSE);
    psnr/ssim/crps/spread_skill are means over the patch x depth rows (NaN ignored; rows
    without hidden pixels skipped). `depth` holds the level in metres or "all".
    """
    if not csv_paths:
        raise DataError("no metrics CSV files to summarise; check evaluate.methods and scenarios")
    frames = []
    for path in csv_paths:
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read scores {path} ({exc}); rerun the score rule") from exc
        missing = sorted(set(SCORE_COLUMNS[:12]) - set(frame.columns))
        if missing:
            raise DataError(f"{path} lacks columns {missing}; rerun the score rule")
        frames.append(frame.astype({"scenario": str, "method": str}))
    scores = pd.concat(frames, ignore_index=True)
    keys = ["scenario", "method"]
    rows = []
    for (scenario, method), group in scores.groupby(keys, sort=False):
        for depth, level in group.groupby("depth", sort=True):
            rows.append({"scenario": scenario, "method": method, "depth": float(depth), **_pool(level)})
        rows.append({"scenario": scenario, "method": method, "depth": "all", **_pool(group)})
    summary = pd.DataFrame(rows)[SUMMARY_COLUMNS]
    summary[["n_hidden", "n_rows"]] = summary[["n_hidden", "n_rows"]].astype(np.int64)
    return summary


def markdown_table(summary: pd.DataFrame) -> str:
    """Markdown table of a summary (numbers to 3 significant digits, NaN as "-")."""
    shown = summary.copy()
    for col in ["rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill", "observed_rmse", "jump_ratio"]:
        shown[col] = [f"{v:.3g}" if not np.isnan(v) else "-" for v in shown[col].astype(np.float64)]
    shown["depth"] = [d if isinstance(d, str) else f"{d:g}" for d in shown["depth"]]
    return shown.to_markdown(index=False)


def read_summary(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read summary.csv; `depth` stays a string column ("all" or metres), `depth_m` is numeric (NaN for "all")."""
    path = Path(csv_path)
    try:
        summary = pd.read_csv(path, dtype={"depth": str, "scenario": str, "method": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read summary {path} ({exc}); rerun the summarize rule") from exc
    missing = sorted({"scenario", "method", "depth", "rmse"} - set(summary.columns))
    if missing:
        raise DataError(f"{path} lacks columns {missing}; rerun the summarize rule")
    summary["depth_m"] = pd.to_numeric(summary["depth"], errors="coerce")
    return summary
