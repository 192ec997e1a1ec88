"""Data checks for adasr.viz.allocation: the plotted arrays, points and titles (no model is run)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.adaptive.allocation import tile_value_map
from adasr.adaptive.equal_budget import equal_budget_gaps, uniform_at
from adasr.sampling.refinement import Snapshot
from adasr.sampling.tiles import TileGrid
from adasr.viz import allocation as V


def teardown_function(_):
    plt.close("all")


GRID = TileGrid.cover(64, 64, 32, 8)  # 3×3 tiles of 32 px, starts 0/24/32


def test_tile_centres_match_positions():
    c = V.tile_centres(GRID)
    assert c.shape == (9, 2)
    np.testing.assert_allclose(c[0], [15.5, 15.5])
    np.testing.assert_allclose(c[1], [24 + 15.5, 15.5])  # (x, y): second tile is to the right
    np.testing.assert_allclose(c[3], [15.5, 24 + 15.5])


def test_step_map_figure_draws_tile_value_maps_and_budgets():
    up = np.full((64, 64, 3), 120, np.uint8)
    c = torch.linspace(0, 1, 9)
    budgets = [2, 3, 4, 5, 6, 7, 8, 9, 10]
    sr = np.zeros((64, 64, 3), np.uint8)
    fig = V.step_map_figure(up, c, budgets, GRID, n_min=2, n_max=10, sr=sr, metrics={"psnr_y": 25.123, "lpips": 0.2})
    img_axes = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert len(img_axes) == 4
    np.testing.assert_array_equal(img_axes[0].get_images()[0].get_array(), up)
    np.testing.assert_allclose(img_axes[1].get_images()[0].get_array(), tile_value_map(c, GRID).numpy())
    n_img = img_axes[2].get_images()[0]
    np.testing.assert_array_equal(n_img.get_array(), tile_value_map(budgets, GRID).numpy())
    assert n_img.get_clim() == (2, 10)
    assert [t.get_text() for t in img_axes[2].texts] == [str(b) for b in budgets]
    assert [t.get_text() for t in img_axes[1].texts][-1] == "1.00"
    assert img_axes[3].get_title() == "SR (allocation)\n25.12 dB · LPIPS 0.200"
    assert fig._suptitle.get_text() == V.cost_line(budgets, 10)
    assert "Σ N_p = 54" in fig._suptitle.get_text() and "90" in fig._suptitle.get_text()
    with pytest.raises(ValueError):
        V.step_map_figure(up, c[:4], budgets, GRID, n_min=2, n_max=10)
    with pytest.raises(ValueError):
        V.step_map_figure(np.zeros((32, 32, 3), np.uint8), c, budgets, GRID, n_min=2, n_max=10)


def test_cost_line():
    assert V.cost_line([3, 5, 4], 20) == "Σ N_p = 12 tile-evaluations (uniform N_max=20: 60, 5.00× fewer)"


def test_tile_cells_partition_the_image():
    for grid in (TileGrid.cover(80, 80, 32, 8), GRID):  # regular (starts 0/24/48) and with a shifted last tile
        cells = V.tile_cells(grid)
        assert len(cells) == 9
        cover = np.zeros((grid.height, grid.width), int)
        for (t, left, b, r), (tt, tl) in zip(cells, grid.positions):
            cover[t:b, left:r] += 1
            assert tt <= t < b <= tt + grid.tile_h and tl <= left < r <= tl + grid.tile_w   # inside its tile
            assert t <= tt + (grid.tile_h - 1) / 2 < b and left <= tl + (grid.tile_w - 1) / 2 < r  # around its centre
        assert (cover == 1).all()                              # every pixel in exactly one cell
    assert V.tile_cells(TileGrid.cover(80, 80, 32, 8))[:5:4] == [(0, 0, 28, 28), (28, 28, 52, 52)]


def test_refinement_figure_outlines_finished_tiles_without_covering_them():
    img = np.full((64, 64, 3), 100, np.uint8)
    done_a = [False] * 9
    done_b = [True, False, True, False, False, False, False, False, True]
    snaps = [Snapshot(1, img, done_a, [1] * 9), Snapshot(3, img, done_b, [3] * 9)]
    fig = V.refinement_figure(snaps, GRID, zoom=(8, 8, 16))
    top = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in top] == ["after iteration 1\n9/9 tiles running",
                                              "after iteration 3\n6/9 tiles running"]
    for ax in top:
        assert len(ax.get_images()) == 1                       # the image only: no tint layer over it
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), img)
    outlines = [p for p in top[1].patches if p.get_label() == "finished"]
    assert len(outlines) == 3 and not [p for p in top[0].patches if p.get_label() == "finished"]
    cells = V.tile_cells(GRID)
    for p, k in zip(outlines, (0, 2, 8)):
        t, left, b, r = cells[k]
        assert not p.get_fill()
        assert p.get_x() == pytest.approx(left - 0.5 + 3) and p.get_width() == pytest.approx(r - left - 6)
        assert p.get_y() == pytest.approx(t - 0.5 + 3) and p.get_height() == pytest.approx(b - t - 6)
    zoom_axes = [ax for ax in fig.axes if not ax.get_title()]
    assert [ax.get_images()[0].get_array().shape for ax in zoom_axes] == [(16, 16, 3)] * 2
    assert all(not ax.patches for ax in zoom_axes)             # the zoom is not marked
    one = V.refinement_figure(snaps, GRID, iterations=3)
    assert len(one.axes) == 1
    with pytest.raises(KeyError):
        V.refinement_figure(snaps, GRID, iterations=[2])


UNIFORM = {"steps": [2, 5, 10], "lpips": [0.30, 0.24, 0.20], "psnr_y": [32.0, 31.0, 30.0]}
POINTS = [{"label": "2–8", "mapping": "linear", "steps": 3.5, "lpips": 0.25, "psnr_y": 31.2},
          {"label": "3–20", "mapping": "threshold", "steps": 7.5, "lpips": 0.23, "psnr_y": 30.4}]


def test_uniform_at_and_gaps():
    assert uniform_at(UNIFORM, 3.5, "lpips") == pytest.approx(0.27)
    assert uniform_at(UNIFORM, 7.5, "psnr_y") == pytest.approx(30.5)
    assert uniform_at(UNIFORM, 40, "lpips") == pytest.approx(0.20)  # clamped
    shuffled = {k: v[::-1] for k, v in UNIFORM.items()}
    assert uniform_at(shuffled, 3.5, "lpips") == pytest.approx(0.27)
    np.testing.assert_allclose(equal_budget_gaps(UNIFORM, POINTS, "lpips"), [-0.02, 0.01])
    np.testing.assert_allclose(equal_budget_gaps(UNIFORM, POINTS, "psnr_y"), [-0.3, -0.1])


def test_cost_quality_figure_plots_curve_points_and_controls():
    fig = V.cost_quality_figure(UNIFORM, POINTS, title="t")
    ax_l, ax_p = fig.axes
    uni = next(l for l in ax_l.get_lines() if l.get_label() == "uniform DDIM")
    np.testing.assert_array_equal(uni.get_xdata(), [2, 5, 10])
    np.testing.assert_array_equal(uni.get_ydata(), [0.30, 0.24, 0.20])
    lin = next(l for l in ax_l.get_lines() if l.get_label() == "allocation, linear")
    np.testing.assert_array_equal(lin.get_xdata(), [3.5])
    np.testing.assert_array_equal(lin.get_ydata(), [0.25])
    thr = next(l for l in ax_p.get_lines() if l.get_label() == "allocation, threshold")
    np.testing.assert_array_equal(thr.get_ydata(), [30.4])
    # dotted control segment from the uniform curve at the same budget to the point
    seg = next(l for l in ax_l.get_lines() if l.get_linestyle() == ":" and l.get_xdata()[0] == 3.5)
    np.testing.assert_allclose(seg.get_ydata(), [0.27, 0.25])
    texts = [t.get_text() for t in ax_l.texts]
    assert texts[:3] == ["2", "5", "10"] and "2–8" in texts and "3–20" in texts
    assert ax_l.get_ylabel() == "LPIPS ↓" and ax_p.get_ylabel() == "PSNR-Y (dB) ↑"
    with pytest.raises(ValueError):
        V.cost_quality_figure({"steps": [1, 2], "lpips": [0.3], "psnr_y": [1, 2]}, POINTS)


def test_cost_quality_figure_groups_defaults_and_labels_that_do_not_overlap():
    pts = [{"label": "2–8", "steps": 3.5, "lpips": 0.25, "psnr_y": 31.2, "group": "allocation, gradient C_p"},
           {"label": "2–8 learned", "steps": 3.6, "lpips": 0.251, "psnr_y": 31.2, "group": "allocation, learned C_p"},
           {"label": "3–20 (default)", "steps": 7.5, "lpips": 0.23, "psnr_y": 30.4, "default": True,
            "group": "allocation, gradient C_p"}]
    fig = V.cost_quality_figure(UNIFORM, pts)
    ax = fig.axes[0]
    labels = [l.get_label() for l in ax.get_lines()]
    assert labels.count("allocation, gradient C_p") == 1 and labels.count("allocation, learned C_p") == 1
    big = [l for l in ax.get_lines() if l.get_markersize() == 9]
    assert len(big) == 1 and big[0].get_markeredgecolor() == "black" and list(big[0].get_xdata()) == [7.5]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in ax.texts]
    assert [t.get_text() for t in ax.texts] == ["2", "5", "10", "2–8", "2–8 learned", "3–20 (default)"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
