"""Reconstruct a test shard folder with a trained model.ckpt → samples netCDF (degC)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from depthdif.dataset import ShardDataset
from depthdif.errors import ConfigError, DataError
from depthdif.io import seed_for
from depthdif.reconstruction import build_model, build_prior, reconstruct
from depthdif.samples import write_samples
from depthdif.shards import denormalise

log = logging.getLogger("depthdif.inference")

#: sample-section defaults (the unet rule passes only batch_size)
def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """model.ckpt written by `depthdif.training.train` (plain dict, loaded with weights_only=True)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable, truncated or pickled: same advice
        raise DataError(f"cannot load model checkpoint {path} ({exc}); rerun the train_model rule") from exc
    missing = [k for k in ("state_dict", "hparams", "global_step", "config_hash") if k not in ckpt]
    if missing:
        raise DataError(f"{path} lacks {missing}: not a DepthDif model.ckpt; rerun the train_model rule")
    return ckpt


def predict(
    checkpoint: str | os.PathLike[str],
    test_dir: str | os.PathLike[str],
    sample_cfg: Mapping[str, Any],
    *,
    method: str,
    scenario: str,
    out_nc: str | os.PathLike[str],
    device: str = "auto",
) -> dict[str, Any]:
    """Sample `members` reconstructions per test patch (1 for the unet) and write the samples netCDF.

    Forward batches hold batch_size patches × members rows. pred = ensemble mean, std =
    member std (ddof=1; 0 for one member), both de-normalised with the checkpoint's stats.
    With clamping, observed pixels equal the truth exactly. Deterministic given sample.seed.
    """
    cfg = dict(sample_cfg)  # the validated `sample` section (the schema fills every key)
    ckpt = load_checkpoint(checkpoint)
    hp = ckpt["hparams"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    dataset = ShardDataset(test_dir)
    _check_data(dataset, hp, checkpoint)
    if method != hp["objective"]:
        log.warning("method %r writes a checkpoint trained with objective %r", method, hp["objective"])
    net, schedule = build_model(hp)
    net.load_state_dict(ckpt["state_dict"])
    net.to(dev).eval()
    schedule.to(dev)
    prior = build_prior(hp)
    if prior is not None:
        prior.to(dev)

    deterministic = hp["objective"] == "unet"
    k = 1 if deterministic else int(cfg["members"])
    clamp = "none" if deterministic else str(cfg["clamp_known_pixels"])
    keep_members = bool(cfg["save_members"]) and not deterministic
    parts: dict[str, list[np.ndarray]] = {
        key: [] for key in ("mean", "std", "members", "y", "x_valid", "y_valid", "land", "observed_mse")
    }
    done = 0
    for batch in DataLoader(dataset, batch_size=int(cfg["batch_size"]), shuffle=False):
        batch = {key: v.to(dev) for key, v in batch.items()}
        # one generator per batch, keyed by its first patch: batches are reproducible on their own
        generator = torch.Generator(device=dev).manual_seed(seed_for("sample", cfg["seed"], scenario, method, done))
        out = reconstruct(
            net, schedule, batch, hp, sampler=str(cfg["sampler"]), steps=int(cfg["steps"]), eta=float(cfg["eta"]),
            clamp=clamp, members=k, generator=generator, prior=prior, clamp_final=False, edm_sampling=cfg["edm"],
        )  # (B, K, C, H, W) normalised, the model's own values at A
        known = batch["x_valid"] > 0.5
        # the unclamped members' RMSE at the observations (normalised units; de-normalised below)
        sq = (out - batch["x"][:, None]).square().mean(1)
        parts["observed_mse"].append(((sq * known).sum((-2, -1)) / known.sum((-2, -1)).clamp_min(1)).cpu().numpy())
        if clamp != "none":
            out = torch.where(known[:, None], batch["x"][:, None], out)
        mean = out.mean(1)
        std = out.std(1) if k > 1 else torch.zeros_like(mean)
        if clamp != "none":
            # exact on A: a K-member float32 mean of identical values need not round-trip
            mean = torch.where(known, batch["x"], mean)
            std = torch.where(known, torch.zeros_like(std), std)
        parts["mean"].append(mean.cpu().numpy())
        parts["std"].append(std.cpu().numpy())
        if keep_members:
            parts["members"].append(out.cpu().numpy())
        for key in ("y", "x_valid", "y_valid"):
            parts[key].append(batch[key].cpu().numpy())
        parts["land"].append(batch["land"][:, 0].cpu().numpy())
        done += len(out)
        log.info("sampled %d/%d patches", done, len(dataset))
    if done == 0:
        raise DataError(f"{test_dir} holds no patches; nothing to reconstruct")
    arrays = {key: np.concatenate(v) for key, v in parts.items() if v}

    stats = hp["stats"]
    scale = np.asarray(stats["std"], np.float32)[None, :, None, None]
    edm_model = hp["model_cfg"]["diffusion"].get("formulation", "ddpm") == "edm"
    sampler = "deterministic" if deterministic else "edm_heun" if edm_model else str(cfg["sampler"])
    timesteps = int(hp["model_cfg"]["diffusion"]["timesteps"])
    steps = 1 if deterministic else int(cfg["steps"]) if sampler in ("ddim", "edm_heun") else timesteps
    write_samples(
        out_nc,
        pred=denormalise(arrays["mean"], stats, 1),
        std=arrays["std"] * scale,
        members=denormalise(arrays["members"], stats, 2) if keep_members else None,
        truth=denormalise(arrays["y"], stats, 1),
        observed=arrays["x_valid"] > 0.5,
        valid=arrays["y_valid"] > 0.5,
        land=arrays["land"] > 0.5,
        depth=np.asarray(hp["depth"], np.float32),
        lat=dataset.lat,
        lon=dataset.lon,
        time=dataset.time,
        patch_id=dataset.patch_ids,
        observed_rmse=np.sqrt(arrays["observed_mse"]) * scale[:, :, 0, 0],
        attrs={
            "checkpoint": str(checkpoint), "config_hash": str(ckpt["config_hash"]), "method": method,
            "scenario": scenario, "sampler": sampler, "steps": steps,
            "eta": 0.0 if deterministic else float(cfg["eta"]), "clamp_known_pixels": clamp,
            "seed": int(cfg["seed"]), "n_members": k, "global_step": int(ckpt["global_step"]),
        },
    )
    log.info("wrote %s (%d patches × %d members)", out_nc, done, k)
    return {"path": str(out_nc), "n_patches": done, "members": k, "method": method, "scenario": scenario,
            "sampler": sampler, "steps": steps, "device": str(dev)}


def _check_data(dataset: ShardDataset, hp: Mapping[str, Any], checkpoint: Any) -> None:
    where = f"{dataset.folder} vs {checkpoint}"
    if dataset.channels != hp["channels"] or list(map(float, dataset.manifest["depth"])) != list(hp["depth"]):
        raise DataError(f"{where}: depth levels differ; retrain on shards of the current data.depth_levels")
    stats = dataset.manifest["stats"]
    if stats["mean"] != hp["stats"]["mean"] or stats["std"] != hp["stats"]["std"]:
        raise DataError(f"{where}: normalisation stats differ (other train split); retrain the model")
    if hp["use_eo"] and not dataset.has_eo:
        raise ConfigError(f"{where}: the model is conditioned on EO but the test shards have none (data.eo)")
