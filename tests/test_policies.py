"""The declared policy interface (adasr.sampling.policies.Policy): defaults, what every shipped policy declares,
and that the sampler reads no attribute a policy did not declare (no getattr probing)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

import adasr
from adasr.adaptive.allocation import StepAllocation
from adasr.adaptive.early_exit import EarlyExit
from adasr.adaptive.policy import POLICIES, AdaptiveConfig, make_policy
from adasr.sampling.policies import CONTINUE, Decision, Policy, TileState, UniformDDIM


def test_base_defaults_and_required_parts():
    class Bare(Policy):
        pass

    p = Bare()
    assert p.name == "policy" and p.reuse == () and p.memory() == {} and p.end_iteration([]) == []
    assert p.decide(TileState(0, [999]), torch.zeros(1), None) is CONTINUE
    with pytest.raises(NotImplementedError, match="plan"):
        p.plan(torch.zeros(1, 3, 8, 8), 1000)
    with pytest.raises(NotImplementedError, match="steps"):
        _ = p.steps


def test_decision_validates_its_mode():
    assert Decision(mode="decoder").mode == "decoder" and Decision().mode is None
    with pytest.raises(ValueError, match="mode"):
        Decision(mode="cheap")


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_uniform_validates_steps(bad):
    with pytest.raises(ValueError, match="steps"):
        UniformDDIM(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", POLICIES)
def test_every_named_policy_declares_the_interface(kind, make_tiny_model):
    config = AdaptiveConfig(n_max=12, n_min=2, normalize="image", gain="metrics")
    if kind == "adadiffsr":  # its estimates become images: it needs the model
        with pytest.raises(ValueError, match="policy_for_model"):
            make_policy(kind, config)
        from adasr.adaptive.policy import policy_for_model

        pol = policy_for_model(kind, config, make_tiny_model(), tile=16, overlap=4)
    else:
        pol = make_policy(kind, config)
    assert isinstance(pol, Policy)
    assert pol.name == kind and pol.steps == 12 and pol.reuse == ()
    assert isinstance(pol.memory(), dict)


def test_steps_means_the_budget_of_the_busiest_tile():
    alloc = StepAllocation(n_min=2, n_max=9, normalize="image")
    tiles = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert alloc.steps == 9 and max(len(p) for p in alloc.plan(tiles, 1000)) <= 9
    assert EarlyExit(alloc).steps == 9 and EarlyExit(UniformDDIM(7)).steps == 7
    assert UniformDDIM(7).timesteps(1000) == [999, 832, 666, 500, 333, 166, 0]


def test_no_getattr_on_policies_in_the_sampler():
    """The sampler and the upscaler read the policy only through the declared interface."""
    root = Path(inspect.getfile(adasr)).parent
    for rel in ("sampling/loop.py", "sampling/policies.py", "upscaling.py", "adaptive/early_exit.py",
                "adaptive/allocation.py"):
        tree = ast.parse((root / rel).read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "getattr"]
        assert not [ast.unparse(c) for c in calls if "pol" in ast.unparse(c) or "base" in ast.unparse(c)], rel


def test_only_the_denoiser_calls_the_network_in_sampling():
    """Within adasr/sampling/, only denoiser.py calls ``unet(...)``, ``.encode``, ``.decode`` or ``.shallow``."""
    root = Path(inspect.getfile(adasr)).parent / "sampling"
    for path in sorted(root.glob("*.py")):
        if path.name == "denoiser.py":
            continue
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.Call):
                f = ast.unparse(n.func)
                assert not (f.endswith("unet") or f.endswith((".encode", ".decode", ".shallow")) or f == "model"), \
                    f"{path.name}: {ast.unparse(n)}"
