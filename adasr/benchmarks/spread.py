"""``adasr bench spread``: do the small differences the notebooks conclude from survive other seeds and crops?

Notebooks 05, 06 and 10 draw conclusions from differences smaller than about 0.01 LPIPS or 0.1 dB PSNR, each
measured once (seed 0) on the three 256² held-out centre crops. This benchmark repeats those paired comparisons on
**twelve crops** (the four 256² quadrants of each 512² held-out photo: astronaut, camera, moon; ×4 from bicubic-↓4
LR) and **three seeds** (0, 1, 2), with the arms built by the same code as ``adasr bench adaptive`` and
``adasr bench quant``:

1. notebook 05: the ``allocation`` policy (:class:`~adasr.adaptive.policy.AdaptiveConfig` defaults, as
   ``adasr bench adaptive``) against uniform DDIM at the same average budget (the equal-budget control,
   :func:`~adasr.adaptive.equal_budget.equal_budget`), on the ``linspace`` family and on
   :data:`~adasr.defaults.DEFAULT_SCHEDULE` (the families of ``adasr bench adaptive``);
2. notebook 06: the ``early-exit`` policy against its equal-budget control, same two families;
3. notebook 10: the diffusion UNet ``sr_x4`` at the default sampler, fake-quantized (fp32), AdaBM b_base 6 against
   fixed W8A6 and AdaBM b_base 4 against fixed W8A4 (W8 weights; calibrated as ``adasr bench quant``).

**The equal-budget control per seed.** For seed s the adaptive arm spends m_s tile-evaluations per tile on average
over the twelve crops (as ``bench adaptive`` averages over its three). Uniform DDIM runs at ⌊m_s⌋ and ⌈m_s⌉ steps on
every crop, and each crop's control is the interpolation q(m_s) = (1 − w)·q(⌊m_s⌋) + w·q(⌈m_s⌉),
w = m_s − ⌊m_s⌋. So the 12-crop mean of the per-crop differences is exactly ``bench adaptive``'s
"vs equal budget" gain on these crops (the budget is matched on the mean, not crop by crop).

**Statistics** of the gains d_{s,c} (seed s, crop c; PSNR gain = arm − control in dB, LPIPS gain = control − arm,
so > 0 means the arm is better on both, as :func:`~adasr.benchmarks.adaptive.versus`), n = S·C pairs
(:func:`pair_stats`):

* mean d̄ = (1/n) Σ d_{s,c}; std over seeds of the C-crop means d̄_s; std over the n pairs, σ;
* standard error SE = σ/√n and the verdict: the difference is **resolved** when |d̄| > 2·SE; the notebook's
  conclusion (the sign of the committed single-seed value) **survives** when it is resolved with that sign,
  is **reversed** when it is resolved with the other sign, and is **not resolved** otherwise;
* the share of pairs whose sign agrees with d̄, and the crop-clustered SE (std of the C per-crop means over
  seeds, /√C): the pairs of one crop share its content, so this one is the more conservative.

Every finished (arm, image, crop, seed) measurement is appended to a JSON-lines cache next to ``--json`` (or
``--cache``), so an interrupted run resumes where it stopped; a tqdm bar counts the crop runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .runner import Log, add_device_arguments, machine_info, no_log

#: Seeds of the initial noise.
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
#: Side of a crop: the four quadrants of the 512² held-out photos.
DEFAULT_CROP = 256
#: A difference is resolved when |mean| > RESOLVE_SE × its standard error over the (crop, seed) pairs.
RESOLVE_SE = 2.0
#: Seconds of one 128² tile-evaluation of sr_x4 in bf16 on this machine when idle (AMX; 2 threads), and of one
#: fake-quantized fp32 evaluation (``bench quant``: ~3.1 s for 2 steps × 9 tiles): the cost estimate's units.
SECONDS_PER_EVAL_BF16 = 0.10
SECONDS_PER_EVAL_FAKEQUANT = 0.17
#: AdaBM base bits of the UNet comparisons (weights W8), as ``bench quant``.
UNET_B_BASES: tuple[int, ...] = (6, 4)
#: Calibration of the UNet arms: training crops and their side (:func:`~adasr.benchmarks.quant.unet_arms`' defaults).
UNET_N_CALIB = 8
UNET_CALIB_CROP = 128

#: name → (notebook, arm, control). Adaptive arms are "POLICY/FAMILY" against the equal-budget uniform control of
#: the same family ("equal-budget"); quantized arms are "quant/LABEL" against another quantized arm. The default
#: order is the run order: the cheap UNet quantization pairs (2 steps), then allocation (the smallest committed
#: differences), then early exit (the largest).
COMPARISONS: dict[str, tuple[str, str, str]] = {
    "adabm6-vs-W8A6": ("10", "quant/AdaBM W8 b_base 6", "quant/W8A6"),
    "adabm4-vs-W8A4": ("10", "quant/AdaBM W8 b_base 4", "quant/W8A4"),
    "allocation/balanced": ("05", "allocation/balanced", "equal-budget"),
    "allocation/linspace": ("05", "allocation/linspace", "equal-budget"),
    "early-exit/balanced": ("06", "early-exit/balanced", "equal-budget"),
    "early-exit/linspace": ("06", "early-exit/linspace", "equal-budget"),
}

#: A measurement: arm id, crop key "IMAGE/QUADRANT", seed → {"psnr_y", "lpips", "tile_evaluations", "tiles",
#: "mean_steps_per_tile", "seconds", …}.
Measure = Callable[[str, str, int], dict[str, Any]]


def quadrant_crops(size: int = DEFAULT_CROP) -> dict[str, np.ndarray]:
    """{"IMAGE/q": uint8 (size, size, 3)}: the four quadrants q = 0 (top left), 1 (top right), 2 (bottom left),
    3 (bottom right) of each held-out photo's central (2·size)² window (:func:`adasr.data.heldout_crops`; the whole
    512² photo for size 256)."""
    from .. import data

    out: dict[str, np.ndarray] = {}
    for name, img in data.heldout_crops(2 * size).items():
        for q in range(4):
            r, c = divmod(q, 2)
            out[f"{name}/{q}"] = np.ascontiguousarray(img[r * size:(r + 1) * size, c * size:(c + 1) * size])
    return out


def family_of(comparison: str) -> str | None:
    """The schedule family of an adaptive comparison ("allocation/balanced" → "balanced"), None for quantization."""
    arm = COMPARISONS[comparison][1]
    return None if arm.startswith("quant/") else arm.split("/", 1)[1]


def uniform_arm(family: str, n: int) -> str:
    """The id of uniform DDIM at ``n`` steps of ``family``: "uniform/FAMILY/N"."""
    return f"uniform/{family}/{n}"


def budget_bracket(mean_steps: float) -> tuple[int, int]:
    """(⌊m⌋, ⌈m⌉), at least 1: the uniform runs the equal-budget control at m interpolates between."""
    return max(1, int(math.floor(mean_steps))), max(1, int(math.ceil(mean_steps)))


def pair_stats(d: Any, quoted: float | None = None, k: float = RESOLVE_SE) -> dict[str, Any]:
    """Statistics of paired gains ``d`` (S seeds, C crops) — > 0: the arm is better — and the verdict on the
    conclusion ``quoted`` (the committed single-seed gain whose sign the notebook concludes from; None: only
    whether the difference is resolved).

    mean d̄; ``std_seeds``: sample std (ddof 1) of the S per-seed means over crops; ``std_pairs`` σ: sample std of
    the n = S·C gains; ``se`` = σ/√n; ``se_crops``: sample std of the C per-crop means over seeds, /√C;
    ``sign_agreement``: share of the n gains with the sign of d̄; ``resolved``: |d̄| > k·SE (``resolved_crops``: the
    same with ``se_crops``); spreads undefined for one seed, crop or pair are None; ``verdict``: "survives" (resolved, the sign of ``quoted``), "reversed" (resolved, the
    other sign) or "not resolved"."""
    a = np.asarray(d, dtype=float)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected gains of shape (seeds, crops), got {a.shape}")
    s, c = a.shape
    n = a.size
    mean = float(a.mean())
    seed_means, crop_means = a.mean(axis=1), a.mean(axis=0)
    std_pairs = float(a.std(ddof=1)) if n > 1 else float("nan")
    se = std_pairs / math.sqrt(n) if n > 1 else float("nan")
    se_crops = float(crop_means.std(ddof=1)) / math.sqrt(c) if c > 1 else float("nan")
    resolved = bool(abs(mean) > k * se) if n > 1 else False
    if not resolved:
        verdict = "not resolved"
    elif quoted is None or np.sign(quoted) == np.sign(mean):
        verdict = "survives"
    else:
        verdict = "reversed"
    def num(x: float) -> float | None:  # strict JSON: undefined spreads (one seed, one crop) are null
        return None if math.isnan(x) else x

    return {
        "mean": mean, "std_seeds": float(seed_means.std(ddof=1)) if s > 1 else None,
        "std_pairs": num(std_pairs), "se": num(se), "se_crops": num(se_crops), "n_pairs": n, "seeds": s, "crops": c,
        "sign_agreement": float(np.mean(np.sign(a) == np.sign(mean))), "resolved": resolved,
        "resolved_crops": bool(abs(mean) > k * se_crops) if c > 1 else False, "k": k,
        "quoted": quoted, "verdict": verdict,
        "seed_means": [float(x) for x in seed_means], "crop_means": [float(x) for x in crop_means],
    }


def gains(arm: Mapping[str, float], control: Mapping[str, float]) -> dict[str, float]:
    """{"psnr_gain_db": arm − control, "lpips_gain": control − arm}: > 0 when the arm is better (the convention of
    :func:`~adasr.benchmarks.adaptive.versus`)."""
    return {"psnr_gain_db": float(arm["psnr_y"]) - float(control["psnr_y"]),
            "lpips_gain": float(control["lpips"]) - float(arm["lpips"])}


def quoted_gains(comparison: str, adaptive_result: Mapping[str, Any] | None,
                 quant_result: Mapping[str, Any] | None) -> dict[str, float | None]:
    """The committed single-seed gains of ``comparison`` (what the notebooks quote): ``bench adaptive``'s
    ``families[FAMILY].comparisons[POLICY].vs_equal_budget``, or ``bench quant``'s UNet arm means; None where the
    result is missing."""
    none = {"psnr_gain_db": None, "lpips_gain": None}
    _, arm, control = COMPARISONS[comparison]
    try:
        if arm.startswith("quant/"):
            u = quant_result["unet"]["arms"]  # type: ignore[index]
            return gains(u[arm.split("/", 1)[1]]["mean"], u[control.split("/", 1)[1]]["mean"])
        kind, fam = arm.split("/", 1)
        v = adaptive_result["families"][fam]["comparisons"][kind]["vs_equal_budget"]  # type: ignore[index]
        return {"psnr_gain_db": float(v["psnr_gain_db"]), "lpips_gain": float(v["lpips_gain"])}
    except (KeyError, TypeError):
        return none


def guess_mean_steps(comparison: str, adaptive_result: Mapping[str, Any] | None, n_max: int) -> float:
    """The adaptive arm's mean steps per tile in the committed ``bench adaptive`` result (N_max if absent): what
    the cost estimate assumes before the arm has run."""
    kind, fam = COMPARISONS[comparison][1].split("/", 1)
    try:
        return float(adaptive_result["families"][fam]["arms"][kind]["mean_steps_per_tile"])  # type: ignore[index]
    except (KeyError, TypeError):
        return float(n_max)


def plan_cost(comparisons: Sequence[str], *, seeds: int, crops: int, tiles_per_crop: int, quant_steps: int,
              guesses: Mapping[str, float]) -> dict[str, Any]:
    """Tile-evaluations the run needs and seconds at :data:`SECONDS_PER_EVAL_BF16` (float arms) and
    :data:`SECONDS_PER_EVAL_FAKEQUANT` (quantized arms), on an idle machine.

    Per crop and seed an adaptive comparison costs m (the arm, ``guesses[comparison]``) + ⌊m⌋ + ⌈m⌉ (the two
    uniform runs; one when m is an integer) evaluations per tile; a quantized comparison 2·``quant_steps``. A
    quantized arm shared by two comparisons is counted once. Returns {"comparisons": {name: {"tile_evaluations",
    "seconds", "crop_runs"}}, "tile_evaluations", "seconds", "crop_runs"}."""
    per: dict[str, dict[str, float]] = {}
    seen_quant: set[str] = set()
    pairs = seeds * crops
    for name in comparisons:
        _, arm, control = COMPARISONS[name]
        if control == "equal-budget":
            m = guesses[name]
            lo, hi = budget_bracket(m)
            steps = m + lo + (hi if hi != lo else 0)
            runs = 2 + (hi != lo)
            evals = steps * tiles_per_crop * pairs
            secs = evals * SECONDS_PER_EVAL_BF16
        else:
            new = [a for a in (arm, control) if a not in seen_quant]
            seen_quant.update(new)
            runs = len(new)
            evals = runs * quant_steps * tiles_per_crop * pairs
            secs = evals * SECONDS_PER_EVAL_FAKEQUANT
        per[name] = {"tile_evaluations": int(round(evals)), "seconds": float(secs), "crop_runs": runs * pairs}
    return {"comparisons": per, "tile_evaluations": sum(p["tile_evaluations"] for p in per.values()),
            "seconds": sum(p["seconds"] for p in per.values()),
            "crop_runs": sum(p["crop_runs"] for p in per.values())}


class _NotCached(Exception):
    """A run missing from the cache when only cached runs may be reported."""


class ResultCache:
    """The finished measurements of a run: {(arm, image, crop, seed): result}, read from and appended to a
    JSON-lines file (one ``{"key": [arm, image, crop, seed], "settings": …, "result": …}`` per line; lines of other
    ``settings`` are ignored: a run with other settings does not reuse them). ``path`` None: in memory only."""

    def __init__(self, path: str | Path | None, settings: Mapping[str, Any]) -> None:
        self.path = Path(path) if path is not None else None
        self.settings = json.loads(json.dumps(settings))
        self.rows: dict[tuple, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: measured again
                    continue
                if row.get("settings") == self.settings:
                    self.rows[tuple(row["key"])] = row["result"]

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: tuple) -> dict[str, Any] | None:
        return self.rows.get(key)

    def put(self, key: tuple, result: dict[str, Any]) -> None:
        self.rows[key] = result
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"key": list(key), "settings": self.settings, "result": result}) + "\n")


def run_comparisons(
    comparisons: Sequence[str], crops: Sequence[str], seeds: Sequence[int], measure: Measure, cache: ResultCache,
    *, canonical: Callable[[str], str] = lambda arm: arm, quoted: Mapping[str, Mapping[str, float | None]] | None = None,
    progress: bool = True, total: int | None = None, log: Log = no_log, cached_only: bool = False,
) -> dict[str, Any]:
    """Measure every comparison (arm and control on every crop for every seed; cached results are read, new ones
    appended) and return {name: comparison result} (:func:`pair_stats` per metric).

    ``crops``: keys "IMAGE/QUADRANT"; ``measure(arm, crop, seed)`` → a result dict; ``canonical(arm)``: the id a
    result is cached under (two ids that run identically share one, e.g. uniform DDIM on two families whose lists
    and η agree); ``quoted``: {name: committed gains} for the verdicts; ``total``: the tqdm bar's length in crop
    runs (estimated); ``cached_only``: measure nothing, report the seeds whose runs are all in the cache (a
    comparison with none is left out; each result lists its ``seeds``)."""
    from tqdm.auto import tqdm

    from ..adaptive.equal_budget import equal_budget

    bar = tqdm(total=total, desc="spread", unit="crop run", disable=not progress, file=sys.stderr)
    fresh = 0

    def get(arm: str, crop: str, seed: int) -> dict[str, Any]:
        nonlocal fresh
        image, q = crop.rsplit("/", 1)
        key = (canonical(arm), image, int(q), int(seed))
        r = cache.get(key)
        if r is None:
            if cached_only:
                raise _NotCached(key)
            r = measure(arm, crop, seed)
            cache.put(key, r)
            fresh += 1
        bar.update(1)
        return r

    out: dict[str, Any] = {}
    try:
        for name in comparisons:
            notebook, arm, control = COMPARISONS[name]
            fam = family_of(name)
            d = {"psnr_gain_db": np.zeros((len(seeds), len(crops))), "lpips_gain": np.zeros((len(seeds), len(crops)))}
            means = {"arm": {"psnr_y": [], "lpips": []}, "control": {"psnr_y": [], "lpips": []}}
            per_seed: list[dict[str, Any]] = []
            done_seeds: list[int] = []
            for i, s in enumerate(seeds):
                info: dict[str, Any] = {"seed": s}
                try:
                    rows = {c: get(arm, c, s) for c in crops}
                    if control == "equal-budget":
                        assert fam is not None
                        m = sum(r["tile_evaluations"] for r in rows.values()) / sum(r["tiles"] for r in rows.values())
                        lo, hi = budget_bracket(m)
                        ctl = {}
                        for c in crops:
                            r_lo = get(uniform_arm(fam, lo), c, s)
                            r_hi = get(uniform_arm(fam, hi), c, s) if hi != lo else r_lo
                            ctl[c] = equal_budget(r_lo, r_hi, m)
                        info.update(mean_steps_per_tile=m, n_low=lo, n_high=hi)
                    else:
                        ctl = {c: get(control, c, s) for c in crops}
                except _NotCached:  # cached_only: this seed is incomplete
                    continue
                done_seeds.append(i)
                if "fab" in next(iter(rows.values())):
                    info.update(fab_arm=float(np.mean([r["fab"] for r in rows.values()])),
                                fab_control=float(np.mean([r["fab"] for r in ctl.values()])))
                for j, c in enumerate(crops):
                    g = gains(rows[c], ctl[c])
                    d["psnr_gain_db"][i, j], d["lpips_gain"][i, j] = g["psnr_gain_db"], g["lpips_gain"]
                for k in ("psnr_y", "lpips"):
                    means["arm"][k].append(float(np.mean([rows[c][k] for c in crops])))
                    means["control"][k].append(float(np.mean([ctl[c][k] for c in crops])))
                info.update(psnr_gain_db=float(d["psnr_gain_db"][i].mean()), lpips_gain=float(d["lpips_gain"][i].mean()))
                per_seed.append(info)
                log(f"{name} seed {s}: PSNR gain {info['psnr_gain_db']:+.3f} dB, LPIPS gain {info['lpips_gain']:+.4f}"
                    + (f" (budget {info['mean_steps_per_tile']:.2f})" if "mean_steps_per_tile" in info else ""))
            if not done_seeds:
                log(f"{name}: no seed complete in the cache")
                continue
            d = {k: v[done_seeds] for k, v in d.items()}
            q = (quoted or {}).get(name, {})
            out[name] = {
                "notebook": notebook, "arm": arm, "control": control, "family": fam, "per_seed": per_seed,
                "seeds": [seeds[i] for i in done_seeds],
                "arm_mean": {k: float(np.mean(v)) for k, v in means["arm"].items()},
                "control_mean": {k: float(np.mean(v)) for k, v in means["control"].items()},
                "psnr_gain_db": pair_stats(d["psnr_gain_db"], q.get("psnr_gain_db")),
                "lpips_gain": pair_stats(d["lpips_gain"], q.get("lpips_gain")),
                "gains": {k: v.round(6).tolist() for k, v in d.items()},
            }
    finally:
        bar.close()
    log(f"{fresh} crop runs measured now, the rest read from the cache")
    return out


class Arms:
    """The measurements of ``adasr bench spread``: the arms of ``bench adaptive`` (its ``_Runner``, one crop at a
    time) and of ``bench quant``'s UNet comparison (the same configs and calibration as
    :func:`~adasr.benchmarks.quant.unet_arms`, sampled with a seed). Models load on first use."""

    def __init__(self, crops: Mapping[str, np.ndarray], *, config: Any, families: Mapping[str, Any], precision: str,
                 device: Any, tile: int, overlap: int, quant_steps: int, quant_schedule: Any,
                 calibration: str = "mse", n_calib: int = 8, calib_crop: int = 128) -> None:
        self.crops, self.config, self.families = crops, config, families
        self.precision, self.device, self.tile, self.overlap = precision, device, tile, overlap
        self.quant_steps, self.quant_schedule = quant_steps, quant_schedule
        self.calibration, self.n_calib, self.calib_crop = calibration, n_calib, calib_crop
        self._model = None
        self._fp32_model = None
        self._quant: dict[str, tuple[Any, Any]] = {}
        self._calibrations: dict[str, Any] = {}
        self._canonical: dict[tuple, str] = {}

    @property
    def model(self):
        if self._model is None:
            from .. import upscaling

            self._model = upscaling.load_pretrained(device=self.device)
        return self._model

    def quant_configs(self) -> dict[str, Any]:
        """{label: AdaBMConfig} of ``bench quant``'s UNet arms: fixed W8A{b} and AdaBM W8 b_base b, b ∈ 6, 4."""
        from ..quant.adabm import AdaBMConfig

        cfgs = [make for b in UNET_B_BASES for make in (
            AdaBMConfig.fixed(8, b, calibration=self.calibration),
            AdaBMConfig(w_bits=8, a_bits=b, calibration=self.calibration))]
        return {c.label: c for c in cfgs}

    def quantized(self, label: str) -> tuple[Any, Any]:
        """(model, AdaBM wrapper) of the UNet arm ``label``, calibrated as :func:`~adasr.benchmarks.quant.unet_arms`
        (``n_calib`` training crops of ``calib_crop``², noised to the sampler's timesteps)."""
        if label not in self._quant:
            from .. import upscaling
            from ..quant.adabm import quantize_diffusion
            from .quant import calibrate_unet_arm

            if self._fp32_model is None:  # an unprepared fp32 copy, as bench quant loads it
                self._fp32_model = upscaling.load_pretrained()
            cfg = self.quant_configs()[label]
            qmodel, qm = quantize_diffusion(self._fp32_model, cfg)
            calibrate_unet_arm(qm, self._fp32_model, self.quant_steps, schedule=self.quant_schedule,
                               n_calib=self.n_calib, calib_crop=self.calib_crop)
            self._quant[label] = (qmodel, qm)
        return self._quant[label]

    def canonical(self, arm: str) -> str:
        """Uniform DDIM at N on a family whose N-step list and η equal another family's
        (:func:`~adasr.benchmarks.adaptive.run_signature`) is cached under the first family's id."""
        if not arm.startswith("uniform/"):
            return arm
        from .adaptive import run_signature

        _, fam, n = arm.split("/")
        sig = run_signature("uniform", self.config.with_(n_max=int(n)), self.families[fam])
        return self._canonical.setdefault(sig, arm)

    def __call__(self, arm: str, crop: str, seed: int) -> dict[str, Any]:
        hr = self.crops[crop]
        if arm.startswith("quant/"):
            return self._quant_run(arm.split("/", 1)[1], hr, seed)
        from .adaptive import _Runner

        kind, fam, *n = arm.split("/")
        cfg = self.config.with_(n_max=int(n[0])) if n else self.config
        runner = _Runner(self.model, {crop: hr}, tile=self.tile, overlap=self.overlap, seed=seed,
                         precision=self.precision, device=self.device, calibrations=self._calibrations)
        r = runner.run(kind, cfg, arm, schedule=self.families[fam])
        keep = ("tile_evaluations", "tiles", "mean_steps_per_tile", "seconds", "psnr_y", "ssim_y", "lpips")
        return {**{k: r[k] for k in keep}, "schedule": r.get("schedule"), "eta": r.get("eta")}

    def _quant_run(self, label: str, hr: np.ndarray, seed: int) -> dict[str, Any]:
        """One crop through the quantized UNet arm ``label`` (fp32, the default sampler), as ``unet_arms`` does
        with a seed: PSNR-Y, SSIM-Y, LPIPS, seconds, tile-evaluations and the mean FAB over the iterations."""
        from ..data import downscale, to_tensor, to_uint8
        from ..lpips import lpips_distance
        from ..metrics import psnr_y, ssim_y
        from ..upscaling import prepare_upscale

        qmodel, qm = self.quantized(label)
        fabs: list[float] = []
        job = prepare_upscale(downscale(to_tensor(hr), 4), steps=self.quant_steps, schedule=self.quant_schedule,
                              model=qmodel, precision="fp32", seed=seed)
        out, rep, res = job.run(observe=lambda state: fabs.append(qm.fab()))
        sr = to_uint8(out)
        return {"psnr_y": psnr_y(sr, hr, shave=4), "ssim_y": ssim_y(sr, hr, shave=4), "lpips": lpips_distance(sr, hr),
                "seconds": rep.seconds, "tile_evaluations": rep.tile_evaluations, "tiles": len(res.grid),
                "mean_steps_per_tile": rep.tile_evaluations / len(res.grid), "fab": float(np.mean(fabs))}


def check_options(comparisons: Sequence[str] | None, seeds: Sequence[int]) -> list[str]:
    """The comparisons to run (default: all of :data:`COMPARISONS`, in its order); ValueError for an unknown name,
    a repeated one, or seeds that are not distinct (at least one)."""
    names = list(comparisons or COMPARISONS)
    unknown = [n for n in names if n not in COMPARISONS]
    if unknown:
        raise ValueError(f"unknown comparison(s) {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"comparisons repeated: {' '.join(names)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    return names


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def committed_results(directory: str | Path | None = None) -> tuple[dict | None, dict | None]:
    """The committed ``benchmarks/results/adaptive.json`` and ``quant.json`` (None where absent)."""
    d = Path(directory) if directory is not None else Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    return _load_json(d / "adaptive.json"), _load_json(d / "quant.json")


def spread(
    *, comparisons: Sequence[str] | None = None, seeds: Sequence[int] = DEFAULT_SEEDS, crop: int = DEFAULT_CROP,
    config: Any = None, schedules: Sequence[Any] | None = None, device: str | None = None,
    precision: str | None = None, tile: int | None = None, overlap: int | None = None,
    cache: str | Path | None = None, command: str = "", progress: bool = True, log: Log = no_log,
    measure: Measure | None = None, results_dir: str | Path | None = None, cached_only: bool = False,
) -> dict[str, Any]:
    """Run the comparisons (module docstring) and return a JSON-ready result: per comparison the per-seed gains,
    the arm's and control's mean metrics and :func:`pair_stats` for PSNR and LPIPS, with the committed gains they
    are checked against; the cost estimate, machine, precision, command and wall clock. ``measure`` replaces the
    real arms (tests); ``cached_only``: report what the cache holds, measure nothing (a partial run)."""
    from ..adaptive.policy import AdaptiveConfig
    from ..defaults import DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_TILE
    from ..diffusion.timesteps import get_schedule
    from ..runtime import resolve_device, resolve_precision
    from .adaptive import resolve_families
    from .quality import arm_steps
    from .schedules import tiles_per_image

    t0 = time.perf_counter()
    names = check_options(comparisons, seeds)
    cfg = config or AdaptiveConfig()
    tile, overlap = tile or DEFAULT_TILE, overlap or DEFAULT_OVERLAP
    families = resolve_families(schedules)
    missing = {f for n in names if (f := family_of(n)) is not None and f not in families}
    for f in missing:
        families.update(resolve_families([f]))
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    q_sched = get_schedule(DEFAULT_SCHEDULE)
    q_steps = arm_steps(None, q_sched)
    crops = quadrant_crops(crop)
    adaptive_r, quant_r = committed_results(results_dir)
    settings = {"crop": crop, "tile": tile, "overlap": overlap, "precision": prec, "device": str(dev),
                "config": cfg.to_dict(), "quant": {"steps": q_steps, "schedule": DEFAULT_SCHEDULE,
                                                   "calibration": "mse", "n_calib": UNET_N_CALIB,
                                                   "calib_crop": UNET_CALIB_CROP}}
    store = ResultCache(cache, settings)
    tpc = tiles_per_image((crop, crop), tile, overlap)
    guesses = {n: guess_mean_steps(n, adaptive_r, cfg.n_max) for n in names if family_of(n) is not None}
    cost = plan_cost(names, seeds=len(seeds), crops=len(crops), tiles_per_crop=tpc, quant_steps=q_steps,
                     guesses=guesses)
    log(f"{len(names)} comparisons × {len(seeds)} seeds × {len(crops)} crops ({tpc} tiles each): about "
        f"{cost['tile_evaluations']} tile-evaluations, {cost['crop_runs']} crop runs ≈ {cost['seconds'] / 60:.0f} min "
        f"on an idle machine ({SECONDS_PER_EVAL_BF16 * 1e3:.0f} ms per bf16, {SECONDS_PER_EVAL_FAKEQUANT * 1e3:.0f} ms "
        f"per fake-quantized fp32 evaluation; a busy one is slower); {len(store)} crop runs cached"
        + (f" in {cache}" if cache else ""))
    if measure is None:
        arms = Arms(crops, config=cfg, families=families, precision=prec, device=dev, tile=tile, overlap=overlap,
                    quant_steps=q_steps, quant_schedule=q_sched, n_calib=UNET_N_CALIB, calib_crop=UNET_CALIB_CROP)
        measure_fn, canonical = arms, arms.canonical
    else:
        measure_fn, canonical = measure, (lambda a: a)
    quoted = {n: quoted_gains(n, adaptive_r, quant_r) for n in names}
    # the bar counts crop runs: arm + control(s) per crop and seed (the estimate's count, repeats included)
    total = sum(len(seeds) * len(crops) * (3 if COMPARISONS[n][2] == "equal-budget" else 2) for n in names)
    results = run_comparisons(names, list(crops), list(seeds), measure_fn, store, canonical=canonical, quoted=quoted,
                              progress=progress and not cached_only, total=total, log=log, cached_only=cached_only)
    cpu = [r.get("seconds", 0.0) for r in store.rows.values()]
    return {
        "benchmark": "spread", "command": command, "complete": not cached_only or all(
            len(c["seeds"]) == len(seeds) for c in results.values()) and len(results) == len(names),
        "comparisons": results, "order": names, "seeds": list(seeds),
        "crop": crop, "crops": list(crops), "tile": tile, "overlap": overlap, "tiles_per_crop": tpc,
        "config": cfg.to_dict(), "schedules": {n: f for n in names if (f := family_of(n))},
        "quant": settings["quant"], "precision": {"float_arms": prec, "quantized_arms": "fp32"},
        "criterion": f"resolved when |mean gain| > {RESOLVE_SE:g} × SE over the (crop, seed) pairs; the conclusion "
                     "survives when resolved with the sign of the committed single-seed gain",
        "estimate": {**cost, "seconds_per_eval_bf16": SECONDS_PER_EVAL_BF16,
                     "seconds_per_eval_fakequant": SECONDS_PER_EVAL_FAKEQUANT},
        "machine": machine_info(dev, prec), "sampling_seconds": float(sum(cpu)),
        "wall_seconds": time.perf_counter() - t0,
    }


def _verdict(s: Mapping[str, Any]) -> str:
    return s["verdict"] + ("" if not s["resolved"] or s["resolved_crops"] else " (not by crop-clustered SE)")


def format_spread(r: Mapping[str, Any]) -> str:
    """Per comparison and metric: mean gain, std over seeds, std over pairs, SE, sign agreement, the committed
    single-seed gain and the verdict."""
    lines = [] if r.get("complete", True) else ["PARTIAL RESULT (--cached-only: an unfinished run)"]
    lines += [
        f"spread: {len(r['seeds'])} seeds ({', '.join(map(str, r['seeds']))}) × {len(r['crops'])} crops "
        f"({r['crop']}² quadrants of the held-out photos), float arms {r['precision']['float_arms']}, "
        f"quantized arms {r['precision']['quantized_arms']}",
        "gain > 0: the arm is better (PSNR: arm − control, dB; LPIPS: control − arm); " + r["criterion"],
        f"{'comparison':<22} {'nb':>2} {'metric':<6} {'mean':>8} {'sd seeds':>8} {'sd pairs':>8} {'SE':>7} "
        f"{'SE crop':>7} {'agree':>5} {'quoted':>8}  verdict",
    ]
    for name in r.get("order", r["comparisons"]):
        c = r["comparisons"].get(name)
        if c is None:
            continue
        if c.get("seeds") is not None and len(c["seeds"]) != len(r["seeds"]):
            lines.append(f"{name}: partial, seeds {', '.join(map(str, c['seeds']))} only")
        for metric, label, fmt in (("psnr_gain_db", "PSNR", "+.3f"), ("lpips_gain", "LPIPS", "+.4f")):
            s = c[metric]
            q = "—" if s["quoted"] is None else format(s["quoted"], fmt)
            def cell(x: float | None, w: int) -> str:
                return f"{'—':>{w}}" if x is None else f"{x:{w}.4f}"

            lines.append(f"{name:<22} {c['notebook']:>2} {label:<6} {s['mean']:{fmt}} {cell(s['std_seeds'], 8)} "
                         f"{cell(s['std_pairs'], 8)} {cell(s['se'], 7)} {cell(s['se_crops'], 7)} "
                         f"{s['sign_agreement']:5.2f} {q:>8}  {_verdict(s)}")
        extra = [f"seed {p['seed']}: {p['mean_steps_per_tile']:.2f} steps" for p in c["per_seed"]
                 if "mean_steps_per_tile" in p]
        extra += [f"seed {p['seed']}: FAB {p['fab_arm']:.2f} vs {p['fab_control']:.2f}" for p in c["per_seed"]
                  if "fab_arm" in p][:1]
        am, cm = c["arm_mean"], c["control_mean"]
        lines.append(f"{'':<22}    arm PSNR-Y {am['psnr_y']:.2f} LPIPS {am['lpips']:.4f}; control PSNR-Y "
                     f"{cm['psnr_y']:.2f} LPIPS {cm['lpips']:.4f}" + (f"; {', '.join(extra)}" if extra else ""))
    lines.append(f"estimate {r['estimate']['tile_evaluations']} tile-evaluations ≈ {r['estimate']['seconds'] / 60:.0f} "
                 f"min idle; sampling {r['sampling_seconds']:.0f} s (all cached runs), wall clock of this call "
                 f"{r['wall_seconds']:.0f} s")
    if r.get("command"):
        lines.append(f"command: {r['command']}")
    return "\n".join(lines)


format_result = format_spread


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comparisons", nargs="+", default=None, choices=list(COMPARISONS), metavar="NAME",
                   help=f"which comparisons, run in this order (default: all: {' '.join(COMPARISONS)})")
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help="seeds (default: 0 1 2)")
    p.add_argument("--crop", type=int, default=DEFAULT_CROP,
                   help="crop side: the four quadrants of each held-out photo's central (2·crop)² window")
    p.add_argument("--n-max", type=int, default=None, metavar="N",
                   help="N_max of the adaptive arms (default: AdaptiveConfig's, as bench adaptive)")
    p.add_argument("--cache", default=None, metavar="JSONL",
                   help="JSON-lines cache of finished crop runs (default: next to --json, NAME.cache.jsonl; none "
                        "without --json)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--cached-only", action="store_true",
                   help="measure nothing: report the seeds the cache holds completely (an interrupted run)")
    add_device_arguments(p)


def cache_path(args: argparse.Namespace) -> str | None:
    """``--cache``, else ``--json``'s path with the suffix ``.cache.jsonl``, else None."""
    if args.cache:
        return args.cache
    if getattr(args, "json", None):
        return str(Path(args.json).with_suffix(".cache.jsonl"))
    return None


def command_of(args: argparse.Namespace, argv: Iterable[str] | None = None) -> str:
    """The command line that ran (``adasr bench spread …``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "spread" in argv:
        argv = argv[argv.index("spread") + 1:]
    return " ".join(["adasr bench spread", *argv])


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    from ..adaptive.policy import AdaptiveConfig

    try:  # bad options fail here, before any model loads
        check_options(args.comparisons, args.seeds)
        cfg = AdaptiveConfig(n_max=args.n_max) if args.n_max is not None else AdaptiveConfig()
    except ValueError as exc:
        raise SystemExit(f"adasr bench spread: {exc}") from None
    return spread(comparisons=args.comparisons, seeds=args.seeds, crop=args.crop, config=cfg, device=args.device,
                  precision=args.precision, cache=cache_path(args), command=command_of(args),
                  progress=not args.no_progress, log=log, cached_only=args.cached_only)


__all__ = ["COMPARISONS", "DEFAULT_CROP", "DEFAULT_SEEDS", "RESOLVE_SE", "Arms", "ResultCache", "add_arguments",
           "budget_bracket", "cache_path", "check_options", "command_of", "committed_results", "family_of", "format_result",
           "format_spread", "gains", "guess_mean_steps", "pair_stats", "plan_cost", "quadrant_crops",
           "quoted_gains", "run_args", "run_comparisons", "spread", "uniform_arm"]
