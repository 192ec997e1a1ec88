"""The figure of ``adasr bench schedules``: every schedule at equal N, and the perception–distortion plane.

Two panels drawn from the result dict of :func:`adasr.benchmarks.schedules.compare_schedules` (nothing is sampled
or computed here beyond picking the numbers out of it):

* LPIPS against N for each schedule family (the grid points, N = 1 … max), the seed spread (min–max over the seeds
  that ran) as error bars where more than one seed ran, and ``linspace`` N = 20 (the reference) as a horizontal
  line with its own seed band;
* PSNR-Y against LPIPS (the perception–distortion plane; better is up and to the left), one line per family through
  N = 1 … max with N written at each point, and markers for the reference, the old default (``linspace`` N = 10)
  and the new default.
"""

from __future__ import annotations

from typing import Any, Mapping

from matplotlib.figure import Figure

from .common import METRIC_LABELS

#: colour and marker of each schedule family; others take :data:`EXTRA_STYLES` in turn
SCHEDULE_STYLES: dict[str, tuple[str, str]] = {"linspace": ("0.25", "o"), "perceptual": ("tab:red", "^"),
                                               "balanced": ("tab:green", "D"), "fidelity": ("tab:blue", "s")}
EXTRA_STYLES: tuple[tuple[str, str], ...] = (("tab:purple", "v"), ("tab:orange", "P"), ("tab:brown", "X"),
                                             ("tab:olive", "<"), ("tab:cyan", ">"), ("tab:pink", "h"))
#: how the reference points are marked in the plane: role → (colour, marker, size, label)
ROLE_STYLES: dict[str, tuple[str, str, float, str]] = {
    "reference": ("k", "*", 260, "reference"),
    "old default": ("0.45", "X", 120, "old default"),
    "new default": ("gold", "o", 170, "new default"),
}
SET_TITLES = {"crops": "held-out crops (mean)", "full": "full held-out image"}


def family_curves(result: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """{schedule name: its grid points sorted by N}, in the order of ``result["config"]["schedules"]``."""
    grid = [p for p in result["points"] if "grid" in p["roles"]]
    order = list(result["config"]["schedules"])
    order += [s for s in dict.fromkeys(p["schedule"] for p in grid) if s not in order]
    out = {s: sorted((p for p in grid if p["schedule"] == s), key=lambda p: p["n"]) for s in order}
    return {s: pts for s, pts in out.items() if pts}


def style_of(schedule: str, index: int) -> tuple[str, str]:
    """(colour, marker) of a family: :data:`SCHEDULE_STYLES`, else the ``index``-th of :data:`EXTRA_STYLES`."""
    return SCHEDULE_STYLES.get(schedule, EXTRA_STYLES[index % len(EXTRA_STYLES)])


def _stat(p: Mapping[str, Any], set_name: str, key: str) -> Mapping[str, float]:
    return p["summary"][set_name][key]


def _role_point(result: Mapping[str, Any], role: str) -> Mapping[str, Any] | None:
    return next((p for p in result["points"] if role in p["roles"]), None)


def _seed_note(result: Mapping[str, Any]) -> str:
    extra = result["seeds"]["extra"]
    if not extra:
        return f"one seed ({result['seeds']['all_points'][0]})"
    seeds = ", ".join(str(s) for s in result["seeds"]["all_points"] + extra)
    return f"error bars: min–max over seeds {seeds} (N ≤ {result['config']['spread_max_steps']} and references)"


def schedule_comparison_figure(result: Mapping[str, Any], *, set_name: str = "crops", inches: float = 5.0,
                               annotate: bool = True) -> Figure:
    """LPIPS vs N per schedule family and PSNR-Y vs LPIPS (module docstring), for the image set ``set_name``
    (``"crops"``: the mean over the held-out crops; ``"full"``: the whole held-out image).

    ``result``: the dict of :func:`~adasr.benchmarks.schedules.compare_schedules` (its ``points`` with
    ``summary[set][metric]`` = {"mean"[, "min", "max", "std"]}). ``inches``: the height; the width is 2.3×.
    ``annotate``: write N at each point of the plane. Returns a Figure with two axes."""
    if set_name not in SET_TITLES:
        raise ValueError(f"set_name must be one of {', '.join(SET_TITLES)}, got {set_name!r}")
    curves = family_curves(result)
    if not curves:
        raise ValueError("the result has no grid points")
    fig = Figure(figsize=(2.3 * inches, inches))
    ax_n, ax_pd = fig.subplots(1, 2)
    k = len(curves)
    for i, (name, pts) in enumerate(curves.items()):
        colour, marker = style_of(name, i)
        dodge = (i - (k - 1) / 2) * 0.08  # families side by side, so that equal values and bars stay visible
        xs = [p["n"] + dodge for p in pts]
        lp = [_stat(p, set_name, "lpips") for p in pts]
        ax_n.plot(xs, [s["mean"] for s in lp], color=colour, marker=marker, markersize=6, linewidth=1.6, label=name)
        spread = [(x, s) for x, s in zip(xs, lp) if "min" in s]
        if spread:
            ax_n.errorbar([x for x, _ in spread], [s["mean"] for _, s in spread],
                          yerr=[[s["mean"] - s["min"] for _, s in spread], [s["max"] - s["mean"] for _, s in spread]],
                          fmt="none", ecolor=colour, elinewidth=1.2, capsize=3)
        ps = [_stat(p, set_name, "psnr_y")["mean"] for p in pts]
        ax_pd.plot([s["mean"] for s in lp], ps, color=colour, marker=marker, markersize=6, linewidth=1.4,
                   label=f"_{name}")  # the families are named in the left panel's legend
        if annotate:
            for p, s, y in zip(pts, lp, ps):
                ax_pd.annotate(str(p["n"]), (s["mean"], y), textcoords="offset points", xytext=(4, 4), fontsize=8,
                               color=colour)
    ref = _role_point(result, "reference")
    if ref is not None:
        s = _stat(ref, set_name, "lpips")
        ax_n.axhline(s["mean"], color="k", linestyle="--", linewidth=1.3, label=f"{ref['label']} (reference)")
        if "min" in s:
            ax_n.axhspan(s["min"], s["max"], color="k", alpha=0.08, linewidth=0)
    for role, (colour, marker, size, text) in ROLE_STYLES.items():
        p = _role_point(result, role)
        if p is None:
            continue
        x, y = _stat(p, set_name, "lpips")["mean"], _stat(p, set_name, "psnr_y")["mean"]
        ax_pd.scatter([x], [y], s=size, marker=marker, color=colour, edgecolors="k", linewidths=0.8, zorder=5,
                      label=f"{text}: {p['label']}")
    ax_n.set_xlabel("steps N (UNet evaluations per tile)", fontsize=11)
    ax_n.set_ylabel(METRIC_LABELS["lpips"], fontsize=11)
    ns = sorted({p["n"] for pts in curves.values() for p in pts})
    ax_n.set_xticks(ns)
    ax_n.set_title(f"LPIPS vs N — {SET_TITLES[set_name]}", fontsize=11)
    ax_pd.set_xlabel(METRIC_LABELS["lpips"], fontsize=11)
    ax_pd.set_ylabel(METRIC_LABELS["psnr_y"], fontsize=11)
    ax_pd.set_title("perception–distortion plane (better: ↖), N at each point", fontsize=11)
    for ax in (ax_n, ax_pd):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10)
    ax_n.legend(fontsize=9)
    ax_pd.legend(fontsize=9, loc="best", framealpha=0.85)
    cfg = result["config"]
    size = result["images"][set_name]["size"]
    fig.suptitle(f"Sampling schedules at equal N, ×{cfg['scale']}, {', '.join(result['images'][set_name]['names'])} "
                 f"{size[0]}² · {_seed_note(result)}", fontsize=11)
    fig.tight_layout()
    return fig


__all__ = ["EXTRA_STYLES", "ROLE_STYLES", "SCHEDULE_STYLES", "family_curves", "schedule_comparison_figure",
           "style_of"]
