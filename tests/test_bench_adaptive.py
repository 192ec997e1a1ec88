"""adasr.benchmarks.adaptive (comparisons, equal-budget controls of the same and of every schedule family, sweep
points, text tables, CLI wiring), adasr.adaptive.equal_budget.equal_budget and adasr.viz.adaptive.plot_speed_quality,
on fabricated results; one tiny end-to-end run (two families on a tiny model, 32² crops) and the quality test at the
end sample."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from adasr import benchmarks  # noqa: E402
from adasr.adaptive.complexity import Calibration, gradient_map  # noqa: E402
from adasr.adaptive.equal_budget import equal_budget, uniform_at  # noqa: E402
from adasr.adaptive.policy import AdaptiveConfig, make_policy  # noqa: E402
from adasr.config import ADASR_POLICIES  # noqa: E402

POLICIES = ADASR_POLICIES
from adasr.benchmarks import adaptive as B  # noqa: E402
from adasr.benchmarks import quality as Q  # noqa: E402
from adasr.benchmarks.runner import save_curve_figure  # noqa: E402
from adasr.viz.adaptive import place_labels, plot_speed_quality, short_label, speed_quality_points  # noqa: E402


def teardown_function(_):
    plt.close("all")


def arm(name: str, evals: int, seconds: float, psnr: float, ssim: float, lpips: float, tiles: int = 27) -> dict:
    return {"arm": name, "policy": name.split()[0], "tile_evaluations": evals, "tiles": tiles,
            "mean_steps_per_tile": evals / tiles, "seconds": seconds, "psnr_y": psnr, "ssim_y": ssim, "lpips": lpips}


# ---------------------------------------------------------------------------------------------------- _compare
def test_compare_ratios_and_losses():
    ref = arm("uniform N=20", 540, 20.0, 30.71, 0.81, 0.2060)
    a = arm("allocation", 123, 5.5, 30.95, 0.82, 0.2270)
    c = B._compare(a, ref)
    assert c["eval_ratio"] == pytest.approx(540 / 123) and c["wall_ratio"] == pytest.approx(20 / 5.5)
    assert c["psnr_loss_db"] == pytest.approx(-0.24) and c["lpips_loss"] == pytest.approx(0.021)
    assert c["targets_met"] == {"evals": True, "wall": True, "psnr": True, "lpips": False}


def test_compare_target_boundaries():
    """Targets: ≥ 3× fewer evaluations, ≥ 2× faster, PSNR loss ≤ 0.05 dB, LPIPS loss ≤ 0.005 (inclusive)."""
    assert (B.TARGET_EVAL_RATIO, B.TARGET_WALL_RATIO, B.TARGET_PSNR_LOSS_DB, B.TARGET_LPIPS_LOSS) == (3.0, 2.0, 0.05,
                                                                                                      0.005)
    ref = arm("uniform", 300, 8.0, 30.5, 0.8, 0.25)
    on = B._compare(arm("x", 100, 4.0, 30.5, 0.8, 0.25), ref)  # exactly 3×, exactly 2×, no loss
    assert on["eval_ratio"] == 3.0 and on["wall_ratio"] == 2.0
    assert on["targets_met"] == {"evals": True, "wall": True, "psnr": True, "lpips": True}
    off = B._compare(arm("x", 101, 4.5, 30.25, 0.8, 0.2578125), ref)
    assert off["psnr_loss_db"] == 0.25 and off["lpips_loss"] == pytest.approx(0.0078125)
    assert off["targets_met"] == {"evals": False, "wall": False, "psnr": False, "lpips": False}


def test_equal_budget_interpolates_between_uniform_runs():
    lo = arm("uniform N=4", 108, 4.0, 31.0, 0.80, 0.24)
    hi = arm("uniform N=5", 135, 5.0, 30.8, 0.82, 0.22)
    e = equal_budget(lo, hi, 4.25)
    assert (e["n"], e["n_low"], e["n_high"], e["weight_high"]) == (4.25, 4, 5, pytest.approx(0.25))
    assert e["psnr_y"] == pytest.approx(30.95) and e["lpips"] == pytest.approx(0.235)
    assert e["ssim_y"] == pytest.approx(0.805) and e["seconds"] == pytest.approx(4.25)
    assert e["tile_evaluations"] == 115 and isinstance(e["tile_evaluations"], int)  # round(114.75)
    assert e["mean_steps_per_tile"] == pytest.approx(4.25)
    same = equal_budget(lo, lo, 4.0)  # an integer mean: both ends are the same run
    assert same["weight_high"] == 0.0 and same["psnr_y"] == 31.0 and same["tile_evaluations"] == 108
    assert list(e) == ["n", "n_low", "n_high", "weight_high", "tile_evaluations", "seconds", "psnr_y", "ssim_y",
                       "lpips", "mean_steps_per_tile"]


def test_equal_budget_is_the_uniform_curve_interpolation():
    """One home of the interpolation: equal_budget(lo, hi, m)[k] is uniform_at on the two-point curve, and equals
    (1 − w)·lo + w·hi with w = (m − N_lo)/(N_hi − N_lo) for every quantity (random runs)."""
    rng = np.random.default_rng(0)
    for n in (1, 4, 12):
        lo, hi = (arm(f"uniform N={k}", 27 * k, *rng.uniform(0.1, 40, 4)) for k in (n, n + 1))
        for m in rng.uniform(n, n + 1, 5):
            e = equal_budget(lo, hi, m)
            w = m - n
            assert e["weight_high"] == pytest.approx(w)
            curve = {"steps": [n, n + 1]}
            for k in ("seconds", "psnr_y", "ssim_y", "lpips", "mean_steps_per_tile"):
                assert e[k] == pytest.approx((1 - w) * lo[k] + w * hi[k], rel=1e-12)
                curve[k] = [lo[k], hi[k]]
                assert e[k] == uniform_at(curve, m, k)
            assert e["tile_evaluations"] == round((1 - w) * lo["tile_evaluations"] + w * hi["tile_evaluations"])


# ------------------------------------------------------------------------------------------------ sweep_configs
def test_sweep_configs_default():
    cfg = AdaptiveConfig()
    pts = B.sweep_configs(cfg)
    labels = [p[2] for p in pts]
    assert len(set(labels)) == len(labels)
    uni = [(c.n_max, lab) for k, c, lab in pts if k == "uniform"]
    assert uni == [(k, f"uniform N={k}") for k in (1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20)]
    alloc = {(c.n_min, c.n_max) for k, c, _ in pts if k == "allocation" and c.estimator == "gradient"}
    assert alloc == {(1, 10), (2, 20), (4, 20), (8, 20), (2, 13)}
    assert ("allocation", cfg.with_(n_min=2, n_max=20), "allocation 2–20") in pts
    ee = [c for k, c, _ in pts if k == "early-exit"]
    assert {c.epsilon for c in ee} >= {0.001, 0.0015, 0.002, 0.003, 0.005}
    assert all(c.n_max == 20 and c.exit_mode == "tile" for c in ee)
    assert [c.epsilon for k, c, _ in pts if k == "adasr"] == [0.0015, 0.003]
    assert {k for k, _, _ in pts} == set(ADASR_POLICIES)  # AdaDiffSR has its own bench
    # every point is a policy that can be built (no n_min > n_max, valid rules)
    for kind, c, _ in pts:
        make_policy(kind, c, calibration=Calibration(c.estimator, 0.0, 1.0), estimator_fn=gradient_map)
    # only the swept fields differ from the base config
    for kind, c, _ in pts:
        same = {k for k, v in c.to_dict().items() if v == cfg.to_dict()[k]}
        assert {"mapping", "normalize", "patience", "exit_mode"} <= same


def test_sweep_configs_around_a_smaller_budget():
    pts = B.sweep_configs(AdaptiveConfig(n_max=12))
    assert [c.n_max for k, c, _ in pts if k == "uniform"] == [1, 2, 3, 4, 5, 6, 8, 10, 12]
    assert {(c.n_min, c.n_max) for k, c, _ in pts if k == "allocation" and c.estimator == "gradient"} == {
        (1, 6), (2, 12), (4, 12), (8, 12), (2, 8)}


def test_sweep_configs_are_valid_for_small_n_max():
    for kind, c, _ in B.sweep_configs(AdaptiveConfig(n_max=6)):
        make_policy(kind, c, calibration=Calibration(c.estimator, 0.0, 1.0), estimator_fn=gradient_map)


# ----------------------------------------------------------------------------------------------------- formatting
def moon() -> dict:
    base = arm("uniform N=20", 500, 40.0, 28.123, 0.71234, 0.31, tiles=25)
    ada = arm("adasr", 111, 11.43, 28.5, 0.7, 0.33, tiles=25)
    return {"baseline": base, "adasr": ada, "speedup": 3.5, "eval_ratio": 500 / 111,
            "steps_saved_per_tile": 20 - 111 / 25}


def uniform_runs(psnr0: float, lpips0: float, ns=(4, 5, 6, 10, 11, 20)) -> dict[int, dict]:
    """Fabricated uniform runs at N (27 tiles): PSNR falls 0.1 dB and LPIPS 0.01 per step from N = 0."""
    return {n: arm(f"uniform N={n}", 27 * n, float(n), psnr0 - 0.1 * n, 0.8, lpips0 - 0.01 * n) for n in ns}


def family_arms(uniform: dict[int, dict]) -> dict[str, dict]:
    """The four headline arms of one family (its uniform N = 20 run and three fabricated adaptive arms)."""
    return {"uniform": {**uniform[20], "arm": "uniform N=20"},
            "allocation": arm("allocation", 123, 5.5, 30.95, 0.82, 0.2270),
            "early-exit": arm("early-exit", 138, 6.25, 31.50, 0.83, 0.2440),
            "adasr": arm("adasr", 108, 4.0, 31.60, 0.84, 0.2500)}


def sweep_points(schedule: str) -> list[dict]:
    pts = [
        {"label": "uniform N=5", "policy": "uniform", "mean_steps_per_tile": 5.0, "psnr_y": 31.44, "lpips": 0.224,
         "seconds": 5.0, "tile_evaluations": 135, "ssim_y": 0.8},
        {"label": "uniform N=1", "policy": "uniform", "mean_steps_per_tile": 1.0, "psnr_y": 31.98, "lpips": 0.256,
         "seconds": 1.0, "tile_evaluations": 27, "ssim_y": 0.8},
        {"label": "uniform N=20", "policy": "uniform", "mean_steps_per_tile": 20.0, "psnr_y": 30.71,
         "lpips": 0.206, "seconds": 20.0, "tile_evaluations": 540, "ssim_y": 0.8},
        {"label": "allocation 2–20", "policy": "allocation", "mean_steps_per_tile": 6.5, "psnr_y": 31.2,
         "lpips": 0.23, "seconds": 6.0, "tile_evaluations": 176, "ssim_y": 0.8},
        {"label": "allocation 1–10", "policy": "allocation", "mean_steps_per_tile": 3.25, "psnr_y": 31.6,
         "lpips": 0.24, "seconds": 3.0, "tile_evaluations": 88, "ssim_y": 0.8},
        {"label": "early-exit ε=0.002", "policy": "early-exit", "mean_steps_per_tile": 5.1, "psnr_y": 31.5,
         "lpips": 0.244, "seconds": 5.0, "tile_evaluations": 138, "ssim_y": 0.8},
    ]
    return [{**p, "schedule": schedule} for p in pts]


#: the fabricated families: linspace, and a "balanced" whose uniform runs are 0.2 dB better and 0.005 worse in LPIPS
FAMILY_UNIFORM = {"linspace": (31.5, 0.30), "balanced": (31.7, 0.305)}


def result(sweep: bool = True, with_moon: bool = True) -> dict:
    """A fabricated result of two families, assembled by the benchmark's own functions."""
    cfg = AdaptiveConfig().to_dict()
    uniform = {f: uniform_runs(*v) for f, v in FAMILY_UNIFORM.items()}
    arms = {f: family_arms(u) for f, u in uniform.items()}
    assembled = B.controls_and_comparisons(arms, uniform, 20)
    blocks = {f: {"schedule": {"name": f, "timesteps": [999, 0], "n": 20, "eta": 0.0 if f == "linspace" else 0.5},
                  "arms": arms[f], **assembled[f]} for f in arms}
    for f, b in blocks.items():
        if sweep:
            b["sweep"] = sweep_points(f)
        if with_moon:
            b["moon"] = moon()
    p = blocks["linspace"]
    r = {"benchmark": "adaptive", "config": cfg, "seed": 0, "crop": 256, "tile": 128, "overlap": 32,
         "device": "cpu", "precision": "bf16", "schedules": list(blocks), "primary_schedule": "linspace",
         "arms": p["arms"], "equal_budget_controls": p["equal_budget_controls"], "comparisons": p["comparisons"],
         "families": blocks, "uniform": {f: {str(n): u[n] for n in sorted(u)} for f, u in uniform.items()}}
    if sweep:
        r["sweep"] = p["sweep"]
    if with_moon:
        r["moon"] = p["moon"]
    return r


def test_format_moon_table():
    text = B.format_moon_table(moon())
    lines = text.splitlines()
    assert lines[0] == ("| Image Subject | Baseline PSNR | **AdaSR PSNR** | Baseline SSIM | **AdaSR SSIM** | "
                        "Improvement |")
    assert lines[1] == "| :--- | :---: | :---: | :---: | :---: | :--- |"
    assert lines[2] == "| **Moon** | 28.12 dB | **28.50 dB** | 0.712 | **0.700** | **+0.38 dB** |"
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|") == 7
    assert lines[4] == ("Speedup 3.50× (wall clock), 4.50× fewer tile-evaluations; 15.6 steps saved per tile "
                        "(20 → 4.4); LPIPS 0.3100 → 0.3300.")


def test_format_adaptive_contains_the_numbers():
    r = result()
    text = B.format_adaptive(r)
    lines = text.splitlines()
    assert lines[0] == "adaptive: held-out 256×256 crops ×4, tiles 128/32, cpu/bf16, seed 0"
    assert lines[1] == ("N_max 20, N_min 3, estimator gradient (calibrated, linear), ε 0.002, P 2, T_min 4, "
                        "exit per tile")
    assert lines[3] == "schedule linspace: linspace, η 0 at N_max; timesteps at N_max [999, 0]"
    assert lines[4] == "schedule balanced: balanced, η 0.5 at N_max; timesteps at N_max [999, 0]"
    # the uniform runs of both families side by side, one line per N
    side = lines.index("uniform DDIM at every measured budget, schedules side by side (PSNR-Y / LPIPS / sec; "
                       "'=': the same lists and η as a family to its left, run once):")
    assert lines[side + 1].split() == ["N", "linspace", "balanced"]
    assert lines[side + 2].split() == ["4", "31.10", "0.2600", "4.00", "31.30", "0.2650", "4.00"]
    sections = [i for i, l in enumerate(lines) if l.startswith("== schedule ")]
    assert [lines[i] for i in sections] == ["== schedule linspace ==", "== schedule balanced =="]
    lin = lines[sections[0]:sections[1]]
    row = next(l for l in lin if l.startswith("allocation "))
    assert row.split() == ["allocation", "4.56", "123", "5.50", "30.95", "0.8200", "0.2270"]
    row = next(l for l in lin if l.startswith("uniform N=20 "))
    assert row.split() == ["uniform", "N=20", "20.00", "540", "20.00", "29.50", "0.8000", "0.1000"]
    ctl = next(l for l in lin if "for allocation" in l)  # interpolated control at N = 4.56
    assert ctl.split()[:5] == ["N=4.56", "for", "allocation", "4.56", "123"]
    assert "N=4.00 for adasr" in text
    cmp = next(l for l in lin if l.strip().startswith("allocation") and "evals" in l)
    assert "evals  4.39× (met)" in cmp and "wall  3.64× (met)" in cmp
    assert "PSNR +1.45 dB (met)" in cmp and "LPIPS +0.1270 (NOT met)" in cmp
    eb = r["families"]["linspace"]["comparisons"]["allocation"]["vs_equal_budget"]
    assert (f"vs equal budget: PSNR {eb['psnr_gain_db']:+.2f} dB, LPIPS {-eb['lpips_gain']:+.4f} "
            "(beats it on LPIPS only)") in cmp
    # the honest control: balanced gives the better PSNR, linspace the better LPIPS at every budget here
    honest = lin.index("against the best uniform schedule at the same budget (per metric, across linspace, "
                       "balanced):")
    v = r["families"]["linspace"]["comparisons"]["allocation"]["vs_best_uniform"]
    assert lin[honest + 1] == (f"  allocation  PSNR {v['psnr_gain_db']:+.2f} dB (vs balanced), "
                               f"LPIPS {-v['lpips_gain']:+.4f} (vs linspace): beats it on LPIPS only")
    assert "sweep (speed–quality curve), linspace:" in lines and "sweep (speed–quality curve), balanced:" in lines
    assert "  uniform N=1            steps   1.00  sec   1.00  PSNR-Y  31.98  LPIPS 0.2560" in lines
    assert lines.index("Moon, linspace:") < lines.index("Moon, balanced:")
    assert text.endswith(B.format_moon_table(r["families"]["balanced"]["moon"]))
    short = B.format_adaptive(result(sweep=False, with_moon=False))
    assert "sweep" not in short and "Moon" not in short and short.splitlines()[:5] == lines[:5]


def test_format_adaptive_reads_a_result_from_before_the_schedule_families():
    """A result with only the top-level keys (benchmarks/results/adaptive.json of the linspace-only bench)."""
    r = result()
    old = {k: v for k, v in r.items() if k not in ("families", "uniform", "schedules", "primary_schedule")}
    for k in old["comparisons"].values():
        for extra in ("vs_best_uniform",):
            k.pop(extra, None)
        k["vs_equal_budget"].pop("beats", None)
    text = B.format_adaptive(old)
    assert "== schedule linspace ==" in text and "balanced" not in text and "best uniform" not in text
    assert "side by side" not in text and text.endswith(B.format_moon_table(r["moon"]))


def test_top_level_keys_are_the_linspace_family():
    """Readers of the results before the schedule families (arms, equal_budget_controls, comparisons, sweep, moon)
    get the linspace family; the JSON round-trips."""
    r = json.loads(json.dumps(result()))
    lin = r["families"]["linspace"]
    for k in ("arms", "equal_budget_controls", "comparisons", "sweep", "moon"):
        assert r[k] == lin[k]
    assert set(r["equal_budget_controls"]["allocation"]) == {"n", "n_low", "n_high", "weight_high",
                                                             "tile_evaluations", "seconds", "psnr_y", "ssim_y",
                                                             "lpips", "mean_steps_per_tile"}
    assert r["uniform"]["balanced"]["20"]["psnr_y"] == pytest.approx(29.7)


# ------------------------------------------------------------------------------------- controls across families
def test_versus_and_best_uniform():
    a = {"psnr_y": 31.0, "lpips": 0.20}
    v = B.versus(a, {"psnr_y": 30.5, "lpips": 0.19})
    assert v["psnr_gain_db"] == pytest.approx(0.5) and v["lpips_gain"] == pytest.approx(-0.01)
    assert v["beats"] == {"psnr": True, "lpips": False, "both": False}
    assert B.versus(a, a)["beats"] == {"psnr": False, "lpips": False, "both": False}  # a tie does not beat
    by = {"linspace": {"n": 4.5, "psnr_y": 31.0, "ssim_y": 0.80, "lpips": 0.25},
          "balanced": {"n": 4.5, "psnr_y": 31.2, "ssim_y": 0.79, "lpips": 0.26}}
    assert B.best_uniform(by) == {"n": 4.5, "psnr_y": 31.2, "psnr_y_schedule": "balanced", "ssim_y": 0.80,
                                  "ssim_y_schedule": "linspace", "lpips": 0.25, "lpips_schedule": "linspace"}


def test_uniform_budgets_cover_every_family_and_the_sweep():
    arms = {"linspace": {"uniform": arm("uniform N=20", 540, 1, 1, 1, 1), "allocation": arm("a", 123, 1, 1, 1, 1),
                         "adasr": arm("b", 108, 1, 1, 1, 1)},
            "balanced": {"uniform": arm("uniform N=20", 540, 1, 1, 1, 1), "early-exit": arm("c", 27 * 7 + 5, 1, 1,
                                                                                             1, 1)}}
    assert B.uniform_budgets(arms, 20) == [4, 5, 7, 8, 20]  # 4.56 → 4, 5; 4.0 → 4; 7.19 → 7, 8
    assert B.uniform_budgets(arms, 20, [1, 2, 20]) == [1, 2, 4, 5, 7, 8, 20]
    assert B.uniform_budgets({"x": {"uniform": arm("u", 27, 1, 1, 1, 1), "adasr": arm("a", 20, 1, 1, 1, 1)}},
                             1) == [1]  # a mean below one step still needs N = 1 (never 0)


def test_controls_of_the_same_family_and_across_families():
    """Each adaptive arm of a family has its own family's equal-budget control (equal_budget on that family's
    uniform runs) and the per-metric best of every family's control at the same budget."""
    r = result(sweep=False, with_moon=False)
    uni = {f: uniform_runs(*v) for f, v in FAMILY_UNIFORM.items()}
    for f, b in r["families"].items():
        for kind in POLICIES[1:]:
            m = b["arms"][kind]["mean_steps_per_tile"]
            lo, hi = int(np.floor(m)), int(np.ceil(m))
            want = {g: equal_budget(u[lo], u[hi], m) for g, u in uni.items()}
            assert b["equal_budget_controls"][kind] == want[f]
            cross = b["cross_schedule_controls"][kind]
            assert cross["by_schedule"] == want
            assert cross["best"]["psnr_y"] == max(w["psnr_y"] for w in want.values())
            assert cross["best"]["lpips"] == min(w["lpips"] for w in want.values())
            assert (cross["best"]["psnr_y_schedule"], cross["best"]["lpips_schedule"]) == ("balanced", "linspace")
            c = b["comparisons"][kind]
            assert c["vs_equal_budget"] == B.versus(b["arms"][kind], want[f])
            assert c["vs_best_uniform"]["psnr_gain_db"] == pytest.approx(b["arms"][kind]["psnr_y"]
                                                                         - cross["best"]["psnr_y"])
            assert c["vs_best_uniform"]["lpips_schedule"] == "linspace"
            assert c["eval_ratio"] == pytest.approx(540 / b["arms"][kind]["tile_evaluations"])  # own uniform N_max
            ref = uni[f][20]
            assert c["psnr_loss_db"] == pytest.approx(ref["psnr_y"] - b["arms"][kind]["psnr_y"])
    # the same arm against a better family's control: beats linspace's PSNR control, not balanced's here
    lin = r["families"]["linspace"]["comparisons"]["allocation"]
    assert lin["vs_best_uniform"]["psnr_gain_db"] < lin["vs_equal_budget"]["psnr_gain_db"]


def test_resolve_families(monkeypatch):
    from adasr import registry
    from adasr.defaults import DEFAULT_SCHEDULE
    from adasr.diffusion.timesteps import KarrasSchedule, SpacingSchedule

    monkeypatch.setattr(registry, "load_schedule_presets", lambda *a, **k: fake_presets_dict())
    assert B.DEFAULT_FAMILIES == tuple(dict.fromkeys(("linspace", DEFAULT_SCHEDULE)))
    fams = B.resolve_families()
    assert list(fams) == list(B.DEFAULT_FAMILIES) and fams["linspace"] == SpacingSchedule("linspace")
    fams = B.resolve_families(["karras", "linspace", "karras", "balanced"])
    assert list(fams) == ["karras", "linspace", "balanced"] and isinstance(fams["karras"], KarrasSchedule)
    assert fams["balanced"].eta_for(3) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="explicit list"):
        B.resolve_families(["linspace", "999,100,20"])
    assert B.primary_family(["balanced", "linspace"]) == "linspace"
    assert B.primary_family(["balanced", "karras"]) == "balanced"


# --------------------------------------------------------------------------------------------------------- figure
def test_plot_speed_quality_draws_the_uniform_sweep_as_a_line():
    r = result()
    fig = plot_speed_quality(r)
    ax_l, ax_p = fig.axes[:2]
    for ax, key in ((ax_l, "lpips"), (ax_p, "psnr_y")):
        lines = {l.get_label(): l for l in ax.get_lines() if not l.get_label().startswith("_")}
        assert set(lines) == {"uniform, linspace schedule", "allocation", "early-exit", "adasr",
                              "uniform, balanced schedule"}
        u = lines["uniform, linspace schedule"]
        np.testing.assert_array_equal(u.get_xdata(), [1.0, 5.0, 20.0])  # sorted by cost
        want = {"lpips": [0.256, 0.224, 0.206], "psnr_y": [31.98, 31.44, 30.71]}[key]
        np.testing.assert_array_equal(u.get_ydata(), want)
        assert u.get_linestyle() == "-"
        a = lines["allocation"]  # the sweep's two points and the run's allocation arm (123 evals / 27 tiles)
        np.testing.assert_allclose(a.get_xdata(), [3.25, 123 / 27, 6.5])
        np.testing.assert_array_equal(a.get_ydata(), {"lpips": [0.24, 0.227, 0.23],
                                                      "psnr_y": [31.6, 30.95, 31.2]}[key])
        assert a.get_linestyle() == "None" and a.get_marker() == "s"
        np.testing.assert_allclose(lines["early-exit"].get_xdata(), [5.1, 138 / 27])
        np.testing.assert_allclose(lines["adasr"].get_xdata(), [4.0])  # the default adasr arm (108 / 27)
        other = lines["uniform, balanced schedule"]  # the other family's uniform runs, dashed, for reference
        np.testing.assert_array_equal(other.get_xdata(), [4, 5, 6, 10, 11, 20])
        assert other.get_linestyle() == "--"
        defaults = [l for l in ax.get_lines() if l.get_label() == "_default"]
        assert sorted(float(l.get_xdata()[0]) for l in defaults) == pytest.approx(sorted([123 / 27, 138 / 27, 4.0]))
        texts = [t.get_text() for t in ax.texts]
        assert {"1", "5", "20", "1–10", "2–20", "ε=0.002"} <= set(texts) and texts.count("default") == 3
    assert "LPIPS" in ax_l.get_ylabel() and "PSNR" in ax_p.get_ylabel()
    assert "tile-evaluations" in ax_l.get_xlabel()


def test_speed_quality_points_mark_a_sweep_point_equal_to_a_default_arm():
    r = result()
    cfg = AdaptiveConfig().to_dict()
    block = r["families"]["linspace"]
    block["arms"]["early-exit"] = {**block["sweep"][5], "config": cfg}
    block["sweep"][5]["config"] = cfg
    block["arms"]["allocation"]["config"] = cfg
    pts = speed_quality_points(r)
    marked = [p for p in pts if p.get("default")]
    assert [p["label"] for p in marked] == ["early-exit ε=0.002", "allocation 3–20", "adasr"]
    assert len(pts) == len(block["sweep"]) + 2  # early exit was already in the sweep
    assert short_label({"label": "allocation 2–20 learned", "policy": "allocation"}) == "2–20 learned"
    assert short_label({"label": "uniform N=5", "policy": "uniform"}) == "5"


def test_place_labels_avoids_markers_and_other_labels():
    fig = plt.figure(figsize=(4, 3))
    ax = fig.add_subplot()
    x, y = [1.0, 1.05, 1.1, 2.0], [1.0, 1.0, 1.0, 2.0]
    ax.plot(x, y, "o", ms=5)
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 3)
    fig.tight_layout()
    texts = place_labels(ax, x, y, ["first", "second", "third", ""])
    assert [t.get_text() for t in texts] == ["first", "second", "third"]  # an empty label is skipped
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in texts]
    for i, a in enumerate(boxes):
        assert ax.get_window_extent(r).contains(a.x0, a.y0) and ax.get_window_extent(r).contains(a.x1, a.y1)
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    again = plt.figure(figsize=(4, 3)).add_subplot()
    again.plot(x, y, "o", ms=5)
    again.set_xlim(0, 3)
    again.set_ylim(0, 3)
    again.figure.tight_layout()
    assert [t.get_position() for t in place_labels(again, x, y, ["first", "second", "third", ""])] == \
        [t.get_position() for t in texts]  # deterministic


def test_uniform_curve_mean_and_per_image():
    r = result()
    u = B.uniform_curve(r, "balanced")
    assert u["steps"] == [4.0, 5.0, 6.0, 10.0, 11.0, 20.0]
    np.testing.assert_allclose(u["lpips"], [0.305 - 0.01 * n for n in (4, 5, 6, 10, 11, 20)])
    assert B.uniform_curve(r)["psnr_y"][0] == pytest.approx(31.5 - 0.4)  # primary family: linspace
    for n, run in r["uniform"]["linspace"].items():
        run["images"] = [{"image": "moon", "steps_per_tile": [int(n)] * 9, "psnr_y": 40.0 - int(n), "ssim_y": 0.9,
                          "lpips": 0.3}]
    per = B.uniform_curve(r, "linspace", "moon")
    assert per["steps"] == [4.0, 5.0, 6.0, 10.0, 11.0, 20.0] and per["psnr_y"][-1] == 20.0


def test_plot_speed_quality_needs_a_sweep():
    with pytest.raises(ValueError, match="no sweep points"):
        plot_speed_quality(result(sweep=False))


def test_save_curve_figure(tmp_path):
    save_curve_figure(result(), str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------- CLI
def test_parser_accepts_adaptive_options():
    p = benchmarks.build_parser()
    a = p.parse_args(["adaptive", "--no-sweep", "--no-moon", "--n-max", "8", "--n-min", "2", "--complexity", "sobel",
                      "--normalize", "image", "--mapping", "threshold", "--epsilon", "0.01", "--patience", "3",
                      "--warmup", "5", "--seed", "2", "--figure", "f.png", "--json", "r.json", "--device", "cpu",
                      "--precision", "fp32"])
    assert (a.which, a.no_sweep, a.no_moon, a.n_max, a.n_min, a.estimator) == ("adaptive", True, True, 8, 2, "sobel")
    assert (a.normalize, a.mapping, a.epsilon, a.patience, a.warmup, a.seed) == ("image", "threshold", 0.01, 3, 5, 2)
    assert (a.figure, a.json, a.device, a.precision) == ("f.png", "r.json", "cpu", "fp32")
    from adasr.benchmarks.adaptive import config_from_args

    assert config_from_args(a) == AdaptiveConfig(n_max=8, n_min=2, estimator="sobel", normalize="image",
                                                 mapping="threshold", epsilon=0.01, patience=3, warmup=5)
    d = p.parse_args(["adaptive"])
    assert (d.no_sweep, d.no_moon, d.figure, d.json, d.schedules) == (False, False, None, None, None)
    assert p.parse_args(["adaptive", "--schedules", "balanced,linspace"]).schedules == ["balanced", "linspace"]
    assert config_from_args(d) == AdaptiveConfig()  # the defaults are the dataclass's, not repeated here
    with pytest.raises(SystemExit):
        p.parse_args(["adaptive", "--n-min", "0"])
    with pytest.raises(SystemExit):
        p.parse_args(["adaptive", "--normalize", "global"])


def test_bench_adaptive_cli_wiring(monkeypatch, capsys, tmp_path):
    """`adasr bench adaptive …` → adaptive(config=…, sweep=…, moon=…), the table printed, JSON and figure written
    (the figure by the runner, after the benchmark returned its data)."""
    seen = {}

    def fake(**kw):
        seen.update(kw)
        return result(sweep=True, with_moon=False)

    monkeypatch.setattr(B, "adaptive", fake)
    code = benchmarks.main(["adaptive", "--no-moon", "--n-max", "8", "--n-min", "2", "--epsilon", "0.01",
                            "--json", str(tmp_path / "r.json"), "--figure", str(tmp_path / "fig.png"),
                            "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert seen["config"] == AdaptiveConfig(n_max=8, n_min=2, epsilon=0.01)
    assert (seen["sweep"], seen["moon"], seen["device"], seen["seed"]) == (True, False, "cpu", 0)
    assert seen["schedules"] is None  # adaptive() then runs DEFAULT_FAMILIES
    assert out.strip() == B.format_adaptive(result(sweep=True, with_moon=False))
    assert json.loads((tmp_path / "r.json").read_text())["arms"]["allocation"]["tile_evaluations"] == 123
    assert (tmp_path / "fig.png").exists()
    code = benchmarks.main(["adaptive", "--no-sweep", "--no-moon", "--schedules", "linspace, karras"])
    capsys.readouterr()
    assert code == 0 and (seen["sweep"], seen["moon"]) == (False, False) and seen["config"] == AdaptiveConfig()
    assert seen["schedules"] == ["linspace", "karras"]


def test_replot_reads_the_json_and_measures_nothing(monkeypatch, capsys, tmp_path):
    """`adasr bench adaptive --replot FILE --figure PNG`: the table and figure from the file, no benchmark run."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result()))

    def boom(**kw):
        raise AssertionError("--replot must not run the benchmark")

    monkeypatch.setattr(B, "adaptive", boom)
    code = benchmarks.main(["adaptive", "--replot", str(path), "--figure", str(tmp_path / "fig.png")])
    assert code == 0
    assert capsys.readouterr().out.strip() == B.format_adaptive(json.loads(path.read_text()))
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert benchmarks.build_parser().parse_args(["adaptive"]).replot is None


def test_quality_keeps_the_images_it_measured(monkeypatch, make_tiny_model, one_thread):
    """``quality(keep_images=True)``: the returned SR images are the ones in the table (PSNR recomputed from them)."""
    from adasr import upscaling
    from adasr.data import heldout_crops
    from adasr.metrics import psnr_y

    small = {n: c for n, c in list(heldout_crops(32).items())[:2]}
    monkeypatch.setattr(Q, "heldout_crops", lambda crop: small)
    loaded: list[str] = []
    monkeypatch.setattr(upscaling, "load_pretrained",
                        lambda name=None, device=None: (loaded.append(name), make_tiny_model())[1])
    q = Q.quality(steps=2, schedule="linspace", tile=16, overlap=4, precision="fp32", keep_images=True)
    assert set(q["sr_images"]) == set(small)
    assert loaded == ["sr_x4"] and q["model"] == "sr_x4"  # the default weights unless model= names others
    for row in q["images"]:
        img = q["sr_images"][row["image"]]
        assert img.dtype == np.uint8 and img.shape == small[row["image"]].shape
        assert psnr_y(img, small[row["image"]], shave=4) == pytest.approx(row["adasr"]["psnr_y"], abs=1e-9)
    q = Q.quality(steps=1, schedule="linspace", tile=16, overlap=4, precision="fp32", legacy=False,
                  model="sr_x4_sparse15")
    assert "sr_images" not in q and q["model"] == "sr_x4_sparse15" and loaded[-1] == "sr_x4_sparse15"


# ------------------------------------------------------------------------------------------------ end to end, tiny
def fake_presets_dict() -> dict:
    """Every preset name as one power family (t_end 20, ρ 2) with η = 0.1·N for N = 1 … 4 (η 0.4 beyond), except
    ``fidelity``: that power family at η 0 for N ≤ 2, ``linspace`` η 0 from N = 3 on (as the shipped presets are
    from N = 10 on)."""
    from adasr.diffusion.timesteps import SCHEDULE_PRESETS, PowerSchedule, PresetSchedule, spaced_timesteps

    pts = {n: {"family": "power", "params": {"t_end": 20, "rho": 2.0}, "eta": round(0.1 * n, 1),
               "timesteps": PowerSchedule(20, 2.0).timesteps(n)} for n in range(1, 5)}
    out = {name: PresetSchedule(name, pts) for name in SCHEDULE_PRESETS}
    fid = {n: ({**pts[n], "eta": 0.0} if n <= 2 else
               {"family": "linspace", "params": {}, "eta": 0.0, "timesteps": spaced_timesteps(n)}) for n in pts}
    out["fidelity"] = PresetSchedule("fidelity", fid)
    return out


def test_run_signature_tells_identical_runs():
    from adasr.diffusion.timesteps import SpacingSchedule

    presets = fake_presets_dict()
    lin, fid, bal = SpacingSchedule("linspace"), presets["fidelity"], presets["balanced"]
    cfg = AdaptiveConfig(n_max=4, n_min=3)
    sig = B.run_signature
    assert sig("uniform", cfg, lin) == sig("uniform", cfg, fid)  # N = 4: linspace η 0 in both
    assert sig("early-exit", cfg, lin) == sig("early-exit", cfg, fid)
    assert sig("allocation", cfg, lin) == sig("allocation", cfg, fid)  # N_p ∈ {3, 4}: the same lists
    assert sig("allocation", cfg.with_(n_min=2), lin) != sig("allocation", cfg.with_(n_min=2), fid)  # N_p = 2 differs
    assert sig("uniform", cfg, lin) != sig("uniform", cfg, bal)  # other lists, η 0.4
    assert sig("uniform", cfg, lin) != sig("early-exit", cfg, lin)
    assert sig("early-exit", cfg, lin) != sig("early-exit", cfg.with_(epsilon=0.01), lin)


def test_adaptive_end_to_end_on_two_families(monkeypatch, make_tiny_model, one_thread):
    """adaptive() on a tiny model and one 32² crop (one tile), linspace and a fake preset family: every arm runs on
    both families (policies at the family's η of N_max, uniform runs at the family's η of their N), every uniform
    budget on both, the top-level keys are linspace's, and the result is JSON and prints."""
    from adasr import registry, upscaling
    from adasr.data import heldout_crops

    small = {"camera": heldout_crops(32)["camera"]}
    monkeypatch.setattr(B, "_images", lambda crop: small)
    loaded: list[str] = []
    monkeypatch.setattr(upscaling, "load_pretrained",
                        lambda name=None, device=None: (loaded.append(name), make_tiny_model())[1])
    presets = fake_presets_dict()
    monkeypatch.setattr(registry, "load_schedule_presets", lambda *a, **k: presets)
    cfg = AdaptiveConfig(n_max=3, n_min=1, normalize="image", epsilon=0.5, warmup=1, patience=1)
    lines: list[str] = []
    r = B.adaptive(config=cfg, schedules=["linspace", "balanced"], sweep=False, moon=False, precision="fp32",
                   device="cpu", log=lines.append, model_name="sr_x4_ft")
    assert loaded == ["sr_x4_ft"] and r["model"] == "sr_x4_ft"          # --model: the weights sampled, recorded
    assert r["schedules"] == ["linspace", "balanced"] and r["primary_schedule"] == "linspace"
    assert set(r["families"]) == {"linspace", "balanced"} and "sweep" not in r and "moon" not in r
    for k in ("arms", "equal_budget_controls", "comparisons"):
        assert r[k] is r["families"]["linspace"][k]
    bal = r["families"]["balanced"]
    assert bal["schedule"]["name"] == "balanced" and bal["schedule"]["eta"] == pytest.approx(0.3)
    assert bal["schedule"]["timesteps"] == presets["balanced"].timesteps(3)
    for kind, a in bal["arms"].items():
        assert a["schedule"]["name"] == "balanced" and a["eta"] == pytest.approx(0.3), kind  # η of N_max
    for kind, a in r["arms"].items():
        assert a["schedule"]["name"] == "linspace" and a["eta"] == 0.0, kind
    budgets = B.uniform_budgets({f: b["arms"] for f, b in r["families"].items()}, 3)
    for f in ("linspace", "balanced"):
        assert sorted(int(n) for n in r["uniform"][f]) == budgets
        for n, u in r["uniform"][f].items():
            assert u["mean_steps_per_tile"] == int(n) and u["schedule"]["timesteps"] == (
                presets["balanced"].timesteps(int(n)) if f == "balanced" else
                B.resolve_families(["linspace"])["linspace"].timesteps(int(n)))
            assert u["eta"] == pytest.approx(0.1 * int(n) if f == "balanced" else 0.0)
        for kind in POLICIES[1:]:
            c = r["families"][f]["comparisons"][kind]
            assert set(c) >= {"eval_ratio", "targets_met", "vs_equal_budget", "vs_best_uniform"}
            assert set(r["families"][f]["cross_schedule_controls"][kind]["by_schedule"]) == {"linspace", "balanced"}
    assert any(line.startswith("[balanced] arm 4/4 ") for line in lines)
    assert any(line.startswith("[linspace] uniform control ") for line in lines) or budgets == [3]
    json.dumps(r)
    text = B.format_adaptive(r)
    assert "== schedule balanced ==" in text and "against the best uniform schedule" in text


def test_adaptive_runs_identical_runs_once(monkeypatch, make_tiny_model, one_thread):
    """A family whose lists and η equal linspace's at some N (fake 'fidelity': from N = 3 on) reuses linspace's
    runs there — uniform N = 3, early exit at N_max = 3, the Moon's uniform N_max — marked same_as; the others run."""
    from adasr import registry, upscaling
    from adasr.data import heldout_crops

    crop = heldout_crops(32)["camera"]
    monkeypatch.setattr(B, "_images", lambda c: {"camera": crop})
    monkeypatch.setattr("adasr.data.load_skimage", lambda name: crop)  # the Moon case, small
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
    presets = fake_presets_dict()
    monkeypatch.setattr(registry, "load_schedule_presets", lambda *a, **k: presets)
    calls: list[tuple] = []
    real = B._Runner.run
    monkeypatch.setattr(B._Runner, "run", lambda self, kind, config, label=None, schedule="linspace": calls.append(
        (tuple(self.images), kind, config.n_max, getattr(schedule, "name", schedule)))
        or real(self, kind, config, label, schedule))
    cfg = AdaptiveConfig(n_max=3, n_min=1, normalize="image", epsilon=0.5, warmup=1, patience=1)
    r = B.adaptive(config=cfg, schedules=["linspace", "fidelity"], sweep=False, moon=True, precision="fp32",
                   device="cpu")
    fid = r["families"]["fidelity"]
    assert fid["arms"]["uniform"]["same_as"] == "linspace" and fid["arms"]["early-exit"]["same_as"] == "linspace"
    assert "same_as" not in fid["arms"]["allocation"] and "same_as" not in fid["arms"]["adasr"]  # N_p = 2 differs
    assert fid["arms"]["uniform"]["arm"] == "uniform N=3" and fid["arms"]["uniform"]["psnr_y"] == r["arms"][
        "uniform"]["psnr_y"]
    assert fid["moon"]["baseline"]["same_as"] == "linspace" and "same_as" not in fid["moon"]["adasr"]
    assert not {("uniform", 3, "fidelity"), ("early-exit", 3, "fidelity")} & {c[1:] for c in calls}
    assert len(calls) == len(set(calls))  # nothing measured twice
    for n, u in r["uniform"]["fidelity"].items():
        assert (u.get("same_as") == "linspace") == (int(n) != 2), n  # N = 1 ([999], η 0) and 3 as linspace
    assert "  = linspace" in B.format_adaptive(r)


def test_compare_models_puts_models_arms_edsr_and_bicubic_in_one_table(monkeypatch, make_tiny_model, one_thread):
    """``bench quality --models``: every model at the default and DDIM-10 arms, beside bicubic and EDSR, on the crops
    and the whole image; the mean is over the crops only, and each entry is the metric of that arm's image."""
    import torch

    import adasr.benchmarks.adadiffsr as A
    import adasr.models.edsr as E
    from adasr import upscaling
    from adasr.data import heldout_crops
    from adasr.models.edsr import EDSR, EDSRConfig

    small = {n: c for n, c in list(heldout_crops(32).items())[:2]}
    whole = np.ascontiguousarray(next(iter(heldout_crops(48).values())))
    monkeypatch.setattr(Q, "heldout_crops", lambda crop: small)
    monkeypatch.setattr(A, "bench_images", lambda crop, full: {**small, **({f"{full}_48": whole} if full else {})})
    loaded: list[str] = []
    nets = {"a": make_tiny_model(), "b": make_tiny_model()}
    with torch.no_grad():
        for p in nets["b"].parameters():
            p.add_(0.01)  # another set of weights
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: (loaded.append(name), nets[name])[1])
    torch.manual_seed(0)
    edsr = EDSR(EDSRConfig(n_resblocks=1, n_feats=4)).eval()
    monkeypatch.setattr(E, "load_edsr", lambda name=None, device=None: edsr)
    r = Q.compare_models(["a", "b"], arms=(("two", 2, "linspace"), ("default", None, "default")), full="img",
                         precision="fp32", tile=16, overlap=4)
    assert loaded == ["a", "b"]
    assert r["keys"] == ["bicubic", "edsr_x4", "a two", "a default", "b two", "b default"]
    assert [row["image"] for row in r["images"]] == [*small, "img_48"] and r["full_row"]["image"] == "img_48"
    for k in r["keys"]:
        assert r["mean"][k]["lpips"] == pytest.approx(np.mean([row[k]["lpips"] for row in r["images"][:2]]))
    assert r["arms"]["a two"]["schedule"]["timesteps"] == [999, 0] and r["arms"]["a default"]["steps"] == 2
    assert r["images"][0]["a two"]["psnr_y"] != r["images"][0]["b two"]["psnr_y"]  # the models differ
    assert "tile_evaluations" in r["images"][2]["a two"] and "tile_evaluations" not in r["images"][2]["edsr_x4"]
    text = Q.format_result(r)
    assert "mean (crops)" in text and "b default" in text and text.count("\n") > 20
    json.dumps(r)  # what --json writes


def test_compare_models_runs_a_model_at_its_own_schedule_search(monkeypatch, make_tiny_model, one_thread, tmp_path):
    """``--presets MODEL=FILE``: that model also runs at FILE's balanced preset of the default N (its timesteps and
    η), as arm ``own-balanced-N``; a file of another model, a missing preset or a bad spec is refused by name."""
    import adasr.benchmarks.adadiffsr as A
    from adasr import upscaling
    from adasr.data import heldout_crops
    from adasr.defaults import DEFAULT_STEPS

    small = {n: c for n, c in list(heldout_crops(32).items())[:1]}
    monkeypatch.setattr(Q, "heldout_crops", lambda crop: small)
    monkeypatch.setattr(A, "bench_images", lambda crop, full: dict(small))
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
    point = {"timesteps": [999, 10], "eta": 1.0, "family": "power", "params": {"t_end": 10, "rho": 1.0}}
    search = tmp_path / "s.json"
    search.write_text(json.dumps({"model": "b", "presets": {"balanced": {str(DEFAULT_STEPS): point}}}))
    r = Q.compare_models(["a", "b"], arms=(("two", 2, "linspace"),), regression=None, full=None, precision="fp32",
                         tile=16, overlap=4, presets=Q.parse_presets([f"b={search}"], ["a", "b"]))
    own = f"b own-balanced-{DEFAULT_STEPS}"
    assert r["keys"] == ["bicubic", "a two", "b two", own] and r["presets"] == {"b": str(search)}
    assert r["arms"][own]["schedule"]["timesteps"] == [999, 10] and r["arms"][own]["eta"] == 1.0
    assert Q.own_preset(search, "balanced", DEFAULT_STEPS, model="b") == point
    with pytest.raises(ValueError, match="schedule search of 'b', not of 'a'"):
        Q.own_preset(search, "balanced", DEFAULT_STEPS, model="a")
    with pytest.raises(ValueError, match="no fidelity preset at N=2"):
        Q.own_preset(search, "fidelity", 2)
    for spec, message in (("b", "MODEL=FILE"), ("c=" + str(search), "not one of --models"),
                          ("b=" + str(tmp_path / "none.json"), "does not exist")):
        with pytest.raises(ValueError, match=message):
            Q.parse_presets([spec], ["a", "b"])
