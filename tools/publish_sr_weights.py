"""Register a training run's EMA weights as shipped weights and record the metrics measured at save time.

    python tools/publish_sr_weights.py runs/sr_x4 --name sr_x4 --command "adasr train --out runs/sr_x4 --steps 7000"
    python tools/publish_sr_weights.py runs/edsr_x4 --name edsr_x4 --fp16 --command "adasr train --arch edsr ..."
    python tools/publish_sr_weights.py --name sr_x4 --recast float16     # re-store registered weights as fp16
    python tools/publish_sr_weights.py --name sr_x4 --update-metrics     # re-measure metrics_at_save only
    python tools/publish_sr_weights.py runs/sparse15_2000 --name sr_x4_sparse15 --fp16 --sparse --no-metrics \
        --command "adasr train --out runs/sparse15_2000 --steps 2000 --seed 0 --sparse-density 0.15"

Reads ``RUN/ema.safetensors`` + ``RUN/config.json`` (or, with ``--from-checkpoint``, the EMA inside an unfinished
``RUN/checkpoint.pt``), writes ``adasr/weights/NAME.safetensors`` and its REGISTRY.json entry (sha256, config,
command, training summary), then measures the registered file and stores the result: ``adasr bench quality`` for a
diffusion model, :func:`adasr.benchmarks.quality.regression_quality` (PSNR/SSIM/LPIPS of one forward pass) for EDSR.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from adasr.benchmarks.quality import quality, regression_quality
from adasr.models.edsr import EDSRConfig
from adasr.registry import WEIGHTS_DIR, model_config, read_registry, register, restore_as
from adasr.srmodel import SRDiffusionConfig
from adasr.train import load_checkpoint

#: ``--recast`` choices.
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path, nargs="?", help="the training run folder (not needed with --recast or "
                   "--update-metrics)")
    p.add_argument("--name", default="sr_x4")
    p.add_argument("--command", help="the exact training command, recorded in the registry (required with RUN)")
    p.add_argument("--from-checkpoint", action="store_true")
    p.add_argument("--steps", type=int, default=None, help="sampler steps for the metrics (default: package default)")
    p.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the bytes)")
    p.add_argument("--no-metrics", action="store_true", help="skip 'adasr bench quality' (for small teaching foils)")
    p.add_argument("--sparse", action="store_true",
                   help="store a sparse-momentum network as nonzero values + packed bitmaps (adasr.acceleration."
                        "sparse.pack_sparse; the registry entry gets \"format\": \"sparse-bitmap\")")
    p.add_argument("--description", default="×4 residual diffusion SR UNet (EMA weights), trained on scikit-image's "
                   "bundled photos; astronaut, camera and moon held out")
    p.add_argument("--update-metrics", action="store_true",
                   help="only re-measure metrics_at_save of the registered weights (e.g. after a sampler default changed)")
    p.add_argument("--recast", choices=sorted(DTYPES), default=None,
                   help="re-store the registered weights NAME with floating tensors in this dtype, then re-measure")
    a = p.parse_args()
    if a.update_metrics:
        record_metrics(a.name, a.steps)
        return
    if a.recast:
        command = f"python tools/publish_sr_weights.py --name {a.name} --recast {a.recast}"
        e = restore_as(a.name, DTYPES[a.recast], command=command)
        print(f"{a.name}: {e['recast']['from']['dtype']} {e['recast']['from']['bytes']:,} bytes → {e['dtype']} "
              f"{e['bytes']:,} bytes, sha256 {e['sha256']}")
        if not a.no_metrics:
            record_metrics(a.name, a.steps)
        return
    if a.run is None or a.command is None:
        p.error("RUN and --command are required unless --recast or --update-metrics is given")
    if a.from_checkpoint:
        ck = load_checkpoint(a.run / "checkpoint.pt")
        cfg = ck["config"]
        edsr = "base" not in cfg and cfg["model"].get("arch") == "edsr"
        if "base" in cfg:  # adasr train --finetune-through-sampler: the EMA holds the UNet's own keys
            state = {k[len("unet."):] if k.startswith("unet.") else k: v for k, v in ck["ema"].items()}
        else:
            state = dict(ck["ema"]) if edsr else {k[len("unet."):]: v for k, v in ck["ema"].items()
                                                  if k.startswith("unet.")}
        trained_steps = int(ck["step"])
    else:
        from safetensors.torch import load_file

        cfg = json.loads((a.run / "config.json").read_text())
        state = load_file(str(a.run / "ema.safetensors"))
        trained_steps = int(cfg["steps"])
    log = [json.loads(line) for line in (a.run / "log.jsonl").read_text().splitlines()]
    if "base" in cfg:  # a fine-tune through the sampler keeps its base model's architecture
        edsr, model_cfg = False, SRDiffusionConfig.from_dict(model_config(cfg["base"])).to_dict()
    else:
        edsr = cfg["model"].get("arch") == "edsr"
        model_cfg = (EDSRConfig if edsr else SRDiffusionConfig).from_dict(cfg["model"]).to_dict()
    training = {k: v for k, v in cfg.items() if k != "model"}
    rows = [r for r in log if "loss" in r]
    events = [r for r in log if "event" in r]
    wall, last = 0.0, 0.0
    for r in log:  # "seconds" restarts from 0 after each resume
        if "event" in r:
            wall, last = wall + last, 0.0
        else:
            last = r["seconds"]
    training.update({"trained_steps": trained_steps,
                     "final_loss_mean_last_100": sum(r["loss"] for r in rows[-4:]) / max(1, len(rows[-4:])),
                     "wall_seconds": round(wall + last, 1), "resumes": events,
                     "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
                     "torch": torch.__version__})
    extra = {}
    if a.sparse:
        from adasr.acceleration.sparse import pack_sparse

        state = pack_sparse(state)
        extra["format"] = "sparse-bitmap"
    register(a.name, state, config=model_cfg, command=a.command, training=training, description=a.description,
             dtype=torch.float16 if a.fp16 else torch.float32,
             licence="MIT (this project); trained only on scikit-image's bundled images", **extra)
    if not a.no_metrics:
        record_metrics(a.name, a.steps)


def machine() -> str:
    """The CPU kernels the metrics ran on, e.g. ``x86_64 AVX512 AMX``: bf16 results differ in the last digits between
    AMX, AVX512-BF16 and AVX2 machines (oneDNN picks different kernels), so the record names them."""
    cap = torch.backends.cpu.get_cpu_capability()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return f"{platform.machine()} {cap}{' AMX' if amx else ''}"


def record_metrics(name: str, steps: int | None) -> None:
    """Store ``metrics_at_save`` of a registered model (diffusion: ``adasr bench quality``; EDSR: one forward)."""
    if read_registry()[name]["config"].get("arch") == "edsr":
        r = regression_quality(name)
        reg = read_registry()
        reg[name]["metrics_at_save"] = r
        (WEIGHTS_DIR / "REGISTRY.json").write_text(json.dumps(reg, indent=2, sort_keys=True) + "\n")
        print(json.dumps(r["mean"], indent=1))
        return
    record_diffusion_metrics(name, steps)


def record_diffusion_metrics(name: str, steps: int | None) -> None:
    """Run ``adasr bench quality`` on the registered weights and store the result as ``metrics_at_save`` (the
    default sampler's arm, its schedule and η; ``mean`` also holds the old default's arm as ``legacy``)."""
    from adasr.benchmarks.quality import format_quality

    r = quality(steps=steps, model=name)  # the weights being published, not the default model
    reg = read_registry()
    reg[name]["metrics_at_save"] = {"benchmark": "adasr bench quality", "model": r["model"], "steps": r["steps"],
                                    "tile": r["tile"],
                                    "schedule": r["schedule"], "eta": r["eta"],
                                    "overlap": r["overlap"], "precision": r["precision"], "mean": r["mean"],
                                    "psnr_gain_db": r["psnr_gain_db"], "machine": machine(), "torch": torch.__version__,
                                    "images": {row["image"]: row["adasr"] for row in r["images"]}}
    (WEIGHTS_DIR / "REGISTRY.json").write_text(json.dumps(reg, indent=2, sort_keys=True) + "\n")
    print(format_quality(r))


if __name__ == "__main__":
    main()
