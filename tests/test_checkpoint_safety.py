"""Checkpoints are read with ``weights_only=True``: a crafted pickle cannot run code (issue 17, defect 1)."""

import ast
import os
from pathlib import Path

import pytest
import torch

from adasr import cli
from adasr.train import CheckpointError, load_checkpoint, train
from test_train import TINY  # tests/ is on sys.path (rootdir-relative, no package)

ROOT = Path(__file__).resolve().parents[1]


class _MakesFolder:
    """Pickles as a call to ``os.mkdir(path)``: the stand-in for arbitrary code run while a file is unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _torch_load_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "load" and isinstance(n.func.value, ast.Name) and n.func.value.id == "torch"]


def test_every_torch_load_in_the_package_and_tools_is_weights_only():
    files = sorted((ROOT / "adasr").rglob("*.py")) + sorted((ROOT / "tools").rglob("*.py"))
    found = 0
    for f in files:
        for call in _torch_load_calls(f):
            found += 1
            kw = {k.arg: k.value for k in call.keywords}
            assert "weights_only" in kw, f"{f.relative_to(ROOT)}:{call.lineno} calls torch.load without weights_only"
            value = kw["weights_only"]
            assert isinstance(value, ast.Constant) and value.value is True, \
                f"{f.relative_to(ROOT)}:{call.lineno} calls torch.load with weights_only other than True"
    assert found >= 2  # train.load_checkpoint and lpips' heads at least: the scan does see the calls


def test_the_crafted_file_would_run_code_without_weights_only(tmp_path):
    """The control: the same file *does* run its payload when unpickled fully (so the refusal below is real)."""
    marker = tmp_path / "ran"
    torch.save({"model": _MakesFolder(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.is_dir()


def test_load_checkpoint_refuses_a_pickled_callable_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"model": _MakesFolder(marker), "step": 1}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt was refused: it pickles objects other than tensors"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_resuming_training_from_a_crafted_checkpoint_is_refused_before_anything_runs(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "ran"
    out.mkdir()
    torch.save({"config": TINY.to_dict(), "model": _MakesFolder(marker)}, out / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="refused"):
        train(TINY, out, device="cpu", progress=False)
    assert not marker.exists()


def test_adasr_train_reports_a_crafted_checkpoint_as_one_error_line(tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "ran"
    out.mkdir()
    torch.save({"model": _MakesFolder(marker)}, out / "checkpoint.pt")
    code = cli.main(["train", "--out", str(out), "--steps", "1", "--batch-size", "1", "--crop", "16",
                     "--channels", "8", "16", "--precision", "fp32", "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and not marker.exists()
    assert err.count("\n") == 1 and err.startswith("adasr: error: ") and "was refused" in err


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04 truncated zip"])
def test_truncated_or_foreign_files_are_reported_as_such(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_a_checkpoint_that_is_not_a_dict_is_refused(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")


def test_real_checkpoints_load_weights_only_including_sparse_masks(tmp_path):
    """What train writes (optimiser state, generator states, config, sparse masks and update history) passes the
    weights-only unpickler."""
    from adasr.acceleration.sparse import SparseConfig
    from adasr.train import TrainConfig

    cfg = TrainConfig(**{**TINY.__dict__, "sparse": SparseConfig(density=0.5, update_every=1)})
    ck_path = train(cfg, tmp_path / "sparse", device="cpu", progress=False, max_seconds=0.0)
    ck = load_checkpoint(ck_path)
    assert ck["step"] == 1 and "sparse" in ck and set(ck) >= {"model", "ema", "opt", "generators", "config"}
