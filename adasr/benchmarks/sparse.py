"""``adasr bench sparse``: sparse momentum at density 0.15 against the dense network trained with the same recipe
and step budget, and a structured alternative with as many parameters (fewer channels), in one run (notebook 09).

The three networks come from training runs (``adasr train``; ``--sparse`` may also name shipped weights):

* dense:      ``adasr train --out runs/dense_2000 --steps 2000 --seed 0``
* sparse:     ``adasr train --out runs/sparse15_2000 --steps 2000 --seed 0 --sparse-density 0.15``
* structured: ``adasr train --out runs/narrow_2000 --steps 2000 --seed 0 --channels 16 32 40``

Measured:

1. **Quality** on the held-out 256×256 crops and the full 512×512 astronaut (×4 from bicubic-↓4, 128/32 tiles,
   one seed) at DDIM-10 ``linspace`` (the anchor) and the default optimised schedule (chosen for ``sr_x4``, so
   the same fixed list for all three): PSNR-Y, SSIM-Y, LPIPS;
2. **Storage**: fp16 dense bytes against the sparse formats (values + int32 indices, values + a bitmap) and the
   structured network's fp16 bytes;
3. **Speed on this CPU**: one denoiser call on a batch of 128² tiles with dense kernels on the masked weights (fp32,
   and the sampler's precision), with every conv as im2col + a CSR sparse × dense product (PyTorch's sparse route
   on a CPU, fp32), and the structured network; and one conv layer over densities 1 … 0.01, dense vs CSR (where, if
   anywhere, sparse kernels start to pay). Timings interleaved (:func:`~adasr.benchmarks.runner.interleaved`);
4. **Training**: the loss curves of the three runs and the per-layer densities at each prune/regrow update.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from .runner import Log, add_device_arguments, interleaved, machine_info, no_log

#: Targets of the issue (sparse vs dense at equal training steps).
TARGET_PSNR_DB = 0.2
TARGET_LPIPS = 0.01
ARMS = ("dense", "sparse", "structured")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dense", default="runs/dense_2000", help="the dense run folder")
    p.add_argument("--sparse", default="runs/sparse15_2000", help="the sparse run folder or shipped weights' name")
    p.add_argument("--structured", default="runs/narrow_2000", help="the fewer-channels run folder ('' to skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--full", default="astronaut", help="the full held-out image also run ('' for none)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE)
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    p.add_argument("--batch", type=int, default=9, help="tiles per timed denoiser call (a 256² crop has 9)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per variant")
    p.add_argument("--quick", action="store_true", help="crops only, fewer repeats (for checks)")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also draw the dense/sparse/structured figure (adasr.viz.sparse.sparse_summary_figure)")
    add_device_arguments(p)


def load_run(path: str | Path, device: torch.device):
    """An :class:`~adasr.srmodel.SRDiffusion` from a finished ``adasr train`` run folder (its EMA weights) or, if
    ``path`` is not a folder, the shipped weights of that name (hash-verified)."""
    from safetensors.torch import load_file

    from ..srmodel import SRDiffusion, SRDiffusionConfig
    from ..upscaling import load_pretrained

    p = Path(path)
    if not p.is_dir():
        return load_pretrained(str(path), device=device)
    cfg_file, weights = p / "config.json", p / "ema.safetensors"
    if not cfg_file.exists() or not weights.exists():
        raise FileNotFoundError(f"{p} has no finished run (config.json and ema.safetensors); train it first "
                                "(the commands are in adasr.benchmarks.sparse's docstring)")
    cfg = json.loads(cfg_file.read_text())
    model = SRDiffusion(SRDiffusionConfig.from_dict(cfg["model"]))
    model.unet.load_state_dict(load_file(str(weights)))
    return model.eval().to(device)


def training_log(path: str | Path) -> dict[str, Any]:
    """A run's loss curve ({steps, loss, seconds}) and its sparse updates (each with its per-layer densities)."""
    p = Path(path) / "log.jsonl"
    if not p.exists():
        return {}
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    loss = [r for r in rows if "loss" in r and "event" not in r]
    return {"steps": [r["step"] for r in loss], "loss": [r["loss"] for r in loss],
            "seconds": [r["seconds"] for r in loss],
            "sparse_updates": [{k: r[k] for k in ("step", "prune_rate", "removed", "regrown", "density",
                                                  "layer_density")} for r in rows if r.get("event") == "sparse"]}


def weight_census(unet: torch.nn.Module) -> dict[str, Any]:
    """Parameters, nonzero parameters and per-layer density of the prunable weights of ``unet``."""
    from ..acceleration.sparse import masks_of

    total = sum(p.numel() for p in unet.parameters())
    nonzero = sum(int((p != 0).sum()) for p in unet.parameters())
    masks = masks_of(unet)
    prunable = sum(m.numel() for m in masks.values())
    return {"parameters": total, "nonzero": nonzero, "kept_share": nonzero / total,
            "prunable": prunable, "prunable_density": sum(int(m.sum()) for m in masks.values()) / prunable,
            "layer_density": {k: float(m.float().mean()) for k, m in masks.items()},
            "layer_size": {k: int(m.numel()) for k, m in masks.items()}}


def layer_sweep(densities=(1.0, 0.5, 0.25, 0.15, 0.05, 0.01), channels: int = 64, size: int = 64, batch: int = 9,
                repeats: int = 5, seed: int = 0) -> list[dict[str, float]]:
    """One 3×3 conv (``channels`` → ``channels`` on ``batch`` × size² inputs) with random masks of each density:
    seconds of the dense kernel and of :class:`~adasr.acceleration.sparse.CSRConv2d` (median of ``repeats``)."""
    from ..acceleration.sparse import CSRConv2d

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=g)
    out = []
    for d in densities:
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        with torch.no_grad():
            conv.weight.mul_((torch.rand(conv.weight.shape, generator=g) < d).float())
        csr = CSRConv2d(conv)
        with torch.no_grad():
            t = interleaved({"dense": lambda: conv(x), "csr": lambda: csr(x)}, repeats)
        out.append({"density": d, "dense_s": float(np.median(t["dense"])), "csr_s": float(np.median(t["csr"])),
                    "csr_over_dense": float(np.median(t["csr"]) / np.median(t["dense"]))})
    return out


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    from ..acceleration.sparse import csr_unet, sparse_storage_bytes
    from ..defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS
    from ..runtime import resolve_precision
    from ..sampling.denoiser import Denoiser
    from ..sampling.policies import UniformDDIM
    from .adadiffsr import PolicyArms, bench_images

    t0 = time.perf_counter()
    device = torch.device(args.device or "cpu")
    precision = resolve_precision(args.precision, device)
    paths = {"dense": args.dense, "sparse": args.sparse, "structured": args.structured}
    models = {k: load_run(v, device) for k, v in paths.items() if v}
    images = bench_images(args.crop, None if args.quick else (args.full or None))
    repeats = 2 if args.quick else args.repeats

    census = {k: weight_census(m.unet) for k, m in models.items()}
    for k, c in census.items():
        log(f"{k}: {c['parameters']:,} parameters, {c['nonzero']:,} nonzero ({c['kept_share']:.1%})")

    # 1. quality
    schedules = [("linspace", 10), (DEFAULT_SCHEDULE, DEFAULT_STEPS)]
    quality: dict[str, dict[str, Any]] = {}
    for k, m in models.items():
        arms = PolicyArms(m, images, tile=args.tile, overlap=args.overlap, seed=args.seed, precision=precision,
                          log=log)
        quality[k] = {f"{fam}-{n}": arms.run(f"{k} {fam}-{n}", lambda fam=fam, n=n: UniformDDIM(n, fam))
                      for fam, n in schedules}
    gaps = {}
    if "dense" in quality and "sparse" in quality:
        for s in quality["dense"]:
            d, sp = quality["dense"][s], quality["sparse"][s]
            gaps[s] = {"psnr_y": sp["psnr_y"] - d["psnr_y"], "lpips": sp["lpips"] - d["lpips"],
                       "target_met": bool(sp["psnr_y"] >= d["psnr_y"] - TARGET_PSNR_DB
                                          and sp["lpips"] <= d["lpips"] + TARGET_LPIPS)}

    # 2. storage
    storage = {}
    for k, m in models.items():
        st = {n: v.detach().cpu() for n, v in m.unet.state_dict().items()}
        storage[k] = sparse_storage_bytes(st, value_bytes=2)

    # 3. speed: one denoiser call on a batch of tiles
    g = torch.Generator().manual_seed(args.seed)
    B, T = args.batch, args.tile
    x = torch.randn(B, 3, T, T, generator=g).to(device)
    c = (torch.rand(B, 3, T, T, generator=g) * 2 - 1).to(device)
    t = torch.full((B,), 500, dtype=torch.long, device=device)
    calls: dict[str, Any] = {}
    if "sparse" in models:
        sp = models["sparse"].unet
        calls["masked weights, dense kernels, fp32"] = Denoiser(sp, count_macs=False)
        if precision != "fp32":
            calls[f"masked weights, dense kernels, {precision}"] = Denoiser(sp, precision=precision, count_macs=False)
        calls["CSR sparse kernels, fp32"] = Denoiser(csr_unet(sp), count_macs=False)
    if "structured" in models:
        st_u = models["structured"].unet
        calls["fewer channels, fp32"] = Denoiser(st_u, count_macs=False)
        if precision != "fp32":
            calls[f"fewer channels, {precision}"] = Denoiser(st_u, precision=precision, count_macs=False)
    log(f"timing {len(calls)} variants × {repeats} on {B} tiles of {T}²")
    with torch.no_grad():
        times = interleaved({k: (lambda d=d: d(x, t, c)) for k, d in calls.items()}, repeats)
    speed = {k: {"median_s": float(np.median(v)), "min_s": float(np.min(v)), "max_s": float(np.max(v))}
             for k, v in times.items()}
    base = speed.get("masked weights, dense kernels, fp32", {}).get("median_s")
    if base:
        for v in speed.values():
            v["relative_to_dense_fp32"] = v["median_s"] / base
    for k, v in speed.items():
        log(f"  {k}: {v['median_s'] * 1e3:.0f} ms")
    sweep = layer_sweep(repeats=repeats, seed=args.seed)

    macs = {k: int(Denoiser(m.unet).macs("full", (T, T))) for k, m in models.items()}

    return {"benchmark": "sparse", "machine": machine_info(device, precision), "precision": precision,
            "seed": args.seed, "images": list(images), "runs": paths, "census": census, "quality": quality,
            "sparse_vs_dense": gaps, "storage": storage, "speed": speed, "speed_batch": [B, T, T],
            "layer_sweep": sweep, "macs_per_tile_evaluation": macs,
            "training": {k: training_log(v) for k, v in paths.items() if v and Path(v).is_dir()},
            "targets": {"psnr_db": TARGET_PSNR_DB, "lpips": TARGET_LPIPS},
            "seconds_total": time.perf_counter() - t0}


def format_result(result: Mapping[str, Any]) -> str:
    lines = [f"adasr bench sparse — {result['machine'].get('cpu', '')}, {result['precision']}, images "
             f"{', '.join(result['images'])}"]
    for k, c in result["census"].items():
        s = result["storage"][k]
        lines.append(f"{k:10s} {c['parameters']:>9,} parameters, {c['nonzero']:>9,} nonzero ({c['kept_share']:6.1%}); "
                     f"fp16 dense {s['dense'] / 1e6:.2f} MB, values+indices {s['sparse_coo'] / 1e6:.2f} MB, "
                     f"values+bitmap {s['sparse_bitmap'] / 1e6:.2f} MB")
    lines.append("")
    lines.append(f"{'network':10s} {'schedule':14s} {'PSNR-Y':>7s} {'SSIM-Y':>7s} {'LPIPS':>7s} {'s':>6s}")
    for k, q in result["quality"].items():
        for s, r in q.items():
            lines.append(f"{k:10s} {s:14s} {r['psnr_y']:7.2f} {r['ssim_y']:7.4f} {r['lpips']:7.4f} {r['seconds']:6.1f}")
    for s, g in result["sparse_vs_dense"].items():
        lines.append(f"sparse − dense at {s}: PSNR-Y {g['psnr_y']:+.2f} dB, LPIPS {g['lpips']:+.4f} → target "
                     f"(within {result['targets']['psnr_db']} dB and {result['targets']['lpips']} LPIPS) "
                     f"{'met' if g['target_met'] else 'not met'}")
    lines.append("")
    b = result["speed_batch"]
    lines.append(f"one denoiser call on {b[0]} tiles of {b[1]}²:")
    for k, v in result["speed"].items():
        rel = v.get("relative_to_dense_fp32")
        lines.append(f"  {k:40s} {v['median_s'] * 1e3:7.0f} ms" + (f"  ({rel:.2f}× the dense kernels)" if rel else ""))
    lines.append("one 64→64 3×3 conv, 9 × 64², dense kernel vs CSR:")
    for r in result["layer_sweep"]:
        lines.append(f"  density {r['density']:5.2f}: dense {r['dense_s'] * 1e3:6.1f} ms, CSR {r['csr_s'] * 1e3:7.1f} ms "
                     f"({r['csr_over_dense']:.1f}×)")
    return "\n".join(lines)


__all__ = ["ARMS", "add_arguments", "format_result", "layer_sweep", "load_run", "run_args", "training_log",
           "weight_census"]
