"""AdaDiffSR's information gain (Fan et al., ECCV 2024, §3.2, eqs. 1–2), computed from image-quality metrics.

After step i a tile has a clean estimate; as an image (``model.output``) it is f_i (3, h, w) in [0, 1]. Its
*representation quality* against a reference o is a weighted sum of normalised metrics (1 = best),

    R_i = Σ_{c ∈ FR} ω_c · M_c(f_i, o)  +  Σ_{c ∈ NR} ω_c · M_c(f_i)                      (eq. 2)

and the information gain of the step is its change squashed to [−1, 1],

    I_i = tanh(R_i − R_{i−1})                                                               (eq. 1)

DTSS needs the two perspectives apart, so this module reports I^FR_i = tanh(R^FR_i − R^FR_{i−1}) and
I^NR_i = tanh(R^NR_i − R^NR_{i−1}) as well as I_i. As the paper prescribes, the no-reference metrics count only in
the **second half** of the trajectory (t < ``nr_from``, T/2 by default): before that I^NR = 0 and the NR term is
left out of I. R^NR is still computed at every step, so the first step of the second half compares with the
estimate before it.

**What f_i and o are here.** The paper computes the metrics between the denoising feature and the original image
feature in a latent space. Our model works in pixels, and what a tile has after a step is its clean estimate x̂0,
so f_i is the image of x̂0 (not the noisy x_t). For the reference:

* ``reference='input'`` (inference: only the LR input exists): o = up(LR), the condition, and the FR metrics
  compare the estimate *seen through the degradation*, up(down(f_i)), with o — how consistent the estimate is with
  the input it must explain (a full-resolution f_i compared with the blurry up(LR) would reward blur);
* ``reference='hr'`` (training data, analysis): o = the HR tile and f_i is compared directly — the oracle signal,
  what the MMLE regressor (:mod:`adasr.adaptive.mmle`) is trained to predict.

**Metrics** (:mod:`adasr.iqa`, each normalised to [0, 1] with 1 best): FR — PSNR, LPIPS (AlexNet), NLPD, and GMSD
as the stand-in for AHIQ (a transformer IQA model that needs downloaded weights); NR — BRISQUE and NIQE as the
stand-ins for MUSIQ (same reason). Weights ω: equal within each group, each group summing to 1, unless given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch

from ..data import downscale, upscale_bicubic

Reference = Literal["input", "hr"]
REFERENCES: tuple[str, ...] = ("input", "hr")
#: The paper's metrics with our stand-ins (module docstring).
DEFAULT_FR: tuple[str, ...] = ("psnr", "lpips", "nlpd", "gmsd")
DEFAULT_NR: tuple[str, ...] = ("brisque", "niqe")


def _metric_specs():
    from .. import iqa

    return iqa.FR_METRICS, iqa.NR_METRICS


@dataclass(frozen=True)
class GainConfig:
    """Which metrics enter R (eq. 2), their weights ω, from which t the NR metrics count, and the reference.

    ``fr_weights`` / ``nr_weights``: one weight per metric of ``fr`` / ``nr`` (default: equal, summing to 1 per
    group). ``nr_from``: NR metrics count at steps with t < nr_from (default 500: the second half of T = 1000;
    0 switches NR off, T switches it on everywhere). ``scale``: the model's scale factor (for 'input').
    """

    fr: tuple[str, ...] = DEFAULT_FR
    nr: tuple[str, ...] = DEFAULT_NR
    fr_weights: tuple[float, ...] | None = None
    nr_weights: tuple[float, ...] | None = None
    nr_from: int = 500
    reference: Reference = "input"
    scale: int = 4

    def __post_init__(self) -> None:
        fr_specs, nr_specs = _metric_specs()
        for group, names, specs in (("fr", self.fr, fr_specs), ("nr", self.nr, nr_specs)):
            bad = [n for n in names if n not in specs]
            if bad:
                raise ValueError(f"unknown {group.upper()} metric(s) {bad}; choose from {sorted(specs)}")
        if not self.fr and not self.nr:
            raise ValueError("the information gain needs at least one metric")
        for names, w, label in ((self.fr, self.fr_weights, "fr_weights"), (self.nr, self.nr_weights, "nr_weights")):
            if w is not None:
                if len(w) != len(names):
                    raise ValueError(f"{label} needs one weight per metric ({len(names)}), got {len(w)}")
                if any(not (x >= 0) for x in w):
                    raise ValueError(f"{label} must be non-negative, got {w}")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.nr_from < 0:
            raise ValueError(f"nr_from must be >= 0, got {self.nr_from}")

    def weights(self, group: str) -> tuple[float, ...]:
        names = self.fr if group == "fr" else self.nr
        w = self.fr_weights if group == "fr" else self.nr_weights
        return tuple(w) if w is not None else tuple(1.0 / len(names) for _ in names)

    def nr_active(self, t: int) -> bool:
        """Whether the NR metrics count at a step taken at timestep ``t``."""
        return bool(self.nr) and t < self.nr_from

    def to_dict(self) -> dict:
        return {"fr": list(self.fr), "nr": list(self.nr), "fr_weights": list(self.weights("fr")),
                "nr_weights": list(self.weights("nr")), "nr_from": self.nr_from, "reference": self.reference}


def through_degradation(img: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """up(down(f)): what of the estimate f (B, 3, h, w) in [0, 1] the LR input can confirm (bicubic ↓s, ↑s)."""
    return ((upscale_bicubic(downscale(img * 2 - 1, scale), scale) + 1) / 2).clamp(0, 1)


@dataclass
class Representation:
    """R of a batch of tiles (eq. 2): per group (B,) and per metric (raw and normalised values)."""

    fr: torch.Tensor
    nr: torch.Tensor | None
    raw: dict[str, torch.Tensor] = field(default_factory=dict)
    normalised: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        return self.fr if self.nr is None else self.fr + self.nr


def _finite(v) -> torch.Tensor:
    """Normalised values with NaN read as 1 (best): NIQE is undefined on a flat tile, which BRISQUE scores as
    perfect, so a flat tile stays flat in R and its gain is 0."""
    return torch.nan_to_num(torch.as_tensor(v, dtype=torch.float64), nan=1.0)


def representation(f: torch.Tensor, o: torch.Tensor | None, config: GainConfig, *, nr: bool = True
                   ) -> Representation:
    """R (eq. 2) of estimates ``f`` (B, 3, h, w) in [0, 1] against references ``o`` (B, 3, h, w) in [0, 1] —
    up(LR) for ``reference='input'`` (f is then passed through the degradation first), the HR for 'hr'.
    ``nr``: include the NR metrics (the caller decides from t, :meth:`GainConfig.nr_active`)."""
    fr_specs, nr_specs = _metric_specs()
    if f.ndim != 4 or f.shape[1] != 3:
        raise ValueError(f"f must be (B, 3, h, w), got {tuple(f.shape)}")
    rep = Representation(torch.zeros(f.shape[0], dtype=torch.float64), None)
    f = f.float().clamp(0, 1)
    if config.fr:
        if o is None or o.shape != f.shape:
            raise ValueError(f"the FR metrics need a reference of f's shape {tuple(f.shape)}, got "
                             f"{None if o is None else tuple(o.shape)}")
        a = through_degradation(f, config.scale) if config.reference == "input" else f
        for name, w in zip(config.fr, config.weights("fr")):
            spec = fr_specs[name]
            v = spec.fn(a, o.float().clamp(0, 1)).detach().double().cpu()
            rep.raw[name] = v
            rep.normalised[name] = _finite(spec.normalised(v))
            rep.fr = rep.fr + w * rep.normalised[name]
    if nr and config.nr:
        rep.nr = torch.zeros(f.shape[0], dtype=torch.float64)
        for name, w in zip(config.nr, config.weights("nr")):
            spec = nr_specs[name]
            v = spec.fn(f).detach().double().cpu()
            rep.raw[name] = v
            rep.normalised[name] = _finite(spec.normalised(v))
            rep.nr = rep.nr + w * rep.normalised[name]
    return rep


def information_gain(r_new: torch.Tensor, r_old: torch.Tensor) -> torch.Tensor:
    """I = tanh(R_i − R_{i−1}) (eq. 1), elementwise."""
    return torch.tanh(torch.as_tensor(r_new, dtype=torch.float64) - torch.as_tensor(r_old, dtype=torch.float64))


@dataclass(frozen=True)
class Gain:
    """One tile's gain at one step: I^FR, I^NR (0 when NR is not active at this step or the last) and I."""

    fr: float
    nr: float
    total: float
    nr_active: bool


class GainMeter:
    """Per-tile memory of R across a run; :meth:`update` scores a tile's new estimate and returns its :class:`Gain`.

    The first estimate of a tile has no predecessor: its gain is 0 in both perspectives. Time spent computing
    metrics is accumulated in :attr:`seconds` (the bench counts it as the policy's cost).
    """

    def __init__(self, config: GainConfig) -> None:
        self.config = config
        self.seconds = 0.0
        self._last: dict[int, tuple[float, float | None]] = {}

    def reset(self) -> None:
        self._last.clear()
        self.seconds = 0.0

    def update(self, tile: int, f: torch.Tensor, o: torch.Tensor | None, t: int) -> tuple[Gain, Representation]:
        """Score estimate ``f`` (3, h, w) in [0, 1] of ``tile`` made at timestep ``t`` against ``o`` (3, h, w).

        R^NR is computed at every step (so the first step of the second half has a predecessor to compare with),
        but I^NR counts, in I^NR and in I, only at steps with t < ``nr_from``."""
        start = time.perf_counter()
        nr_on = self.config.nr_active(t)
        rep = representation(f[None], None if o is None else o[None], self.config, nr=bool(self.config.nr))
        r_fr = float(rep.fr[0])
        r_nr = None if rep.nr is None else float(rep.nr[0])
        last = self._last.get(tile)
        self._last[tile] = (r_fr, r_nr)
        if last is None:
            gain = Gain(0.0, 0.0, 0.0, nr_on)
        else:
            i_fr = float(information_gain(r_fr, last[0])) if self.config.fr else 0.0
            use_nr = nr_on and r_nr is not None and last[1] is not None
            i_nr = float(information_gain(r_nr, last[1])) if use_nr else 0.0  # type: ignore[arg-type]
            total_new = r_fr + (r_nr if use_nr else 0.0)  # type: ignore[operator]
            total_old = last[0] + (last[1] if use_nr else 0.0)  # type: ignore[operator]
            gain = Gain(i_fr, i_nr, float(information_gain(total_new, total_old)), use_nr)
        self.seconds += time.perf_counter() - start
        return gain, rep


def gains_along(images: Sequence[torch.Tensor], timesteps: Sequence[int], o: torch.Tensor | None,
                config: GainConfig) -> list[Gain]:
    """The gains of one tile's trajectory: ``images`` f_1 … f_n (each (3, h, w) in [0, 1]) made at ``timesteps``."""
    if len(images) != len(timesteps):
        raise ValueError(f"need one timestep per image, got {len(images)} and {len(timesteps)}")
    meter = GainMeter(config)
    return [meter.update(0, f, o, int(t))[0] for f, t in zip(images, timesteps)]


__all__ = ["DEFAULT_FR", "DEFAULT_NR", "REFERENCES", "Gain", "GainConfig", "GainMeter", "Representation",
           "gains_along", "information_gain", "representation", "through_degradation"]
