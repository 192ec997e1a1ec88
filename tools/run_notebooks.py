"""Execute course notebooks in place, top to bottom, then scrub them for committing.

Usage::

    python tools/run_notebooks.py                                # every notebooks/NN_*.ipynb
    python tools/run_notebooks.py notebooks/01_ddpm_basics.ipynb  # just these
    python tools/run_notebooks.py --timeout 600 notebooks/03_*.ipynb

Each notebook runs in a fresh ``python3`` kernel (this interpreter's ipykernel) with ``notebooks/`` as the working
directory — the same cwd nbval uses — so a clean run here is a "Restart & Run All" proof. No per-cell timing is
recorded (``record_timing=False``) and no widget state is written to the file. (The client itself runs with
``store_widget_state=True``: with ``False``, nbclient 0.11 raises ``KeyError`` in ``output_widget.py`` as soon as an
``ipywidgets.Output`` receives output, because it syncs into a ``widget_state`` dict that is only filled when
storing is on. The state it collects is removed by :func:`scrub` before writing.)

Scrubbing (the ``nbstripout --keep-output --keep-count`` policy, done here so there is one command):

* drop ``metadata.widgets`` and every cell's ``metadata.execution``;
* drop ``application/vnd.jupyter.widget-view+json`` outputs (they point at widget models that are not saved,
  and their random model ids would churn diffs); the ``text/plain`` fallback stays;
* normalise ``metadata.kernelspec`` to ``{"name": "python3", "display_name": "Python 3", "language": "python"}``;
* keep outputs and the sequential execution counts 1..n.

The notebook is written back only when every cell ran without error; a failure leaves the file untouched and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def course_notebooks() -> list[Path]:
    """``notebooks/NN_*.ipynb`` in order (checkpoints excluded)."""
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def scrub(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove widget state, execution timing and widget views; normalise the kernelspec. Mutates and returns ``nb``."""
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data")
            if data is not None and WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                if not data:
                    continue
            kept.append(out)
        cell.outputs = kept
    return nb


def run_notebook(path: Path, timeout: int = 300) -> float:
    """Execute ``path`` in place (cwd = its folder) and scrub it; returns the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,  # False crashes on Output widgets (see module docstring); scrub() drops it
        record_timing=False,
    )
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    nbformat.validate(scrub(nb))
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or course_notebooks()
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    failed = 0
    for path in paths:
        try:
            rel = path.relative_to(REPO)
        except ValueError:
            rel = path
        print(f"{rel} ...", end=" ", flush=True)
        try:
            elapsed = run_notebook(path, timeout=args.timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            failed += 1
            print("FAILED")
            print(str(exc), file=sys.stderr)
            continue
        print(f"ok ({elapsed:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
