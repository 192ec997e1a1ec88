"""adasr.acceleration.reuse: key steps, the reuse policy over any tile policy, parallel decoding, prior noise.

* the key-step presets against their closed forms (Faster-Diffusion's 50-step set itself at N = 50);
* every evaluation runs the mode its position asks for (counted per mode, MACs = n_full·full + n_reuse·reuse);
* interval 1 is uniform sampling bit for bit; a non-key output equals decode(encode(x_key, t_key), t) computed
  with the UNet's own methods;
* parallel decoding gives the sequential result bit for bit with fewer network calls and the same MACs;
* the wrapper keeps the base policy's lists and stops (early exit, allocation);
* prior noise injection adds λ·x_T exactly when the step lands below T/2.
"""

from __future__ import annotations

import pytest
import torch

from adasr.acceleration.reuse import (FASTER_DIFFUSION_50, ReusePolicy, full_share, key_mask, key_positions,
                                      with_reuse)
from adasr.adaptive.early_exit import EarlyExit, EarlyExitRule
from adasr.sampling.denoiser import Denoiser
from adasr.sampling.loop import sample_tiles
from adasr.sampling.policies import TileState, UniformDDIM

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model()


@pytest.fixture(scope="module")
def cond():
    return torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_key_positions_closed_forms():
    assert key_positions(50, "faster-diffusion") == FASTER_DIFFUSION_50
    assert key_positions(10, "faster-diffusion") == (0, 1, 2, 3, 5, 7)
    assert key_positions(20, "faster-diffusion") == (0, 1, 2, 4, 6, 10, 14)
    assert key_positions(10, "uniform", 3) == (0, 3, 6, 9)
    assert key_positions(7, "smfdm", 10) == (0,)
    assert key_positions(1, "faster-diffusion") == (0,)
    assert key_mask(5, "uniform", 2) == [True, False, True, False, True]
    assert full_share(20, "uniform", 4) == 0.25
    with pytest.raises(ValueError, match="preset"):
        key_positions(10, "every-other")
    with pytest.raises(ValueError, match="interval"):
        key_positions(10, "uniform", 0)


def test_policy_checks():
    base = UniformDDIM(4)
    with pytest.raises(ValueError, match="cache"):
        ReusePolicy(base, "attention")
    with pytest.raises(ValueError, match="parallel"):
        ReusePolicy(base, "deepcache", parallel=True)
    with pytest.raises(ValueError, match="parallel"):
        ReusePolicy(base, "deepcache", "smfdm")
    with pytest.raises(ValueError, match="prior_noise"):
        ReusePolicy(base, prior_noise=float("nan"))
    assert with_reuse(base, "none") is base
    p = with_reuse(base, "deepcache", interval=3)
    assert p.reuse == ("shallow",) and p.steps == 4 and p.name == "uniform+deepcache" and p.schedule is base.schedule
    assert ReusePolicy(base, key_steps="smfdm").parallel


@pytest.mark.parametrize("cache,mode", [("encoder", "decoder"), ("deepcache", "shallow")])
@pytest.mark.parametrize("preset,interval", [("uniform", 2), ("uniform", 3), ("faster-diffusion", 1)])
def test_each_step_runs_its_mode_and_macs_add_up(model, cond, cache, mode, preset, interval):
    n = 8
    res = sample_tiles(model, cond, policy=ReusePolicy(UniformDDIM(n), cache, preset, interval), tile=16, overlap=0)
    tiles = len(res.grid)
    n_key = len(key_positions(n, preset, interval))
    assert res.cost.evaluations_by_mode == {"full": tiles * n_key, **({mode: tiles * (n - n_key)} if n > n_key else {})}
    d = Denoiser(model.unet)
    assert res.cost.macs_by_mode["full"] == tiles * n_key * d.macs("full", (16, 16))
    assert res.cost.macs_by_mode[mode] == tiles * (n - n_key) * d.macs(mode, (16, 16))
    assert d.macs(mode, (16, 16)) < d.macs("full", (16, 16))


def test_interval_one_is_uniform_sampling_bit_for_bit(model, cond):
    ref = sample_tiles(model, cond, policy=UniformDDIM(5), tile=16, overlap=4, seed=1)
    for cache in ("encoder", "deepcache"):
        out = sample_tiles(model, cond, policy=ReusePolicy(UniformDDIM(5), cache, "uniform", 1), tile=16, overlap=4,
                           seed=1)
        assert torch.equal(out.x0, ref.x0)
        assert out.cost.evaluations_by_mode == {"full": ref.cost.tile_evaluations}


def test_non_key_step_decodes_the_key_steps_encoder_state(model):
    """Two steps, key then decoder, on one tile: the second network output is decode(encode(x_key, t_key), t2)."""
    cond = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(9)) * 2 - 1
    pol = ReusePolicy(UniformDDIM(2), "encoder", "uniform", 2)
    res = sample_tiles(model, cond, policy=pol, tile=16, overlap=0, seed=4)
    ts = UniformDDIM(2).timesteps()
    x_T = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    upd = model.ddim_update()
    with torch.no_grad():
        t0 = torch.tensor([ts[0]])
        state = model.unet.encode(x_T, t0, cond)
        out0 = model.unet.decode(state, t0)
        x1, _ = upd(out0, t0, torch.tensor([ts[1]]), x_T, 0.0, None)
        out1 = model.unet.decode(state, torch.tensor([ts[1]]))  # the cached encoder state, the current t
        _, x0 = upd(out1, torch.tensor([ts[1]]), torch.tensor([-1]), x1, 0.0, None)
    assert torch.allclose(res.x0, x0, atol=1e-6)


@pytest.mark.parametrize("preset,interval", [("uniform", 3), ("faster-diffusion", 1)])
def test_parallel_decoding_equals_sequential_with_fewer_calls(model, cond, preset, interval):
    seq = sample_tiles(model, cond, policy=ReusePolicy(UniformDDIM(9), "encoder", preset, interval), tile=16,
                       overlap=4, seed=2)
    par = sample_tiles(model, cond, policy=ReusePolicy(UniformDDIM(9), "encoder", preset, interval, parallel=True),
                       tile=16, overlap=4, seed=2)
    assert torch.allclose(par.x0, seq.x0, atol=1e-6)
    assert par.cost.macs == seq.cost.macs and par.cost.evaluations_by_mode == seq.cost.evaluations_by_mode
    n_key = len(key_positions(9, preset, interval))
    assert seq.cost.unet_calls == 9 and par.cost.unet_calls == n_key  # non-key steps cost no call of their own


def test_smfdm_preset_is_uniform_grouping_decoded_in_parallel(model, cond):
    a = sample_tiles(model, cond, policy=ReusePolicy(UniformDDIM(6), "encoder", "smfdm", 3), tile=16, overlap=0)
    b = sample_tiles(model, cond, policy=ReusePolicy(UniformDDIM(6), "encoder", "uniform", 3, parallel=True),
                     tile=16, overlap=0)
    assert torch.equal(a.x0, b.x0) and a.cost.unet_calls == 2


def test_reuse_keeps_the_base_policys_stops(model, cond):
    """Early exit with a huge ε stops every tile at T_min; the wrapper changes modes, not the steps taken."""
    base = EarlyExit(UniformDDIM(8), EarlyExitRule(epsilon=1e9, patience=1, warmup=3))
    plain = sample_tiles(model, cond, policy=base, tile=16, overlap=0)
    wrapped = sample_tiles(model, cond, policy=ReusePolicy(base, "encoder", "uniform", 2), tile=16, overlap=0)
    assert [t.evaluations for t in wrapped.tiles] == [t.evaluations for t in plain.tiles] == [3] * len(plain.tiles)
    assert wrapped.cost.evaluations_by_mode == {"full": 2 * len(plain.tiles), "decoder": len(plain.tiles)}


def test_parallel_decodes_paid_for_even_when_a_tile_stops_first(model, cond):
    base = EarlyExit(UniformDDIM(8), EarlyExitRule(epsilon=1e9, patience=1, warmup=2))
    res = sample_tiles(model, cond, policy=ReusePolicy(base, "encoder", "uniform", 4, parallel=True), tile=16,
                       overlap=0)
    n = len(res.grid)
    # step 1 (key) decodes positions 1-3 ahead; each tile stops after step 2, so two decodes were never used
    assert [t.evaluations for t in res.tiles] == [2] * n
    assert res.cost.evaluations_by_mode == {"full": n, "decoder": 3 * n}


def test_prior_noise_injection_only_below_half_T():
    pol = ReusePolicy(UniformDDIM(4), prior_noise=0.003)
    x_T = torch.randn(3, 4, 4)
    x = torch.zeros(3, 4, 4)
    high = TileState(0, [999, 600, 400, 100], position=0, x_T=x_T)  # lands at 600
    low = TileState(0, [999, 600, 400, 100], position=1, x_T=x_T)  # lands at 400
    last = TileState(0, [999, 600, 400, 100], position=3, x_T=x_T)  # lands at −1 (the clean end)
    assert torch.equal(pol.inject(high, x), x)
    assert torch.equal(pol.inject(low, x), 0.003 * x_T)
    assert torch.equal(pol.inject(last, x), x)
    assert torch.equal(ReusePolicy(UniformDDIM(4)).inject(low, x), x)  # off by default


def test_upscale_api_and_report(model):
    from adasr.config import ConfigError
    from adasr.upscaling import upscale_tensor

    x = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    res = upscale_tensor(x, model=model, steps=4, schedule="linspace", tile=16, overlap=4, cache="encoder",
                         cache_interval=2, precision="fp32")
    r = res.report
    assert r.reuse == {"cache": "encoder", "key_steps": "uniform", "interval": 2, "parallel": False,
                       "prior_noise": 0.0}
    assert r.evaluations_by_mode["full"] == r.evaluations_by_mode["decoder"] == r.tile_evaluations // 2
    assert r.policy == "uniform+encoder"
    with pytest.raises(ConfigError, match="cache_interval applies to feature reuse"):
        upscale_tensor(x, model=model, steps=4, tile=16, overlap=4, cache_interval=3)
    with pytest.raises(ConfigError, match="smfdm"):
        upscale_tensor(x, model=model, steps=4, tile=16, overlap=4, cache="deepcache", key_steps="smfdm")


def test_feature_similarity_matches_a_direct_trajectory(model):
    from adasr.acceleration.reuse import feature_similarity, neighbour_similarity

    cond = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    ts = [999, 500, 100]
    r = feature_similarity(model, cond, ts, seed=5)
    assert set(r["cosine"]) == {"skip0", "skip1", "mid", "deep", "output"}
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    upd = model.ddim_update()
    mids = []
    with torch.no_grad():
        for i, t in enumerate(ts):
            tt = torch.tensor([t])
            state = model.unet.encode(x, tt, cond)
            mids.append(state.mid.flatten())
            out = model.unet.decode(state, tt)
            x, _ = upd(out, tt, torch.tensor([ts[i + 1] if i + 1 < len(ts) else -1]), x, 0.0, None)
    cos01 = float(torch.nn.functional.cosine_similarity(mids[0], mids[1], dim=0))
    assert neighbour_similarity(r["cosine"]["mid"])[0] == pytest.approx(cos01, abs=1e-5)
    assert r["change"]["mid"][1] == pytest.approx(float((mids[2] - mids[1]).norm() / mids[1].norm()), rel=1e-4)
    assert r["cosine"]["deep"][1][1] == pytest.approx(1.0, abs=1e-5)
