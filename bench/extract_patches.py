"""Patch extraction of one production-sized period (global 1/12° grid 4320×2041, 4 depth
levels + OSTIA-like EO, 128-px patches) with depthdif.data.patches.extract_period against
reading the same variables once with xarray (open + .load()): goal ≤ 1.5×. Peak RSS of each
case (fresh subprocess, ru_maxrss) against one period's decoded size, for 1 vs 12 periods
extracted sequentially in one process (as grouped extract jobs run) and for gather_patches
over the 12 patch files.

The raw files are CF netCDF as the retrieval writes them (depthdif.data.cf.write_cf, zlib
level 1) made from depthdif.data.synthetic.synthetic_period_dataset; the 12 periods are hard
links of one file (extraction cost does not depend on the values).

    .venv/bin/python bench/extract_patches.py            # full grid, ~2 min
    .venv/bin/python bench/extract_patches.py --quick    # 1080×510 grid, 3 periods
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve()


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0], device=False)
    p.add_argument("--nx", type=int, default=4320, help="grid columns (longitude)")
    p.add_argument("--ny", type=int, default=2041, help="grid rows (latitude)")
    p.add_argument("--periods", type=int, default=12, help="periods of the many-periods case")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the ratio cases")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary folder)")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: run one case and print RESULT
    p.add_argument("--work", default=None, help=argparse.SUPPRESS)
    return p.parse_args()


def configs() -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, patches) sections of the production preset (eo ostia, 128 px patches)."""
    cfg = common.load(common.PRODUCTION_CONFIG)
    return cfg["data"], {k: v for k, v in cfg["patches"].items() if k != "split"}


def period_names(n: int) -> list[str]:
    return [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(n)]


# --- cases (each runs in its own fresh process) ----------------------------------------------


def run_case(case: str, work: Path) -> dict[str, Any]:
    import numpy as np
    import xarray as xr  # imports are not timed: every case pays the same ones

    from depthdif.data.index import gather_patches
    from depthdif.data.patches import extract_period

    data_cfg, patches_cfg = configs()
    # Snakemake deletes a job's old outputs before it starts: do so here, untimed, and flush
    # the file system (else the deletion's journal commit, e.g. ext4 discards of 100+ MiB,
    # lands in the timed write and costs up to 0.3 s); every case syncs alike
    for old in work.glob(f"patches{case.removeprefix('extract')}/*.npz") if case.startswith("extract") else []:
        old.unlink()
    os.sync()
    start, cpu = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {}
    if case.startswith("make"):  # the raw files, made here so the parent process stays small
        _, ny, nx, n = case.split(":")
        out["made_seconds"] = make_raw(work, (int(ny), int(nx)), int(n))
    elif case == "imports":
        pass
    elif case == "xarray":
        with xr.open_dataset(work / "raw" / "P0.nc") as ds, xr.open_dataset(work / "raw" / "eo" / "P0.nc") as eo:
            thetao, sst = ds["thetao"].load(), eo["analysed_sst"].load()
            out["decoded_mb"] = (thetao.nbytes + sst.nbytes) / 2**20
    elif case.startswith("extract"):
        n = int(case.removeprefix("extract"))
        kept = 0
        for i, period in enumerate(period_names(n)):
            raw = work / "raw" / f"P{i}.nc"
            summary = extract_period(raw, work / "raw" / "eo" / f"P{i}.nc", period, data_cfg, patches_cfg,
                                     work / f"patches{n}" / f"{period}.npz", source_file=str(raw))
            kept += summary["kept"]
        out["patches"] = kept
    elif case == "write":  # the floor extraction cannot beat: np.savez of the same patch arrays to a new file
        from depthdif.io import atomic_output

        src = next((work / "patches1").glob("*.npz"))
        with np.load(src, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        (work / "write.npz").unlink(missing_ok=True)
        os.sync()
        start, cpu = time.perf_counter(), time.process_time()
        with atomic_output(work / "write.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        out["mb"] = sum(a.nbytes for a in arrays.values()) / 2**20
    elif case.startswith("gather"):
        n = int(case.removeprefix("gather"))
        files = [work / f"patches{n}" / f"{p}.npz" for p in period_names(n)]
        cfg = common.load(common.PRODUCTION_CONFIG)
        gather_patches(files, cfg["patches"], work / f"index{n}.parquet", work / f"stats{n}.json")
    else:
        raise SystemExit(f"unknown case {case}")
    out.update(seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu, rss_mb=common.peak_rss_mb())
    return out


def spawn(case: str, work: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(HERE), "--case", case, "--work", str(work)],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


def make_raw(work: Path, shape: tuple[int, int], n: int) -> float:
    """Write P0.nc (+ eo/P0.nc) on a `shape` (ny, nx) grid and hard-link P1..P{n-1}; returns seconds."""
    from depthdif.data import cf
    from depthdif.data.synthetic import synthetic_period_dataset

    data_cfg, _ = configs()
    start = time.perf_counter()
    (work / "raw" / "eo").mkdir(parents=True)
    ds = synthetic_period_dataset("2000-01", data_cfg, shape=shape)
    cf.write_cf(ds[["thetao"]], work / "raw" / "P0.nc")
    cf.write_cf(ds[["analysed_sst"]].drop_vars("depth", errors="ignore"), work / "raw" / "eo" / "P0.nc")
    for i in range(1, n):
        os.link(work / "raw" / "P0.nc", work / "raw" / f"P{i}.nc")
        os.link(work / "raw" / "eo" / "P0.nc", work / "raw" / "eo" / f"P{i}.nc")
    return time.perf_counter() - start


def main() -> None:
    args = parse()
    if args.case:
        print("RESULT " + json.dumps(run_case(args.case, Path(args.work))))
        return
    if args.quick:
        args.nx, args.ny, args.periods, args.rounds = 540, 256, 2, 1
    print(common.machine_line())
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        # (a child's ru_maxrss starts at its parent's RSS at fork: keep the parent small)
        made = spawn(f"make:{args.ny}:{args.nx}:{args.periods}", work)["made_seconds"]
        on_disk = sum(f.stat().st_size for f in (work / "raw").rglob("P0.nc")) / 2**20
        print(f"raw period: {args.nx}x{args.ny} grid, 4 levels + EO, {on_disk:.0f} MiB zlib netCDF "
              f"(made in {made:.1f} s, not timed); {args.periods} periods = hard links")
        base = spawn("imports", work)
        times: dict[str, list[float]] = {"xarray": [], "extract1": [], "write": []}
        cpu: dict[str, list[float]] = {"xarray": [], "extract1": [], "write": []}
        results: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for case in times:
                results[case] = spawn(case, work)
                times[case].append(results[case]["seconds"])
                cpu[case].append(results[case]["cpu_seconds"])
        many = spawn(f"extract{args.periods}", work)
        gather1 = spawn("gather1", work)
        gather = spawn(f"gather{args.periods}", work)
        npz_mb = sum(f.stat().st_size for f in (work / "patches1").glob("*.npz")) / 2**20

    decoded = results["xarray"]["decoded_mb"]
    xr_s, ex_s = common.best(times["xarray"]), common.best(times["extract1"])
    base_mb = base["rss_mb"]

    def mem(r: dict[str, Any]) -> list[Any]:
        return [r["rss_mb"], r["rss_mb"] - base_mb, (r["rss_mb"] - base_mb) / decoded]

    xr_cpu, ex_cpu = common.best(cpu["xarray"]), common.best(cpu["extract1"])
    rows = [
        ["python + imports only", base["seconds"], base["cpu_seconds"], base_mb, 0.0, 0.0, ""],
        ["xarray open + .load() (thetao + EO)", xr_s, xr_cpu, *mem(results["xarray"]), 1.0],
        ["extract_period, 1 period", ex_s, ex_cpu, *mem(results["extract1"]), ex_s / xr_s],
        ["  floor: np.savez of its patch arrays (new file)", common.best(times["write"]), common.best(cpu["write"]),
         "", "", "", common.best(times["write"]) / xr_s],
        [f"extract_period, {args.periods} periods in one process", many["seconds"], many["cpu_seconds"], *mem(many),
         many["seconds"] / args.periods / xr_s],
        ["gather_patches over 1 patch file", gather1["seconds"], gather1["cpu_seconds"], *mem(gather1), ""],
        [f"gather_patches over {args.periods} patch files", gather["seconds"], gather["cpu_seconds"], *mem(gather), ""],
    ]
    print(f"\none period decoded (thetao + EO, float32): {decoded:.0f} MiB; one patch file {npz_mb:.0f} MiB "
          f"({results['extract1']['patches']} patches); imports not timed; best of {args.rounds} interleaved "
          "rounds (fresh processes) for the xarray and 1-period cases; time / xarray of the many-periods case "
          "is per period")
    print(common.table(rows, ["case", "seconds", "CPU s", "peak RSS MiB", "above imports MiB", "/ decoded period",
                              "time / xarray"]))
    paired = [e / x for e, x in zip(times["extract1"], times["xarray"])]
    print(f"extract/xarray per round: {' '.join(f'{r:.3f}' for r in paired)}; best/best {ex_s / xr_s:.3f}")
    print(common.ratio_line("extract/xarray_read (time, median of paired rounds)", common.median(paired), 1.5))
    print(common.ratio_line("extract/xarray_read (CPU time; robust to other jobs)", ex_cpu / xr_cpu))
    one_rss = results["extract1"]["rss_mb"]
    floor = xr_s + common.best(times["write"])
    print(common.ratio_line("extract/(xarray_read + npz_write floor) (time)", ex_s / floor))
    print(common.ratio_line("extract_rss_above_imports/decoded_period", (one_rss - base_mb) / decoded, 3.0))
    print(common.ratio_line(f"extract{args.periods}_rss/extract1_rss", many["rss_mb"] / one_rss, 1.1))
    print(common.ratio_line(f"gather{args.periods}_rss_above_imports/decoded_period",
                            (gather["rss_mb"] - base_mb) / decoded, 3.0))
    print(common.ratio_line(f"gather{args.periods}_rss/gather1_rss", gather["rss_mb"] / gather1["rss_mb"], 1.1))


if __name__ == "__main__":
    main()
