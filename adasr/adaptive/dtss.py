"""AdaDiffSR's dynamic timestep sampling strategy (DTSS; Fan et al., ECCV 2024, §3.3) as a tile-sampler policy.

After every step of a tile, its information gain in the two perspectives, I^FR and I^NR
(:mod:`adasr.adaptive.information_gain`; from the MMLE regressor by default, :mod:`adasr.adaptive.mmle`),
classifies it with the threshold τ (5·10⁻³ in the paper):

* **saturated** — I^NR < −τ (the no-reference quality falls): the tile stops and keeps its best estimate so far
  in the NR perspective (the highest R^NR seen);
* **growing** — I^NR > τ (realism still rising): a small stride, the smallest of the codebook when I^FR > τ too
  (both rise: the paper's growing region), the second smallest otherwise;
* **stable** — |I^NR| ≤ τ (NR flat): a large stride, the second largest when I^FR > τ (FR rises, NR flat: the
  paper's stable region), the largest when FR is flat or falling too.

The paper names three classes and four intervals (5, 10, 15, 20) without saying which interval each class gets;
the split by the FR perspective above is our reading, stated as such. A tile's first step takes ``first``
(default: the largest stride); its gain is measured from f_0 = up(LR), the estimate before any step (a residual
model's x̂0 = 0), so the class decides from the second step on. NR only counts in the second half of the trajectory, so in the
first half every tile is "stable" and its stride depends on I^FR alone. The class is re-decided after every step
and recorded per tile (:meth:`DynamicStrides.memory`).

**Strides on our budget.** The paper's codebook counts timesteps of T_max = 1000 (a stride of 20 is a 50-step
chain). Our model is sampled with 2–20 steps, so the codebook is scaled: with ``steps`` = N, a tile that is
growing at every step takes N steps with the paper's codebook (smallest stride 5) and one that is stable at every
step about (N − 1)/4 + 1:

    Δu_j = c_j / (5 · (N − 1)),    u ∈ [0, 1] the tile's progress,   t = warp(u)

where warp is the base schedule's shape — ``linspace`` (t = (T − 1)(1 − u)) or an optimised preset (its family
point at N, e.g. the power or Karras curve of ``balanced``), so strides move along the optimised schedule rather
than along raw t. A tile ends at u = 1 (the base's last timestep, then the clean end of the chain).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Literal

import numpy as np
import torch

from ..diffusion.timesteps import PresetSchedule, Schedule, family_schedule, get_schedule
from ..sampling.policies import CONTINUE, Decision, Policy, TileState
from .information_gain import GainConfig, GainMeter

Signal = Literal["regressor", "metrics", "oracle"]
SIGNALS: tuple[str, ...] = ("regressor", "metrics", "oracle")
CLASSES: tuple[str, ...] = ("growing", "stable", "saturated")
#: The paper's threshold and stride codebook (timesteps of T_max = 1000).
PAPER_TAU = 5e-3
PAPER_CODEBOOK: tuple[int, ...] = (5, 10, 15, 20)


def classify(i_fr: float, i_nr: float, tau: float = PAPER_TAU) -> tuple[str, int | None]:
    """(class, codebook index) from the gains (module docstring); the index is None for ``saturated``.

    >>> classify(0.01, 0.01)
    ('growing', 0)
    >>> classify(0.01, 0.0)
    ('stable', 2)
    >>> classify(0.0, -0.01)
    ('saturated', None)
    """
    if i_nr < -tau:
        return "saturated", None
    if i_nr > tau:
        return "growing", 0 if i_fr > tau else 1
    return "stable", 2 if i_fr > tau else 3


class Warp:
    """t = warp(u), u ∈ [0, 1]: the base schedule's shape at N steps, piecewise linear through a fine sampling of
    its family (200 points), strictly decreasing; ``u_of(t)`` is its inverse."""

    def __init__(self, schedule: Schedule, n: int, num_train_timesteps: int = 1000, resolution: int = 200) -> None:
        shape: Schedule = schedule
        if isinstance(schedule, PresetSchedule):
            p = schedule.point(n)
            shape = family_schedule(p["family"], p.get("params", {}))
        m = min(resolution, num_train_timesteps)
        ts = np.asarray(shape.timesteps(m, num_train_timesteps), dtype=float)
        self.u = np.linspace(0.0, 1.0, len(ts))
        self.t = ts
        self.t_end = int(ts[-1])
        self.top = int(ts[0])

    def __call__(self, u: float) -> float:
        return float(np.interp(min(max(u, 0.0), 1.0), self.u, self.t))

    def u_of(self, t: float) -> float:
        return float(np.interp(t, self.t[::-1], self.u[::-1]))


def stride_list(warp: Warp, u: float, du: float, t_now: int) -> list[int]:
    """The descending timesteps from ``t_now`` (at progress ``u``) to the end at stride ``du``:
    [t_now, warp(u + du), warp(u + 2du), …, warp(1)], rounded, each at least 1 below the one before; a point
    less than half a stride before the end is moved to the end."""
    out = [int(t_now)]
    k = 1
    while out[-1] > warp.t_end:
        v = u + k * du
        if v > 1.0 - du / 2:  # less than half a stride left: end here (no sliver of a step at the end)
            v = 1.0
        t = min(int(round(warp(v))), out[-1] - 1)
        if t < warp.t_end:
            break
        out.append(t)
        if v >= 1.0:
            break
        k += 1
    return out


@dataclass(frozen=True)
class DTSSConfig:
    """τ, the stride codebook, N (the budget of an always-growing tile), the gain signal and its metrics.

    ``signal``: ``regressor`` (the MMLE regressor, default), ``metrics`` (the metrics computed against the input,
    as the paper's inference must) or ``oracle`` (against the HR: analysis only, needs :meth:`DynamicStrides.
    set_reference`). ``first``: codebook index of a tile's first stride. ``gain``: the metrics and weights of R.
    """

    tau: float = PAPER_TAU
    codebook: tuple[int, ...] = PAPER_CODEBOOK
    steps: int = 10
    signal: Signal = "regressor"
    first: int = -1
    gain: GainConfig = field(default_factory=GainConfig)
    exit_on_saturation: bool = True

    def __post_init__(self) -> None:
        if not (self.tau >= 0 and math.isfinite(self.tau)):
            raise ValueError(f"tau must be a finite number >= 0, got {self.tau}")
        if len(self.codebook) != 4 or any(c <= 0 for c in self.codebook) or list(self.codebook) != sorted(self.codebook):
            raise ValueError(f"codebook must be four ascending positive strides, got {self.codebook}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 2:
            raise ValueError(f"steps must be an int >= 2 (a tile that grows at every step takes that many), "
                             f"got {self.steps!r}")
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
        if not -4 <= self.first < 4:
            raise ValueError(f"first must index the codebook (-4 … 3), got {self.first}")

    def strides(self) -> tuple[float, ...]:
        """Δu of each codebook entry (module docstring): c_j / (c_ref · (N − 1)) with c_ref = 5, the paper's
        smallest stride, for every codebook (so an all-large codebook really takes large strides)."""
        return tuple(c / (PAPER_CODEBOOK[0] * (self.steps - 1)) for c in self.codebook)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gain"] = self.gain.to_dict()
        return d


@dataclass(frozen=True)
class DynamicStrides(Policy):
    """Policy: each tile re-picks its stride after every step from its gain class, or stops when saturated.

    ``to_image(x0, cond)`` maps the diffused variable to an image in [−1, 1] (``model.output``); ``regressor`` is
    an :class:`~adasr.adaptive.mmle.MMLERegressor` (needed for ``signal='regressor'``). ``pfj``: the network is a
    PFJ model (:mod:`adasr.adaptive.pfj`), so :meth:`condition` appends each tile's latest (I^FR, I^NR) as two
    constant planes to its condition (zeros before its first gain).
    """

    config: DTSSConfig = field(default_factory=DTSSConfig)
    base: str | Schedule = "linspace"
    to_image: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = field(default=None, compare=False,
                                                                                   repr=False)
    regressor: Any = field(default=None, compare=False, repr=False)
    pfj: bool = False
    name: str = "adadiffsr"
    _run: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", get_schedule(self.base))
        if self.config.signal == "regressor" and self.regressor is None:
            raise ValueError("signal='regressor' needs a regressor (adasr.adaptive.mmle.load_mmle_regressor())")

    @property
    def steps(self) -> int:  # type: ignore[override]
        return self.config.steps

    @property
    def schedule(self) -> Schedule:  # type: ignore[override]
        return self.base  # type: ignore[return-value]

    def set_reference(self, hr_tiles: torch.Tensor | None) -> None:
        """HR tiles (N, 3, h, w) in [−1, 1], cut like the condition, for ``signal='oracle'``."""
        self._run["reference"] = hr_tiles

    def plan(self, cond_tiles: torch.Tensor, num_train_timesteps: int) -> list[list[int]]:
        c = self.config
        warp = Warp(self.base, c.steps, num_train_timesteps)  # type: ignore[arg-type]
        self._run.update(warp=warp, cond=cond_tiles, T=num_train_timesteps)
        if c.signal == "oracle":
            ref = self._run.get("reference")
            if ref is None or ref.shape != cond_tiles.shape:
                raise ValueError("signal='oracle' needs set_reference(HR tiles) cut like the condition "
                                 f"{tuple(cond_tiles.shape)}")
        du = c.strides()[c.first]
        return [stride_list(warp, 0.0, du, warp.top) for _ in range(cond_tiles.shape[0])]

    def begin(self, num_tiles: int) -> None:
        c = self.config
        self._run["meter"] = GainMeter(replace(c.gain, reference="hr" if c.signal == "oracle" else "input"))
        self._run["records"] = [[] for _ in range(num_tiles)]
        self._run["best"] = {}
        self._run["prev_image"] = {}
        self._run["signal_calls"] = 0
        self._run["signal_seconds"] = 0.0
        self._run["last_gain"] = {}
        self._run["r_nr"] = {}

    def condition(self, tiles: list[TileState], cond: torch.Tensor) -> torch.Tensor:
        if not self.pfj:
            return cond
        last = self._run.setdefault("last_gain", {})
        g = torch.tensor([last.get(s.index, (0.0, 0.0)) for s in tiles], dtype=cond.dtype, device=cond.device)
        planes = g[:, :, None, None].expand(-1, -1, *cond.shape[-2:])
        return torch.cat([cond, planes], dim=1)

    # -- the gain signal ---------------------------------------------------------------------------------------

    def _image(self, tile: int, x0: torch.Tensor) -> torch.Tensor:
        cond = self._run["cond"][tile : tile + 1].to(x0.device)
        img = self.to_image(x0[None].float(), cond) if self.to_image is not None else x0[None].float()
        return ((img[0].float().cpu() + 1) / 2).clamp(0, 1)

    def _gain(self, tile: TileState, f: torch.Tensor) -> tuple[float, float, float]:
        """(I^FR, I^NR, R^NR or −inf) of the step ``tile`` just took, its new estimate's image ``f`` (3, h, w)."""
        c = self.config
        t = tile.t
        start = time.perf_counter()
        self._run["signal_calls"] += 1
        o = (self._run["cond"][tile.index].float().cpu() + 1) / 2
        prev = self._run["prev_image"].get(tile.index, o)  # f_0: up(LR), the estimate before any step
        self._run["prev_image"][tile.index] = f
        if c.signal == "regressor":
            nr_on = c.gain.nr_active(t)
            i_fr, i_nr = self.regressor.predict(f[None], prev[None], o[None], torch.tensor([t]),
                                                self._run["T"])[0].tolist()
            r_nr = self._run.get("r_nr", {}).get(tile.index, 0.0) + (i_nr if nr_on else 0.0)
            self._run.setdefault("r_nr", {})[tile.index] = r_nr
            out = (float(i_fr), float(i_nr) if nr_on else 0.0, r_nr if nr_on else -math.inf)
        else:
            ref = o if c.signal == "metrics" else (self._run["reference"][tile.index].float().cpu() + 1) / 2
            meter = self._run["meter"]
            if tile.evaluations <= 1:  # R_0 of f_0 = up(LR) (NR off: t = T)
                meter.update(tile.index, o, ref, self._run["T"])
            gain, rep = meter.update(tile.index, f, ref, t)
            r_nr = float(rep.nr[0]) if rep.nr is not None else -math.inf
            out = (gain.fr, gain.nr, r_nr)
        self._run["signal_seconds"] += time.perf_counter() - start
        return out

    # -- the decision ------------------------------------------------------------------------------------------

    def decide(self, tile: TileState, x0_new: torch.Tensor, x0_old: torch.Tensor | None) -> Decision:
        c = self.config
        f = self._image(tile.index, x0_new)
        i_fr, i_nr, r_nr = self._gain(tile, f)
        self._run.setdefault("last_gain", {})[tile.index] = (i_fr, i_nr)
        best = self._run["best"].get(tile.index)
        if r_nr > -math.inf and (best is None or r_nr > best[0]):
            self._run["best"][tile.index] = best = (r_nr, x0_new.detach().clone())
        cls, level = classify(i_fr, i_nr, c.tau)
        t_next = tile.t_prev
        rec = {"t": tile.t, "class": cls, "i_fr": i_fr, "i_nr": i_nr}
        records = self._run["records"][tile.index]
        if t_next < 0:  # the tile has reached the clean end of its chain
            rec["stride"] = None
            records.append(rec)
            return CONTINUE
        if cls == "saturated":
            rec["stride"] = None
            records.append(rec)
            if not c.exit_on_saturation:
                level = 0
            else:
                keep = best[1] if best is not None else None
                return Decision(stop=True, keep=keep)
        warp: Any = self._run["warp"]
        du = c.strides()[level]  # type: ignore[index]
        u_now = warp.u_of(t_next)
        rest = stride_list(warp, u_now, du, t_next)
        rec["stride"] = c.codebook[level]  # type: ignore[index]
        records.append(rec)
        return Decision(remaining=tuple(rest))

    def memory(self) -> dict[str, Any]:
        """{"records": per tile, one {t, class, i_fr, i_nr, stride} per step; "signal_calls", "signal_seconds"}."""
        return {"records": [list(r) for r in self._run.get("records", [])],
                "signal_calls": self._run.get("signal_calls", 0),
                "signal_seconds": self._run.get("signal_seconds", 0.0)}


def class_counts(records: list[list[dict]]) -> dict[str, int]:
    """How often each class was decided over all tiles and steps of a run's records."""
    out = {k: 0 for k in CLASSES}
    for rec in records:
        for r in rec:
            out[r["class"]] += 1
    return out


__all__ = ["CLASSES", "PAPER_CODEBOOK", "PAPER_TAU", "SIGNALS", "DTSSConfig", "DynamicStrides", "Warp",
           "class_counts", "classify", "stride_list"]
