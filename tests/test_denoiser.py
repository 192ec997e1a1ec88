"""adasr.sampling.denoiser: the one place the sampler calls the network.

* ``full`` through the layer is bit-identical to calling the UNet (NCHW and channels_last), and uniform sampling
  through the loop is bit-identical to the pre-layer loop (re-implemented here: direct UNet calls + the diffusers-style
  ``DDIMScheduler.step_batch``);
* ``decoder`` equals ``decode(encode(x_cached, t_cached), t_now)`` and ``shallow`` equals ``shallow(x_now, t_now,
  deep_cached)``, each checked against the UNet's own methods; with a cache made at the same (x, t) both equal
  ``full``;
* MACs per mode are measured (encoder + decoder MACs = full MACs; shallow < full), counted per tile and per mode;
* caches are per tile, dropped when a tile finishes; misuse raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from adasr.cost import count_macs, unet_macs
from adasr.diffusion.timesteps import spaced_timesteps
from adasr.sampling.denoiser import Denoiser
from adasr.sampling.loop import iterate_tiles, sample_tiles
from adasr.sampling.policies import CONTINUE, Decision, Policy, UniformDDIM
from adasr.sampling.tiles import TileGrid

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model()


def _inputs(b: int = 3, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, size, size, generator=g)
    c = torch.rand(b, 3, size, size, generator=g) * 2 - 1
    t = torch.tensor([999, 500, 20][:b], dtype=torch.long)
    return x, t, c


def test_full_mode_is_the_unet_bit_for_bit(model):
    x, t, c = _inputs()
    with torch.no_grad():
        ref = model.unet(x, t, c).float()
        out = Denoiser(model.unet)(x, t, c)
        cached = Denoiser(model.unet, cache=("decoder", "shallow"))(x, t, c)  # encode + decode, caches kept
    assert torch.equal(out.output, ref) and torch.equal(cached.output, ref)
    assert out.modes == ("full",) * 3
    per_tile = unet_macs(model.unet, (1, 3, 16, 16))
    assert out.cost.as_dict() == {"unet_calls": 1, "tile_evaluations": 3, "macs": 3 * per_tile,
                                  "evaluations_by_mode": {"full": 3}, "macs_by_mode": {"full": 3 * per_tile}}


def test_full_mode_feeds_a_channels_last_network_nhwc(make_tiny_model):
    plain = make_tiny_model()
    nhwc = make_tiny_model().to(memory_format=torch.channels_last)
    seen = []
    conv = next(m for m in nhwc.unet.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
    x, t, c = _inputs()
    d = Denoiser(nhwc.unet, count_macs=False)
    assert d.nhwc and not Denoiser(plain.unet).nhwc
    with torch.no_grad():
        out = d(x, t, c).output
        ref = plain.unet(x, t, c)
    assert seen == [True] and torch.allclose(out, ref, atol=1e-5)
    assert d(x, t, c).cost.macs == 0  # count_macs=False: the reference samplers count NFE only


def test_uniform_sampling_through_the_layer_is_bit_identical_to_direct_calls(model):
    """The loop before the denoiser layer: per iteration one UNet call on the running tiles and one
    DDIMScheduler.step_batch (η = 0 and η = 1 with the same generator). The layer must not change one bit."""
    cond = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(5)) * 2 - 1
    for eta in (0.0, 1.0):
        res = sample_tiles(model, cond, policy=UniformDDIM(4), tile=16, overlap=4, seed=7, eta=eta)
        grid = TileGrid.cover(32, 48, 16, 4)
        g = torch.Generator().manual_seed(7)
        x = grid.split(torch.randn(1, 3, 32, 48, generator=g))
        c = grid.split(cond)
        sched = model.scheduler("ddim")
        ts = spaced_timesteps(4) + [-1]
        with torch.no_grad():
            for a, b in zip(ts, ts[1:]):
                t = torch.full((len(grid),), a, dtype=torch.long)
                out = model.unet(x, t, c).float()
                x = sched.step_batch(out, t, torch.full_like(t, b), x, eta=eta, generator=g if eta > 0 else None).prev_sample
        assert torch.equal(res.x0, grid.merge(x)), eta


def test_decoder_and_shallow_reuse_the_cached_features(model):
    unet = model.unet
    x1, t1, c = _inputs(seed=1)
    x2, _, _ = _inputs(seed=2)
    t2 = torch.tensor([888, 400, 10])
    d = Denoiser(unet, cache=("decoder", "shallow"))
    with torch.no_grad():
        d(x1, t1, c, tiles=[4, 5, 6])  # key step: full, caches kept for tiles 4, 5, 6
        dec = d(x2, t2, c, tiles=[4, 5, 6], modes=["decoder"] * 3)
        sha = d(x2, t2, c, tiles=[4, 5, 6], modes=["shallow"] * 3)
        h1 = unet.encode(x1, t1, c)
        _, deep1 = unet.decode(h1, t1, return_deep=True)
        ref_dec = unet.decode(h1, t2)
        ref_sha = unet.shallow(x2, t2, c, deep1)
        full2 = unet(x2, t2, c)
    assert torch.equal(dec.output, ref_dec.float()) and torch.equal(sha.output, ref_sha.float())
    assert not torch.allclose(dec.output, full2, atol=1e-4)  # reuse is an approximation of the full call ...
    assert not torch.allclose(sha.output, full2, atol=1e-4)
    with torch.no_grad():  # ... exact when the cache was made at the same (x, t)
        d(x2, t2, c, tiles=[4, 5, 6])
        assert torch.equal(d(x2, t2, c, tiles=[4, 5, 6], modes=["decoder"] * 3).output, full2.float())
        torch.testing.assert_close(d(x2, t2, c, tiles=[4, 5, 6], modes=["shallow"] * 3).output, full2.float(),
                                   rtol=0, atol=1e-6)


def test_mixed_modes_keep_the_batch_order_and_count_macs_per_mode(model):
    unet = model.unet
    x, t, c = _inputs(seed=3)
    d = Denoiser(unet, cache=("decoder", "shallow"))
    with torch.no_grad():
        d(x, t, c)
        mixed = d(x, t, c, modes=["decoder", "full", "shallow"])
        ref = unet(x, t, c)
    torch.testing.assert_close(mixed.output, ref.float(), rtol=0, atol=1e-5)  # caches from the same (x, t)
    full, dec, sha = (d.macs(m, (16, 16)) for m in ("full", "decoder", "shallow"))
    p = next(unet.parameters())
    z, zc, tt = torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), torch.full((1,), 500.0)
    assert full == unet_macs(unet, (1, 3, 16, 16)) and dec + count_macs(lambda: unet.encode(z, tt, zc)) == full
    assert 0 < sha < full and 0 < dec < full and p is not None
    assert mixed.cost.unet_calls == 3 and mixed.cost.tile_evaluations == 3
    assert mixed.cost.macs_by_mode == {"full": full, "decoder": dec, "shallow": sha}
    assert mixed.cost.macs == full + dec + sha


def test_misuse_raises(model):
    x, t, c = _inputs()
    d = Denoiser(model.unet, cache=("decoder",))
    with pytest.raises(ValueError, match="needs a 'full' step first"):
        d(x, t, c, modes=["decoder"] * 3)
    with pytest.raises(ValueError, match="mode must be"):
        d(x, t, c, modes=["half"] * 3)
    with pytest.raises(ValueError, match="one tile index and one mode"):
        d(x, t, c, modes=["full"])
    with pytest.raises(ValueError, match="cache modes"):
        Denoiser(model.unet, cache=("full",))
    with pytest.raises(ValueError, match="encode/decode/shallow"):
        Denoiser(torch.nn.Conv2d(6, 3, 1), cache=("decoder",))
    with torch.no_grad():
        d(x, t, c, tiles=[0, 1, 2])
    assert d.cached_tiles == [0, 1, 2] and d.has_cache(1, "decoder") and not d.has_cache(1, "shallow")
    d.drop(1)
    assert d.cached_tiles == [0, 2] and not d.has_cache(1, "decoder") and d.has_cache(1, "full")


@dataclass(frozen=True)
class EveryOther(Policy):
    """Encoder reuse at every other step (a key step, then a decoder step), to drive the layer from the loop."""

    n: int = 6
    name: str = "every-other"
    reuse: tuple[str, ...] = ("decoder",)

    @property
    def steps(self) -> int:
        return self.n

    def plan(self, cond_tiles, T):
        return [spaced_timesteps(self.n - (k % 2), T) for k in range(cond_tiles.shape[0])]

    def decide(self, tile, x0_new, x0_old):
        return Decision(mode="decoder") if tile.evaluations % 2 == 1 else CONTINUE


def test_a_policy_chooses_modes_and_caches_are_dropped_when_tiles_finish(model):
    cond = torch.rand(1, 3, 16, 40, generator=torch.Generator().manual_seed(2)) * 2 - 1  # 3 tiles of 16, overlap 4
    pol = EveryOther()
    cached = []
    gen = iterate_tiles(model, cond, policy=pol, tile=16, overlap=4)
    for state in gen:
        assert [s.mode for s in state.running] == ["decoder" if state.iteration % 2 else "full"] * len(state.running)
        cached.append(state.denoiser.cached_tiles)
    res = state.result()
    # tiles 0 and 2 run 6 steps, tile 1 runs 5: modes full, decoder, full, decoder, …
    assert [s.evaluations for s in res.tiles] == [6, 5, 6]
    assert res.cost.evaluations_by_mode == {"full": 3 + 3 + 3, "decoder": 3 + 2 + 3}
    assert res.cost.unet_calls == res.iterations == 6  # the tiles alternate in step: one mode per iteration
    assert cached[-2] == [0, 2] and cached[-1] == []  # tile 1 finished at iteration 5: its cache went with it
    uniform = sample_tiles(model, cond, policy=UniformDDIM(6), tile=16, overlap=4)
    assert res.cost.macs < uniform.cost.macs and torch.isfinite(res.x0).all()
