"""Probability-flow ODE sampling of the VP diffusion (Song et al. 2021, eq. 13), as in ECDP.

In continuous time s ∈ (0, 1] with ᾱ(s) = exp(log ᾱ(s)) from :meth:`NoiseSchedule.log_alpha_bar`, the VP-SDE has
rate β(s) = −d log ᾱ(s)/ds, and the ODE that shares its marginals is::

    dx/ds = −½ β(s) · ( x − ε̂(x, s) / √(1 − ᾱ(s)) )          (ε̂ ≈ −√(1 − ᾱ) ∇ log p_s(x))

It is integrated backwards from s_start (≈ 1, x ~ N(0, I)) to a small s_end with an adaptive Runge–Kutta solver
(``torchdiffeq.odeint``, dopri5, rtol = atol = 1e−3 in ECDP), so the number of network evaluations (NFE) adapts
to the problem. The network is trained on discrete indices t ∈ {0..T−1} with ᾱ_t ↔ ᾱ(s = (t + 1)/T), so it is
called at the fractional timestep t = s·T − 1 (which is negative for s < 1/T).

At s_end the result is the clean estimate x̂0 of the last evaluation, not the slightly noisy state x(s_end).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchdiffeq import odeint

from adasr.diffusion.objectives import PredictionType, predict_eps, predict_x0
from adasr.diffusion.schedules import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``model_fn(x, t)``: x ``(B, C, H, W)``, fractional timesteps t ``(B,)`` → network output ``(B, C, H, W)``."""

_MIN_LOG_ALPHA_BAR = -30.0
"""Below this log ᾱ(s_start) (ᾱ < 1e−13) the ODE is singular in practice (cosine at s = 1: log ᾱ ≈ −75,
β ≈ 5e16)."""

ADAPTIVE_METHODS: frozenset[str] = frozenset({"dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"})


@dataclass(frozen=True)
class ODEResult:
    """Outcome of :func:`probability_flow_sample`.

    Attributes:
        sample: the output image x̂0 at s_end, shape ``(B, C, H, W)`` (clamped if ``clip_sample_range`` was given).
        pred_original_sample_at_end: x̂0 at s_end as the network gave it (never clamped).
        nfe: number of ``model_fn`` calls, all counted (solver stages, rejected steps, initial-step probe, and a
            final evaluation at s_end if the solver did not end on one).
        x_end: the ODE state x(s_end), a point of the marginal at s_end (noise level √(1 − ᾱ(s_end))).
    """

    sample: torch.Tensor
    pred_original_sample_at_end: torch.Tensor
    nfe: int
    x_end: torch.Tensor


def beta_of_s(schedule: NoiseSchedule, s: torch.Tensor | float) -> torch.Tensor:
    """β(s) = −d log ᾱ(s)/ds (float64, shape of ``s``), by autograd through :meth:`NoiseSchedule.log_alpha_bar`.

    For ``ecdp_vp`` this is β_min + s·(β_max − β_min).
    """
    with torch.enable_grad():
        s64 = torch.as_tensor(s, dtype=torch.float64).detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(schedule.log_alpha_bar(s64).sum(), s64)
    return -grad


def probability_flow_sample(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: PredictionType,
    *,
    s_start: float = 1.0,
    s_end: float = 1e-3,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    method: str = "dopri5",
    clip_sample_range: float | None = None,
) -> ODEResult:
    """Integrate the probability-flow ODE from s_start to s_end and return x̂0 (module docstring equations).

    Args:
        model_fn: ``model_fn(x, t)`` with x ``(B, C, H, W)`` and t ``(B,)`` = s·T − 1 (fractional, x's dtype).
        x_T: the starting state x(s_start), shape ``(B, C, H, W)``; N(0, I) for s_start = 1.
        schedule: gives log ᾱ(s) and T.
        prediction_type: what ``model_fn`` outputs: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        s_start: start time, in (s_end, 1]. (The cosine schedule has ᾱ(1) = 0 and β(1) = ∞: start below 1.)
        s_end: end time, > 0.
        rtol, atol: the solver's tolerances (ECDP: 1e−3 both).
        method: a ``torchdiffeq`` method; the adaptive ones are forced to end a step exactly on s_end, so the
            last stage evaluation (dopri5's FSAL stage) already gives x̂0 there.
        clip_sample_range: clamp the returned ``sample`` to ``[−r, r]``; ``None`` (default) does not.

    Returns:
        :class:`ODEResult` with ``sample`` = x̂0(x(s_end), s_end), the state ``x_end`` and the honest ``nfe``.
    """
    if not 0 < s_end < s_start <= 1:
        raise ValueError(f"need 0 < s_end < s_start <= 1, got s_start={s_start}, s_end={s_end}")
    device = x_T.device
    batch = x_T.shape[0]

    log_abar_start = float(schedule.log_alpha_bar(s_start))
    beta_start = float(beta_of_s(schedule, s_start))
    if not (math.isfinite(beta_start) and _MIN_LOG_ALPHA_BAR < log_abar_start < 0):
        raise ValueError(
            f"the {schedule.kind} schedule is degenerate at s_start={s_start} (log ᾱ = {log_abar_start:.3g}, "
            f"β = {beta_start:.3g}); the cosine schedule has ᾱ(1) = 0: start a little below 1, e.g. 0.99"
        )

    field = _ProbabilityFlow(model_fn, schedule, prediction_type, batch)
    s_grid = torch.tensor([s_start, s_end], dtype=torch.float64, device=device)
    options = None
    if method in ADAPTIVE_METHODS:
        options = {"step_t": torch.tensor([s_end], dtype=torch.float64, device=device)}
    x_end = odeint(field, x_T, s_grid, rtol=rtol, atol=atol, method=method, options=options)[-1]

    # dopri5's last (FSAL) stage is evaluated at s_end (up to torchdiffeq's one-ulp `perturb` of s) and at the step's
    # solution, which the returned x_end reproduces up to rounding (it is the dense output at the step's end)
    if field.last is not None and _same_point(field.last, s_end, x_end):
        x0 = field.last.x0
    else:
        x0 = field.evaluate(torch.tensor(s_end, dtype=torch.float64), x_end).x0
    sample = x0 if clip_sample_range is None else x0.clamp(-clip_sample_range, clip_sample_range)
    return ODEResult(sample=sample, pred_original_sample_at_end=x0, nfe=field.nfe, x_end=x_end)


@dataclass(frozen=True)
class _Evaluation:
    """One network call: time s, state x, ᾱ(s) (float64 scalar), ε̂ and x̂0 (shaped like x)."""

    s: float
    x: torch.Tensor
    alpha_bar: torch.Tensor
    eps: torch.Tensor
    x0: torch.Tensor


class _ProbabilityFlow:
    """The ODE's right-hand side f(s, x) for ``odeint``; counts network calls and keeps the latest one."""

    def __init__(self, model_fn: ModelFn, schedule: NoiseSchedule, prediction_type: PredictionType, batch: int):
        self.model_fn = model_fn
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.batch = batch
        self.nfe = 0
        self.last: _Evaluation | None = None

    def evaluate(self, s: torch.Tensor, x: torch.Tensor) -> _Evaluation:
        """Call the network once at (x, s), with fractional timestep t = s·T − 1."""
        s64 = s.detach().to(torch.float64)
        alpha_bar = torch.exp(self.schedule.log_alpha_bar(s64))
        t = (s64 * self.schedule.num_train_timesteps - 1).to(dtype=x.dtype, device=x.device).expand(self.batch)
        out = self.model_fn(x, t)
        self.nfe += 1
        a = alpha_bar.to(x.dtype)
        ev = _Evaluation(
            float(s64),
            x,
            alpha_bar,
            predict_eps(self.prediction_type, out, x, a),
            predict_x0(self.prediction_type, out, x, a),
        )
        self.last = ev
        return ev

    def __call__(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """dx/ds = −½ β(s) (x − ε̂/√(1 − ᾱ(s)))."""
        ev = self.evaluate(s, x)
        beta = beta_of_s(self.schedule, s.detach())
        return (-0.5 * beta).to(x.dtype) * (x - ev.eps / (1 - ev.alpha_bar).sqrt().to(x.dtype))


def _same_point(ev: _Evaluation, s: float, x: torch.Tensor) -> bool:
    """Whether the evaluation ``ev`` was at time ``s`` and state ``x`` (to rounding)."""
    tol = 100 * torch.finfo(x.dtype).eps
    return abs(ev.s - s) <= 1e-9 * s and ev.x.shape == x.shape and torch.allclose(ev.x, x, rtol=tol, atol=tol)
