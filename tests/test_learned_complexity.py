"""adasr.adaptive.learned: the ComplexityNet, its target (one-step error), loss and smoothing, the shipped weights,
and an end-to-end miniature training run with a tiny random diffusion model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adasr.adaptive import learned as L
from adasr.adaptive.complexity import make_estimator
from adasr.data import CropSampler, make_pair
from adasr.models.unet import UNetConfig
from adasr.srmodel import SRDiffusion, SRDiffusionConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def tiny_model() -> SRDiffusion:
    torch.manual_seed(0)
    cfg = SRDiffusionConfig(unet=UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2))
    return SRDiffusion(cfg).eval()


# ------------------------------------------------------------------------------------------------- import graph
def test_learned_and_complexity_import_one_way():
    """complexity imports learned (to build the 'learned' estimator); learned never imports complexity back — not
    even inside a function: both take the gradient map from adasr.adaptive.gradient."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    from adasr.adaptive import complexity, gradient

    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names.add("." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    assert not {n for n in imported(L) if n.endswith("complexity")}
    assert ".learned" in imported(complexity) and ".gradient" in imported(L)
    assert complexity.gradient_map is gradient.gradient_map is L.gradient_map and complexity.gray is gradient.gray
    code = "import sys, adasr.adaptive.learned; print('adasr.adaptive.complexity' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------------------------- network
def test_complexity_net_shapes_and_size():
    torch.manual_seed(0)
    net = L.ComplexityNet()
    x = torch.rand(2, 3, 20, 24) * 2 - 1
    assert net(x).shape == (2, 1, 20, 24)  # dilated 3×3 convs with matching padding keep the size
    w = 16  # features 4 → 16 → 16 → 16 (3×3, with bias) → 1 (1×1, with bias), plus the 4 → 1 linear skip
    assert sum(p.numel() for p in net.parameters()) == \
        (4 * w * 9 + w) + 2 * (w * w * 9 + w) + (w + 1) + 5 == 5254
    assert sum(p.numel() for p in L.ComplexityNet(L.ComplexityNetConfig(width=4)).parameters()) == \
        (4 * 4 * 9 + 4) + 2 * (4 * 4 * 9 + 4) + 5 + 5


def test_complexity_net_features_and_initial_skip():
    x = torch.rand(1, 3, 12, 12) * 2 - 1
    f = L.ComplexityNet.features(x)
    from adasr.adaptive.complexity import gradient_map

    assert f.shape == (1, 4, 12, 12)
    assert torch.equal(f[:, :3], x)
    assert torch.allclose(f[:, 3:], torch.log(gradient_map(x) + L.LOG_FLOOR))
    net = L.ComplexityNet()
    assert torch.count_nonzero(net.skip(f)) == 0  # the skip starts at zero: training decides its weight
    for bad in (torch.zeros(2, 1, 8, 8), torch.zeros(3, 8, 8)):
        with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
            net(bad)


def test_predict_is_exp_of_forward_and_nonnegative():
    torch.manual_seed(1)
    net = L.ComplexityNet()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    p = net.predict(x)
    assert p.shape == (3, 1, 16, 16) and (p >= 0).all() and not p.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(p, net(x).exp())
    with torch.no_grad():  # the output layer starts at the typical error: zero its weights → ê = 0.02 everywhere
        net.body[-1].weight.zero_()
    torch.testing.assert_close(net.predict(x), torch.full((3, 1, 16, 16), 0.02))
    torch.testing.assert_close(net.predict(x.double()), torch.full((3, 1, 16, 16), 0.02))  # cast to the net's dtype


# ------------------------------------------------------------------------------------------------ smooth and loss
def test_smooth_keeps_shape_and_spreads_an_impulse():
    e = torch.zeros(1, 1, 9, 9)
    e[0, 0, 4, 4] = 1.0
    s = L.smooth(e, 3)
    assert s.shape == e.shape
    expected = torch.zeros(9, 9)
    expected[3:6, 3:6] = 1 / 9  # a centred 3×3 mean
    torch.testing.assert_close(s[0, 0], expected)
    e = torch.zeros(2, 1, 24, 24)
    e[1, 0, 10, 10] = 1.0
    s = L.smooth(e, 8)  # even window: output (i, j) averages rows i−3..i+4, columns j−3..j+4
    expected = torch.zeros(24, 24)
    expected[6:14, 6:14] = 1 / 64
    assert s.shape == e.shape and s[0].abs().max() == 0
    torch.testing.assert_close(s[1, 0], expected)
    assert L.smooth(e, 1) is e  # pool 1: unchanged


def test_smooth_of_constant_and_ramp():
    c = torch.full((1, 1, 10, 12), 0.3)
    torch.testing.assert_close(L.smooth(c, 8), c)  # replicate padding: a constant stays constant at the borders
    ramp = torch.arange(12, dtype=torch.float64).expand(1, 1, 10, 12)
    s = L.smooth(ramp, 5)[0, 0]
    torch.testing.assert_close(s[:, 2:-2], ramp[0, 0, :, 2:-2])  # centred odd window: the ramp in the interior
    s = L.smooth(ramp, 4)[0, 0]  # columns j−1..j+2: mean j + 0.5
    torch.testing.assert_close(s[:, 1:-2], ramp[0, 0, :, 1:-2] + 0.5)
    assert s[0, 0].item() == pytest.approx((0 + 0 + 1 + 2) / 4)  # replicated left edge


def test_loss_is_zero_at_the_target_and_the_offset_otherwise():
    g = torch.Generator().manual_seed(2)
    err = torch.rand(2, 1, 16, 16, generator=g) * 0.1
    target = torch.log(err + L.LOG_FLOOR)
    assert L.loss_fn(target, err, pool=1).item() == pytest.approx(0.0, abs=1e-7)
    assert L.loss_fn(target + 0.7, err, pool=1).item() == pytest.approx(0.7, abs=1e-6)
    assert L.loss_fn(target - 0.2, err, pool=1).item() == pytest.approx(0.2, abs=1e-6)
    flat = torch.full((1, 1, 16, 16), 0.05)
    assert L.loss_fn(torch.log(flat + 1e-3), flat, pool=8).item() == pytest.approx(0.0, abs=1e-5)  # float32 pooling
    # the prediction is smoothed before the comparison: an alternating ±0.5 log prediction averages out over
    # each 2-wide window (columns j, j+1), except in the last column, whose window is that column replicated
    alt = torch.log(flat + 1e-3) + 0.5 * (-1.0) ** torch.arange(16).float()
    assert L.loss_fn(alt, flat, pool=2).item() == pytest.approx(0.5 / 16, abs=1e-5)
    assert L.loss_fn(alt, flat, pool=1).item() == pytest.approx(0.5, abs=1e-6)


def test_spearman_ranks():
    assert L.spearman(np.array([1, 2, 3, 4]), np.array([1, 4, 9, 16])) == pytest.approx(1.0)
    assert L.spearman(np.array([1, 2, 3, 4]), np.array([5, 3, 2, 0])) == pytest.approx(-1.0)
    a, b = np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 4.0])
    ra, rb = np.array([1, 2.5, 2.5, 4]), np.array([1, 3, 2, 4])  # ties get their average rank
    assert L.spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])


# ----------------------------------------------------------------------------------------------- one-step target
class ZeroUNet(torch.nn.Module):
    multiple = 1

    def forward(self, x, t, c):
        return torch.zeros_like(x)


def test_one_step_error_with_a_zero_predictor_is_the_bicubic_error():
    """An x0-predicting residual model that outputs 0 gives SR = up(LR): the target is then the smoothed bicubic
    error mean_c |up − HR| / 2."""
    model = tiny_model()
    model.unet = ZeroUNet()
    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    up, e = L.one_step_error(model, hr, pool=4, precision="fp32")
    _, up_ref = make_pair(hr, 4)
    torch.testing.assert_close(up, up_ref)
    assert e.shape == (2, 1, 32, 32)
    torch.testing.assert_close(e, L.smooth((up_ref.clamp(-1, 1) - hr).abs().mean(1, keepdim=True) / 2, 4))


def test_one_step_error_with_the_tiny_model():
    model = tiny_model()
    hr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    up, e = L.one_step_error(model, hr, pool=1, seed=5, precision="fp32")
    assert up.shape == (1, 3, 16, 16) and e.shape == (1, 1, 16, 16)
    assert (e >= 0).all() and (e <= 1).all()  # image units: half the L1 distance of two [−1, 1] images
    _, e2 = L.one_step_error(model, hr, pool=1, seed=5, precision="fp32")
    torch.testing.assert_close(e, e2, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ shipped weights
def test_shipped_weights_load_and_give_a_finite_map():
    net = L.load_complexity_net()
    assert isinstance(net, L.ComplexityNet) and not net.training
    assert net.config == L.ComplexityNetConfig(width=16, pool=8)
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(6)) * 2 - 1
    m = net.predict(x)
    assert m.shape == (1, 1, 32, 48) and torch.isfinite(m).all() and (m > 0).all()
    flat = net.predict(torch.zeros(1, 3, 32, 48))
    assert m.mean() > flat.mean()  # texture predicts a larger one-step error than a flat gray image
    torch.testing.assert_close(make_estimator("learned")(x), m)


# --------------------------------------------------------------------------------------------------- training
def test_train_complexity_net_end_to_end(monkeypatch):
    """A few steps on 6 tiny crops (3 for validation) from two random 'photos' (the 17 training photos take
    seconds to load): the loop runs and the report has its keys."""
    g = torch.Generator().manual_seed(7)
    photos = [torch.rand(3, 48, 40, generator=g) * 2 - 1, torch.rand(3, 40, 40, generator=g) * 2 - 1]
    seen = {}

    def from_names(cls, names=(), crop=64):
        seen["crop"] = crop
        return cls(photos, crop)

    monkeypatch.setattr(CropSampler, "from_names", classmethod(from_names))
    cfg = L.ComplexityTrainConfig(crops=6, crop=16, val_fraction=0.5, steps=4, batch=2, lr=1e-3, precision="fp32")
    net, report = L.train_complexity_net(tiny_model(), cfg, L.ComplexityNetConfig(width=4, pool=4), progress=False)
    assert seen["crop"] == 16
    assert isinstance(net, L.ComplexityNet) and not net.training and net.config.width == 4
    assert set(report) == {"train_loss_last100", "val_loss", "val_tiles", "val_spearman_net",
                           "val_spearman_gradient", "config", "net_config"}
    assert report["val_tiles"] == 3
    for k in ("train_loss_last100", "val_loss"):
        assert math.isfinite(report[k]) and report[k] >= 0
    for k in ("val_spearman_net", "val_spearman_gradient"):
        assert isinstance(report[k], float) and (math.isnan(report[k]) or -1 <= report[k] <= 1)
    assert report["config"]["steps"] == 4 and report["net_config"] == {"width": 4, "pool": 4}
    assert net.predict(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)
