"""Tiny samples netCDFs (depthdif.samples.write_samples) and metric CSVs for eval/plot tests.

    from eval_factory import write_tiny_samples
    path = write_tiny_samples(tmp_path / "ambient.nc", method="ambient", members=4)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from depthdif.io import seed_for
from depthdif.samples import PREDICTIVE_ATTR, write_samples

EPOCH_2015 = 1420070400
DEPTHS = (0.494, 47.37, 155.85, 318.13)


def tiny_truth(
    n: int, channels: int, size: int, seed: int, per_level: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth degC with NaN, valid, observed): smooth fields, a land corner growing with depth, ~10 % observed
    (whole columns; `per_level`: an independent draw per level, and level 0 of patch 0 unobserved)."""
    rng = np.random.default_rng(seed_for("eval_factory", seed))
    truth = np.empty((n, channels, size, size))
    for i in range(n):
        base = ndimage.gaussian_filter(rng.normal(size=(size, size)), 2.5, mode="wrap")
        base /= base.std()
        for k in range(channels):
            truth[i, k] = 20.0 - 4.0 * k + (1.5 - 0.3 * k) * base
    yy, xx = np.mgrid[0:size, 0:size]
    land = (yy + xx) < size // 3
    valid = np.empty(truth.shape, bool)
    for k in range(channels):
        valid[:, k] = ~(ndimage.binary_dilation(land, iterations=k) if k else land)
    truth[~valid] = np.nan
    observed = (rng.random((n, channels if per_level else 1, size, size)) < 0.1) & valid
    if per_level:
        observed[0, 0] = False
    return truth, valid, observed


def write_tiny_samples(
    path: Path,
    *,
    method: str = "idw",
    scenario: str = "tiny",
    members: int = 0,
    n: int = 3,
    channels: int = 2,
    size: int = 16,
    noise: float = 0.5,
    seed: int = 0,
    gaussian: float | None = None,
    per_level: bool = False,
) -> Path:
    """Samples netCDF: truth from `tiny_truth(seed)`; prediction = truth + N(0, noise) on hidden
    pixels (exact where observed); with `members` >= 2, members = truth + N(0, noise) and
    pred/std their mean/std (a calibrated-ish ensemble); with `gaussian`, std = `gaussian` everywhere
    and the file says it is a Gaussian predictive std (like oi): `gaussian` = `noise` is calibrated;
    `per_level`: the per-level observation mask of `tiny_truth`."""
    truth, valid, observed = tiny_truth(n, channels, size, seed, per_level)
    rng = np.random.default_rng(seed_for("eval_factory_pred", method, seed))
    filled = np.nan_to_num(truth, nan=0.0)
    ens = None
    if members >= 2:
        ens = filled[:, None] + noise * rng.normal(size=(n, members, channels, size, size))
        ens = np.where(observed[:, None], filled[:, None], ens)
        pred, std = ens.mean(axis=1), ens.std(axis=1, ddof=1)
    else:
        pred = np.where(observed, filled, filled + noise * rng.normal(size=filled.shape))
        std = None
    attrs = {"method": method, "scenario": scenario, "checkpoint": "", "config_hash": "test"}
    if gaussian is not None:
        std = np.full(filled.shape, float(gaussian))
        attrs[PREDICTIVE_ATTR] = "gaussian"
    step = 0.25 * np.arange(size)
    write_samples(
        path, pred=pred, truth=truth, observed=observed, valid=valid, land=~valid[:, 0],
        depth=np.asarray(DEPTHS[:channels], np.float32),
        lat=np.tile(30.0 + step, (n, 1)), lon=np.tile(-30.0 + step, (n, 1)),
        time=EPOCH_2015 + 86400 * np.arange(n), patch_id=np.array([f"2015-01_y{16 * i:05d}_x00000" for i in range(n)]),
        std=std, members=ens, attrs=attrs,
    )
    return path
