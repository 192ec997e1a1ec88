"""``adasr bench schedules``: the optimised sampling schedules against ``linspace``, at the same N, in one run.

What is measured, side by side with one model load:

1. **Quality per step count.** For N = 1 … ``max_steps``, ``linspace`` and each optimised preset of
   :mod:`adasr.adaptive.schedule_opt` (``perceptual``, ``balanced``, ``fidelity``; chosen on crops of the *training*
   photos) upscale the held-out images ×4: the 256×256 centre crops of astronaut, camera and moon, and one full
   512×512 held-out image (astronaut; LR = bicubic ↓4 with antialias, 128×128). Metrics on the uint8 output against
   HR: PSNR on Y (BT.601, shave 4), SSIM on Y (shave 4), LPIPS (AlexNet v0.1, lower is better), per image and the
   mean over the crops.
2. **The equal standard.** Every schedule is compared with ``linspace`` *at the same N* (the same number of UNet
   evaluations per tile), and all of them with ``linspace`` N = 20 (``--reference-steps``), the expensive reference
   a few-step schedule has to beat. Every run is a plain :func:`adasr.upscaling.upscale_tensor` call: uniform
   policy, default tiling (128/32), the schedule's own η (``eta=None``: a preset carries the η it was chosen with,
   ``linspace`` runs deterministic DDIM, η = 0).
3. **Identical runs once.** Presets often coincide (at N = 1 every schedule is [999]); a (timesteps, η) pair is
   sampled once per seed and the other points reuse its numbers. The result records which point computed and
   which reused (``computed_by``, ``reused_from``, ``dedupe``).
4. **Seed spread.** The first of ``--seeds`` runs for every point; the other seeds only for N ≤
   ``--spread-max-steps`` and for the reference points (``linspace`` N = 20, the old default ``linspace`` N = 10 and
   the new default), because the machine is slow (a 128×128 tile-evaluation takes ≈ 0.1 s on two cores). Each point
   records the seeds it ran; its summary is the mean over those seeds, plus min/max/std (sample std, ddof 1) where
   more than one ran. Two points are compared on the seeds *both* ran (the mean over those; the first seed alone
   when that is all they share), and the comparison says which.
5. **Wall clock of the defaults.** 128×128 → 512×512 (the astronaut LR), the old default
   (:data:`~adasr.defaults.LEGACY_STEPS` steps of :data:`~adasr.defaults.LEGACY_SCHEDULE`, η = 0) against the new
   one (:data:`~adasr.defaults.DEFAULT_STEPS` of :data:`~adasr.defaults.DEFAULT_SCHEDULE`, its own η): one warm-up
   each, then ``--repeats`` alternating runs (old, new, old, new, …), the median seconds of each and the ratio
   old/new, all in the same process.
6. **Targets** (printed as met / NOT met, stored in the JSON): (a) some optimised preset with N ≤ 4 beats
   ``linspace`` N = 20 on both LPIPS (lower) and PSNR-Y (higher), on the crops mean *and* on the 512×512 image;
   (b) the new default is at least 2.5× faster than the old one (ratio of medians ≥ 2.5). Also stated: whether the
   new default beats the old default on both metrics on the crops and on the 512×512 image.

Cost of a point at N steps and one seed: N × (3 × 9 + 25) = 52·N tile-evaluations (a 256² crop is 9 tiles of 128
with overlap 32, the 512² image 25). The figure (``--figure``) is drawn by the runner from the returned data
(:func:`adasr.viz.schedules.schedule_comparison_figure`); this module only measures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import int_at_least
from ..data import downscale, heldout_crops, load_skimage, to_tensor, to_uint8
from ..runtime import resolve_device, resolve_precision
from .runner import Log, add_device_arguments, machine_info, no_log

#: the schedules of the side-by-side comparison (``--schedules``)
DEFAULT_SCHEDULES: tuple[str, ...] = ("linspace", "perceptual", "balanced", "fidelity")
#: the expensive reference: ``linspace`` at this many steps (``--reference-steps``)
REFERENCE_STEPS = 20
REFERENCE_SCHEDULE = "linspace"
#: target (a): an optimised preset with at most this many steps beats the reference on both metrics
TARGET_MAX_STEPS = 4
#: target (b): the new default is at least this many times faster than the old one (median wall clock)
TARGET_SPEEDUP = 2.5
#: the full held-out image (its whole 512×512) and the upscaling factor
FULL_IMAGE = "astronaut"
SCALE = 4
METRICS: tuple[str, ...] = ("psnr_y", "ssim_y", "lpips")
SETS: tuple[str, ...] = ("crops", "full")


# ------------------------------------------------------------------------------------------------------ the plan
def _label(schedule: str, n: int) -> str:
    return f"{schedule} N={n}"


def _resolve(spec: Any) -> Any:
    """The :class:`~adasr.diffusion.timesteps.Schedule` of a name, list or Schedule, with a clear error when a
    preset cannot be loaded (``adasr/weights/schedules.json`` not built yet)."""
    from ..diffusion.timesteps import SCHEDULE_PRESETS, get_schedule
    from ..registry import WeightsError

    try:
        return get_schedule(spec)
    except WeightsError as exc:
        hint = (" (the optimised presets are built by `python -m adasr.adaptive.schedule_opt`; meanwhile run "
                "--schedules linspace trailing)") if spec in SCHEDULE_PRESETS else ""
        raise ValueError(f"schedule {spec!r} cannot be loaded: {exc}{hint}") from None


def _name(spec: Any, sched: Any) -> str:
    return spec if isinstance(spec, str) else sched.name


def plan_points(
    schedules: Sequence[Any], *, max_steps: int, seeds: Sequence[int], spread_max_steps: int,
    reference: tuple[Any, int], old_default: tuple[Any, int], new_default: tuple[Any, int],
    num_train_timesteps: int = 1000,
) -> list[dict[str, Any]]:
    """The points to measure, each {"label", "schedule", "n", "timesteps", "eta", "roles", "seeds", "run_key"}.

    ``schedules`` × N = 1 … ``max_steps`` (role ``grid``; an explicit list only at its own length), then the
    ``reference``, ``old default`` and ``new default`` (schedule, N) pairs (a pair already in the grid gains the
    role). ``eta`` is the η :func:`~adasr.upscaling.upscale_tensor` runs with when given ``eta=None`` (the
    schedule's own, else 0). The first seed runs everywhere; the others where N ≤ ``spread_max_steps`` and at the
    three reference roles. ``run_key`` is "timesteps|η": points with equal keys are one computation."""
    from ..diffusion.timesteps import ExplicitSchedule

    points: dict[str, dict[str, Any]] = {}
    resolved: dict[str, tuple[Any, str]] = {}

    def resolve(spec: Any) -> tuple[Any, str]:
        key = repr(spec)
        if key not in resolved:
            sched = _resolve(spec)
            resolved[key] = (sched, _name(spec, sched))
        return resolved[key]

    def add(spec: Any, n: int, role: str) -> None:
        sched, name = resolve(spec)
        label = _label(name, n)
        if label in points:
            if role not in points[label]["roles"]:
                points[label]["roles"].append(role)
            return
        try:
            ts = sched.timesteps(n, num_train_timesteps)
        except ValueError as exc:
            raise ValueError(f"schedule {name!r} at N={n}: {exc}") from None
        eta = sched.eta_for(n)
        eta = 0.0 if eta is None else float(eta)
        points[label] = {"label": label, "schedule": name, "n": n, "timesteps": [int(t) for t in ts], "eta": eta,
                         "roles": [role], "spec": sched,
                         "run_key": ",".join(str(int(t)) for t in ts) + f"|eta={eta!r}"}

    for n in range(1, max_steps + 1):
        for spec in schedules:
            sched, _ = resolve(spec)
            if isinstance(sched, ExplicitSchedule) and len(sched.steps) != n:
                continue
            add(spec, n, "grid")
    for role, (spec, n) in (("reference", reference), ("old default", old_default), ("new default", new_default)):
        add(spec, n, role)
    first, extra = list(seeds[:1]), list(seeds[1:])
    for p in points.values():
        spread = p["n"] <= spread_max_steps or any(r != "grid" for r in p["roles"])
        p["seeds"] = first + (extra if spread else [])
    return list(points.values())


def tiles_per_image(size: tuple[int, int], tile: int, overlap: int) -> int:
    """How many tiles the sampler cuts an output of ``size`` (H, W) into (:class:`~adasr.sampling.tiles.TileGrid`)."""
    from ..sampling.tiles import TileGrid

    return len(TileGrid.cover(size[0], size[1], tile, overlap))


# ------------------------------------------------------------------------------------------------------ measuring
def _metrics(sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """PSNR-Y / SSIM-Y (shave 4) and LPIPS of uint8 (H, W, 3) ``sr`` against ``hr``."""
    from ..lpips import lpips_distance
    from ..metrics import psnr_y, ssim_y

    return {"psnr_y": psnr_y(sr, hr, shave=4), "ssim_y": ssim_y(sr, hr, shave=4), "lpips": lpips_distance(sr, hr)}


def _mean(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in rows.values()])) for k in METRICS}


def measure_point(point: Mapping[str, Any], seed: int, images: Mapping[str, Mapping[str, np.ndarray]],
                  lrs: Mapping[str, Mapping[str, Any]], *, model: Any, device: Any, precision: str, tile: int,
                  overlap: int) -> dict[str, Any]:
    """Upscale every image of every set with the point's schedule at its N (``eta=None``: its own η) and ``seed``.

    ``images``: {set: {name: HR uint8 (H, W, 3)}}; ``lrs``: {set: {name: LR (1, 3, H/4, W/4) in [−1, 1]}}.
    Returns {set: {"images": {name: {psnr_y, ssim_y, lpips}}, "mean": {…}}, "seconds", "tile_evaluations"}.
    Raises RuntimeError if the sampler ran other timesteps or another η than the plan (the dedupe relies on it)."""
    from ..upscaling import upscale_tensor

    out: dict[str, Any] = {"seconds": 0.0, "tile_evaluations": 0}
    for set_name, hrs in images.items():
        rows = {}
        for name, hr in hrs.items():
            sr, rep, _ = upscale_tensor(lrs[set_name][name], steps=point["n"], schedule=point["spec"], seed=seed,
                                        eta=None, model=model, device=device, precision=precision, tile=tile,
                                        overlap=overlap)
            if list(rep.schedule["timesteps"]) != point["timesteps"] or float(rep.eta) != point["eta"]:
                raise RuntimeError(f"{point['label']}: the sampler ran {rep.schedule['timesteps']} η={rep.eta}, "
                                   f"the plan says {point['timesteps']} η={point['eta']}")
            rows[name] = _metrics(to_uint8(sr), hr)
            out["seconds"] += rep.seconds
            out["tile_evaluations"] += rep.tile_evaluations
        out[set_name] = {"images": rows, "mean": _mean(rows)}
    out["seconds"] = round(out["seconds"], 3)
    return out


def summarise(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {metric: {"mean"[, "min", "max", "std"]}}} over the seeds' set means (spread only with ≥ 2 seeds;
    std is the sample standard deviation, ddof 1)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for set_name in SETS:
        out[set_name] = {}
        for k in METRICS:
            v = [r[set_name]["mean"][k] for r in per_seed]
            s: dict[str, float] = {"mean": float(np.mean(v))}
            if len(v) > 1:
                s.update(min=float(min(v)), max=float(max(v)), std=float(np.std(v, ddof=1)))
            out[set_name][k] = s
    return out


def image_means(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {image: {metric: mean over the seeds}}} (per image, where :func:`summarise` has the set means)."""
    return {set_name: {name: {k: float(np.mean([r[set_name]["images"][name][k] for r in per_seed])) for k in METRICS}
                       for name in per_seed[0][set_name]["images"]} for set_name in SETS}


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Point ``a`` against point ``b`` on the seeds both ran: per set the mean PSNR-Y / LPIPS of each, the
    differences a − b and whether ``a`` beats ``b`` on both (higher PSNR-Y *and* lower LPIPS)."""
    common = [s for s in a["seeds"] if s in b["seeds"]]
    out: dict[str, Any] = {"point": a["label"], "against": b["label"], "seeds": common,
                           "basis": (f"seed {common[0]}" if len(common) == 1
                                     else "mean over seeds " + ", ".join(map(str, common)))}
    beats_all = True
    for set_name in SETS:
        def mean(p: Mapping[str, Any], k: str) -> float:
            return float(np.mean([r[set_name]["mean"][k] for r in p["per_seed"] if r["seed"] in common]))

        pa, pb, la, lb = mean(a, "psnr_y"), mean(b, "psnr_y"), mean(a, "lpips"), mean(b, "lpips")
        beats = pa > pb and la < lb
        beats_all &= beats
        out[set_name] = {"psnr_y": pa, "psnr_y_other": pb, "lpips": la, "lpips_other": lb,
                         "psnr_y_delta": pa - pb, "lpips_delta": la - lb, "beats": beats}
    out["beats"] = beats_all
    return out


def time_defaults(lr: Any, old: tuple[Any, int], new: tuple[Any, int], *, repeats: int, seed: int, model: Any,
                  device: Any, precision: str, tile: int, overlap: int, log: Log = no_log) -> dict[str, Any]:
    """Wall clock of ``upscale_tensor(lr)`` (LR (1, 3, h, w)) with the old default (``old`` = (schedule, N), η = 0)
    and the new one (``new``, its own η): one warm-up each, then ``repeats`` alternating runs; medians and
    old/new."""
    from ..upscaling import upscale_tensor

    arms = {"old": {"schedule": old[0], "steps": old[1], "eta": 0.0},
            "new": {"schedule": new[0], "steps": new[1], "eta": None}}
    out: dict[str, Any] = {"input": list(lr.shape[-2:]), "repeats": repeats, "seed": seed,
                           "order": f"one warm-up each (old, new), then {repeats}× old, new alternating"}

    def once(arm: str) -> tuple[float, Any]:
        t0 = time.perf_counter()
        img, rep, _ = upscale_tensor(lr, seed=seed, model=model, device=device, precision=precision, tile=tile,
                                     overlap=overlap, **arms[arm])
        dt = time.perf_counter() - t0
        out["output"] = list(img.shape[-2:])
        return dt, rep

    for arm in arms:
        dt, rep = once(arm)
        sched = rep.schedule or {}
        out[arm] = {"schedule": sched.get("name", str(arms[arm]["schedule"])), "steps": arms[arm]["steps"],
                    "timesteps": sched.get("timesteps"), "eta": rep.eta, "tile_evaluations": rep.tile_evaluations,
                    "warmup_seconds": round(dt, 3), "seconds": []}
        log(f"timing warm-up {arm} default ({out[arm]['schedule']} N={arms[arm]['steps']}): {dt:.2f} s")
    for r in range(repeats):
        for arm in arms:
            dt, _ = once(arm)
            out[arm]["seconds"].append(round(dt, 3))
            log(f"timing {arm} default run {r + 1}/{repeats}: {dt:.2f} s")
    for arm in arms:
        out[arm]["median_seconds"] = float(statistics.median(out[arm]["seconds"]))
    out["ratio"] = out["old"]["median_seconds"] / out["new"]["median_seconds"]
    out["tile_evaluation_ratio"] = out["old"]["tile_evaluations"] / out["new"]["tile_evaluations"]
    return out


# ------------------------------------------------------------------------------------------------------ the benchmark
def check_options(*, schedules: Sequence[Any], max_steps: int, seeds: Sequence[int], spread_max_steps: int,
                  reference_steps: int, repeats: int) -> None:
    """Raise ValueError for options :func:`compare_schedules` cannot run (bad counts or seeds, a schedule that
    cannot be loaded or has no list at some N), before anything is loaded or sampled."""
    for name, v, lo in (("max_steps", max_steps, 1), ("spread_max_steps", spread_max_steps, 0),
                        ("reference_steps", reference_steps, 1), ("repeats", repeats, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {list(seeds)!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    if not schedules:
        raise ValueError("need at least one schedule")
    names = [repr(x) for x in schedules]
    if len(set(names)) != len(names):
        raise ValueError(f"schedules must be distinct, got {list(schedules)}")


def compare_schedules(
    *, schedules: Sequence[Any] = DEFAULT_SCHEDULES, max_steps: int = 10, seeds: Sequence[int] = (0, 1, 2),
    spread_max_steps: int = 4, reference_steps: int = REFERENCE_STEPS, repeats: int = 3, timing: bool = True,
    crop: int = 256, full_image: str = FULL_IMAGE, old_default: tuple[Any, int] | None = None,
    new_default: tuple[Any, int] | None = None, tile: int | None = None, overlap: int | None = None,
    device: str | None = None, precision: str | None = None, command: str | None = None, log: Log = no_log,
) -> dict[str, Any]:
    """Run the whole comparison (module docstring) and return a JSON-ready result.

    Args:
        schedules: names (``linspace``, a preset, …), explicit lists (run at their own length only) or
            :class:`~adasr.diffusion.timesteps.Schedule` objects.
        max_steps: the grid's largest N (N = 1 … max_steps).
        seeds: the first runs at every point, the rest at N ≤ ``spread_max_steps`` and at the reference points.
        reference_steps: N of the ``linspace`` reference.
        repeats: timed runs of each default after the warm-ups; ``timing=False`` skips the timing (tests).
        crop: size of the held-out centre crops; ``full_image``: the scikit-image photo measured whole (its H and W
            must be multiples of 4).
        old_default / new_default: (schedule, N); default (LEGACY_SCHEDULE, LEGACY_STEPS) and
            (DEFAULT_SCHEDULE, DEFAULT_STEPS) of :mod:`adasr.defaults`.
        tile / overlap: the sampler's tiling (default 128/32).
        command: recorded as ``"command"``.
        log: receives one progress line per run.
    """
    from ..defaults import (DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_STEPS, DEFAULT_TILE, LEGACY_SCHEDULE,
                            LEGACY_STEPS)
    from ..diffusion.timesteps import SCHEDULE_PRESETS
    from ..upscaling import load_pretrained

    t_start = time.perf_counter()
    check_options(schedules=schedules, max_steps=max_steps, seeds=seeds, spread_max_steps=spread_max_steps,
                  reference_steps=reference_steps, repeats=repeats)
    seeds = list(seeds)
    old_default = old_default or (LEGACY_SCHEDULE, LEGACY_STEPS)
    new_default = new_default or (DEFAULT_SCHEDULE, DEFAULT_STEPS)
    reference = (REFERENCE_SCHEDULE, reference_steps)
    # every schedule resolves and has its lists, before the model loads (T of the shipped model: 1000)
    plan_points(schedules, max_steps=max_steps, seeds=seeds, spread_max_steps=spread_max_steps,
                reference=reference, old_default=old_default, new_default=new_default)
    tile = tile or DEFAULT_TILE
    overlap = DEFAULT_OVERLAP if overlap is None else overlap

    # images first (cheap, and a bad image name fails before the model loads)
    full = load_skimage(full_image)
    if full.shape[0] % SCALE or full.shape[1] % SCALE:
        raise ValueError(f"{full_image} is {full.shape[0]}×{full.shape[1]}, not a multiple of {SCALE}")
    images = {"crops": dict(heldout_crops(crop)), "full": {full_image: full}}
    lrs = {s: {n: downscale(to_tensor(hr), SCALE) for n, hr in imgs.items()} for s, imgs in images.items()}

    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model = load_pretrained(device=dev)
    T = model.num_train_timesteps
    points = plan_points(schedules, max_steps=max_steps, seeds=seeds, spread_max_steps=spread_max_steps,
                         reference=reference, old_default=old_default, new_default=new_default,
                         num_train_timesteps=T)
    by_label = {p["label"]: p for p in points}
    ref_label, old_label, new_label = (next(p["label"] for p in points if role in p["roles"])
                                       for role in ("reference", "old default", "new default"))

    tiles = {s: {n: tiles_per_image(hr.shape[:2], tile, overlap) for n, hr in imgs.items()}
             for s, imgs in images.items()}
    per_step = sum(sum(v.values()) for v in tiles.values())  # tile-evaluations of one step over every image
    todo: list[tuple[int, dict[str, Any]]] = [(s, p) for s in seeds for p in points if s in p["seeds"]]
    first_of: dict[tuple[str, int], str] = {}
    distinct = []
    for s, p in todo:
        if (p["run_key"], s) not in first_of:
            first_of[(p["run_key"], s)] = p["label"]
            distinct.append((s, p))
    planned = sum(p["n"] for _, p in distinct) * per_step
    log(f"{len(points)} points, {len(todo)} (point, seed) runs, {len(distinct)} distinct "
        f"(identical timesteps and η reused); about {planned} tile-evaluations "
        f"({per_step} per step over all images)")

    cache: dict[tuple[str, int], dict[str, Any]] = {}
    for p in points:
        p["per_seed"] = []
    for i, (s, p) in enumerate(todo, 1):
        key = (p["run_key"], s)
        if key in cache:
            m = {**cache[key], "seed": s, "reused_from": first_of[key]}
            note = f"= {first_of[key]} (same timesteps and η, reused)"
        else:
            m = measure_point(p, s, images, lrs, model=model, device=dev, precision=prec, tile=tile, overlap=overlap)
            m = {"seed": s, **m}
            cache[key] = m
            note = f"({m['seconds']:.1f} s, {m['tile_evaluations']} tile-evaluations)"
        p["per_seed"].append(m)
        c, f = m["crops"]["mean"], m["full"]["mean"]
        log(f"[{i}/{len(todo)}] {p['label']} seed {s}: crops PSNR-Y {c['psnr_y']:.2f} SSIM-Y {c['ssim_y']:.4f} "
            f"LPIPS {c['lpips']:.4f} | {full_image} PSNR-Y {f['psnr_y']:.2f} LPIPS {f['lpips']:.4f} {note}")

    for p in points:
        p["summary"] = summarise(p["per_seed"])
        p["image_means"] = image_means(p["per_seed"])
        p["computed_by"] = first_of[(p["run_key"], p["seeds"][0])]
        del p["spec"]
    groups: dict[str, list[str]] = {}
    for p in points:
        groups.setdefault(p["run_key"], []).append(p["label"])
    dedupe = [{"run_key": k, "timesteps": by_label[v[0]]["timesteps"], "eta": by_label[v[0]]["eta"], "points": v}
              for k, v in groups.items() if len(v) > 1]

    ref = by_label[ref_label]
    candidates = [p for p in points if p["schedule"] in SCHEDULE_PRESETS and p["n"] <= TARGET_MAX_STEPS
                  and p["label"] != ref_label]
    comps = [compare(p, ref) for p in candidates]
    target_a = {"description": f"an optimised preset with N <= {TARGET_MAX_STEPS} beats {ref_label} on LPIPS "
                               f"(lower) and PSNR-Y (higher), crops mean and {full_image} {full.shape[0]}×"
                               f"{full.shape[1]}",
                "reference": ref_label, "max_steps": TARGET_MAX_STEPS,
                "met": any(c["beats"] for c in comps), "winners": [c["point"] for c in comps if c["beats"]],
                "comparisons": comps}
    if not candidates:
        target_a["note"] = "no optimised preset (perceptual, balanced, fidelity) was measured at N <= " \
                           f"{TARGET_MAX_STEPS}"

    timing_result = None
    if timing:
        timing_result = time_defaults(lrs["full"][full_image], old_default, new_default, repeats=repeats,
                                      seed=seeds[0], model=model, device=dev, precision=prec, tile=tile,
                                      overlap=overlap, log=log)
    target_b = {"description": f"the new default ({new_label}) upscales {full_image} LR "
                               f"{lrs['full'][full_image].shape[-2]}² in at most 1/{TARGET_SPEEDUP:g} of the old "
                               f"default's ({old_label}) wall clock",
                "target": TARGET_SPEEDUP, "ratio": timing_result["ratio"] if timing_result else None,
                "met": bool(timing_result and timing_result["ratio"] >= TARGET_SPEEDUP)}
    if not timing_result:
        target_b["note"] = "timing skipped"

    return {
        "benchmark": "schedules",
        "config": {"schedules": [_name(s, _resolve(s)) for s in schedules], "max_steps": max_steps, "seeds": seeds,
                   "spread_max_steps": spread_max_steps, "reference": ref_label, "repeats": repeats,
                   "timing": timing, "crop": crop, "full_image": full_image, "scale": SCALE, "tile": tile,
                   "overlap": overlap, "eta": "each schedule's own (eta=None): presets their stored η, else 0"},
        "images": {"crops": {"names": list(images["crops"]), "tiles": tiles["crops"],
                             "size": list(next(iter(images["crops"].values())).shape[:2])},
                   "full": {"names": [full_image], "size": list(full.shape[:2]), "tiles": tiles["full"]}},
        "seeds": {"all_points": seeds[:1], "extra": seeds[1:],
                  "extra_at": f"N <= {spread_max_steps} and the points {ref_label}, {old_label} (old default), "
                              f"{new_label} (new default)",
                  "comparison": "two points are compared on the seeds both ran (mean over those)"},
        "defaults": {"old": old_label, "new": new_label, "reference": ref_label},
        "points": points,
        "runs": {"point_seed_runs": len(todo), "computed": len(distinct), "reused": len(todo) - len(distinct),
                 "tile_evaluations": sum(m["tile_evaluations"] for m in cache.values())},
        "dedupe": dedupe,
        "timing": timing_result,
        "targets": {"preset_beats_reference": target_a, "speedup": target_b,
                    "new_vs_old_default": compare(by_label[new_label], by_label[old_label])},
        "machine": machine_info(dev, prec),
        "seconds": round(time.perf_counter() - t_start, 1),
        "command": command,
    }


# ------------------------------------------------------------------------------------------------------ the table
def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _cell(s: Mapping[str, float], fmt: str, spread: bool) -> str:
    v = fmt.format(s["mean"])
    return v + ("±" + fmt.format(s["std"]) if spread and "std" in s else "")


def format_schedules(r: dict[str, Any]) -> str:
    """The compact table of :func:`compare_schedules`: one row per schedule × N (crops mean PSNR-Y / SSIM-Y / LPIPS
    and the full image's PSNR-Y / LPIPS, ± the std over seeds where more than one ran), then timing and targets."""
    cfg, im = r["config"], r["images"]
    full = f"{cfg['full_image']} {im['full']['size'][0]}²"
    extra = ", ".join(map(str, r["seeds"]["extra"])) or "—"
    lines = [f"schedules: held-out {im['crops']['size'][0]}² crops ({', '.join(im['crops']['names'])}) and {full} "
             f"(LR ↓{cfg['scale']}), ×{cfg['scale']}, tiles {cfg['tile']}/overlap {cfg['overlap']}, each schedule's "
             f"own η, {r['machine']['device']}/{r['machine']['precision']}",
             f"seed {r['seeds']['all_points'][0]} at every point; seeds {extra} also at {r['seeds']['extra_at']}; "
             "values are seed means (± sample std where > 1 seed)",
             "PSNR and SSIM on Y (BT.601), shave 4; LPIPS AlexNet v0.1 (lower is better)",
             f"{'point':<18} {'seeds':>5} {'η':>4} | {'crops PSNR-Y':>13} {'SSIM-Y':>7} {'LPIPS':>15} | "
             f"{'full PSNR-Y':>11} {'LPIPS':>7}"]
    for p in r["points"]:
        c, f = p["summary"]["crops"], p["summary"]["full"]
        sp = len(p["seeds"]) > 1
        note = "" if p["computed_by"] == p["label"] else f"  = {p['computed_by']}"
        roles = [x for x in p["roles"] if x != "grid"]
        note += f"  [{', '.join(roles)}]" if roles else ""
        lines.append(f"{p['label']:<18} {len(p['seeds']):>5} {p['eta']:>4g} | "
                     f"{_cell(c['psnr_y'], '{:.2f}', sp):>13} {c['ssim_y']['mean']:>7.4f} "
                     f"{_cell(c['lpips'], '{:.4f}', sp):>15} | "
                     f"{f['psnr_y']['mean']:>11.2f} {f['lpips']['mean']:>7.4f}{note}")
    ru = r["runs"]
    lines.append(f"runs: {ru['point_seed_runs']} (point, seed) pairs, {ru['computed']} computed, {ru['reused']} "
                 f"reused (identical timesteps and η); {ru['tile_evaluations']} tile-evaluations; "
                 f"{r['seconds']:.0f} s in all")
    t = r["timing"]
    if t:
        lines.append(f"wall clock {t['input'][0]}×{t['input'][1]} → {t['output'][0]}×{t['output'][1]}, median of "
                     f"{t['repeats']} ({t['order']}):")
        for arm in ("old", "new"):
            a = t[arm]
            runs = ", ".join(f"{s:.2f}" for s in a["seconds"])
            lines.append(f"  {arm} default {a['schedule']} N={a['steps']} η={a['eta']:g}: {a['median_seconds']:.2f} "
                         f"s ({a['tile_evaluations']} tile-evaluations; runs {runs})")
        lines.append(f"  old/new: {t['ratio']:.2f}× wall clock, {t['tile_evaluation_ratio']:.2f}× tile-evaluations")
    ta, tb, nv = r["targets"]["preset_beats_reference"], r["targets"]["speedup"], r["targets"]["new_vs_old_default"]
    lines.append("targets:")
    lines.append(f"  (a) {ta['description']}: {_met(ta['met'])}"
                 + (f" — {', '.join(ta['winners'])}" if ta["winners"] else "")
                 + (f" ({ta['note']})" if "note" in ta else ""))
    for c in ta["comparisons"]:
        lines.append(f"      {c['point']:<16} vs {c['against']} ({c['basis']}): crops ΔPSNR-Y "
                     f"{c['crops']['psnr_y_delta']:+.2f} dB ΔLPIPS {c['crops']['lpips_delta']:+.4f}; full ΔPSNR-Y "
                     f"{c['full']['psnr_y_delta']:+.2f} dB ΔLPIPS {c['full']['lpips_delta']:+.4f}"
                     f"{'  ← beats both' if c['beats'] else ''}")
    ratio = f"{tb['ratio']:.2f}×" if tb["ratio"] is not None else tb.get("note", "")
    lines.append(f"  (b) {tb['description']} (ratio ≥ {tb['target']:g}): {_met(tb['met'])} ({ratio})")
    lines.append(f"  new default {nv['point']} vs old default {nv['against']} ({nv['basis']}): crops ΔPSNR-Y "
                 f"{nv['crops']['psnr_y_delta']:+.2f} dB ΔLPIPS {nv['crops']['lpips_delta']:+.4f} "
                 f"({'beats' if nv['crops']['beats'] else 'does not beat'} on both); full ΔPSNR-Y "
                 f"{nv['full']['psnr_y_delta']:+.2f} dB ΔLPIPS {nv['full']['lpips_delta']:+.4f} "
                 f"({'beats' if nv['full']['beats'] else 'does not beat'} on both)")
    return "\n".join(lines)


format_result = format_schedules


# ------------------------------------------------------------------------------------------------------ the CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=int_at_least(1), default=10, metavar="N",
                   help="N = 1 … this for every schedule (default 10)")
    p.add_argument("--seeds", type=int_at_least(0), nargs="+", default=[0, 1, 2], metavar="S",
                   help="noise seeds; the first runs at every point, the others only at N ≤ --spread-max-steps and "
                        "at the references (default 0 1 2)")
    p.add_argument("--spread-max-steps", type=int_at_least(0), default=4, metavar="N",
                   help="the extra seeds run up to this N (default 4; 0: only at the references)")
    p.add_argument("--reference-steps", type=int_at_least(1), default=REFERENCE_STEPS, metavar="N",
                   help=f"N of the linspace reference (default {REFERENCE_STEPS})")
    p.add_argument("--repeats", type=int_at_least(1), default=3,
                   help="timed runs of each default after one warm-up each (default 3)")
    p.add_argument("--schedules", nargs="+", default=list(DEFAULT_SCHEDULES), metavar="NAME",
                   help=f"schedules compared (default: {' '.join(DEFAULT_SCHEDULES)}); an explicit list such as "
                        "999,100,20 runs at its own length")
    p.add_argument("--figure", metavar="PNG", default=None,
                   help="write the figure (LPIPS vs N, PSNR-Y vs LPIPS) here, 200 dpi")
    add_device_arguments(p)


def command_of(args: argparse.Namespace) -> str:
    """The command that reproduces the measurement (every option spelled out; --json and --figure left out)."""
    parts = ["adasr bench schedules", f"--max-steps {args.max_steps}", "--seeds " + " ".join(map(str, args.seeds)),
             f"--spread-max-steps {args.spread_max_steps}", f"--reference-steps {args.reference_steps}",
             f"--repeats {args.repeats}", "--schedules " + " ".join(args.schedules), f"--precision {args.precision}"]
    if args.device:
        parts.append(f"--device {args.device}")
    return " ".join(parts)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    if args.figure and not args.figure.lower().endswith(".png"):
        raise SystemExit(f"adasr bench schedules: --figure must name a .png file, got {args.figure!r}")
    from ..defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS, LEGACY_SCHEDULE, LEGACY_STEPS

    try:  # bad options fail here, in a second, not after the model loaded
        check_options(schedules=args.schedules, max_steps=args.max_steps, seeds=args.seeds,
                      spread_max_steps=args.spread_max_steps, reference_steps=args.reference_steps,
                      repeats=args.repeats)
        plan_points(args.schedules, max_steps=args.max_steps, seeds=args.seeds,
                    spread_max_steps=args.spread_max_steps, reference=(REFERENCE_SCHEDULE, args.reference_steps),
                    old_default=(LEGACY_SCHEDULE, LEGACY_STEPS), new_default=(DEFAULT_SCHEDULE, DEFAULT_STEPS))
    except ValueError as exc:
        raise SystemExit(f"adasr bench schedules: {exc}") from None
    return compare_schedules(schedules=args.schedules, max_steps=args.max_steps, seeds=args.seeds,
                             spread_max_steps=args.spread_max_steps, reference_steps=args.reference_steps,
                             repeats=args.repeats, device=args.device, precision=args.precision,
                             command=command_of(args), log=log)


__all__ = ["DEFAULT_SCHEDULES", "REFERENCE_STEPS", "TARGET_MAX_STEPS", "TARGET_SPEEDUP", "add_arguments",
           "check_options", "command_of", "compare", "compare_schedules", "format_result", "format_schedules",
           "image_means", "measure_point", "plan_points", "run_args", "summarise", "tiles_per_image", "time_defaults"]
