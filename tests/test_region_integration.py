"""Region integration (AdaDiffSR): merging the x_t of overlapping tiles at a shared timestep, and the seam measure."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from adasr.diffusion.timesteps import spaced_timesteps
from adasr.sampling.loop import integrate_shared_t, iterate_tiles, sample_tiles
from adasr.sampling.policies import Policy, TileState, UniformDDIM
from adasr.sampling.seams import seam_masks, seam_score
from adasr.sampling.tiles import TileGrid

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(make_tiny_model):
    return make_tiny_model(tile=32)


def _cond(h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _overlap(grid: TileGrid, i: int, j: int):
    """The local slices of tiles i and j over their overlap (None if they do not overlap)."""
    (ti, li), (tj, lj) = grid.positions[i], grid.positions[j]
    top, bottom = max(ti, tj), min(ti, tj) + grid.tile_h
    left, right = max(li, lj), min(li, lj) + grid.tile_w
    if top >= bottom or left >= right:
        return None
    return ((slice(None), slice(top - ti, bottom - ti), slice(left - li, right - li)),
            (slice(None), slice(top - tj, bottom - tj), slice(left - lj, right - lj)))


def _snapshots(states):
    """[(iteration, [x_t clone per tile], [done per tile], merges of that iteration)] over a run."""
    out = []
    for st in states:
        out.append((st.iteration, [s.x_t.clone() for s in st.tiles], [s.done for s in st.tiles],
                    [m for m in st.merges if m["iteration"] == st.iteration - 1]))
    return out, st


# --- TileGrid.merge_subset / crop ------------------------------------------------------------------------------


def test_merge_subset_of_tiles_cut_from_one_image_returns_it():
    g = TileGrid.cover(48, 80, 32, 8)  # 2 × 3 tiles
    x = torch.randn(1, 3, 48, 80, generator=torch.Generator().manual_seed(0))
    tiles = g.split(x)
    for idx in ([0, 2, 4], [5, 1], [3]):
        for mode in ("gaussian", "uniform", "last"):
            canvas, cov = g.merge_subset(tiles[idx], idx, mode)
            assert canvas.shape == (1, 3, 48, 80) and cov.shape == (48, 80) and cov.dtype == torch.int32
            torch.testing.assert_close(cov, g.coverage(idx))
            inside = cov > 0
            torch.testing.assert_close(canvas[..., inside], x[..., inside], atol=1e-6, rtol=0)
            assert torch.all(canvas[..., ~inside] == 0)
            torch.testing.assert_close(g.crop(canvas, idx), tiles[idx], atol=1e-6, rtol=0)
    every = list(range(len(g)))
    for mode in ("gaussian", "uniform", "last"):
        assert torch.equal(g.merge_subset(tiles, every, mode)[0], g.merge(tiles, mode))
    assert torch.equal(g.crop(x, every), tiles) and torch.equal(g.crop(x, 4), tiles[4])
    with pytest.raises(ValueError):
        g.merge_subset(tiles[:2], [0, 0])
    with pytest.raises(ValueError):
        g.merge_subset(tiles[:2], [0, 9])
    with pytest.raises(ValueError):
        g.merge_subset(tiles[:3], [0, 1])


def test_integrate_shared_t_groups_by_t_and_touches_only_overlaps():
    g = TileGrid.cover(32, 80, 32, 8)  # 3 tiles in a row at 0, 24, 48: 0–1 and 1–2 overlap, 0–2 do not
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tiles = [TileState(k, [500, 0], x_t=x[k].clone()) for k in range(3)]
    tiles[1].timesteps = [400, 0]  # tile 1 is at another t: nothing overlaps within a group
    assert integrate_shared_t(g, tiles) == []
    assert all(torch.equal(s.x_t, x[k]) for k, s in enumerate(tiles))
    tiles[1].timesteps = [500, 0]
    tiles[2].done = True  # a finished tile is not merged
    rows = integrate_shared_t(g, tiles, iteration=7)
    assert rows == [{"iteration": 7, "t": 500, "tiles": [0, 1], "pixels": 32 * 8}]
    a, b = _overlap(g, 0, 1)
    assert torch.equal(tiles[0].x_t[a], tiles[1].x_t[b]) and not torch.equal(tiles[0].x_t[a], x[0][a])
    assert torch.equal(tiles[0].x_t[:, :, :24], x[0][:, :, :24])  # pixels of one tile only: bit for bit
    assert torch.equal(tiles[1].x_t[:, :, 8:], x[1][:, :, 8:]) and torch.equal(tiles[2].x_t, x[2])


# --- the sampler ---------------------------------------------------------------------------------------------


def test_final_is_the_default_and_unchanged(model):
    cond = _cond(48, 80)
    for kw in (dict(policy=UniformDDIM(4)), dict(policy=UniformDDIM(3), eta=0.5, merge="uniform")):
        base = sample_tiles(model, cond, tile=32, overlap=8, seed=2, **kw)
        final = sample_tiles(model, cond, tile=32, overlap=8, seed=2, integrate="final", **kw)
        assert torch.equal(base.x0, final.x0) and torch.equal(base.tile_x0, final.tile_x0)
        assert base.trace == final.trace and base.merges == final.merges == []
        assert base.integrate == final.integrate == "final"
    with pytest.raises(ValueError, match="integrate"):
        sample_tiles(model, cond, tile=32, overlap=8, integrate="every")  # type: ignore[arg-type]


def test_shared_t_with_one_tile_or_no_overlap_equals_final(model):
    cond = _cond(32, 32)
    for eta in (0.0, 0.4):  # one tile: the image-level z of shared-t is that tile's z
        a = sample_tiles(model, cond, policy=UniformDDIM(3), tile=32, overlap=8, seed=1, eta=eta)
        b = sample_tiles(model, cond, policy=UniformDDIM(3), tile=32, overlap=8, seed=1, eta=eta, integrate="shared-t")
        assert len(b.grid) == 1 and b.merges == [] and torch.equal(a.x0, b.x0)
    cond = _cond(32, 64)  # two tiles side by side without overlap
    a = sample_tiles(model, cond, policy=UniformDDIM(3), tile=32, overlap=0, seed=1)
    b = sample_tiles(model, cond, policy=UniformDDIM(3), tile=32, overlap=0, seed=1, integrate="shared-t")
    assert len(b.grid) == 2 and b.merges == [] and torch.equal(a.x0, b.x0)


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_shared_t_uniform_merges_every_step(model, eta):
    cond = _cond(48, 80)
    kw = dict(policy=UniformDDIM(4), tile=32, overlap=8, seed=2, eta=eta)
    final = sample_tiles(model, cond, **kw)
    snaps, last = _snapshots(iterate_tiles(model, cond, integrate="shared-t", **kw))
    shared = last.result()
    grid = shared.grid
    assert len(grid) == 6 and shared.integrate == "shared-t"
    assert not torch.equal(shared.x0, final.x0)
    assert shared.cost.tile_evaluations == final.cost.tile_evaluations == 24
    # after each of the first 3 iterations all 6 tiles sit at the same t: one merge of all of them
    assert [(m["iteration"], m["tiles"]) for m in shared.merges] == [(i, list(range(6))) for i in range(3)]
    assert [m["t"] for m in shared.merges] == spaced_timesteps(4, 1000)[1:]
    for it, xs, done, merges in snaps[:3]:
        assert len(merges) == 1 and not any(done)
        pairs = 0
        for i in range(6):
            for j in range(i + 1, 6):
                ov = _overlap(grid, i, j)
                if ov is not None:
                    pairs += 1
                    assert torch.equal(xs[i][ov[0]], xs[j][ov[1]]), (it, i, j)
        assert pairs == 11  # 2 × 3 grid: 7 edge neighbours and 4 diagonal ones
    if eta > 0:  # shared-t draws its z for the whole image: the overlaps got the same noise (checked above)
        return
    # the first iteration's pixels covered by one tile are those of the "final" run, bit for bit
    first_final = next(iterate_tiles(model, cond, **kw))
    cov = grid.coverage()
    for k in range(6):
        one = grid.crop((cov == 1)[None, None], k)[0]
        assert torch.equal(snaps[0][1][k][:, one], first_final.tiles[k].x_t[:, one])


@dataclass(frozen=True)
class TwoLists(Policy):
    """Tiles 0, 1 run ``a``; tiles 2, 3 run ``b`` (a row of 4 tiles: 1 and 2 overlap but sit at other t)."""

    a: tuple[int, ...] = (999, 600, 200, 0)
    b: tuple[int, ...] = (999, 500, 0)
    name: str = "two-lists"

    @property
    def steps(self) -> int:
        return len(self.a)

    def plan(self, cond_tiles, T):
        return [list(self.a if k < 2 else self.b) for k in range(cond_tiles.shape[0])]


def test_tiles_at_different_t_are_not_merged(model):
    cond = _cond(32, 104)  # 4 tiles in a row at 0, 24, 48, 72
    kw = dict(policy=TwoLists(), tile=32, overlap=8, seed=3)
    snaps, last = _snapshots(iterate_tiles(model, cond, integrate="shared-t", **kw))
    fin, _ = _snapshots(iterate_tiles(model, cond, **kw))
    res = last.result()
    assert len(res.grid) == 4
    assert [(m["iteration"], m["t"], m["tiles"]) for m in res.merges] == [
        (0, 600, [0, 1]), (0, 500, [2, 3]), (1, 200, [0, 1]), (1, 0, [2, 3]), (2, 0, [0, 1])]
    assert all(m["pixels"] == 32 * 8 for m in res.merges)
    xs = snaps[0][1]
    # tile 1 (t = 600) overlaps tile 0 (t = 600, merged) and tile 2 (t = 500, not merged with it)
    a, b = _overlap(res.grid, 0, 1)
    assert torch.equal(xs[0][a], xs[1][b])
    c, d = _overlap(res.grid, 1, 2)
    assert not torch.equal(xs[1][c], xs[2][d])
    assert torch.equal(xs[1][:, :, 8:], fin[0][1][1][:, :, 8:])  # tile 1 beyond tile 0's window: untouched
    assert torch.equal(xs[2][:, :, :24], fin[0][1][2][:, :, :24])  # tile 2 before tile 3's window: untouched
    # tiles 2 and 3 finish at iteration 3 (index 2); the later merge of 0 and 1 leaves them as they were
    assert snaps[2][2] == [False, False, True, True]
    assert torch.equal(snaps[2][1][2], snaps[3][1][2]) and torch.equal(snaps[2][1][3], snaps[3][1][3])
    # a tile's x̂0 is its own estimate: the finished tiles keep theirs, and the result merges the x̂0 once
    assert torch.equal(res.x0, res.grid.merge(res.tile_x0))


# --- the seam measure ----------------------------------------------------------------------------------------


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_seam_masks_name_the_window_ends():
    g = TileGrid.cover(32, 56, 32, 8)  # tiles at columns 0 and 24: windows end between 23|24 and 31|32
    hor, ver = seam_masks(g)
    assert hor.shape == (32, 55) and ver.shape == (31, 56) and not ver.any()
    assert np.flatnonzero(hor.any(0)).tolist() == [23, 31] and hor[:, [23, 31]].all()
    hor, ver = seam_masks(g, "last")  # stitched: only where the second tile starts is a border visible
    assert np.flatnonzero(hor.any(0)).tolist() == [23] and not ver.any()
    g2 = TileGrid.cover(56, 56, 32, 8)
    hor, ver = seam_masks(g2)
    assert np.flatnonzero(ver.any(1)).tolist() == [23, 31]


@pytest.mark.parametrize("merge", ["gaussian", "last"])
def test_seam_score_ramp_and_stitched_constants(merge):
    g = TileGrid.cover(64, 112, 32, 8)
    yy, xx = torch.meshgrid(torch.linspace(-0.8, 0.8, 64), torch.linspace(-0.8, 0.8, 112), indexing="ij")
    ramp = (0.5 * xx + 0.3 * yy).expand(1, 3, 64, 112)
    assert seam_score(ramp, g, merge) == pytest.approx(1.0, rel=1e-6)
    assert seam_score(_to_uint8(ramp), g, merge) == pytest.approx(1.0, abs=0.05)
    assert seam_score(g.merge(g.split(ramp), merge), g, merge) == pytest.approx(1.0, rel=1e-4)
    # tiles cut alternately from two different constant images (plus a faint ramp, so the rest has a gradient)
    a, b = torch.full((1, 3, 64, 112), -0.5) + 0.05 * ramp, torch.full((1, 3, 64, 112), 0.5) + 0.05 * ramp
    ta, tb = g.split(a), g.split(b)
    mixed = torch.stack([(ta if k % 2 else tb)[k] for k in range(len(g))])
    stitched = g.merge(mixed, "last")
    assert seam_score(_to_uint8(stitched), g, "last") > 20
    assert seam_score(stitched, g, merge) > 5
    assert seam_score(stitched[..., :60, :100], g, merge) > 5  # an image cropped from the grid's canvas
    assert np.isnan(seam_score(ramp[..., :32, :32], TileGrid.cover(32, 32, 32, 8)))
    with pytest.raises(TypeError):
        seam_score(_to_uint8(ramp).astype(np.float32), g)
