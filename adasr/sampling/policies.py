"""Policies: the per-tile decisions of the tile-batch sampler, declared once in :class:`Policy`.

A policy answers, for the tiles of one image:

1. ``plan(cond_tiles, T)``: before sampling, each tile's descending list of timesteps (its budget N_p = the
   list's length);
2. ``decide(tile, x0_new, x0_old)``: after each of a tile's steps, what it does next — continue, stop now keeping
   its x̂0, replace the rest of its list (a change of stride), and in which denoiser mode its next evaluation runs
   (``full``, or reuse of a cached feature: :mod:`adasr.sampling.denoiser`);
3. ``end_iteration(tiles)`` (optional): after every iteration, which running tiles to stop having seen all of
   them (a whole-image rule);
4. ``condition(tiles, cond)`` (optional): what the network is conditioned on for those tiles (default: their cut
   up(LR); AdaDiffSR's progressive feature injection adds the tiles' information gain);
5. ``ahead(tile)`` and ``inject(tile, x_prev)`` (optional, feature reuse): the later timesteps whose decoder
   outputs a key step computes in the same call (parallel decoding), and a change to the updated x_t (prior noise
   injection);

and declares ``name`` (for reports), ``steps`` (the budget N of the busiest tile: what ``--steps`` means for every
policy), ``schedule`` (the :class:`~adasr.diffusion.timesteps.Schedule` its lists come from, for reports) and ``reuse`` (the denoiser modes it may ask for, so the denoiser keeps those caches).

Per-tile memory a policy needs across steps (the Δ history of early exit) belongs to the policy: ``begin(n)`` is
called by the sampler before the first step of every run to reset it, and ``memory()`` returns a snapshot that
the sampler stores in its result. Uniform DDIM is the policy "same list for every tile, never stop"; adaptive
methods (AdaSR allocation and early exit, AdaDiffSR's dynamic strides) are other policies over the same loop, so
their savings are UNet work not done.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import torch

from ..diffusion.timesteps import Schedule, get_schedule, spaced_timesteps
from .denoiser import MODES


@dataclass
class TileState:
    """One tile's progress: its schedule, where it is in it, its current sample and last clean estimate, how
    often it has been evaluated, and the denoiser mode of its next evaluation."""

    index: int
    timesteps: list[int]
    position: int = 0
    x_t: torch.Tensor | None = None
    x0: torch.Tensor | None = None
    done: bool = False
    evaluations: int = 0
    mode: str = "full"
    x_T: torch.Tensor | None = None  # the tile's initial noise (prior noise injection reads it)

    @property
    def t(self) -> int:
        return self.timesteps[self.position]

    @property
    def t_prev(self) -> int:
        """The timestep stepped to (−1 after the last one: the clean end of the chain)."""
        return self.timesteps[self.position + 1] if self.position + 1 < len(self.timesteps) else -1


@dataclass(frozen=True)
class Decision:
    """What a tile does after a step: ``stop`` (keep x̂0) or continue, optionally with a new ``remaining`` list
    of timesteps and the denoiser ``mode`` of its next evaluation (``None``: ``full``).

    ``remaining`` replaces the tile's list from its next position on; its first entry is the timestep the tile's
    x_t is then taken to be at, so a change of stride keeps it equal to the t_prev of the step just taken
    (``tile.t_prev`` inside ``decide``) and changes only the entries after it. ``keep`` (with ``stop``): the clean
    estimate the tile ends with instead of the newest one (AdaDiffSR keeps the best estimate so far when a region
    saturates).
    """

    stop: bool = False
    remaining: tuple[int, ...] | None = None
    mode: str | None = None
    keep: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, got {self.mode!r}")
        if self.keep is not None and not self.stop:
            raise ValueError("keep (the estimate a tile ends with) needs stop=True")


CONTINUE = Decision()
STOP = Decision(stop=True)


class Policy:
    """Base class of the sampling policies: the interface of the module docstring, with its defaults.

    Subclasses implement :meth:`plan` and :attr:`steps`; the others default to "continue every tile with a full
    evaluation, never stop, no memory, no feature reuse".
    """

    name: str = "policy"
    #: the :class:`~adasr.diffusion.timesteps.Schedule` a tile's N_p-step list comes from (None: no single one)
    schedule: Schedule | None = None
    #: denoiser modes this policy may ask for besides ``full`` (the denoiser keeps their caches)
    reuse: tuple[str, ...] = ()

    @property
    def steps(self) -> int:
        """N: the most steps any tile may take (its budget; uniform DDIM's step count)."""
        raise NotImplementedError(f"{type(self).__name__} must define `steps`")

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        """Each tile's descending timestep list; ``cond_tiles`` is up(LR) cut into tiles, (N, 3, h, w)."""
        raise NotImplementedError(f"{type(self).__name__} must define `plan`")

    def begin(self, num_tiles: int) -> None:
        """Reset per-run memory; called by the sampler before the first step of each run."""

    def decide(self, tile: TileState, x0_new: torch.Tensor, x0_old: torch.Tensor | None) -> Decision:
        """Called after each step of ``tile`` with its new and previous clean estimates (C, h, w)."""
        return CONTINUE

    def end_iteration(self, tiles: list[TileState]) -> list[int]:
        """Indices of running tiles to stop after an iteration, having seen every tile (default: none)."""
        return []

    def condition(self, tiles: list[TileState], cond: torch.Tensor) -> torch.Tensor:
        """The conditioning the network gets for ``tiles`` this iteration, from their cut condition ``cond``
        (B, C, h, w); default ``cond`` itself. AdaDiffSR's PFJ appends each tile's latest information gain."""
        return cond

    def memory(self) -> dict[str, Any]:
        """A snapshot of the per-tile memory of the last run (stored in the sampler's result); default empty."""
        return {}

    def ahead(self, tile: TileState) -> tuple[int, ...]:
        """Timesteps whose decoder outputs ``tile``'s coming ``full`` evaluation should also compute, in the same
        batched call (Faster-Diffusion's parallel decoding, :mod:`adasr.acceleration.reuse`); default none."""
        return ()

    def inject(self, tile: TileState, x_prev: torch.Tensor) -> torch.Tensor:
        """The tile's next x_t from the sampler's update ``x_prev`` (3, h, w); default ``x_prev`` itself
        (Faster-Diffusion's prior noise injection adds λ·x_T)."""
        return x_prev


@dataclass(frozen=True)
class UniformDDIM(Policy):
    """The baseline policy: every tile runs the same ``steps``-step list of ``schedule`` and never stops early.

    ``schedule`` is a :class:`~adasr.diffusion.timesteps.Schedule` or what
    :func:`~adasr.diffusion.timesteps.get_schedule` accepts: a spacing (``linspace``, the textbook DDIM default),
    ``karras``, an optimised preset (``balanced``, ``perceptual``, ``fidelity``) or an explicit list.
    """

    steps: int = 10  # type: ignore[assignment]
    schedule: str | Schedule = "linspace"
    name: str = "uniform"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise ValueError(f"steps must be a positive int, got {self.steps!r}")
        object.__setattr__(self, "schedule", get_schedule(self.schedule))

    def timesteps(self, num_train_timesteps: int = 1000) -> list[int]:
        """The one list every tile runs: ``schedule.timesteps(steps, T)``."""
        return self.schedule.timesteps(self.steps, num_train_timesteps)  # type: ignore[union-attr]

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        ts = self.timesteps(num_train_timesteps)
        return [list(ts) for _ in range(cond_tiles.shape[0])]


__all__ = ["CONTINUE", "STOP", "Decision", "Policy", "TileState", "UniformDDIM", "spaced_timesteps"]
