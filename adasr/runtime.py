"""Device, precision, threads and seeds: the run-time choices every entry point shares (no global state is kept)."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Callable, ContextManager, Iterator, Literal, TypeVar

import numpy as np
import torch

from .config import MAX_SEED

T = TypeVar("T")

Precision = Literal["auto", "fp32", "bf16"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` → CUDA when ``torch.cuda.is_available()``, else CPU; otherwise the named device.

    Raises ValueError with a readable message for an unknown or unavailable device.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"unknown device {device!r} (use 'cpu', 'cuda', 'cuda:N' or 'auto')") from exc
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, meta, … : torch knows them, adasr is not built or tested there
        raise ValueError(f"device {str(device)!r} is not supported: adasr runs on 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return dev


#: ONEDNN_MAX_CPU_ISA values that keep oneDNN off its bf16 kernels (AVX512-BF16 and AMX), whatever the hardware
_ONEDNN_NO_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def bf16_supported(device: torch.device) -> bool:
    """True when bf16 matrix work is fast on ``device``: CUDA with bf16, or a CPU with AVX512-BF16 or AMX whose
    kernels are not switched off. ``ATEN_CPU_CAPABILITY=avx2`` (ATen capped below AVX512) or an
    ``ONEDNN_MAX_CPU_ISA`` without bf16 — the way to emulate an AVX2-only CPU — make bf16 emulated and slow, so
    they count as unsupported and ``auto`` runs fp32, as it does on such a CPU."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
        if isa in _ONEDNN_NO_BF16 or torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "NO AVX", "AVX2"):
            return False
        cpu = torch.cpu
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            fn = getattr(cpu, probe, None)
            if fn is not None and fn():
                return True
    return False


#: the environment variable that sets the default precision of ``setup()``, ``upscale`` and the CLI
PRECISION_ENV = "ADASR_PRECISION"


def default_precision(fallback: Precision = "auto") -> Precision:
    """The precision used when none is given: ``$ADASR_PRECISION`` (``auto``, ``fp32`` or ``bf16``) when it is set
    and not empty, else ``fallback``. Raises ValueError naming the variable for any other value."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if not value:
        return fallback
    if value not in ("auto", "fp32", "bf16"):
        raise ValueError(f"{PRECISION_ENV} must be auto, fp32 or bf16, got {os.environ[PRECISION_ENV]!r}")
    return value  # type: ignore[return-value]


def resolve_precision(precision: Precision | str | None, device: torch.device) -> Literal["fp32", "bf16"]:
    """``auto`` → bf16 where :func:`bf16_supported`, else fp32. Explicit values are kept (bf16 may then be slow).
    ``None`` → :func:`default_precision` (``$ADASR_PRECISION``, else ``auto``)."""
    if precision is None:
        precision = default_precision()
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision  # type: ignore[return-value]


def channels_last_preferred(device: torch.device, precision: Literal["fp32", "bf16"]) -> bool:
    """Whether convolutions run faster in channels_last (NHWC) than in NCHW for inference on ``device``.

    On the CPU oneDNN's NHWC convolutions win in fp32 as well as in bf16 (UNet forward, batch 16 of 64×64, 2 threads:
    676 → 456 ms fp32 on an AVX2 EPYC; 146 → 70 ms bf16 on an AMX Xeon, environment-facts.md). On CUDA only the
    bf16 tensor-core kernels prefer it."""
    return device.type == "cpu" or precision == "bf16"


def prepare_for_inference(model: torch.nn.Module, device: torch.device,
                          precision: Literal["fp32", "bf16"]) -> torch.nn.Module:
    """``model`` on ``device`` in eval mode, in channels_last where :func:`channels_last_preferred` (the sampler
    then feeds it NHWC inputs, see :func:`is_channels_last`)."""
    model = model.to(device).eval()
    if channels_last_preferred(device, precision):
        model = model.to(memory_format=torch.channels_last)
    return model


def is_channels_last(model: torch.nn.Module) -> bool:
    """True when the first 4-d parameter of ``model`` (a conv weight) is stored channels_last."""
    for p in model.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


@contextlib.contextmanager
def autocast(device: torch.device, precision: Literal["fp32", "bf16"]) -> Iterator[None]:
    """``torch.autocast`` to bf16 when ``precision == 'bf16'``, a no-op for fp32."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


@contextlib.contextmanager
def deterministic_kernels(enabled: bool = True) -> Iterator[None]:
    """Within the block, results that do not depend on how many CPU threads the process uses: PyTorch computes
    with one intra-op thread (``enabled=False``: a no-op). The previous thread count is restored on exit.

    Measured on PyTorch 2.13 (CPU, fp32): kernels split their sums between threads, so the summation order depends
    on the thread count — oneDNN's 1×1 convolution, GroupNorm on channels_last tensors, and the BLAS matrix-vector
    product of the time-embedding MLP (even with oneDNN off and NCHW tensors, 1 and 3 threads differ there). The
    differences are about 1e-6 and now and then flip one level of an 8-bit pixel; in bf16, one level in about 1 %
    of the pixels. One thread is the only setting with one summation order whatever the machine's thread count;
    it costs the speed-up of the other cores (measured in the README). On CUDA, cuDNN is also set deterministic
    (no autotuning) for the block."""
    if not enabled:
        yield
        return
    threads, cudnn_det, cudnn_bench = (torch.get_num_threads(), torch.backends.cudnn.deterministic,
                                       torch.backends.cudnn.benchmark)
    torch.set_num_threads(1)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench


def each_step_within(iterator: Iterator[T], context: Callable[[], ContextManager[Any]]) -> Iterator[T]:
    """Yield the items of ``iterator``, computing each one inside a fresh ``context()``: a context that changes
    process-wide settings (:func:`deterministic_kernels`) is active while the generator works and not while the
    caller holds an item."""
    while True:
        with context():
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``, a whole number in 0 … 2**64 − 1
    (:data:`adasr.config.MAX_SEED`, the range ``torch.Generator.manual_seed`` takes; ValueError naming
    ``seed`` otherwise: torch's own message is "Overflow when unpacking long long")."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0 … 2**64 - 1, got {seed}")
    return torch.Generator().manual_seed(int(seed))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (library code itself always uses explicit generators)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_threads() -> int:
    """``ADASR_THREADS`` if set, else ``OMP_NUM_THREADS``, else the number of CPUs this process may use."""
    for var in ("ADASR_THREADS", "OMP_NUM_THREADS"):
        env = os.environ.get(var, "").strip()
        if env.isdigit() and int(env) > 0:
            return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
