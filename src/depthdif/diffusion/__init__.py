"""Conditional pixel-space diffusion: noise schedule, EDM formulation, denoiser, training objectives, samplers."""

from depthdif.diffusion.denoiser import ConditionalUNet, count_parameters
from depthdif.diffusion.edm import DiffusionSettings, EDMSampling, EDMTraining, edm_sample
from depthdif.diffusion.objectives import (
    ambient_loss,
    ambient_masks,
    build_condition,
    condition_channels,
    masked_mse,
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

__all__ = [
    "ConditionalUNet",
    "DiffusionConfigError",
    "DiffusionSettings",
    "EDMSampling",
    "EDMTraining",
    "NoiseSchedule",
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
    "regression_loss",
    "repeat_for_members",
    "split_members",
    "standard_loss",
    "standard_loss_mask",
    "training_loss",
]
