"""``adasr bench``: measured comparisons, both arms in one run, printed as tables (and JSON with ``--json``).

* ``quality`` — the shipped model against bicubic on the held-out images (256×256 centre crops of astronaut,
  camera, moon; LR = bicubic ↓4 with antialias): PSNR on Y (BT.601, shave 4), SSIM on Y, LPIPS (AlexNet v0.1).
* ``speed`` — wall clock to upscale a 128×128 image ×4 with the default sampler, tiled vs whole image, same run.
* ``adaptive`` — AdaSR's allocation / early exit / both against uniform DDIM (:mod:`adasr.adaptive.bench`).
* ``quant`` — AdaBM vs fixed-bit quantization of the shipped EDSR, real int8 latency, the UNet's bit mapping
  (:mod:`adasr.quant.bench`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from .data import downscale, heldout_crops, to_tensor, to_uint8, upscale_bicubic
from .runtime import resolve_device, resolve_precision

#: Targets of the foundation issue, checked and printed by ``bench quality`` / ``bench speed``.
TARGET_PSNR_GAIN_DB = 0.3
TARGET_LPIPS = 0.22
TARGET_SPEED_SECONDS = 10.0


def quality(
    *, steps: int | None = None, seed: int = 0, device: str | None = None, precision: str = "auto",
    crop: int = 256, tile: int | None = None, overlap: int | None = None, progress: bool = False,
    keep_images: bool = False,
) -> dict[str, Any]:
    """Per-image and mean PSNR(Y, shave 4) / SSIM(Y, shave 4) / LPIPS of bicubic and of the shipped model.

    ``keep_images=True`` adds ``"sr_images"``: {image name: the measured SR output, uint8 (crop, crop, 3)}, for
    figures (not JSON-serialisable, so ``adasr bench quality --json`` leaves it out)."""
    from .lpips import lpips_distance
    from .metrics import psnr_y, ssim_y
    from .upscaling import DEFAULT_STEPS, load_pretrained, upscale_tensor

    from .defaults import DEFAULT_OVERLAP, DEFAULT_TILE

    steps = steps or DEFAULT_STEPS
    tile = tile or DEFAULT_TILE
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    dev = resolve_device(device)
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
    mean = {arm: {k: float(np.mean([r[arm][k] for r in rows])) for k in ("psnr_y", "ssim_y", "lpips")}
            for arm in ("bicubic", "adasr")}
    gain = mean["adasr"]["psnr_y"] - mean["bicubic"]["psnr_y"]
    result: dict[str, Any] = {
        "benchmark": "quality", "steps": steps, "seed": seed, "crop": crop, "tile": tile, "overlap": overlap,
        "device": str(dev),
        "precision": resolve_precision(precision, dev), "images": rows, "mean": mean,
        "psnr_gain_db": gain,
        "targets": {"psnr_gain_db": TARGET_PSNR_GAIN_DB, "lpips": TARGET_LPIPS,
                    "psnr_met": gain >= TARGET_PSNR_GAIN_DB, "lpips_met": mean["adasr"]["lpips"] <= TARGET_LPIPS},
    }
    if keep_images:
        result["sr_images"] = sr_images
    return result


def regression_quality(name: str = "edsr_x4", crop: int = 256) -> dict[str, Any]:
    """Per-image and mean PSNR(Y, shave 4) / SSIM(Y, shave 4) / LPIPS of the shipped EDSR ``name`` (one forward pass,
    fp32, CPU) and of bicubic, on the held-out ``crop``×``crop`` crops: the PSNR-oriented baseline of the course."""
    from .lpips import lpips_distance
    from .metrics import psnr_y, ssim_y
    from .models.edsr import load_edsr

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
    return {"benchmark": "adasr.bench.regression_quality", "crop": crop, "precision": "fp32", "images": images,
            "mean": mean, "psnr_gain_db": mean["edsr"]["psnr_y"] - mean["bicubic"]["psnr_y"]}


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def speed(
    *, size: int = 128, steps: int | None = None, device: str | None = None, precision: str = "auto",
    repeats: int = 2, whole: bool = True,
) -> dict[str, Any]:
    """Seconds to upscale a ``size``×``size`` LR crop of astronaut ×4: default tiling vs one whole-image tile."""
    from .data import center_crop, load_skimage
    from .upscaling import DEFAULT_STEPS, load_pretrained, upscale_tensor

    steps = steps or DEFAULT_STEPS
    dev = resolve_device(device)
    model = load_pretrained(device=dev)
    hr = center_crop(load_skimage("astronaut"), 4 * size)
    lr = downscale(to_tensor(hr), 4)
    prec = resolve_precision(precision, dev)
    arms: dict[str, dict[str, Any]] = {}
    from .defaults import DEFAULT_OVERLAP, DEFAULT_TILE

    configs = [("tiled", DEFAULT_TILE, DEFAULT_OVERLAP)] + ([("whole", 4 * size, 0)] if whole else [])
    for arm, tile, overlap in configs:
        reports = []

        def run() -> None:
            _, rep, _ = upscale_tensor(lr, steps=steps, model=model, device=dev, precision=prec, tile=tile,
                                       overlap=overlap)
            reports.append(rep)

        run()  # warm-up (allocator, oneDNN kernels)
        times = _timed(run, repeats)
        rep = reports[-1]
        arms[arm] = {"seconds": min(times), "seconds_all": times, "tiles": rep.tiles,
                     "tile_size": list(rep.tile_size), "tile_evaluations": rep.tile_evaluations,
                     "macs": rep.macs}
    out: dict[str, Any] = {"benchmark": "speed", "input": [size, size], "output": [4 * size, 4 * size],
                           "steps": steps, "device": str(dev), "precision": prec, "threads": torch.get_num_threads(),
                           "arms": arms, "target_seconds": TARGET_SPEED_SECONDS,
                           "target_met": arms["tiled"]["seconds"] <= TARGET_SPEED_SECONDS}
    if "whole" in arms:
        out["whole_over_tiled"] = arms["whole"]["seconds"] / arms["tiled"]["seconds"]
    return out


def format_quality(r: dict[str, Any]) -> str:
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


def format_speed(r: dict[str, Any]) -> str:
    lines = [f"speed: {r['input'][0]}×{r['input'][1]} → {r['output'][0]}×{r['output'][1]}, DDIM-{r['steps']}, "
             f"{r['device']}/{r['precision']}, {r['threads']} threads (best of the timed runs, after a warm-up)",
             f"{'arm':<7} {'tiles':>6} {'tile':>9} {'tile-evals':>10} {'GMACs':>9} {'seconds':>8}"]
    for arm, a in r["arms"].items():
        lines.append(f"{arm:<7} {a['tiles']:>6} {a['tile_size'][0]:>4}×{a['tile_size'][1]:<4} "
                     f"{a['tile_evaluations']:>10} {a['macs'] / 1e9:9.1f} {a['seconds']:8.2f}")
    if "whole_over_tiled" in r:
        lines.append(f"whole / tiled time ratio: {r['whole_over_tiled']:.2f}×")
    lines.append(f"tiled: {r['arms']['tiled']['seconds']:.2f} s (target ≤ {r['target_seconds']:.0f} s: "
                 f"{'met' if r['target_met'] else 'NOT met'})")
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="adasr bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="which", required=True)
    q = sub.add_parser("quality", help="shipped model vs bicubic on the held-out images")
    q.add_argument("--steps", type=int, default=None)
    q.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("speed", help="seconds for a 128×128 image ×4, tiled vs whole image")
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--size", type=int, default=128)
    s.add_argument("--repeats", type=int, default=2)
    s.add_argument("--no-whole", action="store_true", help="skip the (slow) whole-image arm")
    from .adaptive.bench import add_arguments as add_adaptive_arguments

    a = sub.add_parser("adaptive", help="AdaSR policies vs uniform DDIM (and equal-budget controls), one run")
    add_adaptive_arguments(a)
    from .quant.bench import add_arguments as add_quant_arguments

    qa = sub.add_parser("quant", help="AdaBM vs fixed-bit quantization of EDSR, real int8 latency, UNet bit mapping")
    add_quant_arguments(qa)
    for sp in (q, s, a):
        sp.add_argument("--device", default=None)
        sp.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    for sp in (q, s, a, qa):
        sp.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    if args.which == "quant":
        from .quant.bench import run as run_quant

        return run_quant(args)
    if args.which == "adaptive":
        from .adaptive.bench import run as run_adaptive

        return run_adaptive(args)
    if args.which == "quality":
        r = quality(steps=args.steps, seed=args.seed, device=args.device, precision=args.precision)
        text = format_quality(r)
    else:
        r = speed(size=args.size, steps=args.steps, device=args.device, precision=args.precision,
                  repeats=args.repeats, whole=not args.no_whole)
        text = format_speed(r)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
