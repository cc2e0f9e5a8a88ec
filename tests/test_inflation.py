"""Ensemble inflation fitted on the validation split: τ_c = 1 / (spread/skill)_c, members widened about their mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depthdif.errors import ConfigError, DataError
from depthdif.eval import metrics
from depthdif.inflation import Inflation, fit_inflation, inflate
from depthdif.samples import write_samples
from eval_factory import DEPTHS, EPOCH_2015, tiny_truth


def _narrow_ensemble(path: Path, *, spread: tuple[float, ...], members: int = 6, n: int = 8) -> dict[str, np.ndarray]:
    """Mean = truth + N(0, 0.5²) on hidden pixels, members = mean + spread_c · centred N(0, 1): too narrow."""
    truth, valid, observed = tiny_truth(n, len(spread), 16, seed=3)
    observed = np.broadcast_to(observed, truth.shape) & valid
    rng = np.random.default_rng(0)
    filled = np.nan_to_num(truth)
    mean = np.where(observed, filled, filled + 0.5 * rng.normal(size=filled.shape))
    z = rng.normal(size=(n, members, *filled.shape[1:]))
    z -= z.mean(1, keepdims=True)
    ens = mean[:, None] + np.asarray(spread)[None, None, :, None, None] * z
    ens = np.where(observed[:, None], filled[:, None], ens)
    step = 0.25 * np.arange(16)
    write_samples(
        path, pred=ens.mean(1), truth=truth, observed=observed, valid=valid, land=~valid[:, 0],
        depth=np.asarray(DEPTHS[: len(spread)], np.float32), lat=np.tile(30.0 + step, (n, 1)),
        lon=np.tile(-30.0 + step, (n, 1)), time=EPOCH_2015 + 86400 * np.arange(n),
        patch_id=np.array([f"p{i}" for i in range(n)]), std=ens.std(1, ddof=1), members=ens,
        attrs={"method": "standard", "scenario": "tiny", "checkpoint": "", "config_hash": "test"},
    )
    return {"truth": truth, "valid": valid, "observed": observed, "members": ens}


def test_inflation_makes_the_validation_spread_skill_one_per_level(tmp_path: Path) -> None:
    arrays = _narrow_ensemble(tmp_path / "val.nc", spread=(0.1, 0.3))
    fitted = fit_inflation(tmp_path / "val.nc")
    hidden = metrics.hidden_mask(arrays["observed"], arrays["valid"])
    members = np.moveaxis(arrays["members"], 1, 0)  # (K, N, C, H, W)
    before = metrics.spread_skill(members, arrays["truth"], hidden, (0, 2, 3))
    np.testing.assert_allclose(fitted.spread_skill, before, rtol=1e-6)
    assert fitted.spread_skill[0] < 0.35 and fitted.spread_skill[1] > 0.5  # narrow, and differently so per level
    np.testing.assert_allclose(fitted.factors, 1.0 / before, rtol=1e-6)
    assert fitted.members == 6 and fitted.n_hidden == tuple(int(v) for v in hidden.sum((0, 2, 3)))

    widened = inflate(torch.from_numpy(arrays["members"]), fitted.factors).numpy()
    after = metrics.spread_skill(np.moveaxis(widened, 1, 0), arrays["truth"], hidden, (0, 2, 3))
    np.testing.assert_allclose(after, 1.0, rtol=1e-6)
    # the mean is unchanged, clamped observations stay exact
    np.testing.assert_allclose(widened.mean(1), arrays["members"].mean(1), atol=1e-9)
    obs = np.broadcast_to(arrays["observed"][:, None], widened.shape)
    np.testing.assert_allclose(widened[obs], arrays["members"][obs], atol=1e-9)


def test_inflation_round_trips_through_json(tmp_path: Path) -> None:
    _narrow_ensemble(tmp_path / "val.nc", spread=(0.2,))
    fitted = fit_inflation(tmp_path / "val.nc")
    fitted.to_json(tmp_path / "inflation.json")
    assert Inflation.from_json(tmp_path / "inflation.json") == fitted
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="rerun rule calibrate_ensemble"):
        Inflation.from_json(tmp_path / "bad.json")


def test_identical_members_are_left_as_they_are(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _narrow_ensemble(tmp_path / "val.nc", spread=(0.0, 0.2))
    fitted = fit_inflation(tmp_path / "val.nc")
    assert fitted.factors[0] == 1.0 and fitted.spread_skill[0] == 0.0 and fitted.factors[1] > 1.5
    assert "no ensemble spread at depth level 0" in caplog.text


def test_inflate_checks_levels() -> None:
    with pytest.raises(DataError, match="2 depth levels but the samples have 3"):
        inflate(torch.zeros(1, 4, 3, 2, 2), (1.0, 2.0))


def test_inflation_needs_two_members_at_start() -> None:
    from depthdif.config import validate_config

    with pytest.raises(ConfigError, match="sample.inflation_methods"):
        validate_config({"sample": {"members": 1}})
    assert validate_config({"sample": {"members": 1, "inflation_methods": []}})["sample"]["members"] == 1
