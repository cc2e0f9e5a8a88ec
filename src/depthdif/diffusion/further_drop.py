"""The ambient objective's further drop Ã = B ⊙ A ⊆ A (Daras et al. 2023): pixels or square blocks."""

from __future__ import annotations

import torch
from torch import Tensor

from depthdif.diffusion.schedule import DiffusionConfigError

DROP_PATTERNS = ("pixels", "blocks")


def ambient_masks(
    x_valid: Tensor,
    further_drop_prob: float,
    min_kept: int,
    shared_spatial: bool,
    generator: torch.Generator | None = None,
    *,
    pattern: str = "pixels",
    block_px: int = 8,
) -> Tensor:
    """Ã = B ⊙ A, B ~ Bernoulli(1 - δ) per position (pixels) or per square block (blocks).

    pixels: one draw per (b, h, w) when shared_spatial, else per value. blocks: one draw per
    block_px × block_px cell of a grid shifted by a random offset per sample, shared by every
    depth level, so whole track segments are withheld and the distance from a withheld to a
    kept observation spans the distances of inference. A spatial B is intersected with each
    level's own A, so Ã ⊆ A at every level also for a per-level A. Each sample keeps at
    least min(min_kept, #observed positions) observed (h, w) positions (observed at any level):
    randomly chosen dropped ones get back their observations at every level A has one. The
    count is over positions, not per level: a level with few observations may keep none (its
    frame is then the prior mean, as for a level without observations at inference).
    """
    if pattern not in ("pixels", "blocks"):
        raise DiffusionConfigError(
            f"objectives.ambient.further_drop_pattern = {pattern!r}: use 'pixels' or 'blocks'"
        )
    if pattern == "blocks":
        return _block_masks(x_valid, further_drop_prob, min_kept, block_px, generator)
    observed = x_valid > 0.5
    b, c, h, w = observed.shape
    draw_shape = (b, 1, h, w) if shared_spatial else (b, c, h, w)
    keep = torch.rand(draw_shape, generator=generator, device=x_valid.device) >= further_drop_prob
    return _restore_min_kept(keep & observed, observed, min_kept, generator).to(x_valid.dtype)


def _block_masks(
    x_valid: Tensor, drop: float, min_kept: int, block_px: int, generator: torch.Generator | None
) -> Tensor:
    """B constant on block_px cells of a randomly shifted grid (one grid per sample)."""
    if block_px < 1:
        raise DiffusionConfigError(f"objectives.ambient.further_drop_block_px = {block_px}: must be >= 1")
    observed = x_valid > 0.5
    b, _, h, w = observed.shape
    gh, gw = h // block_px + 2, w // block_px + 2
    cells = torch.rand((b, 1, gh, gw), generator=generator, device=x_valid.device) >= drop
    grid = cells.repeat_interleave(block_px, 2).repeat_interleave(block_px, 3)
    offset = torch.randint(0, block_px, (b, 2), generator=generator, device=x_valid.device)
    rows = (torch.arange(h, device=x_valid.device)[None] + offset[:, :1])  # (b, h)
    cols = (torch.arange(w, device=x_valid.device)[None] + offset[:, 1:])  # (b, w)
    keep = grid[torch.arange(b, device=x_valid.device)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
    return _restore_min_kept(keep[:, None] & observed, observed, min_kept, generator).to(x_valid.dtype)


def _restore_min_kept(
    kept: Tensor, observed: Tensor, min_kept: int, generator: torch.Generator | None
) -> Tensor:
    """Give back the observed levels of random dropped positions until min_kept positions are kept
    (a position is observed / kept when any level is; what is given back is A there, so Ã ⊆ A)."""
    b, _, h, w = observed.shape
    if min_kept > 0:
        obs_pos = observed.any(dim=1).reshape(b, -1)
        kept_pos = kept.any(dim=1).reshape(b, -1)
        deficit = (obs_pos.sum(1).clamp(max=min_kept) - kept_pos.sum(1)).clamp_min(0)
        candidates = obs_pos & ~kept_pos
        # random rank among the dropped observed positions; re-enable the `deficit` first ones
        score = torch.rand(obs_pos.shape, generator=generator, device=observed.device)
        score = torch.where(candidates, score, -1.0)
        order = score.argsort(dim=1, descending=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.shape[1], device=order.device).expand_as(order)
        )
        enable = candidates & (rank < deficit[:, None])
        kept = kept | (enable.reshape(b, 1, h, w) & observed)
    return kept
