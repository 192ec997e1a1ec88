"""adasr.benchmarks.schedules (plan, dedupe of identical runs, seed spread, comparisons, timing, table, CLI wiring)
and adasr.viz.schedules, run once on a tiny model: two 32² crops and a 64² "full" image, N ≤ 2, two seeds, hand-made
presets (so nothing here needs the shipped schedules.json)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from adasr import benchmarks, data, upscaling  # noqa: E402
from adasr.benchmarks import schedules as S  # noqa: E402
from adasr.benchmarks.runner import BENCHMARKS, save_schedules_figure  # noqa: E402
from adasr.diffusion.timesteps import PresetSchedule  # noqa: E402
from adasr.lpips import lpips_distance  # noqa: E402
from adasr.metrics import psnr_y, ssim_y  # noqa: E402
from adasr.viz.schedules import family_curves, schedule_comparison_figure  # noqa: E402

#: "balanced" coincides with linspace at N = 1 and 2 (same lists, η 0); "perceptual" has linspace's list at N = 2
#: but η 1, so it is a different run
BALANCED = PresetSchedule("balanced", {
    1: {"family": "linspace", "params": {}, "eta": 0.0, "timesteps": [999]},
    2: {"family": "power", "params": {"t_end": 0, "rho": 1.0}, "eta": 0.0, "timesteps": [999, 0]}})
PERCEPTUAL = PresetSchedule("perceptual", {
    1: {"family": "linspace", "params": {}, "eta": 0.0, "timesteps": [999]},
    2: {"family": "linspace", "params": {}, "eta": 1.0, "timesteps": [999, 0]}})
TINY = dict(schedules=("linspace", "trailing", BALANCED, PERCEPTUAL), max_steps=2, seeds=(0, 1), spread_max_steps=1,
            reference_steps=3, repeats=1, old_default=("linspace", 2), new_default=(BALANCED, 1),
            precision="fp32", command="test")


def teardown_function(_):
    plt.close("all")


@pytest.fixture(scope="module")
def tiny(make_tiny_model):
    """Two 32² held-out crops, a 64² astronaut crop as the full image and the tiny model."""
    crops = {n: c for n, c in list(data.heldout_crops(32).items())[:2]}
    full = data.center_crop(data.load_skimage("astronaut"), 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(S, "heldout_crops", lambda crop: crops)
        mp.setattr(S, "load_skimage", lambda name: full)
        mp.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
        yield crops, full, make_tiny_model
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def result(tiny):
    lines: list[str] = []
    r = S.compare_schedules(**TINY, log=lines.append)
    r["_log"] = lines
    return r


def _points(r):
    return {p["label"]: p for p in r["points"]}


# ------------------------------------------------------------------------------------------------- plan, no model
def test_plan_points_roles_seeds_and_keys():
    pts = S.plan_points(["linspace", "trailing"], max_steps=3, seeds=[5, 6, 7], spread_max_steps=2,
                        reference=("linspace", 20), old_default=("linspace", 10), new_default=("trailing", 3))
    by = {p["label"]: p for p in pts}
    assert list(by) == ["linspace N=1", "trailing N=1", "linspace N=2", "trailing N=2", "linspace N=3",
                        "trailing N=3", "linspace N=20", "linspace N=10"]
    assert by["trailing N=3"]["roles"] == ["grid", "new default"] and by["linspace N=20"]["roles"] == ["reference"]
    assert by["linspace N=3"]["seeds"] == [5]  # N > spread_max_steps, no reference role: the first seed only
    assert all(by[k]["seeds"] == [5, 6, 7] for k in ("linspace N=2", "trailing N=3", "linspace N=10",
                                                     "linspace N=20"))
    assert by["linspace N=1"]["run_key"] == by["trailing N=1"]["run_key"] == "999|eta=0.0"
    assert by["linspace N=10"]["timesteps"] == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert {p["eta"] for p in pts} == {0.0}


@pytest.mark.parametrize("bad, match", [
    (dict(max_steps=0), "max_steps"), (dict(seeds=[]), "seeds"), (dict(seeds=[0, 0]), "distinct"),
    (dict(seeds=[-1]), "seeds"), (dict(repeats=0), "repeats"), (dict(spread_max_steps=-1), "spread_max_steps"),
    (dict(schedules=["linspace", "linspace"]), "distinct"), (dict(schedules=[]), "at least one")])
def test_check_options_refuses_bad_options(bad, match):
    opts = dict(schedules=["linspace"], max_steps=2, seeds=[0], spread_max_steps=1, reference_steps=20, repeats=1)
    with pytest.raises(ValueError, match=match):
        S.check_options(**{**opts, **bad})


def test_cli_refuses_bad_options_before_loading_anything(monkeypatch):
    monkeypatch.setattr(S, "compare_schedules", lambda **kw: pytest.fail("ran despite bad options"))
    p = benchmarks.build_parser()
    for argv in (["schedules", "--max-steps", "0"], ["schedules", "--seeds", "-1"], ["schedules", "--repeats", "0"]):
        with pytest.raises(SystemExit):
            p.parse_args(argv)
    with pytest.raises(SystemExit, match="schedule must be one of"):
        benchmarks.main(["schedules", "--schedules", "nope"])
    with pytest.raises(SystemExit, match="distinct"):
        benchmarks.main(["schedules", "--seeds", "1", "1"])
    with pytest.raises(SystemExit, match=r"\.png"):
        benchmarks.main(["schedules", "--figure", "fig.pdf"])


# ---------------------------------------------------------------------------------------------- one tiny run
def test_points_seeds_and_roles(result):
    by = _points(result)
    grid = [f"{s} N={n}" for n in (1, 2) for s in ("linspace", "trailing", "balanced", "perceptual")]
    assert list(by) == grid + ["linspace N=3"]
    assert by["linspace N=3"]["roles"] == ["reference"] and by["linspace N=2"]["roles"] == ["grid", "old default"]
    assert by["balanced N=1"]["roles"] == ["grid", "new default"]
    seeds = {k: p["seeds"] for k, p in by.items()}
    assert seeds == {**{k: [0, 1] for k in grid[:4]}, "linspace N=2": [0, 1], "trailing N=2": [0], "balanced N=2": [0],
                     "perceptual N=2": [0], "linspace N=3": [0, 1]}
    assert [r["seed"] for r in by["linspace N=1"]["per_seed"]] == [0, 1]
    assert by["perceptual N=2"]["eta"] == 1.0 and by["balanced N=2"]["timesteps"] == [999, 0]
    assert result["seeds"] == {**result["seeds"], "all_points": [0], "extra": [1]}
    assert result["defaults"] == {"old": "linspace N=2", "new": "balanced N=1", "reference": "linspace N=3"}
    assert result["config"]["schedules"] == ["linspace", "trailing", "balanced", "perceptual"]


def test_identical_runs_are_computed_once(result):
    by = _points(result)
    groups = {tuple(g["points"]) for g in result["dedupe"]}
    assert groups == {("linspace N=1", "trailing N=1", "balanced N=1", "perceptual N=1"),
                      ("linspace N=2", "balanced N=2")}  # perceptual N=2: same list, η 1 → its own run
    assert by["balanced N=2"]["computed_by"] == "linspace N=2"
    assert by["perceptual N=2"]["computed_by"] == "perceptual N=2"
    reused = by["balanced N=2"]["per_seed"][0]
    assert reused["reused_from"] == "linspace N=2" and "reused_from" not in by["linspace N=2"]["per_seed"][0]
    assert reused["crops"] == by["linspace N=2"]["per_seed"][0]["crops"]
    assert by["perceptual N=2"]["per_seed"][0]["crops"] != reused["crops"]
    # seed 0: [999], [999,0] η0, [999,0] η1, [999,499], linspace-3; seed 1: [999], [999,0] η0, linspace-3
    assert result["runs"] == {"point_seed_runs": 15, "computed": 8, "reused": 7,
                              "tile_evaluations": (1 + 2 + 2 + 2 + 3 + 1 + 2 + 3) * 3}  # 3 tiles per step
    assert len(result["_log"]) == 1 + 15 + 2 + 2  # plan, one per (point, seed), warm-ups, timed runs
    assert sum(line.endswith("(same timesteps and η, reused)") for line in result["_log"]) == 7


def test_metrics_equal_an_independent_recomputation(tiny, result):
    crops, full, make = tiny
    p = _points(result)["trailing N=2"]["per_seed"][0]
    model = make()
    for set_name, hrs in (("crops", crops), ("full", {"astronaut": full})):
        for name, hr in hrs.items():
            sr, rep, _ = upscaling.upscale_tensor(data.downscale(data.to_tensor(hr), 4), steps=2, schedule="trailing",
                                                  seed=0, model=model, precision="fp32")
            sr = data.to_uint8(sr)
            assert rep.schedule["timesteps"] == [999, 499] and rep.eta == 0.0
            assert p[set_name]["images"][name] == {"psnr_y": psnr_y(sr, hr, shave=4), "ssim_y": ssim_y(sr, hr, shave=4),
                                                   "lpips": lpips_distance(sr, hr)}
        m = p[set_name]["mean"]
        assert m["psnr_y"] == pytest.approx(np.mean([v["psnr_y"] for v in p[set_name]["images"].values()]))


def test_summary_spread_only_where_several_seeds_ran(result):
    by = _points(result)
    s = by["linspace N=3"]["summary"]["crops"]["lpips"]
    v = [r["crops"]["mean"]["lpips"] for r in by["linspace N=3"]["per_seed"]]
    assert s == pytest.approx({"mean": np.mean(v), "min": min(v), "max": max(v), "std": np.std(v, ddof=1)})
    assert set(by["trailing N=2"]["summary"]["full"]["psnr_y"]) == {"mean"}
    per_image = by["linspace N=3"]["image_means"]["crops"]
    assert list(per_image) == list(by["linspace N=3"]["per_seed"][0]["crops"]["images"])
    name = next(iter(per_image))
    assert per_image[name]["lpips"] == pytest.approx(
        np.mean([r["crops"]["images"][name]["lpips"] for r in by["linspace N=3"]["per_seed"]]))


def test_comparisons_use_the_common_seeds(result):
    by = _points(result)
    c = S.compare(by["trailing N=2"], by["linspace N=3"])  # trailing N=2 ran seed 0 only
    assert c["seeds"] == [0] and c["basis"] == "seed 0"
    ref0 = by["linspace N=3"]["per_seed"][0]["full"]["mean"]["lpips"]
    assert c["full"]["lpips_other"] == ref0
    c2 = S.compare(by["linspace N=1"], by["linspace N=3"])
    assert c2["seeds"] == [0, 1] and c2["basis"] == "mean over seeds 0, 1"
    assert c2["crops"]["psnr_y"] == pytest.approx(by["linspace N=1"]["summary"]["crops"]["psnr_y"]["mean"])
    for k in ("crops", "full"):
        assert c2[k]["beats"] == (c2[k]["psnr_y_delta"] > 0 and c2[k]["lpips_delta"] < 0)
    assert c2["beats"] == (c2["crops"]["beats"] and c2["full"]["beats"])


def test_targets_and_timing(result):
    t = result["targets"]
    a = t["preset_beats_reference"]
    assert [c["point"] for c in a["comparisons"]] == ["balanced N=1", "perceptual N=1", "balanced N=2",
                                                      "perceptual N=2"]
    assert a["met"] == any(c["beats"] for c in a["comparisons"]) and a["reference"] == "linspace N=3"
    tm = result["timing"]
    assert len(tm["old"]["seconds"]) == len(tm["new"]["seconds"]) == 1 and tm["input"] == [16, 16]
    assert tm["output"] == [64, 64] and (tm["old"]["steps"], tm["new"]["steps"]) == (2, 1)
    assert (tm["old"]["tile_evaluations"], tm["new"]["tile_evaluations"]) == (2, 1)
    assert tm["ratio"] == pytest.approx(tm["old"]["median_seconds"] / tm["new"]["median_seconds"])
    assert t["speedup"]["met"] == (tm["ratio"] >= S.TARGET_SPEEDUP) and t["speedup"]["target"] == 2.5
    nv = t["new_vs_old_default"]
    assert (nv["point"], nv["against"], nv["seeds"]) == ("balanced N=1", "linspace N=2", [0, 1])
    assert set(result["machine"]) >= {"cpu", "device", "precision"} and result["machine"]["precision"] == "fp32"
    assert result["command"] == "test" and result["seconds"] > 0
    json.dumps({k: v for k, v in result.items() if k != "_log"})


def test_format_table(result):
    text = S.format_schedules(result)
    for p in result["points"]:
        assert p["label"] in text
    assert "= linspace N=2" in text and "(a)" in text and "(b)" in text
    assert ("NOT met" in text) or text.count(" met") >= 2
    assert text.count("\n") < 40


# ----------------------------------------------------------------------------------------------- figure and CLI
def test_figure_has_two_panels_with_the_data(result):
    fig = schedule_comparison_figure(result)
    ax_n, ax_pd = fig.axes
    assert len(fig.axes) == 2
    curves = family_curves(result)
    assert list(curves) == ["linspace", "trailing", "balanced", "perceptual"]
    line = next(ln for ln in ax_n.get_lines() if ln.get_label() == "linspace")
    assert list(line.get_ydata()) == [p["summary"]["crops"]["lpips"]["mean"] for p in curves["linspace"]]
    ref = _points(result)["linspace N=3"]["summary"]["crops"]["lpips"]["mean"]
    assert any(list(ln.get_ydata()) == [ref, ref] for ln in ax_n.get_lines())  # the reference line
    pd = next(ln for ln in ax_pd.get_lines() if ln.get_label() == "_trailing")
    assert list(pd.get_ydata()) == [p["summary"]["crops"]["psnr_y"]["mean"] for p in curves["trailing"]]
    assert len(ax_pd.texts) == sum(len(v) for v in curves.values())  # N written at every point
    assert len(schedule_comparison_figure(result, set_name="full").axes) == 2
    with pytest.raises(ValueError, match="set_name"):
        schedule_comparison_figure(result, set_name="nope")


def test_cli_wiring_writes_json_and_figure(monkeypatch, result, capsys, tmp_path):
    assert "schedules" in BENCHMARKS
    seen = {}
    clean = {k: v for k, v in result.items() if k != "_log"}

    def fake(**kw):
        seen.update(kw)
        return clean

    monkeypatch.setattr(S, "compare_schedules", fake)
    monkeypatch.setattr(S, "plan_points", lambda *a, **k: [])  # the option check needs no presets here
    argv = ["schedules", "--max-steps", "3", "--seeds", "0", "4", "--spread-max-steps", "2", "--repeats", "2",
            "--schedules", "linspace", "trailing", "--precision", "fp32", "--json", str(tmp_path / "r.json"),
            "--figure", str(tmp_path / "f.png")]
    assert benchmarks.main(argv) == 0
    assert (seen["max_steps"], seen["seeds"], seen["spread_max_steps"], seen["repeats"]) == (3, [0, 4], 2, 2)
    assert seen["schedules"] == ["linspace", "trailing"] and seen["reference_steps"] == 20
    assert seen["command"].startswith("adasr bench schedules --max-steps 3 --seeds 0 4 --spread-max-steps 2")
    assert capsys.readouterr().out.strip() == S.format_schedules(clean)
    assert json.loads((tmp_path / "r.json").read_text())["benchmark"] == "schedules"
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_schedules_figure_dpi(result, tmp_path):
    from PIL import Image

    out = save_schedules_figure(result, str(tmp_path / "s.png"))
    with Image.open(out) as im:
        assert im.info["dpi"][0] == pytest.approx(200, abs=1)


def _presets_available() -> bool:
    try:
        from adasr.registry import load_schedule_presets

        load_schedule_presets()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _presets_available(), reason="adasr/weights/schedules.json not built")
def test_cli_end_to_end_with_the_shipped_presets(tiny, capsys, tmp_path):
    """`adasr bench schedules` with the real presets and defaults (old: linspace 10, new: DEFAULT_STEPS of
    DEFAULT_SCHEDULE) on the tiny model and images: table, JSON and figure."""
    from adasr.defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS, LEGACY_SCHEDULE, LEGACY_STEPS

    argv = ["schedules", "--max-steps", "2", "--seeds", "0", "1", "--spread-max-steps", "1", "--reference-steps", "3",
            "--repeats", "1", "--precision", "fp32", "--json", str(tmp_path / "r.json"), "--figure",
            str(tmp_path / "f.png")]
    assert benchmarks.main(argv) == 0
    out, err = capsys.readouterr()
    r = json.loads((tmp_path / "r.json").read_text())
    assert out.strip() == S.format_schedules(r)
    assert all(line.startswith("[bench schedules] ") for line in err.splitlines())
    assert r["config"]["schedules"] == list(S.DEFAULT_SCHEDULES)
    assert r["defaults"] == {"old": f"{LEGACY_SCHEDULE} N={LEGACY_STEPS}",
                             "new": f"{DEFAULT_SCHEDULE} N={DEFAULT_STEPS}", "reference": "linspace N=3"}
    by = _points(r)
    assert {by[f"{s} N=1"]["run_key"] for s in S.DEFAULT_SCHEDULES} == {"999|eta=0.0"}  # one run at N = 1
    assert r["command"].startswith("adasr bench schedules --max-steps 2 --seeds 0 1")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
