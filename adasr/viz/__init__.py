"""Figures. Every function returns a matplotlib ``Figure`` built from data it is given (no training or sampling
inside); notebooks save it with :func:`savefig` into ``figures/NN_name.png``. Tests check the plotted data.

* :mod:`adasr.viz.common`    — ``savefig``, image helpers, ``metric_line`` (the metrics in panel titles)
* :mod:`adasr.viz.diffusion` — forward process, schedules, toy DDPM (notebook 01)
* :mod:`adasr.viz.sr`        — sampler curves, SR grids, colour cast, seams (notebooks 02–03)
* :mod:`adasr.viz.compare`   — the CLI's input / bicubic / adasr comparison figure
* :mod:`adasr.viz.complexity` — estimator maps, normalisations, rank agreement (notebook 04)
* :mod:`adasr.viz.allocation` — step maps, refinement snapshots, cost vs quality (notebook 05)
* :mod:`adasr.viz.early_exit` — Δ curves, stop maps, what early exit loses (notebook 06)
* :mod:`adasr.viz.adaptive`   — the speed–quality curve of ``adasr bench adaptive``
* :mod:`adasr.viz.timesteps`  — schedules on λ(t), x̂0 along a chain, the schedule search's perception–distortion
  plane (notebook 02)
* :mod:`adasr.viz.schedules`  — LPIPS vs N and the perception–distortion plane of ``adasr bench schedules``
* :mod:`adasr.viz.adadiffsr`  — the cost–quality plane of ``adasr bench adadiffsr`` (uniform curves, the hindsight
  oracle, DTSS and AdaSR), class maps over time, gain curves, the ablations, a DTSS run (notebook 07)
* :mod:`adasr.viz.quant`      — quantizer levels, calibration error, I2B / L2B bit maps, AdaBM fine-tuning
  (notebook 10)
"""

from __future__ import annotations

from .common import as_display, savefig

__all__ = ["savefig", "as_display"]
