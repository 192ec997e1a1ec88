"""``adasr bench adadiffsr``'s arithmetic: equal-budget controls, the oracle share, the targets and the table, on a
synthetic result (the measurement itself is the bench's job)."""

from __future__ import annotations

import pytest

from adasr.benchmarks import adadiffsr as B
from adasr.benchmarks.runner import BENCHMARKS


def _oracle():
    uniform = {"linspace": {"steps": [1.0, 2.0, 4.0, 8.0], "lpips": [0.30, 0.26, 0.22, 0.20],
                            "psnr_y": [31.0, 30.8, 30.4, 30.0], "ssim_y": [0.9, 0.89, 0.88, 0.87]},
               "balanced": {"steps": [1.0, 2.0, 4.0], "lpips": [0.30, 0.22, 0.21],
                            "psnr_y": [31.0, 30.9, 30.5], "ssim_y": [0.9, 0.9, 0.89]}}
    points = [{"budget": b, "feasible": True, "mean_steps": b, "lpips": l, "psnr_y": 30.5, "ssim_y": 0.88}
              for b, l in ((2.0, 0.21), (4.0, 0.18), (8.0, 0.17))]
    return {"mean": {"uniform": uniform, "oracle": points, "headroom": []}}


def test_controls_interpolate_each_family_and_the_oracle_at_the_arms_budget():
    arm = {"mean_steps_per_tile": 3.0, "lpips": 0.19, "psnr_y": 30.55}
    c = B.equal_budget_controls(arm, _oracle())
    assert c["families"]["linspace"]["lpips"] == pytest.approx(0.24)  # halfway between N = 2 and 4
    assert c["families"]["balanced"]["lpips"] == pytest.approx(0.215)
    assert c["oracle"]["lpips"] == pytest.approx(0.195)
    assert c["gap_lpips"]["balanced"] == pytest.approx(0.19 - 0.215)
    # the oracle gains 0.02 over the best uniform (0.215), the arm 0.025: a share above 1
    assert c["oracle_gain_lpips"] == pytest.approx(0.02) and c["oracle_share"] == pytest.approx(1.25)
    assert c["beats_both_lpips"] and c["psnr_ok"] is False  # 30.55 is 0.15 dB below balanced's 30.7
    assert c["gap_psnr_db"]["balanced"] == pytest.approx(-0.15)


def test_the_target_needs_both_controls_psnr_half_the_oracle_gain_and_the_budget_range():
    good = {"mean_steps_per_tile": 3.0, "lpips": 0.19, "psnr_y": 30.8}
    assert B.equal_budget_controls(good, _oracle())["meets_target"]
    worse_lpips = {**good, "lpips": 0.22}  # loses to balanced
    assert not B.equal_budget_controls(worse_lpips, _oracle())["meets_target"]
    small_share = {**good, "lpips": 0.212}  # beats both, but 0.003 of the oracle's 0.02
    c = B.equal_budget_controls(small_share, _oracle())
    assert c["beats_both_lpips"] and not c["meets_target"]
    out_of_range = {**good, "mean_steps_per_tile": 2.0, "lpips": 0.19}
    assert not B.equal_budget_controls(out_of_range, _oracle())["meets_target"]


def test_summary_sums_cost_averages_quality_and_measures_the_spread():
    rows = [{"tiles": 9, "tile_evaluations": 27, "seconds": 1.0, "psnr_y": 30.0, "lpips": 0.2, "ssim_y": 0.8,
             "steps_per_tile": [3] * 9, "macs": 10, "unet_macs": 9, "signal_macs": 1},
            {"tiles": 25, "tile_evaluations": 100, "seconds": 2.0, "psnr_y": 28.0, "lpips": 0.1, "ssim_y": 0.7,
             "steps_per_tile": [4] * 24 + [4 + 3], "macs": 20, "unet_macs": 18, "signal_macs": 2}]
    s = B.summarise(rows)
    assert s["tile_evaluations"] == 127 and s["mean_steps_per_tile"] == pytest.approx(127 / 34)
    assert s["psnr_y"] == pytest.approx(29.0) and s["lpips"] == pytest.approx(0.15) and s["seconds"] == 3.0
    assert (s["steps_min"], s["steps_max"]) == (3, 7) and s["macs"] == 30


def test_format_result_prints_every_section():
    arm = {"arm": "dtss-regressor/linspace/N=8", "mean_steps_per_tile": 3.0, "steps_min": 3, "steps_max": 3,
           "seconds": 1.0, "psnr_y": 30.6, "lpips": 0.19, "brisque": 30.0, "kind": "dtss", "signal": "regressor"}
    arm["controls"] = B.equal_budget_controls(arm, _oracle())
    o = _oracle()
    o["mean"]["headroom"] = [{"budget": 2.0, "lpips_diff": -0.01, "psnr_y_diff": -0.2, "cost_ratio": None,
                              "cost_ratio_at_least": 4.0}]
    result = {"images": ["a"], "seed": 0, "machine": {"precision": "bf16"}, "seconds": 1.0, "oracle": o,
              "arms": [arm], "ablations": {"codebook": [arm]}, "pfj": None,
              "signal_cost": {"regressor_macs_per_call": 1.4e7, "metrics_macs_per_call": 4e8,
                              "unet_macs_per_tile_evaluation": 6.4e9},
              "targets": {"needed": 2, "met": False, "points_meeting_target": [], "points_in_range": [arm["arm"]]}}
    text = B.format_result(result)
    for needle in ("Uniform curves", "Oracle frontier", "b=2", "not reached", "dtss-regressor/linspace/N=8",
                   "Ablation: codebook", "MMACs", "NOT met"):
        assert needle in text, needle
    assert "adadiffsr" in BENCHMARKS


def test_bench_context_loads_the_model_named_by_model(monkeypatch):
    """``--model NAME`` (adadiffsr, reuse): the weights loaded; without it the package default; the parser has it."""
    import argparse

    from adasr import upscaling
    from adasr.defaults import DEFAULT_MODEL

    loaded: list[str] = []
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: (loaded.append(name), name)[1])
    monkeypatch.setattr(B, "bench_images", lambda crop, full: {"a": crop, "full": full})
    p = argparse.ArgumentParser()
    B.add_arguments(p)
    for argv, want in (([], DEFAULT_MODEL), (["--model", "sr_x4_ft"], "sr_x4_ft")):
        args = p.parse_args([*argv, "--precision", "fp32", "--quick"])
        device, precision, model, images = B.bench_context(args)
        assert model == want and loaded[-1] == want and precision == "fp32" and images == {"a": 256, "full": None}
