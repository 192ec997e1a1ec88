"""The conditional residual diffusion SR model: a :class:`~adasr.models.unet.SRUNet` plus what gives its output meaning.

ECDP / SRDiff residual formulation: the diffused variable is r = s·(HR − up(LR)); the UNet sees
concat(r_t, up(LR)) and predicts ε, r0 ("sample") or v; the SR output is HR = up(LR) + r̂0/s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from .data import make_pair
from .diffusion.ddim import DDIMUpdate
from .diffusion.objectives import PredictionType, predict_x0, q_sample, residual_target, training_target
from .diffusion.schedules import NoiseSchedule
from .diffusion.timesteps import TimestepSpacing
from .models.unet import SRUNet, UNetConfig


@dataclass(frozen=True)
class SRDiffusionConfig:
    """Everything needed to rebuild a trained model: architecture, schedule, parameterisation, SR scale."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    prediction_type: PredictionType = "sample"
    residual: bool = True
    residual_scale: float = 1.0
    scale: int = 4
    clip_sample_range: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unet"]["channels"] = list(d["unet"]["channels"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SRDiffusionConfig":
        d = dict(d)
        d["unet"] = UNetConfig.from_dict(d["unet"])
        d["schedule"] = NoiseSchedule(**d["schedule"])
        return cls(**d)

    def with_(self, **changes) -> "SRDiffusionConfig":
        return replace(self, **changes)

    @property
    def clip_range(self) -> float | None:
        """x̂0 is clamped to ±``clip_sample_range`` while sampling; ``None`` when the range is 0 (no clipping).
        The one place the samplers read the clip setting from."""
        return self.clip_sample_range if self.clip_sample_range > 0 else None


class SRDiffusion(torch.nn.Module):
    """UNet + config. ``target(hr, up)`` is what is diffused; ``output(x0, up)`` maps it back to an image."""

    def __init__(self, config: SRDiffusionConfig | None = None) -> None:
        super().__init__()
        self.config = config or SRDiffusionConfig()
        self.unet = SRUNet(self.config.unet)
        self.register_buffer("alphas_cumprod", self.config.schedule.alphas_cumprod().float(), persistent=False)

    @property
    def num_train_timesteps(self) -> int:
        return self.config.schedule.num_train_timesteps

    def target(self, hr: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """x0 of the diffusion: s·(HR − up(LR)) (residual) or HR itself (plain SR3). Shapes (B, 3, H, W)."""
        return residual_target(hr, up, self.config.residual_scale) if self.config.residual else hr

    def output(self, x0: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """Image from a clean sample: up(LR) + x0/s (residual) or x0, clamped to [−1, 1]."""
        img = up + x0 / self.config.residual_scale if self.config.residual else x0
        return img.clamp(-1, 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | int | float, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, cond)

    def training_loss(
        self, hr: torch.Tensor, generator: torch.Generator | None = None, net: torch.nn.Module | None = None
    ) -> torch.Tensor:
        """Simple diffusion loss E_t,ε ‖f(x_t, t, up) − target‖² with t ~ U{0..T−1}; hr (B, 3, H, W) in [−1, 1].

        ``net`` evaluates f (default: this module); pass the DistributedDataParallel wrapper so gradients are reduced.
        """
        _, up = make_pair(hr, self.config.scale)
        x0 = self.target(hr, up)
        B = hr.shape[0]
        t = torch.randint(0, self.num_train_timesteps, (B,), generator=generator).to(hr.device)
        noise = torch.randn(x0.shape, generator=generator).to(hr.device)
        a = self.alphas_cumprod[t].view(B, 1, 1, 1)
        x_t = q_sample(x0, noise, a)
        out = (net if net is not None else self)(x_t, t, up)
        tgt = training_target(self.config.prediction_type, x0, noise, a)
        return F.mse_loss(out.float(), tgt)

    def scheduler(self, kind: str = "ddim", spacing: TimestepSpacing = "linspace", **kwargs):
        """A diffusers-style scheduler on this model's chain, parameterisation and clipping.

        ``kind`` is ``"ddim"`` (:class:`~adasr.diffusion.schedulers.DDIMScheduler`, last step to ᾱ = 1) or
        ``"ddpm"`` (:class:`~adasr.diffusion.schedulers.DDPMScheduler`); ``spacing`` is its ``timestep_spacing``
        (``linspace``: the tile sampler's, :func:`~adasr.diffusion.timesteps.spaced_timesteps`); ``kwargs`` go to
        the constructor (e.g. ``variance_type``).
        """
        from .diffusion.schedulers import DDIMScheduler, DDPMScheduler

        c = self.config
        clip = c.clip_range
        common = dict(prediction_type=c.prediction_type, clip_sample=clip is not None,
                      clip_sample_range=clip if clip is not None else 1.0, timestep_spacing=spacing)
        if kind == "ddim":
            return DDIMScheduler.from_schedule(c.schedule, set_alpha_to_one=True, **common, **kwargs)
        if kind == "ddpm":
            return DDPMScheduler.from_schedule(c.schedule, **common, **kwargs)
        raise ValueError(f"kind must be 'ddim' or 'ddpm', got {kind!r}")

    def ddim_update(self) -> DDIMUpdate:
        """The DDIM update of the tile sampler on this model's chain (float64 ᾱ table), parameterisation and clip."""
        c = self.config
        return DDIMUpdate(c.schedule.alphas_cumprod(), c.prediction_type, c.clip_range)

    def predict_x0(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂0 from the network output at integer timesteps t (B,)."""
        a = self.alphas_cumprod.to(x_t.device)[t.long()].view(-1, 1, 1, 1)
        return predict_x0(self.config.prediction_type, model_output.float(), x_t, a)
