"""Training targets and the conversions between ε, x0 and v parameterisations.

With x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (:func:`q_sample`; all tensors ``(B, C, H, W)``, ᾱ_t broadcast as ``(B, 1, 1, 1)``):

* ε-prediction (DDPM):       target ε
* x0-prediction ("sample"):  target x0
* v-prediction (Salimans & Ho 2022, eq. 9): v = √ᾱ_t·ε − √(1−ᾱ_t)·x0

and the residual SR target of SRDiff / ECDP:  r = s·(HR − up(LR)), HR = up(LR) + r/s.
"""

from __future__ import annotations

from typing import Literal

import torch

PredictionType = Literal["epsilon", "sample", "v_prediction"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "sample", "v_prediction")


def _check(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def _bcast(alpha_bar: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(alpha_bar, dtype=like.dtype, device=like.device)
    return a.reshape(-1, *([1] * (like.ndim - 1))) if a.ndim else a


def residual_target(hr: torch.Tensor, up_lr: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """r = s·(HR − up(LR)); ``hr``, ``up_lr`` shape (B, 3, H, W) in [−1, 1]."""
    return scale * (hr - up_lr)


def from_residual(r: torch.Tensor, up_lr: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """HR = up(LR) + r/s, the inverse of :func:`residual_target`."""
    return up_lr + r / scale


def q_sample(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor | float) -> torch.Tensor:
    """Forward noising x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (Ho et al. 2020, eq. 4): the package's one definition.

    ``x0`` and ``noise`` (B, C, H, W); ``alpha_bar`` a scalar or one ᾱ per batch entry (B,), cast to x0's dtype.
    """
    if noise.shape != x0.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, x0 has {tuple(x0.shape)}")
    a = _bcast(alpha_bar, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def training_target(
    prediction_type: PredictionType, x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor | float
) -> torch.Tensor:
    """What the network is trained to output: ε, x0, or v = √ᾱ·ε − √(1−ᾱ)·x0."""
    _check(prediction_type)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    a = _bcast(alpha_bar, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def predict_x0(
    prediction_type: PredictionType, model_output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor | float
) -> torch.Tensor:
    """x̂0 from the network output: (x_t − √(1−ᾱ)ε̂)/√ᾱ, the output itself, or √ᾱ·x_t − √(1−ᾱ)·v̂."""
    _check(prediction_type)
    a = _bcast(alpha_bar, x_t)
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * model_output) / a.sqrt()
    if prediction_type == "sample":
        return model_output
    return a.sqrt() * x_t - (1 - a).sqrt() * model_output


def predict_eps(
    prediction_type: PredictionType, model_output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor | float
) -> torch.Tensor:
    """ε̂ from the network output: the output itself, (x_t − √ᾱ·x̂0)/√(1−ᾱ), or √(1−ᾱ)·x_t + √ᾱ·v̂."""
    _check(prediction_type)
    a = _bcast(alpha_bar, x_t)
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "sample":
        return (x_t - a.sqrt() * model_output) / (1 - a).sqrt()
    return (1 - a).sqrt() * x_t + a.sqrt() * model_output
