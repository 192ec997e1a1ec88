"""The DDIM update the samplers use (Song, Meng & Ermon 2021), apart from the diffusers-compatible classes.

:func:`ddim_step` is the update itself for per-sample ᾱ pairs (B tiles may sit at B different timesteps);
:class:`DDIMUpdate` binds it to a model's training chain, parameterisation and clipping, so the tile-batch
sampler steps each tile from its own t to its own t' (t' = −1 is the final step, to ᾱ = 1). The diffusers-style
:class:`~adasr.diffusion.schedulers.DDIMScheduler` is built on the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .objectives import PredictionType, predict_eps, predict_x0


def _per_sample(value: torch.Tensor | float, like: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or a ``(B,)`` tensor as a float64 tensor broadcastable to ``like`` (``(B, 1, 1, 1)``)."""
    v = torch.as_tensor(value, dtype=torch.float64, device=like.device)
    if v.ndim == 0:
        return v
    if v.ndim != 1 or v.shape[0] != like.shape[0]:
        raise ValueError(f"{name} must be a scalar or have shape ({like.shape[0]},), got {tuple(v.shape)}")
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def ddim_step(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    alpha_bar_t: torch.Tensor | float,
    alpha_bar_prev: torch.Tensor | float,
    prediction_type: PredictionType,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_sample_range: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from ᾱ_t to ᾱ_prev (Song, Meng & Ermon 2021, eq. 12), per batch entry.

    ::

        x̂0   = predict_x0(model_output)              then clamped to ±clip_sample_range if given
        ε̂    = predict_eps(model_output)             (from the *unclipped* x̂0, as diffusers does)
        σ_t  = η · √((1 − ᾱ_prev)/(1 − ᾱ_t)) · √(1 − ᾱ_t/ᾱ_prev)                      (eq. 16)
        x_prev = √ᾱ_prev · x̂0  +  √(1 − ᾱ_prev − σ_t²) · ε̂  +  σ_t · z,   z ~ N(0, I)

    η = 0 is the deterministic DDIM sampler; η = 1 gives DDPM's posterior variance β̃. With ᾱ_prev = 1 the
    result is x̂0 itself.

    Args:
        model_output: network output, shape ``(B, C, H, W)``.
        sample: x_t, shape ``(B, C, H, W)``.
        alpha_bar_t: ᾱ at the current timestep, a scalar or shape ``(B,)`` (one per batch entry).
        alpha_bar_prev: ᾱ at the target timestep, a scalar or shape ``(B,)``.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        eta: η ≥ 0.
        noise: z, shape of ``sample``; required when η > 0 (this function draws no random numbers).
        clip_sample_range: clamp x̂0 to ``[−r, r]``; ``None`` disables clipping.

    Returns:
        ``(prev_sample, pred_original_sample)``, both shaped like ``sample``.
    """
    if not eta >= 0 or not math.isfinite(eta):  # NaN compares False: it would make every pixel NaN (black)
        raise ValueError(f"eta must be a finite number >= 0, got {eta}")
    if eta > 0 and noise is None:
        raise ValueError("eta > 0 needs `noise` (a standard normal tensor shaped like `sample`)")
    if noise is not None and noise.shape != sample.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)}, sample has {tuple(sample.shape)}")
    a_t = _per_sample(alpha_bar_t, sample, "alpha_bar_t")
    a_prev = _per_sample(alpha_bar_prev, sample, "alpha_bar_prev")

    # the conversions run in the sample's dtype, as diffusers' do
    pred_x0 = predict_x0(prediction_type, model_output, sample, a_t.to(sample.dtype))
    pred_eps = predict_eps(prediction_type, model_output, sample, a_t.to(sample.dtype))
    if clip_sample_range is not None:
        pred_x0 = pred_x0.clamp(-clip_sample_range, clip_sample_range)

    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)  # σ_t(η = 1)², float64
    std = eta * variance.sqrt()
    # 1 − ᾱ_prev − σ² ≥ 0 in exact arithmetic; clamp the rounding (diffusers would return NaN there)
    dir_coeff = (1 - a_prev - std**2).clamp(min=0).sqrt()
    dtype = sample.dtype
    prev_sample = a_prev.sqrt().to(dtype) * pred_x0 + dir_coeff.to(dtype) * pred_eps
    if eta > 0:
        assert noise is not None
        prev_sample = prev_sample + std.to(dtype) * noise
    return prev_sample, pred_x0




def alpha_bar_at(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor,
                 final_alpha_cumprod: torch.Tensor | float = 1.0) -> torch.Tensor:
    """ᾱ at integer timesteps (any shape); −1 ↦ ``final_alpha_cumprod`` (the end of the chain). float64."""
    ac = alphas_cumprod.to(device=timesteps.device, dtype=torch.float64)
    final = torch.as_tensor(final_alpha_cumprod, dtype=torch.float64, device=timesteps.device)
    return torch.where(timesteps >= 0, ac[timesteps.clamp(min=0)], final)


@dataclass(frozen=True)
class DDIMUpdate:
    """:func:`ddim_step` on a training chain: ᾱ table (T,) float64, parameterisation, clip range (``None``: off).

    ``update(model_output, t, t_prev, x_t, eta, noise)`` steps entry b from ``t[b]`` to ``t_prev[b]``
    (LongTensors (B,), ``t_prev < t``, −1 = the final step to ᾱ = 1) and returns (x_{t'}, x̂0).
    """

    alphas_cumprod: torch.Tensor
    prediction_type: PredictionType
    clip_sample_range: float | None = None

    def __call__(self, model_output: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, sample: torch.Tensor,
                 eta: float = 0.0, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.alphas_cumprod.shape[0]
        if t.shape != (sample.shape[0],) or t_prev.shape != t.shape:
            raise ValueError(f"t and t_prev must have shape ({sample.shape[0]},), got {tuple(t.shape)}, "
                             f"{tuple(t_prev.shape)}")
        if int(t.min()) < 0 or int(t.max()) >= T or int(t_prev.min()) < -1 or bool((t_prev >= t).any()):
            raise ValueError(f"need 0 <= t < {T} and -1 <= t_prev < t, got t={t.tolist()}, t_prev={t_prev.tolist()}")
        return ddim_step(model_output, sample, alpha_bar_at(self.alphas_cumprod, t),
                         alpha_bar_at(self.alphas_cumprod, t_prev), self.prediction_type, eta, noise,
                         self.clip_sample_range)


__all__ = ["DDIMUpdate", "alpha_bar_at", "ddim_step"]
