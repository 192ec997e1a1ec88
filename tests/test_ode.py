"""Probability-flow ODE sampler on a Gaussian toy whose exact flow is known in closed form.

Data x0 ~ N(μ, σ0²) elementwise. Then x_s ~ N(√ᾱ_s μ, ᾱ_s σ0² + 1 − ᾱ_s) and the exact ε-predictor is

    ε*(x, s) = √(1 − ᾱ_s) (x − √ᾱ_s μ) / (ᾱ_s σ0² + 1 − ᾱ_s).

The PF-ODE moves every point along z = (x_s − √ᾱ_s μ)/√(ᾱ_s σ0² + 1 − ᾱ_s) = const, so x(s_end) and
x̂0 at s_end are known exactly from x(1).
"""

from __future__ import annotations

import math

import pytest
import torch

from adasr.diffusion.objectives import PredictionType, predict_x0, training_target
from adasr.diffusion.ode import ODEResult, beta_of_s, probability_flow_sample
from adasr.diffusion.schedulers import DDIMScheduler
from adasr.diffusion.schedules import NoiseSchedule

MU, SIGMA0 = 0.3, 0.5
PREDICTIONS: tuple[PredictionType, ...] = ("epsilon", "sample", "v_prediction")


class GaussianToy:
    """The exact network for N(μ, σ0²) data, in any parameterisation; records the timesteps it is called at."""

    def __init__(self, schedule: NoiseSchedule, prediction_type: PredictionType = "epsilon") -> None:
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.calls: list[torch.Tensor] = []

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ at (fractional) timestep t, i.e. at s = (t + 1)/T, shape (B, 1, 1, 1), float64."""
        s = (t.to(torch.float64) + 1) / self.schedule.num_train_timesteps
        return torch.exp(self.schedule.log_alpha_bar(s)).reshape(-1, 1, 1, 1)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(t.detach().clone())
        a = self.alpha_bar(t)
        var = a * SIGMA0**2 + 1 - a
        eps = ((1 - a).sqrt() * (x - a.sqrt() * MU) / var).to(x.dtype)
        x0 = predict_x0("epsilon", eps, x, a.to(x.dtype))
        return training_target(self.prediction_type, x0, eps, a.to(x.dtype))


def exact_flow(schedule: NoiseSchedule, x: torch.Tensor, s_from: float, s_to: float) -> torch.Tensor:
    """x(s_to) on the PF-ODE through x at s_from, from the invariant z."""
    a0, a1 = (torch.exp(schedule.log_alpha_bar(s)).item() for s in (s_from, s_to))
    z = (x - math.sqrt(a0) * MU) / math.sqrt(a0 * SIGMA0**2 + 1 - a0)
    return math.sqrt(a1) * MU + z * math.sqrt(a1 * SIGMA0**2 + 1 - a1)


def exact_x0_hat(schedule: NoiseSchedule, x: torch.Tensor, s: float) -> torch.Tensor:
    """E[x0 | x_s = x] = μ + σ0²√ᾱ (x − √ᾱ μ)/(ᾱσ0² + 1 − ᾱ)."""
    a = torch.exp(schedule.log_alpha_bar(s)).item()
    return MU + SIGMA0**2 * math.sqrt(a) * (x - math.sqrt(a) * MU) / (a * SIGMA0**2 + 1 - a)


def _x_T(dtype: torch.dtype = torch.float64, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=dtype)


def test_beta_of_s_closed_forms() -> None:
    s = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(beta_of_s(NoiseSchedule.ecdp(300), s), 0.1 + s * (20.0 - 0.1))
    # linear: the VP-SDE with β_min = T β_start, β_max = T β_end
    torch.testing.assert_close(beta_of_s(NoiseSchedule("linear", 1000), s), 0.1 + s * (20.0 - 0.1))
    # cosine: β(s) = π/1.008 · tan((s + 0.008)/1.008 · π/2), infinite at s = 1
    sc = s[:-1]
    expected = math.pi / 1.008 * torch.tan((sc + 0.008) / 1.008 * math.pi / 2)
    torch.testing.assert_close(beta_of_s(NoiseSchedule("cosine"), sc), expected)


@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("kind", ("ecdp_vp", "linear"))
def test_pf_ode_follows_the_exact_gaussian_flow(prediction_type: PredictionType, kind: str) -> None:
    schedule = NoiseSchedule.ecdp(1000) if kind == "ecdp_vp" else NoiseSchedule("linear", 1000)
    model = GaussianToy(schedule, prediction_type)
    x_T = _x_T()
    res = probability_flow_sample(model, x_T, schedule, prediction_type, s_end=1e-3, rtol=1e-7, atol=1e-7)
    assert isinstance(res, ODEResult)
    x_end = exact_flow(schedule, x_T, 1.0, 1e-3)
    torch.testing.assert_close(res.x_end, x_end, rtol=0, atol=1e-5)
    torch.testing.assert_close(res.sample, exact_x0_hat(schedule, x_end, 1e-3), rtol=0, atol=1e-5)
    assert torch.equal(res.sample, res.pred_original_sample_at_end)
    # both are near the s → 0 end of the flow, μ + σ0 z, but they are different tensors
    limit = exact_flow(schedule, x_T, 1.0, 0.0)
    assert (res.sample - limit).abs().max() < 0.01 and (res.x_end - limit).abs().max() < 0.01
    assert not torch.allclose(res.sample, res.x_end, rtol=0, atol=1e-6)
    assert res.nfe == len(model.calls) > 0


def test_default_tolerances_float32() -> None:
    """ECDP's settings (dopri5, rtol = atol = 1e-3) in float32: a coarse but faithful solution in few NFE."""
    schedule = NoiseSchedule.ecdp(300)
    model = GaussianToy(schedule)
    x_T = _x_T(torch.float32)
    res = probability_flow_sample(model, x_T, schedule, "epsilon")
    assert res.sample.dtype == torch.float32 and res.sample.shape == x_T.shape
    x_end = exact_flow(schedule, x_T.double(), 1.0, 1e-3)
    assert (res.sample.double() - exact_x0_hat(schedule, x_end, 1e-3)).abs().max() < 0.05
    assert 10 < res.nfe < 100
    # network calls: batch-shaped fractional timesteps t = s·T − 1 from T − 1 down to s_end·T − 1
    assert all(t.shape == (3,) and t.dtype == torch.float32 for t in model.calls)
    ts = torch.stack([t[0] for t in model.calls]).double()
    assert ts.max().item() == pytest.approx(299.0) and ts.min().item() == pytest.approx(1e-3 * 300 - 1, abs=1e-5)
    assert (ts != ts.round()).any()


def test_nfe_is_honest_and_drops_with_looser_tolerance() -> None:
    schedule = NoiseSchedule.ecdp(1000)
    nfes = []
    for tol in (1e-6, 1e-4, 1e-2):
        model = GaussianToy(schedule)
        res = probability_flow_sample(model, _x_T(), schedule, "epsilon", rtol=tol, atol=tol)
        assert res.nfe == len(model.calls)
        # dopri5: 2 calls to choose the first step, then 6 per (accepted or rejected) step, the last of which is
        # at (s_end, x_end) and is reused for x̂0 — no extra call
        assert (res.nfe - 2) % 6 == 0
        nfes.append(res.nfe)
    assert nfes[0] > nfes[1] > nfes[2] > 0


def test_clean_estimate_comes_from_the_last_evaluation_at_s_end() -> None:
    schedule = NoiseSchedule.ecdp(1000)
    model = GaussianToy(schedule, "v_prediction")
    res = probability_flow_sample(model, _x_T(), schedule, "v_prediction", s_end=0.02, clip_sample_range=0.5)
    last_t = model.calls[-1]
    assert last_t[0].item() == pytest.approx(0.02 * 1000 - 1)
    a = model.alpha_bar(last_t)
    recomputed = predict_x0("v_prediction", model(res.x_end, last_t), res.x_end, a)
    torch.testing.assert_close(res.pred_original_sample_at_end, recomputed, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(res.sample, res.pred_original_sample_at_end.clamp(-0.5, 0.5))
    # a fixed-grid method does not end on an evaluation at s_end: one more call is made and counted
    model = GaussianToy(schedule)
    res = probability_flow_sample(model, _x_T(), schedule, "epsilon", method="euler")
    assert res.nfe == len(model.calls) and model.calls[-1][0].item() == pytest.approx(1e-3 * 1000 - 1)


def test_many_step_ddim_approaches_the_ode() -> None:
    """DDIM (η = 0) is a first-order discretisation of the same ODE; on ``ecdp_vp`` its table is ᾱ(s) sampled
    at s = (t+1)/T, so with more steps it converges to the ODE's x̂0 at s = 1/T (DDIM's final x̂0 from t = 0),
    with error ∝ 1/n (measured: 0.44, 0.044, 0.0044 for n = 10, 100, 1000)."""
    T = 1000
    schedule = NoiseSchedule.ecdp(T)
    x_T = _x_T()
    ode = probability_flow_sample(GaussianToy(schedule), x_T, schedule, "epsilon", s_end=1 / T, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(ode.sample, exact_x0_hat(schedule, exact_flow(schedule, x_T, 1.0, 1 / T), 1 / T))

    sched = DDIMScheduler.from_schedule(schedule, clip_sample=False)
    model = GaussianToy(schedule)
    errors = []
    for n in (10, 100, 1000):
        timesteps = torch.linspace(T - 1, 0, n, dtype=torch.float64).round().long()  # from s = 1 to s = 1/T
        sched.set_timesteps(timesteps=timesteps)
        x = x_T.clone()
        for t in sched.timesteps:
            x = sched.step(model(x, t.reshape(1).expand(x.shape[0])), t, x).prev_sample
        errors.append((x - ode.sample).abs().max().item())
    assert errors[0] / errors[1] > 5 and errors[1] / errors[2] > 5  # first order: ~10× per 10× steps
    assert errors[2] < 1e-2


def test_argument_checks() -> None:
    schedule = NoiseSchedule.ecdp(300)
    model = GaussianToy(schedule)
    with pytest.raises(ValueError, match="s_end"):
        probability_flow_sample(model, _x_T(), schedule, "epsilon", s_end=0.0)
    with pytest.raises(ValueError, match="s_end"):
        probability_flow_sample(model, _x_T(), schedule, "epsilon", s_start=0.5, s_end=0.6)
    with pytest.raises(ValueError, match="degenerate"):
        probability_flow_sample(model, _x_T(), NoiseSchedule("cosine"), "epsilon")  # ᾱ(1) = 0
    cosine = NoiseSchedule("cosine", 1000)
    res = probability_flow_sample(GaussianToy(cosine), _x_T(), cosine, "epsilon", s_start=0.99, rtol=1e-5, atol=1e-5)
    expected = exact_x0_hat(cosine, exact_flow(cosine, _x_T(), 0.99, 1e-3), 1e-3)
    torch.testing.assert_close(res.sample, expected, rtol=0, atol=1e-3)
