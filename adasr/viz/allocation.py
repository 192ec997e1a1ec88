"""Figures for AdaSR's per-tile step allocation (notebook 05): step maps, tiles refined over time, cost vs quality.

Every plotting function takes data (images, per-tile values, a tile grid, metric values, the snapshots of
:mod:`adasr.sampling.refinement` recorded while sampling), draws with matplotlib and returns the ``Figure``; none
samples a model or computes a perceptual metric.

Conventions:

* a tile p has a normalised complexity C_p ∈ [0, 1] and a budget N_p = N_min + (N_max − N_min)·f(C_p) with
  f(c) = c (linear), c² (exponential) or clip((c − c_lo)/(c_hi − c_lo), 0, 1) (threshold), rounded
  (:func:`adasr.adaptive.allocation.allocate_steps`);
* per-tile values are drawn as image-sized maps with :func:`adasr.adaptive.allocation.tile_value_map` (each
  pixel shows the tile whose centre is nearest, the tile that dominates the Gaussian merge there);
* cost is counted in tile-evaluations (one tile through the UNet once); a uniform N-step DDIM run costs N per
  tile, an allocation costs Σ_p N_p / P per tile on average;
* quality: PSNR-Y in dB (higher is better), LPIPS (lower is better), keys ``psnr_y`` and ``lpips``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..adaptive.allocation import tile_value_map
from ..adaptive.equal_budget import uniform_at
from ..sampling.tiles import TileGrid
from .common import METRIC_LABELS, as_display, metric_line, no_ticks

if TYPE_CHECKING:  # pragma: no cover
    from ..sampling.refinement import Snapshot

Image = Any  # uint8 (H, W, 3) ndarray or float tensor (1|3, H, W) in [−1, 1]

#: imshow interpolation for photographs: smooth when downsampled for display (and a smaller PNG than "nearest")
PHOTO = "antialiased"
MAPPING_STYLE = {"linear": ("tab:blue", "s"), "threshold": ("tab:orange", "^"), "exponential": ("tab:green", "D")}


def tile_centres(grid: TileGrid) -> np.ndarray:
    """(N, 2) array of tile centres (x, y) in pixel coordinates (imshow's), in ``grid.positions`` order."""
    return np.array([(l + (grid.tile_w - 1) / 2, t + (grid.tile_h - 1) / 2) for t, l in grid.positions], dtype=float)


def _grid_lines(ax, grid: TileGrid, color: str = "white") -> None:
    """Draw the tile edges (the start and end of every tile) over an image panel."""
    rows = sorted({t for t, _ in grid.positions} | {t + grid.tile_h for t, _ in grid.positions})
    cols = sorted({c for _, c in grid.positions} | {c + grid.tile_w for _, c in grid.positions})
    for y in rows:
        if 0 < y < grid.height:
            ax.axhline(y - 0.5, color=color, lw=0.4, alpha=0.6)
    for x in cols:
        if 0 < x < grid.width:
            ax.axvline(x - 0.5, color=color, lw=0.4, alpha=0.6)


# ----------------------------------------------------------------------------------------------------------------
# Step map: up(LR), C_p and N_p per tile
# ----------------------------------------------------------------------------------------------------------------


def cost_line(budgets: Sequence[int], n_max: int) -> str:
    """'Σ N_p = 212 tile-evaluations (uniform N_max=20: 500, 2.36× fewer)' for the budgets of one image."""
    total, full = int(sum(budgets)), int(n_max) * len(budgets)
    return f"Σ N_p = {total} tile-evaluations (uniform N_max={n_max}: {full}, {full / max(total, 1):.2f}× fewer)"


def step_map_figure(
    up: Image,
    complexity: Sequence[float] | torch.Tensor,
    budgets: Sequence[int],
    grid: TileGrid,
    *,
    n_min: int,
    n_max: int,
    sr: Image | None = None,
    hr: Image | None = None,
    metrics: Mapping[str, float] | None = None,
    title: str | None = None,
    annotate: bool = True,
    panel: float = 2.3,
) -> Figure:
    """up(LR) with the tile grid, the per-tile complexity C_p, the step map N_p, and optionally the SR and HR.

    Args:
        up: the condition up(LR), (H, W) = (grid.height, grid.width).
        complexity: C_p ∈ [0, 1] per tile (N,) in ``grid.positions`` order.
        budgets: N_p per tile (N,).
        grid: the sampler's tile grid.
        n_min, n_max: the allocation's range (the step map's colour range; the cost line's uniform reference).
        sr, hr: the sampled result and the ground truth (optional panels).
        metrics: ``{"psnr_y": .., "lpips": ..}`` of ``sr`` (shown in its title).
        title: figure title; the default is :func:`cost_line`.
        annotate: write each tile's value at its centre.
        panel: inches per panel.

    The C_p and N_p panels are :func:`~adasr.adaptive.allocation.tile_value_map` images (H, W).
    """
    c = np.asarray(torch.as_tensor(complexity, dtype=torch.float32).cpu(), dtype=float)
    b = np.asarray(budgets, dtype=int)
    if c.shape != (len(grid),) or b.shape != (len(grid),):
        raise ValueError(f"need one complexity and one budget per tile ({len(grid)}), got {c.shape} and {b.shape}")
    base = as_display(up)
    if base.shape[:2] != (grid.height, grid.width):
        raise ValueError(f"up(LR) is {base.shape[:2]}, the grid covers {(grid.height, grid.width)}")
    c_map = tile_value_map(torch.from_numpy(c).float(), grid).numpy()
    n_map = tile_value_map(torch.from_numpy(b).float(), grid).numpy()
    panels = 3 + (sr is not None) + (hr is not None)
    fig, axes = plt.subplots(1, panels, figsize=(panel * panels + 0.6, panel + 0.7), squeeze=False)
    axes = axes[0]
    axes[0].imshow(base, interpolation=PHOTO)
    _grid_lines(axes[0], grid)
    axes[0].set_title(f"up(LR), {len(grid)} tiles {grid.tile_h}²", fontsize=8)
    centres = tile_centres(grid)
    for ax, data, cmap, lo, hi, label, fmt in (
        (axes[1], c_map, "magma", 0.0, 1.0, "complexity C_p", "{:.2f}"),
        (axes[2], n_map, "viridis", n_min, n_max, f"step map N_p ∈ [{n_min}, {n_max}]", "{:.0f}"),
    ):
        im = ax.imshow(data, cmap=cmap, vmin=lo, vmax=max(hi, lo + 1e-6))
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.ax.tick_params(labelsize=6)
        ax.set_title(label, fontsize=8)
        if annotate:
            vals = c if ax is axes[1] else b
            for (x, y), v in zip(centres, vals):
                frac = (v - lo) / max(hi - lo, 1e-6)
                ax.text(x, y, fmt.format(v), ha="center", va="center", fontsize=6,
                        color="black" if frac > 0.6 else "white")
    k = 3
    if sr is not None:
        axes[k].imshow(as_display(sr), interpolation=PHOTO)
        line = metric_line(metrics)
        axes[k].set_title("SR (allocation)" + (f"\n{line}" if line else ""), fontsize=8)
        k += 1
    if hr is not None:
        axes[k].imshow(as_display(hr), interpolation=PHOTO)
        axes[k].set_title("HR", fontsize=8)
    for ax in axes:
        no_ticks(ax)
    fig.suptitle(title if title is not None else cost_line(b.tolist(), n_max), fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Refinement over time: the merged current x̂0 after chosen iterations
# ----------------------------------------------------------------------------------------------------------------


def refinement_figure(
    snapshots: Sequence[Snapshot],
    grid: TileGrid,
    *,
    iterations: int | Sequence[int] | None = None,
    zoom: tuple[int, int, int] | None = None,
    panel: float = 1.7,
) -> Figure:
    """One column per snapshot: the merged current x̂0 after that iteration with the finished tiles tinted green
    (a dot at each finished tile's centre) and, when ``zoom`` is given, the same window of it below (no tint).

    Args:
        snapshots: from :class:`~adasr.sampling.refinement.RefinementRecorder` (or
            :func:`~adasr.sampling.refinement.record_refinement`), in iteration order.
        grid: the sampler's tile grid.
        iterations: which snapshots to show (one int or a list); all when ``None``.
        zoom: ``(top, left, size)`` in pixels: a second row showing that window, to see detail appear.
        panel: inches per panel.

    The tint is ``tile_value_map(done, grid)`` (1 on the pixels of finished tiles): a finished tile no longer
    enters the UNet batch and its pixels stop changing, except where they blend with running neighbours.
    """
    if isinstance(iterations, int):
        iterations = [iterations]
    by_iter = {s.iteration: s for s in snapshots}
    missing = [i for i in (iterations or []) if i not in by_iter]
    if missing:
        raise KeyError(f"no snapshot after iteration(s) {missing}; have {sorted(by_iter)}")
    chosen = [by_iter[i] for i in iterations] if iterations is not None else list(snapshots)
    if not chosen:
        raise ValueError("no snapshots to show")
    rows = 2 if zoom is not None else 1
    fig, axes = plt.subplots(rows, len(chosen), figsize=(panel * len(chosen), rows * panel + 0.5), squeeze=False)
    centres = tile_centres(grid)
    for c, s in enumerate(chosen):
        if len(s.done) != len(grid):
            raise ValueError(f"snapshot {s.iteration} has {len(s.done)} tiles, the grid {len(grid)}")
        ax = axes[0, c]
        done_map = tile_value_map([float(d) for d in s.done], grid).numpy()
        ax.imshow(s.image, interpolation=PHOTO)
        tint = np.zeros((*done_map.shape, 4))
        tint[..., 1] = 0.8
        tint[..., 3] = 0.25 * done_map
        ax.imshow(tint)
        pts = np.array([p for p, d in zip(centres, s.done) if d]).reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=7, c="lime", edgecolors="black", linewidths=0.4)
        ax.set_title(f"after iteration {s.iteration}\n{s.running}/{len(s.done)} tiles running", fontsize=7.5)
        no_ticks(ax)
        if zoom is not None:
            t, left, size = zoom
            axz = axes[1, c]
            axz.imshow(s.image[t : t + size, left : left + size], interpolation=PHOTO)
            if c == 0:
                axz.set_ylabel(f"zoom [{t}:{t + size}, {left}:{left + size}]", fontsize=7)
            no_ticks(axz)
            if c == 0:
                ax.add_patch(Rectangle((left - 0.5, t - 0.5), size, size, fill=False, ec="yellow", lw=0.8))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Cost vs quality against the uniform control
# ----------------------------------------------------------------------------------------------------------------


def cost_quality_figure(
    uniform: Mapping[str, Sequence[float]],
    points: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("lpips", "psnr_y"),
    title: str | None = None,
    inches: float = 3.6,
) -> Figure:
    """Mean tile-evaluations per tile against each metric: the uniform DDIM sweep as a line (each point labelled
    with its N), every allocation setting as a marker (colour and shape by mapping) joined by a dotted segment
    to the uniform curve at the same budget — the equal-average-budget control, read off the given ``uniform``
    data with :func:`~adasr.adaptive.equal_budget.uniform_at` (linear interpolation in N).

    Args:
        uniform: ``{"steps": [N...], "lpips": [...], "psnr_y": [...]}``.
        points: ``[{"label": "3–20", "mapping": "linear", "steps": mean N_p, "lpips": .., "psnr_y": ..}, ...]``.
        metrics: the keys to plot, one panel each.
        title: optional figure title.
        inches: panel height (width is 1.25×).
    """
    n = np.asarray(uniform["steps"], dtype=float)
    order = np.argsort(n)
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.25 * inches * len(metrics), inches), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        y = np.asarray(uniform[key], dtype=float)
        if y.shape != n.shape:
            raise ValueError(f"uniform: {len(n)} step counts but {len(y)} {key} values")
        ax.plot(n[order], y[order], "o-", color="k", ms=4, lw=1.2, label="uniform DDIM")
        for xi, yi in zip(n[order], y[order]):
            ax.annotate(f"{xi:g}", (xi, yi), textcoords="offset points", xytext=(0, 5), fontsize=6.5, color="0.3",
                        ha="center")
        seen: set[str] = set()
        for p in points:
            mapping = p.get("mapping", "linear")
            color, marker = MAPPING_STYLE.get(mapping, ("tab:purple", "o"))
            x, v = float(p["steps"]), float(p[key])
            ax.plot([x, x], [uniform_at(uniform, x, key), v], ":", color=color, lw=1)
            ax.plot([x], [v], marker=marker, color=color, ls="none", ms=6,
                    label=f"allocation, {mapping}" if mapping not in seen else "_nolegend_")
            seen.add(mapping)
            ax.annotate(str(p.get("label", "")), (x, v), textcoords="offset points", xytext=(4, -9), fontsize=6.5,
                        color=color)
        ax.set_xlabel("UNet tile-evaluations per tile (mean)")
        ax.set_ylabel(METRIC_LABELS.get(key, key))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
