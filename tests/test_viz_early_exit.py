"""Data checks for adasr.viz.early_exit (the figures of notebook 06); the replay of the rule is tested in
test_stop_steps.py."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.adaptive.allocation import tile_value_map
from adasr.adaptive.early_exit import global_deltas
from adasr.sampling.tiles import TileGrid
from adasr.viz import early_exit as V


def teardown_function(_):
    plt.close("all")


def test_delta_curves_figure_plots_histories_and_global():
    tiles = [[0.003, 0.002, 0.004], [0.001, 0.001, 0.002]]
    glob = global_deltas(tiles)
    assert V.delta_steps(3).tolist() == [2, 3, 4]
    fig = V.delta_curves_figure({"model": {"tiles": tiles, "global": glob},
                                 "foil": {"tiles": [[0.3, 0.1, 0.01, 0.002]], "stops": [3]}},
                                epsilon=0.002, warmup=4, title="Δ")
    ax0, ax1 = fig.axes
    assert ax0.get_yscale() == "log" and ax0.get_title() == "model" and ax1.get_title() == "foil"
    thin = [l for l in ax0.get_lines() if l.get_linewidth() < 1.0]  # one per tile
    assert len(thin) == 2
    np.testing.assert_array_equal(thin[0].get_xdata(), [2, 3, 4])
    np.testing.assert_allclose(thin[1].get_ydata(), tiles[1])
    g = next(l for l in ax0.get_lines() if l.get_label() == "global")
    np.testing.assert_allclose(g.get_ydata(), [np.sqrt((0.003**2 + 0.001**2) / 2), np.sqrt((0.002**2 + 0.001**2) / 2),
                                               np.sqrt((0.004**2 + 0.002**2) / 2)])
    eps = next(l for l in ax0.get_lines() if l.get_label().startswith("ε"))
    assert eps.get_ydata()[0] == 0.002
    stop = next(l for l in ax1.get_lines() if l.get_label() == "stop")
    assert stop.get_xdata().tolist() == [3] and stop.get_ydata().tolist() == [0.1]  # Δ at step 3 is history[1]
    assert fig._suptitle.get_text() == "Δ"
    with pytest.raises(ValueError):
        V.delta_curves_figure({})


def test_stops_figure_maps_images_and_differences():
    grid = TileGrid.cover(64, 64, 32, 0)
    stops = [4, 20, 4, 9]
    stop_map = tile_value_map(stops, grid).numpy()
    ref = np.full((64, 64, 3), 100, np.uint8)
    img = ref.copy()
    img[:32, 32:] += 8
    arms = {"tile": {"stop_map": stop_map, "image": img, "stops": stops,
                     "metrics": {"steps": 9.25, "psnr_y": 30.123, "ssim_y": 0.9, "lpips": 0.2}},
            "global": {"stop_map": np.full((64, 64), 7.0), "image": ref}}
    fig = V.stops_figure(arms, ref, grid=grid, reference_metrics={"steps": 20, "psnr_y": 29.5, "lpips": 0.18}, block=4)
    (m0, m1, r_ref), (d0, d1, r_img) = [fig.axes[i : i + 3] for i in (0, 3)]
    np.testing.assert_array_equal(m0.get_images()[0].get_array(), stop_map)
    assert sorted(t.get_text() for t in m0.texts) == ["20", "4", "4", "9"] and not m1.texts
    diff = d0.get_images()[0].get_array()
    assert diff.shape == (16, 16) and diff[0, 10] == 8 and diff[10, 0] == 0  # 4×4 block means
    assert float(np.asarray(d1.get_images()[0].get_array()).max()) == 0.0
    np.testing.assert_array_equal(r_ref.get_images()[0].get_array(), ref)
    np.testing.assert_array_equal(r_img.get_images()[0].get_array(), img)  # the first arm's result
    assert m0.get_title() == "tile: stop step\n9.2 steps/tile · 30.12 dB · LPIPS 0.200"  # no SSIM in these titles
    assert m1.get_title() == "global: stop step"
    assert r_ref.get_title() == "uniform\n20.0 steps/tile · 29.50 dB · LPIPS 0.180" and r_img.get_title() == "tile result"
    np.testing.assert_array_equal(V.abs_difference(img, ref)[::4, ::4], diff)
    with pytest.raises(ValueError):
        V.stops_figure({"x": {"stop_map": stop_map[:10], "image": img}}, ref)
    with pytest.raises(ValueError):
        V.stops_figure(arms, ref, show="none")
    with pytest.raises(ValueError):
        V.abs_difference(img, ref[:10])


def test_stop_quality_figure_curves_references_and_zoom():
    ks = [1, 2, 3]
    curves = {"x̂0^(k)": {"psnr_y": [31.0, 30.8, 30.5], "lpips": [0.3, 0.25, 0.2]},
              "x_t": {"psnr_y": [5.0, 7.0, 12.0]}}
    rng = np.random.default_rng(1)
    images = {"a": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "b": np.zeros((16, 16, 3), np.uint8)}
    fig = V.stop_quality_figure(ks, curves, reference={"uniform N=20": {"psnr_y": 30.0, "lpips": 0.21}},
                                images=images, zoom=(4, 2, 8))
    ax_p, ax_l, ax_a, ax_b = fig.axes
    x0 = next(l for l in ax_p.get_lines() if l.get_label() == "x̂0^(k)")
    np.testing.assert_array_equal(x0.get_xdata(), ks)
    np.testing.assert_array_equal(x0.get_ydata(), [31.0, 30.8, 30.5])
    assert [l.get_label() for l in ax_l.get_lines()] == ["x̂0^(k)", "uniform N=20"]  # x_t has no LPIPS here
    ref = next(l for l in ax_p.get_lines() if l.get_label() == "uniform N=20")
    assert ref.get_ydata()[0] == 30.0
    np.testing.assert_array_equal(ax_a.get_images()[0].get_array(), images["a"][4:12, 2:10])
    assert ax_b.get_title() == "b"
    with pytest.raises(ValueError):
        V.stop_quality_figure([1, 2], curves)


def test_exit_summary_figure():
    grid = TileGrid.cover(64, 64, 32, 0)
    stops = [4, 6, 20, 4]
    hist = [[0.001] * 3, [0.002] * 5, [0.003] * 19, [0.001] * 3]
    fig = V.exit_summary_figure(tile_value_map(stops, grid).numpy(), hist, stops=stops, grid=grid, epsilon=0.002,
                                warmup=4, summary="8.5 steps/tile")
    ax_map, ax_d = fig.axes[:2]
    assert sorted(t.get_text() for t in ax_map.texts) == ["20", "4", "4", "6"]
    stop = next(l for l in ax_d.get_lines() if l.get_label() == "stop")
    assert stop.get_xdata().tolist() == [4, 6, 20, 4]
    assert fig._suptitle.get_text() == "8.5 steps/tile"


def test_delta_curves_figure_wraps_rows():
    panels = {f"m{r} · img{c}": {"tiles": [[0.01 * (r + 1), 0.002]]} for r in range(2) for c in range(3)}
    fig = V.delta_curves_figure(panels, epsilon=0.002, ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(panels)
    assert len({round(ax.get_position().y0, 3) for ax in visible}) == 2  # two rows of three
    assert all(ax.get_ylabel() for ax in (visible[0], visible[3])) and not visible[1].get_ylabel()
    fig = V.delta_curves_figure({"a": {"tiles": [[0.1]]}, "b": {"tiles": [[0.1]]}, "c": {"tiles": [[0.1]]}},
                                ncols=2)
    assert sum(ax.get_visible() for ax in fig.axes) == 3 and len(fig.axes) == 4  # the spare panel is hidden


def test_stop_quality_figure_separate_axes():
    ks = [1, 2, 3]
    curves = {"x̂0": {"psnr_y": [31.0, 30.8, 30.5], "lpips": [0.3, 0.25, 0.2]},
              "x_t": {"psnr_y": [5.0, 7.0, 30.5], "lpips": [1.4, 1.2, 0.2]}}
    fig = V.stop_quality_figure(ks, curves, reference={"uniform": {"psnr_y": 30.0, "lpips": 0.21}},
                                images={"a": np.zeros((8, 8, 3), np.uint8)}, separate=True)
    p0, l0, p1, l1, img = fig.axes
    assert [l.get_label() for l in p0.get_lines()] == ["x̂0", "uniform"]  # each curve on its own axes
    assert [l.get_label() for l in l1.get_lines()] == ["x_t", "uniform"]
    np.testing.assert_array_equal(p1.get_lines()[0].get_ydata(), [5.0, 7.0, 30.5])
    lo0, hi0 = p0.get_ylim()
    assert hi0 - lo0 < 3  # the x̂0 axis is not stretched to the x_t range
    assert p0.get_title(loc="left") == "x̂0" and p1.get_title(loc="left") == "x_t"
    assert p0.get_lines()[0].get_color() != p1.get_lines()[0].get_color()
    assert img.get_images() and not p0.get_xlabel() and p1.get_xlabel() == "stop after step k"
