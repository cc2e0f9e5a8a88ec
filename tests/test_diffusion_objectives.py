"""Objectives: condition, masked losses, ambient masks and the ambient loss' independence of y."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from depthdif.diffusion import (
    ConditionalUNet,
    ConditioningSettings,
    DiffusionSettings,
    NoiseSchedule,
    ambient_masks,
    build_condition,
    condition_channels,
    masked_mse,
    objective_from_cfg,
    standard_loss_mask,
    training_loss,
)
from training_helpers import section

STANDARD = section("objectives.standard")
AMBIENT = section("objectives.ambient", mask_noisy_branch=False, further_drop_pattern="pixels")
COND = ConditioningSettings(eo=True, mask_channels=True)


def diffusion(parameterization: str = "x0") -> DiffusionSettings:
    """The schema's model.diffusion (DDPM, uniform weight) with 20 steps."""
    return DiffusionSettings.from_cfg(section("model.diffusion", timesteps=20, parameterization=parameterization))


def make_batch(b: int = 4, c: int = 2, size: int = 8, seed: int = 0) -> dict[str, Tensor]:
    """Synthetic normalised batch: land in the left columns, the deepest level shallower, A ~ 30 %."""
    gen = torch.Generator().manual_seed(seed)
    land = torch.zeros(b, 1, size, size)
    land[..., :2] = 1
    y_valid = (1 - land).repeat(1, c, 1, 1)
    y_valid[:, -1, :2, :] = 0  # sea floor above the deepest level in the top rows
    y = torch.randn(b, c, size, size, generator=gen) * y_valid
    observed = (torch.rand(b, 1, size, size, generator=gen) < 0.3).float()
    x_valid = observed * y_valid
    return {
        "y": y,
        "y_valid": y_valid,
        "x": x_valid * y,
        "x_valid": x_valid,
        "land": land,
        "eo": torch.randn(b, 1, size, size, generator=gen) * (1 - land),
        "coords": torch.randn(b, 4, generator=gen),
        "index": torch.arange(b),
    }


class Spy(nn.Module):
    """pred = learned constant field; records every call's inputs."""

    def __init__(self, c: int = 2, size: int = 8) -> None:
        super().__init__()
        self.field = nn.Parameter(torch.linspace(-1, 1, c * size * size).reshape(1, c, size, size))
        self.calls: list[tuple[Tensor, Tensor, Tensor]] = []

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor, coords: Tensor | None = None) -> Tensor:
        self.calls.append((x_t, t, cond))
        return self.field.expand_as(x_t) + 0.1 * x_t


def _loss(model: nn.Module, batch: dict[str, Tensor], objective: str, cfg: dict[str, Any],
          parameterization: str = "x0", seed: int = 3) -> tuple[Tensor, dict[str, Tensor]]:
    return training_loss(
        model, NoiseSchedule(20), batch, objective=objective_from_cfg(objective, cfg),
        diffusion=diffusion(parameterization), conditioning=COND, generator=torch.Generator().manual_seed(seed),
    )


@pytest.mark.parametrize("use_eo", [True, False])
@pytest.mark.parametrize("use_mask", [True, False])
def test_build_condition_layout(use_eo: bool, use_mask: bool) -> None:
    batch = make_batch()
    cond = build_condition(batch["x"], batch["x_valid"], batch["eo"], use_mask_channels=use_mask, use_eo=use_eo)
    assert cond.shape[1] == condition_channels(2, use_eo, use_mask) == 2 + 2 * use_mask + use_eo
    assert torch.equal(cond[:, :2], batch["x"])
    if use_mask:
        assert torch.equal(cond[:, 2:4], batch["x_valid"])
    if use_eo:
        assert torch.equal(cond[:, -1:], batch["eo"])


def test_build_condition_without_eo_raises() -> None:
    batch = make_batch()
    with pytest.raises(ValueError, match="model.conditioning.eo"):
        build_condition(batch["x"], batch["x_valid"], None)


def test_masked_mse_numbers() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0, 1.0, 10.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert float(masked_mse(pred, target, mask)) == pytest.approx((1 + 4 + 4) / 3)
    assert float(masked_mse(pred, target, torch.zeros_like(mask))) == 0.0  # Σm clamped to 1
    # a (B,1,...) mask counts once per channel
    two = torch.stack([pred, pred], 1)
    assert float(masked_mse(two, torch.stack([target, target], 1), mask[:, None])) == pytest.approx(3.0)


def test_standard_loss_masks_and_land() -> None:
    batch = make_batch()
    yv, a = batch["y_valid"], batch["x_valid"]
    assert torch.equal(standard_loss_mask(yv, a, "valid"), yv)
    missing = standard_loss_mask(yv, a, "missing")
    assert torch.equal(missing, yv * (1 - a)) and float((missing * a).sum()) == 0
    assert torch.equal(standard_loss_mask(yv, a, "all"), torch.ones_like(yv))
    with pytest.raises(ValueError, match="objectives.standard.loss_mask"):
        standard_loss_mask(yv, a, "ocean")  # type: ignore[arg-type]
    # altering pred or target on land (and below the sea floor) changes nothing for valid/missing
    pred = torch.randn_like(batch["y"])
    invalid = yv == 0
    for mode in ("valid", "missing"):
        m = standard_loss_mask(yv, a, mode)  # type: ignore[arg-type]
        ref = masked_mse(pred, batch["y"], m)
        assert torch.equal(masked_mse(pred + 5 * invalid, batch["y"] - 3 * invalid, m), ref)
        assert not torch.equal(masked_mse(pred + 5 * (~invalid), batch["y"], m), ref)
    all_mask = standard_loss_mask(yv, a, "all")
    assert not torch.equal(masked_mse(pred + 5 * invalid, batch["y"], all_mask), masked_mse(pred, batch["y"], all_mask))


def test_standard_training_loss_ignores_land_and_logs() -> None:
    batch = make_batch()
    loss, logs = _loss(Spy(), batch, "standard", STANDARD)
    # the spy's prediction is pointwise in x_t, so y on land only reaches pred on land
    land_changed = dict(batch, y=batch["y"] + 7 * (1 - batch["y_valid"]))
    altered, _ = _loss(Spy(), land_changed, "standard", STANDARD)
    assert torch.equal(altered, loss)
    ocean_changed = dict(batch, y=batch["y"] + 7 * batch["y_valid"])
    assert not torch.equal(_loss(Spy(), ocean_changed, "standard", STANDARD)[0], loss)
    assert all(v.ndim == 0 and not v.requires_grad for v in logs.values())  # detached 0-d tensors
    assert logs["loss"].item() == pytest.approx(loss.item())
    assert logs["observed_fraction"].item() == pytest.approx(float(batch["x_valid"].sum() / batch["y_valid"].sum()))
    assert logs["field_std"].item() == pytest.approx(float(batch["y"][batch["y_valid"] > 0].std()))
    assert "kept_fraction" not in logs


@pytest.mark.parametrize("n_valid", [0, 1])
def test_field_std_log_is_zero_without_two_valid_values(n_valid: int) -> None:
    batch = make_batch()
    y_valid = torch.zeros_like(batch["y_valid"])
    y_valid.view(-1)[:n_valid] = 1
    batch = dict(batch, y_valid=y_valid, x_valid=y_valid, x=y_valid * batch["y"])
    _, logs = _loss(Spy(), batch, "standard", STANDARD)
    assert logs["field_std"].item() == 0.0
    assert logs["observed_fraction"].item() == float(n_valid)


class HostReads(TorchDispatchMode):
    """Counts the ops that block the host on a GPU: reading a value (item/float/bool) and
    data-dependent shapes (nonzero, masked_select, boolean-mask indexing)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        indices = args[1] if name == "index" else []
        if name in ("_local_scalar_dense", "nonzero", "masked_select") or any(
            i is not None and i.dtype == torch.bool for i in indices
        ):
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("objective", ["standard", "ambient", "unet"])
def test_training_loss_never_reads_the_device(objective: str) -> None:
    torch.manual_seed(0)
    model = ConditionalUNet(2, condition_channels(2, True, True), 2, dim=8, dim_mults=(1, 2))
    with HostReads() as reads:
        loss, logs = _loss(model, make_batch(), objective, AMBIENT if objective == "ambient" else STANDARD)
        loss.backward()
    assert reads.ops == []
    ambient_only = {"kept_fraction"} if objective == "ambient" else set()
    assert set(logs) == {"loss", "observed_fraction", "field_std"} | ambient_only
    with HostReads() as reads:
        logs["loss"].item()  # the counter does see a read
    assert reads.ops == ["_local_scalar_dense"]


def test_standard_targets_x0_or_epsilon() -> None:
    batch = make_batch()
    spy = Spy()
    loss, _ = _loss(spy, batch, "standard", STANDARD, "x0")
    x_t, t, cond = spy.calls[-1]
    pred = (spy.field.expand_as(x_t) + 0.1 * x_t).detach()
    assert loss.item() == pytest.approx(float(masked_mse(pred, batch["y"], batch["y_valid"])))
    assert torch.equal(cond, build_condition(batch["x"], batch["x_valid"], batch["eo"]))
    # epsilon: recover ε from x_t = √ᾱ y + √(1-ᾱ) ε
    loss_eps, _ = _loss(spy, batch, "standard", STANDARD, "epsilon")
    x_t, t, _ = spy.calls[-1]
    eps = NoiseSchedule(20).predict_eps_from_x0(x_t, t, batch["y"])
    expected = masked_mse(spy.field.expand_as(x_t) + 0.1 * x_t, eps, batch["y_valid"]).detach()
    assert loss_eps.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ambient_masks_subset_min_kept_and_rate() -> None:
    batch = make_batch(b=16, seed=4)
    a = batch["x_valid"]
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        a_t = ambient_masks(a, 0.9, 4, True, generator=gen)
        assert bool((a_t <= a).all())
        kept = a_t.amax(1).flatten(1).sum(1)
        observed = a.amax(1).flatten(1).sum(1)
        assert bool((kept >= observed.clamp(max=4)).all())
        # shared: Ã = B ⊙ A with one B per (h, w) for all channels
        assert torch.equal(a_t, a_t.amax(1, keepdim=True) * a)
    rates = torch.stack([ambient_masks(a, 0.2, 0, True, generator=gen).sum() / a.sum() for _ in range(40)])
    assert float(rates.mean()) == pytest.approx(0.8, abs=0.02)


def test_ambient_masks_min_kept_exact_and_unshared() -> None:
    a = torch.zeros(3, 2, 6, 6)
    a[0, :, 0, :3] = 1  # 3 observed positions < min_kept: all kept
    a[1, :, 1:4, 1:4] = 1  # 9 observed
    a[2, 0, 2, 2] = 1  # one position observed at one depth only
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        a_t = ambient_masks(a, 0.99, 4, True, generator=gen)
        assert torch.equal(a_t[0], a[0]) and torch.equal(a_t[2], a[2])
        assert float(a_t[1, 0].sum()) >= 4 and bool((a_t <= a).all())
    full = torch.ones(8, 3, 8, 8)
    unshared = ambient_masks(full, 0.5, 0, False, generator=gen)
    assert not torch.equal(unshared, unshared.amax(1, keepdim=True) * full)
    assert float(unshared.mean()) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("mask_noisy", [False, True])
def test_ambient_loss_and_gradient_do_not_see_y_outside_a(mask_noisy: bool) -> None:
    batch = make_batch()
    cfg = dict(AMBIENT, mask_noisy_branch=mask_noisy)
    torch.manual_seed(0)
    model = ConditionalUNet(2, condition_channels(2, True, True), 2, dim=8, dim_mults=(1, 2))

    def loss_and_grad(b: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        model.zero_grad()
        loss, logs = _loss(model, b, "ambient", cfg)
        loss.backward()
        assert 0 < logs["kept_fraction"].item() <= 1
        return loss.detach(), [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]

    ref_loss, ref_grad = loss_and_grad(batch)
    hidden = 1 - batch["x_valid"]
    changed = dict(batch, y=batch["y"] + 10 * hidden * torch.randn_like(batch["y"]))
    loss, grad = loss_and_grad(changed)
    assert torch.equal(loss, ref_loss)
    assert all(torch.equal(g, r) for g, r in zip(grad, ref_grad))
    # an observed value does matter
    seen = dict(batch, x=batch["x"] + batch["x_valid"])
    assert not torch.equal(loss_and_grad(seen)[0], ref_loss)


def test_ambient_condition_and_noisy_branch_use_a_tilde_only() -> None:
    batch = make_batch()
    spy = Spy()
    _loss(spy, batch, "ambient", dict(AMBIENT, mask_noisy_branch=True, further_drop_prob=0.5))
    x_t, _, cond = spy.calls[-1]
    a_tilde = cond[:, 2:4]
    assert bool((a_tilde <= batch["x_valid"]).all()) and float(a_tilde.sum()) < float(batch["x_valid"].sum())
    assert torch.equal(cond, build_condition(a_tilde * batch["x"], a_tilde, batch["eo"]))
    assert float((x_t * (1 - a_tilde)).abs().sum()) == 0


def test_ambient_parameterization_rules() -> None:
    batch = make_batch()
    with pytest.raises(ValueError, match="require_x0_parameterization") as info:
        _loss(Spy(), batch, "ambient", AMBIENT, "epsilon")
    assert "model.diffusion.parameterization" in str(info.value)
    spy = Spy()
    loss, _ = _loss(spy, batch, "ambient", dict(AMBIENT, require_x0_parameterization=False), "epsilon")
    x_t, t, _ = spy.calls[-1]
    x0 = NoiseSchedule(20).predict_x0_from_eps(x_t, t, spy.field.expand_as(x_t) + 0.1 * x_t)
    assert loss.item() == pytest.approx(masked_mse(x0, batch["x"], batch["x_valid"]).item(), rel=1e-5)


def test_unet_objective_is_plain_regression() -> None:
    batch = make_batch()
    spy = Spy()
    loss, _ = _loss(spy, batch, "unet", {"loss_mask": "missing"})
    x_t, t, _ = spy.calls[-1]
    assert float(x_t.abs().sum()) == 0 and int(t.abs().sum()) == 0 and t.dtype == torch.long
    mask = batch["y_valid"] * (1 - batch["x_valid"])
    assert loss.item() == pytest.approx(masked_mse(spy.field.expand_as(x_t), batch["y"], mask).item())
    with pytest.raises(ValueError, match="objective"):
        _loss(spy, batch, "diffusion", STANDARD)


@pytest.mark.parametrize("objective", ["standard", "ambient"])
def test_tiny_model_overfits_one_batch(objective: str) -> None:
    torch.manual_seed(0)
    batch = make_batch(b=4, seed=5)
    model = ConditionalUNet(2, condition_channels(2, True, True), 2, dim=8, dim_mults=(1, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    cfg = STANDARD if objective == "standard" else AMBIENT
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss, _ = training_loss(
            model, NoiseSchedule(20), batch, objective=objective_from_cfg(objective, cfg), diffusion=diffusion(),
            conditioning=COND, generator=gen,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    print(objective, first, last)
    assert last < first / 10, (first, last)
