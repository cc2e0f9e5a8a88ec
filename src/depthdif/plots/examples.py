"""Data figures: a dataset example per depth (Fig. 1) and the ambient-objective walkthrough (Fig. 3)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from depthdif.errors import DataError
from depthdif.io import seed_for
from depthdif.plots.style import (
    DEGC,
    LAND,
    THERMAL,
    UNOBSERVED,
    dpi_of,
    extent,
    legend_patches,
    new_figure,
    robust_range,
    save_png,
    show_categories,
    show_map,
    show_sparse,
)
from depthdif.shards import load_degc

MASK_COLOURS = [LAND, UNOBSERVED, "black"]
MASK_LABELS = ["land / below sea floor", "hidden (to reconstruct)", "observed"]
AMBIENT_COLOURS = [LAND, UNOBSERVED, "#e6550d", "black"]
AMBIENT_LABELS = ["land", "never observed", "withheld (further drop)", "seen by the model"]


def pick_example(land: np.ndarray) -> int:
    """A representative patch: the median surface-land share among patches with some land (else 0)."""
    share = land.reshape(len(land), -1).mean(axis=1)
    coastal = np.flatnonzero((share > 0) & (share < 0.5))
    if not len(coastal):
        return 0
    return int(coastal[np.argsort(share[coastal])[len(coastal) // 2]])


def first_observed_level(observed: np.ndarray) -> int:
    """The shallowest level of a (C,H,W) mask with an observation (0 if none): with per-level A
    the surface may have none, and a figure of one level should show observations."""
    levels = np.flatnonzero(observed.reshape(len(observed), -1).any(axis=1))
    return int(levels[0]) if len(levels) else 0


def dataset_example(shard_dir: str | os.PathLike[str], out_png: str | os.PathLike[str],
                    cfg: Mapping[str, Any]) -> None:
    """Fig. 1: one shard sample per depth channel: target, observation mask A, sparse input x (degC)."""
    data, manifest = load_degc(shard_dir)
    if not len(data["truth"]):
        raise DataError(f"{shard_dir} holds no samples")
    i = pick_example(data["land"])
    depth = manifest["depth"]
    c = data["truth"].shape[1]
    ext = extent(data["lat"][i], data["lon"][i])
    fig = new_figure(8.4, 2.35 * c + 0.6)
    axes = fig.subplots(c, 3, squeeze=False)
    for k in range(c):
        truth, valid, observed = data["truth"][i, k], data["valid"][i, k], data["observed"][i, k]
        lo, hi = robust_range(truth)
        im = show_map(axes[k, 0], truth, THERMAL, lo, hi, ext)
        show_categories(axes[k, 1], np.where(valid, 1 + observed, 0), MASK_COLOURS, ext)
        show_sparse(axes[k, 2], truth, observed, valid, lo, hi, ext)
        n_obs, n_ocean = int(observed.sum()), int(valid.sum())
        axes[k, 0].set_title(f"target, {depth[k]:.4g} m")
        axes[k, 1].set_title(f"observed {n_obs}/{n_ocean} ocean px")
        axes[k, 2].set_title(f"sparse input x, {depth[k]:.4g} m")
        fig.colorbar(im, ax=axes[k, :], shrink=0.9, label=f"temperature ({DEGC})")
    fig.legend(handles=legend_patches(MASK_COLOURS, MASK_LABELS), loc="outside lower center", ncols=3,
               fontsize="small", frameon=False)
    lat, lon = float(np.mean(data["lat"][i])), float(np.mean(data["lon"][i]))
    fig.suptitle(f"{manifest.get('scenario', '')} {manifest.get('split', '')}: patch {data['patch_id'][i]} "
                 f"({lat:.1f}°N, {lon:.1f}°E)")
    save_png(fig, out_png, dpi_of(cfg))


def ambient_walkthrough(train_shard_dir: str | os.PathLike[str], out_png: str | os.PathLike[str],
                        cfg: Mapping[str, Any], ambient_cfg: Mapping[str, Any]) -> None:
    """Fig. 3: what the ambient objective sees of one training sample (degC), at the shallowest
    level with an observation (`first_observed_level`: the surface for a column-shared A).

    A = observation mask, B ~ Bernoulli(1 - delta) from `ambient_masks`, A~ = B * A: seen
    = A~, withheld = A & ~A~. EO and target share one colour scale with the observations.
    """
    import torch

    from depthdif.diffusion.further_drop import ambient_masks

    data, manifest = load_degc(train_shard_dir)
    if not len(data["truth"]):
        raise DataError(f"{train_shard_dir} holds no samples")
    i = pick_example(data["land"])
    x_valid = torch.from_numpy(data["observed"][i : i + 1].astype(np.float32))
    generator = torch.Generator().manual_seed(seed_for("ambient_walkthrough", str(data["patch_id"][i])) % 2**63)
    kept = ambient_masks(
        x_valid,
        float(ambient_cfg["further_drop_prob"]),
        int(ambient_cfg["min_kept_observed_pixels"]),
        bool(ambient_cfg["shared_spatial_mask"]),
        generator=generator,
    )
    if np.any(np.asarray(kept[0].detach().cpu().numpy(), bool) & ~data["observed"][i]):
        raise DataError("ambient_masks added observations (A~ must be a subset of A at every level)")
    level = first_observed_level(data["observed"][i])
    seen = np.asarray(kept[0, level].detach().cpu().numpy(), bool)
    observed, valid, truth = data["observed"][i, level], data["valid"][i, level], data["truth"][i, level]
    withheld = observed & ~seen
    eo = data.get("eo")
    fields = [truth] + ([eo[i, 0]] if eo is not None else [])
    lo, hi = robust_range(*fields)
    ext = extent(data["lat"][i], data["lon"][i])
    depth_m = manifest["depth"][level]
    delta = float(ambient_cfg["further_drop_prob"])
    panels = 6 if eo is not None else 5
    fig = new_figure(3.0 * 3 + 1.0, 2 * 2.9 + 1.0) if panels == 6 else new_figure(2.9 * 5 + 1.0, 4.2)
    axes = fig.subplots(2, 3).ravel() if panels == 6 else fig.subplots(1, 5).ravel()
    show_sparse(axes[0], truth, observed, valid, lo, hi, ext)
    axes[0].set_title(f"observations A ({int(observed.sum())} px)")
    show_sparse(axes[1], truth, seen, valid, lo, hi, ext)
    axes[1].set_title(f"model input Ã = B⊙A ({int(seen.sum())} px)")
    show_sparse(axes[2], truth, withheld, valid, lo, hi, ext)
    axes[2].set_title(f"withheld A − Ã ({int(withheld.sum())} px, δ={delta:g})")
    codes = np.where(valid, 1, 0) + withheld * 1 + seen * 2
    show_categories(axes[3], codes, AMBIENT_COLOURS, ext)
    axes[3].set_title("seen / withheld / never")
    fig.legend(handles=legend_patches(AMBIENT_COLOURS, AMBIENT_LABELS), loc="outside lower center",
               fontsize="small", ncols=4, frameon=False)
    if eo is not None:
        show_map(axes[4], eo[i, 0], THERMAL, lo, hi, ext)
        axes[4].set_title("EO condition (SST)")
    im = show_map(axes[-1], truth, THERMAL, lo, hi, ext)
    axes[-1].set_title(f"target {depth_m:.4g} m (not in loss)")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=f"temperature ({DEGC})")
    fig.suptitle(f"ambient objective, {manifest.get('scenario', '')} training patch {data['patch_id'][i]}")
    save_png(fig, out_png, dpi_of(cfg))
