"""Data checks for adasr.viz.course: which boxes, labels and arrows the course graph draws (no model is run)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from adasr import course as C
from adasr.viz import course as V


def teardown_function(_):
    plt.close("all")


def _gids(fig, prefix):
    ax = fig.axes[0]
    artists = list(ax.patches) + list(ax.texts) + list(ax.lines) + list(ax.get_children())
    return {a.get_gid() for a in artists if isinstance(a.get_gid(), str) and a.get_gid().startswith(prefix)}


def test_positions_follow_depth_and_rows():
    depths = {"01": 0, "02": 1, "03": 1, "04": 2}
    pos = V.node_positions(["01", "02", "03", "04"], depths, rows={"04": -1})
    assert pos["01"] == (0.0, 0.0)
    assert pos["02"][0] == pos["03"][0] == V.COL_STEP and pos["02"][1] > pos["03"][1]  # first number on top
    assert pos["04"] == (2 * V.COL_STEP, -V.ROW_STEP)


def test_course_graph_draws_every_node_edge_and_note():
    nodes = [(n.number, n.title, n.status) for n in C.COURSE if n.number != "00"]
    edges = C.reduced_edges()
    fig = V.course_graph(nodes, edges, C.depths(), rows=C.GRAPH_ROWS, notes={"01": "run 15 s"})
    assert _gids(fig, "node:") == {f"node:{n}" for n, _, _ in nodes}
    assert _gids(fig, "edge:") == {f"edge:{a}->{b}" for a, b, _ in edges}
    labels = {t.get_gid(): t.get_text() for t in fig.axes[0].texts}
    assert labels["label:05"].startswith("05\n") and "allocation" in labels["label:05"]
    assert labels["note:01"] == "run 15 s"
    planned = [p for p in fig.axes[0].patches if p.get_gid() == "node:11"][0]
    assert planned.get_linestyle() == "--"


def test_course_graph_rejects_edges_to_missing_nodes():
    with pytest.raises(ValueError, match="not drawn"):
        V.course_graph([("01", "a", "ready")], [("01", "02", "required")], {"01": 0})
    with pytest.raises(ValueError, match="kind"):
        V.course_graph([("01", "a", "ready"), ("02", "b", "ready")], [("01", "02", "maybe")], {"01": 0, "02": 1})
