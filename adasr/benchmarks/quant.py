"""``adasr bench quant``: AdaBM vs fixed-bit quantization of the shipped EDSR, a real int8 path, and the UNet.

One run, side by side, on the held-out photos (astronaut, camera, moon; full 512×512, ×4 from 128×128 LR):

1. EDSR arms, **fake quantization** (accuracy study): FP32; W8A8; W4A4 (calibrated); W4A4 + fine-tuning (the
   control: same calibration, clipping and fine-tuning budget, no adaptive bits); AdaBM b_base 4 (I2B per 32-px LR
   patch + L2B + BaC) before and after fine-tuning. PSNR / SSIM on Y (shave 4), FAB, BitOPs per image,
   calibration and fine-tuning seconds. Calibration and fine-tuning use only LR patches of the training photos.
2. The **real int8** network (torch.ao, x86/oneDNN engine): fp32 vs int8 latency for one 128×128 LR image,
   interleaved repeats, medians, same run; PSNR of both on the held-out photos.
3. The same per-tile bit mapping on the diffusion UNet's convolutions (fake quantization, weights 8 bit,
   activations fixed vs AdaBM at two b_base), sampled with the default sampler
   (:data:`~adasr.defaults.DEFAULT_STEPS` steps of :data:`~adasr.defaults.DEFAULT_SCHEDULE`, its η) on the 256×256
   held-out crops: PSNR-Y, LPIPS vs FAB. Calibrated on noised training crops at the timesteps that sampler visits
   (``UniformDDIM(steps, schedule).timesteps(T)``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from ..quant.adabm import AdaBM, AdaBMConfig, quantize_diffusion
from ..upscaling import edsr_calibration_batches, unet_calibration_batches, unet_calibration_timesteps
from ..quant.finetune import FinetuneConfig, finetune
from ..quant.quantizer import CALIBRATION_METHODS
from .runner import Log, interleaved, machine_info, no_log

#: Targets of the AdaBM issue.
TARGET_PSNR_GAP_DB = 0.15
TARGET_FAB = 4.5
TARGET_INT8_SPEEDUP = 2.0


def evaluate_sr(
    fn: Callable[[torch.Tensor], torch.Tensor], images: dict[str, np.ndarray], qm: AdaBM | None = None,
) -> dict[str, Any]:
    """Per-image and mean PSNR-Y / SSIM-Y (shave 4) of ``fn(LR)`` against HR; FAB per image when ``qm`` is given."""
    from ..data import downscale, to_tensor, to_uint8
    from ..metrics import psnr_y, ssim_y

    rows: dict[str, dict[str, float]] = {}
    for name, hr in images.items():
        with torch.no_grad():
            sr = to_uint8(fn(downscale(to_tensor(hr), 4)).clamp(-1, 1))
        rows[name] = {"psnr_y": psnr_y(sr, hr, shave=4), "ssim_y": ssim_y(sr, hr, shave=4)}
        if qm is not None and qm.mode == "quant":
            rows[name]["fab"] = qm.fab()
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
    return {"images": rows, "mean": mean}


def _edsr_arm(model, images, config: AdaBMConfig, calib: list[torch.Tensor], ft_data: torch.Tensor | None,
              ft: FinetuneConfig, progress: bool) -> tuple[dict[str, Any], AdaBM]:
    t0 = time.perf_counter()
    qm = AdaBM(model, config)
    summary = qm.calibrate(calib)
    calib_s = time.perf_counter() - t0
    ft_s, log = 0.0, None
    if ft_data is not None:
        log = finetune(qm, model, ft_data, ft, progress=progress)
        ft_s = log["seconds"]
    qm.eval()
    l2b_check = None
    if config.layer_to_bit:  # does std(input) rank the layers like their measured sensitivity?
        from scipy.stats import spearmanr

        errors = qm.isolated_layer_errors(calib[0])
        rho = spearmanr(summary["sensitivity"], errors).statistic
        l2b_check = {"sensitivity": summary["sensitivity"], "isolated_mse": errors, "spearman": float(rho)}
    r = evaluate_sr(qm, images, qm)
    ops = _mean_bitops(qm, images)
    r.update({"config": config.label, "calibration_seconds": calib_s, "finetune_seconds": ft_s,
              "gbitops_128": ops["bitops"] / 1e9, "gbitops_128_quantized_layers": ops["bitops_quantized"] / 1e9,
              "layer_bits": summary["layer_bits"],
              "i2b_thresholds": [qm.i2b.lower.item(), qm.i2b.upper.item()] if config.image_to_bit else None,
              "finetune_fab": log["fab"] if log else None, "l2b_check": l2b_check})
    return r, qm


def _mean_bitops(qm: AdaBM, images: dict[str, np.ndarray]) -> dict[str, float]:
    """BitOPs per image averaged over the held-out LR images (adaptive bits depend on the image)."""
    from ..data import downscale, to_tensor

    per = [qm.bitops(downscale(to_tensor(hr), 4)) for hr in images.values()]
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]}


def latency(fns: dict[str, Callable[[], Any]], repeats: int = 15) -> dict[str, float]:
    """Median seconds of each zero-argument callable, calls interleaved round-robin after one warm-up each
    (:func:`~adasr.benchmarks.runner.interleaved`)."""
    return {k: statistics.median(v) for k, v in interleaved(fns, repeats).items()}


def int8_arm(model, images, calib: list[torch.Tensor], size: int = 128, repeats: int = 15) -> dict[str, Any]:
    """fp32 vs real int8 EDSR (calibrated on the batches ``calib``): latency ratio for one size×size LR image and
    PSNR of both."""
    from ..quant.int8 import quantize_int8

    t0 = time.perf_counter()
    q8 = quantize_int8(model, calib)
    convert_s = time.perf_counter() - t0
    x = torch.zeros(1, 3, size, size).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t = latency({"fp32": lambda: model(x), "int8": lambda: q8(x)}, repeats)
    return {"engine": q8.engine, "lr_size": size, "repeats": repeats, "seconds": t, "speedup": t["fp32"] / t["int8"],
            "convert_seconds": convert_s, "fp32": evaluate_sr(model, images), "int8": evaluate_sr(q8, images)}


def calibrate_unet_arm(qm: AdaBM, model: Any, steps: int, *, schedule: Any, n_calib: int = 8,
                       calib_crop: int = 128) -> None:
    """Calibrate the AdaBM wrapper ``qm`` of the diffusion UNet ``model`` as the UNet arms are: on ``n_calib``
    training crops of ``calib_crop``² noised to every timestep the ``steps``-step ``schedule`` visits
    (:func:`~adasr.upscaling.unet_calibration_batches`). Shared by :func:`unet_arms` and ``bench spread``."""
    qm.calibrate(unet_calibration_batches(model, steps, n=n_calib, crop=calib_crop, schedule=schedule)[0])


def unet_arms(
    steps: int | None, configs: list[AdaBMConfig], *, schedule: Any = None, log: Log = no_log, model=None,
    images: dict[str, np.ndarray] | None = None, n_calib: int = 8, calib_crop: int = 128,
) -> dict[str, Any]:
    """Per-tile bit mapping on the diffusion UNet (fake quantization), uniform sampling with ``steps`` of
    ``schedule`` (default: the package's default sampler, :data:`~adasr.defaults.DEFAULT_STEPS` of
    :data:`~adasr.defaults.DEFAULT_SCHEDULE`, with the schedule's own η; fp32) on the held-out 256² crops
    (``images``: {name: HR uint8 (H, W, 3)}); ``model`` defaults to the shipped one.

    Each config is calibrated on ``n_calib`` training crops of ``calib_crop``² noised to every timestep the sampler
    visits (:func:`~adasr.upscaling.unet_calibration_batches` with the same schedule, the recipe ``--quant adabm``
    uses with fewer crops). Per image: PSNR-Y (shave 4), LPIPS, seconds, and for quantized arms FAB = the mean over
    sampler iterations of ``qm.fab()`` after that iteration (the FAB of its last UNet batch); ``log`` receives one
    line per arm. The result records ``steps``, ``schedule`` ({name, timesteps, eta?}) and ``eta``."""
    from ..data import downscale, heldout_crops, to_tensor, to_uint8
    from ..defaults import DEFAULT_SCHEDULE
    from ..diffusion.timesteps import get_schedule
    from ..lpips import lpips_distance
    from ..metrics import psnr_y
    from ..upscaling import load_pretrained, prepare_upscale
    from .quality import arm_steps

    schedule = get_schedule(DEFAULT_SCHEDULE if schedule is None else schedule)
    steps = arm_steps(steps, schedule)
    model = model if model is not None else load_pretrained()
    images = images if images is not None else heldout_crops(256)
    ts = unet_calibration_timesteps(model, steps, schedule)
    ran: dict[str, Any] = {}

    def run(m, qm: AdaBM | None) -> dict[str, Any]:
        rows = {}
        for name, hr in images.items():
            lr = downscale(to_tensor(hr), 4)
            fabs: list[float] = []
            job = prepare_upscale(lr, steps=steps, schedule=schedule, model=m, precision="fp32")
            out, rep, _ = job.run(observe=(lambda state: fabs.append(qm.fab())) if qm is not None else None)
            ran.update(schedule=rep.schedule, eta=rep.eta)
            sr = to_uint8(out)
            rows[name] = {"psnr_y": psnr_y(sr, hr, shave=4), "lpips": lpips_distance(sr, hr),
                          "seconds": rep.seconds}
            if qm is not None:
                rows[name]["fab"] = float(np.mean(fabs))
        mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
        return {"images": rows, "mean": mean}

    arms = {"FP32": run(model, None)}
    log(f"UNet FP32: PSNR-Y {arms['FP32']['mean']['psnr_y']:.2f} LPIPS {arms['FP32']['mean']['lpips']:.4f}")
    for cfg in configs:
        qmodel, qm = quantize_diffusion(model, cfg)
        t0 = time.perf_counter()
        calibrate_unet_arm(qm, model, steps, schedule=schedule, n_calib=n_calib, calib_crop=calib_crop)
        calib_s = time.perf_counter() - t0  # (before the sampled run: results before this fix included it)
        r = run(qmodel, qm)
        r["calibration_seconds"] = calib_s
        r["layers"] = len(qm.layer_names)
        arms[cfg.label] = r
        log(f"UNet {cfg.label}: PSNR-Y {r['mean']['psnr_y']:.2f} FAB {r['mean']['fab']:.2f} "
            f"(calibration {r['calibration_seconds']:.0f} s)")
    return {"steps": steps, "schedule": ran["schedule"], "eta": ran["eta"], "precision": "fp32",
            "device": str(next(model.parameters()).device), "calibration_timesteps": ts, "arms": arms}


def _adaptive(w_bits: int, a_bits: int, **kw: Any) -> AdaBMConfig:
    return AdaBMConfig(w_bits=w_bits, a_bits=a_bits, **kw)


def quant(
    *, b_base: int = 4, patch: int = 32, calibration: str = "mse", finetune_config: FinetuneConfig | None = None,
    n_calib: int = 64,
    n_finetune: int = 100, int8: bool = True, unet: bool = True, unet_steps: int | None = None,
    unet_schedule: Any = None, repeats: int = 15, progress: bool = False, log: Log = no_log,
) -> dict[str, Any]:
    """Run the whole comparison (see the module docstring); returns the results as a dict. ``progress`` shows
    fine-tuning's tqdm bars; ``log`` receives one line per arm. The EDSR arms run on the CPU in fp32 (the
    ``machine`` entry), the UNet arms in fp32 on the default device (``unet.device``), sampled and calibrated with
    ``unet_steps`` of ``unet_schedule`` (default: the package's default sampler; :func:`unet_arms`)."""
    from ..data import heldout_crops, training_lr_patches
    from ..models.edsr import load_edsr

    ft = finetune_config or FinetuneConfig()
    model = load_edsr(device="cpu")
    images = heldout_crops(512)
    calib = edsr_calibration_batches(n_calib)
    ft_data = training_lr_patches(n_finetune, 48, seed=1)
    t0 = time.perf_counter()
    arms: dict[str, Any] = {"FP32": evaluate_sr(model, images)}
    ops = _mean_bitops(AdaBM(model, AdaBMConfig.fixed(8, 8)), images)  # float mode: the FP32 network
    arms["FP32"].update({"fab": 32.0, "gbitops_128": ops["bitops"] / 1e9,
                         "gbitops_128_quantized_layers": ops["bitops_quantized"] / 1e9})
    adabm = AdaBMConfig(w_bits=b_base, a_bits=b_base, patch=patch, calibration=calibration)
    fixed = AdaBMConfig.fixed(b_base, b_base, calibration=calibration)
    plan = [
        ("W8A8", AdaBMConfig.fixed(8, 8, calibration=calibration), False),
        (f"W{b_base}A{b_base}", fixed, False),
        (f"W{b_base}A{b_base} + FT", fixed, True),
        (f"AdaBM b_base {b_base} (no FT)", adabm, False),
        (f"AdaBM b_base {b_base}", adabm, True),
    ]
    for label, cfg, do_ft in plan:
        arms[label], _ = _edsr_arm(model, images, cfg, calib, ft_data if do_ft else None, ft, progress)
        log(f"{label}: PSNR-Y {arms[label]['mean']['psnr_y']:.2f} FAB {arms[label]['mean']['fab']:.2f} "
            f"({time.perf_counter() - t0:.0f} s)")
    fp = arms["FP32"]["mean"]["psnr_y"]
    ada = arms[f"AdaBM b_base {b_base}"]
    r: dict[str, Any] = {
        "benchmark": "quant", "images": list(images), "hr_size": 512, "patch": patch, "b_base": b_base,
        "calibration": calibration,
        "n_calib": n_calib, "n_finetune": n_finetune, "finetune": {k: v for k, v in vars(ft).items()},
        "threads": torch.get_num_threads(), "torch": torch.__version__, "arms": arms,
        "targets": {"psnr_gap_db": TARGET_PSNR_GAP_DB, "fab": TARGET_FAB,
                    "adabm_gap_db": fp - ada["mean"]["psnr_y"], "adabm_fab": ada["mean"]["fab"],
                    "met": fp - ada["mean"]["psnr_y"] <= TARGET_PSNR_GAP_DB and ada["mean"]["fab"] <= TARGET_FAB},
    }
    if int8:
        r["int8"] = int8_arm(model, images, calib, 128, repeats)
        r["targets"]["int8_speedup"] = TARGET_INT8_SPEEDUP
        r["targets"]["int8_met"] = r["int8"]["speedup"] >= TARGET_INT8_SPEEDUP
    if unet:
        cfgs = [make(8, a, calibration=calibration) for a in (6, 4) for make in (AdaBMConfig.fixed, _adaptive)]
        r["unet"] = unet_arms(unet_steps, cfgs, schedule=unet_schedule, log=log)
    r["machine"] = machine_info("cpu", "fp32")
    r["seconds"] = time.perf_counter() - t0
    return r


def format_quant(r: dict[str, Any]) -> str:
    """The EDSR table, the int8 line and the UNet table as text."""
    fp = r["arms"]["FP32"]["mean"]["psnr_y"]
    lines = [f"EDSR ×4, held-out photos {', '.join(r['images'])} ({r['hr_size']}² HR), PSNR/SSIM on Y shave 4; "
             "fake quantization except the int8 line",
             "GBitOPs per 128² LR image (mean over the photos): whole network (float layers at 32×32 bits) / "
             "quantized layers only",
             f"{'arm':<26} {'PSNR-Y':>7} {'Δ dB':>6} {'SSIM-Y':>7} {'FAB':>5} {'GBitOPs':>8} {'(quant.)':>8} "
             f"{'calib s':>8} {'FT s':>6}"]
    for label, a in r["arms"].items():
        m = a["mean"]
        lines.append(f"{label:<26} {m['psnr_y']:7.2f} {m['psnr_y'] - fp:+6.2f} {m['ssim_y']:7.4f} "
                     f"{m.get('fab', a.get('fab', 32.0)):5.2f} {a['gbitops_128']:8.1f} "
                     f"{a['gbitops_128_quantized_layers']:8.1f} "
                     f"{a.get('calibration_seconds', 0.0):8.1f} {a.get('finetune_seconds', 0.0):6.1f}")
    t = r["targets"]
    lines.append(f"AdaBM: {t['adabm_gap_db']:.3f} dB below FP32 at FAB {t['adabm_fab']:.2f} (target ≤ "
                 f"{t['psnr_gap_db']} dB at FAB ≤ {t['fab']}: {'met' if t['met'] else 'NOT met'})")
    checks = [a["l2b_check"] for a in r["arms"].values() if a.get("l2b_check")]
    if checks:
        lines.append(f"L2B check: Spearman(std of layer input, MSE with only that layer at b_base−1 bits) = "
                     f"{checks[0]['spearman']:+.2f} over the {len(checks[0]['sensitivity'])} adaptive layers")
    if "int8" in r:
        q = r["int8"]
        lines.append(f"real int8 ({q['engine']}), one {q['lr_size']}² LR image: fp32 {q['seconds']['fp32'] * 1e3:.1f} ms, "
                     f"int8 {q['seconds']['int8'] * 1e3:.1f} ms → {q['speedup']:.2f}× (target ≥ {t['int8_speedup']}: "
                     f"{'met' if t['int8_met'] else 'NOT met'}); PSNR-Y fp32 {q['fp32']['mean']['psnr_y']:.2f}, "
                     f"int8 {q['int8']['mean']['psnr_y']:.2f}")
    if "unet" in r:
        u = r["unet"]
        sampler = (f"{u['steps']} steps {u['schedule']['name']} (η {u['eta']:g}, timesteps "
                   f"{u['schedule']['timesteps']})" if "schedule" in u else f"DDIM-{u['steps']}")
        lines.append(f"diffusion UNet, per-tile bits (fake quantization), {sampler}, 256² crops, fp32")
        lines.append(f"{'arm':<26} {'PSNR-Y':>7} {'LPIPS':>7} {'FAB':>5}")
        for label, a in u["arms"].items():
            m = a["mean"]
            lines.append(f"{label:<26} {m['psnr_y']:7.2f} {m['lpips']:7.4f} {m.get('fab', 32.0):5.2f}")
    lines.append(f"total {r['seconds']:.0f} s on {r['threads']} threads")
    return "\n".join(lines)


format_result = format_quant


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS

    d = FinetuneConfig()
    p.add_argument("--b-base", type=int, default=4, help="AdaBM's base bit (weights use the same)")
    p.add_argument("--patch", type=int, default=32, help="LR patch size of the image-to-bit map")
    p.add_argument("--calibration", choices=CALIBRATION_METHODS, default="mse",
                   help="activation range initialisation of every quantized arm (AdaBM's own default is minmax; "
                        "mse measured better for all arms here)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs (phases w → a → measure)")
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--repeats", type=int, default=15, help="latency repeats of the int8 comparison")
    p.add_argument("--no-int8", action="store_true", help="skip the real int8 arm")
    p.add_argument("--no-unet", action="store_true", help="skip the diffusion UNet arms (the slow part)")
    p.add_argument("--unet-steps", type=int, default=None,
                   help=f"steps of the UNet arms (default: {DEFAULT_STEPS}, or the length of an explicit "
                        "--unet-schedule)")
    p.add_argument("--unet-schedule", default=None, metavar="NAME|LIST",
                   help=f"schedule of the UNet arms, sampling and calibration (default: {DEFAULT_SCHEDULE})")
    p.add_argument("--progress", action="store_true")


def run_args(args: argparse.Namespace, log: Log = no_log) -> dict[str, Any]:
    ft = FinetuneConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch)
    return quant(b_base=args.b_base, patch=args.patch, calibration=args.calibration, finetune_config=ft,
                 int8=not args.no_int8, unet=not args.no_unet, unet_steps=args.unet_steps,
                 unet_schedule=args.unet_schedule, repeats=args.repeats,
                 progress=args.progress, log=log)


__all__ = ["TARGET_FAB", "TARGET_INT8_SPEEDUP", "TARGET_PSNR_GAP_DB", "add_arguments", "calibrate_unet_arm",
           "evaluate_sr",
           "format_quant", "format_result", "int8_arm", "latency", "quant", "run_args", "unet_arms"]
