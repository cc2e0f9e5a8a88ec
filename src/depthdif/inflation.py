"""Multiplicative ensemble inflation fitted on the validation split.

A diffusion ensemble whose members agree more closely than their error (spread/skill < 1)
is widened about its own mean, per depth level c:

    x_k' = x̄ + τ_c (x_k − x̄),    τ_c = RMSE_c(x̄) / spread_c    (validation split, hidden pixels)

with spread_c = √((K+1)/K · mean s²) the finite-ensemble corrected spread of
`eval.metrics.spread_skill`, so the validation spread/skill becomes 1 at every level. The mean
(and its RMSE) is unchanged; clamped observations have no deviation and stay exact. It scales
the model's own deviations, whose pattern says where the errors are (the binned spread check
in `calibration.csv` tests that): it adds no independent noise. A level without spread
(identical members) is left as it is (τ_c = 1, logged). τ_c is fitted against dense
truth, so it is for objectives that train on it (`standard`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from depthdif.errors import DataError
from depthdif.eval import metrics
from depthdif.io import atomic_output
from depthdif.samples import open_samples

log = logging.getLogger("depthdif.inflation")

#: a validation spread below this share of the RMSE counts as no spread: τ would only amplify rounding
MIN_SPREAD_SKILL = 1e-3


@dataclass(frozen=True)
class Inflation:
    """τ per depth level, with the validation figures it was fitted on."""

    factors: tuple[float, ...]
    spread_skill: tuple[float, ...]  # validation spread/skill before inflation
    rmse: tuple[float, ...]  # validation RMSE of the ensemble mean (degC)
    n_hidden: tuple[int, ...]
    members: int

    def to_json(self, path: str | os.PathLike[str]) -> None:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Inflation:
        try:
            data = json.loads(Path(path).read_text())
            return cls(tuple(map(float, data["factors"])), tuple(map(float, data["spread_skill"])),
                       tuple(map(float, data["rmse"])), tuple(map(int, data["n_hidden"])), int(data["members"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read ensemble inflation {path} ({exc}); rerun rule calibrate_ensemble") from exc


def fit_inflation(samples_nc: str | os.PathLike[str]) -> Inflation:
    """τ_c = 1 / (spread/skill)_c of a validation samples netCDF with members, pooled over patches."""
    ds = open_samples(samples_nc)
    if "thetao_members" not in ds or ds.sizes.get("member", 0) < 2:
        raise DataError(f"{samples_nc} has no ensemble of 2 or more members: ensemble inflation needs "
                        "sample.members >= 2 and sample.save_members true")
    dims = ("patch", "depth", "y", "x")
    members = ds["thetao_members"].transpose("member", *dims).values.astype(np.float64)
    truth = ds["thetao_true"].transpose(*dims).values.astype(np.float64)
    valid = ds["valid"].transpose(*dims).values.astype(bool) & np.isfinite(truth)
    hidden = metrics.hidden_mask(ds["observed"].transpose(*dims).values, valid)
    axis = (0, 2, 3)  # pooled over patches and pixels: one τ per level
    ss = np.atleast_1d(metrics.spread_skill(members, truth, hidden, axis))
    rmse = np.atleast_1d(metrics.rmse(members.mean(0), truth, hidden, axis))
    n_hidden = hidden.sum(axis)
    factors = []
    for c, (ratio, n) in enumerate(zip(ss, n_hidden)):
        if n == 0 or not math.isfinite(ratio):
            factors.append(1.0)  # nothing hidden at this level: nothing to calibrate
        elif ratio < MIN_SPREAD_SKILL:
            # identical members (e.g. a residual model still at its zero-initialised start: every member is
            # the first guess): scaling cannot widen them; they stay as sampled, and the file says so
            log.warning("%s: no ensemble spread at depth level %d (validation spread/skill %.2g): not inflated; "
                        "the members are identical", samples_nc, c, ratio)
            factors.append(1.0)
        else:
            factors.append(float(1.0 / ratio))
    return Inflation(tuple(factors), tuple(float(v) for v in ss), tuple(float(v) for v in rmse),
                     tuple(int(v) for v in n_hidden), int(members.shape[0]))


def inflate(members: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """x̄ + τ_c (x_k − x̄) for members (B, K, C, H, W)."""
    tau = torch.as_tensor(list(factors), dtype=members.dtype, device=members.device)
    if tau.numel() != members.shape[2]:
        raise DataError(f"ensemble inflation has {tau.numel()} depth levels but the samples have {members.shape[2]}; "
                        "rerun rule calibrate_ensemble")
    mean = members.mean(1, keepdim=True)
    return mean + tau[None, None, :, None, None] * (members - mean)
