"""adasr — adaptive diffusion super-resolution, taught and run on a CPU.

Top level: :func:`upscale` (uint8 RGB → ×4) and :func:`load_pretrained`. Everything else lives in sub-modules
(``adasr.diffusion``, ``adasr.models``, ``adasr.sampling``, ``adasr.metrics``, ``adasr.viz`` …).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "upscale", "upscale_tensor", "load_pretrained"]


def __getattr__(name: str):  # lazy: keep `import adasr` cheap
    if name in ("upscale", "upscale_tensor", "load_pretrained"):
        from . import upscaling

        return getattr(upscaling, name)
    raise AttributeError(f"module 'adasr' has no attribute {name!r}")
