"""Smoke test of bench/*.py: each `--quick` run exits 0 and prints its RATIO line(s).

No timing is asserted (benchmarks are read by people, not by CI): only that every script
still runs against the current package and reports finite, positive ratios.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RATIO = re.compile(r"^RATIO (\S+).* = ([0-9.eE+-]+|nan|inf)x", re.M)
SCRIPTS = {
    "sample_speed": ["ddim_step/forward"],
    "train_throughput": ["lightning/bare"],
    "loader_throughput": ["loader_0workers/step"],
    "extract_patches": ["extract/xarray_read", "extract_rss_above_imports/decoded_period"],
    "cost_growth": ["per_period_time_4/2"],
    "dag": ["dry_run_seconds/15s"],
    "ambient_distances": ["median_withheld_distance_blocks/median_hidden_distance"],
    "synthetic_realism": ["oi_correlated_share/synthetic_real"],
    "shard_checksums": ["verify/read", "write_with_checksums/write_without"],
    "gpu_suite": ["suite_seconds/budget", "lightning/bare", "ddim_step/forward", "loader_0workers/step"],
    "xt_sensitivity": ["xt_sensitivity_uses_xt/low_noise"],
    "map_scale": ["map_seconds/bare_forwards"],
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_mode_prints_ratios(script: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), "--quick", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ratios = {name: float(value) for name, value in RATIO.findall(proc.stdout)}
    for name in SCRIPTS[script]:
        assert name in ratios, f"{script} printed no RATIO {name}:\n{proc.stdout[-2000:]}"
        assert math.isfinite(ratios[name]) and ratios[name] > 0, f"{script}: RATIO {name} = {ratios[name]}"
