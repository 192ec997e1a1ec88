"""A real int8 EDSR on the CPU: ``torch.ao.quantization`` eager-mode static quantization (W8A8, integer kernels).

Unlike :mod:`adasr.quant.quantizer` (fake quantization, float arithmetic, for accuracy studies), the converted
network stores int8 weights and runs quantized convolutions (oneDNN / FBGEMM kernels; on CPUs with AMX-int8 or
VNNI that is where the speed-up comes from). Steps: copy → fuse conv1+ReLU in each residual block → attach the
engine's default qconfig (per-channel symmetric weights, histogram-observed asymmetric uint8 activations) →
``prepare`` → run calibration LR images → ``convert``. The residual adds are EDSR's ``FloatFunctional``s, which
convert to quantized adds; ``QuantStub``/``DeQuantStub`` become the float↔int8 boundary.

Only fixed 8-bit is real here: PyTorch's CPU kernels have no 2–6-bit or per-pixel-bit convolution, so AdaBM's
adaptive bits are measured by fake quantization (and counted in FAB / BitOPs).

The quantized engine is a process-wide setting in PyTorch; :class:`Int8EDSR` sets it around each call and puts the
previous one back.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterable, Iterator

import torch
import torch.nn as nn

from ..models.edsr import EDSR

ENGINES = ("x86", "onednn", "fbgemm", "qnnpack")


def default_engine() -> str:
    """x86 where available (it dispatches to oneDNN or FBGEMM per layer), else the first supported engine."""
    supported = torch.backends.quantized.supported_engines
    for e in ENGINES:
        if e in supported:
            return e
    raise RuntimeError(f"no int8 engine in this torch build (supported: {supported})")


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Set ``torch.backends.quantized.engine`` for the block, restoring the previous engine afterwards."""
    if engine not in torch.backends.quantized.supported_engines:
        raise ValueError(f"engine {engine!r} is not supported here: {torch.backends.quantized.supported_engines}")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class Int8EDSR(nn.Module):
    """A converted int8 EDSR plus the engine it was built for. Input/output: float LR (B, 3, h, w) → SR."""

    def __init__(self, net: nn.Module, engine: str) -> None:
        super().__init__()
        self.net, self.engine = net, engine

    @torch.no_grad()
    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        with quantized_engine(self.engine):
            return self.net(lr)


@torch.no_grad()
def quantize_int8(model: EDSR, calibration: Iterable[torch.Tensor], engine: str | None = None) -> Int8EDSR:
    """Static int8 quantization of a float EDSR (left untouched), calibrated on LR batches (B, 3, h, w)."""
    from torch.ao.quantization import convert, fuse_modules, get_default_qconfig, prepare

    engine = engine or default_engine()
    m = copy.deepcopy(model).cpu().eval()
    with quantized_engine(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao eager mode announces its deprecation in favour of PT2E
        for block in m.body:
            fuse_modules(block, [["conv1", "relu"]], inplace=True)
        m.qconfig = get_default_qconfig(engine)
        prepare(m, inplace=True)
        n = 0
        for x in calibration:
            m(x.cpu())
            n += 1
        if n == 0:
            raise ValueError("int8 calibration needs at least one batch")
        convert(m, inplace=True)
    return Int8EDSR(m, engine)
