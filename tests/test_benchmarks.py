"""adasr.benchmarks.runner: one parser, the table on stdout, progress lines on stderr, ``--json`` with the machine
and precision recorded; run end to end on a tiny model (quality, speed) and small inputs (quant).

quality and speed run the old default sampler (DDIM-10 linspace, η 0) beside the new default; the new default's
preset is replaced by a fake one here (:func:`fake_presets`: the benchmarks' plumbing is tested, not the shipped
presets, which test_sampling_schedules checks), with an η > 0 so that the η the arms ran with is visible."""

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
from adasr.defaults import DEFAULT_SCHEDULE, DEFAULT_STEPS, LEGACY_SCHEDULE, LEGACY_STEPS
from adasr.diffusion.timesteps import spaced_timesteps
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
    assert list(BENCHMARKS)[:4] == ["quality", "speed", "adaptive", "quant"]  # (and more, tested with their own)
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


@pytest.mark.parametrize("module", ["adaptive", "schedules"])
def test_benchmarks_with_figures_do_not_import_viz(module):
    """The benchmark only computes; drawing (--figure) is the runner's, after the benchmark returned."""
    code = (f"import sys, adasr.benchmarks.{module}, adasr.benchmarks.runner; "
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


def _default_schedule(presets):
    """The new default's Schedule (a fake preset when DEFAULT_SCHEDULE is a preset name)."""
    from adasr.diffusion.timesteps import get_schedule

    return presets.get(DEFAULT_SCHEDULE) or get_schedule(DEFAULT_SCHEDULE)


def test_bench_quality_end_to_end(tiny_images, fake_presets, capsys, tmp_path, one_thread):
    """Bicubic, the old default and the new default side by side, each sampler arm with its steps, schedule
    (name, timesteps) and η in the JSON and the table; the targets and the per-image cost are the new default's."""
    path = tmp_path / "q.json"
    assert benchmarks.main(["quality", "--precision", "fp32", "--json", str(path)]) == 0
    r, out = _check_run(capsys, path, "quality", "fp32")
    assert out == Q.format_quality(r).splitlines()
    assert [row["image"] for row in r["images"]] == list(tiny_images)
    new = _default_schedule(fake_presets)
    want_eta = new.eta_for(DEFAULT_STEPS) or 0.0
    assert r["precision"] == "fp32" and r["steps"] == DEFAULT_STEPS
    assert r["schedule"]["name"] == DEFAULT_SCHEDULE and r["eta"] == pytest.approx(want_eta)
    assert r["schedule"]["timesteps"] == new.timesteps(DEFAULT_STEPS)
    assert list(r["arms"]) == ["legacy", "adasr"]
    old, ada = r["arms"]["legacy"], r["arms"]["adasr"]
    assert (old["label"], old["steps"], old["eta"]) == ("old default", LEGACY_STEPS, 0.0)
    assert old["schedule"] == {"name": LEGACY_SCHEDULE, "timesteps": spaced_timesteps(LEGACY_STEPS, 1000,
                                                                                        LEGACY_SCHEDULE)}
    assert (ada["label"], ada["steps"], ada["schedule"], ada["eta"]) == ("new default", DEFAULT_STEPS, r["schedule"],
                                                                          r["eta"])
    for row in r["images"]:
        assert set(row) == {"image", "seconds", "tile_evaluations", "bicubic", "legacy", "adasr"}
        assert row["tile_evaluations"] == row["adasr"]["tile_evaluations"] == DEFAULT_STEPS  # one 32² tile
        assert row["legacy"]["tile_evaluations"] == LEGACY_STEPS
        assert "tile_evaluations" not in row["bicubic"]
    assert set(r["mean"]) == {"bicubic", "legacy", "adasr"}
    d = r["new_vs_legacy"]
    assert d["eval_ratio"] == pytest.approx(LEGACY_STEPS / DEFAULT_STEPS)
    assert d["psnr_y_db"] == pytest.approx(r["mean"]["adasr"]["psnr_y"] - r["mean"]["legacy"]["psnr_y"])
    assert r["legacy_psnr_gain_db"] == pytest.approx(r["mean"]["legacy"]["psnr_y"] - r["mean"]["bicubic"]["psnr_y"])
    assert r["targets"]["lpips_met"] == (r["mean"]["adasr"]["lpips"] <= Q.TARGET_LPIPS)
    text = "\n".join(out)
    assert f"old default: {LEGACY_STEPS} steps {LEGACY_SCHEDULE}, η 0, timesteps {old['schedule']['timesteps']}" in text
    assert f"new default: {DEFAULT_STEPS} steps {DEFAULT_SCHEDULE}, η {r['eta']:g}" in text
    assert "new default vs old default: PSNR-Y" in text


def test_bench_quality_runs_a_chosen_configuration_as_the_new_arm(tiny_images, capsys, one_thread):
    """--schedule/--steps/--eta choose the new arm (an explicit list sets the steps); --no-legacy drops the old one."""
    p = benchmarks.build_parser()
    a = p.parse_args(["quality", "--schedule", "999,100,20", "--eta", "0.5", "--no-legacy", "--seed", "3"])
    assert (a.schedule, a.steps, a.eta, a.no_legacy, a.seed) == ("999,100,20", None, 0.5, True, 3)
    d = p.parse_args(["quality"])
    assert (d.schedule, d.steps, d.eta, d.no_legacy) == (None, None, None, False)
    r = Q.run_args(a)
    assert list(r["arms"]) == ["adasr"] and "new_vs_legacy" not in r and "legacy" not in r["mean"]
    assert r["arms"]["adasr"]["label"] == "chosen" and r["steps"] == 3
    assert r["schedule"] == {"name": "999,100,20", "timesteps": [999, 100, 20]} and r["eta"] == 0.5
    assert all(set(row) == {"image", "seconds", "tile_evaluations", "bicubic", "adasr"} for row in r["images"])
    text = Q.format_quality(r)
    assert "chosen: 3 steps 999,100,20, η 0.5" in text and "old default" not in text
    r2 = Q.quality(steps=2, schedule="linspace", precision="fp32")
    assert r2["steps"] == 2 and r2["arms"]["adasr"]["schedule"]["timesteps"] == [999, 0]
    assert r2["arms"]["legacy"]["steps"] == LEGACY_STEPS


def test_format_quality_reads_a_result_from_before_the_legacy_arm():
    m = {"psnr_y": 25.0, "ssim_y": 0.7, "lpips": 0.3}
    r = {"crop": 256, "seed": 0, "tile": 128, "overlap": 32, "device": "cpu", "precision": "bf16", "steps": 10,
         "images": [{"image": "moon", "seconds": 1.0, "tile_evaluations": 90, "bicubic": m, "adasr": m}],
         "mean": {"bicubic": m, "adasr": m}, "psnr_gain_db": 0.0,
         "targets": {"psnr_gain_db": 0.3, "lpips": 0.22, "psnr_met": False, "lpips_met": False}}
    text = Q.format_quality(r)
    assert "adasr: 10 steps linspace, η 0" in text and "PSNR gain +0.00 dB" in text


def test_bench_speed_end_to_end(monkeypatch, make_tiny_model, fake_presets, capsys, tmp_path, one_thread):
    """The new default tiled and whole, the old default tiled, in one run; the old/new ratio printed."""
    monkeypatch.setattr(upscaling, "load_pretrained", lambda name=None, device=None: make_tiny_model())
    path = tmp_path / "s.json"
    argv = ["speed", "--size", "8", "--steps", "2", "--repeats", "1", "--precision", "fp32", "--json", str(path)]
    assert benchmarks.main(argv) == 0
    r, out = _check_run(capsys, path, "speed", "fp32")
    assert out == S.format_speed(r).splitlines()
    assert list(r["arms"]) == ["tiled", "whole", "legacy"] and r["input"] == [8, 8] and r["repeats"] == 1
    new = _default_schedule(fake_presets)
    for arm in ("tiled", "whole"):
        a = r["arms"][arm]
        assert (a["steps"], a["schedule"]["name"], a["schedule"]["timesteps"]) == (2, DEFAULT_SCHEDULE,
                                                                                   new.timesteps(2))
        assert a["eta"] == pytest.approx(new.eta_for(2) or 0.0) and len(a["seconds_all"]) == 1
    old = r["arms"]["legacy"]
    assert (old["steps"], old["schedule"]["name"], old["eta"]) == (LEGACY_STEPS, LEGACY_SCHEDULE, 0.0)
    assert r["legacy_over_tiled"] == pytest.approx(old["seconds"] / r["arms"]["tiled"]["seconds"])
    assert r["legacy_over_tiled_evaluations"] == LEGACY_STEPS / 2
    assert any(line.startswith("old default / new default time ratio (tiled): ") for line in out)
    a = benchmarks.build_parser().parse_args(["speed", "--no-legacy", "--no-whole", "--schedule", "linspace"])
    assert (a.no_legacy, a.no_whole, a.schedule, a.repeats) == (True, True, "linspace", 3)


def test_speed_interleaves_the_arms_after_a_warm_up_each():
    calls: list[str] = []
    t = S.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then round-robin
    assert {k: len(v) for k, v in t.items()} == {"a": 3, "b": 3}


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
