"""``adasr.upscale``: ×4 super-resolution of one image with the shipped diffusion model, no HR needed.

Pipeline: LR (h, w) → up(LR) by bicubic ×4 → padded to the UNet's multiple → tile-batch DDIM sampling of the
residual (policy decides the per-tile schedules) → HR = up(LR) + r̂0/s → cropped back to (4h, 4w).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .data import to_tensor, to_uint8, upscale_bicubic
from .registry import entry, load_state_dict
from .runtime import prepare_for_inference, resolve_device, resolve_precision
from .adaptive.policy import AdaptiveConfig
from .defaults import DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_STEPS, DEFAULT_TILE
from .sampling.loop import SampleResult, SamplerState, iterate_tiles
from .sampling.policies import Policy, UniformDDIM
from .srmodel import SRDiffusion, SRDiffusionConfig

__all__ = ["DEFAULT_MODEL", "DEFAULT_STEPS", "UpscaleJob", "UpscaleReport", "UpscaleResult", "estimate_memory_bytes",
           "load_pretrained", "prepare_upscale", "resolve_policy", "upscale", "upscale_tensor"]


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


class UpscaleResult(NamedTuple):
    """What :func:`upscale_tensor` returns: the SR ``image`` (1, 3, s·h, s·w) in [−1, 1] on the CPU, the
    :class:`UpscaleReport` and the sampler's :class:`~adasr.sampling.loop.SampleResult` (tiles, cost, trace).
    A named tuple, so ``image, report, sample = upscale_tensor(…)`` unpacks it."""

    image: torch.Tensor
    report: UpscaleReport
    sample: SampleResult


def _pad_to_multiple(up: torch.Tensor, m: int) -> torch.Tensor:
    H, W = up.shape[-2:]
    ph, pw = (-H) % m, (-W) % m
    if not (ph or pw):
        return up
    mode = "reflect" if H > ph and W > pw else "replicate"
    return F.pad(up, (0, pw, 0, ph), mode=mode)


def resolve_policy(policy: str | Policy | None, model: SRDiffusion, *, steps: int, adaptive: AdaptiveConfig | None,
                   tile: int, overlap: int) -> Policy:
    """The :class:`~adasr.sampling.policies.Policy` for ``policy``: an object is used as it is; a name of
    :data:`~adasr.adaptive.policy.POLICIES` is built by :func:`~adasr.adaptive.policy.policy_for_model` from
    ``adaptive`` with N_max = ``steps`` (``steps`` is the budget of the busiest tile for every policy)."""
    if isinstance(policy, Policy):
        return policy
    from .adaptive.policy import POLICIES, policy_for_model

    kind = policy or "uniform"
    if kind not in POLICIES:
        raise ValueError(f"unknown policy {kind!r}; choose from {', '.join(POLICIES)}")
    config = (adaptive or AdaptiveConfig()).with_(n_max=steps)
    if kind == "uniform":
        return UniformDDIM(steps)
    return policy_for_model(kind, config, model, tile=tile, overlap=overlap)


@dataclass
class UpscaleJob:
    """One prepared upscale (from :func:`prepare_upscale`): iterate :meth:`states` to watch the sampler, or
    :meth:`run` it; :meth:`finish` turns the final sampler state into an :class:`UpscaleResult`."""

    model: SRDiffusion
    cond: torch.Tensor  # up(LR) padded to the UNet's multiple, (1, 3, H', W') on the device
    size: tuple[int, int]  # (H, W) of the output before padding
    input_size: tuple[int, int]
    policy: Policy
    tile: int
    overlap: int
    seed: int
    eta: float
    device: torch.device
    precision: str
    progress: bool
    started: float

    def states(self) -> Iterator[SamplerState]:
        """The sampler's state after each iteration (:func:`~adasr.sampling.loop.iterate_tiles`)."""
        return iterate_tiles(self.model, self.cond, policy=self.policy, tile=self.tile, overlap=self.overlap,
                             seed=self.seed, eta=self.eta, precision=self.precision, progress=self.progress)

    def finish(self, state: SamplerState) -> UpscaleResult:
        res = state.result()
        H, W = self.size
        hr = self.model.output(res.x0, self.cond)[:, :, :H, :W]
        report = UpscaleReport(
            steps=self.policy.steps, policy=self.policy.name, tiles=len(res.grid),
            tile_size=(res.grid.tile_h, res.grid.tile_w), iterations=res.iterations, unet_calls=res.cost.unet_calls,
            tile_evaluations=res.cost.tile_evaluations, macs=res.cost.macs,
            seconds=time.perf_counter() - self.started, sampler_seconds=res.seconds, device=str(self.device),
            precision=self.precision, seed=self.seed, input_size=self.input_size, output_size=(int(H), int(W)),
        )
        return UpscaleResult(hr.cpu(), report, res)

    def run(self, observe: Callable[[SamplerState], None] | None = None) -> UpscaleResult:
        """Sample to the end (``observe(state)`` after each iteration) and return the result."""
        state = None
        for state in self.states():
            if observe is not None:
                observe(state)
        assert state is not None
        return self.finish(state)


def prepare_upscale(
    x: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    policy: str | Policy | None = None,
    adaptive: AdaptiveConfig | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    eta: float = 0.0,
    device: str | torch.device | None = None,
    precision: str = "auto",
    model: SRDiffusion | None = None,
    progress: bool = False,
) -> UpscaleJob:
    """Validate the arguments, load and prepare the model, build the policy and up(LR): an :class:`UpscaleJob`.
    Arguments as :func:`upscale_tensor`."""
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
    h, w = x.shape[-2:]
    up = upscale_bicubic(x.to(dev).float(), model.config.scale)
    H, W = up.shape[-2:]
    pol = resolve_policy(policy, model, steps=steps, adaptive=adaptive, tile=tile, overlap=overlap)
    return UpscaleJob(model, _pad_to_multiple(up, model.unet.multiple), (int(H), int(W)), (int(h), int(w)), pol,
                      tile, overlap, seed, eta, dev, prec, progress, t_start)


def upscale_tensor(x: torch.Tensor, **kwargs) -> UpscaleResult:
    """Super-resolve ``x`` (1, 3, h, w) in [−1, 1] → :class:`UpscaleResult` (image (1, 3, s·h, s·w), report, sample).

    Keyword arguments:
        steps: N, the most steps any tile takes (uniform DDIM's step count; N_max of the adaptive policies).
        policy: ``"uniform"`` (default), ``"allocation"``, ``"early-exit"``, ``"adasr"`` or a
            :class:`~adasr.sampling.policies.Policy` object (then ``steps`` and ``adaptive`` are not used).
        adaptive: the :class:`~adasr.adaptive.policy.AdaptiveConfig` of a named adaptive policy (its ``n_max``
            is replaced by ``steps``).
        seed, eta: initial noise and DDIM's η. tile, overlap: tiling in output pixels.
        device, precision: ``precision='auto'`` uses bf16 autocast where the device runs bf16 natively, fp32
            elsewhere; the model runs channels_last where that is faster
            (:func:`~adasr.runtime.prepare_for_inference`).
        model: an :class:`SRDiffusion` (default: the shipped one). progress: a tqdm bar.

    To watch the sampler, use :func:`prepare_upscale` and iterate ``job.states()``.
    """
    return prepare_upscale(x, **kwargs).run()


def upscale(image: np.ndarray, **kwargs) -> np.ndarray:
    """uint8 RGB (h, w, 3) → uint8 RGB (4h, 4w, 3); keyword arguments as :func:`upscale_tensor`."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"upscale expects a uint8 (h, w, 3) RGB array, got {arr.dtype} {arr.shape}; "
                         "use adasr.imageio.read_image for files, grayscale, alpha or 16-bit images")
    return to_uint8(upscale_tensor(to_tensor(arr), **kwargs).image)
