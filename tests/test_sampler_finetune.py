"""Fine-tuning through the sampler (adasr.sampler_finetune): the chain it trains is the sampler users run, gradients
reach every UNet call, the loop is seeded and resumable, bad configurations are refused naming the field."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from adasr.config import ConfigError
from adasr.data import CropSampler, make_pair
from adasr.diffusion.timesteps import get_schedule
from adasr.lpips import LPIPS
from adasr.runtime import prepare_for_inference, seeded_generator
from adasr.sampler_finetune import (SamplerFinetuneConfig, build_parser, config_from_args, finetune_loss,
                                    finetune_through_sampler, loss_term_gradients, sampler_chain)
from adasr.train import load_checkpoint

CROP = 32  # the smallest multiple of 4 that LPIPS (AlexNet, ≥ 31 px) accepts
TINY = SamplerFinetuneConfig(steps=3, batch_size=2, crop=CROP, lr=1e-3, warmup=1, checkpoint_every=2, log_every=1,
                             precision="fp32", images=("coins", "text"))


@pytest.fixture(scope="module")
def lpips():
    return LPIPS()


@pytest.fixture(scope="module")
def hr():
    return CropSampler.from_names(("coins", "text"), CROP).sample(2, torch.Generator().manual_seed(1))


class FirstStepBias(torch.nn.Module):
    """The UNet plus a bias (3,) added to the output only where t == ``t_first``: a parameter used by the chain's
    first UNet call and by no other."""

    def __init__(self, unet: torch.nn.Module, t_first: int) -> None:
        super().__init__()
        self.inner, self.t_first = unet, t_first
        self.multiple, self.config = unet.multiple, unet.config
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x, t, cond):
        out = self.inner(x, t, cond)
        return out + (t == self.t_first).to(out.dtype).view(-1, 1, 1, 1) * self.bias.view(1, 3, 1, 1)


@pytest.mark.parametrize("steps", [2, 3])  # balanced N = 2: [999, 20], η = 0; N = 3: [999, 646, 10], η = 0.5
def test_chain_equals_the_package_sampler(make_tiny_model, one_thread, hr, steps):
    from adasr.upscaling import upscale_tensor

    model = make_tiny_model()
    sched = get_schedule("balanced")
    lr, up = make_pair(hr[:1])
    image = upscale_tensor(lr, model=model, steps=steps, schedule="balanced", seed=5, tile=CROP, overlap=8,
                           precision="fp32", device="cpu").image
    # upscale_tensor prepared the model for inference in place (channels_last on the CPU), as the fine-tune does
    x0 = sampler_chain(model, up, sched.timesteps(steps), sched.eta_for(steps) or 0.0, seeded_generator(5))
    assert x0.requires_grad
    torch.testing.assert_close(model.output(x0, up).detach(), image, rtol=0, atol=1e-6)
    if steps == 3:  # η > 0: the chain draws z after each call, as the sampler does; another seed differs
        other = model.output(sampler_chain(model, up, sched.timesteps(3), 0.5, seeded_generator(6)), up)
        assert (other.detach() - image).abs().max() > 1e-3


def test_gradients_reach_the_first_unet_call_through_the_second(make_tiny_model, one_thread, lpips, hr):
    model = make_tiny_model()
    model.unet = FirstStepBias(model.unet, t_first=999)
    model = prepare_for_inference(model, torch.device("cpu"), "fp32")
    ts = SamplerFinetuneConfig().timesteps()
    assert ts == [999, 20]
    for weights in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]:  # LPIPS alone, L1 alone
        model.zero_grad(set_to_none=True)
        loss, _ = finetune_loss(model, lpips, hr, ts, 0.0, torch.Generator().manual_seed(0), weights)
        loss.backward()
        g = model.unet.bias.grad  # used only at t = 999: its gradient went back through the call at t = 20
        assert g is not None and float(g.abs().min()) > 1e-7, g
        inner = dict(model.unet.inner.named_parameters())
        missing = [k for k, p in inner.items() if p.grad is None or not bool(p.grad.any())]
        assert not missing, missing  # every UNet parameter is trained
    model.zero_grad(set_to_none=True)
    terms = loss_term_gradients(model, lpips, hr, ts, 0.0)
    assert set(terms) == {"lpips", "l1", "diff"}
    assert all(v["value"] > 0 and v["grad_norm"] > 0 for v in terms.values()), terms
    assert all(p.grad is None for p in model.parameters())  # measured with autograd.grad: .grad left alone


def test_loss_decreases_on_a_fixed_batch(make_tiny_model, one_thread, lpips, hr):
    model = prepare_for_inference(make_tiny_model(), torch.device("cpu"), "fp32").requires_grad_(True)
    opt = torch.optim.Adam(model.unet.parameters(), lr=3e-3)
    ts, losses = [999, 20], []
    for _ in range(8):
        loss, _ = finetune_loss(model, lpips, hr, ts, 0.0, torch.Generator().manual_seed(0), (1.0, 1.0, 1.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_resume_is_bit_identical_and_refuses_another_config(make_tiny_model, one_thread, tmp_path):
    model = make_tiny_model()
    full = finetune_through_sampler(TINY, tmp_path / "full", model=model, device="cpu", progress=False)
    part = finetune_through_sampler(TINY, tmp_path / "part", model=model, device="cpu", progress=False,
                                    max_seconds=0.0)  # stops after one step, with a checkpoint
    assert part.name == "checkpoint.pt" and load_checkpoint(part)["step"] == 1
    resumed = finetune_through_sampler(TINY, tmp_path / "part", model=model, device="cpu", progress=False)
    a, b = load_file(str(full)), load_file(str(resumed))
    assert a.keys() == b.keys() and a.keys() == model.unet.state_dict().keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert any(not torch.equal(a[k], model.unet.state_dict()[k]) for k in a)  # it trained
    rows = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["event"] == "start" and rows[0]["timesteps"] == [999, 20] and rows[0]["eta"] == 0.0
    steps = [r for r in rows if "step" in r and "event" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(r["lpips"] > 0 and r["l1"] > 0 and r["diff"] > 0 and r["seconds"] >= 0 for r in steps)
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved["base_sha256"].startswith("params:") and saved["schedule"] == "balanced"

    ck = load_checkpoint(tmp_path / "full" / "checkpoint.pt")  # tensors, numbers and strings only
    assert ck["step"] == 3 and ck["base_sha256"] == saved["base_sha256"]
    other = SamplerFinetuneConfig(**{**TINY.__dict__, "w_diff": 2.0})
    with pytest.raises(ValueError, match="another configuration or other base weights"):
        finetune_through_sampler(other, tmp_path / "part", model=model, device="cpu", progress=False)
    torch.manual_seed(1)
    other_base = type(model)(model.config)
    with pytest.raises(ValueError, match="another configuration or other base weights"):
        finetune_through_sampler(TINY, tmp_path / "part", model=other_base, device="cpu", progress=False)


@pytest.mark.parametrize("changes,message", [
    (dict(steps=0), "steps must be at least 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be a whole number, got 2.5"),
    (dict(crop=16), "crop must be at least 32, got 16"),
    (dict(crop=34), r"crop must be a multiple of 4 \(the ×4 scale\), got 34"),
    (dict(lr=float("nan")), "lr must be a finite number, got nan"),
    (dict(lr=0.0), "lr must be > 0, got 0.0"),
    (dict(w_diff=-1.0), "w_diff must be >= 0.0, got -1.0"),
    (dict(w_lpips=0.0, w_l1=0.0), "w_lpips and w_l1 are both 0"),
    (dict(ema_decay=1.5), r"ema_decay must be in \[0.0, 1.0\], got 1.5"),
    (dict(seed=-1), "seed must be at least 0, got -1"),
    (dict(precision="fp16"), "precision must be auto, fp32 or bf16, got 'fp16'"),
    (dict(images=("coins", "moon")), "images must be training photos only"),
    (dict(schedule="nope"), "schedule 'nope' at sampler_steps 2"),
    (dict(schedule="999,20", sampler_steps=3), "schedule '999,20' at sampler_steps 3: the schedule"),
])
def test_config_refuses_bad_values_naming_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        SamplerFinetuneConfig(**{**TINY.__dict__, **changes})


def test_config_defaults_are_the_package_sampler():
    from adasr.defaults import DEFAULT_MODEL, DEFAULT_SCHEDULE, DEFAULT_STEPS

    d = SamplerFinetuneConfig()
    assert (d.base, d.schedule, d.sampler_steps) == (DEFAULT_MODEL, DEFAULT_SCHEDULE, DEFAULT_STEPS)
    sched = get_schedule(DEFAULT_SCHEDULE)
    assert d.timesteps() == sched.timesteps(DEFAULT_STEPS) and d.eta() == (sched.eta_for(DEFAULT_STEPS) or 0.0)
    assert SamplerFinetuneConfig(**d.to_dict() | {"images": tuple(d.images)}) == d
    a = build_parser().parse_args(["--out", "x", "--steps", "7", "--lr", "3e-5", "--w-diff", "2"])
    assert config_from_args(a) == SamplerFinetuneConfig(steps=7, lr=3e-5, w_diff=2.0)


@pytest.mark.parametrize("args,message", [
    (["--lr", "nan"], "adasr train --finetune-through-sampler: error: --lr must be a finite number, got nan"),
    (["--crop", "34"], "error: --crop must be a multiple of 4"),
    (["--w-lpips", "0", "--w-l1", "0"], "error: --w-lpips and --w-l1 are both 0"),
    (["--max-seconds", "-1"], "error: --max-seconds must be a finite number >= 0, got -1.0"),
])
def test_adasr_train_routes_and_names_bad_options(capsys, tmp_path, args, message):
    from adasr import cli

    code = cli.main(["train", "--finetune-through-sampler", "--out", str(tmp_path / "run"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_training_log_continues_the_clock_across_resumes(tmp_path):
    from adasr.sampler_finetune import training_log

    rows = [{"event": "start"}, {"step": 1, "loss": 1.0, "lpips": 0.2, "l1": 0.05, "diff": 0.01, "lr": 1e-5,
                                  "seconds": 3.0},
            {"step": 2, "loss": 0.9, "lpips": 0.19, "l1": 0.05, "diff": 0.01, "lr": 2e-5, "seconds": 6.0},
            {"event": "start"}, {"step": 3, "loss": 0.8, "lpips": 0.18, "l1": 0.04, "diff": 0.01, "lr": 3e-5,
                                  "seconds": 2.5}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    log = training_log(tmp_path)
    assert log["step"] == [1, 2, 3] and log["lpips"] == [0.2, 0.19, 0.18]
    assert log["seconds"] == [3.0, 6.0, 8.5]
    assert training_log(tmp_path / "missing")["step"] == []


def test_loss_terms_figure_draws_the_log_it_is_given():
    from adasr.viz.finetune import loss_terms_figure, moving_average

    log = {"step": list(range(1, 41)), "lpips": [0.1] * 20 + [0.05] * 20, "l1": [0.03] * 40, "diff": [0.004] * 40}
    fig = loss_terms_figure(log, smooth=10)
    axes = fig.axes
    assert len(axes) == 3
    raw, avg = axes[0].lines
    assert list(raw.get_ydata()) == log["lpips"]
    np.testing.assert_allclose(avg.get_ydata(), moving_average(log["lpips"], 10))
    assert avg.get_xdata()[0] == 10 and avg.get_ydata()[-1] == pytest.approx(0.05)
