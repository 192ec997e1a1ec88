"""Policies: the per-tile decisions of the tile-batch sampler.

A policy answers two questions.

1. ``plan``: before sampling, each tile's descending list of timesteps (its budget N_p = the list's length).
2. ``decide``: after each of a tile's steps, what it does next — continue, stop now keeping its x̂0, or replace
   the rest of its list (a change of stride).

Uniform DDIM is the policy "same list for every tile, never stop". Adaptive methods (AdaSR allocation and early
exit, AdaDiffSR's dynamic strides) are other policies over the same loop, so their savings are UNet work not done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch


def spaced_timesteps(num_steps: int, num_train_timesteps: int = 1000, spacing: str = "linspace") -> list[int]:
    """Descending timesteps for ``num_steps`` DDIM steps (diffusers' ``timestep_spacing`` rules).

    ``linspace``: round(linspace(T−1, 0, n)) (999, 888, …, 0 for n = 10); ``leading``: (T/n)·[n−1 … 0];
    ``trailing``: round(T − T/n·[0 … n−1]) − 1. One step is always [T − 1] (unlike diffusers, whose
    ``linspace``/``leading`` give [0] for n = 1).
    """
    T, n = num_train_timesteps, num_steps
    if not 1 <= n <= T:
        raise ValueError(f"number of steps must be in 1..{T}, got {n}")
    if n == 1:
        # linspace/leading would give [0]: one evaluation at a clean-data timestep fed pure noise. A single step
        # must start where the noise is, t = T − 1 (then it returns the model's x̂0: a regression output).
        return [T - 1]
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, n).round()[::-1]
    elif spacing == "leading":
        ts = (np.arange(0, n) * (T // n)).round()[::-1]
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / n)) - 1
    else:
        raise ValueError(f"spacing must be 'linspace', 'leading' or 'trailing', got {spacing!r}")
    return [int(t) for t in ts]


@dataclass
class TileState:
    """One tile's progress: its schedule, where it is in it, its current sample and last clean estimate."""

    index: int
    timesteps: list[int]
    position: int = 0
    x_t: torch.Tensor | None = None
    x0: torch.Tensor | None = None
    done: bool = False
    evaluations: int = 0
    history: list[float] = field(default_factory=list)

    @property
    def t(self) -> int:
        return self.timesteps[self.position]

    @property
    def t_prev(self) -> int:
        """The timestep stepped to (−1 after the last one: the clean end of the chain)."""
        return self.timesteps[self.position + 1] if self.position + 1 < len(self.timesteps) else -1


@dataclass(frozen=True)
class Decision:
    """What a tile does after a step: ``stop`` (keep x̂0) or continue, optionally with a new remaining list."""

    stop: bool = False
    remaining: tuple[int, ...] | None = None


CONTINUE = Decision()
STOP = Decision(stop=True)


@runtime_checkable
class Policy(Protocol):
    """Interface of a sampling policy (see the module docstring)."""

    name: str

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        """Each tile's descending timestep list; ``cond_tiles`` is up(LR) cut into tiles, (N, 3, h, w)."""
        ...

    def decide(self, tile: TileState, x0_new: torch.Tensor, x0_old: torch.Tensor | None) -> Decision:
        """Called after each step of ``tile`` with its new and previous clean estimates (C, h, w)."""
        ...


@dataclass(frozen=True)
class UniformDDIM:
    """The baseline policy: every tile gets the same ``steps``-step DDIM schedule and never stops early."""

    steps: int = 10
    spacing: str = "linspace"
    name: str = "uniform"

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        ts = spaced_timesteps(self.steps, num_train_timesteps, self.spacing)
        return [list(ts) for _ in range(cond_tiles.shape[0])]

    def decide(self, tile: TileState, x0_new: torch.Tensor, x0_old: torch.Tensor | None) -> Decision:
        return CONTINUE
