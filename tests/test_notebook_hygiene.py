"""Static checks on the committed notebooks (no kernel is started; this runs in well under a second).

A notebook passes when it looks like the output of ``python tools/run_notebooks.py``: run top to bottom in a
fresh ``python3`` kernel, scrubbed of widget state, small, installing nothing, starting with
``from adasr.notebook import setup; setup(...)``, marking widget cells ``# NBVAL_IGNORE_OUTPUT`` (as a comment,
not a tag) and saving at least one committed figure ``figures/NN_*.png``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIGURES = REPO / "figures"

MAX_CELL_OUTPUT_BYTES = 300_000
MAX_NOTEBOOK_BYTES = 2_000_000

NBVAL_MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION"}
NBVAL_TAGS = {"nbval-ignore-output", "nbval-check-output", "nbval-skip", "nbval-raises-exception",
              "raises-exception"}
PIP = re.compile(r"^\s*[%!]\s*pip\b|\bpip3?\s+install\b", re.MULTILINE)
WIDGET = re.compile(r"@interact|\b(interact|interact_manual|interactive|interactive_output|explore)\s*\(|\bwidgets\.")
SETUP_IMPORT = re.compile(r"from\s+adasr\.notebook\s+import\s+[^\n]*\bsetup\b|import\s+adasr\.notebook\b")
SAVEFIG_NAME = re.compile(r"savefig\([^)]*?[\"']([^\"'/]+)[\"']")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _first_line(cell: nbformat.NotebookNode) -> str:
    lines = cell.source.strip().splitlines()
    return lines[0].strip() if lines else ""


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def nb_path(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_valid_and_small(nb_path: Path) -> None:
    nb = _read(nb_path)
    nbformat.validate(nb)
    size = nb_path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, f"{nb_path.name} is {size} bytes (limit {MAX_NOTEBOOK_BYTES})"
    for i, cell in enumerate(_code_cells(nb)):
        n = len(json.dumps(cell.outputs).encode())
        assert n < MAX_CELL_OUTPUT_BYTES, f"code cell {i} outputs are {n} bytes (limit {MAX_CELL_OUTPUT_BYTES})"


def test_kernelspec_and_no_widget_state(nb_path: Path) -> None:
    nb = _read(nb_path)
    name = nb.metadata.get("kernelspec", {}).get("name")
    assert name == "python3", f"kernelspec {name!r}: run tools/run_notebooks.py (it normalises it to python3)"
    assert "widgets" not in nb.metadata, "widget state is stored: run tools/run_notebooks.py to scrub it"
    for i, cell in enumerate(nb.cells):
        assert "execution" not in cell.metadata, f"cell {i} carries execution timing metadata"


def test_executed_in_order(nb_path: Path) -> None:
    """Every code cell ran, once, in a fresh kernel, top to bottom: execution counts are exactly 1..n."""
    cells = _code_cells(_read(nb_path))
    for i, cell in enumerate(cells):
        assert cell.source.strip(), f"code cell {i} is empty; delete it"
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"execution counts {counts}: run tools/run_notebooks.py"
    for i, cell in enumerate(cells):
        if any(o.output_type == "error" for o in cell.outputs):
            assert "NBVAL_RAISES_EXCEPTION" in cell.source, f"code cell {i} stored an error"


def test_no_installs(nb_path: Path) -> None:
    for i, cell in enumerate(_code_cells(_read(nb_path))):
        assert not PIP.search(cell.source), f"code cell {i} installs packages; use the project's environment"


def test_first_cell_is_setup(nb_path: Path) -> None:
    first = _code_cells(_read(nb_path))[0].source
    assert SETUP_IMPORT.search(first) and "setup(" in first, (
        "the first code cell must be `from adasr.notebook import setup; setup(seed=0)`")


def test_markers_are_comments_and_widgets_ignored(nb_path: Path) -> None:
    for i, cell in enumerate(_code_cells(_read(nb_path))):
        tags = set(cell.metadata.get("tags", []))
        assert not tags & NBVAL_TAGS, f"code cell {i}: use a `# NBVAL_...` comment, not the tag(s) {tags & NBVAL_TAGS}"
        for line in cell.source.splitlines():
            m = re.match(r"\s*#\s*(NBVAL\w*)", line)
            assert not m or m.group(1) in NBVAL_MARKERS, f"code cell {i}: unknown marker {m.group(1)!r}"
        if WIDGET.search(cell.source):
            assert _first_line(cell) == "# NBVAL_IGNORE_OUTPUT", (
                f"code cell {i} builds a widget and must start with `# NBVAL_IGNORE_OUTPUT`")


def test_saves_committed_figures(nb_path: Path) -> None:
    """At least one ``savefig(fig, "NN_name")``; every such name has the notebook's number and the PNG exists."""
    number = nb_path.name[:2]
    names = [n for c in _code_cells(_read(nb_path)) for n in SAVEFIG_NAME.findall(c.source)]
    assert names, f"{nb_path.name} saves no figure (call adasr.viz.common.savefig(fig, '{number}_name'))"
    for name in names:
        stem = name[:-4] if name.endswith(".png") else name
        assert re.fullmatch(rf"{number}_[A-Za-z0-9_\-]+", stem), f"figure name {name!r} must start with '{number}_'"
        assert (FIGURES / f"{stem}.png").is_file(), f"figures/{stem}.png is missing: run the notebook"
