"""ConditionalUNet: shapes, size checks, FiLM / attention variants, conditioning on t."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depthdif.diffusion import ConditionalUNet, count_parameters
from depthdif.errors import ConfigError


def _inputs(b: int = 2, c: int = 3, cond: int = 7, size: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, c, size, size, generator=gen),
        torch.randint(0, 100, (b,), generator=gen),
        torch.randn(b, cond, size, size, generator=gen),
        torch.randn(b, 4, generator=gen),
    )


def test_output_shape_and_time_dependence() -> None:
    torch.manual_seed(0)
    model = ConditionalUNet(3, 7, 3, dim=8, dim_mults=(1, 2, 2)).eval()
    x_t, t, cond, _ = _inputs()
    out = model(x_t, t, cond)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32 and out.is_contiguous()
    # the unet baseline's call: x_t = 0, t = 0
    zero = model(torch.zeros_like(x_t), torch.zeros(2, dtype=torch.long), cond)
    assert torch.isfinite(zero).all()
    assert not torch.allclose(model(x_t, torch.full((2,), 90), cond), model(x_t, torch.zeros(2).long(), cond))
    # samples are independent: sample 0 does not change when sample 1 does
    cond2 = cond.clone()
    cond2[1] += 1
    torch.testing.assert_close(model(x_t, t, cond2)[0], out[0])


@pytest.mark.parametrize(("dim_mults", "size"), [((1, 2, 2), 18), ((1, 2, 2, 2), 20)])
def test_sizes_not_divisible_raise(dim_mults: tuple[int, ...], size: int) -> None:
    model = ConditionalUNet(3, 7, 3, dim=8, dim_mults=dim_mults)
    x_t, t, cond, _ = _inputs(size=size)
    with pytest.raises(ValueError, match=r"model\.backbone\.dim_mults") as info:
        model(x_t, t, cond)
    assert "patches.size" in str(info.value) and isinstance(info.value, ConfigError)


def test_shallower_net_accepts_size_divisible_by_its_factor() -> None:
    model = ConditionalUNet(3, 7, 2, dim=8, dim_mults=(1, 2))
    x_t, t, cond, _ = _inputs(size=18)
    assert model(x_t, t, cond).shape == (2, 2, 18, 18)


def test_wrong_condition_channels_raise() -> None:
    model = ConditionalUNet(3, 7, 3, dim=8)
    x_t, t, cond, _ = _inputs(cond=6)
    with pytest.raises(ValueError, match="model.conditioning"):
        model(x_t, t, cond)


def test_film_uses_coords_and_attention_runs() -> None:
    torch.manual_seed(0)
    model = ConditionalUNet(3, 7, 3, dim=8, attention=True, film=True, dropout=0.1).eval()
    x_t, t, cond, coords = _inputs()
    out = model(x_t, t, cond, coords)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    assert not torch.allclose(out, model(x_t, t, cond, coords + 0.5))
    with pytest.raises(ValueError, match="model.backbone.film"):
        model(x_t, t, cond)
    plain = ConditionalUNet(3, 7, 3, dim=8)
    assert count_parameters(model) > count_parameters(plain)
    # without FiLM, coords are ignored
    plain.eval()
    torch.testing.assert_close(plain(x_t, t, cond, coords), plain(x_t, t, cond))


def test_backward_reaches_every_parameter() -> None:
    model = ConditionalUNet(3, 7, 3, dim=8, attention=True, film=True)
    x_t, t, cond, coords = _inputs()
    model(x_t, t, cond, coords).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_count_parameters_counts_trainable_only() -> None:
    lin = nn.Linear(3, 2)  # 3·2 weights + 2 biases
    assert count_parameters(lin) == 8
    lin.bias.requires_grad_(False)
    assert count_parameters(lin) == 6
