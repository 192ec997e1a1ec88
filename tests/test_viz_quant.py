"""Data checks for adasr.viz.quant (the figures of notebook 10): the plotted arrays, lines, bars and labels.

No model is quantized or trained; the inputs are small synthetic arrays (one test reads levels off the package's
quantizers, which is a few milliseconds)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba

from adasr.quant.quantizer import quantize_activation, quantize_weight
from adasr.viz import quant as V


def teardown_function(_):
    plt.close("all")


def test_small_helpers():
    assert [V.signed(b) for b in (-1, 0, 1, 2)] == ["−1", "0", "+1", "+2"]
    assert V.bit_counts(np.array([[-1, 0], [1, 1]])) == {-1: 1, 0: 1, 1: 2}
    assert V.short_layer_names(["body.3.conv1", "body.12.conv2", "head"]) == ["3.1", "12.2", "head"]
    values = np.array([0.0, 0.5, 1.0])
    assert V.levels_in_range([-1.0, -0.5, 0.0, 0.5, 1.0 + 1e-8, 1.5], values) == 3  # 0, 0.5 and 1 (float32 slack)


def _levels(l: float, u: float, bits: int) -> dict[str, np.ndarray]:
    m = max(-l, u)
    grid = torch.linspace(-m, m, 20_001)
    return {"asymmetric": quantize_activation(grid, l, u, bits).unique().numpy(),
            "symmetric": quantize_weight(grid, m, bits).unique().numpy()}


def test_quantizer_levels_figure_histogram_and_levels():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(0, 1, 4000), 0)
    res = rng.normal(0.2, 0.5, 4000)
    lv_relu, lv_res = _levels(0.0, float(relu.max()), 4), _levels(float(res.min()), float(res.max()), 4)
    assert len(lv_relu["asymmetric"]) == 16 and len(lv_relu["symmetric"]) == 15
    panels = {"relu": {"values": relu, "levels": lv_relu, "mse": {"asymmetric": 1e-4, "symmetric": 4e-4}},
              "res": {"values": res, "levels": lv_res}}
    fig = V.quantizer_levels_figure(panels, bins=30, title="t")
    hist_axes = [ax for ax in fig.axes if ax.get_title()]
    strips = [ax for ax in fig.axes if not ax.get_title()]
    assert [ax.get_title() for ax in hist_axes] == ["relu", "res"] and len(strips) == 2
    for ax, values in zip(hist_axes, (relu, res)):
        counts, edges = np.histogram(values, bins=30, range=(values.min(), values.max()))
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_array_equal(heights, counts)
        np.testing.assert_allclose([p.get_x() for p in ax.patches], edges[:-1])
    for strip, lv in zip(strips, (lv_relu, lv_res)):
        cols = [c for c in strip.collections if isinstance(c, LineCollection)]
        assert len(cols) == 2
        for col, name in zip(cols, ("asymmetric", "symmetric")):
            xs = [seg[0, 0] for seg in col.get_segments()]
            np.testing.assert_allclose(xs, np.sort(lv[name]))
        assert [t.get_text() for t in strip.get_yticklabels()] == ["asymmetric", "symmetric"]
    text = hist_axes[0].texts[0].get_text()
    assert "asymmetric: 16/16 levels in range, MSE 1.00e-04" in text and "symmetric: 8/15 levels in range" in text
    assert "MSE" not in hist_axes[1].texts[0].get_text()
    with pytest.raises(ValueError):
        V.quantizer_levels_figure({})
    with pytest.raises(ValueError):
        V.quantizer_levels_figure({"x": {"values": np.array([]), "levels": lv_relu}})


def test_calibration_error_figure_lines():
    bits = [2, 3, 4]
    panels = {"layer A": {"minmax": [1e-2, 3e-3, 1e-3], "percentile": [5e-3, 2e-3, 2e-3], "mse": [4e-3, 1e-3, 5e-4]},
              "layer B": {"minmax": [2e-2, 5e-3, 1e-3], "custom": [1e-3, 1e-3, 1e-3]}}
    fig = V.calibration_error_figure(bits, panels)
    assert [ax.get_title() for ax in fig.axes] == ["layer A", "layer B"]
    for ax, methods in zip(fig.axes, panels.values()):
        assert ax.get_yscale() == "log"
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert set(lines) == set(methods)
        for m, errs in methods.items():
            np.testing.assert_array_equal(lines[m].get_xdata(), bits)
            np.testing.assert_allclose(lines[m].get_ydata(), errs)
    a = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert to_rgba(a["mse"].get_color()) == to_rgba(V.METHOD_STYLES["mse"][0])
    with pytest.raises(ValueError):
        V.calibration_error_figure(bits, {"x": {"minmax": [1.0, 2.0]}})


def test_image_to_bit_figure_maps_texts_and_thresholds():
    rng = np.random.default_rng(1)
    images = {"a": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
              "b": rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)}     # 40 px: edge patches of 8 px
    bits = {"a": np.array([[-1, 0], [1, 0]]), "b": np.array([[0, 1], [1, 1]])}
    comp = {"a": np.array([[1.0, 10.0], [50.0, 20.0]]), "b": np.array([[5.0, 60.0], [70.0, 80.0]])}
    calib = rng.uniform(0.5, 100, 50)
    fig = V.image_to_bit_figure(images, comp, bits, thresholds=(2.0, 45.0), patch=32, calibration=calib)
    hist_ax, ax_a, ax_b = fig.axes
    assert sum(p.get_height() for p in hist_ax.patches if p.get_height() > 0 and p.get_width() > 0
               and p.get_facecolor()[:3] == to_rgba("0.55")[:3]) == 50
    vlines = [ln.get_xdata()[0] for ln in hist_ax.get_lines() if ln.get_linestyle() == "--"]
    assert vlines == [2.0, 45.0]
    rug = [ln for ln in hist_ax.get_lines() if ln.get_marker() == "|"][0]
    np.testing.assert_allclose(sorted(rug.get_xdata()), sorted(np.concatenate([comp["a"].ravel(), comp["b"].ravel()])))
    for ax, name in ((ax_a, "a"), (ax_b, "b")):
        gray, overlay = ax.get_images()
        np.testing.assert_allclose(gray.get_array(), images[name].mean(axis=2))
        np.testing.assert_array_equal(overlay.get_array(), bits[name])
        assert overlay.get_extent() == [-0.5, 63.5, 63.5, -0.5]                 # the full 2×2 grid of 32 px
        assert overlay.get_clim() == (-1.5, 1.5)
        assert [t.get_text() for t in ax.texts] == [f"{c:.1f}" for c in comp[name].ravel()]
        h, w = images[name].shape[:2]
        assert ax.get_xlim() == (-0.5, w - 0.5) and ax.get_ylim() == (h - 0.5, -0.5)
    assert "1/2/1 patches" in ax_a.get_title() and "0/1/3 patches" in ax_b.get_title()
    # the edge patches' text sits at the centre of the smaller patch
    assert ax_b.texts[1].get_position() == ((32 + 40) / 2 - 0.5, 15.5)
    fig2 = V.image_to_bit_figure({"a": images["a"]}, {"a": comp["a"]}, {"a": bits["a"]}, thresholds=(1, 2), patch=32)
    assert len(fig2.axes) == 1
    with pytest.raises(ValueError):  # wrong number of patches for the image
        V.image_to_bit_figure({"a": images["a"]}, {"a": comp["a"][:1]}, {"a": bits["a"][:1]}, thresholds=(1, 2),
                              patch=32)
    with pytest.raises(ValueError):
        V.image_to_bit_figure(images, comp, {"a": bits["a"]}, thresholds=(1, 2), patch=32)


def test_layer_to_bit_figure_bars_and_percentiles():
    names = [f"body.{i // 2}.conv{i % 2 + 1}" for i in range(8)]
    sens = [0.3, 0.1, 0.25, 0.08, 0.2, 0.07, 0.15, 0.06]
    bl = [1, 0, 1, -1, 1, -1, 0, -1]
    fig = V.layer_to_bit_figure(names, sens, bl, percentile=30, b_base=4)
    ax = fig.axes[0]
    bars = ax.containers[0]
    np.testing.assert_allclose([b.get_height() for b in bars], sens)
    assert [to_rgba(b.get_facecolor()) for b in bars] == [to_rgba(V.BIT_COLOURS[b]) for b in bl]
    hl = sorted(ln.get_ydata()[0] for ln in ax.get_lines())
    np.testing.assert_allclose(hl, np.percentile(sens, [30, 70]))
    assert [t.get_text() for t in ax.texts] == [V.signed(b) for b in bl]
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["0.1\n5b", "0.2\n4b"]
    with pytest.raises(ValueError):
        V.layer_to_bit_figure(names, sens[:-1], bl)


def test_trained_epochs_finds_the_skipped_measure_epochs():
    log = {"loss": [0.0] * 8, "phase": ["w", "a", "measure", "w", "a", "measure"]}
    assert V.trained_epochs(log, 2) == [0, 1, 3, 4]                                  # fixed bits: measure skipped
    assert V.trained_epochs({**log, "loss": [0.0] * 12}, 2) == [0, 1, 2, 3, 4, 5]    # nothing skipped
    assert V.trained_epochs({"loss": [0.0] * 5}, 2) == [0, 1, 2]                     # no phases: consecutive
    with pytest.raises(ValueError):
        V.trained_epochs(log, 0)


def test_spread_labels_keeps_a_gap_and_the_centre():
    h = V._spread_labels([1.0, 1.0, 3.0], gap=0.5)
    assert h[1] - h[0] == pytest.approx(0.5) and h[2] == pytest.approx(3.0 - 1 / 6)
    assert np.mean(h) == pytest.approx(np.mean([1.0, 1.0, 3.0]))
    assert V._spread_labels([2.0, 0.0], gap=0.1) == [2.0, 0.0]                       # already apart: unchanged


def test_finetune_figure_losses_points_and_curve():
    logs = {"fixed": {"loss": [3.0, 2.5, 2.0, 1.9], "phase": ["w", "a", "measure"]},
            "ada": {"loss": [3.2, 2.6, 2.1, 2.0, 5.0, 2.2], "phase": ["w", "a", "measure"]}}
    arms = {"before": {"psnr_y": 31.8, "fab": 3.96, "after": "after"}, "after": {"psnr_y": 31.9, "fab": 3.9},
            "twin": {"psnr_y": 31.8, "fab": 3.96}}
    curve = {"W4A5": {"psnr_y": 32.3, "fab": 5.0}, "W4A3": {"psnr_y": 31.3, "fab": 3.0},
             "W4A4": {"psnr_y": 32.0, "fab": 4.0}}
    fig = V.finetune_figure(logs, arms, steps_per_epoch=2, curve=curve, reference={"FP32": 32.5})
    ax, bx = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for k, log in logs.items():
        np.testing.assert_array_equal(lines[k].get_xdata(), np.arange(1, len(log["loss"]) + 1))
        np.testing.assert_allclose(lines[k].get_ydata(), log["loss"])
    spans = [p for p in ax.patches]
    assert len(spans) == 3
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["w", "a", "measure"] and texts[3] == "fixed: nothing to train,\nepoch skipped"
    assert "L_\\mathrm{pix}" in ax.get_title() and "10" in ax.get_title() and "50" in ax.get_title()
    fixed_line = [ln for ln in bx.get_lines() if ln.get_label().startswith("fixed")][0]
    np.testing.assert_allclose(fixed_line.get_xdata(), [3.0, 4.0, 5.0])            # sorted by FAB
    np.testing.assert_allclose(fixed_line.get_ydata(), [31.3, 32.0, 32.3])
    pts = [c for c in bx.collections if isinstance(c, PathCollection)]
    assert [c.get_label() for c in pts] == ["before ≈ twin", "after"]              # one marker for one point
    np.testing.assert_allclose(np.vstack([c.get_offsets() for c in pts]), [[3.96, 31.8], [3.9, 31.9]])
    assert [ln.get_ydata()[0] for ln in bx.get_lines() if ln.get_label().startswith("FP32")] == [32.5]
    labels = [t.get_text() for t in bx.texts]
    assert labels.count("before ≈ twin") == 1 and labels.count("after") == 1 and "W4A4" in labels
    assert "" in labels                                                             # the arrow before → after
    with pytest.raises(ValueError):
        V.finetune_figure(logs, {"x": {"psnr_y": 1.0, "fab": 4.0, "after": "y"}}, steps_per_epoch=2)


def test_finetune_figure_breaks_a_run_at_a_skipped_middle_epoch():
    logs = {"fixed": {"loss": [1.0, 2.0, 3.0, 4.0], "phase": ["w", "measure", "a"]}}
    fig = V.finetune_figure(logs, {"x": {"psnr_y": 1.0, "fab": 4.0}}, steps_per_epoch=2)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, np.nan, 5, 6])
    np.testing.assert_array_equal(line.get_ydata(), [1.0, 2.0, np.nan, 3.0, 4.0])


def test_paired_difference_figure_bars_means_and_fab_labels():
    arms = {"W8A6": {"images": {"a": {"psnr_y": 30.0, "lpips": 0.2, "fab": 6.0}, "b": {"psnr_y": 40.0, "lpips": 0.3, "fab": 6.0}},
                     "mean": {"fab": 6.0}},
            "ada": {"images": {"a": {"psnr_y": 30.5, "lpips": 0.1, "fab": 6.5}, "b": {"psnr_y": 39.0, "lpips": 0.4, "fab": 5.0}},
                    "mean": {"fab": 5.75}}}
    fig = V.paired_difference_figure(arms, [("W8A6", "ada")])
    ax, bx = fig.axes
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [0.5, -1.0])
    np.testing.assert_allclose([p.get_height() for p in bx.patches], [-0.1, 0.1], atol=1e-12)
    mean_marker = [ln for ln in ax.get_lines() if ln.get_label() == "mean over the images"][0]
    np.testing.assert_allclose(mean_marker.get_ydata(), [-0.25])
    assert [t.get_text() for t in ax.texts] == ["6.50", "5.00"]
    assert "< 0: arm better" in bx.get_ylabel() and "> 0: arm better" in ax.get_ylabel()
    assert ax.get_xticklabels()[0].get_text() == "ada\n− W8A6 (FAB 6)"
    with pytest.raises(ValueError):
        V.paired_difference_figure(arms, [("W8A6", "nope")])
    with pytest.raises(ValueError):
        V.paired_difference_figure(arms, [])


def test_adabm_state_figure_map_and_clipped_bits():
    img = np.full((64, 64, 3), 100, np.uint8)
    ib = np.array([[-1, 0], [0, 1]])
    bl = [1, 0, -1, 1]
    fig = V.adabm_state_figure(img, ib, bl, b_base=7, patch=32, names=["body.0.conv1", "body.0.conv2",
                                                                         "body.1.conv1", "body.1.conv2"],
                               summary="hello", limits=(2, 8))
    ax, bx = fig.axes
    np.testing.assert_array_equal(ax.get_images()[1].get_array(), ib)
    assert "1/2/1" in ax.get_title() and fig._suptitle.get_text() == "hello"
    pts = bx.collections[0].get_offsets()
    np.testing.assert_allclose(pts[:, 1], [8, 7, 6, 8])                              # 7 + 1 = 8, clipped at 8
    bands = bx.containers[0]
    np.testing.assert_allclose([b.get_y() for b in bands], [7, 6, 5, 7])
    np.testing.assert_allclose([b.get_y() + b.get_height() for b in bands], [8, 8, 7, 8])
    assert [t.get_text() for t in bx.get_xticklabels()] == ["0.1", "0.2", "1.1", "1.2"]
    fig = V.adabm_state_figure(img, ib, bl, b_base=7, patch=32, limits=None)
    np.testing.assert_allclose(fig.axes[1].collections[0].get_offsets()[:, 1], [8, 7, 6, 8])
    np.testing.assert_allclose([b.get_y() + b.get_height() for b in fig.axes[1].containers[0]], [9, 8, 7, 9])
    with pytest.raises(ValueError):
        V.adabm_state_figure(img, ib, [], b_base=4, patch=32)
