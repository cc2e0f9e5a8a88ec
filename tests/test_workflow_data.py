"""End-to-end: the real `snakemake` builds the data half on the tiny config and reruns exactly
what a config change touches."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflow_runner import make_workdir, planned_jobs, read_config, snakemake, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = make_workdir(tmp_path_factory.mktemp("wf_data"))
    snakemake(workdir, "--cores", "2", "data")
    return workdir


def test_data_target_writes_index_stats_and_shards(data_workdir: Path) -> None:
    index = pd.read_parquet(data_workdir / "results/patches/index.parquet")
    # 2 periods × (48×32 grid / 16-px tiles = 6 tiles), no land in the tiny config.
    assert len(index) == 12
    assert set(index["split"]) == {"train", "val", "test"}
    stats = json.loads((data_workdir / "results/patches/stats.json").read_text())
    assert len(stats["mean"]) == len(stats["std"]) == 2
    assert stats["mean"][0] > stats["mean"][1]  # the surface is warmer than 47 m on average
    for scenario in ("tracks90", "pixel80"):
        total = 0
        for split in ("train", "val", "test"):
            manifest = json.loads(
                (data_workdir / f"results/shards/{scenario}/{split}/manifest.json").read_text()
            )
            assert manifest["n"] == int((index["split"] == split).sum())
            total += manifest["n"]
            x = np.load(data_workdir / f"results/shards/{scenario}/{split}/shard-0000/x_valid.npy")
            assert x.dtype == np.uint8 and x.shape[1:] == (2, 16, 16)
        assert total == len(index)
    for rule in ("retrieve", "extract_patches", "gather_patches", "make_shards"):
        assert list((data_workdir / "logs" / rule).iterdir()), rule
        assert list((data_workdir / "results/benchmarks" / rule).iterdir()), rule


def test_second_dry_run_has_nothing_to_do(data_workdir: Path) -> None:
    proc = snakemake(data_workdir, "-n", "data")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert planned_jobs(proc.stdout) == []


def _dry_run_after(workdir: Path, edit) -> list[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    original = read_config(workdir)
    changed = read_config(workdir)
    edit(changed)
    write_config(workdir, changed)
    try:
        return planned_jobs(snakemake(workdir, "-n", "data").stdout)
    finally:
        write_config(workdir, original)


def test_changing_one_scenario_fraction_plans_only_its_shards(data_workdir: Path) -> None:
    def edit(config: dict) -> None:
        config["scenarios"]["tracks90"]["fraction"] = 0.85

    jobs = _dry_run_after(data_workdir, edit)
    assert sorted((rule, w.get("scenario"), w.get("split")) for rule, w in jobs) == [
        ("make_shards", "tracks90", "test"),
        ("make_shards", "tracks90", "train"),
        ("make_shards", "tracks90", "val"),
    ]


def test_changing_max_nodata_fraction_replans_extraction_not_retrieval(data_workdir: Path) -> None:
    def edit(config: dict) -> None:
        config["patches"]["max_nodata_fraction"] = 0.3

    counts = Counter(rule for rule, _ in _dry_run_after(data_workdir, edit))
    assert counts == {"extract_patches": 2, "gather_patches": 1, "make_shards": 6}
    assert "retrieve" not in counts


def test_bad_config_value_stops_with_key_and_allowed_values(tmp_path: Path) -> None:
    workdir = make_workdir(tmp_path)
    config = read_config(workdir)
    config["scenarios"]["tracks90"]["mode"] = "trax"
    write_config(workdir, config)
    proc = snakemake(workdir, "-n", "data", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "scenarios.tracks90.mode" in message
    assert "'trax'" in message and "rectangles" in message
    assert not (workdir / "results").exists()


def test_copernicus_without_credentials_stops_before_any_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = make_workdir(tmp_path / "wf")
    config = read_config(workdir)
    config["data"]["source"] = "copernicus"
    write_config(workdir, config)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no toolbox credentials file
    for name in list(__import__("os").environ):
        if "COPERNICUS" in name:
            monkeypatch.delenv(name)
    # A dry run still plans the whole DAG (no credentials needed to look at it) ...
    assert ("retrieve", {"period": "2015-01"}) in planned_jobs(snakemake(workdir, "-n", "data").stdout)
    # ... but a real run stops before the first job, saying how to log in.
    proc = snakemake(workdir, "--cores", "1", "data", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "CredentialsError" in message and "copernicusmarine login" in message
    assert "COPERNICUSMARINE_SERVICE_USERNAME" in message
    assert not (workdir / "resources").exists() and not (workdir / "logs").exists()


def _replace_keeping_mtime(path: Path, content: bytes) -> None:
    """What `cp -p` / `rsync -a` of an edited older copy does: new bytes, the old mtime."""
    stat = path.stat()
    path.write_bytes(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_netcdf_source_and_argo_scenario_on_real_files(tmp_path: Path, real_data_dir: Path) -> None:
    """The user's own netCDF (the 4° climatology with land) and real Argo float tracks, through
    the DAG; the files are inputs (relative to the working directory), tracked by content."""
    workdir = make_workdir(tmp_path / "wf")
    inputs = workdir / "inputs"
    shutil.copytree(real_data_dir / "argo", inputs / "argo")
    shutil.copy2(real_data_dir / "levitus_mitgcm_4deg_15lev_monthly.nc", inputs / "levitus.nc")
    config = read_config(workdir)
    config["data"] = {
        "source": "netcdf",
        "variable": "theta",
        "depth_levels": [25.0, 85.0],
        "region": {"lon_min": -180.0, "lon_max": 180.0, "lat_min": -70.0, "lat_max": 70.0},
        "periods": ["t0000", "t0006"],
        "eo": "surface",
        "netcdf": {"paths": "inputs/levitus.nc"},
    }
    config["patches"] = {
        "size": 8, "stride": 8, "max_nodata_fraction": 0.5,
        "split": {"block_px": 8, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
    }
    config["scenarios"] = {
        "argo90": {"mode": "argo", "fraction": 0.9, "seed": 3, "argo_paths": "inputs/argo/*_prof.nc"},
        "pixel50": {"mode": "pixel", "fraction": 0.5, "seed": 4},
    }
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", "data")
    index = pd.read_parquet(workdir / "results/patches/index.parquet")
    assert set(index["period"]) == {"t0000", "t0006"}
    assert index["nodata_fraction"].max() <= 0.5 and index["nodata_fraction"].max() > 0  # land kept within the limit
    assert index["lon_min"].min() >= -180 and index["lon_max"].max() <= 180
    n_hidden = n_ocean = 0
    for split in ("train", "val", "test"):
        folder = workdir / f"results/shards/argo90/{split}"
        observed = np.load(folder / "shard-0000/x_valid.npy")[:, 0].astype(bool)
        land = np.load(folder / "shard-0000/land.npy").astype(bool)
        assert not (observed & land).any()  # never observed on land
        n_ocean += int((~land).sum())
        n_hidden += int((~land & ~observed).sum())
    assert abs(n_hidden / n_ocean - 0.9) < 0.05

    # The user's files are inputs, checked by content: nothing to do while they are unchanged,
    # also once touched or re-staged with a newer modification time ...
    assert planned_jobs(snakemake(workdir, "-n", "data").stdout) == []
    later = time.time_ns() + 3_600 * 10**9
    for path in [inputs / "levitus.nc", *(inputs / "argo").glob("*_prof.nc")]:
        os.utime(path, ns=(later, later))
    assert planned_jobs(snakemake(workdir, "-n", "data").stdout) == []
    checksums = (workdir / "resources/inputs/scenarios.argo90.argo_paths.sha256").read_text()
    assert "  inputs/argo/1900857_prof.nc" in checksums
    # ... an Argo file edited, even with its old mtime kept, plans that scenario's shards only ...
    argo = sorted((inputs / "argo").glob("*_prof.nc"))[0]
    original = argo.read_bytes()
    _replace_keeping_mtime(argo, original + b"\0")
    jobs = planned_jobs(snakemake(workdir, "-n", "data").stdout)
    assert sorted((rule, w["scenario"], w["split"]) for rule, w in jobs) == [
        ("make_shards", "argo90", split) for split in ("test", "train", "val")
    ]
    _replace_keeping_mtime(argo, original)
    # ... and a netCDF file edited the same way plans retrieval and everything after it.
    netcdf = inputs / "levitus.nc"
    _replace_keeping_mtime(netcdf, netcdf.read_bytes() + b"\0")
    counts = Counter(rule for rule, _ in planned_jobs(snakemake(workdir, "-n", "data").stdout))
    assert counts == {"retrieve": 2, "extract_patches": 2, "gather_patches": 1, "make_shards": 6}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["data"].update(source="netcdf", eo="surface", netcdf={"paths": "nothing/*.nc"}),
         ["data.netcdf.paths", "'nothing/*.nc' matches no file"]),
        (lambda c: c["scenarios"].update(argo1={"mode": "argo", "fraction": 0.9, "argo_paths": "argo/*_prof.nc"}),
         ["scenarios.argo1.argo_paths", "matches no file"]),
        (lambda c: c["model"]["backbone"].update(dim_mults=[1, 2, 2, 2, 2, 2]),
         ["patches.size", "model.backbone.dim_mults", "divisible by 32"]),
    ],
)
def test_config_only_mistakes_stop_a_dry_run_at_start(tmp_path: Path, edit, expected) -> None:  # type: ignore[no-untyped-def]
    workdir = make_workdir(tmp_path)
    config = read_config(workdir)
    edit(config)
    write_config(workdir, config)
    proc = snakemake(workdir, "-n", "data", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    for fragment in expected:
        assert fragment in message
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
