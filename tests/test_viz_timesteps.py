"""adasr.viz.timesteps: the figures of notebook 02's "which timesteps" section draw exactly the data they are given
(timesteps at (t, λ(t)) with λ = log(ᾱ/(1 − ᾱ)), metric curves against λ, candidates and presets in the plane)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.diffusion.schedules import NoiseSchedule
from adasr.viz import timesteps as V

AB = NoiseSchedule().alphas_cumprod()  # the linear β table of sr_x4, (1000,)


def teardown_function(_):
    plt.close("all")


def _lam(ts):
    a = AB.double().numpy()[list(ts)]
    return np.log(a / (1 - a))


def _by_gid(ax, gid):
    found = [a for a in [*ax.collections, *ax.lines] if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in [*ax.collections, *ax.lines]])
    return found[0]


def test_lambdas_is_log_snr_and_checks_range():
    np.testing.assert_allclose(V.lambdas(AB, [999, 500, 0]), _lam([999, 500, 0]), rtol=1e-12)
    assert V.lambdas(AB, [999])[0] < -9 and V.lambdas(AB, [0])[0] > 9  # the range the notebook's prose quotes
    with pytest.raises(ValueError):
        V.lambdas(AB, [1000])


def test_timesteps_on_log_snr_marks_each_step_on_the_curve_and_the_end():
    schedules = {"linspace": [999, 888, 777, 666, 555, 444, 333, 222, 111, 0], "preset": [999, 300, 20]}
    fig = V.timesteps_on_log_snr(AB, schedules, etas={"linspace": 0.0, "preset": 0.5})
    assert len(fig.axes) == 2
    ax_c, ax_r = fig.axes
    for i, (name, ts) in enumerate(schedules.items()):
        np.testing.assert_allclose(_by_gid(ax_c, f"curve:{name}").get_offsets(), np.c_[ts, _lam(ts)], rtol=1e-6)
        row = np.asarray(_by_gid(ax_r, f"row:{name}").get_offsets())
        np.testing.assert_allclose(row[:, 0], _lam(ts), rtol=1e-6)
        assert set(row[:, 1]) == {len(schedules) - 1 - i}  # the first schedule on top
        np.testing.assert_allclose(_by_gid(ax_r, f"end:{name}").get_offsets(), [[_lam(ts)[-1], row[0, 1]]])
    labels = [t.get_text() for t in ax_r.get_yticklabels()]
    assert labels == ["preset  η=0.5", "linspace  η=0"]
    with pytest.raises(ValueError):
        V.timesteps_on_log_snr(AB, {"bad": [10, 20]})


def test_x0_strip_shows_the_images_with_t_and_lambda():
    rng = np.random.default_rng(0)
    imgs = {"a": [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)],
            "b": [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)]}
    ts = {"a": [999, 400, 20], "b": [999]}
    metrics = {"a": [{"psnr_y": 25.0, "lpips": 0.2}] * 3, "b": [{"psnr_y": 26.0, "lpips": 0.25}]}
    hr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    fig = V.x0_strip_figure(imgs, ts, AB, metrics=metrics, hr=hr)
    axes = np.array(fig.axes).reshape(2, 4)
    for r, k in enumerate(ts):
        for c, img in enumerate(imgs[k]):
            assert (np.asarray(axes[r, c].get_images()[0].get_array()) == img).all()
            assert axes[r, c].get_title().startswith(f"t={ts[k][c]}  λ={_lam([ts[k][c]])[0]:+.1f}")
    assert (np.asarray(axes[0, 3].get_images()[0].get_array()) == hr).all()
    assert not axes[1, 1].get_images() and not axes[1, 1].axison  # a shorter chain leaves blank panels
    assert "25.00 dB · 0.200" in axes[0, 0].get_title()
    with pytest.raises(ValueError):
        V.x0_strip_figure({"a": imgs["a"]}, {"a": [999, 20]}, AB)


def test_metrics_along_chain_plots_against_lambda():
    curves = {"linspace": {"timesteps": [999, 500, 0], "psnr_y": [26.0, 25.5, 25.0], "lpips": [0.22, 0.2, 0.15]},
              "preset": {"timesteps": [999, 50], "psnr_y": [26.0, 25.2], "lpips": [0.22, 0.12]}}
    fig = V.metrics_along_chain(curves, AB, reference={"bicubic": {"psnr_y": 24.8, "lpips": 0.49}})
    assert len(fig.axes) == 2
    for ax, key in zip(fig.axes, ("psnr_y", "lpips")):
        lines = [ln for ln in ax.get_lines() if ln.get_label() in curves]
        assert [ln.get_label() for ln in lines] == list(curves)
        for ln, c in zip(lines, curves.values()):
            np.testing.assert_allclose(ln.get_xdata(), _lam(c["timesteps"]), rtol=1e-6)
            np.testing.assert_allclose(ln.get_ydata(), c[key])
        ref = [ln for ln in ax.get_lines() if ln.get_label() == "bicubic"]
        assert ref and ref[0].get_ydata()[0] == {"psnr_y": 24.8, "lpips": 0.49}[key]


def test_perception_distortion_marks_candidates_frontier_presets_reference():
    cands = [{"n": 1, "family": "linspace", "psnr_y": 42.6, "lpips": 0.077},
             {"n": 2, "family": "power", "psnr_y": 42.4, "lpips": 0.072},
             {"n": 2, "family": "power", "psnr_y": 42.1, "lpips": 0.070},
             {"n": 2, "family": "karras", "psnr_y": 41.9, "lpips": 0.075},
             {"n": 10, "family": "linspace", "psnr_y": 41.0, "lpips": 0.074}]
    presets = {"balanced": {1: cands[0], 2: cands[1], 10: cands[4]}, "perceptual": {2: cands[2]}}
    ref = {**cands[4], "label": "DDIM-10 linspace η=0"}
    fig = V.perception_distortion_figure(cands, frontier={2: [2, 1]}, presets=presets, reference=ref,
                                         highlight={"default": cands[1]}, ns=[1, 2])
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    n2 = np.concatenate([c.get_offsets() for c in ax.collections if c.get_gid() == "n:2"])
    assert sorted(map(tuple, n2)) == sorted((c["lpips"], c["psnr_y"]) for c in cands[1:4])
    assert not [c for c in ax.collections if c.get_gid() == "n:10"]  # ns filters
    front = _by_gid(ax, "frontier:2")
    assert list(front.get_xdata()) == [0.070, 0.072]  # sorted by LPIPS
    np.testing.assert_allclose(_by_gid(ax, "preset:balanced").get_offsets(), [[0.077, 42.6], [0.072, 42.4]])
    np.testing.assert_allclose(_by_gid(ax, "preset:perceptual").get_offsets(), [[0.070, 42.1]])
    np.testing.assert_allclose(_by_gid(ax, "reference").get_offsets(), [[0.074, 41.0]])
    np.testing.assert_allclose(_by_gid(ax, "highlight:default").get_offsets(), [[0.072, 42.4]])
    assert "DDIM-10 linspace η=0" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig = V.perception_distortion_figure(cands, presets=presets, preset_ns=[2])
    ax = fig.axes[0]
    np.testing.assert_allclose(_by_gid(ax, "preset:balanced").get_offsets(), [[0.072, 42.4]])
    assert len([c for c in ax.collections if c.get_gid() == "n:10"]) == 1  # every N shown, presets only for N = 2


def test_schedule_explorer_shows_images_and_marks_the_schedule():
    g = torch.Generator().manual_seed(0)
    up, sr, hr = (torch.rand(1, 3, 16, 16, generator=g) * 2 - 1 for _ in range(3))
    fig = V.schedule_explorer_figure(up, sr, hr, [999, 400, 120, 20], AB, eta=0.5,
                                     metrics={"psnr_y": 25.3, "lpips": 0.118}, up_metrics={"psnr_y": 24.8})
    assert len(fig.axes) == 4
    from adasr.data import to_uint8

    for ax, img in zip(fig.axes[:3], (up, sr, hr)):
        assert (np.asarray(ax.get_images()[0].get_array()) == to_uint8(img)).all()
    assert "η=0.5" in fig.axes[1].get_title() and "25.30 dB" in fig.axes[1].get_title()
    ax = fig.axes[3]
    np.testing.assert_allclose(_by_gid(ax, "steps").get_offsets(), np.c_[[999, 400, 120, 20],
                                                                      _lam([999, 400, 120, 20])], rtol=1e-6)
    np.testing.assert_allclose(_by_gid(ax, "end").get_offsets(), [[20, _lam([20])[0]]], rtol=1e-6)


def test_pack_rows_puts_short_chains_side_by_side():
    # linspace-10 with the HR beside it, then the 2- and 4-step chains sharing the second row
    assert V.pack_rows([10, 2, 4], 11, reserve=True) == [(0, 0), (1, 0), (1, 3)]
    assert V.pack_rows([2, 2, 2], 5) == [(0, 0), (0, 3), (1, 0)]
    with pytest.raises(ValueError):
        V.pack_rows([6], 5)
    rng = np.random.default_rng(1)
    imgs = {k: [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(n)] for k, n in
            (("ten", 10), ("two", 2), ("four", 4))}
    ts = {"ten": list(range(999, -1, -111)), "two": [999, 20], "four": [999, 683, 366, 50]}
    fig = V.x0_strip_figure(imgs, ts, AB, hr=imgs["ten"][0])
    axes = np.array(fig.axes).reshape(2, 11)
    assert (np.asarray(axes[1, 3].get_images()[0].get_array()) == imgs["four"][0]).all()
    assert axes[1, 3].get_ylabel() == "four" and not axes[1, 2].axison
    fig = V.x0_strip_figure({"two": imgs["two"]}, {"two": ts["two"]}, AB, zoom=(1, 2, 2))
    assert (np.asarray(fig.axes[1].get_images()[0].get_array()) == imgs["two"][1][1:3, 2:4]).all()
