"""``adasr bench reuse`` and ``adasr bench sparse``: the equal-cost arithmetic on synthetic results (wall-clock fit,
equivalent steps, the best uniform schedule at a cost, the target), the tables, and the sparse bench's pieces on a
tiny run (the measurements themselves are the benches' job)."""

from __future__ import annotations

import json

import pytest
import torch

from adasr.benchmarks import reuse as R
from adasr.benchmarks import sparse as S
from adasr.benchmarks.runner import BENCHMARKS

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py

CURVES = {"linspace": {"steps": [1.0, 2.0, 4.0, 8.0], "lpips": [0.30, 0.26, 0.22, 0.20],
                       "psnr_y": [31.0, 30.8, 30.4, 30.0], "ssim_y": [0.9, 0.89, 0.88, 0.87]},
          "balanced": {"steps": [1.0, 2.0, 3.0], "lpips": [0.30, 0.21, 0.23],
                       "psnr_y": [31.0, 30.9, 30.95], "ssim_y": [0.9, 0.9, 0.9]}}


def test_registered():
    assert BENCHMARKS["reuse"][0] == "adasr.benchmarks.reuse" and BENCHMARKS["sparse"][0] == "adasr.benchmarks.sparse"


def test_model_seconds_and_equivalent_steps_closed_form():
    per_mode = {"full": 0.1, "decoder": 0.05, "shallow": 0.02}
    assert R.model_seconds({"full": 10, "decoder": 4}, per_mode) == pytest.approx(1.2)
    arm = {"macs": 30 * 1000, "evaluations_by_mode": {"full": 20, "decoder": 10}}  # 10 tiles
    eq = R.equivalent_steps(arm, tiles=10, full_macs=1000, per_mode=per_mode)
    assert eq["macs"] == pytest.approx(3.0) and eq["wall"] == pytest.approx(2.5)


def test_mode_seconds_measures_every_mode(make_tiny_model):
    ms = R.mode_seconds(make_tiny_model(), precision="fp32", tile=16, batch=2, repeats=1)
    assert set(ms) == {"full", "decoder", "shallow"} and all(v > 0 for v in ms.values())


def test_best_uniform_takes_the_best_point_at_or_below_the_cost():
    # at 2.5 steps: linspace interpolates to 0.24, balanced to 0.22, but balanced at N = 2 (cheaper) has 0.21
    b = R.best_uniform(CURVES, 2.5)
    assert (b["family"], b["n"], b["lpips"], b["psnr_y"]) == ("balanced", 2.0, 0.21, 30.9)
    b = R.best_uniform(CURVES, 6.0)  # linspace at 6 interpolates to 0.21 — ties lose to the earlier candidate
    assert b["lpips"] == pytest.approx(0.21)
    assert R.best_uniform(CURVES, 1.0)["lpips"] == 0.30
    assert R.best_uniform(CURVES, 2.5, "psnr_y")["psnr_y"] == 31.0  # by PSNR: one step wins


def test_controls_and_the_target():
    per_mode = {"full": 0.1, "decoder": 0.05}
    plain = {"evaluations_by_mode": {"full": 40}, "seconds": 4.0, "lpips": 0.25, "psnr_y": 30.5}
    good = {"macs": 25 * 1000, "evaluations_by_mode": {"full": 20, "decoder": 10}, "seconds": 2.5, "lpips": 0.20,
            "psnr_y": 30.88}  # 2.5 steps of 10 tiles
    c = R.controls(good, CURVES, 10, 1000, per_mode, plain)
    assert c["control_wall"]["lpips"] == 0.21 and c["lpips_gap_wall"] == pytest.approx(-0.01)
    assert c["psnr_gap_wall"] == pytest.approx(-0.02) and c["speedup_vs_same_schedule"] == pytest.approx(1.6)
    assert c["measured_speedup"] == pytest.approx(1.6)
    assert c["target_met"]
    assert not R.controls({**good, "psnr_y": 30.8}, CURVES, 10, 1000, per_mode, plain)["target_met"]  # −0.1 dB
    slow = {**good, "evaluations_by_mode": {"full": 30, "decoder": 0}}  # 1.33×
    assert not R.controls(slow, CURVES, 10, 1000, per_mode, plain)["target_met"]
    assert not R.controls({**good, "lpips": 0.215}, CURVES, 10, 1000, per_mode, plain)["target_met"]


def test_arm_specs_skip_duplicate_key_sets():
    specs = R._arm_specs("balanced", 2, [2, 3, 4], anchor=False)
    assert specs == [dict(cache="encoder", key_steps="uniform", interval=2),
                     dict(cache="deepcache", key_steps="uniform", interval=2)]
    labels = [R._label("linspace", 10, s) for s in R._arm_specs("linspace", 10, [2, 3], anchor=True)]
    assert "linspace-10 encoder smfdm-K5" in labels and "linspace-10 encoder K2+noise" in labels
    assert "linspace-10 deepcache FD" in labels


def _tiny_run(tmp_path, name, **kw):
    from adasr.models.unet import UNetConfig
    from adasr.srmodel import SRDiffusionConfig
    from adasr.train import TrainConfig, train

    tiny = UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)
    cfg = TrainConfig(model=SRDiffusionConfig(unet=tiny), steps=6, batch_size=2, crop=16, warmup=2,
                      checkpoint_every=6, log_every=2, precision="fp32", **kw)
    train(cfg, tmp_path / name, progress=False)
    return tmp_path / name


def test_sparse_bench_pieces_on_tiny_runs(tmp_path):
    from adasr.acceleration.sparse import SparseConfig

    run = _tiny_run(tmp_path, "sp", sparse=SparseConfig(density=0.3, update_every=2))
    model = S.load_run(run, torch.device("cpu"))
    c = S.weight_census(model.unet)
    assert c["prunable_density"] == pytest.approx(0.3, abs=0.01) and c["nonzero"] < c["parameters"]
    log = S.training_log(run)
    assert log["steps"] == [2, 4, 6] and len(log["sparse_updates"]) == 2
    assert set(log["sparse_updates"][0]["layer_density"]) == set(c["layer_density"])
    sweep = S.layer_sweep(densities=(1.0, 0.1), channels=8, size=8, batch=1, repeats=1)
    assert [r["density"] for r in sweep] == [1.0, 0.1] and all(r["csr_s"] > 0 for r in sweep)
    with pytest.raises(FileNotFoundError, match="train it first"):
        S.load_run(tmp_path, torch.device("cpu"))


def test_tables_print(tmp_path):
    arm = {"family": "linspace", "n": 10, "cache": "encoder", "key_steps": "uniform", "interval": 2, "seconds": 5.0,
           "model_seconds": 4.0,
           "psnr_y": 30.9, "lpips": 0.2, "evaluations_by_mode": {"full": 5, "decoder": 5},
           "speedup_vs_same_schedule": 1.4, "equivalent_steps": {"wall": 6.0, "macs": 7.6},
           "control_wall": {"family": "balanced", "n": 2.0, "lpips": 0.21, "psnr_y": 31.0},
           "lpips_gap_wall": -0.01, "psnr_gap_wall": -0.1, "target_met": False}
    result = {"machine": {"cpu": "x"}, "precision": "fp32", "images": ["a"], "tiles": 9, "tile": 128,
              "macs_per_tile_evaluation": {"full": 10, "decoder": 5, "shallow": 2},
              "seconds_per_evaluation": {"full": 0.1, "decoder": 0.05, "shallow": 0.02}, "full_seconds_fp32": 0.2,
              "mode_share": {"full": 1.0, "decoder": 0.5, "shallow": 0.2}, "curves": CURVES | {},
              "arms": [arm], "parallel": [], "stack": [], "composition": {}, "smfdm_headline": None,
              "targets_met": []}
    for c in result["curves"].values():
        c["model_seconds"] = [1.0] * len(c["steps"])
    text = R.format_result(result)
    assert "linspace-10 encoder K2" in text and "target met by 0 of 1 arms" in text
    json.dumps(result)
