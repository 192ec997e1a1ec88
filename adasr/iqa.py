"""Offline image-quality metrics for AdaDiffSR's information gain: NLPD, GMSD, BRISQUE, NIQE, and one registry.

AdaDiffSR scores candidate outputs with full-reference (FR: PSNR, LPIPS, AHIQ, NLPD) and no-reference (NR: BRISQUE,
MUSIQ) metrics. This module holds the ones that run offline here, in one place for :mod:`adasr.adaptive`:
PSNR and LPIPS (thin wrappers of :mod:`adasr.metrics` / :mod:`adasr.lpips`), NLPD, GMSD, BRISQUE and NIQE. AHIQ and
MUSIQ are not here: they need transformer weights downloaded at run time (pyiqa); GMSD (FR) and NIQE (NR) are the
extra offline metrics a caller may use in their place, as stand-ins, not equivalents.

Conventions. Every metric takes torch tensors (B, 3, H, W), RGB, floating point, values in [0, 1], and returns a
(B,) float64 tensor. FR metrics are ``fn(x, y)`` (x: the image judged, y: the reference; all four are symmetric),
NR metrics ``fn(x)``. A non-tensor or non-float input raises TypeError; a wrong shape, a too small image, values
outside [0, 1] or NaN raise ValueError naming the argument (``x`` / ``y``).

NLPD (Laparra, Berardino, Ballé & Simoncelli 2016), FR, lower is better, 0 for identical images::

    Y = 0.299 R + 0.587 G + 0.114 B                       (BT.601 luma in [0, 1])
    L_1 … L_5 = Laplacian pyramid bands of Y, L_6 the low-pass residual (Burt–Adelson filter .05 .25 .4 .25 .05)
    y_k = L_k / (σ_k + P_k ∗ |L_k|)                         (fixed 5×5 filters P_k and constants σ_k of the paper)
    NLPD = (1/6) Σ_k √(mean_pixels (y_k(x) − y_k(y))²)

The pyramid and its borders follow the paper's MATLAB code (``NLP_dist.m``): symmetric padding, even samples kept,
up-sampling from a replicate-extended low-pass image, ``conv2(·, P_k, 'same')``. plenoptic's ``po.metric.nlpd``
uses the same P_k and σ_k but a binomial filter (1 4 6 4 1)/16 and other borders; a re-implementation of its
behaviour gives 0.277 / 0.183 where this gives 0.2880 / 0.1922 (astronaut, below). The reference notes' 0.289 / 0.193
is reached with the paper's filter and other border conventions (see ``tests/test_iqa.py``).

GMSD (Xue, Zhang, Mou & Bovik 2014), FR, lower is better, 0 for identical images: on Y (BT.601, [0, 1]) average-
pooled 2×2, gradient magnitudes m from Prewitt filters (/3), GMS = (2 m_x m_y + c)/(m_x² + m_y² + c) with
c = 170/255², GMSD = population standard deviation of GMS over the pixels (as piq 0.8's ``gmsd``).

BRISQUE (Mittal, Moorthy & Bovik 2012), NR, lower is better: OpenCV's ``cv2.quality.QualityBRISQUE`` (from
``opencv-contrib-python-headless``) with the LIVE model, on the image rounded to uint8 and reordered to BGR.
Scores are roughly 0 (best) to 100; **they depend on the image size** (astronaut: 12.4 at 256², 0.5 at 512²), so
only compare images of one size. A flat tile scores 0 ("perfect"): BRISQUE has nothing to measure there.

NIQE (Mittal, Soundararajan & Bovik 2013), NR, lower is better::

    Y = round(16 + 65.481 R + 128.553 G + 24.966 B)        (R, G, B of the uint8-rounded image; Y ∈ [16, 235])
    Î = (I − μ) / (σ + 1),  μ = w ∗ I,  σ = √|w ∗ I² − μ²|  (MSCN; w the 7×7 Gaussian, σ_w = 7/6)
    at scale 1 (Y cropped to whole b×b blocks) and scale 2 (MATLAB imresize(Y, 1/2), bicubic, antialiased),
    per block: the AGGD fit (α, β_l, β_r by moment matching) of Î → [α, (β_l + β_r)/2], and of the four neighbour
    products Î·Î_shifted (→, ↓, ↘, ↙) → [α, η, β_l, β_r], η = (β_r − β_l) Γ(2/α)/Γ(1/α): 18 features per scale
    μ, Σ = mean and covariance of the 36 features over the blocks (blocks with a NaN feature left out of Σ)
    NIQE = √((μ_p − μ)ᵀ pinv((Σ_p + Σ)/2) (μ_p − μ))

with the pristine model (μ_p, Σ_p) shipped in ``iqa_data/niqe_pris_params.npz``, **fitted with 96×96 blocks**.
A flat image (or too few textured blocks) gives NaN.

NIQE block size on tiles. With 96-pixel blocks a 128² tile holds one block, and a covariance over one block does not
exist (basicsr's code fails: numpy's pinv of the NaN covariance raises): :func:`niqe` refuses fewer than 2 blocks.
Measured on 188 tiles of 128² from the 17 training photos (``adasr.data.TRAIN_IMAGES``, up to 4×4 evenly spaced
tiles each), pristine vs Gaussian blur σ = 1, 2 px (``skimage.filters.gaussian``), noise σ = 0.02, 0.05 (clipped)
and bicubic ×4 down-up (antialiased down, as :mod:`adasr.data`); "ordered" is the fraction of tiles where the
degraded copy scores worse (higher) than the pristine one (NaN scores of a flat tile left out); "shift" is the median
max − min over four 128² windows shifted by 0/8/16/32 px inside 57 tiles of 256² (stability)::

    block  blocks/128²  ordered: blur1 blur2 noise.02 noise.05 bicubic×4  median pristine/blur2/noise.05  shift
    16     64                    0.91  0.98  0.71     0.82     0.96        4.13 / 7.48 / 5.79             0.42
    32     16                    0.88  0.95  0.82     0.93     0.90        6.15 / 8.54 / 9.22             0.87
    48     4 (96² used)          0.79  0.88  0.67     0.90     0.79        8.49 / 10.65 / 12.03           —
    64     4                     0.80  0.88  0.71     0.88     0.83        8.11 / 10.61 / 11.98           1.10
    96     1                     refused (no covariance)

16-pixel blocks order blur best but noise worst (71 % for σ = 0.02); 32 orders every degradation in ≥ 82 % of
tiles and is what the registry uses (:data:`NIQE_TILE_BLOCK`), for 128², 256² and 512² tiles alike so that values
stay comparable. On 256² tiles it also beats the paper's 96 (4 blocks): ordered
0.96 0.98 0.93 0.91 0.98 with 32 vs 0.88 0.91 0.72 0.89 0.91 with 96. Smaller blocks than the pristine model's
shift the values (a tile's NIQE is larger with larger blocks), and a tile's NIQE moves by ~0.9 (13 %) when the tile
moves by a few pixels: use it to rank candidates of one tile, not as an absolute quality.

Reference values (astronaut 256²: ``skimage.transform.resize(astronaut(), (256, 256), anti_aliasing=True)``;
blur ``skimage.filters.gaussian(σ=2, channel_axis=-1)``; noise ``clip(img + 0.05·N(0, 1))`` with
``numpy.random.default_rng(0)``; pristine / blur / noise; checked in ``tests/test_iqa.py``)::

    PSNR      ∞ / 22.64 / 26.47          GMSD     0 / 0.1363 / 0.0375
    NLPD      0 / 0.2880 / 0.1922        BRISQUE  12.394 / 59.118 / 26.732
    NIQE (b=96)  3.811 / 7.468 / 8.639

Normalisation (:meth:`MetricSpec.normalised`, 1 = best): t = clip((v − lo)/(hi − lo), 0, 1), and 1 − t for metrics
where lower is better. The ranges are fixed, chosen from the same 188 tiles × 5 degradations (FR against the
pristine tile; NR on all six versions): an ideal value anchors one end where one is reached (0 for the FR
distances, 0 for BRISQUE), the other end is a round number near the 99th percentile over the degraded tiles, so
that about 1.5 % or less of them clip::

    metric   better  lo   hi    on 128² tiles: 1st pct / median / 99th pct / max   clipped
    psnr     higher  15   50    18.95 / 28.37 / 65.3 / ∞ dB                        6 % at hi (near-flat tiles), 0 at lo
    lpips    lower   0    1     0.000 / 0.188 / 1.05 / 1.11                        1.5 % (noise on flat tiles)
    nlpd     lower   0    0.5   0.002 / 0.179 / 0.474 / 0.524                      0.4 %
    gmsd     lower   0    0.2   0.000 / 0.041 / 0.168 / 0.207                      0.1 %
    brisque  lower   0    100   0 / 45.6 / 100 / 100 (the SVR output stops at 100) 1.7 % at 100, 1.8 % at 0 (flat tiles)
    niqe     lower   2    20    3.56 / 7.87 / 23.1 / 28.2 (block 32)               1.4 % (a flat tile: NaN ×4)

PSNR's lo (15 dB) lies below every measured value (min 16.5 dB on 128², 19.0 on 256² tiles), NIQE's lo (2) below
every tile's NIQE (min 3.28 on 128², 2.46 on 256² tiles).

Cost per 128² tile (:func:`metric_costs`, batch of 16, one thread, a shared 2-core x86 CPU; ms vary ±30 % with the
machine's load; MACs count convolutions and matrix products only)::

    metric   kind  ms/tile  MACs/tile     what the MACs are
    psnr     FR    0.3      0             element-wise only
    lpips    FR    9.1      392,575,488   AlexNet trunk on both images + heads
    nlpd     FR    2.5      1,443,820     pyramids and normalisation filters of both lumas
    gmsd     FR    0.4      147,456       Prewitt filters on both pooled lumas (2·2·9·64²)
    brisque  NR    2.2      —             OpenCV (not counted)
    niqe     NR    5.0      712,976       MSCN filters and the ½ resize (block 32; AGGD fits element-wise)

(measured 2026-11-30 on an Intel Xeon with AVX-512/AMX, torch 2.13.0+cpu, OpenCV 5.0.0; the benchmark re-measures
with :func:`metric_costs`, which is what to trust on another machine).

Data files (``adasr/iqa_data/``): ``brisque_model_live.yml`` and ``brisque_range_live.yml`` (OpenCV's LIVE BRISQUE
model, from Debian's opencv-data 4.6.0, Apache-2.0), ``niqe_pris_params.npz`` (NIQE's pristine MVG, from the basicsr
1.4.2 sdist, Apache-2.0); sources and licences in ``iqa_data/ATTRIBUTION.md``. Each is checked against its sha256 in
:data:`IQA_FILES` before use (once per process and folder: the loaded model is cached); a mismatch raises
:class:`IQADataError`.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .lpips import MIN_SIZE as LPIPS_MIN_SIZE
from .lpips import cached_lpips
from .metrics import Y_OFFSET, Y_WEIGHTS
from .registry import WeightsError, sha256_file

# ----------------------------------------------------------------------------------------------------------------
# Shipped data files
# ----------------------------------------------------------------------------------------------------------------

#: Folder of the shipped parameter files (see ``ATTRIBUTION.md`` there for source, version and licence).
IQA_DATA_DIR = Path(__file__).resolve().parent / "iqa_data"
#: sha256 of every shipped parameter file; :func:`iqa_data_path` refuses a file that does not match.
IQA_FILES: dict[str, str] = {
    "brisque_model_live.yml": "4c44c7eec9e5139830c0bb0e4a044c9cd351ba5bbc9e3798beca3243e2782ff4",
    "brisque_range_live.yml": "a18427f4f7ad087524bd0d63389649a3899b51ca6d44a4d5f8d8171f1f914a9c",
    "niqe_pris_params.npz": "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
}
OPENCV_INSTALL_HINT = "pip install opencv-contrib-python-headless==5.0.0.93 (and uninstall opencv-python, " \
    "which installs a cv2 without the quality module over it)"


class IQADataError(WeightsError):
    """A shipped IQA parameter file is missing, unknown or does not match its recorded sha256."""


def iqa_data_path(name: str, data_dir: str | Path = IQA_DATA_DIR, *, verify: bool = True) -> Path:
    """Path of the shipped file ``name`` in ``data_dir``, after checking its sha256 against :data:`IQA_FILES`."""
    if name not in IQA_FILES:
        raise IQADataError(f"unknown IQA data file {name!r} (shipped: {sorted(IQA_FILES)})")
    path = Path(data_dir) / name
    if not path.is_file():
        raise IQADataError(f"{path} is missing (the package installation is incomplete)")
    if verify:
        digest = sha256_file(path)
        if digest != IQA_FILES[name]:
            raise IQADataError(f"{path} has sha256 {digest[:12]}…, expected {IQA_FILES[name][:12]}… (corrupted or "
                               "replaced; restore the shipped file)")
    return path


# ----------------------------------------------------------------------------------------------------------------
# Input checks and colour
# ----------------------------------------------------------------------------------------------------------------


def _check_image(x: Any, name: str, *, min_size: int = 1) -> None:
    """Raise unless ``x`` is a float tensor (B ≥ 1, 3, H, W) with H, W ≥ ``min_size`` and every value in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 3, H, W) in [0, 1], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got dtype {x.dtype} "
                        "(convert uint8 images with x.float() / 255)")
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (B, 3, H, W) (RGB, B ≥ 1), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"{name} must be at least {min_size}×{min_size} pixels for this metric, "
                         f"got {tuple(x.shape[-2:])}")
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if not (0.0 <= lo and hi <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}] (clamp it first)")


def _check_pair(x: Any, y: Any, *, min_size: int = 1) -> None:
    _check_image(x, "x", min_size=min_size)
    _check_image(y, "y", min_size=min_size)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


#: BT.601 luma weights, full range: Y = 0.299 R + 0.587 G + 0.114 B ∈ [0, 1] for RGB in [0, 1] (GMSD, NLPD).
LUMA_BT601: tuple[float, float, float] = (0.299, 0.587, 0.114)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 luma of RGB (B, 3, H, W) → (B, 1, H, W): 0.299 R + 0.587 G + 0.114 B (same scale)."""
    w = torch.tensor(LUMA_BT601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def luma_studio(x: torch.Tensor) -> torch.Tensor:
    """Studio-swing BT.601 luma on the [0, 255] scale (as :func:`adasr.metrics.rgb_to_y`, MATLAB's ``rgb2ycbcr``):
    RGB in [0, 1] (B, 3, H, W) → Y = 16 + 65.481 R + 128.553 G + 24.966 B ∈ [16, 235], (B, 1, H, W)."""
    w = torch.tensor(Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return Y_OFFSET + (x * w).sum(dim=1, keepdim=True)


# ----------------------------------------------------------------------------------------------------------------
# PSNR and LPIPS (thin wrappers, so that the registry has every metric in one place)
# ----------------------------------------------------------------------------------------------------------------


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RGB PSNR (dB) per image of two (B, 3, H, W) batches in [0, 1] → (B,) float64; +inf for identical images.

    PSNR = 10·log10(1 / MSE), MSE over the 3·H·W values of each image, computed in float64 (equal to
    :func:`adasr.metrics.psnr_rgb` on the uint8/[0, 255] copies, which uses L = 255 on the 255 scale).
    """
    _check_pair(x, y)
    mse = (x.detach().double() - y.detach().double()).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)  # 1/0 = inf → inf dB


def lpips(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS (AlexNet v0.1, :mod:`adasr.lpips`) of two (B, 3, H, W) batches in [0, 1] → (B,) float64.

    Maps the images to [−1, 1] (2x − 1) for :func:`adasr.lpips.cached_lpips`; H, W ≥ 31. 0 for identical images.
    """
    _check_pair(x, y, min_size=LPIPS_MIN_SIZE)
    with torch.no_grad():
        return cached_lpips()(x.float() * 2.0 - 1.0, y.float() * 2.0 - 1.0).double()


# ----------------------------------------------------------------------------------------------------------------
# GMSD
# ----------------------------------------------------------------------------------------------------------------

#: GMSD's stability constant for data in [0, 1]: the paper's c = 170 on the 255 scale, divided by 255².
GMSD_C = 170.0 / 255.0**2
#: Prewitt kernel for the horizontal derivative (its transpose gives the vertical one), /3 as in the paper.
PREWITT: tuple[tuple[float, ...], ...] = ((1 / 3, 0.0, -1 / 3),) * 3


def gmsd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient Magnitude Similarity Deviation of two RGB batches (B, 3, H, W) in [0, 1] → (B,) float64.

    On the BT.601 luma (:func:`luma`), after 2×2 average pooling (zero row/column added at the bottom/right when H
    or W is odd, as piq), m = √((h_x ∗ Y)² + (h_y ∗ Y)²) with Prewitt h (zero padding 1), and with c = 170/255²::

        GMS  = (2·m_x·m_y + c) / (m_x² + m_y² + c)
        GMSD = std(GMS)   (population standard deviation over the pixels; 0 for identical images, lower is better)

    H, W ≥ 2. Differentiable; computed in the input dtype.
    """
    _check_pair(x, y, min_size=2)
    lx, ly = luma(x), luma(y)
    odd = max(lx.shape[-2] % 2, lx.shape[-1] % 2)
    if odd:
        lx, ly = F.pad(lx, (0, odd, 0, odd)), F.pad(ly, (0, odd, 0, odd))
    lx, ly = F.avg_pool2d(lx, 2), F.avg_pool2d(ly, 2)
    h = torch.tensor(PREWITT, dtype=lx.dtype, device=lx.device)
    kernels = torch.stack([h, h.t()])[:, None]  # (2, 1, 3, 3)
    mx = F.conv2d(lx, kernels, padding=1).pow(2).sum(dim=1).sqrt()
    my = F.conv2d(ly, kernels, padding=1).pow(2).sum(dim=1).sqrt()
    gms = (2 * mx * my + GMSD_C) / (mx.pow(2) + my.pow(2) + GMSD_C)
    return gms.flatten(1).std(dim=1, correction=0).double()


# ----------------------------------------------------------------------------------------------------------------
# NLPD
# ----------------------------------------------------------------------------------------------------------------

#: Number of Laplacian-pyramid levels (5 band-pass + the low-pass residual).
NLPD_LEVELS = 6
#: Burt & Adelson's 5-tap low-pass filter (the paper's; the 2-D filter is its outer product).
NLPD_LOWPASS: tuple[float, ...] = (0.05, 0.25, 0.4, 0.25, 0.05)
#: Divisive-normalisation constants σ_k, finest level first (Laparra et al. 2016, fitted on the McGill database).
NLPD_SIGMAS: tuple[float, ...] = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
#: Divisive-normalisation 5×5 filters P_k, finest level first, as the paper's MATLAB matrices (applied as a
#: *convolution* with zero padding, i.e. MATLAB's ``conv2(·, P, 'same')``).
NLPD_DN_FILTERS: tuple[tuple[tuple[float, ...], ...], ...] = (
    ((0, 0, 0, 0, 0), (0, 0, 0.1011, 0, 0), (0, 0.1493, 0, 0.1460, 0.0072), (0, 0, 0.1015, 0, 0), (0, 0, 0, 0, 0)),
    ((0, 0, 0, 0, 0), (0, 0, 0.0757, 0, 0), (0, 0.1986, 0, 0.1846, 0), (0, 0, 0.0837, 0, 0), (0, 0, 0, 0, 0)),
    ((0, 0, 0, 0, 0), (0, 0, 0.0477, 0, 0), (0, 0.2138, 0, 0.2243, 0), (0, 0, 0.0467, 0, 0), (0, 0, 0, 0, 0)),
    ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (0, 0.2503, 0, 0.2616, 0), (0, 0, 0, 0, 0), (0, 0, 0, 0, 0)),
    ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (0, 0.2598, 0, 0.2552, 0), (0, 0, 0, 0, 0), (0, 0, 0, 0, 0)),
    ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0), (0, 0.2215, 0, 0.0717, 0), (0, 0, 0, 0, 0), (0, 0, 0, 0, 0)),
)
#: Smallest H, W: the fifth down-sampling must see ≥ 2 pixels for its symmetric padding (17 → 9 → 5 → 3 → 2 → 1).
NLPD_MIN_SIZE = 17


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of 'symmetric' padding (the edge sample repeated: … 1 0 | 0 1 … n−1 | n−1 n−2 …), pad ≤ n."""
    i = torch.arange(-pad, n + pad, device=device)
    i = torch.where(i < 0, -i - 1, i)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _pad_symmetric(x: torch.Tensor, pad: int) -> torch.Tensor:
    """'symmetric' padding (MATLAB's ``padarray(…, 'symmetric')``) of ``pad`` pixels on all four sides of (…, H, W)."""
    h, w = x.shape[-2:]
    return x.index_select(-2, _symmetric_index(h, pad, x.device)).index_select(-1, _symmetric_index(w, pad, x.device))


def _sep_conv(x: torch.Tensor, taps: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Separable 'valid' correlation of (B, 1, H, W) with the 1-D ``taps`` along H and W (stride along both)."""
    k = taps.numel()
    x = F.conv2d(x, taps.view(1, 1, k, 1), stride=(stride, 1))
    return F.conv2d(x, taps.view(1, 1, 1, k), stride=(1, stride))


def _laplacian_pyramid(img: torch.Tensor, levels: int = NLPD_LEVELS) -> list[torch.Tensor]:
    """Laplacian pyramid of (B, 1, H, W), finest first, as the paper's MATLAB code builds it.

    Down: blur with the 5×5 Burt–Adelson filter g (symmetric padding), keep the even rows/columns (0-based).
    Up: replicate-extend the low-pass image by one pixel, put 4× its values on the even positions of a zero grid,
    blur with g (zero padding) and crop to the finer size. Band k = image_k − up(image_{k+1}); the last level is
    the low-pass residual.
    """
    g = torch.tensor(NLPD_LOWPASS, dtype=img.dtype, device=img.device)
    bands = []
    for _ in range(levels - 1):
        h, w = img.shape[-2:]
        low = _sep_conv(_pad_symmetric(img, 2), g, stride=2)  # (B, 1, ⌈H/2⌉, ⌈W/2⌉)
        ext = F.pad(low, (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(ext, (4.0 * g).view(1, 1, 5, 1), stride=(2, 1))
        up = F.conv_transpose2d(up, g.view(1, 1, 1, 5), stride=(1, 2))
        bands.append(img - up[..., 4 : 4 + h, 4 : 4 + w])
        img = low
    bands.append(img)
    return bands


def _normalised_laplacian_pyramid(img: torch.Tensor) -> list[torch.Tensor]:
    """NLP of (B, 1, H, W): each band L_k divided by σ_k + (P_k ∗ |L_k|) (zero-padded 5×5 convolution)."""
    out = []
    for band, sigma, filt in zip(_laplacian_pyramid(img), NLPD_SIGMAS, NLPD_DN_FILTERS):
        p = torch.tensor(filt, dtype=img.dtype, device=img.device).flip((0, 1)).view(1, 1, 5, 5)  # conv → corr
        out.append(band / (sigma + F.conv2d(band.abs(), p, padding=2)))
    return out


def nlpd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Normalised Laplacian Pyramid Distance of two RGB batches (B, 3, H, W) in [0, 1] → (B,) float64.

    On the BT.601 luma in [0, 1] (:func:`luma`), with the six-level pyramid of :func:`_laplacian_pyramid` and the
    divisive normalisation of the paper (filters :data:`NLPD_DN_FILTERS`, constants :data:`NLPD_SIGMAS`)::

        y_k = L_k / (σ_k + P_k ∗ |L_k|)                                   k = 1 … 6
        NLPD = (1/6) Σ_k √( mean over pixels of (y_k(x) − y_k(y))² )

    0 for identical images (no ε is added inside the root); lower is better. H, W ≥ :data:`NLPD_MIN_SIZE`.
    Differentiable; computed in the input dtype.
    """
    _check_pair(x, y, min_size=NLPD_MIN_SIZE)
    px, py = _normalised_laplacian_pyramid(luma(x)), _normalised_laplacian_pyramid(luma(y))
    rms = [(a - b).pow(2).mean(dim=(1, 2, 3)).sqrt() for a, b in zip(px, py)]
    return torch.stack(rms).mean(dim=0).double()


# ----------------------------------------------------------------------------------------------------------------
# BRISQUE (OpenCV)
# ----------------------------------------------------------------------------------------------------------------

#: Smallest H, W passed to OpenCV's BRISQUE (its two scales and 7×7 windows need some room).
BRISQUE_MIN_SIZE = 16


@functools.lru_cache(maxsize=4)
def brisque_model(data_dir: Path = IQA_DATA_DIR) -> Any:
    """One ``cv2.quality.QualityBRISQUE`` per data folder and process, built from the sha256-verified LIVE model."""
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ModuleNotFoundError(f"BRISQUE needs OpenCV's contrib modules: {OPENCV_INSTALL_HINT}") from e
    if not hasattr(cv2, "quality"):
        raise ModuleNotFoundError(f"this cv2 ({getattr(cv2, '__file__', '?')}) has no quality module: "
                                  f"{OPENCV_INSTALL_HINT}")
    model = iqa_data_path("brisque_model_live.yml", data_dir)
    ranges = iqa_data_path("brisque_range_live.yml", data_dir)
    return cv2.quality.QualityBRISQUE_create(str(model), str(ranges))


def brisque(x: torch.Tensor, *, data_dir: str | Path = IQA_DATA_DIR) -> torch.Tensor:
    """BRISQUE (no reference; lower is better) of an RGB batch (B, 3, H, W) in [0, 1] → (B,) float64.

    Each image is rounded to uint8, reordered to BGR and scored by OpenCV's ``QualityBRISQUE`` with the LIVE
    model (an RBF support-vector regression on 36 MSCN/AGGD features at 2 scales; scores roughly 0–100, can leave
    that range). The score depends on the image size: the same content scores differently at 128², 256² and 512²
    (astronaut: 12.4 at 256², 0.5 at 512²), so compare images of one size only. H, W ≥ 16.
    """
    _check_image(x, "x", min_size=BRISQUE_MIN_SIZE)
    model = brisque_model(Path(data_dir))
    u8 = (x.detach().to("cpu", torch.float64) * 255.0).round().to(torch.uint8)
    bgr = u8.flip(1).permute(0, 2, 3, 1).numpy()
    return torch.tensor([float(model.compute(np.ascontiguousarray(im))[0]) for im in bgr], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------------------
# NIQE
# ----------------------------------------------------------------------------------------------------------------

#: The block size the shipped pristine model was fitted with (Mittal et al.: 96×96 blocks of pristine images).
NIQE_BLOCK = 96
#: The block size the registry uses for tiles (see the module docstring: 96 leaves one block in a 128² tile).
NIQE_TILE_BLOCK = 32
#: The constant C in the MSCN denominator (σ + C) on the [0, 255] scale.
NIQE_MSCN_C = 1.0
#: |MSCN| below this is floating-point cancellation noise of a flat neighbourhood and is set to 0.
NIQE_SNAP = 1e-8
#: Grid of AGGD shape parameters searched by moment matching (0.2, 0.201, …, 10, as the reference MATLAB code).
_AGGD_ALPHAS = torch.arange(200, 10_001, dtype=torch.float64) / 1000.0


@functools.lru_cache(maxsize=4)
def load_niqe_params(data_dir: Path = IQA_DATA_DIR) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(μ (36,), Σ (36, 36), window (7, 7)) float64 from the sha256-verified ``niqe_pris_params.npz``.

    μ and Σ are the multivariate Gaussian fitted to the 36 NIQE features of 96×96 blocks of pristine images;
    the window is the 7×7 Gaussian (σ = 7/6, sum 1) of the MSCN local statistics.
    """
    with np.load(iqa_data_path("niqe_pris_params.npz", data_dir), allow_pickle=False) as z:
        mu = torch.from_numpy(np.asarray(z["mu_pris_param"], dtype=np.float64).reshape(-1))
        cov = torch.from_numpy(np.asarray(z["cov_pris_param"], dtype=np.float64))
        win = torch.from_numpy(np.asarray(z["gaussian_window"], dtype=np.float64))
    if mu.shape != (36,) or cov.shape != (36, 36) or win.shape != (7, 7):
        raise IQADataError(f"unexpected NIQE parameter shapes {tuple(mu.shape)}, {tuple(cov.shape)}, "
                           f"{tuple(win.shape)}")
    return mu, cov, win


@functools.lru_cache(maxsize=1)
def _aggd_ratio_table() -> torch.Tensor:
    """ρ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)) on :data:`_AGGD_ALPHAS` (increasing in α: searched with searchsorted)."""
    a = _AGGD_ALPHAS
    return torch.exp(2 * torch.lgamma(2 / a) - torch.lgamma(1 / a) - torch.lgamma(3 / a))


def _aggd_fit(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moment-matching AGGD fit of samples v (…, N) → (α, β_l, β_r), each (…).

    σ_l² = mean of v² over v < 0, σ_r² = mean over v > 0, γ̂ = σ_l/σ_r, r̂ = (mean |v|)² / mean v²,
    R̂ = r̂ (γ̂³ + 1)(γ̂ + 1) / (γ̂² + 1)²; α is the grid value whose ρ(α) is nearest to R̂, and
    β_{l,r} = σ_{l,r} √(Γ(1/α)/Γ(3/α)). NaN when one side has no samples (a flat block).
    """
    v2 = v * v
    neg, pos = (v < 0).to(v.dtype), (v > 0).to(v.dtype)
    sl = ((v2 * neg).sum(-1) / neg.sum(-1)).sqrt()
    sr = ((v2 * pos).sum(-1) / pos.sum(-1)).sqrt()
    g = sl / sr
    r_hat = v.abs().mean(-1).pow(2) / v2.mean(-1)
    r_norm = r_hat * (g.pow(3) + 1) * (g + 1) / (g.pow(2) + 1).pow(2)
    table = _aggd_ratio_table().to(v.device)
    hi = torch.searchsorted(table, r_norm.clamp(max=float(table[-1])).contiguous()).clamp(1, table.numel() - 1)
    lo = hi - 1
    pick = torch.where((r_norm - table[lo]).abs() <= (table[hi] - r_norm).abs(), lo, hi)
    alpha = torch.where(torch.isnan(r_norm), torch.full_like(r_norm, math.nan), _AGGD_ALPHAS.to(v.device)[pick])
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, sl * scale, sr * scale


def _window_taps(window: torch.Tensor) -> torch.Tensor:
    """The 1-D taps h with window = h hᵀ (the shipped 7×7 Gaussian is separable; checked to 1e−12)."""
    u, s, _ = torch.linalg.svd(window)
    taps = u[:, 0] * s[0].sqrt()
    taps = taps * torch.sign(taps.sum())
    if float((torch.outer(taps, taps) - window).abs().max()) > 1e-12:
        raise IQADataError("the NIQE window in niqe_pris_params.npz is not separable")
    return taps


def _mscn(img: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of (B, 1, H, W) on the [0, 255] scale:
    (I − μ) / (σ + C) with μ = w ∗ I, σ = √|w ∗ I² − μ²| (7×7 Gaussian w, edge-replicated borders), C = 1;
    values below :data:`NIQE_SNAP` in magnitude become 0."""
    taps = _window_taps(window).to(img)
    b = img.shape[0]
    both = _sep_conv(F.pad(torch.cat([img, img * img]), (3, 3, 3, 3), mode="replicate"), taps)
    mu, m2 = both[:b], both[b:]
    mscn = (img - mu) / ((m2 - mu * mu).abs().sqrt() + NIQE_MSCN_C)
    # In a flat neighbourhood I − μ is 0 in exact arithmetic but ±1e−13 in floating point, and its sign would decide
    # on which side of the AGGD fit the sample counts (moving NIQE by ~0.002): snap such values to 0.
    return torch.where(mscn.abs() < NIQE_SNAP, torch.zeros_like(mscn), mscn)


def _niqe_features(mscn: torch.Tensor, block: int) -> torch.Tensor:
    """18 features of every block×block block of MSCN maps (B, 1, nh·block, nw·block) → (B, nh·nw, 18).

    [α, (β_l + β_r)/2] of the AGGD fitted to the block, then for each neighbour product (horizontal, vertical and
    the two diagonals; circular within the block, as the reference code) [α, η, β_l, β_r] with
    η = (β_r − β_l) Γ(2/α) / Γ(1/α).
    """
    b, _, h, w = mscn.shape
    blocks = mscn.view(b, h // block, block, w // block, block).permute(0, 1, 3, 2, 4).reshape(b, -1, block, block)
    alpha, bl, br = _aggd_fit(blocks.flatten(-2))
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        prod = blocks * torch.roll(blocks, shifts=shift, dims=(-2, -1))
        alpha, bl, br = _aggd_fit(prod.flatten(-2))
        eta = (br - bl) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        feats += [alpha, eta, bl, br]
    return torch.stack(feats, dim=-1)


def _cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = −0.5 (MATLAB's ``imresize`` 'bicubic')."""
    t = np.abs(t)
    return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t <= 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))


#: Taps of MATLAB's ``imresize(·, 0.5)`` (bicubic, antialiased: the kernel stretched ×2, 8 taps) for output pixel o
#: over input pixels 2o − 3 … 2o + 4: cubic(0.25 − k/2) for k = −3 … 4, normalised to sum 1.
_HALF_TAPS = _cubic(0.25 - np.arange(-3, 5) / 2.0) / _cubic(0.25 - np.arange(-3, 5) / 2.0).sum()


def _imresize_half(img: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) with H, W even → (B, 1, H/2, W/2) as MATLAB's ``imresize(img, 0.5)`` (bicubic, antialiasing,
    symmetric borders)."""
    taps = torch.tensor(_HALF_TAPS, dtype=img.dtype, device=img.device)
    return _sep_conv(_pad_symmetric(img, 3), taps, stride=2)


def _mvg_distance(feats: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """√((μ_p − μ)ᵀ pinv((Σ_p + Σ)/2) (μ_p − μ)) per image of features (B, n, 36) → (B,).

    μ: mean over blocks ignoring NaN features; Σ: sample covariance (n − 1) of the blocks without NaN; NaN when
    fewer than 2 such blocks remain (e.g. a flat image)."""
    out = []
    for f in feats:
        ok = ~torch.isnan(f).any(dim=1)
        if int(ok.sum()) < 2:
            out.append(torch.tensor(math.nan, dtype=f.dtype))
            continue
        d = mu_p - torch.nanmean(f, dim=0)
        cov = torch.cov(f[ok].t())
        out.append(torch.sqrt(d @ torch.linalg.pinv((cov_p + cov) / 2) @ d))
    return torch.stack(out)


def niqe(x: torch.Tensor, block: int = NIQE_BLOCK, *, data_dir: str | Path = IQA_DATA_DIR) -> torch.Tensor:
    """NIQE (no reference; lower is better) of an RGB batch (B, 3, H, W) in [0, 1] → (B,) float64.

    See the module docstring for the equations. ``block``: an even block size; the image is cropped to whole
    blocks and needs at least 2 of them (a covariance is fitted over the blocks). The pristine model was fitted
    with 96-pixel blocks (the default): use it for whole images; on 128² tiles use :data:`NIQE_TILE_BLOCK`
    (what ``NR_METRICS["niqe"]`` does). NaN when fewer than 2 blocks have finite features (a flat image).
    """
    _check_image(x, "x")
    if isinstance(block, bool) or not isinstance(block, int) or block < 8 or block % 2:
        raise ValueError(f"block must be an even int ≥ 8, got {block!r}")
    h, w = x.shape[-2:]
    nh, nw = h // block, w // block
    if nh * nw < 2:
        raise ValueError(f"NIQE needs at least 2 blocks of {block}×{block} pixels to fit a covariance; a {h}×{w} "
                         f"image has {nh * nw}: pass a smaller block (NIQE_TILE_BLOCK = {NIQE_TILE_BLOCK} for tiles)")
    mu_p, cov_p, window = load_niqe_params(Path(data_dir))
    with torch.no_grad():
        rgb = (x.detach().to("cpu", torch.float64) * 255.0).round() / 255.0  # the uint8 image, as it is saved
        img = luma_studio(rgb).round()  # integer Y in [16, 235], as the reference code reads 8-bit images
        img = img[..., : nh * block, : nw * block]
        f1 = _niqe_features(_mscn(img, window), block)
        f2 = _niqe_features(_mscn(_imresize_half(img), window), block // 2)
        return _mvg_distance(torch.cat([f1, f2], dim=-1), mu_p, cov_p)


# ----------------------------------------------------------------------------------------------------------------
# Registry, normalisation and costs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``fn`` (FR: ``fn(x, y)``, NR: ``fn(x)``; (B, 3, H, W) in [0, 1] → (B,)), its orientation and a
    fixed range [lo, hi] for :meth:`normalised`. Calling the spec calls ``fn``."""

    name: str
    kind: Literal["FR", "NR"]
    fn: Callable[..., torch.Tensor]
    higher_is_better: bool
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if self.kind not in ("FR", "NR"):
            raise ValueError(f"kind must be 'FR' or 'NR', got {self.kind!r}")
        if not self.lo < self.hi:
            raise ValueError(f"{self.name}: lo must be below hi, got lo={self.lo}, hi={self.hi}")

    def __call__(self, *images: torch.Tensor) -> torch.Tensor:
        return self.fn(*images)

    def normalised(self, value: float | torch.Tensor) -> float | torch.Tensor:
        """Raw value(s) → [0, 1], 1 best: t = clip((v − lo)/(hi − lo), 0, 1), then t (higher is better) or 1 − t.

        Floats give a float, tensors a float64 tensor of the same shape; NaN stays NaN, ±inf clip to the ends.
        """
        if isinstance(value, torch.Tensor):
            t = ((value.detach().double() - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        else:
            v = float(value)
            if math.isnan(v):
                return math.nan
            t = min(max((v - self.lo) / (self.hi - self.lo), 0.0), 1.0)
        return t if self.higher_is_better else 1.0 - t


#: Full-reference metrics, ``spec(x, y)`` → (B,): name → :class:`MetricSpec`.
FR_METRICS: dict[str, MetricSpec] = {
    "psnr": MetricSpec("psnr", "FR", psnr, True, 15.0, 50.0),
    "lpips": MetricSpec("lpips", "FR", lpips, False, 0.0, 1.0),
    "nlpd": MetricSpec("nlpd", "FR", nlpd, False, 0.0, 0.5),
    "gmsd": MetricSpec("gmsd", "FR", gmsd, False, 0.0, 0.2),
}
#: No-reference metrics, ``spec(x)`` → (B,): name → :class:`MetricSpec` (NIQE with :data:`NIQE_TILE_BLOCK`).
NR_METRICS: dict[str, MetricSpec] = {
    "brisque": MetricSpec("brisque", "NR", brisque, False, 0.0, 100.0),
    "niqe": MetricSpec("niqe", "NR", functools.partial(niqe, block=NIQE_TILE_BLOCK), False, 2.0, 20.0),
}
#: Every metric by name.
METRICS: dict[str, MetricSpec] = {**FR_METRICS, **NR_METRICS}


def normalised(name: str, value: float | torch.Tensor) -> float | torch.Tensor:
    """``METRICS[name].normalised(value)``: the metric's raw value(s) mapped to [0, 1], 1 best."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} (have: {sorted(METRICS)})")
    return METRICS[name].normalised(value)


def cost_test_batch(shape: tuple[int, int] = (128, 128), batch: int = 16, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference, distorted) float32 (batch, 3, H, W) in [0, 1] for cost measurements: a smooth random field
    (bilinear ×8 upsampling of seeded noise) and a copy with Gaussian noise σ = 0.05, clamped."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape
    coarse = torch.rand(batch, 3, max(1, h // 8), max(1, w // 8), generator=g)
    ref = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    return ref, dist


def metric_costs(shape: tuple[int, int] = (128, 128), *, batch: int = 16, repeats: int = 3, threads: int | None = 1,
                 names: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Measure every metric's cost on a batch of ``batch`` tiles of ``shape`` (nothing is hard-coded).

    Returns {name: {"kind", "ms_per_tile", "macs_per_tile", "macs", "shape", "batch", "threads"}}: ``ms_per_tile``
    is the median over ``repeats`` timed calls (after one warm-up call, which also loads files and models) divided
    by ``batch``; ``macs_per_tile`` (also under ``macs``: the same per-tile number) counts the convolutions and
    matrix products of the torch metrics with :func:`adasr.cost.count_macs` (element-wise work is free there),
    None for BRISQUE (OpenCV). ``threads``: torch's and OpenCV's thread count during the measurement (restored
    afterwards; None keeps the current ones). ``names``: a subset of :data:`METRICS` (default: all). The registry's
    NIQE needs ``shape`` to hold 2 blocks of :data:`NIQE_TILE_BLOCK` (at least 64×32).
    """
    from .cost import count_macs

    if repeats < 1 or batch < 1:
        raise ValueError(f"repeats and batch must be ≥ 1, got {repeats}, {batch}")
    unknown = sorted(set(names or ()) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown} (have: {sorted(METRICS)})")
    specs = METRICS if names is None else {n: METRICS[n] for n in names}
    ref, dist = cost_test_batch(shape, batch)
    import cv2

    old_torch, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    if threads is not None:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    try:
        out: dict[str, dict[str, Any]] = {}
        for name, spec in specs.items():
            def call(spec: MetricSpec = spec) -> torch.Tensor:
                return spec(dist, ref) if spec.kind == "FR" else spec(dist)

            with torch.no_grad():
                call()  # warm-up: loads files, builds models
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
            macs = None if name == "brisque" else count_macs(call) // batch
            out[name] = {"kind": spec.kind, "ms_per_tile": 1000.0 * statistics.median(times) / batch,
                         "macs_per_tile": macs, "macs": macs, "shape": tuple(shape), "batch": batch,
                         "threads": torch.get_num_threads()}
        return out
    finally:
        torch.set_num_threads(old_torch)
        cv2.setNumThreads(old_cv)
