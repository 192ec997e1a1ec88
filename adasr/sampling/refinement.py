"""Watching a sampler run: the merged current x̂0 after chosen iterations (notebook 05's refinement figure).

A consumer of :func:`~adasr.sampling.loop.iterate_tiles`: after iteration i the loop yields its
:class:`~adasr.sampling.loop.SamplerState`, and :class:`RefinementRecorder` keeps a :class:`Snapshot` of it —

* the image the sampler would return if it stopped now, ``to_image(state.current_x0())`` as uint8 (H, W, 3)
  (:meth:`~adasr.sampling.loop.SamplerState.current_x0`: each tile's current x̂0, or its x_t if it has not been
  evaluated yet, merged like the final result);
* which tiles are finished (they no longer enter the UNet batch), and each tile's UNet evaluations so far.

Iterations are numbered from 1 (the state's ``iteration`` after it: iteration 1 is the first batched UNet call).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..data import to_uint8
from .loop import SampleResult, SamplerState, run_to_end
from .tiles import MergeMode

ToImage = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Snapshot:
    """The state after one sampler iteration: the merged image (uint8 (H, W, 3)), which tiles are finished (N,),
    and how many UNet evaluations each tile has had so far (N,)."""

    iteration: int
    image: np.ndarray
    done: list[bool]
    evaluations: list[int]

    @property
    def running(self) -> int:
        return sum(not d for d in self.done)


@dataclass
class RefinementRecorder:
    """Keeps a :class:`Snapshot` after the iterations in ``at`` (all of them when ``None``).

    Call :meth:`observe` (or the recorder itself) with each state of :func:`~adasr.sampling.loop.iterate_tiles`,
    e.g. ``run_to_end(iterate_tiles(...), recorder.observe)`` or ``job.run(observe=recorder)``.

    ``to_image`` maps the merged diffused variable (1, 3, H, W) to an image in [−1, 1] (for a residual model:
    ``lambda r: model.output(r, up)``); the identity when ``None``. ``merge`` overrides the sampler's tile merge
    (``None``: the one the sampler uses for its result).
    """

    to_image: ToImage | None = None
    at: Sequence[int] | None = None
    merge: MergeMode | None = None
    snapshots: list[Snapshot] = field(default_factory=list)

    def observe(self, state: SamplerState) -> None:
        """Record ``state`` if its iteration is one of ``at``."""
        if self.at is not None and state.iteration not in self.at:
            return
        x = state.current_x0(self.merge)
        img = self.to_image(x) if self.to_image is not None else x
        self.snapshots.append(Snapshot(state.iteration, to_uint8(img), [bool(s.done) for s in state.tiles],
                                       [int(s.evaluations) for s in state.tiles]))

    __call__ = observe

    def get(self, iteration: int) -> Snapshot:
        for s in self.snapshots:
            if s.iteration == iteration:
                return s
        raise KeyError(f"no snapshot after iteration {iteration}; have {[s.iteration for s in self.snapshots]}")


def record_refinement(states: Iterable[SamplerState], to_image: ToImage | None = None,
                      at: Sequence[int] | None = None) -> tuple[SampleResult, list[Snapshot]]:
    """Run ``states`` (an :func:`~adasr.sampling.loop.iterate_tiles` generator) to the end with a
    :class:`RefinementRecorder`; returns the sampler's result and the snapshots, in iteration order."""
    recorder = RefinementRecorder(to_image, at)
    result = run_to_end(iter(states), recorder.observe)
    return result, recorder.snapshots


__all__ = ["RefinementRecorder", "Snapshot", "record_refinement"]
