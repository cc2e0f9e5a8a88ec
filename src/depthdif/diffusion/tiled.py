"""Tiled sampling of a region larger than one patch: overlapping windows that agree at every step.

Blending finished window samples averages independent members where windows overlap (half the
variance where two windows meet with equal weight), so a seam shows in every ensemble std map.
Here the windows share one state instead (MultiDiffusion, Bar-Tal et al. 2023): at every step each
window's update is computed from its cut of the shared full-region state, and the state becomes

    x ← Σ_w W_w ⊙ update_w(x|_w) / Σ_w W_w,   W(i, j) = h(i) h(j),  h(i) = f + (1 - f) sin²(π (i + ½) / s)

(s the window side: a separable Hann window with a floor f > 0, so every pixel of the region, its
borders included, has weight, and a window's edge pixels count little next to the window whose
centre they are near). Every random draw of a step is one full-region field per member, cut per
window: overlapping windows add the same noise, so a member is one coherent field and the noise
keeps its variance through the blend. The steps are those of `sampler.Plan` (DDIM, DDPM, EDM's Heun,
with the known-pixel modes applied to the whole state); nothing of the sampler math is repeated.

Memory: the full-region state, one noise field and the float64 blend sums, (K, C, H, W) each, plus
one batch of windows × K members at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from depthdif.diffusion.sampler import ModelFn, Noise, Plan, generator_noise

_Array = TypeVar("_Array", Tensor, np.ndarray)
#: the blend weight's floor f: a window's border pixels keep weight f² > 0 (corners)
BLEND_FLOOR = 0.01


def window_starts(n: int, size: int, stride: int) -> list[int]:
    """0, stride, 2·stride, … < n - size, and a last window flush with the border (start n - size)."""
    if n < size:
        raise ValueError(f"a region of {n} px is smaller than one {size} px window")
    if not 1 <= stride <= size:
        raise ValueError(f"window stride {stride} must be in [1, {size}] (overlapping or touching windows)")
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def blend_weight(size: int, floor: float = BLEND_FLOOR) -> Tensor:
    """W(i, j) = h(i) h(j), h(i) = f + (1 - f) sin²(π (i + ½) / size): (size, size) float64 in (0, 1]."""
    i = torch.arange(size, dtype=torch.float64)
    h = floor + (1 - floor) * torch.sin(math.pi * (i + 0.5) / size) ** 2
    return h[:, None] * h[None, :]


@dataclass(frozen=True)
class Tiling:
    """Overlapping size × size windows over an H × W region (row-major), the last flush with each border."""

    height: int
    width: int
    size: int
    stride: int
    origins: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        rows = window_starts(self.height, self.size, self.stride)
        cols = window_starts(self.width, self.size, self.stride)
        object.__setattr__(self, "origins", tuple((y, x) for y in rows for x in cols))

    def __len__(self) -> int:
        return len(self.origins)

    def batches(self, windows: int) -> Iterator[list[int]]:
        """Consecutive groups of at most `windows` window indices."""
        n = len(self.origins)
        for lo in range(0, n, max(1, windows)):
            yield list(range(lo, min(lo + max(1, windows), n)))

    def cut(self, state: _Array, windows: Sequence[int]) -> _Array:
        """state (..., H, W) → (n, ..., s, s): the windows' cuts, stacked (a tensor or a numpy array)."""
        s = self.size
        parts = [state[..., y : y + s, x : x + s] for y, x in (self.origins[i] for i in windows)]
        return torch.stack(parts) if isinstance(state, Tensor) else np.stack(parts)  # type: ignore[return-value]


class Blend:
    """Σ_w W ⊙ value_w / Σ_w W over the windows added, summed in float64 on the full region.

    A constant value c from every window gives exactly c (the float64 quotient rounds back to c).
    """

    def __init__(self, tiling: Tiling, lead: Sequence[int], device: torch.device | str) -> None:
        self.tiling = tiling
        self.weight = blend_weight(tiling.size).to(device)
        self.num = torch.zeros((*lead, tiling.height, tiling.width), dtype=torch.float64, device=device)
        self.den = torch.zeros((tiling.height, tiling.width), dtype=torch.float64, device=device)

    def add(self, windows: Sequence[int], values: Tensor) -> None:
        """values (n, *lead, s, s) of the windows `windows`."""
        s = self.tiling.size
        for value, i in zip(values, windows):
            y, x = self.tiling.origins[i]
            self.num[..., y : y + s, x : x + s] += self.weight * value.to(torch.float64)
            self.den[y : y + s, x : x + s] += self.weight

    def result(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The blended field (*lead, H, W) (NaN where no window was added)."""
        return (self.num / self.den).to(dtype)


class _FullNoise:
    """A fresh full-region noise field shaped like the state (one field per member)."""

    def __init__(self, noise: Noise, state: Tensor) -> None:
        self.noise, self.state = noise, state

    def __call__(self) -> Tensor:
        return self.noise(self.state)


class _WindowNoise:
    """The j-th draw of a window update: the cut of the step's j-th full-region noise field (drawn at first use)."""

    def __init__(self, fields: list[Tensor], draw: Callable[[], Tensor], tiling: Tiling, windows: Sequence[int]):
        self.fields, self.draw, self.tiling, self.windows, self.calls = fields, draw, tiling, windows, 0

    def __call__(self, like: Tensor) -> Tensor:
        if self.calls == len(self.fields):
            self.fields.append(self.draw())
        z = self.tiling.cut(self.fields[self.calls], self.windows)  # (n, K, C, s, s)
        self.calls += 1
        return z.reshape(like.shape).to(like.dtype)


@torch.no_grad()
def tiled_sample(
    plan: Plan,
    window_fn: Callable[[Sequence[int]], ModelFn],
    tiling: Tiling,
    x: Tensor,
    *,
    batch_windows: int,
    generator: torch.Generator | None,
) -> Tensor:
    """Run `plan` on the full-region state x (K, C, H, W) (row k = member k) → (K, C, H, W).

    Per step: pre on the whole state; update per batch of windows (batch_windows windows × K members
    rows, member-minor: row b·K + k is member k of window b) with `window_fn(windows)` as the model,
    blended with `Blend`; post (the known pixels) on the whole state. Draws come from `generator`.
    """
    noise: Noise = generator_noise(generator)
    k = x.shape[0]
    for step in plan.steps:
        if step.pre is not None:
            x = step.pre(x, noise)
        fields: list[Tensor] = []
        blend = Blend(tiling, x.shape[:-2], x.device)
        draw = _FullNoise(noise, x)
        for windows in tiling.batches(batch_windows):
            cut = tiling.cut(x, windows)  # (n, K, C, s, s)
            rows = cut.reshape(-1, *cut.shape[2:])
            out = step.update(window_fn(windows), rows, _WindowNoise(fields, draw, tiling, windows))
            blend.add(windows, out.reshape(len(windows), k, *out.shape[1:]))
        x = blend.result(x.dtype)
        if step.post is not None:
            x = step.post(x, noise)
    return x
