"""Data checks for adasr.viz.sr (suggested tests/test_viz_sr.py)."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.sampling.tiles import TileGrid
from adasr.viz import sr as V


def teardown_function(_):
    plt.close("all")


def test_quality_vs_nfe_plots_the_given_points():
    curves = {"DDIM": {"nfe": [1, 5, 25], "psnr_y": [30.0, 29.0, 27.0], "lpips": [0.3, 0.2, 0.25]},
              "PF-ODE": {"nfe": [45, 81], "psnr_y": [24.0, 24.5], "lpips": [0.36, 0.35], "labels": ["1e-1", "1e-3"]}}
    fig = V.quality_vs_nfe(curves, reference={"bicubic": {"psnr_y": 30.4, "lpips": 0.38}})
    ax_p, ax_l = fig.axes
    assert ax_p.get_xscale() == "log"
    lines = [l for l in ax_p.get_lines() if len(l.get_xdata()) > 2 or l.get_label() in curves]
    ddim = next(l for l in ax_p.get_lines() if l.get_label() == "DDIM")
    np.testing.assert_array_equal(ddim.get_xdata(), [1, 5, 25])
    np.testing.assert_array_equal(ddim.get_ydata(), [30.0, 29.0, 27.0])
    ode = next(l for l in ax_l.get_lines() if l.get_label() == "PF-ODE")
    np.testing.assert_array_equal(ode.get_ydata(), [0.36, 0.35])
    ref = next(l for l in ax_l.get_lines() if l.get_label() == "bicubic")
    assert ref.get_ydata()[0] == 0.38
    # labelled points: one marker and one legend entry each, no text beside the points (no overprinting)
    assert not ax_p.texts
    marked = [l for l in ax_p.get_lines() if l.get_label().startswith("PF-ODE ")]
    assert [l.get_label() for l in marked] == ["PF-ODE 1e-1", "PF-ODE 1e-3"]
    assert len({l.get_marker() for l in marked}) == 2 and marked[1].get_xdata()[0] == 81
    assert {"PF-ODE 1e-1", "bicubic"} <= {t.get_text() for t in fig.legends[0].get_texts()}
    with pytest.raises(ValueError):
        V.quality_vs_nfe({"x": {"nfe": [1, 2], "psnr_y": [1, 2], "lpips": [1, 2], "labels": ["a"]}})
    with pytest.raises(ValueError):
        V.quality_vs_nfe({"x": {"nfe": [1, 2], "psnr_y": [1.0], "lpips": [1, 2]}})


def test_sr_grid_panels_and_titles():
    rng = np.random.default_rng(0)
    hr = {"a": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "b": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)}
    lr = {k: v[::4, ::4] for k, v in hr.items()}
    sr = {k: 255 - v for k, v in hr.items()}
    metrics = {"a": {"bicubic": {"psnr_y": 25.1, "ssim_y": 0.8, "lpips": 0.33}, "adasr": {"psnr_y": 26.0, "lpips": 0.2}}}
    fig = V.sr_comparison_grid(hr, lr, sr, metrics=metrics, zoom=(8, 4, 16))
    assert len(fig.axes) == 8
    arrays = [ax.get_images()[0].get_array() for ax in fig.axes]
    np.testing.assert_array_equal(arrays[0], np.repeat(np.repeat(lr["a"], 4, 0), 4, 1)[8:24, 4:20])
    np.testing.assert_array_equal(arrays[2], sr["a"][8:24, 4:20])
    np.testing.assert_array_equal(arrays[3], hr["a"][8:24, 4:20])
    assert "25.10 dB" in fig.axes[1].get_title() and "LPIPS 0.200" in fig.axes[2].get_title()
    assert fig.axes[5].get_title() == "bicubic ×4"
    with pytest.raises(ValueError):
        V.sr_comparison_grid(hr, lr, {"a": sr["a"]})


def test_channel_mean_error_and_colour_cast_bars():
    hr = np.full((2, 8, 8, 3), 100, np.uint8)
    cast = hr.copy(); cast[..., 2] += 10; cast[1, ..., 0] -= 4
    e = V.channel_mean_error(cast, hr)
    np.testing.assert_allclose(e, [[0, 0, 10], [-4, 0, 10]])
    t = torch.from_numpy(cast).permute(0, 3, 1, 2).float() / 127.5 - 1
    np.testing.assert_allclose(V.channel_mean_error(t, list(hr)), e)
    fig = V.colour_cast_figure(hr, {"eps": cast, "res": hr}, names=["x", "y"])
    bars = fig.axes[3]  # row 0: HR, eps, res, bars
    heights = [p.get_height() for p in bars.patches]
    np.testing.assert_allclose(heights, [0, 0, 0, 0, 10, 0])  # R(eps,res), G(eps,res), B(eps,res)


def test_seams_figure_grid_lines_and_zoom():
    g = TileGrid.cover(64, 64, 32, 0)
    assert V.default_seam_zoom(g) == (24, 24, 16)
    img = np.zeros((64, 64, 3), np.uint8)
    fig = V.seams_figure({"no overlap": img, "HR": img}, {"no overlap": g}, metrics={"HR": {"psnr_y": 99.0}})
    top = fig.axes[0]
    assert sorted(l.get_xdata()[0] for l in top.get_lines() if l.get_xdata()[0] == l.get_xdata()[1]) == [31.5]
    assert fig.axes[3].get_images()[0].get_array().shape == (16, 16, 3)
    assert "99.00 dB" in fig.axes[1].get_title()


def test_merge_weights_sum_to_one():
    g = TileGrid.cover(64, 112, 64, 16)
    for mode in ("gaussian", "uniform", "last"):
        lefts, shares = V.merge_weights_1d(g, mode)
        assert list(lefts) == [0, 48]
        np.testing.assert_allclose(shares.sum(0), 1.0)
    _, u = V.merge_weights_1d(g, "uniform")
    np.testing.assert_allclose(u[:, 50], [0.5, 0.5])
    _, gs = V.merge_weights_1d(g, "gaussian")
    assert gs[0, 50] > 0.5 and gs[1, 62] > 0.5  # each pixel dominated by the nearer tile centre (32 vs 80)
    fig = V.merge_weights_figure(g)
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), g.weights("gaussian").numpy())


def test_samples_grid():
    a = np.zeros((16, 16, 3), np.uint8); b = np.full((16, 16, 3), 200, np.uint8)
    fig = V.samples_grid({"DDIM-1": {"x": a, "y": b}, "HR": {"x": b, "y": a}},
                         metrics={"DDIM-1": {"y": {"psnr_y": 12.345}}}, zoom=(0, 0, 8))
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "DDIM-1" and "12.35 dB" in fig.axes[2].get_title()
    assert fig.axes[1].get_images()[0].get_array().shape == (8, 8, 3)
    with pytest.raises(ValueError):
        V.samples_grid({"a": {"x": a}, "b": {"y": a}})


def test_samples_grid_row_windows_context_and_stretch():
    dark = np.zeros((16, 16, 3), np.uint8)
    dark[4:12, 4:12] = np.arange(64, dtype=np.uint8).reshape(8, 8)[..., None]      # levels 0..63 in the window
    bright = np.full((16, 16, 3), 100, np.uint8)
    cols = {"SR": {"x": dark, "y": bright}, "HR": {"x": dark, "y": bright}}
    fig = V.samples_grid(cols, zoom={"x": (4, 4, 8)}, context="HR", stretch=True)
    assert len(fig.axes) == 6                                          # context column + 2 columns, 2 rows
    ctx, sr_x = fig.axes[0], fig.axes[1]
    assert ctx.get_images()[0].get_array().shape == (16, 16, 3) and len(ctx.patches) == 1   # whole crop + window
    shown = sr_x.get_images()[0].get_array()
    assert shown.shape == (8, 8, 3) and shown.max() == 255 and shown.min() == 0             # stretched to full range
    assert fig.axes[4].get_images()[0].get_array().shape == (16, 16, 3)                    # row "y": no window
    assert "contrast ×" in ctx.get_ylabel()
    with pytest.raises(ValueError):
        V.samples_grid(cols, context="bicubic")
