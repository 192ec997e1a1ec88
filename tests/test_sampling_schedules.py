"""Schedules as objects (adasr.diffusion.timesteps) and the schedule search (adasr.adaptive.schedule_opt):
closed forms, diffusers' Karras sigmas as an independent reference, the explicit end t_end > 0 of a chain."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adasr.adaptive.schedule_opt import SearchSpace, balanced_score, choose_presets, pareto_front
from adasr.diffusion.timesteps import (
    ExplicitSchedule,
    KarrasSchedule,
    PowerSchedule,
    PresetSchedule,
    SpacingSchedule,
    get_schedule,
    spaced_timesteps,
    strictly_descending,
)
from adasr.sampling.loop import sample_tiles
from adasr.sampling.policies import UniformDDIM


@pytest.mark.parametrize("spacing", ("linspace", "leading", "trailing"))
def test_spacing_schedule_is_spaced_timesteps(spacing: str) -> None:
    for n in range(1, 40):
        assert SpacingSchedule(spacing).timesteps(n) == spaced_timesteps(n, 1000, spacing)
    assert get_schedule(spacing) == SpacingSchedule(spacing) and get_schedule(spacing).name == spacing


def test_power_schedule_closed_form() -> None:
    # t_i = t_end + (T − 1 − t_end)(1 − i/(N − 1))^ρ
    assert PowerSchedule(20, 2.0).timesteps(4) == [999, round(20 + 979 * (2 / 3) ** 2), round(20 + 979 / 9), 20]
    assert PowerSchedule(30, 3.0).timesteps(2) == PowerSchedule(30, 1.0).timesteps(2) == [999, 30]
    assert PowerSchedule(5, 1.0).timesteps(1) == [999]
    for n in range(2, 30):  # ρ = 1, t_end = 0 is linspace (up to ties of the rounding: 499.5 vs 499.4999…)
        ours, lin = PowerSchedule(0, 1.0).timesteps(n), spaced_timesteps(n, 1000, "linspace")
        assert max(abs(a - b) for a, b in zip(ours, lin)) <= 1, n


def test_power_schedule_stays_strictly_descending_at_low_noise() -> None:
    for n in (10, 50, 200):
        ts = PowerSchedule(5, 3.0).timesteps(n)
        assert len(ts) == n and ts[0] == 999 and ts[-1] == 5
        assert all(a > b for a, b in zip(ts, ts[1:]))
    assert strictly_descending([10.2, 10.1, 9.9, 3.0], 3) == [12, 11, 10, 3]
    assert strictly_descending([999, 999, 998.6, 0], 0, top=999) == [999, 998, 997, 0]
    ts = KarrasSchedule().timesteps(300)  # many σ targets near T − 1 map to the same index
    assert ts[0] == 999 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    with pytest.raises(ValueError, match="no room"):
        PowerSchedule(995, 1.0).timesteps(10)
    with pytest.raises(ValueError, match="t_end"):
        PowerSchedule(-1, 1.0)
    with pytest.raises(ValueError, match="rho"):
        PowerSchedule(10, 0.0)


def test_karras_schedule_matches_diffusers_karras_sigmas() -> None:
    """diffusers' EulerDiscreteScheduler(use_karras_sigmas=True) interpolates a fractional t for each Karras σ;
    ours maps each σ to the nearest integer t in log σ: the same list after rounding."""
    diffusers = pytest.importorskip("diffusers")
    for n in (3, 4, 7, 10, 25):
        sched = diffusers.EulerDiscreteScheduler(use_karras_sigmas=True, beta_schedule="linear", beta_start=1e-4,
                                                 beta_end=0.02)
        sched.set_timesteps(n)
        theirs = [int(round(float(t))) for t in sched.timesteps]
        ours = KarrasSchedule(rho=7.0).timesteps(n)
        assert ours[0] == 999 and ours[-1] == 0
        assert max(abs(a - b) for a, b in zip(ours, theirs)) <= 1, (n, ours, theirs)


def test_karras_schedule_end_and_table() -> None:
    ts = KarrasSchedule(t_end=20).timesteps(5)
    assert ts[0] == 999 and ts[-1] == 20 and all(a > b for a, b in zip(ts, ts[1:]))
    ac = tuple(np.linspace(0.999, 0.01, 50).tolist())
    assert KarrasSchedule(alphas_cumprod=ac).timesteps(4, 50)[0] == 49
    with pytest.raises(ValueError, match="entries"):
        KarrasSchedule(alphas_cumprod=ac).timesteps(4, 1000)


def test_explicit_schedule_and_parsing() -> None:
    s = get_schedule("999, 100,20")
    assert isinstance(s, ExplicitSchedule) and s.timesteps(3) == [999, 100, 20] and s.name == "999,100,20"
    assert get_schedule([999, 30]).timesteps() == [999, 30]
    with pytest.raises(ValueError, match="has 3 steps"):
        s.timesteps(4)
    with pytest.raises(ValueError, match="descend"):
        get_schedule("20,100")
    with pytest.raises(ValueError, match="beyond"):
        get_schedule("1500,20").timesteps(2)
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_schedule("cosine")
    with pytest.raises(TypeError):
        get_schedule(3.5)  # type: ignore[arg-type]


def test_preset_schedule_uses_the_largest_point_beyond_its_range() -> None:
    pts = {1: {"family": "linspace", "params": {}, "eta": 0.0, "timesteps": [999]},
           2: {"family": "power", "params": {"t_end": 30, "rho": 2.0}, "eta": 0.5, "timesteps": [999, 30]}}
    p = PresetSchedule("test", pts)
    assert p.timesteps(2) == [999, 30] and p.eta_for(2) == 0.5 and p.eta_for(1) == 0.0
    assert p.timesteps(5) == PowerSchedule(30, 2.0).timesteps(5) and p.eta_for(5) == 0.5
    assert p.describe(2) == {"name": "test", "timesteps": [999, 30], "eta": 0.5}
    # beyond the range: the largest N whose preset met its constraint, not a larger N that fell back
    fell_back = {**pts, 3: {"family": "linspace", "params": {}, "eta": 0.0, "timesteps": [999, 500, 0],
                            "constraint_met": False}}
    assert PresetSchedule("t", fell_back).timesteps(6) == PowerSchedule(30, 2.0).timesteps(6)


def test_uniform_policy_takes_any_schedule() -> None:
    assert UniformDDIM(3, "999,100,20").timesteps() == [999, 100, 20]
    assert UniformDDIM(4, PowerSchedule(20, 2.0)).timesteps() == PowerSchedule(20, 2.0).timesteps(4)
    with pytest.raises(ValueError):
        UniformDDIM(4, "999,100,20").timesteps()


def test_a_chain_ending_at_t_end_returns_the_networks_x0_there(make_tiny_model, one_thread) -> None:
    """[999, 30]: one DDIM step 999 → 30, then the last step to ᾱ = 1 returns x̂0(x_30, 30) (no further noise
    removal): checked against the UNet called by hand."""
    model = make_tiny_model(tile=16)
    cond = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    res = sample_tiles(model, cond, policy=UniformDDIM(2, "999,30"), tile=16, overlap=0, seed=3)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    ac = model.config.schedule.alphas_cumprod()
    update = model.ddim_update()
    with torch.no_grad():
        out = model(x, torch.tensor([999]), cond)
        x30, _ = update(out, torch.tensor([999]), torch.tensor([30]), x)
        x0 = model.predict_x0(model(x30, torch.tensor([30]), cond), x30, torch.tensor([30]))
        x0 = x0.clamp(-model.config.clip_sample_range, model.config.clip_sample_range)
    torch.testing.assert_close(res.x0, x0, atol=1e-5, rtol=1e-5)
    assert ac[30] < 1 and res.tiles[0].evaluations == 2


# ----------------------------------------------------------------------------------------------- the search
def _pt(lp: float, ps: float, **kw) -> dict:
    return {"lpips": lp, "psnr_y": ps, **kw}


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = [_pt(0.20, 30.0), _pt(0.15, 29.0), _pt(0.18, 29.5), _pt(0.19, 29.4), _pt(0.15, 28.0), _pt(0.25, 31.0)]
    # (0.19, 29.4) is beaten by (0.18, 29.5); (0.15, 28.0) by (0.15, 29.0)
    assert pareto_front(pts) == [1, 2, 0, 5]


def test_balanced_score_is_the_smaller_relative_error_reduction() -> None:
    ref = _pt(0.20, 30.0)
    p = _pt(0.15, 31.0)  # LPIPS −25 %, MSE −(1 − 10^−0.1) = −20.6 %
    assert balanced_score(p, ref) == pytest.approx(1 - 10 ** -0.1)
    assert balanced_score(_pt(0.19, 33.0), ref) == pytest.approx(0.05)
    assert balanced_score(_pt(0.25, 35.0), ref) < 0


def test_presets_respect_their_constraints() -> None:
    ref = _pt(0.20, 30.0)
    pts = [_pt(0.15, 29.0, k="low-lpips"), _pt(0.18, 30.2, k="both"), _pt(0.21, 31.0, k="high-psnr"),
           _pt(0.19, 30.5, k="even")]
    pr = choose_presets(pts, ref)
    assert pr["perceptual"]["k"] == "both" and pr["perceptual"]["constraint_met"]  # lowest LPIPS with PSNR ≥ 30
    assert pr["fidelity"]["k"] == "even" and pr["fidelity"]["constraint_met"]  # highest PSNR with LPIPS ≤ 0.20
    assert pr["balanced"]["k"] == "even"  # min(5 %, 10.9 %) beats min(10 %, 4.5 %)
    none = choose_presets([_pt(0.3, 25.0), _pt(0.4, 26.0)], ref)
    assert not none["perceptual"]["constraint_met"] and none["perceptual"]["psnr_y"] == 26.0
    assert not none["fidelity"]["constraint_met"] and none["fidelity"]["lpips"] == 0.3


def test_search_space_deduplicates_identical_lists() -> None:
    sp = SearchSpace(t_ends=(0, 20), rhos=(1.0, 2.0), karras_t_ends=(0,), spacings=("linspace",), etas=(0.0, 1.0))
    assert [c["timesteps"] for c in sp.candidates(1)] == [[999]]  # one step: η plays no part
    two = sp.candidates(2)  # ρ plays no part; power(0) == karras(0) == linspace == [999, 0]
    assert sorted((tuple(c["timesteps"]), c["eta"]) for c in two) == [
        ((999, 0), 0.0), ((999, 0), 1.0), ((999, 20), 0.0), ((999, 20), 1.0)]
    many = sp.candidates(6)
    keys = [(tuple(c["timesteps"]), c["eta"]) for c in many]
    assert len(keys) == len(set(keys)) and all(math.isfinite(c["eta"]) for c in many)
