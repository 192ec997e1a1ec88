"""The figure of ``adasr bench spread``: do the notebooks' small differences survive other seeds and crops?

Drawn from the result dict of :func:`adasr.benchmarks.spread.spread` (nothing is computed here beyond picking the
numbers out of it): one row per comparison, two panels (PSNR gain in dB, LPIPS gain; > 0: the arm is better). Each
row shows the mean gain over the (crop, seed) pairs with a ±k·SE bar (k = the result's criterion, 2), the mean of
each seed over the crops as small dots, and the committed single-seed value the notebook quotes as a cross. A bar
that crosses the dashed zero line is a difference the benchmark cannot resolve.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from matplotlib.figure import Figure

#: colour of a row by verdict
VERDICT_COLOURS: dict[str, str] = {"survives": "tab:green", "reversed": "tab:red", "not resolved": "0.45"}


def spread_figure(result: Mapping[str, Any], *, width: float = 10.0, row_height: float = 0.55) -> Figure:
    """Mean gain ± k·SE, per-seed means and the quoted single-seed gain, per comparison (rows) and metric
    (panels: PSNR-Y gain in dB, LPIPS gain), coloured by verdict."""
    names = [n for n in result.get("order", result["comparisons"]) if n in result["comparisons"]]
    fig = Figure(figsize=(width, 1.4 + row_height * max(1, len(names))), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (metric, title) in zip(axes, (("psnr_gain_db", "PSNR-Y gain (dB)"), ("lpips_gain", "LPIPS gain"))):
        for row, name in enumerate(names):
            s = result["comparisons"][name][metric]
            y = len(names) - 1 - row
            colour = VERDICT_COLOURS.get(s["verdict"], "k")
            half = s.get("k", 2.0) * s["se"] if s["se"] is not None and not math.isnan(s["se"]) else 0.0
            ax.errorbar([s["mean"]], [y], xerr=[[half], [half]], fmt="o", color=colour, capsize=4, ms=6, zorder=3)
            ax.plot(s["seed_means"], [y + 0.18] * len(s["seed_means"]), ".", color=colour, alpha=0.6, ms=5)
            if s.get("quoted") is not None:
                ax.plot([s["quoted"]], [y - 0.18], "x", color="k", ms=6)
        ax.axvline(0.0, color="k", ls="--", lw=0.8)
        ax.set_xlabel(title, fontsize=12)
        ax.tick_params(labelsize=11)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels([f"{n} ({result['comparisons'][n]['notebook']})" for n in reversed(names)], fontsize=11)
    seeds = ", ".join(map(str, result.get("seeds", [])))
    fig.suptitle(f"gain > 0: arm better · mean ± 2·SE over {len(result.get('crops', []))} crops × seeds {seeds} · "
                 "dots: per-seed means · ×: quoted single-seed value · green survives, red reversed, grey unresolved",
                 fontsize=10)
    return fig


__all__ = ["VERDICT_COLOURS", "spread_figure"]
