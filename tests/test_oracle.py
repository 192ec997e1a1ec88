"""The hindsight oracle (adasr.adaptive.oracle): the knapsack, the frontier, the image-space merge, the headroom."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from adasr.adaptive import oracle as O
from adasr.data import center_crop, load_skimage, make_pair, to_tensor
from adasr.sampling.loop import sample_tiles
from adasr.sampling.policies import UniformDDIM
from adasr.sampling.tiles import TileGrid

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------------ knapsack
def brute_force(costs: np.ndarray, values: np.ndarray, budget: int) -> tuple[float, int | None]:
    """(optimal Σ values within budget, the least total cost among the optimal choices) by enumeration."""
    best, cheapest = np.inf, None
    n, m = costs.shape
    for ch in itertools.product(range(m), repeat=n):
        c = sum(costs[i, j] for i, j in enumerate(ch))
        v = sum(values[i, j] for i, j in enumerate(ch))
        if c > budget:
            continue
        if v < best - 1e-12:
            best, cheapest = v, c
        elif abs(v - best) <= 1e-12:
            cheapest = min(cheapest, c)
    return best, cheapest


@pytest.mark.parametrize("integer_values", [True, False])
def test_knapsack_matches_brute_force(integer_values):
    rng = np.random.default_rng(0)
    for _ in range(40):
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        costs = rng.integers(0, 6, (n, m))
        # integer values make exact ties common, which exercises the tie-breaking
        values = rng.integers(0, 4, (n, m)).astype(float) if integer_values else rng.random((n, m))
        max_b = int(costs.max(1).sum()) + 1
        sol = O.multiple_choice_knapsack(costs, values, max_b)
        best, table = sol  # unpacks as (best, table)
        assert best.shape == (max_b + 1,) and table.shape == (n, max_b + 1)
        for B in range(max_b + 1):
            opt, cheapest = brute_force(costs, values, B)
            if not np.isfinite(opt):
                assert not np.isfinite(best[B]) and not sol.feasible(B)
                with pytest.raises(ValueError):
                    sol.choose(B)
                continue
            assert best[B] == pytest.approx(opt, abs=1e-9)
            ch = sol.choose(B)
            assert ch.shape == (n,)
            assert sol.cost_of(ch) <= B  # the choice respects the budget
            assert sol.value_of(ch) == pytest.approx(opt, abs=1e-9)
            assert sol.cost_of(ch) == cheapest  # ties prefer lower cost
            np.testing.assert_array_equal(sol.choose(B), ch)  # deterministic


def test_knapsack_single_tile_picks_the_best_affordable_option():
    rng = np.random.default_rng(1)
    costs = np.arange(1, 11)[None]  # N = 1 … 10
    values = rng.random((1, 10))
    values[0, 6] = values[0, 2]  # a tie: the cheaper option (N = 3) must win
    sol = O.multiple_choice_knapsack(costs, values, 12)
    for N in range(1, 13):
        afford = np.flatnonzero(costs[0] <= N)
        expected = afford[np.argmin(values[0, afford])]  # argmin keeps the first (cheapest) of equal values
        assert sol.choose(N)[0] == expected
    with pytest.raises(ValueError):
        sol.choose(0)


def test_knapsack_rejects_bad_input():
    with pytest.raises(ValueError):
        O.multiple_choice_knapsack(np.ones((2, 3)), np.ones((2, 2)), 4)
    with pytest.raises(ValueError):
        O.multiple_choice_knapsack(np.array([[1.5]]), np.ones((1, 1)), 4)
    with pytest.raises(ValueError):
        O.multiple_choice_knapsack(np.ones((1, 1), int), np.array([[np.nan]]), 4)


# ------------------------------------------------------------------------------------------------ synthetic curves
def synthetic_curves(options, seed: int = 0, size: int = 64, tile: int = 32, overlap: int = 8) -> O.TileCurves:
    """TileCurves without a model: random smooth tile images of a real HR crop plus noise, random tile metrics."""
    rng = np.random.default_rng(seed)
    hr = center_crop(load_skimage("astronaut"), size)
    grid = TileGrid.cover(size, size, tile, overlap)
    base = grid.split(to_tensor(hr))
    opts = O.family_options(options)
    imgs = torch.stack([base + 0.05 * (i + 1) * torch.from_numpy(rng.standard_normal(base.shape)).float()
                        for i in range(len(opts))])
    lp = rng.random((len(grid), len(opts)))
    ps = 20 + 10 * rng.random((len(grid), len(opts)))
    return O.TileCurves(opts, lp, ps, imgs.half(), grid, hr, (size, size))


def test_single_option_oracle_equals_uniform():
    curves = synthetic_curves({"linspace": [1, 2, 3]})
    uni = O.uniform_curves(curves)["linspace"]
    for o, n in enumerate((1, 2, 3)):
        one = curves.select([o])
        pts = O.oracle_frontier(one, [1, 2, 3, 4])
        for p in pts:
            if p["budget"] < n:
                assert not p["feasible"]
                continue
            assert p["option_indices"] == [0] * curves.n_tiles and p["mean_steps"] == n
            for k in ("lpips", "psnr_y", "ssim_y"):
                assert p[k] == uni[k][o]  # the same image, scored the same way
            np.testing.assert_array_equal(one.image(p["option_indices"]), curves.image([o] * curves.n_tiles))


def test_frontier_respects_the_budget_and_beats_every_affordable_uniform_on_the_objective():
    curves = synthetic_curves({"linspace": [1, 2, 4], "balanced": [2, 3]}, seed=3)
    budgets = [1, 1.5, 2, 2.5, 3, 4]
    pts = O.oracle_frontier(curves, budgets)
    prev = np.inf
    for p in pts:
        B = O.total_budget(p["budget"], curves.n_tiles)
        assert p["feasible"] and p["total_budget"] == B
        assert p["tile_evaluations"] <= B and p["mean_steps"] <= B / curves.n_tiles  # B = round(b·n_tiles)
        ch = p["option_indices"]
        assert p["tile_evaluations"] == sum(curves.options[j].n for j in ch)
        assert [tuple(c) for c in p["choices"]] == [(curves.options[j].family, curves.options[j].n) for j in ch]
        assert p["objective"] == pytest.approx(curves.lpips[np.arange(curves.n_tiles), ch].mean())
        for o, opt in enumerate(curves.options):
            if opt.n <= p["budget"]:
                assert p["objective"] <= curves.lpips[:, o].mean() + 1e-12
        assert p["objective"] <= prev + 1e-12  # more budget never hurts the objective
        prev = p["objective"]
        assert p["lpips"] == pytest.approx(O.image_metrics(curves.image(ch), curves.hr)["lpips"])
    # the PSNR objective is the sum of the tiles' MSE on Y
    q = O.oracle_frontier(curves, [4], metric="psnr_y")[0]
    mse = 255.0**2 * 10 ** (-curves.psnr_y / 10)
    assert q["objective"] == pytest.approx(mse.min(1).mean())


def test_one_tile_oracle_picks_the_best_affordable_option():
    curves = synthetic_curves({"linspace": [1, 2, 3, 4]}, size=32, tile=32)
    assert curves.n_tiles == 1
    for b in (1, 2, 3, 4):
        p = O.oracle_frontier(curves, [b])[0]
        afford = [o for o, opt in enumerate(curves.options) if opt.n <= b]
        assert p["option_indices"] == [afford[int(np.argmin(curves.lpips[0, afford]))]]


def test_per_tile_psnr_shaves_only_image_border_edges():
    from adasr.data import to_uint8
    from adasr.metrics import psnr_y

    curves = synthetic_curves({"linspace": [1]})
    lp, ps = O.score_tiles(curves.tile_images[0], curves.grid, curves.hr)
    g, hr = curves.grid, curves.hr
    for k, (t, l) in enumerate(g.positions):
        a = to_uint8(curves.tile_images[0, k].float())
        ref = hr[t : t + 32, l : l + 32]
        t0, l0 = max(0, 4 - t), max(0, 4 - l)  # cut 4 px only on edges that lie on the image border
        b0, r0 = min(32, 64 - 4 - t), min(32, 64 - 4 - l)
        assert ps[k] == pytest.approx(psnr_y(a[t0:b0, l0:r0], ref[t0:b0, l0:r0], shave=0))
        from adasr.lpips import lpips_distance

        assert lp[k] == pytest.approx(lpips_distance(a, ref), abs=1e-5)


# ------------------------------------------------------------------------------------------------------ headroom
def test_steps_to_reach_takes_the_first_crossing_of_a_non_monotone_curve():
    c = {"steps": [1, 2, 3, 4], "lpips": [0.3, 0.2, 0.25, 0.1], "psnr_y": [20, 22, 21, 23]}
    assert O.steps_to_reach(c, 0.22) == pytest.approx(1.8)
    assert O.steps_to_reach(c, 0.15) == pytest.approx(3 + 0.1 / 0.15)
    assert O.steps_to_reach(c, 0.4) == 1.0
    assert O.steps_to_reach(c, 0.05) is None
    assert O.steps_to_reach(c, 21.5, "psnr_y") == pytest.approx(1.75)
    assert O.best_within(c, 2.5) == (0.2, 2.0)
    assert O.best_within(c, 3.5)[0] == pytest.approx(0.175)  # the end point b beats every vertex ≤ b
    assert O.best_within(c, 3.5, "psnr_y") == (22.0, 2.0)
    assert O.best_within(c, 0.5) == (0.3, 1.0)


def test_headroom_ratio_and_equal_budget_gain():
    uni = {"a": {"steps": [1, 2, 4], "lpips": [0.3, 0.2, 0.1], "psnr_y": [20, 21, 22], "ssim_y": [.5, .6, .7]},
           "b": {"steps": [1, 2], "lpips": [0.3, 0.25], "psnr_y": [20, 21.5], "ssim_y": [.5, .65]}}
    pts = [{"budget": 2, "feasible": True, "mean_steps": 2.0, "lpips": 0.15, "psnr_y": 21.2, "ssim_y": 0.6},
           {"budget": 1, "feasible": False},
           {"budget": 3, "feasible": True, "mean_steps": 2.5, "lpips": 0.05, "psnr_y": 22, "ssim_y": 0.7}]
    h = O.headroom(uni, pts)
    assert len(h) == 2
    assert h[0]["uniform_steps"] == pytest.approx(3.0) and h[0]["uniform_family"] == "a"
    assert h[0]["cost_ratio"] == pytest.approx(1.5)
    assert h[0]["lpips_diff"] == pytest.approx(0.15 - 0.2)
    assert h[0]["psnr_y_diff"] == pytest.approx(21.2 - 21.5) and h[0]["uniform_psnr_y_family"] == "b"
    assert not h[1]["reached"] and h[1]["cost_ratio"] is None and h[1]["cost_ratio_at_least"] == pytest.approx(1.6)
    m = O.mean_headroom({"x": h, "y": h})
    assert m[0]["cost_ratio"] == pytest.approx(1.5) and m[1]["reached"] == 0


# ------------------------------------------------------------------------------------------ merge in image space
def test_merging_unclamped_tile_images_equals_the_samplers_image(make_tiny_model):
    """The sampler merges x̂0 then converts; merging the unclamped tile images up_k + x̂0_k/s and clamping after
    is the same image. Merging *clamped* tile images is not, but differs by at most the weighted overshoot."""
    model = make_tiny_model(tile=32)
    hr = to_tensor(center_crop(load_skimage("astronaut"), 64))
    _, up = make_pair(hr, 4)
    res = sample_tiles(model, up, policy=UniformDDIM(3, "linspace"), tile=32, overlap=8, precision="fp32")
    grid = res.grid
    cond_tiles = grid.split(up)
    u = O.tile_image_values(model, res.tile_x0, cond_tiles)
    torch.testing.assert_close(u.clamp(-1, 1), model.output(res.tile_x0, cond_tiles), rtol=0, atol=0)
    sampler = model.output(res.x0, up)
    torch.testing.assert_close(grid.merge(u).clamp(-1, 1), sampler, rtol=0, atol=2e-6)
    # clamp before merging: not affine; bounded by Σ_k ŵ_k dist(u_k, [−1, 1])
    clamped_first = grid.merge(u.clamp(-1, 1))
    bound = grid.merge((u - u.clamp(-1, 1)).abs())
    assert ((clamped_first - sampler).abs() <= bound + 1e-6).all()
    assert (u.abs() > 1).any()  # the random model does overshoot, so the bound is exercised


def test_run_oracle_is_json_and_merge_check_is_within_one_level(make_tiny_model):
    model = make_tiny_model(tile=32)
    images = {"a": center_crop(load_skimage("astronaut"), 64), "c": center_crop(load_skimage("camera"), 64)}
    r = O.run_oracle(model, images, {"linspace": [1, 2], "balanced": [1, 2]}, [1, 1.5, 2], tile=32, overlap=8,
                     precision="fp32", store_dtype=torch.float32)
    json.dumps(r, allow_nan=False)
    a = r["images"]["a"]
    assert a["tiles"] == 9 and a["tile_evaluations"] == 9 * (1 + 2 + 2)  # balanced-1 = linspace-1: run once
    assert a["same_as"] == [None, None, 0, None]
    assert max(a["merge_check_uint8"]) <= 1
    assert [p["budget"] for p in r["mean"]["oracle"]] == [1, 1.5, 2]
    assert len(r["mean_of_images"]) == 3 and r["mean_of_images"][0]["images"] == 2
    assert "hindsight oracle" in O.format_oracle(r)


# ----------------------------------------------------------------------------------------------- end to end
def test_measure_tile_curves_with_the_shipped_model():
    from adasr.lpips import lpips_distance
    from adasr.metrics import psnr_y
    from adasr.upscaling import load_pretrained, upscale_tensor

    model = load_pretrained("sr_x4")
    hr = center_crop(load_skimage("astronaut"), 64)
    opts = {"linspace": [1, 2, 3], "balanced": [1, 2]}
    curves = O.measure_tile_curves(model, hr, opts, tile=32, overlap=8, precision="fp32")
    assert curves.n_tiles == 9 and curves.n_options == 5
    assert curves.lpips.shape == curves.psnr_y.shape == (9, 5)
    assert curves.tile_images.shape == (5, 9, 3, 32, 32) and curves.tile_images.dtype == torch.float16
    assert np.isfinite(curves.lpips).all() and np.isfinite(curves.psnr_y).all()
    assert curves.tile_evaluations == 9 * (1 + 2 + 3 + 2) and curves.same_as[3] == 0
    assert max(curves.merge_check) <= 1
    # the uniform curve is the benchmarks' scoring of the sampler's own image (up to float16 storage)
    uni = O.uniform_curves(curves)
    lr, _ = make_pair(to_tensor(hr), 4)
    from adasr.data import to_uint8

    sr = to_uint8(upscale_tensor(lr, model=model, steps=2, schedule="linspace", tile=32, overlap=8,
                                 precision="fp32").image)
    assert uni["linspace"]["lpips"][1] == pytest.approx(lpips_distance(sr, hr), abs=2e-3)
    assert uni["linspace"]["psnr_y"][1] == pytest.approx(psnr_y(sr, hr, shave=4), abs=0.02)
    pts = O.oracle_frontier(curves, [1, 2, 3])
    assert pts[0]["option_indices"] == [0] * 9  # budget 1: linspace-1 (balanced-1 ties; the lower index wins)
    assert pts[0]["lpips"] == uni["linspace"]["lpips"][0]
    for p in pts:
        assert p["tile_evaluations"] <= O.total_budget(p["budget"], 9)
        affordable = [o for o, opt in enumerate(curves.options) if opt.n <= p["budget"]]
        assert p["objective"] <= min(curves.lpips[:, o].mean() for o in affordable) + 1e-12
    h = O.headroom(uni, pts)
    assert h[0]["cost_ratio"] == pytest.approx(1.0) and h[0]["lpips_diff"] == pytest.approx(0.0)


def test_seed_oracle_picks_each_tiles_best_seed_at_the_cost_of_one_run(make_tiny_model):
    from adasr.adaptive.oracle import Option, seed_oracle

    model = make_tiny_model(tile=32)
    hr = (np.random.default_rng(3).random((56, 56, 3)) * 255).astype(np.uint8)
    r = seed_oracle(model, hr, Option("linspace", 2), [0, 1, 2], tile=32, overlap=8, precision="fp32")
    n_tiles = len(r["chosen_seeds"])
    assert r["tile_evaluations"] == 3 * 2 * n_tiles  # three runs of N = 2 on every tile
    assert set(r["chosen_seeds"]) <= {0, 1, 2} and len(r["per_seed"]) == 3
    assert r["seed_mean"]["lpips"] == pytest.approx(np.mean([p["lpips"] for p in r["per_seed"]]))
    json.dumps(r)
