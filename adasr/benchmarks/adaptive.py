"""``adasr bench adaptive``: AdaSR's adaptive policies against uniform DDIM, measured side by side in one run.

On the held-out 256×256 crops (astronaut, camera, moon; ×4 from bicubic-↓4 LR), the shipped model, one seed:

1. the four policies of :mod:`adasr.adaptive.policy` — uniform DDIM at N_max, allocation, early exit, both;
2. the control the references never run: uniform DDIM at the **same average budget** as each adaptive arm
   (the arm's mean tile-evaluations per tile m, interpolated between uniform runs at ⌊m⌋ and ⌈m⌉);
3. optionally a sweep (uniform N; allocation N_min/N_max; early-exit ε) for the speed–quality curve;
4. optionally the Moon case in the AdaSR README's table format (scikit-image's 512×512 moon, ×4 from 128×128).

Cost: tile-evaluations (one 128×128 tile through the UNet once) and wall clock (the whole ``upscale_tensor``
call, complexity estimation included). Quality: PSNR and SSIM on Y (BT.601, shave 4), LPIPS (AlexNet).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..adaptive.equal_budget import equal_budget
from ..adaptive.policy import POLICIES, AdaptiveConfig, policy_for_model
from ..config import add_config_arguments, given_values
from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from .runner import Log, add_device_arguments, machine_info, no_log

#: Targets of the AdaSR issue, against uniform DDIM at N_max.
TARGET_EVAL_RATIO = 3.0
TARGET_WALL_RATIO = 2.0
TARGET_PSNR_LOSS_DB = 0.05
TARGET_LPIPS_LOSS = 0.005


def _images(crop: int) -> dict[str, np.ndarray]:
    from ..data import heldout_crops

    return heldout_crops(crop)


class _Runner:
    """Runs one policy over a set of images with one model and records cost and quality."""

    def __init__(self, model, images: dict[str, np.ndarray], *, tile: int, overlap: int, seed: int, precision: str,
                 device) -> None:
        from ..data import downscale, to_tensor

        self.model, self.images, self.tile, self.overlap = model, images, tile, overlap
        self.seed, self.precision, self.device = seed, precision, device
        self.lr = {n: downscale(to_tensor(hr), 4) for n, hr in images.items()}
        self.calibrations: dict[str, Any] = {}

    def policy(self, kind: str, config: AdaptiveConfig):
        cal = None
        if kind in ("allocation", "adasr") and config.normalize == "calibrated":
            if config.estimator not in self.calibrations:
                from ..adaptive.complexity import default_calibration, make_estimator

                fn = make_estimator(config.estimator, model=self.model)
                self.calibrations[config.estimator] = default_calibration(
                    config.estimator, tile=self.tile, overlap=self.overlap, estimator_fn=fn)
            cal = self.calibrations[config.estimator]
        return policy_for_model(kind, config, self.model, tile=self.tile, overlap=self.overlap, calibration=cal)

    def run(self, kind: str, config: AdaptiveConfig, label: str | None = None) -> dict[str, Any]:
        from ..data import to_uint8
        from ..lpips import lpips_distance
        from ..metrics import psnr_y, ssim_y
        from ..upscaling import upscale_tensor

        rows = []
        for name, lr in self.lr.items():
            pol = self.policy(kind, config)
            sr, rep, res = upscale_tensor(lr, model=self.model, policy=pol, tile=self.tile, overlap=self.overlap,
                                          seed=self.seed, precision=self.precision, device=self.device)
            img, hr = to_uint8(sr), self.images[name]
            overhead = 2 * len(res.grid) if kind in ("allocation", "adasr") and config.estimator == "uncertainty" else 0
            rows.append({
                "image": name, "tiles": len(res.grid), "tile_evaluations": rep.tile_evaluations + overhead,
                "estimator_tile_evaluations": overhead, "seconds": rep.seconds,
                "steps_per_tile": [s.evaluations for s in res.tiles],
                "psnr_y": psnr_y(img, hr, shave=4), "ssim_y": ssim_y(img, hr, shave=4), "lpips": lpips_distance(img, hr),
            })
        tiles = sum(r["tiles"] for r in rows)
        evals = sum(r["tile_evaluations"] for r in rows)
        return {
            "arm": label or kind, "policy": kind, "config": config.to_dict(), "images": rows,
            "tile_evaluations": evals, "tiles": tiles, "mean_steps_per_tile": evals / tiles,
            "seconds": sum(r["seconds"] for r in rows),
            **{k: float(np.mean([r[k] for r in rows])) for k in ("psnr_y", "ssim_y", "lpips")},
        }


def _summary(a: dict[str, Any]) -> str:
    """One progress line for a measured arm."""
    return (f"{a['arm']}: steps {a['mean_steps_per_tile']:.2f}, PSNR-Y {a['psnr_y']:.2f}, LPIPS {a['lpips']:.4f} "
            f"({a['seconds']:.1f} s)")


def _compare(arm: dict, ref: dict) -> dict[str, Any]:
    c = {"eval_ratio": ref["tile_evaluations"] / arm["tile_evaluations"], "wall_ratio": ref["seconds"] / arm["seconds"],
         "psnr_loss_db": ref["psnr_y"] - arm["psnr_y"], "lpips_loss": arm["lpips"] - ref["lpips"]}
    c["targets_met"] = {
        "evals": c["eval_ratio"] >= TARGET_EVAL_RATIO, "wall": c["wall_ratio"] >= TARGET_WALL_RATIO,
        "psnr": c["psnr_loss_db"] <= TARGET_PSNR_LOSS_DB, "lpips": c["lpips_loss"] <= TARGET_LPIPS_LOSS}
    return c


def sweep_configs(config: AdaptiveConfig) -> list[tuple[str, AdaptiveConfig, str]]:
    """(policy, config, label) points of the speed–quality curve around ``config``."""
    n = config.n_max
    pts: list[tuple[str, AdaptiveConfig, str]] = []
    for k in sorted({1, 2, 3, 4, 5, 6, 8, 10, 13, 16, n}):
        if k <= n:
            pts.append(("uniform", config.with_(n_max=k), f"uniform N={k}"))
    for lo, hi in dict.fromkeys(((1, max(1, n // 2)), (2, n), (4, n), (8, n), (2, max(2, 2 * n // 3)))):
        if lo <= hi <= n:
            pts.append(("allocation", config.with_(n_min=lo, n_max=hi), f"allocation {lo}–{hi}"))
    for est in ("learned", "uncertainty"):
        if est != config.estimator and n >= 2:
            pts.append(("allocation", config.with_(n_min=2, n_max=n, estimator=est), f"allocation 2–{n} {est}"))
    for eps in (0.001, 0.0015, 0.002, 0.003, 0.005):
        pts.append(("early-exit", config.with_(epsilon=eps), f"early-exit ε={eps}"))
    late = max(1, n // 2)
    for eps in (0.003, 0.006):
        pts.append(("early-exit", config.with_(epsilon=eps, warmup=late), f"early-exit ε={eps} T_min={late}"))
    for eps in (0.0015, 0.003):
        pts.append(("adasr", config.with_(epsilon=eps), f"adasr ε={eps}"))
    return pts


def moon_case(runner_factory, config: AdaptiveConfig) -> dict[str, Any]:
    """The AdaSR README's Moon row, with our numbers: 512×512 moon, uniform N_max vs the 'adasr' policy."""
    from ..data import load_skimage

    r = runner_factory({"moon": load_skimage("moon")})
    base = r.run("uniform", config, f"uniform N={config.n_max}")
    ada = r.run("adasr", config)
    return {"baseline": base, "adasr": ada, "speedup": base["seconds"] / ada["seconds"],
            "eval_ratio": base["tile_evaluations"] / ada["tile_evaluations"],
            "steps_saved_per_tile": base["mean_steps_per_tile"] - ada["mean_steps_per_tile"]}


def adaptive(
    *, config: AdaptiveConfig | None = None, seed: int = 0, device: str | None = None, precision: str = "auto",
    crop: int = 256, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, sweep: bool = True, moon: bool = True,
    log: Log = no_log,
) -> dict[str, Any]:
    """Run the comparison (module docstring) and return everything as a JSON-ready dict; ``log`` receives one line
    per measured arm. Computes only: the speed–quality figure of the result is
    :func:`adasr.viz.adaptive.plot_speed_quality` (``adasr bench adaptive --figure``)."""
    from ..runtime import resolve_device, resolve_precision
    from ..upscaling import load_pretrained

    cfg = config or AdaptiveConfig()
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model = load_pretrained(device=dev)

    def factory(images):
        return _Runner(model, images, tile=tile, overlap=overlap, seed=seed, precision=prec, device=dev)

    runner = factory(_images(crop))
    warm = next(iter(runner.lr.values()))  # warm-up: oneDNN kernels, MAC count, LPIPS weights
    from ..upscaling import upscale_tensor

    upscale_tensor(warm, model=model, steps=1, tile=tile, overlap=overlap, precision=prec, device=dev)
    t0 = time.perf_counter()
    arms: dict[str, dict] = {}
    uniform_cache: dict[int, dict] = {}
    for i, kind in enumerate(POLICIES, 1):
        arms[kind] = runner.run(kind, cfg, f"uniform N={cfg.n_max}" if kind == "uniform" else kind)
        log(f"arm {i}/{len(POLICIES)} {_summary(arms[kind])}")
    uniform_cache[cfg.n_max] = arms["uniform"]
    ref = arms["uniform"]
    controls: dict[str, dict] = {}
    for kind in POLICIES[1:]:
        m = arms[kind]["mean_steps_per_tile"]
        lo, hi = max(1, int(np.floor(m))), max(1, int(np.ceil(m)))
        for n in {lo, hi}:
            if n not in uniform_cache:
                uniform_cache[n] = runner.run("uniform", cfg.with_(n_max=n), f"uniform N={n}")
                log(f"equal-budget control {_summary(uniform_cache[n])}")
        controls[kind] = equal_budget(uniform_cache[lo], uniform_cache[hi], m)
    comparisons = {k: _compare(arms[k], ref) for k in POLICIES[1:]}
    for k in POLICIES[1:]:
        comparisons[k]["vs_equal_budget"] = {"psnr_gain_db": arms[k]["psnr_y"] - controls[k]["psnr_y"],
                                             "lpips_gain": controls[k]["lpips"] - arms[k]["lpips"]}
    out: dict[str, Any] = {
        "benchmark": "adaptive", "config": cfg.to_dict(), "seed": seed, "crop": crop, "tile": tile,
        "overlap": overlap, "device": str(dev), "precision": prec, "threads": torch.get_num_threads(),
        "arms": arms, "equal_budget_controls": controls, "comparisons": comparisons,
        "calibrations": {k: asdict(v) for k, v in runner.calibrations.items()},
        "targets": {"eval_ratio": TARGET_EVAL_RATIO, "wall_ratio": TARGET_WALL_RATIO,
                    "psnr_loss_db": TARGET_PSNR_LOSS_DB, "lpips_loss": TARGET_LPIPS_LOSS},
    }
    if sweep:
        pts = []
        configs = sweep_configs(cfg)
        for i, (kind, c, label) in enumerate(configs, 1):
            if kind == "uniform" and c.n_max in uniform_cache:
                r = uniform_cache[c.n_max]
            else:
                r = runner.run(kind, c, label)
                if kind == "uniform":
                    uniform_cache[c.n_max] = r
                log(f"sweep {i}/{len(configs)} {_summary(r)}")
            pts.append({"label": label, "policy": kind, "config": c.to_dict(),
                        **{k: r[k] for k in ("mean_steps_per_tile", "tile_evaluations", "seconds", "psnr_y",
                                             "ssim_y", "lpips")}})
        out["sweep"] = pts
    if moon:
        out["moon"] = moon_case(factory, cfg)
        log(f"moon: {_summary(out['moon']['baseline'])}; {_summary(out['moon']['adasr'])}")
    out["machine"] = machine_info(dev, prec)
    out["total_seconds"] = time.perf_counter() - t0
    return out


def format_adaptive(r: dict[str, Any]) -> str:
    """The arms, the equal-budget controls, the comparisons with their targets, the sweep and the Moon table."""
    c = r["config"]
    lines = [
        f"adaptive: held-out {r['crop']}×{r['crop']} crops ×4, tiles {r['tile']}/{r['overlap']}, "
        f"{r['device']}/{r['precision']}, seed {r['seed']}",
        f"N_max {c['n_max']}, N_min {c['n_min']}, estimator {c['estimator']} ({c['normalize']}, {c['mapping']}), "
        f"ε {c['epsilon']}, P {c['patience']}, T_min {c['warmup']}, exit per {c['exit_mode']}",
        "PSNR/SSIM on Y (BT.601), shave 4; LPIPS AlexNet (lower is better); steps = tile-evaluations per tile",
        f"{'arm':<22} {'steps':>6} {'evals':>6} {'sec':>7} {'PSNR-Y':>7} {'SSIM-Y':>7} {'LPIPS':>7}",
    ]

    def row(label: str, a: dict) -> str:
        steps = a.get("mean_steps_per_tile", a["tile_evaluations"] / r["arms"]["uniform"]["tiles"])
        return (f"{label:<22} {steps:6.2f} {a['tile_evaluations']:6d} {a['seconds']:7.2f} {a['psnr_y']:7.2f} "
                f"{a['ssim_y']:7.4f} {a['lpips']:7.4f}")

    for k, a in r["arms"].items():
        lines.append(row(a["arm"], a))
    lines.append("equal-budget uniform controls:")
    for k, ctl in r["equal_budget_controls"].items():
        lines.append(row(f"  N={ctl['n']:.2f} for {k}", ctl))
    lines.append(f"against uniform N={c['n_max']} (targets: evals ≥{TARGET_EVAL_RATIO:g}×, wall ≥{TARGET_WALL_RATIO:g}×, "
                 f"PSNR loss ≤{TARGET_PSNR_LOSS_DB} dB, LPIPS loss ≤{TARGET_LPIPS_LOSS}):")
    for k, cmp in r["comparisons"].items():
        met = cmp["targets_met"]
        eb = cmp["vs_equal_budget"]
        lines.append(
            f"  {k:<11} evals {cmp['eval_ratio']:5.2f}× ({'met' if met['evals'] else 'NOT met'}), "
            f"wall {cmp['wall_ratio']:5.2f}× ({'met' if met['wall'] else 'NOT met'}), "
            f"PSNR {-cmp['psnr_loss_db']:+.2f} dB ({'met' if met['psnr'] else 'NOT met'}), "
            f"LPIPS {cmp['lpips_loss']:+.4f} ({'met' if met['lpips'] else 'NOT met'}); "
            f"vs equal budget: PSNR {eb['psnr_gain_db']:+.2f} dB, LPIPS {-eb['lpips_gain']:+.4f}")
    if "sweep" in r:
        lines.append("sweep (speed–quality curve):")
        for p in r["sweep"]:
            lines.append(f"  {p['label']:<22} steps {p['mean_steps_per_tile']:6.2f}  sec {p['seconds']:6.2f}  "
                         f"PSNR-Y {p['psnr_y']:6.2f}  LPIPS {p['lpips']:.4f}")
    if "moon" in r:
        lines.append(format_moon_table(r["moon"]))
    return "\n".join(lines)


format_result = format_adaptive


def format_moon_table(m: dict[str, Any]) -> str:
    """The Moon case as a Markdown table in the AdaSR README's format (our numbers; Y channel, shave 4)."""
    b, a = m["baseline"], m["adasr"]
    return "\n".join([
        "| Image Subject | Baseline PSNR | **AdaSR PSNR** | Baseline SSIM | **AdaSR SSIM** | Improvement |",
        "| :--- | :---: | :---: | :---: | :---: | :--- |",
        f"| **Moon** | {b['psnr_y']:.2f} dB | **{a['psnr_y']:.2f} dB** | {b['ssim_y']:.3f} | **{a['ssim_y']:.3f}** | "
        f"**{a['psnr_y'] - b['psnr_y']:+.2f} dB** |",
        "",
        f"Speedup {m['speedup']:.2f}× (wall clock), {m['eval_ratio']:.2f}× fewer tile-evaluations; "
        f"{m['steps_saved_per_tile']:.1f} steps saved per tile ({b['mean_steps_per_tile']:.0f} → "
        f"{a['mean_steps_per_tile']:.1f}); LPIPS {b['lpips']:.4f} → {a['lpips']:.4f}.",
    ])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options: ``--n-max`` (the uniform baseline's N, N_max of the adaptive arms) and the adaptive
    options of ``adasr upscale``, generated from :class:`~adasr.config.AdaptiveConfig` (same flags, help and
    defaults: one place)."""
    p.add_argument("--n-max", type=int, default=None, metavar="N",
                   help=f"N_max: steps of the uniform baseline (default: {AdaptiveConfig().n_max})")
    add_config_arguments(p, AdaptiveConfig)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sweep", action="store_true", help="skip the speed–quality sweep")
    p.add_argument("--no-moon", action="store_true", help="skip the 512×512 Moon case")
    p.add_argument("--figure", metavar="PNG", default=None, help="write the speed–quality curve figure here")
    add_device_arguments(p)


def config_from_args(args: argparse.Namespace) -> AdaptiveConfig:
    """The :class:`AdaptiveConfig` of the options given (the dataclass defaults for the others)."""
    given = given_values(AdaptiveConfig, args)
    if args.n_max is not None:
        given["n_max"] = args.n_max
    return AdaptiveConfig(**given)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    return adaptive(config=config_from_args(args), seed=args.seed, device=args.device, precision=args.precision,
                    sweep=not args.no_sweep, moon=not args.no_moon, log=log)


__all__ = ["TARGET_EVAL_RATIO", "TARGET_LPIPS_LOSS", "TARGET_PSNR_LOSS_DB", "TARGET_WALL_RATIO", "adaptive",
           "add_arguments", "config_from_args", "format_adaptive", "format_moon_table", "format_result", "moon_case", "run_args",
           "sweep_configs"]
