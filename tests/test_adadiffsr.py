"""AdaDiffSR: information gain (eqs. 1–2), DTSS classes and strides, the policy in the tile sampler, the MMLE
regressor's plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adasr.adaptive.dtss import (PAPER_CODEBOOK, DTSSConfig, DynamicStrides, Warp, class_counts, classify,
                                 stride_list)
from adasr.adaptive.information_gain import (GainConfig, GainMeter, gains_along, information_gain,
                                             representation, through_degradation)
from adasr.adaptive.mmle import GainData, MMLEConfig, MMLERegressor, MMLETrainConfig, macs_per_call, train_mmle
from adasr.diffusion.timesteps import get_schedule
from adasr.sampling.loop import sample_tiles

pytestmark = pytest.mark.usefixtures("one_thread")

TILE, OVERLAP, SIZE = 32, 8, 56


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model(TILE)


@pytest.fixture(scope="module")
def cond():
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _img(seed: int, size: int = 48) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- information gain -------------------------------------------------------------------------------------------

def test_gain_is_tanh_of_the_change_in_r():
    assert float(information_gain(0.7, 0.2)) == pytest.approx(math.tanh(0.5), abs=1e-15)
    assert float(information_gain(0.2, 0.7)) == pytest.approx(-math.tanh(0.5), abs=1e-15)
    assert float(information_gain(3.0, -3.0)) < 1.0


def test_representation_of_the_reference_itself_is_best_in_every_fr_metric():
    hr = _img(0)
    rep = representation(hr, hr, GainConfig(reference="hr", nr=()), nr=False)
    for name in ("psnr", "lpips", "nlpd", "gmsd"):
        assert float(rep.normalised[name][0]) == pytest.approx(1.0, abs=1e-6), name
    assert float(rep.fr[0]) == pytest.approx(1.0, abs=1e-6)  # equal weights summing to 1
    assert rep.nr is None


def test_closer_estimates_have_higher_r_and_positive_gain():
    hr = _img(0)
    noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(2))
    steps = [(hr + s * noise).clamp(0, 1)[0] for s in (0.3, 0.15, 0.05)]
    gains = gains_along(steps, [900, 600, 300], hr[0], GainConfig(reference="hr", nr=()))
    assert gains[0].fr == 0.0 and gains[0].total == 0.0  # no predecessor
    assert gains[1].fr > 0 and gains[2].fr > 0


def test_nr_counts_only_in_the_second_half_against_the_estimate_before():
    c = GainConfig()
    assert c.nr_active(499) and not c.nr_active(500)
    meter = GainMeter(GainConfig(fr=(), nr=("brisque",)))
    img = _img(3)[0]
    g1, rep1 = meter.update(0, img, None, 900)
    g2, rep2 = meter.update(0, img * 0.9, None, 700)  # first half: R^NR computed, I^NR not counted
    g3, rep3 = meter.update(0, img * 0.8, None, 400)  # second half: compared with the first-half estimate
    assert rep2.nr is not None and not g2.nr_active and g2.nr == 0.0 and g2.total == 0.0
    assert g3.nr_active and g3.nr == pytest.approx(math.tanh(float(rep3.nr[0]) - float(rep2.nr[0])), abs=1e-12)
    assert g3.nr != 0.0 and meter.seconds > 0


def test_input_reference_compares_through_the_degradation():
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(through_degradation(flat), flat, atol=1e-6)
    x = _img(4, 32)
    assert through_degradation(x).shape == x.shape


def test_gain_config_is_checked():
    with pytest.raises(ValueError, match="unknown FR"):
        GainConfig(fr=("ahiq",))
    with pytest.raises(ValueError, match="one weight per metric"):
        GainConfig(fr_weights=(1.0,))
    with pytest.raises(ValueError, match="reference"):
        GainConfig(reference="latent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one metric"):
        GainConfig(fr=(), nr=())
    assert GainConfig().weights("fr") == (0.25,) * 4 and GainConfig().weights("nr") == (0.5, 0.5)


# -- DTSS -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("i_fr, i_nr, expected", [
    (0.01, 0.01, ("growing", 0)), (0.0, 0.01, ("growing", 1)), (0.01, 0.0, ("stable", 2)),
    (0.0, 0.0, ("stable", 3)), (-0.01, 0.004, ("stable", 3)), (0.02, -0.006, ("saturated", None)),
])
def test_classes_at_the_papers_threshold(i_fr, i_nr, expected):
    assert classify(i_fr, i_nr, 5e-3) == expected


def test_linspace_warp_and_its_inverse():
    w = Warp(get_schedule("linspace"), 10)
    assert w(0.0) == 999 and w(1.0) == 0 and w.top == 999 and w.t_end == 0
    for t in (999, 500, 37, 0):
        assert w(w.u_of(t)) == pytest.approx(t, abs=1e-6)


@pytest.mark.parametrize("n", [2, 5, 10, 20])
def test_smallest_stride_gives_n_steps_and_largest_about_a_quarter(n):
    c = DTSSConfig(steps=n)
    w = Warp(get_schedule("linspace"), n)
    du = c.strides()
    small = stride_list(w, 0.0, du[0], w.top)
    large = stride_list(w, 0.0, du[-1], w.top)
    assert len(small) == n and small[0] == 999 and small[-1] == 0
    assert len(large) == max(2, 1 + math.ceil(1 / du[-1] - 0.5))  # the end is snapped to within half a stride
    for lst in (small, large):
        assert all(a > b for a, b in zip(lst, lst[1:]))


def test_stride_list_on_an_optimised_base_follows_its_shape():
    w = Warp(get_schedule("balanced"), 4)  # power(t_end=50, ρ=1) at N = 4
    assert w.top == 999 and w.t_end == 50
    got = stride_list(w, 0.0, DTSSConfig(steps=4).strides()[0], 999)
    want = get_schedule("balanced").timesteps(4)  # [999, 683, 366, 50]
    assert len(got) == len(want) and max(abs(a - b) for a, b in zip(got, want)) <= 1  # rounding of the warp


def test_dtss_config_is_checked():
    with pytest.raises(ValueError, match="codebook"):
        DTSSConfig(codebook=(20, 15, 10, 5))
    with pytest.raises(ValueError, match="steps"):
        DTSSConfig(steps=1)
    with pytest.raises(ValueError, match="signal"):
        DTSSConfig(signal="guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="regressor"):
        DynamicStrides(DTSSConfig(signal="regressor"))


class ConstantRegressor:
    """A stand-in regressor that reports the same (I^FR, I^NR) for every tile."""

    def __init__(self, i_fr: float, i_nr: float) -> None:
        self.value = torch.tensor([[i_fr, i_nr]])
        self.calls = 0

    def predict(self, f, prev, o, t, T=1000):
        self.calls += 1
        return self.value.expand(f.shape[0], 2)


def _policy(model, gains, n=9, **kw):
    return DynamicStrides(DTSSConfig(steps=n, signal="regressor", **kw), "linspace", to_image=model.output,
                          regressor=ConstantRegressor(*gains))


def test_always_growing_tiles_take_small_strides_after_a_large_first_one(model, cond):
    n = 9
    pol = _policy(model, (0.1, 0.1), n, gain=GainConfig(nr_from=1000))  # NR counts everywhere
    res = sample_tiles(model, cond, policy=pol, tile=TILE, overlap=OVERLAP)
    # first step at the largest stride (Δu = 4/(N−1) = 0.5), then growing from the first gain: Δu = 1/8 to the end
    steps = [s.evaluations for s in res.tiles]
    assert steps == [1 + 4 + 1] * len(res.tiles)
    rec = res.policy_memory["records"][0]
    assert [r["class"] for r in rec][:2] == ["growing", "growing"] and rec[0]["stride"] == PAPER_CODEBOOK[0]
    assert res.tiles[0].timesteps == [999, 500, 375, 250, 126, 0]  # u = 0.4995 + k/8 (500 is u 0.4995)


def test_in_the_first_half_only_fr_decides(model, cond):
    res = sample_tiles(model, cond, policy=_policy(model, (0.1, 0.1), 9), tile=TILE, overlap=OVERLAP)
    rec = res.policy_memory["records"][0]
    assert rec[0]["class"] == "stable" and rec[0]["i_nr"] == 0.0 and rec[0]["stride"] == PAPER_CODEBOOK[2]
    counts = class_counts(res.policy_memory["records"])
    assert counts["growing"] > 0 and counts["saturated"] == 0


def test_always_stable_tiles_take_the_largest_stride(model, cond):
    res = sample_tiles(model, cond, policy=_policy(model, (0.0, 0.0), 9), tile=TILE, overlap=OVERLAP)
    assert [s.evaluations for s in res.tiles] == [3] * len(res.tiles)  # 999, 499, 0
    assert res.tiles[0].timesteps == [999, 500, 0]


def test_saturated_tiles_stop_in_the_second_half_keeping_the_best_estimate(model, cond):
    pol = _policy(model, (0.0, -0.5), 9, first=0)  # small strides; NR falls as soon as it counts
    res = sample_tiles(model, cond, policy=pol, tile=TILE, overlap=OVERLAP)
    for s in res.tiles:
        # NR counts from t < 500: the first step there has no NR predecessor, the second one saturates
        assert s.timesteps[s.evaluations - 1] < 500 and s.evaluations < 9
        assert s.done
    assert class_counts(res.policy_memory["records"])["saturated"] == len(res.tiles)


def test_metric_signal_runs_and_records_its_cost(model, cond):
    pol = DynamicStrides(DTSSConfig(steps=5, signal="metrics", gain=GainConfig(nr=("brisque",))), "linspace",
                         to_image=model.output)
    res = sample_tiles(model, cond, policy=pol, tile=TILE, overlap=OVERLAP)
    mem = res.policy_memory
    assert mem["signal_calls"] == res.cost.tile_evaluations and mem["signal_seconds"] > 0
    assert all(len(r) == s.evaluations for r, s in zip(mem["records"], res.tiles))


def test_oracle_signal_needs_a_reference(model, cond):
    pol = DynamicStrides(DTSSConfig(steps=5, signal="oracle"), "linspace", to_image=model.output)
    with pytest.raises(ValueError, match="set_reference"):
        sample_tiles(model, cond, policy=pol, tile=TILE, overlap=OVERLAP)


def test_pfj_condition_appends_the_latest_gains(model, cond):
    pol = _policy(model, (0.1, 0.2), 5)
    object.__setattr__(pol, "pfj", True)
    pol.begin(2)
    from adasr.sampling.policies import TileState

    tiles = [TileState(0, [999, 0]), TileState(1, [999, 0])]
    pol._run["last_gain"][1] = (0.1, 0.2)
    out = pol.condition(tiles, torch.zeros(2, 3, 8, 8))
    assert out.shape == (2, 5, 8, 8)
    assert float(out[0, 3:].abs().max()) == 0.0
    assert torch.allclose(out[1, 3, 0, 0], torch.tensor(0.1)) and torch.allclose(out[1, 4, 0, 0], torch.tensor(0.2))


# -- the MMLE regressor -----------------------------------------------------------------------------------------

def test_regressor_shapes_and_cost():
    net = MMLERegressor(MMLEConfig(width=8, target_scale=(0.01, 0.02))).eval()
    f, prev, o = _img(0, 32), _img(1, 32), _img(2, 32)
    x = MMLERegressor.features(f, prev, o, torch.tensor([500]))
    assert x.shape == (1, 10, 32, 32) and float(x[0, 9].mean()) == pytest.approx(0.5)
    assert net.predict(f, prev, o, torch.tensor([500])).shape == (1, 2)
    assert 0 < macs_per_call(net, (32, 32)) < 5e6
    with pytest.raises(ValueError, match="one shape"):
        MMLERegressor.features(f, prev[:, :, :16], o, torch.tensor([500]))


def test_training_learns_a_gain_that_depends_on_the_change():
    g = torch.Generator().manual_seed(0)
    n = 96
    f = torch.rand(n, 3, 16, 16, generator=g)
    amp = torch.rand(n, generator=g)
    prev = (f - amp.view(-1, 1, 1, 1) * 0.2).clamp(0, 1)
    u8 = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731
    gain = 0.02 * amp.double()
    data = GainData(u8(f), u8(prev), u8(f), torch.full((n,), 300), torch.arange(n) // 4, torch.zeros(n),
                    {"fr_hr": gain, "fr_input": gain, "nr": gain}, torch.ones(n, dtype=torch.bool))
    net, rep = train_mmle(data, MMLETrainConfig(steps=150, batch=16, lr=3e-3), MMLEConfig(width=8),
                          progress=False)
    assert rep["validation"]["spearman_fr_vs_oracle"] > 0.8
    assert rep["target_scale"][0] == pytest.approx(float(gain[: int(0.8 * n)].std()), rel=0.3)
    assert np.isfinite(rep["train_loss_last100"])
