"""Interactive controls around the pure plotting functions of :mod:`adasr.viz`.

The pattern every notebook follows:

1. a function ``fn(**params) -> matplotlib.figure.Figure`` that computes and draws, with no widget code;
2. a static cell that calls it once with the default parameters (that figure is the one saved to ``figures/``);
3. a cell starting with ``# NBVAL_IGNORE_OUTPUT`` that wraps the *same* function::

       explore(plot_noised, kind=["linear", "cosine", "ecdp_vp"], t=(0, 999, 10))

ipywidgets is imported lazily, so ``import adasr`` works without it. Controls follow ``interact``'s
abbreviations — ``(min, max[, step])`` → slider (int or float from the types), a list → dropdown, a bool →
checkbox, a str → text box — or may be ready-made widgets (to choose a starting value, for instance). Bind
constant arguments (images, tensors) with :func:`functools.partial` before passing ``fn``. Sliders use
``continuous_update=False``, so the figure is redrawn when the mouse is released, not on every pixel.
"""

from __future__ import annotations

from typing import Any, Callable


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - ipywidgets is a package dependency
        raise ImportError("adasr.widgets needs ipywidgets (pip install ipywidgets)") from exc
    return ipywidgets


def make_control(name: str, abbrev: Any):
    """A widget for one argument: ``abbrev`` is a widget (returned as is) or an ``interact`` abbreviation."""
    w = _ipywidgets()
    if isinstance(abbrev, w.ValueWidget):
        widget = abbrev
    else:
        from inspect import Parameter

        widget = w.interactive.widget_from_abbrev(abbrev, Parameter.empty)
        if widget is None:
            raise ValueError(f"cannot make a control for {name}={abbrev!r}")
        widget.description = name
    if "continuous_update" in widget.traits():
        widget.continuous_update = False
    return widget


def _show_figure(result: Any) -> None:
    """Display what ``fn`` returned when it is a Figure, then close it so pyplot does not show it twice."""
    from matplotlib.figure import Figure

    if isinstance(result, Figure):
        import matplotlib.pyplot as plt
        from IPython.display import display

        display(result)
        plt.close(result)


def explore(fn: Callable[..., Any], *, manual: bool = False, height: str | None = None, **controls: Any):
    """Controls for each keyword of ``fn`` above an output area showing ``fn(**values)``; returns the ``VBox``.

    Args:
        fn: called with one keyword argument per control; a returned matplotlib Figure is displayed.
        manual: add a "Run" button and redraw only when it is clicked (use it for anything that samples a
            model, so dragging a slider does not start a long computation).
        height: fixed CSS height of the output area (e.g. ``"360px"``) to stop the page jumping on redraw.
        **controls: ``name=widget`` or ``name=abbreviation`` (see the module docstring).

    The figure for the initial values is drawn immediately (unless ``manual``). Put the call last in a cell
    that begins with ``# NBVAL_IGNORE_OUTPUT``.
    """
    if not controls:
        raise ValueError("explore needs at least one control")
    w = _ipywidgets()
    widgets = {name: make_control(name, abbrev) for name, abbrev in controls.items()}
    out = w.Output(layout=w.Layout(height=height)) if height else w.Output()

    def render(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            _show_figure(fn(**{k: v.value for k, v in widgets.items()}))

    children = list(widgets.values())
    if manual:
        button = w.Button(description="Run", button_style="primary")
        button.on_click(render)
        children.append(button)
    else:
        for widget in widgets.values():
            widget.observe(render, names="value")
        render()
    return w.VBox([w.HBox(children, layout=w.Layout(flex_flow="row wrap")), out])


#: τ values offered by :func:`dtss_controls` (the paper's 5·10⁻³ among them).
DTSS_TAUS: tuple[float, ...] = (0.0001, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
#: stride codebooks offered by :func:`dtss_controls`: the paper's and the ablation's all-small / all-large / larger.
DTSS_CODEBOOKS: tuple[tuple[int, int, int, int], ...] = ((5, 10, 15, 20), (5, 5, 5, 5), (20, 20, 20, 20),
                                                           (10, 15, 20, 25), (5, 20, 20, 20))


def dtss_controls(*, tau: float = 5e-3, codebook: tuple[int, ...] = (5, 10, 15, 20), nr_share: float = 0.5,
                  signal: str = "regressor", image: str | None = None, images: list[str] | None = None,
                  steps: int | None = None) -> dict[str, Any]:
    """The controls of AdaDiffSR's DTSS for :func:`explore` (notebook 07): ``tau`` (a selection slider over
    :data:`DTSS_TAUS`, plus ``tau`` if it is not there), ``codebook`` (a dropdown of :data:`DTSS_CODEBOOKS`, plus
    ``codebook``), ``nr_share`` (the NR metrics' share λ of the weights, 0 … 1: ω_FR = 2(1 − λ)/|FR| each,
    ω_NR = 2λ/|NR| each, so λ = 0.5 is the package default of each group summing to 1), ``signal`` (``regressor``
    / ``metrics``; the weights only act on the computed metrics) and, if given, ``image`` (a dropdown of
    ``images``) and ``steps`` (N, an int slider 2 … 20).

    Returns {name: widget}, to be passed as ``explore(fn, manual=True, **dtss_controls())``; the starting values
    are the arguments (the package defaults unless told otherwise)."""
    w = _ipywidgets()
    taus = sorted(set(DTSS_TAUS) | {float(tau)})
    books = list(DTSS_CODEBOOKS) if tuple(codebook) in DTSS_CODEBOOKS else [tuple(codebook), *DTSS_CODEBOOKS]
    controls: dict[str, Any] = {
        "tau": w.SelectionSlider(options=[(f"{v:g}", v) for v in taus], value=float(tau), description="τ"),
        "codebook": w.Dropdown(options=[(", ".join(map(str, b)), tuple(b)) for b in books], value=tuple(codebook),
                               description="codebook"),
        "nr_share": w.FloatSlider(value=float(nr_share), min=0.0, max=1.0, step=0.1, description="NR share λ"),
        "signal": w.Dropdown(options=["regressor", "metrics"], value=signal, description="signal"),
    }
    if images:
        controls["image"] = w.Dropdown(options=list(images), value=image or images[0], description="image")
    if steps is not None:
        controls["steps"] = w.IntSlider(value=int(steps), min=2, max=20, description="N")
    for c in controls.values():
        if "continuous_update" in c.traits():
            c.continuous_update = False
    return controls


def reuse_controls(*, cache: str = "encoder", interval: int = 2, key_steps: str = "uniform",
                   schedule: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """The controls of feature reuse for :func:`explore` (notebook 08): ``cache`` (``none`` / ``encoder`` /
    ``deepcache``), ``interval`` (K, 1 … 6), ``key_steps`` (the presets of :data:`adasr.config.KEY_STEPS`),
    ``schedule`` (``linspace`` / ``balanced``) and ``steps`` (N, 1 … 20). Starting values: the arguments (the
    package defaults — interval 2, uniform key steps, the default schedule and N — unless told otherwise).

    Returns {name: widget}, to be passed as ``explore(fn, manual=True, **reuse_controls())``."""
    from .config import CACHES, KEY_STEPS
    from .defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS

    w = _ipywidgets()
    controls: dict[str, Any] = {
        "cache": w.Dropdown(options=list(CACHES), value=cache, description="cache"),
        "interval": w.IntSlider(value=int(interval), min=1, max=6, description="K"),
        "key_steps": w.Dropdown(options=list(KEY_STEPS), value=key_steps, description="key steps"),
        "schedule": w.Dropdown(options=["linspace", "balanced"], value=schedule or DEFAULT_SCHEDULE,
                               description="schedule"),
        "steps": w.IntSlider(value=int(steps or DEFAULT_STEPS), min=1, max=20, description="N"),
    }
    for c in controls.values():
        if "continuous_update" in c.traits():
            c.continuous_update = False
    return controls
