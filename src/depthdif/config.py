"""Validate a workflow config against the JSON schema and fill in the defaults."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from depthdif.data.periods import list_periods
from depthdif.errors import ConfigError
from depthdif.params import maps_section

DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
#: the scenario mode whose observations are real Argo profiles (no fraction; its own keys below)
ARGO_PROFILES = "argo_profiles"
ARGO_PROFILES_KEYS = ("surface_within_m", "salinity_fallback", "min_observed_pixels", "holdout_floats",
                      "holdout_seed")
#: the scenario modes that read Argo files, and the keys only `argo_source: argopy` takes
ARGO_MODES = ("argo", ARGO_PROFILES)
ARGOPY_KEYS = ("argo_fetcher", "argo_user_mode", "argo_pres_margin", "argo_server")


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so `properties` fill their `default` first."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    def fill_additional(validator, additional, instance, schema):  # type: ignore[no-untyped-def]
        # Fill defaults inside map-like sections (e.g. every scenario) too.
        if isinstance(instance, dict) and isinstance(additional, dict):
            known = set(schema.get("properties", {}))
            for name, value in instance.items():
                if name not in known:
                    yield from validator.descend(value, additional, path=name)
        elif additional is False and isinstance(instance, dict):
            yield from validator_class.VALIDATORS["additionalProperties"](
                validator, additional, instance, schema
            )

    return jsonschema.validators.extend(
        validator_class, {"properties": set_defaults, "additionalProperties": fill_additional}
    )


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (
            f"config key '{key}': unknown key(s) {extra}; allowed keys: {allowed}. "
            "Check the spelling against config/README.md."
        )
    if error.validator == "enum":
        return (
            f"config key '{key}': value {error.instance!r} is not allowed; "
            f"allowed values: {error.validator_value}."
        )
    if error.validator == "required":
        mode = error.instance.get("mode") if isinstance(error.instance, dict) else None
        if "else" in error.schema_path and mode is not None:  # the scenario keys a mode requires
            return (f"config key '{key}': {error.message} for mode {mode!r} (every mode but "
                    f"{ARGO_PROFILES!r} needs it). Add it (see config/README.md).")
        return f"config key '{key}': {error.message}. Add it (see config/README.md)."
    if error.validator == "oneOf":
        options = [s.get("type", s.get("enum", "object")) for s in error.validator_value]
        return (
            f"config key '{key}': value {error.instance!r} has the wrong form; "
            f"expected one of: {options} (see config/README.md)."
        )
    return f"config key '{key}': value {error.instance!r} is invalid: {error.message}."


def validate_config(
    config: dict[str, Any], schema_path: str | os.PathLike[str] = DEFAULT_SCHEMA
) -> dict[str, Any]:
    """Validate `config` in place, filling defaults; raise ConfigError naming the key.

    Returns the same (now complete) dict. Cross-key rules that JSON schema cannot
    express (region order, split fractions summing to 1, mode options) are checked too.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        # Deepest, most specific error first; report all of them.
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors))
    _check_cross_keys(config)
    return config


def _check_cross_keys(config: dict[str, Any]) -> None:
    region = config["data"]["region"]
    if region["lat_min"] >= region["lat_max"]:
        raise ConfigError(
            f"config key 'data.region': lat_min ({region['lat_min']}) must be below "
            f"lat_max ({region['lat_max']})."
        )
    if region["lon_min"] == region["lon_max"]:
        raise ConfigError("config key 'data.region': lon_min and lon_max are equal.")
    fractions = config["patches"]["split"]["fractions"]
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(
            f"config key 'patches.split.fractions': {fractions} sum to {total:g}, not 1."
        )
    if config["patches"]["stride"] > config["patches"]["size"] * 4:
        raise ConfigError(
            "config key 'patches.stride': stride "
            f"{config['patches']['stride']} skips most of the grid; use at most 4 × size."
        )
    for name, scenario in config["scenarios"].items():
        if scenario["min_side"] > scenario["max_side"]:
            raise ConfigError(
                f"config key 'scenarios.{name}': min_side ({scenario['min_side']}) exceeds "
                f"max_side ({scenario['max_side']})."
            )
        _check_scenario(name, scenario)
        if scenario.get("argo_source") == "argopy":
            from depthdif.data.argo_fetch import time_range

            try:
                time_range(config["data"])  # argopy fetches by date: monthly periods only
            except ConfigError as exc:
                raise ConfigError(f"config key 'scenarios.{name}.argo_source': {exc}") from exc
    sample = config["sample"]
    inflated = [m for m in sample["inflation_methods"] if m in config["evaluate"]["methods"]]
    if inflated and sample["members"] < 2:
        raise ConfigError(
            f"config key 'sample.inflation_methods': {inflated} are widened to the spread/skill of the "
            f"validation split, which needs sample.members >= 2 (it is {sample['members']}); raise "
            "sample.members or set sample.inflation_methods: []."
        )
    if sample["final_update"] == "oi_increment" and config["model"]["first_guess"]["method"] == "none":
        raise ConfigError(
            "config key 'sample.final_update': 'oi_increment' interpolates each member's misfit at its observations "
            "with the model's OI first guess, and model.first_guess.method is 'none'; set sample.final_update: "
            "overwrite, or model.first_guess.method: oi."
        )
    if config["data"]["source"] == "netcdf" and not config["data"]["netcdf"]["paths"]:
        raise ConfigError(
            "config key 'data.netcdf.paths': data.source is 'netcdf' but no files are given; "
            "set a path or glob to your netCDF files."
        )
    size, mults = config["patches"]["size"], config["model"]["backbone"]["dim_mults"]
    factor = 2 ** (len(mults) - 1)
    if size % factor:
        below, above = size - size % factor, size - size % factor + factor
        raise ConfigError(
            f"config keys 'patches.size' ({size}) and 'model.backbone.dim_mults' ({mults}): the "
            f"U-Net halves the patch {len(mults) - 1} times, so patches.size must be divisible by "
            f"{factor}; use patches.size {above}"
            + (f" or {below}" if below >= 8 else "")
            + " or fewer dim_mults."
        )
    data = config["data"]
    if data["source"] == "netcdf" and data["eo"] == "ostia" and not data["netcdf"]["eo_paths"]:
        raise ConfigError(
            "config key 'data.netcdf.eo_paths': data.eo is 'ostia' with the netcdf source but no "
            "SST files are given; set a path or glob, or use data.eo 'surface' or 'none'."
        )
    if "oi_eo" in config["evaluate"]["methods"] and data["eo"] == "none":
        raise ConfigError(
            "config keys 'evaluate.methods' and 'data.eo': evaluate.methods includes 'oi_eo', a regression "
            "of each level on the EO plus OI of the residuals, but data.eo is 'none' (no EO in the shards); "
            "set data.eo to 'surface' or 'ostia', or remove oi_eo from evaluate.methods."
        )
    _check_maps(config)
    params = config["model"]["diffusion"]["parameterization"]
    if params == "epsilon" and config["objectives"]["ambient"]["require_x0_parameterization"]:
        # Only fatal for the ambient objective; the trainer raises when it is actually used.
        pass


def _check_scenario(name: str, scenario: dict[str, Any]) -> None:
    """Keys that only some modes take: Argo files (argo_paths or argo_source argopy) for the argo modes;
    fraction vs the argo_profiles keys."""
    mode = scenario["mode"]
    source = scenario.get("argo_source", "files")
    if "argo_source" in scenario and mode not in ARGO_MODES:
        raise ConfigError(
            f"config key 'scenarios.{name}.argo_source': only modes {list(ARGO_MODES)} read Argo files, "
            f"but the mode is {mode!r}; remove the key or change the mode."
        )
    if mode in ARGO_MODES and source == "files" and not scenario["argo_paths"]:
        raise ConfigError(
            f"config key 'scenarios.{name}.argo_paths': mode {mode!r} needs Argo "
            "_prof.nc files (a path, glob or list), or argo_source: argopy to fetch them."
        )
    if source == "argopy" and scenario["argo_paths"]:
        raise ConfigError(
            f"config keys 'scenarios.{name}.argo_paths' and 'scenarios.{name}.argo_source': argo_source "
            "'argopy' fetches the profiles itself and reads no argo_paths; remove argo_paths, or set "
            "argo_source: files to use them."
        )
    extra = [k for k in ARGOPY_KEYS if k in scenario]
    if source != "argopy" and extra:
        raise ConfigError(
            f"config key(s) {', '.join(f'scenarios.{name}.{k}' for k in extra)}: only argo_source 'argopy' "
            "uses them; remove them or set argo_source: argopy."
        )
    if mode == ARGO_PROFILES and "fraction" in scenario:
        raise ConfigError(
            f"config key 'scenarios.{name}.fraction': mode {ARGO_PROFILES!r} observes what the Argo profiles "
            "observe, so there is no hidden fraction to set; remove the key."
        )
    extra = [k for k in ARGO_PROFILES_KEYS if k in scenario]
    if mode != ARGO_PROFILES and extra:
        raise ConfigError(
            f"config key(s) {', '.join(f'scenarios.{name}.{k}' for k in extra)}: only mode "
            f"{ARGO_PROFILES!r} uses them, but the mode is {mode!r}; remove them or change the mode."
        )


def load_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config, apply shallow per-section overrides, validate it."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    for key, value in (overrides or {}).items():
        config[key] = value
    return validate_config(config)


def _check_maps(config: dict[str, Any]) -> None:
    """The maps section: overlapping windows, a configured scenario, periods among data.periods."""
    maps, size = maps_section(config), int(config["patches"]["size"])
    if not 1 <= maps["stride"] < size:
        raise ConfigError(
            f"config key 'maps.stride' ({maps['stride']}): the windows must overlap, so the stride must be "
            f"below patches.size ({size}); use e.g. {max(1, size // 2)}, or null (patches.size / 2)."
        )
    if maps["scenario"] not in config["scenarios"]:
        raise ConfigError(
            f"config key 'maps.scenario' ({maps['scenario']!r}) is not a configured scenario; use one of "
            f"{list(config['scenarios'])}, or null (the first)."
        )
    periods = list_periods(config["data"])
    unknown = [p for p in maps["periods"] if p not in periods]
    if unknown:
        raise ConfigError(
            f"config key 'maps.periods': {unknown} are not among data.periods ({periods[0]} … {periods[-1]}); "
            "add them to data.periods or remove them (an empty list maps the test split's periods)."
        )
    if "oi_eo" in maps["methods"] and config["data"]["eo"] == "none":
        raise ConfigError(
            "config keys 'maps.methods' and 'data.eo': oi_eo is a regression on the EO but data.eo is 'none'; "
            "remove oi_eo from maps.methods or set data.eo to 'surface' or 'ostia'."
        )
