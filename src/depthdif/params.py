"""What each rule gets as `params` (keys that change its outputs) and how jobs get the rest.

Snakemake reruns a job when one of its `params` changes, so a rule's params hold exactly
the config keys that change its outputs (the sorting is written down in
config/README.md). Everything else reaches the job through the runtime file
(`results/runtime/config.json`, the complete validated config of the last start; not an
input of any rule): the job's script merges its params back over the runtime file's
sections, so the package still receives complete sections, while runtime-only keys
(`train.num_workers`, ...) and keys the job does not use (the diffusion keys for the
deterministic unet, the copernicus options with `source: synthetic`) never rerun it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: The runtime file: the complete config of the last start, read by jobs, never an input.
RUNTIME_FILE = "results/runtime/config.json"

#: Keys that change how a job runs or what it prints/logs on the side, never its outputs.
RUNTIME_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("copernicus.credentials_file",),
    # the windows of a map batch: every draw is a full-region field, so batching changes no draw
    "maps": ("batch_size",),
    "train": (
        "num_workers",
        "tensorboard",
        "wandb",
        "log_every_n_steps",
        "checkpoint_every_n_steps",
        "val_examples",
    ),
}

#: Keys only the diffusion objectives use: the deterministic unet never reruns for them.
DIFFUSION_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("diffusion",),
    "train": ("ema_decay", "val_ddim_steps"),
}

SOURCES = ("synthetic", "netcdf", "copernicus")
#: methods with a model.ckpt (the others are the classical gap-fillers)
LEARNED = ("unet", "standard", "ambient")


def without(section: Mapping[str, Any], dotted: Iterable[str]) -> dict[str, Any]:
    """Deep copy of `section` without the dotted keys (missing keys are ignored)."""
    out = copy.deepcopy(dict(section))
    for key in dotted:
        *parents, last = key.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def data_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The data section for retrieval and extraction: only the active source's options.

    Left out: the period list (adding a period only adds that period's jobs), the other
    sources' subsections, `eo_surface` unless `eo: surface`, and runtime-only keys.
    """
    data = config["data"]
    drop = ["periods", *(s for s in SOURCES if s != data["source"]), *RUNTIME_KEYS["data"]]
    if data["eo"] != "surface":
        drop.append("eo_surface")
    return without(data, drop)


#: scenario keys of the leave-floats-out validation, output keys only while it is on (holdout_floats > 0)
HOLDOUT_KEYS = ("holdout_floats", "holdout_seed")


def scenario_params(config: Mapping[str, Any], scenario: str) -> dict[str, Any]:
    """A scenario's keys for its shards; without the holdout keys while holdout_floats is 0 (the shards are
    then those of a scenario without them, so argo_profiles shards written before the keys existed stay)."""
    section = copy.deepcopy(dict(config["scenarios"][scenario]))
    if not section.get("holdout_floats"):
        for key in HOLDOUT_KEYS:
            section.pop(key, None)
    return section


def holdout_scenarios(config: Mapping[str, Any]) -> list[str]:
    """The scenarios with leave-floats-out validation (mode argo_profiles, holdout_floats > 0)."""
    return [name for name, cfg in config["scenarios"].items()
            if cfg.get("mode") == "argo_profiles" and float(cfg.get("holdout_floats") or 0) > 0]


def train_params(config: Mapping[str, Any], objective: str) -> dict[str, Any]:
    """model, objective and train keys that change a trained model of `objective`."""
    model, train = config["model"], without(config["train"], RUNTIME_KEYS["train"])
    if objective == "unet":
        model = without(model, DIFFUSION_ONLY_KEYS["model"])
        train = without(train, DIFFUSION_ONLY_KEYS["train"])
    return {
        "model": copy.deepcopy(model),
        "objective": copy.deepcopy(config["objectives"][objective]),
        "train": train,
    }


def sample_params(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Sampler keys that change the samples of `method`.

    Diffusion: the whole section (the noise is drawn per batch, so even `batch_size`
    changes the draws). The deterministic unet uses none of them (its `batch_size` only
    sets the memory use), so no sample key reruns it.
    """
    return {} if method == "unet" else copy.deepcopy(config["sample"])


def maps_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `maps` section with its config-dependent defaults (the schema's nulls) filled in:

    methods → the learned methods of `evaluate.methods` plus oi; scenario → the first scenario;
    stride → patches.size // 2; members → sample.members. `periods` stays as given ([] = the
    periods of the test split, known once the index exists: `data.index.split_periods`).
    """
    maps = copy.deepcopy(dict(config["maps"]))
    if maps["methods"] is None:
        maps["methods"] = [m for m in config["evaluate"]["methods"] if m in LEARNED] + ["oi"]
    if maps["scenario"] is None:
        maps["scenario"] = next(iter(config["scenarios"]))
    if maps["stride"] is None:
        maps["stride"] = max(1, int(config["patches"]["size"]) // 2)
    if maps["members"] is None:
        maps["members"] = int(config["sample"]["members"])
    return maps


def map_params(config: Mapping[str, Any], method: str) -> dict[str, Any]:
    """What changes the map of `method`: the window stride, the scenario (its observations), the
    window size and coarsening; diffusion: members, write_members and the sampler keys (not the
    `sample` section's own members/save_members/batch_size); baselines: their `evaluate` section."""
    maps = maps_section(config)
    keys = ["stride", "scenario"]
    out: dict[str, Any] = {
        "patches": {k: config["patches"][k] for k in ("size", "coarsen")},
        "scenario": copy.deepcopy(config["scenarios"][maps["scenario"]]),
    }
    if method in ("standard", "ambient"):
        keys += ["members", "write_members"]
        out["sample"] = without(config["sample"], ("members", "save_members", "batch_size"))
    elif method not in LEARNED:
        out["baseline"] = copy.deepcopy(config["evaluate"]["oi" if method == "oi_eo" else method])
    out["maps"] = {k: maps[k] for k in keys}
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: `override` wins; nested dicts are merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def complete(params_section: Mapping[str, Any], runtime_file: str | os.PathLike[str], *path: str) -> dict[str, Any]:
    """A job's complete config section: its params merged over the runtime file's section.

    `path` names the section in the config (e.g. "train", or "objectives", "ambient").
    """
    section: Any = read_runtime(runtime_file)
    for part in path:
        section = section[part]
    return merge(section, params_section)


def read_runtime(runtime_file: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(runtime_file).read_text())


def write_if_changed(path: str | os.PathLike[str], text: str) -> bool:
    """Write `text` atomically, only when it differs (an unchanged file keeps its mtime)."""
    final = Path(path)
    if final.is_file() and final.read_text() == text:
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, final)
    return True


def write_runtime(config: Mapping[str, Any], path: str | os.PathLike[str] = RUNTIME_FILE) -> bool:
    """Store the complete validated config for the jobs (rewritten only when it changed)."""
    return write_if_changed(path, json.dumps(config, indent=1, sort_keys=True) + "\n")
