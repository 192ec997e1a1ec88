"""Cost counters: how much UNet work a sampler really did.

Adaptive samplers save work by evaluating fewer tiles at fewer timesteps, so cost is counted in the units of that
work, not in "steps":

* ``unet_calls`` — batched UNet forward calls (one per sampler iteration; what wall clock roughly follows when the
  batch is small);
* ``tile_evaluations`` — tiles pushed through the UNet, summed over calls (a call on a batch of B tiles adds B);
* ``macs`` — multiply-accumulates of those evaluations.

A sampler adds to a :class:`CostCounter` after every UNet call::

    counter.add(unet_calls=1, tile_evaluations=B, macs=B * macs_per_tile)

with ``macs_per_tile = unet_macs(model, (1, 3, h, w))`` computed once per tile shape by the caller (no global
cache). MACs are measured, not estimated: :func:`unet_macs` runs one forward under
``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per multiply-accumulate of every matmul,
convolution and attention product, so MACs = FLOPs / 2. For a Conv2d (C_in → C_out, k×k, groups g) on an
output of H_out × W_out and batch B this is B · C_out · H_out · W_out · (C_in / g) · k², for a Linear
(in → out) on N rows N · in · out, and for attention with B·heads sequences of N queries, M keys, head width
d (keys) and d_v (values) it is B · heads · N · M · (d + d_v) (the products QKᵀ and softmax(·)V).
Element-wise work (normalisation, activations, softmax, additions, bias) is not counted.

torch's FlopCounterMode has no formula for the CPU attention kernel
(``aten._scaled_dot_product_flash_attention_for_cpu``) and silently counts 0 for it; :func:`count_macs` adds
the formula above, which matters for whole-image sampling (at a 64×64 bottleneck attention dominates).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class CostCounter:
    """Running totals of UNet work (see the module docstring for the units).

    ``evaluations_by_mode`` / ``macs_by_mode`` split the tile-evaluations and MACs by the denoiser mode that did
    them (``full``, ``decoder``, ``shallow``: :mod:`adasr.sampling.denoiser`); work added without a mode is
    ``full``.
    """

    unet_calls: int = 0
    tile_evaluations: int = 0
    macs: int = 0
    evaluations_by_mode: dict[str, int] = field(default_factory=dict)
    macs_by_mode: dict[str, int] = field(default_factory=dict)

    def add(self, *, unet_calls: int = 0, tile_evaluations: int = 0, macs: int = 0,
            mode: str = "full") -> "CostCounter":
        """Add to the totals (all non-negative integers); returns ``self`` so calls can be chained."""
        for name, value in (("unet_calls", unet_calls), ("tile_evaluations", tile_evaluations), ("macs", macs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        self.unet_calls += unet_calls
        self.tile_evaluations += tile_evaluations
        self.macs += macs
        if tile_evaluations or macs:
            self.evaluations_by_mode[mode] = self.evaluations_by_mode.get(mode, 0) + tile_evaluations
            self.macs_by_mode[mode] = self.macs_by_mode.get(mode, 0) + macs
        return self

    def __iadd__(self, other: "CostCounter") -> "CostCounter":
        self.unet_calls += other.unet_calls
        if not other.evaluations_by_mode and (other.tile_evaluations or other.macs):
            return self.add(tile_evaluations=other.tile_evaluations, macs=other.macs)
        for mode, n in other.evaluations_by_mode.items():
            self.add(tile_evaluations=n, macs=other.macs_by_mode.get(mode, 0), mode=mode)
        return self

    def as_dict(self) -> dict:
        """{"unet_calls": …, "tile_evaluations": …, "macs": …, "evaluations_by_mode": {…}, "macs_by_mode": {…}}."""
        return asdict(self)

    @property
    def gmacs(self) -> float:
        """MACs in units of 10⁹."""
        return self.macs / 1e9


def _attention_flops(
    query_shape: tuple[int, ...], key_shape: tuple[int, ...], value_shape: tuple[int, ...], *args: Any, **kwargs: Any
) -> int:
    """FLOPs of softmax(QKᵀ)V for q (B, h, N, d), k (B, h, M, d), v (B, h, M, d_v): 2·B·h·N·M·(d + d_v)."""
    b, h, n, d = query_shape
    m, dv = key_shape[-2], value_shape[-1]
    return 2 * b * h * n * m * (d + dv)


def count_macs(fn: Callable[[], Any]) -> int:
    """Multiply-accumulates performed by ``fn()`` (FLOPs counted by FlopCounterMode, halved), under ``no_grad``."""
    extra = {}
    cpu_attention = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_attention is not None:
        extra[cpu_attention] = _attention_flops
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=extra) as mode:
        fn()
    flops = mode.get_total_flops()
    return int(flops) // 2


def unet_macs(
    model: nn.Module,
    input_shape: tuple[int, int, int, int],
    *,
    cond_channels: int | None = None,
    t: float = 500.0,
) -> int:
    """MACs of one ``model(x_t, t, cond)`` forward with x_t of shape (B, C, H, W) (zeros: counts ignore the data).

    ``cond`` has the same B, H, W and ``cond_channels`` channels (default: ``model.config.in_channels − C`` for
    :class:`adasr.models.unet.SRUNet`, else C). Divide by B for the per-tile cost; it is exactly linear in B.
    It runs one real forward on the model's device and dtype (as slow as one UNet call: about 0.1 s for the
    default SRUNet at 64×64 and 3 s at 256×256 on one CPU thread), so compute it once per tile shape.
    """
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (B, C, H, W), got {input_shape}")
    b, c, h, w = input_shape
    if cond_channels is None:
        config = getattr(model, "config", None)
        cond_channels = getattr(config, "in_channels", 2 * c) - c
    p = next(model.parameters())
    x = torch.zeros(b, c, h, w, dtype=p.dtype, device=p.device)
    cond = torch.zeros(b, cond_channels, h, w, dtype=p.dtype, device=p.device)
    tt = torch.full((b,), float(t), device=p.device)
    return count_macs(lambda: model(x, tt, cond))
