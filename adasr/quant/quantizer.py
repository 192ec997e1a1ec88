"""AdaBM's quantizers: asymmetric uniform activations with learnable bounds, symmetric weights, straight-through rounding.

Activation (asymmetric, bounds l < u, b bits; AdaBM ``QConv2d.quant_act``)::

    x_q = round((clip(x, l, u) − l) / (u − l) · (2^b − 1)) / (2^b − 1) · (u − l) + l

Weight (symmetric, bound u_w, b_w bits)::

    w_q = round(clip(w, −u_w, u_w) / u_w · (2^(b_w−1) − 1)) / (2^(b_w−1) − 1) · u_w

``round`` is the straight-through estimator (forward: round; backward: identity), so gradients reach x, l, u, u_w and
— through the 2^b − 1 factor — the bit width b itself. This is **fake quantization** (values on the integer grid,
stored and computed in float): it measures accuracy, not speed. The real integer path is :mod:`adasr.quant.int8`.

Bit widths may be a tensor that broadcasts against x, (B, 1, 1, 1) for one width per image or (B, 1, H, W) for one
per pixel (a per-patch bit map); :class:`QConv2d` resizes a map to the layer's input with nearest neighbours.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

CalibrationMethod = Literal["minmax", "percentile", "mse"]
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "percentile", "mse")
#: Values of the last calibration batch a layer keeps (seeded random draws) for bit-aware clipping's MSE search.
SAMPLE_SIZE = 1 << 16


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward: x + (round(x) − x).detach()."""
    return x + (torch.round(x) - x).detach()


def _levels(bits: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(bits, dtype=like.dtype, device=like.device)


def quantize_activation(
    x: torch.Tensor, lower: torch.Tensor | float, upper: torch.Tensor | float, bits: torch.Tensor | float
) -> torch.Tensor:
    """Asymmetric uniform fake quantization of x (any shape) to 2^b levels spanning [l, u] (equation above).

    ``bits`` broadcasts against x and may be fractional only inside a gradient (it is rounded by the caller)."""
    lower = torch.as_tensor(lower, dtype=x.dtype, device=x.device)
    upper = torch.as_tensor(upper, dtype=x.dtype, device=x.device)
    n = 2 ** _levels(bits, x) - 1
    span = (upper - lower).clamp_min(1e-8)
    xc = torch.minimum(torch.maximum(x, lower), upper)
    return round_ste((xc - lower) / span * n) / n * span + lower


def quantize_weight(w: torch.Tensor, upper: torch.Tensor | float, bits: int) -> torch.Tensor:
    """Symmetric uniform fake quantization of w to the 2^(b−1) − 1 positive levels of [−u_w, u_w] (equation above)."""
    if bits < 2:
        raise ValueError(f"symmetric weight quantization needs at least 2 bits, got {bits}")
    upper = torch.as_tensor(upper, dtype=w.dtype, device=w.device).abs().clamp_min(1e-8)
    n = 2 ** (bits - 1) - 1
    wc = torch.minimum(torch.maximum(w, -upper), upper)
    return round_ste(wc / upper * n) / n * upper


def minmax_range(x: torch.Tensor) -> tuple[float, float]:
    """(min, max) of x."""
    return float(x.min()), float(x.max())


def percentile_range(x: torch.Tensor, alpha: float = 0.99) -> tuple[float, float]:
    """(quantile 1 − α, quantile α) of x (AdaBM's ``percentile`` init, α = 0.99); subsampled above 2^24 values."""
    if not 0.5 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0.5, 1], got {alpha}")
    flat = x.detach().flatten().float()
    if flat.numel() > 1 << 24:
        flat = flat[torch.linspace(0, flat.numel() - 1, 1 << 24).long()]
    q = torch.quantile(flat, torch.tensor([1 - alpha, alpha], dtype=flat.dtype))
    return float(q[0]), float(q[1])


def mse_range(
    x: torch.Tensor, bits: float, lower: float | None = None, upper: float | None = None, steps: int = 90,
    shrink: float = 0.01,
) -> tuple[float, float]:
    """Clipping range minimising ‖Q_b(x; l', u') − x‖² over the grid l' = (1 − i·shrink)·l, u' = (1 − i·shrink)·u,
    i = 0..steps−1, starting from [l, u] (default: min/max of x). AdaBM's ``omse`` init (90 steps of 1 %) and, with
    100 steps at a layer's actual bit, its bit-aware clipping."""
    x = x.detach().float()
    lo, hi = minmax_range(x) if lower is None or upper is None else (lower, upper)
    best, best_err = (lo, hi), float("inf")
    for i in range(steps):
        f = 1 - i * shrink
        if f <= 0:
            break
        l, u = lo * f, hi * f
        if u - l <= 1e-8:
            break
        err = float((quantize_activation(x, l, u, bits) - x).pow(2).mean())
        if err < best_err:
            best, best_err = (l, u), err
    return best


def mse_weight_bound(w: torch.Tensor, bits: int, steps: int = 50, shrink: float = 0.01) -> float:
    """Symmetric weight bound u_w = (1 − i·shrink)·max|w| minimising ‖Q_b(w) − w‖² (AdaBM: ``omse``, 50 steps)."""
    w = w.detach().float()
    top = float(w.abs().max())
    best, best_err = top, float("inf")
    for i in range(steps):
        u = top * (1 - i * shrink)
        if u <= 0:
            break
        err = float((quantize_weight(w, u, bits) - w).pow(2).mean())
        if err < best_err:
            best, best_err = u, err
    return best


def calibration_range(
    x: torch.Tensor, method: str, bits: float = 8, alpha: float = 0.99
) -> tuple[float, float]:
    """Initial [l, u] of an activation tensor by ``minmax``, ``percentile`` (α) or ``mse`` (grid search at ``bits``)."""
    if method == "minmax":
        return minmax_range(x)
    if method == "percentile":
        return percentile_range(x, alpha)
    if method == "mse":
        return mse_range(x, bits)
    raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")


class QConv2d(nn.Module):
    """A Conv2d whose input activation and weight are fake-quantized (AdaBM's ``QConv2d``).

    Parameters: the conv's ``weight``/``bias``; ``lower_a``/``upper_a`` (activation bounds), ``upper_w`` (weight
    bound), ``layer_measure`` (b_L before rounding; :mod:`adasr.quant.bitmap`). Plain attributes: ``w_bits`` (fixed),
    ``a_bits`` (b_base), ``image_bits`` (b_I for the current forward: None, a (B, 1, 1, 1) tensor or a (B, 1, h, w)
    map), ``mode``:

    * ``"fp"`` — the float conv (teacher / reference);
    * ``"calibrate"`` — float conv that records its input: range (``calibration`` method, EMA β across batches),
      sensitivity (mean over images of std(x_b), the L2B statistic) and up to ``SAMPLE_SIZE`` values drawn
      (seeded) from the last batch (for bit-aware clipping; the ``mse`` search also runs on them);
    * ``"quant"`` — quantize input at b = a_bits + b_I + b_L (clamped to [min_bits, max_bits]) and weight at w_bits.

    ``w_bits=None`` keeps weights in float; ``last_bits`` holds the per-element bit width used by the last forward
    (broadcast shape), for FAB.
    """

    def __init__(
        self, conv: nn.Conv2d, w_bits: int | None = 4, a_bits: int = 4, *, calibration: str = "minmax",
        alpha: float = 0.99, ema_beta: float = 0.9, min_bits: int = 2, max_bits: int = 8,
    ) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError("QConv2d supports groups=1 convolutions only")
        if calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {calibration!r}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = (
            conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        self.padding_mode = conv.padding_mode
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None
        self.lower_a = nn.Parameter(torch.tensor(0.0))
        self.upper_a = nn.Parameter(torch.tensor(1.0))
        self.upper_w = nn.Parameter(torch.tensor(float(conv.weight.detach().abs().max())))
        self.layer_measure = nn.Parameter(torch.tensor(0.0))
        self.w_bits, self.a_bits = w_bits, a_bits
        self.calibration, self.alpha, self.ema_beta = calibration, alpha, ema_beta
        self.min_bits, self.max_bits = min_bits, max_bits
        self.mode: Literal["fp", "calibrate", "quant"] = "fp"
        self.image_bits: torch.Tensor | None = None
        self.layer_adaptive = True
        self.last_bits: torch.Tensor | None = None
        self.reset_statistics()

    def reset_statistics(self) -> None:
        self.calib_batches = 0
        self.sensitivity_sum = 0.0
        self.sensitivity_count = 0
        self.sample: torch.Tensor | None = None

    @property
    def sensitivity(self) -> float:
        """Mean over calibration images of std(x_b) of the layer input (AdaBM's layer-to-bit statistic)."""
        if self.sensitivity_count == 0:
            raise RuntimeError("no calibration data seen: run the model in 'calibrate' mode first")
        return self.sensitivity_sum / self.sensitivity_count

    def layer_bit(self) -> torch.Tensor:
        """b_L = round(clip(m, −1, 1)) forward, gradient of tanh(m) backward (AdaBM's STE for ``measure_layer``)."""
        m = self.layer_measure
        if not self.layer_adaptive:
            return torch.zeros((), dtype=m.dtype, device=m.device)
        soft = torch.tanh(m)
        return soft + (torch.round(m.clamp(-1, 1)) - soft).detach()

    def base_bits(self) -> torch.Tensor:
        """b_base + b_L (the layer's bit before the image term): the bit bit-aware clipping searches at."""
        return self.a_bits + self.layer_bit()

    def bits_for(self, x: torch.Tensor) -> torch.Tensor:
        """b = b_base + b_I + b_L for input x (B, C, H, W): a scalar, (B, 1, 1, 1) or (B, 1, H, W) tensor."""
        b = self.base_bits()
        if self.image_bits is not None:
            ib = self.image_bits.to(x.dtype)
            if ib.dim() == 4 and ib.shape[-2:] != x.shape[-2:] and ib.shape[-2:] != (1, 1):
                ib = F.interpolate(ib, size=x.shape[-2:], mode="nearest")
            b = b + ib
        hard = b.detach().clamp(self.min_bits, self.max_bits)
        return b + (hard - b.detach())

    def _record(self, x: torch.Tensor) -> None:
        xd = x.detach()
        flat = xd.flatten()
        if flat.numel() > SAMPLE_SIZE:
            gen = torch.Generator().manual_seed(self.calib_batches)
            idx = torch.randint(0, flat.numel(), (SAMPLE_SIZE,), generator=gen)
            flat = flat[idx.to(flat.device)]
        if self.calibration == "mse":  # grid search on the sample, starting from the full tensor's range
            lo, hi = mse_range(flat, self.a_bits, *minmax_range(xd))
        else:
            lo, hi = calibration_range(xd, self.calibration, self.a_bits, self.alpha)
        with torch.no_grad():
            if self.calib_batches == 0:
                self.lower_a.fill_(lo)
                self.upper_a.fill_(hi)
            else:
                self.lower_a.mul_(self.ema_beta).add_((1 - self.ema_beta) * lo)
                self.upper_a.mul_(self.ema_beta).add_((1 - self.ema_beta) * hi)
        self.calib_batches += 1
        per_image = xd.flatten(1).float().std(dim=1)
        self.sensitivity_sum += float(per_image.sum())
        self.sensitivity_count += per_image.numel()
        self.sample = flat.clone()

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("QConv2d supports zero padding only")
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "fp":
            return self._conv(x, self.weight)
        if self.mode == "calibrate":
            self._record(x)
            return self._conv(x, self.weight)
        bits = self.bits_for(x)
        self.last_bits = bits if bits.dim() == 4 else bits.expand(x.shape[0], 1, 1, 1)
        xq = quantize_activation(x, self.lower_a, self.upper_a, bits)
        w = self.weight if self.w_bits is None else quantize_weight(self.weight, self.upper_w, self.w_bits)
        return self._conv(xq, w)

    def macs(self, x_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates for an input of shape (B, C, H, W) (same spatial size out for stride 1)."""
        B, _, H, W = x_shape
        Ho = (H + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        Wo = (W + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        return B * Ho * Wo * self.out_channels * self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, w_bits={self.w_bits}, "
                f"a_bits={self.a_bits}, mode={self.mode}")
