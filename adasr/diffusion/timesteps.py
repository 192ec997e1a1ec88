"""Timestep spacing: which integer timesteps a sampler visits (the one home of every spacing rule).

A sampler with n steps on a chain of T training timesteps visits a strictly descending list τ_1 > … > τ_n in
[0, T). diffusers' three rules (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed",
table 2):

* ``leading``:  τ_i = i·⌊T/n⌋ + steps_offset, i = n−1 … 0          (never reaches T−1 unless n = T)
* ``trailing``: τ_i = round(T − i·T/n) − 1, i = 0 … n−1             (always starts at T−1)
* ``linspace``: round(linspace(0, T−1, n)), descending              (starts at T−1, ends at 0: 999, 888, …, 0)

:func:`diffusers_timesteps` is those rules exactly (what ``scheduler.set_timesteps(n)`` uses);
:func:`spaced_timesteps` is the package's sampling schedule: the same lists, except that one step is always
[T − 1] (``linspace``/``leading`` would give [0]: one evaluation at a clean-data timestep fed pure noise).

**Schedules** (:class:`Schedule`) are named rules "N ↦ the list of N timesteps", first-class objects that the
sampling policies take (``UniformDDIM(schedule=...)``) and that ``adasr upscale --schedule`` names:

* :class:`SpacingSchedule` — the three rules above;
* :class:`KarrasSchedule` — EDM's ρ-spacing in σ = √((1 − ᾱ)/ᾱ) (Karras et al. 2022, eq. 5);
* :class:`PowerSchedule` — a low-noise power family: the chain starts at T − 1, ends at ``t_end`` and bends
  towards low noise with ``rho``;
* :class:`ExplicitSchedule` — a given list (``"999,100,20"``);
* :class:`PresetSchedule` — the optimised lists of :mod:`adasr.adaptive.schedule_opt` (one per N), shipped as
  ``adasr/weights/schedules.json`` and loaded by name (``perceptual``, ``balanced``, ``fidelity``).

**An explicit end.** Every list ends at some t_end ≥ 0 and the sampler's last step goes from t_end to ᾱ = 1, which
returns the network's clean estimate x̂0(x_{t_end}, t_end): a chain that ends at t_end > 0 stops there and returns
its x̂0 (the last σ_{t_end}·ε of noise is removed by the network's estimate, not by more steps). Every schedule
starts at T − 1, where the sampler's initial noise x_T ~ N(0, I) belongs.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

TimestepSpacing = Literal["leading", "trailing", "linspace"]
TIMESTEP_SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace")


def diffusers_timesteps(num_steps: int, num_train_timesteps: int = 1000, spacing: str = "leading",
                        steps_offset: int = 0) -> list[int]:
    """diffusers' ``set_timesteps(n)`` list for ``spacing`` (module docstring), descending ints; n ∈ [1, T].

    numpy, as diffusers, so that ties in the rounding (round half to even) fall the same way.
    """
    T, n = num_train_timesteps, num_steps
    if not 1 <= n <= T:
        raise ValueError(f"number of steps must be in 1..{T}, got {n}")
    if spacing == "leading":
        ratio = T // n
        return [i * ratio + steps_offset for i in range(n - 1, -1, -1)]
    if spacing == "trailing":
        # [:n]: float rounding makes diffusers' arange yield n + 1 values for some n (T = 1000: n = 61, 103, …),
        # the extra one being the invalid timestep −1; we keep the first n, identical to diffusers'
        return [int(v) - 1 for v in np.round(np.arange(T, 0, -T / n))[:n]]
    if spacing == "linspace":
        return [int(v) for v in np.linspace(0, T - 1, n).round()[::-1]]
    raise ValueError(f"spacing must be one of {', '.join(repr(s) for s in TIMESTEP_SPACINGS)}, got {spacing!r}")


def spaced_timesteps(num_steps: int, num_train_timesteps: int = 1000, spacing: str = "linspace") -> list[int]:
    """Descending timesteps of an n-step sampler: :func:`diffusers_timesteps`, but one step is always [T − 1].

    ``linspace`` (the default): 999, 888, …, 0 for n = 10, T = 1000. A single step must start where the noise is,
    t = T − 1 (it then returns the model's x̂0: a regression output).
    """
    if num_steps == 1 and num_train_timesteps >= 1:
        return [num_train_timesteps - 1]
    return diffusers_timesteps(num_steps, num_train_timesteps, spacing)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"the number of steps must be a positive int, got {n!r}")


def _check_family(t_end: int, rho: float) -> None:
    """The parameters of a family that ends at ``t_end`` and bends with ``rho``."""
    if isinstance(t_end, bool) or not isinstance(t_end, numbers.Integral) or t_end < 0:
        raise ValueError(f"t_end must be an int >= 0, got {t_end!r}")
    if not (isinstance(rho, numbers.Real) and math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")


def _room(n: int, t_end: int, num_train_timesteps: int) -> int:
    """T − 1, after checking that ``n`` distinct steps fit between it and ``t_end``."""
    _check_n(n)
    top = num_train_timesteps - 1
    if t_end > top - (n - 1):
        raise ValueError(f"t_end={t_end} leaves no room for {n} distinct steps below {top}")
    return top


def strictly_descending(values: Sequence[float], t_end: int, top: int | None = None) -> list[int]:
    """Round ``values`` (descending reals, the last one ``t_end``) to ints that descend strictly: walking up from
    the end, each value is at least one above the next (rounding can make neighbours equal at low noise); then,
    if that pushed the first above ``top``, walking down from ``top`` each is at least one below the previous."""
    out = [int(round(v)) for v in values]
    out[-1] = t_end
    for i in range(len(out) - 2, -1, -1):
        out[i] = max(out[i], out[i + 1] + 1)
    if top is not None and out[0] > top:
        out[0] = top
        for i in range(1, len(out)):
            out[i] = min(out[i], out[i - 1] - 1)
    return out


class Schedule:
    """A named rule "N ↦ N descending timesteps in [0, T)" (module docstring).

    ``eta`` is the DDIM η the schedule was chosen with (``None``: it has none; the caller's η applies).
    Subclasses implement :meth:`timesteps` and :attr:`name`.
    """

    name: str = "schedule"

    def timesteps(self, n: int, num_train_timesteps: int = 1000) -> list[int]:
        """The descending list for ``n`` steps of a chain of ``num_train_timesteps``."""
        raise NotImplementedError

    def eta_for(self, n: int) -> float | None:
        """The η that belongs to this schedule at ``n`` steps (``None``: none; the sampler's η applies)."""
        return None

    def describe(self, n: int, num_train_timesteps: int = 1000) -> dict[str, Any]:
        """What a report records: the name and the list for ``n`` steps (and η where the schedule has one)."""
        d: dict[str, Any] = {"name": self.name, "timesteps": self.timesteps(n, num_train_timesteps)}
        if self.eta_for(n) is not None:
            d["eta"] = self.eta_for(n)
        return d


@dataclass(frozen=True)
class SpacingSchedule(Schedule):
    """diffusers' spacing rules (:func:`spaced_timesteps`): ``linspace`` is round(linspace(T − 1, 0, N)) — 999, 888,
    …, 0 for N = 10 — ``trailing`` round(T − i·T/N) − 1, ``leading`` i·⌊T/N⌋; one step is [T − 1]."""

    spacing: str = "linspace"

    def __post_init__(self) -> None:
        if self.spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(TIMESTEP_SPACINGS)}, got {self.spacing!r}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.spacing

    def timesteps(self, n: int, num_train_timesteps: int = 1000) -> list[int]:
        _check_n(n)
        return spaced_timesteps(n, num_train_timesteps, self.spacing)


@dataclass(frozen=True)
class PowerSchedule(Schedule):
    """The low-noise power family: start at T − 1, end at ``t_end``, bend towards low noise with ``rho`` ≥ 1.

    ::

        t_i = t_end + (T − 1 − t_end) · (1 − i/(N − 1))^ρ,   i = 0 … N − 1      (N = 1: [T − 1])

    rounded to strictly descending ints (:func:`strictly_descending`). ρ = 1 is a linspace that ends at t_end
    (t_end = 0: ``linspace`` itself); larger ρ puts more of the steps at low noise, where the fine detail of an SR
    image is decided (notebook 02). N = 2 is [T − 1, t_end] for every ρ.
    """

    t_end: int = 20
    rho: float = 2.0

    def __post_init__(self) -> None:
        _check_family(self.t_end, self.rho)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"power(t_end={self.t_end},rho={self.rho:g})"

    def timesteps(self, n: int, num_train_timesteps: int = 1000) -> list[int]:
        top = _room(n, self.t_end, num_train_timesteps)
        if n == 1:
            return [top]
        u = np.arange(n) / (n - 1)
        return strictly_descending(self.t_end + (top - self.t_end) * (1 - u) ** self.rho, self.t_end, top)


@dataclass(frozen=True)
class KarrasSchedule(Schedule):
    """EDM's ρ-spacing in noise level (Karras et al. 2022, eq. 5), mapped back to the nearest training timestep.

    ::

        σ(t) = √((1 − ᾱ_t)/ᾱ_t),   σ_i = (σ_max^{1/ρ} + i/(N − 1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,  i = 0 … N − 1

    with σ_max = σ(T − 1), σ_min = σ(t_end); each σ_i is mapped to the timestep whose σ is nearest in log σ, then
    made strictly descending. ρ = 7 is EDM's choice. ``alphas_cumprod`` is the model's ᾱ table (T,) (default: the
    linear β schedule 1e−4 → 0.02 of the shipped ``sr_x4``, built for the T asked for).
    """

    rho: float = 7.0
    t_end: int = 0
    alphas_cumprod: tuple[float, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_family(self.t_end, self.rho)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"karras(rho={self.rho:g},t_end={self.t_end})"

    def _sigmas(self, num_train_timesteps: int) -> np.ndarray:
        if self.alphas_cumprod is not None:
            ac = np.asarray(self.alphas_cumprod, dtype=np.float64)
            if ac.shape != (num_train_timesteps,):
                raise ValueError(f"alphas_cumprod has {ac.shape[0]} entries, the chain {num_train_timesteps}")
        else:
            from .schedules import NoiseSchedule

            ac = NoiseSchedule("linear", num_train_timesteps).alphas_cumprod().numpy()
        return np.sqrt((1 - ac) / ac)

    def timesteps(self, n: int, num_train_timesteps: int = 1000) -> list[int]:
        top = _room(n, self.t_end, num_train_timesteps)
        if n == 1:
            return [top]
        sig = self._sigmas(num_train_timesteps)
        r = 1.0 / self.rho
        u = np.arange(n) / (n - 1)
        targets = (sig[top] ** r + u * (sig[self.t_end] ** r - sig[top] ** r)) ** self.rho
        idx = np.abs(np.log(sig)[None, :] - np.log(targets)[:, None]).argmin(axis=1)
        return strictly_descending(idx.astype(float), self.t_end, top)


@dataclass(frozen=True)
class ExplicitSchedule(Schedule):
    """A given descending list (``ExplicitSchedule((999, 100, 20))``, or the string ``"999,100,20"``); it has one
    length, so asking for another N is an error."""

    steps: tuple[int, ...] = (999,)

    def __post_init__(self) -> None:
        ts = tuple(self.steps)
        if not ts or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in ts):
            raise ValueError(f"an explicit schedule is a non-empty list of ints, got {self.steps!r}")
        if any(a <= b for a, b in zip(ts, ts[1:])) or ts[-1] < 0:
            raise ValueError(f"an explicit schedule must descend strictly and end at t >= 0, got {list(ts)}")
        object.__setattr__(self, "steps", tuple(int(v) for v in ts))

    @property
    def name(self) -> str:  # type: ignore[override]
        return ",".join(str(v) for v in self.steps)

    def timesteps(self, n: int | None = None, num_train_timesteps: int = 1000) -> list[int]:
        if n is not None and n != len(self.steps):
            raise ValueError(f"the schedule {self.name} has {len(self.steps)} steps, not {n}")
        if self.steps[0] >= num_train_timesteps:
            raise ValueError(f"the schedule {self.name} starts at {self.steps[0]}, beyond the chain's "
                             f"{num_train_timesteps - 1}")
        return list(self.steps)


@dataclass(frozen=True)
class PresetSchedule(Schedule):
    """An optimised schedule: for each N a :class:`PowerSchedule` / :class:`KarrasSchedule` / spacing point of the
    search of :mod:`adasr.adaptive.schedule_opt`, with the η it was chosen with.

    ``points`` maps N to {"family", "params", "eta", "timesteps", "constraint_met"}. An N beyond the optimised range
    uses the family point of the largest optimised N whose preset met its constraint (the last N at which the
    search beat the reference; else the largest N), so allocation policies can ask for any budget. The stored
    ``timesteps`` are checked against the family's formula on load.
    """

    preset: str = "balanced"
    points: Mapping[int, Mapping[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.preset

    def point(self, n: int) -> Mapping[str, Any]:
        _check_n(n)
        if not self.points:
            raise ValueError(f"the preset {self.preset!r} has no points")
        if n in self.points:
            return self.points[n]
        met = [k for k, p in self.points.items() if p.get("constraint_met", True)]
        return self.points[max(met or self.points)]

    def timesteps(self, n: int, num_train_timesteps: int = 1000) -> list[int]:
        if n in self.points and num_train_timesteps == 1000:
            return list(self.points[n]["timesteps"])
        p = self.point(n)
        return family_schedule(p["family"], p.get("params", {})).timesteps(n, num_train_timesteps)

    def eta_for(self, n: int) -> float | None:
        return float(self.point(n)["eta"])


def family_schedule(family: str, params: Mapping[str, Any]) -> Schedule:
    """The :class:`Schedule` of a family name (``power``, ``karras``, ``linspace``/``leading``/``trailing``) and
    its parameters, as the optimiser stores them."""
    if family == "power":
        return PowerSchedule(**params)
    if family == "karras":
        return KarrasSchedule(**params)
    if family in TIMESTEP_SPACINGS:
        return SpacingSchedule(family)
    raise ValueError(f"unknown schedule family {family!r}")


#: the names ``--schedule`` accepts besides an explicit list (the optimised presets are read from the registry)
SCHEDULE_PRESETS: tuple[str, ...] = ("perceptual", "balanced", "fidelity")
SCHEDULE_NAMES: tuple[str, ...] = ("linspace", "leading", "trailing", "karras", *SCHEDULE_PRESETS)
_LIST = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*,?\s*$")


def get_schedule(spec: str | Schedule | Sequence[int]) -> Schedule:
    """A :class:`Schedule` from a name of :data:`SCHEDULE_NAMES`, an explicit list (``"999,100,20"`` or a sequence
    of ints) or a Schedule (returned as it is). Presets come from ``adasr/weights/schedules.json``."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        if spec in TIMESTEP_SPACINGS:
            return SpacingSchedule(spec)
        if spec == "karras":
            return KarrasSchedule()
        if spec in SCHEDULE_PRESETS:
            from ..registry import load_schedule_presets

            return load_schedule_presets()[spec]
        if _LIST.match(spec):
            return ExplicitSchedule(tuple(int(v) for v in spec.replace(" ", "").strip(",").split(",")))
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULE_NAMES)} or a descending list of timesteps "
                         f"such as 999,100,20; got {spec!r}")
    if isinstance(spec, (list, tuple)):
        return ExplicitSchedule(tuple(spec))
    raise TypeError(f"schedule must be a name, a list of timesteps or a Schedule, got {type(spec).__name__}")


__all__ = ["SCHEDULE_NAMES", "SCHEDULE_PRESETS", "TIMESTEP_SPACINGS", "ExplicitSchedule", "KarrasSchedule",
           "PowerSchedule", "PresetSchedule", "Schedule", "SpacingSchedule", "TimestepSpacing",
           "diffusers_timesteps", "family_schedule", "get_schedule", "spaced_timesteps", "strictly_descending"]
