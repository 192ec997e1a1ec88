"""``adasr bench quant`` plumbing (the full run is minutes; its parts are checked here on small inputs or a tiny
diffusion model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasr.benchmarks import build_parser
from adasr.benchmarks import quant as QB
from adasr.benchmarks.quant import evaluate_sr, format_quant, latency
from adasr.data import downscale, heldout_crops, to_tensor, to_uint8
from adasr.metrics import psnr_y
from adasr.models.edsr import load_edsr
from adasr.quant.adabm import AdaBMConfig
from adasr.registry import entry
from adasr.upscaling import upscale_tensor


def test_shipped_edsr_reproduces_its_registry_metrics(one_thread):
    model = load_edsr()
    saved = entry("edsr_x4")["metrics_at_save"]["images"]
    for name, hr in heldout_crops(256).items():
        with torch.no_grad():
            sr = to_uint8(model.upscale(downscale(to_tensor(hr), 4)))
        # 1e-3 dB: a uint8 rounding flip of a few pixels (CPU kernel choice) moves PSNR by ~1e-6 dB; a changed model
        # or metric moves it by far more.
        assert psnr_y(sr, hr, shave=4) == pytest.approx(saved[name]["edsr"]["psnr_y"], abs=1e-3)


def test_evaluate_sr_against_direct_metrics():
    images = {"a": heldout_crops(64)["astronaut"]}
    r = evaluate_sr(lambda lr: torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest"), images)
    lr = downscale(to_tensor(images["a"]), 4)
    ref = psnr_y(to_uint8(torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")), images["a"], shave=4)
    assert r["images"]["a"]["psnr_y"] == pytest.approx(ref)
    assert r["mean"]["psnr_y"] == pytest.approx(ref)


def test_latency_interleaves_and_takes_medians():
    calls: list[str] = []
    t = latency({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then round-robin
    assert set(t) == {"a", "b"} and all(v >= 0 for v in t.values())


def test_format_quant_reports_targets():
    arm = {"mean": {"psnr_y": 30.0, "ssim_y": 0.9, "fab": 4.2}, "gbitops_128": 10.0,
           "gbitops_128_quantized_layers": 1.0, "calibration_seconds": 1.0, "finetune_seconds": 2.0}
    fp = {"mean": {"psnr_y": 30.1, "ssim_y": 0.91}, "fab": 32.0, "gbitops_128": 40.0,
          "gbitops_128_quantized_layers": 30.0}
    r = {"images": ["x"], "hr_size": 512, "arms": {"FP32": fp, "AdaBM b_base 4": arm}, "threads": 2, "seconds": 1.0,
         "targets": {"psnr_gap_db": 0.15, "fab": 4.5, "adabm_gap_db": 0.1, "adabm_fab": 4.2, "met": True}}
    text = format_quant(r)
    assert "-0.10" in text and "4.20" in text and ": met" in text


def test_cli_parses_bench_quant():
    a = build_parser().parse_args(["quant", "--no-unet", "--b-base", "6", "--calibration", "minmax", "--json", "x.json"])
    assert (a.which, a.b_base, a.no_unet, a.calibration, a.json) == ("quant", 6, True, "minmax", "x.json")
    assert (a.unet_steps, a.unet_schedule) == (None, None)  # the default sampler
    a = build_parser().parse_args(["quant", "--unet-steps", "10", "--unet-schedule", "linspace"])
    assert (a.unet_steps, a.unet_schedule) == (10, "linspace")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quant", "--calibration", "kl"])


def test_unet_arms_calibrate_at_the_timesteps_the_sampler_visits(monkeypatch, make_tiny_model, fake_presets,
                                                                 one_thread):
    """Regression: the UNet's bit mapping was calibrated at diffusers' ``leading`` timesteps (750, 500, 250, 0 for
    4 steps) while the sampler visited ``linspace`` (999, 666, 333, 0). The timesteps handed to
    diffusion_calibration_batches must be exactly those in the sampler's trace — now those of the default sampler
    (DEFAULT_STEPS of DEFAULT_SCHEDULE, its η), recorded in the result; FAB is collected per iteration."""
    from adasr.defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS
    from adasr.diffusion.timesteps import get_schedule
    from adasr.quant import adabm

    seen: list[list[int]] = []
    real = adabm.diffusion_calibration_batches

    def spy(model, hr, timesteps, **kw):
        seen.append([int(t) for t in timesteps])
        return real(model, hr, timesteps, **kw)

    monkeypatch.setattr(adabm, "diffusion_calibration_batches", spy)  # what unet_calibration_batches calls
    model = make_tiny_model()
    images = {"astronaut": heldout_crops(32)["astronaut"]}
    cfgs = [AdaBMConfig.fixed(8, 6, calibration="minmax", bac_steps=2, weight_init_steps=2),
            AdaBMConfig(w_bits=8, a_bits=4, calibration="minmax", bac_steps=2, weight_init_steps=2)]
    r = QB.unet_arms(None, cfgs, model=model, images=images, n_calib=2, calib_crop=32)
    _, rep, sample = upscale_tensor(downscale(to_tensor(images["astronaut"]), 4), model=model, precision="fp32")
    visited = sorted({row["t"] for row in sample.trace}, reverse=True)
    T = model.num_train_timesteps
    sched = fake_presets.get(DEFAULT_SCHEDULE) or get_schedule(DEFAULT_SCHEDULE)
    assert visited == sched.timesteps(DEFAULT_STEPS, T) == rep.schedule["timesteps"]
    assert seen == [visited, visited] and r["calibration_timesteps"] == visited
    assert r["steps"] == DEFAULT_STEPS and r["schedule"] == rep.schedule and r["schedule"]["name"] == DEFAULT_SCHEDULE
    assert r["eta"] == rep.eta == pytest.approx(sched.eta_for(DEFAULT_STEPS) or 0.0)
    assert list(r["arms"]) == ["FP32", "W8A6", "AdaBM W8 b_base 4"]
    assert r["arms"]["W8A6"]["images"]["astronaut"]["fab"] == 6.0  # fixed bits: every iteration's FAB is a_bits
    fab = r["arms"]["AdaBM W8 b_base 4"]["mean"]["fab"]
    assert np.isfinite(fab) and 3.0 <= fab <= 5.0  # b_base ± the image and layer terms
    assert "fab" not in r["arms"]["FP32"]["mean"]


def test_unet_arms_take_a_chosen_schedule(monkeypatch, make_tiny_model, one_thread):
    """An explicit schedule: its length is the steps, sampling and calibration visit it, η 0 (a list has none)."""
    from adasr.quant import adabm

    seen: list[list[int]] = []
    real = adabm.diffusion_calibration_batches
    monkeypatch.setattr(adabm, "diffusion_calibration_batches",
                        lambda model, hr, timesteps, **kw: seen.append(list(timesteps)) or real(model, hr, timesteps,
                                                                                                 **kw))
    images = {"camera": heldout_crops(32)["camera"]}
    cfg = AdaBMConfig.fixed(8, 6, calibration="minmax", bac_steps=2, weight_init_steps=2)
    r = QB.unet_arms(None, [cfg], schedule="999,500,20", model=make_tiny_model(), images=images, n_calib=1,
                     calib_crop=32)
    assert (r["steps"], r["schedule"], r["eta"]) == (3, {"name": "999,500,20", "timesteps": [999, 500, 20]}, 0.0)
    assert seen == [[999, 500, 20]] and r["calibration_timesteps"] == [999, 500, 20]


def test_quant_passes_the_unet_sampler_through(monkeypatch):
    """--unet-steps/--unet-schedule → quant(unet_steps=…, unet_schedule=…) (→ unet_arms); the UNet line of the
    table names the sampler, its η and timesteps."""
    seen = {}
    monkeypatch.setattr(QB, "quant", lambda **kw: seen.update(kw) or {})
    QB.run_args(build_parser().parse_args(["quant", "--unet-schedule", "balanced"]))
    assert (seen["unet_steps"], seen["unet_schedule"], seen["unet"]) == (None, "balanced", True)
    QB.run_args(build_parser().parse_args(["quant", "--unet-steps", "10", "--unet-schedule", "linspace"]))
    assert (seen["unet_steps"], seen["unet_schedule"]) == (10, "linspace")
    m = {"psnr_y": 30.0, "ssim_y": 0.9}
    u = {"psnr_y": 30.0, "lpips": 0.2}
    r = {"images": ["x"], "hr_size": 512, "threads": 2, "seconds": 1.0,
         "arms": {"FP32": {"mean": m, "fab": 32.0, "gbitops_128": 40.0, "gbitops_128_quantized_layers": 30.0}},
         "targets": {"psnr_gap_db": 0.15, "fab": 4.5, "adabm_gap_db": 0.1, "adabm_fab": 4.2, "met": True},
         "unet": {"steps": 4, "schedule": {"name": "balanced", "timesteps": [999, 455, 129, 20], "eta": 0.4},
                  "eta": 0.4, "arms": {"FP32": {"mean": u}, "W8A6": {"mean": {**u, "fab": 6.0}}}}}
    text = format_quant(r)
    assert ("diffusion UNet, per-tile bits (fake quantization), 4 steps balanced (η 0.4, timesteps "
            "[999, 455, 129, 20]), 256² crops, fp32") in text
    del r["unet"]["schedule"]  # a result from before the schedules
    assert "diffusion UNet, per-tile bits (fake quantization), DDIM-4, 256² crops" in format_quant(r)


def test_unet_calibration_timesteps_are_the_uniform_ddim_schedule(make_tiny_model, fake_presets):
    from adasr.defaults import DEFAULT_SCHEDULE
    from adasr.diffusion.timesteps import get_schedule

    model = make_tiny_model()
    assert QB.unet_calibration_timesteps(model, 10, "linspace") == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert QB.unet_calibration_timesteps(model, 1, "linspace") == [999]
    sched = fake_presets.get(DEFAULT_SCHEDULE) or get_schedule(DEFAULT_SCHEDULE)
    assert QB.unet_calibration_timesteps(model, 4) == sched.timesteps(4)  # default: the default sampler's schedule
