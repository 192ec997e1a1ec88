"""The toy DDPM of notebook 01 learns: its loss falls and its samples land on the data (deterministic, ~10 s)."""

from __future__ import annotations

import pytest
import torch

from adasr.diffusion.schedulers import DDPMScheduler
from adasr.toy import (
    ToyEpsModel,
    nearest_mode_distance,
    ring_centres,
    sample_toy,
    toy_data,
    train_toy_ddpm,
    two_moons,
)


def _scheduler() -> DDPMScheduler:
    # the toy points reach |x| ≈ 1.7, so x̂0 must not be clipped to [−1, 1] as it is for images
    return DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=False)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    data = toy_data("ring", 2000, seed=0)
    return data, train_toy_ddpm(data, _scheduler(), steps=1500, seed=0)


def test_data_shapes_and_scale() -> None:
    ring = toy_data("ring", 4000, seed=0)
    moons = two_moons(4000, generator=torch.Generator().manual_seed(0))
    for pts in (ring, moons):
        assert pts.shape == (4000, 2) and pts.dtype == torch.float32
        assert 0.5 < float(pts.std(dim=0).min()) and float(pts.std(dim=0).max()) < 1.5
    assert torch.equal(ring, toy_data("ring", 4000, seed=0))
    assert float(nearest_mode_distance(ring, ring_centres()).max()) < 0.5
    with pytest.raises(ValueError):
        toy_data("spiral", 10)  # type: ignore[arg-type]


def test_model_shapes() -> None:
    model = ToyEpsModel()
    x = torch.zeros(5, 2)
    assert model(x, torch.arange(5)).shape == (5, 2)
    assert model(x, torch.tensor(7)).shape == (5, 2)  # one t for the whole batch


def test_training_is_seeded() -> None:
    data = toy_data("ring", 500, seed=0)
    a = train_toy_ddpm(data, _scheduler(), steps=20, batch_size=64, seed=3)
    b = train_toy_ddpm(data, _scheduler(), steps=20, batch_size=64, seed=3)
    assert torch.equal(a.losses, b.losses)
    state = torch.random.get_rng_state()
    train_toy_ddpm(data, _scheduler(), steps=2, batch_size=8, seed=0)
    assert torch.equal(state, torch.random.get_rng_state()), "training must not touch the global RNG"


def test_loss_decreases(trained) -> None:
    _, (model, losses) = trained
    assert losses.shape == (1500,) and torch.isfinite(losses).all()
    first, last = losses[:100].mean().item(), losses[-300:].mean().item()
    assert last < 0.8 * first, (first, last)
    assert not model.training


def test_samples_land_on_the_ring(trained) -> None:
    _, (model, _) = trained
    scheduler = _scheduler()
    traj = sample_toy(model, scheduler, 1000, seed=1)
    assert traj.sample.shape == (1000, 2)
    assert traj.timesteps == list(range(99, -1, -1)) and len(traj.xs) == len(traj.x0_preds) == 100
    centres = ring_centres()
    dist = nearest_mode_distance(traj.sample, centres)
    # mixture std is 0.08: 0.3 is ≈ 4σ; pure noise x_T would put only ≈ 20 % of points that close
    assert (dist < 0.3).float().mean().item() > 0.85
    share = torch.bincount(torch.cdist(traj.sample, centres).argmin(dim=1), minlength=8).float() / 1000
    assert share.min().item() > 0.06, share  # every one of the 8 modes is covered (1/8 = 0.125)
    start = nearest_mode_distance(traj.xs[0], centres)
    assert (start < 0.3).float().mean().item() < 0.5
    assert torch.equal(traj.sample, sample_toy(model, scheduler, 1000, seed=1).sample)
