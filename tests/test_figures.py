"""Every file in figures/ is produced by something `make figures` runs, and everything it names exists.

Producers: a ``savefig(fig, "NN_name")`` call in a notebook or a solutions notebook (re-executed by
``tools/run_notebooks.py``), or a ``figures/….png`` path in the recipe of the Makefile's ``figures`` target (the
benchmark figures redrawn from the committed results, the demo's ``--compare`` figure, which ``make demo`` writes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "figures"
SAVEFIG = re.compile(r"savefig\(\s*\w+\s*,\s*[\"']([^\"'/]+?)(?:\.png)?[\"']")
FIG_PATH = re.compile(r"figures/([A-Za-z0-9_\-]+)\.png")


def _recipe(target: str) -> str:
    """The recipe lines of ``target`` in the Makefile (tab-indented lines after ``target:``)."""
    lines, out, inside = (REPO / "Makefile").read_text().splitlines(), [], False
    for line in lines:
        if re.match(rf"^{re.escape(target)}\s*:", line):
            inside = True
            continue
        if inside:
            if line.startswith("\t"):
                out.append(line)
            elif line.strip() and not line.startswith("#"):
                break
    return "\n".join(out)


def _notebook_figures() -> dict[str, str]:
    found = {}
    for nb_path in sorted((REPO / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb_path.parts:
            continue
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                for name in SAVEFIG.findall("".join(cell["source"])):
                    found[name] = str(nb_path.relative_to(REPO))
    return found


def _makefile_figures() -> dict[str, str]:
    recipe = _recipe("figures") + "\n" + (_recipe("demo") if "$(MAKE) demo" in _recipe("figures") else "")
    return {name: "Makefile" for name in FIG_PATH.findall(recipe)}


def test_figures_target_runs_every_notebook():
    recipe = _recipe("figures")
    assert "tools/run_notebooks.py" in recipe and "notebooks/solutions/" in recipe, recipe


def test_every_figure_has_a_producer():
    producers = {**_notebook_figures(), **_makefile_figures()}
    orphans = sorted(p.name for p in FIGURES.glob("*.png") if p.stem not in producers)
    assert not orphans, f"figures produced by no notebook and not by `make figures`: {orphans}"


def test_every_named_figure_exists():
    producers = {**_notebook_figures(), **_makefile_figures()}
    missing = sorted(f"{name} ({src})" for name, src in producers.items() if not (FIGURES / f"{name}.png").is_file())
    assert not missing, f"named but not in figures/ (run `make figures`): {missing}"


def test_figures_are_at_least_200_dpi():
    from PIL import Image

    low = []
    for p in sorted(FIGURES.glob("*.png")):
        if p.stem.startswith("demo_"):
            continue  # the demo comparison is saved at the image's own pixel size
        dpi = Image.open(p).info.get("dpi")
        if dpi is None or round(dpi[0]) < 200:
            low.append(f"{p.name}: {dpi}")
    assert not low, f"figures below 200 dpi (savefig's default is 200): {low}"
