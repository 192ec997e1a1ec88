"""Figures for "which timesteps, not how many" (notebook 02): schedules on the log-SNR curve, the network's x̂0
after each step of a chain, the perception–distortion plane of the schedule search, and the schedule explorer.

Every function takes data (timestep lists, ᾱ tables, images, metric values) and returns the ``Figure``; none
samples a model or computes a metric. The noise scale is read, as in notebook 01, through the log
signal-to-noise ratio of the model's ᾱ table (T,)::

    λ(t) = log SNR(t) = log(ᾱ_t / (1 − ᾱ_t))          (:func:`adasr.viz.diffusion.log_snr`)

which falls from about +9 at t = 0 to about −10 at t = 999 for the linear β schedule of ``sr_x4``. A sampler
walks its list from high noise to low noise, i.e. from left to right in λ; its last entry t_end is an explicit end
(the step from t_end returns the network's clean estimate x̂0(x_{t_end}); :mod:`adasr.diffusion.timesteps`).

Images may be uint8 (H, W, 3) arrays or float tensors in [−1, 1] (:func:`adasr.viz.common.as_display`); metrics
are PSNR-Y in dB (↑) and LPIPS (↓) under the keys ``psnr_y`` and ``lpips``. Text sizes are 10 pt or more, so the
saved figures stay readable on a slide.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .common import METRIC_LABELS, as_display, metric_line, no_ticks
from .diffusion import log_snr

Image = Any  # uint8 (H, W, 3) ndarray or float tensor (1|3, H, W) in [−1, 1]
Point = Mapping[str, Any]  # at least {"psnr_y": float, "lpips": float}

#: the marker of each schedule family in the perception–distortion plane (others: "o")
FAMILY_MARKERS: dict[str, str] = {"power": "o", "karras": "s", "linspace": "^", "trailing": "v", "leading": "<"}
#: how the presets are marked: name → (marker, size)
PRESET_MARKERS: dict[str, tuple[str, float]] = {"perceptual": ("^", 150), "balanced": ("D", 110),
                                                "fidelity": ("s", 110)}
LAMBDA_LABEL = r"$\lambda(t)=\log\,\mathrm{SNR}(t)$"
PIXELS = "nearest"  # images are shown enlarged: one block per pixel, as the course's rcParams do


def lambdas(alphas_cumprod: torch.Tensor, timesteps: Sequence[int]) -> np.ndarray:
    """λ(t) = log(ᾱ_t/(1 − ᾱ_t)) at each of ``timesteps`` (float64 (n,)); ``alphas_cumprod`` is the ᾱ table (T,)."""
    ts = [int(t) for t in timesteps]
    T = int(alphas_cumprod.shape[0])
    if any(not 0 <= t < T for t in ts):
        raise ValueError(f"timesteps must lie in [0, {T}), got {ts}")
    return log_snr(alphas_cumprod).numpy()[ts]


def _check_list(name: str, ts: Sequence[int]) -> list[int]:
    out = [int(t) for t in ts]
    if not out or any(a <= b for a, b in zip(out, out[1:])):
        raise ValueError(f"{name}: a schedule is a non-empty strictly descending list, got {out}")
    return out


def timesteps_on_log_snr(
    alphas_cumprod: torch.Tensor,
    schedules: Mapping[str, Sequence[int]],
    *,
    etas: Mapping[str, float | None] | None = None,
    inches: float = 4.2,
) -> Figure:
    """Where each schedule's steps sit on the noise scale: two panels.

    * left: the curve λ(t) against t with every schedule's timesteps marked on it (one colour per schedule);
    * right: one row per schedule (top to bottom in the order given) with its steps at x = λ(t_i), joined in the
      order the sampler visits them (left → right: noise → clean); the end t_end is ringed in black.

    Args:
        alphas_cumprod: the model's ᾱ table (T,).
        schedules: ``{label: descending timesteps}``.
        etas: optional ``{label: η}`` written after the row labels.
        inches: the height; the width is 2.6×.

    The marked points carry gids for tests: ``"curve:<label>"`` (left, offsets (t, λ(t))), ``"row:<label>"``
    (right, offsets (λ(t), row)) and ``"end:<label>"`` (right, the last step).
    """
    if not schedules:
        raise ValueError("no schedules to draw")
    lists = {k: _check_list(k, v) for k, v in schedules.items()}
    T = int(alphas_cumprod.shape[0])
    lam = log_snr(alphas_cumprod).numpy()
    fig, (ax_c, ax_r) = plt.subplots(1, 2, figsize=(2.6 * inches, inches), gridspec_kw={"width_ratios": [1, 1.25]})
    ax_c.plot(np.arange(T), lam, color="0.55", lw=1.5, zorder=1)
    ax_c.axhline(0.0, color="0.6", lw=0.9, ls="--")
    n = len(lists)
    for i, (label, ts) in enumerate(lists.items()):
        colour = f"C{i}"
        sc = ax_c.scatter(ts, lam[ts], s=34, color=colour, edgecolors="k", linewidths=0.5, zorder=3 + i,
                          label=label)
        sc.set_gid(f"curve:{label}")
        y = n - 1 - i  # first schedule on top
        ax_r.plot(lam[ts], [y] * len(ts), color=colour, lw=1.2, zorder=2)
        row = ax_r.scatter(lam[ts], [y] * len(ts), s=46, color=colour, edgecolors="k", linewidths=0.5, zorder=3)
        row.set_gid(f"row:{label}")
        end = ax_r.scatter([lam[ts[-1]]], [y], s=170, facecolors="none", edgecolors="k", linewidths=1.4, zorder=4)
        end.set_gid(f"end:{label}")
        ax_r.annotate(f"t={ts[-1]}", (lam[ts[-1]], y), textcoords="offset points", xytext=(9, 5), fontsize=10)
    ax_c.set_xlabel("timestep t", fontsize=11)
    ax_c.set_ylabel(LAMBDA_LABEL, fontsize=11)
    ax_c.set_title("the noise scale of the model, λ(t)", fontsize=11)
    ax_c.legend(fontsize=10, loc="upper right")
    names = [f"{k}" + (f"  η={etas[k]:g}" if etas and etas.get(k) is not None else "") for k in lists]
    ax_r.set_yticks(range(n))
    ax_r.set_yticklabels(names[::-1], fontsize=10)
    ax_r.set_ylim(-0.7, n - 0.3)
    ax_r.set_xlim(min(lam) - 0.8, max(lam) + 2.2)
    ax_r.axvline(0.0, color="0.6", lw=0.9, ls="--")
    ax_r.set_xlabel(LAMBDA_LABEL + "   (sampling runs noise → clean, left → right)", fontsize=11)
    ax_r.set_title("each step at its λ; ringed: the end t_end (returns x̂0 there)", fontsize=11)
    for ax in (ax_c, ax_r):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10)
    fig.tight_layout()
    return fig


def pack_rows(lengths: Sequence[int], cols: int, *, reserve: bool = False) -> list[tuple[int, int]]:
    """Lay out strips of ``lengths`` panels in rows of ``cols``, in order, with a blank column between strips that
    share a row; returns (row, first column) per strip. ``reserve``: keep the first row's last column free."""

    def width(row: int) -> int:
        return cols - 1 if reserve and row == 0 else cols

    out, row, col = [], 0, 0
    for n in lengths:
        start = col + 1 if col else 0
        while start + n > width(row):  # does not fit beside the previous strip (or in a reserved first row)
            if start == 0 and row > 0:
                raise ValueError(f"a strip of {n} panels does not fit in {cols} columns")
            row, start = row + 1, 0
        out.append((row, start))
        col = start + n
    return out


def x0_strip_figure(
    images: Mapping[str, Sequence[Image]],
    timesteps: Mapping[str, Sequence[int]],
    alphas_cumprod: torch.Tensor,
    *,
    metrics: Mapping[str, Sequence[Point]] | None = None,
    hr: Image | None = None,
    zoom: tuple[int, int, int] | None = None,
    panel: float = 1.75,
) -> Figure:
    """One row per chain: the network's x̂0 after each of its steps, titled with t and λ(t) (and the metrics).

    Args:
        images: ``{label: [x̂0 after step 1, 2, …]}`` (e.g. the ``image`` of each
            :class:`~adasr.sampling.refinement.Snapshot`).
        timesteps: ``{label: the chain's timesteps}``, one per image (the t the network saw for that x̂0).
        alphas_cumprod: the model's ᾱ table (T,).
        metrics: optional ``{label: [{"psnr_y": …, "lpips": …}, …]}`` per image, written under the title.
        hr: optional reference shown as the last panel of the first row.
        zoom: ``(top, left, size)``: show only that window of every image (to see the detail appear).
        panel: inches per panel.

    Chains are laid out by :func:`pack_rows`: a short chain shares a row with the next one when both fit.
    """
    labels = list(images)
    if list(timesteps) != labels:
        raise ValueError("images and timesteps must name the same chains, in the same order")
    for k in labels:
        if len(images[k]) != len(timesteps[k]):
            raise ValueError(f"{k}: {len(images[k])} images for {len(timesteps[k])} timesteps")

    def window(img: Image) -> np.ndarray:
        arr = as_display(img)
        if zoom is None:
            return arr
        top, left, size = zoom
        return arr[top : top + size, left : left + size]

    cols = max(len(v) for v in images.values()) + (hr is not None)
    placed = pack_rows([len(images[k]) for k in labels], cols, reserve=hr is not None)  # (row, first column)
    rows = max(r for r, _ in placed) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(panel * cols, (panel + 0.55) * rows + 0.2), squeeze=False)
    used = set()
    for k, (r, c0) in zip(labels, placed):
        lam = lambdas(alphas_cumprod, timesteps[k])
        for j, img in enumerate(images[k]):
            ax = axes[r, c0 + j]
            used.add((r, c0 + j))
            ax.imshow(window(img), interpolation=PIXELS)
            title = f"t={int(timesteps[k][j])}  λ={lam[j]:+.1f}"
            if metrics is not None:
                m = metrics[k][j]
                title += f"\n{m['psnr_y']:.2f} dB · {m['lpips']:.3f}"
            ax.set_title(title, fontsize=10)
            no_ticks(ax)
            if j == 0:
                ax.set_ylabel(k, fontsize=11)
    if hr is not None:
        ax = axes[0, cols - 1]
        used.add((0, cols - 1))
        ax.imshow(window(hr), interpolation=PIXELS)
        ax.set_title("HR", fontsize=10)
        no_ticks(ax)
    for r in range(rows):
        for c in range(cols):
            if (r, c) not in used:
                axes[r, c].set_axis_off()
    what = "" if zoom is None else f", zoom [{zoom[0]}:{zoom[0] + zoom[2]}, {zoom[1]}:{zoom[1] + zoom[2]}]"
    scores = "; PSNR-Y, LPIPS of the whole image against the HR" if metrics is not None else ""
    fig.suptitle(f"x̂0 after each step{what} (title: t, λ(t){scores})", fontsize=11)
    fig.tight_layout()
    return fig


def metrics_along_chain(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    alphas_cumprod: torch.Tensor,
    *,
    reference: Mapping[str, Point] | None = None,
    metrics: Sequence[str] = ("psnr_y", "lpips"),
    inches: float = 3.6,
) -> Figure:
    """One panel per metric of x̂0 after each step, against λ(t) of the step: where, in SNR terms, detail appears.

    Args:
        curves: ``{label: {"timesteps": [...], "psnr_y": [...], "lpips": [...]}}``, one value per step.
        alphas_cumprod: the model's ᾱ table (T,).
        reference: ``{name: {metric: value}}`` drawn as horizontal dashed lines (e.g. bicubic).
        metrics: the keys to plot.
        inches: the height; each panel is 1.45× as wide.

    Each line's x data are λ(timesteps) and its y data the metric values, in the order given.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.45 * inches * len(metrics), inches), squeeze=False)
    for ax, key in zip(axes[0], metrics):
        for i, (label, c) in enumerate(curves.items()):
            x = lambdas(alphas_cumprod, c["timesteps"])
            y = np.asarray(c[key], dtype=float)
            if x.shape != y.shape:
                raise ValueError(f"{label}: {len(x)} timesteps but {len(y)} {key} values")
            ax.plot(x, y, "o-", color=f"C{i}", label=label, ms=6, lw=1.6)
        for j, (name, ref) in enumerate((reference or {}).items()):
            if key in ref:
                ax.axhline(ref[key], color="0.35", ls="--" if j == 0 else ":", lw=1.2, label=name)
        ax.axvline(0.0, color="0.6", lw=0.9, ls="--")
        ax.set_xlabel(LAMBDA_LABEL + " of the step", fontsize=11)
        ax.set_ylabel(METRIC_LABELS.get(key, key), fontsize=11)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10)
    axes[0, -1].legend(fontsize=10)
    fig.suptitle("quality of x̂0 after each step, against the noise level the network saw (noise → clean)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def perception_distortion_figure(
    candidates: Sequence[Point],
    *,
    frontier: Mapping[int, Sequence[int]] | None = None,
    presets: Mapping[str, Mapping[int, Point]] | None = None,
    reference: Point | None = None,
    highlight: Mapping[str, Point] | None = None,
    ns: Sequence[int] | None = None,
    preset_ns: Sequence[int] | None = None,
    title: str | None = None,
    inches: float = 5.0,
) -> Figure:
    """PSNR-Y against LPIPS (better: up and to the left) of scored schedule candidates, one colour per N.

    Args:
        candidates: ``[{"n", "psnr_y", "lpips", "family" (optional), …}]`` (the ``candidates`` of
            ``schedules.json``); the marker is the family's (:data:`FAMILY_MARKERS`).
        frontier: ``{N: indices into candidates}`` of each N's perception–distortion frontier, drawn as a line in
            the N's colour (sorted by LPIPS).
        presets: ``{preset name: {N: point}}``, marked with :data:`PRESET_MARKERS` in the N's colour.
        reference: a point marked with a black star (the reference, e.g. DDIM-10 ``linspace`` η = 0).
        highlight: ``{label: point}`` ringed in gold (e.g. the package default).
        ns: the N shown (default: every N of ``candidates``).
        preset_ns: the N whose presets are marked (default: every N shown).
        title: the axes title.
        inches: the height; the width is 1.8× (the legend sits to the right of the axes).

    Gids for tests: ``"n:<N>"`` (candidates), ``"frontier:<N>"`` (lines), ``"preset:<name>"`` (one scatter per
    preset, its points in the order of ``ns``, only the N of ``preset_ns``), ``"reference"`` and
    ``"highlight:<label>"``.
    """
    shown = sorted({int(c["n"]) for c in candidates}) if ns is None else [int(n) for n in ns]
    if not shown:
        raise ValueError("no candidates to draw")
    colour = {n: plt.get_cmap("viridis")(i / max(1, len(shown) - 1) * 0.9) for i, n in enumerate(shown)}
    marked = [n for n in shown if preset_ns is None or n in preset_ns]
    fig, ax = plt.subplots(figsize=(1.8 * inches, inches))
    for n in shown:
        idx = [i for i, c in enumerate(candidates) if int(c["n"]) == n]
        if not idx:
            continue
        first = True
        for fam in dict.fromkeys(candidates[i].get("family", "") for i in idx):
            pts = [candidates[i] for i in idx if candidates[i].get("family", "") == fam]
            sc = ax.scatter([p["lpips"] for p in pts], [p["psnr_y"] for p in pts], s=16, alpha=0.55,
                            marker=FAMILY_MARKERS.get(fam, "o"), color=colour[n], linewidths=0,
                            label=f"N = {n}" if first else None)
            sc.set_gid(f"n:{n}")
            first = False
        if frontier is not None and n in frontier:
            front = sorted((candidates[i] for i in frontier[n]), key=lambda p: p["lpips"])
            (line,) = ax.plot([p["lpips"] for p in front], [p["psnr_y"] for p in front], "-", color=colour[n], lw=1.6)
            line.set_gid(f"frontier:{n}")
    for name, by_n in (presets or {}).items():
        marker, size = PRESET_MARKERS.get(name, ("P", 120))
        pts = [(n, by_n[n]) for n in marked if n in by_n]
        if not pts:
            continue
        sc = ax.scatter([p["lpips"] for _, p in pts], [p["psnr_y"] for _, p in pts], s=size, marker=marker,
                        color=[colour[n] for n, _ in pts], edgecolors="k", linewidths=1.1, zorder=5,
                        label=f"preset {name}" + (f" (N ≤ {max(marked)})" if marked != shown else ""))
        sc.set_gid(f"preset:{name}")
    for label, p in (highlight or {}).items():
        sc = ax.scatter([p["lpips"]], [p["psnr_y"]], s=420, facecolors="none", edgecolors="gold", linewidths=2.6,
                        zorder=6, label=label)
        sc.set_gid(f"highlight:{label}")
    if reference is not None:
        sc = ax.scatter([reference["lpips"]], [reference["psnr_y"]], s=300, marker="*", color="k", zorder=7,
                        label=reference.get("label", "reference"))
        sc.set_gid("reference")
    ax.set_xlabel(METRIC_LABELS["lpips"], fontsize=11)
    ax.set_ylabel(METRIC_LABELS["psnr_y"], fontsize=11)
    ax.set_title(title or "perception–distortion plane of the schedule candidates (better: ↖)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def schedule_explorer_figure(
    up: Image,
    sr: Image,
    hr: Image,
    timesteps: Sequence[int],
    alphas_cumprod: torch.Tensor,
    *,
    eta: float | None = None,
    metrics: Point | None = None,
    up_metrics: Point | None = None,
    panel: float = 2.8,
) -> Figure:
    """bicubic | SR | HR and the schedule's steps on λ(t): the view of the schedule widget of notebook 02.

    Args:
        up, sr, hr: the condition up(LR), the sampler's output and the reference (same size).
        timesteps: the schedule that produced ``sr`` (descending).
        alphas_cumprod: the model's ᾱ table (T,).
        eta: the DDIM η of the run (written in the title).
        metrics, up_metrics: ``{"psnr_y", "lpips"}`` of ``sr`` and of ``up`` against ``hr`` (optional).
        panel: inches per image panel; the curve panel is 1.5× as wide.

    The marked points (gid ``"steps"``) are (t, λ(t)) of ``timesteps``; the end is ringed (gid ``"end"``).
    """
    ts = _check_list("timesteps", timesteps)
    fig, axes = plt.subplots(1, 4, figsize=(panel * 4.5, panel + 0.9),
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.5]})
    eta_txt = f", η={eta:g}" if eta is not None else ""
    titles = ["bicubic up(LR)", f"SR: {len(ts)} steps{eta_txt}", "HR"]
    lines = [metric_line(up_metrics, ("psnr_y", "lpips")), metric_line(metrics, ("psnr_y", "lpips")), ""]
    for ax, img, title, line in zip(axes[:3], (up, sr, hr), titles, lines):
        ax.imshow(as_display(img), interpolation=PIXELS)
        ax.set_title(title + (f"\n{line}" if line else ""), fontsize=10.5)
        no_ticks(ax)
    ax = axes[3]
    T = int(alphas_cumprod.shape[0])
    lam = log_snr(alphas_cumprod).numpy()
    ax.plot(np.arange(T), lam, color="0.55", lw=1.5)
    ax.axhline(0.0, color="0.6", lw=0.9, ls="--")
    sc = ax.scatter(ts, lam[ts], s=50, color="C3", edgecolors="k", linewidths=0.6, zorder=3)
    sc.set_gid("steps")
    end = ax.scatter([ts[-1]], [lam[ts[-1]]], s=190, facecolors="none", edgecolors="k", linewidths=1.4, zorder=4)
    end.set_gid("end")
    for t in ts:
        ax.annotate(str(t), (t, lam[t]), textcoords="offset points", xytext=(6, 4), fontsize=10)
    ax.set_xlabel("timestep t", fontsize=11)
    ax.set_ylabel(LAMBDA_LABEL, fontsize=11)
    ax.set_title(f"schedule {ts}", fontsize=10.5)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=10)
    fig.tight_layout()
    return fig


__all__ = ["FAMILY_MARKERS", "PRESET_MARKERS", "lambdas", "metrics_along_chain", "pack_rows",
           "perception_distortion_figure", "schedule_explorer_figure", "timesteps_on_log_snr", "x0_strip_figure"]
