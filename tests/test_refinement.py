"""adasr.sampling.refinement: snapshots of the merged current x̂0 taken by a consumer of iterate_tiles — on
hand-made sampler states (x̂0 or x_t per tile, exact merge) and on a real run of a tiny model with per-tile budgets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from adasr.cost import CostCounter
from adasr.data import to_uint8
from adasr.diffusion.timesteps import spaced_timesteps
from adasr.sampling.loop import SamplerState, iterate_tiles, sample_tiles
from adasr.sampling.policies import Policy, TileState, UniformDDIM
from adasr.sampling.refinement import RefinementRecorder, Snapshot, record_refinement
from adasr.sampling.tiles import TileGrid

GRID = TileGrid.cover(64, 64, 32, 16)  # 3×3 tiles of 32 with overlap 16

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def _state(iteration: int, done: list[bool]) -> SamplerState:
    """9 tiles: the even ones evaluated once (x̂0 = 0.5 − 0.1·k), the odd ones never (x_t = −1, no x̂0)."""
    tiles = []
    for k, d in enumerate(done):
        s = TileState(k, [999, 0], x_t=torch.full((3, 32, 32), -1.0))
        if k % 2 == 0:
            s.x0 = torch.full((3, 32, 32), 0.5 - 0.1 * k)
            s.evaluations = 1
        s.done = d
        tiles.append(s)
    return SamplerState(iteration, tiles, GRID, CostCounter(), UniformDDIM(2), "gaussian", 0.0)


def test_observe_merges_x0_or_x_t_and_keeps_chosen_iterations():
    rec = RefinementRecorder(to_image=lambda r: 0.5 * r, at=[2, 3])
    rec.observe(_state(1, [False] * 9))
    rec(_state(2, [True] + [False] * 8))  # the recorder is itself the observer callable
    assert [s.iteration for s in rec.snapshots] == [2]
    snap = rec.get(2)
    tiles = torch.stack([torch.full((3, 32, 32), 0.5 - 0.1 * k if k % 2 == 0 else -1.0) for k in range(9)])
    expected = to_uint8(0.5 * GRID.merge(tiles, "gaussian"))
    assert snap.image.dtype == np.uint8 and snap.image.shape == (64, 64, 3)
    np.testing.assert_array_equal(snap.image, expected)
    assert snap.image[0, 0, 0] == round((0.5 * 0.5 + 1) * 127.5)  # corner: tile 0 alone, its x̂0
    assert snap.image[0, 40, 0] < snap.image[0, 0, 0]  # tiles 1 (x_t = −1) and 2 blend there
    assert snap.done == [True] + [False] * 8 and snap.running == 8
    assert snap.evaluations == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    with pytest.raises(KeyError):
        rec.get(1)


def test_merge_override_and_identity_image():
    st = _state(1, [False] * 9)
    last = RefinementRecorder(merge="last")
    last.observe(st)
    gauss = RefinementRecorder()
    gauss.observe(st)
    np.testing.assert_array_equal(last.snapshots[0].image, to_uint8(st.current_x0("last")))
    np.testing.assert_array_equal(gauss.snapshots[0].image, to_uint8(st.current_x0()))
    assert not np.array_equal(last.snapshots[0].image, gauss.snapshots[0].image)


@dataclass(frozen=True)
class Budgets(Policy):
    """Tile k gets budgets[k] DDIM steps (linspace), never stops early."""

    budgets: tuple[int, ...] = (2, 4, 3, 1)
    name: str = "budgets"

    @property
    def steps(self) -> int:  # type: ignore[override]
        return max(self.budgets)

    def plan(self, cond_tiles, num_train_timesteps):
        return [spaced_timesteps(n, num_train_timesteps) for n in self.budgets]


def test_record_refinement_follows_a_real_run(make_tiny_model):
    model = make_tiny_model(16)
    cond = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1  # 2×2 tiles of 16
    budgets = (2, 4, 3, 1)
    to_image = lambda r: model.output(r, cond)  # noqa: E731
    res, snaps = record_refinement(iterate_tiles(model, cond, policy=Budgets(budgets), tile=16, overlap=0, seed=5),
                                   to_image)
    assert [s.iteration for s in snaps] == [1, 2, 3, 4] == list(range(1, res.iterations + 1))
    for s in snaps:
        assert s.evaluations == [min(s.iteration, n) for n in budgets]
        assert s.done == [s.iteration >= n for n in budgets]
        assert s.running == sum(n > s.iteration for n in budgets)
    # the last snapshot is the result; the run is the same as sample_tiles' (recording changes nothing)
    np.testing.assert_array_equal(snaps[-1].image, to_uint8(to_image(res.x0)))
    plain = sample_tiles(model, cond, policy=Budgets(budgets), tile=16, overlap=0, seed=5)
    assert torch.equal(res.x0, plain.x0)
    # tile 3 (one step) is finished after iteration 1: its pixels no longer change (overlap 0: no blending)
    np.testing.assert_array_equal(snaps[0].image[16:, 16:], snaps[-1].image[16:, 16:])
    assert not np.array_equal(snaps[0].image[:16, 16:], snaps[-1].image[:16, 16:])  # tile 1 runs to step 4
    _, only = record_refinement(iterate_tiles(model, cond, policy=Budgets(budgets), tile=16, overlap=0, seed=5),
                                to_image, at=[2, 4])
    assert [s.iteration for s in only] == [2, 4]
    np.testing.assert_array_equal(only[0].image, snaps[1].image)
    assert isinstance(only[0], Snapshot)
