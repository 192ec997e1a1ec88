"""``adasr bench quality``: the shipped diffusion model against bicubic on the held-out images, and the EDSR baseline.

Held-out images: 256×256 centre crops of astronaut, camera and moon; LR = bicubic ↓4 with antialias. Metrics on the
uint8 outputs against HR: PSNR on Y (BT.601, shave 4), SSIM on Y (shave 4), LPIPS (AlexNet v0.1, lower is better).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from ..data import downscale, heldout_crops, to_tensor, to_uint8, upscale_bicubic
from ..runtime import resolve_device, resolve_precision
from .runner import Log, add_device_arguments, machine_info, no_log

#: Targets of the foundation issue, checked and printed by ``bench quality``.
TARGET_PSNR_GAIN_DB = 0.3
TARGET_LPIPS = 0.22


def quality(
    *, steps: int | None = None, seed: int = 0, device: str | None = None, precision: str = "auto",
    crop: int = 256, tile: int | None = None, overlap: int | None = None, progress: bool = False,
    keep_images: bool = False, log: Log = no_log,
) -> dict[str, Any]:
    """Per-image and mean PSNR(Y, shave 4) / SSIM(Y, shave 4) / LPIPS of bicubic and of the shipped model
    (DDIM-``steps``, η = 0, tiles ``tile``/``overlap``, one ``seed``), and the PSNR gain over bicubic.

    ``progress`` shows the sampler's tqdm bar; ``log`` receives one line per image.
    ``keep_images=True`` adds ``"sr_images"``: {image name: the measured SR output, uint8 (crop, crop, 3)}, for
    figures (not JSON-serialisable, so ``adasr bench quality --json`` leaves it out)."""
    from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
    from ..lpips import lpips_distance
    from ..metrics import psnr_y, ssim_y
    from ..upscaling import DEFAULT_STEPS, load_pretrained, upscale_tensor

    steps = steps or DEFAULT_STEPS
    tile = tile or DEFAULT_TILE
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model = load_pretrained(device=dev)
    rows = []
    sr_images: dict[str, np.ndarray] = {}
    for name, hr in heldout_crops(crop).items():
        lr = downscale(to_tensor(hr), 4)
        bic = to_uint8(upscale_bicubic(lr, 4))
        sr_t, rep, _ = upscale_tensor(lr, steps=steps, seed=seed, model=model, device=dev, precision=precision,
                                      tile=tile, overlap=overlap, progress=progress)
        sr = sr_images[name] = to_uint8(sr_t)
        row: dict[str, Any] = {"image": name, "seconds": round(rep.seconds, 3), "tile_evaluations": rep.tile_evaluations}
        for arm, img in (("bicubic", bic), ("adasr", sr)):
            row[arm] = {"psnr_y": psnr_y(img, hr, shave=4), "ssim_y": ssim_y(img, hr, shave=4),
                        "lpips": lpips_distance(img, hr)}
        rows.append(row)
        log(f"{name}: PSNR-Y {row['adasr']['psnr_y']:.2f} (bicubic {row['bicubic']['psnr_y']:.2f}), "
            f"LPIPS {row['adasr']['lpips']:.3f} ({rep.seconds:.1f} s)")
    mean = {arm: {k: float(np.mean([r[arm][k] for r in rows])) for k in ("psnr_y", "ssim_y", "lpips")}
            for arm in ("bicubic", "adasr")}
    gain = mean["adasr"]["psnr_y"] - mean["bicubic"]["psnr_y"]
    result: dict[str, Any] = {
        "benchmark": "quality", "steps": steps, "seed": seed, "crop": crop, "tile": tile, "overlap": overlap,
        "device": str(dev), "precision": prec, "images": rows, "mean": mean, "psnr_gain_db": gain,
        "targets": {"psnr_gain_db": TARGET_PSNR_GAIN_DB, "lpips": TARGET_LPIPS,
                    "psnr_met": gain >= TARGET_PSNR_GAIN_DB, "lpips_met": mean["adasr"]["lpips"] <= TARGET_LPIPS},
        "machine": machine_info(dev, prec),
    }
    if keep_images:
        result["sr_images"] = sr_images
    return result


def regression_quality(name: str = "edsr_x4", crop: int = 256) -> dict[str, Any]:
    """Per-image and mean PSNR(Y, shave 4) / SSIM(Y, shave 4) / LPIPS of the shipped EDSR ``name`` (one forward pass,
    fp32, CPU) and of bicubic, on the held-out ``crop``×``crop`` crops: the PSNR-oriented baseline of the course."""
    from ..lpips import lpips_distance
    from ..metrics import psnr_y, ssim_y
    from ..models.edsr import load_edsr

    model = load_edsr(name, device="cpu")
    images: dict[str, Any] = {}
    for img_name, hr in heldout_crops(crop).items():
        lr = downscale(to_tensor(hr), 4)
        with torch.no_grad():
            arms = {"bicubic": to_uint8(upscale_bicubic(lr, 4)), "edsr": to_uint8(model.upscale(lr))}
        images[img_name] = {arm: {"psnr_y": psnr_y(img, hr, shave=4), "ssim_y": ssim_y(img, hr, shave=4),
                                  "lpips": lpips_distance(img, hr)} for arm, img in arms.items()}
    mean = {arm: {k: float(np.mean([r[arm][k] for r in images.values()])) for k in ("psnr_y", "ssim_y", "lpips")}
            for arm in ("bicubic", "edsr")}
    return {"benchmark": "adasr.benchmarks.quality.regression_quality", "crop": crop, "precision": "fp32",
            "images": images, "mean": mean, "psnr_gain_db": mean["edsr"]["psnr_y"] - mean["bicubic"]["psnr_y"]}


def format_quality(r: dict[str, Any]) -> str:
    """The per-image and mean table of :func:`quality`, and its targets."""
    lines = [f"quality: held-out {r['crop']}×{r['crop']} centre crops, ×4, DDIM-{r['steps']} (η=0, seed {r['seed']}), "
             f"tiles {r['tile']}/overlap {r['overlap']}, {r['device']}/{r['precision']}",
             "PSNR and SSIM on Y (BT.601), shave 4; LPIPS AlexNet v0.1 (lower is better)",
             f"{'image':<10} {'arm':<8} {'PSNR-Y':>8} {'SSIM-Y':>8} {'LPIPS':>7}"]
    for row in r["images"] + [{"image": "mean", **r["mean"]}]:
        for arm in ("bicubic", "adasr"):
            m = row[arm]
            lines.append(f"{row['image']:<10} {arm:<8} {m['psnr_y']:8.2f} {m['ssim_y']:8.4f} {m['lpips']:7.3f}")
    t = r["targets"]
    lines.append(f"PSNR gain {r['psnr_gain_db']:+.2f} dB (target ≥ +{t['psnr_gain_db']}: "
                 f"{'met' if t['psnr_met'] else 'NOT met'}); mean LPIPS {r['mean']['adasr']['lpips']:.3f} "
                 f"(target ≤ {t['lpips']}: {'met' if t['lpips_met'] else 'NOT met'})")
    return "\n".join(lines)


format_result = format_quality


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    add_device_arguments(p)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    return quality(steps=args.steps, seed=args.seed, device=args.device, precision=args.precision, log=log)


__all__ = ["TARGET_LPIPS", "TARGET_PSNR_GAIN_DB", "add_arguments", "format_quality", "format_result", "quality",
           "regression_quality", "run_args"]
