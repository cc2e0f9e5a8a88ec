"""Conditional pixel-space diffusion: noise schedule, EDM formulation, denoiser, training objectives, samplers."""

from depthdif.diffusion.condition import build_condition, condition_channels
from depthdif.diffusion.denoiser import ConditionalUNet, count_parameters
from depthdif.diffusion.edm import EDMSampling, EDMTraining, edm_sample
from depthdif.diffusion.further_drop import ambient_masks
from depthdif.diffusion.objectives import (
    AmbientObjective,
    StandardObjective,
    TrainingObjective,
    UnetObjective,
    ambient_loss,
    masked_mse,
    objective_from_cfg,
    regression_loss,
    standard_loss,
    standard_loss_mask,
    training_loss,
)
from depthdif.diffusion.sampler import (
    clamp_known,
    ddim_sample,
    ddim_sigma,
    ddim_timesteps,
    ddpm_sample,
    repeat_for_members,
    split_members,
)
from depthdif.diffusion.schedule import DiffusionConfigError, NoiseSchedule, min_snr_weight
from depthdif.diffusion.settings import (
    BackboneSettings,
    ConditioningSettings,
    DiffusionSettings,
    FirstGuessSettings,
    ModelSettings,
)

__all__ = [
    "AmbientObjective",
    "BackboneSettings",
    "ConditionalUNet",
    "ConditioningSettings",
    "DiffusionConfigError",
    "DiffusionSettings",
    "EDMSampling",
    "EDMTraining",
    "FirstGuessSettings",
    "ModelSettings",
    "NoiseSchedule",
    "StandardObjective",
    "TrainingObjective",
    "UnetObjective",
    "ambient_loss",
    "ambient_masks",
    "build_condition",
    "clamp_known",
    "condition_channels",
    "count_parameters",
    "ddim_sample",
    "ddim_sigma",
    "ddim_timesteps",
    "ddpm_sample",
    "edm_sample",
    "masked_mse",
    "min_snr_weight",
    "objective_from_cfg",
    "regression_loss",
    "repeat_for_members",
    "split_members",
    "standard_loss",
    "standard_loss_mask",
    "training_loss",
]
