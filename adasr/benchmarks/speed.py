"""``adasr bench speed``: wall clock to upscale a 128×128 LR image ×4 — the new default sampler with the default
tiling and as one whole-image tile, and the old default sampler (DDIM-10 ``linspace``) with the default tiling.

All arms in the same run: one warm-up each, then the timed repeats interleaved round-robin (arm 1, arm 2, arm 3,
arm 1, …) so that a slow spell of a shared machine hits every arm alike; each arm's time is the median of its
repeats (the best is recorded too). Printed: the tiled/whole ratio (of the new default, as before the old default
was added) and the old/new ratio (tiled, what switching the default sampler gains)."""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Callable

import torch

from ..data import downscale, to_tensor
from ..runtime import resolve_device, resolve_precision
from .runner import Log, add_device_arguments, add_sampler_arguments, interleaved, machine_info, no_log

#: Target of the foundation issue, checked and printed by ``bench speed`` (the tiled new-default arm).
TARGET_SPEED_SECONDS = 10.0


def speed(
    *, size: int = 128, steps: int | None = None, schedule: Any = None, eta: float | None = None,
    device: str | None = None, precision: str | None = None, repeats: int = 3, whole: bool = True, legacy: bool = True,
    log: Log = no_log,
) -> dict[str, Any]:
    """Seconds to upscale a ``size``×``size`` LR crop of astronaut ×4 (module docstring): the new default
    (``steps`` of ``schedule``, default :data:`~adasr.defaults.DEFAULT_STEPS` of
    :data:`~adasr.defaults.DEFAULT_SCHEDULE`, η = ``eta`` or the schedule's own) tiled (``tiled``) and as one tile
    (``whole``, skipped by ``whole=False``), and the old default DDIM-10 ``linspace`` η = 0 tiled (``legacy``,
    skipped by ``legacy=False``). ``log`` receives one line per arm."""
    from ..data import center_crop, load_skimage
    from ..defaults import DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_TILE, LEGACY_SCHEDULE, LEGACY_STEPS
    from ..upscaling import load_pretrained, upscale_tensor
    from .quality import arm_steps, sampler_label

    schedule = DEFAULT_SCHEDULE if schedule is None else schedule
    steps = arm_steps(steps, schedule)
    dev = resolve_device(device)
    model = load_pretrained(device=dev)
    hr = center_crop(load_skimage("astronaut"), 4 * size)
    lr = downscale(to_tensor(hr), 4)
    prec = resolve_precision(precision, dev)
    configs = [("tiled", steps, schedule, eta, DEFAULT_TILE, DEFAULT_OVERLAP)]
    if whole:
        configs.append(("whole", steps, schedule, eta, 4 * size, 0))
    if legacy:
        configs.append(("legacy", LEGACY_STEPS, LEGACY_SCHEDULE, 0.0, DEFAULT_TILE, DEFAULT_OVERLAP))
    reports: dict[str, list[Any]] = {}
    fns: dict[str, Callable[[], None]] = {}
    for arm, st, sch, et, tile, overlap in configs:
        reports[arm] = []

        def run(arm=arm, st=st, sch=sch, et=et, tile=tile, overlap=overlap) -> None:
            _, rep, _ = upscale_tensor(lr, steps=st, schedule=sch, eta=et, model=model, device=dev, precision=prec,
                                       tile=tile, overlap=overlap)
            reports[arm].append(rep)

        fns[arm] = run
    times = interleaved(fns, repeats)
    arms: dict[str, dict[str, Any]] = {}
    for arm, _, _, _, _, _ in configs:
        rep = reports[arm][-1]
        arms[arm] = {"seconds": statistics.median(times[arm]), "seconds_best": min(times[arm]),
                     "seconds_all": times[arm], "steps": rep.steps, "schedule": rep.schedule, "eta": rep.eta,
                     "tiles": rep.tiles, "tile_size": list(rep.tile_size), "tile_evaluations": rep.tile_evaluations,
                     "macs": rep.macs}
        log(f"{arm} ({sampler_label(arms[arm])}): {arms[arm]['seconds']:.2f} s (median of {repeats})")
    out: dict[str, Any] = {"benchmark": "speed", "input": [size, size], "output": [4 * size, 4 * size],
                           "steps": steps, "schedule": arms["tiled"]["schedule"], "eta": arms["tiled"]["eta"],
                           "device": str(dev), "precision": prec, "threads": torch.get_num_threads(),
                           "repeats": repeats, "arms": arms, "target_seconds": TARGET_SPEED_SECONDS,
                           "target_met": arms["tiled"]["seconds"] <= TARGET_SPEED_SECONDS}
    if "whole" in arms:
        out["whole_over_tiled"] = arms["whole"]["seconds"] / arms["tiled"]["seconds"]
    if "legacy" in arms:
        out["legacy_over_tiled"] = arms["legacy"]["seconds"] / arms["tiled"]["seconds"]
        out["legacy_over_tiled_evaluations"] = arms["legacy"]["tile_evaluations"] / arms["tiled"]["tile_evaluations"]
    out["machine"] = machine_info(dev, prec)
    return out


def format_speed(r: dict[str, Any]) -> str:
    """The per-arm table of :func:`speed`, the whole/tiled and old/new ratios, and the target."""
    from .quality import sampler_label

    lines = [f"speed: {r['input'][0]}×{r['input'][1]} → {r['output'][0]}×{r['output'][1]}, "
             f"{r['device']}/{r['precision']}, {r['threads']} threads "
             f"(median of {r.get('repeats', 'the')} interleaved timed runs, after a warm-up each)",
             f"{'arm':<7} {'sampler':<28} {'tiles':>6} {'tile':>9} {'tile-evals':>10} {'GMACs':>9} {'seconds':>8}"]
    for arm, a in r["arms"].items():
        sampler = sampler_label(a) if "schedule" in a else f"DDIM-{r['steps']}"
        lines.append(f"{arm:<7} {sampler:<28} {a['tiles']:>6} {a['tile_size'][0]:>4}×{a['tile_size'][1]:<4} "
                     f"{a['tile_evaluations']:>10} {a['macs'] / 1e9:9.1f} {a['seconds']:8.2f}")
    if "whole_over_tiled" in r:
        lines.append(f"whole / tiled time ratio: {r['whole_over_tiled']:.2f}×")
    if "legacy_over_tiled" in r:
        lines.append(f"old default / new default time ratio (tiled): {r['legacy_over_tiled']:.2f}× "
                     f"({r['legacy_over_tiled_evaluations']:.2f}× the tile-evaluations)")
    lines.append(f"tiled: {r['arms']['tiled']['seconds']:.2f} s (target ≤ {r['target_seconds']:.0f} s: "
                 f"{'met' if r['target_met'] else 'NOT met'})")
    return "\n".join(lines)


format_result = format_speed


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_sampler_arguments(p, "new-default arms")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each arm, interleaved (median)")
    p.add_argument("--no-whole", action="store_true", help="skip the (slow) whole-image arm")
    add_device_arguments(p)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    return speed(size=args.size, steps=args.steps, schedule=args.schedule, eta=args.eta, device=args.device,
                 precision=args.precision, repeats=args.repeats, whole=not args.no_whole,
                 legacy=not args.no_legacy, log=log)


__all__ = ["TARGET_SPEED_SECONDS", "add_arguments", "format_result", "format_speed", "interleaved", "run_args",
           "speed"]
