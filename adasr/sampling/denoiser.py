"""The denoiser layer: the one place where the sampler calls the network (DESIGN, "the spine", point 2).

The tile-batch sampler hands this layer the running tiles' (x_t, t, cond) and, per tile, a **mode**:

* ``full``    — the whole UNet, ``unet(x_t, t, cond)`` = ``decode(encode(x_t, t, cond), t)``;
* ``decoder`` — encoder reuse (Faster-Diffusion, SMFDM): the tile's cached encoder state h (skip features and mid
  feature, from its last ``full`` call) is decoded with the *current* t: ``decode(h_cached, t)``;
* ``shallow`` — DeepCache: the tile's cached deep feature (what entered the finest up level at its last ``full``
  call) replaces everything deeper; only the full-resolution blocks run on the current (x_t, t, cond)
  (:meth:`~adasr.models.unet.SRUNet.shallow`).

It returns the network output (float32) and the **cost** of the call: one UNet call per mode present, one
tile-evaluation per tile, and MACs per mode, each measured once per (tile shape, mode) with
``torch.utils.flop_counter`` (:func:`adasr.cost.count_macs`) and kept on the network instance (no global state).

**Caches and who decides.** Which mode a tile runs at its next evaluation is a policy decision, made like its
stride: :class:`~adasr.sampling.policies.Decision` carries ``mode`` (``None`` = ``full``), which the loop stores in
``TileState.mode``. A policy declares the modes it may ask for in ``Policy.reuse``; the loop builds the denoiser
with ``cache=policy.reuse``, and only then does a ``full`` call keep what those modes need: the encoder state
(``decoder``) and/or the deep feature (``shallow``), per tile, replaced at each ``full`` call of that tile and
dropped (:meth:`Denoiser.drop`) when the tile finishes. With no reuse declared (every policy of the AdaSR
chapters) nothing is kept and a ``full`` call is exactly ``unet(x_t, t, cond)``, so uniform sampling through this
layer is bit-identical to calling the network directly. Asking for ``decoder``/``shallow`` on a tile with no cache
is an error, so a reuse schedule must start with a ``full`` step.

**Parallel decoding** (Faster-Diffusion): a ``decoder`` output depends only on the cached state and t, so a ``full``
call can be given, per tile, the timesteps of the ``decoder`` steps that follow it (``ahead``): their decoder rows
join the key step's decode in one batched call, the outputs are kept in the tile's cache and handed out, without
a network call, when the tile reaches those timesteps. Their cost (tile-evaluations and MACs in mode ``decoder``)
is counted when they are computed; a tile that changes course before using them has paid for them anyway.

Precision and layout are applied here too: bf16 autocast when ``precision='bf16'``, channels_last inputs when the
network's weights are channels_last (:func:`~adasr.runtime.prepare_for_inference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn as nn

from ..cost import CostCounter, count_macs, unet_macs
from ..runtime import autocast, is_channels_last

Mode = Literal["full", "decoder", "shallow"]
MODES: tuple[str, ...] = ("full", "decoder", "shallow")
#: what a ``full`` call must keep for each reuse mode
_NEEDS = {"decoder": "encoder", "shallow": "deep"}


@dataclass
class TileCache:
    """What one tile's last ``full`` call left for reuse: its encoder state and/or its deep feature (batch of 1)."""

    encoder: object | None = None  # an EncoderState with batch 1
    deep: torch.Tensor | None = None
    t: int | None = None  # the timestep the cache was computed at
    decoded: dict[int, torch.Tensor] = field(default_factory=dict)  # parallel decoding: t → output (C, h, w)


@dataclass(frozen=True)
class DenoiserOutput:
    """The network output (B, C, h, w) float32 for the tiles of a call, their modes and the call's cost."""

    output: torch.Tensor
    modes: tuple[str, ...]
    cost: CostCounter = field(default_factory=CostCounter)


class Denoiser:
    """Calls ``unet`` for the sampler: modes, per-tile caches, MACs per mode (module docstring).

    Args:
        unet: the network, ``unet(x_t, t, cond)``; ``decoder``/``shallow`` also need ``encode``/``decode``/``shallow``
            (:class:`~adasr.models.unet.SRUNet`).
        precision: ``'fp32'`` or ``'bf16'`` (autocast).
        cache: the reuse modes whose caches ``full`` calls keep (a policy's ``reuse``); empty: keep nothing.
        count_macs: measure MACs (one extra forward per tile shape and mode, the first time); ``False`` leaves
            ``macs`` at 0 in the cost (the whole-image reference samplers, which report NFE only).
    """

    def __init__(self, unet: nn.Module, *, precision: str = "fp32", cache: Sequence[str] = (),
                 count_macs: bool = True) -> None:
        bad = [m for m in cache if m not in _NEEDS]
        if bad:
            raise ValueError(f"cache modes must be among {tuple(_NEEDS)}, got {bad}")
        if cache and not all(hasattr(unet, a) for a in ("encode", "decode", "shallow")):
            raise ValueError(f"feature reuse needs a network with encode/decode/shallow; {type(unet).__name__} has not")
        self.unet = unet
        self.precision = precision
        self.cache_modes = tuple(cache)
        self.count_macs = count_macs
        self.nhwc = is_channels_last(unet)
        self._caches: dict[int, TileCache] = {}

    # -- MACs ----------------------------------------------------------------------------------------------------

    def macs(self, mode: str, shape: tuple[int, int]) -> int:
        """MACs of one tile-evaluation in ``mode`` for an (h, w) tile, measured once per network, shape and mode."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not self.count_macs:
            return 0
        table: dict = self.unet.__dict__.setdefault("_macs_per_mode", {})
        key = (tuple(shape), mode)
        if key not in table:
            table[key] = self._measure(mode, tuple(shape))
        return table[key]

    def _measure(self, mode: str, shape: tuple[int, int]) -> int:
        if mode == "full":
            return unet_macs(self.unet, (1, 3, *shape))
        p = next(self.unet.parameters())
        cond_channels = self.unet.config.in_channels - 3  # type: ignore[union-attr]
        x = torch.zeros(1, 3, *shape, dtype=p.dtype, device=p.device)
        cond = torch.zeros(1, cond_channels, *shape, dtype=p.dtype, device=p.device)
        t = torch.full((1,), 500.0, device=p.device)
        with torch.no_grad():
            state = self.unet.encode(x, t, cond)  # type: ignore[operator]
            if mode == "decoder":
                return count_macs(lambda: self.unet.decode(state, t))  # type: ignore[operator]
            _, deep = self.unet.decode(state, t, return_deep=True)  # type: ignore[operator]
        return count_macs(lambda: self.unet.shallow(x, t, cond, deep))  # type: ignore[operator]

    # -- caches --------------------------------------------------------------------------------------------------

    def has_cache(self, tile: int, mode: str) -> bool:
        """Whether ``tile`` can run ``mode`` now (``full`` always can)."""
        if mode == "full":
            return True
        c = self._caches.get(tile)
        return c is not None and getattr(c, _NEEDS[mode]) is not None

    def cache_of(self, tile: int) -> TileCache | None:
        return self._caches.get(tile)

    def drop(self, tile: int) -> None:
        """Forget ``tile``'s caches (the loop calls this when the tile finishes)."""
        self._caches.pop(tile, None)

    def clear(self) -> None:
        self._caches.clear()

    @property
    def cached_tiles(self) -> list[int]:
        return sorted(self._caches)

    # -- the call ------------------------------------------------------------------------------------------------

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.nhwc else x

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, *,
                 tiles: Sequence[int] | None = None, modes: Sequence[str] | None = None,
                 ahead: Sequence[Sequence[int]] | None = None) -> DenoiserOutput:
        """Evaluate the network on B tiles: ``x_t`` (B, 3, h, w), ``t`` (B,) long, ``cond`` (B, C_c, h, w).

        ``tiles`` are the tiles' indices (cache keys; default 0..B−1), ``modes`` their modes (default all
        ``full``), ``ahead`` per tile the timesteps to decode in parallel with a ``full`` call (needs the
        ``decoder`` cache; module docstring). Tiles are grouped by mode, one network call per group; the output
        keeps the input order.
        """
        B = x_t.shape[0]
        tiles = list(range(B)) if tiles is None else [int(k) for k in tiles]
        modes = ["full"] * B if modes is None else list(modes)
        if len(tiles) != B or len(modes) != B:
            raise ValueError(f"need one tile index and one mode per batch entry ({B}), got {len(tiles)}, {len(modes)}")
        ahead = [tuple(a) for a in ahead] if ahead is not None else [()] * B
        if len(ahead) != B:
            raise ValueError(f"need one ahead list per batch entry ({B}), got {len(ahead)}")
        if any(ahead) and "decoder" not in self.cache_modes:
            raise ValueError("parallel decoding (ahead) needs the 'decoder' cache")
        for k, m, a in zip(tiles, modes, ahead):
            if a and m != "full":
                raise ValueError(f"tile {k}: only a 'full' call can decode ahead, not {m!r}")
            if m not in MODES:
                raise ValueError(f"mode must be one of {MODES}, got {m!r}")
            if not self.has_cache(k, m):
                raise ValueError(f"tile {k} has no cache for mode {m!r}: it needs a 'full' step first")
        cost = CostCounter()
        shape = (x_t.shape[-2], x_t.shape[-1])
        if all(m == "full" for m in modes):  # the common case: one call, no regrouping
            out = self._full(x_t, t, cond, tiles, ahead)
            cost.add(unet_calls=1, tile_evaluations=B, macs=B * self.macs("full", shape))
            extra = sum(len(a) for a in ahead)
            if extra:
                cost.add(tile_evaluations=extra, macs=extra * self.macs("decoder", shape), mode="decoder")
            return DenoiserOutput(out, tuple(modes), cost)
        parts = {}
        for mode in MODES:
            idx = [j for j, m in enumerate(modes) if m == mode]
            if not idx:
                continue
            sel = torch.tensor(idx, device=x_t.device)
            keys = [tiles[j] for j in idx]
            if mode == "full":
                sub_ahead = [ahead[j] for j in idx]
                parts[mode] = (idx, self._full(x_t[sel], t[sel], cond[sel], keys, sub_ahead))
                extra = sum(len(a) for a in sub_ahead)
                if extra:
                    cost.add(tile_evaluations=extra, macs=extra * self.macs("decoder", shape), mode="decoder")
            elif mode == "decoder":
                out_d, computed = self._decoder(t[sel], keys)
                parts[mode] = (idx, out_d)
                if computed:  # outputs decoded ahead were paid for at their key step
                    cost.add(unet_calls=1, tile_evaluations=computed, macs=computed * self.macs(mode, shape),
                             mode=mode)
                continue
            else:
                parts[mode] = (idx, self._shallow(x_t[sel], t[sel], cond[sel], keys))
            cost.add(unet_calls=1, tile_evaluations=len(idx), macs=len(idx) * self.macs(mode, shape), mode=mode)
        first = next(iter(parts.values()))[1]
        out = torch.empty((B, *first.shape[1:]), dtype=first.dtype, device=first.device)
        for idx, o in parts.values():
            out[torch.tensor(idx, device=out.device)] = o
        return DenoiserOutput(out, tuple(modes), cost)

    def _full(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, keys: list[int],
              ahead: Sequence[Sequence[int]] = ()) -> torch.Tensor:
        x_in, c = self._layout(x), self._layout(cond)
        B = x.shape[0]
        rows = [j for j, a in enumerate(ahead) for _ in a]  # parallel decoding: extra decoder rows per tile
        with autocast(x.device, self.precision):  # type: ignore[arg-type]
            if not self.cache_modes:
                return self.unet(x_in, t, c).float()
            state = self.unet.encode(x_in, t, c)  # type: ignore[operator]
            if rows:
                sel = torch.tensor(list(range(B)) + rows, device=x.device)
                t_all = torch.cat([t, torch.tensor([s for a in ahead for s in a], dtype=t.dtype, device=t.device)])
                out_all, deep = self.unet.decode(state.index(sel), t_all, return_deep=True)  # type: ignore[operator]
                out, extra, deep = out_all[:B], out_all[B:].float(), deep[:B]
            else:
                out, deep = self.unet.decode(state, t, return_deep=True)  # type: ignore[operator]
        r = 0
        for j, k in enumerate(keys):
            entry = self._caches.setdefault(k, TileCache())
            entry.t = int(t[j])
            entry.decoded = {}
            for s in ahead[j] if ahead else ():
                entry.decoded[int(s)] = extra[r]
                r += 1
            if "decoder" in self.cache_modes:
                entry.encoder = state.index(slice(j, j + 1))
            if "shallow" in self.cache_modes:
                entry.deep = deep[j : j + 1]
        return out.float()

    def _decoder(self, t: torch.Tensor, keys: list[int]) -> tuple[torch.Tensor, int]:
        """Decoder outputs for ``keys`` at ``t``: those decoded ahead are taken from the caches, the others
        computed in one call; returns (outputs, number computed now)."""
        from ..models.unet import EncoderState

        ready = {j: self._caches[k].decoded.pop(int(t[j])) for j, k in enumerate(keys)
                 if int(t[j]) in self._caches[k].decoded}
        todo = [j for j in range(len(keys)) if j not in ready]
        computed = None
        if todo:
            states = [self._caches[keys[j]].encoder for j in todo]
            skips = [torch.cat([s.skips[i] for s in states]) for i in range(len(states[0].skips))]  # type: ignore[union-attr]
            state = EncoderState(skips, torch.cat([s.mid for s in states]))  # type: ignore[union-attr]
            sel = torch.tensor(todo, device=t.device)
            with autocast(t.device, self.precision):  # type: ignore[arg-type]
                computed = self.unet.decode(state, t[sel]).float()  # type: ignore[operator]
            if not ready:
                return computed, len(todo)
        first = next(iter(ready.values())) if ready else computed[0]  # type: ignore[index]
        out = torch.empty((len(keys), *first.shape), dtype=torch.float32, device=first.device)
        for j, o in ready.items():
            out[j] = o
        for r, j in enumerate(todo):
            out[j] = computed[r]  # type: ignore[index]
        return out, len(todo)

    def _shallow(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, keys: list[int]) -> torch.Tensor:
        deep = torch.cat([self._caches[k].deep for k in keys])  # type: ignore[misc]
        with autocast(x.device, self.precision):  # type: ignore[arg-type]
            return self.unet.shallow(self._layout(x), t, self._layout(cond), deep).float()  # type: ignore[operator]


__all__ = ["MODES", "Denoiser", "DenoiserOutput", "Mode", "TileCache"]
