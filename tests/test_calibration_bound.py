"""bench/calibration_bound.py: the CRPS-optimal spread's spread/skill is ≈ 1 for Gaussian errors at
the spread and well below 1 for heavy-tailed ones (the real SST case's bound), on held-out blocks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from calibration_bound import draws, tails  # noqa: E402


def _blocks(heavy: bool, n_blocks: int = 12, n: int = 4000) -> dict[str, np.ndarray]:
    """(3, n) error, posterior std, gradient per block: errors N(0, s²), or a scale mixture where 1 % of
    the pixels err 10× their spread (fronts the spread does not know about)."""
    rng = np.random.default_rng(0)
    out = {}
    for b in range(n_blocks):
        s = np.exp(rng.uniform(np.log(0.05), np.log(0.5), n))
        scale = np.where(rng.random(n) < 0.01, 10.0, 1.0) if heavy else 1.0
        out[f"b{b:02d}"] = np.stack([s * scale * rng.normal(size=n), s, rng.uniform(0.1, 1.0, n)])
    return out


def test_the_crps_optimal_spread_is_narrow_only_for_heavy_tails() -> None:
    gaussian = draws(_blocks(heavy=False), n_test=4, n_val=2, n_draws=6, kind="posterior", seed=0)
    heavy = draws(_blocks(heavy=True), n_test=4, n_val=2, n_draws=6, kind="posterior", seed=0)
    # columns: held-out spread/skill, CRPS / oracle CRPS, lowest and highest decile RMSE/spread
    assert np.all(np.abs(gaussian["oracle"][:, 0] - 1.0) < 0.05), gaussian["oracle"]
    assert np.all(np.abs(gaussian["pool-ss1"][:, 0] - 1.0) < 0.05)
    assert np.all((gaussian["pool-ss1"][:, 2] > 0.85) & (gaussian["pool-ss1"][:, 3] < 1.15))
    # 1 % at 10x carries half the squared error: the sharpest calibrated-in-CRPS spread is far narrower
    assert np.all(heavy["oracle"][:, 0] < 0.8), heavy["oracle"]
    assert np.all(heavy["pool-ss1"][:, 1] > 1.02)
    assert np.all(heavy["pool-crps"][:, 1] >= 1.0)


def test_tails_of_a_gaussian() -> None:
    text = tails(np.random.default_rng(1).normal(size=200_000))
    assert "RMSE/MAE 1.25" in text and "kurtosis 3.0" in text and ("hold 8%" in text or "hold 9%" in text), text
