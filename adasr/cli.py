"""The ``adasr`` command: ``upscale`` an image ×4, ``train`` the model, ``bench`` quality and speed.

Every expected failure ends with one line ``adasr: error: …`` on stderr and a non-zero exit status, never a
traceback and never a partial output file:

* 2 — a usage or input problem (bad option, unreadable / unsuitable image, bad output path, unknown device);
* 1 — anything else the user can act on (missing or corrupt weights, out of memory, a failed write);
* 130 — interrupted with Ctrl-C.

Unexpected exceptions (bugs) are reported the same way, with a pointer to ``ADASR_DEBUG=1``, which re-raises
them with the full traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from .defaults import DEFAULT_OVERLAP, DEFAULT_STEPS, DEFAULT_TILE

#: Subcommands implemented in their own modules, imported only when used: name → (module, one-line help).
_DELEGATED = {
    "train": ("adasr.train", "train the ×4 diffusion SR model or the EDSR CNN (see: adasr train -h)"),
    "bench": ("adasr.bench", "measure quality or speed (see: adasr bench -h)"),
}

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("adasr")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {value}")
        return value

    parse.__name__ = f"integer >= {lo}"
    return parse


def add_upscale_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``adasr upscale``."""
    p.add_argument("input", metavar="IN", help="image to upscale (PNG, JPEG, WebP, TIFF, BMP, GIF…)")
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="where to write the ×4 image; the extension picks the format (.png keeps 16 bits and alpha)")
    p.add_argument("--steps", type=_int_at_least(1), default=DEFAULT_STEPS, help=f"sampling steps (default: {DEFAULT_STEPS})")
    p.add_argument("--seed", type=int, default=0, help="random seed; equal seeds give equal outputs (default: 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto uses bf16 where the hardware is fast at it (default: auto)")
    p.add_argument("--tile", type=_int_at_least(8), default=DEFAULT_TILE,
                   help="tile size in output pixels; smaller uses less memory (default: %(default)s)")
    p.add_argument("--overlap", type=_int_at_least(0), default=DEFAULT_OVERLAP,
                   help="overlap between neighbouring tiles in output pixels (default: %(default)s)")
    ad = p.add_argument_group("adaptive sampling (AdaSR)", "--steps is N_max, the budget of the busiest tile")
    ad.add_argument("--policy", choices=("uniform", "allocation", "early-exit", "adasr"), default="uniform",
                    help="uniform DDIM; per-tile step allocation from patch complexity; Δx̂0 early exit; "
                         "adasr = both (default: uniform)")
    ad.add_argument("--n-min", type=_int_at_least(1), default=3, help="fewest steps a tile gets (default: 3)")
    ad.add_argument("--complexity", default="gradient",
                    choices=("gradient", "sobel", "variance", "fft", "uncertainty", "learned"),
                    help="patch-complexity estimator for allocation (default: gradient)")
    ad.add_argument("--normalize", choices=("image", "patches", "calibrated"), default="calibrated",
                    help="how complexity is scaled to [0, 1] (default: calibrated on the training photos)")
    ad.add_argument("--mapping", choices=("linear", "threshold", "exponential"), default="linear",
                    help="complexity → steps (default: linear, N_p = N_min + (N_max − N_min)·C_p)")
    ad.add_argument("--epsilon", type=float, default=0.002, help="ε of the Δx̂0 early-exit rule (default: 0.002)")
    ad.add_argument("--patience", type=_int_at_least(1), default=2, help="P of the early-exit rule (default: 2)")
    ad.add_argument("--warmup", type=_int_at_least(1), default=4, help="T_min of the early-exit rule (default: 4)")
    ad.add_argument("--exit-mode", choices=("tile", "global"), default="tile",
                    help="stop tiles one by one or the whole image at once (default: tile)")
    p.add_argument("--report", metavar="FILE", help="also write a JSON report (work done, timing, sizes)")
    p.add_argument("--compare", metavar="FIG.png",
                   help="also write a figure: nearest ×4, bicubic ×4 and adasr side by side")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser. ``train`` and ``bench`` are listed here but parsed by their own modules."""
    p = argparse.ArgumentParser(
        prog="adasr",
        description="Adaptive diffusion super-resolution: upscale images ×4 on a CPU.",
        epilog="example: adasr upscale photo.png -o photo_x4.png --steps 10",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up = sub.add_parser("upscale", help="upscale an image ×4", description="Upscale an image ×4 with the shipped "
                        "diffusion model (gray, alpha and 16-bit images are kept as they are).")
    add_upscale_arguments(up)
    for name, (_, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def _check_args(a: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if a.policy in ("allocation", "adasr") and a.n_min > a.steps:
        parser.error(f"--n-min ({a.n_min}) must not exceed --steps ({a.steps}, which is N_max)")
    if not a.epsilon > 0:
        parser.error(f"--epsilon must be positive, got {a.epsilon}")
    if a.policy == "adasr" and a.exit_mode == "global":
        parser.error("--policy adasr stops tiles one by one; use --exit-mode tile (or --policy early-exit)")
    if a.overlap >= a.tile:
        parser.error(f"--overlap ({a.overlap}) must be smaller than --tile ({a.tile})")
    outputs = [Path(x).resolve() for x in (a.output, a.report, a.compare) if x]
    if len(set(outputs)) != len(outputs):
        parser.error("-o, --report and --compare must be different files")


def run_upscale(a: argparse.Namespace) -> int:
    """``adasr upscale``: validate everything cheap first (device, every output path, the input), then run."""
    from . import imageio
    from .runtime import resolve_device, resolve_precision

    device = resolve_device(a.device)
    resolve_precision(a.precision, device)
    imageio.check_destination(a.output)
    imageio.output_format(a.output)
    if a.report:
        imageio.check_destination(a.report, "report")
    if a.compare:
        imageio.check_destination(a.compare, "figure")
        if Path(a.compare).suffix.lower() != ".png":
            raise imageio.ImageError(f"--compare writes a PNG figure; give a path ending in .png, not {a.compare}")
    img = imageio.read_image(a.input, tile=a.tile, overlap=a.overlap)
    imageio.check_output(a.output, alpha=img.alpha is not None, grayscale=img.grayscale)

    from .upscaling import load_pretrained, upscale_tensor

    t0 = time.perf_counter()
    model, policy, adaptive = None, None, None
    if a.policy != "uniform":
        model = load_pretrained(device=device)
        from .adaptive.policy import AdaptiveConfig, policy_for_model

        adaptive = AdaptiveConfig(n_max=a.steps, n_min=a.n_min, estimator=a.complexity, mapping=a.mapping,
                                  normalize=a.normalize, epsilon=a.epsilon, patience=a.patience, warmup=a.warmup,
                                  exit_mode=a.exit_mode)
        policy = policy_for_model(a.policy, adaptive, model, tile=a.tile, overlap=a.overlap)
    result = upscale_tensor(img.rgb, steps=a.steps, seed=a.seed, tile=a.tile, overlap=a.overlap, policy=policy,
                            device=a.device, precision=a.precision, model=model, progress=not a.quiet)
    sr, report, sampled = result
    written = imageio.write_image(a.output, img.to_array(sr, img.upscaled_alpha()), icc_profile=img.icc_profile)
    seconds = time.perf_counter() - t0
    if a.report:
        info: dict[str, Any] = dict(report.to_dict())
        if sampled is not None:
            info["steps_per_tile"] = [t.evaluations for t in sampled.tiles]
        info["mean_steps_per_tile"] = info["tile_evaluations"] / max(1, info["tiles"])
        if adaptive is not None:
            info["adaptive"] = adaptive.to_dict()
        info["input"] = {"path": str(a.input), "width": img.width, "height": img.height, "mode": img.mode,
                         "bit_depth": img.bit_depth, "alpha": img.alpha is not None}
        info["output"] = {"path": str(written.path), "width": written.width, "height": written.height,
                          "mode": written.mode, "bit_depth": written.bit_depth, "format": written.format}
        text = json.dumps(info, indent=2, sort_keys=True, default=str) + "\n"
        imageio.atomic_write(a.report, lambda fh: fh.write(text.encode()))
    if a.compare:
        from .viz.compare import compare_figure, save_compare_figure

        fig = compare_figure(img.rgb, sr, title=Path(a.input).name)
        save_compare_figure(fig, a.compare)
    if not a.quiet:
        steps = (f"{a.steps} steps" if a.policy == "uniform" else
                 f"{a.policy}: {report.tile_evaluations / max(1, report.tiles):.1f} of {a.steps} steps per tile")
        print(f"wrote {written.path} ({written.width}×{written.height} {written.mode}, {steps}, {seconds:.1f} s)")
    return EXIT_OK


def _delegate(name: str, argv: list[str]) -> int:
    """Run ``adasr {name} …`` through ``adasr.{name}.main`` (the module builds its own parser via its
    ``build_parser``, so ``adasr {name} -h`` shows the module's options)."""
    module = importlib.import_module(_DELEGATED[name][0])
    result = module.main(argv)
    return int(result or 0)


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in _DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.command in _DELEGATED:  # only reached with options before the command name
        parser.error(f"put options after the command: adasr {a.command} …")
    _check_args(a, parser)
    return run_upscale(a)


def _release(exc: BaseException) -> None:
    """Drop the locals of the frames an exception passed through, so objects held there are finalised *now*:
    a tqdm bar then closes (clearing its line) before the error is printed instead of overwriting it later."""
    traceback.clear_frames(exc.__traceback__)


def _error(message: object, code: int) -> int:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"adasr: error: {text}", file=sys.stderr)
    return code


def _is(exc: BaseException, module: str, name: str) -> bool:
    """``isinstance(exc, module.name)`` without importing ``module`` (if it was never imported, exc is not one)."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adasr`` console script and of ``python -m adasr``; returns the exit status.

    Nothing heavy is imported for ``--version`` or ``-h``; torch is loaded only by the command that needs it.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except SystemExit as exc:  # argparse (usage errors: 2, -h/--version: 0) and modules that call sys.exit
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else _error(exc.code, 1))
    except KeyboardInterrupt as exc:
        _release(exc)
        # Ctrl-C can land while a progress bar is drawing its first line (before the sampler holds the bar and can
        # close it): return to column 0 so the message is a line of its own.
        print("\r", end="", file=sys.stderr)
        return _error("interrupted (no output file was written)", EXIT_INTERRUPTED)
    except MemoryError as exc:
        _release(exc)
        return _error("out of memory; use a smaller --tile, or crop or downscale the image first", EXIT_FAILURE)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line, not a torch traceback
        if _is(exc, "adasr.imageio", "ImageError"):  # input/output problems the user can fix (before debug)
            return _error(exc, EXIT_USAGE)
        if os.environ.get("ADASR_DEBUG"):
            raise
        _release(exc)
        if _is(exc, "adasr.registry", "WeightsError"):
            return _error(f"{exc}; reinstall adasr or restore adasr/weights/", EXIT_FAILURE)
        if "out of memory" in str(exc).lower():  # torch.OutOfMemoryError (CUDA) and allocator failures
            return _error("out of memory on the device; use a smaller --tile or --device cpu", EXIT_FAILURE)
        if isinstance(exc, ValueError):  # bad device, bad option combination found by the library
            return _error(exc, EXIT_USAGE)
        if isinstance(exc, OSError):
            where = f": {exc.filename}" if exc.filename else ""
            return _error(f"{exc.strerror or exc}{where}", EXIT_FAILURE)
        return _error(f"unexpected {type(exc).__name__}: {exc} (a bug? rerun with ADASR_DEBUG=1 for the traceback)",
                      EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
