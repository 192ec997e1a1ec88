"""``adasr bench quality``: the shipped diffusion model against bicubic on the held-out images, the old default
sampler beside the new one, and the EDSR baseline.

Held-out images: 256×256 centre crops of astronaut, camera and moon; LR = bicubic ↓4 with antialias. Metrics on the
uint8 outputs against HR: PSNR on Y (BT.601, shave 4), SSIM on Y (shave 4), LPIPS (AlexNet v0.1, lower is better).

Arms, one run, same seed and tiling:

* ``bicubic``;
* ``legacy`` — the old default sampler, :data:`~adasr.defaults.LEGACY_STEPS` steps of
  :data:`~adasr.defaults.LEGACY_SCHEDULE` (DDIM-10 ``linspace``), η = 0;
* ``adasr`` — the new default, :data:`~adasr.defaults.DEFAULT_STEPS` steps of
  :data:`~adasr.defaults.DEFAULT_SCHEDULE` with the schedule's own η (or the ``steps`` / ``schedule`` / ``eta``
  asked for). The targets are checked on this arm, and its images are the ones ``keep_images`` returns.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data import downscale, heldout_crops, to_tensor, to_uint8, upscale_bicubic
from ..runtime import resolve_device, resolve_precision
from .runner import Log, add_device_arguments, add_sampler_arguments, machine_info, no_log

#: Targets of the foundation issue, checked and printed by ``bench quality`` (on the default arm).
TARGET_PSNR_GAIN_DB = 0.3
TARGET_LPIPS = 0.22

#: the metrics of every arm (per image and mean)
METRICS = ("psnr_y", "ssim_y", "lpips")


def score(img: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """The :data:`METRICS` of a uint8 SR image against its HR: PSNR and SSIM on Y (shave 4), LPIPS."""
    from ..lpips import lpips_distance
    from ..metrics import psnr_y, ssim_y

    return {"psnr_y": psnr_y(img, hr, shave=4), "ssim_y": ssim_y(img, hr, shave=4), "lpips": lpips_distance(img, hr)}


def arm_steps(steps: int | None, schedule: Any) -> int:
    """N of a sampler arm: ``steps`` if given, else the length of an explicit schedule, else
    :data:`~adasr.defaults.DEFAULT_STEPS` (what ``adasr upscale`` runs for uniform sampling)."""
    from ..defaults import DEFAULT_STEPS
    from ..diffusion.timesteps import ExplicitSchedule, get_schedule

    if steps is not None:
        return steps
    sched = get_schedule(schedule)
    return len(sched.steps) if isinstance(sched, ExplicitSchedule) else DEFAULT_STEPS


def sampler_label(a: dict[str, Any]) -> str:
    """'10 steps linspace, η 0' for an arm with ``steps``, ``schedule`` ({name, …}) and ``eta``."""
    name = a["schedule"]["name"] if isinstance(a.get("schedule"), dict) else a.get("schedule")
    return f"{a['steps']} steps {name}, η {a['eta']:g}"


def quality(
    *, steps: int | None = None, schedule: Any = None, eta: float | None = None, legacy: bool = True, seed: int = 0,
    device: str | None = None, precision: str | None = None, crop: int = 256, tile: int | None = None,
    overlap: int | None = None, progress: bool = False, keep_images: bool = False, log: Log = no_log,
    model: str | None = None,
) -> dict[str, Any]:
    """Per-image and mean PSNR(Y, shave 4) / SSIM(Y, shave 4) / LPIPS of bicubic, of the old default sampler
    (``legacy``: DDIM-10 ``linspace``, η = 0) and of the new default (``adasr``: ``steps`` of ``schedule``, default
    :data:`~adasr.defaults.DEFAULT_STEPS` of :data:`~adasr.defaults.DEFAULT_SCHEDULE`; η = ``eta``, default the
    schedule's own), tiles ``tile``/``overlap``, one ``seed``; the PSNR gain of each over bicubic and the new
    default against the old one. ``legacy=False`` skips the old default.

    ``result["steps"]``, ``["schedule"]`` ({name, timesteps, eta?}), ``["eta"]``, the per-image ``"seconds"`` /
    ``"tile_evaluations"`` and the targets are those of the ``adasr`` arm; ``result["arms"]`` describes both
    sampler arms (steps, schedule, η, total tile-evaluations and seconds).
    ``progress`` shows the sampler's tqdm bar; ``log`` receives one line per image.
    ``keep_images=True`` adds ``"sr_images"``: {image name: the ``adasr`` arm's SR output, uint8 (crop, crop, 3)},
    for figures (not JSON-serialisable, so ``adasr bench quality --json`` leaves it out). ``model``: the registered
    diffusion weights to measure (default :data:`~adasr.defaults.DEFAULT_MODEL`; ``result["model"]``)."""
    from ..defaults import DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_TILE, LEGACY_SCHEDULE, LEGACY_STEPS
    from ..upscaling import load_pretrained, upscale_tensor

    chosen = steps is not None or schedule is not None or eta is not None
    schedule = DEFAULT_SCHEDULE if schedule is None else schedule
    steps = arm_steps(steps, schedule)
    tile = tile or DEFAULT_TILE
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    weights = DEFAULT_MODEL if model is None else model
    net = load_pretrained(weights, device=dev)
    samplers: dict[str, dict[str, Any]] = {}
    if legacy:
        samplers["legacy"] = {"label": "old default", "steps": LEGACY_STEPS, "schedule": LEGACY_SCHEDULE, "eta": 0.0}
    samplers["adasr"] = {"label": "chosen" if chosen else "new default", "steps": steps, "schedule": schedule,
                         "eta": eta}
    arms: dict[str, dict[str, Any]] = {k: {"label": s["label"], "steps": s["steps"], "tile_evaluations": 0,
                                           "seconds": 0.0} for k, s in samplers.items()}
    rows = []
    sr_images: dict[str, np.ndarray] = {}
    crops = heldout_crops(crop)
    # warm-up (oneDNN kernels, the MAC count of the tile size), so that no arm's seconds carry it
    upscale_tensor(downscale(to_tensor(next(iter(crops.values()))), 4), steps=1, schedule="linspace", model=net,
                   device=dev, precision=precision, tile=tile, overlap=overlap)
    for name, hr in crops.items():
        lr = downscale(to_tensor(hr), 4)
        outputs = {"bicubic": (to_uint8(upscale_bicubic(lr, 4)), None)}
        for arm, s in samplers.items():
            sr_t, rep, _ = upscale_tensor(lr, steps=s["steps"], schedule=s["schedule"], eta=s["eta"], seed=seed,
                                          model=net, device=dev, precision=precision, tile=tile, overlap=overlap,
                                          progress=progress)
            outputs[arm] = (to_uint8(sr_t), rep)
            arms[arm].update(schedule=rep.schedule, eta=rep.eta)
            arms[arm]["tile_evaluations"] += rep.tile_evaluations
            arms[arm]["seconds"] += rep.seconds
        sr_images[name] = outputs["adasr"][0]
        rep = outputs["adasr"][1]
        row: dict[str, Any] = {"image": name, "seconds": round(rep.seconds, 3),
                               "tile_evaluations": rep.tile_evaluations}
        for arm, (img, r) in outputs.items():
            row[arm] = score(img, hr)
            if r is not None:
                row[arm].update(seconds=round(r.seconds, 3), tile_evaluations=r.tile_evaluations)
        rows.append(row)
        old = (f"; old default PSNR-Y {row['legacy']['psnr_y']:.2f}, LPIPS {row['legacy']['lpips']:.3f} "
               f"({row['legacy']['seconds']:.1f} s)") if legacy else ""
        log(f"{name}: PSNR-Y {row['adasr']['psnr_y']:.2f} (bicubic {row['bicubic']['psnr_y']:.2f}), "
            f"LPIPS {row['adasr']['lpips']:.3f} ({rep.seconds:.1f} s){old}")
    mean = {arm: {k: float(np.mean([r[arm][k] for r in rows])) for k in METRICS} for arm in ("bicubic", *samplers)}
    gain = mean["adasr"]["psnr_y"] - mean["bicubic"]["psnr_y"]
    new = arms["adasr"]
    result: dict[str, Any] = {
        "benchmark": "quality", "model": weights, "steps": steps, "schedule": new["schedule"], "eta": new["eta"],
        "seed": seed,
        "crop": crop, "tile": tile, "overlap": overlap, "device": str(dev), "precision": prec, "arms": arms,
        "images": rows, "mean": mean, "psnr_gain_db": gain,
        "targets": {"psnr_gain_db": TARGET_PSNR_GAIN_DB, "lpips": TARGET_LPIPS,
                    "psnr_met": gain >= TARGET_PSNR_GAIN_DB, "lpips_met": mean["adasr"]["lpips"] <= TARGET_LPIPS},
    }
    if legacy:
        old = arms["legacy"]
        result["legacy_psnr_gain_db"] = mean["legacy"]["psnr_y"] - mean["bicubic"]["psnr_y"]
        result["new_vs_legacy"] = {
            "psnr_y_db": mean["adasr"]["psnr_y"] - mean["legacy"]["psnr_y"],
            "ssim_y": mean["adasr"]["ssim_y"] - mean["legacy"]["ssim_y"],
            "lpips": mean["adasr"]["lpips"] - mean["legacy"]["lpips"],
            "eval_ratio": old["tile_evaluations"] / new["tile_evaluations"],
            "wall_ratio": old["seconds"] / new["seconds"]}
    result["machine"] = machine_info(dev, prec)
    if keep_images:
        result["sr_images"] = sr_images
    return result


def regression_quality(name: str = "edsr_x4", crop: int = 256) -> dict[str, Any]:
    """Per-image and mean PSNR(Y, shave 4) / SSIM(Y, shave 4) / LPIPS of the shipped EDSR ``name`` (one forward pass,
    fp32, CPU) and of bicubic, on the held-out ``crop``×``crop`` crops: the PSNR-oriented baseline of the course."""
    from ..models.edsr import load_edsr

    model = load_edsr(name, device="cpu")
    images: dict[str, Any] = {}
    for img_name, hr in heldout_crops(crop).items():
        lr = downscale(to_tensor(hr), 4)
        with torch.no_grad():
            arms = {"bicubic": to_uint8(upscale_bicubic(lr, 4)), "edsr": to_uint8(model.upscale(lr))}
        images[img_name] = {arm: score(img, hr) for arm, img in arms.items()}
    mean = {arm: {k: float(np.mean([r[arm][k] for r in images.values()])) for k in METRICS}
            for arm in ("bicubic", "edsr")}
    return {"benchmark": "adasr.benchmarks.quality.regression_quality", "crop": crop, "precision": "fp32",
            "images": images, "mean": mean, "psnr_gain_db": mean["edsr"]["psnr_y"] - mean["bicubic"]["psnr_y"]}


#: the sampler arms :func:`compare_models` runs every model at by default: the package default (N and schedule of
#: :mod:`adasr.defaults`, with the schedule's η) and DDIM ``linspace`` (η 0) at 10 and 20 steps, the textbook samplers
#: (does a model fine-tuned for the default chain still behave as a diffusion model on another schedule?)
COMPARE_ARMS: tuple[tuple[str, int | None, str], ...] = (("default", None, "default"), ("linspace-10", 10, "linspace"),
                                                         ("linspace-20", 20, "linspace"))


def own_preset(path: str | Path, preset: str, n: int, *, model: str | None = None) -> dict[str, Any]:
    """Preset ``preset`` at N = ``n`` ({"timesteps", "eta", "family", "params", "psnr_y", "lpips", …}) of a schedule
    search written by ``python -m adasr.adaptive.schedule_opt --out FILE``; with ``model``, the file must record that
    it searched those weights (``result["model"]``)."""
    data = json.loads(Path(path).read_text())
    if model is not None and data.get("model") not in (None, model):
        raise ValueError(f"{path} is the schedule search of {data['model']!r}, not of {model!r}")
    try:
        return data["presets"][preset][str(n)]
    except KeyError:
        raise ValueError(f"{path} has no {preset} preset at N={n}") from None


def compare_models(
    models: Sequence[str], *, arms: Sequence[tuple[str, int | None, str]] = COMPARE_ARMS,
    regression: str | None = "edsr_x4", crop: int = 256, full: str | None = "astronaut", seed: int = 0,
    device: str | None = None, precision: str | None = None, tile: int | None = None, overlap: int | None = None,
    presets: Mapping[str, str | Path] | None = None, log: Log = no_log,
) -> dict[str, Any]:
    """Shipped diffusion weights side by side (``adasr bench quality --models A B …``): every model in ``models``
    at every sampler arm of ``arms`` — (label, N or None for :data:`~adasr.defaults.DEFAULT_STEPS`, schedule name,
    ``"default"`` for :data:`~adasr.defaults.DEFAULT_SCHEDULE`) — and, for each model named in ``presets`` (model →
    the JSON of ``python -m adasr.adaptive.schedule_opt --model NAME --out FILE``), at its own schedule search's
    ``balanced`` preset of the default N (arm ``own-balanced-N``, :func:`own_preset`: the best schedule may move
    when the weights change), beside bicubic and the regression CNN
    ``regression`` (one fp32 forward pass), on the held-out ``crop``² centre crops and the whole held-out image
    ``full`` (512²; None: crops only). One seed, one tiling, every arm on the same LR.

    Per image and arm: PSNR-Y, SSIM-Y (shave 4), LPIPS and, for the sampled arms, wall seconds and
    tile-evaluations. ``result["mean"]`` averages the crops only (the issue's target is on the crops);
    ``result["full"]`` repeats the whole image's row. Arm keys are ``"{model} {label}"``."""
    from ..defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS
    from ..models.edsr import load_edsr
    from ..upscaling import load_pretrained, upscale_tensor
    from .adadiffsr import bench_images

    if not models:
        raise ValueError("compare_models needs at least one diffusion model name")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    images = bench_images(crop, full)
    crops = list(heldout_crops(crop))
    nets = {m: load_pretrained(m, device=dev) for m in models}
    edsr = load_edsr(regression, device="cpu") if regression else None
    plan: dict[str, tuple[str, int, Any, float | None]] = {}
    for m in models:
        for label, n, sched in arms:
            plan[f"{m} {label}"] = (m, DEFAULT_STEPS if n is None else n,
                                    DEFAULT_SCHEDULE if sched == "default" else sched, None)
        if presets and m in presets:
            point = own_preset(presets[m], "balanced", DEFAULT_STEPS, model=m)
            plan[f"{m} own-balanced-{DEFAULT_STEPS}"] = (m, DEFAULT_STEPS, list(point["timesteps"]),
                                                         float(point["eta"]))
    sizes = {im.shape[:2]: im for im in images.values()}
    for net in nets.values():  # warm-up at every image size: kernels and MAC tables, outside every arm's seconds
        for im in sizes.values():
            upscale_tensor(downscale(to_tensor(im), 4), steps=1, schedule="linspace", model=net,
                           device=dev, precision=prec, tile=tile, overlap=overlap)
    described: dict[str, dict[str, Any]] = {}
    rows = []
    for name, hr in images.items():
        lr = downscale(to_tensor(hr), 4)
        outputs: dict[str, tuple[np.ndarray, Any]] = {"bicubic": (to_uint8(upscale_bicubic(lr, 4)), None)}
        if edsr is not None:
            with torch.no_grad():
                outputs[regression] = (to_uint8(edsr.upscale(lr)), None)
        for key, (m, n, sched, eta) in plan.items():
            sr, rep, _ = upscale_tensor(lr, steps=n, schedule=sched, eta=eta, seed=seed, model=nets[m], device=dev,
                                        precision=prec, tile=tile, overlap=overlap)
            outputs[key] = (to_uint8(sr), rep)
            described[key] = {"model": m, "steps": n, "schedule": rep.schedule, "eta": rep.eta}
        row: dict[str, Any] = {"image": name}
        for key, (img, rep) in outputs.items():
            row[key] = score(img, hr)
            if rep is not None:
                row[key].update(seconds=round(rep.seconds, 3), tile_evaluations=rep.tile_evaluations)
        rows.append(row)
        log(f"{name}: " + ", ".join(f"{k} {row[k]['psnr_y']:.2f} dB / {row[k]['lpips']:.3f}" for k in plan))
    keys = [k for k in rows[0] if k != "image"]
    on_crops = [r for r in rows if r["image"] in crops]
    mean = {k: {m: float(np.mean([r[k][m] for r in on_crops])) for m in (*METRICS, "seconds")
                if all(m in r[k] for r in on_crops)} for k in keys}
    result: dict[str, Any] = {
        "benchmark": "quality-models", "models": list(models), "regression": regression,
        "presets": {m: str(f) for m, f in (presets or {}).items()},
        "arms": {k: described[k] for k in plan}, "keys": keys, "crop": crop, "full": full, "seed": seed,
        "tile": tile, "overlap": overlap, "device": str(dev), "precision": prec, "images": rows, "mean": mean,
        "full_row": next((r for r in rows if r["image"] not in crops), None),
    }
    result["machine"] = machine_info(dev, prec)
    return result


def format_compare(r: dict[str, Any]) -> str:
    """The table of :func:`compare_models`: one line per image and arm, then the means over the crops."""
    lines = [f"quality of {', '.join(r['models'])}: held-out {r['crop']}² crops"
             + (f" and the whole {r['full']}" if r.get("full") else "") + f", ×4, seed {r['seed']}, "
             f"{r['device']}/{r['precision']}"]
    for k, a in r["arms"].items():
        lines.append(f"  {k}: {a['steps']} steps {a['schedule']['name'] if a['schedule'] else '?'} "
                     f"{a['schedule'].get('timesteps') if a['schedule'] else ''}, η {a['eta']:g}")
    width = max(len(k) for k in r["keys"])
    lines.append(f"{'image':<14} {'arm':<{width}} {'PSNR-Y':>7} {'SSIM-Y':>7} {'LPIPS':>7} {'evals':>6} {'sec':>7}")
    for row in r["images"] + [{"image": "mean (crops)", **r["mean"]}]:
        for k in r["keys"]:
            m = row[k]
            cost = f" {m['tile_evaluations']:>6} {m['seconds']:7.2f}" if "tile_evaluations" in m else (
                f" {'':>6} {m['seconds']:7.2f}" if "seconds" in m else "")
            lines.append(f"{row['image']:<14} {k:<{width}} {m['psnr_y']:7.2f} {m['ssim_y']:7.4f} {m['lpips']:7.4f}"
                         f"{cost}")
    return "\n".join(lines)


def format_quality(r: dict[str, Any]) -> str:
    """The per-image and mean table of :func:`quality` (bicubic, the old default, the new default), the new
    default against the old one, and the targets. Reads results without ``arms`` (before the side-by-side
    arms) too."""
    arms = r.get("arms") or {"adasr": {"label": "adasr", "steps": r["steps"],
                                       "schedule": r.get("schedule") or {"name": "linspace"},
                                       "eta": r.get("eta") or 0.0}}
    lines = [f"quality: held-out {r['crop']}×{r['crop']} centre crops, ×4, seed {r['seed']}, "
             f"tiles {r['tile']}/overlap {r['overlap']}, {r['device']}/{r['precision']}"]
    for k, a in arms.items():
        ts = a["schedule"].get("timesteps") if isinstance(a.get("schedule"), dict) else None
        lines.append(f"  {k:<7} {a['label']}: {sampler_label(a)}" + (f", timesteps {ts}" if ts else ""))
    lines += ["PSNR and SSIM on Y (BT.601), shave 4; LPIPS AlexNet v0.1 (lower is better)",
              f"{'image':<10} {'arm':<8} {'PSNR-Y':>8} {'SSIM-Y':>8} {'LPIPS':>7} {'evals':>6} {'sec':>7}"]
    for row in r["images"] + [{"image": "mean", **r["mean"]}]:
        for arm in ("bicubic", *arms):
            m = row[arm]
            cost = ""
            if arm != "bicubic":
                a = arms[arm]
                evals = m.get("tile_evaluations", a.get("tile_evaluations") if row["image"] == "mean" else None)
                sec = m.get("seconds", a.get("seconds") if row["image"] == "mean" else None)
                if evals is not None and sec is not None:
                    cost = f" {evals:>6} {sec:7.2f}"
            lines.append(f"{row['image']:<10} {arm:<8} {m['psnr_y']:8.2f} {m['ssim_y']:8.4f} {m['lpips']:7.3f}{cost}")
    if "new_vs_legacy" in r:
        d = r["new_vs_legacy"]
        lines.append(f"{arms['adasr']['label']} vs old default: PSNR-Y {d['psnr_y_db']:+.2f} dB, SSIM-Y "
                     f"{d['ssim_y']:+.4f}, LPIPS {d['lpips']:+.4f}; {d['eval_ratio']:.2f}× fewer tile-evaluations, "
                     f"{d['wall_ratio']:.2f}× less wall clock")
        lines.append(f"old default: PSNR gain {r['legacy_psnr_gain_db']:+.2f} dB over bicubic, mean LPIPS "
                     f"{r['mean']['legacy']['lpips']:.3f}")
    t = r["targets"]
    lines.append(f"{arms['adasr']['label']}: PSNR gain {r['psnr_gain_db']:+.2f} dB (target ≥ +{t['psnr_gain_db']}: "
                 f"{'met' if t['psnr_met'] else 'NOT met'}); mean LPIPS {r['mean']['adasr']['lpips']:.3f} "
                 f"(target ≤ {t['lpips']}: {'met' if t['lpips_met'] else 'NOT met'})")
    return "\n".join(lines)



def add_arguments(p: argparse.ArgumentParser) -> None:
    add_sampler_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="compare these shipped diffusion weights instead (e.g. sr_x4 sr_x4_ft), each at the "
                        "default sampler and at DDIM-10 and DDIM-20 linspace, beside bicubic and edsr_x4, on the held-out crops "
                        "and the whole --full image")
    p.add_argument("--full", default="astronaut", help="with --models: the whole held-out image also measured "
                   "('' for none)")
    p.add_argument("--presets", nargs="+", default=[], metavar="MODEL=FILE",
                   help="with --models: also run MODEL at the balanced preset of its own schedule search FILE "
                        "(python -m adasr.adaptive.schedule_opt --model MODEL --out FILE)")
    add_device_arguments(p)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    if args.models:
        return compare_models(args.models, full=args.full or None, seed=args.seed, device=args.device,
                              precision=args.precision, presets=parse_presets(args.presets, args.models), log=log)
    return quality(steps=args.steps, schedule=args.schedule, eta=args.eta, legacy=not args.no_legacy, seed=args.seed,
                   device=args.device, precision=args.precision, log=log)


def parse_presets(specs: Sequence[str], models: Sequence[str]) -> dict[str, str]:
    """``--presets MODEL=FILE …`` → {model: file}; each MODEL must be one of ``--models`` and each FILE exist."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--presets takes MODEL=FILE, got {spec!r}")
        if name not in models:
            raise ValueError(f"--presets names {name!r}, which is not one of --models ({', '.join(models)})")
        if not Path(path).is_file():
            raise ValueError(f"--presets {spec}: {path} does not exist")
        out[name] = path
    return out


def format_result(r: dict[str, Any]) -> str:
    """:func:`format_compare` for a ``--models`` result, else :func:`format_quality`."""
    return format_compare(r) if r.get("benchmark") == "quality-models" else format_quality(r)


__all__ = ["COMPARE_ARMS", "METRICS", "TARGET_LPIPS", "TARGET_PSNR_GAIN_DB", "add_arguments", "arm_steps",
           "compare_models", "format_compare", "format_quality", "own_preset", "parse_presets", "score",
           "format_result", "quality", "regression_quality", "run_args", "sampler_label"]
