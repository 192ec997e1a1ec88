"""``adasr bench adaptive``: AdaSR's adaptive policies against uniform DDIM, measured side by side in one run.

On the held-out 256×256 crops (astronaut, camera, moon; ×4 from bicubic-↓4 LR), the shipped model, one seed, for
each **schedule family** of ``--schedules`` (default: ``linspace``, the textbook DDIM spacing the policies were
designed on, and :data:`~adasr.defaults.DEFAULT_SCHEDULE`, the optimised preset of the default sampler):

1. the four policies of :mod:`adasr.adaptive.policy` on that family's timestep lists — uniform DDIM at N_max,
   allocation, early exit, both (a tile with N_p steps runs the family's N_p-step list; η: uniform runs at N use
   the family's η at N, the adaptive policies its η at N_max — a preset carries its own η, ``linspace`` has 0);
2. the control the references never run: uniform DDIM at the **same average budget** as each adaptive arm
   (the arm's mean tile-evaluations per tile m, interpolated between uniform runs at ⌊m⌋ and ⌈m⌉,
   :func:`~adasr.adaptive.equal_budget.equal_budget`), both of the **same family** and of **every family**: each
   adaptive arm is compared with its own family's control and with the best uniform schedule at that budget across
   the families (per metric: the honest control — an adaptive policy only pays if it beats the best fixed
   schedule of the same cost). Every budget the bench measures uniform DDIM at (N_max, ⌊m⌋, ⌈m⌉, the sweep's N) is
   run with every family, side by side;
3. optionally a sweep (uniform N; allocation N_min/N_max; early-exit ε) for the speed–quality curve, per family;
4. optionally the Moon case in the AdaSR README's table format (scikit-image's 512×512 moon, ×4 from 128×128),
   per family.

Cost: tile-evaluations (one 128×128 tile through the UNet once) and wall clock (the whole ``upscale_tensor``
call, complexity estimation included). Quality: PSNR and SSIM on Y (BT.601, shave 4), LPIPS (AlexNet).

A run whose policy, config, timestep lists and η equal those of a run already measured on another family is not
repeated (:func:`run_signature`; the copy carries ``"same_as": that family``): the shipped presets are ``linspace``
with η = 0 from N = 10 on, so uniform N ≥ 10 and early exit at N_max ≥ 10 run once for both.

JSON: ``families`` {name: {schedule, arms, equal_budget_controls, cross_schedule_controls, comparisons, sweep,
moon}} and ``uniform`` {name: {N: run}}; the top-level ``arms``, ``equal_budget_controls``, ``comparisons``,
``sweep`` and ``moon`` are those of the primary family (``linspace`` when it is run: the keys results had before
the schedule families).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..adaptive.equal_budget import equal_budget
from ..adaptive.policy import AdaptiveConfig, policy_for_model
from ..config import ADASR_POLICIES as POLICIES
from ..config import add_config_arguments, given_values
from ..defaults import DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_TILE
from .runner import Log, add_device_arguments, add_model_argument, machine_info, no_log

#: Targets of the AdaSR issue, against uniform DDIM at N_max.
TARGET_EVAL_RATIO = 3.0
TARGET_WALL_RATIO = 2.0
TARGET_PSNR_LOSS_DB = 0.05
TARGET_LPIPS_LOSS = 0.005

#: The schedule families of ``--schedules`` by default: the textbook spacing and the default sampler's preset.
DEFAULT_FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(("linspace", DEFAULT_SCHEDULE)))
#: The family whose results fill the top-level keys (when it is run; else the first family).
PRIMARY_FAMILY = "linspace"


def _images(crop: int) -> dict[str, np.ndarray]:
    from ..data import heldout_crops

    return heldout_crops(crop)


def resolve_families(specs: Sequence[Any] | None = None) -> dict[str, Any]:
    """{family name: :class:`~adasr.diffusion.timesteps.Schedule`} of ``specs`` (names or Schedules; default
    :data:`DEFAULT_FAMILIES`), duplicates dropped, order kept. A family must give a list for every N (the
    policies give tiles different budgets), so an explicit list is refused (ValueError)."""
    from ..diffusion.timesteps import ExplicitSchedule, Schedule, get_schedule

    out: dict[str, Any] = {}
    for spec in specs or DEFAULT_FAMILIES:
        sched = get_schedule(spec)
        if isinstance(sched, ExplicitSchedule):
            raise ValueError(f"--schedules needs schedule families (a list for every N), not the explicit list "
                             f"{sched.name}")
        out.setdefault(spec.name if isinstance(spec, Schedule) else str(spec), sched)
    return out


def primary_family(names: Sequence[str]) -> str:
    """The family whose results the top-level keys hold: :data:`PRIMARY_FAMILY` if run, else the first."""
    return PRIMARY_FAMILY if PRIMARY_FAMILY in names else names[0]


def run_signature(kind: str, config: AdaptiveConfig, schedule: Any, num_train_timesteps: int = 1000) -> tuple:
    """What determines a run of ``kind`` with ``config`` on ``schedule`` (same model, images and seed): the policy,
    its config, every timestep list a tile can run (N_max's for uniform and early exit, N_min … N_max's for
    allocation and adasr) and η (the schedule's at N_max, else 0). Equal signatures give identical results: a
    preset whose lists and η match ``linspace``'s at those N (the shipped presets do from N = 10 on) is not run
    twice."""
    ns = range(config.n_min, config.n_max + 1) if kind in ("allocation", "adasr") else (config.n_max,)
    lists = tuple(tuple(schedule.timesteps(n, num_train_timesteps)) for n in ns)
    return kind, tuple(sorted(config.to_dict().items())), lists, float(schedule.eta_for(config.n_max) or 0.0)


class _Runner:
    """Runs one policy over a set of images with one model and records cost and quality."""

    def __init__(self, model, images: dict[str, np.ndarray], *, tile: int, overlap: int, seed: int, precision: str,
                 device, calibrations: dict[str, Any] | None = None) -> None:
        from ..data import downscale, to_tensor

        self.model, self.images, self.tile, self.overlap = model, images, tile, overlap
        self.seed, self.precision, self.device = seed, precision, device
        self.lr = {n: downscale(to_tensor(hr), 4) for n, hr in images.items()}
        #: complexity calibrations by estimator (they depend on the tiling only: shared between runners)
        self.calibrations: dict[str, Any] = {} if calibrations is None else calibrations
        #: measured runs by :func:`run_signature`, with the family that ran them
        self.measured: dict[tuple, tuple[str, dict[str, Any]]] = {}

    def measure(self, kind: str, config: AdaptiveConfig, label: str, family: str, schedule: Any) -> dict[str, Any]:
        """:meth:`run`, or a copy of an identical run already measured on another family (:func:`run_signature`;
        marked ``"same_as": that family``, its seconds those of that run)."""
        sig = run_signature(kind, config, schedule, self.model.num_train_timesteps)
        if sig in self.measured:
            fam, r = self.measured[sig]
            return {**r, "arm": label, "same_as": r.get("same_as", fam)}
        r = self.run(kind, config, label, schedule=schedule)
        self.measured[sig] = (family, r)
        return r

    def policy(self, kind: str, config: AdaptiveConfig, schedule: Any = "linspace"):
        cal = None
        if kind in ("allocation", "adasr") and config.normalize == "calibrated":
            if config.estimator not in self.calibrations:
                from ..adaptive.complexity import default_calibration, make_estimator

                fn = make_estimator(config.estimator, model=self.model)
                self.calibrations[config.estimator] = default_calibration(
                    config.estimator, tile=self.tile, overlap=self.overlap, estimator_fn=fn)
            cal = self.calibrations[config.estimator]
        return policy_for_model(kind, config, self.model, tile=self.tile, overlap=self.overlap, calibration=cal,
                                schedule=schedule)

    def run(self, kind: str, config: AdaptiveConfig, label: str | None = None,
            schedule: Any = "linspace") -> dict[str, Any]:
        """``kind`` with ``config`` on ``schedule``'s lists over the images: cost, quality, and the schedule and η
        the sampler ran with (η left to the schedule: its own at the policy's N, 0 for a spacing)."""
        from ..data import to_uint8
        from ..lpips import lpips_distance
        from ..metrics import psnr_y, ssim_y
        from ..upscaling import upscale_tensor

        rows = []
        described: dict[str, Any] = {}
        for name, lr in self.lr.items():
            pol = self.policy(kind, config, schedule)
            sr, rep, res = upscale_tensor(lr, model=self.model, policy=pol, tile=self.tile, overlap=self.overlap,
                                          seed=self.seed, precision=self.precision, device=self.device)
            described = {"schedule": rep.schedule, "eta": rep.eta}
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
            "arm": label or kind, "policy": kind, "config": config.to_dict(), **described, "images": rows,
            "tile_evaluations": evals, "tiles": tiles, "mean_steps_per_tile": evals / tiles,
            "seconds": sum(r["seconds"] for r in rows),
            **{k: float(np.mean([r[k] for r in rows])) for k in ("psnr_y", "ssim_y", "lpips")},
        }


def _summary(a: dict[str, Any]) -> str:
    """One progress line for a measured arm."""
    return (f"{a['arm']}: steps {a['mean_steps_per_tile']:.2f}, PSNR-Y {a['psnr_y']:.2f}, LPIPS {a['lpips']:.4f} "
            f"({a['seconds']:.1f} s)")


def _same(a: Mapping[str, Any]) -> str:
    """' (same lists and η as FAMILY: reused)' for a run copied from another family's, else ''."""
    return f" (same lists and η as {a['same_as']}: reused)" if a.get("same_as") else ""


def _compare(arm: dict, ref: dict) -> dict[str, Any]:
    c = {"eval_ratio": ref["tile_evaluations"] / arm["tile_evaluations"], "wall_ratio": ref["seconds"] / arm["seconds"],
         "psnr_loss_db": ref["psnr_y"] - arm["psnr_y"], "lpips_loss": arm["lpips"] - ref["lpips"]}
    c["targets_met"] = {
        "evals": c["eval_ratio"] >= TARGET_EVAL_RATIO, "wall": c["wall_ratio"] >= TARGET_WALL_RATIO,
        "psnr": c["psnr_loss_db"] <= TARGET_PSNR_LOSS_DB, "lpips": c["lpips_loss"] <= TARGET_LPIPS_LOSS}
    return c


def versus(arm: Mapping[str, Any], control: Mapping[str, Any]) -> dict[str, Any]:
    """An adaptive arm against a control at its budget: {"psnr_gain_db": arm − control (> 0: the arm is better),
    "lpips_gain": control − arm (> 0: the arm is better), "beats": {"psnr", "lpips", "both"}} (strictly better)."""
    g = {"psnr_gain_db": arm["psnr_y"] - control["psnr_y"], "lpips_gain": control["lpips"] - arm["lpips"]}
    beats = {"psnr": g["psnr_gain_db"] > 0, "lpips": g["lpips_gain"] > 0}
    return {**g, "beats": {**beats, "both": beats["psnr"] and beats["lpips"]}}


def best_uniform(by_schedule: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The best uniform control at one budget across schedule families, per metric: {"n": the budget, "psnr_y",
    "ssim_y" (highest), "lpips" (lowest), and "<metric>_schedule": the family that gives it} from
    {family: equal-budget control}."""
    out: dict[str, Any] = {"n": next(iter(by_schedule.values()))["n"]}
    for k, pick in (("psnr_y", max), ("ssim_y", max), ("lpips", min)):
        fam = pick(by_schedule, key=lambda f: by_schedule[f][k])
        out[k], out[f"{k}_schedule"] = by_schedule[fam][k], fam
    return out


def uniform_budgets(arms: Mapping[str, Mapping[str, Mapping[str, Any]]], n_max: int,
                    extra: Sequence[int] = ()) -> list[int]:
    """Every N uniform DDIM is run at (with every family): N_max, ⌊m⌋ and ⌈m⌉ of each adaptive arm's mean budget
    m in every family (``arms``: {family: {policy: run}}), and ``extra`` (the sweep's N); ascending."""
    out = {n_max, *extra}
    for fam in arms.values():
        for kind, a in fam.items():
            if kind != "uniform":
                m = a["mean_steps_per_tile"]
                out |= {max(1, int(np.floor(m))), max(1, int(np.ceil(m)))}
    return sorted(out)


def controls_and_comparisons(arms: Mapping[str, Mapping[str, Mapping[str, Any]]],
                             uniform: Mapping[str, Mapping[int, Mapping[str, Any]]],
                             n_max: int) -> dict[str, dict[str, Any]]:
    """Per family: the equal-budget controls and the comparisons of its adaptive arms, from the measured runs.

    ``arms``: {family: {policy: run}} (``uniform`` the uniform N_max run); ``uniform``: {family: {N: uniform run}}
    with every N of :func:`uniform_budgets` for every family. Returns {family: {"equal_budget_controls": {policy:
    the same family's control (:func:`~adasr.adaptive.equal_budget.equal_budget`)}, "cross_schedule_controls":
    {policy: {"by_schedule": {family: control}, "best": :func:`best_uniform`}}, "comparisons": {policy: against the
    same family's uniform N_max (:func:`_compare`: the targets), "vs_equal_budget": :func:`versus` the same
    family's control, "vs_best_uniform": :func:`versus` the best control across families, with the families
    that give it}}}."""
    out: dict[str, dict[str, Any]] = {}
    for fam, fam_arms in arms.items():
        controls, cross, comps = {}, {}, {}
        for kind, a in fam_arms.items():
            if kind == "uniform":
                continue
            m = a["mean_steps_per_tile"]
            lo, hi = max(1, int(np.floor(m))), max(1, int(np.ceil(m)))
            by = {g: equal_budget(u[lo], u[hi], m) for g, u in uniform.items()}
            controls[kind] = by[fam]
            best = best_uniform(by)
            cross[kind] = {"by_schedule": by, "best": best}
            comps[kind] = _compare(a, uniform[fam][n_max])
            comps[kind]["vs_equal_budget"] = versus(a, by[fam])
            comps[kind]["vs_best_uniform"] = {**versus(a, best), "psnr_schedule": best["psnr_y_schedule"],
                                              "lpips_schedule": best["lpips_schedule"]}
        out[fam] = {"equal_budget_controls": controls, "cross_schedule_controls": cross, "comparisons": comps}
    return out


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


def moon_case(runner_factory, config: AdaptiveConfig, schedule: Any = "linspace", *, family: str | None = None,
              runner: _Runner | None = None) -> dict[str, Any]:
    """The AdaSR README's Moon row, with our numbers: 512×512 moon, uniform N_max vs the 'adasr' policy, both on
    ``schedule``'s lists. Pass the ``runner`` of an earlier call (its images are the moon) to reuse runs that
    another family already measured identically (:meth:`_Runner.measure`)."""
    from ..data import load_skimage
    from ..diffusion.timesteps import get_schedule

    r = runner or runner_factory({"moon": load_skimage("moon")})
    sched = get_schedule(schedule)
    fam = family or sched.name
    base = r.measure("uniform", config, f"uniform N={config.n_max}", fam, sched)
    ada = r.measure("adasr", config, "adasr", fam, sched)
    return {"baseline": base, "adasr": ada, "speedup": base["seconds"] / ada["seconds"],
            "eval_ratio": base["tile_evaluations"] / ada["tile_evaluations"],
            "steps_saved_per_tile": base["mean_steps_per_tile"] - ada["mean_steps_per_tile"]}


def adaptive(
    *, config: AdaptiveConfig | None = None, schedules: Sequence[Any] | None = None, seed: int = 0,
    device: str | None = None, precision: str | None = None, crop: int = 256, tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP, sweep: bool = True, moon: bool = True, model_name: str | None = None,
    log: Log = no_log,
) -> dict[str, Any]:
    """Run the comparison (module docstring) for each family of ``schedules`` (default :data:`DEFAULT_FAMILIES`)
    with the registered weights ``model_name`` (default :data:`~adasr.defaults.DEFAULT_MODEL`; recorded as
    ``result["model"]``) and return everything as a JSON-ready dict; ``log`` receives one line per measured arm. Computes only: the
    speed–quality figure of the result is :func:`adasr.viz.adaptive.plot_speed_quality` (``adasr bench adaptive
    --figure``; it draws the top-level ``sweep``, the primary family's)."""
    from ..runtime import resolve_device, resolve_precision
    from ..upscaling import load_pretrained, upscale_tensor

    cfg = config or AdaptiveConfig()
    families = resolve_families(schedules)
    names = list(families)
    primary = primary_family(names)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model_name = model_name or DEFAULT_MODEL
    model = load_pretrained(model_name, device=dev)
    calibrations: dict[str, Any] = {}

    def factory(images):
        return _Runner(model, images, tile=tile, overlap=overlap, seed=seed, precision=prec, device=dev,
                       calibrations=calibrations)

    runner = factory(_images(crop))
    warm = next(iter(runner.lr.values()))  # warm-up: oneDNN kernels, MAC count, LPIPS weights
    upscale_tensor(warm, model=model, steps=1, schedule="linspace", tile=tile, overlap=overlap, precision=prec,
                   device=dev)
    t0 = time.perf_counter()
    arms: dict[str, dict[str, dict]] = {f: {} for f in names}
    uniform: dict[str, dict[int, dict]] = {f: {} for f in names}
    for f, sched in families.items():
        for i, kind in enumerate(POLICIES, 1):
            label = f"uniform N={cfg.n_max}" if kind == "uniform" else kind
            arms[f][kind] = runner.measure(kind, cfg, label, f, sched)
            log(f"[{f}] arm {i}/{len(POLICIES)} {_summary(arms[f][kind])}{_same(arms[f][kind])}")
        uniform[f][cfg.n_max] = arms[f]["uniform"]
    sweeps = sweep_configs(cfg) if sweep else []
    budgets = uniform_budgets(arms, cfg.n_max, [c.n_max for kind, c, _ in sweeps if kind == "uniform"])
    for n in budgets:  # every budget with every family, side by side
        for f, sched in families.items():
            if n not in uniform[f]:
                uniform[f][n] = runner.measure("uniform", cfg.with_(n_max=n), f"uniform N={n}", f, sched)
                log(f"[{f}] uniform control {_summary(uniform[f][n])}{_same(uniform[f][n])}")
    assembled = controls_and_comparisons(arms, uniform, cfg.n_max)
    blocks: dict[str, dict[str, Any]] = {}
    moon_runner = None
    if moon:
        from ..data import load_skimage

        moon_runner = factory({"moon": load_skimage("moon")})
    for f, sched in families.items():
        u = arms[f]["uniform"]
        blocks[f] = {"schedule": {**(u.get("schedule") or {"name": f}), "n": cfg.n_max, "eta": u.get("eta")},
                     "arms": arms[f], **assembled[f]}
        if sweep:
            pts = []
            for i, (kind, c, label) in enumerate(sweeps, 1):
                if kind == "uniform":
                    r = uniform[f][c.n_max]
                else:
                    r = runner.measure(kind, c, label, f, sched)
                    log(f"[{f}] sweep {i}/{len(sweeps)} {_summary(r)}{_same(r)}")
                pts.append({"label": label, "policy": kind, "schedule": f, "config": c.to_dict(),
                            **{k: r[k] for k in ("mean_steps_per_tile", "tile_evaluations", "seconds", "psnr_y",
                                                 "ssim_y", "lpips", "same_as") if k in r}})
            blocks[f]["sweep"] = pts
        if moon:
            blocks[f]["moon"] = moon_case(factory, cfg, sched, family=f, runner=moon_runner)
            log(f"[{f}] moon: {_summary(blocks[f]['moon']['baseline'])}; {_summary(blocks[f]['moon']['adasr'])}"
                f"{_same(blocks[f]['moon']['adasr'])}")
    p = blocks[primary]
    out: dict[str, Any] = {
        "benchmark": "adaptive", "model": model_name, "config": cfg.to_dict(), "seed": seed, "crop": crop, "tile": tile,
        "overlap": overlap, "device": str(dev), "precision": prec, "threads": torch.get_num_threads(),
        "schedules": names, "primary_schedule": primary,
        # the primary family under the keys of the results before the schedule families
        "arms": p["arms"], "equal_budget_controls": p["equal_budget_controls"], "comparisons": p["comparisons"],
        "families": blocks, "uniform": {f: {str(n): uniform[f][n] for n in sorted(uniform[f])} for f in names},
        "calibrations": {k: asdict(v) for k, v in calibrations.items()},
        "targets": {"eval_ratio": TARGET_EVAL_RATIO, "wall_ratio": TARGET_WALL_RATIO,
                    "psnr_loss_db": TARGET_PSNR_LOSS_DB, "lpips_loss": TARGET_LPIPS_LOSS},
    }
    if sweep:
        out["sweep"] = p["sweep"]
    if moon:
        out["moon"] = p["moon"]
    out["machine"] = machine_info(dev, prec)
    out["total_seconds"] = time.perf_counter() - t0
    return out


def uniform_curve(r: Mapping[str, Any], family: str | None = None, image: str | None = None) -> dict[str, list]:
    """The uniform DDIM runs of one family of a result (default: the primary) as a curve for
    :func:`~adasr.adaptive.equal_budget.uniform_at`: {"steps": [N, ascending], "psnr_y", "ssim_y", "lpips": [...]},
    the mean over the images or, with ``image``, that image's row of each run."""
    fam = family or r.get("primary_schedule") or primary_family(list(r["uniform"]))
    runs = sorted(r["uniform"][fam].values(), key=lambda a: a["mean_steps_per_tile"])
    if image is not None:
        rows = [next(row for row in a["images"] if row["image"] == image) for a in runs]
        steps = [float(np.mean(row["steps_per_tile"])) for row in rows]
    else:
        rows, steps = runs, [float(a["mean_steps_per_tile"]) for a in runs]
    return {"steps": steps, **{k: [float(row[k]) for row in rows] for k in ("psnr_y", "ssim_y", "lpips")}}


def _families(r: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """{family: block} of a result; a result from before the schedule families is one ``linspace`` block."""
    if "families" in r:
        return dict(r["families"])
    return {"linspace": {k: r[k] for k in ("arms", "equal_budget_controls", "comparisons", "sweep", "moon")
                         if k in r}}


def _beats(b: Mapping[str, bool]) -> str:
    if b["both"]:
        return "beats it on both"
    if b["psnr"] or b["lpips"]:
        return f"beats it on {'PSNR' if b['psnr'] else 'LPIPS'} only"
    return "beats it on neither"


def format_adaptive(r: dict[str, Any]) -> str:
    """Per schedule family: the arms, the equal-budget controls of the same family, the comparisons with their
    targets and against the best uniform schedule at the same budget; the uniform runs of every family side by
    side; the sweeps and the Moon tables."""
    c = r["config"]
    fams = _families(r)
    lines = [
        f"adaptive: held-out {r['crop']}×{r['crop']} crops ×4, tiles {r['tile']}/{r['overlap']}, "
        f"{r['device']}/{r['precision']}, seed {r['seed']}",
        f"N_max {c['n_max']}, N_min {c['n_min']}, estimator {c['estimator']} ({c['normalize']}, {c['mapping']}), "
        f"ε {c['epsilon']}, P {c['patience']}, T_min {c['warmup']}, exit per {c['exit_mode']}",
        "PSNR/SSIM on Y (BT.601), shave 4; LPIPS AlexNet (lower is better); steps = tile-evaluations per tile",
    ]
    for f, b in fams.items():
        s = b.get("schedule")
        if s:
            eta = f"η {s['eta']:g}" if s.get("eta") is not None else "η ?"
            lines.append(f"schedule {f}: {s.get('name', f)}, {eta} at N_max; timesteps at N_max {s.get('timesteps')}")
    head = f"{'arm':<22} {'steps':>6} {'evals':>6} {'sec':>7} {'PSNR-Y':>7} {'SSIM-Y':>7} {'LPIPS':>7}"
    if "uniform" in r and len(r["uniform"]) > 1:
        lines.append("uniform DDIM at every measured budget, schedules side by side (PSNR-Y / LPIPS / sec; "
                     "'=': the same lists and η as a family to its left, run once):")
        lines.append(f"{'N':>4}  " + "  ".join(f"{f[:24]:>24}" for f in r["uniform"]))
        ns = sorted({int(n) for u in r["uniform"].values() for n in u})
        for n in ns:
            cells = []
            for u in r["uniform"].values():
                a = u.get(str(n))
                cells.append((f"{a['psnr_y']:7.2f} {a['lpips']:7.4f} {a['seconds']:7.2f}"
                              + ("=" if a.get("same_as") else " ")) if a else f"{'—':>24}")
            lines.append(f"{n:>4}  " + "  ".join(f"{x:>24}" for x in cells))
    for f, b in fams.items():
        tiles = b["arms"]["uniform"]["tiles"]

        def row(label: str, a: dict) -> str:
            steps = a.get("mean_steps_per_tile", a["tile_evaluations"] / tiles)
            return (f"{label:<22} {steps:6.2f} {a['tile_evaluations']:6d} {a['seconds']:7.2f} {a['psnr_y']:7.2f} "
                    f"{a['ssim_y']:7.4f} {a['lpips']:7.4f}")

        lines += [f"== schedule {f} ==", head]
        for a in b["arms"].values():
            lines.append(row(a["arm"], a) + (f"  = {a['same_as']}" if a.get("same_as") else ""))
        lines.append(f"equal-budget uniform controls ({f}):")
        for k, ctl in b["equal_budget_controls"].items():
            lines.append(row(f"  N={ctl['n']:.2f} for {k}", ctl))
        lines.append(f"against uniform N={c['n_max']} {f} (targets: evals ≥{TARGET_EVAL_RATIO:g}×, "
                     f"wall ≥{TARGET_WALL_RATIO:g}×, PSNR loss ≤{TARGET_PSNR_LOSS_DB} dB, LPIPS loss "
                     f"≤{TARGET_LPIPS_LOSS}), and against uniform {f} at the same budget:")
        for k, cmp in b["comparisons"].items():
            met = cmp["targets_met"]
            eb = cmp["vs_equal_budget"]
            verdict = f" ({_beats(eb['beats'])})" if "beats" in eb else ""
            lines.append(
                f"  {k:<11} evals {cmp['eval_ratio']:5.2f}× ({'met' if met['evals'] else 'NOT met'}), "
                f"wall {cmp['wall_ratio']:5.2f}× ({'met' if met['wall'] else 'NOT met'}), "
                f"PSNR {-cmp['psnr_loss_db']:+.2f} dB ({'met' if met['psnr'] else 'NOT met'}), "
                f"LPIPS {cmp['lpips_loss']:+.4f} ({'met' if met['lpips'] else 'NOT met'}); "
                f"vs equal budget: PSNR {eb['psnr_gain_db']:+.2f} dB, LPIPS {-eb['lpips_gain']:+.4f}{verdict}")
        if any("vs_best_uniform" in cmp for cmp in b["comparisons"].values()):
            lines.append(f"against the best uniform schedule at the same budget (per metric, across "
                         f"{', '.join(fams)}):")
            for k, cmp in b["comparisons"].items():
                v = cmp["vs_best_uniform"]
                lines.append(f"  {k:<11} PSNR {v['psnr_gain_db']:+.2f} dB (vs {v['psnr_schedule']}), "
                             f"LPIPS {-v['lpips_gain']:+.4f} (vs {v['lpips_schedule']}): {_beats(v['beats'])}")
    for f, b in fams.items():
        if b.get("sweep"):
            lines.append(f"sweep (speed–quality curve), {f}:")
            for p in b["sweep"]:
                lines.append(f"  {p['label']:<22} steps {p['mean_steps_per_tile']:6.2f}  sec {p['seconds']:6.2f}  "
                             f"PSNR-Y {p['psnr_y']:6.2f}  LPIPS {p['lpips']:.4f}"
                             + (f"  = {p['same_as']}" if p.get("same_as") else ""))
    for f, b in fams.items():
        if b.get("moon"):
            lines.append(f"Moon, {f}:")
            lines.append(format_moon_table(b["moon"]))
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


def _schedule_list(text: str) -> list[str]:
    return [s for s in (t.strip() for t in text.split(",")) if s]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options: ``--n-max`` (the uniform baseline's N, N_max of the adaptive arms), ``--schedules``
    (the schedule families) and the adaptive options of ``adasr upscale``, generated from
    :class:`~adasr.config.AdaptiveConfig` (same flags, help and defaults: one place)."""
    p.add_argument("--n-max", type=int, default=None, metavar="N",
                   help=f"N_max: steps of the uniform baseline (default: {AdaptiveConfig().n_max})")
    p.add_argument("--schedules", type=_schedule_list, default=None, metavar="NAME[,NAME…]",
                   help=f"schedule families to run every arm on, comma-separated (default: "
                        f"{','.join(DEFAULT_FAMILIES)}); names as --schedule of adasr upscale, not explicit lists")
    add_config_arguments(p, AdaptiveConfig)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sweep", action="store_true", help="skip the speed–quality sweep")
    p.add_argument("--no-moon", action="store_true", help="skip the 512×512 Moon case")
    p.add_argument("--figure", metavar="PNG", default=None, help="write the speed–quality curve figure here")
    add_model_argument(p)
    add_device_arguments(p)


def config_from_args(args: argparse.Namespace) -> AdaptiveConfig:
    """The :class:`AdaptiveConfig` of the options given (the dataclass defaults for the others)."""
    given = given_values(AdaptiveConfig, args)
    if args.n_max is not None:
        given["n_max"] = args.n_max
    return AdaptiveConfig(**given)


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    return adaptive(config=config_from_args(args), schedules=args.schedules, seed=args.seed, device=args.device,
                    precision=args.precision, sweep=not args.no_sweep, moon=not args.no_moon,
                    model_name=args.model, log=log)


__all__ = ["DEFAULT_FAMILIES", "PRIMARY_FAMILY", "TARGET_EVAL_RATIO", "TARGET_LPIPS_LOSS", "TARGET_PSNR_LOSS_DB",
           "TARGET_WALL_RATIO", "adaptive", "add_arguments", "best_uniform", "config_from_args",
           "controls_and_comparisons", "format_adaptive", "format_moon_table", "format_result", "moon_case",
           "primary_family", "resolve_families", "run_args", "run_signature", "sweep_configs", "uniform_budgets",
           "uniform_curve", "versus"]
