"""Whole-image reference samplers: ancestral DDPM, DDIM and the probability-flow ODE, for comparisons.

Unlike the tile-batch sampler (:func:`adasr.sampling.loop.sample_tiles`) these run the whole image as one batch
and every batch entry sits at the same timestep: they are the textbook loops, kept to compare *samplers*, not to
upscale large images. All three work on the model's diffused variable x (the residual r = s·(HR − up(LR)) for a
residual model, HR itself for plain SR3), condition the UNet on ``cond`` = up(LR) by channel concatenation, and
map the clean sample back to an image with :meth:`SRDiffusion.output <adasr.srmodel.SRDiffusion.output>`.

With x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε and the network's clean estimate x̂0 = x̂0(x_t, t) (converted from ε, x0 or v
by the model's ``prediction_type``, clipped to ±``clip_sample_range``), a step from t to the next visited
timestep t' (ᾱ_{−1} = 1) is:

* **DDPM (ancestral)** — sample the forward posterior q(x_{t'} | x_t, x̂0) (Ho et al. 2020, eq. 7)::

      x_{t'} = √ᾱ_{t'}·β_{t→t'}/(1 − ᾱ_t) · x̂0 + √α_{t→t'}·(1 − ᾱ_{t'})/(1 − ᾱ_t) · x_t + √β̃ · z,
      α_{t→t'} = ᾱ_t/ᾱ_{t'},  β_{t→t'} = 1 − α_{t→t'},  β̃ = (1 − ᾱ_{t'})/(1 − ᾱ_t)·β_{t→t'},  z ~ N(0, I)

  fresh noise every step: a stochastic chain whose randomness is re-injected all the way down;
* **DDIM** (Song, Meng & Ermon 2021, eq. 12), with ε̂ = (x_t − √ᾱ_t·x̂0)/√(1 − ᾱ_t)::

      x_{t'} = √ᾱ_{t'} · x̂0 + √(1 − ᾱ_{t'} − σ²) · ε̂ + σ · z,   σ = η·√((1 − ᾱ_{t'})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t'})

  η = 0 is deterministic: the only randomness is x_T, and the chain is a first-order discretisation of the ODE below;
* **probability-flow ODE** (Song et al. 2021, eq. 13) in continuous time s ∈ (0, 1], β(s) = −d log ᾱ(s)/ds::

      dx/ds = −½ β(s) · ( x − ε̂(x, s)/√(1 − ᾱ(s)) )

  integrated from s = 1 to s_end with an adaptive Runge–Kutta solver (dopri5): the solver, not the user, chooses
  how many network evaluations (NFE) to spend for the tolerances ``rtol``/``atol``.

Timesteps: DDPM and DDIM visit the ``n`` timesteps of :func:`adasr.diffusion.timesteps.spaced_timesteps` with
``linspace`` spacing, round(linspace(T − 1, 0, n)) (999, 888, …, 0 for T = 1000, n = 10; a single step is [T − 1]),
the schedule of the tile-batch sampler's :class:`UniformDDIM`; the last step lands on ᾱ = 1, so the chain ends on
the clipped x̂0.

Shapes: ``cond`` is (B, 3, H, W) in [−1, 1] with H, W multiples of ``model.unet.multiple``; the initial noise
x_T ~ N(0, I) is one ``torch.randn((B, 3, H, W))`` draw from ``torch.Generator().manual_seed(seed)`` (for B = 1
exactly the noise the tile-batch sampler draws for a one-tile image). Each function returns a
:class:`ReferenceSample` ``(image, nfe)``: the SR image (B, 3, H, W) in [−1, 1] and the number of UNet
evaluations (batched forward calls; one call evaluates every batch entry at the same t).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..diffusion.ode import probability_flow_sample
from ..diffusion.schedulers import DDIMScheduler, DDPMScheduler, SchedulerOutput
from ..diffusion.timesteps import spaced_timesteps
from ..runtime import seeded_generator
from ..srmodel import SRDiffusion
from .denoiser import Denoiser


class ReferenceSample(NamedTuple):
    """What a reference sampler returns: ``image`` (B, 3, H, W) in [−1, 1] and ``nfe`` (UNet evaluations)."""

    image: torch.Tensor
    nfe: int


def _check_cond(model: SRDiffusion, cond: torch.Tensor) -> None:
    if cond.ndim != 4 or cond.shape[1] != 3:
        raise ValueError(f"cond must be up(LR) of shape (B, 3, H, W), got {tuple(cond.shape)}")
    m = model.unet.multiple
    if cond.shape[-2] % m or cond.shape[-1] % m:
        raise ValueError(f"H and W must be multiples of {m}, got {tuple(cond.shape[-2:])}; pad the image first")
    if not torch.isfinite(cond).all():
        raise ValueError("cond contains NaN or infinite values")


def initial_noise(cond: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """x_T ~ N(0, I) shaped like ``cond`` (B, 3, H, W), drawn on the CPU from a generator seeded with ``seed``.

    Returns the noise (on ``cond``'s device) and the generator, which the stochastic samplers keep drawing from.
    """
    g = seeded_generator(seed)
    return torch.randn(tuple(cond.shape), generator=g).to(cond.device), g


def _run_chain(
    model: SRDiffusion,
    cond: torch.Tensor,
    sched: DDPMScheduler | DDIMScheduler,
    seed: int,
    step: Callable[[torch.Tensor, int, torch.Tensor, torch.Generator], SchedulerOutput],
) -> ReferenceSample:
    """The textbook loop shared by DDPM and DDIM: x_T from ``seed``, one UNet call and one ``step`` per timestep in
    ``sched.timesteps``, then the clean sample mapped to an image; NFE = number of timesteps visited."""
    x, g = initial_noise(cond, seed)
    denoiser = Denoiser(model.unet, count_macs=False)
    nfe = 0
    for t in sched.timesteps.tolist():
        out = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device), cond).output
        nfe += 1
        x = step(out, t, x, g).prev_sample
    return ReferenceSample(model.output(x, cond), nfe)


@torch.no_grad()
def sample_ddpm(model: SRDiffusion, cond: torch.Tensor, steps: int, seed: int = 0) -> ReferenceSample:
    """Ancestral DDPM with ``steps`` network evaluations (module docstring), on the model's schedule.

    A :class:`~adasr.diffusion.schedulers.DDPMScheduler` on ``model.config.schedule`` with the model's prediction
    type and clipping and ``fixed_small`` variance β̃; ``set_timesteps`` with the ``linspace`` list (for n ≥ 2 the
    same as ``set_timesteps(steps)`` with ``timestep_spacing="linspace"``, and [T − 1] for one step), then one
    ``step`` per visited timestep. ``steps = T`` is the original 1000-step chain. The posterior noise z is drawn
    from the same generator as x_T, so a seed fixes the whole chain.

    Args:
        model: the SR diffusion model (eval mode).
        cond: up(LR), (B, 3, H, W) in [−1, 1].
        steps: number of timesteps visited = UNet evaluations, 1 ≤ steps ≤ T.
        seed: seeds x_T and every z.

    Returns:
        ``(image (B, 3, H, W) in [−1, 1], nfe = steps)``.
    """
    _check_cond(model, cond)
    sched = model.scheduler("ddpm", "linspace", variance_type="fixed_small")
    sched.set_timesteps(timesteps=spaced_timesteps(steps, model.num_train_timesteps, "linspace"))
    return _run_chain(model, cond, sched, seed, lambda out, t, x, g: sched.step(out, t, x, generator=g))


@torch.no_grad()
def sample_ddim(model: SRDiffusion, cond: torch.Tensor, steps: int, seed: int = 0, eta: float = 0.0) -> ReferenceSample:
    """DDIM with ``steps`` network evaluations (module docstring), η = ``eta`` (0: deterministic).

    The scheduler is ``model.scheduler('ddim')`` (the model's chain, parameterisation and clipping) with the explicit
    ``linspace`` timestep list, so on an image that fits one tile this equals
    ``sample_tiles(model, cond, policy=UniformDDIM(steps), seed=seed, eta=eta)`` followed by ``model.output``.

    Args:
        model: the SR diffusion model (eval mode).
        cond: up(LR), (B, 3, H, W) in [−1, 1].
        steps: number of timesteps visited = UNet evaluations, 1 ≤ steps ≤ T.
        seed: seeds x_T (and z when η > 0).
        eta: η ≥ 0; 1 gives DDPM's posterior variance.

    Returns:
        ``(image (B, 3, H, W) in [−1, 1], nfe = steps)``.
    """
    _check_cond(model, cond)
    sched = model.scheduler("ddim", "linspace")
    sched.set_timesteps(timesteps=spaced_timesteps(steps, model.num_train_timesteps, "linspace"))
    return _run_chain(model, cond, sched, seed,
                      lambda out, t, x, g: sched.step(out, t, x, eta, generator=g if eta > 0 else None))


@torch.no_grad()
def sample_pf_ode(
    model: SRDiffusion,
    cond: torch.Tensor,
    seed: int = 0,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    *,
    s_end: float = 1e-3,
    method: str = "dopri5",
) -> ReferenceSample:
    """Probability-flow ODE from s = 1 to ``s_end`` with an adaptive solver (module docstring).

    Uses :func:`adasr.diffusion.ode.probability_flow_sample`: the network is called at the fractional timestep
    t = s·T − 1, and the result is the clean estimate x̂0 of the evaluation at s_end, clipped to the model's
    ``clip_sample_range``. The NFE is whatever the solver needed for ``rtol``/``atol`` (every stage, rejected
    steps and the initial-step probe included): loose tolerances take few large steps, tight ones many.

    Args:
        model: the SR diffusion model (eval mode).
        cond: up(LR), (B, 3, H, W) in [−1, 1].
        seed: seeds x(1) = x_T ~ N(0, I); the ODE itself is deterministic.
        rtol, atol: solver tolerances (ECDP: 1e−3 both).
        s_end: end time, > 0 (1e−3 ↔ timestep 0).
        method: an adaptive ``torchdiffeq`` method (``dopri5``, ``bosh3``, …); a fixed-grid one (``euler``) would
            take a single step from s = 1 to s_end.

    Returns:
        ``(image (B, 3, H, W) in [−1, 1], nfe)``, the NFE as counted by the ODE sampler.
    """
    _check_cond(model, cond)
    c = model.config
    x_T, _ = initial_noise(cond, seed)

    denoiser = Denoiser(model.unet, count_macs=False)

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return denoiser(x, t, cond).output

    res = probability_flow_sample(
        model_fn, x_T, c.schedule, c.prediction_type, s_end=s_end, rtol=rtol, atol=atol, method=method,
        clip_sample_range=c.clip_range,
    )
    return ReferenceSample(model.output(res.sample, cond), res.nfe)


__all__ = ["ReferenceSample", "initial_noise", "sample_ddim", "sample_ddpm", "sample_pf_ode"]
