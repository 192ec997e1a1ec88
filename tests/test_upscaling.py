"""adasr.upscaling and adasr.config: named policies against Policy objects, the one meaning of ``steps``, argument
errors that name the argument, the EDSR regression path, int8 / AdaBM quantization with FAB in the report, and the
configs the CLI is generated from."""

from __future__ import annotations

import argparse
from typing import get_args

import numpy as np
import pytest
import torch

from adasr.adaptive.policy import AdaptiveConfig, policy_for_model
from adasr.config import (DIFFUSION_ONLY, MODELS, POLICIES, ConfigError, UpscaleConfig, add_config_arguments,
                          given_values)
from adasr.cost import count_macs
from adasr.defaults import ADAPTIVE_STEPS, DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_STEPS, DEFAULT_TILE
from adasr.models.edsr import EDSR, EDSRConfig
from adasr.sampling.policies import UniformDDIM
from adasr.upscaling import (ADABM_EDSR, ADABM_UNET, UpscaleModel, load_model, prepare_upscale, resolve_policy,
                             upscale, upscale_tensor)

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py

X = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
TILING = dict(tile=16, overlap=4)  # 32×32 output: 9 tiles
EXIT = dict(epsilon=0.05, warmup=2, patience=1)


def tiny_edsr() -> EDSR:
    torch.manual_seed(0)
    return EDSR(EDSRConfig(n_resblocks=2, n_feats=8)).eval()


# ---------------------------------------------------------------------------------------- policies by name or object
@pytest.mark.parametrize("kind,config", [
    ("uniform", AdaptiveConfig()),
    ("allocation", AdaptiveConfig(n_min=1, normalize="image")),
    ("early-exit", AdaptiveConfig(**EXIT)),
    ("adasr", AdaptiveConfig(n_min=1, normalize="image", **EXIT)),
])
def test_named_policy_gives_the_image_of_the_equivalent_policy_object(make_tiny_model, kind, config):
    model = make_tiny_model()
    named = upscale_tensor(X, model=model, steps=4, policy=kind, adaptive=config, precision="fp32", **TILING)
    obj = policy_for_model(kind, config.with_(n_max=4), model, **TILING, schedule=DEFAULT_SCHEDULE)
    direct = upscale_tensor(X, model=model, policy=obj, precision="fp32", **TILING)
    assert torch.equal(named.image, direct.image)
    a, b = named.report, direct.report
    assert a.policy == b.policy == kind and a.steps == b.steps == 4
    assert a.steps_per_tile == b.steps_per_tile and a.tile_evaluations == sum(a.steps_per_tile)
    assert a.adaptive == (None if kind == "uniform" else config.with_(n_max=4).to_dict()) and b.adaptive is None


def test_steps_is_the_budget_of_the_busiest_tile_for_every_policy(make_tiny_model):
    """``steps`` = N: uniform runs N on every tile, allocation gives the most complex tile exactly N (per-image
    normalisation over the patches puts it at C = 1) and the simplest N_min, early exit never runs a tile past N."""
    model = make_tiny_model()
    runs = {kind: upscale_tensor(X, model=model, steps=5, policy=kind, precision="fp32", **TILING,
                                 adaptive=AdaptiveConfig(n_min=2, normalize="patches", epsilon=1e-12)).report
            for kind in POLICIES}
    assert runs["uniform"].steps_per_tile == [5] * 9
    assert max(runs["allocation"].steps_per_tile) == 5 and min(runs["allocation"].steps_per_tile) == 2
    assert runs["early-exit"].steps_per_tile == [5] * 9  # ε tiny: no tile stops early
    assert max(runs["adasr"].steps_per_tile) == 5
    assert max(runs["adadiffsr"].steps_per_tile) <= 5  # an always-growing tile takes N steps
    assert all(r.steps == 5 for r in runs.values())


def test_default_policy_is_uniform(make_tiny_model):
    model = make_tiny_model()
    images = [upscale_tensor(X, model=model, steps=3, precision="fp32", **TILING, **kw).image
              for kw in ({}, {"policy": "uniform"}, {"policy": UniformDDIM(3, DEFAULT_SCHEDULE)})]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])


def test_resolve_policy_keeps_objects_and_builds_names(make_tiny_model):
    model = make_tiny_model()
    p = UniformDDIM(7)
    assert resolve_policy(p, model, steps=3, adaptive=None, **TILING) is p
    assert resolve_policy(None, model, steps=3, adaptive=None, **TILING) == UniformDDIM(3, DEFAULT_SCHEDULE)
    assert resolve_policy(None, model, steps=3, adaptive=None, schedule="linspace", **TILING) == UniformDDIM(3)
    e = resolve_policy("early-exit", model, steps=6, adaptive=AdaptiveConfig(**EXIT), **TILING)
    assert e.name == "early-exit" and e.steps == 6 and e.rule.epsilon == 0.05


# ---------------------------------------------------------------------------------------------------- schedules
def test_schedule_knob_lists_and_eta_in_the_report(make_tiny_model):
    """``schedule=`` names the timesteps (an explicit list sets N), the report records them and the η used: a
    preset's own η unless ``eta`` is given, 0 for the others."""
    from adasr.diffusion.timesteps import get_schedule

    model = make_tiny_model()
    r = upscale_tensor(X, model=model, schedule="999,100,20", precision="fp32", **TILING)
    assert r.report.steps == 3 and r.report.steps_per_tile == [3] * 9 and r.report.eta == 0.0
    assert r.report.schedule == {"name": "999,100,20", "timesteps": [999, 100, 20]}
    assert {row["t"] for row in r.sample.trace} == {999, 100, 20}
    same = upscale_tensor(X, model=model, schedule=[999, 100, 20], steps=3, precision="fp32", **TILING)
    assert torch.equal(r.image, same.image)
    preset = get_schedule(DEFAULT_SCHEDULE)
    d = upscale_tensor(X, model=model, precision="fp32", **TILING).report
    assert d.steps == DEFAULT_STEPS and d.eta == preset.eta_for(DEFAULT_STEPS)
    assert d.schedule == preset.describe(DEFAULT_STEPS)
    assert upscale_tensor(X, model=model, eta=0.25, precision="fp32", **TILING).report.eta == 0.25
    lin = upscale_tensor(X, model=model, steps=4, schedule="linspace", precision="fp32", **TILING).report
    assert lin.schedule == {"name": "linspace", "timesteps": [999, 666, 333, 0]} and lin.eta == 0.0
    ee = upscale_tensor(X, model=model, steps=5, schedule="karras", policy="early-exit", precision="fp32",
                        adaptive=AdaptiveConfig(**EXIT), **TILING).report
    assert ee.schedule["name"] == "karras(rho=7,t_end=0)" and len(ee.schedule["timesteps"]) == 5


# ------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,message", [
    (dict(policy="fast"), "policy must be one of uniform, allocation, early-exit, adasr, adadiffsr, got 'fast'"),
    (dict(model="edsr"), "model must be one of sr_x4, sr_x4_ft, edsr_x4, sr_x4_sparse15 or a module, got 'edsr'"),
    (dict(quant="fp8"), "quant must be one of none, int8, adabm, got 'fp8'"),
    (dict(steps=0), "steps must be at least 1, got 0"),
    (dict(steps=2.5), "steps must be a whole number, got 2.5"),
    (dict(seed="x"), "seed must be a whole number, got 'x'"),
    (dict(tile=4, overlap=0), "tile must be at least 8, got 4"),
    (dict(tile=16, overlap=16), r"overlap \(16\) must be smaller than tile \(16\)"),
    (dict(eta=-1.0), r"eta must be at least 0.0, got -1.0"),
    (dict(eta=float("nan")), "eta must be a finite number, got nan"),
    (dict(precision="fp16"), "precision must be one of auto, fp32, bf16, got 'fp16'"),
    (dict(policy="allocation", steps=2), r"n_min \(3\) must not exceed steps \(2, which is N_max\)"),
    (dict(policy="adasr", adaptive=AdaptiveConfig(exit_mode="global")),
     "policy adasr stops tiles one by one; use exit_mode tile"),
    (dict(quant="int8"), r"quant int8 is not available for SRDiffusion \(real int8 kernels exist for EDSR"),
    (dict(quant="adabm", precision="bf16"), "precision bf16 is for the float diffusion model; SRDiffusion with quant"),
    (dict(policy=UniformDDIM(3), steps=4), r"steps \(4\) differs from the policy's own budget \(3\)"),
    (dict(policy=UniformDDIM(3), adaptive=AdaptiveConfig()), "adaptive configures a named policy"),
    (dict(policy=UniformDDIM(3), schedule="linspace"), "schedule configures a named policy"),
    (dict(schedule="cosine"), "schedule must be one of linspace, leading, trailing, karras, perceptual, balanced"),
    (dict(schedule="20,999"), "schedule must be one of .* an explicit schedule must descend strictly"),
    (dict(schedule="999,100,20", steps=4), r"steps \(4\) differs from the 3 timesteps of schedule"),
    (dict(schedule="999,20", policy="adasr"), "explicit schedule list cannot"),
    (dict(schedule="1200,20"), "schedule: the schedule 1200,20 starts at 1200, beyond the chain's 999"),
    (dict(schedule=3.0), "schedule must be a name, a list of timesteps or a Schedule"),
    (dict(eta=float("inf")), "eta must be a finite number, got inf"),
    (dict(seed=2**64), r"seed must be at most 18446744073709551615 \(2\*\*64 - 1, torch's largest seed\)"),
    (dict(seed=-1), "seed must be at least 0, got -1"),
    (dict(seed=float("nan")), "seed must be a whole number, got nan"),
    (dict(steps=1001), r"steps must be at most 1000 \(the model's T"),
    (dict(steps=999), "steps 999 does not fit schedule balanced: t_end=50 leaves no room for 999 distinct steps"),
    (dict(tile=9, overlap=0), r"tile must be a multiple of 2 \(the UNet halves the resolution 1 time\), got 9; "
                              "try 8 or 10"),
    (dict(tile=float("nan")), "tile must be a whole number, got nan"),
    (dict(overlap=-1), "overlap must be at least 0, got -1"),
    (dict(cache="encoder", cache_interval=0), "cache_interval must be at least 1, got 0"),
    (dict(device="mps"), "device must be cpu, cuda, cuda:N or auto"),
    (dict(device="meta"), "device must be cpu, cuda, cuda:N or auto"),
    (dict(adaptive=None, policy="early-exit", steps=4, eta=float("nan")), "eta must be a finite number, got nan"),
])
def test_bad_arguments_raise_value_error_naming_them(make_tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        upscale_tensor(X, **{"model": make_tiny_model(), **kwargs})


@pytest.mark.parametrize("kwargs", [dict(steps=10), dict(seed=1), dict(tile=64), dict(overlap=0), dict(eta=0.0),
                                    dict(policy="uniform"), dict(adaptive=AdaptiveConfig()),
                                    dict(policy=UniformDDIM(2))])
def test_regression_model_refuses_diffusion_arguments(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"^{name} applies to diffusion models only; EDSR is a regression CNN"):
        upscale_tensor(X, model=tiny_edsr(), **kwargs)
    with pytest.raises(ValueError, match="precision bf16 is for the float diffusion model; EDSR runs in fp32"):
        upscale_tensor(X, model=tiny_edsr(), precision="bf16")


def test_bad_images_raise_value_error(make_tiny_model):
    net = make_tiny_model()
    with pytest.raises(ValueError, match=r"the image is empty \(0×0 pixels\)"):
        upscale_tensor(torch.zeros(1, 3, 0, 0), model=net)
    with pytest.raises(ValueError, match=r"the image is empty \(5×0 pixels\)"):
        upscale_tensor(torch.zeros(1, 3, 5, 0), model=net)
    with pytest.raises(ValueError, match="expected a floating-point tensor in \\[-1, 1\\], got torch.uint8"):
        upscale_tensor(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), model=net)
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        upscale_tensor(np.zeros((1, 3, 4, 4), np.float32), model=net)
    with pytest.raises(ValueError, match="input contains NaN or infinite values"):
        upscale_tensor(torch.full((1, 3, 4, 4), float("nan")), model=net)
    with pytest.raises(ValueError, match=r"upscale got an empty image \(0, 0, 3\)"):
        upscale(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match=r"upscale got an empty image \(0, 7, 3\)"):
        upscale(np.zeros((0, 7, 3), np.uint8))


def test_the_smallest_images_upscale(make_tiny_model):
    net = make_tiny_model()
    assert upscale_tensor(torch.zeros(1, 3, 1, 1), model=net, steps=2).image.shape == (1, 3, 4, 4)
    assert upscale_tensor(torch.zeros(1, 3, 2, 3), model=net, steps=2).image.shape == (1, 3, 8, 12)


# --------------------------------------------------------------------------------------------------- regression
def test_regression_model_is_one_forward_pass():
    net = tiny_edsr()
    res = upscale_tensor(X, model=net)
    with torch.no_grad():
        assert torch.equal(res.image, net(X).clamp(-1, 1))
    r = res.report
    assert (r.steps, r.iterations, r.unet_calls, r.tile_evaluations, r.tiles, r.policy, r.seed) == (
        1, 1, 1, 1, 1, "none", None)
    assert (r.model, r.quant, r.fab, r.precision, res.sample) == ("EDSR", "none", None, "fp32", None)
    assert r.input_size == (8, 8) and r.output_size == r.tile_size == (32, 32) and r.steps_per_tile == [1]
    assert r.macs == count_macs(lambda: net(X)) > 0  # MACs per LR pixel × h·w is exact (fully convolutional)
    assert r.evaluations_by_mode == {"full": 1} and r.macs_by_mode == {"full": r.macs}
    job = prepare_upscale(X, model=net)
    assert torch.equal(job.run(observe=lambda s: pytest.fail("a regression model has no sampler states")).image,
                       res.image)


def test_shipped_edsr_int8_and_adabm_calibrated_on_the_training_photos():
    """Real int8 and AdaBM EDSR through upscale_tensor: the report names the model, the quantization and (AdaBM)
    the FAB; an UpscaleModel from load_model is reused as it is (calibration is deterministic)."""
    from adasr.data import downscale, heldout_crops, to_tensor

    lr = downscale(to_tensor(heldout_crops(64)["camera"]), 4)  # 16×16 of a held-out photo
    fp = upscale_tensor(lr, model="edsr_x4")
    q8 = upscale_tensor(lr, model="edsr_x4", quant="int8", device="cpu")
    ada = upscale_tensor(lr, model="edsr_x4", quant="adabm")
    assert (fp.report.model, fp.report.quant, fp.report.quantization) == ("edsr_x4", "none", None)
    assert q8.report.quant == "int8" and q8.report.fab is None and q8.report.macs == fp.report.macs > 0
    info = q8.report.quantization
    assert info["method"] == "int8" and info["engine"] and info["calibration"].startswith("64 LR patches 48²")
    assert ada.report.quant == "adabm" and ada.report.quantization["config"] == ADABM_EDSR.label
    assert ADABM_EDSR.min_bits <= ada.report.fab <= ADABM_EDSR.max_bits
    for q in (q8, ada):
        assert not torch.equal(q.image, fp.image)
        mse = float((q.image - fp.image).pow(2).mean())
        assert 10 * np.log10(4 / mse) > 25  # close to the float output (range 2 → peak² = 4)
    model = load_model("edsr_x4", "int8")
    assert isinstance(model, UpscaleModel) and model.quant == "int8"
    assert torch.equal(upscale_tensor(lr, model=model).image, q8.image)
    with pytest.raises(ValueError, match="this UpscaleModel is already int8"):
        upscale_tensor(lr, model=model, quant="adabm")


# ------------------------------------------------------------------------------------------------- diffusion AdaBM
def test_diffusion_adabm_calibrates_at_the_sampler_timesteps_and_reports_fab(make_tiny_model):
    from adasr.quant.adabm import AdaBM

    model = make_tiny_model()
    assert load_model(model, "adabm", steps=3, schedule="linspace").quantization["timesteps"] == [999, 500, 0]
    um = load_model(model, "adabm", steps=3)
    assert um.kind == "diffusion" and um.quant == "adabm" and isinstance(um.net.unet, AdaBM)
    assert not isinstance(model.unet, AdaBM)  # the original stays float
    assert um.quantization["timesteps"] == UniformDDIM(3, DEFAULT_SCHEDULE).timesteps(1000)
    assert um.quantization["config"] == ADABM_UNET.label
    fabs: list[float] = []
    job = prepare_upscale(X, model=um, steps=3, **TILING)
    res = job.run(observe=lambda state: fabs.append(um.adabm.fab()))  # one batch per iteration here
    r = res.report
    assert len(fabs) == 3 and r.fab == pytest.approx(float(np.mean(fabs)))  # the MAC-count forward is left out
    assert ADABM_UNET.min_bits <= r.fab <= ADABM_UNET.max_bits
    assert (r.model, r.quant, r.precision) == ("SRDiffusion", "adabm", "fp32")  # quantized models run fp32
    plain = upscale_tensor(X, model=model, steps=3, precision="fp32", **TILING)
    assert not torch.equal(res.image, plain.image) and r.tile_evaluations == plain.report.tile_evaluations


# ------------------------------------------------------------------------------------------------------- configs
def test_config_choices_match_the_library():
    from adasr.adaptive import allocation, complexity, early_exit
    from adasr.config import AdaptiveConfig as A
    from adasr.registry import entry

    meta = {f: A.__dataclass_fields__[f].metadata["choices"] for f in ("estimator", "mapping", "normalize",
                                                                        "exit_mode")}
    assert meta["estimator"] is complexity.ESTIMATORS and meta["mapping"] is allocation.MAPPINGS  # one home: adasr.config
    assert meta["normalize"] == complexity.NORMALIZATIONS == get_args(complexity.Normalization)
    assert meta["exit_mode"] == get_args(early_exit.ExitMode)
    assert {name: "regression" if entry(name)["config"].get("arch") == "edsr" else "diffusion"
            for name in MODELS} == MODELS
    assert DIFFUSION_ONLY == ("steps", "schedule", "seed", "eta", "tile", "overlap", "policy", "cache",
                              "cache_interval", "key_steps")
    from adasr.acceleration import reuse
    from adasr.config import UpscaleConfig as U

    assert U.__dataclass_fields__["key_steps"].metadata["choices"] is reuse.KEY_STEP_PRESETS
    assert U.__dataclass_fields__["cache"].metadata["choices"] == ("none", *reuse.CACHE_MODES)


def test_upscale_config_defaults_and_kwargs():
    c = UpscaleConfig()
    assert (c.model, c.quant, c.n_steps, c.tile, c.overlap, c.policy) == ("sr_x4", "none", DEFAULT_STEPS,
                                                                           DEFAULT_TILE, DEFAULT_OVERLAP, "uniform")
    assert (c.steps, c.eta, c.schedule) == (None, None, DEFAULT_SCHEDULE)  # resolved: n_steps, the schedule's η
    assert UpscaleConfig(policy="adasr").n_steps == ADAPTIVE_STEPS and UpscaleConfig(schedule="999,20").n_steps == 2
    # the cache's interval and key steps are passed only with a cache (the library refuses them without one)
    assert c.upscale_kwargs() == {k: v for k, v in c.to_dict().items() if k not in ("cache_interval", "key_steps")}
    assert UpscaleConfig(cache="encoder").upscale_kwargs() == UpscaleConfig(cache="encoder").to_dict()
    e = UpscaleConfig(model="edsr_x4", quant="int8")
    assert e.kind == "regression" and e.upscale_kwargs() == {"model": "edsr_x4", "quant": "int8", "device": "auto",
                                                             "precision": "auto", "deterministic": False}
    with pytest.raises(ConfigError) as info:
        UpscaleConfig(tile=32, overlap=40)
    assert str(info.value) == "overlap (40) must be smaller than tile (32); give a larger tile or a smaller overlap"
    assert info.value.render(lambda n: "--" + n) == ("--overlap (40) must be smaller than --tile (32); give a larger "
                                                     "--tile or a smaller --overlap")


def test_add_config_arguments_reads_the_metadata():
    p = argparse.ArgumentParser()
    add_config_arguments(p, UpscaleConfig)
    add_config_arguments(p, UpscaleConfig, group="adaptive")
    add_config_arguments(p, AdaptiveConfig)
    a = p.parse_args([])
    assert given_values(UpscaleConfig, a) == {} and given_values(AdaptiveConfig, a) == {}
    a = p.parse_args(["--steps", "7", "--complexity", "sobel", "--eta", "0.5", "--policy", "adasr"])
    assert given_values(UpscaleConfig, a) == {"steps": 7, "eta": 0.5, "policy": "adasr"}
    assert given_values(AdaptiveConfig, a) == {"estimator": "sobel"}
    text = " ".join(p.format_help().split())  # argparse wraps lines
    assert "--n-max" not in text and "(default: 0.002)" in text and "(default: sr_x4)" in text
    with pytest.raises(SystemExit):
        p.parse_args(["--tile", "4"])
