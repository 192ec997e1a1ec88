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
    axes[0].set_title(f"up(LR), {len(grid)} tiles {grid.tile_h}²", fontsize=10)
    centres = tile_centres(grid)
    for ax, data, cmap, lo, hi, label, fmt in (
        (axes[1], c_map, "magma", 0.0, 1.0, "complexity C_p", "{:.2f}"),
        (axes[2], n_map, "viridis", n_min, n_max, f"step map N_p ∈ [{n_min}, {n_max}]", "{:.0f}"),
    ):
        im = ax.imshow(data, cmap=cmap, vmin=lo, vmax=max(hi, lo + 1e-6))
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.ax.tick_params(labelsize=8)
        ax.set_title(label, fontsize=10)
        if annotate:
            vals = c if ax is axes[1] else b
            for (x, y), v in zip(centres, vals):
                frac = (v - lo) / max(hi - lo, 1e-6)
                ax.text(x, y, fmt.format(v), ha="center", va="center", fontsize=8 if len(vals) <= 25 else 6,
                        color="black" if frac > 0.6 else "white")
    k = 3
    if sr is not None:
        axes[k].imshow(as_display(sr), interpolation=PHOTO)
        line = metric_line(metrics)
        axes[k].set_title("SR (allocation)" + (f"\n{line}" if line else ""), fontsize=10)
        k += 1
    if hr is not None:
        axes[k].imshow(as_display(hr), interpolation=PHOTO)
        axes[k].set_title("HR", fontsize=10)
    for ax in axes:
        no_ticks(ax)
    fig.suptitle(title if title is not None else cost_line(b.tolist(), n_max), fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Refinement over time: the merged current x̂0 after chosen iterations
# ----------------------------------------------------------------------------------------------------------------


def tile_cells(grid: TileGrid) -> list[tuple[int, int, int, int]]:
    """Each tile's own cell ``(top, left, bottom, right)`` (end-exclusive, pixels), in ``grid.positions`` order: the
    grid's rows and columns split halfway between neighbouring tile centres (boundary ⌈(c_i + c_{i+1})/2⌉ along each
    axis), so the cells tile the image without overlap and each lies inside its tile, around its centre. Outlining
    them marks tiles without hiding the pixels."""

    def bounds(starts: list[int], size: int, length: int) -> dict[int, tuple[int, int]]:
        centres = [s + (size - 1) / 2 for s in starts]
        cuts = [0] + [int(np.ceil((a + b) / 2)) for a, b in zip(centres, centres[1:])] + [length]
        return {s: (cuts[i], cuts[i + 1]) for i, s in enumerate(starts)}

    rows = bounds(sorted({t for t, _ in grid.positions}), grid.tile_h, grid.height)
    cols = bounds(sorted({c for _, c in grid.positions}), grid.tile_w, grid.width)
    return [(rows[t][0], cols[c][0], rows[t][1], cols[c][1]) for t, c in grid.positions]


#: the colour of the outline that marks finished tiles in :func:`refinement_figure`
FINISHED = "#ffd400"


def refinement_figure(
    snapshots: Sequence[Snapshot],
    grid: TileGrid,
    *,
    iterations: int | Sequence[int] | None = None,
    zoom: tuple[int, int, int] | None = None,
    panel: float = 2.3,
) -> Figure:
    """One column per snapshot: the merged current x̂0 after that iteration, each finished tile's cell outlined
    (its pixels left as they are, so the texture stays comparable) and, when ``zoom`` is given, the same window of
    it below, unmarked.

    Args:
        snapshots: from :class:`~adasr.sampling.refinement.RefinementRecorder` (or
            :func:`~adasr.sampling.refinement.record_refinement`), in iteration order.
        grid: the sampler's tile grid.
        iterations: which snapshots to show (one int or a list); all when ``None``.
        zoom: ``(top, left, size)`` in pixels: a second row showing that window, to see detail appear; its place
            is drawn as a white square on the first column.
        panel: inches per panel.

    The outlines are the cells of :func:`tile_cells` (the part of the image nearest each tile's centre), inset
    by 3 pixels so that neighbouring finished cells stay apart: a finished tile no longer enters the UNet batch and
    its pixels stop changing, except where they blend with running neighbours.
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
    fig, axes = plt.subplots(rows, len(chosen), figsize=(panel * len(chosen), rows * panel + 0.7), squeeze=False)
    cells = tile_cells(grid)
    inset = 3
    for c, s in enumerate(chosen):
        if len(s.done) != len(grid):
            raise ValueError(f"snapshot {s.iteration} has {len(s.done)} tiles, the grid {len(grid)}")
        ax = axes[0, c]
        ax.imshow(s.image, interpolation=PHOTO)
        for (t, left, b, r), d in zip(cells, s.done):
            if d:
                ax.add_patch(Rectangle((left - 0.5 + inset, t - 0.5 + inset), r - left - 2 * inset,
                                       b - t - 2 * inset, fill=False, ec=FINISHED, lw=1.2, label="finished"))
        ax.set_title(f"after iteration {s.iteration}\n{s.running}/{len(s.done)} tiles running", fontsize=9)
        no_ticks(ax)
        if zoom is not None:
            t, left, size = zoom
            axz = axes[1, c]
            axz.imshow(s.image[t : t + size, left : left + size], interpolation=PHOTO)
            if c == 0:
                axz.set_ylabel(f"zoom [{t}:{t + size}, {left}:{left + size}]", fontsize=8)
                ax.add_patch(Rectangle((left - 0.5, t - 0.5), size, size, fill=False, ec="white", lw=1.0, ls="--"))
            no_ticks(axz)
    fig.legend(handles=[Rectangle((0, 0), 1, 1, fill=False, ec=FINISHED, lw=1.5)],
               labels=["finished tile: left the UNet batch (outlined; its pixels are not covered)"],
               loc="lower center", ncol=1, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
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
    inches: float = 3.8,
    label_size: float = 8.0,
) -> Figure:
    """Mean tile-evaluations per tile against each metric: the uniform DDIM sweep as a line (each point labelled
    with its N), every allocation setting as a marker joined by a dotted segment to the uniform curve at the same
    budget — the equal-average-budget control, read off the given ``uniform`` data with
    :func:`~adasr.adaptive.equal_budget.uniform_at` (linear interpolation in N). Labels are placed where they
    cover no marker, line or other label (:func:`adasr.viz.adaptive.place_labels`).

    Args:
        uniform: ``{"steps": [N...], "lpips": [...], "psnr_y": [...]}``.
        points: ``[{"label": "3–20", "mapping": "linear", "steps": mean N_p, "lpips": .., "psnr_y": ..}, ...]``;
            optional keys: ``"group"`` (the legend entry and colour; default ``"allocation, <mapping>"``, the
            colour and marker of :data:`MAPPING_STYLE`) and ``"default": True`` (drawn larger, black edge).
        metrics: the keys to plot, one panel each.
        title: optional figure title.
        inches: panel height (width is 1.3×).
        label_size: font size of the point labels.
    """
    from .adaptive import place_labels

    n = np.asarray(uniform["steps"], dtype=float)
    order = np.argsort(n)
    extra = [("tab:blue", "s"), ("tab:brown", "o"), ("tab:pink", "D"), ("tab:purple", "v"), ("tab:olive", "P")]
    styles: dict[str, tuple[str, str]] = {}
    for p in points:
        mapping = p.get("mapping", "linear")
        group = p.get("group", f"allocation, {mapping}")
        if group not in styles:
            styles[group] = (MAPPING_STYLE[mapping] if "group" not in p and mapping in MAPPING_STYLE
                             else extra[len(styles) % len(extra)])
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.3 * inches * len(metrics), inches + 0.3), squeeze=False)
    jobs_per_ax = []
    for ax, key in zip(axes[0], metrics):
        y = np.asarray(uniform[key], dtype=float)
        if y.shape != n.shape:
            raise ValueError(f"uniform: {len(n)} step counts but {len(y)} {key} values")
        ax.plot(n[order], y[order], "o-", color="k", ms=4, lw=1.2, label="uniform DDIM")
        jobs = [(float(xi), float(yi), f"{xi:g}", "0.35", 2.5) for xi, yi in zip(n[order], y[order])]
        seen: set[str] = set()
        for p in points:
            mapping = p.get("mapping", "linear")
            group = p.get("group", f"allocation, {mapping}")
            color, marker = styles[group]
            x, v = float(p["steps"]), float(p[key])
            ax.plot([x, x], [uniform_at(uniform, x, key), v], ":", color=color, lw=1)
            big = bool(p.get("default"))
            ax.plot([x], [v], marker=marker, color=color, ls="none", ms=9 if big else 6,
                    markeredgecolor="black" if big else color, markeredgewidth=1.2 if big else 1.0,
                    label=group if group not in seen else "_nolegend_")
            seen.add(group)
            jobs.append((x, v, str(p.get("label", "")), color, 5.0 if big else 3.5))
        ax.set_xlabel("UNet tile-evaluations per tile (mean)", fontsize=10)
        ax.set_ylabel(METRIC_LABELS.get(key, key), fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        jobs_per_ax.append((ax, jobs))
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    for ax, jobs in jobs_per_ax:
        place_labels(ax, [j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs],
                     colors=[j[3] for j in jobs], radii=[j[4] for j in jobs], fontsize=label_size)
    return fig
