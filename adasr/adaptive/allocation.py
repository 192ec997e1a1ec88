"""Per-patch step allocation (AdaSR's spatial adaptivity), executed by the tile-batch sampler.

Each tile p gets a budget from its normalised complexity C_p ∈ [0, 1] (:mod:`adasr.adaptive.complexity`):

* ``linear`` (AdaSR):      N_p = N_min + (N_max − N_min) · C_p
* ``threshold``:          N_p = N_min if C_p < c_lo, N_max if C_p > c_hi, else linear in (C_p − c_lo)/(c_hi − c_lo)
* ``exponential``:        N_p = N_min + (N_max − N_min) · C_p²   (AdaSR's name for the square)

rounded to the nearest integer, halves to even (``torch.round``; AdaSR truncates with ``int``). Tile p is then sampled with its own N_p-step DDIM
schedule (:func:`~adasr.diffusion.timesteps.spaced_timesteps`), so a simple tile costs N_p, not N_max, UNet
tile-evaluations — unlike the AdaSR repository, whose step map is computed and never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..config import MAPPINGS
from ..diffusion.timesteps import Schedule, get_schedule
from ..sampling.policies import Policy
from ..sampling.tiles import TileGrid
from .complexity import ESTIMATORS, Calibration, Estimator, Normalization, make_estimator, tile_complexity

Mapping = Literal["linear", "threshold", "exponential"]


def allocate_steps(
    c_p: torch.Tensor, n_min: int, n_max: int, mapping: Mapping = "linear", low: float = 0.3, high: float = 0.7
) -> list[int]:
    """N_p for each normalised patch complexity in ``c_p`` (N,) ∈ [0, 1] (values outside are clipped)."""
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max, got n_min={n_min}, n_max={n_max}")
    c = c_p.detach().double().clamp(0, 1)
    if mapping == "linear":
        f = c
    elif mapping == "exponential":
        f = c * c
    elif mapping == "threshold":
        if not 0 <= low < high <= 1:
            raise ValueError(f"thresholds must satisfy 0 <= low < high <= 1, got {low}, {high}")
        f = ((c - low) / (high - low)).clamp(0, 1)
    else:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}, got {mapping!r}")
    return [int(v) for v in torch.round(n_min + (n_max - n_min) * f).long().tolist()]


@dataclass(frozen=True)
class StepAllocation(Policy):
    """Policy: tile p runs an N_p-step DDIM schedule with N_p from its complexity (module docstring).

    ``estimator`` names a map of :data:`~adasr.adaptive.complexity.ESTIMATORS` (or pass ``estimator_fn``);
    ``normalize='calibrated'`` needs ``calibration``.
    """

    n_min: int = 2
    n_max: int = 20
    estimator: str = "gradient"
    mapping: Mapping = "linear"
    normalize: Normalization = "image"
    calibration: Calibration | None = None
    low: float = 0.3
    high: float = 0.7
    schedule: str | Schedule = "linspace"
    estimator_fn: Estimator | None = field(default=None, compare=False, repr=False)
    name: str = "allocation"

    def __post_init__(self) -> None:
        allocate_steps(torch.zeros(1), self.n_min, self.n_max, self.mapping, self.low, self.high)  # validates
        object.__setattr__(self, "schedule", get_schedule(self.schedule))
        if self.estimator_fn is None and self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown complexity estimator {self.estimator!r}; choose from {', '.join(ESTIMATORS)}")

    @property
    def steps(self) -> int:  # type: ignore[override]
        """The largest budget (N_max): what uniform DDIM would spend on every tile."""
        return self.n_max

    def complexity(self, cond_tiles: torch.Tensor) -> torch.Tensor:
        """C_p ∈ [0, 1] of each tile (N, 3, h, w) → (N,)."""
        fn = self.estimator_fn or make_estimator(self.estimator)
        return tile_complexity(cond_tiles, fn, self.normalize, self.calibration)

    def budgets(self, cond_tiles: torch.Tensor) -> list[int]:
        return allocate_steps(self.complexity(cond_tiles), self.n_min, self.n_max, self.mapping, self.low, self.high)

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        sched: Schedule = self.schedule  # type: ignore[assignment]
        return [sched.timesteps(n, num_train_timesteps) for n in self.budgets(cond_tiles)]


def tile_value_map(values: list[float] | torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Image-sized map (H, W) holding, at each pixel, the value of the tile whose centre is nearest (Chebyshev
    distance relative to the tile size — the tile that dominates the Gaussian merge there). Draws step maps."""
    v = torch.as_tensor(values, dtype=torch.float32)
    if v.shape != (len(grid),):
        raise ValueError(f"need one value per tile ({len(grid)}), got shape {tuple(v.shape)}")
    ys = torch.arange(grid.height, dtype=torch.float32)[:, None]
    xs = torch.arange(grid.width, dtype=torch.float32)[None, :]
    best = torch.full((grid.height, grid.width), float("inf"))
    idx = torch.zeros(grid.height, grid.width, dtype=torch.long)
    for k, (t, l) in enumerate(grid.positions):
        cy, cx = t + (grid.tile_h - 1) / 2, l + (grid.tile_w - 1) / 2
        d = torch.maximum((ys - cy).abs() / grid.tile_h, (xs - cx).abs() / grid.tile_w)
        closer = d < best
        best = torch.where(closer, d, best)
        idx = torch.where(closer, torch.full_like(idx, k), idx)
    return v[idx]
