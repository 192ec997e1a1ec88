"""Discrete-time samplers with diffusers' interface: :class:`DDPMScheduler` (ancestral) and :class:`DDIMScheduler`.

Both walk a descending list of integer timesteps τ_1 > τ_2 > … > τ_N (``scheduler.timesteps``) on the training
chain ᾱ_0 > ᾱ_1 > … > ᾱ_{T−1} (``scheduler.alphas_cumprod``, from :mod:`adasr.diffusion.schedules`)::

    scheduler.set_timesteps(50)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t), t, x).prev_sample

All tensors are ``(B, C, H, W)`` (any ``(B, ...)`` works). The network output is converted to x̂0 and ε̂ with
:func:`adasr.diffusion.objectives.predict_x0` / :func:`~adasr.diffusion.objectives.predict_eps` for the three
parameterisations ``"epsilon"``, ``"sample"`` and ``"v_prediction"``.

The semantics (timestep spacings, which "previous" timestep a step targets, when noise is drawn, clipping) follow
``diffusers`` 0.3x–0.4x exactly, so a model trained for a diffusers scheduler samples identically here; the few
surprising ones are spelled out in the method docstrings. The tables are kept in float64 (diffusers keeps float32);
they are cast to the sample's dtype at use.

:func:`~adasr.diffusion.ddim.ddim_step` (in :mod:`adasr.diffusion.ddim`, with the update the tile sampler uses) is
the DDIM update itself, for per-sample ᾱ pairs; the timestep spacings live in :mod:`adasr.diffusion.timesteps` and
the forward noising in :func:`adasr.diffusion.objectives.q_sample`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Literal, TypeVar

import torch

from adasr.diffusion.ddim import alpha_bar_at, ddim_step
from adasr.diffusion.objectives import PREDICTION_TYPES, PredictionType, predict_x0, q_sample
from adasr.diffusion.schedules import NoiseSchedule
from adasr.diffusion.timesteps import TIMESTEP_SPACINGS, TimestepSpacing, diffusers_timesteps

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2", "cosine", "ecdp_vp"]
VarianceType = Literal["fixed_small", "fixed_large"]

BETA_SCHEDULES: tuple[str, ...] = ("linear", "scaled_linear", "squaredcos_cap_v2", "cosine", "ecdp_vp")
VARIANCE_TYPES: tuple[str, ...] = ("fixed_small", "fixed_large")

Timestep = int | torch.Tensor


# ----------------------------------------------------------------------------------------------------------------
# Output and configuration records
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchedulerOutput:
    """Result of one sampler step.

    Attributes:
        prev_sample: x_{t_prev}, the sample at the next (less noisy) timestep, shape of ``sample``.
        pred_original_sample: x̂0 predicted at the current step (clipped when clipping is on), same shape.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor

    def to_tuple(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prev_sample, pred_original_sample)``, what ``return_dict=False`` gives."""
        return self.prev_sample, self.pred_original_sample


# diffusers names, for readers coming from there
DDPMSchedulerOutput = SchedulerOutput
DDIMSchedulerOutput = SchedulerOutput


@dataclass(frozen=True)
class SchedulerConfig:
    """Constructor arguments shared by both schedulers (diffusers' ``scheduler.config``).

    ``beta_start``/``beta_end`` are the discrete β_0/β_{T−1} for ``linear``/``scaled_linear``; they are ignored by
    the cosine schedule; for ``ecdp_vp`` they are the *continuous* rates β_min/β_max of the VP-SDE (ECDP: 0.1, 20),
    as in :meth:`NoiseSchedule.ecdp`.
    """

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: BetaSchedule = "linear"
    trained_betas: tuple[float, ...] | None = None
    prediction_type: PredictionType = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    timestep_spacing: TimestepSpacing = "leading"
    steps_offset: int = 0

    def __post_init__(self) -> None:
        if self.trained_betas is None and self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be at least 2, got {self.num_train_timesteps}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.trained_betas is not None and len(self.trained_betas) != self.num_train_timesteps:
            raise ValueError(
                f"trained_betas has {len(self.trained_betas)} entries but num_train_timesteps is "
                f"{self.num_train_timesteps}"
            )
        if self.trained_betas is None and self.beta_schedule == "ecdp_vp" and self.beta_end < 1.0:
            raise ValueError(
                "beta_schedule='ecdp_vp' takes the continuous VP rates β_min/β_max as beta_start/beta_end "
                f"(ECDP: 0.1 and 20); got {self.beta_start}/{self.beta_end}, which barely noises the data. "
                "Use e.g. DDIMScheduler.from_schedule(NoiseSchedule.ecdp(300))."
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {self.timestep_spacing!r}")
        if not self.clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be positive, got {self.clip_sample_range}")
        if self.steps_offset < 0:
            raise ValueError(f"steps_offset must be non-negative, got {self.steps_offset}")


@dataclass(frozen=True)
class DDPMConfig(SchedulerConfig):
    """:class:`SchedulerConfig` plus the ancestral step's variance: ``fixed_small`` = β̃_t, ``fixed_large`` = β_t."""

    variance_type: VarianceType = "fixed_small"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variance_type not in VARIANCE_TYPES:
            raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {self.variance_type!r}")


@dataclass(frozen=True)
class DDIMConfig(SchedulerConfig):
    """:class:`SchedulerConfig` plus ``set_alpha_to_one``: the last step lands on ᾱ = 1 (else on ᾱ_0)."""

    set_alpha_to_one: bool = True


# ----------------------------------------------------------------------------------------------------------------
# Shared scheduler machinery
# ----------------------------------------------------------------------------------------------------------------


def _as_int(timestep: Timestep) -> int:
    if isinstance(timestep, torch.Tensor):
        if timestep.numel() != 1:
            raise ValueError(f"expected a single timestep, got shape {tuple(timestep.shape)}")
        return int(timestep.item())
    return int(timestep)


def _randn_like(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``like``, drawn exactly as diffusers' ``randn_tensor`` draws it.

    A CPU generator draws on the CPU and the result is moved to ``like.device``.
    """
    device = like.device
    if generator is not None and generator.device.type != device.type and generator.device.type == "cpu":
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device="cpu").to(device)
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device)


_C = TypeVar("_C", bound="_DiscreteScheduler")


class _DiscreteScheduler:
    """β tables, timestep bookkeeping and the forward process; subclasses add ``step``."""

    config: SchedulerConfig
    order: int = 1
    init_noise_sigma: float = 1.0
    _config_class: type[SchedulerConfig] = SchedulerConfig

    def __init__(self, **kwargs: object) -> None:
        if kwargs.get("trained_betas") is not None:
            kwargs["trained_betas"] = tuple(float(b) for b in torch.as_tensor(kwargs["trained_betas"]).flatten())
        self.config = self._config_class(**kwargs)  # type: ignore[arg-type]
        cfg = self.config
        if cfg.trained_betas is not None:
            self.noise_schedule: NoiseSchedule | None = None
            betas = torch.tensor(cfg.trained_betas, dtype=torch.float64)
        else:
            self.noise_schedule = NoiseSchedule(
                cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end
            )
            betas = self.noise_schedule.betas()
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("all betas must lie in (0, 1)")
        #: β_t, shape (T,), float64
        self.betas: torch.Tensor = betas
        #: α_t = 1 − β_t, shape (T,), float64
        self.alphas: torch.Tensor = 1 - betas
        #: ᾱ_t = ∏_{i≤t} α_i, shape (T,), float64
        self.alphas_cumprod: torch.Tensor = torch.cumprod(self.alphas, dim=0)
        self.one = torch.tensor(1.0, dtype=torch.float64)
        self.num_inference_steps: int | None = None
        self.custom_timesteps: bool = False
        #: the descending timesteps the sampler visits, LongTensor (N,); all T of them until set_timesteps
        self.timesteps: torch.Tensor = torch.arange(cfg.num_train_timesteps - 1, -1, -1, dtype=torch.long)

    @classmethod
    def from_schedule(cls: type[_C], schedule: NoiseSchedule, **kwargs: object) -> _C:
        """A scheduler on ``schedule``'s β table; ``kwargs`` are the other constructor arguments."""
        kind = "squaredcos_cap_v2" if schedule.kind == "cosine" else schedule.kind
        return cls(
            num_train_timesteps=schedule.num_train_timesteps,
            beta_start=schedule.beta_start,
            beta_end=schedule.beta_end,
            beta_schedule=kind,
            **kwargs,
        )

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def __repr__(self) -> str:
        args = ", ".join(
            f"{f.name}={getattr(self.config, f.name)!r}" for f in fields(self.config) if f.name != "trained_betas"
        )
        return f"{type(self).__name__}({args})"

    def scale_model_input(self, sample: torch.Tensor, timestep: Timestep | None = None) -> torch.Tensor:
        """Identity (these samplers feed x_t to the network unscaled); kept for diffusers-style loops."""
        return sample

    # -- timesteps ---------------------------------------------------------------------------------------------

    def _spaced_timesteps(self, n: int) -> list[int]:
        """diffusers' spacing of ``config.timestep_spacing`` (:func:`adasr.diffusion.timesteps.diffusers_timesteps`)."""
        cfg = self.config
        return diffusers_timesteps(n, cfg.num_train_timesteps, cfg.timestep_spacing, cfg.steps_offset)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        *,
        timesteps: Sequence[int] | torch.Tensor | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        """Choose the timesteps to visit: ``num_inference_steps`` spaced by ``config.timestep_spacing``, or an
        explicit strictly descending list of ints in [0, T) (``timesteps``). Sets ``self.timesteps`` (LongTensor).
        """
        T = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("pass exactly one of `num_inference_steps` and `timesteps`")
        if timesteps is not None:
            ts = torch.as_tensor(timesteps)
            if ts.ndim != 1 or ts.numel() == 0:
                raise ValueError("`timesteps` must be a non-empty 1-D sequence of ints")
            if ts.is_floating_point():
                if not torch.equal(ts, ts.round()):
                    raise ValueError(f"`timesteps` must be integers, got {ts.tolist()}")
            elif ts.dtype == torch.bool or ts.is_complex():
                raise ValueError("`timesteps` must be integers")
            values = [int(v) for v in ts.tolist()]
            self.custom_timesteps = True
        else:
            n = int(num_inference_steps)  # type: ignore[arg-type]
            if not 1 <= n <= T:
                raise ValueError(f"num_inference_steps must be in [1, {T}], got {num_inference_steps}")
            values = self._spaced_timesteps(n)
            self.custom_timesteps = False
        self.num_inference_steps = n if num_inference_steps is not None else len(values)
        if any(b >= a for a, b in pairwise(values)):
            raise ValueError(f"timesteps must be strictly descending, got {values}")
        if values[0] >= T or values[-1] < 0:
            raise ValueError(
                f"timesteps must lie in [0, {T}), got {values[0]}..{values[-1]}"
                + (" (check steps_offset)" if self.config.steps_offset and not self.custom_timesteps else "")
            )
        self.timesteps = torch.tensor(values, dtype=torch.long, device=device)

    def _next_in_list(self, t: int) -> int:
        """The entry after t in ``self.timesteps``, or −1 after the last one."""
        hits = (self.timesteps == t).nonzero()
        if hits.numel() == 0:
            raise ValueError(f"timestep {t} is not in scheduler.timesteps")
        i = int(hits[0, 0])
        return int(self.timesteps[i + 1]) if i + 1 < self.timesteps.numel() else -1

    def previous_timestep(self, timestep: Timestep) -> int:
        """The timestep a step from ``timestep`` lands on (−1 = past the last step, ᾱ = 1)."""
        raise NotImplementedError

    def _check_timesteps(self, timesteps: torch.Tensor, low: int, name: str) -> None:
        T = self.config.num_train_timesteps
        if timesteps.numel() and (int(timesteps.min()) < low or int(timesteps.max()) >= T):
            raise ValueError(f"{name} must lie in [{low}, {T}), got {timesteps.tolist()}")

    # -- forward process ---------------------------------------------------------------------------------------

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | int
    ) -> torch.Tensor:
        """x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε  (Ho et al. 2020, eq. 4).

        Args:
            original_samples: x0, shape ``(B, C, H, W)``.
            noise: ε, same shape.
            timesteps: integer t per batch entry, shape ``(B,)`` (or a single t for all).
        """
        t = torch.as_tensor(timesteps, device=original_samples.device).long().flatten()
        self._check_timesteps(t, 0, "timesteps")
        a = self.alphas_cumprod.to(original_samples.device)[t].to(original_samples.dtype)
        return q_sample(original_samples, noise, a)

    def _clip_range(self) -> float | None:
        return self.config.clip_sample_range if self.config.clip_sample else None


# ----------------------------------------------------------------------------------------------------------------
# DDPM
# ----------------------------------------------------------------------------------------------------------------


class DDPMScheduler(_DiscreteScheduler):
    """Ancestral sampling of Ho et al. (2020), generalised to strided timesteps.

    A step from t to t' = ``previous_timestep(t)`` samples the forward posterior q(x_{t'} | x_t, x̂0)::

        α_{t→t'} = ᾱ_t/ᾱ_{t'},  β_{t→t'} = 1 − α_{t→t'}                            (ᾱ_{−1} = 1)
        μ = √ᾱ_{t'}·β_{t→t'}/(1 − ᾱ_t) · x̂0  +  √α_{t→t'}·(1 − ᾱ_{t'})/(1 − ᾱ_t) · x_t      (eq. 7)
        x_{t'} = μ + √v · z,  v = β̃ = (1 − ᾱ_{t'})/(1 − ᾱ_t)·β_{t→t'}  ("fixed_small", floored at 1e−20)
                              or v = β_{t→t'}                        ("fixed_large")

    Args (see :class:`DDPMConfig`): ``num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
    beta_schedule="linear", trained_betas=None, prediction_type="epsilon", clip_sample=True,
    clip_sample_range=1.0, timestep_spacing="leading", steps_offset=0, variance_type="fixed_small"``.
    """

    config: DDPMConfig
    _config_class = DDPMConfig

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: BetaSchedule = "linear",
        trained_betas: Sequence[float] | torch.Tensor | None = None,
        prediction_type: PredictionType = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
        variance_type: VarianceType = "fixed_small",
    ) -> None:
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            variance_type=variance_type,
        )

    def previous_timestep(self, timestep: Timestep) -> int:
        """t − 1 on the full chain; once ``set_timesteps`` ran, the next entry of ``self.timesteps`` (−1 after the
        last), for every spacing and for explicit lists alike (diffusers' rule)."""
        t = _as_int(timestep)
        if self.custom_timesteps or self.num_inference_steps:
            return self._next_in_list(t)
        return t - 1

    def _alpha_pair(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        prev_t = self.previous_timestep(t)
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        return self.alphas_cumprod[t], a_prev

    def get_variance(self, timestep: Timestep) -> torch.Tensor:
        """The variance v added by the step from ``timestep`` (see the class docstring), float64 scalar."""
        a_t, a_prev = self._alpha_pair(_as_int(timestep))
        beta = 1 - a_t / a_prev
        if self.config.variance_type == "fixed_large":
            return beta
        return ((1 - a_prev) / (1 - a_t) * beta).clamp(min=1e-20)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Timestep,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One ancestral step x_t → x_{t'} (class docstring equations).

        Noise z is drawn (``torch.randn(shape, generator=generator)``, exactly as diffusers) whenever t > 0 —
        including a last step from t > 0 to −1, where ``fixed_small``'s v is the 1e−20 floor but ``fixed_large``'s
        is β_{t→−1} = 1 − ᾱ_t. ``variance_noise`` passes z explicitly instead.

        Args:
            model_output: network output at (x_t, t), shape ``(B, C, H, W)``.
            timestep: the current t, an entry of ``self.timesteps``.
            sample: x_t, shape ``(B, C, H, W)``.
            generator: RNG for z.
            variance_noise: z itself (exclusive with ``generator``).
            return_dict: ``False`` returns ``(prev_sample, pred_original_sample)``.
        """
        t = _as_int(timestep)
        self._check_timesteps(torch.tensor([t]), 0, "timestep")
        a_t, a_prev = self._alpha_pair(t)
        alpha = a_t / a_prev
        beta = 1 - alpha
        dtype = sample.dtype

        pred_x0 = predict_x0(self.config.prediction_type, model_output, sample, a_t.to(dtype))
        clip = self._clip_range()
        if clip is not None:
            pred_x0 = pred_x0.clamp(-clip, clip)

        x0_coeff = a_prev.sqrt() * beta / (1 - a_t)
        xt_coeff = alpha.sqrt() * (1 - a_prev) / (1 - a_t)
        prev_sample = x0_coeff.to(dtype) * pred_x0 + xt_coeff.to(dtype) * sample

        if t > 0:
            if variance_noise is not None and generator is not None:
                raise ValueError("pass at most one of `generator` and `variance_noise`")
            z = variance_noise if variance_noise is not None else _randn_like(model_output, generator)
            prev_sample = prev_sample + self.get_variance(t).sqrt().to(dtype) * z

        out = SchedulerOutput(prev_sample, pred_x0)
        return out if return_dict else out.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# DDIM
# ----------------------------------------------------------------------------------------------------------------


class DDIMScheduler(_DiscreteScheduler):
    """Denoising diffusion implicit models (Song, Meng & Ermon 2021): :func:`ddim_step` along ``self.timesteps``.

    The last step targets ᾱ = ``final_alpha_cumprod`` (1 with ``set_alpha_to_one``, else ᾱ_0), so with η = 0 and
    clipping the final ``prev_sample`` is the clipped x̂0.

    Args (see :class:`DDIMConfig`): ``num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
    beta_schedule="linear", trained_betas=None, prediction_type="epsilon", clip_sample=True,
    clip_sample_range=1.0, timestep_spacing="leading", steps_offset=0, set_alpha_to_one=True``.
    """

    config: DDIMConfig
    _config_class = DDIMConfig

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: BetaSchedule = "linear",
        trained_betas: Sequence[float] | torch.Tensor | None = None,
        prediction_type: PredictionType = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
        set_alpha_to_one: bool = True,
    ) -> None:
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            prediction_type=prediction_type,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            set_alpha_to_one=set_alpha_to_one,
        )
        #: ᾱ targeted by the last step (prev timestep −1), float64 scalar
        self.final_alpha_cumprod: torch.Tensor = self.one if set_alpha_to_one else self.alphas_cumprod[0]

    def previous_timestep(self, timestep: Timestep) -> int:
        """The DDIM target t' of a step from t (−1 = the final step to ``final_alpha_cumprod``).

        * explicit ``timesteps``: the next entry of the list;
        * ``set_timesteps(n)``: t − ⌊T/n⌋, *whatever the spacing* — diffusers' DDIM rule. It is the next entry
          for ``leading`` (and ``trailing`` when n divides T), but not for ``linspace`` nor for ``trailing`` with
          n ∤ T: e.g. T = 1000, n = 10, ``linspace`` visits 999, 888, … while each step lands on t − 100.
        * before ``set_timesteps``: t − 1.
        """
        t = _as_int(timestep)
        if self.custom_timesteps:
            return self._next_in_list(t)
        if self.num_inference_steps:
            return t - self.config.num_train_timesteps // self.num_inference_steps
        return t - 1

    def _alpha_bar(self, timesteps: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer timesteps (any shape, −1 ↦ ``final_alpha_cumprod``), float64."""
        return alpha_bar_at(self.alphas_cumprod, timesteps, self.final_alpha_cumprod)

    def _noise(
        self,
        eta: float,
        model_output: torch.Tensor,
        generator: torch.Generator | None,
        variance_noise: torch.Tensor | None,
    ) -> torch.Tensor | None:
        if eta <= 0:
            return None
        if variance_noise is not None and generator is not None:
            raise ValueError("pass at most one of `generator` and `variance_noise`")
        return variance_noise if variance_noise is not None else _randn_like(model_output, generator)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Timestep,
        sample: torch.Tensor,
        eta: float = 0.0,
        *,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One DDIM step x_t → x_{t'}, t' = ``previous_timestep(t)``; see :func:`ddim_step` for the equations.

        ``eta`` is the 4th positional argument, as in diffusers. When η > 0, z is drawn with ``generator``
        (``torch.randn(shape, generator=generator)``, exactly as diffusers) or passed as ``variance_noise``; it is
        drawn even on a step whose σ_t is 0. Requires ``set_timesteps`` first.

        Args:
            model_output: network output at (x_t, t), shape ``(B, C, H, W)``.
            timestep: the current t.
            sample: x_t, shape ``(B, C, H, W)``.
            eta: η ≥ 0 (0: deterministic DDIM, 1: DDPM-like variance).
            generator: RNG for z.
            variance_noise: z itself (exclusive with ``generator``).
            return_dict: ``False`` returns ``(prev_sample, pred_original_sample)``.
        """
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps() before step()")
        t = _as_int(timestep)
        self._check_timesteps(torch.tensor([t]), 0, "timestep")
        prev_t = self.previous_timestep(t)
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        z = self._noise(eta, model_output, generator, variance_noise)
        prev_sample, pred_x0 = ddim_step(
            model_output, sample, a_t, a_prev, self.config.prediction_type, eta, z, self._clip_range()
        )
        out = SchedulerOutput(prev_sample, pred_x0)
        return out if return_dict else out.to_tuple()

    def step_batch(
        self,
        model_output: torch.Tensor,
        timesteps: torch.Tensor,
        prev_timesteps: torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        *,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """DDIM steps with a different timestep pair per batch entry: entry b goes from ᾱ_{t_b} to ᾱ_{t'_b}.

        Independent of ``self.timesteps`` (no ``set_timesteps`` needed); uses the config's prediction type and
        clipping. Equals :meth:`step` entry by entry when the pairs agree.

        Args:
            model_output: network output, shape ``(B, C, H, W)``.
            timesteps: current t_b, LongTensor ``(B,)`` in [0, T).
            prev_timesteps: targets t'_b < t_b, LongTensor ``(B,)`` in [−1, T); −1 means the final step to
                ᾱ = ``final_alpha_cumprod``.
            sample: x_t, shape ``(B, C, H, W)``.
            eta: η ≥ 0, shared by the batch.
            generator: RNG for z (one ``(B, C, H, W)`` draw) when η > 0.
            variance_noise: z itself (exclusive with ``generator``).
            return_dict: ``False`` returns ``(prev_sample, pred_original_sample)``.
        """
        t = torch.as_tensor(timesteps, device=sample.device).long()
        t_prev = torch.as_tensor(prev_timesteps, device=sample.device).long()
        batch = sample.shape[0]
        if t.shape != (batch,) or t_prev.shape != (batch,):
            raise ValueError(
                f"timesteps and prev_timesteps must have shape ({batch},), got {tuple(t.shape)}, {tuple(t_prev.shape)}"
            )
        self._check_timesteps(t, 0, "timesteps")
        self._check_timesteps(t_prev, -1, "prev_timesteps")
        if (t_prev >= t).any():
            raise ValueError(f"prev_timesteps must be below timesteps, got {t_prev.tolist()} vs {t.tolist()}")
        z = self._noise(eta, model_output, generator, variance_noise)
        prev_sample, pred_x0 = ddim_step(
            model_output,
            sample,
            self._alpha_bar(t),
            self._alpha_bar(t_prev),
            self.config.prediction_type,
            eta,
            z,
            self._clip_range(),
        )
        out = SchedulerOutput(prev_sample, pred_x0)
        return out if return_dict else out.to_tuple()


__all__ = [
    "DDIMConfig",
    "DDIMScheduler",
    "DDIMSchedulerOutput",
    "DDPMConfig",
    "DDPMScheduler",
    "DDPMSchedulerOutput",
    "SchedulerConfig",
    "SchedulerOutput",
    "ddim_step",  # re-exported from adasr.diffusion.ddim
]

