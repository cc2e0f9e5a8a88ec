"""Observation masks: exact hidden fraction, ocean only, determinism, per-mode shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from depthdif.errors import ConfigError
from depthdif.masks import make_mask, target_count
from depthdif.masks.argo import pixel_km, track_km
from depthdif.masks.tracks import walk

OPTIONS = {"min_side": 2, "max_side": 6, "n_tracks": 3, "sample_every": 3, "seed": 1}
H = W = 48
LAT = np.linspace(30.0, 30.0 + (H - 1) * 0.25, H)
LON = np.linspace(-40.0, -40.0 + (W - 1) * 0.25, W)


def irregular_ocean() -> np.ndarray:
    """Ocean with a coastline, an island and a one-pixel channel (irregular land)."""
    yy, xx = np.mgrid[:H, :W]
    land = (xx + 4 * np.sin(yy / 5.0) > 38) | ((yy - 12) ** 2 + (xx - 15) ** 2 < 30)
    land[30:33, :20] = True
    land[31, 10] = False
    return ~land


def straight_tracks(step_deg: float = 0.25, n: int = 30) -> pd.DataFrame:
    """Two synthetic floats drifting exactly one 0.25-degree pixel per profile (east / north)."""
    t = pd.date_range("2015-01-01", periods=n, freq="10D")
    return pd.DataFrame({
        "platform": ["a"] * n + ["b"] * n,
        "time": list(t) + list(t),
        "lat": np.r_[np.full(n, 31.0), 31.0 + step_deg * np.arange(n)],
        "lon": np.r_[-35.0 + step_deg * np.arange(n) / np.cos(np.deg2rad(31.0)), np.full(n, -35.0)],
    })


def hidden(mask: np.ndarray, ocean: np.ndarray) -> float:
    return 1.0 - mask.sum() / ocean.sum()


@pytest.mark.parametrize("mode", ["pixel", "rectangles", "tracks", "argo"])
@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.95, 0.99])
def test_fraction_ocean_only_and_deterministic(mode: str, fraction: float) -> None:
    ocean = irregular_ocean()
    kw = {"lat": LAT, "lon": LON, "argo_tracks": straight_tracks()}
    mask = make_mask(mode, ocean, fraction, 1, "2015-01_y00000_x00000", OPTIONS, **kw)
    assert mask.dtype == bool and mask.shape == ocean.shape
    assert not (mask & ~ocean).any()
    assert abs(hidden(mask, ocean) - fraction) <= max(0.01, 1.0 / ocean.sum())
    assert mask.sum() == target_count(int(ocean.sum()), fraction)
    again = make_mask(mode, ocean, fraction, 1, "2015-01_y00000_x00000", OPTIONS, **kw)
    assert np.array_equal(mask, again)
    other_patch = make_mask(mode, ocean, fraction, 1, "2015-01_y00000_x00048", OPTIONS, **kw)
    other_seed = make_mask(mode, ocean, fraction, 2, "2015-01_y00000_x00000", OPTIONS, **kw)
    assert not np.array_equal(mask, other_patch) and not np.array_equal(mask, other_seed)


@pytest.mark.parametrize("mode", ["pixel", "rectangles", "tracks", "argo"])
def test_edges_tiny_ocean_and_high_fraction(mode: str) -> None:
    kw = {"lat": LAT[:8], "lon": LON[:8], "argo_tracks": straight_tracks()}
    tiny = np.zeros((8, 8), bool)
    tiny[3, 4] = tiny[5, 5] = True
    assert make_mask(mode, tiny, 0.95, 0, "p", OPTIONS, **kw).sum() == 1  # >= 1 observed
    assert make_mask(mode, np.ones((8, 8), bool), 0.9999, 0, "p", OPTIONS, **kw).sum() == 1
    assert not make_mask(mode, np.zeros((8, 8), bool), 0.5, 0, "p", OPTIONS, **kw).any()
    full = make_mask(mode, tiny, 0.0, 0, "p", OPTIONS, **kw)
    assert np.array_equal(full, tiny)


def test_target_count() -> None:
    assert [target_count(n, f) for n, f in [(1000, 0.9), (1000, 0.995), (10, 0.99), (0, 0.5), (7, 0.0)]] == [
        100, 5, 1, 0, 7]


def test_rectangles_come_in_boxes() -> None:
    ocean = np.ones((H, W), bool)
    opts = {**OPTIONS, "min_side": 4, "max_side": 4}
    mask = make_mask("rectangles", ocean, 0.9, 3, "p", opts)
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    # 230 px in 4x4 boxes (overlaps merge boxes): few big blobs, at most one partial box
    assert n <= 230 // 16 + 1 and (sizes >= 16).sum() >= n - 1
    pixel = make_mask("pixel", ocean, 0.9, 3, "p", opts)
    assert ndimage.label(pixel)[1] > 5 * n


def test_track_samples_are_sample_every_apart() -> None:
    ocean = np.ones((64, 64), bool)
    rng = np.random.default_rng(0)
    for every in (2, 3, 5):
        steps = []
        for _ in range(20):
            pts = np.stack(np.unravel_index(walk(rng, np.flatnonzero(ocean), ocean.shape, every), ocean.shape), 1)
            steps.append(np.sqrt((np.diff(pts, axis=0) ** 2).sum(1)))
        steps = np.concatenate(steps)
        # consecutive samples of one track: `every` px of path apart, +- rounding (<= sqrt 2)
        assert steps.size > 100 and np.all(np.abs(steps - every) <= np.sqrt(2) + 1e-9)
        assert abs(np.median(steps) - every) <= 0.5


def has_neighbour_at(mask: np.ndarray, dist: float) -> float:
    """Share of observed pixels with another observed pixel at distance dist +- 1."""
    pts = np.argwhere(mask)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float((np.abs(d - dist) <= 1.01).any(axis=1).mean())


def test_track_masks_are_thinned_curves() -> None:
    ocean = np.ones((64, 64), bool)
    for seed in range(3):
        tracks = make_mask("tracks", ocean, 0.97, seed, "p", {**OPTIONS, "sample_every": 3, "n_tracks": 4})
        pixel = make_mask("pixel", ocean, 0.97, seed, "p", OPTIONS)
        assert has_neighbour_at(tracks, 3) >= 0.9 and has_neighbour_at(pixel, 3) < 0.75


def test_tracks_keep_n_tracks_when_trimmed() -> None:
    ocean = np.ones((64, 64), bool)
    mask = make_mask("tracks", ocean, 0.995, 0, "p", {**OPTIONS, "n_tracks": 4, "sample_every": 3})
    assert mask.sum() == 20
    # 4 track heads of 5 samples each, 3 px apart: clusters of linked samples
    labels, n = ndimage.label(ndimage.binary_dilation(mask, iterations=2))
    assert 1 <= n <= 4


def test_argo_mask_follows_float_displacements() -> None:
    ocean = np.ones((H, W), bool)
    mask = make_mask("argo", ocean, 0.9, 0, "p", OPTIONS, lat=LAT, lon=LON, argo_tracks=straight_tracks())
    # each float moves one pixel per profile east or north: observed pixels form straight runs
    rows, cols = np.nonzero(mask)
    neighbours = mask[np.clip(rows + 1, 0, H - 1), cols] | mask[np.clip(rows - 1, 0, H - 1), cols] | \
        mask[rows, np.clip(cols + 1, 0, W - 1)] | mask[rows, np.clip(cols - 1, 0, W - 1)]
    assert neighbours.mean() > 0.95
    # descending latitude axis flips the rows (north stays north)
    flipped = make_mask("argo", ocean, 0.9, 0, "p", OPTIONS, lat=LAT[::-1], lon=LON, argo_tracks=straight_tracks())
    assert flipped.sum() == mask.sum()


def test_track_km_and_pixel_km() -> None:
    ends, x, y = track_km(straight_tracks(n=3))
    np.testing.assert_array_equal(ends, [3, 3, 3, 6, 6, 6])
    km = 6371.0 * np.pi / 180 * 0.25
    np.testing.assert_allclose(y[3:], [0, km, 2 * km], rtol=1e-9)
    np.testing.assert_allclose(x[:3], [0, km, 2 * km], rtol=1e-3)
    dateline = pd.DataFrame({"platform": ["c", "c"], "time": pd.date_range("2015", periods=2), "lat": [0.0, 0.0],
                             "lon": [179.9, -179.9]})
    np.testing.assert_allclose(track_km(dateline)[1], [0.0, 0.2 * 6371.0 * np.pi / 180], rtol=1e-6)
    row_km, col_km = pixel_km(LAT[::-1], LON)
    assert row_km == pytest.approx(-km) and col_km == pytest.approx(km * np.cos(np.deg2rad(LAT.mean())))


def test_bad_modes_and_options() -> None:
    ocean = np.ones((8, 8), bool)
    with pytest.raises(ConfigError, match="mode 'ship'"):
        make_mask("ship", ocean, 0.5, 0, "p", {})
    with pytest.raises(ConfigError, match="min_side=5, max_side=3"):
        make_mask("rectangles", ocean, 0.5, 0, "p", {"min_side": 5, "max_side": 3})
    with pytest.raises(ConfigError, match="argo_paths"):
        make_mask("argo", ocean, 0.5, 0, "p", {"argo_paths": []}, lat=LAT[:8], lon=LON[:8], argo_tracks=None)
    with pytest.raises(ConfigError, match="fraction"):
        make_mask("pixel", ocean, 1.5, 0, "p", {})
