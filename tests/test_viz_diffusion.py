"""adasr.viz.diffusion: the forward-process panels are x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (checked against numpy in float64,
through the display conversion), at the timesteps the positions name."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from adasr.diffusion.schedules import NoiseSchedule
from adasr.viz import diffusion as V


def teardown_function(_):
    plt.close("all")


def _display(x: np.ndarray) -> np.ndarray:
    """float (1, 3, H, W) in [−1, 1] → uint8 (H, W, 3), as adasr.data.to_uint8."""
    return np.round((np.clip(x[0], -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)


def test_forward_strip_panels_are_the_closed_form():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 3, 12, 10, generator=g) * 2 - 1
    eps = torch.randn(1, 3, 12, 10, generator=g)
    tables = {"linear": NoiseSchedule().alphas_cumprod(), "ECDP VP": NoiseSchedule.ecdp(300).alphas_cumprod()}
    positions = (0.0, 0.5, 1.0)
    fig = V.forward_strip(x0, eps, tables, positions)
    axes = np.array(fig.axes).reshape(2, 3)
    for r, (name, ab) in enumerate(tables.items()):
        T = len(ab)
        for c, s in enumerate(positions):
            t = round(s * (T - 1))
            a = float(ab[t])
            expected = np.sqrt(a) * x0.double().numpy() + np.sqrt(1 - a) * eps.double().numpy()
            got = np.asarray(axes[r, c].get_images()[0].get_array())
            # float64 on both sides; a pixel may sit on a rounding boundary of the uint8 display
            assert np.abs(got.astype(int) - _display(expected).astype(int)).max() <= 1
            assert (got != _display(expected)).mean() < 0.01
            assert axes[r, c].get_title() == f"t={t}  SNR={a / (1 - a):.3g}"
    assert axes[1, 0].get_ylabel() == "ECDP VP"
    with pytest.raises(ValueError):
        V.forward_strip(x0, eps, tables, (1.5,))


def test_noised_view_marks_t_on_the_log_snr_curve():
    x0 = torch.zeros(1, 3, 8, 8)
    eps = torch.full((1, 3, 8, 8), 0.5)
    ab = NoiseSchedule().alphas_cumprod()
    fig = V.noised_view(x0, eps, ab, t=250, name="linear")
    ax_i, ax_s = fig.axes
    a = float(ab[250])
    assert (np.asarray(ax_i.get_images()[0].get_array()) == round((0.5 * np.sqrt(1 - a) + 1) * 127.5)).all()
    mark = ax_s.get_lines()[1]
    assert mark.get_xdata().tolist() == [250]
    assert mark.get_ydata()[0] == pytest.approx(np.log(a / (1 - a)))


def test_schedule_curves_styles_and_snr_lines():
    """Coinciding curves (ECDP's VP on linear) get different styles; the SNR levels are drawn at log SNR."""
    tables = {"linear": NoiseSchedule().alphas_cumprod(), "ECDP VP": NoiseSchedule.ecdp(300).alphas_cumprod()}
    fig = V.schedule_curves(tables, snr_levels=(1.0, 0.01))
    ax_a, ax_s = fig.axes
    curves = [ln for ln in ax_s.get_lines() if len(ln.get_xdata()) > 2]
    assert [ln.get_label() for ln in curves] == ["linear", "ECDP VP"]
    styles = {(ln.get_linestyle(), ln.get_linewidth(), ln.get_marker()) for ln in curves}
    assert len(styles) == 2
    for ln, ab in zip(curves, tables.values()):
        np.testing.assert_allclose(ln.get_ydata(), np.log(ab.double().numpy() / (1 - ab.double().numpy())))
        np.testing.assert_allclose(ln.get_xdata(), (np.arange(len(ab)) + 1) / len(ab))
    levels = sorted(ln.get_ydata()[0] for ln in ax_s.get_lines() if len(ln.get_xdata()) == 2)
    np.testing.assert_allclose(levels, [np.log(0.01), 0.0])
    assert {t.get_text() for t in ax_s.texts} >= {"SNR = 1", "SNR = 0.01"}
    assert [ln.get_label() for ln in ax_a.get_lines()] == ["linear (T=1000)", "ECDP VP (T=300)"]
