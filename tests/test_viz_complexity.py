"""Data checks for adasr.viz.complexity: what each figure draws is the data it was given."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.adaptive.complexity import Calibration, patch_means
from adasr.sampling.tiles import TileGrid
from adasr.viz import complexity as V


def teardown_function(_):
    plt.close("all")


def test_as_map_and_minmax():
    m = torch.arange(6.0).view(1, 1, 2, 3)
    np.testing.assert_array_equal(V.as_map(m), np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(V.minmax(m), np.arange(6.0).reshape(2, 3) / 5)
    np.testing.assert_array_equal(V.minmax(np.full((4, 4), 3.0)), np.zeros((4, 4)))
    with pytest.raises(ValueError):
        V.as_map(torch.zeros(2, 1, 4, 4))


def test_tile_matrix_follows_positions():
    g = TileGrid.cover(256, 256, 128, 32)  # tops/lefts 0, 64, 128
    vals = torch.arange(9.0)
    np.testing.assert_array_equal(V.tile_matrix(vals, g), np.arange(9.0).reshape(3, 3))
    g2 = TileGrid(64, 128, 64, 64, ((0, 64), (0, 0)))  # positions out of order
    np.testing.assert_array_equal(V.tile_matrix([5.0, 7.0], g2), [[7.0, 5.0]])
    with pytest.raises(ValueError):
        V.tile_matrix([1.0, 2.0], g)


def test_robust_unit_clips_at_the_percentile():
    a = np.arange(101.0).reshape(1, 101)                     # P99 = 99
    np.testing.assert_allclose(V.robust_unit(a, 99.0), np.clip(a / 99.0, 0, 1))
    np.testing.assert_allclose(V.robust_unit(a, 100.0), V.minmax(a))
    spiky = np.zeros((10, 10))
    spiky[0, 0], spiky[1:, :] = 1000.0, np.linspace(0, 1, 90).reshape(9, 10)
    assert V.minmax(spiky)[5].max() < 0.01                   # min–max: all but the spike black
    assert V.robust_unit(spiky, 90.0)[9].max() == 1.0         # robust: the rest spans the colour range
    np.testing.assert_array_equal(V.robust_unit(np.full((3, 3), 2.0)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        V.robust_unit(a, 0.0)


def test_estimator_maps_figure_draws_robust_per_image_maps_and_a_colour_bar():
    rng = np.random.default_rng(0)
    imgs = {"a": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "b": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)}
    maps = {"gradient": {"a": torch.rand(1, 1, 16, 16) * 5 + 1, "b": torch.rand(1, 1, 16, 16)},
            "fft": {"a": np.ones((16, 16)), "b": np.arange(256.0).reshape(16, 16)}}
    fig = V.estimator_maps_figure(imgs, maps)
    axes = np.array(fig.axes[:6]).reshape(2, 3)
    np.testing.assert_array_equal(axes[1, 0].get_images()[0].get_array(), imgs["b"])
    grad_a = axes[0, 1].get_images()[0].get_array()
    np.testing.assert_allclose(grad_a, V.robust_unit(maps["gradient"]["a"], 99.0))
    assert grad_a.min() == 0 and grad_a.max() == pytest.approx(1)
    np.testing.assert_allclose(axes[1, 2].get_images()[0].get_array(), V.robust_unit(np.arange(256.0).reshape(16, 16)))
    assert [ax.get_title() for ax in axes[0]] == ["up(LR)", "gradient", "fft"]
    assert axes[1, 0].get_ylabel() == "b"
    assert len(fig.axes) == 7 and fig.axes[6].get_ylabel() == "C(x), per image"   # the colour bar
    plain = V.estimator_maps_figure(imgs, maps, upper=100.0)
    np.testing.assert_allclose(plain.axes[1].get_images()[0].get_array(), V.minmax(maps["gradient"]["a"]))
    with pytest.raises(ValueError):
        V.estimator_maps_figure(imgs, {"gradient": {"a": maps["gradient"]["a"]}})


def test_normalisation_figure_matrices_and_levels():
    g = TileGrid.cover(64, 64, 32, 0)  # 2×2 tiles
    scores = {"batch": {"x": [0.1, 0.2, 0.3, 0.4], "y": torch.tensor([0.0, 1.0, 0.5, 0.5])},
              "calibrated": {"x": [1.0, 0.0, 0.0, 1.0], "y": [0.2, 0.2, 0.2, 0.2]}}
    levels = {"x": torch.tensor([1, -1, -1, 1]), "y": [0, 0, 0, 0]}
    fig = V.normalisation_figure(scores, g, levels)
    axes = np.array(fig.axes).reshape(2, 3)
    np.testing.assert_allclose(axes[0, 0].get_images()[0].get_array(), [[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_allclose(axes[1, 0].get_images()[0].get_array(), [[0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(axes[0, 2].get_images()[0].get_array(), [[1, -1], [-1, 1]])
    assert [t.get_text() for t in axes[0, 0].texts] == ["0.10", "0.20", "0.30", "0.40"]
    assert [t.get_text() for t in axes[0, 2].texts] == ["+1", "-1", "-1", "+1"]
    assert [ax.get_title() for ax in axes[0]] == ["batch", "calibrated", "AdaBM level"]
    assert len(V.normalisation_figure(scores, g).axes) == 4  # without levels: no last column


def test_rank_agreement_figure_bars_and_scatter():
    err = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([10.0, 20.0, 30.0])}
    scores = {"g": {"a": [0.1, 0.2, 0.3], "b": [1.0, 2.0, 3.0]}, "f": {"a": [3.0, 2.0, 1.0], "b": [0.0, 5.0, 4.0]},
              "u": {"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}}
    # ρ is data here (made-up values, not the correlations of these scores): the figure draws what it is given
    rho = {"g": {"all": 0.9, "a": 1.0, "b": 0.8}, "f": {"all": -0.1, "a": -1.0, "b": 0.5},
           "u": {"all": 0.4, "a": 0.3, "b": 0.2}}
    fig = V.rank_agreement_figure(scores, err, rho)
    bar_ax = fig.axes[0]
    np.testing.assert_allclose([p.get_height() for p in bar_ax.patches], [rho[e]["all"] for e in scores])
    a_dots = next(l for l in bar_ax.get_lines() if l.get_label() == "a")
    np.testing.assert_allclose(a_dots.get_ydata(), [rho[e]["a"] for e in scores])
    assert len(fig.axes) == 1 + 3
    f_ax = next(ax for ax in fig.axes[1:] if ax.get_title().startswith("f "))
    b_pts = next(l for l in f_ax.get_lines() if l.get_label() == "b")
    # ranks of f's scores among all 6 tiles: (3,2,1 | 0,5,4) -> b's are 1, 6, 5
    np.testing.assert_array_equal(b_pts.get_xdata(), [1, 6, 5])
    np.testing.assert_array_equal(b_pts.get_ydata(), [10.0, 20.0, 30.0])
    assert f_ax.get_title() == "f  ρ=-0.10"
    with pytest.raises(ValueError, match="rho lacks"):
        V.rank_agreement_figure(scores, err, {k: v for k, v in rho.items() if k != "u"})
    with pytest.raises(ValueError, match="rho lacks"):
        V.rank_agreement_figure(scores, err, {**rho, "g": {"all": 0.9, "a": 1.0}})


def test_complexity_panels_patch_means_and_levels():
    img = np.zeros((16, 16, 3), np.uint8)
    raw = torch.zeros(1, 1, 16, 16)
    raw[..., :8, :8] = 1.0
    raw[..., 8:, 8:] = 0.5
    cal = Calibration("gradient", low=0.2, high=0.8)
    fig = V.complexity_panels(img, raw, 8, cal, title="t")
    axes = [ax for ax in fig.axes if ax.get_images()]
    np.testing.assert_allclose(axes[1].get_images()[0].get_array(), V.robust_unit(raw, 99.0))
    np.testing.assert_allclose(axes[2].get_images()[0].get_array(), patch_means(raw, 8)[0].numpy())
    np.testing.assert_array_equal(axes[3].get_images()[0].get_array(), [[1, -1], [-1, 0]])
    assert "−1:2" in axes[3].get_title() and "+1:1" in axes[3].get_title()
    assert axes[2].get_title() == "C_p, 8×8 patches"
    assert fig._suptitle.get_text() == "t"
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["−1 simple: C_p < 0.2", "0 medium", "+1 complex: C_p > 0.8"]
    assert [h.get_facecolor() for h in legend.legend_handles] == [matplotlib.colors.to_rgba(c) for c in V.LEVEL_COLOURS]
