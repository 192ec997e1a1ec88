"""Figures for patch complexity (notebook 04): estimator maps, normalisations, rank agreement, a map explorer.

Every function takes data (images, per-pixel complexity maps C(x), per-tile scores C_p, errors, rank
correlations) and returns a matplotlib ``Figure``; none runs an estimator that needs the diffusion model. Maps may
be float tensors (1, 1, H, W) / (1, H, W) or arrays (H, W); images uint8 (H, W, 3) arrays or float tensors in
[−1, 1].

Quantities drawn (see :mod:`adasr.adaptive.complexity`):

* a per-image min–max normalised map  Ĉ(x) = (C(x) − min C)/(max C − min C), in [0, 1], or its robust version
  with the 99th percentile in place of the max (:func:`robust_unit`);
* the patch complexity  C_p = (1/|p|) Σ_{x∈p} C(x)  of each tile p of a :class:`~adasr.sampling.tiles.TileGrid`
  (tiles may overlap) or of each non-overlapping patch×patch patch;
* AdaBM's three classes  level(C_p) = −1 if C_p < q_lo, +1 if C_p > q_hi, else 0  (q = calibration percentiles);
* the Spearman rank correlation ρ between an estimator's raw C_p and the true per-tile error over a set of tiles
  (computed by :func:`adasr.adaptive.complexity.rank_correlations`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..adaptive.complexity import Calibration, as_vector, patch_means
from ..sampling.tiles import TileGrid
from .common import as_display, no_ticks

MapLike = Any  # float tensor (1, 1, H, W) / (1, H, W) / (H, W) or ndarray (H, W)
Image = Any  # uint8 (H, W, 3) ndarray or float tensor (1|3, H, W) in [−1, 1]

MAP_CMAP = "magma"
LEVEL_COLOURS = ("#4c72b0", "#d9d9d9", "#c44e52")  # −1 simple, 0 medium, +1 complex
LEVEL_CMAP = ListedColormap(LEVEL_COLOURS)
IMAGE_MARKERS = ("o", "s", "^", "D", "v", "P")


def as_map(m: MapLike) -> np.ndarray:
    """A single complexity map as float64 (H, W): accepts (1, 1, H, W), (1, H, W) or (H, W), tensor or array."""
    a = m.detach().float().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"expected one map (H, W), got shape {a.shape}")
    return a.astype(np.float64)


def minmax(m: MapLike) -> np.ndarray:
    """Per-image min–max normalisation (H, W) → [0, 1]: (C − min)/(max − min); a constant map gives zeros."""
    a = as_map(m)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def tile_matrix(values: Sequence[float] | np.ndarray | torch.Tensor, grid: TileGrid) -> np.ndarray:
    """Per-tile values (N,) in ``grid.positions`` order → (rows, cols) laid out as the tiles sit in the image."""
    v = as_vector(values)
    if v.size != len(grid):
        raise ValueError(f"{v.size} values for a grid of {len(grid)} tiles")
    tops = sorted({t for t, _ in grid.positions})
    lefts = sorted({left for _, left in grid.positions})
    out = np.full((len(tops), len(lefts)), np.nan)
    for val, (t, left) in zip(v, grid.positions):
        out[tops.index(t), lefts.index(left)] = val
    return out


# ----------------------------------------------------------------------------------------------------------------
# The estimators side by side
# ----------------------------------------------------------------------------------------------------------------


def robust_unit(m: MapLike, upper: float = 99.0) -> np.ndarray:
    """A map (H, W) on [0, 1] relative to its own image, robust to a few spikes:
    Ĉ(x) = clip((C(x) − min C)/(P_upper(C) − min C), 0, 1), with P_upper the ``upper``-th percentile of the map.

    ``upper = 100`` is plain min–max (:func:`minmax`). A lower percentile keeps a handful of extreme pixels from
    turning the rest of a spiky map (the two-draw uncertainty) black. A constant map gives zeros."""
    if not 0 < upper <= 100:
        raise ValueError(f"upper must be a percentile in (0, 100], got {upper}")
    a = as_map(m)
    lo, hi = a.min(), np.percentile(a, upper)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(a)


def estimator_maps_figure(images: Mapping[str, Image], maps: Mapping[str, Mapping[str, MapLike]], *,
                          panel: float = 1.75, cmap: str = MAP_CMAP, upper: float = 99.0,
                          fontsize: float = 11) -> Figure:
    """One row per image: the image, then each estimator's map on [0, 1] per image (:func:`robust_unit`), with a
    colour bar.

    Args:
        images: ``{image name: image}`` (the condition up(LR) or the HR crop), drawn in the first column.
        maps: ``{estimator: {image name: map (H, W)}}``, one column per estimator, in the given order.
        panel: inches per panel (the default makes a 3 × 7 grid about 13 inches wide, readable on a slide).
        cmap: a perceptually uniform colour map (0 = the simplest pixel of that image, 1 = its ``upper``-th
            percentile and above).
        upper: the percentile mapped to 1 (100: plain min–max, which leaves spiky maps nearly black).
        fontsize: titles and labels.
    """
    names = list(images)
    estimators = list(maps)
    for e in estimators:
        if set(maps[e]) != set(names):
            raise ValueError(f"estimator {e!r} has maps for {sorted(maps[e])}, expected {sorted(names)}")
    ncols = 1 + len(estimators)
    fig, axes = plt.subplots(len(names), ncols, squeeze=False,
                             figsize=(panel * ncols + 0.9, panel * len(names) + 0.45))
    im = None
    for r, name in enumerate(names):
        axes[r, 0].imshow(as_display(images[name]), interpolation="antialiased")
        axes[r, 0].set_ylabel(name, fontsize=fontsize)
        if r == 0:
            axes[r, 0].set_title("up(LR)", fontsize=fontsize)
        for c, e in enumerate(estimators, start=1):
            im = axes[r, c].imshow(robust_unit(maps[e][name], upper), cmap=cmap, vmin=0, vmax=1,
                                   interpolation="antialiased")
            if r == 0:
                axes[r, c].set_title(e, fontsize=fontsize)
        for ax in axes[r]:
            no_ticks(ax)
    right = 1 - 0.85 / (panel * ncols + 0.9)
    fig.subplots_adjust(left=0.03, right=right, top=1 - 0.35 / (panel * len(names) + 0.45), bottom=0.01,
                        wspace=0.04, hspace=0.04)
    if im is not None:
        cax = fig.add_axes((right + 0.012, 0.08, 0.012, 0.8))
        cb = fig.colorbar(im, cax=cax)
        cb.set_ticks([0, 0.5, 1], labels=["min", "", f"≥ P{upper:g}"])
        cb.ax.tick_params(labelsize=fontsize - 2)
        cb.set_label("C(x), per image", fontsize=fontsize - 1)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Normalisations of C_p and AdaBM's three levels
# ----------------------------------------------------------------------------------------------------------------


def _annotate(ax, mat: np.ndarray, fmt: str, dark: float | None = None) -> None:
    for (i, j), v in np.ndenumerate(mat):
        if np.isnan(v):
            continue
        colour = "white" if dark is not None and v < dark else "black"
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7, color=colour)


def normalisation_figure(scores: Mapping[str, Mapping[str, Sequence[float] | torch.Tensor]], grid: TileGrid,
                         levels: Mapping[str, Sequence[int] | torch.Tensor] | None = None, *,
                         panel: float = 1.45, cmap: str = "viridis") -> Figure:
    """C_p of every tile under several normalisations (columns) for several images (rows), as tile matrices.

    Args:
        scores: ``{normalisation label: {image name: C_p (N,) in [0, 1]}}`` in ``grid.positions`` order.
        grid: the tiling the scores belong to (laid out by :func:`tile_matrix`).
        levels: optional ``{image name: level (N,) in {−1, 0, +1}}`` drawn as a last column (AdaBM's classes).
        panel: inches per panel.
        cmap: colormap of the [0, 1] scores; each cell is annotated with its value.
    """
    labels = list(scores)
    names = list(next(iter(scores.values())))
    ncols = len(labels) + (1 if levels is not None else 0)
    fig, axes = plt.subplots(len(names), ncols, squeeze=False, figsize=(panel * ncols + 0.2, panel * len(names) + 0.5))
    for r, name in enumerate(names):
        for c, label in enumerate(labels):
            ax = axes[r, c]
            mat = tile_matrix(scores[label][name], grid)
            ax.imshow(mat, cmap=cmap, vmin=0, vmax=1)
            _annotate(ax, mat, "{:.2f}", dark=0.5)
            if r == 0:
                ax.set_title(label, fontsize=8)
        if levels is not None:
            ax = axes[r, -1]
            mat = tile_matrix(levels[name], grid)
            ax.imshow(mat, cmap=LEVEL_CMAP, vmin=-1.5, vmax=1.5)
            _annotate(ax, mat, "{:+.0f}")
            if r == 0:
                ax.set_title("AdaBM level", fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=8)
        for ax in axes[r]:
            no_ticks(ax)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.9, bottom=0.02, wspace=0.06, hspace=0.08)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Does C_p rank the tiles as the true error does?
# ----------------------------------------------------------------------------------------------------------------


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v)


def rank_agreement_figure(scores: Mapping[str, Mapping[str, Sequence[float] | torch.Tensor]],
                          error: Mapping[str, Sequence[float] | torch.Tensor],
                          rho: Mapping[str, Mapping[str, float]], *, inches: float = 3.3) -> Figure:
    """Left: bars of the pooled Spearman ρ per estimator (dots: ρ within each image). Right: one small scatter per
    estimator, rank of its C_p among all tiles (x) against the true per-tile error (y), one marker per image.

    Args:
        scores: ``{estimator: {image name: raw C_p (N,)}}``.
        error: ``{image name: true error per tile (N,)}``.
        rho: ``{estimator: {"all": pooled ρ, image name: ρ within it}}``, as returned by
            :func:`adasr.adaptive.complexity.rank_correlations` ``(scores, error)``.
        inches: the figure height.
    """
    missing = [e for e in scores if e not in rho or any(k not in rho[e] for k in ("all", *error))]
    if missing:
        raise ValueError(f"rho lacks the pooled or per-image ρ of {missing}")
    estimators = list(scores)
    names = list(error)
    err_all = np.concatenate([as_vector(error[n]) for n in names])
    which = np.concatenate([np.full(as_vector(error[n]).size, i) for i, n in enumerate(names)])
    ncol = (len(estimators) + 1) // 2
    fig = plt.figure(figsize=(inches * 1.3 + 1.5 * ncol, inches))
    gs = fig.add_gridspec(2, 1 + ncol, width_ratios=[1.9] + [1] * ncol)
    ax = fig.add_subplot(gs[:, 0])
    x = np.arange(len(estimators))
    ax.bar(x, [rho[e]["all"] for e in estimators], color="0.7", label="all tiles")
    for i, n in enumerate(names):
        ax.plot(x, [rho[e][n] for e in estimators], IMAGE_MARKERS[i % len(IMAGE_MARKERS)], color=f"C{i}", ms=4,
                ls="none", label=n)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, estimators, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Spearman ρ with true error")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3, axis="y")
    for k, e in enumerate(estimators):
        sax = fig.add_subplot(gs[k % 2, 1 + k // 2])
        ranks = _ranks(np.concatenate([as_vector(scores[e][n]) for n in names]))
        for i, n in enumerate(names):
            sel = which == i
            sax.plot(ranks[sel], err_all[sel], IMAGE_MARKERS[i % len(IMAGE_MARKERS)], color=f"C{i}", ms=3,
                     ls="none", label=n)
        sax.set_ylim(0, None)
        sax.set_title(f"{e}  ρ={rho[e]['all']:.2f}", fontsize=8)
        sax.tick_params(labelsize=6)
        if k // 2 == 0:
            sax.set_ylabel("true error", fontsize=7)
        if k % 2 == 1:
            sax.set_xlabel("rank of C_p", fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# One image, one estimator: map, patch means, three levels
# ----------------------------------------------------------------------------------------------------------------


def complexity_panels(image: Image, cmap: MapLike, patch: int, calibration: Calibration, *, title: str = "",
                      inches: float = 2.4, upper: float = 99.0) -> Figure:
    """Four panels: the image, its map on [0, 1] per image (:func:`robust_unit`), the patch means C_p over
    patch×patch patches (:func:`~adasr.adaptive.complexity.patch_means`, raw units, with a colour bar), and the
    classes ``calibration.level(C_p)`` with a colour legend (:func:`level_legend_handles`).

    Args:
        image: the image the map belongs to (H, W, 3).
        cmap: its raw complexity map (H, W).
        patch: patch size in pixels.
        calibration: thresholds ``low``/``high`` in the map's raw units.
        title: figure title.
        inches: panel size.
        upper: the percentile of the map drawn as 1 (100: plain min–max).
    """
    raw = as_map(cmap)
    pm = patch_means(torch.from_numpy(raw)[None, None], patch)[0].numpy()
    lev = calibration.level(torch.from_numpy(pm)).numpy()
    counts = {k: int((lev == k).sum()) for k in (-1, 0, 1)}
    fig, axes = plt.subplots(1, 4, figsize=(4 * inches + 2.2, inches + 0.7), layout="constrained")
    axes[0].imshow(as_display(image))
    axes[0].set_title("image", fontsize=10)
    axes[1].imshow(robust_unit(raw, upper), cmap=MAP_CMAP, vmin=0, vmax=1)
    axes[1].set_title("map C(x), per image" if upper < 100 else "map C(x), min–max", fontsize=10)
    im = axes[2].imshow(pm, cmap="viridis")
    axes[2].set_title(f"C_p, {patch}×{patch} patches", fontsize=10)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03).ax.tick_params(labelsize=8)
    axes[3].imshow(lev, cmap=LEVEL_CMAP, vmin=-1.5, vmax=1.5)
    axes[3].set_title(f"level  −1:{counts[-1]}  0:{counts[0]}  +1:{counts[1]}", fontsize=10)
    for ax in axes:
        no_ticks(ax)
    fig.legend(handles=level_legend_handles(calibration), loc="outside right center", fontsize=9,
               title="AdaBM level", title_fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def level_legend_handles(calibration: Calibration | None = None) -> list[Patch]:
    """Legend entries of AdaBM's three classes in :data:`LEVEL_COLOURS`; with a ``calibration`` each label
    carries its threshold: −1 below q_lo, 0 between, +1 above q_hi (raw units)."""
    if calibration is None:
        labels = ("−1 simple", "0 medium", "+1 complex")
    else:
        lo, hi = calibration.low, calibration.high
        labels = (f"−1 simple: C_p < {lo:.3g}", "0 medium", f"+1 complex: C_p > {hi:.3g}")
    return [Patch(facecolor=c, edgecolor="0.4", label=lab) for c, lab in zip(LEVEL_COLOURS, labels)]
