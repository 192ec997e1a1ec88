"""The named sampling policies of ``adasr upscale --policy`` and ``adasr bench adaptive``.

* ``uniform``    — DDIM with N_max steps on every tile (the baseline);
* ``allocation`` — AdaSR's per-tile budgets N_p ∈ [N_min, N_max] from patch complexity;
* ``early-exit`` — uniform N_max schedules, each tile stopped by the Δx̂0 rule (or the whole image: ``exit_mode``);
* ``adasr``      — both: per-tile budgets, then the Δx̂0 rule within each tile's schedule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..sampling.policies import Policy, UniformDDIM
from .allocation import Mapping, StepAllocation
from .complexity import Calibration, Normalization
from .early_exit import EarlyExit, EarlyExitRule, ExitMode

POLICIES: tuple[str, ...] = ("uniform", "allocation", "early-exit", "adasr")


@dataclass(frozen=True)
class AdaptiveConfig:
    """Every knob of the adaptive policies, with the defaults used by the CLI and the benchmark."""

    n_max: int = 20
    n_min: int = 3
    estimator: str = "gradient"
    mapping: Mapping = "linear"
    normalize: Normalization = "calibrated"
    epsilon: float = 0.002
    patience: int = 2
    warmup: int = 4
    exit_mode: ExitMode = "tile"

    def with_(self, **changes) -> "AdaptiveConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


def make_policy(kind: str, config: AdaptiveConfig | None = None, *, calibration: Calibration | None = None,
                value_range: float = 2.0, estimator_fn=None) -> Policy:
    """The policy ``kind`` (one of :data:`POLICIES`) configured by ``config``.

    ``value_range`` is the range R of the diffused variable used to normalise Δ (2·s for a residual model with
    scale s); ``calibration`` is needed when ``config.normalize == 'calibrated'``.
    """
    c = config or AdaptiveConfig()
    if kind == "uniform":
        return UniformDDIM(c.n_max)
    if kind not in POLICIES:
        raise ValueError(f"unknown policy {kind!r}; choose from {', '.join(POLICIES)}")
    rule = EarlyExitRule(c.epsilon, c.patience, c.warmup)
    if kind == "early-exit":  # N_min and the estimator play no part
        return EarlyExit(UniformDDIM(c.n_max), rule, c.exit_mode, value_range)
    alloc = StepAllocation(c.n_min, c.n_max, c.estimator, c.mapping, c.normalize, calibration,
                           estimator_fn=estimator_fn)
    if kind == "allocation":
        return alloc
    if kind == "adasr":
        if c.exit_mode != "tile":
            raise ValueError("the 'adasr' policy stops tiles one by one (exit_mode='tile'): tiles have their own budgets")
        return EarlyExit(alloc, rule, "tile", value_range, name="adasr")
    raise ValueError(f"unknown policy {kind!r}; choose from {', '.join(POLICIES)}")


def policy_for_model(kind: str, config: AdaptiveConfig | None, model, *, tile: int, overlap: int,
                     calibration: Calibration | None = None) -> Policy:
    """:func:`make_policy` wired to a diffusion model: Δ normalised by its residual range (2·s), the
    ``uncertainty`` estimator bound to the model, and — for ``normalize='calibrated'`` — a calibration on the
    training photos with this tiling (:func:`~adasr.adaptive.complexity.default_calibration`) unless given."""
    from .complexity import default_calibration, make_estimator

    c = config or AdaptiveConfig()
    s = model.config.residual_scale if model.config.residual else 1.0
    fn = None
    if kind in ("allocation", "adasr"):
        fn = make_estimator(c.estimator, model=model)
        if c.normalize == "calibrated" and calibration is None:
            dev = next(model.parameters()).device
            calibration = default_calibration(c.estimator, tile=tile, overlap=overlap, estimator_fn=fn, device=dev)
    return make_policy(kind, c, calibration=calibration, value_range=2.0 * s, estimator_fn=fn)
