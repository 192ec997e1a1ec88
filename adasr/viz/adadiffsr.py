"""Figures of AdaDiffSR (notebook 07): the cost–quality plane of ``adasr bench adadiffsr`` (uniform curves, the
hindsight oracle's frontier, where DTSS and AdaSR land), class maps over time and gain curves per tile.

Every function draws from data it is given (a bench result, a sampler run's records) and returns a Figure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .common import METRIC_LABELS

#: colours of the DTSS gain signals and the AdaSR policies
_ARM_STYLE = {"regressor": ("tab:red", "o"), "metrics": ("tab:purple", "s"), "oracle": ("tab:brown", "D"),
              "allocation": ("tab:blue", "v"), "early-exit": ("tab:orange", "^")}
_FAMILY_STYLE = {"linspace": ("k", "-"), "balanced": ("tab:green", "--")}
#: colours of the DTSS classes in class maps
CLASS_COLOURS = {"growing": "#d62728", "stable": "#1f77b4", "saturated": "#2ca02c", "done": "#dddddd"}


def _curves(result: Mapping[str, Any]):
    from ..benchmarks.adadiffsr import oracle_curves

    return oracle_curves(result["oracle"])


def cost_quality_figure(result: Mapping[str, Any], metrics: Sequence[str] = ("lpips", "psnr_y"),
                        max_steps: float | None = 12.0) -> Figure:
    """One panel per metric: mean tile-evaluations per tile against the metric (mean over the bench's images) for
    the uniform curves of each family, the oracle frontier, and every arm of ``result["arms"]`` (DTSS by gain
    signal, filled for the ``linspace`` base and open for ``balanced``; AdaSR allocation and early exit)."""
    uniform, frontier = _curves(result)
    fig = Figure(figsize=(6.2 * len(metrics), 4.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for fam, c in uniform.items():
            col, ls = _FAMILY_STYLE.get(fam, ("gray", ":"))
            xs = np.asarray(c["steps"])
            keep = xs <= max_steps if max_steps else np.ones_like(xs, bool)
            ax.plot(xs[keep], np.asarray(c[metric])[keep], ls, color=col, marker=".", ms=5,
                    label=f"uniform {fam}")
        xs = np.asarray(frontier["steps"])
        keep = xs <= max_steps if max_steps else np.ones_like(xs, bool)
        ax.plot(xs[keep], np.asarray(frontier[metric])[keep], "-", color="gold", lw=2.5, marker="*", ms=10,
                mec="k", mew=0.5, label="hindsight oracle", zorder=3)
        seen = set()
        for a in result["arms"]:
            kind = a.get("signal") if a.get("kind") == "dtss" else a.get("kind")
            col, mk = _ARM_STYLE.get(kind, ("gray", "x"))
            label = f"DTSS ({kind})" if a.get("kind") == "dtss" else f"AdaSR {kind}"
            filled = a.get("base", "linspace") == "linspace"
            if max_steps and a["mean_steps_per_tile"] > max_steps:
                continue
            ax.plot([a["mean_steps_per_tile"]], [a[metric]], mk, color=col, ms=8, mfc=col if filled else "white",
                    mew=1.5, label=None if label in seen else label, zorder=4)
            seen.add(label)
        ax.set_xlabel("tile-evaluations per tile (mean)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("Cost–quality (filled: DTSS along linspace, open: along balanced)", fontsize=11)
    fig.tight_layout()
    return fig


def class_timeline(records: Sequence[Sequence[Mapping[str, Any]]]) -> tuple[np.ndarray, list[str]]:
    """(classes (n_tiles, n_steps) as indices into the returned names, names): each tile's class at each of its
    steps, 'done' after its last."""
    names = ["growing", "stable", "saturated", "done"]
    n = max((len(r) for r in records), default=0)
    out = np.full((len(records), n), names.index("done"))
    for k, rec in enumerate(records):
        for j, r in enumerate(rec):
            out[k, j] = names.index(r["class"])
    return out, names


def class_maps_figure(records: Sequence[Sequence[Mapping[str, Any]]], grid, steps: Sequence[int] | None = None,
                      image: np.ndarray | None = None) -> Figure:
    """Class maps over time: for each step k (default: every step of the longest tile, at most 6), the image-sized
    map of each tile's class at its k-th step (the tile nearest each pixel, as the step maps of notebook 05)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..adaptive.allocation import tile_value_map

    cls, names = class_timeline(records)
    ks = list(steps) if steps is not None else list(range(min(cls.shape[1], 6)))
    cols = len(ks) + (image is not None)
    fig = Figure(figsize=(2.4 * cols, 2.8))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    cmap = ListedColormap([CLASS_COLOURS[n] for n in names])
    if image is not None:
        axes[0].imshow(image)
        axes[0].set_title("input ↑ (bicubic)", fontsize=9)
    for ax, k in zip(axes[1:] if image is not None else axes, ks):
        m = tile_value_map(cls[:, k].astype(float).tolist(), grid).numpy()
        ax.imshow(m, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest")
        ax.set_title(f"step {k + 1}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(handles=[Patch(color=CLASS_COLOURS[n], label=n) for n in names], loc="lower center", ncol=4,
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def gain_curves_figure(runs: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], tiles: Sequence[int],
                       tau: float = 5e-3) -> Figure:
    """I^FR and I^NR against t for ``tiles``, one line style per run of ``runs`` ({label: records}, e.g.
    computed metrics vs regressor), with ±τ shaded."""
    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, 2)
    styles = ["-", "--", ":", "-."]
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for ax, key, title in zip(axes, ("i_fr", "i_nr"), ("I^FR (full reference)", "I^NR (no reference)")):
        ax.axhspan(-tau, tau, color="0.85", label="|I| ≤ τ")
        for s, (label, records) in enumerate(runs.items()):
            for c, k in enumerate(tiles):
                rec = records[k]
                ax.plot([r["t"] for r in rec], [r[key] for r in rec], styles[s % 4], marker="o", ms=3,
                        color=colours[c % len(colours)], label=f"{label}, tile {k}")
        ax.invert_xaxis()
        ax.set_xlabel("timestep t of the step (noise → clean)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def ablation_gap(row: Mapping[str, Any]) -> float:
    """A run's LPIPS minus the **best** (lowest-LPIPS) uniform control at its mean budget (> 0: the run is worse
    than the best fixed schedule at the same cost): the largest of its ``controls["gap_lpips"]`` (arm − control)."""
    return float(max(row["controls"]["gap_lpips"].values()))


def ablation_figure(result: Mapping[str, Any]) -> Figure:
    """The paper's ablations on our model: for each ablation group, one bar per run, its LPIPS gap to the best
    uniform schedule at its mean budget (:func:`ablation_gap`; red: worse than that control), annotated with its mean
    steps per tile, its wall clock and, for region integration, its seam score."""
    groups = [g for g in ("codebook", "metrics", "signal", "integration") if result["ablations"].get(g)]
    fig = Figure(figsize=(3.6 * len(groups), 3.8))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, g in zip(axes, groups):
        rows = result["ablations"][g]
        labels = [r["arm"].replace("integrate ", "") for r in rows]
        gaps = [ablation_gap(r) for r in rows]
        y = np.arange(len(rows))
        ax.barh(y, gaps, color=["tab:red" if v > 0 else "tab:green" for v in gaps])
        for yy, r in zip(y, rows):
            seams = f", seams {r['seam_score']:.2f}" if g == "integration" and "seam_score" in r else ""
            ax.text(0, yy, f"  {r['mean_steps_per_tile']:.1f} st, {r['seconds']:.0f} s{seams}", va="center",
                    fontsize=7)
        ax.set_yticks(y, labels, fontsize=7)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("LPIPS − best uniform at equal budget", fontsize=8)
        ax.set_title(g, fontsize=10)
    fig.tight_layout()
    return fig


def dtss_run_figure(records: Sequence[Sequence[Mapping[str, Any]]], grid, image: np.ndarray | None = None, *,
                    n_max: int | None = None, summary: str = "", panel: float = 2.6) -> Figure:
    """Widget view of one DTSS run (notebook 07): (1) each tile's class at each of its steps (rows = tiles,
    columns = the tile's steps; 'done' after its last), with the codebook stride it chose written in the cell
    (× where it stopped as saturated, "end" where it reached the end of the chain); (2) the steps each tile took, as an
    image-sized map (the tile nearest each pixel, :func:`~adasr.adaptive.allocation.tile_value_map`) with the count
    at each tile's centre; (3) the output ``image`` (uint8 (H, W, 3)) if given. ``summary`` is the title.

    ``n_max``: top of the step-map colour scale (default: the longest tile)."""
    from matplotlib.colors import ListedColormap

    from ..adaptive.allocation import tile_value_map

    cls, names = class_timeline(records)
    steps = [len(r) for r in records]
    top = n_max or max(steps + [1])
    cols = 2 + (image is not None)
    h_img = grid.height / max(grid.width, 1)
    fig = Figure(figsize=(panel * cols + 0.8, panel * max(h_img, 0.45) + 1.0))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    ax = axes[0]
    ax.imshow(cls, cmap=ListedColormap([CLASS_COLOURS[n] for n in names]), vmin=-0.5, vmax=len(names) - 0.5,
              aspect="auto", interpolation="nearest")
    for k, rec in enumerate(records):
        for j, r in enumerate(rec):
            mark = r.get("stride")
            text = str(mark) if mark is not None else ("×" if r["class"] == "saturated" else "end")
            ax.text(j, k, text, ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(cls.shape[1]), [str(j + 1) for j in range(cls.shape[1])], fontsize=7)
    ax.set_yticks(range(cls.shape[0]), [str(k) for k in range(cls.shape[0])], fontsize=7)
    ax.set_xlabel("step of the tile (number: next stride)", fontsize=8)
    ax.set_ylabel("tile", fontsize=8)
    ax.set_title("class per step", fontsize=9)
    m = tile_value_map([float(s) for s in steps], grid).numpy()
    im = axes[1].imshow(m, cmap="viridis", vmin=1, vmax=max(top, 2), interpolation="nearest")
    for k, (t, l) in enumerate(grid.positions):
        axes[1].text(l + (grid.tile_w - 1) / 2, t + (grid.tile_h - 1) / 2, str(steps[k]), ha="center",
                     va="center", fontsize=8, color="white" if steps[k] < 0.6 * top else "black")
    axes[1].set_title("steps per tile", fontsize=9)
    cb = fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.03)
    cb.ax.tick_params(labelsize=7)
    if image is not None:
        axes[2].imshow(image)
        axes[2].set_title("output", fontsize=9)
    for a in axes[1:]:
        a.set_xticks([])
        a.set_yticks([])
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=CLASS_COLOURS[n], label=n) for n in names], loc="lower center", ncol=4,
               fontsize=7, frameon=False)
    if summary:
        fig.suptitle(summary, fontsize=8.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


__all__ = ["CLASS_COLOURS", "ablation_figure", "ablation_gap", "class_maps_figure", "class_timeline",
           "cost_quality_figure", "dtss_run_figure", "gain_curves_figure"]
