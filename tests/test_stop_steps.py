"""adasr.adaptive.early_exit.stop_steps: replaying the Δx̂0 rule on recorded Δ histories gives the stop steps the
EarlyExit policy itself reaches — driven by hand on fixed x̂0 sequences, and executed by the tile-batch sampler
with a tiny random model (where the replayed image is also the policy's result)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasr.adaptive.early_exit import EarlyExit, EarlyExitRule, global_deltas, stop_steps
from adasr.sampling.loop import iterate_tiles, run_to_end
from adasr.sampling.policies import TileState, UniformDDIM

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def _trajectories(deltas: np.ndarray) -> list[list[torch.Tensor]]:
    """Per tile, a sequence of constant x̂0 tensors whose consecutive RMS changes / 2 are ``deltas[p]``."""
    out = []
    for row in deltas:
        level = 0.0
        xs = [torch.zeros(3, 4, 4)]
        for d in row:
            level += 2 * d
            xs.append(torch.full((3, 4, 4), level))
        out.append(xs)
    return out


def _run_policy(policy: EarlyExit, traj: list[list[torch.Tensor]]) -> list[int]:
    """Drive ``policy`` the way iterate_tiles does (decide per tile, then end_iteration) on fixed x̂0 sequences."""
    n = len(traj[0])
    policy.begin(len(traj))
    tiles = [TileState(i, list(range(n - 1, -1, -1))) for i in range(len(traj))]
    for k in range(n):
        for s in tiles:
            if s.done:
                continue
            s.evaluations += 1
            decision = policy.decide(s, traj[s.index][k], s.x0)
            s.x0 = traj[s.index][k]
            s.position += 1
            if decision.stop or s.position >= n:
                s.done = True
        for i in policy.end_iteration(tiles):
            tiles[i].done = True
    return [s.evaluations for s in tiles]


@pytest.mark.parametrize("mode", ["tile", "global"])
def test_stop_steps_replays_the_policy(mode):
    rng = np.random.default_rng(0)
    deltas = np.exp(rng.uniform(np.log(5e-4), np.log(8e-3), size=(6, 11)))  # 6 tiles, 12-step schedule
    deltas[2, 3:6] = 1e-4  # one tile with a quiet stretch
    traj = _trajectories(deltas)
    seen = set()
    for rule in (EarlyExitRule(0.002, 2, 4), EarlyExitRule(0.004, 1, 3), EarlyExitRule(0.001, 3, 2),
                 EarlyExitRule(1e-9, 1, 1)):
        policy = EarlyExit(UniformDDIM(12), rule, mode)
        expected = _run_policy(policy, traj)
        np.testing.assert_allclose(policy.memory()["deltas"][0], deltas[0, : expected[0] - 1], rtol=1e-5)
        assert stop_steps(deltas.tolist(), rule, 12, mode) == expected, (rule, expected)
        seen.update(expected)
    assert len(seen) > 1 and min(seen) < 12  # the rules stop tiles, at different steps
    # a rule that never fires costs N everywhere
    assert stop_steps(deltas.tolist(), EarlyExitRule(1e-9), 12, mode) == [12] * 6
    with pytest.raises(ValueError, match="11 Δ values"):
        stop_steps([[0.1] * 3], EarlyExitRule(), 12)
    with pytest.raises(ValueError, match="mode"):
        stop_steps(deltas.tolist(), EarlyExitRule(), 12, "image")  # type: ignore[arg-type]


def test_stop_steps_first_possible_stop_is_warmup():
    flat = [[1e-4] * 9] * 2
    assert stop_steps(flat, EarlyExitRule(0.002, 2, 4), 10) == [4, 4]
    assert stop_steps(flat, EarlyExitRule(0.002, 5, 1), 10) == [6, 6]  # P values need P + 1 steps
    # global mode: the whole-image Δ is the RMS over tiles, so one loud tile keeps every tile running
    loud = [[1e-4] * 9, [1e-4] * 4 + [0.01] * 5]
    assert stop_steps(loud, EarlyExitRule(0.002, 1, 3), 10, "tile") == [3, 3]
    assert stop_steps(loud, EarlyExitRule(0.002, 1, 6), 10, "tile") == [6, 10]
    assert stop_steps(loud, EarlyExitRule(0.002, 1, 6), 10, "global") == [10, 10]
    assert global_deltas(loud)[4] == pytest.approx(np.sqrt((1e-8 + 1e-4) / 2))


TILE, OVERLAP, N = 16, 4, 8


@pytest.mark.parametrize("mode", ["tile", "global"])
def test_replay_of_a_recorded_run_matches_the_sampler(make_tiny_model, mode):
    """One run that never stops (Δ recorded by the policy, x̂0 of every tile after every step kept by an observer
    of iterate_tiles) replays real runs: same stop steps, and the stopped tiles' x̂0 merge into the same image."""
    model = make_tiny_model(TILE)
    cond = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1  # 9 tiles
    frames: list[torch.Tensor] = []  # (9, 3, 16, 16) per iteration

    def run(rule, observe=None):
        states = iterate_tiles(model, cond, policy=EarlyExit(UniformDDIM(N), rule, mode), tile=TILE,
                               overlap=OVERLAP, seed=3, precision="fp32")
        return run_to_end(states, observe)

    never = run(EarlyExitRule(1e-30, 1, 1), lambda s: frames.append(s.tile_x0().clone()))
    histories = never.policy_memory["deltas"]
    assert [len(h) for h in histories] == [N - 1] * 9 and len(frames) == N
    d = np.array(histories)
    # ε's at quantiles of the recorded Δ: rules that stop tiles at different steps (or all at once, globally)
    rules = [EarlyExitRule(float(np.quantile(d[:, 1:], q)), p, w) for q, p, w in ((0.5, 1, 2), (0.3, 2, 3),
                                                                                  (0.8, 1, 4))]
    seen, mixed = set(), False
    for rule in rules:
        replayed = stop_steps(histories, rule, N, mode)
        res = run(rule)
        assert replayed == [s.evaluations for s in res.tiles], rule
        image = res.grid.merge(torch.stack([frames[k - 1][p] for p, k in enumerate(replayed)]))
        torch.testing.assert_close(image, res.x0, rtol=1e-4, atol=1e-5)
        seen.update(replayed)
        mixed |= len(set(replayed)) > 1
    assert len(seen) > 1 and min(seen) < N
    assert mixed == (mode == "tile")  # per tile, some rule stops tiles at different steps; globally never
