"""Feature reuse across denoising steps: encoder reuse (Faster-Diffusion, SMFDM) and DeepCache, as a policy.

A diffusion UNet's features change slowly from one step to the next, so some can be computed at a few **key
steps** and reused at the steps between (non-key steps):

* **encoder reuse** (Faster-Diffusion, NeurIPS 2024; SMFDM's "encoder state reuse"): at a key step the whole UNet
  runs and the encoder state h = (skip features, middle feature) of the tile is cached; at a non-key step only
  the decoder runs, ``ε̂ = decode(h_key, t)``, with the *current* timestep's embedding (denoiser mode ``decoder``).
  The decoder never sees the current x_t: every non-key output is a function of the key step's x_t and of t,
  which is why Faster-Diffusion can decode the non-key steps of a group **in parallel** (one batched decoder call
  at the key step, each row with its own t; the outputs then drive the sequential DDIM updates one by one);
* **DeepCache** (CVPR 2024): at a key step the deep feature entering the finest up level is cached; at a non-key
  step only the outermost blocks run on the current (x_t, t, cond) (denoiser mode ``shallow``). The cache branch
  is DeepCache's default for Stable Diffusion, the shallowest skip branch (its ``cache_layer_id=0,
  cache_block_id=0``): our stem + first down level + last up level + output conv
  (:meth:`~adasr.models.unet.SRUNet.shallow`).

Which steps are key is a preset over a tile's list of N timesteps (position 0 = the noisiest step), always
starting with a key step (the caches are per tile and empty before its first step):

* ``uniform``: every k-th position, i mod k = 0 (DeepCache's uniform interval; Faster-Diffusion's integer ``mod``);
* ``faster-diffusion``: Faster-Diffusion's non-uniform set for 50 DDIM steps, {0, 1, 2, 3, 5, 10, 15, 25, 35},
  scaled to N as ⌊i·N/50⌋ (dense where the image forms, sparse at the end);
* ``smfdm``: SMFDM's ``mod`` grouping: uniform every k with the group's non-key steps decoded in parallel.

:class:`ReusePolicy` wraps any tile policy (uniform DDIM, the optimised schedules, AdaSR, AdaDiffSR): the base
decides each tile's list and when it stops; the wrapper only chooses the denoiser mode of each evaluation, so the
caches live per tile in the denoiser layer (:mod:`adasr.sampling.denoiser`) and the costs are counted per mode.

**Prior noise injection** (Faster-Diffusion): x_t ← x_t + λ·x_T after every step that lands at t < T/2
(λ = 0.003 there). An option (``prior_noise``), off by default: SMFDM's code adds it and overwrites the result on
the next line, so SMFDM runs without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import KEY_STEPS
from ..sampling.policies import Decision, Policy, TileState

#: the key-step presets (module docstring; the one home of the names is :data:`adasr.config.KEY_STEPS`)
KEY_STEP_PRESETS: tuple[str, ...] = KEY_STEPS
#: the cache kinds and the denoiser mode each one runs at non-key steps
CACHE_MODES: dict[str, str] = {"encoder": "decoder", "deepcache": "shallow"}
#: Faster-Diffusion's key positions for 50 DDIM steps (its ``mod='50ls'``; 0 = the noisiest step)
FASTER_DIFFUSION_50: tuple[int, ...] = (0, 1, 2, 3, 5, 10, 15, 25, 35)
#: λ of Faster-Diffusion's prior noise injection
PRIOR_NOISE: float = 0.003


def key_positions(n: int, preset: str = "uniform", interval: int = 2) -> tuple[int, ...]:
    """The key positions among a tile's ``n`` steps (ascending, always starting at 0).

    ``uniform`` / ``smfdm``: {i : i mod k = 0}, k = ``interval``; ``faster-diffusion``: {⌊i·n/50⌋ : i ∈
    {0, 1, 2, 3, 5, 10, 15, 25, 35}} (``interval`` unused; equal to the set itself at n = 50).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if preset not in KEY_STEP_PRESETS:
        raise ValueError(f"preset must be one of {KEY_STEP_PRESETS}, got {preset!r}")
    if preset == "faster-diffusion":
        return tuple(sorted({math.floor(i * n / 50) for i in FASTER_DIFFUSION_50 if math.floor(i * n / 50) < n}))
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be a positive int, got {interval!r}")
    return tuple(range(0, n, interval))


def key_mask(n: int, preset: str = "uniform", interval: int = 2) -> list[bool]:
    """``True`` at the key positions of :func:`key_positions`, one entry per step."""
    keys = set(key_positions(n, preset, interval))
    return [i in keys for i in range(n)]


def full_share(n: int, preset: str = "uniform", interval: int = 2) -> float:
    """The fraction of a tile's n steps that run the whole UNet."""
    return len(key_positions(n, preset, interval)) / n


@dataclass(frozen=True)
class ReusePolicy(Policy):
    """``base``'s tile schedules and stops, with ``cache`` reuse at the non-key steps of ``key_steps``.

    Args:
        base: any tile policy (its lists, stops, stride changes and conditioning are kept).
        cache: ``'encoder'`` (denoiser mode ``decoder``) or ``'deepcache'`` (mode ``shallow``).
        key_steps: a preset of :data:`KEY_STEP_PRESETS`; ``interval`` is its k.
        parallel: decode each group's non-key steps in one batched call at its key step (encoder reuse only;
            implied by ``smfdm``).
        prior_noise: λ of the prior noise injection (0: off).
    """

    base: Policy
    cache: str = "encoder"
    key_steps: str = "uniform"
    interval: int = 2
    parallel: bool = False
    prior_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {tuple(CACHE_MODES)}, got {self.cache!r}")
        key_positions(1, self.key_steps, self.interval)  # checks preset and interval
        if self.key_steps == "smfdm":
            object.__setattr__(self, "parallel", True)
        if self.parallel and self.cache != "encoder":
            raise ValueError("parallel decoding applies to encoder reuse only (DeepCache's shallow blocks need x_t)")
        if not (math.isfinite(self.prior_noise) and self.prior_noise >= 0):
            raise ValueError(f"prior_noise must be a finite number >= 0, got {self.prior_noise}")

    # -- delegated to the base policy ----------------------------------------------------------------------------
    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.base.name}+{self.cache}"

    @property
    def steps(self) -> int:  # type: ignore[override]
        return self.base.steps

    @property
    def schedule(self):  # type: ignore[override]
        return self.base.schedule

    @property
    def reuse(self) -> tuple[str, ...]:  # type: ignore[override]
        return (CACHE_MODES[self.cache],)

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        return self.base.plan(cond_tiles, num_train_timesteps)

    def begin(self, num_tiles: int) -> None:
        self.base.begin(num_tiles)

    def end_iteration(self, tiles: list[TileState]) -> list[int]:
        return self.base.end_iteration(tiles)

    def condition(self, tiles: list[TileState], cond: torch.Tensor) -> torch.Tensor:
        return self.base.condition(tiles, cond)

    def memory(self) -> dict[str, Any]:
        return self.base.memory()

    # -- the reuse decisions -------------------------------------------------------------------------------------
    def is_key(self, position: int, n: int) -> bool:
        """Whether position ``position`` of an ``n``-step list runs the whole UNet."""
        return position in key_positions(n, self.key_steps, self.interval)

    def decide(self, tile: TileState, x0_new: torch.Tensor, x0_old: torch.Tensor | None) -> Decision:
        d = self.base.decide(tile, x0_new, x0_old)
        if d.stop:
            return d
        nxt = tile.position + 1
        n = nxt + len(d.remaining) if d.remaining is not None else len(tile.timesteps)
        if nxt >= n:
            return d
        return replace(d, mode=None if self.is_key(nxt, n) else CACHE_MODES[self.cache])

    def ahead(self, tile: TileState) -> tuple[int, ...]:
        """With ``parallel``: at a key step, the timesteps of the non-key steps that follow it in the tile's list
        (decoded in the same batched call); otherwise ()."""
        if not self.parallel or tile.mode != "full":
            return ()
        n = len(tile.timesteps)
        out = []
        for q in range(tile.position + 1, n):
            if self.is_key(q, n):
                break
            out.append(tile.timesteps[q])
        return tuple(out)

    def inject(self, tile: TileState, x_prev: torch.Tensor) -> torch.Tensor:
        """Prior noise injection: x_prev + λ·x_T when the step lands at 0 ≤ t_prev < T/2 (T = 1000)."""
        if self.prior_noise <= 0 or tile.x_T is None or not 0 <= tile.t_prev < 500:
            return x_prev
        return x_prev + self.prior_noise * tile.x_T.to(x_prev)

    def describe(self) -> dict[str, Any]:
        """The reuse settings for reports."""
        return {"cache": self.cache, "key_steps": self.key_steps, "interval": self.interval,
                "parallel": self.parallel, "prior_noise": self.prior_noise}


def with_reuse(policy: Policy, cache: str = "none", *, key_steps: str = "uniform", interval: int = 2,
               parallel: bool = False, prior_noise: float = 0.0) -> Policy:
    """``policy`` wrapped in a :class:`ReusePolicy` (``cache='none'``: ``policy`` itself)."""
    if cache == "none":
        return policy
    return ReusePolicy(policy, cache, key_steps, interval, parallel, prior_noise)




@torch.no_grad()
def feature_similarity(model, cond: torch.Tensor, timesteps: list[int], *, seed: int = 0,
                       precision: str = "fp32") -> dict[str, Any]:
    """What changes between steps inside the UNet: DDIM (η = 0) over ``timesteps`` on one tile ``cond``
    (1, 3, h, w), recording at every step the encoder state (each skip feature, the middle feature), DeepCache's
    deep feature and the network output, through the denoiser layer with both caches on.

    Returns {"timesteps", "cosine": {feature: the n×n matrix cos(f_i, f_j) = ⟨f_i, f_j⟩ / (‖f_i‖‖f_j‖)},
    "change": {feature: the n−1 relative changes ‖f_{i+1} − f_i‖ / ‖f_i‖}}, features "skip0" … (finest first),
    "mid", "deep" and "output" (lists). Reuse is safe where a feature barely changes from step to step.
    """
    from ..sampling.denoiser import Denoiser

    if cond.ndim != 4 or cond.shape[0] != 1:
        raise ValueError(f"cond must be one tile (1, C, h, w), got {tuple(cond.shape)}")
    den = Denoiser(model.unet, precision=precision, cache=("decoder", "shallow"), count_macs=False)
    update = model.ddim_update()
    x = torch.randn(1, 3, *cond.shape[-2:], generator=torch.Generator().manual_seed(seed)).to(cond)
    feats: dict[str, list[torch.Tensor]] = {}
    ts = list(timesteps)
    for i, t in enumerate(ts):
        t_now = torch.tensor([t], device=cond.device)
        t_prev = torch.tensor([ts[i + 1] if i + 1 < len(ts) else -1], device=cond.device)
        out = den(x, t_now, cond).output
        cache = den.cache_of(0)
        assert cache is not None and cache.encoder is not None and cache.deep is not None
        for k, s in enumerate(cache.encoder.skips):  # type: ignore[attr-defined]
            feats.setdefault(f"skip{k}", []).append(s.flatten().float())
        feats.setdefault("mid", []).append(cache.encoder.mid.flatten().float())  # type: ignore[attr-defined]
        feats.setdefault("deep", []).append(cache.deep.flatten().float())
        feats.setdefault("output", []).append(out.flatten().float())
        x, _ = update(out, t_now, t_prev, x.float(), 0.0, None)
    cosine, change = {}, {}
    for name, fs in feats.items():
        f = torch.stack(fs)
        norms = f.norm(dim=1).clamp_min(1e-12)
        unit = f / norms[:, None]
        cosine[name] = (unit @ unit.T).tolist()
        change[name] = ((f[1:] - f[:-1]).norm(dim=1) / norms[:-1]).tolist()
    return {"timesteps": ts, "cosine": cosine, "change": change}


def neighbour_similarity(matrix: list[list[float]]) -> list[float]:
    """cos(f_i, f_{i+1}) for consecutive steps, from a matrix of :func:`feature_similarity`'s ``cosine``."""
    return [float(matrix[i][i + 1]) for i in range(len(matrix) - 1)]


__all__ = ["CACHE_MODES", "FASTER_DIFFUSION_50", "KEY_STEP_PRESETS", "PRIOR_NOISE", "ReusePolicy",
           "feature_similarity", "full_share", "key_mask", "key_positions", "neighbour_similarity", "with_reuse"]
