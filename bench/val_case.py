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


def score_val(workdir: Path, methods: list[str] | None = None, sample: dict[str, str] | None = None,
              split: str = "val", scenarios: list[str] | None = None) -> pd.DataFrame:
    """`sample`: sample-section keys to override (YAML values), e.g. {"final_update": "oi_increment"}."""
    raw = yaml.safe_load((workdir / "config.yaml").read_text())
    raw.setdefault("sample", {}).update({k: yaml.safe_load(v) for k, v in (sample or {}).items()})
    cfg = validate_config(raw)
    out = workdir / ("_".join([split, *(f"{k}-{v}" for k, v in sorted((sample or {}).items()))]))
    out.mkdir(exist_ok=True)
    csvs = []
    for scenario in scenarios or cfg["scenarios"]:
        shards = workdir / "results" / "shards" / scenario
        for method in methods or cfg["evaluate"]["methods"]:
            nc = out / f"{scenario}_{method}.nc"
            ckpt = workdir / "results" / "models" / scenario / method / "model.ckpt"
            if ckpt.exists():
                predict(checkpoint=ckpt, test_dir=shards / split, sample_cfg=cfg["sample"], method=method,
                        scenario=scenario, out_nc=nc)
            elif method in ("idw", "oi", "oi_eo"):
                section = "oi" if method == "oi_eo" else method
                run_baseline(method, shards / split, shards / "train", cfg["evaluate"][section],
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
    p.add_argument("--sample", nargs="+", default=[], metavar="KEY=VALUE",
                   help="sample-section keys to override, e.g. final_update=oi_increment")
    p.add_argument("--scenarios", nargs="+", default=None, help="default: every scenario of the run")
    p.add_argument("--split", default="val", choices=["val", "test"],
                   help="val (designs are chosen here) or test (the final figures only)")
    args = p.parse_args()
    sample = dict(item.split("=", 1) for item in args.sample)
    pd.set_option("display.width", 200)
    for workdir in args.workdirs:
        print(f"# {workdir} ({args.split} split{', sample ' + str(sample) if sample else ''})")
        rows = score_val(workdir, args.methods, sample, args.split, args.scenarios)
        print(rows.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
