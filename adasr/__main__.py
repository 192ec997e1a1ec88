"""``python -m adasr`` and the ``adasr`` console script.

:func:`main` installs the signal handlers (:mod:`adasr.interrupts`) *before* it imports the command-line
interface, whose imports (numpy, the configs) take about 0.1 s: a Ctrl-C, SIGTERM or SIGHUP during start-up then
ends with the same single ``adasr: error:`` line as one during sampling, never an import traceback.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .interrupts import describe, exit_status, ignore_further, signals_interrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``adasr`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status (see :mod:`adasr.cli`)."""
    with signals_interrupt():
        try:
            from .cli import main as cli_main
        except KeyboardInterrupt as exc:  # Ctrl-C / SIGTERM / SIGHUP while the CLI was still being imported
            ignore_further()
            print(f"\radasr: error: {describe(exc)} while starting (nothing was written)", file=sys.stderr)
            return exit_status(exc)
        return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
