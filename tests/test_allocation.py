"""adasr.adaptive.allocation: the complexity → steps mappings (closed forms), the StepAllocation policy's plans, and
that the tile-batch sampler really executes each tile's budget (tiny random model, 32×32 image, 9 tiles)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adasr.adaptive.allocation import MAPPINGS, StepAllocation, allocate_steps, tile_value_map
from adasr.adaptive.complexity import Calibration
from adasr.sampling.loop import sample_tiles
from adasr.sampling.policies import UniformDDIM, spaced_timesteps
from adasr.sampling.tiles import TileGrid

TILE, OVERLAP, SIZE = 16, 4, 32  # 3×3 = 9 tiles (starts 0, 12, 16)
IDENTITY = Calibration("fixed", 0.0, 1.0)  # 'calibrated' with [0, 1] thresholds: C_p = the raw tile mean exactly


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model(TILE)


@pytest.fixture(scope="module")
def cond():
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1


def forced(values):
    """An estimator giving tile k the constant map values[k] (whatever the pixels)."""
    v = torch.as_tensor(values, dtype=torch.float32)

    def fn(x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == len(v), "one value per tile"
        return v[:, None, None, None].expand(len(v), 1, *x.shape[-2:]).clone()

    return fn


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


# ---------------------------------------------------------------------------------------------- allocate_steps
C_P = [0.0, 0.1, 0.26, 0.74, 0.93, 1.0, 1.5, -0.2]  # no value lands on a .5 tie in any mapping below


@pytest.mark.parametrize("n_min,n_max", [(2, 12), (1, 20), (3, 7)])
def test_linear_mapping_closed_form(n_min, n_max):
    got = allocate_steps(torch.tensor(C_P), n_min, n_max, "linear")
    expected = [round_half_up(n_min + (n_max - n_min) * min(max(c, 0), 1)) for c in C_P]
    assert got == expected
    assert all(isinstance(n, int) for n in got)
    assert got[0] == n_min and got[5] == got[6] == n_max and got[7] == n_min  # clipping of C_p to [0, 1]


def test_linear_mapping_rounds_to_nearest_not_truncates():
    # 2 + 10·0.26 = 4.6 → 5 (AdaSR's int() would give 4); 2 + 10·0.74 = 9.4 → 9
    assert allocate_steps(torch.tensor([0.26, 0.74]), 2, 12) == [5, 9]


def test_exponential_mapping_closed_form():
    got = allocate_steps(torch.tensor(C_P), 2, 12, "exponential")
    expected = [round_half_up(2 + 10 * min(max(c, 0), 1) ** 2) for c in C_P]
    assert got == expected
    assert got[:6] == [2, 2, 3, 7, 11, 12]  # 2 + 10·c²: 2, 2.1, 2.676, 7.476, 10.649, 12


def test_threshold_mapping_closed_form():
    c = [0.0, 0.29, 0.31, 0.45, 0.65, 0.71, 1.0]
    got = allocate_steps(torch.tensor(c), 2, 12, "threshold", low=0.3, high=0.7)
    # below low: N_min; above high: N_max; between: linear in (c − 0.3)/0.4
    assert got == [2, 2, 2, round_half_up(2 + 10 * 0.375), round_half_up(2 + 10 * 0.875), 12, 12] == [2, 2, 2, 6, 11,
                                                                                                          12, 12]
    assert allocate_steps(torch.tensor([0.5]), 1, 9, "threshold", low=0.0, high=1.0) == [5]  # = linear


def test_equal_min_max_gives_constant_budget():
    for mapping in MAPPINGS:
        assert allocate_steps(torch.rand(6), 7, 7, mapping) == [7] * 6


@pytest.mark.parametrize("kw,match", [
    (dict(n_min=0, n_max=5), "n_min <= n_max"), (dict(n_min=6, n_max=5), "n_min <= n_max"),
    (dict(n_min=1, n_max=5, mapping="cubic"), "mapping must be one of"),
    (dict(n_min=1, n_max=5, mapping="threshold", low=0.7, high=0.3), "thresholds"),
    (dict(n_min=1, n_max=5, mapping="threshold", low=0.5, high=0.5), "thresholds"),
    (dict(n_min=1, n_max=5, mapping="threshold", low=-0.1, high=0.5), "thresholds"),
    (dict(n_min=1, n_max=5, mapping="threshold", low=0.1, high=1.2), "thresholds"),
])
def test_allocate_steps_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        allocate_steps(torch.tensor([0.5]), **kw)


def test_step_allocation_validates_on_construction():
    with pytest.raises(ValueError, match="n_min <= n_max"):
        StepAllocation(n_min=5, n_max=4)
    with pytest.raises(ValueError, match="unknown complexity estimator 'edges'"):
        StepAllocation(estimator="edges")
    with pytest.raises(ValueError, match="mapping must be"):
        StepAllocation(mapping="square")  # type: ignore[arg-type]
    StepAllocation(estimator="edges", estimator_fn=forced([0.0]))  # a function replaces the name
    assert StepAllocation(n_min=2, n_max=17).steps == 17


# ------------------------------------------------------------------------------------------------------- plans
def test_plan_is_spaced_timesteps_of_each_budget():
    budgets = [1, 2, 3, 5, 8, 4, 6, 7, 2]
    vals = [(b - 1) / 7 for b in budgets]  # N_p = 1 + 7·C_p
    pol = StepAllocation(n_min=1, n_max=8, normalize="calibrated", calibration=IDENTITY, estimator_fn=forced(vals))
    tiles = torch.zeros(9, 3, TILE, TILE)
    assert pol.budgets(tiles) == budgets
    torch.testing.assert_close(pol.complexity(tiles), torch.tensor(vals))
    plans = pol.plan(tiles, 1000)
    assert plans == [spaced_timesteps(b, 1000) for b in budgets]
    assert plans[0] == [999] and plans[4] == spaced_timesteps(8, 1000)
    assert pol.plan(tiles, 50) == [spaced_timesteps(b, 50) for b in budgets]
    lead = StepAllocation(n_min=1, n_max=8, normalize="calibrated", calibration=IDENTITY, estimator_fn=forced(vals),
                          schedule="leading")
    assert lead.plan(tiles, 1000) == [spaced_timesteps(b, 1000, "leading") for b in budgets]


def test_plan_with_a_named_estimator_and_image_normalisation():
    """gradient on a half-flat, half-textured image: the flat tiles get N_min, the busiest tile N_max."""
    rng = np.random.default_rng(0)
    img = np.zeros((1, 3, SIZE, SIZE), np.float32)
    img[..., SIZE // 2 :] = rng.uniform(-1, 1, (1, 3, SIZE, SIZE // 2))
    tiles = TileGrid.cover(SIZE, SIZE, TILE, OVERLAP).split(torch.from_numpy(img))
    pol = StepAllocation(n_min=2, n_max=10, estimator="gradient", normalize="patches")
    b = pol.budgets(tiles)
    assert b[0] == b[3] == 2 and max(b) == 10  # tiles at left 0 are flat; (patches: the busiest tile is 1)
    assert all(2 <= n <= 10 for n in b)


def test_calibrated_without_calibration_fails_at_plan_time():
    pol = StepAllocation(normalize="calibrated", estimator_fn=forced([0.1, 0.2]))
    with pytest.raises(ValueError, match="needs a Calibration"):
        pol.plan(torch.zeros(2, 3, 8, 8), 1000)


# --------------------------------------------------------------------------------------------------- execution
BUDGETS = [1, 3, 2, 5, 8, 4, 2, 6, 3]


def allocation(budgets=BUDGETS, n_min=1, n_max=8):
    vals = [(b - n_min) / max(n_max - n_min, 1) for b in budgets]
    return StepAllocation(n_min=n_min, n_max=n_max, normalize="calibrated", calibration=IDENTITY,
                          estimator_fn=forced(vals))


def test_sample_tiles_executes_each_budget(model, cond):
    res = sample_tiles(model, cond, policy=allocation(), tile=TILE, overlap=OVERLAP, seed=2, precision="fp32")
    assert len(res.grid) == 9
    assert [s.evaluations for s in res.tiles] == BUDGETS
    assert [s.timesteps for s in res.tiles] == [spaced_timesteps(b, 1000) for b in BUDGETS]
    assert all(s.done for s in res.tiles)
    assert res.cost.tile_evaluations == sum(BUDGETS) == 34
    assert res.iterations == res.cost.unet_calls == max(BUDGETS)  # one batched UNet call per iteration
    assert res.x0.shape == (1, 3, SIZE, SIZE) and torch.isfinite(res.x0).all()


def test_each_tile_equals_uniform_ddim_at_its_own_budget(model, cond):
    """Tile k of the allocation run is the same chain as tile k of a uniform DDIM-N_k run (same seed: the noise is
    drawn for the whole image): the sampler runs every tile's own schedule, batched with the others."""
    res = sample_tiles(model, cond, policy=allocation(), tile=TILE, overlap=OVERLAP, seed=2, precision="fp32")
    for n in sorted(set(BUDGETS)):
        uni = sample_tiles(model, cond, policy=UniformDDIM(n), tile=TILE, overlap=OVERLAP, seed=2, precision="fp32")
        for k, b in enumerate(BUDGETS):
            if b == n:
                torch.testing.assert_close(res.tile_x0[k], uni.tile_x0[k], rtol=1e-4, atol=1e-5)


def test_constant_budget_equals_uniform(model, cond):
    res = sample_tiles(model, cond, policy=allocation([4] * 9, n_min=4, n_max=4), tile=TILE, overlap=OVERLAP, seed=5,
                       precision="fp32")
    uni = sample_tiles(model, cond, policy=UniformDDIM(4), tile=TILE, overlap=OVERLAP, seed=5, precision="fp32")
    assert res.cost.tile_evaluations == uni.cost.tile_evaluations == 36
    torch.testing.assert_close(res.x0, uni.x0, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ tile_value_map
def test_tile_value_map_without_overlap_is_piecewise_constant():
    grid = TileGrid.cover(32, 48, 16, 0)  # 2×3 tiles, no overlap: each pixel belongs to exactly one tile
    vals = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    m = tile_value_map(vals, grid)
    assert m.shape == (32, 48) and m.dtype == torch.float32
    expected = np.repeat(np.repeat(np.array(vals).reshape(2, 3), 16, 0), 16, 1)
    np.testing.assert_array_equal(m.numpy(), expected)


def test_tile_value_map_nearest_centre_with_overlap():
    grid = TileGrid.cover(SIZE, 40, TILE, OVERLAP)  # overlapping tiles, the last column snapped to the border
    vals = np.arange(len(grid), dtype=np.float32) * 1.5 + 0.25
    m = tile_value_map(torch.from_numpy(vals), grid).numpy()
    # brute force: Chebyshev distance to each centre, relative to the tile size; the first tile wins ties
    ys, xs = np.mgrid[0:SIZE, 0:40]
    d = np.stack([np.maximum(np.abs(ys - (t + (TILE - 1) / 2)) / TILE, np.abs(xs - (l + (TILE - 1) / 2)) / TILE)
                  for t, l in grid.positions])
    np.testing.assert_array_equal(m, vals[np.argmin(d, axis=0)])
    for k, (t, l) in enumerate(grid.positions):  # the pixel next to a tile's centre shows that tile's value
        assert m[t + TILE // 2, l + TILE // 2] == vals[k]


def test_tile_value_map_needs_one_value_per_tile():
    grid = TileGrid.cover(32, 32, 16, 0)
    with pytest.raises(ValueError, match="one value per tile"):
        tile_value_map([1.0, 2.0, 3.0], grid)
