"""Tests for checkpoints: safe loading, self-description, and one-line errors for bad files."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch
from torch import nn

import landscape.checkpoint as checkpoint_module
from landscape.checkpoint import (
    FORMAT,
    file_sha256,
    load_checkpoint,
    load_state_into,
    model_from_checkpoint,
    save_checkpoint,
)
from landscape.errors import LandscapeError
from landscape.models import create_model

ARGS = {"num_classes": 10, "in_channels": 1}

# One torch thread: on the shared 2-core machine, more threads spin and wait (8x slower).
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("resnet20", **ARGS).eval()


@pytest.fixture
def load_spy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records the keyword arguments of every torch.load call."""
    calls: list[dict[str, Any]] = []
    real = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _one_line_error(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(LandscapeError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and "\x1b" not in msg, msg
    return msg


def test_round_trip_loads_with_weights_only(
    tmp_path: Path, model: nn.Module, load_spy: list[dict[str, Any]]
) -> None:
    path = save_checkpoint(tmp_path / "a.pt", model, "resnet20", ARGS)
    ckpt = load_checkpoint(path)
    assert load_spy and all(call.get("weights_only") is True for call in load_spy)
    assert ckpt["format"] == FORMAT
    fresh = create_model("resnet20", **ARGS)
    load_state_into(fresh, ckpt["state_dict"], "test")
    assert _same_weights(fresh, model)


def test_self_describing_rebuild_from_the_file_alone(
    tmp_path: Path, model: nn.Module, load_spy: list[dict[str, Any]]
) -> None:
    config = {"name": "exp", "train": {"epochs": 3, "milestones": [1, 2]}}
    metrics = {"train_loss": 0.5, "test_acc": 90.0}
    path = save_checkpoint(
        tmp_path / "a.pt", model, "resnet20", ARGS, config=config, epoch=3, metrics=metrics
    )
    rebuilt, ckpt = model_from_checkpoint(path)
    assert all(call.get("weights_only") is True for call in load_spy)
    assert ckpt["model_name"] == "resnet20"
    assert ckpt["model_args"] == ARGS
    assert ckpt["config"] == config
    assert ckpt["epoch"] == 3
    assert ckpt["metrics"] == metrics
    assert _same_weights(rebuilt, model)
    x = torch.randn(2, 1, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt.eval()(x), model(x))


def test_extra_entries_are_kept(tmp_path: Path, model: nn.Module) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(
        tmp_path / "a.pt", model, "resnet20", ARGS, extra={"optimizer": opt.state_dict()}
    )
    assert load_checkpoint(path)["optimizer"]["param_groups"][0]["lr"] == 0.1


def test_bare_state_dict_loads_given_a_model_name(tmp_path: Path, model: nn.Module) -> None:
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    rebuilt, ckpt = model_from_checkpoint(path, "resnet20", ARGS)
    assert _same_weights(rebuilt, model)
    assert ckpt.get("model_name") is None
    msg = _one_line_error(model_from_checkpoint, path)
    assert "bare state_dict" in msg and "model.name" in msg


def test_wrapped_state_dict_of_the_original_code_loads(tmp_path: Path, model: nn.Module) -> None:
    # The original scripts saved {'acc': ..., 'epoch': ..., 'state_dict': ...}.
    path = tmp_path / "orig.t7"
    torch.save({"acc": 93.0, "epoch": 300, "state_dict": model.state_dict()}, path)
    rebuilt, ckpt = model_from_checkpoint(path, "resnet20", ARGS)
    assert _same_weights(rebuilt, model)
    assert ckpt["epoch"] == 300


def test_mismatched_model_name(tmp_path: Path, model: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "a.pt", model, "resnet20", ARGS)
    msg = _one_line_error(model_from_checkpoint, path, "resnet56")
    assert "'resnet20'" in msg and "'resnet56'" in msg and str(path) in msg


def test_model_args_that_differ_from_the_checkpoints(tmp_path: Path, model: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "a.pt", model, "resnet20", ARGS)
    given = {**ARGS, "num_classes": ARGS["num_classes"] + 1}
    msg = _one_line_error(model_from_checkpoint, path, "resnet20", given)
    assert f"num_classes={ARGS['num_classes']}" in msg and str(path) in msg
    # Arguments that agree, or that the checkpoint does not record, are fine.
    model_from_checkpoint(path, "resnet20", {**ARGS, "unrecorded": 1})


def test_state_dict_of_another_architecture_names_a_key(tmp_path: Path, model: nn.Module) -> None:
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    msg = _one_line_error(model_from_checkpoint, path, "resnet56", ARGS)
    assert "missing keys (e.g. layer" in msg and "model.name" in msg


def test_state_dict_of_another_shape_names_the_key(tmp_path: Path, model: nn.Module) -> None:
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    msg = _one_line_error(model_from_checkpoint, path, "resnet20", {"in_channels": 3})
    assert "shape mismatch at conv1.weight" in msg and "(16, 1, 3, 3)" in msg


def test_missing_file(tmp_path: Path) -> None:
    msg = _one_line_error(load_checkpoint, tmp_path / "nope.pt")
    assert "not found" in msg and "train" in msg


@pytest.mark.parametrize(
    "content, words",
    [
        (b"this is not a checkpoint \x00\x01\x02", ["cannot be read", "copy it again"]),
        # torch explains this in 6 lines
        (b"not a checkpoint either", ["cannot be read"]),
        (b"", ["cannot be read", "empty", "train again"]),
    ],
    ids=["garbage", "garbage_opcode", "empty"],
)
def test_unreadable_file_is_one_line(tmp_path: Path, content: bytes, words: list[str]) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    msg = _one_line_error(load_checkpoint, path)
    for w in words:
        assert w in msg


def test_pickled_module_is_refused_in_one_line(tmp_path: Path, model: nn.Module) -> None:
    # weights_only=True must refuse arbitrary pickles; torch's own message is many lines long.
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    msg = _one_line_error(load_checkpoint, path)
    assert "state_dict()" in msg


@pytest.mark.parametrize("obj", [[1, 2], {"model": {"w": 1}}], ids=["list", "dict"])
def test_file_without_state_dict(tmp_path: Path, obj: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    assert "holds no state_dict" in _one_line_error(load_checkpoint, path)


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path, model: nn.Module) -> None:
    path = tmp_path / "deep" / "dir" / "final.pt"
    save_checkpoint(path, model, "resnet20", ARGS, epoch=1)
    save_checkpoint(path, model, "resnet20", ARGS, epoch=2)  # replaces in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["final.pt"]
    assert load_checkpoint(path)["epoch"] == 2


def test_failed_write_keeps_the_old_file(
    tmp_path: Path, model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "final.pt", model, "resnet20", ARGS, epoch=1)

    def half_write(obj: object, f: BinaryIO) -> None:
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, "resnet20", ARGS, epoch=2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_full_disk_is_an_os_error_naming_the_file(
    tmp_path: Path, model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /dev/full fails every write with ENOSPC, as a full disk does; torch.save to a path said
    # only "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos ...".
    path = save_checkpoint(tmp_path / "last.pt", model, "resnet20", ARGS, epoch=1)
    monkeypatch.setattr(
        checkpoint_module, "open", lambda f, mode: open("/dev/full", mode), raising=False
    )
    with pytest.raises(OSError) as info:
        save_checkpoint(path, model, "resnet20", ARGS, epoch=2)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_folder_is_one_line(tmp_path: Path) -> None:
    msg = _one_line_error(load_checkpoint, tmp_path)
    assert "is a folder" in msg and str(tmp_path) in msg


@pytest.mark.parametrize("make_folder", [False, True], ids=["missing", "folder"])
def test_file_sha256_of_no_checkpoint_file_is_one_line(tmp_path: Path, make_folder: bool) -> None:
    # The Hessian map hashes its checkpoint before loading it: a bare OSError said no more than
    # "No such file or directory".
    path = tmp_path / "final.pt"
    if make_folder:
        path.mkdir()
    msg = _one_line_error(file_sha256, path)
    assert str(path) in msg and ("train first" in msg or "is a folder" in msg)


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # over one read block
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
