"""Ensemble inflation fitted on the validation split: a power law of the members' own spread.

A diffusion ensemble whose spread does not match its error is rescaled about its own mean,
per pixel, from the member std s (ddof 1, degC) at that pixel:

    x_k' = x̄ + a s^(p − 1) (x_k − x̄),   so the new member std is  s' = a s^p

a makes the validation spread/skill (`eval.metrics.spread_skill`, finite-ensemble corrected,
hidden pixels pooled over the levels with spread) exactly 1, and p ∈ [0, 1] brings the
validation spread deciles' RMSE/spread closest to 1 in the worst decile: where the errors grow
more slowly than the spread (p < 1), the narrowest pixels are widened most. With p = 1 this is
the multiplicative τ = RMSE / spread. The file keeps (a, p) per level, so a hand-set τ per
level (`Inflation.multiplicative`) is applied the same way. The mean (and its RMSE) is
unchanged; clamped observations have no deviation and stay exact. It reshapes the model's own
deviations, whose pattern says where the errors are: it adds no independent noise. A level
without spread (identical members) is left as it is (a = p = 1, logged). It is fitted against
dense truth, so it is for objectives that train on it (`standard`).
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
    """a_c and p_c per depth level (s' = a_c s^p_c, s in degC), with the validation figures they were fitted on."""

    factors: tuple[float, ...]  # a_c (degC^(1 - p_c))
    exponents: tuple[float, ...]  # p_c
    spread_skill: tuple[float, ...]  # validation spread/skill before inflation
    rmse: tuple[float, ...]  # validation RMSE of the ensemble mean (degC)
    n_hidden: tuple[int, ...]
    members: int

    @classmethod
    def multiplicative(cls, factors: Sequence[float]) -> Inflation:
        """x̄ + τ_c (x_k − x̄): p_c = 1 (e.g. a hand-set τ)."""
        n = len(factors)
        return cls(tuple(map(float, factors)), (1.0,) * n, (math.nan,) * n, (math.nan,) * n, (0,) * n, 0)

    def describe(self) -> str:
        """For the samples' attrs: 'a=… p=…' per level."""
        return " ".join(f"a={a:.6g},p={p:.4g}" for a, p in zip(self.factors, self.exponents))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Inflation:
        try:
            data = json.loads(Path(path).read_text())
            return cls(tuple(map(float, data["factors"])), tuple(map(float, data["exponents"])),
                       tuple(map(float, data["spread_skill"])), tuple(map(float, data["rmse"])),
                       tuple(map(int, data["n_hidden"])), int(data["members"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read ensemble inflation {path} ({exc}); rerun rule calibrate_ensemble") from exc


def fit_inflation(samples_nc: str | os.PathLike[str]) -> Inflation:
    """a_c, p_c of a validation samples netCDF with members, pooled over patches (module docstring)."""
    ds = open_samples(samples_nc)
    if "thetao_members" not in ds or ds.sizes.get("member", 0) < 2:
        raise DataError(f"{samples_nc} has no ensemble of 2 or more members: ensemble inflation needs "
                        "sample.members >= 2 and sample.save_members true")
    dims = ("patch", "depth", "y", "x")
    members = ds["thetao_members"].transpose("member", *dims).values.astype(np.float64)
    truth = ds["thetao_true"].transpose(*dims).values.astype(np.float64)
    valid = ds["valid"].transpose(*dims).values.astype(bool) & np.isfinite(truth)
    hidden = metrics.hidden_mask(ds["observed"].transpose(*dims).values, valid)
    hidden = np.broadcast_to(hidden, truth.shape)
    axis = (0, 2, 3)  # pooled over patches and pixels: one (a, p) per level
    ss = np.atleast_1d(metrics.spread_skill(members, truth, hidden, axis))
    mean = members.mean(0)
    rmse = np.atleast_1d(metrics.rmse(mean, truth, hidden, axis))
    std = members.std(0, ddof=1)
    k = members.shape[0]
    n_hidden = hidden.sum(axis)
    spread_levels = []
    for c, (ratio, n) in enumerate(zip(ss, n_hidden)):
        if n == 0 or not math.isfinite(ratio):
            continue  # nothing hidden at this level: nothing to calibrate
        if ratio < MIN_SPREAD_SKILL:
            # identical members (e.g. a residual model still at its zero-initialised start: every member is
            # the first guess): scaling cannot widen them; they stay as sampled, and the file says so
            log.warning("%s: no ensemble spread at depth level %d (validation spread/skill %.2g): not inflated; "
                        "the members are identical", samples_nc, c, ratio)
            continue
        spread_levels.append(c)
    factors, exponents = [1.0] * len(ss), [1.0] * len(ss)
    if spread_levels:
        # one (a, p) pooled over the levels with spread: on the default's 24-patch validation split a
        # 2-fold split of it scored the worst spread decile 1.21x/1.22x pooled against 1.24x/1.23x per level
        sel = np.zeros(len(ss), bool)
        sel[spread_levels] = True
        pixels = hidden & sel[None, :, None, None]
        s, err = std[pixels], (mean - truth)[pixels]
        p = spread_exponent(s, err, k)
        a = _pooled_scale(s, err, p, k)
        for c in spread_levels:
            factors[c], exponents[c] = a, p
    return Inflation(tuple(factors), tuple(exponents), tuple(float(v) for v in ss), tuple(float(v) for v in rmse),
                     tuple(int(v) for v in n_hidden), int(k))


def _pooled_scale(spread: np.ndarray, error: np.ndarray, p: float, members: int) -> float:
    """a with pooled spread/skill 1 for s' = a s^p: sqrt((K+1)/K) a sqrt(mean s^2p) = RMSE (s = 0 stays 0)."""
    scaled = np.where(spread > 0, spread ** p, 0.0)
    return float(math.sqrt(np.mean(np.square(error)))
                 / (math.sqrt((members + 1) / members) * math.sqrt(np.mean(np.square(scaled)))))


def spread_exponent(spread: np.ndarray, error: np.ndarray, members: int, bins: int = 10) -> float:
    """p in [0, 1] (steps of 0.01) whose power law s' = a s^p, a from `_pooled_scale`, puts the spread
    deciles' RMSE/spread (`metrics.spread_error_bins` of the finite-ensemble corrected spread, the figure
    `calibration.csv` reports) closest to 1 in the worst decile; 1 (plain scaling) when fewer than 3
    deciles have spread."""
    # sorted once by s: s^p keeps that order, so each spread_error_bins sort below is of sorted data (linear)
    # and every p is scored on the same deciles
    order = np.argsort(spread, kind="stable")
    spread, error = spread[order], error[order]
    first = metrics.spread_error_bins(spread, error, bins)["ratio"]
    if np.count_nonzero(np.isfinite(first) & (first > 0)) < 3:
        return 1.0
    correction = math.sqrt((members + 1) / members)
    best, best_p = math.inf, 1.0
    for p in np.round(np.linspace(1.0, 0.0, 101), 2):  # from plain scaling down: ties keep the larger p
        scaled = _pooled_scale(spread, error, p, members) * np.where(spread > 0, spread ** p, 0.0)
        ratio = metrics.spread_error_bins(correction * scaled, error, bins)["ratio"]
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        worst = float(np.max(np.abs(np.log(ratio))))
        if worst < best - 1e-12:
            best, best_p = worst, float(p)
    return best_p


def inflate(members: torch.Tensor, inflation: Inflation, level_std: Sequence[float] | None = None) -> torch.Tensor:
    """x̄ + a_c s^(p_c − 1) (x_k − x̄) for members (B, K, C, H, W); s the ddof-1 member std in degC,
    `level_std` the degC per unit of `members` per level (the checkpoint's normalisation; None: degC)."""
    a = torch.as_tensor(inflation.factors, dtype=members.dtype, device=members.device)
    p = torch.as_tensor(inflation.exponents, dtype=members.dtype, device=members.device)
    if a.numel() != members.shape[2]:
        raise DataError(f"ensemble inflation has {a.numel()} depth levels but the samples have {members.shape[2]}; "
                        "rerun rule calibrate_ensemble")
    unit = torch.ones_like(a) if level_std is None else torch.as_tensor(
        list(level_std), dtype=members.dtype, device=members.device)
    a, p, unit = (v[None, None, :, None, None] for v in (a, p, unit))
    mean = members.mean(1, keepdim=True)
    s = members.std(1, keepdim=True) * unit  # degC
    # a s^(p-1) where the members differ; deviations are 0 elsewhere, so any finite factor leaves them there
    factor = torch.where(s > 0, a * s.clamp_min(1e-12) ** (p - 1), a)
    return mean + factor * (members - mean)
