import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from adasr.models.edsr import EDSR, EDSRConfig
from adasr.models.unet import UNetConfig
from adasr.srmodel import SRDiffusionConfig
from adasr.train import TrainConfig, build_parser, config_from_args, ema_decay, learning_rate, load_checkpoint, train

TINY = TrainConfig(
    model=SRDiffusionConfig(unet=UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)),
    steps=4, batch_size=2, crop=16, warmup=2, checkpoint_every=2, log_every=1, precision="fp32",
    images=("coins", "text"),
)


def test_schedules():
    assert learning_rate(0, TINY) == pytest.approx(TINY.lr / 2)
    assert learning_rate(TINY.steps, TINY) == pytest.approx(TINY.lr * TINY.min_lr_ratio)
    assert ema_decay(0, TINY) == pytest.approx(0.1)
    assert ema_decay(10**6, TINY) == TINY.ema_decay


def test_train_then_resume_matches_uninterrupted(tmp_path):
    full = train(TINY, tmp_path / "full", device="cpu", progress=False)
    part = train(TINY, tmp_path / "part", device="cpu", progress=False, max_seconds=0.0)  # stops after 1 step
    assert part.name == "checkpoint.pt"
    assert load_checkpoint(part)["step"] == 1
    resumed = train(TINY, tmp_path / "part", device="cpu", progress=False)
    a, b = load_file(str(full)), load_file(str(resumed))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]


def test_train_edsr_writes_a_loadable_state_dict(tmp_path):
    cfg = TrainConfig(**{**TINY.__dict__, "model": EDSRConfig(n_resblocks=1, n_feats=4), "crop": 16})
    path = train(cfg, tmp_path / "edsr", device="cpu", progress=False)
    net = EDSR(cfg.model)
    net.load_state_dict(load_file(str(path)))  # the whole network, strict
    saved = json.loads((tmp_path / "edsr" / "config.json").read_text())
    assert saved["model"]["arch"] == "edsr" and EDSRConfig.from_dict(saved["model"]) == cfg.model
    log = [json.loads(line) for line in (tmp_path / "edsr" / "log.jsonl").read_text().splitlines()]
    assert all(r["loss"] > 0 for r in log)


def test_cli_arch_edsr_defaults():
    a = build_parser().parse_args(["--out", "x", "--arch", "edsr", "--blocks", "3", "--feats", "16"])
    cfg = config_from_args(a)
    assert cfg.model == EDSRConfig(n_resblocks=3, n_feats=16) and cfg.crop == 128
    assert config_from_args(build_parser().parse_args(["--out", "x"])).crop == TrainConfig.crop
    with pytest.raises(ValueError, match="multiple of the scale"):
        config_from_args(build_parser().parse_args(["--out", "x", "--arch", "edsr", "--crop", "30"]))


def test_resume_refuses_other_config(tmp_path):
    train(TINY, tmp_path / "r", device="cpu", progress=False, max_seconds=0.0)
    other = TrainConfig(**{**TINY.__dict__, "lr": 1e-3})
    with pytest.raises(ValueError, match="another configuration"):
        train(other, tmp_path / "r", device="cpu", progress=False)


def test_torchrun_two_cpu_processes_keep_identical_replicas(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADASR_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "adasr.train", "--out", str(tmp_path / "ddp"), "--steps", "3", "--batch-size", "4", "--crop", "16",
           "--channels", "8", "16", "--precision", "fp32", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((tmp_path / "ddp" / "replicas.json").read_text())
    assert rep["world_size"] == 2 and rep["step"] == 3
    assert rep["sha256"][0] == rep["sha256"][1]
    assert (tmp_path / "ddp" / "ema.safetensors").exists()


@pytest.mark.parametrize("changes,message", [
    (dict(steps=0), "steps must be at least 1, got 0"),
    (dict(batch_size=0), "batch_size must be at least 1, got 0"),
    (dict(checkpoint_every=0), "checkpoint_every must be at least 1, got 0"),
    (dict(crop=4), "crop must be at least 8, got 4"),
    (dict(steps=2.5), "steps must be a whole number, got 2.5"),
    (dict(lr=float("nan")), "lr must be a finite number, got nan"),
    (dict(lr=0.0), r"lr must be > 0, got 0.0"),
    (dict(ema_decay=1.5), r"ema_decay must be in \[0.0, 1.0\], got 1.5"),
    (dict(seed=-1), "seed must be at least 0, got -1"),
    (dict(seed=2**64), "seed must be at most 18446744073709550, got 18446744073709551616"),
    (dict(precision="fp16"), "precision must be auto, fp32 or bf16, got 'fp16'"),
])
def test_train_config_refuses_out_of_range_numbers(changes, message):
    from adasr.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{**TINY.__dict__, **changes})


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "adasr train: error: --steps must be at least 1, got 0"),
    (["--batch-size", "0"], "adasr train: error: --batch-size must be at least 1, got 0"),
    (["--lr", "nan"], "adasr train: error: --lr must be a finite number, got nan"),
    (["--channels", "12", "24"], "adasr train: error: every entry of channels (12, 24) must be a multiple of groups (8"),
    (["--channels", "0"], "adasr train: error: channels must be positive whole numbers"),
])
def test_adasr_train_names_bad_options(capsys, tmp_path, args, message):
    from adasr import cli

    code = cli.main(["train", "--out", str(tmp_path / "run"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and "unexpected" not in err
    assert not (tmp_path / "run").exists()
