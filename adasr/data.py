"""Images: scikit-image's bundled photos for training, held-out evaluation crops, and the ×s degradation.

Degradation (documented once, used everywhere): HR in [−1, 1] → LR = bicubic downscale by 1/s **with antialias**
(``F.interpolate(..., mode="bicubic", antialias=True)``) → condition up(LR) = bicubic upscale ×s (no antialias),
clamped to [−1, 1]. Nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

#: scikit-image loaders used for training (17 photos, about 6.2 Mpx); none of them is evaluated on.
TRAIN_IMAGES: tuple[str, ...] = (
    "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass",
    "gravel", "cell", "coins", "clock", "colorwheel", "page", "text", "stereo_motorcycle_left",
    "stereo_motorcycle_right",
)
#: Held out from training; evaluation uses their 256×256 centre crops.
HELDOUT_IMAGES: tuple[str, ...] = ("astronaut", "camera", "moon")


def load_skimage(name: str) -> np.ndarray:
    """A bundled scikit-image photo as uint8 RGB (H, W, 3); gray images are replicated to 3 channels."""
    import skimage.data as skd

    if name.startswith("stereo_motorcycle_"):
        left, right, _ = skd.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        loader: Callable[[], np.ndarray] | None = getattr(skd, name, None)
        if loader is None:
            raise ValueError(f"scikit-image has no bundled image {name!r}")
        img = loader()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def center_crop(img: np.ndarray, size: int = 256) -> np.ndarray:
    """The central ``size``×``size`` window of an (H, W, C) array."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"image {h}×{w} is smaller than the crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def heldout_crops(size: int = 256) -> dict[str, np.ndarray]:
    """{name: uint8 (size, size, 3)} centre crops of the held-out images."""
    return {n: center_crop(load_skimage(n), size) for n in HELDOUT_IMAGES}


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (1, 3, H, W) in [−1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) or (3, H, W) in [−1, 1] → uint8 (H, W, 3), rounded and clipped."""
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError("to_uint8 takes a single image")
        x = x[0]
    y = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return y.permute(1, 2, 0).numpy()


def downscale(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """LR = bicubic ↓s with antialias; (B, C, H, W) → (B, C, H/s, W/s). H, W must be multiples of s."""
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not a multiple of the scale {scale}")
    return F.interpolate(hr, scale_factor=1.0 / scale, mode="bicubic", antialias=True, align_corners=False)


def upscale_bicubic(lr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """up(LR) = bicubic ↑s, clamped to [−1, 1]; (B, C, h, w) → (B, C, s·h, s·w)."""
    return F.interpolate(lr, scale_factor=float(scale), mode="bicubic", align_corners=False).clamp(-1, 1)


@dataclass
class CropSampler:
    """Random HR crops (with flips and 90° rotations) from a list of images, chosen in proportion to their area.

    ``sample(batch, generator)`` → float32 (B, 3, crop, crop) in [−1, 1]. All randomness comes from ``generator``.
    """

    images: list[torch.Tensor]
    crop: int = 64

    @classmethod
    def from_names(cls, names: tuple[str, ...] = TRAIN_IMAGES, crop: int = 64) -> "CropSampler":
        return cls([to_tensor(load_skimage(n))[0] for n in names], crop)

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("CropSampler needs at least one image")
        for im in self.images:
            if im.shape[-1] < self.crop or im.shape[-2] < self.crop:
                raise ValueError(f"image {tuple(im.shape)} smaller than crop {self.crop}")
        areas = torch.tensor([float(im.shape[-1] * im.shape[-2]) for im in self.images])
        self._weights = areas / areas.sum()

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.multinomial(self._weights, batch, replacement=True, generator=generator)
        out = []
        for i in idx.tolist():
            im = self.images[i]
            h, w = im.shape[-2:]
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=generator))
            patch = im[:, top : top + self.crop, left : left + self.crop]
            flips = torch.randint(0, 2, (2,), generator=generator).tolist()
            if flips[0]:
                patch = patch.flip(-1)
            if flips[1]:
                patch = patch.flip(-2)
            k = int(torch.randint(0, 4, (1,), generator=generator))
            out.append(torch.rot90(patch, k, dims=(-2, -1)))
        return torch.stack(out).contiguous()


def make_pair(hr: torch.Tensor, scale: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, up(LR)) for a batch of HR images (B, 3, H, W)."""
    lr = downscale(hr, scale)
    return lr, upscale_bicubic(lr, scale)


def training_lr_patches(
    n: int, lr_size: int = 48, scale: int = 4, seed: int = 0, images: tuple[str, ...] = TRAIN_IMAGES
) -> torch.Tensor:
    """``n`` LR patches (n, 3, lr_size, lr_size) in [−1, 1]: seeded random HR crops of the training photos (flips,
    rotations) of the photos at least lr_size·scale pixels high and wide, downscaled ×``scale``. What AdaBM calibrates and fine-tunes on (LR images only, never HR)."""
    if n < 1 or lr_size < 1:
        raise ValueError(f"n and lr_size must be ≥ 1, got {n}, {lr_size}")
    crop = lr_size * scale
    photos = [to_tensor(load_skimage(name))[0] for name in images]
    photos = [p for p in photos if min(p.shape[-2:]) >= crop]  # e.g. 'page' (191 px) is too small for 192
    if not photos:
        raise ValueError(f"no image is at least {crop}×{crop} pixels")
    sampler = CropSampler(photos, crop)
    return downscale(sampler.sample(n, torch.Generator().manual_seed(seed)), scale)
