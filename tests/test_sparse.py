"""adasr.acceleration.sparse: sparse momentum's pieces against closed forms, the cycle's invariants, training.

* prune rate: cosine from p_0 to p_min; shares: μ_l / Σ μ; prune removes exactly the ⌈p·n⌉ smallest |W|; regrowth
  takes the inactive positions of largest |momentum|; counts respect capacities and sum to what was removed;
* one update keeps the total density, moves density towards the layer with the larger momentum, zeroes the
  regrown weights and their Adam moments, and keeps the masked weights at exactly 0;
* ``adasr train --sparse-density`` trains, resumes bit-identically and ships weights at the density;
* storage bytes and the CSR conv route against dense convs.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from adasr.acceleration.sparse import (CSRConv2d, SparseConfig, SparseMomentum, csr_unet, magnitude_prune, masks_of,
                                       momentum_regrow, prunable, prune_rate, redistribution_shares, regrowth_counts,
                                       sparse_storage_bytes)

pytestmark = pytest.mark.usefixtures("one_thread")  # fixture in tests/conftest.py


def test_prune_rate_is_a_cosine():
    c = SparseConfig(prune_rate=0.5, prune_rate_min=0.005)
    assert prune_rate(0, 100, c) == pytest.approx(0.5)
    assert prune_rate(50, 100, c) == pytest.approx(0.005 + 0.495 * 0.5)
    assert prune_rate(100, 100, c) == pytest.approx(0.005)
    assert prune_rate(25, 100, c) == pytest.approx(0.005 + 0.495 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_config_checks():
    for bad in (dict(density=0.0), dict(density=1.5), dict(prune_rate=1.0), dict(prune_rate_min=0.6),
                dict(update_every=0)):
        with pytest.raises(ValueError):
            SparseConfig(**bad)


def test_shares_prune_regrow_closed_forms():
    assert redistribution_shares({"a": 1.0, "b": 3.0}) == {"a": 0.25, "b": 0.75}
    assert redistribution_shares({"a": float("nan"), "b": 2.0}) == {"a": 0.0, "b": 1.0}
    assert redistribution_shares({"a": 0.0, "b": 0.0}) == {"a": 0.5, "b": 0.5}
    w = torch.tensor([[0.5, -0.1, 0.3], [0.0, -0.9, 0.2]])
    mask = torch.tensor([[True, True, True], [False, True, True]])
    new, k = magnitude_prune(w, mask, 0.4)  # ⌈0.4·5⌉ = 2 smallest active: -0.1 and 0.2
    assert k == 2 and new.tolist() == [[True, False, True], [False, True, False]]
    mom = torch.tensor([[9.0, 0.1, 9.0], [5.0, 9.0, -3.0]])
    grown = momentum_regrow(mom, new, 2)  # inactive: (0,1) 0.1, (1,0) 5, (1,2) 3 → the two largest
    assert grown.tolist() == [[True, False, True], [True, True, True]]
    assert momentum_regrow(mom, new, 10).all()  # capped by the free slots


def test_regrowth_counts_respect_capacity():
    c = regrowth_counts(100, {"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 10, "b": 1000, "c": 1000})
    assert c["a"] == 10 and sum(c.values()) == 100 and c["b"] > c["c"]
    assert regrowth_counts(7, {"a": 0.5, "b": 0.5}, {"a": 2, "b": 3}) == {"a": 2, "b": 3}
    assert sum(regrowth_counts(5, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, {"a": 9, "b": 9, "c": 9}).values()) == 5


class _Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(20, 20)
        self.b = nn.Linear(20, 20)


def test_one_update_keeps_density_and_follows_momentum():
    torch.manual_seed(0)
    net = _Two()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sm = SparseMomentum(net, opt, SparseConfig(density=0.25, update_every=1), total_steps=10,
                        generator=torch.Generator().manual_seed(1))
    assert set(sm.masks) == {"a.weight", "b.weight"} and sm.density() == pytest.approx(0.25)
    x = torch.randn(64, 20)
    for _ in range(3):  # gradients only through layer b's output scale: b's momentum dominates
        opt.zero_grad()
        (net.b(net.a(x) * 0.01) * 10).pow(2).mean().backward()
        opt.step()
        sm.apply_mask()
    before = {k: int(v.sum()) for k, v in sm.masks.items()}
    rec = sm.update(1)
    assert rec["removed"] == rec["regrown"] and sm.density() == pytest.approx(0.25)
    after = {k: int(v.sum()) for k, v in sm.masks.items()}
    assert after["b.weight"] > before["b.weight"] and after["a.weight"] < before["a.weight"]
    for name, p in prunable(net).items():
        assert (p[~sm.masks[name]] == 0).all()
        st = opt.state[p]
        assert (st["exp_avg"][~sm.masks[name]] == 0).all() and (st["exp_avg_sq"][~sm.masks[name]] == 0).all()
    assert net.a.bias.ne(0).all()  # biases stay dense
    state = sm.state_dict()
    sm2 = SparseMomentum(net, opt, SparseConfig(density=0.25), total_steps=10)
    sm2.load_state_dict(state)
    assert all(torch.equal(sm2.masks[k], sm.masks[k]) for k in sm.masks) and sm2.history == sm.history


def test_sparse_training_resumes_and_ships_at_density(tmp_path):
    from safetensors.torch import load_file

    from adasr.models.unet import UNetConfig
    from adasr.srmodel import SRDiffusionConfig
    from adasr.train import TrainConfig, train

    tiny = UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)
    cfg = TrainConfig(model=SRDiffusionConfig(unet=tiny), steps=12, batch_size=2, crop=16, warmup=2,
                      checkpoint_every=6, sparse=SparseConfig(density=0.2, update_every=4), precision="fp32")
    full = load_file(train(cfg, tmp_path / "a", progress=False))
    train(cfg, tmp_path / "b", progress=False, max_seconds=0.0)  # stops (and checkpoints) after step 1
    resumed = load_file(train(cfg, tmp_path / "b", progress=False))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    weights = [v for v in full.values() if v.ndim >= 2]
    dens = sum(int((v != 0).sum()) for v in weights) / sum(v.numel() for v in weights)
    assert dens == pytest.approx(0.2, abs=0.002)
    events = [line for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines() if '"sparse"' in line]
    assert len(events) == 2  # steps 4 and 8 (not at the last step)
    assert "sparse" not in TrainConfig().to_dict()  # dense runs keep their old config dictionary


def test_storage_bytes():
    st = {"w": torch.tensor([[1.0, 0.0, 0.0, 2.0]] * 4), "b": torch.ones(4)}
    s = sparse_storage_bytes(st, value_bytes=2)
    assert s["dense"] == 20 * 2 and s["nonzeros"] == 8 + 4
    assert s["sparse_coo"] == 8 * 6 + 4 * 2 and s["sparse_bitmap"] == 8 * 2 + 2 + 4 * 2


def test_csr_conv_matches_dense_conv():
    torch.manual_seed(0)
    for stride in (1, 2):
        conv = nn.Conv2d(6, 8, 3, stride=stride, padding=1)
        with torch.no_grad():
            conv.weight.mul_((torch.rand_like(conv.weight) < 0.15).float())
        x = torch.randn(2, 6, 16, 12)
        assert torch.allclose(CSRConv2d(conv)(x), conv(x), atol=1e-5)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(csr_unet(net)(x), net(x), atol=1e-5)
    assert masks_of(net)["0.weight"].shape == (4, 3, 3, 3)


def test_pack_sparse_round_trip_and_registry(tmp_path):
    from adasr import registry
    from adasr.acceleration.sparse import pack_sparse, unpack_sparse

    torch.manual_seed(0)
    w = torch.randn(64, 32, 3, 3) * (torch.rand(64, 32, 3, 3) < 0.15)
    state = {"conv.weight": w, "conv.bias": torch.randn(64), "lin.weight": torch.zeros(4, 5)}
    packed = pack_sparse(state)
    assert packed["conv.weight"].numel() == int((w != 0).sum()) and packed["conv.weight.__mask__"].dtype == torch.uint8
    back = unpack_sparse(packed)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    e = registry.register("toy_sparse", packed, config={}, weights_dir=tmp_path, dtype=torch.float16,
                          format="sparse-bitmap")
    loaded = registry.load_state_dict("toy_sparse", weights_dir=tmp_path, dtype=torch.float32)
    assert torch.equal(loaded["conv.weight"], w.half().float()) and loaded["lin.weight"].shape == (4, 5)
    dense_bytes = sum(v.numel() * 2 for v in state.values())
    assert e["bytes"] < dense_bytes * 0.25  # 15 % of the values + 1 bit per position
