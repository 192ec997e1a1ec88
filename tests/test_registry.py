"""The shipped-weights registry: hashes, sizes and stored dtypes of every file, the 30 MB budget, fp16 storage cast
back to the module's dtype on load, and re-storing registered weights in another dtype (``restore_as``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from adasr.registry import (
    REGISTRY_FILE,
    WEIGHTS_BUDGET_BYTES,
    WEIGHTS_DIR,
    WeightsError,
    entry,
    model_config,
    load_state_dict,
    read_registry,
    register,
    restore_as,
    sha256_file,
    total_bytes,
)



def test_every_registered_file_matches_its_entry() -> None:
    """sha256, bytes and the stored floating dtype of each file are what REGISTRY.json says, and every shipped
    .safetensors file is registered."""
    reg = read_registry()
    shipped = {p.name for p in WEIGHTS_DIR.glob("*.safetensors")} | {
        p.name for p in WEIGHTS_DIR.glob("*.json") if p.name != "REGISTRY.json"}
    assert {e["file"] for e in reg.values()} == shipped
    for name, e in reg.items():
        path = WEIGHTS_DIR / e["file"]
        assert sha256_file(path) == e["sha256"], name
        assert path.stat().st_size == e["bytes"], name
        if e["dtype"] == "json":
            continue
        with safe_open(str(path), framework="pt") as f:
            stored = {f.get_slice(k).get_dtype() for k in f.keys()}
        floating = "F16" if e["dtype"] == "float16" else "F32"
        if e.get("format") == "sparse-bitmap":  # values, plus packed bitmaps (uint8) and shapes (int64)
            assert stored == {floating, "U8", "I64"}, (name, stored)
        else:
            assert stored == {floating}, (name, stored)


def test_shipped_weights_fit_the_budget() -> None:
    assert total_bytes() <= WEIGHTS_BUDGET_BYTES
    assert total_bytes() >= sum(e["bytes"] for e in read_registry().values())


def test_sr_x4_is_fp16_and_loads_as_float32() -> None:
    """The shipped diffusion model stores float16; load_pretrained's UNet keeps float32 parameters holding exactly
    the stored values (float16 → float32 is exact), and so does ``load_state_dict(…, dtype=torch.float32)``."""
    from adasr.upscaling import load_pretrained

    e = entry("sr_x4")
    assert e["dtype"] == "float16"
    assert e["recast"]["from"]["dtype"] == "float32" and e["recast"]["from"]["sha256"] != e["sha256"]
    assert e["metrics_at_save"]["mean"]["adasr"]["psnr_y"] > e["metrics_at_save"]["mean"]["bicubic"]["psnr_y"]
    stored = load_state_dict("sr_x4")
    assert {v.dtype for v in stored.values()} == {torch.float16}
    as32 = load_state_dict("sr_x4", dtype=torch.float32)
    model = load_pretrained("sr_x4", device="cpu")
    params = model.unet.state_dict()
    assert params.keys() == stored.keys()
    for k, v in params.items():
        assert v.dtype == torch.float32 and as32[k].dtype == torch.float32
        assert torch.equal(v, stored[k].float()) and torch.equal(as32[k], v)


def _toy_entry(weights_dir: Path) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {"conv.weight": torch.randn(8, 4, 3, 3, generator=g) * 0.1, "conv.bias": torch.randn(8, generator=g),
             "steps": torch.arange(5, dtype=torch.int64)}
    register("toy", state, config={"width": 8}, weights_dir=weights_dir, command="python make_toy.py",
             training={"steps": 3}, metrics_at_save={"psnr_y": 30.0})
    return state


def test_restore_as_float16_keeps_the_entry_and_records_the_source(tmp_path: Path) -> None:
    state = _toy_entry(tmp_path)
    before = entry("toy", tmp_path)
    e = restore_as("toy", torch.float16, command="python tools/publish_sr_weights.py --name toy --recast float16",
                   weights_dir=tmp_path)
    assert e == entry("toy", tmp_path)  # what it returns is what it wrote
    assert e["dtype"] == "float16" and e["bytes"] < before["bytes"]
    assert e["recast"]["from"] == {"dtype": "float32", "sha256": before["sha256"], "bytes": before["bytes"]}
    for key in ("command", "training", "metrics_at_save", "config", "file"):
        assert e[key] == before[key], key
    assert e["sha256"] == sha256_file(tmp_path / e["file"])
    loaded = load_state_dict("toy", tmp_path)
    assert loaded["conv.weight"].dtype == torch.float16
    assert torch.equal(loaded["conv.weight"], state["conv.weight"].half())
    assert torch.equal(loaded["steps"], state["steps"])  # integer tensors are never cast
    cast = load_state_dict("toy", tmp_path, dtype=torch.float32)
    assert cast["steps"].dtype == torch.int64 and cast["conv.bias"].dtype == torch.float32
    # fp16 into a float32 module: copy_ casts, the parameters stay float32
    conv = torch.nn.Conv2d(4, 8, 3)
    conv.load_state_dict({k[len("conv."):]: v for k, v in loaded.items() if k.startswith("conv.")})
    assert conv.weight.dtype == torch.float32 and torch.equal(conv.weight, state["conv.weight"].half().float())
    with pytest.raises(WeightsError, match="already stored as float16"):
        restore_as("toy", torch.float16, command="again", weights_dir=tmp_path)
    # the recast is reproducible: the same source gives the same bytes
    other = tmp_path / "again"
    _toy_entry(other)
    assert restore_as("toy", torch.float16, command="x", weights_dir=other)["sha256"] == e["sha256"]


def test_restore_as_refuses_a_tampered_source(tmp_path: Path) -> None:
    _toy_entry(tmp_path)
    path = tmp_path / entry("toy", tmp_path)["file"]
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x01  # one bit of the last tensor
    path.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="sha256"):
        restore_as("toy", torch.float16, command="x", weights_dir=tmp_path)
    assert json.loads((tmp_path / REGISTRY_FILE).read_text())["toy"]["dtype"] == "float32"  # nothing rewritten


def test_shipped_sr_x4_tampered_copy_is_refused(tmp_path: Path) -> None:
    for name in (REGISTRY_FILE, entry("sr_x4")["file"]):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    load_state_dict("sr_x4", tmp_path)  # the untouched copy loads
    path = tmp_path / entry("sr_x4", tmp_path)["file"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="sha256"):
        load_state_dict("sr_x4", tmp_path)


def test_json_assets_are_hash_checked(tmp_path) -> None:
    """register_json / load_json round-trip, and a changed file is refused."""
    from adasr.registry import WeightsError, load_json, register_json

    e = register_json("thing", {"a": [1, 2]}, weights_dir=tmp_path, command="made by a test")
    assert e["dtype"] == "json" and e["command"] == "made by a test"
    assert load_json("thing", tmp_path) == {"a": [1, 2]}
    (tmp_path / "thing.json").write_text('{"a": [1, 3]}')
    with pytest.raises(WeightsError, match="sha256"):
        load_json("thing", tmp_path)


def test_shipped_schedule_presets_load_and_match_their_families() -> None:
    """Every preset of schedules.json has N = 1 … 10, lists that start at T − 1 and descend, and load_schedule_presets
    rebuilds each list from its family (it raises otherwise)."""
    from adasr.registry import load_json, load_schedule_presets

    presets = load_schedule_presets()
    assert set(presets) == {"perceptual", "balanced", "fidelity"}
    data = load_json("schedules")
    assert "python -m adasr.adaptive.schedule_opt" in data["command"] and data["seconds"] > 0
    assert "astronaut" not in data["data"]["images"]  # training photos only
    for p in presets.values():
        for n in range(1, 11):
            ts = p.timesteps(n)
            assert len(ts) == n and ts[0] == 999 and all(a > b for a, b in zip(ts, ts[1:]))
            assert p.eta_for(n) is not None and p.eta_for(n) >= 0


def test_sparse_model_is_stored_sparse_and_loads_dense() -> None:
    """sr_x4_sparse15: fp16 values + bitmaps, under a quarter of sr_x4's file, loading as a dense UNet with 15 % of
    its conv/linear weights nonzero."""
    from adasr.upscaling import load_pretrained

    e = entry("sr_x4_sparse15")
    assert e["format"] == "sparse-bitmap" and e["bytes"] < entry("sr_x4")["bytes"] / 4
    m = load_pretrained("sr_x4_sparse15")
    ws = [p for p in m.unet.parameters() if p.ndim >= 2]
    assert abs(sum(int((p != 0).sum()) for p in ws) / sum(p.numel() for p in ws) - 0.15) < 0.001
    assert e["config"] == entry("sr_x4")["config"]


def test_finetuned_model_records_its_base_and_chain_and_differs_from_it() -> None:
    """sr_x4_ft: sr_x4's architecture, fp16, its base recorded by sha256 (the shipped sr_x4), the chain it was trained
    through, the training command; the weights moved from the base's, but not far (a fine-tune, not a new model)."""
    from adasr.config import MODELS
    from adasr.upscaling import load_pretrained

    assert all(name in read_registry() for name in MODELS)  # every --model choice is a registered file
    e = entry("sr_x4_ft")
    assert e["config"] == entry("sr_x4")["config"] and e["dtype"] == "float16"
    t = e["training"]
    assert t["base"] == "sr_x4" and t["base_sha256"] == entry("sr_x4")["sha256"] and t["timesteps"] == [999, 20]
    assert e["command"].split("adasr train ", 1)[1].startswith("--finetune-through-sampler")
    base, ft = load_pretrained("sr_x4").unet.state_dict(), load_pretrained("sr_x4_ft").unet.state_dict()
    assert base.keys() == ft.keys()
    num = sum(float((ft[k] - base[k]).pow(2).sum()) for k in base if base[k].is_floating_point())
    den = sum(float(base[k].pow(2).sum()) for k in base if base[k].is_floating_point())
    assert 1e-6 < (num / den) ** 0.5 < 0.1


# ------------------------------------------------------------------------------------- a damaged REGISTRY.json
@pytest.mark.parametrize("text,message", [
    ("{not json", r"REGISTRY.json is not valid JSON \(Expecting property name enclosed in double quotes: line 1"),
    ("[1, 2]", r"REGISTRY.json is not a registry \(a JSON object of weights entries\)"),
    ('{"a": 3}', r"REGISTRY.json is not a registry"),
    (b"\xff\xfe{".decode("latin-1"), "REGISTRY.json is not valid JSON"),
])
def test_a_damaged_registry_names_the_file(tmp_path, text, message) -> None:
    (tmp_path / REGISTRY_FILE).write_text(text, encoding="latin-1")
    with pytest.raises(WeightsError, match=f"^{tmp_path}/{message}"):
        read_registry(tmp_path)


def test_entries_without_file_or_hash_or_config_are_named(tmp_path) -> None:
    (tmp_path / REGISTRY_FILE).write_text(json.dumps({"a": {"file": "a.safetensors"},
                                                      "b": {"file": "b.safetensors", "sha256": "00"}}))
    with pytest.raises(WeightsError, match=r"the entry 'a' of .*REGISTRY.json lacks sha256"):
        entry("a", tmp_path)
    assert entry("b", tmp_path)["sha256"] == "00"
    with pytest.raises(WeightsError, match=r"the entry 'b' of .*REGISTRY.json has no model config"):
        model_config("b", tmp_path)
    assert model_config("sr_x4")["unet"]["channels"]  # the shipped ones have theirs
