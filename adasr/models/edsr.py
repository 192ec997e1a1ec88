"""EDSR-baseline-style ×s super-resolution CNN (Lim et al. 2017), the network AdaBM quantizes.

    head:  F_0 = conv3×3(LR)                                   (B, 3, h, w) → (B, F, h, w)
    body:  F_k = F_{k−1} + res_scale · conv(relu(conv(F_{k−1})))   k = 1..n_resblocks
           F_B = conv3×3(F_n) + F_0                              (global skip)
    tail:  SR  = conv3×3(PixelShuffle(2)(conv3×3(·)) ×log2 s)     (B, F, h, w) → (B, 3, s·h, s·w)

Images are in [−1, 1] (the package's convention), so EDSR's RGB mean shift is left out. The residual adds go
through :class:`torch.ao.nn.quantized.FloatFunctional` (a plain add in float mode), and the input/output pass
``QuantStub``/``DeQuantStub`` (identities until converted), so the same module converts to a real int8 network with
``torch.ao.quantization`` eager mode (see :mod:`adasr.quant.int8`). Its residual-block convolutions are the layers
AdaBM gives adaptive bit widths (:mod:`adasr.quant`).

It is also the package's PSNR-oriented regression baseline: one forward pass, no sampling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub

from ..data import make_pair


@dataclass(frozen=True)
class EDSRConfig:
    """Architecture of :class:`EDSR` (defaults: 8 blocks × 32 features, ×4, 232 k parameters).

    AdaBM's EDSR-baseline is 16 × 64; this one is smaller so that it trains in minutes on two CPU cores and fits the
    weight budget of the repository.
    """

    n_resblocks: int = 8
    n_feats: int = 32
    scale: int = 4
    res_scale: float = 1.0
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"EDSR scale must be a power of two ≥ 2, got {self.scale}")
        if self.n_resblocks < 1 or self.n_feats < 1:
            raise ValueError(f"n_resblocks and n_feats must be ≥ 1, got {self.n_resblocks}, {self.n_feats}")

    def to_dict(self) -> dict:
        return {"arch": "edsr", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "EDSRConfig":
        return cls(**{k: v for k, v in d.items() if k != "arch"})


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    """x + res_scale · conv2(relu(conv1(x))), shapes (B, F, h, w) → (B, F, h, w)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = conv3x3(n_feats, n_feats)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(n_feats, n_feats)
        self.res_scale = res_scale
        self.skip = FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv2(self.relu(self.conv1(x)))
        if self.res_scale != 1.0:
            r = r * self.res_scale
        return self.skip.add(x, r)


class EDSR(nn.Module):
    """LR (B, 3, h, w) in [−1, 1] → SR (B, 3, s·h, s·w)."""

    def __init__(self, config: EDSRConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or EDSRConfig()
        self.quant = QuantStub()
        self.head = conv3x3(c.in_channels, c.n_feats)
        self.body = nn.Sequential(*[ResBlock(c.n_feats, c.res_scale) for _ in range(c.n_resblocks)])
        self.body_out = conv3x3(c.n_feats, c.n_feats)
        self.skip = FloatFunctional()
        up: list[nn.Module] = []
        for _ in range(int(math.log2(c.scale))):
            up += [conv3x3(c.n_feats, 4 * c.n_feats), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*up)
        self.tail = conv3x3(c.n_feats, c.in_channels)
        self.dequant = DeQuantStub()

    @property
    def scale(self) -> int:
        return self.config.scale

    def features(self, lr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(SR, outputs of every residual block): the block outputs are what AdaBM's L_skt compares."""
        x = self.head(self.quant(lr))
        feats = []
        h = x
        for block in self.body:
            h = block(h)
            feats.append(h)
        h = self.skip.add(self.body_out(h), x)
        return self.dequant(self.tail(self.upsample(h))), feats

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.dim() != 4 or lr.shape[1] != self.config.in_channels:
            raise ValueError(f"EDSR expects (B, {self.config.in_channels}, h, w), got {tuple(lr.shape)}")
        return self.features(lr)[0]

    def training_loss(
        self, hr: torch.Tensor, generator: torch.Generator | None = None, net: nn.Module | None = None
    ) -> torch.Tensor:
        """L1 between EDSR(LR) and HR (EDSR's loss); hr (B, 3, H, W) in [−1, 1], LR = bicubic ↓s with antialias.

        ``generator`` is unused (the loss has no randomness); ``net`` evaluates the network (the DDP wrapper)."""
        lr, _ = make_pair(hr, self.scale)
        return F.l1_loss((net if net is not None else self)(lr).float(), hr)

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """SR clamped to [−1, 1]."""
        return self(lr).clamp(-1, 1)


def load_edsr(name: str = "edsr_x4", device: str | torch.device | None = None) -> EDSR:
    """The shipped EDSR ``name`` (EMA weights, hash-verified) in eval mode, float32."""
    from ..registry import load_state_dict, model_config
    from ..runtime import resolve_device

    model = EDSR(EDSRConfig.from_dict(model_config(name)))
    model.load_state_dict({k: v.float() for k, v in load_state_dict(name).items()})
    return model.eval().to(resolve_device(device))
