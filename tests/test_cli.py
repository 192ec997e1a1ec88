"""The ``adasr`` command line: exit codes, one-line errors, no partial outputs, and correct gray / alpha / 16-bit
round trips. Most tests run ``main([...])`` in-process with a bicubic stand-in for the sampler; the groups at the end
run the real sampling pipeline (random weights, in-process) and the shipped model through ``python -m adasr``."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from adasr.defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS
import torch
from PIL import Image

from adasr import cli, imageio
from adasr.data import upscale_bicubic

RNG = np.random.default_rng(1)


@dataclass
class FakeReport:
    steps: int
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "unet_calls": 0, "tile_evaluations": 0, "macs": 0, "seconds": 0.0,
                "tiles": 1, "device": "cpu", "precision": "fp32", "policy": "bicubic-stand-in"}


@pytest.fixture
def fake_upscaler(monkeypatch):
    """Replace adasr.upscaling.upscale_tensor by bicubic ×4 (fast, deterministic); records its calls."""
    import adasr.upscaling as up

    calls: list[dict] = []

    def fake(x, *, steps=10, seed=0, tile=64, overlap=16, device=None, precision="auto", progress=False, **kw):
        calls.append(dict(shape=tuple(x.shape), steps=steps, seed=seed, tile=tile, overlap=overlap, device=device,
                          precision=precision, progress=progress))
        return upscale_bicubic(x), FakeReport(steps), None

    monkeypatch.setattr(up, "upscale_tensor", fake)
    return calls


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def rgb8(h: int = 8, w: int = 8) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, contains: str) -> None:
    if "interrupted" in contains:  # the Ctrl-C message first returns to column 0 (a progress bar may be mid-line)
        assert err.startswith("\radasr: error: "), err
        err = err[1:]
    assert err.startswith("adasr: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert contains in err, err
    assert "Traceback" not in err


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (no filtering) — Pillow cannot write these."""
    def chunk(t: bytes, b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------ usage, help, version
def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.startswith("adasr 0.1")


def test_help_lists_commands(capsys):
    code, out, _ = run_main(capsys, "-h")
    assert code == 0 and all(c in out for c in ("upscale", "train", "bench"))


def test_upscale_help(capsys):
    code, out, _ = run_main(capsys, "upscale", "-h")
    assert code == 0
    for opt in ("-o OUT", "--steps", "--seed", "--device", "--precision", "--tile", "--overlap", "--report",
                "--compare", "--quiet", "--model {sr_x4,sr_x4_ft,edsr_x4,sr_x4_sparse15}", "--cache {none,encoder,deepcache}",
                "--cache-interval", "--key-steps", "--quant {none,int8,adabm}", "--eta"):
        assert opt in out
    assert "N, the most denoising steps any tile takes" in out and f"default: {DEFAULT_STEPS} for uniform" in out
    assert "--schedule NAME|LIST" in out and f"(default: {DEFAULT_SCHEDULE})" in out


def test_version_and_help_do_not_import_torch(tmp_path):
    """``adasr --version`` and ``-h`` (also ``upscale -h``, whose options come from the config dataclasses) stay
    fast: nothing imports torch."""
    code = ("import contextlib, io, sys\n"
            "from adasr import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    codes = [cli.main(a) for a in (['--version'], ['-h'], ['upscale', '-h'])]\n"
            "print(codes, 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0, 0, 0] False"


def test_no_command(capsys):
    code, _, err = run_main(capsys)
    assert code == 2 and "required: COMMAND" in err


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "must be at least 1"),
    (["--steps", "ten"], "expected a whole number"),
    (["--tile", "4"], "must be at least 8"),
    (["--tile", "16", "--overlap", "24"], "--overlap (24) must be smaller than --tile (16)"),
    (["--tile", "16"], "--overlap (32, the default) must be smaller than --tile (16)"),
    (["--tile", "10"], "--overlap (32, the default) must be smaller than --tile (10); give a larger --tile or a "
                       "smaller --overlap"),
    (["--seed", str(2**64)], "--seed must be at most 18446744073709551615 (2**64 - 1, torch's largest seed), got "
                             "18446744073709551616"),
    (["--seed", "-1"], "--seed: must be at least 0, got -1"),
    (["--steps", "100000", "--policy", "adasr"], "--steps must be at most 1000 (the model's T: no more distinct "
                                                 "timesteps), got 100000"),
    (["--eta", "nan"], "--eta must be a finite number, got nan"),
    (["--eta", "inf"], "--eta must be a finite number, got inf"),
    (["--epsilon", "nan"], "--epsilon must be a finite number, got nan"),
    (["--precision", "fp16"], "invalid choice: 'fp16'"),
    (["--eta", "-1"], "--eta must be at least 0.0, got -1.0"),
    (["--model", "edsr"], "invalid choice: 'edsr'"),
    (["--quant", "int8"], "--quant int8 is not available for sr_x4 (real int8 kernels exist for EDSR's plain "
                          "convolutions only); it supports --quant none, adabm"),
    (["--quant", "adabm", "--precision", "bf16"],
     "--precision bf16 is for the float diffusion model; sr_x4 with --quant adabm runs in fp32"),
    (["--model", "edsr_x4", "--precision", "bf16"], "--precision bf16 is for the float diffusion model; edsr_x4"),
    (["--model", "edsr_x4", "--steps", "5"], "adasr: error: --steps applies to the diffusion model only "
                                             "(--model sr_x4); edsr_x4 is a regression CNN, one forward pass\n"),
    (["--model", "edsr_x4", "--quant", "int8", "--seed", "1", "--policy", "adasr", "--epsilon", "0.1"],
     "--seed, --policy, --epsilon apply to the diffusion model only"),
])
def test_bad_options(capsys, tmp_path, fake_upscaler, args, message):
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", *args)
    assert code == 2 and message in err
    assert not fake_upscaler and not (tmp_path / "out.png").exists()


def test_same_output_paths(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "x.png", "--compare", tmp_path / "x.png")
    assert code == 2 and "must be different files" in err


def test_missing_output_option(capsys, tmp_path):
    code, _, err = run_main(capsys, "upscale", tmp_path / "in.png")
    assert code == 2 and "-o/--output" in err


# ----------------------------------------------------------------------------------- bad inputs → exit 2, one line
def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "text.png"
    text.write_text("hello")
    cut = tmp_path / "cut.png"
    save(cut, rgb8(64, 64))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    tiny = save(tmp_path / "tiny.png", rgb8(1, 1))
    return {
        "missing": (tmp_path / "missing.png", "input file not found"),
        "folder": (tmp_path, "is a folder, not an image file"),
        "not an image": (text, "is not an image file Pillow can read"),
        "truncated": (cut, "is truncated or corrupt"),
        "1x1": (tiny, "is only 1×1 pixels; the minimum is 8×8"),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "not an image", "truncated", "1x1"])
def test_bad_input_files(capsys, tmp_path, fake_upscaler, case):
    path, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.png"
    code, stdout, err = run_main(capsys, "upscale", path, "-o", out)
    assert code == 2 and stdout == ""
    assert_one_line_error(err, message)
    assert not out.exists() and not fake_upscaler


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their permissions")
def test_unreadable_input(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    src.chmod(0)
    try:
        code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png")
    finally:
        src.chmod(0o644)
    assert code == 2
    assert_one_line_error(err, "permission denied")


def test_too_large_for_memory(capsys, tmp_path, monkeypatch, fake_upscaler):
    monkeypatch.setattr(imageio, "available_memory_bytes", lambda: 1 << 20)
    src = save(tmp_path / "in.png", rgb8(64, 64))
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png")
    assert code == 2
    assert_one_line_error(err, "of memory but only 1 MiB is available; ")
    assert not fake_upscaler


# ------------------------------------------------------------------------ bad destinations, checked before the model
def test_output_folder_missing(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "nope" / "out.png")
    assert code == 2
    assert_one_line_error(err, f"output folder {tmp_path / 'nope'} does not exist; create it first")
    assert not fake_upscaler


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_output_folder_read_only(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_main(capsys, "upscale", src, "-o", ro / "out.png")
    finally:
        ro.chmod(0o755)
    assert code == 2
    assert_one_line_error(err, "is not writable")
    assert not fake_upscaler


@pytest.mark.parametrize("flag", ["--report", "--compare"])
def test_side_output_folder_missing(capsys, tmp_path, fake_upscaler, flag):
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", flag, tmp_path / "nope" / "x.png")
    assert code == 2 and "does not exist" in err
    assert not fake_upscaler and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("name,message", [
    ("out.xyz", "unknown image extension '.xyz'"),
    ("out", "has no file extension"),
    ("out.psd", "Pillow can read .psd files but cannot write them"),
])
def test_output_extension(capsys, tmp_path, fake_upscaler, name, message):
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / name)
    assert code == 2
    assert_one_line_error(err, message)
    assert not fake_upscaler


def test_alpha_to_jpeg_refused_before_the_model(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", np.dstack([rgb8(), np.full((8, 8), 200, np.uint8)]))
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.jpg")
    assert code == 2
    assert_one_line_error(err, "JPEG files cannot store transparency (an alpha channel); write out.png instead")
    assert not fake_upscaler


def test_compare_must_be_png(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "o.png", "--compare", tmp_path / "c.jpg")
    assert code == 2 and "--compare writes a PNG figure" in err and not fake_upscaler


@pytest.mark.parametrize("device,message", [
    ("tpu", "--device must be cpu, cuda, cuda:N or auto (adasr runs on CPUs and NVIDIA GPUs), got 'tpu'"),
    ("mps", "--device must be cpu, cuda, cuda:N or auto (adasr runs on CPUs and NVIDIA GPUs), got 'mps'"),
    ("meta", "--device must be cpu, cuda, cuda:N or auto"),
    ("xpu", "--device must be cpu, cuda, cuda:N or auto"),
    ("cuda:x", "--device must be cpu, cuda, cuda:N or auto"),
    ("cuda", "torch.cuda.is_available() is False"),
])
def test_bad_device(capsys, tmp_path, fake_upscaler, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--device", device)
    assert code == 2
    assert_one_line_error(err.splitlines(keepends=True)[-1], message)  # config errors print the usage line first
    assert not fake_upscaler


# ------------------------------------------------------------------------------ failures during the run → no output
@pytest.mark.parametrize("exc,code,message", [
    (KeyboardInterrupt(), 130, "interrupted (no output file was written)"),
    (MemoryError(), 1, "out of memory; use a smaller --tile"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), 1, "out of memory on the device"),
    (RuntimeError("something deep inside torch"), 1, "unexpected RuntimeError: something deep inside torch"),
])
def test_failures_during_upscale(capsys, tmp_path, monkeypatch, exc, code, message):
    import adasr.upscaling as up

    def explode(*a, **k):
        raise exc

    monkeypatch.setattr(up, "upscale_tensor", explode)
    monkeypatch.delenv("ADASR_DEBUG", raising=False)
    src = save(tmp_path / "in.png", rgb8())
    got, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--report", tmp_path / "r.json")
    assert got == code
    assert_one_line_error(err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_weights_error(capsys, tmp_path, monkeypatch):
    import adasr.upscaling as up
    from adasr.registry import WeightsError

    def missing(*a, **k):
        raise WeightsError("weights file adasr/weights/sr_x4.safetensors is missing")

    monkeypatch.setattr(up, "load_pretrained", missing)
    src = save(tmp_path / "in.png", rgb8())
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--device", "cpu")
    assert code == 1
    assert_one_line_error(err, "sr_x4.safetensors is missing; reinstall adasr or restore adasr/weights/")
    assert not (tmp_path / "out.png").exists()


def test_interrupt_while_writing_keeps_old_output(capsys, tmp_path, monkeypatch, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(imageio, "_encode_pil", interrupted)
    code, _, err = run_main(capsys, "upscale", src, "-o", out)
    assert code == 130 and out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


# ------------------------------------------------------------------------------------- round trips (stand-in model)
def test_rgb_upscale_with_report_and_compare(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8(8, 12))
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--steps", "3", "--seed", "7",
                              "--tile", "32", "--overlap", "8", "--report", tmp_path / "r.json",
                              "--compare", tmp_path / "cmp.png", "--device", "cpu", "--precision", "fp32")
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'out.png'} (48×32 RGB, 3 steps,")
    assert fake_upscaler == [dict(shape=(1, 3, 8, 12), steps=3, seed=7, tile=32, overlap=8, device="cpu",
                                  precision="fp32", progress=True)]
    assert Image.open(tmp_path / "out.png").size == (48, 32)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["steps"] == 3 and report["policy"] == "bicubic-stand-in"
    assert report["input"] == {"path": str(src), "width": 12, "height": 8, "mode": "RGB", "bit_depth": 8,
                               "alpha": False}
    assert report["output"] == {"path": str(tmp_path / "out.png"), "width": 48, "height": 32, "mode": "RGB",
                                "bit_depth": 8, "format": "PNG"}
    fig = Image.open(tmp_path / "cmp.png")
    assert fig.format == "PNG" and fig.size[0] > 3 * fig.size[1]
    assert "Software" not in fig.info


def test_compare_figure_is_deterministic(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    for name in ("a.png", "b.png"):
        code = run_main(capsys, "upscale", src, "-o", tmp_path / f"o_{name}", "--compare", tmp_path / name, "-q")[0]
        assert code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_quiet(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--quiet")
    assert code == 0 and out == "" and err == ""
    assert fake_upscaler[0]["progress"] is False


def test_edsr_gets_only_the_options_it_uses(capsys, tmp_path, monkeypatch):
    """--model edsr_x4: the library gets the model, the quantization, device and precision, no diffusion option."""
    import adasr.upscaling as up

    seen = []
    monkeypatch.setattr(up, "upscale_tensor",
                        lambda x, **kw: seen.append(kw) or (upscale_bicubic(x), FakeReport(1), None))
    src = save(tmp_path / "in.png", rgb8())
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--model", "edsr_x4", "--quant",
                              "int8", "--device", "cpu")
    assert code == 0, err
    assert seen == [dict(model="edsr_x4", quant="int8", device="cpu", precision="auto", deterministic=False,
                         progress=True)]
    assert out.startswith(f"wrote {tmp_path / 'out.png'} (32×32 RGB, edsr_x4 int8, one forward pass, ")


def test_shipped_edsr_int8_with_report(capsys, tmp_path):
    """The real int8 EDSR (calibrated on the training photos, seconds): the report names model and quantization."""
    src = save(tmp_path / "in.png", rgb8(16, 16))
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--model", "edsr_x4", "--quant",
                              "int8", "--report", tmp_path / "r.json", "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").size == (64, 64)
    r = json.loads((tmp_path / "r.json").read_text())
    assert (r["model"], r["quant"], r["fab"], r["policy"], r["steps"], r["seed"]) == ("edsr_x4", "int8", None, "none",
                                                                                       1, None)
    assert r["quantization"]["method"] == "int8" and r["quantization"]["seconds"] > 0
    assert r["macs"] > 0 and r["macs_by_mode"] == {"full": r["macs"]} and r["evaluations_by_mode"] == {"full": 1}


def test_gray_roundtrip(capsys, tmp_path, fake_upscaler):
    src = save(tmp_path / "gray.png", RNG.integers(0, 256, (8, 10), dtype=np.uint8))
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "-q")
    assert code == 0, err
    assert fake_upscaler[0]["shape"] == (1, 3, 8, 10)  # replicated to RGB for the model
    im = Image.open(tmp_path / "out.png")
    assert (im.mode, im.size) == ("L", (40, 32))


def test_rgba_roundtrip_keeps_alpha(capsys, tmp_path, fake_upscaler):
    a = np.dstack([rgb8(16, 16), np.full((16, 16), 255, np.uint8)])
    a[:, :8, 3] = 0
    src = save(tmp_path / "rgba.png", a)
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.webp", "-q")
    assert code == 0, err
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "-q")
    assert code == 0, err
    im = Image.open(tmp_path / "out.png")
    assert (im.mode, im.size) == ("RGBA", (64, 64))
    alpha = np.asarray(im)[:, :, 3]
    assert (alpha[:, :28] == 0).all() and (alpha[:, 36:] == 255).all()


def test_16bit_gray_roundtrip(capsys, tmp_path, fake_upscaler):
    g = RNG.integers(0, 65536, (8, 8)).astype(np.uint16)
    src = save(tmp_path / "g16.png", g)
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "-q", "--report", tmp_path / "r.json")
    assert code == 0, err
    im = Image.open(tmp_path / "out.png")
    assert (im.mode, im.size) == ("I;16", (32, 32))
    out = np.asarray(im)
    assert out.dtype == np.uint16 and len(np.unique(out)) > 256  # really 16-bit, not 8-bit values stretched
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["input"]["bit_depth"] == 16 and r["output"]["mode"] == "I;16" and r["output"]["bit_depth"] == 16


def test_16bit_rgb_roundtrip(capsys, tmp_path, fake_upscaler):
    a = RNG.integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    src = tmp_path / "c16.png"
    src.write_bytes(png16_rgb(a))
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "-q")
    assert code == 0, err
    back = imageio.read_image(tmp_path / "out.png", check_memory=False)
    assert back.mode == "RGB;16" and back.bit_depth == 16 and (back.height, back.width) == (32, 36)
    up = imageio.read_image(src, check_memory=False)
    expected = up.to_array(upscale_bicubic(up.rgb))
    assert np.array_equal(back.to_array(back.rgb), expected)


def test_palette_with_transparency_roundtrip(capsys, tmp_path, fake_upscaler):
    idx = RNG.integers(0, 3, (8, 8), dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.save(tmp_path / "pal.png", transparency=2)
    code, _, err = run_main(capsys, "upscale", tmp_path / "pal.png", "-o", tmp_path / "out.png", "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").mode == "RGBA"


# ------------------------------------------------------------------------------------- delegated subcommands
def test_train_delegates(capsys, monkeypatch):
    import adasr.train as train

    seen = []
    monkeypatch.setattr(train, "main", lambda argv=None: seen.append(argv) or 0)
    assert run_main(capsys, "train", "--out", "runs/x", "--steps", "5")[0] == 0
    assert seen == [["--out", "runs/x", "--steps", "5"]]


def test_train_help_and_usage_error(capsys):
    code, out, _ = run_main(capsys, "train", "-h")
    assert code == 0 and "usage: adasr train" in out and "--out" in out
    code, _, err = run_main(capsys, "train", "--steps", "5")
    assert code == 2 and "--out" in err


def test_bench_delegates(capsys, monkeypatch):
    import adasr.benchmarks as bench

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv=None: seen.append(argv) or 0)
    assert run_main(capsys, "bench", "speed", "--json", "s.json")[0] == 0
    assert seen == [["speed", "--json", "s.json"]]


def test_bench_help(capsys):
    code, out, _ = run_main(capsys, "bench", "-h")
    assert code == 0 and "quality" in out and "speed" in out


# ------------------------------------------------------------------------------------------------ subprocess
def _python_m_adasr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ADASR_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "adasr", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_python_m_adasr_error_is_one_line(tmp_path):
    text = tmp_path / "fake.png"
    text.write_text("not a picture")
    r = _python_m_adasr("upscale", text, "-o", tmp_path / "out.png", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"adasr: error: {text} is not an image file Pillow can read (is it really a .png file?); "
                        "convert it to PNG or JPEG first\n")
    assert not (tmp_path / "out.png").exists()


def test_python_m_adasr_version(tmp_path):
    r = _python_m_adasr("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("adasr ")


# ------------------------------------------------------------- the real sampling pipeline (random weights, fast)
def test_real_pipeline_random_weights(capsys, tmp_path, monkeypatch):
    """adasr.upscaling.upscale_tensor end to end on an 8×8 RGBA input, 2 steps, with an untrained model."""
    import adasr.upscaling as up
    from adasr.srmodel import SRDiffusion, SRDiffusionConfig

    torch.manual_seed(0)
    model = SRDiffusion(SRDiffusionConfig()).eval()
    monkeypatch.setattr(up, "load_pretrained", lambda *a, **k: model)
    src = save(tmp_path / "in.png", np.dstack([rgb8(), np.full((8, 8), 90, np.uint8)]))
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--steps", "2", "--device", "cpu",
                              "--precision", "fp32", "--report", tmp_path / "r.json", "-q")
    assert code == 0, err
    im = Image.open(tmp_path / "out.png")
    assert (im.mode, im.size) == ("RGBA", (32, 32)) and (np.asarray(im)[:, :, 3] == 90).all()
    r = json.loads((tmp_path / "r.json").read_text())
    for key in ("tile_evaluations", "unet_calls", "seconds", "steps", "macs", "tiles", "device", "precision",
                "policy"):
        assert key in r
    assert r["steps"] == 2 and r["unet_calls"] >= 2 and r["output"]["width"] == 32


# ----------------------------------------------------------- the shipped model (needs adasr/weights/sr_x4 registered)
def test_shipped_model_through_python_m_adasr(tmp_path):
    src = save(tmp_path / "in.png", rgb8())
    r = _python_m_adasr("upscale", src, "-o", tmp_path / "out.png", "--steps", "2", "--quiet",
                        "--report", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert Image.open(tmp_path / "out.png").size == (32, 32)
    assert json.loads((tmp_path / "r.json").read_text())["output"]["width"] == 32


def _signals_default() -> None:
    """A test runner started in the background (``cmd &`` without job control) ignores SIGINT, one under ``nohup``
    ignores SIGHUP, and children inherit that (adasr then leaves them ignored): give the child the defaults back."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code,message", [
    (signal.SIGINT, 130, "adasr: error: interrupted (no output file was written)"),
    (signal.SIGTERM, 143, "adasr: error: terminated (SIGTERM) (no output file was written)"),
    (signal.SIGHUP, 129, "adasr: error: hung up (SIGHUP) (no output file was written)"),
])
def test_signal_while_sampling_exits_with_one_clean_line_and_no_output(tmp_path, sig, code, message):
    """Ctrl-C, SIGTERM or SIGHUP while the model samples: exit 128 + signal, the progress bar is cleared first, the
    error stands on its own line, and neither the output nor a temporary file is left behind."""
    src = save(tmp_path / "in.png", rgb8(64, 64))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ADASR_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "adasr", "upscale", str(src), "-o", str(tmp_path / "out.png"),
                             "--steps", "200", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path, env=env, preexec_fn=_signals_default)
    seen = b""
    try:
        while b"tile-step" not in seen:  # the sampler's progress bar: the model is running
            chunk = proc.stderr.read1(256)
            assert chunk, f"process ended before sampling: {seen.decode(errors='replace')}"
            seen += chunk
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = (seen + rest).decode()
    assert proc.returncode == code, err
    assert re.split(r"[\r\n]", err.rstrip("\n"))[-1] == message
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.mark.parametrize("sig,code,message", [
    (signal.SIGTERM, 143, "terminated (SIGTERM) (no output file was written)"),
    (signal.SIGHUP, 129, "hung up (SIGHUP) (no output file was written)"),
    (signal.SIGINT, 130, "interrupted (no output file was written)"),
])
def test_a_real_signal_during_the_write_leaves_the_old_output_and_no_part_file(capsys, tmp_path, monkeypatch,
                                                                                 fake_upscaler, sig, code, message,
                                                                                 signals_not_ignored):
    """The signal is delivered to this process while the output's hidden ``*.part`` file is open: the handler
    raises where the write is, ``atomic_write`` removes the part file, the previous output stays, and afterwards
    the test runner's own handlers are back."""
    import time

    src = save(tmp_path / "in.png", rgb8())
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background runner may ignore SIGINT

    parts: list[str] = []

    def killed(fd):  # os.fsync of the part file: its bytes are written, it is not renamed yet
        parts.extend(p.name for p in tmp_path.iterdir() if p.name.endswith(".part"))
        os.kill(os.getpid(), sig)
        time.sleep(30)  # the handler raises here, at once
        raise AssertionError("the signal did not interrupt the write")

    try:
        monkeypatch.setattr(os, "fsync", killed)
        code_got, _, err = run_main(capsys, "upscale", src, "-o", out)
    finally:
        after = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
        signal.signal(signal.SIGINT, before[signal.SIGINT])
    assert code_got == code, err
    assert len(parts) == 1  # the signal landed while the hidden part file existed
    assert err == f"\radasr: error: {message}\n"
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]
    assert after == {s: before[s] for s in (signal.SIGTERM, signal.SIGHUP)}  # handlers restored


def test_a_signal_while_the_cli_is_imported_is_one_line_not_a_traceback(capsys, monkeypatch):
    """``adasr.__main__.main`` installs the handlers before it imports the CLI (about 0.1 s of imports): a signal
    landing in those imports ends with the usual line and status."""
    import builtins

    import adasr.__main__ as entry
    from adasr.interrupts import Terminated

    real_import = builtins.__import__

    def slow_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 1 and name == "cli" and (globals or {}).get("__package__") == "adasr":
            raise Terminated(signal.SIGTERM)  # as the handler would, mid-import
        return real_import(name, globals, locals, fromlist, level)

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr(builtins, "__import__", slow_import)
    code = entry.main(["--version"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 143
    assert err == "\radasr: error: terminated (SIGTERM) while starting (nothing was written)\n"
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_console_script_enters_through_the_signal_safe_entry_point():
    """pyproject's ``adasr`` script is ``adasr.__main__:main`` (handlers first), not ``adasr.cli:main``."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["adasr"] == "adasr.__main__:main"


# ------------------------------------------------------------------------- never the input, escaped names, extras
def _same_as_input(tmp_path: Path, how: str) -> tuple[Path, Path]:
    src = save(tmp_path / "in.png", rgb8())
    if how == "same":
        return src, src
    if how == "dotdot":
        (tmp_path / "sub").mkdir()
        return src, tmp_path / "sub" / ".." / "in.png"
    if how == "symlink":
        (tmp_path / "link.png").symlink_to(src)
        return tmp_path / "link.png", src
    os.link(src, tmp_path / "hard.png")  # a hard link: another name, the same file
    return tmp_path / "hard.png", src


@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink"])
@pytest.mark.parametrize("flag", ["-o", "--report", "--compare"])
def test_an_output_that_is_the_input_is_refused(capsys, tmp_path, fake_upscaler, how, flag):
    src, target = _same_as_input(tmp_path, how)
    before = src.read_bytes()
    args = ["upscale", src, "-o", tmp_path / "out.png"] if flag != "-o" else ["upscale", src]
    code, _, err = run_main(capsys, *args, flag, target)
    assert code == 2 and not fake_upscaler
    assert f"adasr: error: {flag} {target} is the input file {src}; adasr never replaces its input" in err
    assert src.read_bytes() == before and not (tmp_path / "out.png").exists()


def test_control_characters_in_names_are_escaped(capsys, tmp_path, fake_upscaler):
    evil = "a\x1b[31mred\x07.png"
    code, _, err = run_main(capsys, "upscale", tmp_path / evil, "-o", tmp_path / "out.png")  # missing input
    assert code == 2 and "\x1b" not in err and "\x07" not in err
    assert "a\\x1b[31mred\\x07.png" in err
    code, _, err = run_main(capsys, "upscale", tmp_path / "in.png", "-o", "o.png", "--model", "\x1b[2J")
    assert code == 2 and "\x1b" not in err and "invalid choice: '\\x1b[2J'" in err
    src = save(tmp_path / "in.png", rgb8())
    code, out, err = run_main(capsys, "upscale", src, "-o", tmp_path / evil, "--device", "cpu")
    assert code == 0, err
    assert "\x1b" not in out and out.startswith(f"wrote {tmp_path}/a\\x1b[31mred\\x07.png (32×32 RGB")
    assert (tmp_path / evil).exists()


def test_printable_keeps_text_and_escapes_controls():
    assert cli.printable("ünïcode → ×4  spaced\n text") == "ünïcode → ×4 spaced text"
    assert cli.printable("\x1b[0m\x9b\u202e") == "\\x1b[0m\\x9b\\u202e"


@pytest.mark.parametrize("flag,target", [("--report", "r.json"), ("--compare", "cmp.png")])
def test_a_failed_extra_write_says_the_image_was_written(capsys, tmp_path, monkeypatch, fake_upscaler, flag, target):
    import errno

    src = save(tmp_path / "in.png", rgb8())
    real = imageio.atomic_write

    def full_disk(path, write):
        if Path(path).name == target:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(imageio, "atomic_write", full_disk)
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", flag, tmp_path / target)
    assert code == 1
    assert_one_line_error(err, f"No space left on device: {tmp_path / target} ({tmp_path / 'out.png'} itself was "
                               "written)")
    assert (tmp_path / "out.png").exists() and not (tmp_path / target).exists()


def test_an_interrupt_while_writing_the_report_says_the_image_was_written(capsys, tmp_path, monkeypatch,
                                                                          fake_upscaler):
    src = save(tmp_path / "in.png", rgb8())
    real = imageio.atomic_write

    def interrupted(path, write):
        if Path(path).suffix == ".json":
            raise KeyboardInterrupt
        return real(path, write)

    monkeypatch.setattr(imageio, "atomic_write", interrupted)
    code, _, err = run_main(capsys, "upscale", src, "-o", tmp_path / "out.png", "--report", tmp_path / "r.json")
    assert code == 130
    assert err == (f"\radasr: error: interrupted while writing --report or --compare ({tmp_path / 'out.png'} itself "
                   "was written)\n")
