"""One large dense map on CPU: a tiny diffusion model over a 1/4° region of 60° × 60° (240 × 240 px).

The region is the synthetic ocean (land included) read as patch extraction reads it; the
observations are the pixel scenario (95 % hidden) drawn on the full region; the model is an
untrained tiny U-Net (dim 8, 1-2) with the OI first guess, DDIM, windows of 32 px at stride 16.
Prints the map's wall time and peak memory, the full-region arrays' share of it, and the
overhead of the tiling (frames, cuts, blending) over the bare network forwards it needs:

    .venv/bin/python bench/map_scale.py              # 240 × 240 px, 4 levels, 4 members, 10 steps
    .venv/bin/python bench/map_scale.py --quick      # 64 × 64 px, 2 steps (smoke test)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import common
from depthdif.config import validate_config
from depthdif.data.patches import read_grid
from depthdif.data.synthetic import write_synthetic_period
from depthdif.diffusion.first_guess import PriorParams
from depthdif.inference import SampleSettings
from depthdif.maps import MapSettings, map_learned, simulate_observations
from depthdif.params import merge
from depthdif.reconstruction import ModelSpec, build_model
from depthdif.training.module import model_hparams


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--degrees", type=float, default=60.0, help="side of the square region (degrees, 1/4° grid)")
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--steps", type=int, default=10, help="DDIM steps")
    p.add_argument("--window", type=int, default=32, help="window side (px)")
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--batch", type=int, default=16, help="windows per forward (× members rows)")
    return p.parse_args()


def checkpoint(path: Path, cfg: dict, stats: dict, depth: list[float], window: int) -> Path:
    """An untrained tiny model.ckpt with the OI first guess (its output layer perturbed off zero)."""
    model = merge(cfg["model"], {"backbone": {"dim": 8, "dim_mults": [1, 2]}, "first_guess": {"method": "oi"}})
    channels = len(depth)
    prior = PriorParams("matern32", (6.0,) * channels, (0.5,) * channels, (0.0,) * channels, (0.3,) * channels,
                        1.0, "first_guess_std", (0.2,) * channels)
    manifest = {"channels": channels, "has_eo": True, "stats": stats, "depth": depth, "size": window, "scenario": "b"}
    hp = model_hparams("standard", model, cfg["objectives"]["standard"], manifest, prior)
    torch.manual_seed(0)
    net, _ = build_model(ModelSpec.from_hparams(hp))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.save({"state_dict": net.state_dict(), "hparams": hp, "global_step": 0, "config_hash": "bench"}, path)
    return path


def main() -> None:
    args = parse()
    device = common.setup(args)
    if args.quick:
        args.degrees, args.steps, args.members = 16.0, 2, 2
    cfg = validate_config({})
    depths = [0.494, 47.37, 155.85, 318.13, 541.09, 1062.44][: args.levels]
    lon0, lat0 = -70.0, -10.0
    data = merge(cfg["data"], {"depth_levels": depths, "eo": "ostia", "synthetic": {"resolution": 0.25},
                               "region": {"lon_min": lon0, "lon_max": lon0 + args.degrees, "lat_min": lat0,
                                          "lat_max": lat0 + args.degrees}})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_period("2015-01", data, root / "t.nc", root / "eo.nc")
        grid = read_grid(root / "t.nc", root / "eo.nc", "2015-01", data, cfg["patches"])
        c, h, w = grid.y.shape
        stats = {"mean": [float(np.nanmean(grid.y[k])) for k in range(c)],
                 "std": [float(np.nanstd(grid.y[k])) for k in range(c)],
                 "eo_mean": float(np.nanmean(grid.eo)), "eo_std": float(np.nanstd(grid.eo))}
        ckpt = checkpoint(root / "model.ckpt", cfg, stats, [float(d) for d in grid.depth], args.window)
        scenario = {**cfg["scenarios"]["tracks95"], "mode": "pixel", "fraction": 0.95}
        obs = simulate_observations(grid, "pixel95", scenario, "2015-01")
        settings = MapSettings(args.stride, args.members, False, args.batch)
        sample = SampleSettings.from_cfg(merge(cfg["sample"], {"steps": args.steps}))
        rss0 = common.peak_rss_mb()
        start = time.perf_counter()
        fields = map_learned(ckpt, grid, obs, stats, settings, sample, seed_parts=("bench",), device=str(device))
        seconds = time.perf_counter() - start
        peak = common.peak_rss_mb()
        windows = int(fields.attrs["n_windows"])
        # the bare network forwards of the same rows (one step's worth, × steps)
        hp = torch.load(ckpt, weights_only=True)["hparams"]
        net, _ = build_model(ModelSpec.from_hparams(hp))
        net.eval()
        rows = min(args.batch, windows) * args.members
        x = torch.randn(rows, c, args.window, args.window)
        cond = torch.randn(rows, int(hp["cond_channels"]), args.window, args.window)
        t = torch.zeros(rows, dtype=torch.long)
        with torch.no_grad():
            net(x, t, cond, None)
            tick = time.perf_counter()
            net(x, t, cond, None)
            forward = time.perf_counter() - tick
    batches = -(-windows // args.batch)
    bare = forward * batches * args.steps
    full_mb = 16 * args.members * c * h * w / 2**20  # state + noise (float32) + blend sums (float64)
    print(common.machine_line(device))
    print(f"region {h} × {w} px × {c} levels, {windows} windows of {args.window} px (stride {args.stride}), "
          f"{args.members} members, {args.steps} DDIM steps, batches of {args.batch} windows")
    print(f"map: {seconds:.1f} s; peak RSS {peak:.0f} MB ({peak - rss0:+.0f} MB during the map); "
          f"full-region arrays {full_mb:.1f} MB; bare network forwards ≈ {bare:.1f} s")
    hidden = np.isfinite(grid.y) & ~obs.mask
    print(f"mean ensemble std on hidden cells {float(np.nanmean(fields.std[hidden])):.4f} degC")  # type: ignore[index]
    print(f"RATIO map_seconds/bare_forwards = {seconds / max(bare, 1e-9):.3f}x")


if __name__ == "__main__":
    main()
