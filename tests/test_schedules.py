"""Closed forms of the β / ᾱ schedules in :mod:`adasr.diffusion.schedules`."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from adasr.diffusion.schedules import (
    NoiseSchedule,
    cosine_alpha_bar,
    cosine_betas,
    ecdp_vp_betas,
    linear_betas,
    scaled_linear_betas,
    vp_log_alpha_bar,
)

KINDS = ("linear", "scaled_linear", "cosine", "squaredcos_cap_v2", "ecdp_vp")


def _schedule(kind: str, T: int = 1000) -> NoiseSchedule:
    return NoiseSchedule.ecdp(T) if kind == "ecdp_vp" else NoiseSchedule(kind, T)


def _s_of_t(T: int) -> torch.Tensor:
    """s = (t + 1)/T for t = 0..T−1, the continuous time of each discrete index."""
    return (torch.arange(T, dtype=torch.float64) + 1) / T


@pytest.mark.parametrize("kind", KINDS)
def test_tables_are_float64_monotone_and_in_unit_interval(kind: str) -> None:
    sch = _schedule(kind)
    betas, abar = sch.betas(), sch.alphas_cumprod()
    assert betas.dtype == abar.dtype == torch.float64
    assert betas.shape == abar.shape == (1000,)
    assert ((betas > 0) & (betas < 1)).all()
    assert (abar[1:] < abar[:-1]).all() and 0 < abar[-1] < abar[0] < 1
    torch.testing.assert_close(abar, torch.cumprod(1 - betas, 0), rtol=0, atol=0)


def test_linear_and_scaled_linear_closed_forms() -> None:
    T, b0, b1 = 1000, 1e-4, 0.02
    betas = linear_betas(T, b0, b1)
    t = torch.arange(T, dtype=torch.float64)
    torch.testing.assert_close(betas, b0 + (b1 - b0) * t / (T - 1), rtol=1e-12, atol=1e-15)
    sq = scaled_linear_betas(T, 0.00085, 0.012)
    torch.testing.assert_close(sq.sqrt(), math.sqrt(0.00085) + (math.sqrt(0.012) - math.sqrt(0.00085)) * t / (T - 1))
    assert sq[0].item() == pytest.approx(0.00085) and sq[-1].item() == pytest.approx(0.012)


def test_cosine_alpha_bar_closed_form() -> None:
    """Nichol & Dhariwal: ᾱ_t = f((t+1)/T)/f(0), f(s) = cos²((s + 0.008)/1.008 · π/2), until β hits 0.999."""
    T = 1000
    assert cosine_alpha_bar(0.5).item() == pytest.approx(math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) ** 2)
    assert cosine_alpha_bar(1.0).item() == pytest.approx(0.0, abs=1e-30)
    betas = cosine_betas(T)
    assert betas.max().item() == pytest.approx(0.999)  # the cap is reached only at the very end
    assert (betas[:-1] < 0.999).all()
    sch = NoiseSchedule("cosine", T)
    expected = cosine_alpha_bar(_s_of_t(T)) / cosine_alpha_bar(0.0)
    torch.testing.assert_close(sch.alphas_cumprod()[:-1], expected[:-1], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(torch.exp(sch.log_alpha_bar(_s_of_t(T)[:-1])), expected[:-1], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(NoiseSchedule("squaredcos_cap_v2", T).betas(), betas, rtol=0, atol=0)


def test_ecdp_vp_closed_form() -> None:
    """ᾱ(s) = exp(−∫₀ˢ β(u) du), β(u) = β_min + u(β_max − β_min); the table samples it at s = (t+1)/T."""
    bmin, bmax = 0.1, 20.0
    s = torch.linspace(0, 1, 2001, dtype=torch.float64)
    integral = torch.cumulative_trapezoid(bmin + s * (bmax - bmin), s)  # exact for a linear integrand
    torch.testing.assert_close(vp_log_alpha_bar(s[1:], bmin, bmax), -integral, rtol=1e-12, atol=1e-12)
    assert vp_log_alpha_bar(1.0).item() == pytest.approx(-(bmin + bmax) / 2)

    for T in (300, 1000):
        sch = NoiseSchedule.ecdp(T)
        assert (sch.kind, sch.beta_start, sch.beta_end) == ("ecdp_vp", 0.1, 20.0)
        torch.testing.assert_close(sch.alphas_cumprod(), torch.exp(vp_log_alpha_bar(_s_of_t(T))), rtol=1e-12, atol=0)
        torch.testing.assert_close(sch.betas(), ecdp_vp_betas(T), rtol=0, atol=0)
    assert NoiseSchedule.ecdp().num_train_timesteps == 300


def test_linear_continuous_version_approximates_the_table() -> None:
    """DDPM's linear β is the VP-SDE with β_min = T·β_start, β_max = T·β_end (Song et al. 2021, app. B)."""
    T = 1000
    sch = NoiseSchedule("linear", T)
    discrete = sch.alphas_cumprod()
    continuous = torch.exp(sch.log_alpha_bar(_s_of_t(T)))
    assert (discrete - continuous).abs().max().item() < 1e-3
    log_d, log_c = discrete.log(), continuous.log()
    # relative error of log ᾱ (the integrated noise rate) below 1% once past the first tenth of the chain
    assert ((log_d - log_c).abs() / log_d.abs())[T // 10 :].max().item() < 0.01
    torch.testing.assert_close(sch.log_alpha_bar(_s_of_t(T)), vp_log_alpha_bar(_s_of_t(T), 0.1, 20.0))


def test_scaled_linear_continuous_version_interpolates_the_table() -> None:
    T = 1000
    sch = NoiseSchedule("scaled_linear", T, 0.00085, 0.012)
    log_abar = sch.alphas_cumprod().log()
    torch.testing.assert_close(sch.log_alpha_bar(_s_of_t(T)), log_abar, rtol=1e-12, atol=1e-12)
    mid = sch.log_alpha_bar((torch.arange(T - 1, dtype=torch.float64) + 1.5) / T)
    torch.testing.assert_close(mid, (log_abar[:-1] + log_abar[1:]) / 2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ("linear", "cosine", "ecdp_vp"))
def test_continuous_alpha_bar_starts_at_one_and_decreases(kind: str) -> None:
    sch = _schedule(kind)
    assert sch.log_alpha_bar(0.0).item() == pytest.approx(0.0, abs=1e-12)
    s = torch.linspace(0, 0.999, 500, dtype=torch.float64)
    assert (sch.log_alpha_bar(s).diff() < 0).all()


def test_noise_schedule_validation_and_immutability() -> None:
    with pytest.raises(ValueError, match="unknown beta schedule"):
        NoiseSchedule("sigmoid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        NoiseSchedule("linear", 1)
    sch = NoiseSchedule()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sch.kind = "cosine"  # type: ignore[misc]
