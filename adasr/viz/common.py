"""Figure plumbing shared by every plotting function: saving deterministically into ``figures/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..paths import figures_dir


def savefig(fig, name: str, folder: str | Path | None = None) -> Path:
    """Write ``fig`` to ``figures/{name}.png`` (PNG metadata stripped so the bytes depend only on the pixels)."""
    if not name or "/" in name:
        raise ValueError("figure name must be a plain file stem such as '03_seams'")
    path = Path(folder) if folder is not None else figures_dir()
    path.mkdir(parents=True, exist_ok=True)
    out = path / f"{name}.png"
    fig.savefig(out, dpi=100, bbox_inches="tight", metadata={"Software": None})
    return out


def as_display(img) -> np.ndarray:
    """uint8 (H, W, 3) or float tensor (1|3, H, W)/(1, 3, H, W) in [−1, 1] → uint8 (H, W, 3) for imshow."""
    if isinstance(img, np.ndarray):
        return img
    from ..data import to_uint8

    return to_uint8(img)
