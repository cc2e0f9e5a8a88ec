"""Extraction + shard-writing time for N and 2N periods: the cost per period must not grow
with the number of periods (linear growth; goal: per-period time at 2N ≤ 1.15 × at N).

Stages timed as the workflow runs them, for config/config.yaml's data, patches, scenarios
and shards sections on a finer synthetic grid (--shape): extract_period per period,
gather_patches (index + split + train stats), write_split_shards per scenario × split.
Raw files (synthetic_period_dataset + cf.write_cf) are made once, untimed.

    .venv/bin/python bench/cost_growth.py                 # 6 vs 12 periods
    .venv/bin/python bench/cost_growth.py --periods 12 --shape 960 1280
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import common


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0], device=False)
    p.add_argument("--periods", type=int, default=6, help="N (the second size is 2N)")
    p.add_argument("--shape", type=int, nargs=2, default=[480, 640], metavar=("NY", "NX"),
                   help="synthetic grid over config/config.yaml's region (default ≈ 1/20°)")
    p.add_argument("--config", default=str(common.DEFAULT_CONFIG))
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (N, 2N, N, 2N, ...)")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary folder)")
    return p.parse_args()


def make_raw(work: Path, cfg: dict[str, Any], periods: list[str], shape: tuple[int, int]) -> None:
    from depthdif.data import cf
    from depthdif.data.synthetic import synthetic_period_dataset

    for period in periods:
        ds = synthetic_period_dataset(period, cfg["data"], shape=shape, eo=cfg["data"]["eo"] == "ostia")
        cf.write_cf(ds[["thetao"]], work / "raw" / f"{period}.nc")
        if "analysed_sst" in ds:
            cf.write_cf(ds[["analysed_sst"]].drop_vars("depth", errors="ignore"), work / "raw" / "eo" / f"{period}.nc")


def pipeline(work: Path, cfg: dict[str, Any], periods: list[str]) -> dict[str, float]:
    """Seconds of each stage for `periods` (outputs in a fresh folder, removed afterwards)."""
    from depthdif.data.index import gather_patches
    from depthdif.data.occlusion import write_split_shards
    from depthdif.data.patches import extract_period

    out = work / f"run{len(periods)}"
    shutil.rmtree(out, ignore_errors=True)
    patches_cfg = {k: v for k, v in cfg["patches"].items() if k != "split"}
    eo = cfg["data"]["eo"] == "ostia"
    times: dict[str, float] = {}
    start = time.perf_counter()
    files = []
    for period in periods:
        files.append(out / "patches" / f"{period}.npz")
        extract_period(work / "raw" / f"{period}.nc", work / "raw" / "eo" / f"{period}.nc" if eo else None,
                       period, cfg["data"], patches_cfg, files[-1])
    times["extract"] = time.perf_counter() - start
    start = time.perf_counter()
    gather_patches(files, cfg["patches"], out / "patches" / "index.parquet", out / "patches" / "stats.json")
    times["gather"] = time.perf_counter() - start
    start = time.perf_counter()
    for scenario, scenario_cfg in cfg["scenarios"].items():
        for split in ("train", "val", "test"):
            write_split_shards(out / "patches" / "index.parquet", out / "patches" / "stats.json", files, scenario,
                               scenario_cfg, split, int(cfg["shards"]["shard_size"]), out / "shards" / scenario / split)
    times["shards"] = time.perf_counter() - start
    import pandas as pd

    times["patches"] = float(len(pd.read_parquet(out / "patches" / "index.parquet", columns=["patch_id"])))
    shutil.rmtree(out)
    return times


def main() -> None:
    args = parse()
    if args.quick:
        args.periods, args.shape, args.rounds = 2, [96, 128], 1
    cfg = common.load(args.config)
    n, ny, nx = args.periods, *args.shape
    periods = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(2 * n)]
    print(common.machine_line())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        (work / "raw" / "eo").mkdir(parents=True)
        start = time.perf_counter()
        make_raw(work, cfg, periods, (ny, nx))
        print(f"raw: {2 * n} synthetic periods on a {nx}x{ny} grid over data.region of {args.config} "
              f"(made in {time.perf_counter() - start:.1f} s, not timed); patches {cfg['patches']['size']} px, "
              f"scenarios {list(cfg['scenarios'])} × 3 splits")
        runs: dict[int, list[dict[str, float]]] = {n: [], 2 * n: []}
        for _ in range(args.rounds):
            for k in runs:
                runs[k].append(pipeline(work, cfg, periods[:k]))
    rows, per_period = [], {}
    for k, results in runs.items():
        best = min(results, key=lambda r: r["extract"] + r["gather"] + r["shards"])
        total = best["extract"] + best["gather"] + best["shards"]
        per_period[k] = total / k
        rows.append([k, int(best["patches"]), best["extract"], best["gather"], best["shards"], total, total / k,
                     1e3 * total / best["patches"]])
    print(f"\nbest of {args.rounds} interleaved rounds (seconds)")
    columns = ["periods", "patches", "extract", "gather", "shards", "total", "s / period", "ms / patch"]
    print(common.table(rows, columns))
    print(common.ratio_line(f"per_period_time_{2 * n}/{n}", per_period[2 * n] / per_period[n], 1.15))


if __name__ == "__main__":
    main()
