"""`snakemake -n all` with the production preset (--profile profiles/slurm → config/glorys.yaml:
312 monthly periods, 4 scenarios, both objectives and all baselines): wall time of the dry
run (goal < 15 s) and the number of jobs a cluster receives after grouping.

Cluster jobs = Σ over rules that are submitted (not `localrules`, not input-only targets
like `all`) of the dry run's job count, where the jobs of a rule in a group with
`group-components: <group>=k` (profile) travel k connected components per job, i.e.
ceil(count / k). Also prints the resources the GPU rules get (a workflow profile can
override the cluster profile's set-resources).

    .venv/bin/python bench/dag.py
    .venv/bin/python bench/dag.py --extra-args "--workflow-profile none"
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import common

RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
RUNS = re.compile(r"^\s+(script|shell|run|wrapper|notebook|cwl)\s*:", re.M)
GROUP = re.compile(r"^\s+group\s*:\s*\n?\s*[\"'](\w+)[\"']", re.M)
LOCALRULES = re.compile(r"^localrules\s*:\s*((?:\s*\w+\s*,?)+)", re.M)


def parse() -> argparse.Namespace:
    p = common.parser(__doc__.splitlines()[0], device=False)
    p.add_argument("--profile", default="profiles/slurm")
    p.add_argument("--target", default="all")
    p.add_argument("--rounds", type=int, default=3, help="dry runs (best and median wall time)")
    p.add_argument("--extra-args", default="", help="more snakemake arguments, e.g. '--workflow-profile none'")
    p.add_argument("--snakemake", default=str(Path(sys.executable).with_name("snakemake")))
    return p.parse_args()


def workflow_rules(root: Path) -> dict[str, dict[str, object]]:
    """rule name → {"group": str | None, "local": bool} from the Snakefile and workflow/rules/*.smk."""
    text = "\n".join(p.read_text() for p in [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))])
    local = {name for block in LOCALRULES.findall(text) for name in re.findall(r"\w+", block)}
    rules: dict[str, dict[str, object]] = {}
    starts = [(m.start(), m.group(1)) for m in RULE.finditer(text)]
    for (pos, name), nxt in zip(starts, [s for s, _ in starts[1:]] + [len(text)]):
        body = text[pos:nxt]
        group = GROUP.search(body)
        # a rule that runs nothing (e.g. `all`) is never submitted
        rules[name] = {"group": group.group(1) if group else None, "local": name in local or not RUNS.search(body)}
    return rules


def job_stats(output: str) -> dict[str, int]:
    """The dry run's 'Job stats' table: rule → count."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def gpu_resources(output: str, rules: tuple[str, ...] = ("train_model", "sample_model")) -> dict[str, str]:
    """The `resources:` line of the first job of each rule in the dry-run output (a dry run
    does not print threads; cpus_per_task is among the resources)."""
    found = {}
    for rule in rules:
        m = re.search(rf"rule {rule}:\n(?:.*\n)*?\s+resources: (.*)", output)
        if m:
            found[rule] = m.group(1)
    return found


def main() -> None:
    args = parse()
    root = common.ROOT
    if args.quick:
        args.rounds = 1
    profile = yaml.safe_load((root / args.profile / "config.yaml").read_text())
    print(common.machine_line())
    cmd = [args.snakemake, "-n", args.target, "--profile", args.profile, *shlex.split(args.extra_args)]
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:  # the embedded default config instead of the production preset
            cmd = [
                args.snakemake, "-n", args.target, "--configfile", "config/config.yaml", *shlex.split(args.extra_args)
            ]
        cmd += ["--directory", tmp]
        for _ in range(args.rounds):
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
            walls.append(time.perf_counter() - start)
            if proc.returncode:
                raise SystemExit(f"{shlex.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    output = proc.stdout + proc.stderr
    counts = job_stats(output)
    rules = workflow_rules(root)
    unknown = sorted(set(counts) - set(rules))
    if unknown:
        raise SystemExit(f"rules {unknown} in the dry run are not in the rule files; update bench/dag.py's parser")
    components = {} if args.quick else {str(k): int(v) for k, v in (profile.get("group-components") or {}).items()}
    rows, cluster = [], 0
    for rule, n in counts.items():
        info = rules[rule]
        group = info["group"]
        if info["local"]:
            submitted, how = 0, "local"
        elif group and str(group) in components:
            k = components[str(group)]
            submitted, how = math.ceil(n / k), f"group {group}, {k} per job"
        else:
            submitted, how = n, "one per job"
        cluster += submitted
        rows.append([rule, n, submitted, how])
    print(f"command: {shlex.join(cmd[:-2])}  (in a fresh --directory)")
    print(f"\ndry run wall time: best {min(walls):.2f} s, median {common.median(walls):.2f} s over {len(walls)} runs")
    print(common.table(rows, ["rule", "jobs", "cluster jobs", "submitted as"]))
    print(f"total: {sum(counts.values())} jobs, {cluster} submitted to the cluster after grouping")
    if not args.quick:
        for rule, res in gpu_resources(output).items():
            flag = "" if "gpu=" in res else (
                "   <-- NO GPU requested (a workflow profile overrides the cluster profile's set-resources?)"
            )
            print(f"{rule} resources: {res}{flag}")
    print(f"JOBS cluster_jobs_after_grouping = {cluster}")
    print(common.ratio_line("dry_run_seconds/15s", min(walls) / 15.0, 1.0))


if __name__ == "__main__":
    main()
