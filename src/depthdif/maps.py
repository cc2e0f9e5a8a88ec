"""Dense maps of the whole configured region: overlapping windows of the patch size, blended.

The region's field at a period is read as patch extraction reads it (`data.patches.read_grid`:
the raw file, its EO, `patches.coarsen`), cut into size × size windows at `maps.stride` (the
last flush with each border) and normalised like the shards (train stats). The observations
are an input on the full region grid, (C, H, W) values and counts (`Observations`): here the
scenario's mask drawn once on the full region (`simulate_observations`); real per-level
observations binned on the grid are the same input.

* diffusion (standard, ambient; DDIM/DDPM or EDM): the windows share one full-region state and
  one noise field per member at every sampler step (`diffusion.tiled`), so members are coherent
  fields without seams in their spread. The observation frame (first guess g, its std s_g and the
  residual scale ρ) is each window's own, blended with the same weights into one full-region
  frame, so every window works in the same residual units r = (y - g)/ρ.
* unet: one prediction per window (in that full-region frame), blended.
* idw, oi, oi_eo: one prediction per window (as the baselines on test patches), blended; OI's
  Gaussian predictive variance is blended with the same weights.

Memory: a batch of `maps.batch_size` windows × members at a time, plus the full-region arrays
(the state, one noise field and the float64 blend sums: 16 bytes × K × C × H × W, and a few
C × H × W fields). A global 1/12° map (4320 × 2041 ocean grid, 50 levels, 8 members) would need
~56 GB for those alone: such a map must be made in regional chunks or with those arrays on disk.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from depthdif.data.patches import Grid, read_grid
from depthdif.dataset import patch_coords
from depthdif.diffusion.condition import observation_frame
from depthdif.diffusion.first_guess import Frame, ObservationPrior
from depthdif.diffusion.sampler import ModelFn, repeat_for_members
from depthdif.diffusion.settings import ConditioningSettings
from depthdif.diffusion.tiled import Blend, Tiling, tiled_sample
from depthdif.errors import ConfigError, DataError
from depthdif.eval.baselines import BASELINES, fit_baseline
from depthdif.inference import (
    LoadedModel,
    SampleSettings,
    load_checkpoint,
    load_model,
    oi_increment,
    recentre,
    resolve_device,
)
from depthdif.inflation import Inflation, inflate
from depthdif.io import atomic_output, seed_for, sha256_file
from depthdif.masks import make_mask
from depthdif.reconstruction import ModelSpec, member_fn, sampler_plan, unet_residual
from depthdif.sections import flag, integer, optional_integer

log = logging.getLogger("depthdif.maps")

LEARNED = ("unet", "standard", "ambient")
METHODS = (*BASELINES, *LEARNED)


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapSettings:
    """The resolved `maps` keys of a map job (`params.maps_section`): window stride, ensemble members
    (None: not a diffusion method), whether members are written, windows per forward batch."""

    stride: int
    members: int | None
    write_members: bool
    batch_size: int

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], where: str = "maps") -> MapSettings:
        return cls(integer(cfg, "stride", where), optional_integer(cfg, "members", where),
                   flag(cfg, "write_members", where), integer(cfg, "batch_size", where))


# --- observations on the full region ------------------------------------------------------------


@dataclass(frozen=True)
class Observations:
    """Observations on the full region grid: `values` (C, H, W) degC, NaN where a cell and level has
    none; `count` (C, H, W) int32 observations per cell and level (their mean is `values`)."""

    values: np.ndarray
    count: np.ndarray
    source: str

    @property
    def mask(self) -> np.ndarray:
        return self.count > 0


def simulate_observations(
    grid: Grid, scenario: str, scenario_cfg: Mapping[str, Any], period: str, argo_tracks: Any = None,
) -> Observations:
    """The scenario's mask drawn ONCE on the full region (`make_mask` with patch id "{period}_region",
    so the hidden share `fraction` holds over the region's ocean, tracks run across window borders and
    the draw is deterministic in (scenario seed, period)); a profile observes its valid column."""
    valid = np.isfinite(grid.y)
    observed = make_mask(str(scenario_cfg["mode"]), valid[0], float(scenario_cfg["fraction"]),
                         int(scenario_cfg["seed"]), f"{period}_region", dict(scenario_cfg),
                         lat=grid.lat, lon=grid.lon, time=grid.time, argo_tracks=argo_tracks)
    a = observed[None] & valid
    return Observations(np.where(a, grid.y, np.nan).astype(np.float32), a.astype(np.int32),
                        f"simulated: scenario {scenario} (mode {scenario_cfg['mode']}, fraction "
                        f"{scenario_cfg['fraction']}, seed {scenario_cfg['seed']}) drawn once on the full region")


def argo_observations(grid: Grid, scenario: str, scenario_cfg: Mapping[str, Any], period: str) -> Observations:
    """Mode argo_profiles: the real profiles of month `period` binned on the full region grid, as the
    shards bin them per patch (`data.profiles`: θ on the depth levels, mean per cell and level); the
    floats withheld for leave-floats-out validation (`holdout_floats`) are left out here too."""
    from depthdif.data.argo import argo_profiles
    from depthdif.data.holdout import holdout_platforms
    from depthdif.data.profiles import grid_observations, profiles_on_levels

    profiles = profiles_on_levels(argo_profiles(scenario_cfg["argo_paths"]), np.asarray(grid.depth, float),
                                  surface_within_m=float(scenario_cfg["surface_within_m"]),
                                  salinity_fallback=float(scenario_cfg["salinity_fallback"]))
    share = float(scenario_cfg.get("holdout_floats", 0.0))
    withheld = holdout_platforms(profiles.platform, share, int(scenario_cfg.get("holdout_seed", 0)),
                                 where=f"scenarios.{scenario}.holdout_floats") if share > 0 else set()
    if withheld:
        profiles = profiles.subset(~np.isin(profiles.platform, sorted(withheld)))
    values, count = grid_observations(profiles, period, grid.lat, grid.lon)
    a = (count > 0) & np.isfinite(grid.y)
    return Observations(np.where(a, values, np.nan).astype(np.float32), np.where(a, count, 0).astype(np.int32),
                        f"Argo profiles of {period} (scenario {scenario}, {len(withheld)} floats withheld)")


# --- learned methods -------------------------------------------------------------------------------


@dataclass
class _Region:
    """The region's model inputs on the device, normalised like the shards: x = A ⊙ (y - mean)/std,
    A, eo (normalised, 0 on land), land; coords of every window (FiLM)."""

    x: Tensor  # (C, H, W)
    a: Tensor  # (C, H, W) 0/1
    eo: Tensor | None  # (1, H, W)
    land: Tensor  # (1, H, W)
    coords: Tensor  # (windows, 4)

    def batch(self, tiling: Tiling, windows: Sequence[int]) -> dict[str, Tensor]:
        """The windows as a shard-like batch (x, x_valid, eo, land, coords)."""
        out = {"x": tiling.cut(self.x, windows), "x_valid": tiling.cut(self.a, windows),
               "land": tiling.cut(self.land, windows), "coords": self.coords[list(windows)]}
        if self.eo is not None:
            out["eo"] = tiling.cut(self.eo, windows)
        return out


@dataclass
class _RegionFrame:
    """The windows' observation frames blended into one: g, s_g, ρ on the region (C, H, W) and each
    window's level m, LOO error and observation count (windows, C, 1, 1) for its condition."""

    offset: Tensor
    guess_std: Tensor | None
    scale: Tensor
    level: Tensor | None = None
    loo_ms: Tensor | None = None
    n_obs: Tensor | None = None

    def to_field(self, r: Tensor) -> Tensor:
        """y = g + ρ r."""
        return self.offset + self.scale * r


def _region_inputs(grid: Grid, obs: Observations, stats: Mapping[str, Any], tiling: Tiling,
                   dev: torch.device) -> _Region:
    valid = np.isfinite(grid.y)
    a = obs.mask & valid
    mean = np.asarray(stats["mean"], np.float32)[:, None, None]
    std = np.asarray(stats["std"], np.float32)[:, None, None]
    x = np.where(a, (np.nan_to_num(obs.values) - mean) / std, 0.0).astype(np.float32)
    eo = None
    if grid.eo is not None and stats.get("eo_mean") is not None:
        ok = np.isfinite(grid.eo) & valid[0]
        eo_n = (grid.eo - np.float32(stats["eo_mean"])) / np.float32(stats["eo_std"])
        eo = torch.from_numpy(np.where(ok, eo_n, 0.0).astype(np.float32))[None].to(dev)
    s = tiling.size
    lat = np.stack([grid.lat[y : y + s] for y, _ in tiling.origins])
    lon = np.stack([grid.lon[x : x + s] for _, x in tiling.origins])
    coords = patch_coords(lat, lon, np.full(len(tiling), grid.time, np.int64))
    return _Region(torch.from_numpy(x).to(dev), torch.from_numpy(a.astype(np.float32)).to(dev), eo,
                   torch.from_numpy((~valid[0]).astype(np.float32))[None].to(dev), torch.from_numpy(coords).to(dev))


def _region_frame(prior: ObservationPrior | None, conditioning: ConditioningSettings, region: _Region,
                  tiling: Tiling, batch_windows: int) -> _RegionFrame:
    """Each window's frame from its own (x, A) (as for a test patch), g, s_g and ρ blended over windows."""
    c, h, w = region.x.shape
    if prior is None:
        return _RegionFrame(region.x.new_zeros((c, h, w)), None, region.x.new_ones((c, h, w)))
    blend = Blend(tiling, (3, c), region.x.device)
    level, loo, n_obs = [], [], []
    for windows in tiling.batches(batch_windows):
        b = region.batch(tiling, windows)
        m, g, s_g, loo_ms, n = prior.interpolate_with_loo(b["x"], b["x_valid"])
        pre = {"fg_level": m, "fg": g, "fg_std": s_g, "fg_loo_ms": loo_ms[..., None, None],
               "fg_n_obs": n[..., None, None]}
        frame = prior.frame(b["x"], b["x_valid"], b.get("eo"), b["land"], use_eo=conditioning.eo,
                            use_mask_channels=conditioning.mask_channels, precomputed=pre)
        blend.add(windows, torch.stack([g, s_g, frame.scale.expand_as(g)], 1))
        level.append(m)
        loo.append(pre["fg_loo_ms"])
        n_obs.append(pre["fg_n_obs"])
    g, s_g, rho = blend.result().unbind(0)
    return _RegionFrame(g, s_g, rho, torch.cat(level), torch.cat(loo), torch.cat(n_obs))


def _window_frame(prior: ObservationPrior | None, conditioning: ConditioningSettings, region: _Region,
                  frame: _RegionFrame, tiling: Tiling, windows: Sequence[int]) -> tuple[Frame, dict[str, Tensor]]:
    """The windows' frames in the region's units: their condition from the blended g, s_g (and their
    own level), offset and scale cut from the region frame."""
    b = region.batch(tiling, windows)
    use = {"use_eo": conditioning.eo, "use_mask_channels": conditioning.mask_channels}
    if prior is None:
        return observation_frame(b, None, **use), b
    assert frame.guess_std is not None and frame.level is not None
    rows = list(windows)
    pre = {"fg_level": frame.level[rows], "fg": tiling.cut(frame.offset, windows),
           "fg_std": tiling.cut(frame.guess_std, windows), "fg_loo_ms": frame.loo_ms[rows],  # type: ignore[index]
           "fg_n_obs": frame.n_obs[rows]}  # type: ignore[index]
    own = prior.frame(b["x"], b["x_valid"], b.get("eo"), b["land"], precomputed=pre, **use)
    return Frame(own.cond, pre["fg"], tiling.cut(frame.scale, windows)), b


@torch.no_grad()
def map_model(
    model: LoadedModel,
    region: _Region,
    tiling: Tiling,
    *,
    members: int,
    sample: SampleSettings,
    batch_windows: int,
    generator: torch.Generator | None,
) -> Tensor:
    """(K, C, H, W) normalised fields of the region (K = 1 for the unet), exact on A when clamped.

    Diffusion: `tiled_sample` of the model's sampler plan (`sample` section: sampler, steps, η,
    clamping, EDM's grid) in the blended frame's residual units, member m = one full-region field.
    """
    spec: ModelSpec = model.spec
    conditioning = spec.model.conditioning
    frame = _region_frame(model.prior, conditioning, region, tiling, batch_windows)
    c, h, w = region.x.shape
    if spec.deterministic:
        blend = Blend(tiling, (c,), region.x.device)
        for windows in tiling.batches(batch_windows):
            f, b = _window_frame(model.prior, conditioning, region, frame, tiling, windows)
            blend.add(windows, unet_residual(model.net, spec, f.cond, b["coords"]))
        return frame.to_field(blend.result())[None].float()
    k = int(members)
    known_mask = (region.a > 0.5)[None].expand(k, c, h, w)
    known = (region.a * (region.x - frame.offset) / frame.scale)[None].expand(k, c, h, w)
    plan = sampler_plan(spec, model.schedule, sampler=sample.sampler, steps=sample.steps, eta=sample.eta,
                        clamp=sample.clamp_known_pixels, edm_sampling=sample.edm, known=known,
                        known_mask=known_mask, clamp_final=False)
    edm = spec.model.diffusion.formulation == "edm"
    like = torch.empty(0, device=region.x.device) if edm else model.schedule.betas
    x_T = plan.initial((k, c, h, w), like, generator)

    def window_fn(windows: Sequence[int]) -> ModelFn:
        f, b = _window_frame(model.prior, conditioning, region, frame, tiling, windows)
        return member_fn(model.net, spec, repeat_for_members(f.cond, k), repeat_for_members(b["coords"], k),
                         repeat_for_members(b["x_valid"], k), k)

    out = frame.to_field(tiled_sample(plan, window_fn, tiling, x_T, batch_windows=batch_windows,
                                      generator=generator)).float()
    if sample.clamp_known_pixels != "none":
        if sample.applied_final_update(spec, "this model") == "oi_increment":
            out = _tiled_increment(model.prior, out, region, tiling, batch_windows,  # type: ignore[arg-type]
                                   sample.increment_length_px)
        out = torch.where(known_mask, region.x[None], out)
    return out


def _tiled_increment(prior: ObservationPrior, members: Tensor, region: _Region, tiling: Tiling,
                     batch_windows: int, length_px: float | None) -> Tensor:
    """(K, C, H, W) members plus the OI of their misfit at the observations: `inference.oi_increment`
    of each window (its members as a batch of one patch's), the increments blended."""
    blend = Blend(tiling, members.shape[:2], members.device)
    for windows in tiling.batches(batch_windows):
        field = tiling.cut(members, windows)  # (n, K, C, s, s)
        updated = oi_increment(prior, field, tiling.cut(region.x, windows), tiling.cut(region.a, windows), length_px)
        blend.add(windows, updated - field)
    return members + blend.result(members.dtype)


# --- the map of one method and period ------------------------------------------------------------


@dataclass(frozen=True)
class MapFields:
    """A map in degC on the grid, NaN where not valid: mean (C, H, W); std (C, H, W) (ensemble std,
    or the Gaussian predictive std of OI; None for deterministic methods); members (K, C, H, W) or None."""

    mean: np.ndarray
    std: np.ndarray | None
    members: np.ndarray | None
    attrs: dict[str, Any]
    std_long_name: str = "ensemble standard deviation"


def _member_stats(members: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Ensemble mean and std (ddof = 1) per level in float64 (identical members: exactly their value, std 0)."""
    k = members.shape[0]
    mean = np.full(members.shape[1:], np.nan, np.float32)
    std = np.full(members.shape[1:], np.nan, np.float32) if k > 1 else None
    for c in range(members.shape[1]):
        level = members[:, c].astype(np.float64)
        mean[c] = level.mean(0)
        if std is not None:
            std[c] = level.std(0, ddof=1)
    nan = ~valid
    mean[nan] = np.nan
    if std is not None:
        std[nan] = np.nan
    return mean, std


def map_learned(
    checkpoint: str | os.PathLike[str],
    grid: Grid,
    obs: Observations,
    stats: Mapping[str, Any],
    settings: MapSettings,
    sample: SampleSettings,
    *,
    seed_parts: Sequence[Any],
    device: str = "auto",
    inflation: Inflation | None = None,
) -> MapFields:
    """A trained model's map (`map_model`), de-normalised; observed cells keep their observed values
    exactly when the sampler clamps them; `inflation`: the validation-fitted spread power law per level
    (`depthdif.inflation`, as for the test samples). Deterministic given sample.seed and `seed_parts`."""
    ckpt = load_checkpoint(checkpoint)
    hp = ckpt["hparams"]
    spec = ModelSpec.from_hparams(hp)
    if list(map(float, hp["depth"])) != [float(d) for d in grid.depth] or int(hp["channels"]) != grid.y.shape[0]:
        raise DataError(f"{checkpoint}: trained on depth levels {hp['depth']}, the map's grid has "
                        f"{grid.depth.tolist()}; retrain on the current data.depth_levels")
    if hp["stats"]["mean"] != stats["mean"] or hp["stats"]["std"] != stats["std"]:
        raise DataError(f"{checkpoint}: its normalisation stats differ from the train stats given (another "
                        "train split); rerun the train_model rule")
    if spec.model.conditioning.eo and grid.eo is None:
        raise ConfigError(f"{checkpoint}: the model is conditioned on the EO but the grid has none (data.eo)")
    tiling = _tiling(grid, int(hp["size"]), settings.stride)
    dev = resolve_device(device)
    model = load_model(ckpt, spec, dev)
    final_update = "none" if spec.deterministic else sample.applied_final_update(spec, checkpoint)
    region = _region_inputs(grid, obs, hp["stats"], tiling, dev)
    if not spec.deterministic and settings.members is None:
        raise ConfigError("config key 'maps.members' is null: pass the resolved maps section (params.maps_section)")
    members = 1 if spec.deterministic else int(settings.members)  # type: ignore[arg-type]
    generator = torch.Generator(device=dev).manual_seed(seed_for("map", sample.seed, *seed_parts))
    if model.spread_net is not None and members > 1:
        # the first guess won the selection: the trained step's members recentred on it (`sample_members`)
        spread = map_model(replace(model, net=model.spread_net, spread_net=None), region, tiling, members=members,
                           sample=sample, batch_windows=settings.batch_size, generator=generator)
        out = recentre(map_model(model, region, tiling, members=1, sample=sample, batch_windows=settings.batch_size,
                                 generator=generator), spread, 0)
    else:
        out = map_model(model, region, tiling, members=members, sample=sample, batch_windows=settings.batch_size,
                        generator=generator)
    if inflation is not None and members > 1:
        # members about their mean, before the observations are written
        out = inflate(out[None], inflation, hp["stats"]["std"])[0]
    out = out.cpu().numpy()
    scale = np.asarray(hp["stats"]["std"], np.float32)[None, :, None, None]
    degc = (out * scale + np.asarray(hp["stats"]["mean"], np.float32)[None, :, None, None]).astype(np.float32)
    valid = np.isfinite(grid.y)
    clamped = not spec.deterministic and sample.clamp_known_pixels != "none"
    if clamped:  # the observations themselves, not their normalised round trip
        degc = np.where(obs.mask[None] & valid, obs.values[None], degc)
    mean, std = _member_stats(degc, valid)
    if spec.deterministic:
        std = None
    attrs = {
        "checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
        "config_hash": str(ckpt["config_hash"]), "global_step": int(ckpt["global_step"]),
        "n_members": members, "window_px": tiling.size, "stride_px": tiling.stride, "n_windows": len(tiling),
        "inflation": "none" if inflation is None else inflation.describe(),
    }
    if not spec.deterministic:
        attrs["members_from"] = model.describe_members()
        diffusion = spec.model.diffusion
        sampler = "edm_heun" if diffusion.formulation == "edm" else sample.sampler
        attrs.update(sampler=sampler, steps=sample.steps if sampler != "ddpm" else diffusion.timesteps,
                     eta=sample.eta, clamp_known_pixels=sample.clamp_known_pixels, seed=sample.seed,
                     final_update=final_update,
                     blending="shared state per sampler step (MultiDiffusion), one noise field per member")
    keep = settings.write_members and not spec.deterministic
    return MapFields(mean, std, np.where(valid[None], degc, np.nan).astype(np.float32) if keep else None, attrs)


def map_baseline(
    method: str,
    train_dir: str | os.PathLike[str] | None,
    method_cfg: Mapping[str, Any],
    grid: Grid,
    obs: Observations,
    stats: Mapping[str, Any],
    settings: MapSettings,
    size: int,
) -> MapFields:
    """A classical gap-filler per window (`eval.baselines.fit_baseline`, fitted on the train split), the
    windows' predictions blended; OI's predictive variance blended likewise (std = √ of the blend)."""
    fitted = fit_baseline(method, train_dir, method_cfg, stats)
    tiling = _tiling(grid, size, settings.stride)
    valid = np.isfinite(grid.y)
    c = grid.y.shape[0]
    eo = None if grid.eo is None else grid.eo[None]
    values, observed = obs.values.astype(np.float64), obs.mask & valid
    mean_blend, var_blend = Blend(tiling, (c,), "cpu"), Blend(tiling, (c,), "cpu")
    gaussian = False
    for windows in tiling.batches(settings.batch_size):
        pred, std = fitted.predict(
            tiling.cut(values, windows), tiling.cut(observed, windows), tiling.cut(valid, windows),
            None if eo is None else tiling.cut(eo, windows),
        )
        mean_blend.add(windows, torch.from_numpy(np.nan_to_num(pred)))
        if std is not None:
            gaussian = True
            var_blend.add(windows, torch.from_numpy(np.nan_to_num(std.astype(np.float64)) ** 2))
    mean = np.where(valid, mean_blend.result(torch.float64).numpy(), np.nan).astype(np.float32)
    std_map = np.where(valid, np.sqrt(var_blend.result(torch.float64).numpy()), np.nan).astype(np.float32) \
        if gaussian else None
    attrs = {"checkpoint": "", "n_members": 1, "window_px": tiling.size, "stride_px": tiling.stride,
             "n_windows": len(tiling), **fitted.attrs}
    return MapFields(mean, std_map, None, attrs,
                     std_long_name="Gaussian predictive standard deviation (OI posterior + nugget)")


def _tiling(grid: Grid, size: int, stride: int) -> Tiling:
    c, h, w = grid.y.shape
    if h < size or w < size:
        raise DataError(f"the region's grid ({h} × {w} px) is smaller than one {size} px window; enlarge "
                        "data.region or lower patches.size / patches.coarsen")
    if not 1 <= stride < size:
        raise ConfigError(f"config key 'maps.stride' ({stride}) must be in [1, {size}) (overlapping windows)")
    return Tiling(h, w, size, stride)


# --- netCDF ----------------------------------------------------------------------------------------


def write_map(path: str | os.PathLike[str], fields: MapFields, grid: Grid, obs: Observations, *,
              method: str, period: str, attrs: Mapping[str, Any]) -> None:
    """CF-1.8 netCDF on the source grid: thetao_mean (time, depth, latitude, longitude) degC, thetao_std
    (when the method has one), thetao_members (time, member, …) when kept, obs_count; NaN (counts -1) off
    the valid cells (land, below the sea floor); written atomically."""
    valid = np.isfinite(grid.y)
    t = np.array([grid.time], "int64").astype("datetime64[s]").astype("datetime64[ns]")
    dims = ("time", "depth", "latitude", "longitude")
    temp = {"units": "degC", "standard_name": "sea_water_potential_temperature"}
    what = "ensemble mean" if int(fields.attrs.get("n_members", 1)) > 1 else "reconstruction"
    data_vars: dict[str, Any] = {
        "thetao_mean": (dims, fields.mean[None], {**temp, "long_name": f"sea water potential temperature, "
                                                  f"{what} ({method})"}),
        "obs_count": (dims, np.where(valid, obs.count, -1).astype(np.int32)[None],
                      {"units": "1", "long_name": "number of observations in the cell at this depth"}),
    }
    if fields.std is not None:
        data_vars["thetao_std"] = (dims, fields.std[None], {"units": "degC", "long_name": fields.std_long_name})
    coords: dict[str, Any] = {
        "time": ("time", t, {"standard_name": "time", "axis": "T"}),
        "depth": ("depth", grid.depth.astype(np.float32),
                  {"units": "m", "positive": "down", "standard_name": "depth", "axis": "Z"}),
        "latitude": ("latitude", grid.lat.astype(np.float64),
                     {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
        "longitude": ("longitude", grid.lon.astype(np.float64),
                      {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
    }
    if fields.members is not None:
        data_vars["thetao_members"] = (("time", "member", *dims[1:]), fields.members[None],
                                       {**temp, "long_name": f"ensemble members ({method})"})
        coords["member"] = ("member", np.arange(fields.members.shape[0], dtype=np.int32),
                            {"standard_name": "realization", "long_name": "ensemble member"})
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        "Conventions": "CF-1.8",
        "title": f"DepthDif dense map of sea water potential temperature: {method}, {period}",
        "source": f"DepthDif {method} reconstruction from sparse observations",
        "history": f"{now} depthdif.maps.write_map: method {method}, period {period}",
        "method": method, "period": period, "observations": obs.source, **fields.attrs, **dict(attrs),
    })
    encoding: dict[str, Any] = {name: {"zlib": True, "complevel": 1, "_FillValue": np.float32(np.nan)}
                                for name in ("thetao_mean", "thetao_std", "thetao_members") if name in ds}
    encoding["obs_count"] = {"zlib": True, "complevel": 1, "_FillValue": np.int32(-1)}
    encoding["time"] = {"units": "seconds since 1970-01-01 00:00:00", "calendar": "standard", "dtype": "int64"}
    for name in ("depth", "latitude", "longitude"):
        encoding[name] = {"_FillValue": None}
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


# --- the rule's entry --------------------------------------------------------------------------------


def run_map(
    method: str,
    period: str,
    *,
    thetao: str | os.PathLike[str],
    eo: str | os.PathLike[str] | None,
    stats: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    patches_cfg: Mapping[str, Any],
    scenario: str,
    scenario_cfg: Mapping[str, Any],
    maps_cfg: Mapping[str, Any],
    out_nc: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    sample_cfg: Mapping[str, Any] | None = None,
    train_dir: str | os.PathLike[str] | None = None,
    baseline_cfg: Mapping[str, Any] | None = None,
    device: str = "auto",
    inflation: Inflation | None = None,
) -> dict[str, Any]:
    """The map of `method` at `period` (the map_region rule): grid as patch extraction reads it,
    the scenario's observations simulated on the full region, the map, its netCDF. Returns a summary."""
    if method not in METHODS:
        raise ConfigError(f"config key 'maps.methods': {method!r} is not one of {list(METHODS)}")
    settings = MapSettings.from_cfg(maps_cfg)
    grid = read_grid(thetao, eo, period, dict(data_cfg), dict(patches_cfg))
    tracks = None
    if scenario_cfg["mode"] == "argo":
        from depthdif.data.argo import read_argo_tracks

        tracks = read_argo_tracks(scenario_cfg["argo_paths"])
    if scenario_cfg["mode"] == "argo_profiles":
        obs = argo_observations(grid, scenario, scenario_cfg, period)
    else:
        obs = simulate_observations(grid, scenario, scenario_cfg, period, tracks)
    c, h, w = grid.y.shape
    log.info("%s %s: %d × %d px × %d levels, %d observed cells (any level)", method, period, h, w, c,
             int(obs.mask.any(0).sum()))
    if method in LEARNED:
        if checkpoint is None or sample_cfg is None:
            raise ValueError(f"method {method!r} needs its model.ckpt and the sample section")
        fields = map_learned(checkpoint, grid, obs, stats, settings, SampleSettings.from_cfg(sample_cfg),
                             seed_parts=(scenario, method, period), device=device, inflation=inflation)
    else:
        if baseline_cfg is None:
            raise ValueError(f"method {method!r} needs its evaluate section")
        fields = map_baseline(method, train_dir, baseline_cfg, grid, obs, stats, settings, int(patches_cfg["size"]))
    write_map(out_nc, fields, grid, obs, method=method, period=period, attrs={"scenario": scenario})
    return {"method": method, "period": period, "grid": [c, h, w], "windows": fields.attrs["n_windows"],
            "members": fields.attrs["n_members"], "observed_cells": int(obs.mask.any(0).sum()), "path": str(out_nc)}
