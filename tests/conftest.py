"""Shared fixtures: a tiny checkpoint trained once per session, configs over it, a tiny conv net."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from landscape.storage import SurfaceWriter, create_surface_file

# Digits (8x8 grey images) with a 64-image train subset: resnet20 trains an epoch in ~2 s.
TINY_RAW: dict[str, Any] = {
    "name": "t",
    "device": "cpu",
    "model": {"name": "resnet20"},
    "data": {"name": "digits", "subset": 64, "test_subset": 32},
    "train": {"epochs": 1, "batch_size": 32},
    "surface": {"x": [-1, 1, 5], "y": [-1, 1, 3], "samples": 32, "batch_size": 32},
}


def write_surface_file(
    path: Path,
    x: np.ndarray,
    y: np.ndarray | None,
    metrics: dict[str, np.ndarray],
    repeats: int = 1,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """A finished surface file holding `metrics` (each shaped like the grid, with a leading
    repeat axis when repeats > 1) over placeholder directions."""
    ndirs = 1 if y is None else 2
    dirs = [[{"w": np.zeros(2)} for _ in range(ndirs)] for _ in range(repeats)]
    create_surface_file(path, x, y, list(metrics), dirs, attrs or {})
    shape = next(iter(metrics.values())).shape
    index = tuple(i.ravel() for i in np.indices(shape))
    with SurfaceWriter(path) as w:
        w.write({n: v[index] for n, v in metrics.items()}, index)
    return path


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet20 trained for one epoch on 64 digits; shared by every test that needs a checkpoint."""
    from landscape.config import config_from_dict
    from landscape.train import train

    out = tmp_path_factory.mktemp("trained")
    cfg = config_from_dict({**TINY_RAW, "out": str(out)})
    with one_thread():
        return train(cfg, progress=False)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run on one torch thread: on a few shared cores, extra threads only spin and wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """`one_thread` around a test."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def make_config_at(trained_checkpoint: Path) -> Callable[..., Any]:
    """`make_config_at(out, **over)`: a validated Config over the shared checkpoint, out in `out`.

    Keyword sections are merged into TINY_RAW (nested mappings merge, other values replace).
    Session-scoped, for module- or session-scoped fixtures; tests can use `make_config`.
    """
    import copy

    from landscape.config import config_from_dict, deep_merge

    def make(out: Path, **over: Any) -> Any:
        raw = {**copy.deepcopy(TINY_RAW), "out": str(out), "checkpoint": str(trained_checkpoint)}
        return config_from_dict(deep_merge(raw, over))

    return make


@pytest.fixture
def make_config(make_config_at: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    """`make_config(surface={...}, **top)`: `make_config_at` writing into tmp_path."""

    def make(**over: Any) -> Any:
        return make_config_at(tmp_path, **over)

    return make


class TinyConvNet(nn.Module):
    """conv-BN-ReLU-pool-linear on (B, 1, 8, 8) images: every kind of tensor a direction meets."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))  # (B, 4, 8, 8)
        return self.fc(h.mean(dim=(2, 3)))  # (B, classes)


@pytest.fixture
def tiny_net() -> nn.Module:
    """A seeded TinyConvNet in eval mode, with non-trivial BatchNorm running statistics."""
    torch.manual_seed(0)
    net = TinyConvNet()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[..., Path]:
    """`write_yaml(content, name="config.yaml")`: a dict (dumped) or text written into tmp_path."""
    import yaml

    def write(content: dict[str, Any] | str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def train_config(tmp_path: Path) -> Callable[..., Any]:
    """`train_config(folder, **sections)`: TINY_RAW for 3 epochs, training into tmp_path/folder.

    Unlike `make_config`, it has no `checkpoint`, so `train` writes a fresh run of its own.
    """
    import copy

    from landscape.config import config_from_dict, deep_merge

    def make(folder: str = "run", **over: Any) -> Any:
        raw = copy.deepcopy(TINY_RAW)
        raw["train"] = {**raw["train"], "epochs": 3, "save_every": 2}
        raw["out"] = str(tmp_path / folder)
        return config_from_dict(deep_merge(raw, over))

    return make
