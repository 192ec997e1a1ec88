"""AdaBM's bit mapping: image-to-bit (I2B) and layer-to-bit (L2B); the bit of layer k on image (or patch) I is

    b_k(I) = b_base + b_I(I) + b_L(k),      b_I, b_L ∈ {−1, 0, +1}.

I2B — complexity c(I) = mean over pixels of (|G_x| + |G_y|)/2 of the gray LR image in [0, 1], Sobel kernels /8,
×10³ (AdaBM: kornia ``spatial_gradient`` of ``rgb_to_grayscale(I/255)``). Thresholds are calibration percentiles,
l = Q_p(c), u = Q_{1−p}(c) with p = 10 %, EMA β = 0.9 over calibration batches:

    b_I = −1 if c < l,   +1 if c > u,   0 otherwise;
    training gradient through the soft version tanh((c − (u + l)/2) · 2/(u − l))  (l, u learnable).

With ``patch`` set, c is computed per non-overlapping patch×patch LR patch (AdaBM's ``--test_patch``) and b_I is a
map (B, 1, ⌈h/p⌉, ⌈w/p⌉) that the quantized layers resize to their input: one bit per patch, one forward pass.

L2B — sensitivity s_k = mean over calibration images of std(x_b) of layer k's input; thresholds are the 30th and
70th percentiles of {s_k} over the adaptive layers:

    b_L(k) = −1 if s_k < P30,   +1 if s_k > P70,   0 otherwise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..adaptive.complexity import patch_means, sobel_gradients


def sobel_complexity_map(img: torch.Tensor) -> torch.Tensor:
    """Per-pixel (|G_x| + |G_y|)/2 ×10³ of the gray image: (B, 3, h, w) in [−1, 1] → (B, 1, h, w)."""
    gx, gy = sobel_gradients(img)
    return (gx.abs() + gy.abs()) / 2 * 1e3


def image_complexity(img: torch.Tensor, patch: int | None = None) -> torch.Tensor:
    """AdaBM's c(I): (B,) per image, or (B, 1, ⌈h/p⌉, ⌈w/p⌉) per patch×patch patch (edge patches are smaller)."""
    cmap = sobel_complexity_map(img)
    if patch is None:
        return cmap.mean(dim=(1, 2, 3))
    return patch_means(cmap, patch).unsqueeze(1)


class ImageToBit(nn.Module):
    """b_I from complexity with percentile thresholds ``lower``/``upper`` (learnable; see the module docstring)."""

    def __init__(self, percentile: float = 10.0, ema_beta: float = 0.9) -> None:
        super().__init__()
        if not 0 < percentile < 50:
            raise ValueError(f"percentile must be in (0, 50), got {percentile}")
        self.percentile, self.ema_beta = percentile, ema_beta
        self.lower = nn.Parameter(torch.tensor(0.0))
        self.upper = nn.Parameter(torch.tensor(1.0))
        self.calib_batches = 0

    @torch.no_grad()
    def calibrate(self, complexity: torch.Tensor) -> None:
        """Update l, u with the p and 1 − p quantiles of a batch of complexities (EMA β after the first batch)."""
        c = complexity.detach().flatten().float()
        q = torch.quantile(c, torch.tensor([self.percentile / 100, 1 - self.percentile / 100]))
        if self.calib_batches == 0:
            self.lower.fill_(float(q[0]))
            self.upper.fill_(float(q[1]))
        else:
            self.lower.mul_(self.ema_beta).add_((1 - self.ema_beta) * float(q[0]))
            self.upper.mul_(self.ema_beta).add_((1 - self.ema_beta) * float(q[1]))
        self.calib_batches += 1

    def forward(self, complexity: torch.Tensor) -> torch.Tensor:
        """b_I ∈ {−1, 0, +1} (same shape as ``complexity``) with the tanh straight-through gradient."""
        l, u = self.lower, self.upper
        soft = torch.tanh((complexity - (u + l) / 2) * 2 / (u - l).clamp_min(1e-6))
        hard = (complexity > u).to(complexity.dtype) - (complexity < l).to(complexity.dtype)
        return soft + (hard - soft).detach()


def layer_bits(sensitivities: list[float] | np.ndarray, percentile: float = 30.0) -> list[int]:
    """b_L(k) ∈ {−1, 0, +1} from the layer sensitivities s_k and their ``percentile`` / 100 − ``percentile``
    percentiles (``np.percentile``, linear interpolation, as AdaBM's trainer)."""
    s = np.asarray(sensitivities, dtype=float)
    if s.ndim != 1 or s.size == 0:
        raise ValueError("need a non-empty 1-D list of layer sensitivities")
    if not 0 < percentile < 50:
        raise ValueError(f"percentile must be in (0, 50), got {percentile}")
    lo, hi = np.percentile(s, percentile), np.percentile(s, 100 - percentile)
    return [(-1 if v < lo else 1 if v > hi else 0) for v in s]
