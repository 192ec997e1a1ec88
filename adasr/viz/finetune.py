"""Figures of fine-tuning through the sampler (issue 18): the three loss terms over training.

Every function draws from data it is given (:func:`adasr.sampler_finetune.training_log` of a run) and returns a
Figure.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

#: the loss terms, their panel titles (the loss ``L = w_lpips·LPIPS + w_l1·L1 + w_diff·L_diff``)
TERM_TITLES = {"lpips": "LPIPS(SR, HR) of the 2-step chain", "l1": "L1(SR, HR) of the chain",
               "diff": "diffusion loss (the regulariser)"}


def moving_average(y: Sequence[float], window: int) -> np.ndarray:
    """Mean over the last ``window`` values at each point from the ``window``-th on (valid part only)."""
    a = np.asarray(y, dtype=float)
    if window <= 1 or len(a) < window:
        return a
    return np.convolve(a, np.ones(window) / window, mode="valid")


def loss_terms_figure(log: Mapping[str, Sequence[float]], smooth: int = 25,
                      terms: Sequence[str] = tuple(TERM_TITLES)) -> Figure:
    """One panel per loss term of a fine-tuning run (``log``: :func:`~adasr.sampler_finetune.training_log`): the
    logged values (light) and their moving average over ``smooth`` steps (dark), against the training step."""
    fig = Figure(figsize=(4.2 * len(terms), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(terms)))
    steps = np.asarray(log["step"], dtype=float)
    for ax, term in zip(axes, terms):
        y = np.asarray(log[term], dtype=float)
        ax.plot(steps, y, color="tab:blue", alpha=0.25, lw=0.8, label="per step")
        avg = moving_average(y, smooth)
        ax.plot(steps[len(steps) - len(avg):], avg, color="tab:blue", lw=2, label=f"mean of {smooth}")
        ax.set_title(TERM_TITLES.get(term, term), fontsize=11)
        ax.set_xlabel("fine-tuning step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["TERM_TITLES", "loss_terms_figure", "moving_average"]
