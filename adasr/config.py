"""The configurations of :func:`adasr.upscale` and ``adasr upscale``: frozen dataclasses, torch-free.

* :class:`UpscaleConfig` — what runs and how: the model and its quantization, the step budget N, the seed, DDIM's η,
  device, precision, tiling and the sampling policy's name;
* :class:`AdaptiveConfig` — the knobs of the adaptive policies (re-exported by :mod:`adasr.adaptive.policy`).

Each field's ``metadata`` is its command-line form: ``help`` (a field without it has no option), and where needed
``flag`` (default ``--name-with-dashes``), ``choices``, ``min`` / ``max`` (the smallest / largest value),
``positive`` (> 0),
``metavar``, ``group`` (the help section), ``diffusion`` (True: only a diffusion model uses it) and ``type`` (the
value's type where the default is ``None``, which means "resolved from other fields").
:func:`add_config_arguments` builds argparse options from them and :func:`given_values` reads them back, so a
default, its allowed values and its help are written once, here; the checks of :meth:`UpscaleConfig.__post_init__`
and :meth:`AdaptiveConfig.check` raise :class:`ConfigError`, which names the arguments as the library does
(``overlap``) or, rendered by the CLI, by their flags (``--overlap``).

Nothing heavy is imported: ``adasr -h`` reads these classes without importing torch.
"""

from __future__ import annotations

import argparse
import math
import numbers
import re
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any, Callable

from .defaults import ADAPTIVE_STEPS, DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_STEPS, DEFAULT_TILE
from .diffusion.timesteps import SCHEDULE_NAMES, ExplicitSchedule

#: The most steps N can be: T = 1000 training timesteps of the shipped models (no more distinct timesteps exist).
MAX_STEPS = 1000
#: Seeds are 0 … 2**64 − 1, what ``torch.Generator.manual_seed`` accepts.
MAX_SEED = 2**64 - 1
#: The devices adasr runs on (``--device``): the CPU and CUDA GPUs; ``auto`` picks CUDA when available.
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")

#: The sampling policies of ``policy=`` / ``--policy`` (built by :func:`adasr.adaptive.policy.make_policy`).
#: the AdaSR chapters' policies (``adasr bench adaptive`` runs these; AdaDiffSR has its own bench)
ADASR_POLICIES: tuple[str, ...] = ("uniform", "allocation", "early-exit", "adasr")
POLICIES: tuple[str, ...] = (*ADASR_POLICIES, "adadiffsr")
#: The shipped SR networks of ``model=`` / ``--model`` and their kind: ``diffusion`` (sampled, tiled, policies) or
#: ``regression`` (one forward pass of a CNN).
MODELS: dict[str, str] = {"sr_x4": "diffusion", "sr_x4_ft": "diffusion", "edsr_x4": "regression",
                          "sr_x4_sparse15": "diffusion"}
#: ``quant=`` / ``--quant``: float, real int8 kernels, AdaBM's adaptive bit mapping (fake quantization).
QUANT: tuple[str, ...] = ("none", "int8", "adabm")
#: Which quantizations each kind of model supports.
QUANT_SUPPORT: dict[str, tuple[str, ...]] = {"diffusion": ("none", "adabm"), "regression": QUANT}
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: ``cache=`` / ``--cache``: feature reuse across steps (:mod:`adasr.acceleration.reuse`)
CACHES: tuple[str, ...] = ("none", "encoder", "deepcache")
#: ``key_steps=`` / ``--key-steps``: which steps run the whole UNet when a cache is on
KEY_STEPS: tuple[str, ...] = ("uniform", "faster-diffusion", "smfdm")


class ConfigError(ValueError):
    """A bad configuration value. ``template`` holds ``{field}`` placeholders for the arguments it names: ``str()``
    names them as the library does (``overlap``), :meth:`render` as a caller wants (the CLI: ``--overlap``)."""

    def __init__(self, template: str, **names: str) -> None:
        self.template, self.names = template, names
        super().__init__(self.render(lambda n: n))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with every named argument written as ``name(field)``."""
        return self.template.format(**{k: name(v) for k, v in self.names.items()})


def _lit(value: Any) -> str:
    """``str(value)`` safe to put into a :class:`ConfigError` template."""
    return str(value).replace("{", "{{").replace("}", "}}")


def _option(help: str, **extra: Any) -> dict[str, Any]:
    return {"help": help, **extra}


def _check_fields(config: Any) -> None:
    """Type, ``choices``, ``min`` and ``positive`` of every field of a config dataclass (from its metadata)."""
    for f in fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None and f.default is None:
            continue
        kind = meta.get("type") or (type(f.default) if f.default is not MISSING else None)
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{{f}} must be True or False, got {_lit(repr(value))}", f=f.name)
        if kind is int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ConfigError(f"{{f}} must be a whole number, got {_lit(repr(value))}", f=f.name)
        if kind is float and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or not math.isfinite(value)):
            raise ConfigError(f"{{f}} must be a finite number, got {_lit(repr(value))}", f=f.name)
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"{{f}} must be one of {_lit(', '.join(meta['choices']))}, got {_lit(repr(value))}",
                              f=f.name)
        if "min" in meta and value < meta["min"]:
            raise ConfigError(f"{{f}} must be at least {meta['min']}, got {_lit(value)}", f=f.name)
        if "max" in meta and value > meta["max"]:
            why = f" ({meta['max_why']})" if "max_why" in meta else ""
            raise ConfigError(f"{{f}} must be at most {meta['max']}{_lit(why)}, got {_lit(value)}", f=f.name)
        if meta.get("positive") and not value > 0:
            raise ConfigError(f"{{f}} must be positive, got {_lit(value)}", f=f.name)


def check_numbers(config: Any, whole: dict[str, int] | None = None,
                  real: dict[str, tuple[float, float | None]] | None = None, positive: tuple[str, ...] = ()) -> None:
    """Range checks of a config without field metadata (training configs): every name of ``whole`` a whole number
    ≥ its bound; every name of ``real`` a finite number in [lo, hi] (``hi`` None: no upper bound), and > 0 for the
    names in ``positive``. Raises :class:`ConfigError` naming the field (rendered as an option by the CLIs)."""
    for name, lo in (whole or {}).items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{{f}} must be a whole number, got {_lit(repr(value))}", f=name)
        if value < lo:
            raise ConfigError(f"{{f}} must be at least {lo}, got {value}", f=name)
    for name, (lo, hi) in (real or {}).items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(f"{{f}} must be a finite number, got {_lit(repr(value))}", f=name)
        if value < lo or (hi is not None and value > hi) or (name in positive and value == 0):
            where = f"in [{lo}, {hi}]" if hi is not None else ("> 0" if name in positive else f">= {lo}")
            raise ConfigError(f"{{f}} must be {where}, got {value}", f=name)


def check_model_options(kind: str, model: str, quant: str, precision: str) -> None:
    """The combinations :func:`adasr.upscale_tensor` refuses: a quantization the model does not support, and bf16
    for anything but the float diffusion model (EDSR and every quantized model run in fp32)."""
    if quant not in QUANT_SUPPORT[kind]:
        have = ", ".join(QUANT_SUPPORT[kind])
        why = " (real int8 kernels exist for EDSR's plain convolutions only)" if quant == "int8" else ""
        raise ConfigError(f"{{quant}} {_lit(quant)} is not available for {_lit(model)}{why}; it supports {{quant}} "
                          f"{_lit(have)}", quant="quant")
    if precision == "bf16" and (kind != "diffusion" or quant != "none"):
        what = f"{model} with {{quant}} {quant}" if quant != "none" else model
        raise ConfigError(f"{{precision}} bf16 is for the float diffusion model; {what} runs in fp32 "
                          "(use {precision} auto or fp32)", precision="precision", quant="quant")


@dataclass(frozen=True, kw_only=True)
class UpscaleConfig:
    """How :func:`adasr.upscale_tensor` runs (``adasr upscale``'s options; module docstring for ``metadata``).

    ``steps`` is N, the most denoising steps any tile takes, for every policy: uniform DDIM's step count, N_max of
    ``allocation`` / ``early-exit`` / ``adasr``. Fields marked ``diffusion`` do not apply to a regression model
    (``edsr_x4``: one forward pass of a CNN), which refuses them.
    """

    model: str = field(default=DEFAULT_MODEL, metadata=_option(
        "sr_x4: the diffusion model; edsr_x4: the EDSR regression CNN, one forward pass (it refuses the diffusion "
        "options --steps, --seed, --eta, --tile, --overlap, --policy and the adaptive ones); sr_x4_sparse15: the "
        "same diffusion UNet trained with 15 % of its weights (sparse momentum, 2,000 steps; smaller, not faster); "
        "sr_x4_ft: sr_x4 fine-tuned through its 2-step sampler (LPIPS 0.060 lower, PSNR-Y 0.19 dB lower on the "
        "held-out crops; notebook 12)",
        choices=tuple(MODELS)))
    quant: str = field(default="none", metadata=_option(
        "int8: real int8 kernels (edsr_x4, on the CPU; calibrated on 64 LR patches of the training photos first, "
        "about 3 s); adabm: AdaBM's adaptive bit mapping, fake quantization (it measures accuracy, not speed), "
        "calibrated on the training photos first: edsr_x4 W4 b_base 4, one bit per 32-px LR patch (about 4 s); "
        "sr_x4 W8 b_base 6, one bit per tile, at the sampler's own timesteps (about 5 s)", choices=QUANT))
    steps: int | None = field(default=None, metadata=_option(
        f"N, the most denoising steps any tile takes: uniform DDIM's step count, N_max of the adaptive policies "
        f"(default: {DEFAULT_STEPS} for uniform sampling, {ADAPTIVE_STEPS} for the adaptive policies, the length of "
        "an explicit --schedule)", min=1, max=MAX_STEPS, max_why="the model's T: no more distinct timesteps",
        metavar="N", diffusion=True, type=int))
    schedule: str = field(default=DEFAULT_SCHEDULE, metadata=_option(
        "which timesteps the N steps visit: linspace (999 … 0, the textbook default), leading, trailing, karras, "
        "an optimised preset perceptual, balanced or fidelity (searched on the training photos: "
        "python -m adasr.adaptive.schedule_opt), or an explicit descending list such as 999,100,20",
        metavar="NAME|LIST", diffusion=True))
    seed: int = field(default=0, metadata=_option(
        "seed of the initial noise, 0 … 2**64 − 1; equal seeds give equal outputs", min=0, max=MAX_SEED,
        max_why="2**64 - 1, torch's largest seed", metavar="S", diffusion=True))
    eta: float | None = field(default=None, metadata=_option(
        "DDIM's η: 0 is deterministic DDIM, 1 adds DDPM's noise at every step (default: the η an optimised "
        "--schedule was chosen with, 0 otherwise)", min=0.0, diffusion=True, type=float))
    device: str = field(default="auto", metadata=_option("cpu, cuda, cuda:N or auto"))  # DEVICE_NAME
    precision: str = field(default=None, metadata=_option(  # type: ignore[assignment]  # None → $ADASR_PRECISION
        "auto uses bf16 where the hardware is fast at it (EDSR and quantized models run fp32)", choices=PRECISIONS,
        default_text="auto, or $ADASR_PRECISION when set", type=str))
    deterministic: bool = field(default=False, metadata=_option(
        "bit-identical output whatever the number of CPU threads: fp32 on one thread (the other cores idle; plain "
        "fp32 differs by about 1e-6 between thread counts, bf16 by one level in about 1 % of pixels)"))
    tile: int = field(default=DEFAULT_TILE, metadata=_option(
        "tile size in output pixels; smaller uses less memory", min=8, metavar="PX", diffusion=True))
    overlap: int = field(default=DEFAULT_OVERLAP, metadata=_option(
        "overlap between neighbouring tiles in output pixels", min=0, metavar="PX", diffusion=True))
    policy: str = field(default="uniform", metadata=_option(
        "uniform DDIM; per-tile step allocation from patch complexity; Δx̂0 early exit; adasr = both; adadiffsr = "
        "AdaDiffSR's dynamic strides from the information gain (--tau, --gain)",
        choices=POLICIES, group="adaptive", diffusion=True))
    cache: str = field(default="none", metadata=_option(
        "feature reuse at the non-key steps: encoder = decode the key step's cached encoder state with the current "
        "t (Faster-Diffusion, SMFDM); deepcache = run only the full-resolution blocks on a cached deep feature "
        "(DeepCache)", choices=CACHES, group="reuse", diffusion=True))
    cache_interval: int = field(default=2, metadata=_option(
        "K: every K-th step of a tile is a key step (the whole UNet) with --key-steps uniform or smfdm", min=1,
        metavar="K", group="reuse", diffusion=True))
    key_steps: str = field(default="uniform", metadata=_option(
        "which steps are key steps: uniform (every K-th), faster-diffusion (its non-uniform set {0,1,2,3,5,10,15,"
        "25,35} of 50 scaled to N), smfdm (every K-th, each group's decoder steps batched in one call; encoder "
        "only)", choices=KEY_STEPS, group="reuse", diffusion=True))

    def __post_init__(self) -> None:
        if self.precision is None:  # the default: $ADASR_PRECISION when set, else auto
            from .runtime import default_precision  # imports torch: not at module level (--help stays fast)

            try:
                env = default_precision()
                if env == "bf16" and (self.kind != "diffusion" or self.quant != "none" or self.deterministic is True):
                    env = "fp32"  # the environment's bf16 applies to the float diffusion model only
                object.__setattr__(self, "precision", env)
            except ValueError as exc:
                raise ConfigError(_lit(str(exc))) from None
        _check_fields(self)
        if self.schedule not in SCHEDULE_NAMES:
            try:
                explicit = ExplicitSchedule(tuple(int(v) for v in self.schedule.replace(" ", "").strip(",").split(",")))
            except ValueError as exc:
                detail = str(exc) if "explicit" in str(exc) else f"got {self.schedule!r}"
                raise ConfigError(f"{{schedule}} must be one of {_lit(', '.join(SCHEDULE_NAMES))} or a descending "
                                  f"list of timesteps such as 999,100,20; {_lit(detail)}", schedule="schedule") from None
            if self.steps is not None and self.steps != len(explicit.steps):
                raise ConfigError(f"{{steps}} ({self.steps}) differs from the {len(explicit.steps)} timesteps of "
                                  "{schedule}; leave {steps} out", steps="steps", schedule="schedule")
            if self.policy in ("allocation", "adasr"):
                raise ConfigError(f"{{policy}} {self.policy} gives tiles different numbers of steps, which an "
                                  "explicit {schedule} list cannot; name a schedule family", policy="policy",
                                  schedule="schedule")
        if self.key_steps == "smfdm" and self.cache == "deepcache":
            raise ConfigError("{key_steps} smfdm decodes a group's steps in parallel, which needs {cache} encoder "
                              "(DeepCache's blocks need each step's x_t)", key_steps="key_steps", cache="cache")
        if self.deterministic and self.precision == "bf16":
            raise ConfigError("{deterministic} runs in fp32 (bf16 sums depend on the thread count); leave {precision} "
                              "at auto or fp32", deterministic="deterministic", precision="precision")
        if not DEVICE_NAME.fullmatch(self.device):
            raise ConfigError(f"{{device}} must be cpu, cuda, cuda:N or auto (adasr runs on CPUs and NVIDIA GPUs), "
                              f"got {_lit(repr(self.device))}", device="device")
        if self.overlap >= self.tile:
            default = ", the default" if self.overlap == DEFAULT_OVERLAP else ""
            raise ConfigError(f"{{overlap}} ({self.overlap}{default}) must be smaller than {{tile}} ({self.tile}); give "
                              "a larger {tile} or a smaller {overlap}", overlap="overlap", tile="tile")
        check_model_options(self.kind, self.model, self.quant, self.precision)

    @property
    def kind(self) -> str:
        """``diffusion`` or ``regression`` (:data:`MODELS`)."""
        return MODELS[self.model]

    @property
    def n_steps(self) -> int:
        """N as it runs: ``steps`` if given, else the length of an explicit ``schedule``, else
        :data:`~adasr.defaults.DEFAULT_STEPS` (uniform) or :data:`~adasr.defaults.ADAPTIVE_STEPS` (adaptive)."""
        if self.steps is not None:
            return self.steps
        if self.schedule not in SCHEDULE_NAMES:
            return len(self.schedule.strip(",").split(","))
        return DEFAULT_STEPS if self.policy == "uniform" else ADAPTIVE_STEPS

    def with_(self, **changes: Any) -> "UpscaleConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def upscale_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`adasr.upscale_tensor` for this config: every field that applies to the
        model's kind (a regression model gets no diffusion-only ones)."""
        skip = ("cache_interval", "key_steps") if self.cache == "none" else ()  # they configure a cache only
        return {f.name: getattr(self, f.name) for f in fields(self)
                if (self.kind == "diffusion" or not f.metadata.get("diffusion")) and f.name not in skip}


#: Fields of :class:`UpscaleConfig` that only a diffusion model uses.
DIFFUSION_ONLY: tuple[str, ...] = tuple(f.name for f in fields(UpscaleConfig) if f.metadata.get("diffusion"))


#: names of the adaptive choices (torch-free, so the CLI can list them): the one home of each tuple
ESTIMATORS: tuple[str, ...] = ("gradient", "sobel", "variance", "fft", "uncertainty", "learned")
MAPPINGS: tuple[str, ...] = ("linear", "threshold", "exponential")
NORMALIZATIONS: tuple[str, ...] = ("image", "patches", "calibrated")
EXIT_MODES: tuple[str, ...] = ("tile", "global")
#: where AdaDiffSR's dynamic strides take the information gain from (``oracle``, against the HR, is for analysis
#: only and not a CLI choice): adasr.adaptive.dtss
GAIN_SIGNALS: tuple[str, ...] = ("regressor", "metrics")


@dataclass(frozen=True)
class AdaptiveConfig:
    """Every knob of the adaptive policies, with the defaults used by the CLI and the benchmark.

    ``n_max`` is N_max; :func:`adasr.upscale_tensor` replaces it by its ``steps``. Field checks (types, choices,
    n_min ≥ 1, ε > 0, P ≥ 1, T_min ≥ 1) run on construction; the checks that depend on the policy (N_min ≤ N_max
    for allocation, per-tile exit for adasr) in :meth:`check`.
    """

    n_max: int = field(default=20, metadata={"min": 1})  # no option: ``--steps`` is N_max
    n_min: int = field(default=3, metadata=_option("N_min, the fewest steps a tile gets", min=1, metavar="N",
                                                                 diffusion=True))
    estimator: str = field(default="gradient", metadata=_option(
        "patch-complexity estimator for allocation", flag="--complexity", diffusion=True,
        choices=ESTIMATORS))
    mapping: str = field(default="linear", metadata=_option(
        "complexity → steps; linear: N_p = N_min + (N_max − N_min)·C_p", diffusion=True,
        choices=MAPPINGS))
    normalize: str = field(default="calibrated", metadata=_option(
        "how complexity is scaled to [0, 1]: calibrated on the training photos, per image, or over the image's "
        "patches", diffusion=True, choices=NORMALIZATIONS))
    epsilon: float = field(default=0.002, metadata=_option("ε of the Δx̂0 early-exit rule", positive=True,
                                                            metavar="EPS", diffusion=True))
    patience: int = field(default=2, metadata=_option("P of the early-exit rule", min=1, metavar="P", diffusion=True))
    warmup: int = field(default=4, metadata=_option("T_min of the early-exit rule", min=1, metavar="T",
                                                          diffusion=True))
    exit_mode: str = field(default="tile", metadata=_option(
        "stop tiles one by one or the whole image at once", diffusion=True, choices=EXIT_MODES))
    tau: float = field(default=5e-3, metadata=_option(
        "τ of AdaDiffSR's gain classes (growing / stable / saturated)", positive=True, metavar="TAU", diffusion=True))
    gain: str = field(default="regressor", metadata=_option(
        "AdaDiffSR's information gain: the MMLE regressor or the metrics computed against the input",
        flag="--gain", diffusion=True, choices=GAIN_SIGNALS))

    def __post_init__(self) -> None:
        _check_fields(self)

    def check(self, policy: str) -> None:
        """Raise :class:`ConfigError` if this config cannot drive ``policy`` (one of :data:`POLICIES`)."""
        if policy not in POLICIES:
            raise ConfigError(f"unknown {{policy}} {_lit(repr(policy))}; choose from {_lit(', '.join(POLICIES))}",
                              policy="policy")
        if policy in ("allocation", "adasr") and self.n_min > self.n_max:
            raise ConfigError(f"{{n_min}} ({self.n_min}) must not exceed {{n_max}} ({self.n_max}, which is N_max)",
                              n_min="n_min", n_max="n_max")
        if policy == "adadiffsr" and self.n_max < 2:
            raise ConfigError(f"{{policy}} adadiffsr needs {{n_max}} >= 2 (the steps of a tile that grows at every "
                              f"step), got {self.n_max}", policy="policy", n_max="n_max")
        if policy == "adasr" and self.exit_mode != "tile":
            raise ConfigError("{policy} adasr stops tiles one by one; use {exit_mode} tile (or {policy} early-exit)",
                              policy="policy", exit_mode="exit_mode")

    def with_(self, **changes: Any) -> "AdaptiveConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------- argparse from metadata
def flag_of(f: Field) -> str:
    """The option of a config field: ``metadata['flag']`` or ``--`` + its name with dashes."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def option_fields(cls: type) -> list[Field]:
    """The fields of ``cls`` that have an option (those with ``help``)."""
    return [f for f in fields(cls) if "help" in f.metadata]


def int_at_least(lo: int) -> Callable[[str], int]:
    """An argparse ``type`` for whole numbers >= ``lo`` (the message says which rule failed)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {value}")
        return value

    parse.__name__ = f"integer >= {lo}"
    return parse


def _parser_type(f: Field) -> Callable[[str], Any] | None:
    kind = f.metadata.get("type") or type(f.default)
    if kind is int:
        return int_at_least(f.metadata["min"]) if "min" in f.metadata else int
    if kind is float:
        return float  # ranges are checked by the config (so the message names the flag, not "argument --x")
    return None


def add_config_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                         group: str | None = None) -> None:
    """Add an option for every field of ``cls`` with ``help`` whose ``metadata['group']`` is ``group``.

    Options default to ``None`` (so :func:`given_values` tells what was given); the help shows the dataclass
    default. Whole numbers with ``min`` are checked by argparse ("must be at least …"), choices too."""
    for f in option_fields(cls):
        if f.metadata.get("group") != group:
            continue
        meta = f.metadata
        kw: dict[str, Any] = {"dest": f.name, "default": None,
                              "help": f"{meta['help']} (default: {meta.get('default_text', f.default)})".replace("%", "%%")}
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        if (meta.get("type") or type(f.default)) is bool:  # a switch: given → True, absent → None (the default)
            kw.update(action="store_const", const=True)
            kw["help"] = meta["help"].replace("%", "%%")
            parser.add_argument(flag_of(f), **kw)
            continue
        if _parser_type(f) is not None:
            kw["type"] = _parser_type(f)
        if "metavar" in meta:
            kw["metavar"] = meta["metavar"]
        parser.add_argument(flag_of(f), **kw)


def given_values(cls: type, namespace: argparse.Namespace) -> dict[str, Any]:
    """{field: value} of the options of ``cls`` given on the command line (those not left at ``None``)."""
    return {f.name: getattr(namespace, f.name) for f in option_fields(cls)
            if getattr(namespace, f.name, None) is not None}


__all__ = ["ADASR_POLICIES", "CACHES", "DIFFUSION_ONLY", "KEY_STEPS", "MODELS", "POLICIES", "PRECISIONS", "QUANT", "QUANT_SUPPORT", "AdaptiveConfig",
           "ConfigError", "UpscaleConfig", "add_config_arguments", "check_model_options", "check_numbers", "flag_of", "given_values",
           "int_at_least",
           "option_fields"]
