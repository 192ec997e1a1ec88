"""Data checks for adasr.viz.adadiffsr (the figures of notebook 07): what each panel plots, not its pixels."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from adasr.adaptive.allocation import tile_value_map
from adasr.sampling.tiles import TileGrid
from adasr.viz import adadiffsr as V


def teardown_function(_):
    plt.close("all")


def _result():
    """A bench result of ``adasr bench adadiffsr``'s shape, small: two families, an oracle, four arms."""
    uniform = {"linspace": {"steps": [1.0, 2.0, 4.0, 20.0], "lpips": [0.30, 0.25, 0.21, 0.19],
                            "psnr_y": [31.0, 30.8, 30.5, 30.0], "ssim_y": [0.9, 0.89, 0.88, 0.87]},
               "balanced": {"steps": [1.0, 2.0, 4.0], "lpips": [0.28, 0.22, 0.20],
                            "psnr_y": [31.1, 30.7, 30.4], "ssim_y": [0.9, 0.89, 0.88]}}
    oracle = [{"budget": 1.0, "feasible": False},
              {"budget": 2.0, "feasible": True, "mean_steps": 2.0, "lpips": 0.21, "psnr_y": 30.6, "ssim_y": 0.88},
              {"budget": 4.0, "feasible": True, "mean_steps": 3.9, "lpips": 0.195, "psnr_y": 30.4, "ssim_y": 0.88}]
    arms = [{"arm": "dtss-regressor/linspace/N=4", "kind": "dtss", "signal": "regressor", "base": "linspace",
             "mean_steps_per_tile": 3.0, "lpips": 0.24, "psnr_y": 30.9},
            {"arm": "dtss-regressor/balanced/N=4", "kind": "dtss", "signal": "regressor", "base": "balanced",
             "mean_steps_per_tile": 3.5, "lpips": 0.22, "psnr_y": 30.5},
            {"arm": "dtss-metrics/linspace/N=6", "kind": "dtss", "signal": "metrics", "base": "linspace",
             "mean_steps_per_tile": 4.5, "lpips": 0.23, "psnr_y": 30.7},
            {"arm": "early-exit/linspace/N=20", "kind": "early-exit", "mean_steps_per_tile": 14.0, "lpips": 0.2,
             "psnr_y": 30.2}]
    return {"oracle": {"mean": {"uniform": uniform, "oracle": oracle}}, "arms": arms}


def test_cost_quality_figure_plots_curves_frontier_and_arms():
    r = _result()
    fig = V.cost_quality_figure(r, metrics=("lpips", "psnr_y"), max_steps=12)
    ax_l, ax_p = fig.axes
    lines = {l.get_label(): l for l in ax_l.get_lines()}
    lin = lines["uniform linspace"]
    np.testing.assert_array_equal(lin.get_xdata(), [1, 2, 4])  # N = 20 is beyond max_steps
    np.testing.assert_allclose(lin.get_ydata(), [0.30, 0.25, 0.21])
    np.testing.assert_allclose(lines["uniform balanced"].get_ydata(), [0.28, 0.22, 0.20])
    orc = lines["hindsight oracle"]
    np.testing.assert_allclose(orc.get_xdata(), [2.0, 3.9])  # the infeasible budget is left out
    np.testing.assert_allclose(orc.get_ydata(), [0.21, 0.195])
    reg = lines["DTSS (regressor)"]  # the first regressor arm carries the label, the second is unlabelled
    assert reg.get_xdata().tolist() == [3.0] and reg.get_ydata().tolist() == [0.24]
    assert reg.get_markerfacecolor() != "white"
    points = [(l.get_xdata()[0], l.get_ydata()[0], l.get_markerfacecolor()) for l in ax_l.get_lines()
              if len(l.get_xdata()) == 1]
    assert (3.5, 0.22, "white") in points  # balanced base: open marker
    assert all(x <= 12 for x, _, _ in points)  # the early-exit arm at 14 steps is beyond max_steps
    assert "DTSS (metrics)" in lines and "AdaSR early-exit" not in lines
    p_orc = next(l for l in ax_p.get_lines() if l.get_label() == "hindsight oracle")
    np.testing.assert_allclose(p_orc.get_ydata(), [30.6, 30.4])


def test_class_timeline_and_class_maps():
    recs = [[{"class": "stable", "stride": 20}, {"class": "growing", "stride": 5}, {"class": "saturated"}],
            [{"class": "stable", "stride": 20}]]
    cls, names = V.class_timeline(recs)
    assert names == ["growing", "stable", "saturated", "done"]
    np.testing.assert_array_equal(cls, [[1, 0, 2], [1, 3, 3]])
    grid = TileGrid.cover(32, 64, 32, 0)
    img = np.zeros((32, 64, 3), np.uint8)
    fig = V.class_maps_figure(recs, grid, image=img)
    assert len(fig.axes) == 1 + 3  # the input, then one map per step of the longest tile
    np.testing.assert_array_equal(fig.axes[0].get_images()[0].get_array(), img)
    for k in range(3):
        want = tile_value_map(cls[:, k].astype(float).tolist(), grid).numpy()
        np.testing.assert_array_equal(fig.axes[1 + k].get_images()[0].get_array(), want)
        assert fig.axes[1 + k].get_title() == f"step {k + 1}"
    fig2 = V.class_maps_figure(recs, grid, steps=[1])
    assert len(fig2.axes) == 1 and fig2.axes[0].get_title() == "step 2"


def test_gain_curves_figure_plots_each_run_and_tile():
    a = [[{"t": 999, "i_fr": 0.1, "i_nr": 0.0}, {"t": 400, "i_fr": 0.002, "i_nr": 0.03}],
         [{"t": 999, "i_fr": 0.2, "i_nr": 0.0}]]
    b = [[{"t": 999, "i_fr": 0.09, "i_nr": 0.0}, {"t": 400, "i_fr": 0.001, "i_nr": 0.02}], [{"t": 999, "i_fr": 0.1,
                                                                                            "i_nr": 0.0}]]
    fig = V.gain_curves_figure({"computed": a, "regressor": b}, tiles=[0], tau=0.005)
    ax_fr, ax_nr = fig.axes
    lines = {l.get_label(): l for l in ax_fr.get_lines()}
    assert set(lines) == {"computed, tile 0", "regressor, tile 0"}
    np.testing.assert_array_equal(lines["computed, tile 0"].get_xdata(), [999, 400])
    np.testing.assert_allclose(lines["regressor, tile 0"].get_ydata(), [0.09, 0.001])
    nr = {l.get_label(): l for l in ax_nr.get_lines()}
    np.testing.assert_allclose(nr["computed, tile 0"].get_ydata(), [0.0, 0.03])
    assert ax_fr.xaxis_inverted()  # noise → clean from left to right
    band = ax_fr.patches[0].get_extents().transformed(ax_fr.transData.inverted())  # the ±τ band, in data units
    assert band.y0 == pytest.approx(-0.005) and band.y1 == pytest.approx(0.005)


def _ablation_row(arm, gaps, **kw):
    return {"arm": arm, "mean_steps_per_tile": 5.0, "seconds": 3.0, "controls": {"gap_lpips": gaps}, **kw}


def test_ablation_gap_is_against_the_best_uniform_control():
    row = _ablation_row("x", {"linspace": 0.01, "balanced": 0.03})  # balanced has the lower LPIPS at this budget
    assert V.ablation_gap(row) == pytest.approx(0.03)
    r = {"ablations": {"codebook": [_ablation_row("codebook (5, 5, 5, 5)", {"linspace": -0.01, "balanced": 0.02}),
                                    _ablation_row("codebook (20, 20, 20, 20)", {"linspace": -0.03, "balanced": -0.01})],
                       "metrics": [],
                       "integration": [_ablation_row("integrate final (dtss)", {"linspace": 0.0, "balanced": 0.01},
                                                     seam_score=1.05)]}}
    fig = V.ablation_figure(r)
    assert [a.get_title() for a in fig.axes] == ["codebook", "integration"]  # empty groups are left out
    bars = fig.axes[0].patches
    np.testing.assert_allclose([b.get_width() for b in bars], [0.02, -0.01])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["codebook (5, 5, 5, 5)",
                                                                       "codebook (20, 20, 20, 20)"]
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["final (dtss)"]
    assert "seams 1.05" in fig.axes[1].texts[0].get_text()


def test_dtss_run_figure_shows_classes_strides_steps_and_image():
    recs = [[{"t": 999, "class": "stable", "stride": 20}, {"t": 500, "class": "growing", "stride": 5},
             {"t": 300, "class": "saturated", "stride": None}],
            [{"t": 999, "class": "stable", "stride": 20}, {"t": 0, "class": "stable", "stride": None}],
            [{"t": 999, "class": "growing", "stride": 5}]]
    grid = TileGrid.cover(32, 96, 32, 0)
    img = np.full((32, 96, 3), 7, np.uint8)
    fig = V.dtss_run_figure(recs, grid, img, n_max=10, summary="hello")
    ax_c, ax_s, ax_i, _colourbar = fig.axes
    cls, _ = V.class_timeline(recs)
    np.testing.assert_array_equal(ax_c.get_images()[0].get_array(), cls)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax_c.texts}
    assert texts == {(0, 0): "20", (1, 0): "5", (2, 0): "×", (0, 1): "20", (1, 1): "end", (0, 2): "5"}
    steps_map = ax_s.get_images()[0]
    np.testing.assert_array_equal(steps_map.get_array(), tile_value_map([3.0, 2.0, 1.0], grid).numpy())
    assert steps_map.get_clim() == (1, 10)
    assert sorted(t.get_text() for t in ax_s.texts) == ["1", "2", "3"]
    np.testing.assert_array_equal(ax_i.get_images()[0].get_array(), img)
    assert fig._suptitle.get_text() == "hello"
    fig2 = V.dtss_run_figure(recs, grid)
    assert len(fig2.axes) == 3 and fig2.axes[1].get_images()[0].get_clim() == (1, 3)


def test_dtss_controls_start_at_the_given_values():
    from adasr.widgets import DTSS_CODEBOOKS, dtss_controls

    c = dtss_controls()
    assert {k: w.value for k, w in c.items()} == {"tau": 0.005, "codebook": (5, 10, 15, 20), "nr_share": 0.5,
                                                  "signal": "regressor"}
    assert [v for _, v in c["codebook"].options] == list(DTSS_CODEBOOKS)
    c2 = dtss_controls(tau=0.003, codebook=(5, 5, 10, 10), nr_share=0.2, signal="metrics", images=["a", "b"],
                       image="b", steps=12)
    assert c2["tau"].value == 0.003 and 0.003 in [v for _, v in c2["tau"].options]
    assert c2["codebook"].value == (5, 5, 10, 10) and c2["image"].value == "b" and c2["steps"].value == 12
    assert all(not w.continuous_update for w in c2.values() if "continuous_update" in w.traits())
