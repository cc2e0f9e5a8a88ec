"""The dihedral group of the pixel grid (quarter turns × flip) for rotation-averaged inference.

A model trained with rot90/flip augmentation has no preferred orientation; averaging its
predictions over the group (deterministic unet), or giving each ensemble member its own
group element (diffusion), removes the orientation-dependent part of its error.
Element i: flip the last axis if i ≥ 4, then rotate by i mod 4 quarter turns.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def elements(h: int, w: int) -> list[int]:
    """The group elements that keep an (h, w) grid's shape: 8 for squares, 4 (half turns) otherwise."""
    return list(range(8)) if h == w else [0, 2, 4, 6]


def apply(x: Tensor, i: int) -> Tensor:
    """g_i(x) on the last two axes."""
    if i >= 4:
        x = x.flip(-1)
    return torch.rot90(x, i % 4, dims=(-2, -1))


def invert(x: Tensor, i: int) -> Tensor:
    """g_i⁻¹(x): undo the rotation, then the flip."""
    x = torch.rot90(x, -(i % 4), dims=(-2, -1))
    return x.flip(-1) if i >= 4 else x


def per_row(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, cond: Tensor, element: Tensor) -> Tensor:
    """fn evaluated row by row in the frame of `element[row]`: g⁻¹ fn(g x, g cond), grouped by element."""
    out: Tensor | None = None
    for i in torch.unique(element).tolist():
        rows = (element == i).nonzero().flatten()
        y = invert(fn(apply(x[rows], i), apply(cond[rows], i), rows), i)
        if out is None:
            out = y.new_empty((x.shape[0], *y.shape[1:]))
        out[rows] = y
    assert out is not None
    return out
