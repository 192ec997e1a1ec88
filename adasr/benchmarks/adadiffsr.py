"""``adasr bench adadiffsr``: AdaDiffSR's dynamic strides against the equal-budget controls and the hindsight
oracle, measured side by side in one run (notebook 07).

On the held-out 256×256 crops (astronaut, camera, moon) and one full 512×512 held-out image (astronaut), ×4 from
bicubic-↓4 LR, the shipped model, one seed, 128/32 tiles:

1. **The controls and the ceiling** (:mod:`adasr.adaptive.oracle`): uniform DDIM over N for ``linspace`` and the
   optimised ``balanced`` preset (every tile's result under every schedule), and the hindsight oracle's frontier:
   the per-tile choice among those schedules that minimises LPIPS for each mean budget, merged into a real image.
2. **The arms**: DTSS with the MMLE regressor and with the computed metrics (and, for analysis, with the
   HR-referenced oracle signal), each at several N along ``linspace`` and ``balanced``; AdaSR's allocation and
   early exit (``linspace``).
3. **Equal-budget controls** for every arm: the uniform curves of both families at the arm's mean tile-evaluations
   per tile (linear in N between the measured N, :func:`~adasr.adaptive.equal_budget.uniform_at`), and the oracle
   at that budget; the targets of the issue are evaluated on them.
4. **The paper's ablations on our model**: stride codebooks (all-small / the paper's / all-large, with time),
   FR-only / NR-only / both, regressor vs computed metrics (quality and time), region integration at the final
   step vs at every step where neighbouring tiles share t (seams and quality), and PFJ vs concatenation (from the
   JSON of ``tools/finetune_pfj.py``, ``--pfj FILE``).

Cost: tile-evaluations, MACs (the UNet's per tile-evaluation, plus the gain signal's: the regressor's MACs per call,
or the torch metrics' MACs per call — BRISQUE and NIQE run in OpenCV/NumPy and are counted in wall clock only), and
wall clock of the whole sampler call (gain signal included). Quality: PSNR-Y and SSIM-Y (shave 4), LPIPS (AlexNet)
and BRISQUE (no reference).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..defaults import DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_TILE
from .runner import Log, add_device_arguments, add_model_argument, machine_info, no_log

#: Targets of the issue (mean budgets between 3 and 10 steps; at two or more of them).
TARGET_BUDGET_RANGE = (3.0, 10.0)
TARGET_PSNR_LOSS_DB = 0.1
TARGET_ORACLE_SHARE = 0.5
TARGET_POINTS = 2

#: The paper's claims, for the table beside ours.
PAPER = {
    "speed": "1.5× less time and 2.7× fewer FLOPs than StableSR at comparable quality (512², 50-step DDIM)",
    "codebook": "(5,5,5,5) best quality, slowest (13.4 s); (10,15,20,25) fastest (7.3 s), worst; (5,10,15,20) "
                "chosen (9.1 s, LPIPS 0.2627 on DRealSR)",
    "metrics": "FR only: high PSNR, low MUSIQ; NR only: high MUSIQ, low PSNR; both: best balance (RealSR)",
    "regressor": "regressor ≈ computed IQA metrics in quality, much less time (Tab. 7: 18.1 s vs 21.5 s)",
    "pfj": "PFJ > cross-attention > concat on MUSIQ/TOPIQ/NIQE (DPED-iPhone)",
    "integration": "Gaussian merging at the final step removes seams; little change in metrics",
}


def bench_images(crop: int, full: str | None) -> dict[str, np.ndarray]:
    from ..data import heldout_crops, load_skimage

    out = dict(heldout_crops(crop))
    if full:
        img = load_skimage(full)
        out[f"{full}_{img.shape[0]}"] = img
    return out


def bench_context(args: argparse.Namespace) -> tuple[torch.device, str, Any, dict[str, np.ndarray]]:
    """(device, precision, the model on it, the images) of a bench over held-out images: ``--device``,
    ``--precision``, ``--model`` (default :data:`~adasr.defaults.DEFAULT_MODEL`), ``--crop``, ``--full`` (skipped
    with ``--quick``)."""
    from ..runtime import resolve_precision
    from ..upscaling import load_pretrained

    device = torch.device(args.device or "cpu")
    precision = resolve_precision(args.precision, device)
    model = load_pretrained(getattr(args, "model", None) or DEFAULT_MODEL, device=device)
    return device, precision, model, bench_images(args.crop, None if args.quick else (args.full or None))


class PolicyArms:
    """Runs policies over the images with one model and scores them (one sampler call per image, timed)."""

    def __init__(self, model, images: Mapping[str, np.ndarray], *, tile: int, overlap: int, seed: int,
                 precision: str, log: Log) -> None:
        from ..data import make_pair, to_tensor

        self.model, self.images, self.tile, self.overlap = model, images, tile, overlap
        self.seed, self.precision, self.log = seed, precision, log
        self.hr = {n: to_tensor(im) for n, im in images.items()}
        self.up = {n: make_pair(h, model.config.scale)[1] for n, h in self.hr.items()}

    def score(self, name: str, img: np.ndarray) -> dict[str, float]:
        from ..iqa import brisque
        from ..lpips import lpips_distance
        from ..metrics import psnr_y, ssim_y

        hr = self.images[name]
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        return {"psnr_y": psnr_y(img, hr, shave=4), "ssim_y": ssim_y(img, hr, shave=4),
                "lpips": lpips_distance(img, hr), "brisque": float(brisque(x)[0])}

    def run(self, label: str, make_policy, *, integrate: str = "final", eta: float | None = None,
            names: Sequence[str] | None = None, signal_macs_per_call: int = 0, extra: dict | None = None
            ) -> dict[str, Any]:
        """``make_policy()`` (a fresh policy per image) over ``names`` (default: all): per image cost and quality,
        and their means (cost summed)."""
        from ..data import to_uint8
        from ..sampling.loop import sample_tiles
        from ..sampling.seams import seam_score
        from ..sampling.tiles import TileGrid

        rows = []
        for name in names or list(self.images):
            up, hr = self.up[name], self.hr[name]
            pol = make_policy()
            if hasattr(pol, "set_reference") and getattr(pol.config, "signal", None) == "oracle":
                grid = TileGrid.cover(up.shape[-2], up.shape[-1], self.tile, self.overlap)
                pol.set_reference(grid.split(hr))
            e = eta if eta is not None else float(pol.schedule.eta_for(pol.steps) or 0.0) if pol.schedule else 0.0
            start = time.perf_counter()
            res = sample_tiles(self.model, up, policy=pol, tile=self.tile, overlap=self.overlap, seed=self.seed,
                               eta=e, precision=self.precision, integrate=integrate)
            img = to_uint8(self.model.output(res.x0, up))
            seconds = time.perf_counter() - start
            mem = res.policy_memory
            calls = int(mem.get("signal_calls", 0))
            row = {"image": name, "tiles": len(res.grid), "tile_evaluations": res.cost.tile_evaluations,
                   "unet_macs": int(res.cost.macs), "signal_calls": calls,
                   "signal_macs": calls * signal_macs_per_call, "signal_seconds": float(mem.get("signal_seconds", 0.0)),
                   "seconds": seconds, "eta": e, "steps_per_tile": [s.evaluations for s in res.tiles],
                   "evaluations_by_mode": dict(res.cost.evaluations_by_mode),
                   "macs_by_mode": {k: int(v) for k, v in res.cost.macs_by_mode.items()},
                   **self.score(name, img)}
            row["macs"] = row["unet_macs"] + row["signal_macs"]
            if "records" in mem:
                from ..adaptive.dtss import class_counts

                row["classes"] = class_counts(mem["records"])
            row["seam_score"] = float(seam_score(img, res.grid))
            if integrate != "final":
                row["merges"] = len(res.merges)
            rows.append(row)
        out = summarise(rows)
        out.update({"arm": label, "integrate": integrate, "images": rows, **(extra or {})})
        self.log(f"{label}: steps {out['mean_steps_per_tile']:.2f}, PSNR-Y {out['psnr_y']:.2f}, "
                 f"LPIPS {out['lpips']:.4f}, {out['seconds']:.1f} s")
        return out


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Cost summed over images (mean steps per tile = tile-evaluations / tiles), quality averaged."""
    tiles = sum(r["tiles"] for r in rows)
    evals = sum(r["tile_evaluations"] for r in rows)
    out: dict[str, Any] = {"tiles": tiles, "tile_evaluations": evals, "mean_steps_per_tile": evals / tiles}
    per_tile = [k for r in rows for k in r.get("steps_per_tile", [])]
    if per_tile:  # how adaptive the arm was: the spread of steps over all tiles
        out["steps_min"], out["steps_max"] = int(min(per_tile)), int(max(per_tile))
        out["steps_std"] = float(np.std(per_tile))
    for k in ("macs", "unet_macs", "signal_macs", "seconds", "signal_seconds", "signal_calls"):
        out[k] = float(sum(r.get(k, 0) for r in rows))
    for key in ("evaluations_by_mode", "macs_by_mode"):  # work per denoiser mode, summed over the images
        if any(key in r for r in rows):
            out[key] = {}
            for r in rows:
                for m, v in r.get(key, {}).items():
                    out[key][m] = out[key].get(m, 0) + int(v)
    for k in ("psnr_y", "ssim_y", "lpips", "brisque", "seam_score"):
        vals = [r[k] for r in rows if k in r]
        if vals:
            out[k] = float(np.mean(vals))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=256, help="held-out crop size (default 256)")
    p.add_argument("--full", default="astronaut", help="the full held-out image also run ('' for none)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE)
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    p.add_argument("--dtss-steps", type=int, nargs="+", default=[8, 12, 16, 20, 30, 40],
                   help="N of the DTSS arms with the regressor (an always-growing tile's steps)")
    p.add_argument("--signal-steps", type=int, nargs="+", default=[20],
                   help="N of the DTSS arms with the computed metrics and the oracle signal")
    p.add_argument("--ablation-steps", type=int, default=20, help="N of the ablations (linspace base)")
    p.add_argument("--linspace-n", type=int, nargs="+", default=list(range(1, 21)),
                   help="N of the uniform linspace curve (the oracle's options)")
    p.add_argument("--balanced-n", type=int, nargs="+", default=list(range(1, 11)),
                   help="N of the uniform balanced curve (the oracle's options)")
    p.add_argument("--budgets", type=float, nargs="+", default=[2, 3, 4, 5, 6, 8, 10],
                   help="mean budgets (tile-evaluations per tile) of the oracle frontier")
    p.add_argument("--pfj", default="runs/pfj", help="folder of tools/finetune_pfj.py's report.json and eval.json "
                   "(PFJ vs concat; included in the result when present)")
    p.add_argument("--quick", action="store_true", help="a small run: crops only, fewer N (for checks)")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also draw the cost–quality figure (adasr.viz.adadiffsr.cost_quality_figure) to this file")
    add_model_argument(p)
    add_device_arguments(p)


def _dtss(model, n: int, base: str, signal: str, *, codebook=None, gain=None, tau: float = 5e-3):
    from ..adaptive.policy import dtss_for_model
    from ..config import AdaptiveConfig

    cfg = AdaptiveConfig(n_max=n, tau=tau, gain="regressor" if signal == "regressor" else "metrics")
    return lambda: dtss_for_model(cfg, model, schedule=base, signal=signal, codebook=codebook, gain=gain)


def oracle_curves(oracle: Mapping[str, Any], names: Sequence[str] | None = None
                  ) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """(uniform curves by family, oracle frontier as a curve over mean steps), both averaged over the images
    ``names`` (default: all), from a :func:`~adasr.adaptive.oracle.run_oracle` result."""
    from ..adaptive.oracle import mean_curves, mean_points

    if names is None or list(names) == list(oracle["images"]):
        uniform, points = oracle["mean"]["uniform"], oracle["mean"]["oracle"]
    else:
        uniform = mean_curves([oracle["images"][n]["uniform"] for n in names])
        points = mean_points([oracle["images"][n]["oracle"] for n in names])
    pts = [p for p in points if p.get("feasible", True)]
    frontier = {"steps": [float(p["mean_steps"]) for p in pts],
                **{k: [float(p[k]) for p in pts] for k in ("psnr_y", "ssim_y", "lpips")}}
    return uniform, frontier


def equal_budget_controls(arm: Mapping[str, Any], oracle: Mapping[str, Any]) -> dict[str, Any]:
    """The uniform curves of every family and the oracle frontier at the arm's mean budget m (interpolated in
    N), the gaps (arm − control; LPIPS < 0 and PSNR > 0 favour the arm) and the share of the oracle's LPIPS gain
    over the best uniform control that the arm captures."""
    from ..adaptive.equal_budget import uniform_at

    from ..adaptive.oracle import best_within

    m = float(arm["mean_steps_per_tile"])
    names = [r["image"] for r in arm["images"]] if arm.get("images") else None
    uniform, fr = oracle_curves(oracle, names)
    out: dict[str, Any] = {"n": m, "images": names, "families": {}}
    for fam, curve in uniform.items():
        c = {k: uniform_at(curve, m, k) for k in ("psnr_y", "ssim_y", "lpips")}
        c["in_range"] = min(curve["steps"]) <= m <= max(curve["steps"])
        out["families"][fam] = c
    # the stronger control: the best uniform schedule of any family and N costing no more than the arm
    within = {f: best_within(c, m, "lpips") for f, c in uniform.items()}
    fam_w = min(within, key=lambda f: within[f][0])
    out["best_within"] = {"family": fam_w, "n": within[fam_w][1], "lpips": within[fam_w][0],
                          "gap_lpips": arm["lpips"] - within[fam_w][0]}
    best_lpips = min(out["families"].values(), key=lambda c: c["lpips"])
    orc = {k: uniform_at(fr, m, k) for k in ("psnr_y", "lpips")}
    out["oracle"] = orc
    out["gap_lpips"] = {f: arm["lpips"] - c["lpips"] for f, c in out["families"].items()}
    out["gap_psnr_db"] = {f: arm["psnr_y"] - c["psnr_y"] for f, c in out["families"].items()}
    oracle_gain = best_lpips["lpips"] - orc["lpips"]
    arm_gain = best_lpips["lpips"] - arm["lpips"]
    out["oracle_gain_lpips"] = oracle_gain
    out["arm_gain_lpips"] = arm_gain
    out["oracle_share"] = arm_gain / oracle_gain if oracle_gain > 1e-9 else None
    out["beats_both_lpips"] = all(g < 0 for g in out["gap_lpips"].values())
    out["psnr_ok"] = all(g >= -TARGET_PSNR_LOSS_DB for g in out["gap_psnr_db"].values())
    out["meets_target"] = bool(out["beats_both_lpips"] and out["psnr_ok"] and out["oracle_share"] is not None
                               and out["oracle_share"] >= TARGET_ORACLE_SHARE
                               and TARGET_BUDGET_RANGE[0] <= m <= TARGET_BUDGET_RANGE[1])
    return out


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    from ..adaptive.mmle import load_mmle_regressor, macs_per_call
    from ..adaptive.oracle import run_oracle
    from ..adaptive.policy import policy_for_model
    from ..config import AdaptiveConfig
    from ..iqa import metric_costs
    from ..sampling.policies import UniformDDIM

    t0 = time.perf_counter()
    device, precision, model, images = bench_context(args)
    crops = [n for n in images if not n.endswith("_512")]
    tile, overlap = args.tile, args.overlap
    arms = PolicyArms(model, images, tile=tile, overlap=overlap, seed=args.seed, precision=precision, log=log)
    lin_n = [1, 2, 3, 4, 6, 10] if args.quick else args.linspace_n
    bal_n = [1, 2, 3, 4] if args.quick else args.balanced_n
    dtss_n = [8, 20] if args.quick else args.dtss_steps

    # 1. the controls and the ceiling
    log(f"oracle: uniform runs of linspace {lin_n} and balanced {bal_n} on {list(images)}")
    oracle = run_oracle(model, images, families={"linspace": lin_n, "balanced": bal_n},
                        mean_budgets=args.budgets, tile=tile, overlap=overlap, seed=args.seed, precision=precision,
                        progress=False, log=log)
    log(f"oracle done ({time.perf_counter() - t0:.0f} s)")
    from ..adaptive.oracle import Option, seed_oracle

    seeds = list(range(4 if args.quick else 8))
    selection: dict[str, Any] = {}
    for n in (2, 4):
        per = {name: seed_oracle(model, hr, Option("balanced", n), seeds, tile=tile, overlap=overlap,
                                 precision=precision) for name, hr in images.items()}
        selection[f"balanced-{n}"] = {
            "per_image": per, "seeds": seeds,
            "mean_seed": {k: float(np.mean([p["seed_mean"][k] for p in per.values()])) for k in ("lpips", "psnr_y")},
            "mean_best": {k: float(np.mean([p["best"][k] for p in per.values()])) for k in ("lpips", "psnr_y")}}
        sel = selection[f"balanced-{n}"]
        log(f"seed oracle balanced-{n} over {len(seeds)} seeds: LPIPS {sel['mean_seed']['lpips']:.4f} (mean seed) → "
            f"{sel['mean_best']['lpips']:.4f} (best seed per tile)")

    # the gain signal's cost per call, beside one UNet tile-evaluation
    reg = load_mmle_regressor()
    reg_macs = macs_per_call(reg, (tile, tile))
    costs = metric_costs((tile, tile))
    metric_macs = int(sum(c.get("macs", 0) or 0 for c in costs.values()))
    from ..sampling.denoiser import Denoiser

    unet_macs = Denoiser(model.unet).macs("full", (tile, tile))  # measured once per network and shape, then cached
    signal_cost = {"regressor_macs_per_call": reg_macs, "metrics_macs_per_call": metric_macs,
                   "unet_macs_per_tile_evaluation": int(unet_macs), "metrics": costs}

    # 2. the arms
    results: list[dict[str, Any]] = []
    for base in ("linspace", "balanced"):
        for n in dtss_n:
            results.append(arms.run(f"dtss-regressor/{base}/N={n}", _dtss(model, n, base, "regressor"),
                                    signal_macs_per_call=reg_macs,
                                    extra={"kind": "dtss", "signal": "regressor", "base": base, "n": n}))
    metric_n = [8] if args.quick else args.signal_steps
    for base in ("linspace", "balanced"):
        for n in metric_n:
            for signal in ("metrics", "oracle"):
                results.append(arms.run(f"dtss-{signal}/{base}/N={n}", _dtss(model, n, base, signal),
                                        signal_macs_per_call=metric_macs,
                                        extra={"kind": "dtss", "signal": signal, "base": base, "n": n}))
    for n in ([10] if args.quick else [10, 20]):
        for kind in ("allocation", "early-exit"):
            cfg = AdaptiveConfig(n_max=n)
            results.append(arms.run(f"{kind}/linspace/N={n}", lambda k=kind, c=cfg: policy_for_model(
                k, c, model, tile=tile, overlap=overlap, schedule="linspace"), extra={"kind": kind, "n": n}))
    for r in results:
        r["controls"] = equal_budget_controls(r, oracle)

    # 4. ablations (crops only, linspace base, N = --ablation-steps)
    na = 8 if args.quick else args.ablation_steps
    ablations: dict[str, list[dict[str, Any]]] = {"codebook": [], "metrics": [], "signal": [], "integration": []}
    for cb in ((5, 5, 5, 5), (5, 10, 15, 20), (20, 20, 20, 20)):
        ablations["codebook"].append(arms.run(f"codebook {cb}", _dtss(model, na, "linspace", "regressor", codebook=cb),
                                              names=crops, signal_macs_per_call=reg_macs,
                                              extra={"codebook": list(cb)}))
    from ..adaptive.information_gain import GainConfig

    for label, g in (("FR only", GainConfig(nr=())), ("NR only", GainConfig(fr=())), ("FR + NR", GainConfig())):
        ablations["metrics"].append(arms.run(f"metrics {label}", _dtss(model, na, "linspace", "metrics", gain=g),
                                             names=crops, signal_macs_per_call=metric_macs,
                                             extra={"metrics": label}))
    ablations["signal"].append(arms.run("signal regressor", _dtss(model, na, "linspace", "regressor"), names=crops,
                                        signal_macs_per_call=reg_macs, extra={"signal": "regressor"}))
    both = ablations["metrics"][-1]  # FR + NR with the computed metrics: the same run as the metrics signal
    ablations["signal"].append({**both, "arm": "signal metrics", "signal": "metrics", "same_as": both["arm"]})
    for integrate in ("final", "shared-t"):
        ablations["integration"].append(arms.run(
            f"integrate {integrate} (dtss)", _dtss(model, na, "linspace", "regressor"), integrate=integrate,
            signal_macs_per_call=reg_macs, extra={"policy": "dtss", "mode": integrate}))
        ablations["integration"].append(arms.run(
            f"integrate {integrate} (uniform 10)", lambda: UniformDDIM(10, "linspace"), integrate=integrate,
            extra={"policy": "uniform-10", "mode": integrate}))
    for rows in ablations.values():
        for r in rows:
            r["controls"] = equal_budget_controls(r, oracle)

    pfj = None
    folder = Path(args.pfj) if args.pfj else None
    if folder is not None and (folder / "eval.json").exists():
        pfj = {"source": str(folder), "eval": json.loads((folder / "eval.json").read_text()),
               "training": json.loads((folder / "report.json").read_text())
               if (folder / "report.json").exists() else None}

    reg_points = [r for r in results if r.get("signal") == "regressor"]
    in_range = [r for r in reg_points if TARGET_BUDGET_RANGE[0] <= r["mean_steps_per_tile"] <= TARGET_BUDGET_RANGE[1]]
    met = [r["arm"] for r in in_range if r["controls"]["meets_target"]]
    targets = {"points_in_range": [r["arm"] for r in in_range], "points_meeting_target": met,
               "met": len(met) >= TARGET_POINTS, "needed": TARGET_POINTS}
    model_name = getattr(args, "model", None)
    command = "adasr bench adadiffsr" + (" --quick" if args.quick else "") + (f" --model {model_name}" if model_name
                                                                              else "")
    return {"benchmark": "adadiffsr", "model": model_name or DEFAULT_MODEL, "command": command,
            "machine": machine_info(device, precision), "seed": args.seed, "tile": tile, "overlap": overlap,
            "images": list(images), "crops": crops, "oracle": oracle, "seed_oracle": selection,
            "signal_cost": signal_cost,
            "arms": results, "ablations": ablations, "pfj": pfj, "targets": targets, "paper": PAPER,
            "seconds": time.perf_counter() - t0}


def _row(r: Mapping[str, Any]) -> str:
    c = r.get("controls", {})
    gaps = c.get("gap_lpips", {})
    share = c.get("oracle_share")
    spread = f"{r.get('steps_min', 0)}–{r.get('steps_max', 0)}"
    return (f"{r['arm']:<32} {r['mean_steps_per_tile']:6.2f} {spread:>6} {r['seconds']:7.1f} {r['psnr_y']:7.2f} "
            f"{r['lpips']:.4f} {r.get('brisque', float('nan')):6.1f} "
            f"{gaps.get('linspace', float('nan')):+.4f} {gaps.get('balanced', float('nan')):+.4f} "
            f"{'' if share is None else f'{share:+.2f}':>5}  "
            f"{c.get('best_within', {}).get('gap_lpips', float('nan')):+.4f}")


def format_result(result: Mapping[str, Any]) -> str:
    lines = [f"adasr bench adadiffsr — {', '.join(result['images'])}; seed {result['seed']}, "
             f"{result['machine']['precision']}, {result['seconds']:.0f} s"]
    uniform, fr = oracle_curves(result["oracle"])
    lines.append("\nUniform curves (mean over images): N: PSNR-Y/LPIPS")
    for fam, c in uniform.items():
        pts = ", ".join(f"{n:g}: {p:.2f}/{l:.4f}" for n, p, l in zip(c["steps"], c["psnr_y"], c["lpips"]))
        lines.append(f"  {fam}: {pts}")
    lines.append("Oracle frontier (mean steps: PSNR-Y/LPIPS): " + ", ".join(
        f"{b:.2f}: {p:.2f}/{l:.4f}" for b, p, l in zip(fr["steps"], fr["psnr_y"], fr["lpips"])))
    lines.append("Headroom (mean): budget, oracle − best uniform at cost ≤ b (LPIPS, PSNR-Y), cost ratio at equal "
                 "LPIPS")
    for h in result["oracle"]["mean"]["headroom"]:
        ratio = (f"{h['cost_ratio']:.2f}×" if h.get("cost_ratio") is not None
                 else f"> {h['cost_ratio_at_least']:.1f}× (not reached)")
        lines.append(f"  b={h['budget']:g}: {h['lpips_diff']:+.4f}, {h['psnr_y_diff']:+.2f} dB, {ratio}")
    for key, sel in result.get("seed_oracle", {}).items():
        lines.append(f"Seed oracle {key} (same schedule, per-tile best of {len(sel['seeds'])} seeds): LPIPS "
                     f"{sel['mean_seed']['lpips']:.4f} → {sel['mean_best']['lpips']:.4f}, PSNR-Y "
                     f"{sel['mean_seed']['psnr_y']:.2f} → {sel['mean_best']['psnr_y']:.2f}")
    head = (f"\n{'arm':<32} {'steps':>6} {'range':>6} {'s':>7} {'PSNR-Y':>7} {'LPIPS':>6} {'BRISQ':>6} "
            f"{'Δlin':>7} {'Δbal':>7} share  Δbest≤")
    lines.append(head)
    for r in result["arms"]:
        lines.append(_row(r))
    for name, rows in result["ablations"].items():
        lines.append(f"\nAblation: {name}")
        for r in rows:
            extra = f" seams {r['seam_score']:.3f}" if "seam_score" in r and name == "integration" else ""
            lines.append(_row(r) + extra)
    pfj = result.get("pfj")
    if pfj and pfj.get("eval"):
        lines.append(f"\nPFJ vs concatenation (tools/finetune_pfj.py, {pfj['source']}): mean over the crops")
        for name, r in pfj["eval"]["runs"].items():
            m = r["mean"]
            lines.append(f"  {name:<16} PSNR-Y {m['psnr_y']:.2f}  LPIPS {m['lpips']:.4f}  BRISQUE {m['brisque']:.1f}  "
                         f"NIQE {m['niqe']:.2f}  tile-evals {m['tile_evaluations']:.0f}")
    sc = result["signal_cost"]
    lines.append(f"\nGain signal per tile: regressor {sc['regressor_macs_per_call'] / 1e6:.1f} MMACs, metrics "
                 f"{sc['metrics_macs_per_call'] / 1e6:.1f} MMACs (+ BRISQUE/NIQE in wall clock), one UNet "
                 f"tile-evaluation {sc['unet_macs_per_tile_evaluation'] / 1e9:.2f} GMACs")
    t = result["targets"]
    lines.append(f"Target (≥ {t['needed']} budgets in 3–10 where DTSS-regressor beats both controls on LPIPS, "
                 f"loses ≤ 0.1 dB, captures ≥ half the oracle's gain): {'met' if t['met'] else 'NOT met'} "
                 f"({len(t['points_meeting_target'])} of {len(t['points_in_range'])} points)")
    return "\n".join(lines)


__all__ = ["PAPER", "add_arguments", "equal_budget_controls", "format_result", "run_args", "summarise"]
