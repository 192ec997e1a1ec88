"""Shipped weights: ``adasr/weights/*.safetensors`` (state dicts only) listed in ``adasr/weights/REGISTRY.json``.

Each entry records the file's sha256 and size, the configuration that rebuilds the module, how it was made
(command, provenance, licence) and metrics measured when it was saved. :func:`load_state_dict` verifies the hash
before reading, so a corrupted or swapped file is refused. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .paths import WEIGHTS_DIR

REGISTRY_FILE = "REGISTRY.json"


class WeightsError(RuntimeError):
    """A shipped weight file is missing, unregistered or does not match its recorded hash."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_registry(weights_dir: Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]]:
    """{name: entry} from REGISTRY.json (empty when absent)."""
    p = weights_dir / REGISTRY_FILE
    return json.loads(p.read_text()) if p.exists() else {}


def entry(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    reg = read_registry(weights_dir)
    if name not in reg:
        raise WeightsError(f"no weights named {name!r} in {weights_dir / REGISTRY_FILE} (have: {sorted(reg)})")
    return reg[name]


def load_state_dict(name: str, weights_dir: Path = WEIGHTS_DIR, verify: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of registered weights ``name``, after checking its sha256 against the registry."""
    from safetensors.torch import load_file

    e = entry(name, weights_dir)
    path = weights_dir / e["file"]
    if not path.exists():
        raise WeightsError(f"weights file {path} is missing (the repository checkout is incomplete)")
    if verify:
        digest = sha256_file(path)
        if digest != e["sha256"]:
            raise WeightsError(f"{path} has sha256 {digest[:12]}…, the registry expects {e['sha256'][:12]}…")
    return load_file(str(path))


def register(
    name: str,
    state_dict: dict[str, torch.Tensor],
    *,
    config: dict[str, Any],
    weights_dir: Path = WEIGHTS_DIR,
    dtype: torch.dtype = torch.float32,
    **info: Any,
) -> dict[str, Any]:
    """Save ``state_dict`` as ``{name}.safetensors`` (floating tensors stored as ``dtype``; ``load_state_dict`` into a
    float32 module casts them back) and record it (sha256, bytes, dtype, config, extra ``info``)."""
    from safetensors.torch import save_file

    weights_dir.mkdir(parents=True, exist_ok=True)
    file = f"{name}.safetensors"
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in state_dict.items()}
    save_file(tensors, str(weights_dir / file))
    (weights_dir / file).chmod(0o644)  # safetensors writes 0600; shipped files must be readable by everyone
    reg = read_registry(weights_dir)
    e = {"file": file, "sha256": sha256_file(weights_dir / file), "bytes": (weights_dir / file).stat().st_size,
         "dtype": str(dtype).replace("torch.", ""), "config": config, **info}
    reg[name] = e
    (weights_dir / REGISTRY_FILE).write_text(json.dumps(reg, indent=2, sort_keys=True) + "\n")
    return e
