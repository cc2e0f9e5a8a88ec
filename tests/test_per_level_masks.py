"""A truly per-level observation mask A (a profile covers only the levels it measured): shards,
baselines, first guess, ambient further drop, scoring and figures use each level's own A."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depthdif import plots
from depthdif.data.occlusion import observation_mask
from depthdif.diffusion.first_guess import ObservationPrior, PriorParams
from depthdif.diffusion.further_drop import ambient_masks
from depthdif.errors import DataError
from depthdif.eval.baselines import idw, run_baseline
from depthdif.eval.oi import OIParams, correlation, fit_oi, oi, oi_posterior
from depthdif.eval.scoring import score_file
from depthdif.plots.examples import first_observed_level
from depthdif.samples import open_samples, write_samples
from depthdif.shards import load_arrays, read_manifest
from eval_factory import tiny_truth, write_tiny_samples
from shard_factory import make_shards, profile_levels

SIZE = 12
#: observations per level: level 0 misses Q (seen by levels 1-2), level 2 has one more, level 3 none
P0 = [(2, 2), (9, 9)]
Q = (5, 8)
LEVELS = [P0, [*P0, Q], [*P0, Q, (3, 10)], []]


def field(c: int) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return np.stack([np.sin(3 * yy + k) + (k + 1) * xx for k in range(c)])


def per_level_case(q: tuple[int, int] = Q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values NaN off A, A, valid) (1, 4, SIZE, SIZE): the observations of `LEVELS`, Q moved to `q`."""
    truth = field(4)[None]
    observed = np.zeros(truth.shape, bool)
    for k, cells in enumerate(LEVELS):
        for cell in cells:
            observed[0, k][q if cell == Q else cell] = True
    return np.where(observed, truth, np.nan), observed, np.ones(truth.shape, bool)


def oi_by_hand(cells: list[tuple[int, int]], values: np.ndarray, params: OIParams, k: int) -> np.ndarray:
    """m + k_*ᵀ (K + (ν + 1e-8 σ²) I)⁻¹ (v - m) on the whole grid, from `cells` only."""
    pts = np.asarray(cells, float)
    grid = np.argwhere(np.ones((SIZE, SIZE), bool)).astype(float)
    var, ell, nug = params.variance[k], params.length_scale[k], params.nugget[k]
    dist = lambda a, b: np.hypot(*(a[:, None] - b[None]).transpose(2, 0, 1))  # noqa: E731
    gram = var * correlation(dist(pts, pts), ell, params.covariance) + (nug + 1e-8 * var) * np.eye(len(pts))
    cross = var * correlation(dist(grid, pts), ell, params.covariance)
    m = values.mean()
    return (m + cross @ np.linalg.solve(gram, values - m)).reshape(SIZE, SIZE)


# --- shards --------------------------------------------------------------------------------


def test_observation_mask_broadcasts_a_column_mask_and_keeps_a_per_level_one() -> None:
    valid = np.ones((1, 3, 2, 2), bool)
    valid[0, 2, 0, 0] = False  # sea floor
    column = np.array([[[True, False], [False, True]]])
    assert np.array_equal(observation_mask(column, valid), column[:, None] & valid)
    levels = np.zeros((1, 3, 2, 2), bool)
    levels[0, 1:, 0, 0] = True  # a profile that misses the surface (and the floor at level 2)
    assert observation_mask(levels, valid)[0, :, 0, 0].tolist() == [False, True, False]


def test_per_level_shards_count_profile_positions(tmp_path: Path) -> None:
    folder = make_shards(tmp_path, n=6, channels=4, size=16, per_level=True, fraction=0.8)
    arrays, manifest = load_arrays(folder), read_manifest(folder)
    a, valid = arrays["x_valid"].astype(bool), arrays["y_valid"].astype(bool)
    counts = a.sum(axis=(2, 3))
    assert counts[0, 0] == 0 and counts[0, 1:].sum() > 0  # patch 0: no observation at the surface
    assert (a[:, 1:] & ~a[:, :1]).any()  # cells observed below but not at level 0
    assert len({tuple(row) for row in counts}) > 1 and (counts[:, 1] != counts[:, 3]).any()
    assert np.all(a <= valid) and np.array_equal(arrays["x"] != 0, a & (arrays["y"] != 0))
    ocean = ~arrays["land"].astype(bool)
    share = (a.any(axis=1) & ocean).sum(axis=(1, 2)) / ocean.sum(axis=(1, 2))
    assert manifest["observed_fraction"] == pytest.approx(share.mean())
    assert manifest["hidden_fraction"] == pytest.approx(1 - share.mean())


def test_column_shared_shards_keep_the_surface_fraction(tmp_path: Path) -> None:
    folder = make_shards(tmp_path, n=6, channels=3, size=16, fraction=0.8)
    arrays, manifest = load_arrays(folder), read_manifest(folder)
    ocean = ~arrays["land"].astype(bool)
    surface = arrays["x_valid"][:, 0].astype(bool) & ocean
    assert manifest["observed_fraction"] == np.mean(surface.sum(axis=(1, 2)) / ocean.sum(axis=(1, 2)))


# --- baselines -----------------------------------------------------------------------------


@pytest.mark.parametrize("nugget", [0.0, 0.05])
def test_oi_interpolates_each_level_from_its_own_observations(nugget: float) -> None:
    values, observed, valid = per_level_case()
    params = OIParams("matern32", (4.0,) * 4, (0.5,) * 4, (nugget,) * 4)
    mean, std = np.array([15.0, 12.0, 9.0, 6.0]), np.array([2.0, 1.5, 1.0, 0.5])
    pred, sd = oi_posterior(values, observed, valid, params, fill=mean, fill_std=std)
    for k in range(3):
        cells = [Q if c == Q else c for c in LEVELS[k]]
        hand = oi_by_hand(cells, np.array([values[0, k][c] for c in cells]), params, k)
        np.testing.assert_allclose(pred[0, k], hand, atol=1e-5)
    # level 0 does not see Q (level 1's value there is not reproduced); level 1 does (nugget 0)
    assert abs(pred[0, 0][Q] - field(4)[1][Q]) > 0.5
    if nugget == 0.0:
        assert pred[0, 1][Q] == pytest.approx(field(4)[1][Q], abs=1e-5)
    # no observation at level 3: its training mean and std everywhere
    assert np.all(pred[0, 3] == np.float32(6.0)) and np.all(sd[0, 3] == np.float32(0.5))
    # moving the level-1/2 observation Q leaves level 0 exactly as it was
    moved, moved_obs, _ = per_level_case(q=(7, 3))
    again, again_sd = oi_posterior(moved, moved_obs, valid, params, fill=mean, fill_std=std)
    assert np.array_equal(again[0, 0], pred[0, 0]) and np.array_equal(again_sd[0, 0], sd[0, 0])
    assert np.abs(again[0, 1] - pred[0, 1]).max() > 0.05


def test_idw_interpolates_each_level_from_its_own_observations() -> None:
    values, observed, valid = per_level_case()
    pred = idw(values, observed, valid, power=2.0, neighbours=8, fill=[15.0, 12.0, 9.0, 6.0])
    # level 0 at Q: the two level-0 observations weighted by 1/d², not level 1's value at Q
    d2 = np.array([(Q[0] - y) ** 2 + (Q[1] - x) ** 2 for y, x in P0], float)
    v = np.array([values[0, 0][c] for c in P0])
    assert pred[0, 0][Q] == pytest.approx(np.sum(v / d2) / np.sum(1 / d2), rel=1e-6)
    assert pred[0, 1][Q] == pytest.approx(values[0, 1][Q], rel=1e-6)
    assert np.all(pred[0, 3] == np.float32(6.0))
    moved, moved_obs, _ = per_level_case(q=(7, 3))
    assert np.array_equal(idw(moved, moved_obs, valid, power=2.0, neighbours=8, fill=0.0)[0, 0], pred[0, 0])


def test_run_baseline_on_per_level_shards(tmp_path: Path) -> None:
    test = make_shards(tmp_path, n=4, channels=3, size=16, split="test", per_level=True, seed=3)
    train = make_shards(tmp_path, n=6, channels=3, size=16, split="train")
    out = tmp_path / "oi.nc"
    run_baseline("oi", test, train, {"covariance": "matern32", "max_fit_patches": 6}, scenario="tiny", out_nc=out)
    ds, arrays, stats = open_samples(out), load_arrays(test), read_manifest(test)["stats"]
    a = arrays["x_valid"].astype(bool)
    assert np.array_equal(ds["observed"].values.astype(bool), a)
    pred, sd = ds["thetao_pred"].values, ds["thetao_std"].values
    surface = arrays["y_valid"][0, 0].astype(bool)  # patch 0 has no surface observation
    assert np.allclose(pred[0, 0][surface], stats["mean"][0]) and np.allclose(sd[0, 0][surface], stats["std"][0])
    for k in (1, 2):  # observed levels: informed by observations (not the fill)
        assert np.ptp(pred[0, k][arrays["y_valid"][0, k].astype(bool)]) > 0.1
    # level 1 as the OI of level 1 alone (the file's truth is float32: equal to its precision)
    truth = ds["thetao_true"].values.astype(np.float64)
    params = OIParams.from_dict(json.loads(ds.attrs["oi_params"]))
    one = OIParams(params.covariance, params.length_scale[1:2], params.variance[1:2], params.nugget[1:2])
    alone = oi(np.where(a[:, 1:2], truth[:, 1:2], np.nan), a[:, 1:2], arrays["y_valid"][:, 1:2].astype(bool), one,
               fill=stats["mean"][1])
    np.testing.assert_allclose(alone, pred[:, 1:2], atol=1e-5)


def test_fit_oi_names_a_level_without_values() -> None:
    y = np.stack([field(2)] * 3)
    valid = np.ones(y.shape, bool)
    valid[:, 1] = False  # e.g. ambient: no observation at that level in the train split
    with pytest.raises(DataError, match=r"depth channel 1 \(0 valid values in 3 fitted patches\)"):
        fit_oi(y, valid, covariance="matern32", max_fit_patches=3)


# --- first guess ---------------------------------------------------------------------------


def _prior() -> ObservationPrior:
    return ObservationPrior(PriorParams("matern32", (4.0,) * 4, (0.5,) * 4, (0.0,) * 4, (0.3,) * 4, 1.0,
                                        "constant", (0.1,) * 4))


def _torch_case(q: tuple[int, int] = Q) -> tuple[torch.Tensor, torch.Tensor]:
    values, observed, _ = per_level_case(q)
    a = torch.from_numpy(observed.astype(np.float32))
    return torch.from_numpy(np.nan_to_num(values).astype(np.float32)) * a, a


def test_first_guess_at_each_level_passes_through_that_levels_observations_only() -> None:
    x, a = _torch_case()
    level, guess, std, _, n_obs = _prior().interpolate_with_loo(x, a)
    assert n_obs[0].tolist() == [2, 3, 4, 0]
    for k in range(3):
        obs = a[0, k] > 0.5
        assert torch.allclose(guess[0, k][obs], x[0, k][obs], atol=2e-3)
        assert float(level[0, k]) == pytest.approx(float(x[0, k][obs].mean()), abs=1e-6)
    # level 0 at Q is interpolated from P0, far from level 1's value there
    assert abs(float(guess[0, 0][Q]) - float(x[0, 1][Q])) > 0.5
    # it is the OI baseline of level 0's observations (same covariance, no nugget)
    values, observed, valid = per_level_case()
    ref = oi(values, observed, valid, OIParams("matern32", (4.0,) * 4, (0.5,) * 4, (0.0,) * 4), fill=0.0)
    assert np.abs(guess[0, :3].numpy() - ref[0, :3]).max() < 2e-4
    # no observation at level 3: level 0, guess 0, the prior std
    assert float(level[0, 3]) == 0.0 and float(guess[0, 3].abs().max()) == 0.0
    assert torch.allclose(std[0, 3], torch.full_like(std[0, 3], 0.5**0.5))
    # moving the level-1/2-only observation leaves level 0 unchanged
    x2, a2 = _torch_case(q=(7, 3))
    level2, guess2, std2, _, _ = _prior().interpolate_with_loo(x2, a2)
    assert float(level2[0, 0]) == float(level[0, 0])
    assert torch.allclose(guess2[0, 0], guess[0, 0], atol=1e-6) and torch.allclose(std2[0, 0], std[0, 0], atol=1e-6)
    assert float((guess2[0, 1] - guess[0, 1]).abs().max()) > 0.05


def test_frame_condition_holds_each_levels_mask() -> None:
    x, a = _torch_case()
    frame = _prior().frame(x, a, None, None, use_eo=False, use_mask_channels=True)
    assert torch.equal(frame.cond[:, 4:8], a)  # [anomalies, A, g, s_g]
    assert float(frame.cond[0, 0].abs().sum()) > 0 and float(frame.cond[0, 3].abs().sum()) == 0.0


# --- ambient further drop ------------------------------------------------------------------


def _profiles(b: int = 16, c: int = 4, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    masks = [profile_levels(rng.random((SIZE, SIZE)) < 0.3, c, rng, skip_surface=i == 0) for i in range(b)]
    return torch.from_numpy(np.stack(masks).astype(np.float32))


@pytest.mark.parametrize("pattern,shared", [("pixels", True), ("pixels", False), ("blocks", True)])
def test_ambient_drop_is_a_subset_of_a_at_every_level(pattern: str, shared: bool) -> None:
    a = _profiles()
    assert float(a[0, 0].sum()) == 0 and bool((a[:, 1:] > a[:, :1]).any())
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        a_t = ambient_masks(a, 0.7, 5, shared, generator=gen, pattern=pattern, block_px=3)
        assert bool((a_t <= a).all())
        assert float(a_t[0, 0].sum()) == 0  # nothing appears at a level A does not observe
        kept, observed = a_t.amax(1).flatten(1).sum(1), a.amax(1).flatten(1).sum(1)
        assert bool((kept >= observed.clamp(max=5)).all())
        if shared:  # one spatial drop, intersected with each level's A
            assert torch.equal(a_t, a_t.amax(1, keepdim=True) * a)


@pytest.mark.parametrize("pattern", ["pixels", "blocks"])
def test_shared_ambient_drop_is_the_column_drop_intersected_with_each_level(pattern: str) -> None:
    """Same draws as for the column mask any_k A_k: Ã = Ã_column ⊙ A, min_kept included."""
    a = _profiles(seed=2)
    column = a.amax(1, keepdim=True).expand_as(a).contiguous()
    kwargs = dict(pattern=pattern, block_px=3)
    per_level = ambient_masks(a, 0.8, 6, True, torch.Generator().manual_seed(5), **kwargs)
    whole = ambient_masks(column, 0.8, 6, True, torch.Generator().manual_seed(5), **kwargs)
    assert torch.equal(per_level, whole * a)


# --- scoring -------------------------------------------------------------------------------


def test_scoring_counts_hidden_pixels_per_level_by_hand(tmp_path: Path) -> None:
    truth = np.stack([field(3)])
    valid = np.ones(truth.shape, bool)
    valid[0, 2, 0, :] = False  # sea floor along row 0 at level 2
    observed = np.zeros(truth.shape, bool)
    observed[0, 1][[1, 4], [1, 4]] = True  # level 0: none; level 1: two cells
    observed[0, 2][[1, 2, 4], [1, 3, 4]] = True  # level 2: three cells, one not seen at level 1
    offset = np.array([0.5, -1.0, 2.0])[None, :, None, None]
    pred = np.where(observed, truth, truth + offset)
    path = tmp_path / "m.nc"
    write_samples(path, pred=pred, truth=truth, observed=observed, valid=valid, land=np.zeros((1, SIZE, SIZE), bool),
                  depth=np.array([0.494, 47.37, 155.85], np.float32), lat=np.arange(SIZE, dtype=float)[None],
                  lon=np.arange(SIZE, dtype=float)[None], time=np.array([1420070400]), patch_id=np.array(["p"]),
                  attrs={"method": "m", "scenario": "s", "checkpoint": "", "config_hash": "x"})
    df, _ = score_file(path, scenario="s", method="m")
    n = SIZE * SIZE
    assert df["n_hidden"].tolist() == [n, n - 2, n - SIZE - 3]
    assert df["n_observed"].tolist() == [0, 2, 3]
    assert df["rmse"].tolist() == pytest.approx([0.5, 1.0, 2.0])
    assert df["bias"].tolist() == pytest.approx([0.5, -1.0, 2.0])


def test_scoring_a_per_level_factory_file(tmp_path: Path) -> None:
    path = write_tiny_samples(tmp_path / "idw.nc", channels=3, per_level=True, seed=4)
    _, valid, observed = tiny_truth(3, 3, 16, 4, per_level=True)
    assert not observed[0, 0].any() and (observed[:, 1] != observed[:, 2]).any()
    df, _ = score_file(path, scenario="tiny", method="idw")
    hidden = (valid & ~observed).sum(axis=(2, 3)).reshape(-1)
    assert df["n_hidden"].tolist() == hidden.tolist()
    assert df["n_observed"].tolist() == (observed & valid).sum(axis=(2, 3)).reshape(-1).tolist()


# --- figures -------------------------------------------------------------------------------


def test_first_observed_level() -> None:
    _, observed, _ = per_level_case()
    assert first_observed_level(observed[0]) == 0
    observed[0, 0] = False
    assert first_observed_level(observed[0]) == 1
    assert first_observed_level(np.zeros((3, 4, 4), bool)) == 0


def test_figures_draw_per_level_masks(tmp_path: Path) -> None:
    shards = make_shards(tmp_path, n=3, channels=3, size=16, per_level=True, fraction=0.7)
    ambient = {"further_drop_prob": 0.3, "min_kept_observed_pixels": 4, "shared_spatial_mask": True}
    plots.ambient_walkthrough(shards, tmp_path / "ambient.png", {"dpi": 60}, ambient)
    plots.dataset_example(shards, tmp_path / "dataset.png", {"dpi": 60})
    assert (tmp_path / "ambient.png").stat().st_size > 2000 and (tmp_path / "dataset.png").stat().st_size > 2000
