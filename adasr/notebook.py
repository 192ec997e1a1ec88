"""First cell of every notebook: ``from adasr.notebook import setup; setup()``.

Seeds Python/NumPy/torch, fixes the thread count, makes torch deterministic, sets print options and small,
deterministic matplotlib defaults, and silences warnings that would make nbval outputs differ between machines.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .runtime import default_threads, seed_everything


def setup(seed: int = 0, threads: int | None = None) -> None:
    """Prepare a notebook kernel; prints nothing."""
    seed_everything(seed)
    torch.set_num_threads(threads or default_threads())
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
