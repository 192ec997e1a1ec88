"""What is reproducible bit for bit (README "Bad input, and what is reproducible bit for bit").

``deterministic=True`` (``adasr upscale --deterministic``) promises the same output for any number of CPU threads
(it computes on one). Plain fp32 does not: oneDNN's 1×1 convolution, channels_last GroupNorm and BLAS's
matrix-vector product sum in a thread-dependent order (about 1e-6), and bf16 differs by one level in about 1 % of
the pixels of a 512² output (measured on an AVX512-BF16 CPU; how often it shows depends on the CPU, so the
plain settings are not asserted to differ). Equal settings and thread counts always give equal outputs."""

import numpy as np
import pytest
import torch
from skimage import data

import adasr
from adasr.data import to_tensor
from adasr.runtime import deterministic_kernels, each_step_within
from adasr.upscaling import prepare_upscale, upscale_tensor

IMAGE = data.astronaut()[120:168, 160:200]  # 48×40 → 192×160 output: 4 tiles of 128 with the default overlap


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("kwargs", [
    dict(),                                             # the default: balanced, 2 steps
    dict(steps=4, schedule="linspace", eta=1.0),        # DDPM-like noise from the seeded generator
    dict(policy="adasr", steps=5, schedule="linspace"),  # per-tile allocation and early exit
    dict(model="edsr_x4"),                              # the regression CNN
])
def test_deterministic_output_does_not_depend_on_the_thread_count(restore_threads, kwargs):
    outs = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        outs.append(upscale_tensor(to_tensor(IMAGE), precision="fp32", device="cpu", deterministic=True, **kwargs))
    assert outs[0].image.shape == (1, 3, 192, 160) and outs[0].report.deterministic
    for other in outs[1:]:
        torch.testing.assert_close(other.image, outs[0].image, rtol=0, atol=0)  # the floats, not only the bytes


def test_deterministic_runs_every_step_on_one_thread_and_restores_the_count(restore_threads):
    torch.set_num_threads(2)
    seen: list[int] = []
    prepare_upscale(to_tensor(IMAGE), device="cpu", deterministic=True).run(
        lambda state: seen.append(torch.get_num_threads()))  # observed between steps: the caller's count
    assert seen and set(seen) == {2} and torch.get_num_threads() == 2
    inside: list[int] = []

    def steps():
        for i in range(3):
            inside.append(torch.get_num_threads())
            yield i

    assert list(each_step_within(steps(), deterministic_kernels)) == [0, 1, 2]
    assert inside == [1, 1, 1] and torch.get_num_threads() == 2
    gen = each_step_within(steps(), deterministic_kernels)
    next(gen)
    assert torch.get_num_threads() == 2  # suspended between items: the caller's settings


def test_deterministic_refuses_bf16_and_equal_seeds_repeat(restore_threads):
    with pytest.raises(ValueError, match="deterministic runs in fp32"):
        adasr.upscale(IMAGE, deterministic=True, precision="bf16")
    torch.set_num_threads(2)
    a, b, c = (adasr.upscale(IMAGE, steps=3, schedule="linspace", eta=1.0, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
