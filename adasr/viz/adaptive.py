"""The speed–quality curve of ``adasr bench adaptive``: cost against LPIPS and against PSNR, per policy."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

_STYLE = {"uniform": ("k", "o", "-"), "allocation": ("tab:blue", "s", ""), "early-exit": ("tab:orange", "^", ""),
          "adasr": ("tab:green", "D", "")}


def plot_speed_quality(result: dict[str, Any], *, inches: float = 4.2) -> Figure:
    """Two panels — mean tile-evaluations per tile vs LPIPS (lower is better) and vs PSNR-Y — with the uniform
    DDIM sweep drawn as a line and every adaptive configuration as a point. ``result`` is the dict returned by
    :func:`adasr.benchmarks.adaptive.adaptive` (its ``sweep`` entries, plus the headline arms)."""
    pts = list(result.get("sweep", []))
    if not pts:
        raise ValueError("the result has no sweep points (run the benchmark without --no-sweep)")
    fig = Figure(figsize=(2 * inches + 1.0, inches))
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(axes, ("lpips", "psnr_y"), ("LPIPS (AlexNet) ↓", "PSNR-Y (dB, shave 4) ↑")):
        for policy, (color, marker, line) in _STYLE.items():
            sel = sorted((p for p in pts if p["policy"] == policy), key=lambda p: p["mean_steps_per_tile"])
            if not sel:
                continue
            xs = [p["mean_steps_per_tile"] for p in sel]
            ys = [p[key] for p in sel]
            ax.plot(xs, ys, color=color, marker=marker, linestyle=line or "none", label=policy, markersize=5)
        ax.set_xlabel("UNet tile-evaluations per tile (mean)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("adaptive policies vs uniform DDIM (held-out crops)", fontsize=11)
    fig.tight_layout()
    return fig
