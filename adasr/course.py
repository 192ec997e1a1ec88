"""The course as data: the notebooks, what each one teaches, what it needs, what to read, how long it takes.

Notebook ``00_course_map`` draws and prints what is here; ``tools/run_notebooks.py --times FILE`` writes the run
times this module reads. Nothing here runs a notebook.

* :data:`COURSE` — one :class:`Notebook` per chapter, in course order: number, title, status (``ready``, or
  ``planned`` for chapters that do not exist yet), learning objectives a student can check, prerequisites (the
  edges of the dependency graph, ``required`` or ``recommended``) and reading-list keys;
* :data:`READING` — papers and anchor implementations, by title (no links);
* :data:`GLOSSARY` — the course's notation with the package symbol where each quantity lives; :func:`resolve`
  imports a symbol, so a test (and the course map) can check that every one exists;
* :func:`depths`, :func:`edges` — the dependency graph (a DAG: :func:`depths` raises on a cycle);
* time: :func:`markdown_words` → reading minutes at :data:`WORDS_PER_MINUTE`; :func:`count_exercises` → exercise
  minutes at :data:`EXERCISE_MINUTES` each (both *estimates*); :func:`load_times` → measured wall seconds, written
  by :func:`record_time` together with :func:`run_conditions` (CPU, threads, ISA caps, precision, torch, date).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from .paths import REPO_DIR

Status = Literal["ready", "planned"]
Edge = Literal["required", "recommended"]

NOTEBOOKS_DIR = REPO_DIR / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"
#: where ``tools/run_notebooks.py --times`` writes the measured run times that the course map loads
TIMES_FILE = REPO_DIR / "benchmarks" / "results" / "notebook_times.json"
#: reading speed assumed for the reading-time estimate: technical prose with equations, about half the speed of
#: ordinary reading (an assumption, not a measurement)
WORDS_PER_MINUTE = 100
#: minutes assumed per exercise (an estimate: predicting, running a few package calls, writing the answer)
EXERCISE_MINUTES = 10
#: the environment variables recorded with every timing (they change what a notebook computes or how fast)
TIMING_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "ADASR_PRECISION", "ADASR_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class Reference:
    """One entry of the reading list: ``title``, ``who`` (authors or maintainers), ``where`` (venue and year, or
    'implementation') and ``kind`` ('paper' or 'code')."""

    title: str
    who: str
    where: str
    kind: Literal["paper", "code"] = "paper"

    def line(self) -> str:
        """'Title — who, where' (how the course map prints it)."""
        return f"{self.title} — {self.who}, {self.where}"


READING: dict[str, Reference] = {
    "ddpm": Reference("Denoising Diffusion Probabilistic Models", "Ho, Jain & Abbeel", "NeurIPS 2020"),
    "iddpm": Reference("Improved Denoising Diffusion Probabilistic Models", "Nichol & Dhariwal", "ICML 2021"),
    "ddim": Reference("Denoising Diffusion Implicit Models", "Song, Meng & Ermon", "ICLR 2021"),
    "sde": Reference("Score-Based Generative Modeling through Stochastic Differential Equations", "Song et al.",
                     "ICLR 2021"),
    "edm": Reference("Elucidating the Design Space of Diffusion-Based Generative Models",
                     "Karras, Aittala, Aila & Laine", "NeurIPS 2022"),
    "ays": Reference("Align Your Steps: Optimizing Sampling Schedules in Diffusion Models",
                     "Sabour, Fidler & Kreis", "ICML 2024"),
    "resshift": Reference("ResShift: Efficient Diffusion Model for Image Super-resolution by Residual Shifting",
                          "Yue, Wang & Loy", "NeurIPS 2023"),
    "pd": Reference("The Perception-Distortion Tradeoff", "Blau & Michaeli", "CVPR 2018"),
    "sr3": Reference("Image Super-Resolution via Iterative Refinement (SR3)", "Saharia et al.", "IEEE TPAMI 2022"),
    "srdiff": Reference("SRDiff: Single Image Super-Resolution with Diffusion Probabilistic Models", "Li et al.",
                        "Neurocomputing 2022"),
    "ecdp": Reference("Efficient Conditional Diffusion Model with Probability Flow Sampling for Image "
                      "Super-resolution (ECDP)", "Yuan & Yuan", "AAAI 2024"),
    "adasr": Reference("AdaSR-Efficient-Diffusion (AdaSR)", "JacobMaimon13", "implementation (GitHub)", "code"),
    "adabm": Reference("AdaBM: On-the-Fly Adaptive Bit Mapping for Image Super-Resolution", "Hong & Lee",
                       "CVPR 2024"),
    "adadiffsr": Reference("AdaDiffSR: Adaptive Region-aware Dynamic Acceleration Diffusion Model for Real-World "
                           "Image Super-Resolution", "Fan et al.", "ECCV 2024"),
    "smfdm": Reference("Accelerating Facial Image Super-Resolution via Sparse Momentum and Encoder State Reuse "
                       "(SMFDM)", "Electronics", "2025"),
    "faster": Reference("Faster Diffusion: Rethinking the Role of the Encoder for Diffusion Model Inference",
                        "Li et al.", "NeurIPS 2024"),
    "deepcache": Reference("DeepCache: Accelerating Diffusion Models for Free", "Ma, Fang & Wang", "CVPR 2024"),
    "sparse_momentum": Reference("Sparse Networks from Scratch: Faster Training without Losing Performance",
                                 "Dettmers & Zettlemoyer", "arXiv 1907.04840 (2019)"),
    "lpips": Reference("The Unreasonable Effectiveness of Deep Features as a Perceptual Metric (LPIPS)",
                       "Zhang, Isola, Efros, Shechtman & Wang", "CVPR 2018"),
    "edsr": Reference("Enhanced Deep Residual Networks for Single Image Super-Resolution (EDSR)",
                      "Lim, Son, Kim, Nah & Lee", "CVPR Workshops 2017"),
    "tweedie": Reference("Tweedie's Formula and Selection Bias", "Efron", "JASA 2011"),
    "vdm": Reference("Variational Diffusion Models", "Kingma, Salimans, Poole & Ho", "NeurIPS 2021"),
    "distill": Reference("Progressive Distillation for Fast Sampling of Diffusion Models", "Salimans & Ho",
                         "ICLR 2022"),
    "consistency": Reference("Consistency Models", "Song, Dhariwal, Chen & Sutskever", "ICML 2023"),
    "sinsr": Reference("SinSR: Diffusion-Based Image Super-Resolution in a Single Step", "Wang et al.", "CVPR 2024"),
    "draft": Reference("Directly Fine-Tuning Diffusion Models on Differentiable Rewards (DRaFT)",
                       "Clark, Vicol, Swersky & Fleet", "ICLR 2024"),
    "unified": Reference("Understanding Diffusion Models: A Unified Perspective", "Luo", "arXiv 2022"),
    "diffusers": Reference("diffusers: DDPMScheduler and DDIMScheduler", "Hugging Face", "implementation", "code"),
    "improved_diffusion": Reference("improved-diffusion", "OpenAI (Nichol & Dhariwal)", "implementation", "code"),
    "torchdiffeq": Reference("torchdiffeq (dopri5)", "Chen", "implementation", "code"),
}


@dataclass(frozen=True)
class Notebook:
    """One chapter. ``number`` is its two-digit prefix ('05'); ``requires`` and
    ``recommends`` list the numbers of the chapters it builds on (the dependency graph's edges)."""

    number: str
    title: str
    status: Status
    objectives: tuple[str, ...]
    requires: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    reading: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """'05 · Adaptive step allocation' (the graph's node label)."""
        return f"{self.number} · {self.title}"

    def path(self, folder: Path | None = None) -> Path | None:
        """The notebook file ``notebooks/NN_*.ipynb``, or None when there is none (planned chapters)."""
        matches = sorted((folder or NOTEBOOKS_DIR).glob(f"{self.number}_*.ipynb"))
        return matches[0] if matches else None

    def solutions_path(self, folder: Path | None = None) -> Path | None:
        """``notebooks/solutions/NN_*_solutions.ipynb``, or None when there is none."""
        matches = sorted((folder or SOLUTIONS_DIR).glob(f"{self.number}_*solutions.ipynb"))
        return matches[0] if matches else None


COURSE: tuple[Notebook, ...] = (
    Notebook("00", "Course map", "ready", (
        "find the chapter that teaches a term of the glossary and the package symbol that computes it",
    )),
    Notebook("01", "DDPM basics", "ready", (
        "write q(x_t | x_0) in closed form and check DDPMScheduler.add_noise against the three-line formula",
        "compute ᾱ_t and SNR(t) = ᾱ_t / (1 − ᾱ_t) (a variance ratio) for the linear, cosine and ECDP schedules and "
        "say at which fraction of the chain each one crosses SNR = 1",
        "derive x̂0 from an ε-prediction and explain why dividing by √ᾱ_t makes it explode near t = T",
        "train the toy DDPM, sample it with DDPMScheduler.step and read 'coarse first, detail last' off the x̂0 row",
    ), reading=("ddpm", "iddpm", "ecdp", "diffusers", "improved_diffusion")),
    Notebook("02", "Samplers and schedules", "ready", (
        "run DDPM, DDIM and the probability-flow ODE on the shipped model and read PSNR-Y and LPIPS against NFE",
        "explain why PSNR-Y falls as steps are added (posterior mean vs one sample: the perception–distortion "
        "trade-off)",
        "write one DDIM step by hand and match DDIMScheduler.step",
        "place a timestep list on λ(t) = log SNR(t) and count how many of linspace-10's evaluations see λ < −3",
        "explain why a chain ending at t_end > 0 leaves no noise (the explicit end) and what DDIM's η changes",
        "re-derive a preset of the schedule search from adasr/weights/schedules.json",
    ), requires=("01",), reading=("ddim", "sde", "edm", "ays", "resshift", "pd", "diffusers", "torchdiffeq")),
    Notebook("03", "Diffusion SR", "ready", (
        "build the SR3 input concat(x_t, up(LR)) and the residual target r = HR − up(LR)",
        "compute the ε-error gain √((1 − ᾱ_t)/ᾱ_t) at t = 999 and explain the colour cast of a short-budget "
        "ε-prediction model",
        "say what each recipe choice of the teaching foils (residual vs HR target, x0 vs ε prediction) does",
        "explain why an L2 regression (EDSR) wins PSNR-Y and loses LPIPS: it predicts the mean (L1: the median)",
        "choose tile size and overlap and say why Gaussian merge weights hide the seams",
    ), requires=("01", "02"), reading=("sr3", "srdiff", "ecdp", "edsr", "lpips", "adadiffsr")),
    Notebook("04", "Patch complexity", "ready", (
        "compute C_p of a tile with the gradient estimator and put it on the calibrated [0, 1] scale",
        "show that AdaSR's |x̂0(ε̂) − x̂0| is identically 0 for a one-head x0-prediction model",
        "explain why the FFT band ratio lights up flat blocks",
        "rank estimators by Spearman ρ against the error left after one step, and say why the default is the "
        "gradient",
    ), requires=("03",), reading=("adasr", "adabm")),
    Notebook("05", "Adaptive step allocation", "ready", (
        "compute N_p = N_min + (N_max − N_min)·f(C_p) for a tile under the linear, threshold and exponential "
        "mappings and check that the sampler ran Σ_p N_p tile-evaluations",
        "explain why allocation lost to uniform DDIM at the same average budget",
        "say why the schedule is the larger lever than allocation (adasr bench adaptive)",
    ), requires=("04",), recommends=("02",), reading=("adasr", "adadiffsr")),
    Notebook("06", "Early exit", "ready", (
        "compute Δ_k between two clean estimates and apply the ε / P / T_min rule by hand",
        "explain why Δ falls along the chain for an ε-prediction model and grows for an x0-prediction model",
        "replay the rule on a recorded uniform run and say why it loses to uniform DDIM at equal budget",
        "list what AdaSR's README claims, what its code does and what we measure",
    ), requires=("03", "05"), recommends=("90",), reading=("adasr", "sr3", "tweedie")),
    Notebook("07", "AdaDiffSR and the oracle", "ready", (
        "compute a tile's information gain I = tanh(R_i − R_{i−1}) from normalised FR and NR metrics, and say what "
        "f_i and o are at inference and for the oracle",
        "classify a tile as growing, stable or saturated from (I^FR, I^NR) and τ, and turn the class into a stride "
        "on our budget",
        "solve the hindsight oracle's multiple-choice knapsack for a toy set of tiles by hand and with the package",
        "read DTSS's cost and quality against the equal-budget controls and the oracle's ceiling, and say whether it "
        "beats them",
    ), requires=("05", "06"), recommends=("02",), reading=("adadiffsr",)),
    Notebook("08", "Feature reuse", "ready", (
        "measure how much each UNet feature changes between steps and say which one feature reuse can keep",
        "count the MACs a decoder (encoder reuse) and a shallow (DeepCache) tile-evaluation cost against a full one, "
        "and turn a key-step schedule into its MAC saving",
        "compute a non-key step by hand, decode(encode(x_key, t_key), t_now), and explain why parallel decoding "
        "gives the same images",
        "read each reuse arm against the best uniform schedule with the same wall clock and say whether reuse pays",
    ), requires=("02", "03"), recommends=("05", "06"), reading=("faster", "deepcache", "smfdm")),
    Notebook("09", "Sparse momentum", "ready", (
        "run one prune / regrow / redistribute cycle of sparse momentum by hand and match the package",
        "read the per-layer densities over training and say which layers the momentum feeds",
        "compare a network trained with 15 % of its weights with the dense one at the same training steps",
        "explain with measured numbers why 15 % of the weights is not 6.7× faster on a CPU, and what fewer "
        "channels give instead",
    ), requires=("03",), recommends=("08",), reading=("smfdm", "sparse_momentum")),
    Notebook("10", "Adaptive quantization", "ready", (
        "quantize an activation with the asymmetric and the symmetric quantizer and say why a ReLU output wastes "
        "half of the symmetric levels",
        "pick min-max, percentile or MSE clipping for a bit width and explain why a fixed clip loses at high bits",
        "compute b = b_base + b_I + b_L for a patch and a layer, and FAB for an image",
        "explain why AdaBM lost to fixed W4A4 on the moon (the flat image gets fewer bits)",
    ), requires=("03",), recommends=("04",), reading=("adabm", "edsr")),
    Notebook("12", "Sampler-aware fine-tuning", "ready", (
        "write the default 2-step chain as a function of the weights and check that the training chain is the "
        "package's sampler",
        "compute the three loss terms and their gradients on a batch and say what the weight of the diffusion loss "
        "trades",
        "read the training curves and say which term the run improved and which it held",
        "compare the fine-tuned and the shipped model at the same 2 steps on the held-out images, and say why the "
        "fine-tuned one is not the default",
        "place fine-tuning through the sampler beside ECDP's ODE fine-tuning, progressive and consistency "
        "distillation and one-step SR (SinSR)",
    ), requires=("02", "03"), recommends=("05",), reading=("ecdp", "draft", "distill", "consistency", "sinsr",
                                                          "lpips")),
    Notebook("11", "Everything composed", "planned", (
        "compose allocation, early exit, feature reuse and adaptive bits in one run and say which lever pays",
    ), requires=("05", "06", "07", "08", "09", "10")),
    Notebook("90", "Maths appendix", "ready", (
        "derive the posterior q(x_{t−1} | x_t, x_0) and check its mean and variance against DDPMScheduler.step",
        "go from the ELBO to L_simple and say which weights are dropped",
        "convert between x0, ε, v and the score (Tweedie's formula) and check each identity numerically",
    ), requires=("01",), reading=("ddpm", "ddim", "sde", "tweedie", "vdm", "distill", "unified")),
)

BY_NUMBER: dict[str, Notebook] = {nb.number: nb for nb in COURSE}


def edges(course: tuple[Notebook, ...] = COURSE) -> list[tuple[str, str, Edge]]:
    """(prerequisite, chapter, kind) for every edge of the dependency graph, kind 'required' or 'recommended'."""
    out: list[tuple[str, str, Edge]] = []
    for nb in course:
        out += [(p, nb.number, "required") for p in nb.requires]
        out += [(p, nb.number, "recommended") for p in nb.recommends]
    return out


def reduced_edges(course: tuple[Notebook, ...] = COURSE) -> list[tuple[str, str, Edge]]:
    """The edges worth drawing: :func:`edges` without those implied by a longer path — a required edge a → b is
    left out when a path a → … → b of required edges exists, a recommended one when any path exists. The graph
    keeps its reachability; the prerequisite lists keep every edge."""
    all_edges = edges(course)

    def reachable(a: str, b: str, skip: tuple[str, str], required_only: bool) -> bool:
        stack, seen = [a], {a}
        while stack:
            u = stack.pop()
            for x, y, kind in all_edges:
                if x != u or (x, y) == skip or (required_only and kind != "required") or y in seen:
                    continue
                if y == b:
                    return True
                seen.add(y)
                stack.append(y)
        return False

    return [(a, b, k) for a, b, k in all_edges if not reachable(a, b, (a, b), k == "required")]


#: the row of each chapter in the course-map figure (0 the main line, +1 above, −1 / −2 below): a drawing hint
GRAPH_ROWS: dict[str, float] = {"90": 1.0, "08": -1.0, "09": -1.0, "10": -2.0, "12": -3.0}


def depths(course: tuple[Notebook, ...] = COURSE) -> dict[str, int]:
    """Depth of each chapter in the dependency graph: 0 without prerequisites, else 1 + the deepest prerequisite
    (both kinds of edge). Raises ValueError on an unknown prerequisite or a cycle."""
    known = {nb.number: nb for nb in course}
    out: dict[str, int] = {}

    def visit(number: str, stack: tuple[str, ...]) -> int:
        if number in stack:
            raise ValueError(f"dependency cycle: {' → '.join(stack + (number,))}")
        if number not in known:
            raise ValueError(f"unknown prerequisite {number!r}")
        if number not in out:
            nb = known[number]
            out[number] = 1 + max((visit(p, stack + (number,)) for p in nb.requires + nb.recommends), default=-1)
        return out[number]

    for nb in course:
        visit(nb.number, ())
    return out


@dataclass(frozen=True)
class Term:
    """One glossary entry: ``symbol``, its ``meaning``, the ``chapter`` that introduces it and ``where``: dotted
    names of the package symbols that compute or hold it (each importable with :func:`resolve`)."""

    symbol: str
    meaning: str
    chapter: str
    where: tuple[str, ...] = field(default_factory=tuple)


GLOSSARY: tuple[Term, ...] = (
    Term("ᾱ_t", "∏_{s≤t}(1 − β_s): the share of the signal's variance left at step t", "01",
         ("adasr.diffusion.schedules.NoiseSchedule.alphas_cumprod",)),
    Term("SNR(t)", "ᾱ_t / (1 − ᾱ_t): signal variance over noise variance (a variance ratio, not an amplitude "
         "ratio)", "01", ("adasr.diffusion.schedules.NoiseSchedule.alphas_cumprod",)),
    Term("λ(t)", "log SNR(t): where a timestep sits on the noise scale", "02", ("adasr.viz.diffusion.log_snr",)),
    Term("x̂0", "the network's estimate of the clean sample at step t (from an ε-, x0- or v-prediction)", "01",
         ("adasr.diffusion.objectives.predict_x0",)),
    Term("r", "the residual HR − up(LR) that the shipped model diffuses", "03",
         ("adasr.diffusion.objectives.residual_target", "adasr.data.upscale_bicubic")),
    Term("η", "DDIM's noise parameter: 0 deterministic, 1 DDPM's posterior noise", "02",
         ("adasr.diffusion.ddim.ddim_step", "adasr.diffusion.timesteps.Schedule.eta_for")),
    Term("schedule", "which N timesteps a sampler visits (linspace, karras, the optimised presets …)", "02",
         ("adasr.diffusion.timesteps.get_schedule",)),
    Term("NFE", "number of function (network) evaluations of a sampler, every solver stage counted", "02",
         ("adasr.sampling.reference.ReferenceSample", "adasr.diffusion.ode.ODEResult")),
    Term("tile-evaluation", "one tile through the UNet once; the cost unit of the tile-batch sampler", "05",
         ("adasr.cost.CostCounter.tile_evaluations",)),
    Term("MACs vs FLOPs", "multiply-accumulates; torch counts 2 FLOPs per MAC, so MACs = FLOPs / 2", "05",
         ("adasr.cost.count_macs", "adasr.cost.unet_macs")),
    Term("C_p", "patch complexity: the mean of a per-pixel complexity map over tile p, normalised to [0, 1]", "04",
         ("adasr.adaptive.complexity.patch_complexity", "adasr.adaptive.complexity.tile_complexity")),
    Term("N_p", "the step budget of tile p: N_min + (N_max − N_min)·f(C_p)", "05",
         ("adasr.adaptive.allocation.allocate_steps",)),
    Term("Δ_k", "RMS change of x̂0 between successive steps, in units of the value range", "06",
         ("adasr.adaptive.early_exit.delta",)),
    Term("ε / P / T_min", "early exit's threshold, patience and warm-up (stop when the last P values of Δ are "
         "below ε, after at least T_min steps)", "06",
         ("adasr.adaptive.early_exit.EarlyExitRule", "adasr.config.AdaptiveConfig")),
    Term("key step", "a step that runs the whole UNet and refills the tile's cache; the steps between reuse it",
         "08", ("adasr.acceleration.reuse.key_positions", "adasr.acceleration.reuse.ReusePolicy")),
    Term("decoder / shallow mode", "encoder reuse: decode(h_key, t); DeepCache: the outer blocks on x_t with the "
         "cached deep feature", "08", ("adasr.sampling.denoiser.Denoiser", "adasr.models.unet.SRUNet.shallow")),
    Term("n_wall", "the uniform step count with the same wall clock as an arm (the equal-cost control)", "08",
         ("adasr.benchmarks.reuse.equivalent_steps", "adasr.benchmarks.reuse.best_uniform")),
    Term("density d", "the share of a layer's (or network's) conv/linear weights that are nonzero", "09",
         ("adasr.acceleration.sparse.SparseConfig", "adasr.acceleration.sparse.SparseMomentum.density")),
    Term("p_t", "sparse momentum's prune rate, cosine-decayed from 0.5 to 0.005 over the run", "09",
         ("adasr.acceleration.sparse.prune_rate",)),
    Term("FAB", "feature average bit-width: the mean activation bit over quantized layers and pixels", "10",
         ("adasr.quant.adabm.AdaBM.fab",)),
    Term("I2B", "image-to-bit: b_I ∈ {−1, 0, +1} per patch from its Sobel complexity", "10",
         ("adasr.quant.bitmap.ImageToBit", "adasr.quant.bitmap.image_complexity")),
    Term("L2B", "layer-to-bit: b_L ∈ {−1, 0, +1} per layer from the std of its input", "10",
         ("adasr.quant.bitmap.layer_bits",)),
    Term("BaC", "bit-aware clipping: the MSE range search at the layer's own bit, blended ½ : ½", "10",
         ("adasr.quant.bac.bit_aware_clip",)),
    Term("PSNR-Y", "PSNR on the BT.601 luma with a 4-pixel border shave (the SR convention)", "02",
         ("adasr.metrics.psnr_y",)),
    Term("LPIPS", "learned perceptual distance (AlexNet, v0.1); lower is better", "02",
         ("adasr.lpips.lpips_distance",)),
)


def resolve(dotted: str) -> Any:
    """Import the object named by a dotted path such as ``adasr.cost.CostCounter.tile_evaluations``: the longest
    importable module prefix, then attributes. Raises ImportError or AttributeError when it does not exist."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"no module in {dotted!r}")


# ---------------------------------------------------------------------------------------------------- time


def _cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def markdown_words(path: Path) -> int:
    """Words (whitespace-separated tokens) in the markdown cells of a notebook; equations count as written."""
    return sum(len(_source(c).split()) for c in _cells(path) if c.get("cell_type") == "markdown")


_EXERCISES = re.compile(r"^#{2,3}\s*Exercises\b", re.IGNORECASE)
_ITEM = re.compile(r"^\d+\.\s")


def count_exercises(path: Path) -> int:
    """Numbered items (lines starting ``1. ``, ``2. `` …, not indented) in the markdown cell that opens with a
    ``## Exercises`` heading; 0 when the notebook has no such section."""
    for cell in _cells(path):
        text = _source(cell)
        if cell.get("cell_type") == "markdown" and _EXERCISES.match(text.lstrip()):
            return sum(1 for line in text.splitlines() if _ITEM.match(line))
    return 0


def reading_minutes(words: int, words_per_minute: int = WORDS_PER_MINUTE) -> float:
    """Estimated reading time: words / words_per_minute."""
    if words_per_minute <= 0:
        raise ValueError(f"words_per_minute must be positive, got {words_per_minute}")
    return words / words_per_minute


def times_key(path: Path) -> str:
    """The key of a notebook in the times file: its path relative to the repository, with '/' separators
    ('notebooks/01_ddpm_basics.ipynb'); paths outside the repository keep their absolute form."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO_DIR).as_posix()
    except ValueError:
        return p.as_posix()


def run_conditions() -> dict[str, Any]:
    """The conditions a notebook run was timed under: ``cpu`` (model name from /proc/cpuinfo), ``cpus`` (CPUs this
    process may use), ``threads`` (what ``setup()`` will give torch: :func:`adasr.runtime.default_threads`),
    ``isa_cap`` (ATen's CPU capability after ``ATEN_CPU_CAPABILITY``), ``env`` (:data:`TIMING_ENV`, None when
    unset), ``precision`` (what ``setup()`` computes in), ``torch``, ``python``, ``date`` (UTC, ISO 8601) and
    ``load_avg`` (1-minute load average at the start, a hint of how busy the machine was)."""
    import torch

    from .benchmarks.runner import cpu_model_name
    from .runtime import default_precision, default_threads

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - non-Unix
        load = None
    return {"cpu": cpu_model_name(), "cpus": cpus, "threads": default_threads(),
            "isa_cap": torch.backends.cpu.get_cpu_capability(),
            "env": {k: os.environ.get(k) for k in TIMING_ENV},
            "precision": default_precision(fallback="fp32"), "torch": torch.__version__,
            "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(), "load_avg": load}


def load_times(path: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The measured runs of the times file (default :data:`TIMES_FILE`): ``{key: {"seconds": …, …conditions}}``
    (keys from :func:`times_key`); {} when the file does not exist."""
    p = Path(path) if path is not None else TIMES_FILE
    if not p.is_file():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    runs = data.get("notebooks", {})
    if not isinstance(runs, dict):
        raise ValueError(f"{p}: 'notebooks' must be an object, got {type(runs).__name__}")
    return runs


def record_time(path: Path | str, notebook: Path, seconds: float, conditions: Mapping[str, Any] | None = None,
                regenerate: str | None = None) -> dict[str, Any]:
    """Merge one measured run into the times file ``path`` (created if missing; other notebooks' entries kept, this
    notebook's replaced) and return the whole file's content. ``conditions`` defaults to :func:`run_conditions`;
    ``regenerate``, when given, is stored as the file's ``regenerate`` command."""
    if not seconds >= 0:
        raise ValueError(f"seconds must be non-negative, got {seconds}")
    p = Path(path)
    data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    data.setdefault("description", "wall seconds of one top-to-bottom run per notebook (tools/run_notebooks.py "
                    "--times), with the conditions it ran under; reading and exercise times are not measured")
    if regenerate:
        data["regenerate"] = regenerate
    runs = data.setdefault("notebooks", {})
    runs[times_key(notebook)] = {"seconds": round(float(seconds), 1), **dict(conditions or run_conditions())}
    data["notebooks"] = dict(sorted(runs.items()))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return data


@dataclass(frozen=True)
class TimeRow:
    """The time budget of one chapter: ``run_s`` / ``solutions_run_s`` measured (None: not measured or no
    file), ``reading_min`` and ``exercise_min`` estimated (None for planned chapters)."""

    number: str
    title: str
    status: Status
    words: int | None
    reading_min: float | None
    exercises: int | None
    exercise_min: float | None
    run_s: float | None
    solutions_run_s: float | None


def time_table(course: tuple[Notebook, ...] = COURSE, times: Mapping[str, Mapping[str, Any]] | None = None,
               words_per_minute: int = WORDS_PER_MINUTE, exercise_minutes: float = EXERCISE_MINUTES,
               folder: Path | None = None) -> list[TimeRow]:
    """One :class:`TimeRow` per chapter: words and exercises counted in the notebook file, run seconds looked up
    in ``times`` (default :func:`load_times`)."""
    times = load_times() if times is None else times
    rows = []
    for nb in course:
        path = nb.path(folder)
        sol = nb.solutions_path(None if folder is None else folder / "solutions")
        if path is None:
            rows.append(TimeRow(nb.number, nb.title, nb.status, None, None, None, None, None, None))
            continue
        words = markdown_words(path)
        n_ex = count_exercises(path)
        run = times.get(times_key(path), {}).get("seconds")
        sol_run = times.get(times_key(sol), {}).get("seconds") if sol is not None else None
        rows.append(TimeRow(nb.number, nb.title, nb.status, words, reading_minutes(words, words_per_minute), n_ex,
                            n_ex * exercise_minutes, run, sol_run))
    return rows


__all__ = ["BY_NUMBER", "COURSE", "EXERCISE_MINUTES", "GLOSSARY", "READING", "TIMES_FILE", "WORDS_PER_MINUTE",
           "Notebook", "Reference", "Term", "TimeRow", "count_exercises", "depths", "edges", "load_times",
           "markdown_words", "reading_minutes", "record_time", "reduced_edges", "GRAPH_ROWS", "resolve", "run_conditions", "time_table",
           "times_key"]
