"""Side-by-side comparison of an upscale: nearest ×s (the input's pixels), bicubic ×s, and the model's output."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..data import upscale_bicubic
from .common import as_display


def compare_figure(lr: torch.Tensor, sr: torch.Tensor, *, title: str | None = None,
                   labels: tuple[str, str, str] = ("input (nearest ×{s})", "bicubic ×{s}", "adasr ×{s}"),
                   panel_inches: float = 4.0) -> Figure:
    """A three-panel figure: ``lr`` enlarged by nearest neighbour, by bicubic, and ``sr`` (the model's output).

    ``lr``: float (1, 3, h, w) in [−1, 1]; ``sr``: float (1, 3, s·h, s·w) in [−1, 1] for an integer scale s.
    ``{s}`` in the labels is replaced by the scale. Returns a :class:`matplotlib.figure.Figure` that is not
    registered with pyplot (no global state); save it with :func:`save_compare_figure` or ``fig.savefig``.
    """
    if lr.ndim != 4 or sr.ndim != 4 or lr.shape[:2] != sr.shape[:2] or lr.shape[0] != 1:
        raise ValueError(f"expected (1, C, h, w) and (1, C, s·h, s·w) tensors, got {tuple(lr.shape)}, "
                         f"{tuple(sr.shape)}")
    s = sr.shape[-1] // lr.shape[-1]
    if s < 1 or sr.shape[-1] != s * lr.shape[-1] or sr.shape[-2] != s * lr.shape[-2]:
        raise ValueError(f"output {tuple(sr.shape[-2:])} is not an integer multiple of input {tuple(lr.shape[-2:])}")
    lr = lr.detach().float().cpu()
    nearest = F.interpolate(lr, scale_factor=float(s), mode="nearest")
    panels = (nearest, upscale_bicubic(lr, s), sr.detach().float().cpu())
    h, w = sr.shape[-2:]
    fig = Figure(figsize=(3 * panel_inches, panel_inches * h / w + (0.6 if title else 0.35)))
    axes = fig.subplots(1, 3)
    for ax, img, label in zip(axes, panels, labels):
        ax.imshow(as_display(img), interpolation="nearest" if w <= panel_inches * 100 else "antialiased")
        ax.set_title(label.format(s=s), fontsize=10)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def figure_png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes with the same deterministic settings as :func:`adasr.viz.common.savefig`
    (dpi 100, tight bounding box, no ``Software`` metadata), so equal pixels give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def save_compare_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` (a .png) atomically, with deterministic metadata."""
    from ..imageio import atomic_write

    data = figure_png_bytes(fig)
    return atomic_write(path, lambda fh: fh.write(data))
