"""AdaSR's image gradient, the map both kinds of complexity estimator start from.

The hand-made estimators of :mod:`adasr.adaptive.complexity` and the learned one of :mod:`adasr.adaptive.learned`
(whose input features include log of this map) share it; it lives here so that neither of those two modules has to
import the other one back (:mod:`~adasr.adaptive.complexity` imports :mod:`~adasr.adaptive.learned` to build the
``learned`` estimator). Both functions are re-exported by :mod:`adasr.adaptive.complexity`.

On the condition up(LR), (B, 3, H, W) in [−1, 1]:

* BT.601 gray in [0, 1]:  I = 0.299 R' + 0.587 G' + 0.114 B'  with R' = (R + 1)/2 etc.;
* the gradient map (B, 1, H, W):  C = (|I(x+1, y) − I(x, y)| + |I(x, y+1) − I(x, y)|) / 2, forward differences,
  L1, replicate-padded back to H×W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_rgb(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is an RGB batch (B, 3, H, W)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an RGB batch (B, 3, H, W), got {tuple(x.shape)}")


def gray(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma in [0, 1]: (B, 3, H, W) in [−1, 1] → (B, 1, H, W), I = 0.299 R + 0.587 G + 0.114 B."""
    check_rgb(x)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x + 1) / 2 * w).sum(1, keepdim=True)


def gradient_map(x: torch.Tensor) -> torch.Tensor:
    """AdaSR's gradient map (B, 1, H, W): (|∂x I| + |∂y I|)/2 with forward differences, replicate-padded."""
    i = gray(x)
    gx = (i[..., :, 1:] - i[..., :, :-1]).abs()
    gy = (i[..., 1:, :] - i[..., :-1, :]).abs()
    gx = F.pad(gx, (0, 1, 0, 0), mode="replicate")
    gy = F.pad(gy, (0, 0, 0, 1), mode="replicate")
    return (gx + gy) / 2


__all__ = ["check_rgb", "gradient_map", "gray"]
