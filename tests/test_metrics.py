"""PSNR / SSIM on RGB and Y agree with scikit-image; inputs are validated strictly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import color, data
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from adasr.metrics import psnr_rgb, psnr_y, rgb_to_y, ssim_rgb, ssim_y

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def _blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    return (gaussian(img / 255.0, sigma=sigma, channel_axis=-1) * 255).round().astype(np.uint8)


def _sk_y(img: np.ndarray, shave: int) -> np.ndarray:
    y = color.rgb2ycbcr(img)[..., 0]  # scikit-image's BT.601 Y in [16, 235], float
    return y[shave : y.shape[0] - shave, shave : y.shape[1] - shave] if shave else y


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    rand_a = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    rand_b = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    astro = data.astronaut()[100:260, 140:300]
    return [(rand_a, rand_b), (rand_a, _noisy(rand_a, 20)), (astro, _noisy(astro, 8)), (astro, _blurred(astro, 1.5))]


@pytest.mark.parametrize("shave", [0, 4])
def test_rgb_metrics_match_skimage(pairs, shave: int) -> None:
    for a, b in pairs:
        s = slice(shave, -shave) if shave else slice(None)
        ref_psnr = peak_signal_noise_ratio(a[s, s], b[s, s], data_range=255)
        ref_ssim = structural_similarity(a[s, s], b[s, s], channel_axis=-1, **SK_SSIM)
        assert psnr_rgb(a, b, shave=shave) == pytest.approx(ref_psnr, rel=1e-12)
        assert ssim_rgb(a, b, shave=shave) == pytest.approx(ref_ssim, rel=1e-9)


@pytest.mark.parametrize("shave", [0, 4])
def test_y_metrics_match_skimage(pairs, shave: int) -> None:
    for a, b in pairs:
        ya, yb = _sk_y(a, shave), _sk_y(b, shave)
        assert psnr_y(a, b, shave=shave) == pytest.approx(peak_signal_noise_ratio(ya, yb, data_range=255), rel=1e-12)
        assert ssim_y(a, b, shave=shave) == pytest.approx(structural_similarity(ya, yb, **SK_SSIM), rel=1e-9)


def test_real_image_values_are_plausible_and_ordered() -> None:
    a = data.astronaut()
    light, heavy = _noisy(a, 5), _noisy(a, 25)
    assert 36 < psnr_y(a, light) < 42 and 23 < psnr_y(a, heavy) < 28
    assert ssim_y(a, light) > ssim_y(a, heavy) > 0.2
    assert psnr_rgb(a, light) > psnr_rgb(a, _blurred(a, 2.0))


def test_psnr_of_gaussian_noise_follows_theory() -> None:
    """Noise σ per channel, no clipping: PSNR_RGB ≈ 20·log10(255/σ); on Y the noise std is σ·‖w‖, w = weights/255."""
    a = np.full((256, 256, 3), 128, np.uint8)
    sigma = 10.0
    b = _noisy(a, sigma)
    var = sigma**2 + 1 / 12  # + rounding to integers
    w = np.array([65.481, 128.553, 24.966]) / 255
    assert psnr_rgb(a, b) == pytest.approx(10 * np.log10(255**2 / var), abs=0.1)
    assert psnr_y(a, b) == pytest.approx(10 * np.log10(255**2 / (var * (w**2).sum())), abs=0.1)


def test_y_channel_convention() -> None:
    black, white = np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0)
    img = data.astronaut()[:64, :64]
    np.testing.assert_allclose(rgb_to_y(img), color.rgb2ycbcr(img)[..., 0], atol=1e-10)


def test_defaults_shave_y_only() -> None:
    a = data.astronaut()[:48, :48]
    b = _noisy(a, 10)
    damaged = b.copy()  # damage only the 4-pixel border: Y metrics (shave=4 by default) ignore it, RGB (shave=0) not
    damaged[:4], damaged[-4:], damaged[:, :4], damaged[:, -4:] = 0, 0, 0, 0
    assert psnr_y(a, damaged) == psnr_y(a, b) and ssim_y(a, damaged) == ssim_y(a, b)
    assert psnr_rgb(a, damaged) < psnr_rgb(a, b) - 3 and ssim_rgb(a, damaged) < ssim_rgb(a, b)


def test_float_input_in_unit_range_equals_uint8() -> None:
    a = data.astronaut()[:64, :64]
    b = _noisy(a, 10)
    for fn in (psnr_rgb, psnr_y, ssim_rgb, ssim_y):
        assert fn(a / 255.0, b / 255.0) == pytest.approx(fn(a, b), rel=1e-12)
        assert fn((a / 255.0).astype(np.float32), (b / 255.0).astype(np.float32)) == pytest.approx(fn(a, b), rel=1e-5)


def test_identical_images() -> None:
    a = data.astronaut()[:32, :32]
    assert psnr_rgb(a, a) == math.inf and psnr_y(a, a) == math.inf
    assert ssim_rgb(a, a) == pytest.approx(1.0) and ssim_y(a, a) == pytest.approx(1.0)


def test_errors() -> None:
    a = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_rgb(a, np.zeros((32, 31, 3), np.uint8))
    with pytest.raises(TypeError, match="differ in dtype"):
        psnr_y(a, a.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        ssim_rgb(a[..., 0], a[..., 0])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        ssim_y(np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr_rgb(np.full((8, 8, 3), 2.0), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr_rgb(np.full((8, 8, 3), np.nan), np.zeros((8, 8, 3)))
    with pytest.raises(TypeError, match="unsupported dtype"):
        psnr_rgb(a.astype(np.int16), a.astype(np.int16))
    with pytest.raises(TypeError, match="numpy array"):
        psnr_rgb(a.tolist(), a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shave"):
        psnr_y(a, a, shave=16)
    with pytest.raises(ValueError, match="shave"):
        psnr_rgb(a, a, shave=-1)
    with pytest.raises(ValueError, match="at least 11"):
        ssim_y(a, a, shave=11)
