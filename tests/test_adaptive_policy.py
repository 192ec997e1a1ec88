"""adasr.adaptive.policy (make_policy, policy_for_model) and the adaptive options of ``adasr upscale``: option
validation (exit 2, one error line), the names and config the CLI hands to the library and the policy the library
builds from them, and one real run with a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adasr.defaults import DEFAULT_SCHEDULE
import torch
from PIL import Image

from adasr import cli
from adasr.adaptive import complexity as C
from adasr.adaptive.allocation import StepAllocation
from adasr.adaptive.early_exit import EarlyExit, EarlyExitRule
from adasr.adaptive.policy import POLICIES, AdaptiveConfig, make_policy, policy_for_model
from adasr.data import upscale_bicubic
from adasr.models.unet import UNetConfig
from adasr.sampling.policies import UniformDDIM
from adasr.sampling.tiles import TileGrid
from adasr.srmodel import SRDiffusion, SRDiffusionConfig

UNET = UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def tiny(residual: bool = True, scale: float = 2.5) -> SRDiffusion:
    torch.manual_seed(0)
    m = SRDiffusion(SRDiffusionConfig(unet=UNET, residual=residual, residual_scale=scale)).eval()
    m.unet.__dict__["_macs_per_mode"] = {((16, 16), "full"): 1}  # skip the (slow) MAC count (Denoiser.macs)
    return m


def fn(x: torch.Tensor) -> torch.Tensor:
    return C.gradient_map(x)


# ------------------------------------------------------------------------------------------------- make_policy
def test_config_defaults_and_helpers():
    c = AdaptiveConfig()
    assert (c.n_max, c.n_min, c.estimator, c.mapping, c.normalize) == (20, 3, "gradient", "linear", "calibrated")
    assert (c.epsilon, c.patience, c.warmup, c.exit_mode) == (0.002, 2, 4, "tile")
    d = c.with_(n_max=7, epsilon=0.01)
    assert (d.n_max, d.epsilon, d.n_min) == (7, 0.01, 3) and c.n_max == 20  # a copy
    assert d.to_dict() == {"n_max": 7, "n_min": 3, "estimator": "gradient", "mapping": "linear",
                           "normalize": "calibrated", "epsilon": 0.01, "patience": 2, "warmup": 4, "exit_mode": "tile",
                           "tau": 0.005, "gain": "regressor"}
    assert POLICIES == ("uniform", "allocation", "early-exit", "adasr", "adadiffsr")


CFG = AdaptiveConfig(n_max=12, n_min=2, estimator="sobel", mapping="threshold", normalize="patches", epsilon=0.004,
                     patience=3, warmup=5)


def test_make_policy_uniform():
    p = make_policy("uniform", CFG)
    assert p == UniformDDIM(12) and p.name == "uniform" and p.steps == 12


def test_make_policy_allocation_passes_everything_through():
    cal = C.Calibration("sobel", 0.1, 0.2)
    p = make_policy("allocation", CFG, calibration=cal, estimator_fn=fn)
    assert isinstance(p, StepAllocation) and p.name == "allocation"
    assert (p.n_min, p.n_max, p.estimator, p.mapping, p.normalize, p.calibration) == (2, 12, "sobel", "threshold",
                                                                                        "patches", cal)
    assert p.estimator_fn is fn and p.steps == 12


def test_make_policy_early_exit():
    p = make_policy("early-exit", CFG, value_range=5.0)
    assert isinstance(p, EarlyExit) and p.name == "early-exit"
    assert p.base == UniformDDIM(12) and p.rule == EarlyExitRule(0.004, 3, 5)
    assert p.mode == "tile" and p.value_range == 5.0 and p.steps == 12
    g = make_policy("early-exit", CFG.with_(exit_mode="global"))
    assert g.mode == "global" and g.value_range == 2.0


def test_make_policy_adasr_is_allocation_plus_early_exit():
    p = make_policy("adasr", CFG, value_range=3.0, estimator_fn=fn)
    assert isinstance(p, EarlyExit) and p.name == "adasr" and p.mode == "tile" and p.value_range == 3.0
    assert isinstance(p.base, StepAllocation) and (p.base.n_min, p.base.n_max, p.base.estimator) == (2, 12, "sobel")
    assert p.base.estimator_fn is fn and p.rule == EarlyExitRule(0.004, 3, 5) and p.steps == 12


def test_make_policy_errors():
    with pytest.raises(ValueError, match="unknown policy 'fast'"):
        make_policy("fast")
    with pytest.raises(ValueError, match="policy adasr stops tiles one by one; use exit_mode tile"):
        make_policy("adasr", AdaptiveConfig(exit_mode="global"))
    with pytest.raises(ValueError, match="epsilon must be positive, got 0"):
        make_policy("early-exit", AdaptiveConfig(epsilon=0))
    with pytest.raises(ValueError, match=r"n_min \(9\) must not exceed n_max \(4, which is N_max\)"):
        make_policy("allocation", AdaptiveConfig(n_min=9, n_max=4))
    with pytest.raises(ValueError, match="n_min must be at least 1, got 0"):
        AdaptiveConfig(n_min=0)
    with pytest.raises(ValueError, match="mapping must be one of linear, threshold, exponential, got 'cubic'"):
        AdaptiveConfig(mapping="cubic")
    with pytest.raises(ValueError, match="patience must be a whole number, got 1.5"):
        AdaptiveConfig(patience=1.5)
    assert make_policy("uniform", AdaptiveConfig(n_min=9, n_max=4)) == UniformDDIM(4)  # uniform ignores n_min


def test_make_policy_early_exit_ignores_n_min():
    p = make_policy("early-exit", AdaptiveConfig(n_max=2))  # n_min defaults to 3
    assert p.base == UniformDDIM(2)


# -------------------------------------------------------------------------------------------- policy_for_model
@pytest.fixture
def two_images(monkeypatch):
    """Replace the calibration set (17 training photos at 512²) by two tiny condition images."""
    g = torch.Generator().manual_seed(4)
    ims = [torch.rand(1, 3, 32, 32, generator=g) * 2 - 1, torch.rand(1, 3, 16, 48, generator=g) * 0.2]
    calls = []

    def fake(*a, **k):
        calls.append(1)
        return [im.clone() for im in ims]

    monkeypatch.setattr(C, "calibration_images", fake)
    return ims, calls


def test_policy_for_model_calibrates_and_sets_value_range(two_images):
    ims, calls = two_images
    model = tiny(scale=2.5)
    p = policy_for_model("adasr", AdaptiveConfig(n_max=6, n_min=2), model, tile=16, overlap=4)
    assert isinstance(p, EarlyExit) and p.value_range == pytest.approx(5.0)  # 2·s
    cal = p.base.calibration
    assert calls and cal is not None and cal.estimator == "gradient" and cal.percentiles == (10.0, 90.0)
    vals = [C.gradient_map(im[:, :, t : t + 16, l : l + 16]).mean().item()
            for im in ims for t, l in TileGrid.cover(im.shape[-2], im.shape[-1], 16, 4).positions]
    assert cal.count == len(vals) == 9 + 4
    assert (cal.low, cal.high) == pytest.approx(tuple(np.percentile(vals, [10, 90])), rel=1e-6)
    tiles = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(p.base.complexity(tiles), cal.scale(C.gradient_map(tiles).mean(dim=(1, 2, 3))))
    alloc = policy_for_model("allocation", AdaptiveConfig(n_max=6, n_min=2), model, tile=16, overlap=4)
    assert alloc.calibration == cal


def test_policy_for_model_without_calibration_step(two_images, monkeypatch):
    _, calls = two_images
    model = tiny(scale=2.5)
    given = C.Calibration("gradient", 0.0, 0.1)
    p = policy_for_model("allocation", AdaptiveConfig(), model, tile=16, overlap=4, calibration=given)
    assert p.calibration is given and not calls
    p = policy_for_model("allocation", AdaptiveConfig(normalize="image"), model, tile=16, overlap=4)
    assert p.calibration is None and not calls
    p = policy_for_model("early-exit", AdaptiveConfig(), model, tile=16, overlap=4)
    assert p.value_range == pytest.approx(5.0) and not calls  # early exit needs no complexity
    p = policy_for_model("early-exit", AdaptiveConfig(), tiny(residual=False), tile=16, overlap=4)
    assert p.value_range == 2.0  # not residual: the image range
    assert policy_for_model("uniform", AdaptiveConfig(n_max=5), model, tile=16, overlap=4) == UniformDDIM(5)


# ------------------------------------------------------------------------------------------------------- CLI
def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def save_rgb(path: Path, h: int = 8, w: int = 8) -> Path:
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def fake_upscaler(monkeypatch):
    """upscale_tensor → bicubic ×4, recording what the CLI passed and the policy the library builds from it
    (:func:`adasr.upscaling.resolve_policy` with a tiny random model, scale 2)."""
    import adasr.upscaling as up

    calls: list[dict] = []
    model = tiny(scale=2.0)

    class Report:
        steps, tile_evaluations, tiles = 0, 0, 1

        def to_dict(self):
            return {"steps": 0, "tile_evaluations": 0, "tiles": 1, "policy": "stand-in"}

    def fake(x, **kw):
        from adasr.config import UpscaleConfig

        steps = UpscaleConfig(policy=kw["policy"], schedule=kw["schedule"], steps=kw["steps"]).n_steps
        built = up.resolve_policy(kw["policy"], model, steps=steps, adaptive=kw.get("adaptive"),
                                  tile=kw["tile"], overlap=kw["overlap"], schedule=kw["schedule"])
        calls.append({**kw, "built": built})
        return upscale_bicubic(x), Report(), None

    monkeypatch.setattr(up, "upscale_tensor", fake)
    return calls


def assert_usage_error(code: int, err: str, message: str) -> None:
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    # argparse's own checks name the subcommand's prog ("adasr upscale"), the cross-option checks the top level's
    assert errors in ([f"adasr: error: {message}"], [f"adasr upscale: error: {message}"]), err
    assert "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--policy", "adasr", "--steps", "4", "--n-min", "5"], "--n-min (5) must not exceed --steps (4, which is N_max)"),
    (["--policy", "allocation", "--steps", "2"], "--n-min (3) must not exceed --steps (2, which is N_max)"),
    (["--policy", "early-exit", "--epsilon", "0"], "--epsilon must be positive, got 0.0"),
    (["--policy", "adasr", "--epsilon", "-0.5"], "--epsilon must be positive, got -0.5"),
    (["--policy", "adasr", "--exit-mode", "global"],
     "--policy adasr stops tiles one by one; use --exit-mode tile (or --policy early-exit)"),
    (["--policy", "adasr", "--n-min", "0"], "argument --n-min: must be at least 1, got 0"),
    (["--policy", "early-exit", "--patience", "0"], "argument --patience: must be at least 1, got 0"),
    (["--policy", "early-exit", "--warmup", "0"], "argument --warmup: must be at least 1, got 0"),
])
def test_adaptive_option_errors(capsys, tmp_path, fake_upscaler, args, message):
    src = save_rgb(tmp_path / "in.png")
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", *args)
    assert_usage_error(code, err, message)
    assert out == "" and not fake_upscaler and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("args,bad", [(["--policy", "fast"], "fast"), (["--complexity", "edges"], "edges"),
                                      (["--normalize", "global"], "global"), (["--exit-mode", "image"], "image"),
                                      (["--mapping", "cubic"], "cubic")])
def test_adaptive_option_choices(capsys, tmp_path, fake_upscaler, args, bad):
    code, _, err = run_main(capsys, "upscale", tmp_path / "in.png", "-o", tmp_path / "out.png", *args)
    assert code == 2 and f"invalid choice: '{bad}'" in err and not fake_upscaler


def test_n_min_may_exceed_steps_for_policies_without_allocation(capsys, tmp_path, fake_upscaler):
    """--n-min is only checked against --steps where it is used (allocation, adasr)."""
    src = save_rgb(tmp_path / "in.png")
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--steps", "2", "--n-min", "3", "-q")
    assert code == 0, err
    (call,) = fake_upscaler
    assert call["policy"] == "uniform" and call["steps"] == 2 and call["built"] == UniformDDIM(2, DEFAULT_SCHEDULE)


def test_early_exit_with_few_steps(capsys, tmp_path, fake_upscaler):
    src = save_rgb(tmp_path / "in.png")
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--policy", "early-exit",
                            "--steps", "2", "-q")
    assert code == 0, err
    assert fake_upscaler[0]["built"].steps == 2


def test_cli_passes_names_and_configs_and_the_library_builds_the_policy(capsys, tmp_path, fake_upscaler):
    src = save_rgb(tmp_path / "in.png")
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--policy", "adasr", "--steps", "12",
                            "--n-min", "2", "--complexity", "sobel", "--normalize", "image", "--mapping",
                            "exponential", "--epsilon", "0.01", "--patience", "3", "--warmup", "5", "--tile", "16",
                            "--overlap", "4", "-q", "--report", tmp_path / "r.json")
    assert code == 0, err
    (call,) = fake_upscaler
    assert (call["policy"], call["model"], call["quant"], call["steps"]) == ("adasr", "sr_x4", "none", 12)
    assert call["adaptive"] == AdaptiveConfig(n_max=12, n_min=2, estimator="sobel", mapping="exponential",
                                              normalize="image", epsilon=0.01, patience=3, warmup=5)
    p = call["built"]
    assert isinstance(p, EarlyExit) and p.name == "adasr" and p.mode == "tile"
    assert p.rule == EarlyExitRule(0.01, 3, 5) and p.value_range == pytest.approx(4.0)  # 2·s, s = 2
    b = p.base
    assert isinstance(b, StepAllocation)
    assert (b.n_min, b.n_max, b.estimator, b.normalize, b.mapping) == (2, 12, "sobel", "image", "exponential")


def test_cli_defaults_come_from_the_configs(capsys, tmp_path, fake_upscaler):
    """Options left out reach the library as the dataclass defaults (one home for each default)."""
    from adasr.config import UpscaleConfig

    src = save_rgb(tmp_path / "in.png")
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "-q")
    assert code == 0, err
    (call,) = fake_upscaler
    assert call["adaptive"] == AdaptiveConfig(n_max=UpscaleConfig().n_steps)
    assert call == {**call, **UpscaleConfig().upscale_kwargs()}
    assert "cache_interval" not in call and "key_steps" not in call  # without a cache they are not passed


def test_cli_allocation_calibrates_by_default(capsys, tmp_path, fake_upscaler, two_images):
    src = save_rgb(tmp_path / "in.png")
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--policy", "allocation",
                            "--steps", "6", "--tile", "16", "--overlap", "4", "-q")
    assert code == 0, err
    p = fake_upscaler[0]["built"]
    assert isinstance(p, StepAllocation) and p.normalize == "calibrated" and p.calibration is not None
    assert p.calibration.count == 13 and two_images[1]  # the (monkeypatched) calibration set, tiled 16/4


def test_cli_adasr_real_sampling_with_tiny_model(capsys, tmp_path, monkeypatch):
    """The real pipeline: 8×8 → 32×32, tiles 16/4 (9 tiles), adasr with per-image normalisation."""
    import adasr.upscaling as up

    monkeypatch.setattr(up, "load_pretrained", lambda *a, **k: tiny(scale=1.0))
    src = save_rgb(tmp_path / "in.png")
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--policy", "adasr", "--steps",
                              "6", "--n-min", "2", "--normalize", "image", "--epsilon", "1e9", "--warmup", "3",
                              "--patience", "1", "--tile", "16", "--overlap", "4", "--device", "cpu",
                              "--precision", "fp32", "--report", tmp_path / "r.json")
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").size == (32, 32)
    r = json.loads((tmp_path / "r.json").read_text())
    steps = r["steps_per_tile"]
    assert len(steps) == r["tiles"] == 9 and r["policy"] == "adasr" and r["steps"] == 6
    assert all(1 <= s <= 3 for s in steps)  # ε huge: every tile stops at T_min = 3 or at its budget if smaller
    assert r["tile_evaluations"] == sum(steps) and r["mean_steps_per_tile"] == pytest.approx(sum(steps) / 9)
    assert r["adaptive"] == AdaptiveConfig(n_max=6, n_min=2, normalize="image", epsilon=1e9, warmup=3,
                                           patience=1).to_dict()
    assert r["evaluations_by_mode"] == {"full": sum(steps)} and r["macs_by_mode"] == {"full": r["macs"]}
    assert (r["model"], r["quant"], r["fab"]) == ("sr_x4", "none", None)
    assert out.startswith(f"wrote {tmp_path / 'out.png'}") and f"of 6 steps per tile" in out
