"""Overlapping tiles: where they sit, how to cut an image into them and how to merge them back.

A tile grid covers an (H, W) image with windows of size (th, tw) whose starts are spaced by the stride
``tile − overlap``; the last window of each axis is snapped to the border, so every pixel is covered and no
window sticks out. Merging is a normalised weighted sum (AdaDiffSR's Gaussian-weighted region merging):

    x(p) = Σ_k w_k(p − o_k) · x_k(p − o_k) / Σ_k w_k(p − o_k)

with w a 2-D Gaussian centred on the tile (σ = ``sigma_frac`` · tile size) — so each pixel is dominated by the tile
whose centre is nearest and seams fade out — or w ≡ 1 (uniform averaging, as ResShift's chopper), or ``"last"``
(no blending: each pixel is taken from the last tile covering it; with zero overlap this is plain stitching).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

MergeMode = Literal["gaussian", "uniform", "last"]


def axis_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: 0, s, 2s, … with s = tile − overlap, the last one snapped to size − tile."""
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Tiles of size (tile_h, tile_w) covering an (height, width) image; ``positions`` are (top, left)."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    positions: tuple[tuple[int, int], ...]

    @classmethod
    def cover(cls, height: int, width: int, tile: int, overlap: int) -> "TileGrid":
        """The grid for an image; an image no larger than ``tile`` is a single tile of its own size."""
        th, tw = min(tile, height), min(tile, width)
        tops = axis_starts(height, th, min(overlap, th - 1) if th < tile else overlap)
        lefts = axis_starts(width, tw, min(overlap, tw - 1) if tw < tile else overlap)
        return cls(height, width, th, tw, tuple((t, l) for t in tops for l in lefts))

    def __len__(self) -> int:
        return len(self.positions)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(1, C, H, W) → (N, C, tile_h, tile_w), tiles in ``positions`` order."""
        if x.shape[0] != 1 or tuple(x.shape[-2:]) != (self.height, self.width):
            raise ValueError(f"expected (1, C, {self.height}, {self.width}), got {tuple(x.shape)}")
        return torch.cat([x[:, :, t : t + self.tile_h, l : l + self.tile_w] for t, l in self.positions])

    def weights(self, mode: MergeMode = "gaussian", sigma_frac: float = 0.3) -> torch.Tensor:
        """The per-tile weight window (tile_h, tile_w): Gaussian exp(−d²/2σ²) with σ = sigma_frac·size, or ones."""
        if mode != "gaussian":
            return torch.ones(self.tile_h, self.tile_w)

        def g(n: int) -> torch.Tensor:
            c = (n - 1) / 2
            x = torch.arange(n, dtype=torch.float64)
            return torch.exp(-((x - c) ** 2) / (2 * (sigma_frac * n) ** 2))

        return (g(self.tile_h)[:, None] * g(self.tile_w)[None, :]).float()

    def merge(self, tiles: torch.Tensor, mode: MergeMode = "gaussian", sigma_frac: float = 0.3) -> torch.Tensor:
        """(N, C, tile_h, tile_w) → (1, C, H, W) by the normalised weighted sum in the module docstring."""
        if tiles.shape[0] != len(self) or tuple(tiles.shape[-2:]) != (self.tile_h, self.tile_w):
            raise ValueError(f"expected ({len(self)}, C, {self.tile_h}, {self.tile_w}), got {tuple(tiles.shape)}")
        C = tiles.shape[1]
        out = torch.zeros(1, C, self.height, self.width, dtype=tiles.dtype, device=tiles.device)
        if mode == "last":
            for k, (t, l) in enumerate(self.positions):
                out[:, :, t : t + self.tile_h, l : l + self.tile_w] = tiles[k]
            return out
        if mode not in ("gaussian", "uniform"):
            raise ValueError(f"merge mode must be 'gaussian', 'uniform' or 'last', got {mode!r}")
        w = self.weights(mode, sigma_frac).to(tiles)
        norm = torch.zeros(1, 1, self.height, self.width, dtype=tiles.dtype, device=tiles.device)
        for k, (t, l) in enumerate(self.positions):
            out[:, :, t : t + self.tile_h, l : l + self.tile_w] += w * tiles[k]
            norm[:, :, t : t + self.tile_h, l : l + self.tile_w] += w
        return out / norm

    def coverage(self) -> torch.Tensor:
        """How many tiles cover each pixel, (H, W) int — useful to draw the grid."""
        c = torch.zeros(self.height, self.width, dtype=torch.int32)
        for t, l in self.positions:
            c[t : t + self.tile_h, l : l + self.tile_w] += 1
        return c
