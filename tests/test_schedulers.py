"""DDPM / DDIM samplers: parity with diffusers' own schedulers, and the DDIM update's algebra.

Parity protocol: at every step both schedulers get the *same* (model_output, timestep, sample) — the sample is
diffusers' own trajectory — so differences cannot compound. Stochastic steps are made comparable by two
``torch.Generator`` objects seeded alike: both implementations draw ``torch.randn(shape, generator=g)`` at the same
moments, so the streams stay in lockstep (a test also passes the noise explicitly). Tolerance: 1e-5 relative and
absolute (our tables are float64, diffusers' float32).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from adasr.diffusion.objectives import training_target
from adasr.diffusion.schedulers import (
    DDIMScheduler,
    DDPMScheduler,
    SchedulerOutput,
    ddim_step,
)
from adasr.diffusion.schedules import NoiseSchedule

PREDICTIONS = ("epsilon", "sample", "v_prediction")
SHAPE = (2, 3, 4, 4)
TOL: dict[str, float] = {"rtol": 1e-5, "atol": 1e-5}

# (constructor kwargs, num_inference_steps); several spacings, offsets and schedules
SPACINGS: list[tuple[dict[str, Any], int]] = [
    ({"timestep_spacing": "leading"}, 10),
    ({"timestep_spacing": "leading", "steps_offset": 1}, 7),
    ({"timestep_spacing": "trailing"}, 10),
    ({"timestep_spacing": "trailing"}, 7),
    ({"timestep_spacing": "linspace"}, 12),
    ({"timestep_spacing": "trailing", "beta_schedule": "squaredcos_cap_v2"}, 6),
    ({"timestep_spacing": "leading", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}, 8),
]


def _diffusers() -> Any:
    return pytest.importorskip("diffusers")


def _randn(seed: int, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# Tables, timesteps, forward process
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
        {"beta_schedule": "squaredcos_cap_v2"},
        {"num_train_timesteps": 300, "beta_start": 1e-3, "beta_end": 0.05},
        {"num_train_timesteps": 5, "trained_betas": [0.1, 0.2, 0.3, 0.4, 0.5]},
    ],
)
def test_tables_match_diffusers(kwargs: dict[str, Any]) -> None:
    diffusers = _diffusers()
    for ours, theirs in (
        (DDPMScheduler(**kwargs), diffusers.DDPMScheduler(**kwargs)),
        (DDIMScheduler(**kwargs), diffusers.DDIMScheduler(**kwargs)),
    ):
        assert ours.alphas_cumprod.dtype == torch.float64
        torch.testing.assert_close(ours.betas.float(), theirs.betas, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ours.alphas_cumprod.float(), theirs.alphas_cumprod, rtol=2e-5, atol=1e-7)
        assert torch.equal(ours.timesteps, theirs.timesteps) and len(ours) == len(theirs)
    assert float(DDIMScheduler(set_alpha_to_one=False, **kwargs).final_alpha_cumprod) == pytest.approx(
        float(diffusers.DDIMScheduler(set_alpha_to_one=False, **kwargs).final_alpha_cumprod), rel=1e-6
    )


@pytest.mark.parametrize("spacing", ("leading", "trailing", "linspace"))
@pytest.mark.parametrize("T", (1000, 300))
def test_spaced_timesteps_match_diffusers_for_every_step_count(spacing: str, T: int) -> None:
    """All n in [1, T]. Where diffusers' ``trailing`` float arange yields an (n+1)-th timestep −1, we stop at n."""
    diffusers = _diffusers()
    offsets = (0, 1) if spacing == "leading" else (0,)
    for offset in offsets:
        for cls, dcls in ((DDPMScheduler, diffusers.DDPMScheduler), (DDIMScheduler, diffusers.DDIMScheduler)):
            ours = cls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
            theirs = dcls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
            for n in range(1, T + 1 - offset):
                ours.set_timesteps(n)
                theirs.set_timesteps(n)
                expected = theirs.timesteps
                if len(expected) == n + 1:
                    assert spacing == "trailing" and int(expected[-1]) == -1
                    expected = expected[:n]
                assert ours.timesteps.dtype == torch.long and torch.equal(ours.timesteps, expected), (cls, n)
                assert ours.num_inference_steps == n


def test_trailing_spacing_bug_in_diffusers_is_avoided() -> None:
    diffusers = _diffusers()
    theirs = diffusers.DDIMScheduler(timestep_spacing="trailing")
    theirs.set_timesteps(61)
    assert len(theirs.timesteps) == 62 and int(theirs.timesteps[-1]) == -1
    ours = DDIMScheduler(timestep_spacing="trailing")
    ours.set_timesteps(61)
    assert len(ours.timesteps) == 61 and int(ours.timesteps[-1]) == 15


@pytest.mark.parametrize("kwargs, n", SPACINGS)
def test_previous_timestep_matches_diffusers(kwargs: dict[str, Any], n: int) -> None:
    diffusers = _diffusers()
    ours, theirs = DDPMScheduler(**kwargs), diffusers.DDPMScheduler(**kwargs)
    assert ours.previous_timestep(500) == int(theirs.previous_timestep(500)) == 499  # before set_timesteps
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    for t in ours.timesteps:
        assert ours.previous_timestep(t) == int(theirs.previous_timestep(t))


def test_ddim_previous_timestep_rule() -> None:
    """diffusers' DDIM always steps by ⌊T/n⌋, which skips off the grid for ``linspace``; explicit lists chain."""
    sched = DDIMScheduler(timestep_spacing="linspace")
    sched.set_timesteps(10)
    assert sched.timesteps[:3].tolist() == [999, 888, 777]
    assert sched.previous_timestep(999) == 899 and sched.previous_timestep(0) == -100
    sched.set_timesteps(timesteps=[999, 888, 500, 3])
    assert [sched.previous_timestep(t) for t in sched.timesteps] == [888, 500, 3, -1]
    with pytest.raises(ValueError, match=r"not in scheduler\.timesteps"):
        sched.previous_timestep(7)


@pytest.mark.parametrize("kwargs", [{}, {"beta_schedule": "squaredcos_cap_v2"}])
def test_add_noise_matches_diffusers(kwargs: dict[str, Any]) -> None:
    diffusers = _diffusers()
    x0, noise = _randn(0), _randn(1)
    t = torch.tensor([3, 999])
    for ours, theirs in (
        (DDPMScheduler(**kwargs), diffusers.DDPMScheduler(**kwargs)),
        (DDIMScheduler(**kwargs), diffusers.DDIMScheduler(**kwargs)),
    ):
        torch.testing.assert_close(ours.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t), **TOL)
    sched = DDPMScheduler(**kwargs)
    a = sched.alphas_cumprod[500].item()
    torch.testing.assert_close(sched.add_noise(x0, noise, 500), a**0.5 * x0 + (1 - a) ** 0.5 * noise)
    with pytest.raises(ValueError, match="must lie in"):
        sched.add_noise(x0, noise, torch.tensor([0, 1000]))


# ----------------------------------------------------------------------------------------------------------------
# DDPM
# ----------------------------------------------------------------------------------------------------------------


def _share_tables(ours: DDPMScheduler | DDIMScheduler, theirs: Any) -> None:
    """Give the diffusers scheduler our float64 ᾱ table, so that float64 runs compare the formulas alone."""
    theirs.alphas_cumprod = ours.alphas_cumprod.clone()
    theirs.one = ours.one.clone()
    if isinstance(ours, DDIMScheduler):
        theirs.final_alpha_cumprod = ours.final_alpha_cumprod.clone()


def _run_parity(
    ours: DDPMScheduler | DDIMScheduler,
    theirs: Any,
    *,
    seed: int = 0,
    ddim_eta: float | None = None,
    exact: bool = False,
) -> None:
    """Step both schedulers along ``ours.timesteps`` on identical inputs, comparing every output.

    Each step gets a realistic input: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε and the parameterisation's target for
    (x0, ε) plus an "imperfect network" error of 0.3·N(0, I) (so x̂0 ≠ x0 and clipping engages).

    ``exact=False``: float32 inputs, diffusers' own float32 tables, tolerance 1e-5.
    ``exact=True``: float64 inputs, diffusers given our float64 tables (:func:`_share_tables`), tolerance 1e-9 —
    the formulas and the RNG use must then agree to rounding, even where float32 is ill-conditioned (steps near
    t = 0, where 1 − ᾱ_t ≈ 1e-4 keeps only ~3 significant digits in float32).
    """
    dtype = torch.float64 if exact else torch.float32
    tol = {"rtol": 1e-9, "atol": 1e-9} if exact else TOL
    if exact:
        _share_tables(ours, theirs)
    prediction_type = ours.config.prediction_type
    g_ours, g_theirs = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 1)
    for i, t in enumerate(ours.timesteps):
        x0, eps, err = (_randn(seed + 10 * i + k).to(dtype) for k in range(3))
        x0 = 0.9 * x0
        a = ours.alphas_cumprod[t].to(dtype)
        x = a.sqrt() * x0 + (1 - a).sqrt() * eps
        out = training_target(prediction_type, x0, eps, a) + 0.3 * err
        if ddim_eta is None:
            mine = ours.step(out, t, x, generator=g_ours)
            ref = theirs.step(out, t, x, generator=g_theirs)
        else:
            mine = ours.step(out, t, x, ddim_eta, generator=g_ours)
            ref = theirs.step(out, t, x, eta=ddim_eta, generator=g_theirs)
        assert isinstance(mine, SchedulerOutput)
        assert mine.prev_sample.dtype == dtype
        torch.testing.assert_close(mine.pred_original_sample, ref.pred_original_sample, **tol)
        torch.testing.assert_close(mine.prev_sample, ref.prev_sample, **tol)


@pytest.mark.parametrize("exact", (False, True))
@pytest.mark.parametrize("clip", (True, False))
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("kwargs, n", SPACINGS)
def test_ddpm_step_matches_diffusers(
    kwargs: dict[str, Any], n: int, prediction_type: str, clip: bool, exact: bool
) -> None:
    diffusers = _diffusers()
    kw = dict(kwargs, prediction_type=prediction_type, clip_sample=clip)
    ours, theirs = DDPMScheduler(**kw), diffusers.DDPMScheduler(**kw)
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    _run_parity(ours, theirs, exact=exact)


@pytest.mark.parametrize("variance_type", ("fixed_small", "fixed_large"))
@pytest.mark.parametrize("custom", (False, True))
def test_ddpm_variance_and_full_chain_match_diffusers(variance_type: str, custom: bool) -> None:
    diffusers = _diffusers()
    kw = {"variance_type": variance_type, "clip_sample_range": 2.0, "prediction_type": "v_prediction"}
    ours, theirs = DDPMScheduler(**kw), diffusers.DDPMScheduler(**kw)
    if custom:
        ts = [999, 950, 700, 500, 301, 100, 20, 3]
        ours.set_timesteps(timesteps=ts)
        theirs.set_timesteps(timesteps=ts)
    theirs64 = diffusers.DDPMScheduler(**kw)
    theirs64.alphas_cumprod = ours.alphas_cumprod.clone()  # same float64 table: the formula itself must agree
    if custom:
        theirs64.set_timesteps(timesteps=ts)
    for t in ours.timesteps:
        v = ours.get_variance(t)
        assert v.dtype == torch.float64
        assert float(v) == pytest.approx(float(theirs64._get_variance(int(t))), rel=1e-12, abs=1e-30)
        # against diffusers' float32 tables, where 1 − ᾱ_t/ᾱ_{t'} cancels: |Δv| ≈ 1.5e-7 at worst
        assert float(v) == pytest.approx(float(theirs._get_variance(int(t))), rel=0, abs=3e-7)
    if custom:  # the full 1000-step chain is covered by the variance check above
        _run_parity(ours, theirs, seed=3)


def test_ddpm_explicit_timesteps_match_diffusers() -> None:
    diffusers = _diffusers()
    ts = [990, 800, 555, 300, 120, 40, 1, 0]
    # float32 stops short of the ill-conditioned steps 40 → 1 → 0; float64 runs the whole list
    for timesteps, exact in ((ts[:-2], False), (ts, True)):
        for prediction_type in PREDICTIONS:
            ours = DDPMScheduler(prediction_type=prediction_type, clip_sample=False)
            theirs = diffusers.DDPMScheduler(prediction_type=prediction_type, clip_sample=False)
            ours.set_timesteps(timesteps=timesteps)
            theirs.set_timesteps(timesteps=timesteps)
            assert torch.equal(ours.timesteps, theirs.timesteps) and ours.custom_timesteps
            _run_parity(ours, theirs, seed=5, exact=exact)


def test_ddpm_noise_rule_and_explicit_noise() -> None:
    """Noise is added iff t > 0 (diffusers' rule), also on a last step from t > 0; ``variance_noise`` = generator."""
    sched = DDPMScheduler(timestep_spacing="trailing", variance_type="fixed_large", clip_sample=False)
    sched.set_timesteps(4)  # 999, 749, 499, 249 → last step 249 → −1
    x, out = _randn(0), _randn(1)
    t_last = int(sched.timesteps[-1])
    assert t_last == 249 and sched.previous_timestep(t_last) == -1
    det = sched.step(out, t_last, x, variance_noise=torch.zeros(SHAPE)).prev_sample
    noisy = sched.step(out, t_last, x, generator=torch.Generator().manual_seed(9)).prev_sample
    z = _randn(9)
    expected_std = (1 - sched.alphas_cumprod[t_last]).sqrt().float()  # β_{t→−1} = 1 − ᾱ_t
    torch.testing.assert_close(noisy, det + expected_std * z)
    with pytest.raises(ValueError, match="at most one"):
        sched.step(out, t_last, x, generator=torch.Generator(), variance_noise=z)
    full = DDPMScheduler()
    a = full.step(out, 0, x, generator=torch.Generator().manual_seed(1)).prev_sample
    b = full.step(out, 0, x, generator=torch.Generator().manual_seed(2)).prev_sample
    assert torch.equal(a, b)  # t = 0: no noise


# ----------------------------------------------------------------------------------------------------------------
# DDIM
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exact", (False, True))
@pytest.mark.parametrize("eta", (0.0, 0.6))
@pytest.mark.parametrize("clip", (True, False))
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("kwargs, n", SPACINGS)
def test_ddim_step_matches_diffusers(
    kwargs: dict[str, Any], n: int, prediction_type: str, clip: bool, eta: float, exact: bool
) -> None:
    diffusers = _diffusers()
    kw = dict(kwargs, prediction_type=prediction_type, clip_sample=clip)
    ours, theirs = DDIMScheduler(**kw), diffusers.DDIMScheduler(**kw)
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    _run_parity(ours, theirs, ddim_eta=eta, exact=exact)


@pytest.mark.parametrize("eta", (0.0, 1.0))
def test_ddim_set_alpha_to_one_false_and_clip_range_match_diffusers(eta: float) -> None:
    diffusers = _diffusers()
    kw = {"set_alpha_to_one": False, "clip_sample_range": 0.5, "prediction_type": "sample", "steps_offset": 1}
    ours, theirs = DDIMScheduler(**kw), diffusers.DDIMScheduler(**kw)
    ours.set_timesteps(5)
    theirs.set_timesteps(5)
    # the last step, t = 1 → ᾱ_0 with x̂0 given, divides by √(1 − ᾱ_1) ≈ 0.017: float32 keeps ~4 digits
    _run_parity(ours, theirs, ddim_eta=eta, exact=True)


def test_ddim_explicit_noise_matches_diffusers_and_return_tuple() -> None:
    diffusers = _diffusers()
    ours, theirs = DDIMScheduler(clip_sample=False), diffusers.DDIMScheduler(clip_sample=False)
    ours.set_timesteps(20)
    theirs.set_timesteps(20)
    x, out, z = _randn(0), _randn(1), _randn(2)
    t = ours.timesteps[3]
    a = ours.step(out, t, x, 0.8, variance_noise=z, return_dict=False)
    b = theirs.step(out, t, x, eta=0.8, variance_noise=z, return_dict=False)
    assert isinstance(a, tuple) and len(a) == 2
    torch.testing.assert_close(a[0], b[0], **TOL)
    torch.testing.assert_close(a[1], b[1], **TOL)


def test_ddim_explicit_timesteps() -> None:
    """An evenly spaced explicit list reproduces diffusers' n-step DDIM; an uneven one chains entry to entry."""
    diffusers = _diffusers()
    ours = DDIMScheduler(prediction_type="v_prediction")
    theirs = diffusers.DDIMScheduler(prediction_type="v_prediction")
    ours.set_timesteps(timesteps=list(range(900, -1, -100)))
    theirs.set_timesteps(10)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    _run_parity(ours, theirs, ddim_eta=0.3, seed=11)

    sched = DDIMScheduler(prediction_type="epsilon", clip_sample=False)
    ts = [999, 640, 333, 90, 4]
    sched.set_timesteps(timesteps=torch.tensor(ts))
    x, out, z = _randn(0), _randn(1), _randn(2)
    for t, t_prev in zip(ts, [*ts[1:], -1], strict=True):
        a_prev = sched.alphas_cumprod[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        got = sched.step(out, t, x, 0.5, variance_noise=z)
        want = ddim_step(out, x, sched.alphas_cumprod[t], a_prev, "epsilon", 0.5, z)
        torch.testing.assert_close(got.prev_sample, want[0], rtol=0, atol=0)


def test_ddim_step_batch_equals_per_sample_steps() -> None:
    sched = DDIMScheduler(prediction_type="sample", clip_sample_range=1.5, set_alpha_to_one=False)
    t = torch.tensor([999, 500, 37, 0])
    t_prev = torch.tensor([899, -1, 12, -1])
    x, out, z = _randn(0, (4, 3, 4, 4)), _randn(1, (4, 3, 4, 4)), _randn(2, (4, 3, 4, 4))
    batch = sched.step_batch(out, t, t_prev, x, 0.7, variance_noise=z)
    assert isinstance(batch, SchedulerOutput)
    for b in range(4):
        a_prev = sched.alphas_cumprod[t_prev[b]] if t_prev[b] >= 0 else sched.final_alpha_cumprod
        prev, x0 = ddim_step(
            out[b : b + 1], x[b : b + 1], sched.alphas_cumprod[t[b]], a_prev, "sample", 0.7, z[b : b + 1], 1.5
        )
        torch.testing.assert_close(batch.prev_sample[b : b + 1], prev)
        torch.testing.assert_close(batch.pred_original_sample[b : b + 1], x0)
    # the generator path draws one (B, C, H, W) tensor, like step()
    via_gen = sched.step_batch(out, t, t_prev, x, 0.7, torch.Generator().manual_seed(4)).prev_sample
    via_noise = sched.step_batch(out, t, t_prev, x, 0.7, variance_noise=_randn(4, (4, 3, 4, 4))).prev_sample
    torch.testing.assert_close(via_gen, via_noise)
    # and it equals step() where all entries share the scheduler's pair
    sched.set_timesteps(10)
    same = sched.step_batch(out, torch.full((4,), 900), torch.full((4,), 800), x).prev_sample
    torch.testing.assert_close(same, sched.step(out, 900, x).prev_sample)


def test_ddim_step_batch_validation() -> None:
    sched = DDIMScheduler()
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match="below"):
        sched.step_batch(x, torch.tensor([5, 5]), torch.tensor([5, 4]), x)
    with pytest.raises(ValueError, match="must lie in"):
        sched.step_batch(x, torch.tensor([1000, 5]), torch.tensor([3, 4]), x)
    with pytest.raises(ValueError, match="must lie in"):
        sched.step_batch(x, torch.tensor([10, 5]), torch.tensor([-2, 4]), x)
    with pytest.raises(ValueError, match="shape"):
        sched.step_batch(x, torch.tensor([10]), torch.tensor([3]), x)


def test_ddim_step_algebra() -> None:
    """ᾱ_prev = 1 returns x̂0; η = 1 is DDPM's posterior (mean and β̃) when x̂0 is unclipped; exact data is a
    fixed point: with the true ε, x_t ↦ √ᾱ_prev x0 + √(1 − ᾱ_prev) ε."""
    x0, eps = _randn(0), _randn(1)
    a_t, a_prev = torch.tensor([0.3, 0.6]), torch.tensor([0.5, 0.9])
    x_t = a_t.sqrt().view(-1, 1, 1, 1) * x0 + (1 - a_t).sqrt().view(-1, 1, 1, 1) * eps
    for pt in PREDICTIONS:
        out = training_target(pt, x0, eps, a_t)  # type: ignore[arg-type]
        prev, pred_x0 = ddim_step(out, x_t, a_t, a_prev, pt)  # type: ignore[arg-type]
        torch.testing.assert_close(pred_x0, x0, rtol=1e-5, atol=1e-5)
        want = a_prev.sqrt().view(-1, 1, 1, 1) * x0 + (1 - a_prev).sqrt().view(-1, 1, 1, 1) * eps
        torch.testing.assert_close(prev, want, rtol=1e-5, atol=1e-5)
        final, _ = ddim_step(out, x_t, a_t, 1.0, pt)  # type: ignore[arg-type]
        torch.testing.assert_close(final, x0, rtol=1e-5, atol=1e-5)

    ddpm = DDPMScheduler(clip_sample=False)
    ddpm.set_timesteps(timesteps=[700, 400])
    x, out, z = _randn(2), _randn(3), _randn(4)
    want = ddpm.step(out, 700, x, variance_noise=z).prev_sample
    got, _ = ddim_step(out, x, ddpm.alphas_cumprod[700], ddpm.alphas_cumprod[400], "epsilon", 1.0, z)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_ddim_step_argument_checks() -> None:
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match="needs `noise`"):
        ddim_step(x, x, 0.5, 0.9, "epsilon", eta=0.5)
    with pytest.raises(ValueError, match="shape"):
        ddim_step(x, x, torch.tensor([0.5, 0.4, 0.3]), 0.9, "epsilon")
    with pytest.raises(ValueError, match="prediction_type"):
        ddim_step(x, x, 0.5, 0.9, "score")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="set_timesteps"):
        DDIMScheduler().step(x, 999, x)


# ----------------------------------------------------------------------------------------------------------------
# Construction and validation
# ----------------------------------------------------------------------------------------------------------------


def test_from_schedule_and_ecdp_guard() -> None:
    sch = NoiseSchedule.ecdp(300)
    ddim = DDIMScheduler.from_schedule(sch, prediction_type="v_prediction", timestep_spacing="trailing")
    assert ddim.config.beta_schedule == "ecdp_vp" and ddim.config.num_train_timesteps == 300
    assert ddim.noise_schedule == sch
    torch.testing.assert_close(ddim.alphas_cumprod, sch.alphas_cumprod(), rtol=0, atol=0)
    cos = DDPMScheduler.from_schedule(NoiseSchedule("cosine", 50))
    assert cos.config.beta_schedule == "squaredcos_cap_v2"
    with pytest.raises(ValueError, match="continuous VP rates"):
        DDIMScheduler(beta_schedule="ecdp_vp")  # discrete defaults 1e-4/0.02 would barely noise the data
    assert DDPMScheduler(trained_betas=torch.full((4,), 0.5), num_train_timesteps=4).noise_schedule is None


def test_config_is_frozen_and_validated() -> None:
    sched = DDIMScheduler()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.config.prediction_type = "sample"  # type: ignore[misc]
    assert "DDIMScheduler(num_train_timesteps=1000" in repr(sched)
    assert torch.equal(sched.scale_model_input(torch.ones(1)), torch.ones(1))
    for bad in (
        {"prediction_type": "score"},
        {"timestep_spacing": "karras"},
        {"beta_schedule": "sigmoid"},
        {"clip_sample_range": 0.0},
        {"trained_betas": [0.1, 0.2], "num_train_timesteps": 3},
        {"trained_betas": [0.1, 1.0], "num_train_timesteps": 2},
    ):
        with pytest.raises(ValueError):
            DDIMScheduler(**bad)
    with pytest.raises(ValueError, match="variance_type"):
        DDPMScheduler(variance_type="learned")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one"),
        ({"num_inference_steps": 10, "timesteps": [5, 3]}, "exactly one"),
        ({"num_inference_steps": 0}, r"\[1, 1000\]"),
        ({"num_inference_steps": 1001}, r"\[1, 1000\]"),
        ({"timesteps": [5, 5, 3]}, "strictly descending"),
        ({"timesteps": [3, 5]}, "strictly descending"),
        ({"timesteps": [1000, 5]}, r"\[0, 1000\)"),
        ({"timesteps": [5, -1]}, r"\[0, 1000\)"),
        ({"timesteps": []}, "non-empty"),
        ({"timesteps": [5.5, 3.0]}, "integers"),
    ],
)
def test_set_timesteps_rejects_bad_input(kwargs: dict[str, Any], match: str) -> None:
    for cls in (DDPMScheduler, DDIMScheduler):
        with pytest.raises(ValueError, match=match):
            cls().set_timesteps(**kwargs)


def test_set_timesteps_offset_overflow_and_device() -> None:
    with pytest.raises(ValueError, match="steps_offset"):
        DDIMScheduler(steps_offset=1).set_timesteps(1000)  # leading: 999 + 1 = 1000 is out of range
    sched = DDPMScheduler()
    sched.set_timesteps(timesteps=(9.0, 4.0, 0.0), device="cpu")
    assert sched.timesteps.tolist() == [9, 4, 0] and sched.timesteps.dtype == torch.long
    assert sched.num_inference_steps == 3
