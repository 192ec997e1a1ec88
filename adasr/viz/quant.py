"""Figures for AdaBM adaptive quantization (notebook 10): quantizer levels, calibration error, image-to-bit maps,
layer-to-bit sensitivities, fine-tuning curves and PSNR against FAB, and per-image differences between paired arms
(AdaBM against fixed bits at the same b_base, from ``adasr bench quant``'s JSON).

Every plotting function takes data (activation values, quantization levels, errors, complexities, bits, fine-tuning
logs, metric values), draws with matplotlib and returns the ``Figure``; none quantizes, calibrates or trains. The
conventions are those of :mod:`adasr.quant`:

* a layer's activation bit is b = b_base + b_I + b_L, with b_I, b_L ∈ {−1, 0, +1} (I2B, L2B;
  :mod:`adasr.quant.bitmap`);
* b_I is one value per image or per patch×patch LR patch: a (h_p, w_p) map whose last row / column may cover
  smaller edge patches;
* FAB (feature average bit-width) is the mean activation bit over quantized layers and pixels.

Bit offsets are drawn in one colour each (:data:`BIT_COLOURS`): −1 blue, 0 grey, +1 red.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from .common import as_display, no_ticks

Image = Any  # uint8 (H, W, 3) ndarray or float tensor (1|3, H, W) in [−1, 1]

#: Colour of each bit offset b_I / b_L.
BIT_COLOURS: dict[int, str] = {-1: "tab:blue", 0: "0.65", 1: "tab:red"}
#: Colour map of a b_I map (values −1, 0, +1; use vmin=−1.5, vmax=1.5).
BIT_CMAP = ListedColormap([BIT_COLOURS[-1], BIT_COLOURS[0], BIT_COLOURS[1]], name="adabm_bits")
#: Line style of each calibration method.
METHOD_STYLES: dict[str, tuple[str, str]] = {"minmax": ("tab:blue", "-o"), "percentile": ("tab:orange", "-s"),
                                             "mse": ("tab:green", "-^")}
#: Colour of each quantizer in the levels figure.
QUANTIZER_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple")
#: Colours of the arms in the PSNR–FAB panel (no grey: grey is the fixed-bit curve).
ARM_COLOURS = ("tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:blue",
               "tab:orange")
#: Axis names of the metrics in :func:`paired_difference_figure`.
METRIC_NAMES: dict[str, str] = {"psnr_y": "PSNR-Y (dB)", "lpips": "LPIPS", "ssim_y": "SSIM-Y"}
#: Markers of the arms (distinct shapes, so that arms at the same point stay visible).
ARM_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def signed(b: float) -> str:
    """'+1', '0', '−1' (a bit offset as written in the figures)."""
    b = int(round(b))
    return "0" if b == 0 else f"+{b}" if b > 0 else f"−{-b}"


# ------------------------------------------------------------------------------------------------ 1 · quantizers
def levels_in_range(levels: Sequence[float], values: Sequence[float] | np.ndarray) -> int:
    """How many of a quantizer's ``levels`` lie inside [min(values), max(values)] (the levels the data can use)."""
    v = np.asarray(values, dtype=float)
    lv = np.asarray(levels, dtype=float)
    tol = 1e-6 * max(1.0, float(v.max() - v.min()))  # float32 rounding of the end levels
    return int(((lv >= v.min() - tol) & (lv <= v.max() + tol)).sum())


def quantizer_levels_figure(
    panels: Mapping[str, Mapping[str, Any]], *, bins: int = 80, panel: float = 3.6, title: str | None = None,
) -> Figure:
    """One column per activation: its histogram (log counts, top) and the levels of each quantizer (bottom strip,
    one row per quantizer, labelled with how many levels fall inside the data's range and the quantizer's MSE).

    Args:
        panels: ``{title: {"values": 1-D activation values, "levels": {quantizer name: 1-D level values},
            "mse": {quantizer name: mean squared error} (optional)}}``.
        bins: histogram bins, spanning [min, max] of the values.
        panel: inches per column (width).
        title: figure title.
    """
    if not panels:
        raise ValueError("need at least one panel")
    n = len(panels)
    fig = plt.figure(figsize=(panel * n + 0.6, panel * 0.85 + 0.5))
    gs = fig.add_gridspec(2, n, height_ratios=[3, 1], hspace=0.08)
    for c, (label, d) in enumerate(panels.items()):
        values = np.asarray(d["values"], dtype=float).ravel()
        if values.size == 0:
            raise ValueError(f"{label}: no values")
        levels = {k: np.sort(np.asarray(v, dtype=float).ravel()) for k, v in d["levels"].items()}
        if not levels:
            raise ValueError(f"{label}: no quantizer levels")
        mse = d.get("mse", {})
        ax = fig.add_subplot(gs[0, c])
        strip = fig.add_subplot(gs[1, c], sharex=ax)
        ax.hist(values, bins=bins, range=(values.min(), values.max()), color="0.55", log=True)
        ax.set_ylim(top=ax.get_ylim()[1] * 30)  # room for the text box
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7, labelbottom=False)
        if c == 0:
            ax.set_ylabel("count (log)", fontsize=8)
        ax.grid(alpha=0.3)
        names = list(levels)
        lines = []
        for r, name in enumerate(names):
            y = len(names) - 1 - r
            colour = QUANTIZER_COLOURS[r % len(QUANTIZER_COLOURS)]
            strip.vlines(levels[name], y - 0.35, y + 0.35, color=colour, lw=1.2)
            text = f"{name}: {levels_in_range(levels[name], values)}/{len(levels[name])} levels in range"
            if name in mse:
                text += f", MSE {mse[name]:.2e}"
            lines.append(text)
        strip.set_yticks(range(len(names) - 1, -1, -1), names, fontsize=7)
        ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=6.5,
                bbox={"boxstyle": "round,pad=0.3", "fc": "w", "ec": "0.7", "alpha": 0.9})
        strip.set_ylim(-0.6, len(names) - 0.4)
        strip.tick_params(axis="x", labelsize=7)
        strip.set_xlabel("activation value", fontsize=8)
        lo = min(values.min(), *(v.min() for v in levels.values()))
        hi = max(values.max(), *(v.max() for v in levels.values()))
        pad = 0.03 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.86 if title else 0.92, wspace=0.3)
    return fig


def calibration_error_figure(
    bits: Sequence[int], panels: Mapping[str, Mapping[str, Sequence[float]]], *, panel: float = 3.2,
    ylabel: str = "MSE of quantized activation", title: str | None = None,
) -> Figure:
    """Quantization error against bit width, one line per calibration method, one panel per layer (log y).

    Args:
        bits: the bit widths (x axis).
        panels: ``{panel title: {method: one error per bit}}``; methods in :data:`METHOD_STYLES` get fixed styles.
        panel: inches per panel.
    """
    if not panels:
        raise ValueError("need at least one panel")
    bs = list(bits)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(panel * n + 0.4, panel * 0.85 + 0.4), squeeze=False)
    for c, (label, methods) in enumerate(panels.items()):
        ax = axes[0, c]
        for i, (method, errors) in enumerate(methods.items()):
            e = list(errors)
            if len(e) != len(bs):
                raise ValueError(f"{label}/{method}: {len(e)} errors for {len(bs)} bit widths")
            colour, style = METHOD_STYLES.get(method, (QUANTIZER_COLOURS[i % len(QUANTIZER_COLOURS)], "-D"))
            ax.plot(bs, e, style, color=colour, label=method, markersize=4, lw=1.3)
        ax.set_yscale("log")
        ax.set_xticks(bs)
        ax.set_xlabel("activation bits b", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel(ylabel, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ 2 · I2B / L2B
def bit_map_axes(ax, image: Image, bits: np.ndarray, patch: int, *, complexity: np.ndarray | None = None,
                 alpha: float = 0.45, fontsize: float = 6.5):
    """Draw ``image`` in gray with its b_I map (h_p, w_p) over it, one colour per bit; with ``complexity`` (same
    shape) each patch's c is written at its centre. Returns the overlay's ``AxesImage``."""
    img = as_display(image)
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"bits must be a (h_p, w_p) map, got shape {bits.shape}")
    H, W = img.shape[:2]
    hp, wp = -(-H // patch), -(-W // patch)
    if bits.shape != (hp, wp):
        raise ValueError(f"a {H}×{W} image has {hp}×{wp} patches of {patch}, got a bit map of {bits.shape}")
    if complexity is not None and np.asarray(complexity).shape != bits.shape:
        raise ValueError(f"complexity map {np.asarray(complexity).shape} differs from the bit map {bits.shape}")
    ax.imshow(img.mean(axis=2), cmap="gray", vmin=0, vmax=255)
    im = ax.imshow(bits, cmap=BIT_CMAP, vmin=-1.5, vmax=1.5, alpha=alpha,
                   extent=(-0.5, wp * patch - 0.5, hp * patch - 0.5, -0.5))
    for r in range(1, hp):
        ax.axhline(r * patch - 0.5, color="w", lw=0.5)
    for c in range(1, wp):
        ax.axvline(c * patch - 0.5, color="w", lw=0.5)
    if complexity is not None:
        cm = np.asarray(complexity, dtype=float)
        for r in range(hp):
            for c in range(wp):
                y = (r * patch + min((r + 1) * patch, H)) / 2 - 0.5
                x = (c * patch + min((c + 1) * patch, W)) / 2 - 0.5
                ax.text(x, y, f"{cm[r, c]:.1f}", ha="center", va="center", fontsize=fontsize, color="w",
                        bbox={"boxstyle": "round,pad=0.15", "fc": BIT_COLOURS[int(bits[r, c])], "ec": "none",
                              "alpha": 0.8})
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    no_ticks(ax)
    return im


def bit_counts(bits: np.ndarray) -> dict[int, int]:
    """{−1: n, 0: n, +1: n}: how many patches of a b_I map take each offset."""
    b = np.asarray(bits).round().astype(int).ravel()
    return {k: int((b == k).sum()) for k in (-1, 0, 1)}


def image_to_bit_figure(
    images: Mapping[str, Image],
    complexity: Mapping[str, np.ndarray],
    bits: Mapping[str, np.ndarray],
    *,
    thresholds: tuple[float, float],
    patch: int,
    calibration: Sequence[float] | np.ndarray | None = None,
    panel: float = 2.5,
    title: str | None = None,
) -> Figure:
    """I2B at a glance: (optional) the calibration patch complexities with the thresholds l, u, then one panel per
    image with its per-patch b_I over it (colour) and each patch's complexity c (number).

    Args:
        images: ``{name: LR image}`` (uint8 (h, w, 3) or a tensor in [−1, 1]).
        complexity: ``{name: (h_p, w_p) per-patch c}``.
        bits: ``{name: (h_p, w_p) b_I ∈ {−1, 0, +1}}``.
        thresholds: the I2B thresholds (l, u): b_I = −1 below l, +1 above u.
        patch: LR patch size of the maps.
        calibration: complexities of the calibration patches (histogram in the first panel, log x), with the
            held-out patches' c marked under it.
        panel: inches per panel.
    """
    if not images:
        raise ValueError("need at least one image")
    if set(images) != set(complexity) or set(images) != set(bits):
        raise ValueError("images, complexity and bits need the same keys")
    lo, hi = (float(t) for t in thresholds)
    n = len(images) + (calibration is not None)
    fig, axes = plt.subplots(1, n, figsize=(panel * n + 0.3, panel + 0.6), squeeze=False)
    axes = list(axes[0])
    if calibration is not None:
        ax = axes.pop(0)
        cal = np.asarray(calibration, dtype=float).ravel()
        held = np.concatenate([np.asarray(complexity[k], dtype=float).ravel() for k in images])
        allv = np.concatenate([cal, held, [lo, hi]])
        edges = np.geomspace(max(allv.min(), 1e-3) * 0.9, allv.max() * 1.1, 25)
        ax.hist(cal, bins=edges, color="0.55", label=f"calibration ({cal.size} patches)")
        ax.set_xscale("log")
        ax.axvspan(edges[0], lo, color=BIT_COLOURS[-1], alpha=0.15, lw=0)
        ax.axvspan(hi, edges[-1], color=BIT_COLOURS[1], alpha=0.15, lw=0)
        ax.axvline(lo, color=BIT_COLOURS[-1], lw=1.2, ls="--", label=f"l = {lo:.2f}")
        ax.axvline(hi, color=BIT_COLOURS[1], lw=1.2, ls="--", label=f"u = {hi:.2f}")
        ax.plot(held, np.zeros_like(held), "|", color="k", markersize=9, label="held-out patches")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("patch complexity c (Sobel ×10³)", fontsize=8)
        ax.set_ylabel("patches", fontsize=8)
        ax.set_title("I2B thresholds", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    for ax, (name, img) in zip(axes, images.items()):
        b = np.asarray(bits[name])
        bit_map_axes(ax, img, b, patch, complexity=complexity[name])
        cnt = bit_counts(b)
        ax.set_title(f"{name}: b_I −1/0/+1 on\n{cnt[-1]}/{cnt[0]}/{cnt[1]} patches", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def short_layer_names(names: Sequence[str]) -> list[str]:
    """'body.3.conv1' → '3.1' (block.conv), other names unchanged."""
    out = []
    for n in names:
        parts = n.split(".")
        if len(parts) == 3 and parts[0] == "body" and parts[2].startswith("conv"):
            out.append(f"{parts[1]}.{parts[2][4:]}")
        else:
            out.append(n)
    return out


def layer_to_bit_figure(
    names: Sequence[str], sensitivities: Sequence[float], layer_bits: Sequence[int], *, percentile: float = 30.0,
    b_base: int | None = None, panel: float = 3.2, title: str | None = None,
) -> Figure:
    """L2B: one bar per quantized layer (its sensitivity s_k, coloured and labelled by b_L), dashed lines at the
    ``percentile`` and 100 − ``percentile`` percentiles of {s_k} (``np.percentile``, as the thresholds).

    With ``b_base`` the x labels add each layer's bit b_base + b_L."""
    s = np.asarray(sensitivities, dtype=float)
    bl = [int(b) for b in layer_bits]
    if s.ndim != 1 or len(names) != s.size or len(bl) != s.size or s.size == 0:
        raise ValueError("need one name, one sensitivity and one bit per layer")
    lo, hi = np.percentile(s, percentile), np.percentile(s, 100 - percentile)
    x = np.arange(s.size)
    fig, ax = plt.subplots(figsize=(max(panel, 0.32 * s.size + 1.2), panel))
    ax.bar(x, s, color=[BIT_COLOURS[b] for b in bl], width=0.75)
    for xi, si, b in zip(x, s, bl):
        ax.text(xi, si, signed(b), ha="center", va="bottom", fontsize=7)
    ax.axhline(lo, color=BIT_COLOURS[-1], ls="--", lw=1.1, label=f"P{percentile:g} = {lo:.3f}")
    ax.axhline(hi, color=BIT_COLOURS[1], ls="--", lw=1.1, label=f"P{100 - percentile:g} = {hi:.3f}")
    labels = short_layer_names(names)
    if b_base is not None:
        labels = [f"{n}\n{b_base + b}b" for n, b in zip(labels, bl)]
    ax.set_xticks(x, labels, fontsize=6.5)
    ax.set_xlabel("quantized layer (block.conv)" + (" and its bit b_base + b_L" if b_base is not None else ""),
                  fontsize=8)
    ax.set_ylabel("sensitivity s_k = mean std of input", fontsize=8)
    ax.set_ylim(0, s.max() * 1.15)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    ax.set_title(title or "layer-to-bit: bar label = b_L", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ 3 · fine-tuning
def trained_epochs(log: Mapping[str, Any], steps_per_epoch: int) -> list[int]:
    """The epochs (indices into ``log["phase"]``) whose steps ``log["loss"]`` holds.

    ``finetune`` lists every epoch's phase but skips an epoch whose phase has nothing to train (the ``measure``
    epoch of a fixed-bit model). The skipped phases are the first set, trying none, then each single phase, then
    each pair (``measure`` first), that leaves exactly ``len(loss) / steps_per_epoch`` epochs; without a ``phase`` list, or when
    nothing fits, the steps are taken as consecutive epochs from the first."""
    from itertools import combinations

    phases = list(log.get("phase", []))
    n = len(log["loss"])
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    want = -(-n // steps_per_epoch)
    kinds = sorted(dict.fromkeys(phases), key=lambda ph: ph != "measure")  # measure first: the one that can be empty
    for k in range(len(kinds) + 1):
        for skipped in combinations(kinds, k):
            kept = [e for e, ph in enumerate(phases) if ph not in skipped]
            if len(kept) == want:
                return kept
    return list(range(want))


def _spread_labels(ys: Sequence[float], gap: float) -> list[float]:
    """Label heights near ``ys`` (any order) at least ``gap`` apart, centred on the points they label."""
    order = np.argsort(ys)
    out = np.asarray(ys, dtype=float)[order].copy()
    for i in range(1, out.size):
        out[i] = max(out[i], out[i - 1] + gap)
    out += (np.asarray(ys, dtype=float)[order] - out).mean()  # re-centre the stack on the points
    res = np.empty_like(out)
    res[order] = out
    return list(res)


def finetune_figure(
    logs: Mapping[str, Mapping[str, Any]], arms: Mapping[str, Mapping[str, float]], *, steps_per_epoch: int,
    curve: Mapping[str, Mapping[str, float]] | None = None, reference: Mapping[str, float] | None = None,
    lambdas: tuple[float, float] = (10.0, 50.0), panel: float = 3.6, title: str | None = None,
    same: float = 0.02,
) -> Figure:
    """Left: fine-tuning loss per step of each run (log y), epochs shaded by phase (w / a / measure, from the first
    log's ``phase`` list). Each run is drawn at the epochs it trained (:func:`trained_epochs`); an epoch a run
    skipped is marked in its colour. Right: PSNR-Y against FAB of each arm, labelled next to its marker (arms at the
    same point within ``same`` share one marker and one label, "A ≈ B"), with an arrow from an arm to its ``"after"`` (the
    same model fine-tuned) and, as a dashed line, a ``curve`` of fixed-bit arms.

    The loss is  L = L_pix + λ_skt·L_skt (+ λ_bit·max(FAB − b_base, 0) in the measure epochs), λ = ``lambdas``.

    Args:
        logs: ``{label: finetune log}`` (``{"loss": [per step], "phase": [per epoch], ...}``).
        arms: ``{label: {"psnr_y": dB, "fab": bits, "after": label of another arm (optional)}}``.
        steps_per_epoch: steps of one epoch (the shading width).
        curve: ``{label: {"psnr_y": dB, "fab": bits}}`` joined by a line in FAB order (e.g. W4A3, W4A4, W4A5).
        reference: ``{label: PSNR-Y}`` drawn as horizontal lines (e.g. FP32).
        lambdas: (λ_skt, λ_bit) for the loss written on the left panel.
        same: arms closer than this in FAB (bits) and PSNR-Y (dB) are drawn as one point (a marker is about that
            size on the panel).
    """
    if not logs or not arms:
        raise ValueError("need at least one log and one arm")
    for label, a in arms.items():
        if a.get("after") is not None and a["after"] not in arms:
            raise ValueError(f"{label}: 'after' names {a['after']!r}, not one of the arms")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(2 * panel + 2.6, panel + 0.3), gridspec_kw={"width_ratios": [1, 1.15]})
    phases = list(next(iter(logs.values())).get("phase", []))
    shades = {"w": "0.94", "a": "0.86", "measure": "#f3e0c8"}
    for e, ph in enumerate(phases):
        ax.axvspan(e * steps_per_epoch + 0.5, (e + 1) * steps_per_epoch + 0.5, color=shades.get(ph, "0.9"), lw=0)
        ax.text((e + 0.5) * steps_per_epoch + 0.5, 0.98, ph, transform=ax.get_xaxis_transform(), ha="center",
                va="top", fontsize=9)
    for i, (label, log) in enumerate(logs.items()):
        loss = np.asarray(log["loss"], dtype=float)
        kept = trained_epochs(log, steps_per_epoch)
        x = np.concatenate([np.arange(e * steps_per_epoch, (e + 1) * steps_per_epoch) + 1 for e in kept])[: loss.size]
        y = loss.copy()
        breaks = np.flatnonzero(np.diff(x) > 1) + 1  # a skipped epoch inside the run: break the line there
        xs, ys = np.insert(x.astype(float), breaks, np.nan), np.insert(y, breaks, np.nan)
        ax.plot(xs, ys, color=f"C{i}", lw=1.2, label=label)
        skipped = [e for e in range(len(log.get("phase", []))) if e not in kept]
        for k, e in enumerate(skipped):
            ax.text((e + 0.5) * steps_per_epoch + 0.5, 0.06 + 0.09 * i, f"{label}: nothing to train,\nepoch skipped",
                    transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7.5, color=f"C{i}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("fine-tuning step", fontsize=10)
    ax.set_ylabel("training loss $L$ (log scale)", fontsize=10)
    l_skt, l_bit = lambdas
    ax.set_title(rf"$L = L_\mathrm{{pix}} + {l_skt:g}\,L_\mathrm{{skt}}$"
                 rf"  $(+\,{l_bit:g}\,\max(\mathrm{{FAB}} - b_\mathrm{{base}}, 0)$ in measure$)$", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="center left")
    ax.grid(alpha=0.3, which="both")
    # right: PSNR-Y against FAB, one marker per distinct point, labelled beside it
    fabs = [a["fab"] for a in arms.values()]
    psnrs = [a["psnr_y"] for a in arms.values()]
    if curve:
        pts = sorted(((c["fab"], c["psnr_y"], k) for k, c in curve.items()))
        bx.plot([p[0] for p in pts], [p[1] for p in pts], "--o", color="0.45", markersize=4, lw=1.0,
                label="fixed bits: " + ", ".join(p[2] for p in pts))
        for f, v, k in pts:
            bx.annotate(k, (f, v), xytext=(-4, 4), textcoords="offset points", ha="right", va="bottom",
                        fontsize=8, color="0.35")
        fabs += [p[0] for p in pts]
        psnrs += [p[1] for p in pts]
    groups: list[list[str]] = []
    for label, a in arms.items():
        for g in groups:
            b = arms[g[0]]
            if abs(a["fab"] - b["fab"]) <= same and abs(a["psnr_y"] - b["psnr_y"]) <= same:
                g.append(label)
                break
        else:
            groups.append([label])
    for j, g in enumerate(groups):
        a = arms[g[0]]
        bx.scatter([a["fab"]], [a["psnr_y"]], color=ARM_COLOURS[j % len(ARM_COLOURS)], s=36, zorder=3,
                   label=" ≈ ".join(g), marker=ARM_MARKERS[j % len(ARM_MARKERS)])
    for label, a in arms.items():
        after = a.get("after")
        if after is not None:
            b = arms[after]
            bx.annotate("", (b["fab"], b["psnr_y"]), (a["fab"], a["psnr_y"]),
                        arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.9})
    x_lo, x_hi = min(fabs) - 0.3, max(fabs) + 0.15
    y_lo, y_hi = min(psnrs), max(psnrs + list((reference or {}).values()))
    label_x = max(a["fab"] for a in arms.values()) + 0.12
    heights = _spread_labels([arms[g[0]]["psnr_y"] for g in groups], gap=0.065 * max(y_hi - y_lo, 1e-3))
    for j, (g, h) in enumerate(zip(groups, heights)):
        a = arms[g[0]]
        bx.annotate(" ≈ ".join(g), (a["fab"], a["psnr_y"]), xytext=(label_x, h), textcoords="data", fontsize=8,
                    va="center", ha="left", color=ARM_COLOURS[j % len(ARM_COLOURS)],
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 0, "shrinkB": 3})
    for k, v in (reference or {}).items():
        bx.axhline(v, color="k", ls=":", lw=1.0, label=f"{k} ({v:.2f} dB)")
        bx.text(x_lo + 0.02, v, f"{k} {v:.2f} dB", va="bottom", ha="left", fontsize=8)
    bx.set_xlabel("FAB (mean activation bits)", fontsize=10)
    bx.set_ylabel("PSNR-Y on the held-out photos (dB)", fontsize=10)
    bx.tick_params(labelsize=8)
    bx.grid(alpha=0.3)
    bx.set_xlim(x_lo, x_hi)
    pad = 0.06 * (y_hi - y_lo) if y_hi > y_lo else 0.5
    bx.set_ylim(min(y_lo, min(heights)) - 2 * pad, max(y_hi, max(heights)) + pad)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def paired_difference_figure(
    arms: Mapping[str, Mapping[str, Any]], pairs: Sequence[tuple[str, str]], *,
    metrics: Sequence[str] = ("psnr_y", "lpips"), panel: float = 3.4, title: str | None = None,
) -> Figure:
    """Per-image differences between paired arms, one panel per metric: for each pair (control, arm) one bar per
    image, Δ = arm − control, the mean over the images as a black diamond, and each bar labelled with the arm's
    FAB on that image (the control's FAB under the group label).

    Args:
        arms: ``{label: {"images": {image: {metric: value, "fab": bits}}, "mean": {...}}}`` (the arms of
            ``adasr bench quant``'s JSON, e.g. its ``unet.arms``).
        pairs: ``[(control label, arm label), ...]``, e.g. ``[("W8A6", "AdaBM W8 b_base 6")]``.
        metrics: keys of the per-image dicts; ``lpips`` is labelled "lower is better".
    """
    if not pairs:
        raise ValueError("need at least one (control, arm) pair")
    for c, a in pairs:
        for k in (c, a):
            if k not in arms:
                raise ValueError(f"no arm {k!r}; have {sorted(arms)}")
        if set(arms[c]["images"]) != set(arms[a]["images"]):
            raise ValueError(f"{c!r} and {a!r} cover different images")
    names = list(arms[pairs[0][1]]["images"])
    n_img = len(names)
    width = 0.8 / n_img
    fig, axes = plt.subplots(1, len(metrics), figsize=(panel * len(metrics) + 1.6, panel + 0.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for g, (c, a) in enumerate(pairs):
            d = [arms[a]["images"][n][m] - arms[c]["images"][n][m] for n in names]
            for i, (n, v) in enumerate(zip(names, d)):
                x = g - 0.4 + width * (i + 0.5)
                ax.bar(x, v, width=width * 0.9, color=f"C{i}", label=n if g == 0 else None)
                fab = arms[a]["images"][n].get("fab")
                if fab is not None:
                    ax.text(x, v, f"{fab:.2f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=7.5)
            ax.plot([g], [float(np.mean(d))], "D", color="k", ms=6, zorder=3,
                    label="mean over the images" if g == 0 else None)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(pairs)), [f"{a}\n− {c}" + (f" (FAB {arms[c]['mean']['fab']:g})"
                                                              if arms[c].get("mean", {}).get("fab") is not None else "")
                                          for c, a in pairs], fontsize=8)
        better = "< 0: arm better" if m == "lpips" else "> 0: arm better"
        ax.set_ylabel(f"Δ {METRIC_NAMES.get(m, m)} per image ({better})", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3, axis="y")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo))  # room for the FAB labels
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.text(0.01, 0.005, "numbers on the bars: the arm's FAB on that image", fontsize=8, color="0.3")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def adabm_state_figure(
    image: Image, image_bits: np.ndarray, layer_bits: Sequence[int], *, b_base: int, patch: int,
    names: Sequence[str] | None = None, summary: str | None = None, limits: tuple[int, int] | None = (2, 8),
    panel: float = 3.0,
) -> Figure:
    """One calibrated AdaBM model on one image: its b_I map over the LR image (left) and each layer's bit
    b_base + b_L (right; the grey bar spans b_base + b_L − 1 … + 1, the range b_I moves it in). Bits are clipped to
    ``limits`` (the quantizer's [min_bits, max_bits]). ``summary`` is the figure title (FAB, PSNR)."""
    bl = [int(b) for b in layer_bits]
    if not bl:
        raise ValueError("need at least one layer bit")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(2 * panel + 1.0, panel + 0.3),
                                 gridspec_kw={"width_ratios": [1, 1.5]})
    bit_map_axes(ax, image, np.asarray(image_bits), patch)
    cnt = bit_counts(image_bits)
    ax.set_title(f"b_I per {patch}-px patch: −1/0/+1 on {cnt[-1]}/{cnt[0]}/{cnt[1]}", fontsize=8)
    x = np.arange(len(bl))
    lo_b, hi_b = limits if limits is not None else (-np.inf, np.inf)
    base = np.clip(np.array([b_base + b for b in bl], dtype=float), lo_b, hi_b)
    band_lo, band_hi = np.clip(base - 1, lo_b, hi_b), np.clip(base + 1, lo_b, hi_b)
    bx.bar(x, band_hi - band_lo, bottom=band_lo, color="0.9", width=0.8, label="± b_I")
    bx.scatter(x, base, color=[BIT_COLOURS[b] for b in bl], s=22, zorder=3)
    bx.axhline(b_base, color="k", lw=0.8, ls=":", label=f"b_base = {b_base}")
    labels = short_layer_names(names) if names is not None else [str(i) for i in x]
    bx.set_xticks(x, labels, fontsize=6.5)
    bx.set_ylabel("b_base + b_L" + (f" (clipped to [{lo_b}, {hi_b}])" if limits is not None else ""), fontsize=8)
    bx.set_xlabel("layer", fontsize=8)
    bx.set_ylim(min(base.min() - 1.5, b_base - 2.5), max(base.max() + 1.5, b_base + 2.5))
    bx.tick_params(axis="y", labelsize=7)
    bx.grid(alpha=0.3, axis="y")
    bx.legend(fontsize=6.5, loc="upper right")
    if summary:
        fig.suptitle(summary, fontsize=9)
    fig.tight_layout()
    return fig
