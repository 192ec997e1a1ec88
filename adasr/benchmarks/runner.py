"""The shared runner of ``adasr bench NAME``: one parser, one way to print, log and save every benchmark.

Each benchmark module (:mod:`~adasr.benchmarks.quality`, :mod:`~adasr.benchmarks.speed`,
:mod:`~adasr.benchmarks.adaptive`, :mod:`~adasr.benchmarks.quant`, :mod:`~adasr.benchmarks.schedules`) provides

* ``add_arguments(parser)`` — its own options;
* ``run_args(args, log) -> dict`` — runs the benchmark, returns a JSON-ready result that includes
  ``"machine"`` (:func:`machine_info`); ``log(message)`` receives the progress lines;
* ``format_result(result) -> str`` — its text table.

The runner adds ``--json FILE`` and ``--replot FILE`` (read an earlier result instead of measuring: the table
and the figure are redrawn from it) to every benchmark, prints the table on stdout, writes the progress lines on
stderr as ``[bench NAME] message``, writes the JSON, and draws the figures the benchmarks only compute the data of
(``bench adaptive --figure``, ``bench schedules --figure``). The JSON is written first, so that a long run's
measurements survive a failing table or figure. Benchmark modules are imported only when their subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

#: name → (module, one-line help), in the order of ``adasr bench -h``.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "quality": ("adasr.benchmarks.quality", "shipped model vs bicubic on the held-out images"),
    "speed": ("adasr.benchmarks.speed", "seconds for a 128×128 image ×4, tiled vs whole image"),
    "adaptive": ("adasr.benchmarks.adaptive",
                 "AdaSR policies vs uniform DDIM (and equal-budget controls), one run"),
    "quant": ("adasr.benchmarks.quant",
              "AdaBM vs fixed-bit quantization of EDSR, real int8 latency, UNet bit mapping"),
    "schedules": ("adasr.benchmarks.schedules",
                  "optimised sampling schedules vs linspace at the same N, linspace-20 reference, default speed-up"),
    "spread": ("adasr.benchmarks.spread",
               "small differences of notebooks 05, 06, 10 over 3 seeds × 12 crops: do they survive?"),
    "adadiffsr": ("adasr.benchmarks.adadiffsr",
                  "AdaDiffSR's dynamic strides vs equal-budget controls and the hindsight oracle, one run"),
    "reuse": ("adasr.benchmarks.reuse",
              "encoder reuse and DeepCache vs the best uniform schedule at equal MACs and wall clock, one run"),
    "sparse": ("adasr.benchmarks.sparse",
               "sparse momentum (density 0.15) vs dense and fewer channels: quality, storage, CPU speed"),
}

Log = Callable[[str], None]


def stderr_log(name: str) -> Log:
    """A progress sink for benchmark ``name``: each message becomes one line ``[bench NAME] message`` on stderr."""

    def log(message: str) -> None:
        print(f"[bench {name}] {message}", file=sys.stderr, flush=True)

    return log


def no_log(message: str) -> None:
    """The silent progress sink (the default of the benchmark functions)."""


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`), '' when unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def machine_info(device: Any, precision: str) -> dict[str, Any]:
    """What a benchmark ran on: {"cpu": model name, "amx": AMX tiles, "avx512_bf16": AVX512-BF16 (torch's CPU
    probes of the hardware), "bf16_fast": whether ``--precision auto`` picks bf16 here
    (:func:`adasr.runtime.bf16_supported`: false when oneDNN/ATen are capped below those kernels, as when emulating
    an AVX2-only CPU), "isa_cap": ATen's CPU capability, "threads": torch threads, "torch", "python", "device",
    "precision"} — recorded in every benchmark's result."""
    import torch

    from ..runtime import bf16_supported

    def probe(name: str) -> bool:
        fn = getattr(torch.cpu, name, None)
        return bool(fn()) if fn is not None else False

    return {"cpu": cpu_model_name(), "amx": probe("_is_amx_tile_supported"),
            "avx512_bf16": probe("_is_avx512_bf16_supported"), "bf16_fast": bf16_supported(torch.device("cpu")),
            "isa_cap": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "precision": precision}


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision`` (the benchmarks that sample the diffusion model)."""
    p.add_argument("--device", default=None)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="default: auto, or $ADASR_PRECISION when set")


def add_model_argument(p: argparse.ArgumentParser) -> None:
    """``--model NAME``: the registered diffusion weights a benchmark samples (default: the package's default model),
    e.g. to repeat a chapter's comparison on a fine-tuned model (``sr_x4_ft``) without retuning it."""
    from ..defaults import DEFAULT_MODEL

    p.add_argument("--model", default=None, metavar="NAME",
                   help=f"registered diffusion weights to sample (default: {DEFAULT_MODEL})")


def add_sampler_arguments(p: argparse.ArgumentParser, arm: str = "new-default arm") -> None:
    """``--steps``, ``--schedule``, ``--eta`` of the benchmark's new-default ``arm`` and ``--no-legacy`` (skip the old
    default), for the benchmarks that time or score the default sampler against the old one (quality, speed)."""
    from ..defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS, LEGACY_SCHEDULE, LEGACY_STEPS

    p.add_argument("--steps", type=int, default=None,
                   help=f"steps of the {arm} (default: {DEFAULT_STEPS}, or the length of an explicit --schedule)")
    p.add_argument("--schedule", default=None, metavar="NAME|LIST",
                   help=f"schedule of the {arm} (default: {DEFAULT_SCHEDULE}); a name or an explicit list such as "
                        "999,100,20")
    p.add_argument("--eta", type=float, default=None, help=f"η of the {arm} (default: the schedule's own, else 0)")
    p.add_argument("--no-legacy", action="store_true",
                   help=f"skip the old default ({LEGACY_STEPS} steps {LEGACY_SCHEDULE}, η 0)")


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each zero-argument callable, after one warm-up call each, the calls
    interleaved round-robin (a, b, a, b, …): every timed comparison of the benchmarks, side by side in one run."""
    for f in fns.values():
        f()  # warm-up (allocator, oneDNN kernels)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return times


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """``adasr bench {quality,speed,adaptive,quant,schedules} [options] [--json FILE]``."""
    from . import __doc__ as doc

    p = parser or argparse.ArgumentParser(prog="adasr bench", description=(doc or "").split("\n")[0])
    sub = p.add_subparsers(dest="which", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        sp = sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(sp)
        sp.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
        sp.add_argument("--replot", metavar="FILE", default=None,
                        help="measure nothing: read the results from this JSON (an earlier --json), print the table "
                             "and draw --figure from it")
    return p


def save_curve_figure(result: dict[str, Any], path: str) -> None:
    """Write the speed–quality figure of a ``bench adaptive`` result
    (:func:`adasr.viz.adaptive.plot_speed_quality`) to ``path`` (.png)."""
    from ..viz.adaptive import plot_speed_quality
    from ..viz.common import savefig

    p = Path(path)
    savefig(plot_speed_quality(result), p.stem, p.parent)


def save_schedules_figure(result: dict[str, Any], path: str, dpi: int = 200) -> Path:
    """Write the figure of a ``bench schedules`` result (:func:`adasr.viz.schedules.schedule_comparison_figure`)
    to ``path`` (.png, ``dpi``, no ``Software`` metadata); returns the path written."""
    from ..viz.schedules import schedule_comparison_figure

    p = Path(path).with_suffix(".png")
    p.parent.mkdir(parents=True, exist_ok=True)
    schedule_comparison_figure(result).savefig(p, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return p


def write_json(result: dict[str, Any], path: str) -> None:
    """``result`` as indented JSON at ``path``."""
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


def run(args: argparse.Namespace, log: Log | None = None) -> int:
    """Run the benchmark ``args.which`` (or, with ``--replot FILE``, read its result from that JSON): table on stdout,
    progress on stderr (or to ``log``), figure, JSON."""
    module = importlib.import_module(BENCHMARKS[args.which][0])
    if getattr(args, "replot", None):  # redraw from a committed result, no measurement
        result = json.loads(Path(args.replot).read_text())
    else:
        result = module.run_args(args, log or stderr_log(args.which))
    if args.json:  # first: a long run's measurements survive a failing table or figure
        write_json(result, args.json)
    print(module.format_result(result))
    if getattr(args, "figure", None):
        if "sweep" in result:
            save_curve_figure(result, args.figure)
        elif result.get("benchmark") == "schedules":
            save_schedules_figure(result, args.figure)
        elif result.get("benchmark") in ("adadiffsr", "reuse", "sparse"):
            from ..viz.common import savefig

            draw = {"adadiffsr": "adasr.viz.adadiffsr:cost_quality_figure", "reuse": "adasr.viz.reuse:cost_quality_figure",
                    "sparse": "adasr.viz.sparse:sparse_summary_figure"}[result["benchmark"]]
            mod, fn = draw.split(":")
            p = Path(args.figure)
            savefig(getattr(importlib.import_module(mod), fn)(result), p.stem, p.parent)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


__all__ = ["BENCHMARKS", "add_device_arguments", "add_sampler_arguments", "build_parser", "cpu_model_name", "machine_info", "main", "no_log",
           "interleaved", "run", "save_curve_figure", "save_schedules_figure", "stderr_log", "write_json"]
