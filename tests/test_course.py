"""adasr.course: the catalogue is consistent (graph, reading list, glossary symbols) and the time helpers count,
merge and load what they claim. Reads only notebook JSON (no kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adasr import course as C

REPO = Path(__file__).resolve().parent.parent


def test_numbers_unique_and_every_notebook_file_is_in_the_course():
    numbers = [nb.number for nb in C.COURSE]
    assert len(numbers) == len(set(numbers))
    on_disk = {p.name[:2] for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert on_disk <= set(numbers), f"notebooks missing from adasr.course.COURSE: {sorted(on_disk - set(numbers))}"
    for nb in C.COURSE:
        if nb.status == "planned":
            assert nb.path() is None, f"{nb.number} exists: mark it ready"


def test_every_chapter_has_objectives_and_known_references():
    for nb in C.COURSE:
        assert nb.objectives and all(o.strip() for o in nb.objectives), nb.number
        unknown = set(nb.reading) - set(C.READING)
        assert not unknown, (nb.number, unknown)


def test_graph_is_a_dag_and_depths_follow_edges():
    d = C.depths()
    for a, b, _ in C.edges():
        assert d[b] > d[a], (a, b)
    assert d["01"] == 0 and d["02"] == 1


def test_depths_reject_cycles_and_unknown_prerequisites():
    a = C.Notebook("01", "a", "ready", ("x",), requires=("02",))
    b = C.Notebook("02", "b", "ready", ("x",), requires=("01",))
    with pytest.raises(ValueError, match="cycle"):
        C.depths((a, b))
    with pytest.raises(ValueError, match="unknown"):
        C.depths((C.Notebook("03", "c", "ready", ("x",), requires=("99",)),))


def test_reduced_edges_drop_only_implied_edges():
    a = C.Notebook("01", "a", "ready", ("x",))
    b = C.Notebook("02", "b", "ready", ("x",), requires=("01",))
    c = C.Notebook("03", "c", "ready", ("x",), requires=("01", "02"))
    d = C.Notebook("04", "d", "ready", ("x",), requires=("03", "01"), recommends=("02",))
    e = C.Notebook("05", "e", "ready", ("x",), requires=("02",))
    f = C.Notebook("06", "f", "ready", ("x",), requires=("05", "01"))
    course = (a, b, c, d, e, f)
    kept = C.reduced_edges(course)
    # 01→03 is implied by 01→02→03, 01→04 and the recommended 02→04 by the path through 03
    assert ("01", "03", "required") not in kept and ("01", "04", "required") not in kept
    assert ("02", "04", "recommended") not in kept
    assert ("01", "06", "required") not in kept
    assert {("01", "02"), ("02", "03"), ("03", "04"), ("02", "05"), ("05", "06")} == {(x, y) for x, y, _ in kept}
    # a required edge implied only through a recommended one is kept
    g = C.Notebook("07", "g", "ready", ("x",), recommends=("01",))
    h = C.Notebook("08", "h", "ready", ("x",), requires=("01", "07"))
    assert ("01", "08", "required") in C.reduced_edges((a, g, h))


def test_glossary_symbols_exist():
    for term in C.GLOSSARY:
        assert term.where, term.symbol
        assert term.chapter in C.BY_NUMBER, term.symbol
        for dotted in term.where:
            C.resolve(dotted)  # raises when the symbol does not exist


def test_resolve_raises_for_missing_symbols():
    with pytest.raises(AttributeError):
        C.resolve("adasr.cost.no_such_thing")
    with pytest.raises(ImportError):
        C.resolve("no_such_package.x")


def _write_nb(path: Path, cells: list[tuple[str, str]]) -> Path:
    nb = {"cells": [{"cell_type": t, "metadata": {}, "source": s, **({"outputs": [], "execution_count": None}
                                                                     if t == "code" else {})} for t, s in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_words_and_exercises_are_counted(tmp_path):
    p = _write_nb(tmp_path / "05_x.ipynb", [
        ("markdown", "# Title\n\nfive words in this cell"),
        ("code", "print('not counted words here')"),
        ("markdown", "## Exercises\n\nIntro line.\n\n1. **One.** text\n   2. indented, not an item\n2. Two\n3. Three"),
    ])
    assert C.markdown_words(p) == 2 + 5 + 16  # "## Exercises" and "1." count as words
    assert C.count_exercises(p) == 3
    q = _write_nb(tmp_path / "06_y.ipynb", [("markdown", "no exercises\n1. a list")])
    assert C.count_exercises(q) == 0
    assert C.reading_minutes(250, 100) == 2.5
    with pytest.raises(ValueError):
        C.reading_minutes(1, 0)


def test_record_time_merges_and_load_times_reads(tmp_path):
    f = tmp_path / "times.json"
    assert C.load_times(f) == {}
    nb1, nb2 = REPO / "notebooks" / "01_a.ipynb", REPO / "notebooks" / "solutions" / "02_b_solutions.ipynb"
    C.record_time(f, nb1, 15.04, {"cpu": "x"}, regenerate="cmd")
    C.record_time(f, nb2, 3.0, {"cpu": "y"})
    C.record_time(f, nb1, 16.0, {"cpu": "z"})  # replaces 01's entry, keeps 02's
    runs = C.load_times(f)
    assert runs == {"notebooks/01_a.ipynb": {"seconds": 16.0, "cpu": "z"},
                    "notebooks/solutions/02_b_solutions.ipynb": {"seconds": 3.0, "cpu": "y"}}
    assert json.loads(f.read_text())["regenerate"] == "cmd"
    with pytest.raises(ValueError):
        C.record_time(f, nb1, -1.0, {})


def test_run_conditions_names_the_machine(monkeypatch):
    monkeypatch.setenv("ADASR_PRECISION", "bf16")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    c = C.run_conditions()
    assert c["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and c["env"]["ADASR_PRECISION"] == "bf16"
    assert c["precision"] == "bf16" and c["threads"] >= 1 and c["torch"] and c["date"].endswith("+00:00")


def test_time_table_uses_measured_runs_only(tmp_path):
    (tmp_path / "solutions").mkdir()
    _write_nb(tmp_path / "01_a.ipynb", [("markdown", " ".join(["w"] * 300)),
                                        ("markdown", "## Exercises\n1. a\n2. b")])
    _write_nb(tmp_path / "solutions" / "01_a_solutions.ipynb", [("markdown", "x")])
    course = (C.Notebook("01", "A", "ready", ("x",)), C.Notebook("02", "B", "planned", ("x",)))
    key = C.times_key(tmp_path / "01_a.ipynb")
    rows = C.time_table(course, times={key: {"seconds": 12.5}}, words_per_minute=100, exercise_minutes=10,
                        folder=tmp_path)
    assert rows[0].words == 306 and rows[0].reading_min == pytest.approx(3.06) and rows[0].exercises == 2
    assert rows[0].exercise_min == 20 and rows[0].run_s == 12.5 and rows[0].solutions_run_s is None
    assert rows[1].run_s is None and rows[1].words is None
