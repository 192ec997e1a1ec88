"""A tiny DDPM on 2-D points: the whole method, trained in seconds on a CPU (introduced in notebook 01).

Points x_0 ∈ R² are drawn from a toy distribution (a ring of Gaussians or two moons). With a noise schedule
β_1..β_T and ᾱ_t = ∏_{s≤t}(1 − β_s) (see :mod:`adasr.diffusion.schedules`):

Forward process (Ho et al. 2020, eq. 4), available in closed form for any t::

    q(x_t | x_0) = N(√ᾱ_t · x_0, (1 − ᾱ_t) · I)   ⇔   x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,  ε ~ N(0, I)

Training (the "simple" loss, eq. 14): a network ε_θ(x_t, t) learns to recover the noise that was added::

    L_simple = E_{t ~ U{0..T−1}, x_0, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖²

Ancestral sampling (Algorithm 2): start from x_T ~ N(0, I) and step down with the learned reverse kernel::

    x̂_0 = (x_t − √(1 − ᾱ_t) · ε_θ(x_t, t)) / √ᾱ_t
    x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t · z,  z ~ N(0, I)
    μ̃_t = √ᾱ_{t−1} β_t /(1 − ᾱ_t) · x̂_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t,   σ_t² = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)

The noising and the reverse step are :class:`adasr.diffusion.schedulers.DDPMScheduler`'s ``add_noise`` and
``step``; this module supplies only the data, the network, the training loop and the sampling loop.
Every random draw uses an explicit ``torch.Generator``: results depend on ``seed`` alone, never on global state.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, Literal, NamedTuple

import torch
from torch import nn

from .diffusion.schedulers import DDPMScheduler
from .models.unet import timestep_embedding

ToyKind = Literal["ring", "moons"]


# ----------------------------------------------------------------------------------------------------- data
def ring_of_gaussians(
    n: int, *, modes: int = 8, radius: float = 1.5, std: float = 0.08, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` points from an equal mixture of ``modes`` Gaussians (std ``std``) on a circle of radius ``radius``.

    Returns float32 (n, 2). The per-coordinate variance is ≈ radius²/2 + std², about 1 for the defaults, which
    matches the unit-variance noise the diffusion ends in.
    """
    k = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * k.float() / modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def ring_centres(modes: int = 8, radius: float = 1.5) -> torch.Tensor:
    """The ``modes`` mixture means of :func:`ring_of_gaussians`, float32 (modes, 2)."""
    angle = 2 * math.pi * torch.arange(modes, dtype=torch.float32) / modes
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


def two_moons(n: int, *, noise: float = 0.08, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points on two interleaved half circles (scikit-learn's "moons", written in torch), centred and
    scaled to roughly unit variance; float32 (n, 2)."""
    upper = torch.rand(n, generator=generator) < 0.5
    s = math.pi * torch.rand(n, generator=generator)
    x = torch.where(upper, torch.cos(s), 1 - torch.cos(s))
    y = torch.where(upper, torch.sin(s), 0.5 - torch.sin(s))
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) * torch.tensor([1.2, 2.0])
    return pts + noise * torch.randn(n, 2, generator=generator)


def toy_data(kind: ToyKind, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` points of the named toy distribution, float32 (n, 2), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    if kind == "ring":
        return ring_of_gaussians(n, generator=g)
    if kind == "moons":
        return two_moons(n, generator=g)
    raise ValueError(f"unknown toy data {kind!r} (use 'ring' or 'moons')")


# ---------------------------------------------------------------------------------------------------- model
class ToyEpsModel(nn.Module):
    """ε_θ(x_t, t): a residual MLP on 2-D points with a sinusoidal time embedding.

    ``forward(x (B, 2) float, t (B,) int or float) → ε̂ (B, 2)``. The timestep enters every block:
    e = MLP(sinusoid(t)), h ← h + Linear(SiLU(h + e)). About 71 k parameters for the defaults.
    """

    def __init__(self, hidden: int = 128, depth: int = 3, time_dim: int = 32) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(2, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.time_mlp(timestep_embedding(t.reshape(-1).expand(x.shape[0]), self.time_dim))
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h + e)
        return self.out(h)


# ------------------------------------------------------------------------------------------------- training
class ToyTraining(NamedTuple):
    """What :func:`train_toy_ddpm` returns: the trained ``model`` (eval mode) and the per-step ``losses`` (steps,)."""

    model: ToyEpsModel
    losses: torch.Tensor


def train_toy_ddpm(
    data: torch.Tensor,
    scheduler: DDPMScheduler,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 3e-3,
    hidden: int = 128,
    depth: int = 3,
    seed: int = 0,
    progress: bool = False,
    num_threads: int | None = 1,
) -> ToyTraining:
    """Fit ε_θ on ``data`` (N, 2) with L_simple; Adam with a cosine learning-rate decay; fully seeded.

    Each step draws a batch x_0 from ``data``, t ~ U{0..T−1} and ε ~ N(0, I), forms
    x_t = ``scheduler.add_noise(x_0, ε, t)`` and takes a gradient step on ‖ε − ε_θ(x_t, t)‖².
    The defaults take a few seconds on one CPU core. ``num_threads`` (default 1) is torch's intra-op thread
    count while training, restored afterwards: a 71 k-parameter MLP gains nothing from more threads, and on a
    busy machine extra threads make it many times slower. ``None`` keeps the caller's setting.
    """
    if data.ndim != 2 or data.shape[1] != 2:
        raise ValueError(f"data must have shape (N, 2), got {tuple(data.shape)}")
    T = scheduler.config.num_train_timesteps
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's global RNG
        torch.manual_seed(seed)
        model = ToyEpsModel(hidden=hidden, depth=depth)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    lr_decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.05)
    losses = torch.empty(steps)
    bar = _progress(steps, progress)
    model.train()
    with _threads(num_threads):
        for i in range(steps):
            x0 = data[torch.randint(0, data.shape[0], (batch_size,), generator=g)]
            t = torch.randint(0, T, (batch_size,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            x_t = scheduler.add_noise(x0, noise, t)
            loss = torch.mean((model(x_t, t) - noise) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_decay.step()
            losses[i] = loss.detach()
            if bar is not None:
                bar.update(1)
                if i % 100 == 99:
                    bar.set_postfix(loss=f"{losses[i - 99:i + 1].mean().item():.3f}")
    if bar is not None:
        bar.close()
    return ToyTraining(model.eval(), losses)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(n)`` and restore the previous count (``None``: unchanged)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", leave=False)


# ------------------------------------------------------------------------------------------------- sampling
@dataclass
class ToyTrajectory:
    """A reverse-process run on ``n`` points.

    ``timesteps[k]`` is the t of step k; ``xs[k]`` the state x_t fed to that step and ``x0_preds[k]`` the
    scheduler's x̂_0 at that step (all (n, 2)). ``sample`` is the final x_0 (n, 2).
    """

    sample: torch.Tensor
    timesteps: list[int] = field(default_factory=list)
    xs: list[torch.Tensor] = field(default_factory=list)
    x0_preds: list[torch.Tensor] = field(default_factory=list)

    def at(self, t: int) -> torch.Tensor:
        """x_t for a timestep in :attr:`timesteps`."""
        return self.xs[self.timesteps.index(int(t))]

    def x0_pred_at(self, t: int) -> torch.Tensor:
        """The x̂_0 predicted at timestep ``t``."""
        return self.x0_preds[self.timesteps.index(int(t))]


@torch.no_grad()
def sample_toy(
    model: nn.Module,
    scheduler: DDPMScheduler,
    n: int,
    *,
    num_inference_steps: int | None = None,
    seed: int = 0,
    num_threads: int | None = 1,
) -> ToyTrajectory:
    """Ancestral sampling: x_T ~ N(0, I), then ``x = scheduler.step(ε_θ(x, t), t, x).prev_sample`` for every t
    of ``scheduler.timesteps`` (all T steps unless ``num_inference_steps`` is given). Returns the trajectory.

    ``n`` points are sampled in parallel from x_T ~ N(0, I) drawn with ``seed``; ``num_threads`` as in
    :func:`train_toy_ddpm`."""
    T = scheduler.config.num_train_timesteps
    scheduler.set_timesteps(num_inference_steps or T)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    traj = ToyTrajectory(sample=x)
    with _threads(num_threads):
        for t in scheduler.timesteps.tolist():
            eps = model(x, torch.full((n,), t, dtype=torch.long))
            out = scheduler.step(eps, t, x, generator=g)
            traj.timesteps.append(t)
            traj.xs.append(x)
            traj.x0_preds.append(out.pred_original_sample)
            x = out.prev_sample
    traj.sample = x
    return traj


def nearest_mode_distance(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Distance from each point (n, 2) to its nearest centre (k, 2) → (n,)."""
    return torch.cdist(points, centres).min(dim=1).values
