"""Shared fixtures of the unit tests: a tiny random SR diffusion model and single-threaded torch for it."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from adasr.models.unet import UNetConfig
from adasr.srmodel import SRDiffusion, SRDiffusionConfig

#: A UNet small enough to sample 32×32 images in milliseconds (random weights: tests check mechanics, not quality).
TINY_UNET = UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)


@pytest.fixture(scope="module")
def one_thread():
    """Small convolutions are far faster on one thread (no OpenMP spinning on a shared 2-core CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def make_tiny_model() -> Callable[..., SRDiffusion]:
    """``make_tiny_model(tile=None, **config)`` → a seeded tiny :class:`SRDiffusion` in eval mode.

    With ``tile``, the sampler's MAC count for (tile, tile) tiles is pre-filled (it costs a real forward pass and
    is tested in test_sampler.py and test_denoiser.py); ``config`` overrides :class:`SRDiffusionConfig` fields (residual, scale…).
    """

    def make(tile: int | None = None, **config) -> SRDiffusion:
        torch.manual_seed(0)
        m = SRDiffusion(SRDiffusionConfig(unet=TINY_UNET, **config)).eval()
        if tile is not None:
            m.unet.__dict__["_macs_per_mode"] = {((tile, tile), "full"): 1}  # Denoiser.macs's table
        return m

    return make


def fake_preset_schedules() -> dict:
    """Every preset name as one power family (t_end 20, ρ 2) with η = 0.1·N for N = 1 … 4 (η 0.4 beyond): tests of
    the benchmarks' plumbing use it instead of the shipped ``schedules.json``."""
    from adasr.diffusion.timesteps import SCHEDULE_PRESETS, PowerSchedule, PresetSchedule

    pts = {n: {"family": "power", "params": {"t_end": 20, "rho": 2.0}, "eta": round(0.1 * n, 1),
               "timesteps": PowerSchedule(20, 2.0).timesteps(n)} for n in range(1, 5)}
    return {name: PresetSchedule(name, pts) for name in SCHEDULE_PRESETS}


@pytest.fixture
def fake_presets(monkeypatch):
    """The preset names resolve to :func:`fake_preset_schedules` (what get_schedule loads)."""
    from adasr import registry

    presets = fake_preset_schedules()
    monkeypatch.setattr(registry, "load_schedule_presets", lambda *a, **k: presets)
    return presets


@pytest.fixture
def signals_not_ignored():
    """SIGINT, SIGTERM and SIGHUP with their default handlers while a test delivers them to this process, when the
    runner was started ignoring them (``nohup`` ignores SIGHUP, a background shell SIGINT: adasr keeps a signal
    its parent ignored ignored, by design); the runner's settings come back afterwards."""
    import signal

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                signal.SIGHUP: signal.SIG_DFL}
    before = {s: signal.getsignal(s) for s in defaults}
    for s, handler in defaults.items():
        if before[s] is signal.SIG_IGN:
            signal.signal(s, handler)
    yield
    for s, handler in before.items():
        signal.signal(s, handler)
