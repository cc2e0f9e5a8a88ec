"""Cost of the shard checksums at production shard size: verify_shards (sha256 of every array
file, once per job) against reading the same arrays (np.load of every file), and save_shards
with the checksums against save_shards without them.

One production shard by default: shards.shard_size 1024 of config/glorys.yaml, 4 depth levels
× 128 × 128 px with EO (≈ 0.72 GB of .npy). Files are in the page cache for both sides, so the
ratios compare CPU cost (a cold read from disk costs the same for both and would shrink them).

    .venv/bin/python bench/shard_checksums.py
    .venv/bin/python bench/shard_checksums.py --patches 2048 --rounds 5
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest import mock

import numpy as np

import common
from depthdif import shards
from depthdif.shards import array_names, load_array, read_manifest, save_shards, verify_shards


def parse():
    p = common.parser(__doc__.splitlines()[0], device=False)
    p.add_argument("--patches", type=int, default=1024, help="patches in the folder (one shard at --shard-size)")
    p.add_argument("--shard-size", type=int, default=1024, help="as config/glorys.yaml shards.shard_size")
    p.add_argument("--size", type=int, default=128, help="as config/glorys.yaml patches.size")
    p.add_argument("--channels", type=int, default=4, help="depth levels of config/glorys.yaml")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args()


def arrays(n: int, channels: int, size: int) -> dict[str, np.ndarray]:
    """Contract arrays of `n` patches: land corner, ~90 % hidden, random values."""
    rng = common.as_numpy_seed("shard_checksums", n, channels, size)
    yy, xx = np.mgrid[:size, :size]
    land = np.broadcast_to((yy + xx) < size // 4, (n, size, size))
    valid = np.broadcast_to(~land[:, None], (n, channels, size, size))
    y = np.where(valid, rng.standard_normal((n, channels, size, size), dtype=np.float32), 0.0).astype(np.float32)
    observed = (rng.random((n, 1, size, size)) > 0.9) & valid
    return {
        "y": y, "y_valid": valid, "x": np.where(observed, y, 0.0).astype(np.float32), "x_valid": observed,
        "land": land, "eo": y[:, :1].copy(),
        "lat": np.repeat(np.linspace(20, 30, size, dtype=np.float32)[None], n, 0),
        "lon": np.repeat(np.linspace(-40, -30, size, dtype=np.float32)[None], n, 0),
        "time": np.full(n, 1420070400, np.int64),
        "patch_id": np.array([f"2015-01_y{i:05d}_x00000" for i in range(n)], "<U64"),
    }


def interleave(cases: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """common.interleave without torch: every case once per round, seconds per call."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    args = parse()
    if args.quick:
        args.patches, args.shard_size, args.size, args.rounds = 16, 8, 32, 2
    data = arrays(args.patches, args.channels, args.size)
    stats = {"mean": [0.0] * args.channels, "std": [1.0] * args.channels, "eo_mean": 0.0, "eo_std": 1.0}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shards" / "bench" / "train"

        def write(checksums: bool) -> None:
            with mock.patch.object(shards, "sha256_file", shards.sha256_file if checksums else lambda _: ""):
                save_shards(folder, data, scenario="bench", split="train", stats=stats,
                            depth=list(range(args.channels)), mask_cfg={"mode": "pixel", "fraction": 0.9},
                            shard_size=args.shard_size)

        write_times = interleave(
            {"save_shards with sha256": lambda: write(True), "save_shards without": lambda: write(False)}, args.rounds
        )
        write(True)
        manifest = read_manifest(folder)
        files = [folder / s["name"] / f"{k}.npy" for s in manifest["shards"] for k in array_names(manifest)]
        gigabytes = sum(f.stat().st_size for f in files) / 1e9

        def read() -> None:
            for f in files:
                np.array(load_array(f, mmap=True))  # every byte, as a reader of the whole split would

        read_times = interleave({"verify_shards": lambda: verify_shards(folder), "read every array": read}, args.rounds)

    print(common.machine_line())
    print(f"{args.patches} patches × {args.channels} × {args.size}² in {len(manifest['shards'])} shard(s) of "
          f"{args.shard_size}: {len(files)} files, {gigabytes:.3f} GB")
    times = {**write_times, **read_times}
    rows = [[name, common.best(t), common.median(t), gigabytes / common.median(t)] for name, t in times.items()]
    print(common.table(rows, ["case", "best s", "median s", "GB/s"]))
    verify = common.median(times["verify_shards"])
    print(f"verify_shards: {verify:.2f} s per {args.patches} patches ({1e3 * verify / args.patches:.2f} ms/patch)")
    paired = [v / r for v, r in zip(times["verify_shards"], times["read every array"])]
    print(common.ratio_line("verify/read", common.median(paired)))
    paired = [a / b for a, b in zip(times["save_shards with sha256"], times["save_shards without"])]
    print(common.ratio_line("write_with_checksums/write_without", common.median(paired)))


if __name__ == "__main__":
    main()
