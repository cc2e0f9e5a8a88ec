"""The SLURM profile dry-runs the production preset with GPU resources for training and sampling."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from workflow_runner import REPO, SNAKEMAKE, planned_jobs


def test_slurm_profile_dry_run_asks_gpus_for_training_and_sampling(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SNAKEMAKE, "--profile", "profiles/slurm", "--directory", str(tmp_path), "-n", "all"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = Counter(rule for rule, _ in planned_jobs(proc.stdout))
    assert counts["extract_patches"] == 312  # 1993-01 .. 2018-12, monthly
    assert counts["train_model"] == 4 * 3 and counts["sample_model"] == 4 * 3
    assert counts["calibrate_ensemble"] == 4  # standard's validation inflation, one per scenario
    # Resources of each job, in the order the dry run lists them.
    blocks = re.split(r"\n\s*(?:local)?rule ", proc.stdout)
    for block in blocks:
        rule = block.split(":", 1)[0].strip()
        resources = re.search(r"resources: (.*)", block)
        if rule in ("train_model", "sample_model", "calibrate_ensemble"):
            assert resources and "gpu=1" in resources.group(1), block[:500]
            assert "slurm_partition=YOUR_GPU_PARTITION" in resources.group(1)
        elif rule == "extract_patches":
            assert resources and "gpu" not in resources.group(1)
    # Per-period extraction travels in groups of 24: 312 jobs become 13 cluster jobs.
    assert proc.stdout.count("Group job periods") == 13
