"""Δx̂0 early stopping (AdaSR's temporal adaptivity, as its README states it — its code does something else).

After each step the sampler has a new clean estimate x̂0^(t). The convergence rate of a tile (or the image) is

    Δ_t = ‖x̂0^(t) − x̂0^(t+1)‖₂ / (√n · R)

the root-mean-square change of the clean estimate over its n values (pixels × channels), in units of the image
range R (R = 2 for the package's [−1, 1] images, so Δ is a fraction of black-to-white; for residual models x̂0 is
the residual r = s·(HR − up(LR)) and R = 2s). Stopping rule, checked after every step once at least
``warmup`` (T_min) steps have run:

    stop  if  max(Δ over the last ``patience`` (P) steps) < ε.

(The README writes the window as Δ_t … Δ_{t+P}; we count P values, so P = 1 stops at the first small Δ.)
On stopping, the tile keeps its clean estimate x̂0^(t) — never the noisy x_t, which is what the AdaSR repository
returns.

``mode='tile'`` applies the rule to each tile on its own (tiles stop at different times); ``mode='global'`` applies
it to the whole image, Δ being the RMS over all tiles' values (overlaps counted once per tile), and stops every tile
together — that needs one common schedule.

Replay: stopping only removes steps, so an early-exit run is a prefix of the uniform run, and :func:`stop_steps`
evaluates any (ε, P, T_min, mode) on the Δ histories of one run that never stopped, without sampling again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch

from ..config import EXIT_MODES
from ..sampling.policies import STOP, Decision, Policy, TileState, UniformDDIM

ExitMode = Literal["tile", "global"]


def delta(x0_new: torch.Tensor, x0_old: torch.Tensor, value_range: float = 2.0) -> float:
    """Δ = RMS(x0_new − x0_old) / value_range for two clean estimates of the same shape."""
    if x0_new.shape != x0_old.shape:
        raise ValueError(f"shapes differ: {tuple(x0_new.shape)} vs {tuple(x0_old.shape)}")
    d = (x0_new.double() - x0_old.double()).pow(2).mean().sqrt().item()
    return d / value_range


@dataclass(frozen=True)
class EarlyExitRule:
    """ε (``epsilon``), P (``patience``) and T_min (``warmup``) of the stopping rule."""

    epsilon: float = 0.002
    patience: int = 2
    warmup: int = 4

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        if self.warmup < 1:
            raise ValueError(f"warmup must be at least 1, got {self.warmup}")

    def should_stop(self, deltas: Sequence[float], steps_taken: int) -> bool:
        """True when ``steps_taken`` ≥ T_min and the last P values of ``deltas`` are all below ε."""
        if steps_taken < self.warmup or len(deltas) < self.patience:
            return False
        return max(deltas[-self.patience :]) < self.epsilon


def global_deltas(histories: Sequence[Sequence[float]]) -> list[float]:
    """The whole-image Δ per step from the tiles' Δ histories: sqrt(mean over tiles of Δ_tile²) (equal-size tiles,
    so this is the RMS over all their values)."""
    n = min((len(h) for h in histories), default=0)
    return [math.sqrt(sum(h[k] ** 2 for h in histories) / len(histories)) for k in range(n)]


def stop_steps(histories: Sequence[Sequence[float]], rule: EarlyExitRule, n_steps: int,
               mode: ExitMode = "tile") -> list[int]:
    """Replay ``rule`` on the Δ histories of a run that never stopped: each tile's stop step k ∈ [1, n_steps].

    Args:
        histories: one Δ list per tile — ``SampleResult.policy_memory["deltas"]`` (or ``policy.deltas(p)``) of an
            N-step :class:`EarlyExit` run with a rule that never fires; each has at least ``n_steps − 1`` values,
            value j comparing x̂0 after step j + 2 with x̂0 after step j + 1.
        rule: the ε, P, T_min to replay.
        n_steps: N, the length of the schedule (a tile that never stops costs N).
        mode: ``'tile'`` (each tile on its own Δ) or ``'global'`` (every tile stops at the first step where the
            whole-image Δ of :func:`global_deltas` meets the rule).

    After step k the policy has seen k − 1 values of Δ and has taken k steps, so the stop step is the first k with
    ``rule.should_stop(Δ[:k − 1], k)`` (N if there is none) — the rule code :class:`EarlyExit` runs. Returns one
    stop step per tile: what the policy would report as each tile's ``evaluations``; the tile's result is its x̂0
    after that step.
    """
    if mode not in EXIT_MODES:
        raise ValueError(f"mode must be 'tile' or 'global', got {mode!r}")
    if any(len(h) < n_steps - 1 for h in histories):
        raise ValueError(f"every history needs {n_steps - 1} Δ values for an {n_steps}-step schedule")

    def first_stop(deltas: Sequence[float]) -> int:
        return next((k for k in range(1, n_steps + 1) if rule.should_stop(deltas[: k - 1], k)), n_steps)

    if mode == "tile":
        return [first_stop(h) for h in histories]
    return [first_stop(global_deltas(histories))] * len(histories)


@dataclass(frozen=True)
class EarlyExit(Policy):
    """Policy: ``base``'s schedules (uniform DDIM at N_max by default, or a :class:`StepAllocation`) plus the
    Δx̂0 stopping rule, per tile or for the whole image.

    The policy owns its per-tile memory: the Δ values of each tile in the current run (reset by ``begin``),
    read with :meth:`deltas` and stored by the sampler in ``SampleResult.policy_memory["deltas"]``.
    """

    base: Policy = field(default_factory=lambda: UniformDDIM(20))
    rule: EarlyExitRule = field(default_factory=EarlyExitRule)
    mode: ExitMode = "tile"
    value_range: float = 2.0
    name: str = "early-exit"
    _deltas: list[list[float]] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in EXIT_MODES:
            raise ValueError(f"mode must be 'tile' or 'global', got {self.mode!r}")
        if not self.value_range > 0:
            raise ValueError(f"value_range must be positive, got {self.value_range}")

    @property
    def steps(self) -> int:  # type: ignore[override]
        return self.base.steps

    @property
    def reuse(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base.reuse

    @property
    def schedule(self):  # type: ignore[override]
        """The base policy's schedule."""
        return self.base.schedule

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        plans = self.base.plan(cond_tiles, num_train_timesteps)
        if self.mode == "global" and any(p != plans[0] for p in plans):
            raise ValueError("global early exit needs one schedule for every tile; use mode='tile' with allocation")
        return plans

    def begin(self, num_tiles: int) -> None:
        self.base.begin(num_tiles)
        self._deltas.clear()
        self._deltas.extend([] for _ in range(num_tiles))

    def deltas(self, tile: int) -> list[float]:
        """Δ values of ``tile`` so far in this run: Δ[j] compares x̂0 after step j + 2 with x̂0 after step j + 1."""
        while len(self._deltas) <= tile:  # a caller that drives decide() without begin()
            self._deltas.append([])
        return self._deltas[tile]

    def decide(self, tile: TileState, x0_new: torch.Tensor, x0_old: torch.Tensor | None) -> Decision:
        base = self.base.decide(tile, x0_new, x0_old)
        history = self.deltas(tile.index)
        if x0_old is not None:
            history.append(delta(x0_new, x0_old, self.value_range))
        if base.stop or self.mode == "global":
            return base
        return STOP if self.rule.should_stop(history, tile.evaluations) else base

    def end_iteration(self, tiles: list[TileState]) -> list[int]:
        """Global mode: stop all running tiles when the whole-image Δ meets the rule."""
        if self.mode != "global":
            return []
        running = [t for t in tiles if not t.done]
        if not running:
            return []
        if self.rule.should_stop(global_deltas([self.deltas(t.index) for t in tiles]), running[0].evaluations):
            return [t.index for t in running]
        return []

    def memory(self) -> dict[str, Any]:
        """``{"deltas": [Δ list of tile 0, …]}`` of the last run (copies)."""
        return {"deltas": [list(h) for h in self._deltas], **self.base.memory()}


__all__ = ["EarlyExit", "EarlyExitRule", "ExitMode", "delta", "global_deltas", "stop_steps"]
