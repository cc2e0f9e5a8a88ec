"""End-to-end: after a finished tiny run, the real `snakemake -n` plans, key by key, exactly
the jobs a config change touches: runtime-only keys plan nothing, output keys plan their
jobs and what follows. A user's config file replaces the embedded default (no merged scenarios)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflow_runner import SNAKEMAKE, make_workdir, planned_jobs, read_config, snakemake, write_config

pytestmark = pytest.mark.e2e

SCENARIOS = {"tracks90", "pixel80"}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config run through `sample` with one deterministic and one diffusion method."""
    workdir = make_workdir(tmp_path_factory.mktemp("wf_rerun"))
    config = read_config(workdir)
    config["evaluate"]["methods"] = ["unet", "standard"]
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", "sample")
    return workdir


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def plan_after(workdir: Path, dotted: str, value: Any) -> list[tuple[str, dict[str, str]]]:
    """The jobs `snakemake -n sample` plans once `dotted` is set to `value` (then restored)."""
    original = read_config(workdir)
    changed = read_config(workdir)
    _set(changed, dotted, value)
    write_config(workdir, changed)
    try:
        return planned_jobs(snakemake(workdir, "-n", "sample").stdout)
    finally:
        write_config(workdir, original)


def test_finished_run_plans_nothing(done: Path) -> None:
    assert planned_jobs(snakemake(done, "-n", "sample").stdout) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.num_workers", 1),
        ("train.log_every_n_steps", 2),
        ("train.checkpoint_every_n_steps", 2),
        ("train.val_examples", 1),
        ("train.tensorboard", True),
        ("train.wandb", True),
        # unused with source: synthetic
        ("data.copernicus.dataset_id", "another_dataset"),
        ("data.copernicus.credentials_file", "/elsewhere/credentials"),
        ("data.netcdf.paths", "nothing/*.nc"),
        ("data.eo_surface.noise_std", 0.5),  # only used with eo: surface (tiny: ostia)
    ],
)
def test_runtime_and_unused_keys_plan_no_job(done: Path, key: str, value: Any) -> None:
    assert plan_after(done, key, value) == []


def _counts(jobs: list[tuple[str, dict[str, str]]]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (rule, w.get("scenario", ""), w.get("objective", w.get("learned", w.get("split", ""))))
        for rule, w in jobs
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model.diffusion.timesteps", 30),
        ("model.diffusion.schedule", "linear"),
        ("objectives.standard.loss_mask", "missing"),
        ("train.ema_decay", 0.9),
        ("train.val_ddim_steps", 3),
    ],
)
def test_diffusion_only_keys_do_not_plan_the_unet(done: Path, key: str, value: Any) -> None:
    counts = _counts(plan_after(done, key, value))
    # sample.inflation_methods defaults to [standard]: its inflation is refitted with it
    assert counts == {
        (rule, s, "standard"): 1 for rule in ("train_model", "calibrate_ensemble", "sample_model") for s in SCENARIOS
    }


@pytest.mark.parametrize(("key", "value"), [("sample.steps", 4), ("sample.members", 3), ("sample.batch_size", 4)])
def test_sample_keys_plan_only_diffusion_sampling(done: Path, key: str, value: Any) -> None:
    counts = _counts(plan_after(done, key, value))
    assert counts == {(rule, s, "standard"): 1 for rule in ("calibrate_ensemble", "sample_model") for s in SCENARIOS}


@pytest.mark.parametrize(
    ("key", "value"),
    [("train.lr", 0.001), ("train.devices", 2), ("train.precision", "32"), ("train.compile", True),
     ("train.val_every_n_steps", 2), ("model.backbone.dim", 12)],
)
def test_output_train_keys_plan_training_and_sampling(done: Path, key: str, value: Any) -> None:
    counts = _counts(plan_after(done, key, value))
    assert counts == {
        (rule, s, m): 1 for rule in ("train_model", "sample_model") for s in SCENARIOS for m in ("unet", "standard")
    } | {("calibrate_ensemble", s, "standard"): 1 for s in SCENARIOS}


def test_a_scenario_fraction_plans_that_scenario_only(done: Path) -> None:
    counts = _counts(plan_after(done, "scenarios.tracks90.fraction", 0.85))
    assert counts == {
        **{("make_shards", "tracks90", split): 1 for split in ("train", "val", "test")},
        **{(rule, "tracks90", m): 1 for rule in ("train_model", "sample_model") for m in ("unet", "standard")},
        ("calibrate_ensemble", "tracks90", "standard"): 1,
    }


def test_a_user_config_replaces_the_default_scenarios(tmp_path: Path) -> None:
    """`--configfile` (and a profile's `configfile:`) is not merged with config/config.yaml."""
    fresh = make_workdir(tmp_path / "fresh")
    planned = planned_jobs(snakemake(fresh, "-n", "all").stdout)
    assert {w["scenario"] for _, w in planned if "scenario" in w} == SCENARIOS
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(yaml.safe_dump({"configfile": str(fresh / "config.yaml")}))
    proc = subprocess.run(
        [SNAKEMAKE, "--snakefile", str(Path(__file__).resolve().parents[1] / "Snakefile"),
         "--profile", str(profile), "--directory", str(fresh), "-n", "all"],
        cwd=fresh, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {w["scenario"] for _, w in planned_jobs(proc.stdout) if "scenario" in w} == SCENARIOS


def test_adding_oi_eo_plans_its_baseline_only(done: Path) -> None:
    config = read_config(done)
    jobs = plan_after(done, "evaluate.methods", [*config["evaluate"]["methods"], "oi_eo"])
    assert sorted((rule, w["scenario"], w["baseline"]) for rule, w in jobs) == [
        ("run_baseline", s, "oi_eo") for s in sorted(SCENARIOS)
    ]


def test_oi_eo_without_eo_stops_at_start(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path / "no_eo")
    config = read_config(workdir)
    config["data"]["eo"] = "none"
    config["evaluate"]["methods"] = ["idw", "oi_eo"]
    write_config(workdir, config)
    proc = snakemake(workdir, "-n", "all", check=False)
    assert proc.returncode != 0
    assert "'evaluate.methods' and 'data.eo'" in proc.stdout + proc.stderr
