"""Leave-floats-out validation: every method scored at the observations of the withheld Argo floats.

Scenario mode argo_profiles with `holdout_floats` > 0 withholds whole floats from x (data/holdout.py,
data/occlusion.py); their binned values ride along in the shards and samples files (holdout,
holdout_valid, holdout_float). Here each reconstruction is scored at those cells and levels against
the withheld observation (not the gridded truth): the skill a user can quote for real data.

Per level and over all levels ("all"): n_cells, n_profiles (withheld profiles with a scored cell, from
the shards' manifest), n_floats; rmse, bias (prediction − observation), mae, crps (ensemble: fair CRPS
of the members; gaussian: closed form; deterministic: = MAE), each with a 95 % percentile bootstrap
interval that resamples withheld FLOATS with replacement (a cluster bootstrap), not cells: the cells
of one float are not independent (the levels of one profile, consecutive profiles ten days and a few
tens of km apart in the same eddy, one sensor's calibration), so resampling cells would treat a few
floats as thousands of independent errors and give far too narrow intervals. The float is what was
withheld, so it is the unit that repeats. Every method of a scenario gets the same resampled floats
(seed from scenario and level), so their intervals are paired.

Two references come from the test and train shards (`score_references`): `truth`, the gridded truth y
itself at the withheld cells (its error against the observations is the representativeness error:
no reconstruction of y can be expected to do better on average), and `climatology`, the Gaussian
N(mean, std²) of the train truth per level and calendar month over the region (a flat field: what
one knows without any observation; the all-months train statistics for a month without train patches).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depthdif.errors import DataError
from depthdif.eval import metrics
from depthdif.eval.scoring import RERUN_SAMPLES, forecast_kind
from depthdif.io import seed_for
from depthdif.samples import open_samples, read_holdout
from depthdif.shards import Holdout, load_array, load_holdout, read_manifest

METRICS = ("rmse", "bias", "mae", "crps")
HOLDOUT_COLUMNS = ["scenario", "method", "forecast", "depth", "n_cells", "n_profiles", "n_floats",
                   *(f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi"))]
#: bootstrap resamples of the withheld floats and the interval's coverage
BOOTSTRAP = 1000
COVERAGE = 0.95
REFERENCES = ("truth", "climatology")
NO_HOLDOUT = ("has no withheld floats: only scenarios of mode argo_profiles with holdout_floats > 0 have them "
              "(set scenarios.<name>.holdout_floats and rerun make_shards)")


@dataclass(frozen=True)
class Cells:
    """The scored cells, flattened in (patch, level, y, x) order."""

    obs: np.ndarray  # (P,) withheld observation, degC
    level: np.ndarray  # (P,) depth level index
    float_id: np.ndarray  # (P,) withheld float (index into platforms_withheld)
    patch: np.ndarray  # (P,) patch index

    @classmethod
    def of(cls, holdout: Holdout) -> Cells:
        patch, level, _, _ = np.nonzero(holdout.valid)
        return cls(holdout.values[holdout.valid], level, holdout.float_id[holdout.valid], patch)


def cell_scores(kind: str, obs: np.ndarray, pred: np.ndarray, members: np.ndarray | None = None,
                sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(error pred − obs, CRPS) per cell: ensemble members (K, P) the fair CRPS; gaussian N(pred, sigma²) the
    closed form; deterministic |error|. axis=() keeps the metrics' per-pixel values."""
    err = pred - obs
    every = np.ones(obs.shape, bool)
    if kind == "ensemble":
        assert members is not None
        crps = np.asarray(metrics.crps_ensemble(members, obs, every, axis=()))
    elif kind == "gaussian":
        assert sigma is not None
        crps = np.asarray(metrics.crps_gaussian(pred, sigma, obs, every, axis=()))
    else:
        crps = np.abs(err)
    return err, crps


def bootstrap(float_id: np.ndarray, err: np.ndarray, crps: np.ndarray, *, n_boot: int = BOOTSTRAP,
              seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """metric -> (value, low, high): the value over the cells and the `COVERAGE` percentile interval over
    `n_boot` resamples of the floats with replacement (each drawn float brings all its cells).

    Per-float sums make a resample one matrix product: W (n_boot, F) multinomial draw counts."""
    floats, which = np.unique(float_id, return_inverse=True)
    f = len(floats)
    if f == 0:
        return {m: (np.nan, np.nan, np.nan) for m in METRICS}
    sums = np.stack([np.bincount(which, weights=w, minlength=f)
                     for w in (np.ones_like(err), err, err**2, np.abs(err), crps)], axis=1)  # (F, 5)
    draws = np.random.default_rng(seed).multinomial(f, np.full(f, 1.0 / f), size=n_boot)
    stats = _stats(sums.sum(axis=0)[None])
    resampled = _stats(draws @ sums)
    tail = 100 * (1 - COVERAGE) / 2
    out = {}
    for m in METRICS:
        lo, hi = np.percentile(resampled[m], [tail, 100 - tail])
        out[m] = (float(stats[m][0]), float(lo), float(hi))
    return out


def _stats(sums: np.ndarray) -> dict[str, np.ndarray]:
    n = sums[:, 0]
    return {"rmse": np.sqrt(sums[:, 2] / n), "bias": sums[:, 1] / n, "mae": sums[:, 3] / n, "crps": sums[:, 4] / n}


def score_cells(cells: Cells, err: np.ndarray, crps: np.ndarray, *, depth: Sequence[float], info: dict[str, Any],
                scenario: str, method: str, forecast: str, n_boot: int = BOOTSTRAP) -> pd.DataFrame:
    """One row per level and one for all levels (`HOLDOUT_COLUMNS`); NaN scores where a level has no cell."""
    per_level = info.get("profiles_scored")
    rows = []
    labels: list[tuple[Any, np.ndarray, Any]] = [
        (float(d), cells.level == c, per_level[c] if per_level is not None else None) for c, d in enumerate(depth)]
    labels.append(("all", np.ones(cells.level.shape, bool), info.get("profiles_scored_any")))
    for label, pick, n_profiles in labels:
        scores = bootstrap(cells.float_id[pick], err[pick], crps[pick], n_boot=n_boot,
                           seed=seed_for("holdout_bootstrap", scenario, str(label)))
        row = {"scenario": scenario, "method": method, "forecast": forecast, "depth": label,
               "n_cells": int(pick.sum()), "n_profiles": n_profiles,
               "n_floats": len(np.unique(cells.float_id[pick]))}
        for m, (value, lo, hi) in scores.items():
            row.update({m: value, f"{m}_lo": lo, f"{m}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows, columns=HOLDOUT_COLUMNS)


def score_holdout(nc_path: str | os.PathLike[str], *, scenario: str, method: str, n_boot: int = BOOTSTRAP
                  ) -> pd.DataFrame:
    """One method's samples netCDF scored at its withheld observations (`score_cells`)."""
    try:
        ds = open_samples(nc_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read samples netCDF {nc_path} ({exc}); {RERUN_SAMPLES}") from exc
    holdout = read_holdout(ds)
    if holdout is None:
        raise DataError(f"{nc_path} (scenario {scenario!r}) {NO_HOLDOUT}")
    cells, kind = Cells.of(holdout), forecast_kind(ds)
    dims = ("patch", "depth", "y", "x")
    pred = ds["thetao_pred"].transpose(*dims).values.astype(np.float64)[holdout.valid]
    members = sigma = None
    if kind == "ensemble":
        members = ds["thetao_members"].transpose("member", *dims).values.astype(np.float64)[:, holdout.valid]
    elif kind == "gaussian":
        sigma = ds["thetao_std"].transpose(*dims).values.astype(np.float64)[holdout.valid]
    bad = ~np.isfinite(pred)
    if sigma is not None:
        bad |= ~(np.isfinite(sigma) & (sigma >= 0))
    if bad.any():
        raise DataError(f"{nc_path}: the prediction (or its std) is not finite at {int(np.sum(bad))} withheld "
                        f"observations; {RERUN_SAMPLES}")
    err, crps = cell_scores(kind, cells.obs, pred, members, sigma)
    depth = [float(str(np.float32(d))) for d in ds["depth"].values]
    return score_cells(cells, err, crps, depth=depth, info=holdout.info, scenario=scenario, method=method,
                       forecast=kind, n_boot=n_boot)


def _at_cells(folder: Path, name: str, valid: np.ndarray) -> np.ndarray:
    """Shard array `name` at the cells of `valid` (N,C,H,W), read shard by shard."""
    manifest, out, start = read_manifest(folder), [], 0
    for shard in manifest["shards"]:
        arr = load_array(folder / shard["name"] / f"{name}.npy", mmap=True)
        out.append(np.asarray(arr[valid[start : start + shard["n"]]]))
        start += shard["n"]
    return np.concatenate(out)


def monthly_climatology(train_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) (12, C) degC of the train truth per calendar month and level, over every valid cell of the
    region; a month without train patches (or a level without a valid cell) takes the all-months stats."""
    folder = Path(train_dir)
    manifest = read_manifest(folder)
    mean_c, std_c = (np.asarray(manifest["stats"][k], np.float64) for k in ("mean", "std"))
    sums = np.zeros((3, 12, len(mean_c)))  # n, Σ y_n, Σ y_n² in normalised units
    for shard in manifest["shards"]:
        y = load_array(folder / shard["name"] / "y.npy", mmap=True)
        valid = load_array(folder / shard["name"] / "y_valid.npy", mmap=True).astype(bool)
        month = _month(load_array(folder / shard["name"] / "time.npy", mmap=False))
        yv = np.where(valid, y, 0.0).astype(np.float64)
        for k, part in enumerate((valid.astype(np.float64), yv, yv**2)):
            np.add.at(sums[k], month, part.sum(axis=(2, 3)))
    n = sums[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_n = sums[1] / n
        std_n = np.sqrt(np.maximum(sums[2] / n - mean_n**2, 0.0))
    mean = np.where(n > 0, mean_n * std_c + mean_c, mean_c)
    std = np.where(n > 0, std_n * std_c, std_c)
    return mean, std


def _month(time: np.ndarray) -> np.ndarray:
    """Calendar month 0..11 of seconds since 1970-01-01."""
    return (np.asarray(time, "int64").astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12)


def score_references(test_dir: str | os.PathLike[str], train_dir: str | os.PathLike[str], *, scenario: str,
                     n_boot: int = BOOTSTRAP) -> pd.DataFrame:
    """The `truth` (gridded truth y at the withheld cells; deterministic) and `climatology` (Gaussian, train
    truth per calendar month and level: `monthly_climatology`) rows, scored like the methods."""
    test = Path(test_dir)
    holdout = load_holdout(test)
    if holdout is None:
        raise DataError(f"test shards {test} (scenario {scenario!r}) {NO_HOLDOUT}")
    manifest = read_manifest(test)
    cells = Cells.of(holdout)
    mean_c, std_c = (np.asarray(manifest["stats"][k], np.float64) for k in ("mean", "std"))
    truth = _at_cells(test, "y", holdout.valid).astype(np.float64) * std_c[cells.level] + mean_c[cells.level]
    month = _month(np.concatenate([load_array(test / s["name"] / "time.npy", mmap=False)
                                   for s in manifest["shards"]]))[cells.patch]
    clim_mean, clim_std = monthly_climatology(train_dir)
    depth = [float(str(np.float32(d))) for d in manifest["depth"]]
    frames = []
    for method, kind, pred, sigma in (
        ("truth", "deterministic", truth, None),
        ("climatology", "gaussian", clim_mean[month, cells.level], clim_std[month, cells.level]),
    ):
        err, crps = cell_scores(kind, cells.obs, pred, sigma=sigma)
        frames.append(score_cells(cells, err, crps, depth=depth, info=holdout.info, scenario=scenario,
                                  method=method, forecast=kind, n_boot=n_boot))
    return pd.concat(frames, ignore_index=True)


# --- gathering ----------------------------------------------------------------------------


def gather_holdout(csv_paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """The score_holdout tables concatenated (`depth` a string: metres or "all")."""
    frames = []
    for path in csv_paths:
        try:
            frame = pd.read_csv(path, dtype={"scenario": str, "method": str, "forecast": str, "depth": str})
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read holdout scores {path} ({exc}); rerun rule score_holdout") from exc
        missing = sorted(set(HOLDOUT_COLUMNS) - set(frame.columns))
        if missing:
            raise DataError(f"{path} lacks columns {missing}; rerun rule score_holdout")
        frames.append(frame[HOLDOUT_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=HOLDOUT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _interval(row: pd.Series, metric: str) -> str:
    value, lo, hi = (float(row[f"{metric}{s}"]) for s in ("", "_lo", "_hi"))
    if np.isnan(value):
        return "-"
    return f"{value:.3g} [{lo:.3g}, {hi:.3g}]"


def _count(value: Any) -> str:
    return "-" if pd.isna(value) else str(int(value))


def holdout_markdown(table: pd.DataFrame) -> str:
    """holdout.md: per scenario, every method and reference over all levels with the 95 % float-bootstrap
    intervals, then the RMSE per level."""
    text = ["# Leave-floats-out validation", "",
            "Each method scored at the observations of the withheld Argo floats (°C; bias = prediction − "
            "observation). In brackets: 95 % bootstrap intervals over the withheld floats (whole floats "
            "resampled, so correlated errors along one float are not counted as independent). `truth`: the "
            "gridded truth at the withheld cells (the representativeness error, a floor); `climatology`: "
            "the train truth's per-level, per-month mean and std (no observation at all). CRPS: fair "
            "ensemble, closed-form Gaussian, or = MAE for a point forecast.", ""]
    for scenario, part in table.groupby("scenario", sort=False):
        overall = part[part["depth"].astype(str) == "all"]
        floats = overall["n_floats"].max() if len(overall) else 0
        text += [f"## {scenario}", "",
                 f"{_count(floats)} withheld floats, {_count(overall['n_profiles'].max())} withheld profiles, "
                 f"{_count(overall['n_cells'].max())} cells × levels scored."
                 + (" With fewer than 2 withheld floats in the test split the intervals are degenerate (nothing "
                    "to resample): raise holdout_floats or add floats." if not floats or floats < 2 else ""), ""]
        rows = [{"method": r["method"], "forecast": r["forecast"], "n_cells": _count(r["n_cells"]),
                 "n_floats": _count(r["n_floats"]), **{m: _interval(r, m) for m in METRICS}}
                for _, r in overall.iterrows()]
        text += [pd.DataFrame(rows).to_markdown(index=False) if rows else "(no rows)", ""]
        levels = part[part["depth"].astype(str) != "all"]
        if len(levels):
            wide = [{"method": method, **{f"{float(r['depth']):g} m": _interval(r, "rmse") for _, r in rows.iterrows()}}
                    for method, rows in levels.groupby("method", sort=False)]
            text += ["RMSE per level [95 % interval], °C:", "", pd.DataFrame(wide).to_markdown(index=False), ""]
    return "\n".join(text)
