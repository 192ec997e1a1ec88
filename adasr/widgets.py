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
