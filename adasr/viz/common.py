"""Figure plumbing shared by every plotting function: saving deterministically into ``figures/``, images for
imshow, and the one-line metric summary in panel titles."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..paths import figures_dir


def savefig(fig, name: str, folder: str | Path | None = None, dpi: int = 200) -> Path:
    """Write ``fig`` to ``figures/{name}.png`` at ``dpi`` (200 by default: sharp on a slide; PNG metadata stripped
    so the bytes depend only on the pixels)."""
    if not name or "/" in name:
        raise ValueError("figure name must be a plain file stem such as '03_seams'")
    path = Path(folder) if folder is not None else figures_dir()
    path.mkdir(parents=True, exist_ok=True)
    out = path / f"{name}.png"
    if dpi < 50:
        raise ValueError(f"dpi must be at least 50, got {dpi}")
    fig.savefig(out, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return out


def as_display(img) -> np.ndarray:
    """uint8 (H, W, 3) or float tensor (1|3, H, W)/(1, 3, H, W) in [−1, 1] → uint8 (H, W, 3) for imshow."""
    if isinstance(img, np.ndarray):
        return img
    from ..data import to_uint8

    return to_uint8(img)


def no_ticks(ax) -> None:
    """Remove the x and y ticks of an image panel (the axes frame stays)."""
    ax.set_xticks([])
    ax.set_yticks([])


#: axis labels of the quality metrics (arrows: which way is better)
METRIC_LABELS = {"psnr_y": "PSNR-Y (dB) ↑", "ssim_y": "SSIM-Y ↑", "lpips": "LPIPS ↓"}
#: how :func:`metric_line` writes each quantity (keys as returned by
#: :func:`adasr.benchmarks.quality.quality`, plus "steps")
METRIC_FORMATS = {"steps": "{:.1f} steps/tile", "psnr_y": "{:.2f} dB", "ssim_y": "SSIM {:.3f}",
                  "lpips": "LPIPS {:.3f}"}


def metric_line(m: Mapping[str, float] | None, keys: Sequence[str] = ("psnr_y", "ssim_y", "lpips")) -> str:
    """A panel-title line from whichever of ``keys`` are in ``m``, in that order, joined by ' · ':
    '25.10 dB · SSIM 0.812 · LPIPS 0.333' (PSNR-Y in dB, SSIM-Y, LPIPS), or with ``keys=("steps", "psnr_y",
    "lpips")`` '6.2 steps/tile · 25.10 dB · LPIPS 0.210'. Keys of ``m`` not in ``keys`` are left out; an empty or
    ``None`` ``m`` gives ''. Formats: :data:`METRIC_FORMATS`."""
    if not m:
        return ""
    return " · ".join(METRIC_FORMATS[k].format(m[k]) for k in keys if k in m)
