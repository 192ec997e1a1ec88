"""First cell of every notebook: ``from adasr.notebook import setup; setup()``.

Seeds Python/NumPy/torch, fixes the thread count, makes torch deterministic, sets print options and small,
deterministic matplotlib defaults, and silences warnings that would make nbval outputs differ between machines.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from dataclasses import dataclass

from .runtime import default_precision, default_threads, seed_everything


@dataclass(frozen=True)
class NotebookSetup:
    """What :func:`setup` chose: the seed, the thread count and the precision the notebook computes in."""

    seed: int
    threads: int
    precision: str


def setup(seed: int = 0, threads: int | None = None, precision: str | None = None) -> NotebookSetup:
    """Prepare a notebook kernel; prints nothing and returns the choices (``setup().precision``).

    ``precision`` is the one the notebook passes to the package: left out, ``$ADASR_PRECISION`` when set, else
    ``fp32`` — notebooks quote and assert digits, and fp32 gives every student the same digits whatever the CPU
    (``auto`` would pick bf16 on CPUs with AMX / AVX512-BF16 and fp32 elsewhere)."""
    if precision is None:
        precision = default_precision(fallback="fp32")
    elif precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    seed_everything(seed)
    n_threads = threads or default_threads()
    torch.set_num_threads(n_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    np.set_printoptions(precision=4, suppress=True, linewidth=120)
    torch.set_printoptions(precision=4, sci_mode=False)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import matplotlib as mpl

    mpl.rcParams.update({"figure.figsize": (8, 4), "figure.dpi": 80, "savefig.dpi": 100,
                         "figure.max_open_warning": 50, "image.interpolation": "nearest",
                         "svg.hashsalt": "adasr"})
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None:
            ip.run_line_magic("matplotlib", "inline")
    except ImportError:  # pragma: no cover - outside Jupyter
        pass
    return NotebookSetup(seed=seed, threads=n_threads, precision=precision)
