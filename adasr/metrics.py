"""Full-reference fidelity metrics: PSNR and SSIM, on RGB or on the BT.601 luma Y, with a border shave.

The convention is in the name: ``psnr_rgb`` / ``ssim_rgb`` use all three channels, ``psnr_y`` / ``ssim_y`` use
the luma Y that SR papers report. ``shave`` pixels are cut from every border before measuring (SR papers shave
the scale factor, 4 for ×4, because the borders of an upsampled image carry no information).

Inputs are two images of the same shape (H, W, 3) and the same dtype, either

* ``uint8`` in [0, 255] (the usual case: evaluate what would be saved to disk), or
* ``float32`` / ``float64`` in [0, 1] (multiplied by 255, not rounded).

Everything is computed in float64 on the [0, 255] scale, so the peak value is L = 255 for both dtypes and a
uint8 image and its float copy ``img / 255`` give the same numbers. Anything else (other shapes, mixed dtypes,
floats outside [0, 1], torch tensors) raises a TypeError or ValueError that says what was expected.

Luma (ITU-R BT.601, "studio swing", as MATLAB's ``rgb2ycbcr`` and BasicSR), for R, G, B in [0, 255]::

    Y = 16 + (65.481·R + 128.553·G + 24.966·B) / 255        ∈ [16, 235]

Y is kept in floating point (not rounded to integers) and measured with L = 255.

PSNR over the N values (pixels × channels) that remain after shaving::

    MSE  = (1/N) Σ (a − b)²
    PSNR = 10 · log10(L² / MSE)  dB                             (+∞ when a == b)

SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) with a Gaussian window w (σ = 1.5, truncated at 3.5σ → 11×11,
normalised to sum 1) and population (not sample) statistics::

    μa = w * a,  μb = w * b                                     (local means; * is 2-D filtering)
    σa² = w * a² − μa²,  σb² = w * b² − μb²,  σab = w * (a·b) − μa·μb
    C1 = (K1·L)², C2 = (K2·L)²,  K1 = 0.01, K2 = 0.03
    SSIM map = (2·μa·μb + C1)(2·σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))

and the score is the mean of the map over the positions whose window lies fully inside the (shaved) image, i.e.
5 pixels are dropped from each border after filtering. For RGB the per-channel scores are averaged. This is
``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255, channel_axis=-1)``; the tests check the agreement.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

#: BT.601 luma weights for R, G, B in [0, 255] (divided by 255 in :func:`rgb_to_y`) and the offset.
Y_WEIGHTS: tuple[float, float, float] = (65.481, 128.553, 24.966)
Y_OFFSET: float = 16.0
#: Peak value of the [0, 255] scale every metric works on.
PEAK: float = 255.0

SSIM_SIGMA: float = 1.5
SSIM_TRUNCATE: float = 3.5
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03


def image_pair_to_float(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two (H, W, 3) images and return them as float64 on the [0, 255] scale.

    Accepted: both ``uint8``, or both floating point with values in [0, 1]. Raises TypeError for non-arrays or
    unsupported/mixed dtypes, ValueError for shape mismatch, a shape that is not (H, W, 3), or out-of-range floats.
    """
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"{name} must be a numpy array of shape (H, W, 3), got {type(x).__name__}"
                + (" (convert torch tensors with .permute(1, 2, 0).cpu().numpy())" if hasattr(x, "detach") else "")
            )
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (H, W, 3) (RGB, channels last), got {x.shape}")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"images differ in dtype: {a.dtype} vs {b.dtype} (use both uint8, or both float in [0, 1])")
    if a.dtype == np.uint8:
        return a.astype(np.float64), b.astype(np.float64)
    if np.issubdtype(a.dtype, np.floating):
        for name, x in (("a", a), ("b", b)):
            lo, hi = float(np.min(x)), float(np.max(x))
            if not (0.0 <= lo and hi <= 1.0):  # also rejects NaN
                raise ValueError(
                    f"float image {name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
                    "(clip it, or pass uint8 images)"
                )
        return a.astype(np.float64) * PEAK, b.astype(np.float64) * PEAK
    raise TypeError(f"unsupported dtype {a.dtype}: use uint8 in [0, 255] or float in [0, 1]")


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image (..., 3) on the [0, 255] scale → (...) float64 in [16, 235].

    Y = 16 + (65.481·R + 128.553·G + 24.966·B) / 255. ``uint8`` input is read as [0, 255]; pass float input already
    scaled to [0, 255] (as :func:`image_pair_to_float` returns it).
    """
    x = np.asarray(img, dtype=np.float64)
    if x.shape[-1] != 3:
        raise ValueError(f"expected RGB with 3 channels last, got shape {x.shape}")
    w = np.asarray(Y_WEIGHTS) / PEAK
    return Y_OFFSET + x @ w


def shave_border(img: np.ndarray, shave: int) -> np.ndarray:
    """``img[shave:H-shave, shave:W-shave]`` for an image (H, W, ...); raises ValueError if nothing would remain."""
    if not isinstance(shave, (int, np.integer)) or isinstance(shave, bool) or shave < 0:
        raise ValueError(f"shave must be a non-negative int, got {shave!r}")
    h, w = img.shape[:2]
    if 2 * shave >= h or 2 * shave >= w:
        raise ValueError(f"shave={shave} removes the whole {h}×{w} image")
    return img[shave : h - shave, shave : w - shave] if shave else img


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """10·log10(L²/MSE) for float arrays on the [0, 255] scale (+∞ for identical arrays)."""
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(PEAK**2 / mse)


def gaussian_window_1d(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian taps exp(−x²/2σ²), x = −r…r, r = int(truncate·σ + 0.5) (r = 5 → 11 taps)."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter2d(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering of (H, W) with ``taps`` along both axes (borders reflected; they are cropped later)."""
    return correlate1d(correlate1d(x, taps, axis=0, mode="reflect"), taps, axis=1, mode="reflect")


def ssim_channel(a: np.ndarray, b: np.ndarray, *, data_range: float = PEAK) -> float:
    """Mean Gaussian-window SSIM of two single-channel float images (H, W); see the module docstring."""
    taps = gaussian_window_1d()
    pad = (len(taps) - 1) // 2
    if min(a.shape) < len(taps):
        raise ValueError(f"SSIM needs images of at least {len(taps)}×{len(taps)} pixels (after shave), got {a.shape}")
    mu_a, mu_b = _filter2d(a, taps), _filter2d(b, taps)
    var_a = _filter2d(a * a, taps) - mu_a * mu_a
    var_b = _filter2d(b * b, taps) - mu_b * mu_b
    cov = _filter2d(a * b, taps) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s[pad:-pad, pad:-pad].mean())


def psnr_rgb(a: np.ndarray, b: np.ndarray, *, shave: int = 0) -> float:
    """PSNR in dB over R, G and B (one MSE over all channels), L = 255, after shaving ``shave`` border pixels."""
    x, y = image_pair_to_float(a, b)
    return _psnr(shave_border(x, shave), shave_border(y, shave))


def psnr_y(a: np.ndarray, b: np.ndarray, *, shave: int = 4) -> float:
    """PSNR in dB on BT.601 luma Y ∈ [16, 235] (unrounded), L = 255, after shaving ``shave`` border pixels."""
    x, y = image_pair_to_float(a, b)
    return _psnr(shave_border(rgb_to_y(x), shave), shave_border(rgb_to_y(y), shave))


def ssim_rgb(a: np.ndarray, b: np.ndarray, *, shave: int = 0) -> float:
    """Gaussian-window SSIM averaged over R, G and B, L = 255, after shaving ``shave`` border pixels."""
    x, y = image_pair_to_float(a, b)
    x, y = shave_border(x, shave), shave_border(y, shave)
    return float(np.mean([ssim_channel(x[..., c], y[..., c]) for c in range(3)]))


def ssim_y(a: np.ndarray, b: np.ndarray, *, shave: int = 4) -> float:
    """Gaussian-window SSIM on BT.601 luma Y ∈ [16, 235] (unrounded), L = 255, after shaving ``shave`` pixels."""
    x, y = image_pair_to_float(a, b)
    return ssim_channel(shave_border(rgb_to_y(x), shave), shave_border(rgb_to_y(y), shave))
