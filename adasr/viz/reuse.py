"""Figures of feature reuse (notebook 08): the cost–quality plane of ``adasr bench reuse`` (the uniform curves in
wall clock, where each reuse arm lands), the feature change between steps inside the UNet, MACs per denoiser mode
and a run's modes step by step.

Every function draws from data it is given (a bench result, :func:`~adasr.acceleration.reuse.feature_similarity`'s
output, key masks) and returns a Figure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from ..acceleration.reuse import CACHE_MODES
from .common import METRIC_LABELS

_FAMILY_STYLE = {"linspace": ("k", "-"), "balanced": ("tab:green", "--")}
#: colour per cache, marker per key-step preset
_CACHE_COLOUR = {"encoder": "tab:red", "deepcache": "tab:blue"}
_PRESET_MARKER = {"uniform": "o", "faster-diffusion": "D", "smfdm": "s"}
#: colours of the denoiser modes
MODE_COLOURS = {"full": "#444444", "decoder": "#d62728", "shallow": "#1f77b4"}


def cost_quality_figure(result: Mapping[str, Any], metrics: Sequence[str] = ("lpips", "psnr_y"),
                        x: str = "model_seconds") -> Figure:
    """One panel per metric: wall clock (``x='model_seconds'``: the runs' tile-evaluations per mode × the interleaved
    seconds per mode, summed over the bench's images) or MACs (``'macs'``)
    against the metric for the uniform curves of each family and every reuse arm (colour: cache; marker: key-step
    preset; filled: ``linspace`` base, open: ``balanced``). An arm beats the equal-cost control where it lies below
    (LPIPS) or above (PSNR) the best curve at its own x."""
    fig = Figure(figsize=(6.4 * len(metrics), 4.8))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    scale = 1e12 if x == "macs" else 1.0
    for ax, metric in zip(axes, metrics):
        for fam, c in result["curves"].items():
            col, ls = _FAMILY_STYLE.get(fam, ("gray", ":"))
            xs = np.asarray(c[x]) / scale
            ax.plot(xs, c[metric], ls, color=col, marker=".", lw=1.5, label=f"uniform {fam} (N = "
                    f"{int(c['steps'][0])}…{int(c['steps'][-1])})")
            for n, xv, yv in zip(c["steps"], xs, c[metric]):
                if int(n) in (1, 2, 4, 10, 20):
                    ax.annotate(f"{int(n)}", (xv, yv), textcoords="offset points", xytext=(3, 3), fontsize=8, color=col)
        seen = set()
        for r in result["arms"]:
            col = _CACHE_COLOUR.get(r["cache"], "gray")
            mk = _PRESET_MARKER.get(r["key_steps"], "x")
            filled = r["family"] == "linspace"
            key = (r["cache"], r["key_steps"])
            label = f"{r['cache']}, {r['key_steps']} keys" if key not in seen else None
            seen.add(key)
            ax.scatter(float(r[x]) / scale, r[metric], marker=mk, s=42, color=col if filled else "white",
                       edgecolors=col, linewidths=1.3, zorder=3, label=label)
        ax.set_xlabel("wall clock, s (all images)" if x.endswith("seconds") else "TMACs (all images)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("Feature reuse against uniform DDIM (filled: linspace base, open: balanced base)")
    fig.tight_layout()
    return fig


def feature_change_figure(similarity: Mapping[str, Any], features: Sequence[str] | None = None) -> Figure:
    """The relative change ‖f_{i+1} − f_i‖/‖f_i‖ of each UNet feature between consecutive steps (left) and the
    cosine-similarity matrix of the middle feature across all steps (right), from
    :func:`~adasr.acceleration.reuse.feature_similarity`."""
    change = similarity["change"]
    names = list(features or change)
    ts = similarity["timesteps"]
    fig = Figure(figsize=(12, 4.4))
    ax, ax_m = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    steps = np.arange(1, len(ts))
    for name in names:
        ax.plot(steps, change[name], marker=".", label=name)
    ax.set_xticks(steps)
    ax.set_xticklabels([f"{ts[i - 1]}→{ts[i]}" for i in steps], rotation=70, fontsize=7)
    ax.set_ylabel("relative change between steps")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("how much each feature moves from one step to the next")
    m = np.asarray(similarity["cosine"]["mid"])
    im = ax_m.imshow(m, cmap="viridis", vmin=float(m.min()), vmax=1.0)
    ax_m.set_title("cos(mid_i, mid_j)")
    ax_m.set_xlabel("step j")
    ax_m.set_ylabel("step i")
    fig.colorbar(im, ax=ax_m, fraction=0.046)
    fig.tight_layout()
    return fig


def macs_by_mode_figure(macs: Mapping[str, int]) -> Figure:
    """Bars of the MACs of one tile-evaluation per denoiser mode (and the share of ``full`` each keeps)."""
    fig = Figure(figsize=(5.6, 3.6))
    ax = fig.subplots()
    names = [m for m in ("full", "decoder", "shallow") if m in macs]
    vals = [macs[m] / 1e9 for m in names]
    bars = ax.bar(names, vals, color=[MODE_COLOURS[m] for m in names])
    for b, m in zip(bars, names):
        ax.annotate(f"{macs[m] / 1e9:.2f} G\n{macs[m] / macs['full']:.0%}", (b.get_x() + b.get_width() / 2,
                    b.get_height()), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("GMACs per tile-evaluation")
    ax.set_ylim(0, max(vals) * 1.3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(["full UNet", "decoder only\n(encoder reuse)", "outer blocks\n(DeepCache)"][: len(names)])
    fig.tight_layout()
    return fig


def key_steps_figure(masks: Mapping[str, Sequence[bool]], cache: Mapping[str, str] | None = None) -> Figure:
    """One row per schedule of key steps (name → key mask over the positions): a dark cell runs the whole UNet,
    a coloured one reuses (red: encoder reuse, blue: DeepCache; ``cache`` maps a row to its cache)."""
    rows = list(masks)
    n = max(len(m) for m in masks.values())
    fig = Figure(figsize=(0.32 * n + 3, 0.42 * len(rows) + 1.1))
    ax = fig.subplots()
    for i, name in enumerate(rows):
        mode = CACHE_MODES[(cache or {}).get(name, "encoder")]
        for j, key in enumerate(masks[name]):
            ax.add_patch(_rect(j, i, MODE_COLOURS["full"] if key else MODE_COLOURS[mode]))
    ax.set_xlim(0, n)
    ax.set_ylim(len(rows), 0)
    ax.set_yticks(np.arange(len(rows)) + 0.5)
    ax.set_yticklabels(rows, fontsize=9)
    ax.set_xticks(np.arange(n) + 0.5)
    ax.set_xticklabels([str(j) for j in range(n)], fontsize=7)
    ax.set_xlabel("step (0 = the noisiest)")
    ax.set_title("key steps (dark: the whole UNet) and reuse steps")
    fig.tight_layout()
    return fig


def _rect(x: float, y: float, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.05, y + 0.1), 0.9, 0.8, color=colour)


__all__ = ["MODE_COLOURS", "cost_quality_figure", "feature_change_figure", "key_steps_figure",
           "macs_by_mode_figure"]
