"""``adasr bench speed``: wall clock to upscale a 128×128 LR image ×4 with the default sampler, default tiling vs
one whole-image tile, both arms in the same run (best of the timed repeats, after one warm-up each)."""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch

from ..data import downscale, to_tensor
from ..runtime import resolve_device, resolve_precision
from .runner import Log, add_device_arguments, machine_info, no_log

#: Target of the foundation issue, checked and printed by ``bench speed``.
TARGET_SPEED_SECONDS = 10.0


def _timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of ``repeats`` successive calls of ``fn``."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def speed(
    *, size: int = 128, steps: int | None = None, device: str | None = None, precision: str = "auto",
    repeats: int = 2, whole: bool = True, log: Log = no_log,
) -> dict[str, Any]:
    """Seconds to upscale a ``size``×``size`` LR crop of astronaut ×4: default tiling vs one whole-image tile.
    ``log`` receives one line per arm."""
    from ..data import center_crop, load_skimage
    from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
    from ..upscaling import DEFAULT_STEPS, load_pretrained, upscale_tensor

    steps = steps or DEFAULT_STEPS
    dev = resolve_device(device)
    model = load_pretrained(device=dev)
    hr = center_crop(load_skimage("astronaut"), 4 * size)
    lr = downscale(to_tensor(hr), 4)
    prec = resolve_precision(precision, dev)
    arms: dict[str, dict[str, Any]] = {}
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
        log(f"{arm}: {min(times):.2f} s (best of {repeats})")
    out: dict[str, Any] = {"benchmark": "speed", "input": [size, size], "output": [4 * size, 4 * size],
                           "steps": steps, "device": str(dev), "precision": prec, "threads": torch.get_num_threads(),
                           "arms": arms, "target_seconds": TARGET_SPEED_SECONDS,
                           "target_met": arms["tiled"]["seconds"] <= TARGET_SPEED_SECONDS}
    if "whole" in arms:
        out["whole_over_tiled"] = arms["whole"]["seconds"] / arms["tiled"]["seconds"]
    out["machine"] = machine_info(dev, prec)
    return out


def format_speed(r: dict[str, Any]) -> str:
    """The per-arm table of :func:`speed` and its target."""
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


format_result = format_speed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-whole", action="store_true", help="skip the (slow) whole-image arm")
    add_device_arguments(p)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    return speed(size=args.size, steps=args.steps, device=args.device, precision=args.precision,
                 repeats=args.repeats, whole=not args.no_whole, log=log)


__all__ = ["TARGET_SPEED_SECONDS", "add_arguments", "format_result", "format_speed", "run_args", "speed"]
