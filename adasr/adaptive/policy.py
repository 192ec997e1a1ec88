"""The named sampling policies of ``adasr upscale --policy`` and ``adasr bench adaptive``.

* ``uniform``    — DDIM with N_max steps on every tile (the baseline);
* ``allocation`` — AdaSR's per-tile budgets N_p ∈ [N_min, N_max] from patch complexity;
* ``early-exit`` — uniform N_max schedules, each tile stopped by the Δx̂0 rule (or the whole image: ``exit_mode``);
* ``adasr``      — both: per-tile budgets, then the Δx̂0 rule within each tile's schedule;
* ``adadiffsr``  — AdaDiffSR's dynamic strides (DTSS): each tile re-picks its stride after every step from its
  information-gain class, or stops when saturated (:mod:`adasr.adaptive.dtss`; needs the model, so only
  :func:`policy_for_model` builds it).

Their knobs are :class:`~adasr.config.AdaptiveConfig` (defined, torch-free, in :mod:`adasr.config` with the other
configs, so the CLI reads its options without importing torch; re-exported here). In every policy N_max is the
budget of the busiest tile: what ``steps`` / ``--steps`` means.
"""

from __future__ import annotations

from ..config import POLICIES, AdaptiveConfig
from ..diffusion.timesteps import Schedule
from ..sampling.policies import Policy, UniformDDIM
from .allocation import StepAllocation
from .complexity import Calibration
from .early_exit import EarlyExit, EarlyExitRule

__all__ = ["POLICIES", "AdaptiveConfig", "dtss_for_model", "make_policy", "policy_for_model"]


def make_policy(kind: str, config: AdaptiveConfig | None = None, *, calibration: Calibration | None = None,
                value_range: float = 2.0, estimator_fn=None, schedule: str | Schedule = "linspace") -> Policy:
    """The policy ``kind`` (one of :data:`POLICIES`) configured by ``config``, its lists from ``schedule`` (a
    :class:`~adasr.diffusion.timesteps.Schedule` or a name: every tile's N_p-step list is ``schedule``'s for N_p).
    The building blocks default to the textbook ``linspace``; :func:`adasr.upscale` and the CLI pass the package
    default (:data:`~adasr.defaults.DEFAULT_SCHEDULE`).

    ``value_range`` is the range R of the diffused variable used to normalise Δ (2·s for a residual model with
    scale s); ``calibration`` is needed when ``config.normalize == 'calibrated'``. Raises
    :class:`~adasr.config.ConfigError` (a ValueError) when ``config`` cannot drive ``kind``
    (:meth:`AdaptiveConfig.check`).
    """
    c = config or AdaptiveConfig()
    c.check(kind)
    if kind == "adadiffsr":
        raise ValueError("the adadiffsr policy needs the model (its estimates become images): use policy_for_model")
    if kind == "uniform":
        return UniformDDIM(c.n_max, schedule)
    rule = EarlyExitRule(c.epsilon, c.patience, c.warmup)
    if kind == "early-exit":  # N_min and the estimator play no part
        return EarlyExit(UniformDDIM(c.n_max, schedule), rule, c.exit_mode, value_range)
    alloc = StepAllocation(c.n_min, c.n_max, c.estimator, c.mapping, c.normalize, calibration, schedule=schedule,
                           estimator_fn=estimator_fn)
    if kind == "allocation":
        return alloc
    return EarlyExit(alloc, rule, "tile", value_range, name="adasr")


def policy_for_model(kind: str, config: AdaptiveConfig | None, model, *, tile: int, overlap: int,
                     calibration: Calibration | None = None, schedule: str | Schedule = "linspace") -> Policy:
    """:func:`make_policy` wired to a diffusion model: Δ normalised by its residual range (2·s), the
    ``uncertainty`` estimator bound to the model, and — for ``normalize='calibrated'`` — a calibration on the
    training photos with this tiling (:func:`~adasr.adaptive.complexity.default_calibration`) unless given."""
    from .complexity import default_calibration, make_estimator

    c = config or AdaptiveConfig()
    c.check(kind)  # before the (slow) calibration
    if kind == "adadiffsr":
        return dtss_for_model(c, model, schedule=schedule)
    s = model.config.residual_scale if model.config.residual else 1.0
    fn = None
    if kind in ("allocation", "adasr"):
        fn = make_estimator(c.estimator, model=model)
        if c.normalize == "calibrated" and calibration is None:
            dev = next(model.parameters()).device
            calibration = default_calibration(c.estimator, tile=tile, overlap=overlap, estimator_fn=fn, device=dev)
    return make_policy(kind, c, calibration=calibration, value_range=2.0 * s, estimator_fn=fn, schedule=schedule)


def dtss_for_model(config: AdaptiveConfig, model, *, schedule: str | Schedule = "linspace", signal: str | None = None,
                   codebook: tuple[int, ...] | None = None, gain=None, pfj: bool | None = None):
    """AdaDiffSR's :class:`~adasr.adaptive.dtss.DynamicStrides` for ``model``: N = ``config.n_max`` (an
    always-growing tile's steps), τ = ``config.tau``, the gain from ``signal`` (default ``config.gain``; the
    shipped MMLE regressor for ``regressor``), strides along ``schedule``'s shape. ``pfj`` (default: whether the
    model's network is a :class:`~adasr.adaptive.pfj.PFJUNet`) feeds each tile's gain to the network."""
    from .dtss import PAPER_CODEBOOK, DTSSConfig, DynamicStrides
    from .information_gain import GainConfig
    from .mmle import load_mmle_regressor
    from .pfj import PFJUNet

    is_pfj = isinstance(model.unet, PFJUNet)
    if pfj is None:
        pfj = is_pfj
    if pfj and not is_pfj:
        raise ValueError("pfj=True needs a model whose network is a PFJUNet (adasr.adaptive.pfj.with_pfj)")

    sig = signal or config.gain
    gain = gain or GainConfig(scale=model.config.scale)
    dc = DTSSConfig(tau=config.tau, codebook=codebook or PAPER_CODEBOOK, steps=config.n_max, signal=sig, gain=gain)
    reg = load_mmle_regressor() if sig == "regressor" else None
    return DynamicStrides(dc, base=schedule, to_image=model.output, regressor=reg, pfj=pfj)
