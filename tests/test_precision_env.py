"""ADASR_PRECISION: the environment variable that sets the default precision of setup(), upscale and the CLI."""

from __future__ import annotations

import re

import pytest
import torch

from adasr.config import ConfigError, UpscaleConfig
from adasr.runtime import PRECISION_ENV, default_precision, resolve_precision

CPU = torch.device("cpu")


def test_default_precision_reads_the_variable(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert default_precision() == "auto"
    assert default_precision(fallback="fp32") == "fp32"
    for value in ("fp32", "bf16", "auto", " FP32 "):
        monkeypatch.setenv(PRECISION_ENV, value)
        assert default_precision() == value.strip().lower()
    monkeypatch.setenv(PRECISION_ENV, "")
    assert default_precision() == "auto"


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp16")
    with pytest.raises(ValueError, match="ADASR_PRECISION must be auto, fp32 or bf16, got 'fp16'"):
        default_precision()
    with pytest.raises(ConfigError, match="ADASR_PRECISION"):
        UpscaleConfig()


def test_resolve_none_follows_the_variable(monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision(None, CPU) == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert resolve_precision(None, CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"  # an explicit value wins over the environment


def test_config_default_and_explicit(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert UpscaleConfig().precision == "auto"
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert UpscaleConfig().precision == "fp32"
    assert UpscaleConfig(precision="auto").precision == "auto"
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert UpscaleConfig().precision == "bf16"
    # bf16 from the environment does not make the regression model refuse to run: it runs fp32, as with auto
    assert UpscaleConfig(model="edsr_x4").precision == "fp32"
    with pytest.raises(ConfigError, match="bf16"):
        UpscaleConfig(model="edsr_x4", precision="bf16")


def test_upscale_report_follows_the_variable(monkeypatch):
    from adasr import upscale_tensor

    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    result = upscale_tensor(lr, steps=1, device="cpu")
    assert result.report.precision == "fp32"


def test_setup_defaults_to_fp32_and_follows_the_variable(monkeypatch):
    from adasr.notebook import setup

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    threads = torch.get_num_threads()
    try:
        assert setup(seed=0, threads=1).precision == "fp32"
        monkeypatch.setenv(PRECISION_ENV, "auto")
        assert setup(seed=0, threads=1).precision == "auto"
        assert setup(seed=0, threads=1, precision="bf16").precision == "bf16"
        with pytest.raises(ValueError, match="precision"):
            setup(seed=0, threads=1, precision="half")
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


def test_cli_help_names_the_variable():
    from adasr.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["upscale"].format_help()
    assert "ADASR_PRECISION" in help_text


# ----------------------------------------------------------------------------------------------- resolve_device
@pytest.mark.parametrize("name,message", [
    ("mps", "device 'mps' is not supported: adasr runs on 'cpu', 'cuda', 'cuda:N' or 'auto'"),
    ("meta", "device 'meta' is not supported"),
    ("xpu", "device 'xpu' is not supported"),
    ("tpu", "unknown device 'tpu'"),
    ("cuda:x", "unknown device 'cuda:x'"),
])
def test_resolve_device_names_what_adasr_runs_on(name, message):
    from adasr.runtime import resolve_device

    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_device(name)
    assert resolve_device("cpu").type == "cpu"
