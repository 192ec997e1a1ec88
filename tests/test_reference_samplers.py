"""Whole-image reference samplers (DDPM, DDIM, PF-ODE) on a tiny random SR model: shapes, NFE, parity, seeds."""

from __future__ import annotations

import pytest
import torch

from adasr.diffusion.schedulers import DDPMScheduler
from adasr.models.unet import UNetConfig
from adasr.sampling.loop import sample_tiles
from adasr.sampling.policies import UniformDDIM
from adasr.sampling.reference import ReferenceSample, initial_noise, sample_ddim, sample_ddpm, sample_pf_ode
from adasr.srmodel import SRDiffusion, SRDiffusionConfig

TINY = UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)


def _model(**changes) -> SRDiffusion:
    torch.manual_seed(0)
    return SRDiffusion(SRDiffusionConfig(unet=TINY, **changes)).eval()


@pytest.fixture(scope="module")
def model() -> SRDiffusion:
    return _model()


@pytest.fixture(scope="module")
def cond() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


class CountCalls:
    """Counts UNet forward calls through a forward hook (independent of what the samplers report)."""

    def __init__(self, model: SRDiffusion) -> None:
        self.calls = 0
        self.timesteps: list[torch.Tensor] = []
        self.handle = model.unet.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.calls += 1
        t = torch.as_tensor(args[1]).detach().reshape(-1)
        assert (t == t[0]).all()  # every batch entry sits at the same timestep
        self.timesteps.append(t[0].clone())

    def __enter__(self) -> "CountCalls":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_ddim_and_ddpm_shapes_and_nfe(model, cond, steps):
    for sampler in (sample_ddim, sample_ddpm):
        with CountCalls(model) as counter:
            res = sampler(model, cond, steps, seed=0)
        assert isinstance(res, ReferenceSample)
        image, nfe = res  # unpacks as a tuple
        assert image.shape == cond.shape and image.dtype == torch.float32
        assert float(image.min()) >= -1 and float(image.max()) <= 1
        assert nfe == steps == counter.calls, sampler.__name__


def test_visited_timesteps_are_linspace(model, cond):
    with CountCalls(model) as counter:
        sample_ddim(model, cond, 10)
    assert [int(t) for t in counter.timesteps] == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    with CountCalls(model) as counter:
        sample_ddpm(model, cond, 4)
    assert [int(t) for t in counter.timesteps] == [999, 666, 333, 0]
    for sampler in (sample_ddim, sample_ddpm):  # one step starts where the noise is, not at t = 0
        with CountCalls(model) as counter:
            sampler(model, cond, 1)
        assert [int(t) for t in counter.timesteps] == [999], sampler.__name__


def test_ddim_equals_tile_sampler_on_one_tile(model):
    """A 32×32 image is one tile: the whole-image DDIM loop is the tile-batch sampler with a batch of one."""
    cond = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for eta in (0.0, 0.5):
        res = sample_tiles(model, cond, policy=UniformDDIM(5), tile=64, overlap=16, seed=4, eta=eta)
        assert len(res.grid) == 1 and res.cost.unet_calls == 5
        ref = sample_ddim(model, cond, 5, seed=4, eta=eta)
        assert ref.nfe == res.cost.tile_evaluations
        torch.testing.assert_close(ref.image, model.output(res.x0, cond), atol=1e-5, rtol=0)


def test_ddpm_matches_scheduler_loop_with_full_chain_semantics(model):
    """DDPM here is the textbook DDPMScheduler loop (linspace spacing, noise from the x_T generator)."""
    cond = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    c = model.config
    sched = DDPMScheduler.from_schedule(c.schedule, prediction_type=c.prediction_type, timestep_spacing="linspace")
    sched.set_timesteps(6)
    x, g = initial_noise(cond, 5)
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(model.unet(x, int(t), cond), int(t), x, generator=g).prev_sample
    torch.testing.assert_close(sample_ddpm(model, cond, 6, seed=5).image, model.output(x, cond), atol=1e-6, rtol=0)


def test_determinism_per_seed(model, cond):
    for sampler, kwargs in ((sample_ddpm, {"steps": 4}), (sample_ddim, {"steps": 4, "eta": 1.0})):
        a = sampler(model, cond, seed=7, **kwargs).image
        b = sampler(model, cond, seed=7, **kwargs).image
        c = sampler(model, cond, seed=8, **kwargs).image
        assert torch.equal(a, b), sampler.__name__
        assert not torch.equal(a, c), sampler.__name__


def test_ddpm_is_stochastic_ddim_eta0_is_not(model, cond):
    """Same x_T, different re-injected noise: DDPM depends on the draws after x_T, DDIM (η = 0) does not."""
    x_T, _ = initial_noise(cond, 0)
    g_other = torch.Generator().manual_seed(123)
    c = model.config
    sched = DDPMScheduler.from_schedule(c.schedule, prediction_type=c.prediction_type, timestep_spacing="linspace")
    sched.set_timesteps(4)
    x = x_T.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(model.unet(x, int(t), cond), int(t), x, generator=g_other).prev_sample
    assert not torch.allclose(model.output(x, cond), sample_ddpm(model, cond, 4, seed=0).image)


def test_pf_ode_nfe_is_the_reported_count(model, cond):
    with CountCalls(model) as counter:
        loose = sample_pf_ode(model, cond, seed=0, rtol=1e-1, atol=1e-1)
    assert loose.image.shape == cond.shape
    assert float(loose.image.min()) >= -1 and float(loose.image.max()) <= 1
    assert loose.nfe == counter.calls > 0
    # fractional timesteps t = s·T − 1, from s = 1 (t = 999) down to s_end = 1e−3 (t = 0)
    ts = torch.cat([t.flatten() for t in counter.timesteps])
    assert ts.dtype == torch.float32 and abs(float(ts[0]) - 999) < 1e-3 and abs(float(ts.min())) < 1e-3
    with CountCalls(model) as counter:
        tight = sample_pf_ode(model, cond, seed=0, rtol=1e-3, atol=1e-3)
    assert tight.nfe == counter.calls > loose.nfe
    again = sample_pf_ode(model, cond, seed=0, rtol=1e-1, atol=1e-1)
    assert torch.equal(again.image, loose.image) and again.nfe == loose.nfe


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_plain_sr3_parameterisations(prediction_type):
    """Non-residual models: the output is x̂0 itself (clamped), whatever the parameterisation."""
    m = _model(residual=False, prediction_type=prediction_type)
    cond = torch.zeros(1, 3, 16, 16)
    for res in (sample_ddim(m, cond, 3), sample_ddpm(m, cond, 3), sample_pf_ode(m, cond, rtol=1e-1, atol=1e-1)):
        assert res.image.shape == (1, 3, 16, 16) and torch.isfinite(res.image).all()
        assert float(res.image.abs().max()) <= 1


def test_rejects_bad_condition(model):
    with pytest.raises(ValueError, match="multiples of 2"):
        sample_ddim(model, torch.zeros(1, 3, 15, 16), 2)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        sample_ddpm(model, torch.zeros(3, 16, 16), 2)


def test_reference_samplers_refuse_nan_eta_nan_cond_and_out_of_range_seeds():
    """NaN η used to pass ``eta < 0`` and turn every pixel NaN (black once converted to uint8)."""


    torch.manual_seed(0)
    model = SRDiffusion(SRDiffusionConfig(unet=UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4,
                                                          heads=2))).eval()
    cond = torch.zeros(1, 3, 16, 16)
    for eta in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
            sample_ddim(model, cond, 2, eta=eta)
        with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
            sample_tiles(model, cond, eta=eta)
    bad = torch.full_like(cond, float("nan"))
    with pytest.raises(ValueError, match="cond contains NaN or infinite values"):
        sample_ddim(model, bad, 2)
    with pytest.raises(ValueError, match="cond contains NaN or infinite values"):
        sample_tiles(model, bad)
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match="seed must be in 0 … 2\\*\\*64 - 1"):
            sample_ddim(model, cond, 2, seed=seed)
        with pytest.raises(ValueError, match="seed must be in 0 … 2\\*\\*64 - 1"):
            sample_tiles(model, cond, seed=seed)
    assert torch.isfinite(sample_ddim(model, cond, 2, seed=2**64 - 1).image).all()
