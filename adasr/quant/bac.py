"""Bit-aware clipping (BaC, AdaBM §3.4): re-pick a layer's activation clipping range at the bit it will actually run at.

Calibration finds [l, u] independently of the bit width; a layer that L2B moves to b_base − 1 bits wants a tighter
range than one at b_base + 1. For each adaptive layer, on its recorded calibration input x:

    i* = argmin_{i = 0..99} ‖Q_b(x; (1 − 0.01 i)·l, (1 − 0.01 i)·u) − x‖²,   b = b_base + b_L(k)
    [l, u] ← β·[l, u] + (1 − β)·(1 − 0.01 i*)·[l, u],                      β = 0.5 (``bac_beta``)
"""

from __future__ import annotations

import torch

from .quantizer import QConv2d, mse_range


@torch.no_grad()
def bit_aware_clip(layer: QConv2d, steps: int = 100, beta: float = 0.5) -> tuple[float, float]:
    """Apply BaC to one calibrated layer in place; returns the new (l, u). Needs ``layer.sample`` (calibration)."""
    if layer.sample is None:
        raise RuntimeError("bit-aware clipping needs a calibration sample: run the model in 'calibrate' mode first")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    bits = layer.base_bits().clamp(layer.min_bits, layer.max_bits).item()
    lo, hi = layer.lower_a.item(), layer.upper_a.item()
    best_l, best_u = mse_range(layer.sample, bits, lo, hi, steps=steps, shrink=0.01)
    layer.lower_a.fill_(beta * lo + (1 - beta) * best_l)
    layer.upper_a.fill_(beta * hi + (1 - beta) * best_u)
    return layer.lower_a.item(), layer.upper_a.item()
