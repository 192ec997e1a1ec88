"""MAC counts equal their closed forms; CostCounter adds up."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from adasr.cost import CostCounter, count_macs, unet_macs
from adasr.models.unet import SelfAttention, SRUNet, UNetConfig


def test_conv2d_macs_closed_form() -> None:
    for conv, shape in [
        (nn.Conv2d(5, 7, 3, stride=2, padding=1), (2, 5, 17, 19)),
        (nn.Conv2d(4, 6, 3, groups=2), (1, 4, 10, 12)),
        (nn.Conv2d(3, 8, 1, bias=False), (3, 3, 9, 9)),
    ]:
        x = torch.randn(shape)
        b, _, h_out, w_out = conv(x).shape
        kh, kw = conv.kernel_size
        expected = b * conv.out_channels * h_out * w_out * (conv.in_channels // conv.groups) * kh * kw
        assert count_macs(lambda: conv(x)) == expected


def test_linear_macs_closed_form() -> None:
    lin = nn.Linear(13, 11)
    assert count_macs(lambda: lin(torch.randn(3, 13))) == 3 * 13 * 11
    assert count_macs(lambda: lin(torch.randn(2, 5, 13))) == 2 * 5 * 13 * 11


def test_cpu_attention_is_counted() -> None:
    q, k, v = torch.randn(2, 4, 64, 32), torch.randn(2, 4, 48, 32), torch.randn(2, 4, 48, 16)
    # QKᵀ: 2·4·64·48·32 MACs, softmax(·)V: 2·4·64·48·16
    assert count_macs(lambda: F.scaled_dot_product_attention(q, k, v)) == 2 * 4 * 64 * 48 * (32 + 16)


def _closed_form_unet_macs(model: SRUNet, shape: tuple[int, int, int, int]) -> int:
    """Σ closed forms over every Conv2d / Linear call and attention product, recorded by forward hooks."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        b, c_out, h, w = out.shape
        total += b * c_out * h * w * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, inp: tuple, _out: torch.Tensor) -> None:
        nonlocal total
        total += inp[0].numel() // m.in_features * m.in_features * m.out_features

    def attn_hook(m: SelfAttention, inp: tuple, _out: torch.Tensor) -> None:
        nonlocal total
        b, c, h, w = inp[0].shape
        n = h * w
        total += b * m.heads * n * n * 2 * (c // m.heads)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, SelfAttention):
            hooks.append(m.register_forward_hook(attn_hook))
    b, c, h, w = shape
    with torch.no_grad():
        model(torch.zeros(shape), torch.full((b,), 10.0), torch.zeros(b, model.config.in_channels - c, h, w))
    for hk in hooks:
        hk.remove()
    return total


def test_unet_macs_equals_sum_of_layers_and_is_linear_in_batch() -> None:
    torch.manual_seed(0)
    model = SRUNet(UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)).eval()
    one = unet_macs(model, (1, 3, 16, 16))
    assert one == _closed_form_unet_macs(model, (1, 3, 16, 16))
    assert unet_macs(model, (3, 3, 16, 16)) == 3 * one
    assert unet_macs(model, (1, 3, 32, 32)) > 4 * one  # attention grows with (H·W)², convolutions with H·W


def test_cost_counter() -> None:
    c = CostCounter()
    c.add(unet_calls=1, tile_evaluations=16, macs=16 * 1000).add(unet_calls=1, tile_evaluations=9, macs=9 * 1000)
    assert c.as_dict() == {"unet_calls": 2, "tile_evaluations": 25, "macs": 25_000,
                           "evaluations_by_mode": {"full": 25}, "macs_by_mode": {"full": 25_000}}
    c += CostCounter(unet_calls=1, tile_evaluations=1, macs=10**9)
    assert (c.unet_calls, c.tile_evaluations) == (3, 26) and c.gmacs == pytest.approx(1.000025)
    assert c.macs_by_mode == {"full": 25_000 + 10**9}
    d = CostCounter().add(unet_calls=1, tile_evaluations=2, macs=300, mode="decoder")
    c += d
    assert c.evaluations_by_mode == {"full": 26, "decoder": 2} and c.macs == 25_000 + 10**9 + 300
    assert sum(c.macs_by_mode.values()) == c.macs and sum(c.evaluations_by_mode.values()) == c.tile_evaluations
    with pytest.raises(ValueError, match="non-negative"):
        c.add(macs=-1)
    with pytest.raises(ValueError, match="non-negative"):
        c.add(tile_evaluations=1.5)  # type: ignore[arg-type]
