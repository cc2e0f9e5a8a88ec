"""End to end on a real (single-node, localhost) SLURM: `snakemake --profile <profiles/slurm>`.

The profile is profiles/slurm with only its placeholders (account, partitions, config file),
`jobs` (this machine's 2 cores) and the status-check interval substituted: same executor,
same squeue status command, same set-resources, same per-group limits, same group
components. The node is declared as a typical cluster node (64 CPUs, 256 GB, 4 GPUs;
slurmd's `config_overrides`), so the production requests are scheduled unchanged and a
group job asking for more than such a node would be refused at submission.

What it proves, from the sbatch submissions snakemake reports and `scontrol show job`:
GPU rules go to the `gpu` partition with the plugin's `--gpus=1`; retrieve, score and
summarize stay local; per-period extraction arrives as one group job per 24 periods, sized
by layering its members under the per-group limits (not their sum); status polling works
without accounting (sacct fails here) and a failing job is reported failed; a training job
sent SIGTERM (`scancel --signal=TERM`, as SLURM does before the time limit) resumes on the
retry from its checkpoint and finishes at max_steps.

Skips when slurm/munge are not installed or not root; fails instead with DEPTHDIF_REQUIRE_SLURM=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

import slurm_cluster
from workflow_runner import REPO, SNAKEMAKE, make_workdir, read_config, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", re.M)
GPU_RULES = {"train_model", "sample_model", "calibrate_ensemble"}
LOCAL_RULES = {"retrieve", "score", "summarize"}
POLL_SECONDS = 2  # slurm-init-seconds-before-status-checks of the test cluster (production: 40)


def _need_slurm() -> None:
    problems = []
    if missing := slurm_cluster.missing_programs():
        problems.append(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        problems.append("slurmd needs root")
    if problems:
        if os.environ.get("DEPTHDIF_REQUIRE_SLURM") == "1":
            pytest.fail("DEPTHDIF_REQUIRE_SLURM=1 but no local SLURM can start: " + "; ".join(problems))
        pytest.skip("no local SLURM: " + "; ".join(problems))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    _need_slurm()
    root = tmp_path_factory.mktemp("slurm")
    c = slurm_cluster.start(root, cpus=64, memory_mb=256_000, gpus=4, min_job_age=3600)  # keeps every job in scontrol
    try:
        yield c
    finally:
        subprocess.run(["scancel", "--user", "root"], env={**os.environ, **c.env}, check=False, capture_output=True)
        slurm_cluster.stop(c)


def derived_profile(folder: Path, configfile: Path, train_gpus: int = 1) -> Path:
    """profiles/slurm with the placeholders, config file, job count and poll interval substituted."""
    text = (REPO / "profiles/slurm/config.yaml").read_text()
    for old, new in {"YOUR_ACCOUNT": "depthdif", "YOUR_CPU_PARTITION": "cpu", "YOUR_GPU_PARTITION": "gpu"}.items():
        text = text.replace(old, new)
    profile = yaml.safe_load(text)
    assert "YOUR_" not in yaml.safe_dump(profile)
    profile["configfile"] = str(configfile)
    profile["jobs"] = 6  # two real cores behind the 64 declared ones
    profile["slurm-init-seconds-before-status-checks"] = POLL_SECONDS
    profile["latency-wait"] = 5  # one local file system
    if train_gpus != 1:  # what a user sets for train.devices > 1 (README)
        profile["set-resources"]["train_model"]["gpu"] = train_gpus
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def run(workdir: Path, profile: Path, cluster: slurm_cluster.Cluster, *targets: str, on_line=None, timeout: int = 600):
    """snakemake --profile <profile> TARGETS in workdir; returns (returncode, output)."""
    cmd = [SNAKEMAKE, *targets, "--profile", str(profile)]
    cmd += ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    env = {**os.environ, **cluster.env, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    timer = threading.Timer(timeout, proc.send_signal, args=(2,))  # SIGINT: the plugin cancels its jobs
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line)
        proc.wait()
    finally:
        timer.cancel()
    output = "".join(lines)
    (workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.out')))}.out").write_text(output)
    return proc.returncode, output


def submissions(output: str) -> list[tuple[str, str]]:
    """(rule, or group_<group>_<rules> for a group job, slurm jobid) of every sbatch submission reported."""
    out = []
    for _, slurm_id, log in SUBMITTED.findall(output):
        part = next(p for p in Path(log).parts if p.startswith(("rule_", "group_")))
        out.append((part.removeprefix("rule_"), slurm_id))
    return out


def job_info(cluster: slurm_cluster.Cluster, slurm_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", slurm_id], capture_output=True, text=True, check=True,
        env={**os.environ, **cluster.env},
    ).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def test_tiny_workflow_on_local_slurm(cluster: slurm_cluster.Cluster, tmp_path: Path) -> None:
    started = time.monotonic()
    env = {**os.environ, **cluster.env}
    assert subprocess.run(["sacct"], env=env, capture_output=True).returncode != 0  # no accounting here

    # --- 9 periods: one group job whose 9 extraction members (16 GB, 1 CPU each) are layered
    # under the per-group limits (128 GB, 8 CPUs): 8 + 1, i.e. 8 CPUs, 128 GB, 2 x 30 min.
    wide = make_workdir(tmp_path / "wide")
    cfg = read_config(wide)
    cfg["data"]["periods"] = {"start": "2015-01", "end": "2015-09"}
    write_config(wide, cfg)
    profile_wide = derived_profile(tmp_path / "profile_wide", wide / "config.yaml")
    rc, out = run(wide, profile_wide, cluster, *[f"results/patches/2015-{m:02d}.npz" for m in range(1, 10)])
    assert rc == 0, out[-5000:]
    subs = submissions(out)
    assert [rule for rule, _ in subs] == ["group_periods_extract_patches"], subs
    info = job_info(cluster, subs[0][1])
    assert info["Partition"] == "cpu" and info["JobState"] == "COMPLETED", info
    assert info["NumCPUs"] == "8" and info["MinMemoryNode"] in ("128000M", "125G"), info
    assert info["TimeLimit"] == "01:00:00", info

    # --- the tiny config: a failing GPU-rule job is reported failed (twice: retries 1), not polled forever
    workdir = make_workdir(tmp_path / "tiny")
    cfg = read_config(workdir)
    # one scenario: every rule and partition is still exercised, in half the jobs
    cfg["scenarios"] = {"tracks90": cfg["scenarios"]["tracks90"]}
    cfg["train"].update(max_steps=60, val_every_n_steps=30, checkpoint_every_n_steps=10)
    cfg["train"]["accelerator"] = "gpu"  # no CUDA on this node: train() raises ConfigError
    write_config(workdir, cfg)
    profile = derived_profile(tmp_path / "profile", workdir / "config.yaml")
    t0 = time.monotonic()
    rc, out_fail = run(workdir, profile, cluster, "results/models/tracks90/unet/model.ckpt", timeout=300)
    assert rc != 0, out_fail[-3000:]
    failed = re.findall(r"SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", out_fail)
    assert len(failed) == 2, out_fail[-5000:]
    assert "no CUDA device is visible" in (workdir / "logs/train_model/tracks90_unet.log").read_text()
    fail_seconds = time.monotonic() - t0

    # --- the whole evaluate target; tracks90/standard is sent SIGTERM once it has a checkpoint
    cfg["train"]["accelerator"] = "auto"
    write_config(workdir, cfg)
    state = workdir / "results/checkpoints/tracks90/standard"
    cancelled: dict[str, str] = {}

    def cancel_training(line: str) -> None:
        for _, slurm_id, log in SUBMITTED.findall(line):
            if "rule_train_model" in log and "tracks90_standard" in log and not cancelled:
                cancelled["id"] = slurm_id
                threading.Thread(
                    target=_scancel_after_checkpoint, args=(slurm_id, state, env, cancelled), daemon=True
                ).start()

    rc, out = run(workdir, profile, cluster, "evaluate", on_line=cancel_training)
    assert rc == 0, out[-6000:]
    assert (workdir / "results/metrics/summary.csv").is_file()
    assert cancelled.get("signalled") == "yes", cancelled

    # --- what went where: count the sbatch submissions per rule (both tiny runs)
    subs = submissions(out_fail) + submissions(out)
    counts = Counter(rule for rule, _ in subs)
    # 2 periods: one group
    assert counts["group_periods_extract_patches"] == 1 and "extract_patches" not in counts, counts
    assert counts["gather_patches"] == 1 and counts["make_shards"] == 3, counts
    assert counts["train_model"] == 2 + 3 + 1, counts  # failed unet x2, three models, the retry after SIGTERM
    assert counts["sample_model"] == 3 and counts["run_baseline"] == 2, counts
    assert counts["calibrate_ensemble"] == 1, counts  # standard's inflation
    assert not LOCAL_RULES & set(counts), counts
    for rule in LOCAL_RULES:
        assert f"localrule {rule}:" in out_fail + out, rule
    for rule, slurm_id in subs:
        info = job_info(cluster, slurm_id)
        if rule in GPU_RULES:
            assert info["Partition"] == "gpu" and "gpu:1" in info.get("TresPerJob", ""), (rule, info)
            assert info["NumCPUs"] == "8", (rule, info)
        else:
            assert info["Partition"] == "cpu" and "gpu" not in info.get("TresPerJob", ""), (rule, info)
    group = job_info(cluster, next(i for r, i in subs if r == "group_periods_extract_patches"))
    assert group["NumCPUs"] == "2" and group["MinMemoryNode"] in ("32000M", "31.25G"), group

    # --- the cancelled training resumed on the retry and finished at max_steps
    assert cancelled.get("signalled") == "yes"
    assert job_info(cluster, cancelled["id"])["JobState"] in ("FAILED", "CANCELLED"), cancelled
    log = (workdir / "logs/train_model/tracks90_standard.log").read_text()
    resumed = re.search(r"resuming from \S+ at step (\d+)", log)
    assert resumed and int(resumed.group(1)) > 0, log[-3000:]
    assert "model.ckpt at step 60" in log, log[-3000:]
    runs = sorted((state / "logs").glob("version_*/run.json"))
    assert len(runs) == 2, runs
    import pandas as pd

    metrics = pd.read_csv(workdir / "results/models/tracks90/standard/metrics.csv")
    steps = metrics.loc[metrics["train/loss"].notna(), "step"] if "train/loss" in metrics else metrics["step"]
    assert steps.max() >= 55 and not steps.duplicated().any(), metrics.tail()
    # --- DDP inside one SLURM job: devices 2, the job step runs one task, Lightning starts rank 1
    cfg["train"]["devices"] = 2
    cfg["train"]["max_steps"] = 20
    write_config(workdir, cfg)
    # devices and max_steps are resumable keys: start the unet over instead of resuming at step 60
    shutil.rmtree(workdir / "results/checkpoints/tracks90/unet", ignore_errors=True)
    profile2 = derived_profile(tmp_path / "profile_ddp", workdir / "config.yaml", train_gpus=2)
    rc, out_ddp = run(workdir, profile2, cluster, "results/models/tracks90/unet/model.ckpt", timeout=300)
    assert rc == 0, out_ddp[-5000:]
    (ddp_job,) = [i for r, i in submissions(out_ddp) if r == "train_model"]
    info = job_info(cluster, ddp_job)
    assert info["Partition"] == "gpu" and "gpu:2" in info.get("TresPerJob", ""), info
    unet_log = workdir / "logs/train_model/tracks90_unet.log"
    assert "model.ckpt at step 20" in unet_log.read_text(), unet_log.read_text()[-3000:]
    assert Path(f"{unet_log}.rank1").is_file()  # rank 1 ran in the same job, logging beside rank 0
    print(f"slurm e2e: {time.monotonic() - started:.0f} s (failing run {fail_seconds:.0f} s); "
          f"submissions {dict(counts)}; resumed at step {resumed.group(1)}")


def _scancel_after_checkpoint(slurm_id: str, state: Path, env: dict[str, str], result: dict[str, str]) -> None:
    """`scancel --signal=TERM` the job once its first resume checkpoint is on disk."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (state / "last.ckpt").is_file():
            proc = subprocess.run(["scancel", "--signal=TERM", slurm_id], env=env, capture_output=True, text=True)
            result["signalled"] = "yes" if proc.returncode == 0 else proc.stderr
            return
        time.sleep(0.1)
    result["signalled"] = "timeout"
