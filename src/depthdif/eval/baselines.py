"""Classical gap-fillers scored like the learned methods: inverse distance weighting (here),
optimal interpolation and OI of the residuals of a per-level regression on the EO (`oi.py`),
per patch and depth channel; `run_baseline` (the run_baseline rule's entry) writes their samples.

Array convention (`per_field`): values/observed/valid are (N,C,H,W) in degC; `observed` (A) marks
the only pixels a baseline may read, `valid` where a prediction is wanted (NaN elsewhere).
Distances are in pixels of the patch grid.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from depthdif.errors import ConfigError
from depthdif.eval.oi import fit_eo_regression, fit_oi, oi_eo, oi_posterior
from depthdif.eval.per_field import per_field
from depthdif.io import config_hash
from depthdif.samples import PREDICTIVE_ATTR, write_samples
from depthdif.shards import load_degc, load_holdout

log = logging.getLogger(__name__)

BASELINES = ("idw", "oi", "oi_eo")
#: baselines whose samples file holds a Gaussian predictive distribution N(thetao_pred, thetao_std^2)
GAUSSIAN_BASELINES = ("oi", "oi_eo")


# --- inverse distance weighting -------------------------------------------------------


def idw(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    *,
    power: float,
    neighbours: int,
    fill: float | Sequence[float] = np.nan,
) -> np.ndarray:
    """Inverse distance weighting: pred(x) = sum_i w_i v_i / sum_i w_i, w_i = d(x, x_i)^-power,
    over the `neighbours` nearest observed pixels of the same patch and channel (cKDTree).

    Exact at observed pixels (d = 0). Returns float32 (N,C,H,W), NaN where not valid.
    """
    if power <= 0 or neighbours < 1:
        raise ConfigError(f"evaluate.idw: power must be > 0 and neighbours >= 1, got {power}, {neighbours}")

    def solve(_: int, pts: np.ndarray, vals: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, None]:
        k = min(neighbours, len(pts))
        dist, idx = cKDTree(pts).query(query, k=k)
        dist, idx = dist.reshape(len(query), k), idx.reshape(len(query), k)
        exact = dist[:, 0] == 0.0
        with np.errstate(divide="ignore"):
            wts = np.where(exact[:, None], 0.0, dist ** (-power))
        wts[exact, 0] = 1.0  # an observed pixel keeps its own value
        return np.sum(wts * vals[idx], axis=1) / np.sum(wts, axis=1), None

    return per_field(values, observed, valid, fill, solve)[0]


# --- workflow entry point ---------------------------------------------------------------


def eo_missing_message(where: str) -> str:
    return (f"evaluate.methods includes 'oi_eo' (a regression on the EO), but {where} has no EO "
            "(data.eo: none): set data.eo to 'surface' or 'ostia', or remove oi_eo from evaluate.methods")


@dataclass(frozen=True)
class FittedBaseline:
    """A classical gap-filler ready to use: `predict(values, observed, valid, eo)` → (mean, std or None),
    (N,C,H,W) degC in the `per_field` convention (eo (N,1,H,W) degC, needed by oi_eo only).

    `attrs`: what the samples/map netCDF records about the fit (config_hash, oi_params, eo_regression,
    predictive); `summary`: the fitted parameters as plain values.
    """

    method: str
    predict: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]
    attrs: dict[str, Any]
    summary: dict[str, Any]


def fit_baseline(
    method: str, train_dir: str | os.PathLike[str] | None, method_cfg: Mapping[str, Any], stats: Mapping[str, Any],
) -> FittedBaseline:
    """Fit `method` ("idw" | "oi" | "oi_eo") on the `train_dir` truth (idw needs no fit: train_dir unused).

    `method_cfg` is `evaluate.idw` {power, neighbours} or `evaluate.oi` {covariance, max_fit_patches};
    fields without observations get the training mean `stats["mean"]` (oi: and std `stats["std"]`;
    oi_eo: the regression field and its residual std).
    """
    if method not in BASELINES:
        raise ConfigError(f"baseline method must be one of {BASELINES}, got {method!r}")
    mean = np.asarray(stats["mean"], np.float64)
    attrs: dict[str, Any] = {"config_hash": config_hash({"method": method, **dict(method_cfg)})}
    summary: dict[str, Any] = {}
    if method == "idw":
        power, neighbours = float(method_cfg["power"]), int(method_cfg["neighbours"])

        def predict_idw(values: np.ndarray, observed: np.ndarray, valid: np.ndarray,
                        eo: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
            return idw(values, observed, valid, power=power, neighbours=neighbours, fill=mean), None

        return FittedBaseline(method, predict_idw, attrs, summary)
    if train_dir is None:
        raise ValueError(f"baseline {method!r} is fitted on the train split: give its shard folder")
    train, _ = load_degc(train_dir)
    fit = {"covariance": str(method_cfg["covariance"]), "max_fit_patches": int(method_cfg["max_fit_patches"])}
    if method == "oi":
        params = fit_oi(train["truth"], train["valid"], **fit)
        fill_std = np.asarray(stats["std"], np.float64)

        def predict_oi(values: np.ndarray, observed: np.ndarray, valid: np.ndarray,
                       eo: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
            return oi_posterior(values, observed, valid, params, fill=mean, fill_std=fill_std)

        predict = predict_oi
    else:
        if "eo" not in train:
            raise ConfigError(eo_missing_message(f"the train shards {train_dir}"))
        regression = fit_eo_regression(train["truth"], train["eo"], train["valid"])
        residual = train["truth"] - regression.field(train["eo"])
        params = fit_oi(residual, train["valid"] & np.isfinite(residual), **fit)

        def predict_oi_eo(values: np.ndarray, observed: np.ndarray, valid: np.ndarray,
                          eo: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
            if eo is None:
                raise ConfigError(eo_missing_message("the data to reconstruct"))
            return oi_eo(values, observed, valid, eo, regression, params)

        predict = predict_oi_eo
        summary["regression"] = regression.to_dict()
        attrs["eo_regression"] = json.dumps(regression.to_dict())
    summary["params"] = params.to_dict()
    attrs["oi_params"] = json.dumps(params.to_dict())
    attrs[PREDICTIVE_ATTR] = "gaussian"
    return FittedBaseline(method, predict, attrs, summary)


def run_baseline(
    method: str,
    test_dir: str | os.PathLike[str],
    train_dir: str | os.PathLike[str],
    method_cfg: Mapping[str, Any],
    *,
    scenario: str,
    out_nc: str | os.PathLike[str],
) -> dict[str, Any]:
    """Reconstruct the test shards with `method` ("idw" | "oi" | "oi_eo") in degC and write the samples netCDF.

    `method_cfg` is `evaluate.idw` {power, neighbours} or `evaluate.oi` {covariance,
    max_fit_patches} (for oi and oi_eo). OI is fitted on the `train_dir` truth; oi_eo fits its
    per-level EO regression on the train truth and its OI on the train residuals (`fit_baseline`).
    idw: std = 0; oi/oi_eo: thetao_std = the Gaussian predictive std (attribute predictive =
    "gaussian"), fields without observations get the training mean (oi: the level's training std;
    oi_eo: the regression field and its residual std). No members. Returns a summary dict.
    """
    if method not in BASELINES:
        raise ConfigError(f"baseline method must be one of {BASELINES}, got {method!r}")
    test, manifest = load_degc(test_dir)
    if method == "oi_eo" and "eo" not in test:
        raise ConfigError(eo_missing_message(f"the test shards {test_dir}"))
    fitted = fit_baseline(method, train_dir, method_cfg, manifest["stats"])
    pred, std = fitted.predict(test["obs"], test["observed"], test["valid"], test.get("eo"))
    attrs = {"method": method, "scenario": scenario, "checkpoint": "", **fitted.attrs}
    write_samples(
        out_nc, pred=pred, truth=test["truth"], observed=test["observed"], valid=test["valid"],
        land=test["land"], depth=np.asarray(manifest["depth"], np.float32), lat=test["lat"], lon=test["lon"],
        time=test["time"], patch_id=test["patch_id"], std=std, attrs=attrs,
        std_long_name=None if std is None else "Gaussian predictive standard deviation (OI posterior + nugget)",
        holdout=load_holdout(test_dir),  # never read above: the withheld floats are only scored
    )
    return {"method": method, "scenario": scenario, "n_patches": int(len(test["truth"])), **fitted.summary,
            "config_hash": attrs["config_hash"]}
