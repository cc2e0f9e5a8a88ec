"""Dense maps of a region: windows, blending, the shared-state tiled sampler, the map netCDF, the target."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import Tensor

from depthdif.config import validate_config
from depthdif.data.patches import Grid
from depthdif.diffusion import NoiseSchedule, edm
from depthdif.diffusion.first_guess import PriorParams
from depthdif.diffusion.sampler import ddim_plan, ddpm_plan, generator_noise, run_plan
from depthdif.diffusion.tiled import BLEND_FLOOR, Blend, Tiling, blend_weight, tiled_sample, window_starts
from depthdif.errors import ConfigError
from depthdif.inference import SampleSettings
from depthdif.maps import (
    MapFields,
    MapSettings,
    _member_stats,
    map_baseline,
    map_learned,
    simulate_observations,
    write_map,
)
from depthdif.params import map_params, maps_section
from depthdif.plots import map_figure
from depthdif.reconstruction import ModelSpec, build_model
from depthdif.shards import read_manifest
from depthdif.training.module import model_hparams
from shard_factory import EPOCH_2015, make_shards
from training_helpers import DEFAULTS, MODEL, OBJECTIVES, SAMPLE, section

K, C, H, W, S = 4, 2, 20, 40, 16
HEUN = edm.EDMSampling.from_cfg(section("sample.edm"))


def tiling(height: int = H, width: int = W, stride: int = 8) -> Tiling:
    return Tiling(height, width, S, stride)


# --- windows and weights ------------------------------------------------------------------------


def test_windows_overlap_and_the_last_is_flush_with_the_border() -> None:
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(45, 16, 8) == [0, 8, 16, 24, 29]
    assert window_starts(16, 16, 8) == [0]
    t = tiling()
    assert {y for y, _ in t.origins} == {0, 4} and {x for _, x in t.origins} == {0, 8, 16, 24}
    assert [len(b) for b in t.batches(3)] == [3, 3, 2]
    with pytest.raises(ValueError, match="smaller than one"):
        window_starts(12, 16, 8)
    w = blend_weight(S)
    assert w.shape == (S, S) and float(w.min()) >= BLEND_FLOOR**2 and float(w.max()) <= 1.0
    torch.testing.assert_close(w, w.T)  # separable and symmetric


def test_blending_leaves_a_constant_exactly_constant() -> None:
    """Every window predicting c (any float32 value) → the map is exactly c, the member std exactly 0."""
    c = torch.tensor(17.123457, dtype=torch.float32)
    t = tiling(45, 37)
    blend = Blend(t, (K, C), "cpu")
    for windows in t.batches(5):
        blend.add(windows, c.expand(len(windows), K, C, S, S))
    out = blend.result()
    assert torch.equal(out, c.expand(K, C, 45, 37))
    # through the tiled sampler: an x0-model that predicts c everywhere (DDIM's last step returns x0)
    plan = ddim_plan(NoiseSchedule(10), steps=3, eta=1.0, parameterization="x0")
    x_T = plan.initial((K, C, 45, 37), torch.empty(0), torch.Generator().manual_seed(0))
    sampled = tiled_sample(plan, lambda windows: (lambda x, tt: torch.full_like(x, float(c))), t, x_T,
                           batch_windows=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sampled, c.expand_as(sampled))
    mean, std = _member_stats(sampled.numpy(), np.ones((C, 45, 37), bool))
    assert (mean == np.float32(c)).all() and std is not None and (std == 0).all()


def _jumps(field: np.ndarray, t: Tiling) -> tuple[float, float]:
    """Max |neighbour difference| across window borders and elsewhere (both axes) of an (H, W) field."""
    border_y = {y - 1 for y, _ in t.origins if y > 0} | {y + t.size - 1 for y, _ in t.origins if y + t.size < t.height}
    border_x = {x - 1 for _, x in t.origins if x > 0} | {x + t.size - 1 for _, x in t.origins if x + t.size < t.width}
    dy, dx = np.abs(np.diff(field, axis=0)), np.abs(np.diff(field, axis=1))
    on_y = np.isin(np.arange(dy.shape[0]), sorted(border_y))
    on_x = np.isin(np.arange(dx.shape[1]), sorted(border_x))
    border = max(dy[on_y].max(initial=0), dx[:, on_x].max(initial=0))
    interior = max(dy[~on_y].max(initial=0), dx[:, ~on_x].max(initial=0))
    return float(border), float(interior)


def test_a_smooth_field_has_no_seam_at_window_borders() -> None:
    """A stub x0-model that sees only its window and is off by its own constant per window (as a model
    inferring the level from its own observations): the blended map's largest jump across a window
    border is no larger than its interior's; hard tiling (each pixel from its nearest window) is not."""
    t = tiling(32, 56)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(56.0), indexing="ij")
    truth = torch.sin(2 * math.pi * xx / 40) + 0.03 * yy
    offsets = 0.4 * torch.randn(len(t), generator=torch.Generator().manual_seed(3))

    def window_fn(windows):  # type: ignore[no-untyped-def]
        target = t.cut(truth, windows) + offsets[windows][:, None, None]  # (n, s, s)

        def model(x: Tensor, tt: Tensor) -> Tensor:
            return target.repeat_interleave(K, 0)[:, None].expand_as(x)

        return model

    plan = ddim_plan(NoiseSchedule(10), steps=4, eta=0.0, parameterization="x0")
    x_T = plan.initial((K, 1, 32, 56), torch.empty(0), torch.Generator().manual_seed(0))
    out = tiled_sample(plan, window_fn, t, x_T, batch_windows=3, generator=None)
    border, interior = _jumps(out[0, 0].numpy(), t)
    assert border <= interior
    torch.testing.assert_close(out[1:], out[:1].expand_as(out[1:]))  # eta 0 with a noise-free model
    # hard tiling: pixel from the window whose centre is nearest → jumps of |δ_w − δ_w'| at borders
    centres = torch.tensor([(y + S / 2, x + S / 2) for y, x in t.origins])
    dist = (yy[None] + 0.5 - centres[:, 0, None, None]) ** 2 + (xx[None] + 0.5 - centres[:, 1, None, None]) ** 2
    hard = truth + offsets[dist.argmin(0)]
    hard_border, hard_interior = _jumps(hard.numpy(), t)
    assert max(hard_border, hard_interior) > 2 * interior  # hard tiling's seams are larger than any jump here


def test_the_std_map_has_no_seam_where_finished_windows_would_halve_the_variance() -> None:
    """A stochastic stub sampler (DDIM η = 1, x0 = 0.8 x_t, the same law at every pixel): the ensemble std
    per column is flat within 10 % across window borders; blending independently finished windows instead
    gives √(w1² + w2²)/(w1 + w2) ≈ 1/√2 where two windows meet with equal weight."""
    k, t = 400, tiling(16, 40)
    plan = ddim_plan(NoiseSchedule(10), steps=4, eta=1.0, parameterization="x0")
    model = lambda x, tt: 0.8 * x  # noqa: E731
    x_T = plan.initial((k, 1, 16, 40), torch.empty(0), torch.Generator().manual_seed(0))
    shared = tiled_sample(plan, lambda windows: model, t, x_T, batch_windows=2,
                          generator=torch.Generator().manual_seed(1))
    col = shared.std(0)[0].mean(0)  # (W,)
    assert float(col.min()) > 0.9 * float(col.max())
    naive = Blend(t, (k, 1), "cpu")
    for i in range(len(t)):  # each window sampled on its own (its own noise), then the finished members blended
        own = run_plan(model, plan, plan.initial((k, 1, S, S), torch.empty(0), torch.Generator().manual_seed(10 + i)),
                       generator_noise(torch.Generator().manual_seed(20 + i)))
        naive.add([i], own[None])
    naive_col = naive.result().std(0)[0].mean(0)
    assert float(naive_col.min()) < 0.8 * float(naive_col.max())
    assert float(naive_col.min()) == pytest.approx(float(col.mean()) / math.sqrt(2), rel=0.1)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "edm"])
def test_members_are_coherent_fields_the_tiled_sampler_equals_the_full_region_sampler(sampler: str) -> None:
    """With a local (per-pixel) model, the tiled sampler gives exactly the full-region sampler's members,
    renoised known pixels and EDM churn included: one noise field per member, cut per window."""
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, C, H, W, generator=gen) < 0.2).expand(K, C, H, W)
    known = (torch.randn(1, C, H, W, generator=gen)).expand(K, C, H, W) * mask
    common = dict(known=known, known_mask=mask, clamp="renoise")
    if sampler == "ddim":
        plan, fn = ddim_plan(NoiseSchedule(20), steps=5, eta=0.7, parameterization="epsilon", **common), None
    elif sampler == "ddpm":
        plan, fn = ddpm_plan(NoiseSchedule(8), parameterization="v", **common), None
    else:
        plan = edm.edm_plan(5, replace(HEUN, s_churn=5.0), **common)  # type: ignore[arg-type]
        fn = lambda x, sigma: 0.5 * torch.tanh(x) + 0.2  # noqa: E731
    fn = fn or (lambda x, tt: 0.7 * torch.tanh(x) + 0.1)
    x_T = plan.initial((K, C, H, W), torch.empty(0), torch.Generator().manual_seed(1))
    full = run_plan(fn, plan, x_T, generator_noise(torch.Generator().manual_seed(2)))
    tiled = tiled_sample(plan, lambda windows: fn, tiling(), x_T, batch_windows=3,
                         generator=torch.Generator().manual_seed(2))
    assert torch.equal(tiled, full)
    assert torch.equal(tiled[mask], known[mask])
    assert float(tiled.std(0).mean()) > 0.05  # distinct members


# --- the map of a region ------------------------------------------------------------------------


def _grid(channels: int = 2, height: int = 24, width: int = 40) -> Grid:
    """A smooth two-level field with a land disc (deeper level: a wider coast) and its EO."""
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pattern = np.sin(2 * np.pi * xx / 25.0) + 0.5 * np.cos(2 * np.pi * yy / 18.0)
    y = np.stack([18.0 - 6.0 * c + (1 - 0.5 * c) * pattern for c in range(channels)]).astype(np.float32)
    land = (yy - 3) ** 2 + (xx - 5) ** 2 <= 16
    for c in range(channels):
        y[c][(yy - 3) ** 2 + (xx - 5) ** 2 <= 16 + 8 * c] = np.nan
    eo = np.where(land, np.nan, y[0] + 0.05).astype(np.float32)
    return Grid(y, eo, 30.0 + 0.25 * np.arange(height), -40.0 + 0.25 * np.arange(width),
                np.linspace(0.5, 300.0, channels).astype(np.float32), EPOCH_2015 + 14 * 86400)


SCENARIO = {"mode": "pixel", "fraction": 0.8, "seed": 1, "min_side": 2, "max_side": 8, "n_tracks": 3,
            "sample_every": 3, "argo_paths": []}


def _settings(**kw: object) -> MapSettings:
    return MapSettings.from_cfg({"stride": 8, "members": 3, "write_members": True, "batch_size": 4, **kw})


def _check_cf(ds: xr.Dataset, grid: Grid) -> None:
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["title"] and "history" in ds.attrs
    assert ds["thetao_mean"].dims == ("time", "depth", "latitude", "longitude")
    assert ds["thetao_mean"].attrs["standard_name"] == "sea_water_potential_temperature"
    assert ds["thetao_mean"].attrs["units"] == "degC"
    assert ds["depth"].attrs["positive"] == "down" and ds["depth"].attrs["units"] == "m"
    assert ds["latitude"].attrs["units"] == "degrees_north" and ds["longitude"].attrs["units"] == "degrees_east"
    assert ds["time"].encoding["units"].startswith("seconds since 1970") and ds.sizes["time"] == 1
    valid = np.isfinite(grid.y)
    mean = ds["thetao_mean"].values[0]
    assert np.isnan(mean[~valid]).all() and np.isfinite(mean[valid]).all()
    # obs_count is stored as int with _FillValue -1 off the valid cells: decoded, they are missing
    assert np.isnan(ds["obs_count"].values[0][~valid]).all() and ds["obs_count"].encoding["_FillValue"] == -1
    if "thetao_std" in ds:
        std = ds["thetao_std"].values[0]
        assert np.isnan(std[~valid]).all() and (std[valid] >= 0).all()


@pytest.mark.parametrize("method", ["idw", "oi"])
def test_baseline_map_is_cf_netcdf_nan_on_land(tmp_path: Path, method: str) -> None:
    train = make_shards(tmp_path, n=6, channels=2, size=16, split="train", seed=1)
    stats = read_manifest(train)["stats"]
    grid = _grid()
    obs = simulate_observations(grid, "pix", SCENARIO, "2015-01")
    valid = np.isfinite(grid.y)
    assert obs.mask[0].sum() == round(0.2 * valid[0].sum()) and not (obs.mask & ~valid).any()
    cfg = {"power": 2.0, "neighbours": 16} if method == "idw" else {"covariance": "matern32", "max_fit_patches": 4}
    fields = map_baseline(method, train, cfg, grid, obs, stats, _settings(), 16)
    write_map(tmp_path / "m.nc", fields, grid, obs, method=method, period="2015-01", attrs={"scenario": "pix"})
    with xr.open_dataset(tmp_path / "m.nc") as ds:
        _check_cf(ds, grid)
        assert ("thetao_std" in ds) == (method == "oi") and "thetao_members" not in ds
        mean = ds["thetao_mean"].values[0]
        if method == "idw":  # exact at the observations in every window, so in the blend
            assert np.array_equal(mean[obs.mask], obs.values[obs.mask])
        hidden = valid & ~obs.mask
        assert np.sqrt(np.mean((mean[hidden] - grid.y[hidden]) ** 2)) < np.nanstd(grid.y[0])
        assert ds["obs_count"].values[0][obs.mask].min() == 1 and np.nansum(ds["obs_count"].values) == obs.mask.sum()


def _checkpoint(path: Path, train: Path, objective: str, **diffusion: object) -> Path:
    """An untrained model.ckpt for the train shards (with a first guess: it returns the OI field)."""
    model = {**MODEL, "diffusion": {**MODEL["diffusion"], **diffusion}, "first_guess": {**MODEL["first_guess"],
                                                                                     "method": "oi"}}
    prior = PriorParams("matern32", (4.0, 4.0), (0.5, 0.4), (0.0, 0.0), (0.3, 0.3), 1.0, "first_guess_std",
                        (0.2, 0.2))
    hp = model_hparams(objective, model, OBJECTIVES[objective], read_manifest(train), prior)
    torch.manual_seed(0)
    net, _ = build_model(ModelSpec.from_hparams(hp))
    with torch.no_grad():  # the output layer starts at zero: give the residual some structure
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save({"state_dict": net.state_dict(), "hparams": hp, "global_step": 0, "config_hash": "test"}, path)
    return path


@pytest.mark.parametrize(("objective", "diffusion"), [("standard", {}), ("standard", {"formulation": "edm"}),
                                                      ("unet", {})])
def test_learned_map_members_observations_and_land(tmp_path: Path, objective: str, diffusion: dict) -> None:
    torch.set_num_threads(1)
    train = make_shards(tmp_path, n=6, channels=2, size=16, split="train", seed=1)
    stats = read_manifest(train)["stats"]
    ckpt = _checkpoint(tmp_path / "model.ckpt", train, objective, **diffusion)
    grid = _grid()
    obs = simulate_observations(grid, "pix", SCENARIO, "2015-01")
    sample = SampleSettings.from_cfg({**SAMPLE, "steps": 2})
    run = lambda: map_learned(ckpt, grid, obs, stats, _settings(), sample, seed_parts=("s", objective),  # noqa: E731
                              device="cpu")
    fields = run()
    write_map(tmp_path / "m.nc", fields, grid, obs, method=objective, period="2015-01", attrs={"scenario": "pix"})
    valid = np.isfinite(grid.y)
    with xr.open_dataset(tmp_path / "m.nc") as ds:
        _check_cf(ds, grid)
        assert ds.attrs["checkpoint_sha256"] and ds.attrs["config_hash"] == "test"
        if objective == "unet":
            assert "thetao_std" not in ds and "thetao_members" not in ds
            return
        assert ds.sizes["member"] == 3 and ds["thetao_members"].dims == ("time", "member", "depth", "latitude",
                                                                         "longitude")
        members = ds["thetao_members"].values[0]
    map_figure(tmp_path / "m.nc", tmp_path / "m.png", {"dpi": 50})
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.isnan(members[:, ~valid]).all()
    hidden = valid & ~obs.mask
    assert (fields.std[hidden] > 0).mean() > 0.99  # type: ignore[index]
    # clamped (renoise): every member and the mean keep the observed values exactly, with zero spread
    assert np.array_equal(fields.mean[obs.mask], obs.values[obs.mask])
    assert (members[:, obs.mask] == obs.values[obs.mask]).all() and (fields.std[obs.mask] == 0).all()  # type: ignore
    assert np.array_equal(run().mean, fields.mean, equal_nan=True)  # deterministic by seed


def test_learned_map_recentred_members_and_oi_increment(tmp_path: Path) -> None:
    """A checkpoint whose selected weights are its first guess (identical members) and that carries a trained
    step: the map's members are the trained step's, recentred on the first guess (mean = the first-guess map,
    spread > 0). final_update oi_increment: every member meets its observations without pasted dots."""
    torch.set_num_threads(1)
    train = make_shards(tmp_path, n=6, channels=2, size=16, split="train", seed=1)
    stats = read_manifest(train)["stats"]
    trained = torch.load(_checkpoint(tmp_path / "model.ckpt", train, "standard"), weights_only=True)
    first_guess = {k: (torch.zeros_like(v) if k.startswith("final_conv") else v)
                   for k, v in trained["state_dict"].items()}
    torch.save({**trained, "state_dict": first_guess}, tmp_path / "fg.ckpt")
    torch.save({**trained, "state_dict": first_guess, "spread_state_dict": trained["state_dict"], "spread_step": 7},
               tmp_path / "rc.ckpt")
    grid = _grid()
    obs = simulate_observations(grid, "pix", SCENARIO, "2015-01")
    valid, hidden = np.isfinite(grid.y), np.isfinite(grid.y) & ~obs.mask

    def run(name: str, **sample: object) -> MapFields:
        settings = SampleSettings.from_cfg({**SAMPLE, "steps": 2, **sample})
        return map_learned(tmp_path / name, grid, obs, stats, _settings(), settings, seed_parts=("s",), device="cpu")

    fg, rc = run("fg.ckpt"), run("rc.ckpt")
    assert float(np.nanmax(fg.std)) == 0.0 and (rc.std[hidden] > 0).mean() > 0.99  # type: ignore[index]
    np.testing.assert_allclose(rc.mean[valid], fg.mean[valid], atol=1e-4)
    assert "trained step 7" in rc.attrs["members_from"] and fg.attrs["members_from"] == "sampled"

    def jump(field: np.ndarray) -> float:  # mean |f − mean of its 8 neighbours| at interior observed cells
        f = np.where(valid, field, np.nan)
        pad = np.pad(f, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
        shifts = [pad[:, 1 + dy: pad.shape[1] - 1 + dy, 1 + dx: pad.shape[2] - 1 + dx]
                  for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
        return float(np.nanmean(np.abs(f - np.mean(shifts, 0))[obs.mask & valid]))

    pasted, smooth = run("model.ckpt"), run("model.ckpt", final_update="oi_increment", increment_length_px=3.0)
    assert np.array_equal(smooth.mean[obs.mask & valid], obs.values[obs.mask & valid])
    assert smooth.attrs["final_update"] == "oi_increment" and pasted.attrs["final_update"] == "overwrite"
    # the step the observations leave beyond the truth's own (0.0094 degC overwritten here, 0.0054 incremented;
    # the rest is the untrained network's texture at the neighbours, which no update of A removes)
    assert jump(smooth.mean) - jump(grid.y) < 0.7 * (jump(pasted.mean) - jump(grid.y))


# --- config ------------------------------------------------------------------------------------------


def test_maps_defaults_params_and_config_errors() -> None:
    config = validate_config({})
    maps = maps_section(config)
    assert maps["methods"] == ["unet", "standard", "ambient", "oi"] and maps["scenario"] == "tracks95"
    assert maps["stride"] == config["patches"]["size"] // 2 and maps["members"] == config["sample"]["members"]
    standard, unet, oi = (map_params(config, m) for m in ("standard", "unet", "oi"))
    assert set(standard["maps"]) == {"stride", "scenario", "members", "write_members"}
    assert "members" not in standard["sample"] and "batch_size" not in standard["sample"]
    assert set(unet) == {"patches", "scenario", "maps"} and set(unet["maps"]) == {"stride", "scenario"}
    assert oi["baseline"] == config["evaluate"]["oi"]
    for maps_cfg, match in [({"stride": 32}, "maps.stride"), ({"scenario": "nope"}, "maps.scenario"),
                            ({"periods": ["2030-01"]}, "maps.periods")]:
        with pytest.raises(ConfigError, match=match):
            validate_config({"maps": maps_cfg})
    with pytest.raises(ConfigError, match="maps.methods"):
        validate_config({"data": {"eo": "none"}, "evaluate": {"methods": ["oi"]}, "maps": {"methods": ["oi_eo"]}})
    assert DEFAULTS["maps"]["batch_size"] >= 1
