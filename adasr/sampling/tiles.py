"""Overlapping tiles: where they sit, how to cut an image into them and how to merge them back.

A tile grid covers an (H, W) image with windows of size (th, tw) whose starts are spaced by the stride
``tile − overlap``; the last window of each axis is snapped to the border, so every pixel is covered and no
window sticks out. Merging is a normalised weighted sum (AdaDiffSR's Gaussian-weighted region merging):

    x(p) = Σ_k w_k(p − o_k) · x_k(p − o_k) / Σ_k w_k(p − o_k)

with w a 2-D Gaussian centred on the tile (σ = ``sigma_frac`` · tile size) — so each pixel is dominated by the tile
whose centre is nearest and seams fade out — or w ≡ 1 (uniform averaging, as ResShift's chopper), or ``"last"``
(no blending: each pixel is taken from the last tile covering it; with zero overlap this is plain stitching).

:meth:`TileGrid.merge_subset` applies the same sum to a chosen subset of the tiles (the sampler's ``shared-t``
region integration merges the x_t of the tiles that sit at the same timestep), and :meth:`TileGrid.crop` cuts
chosen tiles' windows back out of a canvas.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal, Sequence

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

    def crop(self, canvas: torch.Tensor, indices: int | Sequence[int]) -> torch.Tensor:
        """Cut tile windows out of a canvas (1, C, H, W): an int index → (C, tile_h, tile_w); a sequence of M
        indices → (M, C, tile_h, tile_w) in that order. ``crop(x, range(len(grid)))`` equals :meth:`split`."""
        if canvas.ndim != 4 or canvas.shape[0] != 1 or tuple(canvas.shape[-2:]) != (self.height, self.width):
            raise ValueError(f"expected (1, C, {self.height}, {self.width}), got {tuple(canvas.shape)}")
        if isinstance(indices, numbers.Integral):
            t, l = self.positions[self._indices([indices])[0]]
            return canvas[0, :, t : t + self.tile_h, l : l + self.tile_w]
        idx = self._indices(indices)
        return torch.cat([canvas[:, :, t : t + self.tile_h, l : l + self.tile_w]
                          for t, l in (self.positions[k] for k in idx)])

    def _indices(self, indices: Sequence[int]) -> list[int]:
        idx = [int(k) for k in indices]
        if any(k < 0 or k >= len(self) for k in idx):
            raise ValueError(f"tile indices must be in [0, {len(self)}), got {idx}")
        return idx

    def _weighted_sums(self, tiles: torch.Tensor, indices: Sequence[int], mode: MergeMode,
                       sigma_frac: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ_k w·x_k, Σ_k w) over the tiles ``indices`` (``tiles[j]`` at ``positions[indices[j]]``), each
        (1, C|1, H, W); for ``"last"`` the painted canvas and the coverage count instead."""
        C = tiles.shape[1]
        out = torch.zeros(1, C, self.height, self.width, dtype=tiles.dtype, device=tiles.device)
        norm = torch.zeros(1, 1, self.height, self.width, dtype=tiles.dtype, device=tiles.device)
        if mode == "last":
            for j, k in enumerate(indices):
                t, l = self.positions[k]
                out[:, :, t : t + self.tile_h, l : l + self.tile_w] = tiles[j]
                norm[:, :, t : t + self.tile_h, l : l + self.tile_w] += 1
            return out, norm
        if mode not in ("gaussian", "uniform"):
            raise ValueError(f"merge mode must be 'gaussian', 'uniform' or 'last', got {mode!r}")
        w = self.weights(mode, sigma_frac).to(tiles)
        for j, k in enumerate(indices):
            t, l = self.positions[k]
            out[:, :, t : t + self.tile_h, l : l + self.tile_w] += w * tiles[j]
            norm[:, :, t : t + self.tile_h, l : l + self.tile_w] += w
        return out, norm

    def merge(self, tiles: torch.Tensor, mode: MergeMode = "gaussian", sigma_frac: float = 0.3) -> torch.Tensor:
        """(N, C, tile_h, tile_w) → (1, C, H, W) by the normalised weighted sum in the module docstring."""
        if tiles.shape[0] != len(self) or tuple(tiles.shape[-2:]) != (self.tile_h, self.tile_w):
            raise ValueError(f"expected ({len(self)}, C, {self.tile_h}, {self.tile_w}), got {tuple(tiles.shape)}")
        out, norm = self._weighted_sums(tiles, range(len(self)), mode, sigma_frac)
        return out if mode == "last" else out / norm

    def merge_subset(self, tiles: torch.Tensor, indices: Sequence[int], mode: MergeMode = "gaussian",
                     sigma_frac: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
        """Merge only some tiles: ``tiles`` (M, C, tile_h, tile_w), ``tiles[j]`` sitting at
        ``positions[indices[j]]`` (M distinct indices) → ``(canvas, coverage)``.

        ``coverage`` (H, W) int32 counts the given tiles covering each pixel. Where it is > 0,

            canvas(p) = Σ_j w(p − o_j) · x_j(p − o_j) / Σ_j w(p − o_j)      (sums over the given tiles only)

        — the formula of :meth:`merge`, with its weights w (``mode``, ``sigma_frac``); for ``"last"`` the pixel of
        the last given tile covering it. Where coverage is 0 the canvas (1, C, H, W) is 0. With every index in
        ``positions`` order, ``canvas`` equals :meth:`merge`'s result bit for bit.
        """
        idx = self._indices(indices)
        if len(set(idx)) != len(idx):
            raise ValueError(f"tile indices must be distinct, got {idx}")
        if tiles.ndim != 4 or tiles.shape[0] != len(idx) or tuple(tiles.shape[-2:]) != (self.tile_h, self.tile_w):
            raise ValueError(f"expected ({len(idx)}, C, {self.tile_h}, {self.tile_w}), got {tuple(tiles.shape)}")
        out, norm = self._weighted_sums(tiles, idx, mode, sigma_frac)
        coverage = self.coverage(idx).to(tiles.device)
        if mode != "last":
            out = torch.where(coverage > 0, out / norm.clamp_min(torch.finfo(norm.dtype).tiny), out)
        return out, coverage

    def coverage(self, indices: Sequence[int] | None = None) -> torch.Tensor:
        """How many tiles (of ``indices``; default all) cover each pixel, (H, W) int32 — useful to draw the grid."""
        c = torch.zeros(self.height, self.width, dtype=torch.int32)
        chosen = self.positions if indices is None else [self.positions[k] for k in self._indices(indices)]
        for t, l in chosen:
            c[t : t + self.tile_h, l : l + self.tile_w] += 1
        return c
