"""Figures for the maths appendix (notebook 90): closed forms beside their numerical checks.

Every function takes arrays the notebook computed (closed-form curves, Monte-Carlo estimates), draws them with
matplotlib and returns the ``Figure``; none samples, integrates or fits anything. Notation (package indexing,
t = 0 … T−1, ᾱ_{−1} = 1):

* forward posterior  q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t),
  μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t,  β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t;
* ELBO weight of the ε-regression  w_t = β_t² / (2 σ_t² α_t (1 − ᾱ_t))  (Ho et al. 2020, eq. 12);
* Tweedie's formula  E[x_0 | x_t] = (x_t + (1 − ᾱ_t) ∇ log p_t(x_t)) / √ᾱ_t.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

ArrayLike = Sequence[float] | np.ndarray


def _np(a: ArrayLike) -> np.ndarray:
    return np.asarray(a, dtype=float)


def posterior_check_figure(
    t: ArrayLike,
    closed: Mapping[str, ArrayLike],
    mc_t: ArrayLike,
    mc: Mapping[str, ArrayLike],
    *,
    title: str | None = None,
) -> Figure:
    """The posterior q(x_{t−1} | x_t, x_0): closed form (lines) against a Monte-Carlo regression (markers).

    Args:
        t: timesteps of the closed-form curves, shape (K,).
        closed: ``{"coef_x0": (K,), "coef_xt": (K,), "beta_tilde": (K,), "beta": (K,)}``: the two mean
            coefficients √ᾱ_{t−1}β_t/(1 − ᾱ_t) and √α_t(1 − ᾱ_{t−1})/(1 − ᾱ_t), β̃_t and β_t.
        mc_t: timesteps of the Monte-Carlo estimates, shape (M,).
        mc: ``{"coef_x0": (M,), "coef_xt": (M,), "beta_tilde": (M,)}`` from regressing x_{t−1} on x_t.
        title: optional figure title.

    Left panel: the mean coefficients (log t); right panel: β_t and β̃_t (log–log).
    """
    t, mc_t = _np(t), _np(mc_t)
    fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for key, label, colour in (("coef_x0", r"coefficient of $x_0$", "C0"), ("coef_xt", r"coefficient of $x_t$", "C1")):
        ax_m.plot(t, _np(closed[key]), color=colour, lw=1.8, label=f"{label} (closed form)")
        ax_m.plot(mc_t, _np(mc[key]), "o", color=colour, mec="black", mew=0.6, ms=6, label=f"{label} (Monte Carlo)")
    ax_m.set_xscale("log")
    ax_m.set_xlabel("timestep t", fontsize=11)
    ax_m.set_ylabel(r"weight in $\tilde\mu_t$", fontsize=11)
    ax_m.set_title(r"posterior mean $\tilde\mu_t(x_t, x_0)$", fontsize=11)
    ax_m.legend(fontsize=8.5, loc="center right")
    ax_v.plot(t, _np(closed["beta"]), color="0.45", lw=1.5, ls="--", label=r"$\beta_t$ (forward step)")
    ax_v.plot(t, _np(closed["beta_tilde"]), color="C2", lw=1.8, label=r"$\tilde\beta_t$ (closed form)")
    ax_v.plot(mc_t, _np(mc["beta_tilde"]), "o", color="C2", mec="black", mew=0.6, ms=6,
              label=r"$\tilde\beta_t$ (Monte Carlo)")
    ax_v.set_xscale("log")
    ax_v.set_yscale("log")
    ax_v.set_xlabel("timestep t", fontsize=11)
    ax_v.set_ylabel("variance", fontsize=11)
    ax_v.set_title(r"posterior variance $\tilde\beta_t$", fontsize=11)
    ax_v.legend(fontsize=8.5, loc="lower right")
    for ax in (ax_m, ax_v):
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def elbo_weight_figure(t: ArrayLike, weights: Mapping[str, ArrayLike], *, title: str | None = None) -> Figure:
    """Per-timestep weight of ‖ε − ε̂‖² in the ELBO, one line per choice of σ_t², against L_simple's weight 1.

    Args:
        t: timesteps, shape (K,) (t ≥ 1: the t = 0 term is the decoder, not a KL).
        weights: ``{label: w_t (K,)}``, e.g. ``{"σ² = β̃_t": ..., "σ² = β_t": ...}``.
        title: optional figure title.
    """
    t = _np(t)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (label, w) in enumerate(weights.items()):
        ax.plot(t, _np(w), color=f"C{i}", lw=1.8, label=label)
    ax.axhline(1.0, color="0.3", ls="--", lw=1.2, label=r"$L_\mathrm{simple}$: weight 1")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("timestep t", fontsize=11)
    ax.set_ylabel(r"weight $w_t$ of $\|\varepsilon-\hat\varepsilon\|^2$", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def tweedie_figure(
    x: ArrayLike,
    densities: Mapping[str, ArrayLike],
    means: Mapping[str, ArrayLike],
    *,
    mc: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    data_means: ArrayLike | None = None,
    title: str | None = None,
) -> Figure:
    """Left: the marginal densities p_t(x); right: the posterior mean E[x_0 | x_t] against x_t, one line per t.

    Args:
        x: the grid of x (or x_t) values, shape (K,).
        densities: ``{label: p_t(x) (K,)}`` (e.g. ``"t = 0 (data)"``, ``"t = 200"``, …).
        means: ``{label: E[x_0 | x_t = x] (K,)}``, the same labels (those of ``densities`` without a mean, such as
            the data, are skipped on the right).
        mc: ``{label: (bin centres (M,), Monte-Carlo bin means of x_0 (M,))}`` drawn as markers.
        data_means: the mixture's component means m_k, drawn as dotted horizontal lines on the right.
        title: optional figure title.
    """
    x = _np(x)
    fig, (ax_d, ax_m) = plt.subplots(1, 2, figsize=(10.4, 3.8))
    colours = {label: f"C{i}" for i, label in enumerate(densities)}
    for label, p in densities.items():
        ax_d.plot(x, _np(p), color=colours[label], lw=1.8, label=label)
    ax_d.set_xlabel(r"$x$", fontsize=11)
    ax_d.set_ylabel(r"density $p_t(x)$", fontsize=11)
    ax_d.set_title("data and diffused marginals", fontsize=11)
    ax_d.legend(fontsize=8.5)
    for m in (data_means if data_means is not None else ()):
        ax_m.axhline(float(m), color="0.6", ls=":", lw=1)
    for label, mean in means.items():
        ax_m.plot(x, _np(mean), color=colours.get(label, "C9"), lw=1.8, label=label)
        if mc is not None and label in mc:
            cx, cm = mc[label]
            ax_m.plot(_np(cx), _np(cm), "o", color=colours.get(label, "C9"), ms=3.5, mec="black", mew=0.3)
    ax_m.set_xlabel(r"$x_t$", fontsize=11)
    ax_m.set_ylabel(r"$\mathbb{E}[x_0 \mid x_t]$", fontsize=11)
    ax_m.set_title("posterior mean (lines: Tweedie, dots: Monte Carlo)" if mc else "posterior mean (Tweedie)",
                   fontsize=11)
    ax_m.legend(fontsize=8.5)
    for ax in (ax_d, ax_m):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


__all__ = ["elbo_weight_figure", "posterior_check_figure", "tweedie_figure"]
