import pytest
import torch

from adasr.models.unet import SRUNet, UNetConfig, timestep_embedding

SMALL = UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2)


def test_default_parameter_count():
    assert sum(p.numel() for p in SRUNet().parameters()) == 2_809_699


def test_forward_is_decode_of_encode_and_per_sample_t():
    torch.manual_seed(0)
    m = SRUNet(SMALL).eval()
    x, c = torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16)
    t = torch.tensor([0, 10, 999])
    with torch.no_grad():
        out = m(x, t, c)
        assert out.shape == (3, 3, 16, 16)
        assert torch.equal(out, m.decode(m.encode(x, t, c), t))
        # per-sample timesteps: entry k equals a batch-of-one call at t[k]
        for k in range(3):
            torch.testing.assert_close(out[k : k + 1], m(x[k : k + 1], int(t[k]), c[k : k + 1]), atol=1e-5, rtol=0)
        # decode reuses an encoding with another t (encoder state reuse) and differs from it
        h = m.encode(x, t, c)
        assert not torch.allclose(m.decode(h, t + 50), out)


def test_encoder_state_index_and_repeat():
    m = SRUNet(SMALL).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        h = m.encode(x, 5, x)
        torch.testing.assert_close(m.decode(h.index(slice(1, 2)), 5), m.decode(h, 5)[1:2], atol=1e-5, rtol=0)
        assert m.decode(h.repeat(3), 5).shape == (6, 3, 16, 16)


def test_bad_sizes_raise():
    m = SRUNet(SMALL)
    with pytest.raises(ValueError, match="multiples of 2"):
        m(torch.randn(1, 3, 15, 16), 0, torch.randn(1, 3, 15, 16))
    with pytest.raises(ValueError, match="shape"):
        m(torch.randn(2, 3, 16, 16), torch.tensor([1, 2, 3]), torch.randn(2, 3, 16, 16))


def test_timestep_embedding_closed_form():
    e = timestep_embedding(torch.tensor([0.0, 1.0]), 4)
    torch.testing.assert_close(e[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    # frequencies 1 and 10000^(-1/2) = 0.01
    torch.testing.assert_close(e[1], torch.tensor([torch.sin(torch.tensor(1.0)), torch.sin(torch.tensor(0.01)),
                                                   torch.cos(torch.tensor(1.0)), torch.cos(torch.tensor(0.01))]))
