"""Where the ambient loss is scored vs where the model is used: distance distributions.

Inference: the distance (px) from each hidden ocean pixel to the nearest observation (A).
Training: the distance from each withheld observation (A minus Ã) to the nearest kept one
(Ã), for the per-pixel further drop and for the block drop. A loss that only scores points
1-3 px from a kept one never trains the model where most hidden pixels lie.

    .venv/bin/python bench/ambient_distances.py results/shards/tracks95/train
    .venv/bin/python bench/ambient_distances.py --quick   # synthetic grid masks, seconds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from depthdif.diffusion.further_drop import ambient_masks  # noqa: E402

PERCENTILES = (10, 25, 50, 75, 90)


def nearest(source: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distances (px) from the True pixels of `targets` to the nearest True pixel of `source` (per 2-D field)."""
    out = [distance_transform_edt(~s)[t] for s, t in zip(source, targets) if s.any() and t.any()]
    return np.concatenate(out) if out else np.zeros(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards", nargs="?", type=Path, help="a train shard folder (x_valid, y_valid)")
    p.add_argument("--drop", type=float, default=0.5, help="further-drop probability δ")
    p.add_argument("--block-px", type=int, default=8)
    p.add_argument("--repeats", type=int, default=4, help="draws of Ã per patch")
    p.add_argument("--quick", action="store_true", help="synthetic track-like masks instead of shards")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick or args.shards is None:
        rng = np.random.default_rng(0)
        a = np.zeros((32, 1, 32, 32), bool)
        for i in range(32):
            for _ in range(3):
                r, c = rng.integers(0, 32, 2)
                for step in range(20):
                    a[i, 0, (r + step) % 32, (c + step // 2) % 32] = True
        valid = np.ones_like(a)
    else:
        from depthdif.shards import load_arrays

        arrays = load_arrays(args.shards)
        a, valid = arrays["x_valid"].astype(bool), arrays["y_valid"].astype(bool)
    surface_a, surface_valid = a[:, 0], valid[:, 0]
    rows = {"inference: hidden → nearest observation": nearest(surface_a, surface_valid & ~surface_a)}
    for pattern in ("pixels", "blocks"):
        gen = torch.Generator().manual_seed(0)
        dists = []
        for _ in range(args.repeats):
            kept = ambient_masks(torch.from_numpy(a.astype(np.float32)), args.drop, 4, True, generator=gen,
                                 pattern=pattern, block_px=args.block_px).numpy()[:, 0] > 0.5
            dists.append(nearest(kept, surface_a & ~kept))
        rows[f"training ({pattern}, δ={args.drop}): withheld → nearest kept"] = np.concatenate(dists)
    print(f"{'distance (px)':58s} " + " ".join(f"p{q:<5d}" for q in PERCENTILES) + " n")
    for name, d in rows.items():
        print(f"{name:58s} " + " ".join(f"{np.percentile(d, q):<6.1f}" for q in PERCENTILES) + f" {len(d)}")
    infer = rows["inference: hidden → nearest observation"]
    for pattern in ("pixels", "blocks"):
        train = rows[f"training ({pattern}, δ={args.drop}): withheld → nearest kept"]
        print(f"RATIO median_withheld_distance_{pattern}/median_hidden_distance = "
              f"{np.median(train) / np.median(infer):.3f}x")


if __name__ == "__main__":
    main()
