"""Noise schedules: the β / ᾱ tables of DDPM, improved-DDPM and ECDP.

Forward process (Ho et al. 2020, eq. 4)::

    q(x_t | x_0) = N(√ᾱ_t · x_0, (1 − ᾱ_t) · I),   ᾱ_t = ∏_{i≤t} (1 − β_i)

Three families are provided, all returning a float64 tensor of shape ``(T,)``:

* ``linear``   β_t = linspace(β_start, β_end, T)                     (DDPM; diffusers ``"linear"``)
* ``cosine``   ᾱ(s) = cos²((s + 0.008)/1.008 · π/2), β clipped at 0.999  (Nichol & Dhariwal;
  diffusers ``"squaredcos_cap_v2"``)
* ``ecdp_vp``  continuous VP: ᾱ(s) = exp(−s·(s·(β_max − β_min)/2 + β_min)), s = i/T
  (ECDP / AdaSR, β_min = 0.1, β_max = 20)

Each schedule also has a continuous-time ``log ᾱ(s)`` for s ∈ [0, 1], used by the probability-flow ODE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

ScheduleKind = Literal["linear", "scaled_linear", "cosine", "squaredcos_cap_v2", "ecdp_vp"]


def linear_betas(num_train_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t = β_start + (β_end − β_start)·t/(T − 1), t = 0..T−1 → shape (T,), float64."""
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)


def scaled_linear_betas(num_train_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_t = (linspace(√β_start, √β_end, T))² (latent-diffusion schedule) → shape (T,)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2


def cosine_alpha_bar(s: torch.Tensor | float, offset: float = 0.008) -> torch.Tensor:
    """ᾱ(s) = cos²(((s + o)/(1 + o))·π/2) for continuous s ∈ [0, 1] (Nichol & Dhariwal 2021, eq. 17)."""
    s = torch.as_tensor(s, dtype=torch.float64)
    return torch.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """β_t = min(1 − ᾱ((t+1)/T)/ᾱ(t/T), max_beta) → shape (T,) (diffusers ``squaredcos_cap_v2``)."""
    T = num_train_timesteps
    i = torch.arange(T, dtype=torch.float64)
    betas = 1 - cosine_alpha_bar((i + 1) / T) / cosine_alpha_bar(i / T)
    return betas.clamp(max=max_beta)


def vp_log_alpha_bar(s: torch.Tensor | float, beta_min: float = 0.1, beta_max: float = 20.0) -> torch.Tensor:
    """log ᾱ(s) = −s·(s·(β_max − β_min)/2 + β_min), the VP-SDE with linear β(s) (Song et al. 2021, ECDP)."""
    s = torch.as_tensor(s, dtype=torch.float64)
    return -s * (s * (beta_max - beta_min) / 2 + beta_min)


def ecdp_vp_betas(num_train_timesteps: int, beta_min: float = 0.1, beta_max: float = 20.0) -> torch.Tensor:
    """ECDP's discretisation: ᾱ_i = ᾱ_vp((i+1)/T), β_i = 1 − ᾱ_i/ᾱ_{i−1} → shape (T,)."""
    T = num_train_timesteps
    s = torch.arange(T + 1, dtype=torch.float64) / T
    abar = torch.exp(vp_log_alpha_bar(s, beta_min, beta_max))
    return 1 - abar[1:] / abar[:-1]


@dataclass(frozen=True)
class NoiseSchedule:
    """A named β schedule. ``betas()`` is the discrete table, ``log_alpha_bar(s)`` its continuous-time version.

    For ``ecdp_vp``, ``beta_start``/``beta_end`` are the continuous β_min/β_max (use :meth:`ecdp`).
    For ``linear`` the continuous version is the VP-SDE with β_min = T·β_start, β_max = T·β_end, the limit that
    the discrete DDPM chain approximates (Song et al. 2021, appendix B).
    """

    kind: ScheduleKind = "linear"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.num_train_timesteps < 2:
            raise ValueError("num_train_timesteps must be at least 2")
        if self.kind not in ("linear", "scaled_linear", "cosine", "squaredcos_cap_v2", "ecdp_vp"):
            raise ValueError(f"unknown beta schedule {self.kind!r}")

    @classmethod
    def ecdp(cls, num_train_timesteps: int = 300) -> "NoiseSchedule":
        """ECDP's continuous VP schedule (β_min = 0.1, β_max = 20) discretised to ``num_train_timesteps``."""
        return cls("ecdp_vp", num_train_timesteps, 0.1, 20.0)

    def betas(self) -> torch.Tensor:
        """β_t, shape (T,), float64."""
        T = self.num_train_timesteps
        if self.kind == "linear":
            return linear_betas(T, self.beta_start, self.beta_end)
        if self.kind == "scaled_linear":
            return scaled_linear_betas(T, self.beta_start, self.beta_end)
        if self.kind in ("cosine", "squaredcos_cap_v2"):
            return cosine_betas(T)
        return ecdp_vp_betas(T, self.beta_start, self.beta_end)

    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t = ∏_{i≤t}(1 − β_i), shape (T,), float64."""
        return torch.cumprod(1 - self.betas(), dim=0)

    def log_alpha_bar(self, s: torch.Tensor | float) -> torch.Tensor:
        """Continuous log ᾱ(s), s ∈ [0, 1]; s = (t + 1)/T matches discrete index t."""
        if self.kind in ("cosine", "squaredcos_cap_v2"):
            return torch.log(cosine_alpha_bar(s) / cosine_alpha_bar(0.0))
        if self.kind == "ecdp_vp":
            return vp_log_alpha_bar(s, self.beta_start, self.beta_end)
        if self.kind == "linear":
            T = self.num_train_timesteps
            return vp_log_alpha_bar(s, self.beta_start * T, self.beta_end * T)
        # scaled_linear: interpolate the discrete table in log space
        s = torch.as_tensor(s, dtype=torch.float64)
        la = torch.log(self.alphas_cumprod())
        pos = (s * self.num_train_timesteps - 1).clamp(0, self.num_train_timesteps - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=self.num_train_timesteps - 1)
        w = pos - lo
        return la[lo] * (1 - w) + la[hi] * w
