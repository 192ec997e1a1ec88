"""AdaBM on small networks: calibration, bit mapping, FAB, BitOPs, fine-tuning, the int8 path, the UNet wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasr.models.edsr import EDSR, EDSRConfig
from adasr.quant.adabm import (
    AdaBM, AdaBMConfig, diffusion_calibration_batches, quantize_diffusion, residual_block_layers, unet_layers,
)
from adasr.quant.finetune import FinetuneConfig, bit_loss, finetune, objective, skt_loss
from adasr.quant.int8 import quantize_int8

TINY = EDSRConfig(n_resblocks=4, n_feats=8)


@pytest.fixture(scope="module")
def edsr(one_thread):
    torch.manual_seed(0)
    return EDSR(TINY).eval()


@pytest.fixture(scope="module")
def lr_batches():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    base[:2] = base[:2].mean(dim=(2, 3), keepdim=True)  # two flat images (low complexity)
    return [base[:4], base[4:]]


def test_edsr_shapes_and_parameter_count():
    m = EDSR(TINY)
    assert m(torch.zeros(2, 3, 5, 7)).shape == (2, 3, 20, 28)
    F = TINY.n_feats
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731
    expected = conv(3, F) + 2 * TINY.n_resblocks * conv(F, F) + conv(F, F) + 2 * conv(F, 4 * F) + conv(F, 3)
    assert sum(p.numel() for p in m.parameters()) == expected
    with pytest.raises(ValueError):
        EDSRConfig(scale=3)
    with pytest.raises(ValueError):
        m(torch.zeros(1, 1, 8, 8))


def test_only_residual_block_convs_are_quantized(edsr):
    names = residual_block_layers(edsr)
    assert names == [f"body.{i}.conv{j}" for i in range(4) for j in (1, 2)]
    qm = AdaBM(edsr, AdaBMConfig())
    assert all(type(p).__name__ == "Conv2d" for p in (qm.model.head, qm.model.body_out, qm.model.tail))
    assert isinstance(edsr.body[0].conv1, torch.nn.Conv2d)  # the original stays float


def test_fp_mode_is_the_float_model(edsr, lr_batches):
    qm = AdaBM(edsr, AdaBMConfig())
    x = lr_batches[0]
    with torch.no_grad():
        assert torch.equal(qm(x), edsr(x))


def test_calibration_layer_bits_and_fab(edsr, lr_batches):
    qm = AdaBM(edsr, AdaBMConfig(w_bits=4, a_bits=4, patch=None))
    s = qm.calibrate(lr_batches)
    bits = s["layer_bits"]
    sens = np.array(s["sensitivity"])
    lo, hi = np.percentile(sens, 30), np.percentile(sens, 70)
    assert bits == [-1 if v < lo else 1 if v > hi else 0 for v in sens]
    x = torch.cat(lr_batches)
    with torch.no_grad():
        qm(x)
    b_img = qm.image_bits(x).flatten()
    assert b_img[:2].eq(-1).all()  # flat images get one bit less
    per_image = qm.fab_per_image()
    expected = 4 + b_img + float(np.mean(bits))
    torch.testing.assert_close(per_image, expected)
    assert qm.fab() == pytest.approx(expected.mean().item())


def test_fixed_config_has_exact_fab_and_bitops(edsr, lr_batches):
    qm = AdaBM(edsr, AdaBMConfig.fixed(8, 8))
    qm.calibrate(lr_batches)
    x = lr_batches[0][:1]
    ops = qm.bitops(x)
    assert qm.fab() == 8.0
    q_macs = 8 * (16 * 16 * TINY.n_feats * TINY.n_feats * 9)  # 8 quantized 3×3 convs on a 16×16 LR map
    assert ops["bitops"] == pytest.approx(q_macs * 64 + (ops["macs"] - q_macs) * 1024)
    qm.set_mode("fp")
    assert qm.bitops(x)["bitops"] == pytest.approx(ops["bitops_fp32"])


def test_per_patch_bits_follow_the_image(edsr):
    qm = AdaBM(edsr, AdaBMConfig(patch=8, layer_to_bit=False))
    g = torch.Generator().manual_seed(1)
    qm.calibrate([torch.rand(4, 3, 16, 16, generator=g) * 2 - 1])  # thresholds from noise images
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    x[:, :, :8, :8] = 0.0  # a flat patch in every image
    with torch.no_grad():
        qm(x)
    b = qm.image_bits(x)
    assert b.shape == (4, 1, 2, 2) and b[:, 0, 0, 0].eq(-1).all()
    lb = qm.qlayers()[0].last_bits
    assert lb.shape == (4, 1, 16, 16) and lb[:, :, :8, :8].eq(3).all()
    assert qm.fab() == pytest.approx(float(lb.mean()))


def test_isolated_layer_errors(edsr, lr_batches):
    qm = AdaBM(edsr, AdaBMConfig(w_bits=None, a_bits=4))
    qm.calibrate(lr_batches)
    x = lr_batches[0]
    coarse = qm.isolated_layer_errors(x, bits=2)
    fine = qm.isolated_layer_errors(x, bits=8)
    assert len(coarse) == len(qm.layer_names) and all(c > f >= 0 for c, f in zip(coarse, fine))
    assert qm.mode == "quant" and all(q.a_bits == 4 and q.layer_adaptive for q in qm.qlayers())
    q0 = qm.qlayers()[0]  # by hand for layer 0: only it quantized at 2 bits
    qm.set_mode("fp")
    with torch.no_grad():
        ref = qm(x)
        q0.mode, q0.a_bits, q0.layer_adaptive = "quant", 2, False
        err0 = float((qm.model(x) - ref).pow(2).mean())
    assert coarse[0] == pytest.approx(err0)


def test_skt_and_bit_losses():
    f = [torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(2))]
    assert float(skt_loss(f, f)) == pytest.approx(0.0, abs=1e-6)
    assert float(skt_loss(f, [-f[0]])) == pytest.approx(2.0, abs=1e-5)
    assert float(skt_loss(f, [3 * f[0]])) == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert float(bit_loss(torch.tensor([4.5, 4.7]), 4)) == pytest.approx(0.6)
    assert float(bit_loss(torch.tensor([3.0]), 4)) == 0.0


def test_finetune_lowers_its_objective_and_the_bit_loss_lowers_fab(edsr, lr_batches):
    qm = AdaBM(edsr, AdaBMConfig(w_bits=4, a_bits=3, patch=None))
    qm.calibrate(lr_batches)
    x = torch.cat(lr_batches)
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=15, batch_size=4, lr_weights=1e-3)
    before = objective(qm, edsr, x)
    log = finetune(qm, edsr, x, cfg, progress=False)
    after = objective(qm, edsr, x)
    assert after["pix"] + cfg.lambda_skt * after["skt"] < before["pix"] + cfg.lambda_skt * before["skt"]
    assert log["phase"] == ["w", "a"] and len(log["loss"]) == 30 and len(log["fab"]) == 2
    assert before["fab"] > 3  # the 2-bit floor lifts FAB above b_base, so L_bit > 0 ...
    finetune(qm, edsr, x, FinetuneConfig(epochs=3, steps_per_epoch=15, batch_size=4, lambda_skt=0.0),
             progress=False)
    assert objective(qm, edsr, x)["fab"] < before["fab"]  # ... and the measure phase brings it down
    with pytest.raises(RuntimeError):
        finetune(AdaBM(edsr), edsr, x)  # not calibrated


def test_int8_is_real_and_close_and_restores_the_engine(edsr, lr_batches):
    before = torch.backends.quantized.engine
    q8 = quantize_int8(edsr, lr_batches)
    assert torch.backends.quantized.engine == before
    assert q8.net.body[0].conv1.weight().dtype == torch.qint8
    x = lr_batches[1]
    with torch.no_grad():
        ref, out = edsr(x), q8(x)
    assert float((out - ref).norm() / ref.norm()) < 0.1
    with pytest.raises(ValueError):
        quantize_int8(edsr, [])


def test_unet_wrapper_runs_inside_the_tile_sampler(make_tiny_model, one_thread):
    from adasr.sampling.loop import iterate_tiles, run_to_end
    from adasr.sampling.policies import UniformDDIM

    model = make_tiny_model()
    names = unet_layers(model.unet)
    convs = [n for n, m in model.unet.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert names == convs[1:-1]
    qmodel, qm = quantize_diffusion(model, AdaBMConfig(w_bits=8, a_bits=6))
    hr = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    batches = diffusion_calibration_batches(model, hr, UniformDDIM(3).timesteps(model.num_train_timesteps), batch_size=4)
    assert len(batches) == 3 and batches[0][0].shape == (4, 3, 32, 32)
    qm.calibrate(batches)
    cond = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(4)) * 2 - 1
    fabs = []
    res = run_to_end(iterate_tiles(qmodel, cond, policy=UniformDDIM(3), tile=32, overlap=16),
                     observe=lambda state: fabs.append(qm.fab()))
    assert res.x0.shape == cond.shape and torch.isfinite(res.x0).all()
    assert len(fabs) == 3 and all(4 <= f <= 8 for f in fabs)
