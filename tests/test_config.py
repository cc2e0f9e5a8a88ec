"""Config validation: defaults filled, and every mistake named by key, value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from depthdif.config import load_config, validate_config
from depthdif.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_default_and_production_configs_validate_with_defaults_filled() -> None:
    default = load_config(REPO / "config/config.yaml")
    assert default["train"]["ema_decay"] == 0.995  # filled from the schema
    assert default["scenarios"]["tracks95"]["sample_every"] == 3  # defaults inside each scenario
    production = load_config(REPO / "config/glorys.yaml")
    assert production["data"]["source"] == "copernicus"
    assert production["patches"]["size"] == 128 and len(production["scenarios"]) >= 4


def test_empty_config_is_the_schema_default() -> None:
    config = validate_config({})
    assert config["data"]["source"] == "synthetic"
    assert config["evaluate"]["methods"] == ["idw", "oi", "unet", "standard", "ambient"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["data"].update(source="glorys"), ["data.source", "'glorys'", "copernicus"]),
        (lambda c: c["data"].update(sorce="x"), ["'data'", "['sorce']", "source"]),
        (lambda c: c["train"].update(batch_size="big"), ["train.batch_size", "'big'", "integer"]),
        (lambda c: c["patches"].update(max_nodata_fraction=1.5), ["patches.max_nodata_fraction", "1.5"]),
        (lambda c: c["scenarios"]["tracks95"].update(mode="swath"), ["scenarios.tracks95.mode", "'swath'", "tracks"]),
        (lambda c: c["scenarios"].update(bad={"mode": "pixel"}), ["scenarios.bad", "fraction"]),
        (lambda c: c["model"]["diffusion"].update(schedule="sigmoid"), ["model.diffusion.schedule", "cosine"]),
        (
            lambda c: c["patches"]["split"].update(fractions={"train": 0.5, "val": 0.1, "test": 0.1}),
            ["patches.split.fractions", "sum to 0.7"],
        ),
        (
            lambda c: c["data"].update(region={"lon_min": 0, "lon_max": 10, "lat_min": 30, "lat_max": 20}),
            ["data.region", "lat_min"],
        ),
        (lambda c: c["scenarios"].update(a={"mode": "argo", "fraction": 0.9}), ["scenarios.a.argo_paths"]),
        (lambda c: c["data"].update(source="netcdf"), ["data.netcdf.paths"]),
        (lambda c: c["model"].update(first_guess={"method": "none"}),
         ["sample.final_update", "'oi_increment'", "model.first_guess.method", "overwrite"]),
        (lambda c: c["data"].update(source="netcdf", netcdf={"paths": "a.nc"}), ["data.netcdf.eo_paths", "ostia"]),
        # the U-Net halves the patch len(dim_mults)-1 times: 20 px cannot take three halvings
        (lambda c: (c["patches"].update(size=20, stride=20), c["model"]["backbone"].update(dim_mults=[1, 2, 2, 2])),
         ["'patches.size' (20)", "'model.backbone.dim_mults' ([1, 2, 2, 2])", "divisible by 8", "24 or 16"]),
    ],
)
def test_mistakes_are_named(edit, expected) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    broken = copy.deepcopy(config)
    edit(broken)
    with pytest.raises(ConfigError) as error:
        validate_config(broken)
    for fragment in expected:
        assert fragment in str(error.value)


def test_patch_size_divisible_by_the_unet_downsampling_passes() -> None:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["patches"].update(size=24, stride=24)
    config["model"]["backbone"]["dim_mults"] = [1, 2, 2, 2]
    validate_config(config)  # 24 = 3 * 8
