import pytest
import torch

from adasr.sampling.tiles import TileGrid, axis_starts


def test_axis_starts_cover_and_snap():
    assert axis_starts(64, 64, 16) == [0]
    assert axis_starts(40, 64, 16) == [0]
    assert axis_starts(112, 64, 16) == [0, 48]
    assert axis_starts(256, 64, 16) == [0, 48, 96, 144, 192]
    assert axis_starts(128, 64, 0) == [0, 64]
    with pytest.raises(ValueError):
        axis_starts(100, 16, 16)


@pytest.mark.parametrize("h,w", [(256, 256), (100, 172), (36, 300), (20, 20)])
def test_every_pixel_covered_and_split_merge_roundtrip(h, w):
    g = TileGrid.cover(h, w, 64, 16)
    assert (g.coverage() >= 1).all()
    x = torch.randn(1, 3, h, w)
    tiles = g.split(x)
    assert tiles.shape == (len(g), 3, min(64, h), min(64, w))
    for mode in ("gaussian", "uniform", "last"):
        torch.testing.assert_close(g.merge(tiles, mode), x)


def test_single_tile_when_image_fits():
    g = TileGrid.cover(48, 64, 64, 16)
    assert len(g) == 1 and (g.tile_h, g.tile_w) == (48, 64)


def test_gaussian_merge_is_a_convex_combination_favouring_the_nearer_centre():
    g = TileGrid.cover(64, 112, 64, 16)  # two tiles side by side, overlap columns 48..63
    tiles = torch.stack([torch.zeros(1, 64, 64), torch.ones(1, 64, 64)])
    m = g.merge(tiles, "gaussian")[0, 0]
    assert torch.all(m[:, :48] == 0) and torch.all(m[:, 64:] == 1)
    row = m[32, 48:64]
    assert torch.all(row[1:] >= row[:-1])  # monotone ramp across the overlap
    assert 0 < row[0] < 0.5 < row[-1] < 1
    u = g.merge(tiles, "uniform")[0, 0]
    torch.testing.assert_close(u[:, 48:64], torch.full((64, 16), 0.5))


def test_weights_closed_form():
    g = TileGrid.cover(64, 64, 64, 0)
    w = g.weights("gaussian", 0.3)
    c = 31.5
    expect = torch.exp(torch.tensor(-((0 - c) ** 2) / (2 * (0.3 * 64) ** 2)).double()) ** 2
    torch.testing.assert_close(w[0, 0].double(), expect, rtol=1e-6, atol=0)
    assert w.max() <= 1


def test_bad_inputs():
    g = TileGrid.cover(64, 64, 32, 8)
    with pytest.raises(ValueError):
        g.split(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError):
        g.merge(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError):
        g.merge(g.split(torch.randn(1, 3, 64, 64)), "median")  # type: ignore[arg-type]
