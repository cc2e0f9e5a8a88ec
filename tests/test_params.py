"""Rule params hold only the keys that change a rule's outputs; jobs get the rest back
from the runtime file; the user's files are checksummed at start."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from depthdif import params
from depthdif.config import validate_config
from depthdif.errors import ConfigError
from depthdif.inputs import expand_user_files, user_file_sets, write_checksums

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config() -> dict:
    return validate_config(yaml.safe_load((REPO / "config/config.yaml").read_text()))


def test_train_params_leave_out_runtime_keys_and_unet_leaves_out_diffusion(config: dict) -> None:
    standard = params.train_params(config, "standard")
    for key in params.RUNTIME_KEYS["train"]:
        assert key not in standard["train"]
    assert standard["train"]["lr"] == config["train"]["lr"] and "devices" in standard["train"]
    assert standard["model"]["diffusion"] == config["model"]["diffusion"]
    assert standard["objective"] == config["objectives"]["standard"]
    unet = params.train_params(config, "unet")
    assert "diffusion" not in unet["model"] and "ema_decay" not in unet["train"]
    assert unet["model"]["backbone"] == config["model"]["backbone"]
    assert unet["objective"] == config["objectives"]["unet"]


def test_data_params_keep_only_the_active_source(config: dict) -> None:
    data = params.data_params(config)
    assert data["synthetic"] == config["data"]["synthetic"]
    assert not {"netcdf", "copernicus", "periods", "eo_surface"} & set(data)
    config["data"].update(source="copernicus", eo="surface")
    data = params.data_params(config)
    assert "credentials_file" not in data["copernicus"] and "dataset_id" in data["copernicus"]
    assert "eo_surface" in data and "synthetic" not in data


def test_sample_params_are_empty_for_the_unet(config: dict) -> None:
    assert params.sample_params(config, "unet") == {}
    assert params.sample_params(config, "ambient") == config["sample"]


def test_complete_merges_params_back_over_the_runtime_file(config: dict, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime.json"
    assert params.write_runtime(config, runtime)
    mtime = runtime.stat().st_mtime_ns
    assert not params.write_runtime(config, runtime)  # unchanged: not rewritten
    assert runtime.stat().st_mtime_ns == mtime
    unet = params.train_params(config, "unet")
    assert params.complete(unet["model"], runtime, "model") == config["model"]
    assert params.complete(unet["train"], runtime, "train") == config["train"]
    assert params.complete(params.data_params(config), runtime, "data") == config["data"]
    # the job's params win over an older runtime file
    changed = {**unet["train"], "lr": 0.5}
    assert params.complete(changed, runtime, "train")["lr"] == 0.5


def test_user_files_are_expanded_relative_to_the_working_directory(
    config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    for name in ("b.nc", "a.nc"):
        (tmp_path / "in" / name).write_bytes(name.encode())
    assert expand_user_files("in/*.nc", "k") == ["in/a.nc", "in/b.nc"]
    with pytest.raises(ConfigError, match="'data.netcdf.paths'.*matches no file"):
        expand_user_files("nothing/*.nc", "data.netcdf.paths")
    config["scenarios"]["argo1"] = {**config["scenarios"]["pixel90"], "mode": "argo", "argo_paths": "argo/*_prof.nc"}
    with pytest.raises(ConfigError, match="'scenarios.argo1.argo_paths'"):
        user_file_sets(config)
    config["data"].update(source="netcdf", eo="surface", netcdf={"paths": ["in/*.nc"]})
    config["scenarios"]["argo1"]["argo_paths"] = ["in/a.nc"]
    assert user_file_sets(config) == {
        "data.netcdf.paths": ["in/a.nc", "in/b.nc"], "scenarios.argo1.argo_paths": ["in/a.nc"]
    }


def test_checksum_file_changes_with_the_content_even_when_the_mtime_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.nc").write_bytes(b"one")
    Path("b.nc").write_bytes(b"two")
    sets = {"data.netcdf.paths": ["a.nc", "b.nc"]}
    target = Path(write_checksums(sets, "inputs")["data.netcdf.paths"])
    first = target.read_text()
    assert first.splitlines()[0].endswith("  a.nc") and len(first.splitlines()) == 2
    os.utime(target, ns=(1, 1))
    write_checksums(sets, "inputs")
    assert target.stat().st_mtime_ns == 1  # unchanged content: not rewritten
    # `cp -p` of a same-size file with an older mtime
    Path("new.nc").write_bytes(b"owt")
    os.utime("new.nc", ns=(5, 5))
    shutil.copy2("new.nc", "b.nc")
    write_checksums(sets, "inputs")
    assert target.read_text() != first and target.stat().st_mtime_ns > 1
    assert json.loads(Path("inputs/.stat-cache.json").read_text())
    assert write_checksums({}, "other") == {} and not Path("other").exists()
