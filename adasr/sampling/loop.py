"""The tile-batch sampler (DESIGN "the spine"): :func:`iterate_tiles`, a generator, and :func:`sample_tiles`.

An image's condition up(LR) (1, 3, H, W) is cut into overlapping tiles. Each tile carries its own descending
timestep list, its position in it, and its state (x_t, last x̂0). At every iteration the sampler gathers the tiles
still running, evaluates the network **once** on that batch through the denoiser layer
(:class:`~adasr.sampling.denoiser.Denoiser`, each tile in the mode its policy chose), takes one DDIM step per tile
with its own (t, t_prev) (Song et al. 2021, eq. 12; :class:`~adasr.diffusion.ddim.DDIMUpdate`), and asks the policy
what each tile does next; then the policy's ``end_iteration`` may stop tiles having seen all of them. A finished
tile keeps its clean estimate x̂0 and its denoiser caches are dropped; the tiles are merged with Gaussian weights.
The initial noise is drawn for the whole image and then cut, so overlapping tiles start from identical noise.

:func:`iterate_tiles` yields a :class:`SamplerState` after every iteration — the tiles, the cost so far, the tile
steps of that iteration (a trace) — so figures, recorders and progress displays are consumers of the loop rather
than flags of it; ``state.result()`` is the :class:`SampleResult`. :func:`sample_tiles` runs the loop to the end.

Cost is counted in UNet calls, tile-evaluations (one tile through the UNet once) and MACs (per denoiser mode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cost import CostCounter
from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from ..srmodel import SRDiffusion
from .denoiser import Denoiser
from .policies import Policy, TileState, UniformDDIM
from .tiles import MergeMode, TileGrid


@dataclass
class SampleResult:
    """Output of :func:`sample_tiles`: the merged clean sample and what it cost.

    ``trace`` has one row per tile step ({iteration, tile, t, t_prev, stopped}; t = −1 marks a stop by
    ``end_iteration``); ``policy_memory`` is the policy's :meth:`~adasr.sampling.policies.Policy.memory` after
    the run (e.g. early exit's per-tile Δ lists under ``"deltas"``).
    """

    x0: torch.Tensor  # (1, 3, H, W), the diffused variable (the residual for residual models)
    grid: TileGrid
    tiles: list[TileState]
    cost: CostCounter
    iterations: int
    seconds: float
    tile_x0: torch.Tensor  # (N, 3, h, w) per-tile final x̂0 before merging
    trace: list[dict] = field(default_factory=list)
    policy_memory: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplerState:
    """The sampler after an iteration (the same object is updated and yielded each time).

    ``steps`` are this iteration's trace rows, ``trace`` all rows so far; ``stopped`` the tiles that finished in
    this iteration; ``denoiser`` the run's network layer (its per-tile caches). :meth:`current_x0` is the image the sampler would return if it stopped now.
    """

    iteration: int
    tiles: list[TileState]
    grid: TileGrid
    cost: CostCounter
    policy: Policy
    merge: MergeMode
    started: float
    seconds: float = 0.0
    steps: list[dict] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    denoiser: Denoiser | None = field(default=None, repr=False)  # the network layer of this run (its caches)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.tiles)

    @property
    def running(self) -> list[TileState]:
        return [s for s in self.tiles if not s.done]

    def tile_x0(self) -> torch.Tensor:
        """(N, 3, h, w): each tile's current x̂0 (a tile that ran to the end of its list has x_t = x̂0, the last
        step landing on ᾱ = 1; an early-stopped tile keeps x̂0; a tile never evaluated shows its x_t)."""
        return torch.stack([s.x0 if s.x0 is not None else s.x_t for s in self.tiles])  # type: ignore[misc]

    def current_x0(self, merge: MergeMode | None = None) -> torch.Tensor:
        """The merged current estimate (1, 3, H, W) — the final sample once :attr:`done`."""
        return self.grid.merge(self.tile_x0().detach().float().cpu(), merge or self.merge)

    def result(self) -> SampleResult:
        """The :class:`SampleResult` of the finished run."""
        if not self.done:
            raise RuntimeError("the sampler has not finished: iterate iterate_tiles(...) to the end first")
        tile_x0 = self.tile_x0()
        return SampleResult(self.grid.merge(tile_x0, self.merge), self.grid, self.tiles, self.cost, self.iteration,
                            self.seconds, tile_x0, list(self.trace), self.policy.memory())


def _check_plans(plans: Sequence[Sequence[int]], n: int, T: int) -> None:
    if len(plans) != n:
        raise ValueError(f"policy planned {len(plans)} tiles, the grid has {n}")
    for k, ts in enumerate(plans):
        if not ts or any(a <= b for a, b in zip(ts, ts[1:])) or ts[0] >= T or ts[-1] < 0:
            raise ValueError(f"tile {k}: timesteps must be a non-empty descending list in [0, {T}), got {ts}")


@torch.no_grad()
def iterate_tiles(
    model: SRDiffusion,
    cond: torch.Tensor,
    *,
    policy: Policy | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    merge: MergeMode = "gaussian",
    seed: int = 0,
    eta: float = 0.0,
    precision: str = "fp32",
    max_batch: int = 64,
    progress: bool = False,
) -> Iterator[SamplerState]:
    """Run ``policy`` over the tiles of ``cond`` (1, 3, H, W), H and W multiples of the UNet's ``multiple``,
    yielding the :class:`SamplerState` after every iteration (module docstring).

    ``precision`` is 'fp32' or 'bf16' (autocast). A model stored in channels_last
    (:func:`~adasr.runtime.prepare_for_inference`) gets its inputs in channels_last too (the denoiser does it).
    ``progress`` shows a tqdm bar of tile-steps, closed however the loop ends (Ctrl-C included).
    """
    policy = policy or UniformDDIM()
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be an adasr.sampling.policies.Policy, got {type(policy).__name__}")
    if eta < 0 or not np.isfinite(eta):
        raise ValueError(f"eta must be a finite number >= 0, got {eta}")
    dev = cond.device
    grid = TileGrid.cover(cond.shape[-2], cond.shape[-1], tile, overlap)
    m = model.unet.multiple
    if grid.tile_h % m or grid.tile_w % m:
        raise ValueError(f"tile size {grid.tile_h}×{grid.tile_w} must be a multiple of {m}; pad the image first")
    cond_tiles = grid.split(cond)
    g = torch.Generator().manual_seed(seed)
    noise = grid.split(torch.randn(1, 3, cond.shape[-2], cond.shape[-1], generator=g)).to(dev)
    update = model.ddim_update()
    T = model.num_train_timesteps
    plans = policy.plan(cond_tiles, T)
    _check_plans(plans, len(grid), T)
    policy.begin(len(grid))
    tiles = [TileState(k, list(ts), x_t=noise[k]) for k, ts in enumerate(plans)]
    denoiser = Denoiser(model.unet, precision=precision, cache=policy.reuse)
    for mode in ("full", *policy.reuse):  # measured once per network and tile shape, outside the timed loop
        denoiser.macs(mode, (grid.tile_h, grid.tile_w))
    state = SamplerState(0, tiles, grid, CostCounter(), policy, merge, time.perf_counter(), denoiser=denoiser)
    bar = tqdm(total=sum(len(s.timesteps) for s in tiles), desc="sampling", unit="tile-step", leave=False,
               disable=not progress)

    def finish(s: TileState) -> None:
        s.done = True
        bar.total -= len(s.timesteps) - s.position  # steps an early stop saves
        denoiser.drop(s.index)
        state.stopped.append(s.index)

    try:  # the bar is closed (its line cleared) however the loop ends, Ctrl-C included
        while not state.done:
            state.steps, state.stopped = [], []
            running = state.running
            for start in range(0, len(running), max_batch):
                chunk = running[start : start + max_batch]
                idx = [s.index for s in chunk]
                x = torch.stack([s.x_t for s in chunk])  # type: ignore[misc]
                t = torch.tensor([s.t for s in chunk], dtype=torch.long, device=dev)
                t_prev = torch.tensor([s.t_prev for s in chunk], dtype=torch.long, device=dev)
                res = denoiser(x, t, cond_tiles[idx], tiles=idx, modes=[s.mode for s in chunk])
                state.cost += res.cost
                z = torch.randn(res.output.shape, generator=g).to(dev) if eta > 0 else None
                x_prev, x0 = update(res.output, t, t_prev, x.float(), eta, z)
                for j, s in enumerate(chunk):
                    x0_new = x0[j]
                    s.evaluations += 1
                    decision = policy.decide(s, x0_new, s.x0)
                    s.x0 = x0_new
                    s.x_t = x_prev[j]
                    s.position += 1
                    s.mode = decision.mode or "full"
                    if decision.stop or s.position >= len(s.timesteps):
                        finish(s)
                    elif decision.remaining is not None:
                        rest = list(decision.remaining)
                        if not rest or rest[0] >= s.timesteps[s.position - 1]:
                            raise ValueError(f"policy gave tile {s.index} a non-descending remainder {rest}")
                        bar.total += len(rest) - (len(s.timesteps) - s.position)
                        s.timesteps = s.timesteps[: s.position] + rest
                    state.steps.append({"iteration": state.iteration, "tile": s.index, "t": int(t[j]),
                                        "t_prev": int(t_prev[j]), "stopped": s.done})
                bar.update(len(chunk))
            for k in policy.end_iteration(tiles):  # policies that decide over all tiles at once (global early exit)
                s = tiles[k]
                if not s.done:
                    finish(s)
                    state.steps.append({"iteration": state.iteration, "tile": s.index, "t": -1, "t_prev": -1,
                                        "stopped": True})
            state.trace.extend(state.steps)
            state.iteration += 1
            state.seconds = time.perf_counter() - state.started
            yield state
    finally:
        bar.close()
        denoiser.clear()


def run_to_end(states: Iterator[SamplerState], observe: Callable[[SamplerState], None] | None = None
               ) -> SampleResult:
    """Consume :func:`iterate_tiles` (calling ``observe(state)`` after each iteration) and return its result."""
    state = None
    for state in states:
        if observe is not None:
            observe(state)
    if state is None:
        raise ValueError("the sampler yielded no iteration")
    return state.result()


def sample_tiles(model: SRDiffusion, cond: torch.Tensor, **kwargs: Any) -> SampleResult:
    """Run :func:`iterate_tiles` to the end and return the merged clean sample x̂0 (1, 3, H, W) with its cost.

    Keyword arguments as :func:`iterate_tiles` (``policy``, ``tile``, ``overlap``, ``merge``, ``seed``, ``eta``,
    ``precision``, ``max_batch``, ``progress``). To watch the run, iterate :func:`iterate_tiles` instead.
    """
    return run_to_end(iterate_tiles(model, cond, **kwargs))


__all__ = ["SampleResult", "SamplerState", "iterate_tiles", "run_to_end", "sample_tiles"]
