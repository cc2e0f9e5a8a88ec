"""Lightning DDP for real: `train.devices: 2`, `accelerator: cpu` (gloo), two processes.

Lightning's launcher re-runs the running script for rank 1, so `train` is called from a
small driver script here (never from pytest itself), and once through Snakemake, where the
re-run script is Snakemake's temporary copy of workflow/scripts/train_model.py. Shown:
only rank 0 writes model.ckpt, metrics.csv and the resume state; both ranks ran; a
resumed DDP run continues from the checkpointed step; two runs with the same world size
give bit-identical weights; the rule's log is rank 0's (rank 1 logs beside it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthdif.config import load_config
from training_helpers import MODEL, OBJECTIVES, model_cfg, splits, train_cfg
from workflow_runner import REPO, make_workdir, read_config, snakemake, write_config

pytestmark = [pytest.mark.ddp, pytest.mark.e2e]

#: every train key with its schema default (keys newer than training_helpers.TRAIN included)
SCHEMA_TRAIN = load_config(REPO / "tests/configs/tiny.yaml")["train"]

DRIVER = """\
import json, os, sys
sys.path.insert(0, {src!r})
from depthdif.training.fit import train
args = json.loads(open(sys.argv[1]).read())
result = train(**args)
rank = int(os.environ.get("LOCAL_RANK", "0"))
with open(os.path.join(os.path.dirname(args["out_dir"]), f"ranks-{{rank}}.json"), "w") as f:
    json.dump({{"rank": rank, "result": result, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}}, f)
"""


def run_ddp(tmp: Path, shards: dict[str, Path], name: str, state: Path, **train: object) -> dict[int, dict]:
    """`train` with devices=2 on CPU in a fresh python process; {rank: what that rank returned}."""
    driver = tmp / "driver.py"
    driver.write_text(DRIVER.format(src=str(REPO / "src")))
    out = tmp / name / "model"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = {
        "objective": "standard", "model_cfg": model_cfg(), "objective_cfg": OBJECTIVES["standard"],
        "train_cfg": {**SCHEMA_TRAIN, **train_cfg(devices=2, accelerator="cpu", **train)},
        "train_dir": str(shards["train"]), "val_dir": str(shards["val"]), "out_dir": str(out), "state_dir": str(state),
    }
    (tmp / name / "args.json").write_text(json.dumps(args))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(driver), str(tmp / name / "args.json")], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return {r["rank"]: r for r in (json.loads(p.read_text()) for p in (tmp / name).glob("ranks-*.json"))}


def test_ddp_two_cpu_ranks_rank0_writes_resumes_and_is_deterministic(tmp_path: Path) -> None:
    assert MODEL  # the tiny model of the training tests
    shards = splits(tmp_path / "data", n=16)
    # run A: 4 steps on 2 ranks
    ranks = run_ddp(tmp_path, shards, "a", tmp_path / "a/state", max_steps=4, batch_size=2)
    assert sorted(ranks) == [0, 1], ranks  # rank 1: the process Lightning started by re-running the driver
    assert ranks[1]["result"] == {} and ranks[0]["result"]["global_step"] == 4, ranks
    out = tmp_path / "a/model"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "model.ckpt", "val_examples"]
    state = tmp_path / "a/state"
    assert sorted(p.name for p in (state / "logs").iterdir()) == ["version_0"]  # rank 1 opened no log
    assert not [p for p in state.rglob("*") if ".tmp" in p.name], list(state.rglob("*"))
    assert {"last.ckpt", "best.ckpt", "config_hash.json"} <= {p.name for p in state.iterdir()}

    # run B, same config and world size: the same weights, bit for bit
    run_ddp(tmp_path, shards, "b", tmp_path / "b/state", max_steps=4, batch_size=2)
    a = torch.load(out / "model.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b/model/model.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # run C: 2 steps, then resumed to 4 under DDP (max_steps may change between runs)
    run_ddp(tmp_path, shards, "c", tmp_path / "c/state", max_steps=2, batch_size=2)
    resumed = run_ddp(tmp_path, shards, "c", tmp_path / "c/state", max_steps=4, batch_size=2)
    assert resumed[0]["result"]["resumed_from"] == 2 and resumed[0]["result"]["global_step"] == 4, resumed
    runs = sorted((tmp_path / "c/state/logs").glob("version_*/run.json"))
    assert [json.loads(p.read_text())["start_step"] for p in runs] == [0, 2]


def test_ddp_through_snakemake_train_model(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path / "wf")
    cfg = read_config(workdir)
    cfg["scenarios"] = {"tracks90": cfg["scenarios"]["tracks90"]}
    cfg["train"].update(devices=2, accelerator="cpu")
    write_config(workdir, cfg)
    snakemake(workdir, "--cores", "2", "results/models/tracks90/standard/model.ckpt")
    log = workdir / "logs/train_model/tracks90_standard.log"
    text = log.read_text()
    assert "wrote results/models/tracks90/standard/model.ckpt at step 6" in text, text[-3000:]
    rank1 = Path(f"{log}.rank1")
    assert rank1.is_file() and "wrote" not in rank1.read_text(), rank1.read_text()[-2000:] if rank1.is_file() else ""
    ckpt = torch.load(workdir / "results/models/tracks90/standard/model.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6
    state = workdir / "results/checkpoints/tracks90/standard"
    assert sorted(p.name for p in (state / "logs").iterdir()) == ["version_0"]
