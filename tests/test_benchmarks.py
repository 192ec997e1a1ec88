"""adasr.benchmarks.runner: one parser, the table on stdout, progress lines on stderr, ``--json`` with the machine
and precision recorded; run end to end on a tiny model (quality, speed) and small inputs (quant)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
import torch

from adasr import benchmarks, data, upscaling
from adasr.benchmarks import quality as Q
from adasr.benchmarks import quant as QB
from adasr.benchmarks import speed as S
from adasr.benchmarks.runner import BENCHMARKS, machine_info, stderr_log
from adasr.quant.finetune import FinetuneConfig
from adasr.runtime import bf16_supported

MACHINE_KEYS = {"cpu", "amx", "avx512_bf16", "bf16_fast", "isa_cap", "threads", "torch", "python", "device",
                "precision"}


def test_machine_info():
    m = machine_info(torch.device("cpu"), "bf16")
    assert set(m) == MACHINE_KEYS
    assert (m["device"], m["precision"], m["threads"]) == ("cpu", "bf16", torch.get_num_threads())
    assert (m["torch"], m["python"]) == (torch.__version__, platform.python_version())
    assert isinstance(m["cpu"], str) and isinstance(m["amx"], bool) and isinstance(m["avx512_bf16"], bool)
    assert m["bf16_fast"] == bf16_supported(torch.device("cpu"))  # what makes 'auto' pick bf16
    assert m["bf16_fast"] <= (m["amx"] or m["avx512_bf16"])  # never fast without the hardware
    assert m["isa_cap"] == torch.backends.cpu.get_cpu_capability()
    json.dumps(m)


def test_stderr_log_writes_one_prefixed_line(capsys):
    stderr_log("quant")("W4A4: PSNR-Y 32.20")
    out, err = capsys.readouterr()
    assert out == "" and err == "[bench quant] W4A4: PSNR-Y 32.20\n"


def test_parser_has_every_benchmark_with_json():
    p = benchmarks.build_parser()
    assert list(BENCHMARKS) == ["quality", "speed", "adaptive", "quant"]
    for name in BENCHMARKS:
        a = p.parse_args([name, "--json", "r.json"])
        assert (a.which, a.json) == (name, "r.json")
    for name in ("quality", "speed", "adaptive"):
        a = p.parse_args([name, "--device", "cpu", "--precision", "fp32"])
        assert (a.device, a.precision) == ("cpu", "fp32")
    with pytest.raises(SystemExit):
        p.parse_args(["quant", "--precision", "fp32"])  # EDSR and the UNet arms run fp32 on the CPU
    with pytest.raises(SystemExit):
        p.parse_args(["nope"])


def test_adaptive_benchmark_does_not_import_viz():
    """The benchmark only computes; drawing (--figure) is the runner's, after the benchmark returned."""
    code = ("import sys, adasr.benchmarks.adaptive, adasr.benchmarks.runner; "
            "print(sorted(m for m in sys.modules if m.startswith('adasr.viz') or m == 'matplotlib'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.fixture
def tiny_images(monkeypatch, make_tiny_model):
    """Two 32×32 held-out crops and the tiny model in place of the shipped one."""
    small = {n: c for n, c in list(data.heldout_crops(32).items())[:2]}
    monkeypatch.setattr(Q, "heldout_crops", lambda crop: small)
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
    return small


def _check_run(capsys, path, name: str, precision: str) -> tuple[dict, list[str]]:
    out, err = capsys.readouterr()
    r = json.loads(path.read_text())
    assert r["benchmark"] == name
    assert set(r["machine"]) == MACHINE_KEYS
    assert (r["machine"]["device"], r["machine"]["precision"]) == ("cpu", precision)
    lines = err.splitlines()
    assert lines and all(line.startswith(f"[bench {name}] ") for line in lines)
    return r, out.splitlines()


def test_bench_quality_end_to_end(tiny_images, capsys, tmp_path, one_thread):
    path = tmp_path / "q.json"
    assert benchmarks.main(["quality", "--steps", "1", "--precision", "fp32", "--json", str(path)]) == 0
    r, out = _check_run(capsys, path, "quality", "fp32")
    assert out == Q.format_quality(r).splitlines()
    assert [row["image"] for row in r["images"]] == list(tiny_images)
    assert r["precision"] == "fp32" and r["steps"] == 1


def test_bench_speed_end_to_end(monkeypatch, make_tiny_model, capsys, tmp_path, one_thread):
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
    path = tmp_path / "s.json"
    argv = ["speed", "--size", "8", "--steps", "1", "--repeats", "1", "--precision", "fp32", "--json", str(path)]
    assert benchmarks.main(argv) == 0
    r, out = _check_run(capsys, path, "speed", "fp32")
    assert out == S.format_speed(r).splitlines()
    assert set(r["arms"]) == {"tiled", "whole"} and r["input"] == [8, 8]


def test_quant_records_machine_and_logs_each_arm(monkeypatch, one_thread):
    """quant() on 32² crops with a tiny calibration and fine-tuning budget (no int8, no UNet): every EDSR arm is
    measured and logged, and the result records the machine (the EDSR arms run fp32 on the CPU)."""
    small = data.heldout_crops(32)
    monkeypatch.setattr(data, "heldout_crops", lambda size=256: small)
    lines: list[str] = []
    r = QB.quant(n_calib=4, n_finetune=4, finetune_config=FinetuneConfig(epochs=3, steps_per_epoch=1),
                 int8=False, unet=False, log=lines.append)
    assert list(r["arms"]) == ["FP32", "W8A8", "W4A4", "W4A4 + FT", "AdaBM b_base 4 (no FT)", "AdaBM b_base 4"]
    assert [line.split(":")[0] for line in lines] == list(r["arms"])[1:]
    assert set(r["machine"]) == MACHINE_KEYS and (r["machine"]["device"], r["machine"]["precision"]) == ("cpu", "fp32")
    json.dumps(r)
    text = QB.format_quant(r)
    assert "W4A4 + FT" in text and "real int8" not in text and "UNet" not in text
