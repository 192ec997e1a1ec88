"""Data checks for adasr.viz.maths (the figures of the maths appendix, notebook 90)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from adasr.viz import maths as V


def teardown_function(_):
    plt.close("all")


def test_posterior_check_figure_plots_closed_form_and_monte_carlo():
    t = np.arange(1, 6)
    closed = {"coef_x0": t * 0.1, "coef_xt": 1 - t * 0.1, "beta_tilde": t * 1e-3, "beta": t * 2e-3}
    mc = {"coef_x0": [0.11, 0.29], "coef_xt": [0.89, 0.71], "beta_tilde": [1.1e-3, 2.9e-3]}
    fig = V.posterior_check_figure(t, closed, [1, 3], mc)
    ax_m, ax_v = fig.axes
    lines = {l.get_label(): l for l in ax_m.get_lines()}
    np.testing.assert_allclose(lines["coefficient of $x_0$ (closed form)"].get_ydata(), t * 0.1)
    np.testing.assert_allclose(lines["coefficient of $x_t$ (Monte Carlo)"].get_ydata(), [0.89, 0.71])
    assert ax_v.get_yscale() == "log" and ax_m.get_xscale() == "log"
    var = {l.get_label(): l for l in ax_v.get_lines()}
    np.testing.assert_allclose(var[r"$\tilde\beta_t$ (Monte Carlo)"].get_xdata(), [1, 3])


def test_elbo_weight_figure_draws_each_weight_and_the_simple_loss():
    t = np.arange(1, 4)
    fig = V.elbo_weight_figure(t, {"a": [0.6, 0.3, 0.1], "b": [0.3, 0.2, 0.1]})
    ax = fig.axes[0]
    lines = {l.get_label(): l for l in ax.get_lines()}
    np.testing.assert_allclose(lines["a"].get_ydata(), [0.6, 0.3, 0.1])
    assert lines[r"$L_\mathrm{simple}$: weight 1"].get_ydata()[0] == 1.0


def test_tweedie_figure_pairs_densities_means_and_monte_carlo():
    x = np.linspace(-1, 1, 5)
    fig = V.tweedie_figure(x, {"data": np.ones(5), "t = 9": np.full(5, 0.5)}, {"t = 9": x * 0.5},
                           mc={"t = 9": ([0.0, 0.5], [0.01, 0.24])}, data_means=[-0.5, 0.5])
    ax_d, ax_m = fig.axes
    assert [l.get_label() for l in ax_d.get_lines()] == ["data", "t = 9"]
    curve = next(l for l in ax_m.get_lines() if l.get_label() == "t = 9")
    np.testing.assert_allclose(curve.get_ydata(), x * 0.5)
    assert curve.get_color() == ax_d.get_lines()[1].get_color()        # one colour per t in both panels
    dots = [l for l in ax_m.get_lines() if l.get_marker() == "o"]
    np.testing.assert_allclose(dots[0].get_ydata(), [0.01, 0.24])
    assert sum(1 for l in ax_m.get_lines() if l.get_linestyle() == ":") == 2  # the data means
