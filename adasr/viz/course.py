"""The course map's figure (notebook 00): the dependency graph between the notebooks.

:func:`course_graph` only draws what it is given — chapters, edges and each chapter's depth in the graph
(:func:`adasr.course.depths`). Chapters are boxes in columns by depth (a chapter sits one column right of its
deepest prerequisite), in fixed rows where given (:data:`adasr.course.GRAPH_ROWS`), else ordered by number within a
column; a solid arrow is a required prerequisite, a dashed one a recommended one; planned chapters are grey boxes
with a dashed border. An arrow between neighbouring columns or along one row is straight; a longer one is an elbow
that goes around the boxes in between. Each artist carries a ``gid`` (``node:05``, ``label:05``, ``note:05``,
``edge:04->05``) so tests can find what was drawn.
"""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch

#: box fill, edge colour and border style by status
STATUS_STYLE = {"ready": ("#dbe9f6", "#1f4e79", "-"), "planned": ("#eeeeee", "#888888", "--")}
BOX_W, BOX_H = 1.7, 1.05
COL_STEP, ROW_STEP = 2.1, 1.45
#: inches per data unit (about 13 inches wide for 8 columns: readable on a slide)
SCALE = 0.78
#: characters per line of a chapter title inside its box
WRAP = 14


def node_positions(numbers: Sequence[str], depths: Mapping[str, int],
                   rows: Mapping[str, float] | None = None) -> dict[str, tuple[float, float]]:
    """(x, y) centre of each chapter: x = depth · COL_STEP; y = rows[number] · ROW_STEP where a row is given, else
    the chapters of a column without a row are spread evenly around 0 (first number on top)."""
    rows = rows or {}
    columns: dict[int, list[str]] = {}
    for n in numbers:
        if n not in rows:
            columns.setdefault(depths[n], []).append(n)
    pos = {n: (depths[n] * COL_STEP, rows[n] * ROW_STEP) for n in numbers if n in rows}
    for d, col in columns.items():
        col = sorted(col)
        for k, n in enumerate(col):
            pos[n] = (d * COL_STEP, ((len(col) - 1) / 2 - k) * ROW_STEP)
    return pos


def _anchor(p: tuple[float, float], q: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from box centre p towards q leaves the box around p (plus a small gap)."""
    (x, y), (u, v) = p, q
    dx, dy = u - x, v - y
    sx = (BOX_W / 2 + 0.05) / abs(dx) if dx else float("inf")
    sy = (BOX_H / 2 + 0.05) / abs(dy) if dy else float("inf")
    s = min(sx, sy)
    return x + s * dx, y + s * dy


def course_graph(nodes: Sequence[tuple[str, str, str]], edges: Sequence[tuple[str, str, str]],
                 depths: Mapping[str, int], rows: Mapping[str, float] | None = None,
                 notes: Mapping[str, str] | None = None, title: str | None = None) -> Figure:
    """The dependency graph. ``nodes``: (number, title, status) with status 'ready' or 'planned'; ``edges``:
    (prerequisite, chapter, 'required' | 'recommended'), only between drawn nodes; ``depths``: the column of each
    node; ``rows``: optional fixed rows (:func:`node_positions`); ``notes``: an optional small line at the bottom
    of a node's box (e.g. its measured run time)."""
    numbers = [n for n, _, _ in nodes]
    known = set(numbers)
    for a, b, kind in edges:
        if a not in known or b not in known:
            raise ValueError(f"edge {a}->{b} joins a chapter that is not drawn")
        if kind not in ("required", "recommended"):
            raise ValueError(f"edge kind must be 'required' or 'recommended', got {kind!r}")
    pos = node_positions(numbers, depths, rows)
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    x_lo, x_hi = min(xs) - BOX_W / 2 - 0.2, max(xs) + BOX_W / 2 + 0.2
    y_lo, y_hi = min(ys) - BOX_H / 2 - 0.6, max(ys) + BOX_H / 2 + 0.2
    fig, ax = plt.subplots(figsize=(SCALE * (x_hi - x_lo), SCALE * (y_hi - y_lo) + (0.4 if title else 0.0)))
    notes = notes or {}
    for number, name, status in nodes:
        fill, edge, ls = STATUS_STYLE[status]
        x, y = pos[number]
        ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.03",
                                    facecolor=fill, edgecolor=edge, linestyle=ls, linewidth=1.6,
                                    gid=f"node:{number}"))
        note = notes.get(number)
        ax.text(x, y + (0.09 if note else 0.0), number + "\n" + textwrap.fill(name, WRAP), ha="center",
                va="center", fontsize=10.5, color="black" if status == "ready" else "#555555", linespacing=1.1,
                gid=f"label:{number}")
        if note:
            ax.text(x, y - BOX_H / 2 + 0.05, note, ha="center", va="bottom", fontsize=8.5, color="#333333",
                    style="italic", gid=f"note:{number}")
    for a, b, kind in edges:
        style = dict(color="#333333", lw=1.4, linestyle="-" if kind == "required" else (0, (4, 3)))
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if abs(xb - xa) <= COL_STEP + 1e-9 or abs(yb - ya) < 1e-9:  # neighbours or one row: a straight arrow
            start, end = _anchor(pos[a], pos[b]), _anchor(pos[b], pos[a])
        else:  # an elbow around the boxes in between: first away from the main row, or first along its own row
            gap_x, gap_y = BOX_W / 2 + 0.05, BOX_H / 2 + 0.05
            sx, sy = (1.0 if xb > xa else -1.0), (1.0 if yb > ya else -1.0)
            if abs(ya) < abs(yb):  # vertical first, then into the side of b
                start, corner, end = (xa, ya + sy * gap_y), (xa, yb), (xb - sx * gap_x, yb)
            else:  # along a's row, then into the top or bottom of b
                start, corner, end = (xa + sx * gap_x, ya), (xb, ya), (xb, yb - sy * gap_y)
            ax.plot([start[0], corner[0]], [start[1], corner[1]], gid=f"edge:{a}->{b}", **style)
            start = corner
        ax.annotate("", xy=end, xytext=start, gid=f"edge:{a}->{b}",
                    arrowprops=dict(arrowstyle="-|>", mutation_scale=14, shrinkA=0, shrinkB=0, **style))
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [Line2D([], [], color="#333333", lw=1.4, label="required"),
               Line2D([], [], color="#333333", lw=1.4, linestyle=(0, (4, 3)), label="recommended"),
               Patch(facecolor=STATUS_STYLE["ready"][0], edgecolor=STATUS_STYLE["ready"][1], label="notebook"),
               Patch(facecolor=STATUS_STYLE["planned"][0], edgecolor=STATUS_STYLE["planned"][1], linestyle="--",
                     label="planned")]
    ax.legend(handles=handles, loc="lower right", fontsize=10.5, frameon=False, ncol=4)
    if title:
        ax.set_title(title, fontsize=13)
    fig.tight_layout()
    return fig


__all__ = ["course_graph", "node_positions"]
