"""``adasr bench spread``: statistics, cache/resume, the equal-budget control per seed, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adasr import benchmarks, data, upscaling
from adasr.benchmarks import spread as S
from adasr.benchmarks.runner import BENCHMARKS


def test_registered_with_json():
    assert "spread" in BENCHMARKS
    a = benchmarks.build_parser().parse_args(["spread", "--seeds", "0", "1", "--json", "r.json"])
    assert (a.which, a.seeds, a.json) == ("spread", [0, 1], "r.json")
    assert S.cache_path(a) == "r.cache.jsonl"


def test_pair_stats_by_hand():
    d = np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]])  # 2 seeds × 3 crops
    s = S.pair_stats(d, quoted=0.5)
    assert s["mean"] == pytest.approx(2.5)
    assert s["std_seeds"] == pytest.approx(np.std([2.0, 3.0], ddof=1))
    assert s["std_pairs"] == pytest.approx(np.std(d, ddof=1))
    assert s["se"] == pytest.approx(np.std(d, ddof=1) / math.sqrt(6))
    assert s["se_crops"] == pytest.approx(np.std([1.5, 2.5, 3.5], ddof=1) / math.sqrt(3))
    assert s["sign_agreement"] == 1.0 and s["resolved"] and s["verdict"] == "survives"
    assert S.pair_stats(d, quoted=-0.1)["verdict"] == "reversed"
    noisy = np.array([[1.0, -1.0, 0.2], [-1.0, 1.0, -0.1]])
    n = S.pair_stats(noisy, quoted=0.1)
    assert not n["resolved"] and n["verdict"] == "not resolved"
    assert n["sign_agreement"] == pytest.approx(3 / 6)  # mean 0.0167 > 0: three of six gains positive
    with pytest.raises(ValueError):
        S.pair_stats([1.0, 2.0])


def test_budget_bracket_and_gains():
    assert S.budget_bracket(10.8) == (10, 11) and S.budget_bracket(4.0) == (4, 4) and S.budget_bracket(0.3) == (1, 1)
    g = S.gains({"psnr_y": 30.0, "lpips": 0.2}, {"psnr_y": 29.5, "lpips": 0.25})
    assert g == pytest.approx({"psnr_gain_db": 0.5, "lpips_gain": 0.05})


def test_quadrant_crops(monkeypatch):
    big = {n: np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3) + i for i, n in enumerate(("a", "b"))}
    monkeypatch.setattr(data, "heldout_crops", lambda size: {n: v[:size, :size] for n, v in big.items()})
    q = S.quadrant_crops(4)
    assert list(q) == ["a/0", "a/1", "a/2", "a/3", "b/0", "b/1", "b/2", "b/3"]
    assert np.array_equal(q["a/1"], big["a"][:4, 4:]) and np.array_equal(q["b/2"], big["b"][4:, :4])


def test_plan_cost_counts_evaluations():
    c = S.plan_cost(["allocation/linspace", "adabm6-vs-W8A6"], seeds=3, crops=12, tiles_per_crop=9, quant_steps=2,
                    guesses={"allocation/linspace": 10.5})
    assert c["comparisons"]["allocation/linspace"]["tile_evaluations"] == round((10.5 + 10 + 11) * 9 * 36)
    assert c["comparisons"]["adabm6-vs-W8A6"]["tile_evaluations"] == 2 * 2 * 9 * 36
    assert c["seconds"] == pytest.approx((10.5 + 21) * 9 * 36 * S.SECONDS_PER_EVAL_BF16
                                         + 144 * 9 * S.SECONDS_PER_EVAL_FAKEQUANT)


def _fake_measure(calls):
    """Uniform N: PSNR 30 − 0.1·N, LPIPS 0.3 − 0.01·N; the allocation arm spends 2 or 3 steps per tile (mean 2.5
    over the crops) and is 0.05 dB / 0.002 better than that line; a seed shifts everything by 0.01·seed."""

    def measure(arm, crop, seed):
        calls.append((arm, crop, seed))
        q = int(crop.rsplit("/", 1)[1])
        if arm.startswith("uniform/"):
            n = int(arm.split("/")[-1])
            return {"psnr_y": 30 - 0.1 * n + 0.01 * seed, "lpips": 0.3 - 0.01 * n, "ssim_y": 0.9, "seconds": 1.0,
                    "tile_evaluations": 4 * n, "tiles": 4, "mean_steps_per_tile": float(n)}
        if arm.startswith("quant/"):
            better = "AdaBM" in arm
            return {"psnr_y": 29 + 0.02 * better + 0.001 * q, "lpips": 0.2 - 0.001 * better, "ssim_y": 0.9,
                    "seconds": 1.0, "tile_evaluations": 8, "tiles": 4, "mean_steps_per_tile": 2.0,
                    "fab": 5.5 if better else 6.0}
        n = 2 if q % 2 else 3
        return {"psnr_y": 30 - 0.1 * n + 0.05 + 0.01 * seed, "lpips": 0.3 - 0.01 * n - 0.002, "ssim_y": 0.9,
                "seconds": 1.0, "tile_evaluations": 4 * n, "tiles": 4, "mean_steps_per_tile": float(n)}

    return measure


def test_run_comparisons_equal_budget_per_seed_and_resume(tmp_path):
    crops = ["x/0", "x/1", "y/0", "y/1"]
    path = tmp_path / "c.jsonl"
    calls: list = []
    names = ["allocation/linspace", "adabm6-vs-W8A6"]
    quoted = {"allocation/linspace": {"psnr_gain_db": -0.1, "lpips_gain": 0.001},
              "adabm6-vs-W8A6": {"psnr_gain_db": 0.01, "lpips_gain": None}}
    r = S.run_comparisons(names, crops, [0, 1], _fake_measure(calls), S.ResultCache(path, {"a": 1}),
                          quoted=quoted, progress=False)
    a = r["allocation/linspace"]
    assert [p["mean_steps_per_tile"] for p in a["per_seed"]] == [2.5, 2.5]
    assert {(p["n_low"], p["n_high"]) for p in a["per_seed"]} == {(2, 3)}
    # per crop: the arm against uniform interpolated at the seed's mean budget 2.5 (not at the crop's own)
    want = np.array([[0.05 - 0.1 * (n - 2.5) for n in (3, 2, 3, 2)]] * 2)
    assert np.allclose(a["gains"]["psnr_gain_db"], want)
    assert a["psnr_gain_db"]["mean"] == pytest.approx(0.05)  # = bench adaptive's vs_equal_budget on the set
    assert a["lpips_gain"]["mean"] == pytest.approx(0.002)
    # PSNR gains 0.0 / 0.1 per crop: resolved, against the quoted sign; LPIPS gains −0.003 / +0.007: within noise
    assert a["psnr_gain_db"]["verdict"] == "reversed" and a["lpips_gain"]["verdict"] == "not resolved"
    q = r["adabm6-vs-W8A6"]
    assert q["psnr_gain_db"]["mean"] == pytest.approx(0.02) and q["psnr_gain_db"]["verdict"] == "survives"
    assert q["lpips_gain"]["quoted"] is None and q["lpips_gain"]["verdict"] == "survives"
    assert q["per_seed"][0]["fab_arm"] == 5.5 and q["per_seed"][0]["fab_control"] == 6.0
    n_calls = len(calls)
    assert n_calls == 2 * 4 * 3 + 2 * 4 * 2  # each (arm, crop, seed) measured once
    assert len(path.read_text().splitlines()) == n_calls

    def fail(*args):
        raise AssertionError("should have been read from the cache")

    again = S.run_comparisons(names, crops, [0, 1], fail, S.ResultCache(path, {"a": 1}), quoted=quoted,
                              progress=False)
    assert again["allocation/linspace"]["gains"] == a["gains"]
    assert len(S.ResultCache(path, {"a": 2})) == 0  # other settings: nothing reused
    with open(path, "a") as f:
        f.write('{"key": ["cut')  # a line cut by a kill is skipped
    assert len(S.ResultCache(path, {"a": 1})) == n_calls


def test_quoted_gains_from_committed_results():
    adaptive = {"families": {"linspace": {"comparisons": {"allocation": {
        "vs_equal_budget": {"psnr_gain_db": -0.1, "lpips_gain": -0.006}}}}}}
    quant = {"unet": {"arms": {"W8A6": {"mean": {"psnr_y": 31.4, "lpips": 0.189}},
                               "AdaBM W8 b_base 6": {"mean": {"psnr_y": 31.2, "lpips": 0.179}}}}}
    assert S.quoted_gains("allocation/linspace", adaptive, quant) == {"psnr_gain_db": -0.1, "lpips_gain": -0.006}
    g = S.quoted_gains("adabm6-vs-W8A6", adaptive, quant)
    assert g["psnr_gain_db"] == pytest.approx(-0.2) and g["lpips_gain"] == pytest.approx(0.01)
    assert S.quoted_gains("early-exit/balanced", adaptive, None) == {"psnr_gain_db": None, "lpips_gain": None}


def test_bad_options_fail_before_loading():
    with pytest.raises(SystemExit):
        benchmarks.main(["spread", "--seeds", "1", "1"])
    with pytest.raises(SystemExit):
        benchmarks.main(["spread", "--comparisons", "nope"])


def test_end_to_end_tiny(monkeypatch, make_tiny_model, one_thread, tmp_path, capsys):
    """The real arms (bench adaptive's runner, bench quant's UNet configs) with the tiny model on 32² crops."""
    small = {n: c for n, c in list(data.heldout_crops(64).items())[:1]}
    monkeypatch.setattr(data, "heldout_crops", lambda size: {n: c[:size, :size] for n, c in small.items()})
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
    monkeypatch.setattr(S, "UNET_N_CALIB", 2)  # as test_bench_quant calibrates unet_arms
    monkeypatch.setattr(S, "UNET_CALIB_CROP", 32)
    out = tmp_path / "s.json"
    argv = ["spread", "--comparisons", "early-exit/linspace", "adabm6-vs-W8A6", "--seeds", "0", "1", "--crop", "32",
            "--n-max", "3", "--precision", "fp32", "--no-progress", "--json", str(out)]
    assert benchmarks.main(argv) == 0
    r = json.loads(out.read_text())
    assert r["benchmark"] == "spread" and r["crops"] == [f"{next(iter(small))}/{q}" for q in range(4)]
    assert r["precision"] == {"float_arms": "fp32", "quantized_arms": "fp32"} and r["config"]["n_max"] == 3
    assert r["command"].startswith("adasr bench spread") and r["wall_seconds"] > 0
    for name in ("early-exit/linspace", "adabm6-vs-W8A6"):
        c = r["comparisons"][name]
        assert c["psnr_gain_db"]["n_pairs"] == 8 and len(c["per_seed"]) == 2
    assert r["comparisons"]["adabm6-vs-W8A6"]["per_seed"][0]["fab_control"] == pytest.approx(6.0)
    assert r["quant"]["n_calib"] == 2 and r["complete"]
    cache = tmp_path / "s.cache.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()]
    assert {tuple(x["key"][:1]) for x in rows} >= {("early-exit/linspace",), ("quant/W8A6",)}
    text = capsys.readouterr().out
    assert "early-exit/linspace" in text and "verdict" in text
    assert benchmarks.main(argv) == 0  # resumed: everything from the cache
    assert len(cache.read_text().splitlines()) == len(rows)


def test_cached_only_reports_complete_seeds(tmp_path):
    """An interrupted run: only the seeds whose runs are all cached are reported; nothing is measured."""
    crops = ["x/0", "x/1", "y/0"]
    path = tmp_path / "c.jsonl"
    calls: list = []
    S.run_comparisons(["adabm6-vs-W8A6"], crops, [0], _fake_measure(calls), S.ResultCache(path, {}), progress=False)

    def fail(*args):
        raise AssertionError("cached_only measures nothing")

    r = S.run_comparisons(["adabm6-vs-W8A6", "allocation/linspace"], crops, [0, 1], fail, S.ResultCache(path, {}),
                          progress=False, cached_only=True)
    assert list(r) == ["adabm6-vs-W8A6"] and r["adabm6-vs-W8A6"]["seeds"] == [0]
    assert r["adabm6-vs-W8A6"]["psnr_gain_db"]["n_pairs"] == 3
    assert np.array(r["adabm6-vs-W8A6"]["gains"]["psnr_gain_db"]).shape == (1, 3)
    assert r["adabm6-vs-W8A6"]["psnr_gain_db"]["std_seeds"] is None  # one seed: undefined, null in the JSON
    assert "—" in S.format_spread({"seeds": [0, 1], "crops": crops, "crop": 256, "comparisons": r, "complete": False,
                                   "precision": {"float_arms": "bf16", "quantized_arms": "fp32"}, "criterion": "",
                                   "estimate": {"tile_evaluations": 1, "seconds": 1.0}, "sampling_seconds": 1.0,
                                   "wall_seconds": 1.0})


def test_spread_figure_draws_each_comparison():
    from adasr.viz.spread import spread_figure

    d = np.array([[0.01, 0.02, 0.03], [0.02, 0.01, 0.04]])
    comp = {"notebook": "05", "psnr_gain_db": S.pair_stats(d, 0.1), "lpips_gain": S.pair_stats(-d, None)}
    fig = spread_figure({"order": ["a", "b"], "comparisons": {"a": comp, "b": {**comp, "notebook": "10"}},
                         "seeds": [0, 1], "crops": ["x/0", "x/1", "x/2"]})
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_yticklabels()] == ["b (10)", "a (05)"]
    assert len(left.lines) > 0 and len(right.lines) > 0
