"""Patch complexity: how much detail a region of the up-sampled LR image holds (AdaSR eq. for C_p).

Every estimator maps the condition up(LR), (B, 3, H, W) in [−1, 1], to a per-pixel map C(x) (B, 1, H, W) ≥ 0,
computed on BT.601 gray I = 0.299 R + 0.587 G + 0.114 B in [0, 1]:

* ``gradient`` (AdaSR): C = (|I(x+1, y) − I(x, y)| + |I(x, y+1) − I(x, y)|) / 2, forward differences, L1,
  replicate-padded back to H×W;
* ``sobel`` (AdaBM's I2B score): C = sqrt(G_x² + G_y²) with the 3×3 Sobel kernels / 8 (a unit ramp gives 1);
* ``variance``: C = E_w[I²] − E_w[I]² over a 5×5 window w (reflect padding; AdaSR pads with zeros);
* ``fft``: the high-band energy ratio of each ``block``×``block`` block, Σ_{|f|>f_c} |F|² / Σ_{f≠0} |F|²
  (f in cycles/pixel, f_c = ``cutoff``), constant over the block — a ratio, blind to the amount of energy, so a
  flat block with faint noise scores high and a strong edge scores low;
* ``uncertainty``: how much the model's clean estimate depends on the noise at timestep t,
  C = mean_c |x̂0(x_t^a) − x̂0(x_t^b)| for two independent noisings x_t = √ᾱ_t·0 + √(1−ᾱ_t)·ε of the sampler's
  start (:func:`~adasr.diffusion.objectives.q_sample`). AdaSR's form |x̂0(ε̂) − x̂0| needs a network with two
  heads (ε and x0); for a one-head network it is identically 0 (see :func:`x0_disagreement`), so we measure the
  disagreement between two draws instead;
* ``learned``: a small CNN trained to predict, per pixel, the error that remains after one sampling step
  (:mod:`adasr.adaptive.learned`).

Normalisation (``normalize``), chosen per use:

* ``"image"`` — min–max of the pixel map **per image** (AdaSR normalises over the whole batch tensor instead);
* ``"patches"`` — min–max of the patch scores C_p within each image (the simplest tile gets 0, the busiest 1);
* ``"calibrated"`` — AdaBM-style: C_p ↦ clip((C_p − q_lo) / (q_hi − q_lo), 0, 1) with q_lo, q_hi percentiles of
  C_p over a calibration set of images (:func:`calibrate`); comparable across images.

Patch complexity (AdaSR): C_p = (1/|p|) Σ_{(i,j)∈p} C(x_ij), the mean of the map over each tile of a
:class:`~adasr.sampling.tiles.TileGrid`. :func:`rank_correlations` measures how well an estimator's C_p orders
the tiles as a true per-tile error does (Spearman ρ).

``gray`` and ``gradient_map`` live in :mod:`adasr.adaptive.gradient` (shared with the learned estimator, which
this module imports to build ``learned``) and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ESTIMATORS, NORMALIZATIONS
from ..diffusion.objectives import predict_x0, q_sample
from ..sampling.tiles import TileGrid
from .gradient import check_rgb, gradient_map, gray
from .learned import ComplexityNet, load_complexity_net, spearman

if TYPE_CHECKING:  # pragma: no cover
    from ..srmodel import SRDiffusion

Normalization = Literal["image", "patches", "calibrated"]
Estimator = Callable[[torch.Tensor], torch.Tensor]


def sobel_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_x, G_y), each (B, 1, H, W): Sobel derivatives of the gray image, kernels [−1 0 1; −2 0 2; −1 0 1]/8 and its
    transpose, replicate padding (kornia's ``spatial_gradient(mode='sobel', normalized=True)``)."""
    i = F.pad(gray(x), (1, 1, 1, 1), mode="replicate")
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=i.dtype, device=i.device) / 8
    return F.conv2d(i, k.view(1, 1, 3, 3)), F.conv2d(i, k.t().contiguous().view(1, 1, 3, 3))


def sobel_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude (B, 1, H, W): sqrt(G_x² + G_y²) (see :func:`sobel_gradients`)."""
    gx, gy = sobel_gradients(x)
    return torch.sqrt(gx * gx + gy * gy)


def variance_map(x: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Local variance (B, 1, H, W) over a window×window box: E[I²] − E[I]², reflect padding (clamped at 0)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    i = gray(x)
    r = window // 2
    ip = F.pad(i, (r, r, r, r), mode="reflect" if min(i.shape[-2:]) > r else "replicate")
    mean = F.avg_pool2d(ip, window, stride=1)
    mean_sq = F.avg_pool2d(ip * ip, window, stride=1)
    return (mean_sq - mean * mean).clamp_min(0)


def fft_highband_map(x: torch.Tensor, block: int = 16, cutoff: float = 0.25) -> torch.Tensor:
    """High-band energy ratio per block (B, 1, H, W), constant within each block×block block.

    For a block with 2-D DFT F(u, v) (mean removed), ratio = Σ_{|f|>cutoff} |F|² / Σ_{f≠0} |F|², where
    |f| = sqrt(u² + v²) in cycles/pixel (Nyquist 0.5). A flat block has ratio 0. H and W need not be multiples of
    ``block``: the image is replicate-padded and the map cropped back.
    """
    if block < 2:
        raise ValueError(f"block must be at least 2, got {block}")
    if not 0 < cutoff < 0.5 * 2**0.5:
        raise ValueError(f"cutoff must be in (0, 0.707) cycles/pixel, got {cutoff}")
    i = gray(x)
    B, _, H, W = i.shape
    ph, pw = (-H) % block, (-W) % block
    if ph or pw:
        i = F.pad(i, (0, pw, 0, ph), mode="replicate")
    Hp, Wp = i.shape[-2:]
    blocks = i.view(B, Hp // block, block, Wp // block, block).permute(0, 1, 3, 2, 4)
    blocks = blocks - blocks.mean(dim=(-1, -2), keepdim=True)
    power = torch.fft.fft2(blocks.double()).abs() ** 2
    f = torch.fft.fftfreq(block, dtype=torch.float64, device=x.device)
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    total = power.sum(dim=(-1, -2))
    high = (power * (radius > cutoff)).sum(dim=(-1, -2))
    ratio = torch.where(total > 1e-12, high / total.clamp_min(1e-30), torch.zeros_like(total)).to(x.dtype)
    out = ratio.repeat_interleave(block, dim=1).repeat_interleave(block, dim=2)[:, None]
    return out[..., :H, :W]


def x0_disagreement(x_t: torch.Tensor, eps_hat: torch.Tensor, x0_hat: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """AdaSR's uncertainty |x̂0(ε̂) − x̂0| averaged over channels, (B, 1, H, W), with x̂0(ε̂) = (x_t − √(1−ᾱ) ε̂)/√ᾱ.

    For a network with separate ε and x0 heads this measures their disagreement. If ε̂ is itself derived from
    x̂0 (a one-head network: ε̂ = (x_t − √ᾱ x̂0)/√(1−ᾱ)), then x̂0(ε̂) = x̂0 up to rounding and the map is 0.
    x̂0(ε̂) is :func:`~adasr.diffusion.objectives.predict_x0` ('epsilon'), in the dtype of ``x_t``.
    """
    a = float(alpha_bar)
    if not 0 < a <= 1:
        raise ValueError(f"alpha_bar must be in (0, 1], got {alpha_bar}")
    x0_eps = predict_x0("epsilon", eps_hat, x_t, a)
    return (x0_eps - x0_hat).abs().mean(1, keepdim=True)


@torch.no_grad()
def uncertainty_map(model: "SRDiffusion", x: torch.Tensor, t: int = 999, seed: int = 0,
                    precision: str | None = None) -> torch.Tensor:
    """Two-draw disagreement of the model's clean estimate at timestep ``t`` (B, 1, H, W), in image units [0, 1].

    C = mean_c |x̂0(x_t^a, t, up) − x̂0(x_t^b, t, up)| / (2 s) with x_t = √(1−ᾱ_t)·ε (the sampler's start is
    pure noise; at t < T−1 the clean part is the model's own x̂0 from t = T−1). Costs two UNet evaluations per
    image; H, W must be multiples of the UNet's ``multiple``. ``precision`` as in :func:`adasr.upscale_tensor`
    ('auto': bf16 autocast where the hardware runs it natively).
    """
    from ..runtime import autocast, resolve_precision

    check_rgb(x)
    prec = resolve_precision(precision, x.device)
    T = model.num_train_timesteps
    if not 0 <= t < T:
        raise ValueError(f"t must be in [0, {T}), got {t}")
    g = torch.Generator().manual_seed(seed)
    ab = float(model.alphas_cumprod[t])
    B = x.shape[0]
    tt = torch.full((2 * B,), t, dtype=torch.long, device=x.device)
    eps = torch.randn((2 * B, *x.shape[1:]), generator=g).to(x)
    clean = torch.zeros_like(eps)
    if t < T - 1:  # the part of x_t that is signal: the model's first guess from pure noise
        start = torch.full((2 * B,), T - 1, dtype=torch.long, device=x.device)
        e0 = torch.randn((2 * B, *x.shape[1:]), generator=g).to(x)
        with autocast(x.device, prec):
            out0 = model.unet(e0, start, x.repeat(2, 1, 1, 1))
        clean = model.predict_x0(out0.float(), e0, start)
    x_t = q_sample(clean, eps, ab)
    with autocast(x.device, prec):
        out = model.unet(x_t, tt, x.repeat(2, 1, 1, 1))
    x0 = model.predict_x0(out.float(), x_t, tt)
    s = model.config.residual_scale if model.config.residual else 1.0
    return (x0[:B] - x0[B:]).abs().mean(1, keepdim=True) / (2 * s)


def make_estimator(
    name: str, *, model: "SRDiffusion | None" = None, net: ComplexityNet | None = None, t: int = 999, seed: int = 0
) -> Estimator:
    """The raw per-pixel map function for estimator ``name`` (one of :data:`ESTIMATORS`).

    ``uncertainty`` needs ``model``; ``learned`` uses ``net`` or loads the shipped one.
    """
    if name == "gradient":
        return gradient_map
    if name == "sobel":
        return sobel_map
    if name == "variance":
        return variance_map
    if name == "fft":
        return fft_highband_map
    if name == "uncertainty":
        if model is None:
            raise ValueError("the 'uncertainty' estimator needs the diffusion model (model=...)")
        return lambda x: uncertainty_map(model, x, t=t, seed=seed)
    if name == "learned":
        n = net if net is not None else load_complexity_net()
        return n.predict
    raise ValueError(f"unknown complexity estimator {name!r}; choose from {', '.join(ESTIMATORS)}")


def normalize_image(c: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image min–max of a map (B, 1, H, W) → [0, 1]: (c − min_b)/(max_b − min_b + eps), each image b alone."""
    flat = c.flatten(1)
    lo = flat.min(1).values.view(-1, *([1] * (c.ndim - 1)))
    hi = flat.max(1).values.view(-1, *([1] * (c.ndim - 1)))
    return (c - lo) / (hi - lo + eps)


def patch_complexity(cmap: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """C_p = mean of C over each tile of ``grid``: (1, 1, H, W) → (N,) in ``grid.positions`` order."""
    if cmap.ndim != 4 or cmap.shape[:2] != (1, 1) or tuple(cmap.shape[-2:]) != (grid.height, grid.width):
        raise ValueError(f"expected a (1, 1, {grid.height}, {grid.width}) map, got {tuple(cmap.shape)}")
    return torch.stack([cmap[0, 0, t : t + grid.tile_h, l : l + grid.tile_w].mean() for t, l in grid.positions])


def patch_means(cmap: torch.Tensor, patch: int) -> torch.Tensor:
    """Mean of a map over non-overlapping patch×patch patches (B, 1, H, W) → (B, ⌈H/p⌉, ⌈W/p⌉); edge patches are
    smaller (AdaSR's grid). For drawing step maps at any patch size."""
    if patch < 1:
        raise ValueError(f"patch must be at least 1, got {patch}")
    B, _, H, W = cmap.shape
    ph, pw = (-H) % patch, (-W) % patch
    ones = torch.ones_like(cmap)
    s = F.avg_pool2d(F.pad(cmap, (0, pw, 0, ph)), patch, divisor_override=1)
    n = F.avg_pool2d(F.pad(ones, (0, pw, 0, ph)), patch, divisor_override=1)
    return (s / n)[:, 0]


@dataclass(frozen=True)
class Calibration:
    """Percentile thresholds of patch complexity over a calibration set (AdaBM-style).

    ``low``/``high`` are the ``percentiles`` (e.g. 10 and 90) of the raw C_p values; :meth:`scale` maps a C_p to
    [0, 1] linearly between them, :meth:`level` to AdaBM's three classes −1 (C_p < low), 0, +1 (C_p > high).
    """

    estimator: str
    low: float
    high: float
    percentiles: tuple[float, float] = (10.0, 90.0)
    count: int = 0

    def scale(self, c_p: torch.Tensor) -> torch.Tensor:
        return ((c_p - self.low) / max(self.high - self.low, 1e-12)).clamp(0, 1)

    def level(self, c_p: torch.Tensor) -> torch.Tensor:
        return (c_p > self.high).long() - (c_p < self.low).long()


def calibrate(values: Sequence[float] | torch.Tensor | np.ndarray, estimator: str,
              percentiles: tuple[float, float] = (10.0, 90.0)) -> Calibration:
    """A :class:`Calibration` from raw patch complexities gathered over calibration images (numpy percentiles,
    linear interpolation)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo_p, hi_p = percentiles
    if v.size < 2:
        raise ValueError("calibration needs at least two patch values")
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    lo, hi = np.percentile(v, [lo_p, hi_p])
    return Calibration(estimator, float(lo), float(hi), (float(lo_p), float(hi_p)), int(v.size))


def normalized_patch_complexity(
    raw_map: torch.Tensor, grid: TileGrid, normalize: Normalization = "image", calibration: Calibration | None = None
) -> torch.Tensor:
    """C_p in [0, 1] for each tile of ``grid`` from a whole-image raw map (1, 1, H, W), normalised as ``normalize``
    says (see the module docstring)."""
    if normalize == "image":
        return patch_complexity(normalize_image(raw_map), grid)
    return _normalize_patches(patch_complexity(raw_map, grid), normalize, calibration)


def tile_complexity(
    cond_tiles: torch.Tensor, estimator: Estimator, normalize: Normalization = "image",
    calibration: Calibration | None = None,
) -> torch.Tensor:
    """C_p in [0, 1] of each tile (N, 3, h, w) of one image → (N,): the estimator runs on the tiles (what the
    sampler sees), and the tiles together stand for the image in the normalisation."""
    check_rgb(cond_tiles)
    raw = estimator(cond_tiles)
    if normalize == "image":
        lo, hi = raw.min(), raw.max()
        return ((raw - lo) / (hi - lo + 1e-8)).mean(dim=(1, 2, 3))
    return _normalize_patches(raw.mean(dim=(1, 2, 3)), normalize, calibration)


def _normalize_patches(c_p: torch.Tensor, normalize: str, calibration: Calibration | None) -> torch.Tensor:
    if normalize == "patches":
        return (c_p - c_p.min()) / (c_p.max() - c_p.min() + 1e-12)
    if normalize == "calibrated":
        if calibration is None:
            raise ValueError("normalize='calibrated' needs a Calibration (see adasr.adaptive.complexity.calibrate)")
        return calibration.scale(c_p)
    raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")


def calibrate_tiles(
    images: Sequence[torch.Tensor], estimator: Estimator, name: str, *, tile: int, overlap: int,
    percentiles: tuple[float, float] = (10.0, 90.0), device: str | torch.device = "cpu",
) -> Calibration:
    """Calibrate on condition images (each (1, 3, H, W) up(LR)): raw C_p of every tile of every image, then
    :func:`calibrate`. Use the tile size the sampler will use, and images that are not evaluated on."""
    values = []
    for im in images:
        grid = TileGrid.cover(im.shape[-2], im.shape[-1], tile, overlap)
        values.append(estimator(grid.split(im.to(device))).mean(dim=(1, 2, 3)).cpu())
    return calibrate(torch.cat(values), name, percentiles)


def calibration_images(size: int = 512, scale: int = 4) -> list[torch.Tensor]:
    """Condition images up(LR) (1, 3, ≤size, ≤size) of the training photos (:data:`adasr.data.TRAIN_IMAGES`,
    centre crops to a multiple of 4·scale): the default calibration set, disjoint from the held-out images."""
    from ..data import TRAIN_IMAGES, downscale, load_skimage, to_tensor, upscale_bicubic

    out = []
    for name in TRAIN_IMAGES:
        img = load_skimage(name)
        h, w = img.shape[:2]
        ch = min(size, h) // (4 * scale) * (4 * scale)
        cw = min(size, w) // (4 * scale) * (4 * scale)
        top, left = (h - ch) // 2, (w - cw) // 2
        hr = to_tensor(img[top : top + ch, left : left + cw])
        out.append(upscale_bicubic(downscale(hr, scale), scale))
    return out


def default_calibration(
    name: str, *, tile: int, overlap: int, model: "SRDiffusion | None" = None,
    percentiles: tuple[float, float] = (10.0, 90.0), estimator_fn: Estimator | None = None,
    device: str | torch.device = "cpu",
) -> Calibration:
    """Calibrate estimator ``name`` on :func:`calibration_images` with the sampler's tiling (a second for the
    image-filter estimators; ``uncertainty`` runs the model twice on every tile, tens of seconds on a CPU)."""
    fn = estimator_fn or make_estimator(name, model=model)
    return calibrate_tiles(calibration_images(), fn, name, tile=tile, overlap=overlap, percentiles=percentiles,
                           device=device)


def as_vector(values: Sequence[float] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-tile values (a list, an array or a tensor on any device) as a flat float64 array (N,)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def rank_correlations(scores: Mapping[str, Mapping[str, Sequence[float] | torch.Tensor]],
                      error: Mapping[str, Sequence[float] | torch.Tensor]) -> dict[str, dict[str, float]]:
    """Does an estimator rank the tiles as the true error does? Spearman ρ (:func:`~adasr.adaptive.learned.spearman`,
    ties averaged) of each estimator's raw C_p with the true per-tile error.

    Args:
        scores: ``{estimator: {image name: C_p (N,)}}`` (raw, un-normalised; N may differ between images).
        error: ``{image name: true error per tile (N,)}``.

    Returns ``{estimator: {"all": ρ over every tile of every image, image name: ρ over that image's tiles}}``.
    """
    names = list(error)
    out: dict[str, dict[str, float]] = {}
    for e, per in scores.items():
        if set(per) != set(names):
            raise ValueError(f"estimator {e!r} has scores for {sorted(per)}, expected {sorted(names)}")
        row = {"all": spearman(np.concatenate([as_vector(per[n]) for n in names]),
                               np.concatenate([as_vector(error[n]) for n in names]))}
        row.update({n: spearman(as_vector(per[n]), as_vector(error[n])) for n in names})
        out[e] = row
    return out
