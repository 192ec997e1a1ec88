"""The equal-budget control: uniform DDIM at the same average cost as an adaptive arm.

An adaptive policy that spends m tile-evaluations per tile on average is compared with uniform DDIM at m steps.
For fractional m, uniform runs are measured at several integer N and interpolated linearly in N: the mixture
"a share w of the tiles at ⌈m⌉ steps, the rest at ⌊m⌋" has exactly the mean cost m, and its expected quality is
the same linear interpolation (w = m − ⌊m⌋). Outside the measured range the curve is clamped to its end points.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def uniform_at(uniform: Mapping[str, Sequence[float]], steps: float, metric: str) -> float:
    """The uniform curve's ``metric`` at ``steps`` tile-evaluations per tile, linearly interpolated between the
    measured N (the equal-average-budget control; clamped to the end points outside the measured range)."""
    x = np.asarray(uniform["steps"], dtype=float)
    y = np.asarray(uniform[metric], dtype=float)
    order = np.argsort(x)
    return float(np.interp(steps, x[order], y[order]))


def equal_budget_gaps(uniform: Mapping[str, Sequence[float]], points: Sequence[Mapping[str, Any]],
                      metric: str) -> list[float]:
    """For each adaptive point, its ``metric`` minus the uniform curve's at the same mean budget
    (:func:`uniform_at`). LPIPS: a negative gap beats uniform; PSNR: a positive gap does."""
    return [float(p[metric]) - uniform_at(uniform, float(p["steps"]), metric) for p in points]


__all__ = ["equal_budget_gaps", "uniform_at"]
