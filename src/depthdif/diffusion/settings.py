"""The `model` section as typed, frozen settings: backbone, diffusion (formulation, EDM), conditioning, first guess.

Built once at the script boundary (`ModelSettings.from_cfg(model_cfg)`) or, at load, from a
checkpoint's stored `model_cfg` (`depthdif.reconstruction.ModelSpec`). No field has a default:
the schema is the one place for them, and a missing key raises a ConfigError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from depthdif.diffusion.edm import EDMTraining
from depthdif.diffusion.schedule import DiffusionConfigError
from depthdif.errors import ConfigError
from depthdif.sections import choice, flag, integer, number, require, section

FORMULATIONS = ("ddpm", "edm")
LOSS_WEIGHTINGS = ("uniform", "min_snr")
PARAMETERIZATIONS = ("x0", "epsilon", "v")
FIRST_GUESS_METHODS = ("oi", "none")
NUGGETS = ("fitted", "zero")


@dataclass(frozen=True)
class BackboneSettings:
    """model.backbone: the ConvNeXt U-Net's width, levels, attention, FiLM on coordinates, dropout."""

    dim: int
    dim_mults: tuple[int, ...]
    attention: bool
    film: bool
    dropout: float

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "model.backbone") -> BackboneSettings:
        mults = require(cfg, "dim_mults", where)
        if not mults:
            raise DiffusionConfigError(f"{where}.dim_mults is empty: give e.g. [1, 2, 2]")
        return cls(
            dim=integer(cfg, "dim", where),
            dim_mults=tuple(int(m) for m in mults),
            attention=flag(cfg, "attention", where),
            film=flag(cfg, "film", where),
            dropout=number(cfg, "dropout", where),
        )


@dataclass(frozen=True)
class DiffusionSettings:
    """model.diffusion: the formulation (ddpm | edm), the DDPM schedule and target, the loss weight, EDM's σ."""

    formulation: str
    timesteps: int
    schedule: str
    parameterization: str
    loss_weighting: str
    min_snr_gamma: float
    edm: EDMTraining

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "model.diffusion") -> DiffusionSettings:
        err = DiffusionConfigError
        gamma = number(cfg, "min_snr_gamma", where, err)
        if gamma <= 0:
            raise DiffusionConfigError(f"{where}.min_snr_gamma = {gamma}: must be > 0")
        return cls(
            formulation=choice(cfg, "formulation", where, FORMULATIONS, err),
            timesteps=integer(cfg, "timesteps", where),
            schedule=str(require(cfg, "schedule", where)),  # NoiseSchedule checks it
            parameterization=choice(cfg, "parameterization", where, PARAMETERIZATIONS, err),
            loss_weighting=choice(cfg, "loss_weighting", where, LOSS_WEIGHTINGS, err),
            min_snr_gamma=gamma,
            edm=EDMTraining.from_cfg(*section(cfg, "edm", where)),
        )


@dataclass(frozen=True)
class ConditioningSettings:
    """model.conditioning: which extra channels the denoiser sees (the EO, the mask A)."""

    eo: bool
    mask_channels: bool

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "model.conditioning") -> ConditioningSettings:
        return cls(eo=flag(cfg, "eo", where), mask_channels=flag(cfg, "mask_channels", where))


@dataclass(frozen=True)
class FirstGuessSettings:
    """model.first_guess: the OI first guess of the observation frame (method none: global units)."""

    method: str
    covariance: str
    max_fit_patches: int
    residual_scale: str
    scale_floor: float
    nugget: str

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "model.first_guess") -> FirstGuessSettings:
        return cls(
            method=choice(cfg, "method", where, FIRST_GUESS_METHODS, ConfigError),
            covariance=str(require(cfg, "covariance", where)),  # fit_prior / ObservationPrior check it
            max_fit_patches=integer(cfg, "max_fit_patches", where),
            residual_scale=str(require(cfg, "residual_scale", where)),  # fit_prior checks it
            scale_floor=number(cfg, "scale_floor", where),
            nugget=choice(cfg, "nugget", where, NUGGETS, ConfigError),
        )


@dataclass(frozen=True)
class ModelSettings:
    """The `model` section."""

    backbone: BackboneSettings
    diffusion: DiffusionSettings
    conditioning: ConditioningSettings
    first_guess: FirstGuessSettings

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "model") -> ModelSettings:
        return cls(
            backbone=BackboneSettings.from_cfg(*section(cfg, "backbone", where)),
            diffusion=DiffusionSettings.from_cfg(*section(cfg, "diffusion", where)),
            conditioning=ConditioningSettings.from_cfg(*section(cfg, "conditioning", where)),
            first_guess=FirstGuessSettings.from_cfg(*section(cfg, "first_guess", where)),
        )
