"""Ensemble inflation fitted on the validation split: s' = a s^p, a for spread/skill 1, p for flat spread deciles."""

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
    return _write_ensemble(path, truth, valid, observed, ens)


def _write_ensemble(
    path: Path, truth: np.ndarray, valid: np.ndarray, observed: np.ndarray, ens: np.ndarray
) -> dict[str, np.ndarray]:
    """A samples netCDF of members `ens` (N, K, C, 16, 16) on the tiny grid; returns the arrays."""
    n, _, c = ens.shape[:3]
    step = 0.25 * np.arange(16)
    write_samples(
        path, pred=ens.mean(1), truth=truth, observed=observed, valid=valid, land=~valid[:, 0],
        depth=np.asarray(DEPTHS[:c], np.float32), lat=np.tile(30.0 + step, (n, 1)),
        lon=np.tile(-30.0 + step, (n, 1)), time=EPOCH_2015 + 86400 * np.arange(n),
        patch_id=np.array([f"p{i}" for i in range(n)]), std=ens.std(1, ddof=1), members=ens,
        attrs={"method": "standard", "scenario": "tiny", "checkpoint": "", "config_hash": "test"},
    )
    return {"truth": truth, "valid": valid, "observed": observed, "members": ens}


def _deciles_after(arrays: dict[str, np.ndarray], inflation: Inflation) -> tuple[float, np.ndarray, np.ndarray]:
    """Pooled spread/skill, spread-decile RMSE/spread and the widened members (K first)."""
    hidden = np.broadcast_to(metrics.hidden_mask(arrays["observed"], arrays["valid"]), arrays["truth"].shape)
    widened = np.moveaxis(inflate(torch.from_numpy(arrays["members"]), inflation).numpy(), 1, 0)
    ss = metrics.spread_skill(widened, arrays["truth"], hidden)
    spread = metrics.ensemble_spread(widened)[hidden]
    table = metrics.spread_error_bins(spread, (widened.mean(0) - arrays["truth"])[hidden])
    return float(ss), table["ratio"], widened


def test_inflation_makes_the_validation_spread_skill_one(tmp_path: Path) -> None:
    arrays = _narrow_ensemble(tmp_path / "val.nc", spread=(0.1, 0.3))
    fitted = fit_inflation(tmp_path / "val.nc")
    hidden = metrics.hidden_mask(arrays["observed"], arrays["valid"])
    members = np.moveaxis(arrays["members"], 1, 0)  # (K, N, C, H, W)
    before = metrics.spread_skill(members, arrays["truth"], hidden, (0, 2, 3))
    np.testing.assert_allclose(fitted.spread_skill, before, rtol=1e-6)
    assert fitted.spread_skill[0] < 0.35 and fitted.spread_skill[1] > 0.5  # narrow, and differently so per level
    assert fitted.members == 6 and fitted.n_hidden == tuple(int(v) for v in hidden.sum((0, 2, 3)))
    # the error here does not depend on the spread (mean = truth + N(0, 0.5^2) everywhere): p near 0
    assert fitted.exponents[0] == fitted.exponents[1] <= 0.2 and fitted.factors[0] == fitted.factors[1]

    ss, ratios, widened = _deciles_after(arrays, fitted)
    assert ss == pytest.approx(1.0, rel=1e-6)
    assert np.all((ratios > 0.85) & (ratios < 1.15)), ratios
    # the mean is unchanged, clamped observations stay exact
    np.testing.assert_allclose(widened.mean(0), members.mean(0), atol=1e-9)
    obs = np.broadcast_to(arrays["observed"][None], widened.shape)
    np.testing.assert_allclose(widened[obs], members[obs], atol=1e-9)


def test_power_law_flattens_the_spread_deciles(tmp_path: Path) -> None:
    """Errors that grow as sqrt(spread) (a model whose narrowest pixels are the most over-confident): the fit
    finds p ~ 0.5 and the deciles' RMSE/spread come out flat; plain scaling (p = 1) leaves them 5.6x down to 0.8x."""
    truth, valid, observed = tiny_truth(8, 1, 16, seed=3)
    observed = np.broadcast_to(observed, truth.shape) & valid
    rng = np.random.default_rng(1)
    filled = np.nan_to_num(truth)
    s = np.exp(rng.uniform(np.log(0.01), np.log(1.0), size=filled.shape))  # member std over two decades
    mean = np.where(observed, filled, filled + 0.3 * np.sqrt(s) * rng.normal(size=filled.shape))
    z = rng.normal(size=(8, 12, *filled.shape[1:]))
    z = (z - z.mean(1, keepdims=True)) / z.std(1, ddof=1, keepdims=True)
    ens = np.where(observed[:, None], filled[:, None], mean[:, None] + s[:, None] * z)
    arrays = _write_ensemble(tmp_path / "val.nc", truth, valid, observed, ens)
    fitted = fit_inflation(tmp_path / "val.nc")
    assert 0.4 <= fitted.exponents[0] <= 0.6, fitted
    ss, ratios, _ = _deciles_after(arrays, fitted)
    assert ss == pytest.approx(1.0, rel=1e-6) and np.all((ratios > 0.8) & (ratios < 1.25)), ratios
    plain = Inflation.multiplicative((1.0 / fitted.spread_skill[0],))
    ss1, ratios1, _ = _deciles_after(arrays, plain)
    assert ss1 == pytest.approx(1.0, rel=1e-5) and ratios1[0] > 4.0 and ratios1[-1] < 0.85, ratios1


def test_inflation_round_trips_through_json(tmp_path: Path) -> None:
    _narrow_ensemble(tmp_path / "val.nc", spread=(0.2,))
    fitted = fit_inflation(tmp_path / "val.nc")
    fitted.to_json(tmp_path / "inflation.json")
    assert Inflation.from_json(tmp_path / "inflation.json") == fitted
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="rerun rule calibrate_ensemble"):
        Inflation.from_json(tmp_path / "bad.json")


def test_identical_members_are_left_as_they_are(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    arrays = _narrow_ensemble(tmp_path / "val.nc", spread=(0.0, 0.2))
    fitted = fit_inflation(tmp_path / "val.nc")
    assert (fitted.factors[0], fitted.exponents[0]) == (1.0, 1.0) and fitted.spread_skill[0] == 0.0
    assert "no ensemble spread at depth level 0" in caplog.text
    widened = inflate(torch.from_numpy(arrays["members"]), fitted).numpy()
    np.testing.assert_array_equal(widened[:, :, 0], arrays["members"][:, :, 0])
    hidden = metrics.hidden_mask(arrays["observed"], arrays["valid"])[:, 1]
    level1 = np.moveaxis(widened[:, :, 1], 1, 0)
    assert metrics.spread_skill(level1, arrays["truth"][:, 1], hidden) == pytest.approx(1.0, rel=1e-6)


def test_inflate_checks_levels() -> None:
    with pytest.raises(DataError, match="2 depth levels but the samples have 3"):
        inflate(torch.zeros(1, 4, 3, 2, 2), Inflation.multiplicative((1.0, 2.0)))


def test_inflation_needs_two_members_at_start() -> None:
    from depthdif.config import validate_config

    with pytest.raises(ConfigError, match="sample.inflation_methods"):
        validate_config({"sample": {"members": 1}})
    assert validate_config({"sample": {"members": 1, "inflation_methods": []}})["sample"]["members"] == 1
