"""adasr.adaptive.complexity: every estimator against a closed form or an independent numpy/scipy reference,
the normalisations, calibration and the argument errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from adasr.adaptive import complexity as C
from adasr.sampling.tiles import TileGrid
from adasr.srmodel import SRDiffusionConfig

BT601 = np.array([0.299, 0.587, 0.114])


def from_gray(i: np.ndarray | torch.Tensor) -> torch.Tensor:
    """An RGB batch (B, 3, H, W) in [−1, 1] whose BT.601 gray is ``i`` (B, H, W) or (H, W) in [0, 1] (R = G = B)."""
    t = torch.as_tensor(np.asarray(i), dtype=torch.float64)
    if t.ndim == 2:
        t = t[None]
    return (2 * t - 1)[:, None].expand(-1, 3, -1, -1).contiguous()


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


@pytest.fixture(scope="module")
def tiny_model(make_tiny_model):
    return make_tiny_model()


# ----------------------------------------------------------------------------------------------------------- gray
def test_gray_is_bt601_of_the_unit_range_image():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 3, 5, 7))
    expected = np.einsum("bchw,c->bhw", (x + 1) / 2, BT601)[:, None]
    g = C.gray(torch.from_numpy(x))
    assert g.shape == (2, 1, 5, 7)
    np.testing.assert_allclose(g.numpy(), expected, rtol=0, atol=1e-12)
    # pure primaries at full intensity (others black, i.e. −1) give exactly their weight
    for c in range(3):
        p = -torch.ones(1, 3, 1, 1, dtype=torch.float64)
        p[0, c] = 1
        assert C.gray(p).item() == pytest.approx(BT601[c], abs=1e-15)


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 1, 8, 8), (1, 4, 8, 8), (2, 3, 8)])
def test_estimators_reject_non_rgb_batches(shape):
    x = torch.zeros(shape)
    for fn in (C.gray, C.gradient_map, C.sobel_map, C.variance_map, C.fft_highband_map):
        with pytest.raises(ValueError, match="expected an RGB batch"):
            fn(x)


# ------------------------------------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("a,b", [(1 / 64, 0.0), (0.0, 1 / 32), (1 / 64, -1 / 128)])
def test_gradient_of_a_linear_ramp_is_the_mean_abs_slope(a, b):
    """I = 0.5 + a·col + b·row: forward differences |a| and |b| everywhere (the replicated edge too) → (|a|+|b|)/2."""
    rows, cols = np.mgrid[0:12, 0:20]
    x = from_gray(0.3 + a * cols + b * rows)
    g = C.gradient_map(x)
    assert g.shape == (1, 1, 12, 20)
    np.testing.assert_allclose(g.numpy(), (abs(a) + abs(b)) / 2, rtol=0, atol=1e-12)


def test_gradient_of_a_constant_is_zero():
    assert torch.count_nonzero(C.gradient_map(torch.full((2, 3, 9, 11), 0.37))) == 0


def test_gradient_forward_differences_and_replicate_padding():
    """A bright last column: ∂x I = 1 only between columns W−2 and W−1; the replicate pad copies that difference
    into column W−1, so columns W−2 and W−1 hold 1/2. A bright first row likewise gives 1/2 in row 0 only."""
    i = np.zeros((6, 8))
    i[:, -1] = 1
    g = C.gradient_map(from_gray(i))[0, 0].numpy()
    expected = np.zeros((6, 8))
    expected[:, -2:] = 0.5
    np.testing.assert_allclose(g, expected, atol=1e-12)
    i = np.zeros((6, 8))
    i[0] = 1
    g = C.gradient_map(from_gray(i))[0, 0].numpy()
    expected = np.zeros((6, 8))
    expected[0] = 0.5  # forward difference I[1] − I[0] sits in row 0; the padded last row copies row H−2 (= 0)
    np.testing.assert_allclose(g, expected, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------- sobel
@pytest.mark.parametrize("a,b", [(1.0 / 40, 0.0), (0.0, 1.0 / 40), (0.02, -0.01)])
def test_sobel_of_a_linear_ramp_is_the_slope_in_the_interior(a, b):
    rows, cols = np.mgrid[0:10, 0:14]
    s = C.sobel_map(from_gray(0.4 + a * cols + b * rows))
    assert s.shape == (1, 1, 10, 14)
    np.testing.assert_allclose(s[0, 0, 1:-1, 1:-1].numpy(), np.hypot(a, b), rtol=1e-9, atol=1e-12)


def test_sobel_of_a_constant_is_zero():
    assert C.sobel_map(torch.full((1, 3, 7, 7), -0.2)).abs().max().item() < 1e-7  # float32 conv rounding only


def test_sobel_matches_scipy_sobel_in_the_interior():
    rng = np.random.default_rng(1)
    i = rng.uniform(0, 1, (9, 11))
    gx = ndi.sobel(i, axis=1) / 8
    gy = ndi.sobel(i, axis=0) / 8
    s = C.sobel_map(from_gray(i))[0, 0].numpy()
    np.testing.assert_allclose(s[1:-1, 1:-1], np.hypot(gx, gy)[1:-1, 1:-1], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------------------- variance
def _scipy_variance(i: np.ndarray, window: int, mode: str) -> np.ndarray:
    m = ndi.uniform_filter(i, size=window, mode=mode)
    m2 = ndi.uniform_filter(i * i, size=window, mode=mode)
    return np.maximum(m2 - m * m, 0)


@pytest.mark.parametrize("window", [3, 5])
def test_variance_matches_scipy_with_torch_reflect_convention(window):
    """torch's 'reflect' pad (d c b | a b c d | c b a, edge not repeated) is scipy's 'mirror'; scipy's 'reflect'
    repeats the edge sample and differs at the border."""
    rng = np.random.default_rng(2)
    i = rng.uniform(0, 1, (13, 17))
    v = C.variance_map(from_gray(i), window=window)[0, 0].numpy()
    np.testing.assert_allclose(v, _scipy_variance(i, window, "mirror"), rtol=1e-9, atol=1e-12)
    assert not np.allclose(v, _scipy_variance(i, window, "reflect"), atol=1e-6)  # the convention matters at edges


def test_variance_of_tiny_image_uses_replicate_padding():
    """A 2×2 image is too small for a reflect pad of 2: it falls back to replicate (scipy's 'nearest')."""
    i = np.array([[0.1, 0.9], [0.4, 0.2]])
    v = C.variance_map(from_gray(i), window=5)[0, 0].numpy()
    np.testing.assert_allclose(v, _scipy_variance(i, 5, "nearest"), rtol=1e-9, atol=1e-12)


def test_variance_of_constant_is_zero_and_of_checkerboard_known():
    assert torch.count_nonzero(C.variance_map(torch.full((1, 3, 8, 8), 0.5))) == 0
    i = (np.indices((11, 11)).sum(0) % 2).astype(float)  # 0/1 checkerboard, 3×3 window interior: 5 and 4 ones
    v = C.variance_map(from_gray(i), window=3)[0, 0].numpy()
    p = np.where(i[1:-1, 1:-1] == 1, 5 / 9, 4 / 9)
    np.testing.assert_allclose(v[1:-1, 1:-1], p - p * p, atol=1e-12)


@pytest.mark.parametrize("window", [0, 4, -3])
def test_variance_window_must_be_positive_odd(window):
    with pytest.raises(ValueError, match="positive odd"):
        C.variance_map(torch.zeros(1, 3, 8, 8), window=window)


# ------------------------------------------------------------------------------------------------------------ fft
def _numpy_highband(i: np.ndarray, block: int, cutoff: float) -> np.ndarray:
    """Independent reference: per-block ratio on an edge-padded copy, painted back and cropped."""
    H, W = i.shape
    p = np.pad(i, ((0, (-H) % block), (0, (-W) % block)), mode="edge")
    f = np.fft.fftfreq(block)
    r = np.hypot(f[:, None], f[None, :])
    out = np.zeros_like(p)
    for y in range(0, p.shape[0], block):
        for x in range(0, p.shape[1], block):
            b = p[y : y + block, x : x + block]
            P = np.abs(np.fft.fft2(b - b.mean())) ** 2
            tot = P.sum()
            out[y : y + block, x : x + block] = P[r > cutoff].sum() / tot if tot > 1e-12 else 0.0
    return out[:H, :W]


def test_fft_highband_constant_is_zero():
    m = C.fft_highband_map(torch.full((2, 3, 32, 32), 0.1))
    assert m.shape == (2, 1, 32, 32) and torch.count_nonzero(m) == 0


def test_fft_highband_checkerboard_is_one():
    """A ±1 checkerboard has all its (mean-removed) energy at (½, ½) cycles/pixel, |f| = 0.707 > cutoff."""
    i = (np.indices((32, 32)).sum(0) % 2).astype(float)
    m = C.fft_highband_map(from_gray(i), block=16, cutoff=0.25)
    np.testing.assert_allclose(m.numpy(), 1.0, atol=1e-9)


@pytest.mark.parametrize("cycles,expected", [(1, 0.0), (3, 0.0), (5, 1.0), (7, 1.0)])
def test_fft_highband_sinusoid_below_and_above_cutoff(cycles, expected):
    """sin with `cycles` periods per 16-pixel block: f = cycles/16 cycles/pixel; 1/16, 3/16 < 0.25 < 5/16, 7/16."""
    cols = np.arange(32)[None, :].repeat(32, 0)
    i = 0.5 + 0.4 * np.sin(2 * np.pi * cycles * cols / 16)
    m = C.fft_highband_map(from_gray(i), block=16, cutoff=0.25)
    np.testing.assert_allclose(m.numpy(), expected, atol=1e-9)


def test_fft_highband_matches_numpy_and_is_constant_per_block():
    rng = np.random.default_rng(3)
    i = rng.uniform(0, 1, (32, 48))
    i[:16, :16] = 0.5 + 0.3 * np.sin(2 * np.pi * np.arange(16) / 16)[None]  # a smooth block among noisy ones
    m = C.fft_highband_map(from_gray(i), block=16, cutoff=0.25)[0, 0].numpy()
    np.testing.assert_allclose(m, _numpy_highband(i, 16, 0.25), rtol=1e-9, atol=1e-12)
    for y in range(0, 32, 16):
        for x in range(0, 48, 16):
            b = m[y : y + 16, x : x + 16]
            assert np.all(b == b[0, 0])
    assert m[0, 0] == pytest.approx(0.0, abs=1e-12) and 0.3 < m[16, 16] < 1  # white noise: ≈ the high-band area


def test_fft_highband_crops_when_size_is_not_a_multiple_of_block():
    # Note: the docstring says "reflect-padded"; the code pads with replicate (edge), which this reference uses.
    rng = np.random.default_rng(4)
    i = rng.uniform(0, 1, (20, 27))
    m = C.fft_highband_map(from_gray(i), block=8, cutoff=0.2)
    assert m.shape == (1, 1, 20, 27)
    np.testing.assert_allclose(m[0, 0].numpy(), _numpy_highband(i, 8, 0.2), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kw,match", [({"block": 1}, "block must be"), ({"cutoff": 0.0}, "cutoff must be"),
                                      ({"cutoff": 0.71}, "cutoff must be")])
def test_fft_highband_argument_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        C.fft_highband_map(torch.zeros(1, 3, 16, 16), **kw)


# ---------------------------------------------------------------------------------------------- x0 disagreement
@pytest.mark.parametrize("alpha_bar", [0.9, 0.3, 0.01])
def test_x0_disagreement_is_zero_for_a_one_head_network(alpha_bar):
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    x_t = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    eps = (x_t - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5
    d = C.x0_disagreement(x_t, eps, x0, alpha_bar)
    assert d.shape == (2, 1, 8, 8)
    assert d.abs().max().item() < 1e-9


def test_x0_disagreement_closed_form_for_independent_inputs():
    rng = np.random.default_rng(6)
    x_t, eps, x0 = (rng.standard_normal((1, 3, 4, 5)) for _ in range(3))
    a = 0.64
    expected = np.abs((x_t - 0.6 * eps) / 0.8 - x0).mean(1, keepdims=True)
    d = C.x0_disagreement(*(torch.from_numpy(v) for v in (x_t, eps, x0)), a)
    np.testing.assert_allclose(d.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("a", [0.0, -0.1, 1.5])
def test_x0_disagreement_alpha_bar_range(a):
    z = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="alpha_bar"):
        C.x0_disagreement(z, z, z, a)


# -------------------------------------------------------------------------------------------------- uncertainty
def test_uncertainty_map_with_the_tiny_model(tiny_model):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m = C.uncertainty_map(tiny_model, x, t=999, seed=1, precision="fp32")
    assert m.shape == (2, 1, 16, 16) and (m >= 0).all() and m.sum() > 0
    torch.testing.assert_close(m, C.uncertainty_map(tiny_model, x, t=999, seed=1, precision="fp32"), rtol=0, atol=0)
    assert not torch.equal(m, C.uncertainty_map(tiny_model, x, t=999, seed=2, precision="fp32"))
    m2 = C.uncertainty_map(tiny_model, x, t=500, seed=1, precision="fp32")
    assert m2.shape == (2, 1, 16, 16) and (m2 >= 0).all() and not torch.equal(m2, m)
    assert callable(C.make_estimator("uncertainty", model=tiny_model, t=999, seed=1))


def _identity_model(residual_scale: float):
    """A stand-in whose x0-predicting 'UNet' returns its input x_t (so x̂0 = x_t): the map then has a closed form.
    It exposes the schedule both as ``schedule.alphas_cumprod`` and as the buffer ``alphas_cumprod``."""
    ac = SRDiffusionConfig().schedule.alphas_cumprod().float()
    return SimpleNamespace(num_train_timesteps=len(ac), schedule=SimpleNamespace(alphas_cumprod=ac), alphas_cumprod=ac,
                           unet=lambda x, t, c: x, predict_x0=lambda out, x, t: out,
                           config=SimpleNamespace(residual=True, residual_scale=residual_scale))


@pytest.mark.parametrize("t", [999, 400])
def test_uncertainty_map_closed_form_with_identity_model(t):
    """x̂0 = x_t, so C = mean_c |√ᾱ(c_a − c_b) + √(1−ᾱ)(ε_a − ε_b)| / (2s) with c = 0 at t = T−1 and c = e0 else;
    the generator draws ε (2B images) first, then e0."""
    s, B = 2.5, 2
    model = _identity_model(s)
    x = torch.zeros(B, 3, 6, 4)
    m = C.uncertainty_map(model, x, t=t, seed=7)
    g = torch.Generator().manual_seed(7)
    eps = torch.randn((2 * B, 3, 6, 4), generator=g)
    clean = torch.randn((2 * B, 3, 6, 4), generator=g) if t < 999 else torch.zeros_like(eps)
    ab = model.alphas_cumprod[t].item()
    xt = ab**0.5 * clean + (1 - ab) ** 0.5 * eps
    expected = (xt[:B] - xt[B:]).abs().mean(1, keepdim=True) / (2 * s)
    assert m.shape == (B, 1, 6, 4) and (m >= 0).all()
    torch.testing.assert_close(m, expected, rtol=1e-6, atol=1e-7)


def test_uncertainty_map_argument_errors(tiny_model):
    with pytest.raises(ValueError, match="t must be in"):
        C.uncertainty_map(tiny_model, torch.zeros(1, 3, 8, 8), t=1000)
    with pytest.raises(ValueError, match="t must be in"):
        C.uncertainty_map(tiny_model, torch.zeros(1, 3, 8, 8), t=-1)
    with pytest.raises(ValueError, match="expected an RGB batch"):
        C.uncertainty_map(tiny_model, torch.zeros(1, 1, 8, 8))


# ---------------------------------------------------------------------------------------------------- make_estimator
def test_make_estimator_names_and_errors():
    assert C.make_estimator("gradient") is C.gradient_map
    assert C.make_estimator("sobel") is C.sobel_map
    assert C.make_estimator("variance") is C.variance_map
    assert C.make_estimator("fft") is C.fft_highband_map
    with pytest.raises(ValueError, match="needs the diffusion model"):
        C.make_estimator("uncertainty")
    with pytest.raises(ValueError, match="unknown complexity estimator 'laplace'"):
        C.make_estimator("laplace")
    from adasr.adaptive.learned import ComplexityNet

    net = ComplexityNet()
    fn = C.make_estimator("learned", net=net)
    x = torch.zeros(1, 3, 8, 8)
    torch.testing.assert_close(fn(x), net.predict(x))
    shipped = C.make_estimator("learned")  # loads the shipped weights (cheap)
    assert shipped(x).shape == (1, 1, 8, 8)
    assert set(C.ESTIMATORS) == {"gradient", "sobel", "variance", "fft", "uncertainty", "learned"}


# ------------------------------------------------------------------------------------------------- normalisation
def test_normalize_image_is_per_image():
    rng = np.random.default_rng(8)
    c = torch.from_numpy(rng.uniform(0, 3, (2, 1, 5, 6)))
    n = C.normalize_image(c)
    for b in range(2):
        v = c[b].numpy()
        np.testing.assert_allclose(n[b].numpy(), (v - v.min()) / (v.max() - v.min() + 1e-8), rtol=1e-12)
        assert n[b].min() == 0 and n[b].max() == pytest.approx(1, abs=1e-7)
    c2 = c.clone()
    c2[1] = 10 * c2[1] + 4  # rescaling image 2 must not change image 1
    n2 = C.normalize_image(c2)
    torch.testing.assert_close(n2[0], n[0], rtol=0, atol=0)
    torch.testing.assert_close(n2[1], n[1], rtol=1e-6, atol=1e-7)  # and min–max undoes the affine map


def test_patch_complexity_is_the_mean_over_each_tile():
    grid = TileGrid.cover(20, 28, 12, 4)
    rng = np.random.default_rng(9)
    cmap = rng.uniform(0, 1, (1, 1, 20, 28))
    cp = C.patch_complexity(torch.from_numpy(cmap), grid)
    assert cp.shape == (len(grid),)
    expected = [cmap[0, 0, t : t + 12, l : l + 12].mean() for t, l in grid.positions]
    np.testing.assert_allclose(cp.numpy(), expected, rtol=1e-12)
    for bad in (torch.zeros(1, 1, 20, 27), torch.zeros(2, 1, 20, 28), torch.zeros(1, 3, 20, 28), torch.zeros(20, 28)):
        with pytest.raises(ValueError, match="expected a"):
            C.patch_complexity(bad, grid)


@pytest.mark.parametrize("H,W,p", [(10, 13, 4), (8, 8, 4), (5, 7, 8), (9, 9, 1)])
def test_patch_means_with_non_multiple_sizes(H, W, p):
    rng = np.random.default_rng(10)
    cmap = rng.uniform(0, 1, (2, 1, H, W))
    out = C.patch_means(torch.from_numpy(cmap), p).numpy()
    nh, nw = -(-H // p), -(-W // p)
    assert out.shape == (2, nh, nw)
    for b in range(2):
        for i in range(nh):
            for j in range(nw):
                assert out[b, i, j] == pytest.approx(cmap[b, 0, i * p : (i + 1) * p, j * p : (j + 1) * p].mean(),
                                                     rel=1e-12)
    with pytest.raises(ValueError, match="patch must be"):
        C.patch_means(torch.from_numpy(cmap), 0)


def test_normalized_patch_complexity_modes():
    grid = TileGrid.cover(16, 24, 8, 0)
    rng = np.random.default_rng(11)
    raw = torch.from_numpy(rng.uniform(0.2, 0.6, (1, 1, 16, 24)))
    means = np.array([raw[0, 0, t : t + 8, l : l + 8].mean().item() for t, l in grid.positions])
    r = raw.numpy()
    img = np.array([((r - r.min()) / (r.max() - r.min() + 1e-8))[0, 0, t : t + 8, l : l + 8].mean()
                    for t, l in grid.positions])
    np.testing.assert_allclose(C.normalized_patch_complexity(raw, grid, "image").numpy(), img, rtol=1e-9)
    np.testing.assert_allclose(C.normalized_patch_complexity(raw, grid, "patches").numpy(),
                               (means - means.min()) / (means.max() - means.min()), rtol=1e-9)
    cal = C.Calibration("x", 0.3, 0.5)
    np.testing.assert_allclose(C.normalized_patch_complexity(raw, grid, "calibrated", cal).numpy(),
                               np.clip((means - 0.3) / 0.2, 0, 1), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- calibration
def test_calibrate_matches_numpy_percentile():
    rng = np.random.default_rng(12)
    v = rng.exponential(0.05, 101)
    cal = C.calibrate(torch.from_numpy(v), "gradient")
    lo, hi = np.percentile(v, [10, 90])
    assert (cal.estimator, cal.count, cal.percentiles) == ("gradient", 101, (10.0, 90.0))
    assert cal.low == pytest.approx(lo, rel=1e-12) and cal.high == pytest.approx(hi, rel=1e-12)
    cal = C.calibrate(list(v), "sobel", percentiles=(25, 75))
    assert (cal.low, cal.high) == pytest.approx(tuple(np.percentile(v, [25, 75])), rel=1e-12)
    cal = C.calibrate(np.array([[1.0, 2.0], [3.0, 4.0]]), "x", percentiles=(0, 100))  # any shape, flattened
    assert (cal.low, cal.high, cal.count) == (1.0, 4.0, 4)


@pytest.mark.parametrize("values,pct,match", [
    ([1.0], (10, 90), "at least two"), ([1.0, 2.0], (90, 10), "percentiles"), ([1.0, 2.0], (-1, 50), "percentiles"),
    ([1.0, 2.0], (5, 101), "percentiles"), ([1.0, 2.0], (50, 50), "percentiles"),
])
def test_calibrate_errors(values, pct, match):
    with pytest.raises(ValueError, match=match):
        C.calibrate(values, "gradient", pct)


def test_calibration_scale_and_level():
    cal = C.Calibration("gradient", 0.1, 0.3)
    c = torch.tensor([0.0, 0.1, 0.15, 0.2, 0.3, 0.5])
    torch.testing.assert_close(cal.scale(c), torch.tensor([0.0, 0.0, 0.25, 0.5, 1.0, 1.0]), atol=1e-6, rtol=0)
    assert cal.level(c).tolist() == [-1, 0, 0, 0, 0, 1]  # strictly below low: −1, strictly above high: +1
    flat = C.Calibration("x", 0.2, 0.2)  # degenerate: no division by zero
    assert flat.scale(torch.tensor([0.1, 0.3])).tolist() == [0.0, 1.0]


def test_calibrate_tiles_uses_the_raw_tile_means():
    rng = np.random.default_rng(13)
    ims = [torch.from_numpy(rng.uniform(-1, 1, (1, 3, 24, 24))), torch.from_numpy(rng.uniform(-1, 1, (1, 3, 16, 32)))]
    cal = C.calibrate_tiles(ims, C.gradient_map, "gradient", tile=16, overlap=8, percentiles=(20, 80))
    vals = []  # the estimator runs on each tile (its own borders), as the sampler sees it
    for im in ims:
        grid = TileGrid.cover(im.shape[-2], im.shape[-1], 16, 8)
        vals += [C.gradient_map(im[:, :, t : t + 16, l : l + 16]).mean().item() for t, l in grid.positions]
    assert cal.count == len(vals) == 4 + 3
    assert (cal.low, cal.high) == pytest.approx(tuple(np.percentile(vals, [20, 80])), rel=1e-9)


# -------------------------------------------------------------------------------------------------- tile complexity
def _tile_maps(values: np.ndarray, ramp: float = 0.0):
    """An estimator returning, for tile k, value[k] + ramp·(column index) on every pixel."""
    v = torch.as_tensor(values, dtype=torch.float64)

    def fn(x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == len(v)
        cols = torch.arange(x.shape[-1], dtype=torch.float64)
        return (v[:, None, None, None] + ramp * cols).expand(len(v), 1, *x.shape[-2:]).clone()

    return fn


def test_tile_complexity_three_normalisations():
    tiles = torch.zeros(4, 3, 8, 8)
    vals = np.array([0.2, 0.5, 0.3, 0.9])
    fn = _tile_maps(vals, ramp=0.01)  # tile k: vals[k] + 0.01·col, col = 0..7; tile mean vals[k] + 0.035
    means = vals + 0.035
    # image: min–max over every pixel of every tile (lo = 0.2, hi = 0.97), then the tile mean
    lo, hi = 0.2, 0.9 + 0.07
    np.testing.assert_allclose(C.tile_complexity(tiles, fn, "image").numpy(), (means - lo) / (hi - lo + 1e-8),
                               rtol=1e-9)
    np.testing.assert_allclose(C.tile_complexity(tiles, fn, "patches").numpy(),
                               (means - means.min()) / (means.max() - means.min()), rtol=1e-9)
    cal = C.Calibration("x", 0.3, 0.7)
    np.testing.assert_allclose(C.tile_complexity(tiles, fn, "calibrated", cal).numpy(),
                               np.clip((means - 0.3) / 0.4, 0, 1), rtol=1e-9, atol=1e-12)


def test_tile_complexity_errors():
    tiles = torch.zeros(2, 3, 8, 8)
    fn = _tile_maps(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="needs a Calibration"):
        C.tile_complexity(tiles, fn, "calibrated")
    with pytest.raises(ValueError, match="normalize must be one of"):
        C.tile_complexity(tiles, fn, "global")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected an RGB batch"):
        C.tile_complexity(torch.zeros(2, 1, 8, 8), fn)


# ------------------------------------------------------------------------------------------- rank correlations
def test_rank_correlations_pooled_and_per_image():
    err = {"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0]}
    scores = {"same": {"a": [0.1, 0.2, 0.3], "b": [1.0, 2.0, 3.0]},
              "reversed": {"a": [3.0, 2.0, 1.0], "b": [3.0, 2.0, 1.0]}}
    rho = C.rank_correlations(scores, err)
    assert rho["same"] == pytest.approx({"all": 1.0, "a": 1.0, "b": 1.0})
    assert rho["reversed"]["a"] == pytest.approx(-1.0) and rho["reversed"]["b"] == pytest.approx(-1.0)
    # pooled: ranks of (3,2,1,3,2,1) against (1,2,3,10,20,30)
    from scipy.stats import spearmanr

    assert rho["reversed"]["all"] == pytest.approx(spearmanr([3, 2, 1, 3, 2, 1], [1, 2, 3, 10, 20, 30]).statistic)
    with pytest.raises(ValueError, match="has scores for"):
        C.rank_correlations({"x": {"a": [1, 2, 3]}}, err)
    # tensors on any device and arrays are accepted; ties are averaged ranks (scipy's spearmanr)
    t = C.rank_correlations({"t": {"a": torch.tensor([1.0, 1.0, 2.0]), "b": np.array([3.0, 2.0, 2.0])}}, err)["t"]
    assert t["a"] == pytest.approx(spearmanr([1, 1, 2], [1, 2, 3]).statistic) == pytest.approx(0.8660254)
    assert t["b"] == pytest.approx(-0.8660254)
