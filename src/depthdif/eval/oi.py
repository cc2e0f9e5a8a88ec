"""Optimal interpolation (Gaussian-process posterior mean and std, covariance fitted by the
empirical variogram on the train split) and `oi_eo`: OI of the residuals of a per-level
regression on the EO. Per patch and depth channel, with the array convention of `per_field`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular
from scipy.optimize import least_squares
from scipy.spatial.distance import cdist

from depthdif.errors import ConfigError, DataError
from depthdif.eval.per_field import check_shapes, per_field

log = logging.getLogger(__name__)

COVARIANCES = ("gaussian", "matern32")


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
            # name the count: a per-level A (ambient fits on it) can leave a level nearly empty
            raise DataError(f"OI fit failed for depth channel {k} ({int(ok[:, k].sum())} valid values in "
                            f"{len(pick)} fitted patches): {exc}") from exc
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
    check_shapes(values, observed, valid)
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

    return per_field(values, observed, valid, fill, solve, fill_std)


def _cholesky(gram: np.ndarray, diag: float) -> tuple[np.ndarray, bool]:
    """Cholesky of gram + diag I; the jitter grows x100 (up to 3 times) if it is not numerically PD."""
    eye = np.eye(len(gram))
    for attempt in range(4):
        try:
            return cho_factor(gram + diag * 100.0**attempt * eye, lower=True)
        except LinAlgError:
            continue
    raise DataError("OI covariance matrix is not positive definite even with jitter; check evaluate.oi parameters")


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

