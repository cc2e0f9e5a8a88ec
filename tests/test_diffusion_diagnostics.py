"""The x_t-sensitivity diagnostic tells a denoiser that uses x_t from one that ignores it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from depthdif.diffusion import ConditionalUNet, ModelSettings, NoiseSchedule, edm, objective_from_cfg
from depthdif.diffusion.diagnostics import default_levels, xt_sensitivity
from depthdif.reconstruction import ModelSpec
from depthdif.shards import read_manifest
from depthdif.training.module import model_hparams
from shard_factory import make_shards
from training_helpers import section

ROOT = Path(__file__).resolve().parents[1]


class X0Net(nn.Module):
    """x0 (or ε) output = gain · x_t + the observations: gain 1 follows x_t, gain 0 ignores it."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
        return self.gain * x_t + cond[:, : x_t.shape[1]]


class EDMZero(nn.Module):
    """F ≡ 0: D = c_skip x uses x through the skip alone."""

    def forward(self, x_in: Tensor, label: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
        return torch.zeros_like(x_in)


class EDMMean(nn.Module):
    """F = -(σ_d/σ) c_in x: its branch cancels the skip, so D = 0 whatever x is (the collapsed model)."""

    def __init__(self, sigma_data: float) -> None:
        super().__init__()
        self.sigma_data = sigma_data

    def forward(self, x_in: Tensor, label: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
        sigma = torch.exp(4 * label / edm.NOISE_EMBED_SCALE).reshape(-1, 1, 1, 1)
        return -(self.sigma_data / sigma) * x_in


def _batch() -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(0)
    shape = (4, 2, 8, 8)
    y = torch.randn(shape, generator=gen)
    observed = (torch.rand(shape, generator=gen) < 0.1).float()
    return {"y": y, "y_valid": torch.ones(shape), "x": observed * y, "x_valid": observed}


def _hp(formulation: str = "ddpm", parameterization: str = "x0", objective: str = "standard",
        mask_noisy: bool = False, sigma_data: float = 1.0) -> ModelSpec:
    objective_cfg = section(f"objectives.{objective}")
    if objective == "ambient":
        objective_cfg["mask_noisy_branch"] = mask_noisy
    model = section("model", conditioning={"eo": False, "mask_channels": True},
                    diffusion={"formulation": formulation, "timesteps": 20, "parameterization": parameterization,
                               "edm": {"sigma_data": sigma_data}})
    return ModelSpec(objective=objective_from_cfg(objective, objective_cfg), model=ModelSettings.from_cfg(model),
                     channels=2, cond_channels=4, prior=None, dihedral=False)


def _run(net: nn.Module, hp: ModelSpec, levels: list[float] | None = None) -> list[dict[str, float]]:
    gen = torch.Generator().manual_seed(1)
    return xt_sensitivity(net, NoiseSchedule(20), _batch(), hp, levels=levels, generator=gen)


def test_ddpm_x0_model_that_follows_xt_vs_one_that_ignores_it() -> None:
    uses, ignores = _run(X0Net(1.0), _hp()), _run(X0Net(0.0), _hp())
    assert [row["level"] for row in uses] == default_levels(_hp()) == [0.0, 2.0, 5.0, 10.0, 14.0, 19.0]
    for u, i in zip(uses, ignores):
        assert u["total"] == pytest.approx(1.0, rel=1e-4) and u["branch"] == pytest.approx(1.0, rel=1e-4)
        assert i["total"] == 0.0 and i["branch"] == 0.0
    # the white-prior reference shrinks from ≈ 1/√ᾱ·… at t = 0 towards 0 at t = T-1
    assert uses[0]["white_ref"] > 0.9 and uses[-1]["white_ref"] < 0.01
    assert uses[0]["sigma"] < uses[-1]["sigma"]


def test_epsilon_model_with_a_constant_output_follows_xt_through_its_skip() -> None:
    """ε̂ independent of x_t: x̂0 = (x_t - √(1-ᾱ) ε̂)/√ᾱ moves with x_t by 1/√ᾱ, its branch not at all."""
    schedule = NoiseSchedule(20)
    rows = _run(X0Net(0.0), _hp(parameterization="epsilon"), levels=[0, 10])
    for row in rows:
        a = float(schedule.alphas_cumprod[int(row["level"])])
        assert row["total"] == pytest.approx(1 / math.sqrt(a), rel=1e-4)
        assert row["branch"] < 1e-4


def test_edm_skip_only_vs_collapsed_network() -> None:
    sigmas = [0.01, 0.5, 1.0, 20.0]
    zero = _run(EDMZero(), _hp("edm", sigma_data=0.5), levels=sigmas)
    mean = _run(EDMMean(0.5), _hp("edm", sigma_data=0.5), levels=sigmas)
    for z, m, sigma in zip(zero, mean, sigmas):
        c_skip = 0.25 / (sigma**2 + 0.25)
        assert z["level"] == sigma and z["sigma"] == sigma
        assert z["total"] == pytest.approx(c_skip, rel=1e-4) and z["branch"] == 0.0
        assert m["total"] < 1e-4 and m["branch"] == pytest.approx(c_skip, rel=1e-3)
    assert zero[0]["total"] > 0.99  # near 1 at low noise by construction


def test_ambient_model_with_a_masked_noisy_branch_never_sees_xt_on_hidden_pixels() -> None:
    rows = _run(X0Net(1.0), _hp(objective="ambient", mask_noisy=True), levels=[0, 10])
    assert all(row["total"] == 0.0 for row in rows)
    rows = _run(X0Net(1.0), _hp(objective="ambient", mask_noisy=False), levels=[0, 10])
    assert all(row["total"] == pytest.approx(1.0, rel=1e-4) for row in rows)


def test_bench_script_reads_a_checkpoint_and_a_shard_folder(tmp_path: Path) -> None:
    shards = make_shards(tmp_path, n=4, split="val")
    model_cfg = section("model", backbone={"dim": 8, "dim_mults": [1, 2]},
                        diffusion={"formulation": "edm", "timesteps": 20}, first_guess={"method": "none"})
    hp = model_hparams("standard", model_cfg, section("objectives.standard"), read_manifest(shards))
    torch.manual_seed(0)
    net = ConditionalUNet(hp["channels"], hp["cond_channels"], hp["channels"], dim=8, dim_mults=(1, 2))
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": net.state_dict(), "hparams": hp, "global_step": 0, "config_hash": "test"}, ckpt)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "xt_sensitivity.py"), str(ckpt), str(shards), "--threads", "1",
         "--patches", "2", "--levels", "0.05", "5", "--directions", "1"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "formulation edm" in proc.stdout and "| 0.05 |" in proc.stdout and "| 5 |" in proc.stdout
    assert "RATIO xt_sensitivity_total/lowest_noise" in proc.stdout
