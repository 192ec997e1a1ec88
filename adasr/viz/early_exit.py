"""Figures for Δx̂0 early exit (notebook 06): Δ curves, where tiles stop, what stopping costs in quality.

Every plotting function takes data (Δ histories, stop steps, images, metric values), draws with matplotlib and
returns the ``Figure``; none samples a model or replays the rule. The conventions are those of
:mod:`adasr.adaptive.early_exit`:

* after step k of a tile's schedule the sampler has the clean estimate x̂0^(k); from the second step on,

      Δ_k = RMS(x̂0^(k) − x̂0^(k−1)) / R

  (R = 2·s, the range of the diffused variable) is appended to the tile's Δ history, kept by the
  :class:`~adasr.adaptive.early_exit.EarlyExit` policy (``policy.deltas(p)``, or
  ``SampleResult.policy_memory["deltas"][p]`` after a run), so ``history[j]`` is Δ at step k = j + 2;
* the rule (ε, P, T_min) stops a tile after step k ≥ T_min when the last P values of Δ are all below ε; the tile
  keeps x̂0^(k). Its *stop step* is k, the number of UNet tile-evaluations it cost (N_max if the rule never fires);
  :func:`adasr.adaptive.early_exit.stop_steps` replays the rule on recorded histories.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..sampling.tiles import TileGrid
from .common import as_display, metric_line, no_ticks

Image = Any  # uint8 (H, W, 3) ndarray or float tensor (1|3, H, W) in [−1, 1]

TILE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red")
#: what the stop-map titles show: cost, then quality (SSIM is not shown)
EXIT_METRICS = ("steps", "psnr_y", "lpips")


def delta_steps(n: int) -> np.ndarray:
    """The step index k of each of ``n`` Δ values of a history: 2, 3, …, n + 1 (int array (n,))."""
    return np.arange(2, n + 2)


def _delta_axes(ax, tiles: Sequence[Sequence[float]], glob: Sequence[float] | None, colour: str,
                stops: Sequence[int] | None, epsilon: float | None, warmup: int | None) -> None:
    """Thin line per tile, thick global line, ε line, T_min shading and stop markers on one axes."""
    for i, h in enumerate(tiles):
        if len(h):
            ax.plot(delta_steps(len(h)), h, color=colour, lw=0.8, alpha=0.55, label="tiles" if i == 0 else None)
    if glob is not None and len(glob):
        ax.plot(delta_steps(len(glob)), glob, color="k", lw=2.2, label="global")
    if stops is not None:
        xs, ys = [], []
        for h, k in zip(tiles, stops):
            if k >= 2 and len(h) >= k - 1:
                xs.append(k)
                ys.append(h[k - 2])
        if xs:
            ax.plot(xs, ys, linestyle="none", marker="x", color="crimson", markersize=6, label="stop")
    if epsilon is not None:
        ax.axhline(epsilon, color="crimson", lw=1.0, ls="--", label=f"ε = {epsilon:g}")
    if warmup is not None and warmup > 1:
        ax.axvspan(0.5, warmup + 0.5, color="0.85", alpha=0.6, lw=0, label=f"k ≤ T_min = {warmup}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")


def delta_curves_figure(
    panels: Mapping[str, Mapping[str, Any]],
    *,
    epsilon: float | None = None,
    warmup: int | None = None,
    panel: float = 2.6,
    title: str | None = None,
    ncols: int | None = None,
) -> Figure:
    """One panel per run: Δ_k of every tile (thin lines) and of the whole image (thick black), log y, shared.

    Args:
        panels: ``{panel title: {"tiles": [Δ list per tile], "global": Δ list (optional), "stops": stop step per
            tile (optional, drawn as ×), "colour": line colour (optional)}}``; Δ lists are the policy's per-tile
            histories (``SampleResult.policy_memory["deltas"]``; value j at step k = j + 2).
        epsilon: draw the threshold ε as a dashed line.
        warmup: shade the steps k ≤ T_min, where the rule may not stop.
        panel: inches per panel (width).
        title: figure title.
        ncols: panels per row (default: all in one row); with fewer, the panels wrap row by row (e.g. one row
            per model, one column per image).
    """
    if not panels:
        raise ValueError("need at least one panel")
    n = len(panels)
    nc = n if ncols is None else max(1, min(int(ncols), n))
    nr = -(-n // nc)
    fig, grid = plt.subplots(nr, nc, figsize=(panel * nc + 0.4, (panel * 0.95 + 0.25) * nr + 0.25), sharey=True,
                             squeeze=False)
    for ax in grid.flat[n:]:
        ax.set_visible(False)
    axes = grid.reshape(1, -1)[:, :n]
    n_max = 2
    for c, (label, d) in enumerate(panels.items()):
        ax = axes[0, c]
        tiles = [list(h) for h in d["tiles"]]
        colour = d.get("colour", TILE_COLOURS[c % len(TILE_COLOURS)])
        _delta_axes(ax, tiles, d.get("global"), colour, d.get("stops"), epsilon, warmup)
        n_max = max([n_max] + [len(h) + 1 for h in tiles])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step k", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[0]:
        ax.set_xlim(0.5, n_max + 0.5)
    for row in grid:
        row[0].set_ylabel(r"$\Delta_k$ (RMS change of $\hat x_0$) / R", fontsize=8)
    axes[0, -1].legend(fontsize=6.5, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _stop_map_axes(ax, stop_map: np.ndarray, grid: TileGrid | None, stops: Sequence[int] | None, n_max: int):
    """Draw a stop map (H, W) on a fixed colour scale [1, N_max], with each tile's stop step written at its centre."""
    im = ax.imshow(np.asarray(stop_map, dtype=float), cmap="viridis", vmin=1, vmax=n_max)
    if grid is not None and stops is not None:
        for (t, l), k in zip(grid.positions, stops):
            ax.text(l + (grid.tile_w - 1) / 2, t + (grid.tile_h - 1) / 2, str(int(k)), ha="center", va="center",
                    fontsize=7, color="w" if k < 0.6 * n_max else "k")
    no_ticks(ax)
    return im


def abs_difference(a: Image, b: Image, block: int = 1) -> np.ndarray:
    """Mean absolute difference over RGB, in 8-bit levels, of two same-size images: (H, W) float64, or with
    ``block`` > 1 its mean over non-overlapping block×block squares, (H // block, W // block)."""
    x, y = as_display(a).astype(np.float64), as_display(b).astype(np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    d = np.abs(x - y).mean(axis=2)
    if block > 1:
        h, w = d.shape[0] // block, d.shape[1] // block
        d = d[: h * block, : w * block].reshape(h, block, w, block).mean(axis=(1, 3))
    return d


def stops_figure(
    arms: Mapping[str, Mapping[str, Any]],
    reference: Image,
    *,
    grid: TileGrid | None = None,
    n_max: int = 20,
    reference_label: str = "uniform",
    reference_metrics: Mapping[str, float] | None = None,
    show: str | None = None,
    diff_max: float = 12.0,
    block: int = 4,
    panel: float = 2.1,
) -> Figure:
    """Where tiles stop and what is lost. One column per early-exit arm: its stop map (top, cost and quality in the
    title) and |result − reference| (bottom); the last column shows the reference (top) and one arm's result.

    Args:
        arms: ``{label: {"stop_map": (H, W) stop step per pixel (``tile_value_map`` of the stop steps),
            "image": the early-exit result (H, W, 3), "stops": stop step per tile (optional, written on the map),
            "metrics": {steps, psnr_y, lpips} (optional, in the title)}}``.
        reference: the uniform-N_max result (H, W, 3).
        grid: the tile grid (to write each tile's stop step at its centre).
        n_max: top of the stop-map colour scale.
        reference_label, reference_metrics: title of the reference panel.
        show: the arm whose image is shown bottom right (default: the first).
        diff_max: top of the difference colour scale, in 8-bit levels.
        block: the difference is averaged over block×block squares (:func:`abs_difference`), which keeps the
            figure small and shows where detail differs rather than pixel noise.
        panel: inches per panel.
    """
    if not arms:
        raise ValueError("need at least one arm")
    ref = as_display(reference)
    show = show if show is not None else next(iter(arms))
    if show not in arms:
        raise ValueError(f"show={show!r} is not one of the arms {list(arms)}")
    n = len(arms)
    fig, axes = plt.subplots(2, n + 1, figsize=((n + 1) * panel + 0.9, 2 * panel + 0.7), squeeze=False,
                             layout="constrained")
    im_map = im_diff = None
    for c, (label, d) in enumerate(arms.items()):
        img = as_display(d["image"])
        if img.shape != ref.shape:
            raise ValueError(f"{label}: image {img.shape} differs from the reference {ref.shape}")
        stop_map = np.asarray(d["stop_map"], dtype=float)
        if stop_map.shape != ref.shape[:2]:
            raise ValueError(f"{label}: stop map {stop_map.shape} differs from the image {ref.shape[:2]}")
        im_map = _stop_map_axes(axes[0, c], stop_map, grid, d.get("stops"), n_max)
        line = metric_line(d.get("metrics"), EXIT_METRICS)
        axes[0, c].set_title(f"{label}: stop step" + (f"\n{line}" if line else ""), fontsize=7.5)
        im_diff = axes[1, c].imshow(abs_difference(img, ref, block), cmap="magma", vmin=0, vmax=diff_max)
        axes[1, c].set_title(f"|{label} − {reference_label}|", fontsize=7.5)
        no_ticks(axes[1, c])
    axes[0, n].imshow(ref, interpolation="antialiased")
    line = metric_line(reference_metrics, EXIT_METRICS)
    axes[0, n].set_title(reference_label + (f"\n{line}" if line else ""), fontsize=7.5)
    axes[1, n].imshow(as_display(arms[show]["image"]), interpolation="antialiased")
    axes[1, n].set_title(f"{show} result", fontsize=7.5)
    for ax in axes[:, n]:
        no_ticks(ax)
    for row, im, label in ((0, im_map, "stop step"), (1, im_diff, f"mean |Δ| per {block}×{block}\n(8-bit levels)")):
        cb = fig.colorbar(im, ax=list(axes[row, :n]), fraction=0.03, pad=0.01, shrink=0.9)
        cb.set_label(label, fontsize=7)
        if row == 0:
            cb.set_ticks(sorted({1, n_max} | set(range(5, n_max, 5))))
        cb.ax.tick_params(labelsize=7)
    return fig


def stop_quality_figure(
    steps: Sequence[int],
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    reference: Mapping[str, Mapping[str, float]] | None = None,
    images: Mapping[str, Image] | None = None,
    zoom: tuple[int, int, int] | None = None,
    panel: float = 2.6,
    separate: bool = False,
) -> Figure:
    """What a sampler returns if it stops after step k: quality of each candidate image against k.

    Args:
        steps: the step indices k (x axis).
        curves: ``{label: {"psnr_y": [...], "lpips": [...]}}`` one value per step — e.g. ``"x̂0^(k)"`` (the clean
            estimate, what our early exit returns) and ``"x_t after step k"`` (the noisy sample, what the AdaSR
            repository returns); a missing metric is left out of that panel.
        reference: ``{label: {"psnr_y": v, "lpips": v}}`` drawn as horizontal lines (e.g. uniform N_max, bicubic).
        images: ``{title: image}`` shown to the right of the plots (e.g. both candidates at one step).
        zoom: ``(top, left, size)``: show only that window of the images.
        panel: inches per panel.
        separate: one row of (PSNR-Y, LPIPS) axes per curve, each with its own y range and the reference lines
            (for curves whose ranges differ so much that one would flatten the other); images span the rows.
            Otherwise all curves share one PSNR-Y and one LPIPS axes.
    """
    ks = list(steps)
    imgs = dict(images or {})
    items = list(curves.items())
    rows = [items[i : i + 1] for i in range(len(items))] if separate and items else [items]
    nr, ncol = len(rows), 2 + len(imgs)
    fig = plt.figure(figsize=(panel * ncol + 0.6, (panel if separate else panel + 0.6) * nr + (0.3 if separate else 0)))
    gs = fig.add_gridspec(nr, ncol)
    styles = ["-o", "-s", "-^", "-D"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, row in enumerate(rows):
        plot_axes = [fig.add_subplot(gs[r, 0]), fig.add_subplot(gs[r, 1])]
        for ax, key, ylabel in zip(plot_axes, ("psnr_y", "lpips"), ("PSNR-Y (dB) ↑", "LPIPS ↓")):
            for label, c in row:
                i = next(j for j, (lab, _) in enumerate(items) if lab == label)
                if key in c:
                    ys = list(c[key])
                    if len(ys) != len(ks):
                        raise ValueError(f"{label}/{key}: {len(ys)} values for {len(ks)} steps")
                    ax.plot(ks, ys, styles[i % len(styles)], color=colours[i % len(colours)], markersize=3.5,
                            lw=1.2, label=label)
            for j, (label, m) in enumerate((reference or {}).items()):
                if key in m:
                    ax.axhline(m[key], color=("k", "0.5", "tab:brown")[j % 3], ls="--", lw=1.0, label=label)
            if r == nr - 1:
                ax.set_xlabel("stop after step k", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        if separate:
            plot_axes[0].set_title(row[0][0], fontsize=8, loc="left")
        plot_axes[0].legend(fontsize=6.5, loc="best")
    for j, (title, img) in enumerate(imgs.items()):
        ax = fig.add_subplot(gs[:, 2 + j])
        a = as_display(img)
        if zoom is not None:
            t, left, size = zoom
            a = a[t : t + size, left : left + size]
        ax.imshow(a)
        ax.set_title(title, fontsize=7.5)
        no_ticks(ax)
    fig.tight_layout()
    return fig


def exit_summary_figure(
    stop_map: np.ndarray,
    tiles: Sequence[Sequence[float]],
    *,
    stops: Sequence[int] | None = None,
    glob: Sequence[float] | None = None,
    grid: TileGrid | None = None,
    epsilon: float | None = None,
    warmup: int | None = None,
    n_max: int = 20,
    summary: str = "",
    panel: float = 2.8,
) -> Figure:
    """Widget view of one early-exit run: the stop map and the Δ curves (thin per tile, thick global, × at each
    stop), with a one-line cost/quality ``summary`` as the title.

    Args:
        stop_map: (H, W) stop step per pixel (``tile_value_map`` of ``stops``).
        tiles: Δ history per tile (lengths may differ: a tile stopped at step k has k − 1 values).
        stops: stop step per tile; glob: whole-image Δ; grid: the tile grid (stop steps written on the map).
        epsilon, warmup: the rule's ε (dashed line) and T_min (shaded).
        n_max: top of the stop-map colour scale and of the x axis.
    """
    fig, axes = plt.subplots(1, 2, figsize=(2 * panel + 1.2, panel + 0.4),
                             gridspec_kw={"width_ratios": [1, 1.5]})
    im = _stop_map_axes(axes[0], stop_map, grid, stops, n_max)
    axes[0].set_title("stop step per tile", fontsize=8)
    cb = fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.03)
    cb.set_ticks(sorted({1, n_max} | set(range(5, n_max, 5))))
    cb.ax.tick_params(labelsize=7)
    _delta_axes(axes[1], [list(h) for h in tiles], glob, TILE_COLOURS[0], stops, epsilon, warmup)
    axes[1].set_xlim(0.5, n_max + 0.5)
    axes[1].set_xlabel("step k", fontsize=8)
    axes[1].set_ylabel(r"$\Delta_k$", fontsize=8)
    axes[1].tick_params(labelsize=7)
    axes[1].legend(fontsize=6.5, loc="best")
    if summary:
        fig.suptitle(summary, fontsize=8.5)
    fig.tight_layout()
    return fig


__all__ = ["abs_difference", "delta_curves_figure", "delta_steps", "exit_summary_figure", "stop_quality_figure",
           "stops_figure"]
