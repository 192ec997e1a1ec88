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


#: The quantities :func:`equal_budget` interpolates (a uniform run's cost and quality).
EQUAL_BUDGET_KEYS = ("tile_evaluations", "seconds", "psnr_y", "ssim_y", "lpips", "mean_steps_per_tile")


def equal_budget(lo: Mapping[str, Any], hi: Mapping[str, Any], mean_steps: float) -> dict[str, Any]:
    """Uniform DDIM at a fractional average budget m = ``mean_steps`` from two uniform runs ``lo`` (N = ⌊m⌋) and
    ``hi`` (N = ⌈m⌉), each a dict with ``mean_steps_per_tile`` and the :data:`EQUAL_BUDGET_KEYS`.

    Every quantity q is :func:`uniform_at` on the two-point curve, i.e. q(m) = (1 − w)·q_lo + w·q_hi with
    w = (m − N_lo)/(N_hi − N_lo) (w = 0 when both runs have the same N). The mixture "a share w of the tiles at
    N_hi steps, the rest at N_lo" has exactly the mean cost m. Returns {"n": m, "n_low", "n_high", "weight_high",
    the interpolated keys}; ``tile_evaluations`` rounded to an int."""
    n_lo, n_hi = float(lo["mean_steps_per_tile"]), float(hi["mean_steps_per_tile"])
    runs = (lo,) if n_hi == n_lo else (lo, hi)
    curve: dict[str, list[float]] = {"steps": [float(r["mean_steps_per_tile"]) for r in runs],
                                     "weight_high": [0.0, 1.0][: len(runs)]}
    for k in EQUAL_BUDGET_KEYS:
        curve[k] = [float(r[k]) for r in runs]
    out: dict[str, Any] = {"n": mean_steps, "n_low": int(round(n_lo)), "n_high": int(round(n_hi)),
                           "weight_high": uniform_at(curve, mean_steps, "weight_high")}
    for k in EQUAL_BUDGET_KEYS:
        out[k] = uniform_at(curve, mean_steps, k)
    out["tile_evaluations"] = int(round(out["tile_evaluations"]))
    return out


__all__ = ["EQUAL_BUDGET_KEYS", "equal_budget", "equal_budget_gaps", "uniform_at"]
