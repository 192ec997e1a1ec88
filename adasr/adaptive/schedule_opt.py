"""Optimised sampling schedules: which timesteps, for N = 1 … 10, on crops of the training photos.

Method: an exhaustive search over parameterised schedule families, the approach of Karras et al. (2022, "Elucidating
the design space of diffusion-based generative models", §3: the ρ-spacing is chosen by sweeping ρ and scoring the
samples), extended to a low-noise power family and to DDIM's η. Align Your Steps (Sabour et al. 2024) optimises the
individual timesteps of a schedule against a bound on the sampling error instead; with a model of 7 M parameters
and a CPU budget of minutes a family search scores the *real* objective (LPIPS and PSNR-Y of the finished SR image),
which AYS's proxy does not. Candidates for each N:

* the power family :class:`~adasr.diffusion.timesteps.PowerSchedule` t_i = t_end + (T − 1 − t_end)(1 − i/(N−1))^ρ
  over ``t_ends`` × ``rhos`` (N = 2: [T − 1, t_end] for every ρ),
* EDM's :class:`~adasr.diffusion.timesteps.KarrasSchedule` (ρ = 7) over ``karras_t_ends``,
* the diffusers spacings ``linspace`` and ``trailing``,

each at every η of ``etas`` (0: deterministic DDIM; 1: DDPM's posterior noise), with identical (list, η) pairs
scored once. Each candidate samples every training crop (seed 0, the same noise for every candidate: common random
numbers) with the tile sampler; the score is the mean PSNR-Y (shave 4) and the mean LPIPS (AlexNet) over the crops.

**Objective and presets.** There is no single objective: for each N the result keeps the perception–distortion
frontier (candidates no other beats on both metrics) and three presets, measured against the reference — today's
default, DDIM-10 ``linspace`` η = 0, on the same crops:

* ``perceptual``: the lowest LPIPS among the candidates whose PSNR-Y is no worse than the reference's;
* ``fidelity``: the highest PSNR-Y among the candidates whose LPIPS is no worse than the reference's;
* ``balanced``: the candidate that maximises min(ΔLPIPS/LPIPS_ref, 1 − 10^(−ΔPSNR/10)), the smaller of its two
  relative error reductions (LPIPS and MSE), so it improves both metrics as evenly as possible.

When no candidate meets a preset's constraint (small N), the preset takes the frontier point closest to meeting it
and records ``constraint_met: false``. The held-out images (astronaut, camera, moon) are never used here.

Run ``python -m adasr.adaptive.schedule_opt`` to rebuild ``adasr/weights/schedules.json`` (about 15 minutes with
bf16 on 2 cores); ``--out FILE`` writes elsewhere without registering, and ``--model NAME --out FILE`` searches the
schedules of other registered weights (a fine-tuned model, whose best schedule may move).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data import TRAIN_IMAGES, CropSampler, make_pair, to_uint8
from ..diffusion.timesteps import ExplicitSchedule, family_schedule

#: today's default, the reference every preset is measured against
REFERENCE = {"family": "linspace", "params": {}, "eta": 0.0, "n": 10}


@dataclass(frozen=True)
class SearchSpace:
    """The candidates of the search (module docstring)."""

    steps: tuple[int, ...] = tuple(range(1, 11))
    t_ends: tuple[int, ...] = (0, 5, 10, 20, 30, 50, 80)
    rhos: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
    karras_t_ends: tuple[int, ...] = (0, 10, 20, 50)
    spacings: tuple[str, ...] = ("linspace", "trailing")
    etas: tuple[float, ...] = (0.0, 0.5, 1.0)

    def candidates(self, n: int, num_train_timesteps: int = 1000) -> list[dict[str, Any]]:
        """Distinct {family, params, eta, timesteps} for ``n`` steps (first of identical (list, η) pairs kept)."""
        shapes: list[tuple[str, dict[str, Any]]] = [("power", {"t_end": t, "rho": r})
                                                    for t, r in itertools.product(self.t_ends, self.rhos)]
        shapes += [("karras", {"rho": 7.0, "t_end": t}) for t in self.karras_t_ends]
        shapes += [(s, {}) for s in self.spacings]
        out, seen = [], set()
        for (family, params), eta in itertools.product(shapes, self.etas):
            try:
                ts = family_schedule(family, params).timesteps(n, num_train_timesteps)
            except ValueError:  # t_end too close to T for n steps
                continue
            key = (tuple(ts), eta if n > 1 else 0.0)  # one step ends on ᾱ = 1: η plays no part
            if key in seen:
                continue
            seen.add(key)
            out.append({"n": n, "family": family, "params": params, "eta": key[1], "timesteps": ts})
        return out


def training_crops(count: int = 16, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``count`` seeded random HR crops (count, 3, size, size) in [−1, 1] of the training photos
    (:data:`~adasr.data.TRAIN_IMAGES`, area-weighted, with flips and rotations: :class:`~adasr.data.CropSampler`)."""
    return CropSampler.from_names(TRAIN_IMAGES, size).sample(count, torch.Generator().manual_seed(seed))


def score_schedule(model, hr: torch.Tensor, timesteps: Sequence[int], eta: float, *, seed: int = 0,
                   precision: str = "fp32", device: str | torch.device = "cpu") -> dict[str, Any]:
    """Sample every crop of ``hr`` (B, 3, s, s) with the fixed list ``timesteps`` and η, and score it.

    The crops are laid side by side as one (1, 3, s, B·s) image cut into B tiles of s with no overlap, so the
    tile sampler runs them as one batch and each tile is exactly one crop. Returns the per-crop and mean
    PSNR-Y (shave 4) and LPIPS."""
    from ..lpips import lpips_distance
    from ..metrics import psnr_y
    from ..sampling.loop import sample_tiles
    from ..sampling.policies import UniformDDIM

    b, _, s, _ = hr.shape
    _, up = make_pair(hr, model.config.scale)
    strip = torch.cat(list(up), dim=-1)[None].to(device)  # (1, 3, s, B·s)
    res = sample_tiles(model, strip, policy=UniformDDIM(len(timesteps), ExplicitSchedule(tuple(timesteps))),
                       tile=s, overlap=0, seed=seed, eta=eta, precision=precision)
    sr = model.output(res.x0.to(device), strip).float().cpu()
    psnr, lp = [], []
    for k in range(b):
        a, ref = to_uint8(sr[..., k * s:(k + 1) * s]), to_uint8(hr[k])
        psnr.append(psnr_y(a, ref, shave=4))
        lp.append(lpips_distance(a, ref))
    return {"psnr_y": float(np.mean(psnr)), "lpips": float(np.mean(lp)), "psnr_per_crop": psnr, "lpips_per_crop": lp}


def pareto_front(points: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the points that no other point beats on both metrics (lower LPIPS and higher PSNR-Y, one of
    them strictly), sorted by LPIPS."""
    idx = []
    for i, p in enumerate(points):
        dominated = any((q["lpips"] <= p["lpips"] and q["psnr_y"] >= p["psnr_y"])
                        and (q["lpips"] < p["lpips"] or q["psnr_y"] > p["psnr_y"]) for q in points)
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: points[i]["lpips"])


def balanced_score(p: dict[str, Any], ref: dict[str, Any]) -> float:
    """min(ΔLPIPS/LPIPS_ref, 1 − 10^(−ΔPSNR/10)): the smaller relative error reduction (LPIPS, MSE) over ``ref``."""
    d_lpips = (ref["lpips"] - p["lpips"]) / ref["lpips"]
    d_mse = 1 - 10 ** (-(p["psnr_y"] - ref["psnr_y"]) / 10)
    return float(min(d_lpips, d_mse))


def choose_presets(points: Sequence[dict[str, Any]], ref: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three presets among ``points`` (the candidates of one N) against ``ref`` (module docstring)."""
    front = [points[i] for i in pareto_front(points)]
    ok_p = [p for p in points if p["psnr_y"] >= ref["psnr_y"]]
    ok_l = [p for p in points if p["lpips"] <= ref["lpips"]]
    perceptual = (min(ok_p, key=lambda p: p["lpips"]) if ok_p else max(front, key=lambda p: p["psnr_y"]))
    fidelity = (max(ok_l, key=lambda p: p["psnr_y"]) if ok_l else min(front, key=lambda p: p["lpips"]))
    balanced = max(points, key=lambda p: balanced_score(p, ref))
    return {
        "perceptual": {**perceptual, "constraint_met": bool(ok_p)},
        "fidelity": {**fidelity, "constraint_met": bool(ok_l)},
        "balanced": {**balanced, "constraint_met": balanced_score(balanced, ref) > 0,
                     "score": balanced_score(balanced, ref)},
    }


def optimise(model, space: SearchSpace = SearchSpace(), *, crops: int = 16, crop: int = 64, seed: int = 0,
             precision: str = "fp32", device: str | torch.device = "cpu", progress: bool = True,
             log=lambda s: None, cache: str | Path | None = None) -> dict[str, Any]:
    """Score every candidate of ``space`` on ``crops`` training crops and choose the presets (module docstring).

    ``cache``: a JSON-lines file that receives each candidate's score as it is measured; a re-run with the same
    settings (crops, crop, seed, precision) reads them back instead of sampling again."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    settings = {"crops": crops, "crop": crop, "seed": seed, "precision": precision}
    hr = training_crops(crops, crop, seed)
    T = model.num_train_timesteps
    cands = [c for n in space.steps for c in space.candidates(n, T)]
    ref_ts = family_schedule(REFERENCE["family"], REFERENCE["params"]).timesteps(REFERENCE["n"], T)
    if not any(c["timesteps"] == ref_ts and c["eta"] == REFERENCE["eta"] for c in cands):
        cands.append({"n": REFERENCE["n"], "family": REFERENCE["family"], "params": {}, "eta": REFERENCE["eta"],
                      "timesteps": ref_ts})
    done: dict[str, dict[str, Any]] = {}
    if cache is not None and Path(cache).exists():  # resume: scores of an interrupted run with the same settings
        for line in Path(cache).read_text().splitlines():
            row = json.loads(line)
            if row.get("settings") == settings:
                done[row["key"]] = row
    scored = []
    for c in tqdm(cands, desc="schedules", unit="candidate", disable=not progress):
        key = json.dumps([c["timesteps"], c["eta"]])
        if key not in done:
            s = score_schedule(model, hr, c["timesteps"], c["eta"], seed=seed, precision=precision, device=device)
            done[key] = {"key": key, "settings": settings, "psnr_y": round(s["psnr_y"], 4),
                         "lpips": round(s["lpips"], 5)}
            if cache is not None:
                with open(cache, "a") as f:
                    f.write(json.dumps(done[key]) + "\n")
        scored.append({**c, "psnr_y": done[key]["psnr_y"], "lpips": done[key]["lpips"]})
    ref = next(c for c in scored if c["timesteps"] == ref_ts and c["eta"] == REFERENCE["eta"])
    presets: dict[str, dict[str, Any]] = {"perceptual": {}, "balanced": {}, "fidelity": {}}
    frontier = {}
    for n in space.steps:
        pts = [c for c in scored if c["n"] == n]
        frontier[str(n)] = [pts[i]["timesteps"] + [pts[i]["eta"]] for i in pareto_front(pts)]
        for name, p in choose_presets(pts, ref).items():
            presets[name][str(n)] = p
            log(f"N={n} {name:<10} {p['family']:<8} {json.dumps(p['params']):<28} η={p['eta']:<4} "
                f"{p['timesteps']}: PSNR-Y {p['psnr_y']:.2f} LPIPS {p['lpips']:.4f}"
                + ("" if p["constraint_met"] else "  (constraint not met)"))
    return {
        "method": "exhaustive search over parameterised families (Karras et al. 2022 §3) and DDIM η; "
                  "adasr.adaptive.schedule_opt",
        "objective": "mean PSNR-Y (shave 4) and mean LPIPS (AlexNet) of the SR output on the training crops; "
                     "presets: perceptual = min LPIPS s.t. PSNR-Y >= reference, fidelity = max PSNR-Y s.t. "
                     "LPIPS <= reference, balanced = max min(dLPIPS/LPIPS_ref, 1 - 10^(-dPSNR/10))",
        "reference": ref, "space": asdict(space), "presets": presets, "frontier": frontier,
        "candidates": [{k: c[k] for k in ("n", "family", "params", "eta", "psnr_y", "lpips")} for c in scored],
        "data": {"images": list(TRAIN_IMAGES), "crops": crops, "crop": crop, "seed": seed,
                 "sampler": f"tile sampler, one {crop}² tile per crop, noise seed {seed}"},
        "precision": precision, "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    from ..registry import register_json
    from ..runtime import resolve_device, resolve_precision
    from ..upscaling import load_pretrained

    p = argparse.ArgumentParser(prog="python -m adasr.adaptive.schedule_opt", description=__doc__.split("\n")[0])
    p.add_argument("--crops", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--model", default=None, metavar="NAME",
                   help="the registered diffusion weights to search for (default: the default model); another model "
                        "needs --out, since the shipped presets belong to the default model")
    p.add_argument("--out", default=None, help="write the JSON here instead of registering it in adasr/weights")
    p.add_argument("--cache", default=None,
                   help="JSON-lines file of the scores measured so far (an interrupted run resumes from it; default "
                        "runs/schedule_opt_cache.jsonl, runs/schedule_opt_cache_NAME.jsonl with --model NAME: scores "
                        "belong to one set of weights)")
    args = p.parse_args(argv)
    from ..defaults import DEFAULT_MODEL

    if args.model not in (None, DEFAULT_MODEL) and not args.out:
        p.error(f"--model {args.model}: give --out FILE (the registered presets are those of {DEFAULT_MODEL})")
    if args.cache is None:
        args.cache = ("runs/schedule_opt_cache.jsonl" if args.model in (None, DEFAULT_MODEL)
                      else f"runs/schedule_opt_cache_{args.model}.jsonl")
    dev = resolve_device("auto")
    prec = resolve_precision(args.precision, dev)
    model = load_pretrained(args.model or DEFAULT_MODEL, device=dev)
    space = SearchSpace(steps=tuple(range(1, args.max_steps + 1)))
    if args.cache:
        Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    result = optimise(model, space, crops=args.crops, crop=args.crop, seed=args.seed, precision=prec, device=dev,
                      log=lambda s: print(s, file=sys.stderr, flush=True), cache=args.cache or None)
    command = "python -m adasr.adaptive.schedule_opt " + " ".join(argv if argv is not None else sys.argv[1:])
    result["command"] = command.strip()
    result["model"] = args.model or DEFAULT_MODEL
    out = Path(args.out) if args.out else Path(args.cache or "schedule_opt").with_suffix(".result.json")
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")  # kept even if registering fails
    if not args.out:
        register_json("schedules", result, command=result["command"], seconds=result["seconds"],
                      data=result["data"], description="optimised sampling schedules (adasr.adaptive.schedule_opt)")
    print(f"{len(result['candidates'])} candidates in {result['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["REFERENCE", "SearchSpace", "balanced_score", "choose_presets", "main", "optimise", "pareto_front",
           "score_schedule", "training_crops"]
