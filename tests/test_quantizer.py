"""AdaBM's quantizers against closed forms: levels, clipping, symmetry, straight-through gradients, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from adasr.quant.bac import bit_aware_clip
from adasr.quant.quantizer import (
    QConv2d, calibration_range, minmax_range, mse_range, mse_weight_bound, percentile_range, quantize_activation,
    quantize_weight, round_ste,
)


def test_round_ste_rounds_forward_and_passes_gradient():
    x = torch.tensor([0.2, 0.5001, 1.7, -1.4], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [0.0, 1.0, 2.0, -1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_activation_levels_match_the_equation():
    x = torch.linspace(-1.0, 3.0, 101)
    lo, hi, b = -0.5, 2.0, 3
    n = 2**b - 1
    xn = x.numpy().astype(np.float64)
    ref = np.round((np.clip(xn, lo, hi) - lo) / (hi - lo) * n) / n * (hi - lo) + lo
    got = quantize_activation(x, lo, hi, b)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-6)
    assert len(torch.unique(got)) == 2**b
    assert float(got.min()) == pytest.approx(lo) and float(got.max()) == pytest.approx(hi)


def test_activation_bits_broadcast_per_image_and_per_pixel():
    x = torch.rand(2, 3, 4, 4)
    per_image = quantize_activation(x, 0.0, 1.0, torch.tensor([2.0, 6.0]).view(2, 1, 1, 1))
    assert torch.equal(per_image[0], quantize_activation(x[0], 0.0, 1.0, 2))
    assert torch.equal(per_image[1], quantize_activation(x[1], 0.0, 1.0, 6))
    bmap = torch.full((2, 1, 4, 4), 2.0)
    bmap[..., 2:] = 8.0
    per_pixel = quantize_activation(x, 0.0, 1.0, bmap)
    assert torch.equal(per_pixel[..., :2], quantize_activation(x[..., :2], 0.0, 1.0, 2))
    assert torch.equal(per_pixel[..., 2:], quantize_activation(x[..., 2:], 0.0, 1.0, 8))


def test_activation_gradients_reach_bounds_and_bits():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    lo = torch.tensor(-1.0, requires_grad=True)
    hi = torch.tensor(1.0, requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    (quantize_activation(x, lo, hi, b) - x).pow(2).mean().backward()
    assert lo.grad is not None and float(lo.grad) != 0
    assert hi.grad is not None and float(hi.grad) != 0
    assert b.grad is not None and float(b.grad) != 0


def test_weight_quantizer_is_symmetric_with_odd_level_count():
    w = torch.linspace(-2, 2, 401)
    q = quantize_weight(w, 1.5, 4)
    assert torch.allclose(q, -quantize_weight(-w, 1.5, 4))
    levels = torch.unique(q)
    assert len(levels) == 2 * (2 ** (4 - 1) - 1) + 1  # −7..7 steps of 1.5/7
    np.testing.assert_allclose(levels.numpy(), np.arange(-7, 8) * 1.5 / 7, atol=1e-6)
    with pytest.raises(ValueError):
        quantize_weight(w, 1.0, 1)


def test_calibration_ranges():
    x = torch.randn(20000, generator=torch.Generator().manual_seed(1))
    assert minmax_range(x) == (float(x.min()), float(x.max()))
    lo, hi = percentile_range(x, 0.99)
    ref = np.quantile(x.numpy(), [0.01, 0.99])
    assert lo == pytest.approx(ref[0], abs=1e-5) and hi == pytest.approx(ref[1], abs=1e-5)
    full_err = float((quantize_activation(x, *minmax_range(x), 3) - x).pow(2).mean())
    l3, u3 = mse_range(x, 3)
    assert float((quantize_activation(x, l3, u3, 3) - x).pow(2).mean()) < full_err
    l8, u8 = mse_range(x, 8)
    assert u8 - l8 > u3 - l3  # more bits → a wider optimal range (less clipping)
    assert calibration_range(x, "mse", 3) == (l3, u3)
    with pytest.raises(ValueError):
        calibration_range(x, "kl")


def test_mse_weight_bound_beats_max():
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(2))
    u = mse_weight_bound(w, 4)
    assert u < float(w.abs().max())
    assert (quantize_weight(w, u, 4) - w).pow(2).mean() < (quantize_weight(w, w.abs().max(), 4) - w).pow(2).mean()


@pytest.fixture
def conv():
    torch.manual_seed(0)
    return nn.Conv2d(8, 8, 3, padding=1)


def test_qconv_modes(conv):
    q = QConv2d(conv, w_bits=8, a_bits=8)
    x = torch.randn(4, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(q(x), conv(x))  # fp
    q.mode = "calibrate"
    assert torch.equal(q(x), conv(x))
    assert q.lower_a.item() == pytest.approx(float(x.min())) and q.upper_a.item() == pytest.approx(float(x.max()))
    assert q.sensitivity == pytest.approx(float(x.flatten(1).std(1).mean()), rel=1e-5)
    q.mode = "quant"
    y8 = q(x)
    rel = ((y8 - conv(x)).norm() / conv(x).norm()).item()
    assert 0 < rel < 0.02
    q.a_bits, q.w_bits = 2, 2
    rel2 = ((q(x) - conv(x)).norm() / conv(x).norm()).item()
    assert rel2 > 5 * rel
    assert q.last_bits.shape == (4, 1, 1, 1) and q.last_bits.mean().item() == 2.0


def test_qconv_ema_and_bit_map(conv):
    q = QConv2d(conv, w_bits=None, a_bits=4, ema_beta=0.9)
    q.mode = "calibrate"
    q(torch.zeros(1, 8, 4, 4) - 1.0 + torch.eye(4))  # range [-1, 0]
    q(torch.full((1, 8, 4, 4), 3.0))  # range [3, 3]
    assert q.lower_a.item() == pytest.approx(0.9 * -1 + 0.1 * 3)
    assert q.upper_a.item() == pytest.approx(0.9 * 0 + 0.1 * 3)
    q.mode = "quant"
    q.image_bits = torch.tensor([[-1.0, 1.0]]).view(1, 1, 1, 2)  # coarse map: left half −1, right half +1
    q(torch.randn(1, 8, 4, 6))
    assert q.last_bits.shape == (1, 1, 4, 6)
    assert q.last_bits[..., :3].eq(3).all() and q.last_bits[..., 3:].eq(5).all()


def test_layer_bit_ste(conv):
    q = QConv2d(conv)
    with torch.no_grad():
        q.layer_measure.fill_(0.7)
    b = q.layer_bit()
    assert b.item() == 1.0
    b.backward()
    assert float(q.layer_measure.grad) == pytest.approx(1 - np.tanh(0.7) ** 2)
    q.layer_adaptive = False
    assert q.layer_bit().item() == 0.0


def test_bit_aware_clip_blends_half_way(conv):
    q = QConv2d(conv, a_bits=3)
    q.mode = "calibrate"
    x = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(4))
    q(x)
    lo, hi = q.lower_a.item(), q.upper_a.item()
    with torch.no_grad():
        q.layer_measure.fill_(-1.0)  # actual bit 2
    best = mse_range(q.sample, 2, lo, hi, steps=100)
    new = bit_aware_clip(q, steps=100, beta=0.5)
    assert new[0] == pytest.approx(0.5 * lo + 0.5 * best[0], abs=1e-6)
    assert new[1] == pytest.approx(0.5 * hi + 0.5 * best[1], abs=1e-6)
    with pytest.raises(RuntimeError):
        bit_aware_clip(QConv2d(conv))
