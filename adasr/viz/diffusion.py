"""Figures for the diffusion basics (notebook 01): forward process, schedules, toy reverse process, loss.

Every function takes data (images, ᾱ tables, point clouds, losses), draws with matplotlib and returns the
``Figure``; none trains or samples. Conventions: images are float tensors (1, 3, H, W) in [−1, 1]; an ᾱ table
is a 1-D tensor (T,) with ᾱ_t = ∏_{s≤t}(1 − β_s), index t = 0..T−1; point clouds are (n, 2).

The forward process drawn here is the closed form (Ho et al. 2020, eq. 4), computed by
:func:`adasr.diffusion.objectives.q_sample`::

    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,     SNR(t) = ᾱ_t / (1 − ᾱ_t)

so a row of panels at increasing t shows the signal fading as the noise takes over, and log SNR(t) is the
single curve that tells schedules apart.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..diffusion.objectives import q_sample
from .common import as_display, no_ticks

AlphaBars = Mapping[str, torch.Tensor]


def log_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """λ_t = log(ᾱ_t / (1 − ᾱ_t)), natural log, same shape as the input (float64)."""
    a = alphas_cumprod.double()
    return torch.log(a) - torch.log1p(-a)


def _step_index(fraction: float, T: int) -> int:
    """Timestep index for a position s ∈ [0, 1] along a chain of length T: round(s·(T − 1))."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"positions along the chain must lie in [0, 1], got {fraction}")
    return int(round(fraction * (T - 1)))


def _noisy(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """x_t of :func:`~adasr.diffusion.objectives.q_sample` computed in float64 (same shape as ``x0``): with ᾱ
    rounded to float32, √(1 − ᾱ) near ᾱ = 1 (t = 0) would lose three digits."""
    return q_sample(x0.double(), noise.double(), alpha_bar)


def forward_strip(
    x0: torch.Tensor,
    noise: torch.Tensor,
    alphas_cumprod: AlphaBars | torch.Tensor,
    positions: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0),
    *,
    panel: float = 1.6,
) -> Figure:
    """One row per schedule: x_t of image ``x0`` (1, 3, H, W) at ``positions`` (fractions t/(T−1) of the chain).

    The same ``noise`` (shape of ``x0``) is used in every panel, so only ᾱ_t changes along a row and between
    rows. Each panel is titled with t and SNR(t) (pixels are clipped to [−1, 1] for display).
    """
    tables = {"": alphas_cumprod} if isinstance(alphas_cumprod, torch.Tensor) else dict(alphas_cumprod)
    rows, cols = len(tables), len(positions)
    fig, axes = plt.subplots(rows, cols, figsize=(panel * cols, (panel + 0.3) * rows + 0.4), squeeze=False)
    for r, (name, abar) in enumerate(tables.items()):
        T = abar.shape[0]
        for c, s in enumerate(positions):
            t = _step_index(s, T)
            a = float(abar[t])
            ax = axes[r, c]
            ax.imshow(as_display(_noisy(x0, noise, a)))
            ax.set_title(f"t={t}  SNR={a / (1 - a):.3g}", fontsize=8)
            no_ticks(ax)
        if name:
            axes[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(r"forward process $x_t=\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\epsilon$", fontsize=10)
    fig.tight_layout()
    return fig


#: line styles of :func:`schedule_curves`, one per schedule in order: the first is drawn wide and pale, the later
#: ones narrower and dashed/marked on top of it, so curves that coincide (ECDP's VP on DDPM's linear) stay visible
_CURVE_STYLES = (
    {"lw": 5.0, "alpha": 0.45, "ls": "-"},
    {"lw": 2.0, "ls": "-"},
    {"lw": 2.0, "ls": "--", "marker": "o", "ms": 4.5, "markevery": 0.08},
    {"lw": 2.0, "ls": ":", "marker": "s", "ms": 4.0, "markevery": 0.08},
    {"lw": 2.0, "ls": "-.", "marker": "^", "ms": 4.5, "markevery": 0.08},
)


def schedule_curves(alphas_cumprod: AlphaBars, snr_levels: Sequence[float] = (1.0, 0.01)) -> Figure:
    """ᾱ_t (left) and λ_t = log SNR(t) = log(ᾱ_t / (1 − ᾱ_t)) (right) against t/T for each named schedule.

    Args:
        alphas_cumprod: {name: ᾱ table (T,)}; tables may differ in length T (the x axis is (t + 1)/T).
        snr_levels: SNR values (variance ratios ᾱ/(1 − ᾱ)) drawn as labelled horizontal lines at log SNR on the
            right panel; the region below the smallest one is shaded.

    Each schedule gets its own line style (:data:`_CURVE_STYLES`): the first wide and pale, the later ones dashed
    and marked, so a curve that lies exactly on another one (ECDP's VP on DDPM's linear) is still seen.
    """
    fig, (ax_a, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (name, abar) in enumerate(alphas_cumprod.items()):
        T = abar.shape[0]
        s = (np.arange(T) + 1) / T
        style = dict(_CURVE_STYLES[i % len(_CURVE_STYLES)], color=f"C{i}")
        ax_a.plot(s, abar.double().numpy(), label=f"{name} (T={T})", **style)
        ax_s.plot(s, log_snr(abar).numpy(), label=name, **style)
    ax_a.set_xlabel("t / T", fontsize=12)
    ax_a.set_ylabel(r"$\bar\alpha_t$ (share of the variance that is signal)", fontsize=11)
    ax_a.set_ylim(-0.02, 1.02)
    ax_a.legend(fontsize=11)
    for level in snr_levels:
        y = float(np.log(level))
        ax_s.axhline(y, color="0.35", lw=1.0, ls="--", zorder=0)
        ax_s.annotate(f"SNR = {level:g}", (0.02, y), xytext=(0, -3), textcoords="offset points", fontsize=11,
                      color="0.25", va="top", ha="left")
    if snr_levels:
        lo = float(np.log(min(snr_levels)))
        bottom = ax_s.get_ylim()[0]
        ax_s.axhspan(bottom, lo, color="0.85", alpha=0.5, zorder=-1)
        note = f"SNR < {min(snr_levels):g}:\nsignal < {min(snr_levels):.0%} of the noise's variance"
        ax_s.text(0.04, (2 * bottom + lo) / 3, note, fontsize=10, color="0.3", va="center")
        ax_s.set_ylim(bottom=bottom)
    ax_s.set_xlabel("t / T", fontsize=12)
    ax_s.set_ylabel(r"$\log\,\mathrm{SNR}=\log\frac{\bar\alpha_t}{1-\bar\alpha_t}$", fontsize=12)
    ax_s.legend(fontsize=11, loc="upper right")
    for ax in (ax_a, ax_s):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=11)
    fig.tight_layout()
    return fig


def noised_view(x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: int, name: str = "") -> Figure:
    """x_t of ``x0`` at one timestep ``t`` beside the schedule's log SNR curve with t marked (for a widget).

    ``x0`` and ``noise`` are (1, 3, H, W); ``alphas_cumprod`` is the schedule's ᾱ table (T,). The curve is
    λ_t = log(ᾱ_t / (1 − ᾱ_t)); dashed lines mark SNR = 1 and SNR = 0.01 (the levels of figure ``01_schedules``)."""
    T = alphas_cumprod.shape[0]
    t = int(min(max(t, 0), T - 1))
    a = float(alphas_cumprod[t])
    fig, (ax_i, ax_s) = plt.subplots(1, 2, figsize=(7.5, 3.2), gridspec_kw={"width_ratios": [1, 1.4]})
    ax_i.imshow(as_display(_noisy(x0, noise, a)))
    ax_i.set_title(f"{name} t={t}: " + r"$\bar\alpha_t$" + f"={a:.3f}", fontsize=9)
    no_ticks(ax_i)
    ls = log_snr(alphas_cumprod).numpy()
    ax_s.plot(np.arange(T), ls, color="C0")
    ax_s.plot([t], [ls[t]], "o", color="C3")
    for level in (1.0, 0.01):
        ax_s.axhline(float(np.log(level)), color="0.5", lw=0.8, ls="--")
        ax_s.annotate(f"SNR = {level:g}", (0.0, float(np.log(level))), xytext=(2, -2), textcoords="offset points",
                      fontsize=9, color="0.3", va="top")
    ax_s.set_xlabel("t")
    ax_s.set_ylabel("log SNR")
    ax_s.set_title(f"SNR = {a / (1 - a):.3g}", fontsize=9)
    ax_s.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _scatter(ax, pts: torch.Tensor, reference: torch.Tensor | None, lim: float, title: str) -> None:
    # one-pixel markers: thousands of antialiased dots would make each embedded PNG several times larger
    if reference is not None:
        r = reference.detach().cpu().numpy()
        ax.plot(r[:, 0], r[:, 1], ",", color="0.75")
    p = pts.detach().cpu().numpy()
    ax.plot(p[:, 0], p[:, 1], ",", color="C0")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    no_ticks(ax)
    ax.set_title(title, fontsize=9)


def toy_snapshots(
    clouds: Sequence[torch.Tensor],
    titles: Sequence[str],
    *,
    reference: torch.Tensor | None = None,
    lim: float = 3.0,
    panel: float = 2.0,
) -> Figure:
    """A row of scatter plots of 2-D point clouds (n, 2), with an optional grey ``reference`` cloud behind."""
    if len(clouds) != len(titles):
        raise ValueError("one title per cloud")
    fig, axes = plt.subplots(1, len(clouds), figsize=(panel * len(clouds), panel + 0.3), squeeze=False)
    for ax, pts, title in zip(axes[0], clouds, titles):
        _scatter(ax, pts, reference, lim, title)
    fig.tight_layout()
    return fig


def reverse_snapshots(
    timesteps: Sequence[int],
    xs: Sequence[torch.Tensor],
    x0_preds: Sequence[torch.Tensor] | None = None,
    *,
    sample: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    lim: float = 3.0,
    panel: float = 2.0,
) -> Figure:
    """The reverse process on 2-D points: x_t at the given steps (top row), optionally the model's x̂_0 at the
    same steps (bottom row), and the final ``sample`` as a last column. All clouds (n, 2)."""
    cols = len(xs) + (sample is not None)
    rows = 1 + (x0_preds is not None)
    fig, axes = plt.subplots(rows, cols, figsize=(panel * cols, (panel + 0.3) * rows), squeeze=False)
    for c, (t, x) in enumerate(zip(timesteps, xs)):
        _scatter(axes[0, c], x, reference, lim, f"$x_{{{t}}}$")
        if x0_preds is not None:
            _scatter(axes[1, c], x0_preds[c], reference, lim, rf"$\hat x_0$ at t={t}")
    if sample is not None:
        _scatter(axes[0, -1], sample, reference, lim, "$x_0$ (sample)")
        if rows == 2:
            axes[1, -1].axis("off")
    fig.tight_layout()
    return fig


def loss_curve(
    losses: torch.Tensor | Sequence[float], *, window: int = 50, log: bool = False, title: str = "training loss"
) -> Figure:
    """Per-step loss (faint) and its ``window``-step moving average (log y axis if ``log``, else from 0)."""
    y = np.asarray(torch.as_tensor(losses, dtype=torch.float64))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.arange(1, y.size + 1), y, color="C0", alpha=0.3, lw=0.8, label="per step")
    if y.size >= window:
        avg = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, y.size + 1), avg, color="C0", lw=1.8, label=f"mean of {window}")
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, None)
    ax.set_xlabel("step")
    ax.set_ylabel("MSE")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
