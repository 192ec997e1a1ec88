"""Progressive Feature Injection (adasr.adaptive.pfj): identity at init, shapes, gradients, MACs, fine-tuning."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from adasr.adaptive.mmle import MMLERegressor
from adasr.adaptive.pfj import (
    GAIN_CHANNELS, PFJ, PFJConfig, PFJFinetuneConfig, PFJUNet, diffusion_loss, draw_batch, finetune, frozen_parts,
    gain_cond, load_finetuned, training_gains, with_pfj,
)
from adasr.cost import count_macs, unet_macs
from adasr.data import CropSampler, make_pair
from adasr.sampling.denoiser import Denoiser
from adasr.sampling.loop import sample_tiles
from adasr.sampling.policies import UniformDDIM

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_FT = PFJFinetuneConfig(steps=3, batch_size=2, crop=16, precision="fp32", checkpoint_every=1, log_every=1,
                            images=("coins", "text"), pfj=PFJConfig(width=4))


@pytest.fixture(scope="module")
def regressor():
    torch.manual_seed(1)
    return MMLERegressor().eval()


def _inputs(b: int = 2, h: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, h, h, generator=g)
    cond = torch.rand(b, 3, h, h, generator=g) * 2 - 1
    t = torch.tensor([10, 700][:b] + [300] * max(0, b - 2))
    return x, t, cond


def test_fresh_pfj_is_the_identity_bit_for_bit(make_tiny_model):
    model = make_tiny_model()
    wrapped = with_pfj(model)
    assert isinstance(wrapped.unet, PFJUNet) and not isinstance(model.unet, PFJUNet)  # the original is untouched
    x, t, cond = _inputs()
    with torch.no_grad():
        ref = model.unet(x, t, cond)
        assert torch.equal(wrapped.unet(x, t, cond), ref)  # 3 channels: I = 0
        assert torch.equal(wrapped.unet(x, t, gain_cond(cond, torch.zeros(2, 2))), ref)  # 5 channels, zero gains
        # a fresh φ ignores the gains too (its last convolution is zero)
        assert torch.equal(wrapped.unet(x, t, gain_cond(cond, torch.tensor([[0.3, -0.2], [0.01, 0.5]]))), ref)
        # the sampler through the denoiser layer: the same image
        a = sample_tiles(model, cond[:1], policy=UniformDDIM(3), tile=8, overlap=4, seed=0).x0
        b = sample_tiles(wrapped, cond[:1], policy=UniformDDIM(3), tile=8, overlap=4, seed=0).x0
    assert torch.equal(a, b)


def test_coefficient_shapes_and_input_checks(make_tiny_model):
    pfj = PFJ(PFJConfig(width=8))
    o = torch.rand(3, 3, 12, 10) * 2 - 1
    gains = torch.tensor([[0.01, 0.0], [-0.02, 0.01], [0.0, 0.0]])
    da, beta = pfj.coefficients(o, gains)
    assert da.shape == beta.shape == o.shape and da.dtype == torch.float32
    assert torch.equal(da, torch.zeros_like(da)) and torch.equal(beta, torch.zeros_like(beta))  # α = 1, β = 0
    planes = PFJ.planes(gains, o)
    assert planes.shape == (3, GAIN_CHANNELS, 12, 10) and torch.equal(planes[:, :, 5, 7], gains)
    assert torch.equal(pfj(o, gains), pfj(o, planes))  # (B, 2) and planes are the same thing
    torch.nn.init.normal_(pfj.out.weight, std=0.1)
    da, beta = pfj.coefficients(o, gains)
    torch.testing.assert_close(pfj(o, gains), (1 + da) * o + beta)  # eq. 3
    with pytest.raises(ValueError, match="gains"):
        pfj(o, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="o must be"):
        pfj(o[:, :2], gains)
    unet = PFJUNet(make_tiny_model().unet, pfj)
    with pytest.raises(ValueError, match="cond must be"):
        unet.split(torch.zeros(3, 4, 12, 10))
    with pytest.raises(TypeError, match="already"):
        PFJUNet(unet)


def test_gradients_reach_phi(make_tiny_model):
    wrapped = with_pfj(make_tiny_model())
    x, t, cond = _inputs()
    c5 = gain_cond(cond, torch.tensor([[0.01, 0.0], [0.02, -0.01]]))
    wrapped.unet(x, t, c5).square().mean().backward()
    pfj = wrapped.unet.pfj
    assert pfj.out.weight.grad is not None and pfj.out.weight.grad.abs().sum() > 0
    assert pfj.out.bias.grad.abs().sum() > 0
    # once the last layer is non-zero, the gradient flows into the body and to the gains themselves
    torch.nn.init.normal_(pfj.out.weight, std=0.1)
    wrapped.zero_grad()
    c5 = c5.clone().requires_grad_(True)
    wrapped.unet(x, t, c5).square().mean().backward()
    assert pfj.body[0].weight.grad.abs().sum() > 0
    assert c5.grad[:, 3:].abs().sum() > 0  # the gain planes matter


def test_macs_count_phi(make_tiny_model):
    model = make_tiny_model()
    wrapped = with_pfj(model, PFJ(PFJConfig(width=8)))
    h = 16
    base = unet_macs(model.unet, (1, 3, h, h))
    total = unet_macs(wrapped.unet, (1, 3, h, h))  # feeds a 5-channel cond (config.in_channels = 8)
    assert wrapped.unet.config.in_channels == model.unet.config.in_channels + 2
    phi = h * h * 9 * (5 * 8 + 8 * 8 + 8 * 6)  # the three 3×3 convolutions of φ
    assert total == base + phi
    den = Denoiser(wrapped.unet, cache=("decoder", "shallow"))
    assert den.macs("full", (h, h)) == total
    assert den.macs("decoder", (h, h)) == Denoiser(model.unet, cache=("decoder",)).macs("decoder", (h, h))  # no φ
    plain_shallow = Denoiser(model.unet, cache=("shallow",)).macs("shallow", (h, h))
    assert den.macs("shallow", (h, h)) == plain_shallow + phi
    # feature reuse through the wrapper runs: one full step, then decoder and shallow
    x, t, cond = _inputs(1, h)
    c5 = gain_cond(cond, torch.zeros(1, 2))
    with torch.no_grad():
        den(x, t, c5, tiles=[0])
        den(x, t, c5, tiles=[0], modes=["decoder"])
        den(x, t, c5, tiles=[0], modes=["shallow"])
    assert count_macs(lambda: wrapped.unet.pfj(cond, torch.zeros(1, 2))) == phi


def test_concat_loss_is_the_models_training_loss(make_tiny_model):
    model = make_tiny_model()
    sampler = CropSampler.from_names(("coins",), 16)
    batch = draw_batch(sampler, torch.Generator().manual_seed(3), 2, model.num_train_timesteps)
    g = torch.Generator().manual_seed(3)
    hr = sampler.sample(2, g)
    assert torch.equal(hr, batch.hr)
    torch.testing.assert_close(diffusion_loss(model, batch), model.training_loss(hr, g), rtol=0, atol=0)


def test_training_gains_masks(make_tiny_model, regressor):
    model = make_tiny_model()
    T = model.num_train_timesteps
    hr = torch.rand(4, 3, 16, 16) * 2 - 1
    _, up = make_pair(hr, 4)
    x0 = model.target(hr, up)
    t = torch.tensor([T - 1, 600, 100, 499])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    g = training_gains(model, regressor, x0, up, t, noise, torch.tensor([50, 100, 150, 200]))
    assert g.shape == (4, 2)
    assert torch.equal(g[0], torch.zeros(2))  # t' = t = T − 1: no step, no gain
    assert g[1, 1] == 0 and g[1, 0] != 0  # t ≥ 500: NR off
    assert g[2, 1] != 0 and g[3, 1] != 0  # second half: NR on


def test_finetune_one_step_both_arms_same_data(make_tiny_model, regressor):
    model = make_tiny_model()
    cfg = PFJFinetuneConfig(**{**TINY_FT.__dict__, "steps": 1, "ema_decay": 0.0})
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    pfj, rep_p = finetune(model, "pfj", cfg, regressor=regressor)
    cat, rep_c = finetune(model, "concat", cfg)
    assert rep_p["data_stream_sha256"] == rep_c["data_stream_sha256"]  # identical crops, t, ε, Δ
    for k, v in model.unet.state_dict().items():  # the input model is not modified
        assert torch.equal(v, before[k])
    changed_c = [k for k, v in cat.unet.state_dict().items() if not torch.equal(v, before[k])]
    changed_p = [k for k, v in pfj.unet.unet.state_dict().items() if not torch.equal(v, before[k])]
    assert changed_c and changed_p
    assert not torch.equal(pfj.unet.pfj.out.weight, torch.zeros_like(pfj.unet.pfj.out.weight))  # φ trained too
    assert rep_p["parts"] == frozen_parts("pfj", cfg) and "φ (PFJ CNN)" in rep_p["parts"]["trained"]
    assert set(rep_p["trainable_parameters"]) == {"unet", "pfj"} and set(rep_c["trainable_parameters"]) == {"unet"}
    assert rep_p["learning_rates"] == {"unet": cfg.lr, "pfj": pytest.approx(cfg.pfj_lr)}
    # freezing the UNet leaves it bit for bit and trains φ only
    frozen, rep_f = finetune(model, "pfj", PFJFinetuneConfig(**{**cfg.__dict__, "freeze_unet": True}),
                             regressor=regressor)
    assert all(torch.equal(v, before[k]) for k, v in frozen.unet.unet.state_dict().items())
    assert "UNet" in rep_f["parts"]["frozen"]


@pytest.mark.parametrize("arm", ["pfj", "concat"])
def test_resume_matches_uninterrupted(make_tiny_model, regressor, tmp_path, arm):
    model = make_tiny_model()
    _, full = finetune(model, arm, TINY_FT, regressor=regressor, out=tmp_path / "full")
    _, part = finetune(model, arm, TINY_FT, regressor=regressor, out=tmp_path / "part", max_seconds=0.0)
    assert part["steps"] == 1 and not part["finished"]
    ck = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)  # no pickled objects
    assert ck["step"] == 1
    resumed_model, resumed = finetune(model, arm, TINY_FT, regressor=regressor, out=tmp_path / "part")
    assert resumed["resumed_from"] == 1 and resumed["finished"]
    assert resumed["data_stream_sha256"] == full["data_stream_sha256"]
    a, b = load_file(str(tmp_path / "full" / "ema.safetensors")), load_file(str(tmp_path / "part" / "ema.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    fa = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    fb = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["model"]
    for k in fa:
        torch.testing.assert_close(fa[k], fb[k], rtol=0, atol=0)
    loaded = load_finetuned(tmp_path / "full")
    assert isinstance(loaded.unet, PFJUNet) == (arm == "pfj")
    for k, v in loaded.unet.state_dict().items():
        torch.testing.assert_close(v, resumed_model.unet.state_dict()[k].float(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="another arm"):
        finetune(model, "concat" if arm == "pfj" else "pfj", TINY_FT, regressor=regressor, out=tmp_path / "full")


def test_evaluate_runs_every_sampler(make_tiny_model, regressor, monkeypatch):
    from adasr.adaptive import mmle
    from adasr.adaptive.pfj import evaluate_pfj, format_table

    monkeypatch.setattr(mmle, "load_mmle_regressor", lambda *a, **k: regressor)  # no shipped weights needed
    model = make_tiny_model()
    pfj = with_pfj(model)
    torch.nn.init.normal_(pfj.unet.pfj.out.weight, std=0.5)  # so that the gains change the result
    g = torch.Generator().manual_seed(0)
    imgs = {"a": (torch.rand(96, 192, 3, generator=g) * 255).to(torch.uint8).numpy()}
    res = evaluate_pfj({"base": model, "pfj": pfj}, images=imgs, steps=10, tile=48, overlap=16, precision="fp32")
    assert set(res["runs"]) == {"base/uniform", "base/dtss", "pfj/uniform", "pfj/dtss", "pfj/dtss-i0"}
    assert res["runs"]["pfj/dtss"]["gains_fed"] and not res["runs"]["pfj/dtss-i0"]["gains_fed"]
    # the hook's gains reach the PFJ network (DTSS: from the third evaluation of a tile on)
    assert res["runs"]["pfj/dtss"]["images"][0]["psnr_y"] != res["runs"]["pfj/dtss-i0"]["images"][0]["psnr_y"]
    assert res["runs"]["base/dtss"]["images"][0]["psnr_y"] != res["runs"]["pfj/dtss"]["images"][0]["psnr_y"]
    for run in res["runs"].values():
        m = run["mean"]
        assert m["psnr_y"] > 0 and 0 <= m["lpips"] and m["brisque"] == m["brisque"] and m["tile_evaluations"] > 0
    # the wrapper's MACs (φ included) exceed the plain model's for the same uniform work
    assert res["runs"]["pfj/uniform"]["mean"]["gmacs"] > res["runs"]["base/uniform"]["mean"]["gmacs"]
    assert "pfj/dtss" in format_table(res)
