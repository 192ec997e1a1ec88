"""The tile-batch sampler (DESIGN "the spine"): :func:`iterate_tiles`, a generator, and :func:`sample_tiles`.

An image's condition up(LR) (1, 3, H, W) is cut into overlapping tiles. Each tile carries its own descending
timestep list, its position in it, and its state (x_t, last x̂0). At every iteration the sampler gathers the tiles
still running, evaluates the network **once** on that batch through the denoiser layer
(:class:`~adasr.sampling.denoiser.Denoiser`, each tile in the mode its policy chose), takes one DDIM step per tile
with its own (t, t_prev) (Song et al. 2021, eq. 12; :class:`~adasr.diffusion.ddim.DDIMUpdate`), and asks the policy
what each tile does next; then the policy's ``end_iteration`` may stop tiles having seen all of them. A finished
tile keeps its clean estimate x̂0 and its denoiser caches are dropped; the tiles are merged with Gaussian weights.
The initial noise is drawn for the whole image and then cut, so overlapping tiles start from identical noise.

Region integration (AdaDiffSR), the ``integrate`` option:

* ``"final"`` (default): tiles evolve independently and only their final x̂0 are merged, once, at the end
  (AdaDiffSR integrates regions "only in the final timestep to avoid neighbourhood noise corruption").
* ``"shared-t"``: after every iteration (after the policy's ``end_iteration``), the running tiles are grouped by
  the timestep they now sit at (``TileState.t``, the t of their next evaluation); in each group of two or more
  tiles that overlap, the x_t are merged by :meth:`~adasr.sampling.tiles.TileGrid.merge_subset` (the normalised
  weighted sum of the final merge, with its ``merge`` mode, over that group only) and every tile of the group takes
  back its window of the merged canvas in the pixels that two or more of the group's tiles cover. Tiles at another
  t, finished tiles and pixels covered by one tile of the group keep their x_t bit for bit. Only x_t is merged:
  a tile's x̂0 is its own network's estimate (from its merged x_t), and a tile that stops early keeps its last x̂0
  as in ``"final"``; the result is still the ``merge`` of the tiles' final x̂0. With η > 0 the fresh DDIM
  noise z of each iteration is then drawn for the whole image and cut (as the initial noise), so that overlapping
  tiles at the same t receive the same z and the merge does not average independent noise away. Each merge is
  recorded in ``merges`` ({iteration, t, tiles, pixels}: pixels = image pixels covered by ≥ 2 of the group).
  With uniform DDIM every tile shares t, so this is "merge the whole image's x_t after every step".

:func:`iterate_tiles` yields a :class:`SamplerState` after every iteration — the tiles, the cost so far, the tile
steps of that iteration (a trace) — so figures, recorders and progress displays are consumers of the loop rather
than flags of it; ``state.result()`` is the :class:`SampleResult`. :func:`sample_tiles` runs the loop to the end.

Cost is counted in UNet calls, tile-evaluations (one tile through the UNet once) and MACs (per denoiser mode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cost import CostCounter
from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from ..runtime import seeded_generator
from ..srmodel import SRDiffusion
from .denoiser import Denoiser
from .policies import Policy, TileState, UniformDDIM
from .tiles import MergeMode, TileGrid

#: How tiles are integrated into one image (module docstring).
Integrate = Literal["final", "shared-t"]
INTEGRATE_MODES: tuple[str, ...] = ("final", "shared-t")


@dataclass
class SampleResult:
    """Output of :func:`sample_tiles`: the merged clean sample and what it cost.

    ``trace`` has one row per tile step ({iteration, tile, t, t_prev, stopped}; t = −1 marks a stop by
    ``end_iteration``); ``policy_memory`` is the policy's :meth:`~adasr.sampling.policies.Policy.memory` after
    the run (e.g. early exit's per-tile Δ lists under ``"deltas"``); ``integrate`` the region integration the run
    used and ``merges`` one row per x_t merge of ``"shared-t"`` ({iteration, t, tiles, pixels}; empty for
    ``"final"``), so ``len(merges)`` is how many merges happened.
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
    integrate: str = "final"
    merges: list[dict] = field(default_factory=list)


@dataclass
class SamplerState:
    """The sampler after an iteration (the same object is updated and yielded each time).

    ``steps`` are this iteration's trace rows, ``trace`` all rows so far; ``stopped`` the tiles that finished in
    this iteration; ``denoiser`` the run's network layer (its per-tile caches). :meth:`current_x0` is the image the sampler would return if it stopped now.
    ``integrate`` is the run's region integration, ``merges`` its x_t merges so far (rows as
    :attr:`SampleResult.merges`; the last iteration's are those with its ``iteration``).
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
    integrate: str = "final"
    merges: list[dict] = field(default_factory=list)

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
                            self.seconds, tile_x0, list(self.trace), self.policy.memory(), self.integrate,
                            list(self.merges))


def _check_plans(plans: Sequence[Sequence[int]], n: int, T: int) -> None:
    if len(plans) != n:
        raise ValueError(f"policy planned {len(plans)} tiles, the grid has {n}")
    for k, ts in enumerate(plans):
        if not ts or any(a <= b for a, b in zip(ts, ts[1:])) or ts[0] >= T or ts[-1] < 0:
            raise ValueError(f"tile {k}: timesteps must be a non-empty descending list in [0, {T}), got {ts}")


def integrate_shared_t(grid: TileGrid, running: Sequence[TileState], mode: MergeMode = "gaussian",
                       iteration: int = 0) -> list[dict]:
    """One ``"shared-t"`` region integration over ``running`` tiles (module docstring), in place on their x_t.

    Groups the tiles by ``TileState.t``; for each group of ≥ 2 tiles that overlap, merges their x_t with
    :meth:`~adasr.sampling.tiles.TileGrid.merge_subset` (one merge per group) and writes each tile's window of the
    merged canvas back into the pixels covered by ≥ 2 tiles of the group (the other pixels are left bit for bit).
    Returns one row {iteration, t, tiles, pixels} per merge done.
    """
    groups: dict[int, list[TileState]] = {}
    for s in running:
        if not s.done:
            groups.setdefault(s.t, []).append(s)
    rows = []
    for t, group in groups.items():
        if len(group) < 2:
            continue
        idx = [s.index for s in group]
        x = torch.stack([s.x_t for s in group])  # type: ignore[misc]
        canvas, coverage = grid.merge_subset(x, idx, mode)
        shared = coverage > 1
        if not bool(shared.any()):  # no two of them overlap: nothing to merge
            continue
        new = torch.where(grid.crop(shared[None, None], idx), grid.crop(canvas, idx), x)
        for j, s in enumerate(group):
            s.x_t = new[j]
        rows.append({"iteration": iteration, "t": int(t), "tiles": idx, "pixels": int(shared.sum())})
    return rows


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
    integrate: Integrate = "final",
) -> Iterator[SamplerState]:
    """Run ``policy`` over the tiles of ``cond`` (1, 3, H, W), H and W multiples of the UNet's ``multiple``,
    yielding the :class:`SamplerState` after every iteration (module docstring).

    ``precision`` is 'fp32' or 'bf16' (autocast). A model stored in channels_last
    (:func:`~adasr.runtime.prepare_for_inference`) gets its inputs in channels_last too (the denoiser does it).
    ``progress`` shows a tqdm bar of tile-steps, closed however the loop ends (Ctrl-C included).
    ``integrate`` is the region integration, ``"final"`` (merge the x̂0 once, at the end) or ``"shared-t"`` (also
    merge the x_t of overlapping tiles at the same timestep after every iteration; module docstring).
    """
    policy = policy or UniformDDIM()
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be an adasr.sampling.policies.Policy, got {type(policy).__name__}")
    if eta < 0 or not np.isfinite(eta):
        raise ValueError(f"eta must be a finite number >= 0, got {eta}")
    if not torch.isfinite(cond).all():
        raise ValueError("cond contains NaN or infinite values")
    if integrate not in INTEGRATE_MODES:
        raise ValueError(f"integrate must be one of {', '.join(INTEGRATE_MODES)}, got {integrate!r}")
    shared_t = integrate == "shared-t"
    dev = cond.device
    grid = TileGrid.cover(cond.shape[-2], cond.shape[-1], tile, overlap)
    m = model.unet.multiple
    if grid.tile_h % m or grid.tile_w % m:
        raise ValueError(f"tile size {grid.tile_h}×{grid.tile_w} must be a multiple of {m}; pad the image first")
    cond_tiles = grid.split(cond)
    g = seeded_generator(seed)
    noise = grid.split(torch.randn(1, 3, cond.shape[-2], cond.shape[-1], generator=g)).to(dev)
    update = model.ddim_update()
    T = model.num_train_timesteps
    plans = policy.plan(cond_tiles, T)
    _check_plans(plans, len(grid), T)
    policy.begin(len(grid))
    tiles = [TileState(k, list(ts), x_t=noise[k], x_T=noise[k]) for k, ts in enumerate(plans)]
    denoiser = Denoiser(model.unet, precision=precision, cache=policy.reuse)
    for mode in ("full", *policy.reuse):  # measured once per network and tile shape, outside the timed loop
        denoiser.macs(mode, (grid.tile_h, grid.tile_w))
    state = SamplerState(0, tiles, grid, CostCounter(), policy, merge, time.perf_counter(), denoiser=denoiser,
                         integrate=integrate)
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
            # shared-t with η > 0: one image-level z per iteration, cut, so overlapping tiles get the same noise
            z_image = torch.randn(1, 3, grid.height, grid.width, generator=g) if shared_t and eta > 0 else None
            for start in range(0, len(running), max_batch):
                chunk = running[start : start + max_batch]
                idx = [s.index for s in chunk]
                x = torch.stack([s.x_t for s in chunk])  # type: ignore[misc]
                t = torch.tensor([s.t for s in chunk], dtype=torch.long, device=dev)
                t_prev = torch.tensor([s.t_prev for s in chunk], dtype=torch.long, device=dev)
                c = policy.condition(chunk, cond_tiles[idx])  # what the network is conditioned on (PFJ: + gains)
                res = denoiser(x, t, c, tiles=idx, modes=[s.mode for s in chunk],
                               ahead=[policy.ahead(s) for s in chunk])
                state.cost += res.cost
                if eta <= 0:
                    z = None
                elif z_image is not None:
                    z = grid.crop(z_image, idx).to(dev)
                else:
                    z = torch.randn(res.output.shape, generator=g).to(dev)
                x_prev, x0 = update(res.output, t, t_prev, x.float(), eta, z)
                for j, s in enumerate(chunk):
                    x0_new = x0[j]
                    s.evaluations += 1
                    decision = policy.decide(s, x0_new, s.x0)
                    keep = decision.keep if decision.stop else None  # a saturated AdaDiffSR tile keeps its best
                    s.x0 = keep.to(x0_new) if keep is not None else x0_new
                    s.x_t = policy.inject(s, x_prev[j])
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
            if shared_t:
                state.merges.extend(integrate_shared_t(grid, state.running, merge, state.iteration))
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
    ``precision``, ``max_batch``, ``progress``, ``integrate``). To watch the run, iterate :func:`iterate_tiles` instead.
    """
    return run_to_end(iterate_tiles(model, cond, **kwargs))


__all__ = ["INTEGRATE_MODES", "Integrate", "SampleResult", "SamplerState", "integrate_shared_t", "iterate_tiles",
           "run_to_end", "sample_tiles"]
