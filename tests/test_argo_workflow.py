"""Real Argo profiles in, dense maps out: the tiny argo_profiles config through the real workflow.

The shared floats (../shared/data/real/argo) observe a synthetic truth over float 4901079's 2009
track: shards whose x are the floats' potential temperatures (not the truth), every method trained
and scored on that observation pattern, and `snakemake maps` writing CF netCDF maps and figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from depthdif.config import validate_config
from workflow_runner import REPO, make_workdir, read_config, snakemake, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.shared_data]


def test_documented_argo_config_is_valid_and_plans_maps(tmp_path: Path, real_data_dir: Path) -> None:
    import yaml

    cfg = yaml.safe_load((REPO / "config" / "argo_profiles.yaml").read_text())
    validate_config(cfg)
    assert cfg["scenarios"]["argo"]["mode"] == "argo_profiles" and cfg["scenarios"]["argo"]["surface_within_m"] == 10
    cfg["scenarios"]["argo"]["argo_paths"] = str(real_data_dir / "argo" / "*_prof.nc")
    workdir = make_workdir(tmp_path / "doc", cfg)
    out = snakemake(workdir, "-n", "--cores", "1", "all").stdout
    assert "make_shards" in out and "train_model" in out and "calibrate_ensemble" in out


def test_argo_profiles_workflow_to_maps(tmp_path: Path, real_data_dir: Path) -> None:
    workdir = make_workdir(tmp_path / "wf", base="tests/configs/tiny_argo.yaml")
    cfg = read_config(workdir)
    cfg["scenarios"]["argo"]["argo_paths"] = str(real_data_dir / "argo" / "*_prof.nc")
    write_config(workdir, cfg)
    snakemake(workdir, "--cores", "2", "evaluate", "maps", timeout=1500)

    manifest = json.loads((workdir / "results/shards/argo/train/manifest.json").read_text())
    stats = manifest["argo_profiles"]
    assert stats["profiles_read"] == 618 and stats["profiles_in_patches"] > 0
    # the representativeness error of real profiles against the (synthetic) gridded truth is reported per level
    omt = manifest["obs_minus_truth"]
    assert len(omt["mean"]) == 3 and all(n > 0 for n in omt["n"]) and all(s > 0 for s in omt["std"])
    # x holds the profiles' values, not the truth; A differs between levels is allowed, obs_count > 0 on A
    from depthdif.shards import load_arrays

    arrays = load_arrays(workdir / "results/shards/argo/train")
    a = arrays["x_valid"].astype(bool)
    assert a.any() and np.abs(arrays["x"][a] - arrays["y"][a]).max() > 0.05
    assert (arrays["obs_count"][a] > 0).all() and (arrays["obs_count"][~a] == 0).all()

    summary = pd.read_csv(workdir / "results/metrics/summary.csv")
    rows = summary[summary["depth"].astype(str) == "all"].set_index("method")
    assert set(rows.index) == {"idw", "oi", "unet", "standard", "ambient"}
    assert (rows["n_hidden"] > 0).all() and np.isfinite(rows["rmse"]).all()

    for method in ("standard", "ambient", "oi"):
        path = workdir / f"results/maps/{method}/2009-10.nc"
        with xr.open_dataset(path) as ds:
            assert ds.attrs["Conventions"] == "CF-1.8"
            # region -46..-30 E, 38..46 N at 0.5°: 16 × 32 cells, 3 levels
            assert (ds.sizes["latitude"], ds.sizes["longitude"], ds.sizes["depth"]) == (16, 32, 3)
            assert ds["thetao_mean"].attrs["standard_name"] == "sea_water_potential_temperature"
            count = ds["obs_count"].values
            assert (count > 0).sum() >= 1  # float 4901079 profiled the region in October 2009
            assert np.isfinite(ds["thetao_mean"].values).all()
        png = workdir / f"results/figures/maps/{method}/2009-10.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
