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
"""

from __future__ import annotations

from typing import Literal

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


__all__ = ["TIMESTEP_SPACINGS", "TimestepSpacing", "diffusers_timesteps", "spaced_timesteps"]
