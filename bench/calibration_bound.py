"""What spread/skill can a calibrated ensemble reach here? Error tails and the CRPS-optimal spread.

Spread/skill (RMS spread / RMSE) is 1 for a calibrated ensemble when its errors are about Gaussian
at each pixel's spread. This measures, without the test split, what the data allow, with the OI
first guess of a finished run's standard model: its errors are honest on the training patches
too (it learns nothing per patch), and its posterior std s_g gives the spread's shape (the real
case's standard ensemble is that first guess plus the trained members' deviations). On the train +
validation hidden pixels it prints

  tails   RMSE/MAE, kurtosis and the share of the squared error in the largest 1 % of errors
          (a Gaussian: 1.25, 3, 8.5 %);

and, for `--draws` random partitions of the train + validation tile blocks into a held-out group
the size of the test split and a calibration set, the held-out spread/skill, CRPS (closed-form
Gaussian, `eval.metrics.crps_gaussian`) and spread-decile RMSE/spread of s = c·shape with c

  val-ss1    for spread/skill 1 on a set the size of the validation split (today's fit),
  pool-ss1   for spread/skill 1 on every block not held out,
  pool-crps  for the lowest CRPS on every block not held out,
  oracle     for the lowest CRPS on the held-out group itself (no fit can beat it),

CRPS as a ratio to the oracle's. `--shape posterior` is s_g; `posterior+gradient` fits
log σ = w₀ + w₁ log s_g + w₂ log(|∇g|/median + 0.05) by Gaussian likelihood on the calibration set
(g the first guess: its fronts), then c on top.

    .venv/bin/python bench/real_case.py --split-seeds 0        # a finished run
    .venv/bin/python bench/calibration_bound.py /tmp/depthdif-real-case/split0

RATIO line per scenario: the oracle's median spread/skill (≈ 1 where a calibrated spread is also the
sharpest; well below 1 where heavy tails make the CRPS-best spread narrower than the RMSE).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize, minimize_scalar
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from depthdif.dataset import ShardDataset  # noqa: E402
from depthdif.eval import metrics  # noqa: E402
from depthdif.inference import load_checkpoint  # noqa: E402
from depthdif.reconstruction import ModelSpec, build_prior  # noqa: E402

SPREAD_SKILL_BAND = (0.8, 1.2)
DECILE_BAND = (0.7, 1.4)
FITS = ("val-ss1", "pool-ss1", "pool-crps", "oracle")


def block_pixels(run: Path, scenario: str, method: str) -> dict[str, np.ndarray]:
    """{block: (3, n) first-guess error, posterior std, |∇ first guess|} on the hidden pixels of the
    train and val patches (normalised units)."""
    ckpt = load_checkpoint(run / "results" / "models" / scenario / method / "model.ckpt")
    prior = build_prior(ModelSpec.from_hparams(ckpt["hparams"]))
    if prior is None:
        raise SystemExit(f"{run}: the {method} model of {scenario} has no OI first guess (model.first_guess.method)")
    index = pd.read_parquet(run / "results" / "patches" / "index.parquet").set_index("patch_id")
    parts: dict[str, list[np.ndarray]] = {}
    for split in ("train", "val"):
        data = ShardDataset(run / "results" / "shards" / scenario / split)
        blocks = index.loc[data.patch_ids, "block"].to_numpy()
        start = 0
        with torch.no_grad():
            for batch in DataLoader(data, batch_size=64, shuffle=False):
                _, guess, std = prior.interpolate(batch["x"], batch["x_valid"])
                gy, gx = torch.gradient(guess.double(), dim=(-2, -1))
                grad = torch.hypot(gy, gx)
                hidden = (batch["y_valid"] > 0.5) & (batch["x_valid"] < 0.5)
                for i in range(len(guess)):
                    h = hidden[i]
                    parts.setdefault(blocks[start + i], []).append(np.stack([
                        (guess[i] - batch["y"][i])[h].double().numpy(), std[i][h].double().numpy(),
                        grad[i][h].numpy()]))
                start += len(guess)
    return {b: np.concatenate(v, axis=1) for b, v in parts.items()}


def crps(error: np.ndarray, sigma: np.ndarray) -> float:
    return float(metrics.crps_gaussian(0.0, sigma, error, np.ones(error.shape, bool)))


def spread_skill(error: np.ndarray, sigma: np.ndarray) -> float:
    return float(metrics.spread_skill_gaussian(np.zeros_like(error), sigma, error, np.ones(error.shape, bool)))


def shape_fn(kind: str, calib: np.ndarray, grad_ref: float):  # type: ignore[no-untyped-def]
    """The spread's shape (before c) as a function of (3, n) pixels, fitted on `calib` where needed."""
    def features(p: np.ndarray) -> np.ndarray:
        return np.stack([np.ones(p.shape[1]), np.log(np.maximum(p[1], 1e-6)), np.log(p[2] / grad_ref + 0.05)], 1)

    if kind == "posterior":
        return lambda p: np.maximum(p[1], 1e-6)
    x, e2 = features(calib), calib[0] ** 2

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        log_sigma = x @ w
        inv = np.exp(-2 * log_sigma)
        return float(np.mean(log_sigma + 0.5 * e2 * inv)), x.T @ (1 - e2 * inv) / len(e2)

    w = minimize(nll, np.array([math.log(math.sqrt(np.mean(e2))), 1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return lambda p: np.exp(features(p) @ w)


def best_crps_scale(error: np.ndarray, shape: np.ndarray) -> float:
    res = minimize_scalar(lambda t: crps(error, math.exp(t) * shape), bounds=(-6.0, 4.0), method="bounded",
                          options={"xatol": 1e-3})
    return math.exp(res.x)


def draws(pixels: dict[str, np.ndarray], n_test: int, n_val: int, n_draws: int, kind: str,
          seed: int) -> dict[str, np.ndarray]:
    """{fit: (draws, 4) held-out spread/skill, CRPS / oracle CRPS, lowest and highest decile RMSE/spread}."""
    blocks = sorted(pixels)
    if len(blocks) < n_test + n_val:
        raise SystemExit(f"{len(blocks)} train+val blocks cannot hold out {n_test} and calibrate on {n_val}")
    rng = np.random.default_rng(seed)
    grad_ref = float(np.median(np.concatenate([p[2] for p in pixels.values()])))
    out: dict[str, list[tuple[float, ...]]] = {k: [] for k in FITS}
    for _ in range(n_draws):
        order = [blocks[i] for i in rng.permutation(len(blocks))]
        held = np.concatenate([pixels[b] for b in order[:n_test]], axis=1)
        pool = np.concatenate([pixels[b] for b in order[n_test:]], axis=1)
        val = np.concatenate([pixels[b] for b in order[n_test:n_test + n_val]], axis=1)
        shape = shape_fn(kind, pool, grad_ref)
        held_shape, pool_shape, val_shape = shape(held), shape(pool), shape(val)
        scale = {"val-ss1": 1.0 / spread_skill(val[0], val_shape),
                 "pool-ss1": 1.0 / spread_skill(pool[0], pool_shape),
                 "pool-crps": best_crps_scale(pool[0], pool_shape),
                 "oracle": best_crps_scale(held[0], held_shape)}
        oracle = crps(held[0], scale["oracle"] * held_shape)
        for name, c in scale.items():
            sigma = c * held_shape
            ratio = metrics.spread_error_bins(sigma, held[0])["ratio"]
            ratio = ratio[np.isfinite(ratio)]
            out[name].append((spread_skill(held[0], sigma), crps(held[0], sigma) / oracle,
                              float(ratio.min()), float(ratio.max())))
    return {k: np.asarray(v) for k, v in out.items()}


def tails(error: np.ndarray) -> str:
    sq = np.sort(error**2)[::-1]
    top = sq[: len(sq) // 100].sum() / sq.sum()
    return (f"RMSE/MAE {math.sqrt(np.mean(sq)) / np.mean(np.abs(error)):.2f}, kurtosis "
            f"{np.mean(sq**2) / np.mean(sq) ** 2:.1f}, largest 1 % of errors hold {top:.0%} of the squared error")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a finished workflow folder (results/models, shards, patches/index)")
    p.add_argument("--scenarios", nargs="+", default=None, help="default: every scenario with a standard model")
    p.add_argument("--method", default="standard")
    p.add_argument("--shape", choices=("posterior", "posterior+gradient"), default="posterior")
    p.add_argument("--draws", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    index = pd.read_parquet(args.run / "results" / "patches" / "index.parquet")
    n_test, n_val = (int(index.loc[index["split"] == s, "block"].nunique()) for s in ("test", "val"))
    scenarios = args.scenarios or sorted(d.parent.name for d in (args.run / "results" / "models").glob(
        f"*/{args.method}"))
    print(f"{args.run}: first guess of {args.method}, shape {args.shape}; held-out groups of {n_test} blocks (the "
          f"test split's size), val-ss1 fitted on {n_val} (the validation split's); {args.draws} draws")
    for scenario in scenarios:
        pixels = block_pixels(args.run, scenario, args.method)
        print(f"  {scenario}: train+val hidden pixels: {tails(np.concatenate([v[0] for v in pixels.values()]))}")
        scores = draws(pixels, n_test, n_val, args.draws, args.shape, args.seed)
        for name, v in scores.items():
            ss, rel, lo, hi = v.T
            in_band = np.mean((ss >= SPREAD_SKILL_BAND[0]) & (ss <= SPREAD_SKILL_BAND[1]))
            deciles = np.mean((lo >= DECILE_BAND[0]) & (hi <= DECILE_BAND[1]))
            q = np.quantile(ss, [0.1, 0.5, 0.9])
            print(f"    {name:9s}: spread/skill 10/50/90 % {q[0]:.2f}/{q[1]:.2f}/{q[2]:.2f} (in "
                  f"{list(SPREAD_SKILL_BAND)}: {in_band:.0%}), CRPS / oracle median {np.median(rel):.3f}, deciles in "
                  f"{list(DECILE_BAND)}: {deciles:.0%}")
        print(f"RATIO {scenario} spread/skill of the CRPS-optimal spread (oracle, median) = "
              f"{np.median(scores['oracle'][:, 0]):.2f}")


if __name__ == "__main__":
    main()
