"""AdaBM applied to a network: chosen convolutions become :class:`QConv2d`, bits follow b = b_base + b_I + b_L.

    qm = AdaBM(edsr, AdaBMConfig(w_bits=4, a_bits=4))      # copies the model; the original stays float
    qm.calibrate(lr_batches)                               # ranges, I2B thresholds, L2B, weight bounds, BaC
    finetune(qm, edsr, lr_patches)                         # L_pix + L_skt + L_bit (adasr.quant.finetune)
    sr = qm(lr); qm.fab(), qm.bitops()

Which layers: by default every Conv2d inside the model's residual blocks (AdaBM quantizes EDSR's body; head,
upsampler and tail stay float — its default without ``--fq``). For the diffusion UNet, :func:`unet_layers` picks every
convolution except the stem and the output conv, and the complexity is read from the condition up(LR) of each tile.

FAB (feature average bit-width, AdaBM's reported "bit") = mean over quantized layers of the activation bit, averaged
over the pixels of each layer's input (so a per-patch bit map counts by area) and over the images of the batch.
BitOPs = Σ_layers MACs × b_w × b_a (float layers at 32 × 32).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn as nn

from ..diffusion.objectives import q_sample
from .bac import bit_aware_clip
from .bitmap import ImageToBit, image_complexity, layer_bits
from .quantizer import CALIBRATION_METHODS, QConv2d, mse_weight_bound


@dataclass(frozen=True)
class AdaBMConfig:
    """Quantization of one model. ``a_bits`` is b_base; I2B / L2B switch the image and layer terms on."""

    w_bits: int | None = 4
    a_bits: int = 4
    image_to_bit: bool = True
    layer_to_bit: bool = True
    img_percentile: float = 10.0
    layer_percentile: float = 30.0
    patch: int | None = 32
    calibration: str = "minmax"
    alpha: float = 0.99
    ema_beta: float = 0.9
    weight_init_steps: int = 50
    bac: bool = True
    bac_steps: int = 100
    bac_beta: float = 0.5
    min_bits: int = 2
    max_bits: int = 8

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        if not self.min_bits <= self.a_bits <= self.max_bits:
            raise ValueError(f"a_bits {self.a_bits} outside [{self.min_bits}, {self.max_bits}]")
        if self.w_bits is not None and self.w_bits < 2:
            raise ValueError(f"w_bits must be ≥ 2 (or None for float weights), got {self.w_bits}")
        if self.patch is not None and self.patch < 1:
            raise ValueError(f"patch must be ≥ 1 or None, got {self.patch}")

    @classmethod
    def fixed(cls, w_bits: int | None, a_bits: int, **kw: Any) -> "AdaBMConfig":
        """Fixed-bit quantization (W{w}A{a}): no I2B, no L2B; the same calibration and clipping."""
        return cls(w_bits=w_bits, a_bits=a_bits, image_to_bit=False, layer_to_bit=False, **kw)

    def with_(self, **changes: Any) -> "AdaBMConfig":
        return replace(self, **changes)

    @property
    def label(self) -> str:
        w = "32" if self.w_bits is None else str(self.w_bits)
        if self.image_to_bit or self.layer_to_bit:
            return f"AdaBM W{w} b_base {self.a_bits}"
        return f"W{w}A{self.a_bits}"


def residual_block_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d layers inside EDSR's residual blocks (``body.k.conv1/conv2``)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n.startswith("body.")]
    if not names:
        raise ValueError("the model has no convolutions under 'body.' (not an EDSR?)")
    return names


def unet_layers(unet: nn.Module) -> list[str]:
    """Every 3×3/1×1 Conv2d of the SR UNet except the first (stem) and the last (output) convolution."""
    names = [n for n, m in unet.named_modules() if isinstance(m, nn.Conv2d)]
    if len(names) < 3:
        raise ValueError("the network has fewer than three convolutions")
    return names[1:-1]


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


class AdaBM(nn.Module):
    """A quantized copy of ``model`` (the original is left untouched).

    ``complexity_input`` picks, from the forward's arguments, the image whose complexity drives I2B (default: the
    first argument, EDSR's LR; for the UNet ``lambda x_t, t, cond: cond``). ``patch`` in the config gives one bit per
    patch×patch region of that image, else one per image.
    """

    def __init__(
        self, model: nn.Module, config: AdaBMConfig | None = None, layers: list[str] | None = None,
        complexity_input: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.config = c = config or AdaBMConfig()
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.layer_names = list(layers) if layers is not None else residual_block_layers(self.model)
        for name in self.layer_names:
            conv = self.model.get_submodule(name)
            if not isinstance(conv, nn.Conv2d):
                raise ValueError(f"{name} is a {type(conv).__name__}, not a Conv2d")
            q = QConv2d(conv, c.w_bits, c.a_bits, calibration=c.calibration, alpha=c.alpha, ema_beta=c.ema_beta,
                        min_bits=c.min_bits, max_bits=c.max_bits)
            q.layer_adaptive = c.layer_to_bit
            _set_module(self.model, name, q)
        self.i2b = ImageToBit(c.img_percentile, c.ema_beta)
        self._complexity_input = complexity_input or (lambda *args, **kw: args[0])
        self.set_mode("fp")

    # ----------------------------------------------------------------------------------------------- plumbing
    def qlayers(self) -> list[QConv2d]:
        return [self.model.get_submodule(n) for n in self.layer_names]  # type: ignore[misc]

    def set_mode(self, mode: str) -> None:
        """``fp`` (float reference), ``calibrate`` (float, recording statistics) or ``quant``."""
        if mode not in ("fp", "calibrate", "quant"):
            raise ValueError(f"mode must be 'fp', 'calibrate' or 'quant', got {mode!r}")
        self.mode = mode
        for q in self.qlayers():
            q.mode = mode  # type: ignore[assignment]

    def image_bits(self, image: torch.Tensor) -> torch.Tensor | None:
        """b_I for an image batch (B, 3, h, w): (B, 1, 1, 1) per image or (B, 1, ⌈h/p⌉, ⌈w/p⌉) per patch; None when
        I2B is off."""
        if not self.config.image_to_bit:
            return None
        c = image_complexity(image, self.config.patch)
        b = self.i2b(c)
        return b.view(-1, 1, 1, 1) if b.dim() == 1 else b

    def forward(self, *args: Any, **kw: Any) -> torch.Tensor:
        if self.mode == "quant":
            bits = self.image_bits(self._complexity_input(*args, **kw))
            for q in self.qlayers():
                q.image_bits = bits
        elif self.mode == "calibrate" and self.config.image_to_bit:
            self.i2b.calibrate(image_complexity(self._complexity_input(*args, **kw), self.config.patch))
        return self.model(*args, **kw)

    # ----------------------------------------------------------------------------------------------- calibration
    @torch.no_grad()
    def calibrate(self, batches: Iterable[tuple[Any, ...] | torch.Tensor]) -> dict[str, Any]:
        """Calibrate on float forwards of ``batches`` (tensors or argument tuples), then switch to ``quant``:

        1. activation ranges (config.calibration, EMA over batches), layer sensitivities, I2B thresholds;
        2. weight bounds by MSE search at w_bits;
        3. L2B bits from the sensitivity percentiles (when on);
        4. bit-aware clipping at b_base + b_L (when on).
        Returns a summary (sensitivities, layer bits, I2B thresholds, ranges)."""
        c = self.config
        for q in self.qlayers():
            q.reset_statistics()
        self.i2b.calib_batches = 0
        self.set_mode("calibrate")
        n = 0
        for batch in batches:
            args = batch if isinstance(batch, tuple) else (batch,)
            self(*args)
            n += 1
        if n == 0:
            raise ValueError("calibration needs at least one batch")
        layers = self.qlayers()
        for q in layers:
            if q.w_bits is not None:
                q.upper_w.fill_(mse_weight_bound(q.weight, q.w_bits, steps=c.weight_init_steps))
        sens = [q.sensitivity for q in layers]
        bl = layer_bits(sens, c.layer_percentile) if c.layer_to_bit and len(layers) > 1 else [0] * len(layers)
        for q, b in zip(layers, bl):
            q.layer_measure.fill_(float(b))
        if c.bac:
            for q in layers:
                bit_aware_clip(q, c.bac_steps, c.bac_beta)
        self.set_mode("quant")
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Per-layer sensitivity, b_L, bounds; I2B thresholds."""
        layers = self.qlayers()
        return {
            "layers": self.layer_names,
            "sensitivity": [q.sensitivity if q.sensitivity_count else None for q in layers],
            "layer_bits": [int(q.layer_bit().item()) for q in layers],
            "lower_a": [q.lower_a.item() for q in layers],
            "upper_a": [q.upper_a.item() for q in layers],
            "upper_w": [q.upper_w.item() for q in layers],
            "i2b_thresholds": (self.i2b.lower.item(), self.i2b.upper.item()) if self.config.image_to_bit else None,
        }

    @torch.no_grad()
    def isolated_layer_errors(self, *args: Any, bits: int | None = None) -> list[float]:
        """Output MSE against the float model when **only** layer k is quantized (activations at ``bits``, default
        b_base − 1; weights at w_bits), for every k: a direct measurement of each layer's sensitivity, to check the
        std-of-inputs proxy L2B uses. Needs a calibrated model; restores the mode afterwards."""
        if self.mode != "quant":
            raise RuntimeError("calibrate the model first")
        layers = self.qlayers()
        saved = [(q.a_bits, q.layer_adaptive) for q in layers]
        b = self.config.a_bits - 1 if bits is None else bits
        self.set_mode("fp")
        ref = self.model(*args)
        errors = []
        try:
            for q in layers:
                q.mode, q.a_bits, q.layer_adaptive, q.image_bits = "quant", b, False, None
                errors.append(float((self.model(*args) - ref).pow(2).mean()))
                q.mode = "fp"
        finally:
            for q, (a, la) in zip(layers, saved):
                q.a_bits, q.layer_adaptive = a, la
            self.set_mode("quant")
        return errors

    # ----------------------------------------------------------------------------------------------- cost
    def fab_per_image(self) -> torch.Tensor:
        """(B,) feature average bit-width of the last quantized forward (differentiable, for L_bit)."""
        per_layer = []
        for q in self.qlayers():
            if q.last_bits is None:
                raise RuntimeError("no quantized forward yet: call the model in 'quant' mode first")
            per_layer.append(q.last_bits.flatten(1).mean(1))
        return torch.stack(per_layer).mean(0)

    def fab(self) -> float:
        """FAB of the last quantized forward, averaged over its images."""
        return self.fab_per_image().mean().item()

    def bitops(self, *args: Any) -> dict[str, float]:
        """BitOPs of one forward on ``args`` (in the current mode): quantized layers MACs·b_w·b_a (b_a averaged
        over pixels), every other conv/linear MACs·32·32. Returns, per image, {"bitops", "macs", "bitops_fp32"} and the
        quantized layers' share {"bitops_quantized", "macs_quantized"}."""
        from torch.utils.flop_counter import FlopCounterMode

        qset = set(self.qlayers())
        shapes: dict[QConv2d, tuple[int, ...]] = {}
        hooks = [q.register_forward_pre_hook(lambda m, inp: shapes.__setitem__(m, tuple(inp[0].shape)))
                 for q in qset]
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            self(*args)
        for h in hooks:
            h.remove()
        B = next(a for a in args if isinstance(a, torch.Tensor)).shape[0]
        total_macs = fc.get_total_flops() / 2
        q_macs, q_bitops = 0.0, 0.0
        for q, shape in shapes.items():
            m = q.macs(shape)
            quant = self.mode == "quant" and q.last_bits is not None
            wb = q.w_bits if quant and q.w_bits is not None else 32
            ab = q.last_bits.float().mean().item() if quant else 32.0
            q_macs += m
            q_bitops += m * wb * ab
        other = total_macs - q_macs
        return {"macs": total_macs / B, "bitops": (q_bitops + other * 32 * 32) / B,
                "bitops_fp32": total_macs * 32 * 32 / B, "macs_quantized": q_macs / B,
                "bitops_quantized": q_bitops / B}


def quantize_diffusion(model: nn.Module, config: AdaBMConfig) -> tuple[nn.Module, AdaBM]:
    """A copy of an :class:`~adasr.srmodel.SRDiffusion` whose UNet is an :class:`AdaBM` wrapper over
    :func:`unet_layers`; I2B reads each tile's condition up(LR) (one bit offset per tile: the tile sampler's batch
    is the patch grid). Returns (model copy for the samplers, the wrapper to calibrate)."""
    from ..srmodel import SRDiffusion

    if not isinstance(model, SRDiffusion):
        raise TypeError(f"expected an SRDiffusion model, got {type(model).__name__}")
    qm = AdaBM(model.unet, config.with_(patch=None), layers=unet_layers(model.unet),
               complexity_input=lambda x_t, t, cond: cond)
    qm.multiple = model.unet.multiple  # what the tile samplers read from model.unet
    out = SRDiffusion(model.config)
    out.unet = qm  # type: ignore[assignment]
    return out.eval(), qm


@torch.no_grad()
def diffusion_calibration_batches(
    model: nn.Module, hr: torch.Tensor, timesteps: list[int], batch_size: int = 8, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """UNet inputs (x_t, t, up(LR)) for calibration: each HR crop (N, 3, H, W) noised to each of ``timesteps``
    (pass the sampler's own schedule, e.g. ``UniformDDIM(steps).timesteps(T)``), so the activation ranges cover
    every noise level the sampler visits.

    x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (:func:`~adasr.diffusion.objectives.q_sample`), x0 the model's target for
    (HR, up(LR)), ε ~ N(0, I) from a generator seeded with ``seed``. Returns the N·len(timesteps) triples shuffled,
    in batches of ``batch_size``: x_t (b, 3, H, W), t (b,), up(LR) (b, 3, H, W)."""
    from ..data import make_pair

    gen = torch.Generator().manual_seed(seed)
    _, up = make_pair(hr, model.config.scale)
    x0 = model.target(hr, up)
    xs, ts, cs = [], [], []
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=gen)
        xs.append(q_sample(x0, noise, model.alphas_cumprod[int(t)]))
        ts.append(torch.full((hr.shape[0],), int(t)))
        cs.append(up)
    x, t, c = torch.cat(xs), torch.cat(ts), torch.cat(cs)
    perm = torch.randperm(x.shape[0], generator=gen)
    x, t, c = x[perm], t[perm], c[perm]
    return [(x[i:i + batch_size], t[i:i + batch_size], c[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
