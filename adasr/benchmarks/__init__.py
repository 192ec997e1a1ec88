"""``adasr bench``: measured comparisons, every arm in one run, printed as tables (and JSON with ``--json``).

* ``quality`` (:mod:`~adasr.benchmarks.quality`) — the shipped model against bicubic on the held-out images
  (256×256 centre crops of astronaut, camera, moon; LR = bicubic ↓4 with antialias): PSNR on Y (BT.601, shave 4),
  SSIM on Y, LPIPS (AlexNet v0.1).
* ``speed`` (:mod:`~adasr.benchmarks.speed`) — wall clock to upscale a 128×128 image ×4 with the default sampler,
  tiled vs whole image, same run.
* ``adaptive`` (:mod:`~adasr.benchmarks.adaptive`) — AdaSR's allocation / early exit / both against uniform DDIM
  and equal-budget uniform controls.
* ``quant`` (:mod:`~adasr.benchmarks.quant`) — AdaBM vs fixed-bit quantization of the shipped EDSR, real int8
  latency, the UNet's bit mapping.
* ``schedules`` (:mod:`~adasr.benchmarks.schedules`) — the optimised sampling schedules (``perceptual``,
  ``balanced``, ``fidelity``) against ``linspace`` at the same N = 1 … 10 and against ``linspace`` N = 20, on the
  held-out crops and the whole 512×512 astronaut, with the spread over seeds; wall clock of the new default against
  the old DDIM-10 ``linspace`` (``--figure``: LPIPS vs N and the perception–distortion plane).
* ``spread`` (:mod:`~adasr.benchmarks.spread`) — the small differences notebooks 05, 06 and 10 conclude from
  (allocation and early exit vs their equal-budget controls, AdaBM vs fixed bits on the UNet), repeated over
  3 seeds × 12 crops (the quadrants of the held-out photos): mean, spread and whether each conclusion survives.

:mod:`~adasr.benchmarks.runner` is what they share: the parser, the table on stdout, progress lines on stderr,
``--json FILE``, and the machine and precision recorded in every result.
"""

from .runner import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
