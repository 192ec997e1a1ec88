"""adasr.viz.reuse and adasr.viz.sparse draw exactly the data they are given."""

from __future__ import annotations

import numpy as np
import pytest

from adasr.viz import reuse as VR
from adasr.viz import sparse as VS


def test_macs_bars_and_key_steps():
    fig = VR.macs_by_mode_figure({"full": 6e9, "decoder": 3e9, "shallow": 1.5e9})
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([6.0, 3.0, 1.5])
    fig = VR.key_steps_figure({"a": [True, False, True], "b": [True, True]}, {"b": "deepcache"})
    cols = [p.get_facecolor()[:3] for p in fig.axes[0].patches]
    assert len(cols) == 5
    import matplotlib.colors as mc

    full, dec, sh = (mc.to_rgb(VR.MODE_COLOURS[m]) for m in ("full", "decoder", "shallow"))
    assert [tuple(c) for c in cols] == [full, dec, full, full, full]


def test_feature_change_and_cost_quality():
    sim = {"timesteps": [999, 500, 0], "change": {"mid": [0.1, 0.3], "deep": [0.05, 0.2]},
           "cosine": {"mid": [[1, 0.9, 0.8], [0.9, 1, 0.95], [0.8, 0.95, 1]]}}
    fig = VR.feature_change_figure(sim)
    lines = fig.axes[0].get_lines()
    assert [list(l.get_ydata()) for l in lines] == [[0.1, 0.3], [0.05, 0.2]]
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), sim["cosine"]["mid"])
    curves = {"linspace": {"steps": [1, 2], "lpips": [0.3, 0.2], "psnr_y": [31, 30], "model_seconds": [1.0, 2.0]}}
    arms = [{"family": "linspace", "cache": "encoder", "key_steps": "uniform", "model_seconds": 1.5, "lpips": 0.25,
             "psnr_y": 30.5}]
    fig = VR.cost_quality_figure({"curves": curves, "arms": arms})
    ax = fig.axes[0]
    assert list(ax.get_lines()[0].get_ydata()) == [0.3, 0.2]
    assert ax.collections[0].get_offsets().tolist() == [[1.5, 0.25]]


def test_density_heatmap_and_summary():
    ups = [{"step": 100, "layer_density": {"a.weight": 0.1, "b.weight": 0.2}},
           {"step": 200, "layer_density": {"a.weight": 0.05, "b.weight": 0.25}}]
    fig = VS.density_heatmap_figure(ups, initial=0.15)
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), [[0.15, 0.1, 0.05], [0.15, 0.2, 0.25]])
    assert VS.short_layer("down.0.conv1.weight") == "down.0.conv1"
    fig = VS.training_curves_figure({"dense": {"steps": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}}, smooth=1)
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [3.0, 2.0, 1.0]
    q = {a: {"linspace-10": {"lpips": l, "psnr_y": 30.0}} for a, l in (("dense", 0.2), ("sparse", 0.21))}
    st = {a: {"dense": 4e6, "sparse_coo": 2e6, "sparse_bitmap": 1e6} for a in q}
    result = {"quality": q, "storage": st, "speed": {"x": {"median_s": 0.5}}, "speed_batch": [9, 128, 128],
              "layer_sweep": [{"density": 0.1, "csr_over_dense": 5.0}]}
    fig = VS.sparse_summary_figure(result)
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx([0.2, 0.21])
    assert [p.get_height() for p in fig.axes[1].patches] == pytest.approx([4.0, 4.0, 2.0, 1.0])
