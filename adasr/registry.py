"""Shipped weights: ``adasr/weights/*.safetensors`` (state dicts only) listed in ``adasr/weights/REGISTRY.json``.

A sparse network (sparse momentum, :mod:`adasr.acceleration.sparse`) is stored as its nonzero values and packed
bitmaps (entry ``"format": "sparse-bitmap"``) and comes back dense from :func:`load_state_dict`.

Each entry records the file's sha256 and size, the configuration that rebuilds the module, how it was made
(command, provenance, licence) and metrics measured when it was saved. :func:`load_state_dict` verifies the hash
before reading, so a corrupted or swapped file is refused. Nothing is ever downloaded.

Storage dtype vs compute dtype: a file may store its floating tensors as float16 (entry ``"dtype"``) to fit the
budget :data:`WEIGHTS_BUDGET_BYTES`. The module that receives them keeps its own parameter dtype:
``nn.Module.load_state_dict`` copies with ``param.copy_(t)``, which casts t (float16 → float32 is exact), and
:func:`load_state_dict` ``(…, dtype=torch.float32)`` casts explicitly for code that uses the tensors directly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .paths import WEIGHTS_DIR

REGISTRY_FILE = "REGISTRY.json"
#: What every registry entry must hold: the weights file and its sha256 (model entries also a ``config`` dict).
REQUIRED_KEYS = ("file", "sha256")

#: Cap on the total size of the shipped files in ``adasr/weights/`` (the repository's size budget: 36 MB since
#: ``sr_x4_ft``, sr_x4 fine-tuned through its sampler (notebook 12), was added; 30 MB since the ε-prediction twin of
#: sr_x4 and the four notebook-03 foils; 25 MB before).
WEIGHTS_BUDGET_BYTES = 36_000_000


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
    if not p.exists():
        return {}
    try:
        reg = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{p} is not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(reg, dict) or not all(isinstance(v, dict) for v in reg.values()):
        raise WeightsError(f"{p} is not a registry (a JSON object of weights entries)")
    return reg


def entry(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    reg = read_registry(weights_dir)
    if name not in reg:
        raise WeightsError(f"no weights named {name!r} in {weights_dir / REGISTRY_FILE} (have: {sorted(reg)})")
    e = reg[name]
    missing = [k for k in REQUIRED_KEYS if not isinstance(e.get(k), str)]
    if missing:
        raise WeightsError(f"the entry {name!r} of {weights_dir / REGISTRY_FILE} lacks {', '.join(missing)} (or it is "
                           "not a string)")
    return e


def model_config(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The ``config`` dict of the registered model ``name`` (how to build the network its weights belong to)."""
    config = entry(name, weights_dir).get("config")
    if not isinstance(config, dict):
        raise WeightsError(f"the entry {name!r} of {weights_dir / REGISTRY_FILE} has no model config")
    return config


def total_bytes(weights_dir: Path = WEIGHTS_DIR) -> int:
    """Bytes of every file in ``weights_dir`` (weights, REGISTRY.json, README.md): what the repository ships."""
    return sum(p.stat().st_size for p in weights_dir.iterdir() if p.is_file())


def load_state_dict(
    name: str, weights_dir: Path = WEIGHTS_DIR, verify: bool = True, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of registered weights ``name``, after checking its sha256 against the registry.

    Tensors come back in their stored dtype (the entry's ``"dtype"``), or with every floating tensor cast to
    ``dtype`` when it is given (integer tensors are never cast)."""
    from safetensors.torch import load_file

    e = entry(name, weights_dir)
    path = weights_dir / e["file"]
    if not path.exists():
        raise WeightsError(f"weights file {path} is missing (the repository checkout is incomplete)")
    if verify:
        digest = sha256_file(path)
        if digest != e["sha256"]:
            raise WeightsError(f"{path} has sha256 {digest[:12]}…, the registry expects {e['sha256'][:12]}…")
    state = load_file(str(path))
    if e.get("format") == "sparse-bitmap":  # values + packed masks (adasr.acceleration.sparse.pack_sparse)
        from .acceleration.sparse import unpack_sparse

        state = unpack_sparse(state)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    return state


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


def register_json(name: str, content: Any, *, weights_dir: Path = WEIGHTS_DIR, **info: Any) -> dict[str, Any]:
    """Save ``content`` as ``{name}.json`` (a small non-tensor asset: the optimised schedules) and record it (sha256,
    bytes and ``info``: the command that made it, its data, its seconds)."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    file = f"{name}.json"
    (weights_dir / file).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    (weights_dir / file).chmod(0o644)
    reg = read_registry(weights_dir)
    e = {"file": file, "sha256": sha256_file(weights_dir / file), "bytes": (weights_dir / file).stat().st_size,
         "dtype": "json", **info}
    reg[name] = e
    (weights_dir / REGISTRY_FILE).write_text(json.dumps(reg, indent=2, sort_keys=True) + "\n")
    return e


def load_json(name: str, weights_dir: Path = WEIGHTS_DIR, verify: bool = True) -> Any:
    """The registered JSON asset ``name``, after checking its sha256 against the registry."""
    e = entry(name, weights_dir)
    path = weights_dir / e["file"]
    if not path.exists():
        raise WeightsError(f"{path} is missing (the repository checkout is incomplete)")
    if verify and sha256_file(path) != e["sha256"]:
        raise WeightsError(f"{path} does not match the sha256 the registry records")
    return json.loads(path.read_text())


def load_schedule_presets(weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """{preset name: :class:`~adasr.diffusion.timesteps.PresetSchedule`} from the shipped ``schedules.json``
    (written by ``python -m adasr.adaptive.schedule_opt``); each stored list is checked against its family."""
    from .diffusion.timesteps import PresetSchedule, family_schedule

    data = load_json("schedules", weights_dir)
    out = {}
    for preset, by_n in data["presets"].items():
        points = {int(n): p for n, p in by_n.items()}
        for n, p in points.items():
            if family_schedule(p["family"], p.get("params", {})).timesteps(n) != list(p["timesteps"]):
                raise WeightsError(f"schedules.json: {preset} N={n} stores {p['timesteps']}, its family gives "
                                   "another list")
        out[preset] = PresetSchedule(preset, points)
    return out


def restore_as(name: str, dtype: torch.dtype, *, command: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Re-store registered weights ``name`` with floating tensors in ``dtype`` (e.g. float32 → float16, half the
    bytes), keeping every other field of its entry (config, training command, provenance, metrics).

    The source file is hash-verified first; the new entry records it under ``"recast"`` as {"command", "from":
    {"dtype", "sha256", "bytes"}}, so the stored file can be rebuilt from the previous one (an earlier commit).
    Metrics measured with the old file are kept as they are: re-measure them (``tools/publish_sr_weights.py
    --update-metrics``) when the recast changes what the model computes. Refuses a recast to the stored dtype."""
    old = entry(name, weights_dir)
    target = str(dtype).replace("torch.", "")
    if old.get("dtype", "float32") == target:
        raise WeightsError(f"{name} is already stored as {target}")
    state = {k: v.clone() for k, v in load_state_dict(name, weights_dir).items()}  # not views of the file overwritten
    info = {k: v for k, v in old.items() if k not in ("file", "sha256", "bytes", "dtype", "config", "recast")}
    recast = {"command": command,
              "from": {"dtype": old.get("dtype", "float32"), "sha256": old["sha256"], "bytes": old["bytes"]}}
    return register(name, state, config=old["config"], weights_dir=weights_dir, dtype=dtype, recast=recast, **info)
