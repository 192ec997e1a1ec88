"""AdaDiffSR's Progressive Feature Injection (PFJ; Fan et al., ECCV 2024, §3.4, eq. 3) for the pixel-space SR UNet.

The paper modulates the original image features o before they condition the denoiser, with coefficients a small
CNN φ predicts from o and the current information gain I (:mod:`adasr.adaptive.information_gain`, from the MMLE
regressor :mod:`adasr.adaptive.mmle` at inference):

    ô = α ⊙ o + β,     (α, β) = φ(o, I)                                                        (eq. 3)

**Shapes here.** Our model conditions on o = up(LR) by channel concatenation (:class:`~adasr.models.unet.SRUNet`,
``unet(x_t, t, cond)``, cond (B, 3, h, w) in [−1, 1]). The information gain of a tile is two numbers,
I = (I^FR, I^NR) (B, 2). The sampler's DTSS policy hands them to the network as two constant planes appended to
the condition (``Policy.condition``), so the network receives cond (B, 5, h, w) = [o, I^FR plane, I^NR plane].

* :class:`PFJ` is φ: cat(o, g·I planes) (B, 5, h, w) → 3×3 conv (5 → w) → SiLU → 3×3 conv (w → w) → SiLU → 3×3 conv
  (w → 6) = (α − 1, β), each (B, 3, h, w), per pixel and channel; ``forward(o, gains) → ô`` (B, 3, h, w). The last
  convolution is zero-initialised, so a fresh φ is the identity (α = 1, β = 0) and fine-tuning starts from the
  shipped model exactly. ``g`` (``gain_scale``) divides each gain by its typical size (the MMLE regressor's
  ``target_scale``, about 0.05 for the shipped one) so that φ sees planes of order 1.
* :class:`PFJUNet` wraps an SRUNet and a PFJ: ``forward(x_t, t, cond)`` splits cond (B, 5, h, w) into o and the
  gain planes, and calls ``unet(x_t, t, ô)``; a 3-channel cond means I = 0. It has what the sampler's denoiser layer
  uses (:mod:`adasr.sampling.denoiser`): ``multiple``, ``config`` (the SRUNet's with ``in_channels`` = 3 + 5, so
  :func:`adasr.cost.unet_macs` feeds a 5-channel cond and φ's convolutions are counted in the MACs), and
  ``encode`` / ``decode`` / ``shallow`` for feature reuse (φ runs wherever the condition enters: ``encode`` and
  ``shallow``; ``decode`` reuses a cached encoder state and runs no φ).
* :func:`with_pfj` returns a copy of an :class:`~adasr.srmodel.SRDiffusion` whose ``.unet`` is the wrapper.

**What follows the paper and what is ours.** Eq. 3 (an affine modulation of the condition, coefficients from a
small CNN on o and I) is the paper's. Ours: the place of o (the pixel condition up(LR), not latent features, since
our model is a pixel-space concatenation model), φ's architecture (the paper does not give it), per-pixel α, β,
the zero-initialised last layer, the gain scaling, and the training recipe below.

**Fine-tuning** (:func:`finetune`; ``tools/finetune_pfj.py`` runs both arms): the shipped model is fine-tuned with
its own diffusion loss (:meth:`~adasr.srmodel.SRDiffusion.training_loss`'s E‖f(x_t, t, cond) − target‖²) on 64²
crops of the training photos (:class:`~adasr.data.CropSampler`, batch 16, as ``adasr train``), in two arms that see
**the same data stream** (same generator seed; each step draws the crops, t, ε and Δ in the same order in both arms):

* ``pfj``: cond = [o, I planes] through the wrapper; the UNet and φ are trained;
* ``concat`` (the control): cond = o, plain concatenation as shipped; the UNet is trained.

The gain of a training sample at timestep t: t' = min(T − 1, t + Δ), Δ drawn from {50, 100, 150, 200} (the step
sizes DTSS takes at N ≈ 5–20); x_{t'} and x_t from the same ε (:func:`~adasr.diffusion.objectives.q_sample`); x̂0
at both from one no-grad pass of the current network with cond o (I = 0), clipped like the sampler, turned into
images (``model.output``, [0, 1]); the frozen MMLE regressor gives (I^FR, I^NR) = regressor(f = image at t,
prev = image at t', o, t). I^NR is zeroed where t ≥ ``nr_from`` (500: NR counts only in the second half, as in
DTSS), and both where t' = t (no step was taken; DTSS gives a tile's first evaluation I = 0 too). At inference the
network at t_k sees the gain of the step that ended at t_{k−1} (the tile's latest), one step older than in
training: the training gain uses the estimate at the very t the network is evaluated at.

Optimiser: AdamW without weight decay (= Adam, the paper's optimiser) at the paper's constant learning rate 5·10⁻⁵
for the UNet in both arms; φ, new and zero-initialised, gets 10⁻³ (at 5·10⁻⁵ a few hundred steps would move its
zero layer by ~10⁻², leaving PFJ the identity). Gradient clipping 1.0, an EMA of the weights (decay 0.99 with
``adasr train``'s ramp) is what is saved and evaluated. The MMLE regressor is frozen; nothing else is frozen unless
``freeze_unet`` (then only φ trains, the PFJ arm only).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import TRAIN_IMAGES, make_pair
from ..diffusion.objectives import q_sample, training_target
from ..models.unet import EncoderState, SRUNet

Arm = Literal["pfj", "concat"]
ARMS: tuple[str, ...] = ("pfj", "concat")
#: Gain channels appended to the condition: (I^FR, I^NR).
GAIN_CHANNELS = 2
#: Step sizes Δ (timesteps of T = 1000) of the training gain: those DTSS takes at N ≈ 5–20.
DEFAULT_DELTAS: tuple[int, ...] = (50, 100, 150, 200)
#: NR gains count at t < NR_FROM (the second half of T = 1000), as ``GainConfig.nr_from``.
NR_FROM = 500


# -- φ and the wrapper ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PFJConfig:
    """φ's size: condition channels C (3: up(LR)), hidden ``width``, and the scale g applied to each gain."""

    channels: int = 3
    width: int = 32
    gain_scale: tuple[float, float] = (100.0, 100.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gain_scale"] = list(self.gain_scale)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PFJConfig":
        d = dict(d)
        d["gain_scale"] = tuple(float(v) for v in d["gain_scale"])
        return cls(**d)


class PFJ(nn.Module):
    """φ of eq. 3: (o (B, C, h, w), I (B, 2) or planes (B, 2, h, w)) → ô = α ⊙ o + β (module docstring)."""

    def __init__(self, config: PFJConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PFJConfig()
        if len(c.gain_scale) != GAIN_CHANNELS:
            raise ValueError(f"gain_scale needs {GAIN_CHANNELS} values, got {c.gain_scale}")
        self.body = nn.Sequential(
            nn.Conv2d(c.channels + GAIN_CHANNELS, c.width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c.width, c.width, 3, padding=1), nn.SiLU(),
        )
        self.out = nn.Conv2d(c.width, 2 * c.channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("gain_scale", torch.tensor(c.gain_scale, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    @staticmethod
    def planes(gains: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Gains (B, 2) → constant planes (B, 2, h, w) shaped like ``like`` (B, ·, h, w); planes pass through."""
        if gains.ndim == 2:
            if gains.shape != (like.shape[0], GAIN_CHANNELS):
                raise ValueError(f"gains must be (B, {GAIN_CHANNELS}) = ({like.shape[0]}, {GAIN_CHANNELS}), "
                                 f"got {tuple(gains.shape)}")
            return gains.to(like)[:, :, None, None].expand(-1, -1, *like.shape[-2:])
        if gains.ndim != 4 or gains.shape[1] != GAIN_CHANNELS or gains.shape[-2:] != like.shape[-2:]:
            raise ValueError(f"gain planes must be (B, {GAIN_CHANNELS}, h, w) like {tuple(like.shape)}, "
                             f"got {tuple(gains.shape)}")
        return gains.to(like)

    def coefficients(self, o: torch.Tensor, gains: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(α − 1, β), each (B, C, h, w) float32 (α − 1 rather than α keeps its precision under bf16 autocast)."""
        if o.ndim != 4 or o.shape[1] != self.config.channels:
            raise ValueError(f"o must be (B, {self.config.channels}, h, w), got {tuple(o.shape)}")
        g = self.planes(gains, o) * self.gain_scale.to(o)
        d = self.out(self.body(torch.cat([o, g], dim=1))).float()
        c = self.config.channels
        return d[:, :c], d[:, c:]

    def forward(self, o: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """ô = α ⊙ o + β = o + (α − 1) ⊙ o + β, float32 (B, C, h, w)."""
        da, beta = self.coefficients(o, gains)
        of = o.float()
        return of + da * of + beta


class PFJUNet(nn.Module):
    """An SRUNet whose condition passes through φ first (module docstring).

    cond (B, C + 2, h, w) = [o, I^FR plane, I^NR plane], or (B, C, h, w) = o alone (then I = 0).
    """

    def __init__(self, unet: SRUNet, pfj: PFJ | None = None) -> None:
        super().__init__()
        if isinstance(unet, PFJUNet):
            raise TypeError("unet is already a PFJUNet")
        self.unet = unet
        cond_channels = unet.config.in_channels - unet.config.out_channels
        self.pfj = pfj if pfj is not None else PFJ(PFJConfig(channels=cond_channels))
        if self.pfj.config.channels != cond_channels:
            raise ValueError(f"the PFJ modulates {self.pfj.config.channels} channels, the UNet's condition has "
                             f"{cond_channels}")
        #: the SRUNet's config with the wrapper's input: x_t (out_channels) + o (C) + the gain planes (2)
        self.config = replace(unet.config, in_channels=unet.config.in_channels + GAIN_CHANNELS)

    @property
    def multiple(self) -> int:
        return self.unet.multiple

    @property
    def cond_channels(self) -> int:
        """C: the channels of o (without the gain planes)."""
        return self.pfj.config.channels

    def split(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cond → (o (B, C, h, w), gain planes (B, 2, h, w)); zeros for a C-channel cond."""
        c = self.cond_channels
        if cond.ndim != 4 or cond.shape[1] not in (c, c + GAIN_CHANNELS):
            raise ValueError(f"cond must be (B, {c}, h, w) or (B, {c + GAIN_CHANNELS}, h, w), got {tuple(cond.shape)}")
        o = cond[:, :c]
        if cond.shape[1] == c:
            return o, torch.zeros(cond.shape[0], GAIN_CHANNELS, *cond.shape[-2:], dtype=cond.dtype,
                                  device=cond.device)
        return o, cond[:, c:]

    def modulate(self, cond: torch.Tensor) -> torch.Tensor:
        """ô = φ applied to the condition (B, C, h, w), in the condition's dtype and memory layout."""
        o, g = self.split(cond)
        out = self.pfj(o, g).to(o.dtype)
        if o.is_contiguous(memory_format=torch.channels_last) and not o.is_contiguous():
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def time_embedding(self, t, batch: int, device: torch.device) -> torch.Tensor:
        return self.unet.time_embedding(t, batch, device)

    def encode(self, x_t: torch.Tensor, t, cond: torch.Tensor) -> EncoderState:
        return self.unet.encode(x_t, t, self.modulate(cond))

    def decode(self, state: EncoderState, t, *, return_deep: bool = False):
        return self.unet.decode(state, t, return_deep=return_deep)

    def shallow(self, x_t: torch.Tensor, t, cond: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        return self.unet.shallow(x_t, t, self.modulate(cond), deep)

    def forward(self, x_t: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, self.modulate(cond))


def with_pfj(model, pfj: PFJ | None = None):
    """A copy of ``model`` (an :class:`~adasr.srmodel.SRDiffusion`) whose ``.unet`` is a :class:`PFJUNet` around a
    copy of its UNet and ``pfj`` (default: a fresh, identity φ). ``model`` itself is left as it is."""
    if isinstance(model.unet, PFJUNet):
        raise TypeError("the model's UNet is already wrapped by a PFJUNet")
    m = copy.deepcopy(model)
    m.unet.__dict__.pop("_macs_per_mode", None)
    m.unet = PFJUNet(m.unet, pfj)
    p = next(model.parameters())
    return m.to(p.device)


def gain_cond(o: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """cond (B, C + 2, h, w) = [o, I^FR plane, I^NR plane] from o (B, C, h, w) and gains (B, 2): what the sampler's
    ``Policy.condition`` hook builds for a PFJ model."""
    return torch.cat([o, PFJ.planes(gains, o)], dim=1)


# -- fine-tuning ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PFJFinetuneConfig:
    """Hyper-parameters of :func:`finetune` (module docstring). ``lr``: the UNet's (the paper's 5·10⁻⁵, constant:
    ``min_lr_ratio`` 1 and no warm-up, read by :func:`adasr.train.learning_rate`); ``pfj_lr``: φ's."""

    steps: int = 300
    batch_size: int = 16
    crop: int = 64
    lr: float = 5e-5
    pfj_lr: float = 1e-3
    warmup: int = 0
    min_lr_ratio: float = 1.0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    deltas: tuple[int, ...] = DEFAULT_DELTAS
    nr_from: int = NR_FROM
    freeze_unet: bool = False
    pfj: PFJConfig = field(default_factory=PFJConfig)
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 50
    log_every: int = 10
    images: tuple[str, ...] = TRAIN_IMAGES

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.crop < 1:
            raise ValueError("steps must be ≥ 0, batch_size and crop ≥ 1")
        if not self.deltas or any(d < 1 for d in self.deltas):
            raise ValueError(f"deltas must be positive timestep offsets, got {self.deltas}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["deltas"] = list(self.deltas)
        d["images"] = list(self.images)
        d["pfj"] = self.pfj.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PFJFinetuneConfig":
        d = dict(d)
        d["deltas"] = tuple(d["deltas"])
        d["images"] = tuple(d["images"])
        d["pfj"] = PFJConfig.from_dict(d["pfj"])
        return cls(**d)


@dataclass
class TrainingBatch:
    """One step's data, drawn in the same order in both arms: HR crops (B, 3, H, W), t (B,), ε, Δ (B,)."""

    hr: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    delta: torch.Tensor

    def digest(self, previous: str = "") -> str:
        """sha256 chained over the steps: equal digests mean both arms saw the same data stream."""
        h = hashlib.sha256(previous.encode())
        for x in (self.hr, self.t, self.noise, self.delta):
            h.update(x.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def draw_batch(sampler, generator: torch.Generator, batch_size: int, num_train_timesteps: int,
               deltas: Sequence[int] = DEFAULT_DELTAS) -> TrainingBatch:
    """HR crops, then t ~ U{0..T−1} and ε (as :meth:`SRDiffusion.training_loss` draws them), then Δ ∈ ``deltas``."""
    hr = sampler.sample(batch_size, generator)
    t = torch.randint(0, num_train_timesteps, (batch_size,), generator=generator)
    noise = torch.randn(hr.shape, generator=generator)
    d = torch.tensor(list(deltas))[torch.randint(0, len(deltas), (batch_size,), generator=generator)]
    return TrainingBatch(hr, t, noise, d)


@torch.no_grad()
def training_gains(model, regressor, x0: torch.Tensor, up: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   delta: torch.Tensor, *, nr_from: int = NR_FROM, precision: str = "fp32") -> torch.Tensor:
    """(I^FR, I^NR) (B, 2) of training samples (module docstring): the step t' = min(T − 1, t + Δ) → t of the
    current network (cond o, I = 0) with one ε, scored by the frozen ``regressor``. x0 is the diffused variable,
    up = up(LR) in [−1, 1]."""
    from ..runtime import autocast

    T = model.num_train_timesteps
    tp = (t + delta).clamp(max=T - 1)
    a = model.alphas_cumprod.to(x0.device)
    x_t = q_sample(x0, noise, a[t].view(-1, 1, 1, 1))
    x_tp = q_sample(x0, noise, a[tp].view(-1, 1, 1, 1))
    xs, ts = torch.cat([x_t, x_tp]), torch.cat([t, tp])
    with autocast(x0.device, precision):  # type: ignore[arg-type]
        out = model.unet(xs, ts, torch.cat([up, up])).float()
    x0_hat = model.predict_x0(out, xs, ts)
    clip = model.config.clip_range
    if clip is not None:
        x0_hat = x0_hat.clamp(-clip, clip)
    img = ((model.output(x0_hat, torch.cat([up, up])) + 1) / 2).clamp(0, 1)
    B = x0.shape[0]
    f, prev = img[:B], img[B:]
    gains = regressor.predict(f, prev, ((up + 1) / 2).clamp(0, 1), t, T).float().to(x0.device)
    gains[:, 1] = torch.where(t < nr_from, gains[:, 1], torch.zeros_like(gains[:, 1]))
    return torch.where((tp > t)[:, None], gains, torch.zeros_like(gains))


def diffusion_loss(model, batch: TrainingBatch, cond: torch.Tensor | None = None,
                   x0: torch.Tensor | None = None, up: torch.Tensor | None = None) -> torch.Tensor:
    """The model's diffusion loss on ``batch`` (:meth:`~adasr.srmodel.SRDiffusion.training_loss`, with t and ε
    given): ‖model.unet(x_t, t, cond) − target‖², cond default up(LR)."""
    if up is None or x0 is None:
        _, up = make_pair(batch.hr, model.config.scale)
        x0 = model.target(batch.hr, up)
    B = x0.shape[0]
    a = model.alphas_cumprod.to(x0.device)[batch.t].view(B, 1, 1, 1)
    x_t = q_sample(x0, batch.noise, a)
    out = model.unet(x_t, batch.t, up if cond is None else cond)
    tgt = training_target(model.config.prediction_type, x0, batch.noise, a)
    return F.mse_loss(out.float(), tgt)


def _trainable(model, arm: str, cfg: PFJFinetuneConfig) -> list[dict]:
    """Parameter groups: the UNet at ``lr`` (unless frozen), φ at ``pfj_lr`` (PFJ arm)."""
    groups = []
    unet = model.unet.unet if arm == "pfj" else model.unet
    if arm == "pfj" and cfg.freeze_unet:
        unet.requires_grad_(False)
    else:
        groups.append({"params": list(unet.parameters()), "lr": cfg.lr, "name": "unet", "scale": 1.0})
    if arm == "pfj":
        groups.append({"params": list(model.unet.pfj.parameters()), "lr": cfg.pfj_lr, "name": "pfj",
                       "scale": cfg.pfj_lr / cfg.lr})
    return groups


def frozen_parts(arm: str, cfg: PFJFinetuneConfig) -> dict[str, Any]:
    """What trains and what is frozen in ``arm`` (for reports)."""
    trained = ["UNet (all parameters)"] if not (arm == "pfj" and cfg.freeze_unet) else []
    if arm == "pfj":
        trained.append("φ (PFJ CNN)")
    frozen = ["MMLE regressor (gain signal)"] if arm == "pfj" else []
    if arm == "pfj" and cfg.freeze_unet:
        frozen.insert(0, "UNet")
    return {"trained": trained, "frozen": frozen}


def _param_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finetune(model, arm: Arm, config: PFJFinetuneConfig | None = None, *, out: str | Path | None = None,
             regressor=None, device: str | torch.device | None = None, progress: bool = False,
             max_seconds: float | None = None) -> tuple[Any, dict]:
    """Fine-tune (a copy of) ``model`` in ``arm`` (``'pfj'`` or ``'concat'``, module docstring); returns the EMA
    model (eval mode; a :func:`with_pfj` model for ``'pfj'``) and a report.

    ``out``: a run folder with ``checkpoint.pt`` (every ``checkpoint_every`` steps; an interrupted run resumes
    there, loaded with ``weights_only=True``: tensors, numbers and strings only), ``log.jsonl`` and, at the end,
    ``ema.safetensors`` (the EMA state dict of ``model.unet``: the wrapper's for ``'pfj'``) with ``config.json``.
    ``regressor``: the frozen MMLE regressor (``'pfj'``; default the shipped one). ``max_seconds``: stop and
    checkpoint after this wall time (the report then has ``finished`` False).
    """
    from ..runtime import autocast, channels_last_preferred, resolve_device, resolve_precision
    from ..train import ema_decay, learning_rate, update_ema

    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    cfg = config or PFJFinetuneConfig()
    if cfg.freeze_unet and arm != "pfj":
        raise ValueError("freeze_unet leaves nothing to train in the concat arm")
    dev = resolve_device(device)
    precision = resolve_precision(cfg.precision, dev)
    base_digest = _param_digest(model.unet)
    if arm == "pfj":
        if regressor is None:
            from .mmle import load_mmle_regressor

            regressor = load_mmle_regressor()
        regressor = regressor.to(dev).eval().requires_grad_(False)
        with torch.random.fork_rng(devices=[]):  # φ's initial body from the run's seed, not the global state
            torch.manual_seed(cfg.seed)
            phi = PFJ(replace(cfg.pfj, channels=model.unet.config.in_channels - model.unet.config.out_channels))
        net = with_pfj(model, phi).to(dev)
    else:
        net = copy.deepcopy(model).to(dev)
        net.unet.__dict__.pop("_macs_per_mode", None)
    # channels_last where the sampler prefers it (the CPU): the no-grad gain pass runs about twice as fast in NHWC
    fmt = torch.channels_last if channels_last_preferred(dev, precision) else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    net.requires_grad_(True)
    ema = copy.deepcopy(net).requires_grad_(False).eval()
    groups = _trainable(net, arm, cfg)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k not in ("name", "scale")} for g in groups],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    scales = [g["scale"] for g in groups]
    params = [p for g in groups for p in g["params"]]
    gen = torch.Generator().manual_seed(cfg.seed)
    step, stream = 0, ""
    folder = Path(out) if out is not None else None
    ckpt = folder / "checkpoint.pt" if folder is not None else None
    resumed_from = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if ckpt is not None and ckpt.exists():
        from ..train import load_checkpoint  # weights_only=True: a crafted file cannot run code

        ck = load_checkpoint(ckpt, map_location=dev)
        saved = dict(ck["config"])
        saved["steps"] = cfg.steps
        if saved != cfg.to_dict() or ck["arm"] != arm or ck["base"] != base_digest:
            raise ValueError(f"{ckpt} was written by another arm, configuration or base model; use a new folder")
        net.unet.load_state_dict(ck["model"])
        ema.unet.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["generator"])
        step, stream = int(ck["step"]), str(ck["stream"])
        resumed_from = step

    def save_checkpoint() -> None:
        from ..imageio import atomic_write  # an interrupt mid-write leaves the previous checkpoint

        assert ckpt is not None
        state = {"model": net.unet.state_dict(), "ema": ema.unet.state_dict(), "opt": opt.state_dict(),
                 "step": step, "generator": gen.get_state(), "stream": stream, "config": cfg.to_dict(),
                 "arm": arm, "base": base_digest}
        atomic_write(ckpt, lambda fh: torch.save(state, fh))

    from ..data import CropSampler
    from tqdm.auto import tqdm

    sampler = CropSampler.from_names(cfg.images, cfg.crop)
    T = net.num_train_timesteps
    log = open(folder / "log.jsonl", "a") if folder is not None else None
    if log is not None and resumed_from is not None:
        log.write(json.dumps({"event": "resume", "step": resumed_from, "steps_now": cfg.steps}) + "\n")
    losses: list[float] = []
    gain_sums = np.zeros(2)
    gain_abs = np.zeros(2)
    gain_rows = 0
    running, run_n = 0.0, 0
    t0 = time.perf_counter()
    first_step = step
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"finetune {arm}", unit="step")
    while step < cfg.steps:
        lr = learning_rate(step, cfg)  # type: ignore[arg-type]
        for g, s in zip(opt.param_groups, scales):
            g["lr"] = lr * s
        batch = draw_batch(sampler, gen, cfg.batch_size, T, cfg.deltas)
        stream = batch.digest(stream)
        batch = TrainingBatch(batch.hr.to(dev), batch.t.to(dev), batch.noise.to(dev), batch.delta.to(dev))
        _, up = make_pair(batch.hr, net.config.scale)
        x0 = net.target(batch.hr, up)
        cond = up
        if arm == "pfj":
            gains = training_gains(net, regressor, x0, up, batch.t, batch.noise, batch.delta, nr_from=cfg.nr_from,
                                   precision=precision)
            cond = gain_cond(up, gains)
            gn = gains.double().cpu().numpy()
            gain_sums += gn.sum(0)
            gain_abs += np.abs(gn).sum(0)
            gain_rows += gn.shape[0]
        with autocast(dev, precision):
            loss = diffusion_loss(net, batch, cond, x0, up)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        update_ema(ema, net, ema_decay(step, cfg))  # type: ignore[arg-type]
        step += 1
        lv = float(loss.detach())
        losses.append(lv)
        running += lv
        run_n += 1
        bar.update(1)
        if log is not None and (step % cfg.log_every == 0 or step == cfg.steps):
            row: dict[str, Any] = {"step": step, "loss": running / run_n, "lr": lr,
                                   "seconds": round(time.perf_counter() - t0, 1)}
            if arm == "pfj":
                row.update(_coefficient_stats(net.unet, up, gains))
            log.write(json.dumps(row) + "\n")
            log.flush()
            running, run_n = 0.0, 0
        stop = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if ckpt is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps or stop):
            save_checkpoint()
        if stop:
            break
    bar.close()
    wall = time.perf_counter() - t0
    if log is not None:
        log.close()
    finished = step >= cfg.steps
    ema.eval()
    if folder is not None and finished:
        from safetensors.torch import save_file

        save_file({k: v.detach().float().cpu().contiguous() for k, v in ema.unet.state_dict().items()},
                  str(folder / "ema.safetensors"))
        (folder / "config.json").write_text(json.dumps({"arm": arm, "finetune": cfg.to_dict(),
                                                        "model": ema.config.to_dict()}, indent=2))
    done = step - first_step
    report: dict[str, Any] = {
        "arm": arm, "steps": step, "steps_this_run": done, "finished": finished, "resumed_from": resumed_from,
        "seconds": wall, "seconds_per_step": wall / done if done else None,
        "precision": precision, "threads": torch.get_num_threads(), "device": str(dev),
        "loss_first10": float(np.mean(losses[:10])) if losses else None,
        "loss_last50": float(np.mean(losses[-50:])) if losses else None,
        "parts": frozen_parts(arm, cfg),
        "trainable_parameters": {g["name"]: int(sum(p.numel() for p in g["params"])) for g in groups},
        "learning_rates": {g["name"]: cfg.lr * g["scale"] for g in groups},
        "data_stream_sha256": stream, "base_model_sha256": base_digest, "config": cfg.to_dict(),
        "weights": "EMA", "out": str(folder) if folder is not None else None,
    }
    if arm == "pfj" and gain_rows:
        report["training_gains"] = {"mean": (gain_sums / gain_rows).tolist(),
                                    "mean_abs": (gain_abs / gain_rows).tolist(), "rows_this_run": gain_rows}
        report["coefficients_last_batch"] = _coefficient_stats(ema.unet, up, gains)
    return ema, report


@torch.no_grad()
def _coefficient_stats(unet: PFJUNet, o: torch.Tensor, gains: torch.Tensor) -> dict[str, float]:
    """Mean |α − 1| and |β| of φ on a batch (how far PFJ is from the identity), and with I = 0."""
    da, b = unet.pfj.coefficients(o, gains)
    da0, b0 = unet.pfj.coefficients(o, torch.zeros_like(gains))
    return {"alpha_dev": float(da.abs().mean()), "beta_abs": float(b.abs().mean()),
            "alpha_dev_i0": float(da0.abs().mean()), "beta_abs_i0": float(b0.abs().mean()),
            "gain_effect": float(((da - da0) * o.float() + (b - b0)).abs().mean())}


def load_finetuned(folder: str | Path, device: str | torch.device | None = None):
    """The EMA model a finished :func:`finetune` run wrote to ``folder`` (``config.json`` + ``ema.safetensors``)."""
    from safetensors.torch import load_file

    from ..runtime import resolve_device
    from ..srmodel import SRDiffusion, SRDiffusionConfig

    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    model = SRDiffusion(SRDiffusionConfig.from_dict(meta["model"]))
    if meta["arm"] == "pfj":
        pc = PFJFinetuneConfig.from_dict(meta["finetune"]).pfj
        model.unet = PFJUNet(model.unet, PFJ(pc))
    model.unet.load_state_dict(load_file(str(folder / "ema.safetensors")))
    return model.eval().to(resolve_device(device))


# -- evaluation ----------------------------------------------------------------------------------------------------

#: The NR metrics of the evaluation (:mod:`adasr.iqa`; both lower-is-better): BRISQUE (OpenCV, LIVE model) and NIQE
#: (96-pixel blocks, the pristine model's, on the whole 256² image).
NR_EVAL: tuple[str, ...] = ("brisque", "niqe")


def nr_metrics() -> dict[str, Any]:
    """{name: fn(uint8 (H, W, 3)) → float} of :data:`NR_EVAL` from :mod:`adasr.iqa` (whole images, lower better)."""
    from .. import iqa

    def wrap(fn):
        def score(img: np.ndarray) -> float:
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].double() / 255.0
            return float(fn(x)[0])
        return score

    return {"brisque": wrap(iqa.brisque), "niqe": wrap(lambda x: iqa.niqe(x, iqa.NIQE_BLOCK))}


def dtss_available() -> bool:
    """Whether the sampler's policies have the ``condition`` hook (:class:`~adasr.sampling.policies.Policy`)."""
    from ..sampling.policies import Policy

    return callable(getattr(Policy, "condition", None))


def dtss_policy(model, n_max: int = 10, pfj: bool = False):
    """The DTSS policy of :func:`adasr.adaptive.policy.dtss_for_model` (``AdaptiveConfig(n_max=n_max)``: the shipped
    MMLE regressor, τ = 5·10⁻³, linspace) with the PFJ hook on or off (``DynamicStrides.pfj``: its ``condition``
    appends each tile's latest gains)."""
    from .policy import AdaptiveConfig, dtss_for_model

    return dtss_for_model(AdaptiveConfig(n_max=n_max), model, pfj=pfj)


#: Samplers of :func:`evaluate_pfj`: uniform DDIM linspace; DTSS (a PFJ model gets its gains through the hook);
#: DTSS with the hook off (a PFJ model then sees I = 0, as under uniform sampling: isolates what the gains do).
SAMPLERS: tuple[str, ...] = ("uniform", "dtss", "dtss-i0")
METRIC_KEYS: tuple[str, ...] = ("psnr_y", "lpips", *NR_EVAL, "tile_evaluations", "gmacs", "seconds")


@torch.no_grad()
def evaluate_pfj(models: Mapping[str, Any], *, images: Mapping[str, np.ndarray] | None = None, steps: int = 10,
                 tile: int = 128, overlap: int = 32, seed: int = 0, precision: str = "auto",
                 samplers: Sequence[str] = ("uniform", "dtss", "dtss-i0"), device: str | torch.device | None = None,
                 progress: bool = False, log=None) -> dict[str, Any]:
    """Sample every model of ``models`` ({name: SRDiffusion}; a PFJ model is one whose ``unet`` is a
    :class:`PFJUNet`) on the held-out 256² crops (default :func:`adasr.data.heldout_crops`) with each of
    ``samplers`` (:data:`SAMPLERS`): ``uniform`` — DDIM linspace N = ``steps`` through
    :func:`~adasr.sampling.loop.sample_tiles` (a PFJ model sees I = 0: no hook feeds it gains); ``dtss`` — the DTSS
    policy of :func:`dtss_policy` at N = ``steps``, its PFJ hook on for PFJ models (off for the others, whose UNet
    takes 3 condition channels); ``dtss-i0`` — DTSS with the hook off, run for PFJ models only. All with tiles
    ``tile``, overlap ``overlap``, noise seed ``seed``. LR = ``downscale(HR)``, cond = up(LR) (as
    :mod:`adasr.benchmarks.adaptive` builds it). Per image and mean: PSNR-Y (shave 4), LPIPS (AlexNet), BRISQUE and
    NIQE (:func:`nr_metrics`, lower better), tile-evaluations, GMACs (the sampler's count, φ included), seconds.
    ``log``: a callable given one line per run.
    """
    from ..data import downscale, heldout_crops, to_tensor, to_uint8, upscale_bicubic
    from ..lpips import lpips_distance
    from ..metrics import psnr_y
    from ..runtime import prepare_for_inference, resolve_device, resolve_precision
    from ..sampling.loop import sample_tiles
    from ..sampling.policies import UniformDDIM

    bad = [x for x in samplers if x not in SAMPLERS]
    if bad:
        raise ValueError(f"samplers must be among {SAMPLERS}, got {bad}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    imgs = dict(images) if images is not None else heldout_crops(256)
    nr = nr_metrics()
    has_hook = dtss_available()
    out: dict[str, Any] = {"settings": {"steps": steps, "tile": tile, "overlap": overlap, "seed": seed,
                                        "precision": prec, "schedule": "linspace", "images": list(imgs),
                                        "nr_metrics": list(nr), "dtss_hook": has_hook,
                                        "threads": torch.get_num_threads()},
                           "runs": {}, "skipped": []}
    for name, model in models.items():
        is_pfj = isinstance(model.unet, PFJUNet)
        net = prepare_for_inference(copy.deepcopy(model), dev, prec)
        for sampler in samplers:
            if sampler == "dtss-i0" and not is_pfj:
                continue  # the same run as dtss for a model without PFJ
            if sampler != "uniform" and not has_hook:
                out["skipped"].append({"model": name, "sampler": sampler,
                                       "why": "adasr.sampling.policies.Policy has no condition hook"})
                continue
            rows = []
            for img_name, hr in imgs.items():
                lr = downscale(to_tensor(hr), 4).to(dev)
                cond = upscale_bicubic(lr, net.config.scale)
                if sampler == "uniform":
                    pol = UniformDDIM(steps, "linspace")
                else:
                    pol = dtss_policy(net, steps, pfj=is_pfj and sampler == "dtss")
                t0 = time.perf_counter()
                res = sample_tiles(net, cond, policy=pol, tile=tile, overlap=overlap, seed=seed, precision=prec,
                                   progress=progress)
                secs = time.perf_counter() - t0
                sr = to_uint8(net.output(res.x0.to(dev), cond))
                row = {"image": img_name, "psnr_y": psnr_y(sr, hr, shave=4), "lpips": lpips_distance(sr, hr),
                       **{k: fn(sr) for k, fn in nr.items()}, "tile_evaluations": res.cost.tile_evaluations,
                       "gmacs": res.cost.macs / 1e9, "seconds": secs}
                rows.append(row)
                if log is not None:
                    log(f"{name}/{sampler} {img_name}: " + " ".join(
                        f"{k} {row[k]:.4g}" for k in METRIC_KEYS))
            mean = {k: float(np.mean([r[k] for r in rows])) for k in METRIC_KEYS}
            out["runs"][f"{name}/{sampler}"] = {"model": name, "sampler": sampler, "pfj": is_pfj,
                                                "gains_fed": is_pfj and sampler == "dtss", "images": rows,
                                                "mean": mean}
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_pfj`'s result: per image and mean, per model and sampler."""
    lines = [f"{'model/sampler':<24} {'image':<10} {'PSNR-Y':>7} {'LPIPS':>7} {'BRISQUE':>8} {'NIQE':>6} "
             f"{'evals':>6} {'GMACs':>7} {'sec':>6}"]
    for key, run in result["runs"].items():
        for r in [*run["images"], {"image": "mean", **run["mean"]}]:
            lines.append(f"{key:<24} {r['image']:<10} {r['psnr_y']:7.3f} {r['lpips']:7.4f} {r['brisque']:8.2f} "
                         f"{r['niqe']:6.3f} {r['tile_evaluations']:6.1f} {r['gmacs']:7.1f} {r['seconds']:6.1f}")
    return "\n".join(lines)


__all__ = ["ARMS", "DEFAULT_DELTAS", "GAIN_CHANNELS", "NR_FROM", "PFJ", "PFJConfig", "PFJFinetuneConfig", "PFJUNet",
           "TrainingBatch", "diffusion_loss", "draw_batch", "dtss_available", "dtss_policy", "evaluate_pfj",
           "finetune", "format_table", "frozen_parts", "gain_cond", "load_finetuned", "nr_metrics", "SAMPLERS",
           "training_gains", "with_pfj"]
