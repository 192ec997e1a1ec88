"""Regenerate the bundled images in data/ from scikit-image's photos and print their sha256 (see data/README.md).

    python tools/make_data.py
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from adasr.data import downscale, load_skimage, to_tensor, to_uint8
from adasr.paths import data_dir


def main() -> None:
    out = data_dir()
    out.mkdir(parents=True, exist_ok=True)
    files = {
        # the demo input: the whole 512×512 astronaut, bicubic ↓4 with antialias → 128×128 RGB
        "astronaut_lr128.png": Image.fromarray(to_uint8(downscale(to_tensor(load_skimage("astronaut")), 4))),
        # a grayscale input (the CLI writes grayscale back): camera ↓4 → 128×128, mode L
        "camera_lr128.png": Image.fromarray(to_uint8(downscale(to_tensor(load_skimage("camera")), 4))[:, :, 0]),
    }
    for name, img in files.items():
        path = out / name
        img.save(path, optimize=False)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{name}  {img.mode} {img.size[0]}×{img.size[1]}  sha256 {digest}")
    assert np.asarray(files["camera_lr128.png"]).ndim == 2


if __name__ == "__main__":
    main()
