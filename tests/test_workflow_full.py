"""End-to-end: the real `snakemake` runs the whole DAG (`figures`) on the tiny config, the
report builds, and the same config and seed give the same shards and metrics on CPU."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from workflow_runner import make_workdir, planned_jobs, read_config, snakemake, write_config

pytestmark = pytest.mark.e2e

METHODS = ["idw", "oi", "unet", "standard", "ambient"]
SCENARIOS = ["tracks90", "pixel80"]
FIGURES = [
    "dataset_tracks90.png",
    "dataset_pixel80.png",
    "reconstruction_tracks90.png",
    "reconstruction_pixel80.png",
    "ambient_walkthrough.png",
    "metrics_vs_fraction.png",
    "rmse_by_depth.png",
    "training_curves.png",
    "calibration.png",
    "power_spectra.png",
]


@pytest.fixture(scope="module")
def full_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = make_workdir(tmp_path_factory.mktemp("wf_full"))
    snakemake(workdir, "--cores", "2", "figures")
    return workdir


def test_maps_target_after_a_finished_run_writes_the_region_maps(full_workdir: Path, tmp_path: Path) -> None:
    """`snakemake maps` on a copy of the finished tiny run: only the map jobs run (the test periods,
    read from the index, a checkpoint, × standard and oi), each a CF netCDF on the region's grid and a figure."""
    workdir = tmp_path / "wf"
    shutil.copytree(full_workdir, workdir, symlinks=True)  # copy2 keeps the mtimes: nothing upstream reruns
    config = read_config(workdir)
    config["maps"] = {"methods": ["standard", "oi"], "write_members": True}
    write_config(workdir, config)
    out = snakemake(workdir, "--cores", "2", "maps").stdout
    assert {rule for rule, _ in planned_jobs(out)} <= {"map_region", "plot_map"}, out[-3000:]
    maps = sorted((workdir / "results/maps").glob("*/*.nc"))
    periods = {p.stem for p in maps}
    assert {p.parent.name for p in maps} == {"standard", "oi"} and periods <= {"2015-01", "2015-02"} and periods
    with xr.open_dataset(workdir / f"results/maps/standard/{min(periods)}.nc") as ds:
        # region lon -40..-16, lat 30..46 at 0.5°: 48 × 32 cells; 2 levels; 2 members
        assert dict(ds.sizes) == {"time": 1, "depth": 2, "latitude": 32, "longitude": 48, "member": 2}
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["method"] == "standard"
        assert np.isfinite(ds["thetao_mean"].values).all()  # the tiny config has no land
    for path in maps:
        png = workdir / "results/figures/maps" / path.parent.name / f"{path.stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_target_runs_the_whole_dag(full_workdir: Path) -> None:
    for name in FIGURES:
        png = full_workdir / "results/figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 5_000, name
    for scenario in SCENARIOS:
        for objective in ("unet", "standard", "ambient"):
            model_dir = full_workdir / f"results/models/{scenario}/{objective}"
            metrics = pd.read_csv(model_dir / "metrics.csv")
            assert metrics["step"].max() >= 5  # max_steps 6 in the tiny config
    assert planned_jobs(snakemake(full_workdir, "-n", "figures").stdout) == []


def test_samples_are_cf_netcdf_in_degc(full_workdir: Path) -> None:
    for method in METHODS:
        with xr.open_dataset(full_workdir / f"results/samples/tracks90/{method}.nc") as ds:
            assert ds["thetao_pred"].attrs["units"] == "degC"
            assert ds["depth"].attrs["units"] == "m"
            assert ds.attrs["method"] == method and ds.attrs["scenario"] == "tracks90"
            pred, truth = ds["thetao_pred"].values, ds["thetao_true"].values
            valid = ds["valid"].values.astype(bool)
            assert np.isfinite(pred[valid]).all() and np.isnan(pred[~valid]).all()
            # Reconstructions are temperatures of the right magnitude, not normalised units.
            assert abs(np.nanmean(pred) - np.nanmean(truth)) < 3.0
            if method in ("standard", "ambient"):
                assert ds.sizes["member"] == 2
                assert float(ds["thetao_std"].where(ds["observed"] == 0).mean()) > 0


def test_summary_has_every_scenario_method_depth(full_workdir: Path) -> None:
    summary = pd.read_csv(full_workdir / "results/metrics/summary.csv")
    for column in ("scenario", "method", "depth", "rmse", "mae", "bias", "psnr", "ssim", "crps", "spread_skill"):
        assert column in summary.columns
    overall = summary[summary["depth"].astype(str) == "all"]
    assert len(overall) == len(SCENARIOS) * len(METHODS)
    assert len(summary) == len(SCENARIOS) * len(METHODS) * 3  # two depth levels + "all"
    assert (overall["rmse"] > 0).all() and (overall["rmse"] < 10).all()
    ensembles = overall[overall["method"].isin(["standard", "ambient"])]
    assert ensembles["crps"].notna().all() and ensembles["spread_skill"].notna().all()
    idw = overall[overall["method"] == "idw"]
    assert (idw["crps"] == idw["mae"]).all() and idw["spread_skill"].isna().all()  # deterministic: CRPS = MAE
    oi = overall[overall["method"] == "oi"]  # OI's Gaussian posterior
    assert (oi["forecast"] == "gaussian").all() and oi["spread_skill"].notna().all() and (oi["crps"] < oi["mae"]).all()
    log = (full_workdir / "logs/summarize/summarize.log").read_text()
    assert "| scenario" in log and "idw" in log
    report = (full_workdir / "results/metrics/summary.md").read_text()
    assert "rank histogram" in report and "## Spread deciles" in report
    calibration = pd.read_csv(full_workdir / "results/metrics/calibration.csv", dtype={"depth": str})
    ranks = calibration[(calibration["table"] == "rank") & (calibration["depth"] == "all")]
    assert set(ranks["method"]) == {"oi", "standard", "ambient"}
    # the Gaussian PIT gets K+1 bins with the ensembles' K (sample.members: 2 in the tiny config)
    assert ranks.groupby(["scenario", "method"]).size().eq(3).all()


def test_report_builds_with_every_figure(full_workdir: Path) -> None:
    snakemake(full_workdir, "--report", "results/report.html", "figures")
    html = (full_workdir / "results/report.html").read_text(errors="replace")
    for name in FIGURES + ["summary.csv"]:
        assert name in html, name


def test_the_package_brings_what_the_report_needs() -> None:
    """README's main install (`pip install -e .`, no test extra) can build the report: the
    package depends on Snakemake's `reports` extra, and all of that extra is installed here."""
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, requires, version

    repo = Path(__file__).resolve().parents[1]
    dependencies = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"snakemake\[[^\]]*\breports\b", d) for d in dependencies), dependencies
    extra = [r.split(";")[0].strip() for r in requires("snakemake") or [] if 'extra == "reports"' in r]
    assert extra, "Snakemake's reports extra lists nothing"
    for requirement in extra:
        name = re.split(r"[<>=!~\[ ]", requirement)[0]
        try:
            version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} (Snakemake's reports extra) is not installed")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.npy")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_config_and_seed_give_same_shards_and_metrics(full_workdir: Path, tmp_path: Path) -> None:
    config = read_config(full_workdir)
    config["scenarios"] = {"tracks90": config["scenarios"]["tracks90"]}
    config["evaluate"] = {**config.get("evaluate", {}), "methods": ["idw", "oi_eo", "standard"]}
    workdir = make_workdir(tmp_path / "again")
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", "evaluate")
    # oi_eo (regression on the EO + OI of the residuals) runs like any baseline, scored as a Gaussian
    oi_eo = pd.read_csv(workdir / "results/metrics/tracks90/oi_eo.csv")
    assert (oi_eo["forecast"] == "gaussian").all() and oi_eo["crps"].notna().all()
    for split in ("train", "val", "test"):
        assert _digest(workdir / f"results/shards/tracks90/{split}") == _digest(
            full_workdir / f"results/shards/tracks90/{split}"
        )
    for method in ("idw", "standard"):
        first = pd.read_csv(full_workdir / f"results/metrics/tracks90/{method}.csv")
        second = pd.read_csv(workdir / f"results/metrics/tracks90/{method}.csv")
        pd.testing.assert_frame_equal(first, second)
