"""A seam measure for tiled images: how much stronger the luma gradient is across the tile borders than elsewhere.

:func:`seam_score` looks at the luma Y (ITU-R BT.601, :func:`adasr.metrics.rgb_to_y`) of an image and at the
*adjacent pixel pairs*: a horizontal pair is (i, j)–(i, j+1), a vertical pair (i, j)–(i+1, j); its gradient is
|ΔY| between the two pixels. A pair is a **seam pair** when it straddles a tile border that can show:

* ``merge="gaussian"`` or ``"uniform"`` (blended tiles): when the two pixels are covered by different sets of
  tiles — i.e. some tile's window ends between them. For a tile at (top t, left l) of size (th, tw) these are the
  horizontal pairs (i, l−1)–(i, l) if l > 0 and (i, l+tw−1)–(i, l+tw) if l + tw < W, for rows t ≤ i < t + th, and
  likewise the vertical pairs (t−1, j)–(t, j) and (t+th−1, j)–(t+th, j) for columns l ≤ j < l + tw. (A blended
  merge changes its weights abruptly only there: the Gaussian window does not fall to 0 at its edge.)
* ``merge="last"`` (stitched tiles, each pixel from the last tile covering it in ``positions`` order): when the two
  pixels come from different tiles — only those borders are visible, the rest of a window was painted over.

Each seam pair's gradient is compared with the mean gradient of the non-seam pairs *of the same direction*
(m_x over the horizontal pairs, m_y over the vertical ones, so that an image steeper along one axis does not bias
the score by the mix of directions among the seams), and the score is the mean over all seam pairs:

    seam_score = ( Σ_{horizontal seam pairs} |ΔY| / m_x + Σ_{vertical seam pairs} |ΔY| / m_y ) / #seam pairs

i.e. the count-weighted mean of the two per-direction ratios "mean |ΔY| across the borders / mean |ΔY|
elsewhere". ≈ 1: the borders are as smooth as the image (no visible seams); > 1: seams. Any linear ramp scores 1
(every pair of a direction has the same gradient); tiles cut from two different images and stitched score far
above 1. Edge cases: a grid of one tile has no seam pairs (NaN, as when a direction with seams has no other
pair); a direction whose non-seam pairs are flat gives +inf (or ratio 1 when its seams are flat too).

The image may be the top-left (h, w) part of the grid's (H, W) canvas (the upscaler crops its padding); only pairs
with both pixels inside the image count.
"""

from __future__ import annotations

import numpy as np
import torch

from ..metrics import rgb_to_y
from .tiles import MergeMode, TileGrid


def seam_masks(grid: TileGrid, merge: MergeMode = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """The seam pairs of ``grid`` (module docstring): ``(horizontal, vertical)`` bool masks of shapes (H, W−1)
    (True at [i, j]: the pair (i, j)–(i, j+1)) and (H−1, W) (True at [i, j]: the pair (i, j)–(i+1, j))."""
    H, W, th, tw = grid.height, grid.width, grid.tile_h, grid.tile_w
    if merge == "last":
        owner = np.full((H, W), -1, dtype=np.int64)
        for k, (t, l) in enumerate(grid.positions):
            owner[t : t + th, l : l + tw] = k
        return owner[:, :-1] != owner[:, 1:], owner[:-1, :] != owner[1:, :]
    if merge not in ("gaussian", "uniform"):
        raise ValueError(f"merge must be 'gaussian', 'uniform' or 'last', got {merge!r}")
    hor = np.zeros((H, max(W - 1, 0)), dtype=bool)
    ver = np.zeros((max(H - 1, 0), W), dtype=bool)
    for t, l in grid.positions:
        if l > 0:
            hor[t : t + th, l - 1] = True
        if l + tw < W:
            hor[t : t + th, l + tw - 1] = True
        if t > 0:
            ver[t - 1, l : l + tw] = True
        if t + th < H:
            ver[t + th - 1, l : l + tw] = True
    return hor, ver


def _luma(img: np.ndarray | torch.Tensor) -> np.ndarray:
    """Y (h, w) float64 on the [0, 255] scale of uint8 (h, w, 3) or of a tensor (1, 3, h, w) in [−1, 1]."""
    if isinstance(img, torch.Tensor):
        if img.ndim != 4 or img.shape[0] != 1 or img.shape[1] != 3:
            raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(img.shape)}")
        rgb = ((img[0].detach().double().cpu().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
        return rgb_to_y(rgb)
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise TypeError(f"expected a uint8 (H, W, 3) image or a (1, 3, H, W) tensor in [-1, 1], got {a.dtype}")
    return rgb_to_y(a)


def seam_score(img: np.ndarray | torch.Tensor, grid: TileGrid, merge: MergeMode = "gaussian") -> float:
    """Mean |ΔY| across the tile borders of ``grid`` relative to the mean |ΔY| elsewhere in the same direction
    (module docstring: which pairs, the exact formula).

    ``img``: uint8 (h, w, 3), or a (1, 3, h, w) tensor in [−1, 1]; (h, w) ≤ (grid.height, grid.width), the image
    being the top-left part of the grid's canvas. ``merge``: how the tiles were merged (``"last"``: stitched).
    """
    y = _luma(img)
    h, w = y.shape
    if h > grid.height or w > grid.width:
        raise ValueError(f"image {h}×{w} is larger than the grid's {grid.height}×{grid.width}")
    hor, ver = seam_masks(grid, merge)
    hor, ver = hor[:h, : max(w - 1, 0)], ver[: max(h - 1, 0), :w]
    gx, gy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    total, count = 0.0, 0
    for g, m in ((gx, hor), (gy, ver)):
        seam, other = g[m], g[~m]
        if seam.size == 0:
            continue
        if other.size == 0:
            return float("nan")
        s, o = float(seam.mean()), float(other.mean())
        ratio = s / o if o > 0 else (1.0 if s == 0 else float("inf"))
        total += ratio * seam.size
        count += seam.size
    return total / count if count else float("nan")

__all__ = ["seam_masks", "seam_score"]
