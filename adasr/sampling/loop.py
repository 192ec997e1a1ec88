"""The tile-batch sampler (DESIGN "the spine").

An image's condition up(LR) (1, 3, H, W) is cut into overlapping tiles. Each tile carries its own descending
timestep list, its position in it, and its state (x_t, last x̂0). At every iteration the sampler gathers the tiles
still running, evaluates the UNet **once** on that batch with per-tile t, takes one DDIM step per tile with its own
(t, t_prev) (Song et al. 2021, eq. 12), and asks the policy what each tile does next. A finished tile keeps its
clean estimate x̂0; the tiles are merged with Gaussian weights. A policy may also define
``end_iteration(tiles) -> indices`` to stop tiles after seeing all of them (a whole-image early-exit rule).
The initial noise is drawn for the whole image and then cut, so overlapping tiles start from identical noise.

Cost is counted in UNet calls, tile-evaluations (one tile through the UNet once) and MACs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..cost import CostCounter, unet_macs
from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from ..diffusion.schedulers import DDIMScheduler
from ..runtime import autocast, is_channels_last
from ..srmodel import SRDiffusion
from .policies import Policy, TileState, UniformDDIM
from .tiles import MergeMode, TileGrid


@dataclass
class SampleResult:
    """Output of :func:`sample_tiles`: the merged clean sample and what it cost."""

    x0: torch.Tensor  # (1, 3, H, W), the diffused variable (the residual for residual models)
    grid: TileGrid
    tiles: list[TileState]
    cost: CostCounter
    iterations: int
    seconds: float
    tile_x0: torch.Tensor  # (N, 3, h, w) per-tile final x̂0 before merging
    trace: list[dict] = field(default_factory=list)


def make_scheduler(model: SRDiffusion) -> DDIMScheduler:
    """The DDIM scheduler matching a model's training schedule and parameterisation (η chosen per call)."""
    c = model.config
    return DDIMScheduler.from_schedule(
        c.schedule, prediction_type=c.prediction_type, clip_sample=c.clip_sample_range > 0,
        clip_sample_range=max(c.clip_sample_range, 1e-6), set_alpha_to_one=True,
    )


@torch.no_grad()
def sample_tiles(
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
    callback: Callable[[int, list[TileState]], None] | None = None,
    trace: bool = False,
) -> SampleResult:
    """Run ``policy`` over the tiles of ``cond`` (1, 3, H, W), H and W multiples of the UNet's ``multiple``.

    Returns the merged clean sample x̂0 (1, 3, H, W). ``precision`` is 'fp32' or 'bf16' (autocast). A model stored in
    channels_last (:func:`~adasr.runtime.prepare_for_inference`) gets its inputs in channels_last too.
    ``callback(iteration, tiles)`` is called after each iteration (for visualisations).
    """
    policy = policy or UniformDDIM()
    dev = cond.device
    grid = TileGrid.cover(cond.shape[-2], cond.shape[-1], tile, overlap)
    nhwc = is_channels_last(model.unet)
    m = model.unet.multiple
    if grid.tile_h % m or grid.tile_w % m:
        raise ValueError(f"tile size {grid.tile_h}×{grid.tile_w} must be a multiple of {m}; pad the image first")
    cond_tiles = grid.split(cond)
    g = torch.Generator().manual_seed(seed)
    noise = grid.split(torch.randn(1, 3, cond.shape[-2], cond.shape[-1], generator=g)).to(dev)
    sched = make_scheduler(model)
    T = model.num_train_timesteps
    plans = policy.plan(cond_tiles, T)
    if len(plans) != len(grid):
        raise ValueError(f"policy planned {len(plans)} tiles, the grid has {len(grid)}")
    states = []
    for k, ts in enumerate(plans):
        if not ts or any(a <= b for a, b in zip(ts, ts[1:])) or ts[0] >= T or ts[-1] < 0:
            raise ValueError(f"tile {k}: timesteps must be a non-empty descending list in [0, {T}), got {ts}")
        states.append(TileState(k, list(ts), x_t=noise[k]))
    cost = CostCounter()
    # MACs of one tile-evaluation, counted once per tile shape and kept on the model instance.
    macs_cache: dict = model.__dict__.setdefault("_macs_per_tile", {})
    shape = (grid.tile_h, grid.tile_w)
    if shape not in macs_cache:
        macs_cache[shape] = unet_macs(model.unet, (1, 3, *shape))
    macs_per_tile = macs_cache[shape]
    trace_rows: list[dict] = []
    bar = tqdm(total=sum(len(s.timesteps) for s in states), desc="sampling", unit="tile-step", leave=False,
               disable=not progress)
    end_iteration = getattr(policy, "end_iteration", None)
    t0 = time.perf_counter()
    iteration = 0
    try:  # the bar is closed (its line cleared) however the loop ends, Ctrl-C included
        while True:
            running = [s for s in states if not s.done]
            if not running:
                break
            for start in range(0, len(running), max_batch):
                chunk = running[start : start + max_batch]
                idx = [s.index for s in chunk]
                x = torch.stack([s.x_t for s in chunk])
                t = torch.tensor([s.t for s in chunk], dtype=torch.long, device=dev)
                t_prev = torch.tensor([s.t_prev for s in chunk], dtype=torch.long, device=dev)
                c = cond_tiles[idx]
                if nhwc:
                    x_in, c = x.contiguous(memory_format=torch.channels_last), c.contiguous(memory_format=torch.channels_last)
                else:
                    x_in = x
                with autocast(dev, precision):  # type: ignore[arg-type]
                    out = model.unet(x_in, t, c)
                cost.add(unet_calls=1, tile_evaluations=len(chunk), macs=len(chunk) * macs_per_tile)
                res = sched.step_batch(out.float(), t, t_prev, x.float(), eta=eta, generator=g if eta > 0 else None)
                for j, s in enumerate(chunk):
                    x0_new = res.pred_original_sample[j]
                    s.evaluations += 1
                    decision = policy.decide(s, x0_new, s.x0)
                    s.x0 = x0_new
                    s.x_t = res.prev_sample[j]
                    s.position += 1
                    if decision.stop or s.position >= len(s.timesteps):
                        s.done = True
                        bar.total -= len(s.timesteps) - s.position  # steps an early stop saves
                    elif decision.remaining is not None:
                        rest = list(decision.remaining)
                        if not rest or rest[0] >= s.timesteps[s.position - 1]:
                            raise ValueError(f"policy gave tile {s.index} a non-descending remainder {rest}")
                        bar.total += len(rest) - (len(s.timesteps) - s.position)
                        s.timesteps = s.timesteps[: s.position] + rest
                    if trace:
                        trace_rows.append({"iteration": iteration, "tile": s.index, "t": int(t[j]),
                                           "t_prev": int(t_prev[j]), "stopped": s.done})
                bar.update(len(chunk))
            if end_iteration is not None:  # policies that decide over all tiles at once (global early exit)
                for k in end_iteration(states):
                    s = states[k]
                    if not s.done:
                        s.done = True
                        bar.total -= len(s.timesteps) - s.position
                        if trace:
                            trace_rows.append({"iteration": iteration, "tile": s.index, "t": -1, "t_prev": -1,
                                               "stopped": True})
            iteration += 1
            if callback is not None:
                callback(iteration, states)
    finally:
        bar.close()
    # A tile that ran to the end of its list has x_t = x̂0 (last step lands on ᾱ = 1); an early-stopped tile keeps x̂0.
    tile_x0 = torch.stack([s.x0 if s.x0 is not None else s.x_t for s in states])
    x0 = grid.merge(tile_x0, merge)
    return SampleResult(x0, grid, states, cost, iteration, time.perf_counter() - t0, tile_x0, trace_rows)
