"""SR3-style super-resolution UNet with an explicit encoder / decoder split.

Input: the noisy residual x_t (B, 3, H, W) concatenated with the condition up(LR) (B, 3, H, W) → 6 channels
(SR3, Saharia et al. 2022). Output: (B, 3, H, W), read as ε, x0 or v by the scheduler.

``encode(x_t, t, cond)`` runs the stem, the down path and the middle block and returns an :class:`EncoderState`
(every skip feature and the middle feature). ``decode(h, t)`` runs the up path with the time embedding of ``t``.
``forward = decode ∘ encode``. Encoder-state reuse (Faster-Diffusion / SMFDM) calls ``decode`` with a cached ``h``
and the *current* t; DeepCache keeps ``decode(…, return_deep=True)``'s deep feature and calls :meth:`SRUNet.shallow`
(only the full-resolution blocks) at the steps between. H and W must be multiples of 2^(levels−1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`SRUNet` (defaults: 2.81 M parameters)."""

    in_channels: int = 6
    out_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128)
    num_res_blocks: int = 2
    time_dim: int = 128
    groups: int = 8
    heads: int = 4
    attention: bool = True

    def __post_init__(self) -> None:
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be positive whole numbers, one per level, got {self.channels!r}")
        if self.groups < 1 or any(c % self.groups for c in self.channels):
            raise ValueError(f"every entry of channels {tuple(self.channels)} must be a multiple of groups "
                             f"({self.groups}, GroupNorm's group count)")
        if self.num_res_blocks < 1 or self.time_dim < 2 or self.time_dim % 2 or self.heads < 1:
            raise ValueError("num_res_blocks and heads must be at least 1 and time_dim an even number >= 2, got "
                             f"{self.num_res_blocks}, {self.heads}, {self.time_dim}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [sin(t·ω_k), cos(t·ω_k)], ω_k = max_period^(−k/(dim/2)); t (B,) float → (B, dim).

    Fractional t is allowed (the probability-flow ODE evaluates between integer timesteps).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + time embedding, GroupNorm → SiLU → conv, plus a (1×1) skip."""

    def __init__(self, cin: int, cout: int, tdim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip: nn.Module = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(F.silu(temb))[:, :, None, None].to(x.dtype)
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions, residual: x + W_o·softmax(QKᵀ/√d)V."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))


@dataclass
class EncoderState:
    """What ``encode`` hands to ``decode``: the skip features (finest first) and the middle feature."""

    skips: list[torch.Tensor] = field(default_factory=list)
    mid: torch.Tensor | None = None

    def index(self, idx: torch.Tensor | slice) -> "EncoderState":
        """Select batch entries (e.g. the tiles still running)."""
        assert self.mid is not None
        return EncoderState([s[idx] for s in self.skips], self.mid[idx])

    def repeat(self, n: int) -> "EncoderState":
        """Repeat every tensor n times along the batch (decode several timesteps from one encoding)."""
        assert self.mid is not None
        return EncoderState([s.repeat(n, 1, 1, 1) for s in self.skips], self.mid.repeat(n, 1, 1, 1))


class SRUNet(nn.Module):
    """Conditional SR UNet; see the module docstring. ``forward(x_t, t, cond)`` → (B, out_channels, H, W)."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        self.config = cfg
        chs, tdim, g = cfg.channels, cfg.time_dim, cfg.groups
        self.time_mlp = nn.Sequential(nn.Linear(chs[0], tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.stem = nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = chs[0]
        skip_channels = []
        for i, ch in enumerate(chs):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, ch, tdim, g))
                c = ch
            self.down.append(blocks)
            skip_channels.append(c)
            if i < len(chs) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.down_attn: nn.Module = SelfAttention(c, cfg.heads, g) if cfg.attention else nn.Identity()
        self.mid1 = ResBlock(c, c, tdim, g)
        self.mid_attn: nn.Module = SelfAttention(c, cfg.heads, g) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(c, c, tdim, g)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chs))):
            ch = chs[i]
            blocks = nn.ModuleList([ResBlock(c + skip_channels[i], ch, tdim, g)])
            c = ch
            for _ in range(cfg.num_res_blocks - 1):
                blocks.append(ResBlock(c, ch, tdim, g))
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, chs[i - 1], 3, padding=1))
                c = chs[i - 1]
        self.up_attn: nn.Module = SelfAttention(chs[-1], cfg.heads, g) if cfg.attention else nn.Identity()
        self.out_norm = nn.GroupNorm(g, c)
        self.out_conv = nn.Conv2d(c, cfg.out_channels, 3, padding=1)

    @property
    def multiple(self) -> int:
        """H and W of the input must be multiples of this."""
        return 2 ** (len(self.config.channels) - 1)

    def time_embedding(self, t: torch.Tensor | float | int, batch: int, device: torch.device) -> torch.Tensor:
        """MLP(sinusoid(t)) → (B, time_dim); a scalar t is broadcast to the batch."""
        t = torch.as_tensor(t, device=device, dtype=torch.float32)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
        return self.time_mlp(timestep_embedding(t, self.config.channels[0]))

    def encode(self, x_t: torch.Tensor, t: torch.Tensor | float | int, cond: torch.Tensor) -> EncoderState:
        """Stem, down path and middle block on concat(x_t, cond) (B, 6, H, W) → :class:`EncoderState`."""
        if x_t.shape[-2] % self.multiple or x_t.shape[-1] % self.multiple:
            raise ValueError(f"height and width must be multiples of {self.multiple}, got {tuple(x_t.shape[-2:])}")
        temb = self.time_embedding(t, x_t.shape[0], x_t.device)
        h = self.stem(torch.cat([x_t, cond], dim=1))
        skips = []
        n = len(self.down)
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, temb)
            if i == n - 1:
                h = self.down_attn(h)
            skips.append(h)
            if i < n - 1:
                h = self.downsample[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        return EncoderState(skips, h)

    def decode(self, state: EncoderState, t: torch.Tensor | float | int, *, return_deep: bool = False
               ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Up path from an :class:`EncoderState` with the time embedding of ``t`` → (B, out_channels, H, W).

        ``return_deep=True`` also returns the deep feature DeepCache caches: what enters the finest up level
        before its skip is concatenated (B, channels[1], H, W) — the upsampled output of every deeper block.
        """
        assert state.mid is not None
        h = state.mid
        temb = self.time_embedding(t, h.shape[0], h.device)
        skips = list(state.skips)
        n = len(self.up)
        deep = h
        for j, blocks in enumerate(self.up):
            if j == n - 1:
                deep = h
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, temb)
            if j == 0:
                h = self.up_attn(h)
            if j < n - 1:
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.out_conv(F.silu(self.out_norm(h)))
        return (out, deep) if return_deep else out

    def shallow(self, x_t: torch.Tensor, t: torch.Tensor | float | int, cond: torch.Tensor,
                deep: torch.Tensor) -> torch.Tensor:
        """DeepCache's partial forward: only the outermost (full-resolution) blocks run, with the current (x_t, t);
        the cached ``deep`` feature (from ``decode(…, return_deep=True)`` at a key step) replaces everything deeper.

        Stem → first down level (its skip feature) → concat with ``deep`` → last up level → output conv.
        With ``deep`` computed from the same (x_t, t, cond) this equals ``forward`` exactly.
        """
        if x_t.shape[-2] % self.multiple or x_t.shape[-1] % self.multiple:
            raise ValueError(f"height and width must be multiples of {self.multiple}, got {tuple(x_t.shape[-2:])}")
        temb = self.time_embedding(t, x_t.shape[0], x_t.device)
        h = self.stem(torch.cat([x_t, cond], dim=1))
        for block in self.down[0]:
            h = block(h, temb)
        n = len(self.up)
        if n == 1:  # a one-level UNet: the first level is also the attention level
            h = self.down_attn(h)
        h = torch.cat([deep, h], dim=1)
        for block in self.up[n - 1]:
            h = block(h, temb)
        if n == 1:
            h = self.up_attn(h)
        return self.out_conv(F.silu(self.out_norm(h)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float | int, cond: torch.Tensor) -> torch.Tensor:
        """decode(encode(x_t, t, cond), t)."""
        return self.decode(self.encode(x_t, t, cond), t)
