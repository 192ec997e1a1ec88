"""pytest hooks for the notebook run (``pytest --nbval[-lax] notebooks/``).

nbval compares stderr streams like any other output. A fresh environment can print one-off messages there
(for instance Matplotlib's "building the font cache"), and torch warnings vary between versions, so stderr is
added to nbval's ``skip_compare`` (the hook recommended in nbval's documentation). Errors still fail the cell:
an exception is an ``error`` output, not a stderr stream.
"""

from __future__ import annotations


def pytest_collectstart(collector) -> None:
    """Extend the skip list of every notebook collector (nbval's ``IPyNbFile``)."""
    skip = getattr(collector, "skip_compare", None)
    if skip is not None and "stderr" not in skip:
        collector.skip_compare = tuple(skip) + ("stderr",)
