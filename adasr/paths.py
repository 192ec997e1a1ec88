"""Where things live: resolved from the package location, never from the current directory.

``ADASR_DATA_DIR`` / ``ADASR_FIGURES_DIR`` override the repository's ``data/`` and ``figures/`` (notebooks run with
their own folder as cwd, so relative paths such as ``../data`` are never used).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def data_dir() -> Path:
    """The bundled images folder (``data/`` at the repository root unless ``ADASR_DATA_DIR`` is set)."""
    return Path(os.environ.get("ADASR_DATA_DIR", REPO_DIR / "data"))


def figures_dir() -> Path:
    """Where figures are written (``figures/`` unless ``ADASR_FIGURES_DIR`` is set); created on demand."""
    d = Path(os.environ.get("ADASR_FIGURES_DIR", REPO_DIR / "figures"))
    d.mkdir(parents=True, exist_ok=True)
    return d
