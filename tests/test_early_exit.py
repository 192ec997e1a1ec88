"""adasr.adaptive.early_exit: Δ (closed form), the stopping rule's truth table, and the policy executed by the
tile-batch sampler with a tiny random model (32×32 image, 9 tiles of 16 with overlap 4): per-tile and global
stops, the clean estimate kept on stopping, Δ histories, and the composition with step allocation (adasr)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adasr.adaptive.allocation import StepAllocation
from adasr.adaptive.complexity import Calibration
from adasr.adaptive.early_exit import EarlyExit, EarlyExitRule, delta, global_deltas
from adasr.adaptive.policy import AdaptiveConfig, make_policy
from adasr.diffusion.timesteps import spaced_timesteps
from adasr.sampling.loop import run_to_end, iterate_tiles
from adasr.sampling.policies import STOP, TileState, UniformDDIM

TILE, OVERLAP, SIZE, N = 16, 4, 32, 8
HUGE, TINY = 1e9, 1e-30


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model(TILE)


@pytest.fixture(scope="module")
def cond():
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1


class Recorder:
    """An observer of iterate_tiles: copies of every tile's x̂0 and x_t after each iteration."""

    def __init__(self) -> None:
        self.x0: list[list[torch.Tensor | None]] = []
        self.xt: list[list[torch.Tensor | None]] = []
        self.done: list[list[bool]] = []

    def __call__(self, state) -> None:
        assert state.iteration == len(self.x0) + 1
        self.x0.append([None if s.x0 is None else s.x0.clone() for s in state.tiles])
        self.xt.append([None if s.x_t is None else s.x_t.clone() for s in state.tiles])
        self.done.append([s.done for s in state.tiles])


def run(model, cond, policy, seed=3, callback=None):
    states = iterate_tiles(model, cond, policy=policy, tile=TILE, overlap=OVERLAP, seed=seed, precision="fp32")
    return run_to_end(states, observe=callback)


def deltas(res) -> list[list[float]]:
    """The per-tile Δ histories an early-exit policy kept during the run (SampleResult.policy_memory)."""
    return res.policy_memory.get("deltas", [[] for _ in res.tiles])


@pytest.fixture(scope="module")
def uniform_run(model, cond):
    """Uniform DDIM-N (never stops), with every iteration's x̂0 recorded: the reference chain."""
    rec = Recorder()
    res = run(model, cond, UniformDDIM(N), callback=rec)
    return res, rec


# --------------------------------------------------------------------------------------------------------- delta
@pytest.mark.parametrize("c,R", [(0.3, 2.0), (-0.05, 2.0), (0.3, 5.0), (0.0, 2.0)])
def test_delta_of_a_constant_offset(c, R):
    x = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert delta(x + c, x, R) == pytest.approx(abs(c) / R, rel=1e-6, abs=1e-9)


def test_delta_is_rms_over_range():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 5, 7)), rng.standard_normal((3, 5, 7))
    assert delta(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(np.sqrt(np.mean((a - b) ** 2)) / 2,
                                                                           rel=1e-12)
    assert delta(torch.from_numpy(a).float(), torch.from_numpy(b).float(), 0.5) == pytest.approx(
        np.sqrt(np.mean((a - b) ** 2)) / 0.5, rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        delta(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5))


# ---------------------------------------------------------------------------------------------------------- rule
@pytest.mark.parametrize("deltas,steps,rule,expected", [
    ([0.001, 0.001, 0.001], 3, (0.002, 2, 4), False),   # warm-up T_min = 4 not reached
    ([0.001, 0.001, 0.001], 4, (0.002, 2, 4), True),    # reached, last 2 below ε
    ([0.001, 0.003, 0.001], 4, (0.002, 2, 4), False),   # one of the last P = 2 is above ε
    ([0.003, 0.001, 0.001], 4, (0.002, 2, 4), True),    # an older large Δ is outside the window
    ([0.001, 0.001, 0.002], 9, (0.002, 2, 4), False),   # strictly below ε: equal does not stop
    ([0.001], 9, (0.002, 2, 1), False),                 # fewer than P values
    ([0.001], 1, (0.002, 1, 1), True),                  # P = 1 stops at the first small Δ
    ([], 5, (0.002, 1, 1), False),                      # no Δ yet
    ([0.0019, 0.0019, 0.0019], 7, (0.002, 3, 7), True),
    ([0.0021, 0.0019, 0.0019], 7, (0.002, 3, 7), False),
])
def test_should_stop_truth_table(deltas, steps, rule, expected):
    assert EarlyExitRule(*rule).should_stop(deltas, steps) is expected


@pytest.mark.parametrize("kw,match", [(dict(epsilon=0.0), "epsilon"), (dict(epsilon=-1e-3), "epsilon"),
                                      (dict(patience=0), "patience"), (dict(warmup=0), "warmup")])
def test_rule_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        EarlyExitRule(**kw)


def test_policy_validation_and_defaults():
    with pytest.raises(ValueError, match="mode"):
        EarlyExit(mode="image")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value_range"):
        EarlyExit(value_range=0.0)
    e = EarlyExit()
    assert e.base == UniformDDIM(20) and e.rule == EarlyExitRule(0.002, 2, 4) and e.mode == "tile"
    assert e.steps == 20 and e.name == "early-exit" and e.value_range == 2.0


def test_decide_records_delta_and_stops():
    """decide() appends Δ(x̂0_new, x̂0_old)/R to the policy's history of that tile (none on the first step) and returns
    STOP when the rule fires on that history with steps_taken = tile.evaluations; begin() resets the memory."""
    pol = EarlyExit(UniformDDIM(10), EarlyExitRule(0.1, 2, 3), value_range=4.0)
    pol.begin(2)
    tile = TileState(1, spaced_timesteps(10))
    x = torch.zeros(3, 4, 4)
    tile.evaluations = 1
    assert not pol.decide(tile, x, None).stop and pol.deltas(1) == []
    tile.evaluations = 2
    assert not pol.decide(tile, x + 0.2, x).stop and pol.deltas(1) == pytest.approx([0.05])  # warm-up not reached
    tile.evaluations = 3
    assert pol.decide(tile, x + 0.4, x + 0.2) == STOP and pol.deltas(1) == pytest.approx([0.05, 0.05])
    tile.evaluations = 4
    assert not pol.decide(tile, x + 1.0, x + 0.4).stop and pol.deltas(1)[-1] == pytest.approx(0.15)
    assert pol.deltas(0) == [] and pol.memory()["deltas"] == [[], pytest.approx([0.05, 0.05, 0.15])]
    assert not hasattr(tile, "history")  # the memory is the policy's, not a field of TileState
    pol.begin(2)
    assert pol.memory() == {"deltas": [[], []]}


# -------------------------------------------------------------------------------------------- per-tile, executed
@pytest.mark.parametrize("warmup,patience,expected", [(3, 1, 3), (5, 2, 5), (2, 2, 3), (1, 1, 2)])
def test_huge_epsilon_stops_every_tile_after_warmup(model, cond, warmup, patience, expected):
    """With ε huge the rule fires as soon as it may: after max(T_min, P + 1) evaluations (Δ needs two x̂0)."""
    res = run(model, cond, EarlyExit(UniformDDIM(N), EarlyExitRule(HUGE, patience, warmup)))
    assert [s.evaluations for s in res.tiles] == [expected] * 9
    assert all(s.done for s in res.tiles) and all(s.position == expected for s in res.tiles)
    assert [len(h) for h in deltas(res)] == [expected - 1] * 9
    assert res.cost.tile_evaluations == 9 * expected and res.iterations == expected


def test_tiny_epsilon_never_stops(model, cond, uniform_run):
    res = run(model, cond, EarlyExit(UniformDDIM(N), EarlyExitRule(TINY, 1, 1)))
    assert [s.evaluations for s in res.tiles] == [N] * 9
    assert [len(h) for h in deltas(res)] == [N - 1] * 9
    torch.testing.assert_close(res.x0, uniform_run[0].x0, rtol=0, atol=1e-6)  # same chain as uniform DDIM


def test_stopped_tile_keeps_its_clean_estimate_not_x_t(model, cond, uniform_run):
    k = 3
    rec = Recorder()
    res = run(model, cond, EarlyExit(UniformDDIM(N), EarlyExitRule(HUGE, 1, k)), callback=rec)
    _, uni = uniform_run
    for j, s in enumerate(res.tiles):
        assert s.evaluations == k
        torch.testing.assert_close(res.tile_x0[j], rec.x0[k - 1][j], rtol=0, atol=0)  # its last x̂0 ...
        torch.testing.assert_close(res.tile_x0[j], uni.x0[k - 1][j], rtol=1e-4, atol=1e-5)  # ... = uniform's x̂0 then
        # ... and not its x_t, which mid-chain (t_prev > 0) is still noisy
        assert (rec.xt[k - 1][j] - res.tile_x0[j]).abs().max() > 0.1
    merged = res.grid.merge(res.tile_x0)
    torch.testing.assert_close(res.x0, merged, rtol=0, atol=0)


def test_history_is_delta_of_consecutive_x0(model, cond, uniform_run):
    res, rec = uniform_run
    pol = EarlyExit(UniformDDIM(N), EarlyExitRule(TINY, 1, 1), value_range=3.0)
    r2 = run(model, cond, pol)
    for j, h in enumerate(deltas(r2)):
        expected = [delta(rec.x0[i + 1][j], rec.x0[i][j], 3.0) for i in range(N - 1)]
        np.testing.assert_allclose(h, expected, rtol=1e-3, atol=1e-7)
    assert res.policy_memory == {}  # uniform DDIM records nothing
    r3 = run(model, cond, pol)  # the same policy object again: its memory is reset, not appended to
    assert deltas(r3) == deltas(r2)


def test_tiles_stop_at_their_own_iteration(model, cond, uniform_run):
    """ε between the tiles' Δ values at one step: the rule stops exactly the tiles whose Δ fell below ε there."""
    res_u, rec = uniform_run
    step = 4  # evaluations when the rule is first allowed (T_min = 4, P = 1: looks at Δ after step 4 only ...)
    d = np.array([[delta(rec.x0[i + 1][j], rec.x0[i][j]) for i in range(N - 1)] for j in range(9)])
    srt = np.sort(d[:, step - 2])
    eps = float(srt[3] + srt[4]) / 2  # 4 tiles below ε at step T_min, 5 above (no value near ε)
    pol = EarlyExit(UniformDDIM(N), EarlyExitRule(eps, 1, step))
    res = run(model, cond, pol)
    for j, s in enumerate(res.tiles):
        # first n ≥ T_min with Δ after step n (index n − 2) below ε; else the full N steps
        first = next((n for n in range(step, N + 1) if d[j, n - 2] < eps), N)
        assert s.evaluations == first, (j, d[j])
    ev = [s.evaluations for s in res.tiles]
    assert ev.count(step) == 4 and max(ev) > step  # 4 tiles stopped at T_min, the others later


# --------------------------------------------------------------------------------------------------- global mode
def test_global_deltas_is_the_rms_over_all_tiles(uniform_run):
    res, rec = uniform_run
    histories = [[delta(rec.x0[i + 1][j], rec.x0[i][j]) for i in range(N - 1)] for j in range(9)]
    g = global_deltas(histories)
    all_x0 = [torch.stack(r) for r in rec.x0]  # (9, 3, 16, 16) per iteration
    expected = [((all_x0[i + 1].double() - all_x0[i].double()) ** 2).mean().sqrt().item() / 2 for i in range(N - 1)]
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    # hand-made: RMS of per-tile values; shortest history sets the length
    hand = [[3.0, 4.0, 1.0], [4.0, 3.0]]
    assert global_deltas(hand) == pytest.approx([math.sqrt(12.5), math.sqrt(12.5)])
    assert global_deltas([]) == []


def test_global_mode_stops_all_tiles_together(model, cond, uniform_run):
    _, rec = uniform_run
    gd = [((torch.stack(rec.x0[i + 1]).double() - torch.stack(rec.x0[i]).double()) ** 2).mean().sqrt().item() / 2
          for i in range(N - 1)]
    warmup, patience = 3, 2
    eps = max(gd[warmup - 1 : warmup + 1]) * 1.001  # the window ending after step warmup + 2 is below ε
    expected = next(n for n in range(warmup, N + 1)
                    if n - 1 >= patience and max(gd[n - 1 - patience : n - 1]) < eps)
    assert warmup <= expected < N
    res = run(model, cond, EarlyExit(UniformDDIM(N), EarlyExitRule(eps, patience, warmup), mode="global"))
    assert [s.evaluations for s in res.tiles] == [expected] * 9
    assert res.iterations == expected and all(s.done for s in res.tiles)
    np.testing.assert_allclose(global_deltas(deltas(res)), gd[: expected - 1], rtol=1e-3, atol=1e-8)
    tile_mode = run(model, cond, EarlyExit(UniformDDIM(N), EarlyExitRule(eps, patience, warmup), mode="tile"))
    assert len({s.evaluations for s in tile_mode.tiles}) > 1  # per tile, the same rule stops tiles at different steps


def test_global_mode_with_huge_epsilon_stops_at_warmup(model, cond):
    res = run(model, cond, EarlyExit(UniformDDIM(N), EarlyExitRule(HUGE, 1, 3), mode="global"))
    assert [s.evaluations for s in res.tiles] == [3] * 9 and res.iterations == 3


def _allocation(budgets, n_min=1, n_max=8):
    v = torch.tensor([(b - n_min) / (n_max - n_min) for b in budgets])
    fn = lambda x: v[:, None, None, None].expand(len(v), 1, *x.shape[-2:]).clone()  # noqa: E731
    return StepAllocation(n_min=n_min, n_max=n_max, normalize="calibrated", calibration=Calibration("x", 0.0, 1.0),
                          estimator_fn=fn)


def test_global_mode_refuses_different_plans(model, cond):
    pol = EarlyExit(_allocation([1, 2, 3, 4, 5, 6, 7, 8, 8]), mode="global")
    with pytest.raises(ValueError, match="one schedule for every tile"):
        pol.plan(torch.zeros(9, 3, TILE, TILE), 1000)
    with pytest.raises(ValueError, match="one schedule for every tile"):
        run(model, cond, pol)
    same = EarlyExit(_allocation([5] * 9), mode="global")  # equal budgets are fine
    assert same.plan(torch.zeros(9, 3, TILE, TILE), 1000) == [spaced_timesteps(5)] * 9


# --------------------------------------------------------------------------------------------------- composition
BUDGETS = [1, 3, 2, 5, 8, 4, 2, 6, 7]


def test_adasr_respects_budgets_and_stops_only_shorten(model, cond):
    cal = Calibration("x", 0.0, 1.0)
    vals = torch.tensor([(b - 1) / 7 for b in BUDGETS])
    fn = lambda x: vals[:, None, None, None].expand(9, 1, *x.shape[-2:]).clone()  # noqa: E731
    cfg = AdaptiveConfig(n_max=8, n_min=1, normalize="calibrated", epsilon=TINY, patience=1, warmup=1)
    rec = Recorder()
    never = run(model, cond, make_policy("adasr", cfg, calibration=cal, estimator_fn=fn), callback=rec)
    assert [s.evaluations for s in never.tiles] == BUDGETS  # ε tiny: allocation alone
    assert [s.timesteps for s in never.tiles] == [spaced_timesteps(b) for b in BUDGETS]
    assert never.cost.tile_evaluations == sum(BUDGETS)
    fast = run(model, cond, make_policy("adasr", cfg.with_(epsilon=HUGE, warmup=3), calibration=cal,
                                        estimator_fn=fn))
    assert [s.evaluations for s in fast.tiles] == [min(b, 3) for b in BUDGETS]  # short budgets end first
    assert [s.timesteps for s in fast.tiles] == [spaced_timesteps(b) for b in BUDGETS]  # plans are not changed
    for j, s in enumerate(fast.tiles):  # a stopped tile keeps the allocation run's x̂0 after the same steps
        torch.testing.assert_close(fast.tile_x0[j], rec.x0[s.evaluations - 1][j], rtol=1e-4, atol=1e-5)
    # a moderate ε: between the two, tile by tile
    d = [v for h in deltas(never) for v in h]
    mid = run(model, cond, make_policy("adasr", cfg.with_(epsilon=float(np.median(d)), warmup=2), calibration=cal,
                                       estimator_fn=fn))
    ev = [s.evaluations for s in mid.tiles]
    assert all(min(b, 2) <= e <= b for e, b in zip(ev, BUDGETS))
    assert mid.cost.tile_evaluations == sum(ev) < sum(BUDGETS)
