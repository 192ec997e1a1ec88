"""Training loop for the shipped SR model: seeded, resumable, EMA, bf16 autocast, optional data-parallel.

Single process::

    adasr train --out runs/sr_x4 --steps 8000

Data-parallel (gloo on CPU, nccl on GPU; each rank draws its own crops, gradients are all-reduced, so every
replica holds identical weights)::

    torchrun --nproc_per_node=2 -m adasr.train --out runs/sr_x4 --steps 8000

The run folder holds ``checkpoint.pt`` (model, EMA, optimiser, step, generator state; written every
``checkpoint_every`` steps, so an interrupted run resumes where it stopped; only ``--steps`` may differ on resume,
the learning-rate schedule then follows the new total), ``log.jsonl`` and, at the end,
``ema.safetensors`` (the EMA weights, state dict only) with ``config.json``.

Checkpoints hold tensors, numbers, strings and containers of them only, and are read with
:func:`load_checkpoint` (``torch.load(..., weights_only=True)``): a file that pickles anything else (a class, a
callable — code that would run while it is read) is refused without being unpickled.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .acceleration.sparse import SparseConfig, SparseMomentum
from .config import ConfigError, check_numbers
from .data import TRAIN_IMAGES, CropSampler
from .imageio import atomic_write
from .models.edsr import EDSR, EDSRConfig
from .runtime import autocast, resolve_device, resolve_precision
from .srmodel import SRDiffusion, SRDiffusionConfig

ModelConfig = SRDiffusionConfig | EDSRConfig
EDSR_CROP = 128  # HR crop for EDSR training: 32×32 LR patches (EDSR uses 48; smaller is faster on a CPU)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train`. ``batch_size`` is the global batch (split across ranks).

    ``model`` picks what is trained: the residual diffusion model (:class:`SRDiffusionConfig`, its diffusion loss)
    or the EDSR regression CNN (:class:`EDSRConfig`, L1 to HR)."""

    model: ModelConfig = field(default_factory=SRDiffusionConfig)
    steps: int = 8000
    batch_size: int = 16
    crop: int = 64
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 250
    log_every: int = 25
    images: tuple[str, ...] = TRAIN_IMAGES
    #: sparse momentum (:mod:`adasr.acceleration.sparse`): train with this fraction of the weights; None = dense
    sparse: SparseConfig | None = None

    def __post_init__(self) -> None:
        """Every number in range and finite (errors name the field: :class:`~adasr.config.ConfigError`)."""
        check_numbers(self, {"steps": 1, "batch_size": 1, "crop": 8, "warmup": 0, "checkpoint_every": 1,
                             "log_every": 1, "seed": 0},
                      {"lr": (0.0, None), "min_lr_ratio": (0.0, 1.0), "weight_decay": (0.0, None),
                       "grad_clip": (0.0, None), "ema_decay": (0.0, 1.0)}, positive=("lr",))
        if self.seed * 1000 + 999 > 2**64 - 1:  # the crop generator's seed is seed·1000 + rank
            raise ConfigError(f"{{f}} must be at most {(2**64 - 1000) // 1000}, got {self.seed}", f="seed")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"{{f}} must be auto, fp32 or bf16, got {self.precision!r}", f="precision")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["images"] = list(self.images)
        if self.sparse is None:
            d.pop("sparse")  # dense runs keep the dictionary they always had (their checkpoints resume)
        else:
            d["sparse"] = self.sparse.to_dict()
        return d


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``lr·min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def ema_decay(step: int, cfg: TrainConfig) -> float:
    """EMA decay ramp min(ema_decay, (1 + step)/(10 + step)), so early averages are not dominated by the init."""
    return min(cfg.ema_decay, (1 + step) / (10 + step))


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """θ_ema ← decay·θ_ema + (1 − decay)·θ, parameter by parameter (``ema`` and ``model`` of one architecture), in
    place and without autograd: the one EMA update of every training loop (train, PFJ, sampler fine-tuning)."""
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)


def build_model(config: ModelConfig) -> SRDiffusion | EDSR:
    """The module a model configuration describes (both expose ``training_loss(hr, generator, net)``)."""
    if isinstance(config, EDSRConfig):
        return EDSR(config)
    if isinstance(config, SRDiffusionConfig):
        return SRDiffusion(config)
    raise TypeError(f"unknown model configuration {type(config).__name__}")


class CheckpointError(ValueError):
    """A checkpoint file that is refused: it pickles objects other than tensors, numbers, strings and containers
    (never unpickled), or it is truncated or not a checkpoint at all."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint safely: ``torch.load(path, weights_only=True)``.

    PyTorch's weights-only unpickler accepts tensors, numbers, strings, ``None`` and lists / tuples / dicts of
    them — everything :func:`train` (model, EMA, optimiser, generator states, config, sparse masks and history)
    and :func:`adasr.adaptive.pfj.finetune` write. Anything else in the pickle (a class instance, a function such
    as ``os.system`` in a ``__reduce__``) is refused *before* it is created, so a crafted file cannot run code.

    Raises :class:`CheckpointError` (naming the file and what to do) for such a file, for a truncated or corrupt
    one and for one whose top level is not a dict."""
    import pickle

    path = Path(path)
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line),
                     "objects other than tensors")
        raise CheckpointError(f"{path} was refused: it pickles objects other than tensors, numbers and strings "
                              f"({found}), which could run code when read; adasr never unpickles them. Delete it "
                              "or train into a new --out folder") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        first = " ".join(str(exc).split(".")[0].split())
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({first}); delete it or train into a new "
                              "--out folder") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path} holds a {type(ck).__name__}, not a checkpoint dict; delete it or train into "
                              "a new --out folder")
    return ck


def exported_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What is shipped: the UNet of a diffusion model (its schedule is config), the whole network otherwise."""
    net = model.unet if isinstance(model, SRDiffusion) else model
    return {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
) -> Path:
    """Train (or resume) into folder ``out``; returns the path of ``ema.safetensors`` (or of the checkpoint when
    stopped early by ``max_seconds``). Under ``torchrun`` the process group is initialised here."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    out = Path(out)
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world_env > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    rank, world = _dist_info()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the world size {world}")
    precision = resolve_precision(cfg.precision, dev)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model).to(dev)
    ema = build_model(cfg.model).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    sparse = None
    if cfg.sparse is not None:
        if not isinstance(model, SRDiffusion):
            raise ValueError("sparse momentum is implemented for the diffusion UNet (--arch diffusion)")
        # masks drawn from their own generator (same on every rank), then applied to the EMA copy too
        sparse = SparseMomentum(model.unet, opt, cfg.sparse, cfg.steps,
                                generator=torch.Generator().manual_seed(cfg.seed + 7919))
        sparse.apply_mask(ema.unet)
    step = 0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=dev)
        saved = dict(ck["config"])
        if saved.get("steps") != cfg.steps and rank == 0:
            # Only the run length may change on resume (the cosine schedule is then recomputed for the new total).
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps({"event": "resume", "step": int(ck["step"]), "steps_before": saved.get("steps"),
                                    "steps_now": cfg.steps}) + "\n")
        saved["steps"] = cfg.steps
        if saved != cfg.to_dict():
            raise ValueError(f"{ckpt_path} was written with another configuration; use a new --out folder")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["generators"][rank] if rank < len(ck["generators"]) else ck["generators"][0])
        step = int(ck["step"])
        if sparse is not None:
            sparse.load_state_dict(ck["sparse"])
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    sampler = CropSampler.from_names(cfg.images, cfg.crop)
    local_batch = cfg.batch_size // world

    def save_checkpoint() -> None:
        gens = [gen.get_state()]
        if world > 1:
            gathered: list[torch.Tensor] = [torch.empty_like(gens[0]) for _ in range(world)]
            dist.all_gather_object(gathered, gens[0])
            gens = gathered
        if rank == 0:  # atomically: an interrupt (Ctrl-C, SIGTERM) mid-write leaves the previous checkpoint
            state = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                     "generators": gens, "config": cfg.to_dict(),
                     **({"sparse": sparse.state_dict()} if sparse is not None else {})}
            atomic_write(ckpt_path, lambda fh: torch.save(state, fh))

    log = open(out / "log.jsonl", "a") if rank == 0 else None
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="train", unit="step")
    t0 = time.perf_counter()
    running = 0.0
    model.train()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, cfg)
        hr = sampler.sample(local_batch, gen).to(dev)
        with autocast(dev, precision):
            loss = model.training_loss(hr, gen, net)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        record = sparse.step(step + 1) if sparse is not None else None
        update_ema(ema, model, ema_decay(step, cfg))
        if sparse is not None:
            sparse.apply_mask(ema.unet)  # the EMA keeps exactly the current mask (pruned weights leave it at once)
        step += 1
        if record is not None and log is not None:
            log.write(json.dumps({"event": "sparse", **record}) + "\n")
        running += float(loss.detach())
        bar.update(1)
        if step % cfg.log_every == 0:
            if log is not None:
                log.write(json.dumps({"step": step, "loss": running / cfg.log_every, "lr": learning_rate(step - 1, cfg),
                                      "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
                log.flush()
            bar.set_postfix(loss=f"{running / cfg.log_every:.4f}")
            running = 0.0
        stop = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop:
            save_checkpoint()
        if stop:
            break
    bar.close()
    if log is not None:
        log.close()
    digests = [param_digest(model)]
    if world > 1:
        digests = [""] * world
        dist.all_gather_object(digests, param_digest(model))
    if rank == 0:
        (out / "replicas.json").write_text(json.dumps({"world_size": world, "step": step, "sha256": digests}))
        if len(set(digests)) != 1:
            raise RuntimeError(f"data-parallel replicas diverged: {digests}")
    result = ckpt_path
    if step >= cfg.steps and rank == 0:
        state = exported_state(ema)
        result = out / "ema.safetensors"
        save_file(state, str(result))
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    if world > 1:
        dist.barrier()
    return result


def param_digest(model: torch.nn.Module) -> str:
    """sha256 over every parameter's bytes: equal digests mean bit-identical replicas."""
    import hashlib

    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="adasr train", description="Train the ×4 residual diffusion SR model (or, with --arch edsr, the EDSR CNN)."
    )
    d = TrainConfig()
    e = EDSRConfig()
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, final EMA weights); resumes if present")
    p.add_argument("--arch", choices=("diffusion", "edsr"), default="diffusion",
                   help="diffusion: the residual diffusion UNet; edsr: the EDSR regression CNN (L1 loss)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--crop", type=int, default=None,
                   help=f"HR crop size (default {d.crop} for diffusion, {EDSR_CROP} for edsr)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision)
    p.add_argument("--prediction-type", choices=("epsilon", "sample", "v_prediction"), default="sample")
    p.add_argument("--no-residual", action="store_true", help="diffuse HR itself (plain SR3), not HR − up(LR)")
    p.add_argument("--residual-scale", type=float, default=1.0)
    p.add_argument("--channels", type=int, nargs="+", default=list(d.model.unet.channels))
    p.add_argument("--blocks", type=int, default=e.n_resblocks, help="edsr: number of residual blocks")
    p.add_argument("--feats", type=int, default=e.n_feats, help="edsr: feature channels")
    p.add_argument("--sparse-density", type=float, default=None, metavar="D",
                   help="sparse momentum (SMFDM): train the UNet with this fraction of its conv/linear weights "
                        "(e.g. 0.15); prune and regrow every 100 steps")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--device", default=None)
    p.add_argument("--max-seconds", type=float, default=None, help="stop (and checkpoint) after this wall time")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--finetune-through-sampler", action="store_true",
                   help="fine-tune the shipped model through its default sampler chain instead (issue 18; its own "
                        "options: adasr train --finetune-through-sampler -h)")
    return p


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    model: ModelConfig
    if a.arch == "edsr":
        model = EDSRConfig(n_resblocks=a.blocks, n_feats=a.feats)
        crop = a.crop if a.crop is not None else EDSR_CROP
        if crop % model.scale:
            raise ValueError(f"--crop {crop} is not a multiple of the scale {model.scale}")
    else:
        base = SRDiffusionConfig()
        model = base.with_(
            unet=type(base.unet)(**{**base.unet.to_dict(), "channels": tuple(a.channels)}),
            prediction_type=a.prediction_type,
            residual=not a.no_residual,
            residual_scale=a.residual_scale,
        )
        crop = a.crop if a.crop is not None else TrainConfig.crop
    return TrainConfig(model=model, steps=a.steps, batch_size=a.batch_size, crop=crop, lr=a.lr, seed=a.seed,
                       precision=a.precision, checkpoint_every=a.checkpoint_every,
                       sparse=None if a.sparse_density is None else SparseConfig(density=a.sparse_density))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--finetune-through-sampler" in argv:  # fine-tuning through the sampler: its own module and options
        from .sampler_finetune import main as finetune_main

        return finetune_main([a for a in argv if a != "--finetune-through-sampler"])
    parser = build_parser()
    a = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("ADASR_THREADS", torch.get_num_threads())))
    try:
        cfg = config_from_args(a)
    except ConfigError as exc:  # name the options as typed
        parser.error(exc.render(lambda name: "--" + name.replace("_", "-")))
    except ValueError as exc:  # the model's own checks (channels, crop)
        parser.error(str(exc))
    path = train(cfg, a.out, device=a.device, progress=not a.no_progress, max_seconds=a.max_seconds)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {path}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
