"""The real SST case through the real workflow: every method's RMSE and its ratio to OI.

Runs `snakemake evaluate` on bench/configs/real_sst.yaml (NOAA CoralTemp monthly SST of the
Gulf Stream, ../shared/data/real) in a scratch folder per `patches.split.seed`, then prints,
per split seed and scenario, each method's RMSE on the hidden pixels of the TEST split, its
ratio to OI, the RMSE of the method's own (unclamped) prediction at the observations and the
jump ratio at observed pixels (reconstruction vs truth, "pasted dots" > 1.2).

    .venv/bin/python bench/real_case.py                      # split seed 0 (the acceptance run)
    .venv/bin/python bench/real_case.py --split-seeds 0 1 2  # the split-robustness check
    .venv/bin/python bench/real_case.py --quick              # 60 steps, seconds per model
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "bench" / "configs" / "real_sst.yaml"
REAL = ROOT.parent / "shared" / "data" / "real"


def case_config(split_seed: int, max_steps: int | None, config: Path) -> dict:
    cfg = yaml.safe_load(config.read_text())
    # the config names the file relative to the repository: make it absolute for the scratch folder
    cfg["data"]["netcdf"]["paths"] = [str((ROOT / p).resolve()) for p in cfg["data"]["netcdf"]["paths"]]
    cfg["patches"]["split"]["seed"] = split_seed
    if max_steps is not None:
        cfg.setdefault("train", {})["max_steps"] = max_steps
    return cfg


def run_case(workdir: Path, cfg: dict, cores: int, target: str) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    cmd = [snakemake, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), target]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - start


def table(summary: pd.DataFrame, split_seed: int) -> pd.DataFrame:
    rows = summary[summary["depth"].astype(str) == "all"].copy()
    oi = rows[rows["method"] == "oi"].set_index("scenario")["rmse"]
    rows["ratio_to_oi"] = rows["rmse"] / rows["scenario"].map(oi)
    rows.insert(0, "split_seed", split_seed)
    cols = ["split_seed", "scenario", "method", "rmse", "ratio_to_oi", "observed_rmse", "jump_ratio"]
    return rows[[c for c in cols if c in rows.columns]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--split-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/depthdif-real-case"))
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="60 training steps (smoke test of the pipeline)")
    p.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    p.add_argument("--fresh", action="store_true", help="delete the scratch folders first")
    args = p.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"{REAL} is absent: this benchmark needs the shared real data")
    steps = 60 if args.quick else args.max_steps
    tables = []
    for seed in args.split_seeds:
        workdir = args.workdir / f"split{seed}"
        if args.fresh and workdir.exists():
            shutil.rmtree(workdir)
        seconds = run_case(workdir, case_config(seed, steps, args.config), args.cores, "evaluate")
        summary = pd.read_csv(workdir / "results" / "metrics" / "summary.csv", dtype={"depth": str})
        t = table(summary, seed)
        tables.append(t)
        print(f"split seed {seed}: workflow {seconds:.0f} s ({workdir})")
        print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    both = pd.concat(tables)
    pivot = both.pivot_table(index=["scenario", "method"], columns="split_seed", values="ratio_to_oi")
    print("\nratio to OI (test split, per split seed):")
    print(pivot.to_string(float_format=lambda v: f"{v:.3f}"))
    for (scenario, method), row in pivot.iterrows():
        if method != "oi":
            print(f"RATIO {scenario}/{method}_vs_oi = {row.mean():.3f}x (mean over split seeds)")


if __name__ == "__main__":
    main()
