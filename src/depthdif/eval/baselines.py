"""Classical gap-fillers scored like the learned methods: inverse distance weighting,
optimal interpolation (Gaussian-process posterior mean and std) and OI of the residuals of a
per-level regression on the EO (`oi_eo`), per patch and depth channel.

Array convention: values/observed/valid are (N,C,H,W) in degC; `observed` (A) marks the
only pixels a baseline may read, `valid` where a prediction is wanted (NaN elsewhere).
Distances are in pixels of the patch grid.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular
from scipy.optimize import least_squares
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from depthdif.errors import ConfigError, DataError
from depthdif.io import config_hash
from depthdif.samples import PREDICTIVE_ATTR, write_samples
from depthdif.shards import load_degc

log = logging.getLogger(__name__)

COVARIANCES = ("gaussian", "matern32")
BASELINES = ("idw", "oi", "oi_eo")
#: baselines whose samples file holds a Gaussian predictive distribution N(thetao_pred, thetao_std^2)
GAUSSIAN_BASELINES = ("oi", "oi_eo")


def _check_shapes(values: np.ndarray, observed: np.ndarray, valid: np.ndarray) -> None:
    if values.ndim != 4 or observed.shape != values.shape or valid.shape != values.shape:
        raise ValueError(
            f"values/observed/valid must share one (N,C,H,W) shape, got {values.shape}, {observed.shape}, {valid.shape}"
        )


def _fill_values(fill: float | Sequence[float], channels: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(fill, np.float64), (channels,))


Solver = Callable[[int, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def _per_field(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    fill: float | Sequence[float],
    solve: Solver,
    fill_std: float | Sequence[float] = np.nan,
) -> tuple[np.ndarray, np.ndarray]:
    """Loop over (patch, channel); `solve(c, obs_yx, obs_values, query_yx)` returns the prediction at
    the valid pixels and its std (or None: NaN std). Returns float32 (pred, std), NaN where not valid.

    Fields with no observation get `fill[c]` (e.g. the channel's training mean) and `fill_std[c]`.
    """
    _check_shapes(values, observed, valid)
    n, c, h, w = values.shape
    fills, fill_stds = _fill_values(fill, c), _fill_values(fill_std, c)
    out = np.full(values.shape, np.nan, np.float32)
    std = np.full(values.shape, np.nan, np.float32)
    obs_b = observed.astype(bool) & valid.astype(bool)
    valid_b = valid.astype(bool)
    for i in range(n):
        for k in range(c):
            query = np.argwhere(valid_b[i, k])
            if not len(query):
                continue
            pts = np.argwhere(obs_b[i, k])
            if not len(pts):
                out[i, k][valid_b[i, k]] = fills[k]
                std[i, k][valid_b[i, k]] = fill_stds[k]
                continue
            obs_vals = values[i, k][obs_b[i, k]].astype(np.float64)
            pred, sd = solve(k, pts.astype(np.float64), obs_vals, query.astype(np.float64))
            out[i, k][valid_b[i, k]] = pred
            if sd is not None:
                std[i, k][valid_b[i, k]] = sd
    return out, std


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

    return _per_field(values, observed, valid, fill, solve)[0]


# --- optimal interpolation ---------------------------------------------------------------


@dataclass(frozen=True)
class OIParams:
    """Per-channel covariance parameters: C(r) = variance * rho(r / length_scale) + nugget * [r = 0]."""

    covariance: str
    length_scale: tuple[float, ...]  # pixels
    variance: tuple[float, ...]  # degC^2
    nugget: tuple[float, ...]  # degC^2

    def __post_init__(self) -> None:
        if self.covariance not in COVARIANCES:
            raise ConfigError(f"evaluate.oi.covariance must be one of {COVARIANCES}, got {self.covariance!r}")
        if not len(self.length_scale) == len(self.variance) == len(self.nugget):
            raise ValueError("OIParams: length_scale, variance and nugget need one value per channel")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OIParams:
        return cls(
            covariance=str(data["covariance"]),
            length_scale=tuple(map(float, data["length_scale"])),
            variance=tuple(map(float, data["variance"])),
            nugget=tuple(map(float, data["nugget"])),
        )


def correlation(r: np.ndarray, length_scale: float, covariance: str) -> np.ndarray:
    """rho(r): gaussian exp(-r^2 / 2l^2); matern32 (1 + sqrt3 r/l) exp(-sqrt3 r/l)."""
    if covariance == "gaussian":
        return np.exp(-0.5 * np.square(r / length_scale))
    if covariance == "matern32":
        s = np.sqrt(3.0) * r / length_scale
        return (1.0 + s) * np.exp(-s)
    raise ConfigError(f"evaluate.oi.covariance must be one of {COVARIANCES}, got {covariance!r}")


def empirical_variogram(
    fields: np.ndarray, valid: np.ndarray, max_lag: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Semivariogram gamma(r) = 1/2 mean (z(x+h) - z(x))^2 of (M,H,W) fields over valid pairs.

    Lags h = (0,l), (l,0), (l,l), (l,-l) for l = 1..max_lag; returns (r, gamma, n_pairs), lags
    without pairs dropped.
    """
    z = np.where(valid, fields, 0.0).astype(np.float64)
    r, gamma, npairs = [], [], []
    for lag in range(1, max_lag + 1):
        for dy, dx in ((0, lag), (lag, 0), (lag, lag), (lag, -lag)):
            a, b = _shifted(z, dy, dx), _shifted(valid, dy, dx)
            both = b[0] & b[1]
            count = int(both.sum())
            if count:
                r.append(np.hypot(dy, dx))
                gamma.append(0.5 * float(np.sum(np.square(a[0] - a[1])[both])) / count)
                npairs.append(count)
    return np.asarray(r), np.asarray(gamma), np.asarray(npairs, np.float64)


def _shifted(a: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Views (a[x], a[x + (dy, dx)]) over the overlapping region of the last two axes."""
    h, w = a.shape[-2:]
    x0, x1 = max(0, -dx), w - max(0, dx)
    first = a[..., 0 : h - dy, x0:x1]
    second = a[..., dy:h, x0 + dx : x1 + dx]
    return first, second


def fit_variogram(
    r: np.ndarray, gamma: np.ndarray, npairs: np.ndarray, covariance: str, size: int
) -> tuple[float, float, float]:
    """Least-squares fit of gamma(r) = nugget + variance (1 - rho(r / l)), weighted by sqrt(n_pairs).

    Returns (length_scale px, variance, nugget); l is bounded to [0.3, 10 * size] px.
    """
    if len(r) < 3 or not np.all(np.isfinite(gamma)) or gamma.max() <= 0:
        raise DataError(f"cannot fit a variogram from {len(r)} lags (constant or too small training fields)")
    gmax = float(gamma.max())
    weight = np.sqrt(npairs / npairs.max())

    def resid(p: np.ndarray) -> np.ndarray:
        ell, var, nug = p
        return weight * (nug + var * (1.0 - correlation(r, ell, covariance)) - gamma) / gmax

    start = np.array([max(1.0, size / 4), gmax, 0.01 * gmax])
    lower, upper = np.array([0.3, 1e-6 * gmax, 0.0]), np.array([10.0 * size, 20.0 * gmax, gmax])
    scale = np.array([size / 4, gmax, gmax])
    fit = least_squares(resid, np.clip(start, lower, upper), bounds=(lower, upper), x_scale=scale)
    ell, var, nug = map(float, fit.x)
    return ell, var, nug


def fit_oi(
    y: np.ndarray,
    valid: np.ndarray,
    *,
    covariance: str,
    max_fit_patches: int,
) -> OIParams:
    """Fit per-channel OI parameters on TRAIN fields y (N,C,H,W) degC by the empirical variogram.

    Uses up to `max_fit_patches` evenly spaced patches; each field is de-meaned (the OI
    mean is the patch mean), so the sill is the within-patch variance. Lags up to half
    the patch size; fit by `fit_variogram`.
    """
    if covariance not in COVARIANCES:
        raise ConfigError(f"evaluate.oi.covariance must be one of {COVARIANCES}, got {covariance!r}")
    if max_fit_patches < 1:
        raise ConfigError(f"evaluate.oi.max_fit_patches must be >= 1, got {max_fit_patches}")
    n, c, h, w = y.shape
    if n == 0:
        raise DataError("no training patches to fit the OI covariance; check the train split")
    pick = np.unique(np.linspace(0, n - 1, min(n, max_fit_patches)).round().astype(int))
    fields = np.asarray(y[pick], np.float64)
    ok = np.asarray(valid[pick], bool) & np.isfinite(fields)
    count = ok.sum(axis=(-2, -1), keepdims=True)
    mean = np.where(ok, fields, 0.0).sum(axis=(-2, -1), keepdims=True) / np.maximum(count, 1)
    anomalies = np.where(ok, fields - mean, 0.0)
    ells, variances, nuggets = [], [], []
    for k in range(c):
        r, gamma, npairs = empirical_variogram(anomalies[:, k], ok[:, k], max(2, min(h, w) // 2))
        try:
            ell, var, nug = fit_variogram(r, gamma, npairs, covariance, max(h, w))
        except DataError as exc:
            raise DataError(f"OI fit failed for depth channel {k}: {exc}") from exc
        ells.append(ell)
        variances.append(var)
        nuggets.append(nug)
        log.info("OI fit channel %d: length %.2f px, variance %.4g, nugget %.4g degC^2", k, ell, var, nug)
    return OIParams(covariance, tuple(ells), tuple(variances), tuple(nuggets))


def oi(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    params: OIParams,
    *,
    fill: float | Sequence[float] = np.nan,
) -> np.ndarray:
    """GP posterior mean m + k_*^T (K + nugget I)^-1 (v - m), m = mean of the patch's observations.

    Uses only the observed pixels of the same patch and channel. With nugget 0 it reproduces
    the observations (up to a 1e-8 * variance jitter); with a fitted nugget it is a smoother
    that does not pass exactly through them (only hidden pixels are scored).
    """
    return _oi(values, observed, valid, params, fill, np.nan, with_std=False)[0]


def oi_posterior(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    params: OIParams,
    *,
    fill: float | Sequence[float] = np.nan,
    fill_std: float | Sequence[float] = np.nan,
) -> tuple[np.ndarray, np.ndarray]:
    """`oi`'s mean and its Gaussian predictive std sqrt(variance - k_*^T (K + nugget I)^-1 k_* + nugget)
    (the posterior variance of the field plus the nugget: the spread of a new value at that pixel).
    Fields without observations get `fill` and `fill_std`. Returns float32 (mean, std) (N,C,H,W)."""
    return _oi(values, observed, valid, params, fill, fill_std, with_std=True)


def _oi(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    params: OIParams,
    fill: float | Sequence[float],
    fill_std: float | Sequence[float],
    *,
    with_std: bool,
) -> tuple[np.ndarray, np.ndarray]:
    _check_shapes(values, observed, valid)
    if len(params.length_scale) != values.shape[1]:
        raise DataError(f"OI parameters have {len(params.length_scale)} channels, data has {values.shape[1]}")

    def solve(k: int, pts: np.ndarray, vals: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        ell, var, nug = params.length_scale[k], params.variance[k], params.nugget[k]
        mean = vals.mean()
        gram = var * correlation(cdist(pts, pts), ell, params.covariance)
        factor = _cholesky(gram, nug + 1e-8 * var)
        cross = var * correlation(cdist(query, pts), ell, params.covariance)  # (Q, P): k_*^T per query pixel
        pred = mean + cross @ cho_solve(factor, vals - mean)
        if not with_std:
            return pred, None
        v = solve_triangular(factor[0], cross.T, lower=True, check_finite=False)  # L^-1 k_*, (P, Q)
        return pred, np.sqrt(np.maximum(var - np.sum(v * v, axis=0), 0.0) + nug)

    return _per_field(values, observed, valid, fill, solve, fill_std)


# --- regression on the EO + OI of the residuals (oi_eo) ------------------------------------


@dataclass(frozen=True)
class EORegression:
    """Per depth level c: y ~ intercept_c + slope_c * eo (degC), fitted on the train split.

    `residual_std`: std of y - regression over the fitted pixels (what a field without observations
    is off by); `eo_mean`: the mean EO of those pixels, used where the EO is missing on a valid pixel.
    """

    intercept: tuple[float, ...]
    slope: tuple[float, ...]
    residual_std: tuple[float, ...]
    eo_mean: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def field(self, eo: np.ndarray) -> np.ndarray:
        """Regression field (N,C,H,W) degC from eo (N,1,H,W) degC (NaN EO -> `eo_mean`)."""
        eo = np.where(np.isfinite(eo), eo, self.eo_mean).astype(np.float64)
        a = np.asarray(self.intercept, np.float64)[None, :, None, None]
        b = np.asarray(self.slope, np.float64)[None, :, None, None]
        return a + b * eo


def fit_eo_regression(y: np.ndarray, eo: np.ndarray, valid: np.ndarray) -> EORegression:
    """Least squares per level c over the train pixels where y is valid and the EO finite:
    slope = cov(eo, y) / var(eo), intercept = mean(y) - slope mean(eo) (slope 0 for a constant EO).

    y, valid (N,C,H,W); eo (N,1,H,W) degC (NaN on land).
    """
    if y.ndim != 4 or eo.shape != (y.shape[0], 1, *y.shape[2:]) or valid.shape != y.shape:
        raise ValueError(f"fit_eo_regression: y/valid (N,C,H,W) and eo (N,1,H,W), got {y.shape}, {eo.shape}")
    x_all = np.asarray(eo[:, 0], np.float64)
    intercept, slope, resid_std, eo_used = [], [], [], []
    for k in range(y.shape[1]):
        ok = np.asarray(valid[:, k], bool) & np.isfinite(y[:, k]) & np.isfinite(x_all)
        if ok.sum() < 2:
            raise DataError(f"no train pixels with both a valid level {k} and an EO value to fit oi_eo's "
                            "regression; check data.eo and the train split")
        x, t = x_all[ok], np.asarray(y[:, k][ok], np.float64)
        xm, tm = x.mean(), t.mean()
        sxx = float(np.mean(np.square(x - xm)))
        b = float(np.mean((x - xm) * (t - tm)) / sxx) if sxx > 0 else 0.0
        a = float(tm - b * xm)
        intercept.append(a)
        slope.append(b)
        resid_std.append(float(np.std(t - (a + b * x))))
        eo_used.append(x)
        log.info("oi_eo regression level %d: y = %.4g + %.4g eo, residual std %.4g degC", k, a, b, resid_std[-1])
    return EORegression(tuple(intercept), tuple(slope), tuple(resid_std), float(np.concatenate(eo_used).mean()))


def oi_eo(
    values: np.ndarray,
    observed: np.ndarray,
    valid: np.ndarray,
    eo: np.ndarray,
    regression: EORegression,
    params: OIParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Regression field f = a_c + b_c eo plus the OI of the residuals v - f at the observations
    (`oi_posterior` with `params` fitted on the train residuals); std = the residual OI's predictive
    std. Fields without observations get f and the regression's residual std. Returns float32 (mean, std)."""
    base = regression.field(eo)
    resid, std = oi_posterior(values - base, observed, valid, params, fill=0.0, fill_std=regression.residual_std)
    pred = np.where(valid.astype(bool), base + resid, np.nan).astype(np.float32)
    return pred, std


def _cholesky(gram: np.ndarray, diag: float) -> tuple[np.ndarray, bool]:
    """Cholesky of gram + diag I; the jitter grows x100 (up to 3 times) if it is not numerically PD."""
    eye = np.eye(len(gram))
    for attempt in range(4):
        try:
            return cho_factor(gram + diag * 100.0**attempt * eye, lower=True)
        except LinAlgError:
            continue
    raise DataError("OI covariance matrix is not positive definite even with jitter; check evaluate.oi parameters")


# --- workflow entry point ---------------------------------------------------------------


def eo_missing_message(where: str) -> str:
    return (f"evaluate.methods includes 'oi_eo' (a regression on the EO), but {where} has no EO "
            "(data.eo: none): set data.eo to 'surface' or 'ostia', or remove oi_eo from evaluate.methods")


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
    per-level EO regression on the train truth and its OI on the train residuals. idw: std = 0;
    oi/oi_eo: thetao_std = the Gaussian predictive std (attribute predictive = "gaussian"), fields
    without observations get the training mean (oi: the level's training std; oi_eo: the regression
    field and its residual std). No members. Returns a summary dict.
    """
    if method not in BASELINES:
        raise ConfigError(f"baseline method must be one of {BASELINES}, got {method!r}")
    test, manifest = load_degc(test_dir)
    summary: dict[str, Any] = {"method": method, "scenario": scenario, "n_patches": int(len(test["truth"]))}
    attrs: dict[str, Any] = {"method": method, "scenario": scenario, "checkpoint": "",
                             "config_hash": config_hash({"method": method, **dict(method_cfg)})}
    std = None
    if method == "idw":
        pred = idw(test["obs"], test["observed"], test["valid"], power=float(method_cfg["power"]),
                   neighbours=int(method_cfg["neighbours"]), fill=test["mean"])
    else:
        if method == "oi_eo" and "eo" not in test:
            raise ConfigError(eo_missing_message(f"the test shards {test_dir}"))
        train, _ = load_degc(train_dir)
        fit = {"covariance": str(method_cfg["covariance"]), "max_fit_patches": int(method_cfg["max_fit_patches"])}
        if method == "oi":
            params = fit_oi(train["truth"], train["valid"], **fit)
            pred, std = oi_posterior(test["obs"], test["observed"], test["valid"], params, fill=test["mean"],
                                     fill_std=np.asarray(manifest["stats"]["std"], np.float64))
        else:
            if "eo" not in train:
                raise ConfigError(eo_missing_message(f"the train shards {train_dir}"))
            regression = fit_eo_regression(train["truth"], train["eo"], train["valid"])
            residual = train["truth"] - regression.field(train["eo"])
            params = fit_oi(residual, train["valid"] & np.isfinite(residual), **fit)
            pred, std = oi_eo(test["obs"], test["observed"], test["valid"], test["eo"], regression, params)
            summary["regression"] = regression.to_dict()
            attrs["eo_regression"] = json.dumps(regression.to_dict())
        summary["params"] = params.to_dict()
        attrs["oi_params"] = json.dumps(params.to_dict())
        attrs[PREDICTIVE_ATTR] = "gaussian"
    write_samples(
        out_nc, pred=pred, truth=test["truth"], observed=test["observed"], valid=test["valid"],
        land=test["land"], depth=np.asarray(manifest["depth"], np.float32), lat=test["lat"], lon=test["lon"],
        time=test["time"], patch_id=test["patch_id"], std=std, attrs=attrs,
        std_long_name=None if std is None else "Gaussian predictive standard deviation (OI posterior + nugget)",
    )
    summary["config_hash"] = attrs["config_hash"]
    return summary
