"""Conditional pixel-space diffusion: noise schedule, denoiser, training objectives, samplers."""

from depthdif.diffusion.denoiser import ConditionalUNet, count_parameters
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
from depthdif.diffusion.schedule import DiffusionConfigError, NoiseSchedule

__all__ = [
    "ConditionalUNet",
    "DiffusionConfigError",
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
    "masked_mse",
    "regression_loss",
    "repeat_for_members",
    "split_members",
    "standard_loss",
    "standard_loss_mask",
    "training_loss",
]
