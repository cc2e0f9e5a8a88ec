"""Run the real `snakemake` on a config in a scratch folder and read what it planned."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
_RULE = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):\s*$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
TARGET_RULES = {"all", "data", "train", "sample", "evaluate", "figures", "maps"}


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """`snakemake --snakefile <repo> --directory <workdir> --configfile <workdir>/config.yaml ARGS`."""
    cmd = [
        SNAKEMAKE,
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
        *args,
    ]
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode})\nSTDOUT:\n{proc.stdout[-6000:]}\n"
            f"STDERR:\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run lists, target rules left out."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        if match := _RULE.match(line):
            jobs.append((match.group(1), {}))
        elif (match := _WILDCARDS.match(line)) and jobs:
            jobs[-1][1].update(dict(item.split("=", 1) for item in match.group(1).split(", ")))
    return [(rule, wildcards) for rule, wildcards in jobs if rule not in TARGET_RULES]


def make_workdir(path: Path, config: dict | None = None, base: str = "tests/configs/tiny.yaml") -> Path:
    """A scratch workflow folder holding config.yaml (the tiny config unless given)."""
    path.mkdir(parents=True, exist_ok=True)
    if config is None:
        shutil.copy(REPO / base, path / "config.yaml")
    else:
        write_config(path, config)
    return path


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
