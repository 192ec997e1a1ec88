"""The hindsight oracle: the best per-tile choice of schedule, chosen knowing the HR — the headroom of adaptivity.

The tile sampler (:mod:`adasr.sampling.loop`) evolves every tile independently and merges them only at the end, so
one uniform run of a schedule at N steps gives every tile's result for that (schedule, N). Measuring a whole
**family** of options o = (family, N) — by default uniform ``linspace`` N = 1 … 20 and the optimised ``balanced``
preset N = 1 … 10 — gives, for each tile k, a quality curve over the options. Knowing the HR, the best per-tile
choice at a total budget is a **multiple-choice knapsack**::

    minimise   Σ_k v[k, o_k]          over one option o_k per tile
    subject to Σ_k c[k, o_k] ≤ B      (c[k, o] = N_o tile-evaluations; B = round(b · n_tiles) for a mean budget b)

with v = the tile's LPIPS against its HR tile (``metric='lpips'``) or its MSE on Y (``metric='psnr_y'``: the sum
of the tiles' MSE is what the image's PSNR aggregates; recovered from the tile PSNR as 255²·10^(−PSNR/10)). The
chosen tiles' images are merged into a **real image** (below), and that image is what is scored — against the HR, with
PSNR-Y / SSIM-Y (shave 4) and LPIPS exactly as the benchmarks score a sampler's output — so no per-tile policy that
picks among these options (seeded as here) can beat this frontier on the per-tile objective, and its image metrics
show what that is worth.

Caveats, stated once: (1) the knapsack minimises the *sum of per-tile* LPIPS, a proxy: the merged image's LPIPS
(overlaps blended, LPIPS averaged spatially over the whole image) is close to but not guaranteed to be the best
reachable, so "the frontier no per-tile policy can beat" holds exactly for the proxy and approximately for the image
metric. (2) Each tile's result is the one it has in the *uniform* run of its option. With η = 0 (``linspace``, and
the ``balanced`` preset except N = 3 … 7, where η = 0.5 or 1) a tile's trajectory depends only on its own noise and
list, so the same tile in a mixed run is the same (up to bf16 kernels choosing another blocking for another batch
size); with η > 0 the sampler draws z for the batch of running tiles, so a mixed run would draw other z for a tile —
the oracle image is then the output of a sampler that seeds each tile's noise per tile, equally real but not
bit-identical to :func:`~adasr.sampling.loop.sample_tiles` with a mixed plan.

**Merging in image space.** The sampler merges the diffused variable x̂0 (Gaussian weights, normalised,
:meth:`~adasr.sampling.tiles.TileGrid.merge`) and then converts, HR = clamp(up + x̂0/s, −1, 1)
(:meth:`~adasr.srmodel.SRDiffusion.output`). The oracle merges the tiles' *images* instead, because different
tiles come from different runs. Per pixel p with normalised weights ŵ_k(p) (Σ_k ŵ_k = 1) of the tiles covering it
and up_k(p) = up(p) (the tiles of the condition are cuts of one image)::

    Σ_k ŵ_k (up + x̂0_k/s) = up + (Σ_k ŵ_k x̂0_k)/s        (the unclamped output is affine in x̂0 given up)

so merging the **unclamped** tile images u_k = up_k + x̂0_k/s (:func:`tile_image_values`) and clamping after the
merge is the sampler's image exactly (up to float rounding). Merging *clamped* tile images is not: clamp is not
affine, and clamp(Σ ŵ_k u_k) − Σ ŵ_k clamp(u_k) vanishes where every covering u_k is in [−1, 1] (or all are ≥ 1, or
all ≤ −1), and is bounded in general by Σ_k ŵ_k·dist(u_k, [−1, 1]) (clamp is 1-Lipschitz). So the stored tile
images are the unclamped u_k (float16 by default to bound memory: a 512² image has 25 tiles × 30 options), clamped
only to score a tile alone or after merging; :attr:`TileCurves.merge_check` records, per option, the largest uint8
difference between the sampler's own image and the image-space merge of the stored tiles (0, or 1 where float16
rounding moves a value across a rounding boundary). ``tests/test_oracle.py`` checks the identity and the bound.

**Per-tile metrics.** Each tile's image (clamped, rounded to uint8 as :func:`~adasr.data.to_uint8`) is scored
against the HR tile at the same window: LPIPS on the whole tile (batched over the tiles); PSNR-Y with the image
metric's shave of 4 applied only to the tile edges that lie on the image border (an interior edge is not a border
of the upsampled image, so nothing is cut there): the tile's PSNR-Y is over exactly the pixels of that tile that the
image's PSNR-Y (shave 4) counts. Windows of a padded condition beyond the (H, W) of the output are left out.

**Headroom** (:func:`headroom`): (a) at each oracle point, the cost of the best uniform schedule reaching the
same image LPIPS — on each family's piecewise-linear curve of LPIPS against N (linear interpolation in N is the
equal-budget mixture of :mod:`adasr.adaptive.equal_budget`), the smallest N at which the curve reaches that LPIPS
(LPIPS is not monotone in N, so "equal LPIPS" means the first crossing, not an inverse function), the minimum over
families — and the cost ratio (that N) / (the oracle's mean steps actually used); (b) at equal budget b, the
oracle's LPIPS minus the best uniform LPIPS at cost ≤ b (and PSNR-Y / SSIM-Y differences), the best uniform being
the best point of any family's curve over N ∈ [N_min, b] (and, for reference, the curves' value at exactly b).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..defaults import DEFAULT_OVERLAP, DEFAULT_TILE
from ..sampling.tiles import MergeMode, TileGrid
from .equal_budget import uniform_at

#: The oracle's option families by default: uniform ``linspace`` N = 1 … 20, the ``balanced`` preset N = 1 … 10.
DEFAULT_FAMILIES: dict[str, tuple[int, ...]] = {"linspace": tuple(range(1, 21)), "balanced": tuple(range(1, 11))}
#: The mean budgets (tile-evaluations per tile) of :func:`run_oracle` by default.
DEFAULT_MEAN_BUDGETS: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 10)
#: The image metric's border shave (×4 SR), applied by the per-tile PSNR-Y to the tile edges on the image border.
SHAVE = 4
#: The oracle objectives: per-tile LPIPS, or per-tile MSE on Y (what the image's PSNR-Y aggregates).
METRICS: tuple[str, ...] = ("lpips", "psnr_y")
IMAGE_METRICS: tuple[str, ...] = ("lpips", "psnr_y", "ssim_y")


# --------------------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One option of a tile: N steps of the schedule ``family`` (a name :func:`~adasr.diffusion.timesteps.get_schedule`
    accepts); it costs N tile-evaluations."""

    family: str
    n: int

    @property
    def cost(self) -> int:
        return int(self.n)

    @property
    def label(self) -> str:
        return f"{self.family}-{self.n}"


def family_options(families: Mapping[str, Iterable[int]] | Sequence[Option] | None = None) -> list[Option]:
    """The options of ``families`` ({family: its N}, default :data:`DEFAULT_FAMILIES`) in order, family by family;
    a list of :class:`Option` is returned as it is. Duplicates are refused (ValueError)."""
    if families is None:
        families = DEFAULT_FAMILIES
    if isinstance(families, Mapping):
        opts = [Option(str(f), int(n)) for f, ns in families.items() for n in ns]
    else:
        opts = [o if isinstance(o, Option) else Option(str(o[0]), int(o[1])) for o in families]
    if not opts:
        raise ValueError("the oracle needs at least one option")
    if len(set(opts)) != len(opts):
        raise ValueError(f"duplicate options in {[o.label for o in opts]}")
    if any(o.n < 1 for o in opts):
        raise ValueError("every option needs N >= 1 steps")
    return opts


# --------------------------------------------------------------------------------------------------- tile images
def tile_image_values(model: Any, x0: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """The **unclamped** image of clean samples: up + x̂0/s (residual model) or x̂0 (plain), shapes (B, 3, h, w).

    :meth:`~adasr.srmodel.SRDiffusion.output` is this clamped to [−1, 1]; it is affine in x̂0 given up, so merging
    these values and clamping afterwards equals the sampler's merge-then-convert (module docstring)."""
    c = model.config
    return up + x0 / c.residual_scale if c.residual else x0


def merge_tile_images(grid: TileGrid, tiles: torch.Tensor, size: tuple[int, int] | None = None,
                      merge: MergeMode = "gaussian") -> np.ndarray:
    """The image of unclamped tile images ``tiles`` (n_tiles, 3, h, w): merged by ``grid`` (in float32), cropped to
    ``size`` (H, W) (the output before padding; default the grid's), clamped to [−1, 1], rounded to uint8
    (H, W, 3) as :func:`~adasr.data.to_uint8`."""
    from ..data import to_uint8

    H, W = size or (grid.height, grid.width)
    img = grid.merge(tiles.float(), merge)[:, :, :H, :W]
    return to_uint8(img.clamp(-1, 1))


def _tile_window(grid: TileGrid, k: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of tile k inside the (H, W) output (a padded grid can stick out of it)."""
    t, l = grid.positions[k]
    H, W = size
    return t, l, min(t + grid.tile_h, H), min(l + grid.tile_w, W)


def score_tiles(tiles: torch.Tensor, grid: TileGrid, hr: np.ndarray, *, size: tuple[int, int] | None = None,
                shave: int = SHAVE, lpips_model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile (LPIPS, PSNR-Y), each (n_tiles,), of unclamped tile images ``tiles`` (n_tiles, 3, h, w) against
    the uint8 HR (H, W, 3) at the tiles' windows.

    A tile's image is clamped and rounded to uint8 (as the saved image would be). LPIPS (AlexNet, inputs
    u8/127.5 − 1 as :func:`~adasr.lpips.lpips_distance`) is over the tile's window inside (H, W), one batched call per
    window shape. PSNR-Y (:func:`~adasr.metrics.psnr_y`, shave 0) is over the window intersected with the image's
    shaved region [shave, H − shave) × [shave, W − shave): the image metric's border shave, cut only where a tile
    edge lies on the image border."""
    from ..data import to_tensor, to_uint8
    from ..lpips import cached_lpips
    from ..metrics import psnr_y

    H, W = size or hr.shape[:2]
    if hr.shape[:2] != (H, W):
        raise ValueError(f"HR is {hr.shape[:2]}, the output {(H, W)}")
    net = lpips_model if lpips_model is not None else cached_lpips()
    n = tiles.shape[0]
    lp, ps = np.empty(n), np.empty(n)
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for k in range(n):
        t, l, b, r = _tile_window(grid, k, (H, W))
        a = to_uint8(tiles[k, :, : b - t, : r - l].float())
        ref = hr[t:b, l:r]
        t2, l2, b2, r2 = max(t, shave), max(l, shave), min(b, H - shave), min(r, W - shave)
        if b2 <= t2 or r2 <= l2:
            raise ValueError(f"tile {k} has no pixel inside the image's shaved region")
        ps[k] = psnr_y(a[t2 - t : b2 - t, l2 - l : r2 - l], ref[t2 - t : b2 - t, l2 - l : r2 - l], shave=0)
        groups.setdefault(a.shape[:2], []).append((k, a, ref))
    with torch.inference_mode():
        for rows in groups.values():
            x = torch.cat([to_tensor(a) for _, a, _ in rows])
            y = torch.cat([to_tensor(ref) for _, _, ref in rows])
            d = net(x, y).float().cpu().numpy()
            for (k, _, _), v in zip(rows, d):
                lp[k] = float(v)
    return lp, ps


def image_metrics(img: np.ndarray, hr: np.ndarray) -> dict[str, float]:
    """PSNR-Y and SSIM-Y (BT.601, shave 4) and LPIPS (AlexNet) of uint8 (H, W, 3) ``img`` against ``hr`` — the
    benchmarks' scoring of a sampler's output."""
    from ..lpips import lpips_distance
    from ..metrics import psnr_y, ssim_y

    return {"lpips": lpips_distance(img, hr), "psnr_y": psnr_y(img, hr, shave=SHAVE),
            "ssim_y": ssim_y(img, hr, shave=SHAVE)}


# --------------------------------------------------------------------------------------------------- tile curves
@dataclass
class TileCurves:
    """Every tile's quality under every option, for one image (:func:`measure_tile_curves`).

    Shapes (n_tiles = len(grid), n_opts = len(options)):

    * ``lpips``, ``psnr_y``: float (n_tiles, n_opts) — tile k's LPIPS and PSNR-Y against its HR tile under option o
      (:func:`score_tiles`: PSNR-Y shaved only on image-border edges);
    * ``tile_images``: (n_opts, n_tiles, 3, tile_h, tile_w), float16 by default — the unclamped tile images
      up_k + x̂0_k/s of each option's run (module docstring: why unclamped);
    * ``grid``: the tiling of the (padded) condition; ``size`` the output (H, W) before padding; ``hr`` uint8 (H, W, 3);
    * ``seconds`` wall clock of the whole measurement, ``tile_evaluations`` UNet tile-evaluations spent (an option
      whose run is identical to an earlier one — same timesteps and η — is not run again: ``same_as[o]`` is that
      option's index, else None), ``option_seconds`` each run's seconds (0 for a reused one);
    * ``merge_check``: per option, max |uint8 difference| between the sampler's own image and
      :func:`merge_tile_images` of the stored tiles (the image-space merge; 0 or 1, module docstring).
    """

    options: list[Option]
    lpips: np.ndarray
    psnr_y: np.ndarray
    tile_images: torch.Tensor
    grid: TileGrid
    hr: np.ndarray
    size: tuple[int, int]
    merge: MergeMode = "gaussian"
    seconds: float = 0.0
    tile_evaluations: int = 0
    option_seconds: list[float] = field(default_factory=list)
    same_as: list[int | None] = field(default_factory=list)
    merge_check: list[int] = field(default_factory=list)
    _image_scores: dict[tuple[int, ...], dict[str, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n, m = len(self.grid), len(self.options)
        for name in ("lpips", "psnr_y"):
            a = np.asarray(getattr(self, name), dtype=float)
            if a.shape != (n, m):
                raise ValueError(f"{name} must be (n_tiles, n_opts) = {(n, m)}, got {a.shape}")
            setattr(self, name, a)
        if tuple(self.tile_images.shape[:2]) != (m, n) or tuple(self.tile_images.shape[-2:]) != (
                self.grid.tile_h, self.grid.tile_w):
            raise ValueError(f"tile_images must be ({m}, {n}, C, {self.grid.tile_h}, {self.grid.tile_w}), got "
                             f"{tuple(self.tile_images.shape)}")
        self.size = (int(self.size[0]), int(self.size[1]))
        if tuple(self.hr.shape[:2]) != self.size:
            raise ValueError(f"HR is {self.hr.shape[:2]}, the output {self.size}")
        if not self.same_as:
            self.same_as = [None] * m

    @property
    def n_tiles(self) -> int:
        return len(self.grid)

    @property
    def n_options(self) -> int:
        return len(self.options)

    @property
    def costs(self) -> np.ndarray:
        """int (n_tiles, n_opts): the cost of each option for each tile (N tile-evaluations; the same for all tiles)."""
        return np.tile(np.array([o.cost for o in self.options], dtype=np.int64), (self.n_tiles, 1))

    def values(self, metric: str = "lpips") -> np.ndarray:
        """The knapsack's values (n_tiles, n_opts), lower is better: LPIPS, or for ``psnr_y`` the tile's MSE on Y,
        255²·10^(−PSNR/10)."""
        if metric == "lpips":
            return self.lpips.copy()
        if metric == "psnr_y":
            return 255.0**2 * 10.0 ** (-self.psnr_y / 10.0)
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")

    def select(self, options: Sequence[int]) -> "TileCurves":
        """The curves restricted to the option indices ``options`` (e.g. one family)."""
        idx = [int(o) for o in options]
        remap = {o: i for i, o in enumerate(idx)}
        return replace(self, options=[self.options[o] for o in idx], lpips=self.lpips[:, idx],
                       psnr_y=self.psnr_y[:, idx], tile_images=self.tile_images[idx],
                       option_seconds=[self.option_seconds[o] for o in idx] if self.option_seconds else [],
                       same_as=[remap.get(self.same_as[o]) if self.same_as[o] is not None else None for o in idx],
                       merge_check=[self.merge_check[o] for o in idx] if self.merge_check else [],
                       _image_scores={})

    def image(self, choice: Sequence[int]) -> np.ndarray:
        """The real image of a per-tile choice (option index per tile, (n_tiles,)): the chosen tiles' unclamped
        images merged in image space (:func:`merge_tile_images`), uint8 (H, W, 3)."""
        ch = np.asarray(choice, dtype=np.int64)
        if ch.shape != (self.n_tiles,) or ch.min() < 0 or ch.max() >= self.n_options:
            raise ValueError(f"choice must be {self.n_tiles} option indices in [0, {self.n_options}), got {ch}")
        tiles = self.tile_images[torch.from_numpy(ch), torch.arange(self.n_tiles)]
        return merge_tile_images(self.grid, tiles, self.size, self.merge)

    def score(self, choice: Sequence[int]) -> dict[str, float]:
        """:func:`image_metrics` of :meth:`image` (cached per choice; a reused option counts as the one it copies)."""
        key = tuple(int(c) if self.same_as[int(c)] is None else int(self.same_as[int(c)]) for c in choice)
        if key not in self._image_scores:
            self._image_scores[key] = image_metrics(self.image(key), self.hr)
        return dict(self._image_scores[key])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no images): the options, the per-tile metric tables [tile][option], the cost."""
        return {"options": [[o.family, o.n] for o in self.options], "tiles": self.n_tiles,
                "tile_size": [self.grid.tile_h, self.grid.tile_w], "size": list(self.size),
                "positions": [list(p) for p in self.grid.positions],
                "tile_lpips": _json(self.lpips), "tile_psnr_y": _json(self.psnr_y), "seconds": self.seconds,
                "tile_evaluations": self.tile_evaluations, "option_seconds": list(self.option_seconds),
                "same_as": list(self.same_as), "merge_check_uint8": list(self.merge_check)}


def measure_tile_curves(model: Any, hr_uint8: np.ndarray,
                        options: Sequence[Option] | Mapping[str, Iterable[int]] | None = None, *,
                        tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, seed: int = 0,
                        precision: str | None = None, eta: float | None = None, merge: MergeMode = "gaussian",
                        store_dtype: torch.dtype = torch.float16, progress: bool = False) -> TileCurves:
    """Run one uniform sampler run per option over the whole image and score every tile (:class:`TileCurves`).

    The benchmarks' conventions (:mod:`adasr.benchmarks.adaptive`): LR = bicubic ↓s (antialias) of the HR
    (:func:`~adasr.data.downscale`), and the run is :func:`~adasr.upscaling.prepare_upscale` with
    ``UniformDDIM(N, family)`` — up(LR) padded to the UNet's multiple, η = ``eta`` or else the schedule's own η at
    N (a preset carries its η; ``linspace`` has 0), ``precision`` as ``upscale_tensor`` (None: ``$ADASR_PRECISION``
    or auto) — i.e. :func:`~adasr.sampling.loop.iterate_tiles` to the end. Each tile's x̂0 (n_tiles, 3, h, w) becomes
    its unclamped image with its own cut of the condition (:func:`tile_image_values`), is stored as
    ``store_dtype`` and scored (:func:`score_tiles`, LPIPS batched over the tiles). ``options``: a list of
    :class:`Option` or {family: N values} (default :data:`DEFAULT_FAMILIES`). ``progress``: a tqdm bar over options.
    """
    from tqdm.auto import tqdm

    from ..data import downscale, to_tensor, to_uint8
    from ..diffusion.timesteps import get_schedule
    from ..lpips import cached_lpips
    from ..sampling.policies import UniformDDIM
    from ..upscaling import prepare_upscale

    opts = family_options(options)
    hr = np.ascontiguousarray(np.asarray(hr_uint8))
    if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"hr_uint8 must be a uint8 (H, W, 3) array, got {hr.dtype} {hr.shape}")
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    lr = downscale(to_tensor(hr), model.config.scale)
    net = cached_lpips()
    T = model.num_train_timesteps
    schedules: dict[str, Any] = {}
    runs: dict[tuple, int] = {}
    images: list[torch.Tensor] = []
    lp, ps, secs, same, check = [], [], [], [], []
    evals = 0
    grid: TileGrid | None = None
    size: tuple[int, int] = (0, 0)
    for i, o in enumerate(tqdm(opts, desc="oracle options", leave=False, disable=not progress)):
        sched = schedules.setdefault(o.family, get_schedule(o.family))
        policy = UniformDDIM(o.n, sched)
        sig = (tuple(policy.timesteps(T)), float(eta if eta is not None else (sched.eta_for(o.n) or 0.0)))
        if sig in runs:
            j = runs[sig]
            images.append(images[j])
            lp.append(lp[j])
            ps.append(ps[j])
            secs.append(0.0)
            same.append(j)
            check.append(check[j])
            continue
        job = prepare_upscale(lr, model=model, policy=policy, tile=tile, overlap=overlap, seed=seed, eta=eta,
                              precision=precision, device=device)
        res = job.run()
        sample = res.sample
        grid, size = sample.grid, job.size
        cond_tiles = grid.split(job.cond.float())
        u = tile_image_values(job.model, sample.tile_x0.float(), cond_tiles).cpu()
        stored = u.to(store_dtype)
        check.append(int(np.abs(merge_tile_images(grid, stored, size, merge).astype(np.int16)
                                - to_uint8(res.image).astype(np.int16)).max()))
        a, b = score_tiles(stored, grid, hr, size=size, lpips_model=net)
        images.append(stored)
        lp.append(a)
        ps.append(b)
        secs.append(float(res.report.seconds))
        same.append(None)
        evals += int(res.report.tile_evaluations)
        runs[sig] = i
    assert grid is not None
    return TileCurves(opts, np.stack(lp, 1), np.stack(ps, 1), torch.stack(images), grid, hr, size, merge,
                      time.perf_counter() - t0, evals, secs, same, check)


# ------------------------------------------------------------------------------------------------------ knapsack
@dataclass(frozen=True)
class KnapsackSolution:
    """The multiple-choice knapsack solved for every total budget 0 … max_budget (:func:`multiple_choice_knapsack`).

    ``best[B]`` (max_budget + 1,): the least Σ_k values[k, o_k] with Σ_k costs[k, o_k] ≤ B (+∞: no choice fits);
    ``table[i, B]`` (n_tiles, max_budget + 1): the option of tile i in an optimal choice for tiles 0 … i within B
    (−1: infeasible). Unpacks as ``best, table = solution``; :meth:`choose` gives the choice at a budget.
    """

    best: np.ndarray
    table: np.ndarray
    costs: np.ndarray
    values: np.ndarray
    tol: float = 1e-12

    def __iter__(self):
        return iter((self.best, self.table))

    @property
    def max_budget(self) -> int:
        return len(self.best) - 1

    def feasible(self, budget: int) -> bool:
        return bool(np.isfinite(self.best[min(int(budget), self.max_budget)]))

    def choose(self, budget: int) -> np.ndarray:
        """The option index per tile (n_tiles,) of an optimal choice within ``budget`` (capped at max_budget).

        Ties prefer lower cost: the walk back starts from the smallest B' ≤ budget whose optimum equals (within
        ``tol``) the optimum at ``budget``, so no optimal choice costs less than the one returned; inside the table,
        equal values prefer the cheaper option, then the lower index. Raises ValueError when nothing fits."""
        B = min(int(budget), self.max_budget)
        if B < 0 or not np.isfinite(self.best[B]):
            raise ValueError(f"no choice fits in budget {budget} (the cheapest costs {int(self.costs.min(1).sum())})")
        B = int(np.flatnonzero(self.best[: B + 1] <= self.best[B] + self.tol)[0])
        n = self.table.shape[0]
        choice = np.empty(n, dtype=np.int64)
        for i in range(n - 1, -1, -1):
            j = int(self.table[i, B])
            if j < 0:  # cannot happen for a feasible B (the table was filled on the same values)
                raise AssertionError("inconsistent knapsack table")
            choice[i] = j
            B -= int(self.costs[i, j])
        return choice

    def cost_of(self, choice: Sequence[int]) -> int:
        return int(sum(self.costs[i, j] for i, j in enumerate(choice)))

    def value_of(self, choice: Sequence[int]) -> float:
        return float(sum(self.values[i, j] for i, j in enumerate(choice)))


def multiple_choice_knapsack(costs: np.ndarray, values: np.ndarray, max_budget: int, *,
                             tol: float = 1e-12) -> KnapsackSolution:
    """Exact multiple-choice knapsack for every total budget B = 0 … ``max_budget`` at once (minimisation).

    ``costs`` int (n_tiles, n_opts) ≥ 0, ``values`` float (n_tiles, n_opts) (+∞ forbids an option): pick one
    option per tile minimising Σ values subject to Σ costs ≤ B. Dynamic programme over the tiles, with
    F_0(B) = 0 for all B ≥ 0 (so F is "within B", non-increasing in B)::

        F_i(B) = min_{o : c[i,o] ≤ B}  F_{i−1}(B − c[i,o]) + v[i,o]

    O(n_tiles · n_opts · max_budget) (vectorised over B). Deterministic tie-breaking: values within ``tol`` of the
    minimum count as equal, and among them the cheaper option, then the lower index, is kept; :meth:`choose`
    prefers the cheapest optimal total (:class:`KnapsackSolution`)."""
    c = np.asarray(costs)
    v = np.asarray(values, dtype=np.float64)
    if c.ndim != 2 or c.shape != v.shape or c.shape[1] == 0:
        raise ValueError(f"costs and values must be (n_tiles, n_opts) of the same shape, got {c.shape}, {v.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        if not np.all(np.equal(np.mod(c, 1), 0)):
            raise ValueError("costs must be integers")
    c = c.astype(np.int64)
    if (c < 0).any():
        raise ValueError("costs must be >= 0")
    if np.isnan(v).any() or np.isneginf(v).any():
        raise ValueError("values must not be NaN or −∞")
    Bmax = int(max_budget)
    if Bmax < 0:
        raise ValueError(f"max_budget must be >= 0, got {max_budget}")
    n, m = c.shape
    prev = np.zeros(Bmax + 1)
    table = np.full((n, Bmax + 1), -1, dtype=np.int64)
    cols = np.arange(Bmax + 1)
    for i in range(n):
        cand = np.full((m, Bmax + 1), np.inf)
        for j in range(m):
            cj = int(c[i, j])
            if cj <= Bmax and np.isfinite(v[i, j]):
                cand[j, cj:] = prev[: Bmax + 1 - cj] + v[i, j]
        low = cand.min(axis=0)
        ok = np.isfinite(cand) & (cand <= low + tol)
        order = np.lexsort((np.arange(m), c[i]))  # by cost, then index
        first = order[np.argmax(ok[order], axis=0)]
        feasible = np.isfinite(low)
        table[i] = np.where(feasible, first, -1)
        prev = np.where(feasible, cand[first, cols], np.inf)
    return KnapsackSolution(prev, table, c, v, tol)


# ------------------------------------------------------------------------------------------------------ frontier
def total_budget(mean_budget: float, n_tiles: int) -> int:
    """B = round(b · n_tiles): the total tile-evaluations of a mean budget b per tile (exact for an integer b; a
    fractional b may allow up to 0.5/n_tiles more per tile; :func:`oracle_frontier` reports the mean it used)."""
    return int(round(float(mean_budget) * n_tiles))


def oracle_frontier(curves: TileCurves, mean_budgets: Sequence[float] = DEFAULT_MEAN_BUDGETS,
                    metric: str = "lpips", *, tol: float = 1e-12) -> list[dict[str, Any]]:
    """The oracle at each mean budget b: the per-tile choice minimising Σ_k ``metric`` (:meth:`TileCurves.values`)
    within B = round(b · n_tiles) tile-evaluations (:func:`multiple_choice_knapsack`), its real image (the chosen
    tiles merged in image space, :meth:`TileCurves.image`) scored against the HR (:func:`image_metrics`).

    Returns one dict per budget: {"budget": b, "total_budget": B, "feasible", and when feasible "mean_steps"
    (tile-evaluations actually used / n_tiles), "tile_evaluations", "objective" (mean per-tile value: the proxy the
    knapsack minimised), "tile_lpips" / "tile_psnr_y" (mean over tiles of the chosen options), "lpips", "psnr_y",
    "ssim_y" (the merged image), "choices" [[family, N] per tile], "option_indices"}."""
    vals = curves.values(metric)
    budgets = [float(b) for b in mean_budgets]
    Bs = [total_budget(b, curves.n_tiles) for b in budgets]
    sol = multiple_choice_knapsack(curves.costs, vals, max(Bs + [0]), tol=tol)
    rows = np.arange(curves.n_tiles)
    out = []
    for b, B in zip(budgets, Bs):
        if not sol.feasible(B):
            out.append({"budget": b, "total_budget": B, "feasible": False})
            continue
        ch = sol.choose(B)
        used = sol.cost_of(ch)
        out.append({"budget": b, "total_budget": B, "feasible": True, "mean_steps": used / curves.n_tiles,
                    "tile_evaluations": used, "objective": float(vals[rows, ch].mean()),
                    "tile_lpips": float(curves.lpips[rows, ch].mean()),
                    "tile_psnr_y": float(curves.psnr_y[rows, ch].mean()), **curves.score(ch),
                    "choices": [[curves.options[j].family, curves.options[j].n] for j in ch],
                    "option_indices": [int(j) for j in ch]})
    return out


def uniform_curves(curves: TileCurves) -> dict[str, dict[str, list[float]]]:
    """The uniform control from the same runs: each option applied to every tile (= that option's uniform run),
    merged and scored exactly as the oracle's images. {family: {"steps": [N ascending], "lpips", "psnr_y",
    "ssim_y" (the merged image), "tile_lpips", "tile_psnr_y" (means over tiles)}} — curves for
    :func:`~adasr.adaptive.equal_budget.uniform_at`."""
    out: dict[str, dict[str, list[float]]] = {}
    for o in sorted(range(curves.n_options), key=lambda i: curves.options[i].n):
        opt = curves.options[o]
        s = curves.score([o] * curves.n_tiles)
        c = out.setdefault(opt.family, {"steps": [], **{k: [] for k in IMAGE_METRICS}, "tile_lpips": [],
                                         "tile_psnr_y": []})
        c["steps"].append(float(opt.n))
        for k in IMAGE_METRICS:
            c[k].append(float(s[k]))
        c["tile_lpips"].append(float(curves.lpips[:, o].mean()))
        c["tile_psnr_y"].append(float(curves.psnr_y[:, o].mean()))
    return out


# ------------------------------------------------------------------------------------------------------ headroom
def _better(metric: str) -> Callable[[float, float], bool]:
    """a better-or-equal to b for ``metric`` (LPIPS lower, PSNR/SSIM higher)."""
    return (lambda a, b: a <= b) if metric in ("lpips", "tile_lpips") else (lambda a, b: a >= b)


def steps_to_reach(curve: Mapping[str, Sequence[float]], target: float, metric: str = "lpips") -> float | None:
    """The smallest N at which the piecewise-linear curve (``curve["steps"]``, ``curve[metric]``) reaches
    ``target`` (LPIPS ≤ target; PSNR/SSIM ≥ target), or None if it never does in the measured range.

    The metric is not monotone in N, so this is the first crossing walking up in N (not an inverse function); a
    target the smallest measured N already reaches gives that N (the curve is not extrapolated below it)."""
    x = np.asarray(curve["steps"], dtype=float)
    y = np.asarray(curve[metric], dtype=float)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ok = _better(metric)
    if ok(y[0], target):
        return float(x[0])
    for i in range(1, len(x)):
        if ok(y[i], target):
            # y[i−1] misses, y[i] reaches: the crossing of the segment
            return float(x[i - 1] + (target - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))
    return None


def best_within(curve: Mapping[str, Sequence[float]], budget: float, metric: str = "lpips") -> tuple[float, float]:
    """(best value, its N) of ``metric`` on the piecewise-linear curve over N ∈ [N_min, budget] (a budget below
    N_min gives the value at N_min): the best uniform schedule of this family with mean cost ≤ budget. On a
    piecewise-linear curve the optimum is a vertex or the end point ``budget`` (:func:`uniform_at`)."""
    x = np.asarray(curve["steps"], dtype=float)
    y = np.asarray(curve[metric], dtype=float)
    pts = [(float(v), float(s)) for s, v in zip(x, y) if s <= budget]
    end = max(min(float(budget), float(x.max())), float(x.min()))
    pts.append((uniform_at(curve, end, metric), end))
    lower = metric in ("lpips", "tile_lpips")
    return min(pts, key=lambda p: (p[0] if lower else -p[0], p[1]))


def headroom(uniform: Mapping[str, Mapping[str, Sequence[float]]], oracle_points: Sequence[Mapping[str, Any]]
             ) -> list[dict[str, Any]]:
    """The oracle's headroom over the best uniform schedule (any family of ``uniform``, from :func:`uniform_curves`)
    at each feasible oracle point (:func:`oracle_frontier`).

    (a) Equal LPIPS: ``uniform_steps`` = min over families of :func:`steps_to_reach` (the smallest N reaching the
    oracle's image LPIPS; None if no family does within its measured N), ``cost_ratio`` = uniform_steps /
    oracle mean_steps (None if not reached; ``cost_ratio_at_least`` = largest measured N / mean_steps then, else
    None).
    (b) Equal budget b: ``lpips_diff`` = oracle LPIPS − best uniform LPIPS at mean cost ≤ b (:func:`best_within`;
    < 0: the oracle is better), ``psnr_y_diff`` / ``ssim_y_diff`` = oracle − best uniform (> 0: the oracle is
    better; the best per metric, each with its family and N), and ``*_diff_at_b`` against the curves' values at
    exactly b (:func:`~adasr.adaptive.equal_budget.uniform_at`)."""
    out = []
    n_max = max(max(c["steps"]) for c in uniform.values())
    rank = {f: i for i, f in enumerate(uniform)}  # ties go to the family listed first
    for p in oracle_points:
        if not p.get("feasible", True):
            continue
        m, b = float(p["mean_steps"]), float(p["budget"])
        reach = {f: steps_to_reach(c, float(p["lpips"]), "lpips") for f, c in uniform.items()}
        got = {f: s for f, s in reach.items() if s is not None}
        row: dict[str, Any] = {"budget": b, "mean_steps": m, "lpips": float(p["lpips"]),
                               "psnr_y": float(p["psnr_y"]), "ssim_y": float(p["ssim_y"]),
                               "uniform_steps_by_family": reach}
        if got:
            fam = min(got, key=lambda f: (got[f], rank[f]))
            row.update(reached=True, uniform_steps=got[fam], uniform_family=fam, cost_ratio=got[fam] / m,
                       cost_ratio_at_least=None)
        else:
            row.update(reached=False, uniform_steps=None, uniform_family=None, cost_ratio=None,
                       cost_ratio_at_least=float(n_max) / m)
        for k in IMAGE_METRICS:
            best = {f: best_within(c, b, k) for f, c in uniform.items()}
            lower = k == "lpips"
            fam = min(best, key=lambda f: (best[f][0] if lower else -best[f][0], best[f][1], rank[f]))
            at_b = {f: uniform_at(c, b, k) for f, c in uniform.items()}
            fam_b = min(at_b, key=lambda f: (at_b[f] if lower else -at_b[f], rank[f]))
            row[f"uniform_{k}"] = best[fam][0]
            row[f"uniform_{k}_family"], row[f"uniform_{k}_steps"] = fam, best[fam][1]
            row[f"{k}_diff"] = float(p[k]) - best[fam][0]
            row[f"uniform_{k}_at_b"], row[f"uniform_{k}_at_b_family"] = at_b[fam_b], fam_b
            row[f"{k}_diff_at_b"] = float(p[k]) - at_b[fam_b]
        out.append(row)
    return out


#: The numbers of a headroom row that :func:`mean_headroom` averages over images.
HEADROOM_KEYS: tuple[str, ...] = ("mean_steps", "lpips", "psnr_y", "ssim_y", "cost_ratio", "lpips_diff",
                                  "psnr_y_diff", "ssim_y_diff", "lpips_diff_at_b", "psnr_y_diff_at_b")


def mean_headroom(per_image: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per budget, the mean over images of the per-image headroom numbers (:data:`HEADROOM_KEYS`; the cost ratio
    over the images whose uniform curves reach the oracle's LPIPS, their count in ``reached``)."""
    by_b: dict[float, list[Mapping[str, Any]]] = {}
    for rows in per_image.values():
        for r in rows:
            by_b.setdefault(float(r["budget"]), []).append(r)
    out = []
    for b in sorted(by_b):
        rows = by_b[b]
        d: dict[str, Any] = {"budget": b, "images": len(rows), "reached": sum(bool(r["reached"]) for r in rows)}
        for k in HEADROOM_KEYS:
            vals = [float(r[k]) for r in rows if r.get(k) is not None]
            d[k] = float(np.mean(vals)) if vals else None
        ratios = [float(r["cost_ratio"]) for r in rows if r.get("cost_ratio") is not None]
        d["cost_ratio_geomean"] = float(np.exp(np.mean(np.log(ratios)))) if ratios else None
        out.append(d)
    return out


def _mean_curves(per_image: Sequence[Mapping[str, Mapping[str, Sequence[float]]]]) -> dict[str, dict[str, list]]:
    """Uniform curves averaged over images (same families and N in each)."""
    first = per_image[0]
    return {f: {"steps": list(c["steps"]),
                **{k: [float(np.mean([u[f][k][i] for u in per_image])) for i in range(len(c["steps"]))]
                   for k in c if k != "steps"}} for f, c in first.items()}


def _mean_points(per_image: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Oracle points averaged over images per budget (feasible on every image)."""
    out = []
    for pts in zip(*per_image):
        if not all(p["feasible"] for p in pts):
            out.append({"budget": pts[0]["budget"], "feasible": False})
            continue
        out.append({"budget": pts[0]["budget"], "feasible": True,
                    **{k: float(np.mean([p[k] for p in pts]))
                       for k in ("mean_steps", "objective", "tile_lpips", "tile_psnr_y", *IMAGE_METRICS)}})
    return out


# ---------------------------------------------------------------------------------------------------------- run
def run_oracle(model: Any, images: Mapping[str, np.ndarray],
               families: Mapping[str, Iterable[int]] | Sequence[Option] | None = None,
               mean_budgets: Sequence[float] = DEFAULT_MEAN_BUDGETS, *, metric: str = "lpips",
               tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, seed: int = 0, precision: str | None = None,
               eta: float | None = None, store_dtype: torch.dtype = torch.float16, progress: bool = False,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The hindsight oracle on ``images`` ({name: uint8 HR (H, W, 3)}) — JSON-ready; prints nothing (``log``
    receives one line per image if given; ``progress`` shows tqdm bars).

    For each image: :func:`measure_tile_curves` over the options of ``families`` (default
    :data:`DEFAULT_FAMILIES`), :func:`uniform_curves`, :func:`oracle_frontier` at ``mean_budgets`` and
    :func:`headroom`. Over the images: ``mean`` — the headroom of the mean oracle points against the mean uniform
    curves (one schedule for all images as the control, the benchmarks' convention) — and ``mean_of_images`` — the
    per-image headroom numbers averaged (:func:`mean_headroom`)."""
    from ..runtime import resolve_precision

    opts = family_options(families)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    per: dict[str, dict[str, Any]] = {}
    for name, hr in images.items():
        curves = measure_tile_curves(model, hr, opts, tile=tile, overlap=overlap, seed=seed, precision=precision,
                                     eta=eta, store_dtype=store_dtype, progress=progress)
        uni = uniform_curves(curves)
        pts = oracle_frontier(curves, mean_budgets, metric)
        per[name] = {**curves.to_dict(), "uniform": uni, "oracle": pts, "headroom": headroom(uni, pts)}
        if log is not None:
            log(f"{name}: {curves.n_tiles} tiles, {curves.tile_evaluations} tile-evaluations, "
                f"{curves.seconds:.1f} s")
    names = list(per)
    mean_uni = _mean_curves([per[n]["uniform"] for n in names])
    mean_pts = _mean_points([per[n]["oracle"] for n in names])
    return _json({
        "method": "hindsight oracle (per-tile multiple-choice knapsack over uniform runs)", "metric": metric,
        "options": [[o.family, o.n] for o in opts], "mean_budgets": [float(b) for b in mean_budgets],
        "tile": tile, "overlap": overlap, "seed": seed, "precision": resolve_precision(precision, device),
        "eta": eta, "threads": torch.get_num_threads(), "store_dtype": str(store_dtype).replace("torch.", ""),
        "images": per,
        "mean": {"uniform": mean_uni, "oracle": mean_pts, "headroom": headroom(mean_uni, mean_pts)},
        "mean_of_images": mean_headroom({n: per[n]["headroom"] for n in names}),
        "tile_evaluations": int(sum(per[n]["tile_evaluations"] for n in names)),
        "seconds": time.perf_counter() - t0,
    })


def mean_curves(per_image: Sequence[Mapping[str, Mapping[str, Sequence[float]]]]) -> dict[str, dict[str, list]]:
    """Uniform curves (:func:`uniform_curves`) averaged over images, e.g. a subset of a :func:`run_oracle` result's
    ``images[name]["uniform"]``."""
    return _mean_curves(per_image)


def mean_points(per_image: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Oracle points (:func:`oracle_frontier`) averaged over images per budget."""
    return _mean_points(per_image)


def seed_oracle(model: Any, hr_uint8: np.ndarray, option: Option, seeds: Sequence[int], *, tile: int = DEFAULT_TILE,
                overlap: int = DEFAULT_OVERLAP, precision: str | None = None, eta: float | None = None,
                store_dtype: torch.dtype = torch.float16) -> dict[str, Any]:
    """Selection without adaptivity: ``option`` (one schedule and N) run once per seed of ``seeds``; per tile the
    seed whose result has the lowest LPIPS against the HR; the chosen tiles merged and scored like the oracle's.

    Every choice costs N tile-evaluations per tile, as the single run does, so the gain of the best-seed image
    over the seeds' own images is what choosing among samples with hindsight buys *without changing any tile's
    schedule*: the part of the hindsight oracle's headroom (:func:`oracle_frontier`, which also chooses among
    samples) that no schedule policy can claim. Returns {"option", "seeds", "per_seed": image metrics of each
    seed's run, "seed_mean", "best": image metrics of the per-tile best seed, "chosen_seeds", "tile_evaluations"}.
    """
    runs = [measure_tile_curves(model, hr_uint8, [option], tile=tile, overlap=overlap, seed=int(s),
                                precision=precision, eta=eta, store_dtype=store_dtype) for s in seeds]
    first = runs[0]
    curves = TileCurves([Option(option.family, option.n) for _ in seeds],
                        np.concatenate([r.lpips for r in runs], axis=1), np.concatenate([r.psnr_y for r in runs], axis=1),
                        torch.cat([r.tile_images for r in runs]), first.grid, first.hr, first.size, first.merge)
    per_seed = [curves.score([j] * curves.n_tiles) for j in range(len(seeds))]
    best = curves.lpips.argmin(axis=1)
    return {"option": [option.family, option.n], "seeds": [int(s) for s in seeds], "per_seed": per_seed,
            "seed_mean": {k: float(np.mean([p[k] for p in per_seed])) for k in IMAGE_METRICS},
            "best": curves.score(best.tolist()), "chosen_seeds": [int(seeds[j]) for j in best],
            "tile_evaluations": int(sum(r.tile_evaluations for r in runs))}


def _json(x: Any) -> Any:
    """numpy / tuples → plain JSON types; non-finite floats → None."""
    if isinstance(x, Mapping):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def format_oracle(r: Mapping[str, Any]) -> str:
    """A text summary of :func:`run_oracle`: per image the uniform curves, the oracle frontier and the headroom;
    then the means."""
    lines = [f"hindsight oracle ({r['metric']}), {len(r['options'])} options, tiles {r['tile']}/{r['overlap']}, "
             f"{r['precision']}, seed {r['seed']}; {r['tile_evaluations']} tile-evaluations, {r['seconds']:.0f} s"]

    def block(title: str, uni: Mapping[str, Any], pts: Sequence[Mapping[str, Any]],
              head: Sequence[Mapping[str, Any]]) -> None:
        lines.append(f"== {title} ==")
        for f, c in uni.items():
            lines.append(f"uniform {f}: " + "  ".join(f"N={int(n)} {lp:.4f}/{ps:.2f}" for n, lp, ps in
                                                      zip(c["steps"], c["lpips"], c["psnr_y"])))
        lines.append(f"{'b':>5} {'steps':>6} {'LPIPS':>7} {'PSNR-Y':>7} {'SSIM-Y':>7} | {'uni LPIPS≤b':>11} "
                     f"{'ΔLPIPS':>8} {'ΔPSNR':>7} | {'N@LPIPS':>8} {'ratio':>6}")
        hb = {h["budget"]: h for h in head}
        for p in pts:
            if not p["feasible"]:
                lines.append(f"{p['budget']:5g}  infeasible")
                continue
            h = hb[p["budget"]]
            ratio = f"{h['cost_ratio']:6.2f}" if h["cost_ratio"] is not None else f">{h['cost_ratio_at_least']:5.1f}"
            ns = f"{h['uniform_steps']:8.2f}" if h["uniform_steps"] is not None else f"{'—':>8}"
            lines.append(f"{p['budget']:5g} {p['mean_steps']:6.2f} {p['lpips']:7.4f} {p['psnr_y']:7.2f} "
                         f"{p['ssim_y']:7.4f} | {h['uniform_lpips']:11.4f} {h['lpips_diff']:+8.4f} "
                         f"{h['psnr_y_diff']:+7.2f} | {ns} {ratio}")

    for name, im in r["images"].items():
        block(f"{name}: {im['tiles']} tiles, {im['seconds']:.0f} s", im["uniform"], im["oracle"], im["headroom"])
    if len(r["images"]) > 1:
        block("mean over images", r["mean"]["uniform"], r["mean"]["oracle"], r["mean"]["headroom"])
    return "\n".join(lines)


__all__ = ["DEFAULT_FAMILIES", "DEFAULT_MEAN_BUDGETS", "HEADROOM_KEYS", "IMAGE_METRICS", "KnapsackSolution",
           "METRICS", "Option", "SHAVE", "TileCurves", "best_within", "family_options", "format_oracle", "headroom",
           "image_metrics", "mean_curves", "mean_headroom", "mean_points", "measure_tile_curves", "merge_tile_images",
           "multiple_choice_knapsack", "oracle_frontier", "run_oracle", "score_tiles", "seed_oracle", "steps_to_reach",
           "tile_image_values", "total_budget", "uniform_curves"]
