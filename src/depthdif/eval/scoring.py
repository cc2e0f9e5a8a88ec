"""Score a samples netCDF per patch x depth on hidden ocean pixels, and summarise the scores."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import DataError
from depthdif.eval import metrics
from depthdif.io import atomic_output, seed_for
from depthdif.samples import PREDICTIVE_ATTR, open_samples

SCORE_COLUMNS = ["scenario", "method", "forecast", "patch_id", "depth", "n_hidden",
                 "rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill", "spread",
                 "n_observed", "observed_rmse", "jump", "jump_truth", "n_jump"]
SUMMARY_COLUMNS = ["scenario", "method", "forecast", "depth", "n_hidden", "n_rows",
                   "rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill",
                   "observed_rmse", "jump_ratio"]
#: per scenario x method x depth ("all" or metres): the rank histogram (table "rank", one row per
#: rank bin: n, share) and the spread deciles (table "spread": n, spread, rmse, ratio = rmse/spread)
CALIBRATION_COLUMNS = ["scenario", "method", "forecast", "depth", "table", "bin", "n", "share",
                       "spread", "rmse", "ratio"]
MEAN_COLUMNS = ["psnr", "ssim"]
#: forecast kinds: >= 2 members (fair ensemble CRPS), a Gaussian N(pred, std^2) (closed-form CRPS,
#: PIT histogram), a point prediction (CRPS = MAE, no spread)
FORECASTS = ("ensemble", "gaussian", "deterministic")
#: rank bins K+1 of a Gaussian forecast's PIT histogram when no ensemble size is given
DEFAULT_RANK_MEMBERS = 8
SPREAD_BINS = 10
#: what to do about a broken samples netCDF
RERUN_SAMPLES = "rerun the job that wrote it (rule sample_model or run_baseline)"
REQUIRED_VARS = ("thetao_pred", "thetao_true", "observed", "valid")


def forecast_kind(ds: Any) -> str:
    """`ensemble` with >= 2 members, `gaussian` when the file says its std is a Gaussian predictive
    std (attribute predictive = "gaussian", written by oi/oi_eo), else `deterministic`."""
    if "thetao_members" in ds and ds.sizes.get("member", 0) >= 2:
        return "ensemble"
    if ds.attrs.get(PREDICTIVE_ATTR) == "gaussian" and "thetao_std" in ds:
        return "gaussian"
    return "deterministic"


def score_samples(nc_path: str | os.PathLike[str], *, scenario: str, method: str) -> pd.DataFrame:
    """The per patch x depth scores of `score_file` (without the calibration tables)."""
    return score_file(nc_path, scenario=scenario, method=method)[0]


def score_file(
    nc_path: str | os.PathLike[str], *, scenario: str, method: str, rank_members: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, calibration) of one samples netCDF on hidden = valid & ~observed.

    scores: one row per patch x depth: n_hidden and the metrics of `depthdif.eval.metrics`;
    data_range = truth max - min over the valid pixels of that patch and depth. By `forecast_kind`:
    ensemble: crps = fair CRPS of the members (scoringrules), spread = sqrt((K+1)/K mean s^2),
    spread_skill = spread / RMSE of the ensemble mean; gaussian: crps = closed-form CRPS of
    N(pred, std^2) (scoringrules.crps_normal), spread = sqrt(mean std^2), spread_skill = spread / RMSE;
    deterministic: crps = mae, spread and spread_skill NaN.
    calibration (`CALIBRATION_COLUMNS`, empty for deterministic forecasts), per depth and over all
    depths ("all"): the rank histogram over hidden pixels (ensemble: rank of the truth among the K
    members, ties at random, seed from scenario/method/depth; gaussian: PIT Phi((y - mu)/sigma) in
    K+1 equal bins, K = `rank_members`, default `DEFAULT_RANK_MEMBERS`) and `SPREAD_BINS` equal-count
    spread bins (deciles) with their RMSE of the mean, RMS spread and ratio.
    """
    try:
        ds = open_samples(nc_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read samples netCDF {nc_path} ({exc}); {RERUN_SAMPLES}") from exc
    missing = [v for v in REQUIRED_VARS if v not in ds]
    if missing:
        raise DataError(f"{nc_path} lacks variables {missing}; {RERUN_SAMPLES}")
    kind = forecast_kind(ds)
    dims = ("patch", "depth", "y", "x")
    pred = ds["thetao_pred"].transpose(*dims).values.astype(np.float64)
    truth = ds["thetao_true"].transpose(*dims).values.astype(np.float64)
    valid = ds["valid"].transpose(*dims).values.astype(bool) & np.isfinite(truth)
    hidden = metrics.hidden_mask(ds["observed"].transpose(*dims).values, valid)
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
    members = sigma = None
    if kind == "ensemble":
        # members first: (K, N, C, H, W)
        members = ds["thetao_members"].transpose("member", *dims).values.astype(np.float64)
        spread_px = metrics.ensemble_spread(members)
        cols["crps"] = metrics.crps_ensemble(members, truth, hidden, space)
        cols["spread"] = metrics.rms(spread_px, hidden, space)
        cols["spread_skill"] = metrics.spread_skill(members, truth, hidden, space)
        center = members.mean(axis=0)
    elif kind == "gaussian":
        sigma = ds["thetao_std"].transpose(*dims).values.astype(np.float64)
        bad = hidden & ~(np.isfinite(sigma) & (sigma >= 0))
        if bad.any():
            raise DataError(f"{nc_path}: thetao_std is not a finite non-negative std at {int(bad.sum())} hidden "
                            f"pixels; {RERUN_SAMPLES}")
        spread_px, center = sigma, pred
        cols["crps"] = metrics.crps_gaussian(pred, sigma, truth, hidden, space)
        cols["spread"] = metrics.rms(sigma, hidden, space)
        cols["spread_skill"] = metrics.spread_skill_gaussian(pred, sigma, truth, hidden, space)
    else:
        cols["crps"] = cols["mae"]  # the CRPS of a point forecast is its absolute error
        cols["spread_skill"] = cols["spread"] = np.full((n, c), np.nan)
    observed = ds["observed"].transpose(*dims).values.astype(bool) & valid
    cols["n_observed"] = observed.sum(axis=space)
    if "observed_rmse" in ds:  # the model's own (unclamped) prediction at the observations
        cols["observed_rmse"] = ds["observed_rmse"].transpose("patch", "depth").values.astype(np.float64)
    else:
        cols["observed_rmse"] = metrics.rmse(pred, truth, observed, space)
    jump, n_jump = metrics.neighbour_jump(pred, valid, observed)
    jump_truth, _ = metrics.neighbour_jump(truth, valid, observed)
    cols["jump"], cols["jump_truth"], cols["n_jump"] = jump, jump_truth, n_jump
    frame = pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in cols.items()})
    depth = _depth_labels(ds)
    frame.insert(0, "depth", np.tile(depth, n))
    frame.insert(0, "patch_id", np.repeat(ds["patch_id"].values.astype(str), c))
    frame.insert(0, "forecast", kind)
    frame.insert(0, "method", method)
    frame.insert(0, "scenario", scenario)
    for col in ("n_hidden", "n_observed", "n_jump"):
        frame[col] = frame[col].astype(np.int64)

    rows: list[dict[str, Any]] = []
    if kind != "deterministic":
        k_rank = members.shape[0] if members is not None else int(rank_members or DEFAULT_RANK_MEMBERS)
        levels: list[tuple[Any, np.ndarray]] = [(d, np.eye(c, dtype=bool)[j]) for j, d in enumerate(depth)]
        for label, pick in [*levels, ("all", np.ones(c, bool))]:
            mask = hidden & pick[None, :, None, None]
            if members is not None:
                counts = metrics.rank_histogram(members, truth, mask, seed_for("rank_histogram", scenario, method,
                                                                               str(label)))
            else:
                counts = metrics.pit_histogram(pred, sigma, truth, mask, k_rank + 1)
            total = max(int(counts.sum()), 1)
            base = {"scenario": scenario, "method": method, "forecast": kind, "depth": label}
            rows += [{**base, "table": "rank", "bin": b, "n": int(v), "share": v / total}
                     for b, v in enumerate(counts)]
            if mask.any():
                bins = metrics.spread_error_bins(spread_px[mask], (center - truth)[mask], SPREAD_BINS)
                rows += [{**base, "table": "spread", "bin": b, "n": int(bins["n"][b]), "spread": bins["spread"][b],
                          "rmse": bins["rmse"][b], "ratio": bins["ratio"][b]} for b in range(len(bins["n"]))]
    calibration = pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)
    return frame[SCORE_COLUMNS], calibration


def _depth_labels(ds: Any) -> list[float]:
    """The depth levels as the shortest decimal of the float32 value (0.494, not 0.49399998784065247)."""
    return [float(str(np.float32(d))) for d in ds["depth"].values]


def write_scores(df: pd.DataFrame, csv_path: str | os.PathLike[str]) -> None:
    """Write a score (or summary) table as CSV atomically."""
    with atomic_output(csv_path) as tmp:
        df.to_csv(tmp, index=False)


def write_calibration(df: pd.DataFrame, csv_path: str | os.PathLike[str]) -> None:
    """Write a calibration table (`CALIBRATION_COLUMNS`, possibly empty) as CSV atomically."""
    write_scores(df[CALIBRATION_COLUMNS], csv_path)


def _pool(group: pd.DataFrame) -> pd.Series:
    """Pooled over hidden pixels: RMSE = sqrt(sum n rmse^2 / sum n); MAE, bias and CRPS n-weighted
    (the mean over all hidden pixels); spread_skill = sqrt(sum n spread^2 / sum n) / pooled RMSE;
    psnr/ssim plain means over the rows."""
    used = group[group["n_hidden"] > 0]
    n = used["n_hidden"].to_numpy(np.float64)
    total = n.sum()
    out = {"n_hidden": int(total), "n_rows": len(used)}
    if total > 0:
        out["rmse"] = float(np.sqrt(np.sum(n * used["rmse"].to_numpy() ** 2) / total))
        for col in ("mae", "bias", "crps"):
            out[col] = float(np.sum(n * used[col].to_numpy(np.float64)) / total)
        spread = used["spread"].to_numpy(np.float64)
        out["spread_skill"] = (float(np.sqrt(np.sum(n * spread**2) / total)) / out["rmse"]
                               if np.isfinite(spread).all() and out["rmse"] > 0 else np.nan)
    else:
        out.update(rmse=np.nan, mae=np.nan, bias=np.nan, crps=np.nan, spread_skill=np.nan)
    for col in MEAN_COLUMNS:
        values = used[col].to_numpy(np.float64)
        values = values[~np.isnan(values)]
        out[col] = float(values.mean()) if len(values) else np.nan
    # observation consistency, pooled over observed pixels
    n_obs = group["n_observed"].to_numpy(np.float64)
    sq = np.nan_to_num(group["observed_rmse"].to_numpy(np.float64)) ** 2
    out["observed_rmse"] = float(np.sqrt(np.sum(n_obs * sq) / n_obs.sum())) if n_obs.sum() else np.nan
    if group["jump_truth"].sum() > 0:
        out["jump_ratio"] = float(group["jump"].sum() / group["jump_truth"].sum())
    else:
        out["jump_ratio"] = np.nan
    return pd.Series(out)


def _read_csvs(csv_paths: Sequence[str | os.PathLike[str]], required: Sequence[str], what: str) -> pd.DataFrame:
    frames = []
    for path in csv_paths:
        try:
            frame = pd.read_csv(path, dtype={"scenario": str, "method": str, "forecast": str, "depth": str})
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {what} {path} ({exc}); rerun the score rule") from exc
        missing = sorted(set(required) - set(frame.columns))
        if missing:
            raise DataError(f"{path} lacks columns {missing}; rerun the score rule")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def summarize(csv_paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per scenario x method x depth plus depth "all" (every level pooled), by `_pool`.

    `depth` holds the level in metres or "all"; `forecast` the method's forecast kind.
    """
    if not csv_paths:
        raise DataError("no metrics CSV files to summarise; check evaluate.methods and scenarios")
    scores = _read_csvs(csv_paths, SCORE_COLUMNS, "scores")
    scores["depth"] = scores["depth"].astype(np.float64)
    rows = []
    for (scenario, method), group in scores.groupby(["scenario", "method"], sort=False):
        kind = str(group["forecast"].iloc[0])
        for depth, level in group.groupby("depth", sort=True):
            rows.append({"scenario": scenario, "method": method, "forecast": kind, "depth": float(depth),
                         **_pool(level)})
        rows.append({"scenario": scenario, "method": method, "forecast": kind, "depth": "all", **_pool(group)})
    summary = pd.DataFrame(rows)[SUMMARY_COLUMNS]
    summary[["n_hidden", "n_rows"]] = summary[["n_hidden", "n_rows"]].astype(np.int64)
    return summary


def gather_calibration(csv_paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """The score jobs' calibration tables concatenated (`depth` as a string: metres or "all")."""
    if not csv_paths:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    return _read_csvs(csv_paths, CALIBRATION_COLUMNS, "calibration table")[CALIBRATION_COLUMNS]


def _fmt(value: Any) -> str:
    value = float(value)
    return "-" if np.isnan(value) else f"{value:.3g}"


def markdown_table(summary: pd.DataFrame) -> str:
    """Markdown table of a summary (numbers to 3 significant digits, NaN as "-")."""
    shown = summary.copy()
    for col in ["rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill", "observed_rmse", "jump_ratio"]:
        shown[col] = [_fmt(v) for v in shown[col]]
    shown["depth"] = [d if isinstance(d, str) else f"{d:g}" for d in shown["depth"]]
    return shown.to_markdown(index=False)


def calibration_markdown(summary: pd.DataFrame, calibration: pd.DataFrame) -> str:
    """Per scenario x method over all depths: CRPS (which estimator), spread/skill, the rank histogram
    (share of hidden pixels per rank bin, % ; uniform = 100/(K+1)) with its extreme bins against the
    uniform share, and per spread decile "RMSE/spread (ratio)"."""
    overall = summary[summary["depth"].astype(str) == "all"]
    cal = calibration[calibration["depth"].astype(str) == "all"]
    estimator = {"ensemble": "fair ensemble", "gaussian": "Gaussian closed form", "deterministic": "= MAE"}
    rows, deciles = [], []
    for _, row in overall.iterrows():
        part = cal[(cal["scenario"] == row["scenario"]) & (cal["method"] == row["method"])]
        rank = part[part["table"] == "rank"].sort_values("bin")
        shares = rank["share"].to_numpy(np.float64)
        if len(shares):
            uniform = 1.0 / len(shares)
            histogram = " ".join(f"{100 * v:.0f}" for v in shares)
            extremes = f"{shares[0] / uniform:.2f} / {shares[-1] / uniform:.2f}"
            bins = str(len(shares))
        else:
            histogram = extremes = bins = "-"
        rows.append({"scenario": row["scenario"], "method": row["method"], "forecast": row["forecast"],
                     "CRPS °C": _fmt(row["crps"]), "CRPS estimator": estimator.get(row["forecast"], "?"),
                     "MAE °C": _fmt(row["mae"]), "RMSE °C": _fmt(row["rmse"]),
                     "spread/skill": _fmt(row["spread_skill"]), "rank bins": bins,
                     "rank histogram (% per bin)": histogram, "extreme bins / uniform": extremes})
        spread = part[part["table"] == "spread"].sort_values("bin")
        if len(spread):
            deciles.append({"scenario": row["scenario"], "method": row["method"],
                            **{f"d{int(b) + 1}": f"{_fmt(r)}/{_fmt(sp)} ({_fmt(q)})"
                               for b, r, sp, q in spread[["bin", "rmse", "spread", "ratio"]].itertuples(index=False)}})
    text = ["## CRPS, spread/skill and rank histograms (hidden pixels, all depths)", "",
            pd.DataFrame(rows).to_markdown(index=False) if rows else "(no rows)", "",
            "Ensembles: fair CRPS (scoringrules, estimator \"fair\"), spread/skill = √((K+1)/K)·RMS member std / "
            "RMSE of the mean, rank of the truth among the K members (ties at random). Gaussian (OI posterior): "
            "closed-form CRPS (scoringrules.crps_normal), spread/skill = RMS σ / RMSE, PIT Φ((y−μ)/σ) in K+1 "
            "equal bins. Deterministic: CRPS = MAE, no spread.", ""]
    if deciles:
        text += ["## Spread deciles: RMSE of the mean / RMS spread (ratio) °C, hidden pixels, all depths", "",
                 pd.DataFrame(deciles).fillna("-").to_markdown(index=False), ""]
    return "\n".join(text)


def markdown_report(summary: pd.DataFrame, calibration: pd.DataFrame) -> str:
    """summary.md: the score table, then `calibration_markdown`."""
    return "\n".join(["## Scores on hidden pixels", "", markdown_table(summary), "",
                      calibration_markdown(summary, calibration)])


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
