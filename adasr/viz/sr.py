"""Figures for diffusion super-resolution (notebooks 02–03): samplers, SR comparisons, colour cast, tiling seams.

Every function takes data (images, metric values, tile grids), draws with matplotlib and returns the ``Figure``;
none samples a model or computes a perceptual metric. Images may be uint8 (H, W, 3) arrays or float tensors
(1, 3, H, W) / (3, H, W) in [−1, 1] (converted by :func:`adasr.viz.common.as_display`).

Conventions shared by the figures:

* PSNR-Y in dB (higher is better), SSIM-Y, LPIPS (lower is better), as returned by
  :func:`adasr.benchmarks.quality.quality`
  (keys ``psnr_y``, ``ssim_y``, ``lpips``);
* NFE = number of UNet evaluations (a batched call counts once);
* a colour cast is a per-channel mean error  e_c = mean_{h,w}(SR_c − HR_c)  in uint8 levels (0–255 scale):
  a well-calibrated SR model has |e_c| ≪ 1 level, an ε-prediction model that drifted has several levels;
* a tile merge is the normalised weighted sum  x(p) = Σ_k w_k(p − o_k)·x_k(p − o_k) / Σ_k w_k(p − o_k)
  of :class:`adasr.sampling.tiles.TileGrid`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..sampling.tiles import TileGrid
from .common import METRIC_LABELS, as_display, metric_line, no_ticks

Image = Any  # uint8 (H, W, 3) ndarray or float tensor (1|3, H, W) in [−1, 1]
Curve = Mapping[str, Sequence[Any]]

CHANNEL_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")


# ----------------------------------------------------------------------------------------------------------------
# Samplers: quality against the number of network evaluations
# ----------------------------------------------------------------------------------------------------------------


def quality_vs_nfe(
    curves: Mapping[str, Curve],
    *,
    reference: Mapping[str, Mapping[str, float]] | None = None,
    metrics: Sequence[str] = ("psnr_y", "lpips"),
    title: str | None = None,
    panel: tuple[float, float] = (5.2, 3.6),
) -> Figure:
    """One panel per metric against NFE (log x), one line per sampler, and one legend below the panels.

    Args:
        curves: ``{sampler: {"nfe": [...], "psnr_y": [...], "lpips": [...], "labels": [...] (optional)}}``;
            points are drawn in the order given (sort by NFE first for a left-to-right line). When a curve has
            ``labels`` (e.g. a solver tolerance), each of its points gets its own marker shape and a legend entry
            ``"{sampler} {label}"`` instead of a text label next to the point, so labels never overprint the
            points of other curves.
        reference: ``{name: {metric: value}}`` drawn as horizontal dashed lines (e.g. bicubic).
        metrics: the keys to plot, one panel each.
        title: optional figure title.
        panel: (width, height) of one panel in inches.
    """
    markers = ("s", "^", "D", "v", "P", "X", "*")
    fig, axes = plt.subplots(1, len(metrics), figsize=(panel[0] * len(metrics), panel[1]), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        for i, (name, c) in enumerate(curves.items()):
            x = np.asarray(c["nfe"], dtype=float)
            y = np.asarray(c[key], dtype=float)
            if x.shape != y.shape:
                raise ValueError(f"{name}: {len(x)} NFE values but {len(y)} {key} values")
            labels = list(c.get("labels", ()) or ())
            if labels and len(labels) != len(x):
                raise ValueError(f"{name}: {len(labels)} labels for {len(x)} points")
            ax.plot(x, y, "-" if labels else "o-", color=f"C{i}", label=name, ms=5, lw=1.6)
            for j, (xi, yi, lab) in enumerate(zip(x, y, labels)):
                ax.plot([xi], [yi], ls="none", marker=markers[j % len(markers)], ms=7, color=f"C{i}",
                        mec="black", mew=0.6, label=f"{name} {lab}")
        for j, (name, ref) in enumerate((reference or {}).items()):
            if key in ref:
                ax.axhline(ref[key], color="0.35", ls="--" if j == 0 else ":", lw=1.2, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations (NFE)", fontsize=11)
        ax.set_ylabel(METRIC_LABELS.get(key, key), fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3, which="both")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), fontsize=10, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=12)
    rows = -(-len(names) // 4)
    fig.tight_layout(rect=(0, 0.075 * rows * 3.6 / panel[1], 1, 1))
    return fig


# ----------------------------------------------------------------------------------------------------------------
# SR comparison grid
# ----------------------------------------------------------------------------------------------------------------


def samples_grid(
    columns: Mapping[str, Mapping[str, Image]],
    *,
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    zoom: tuple[int, int, int] | Mapping[str, tuple[int, int, int]] | None = None,
    panel: float = 1.9,
    context: str | None = None,
    stretch: bool = False,
) -> Figure:
    """A grid of same-size images: one column per label (e.g. bicubic, DDIM-1, DDIM-25, …, HR), one row per name.

    Args:
        columns: ``{column label: {row name: image}}``; every column has the same row names.
        metrics: ``{column label: {row name: {psnr_y/ssim_y/lpips: value}}}`` for the titles (optional).
        zoom: ``(top, left, size)``: show only that window of every image; or ``{row name: (top, left, size)}``,
            one window per row (rows not named are shown whole).
        panel: inches per panel.
        context: a column label: its images are drawn first, whole, with the zoom window outlined in yellow, so
            the reader sees where the zoomed panels come from.
        stretch: display-only contrast stretch, the same for every panel of a row: the window's levels
            [p1, p99] (1st and 99th percentile over all panels of the row) are mapped linearly to [0, 255],
            ``out = clip((v − p1)·255/(p99 − p1))``; the gain 255/(p99 − p1) is written beside the row name.
            It makes the texture of dark crops visible without favouring any column.
    """
    labels = list(columns)
    names = list(next(iter(columns.values())))
    if any(list(col) != names for col in columns.values()):
        raise ValueError("every column must hold the same row names, in the same order")
    if context is not None and context not in columns:
        raise ValueError(f"context must be one of the column labels {labels}, got {context!r}")

    def window(name: str) -> tuple[int, int, int] | None:
        if zoom is None or (isinstance(zoom, tuple) and len(zoom) == 3 and all(isinstance(v, int) for v in zoom)):
            return zoom  # type: ignore[return-value]
        return dict(zoom).get(name)  # type: ignore[arg-type]

    ncols = len(labels) + (context is not None)
    fig, axes = plt.subplots(len(names), ncols, figsize=(panel * ncols, len(names) * (panel + 0.4)), squeeze=False)
    for r, name in enumerate(names):
        win = window(name)
        crops = {}
        for label in labels:
            img = as_display(columns[label][name])
            if win is not None:
                t, left, size = win
                img = img[t : t + size, left : left + size]
            crops[label] = img
        lo, gain = 0.0, 1.0
        if stretch:
            levels = np.concatenate([c.reshape(-1) for c in crops.values()]).astype(np.float64)
            lo, hi = np.percentile(levels, [1, 99])
            gain = 255.0 / max(hi - lo, 1.0)
        c0 = 0
        if context is not None:
            ax = axes[r, 0]
            full = as_display(columns[context][name])
            ax.imshow(full)
            if win is not None:
                t, left, size = win
                ax.add_patch(Rectangle((left - 0.5, t - 0.5), size, size, fill=False, ec="yellow", lw=1.5))
            if r == 0:
                ax.set_title(f"{context}, whole crop", fontsize=9)
            no_ticks(ax)
            c0 = 1
        for c, label in enumerate(labels):
            img = crops[label]
            if stretch:
                img = np.clip((img.astype(np.float64) - lo) * gain, 0, 255).astype(np.uint8)
            ax = axes[r, c0 + c]
            ax.imshow(img)
            line = metric_line((metrics or {}).get(label, {}).get(name))
            if r == 0 or line:
                ax.set_title(label + (f"\n{line}" if line else ""), fontsize=9)
            no_ticks(ax)
        row_label = name + (f"\ncontrast ×{gain:.1f}" if stretch else "")
        axes[r, 0].set_ylabel(row_label, fontsize=9)
    fig.tight_layout()
    return fig


def _nearest(lr: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(lr, s, axis=0), s, axis=1)


def _bicubic(lr: np.ndarray, s: int) -> np.ndarray:
    from ..data import to_tensor, to_uint8, upscale_bicubic

    return to_uint8(upscale_bicubic(to_tensor(lr), s))


def sr_comparison_grid(
    hr: Mapping[str, Image],
    lr: Mapping[str, Image],
    sr: Mapping[str, Image],
    *,
    bicubic: Mapping[str, Image] | None = None,
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    model_label: str = "adasr",
    zoom: tuple[int, int, int] | None = None,
    panel: float = 2.4,
) -> Figure:
    """Rows = images, columns = LR (nearest ×s), bicubic ×s, the model, HR; metrics in the titles.

    Args:
        hr, lr, sr: ``{name: image}`` with the same names; HR and SR (s·h, s·w), LR (h, w) for an integer s.
        bicubic: the bicubic ×s images; computed from ``lr`` (the package's ``upscale_bicubic``) when omitted.
        metrics: ``{name: {"bicubic": {...}, "adasr": {...}, "nearest": {...}}}`` with psnr_y / ssim_y / lpips
            (the per-image rows of :func:`adasr.benchmarks.quality.quality` have exactly this shape); missing
            entries are left out of the titles.
        model_label: the model column's title (its metrics are looked up under ``"adasr"``).
        zoom: ``(top, left, size)`` in HR pixels: show only that window of every panel (to see texture).
        panel: inches per panel.
    """
    names = list(hr)
    if set(names) != set(lr) or set(names) != set(sr):
        raise ValueError(f"hr, lr and sr must have the same names, got {sorted(hr)}, {sorted(lr)}, {sorted(sr)}")
    cols = [("nearest", "LR (nearest ×{s})"), ("bicubic", "bicubic ×{s}"), ("adasr", model_label), ("hr", "HR")]
    fig, axes = plt.subplots(len(names), 4, figsize=(4 * panel, len(names) * (panel + 0.35)), squeeze=False)
    for r, name in enumerate(names):
        h, l_ = as_display(hr[name]), as_display(lr[name])
        s = h.shape[0] // l_.shape[0]
        if s < 1 or h.shape[:2] != (s * l_.shape[0], s * l_.shape[1]):
            raise ValueError(f"{name}: HR {h.shape[:2]} is not an integer multiple of LR {l_.shape[:2]}")
        imgs = {"nearest": _nearest(l_, s),
                "bicubic": as_display(bicubic[name]) if bicubic is not None else _bicubic(l_, s),
                "adasr": as_display(sr[name]), "hr": h}
        for c, (key, label) in enumerate(cols):
            img = imgs[key]
            if img.shape != h.shape:
                raise ValueError(f"{name}/{key}: shape {img.shape} differs from HR {h.shape}")
            if zoom is not None:
                t, left, size = zoom
                img = img[t : t + size, left : left + size]
            ax = axes[r, c]
            ax.imshow(img)
            line = metric_line((metrics or {}).get(name, {}).get(key))
            ax.set_title(label.format(s=s) + (f"\n{line}" if line else ""), fontsize=7.5)
            no_ticks(ax)
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Colour cast: ε-prediction against the residual formulation
# ----------------------------------------------------------------------------------------------------------------


def _stack_uint8(images: Sequence[Image] | np.ndarray | torch.Tensor) -> np.ndarray:
    """A stack (N, H, W, 3) uint8 from a list of images, a (N, H, W, 3) uint8 array or a (N, 3, H, W) tensor."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return np.stack([as_display(images[i]) for i in range(images.shape[0])])
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return images
    return np.stack([as_display(im) for im in images])


def channel_mean_error(sr: Sequence[Image] | np.ndarray | torch.Tensor,
                       hr: Sequence[Image] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-image, per-channel mean error e[n, c] = mean_{h,w}(SR − HR) in uint8 levels, shape (N, 3) (R, G, B).

    Inputs are stacks of N images of equal size (see :func:`_stack_uint8` for the accepted forms).
    """
    a, b = _stack_uint8(sr).astype(np.float64), _stack_uint8(hr).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"SR {a.shape} and HR {b.shape} stacks differ in shape")
    return (a - b).mean(axis=(1, 2))


def colour_cast_figure(
    hr: Sequence[Image] | np.ndarray | torch.Tensor,
    outputs: Mapping[str, Sequence[Image] | np.ndarray | torch.Tensor],
    *,
    names: Sequence[str] | None = None,
    panel: float = 1.9,
) -> Figure:
    """One row per image: HR, each model's output, and a bar chart of each model's per-channel mean error.

    Args:
        hr: N HR images.
        outputs: ``{label: N images}`` — e.g. ``{"ε-prediction": ..., "residual x0": ...}`` (bicubic may be one).
        names: N row labels.
        panel: inches per image panel.

    The bars are :func:`channel_mean_error` (R, G, B per model, uint8 levels, shared y axis): a colour cast is a
    bar far from 0 — the whole image shifted towards (or away from) one primary.
    """
    h = _stack_uint8(hr)
    errs = {k: channel_mean_error(v, h) for k, v in outputs.items()}
    stacks = {k: _stack_uint8(v) for k, v in outputs.items()}
    n, m = h.shape[0], len(outputs)
    lim = max(1.0, max(float(np.abs(e).max()) for e in errs.values())) * 1.15
    fig = plt.figure(figsize=(panel * (m + 1) + 2.6, n * (panel + 0.3)))
    gs = fig.add_gridspec(n, m + 2, width_ratios=[1] * (m + 1) + [1.5])
    for r in range(n):
        for c, (label, img) in enumerate([("HR", h[r])] + [(k, s[r]) for k, s in stacks.items()]):
            ax = fig.add_subplot(gs[r, c])
            ax.imshow(img)
            no_ticks(ax)
            if r == 0:
                ax.set_title(label, fontsize=8)
            if c == 0 and names is not None:
                ax.set_ylabel(names[r], fontsize=8)
        ax = fig.add_subplot(gs[r, m + 1])
        x = np.arange(m)
        for ch in range(3):
            ax.bar(x + (ch - 1) * 0.26, [errs[k][r, ch] for k in outputs], width=0.26, color=CHANNEL_COLOURS[ch],
                   label="RGB"[ch])
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_ylim(-lim, lim)
        ax.set_xticks(x, list(outputs) if r == n - 1 else [""] * m, fontsize=7, rotation=15)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="y")
        if r == 0:
            ax.set_title("mean error SR − HR (levels)", fontsize=8)
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Tiling: seams and merge weights
# ----------------------------------------------------------------------------------------------------------------


def _tile_edges(grid: TileGrid) -> tuple[list[int], list[int]]:
    """Row and column coordinates of every tile edge inside the image (pixel boundaries)."""
    rows = sorted({t for t, _ in grid.positions} | {t + grid.tile_h for t, _ in grid.positions})
    cols = sorted({c for _, c in grid.positions} | {c + grid.tile_w for _, c in grid.positions})
    return ([r for r in rows if 0 < r < grid.height], [c for c in cols if 0 < c < grid.width])


def default_seam_zoom(grid: TileGrid, size: int | None = None) -> tuple[int, int, int]:
    """A ``(top, left, size)`` window centred where the first interior tile edges cross (a seam corner)."""
    rows, cols = _tile_edges(grid)
    size = size or max(8, min(grid.tile_h, grid.tile_w) // 2)
    cy = rows[0] if rows else grid.height // 2
    cx = cols[0] if cols else grid.width // 2
    top = int(np.clip(cy - size // 2, 0, grid.height - size))
    left = int(np.clip(cx - size // 2, 0, grid.width - size))
    return top, left, size


def seams_figure(
    images: Mapping[str, Image],
    grids: Mapping[str, TileGrid] | None = None,
    *,
    zoom: tuple[int, int, int] | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    panel: float = 2.8,
) -> Figure:
    """Top row: each image with its tile grid drawn over it; bottom row: the same zoomed window (a seam).

    Args:
        images: ``{label: image}``, all the same size (e.g. no overlap / uniform averaging / Gaussian / HR).
        grids: ``{label: TileGrid}`` for the images that were tiled; the tile edges are drawn in white.
        zoom: ``(top, left, size)`` in pixels; default :func:`default_seam_zoom` of the first grid given.
        metrics: ``{label: {psnr_y/ssim_y/lpips: value}}`` for the titles.
        panel: inches per panel.
    """
    labels = list(images)
    disp = {k: as_display(v) for k, v in images.items()}
    shape = next(iter(disp.values())).shape
    if any(d.shape != shape for d in disp.values()):
        raise ValueError(f"all images must have the same shape, got {[d.shape for d in disp.values()]}")
    grids = dict(grids or {})
    if zoom is None:
        zoom = default_seam_zoom(next(iter(grids.values()))) if grids else (0, 0, min(shape[:2]) // 4)
    t, left, size = zoom
    fig, axes = plt.subplots(2, len(labels), figsize=(panel * len(labels), 2 * panel + 0.7), squeeze=False)
    for c, label in enumerate(labels):
        ax, axz = axes[0, c], axes[1, c]
        ax.imshow(disp[label])
        if label in grids:
            rows, cols = _tile_edges(grids[label])
            for y in rows:
                ax.axhline(y - 0.5, color="white", lw=0.6, alpha=0.7)
            for x in cols:
                ax.axvline(x - 0.5, color="white", lw=0.6, alpha=0.7)
        ax.add_patch(Rectangle((left - 0.5, t - 0.5), size, size, fill=False, ec="yellow", lw=1.2))
        line = metric_line((metrics or {}).get(label))
        ax.set_title(label + (f"\n{line}" if line else ""), fontsize=8)
        no_ticks(ax)
        axz.imshow(disp[label][t : t + size, left : left + size])
        axz.set_title(f"zoom [{t}:{t + size}, {left}:{left + size}]", fontsize=7)
        if label in grids:
            rows, cols = _tile_edges(grids[label])
            for y in rows:
                if t < y < t + size:
                    axz.axhline(y - t - 0.5, color="white", lw=0.6, ls=":", alpha=0.8)
            for x in cols:
                if left < x < left + size:
                    axz.axvline(x - left - 0.5, color="white", lw=0.6, ls=":", alpha=0.8)
        no_ticks(axz)
    fig.tight_layout()
    return fig


def merge_weights_1d(grid: TileGrid, mode: str = "gaussian", sigma_frac: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Each tile column's share of the merge along a horizontal line: (lefts (K,), shares (K, W)).

    share_k(x) = w(x − o_k) / Σ_j w(x − o_j) over the K distinct column offsets o_k of ``grid``, with w the
    window's centre row (the Gaussian window is separable, so this is the merge along any row of tiles);
    ``mode="last"`` gives the last tile covering x a share of 1. The shares sum to 1 at every x.
    """
    lefts = np.array(sorted({c for _, c in grid.positions}))
    W, tw = grid.width, grid.tile_w
    raw = np.zeros((len(lefts), W))
    if mode == "last":
        for k, o in enumerate(lefts):
            raw[:, o : o + tw] = 0.0
            raw[k, o : o + tw] = 1.0
        return lefts, raw
    w = grid.weights(mode, sigma_frac)[grid.tile_h // 2].double().numpy()  # type: ignore[arg-type]
    for k, o in enumerate(lefts):
        raw[k, o : o + tw] = w
    return lefts, raw / raw.sum(axis=0, keepdims=True)


def merge_weights_figure(grid: TileGrid, sigma_frac: float = 0.3,
                         modes: Sequence[str] = ("gaussian", "uniform", "last")) -> Figure:
    """The Gaussian tile window (left) and, per merge mode, each tile's share of the merged pixel along a row.

    The window is w(y, x) = exp(−(y − c_y)²/2σ_y²) · exp(−(x − c_x)²/2σ_x²) with σ = ``sigma_frac`` · tile size;
    the shares are :func:`merge_weights_1d` (they sum to 1 at every pixel). Gaussian shares cross-fade over the
    overlap, starting from a small step at each tile edge (the window is not zero at its border: about ¼ for
    σ = 0.3·size and an overlap of ¼ tile); uniform ones jump to ½ at each tile edge; ``last`` switches abruptly.
    """
    fig, axes = plt.subplots(1, 1 + len(modes), figsize=(3.2 + 3.4 * len(modes), 3.0),
                             gridspec_kw={"width_ratios": [1] + [1.5] * len(modes)})
    win = grid.weights("gaussian", sigma_frac).numpy()
    im = axes[0].imshow(win, cmap="viridis", vmin=0, vmax=1)
    axes[0].set_title(f"Gaussian window {grid.tile_h}×{grid.tile_w}, σ={sigma_frac}·size", fontsize=8)
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.04)
    no_ticks(axes[0])
    x = np.arange(grid.width)
    for ax, mode in zip(axes[1:], modes):
        lefts, shares = merge_weights_1d(grid, mode, sigma_frac)
        for k in range(len(lefts)):
            ax.plot(x, shares[k], color=f"C{k % 10}", lw=1.4)
        for o in lefts[1:]:
            ax.axvline(o - 0.5, color="0.6", lw=0.6, ls=":")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("x (pixels)")
        ax.set_title(f"'{mode}': share of each tile column", fontsize=8)
        ax.grid(alpha=0.3)
    axes[1].set_ylabel("merge weight share")
    fig.tight_layout()
    return fig


__all__ = [
    "channel_mean_error",
    "colour_cast_figure",
    "default_seam_zoom",
    "merge_weights_1d",
    "merge_weights_figure",
    "quality_vs_nfe",
    "seams_figure",
    "samples_grid",
    "sr_comparison_grid",
]
