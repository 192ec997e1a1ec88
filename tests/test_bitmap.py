"""Image-to-bit and layer-to-bit against independent references (scipy's Sobel, numpy's percentiles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from adasr.quant.bitmap import ImageToBit, image_complexity, layer_bits, sobel_complexity_map


def _img(seed: int, h: int = 20, w: int = 28) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_sobel_complexity_matches_scipy():
    x = _img(0)
    gray = ((x[0].numpy() + 1) / 2 * np.array([0.299, 0.587, 0.114])[:, None, None]).sum(0).astype(np.float64)
    gx = ndimage.sobel(gray, axis=1, mode="nearest") / 8  # d/dx, replicate border
    gy = ndimage.sobel(gray, axis=0, mode="nearest") / 8
    ref = (np.abs(gx) + np.abs(gy)) / 2 * 1e3
    np.testing.assert_allclose(sobel_complexity_map(x)[0, 0].numpy(), ref, rtol=1e-4, atol=1e-3)
    assert float(image_complexity(x)) == pytest.approx(ref.mean(), rel=1e-4)


def test_flat_image_has_zero_complexity_and_patches_average():
    assert float(image_complexity(torch.full((1, 3, 8, 8), 0.3))) == pytest.approx(0.0, abs=1e-6)
    x = _img(1, 16, 24)
    cmap = sobel_complexity_map(x)[0, 0]
    per_patch = image_complexity(x, patch=8)
    assert per_patch.shape == (1, 1, 2, 3)
    assert float(per_patch[0, 0, 1, 2]) == pytest.approx(float(cmap[8:, 16:].mean()), rel=1e-5)
    edge = image_complexity(x, patch=10)  # 16×24 → 2×3 patches, edge patches smaller
    assert float(edge[0, 0, 1, 2]) == pytest.approx(float(cmap[10:, 20:].mean()), rel=1e-5)


def test_image_to_bit_thresholds_are_calibration_percentiles():
    i2b = ImageToBit(percentile=10, ema_beta=0.9)
    c = torch.arange(100, dtype=torch.float32)
    i2b.calibrate(c)
    lo, hi = np.quantile(c.numpy(), [0.1, 0.9])
    assert i2b.lower.item() == pytest.approx(lo) and i2b.upper.item() == pytest.approx(hi)
    i2b.calibrate(c + 100)  # EMA: 0.9 old + 0.1 new
    assert i2b.lower.item() == pytest.approx(lo + 10)
    b = i2b(torch.tensor([0.0, 50.0, 200.0]))
    assert b.tolist() == [-1.0, 0.0, 1.0]


def test_image_to_bit_gradient_reaches_thresholds():
    i2b = ImageToBit()
    i2b.calibrate(torch.arange(100, dtype=torch.float32))
    i2b(torch.tensor([30.0, 60.0, 85.0])).sum().backward()
    assert i2b.lower.grad is not None and i2b.lower.grad.abs() > 0
    assert i2b.upper.grad is not None and i2b.upper.grad.abs() > 0


def test_layer_bits_use_numpy_percentiles():
    s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]  # P30 = 3.7, P70 = 7.3
    assert layer_bits(s, 30) == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        layer_bits([], 30)
    with pytest.raises(ValueError):
        layer_bits(s, 60)
