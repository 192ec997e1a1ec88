"""Fine-tuning through the sampler (issue 18, training half): train the model for the few-step chain it is sampled with.

ECDP fine-tunes its model with a perceptual loss back-propagated through the whole probability-flow ODE (adjoint
method, VGG loss at weight 0.5, lr 1e-5, 50 epochs). Here the default sampler is a 2-step DDIM chain of the optimised
``balanced`` schedule, [999, 20], η = 0 (:data:`~adasr.defaults.DEFAULT_SCHEDULE`,
:data:`~adasr.defaults.DEFAULT_STEPS`), so the whole sampler is two UNet calls and is back-propagated through
directly, on whole training crops (no tiles).

The chain (:func:`sampler_chain`), for timesteps t_0 > … > t_{N−1} of the schedule and t_N = −1 (ᾱ = 1), on a batch
of B crops, up = up(LR) (B, 3, H, W)::

    x_{t_0} = z_0 ~ N(0, I)                                 (B, 3, H, W), drawn from the run's generator
    o_i = f_θ(x_{t_i}, t_i, up)                             the UNet, through the sampler's Denoiser
    (x_{t_{i+1}}, x̂0_i) = DDIM(o_i, x_{t_i}; t_i → t_{i+1}, η, z_{i+1})
                                                            Song et al. 2021, eq. 12 (model.ddim_update())
    SR = clamp(up + x̂0_{N−1} / s, −1, 1)                    model.output(x̂0, up)

with z_{i+1} ~ N(0, I) drawn from the same generator after each UNet call when η > 0, in the order
:func:`adasr.sampling.loop.iterate_tiles` draws them, so for one crop and ``seeded_generator(seed)`` the chain *is*
the package's sampler on a single tile (tested to 1e-6 against :func:`adasr.upscaling.upscale_tensor`). Gradients
flow through every UNet call of the chain: x_{t_1} depends on o_0, so the first call is trained through the second.

The loss (:func:`finetune_loss`), per batch of HR crops (B, 3, H, W) in [−1, 1]::

    L = w_lpips · mean_b LPIPS(SR_b, HR_b)  +  w_l1 · mean |SR − HR|  +  w_diff · L_diff
    L_diff = E_{t, ε} ‖f_θ(x_t, t, up) − r0‖²      the diffusion training loss (model.training_loss), the regulariser

LPIPS is the package's differentiable AlexNet LPIPS (:class:`adasr.lpips.LPIPS`, inputs in [−1, 1], frozen; the
gradient flows to SR); L1 anchors colours and PSNR; L_diff keeps f_θ a denoiser at *every* t, not just at the two t
the chain visits, so the model stays usable with other schedules.

**The weights, measured** (:func:`loss_term_gradients` on the shipped ``sr_x4`` at step 0: the default chain, bf16
autocast, 4 seeded batches of 4 training crops of 128²; each term alone, its value and ‖∇_θ term‖₂ over the UNet's
parameters, mean over the batches, range in brackets)::

    term     value                        ‖∇θ term‖
    lpips    0.091  (0.030 … 0.150)       1.01   (0.49 … 1.23)
    l1       0.032  (0.016 … 0.052)       0.44   (0.25 … 0.54)
    diff     0.0034 (0.0006 … 0.0079)     0.017  (0.015 … 0.019)

The diffusion loss starts at its minimum (the shipped model was trained on it), so its gradient is small and mostly
noise at step 0; it grows only as the model leaves that minimum, which is what a regulariser should do. Its weight
is therefore set as an exchange rate, not by matching step-0 gradients: at **w_diff = 10** an LPIPS gain of 0.02
(the issue's target) is worth at most a rise of 0.002 in L_diff (about +60 % of its step-0 value); at step 0 its
weighted gradient (0.17) is a sixth of LPIPS's and 2 % of the total, so it does not dominate. **w_lpips = 1**.
**w_l1 = 20** was chosen by the pilot (below): with w_l1 = 1 (LPIPS's gradient leading, 2.3 : 1) LPIPS fell fast
but PSNR fell 0.7–0.9 dB within 40 steps; the issue asks for PSNR-Y no lower, and 20 was the smallest weight tried
(1, 5, 10, 20) that kept PSNR at or above the base model's. Weighted step-0 gradients are then LPIPS 1.0 : L1 8.8 :
diff 0.17; Adam normalises the update's scale, so the weights set the direction of the step. (ECDP's 0.5 weighs a VGG
loss of another scale against no distortion term; only the ratios carry over.)

**The pilot** (training photos only: 8 seeded validation crops of 128² drawn with another seed than training, the
default chain, bf16, mean LPIPS and PSNR-RGB; base model 0.0751 / 37.73 dB; lr after 10 warm-up steps held
constant; one thread on the shared 2-core machine)::

    40 steps, w_l1 = 1, w_diff 10:   lr 2e-5  0.0553 / 36.81    lr 5e-5  0.0528 / 37.00    lr 1e-4  0.0468 / 36.70
    40 steps, lr 5e-5, w_diff 10:    w_l1 5  0.0567 / 37.43    w_l1 10  0.0573 / 37.46    w_l1 20  0.0665 / 37.84
    lr 5e-5, w_diff 10, EMA weights: w_l1 10: 0.0555 / 37.49 (40), 0.0519 / 37.61 (80), 0.0484 / 37.58 (120 steps)
                                     w_l1 20: 0.0669 / 37.87 (40), 0.0631 / 37.87 (80), 0.0560 / 37.83 (120 steps)

lr 5e-5 gave the best PSNR of the three rates at nearly the best LPIPS, so it is the peak rate (the top of the
1e-5 … 5e-5 range: minutes, not ECDP's 50 epochs), reached after 25 warm-up steps and decayed by a cosine to 10 %.
The diffusion loss on the (identical) training batches was equal in the w_l1 10 and 20 arms to three digits over
120 steps (0.0052, 0.0055, 0.0063 over steps 21–40, 61–80, 101–120; the changes follow the batches, not the
arm): the stronger image loss did not buy its gain with the diffusion loss.
Crops of 128² (the sampler's tile size: the UNet's lowest-level attention and LPIPS's deeper layers see what they
see at inference; 4 × 128² costs the same as 16 × 64²), batch 4, EMA 0.995 (a 200-step horizon). One step is three
UNet forward/backward passes on the batch plus LPIPS: 2.8–3.6 s per step on one thread of the shared machine
(two threads were 2–4× *slower* while another process used one core), so the default 1,300 steps take 60–80 minutes.

Run folder (as :func:`adasr.train.train`): ``checkpoint.pt`` every ``checkpoint_every`` steps (model, EMA, optimiser,
step, generator state, config, the base weights' sha256; written with :func:`~adasr.imageio.atomic_write`, read with
:func:`~adasr.train.load_checkpoint`, ``weights_only=True``), ``log.jsonl`` (per ``log_every`` steps: the three
terms, the loss, lr, seconds), and at the end ``ema.safetensors`` (the EMA UNet's state dict) with ``config.json``.
Resuming refuses a checkpoint of another configuration (only ``steps`` may change) or of other base weights.

CLI: ``adasr train --finetune-through-sampler --out runs/ft [--steps N --lr LR --max-seconds S …]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .config import MAX_SEED, PRECISIONS, ConfigError, check_numbers
from .data import HELDOUT_IMAGES, TRAIN_IMAGES, CropSampler, make_pair
from .defaults import DEFAULT_MODEL, DEFAULT_SCHEDULE, DEFAULT_STEPS
from .diffusion.timesteps import get_schedule
from .lpips import MIN_SIZE as LPIPS_MIN_SIZE
from .lpips import LPIPS
from .runtime import autocast, channels_last_preferred, resolve_device, resolve_precision
from .sampling.denoiser import Denoiser
from .srmodel import SRDiffusion

#: the loss terms, in the order the log and :func:`loss_term_gradients` report them
TERMS: tuple[str, ...] = ("lpips", "l1", "diff")


@dataclass(frozen=True)
class SamplerFinetuneConfig:
    """Hyper-parameters of :func:`finetune_through_sampler` (defaults and their reasons: module docstring).

    ``base``: the shipped diffusion model fine-tuned (registry name); ``schedule`` / ``sampler_steps``: the chain
    trained through (default: the package's default sampler); ``steps``: optimiser steps; ``lr`` with ``warmup``
    linear warm-up steps, then cosine decay to ``lr·min_lr_ratio`` (:func:`adasr.train.learning_rate`);
    ``w_lpips`` / ``w_l1`` / ``w_diff``: the loss weights; ``images``: the training photos (never a held-out one).
    """

    base: str = DEFAULT_MODEL
    schedule: str = DEFAULT_SCHEDULE
    sampler_steps: int = DEFAULT_STEPS
    steps: int = 1300
    batch_size: int = 4
    crop: int = 128
    lr: float = 5e-5
    warmup: int = 25
    min_lr_ratio: float = 0.1
    w_lpips: float = 1.0
    w_l1: float = 20.0
    w_diff: float = 10.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 50
    log_every: int = 1
    images: tuple[str, ...] = TRAIN_IMAGES

    def __post_init__(self) -> None:
        """Every number finite and in range, the schedule resolvable at ``sampler_steps``, no held-out photo
        (errors name the field: :class:`~adasr.config.ConfigError`)."""
        check_numbers(self, {"sampler_steps": 1, "steps": 1, "batch_size": 1, "crop": LPIPS_MIN_SIZE + 1,
                             "warmup": 0, "checkpoint_every": 1, "log_every": 1, "seed": 0},
                      {"lr": (0.0, None), "min_lr_ratio": (0.0, 1.0), "w_lpips": (0.0, None), "w_l1": (0.0, None),
                       "w_diff": (0.0, None), "grad_clip": (0.0, None), "ema_decay": (0.0, 1.0)}, positive=("lr",))
        if self.seed > MAX_SEED:
            raise ConfigError(f"{{f}} must be at most {MAX_SEED}, got {self.seed}", f="seed")
        if self.crop % 4:
            raise ConfigError(f"{{f}} must be a multiple of 4 (the ×4 scale), got {self.crop}", f="crop")
        if self.w_lpips == 0 and self.w_l1 == 0:
            raise ConfigError("{a} and {b} are both 0: nothing is trained through the sampler", a="w_lpips", b="w_l1")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{{f}} must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}, got "
                              f"{self.precision!r}", f="precision")
        if not isinstance(self.base, str) or not self.base:
            raise ConfigError(f"{{f}} must be the name of a shipped diffusion model, got {self.base!r}", f="base")
        if not self.images or any(n in HELDOUT_IMAGES for n in self.images):
            raise ConfigError(f"{{f}} must be training photos only (not {', '.join(HELDOUT_IMAGES)}), got "
                              f"{list(self.images)}", f="images")
        try:
            self.timesteps()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{{s}} {self.schedule!r} at {{n}} {self.sampler_steps}: "
                              f"{str(exc).replace('{', '{{').replace('}', '}}')}", s="schedule",
                              n="sampler_steps") from None

    def timesteps(self, num_train_timesteps: int = 1000) -> list[int]:
        """The chain's descending timesteps: ``get_schedule(schedule).timesteps(sampler_steps)``, as
        :func:`adasr.upscaling.prepare_upscale` resolves them."""
        return get_schedule(self.schedule).timesteps(self.sampler_steps, num_train_timesteps)

    def eta(self) -> float:
        """DDIM's η of the chain: the preset's η at ``sampler_steps`` (``eta_for``), 0 for a schedule without one."""
        return float(get_schedule(self.schedule).eta_for(self.sampler_steps) or 0.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["images"] = list(self.images)
        return d


# ------------------------------------------------------------------------------------------------- the chain
def sampler_chain(model: SRDiffusion, up: torch.Tensor, timesteps: list[int], eta: float,
                  generator: torch.Generator, *, precision: str = "fp32",
                  denoiser: Denoiser | None = None) -> torch.Tensor:
    """The sampler's DDIM chain on whole crops, differentiable: x̂0 (B, 3, H, W) of the last step (module docstring).

    ``up`` (B, 3, H, W) is up(LR); ``timesteps`` descending (the last step goes to ᾱ = 1); noise x_{t_0} and, when
    η > 0, each step's z are drawn from ``generator`` (CPU) in :func:`~adasr.sampling.loop.iterate_tiles`' order.
    The UNet runs through a :class:`~adasr.sampling.denoiser.Denoiser` (``precision`` bf16: autocast; channels_last
    inputs for a channels_last model), outputs float32; the update is ``model.ddim_update()``. No ``no_grad``:
    gradients reach the UNet through every call. Returns the diffused variable (the residual r̂0 for residual
    models): ``model.output(x0, up)`` is the SR image.
    """
    if not timesteps or any(a <= b for a, b in zip(timesteps, timesteps[1:])):
        raise ValueError(f"timesteps must be a non-empty descending list, got {timesteps}")
    den = denoiser or Denoiser(model.unet, precision=precision, count_macs=False)
    update = model.ddim_update()
    B = up.shape[0]
    dev = up.device
    x = torch.randn(up.shape, generator=generator).to(dev)
    x0 = x
    for i, t_i in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        t = torch.full((B,), t_i, dtype=torch.long, device=dev)
        out = den(x, t, up).output
        z = torch.randn(out.shape, generator=generator).to(dev) if eta > 0 else None
        x, x0 = update(out, t, torch.full((B,), t_prev, dtype=torch.long, device=dev), x.float(), eta, z)
    return x0


def finetune_loss(model: SRDiffusion, lpips: LPIPS, hr: torch.Tensor, timesteps: list[int], eta: float,
                  generator: torch.Generator, weights: tuple[float, float, float], *, precision: str = "fp32",
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = w_lpips·mean LPIPS(SR, HR) + w_l1·mean|SR − HR| + w_diff·L_diff on HR crops ``hr`` (B, 3, H, W) in [−1, 1].

    SR = ``model.output(sampler_chain(...), up)``; L_diff = ``model.training_loss(hr, generator)`` (drawn after the
    chain's noise). LPIPS runs in float32 outside autocast. Returns (L, {"lpips", "l1", "diff"}: the unweighted
    terms, scalars with their graphs). LPIPS and L_diff are not computed when their weight is 0 (reported as 0).
    """
    w_lpips, w_l1, w_diff = weights
    _, up = make_pair(hr, model.config.scale)
    x0 = sampler_chain(model, up, timesteps, eta, generator, precision=precision)
    sr = model.output(x0, up)
    zero = sr.new_zeros(())
    terms = {"lpips": lpips(sr.float(), hr.float()).mean() if w_lpips > 0 else zero,
             "l1": (sr - hr).abs().mean()}
    if w_diff > 0:
        with autocast(hr.device, precision):  # type: ignore[arg-type]
            terms["diff"] = model.training_loss(hr, generator)
    else:
        terms["diff"] = zero
    loss = w_lpips * terms["lpips"] + w_l1 * terms["l1"] + w_diff * terms["diff"]
    return loss, terms


def loss_term_gradients(model: SRDiffusion, lpips: LPIPS, hr: torch.Tensor, timesteps: list[int], eta: float,
                        seed: int = 0, *, precision: str = "fp32") -> dict[str, dict[str, float]]:
    """Each term's value and gradient norm ‖∇_θ term‖₂ over the UNet's parameters, computed alone on ``hr``
    (B, 3, H, W) with the same noise (a generator seeded ``seed`` per term): how the weights were chosen.
    Leaves the parameters' ``.grad`` untouched (``torch.autograd.grad``)."""
    params = [p for p in model.unet.parameters() if p.requires_grad]
    result = {}
    for k, name in enumerate(TERMS):
        weights = tuple(1.0 if j == k else 0.0 for j in range(len(TERMS)))
        _, terms = finetune_loss(model, lpips, hr, timesteps, eta, torch.Generator().manual_seed(seed),
                                 weights, precision=precision)  # type: ignore[arg-type]
        grads = torch.autograd.grad(terms[name], params, allow_unused=True)
        norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))
        result[name] = {"value": float(terms[name].detach()), "grad_norm": norm}
    return result


# ------------------------------------------------------------------------------------------------- training
def base_model(name: str, device: torch.device) -> tuple[SRDiffusion, str]:
    """The shipped diffusion model ``name`` (:func:`adasr.upscaling.load_pretrained`) and its registry sha256."""
    from .registry import entry
    from .upscaling import load_pretrained

    return load_pretrained(name, device=device), str(entry(name)["sha256"])


def finetune_through_sampler(cfg: SamplerFinetuneConfig, out: str | Path, *, model: SRDiffusion | None = None,
                             device: str | None = None, progress: bool = True,
                             max_seconds: float | None = None) -> Path:
    """Fine-tune ``cfg.base`` through its sampler into folder ``out`` (or resume there); returns the path of
    ``ema.safetensors``, or of ``checkpoint.pt`` when ``max_seconds`` stopped the run early (checked after every
    step; 0 stops after one step). Seeded and resumable like :func:`adasr.train.train` (module docstring).

    ``model``: fine-tune (a copy of) this :class:`SRDiffusion` instead of the shipped ``cfg.base`` (tests); its
    identity is then the sha256 of its parameters' bytes instead of the registry's file hash.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .imageio import atomic_write
    from .train import ema_decay, exported_state, learning_rate, load_checkpoint, param_digest, update_ema

    out = Path(out)
    dev = resolve_device(device)
    precision = resolve_precision(cfg.precision, dev)
    if model is None:
        net, base_sha = base_model(cfg.base, dev)
    else:
        net, base_sha = copy.deepcopy(model).to(dev), "params:" + param_digest(model)
    if cfg.crop % net.unet.multiple:
        raise ConfigError(f"{{f}} must be a multiple of {net.unet.multiple} (the UNet's), got {cfg.crop}", f="crop")
    timesteps = cfg.timesteps(net.num_train_timesteps)
    eta = cfg.eta()
    # channels_last where the sampler uses it (the CPU): the trained network runs in the layout users sample with
    fmt = torch.channels_last if channels_last_preferred(dev, precision) else torch.contiguous_format
    net = net.to(memory_format=fmt).train().requires_grad_(True)
    ema = copy.deepcopy(net).requires_grad_(False).eval()
    lpips = LPIPS().to(dev)
    opt = torch.optim.AdamW(net.unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    step = 0
    resumed: dict[str, Any] | None = None
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=dev)
        saved = dict(ck["config"])
        steps_before = saved.get("steps")
        saved["steps"] = cfg.steps
        if saved != cfg.to_dict() or ck.get("base_sha256") != base_sha:
            raise ValueError(f"{ckpt_path} was written with another configuration or other base weights; use a new "
                             "--out folder")
        net.unet.load_state_dict(ck["model"])
        ema.unet.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["generator"])
        step = int(ck["step"])
        resumed = {"event": "resume", "step": step, "steps_before": steps_before, "steps_now": cfg.steps}
    log = open(out / "log.jsonl", "a")
    if resumed is not None:
        log.write(json.dumps(resumed) + "\n")
    else:
        log.write(json.dumps({"event": "start", "base": cfg.base, "base_sha256": base_sha, "timesteps": timesteps,
                              "eta": eta, "precision": precision, "threads": torch.get_num_threads()}) + "\n")
    log.flush()

    def save_checkpoint() -> None:  # atomically: an interrupt mid-write leaves the previous checkpoint
        state = {"model": net.unet.state_dict(), "ema": ema.unet.state_dict(), "opt": opt.state_dict(),
                 "step": step, "generator": gen.get_state(), "config": cfg.to_dict(), "base_sha256": base_sha,
                 "timesteps": list(timesteps), "eta": eta}
        atomic_write(ckpt_path, lambda fh: torch.save(state, fh))

    sampler = CropSampler.from_names(cfg.images, cfg.crop)
    weights = (cfg.w_lpips, cfg.w_l1, cfg.w_diff)
    sums = dict.fromkeys(("loss", *TERMS), 0.0)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="finetune through sampler", unit="step")
    t0 = time.perf_counter()
    try:
        while step < cfg.steps:
            lr = learning_rate(step, cfg)  # type: ignore[arg-type]
            for g in opt.param_groups:
                g["lr"] = lr
            hr = sampler.sample(cfg.batch_size, gen).to(dev)
            loss, terms = finetune_loss(net, lpips, hr, timesteps, eta, gen, weights, precision=precision)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.unet.parameters(), cfg.grad_clip)
            opt.step()
            update_ema(ema.unet, net.unet, ema_decay(step, cfg))  # type: ignore[arg-type]
            step += 1
            sums["loss"] += float(loss.detach())
            for k in TERMS:
                sums[k] += float(terms[k].detach())
            bar.update(1)
            if step % cfg.log_every == 0:
                row = {"step": step, **{k: v / cfg.log_every for k, v in sums.items()}, "lr": lr,
                       "seconds": round(time.perf_counter() - t0, 2)}
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{row['loss']:.4f}", lpips=f"{row['lpips']:.4f}")
                sums = dict.fromkeys(sums, 0.0)
            stop = max_seconds is not None and time.perf_counter() - t0 > max_seconds
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop:
                save_checkpoint()
            if stop:
                break
    finally:
        bar.close()
        log.close()
    if step < cfg.steps:
        return ckpt_path
    result = out / "ema.safetensors"
    save_file(exported_state(ema), str(result))
    (out / "config.json").write_text(json.dumps({**cfg.to_dict(), "base_sha256": base_sha, "timesteps": timesteps,
                                                 "eta": eta, "model": net.config.to_dict()}, indent=2))
    return result


def training_log(path: str | Path) -> dict[str, list[float]]:
    """The loss curves of a run folder ``path`` (its ``log.jsonl``): {"step", "loss", "lpips", "l1", "diff", "lr",
    "seconds"} as lists, one entry per logged step; "seconds" is wall clock since the first start (each resume's
    clock continues from the last logged time). Empty lists for a run that has not logged yet."""
    keys = ("step", "loss", *TERMS, "lr", "seconds")
    out: dict[str, list[float]] = {k: [] for k in keys}
    p = Path(path) / "log.jsonl"
    if not p.exists():
        return out
    offset = last = 0.0
    for line in p.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "event" in row:
            offset, last = offset + last, 0.0
            continue
        last = float(row["seconds"])
        for k in keys:
            out[k].append(offset + last if k == "seconds" else row[k])
    return out


# ------------------------------------------------------------------------------------------------- CLI
PROG = "adasr train --finetune-through-sampler"
#: the options, one per config field (``images`` is not an option: the training photos)
_OPTION_FIELDS = tuple(f.name for f in fields(SamplerFinetuneConfig) if f.name != "images")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """``adasr train --finetune-through-sampler``'s options: ``--out``, one per :class:`SamplerFinetuneConfig`
    field (defaults from the dataclass), ``--device``, ``--max-seconds``, ``--no-progress``."""
    p = parser or argparse.ArgumentParser(
        prog=PROG, description="Fine-tune the shipped diffusion model through its default sampler chain "
                               "(LPIPS + L1 on the chain's output, the diffusion loss as a regulariser).")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, final EMA weights); resumes if present")
    d = SamplerFinetuneConfig()
    for name in _OPTION_FIELDS:
        default = getattr(d, name)
        kind = type(default)
        extra: dict[str, Any] = {"choices": PRECISIONS} if name == "precision" else {}
        p.add_argument(_flag(name), type=kind, default=default, help=f"default {default}", **extra)
    p.add_argument("--device", default=None)
    p.add_argument("--max-seconds", type=float, default=None, help="stop (and checkpoint) after this wall time")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(a: argparse.Namespace) -> SamplerFinetuneConfig:
    return SamplerFinetuneConfig(**{name: getattr(a, name) for name in _OPTION_FIELDS})


def main(argv: list[str] | None = None) -> int:
    """``adasr train --finetune-through-sampler …`` (routed here by :func:`adasr.train.main`)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("ADASR_THREADS", torch.get_num_threads())))
    try:
        cfg = config_from_args(a)
    except ConfigError as exc:  # name the options as typed
        parser.error(exc.render(_flag))
    if a.max_seconds is not None and not (math.isfinite(a.max_seconds) and a.max_seconds >= 0):
        parser.error(f"--max-seconds must be a finite number >= 0, got {a.max_seconds}")
    path = finetune_through_sampler(cfg, a.out, device=a.device, progress=not a.no_progress,
                                    max_seconds=a.max_seconds)
    print(f"wrote {path}")
    return 0


__all__ = ["SamplerFinetuneConfig", "TERMS", "base_model", "build_parser", "config_from_args", "finetune_loss",
           "finetune_through_sampler", "loss_term_gradients", "main", "sampler_chain", "training_log"]

if __name__ == "__main__":
    sys.exit(main())
