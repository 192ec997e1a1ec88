import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from adasr.data import (HELDOUT_IMAGES, TRAIN_IMAGES, CropSampler, center_crop, downscale, load_skimage, to_tensor,
                        to_uint8, upscale_bicubic)
from adasr.paths import REPO_DIR, data_dir

HASHES = {
    "astronaut_lr128.png": "d741cf88807b34fae1e8a52ac54d132b6b2dea6318a1cdbf37c4ddd7ea75398d",
    "camera_lr128.png": "1f7c1582f8cd7b17391f9dd9629b3485b4d3f29bb51c85c648370d1f2910bde2",
}


@pytest.mark.parametrize("name,digest", HASHES.items())
def test_bundled_images_match_readme_hashes(name, digest):
    assert hashlib.sha256((data_dir() / name).read_bytes()).hexdigest() == digest
    assert digest in (REPO_DIR / "data" / "README.md").read_text()


def test_make_data_reproduces_files(tmp_path):
    env = {"ADASR_DATA_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": ""}
    subprocess.run([sys.executable, str(REPO_DIR / "tools" / "make_data.py")], check=True, env=env,
                   capture_output=True)
    for name, digest in HASHES.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), np.asarray(Image.open(data_dir() / name)))


def test_train_and_heldout_are_disjoint():
    assert not set(TRAIN_IMAGES) & set(HELDOUT_IMAGES)


def test_degradation_shapes_range_and_roundtrip():
    hr = to_tensor(center_crop(load_skimage("astronaut"), 64))
    assert hr.shape == (1, 3, 64, 64) and hr.min() >= -1 and hr.max() <= 1
    lr = downscale(hr, 4)
    assert lr.shape == (1, 3, 16, 16)
    up = upscale_bicubic(lr, 4)
    assert up.shape == hr.shape and up.abs().max() <= 1
    # antialiased ↓4 of a constant image is the constant
    c = torch.full((1, 3, 32, 32), 0.25)
    torch.testing.assert_close(downscale(c, 4), torch.full((1, 3, 8, 8), 0.25))
    img = load_skimage("camera")
    assert img.shape == (512, 512, 3) and np.array_equal(to_uint8(to_tensor(img)), img)
    with pytest.raises(ValueError):
        downscale(torch.zeros(1, 3, 30, 32), 4)


def test_crop_sampler_is_seeded():
    s = CropSampler([to_tensor(load_skimage("coins"))[0]], crop=32)
    a = s.sample(4, torch.Generator().manual_seed(1))
    b = s.sample(4, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)
