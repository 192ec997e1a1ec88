"""``adasr.upscale``: ×4 super-resolution of one image with a shipped model, no HR needed.

Two kinds of model (:data:`~adasr.config.MODELS`):

* ``sr_x4`` — the diffusion model. LR (h, w) → up(LR) by bicubic ×4 → padded to the UNet's multiple → tile-batch
  DDIM sampling of the residual (the policy decides the per-tile schedules) → HR = up(LR) + r̂0/s → cropped back to
  (4h, 4w). ``steps`` is N, the most steps any tile takes, for every policy.
* ``edsr_x4`` — the EDSR regression CNN: SR = clamp(EDSR(LR), −1, 1), one forward pass of the whole image; the
  diffusion-only arguments (:data:`~adasr.config.DIFFUSION_ONLY`, ``adaptive``) are refused with it.

Either may be quantized (``quant``, :func:`load_model`): ``int8`` — EDSR as a real int8 network
(:func:`~adasr.quant.int8.quantize_int8`); ``adabm`` — AdaBM's bit mapping b = b_base + b_I + b_L, fake
quantization (:mod:`adasr.quant.adabm`), EDSR per 32-px LR patch, the UNet per tile. Both are calibrated on the
training photos (never on the input) when the model is loaded; the report records the method, the calibration and,
for AdaBM, the FAB (feature average bit-width) of the run.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .adaptive.policy import AdaptiveConfig
from .config import MODELS, QUANT, ConfigError, UpscaleConfig, _lit, check_model_options
from .data import to_tensor, to_uint8, upscale_bicubic
from .defaults import DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_STEPS, DEFAULT_TILE
from .diffusion.timesteps import ExplicitSchedule, Schedule, get_schedule
from .quant.adabm import AdaBMConfig
from .registry import load_state_dict, model_config
from .runtime import (deterministic_kernels, each_step_within, prepare_for_inference, resolve_device,
                      resolve_precision)
from .sampling.loop import SampleResult, SamplerState, iterate_tiles
from .sampling.policies import Policy, UniformDDIM
from .srmodel import SRDiffusion, SRDiffusionConfig

__all__ = ["ADABM_EDSR", "ADABM_UNET", "DEFAULT_MODEL", "DEFAULT_SCHEDULE", "DEFAULT_STEPS", "RegressionJob", "UpscaleJob",
           "UpscaleModel", "UpscaleReport", "UpscaleResult", "edsr_calibration_batches", "estimate_memory_bytes",
           "load_model", "load_pretrained", "prepare_upscale", "resolve_policy", "unet_calibration_batches",
           "unet_calibration_timesteps",
           "upscale", "upscale_tensor"]


def load_pretrained(name: str = DEFAULT_MODEL, device: str | torch.device | None = None) -> SRDiffusion:
    """The shipped diffusion model ``name`` (EMA weights, hash-verified) in eval mode on ``device``."""
    model = SRDiffusion(SRDiffusionConfig.from_dict(model_config(name)))
    model.unet.load_state_dict(load_state_dict(name))
    return model.eval().to(resolve_device(device))


# ------------------------------------------------------------------------------------------------- quantization
#: ``quant='adabm'`` on EDSR: the ``adasr bench quant`` arm "AdaBM b_base 4 (no FT)" — W4, b_base 4, I2B per 32-px
#: LR patch, L2B, bit-aware clipping, MSE range search; calibration only (fine-tuning takes about a minute).
ADABM_EDSR = AdaBMConfig(w_bits=4, a_bits=4, patch=32, calibration="mse")
#: ``quant='adabm'`` on the diffusion UNet: W8, b_base 6 (the better of the two UNet arms of ``adasr bench quant``),
#: one I2B bit per tile, min-max ranges so that calibration takes seconds instead of the bench's minutes of MSE search.
ADABM_UNET = AdaBMConfig(w_bits=8, a_bits=6, calibration="minmax")


def edsr_calibration_batches(n: int = 64, size: int = 48, batch: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """What EDSR's int8 and AdaBM quantizations calibrate on (here and in ``adasr bench quant``): ``n`` seeded LR
    patches (size×size) of the training photos (:func:`~adasr.data.training_lr_patches`), in batches
    (batch, 3, size, size)."""
    from .data import training_lr_patches

    lr = training_lr_patches(n, size, seed=seed)
    return [lr[i : i + batch] for i in range(0, n, batch)]


def unet_calibration_timesteps(model: SRDiffusion, steps: int,
                               schedule: str | Schedule = DEFAULT_SCHEDULE) -> list[int]:
    """The timesteps the UNet's bit mapping is calibrated at: exactly those the ``steps``-step sampler of
    ``schedule`` visits, ``UniformDDIM(steps, schedule).timesteps(T)`` (linspace: 999, 888, …, 0 for 10 steps)."""
    return UniformDDIM(steps, schedule).timesteps(model.num_train_timesteps)


def unet_calibration_batches(model: SRDiffusion, steps: int, n: int = 4, crop: int = 64, seed: int = 0,
                             schedule: str | Schedule = DEFAULT_SCHEDULE
                             ) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], list[int]]:
    """What the UNet's AdaBM calibrates on (here and in ``adasr bench quant``): ``n`` seeded HR crops (crop×crop)
    of the training photos, each noised to every timestep of :func:`unet_calibration_timesteps`
    (:func:`~adasr.quant.adabm.diffusion_calibration_batches`): batches of UNet inputs (x_t, t, up(LR)) and the
    timesteps."""
    from .data import TRAIN_IMAGES, CropSampler
    from .quant import adabm

    hr = CropSampler.from_names(TRAIN_IMAGES, crop).sample(n, torch.Generator().manual_seed(seed))
    ts = unet_calibration_timesteps(model, steps, schedule)
    return adabm.diffusion_calibration_batches(model, hr, ts, seed=seed + 1), ts


@dataclass(frozen=True)
class UpscaleModel:
    """A network ready for :func:`upscale_tensor` (from :func:`load_model`; pass it as ``model=`` to reuse a
    quantized model without calibrating again).

    ``net`` is an :class:`~adasr.srmodel.SRDiffusion` (``kind='diffusion'``; with an AdaBM UNet when
    ``quant='adabm'``) or a module mapping LR (B, 3, h, w) to SR (B, 3, s·h, s·w) (``kind='regression'``: EDSR, its
    int8 or AdaBM version). ``adabm`` is the AdaBM wrapper that reports FAB; ``quantization`` what the report records
    about the quantization (method, config, calibration data and seconds); ``macs_per_pixel`` the MACs of a
    regression net per LR pixel (fully convolutional, so MACs = macs_per_pixel·h·w; 0 where not measured).
    """

    net: nn.Module
    name: str
    kind: str
    quant: str = "none"
    adabm: nn.Module | None = None
    quantization: dict[str, Any] | None = None
    macs_per_pixel: int = 0


def _kind_of(model: Any) -> tuple[str, str]:
    """(kind, name) of a model name, :class:`UpscaleModel` or module, without loading anything."""
    if isinstance(model, UpscaleModel):
        return model.kind, model.name
    if isinstance(model, str):
        if model not in MODELS:
            raise ConfigError(f"{{model}} must be one of {', '.join(MODELS)} or a module, got {model!r}",
                              model="model")
        return MODELS[model], model
    if isinstance(model, SRDiffusion):
        return "diffusion", type(model).__name__
    if isinstance(model, nn.Module):
        return "regression", type(model).__name__
    raise ConfigError(f"{{model}} must be a model name, an UpscaleModel or a module, got {type(model).__name__}",
                      model="model")


def _macs_per_pixel(edsr: nn.Module) -> int:
    """MACs of a float EDSR per LR pixel: the count of one forward on a 1×1 input (every layer is a stride-1 conv
    or a pixel shuffle, so MACs scale exactly with h·w)."""
    from .cost import count_macs

    p = next(edsr.parameters())
    x = torch.zeros(1, 3, 1, 1, dtype=p.dtype, device=p.device)
    return count_macs(lambda: edsr(x))


def _quant_of(net: nn.Module) -> tuple[str, nn.Module | None]:
    """The quantization a given module already carries: ('adabm', wrapper), ('int8', None) or ('none', None)."""
    from .quant.adabm import AdaBM
    from .quant.int8 import Int8EDSR

    inner = net.unet if isinstance(net, SRDiffusion) else net
    if isinstance(inner, AdaBM):
        return "adabm", inner
    if isinstance(inner, Int8EDSR):
        return "int8", None
    return "none", None


def _device(device: str | torch.device | None, quant: str) -> torch.device:
    """:func:`~adasr.runtime.resolve_device`, except that ``auto`` is the CPU for int8 (PyTorch's int8 kernels)."""
    if quant == "int8" and (device is None or str(device) == "auto"):
        return torch.device("cpu")
    return resolve_device(device)


def load_model(model: str | nn.Module | UpscaleModel = DEFAULT_MODEL, quant: str = "none", *,
               device: str | torch.device | None = None, steps: int = DEFAULT_STEPS,
               schedule: str | Schedule = DEFAULT_SCHEDULE) -> UpscaleModel:
    """The model of ``upscale_tensor(model=…, quant=…)``: a shipped name (:data:`~adasr.config.MODELS`) is loaded,
    a module used as it is, then quantized (a copy; the original is left alone) when ``quant`` is not ``'none'``:

    * ``int8`` (EDSR, CPU only): :func:`~adasr.quant.int8.quantize_int8` calibrated on
      :func:`edsr_calibration_batches` (about 3 s on two cores);
    * ``adabm`` on EDSR: :data:`ADABM_EDSR` calibrated on the same LR patches (about 3 s);
    * ``adabm`` on the diffusion model: :func:`~adasr.quant.adabm.quantize_diffusion` with :data:`ADABM_UNET`,
      calibrated on :func:`unet_calibration_batches` at the timesteps of the ``steps``-step ``schedule`` (seconds).

    Quantization runs on the CPU, then the network moves to ``device`` (``auto`` is the CPU for int8). A module that already is quantized (an
    :class:`~adasr.quant.adabm.AdaBM` or :class:`~adasr.quant.int8.Int8EDSR`, or an SRDiffusion with an AdaBM UNet)
    is recognised, so its report carries its FAB. Raises ValueError for a combination a model does not support.
    """
    if quant not in QUANT:
        raise ConfigError(f"{{quant}} must be one of {', '.join(QUANT)}, got {quant!r}", quant="quant")
    if isinstance(model, UpscaleModel):
        if quant not in ("none", model.quant):
            raise ConfigError(f"this UpscaleModel is already {model.quant}; leave {{quant}} at 'none'", quant="quant")
        return model
    kind, name = _kind_of(model)
    check_model_options(kind, name, quant, "fp32")
    dev = _device(device, quant)
    if quant == "int8" and dev.type != "cpu":
        raise ConfigError(f"{{quant}} int8 runs PyTorch's int8 CPU kernels; use {{device}} cpu, not {dev}",
                          quant="quant", device="device")
    if isinstance(model, str):
        if kind == "diffusion":
            net: nn.Module = load_pretrained(model, device="cpu" if quant != "none" else dev)
        else:
            from .models.edsr import load_edsr

            net = load_edsr(model, device="cpu" if quant != "none" else dev)
    else:
        net = model
    if quant == "none":
        have, adabm = _quant_of(net)
        from .models.edsr import EDSR

        mpp = _macs_per_pixel(net) if isinstance(net, EDSR) else 0
        return UpscaleModel(net.eval(), name, kind, have, adabm, {"method": have} if have != "none" else None, mpp)
    if next(net.parameters()).device.type != "cpu":
        net = copy.deepcopy(net).cpu()
    t0 = time.perf_counter()
    if kind == "diffusion":
        from .quant.adabm import quantize_diffusion

        qmodel, qm = quantize_diffusion(net, ADABM_UNET)
        batches, ts = unet_calibration_batches(net, steps, schedule=schedule)
        qm.calibrate(batches)
        sched_name = get_schedule(schedule).name
        info = {"method": "adabm", "config": ADABM_UNET.label, "layers": len(qm.layer_names),
                "calibration": f"{sum(b[0].shape[0] for b in batches)} UNet inputs: 4 HR crops 64² of the training "
                               f"photos noised to each of the {len(ts)} timesteps of the {steps}-step "
                               f"{sched_name} schedule",
                "timesteps": ts, "seconds": time.perf_counter() - t0}
        return UpscaleModel(qmodel.eval().to(dev), name, kind, "adabm", qm, info)
    batches = edsr_calibration_batches()
    described = f"{sum(b.shape[0] for b in batches)} LR patches 48² of the training photos"
    mpp = _macs_per_pixel(net)
    if quant == "int8":
        from .quant.int8 import quantize_int8

        q8 = quantize_int8(net, batches)
        info = {"method": "int8", "engine": q8.engine, "calibration": described,
                "seconds": time.perf_counter() - t0}
        return UpscaleModel(q8.eval(), name, kind, "int8", None, info, mpp)
    from .quant.adabm import AdaBM

    qm = AdaBM(net, ADABM_EDSR)
    qm.calibrate(batches)
    info = {"method": "adabm", "config": ADABM_EDSR.label, "layers": len(qm.layer_names), "calibration": described,
            "seconds": time.perf_counter() - t0}
    return UpscaleModel(qm.eval().to(dev), name, kind, "adabm", qm, info, mpp)


# ------------------------------------------------------------------------------------------------- results
@dataclass
class UpscaleReport:
    """What one upscale cost and how it was run (``--report`` JSON).

    For a regression model the one forward pass counts as one step, iteration, network call and tile-evaluation
    of the whole image (``tiles`` = 1, ``policy`` = ``'none'``, ``seed`` = None). ``evaluations_by_mode`` /
    ``macs_by_mode`` split the work by denoiser mode (:mod:`adasr.sampling.denoiser`); ``fab`` is AdaBM's feature
    average bit-width over the run (mean over tile-evaluations), None without AdaBM; ``adaptive`` the
    :class:`AdaptiveConfig` of a named adaptive policy; ``steps_per_tile`` the steps each tile really ran;
    ``schedule`` the timestep schedule ({name, timesteps of the busiest tile, its η where it has one}),
    ``eta`` the η the sampler ran with (None for a regression model) and ``reuse`` the feature-reuse settings
    ({cache, key_steps, interval, parallel, prior_noise}; None without a cache); ``deterministic`` whether it ran
    with :func:`~adasr.runtime.deterministic_kernels` (bit-identical for any thread count).
    """

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
    seed: int | None
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    model: str = DEFAULT_MODEL
    quant: str = "none"
    fab: float | None = None
    quantization: dict[str, Any] | None = None
    adaptive: dict[str, Any] | None = None
    steps_per_tile: list[int] = field(default_factory=list)
    evaluations_by_mode: dict[str, int] = field(default_factory=dict)
    macs_by_mode: dict[str, int] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None
    eta: float | None = None
    reuse: dict[str, Any] | None = None
    deterministic: bool = False

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
    :class:`UpscaleReport` and the sampler's :class:`~adasr.sampling.loop.SampleResult` (tiles, cost, trace; None
    for a regression model). A named tuple, so ``image, report, sample = upscale_tensor(…)`` unpacks it."""

    image: torch.Tensor
    report: UpscaleReport
    sample: SampleResult | None


def _pad_to_multiple(up: torch.Tensor, m: int) -> torch.Tensor:
    H, W = up.shape[-2:]
    ph, pw = (-H) % m, (-W) % m
    if not (ph or pw):
        return up
    mode = "reflect" if H > ph and W > pw else "replicate"
    return F.pad(up, (0, pw, 0, ph), mode=mode)


def _named_adaptive(policy: str, adaptive: AdaptiveConfig | None, steps: int) -> AdaptiveConfig:
    """``adaptive`` (default: :class:`AdaptiveConfig`) with N_max = ``steps``, checked for ``policy``; errors name
    ``steps`` where the config says N_max."""
    config = (adaptive or AdaptiveConfig()).with_(n_max=steps)
    try:
        config.check(policy)
    except ConfigError as exc:
        raise ConfigError(exc.template, **{k: "steps" if v == "n_max" else v for k, v in exc.names.items()}) from None
    return config


def resolve_policy(policy: str | Policy | None, model: SRDiffusion, *, steps: int, adaptive: AdaptiveConfig | None,
                   tile: int, overlap: int, schedule: str | Schedule = DEFAULT_SCHEDULE) -> Policy:
    """The :class:`~adasr.sampling.policies.Policy` for ``policy``: an object is used as it is; a name of
    :data:`~adasr.config.POLICIES` is built by :func:`~adasr.adaptive.policy.policy_for_model` from
    ``adaptive`` with N_max = ``steps`` (``steps`` is the budget of the busiest tile for every policy) and its
    timestep lists from ``schedule``."""
    if isinstance(policy, Policy):
        return policy
    from .adaptive.policy import policy_for_model

    kind = policy or "uniform"
    config = _named_adaptive(kind, adaptive, steps)
    if kind == "uniform":
        return UniformDDIM(steps, schedule)
    return policy_for_model(kind, config, model, tile=tile, overlap=overlap, schedule=schedule)


class _FabMeter:
    """FAB over a sampler run: the mean over tile-evaluations of each evaluation's feature average bit-width.

    A forward hook on the AdaBM UNet records :meth:`~adasr.quant.adabm.AdaBM.fab_per_image` (B,) of every call;
    after each iteration :meth:`iteration` keeps the last n values, n = the tile-evaluations of that iteration (so
    a forward the denoiser makes to count MACs before the first step is not counted)."""

    def __init__(self, adabm: nn.Module) -> None:
        self.pending: list[torch.Tensor] = []
        self.total, self.count = 0.0, 0
        self.handle = adabm.register_forward_hook(
            lambda m, args, out: self.pending.append(m.fab_per_image().detach().float().cpu()))

    def iteration(self, n: int) -> None:
        if n and self.pending:
            vals = torch.cat(self.pending)[-n:]
            self.total += float(vals.sum())
            self.count += vals.numel()
        self.pending = []

    def close(self) -> None:
        self.handle.remove()

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class UpscaleJob:
    """One prepared diffusion upscale (from :func:`prepare_upscale`): iterate :meth:`states` to watch the sampler,
    or :meth:`run` it; :meth:`finish` turns the final sampler state into an :class:`UpscaleResult`."""

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
    info: UpscaleModel | None = None
    adaptive: AdaptiveConfig | None = None
    deterministic: bool = False
    _fab: _FabMeter | None = field(default=None, repr=False)

    def states(self) -> Iterator[SamplerState]:
        """The sampler's state after each iteration (:func:`~adasr.sampling.loop.iterate_tiles`); with
        ``deterministic``, each iteration runs within :func:`~adasr.runtime.deterministic_kernels`."""
        states = iterate_tiles(self.model, self.cond, policy=self.policy, tile=self.tile, overlap=self.overlap,
                               seed=self.seed, eta=self.eta, precision=self.precision, progress=self.progress)
        if self.deterministic:
            states = each_step_within(states, deterministic_kernels)
        adabm = self.info.adabm if self.info is not None else None
        if adabm is None:
            return states
        return self._metered(states, adabm)

    def _metered(self, states: Iterator[SamplerState], adabm: nn.Module) -> Iterator[SamplerState]:
        self._fab = meter = _FabMeter(adabm)
        done = 0
        try:
            for state in states:
                meter.iteration(state.cost.tile_evaluations - done)
                done = state.cost.tile_evaluations
                yield state
        finally:
            meter.close()

    def finish(self, state: SamplerState) -> UpscaleResult:
        res = state.result()
        H, W = self.size
        with deterministic_kernels(self.deterministic):
            hr = self.model.output(res.x0, self.cond)[:, :, :H, :W]
        info = self.info
        report = UpscaleReport(
            steps=self.policy.steps, policy=self.policy.name, tiles=len(res.grid),
            tile_size=(res.grid.tile_h, res.grid.tile_w), iterations=res.iterations, unet_calls=res.cost.unet_calls,
            tile_evaluations=res.cost.tile_evaluations, macs=res.cost.macs,
            seconds=time.perf_counter() - self.started, sampler_seconds=res.seconds, device=str(self.device),
            precision=self.precision, seed=self.seed, input_size=self.input_size, output_size=(int(H), int(W)),
            model=info.name if info else type(self.model).__name__, quant=info.quant if info else "none",
            fab=self._fab.value if self._fab is not None else None,
            quantization=info.quantization if info else None,
            adaptive=self.adaptive.to_dict() if self.adaptive is not None else None,
            steps_per_tile=[t.evaluations for t in res.tiles],
            evaluations_by_mode=dict(res.cost.evaluations_by_mode), macs_by_mode=dict(res.cost.macs_by_mode),
            schedule=describe_schedule(self.policy, self.model.num_train_timesteps), eta=self.eta,
            reuse=self.policy.describe() if hasattr(self.policy, "describe") else None,
            deterministic=self.deterministic,
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


@dataclass
class RegressionJob:
    """One prepared upscale with a regression model (from :func:`prepare_upscale`): :meth:`run` is its one forward
    pass, SR = clamp(net(LR), −1, 1). There is no sampler, so ``observe`` is never called."""

    info: UpscaleModel
    lr: torch.Tensor  # (1, 3, h, w) on the device
    device: torch.device
    started: float
    deterministic: bool = False

    def run(self, observe: Callable[[SamplerState], None] | None = None) -> UpscaleResult:
        h, w = (int(s) for s in self.lr.shape[-2:])
        t0 = time.perf_counter()
        with torch.no_grad(), deterministic_kernels(self.deterministic):
            sr = self.info.net(self.lr).float().clamp(-1, 1)
        forward = time.perf_counter() - t0
        H, W = (int(s) for s in sr.shape[-2:])
        macs = self.info.macs_per_pixel * h * w
        adabm = self.info.adabm
        report = UpscaleReport(
            steps=1, policy="none", tiles=1, tile_size=(H, W), iterations=1, unet_calls=1, tile_evaluations=1,
            macs=macs, seconds=time.perf_counter() - self.started, sampler_seconds=forward, device=str(self.device),
            precision="fp32", seed=None, input_size=(h, w), output_size=(H, W), model=self.info.name,
            quant=self.info.quant, fab=adabm.fab() if adabm is not None else None,
            quantization=self.info.quantization, steps_per_tile=[1], evaluations_by_mode={"full": 1},
            macs_by_mode={"full": macs}, deterministic=self.deterministic,
        )
        return UpscaleResult(sr.cpu(), report, None)


def describe_schedule(policy: Policy, num_train_timesteps: int) -> dict[str, Any] | None:
    """The report's ``schedule``: the policy's schedule described at its budget N, or None for a policy without
    one."""
    sched = policy.schedule
    if not isinstance(sched, Schedule):
        return None
    return sched.describe(policy.steps, num_train_timesteps)


def prepare_upscale(
    x: torch.Tensor,
    *,
    model: str | nn.Module | UpscaleModel = DEFAULT_MODEL,
    quant: str = "none",
    steps: int | None = None,
    schedule: str | Schedule | None = None,
    seed: int | None = None,
    policy: str | Policy | None = None,
    adaptive: AdaptiveConfig | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    eta: float | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    cache: str | None = None,
    cache_interval: int | None = None,
    key_steps: str | None = None,
    deterministic: bool = False,
    progress: bool = False,
) -> UpscaleJob | RegressionJob:
    """Validate the arguments (cheap checks first), load and prepare the model, build the policy and up(LR): an
    :class:`UpscaleJob` (diffusion) or a :class:`RegressionJob`. Arguments as :func:`upscale_tensor`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor (1, 3, h, w), got {type(x).__name__}; adasr.upscale takes arrays")
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, h, w) tensor, got {tuple(x.shape)}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"the image is empty ({x.shape[-2]}×{x.shape[-1]} pixels); give at least 1×1")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor in [-1, 1], got {x.dtype}; adasr.data.to_tensor converts "
                         "uint8 images")
    if not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")
    t_start = time.perf_counter()
    given = {k: v for k, v in dict(steps=steps, seed=seed, tile=tile, overlap=overlap, eta=eta, cache=cache,
                                   cache_interval=cache_interval, key_steps=key_steps).items() if v is not None}
    if (cache is None or cache == "none") and (cache_interval is not None or key_steps is not None):
        what = "cache_interval" if cache_interval is not None else "key_steps"
        raise ConfigError(f"{{{what}}} applies to feature reuse; give {{cache}} encoder or deepcache",
                          **{what: what, "cache": "cache"})
    if isinstance(policy, str):
        given["policy"] = policy
    if isinstance(schedule, str):
        given["schedule"] = schedule
    elif isinstance(schedule, (list, tuple)):
        given["schedule"] = ",".join(str(v) for v in schedule)
    elif schedule is not None and not isinstance(schedule, Schedule):
        raise ConfigError(f"{{schedule}} must be a name, a list of timesteps or a Schedule, got "
                          f"{type(schedule).__name__}", schedule="schedule")
    if quant not in QUANT:
        raise ConfigError(f"{{quant}} must be one of {', '.join(QUANT)}, got {quant!r}", quant="quant")
    kind, name = _kind_of(model)
    if kind != "diffusion":
        extra = sorted(given) + (["policy"] if isinstance(policy, Policy) else []) + (
            ["adaptive"] if adaptive is not None else []) + (["schedule"] if isinstance(schedule, Schedule) else [])
        if extra:
            raise ConfigError(f"{', '.join(extra)} appl{'ies' if len(extra) == 1 else 'y'} to diffusion models only; "
                              f"{name} is a regression CNN (one forward pass)")
    if isinstance(model, UpscaleModel) and quant not in ("none", model.quant):
        raise ConfigError(f"this UpscaleModel is already {model.quant}; leave {{quant}} at 'none'", quant="quant")
    named_quant = model.quant if isinstance(model, UpscaleModel) else quant
    config = UpscaleConfig(device="auto" if device is None else str(device), precision=precision,
                           deterministic=deterministic, **given)
    check_model_options(kind, name, named_quant, config.precision)
    if isinstance(policy, Policy):
        if adaptive is not None:
            raise ConfigError("{adaptive} configures a named policy; a Policy object carries its own settings",
                              adaptive="adaptive")
        if steps is not None and steps != policy.steps:
            raise ConfigError(f"{{steps}} ({steps}) differs from the policy's own budget ({policy.steps}); leave "
                              "{steps} out with a Policy object", steps="steps")
        if schedule is not None:
            raise ConfigError("{schedule} configures a named policy; a Policy object carries its own schedule",
                              schedule="schedule")
    n_steps = policy.steps if isinstance(policy, Policy) else config.n_steps
    if isinstance(policy, Policy):  # a Policy object carries its schedule (the named default only if it has none)
        sched = policy.schedule or get_schedule(config.schedule)
    else:
        sched = schedule if isinstance(schedule, Schedule) else get_schedule(config.schedule)
    try:
        sched.timesteps(n_steps)  # an explicit list of another length, a t_end too close to T, … fail here
    except ValueError as exc:
        if isinstance(sched, ExplicitSchedule):  # the list itself is wrong (beyond T, …)
            raise ConfigError(f"{{schedule}}: {_lit(str(exc))}", schedule="schedule") from None
        name = _lit(getattr(sched, "name", type(sched).__name__))
        raise ConfigError(f"{{steps}} {n_steps} does not fit {{schedule}} {name}: {_lit(str(exc))}; use fewer "
                          "{steps}", schedule="schedule", steps="steps") from None
    adaptive_used = None
    if kind == "diffusion" and not isinstance(policy, Policy):
        checked = _named_adaptive(config.policy, adaptive, n_steps)
        adaptive_used = checked if config.policy != "uniform" else None
    dev = _device(device, named_quant)
    exact = kind != "diffusion" or named_quant != "none" or config.deterministic  # EDSR, quantized: fp32
    prec = "fp32" if exact else resolve_precision(config.precision, dev)
    with deterministic_kernels(config.deterministic):  # AdaBM calibrates here: the same kernels as the run
        info = load_model(model, quant, device=dev, steps=n_steps, schedule=sched)
    if kind != "diffusion":
        return RegressionJob(info, x.to(dev).float(), dev, t_start, config.deterministic)
    net = prepare_for_inference(info.net, dev, prec)
    m = net.unet.multiple
    if config.tile % m:
        k = m.bit_length() - 1
        raise ConfigError(f"{{tile}} must be a multiple of {m} (the UNet halves the resolution {k} time"
                          f"{'s' if k != 1 else ''}), got {config.tile}; try {max(m, config.tile // m * m)} or "
                          f"{-(-config.tile // m) * m}", tile="tile")
    h, w = x.shape[-2:]
    up = upscale_bicubic(x.to(dev).float(), net.config.scale)
    H, W = up.shape[-2:]
    pol = resolve_policy(policy if isinstance(policy, Policy) else config.policy, net, steps=n_steps,
                         adaptive=adaptive, tile=config.tile, overlap=config.overlap, schedule=sched)
    if config.cache != "none":
        from .acceleration.reuse import with_reuse

        pol = with_reuse(pol, config.cache, key_steps=config.key_steps, interval=config.cache_interval)
    eta_used = config.eta if config.eta is not None else (sched.eta_for(n_steps) or 0.0)
    return UpscaleJob(net, _pad_to_multiple(up, net.unet.multiple), (int(H), int(W)), (int(h), int(w)), pol,
                      config.tile, config.overlap, config.seed, float(eta_used), dev, prec, progress, t_start, info,
                      adaptive_used, config.deterministic)


def upscale_tensor(x: torch.Tensor, **kwargs: Any) -> UpscaleResult:
    """Super-resolve ``x`` (1, 3, h, w) in [−1, 1] → :class:`UpscaleResult` (image (1, 3, s·h, s·w), report, sample).

    Keyword arguments (defaults: :class:`~adasr.config.UpscaleConfig`):
        model: ``"sr_x4"`` (the diffusion model, default), ``"edsr_x4"`` (the EDSR regression CNN: one forward
            pass), a module (an :class:`SRDiffusion` or an LR → SR network) or an :class:`UpscaleModel`.
        quant: ``"none"``, ``"int8"`` (EDSR on the CPU) or ``"adabm"`` (:func:`load_model`; calibrated on the
            training photos first, seconds).
        steps: N, the most steps any tile takes (uniform DDIM's step count; N_max of the adaptive policies);
            default :data:`~adasr.defaults.DEFAULT_STEPS` for uniform sampling, ``ADAPTIVE_STEPS`` for the adaptive
            policies, the length of an explicit schedule.
        schedule: which timesteps: ``"linspace"``, ``"leading"``, ``"trailing"``, ``"karras"``, an optimised preset
            ``"perceptual"`` / ``"balanced"`` (default) / ``"fidelity"``, an explicit list (``[999, 100, 20]`` or
            ``"999,100,20"``) or a :class:`~adasr.diffusion.timesteps.Schedule`.
        policy: ``"uniform"`` (default), ``"allocation"``, ``"early-exit"``, ``"adasr"`` or a
            :class:`~adasr.sampling.policies.Policy` object (which carries its own budget and settings).
        adaptive: the :class:`~adasr.adaptive.policy.AdaptiveConfig` of a named adaptive policy (its ``n_max``
            is replaced by ``steps``).
        seed, eta: initial noise and DDIM's η (default: the η an optimised schedule was chosen with, else 0).
        tile, overlap: tiling in output pixels.
        device, precision: ``precision='auto'`` uses bf16 autocast where the device runs bf16 natively, fp32
            elsewhere (EDSR and quantized models always run fp32); left out, ``$ADASR_PRECISION`` when set, else
            ``auto``; the model runs channels_last where that is
            faster (:func:`~adasr.runtime.prepare_for_inference`).
        cache, cache_interval, key_steps: feature reuse at the non-key steps (:mod:`adasr.acceleration.reuse`):
            ``cache`` ``"none"`` (default), ``"encoder"`` (Faster-Diffusion / SMFDM encoder reuse) or
            ``"deepcache"``; every ``cache_interval``-th step of a tile is a key step (default 2) with
            ``key_steps`` ``"uniform"`` (default) or ``"smfdm"`` (the group decoded in one call);
            ``"faster-diffusion"`` is its non-uniform set. Works with every policy.
        deterministic: bit-identical output for any number of CPU threads (fp32 on one intra-op thread:
            :func:`~adasr.runtime.deterministic_kernels`; the other cores idle). Without it fp32 differs by about 1e-6
            between thread counts (now and then one level of an 8-bit pixel) and bf16 by one level in about 1 % of
            pixels; equal settings and thread counts always give equal outputs.
        progress: a tqdm bar.

    ``steps``, ``schedule``, ``seed``, ``policy``, ``adaptive``, ``tile``, ``overlap``, ``eta`` and the cache
    arguments apply to diffusion models only;
    a regression model refuses them (ValueError). Bad names or values raise ValueError naming the argument.
    To watch the sampler, use :func:`prepare_upscale` and iterate ``job.states()``.
    """
    return prepare_upscale(x, **kwargs).run()


def upscale(image: np.ndarray, **kwargs: Any) -> np.ndarray:
    """uint8 RGB (h, w, 3) → uint8 RGB (4h, 4w, 3); keyword arguments as :func:`upscale_tensor`."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"upscale expects a uint8 (h, w, 3) RGB array, got {arr.dtype} {arr.shape}; "
                         "use adasr.imageio.read_image for files, grayscale, alpha or 16-bit images")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"upscale got an empty image {arr.shape}; give at least 1×1 pixels")
    return to_uint8(upscale_tensor(to_tensor(arr), **kwargs).image)
