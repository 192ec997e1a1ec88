"""The ``adasr`` command: ``upscale`` an image ×4, ``train`` the model, ``bench`` quality and speed.

Every expected failure ends with one line ``adasr: error: …`` on stderr and a non-zero exit status, never a
traceback and never a partial output file:

* 2 — a usage or input problem (bad option, unreadable / unsuitable image, bad output path, unknown device);
* 1 — anything else the user can act on (missing or corrupt weights, out of memory, a failed write);
* 130 — interrupted with Ctrl-C; 143 — SIGTERM; 129 — SIGHUP (128 + the signal, :mod:`adasr.interrupts`).

Unexpected exceptions (bugs) are reported the same way, with a pointer to ``ADASR_DEBUG=1``, which re-raises
them with the full traceback. Control characters in anything echoed (a file name with an ANSI escape sequence)
are shown escaped (``\\x1b``), never sent raw to the terminal. ``-o`` (and ``--report`` / ``--compare``) may not
be the input file, compared after resolving links (hard links included): adasr never replaces its input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import time
import traceback
import unicodedata
from pathlib import Path
from typing import Any, Sequence

from .config import (DIFFUSION_ONLY, AdaptiveConfig, ConfigError, UpscaleConfig, add_config_arguments, flag_of,
                     given_values, option_fields)
from .interrupts import describe, exit_status, ignore_further, signals_interrupt

#: Subcommands implemented in their own modules, imported only when used: name → (module, one-line help).
_DELEGATED = {
    "train": ("adasr.train", "train the ×4 diffusion SR model or the EDSR CNN (see: adasr train -h)"),
    "bench": ("adasr.benchmarks", "measure quality or speed (see: adasr bench -h)"),
}

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The option of every config field (``n_max`` is ``--steps``), for messages that name fields.
_FLAGS = {"n_max": "--steps", **{f.name: flag_of(f) for cls in (UpscaleConfig, AdaptiveConfig)
                                 for f in option_fields(cls)}}


def printable(text: object) -> str:
    """``text`` safe to print on a terminal: whitespace runs become one space and every other control or
    format character (ESC of an ANSI escape sequence, BEL, a bidi override) is written as its escape (``\\x1b``)."""
    out = []
    for ch in " ".join(str(text).split()):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


class _Parser(argparse.ArgumentParser):
    """argparse with its error messages (which quote what the user typed) made :func:`printable`."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("adasr")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def add_upscale_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``adasr upscale``: the files, then one option per field of
    :class:`~adasr.config.UpscaleConfig` and :class:`~adasr.config.AdaptiveConfig` (help, choices and defaults
    from their metadata, :func:`~adasr.config.add_config_arguments`)."""
    p.add_argument("input", metavar="IN", help="image to upscale (PNG, JPEG, WebP, TIFF, BMP, GIF…)")
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="where to write the ×4 image; the extension picks the format (.png keeps 16 bits and alpha)")
    add_config_arguments(p, UpscaleConfig)
    p.add_argument("--report", metavar="FILE",
                   help="also write a JSON report (model, quantization, work done per denoiser mode, timing, sizes)")
    p.add_argument("--compare", metavar="FIG.png",
                   help="also write a figure: nearest ×4, bicubic ×4 and adasr side by side")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    ad = p.add_argument_group("adaptive sampling (AdaSR)", "--steps is N_max, the budget of the busiest tile")
    add_config_arguments(ad, UpscaleConfig, group="adaptive")
    add_config_arguments(ad, AdaptiveConfig)
    ru = p.add_argument_group("feature reuse (Faster-Diffusion, SMFDM, DeepCache)",
                              "reuse a cached feature at the steps between key steps; works with every --policy")
    add_config_arguments(ru, UpscaleConfig, group="reuse")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser. ``train`` and ``bench`` are listed here but parsed by their own modules."""
    p = _Parser(
        prog="adasr",
        description="Adaptive diffusion super-resolution: upscale images ×4 on a CPU.",
        epilog="example: adasr upscale photo.png -o photo_x4.png --steps 10",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    up = sub.add_parser("upscale", help="upscale an image ×4", description="Upscale an image ×4 with the shipped "
                        "diffusion model or the EDSR CNN (gray, alpha and 16-bit images are kept as they are).")
    add_upscale_arguments(up)
    for name, (_, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def _configs(a: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[UpscaleConfig, AdaptiveConfig]:
    """The configs the options describe (defaults from the dataclasses), checked by the configs themselves, and
    the options a regression model refuses; errors name the options."""
    up, ad = given_values(UpscaleConfig, a), given_values(AdaptiveConfig, a)
    try:
        config = UpscaleConfig(**up)
        if config.kind != "diffusion":
            refused = [_FLAGS[k] for k in up if k in DIFFUSION_ONLY] + [_FLAGS[k] for k in ad]
            if refused:
                parser.error(f"{', '.join(refused)} appl{'ies' if len(refused) == 1 else 'y'} to the diffusion model "
                             f"only (--model sr_x4); {config.model} is a regression CNN, one forward pass")
        if config.cache == "none" and ("cache_interval" in up or "key_steps" in up):
            given = [_FLAGS[k] for k in ("cache_interval", "key_steps") if k in up]
            parser.error(f"{' and '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to feature reuse; give "
                         "--cache encoder or --cache deepcache")
        adaptive = AdaptiveConfig(**ad).with_(n_max=config.n_steps)
        adaptive.check(config.policy)
    except ConfigError as exc:
        parser.error(exc.render(lambda name: _FLAGS.get(name, name)))
    return config, adaptive


def _check_args(a: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[UpscaleConfig, AdaptiveConfig]:
    configs = _configs(a, parser)
    outputs = [Path(x).resolve() for x in (a.output, a.report, a.compare) if x]
    if len(set(outputs)) != len(outputs):
        parser.error("-o, --report and --compare must be different files")
    for flag, value in (("-o", a.output), ("--report", a.report), ("--compare", a.compare)):
        if value and _same_file(value, a.input):
            parser.error(f"{flag} {value} is the input file {a.input}; adasr never replaces its input, give "
                         f"another {flag} path")
    return configs


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether paths ``a`` and ``b`` name the same file: equal after resolving symbolic links and ``..``, or the
    same inode (a hard link, a bind mount)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def run_upscale(a: argparse.Namespace, config: UpscaleConfig, adaptive: AdaptiveConfig) -> int:
    """``adasr upscale``: validate everything cheap first (device, every output path, the input), then hand the
    configs to :func:`adasr.upscaling.upscale_tensor` (which loads, quantizes and samples)."""
    from . import imageio
    from .runtime import resolve_device, resolve_precision

    device = resolve_device(config.device)
    resolve_precision(config.precision, device)
    imageio.check_destination(a.output)
    imageio.output_format(a.output)
    if a.report:
        imageio.check_destination(a.report, "report")
    if a.compare:
        imageio.check_destination(a.compare, "figure")
        if Path(a.compare).suffix.lower() != ".png":
            raise imageio.ImageError(f"--compare writes a PNG figure; give a path ending in .png, not {a.compare}")
    img = imageio.read_image(a.input, tile=config.tile, overlap=config.overlap)
    imageio.check_output(a.output, alpha=img.alpha is not None, grayscale=img.grayscale)

    from . import upscaling

    t0 = time.perf_counter()
    kwargs: dict[str, Any] = config.upscale_kwargs()
    if config.kind == "diffusion":
        kwargs["adaptive"] = adaptive
    sr, report, _ = upscaling.upscale_tensor(img.rgb, progress=not a.quiet, **kwargs)
    written = imageio.write_image(a.output, img.to_array(sr, img.upscaled_alpha()), icc_profile=img.icc_profile)
    seconds = time.perf_counter() - t0
    try:
        _write_extras(a, img, sr, report, written)
    except (OSError, KeyboardInterrupt) as exc:  # the image is on disk: the error line says so
        exc.adasr_written = written.path  # type: ignore[union-attr]
        raise
    if not a.quiet:
        print(printable(f"wrote {written.path} ({written.width}×{written.height} {written.mode}, "
                        f"{_summary(config, report)}, {seconds:.1f} s)"))
    return EXIT_OK


def _write_extras(a: argparse.Namespace, img: Any, sr: Any, report: Any, written: Any) -> None:
    """``--report`` (JSON) and ``--compare`` (figure), written after the image."""
    from . import imageio

    if a.report:
        info: dict[str, Any] = dict(report.to_dict())
        info["mean_steps_per_tile"] = info["tile_evaluations"] / max(1, info["tiles"])
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


def _summary(config: UpscaleConfig, report: Any) -> str:
    """What ran, for the last line: steps (per tile for adaptive policies), model and quantization, FAB."""
    quant = f" {config.quant}" if config.quant != "none" else ""
    if config.kind != "diffusion":
        text = f"{config.model}{quant}, one forward pass"
    elif config.policy == "uniform":
        text = f"{config.n_steps} steps{_schedule_name(report, ' of ')}{',' + quant if quant else ''}"
    else:
        text = (f"{config.policy}: {report.tile_evaluations / max(1, report.tiles):.1f} of {config.n_steps} steps "
                f"per tile{_schedule_name(report, ' of ')}{',' + quant if quant else ''}")
    reuse = getattr(report, "reuse", None)
    if reuse:
        full = report.evaluations_by_mode.get("full", 0)
        text += f", {reuse['cache']} cache: {full} of {report.tile_evaluations} tile-evaluations full"
    if getattr(report, "deterministic", False):
        text += ", deterministic"
    fab = getattr(report, "fab", None)
    return text + (f" (FAB {fab:.2f})" if fab is not None else "")


def _schedule_name(report: Any, prefix: str) -> str:
    """``prefix`` + ``balanced [999, 137, 21]``: the schedule's name and its list (and η when it is not 0); empty
    for a report without a schedule."""
    sched = getattr(report, "schedule", None)
    if not sched:
        return ""
    eta = getattr(report, "eta", None)
    return f"{prefix}{sched['name']} {sched['timesteps']}" + (f" η={eta:g}" if eta else "")


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
    config, adaptive = _check_args(a, parser)
    return run_upscale(a, config, adaptive)


def _release(exc: BaseException) -> None:
    """Drop the locals of the frames an exception passed through, so objects held there are finalised *now*:
    a tqdm bar then closes (clearing its line) before the error is printed instead of overwriting it later."""
    traceback.clear_frames(exc.__traceback__)


def _error(message: object, code: int, exc: BaseException | None = None) -> int:
    """Print ``adasr: error: message`` (one line, :func:`printable`), plus what was written when ``exc`` ended the
    run after the image (``--report`` / ``--compare`` failed); returns ``code``."""
    text = printable(message) or "unknown error"
    written = getattr(exc, "adasr_written", None)
    if written is not None:
        text += f" ({printable(written)} itself was written)"
    with contextlib.suppress(OSError):  # a hung-up terminal: nowhere left to report to
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
    pil_log = logging.getLogger("PIL")
    level = pil_log.level
    # Pillow logs what it skips in a damaged file ("More samples per pixel than can be decoded"); the outcome is
    # the one line below (or the image), so those notes would only be extra stderr lines.
    pil_log.setLevel(logging.CRITICAL)
    try:
        with signals_interrupt():
            return _run(args)
    finally:
        pil_log.setLevel(level)


def _run(args: list[str]) -> int:
    try:
        return _dispatch(args)
    except SystemExit as exc:  # argparse (usage errors: 2, -h/--version: 0) and modules that call sys.exit
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else _error(exc.code, 1))
    except KeyboardInterrupt as exc:  # Ctrl-C, and SIGTERM / SIGHUP (adasr.interrupts.Terminated)
        ignore_further()
        _release(exc)
        # Ctrl-C can land while a progress bar is drawing its first line (before the sampler holds the bar and can
        # close it): return to column 0 so the message is a line of its own.
        with contextlib.suppress(OSError):
            print("\r", end="", file=sys.stderr)
        if getattr(exc, "adasr_written", None) is not None:
            return _error(f"{describe(exc)} while writing --report or --compare", exit_status(exc), exc)
        if args and args[0] == "train":
            return _error(f"{describe(exc)}; the same command resumes from the last checkpoint", exit_status(exc))
        if args and args[0] in _DELEGATED:
            return _error(describe(exc), exit_status(exc))
        return _error(f"{describe(exc)} (no output file was written)", exit_status(exc))
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
        if isinstance(exc, ConfigError):  # found by the library once the model is known: name the options
            return _error(exc.render(lambda name: _FLAGS.get(name, name)), EXIT_USAGE)
        if isinstance(exc, ValueError):  # bad device, bad option combination found by the library
            return _error(exc, EXIT_USAGE)
        if isinstance(exc, OSError):
            where = f": {exc.filename}" if exc.filename else ""
            return _error(f"{exc.strerror or exc}{where}", EXIT_FAILURE, exc)
        return _error(f"unexpected {type(exc).__name__}: {exc} (a bug? rerun with ADASR_DEBUG=1 for the traceback)",
                      EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
