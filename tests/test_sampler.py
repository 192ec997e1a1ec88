from dataclasses import dataclass

import pytest
import torch

from adasr.diffusion.schedulers import DDIMScheduler
from adasr.models.unet import UNetConfig
from adasr.diffusion.timesteps import spaced_timesteps
from adasr.sampling.loop import SamplerState, iterate_tiles, run_to_end, sample_tiles
from adasr.sampling.policies import CONTINUE, STOP, Decision, Policy, UniformDDIM
from adasr.srmodel import SRDiffusion, SRDiffusionConfig
from adasr.upscaling import UpscaleResult, prepare_upscale, upscale, upscale_tensor


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = SRDiffusionConfig(unet=UNetConfig(channels=(8, 16), num_res_blocks=1, time_dim=16, groups=4, heads=2))
    return SRDiffusion(cfg).eval()


def test_spaced_timesteps_match_diffusers_rules():
    assert spaced_timesteps(10, 1000, "linspace") == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert spaced_timesteps(10, 1000, "leading") == list(range(900, -1, -100))
    assert spaced_timesteps(10, 1000, "trailing") == list(range(999, 0, -100))
    assert all(spaced_timesteps(1, 1000, sp) == [999] for sp in ("linspace", "leading", "trailing"))
    for spacing in ("linspace", "leading", "trailing"):
        s = DDIMScheduler(timestep_spacing=spacing)
        s.set_timesteps(7)
        assert spaced_timesteps(7, 1000, spacing) == s.timesteps.tolist()


def test_single_tile_equals_plain_ddim_loop(model):
    """An image that fits one tile is a batch of one: the loop must equal the textbook scheduler loop."""
    cond = torch.rand(1, 3, 32, 32) * 2 - 1
    res = sample_tiles(model, cond, policy=UniformDDIM(6), tile=64, seed=3)
    assert len(res.grid) == 1 and res.cost.tile_evaluations == 6 and res.cost.unet_calls == 6
    sched = model.scheduler("ddim")
    sched.set_timesteps(timesteps=spaced_timesteps(6, 1000))
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for t in sched.timesteps:
            out = sched.step(model.unet(x, int(t), cond), int(t), x)
            x = out.prev_sample
    torch.testing.assert_close(res.x0, x, atol=1e-5, rtol=0)


def test_uniform_cost_accounting(model):
    cond = torch.zeros(1, 3, 64, 112)
    res = sample_tiles(model, cond, policy=UniformDDIM(4), tile=64, overlap=16)
    assert len(res.grid) == 2
    assert res.iterations == 4 and res.cost.unet_calls == 4 and res.cost.tile_evaluations == 8
    assert res.cost.macs == 8 * model.unet.__dict__["_macs_per_mode"][((64, 64), "full")] > 0
    assert res.cost.evaluations_by_mode == {"full": 8} and res.cost.macs_by_mode == {"full": res.cost.macs}
    assert [s.evaluations for s in res.tiles] == [4, 4]


@dataclass(frozen=True)
class PerTile(Policy):
    """Tile k gets k+3 steps; optionally stop tile 0 after its first step, or restride tile 1."""

    stop_first: bool = False
    restride: bool = False
    name: str = "per-tile"

    @property
    def steps(self) -> int:
        return 5

    def plan(self, cond_tiles, T):
        return [spaced_timesteps(k + 3, T) for k in range(cond_tiles.shape[0])]

    def decide(self, tile, x0_new, x0_old):
        if self.stop_first and tile.index == 0:
            return STOP
        if self.restride and tile.index == 1 and tile.position == 0:
            return Decision(remaining=(0,))
        return CONTINUE


def test_per_tile_schedules_are_executed(model):
    cond = torch.zeros(1, 3, 64, 160)  # 3 tiles
    res = sample_tiles(model, cond, policy=PerTile(), tile=64, overlap=16)
    assert [s.evaluations for s in res.tiles] == [3, 4, 5]
    assert res.cost.tile_evaluations == 12 and res.cost.unet_calls == 5 and res.iterations == 5


def test_stop_keeps_clean_estimate_and_restride(model):
    cond = torch.rand(1, 3, 64, 160) * 2 - 1
    res = sample_tiles(model, cond, policy=PerTile(stop_first=True, restride=True), tile=64, overlap=16)
    assert [s.evaluations for s in res.tiles] == [1, 2, 5]
    assert res.tiles[1].timesteps == [999, 0]
    # tile 0 stopped after t = 999 → 499: it keeps x̂0 (within the clip range), not its still-noisy x_499
    assert torch.equal(res.tile_x0[0], res.tiles[0].x0)
    assert res.tiles[0].x_t.abs().max() > 1.5 * res.tile_x0[0].abs().max()
    assert sum(r["stopped"] for r in res.trace) == 3
    assert len(res.trace) == res.cost.tile_evaluations == 8
    assert [(r["tile"], r["t"], r["t_prev"]) for r in res.trace if r["iteration"] == 0] == [
        (0, 999, 500), (1, 999, 666), (2, 999, 749)]


def test_bad_plans_raise(model):
    @dataclass(frozen=True)
    class Bad(Policy):
        name: str = "bad"
        steps: int = 2

        def plan(self, cond_tiles, T):
            return [[5, 10]]

    with pytest.raises(ValueError, match="descending"):
        sample_tiles(model, torch.zeros(1, 3, 32, 32), policy=Bad())

    class NotAPolicy:  # duck-typed objects are refused: the interface is declared by Policy
        name, steps = "duck", 2

        def plan(self, cond_tiles, T):
            return [[999, 0]]

        def decide(self, *a):
            return CONTINUE

    with pytest.raises(TypeError, match="Policy"):
        sample_tiles(model, torch.zeros(1, 3, 32, 32), policy=NotAPolicy())  # type: ignore[arg-type]


def test_iterate_tiles_yields_after_every_iteration(model):
    cond = torch.rand(1, 3, 64, 160, generator=torch.Generator().manual_seed(1)) * 2 - 1
    seen = []
    for state in iterate_tiles(model, cond, policy=PerTile(), tile=64, overlap=16, seed=4):
        assert isinstance(state, SamplerState)
        seen.append((state.iteration, [s.evaluations for s in state.tiles], list(state.stopped),
                     state.cost.tile_evaluations, len(state.steps)))
        assert state.current_x0().shape == (1, 3, 64, 160)
    assert seen == [(1, [1, 1, 1], [], 3, 3), (2, [2, 2, 2], [], 6, 3), (3, [3, 3, 3], [0], 9, 3),
                    (4, [3, 4, 4], [1], 11, 2), (5, [3, 4, 5], [2], 12, 1)]
    final = state.result()
    again = sample_tiles(model, cond, policy=PerTile(), tile=64, overlap=16, seed=4)
    assert torch.equal(final.x0, again.x0) and torch.equal(state.current_x0(), again.x0)
    assert final.trace == again.trace and len(final.trace) == 12


def test_result_before_the_end_raises_and_observers_see_each_state(model):
    cond = torch.zeros(1, 3, 32, 32)
    states = iterate_tiles(model, cond, policy=UniformDDIM(3), tile=64)
    first = next(states)
    with pytest.raises(RuntimeError, match="not finished"):
        first.result()
    states.close()  # stopping early is allowed (the progress bar and caches are released)
    its = []
    res = run_to_end(iterate_tiles(model, cond, policy=UniformDDIM(3), tile=64), observe=lambda s: its.append(s.iteration))
    assert its == [1, 2, 3] and res.iterations == 3


@pytest.mark.parametrize("h,w", [(5, 7), (16, 16), (9, 30)])
def test_upscale_any_size_and_seed(model, h, w):
    x = torch.rand(1, 3, h, w) * 2 - 1
    y, rep, _ = upscale_tensor(x, steps=2, model=model, precision="fp32", seed=1)
    assert y.shape == (1, 3, 4 * h, 4 * w) and y.abs().max() <= 1
    assert rep.output_size == (4 * h, 4 * w) and rep.tile_evaluations == 2 * rep.tiles
    y2, _, _ = upscale_tensor(x, steps=2, model=model, precision="fp32", seed=1)
    y3, _, _ = upscale_tensor(x, steps=2, model=model, precision="fp32", seed=2)
    assert torch.equal(y, y2) and not torch.equal(y, y3)


def test_upscale_uint8_api_and_errors(model):
    img = (torch.rand(8, 12, 3) * 255).to(torch.uint8).numpy()
    out = upscale(img, steps=1, model=model, precision="fp32")
    assert out.shape == (32, 48, 3) and out.dtype.name == "uint8"
    with pytest.raises(ValueError, match="uint8"):
        upscale(img.astype("float32"), model=model)
    with pytest.raises(ValueError, match="steps"):
        upscale(img, steps=0, model=model)


def test_upscale_job_can_be_observed(model):
    seen: list[tuple[int, list[int]]] = []
    x = torch.zeros(1, 3, 8, 8)
    job = prepare_upscale(x, steps=3, model=model, precision="fp32", tile=16, overlap=4)
    result = job.run(observe=lambda st: seen.append((st.iteration, [t.position for t in st.tiles])))
    assert isinstance(result, UpscaleResult)
    rep, res = result.report, result.sample
    assert [i for i, _ in seen] == [1, 2, 3] == list(range(1, res.iterations + 1))
    assert [p for _, p in seen] == [[k] * rep.tiles for k in (1, 2, 3)]
    plain = upscale_tensor(x, steps=3, model=model, precision="fp32", tile=16, overlap=4)
    assert torch.equal(plain.image, result.image) and rep.steps == 3 and rep.policy == "uniform"


def test_channels_last_preference_and_preparation(make_tiny_model):
    from adasr.runtime import channels_last_preferred, is_channels_last, prepare_for_inference

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert channels_last_preferred(cpu, "fp32") and channels_last_preferred(cpu, "bf16")
    assert channels_last_preferred(cuda, "bf16") and not channels_last_preferred(cuda, "fp32")
    model = make_tiny_model()
    assert not is_channels_last(model)
    assert prepare_for_inference(model, cpu, "fp32") is model and is_channels_last(model)
    assert not model.training


def test_channels_last_model_samples_the_same_image(make_tiny_model, one_thread):
    """The sampler feeds a channels_last model NHWC inputs; the result equals the NCHW run up to float rounding."""
    from adasr.runtime import is_channels_last

    cond = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3)) * 2 - 1
    plain = make_tiny_model()
    nhwc = make_tiny_model().to(memory_format=torch.channels_last)
    assert is_channels_last(nhwc) and not is_channels_last(plain)
    layouts = []

    def record(mod, inp) -> None:
        if inp[0].shape[0] > 1:  # the tile batches (not the one-tile forward that counts MACs)
            layouts.append(inp[0].is_contiguous(memory_format=torch.channels_last) and not inp[0].is_contiguous())

    for m in (plain, nhwc):
        next(mod for mod in m.unet.modules() if isinstance(mod, torch.nn.Conv2d)).register_forward_pre_hook(record)
    a = sample_tiles(plain, cond, policy=UniformDDIM(3), tile=16, overlap=4, seed=0)
    n_plain = len(layouts)
    b = sample_tiles(nhwc, cond, policy=UniformDDIM(3), tile=16, overlap=4, seed=0)
    assert n_plain == 3 and not any(layouts[:n_plain]) and all(layouts[n_plain:]) and len(layouts) == 6
    assert torch.allclose(a.x0, b.x0, atol=1e-4)


def test_auto_precision_respects_an_emulated_avx2_cpu(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (or ATEN capped at AVX2) keeps oneDNN off its bf16 kernels: 'auto' must pick fp32,
    as on a CPU without AVX512-BF16/AMX; explicit choices are kept."""
    from adasr.runtime import bf16_supported, resolve_precision

    cpu = torch.device("cpu")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not bf16_supported(cpu) and resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not bf16_supported(cpu)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert bf16_supported(cpu) and resolve_precision("auto", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_spaced_timesteps_has_n_valid_descending_entries_for_every_n(spacing):
    """The sampler's spacing is diffusers' (one home: adasr.diffusion.timesteps); its trailing rule keeps the first n
    values — the copy the sampler used before gave n + 1 timesteps ending at −1 for n = 61, 103, …"""
    for n in range(1, 301):
        ts = spaced_timesteps(n, 1000, spacing)
        assert len(ts) == n and ts[-1] >= 0 and ts[0] <= 999 and all(a > b for a, b in zip(ts, ts[1:])), (n, ts[-3:])
    assert spaced_timesteps(61, 1000, "trailing")[-2:] == [32, 15]
