"""Score a finished workflow run on its VALIDATION split: the split designs are chosen on.

The workflow scores the test split only. This reuses a run's trained checkpoints and shards
(`results/models`, `results/shards`) to reconstruct the val shards with every learned method
and OI, scored by the workflow's own code, and prints RMSE, the ratio to OI, the model's own
(unclamped) RMSE at the observations, the jump ratio, CRPS and spread/skill.

    .venv/bin/python bench/real_case.py --split-seeds 1           # a run to score
    .venv/bin/python bench/val_case.py /tmp/depthdif-real-case/split1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from depthdif.config import validate_config  # noqa: E402
from depthdif.eval.baselines import run_baseline  # noqa: E402
from depthdif.eval.scoring import score_file, summarize, write_scores  # noqa: E402
from depthdif.inference import predict  # noqa: E402

COLUMNS = ["scenario", "method", "rmse", "ratio_to_oi", "observed_rmse", "jump_ratio", "crps", "spread_skill"]


def score_val(workdir: Path, methods: list[str] | None = None) -> pd.DataFrame:
    cfg = validate_config(yaml.safe_load((workdir / "config.yaml").read_text()))
    out = workdir / "val"
    out.mkdir(exist_ok=True)
    csvs = []
    for scenario in cfg["scenarios"]:
        shards = workdir / "results" / "shards" / scenario
        for method in methods or cfg["evaluate"]["methods"]:
            nc = out / f"{scenario}_{method}.nc"
            ckpt = workdir / "results" / "models" / scenario / method / "model.ckpt"
            if ckpt.exists():
                predict(checkpoint=ckpt, test_dir=shards / "val", sample_cfg=cfg["sample"], method=method,
                        scenario=scenario, out_nc=nc)
            elif method in ("idw", "oi", "oi_eo"):
                section = "oi" if method == "oi_eo" else method
                run_baseline(method, shards / "val", shards / "train", cfg["evaluate"][section],
                             scenario=scenario, out_nc=nc)
            else:
                continue  # a learned method this run did not train
            scores, _ = score_file(nc, scenario=scenario, method=method, rank_members=None)
            csv = out / f"{scenario}_{method}.csv"
            write_scores(scores, csv)
            csvs.append(csv)
    summary = summarize(csvs)
    rows = summary[summary["depth"].astype(str) == "all"].copy()
    oi = rows[rows["method"] == "oi"].set_index("scenario")["rmse"]
    rows["ratio_to_oi"] = rows["rmse"] / rows["scenario"].map(oi)
    return rows[[c for c in COLUMNS if c in rows.columns]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdirs", type=Path, nargs="+", help="folders of finished workflow runs")
    p.add_argument("--methods", nargs="+", default=None, help="default: the run's evaluate.methods")
    args = p.parse_args()
    pd.set_option("display.width", 200)
    for workdir in args.workdirs:
        print(f"# {workdir} (validation split)")
        print(score_val(workdir, args.methods).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
