"""Wall time and peak memory per rule from Snakemake's `benchmark:` records.

    python bench/rule_times.py [results/benchmarks]

Prints, per rule, the number of jobs, total and max wall seconds and max RSS (MB), and the
sum over all jobs (the serial cost of the DAG).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def rule_times(folder: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(folder.glob("*/*.tsv")):
        record = pd.read_csv(tsv, sep="\t").iloc[0]
        rows.append(
            {"rule": tsv.parent.name, "job": tsv.stem, "s": float(record["s"]), "max_rss_mb": record["max_rss"]}
        )
    if not rows:
        raise SystemExit(f"no benchmark records under {folder}: run the workflow first")
    jobs = pd.DataFrame(rows)
    jobs["max_rss_mb"] = pd.to_numeric(jobs["max_rss_mb"], errors="coerce")
    table = jobs.groupby("rule").agg(
        jobs=("s", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("max_rss_mb", "max")
    )
    return table.sort_values("total_s", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="results/benchmarks", type=Path)
    args = parser.parse_args()
    table = rule_times(args.folder)
    print(table.round(1).to_markdown())
    print(f"\nserial sum of all jobs: {table['total_s'].sum():.1f} s over {int(table['jobs'].sum())} jobs")


if __name__ == "__main__":
    main()
