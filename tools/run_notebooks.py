"""Execute course notebooks in place, top to bottom, then scrub them for committing.

Usage::

    python tools/run_notebooks.py                                # every notebooks/NN_*.ipynb
    python tools/run_notebooks.py notebooks/01_ddpm_basics.ipynb  # just these
    python tools/run_notebooks.py --timeout 600 notebooks/03_*.ipynb
    python tools/run_notebooks.py --solutions                    # also every notebooks/solutions/*.ipynb
    python tools/run_notebooks.py --times benchmarks/results/notebook_times.json notebooks/01_ddpm_basics.ipynb

``--times FILE`` records, for every notebook that ran without error, its wall seconds and the conditions of the run
(CPU model, CPUs, the thread count ``setup()`` will use, ATen's CPU capability, ``ATEN_CPU_CAPABILITY`` /
``ONEDNN_MAX_CPU_ISA`` / ``ADASR_PRECISION`` / ``ADASR_THREADS`` / ``OMP_NUM_THREADS``, the precision, torch and
Python versions, the UTC date and the load average) into the JSON file FILE, merged with the entries already there
(:func:`adasr.course.record_time`), so notebooks can be timed one at a time. The course map (notebook 00) reads
``benchmarks/results/notebook_times.json``. Produce it on a quiet machine, emulating an AVX2-only CPU in fp32::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python tools/run_notebooks.py --solutions \
        --times benchmarks/results/notebook_times.json

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

The notebook is written back only when every cell ran without error (and never with ``--no-write``); a failure
leaves the file untouched and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
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
#: the command recorded in a times file (how the course's committed times are meant to be produced)
TIMES_COMMAND = ("ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python tools/run_notebooks.py --solutions "
                 "--times benchmarks/results/notebook_times.json")


def course_notebooks() -> list[Path]:
    """``notebooks/NN_*.ipynb`` in order (checkpoints excluded)."""
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def solution_notebooks() -> list[Path]:
    """``notebooks/solutions/*.ipynb`` in order (checkpoints excluded)."""
    return sorted(p for p in (NOTEBOOKS / "solutions").glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


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


def run_notebook(path: Path, timeout: int = 300, write: bool = True) -> float:
    """Execute ``path`` in place (cwd = its folder) and scrub it; returns the wall time in seconds. With
    ``write=False`` the executed notebook is not written back (a timing or a check that leaves the file alone)."""
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
    if write:
        nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell (default 300)")
    parser.add_argument("--solutions", action="store_true",
                        help="also run every notebooks/solutions/*.ipynb (after the notebooks given or found)")
    parser.add_argument("--times", type=Path, default=None, metavar="FILE",
                        help="merge each successful run's wall seconds and conditions into the JSON file FILE")
    parser.add_argument("--no-write", action="store_true",
                        help="execute (and time) without writing the outputs back into the notebooks")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or course_notebooks()
    if args.solutions:
        paths += [p for p in solution_notebooks() if p not in paths]
    if args.times is not None:
        sys.path.insert(0, str(REPO))  # run from a checkout without installing: adasr is importable from REPO
        from adasr.course import record_time, run_conditions

        caps = " ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                         "ADASR_PRECISION") if os.environ.get(k))
        invocation = " ".join(filter(None, [caps, "python tools/run_notebooks.py",
                                            shlex.join(sys.argv[1:] if argv is None else argv)]))
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
        conditions = None
        if args.times is not None:  # taken before the run (its load average describes the machine, not the run)
            conditions = {**run_conditions(), "invocation": invocation}
        try:
            elapsed = run_notebook(path, timeout=args.timeout, write=not args.no_write)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            failed += 1
            print("FAILED")
            print(str(exc), file=sys.stderr)
            continue
        print(f"ok ({elapsed:.1f} s)")
        if args.times is not None:
            record_time(args.times, path, elapsed, conditions, regenerate=TIMES_COMMAND)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
