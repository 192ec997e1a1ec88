"""The speed–quality curve of ``adasr bench adaptive``: cost against LPIPS and against PSNR, per policy, every point
labelled; and :func:`place_labels`, the label placement the cost–quality figures share (notebook 05).

``plot_speed_quality`` draws from a bench result only (the JSON of ``adasr bench adaptive --json``), so the figure
can be redrawn from the committed ``benchmarks/results/adaptive.json`` without measuring anything
(``adasr bench adaptive --replot benchmarks/results/adaptive.json --figure figures/bench_adaptive_curve.png``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

_STYLE = {"uniform": ("k", "o", "-"), "allocation": ("tab:blue", "s", ""), "early-exit": ("tab:orange", "^", ""),
          "adasr": ("tab:green", "D", "")}
#: line styles of the uniform curves of the other schedule families (drawn for reference, without points' labels)
_FAMILY_LINES = ("--", "-.", ":")

#: candidate label positions around a point: (dx, dy) direction in points, horizontal and vertical alignment
_SIDES = ((1, 0, "left", "center"), (0, 1, "center", "bottom"), (-1, 0, "right", "center"),
          (0, -1, "center", "top"), (0.8, 0.8, "left", "bottom"), (-0.8, 0.8, "right", "bottom"),
          (-0.8, -0.8, "right", "top"), (0.8, -0.8, "left", "top"))


def _renderer(fig):
    get = getattr(fig.canvas, "get_renderer", None)
    return get() if get is not None else fig._get_renderer()


def _obstacles(ax, step_px: float = 3.0) -> np.ndarray:
    """Display coordinates (K, 3) = (x, y, radius) of everything drawn as a line or marker in ``ax``: each marker,
    and points every ``step_px`` pixels along each drawn line segment (radius: half the line width or marker)."""
    out: list[tuple[float, float, float]] = []
    px = ax.figure.dpi / 72.0
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
        if len(xy) == 0:
            continue
        d = ax.transData.transform(xy)
        if line.get_marker() not in (None, "None", "none", ""):
            r = 0.5 * line.get_markersize() * px + 1.0
            out += [(x, y, r) for x, y in d]
        if line.get_linestyle() not in ("None", "none", "", " "):
            r = 0.5 * line.get_linewidth() * px + 1.0
            for a, b in zip(d[:-1], d[1:]):
                n = max(2, int(np.hypot(*(b - a)) / step_px) + 1)
                out += [(x, y, r) for x, y in np.linspace(a, b, n)]
    return np.asarray(out, dtype=float).reshape(-1, 3)


def _gap(p: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Distance (display units) from point ``p`` to the rectangle ``box`` = (x0, y0, x1, y1); 0 inside it."""
    x0, y0, x1, y1 = box
    return float(np.hypot(max(x0 - p[0], 0.0, p[0] - x1), max(y0 - p[1], 0.0, p[1] - y1)))


def place_labels(ax, x: Sequence[float], y: Sequence[float], labels: Sequence[str], *,
                 colors: str | Sequence[str] = "0.25", fontsize: float = 7.5,
                 radii: float | Sequence[float] = 3.0, distances: Sequence[float] = (2.0, 6.0, 11.0, 17.0)) -> list:
    """Label the points (x_i, y_i) of ``ax`` with ``labels[i]``, each on the side where it covers least and reads
    as its own.

    For each point in turn, every candidate position — 8 sides (right, above, left, below, the diagonals) at each
    offset of ``distances`` (points) beyond the point's marker radius ``radii[i]`` (points) — is scored by: overlap
    area with the labels placed before it (relative to its own area, ×10; the legend counts as one), number of
    drawn markers and line samples it covers (:func:`_obstacles`, ×3), the part of it outside the axes (×20), 4
    when the label's box is nearer another labelled point than its own (it would read as that point's), and
    0.05 per point of offset; the lowest score wins (greedy, deterministic). A label placed at the largest offset
    gets a thin leader line. Call it after the data are drawn and the layout is fixed (``fig.tight_layout()``).
    Empty labels are skipped. Returns the annotations (in ``ax.texts``)."""
    fig = ax.figure
    renderer = _renderer(fig)
    obst = _obstacles(ax)
    box_ax = ax.get_window_extent(renderer)
    n = len(labels)
    cols = [colors] * n if isinstance(colors, str) else list(colors)
    rads = [float(radii)] * n if isinstance(radii, (int, float)) else [float(r) for r in radii]
    pts = ax.transData.transform(np.column_stack([np.asarray(x, float), np.asarray(y, float)])) if n else \
        np.zeros((0, 2))
    placed: list[tuple[float, float, float, float]] = []
    legend = ax.get_legend()
    if legend is not None:  # the legend is covered like a label placed before
        lb = legend.get_window_extent(renderer)
        placed.append((lb.x0, lb.y0, lb.x1, lb.y1))
    texts = []
    for i, (xi, yi, text, color) in enumerate(zip(x, y, labels, cols)):
        if not text:
            continue
        others = np.array([p for j, p in enumerate(pts) if j != i and labels[j] and not np.allclose(p, pts[i])])
        ann = ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(0, 0), fontsize=fontsize,
                          color=color, annotation_clip=False)
        best: tuple[float, tuple] | None = None
        for d in distances:
            for sx, sy, ha, va in _SIDES:
                off = (sx * (d + rads[i]), sy * (d + rads[i]) - (2.0 if sy == 0 else 0.0))
                ann.set_position(off)
                ann.set_ha(ha)
                ann.set_va(va)
                bb = ann.get_window_extent(renderer)
                x0, y0, x1, y1 = bb.x0 - 1, bb.y0 - 1, bb.x1 + 1, bb.y1 + 1
                area = max((x1 - x0) * (y1 - y0), 1.0)
                overlap = sum(max(0.0, min(x1, p[2]) - max(x0, p[0])) * max(0.0, min(y1, p[3]) - max(y0, p[1]))
                              for p in placed) / area
                covered = 0
                if len(obst):
                    hit = ((obst[:, 0] + obst[:, 2] > x0) & (obst[:, 0] - obst[:, 2] < x1)
                           & (obst[:, 1] + obst[:, 2] > y0) & (obst[:, 1] - obst[:, 2] < y1))
                    covered = int(hit.sum())
                inside_w = max(0.0, min(x1, box_ax.x1) - max(x0, box_ax.x0))
                inside_h = max(0.0, min(y1, box_ax.y1) - max(y0, box_ax.y0))
                outside = 1.0 - inside_w * inside_h / area
                ambiguous = len(others) and min(_gap(p, (x0, y0, x1, y1)) for p in others) < \
                    _gap(pts[i], (x0, y0, x1, y1)) - 1.0
                score = 10.0 * overlap + 3.0 * covered + 20.0 * outside + 4.0 * bool(ambiguous) + 0.05 * d
                if best is None or score < best[0]:
                    best = (score, (off, ha, va, (x0, y0, x1, y1), d))
        assert best is not None
        off, ha, va, box, d = best[1]
        ann.set_position(off)
        ann.set_ha(ha)
        ann.set_va(va)
        if d >= max(distances):  # far from its point: a leader line says whose label it is
            ann.remove()
            ann = ax.annotate(text, (xi, yi), textcoords="offset points", xytext=off, fontsize=fontsize,
                              color=color, ha=ha, va=va, annotation_clip=False,
                              arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5, "shrinkA": 0,
                                          "shrinkB": rads[i]})
        placed.append(box)
        texts.append(ann)
    return texts


def short_label(point: dict[str, Any]) -> str:
    """A sweep point's label without its policy: 'allocation 2–20 learned' → '2–20 learned', 'uniform N=5' → '5',
    'early-exit ε=0.003 T_min=10' → 'ε=0.003 T_min=10'."""
    label, policy = str(point.get("label", "")), str(point.get("policy", ""))
    if label.startswith(policy):
        label = label[len(policy):].strip()
    return label[2:] if label.startswith("N=") else label


def _merged(points: list[dict[str, Any]], key: str) -> list[tuple[float, float, str, bool]]:
    """(x, y, label, is_default) per distinct position: points of one policy at the same (cost, metric) share one
    label, their labels joined by ', ' ('ε=0.003, ε=0.005')."""
    out: dict[tuple[float, float], list] = {}
    for p in points:
        pos = (round(float(p["mean_steps_per_tile"]), 6), round(float(p[key]), 6))
        entry = out.setdefault(pos, [[], False])
        lab = short_label(p)
        if p.get("default"):
            lab = f"{lab} (default)" if lab else "default"
        if lab not in entry[0]:
            entry[0].append(lab)
        entry[1] = entry[1] or bool(p.get("default"))
    return [(x, y, ", ".join(labs), d) for (x, y), (labs, d) in out.items()]


def speed_quality_points(result: dict[str, Any], family: str | None = None) -> list[dict[str, Any]]:
    """The points of one family's curve: its sweep, plus each headline arm of the run's :class:`AdaptiveConfig`
    (the defaults, unless the bench was run with other options) that the sweep does not already hold — an arm equal
    to a sweep point marks that point ``"default": True``; a new one is added with label '<policy> default'."""
    fam = family or result.get("primary_schedule") or "linspace"
    block = result.get("families", {}).get(fam) or result
    pts = [dict(p) for p in block.get("sweep", result.get("sweep", []))]
    for kind, a in (block.get("arms") or {}).items():
        if kind == "uniform":
            continue
        same = [p for p in pts if p["policy"] == kind and p.get("config") == a.get("config")
                and abs(p["mean_steps_per_tile"] - a["mean_steps_per_tile"]) < 1e-9]
        if not same:
            same = [p for p in pts if p["policy"] == kind and abs(p["mean_steps_per_tile"] - a["mean_steps_per_tile"])
                    < 1e-9 and abs(p["lpips"] - a["lpips"]) < 1e-12 and abs(p["psnr_y"] - a["psnr_y"]) < 1e-9]
        if same:
            for p in same:
                p["default"] = True
            continue
        cfg = a.get("config") or {}
        if kind == "allocation" and cfg:
            label = f"allocation {cfg['n_min']}–{cfg['n_max']}"
        elif cfg:
            label = f"{kind} ε={cfg['epsilon']:g}"
        else:
            label = kind
        pts.append({"label": label, "policy": kind, "schedule": fam, "config": cfg, "default": True,
                    **{k: a[k] for k in ("mean_steps_per_tile", "tile_evaluations", "seconds", "psnr_y", "ssim_y",
                                         "lpips") if k in a}})
    return pts


def plot_speed_quality(result: dict[str, Any], *, inches: float = 4.6, family: str | None = None,
                       other_families: bool = True) -> Figure:
    """Two panels — mean tile-evaluations per tile vs LPIPS (lower is better) and vs PSNR-Y — for one schedule
    family (default: the primary, ``linspace``): the uniform DDIM sweep as a line (points labelled with N), every
    adaptive configuration of the sweep as a labelled point, and the headline arms of the run's config (the
    package defaults: allocation N_min–N_max, early exit and adasr at ε) drawn larger with a black edge
    (:func:`speed_quality_points`). With ``other_families``, the uniform curves of the other families of the
    result are drawn as dashed lines for reference. ``result`` is the dict returned by
    :func:`adasr.benchmarks.adaptive.adaptive` or its JSON."""
    fam = family or result.get("primary_schedule") or "linspace"
    block = result.get("families", {}).get(fam) or result
    if not block.get("sweep", result.get("sweep")):
        raise ValueError("the result has no sweep points (run the benchmark without --no-sweep)")
    pts = speed_quality_points(result, fam)
    fig = Figure(figsize=(2 * 1.3 * inches, inches + 0.4))
    axes = fig.subplots(1, 2)
    others = [f for f in result.get("uniform", {}) if f != fam] if other_families else []
    label_jobs = []
    for ax, key, label in zip(axes, ("lpips", "psnr_y"), ("LPIPS (AlexNet) ↓", "PSNR-Y (dB, shave 4) ↑")):
        for g, style in zip(others, _FAMILY_LINES):
            runs = sorted(result["uniform"][g].values(), key=lambda r: r["mean_steps_per_tile"])
            ax.plot([r["mean_steps_per_tile"] for r in runs], [r[key] for r in runs], color="0.55", ls=style,
                    lw=1.2, marker=".", ms=4, label=f"uniform, {g} schedule")
        jobs: list[tuple[float, float, str, str, float]] = []
        for policy, (color, marker, line) in _STYLE.items():
            sel = sorted((p for p in pts if p["policy"] == policy), key=lambda p: p["mean_steps_per_tile"])
            if not sel:
                continue
            xs = [p["mean_steps_per_tile"] for p in sel]
            ys = [p[key] for p in sel]
            name = policy if policy != "uniform" else f"uniform, {fam} schedule"
            ax.plot(xs, ys, color=color, marker=marker, linestyle=line or "none", label=name, markersize=5)
            for x, y, text, default in _merged(sel, key):
                if default:
                    ax.plot([x], [y], color=color, marker=marker, linestyle="none", markersize=10,
                            markeredgecolor="black", markeredgewidth=1.2, label="_default")
                jobs.append((x, y, text, "0.35" if policy == "uniform" else color, 5.5 if default else 3.0))
        ax.set_xlabel("UNet tile-evaluations per tile (mean)", fontsize=10)
        ax.set_ylabel(label, fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        label_jobs.append((ax, jobs))
    handles, names = axes[0].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="0.3", marker="o", linestyle="none", markersize=10, markerfacecolor="white",
                          markeredgecolor="black", markeredgewidth=1.2))
    names.append("default settings (AdaptiveConfig)")
    axes[0].legend(handles, names, fontsize=8, loc="upper right")
    cfg = result.get("config") or {}
    sub = (f"{fam} schedule; defaults N_min–N_max {cfg.get('n_min')}–{cfg.get('n_max')}, ε {cfg.get('epsilon')}"
           if cfg else f"{fam} schedule")
    fig.suptitle(f"adaptive policies vs uniform DDIM (held-out crops, mean)\n{sub}", fontsize=11)
    fig.tight_layout()
    for ax, jobs in label_jobs:
        place_labels(ax, [j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs],
                     colors=[j[3] for j in jobs], radii=[j[4] for j in jobs], fontsize=7.5)
    return fig


__all__ = ["place_labels", "plot_speed_quality", "short_label", "speed_quality_points"]
