"""Samples/s the training DataLoader delivers (ShardDataset over shards written with
depthdif.shards.save_shards at 4×128×128) against the samples/s the training step consumes
(training_loss forward + backward + AdamW at the same batch): the loader must not be the
bottleneck (ratio loader/step ≥ 1).

The loader is built exactly as train_model builds it (depthdif.training.datamodule.ShardDataModule:
shuffled, drop_last, persistent workers, pinned memory on CUDA). Its rate is the steady
rate after the first batch; the first batch (worker start-up) is printed separately.

    .venv/bin/python bench/loader_throughput.py --workers 0 2
    .venv/bin/python bench/loader_throughput.py --production --device cuda --workers 0 4 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import common
from depthdif.diffusion import ModelSettings, objective_from_cfg, training_loss
from depthdif.shards import save_shards
from depthdif.training.datamodule import ShardDataModule


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--patches", type=int, default=256, help="patches in the shard folder")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--shard-size", type=int, default=1024, help="as config/glorys.yaml shards.shard_size")
    p.add_argument("--batch", type=int, default=32, help="as config/glorys.yaml train.batch_size")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to measure")
    p.add_argument("--epochs", type=int, default=2, help="passes over the shards per loader measurement")
    p.add_argument("--production", action="store_true",
                   help="consumer = config/glorys.yaml model (dim 64, 1-2-4-8); "
                   "default: config/config.yaml model at --size")
    p.add_argument("--steps", type=int, default=3, help="timed training steps of the consumer")
    p.add_argument("--dir", default=None, help="where to write the shards (default: a temporary folder)")
    return p.parse_args()


def write_shards(folder: Path, n: int, channels: int, size: int, shard_size: int) -> Path:
    """A shard folder of `n` patches: contract names/dtypes, land corner, ~90 % hidden."""
    rng = common.as_numpy_seed("loader", n, channels, size)
    yy, xx = np.mgrid[:size, :size]
    land = np.broadcast_to((yy + xx) < size // 4, (n, size, size))
    valid = np.broadcast_to(~land[:, None], (n, channels, size, size))
    y = np.where(valid, rng.standard_normal((n, channels, size, size), dtype=np.float32), 0.0).astype(np.float32)
    observed = (rng.random((n, 1, size, size)) > 0.9) & valid
    arrays = {
        "y": y, "y_valid": valid, "x": np.where(observed, y, 0.0).astype(np.float32), "x_valid": observed,
        "land": land, "eo": y[:, :1].copy(),
        "lat": np.repeat(np.linspace(20, 30, size, dtype=np.float32)[None], n, 0),
        "lon": np.repeat(np.linspace(-40, -30, size, dtype=np.float32)[None], n, 0),
        "time": np.full(n, 1420070400, np.int64),
        "patch_id": np.array([f"2015-01_y{i:05d}_x00000" for i in range(n)], "<U64"),
    }
    out = folder / "shards" / "bench" / "train"
    stats = {"mean": [0.0] * channels, "std": [1.0] * channels, "eo_mean": 0.0, "eo_std": 1.0,
             "depth": [float(d) for d in range(channels)], "n_patches": n, "split": "train"}
    save_shards(out, arrays, scenario="bench", split="train", stats=stats, depth=stats["depth"],
                mask_cfg={"mode": "pixel", "fraction": 0.9}, shard_size=shard_size)
    return out


def loader_rate(folder: Path, batch: int, workers: int, epochs: int, device: torch.device) -> tuple[float, float]:
    """(steady samples/s after the first batch, seconds to the first batch) over `epochs` passes."""
    dm = ShardDataModule(
        folder, folder, batch_size=batch, num_workers=workers, seed=0, pin_memory=device.type == "cuda"
    )
    loader = dm.train_dataloader()
    start = time.perf_counter()
    first, count = None, 0
    for epoch in range(epochs):
        dm.set_epoch(epoch)
        for b in loader:
            b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
            common.sync(device)
            if first is None:
                first = time.perf_counter()
            else:
                count += int(b["y"].shape[0])
    end = time.perf_counter()
    del loader
    assert first is not None
    return count / (end - first), first - start


def step_rate(folder: Path, cfg: dict, batch: int, steps: int, device: torch.device) -> tuple[float, str]:
    """samples/s of training_loss forward + backward + AdamW on batches of the shard folder."""
    from torch.utils.data import DataLoader

    from depthdif.dataset import ShardDataset

    channels = ShardDataset(folder).channels
    net, schedule, _ = common.build_net(cfg["model"], channels)
    net.to(device)
    schedule.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    model = ModelSettings.from_cfg(cfg["model"])
    objective = objective_from_cfg("standard", cfg["objectives"]["standard"])
    b = next(iter(DataLoader(ShardDataset(folder), batch_size=batch)))
    b = {k: v.to(device) for k, v in b.items()}
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def one() -> None:
        with amp:
            loss, _ = training_loss(net, schedule, b, objective=objective, diffusion=model.diffusion,
                                    conditioning=model.conditioning, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one()
    times = common.interleave({"step": one}, steps, device)["step"]
    bb = cfg["model"]["backbone"]
    numerics = "bf16 autocast" if device.type == "cuda" else "fp32"
    desc = f"dim {bb['dim']}, dim_mults {bb['dim_mults']}, attention {bb['attention']}, {numerics}"
    return batch / common.best(times), desc


def main() -> None:
    args = parse()
    device = common.setup(args)
    if args.quick:
        args.patches, args.size, args.batch, args.workers, args.epochs, args.steps = 16, 32, 4, [0], 1, 1
    cfg = common.load(common.PRODUCTION_CONFIG if args.production else common.DEFAULT_CONFIG)
    print(common.machine_line(device))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        start = time.perf_counter()
        folder = write_shards(Path(tmp), args.patches, args.channels, args.size, args.shard_size)
        written = time.perf_counter() - start
        mb = sum(f.stat().st_size for f in folder.rglob("*.npy")) / 2**20
        print(f"shards: {args.patches} patches of {args.channels}x{args.size}x{args.size} (+eo) in {folder.name}/, "
              f"{mb:.0f} MiB, written by save_shards in {written:.2f} s")
        rows = []
        for w in args.workers:
            rate, first = loader_rate(folder, args.batch, w, args.epochs, device)
            rows.append([f"DataLoader, {w} workers", rate, first])
        consume, desc = step_rate(folder, cfg, args.batch, args.steps, device)
        rows.append([f"training step ({desc})", consume, float("nan")])
    print(f"\nbatch {args.batch}; loader: {args.epochs} epochs, steady rate after the first batch")
    print(common.table(rows, ["case", "samples/s", "first batch s"]))
    best_workers = max(rows[:-1], key=lambda r: r[1])
    per_worker = [r[1] / w for r, w in zip(rows, args.workers) if w]
    if per_worker:
        print(f"~{max(per_worker):.0f} samples/s per worker → "
              f"{consume / max(per_worker):.2f} workers keep up with this step")
    for row, w in zip(rows, args.workers):
        print(common.ratio_line(f"loader_{w}workers/step", row[1] / consume, 1.0, kind="≥"))
    print(f"best: {best_workers[0]}")


if __name__ == "__main__":
    main()
