"""``adasr bench reuse``: encoder reuse (Faster-Diffusion / SMFDM) and DeepCache against the equal-cost control,
measured side by side in one run (notebook 08).

On the held-out 256×256 crops (astronaut, camera, moon) and the full 512×512 astronaut, ×4 from bicubic-↓4 LR, the
shipped model, one seed, 128/32 tiles:

1. **MACs per mode** at a tile (``torch.utils.flop_counter``): the share of a step that encoder reuse (``decoder``)
   and DeepCache (``shallow``) skip;
2. **Wall clock per mode**: one denoiser call per mode on a batch of tiles, the modes interleaved and repeated
   (:func:`mode_seconds`); a run's wall clock is then Σ_mode (its tile-evaluations in that mode × seconds per
   tile-evaluation), so every arm and every control is timed under the same conditions (the sampler runs of a
   long bench are minutes apart, and a shared CPU's speed drifts by more than the differences measured here; their
   own seconds are kept as ``seconds`` for reference). **The uniform curves** (the controls): DDIM over N for
   ``linspace`` and the optimised ``balanced`` preset, scored;
3. **The reuse arms**: on the anchors (``linspace`` N = 10, 20) and the optimised schedules (``balanced`` N = 2, 3,
   4): each cache at each interval K, Faster-Diffusion's non-uniform key steps, SMFDM's grouping (parallel
   decoding; the same output as sequential, so only its time differs) and prior noise injection;
4. **Equal-cost controls** for every arm: the best uniform schedule (either family, any N whose cost is not above
   the arm's) at the arm's MACs and at its wall clock, interpolated linearly in N between measured N
   (:func:`~adasr.adaptive.equal_budget.uniform_at`), and the same schedule without reuse (the speed-up);
5. **The stacked speed-up**: linspace-20 in fp32 → bf16 → the default optimised schedule → with reuse, and AdaSR's
   early exit with and without reuse (does it compose?); parallel decoding timed directly, sequential and batched
   sampler runs interleaved on one crop;
6. **What changes inside the UNet** (:func:`~adasr.acceleration.reuse.feature_similarity`) on one tile.

Quality: PSNR-Y and SSIM-Y (shave 4), LPIPS (AlexNet). The target of the issue (an arm beats the best uniform
schedule at equal wall clock on LPIPS, loses no more than 0.05 dB PSNR-Y, and is ≥ 1.5× faster than its own
schedule without reuse) is evaluated per arm.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from .runner import Log, add_device_arguments, machine_info, no_log

#: Targets of the issue.
TARGET_PSNR_LOSS_DB = 0.05
TARGET_SPEEDUP = 1.5
#: SMFDM's headline, for the table beside ours.
SMFDM_CLAIM = "80.54 % acceleration of the diffusion process with 15 % of the weights (FFHQ 16→128, 2000 steps)"
FAMILIES = ("linspace", "balanced")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=256, help="held-out crop size (default 256)")
    p.add_argument("--full", default="astronaut", help="the full held-out image also run ('' for none)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE)
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    p.add_argument("--anchors", type=int, nargs="+", default=[10, 20], help="linspace N of the reuse arms")
    p.add_argument("--optimised", type=int, nargs="+", default=[2, 3, 4], help="balanced N of the reuse arms")
    p.add_argument("--intervals", type=int, nargs="+", default=[2, 3, 4, 5], help="K of the uniform key steps")
    p.add_argument("--linspace-n", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20],
                   help="N of the uniform linspace curve")
    p.add_argument("--balanced-n", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 8],
                   help="N of the uniform balanced curve")
    p.add_argument("--quick", action="store_true", help="a small run: crops only, fewer N (for checks)")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also draw the cost–quality figure (adasr.viz.reuse.cost_quality_figure) to this file")
    add_device_arguments(p)


# ----------------------------------------------------------------------------------------- the equal-cost control
def mode_seconds(model, *, precision: str, tile: int, batch: int = 9, repeats: int = 5, seed: int = 0,
                 modes: Sequence[str] = ("full", "decoder", "shallow")) -> dict[str, float]:
    """Seconds per tile-evaluation of each denoiser mode: the median of ``repeats`` calls on ``batch`` tiles of
    ``tile``², the modes interleaved round-robin (:func:`~adasr.benchmarks.runner.interleaved`), divided by
    ``batch``. ``full`` is the plain network call; the reuse modes read caches filled by one ``full`` call."""
    from ..sampling.denoiser import Denoiser
    from .runner import interleaved

    p = next(model.unet.parameters())
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, tile, tile, generator=g).to(p.device)
    c = (torch.rand(batch, 3, tile, tile, generator=g) * 2 - 1).to(p.device)
    t = torch.full((batch,), 500, dtype=torch.long, device=p.device)
    plain = Denoiser(model.unet, precision=precision, count_macs=False)
    cached = Denoiser(model.unet, precision=precision, cache=("decoder", "shallow"), count_macs=False)
    with torch.no_grad():
        cached(x, t, c)  # fills every tile's caches
        calls = {"full": lambda: plain(x, t, c),
                 "decoder": lambda: cached(x, t, c, modes=["decoder"] * batch),
                 "shallow": lambda: cached(x, t, c, modes=["shallow"] * batch)}
        times = interleaved({m: calls[m] for m in modes}, repeats)
    return {m: float(np.median(v)) / batch for m, v in times.items()}


def model_seconds(evaluations_by_mode: Mapping[str, int], per_mode: Mapping[str, float]) -> float:
    """A run's wall clock from its work: Σ_mode tile-evaluations × seconds per tile-evaluation (:func:`mode_seconds`)."""
    return float(sum(n * per_mode[m] for m, n in evaluations_by_mode.items()))


def equivalent_steps(arm: Mapping[str, Any], tiles: int, full_macs: int, per_mode: Mapping[str, float]
                     ) -> dict[str, float]:
    """The number of uniform steps (full tile-evaluations per tile) that cost the same as ``arm``: by MACs,
    n_MAC = MACs / (tiles · MACs of a full tile-evaluation), and by wall clock, n_wall = Σ_mode n_mode·s_mode /
    (tiles · s_full) with the seconds per tile-evaluation of :func:`mode_seconds`."""
    return {"macs": float(arm["macs"]) / (tiles * full_macs),
            "wall": model_seconds(arm["evaluations_by_mode"], per_mode) / (tiles * per_mode["full"])}


def best_uniform(curves: Mapping[str, Mapping[str, Sequence[float]]], n: float, metric: str = "lpips"
                 ) -> dict[str, Any]:
    """The best uniform schedule costing at most n steps: for each family its curve at n (linear in N between the
    measured N, clamped at the ends) and every measured N ≤ n; the lowest ``metric`` (highest for PSNR/SSIM) over
    all. Returns {family, n, psnr_y, ssim_y, lpips} of that point (its other metrics at the same point)."""
    from ..adaptive.equal_budget import uniform_at

    lower_better = metric == "lpips"
    best: dict[str, Any] | None = None
    for fam, c in curves.items():
        cands = [dict(family=fam, n=float(n), **{k: uniform_at(c, n, k) for k in ("psnr_y", "ssim_y", "lpips")})]
        for i, s in enumerate(c["steps"]):
            if s <= n:
                cands.append(dict(family=fam, n=float(s), **{k: float(c[k][i]) for k in ("psnr_y", "ssim_y",
                                                                                          "lpips")}))
        for cand in cands:
            if best is None or (cand[metric] < best[metric] if lower_better else cand[metric] > best[metric]):
                best = cand
    assert best is not None
    return best


def controls(arm: Mapping[str, Any], curves, tiles: int, full_macs: int, per_mode: Mapping[str, float],
             plain: Mapping[str, Any] | None) -> dict[str, Any]:
    """The arm's equal-cost controls (by MACs and by wall clock), its gaps to them, its speed-up over its own
    schedule without reuse, and whether it meets the issue's target."""
    eq = equivalent_steps(arm, tiles, full_macs, per_mode)
    out: dict[str, Any] = {"equivalent_steps": eq}
    for by in ("macs", "wall"):
        c = best_uniform(curves, eq[by])
        out[f"control_{by}"] = c
        out[f"lpips_gap_{by}"] = float(arm["lpips"]) - c["lpips"]
        out[f"psnr_gap_{by}"] = float(arm["psnr_y"]) - c["psnr_y"]
    if plain is not None:
        out["speedup_vs_same_schedule"] = (model_seconds(plain["evaluations_by_mode"], per_mode)
                                           / model_seconds(arm["evaluations_by_mode"], per_mode))
        out["measured_speedup"] = float(plain["seconds"]) / float(arm["seconds"])  # sampler runs minutes apart
        out["lpips_vs_same_schedule"] = float(arm["lpips"]) - float(plain["lpips"])
        out["psnr_vs_same_schedule"] = float(arm["psnr_y"]) - float(plain["psnr_y"])
    out["target_met"] = bool(out["lpips_gap_wall"] < 0 and out["psnr_gap_wall"] >= -TARGET_PSNR_LOSS_DB
                             and out.get("speedup_vs_same_schedule", 0.0) >= TARGET_SPEEDUP)
    return out


def curve_of(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Uniform runs (one family) → {steps, psnr_y, ssim_y, lpips, seconds, macs} lists ordered by N."""
    rows = sorted(runs, key=lambda r: r["n"])
    return {k: [float(r["n"] if k == "steps" else r[k]) for r in rows]
            for k in ("steps", "psnr_y", "ssim_y", "lpips", "seconds", "model_seconds", "macs")}


# ------------------------------------------------------------------------------------------------------ the run
def _arm_specs(base: str, n: int, intervals: Sequence[int], anchor: bool) -> list[dict[str, Any]]:
    """The reuse arms over one base schedule: each cache at each K < n, and on the anchors Faster-Diffusion's key
    steps, SMFDM's grouping (K = 2 and n/2) and prior noise injection."""
    from ..acceleration.reuse import key_positions

    specs = []
    kept = []  # intervals with distinct key sets at this n (every K ≥ n keeps only the first step)
    for k in intervals:
        if key_positions(n, "uniform", k) not in [key_positions(n, "uniform", j) for j in kept]:
            kept.append(k)
    for cache in ("encoder", "deepcache"):
        for k in kept:
            specs.append(dict(cache=cache, key_steps="uniform", interval=k))
    if anchor:
        specs.append(dict(cache="encoder", key_steps="faster-diffusion", interval=1))
        specs.append(dict(cache="deepcache", key_steps="faster-diffusion", interval=1))
        for k in sorted({2, n // 2}):
            specs.append(dict(cache="encoder", key_steps="smfdm", interval=k))
        specs.append(dict(cache="encoder", key_steps="uniform", interval=2, prior_noise=0.003))
    return specs


def _label(base: str, n: int, spec: Mapping[str, Any]) -> str:
    extra = "+noise" if spec.get("prior_noise") else ""
    ks = f"K{spec['interval']}" if spec["key_steps"] != "faster-diffusion" else "FD"
    pre = "smfdm-" if spec["key_steps"] == "smfdm" else ""
    return f"{base}-{n} {spec['cache']} {pre}{ks}{extra}"


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    from ..acceleration.reuse import ReusePolicy, feature_similarity
    from ..adaptive.early_exit import EarlyExit, EarlyExitRule
    from ..data import make_pair, to_tensor
    from ..defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS
    from ..diffusion.timesteps import get_schedule
    from ..sampling.denoiser import Denoiser
    from ..sampling.policies import UniformDDIM
    from .adadiffsr import PolicyArms, bench_context

    t0 = time.perf_counter()
    device, precision, model, images = bench_context(args)
    tile, overlap = args.tile, args.overlap
    arms = PolicyArms(model, images, tile=tile, overlap=overlap, seed=args.seed, precision=precision, log=log)
    lin_n = [1, 2, 3, 4, 6, 10] if args.quick else args.linspace_n
    bal_n = [1, 2, 3, 4] if args.quick else args.balanced_n
    anchors = [10] if args.quick else args.anchors
    optimised = [2] if args.quick else args.optimised
    intervals = [2, 3] if args.quick else args.intervals

    den = Denoiser(model.unet)
    macs = {m: int(den.macs(m, (tile, tile))) for m in ("full", "decoder", "shallow")}
    mode_share = {m: macs[m] / macs["full"] for m in macs}
    log(f"MACs per {tile}² tile-evaluation: " + ", ".join(f"{m} {v / 1e9:.2f} G ({mode_share[m]:.1%})"
                                                          for m, v in macs.items()))
    # 2. wall clock per mode, interleaved (fp32 too, for the stack), and parallel decoding timed directly
    reps = 2 if args.quick else 5
    per_mode = mode_seconds(model, precision=precision, tile=tile, repeats=reps, seed=args.seed)
    full_fp32 = mode_seconds(model, precision="fp32", tile=tile, repeats=reps, seed=args.seed, modes=("full",))["full"]
    log("seconds per tile-evaluation: " + ", ".join(f"{m} {v * 1e3:.1f} ms ({v / per_mode['full']:.0%})"
                                                     for m, v in per_mode.items()) + f"; full in fp32 {full_fp32 * 1e3:.1f} ms")
    parallel = _time_parallel(model, images, anchors, tile, overlap, args.seed, precision, reps=1 if args.quick else 2,
                              log=log)

    # 2. the uniform curves
    uniform: dict[str, list[dict[str, Any]]] = {f: [] for f in FAMILIES}
    for fam, ns in (("linspace", sorted(set(lin_n) | set(anchors))), ("balanced", sorted(set(bal_n) | set(optimised)))):
        for n in ns:
            r = arms.run(f"{fam}-{n}", lambda n=n, fam=fam: UniformDDIM(n, fam))
            r.update(family=fam, n=n, schedule=get_schedule(fam).timesteps(n),
                     model_seconds=model_seconds(r["evaluations_by_mode"], per_mode))
            uniform[fam].append(r)
    tiles = uniform["linspace"][0]["tiles"]
    curves = {fam: curve_of(uniform[fam]) for fam in FAMILIES}
    plain = {(fam, r["n"]): r for fam in FAMILIES for r in uniform[fam]}
    log(f"uniform runs done ({time.perf_counter() - t0:.0f} s)")

    # 3–4. the reuse arms and their controls
    results: list[dict[str, Any]] = []
    for fam, ns, anchor in (("linspace", anchors, True), ("balanced", optimised, False)):
        for n in ns:
            for spec in _arm_specs(fam, n, intervals, anchor):
                label = _label(fam, n, spec)
                r = arms.run(label, lambda n=n, fam=fam, spec=spec: ReusePolicy(UniformDDIM(n, fam), **spec))
                r.update(family=fam, n=n, model_seconds=model_seconds(r["evaluations_by_mode"], per_mode), **spec)
                r.update(controls(r, curves, tiles, macs["full"], per_mode, plain[(fam, n)]))
                results.append(r)
                log(f"  → n_wall {r['equivalent_steps']['wall']:.2f}, control LPIPS {r['control_wall']['lpips']:.4f} "
                    f"({r['control_wall']['family']} {r['control_wall']['n']:.2f}), speed-up "
                    f"{r['speedup_vs_same_schedule']:.2f}×, target {'met' if r['target_met'] else 'not met'}")

    # 5. the stacked speed-up (wall clock from the per-mode seconds) and composition with AdaSR's early exit
    top = max(anchors)
    ref = plain[("linspace", top)]
    arms_fp32 = PolicyArms(model, images, tile=tile, overlap=overlap, seed=args.seed, precision="fp32", log=log)
    r32 = arms_fp32.run(f"linspace-{top} fp32", lambda: UniformDDIM(top, "linspace"))
    r32["model_seconds"] = r32["tile_evaluations"] * full_fp32
    stack: list[dict[str, Any]] = [{"label": f"linspace-{top}, fp32", **_brief(r32)},
                                   {"label": f"linspace-{top}, {precision}", **_brief(ref)}]
    default = plain.get(("balanced", DEFAULT_STEPS))
    if default is not None:
        stack.append({"label": f"{DEFAULT_SCHEDULE}-{DEFAULT_STEPS} (the default), {precision}", **_brief(default)})
    best_default = _best_arm(results, "balanced", DEFAULT_STEPS)
    if best_default is not None:
        stack.append({"label": f"{_label('balanced', DEFAULT_STEPS, best_default)}, {precision}",
                      **_brief(best_default)})
    for row in stack:
        row["speedup_vs_first"] = stack[0]["model_seconds"] / row["model_seconds"]
    rule = EarlyExitRule()
    ee = arms.run(f"early-exit linspace-{top}", lambda: EarlyExit(UniformDDIM(top, "linspace"), rule))
    ee_r = arms.run(f"early-exit linspace-{top} + encoder K2",
                    lambda: ReusePolicy(EarlyExit(UniformDDIM(top, "linspace"), rule), "encoder", "uniform", 2))
    composed = {}
    for key, rr in (("early_exit", ee), ("early_exit_encoder_K2", ee_r)):
        rr["model_seconds"] = model_seconds(rr["evaluations_by_mode"], per_mode)
        composed[key] = _brief(rr)
        composed[key].update(controls(rr, curves, tiles, macs["full"], per_mode, None))

    # 6. what changes between steps (one tile of the first crop)
    name = next(iter(images))
    up = make_pair(to_tensor(images[name]), model.config.scale)[1][..., :tile, :tile].to(device)
    sim = feature_similarity(model, up, get_schedule("linspace").timesteps(top), seed=args.seed, precision=precision)

    # SMFDM's headline in its own terms, for our best encoder arm at the top anchor
    enc = [q for q in results if q["family"] == "linspace" and q["n"] == top and q["cache"] == "encoder"]
    best_enc = min(enc, key=lambda q: q["lpips"]) if enc else None
    headline = None
    if best_enc is not None:
        headline = {"arm": _label("linspace", top, best_enc),
                    "time_saved_percent": 100 * (1 - best_enc["model_seconds"] / ref["model_seconds"]),
                    "acceleration_percent": 100 * (ref["model_seconds"] / best_enc["model_seconds"] - 1),
                    "lpips_change": best_enc["lpips"] - ref["lpips"], "psnr_change": best_enc["psnr_y"] - ref["psnr_y"]}

    return {"benchmark": "reuse", "machine": machine_info(device, precision), "precision": precision,
            "seed": args.seed, "tile": tile, "overlap": overlap, "images": list(images), "tiles": tiles,
            "macs_per_tile_evaluation": macs, "mode_share": mode_share, "seconds_per_evaluation": per_mode,
            "full_seconds_fp32": full_fp32,
            "uniform": uniform, "curves": curves, "arms": results, "parallel": parallel, "stack": stack,
            "composition": composed, "feature_similarity": sim, "smfdm_headline": headline, "smfdm_claim": SMFDM_CLAIM,
            "targets": {"psnr_loss_db": TARGET_PSNR_LOSS_DB, "speedup": TARGET_SPEEDUP},
            "targets_met": [_label(q["family"], q["n"], q) for q in results if q["target_met"]],
            "seconds_total": time.perf_counter() - t0}


def _brief(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("seconds", "model_seconds", "macs", "tile_evaluations", "psnr_y", "ssim_y", "lpips",
                              "mean_steps_per_tile", "evaluations_by_mode") if k in r}


def _time_parallel(model, images, anchors: Sequence[int], tile: int, overlap: int, seed: int, precision: str, *,
                   reps: int, log: Log) -> list[dict[str, Any]]:
    """SMFDM's grouping (parallel decoding) against the same key steps decoded one by one: whole sampler runs on the
    first image, interleaved, ``reps`` each after a warm-up; the outputs must be equal (checked)."""
    from ..acceleration.reuse import ReusePolicy
    from ..data import make_pair, to_tensor
    from ..sampling.loop import sample_tiles
    from ..sampling.policies import UniformDDIM
    from .runner import interleaved

    name = next(iter(images))
    up = make_pair(to_tensor(images[name]), model.config.scale)[1]
    out = []
    for n in anchors:
        for k in sorted({2, n // 2}):
            runs: dict[str, Any] = {}

            def go(parallel: bool, n=n, k=k):
                pol = ReusePolicy(UniformDDIM(n, "linspace"), "encoder", "uniform", k, parallel=parallel)
                runs[parallel] = sample_tiles(model, up, policy=pol, tile=tile, overlap=overlap, seed=seed,
                                              precision=precision).x0

            t = interleaved({"sequential": lambda: go(False), "parallel": lambda: go(True)}, reps)
            seq, par = float(np.median(t["sequential"])), float(np.median(t["parallel"]))
            row = {"family": "linspace", "n": n, "interval": k, "image": name, "sequential_seconds": seq,
                   "parallel_seconds": par, "speedup": seq / par,
                   "max_difference": float((runs[True] - runs[False]).abs().max())}
            out.append(row)
            log(f"parallel decoding linspace-{n} K{k} on {name}: {seq:.2f} s sequential, {par:.2f} s batched "
                f"({row['speedup']:.2f}×)")
    return out


def _best_arm(results: Sequence[Mapping[str, Any]], family: str, n: int) -> Mapping[str, Any] | None:
    """The arm over (family, n) with the lowest LPIPS among those faster than the plain schedule."""
    cands = [r for r in results if r["family"] == family and r["n"] == n and r.get("speedup_vs_same_schedule", 0) > 1]
    return min(cands, key=lambda r: r["lpips"]) if cands else None


# ---------------------------------------------------------------------------------------------------- the table
def format_result(result: Mapping[str, Any]) -> str:
    lines = [f"adasr bench reuse — {result['machine'].get('cpu', '')}, {result['precision']}, "
             f"{len(result['images'])} images, {result['tiles']} tiles of {result['tile']}²"]
    m, share = result["macs_per_tile_evaluation"], result["mode_share"]
    lines.append("MACs per tile-evaluation: " + ", ".join(f"{k} {v / 1e9:.2f} G ({share[k]:.0%})" for k, v in m.items())
                 + f" → encoder reuse skips {1 - share['decoder']:.0%} of a step, DeepCache {1 - share['shallow']:.0%}")
    sp = result["seconds_per_evaluation"]
    lines.append("seconds per tile-evaluation (interleaved): " + ", ".join(
        f"{k} {v * 1e3:.1f} ms ({v / sp['full']:.0%})" for k, v in sp.items())
        + f"; full in fp32 {result['full_seconds_fp32'] * 1e3:.1f} ms. Wall clock below = Σ evaluations × these")
    lines.append("")
    lines.append("uniform DDIM (the controls):")
    for fam in FAMILIES:
        c = result["curves"][fam]
        lines.append(f"  {fam:9s} N " + " ".join(f"{int(n):>6d}" for n in c["steps"]))
        lines.append(f"  {'':9s} LPIPS " + " ".join(f"{v:.4f}" for v in c["lpips"]))
        lines.append(f"  {'':9s} s    " + " ".join(f"{v:6.1f}" for v in c["model_seconds"]))
    lines.append("")
    hdr = (f"{'arm':36s} {'full/reuse':>10s} {'s':>6s} {'×same':>6s} {'PSNR-Y':>7s} {'LPIPS':>7s} {'n_wall':>6s} "
           f"{'ctrl LPIPS':>10s} {'ctrl':>13s} {'ΔLPIPS':>7s} {'ΔPSNR':>6s} target")
    lines.append(hdr)
    for r in result["arms"]:
        modes = r["evaluations_by_mode"]
        reuse = sum(v for k, v in modes.items() if k != "full")
        c = r["control_wall"]
        lines.append(f"{_label(r['family'], r['n'], r):36s} {modes.get('full', 0):>4d}/{reuse:<5d} {r['model_seconds']:6.1f} "
                     f"{r['speedup_vs_same_schedule']:6.2f} {r['psnr_y']:7.2f} {r['lpips']:7.4f} "
                     f"{r['equivalent_steps']['wall']:6.2f} {c['lpips']:10.4f} {c['family'][:3] + ' ' + format(c['n'], '.2f'):>13s} "
                     f"{r['lpips_gap_wall']:+7.4f} {r['psnr_gap_wall']:+6.2f} {'met' if r['target_met'] else '-'}")
    lines.append("")
    for p in result["parallel"]:
        lines.append(f"parallel decoding, {p['family']}-{p['n']} K{p['interval']} on {p['image']}: "
                     f"{p['sequential_seconds']:.2f} s sequential → {p['parallel_seconds']:.2f} s batched "
                     f"({p['speedup']:.2f}×; max output difference {p['max_difference']:.1e})")
    lines.append("")
    lines.append("stacked:")
    for s in result["stack"]:
        lines.append(f"  {s['label']:48s} {s['model_seconds']:6.1f} s ({s['speedup_vs_first']:5.2f}×)  PSNR-Y "
                     f"{s['psnr_y']:.2f}  LPIPS {s['lpips']:.4f}")
    comp = result["composition"]
    for k, v in comp.items():
        lines.append(f"  {k:48s} {v['model_seconds']:6.1f} s, {v['mean_steps_per_tile']:.2f} steps/tile, LPIPS "
                     f"{v['lpips']:.4f}, control at equal wall clock {v['control_wall']['lpips']:.4f}")
    h = result.get("smfdm_headline")
    if h:
        lines.append("")
        lines.append(f"SMFDM's claim: {result['smfdm_claim']}")
        lines.append(f"ours ({h['arm']}): {h['time_saved_percent']:.1f} % less time ({h['acceleration_percent']:.1f} % "
                     f"'acceleration'), LPIPS {h['lpips_change']:+.4f}, PSNR-Y {h['psnr_change']:+.2f} dB vs the same "
                     "schedule without reuse")
    met = result["targets_met"]
    lines.append(f"target met by {len(met)} of {len(result['arms'])} arms" + (f": {', '.join(met)}" if met else ""))
    return "\n".join(lines)


__all__ = ["SMFDM_CLAIM", "add_arguments", "best_uniform", "controls", "curve_of", "equivalent_steps", "mode_seconds",
           "model_seconds",
           "format_result", "run_args"]
