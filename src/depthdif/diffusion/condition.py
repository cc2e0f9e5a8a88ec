"""The denoiser's condition: cond = concat(x, A?, eo?) without a first guess, else the observation
`Frame` of `first_guess.py` (anomalies around the OI first guess); `frame_channels` counts either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from depthdif.diffusion.first_guess import Frame, ObservationPrior, identity_frame
from depthdif.diffusion.schedule import DiffusionConfigError


def condition_channels(channels: int, use_eo: bool, use_mask_channels: bool) -> int:
    """Channels of concat(x, A?, eo?): C + C·mask + 1·eo."""
    return channels * (2 if use_mask_channels else 1) + (1 if use_eo else 0)


def frame_channels(channels: int, use_eo: bool, use_mask_channels: bool, first_guess: bool) -> int:
    """Condition channels: those of `build_condition` + [g, s_g] (2C) with a first guess."""
    return condition_channels(channels, use_eo, use_mask_channels) + (2 * channels if first_guess else 0)


def build_condition(
    x: Tensor,
    x_valid: Tensor,
    eo: Tensor | None = None,
    *,
    use_mask_channels: bool = True,
    use_eo: bool = True,
) -> Tensor:
    """cond = concat(x, A, eo) along channels (A and eo only when enabled)."""
    parts = [x]
    if use_mask_channels:
        parts.append(x_valid.to(x.dtype))
    if use_eo:
        if eo is None:
            raise DiffusionConfigError(
                "model.conditioning.eo is true but the batch has no 'eo': set data.eo to "
                "'surface' or 'ostia', or model.conditioning.eo to false"
            )
        parts.append(eo.to(x.dtype))
    return torch.cat(parts, dim=1)


def observation_frame(
    batch: Mapping[str, Any],
    prior: ObservationPrior | None,
    *,
    use_eo: bool,
    use_mask_channels: bool,
    observed: Tensor | None = None,
) -> Frame:
    """The frame of a batch from (x, A), or from (Ã ⊙ x, Ã) when `observed` = Ã is given."""
    a = batch["x_valid"] if observed is None else observed
    x = batch["x"] if observed is None else observed * batch["x"]
    if prior is None:
        return identity_frame(
            build_condition(x, a, batch.get("eo"), use_mask_channels=use_mask_channels, use_eo=use_eo)
        )
    # the dataset's cached first guess (from x and A: never for Ã)
    precomputed = batch if observed is None and "fg" in batch else None
    return prior.frame(x, a, batch.get("eo"), batch.get("land"), use_eo=use_eo, use_mask_channels=use_mask_channels,
                       precomputed=precomputed)

