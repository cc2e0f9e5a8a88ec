"""Reconstruct a test shard folder with a trained model.ckpt → samples netCDF (degC)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from depthdif.dataset import ShardDataset
from depthdif.diffusion import EDMSampling, NoiseSchedule
from depthdif.diffusion.first_guess import ObservationPrior
from depthdif.errors import ConfigError, DataError
from depthdif.inflation import Inflation, inflate
from depthdif.io import seed_for
from depthdif.reconstruction import SAMPLERS, ModelSpec, build_model, build_prior, reconstruct
from depthdif.samples import write_samples
from depthdif.sections import choice, flag, integer, number, optional_number, section
from depthdif.shards import Holdout, denormalise, load_holdout

log = logging.getLogger("depthdif.inference")

CLAMPS = ("none", "overwrite", "renoise")
#: how the observations enter each finished member when clamping: written over it, or its misfit OI-interpolated
FINAL_UPDATES = ("overwrite", "oi_increment")
#: what a sampled batch contributes to the samples file, in the order it is collected
PARTS = ("mean", "std", "members", "y", "x_valid", "y_valid", "land", "observed_mse")


@dataclass(frozen=True)
class SampleSettings:
    """The `sample` section: sampler, steps, η, known-pixel clamping, ensemble size, batching, seed, EDM's Heun."""

    sampler: str
    steps: int
    eta: float
    clamp_known_pixels: str
    final_update: str
    increment_length_px: float | None
    members: int
    save_members: bool
    batch_size: int
    seed: int
    edm: EDMSampling

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "sample") -> SampleSettings:
        return cls(
            sampler=choice(cfg, "sampler", where, SAMPLERS),
            steps=integer(cfg, "steps", where),
            eta=number(cfg, "eta", where),
            clamp_known_pixels=choice(cfg, "clamp_known_pixels", where, CLAMPS),
            final_update=choice(cfg, "final_update", where, FINAL_UPDATES),
            increment_length_px=optional_number(cfg, "increment_length_px", where),
            members=integer(cfg, "members", where),
            save_members=flag(cfg, "save_members", where),
            batch_size=integer(cfg, "batch_size", where),
            seed=integer(cfg, "seed", where),
            edm=EDMSampling.from_cfg(*section(cfg, "edm", where)),
        )

    def applied_final_update(self, spec: ModelSpec, where: object) -> str:
        """What a diffusion model's finished members get: 'none' without clamping, else `final_update`;
        'oi_increment' needs the model's OI first guess (`spec.prior`; `where` names the model)."""
        if self.clamp_known_pixels == "none":
            return "none"
        if self.final_update == "oi_increment" and spec.prior is None:
            raise ConfigError(f"sample.final_update = 'oi_increment' interpolates each member's misfit with the "
                              f"model's OI first guess, and {where} has none (model.first_guess.method: none): "
                              "use 'overwrite'")
        return self.final_update


@dataclass(frozen=True)
class _Plan:
    """How one checkpoint is sampled: members K, clamp mode, whether members are written, the sampler's name/steps."""

    members: int
    clamp: str
    keep_members: bool
    sampler: str
    steps: int
    eta: float
    inflation: Inflation | None = None
    final_update: str = "overwrite"


@dataclass
class LoadedModel:
    """The loaded network, its schedule and frame on the sampling device."""

    spec: ModelSpec
    net: torch.nn.Module
    schedule: NoiseSchedule
    prior: ObservationPrior | None
    #: the trained step whose members are recentred on `net`'s (the first guess won the selection)
    spread_net: torch.nn.Module | None = None
    spread_step: int | None = None

    def describe_members(self) -> str:
        """For the samples' attrs: where the members come from."""
        if self.spread_net is None:
            return "sampled"
        return f"first guess (selected) + the deviations of trained step {self.spread_step}'s members"


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
    inflation: Inflation | None = None,
) -> dict[str, Any]:
    """Sample `members` reconstructions per test patch (1 for the unet) and write the samples netCDF.

    `sample_cfg` is the validated `sample` section (turned into `SampleSettings` here: a missing
    key is a ConfigError naming it). Forward batches hold batch_size patches × members rows.
    pred = ensemble mean, std = member std (ddof=1; 0 for one member), both de-normalised with
    the checkpoint's stats. With clamping, observed pixels equal the truth exactly.
    `inflation`: the validation-fitted spread power law per level (`depthdif.inflation`), members
    rescaled about their mean.
    Deterministic given sample.seed.
    """
    settings = SampleSettings.from_cfg(sample_cfg)
    ckpt = load_checkpoint(checkpoint)
    hp = ckpt["hparams"]
    spec = ModelSpec.from_hparams(hp)
    dev = resolve_device(device)
    dataset = ShardDataset(test_dir)
    _check_data(dataset, hp, spec, checkpoint)
    if method != spec.objective.name:
        log.warning("method %r writes a checkpoint trained with objective %r", method, spec.objective.name)
    model = load_model(ckpt, spec, dev)
    plan = _plan(spec, settings, inflation)
    level_std = tuple(float(v) for v in hp["stats"]["std"])
    parts: dict[str, list[np.ndarray]] = {key: [] for key in PARTS}
    done = 0
    for batch in _batches(dataset, settings.batch_size, dev):
        # one generator per batch, keyed by its first patch: batches are reproducible on their own
        generator = torch.Generator(device=dev).manual_seed(seed_for("sample", settings.seed, scenario, method, done))
        for key, value in _sample_batch(model, batch, plan, settings, generator, level_std).items():
            parts[key].append(value)
        done += len(batch["x"])
        log.info("sampled %d/%d patches", done, len(dataset))
    if done == 0:
        raise DataError(f"{test_dir} holds no patches; nothing to reconstruct")
    arrays = {key: np.concatenate(v) for key, v in parts.items() if v}
    # the withheld floats' observations ride along for the leave-floats-out scoring (never seen by the model)
    _write(out_nc, arrays, dataset, hp, plan, load_holdout(test_dir), attrs={
        "checkpoint": str(checkpoint), "config_hash": str(ckpt["config_hash"]), "method": method,
        "scenario": scenario, "seed": settings.seed, "global_step": int(ckpt["global_step"]),
        "members_from": model.describe_members(),
    })
    log.info("wrote %s (%d patches × %d members)", out_nc, done, plan.members)
    return {"path": str(out_nc), "n_patches": done, "members": plan.members, "method": method, "scenario": scenario,
            "sampler": plan.sampler, "steps": plan.steps, "device": str(dev)}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def load_model(ckpt: Mapping[str, Any], spec: ModelSpec, dev: torch.device) -> LoadedModel:
    """The checkpoint's (EMA or selected) weights in the network `spec` describes, in eval mode on `dev`."""
    net, schedule = build_model(spec)
    net.load_state_dict(ckpt["state_dict"])
    net.to(dev).eval()
    schedule.to(dev)
    prior = build_prior(spec)
    if prior is not None:
        prior.to(dev)
    spread_net = None
    if "spread_state_dict" in ckpt and not spec.deterministic:
        spread_net, _ = build_model(spec)
        spread_net.load_state_dict(ckpt["spread_state_dict"])
        spread_net.to(dev).eval()
    return LoadedModel(spec, net, schedule, prior, spread_net,
                       None if spread_net is None else int(ckpt["spread_step"]))


def sample_members(
    model: LoadedModel, batch: Mapping[str, torch.Tensor], *, members: int, clamp: str, settings: SampleSettings,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(B, K, C, H, W) normalised members, the model's own values at A (`reconstruct`, clamp_final False).

    With a spread net (the first guess won the validation selection, so every member of the selected
    weights is it): x_k = x̄_sel + (x_k' − x̄'), the selected mean (one member) plus the deviations of
    the trained step's members about their own mean — the ensemble recentred on the selected mean.
    """
    kw = dict(sampler=settings.sampler, steps=settings.steps, eta=settings.eta, clamp=clamp,
              edm_sampling=settings.edm, prior=model.prior, clamp_final=False, generator=generator)
    if model.spread_net is None or members < 2:
        return reconstruct(model.net, model.schedule, batch, model.spec, members=members, **kw)
    # the spread members first: they are drawn exactly as the trained step's own ensemble would be
    spread = reconstruct(model.spread_net, model.schedule, batch, model.spec, members=members, **kw)
    return recentre(reconstruct(model.net, model.schedule, batch, model.spec, members=1, **kw), spread, 1)


def recentre(centre: torch.Tensor, members: torch.Tensor, dim: int) -> torch.Tensor:
    """centre + (x_k − x̄): the members' deviations about their mean (member axis `dim`) moved onto `centre`."""
    return centre + (members - members.mean(dim, keepdim=True))


def _plan(spec: ModelSpec, settings: SampleSettings, inflation: Inflation | None = None) -> _Plan:
    """The unet: one deterministic member, no clamping; diffusion: the sample section. The recorded
    sampler is edm_heun for an EDM model, and its steps the DDPM schedule's length for ddpm."""
    if spec.deterministic:
        if inflation is not None:
            raise ConfigError("ensemble inflation applies to diffusion ensembles; the unet is deterministic")
        return _Plan(members=1, clamp="none", keep_members=False, sampler="deterministic", steps=1, eta=0.0)
    diffusion = spec.model.diffusion
    sampler = "edm_heun" if diffusion.formulation == "edm" else settings.sampler
    steps = settings.steps if sampler in ("ddim", "edm_heun") else diffusion.timesteps
    if inflation is not None and settings.members < 2:
        raise ConfigError("ensemble inflation needs sample.members >= 2")
    return _Plan(members=settings.members, clamp=settings.clamp_known_pixels, keep_members=settings.save_members,
                 sampler=sampler, steps=steps, eta=settings.eta, inflation=inflation,
                 final_update=settings.applied_final_update(spec, "this model"))


def _batches(dataset: ShardDataset, batch_size: int, dev: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        yield {key: v.to(dev) for key, v in batch.items()}


def _sample_batch(
    model: LoadedModel, batch: Mapping[str, torch.Tensor], plan: _Plan, settings: SampleSettings,
    generator: torch.Generator, level_std: Sequence[float],
) -> dict[str, np.ndarray]:
    """One batch's ensemble mean and std (exact on A when clamped), members, truth and masks, and the
    RMSE of the unclamped members at the observations (normalised units), as host arrays."""
    # (B, K, C, H, W) normalised, the model's own values at A
    out = sample_members(model, batch, members=plan.members, clamp=plan.clamp, settings=settings, generator=generator)
    known = batch["x_valid"] > 0.5
    sq = (out - batch["x"][:, None]).square().mean(1)
    result = {"observed_mse": ((sq * known).sum((-2, -1)) / known.sum((-2, -1)).clamp_min(1)).cpu().numpy()}
    if plan.final_update == "oi_increment":
        out = oi_increment(model.prior, out, batch["x"], batch["x_valid"],  # type: ignore[arg-type]
                           settings.increment_length_px)
    if plan.inflation is not None:
        out = inflate(out, plan.inflation, level_std)  # about the per-pixel member mean: the mean is unchanged
    if plan.clamp != "none":
        out = torch.where(known[:, None], batch["x"][:, None], out)
    mean = out.mean(1)
    std = out.std(1) if plan.members > 1 else torch.zeros_like(mean)
    if plan.clamp != "none":
        # exact on A: a K-member float32 mean of identical values need not round-trip
        mean = torch.where(known, batch["x"], mean)
        std = torch.where(known, torch.zeros_like(std), std)
    result["mean"] = mean.cpu().numpy()
    result["std"] = std.cpu().numpy()
    if plan.keep_members:
        result["members"] = out.cpu().numpy()
    for key in ("y", "x_valid", "y_valid"):
        result[key] = batch[key].cpu().numpy()
    result["land"] = batch["land"][:, 0].cpu().numpy()
    return result


def oi_increment(
    prior: ObservationPrior, members: torch.Tensor, x: torch.Tensor, observed: torch.Tensor,
    length_px: float | None = None,
) -> torch.Tensor:
    """(B, K, C, H, W) members, each plus the OI of its own misfit at the observations
    (`ObservationPrior.increment`, conditioning by kriging): they meet the observations without pasted dots."""
    b, k = members.shape[:2]
    flat = members.reshape(b * k, *members.shape[2:])
    out = prior.increment(flat, x.repeat_interleave(k, 0), observed.repeat_interleave(k, 0), length_px)
    return out.reshape(members.shape)


def _write(
    out_nc: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], dataset: ShardDataset, hp: Mapping[str, Any],
    plan: _Plan, holdout: Holdout | None, attrs: Mapping[str, Any],
) -> None:
    """The samples netCDF in degC (de-normalised with the checkpoint's stats)."""
    stats = hp["stats"]
    scale = np.asarray(stats["std"], np.float32)[None, :, None, None]
    write_samples(
        out_nc,
        pred=denormalise(arrays["mean"], stats, 1),
        std=arrays["std"] * scale,
        members=denormalise(arrays["members"], stats, 2) if plan.keep_members else None,
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
        holdout=holdout,
        attrs={
            "checkpoint": attrs["checkpoint"], "config_hash": attrs["config_hash"], "method": attrs["method"],
            "scenario": attrs["scenario"], "sampler": plan.sampler, "steps": plan.steps, "eta": plan.eta,
            "clamp_known_pixels": plan.clamp, "final_update": plan.final_update, "seed": attrs["seed"],
            "n_members": plan.members,
            "global_step": attrs["global_step"], "members_from": attrs["members_from"],
            "inflation": "none" if plan.inflation is None else plan.inflation.describe(),
        },
    )


def _check_data(dataset: ShardDataset, hp: Mapping[str, Any], spec: ModelSpec, checkpoint: Any) -> None:
    where = f"{dataset.folder} vs {checkpoint}"
    if dataset.channels != hp["channels"] or list(map(float, dataset.manifest["depth"])) != list(hp["depth"]):
        raise DataError(f"{where}: depth levels differ; retrain on shards of the current data.depth_levels")
    stats = dataset.manifest["stats"]
    if stats["mean"] != hp["stats"]["mean"] or stats["std"] != hp["stats"]["std"]:
        raise DataError(f"{where}: normalisation stats differ (other train split); retrain the model")
    if spec.model.conditioning.eo and not dataset.has_eo:
        raise ConfigError(f"{where}: the model is conditioned on EO but the test shards have none (data.eo)")
