"""``adasr.upscale``: ×4 super-resolution of one image with the shipped diffusion model, no HR needed.

Pipeline: LR (h, w) → up(LR) by bicubic ×4 → padded to the UNet's multiple → tile-batch DDIM sampling of the
residual (policy decides the per-tile schedules) → HR = up(LR) + r̂0/s → cropped back to (4h, 4w).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data import to_tensor, to_uint8, upscale_bicubic
from .registry import entry, load_state_dict
from .runtime import prepare_for_inference, resolve_device, resolve_precision
from .sampling.loop import SampleResult, sample_tiles
from .defaults import DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_STEPS, DEFAULT_TILE
from .sampling.policies import Policy, TileState, UniformDDIM
from .srmodel import SRDiffusion, SRDiffusionConfig

__all__ = ["DEFAULT_MODEL", "DEFAULT_STEPS", "UpscaleReport", "estimate_memory_bytes", "load_pretrained", "upscale",
           "upscale_tensor"]


def load_pretrained(name: str = DEFAULT_MODEL, device: str | torch.device | None = None) -> SRDiffusion:
    """The shipped model ``name`` (EMA weights, hash-verified) in eval mode on ``device``."""
    e = entry(name)
    model = SRDiffusion(SRDiffusionConfig.from_dict(e["config"]))
    model.unet.load_state_dict(load_state_dict(name))
    return model.eval().to(resolve_device(device))


@dataclass
class UpscaleReport:
    """What one upscale cost and how it was run (``--report`` JSON)."""

    steps: int
    policy: str
    tiles: int
    tile_size: tuple[int, int]
    iterations: int
    unet_calls: int
    tile_evaluations: int
    macs: int
    seconds: float
    sampler_seconds: float
    device: str
    precision: str
    seed: int
    input_size: tuple[int, int]
    output_size: tuple[int, int]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tile_size"] = list(self.tile_size)
        d["input_size"] = list(self.input_size)
        d["output_size"] = list(self.output_size)
        return d


def estimate_memory_bytes(
    h: int, w: int, *, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, max_batch: int = 64
) -> int:
    """Rough peak memory (bytes) to upscale an h×w LR image ×4: whole-image float32 buffers (condition, noise,
    merge sums: about 13 channels of the output size), per-tile states (4 tensors of 3 channels per tile) and the
    UNet activations of one batch (about 40 channels of 32-bit floats per tile pixel, measured order of magnitude)."""
    H, W = 4 * h, 4 * w
    th, tw = min(tile, H), min(tile, W)
    stride = max(1, tile - overlap)
    n = (max(1, -(-(H - th) // stride) + 1)) * (max(1, -(-(W - tw) // stride) + 1))
    whole = 13 * H * W * 4
    states = n * 4 * 3 * th * tw * 4
    acts = min(n, max_batch) * 40 * 32 * th * tw // 8
    return int(whole + states + acts)


def upscale_tensor(
    x: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    policy: Policy | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    eta: float = 0.0,
    device: str | torch.device | None = None,
    precision: str = "auto",
    model: SRDiffusion | None = None,
    progress: bool = False,
    callback: Callable[[int, list[TileState]], None] | None = None,
) -> tuple[torch.Tensor, UpscaleReport, SampleResult]:
    """Super-resolve ``x`` (1, 3, h, w) in [−1, 1] → ((1, 3, s·h, s·w) in [−1, 1], report, sampler result).

    ``policy`` defaults to uniform DDIM with ``steps`` steps (η = ``eta``). ``precision='auto'`` uses bf16 autocast
    where the device runs bf16 natively, fp32 elsewhere; the model runs channels_last where that is faster
    (:func:`~adasr.runtime.prepare_for_inference`). ``callback(iteration, tiles)`` is
    passed to :func:`~adasr.sampling.loop.sample_tiles` (to watch tiles being refined).
    """
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, h, w) tensor, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t_start = time.perf_counter()
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if model is None:
        model = load_pretrained(device=dev)
    model = prepare_for_inference(model, dev, prec)
    s = model.config.scale
    h, w = x.shape[-2:]
    up = upscale_bicubic(x.to(dev).float(), s)
    m = model.unet.multiple
    H, W = up.shape[-2:]
    ph, pw = (-H) % m, (-W) % m
    if ph or pw:
        mode = "reflect" if H > ph and W > pw else "replicate"
        up_p = F.pad(up, (0, pw, 0, ph), mode=mode)
    else:
        up_p = up
    pol = policy or UniformDDIM(steps)
    res = sample_tiles(model, up_p, policy=pol, tile=tile, overlap=overlap, seed=seed, eta=eta, precision=prec,
                       progress=progress, callback=callback)
    hr = model.output(res.x0, up_p)[:, :, :H, :W]
    report = UpscaleReport(
        steps=getattr(pol, "steps", steps), policy=getattr(pol, "name", type(pol).__name__), tiles=len(res.grid),
        tile_size=(res.grid.tile_h, res.grid.tile_w), iterations=res.iterations, unet_calls=res.cost.unet_calls,
        tile_evaluations=res.cost.tile_evaluations, macs=res.cost.macs, seconds=time.perf_counter() - t_start,
        sampler_seconds=res.seconds, device=str(dev), precision=prec, seed=seed, input_size=(int(h), int(w)),
        output_size=(int(H), int(W)),
    )
    return hr.cpu(), report, res


def upscale(image: np.ndarray, **kwargs) -> np.ndarray:
    """uint8 RGB (h, w, 3) → uint8 RGB (4h, 4w, 3); keyword arguments as :func:`upscale_tensor`."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"upscale expects a uint8 (h, w, 3) RGB array, got {arr.dtype} {arr.shape}; "
                         "use adasr.imageio.read_image for files, grayscale, alpha or 16-bit images")
    out, _, _ = upscale_tensor(to_tensor(arr), **kwargs)
    return to_uint8(out)
