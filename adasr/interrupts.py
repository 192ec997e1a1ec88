"""Ctrl-C, SIGTERM and SIGHUP end ``adasr`` the same way: one ``adasr: error:`` line, exit 128 + signal number.

Python turns SIGINT into :class:`KeyboardInterrupt` wherever the program is, so every cleanup already written for
Ctrl-C runs (a progress bar is closed, :func:`adasr.imageio.atomic_write` removes its hidden ``*.part`` file, a
checkpoint being written is not left half-done). SIGTERM (``kill``, a job scheduler, ``timeout``) and SIGHUP (the
terminal closed) would kill the process on the spot instead. :func:`signals_interrupt` makes them raise
:class:`Terminated`, a :class:`KeyboardInterrupt`, so they take exactly the same path.

Exit statuses follow the shell's convention, 128 + the signal number: 130 for SIGINT, 143 for SIGTERM, 129 for
SIGHUP. :func:`exit_status` and :func:`describe` are the one place that maps an interrupt to them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

#: The signals :func:`signals_interrupt` turns into :class:`Terminated` (SIGHUP does not exist on Windows).
TERMINATING: tuple[signal.Signals, ...] = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the signal landed (a :class:`KeyboardInterrupt`, so Ctrl-C's clean-up runs).

    ``signum``: the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal number: 130 for Ctrl-C (a plain KeyboardInterrupt), 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT))


def describe(exc: KeyboardInterrupt) -> str:
    """``interrupted`` (Ctrl-C), ``terminated (SIGTERM)`` or ``hung up (SIGHUP)``: the start of the error line."""
    if not isinstance(exc, Terminated):
        return "interrupted"
    name = signal.Signals(exc.signum).name
    return f"hung up ({name})" if name == "SIGHUP" else f"terminated ({name})"


def ignore_further() -> None:
    """Ignore SIGINT, SIGTERM and SIGHUP from now on (inside :func:`signals_interrupt`, which restores them): once
    the first signal is being reported, a second one must not interrupt the report with a traceback."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, *TERMINATING):
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated`; on exit the previous handlers of SIGINT,
    SIGTERM and SIGHUP are restored (so a library caller or a test runner gets its own back).

    Signals a parent set to *ignored* (``nohup`` ignores SIGHUP) stay ignored. Outside the main thread, where
    Python cannot install handlers, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *TERMINATING)}
    for sig in TERMINATING:
        if previous[sig] is not signal.SIG_IGN:
            signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


__all__ = ["Terminated", "TERMINATING", "exit_status", "describe", "ignore_further", "signals_interrupt"]
