"""Figures of sparse momentum (notebook 09): per-layer density over training, the training losses of the dense,
sparse and fewer-channels runs, and why 15 % of the weights is not 6.7× faster on a CPU.

Every function draws from data it is given (``adasr bench sparse``'s result, a run's sparse updates) and returns a
Figure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

ARM_COLOURS = {"dense": "k", "sparse": "tab:red", "structured": "tab:blue"}


def short_layer(name: str) -> str:
    """``down.1.0.conv1.weight`` → ``down.1.0.conv1`` (the weight suffix dropped)."""
    return name[: -len(".weight")] if name.endswith(".weight") else name


def density_heatmap_figure(updates: Sequence[Mapping[str, Any]], layers: Sequence[str] | None = None,
                           initial: float | None = None) -> Figure:
    """Per-layer density (rows: layers in network order; columns: the prune/regrow updates) from a sparse run's
    updates (``training_log(run)['sparse_updates']``); ``initial`` adds the uniform start as a first column."""
    names = list(layers or updates[0]["layer_density"])
    cols = [[u["layer_density"][n] for n in names] for u in updates]
    steps = [u["step"] for u in updates]
    if initial is not None:
        cols = [[initial] * len(names)] + cols
        steps = [0] + steps
    m = np.asarray(cols).T
    fig = Figure(figsize=(max(6.0, 0.35 * len(steps) + 4), max(4.0, 0.16 * len(names) + 1.5)))
    ax = fig.subplots()
    im = ax.imshow(m, aspect="auto", cmap="magma", vmin=0, vmax=max(0.5, float(m.max())))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([short_layer(n) for n in names], fontsize=6)
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels([str(s) for s in steps], rotation=90, fontsize=7)
    ax.set_xlabel("training step (prune / regrow update)")
    ax.set_title("density of each layer's weights (the total stays fixed)")
    fig.colorbar(im, ax=ax, fraction=0.03, label="density")
    fig.tight_layout()
    return fig


def training_curves_figure(training: Mapping[str, Mapping[str, Any]], smooth: int = 8) -> Figure:
    """Training loss over steps of each run (moving average over ``smooth`` logged points)."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for k, tr in training.items():
        if not tr.get("steps"):
            continue
        y = np.asarray(tr["loss"], dtype=float)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = np.asarray(tr["steps"][smooth - 1:])
        else:
            x = np.asarray(tr["steps"])
        ax.plot(x, y, color=ARM_COLOURS.get(k, None), label=k)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("diffusion loss (moving average)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def sparse_summary_figure(result: Mapping[str, Any], schedule: str | None = None) -> Figure:
    """Three panels from ``adasr bench sparse``: quality (LPIPS and PSNR-Y at ``schedule``, default the first
    measured) per network, stored bytes per network and format, and CPU time of one denoiser call per route
    (with the single-conv density sweep: CSR time / dense time against density)."""
    fig = Figure(figsize=(16, 4.4))
    ax_q, ax_b, ax_t, ax_s = fig.subplots(1, 4)
    q = result["quality"]
    sched = schedule or next(iter(next(iter(q.values()))))
    arms = list(q)
    lp = [q[a][sched]["lpips"] for a in arms]
    ps = [q[a][sched]["psnr_y"] for a in arms]
    ax_q.bar(arms, lp, color=[ARM_COLOURS.get(a, "gray") for a in arms])
    for i, (v, p) in enumerate(zip(lp, ps)):
        ax_q.annotate(f"{v:.4f}\n{p:.2f} dB", (i, v), ha="center", va="bottom", fontsize=8)
    ax_q.set_ylim(0, max(lp) * 1.3)
    ax_q.set_ylabel("LPIPS (PSNR-Y in the labels)")
    ax_q.set_title(f"quality at {sched}")
    st = result["storage"]
    labels, vals, cols = [], [], []
    for a in arms:
        s = st[a]
        if a == "sparse":
            for fmt, key in (("dense fp16", "dense"), ("values+idx", "sparse_coo"), ("values+bitmap", "sparse_bitmap")):
                labels.append(f"sparse, {fmt}")
                vals.append(s[key] / 1e6)
                cols.append(ARM_COLOURS["sparse"])
        else:
            labels.append(f"{a}, fp16")
            vals.append(s["dense"] / 1e6)
            cols.append(ARM_COLOURS.get(a, "gray"))
    ax_b.bar(range(len(vals)), vals, color=cols)
    ax_b.set_xticks(range(len(vals)))
    ax_b.set_xticklabels(labels, fontsize=7, rotation=35, ha="right")
    ax_b.set_ylabel("MB")
    ax_b.set_title("storage")
    sp = result["speed"]
    names = list(sp)
    ax_t.barh(range(len(names)), [sp[n]["median_s"] * 1e3 for n in names],
              color=["tab:blue" if "channels" in n else "tab:red" if "CSR" in n else "0.4" for n in names])
    ax_t.set_yticks(range(len(names)))
    ax_t.set_yticklabels(names, fontsize=7)
    ax_t.invert_yaxis()
    ax_t.set_xlabel("ms per denoiser call")
    b = result["speed_batch"]
    ax_t.set_title(f"CPU time, {b[0]} tiles of {b[1]}²")
    sw = result["layer_sweep"]
    ax_s.plot([r["density"] for r in sw], [r["csr_over_dense"] for r in sw], "o-", color="tab:red")
    ax_s.axhline(1.0, color="k", lw=0.8)
    ax_s.set_xscale("log")
    ax_s.set_yscale("log")
    ax_s.set_xlabel("weight density")
    ax_s.set_ylabel("CSR time / dense time")
    ax_s.set_title("one 3×3 conv: when does sparse pay?")
    ax_s.grid(alpha=0.3)
    fig.tight_layout()
    return fig


__all__ = ["ARM_COLOURS", "density_heatmap_figure", "short_layer", "sparse_summary_figure", "training_curves_figure"]
