"""Tests for landscape.data: digits, CIFAR from tiny on-disk files, import paths, tensors."""

from __future__ import annotations

import os
import pickle
import re
import sys
import textwrap
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from landscape.data import (
    DataInfo,
    data_info,
    dataset_to_tensors,
    eval_dataset,
    list_datasets,
    load_datasets,
)
from landscape.errors import LandscapeError


def make_cfg(**over: Any) -> types.SimpleNamespace:
    """A stand-in for config.DataConfig with its defaults, so these tests do not need config.py."""
    base: dict[str, Any] = dict(
        name="digits",
        root="data",
        download=False,
        subset=None,
        test_subset=None,
        resize=None,
        augment=True,
        seed=0,
        args={},
    )
    base.update(over)
    return types.SimpleNamespace(**base)


# ----------------------------------------------------------------------------- digits


def test_digits_sizes_shapes_and_info() -> None:
    train, test, info = load_datasets(make_cfg())
    assert (len(train), len(test)) == (1437, 360)
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    assert info == data_info(make_cfg())
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == ("digits", 10, 1, 8)
    for ds in (train, test):
        labels = ds.tensors[1]
        assert labels.dtype == torch.int64
        assert set(labels.tolist()) == set(range(10))


def test_digits_train_is_normalized_with_its_own_statistics() -> None:
    train, test, info = load_datasets(make_cfg())
    x = train.tensors[0]
    assert abs(x.mean().item()) < 1e-4
    assert abs(x.std().item() - 1) < 1e-3
    # Undoing the normalization recovers the raw pixel range 0..16 / 16.
    raw = test.tensors[0] * info.std[0] + info.mean[0]
    assert raw.min().item() == pytest.approx(0, abs=1e-5)
    assert raw.max().item() == pytest.approx(1, abs=1e-5)


def test_digits_split_is_deterministic_and_seeded() -> None:
    a_train, a_test, _ = load_datasets(make_cfg(seed=0))
    b_train, b_test, _ = load_datasets(make_cfg(seed=0))
    c_train, _, _ = load_datasets(make_cfg(seed=1))
    torch.testing.assert_close(a_train.tensors[0], b_train.tensors[0])
    torch.testing.assert_close(a_test.tensors[1], b_test.tensors[1])
    assert not torch.equal(a_train.tensors[1], c_train.tensors[1])


def test_digits_split_is_disjoint() -> None:
    train, test, _ = load_datasets(make_cfg())
    train_rows = {tuple(r.tolist()) for r in train.tensors[0].flatten(1)}
    test_rows = [tuple(r.tolist()) for r in test.tensors[0].flatten(1)]
    # The digits set has a few exact duplicate images, so allow a handful of coincidences.
    assert sum(r in train_rows for r in test_rows) < 10


def test_digits_resize() -> None:
    train, test, info = load_datasets(make_cfg(resize=16))
    assert train[0][0].shape == (1, 16, 16)
    assert test.tensors[0].shape == (360, 1, 16, 16)
    assert info.image_size == 16
    # The resized images are a smoothed version of the originals, not new data.
    small = load_datasets(make_cfg())[0].tensors[0]
    down = torch.nn.functional.avg_pool2d(train.tensors[0], 2)
    assert torch.corrcoef(torch.stack([down.flatten(), small.flatten()]))[0, 1] > 0.95


def test_digits_is_cached_but_callers_get_their_own_tensors() -> None:
    train, _, _ = load_datasets(make_cfg())
    train.tensors[0].zero_()
    again, _, _ = load_datasets(make_cfg())
    assert again.tensors[0].abs().sum() > 0


def test_subsets_are_seeded_and_shared_between_training_and_eval() -> None:
    cfg = make_cfg(subset=100, test_subset=30, seed=3)
    train, test, _ = load_datasets(cfg)
    assert (len(train), len(test)) == (100, 30)
    x_fit, y_fit = dataset_to_tensors(train)
    x_eval, y_eval = dataset_to_tensors(eval_dataset(cfg, "train"))
    torch.testing.assert_close(x_fit, x_eval)
    torch.testing.assert_close(y_fit, y_eval)
    assert len(eval_dataset(cfg, "test")) == 30
    other = dataset_to_tensors(load_datasets(make_cfg(subset=100, seed=4))[0])[1]
    assert not torch.equal(y_fit, other)


def test_subset_too_large_names_the_key() -> None:
    with pytest.raises(LandscapeError, match=r"data\.subset: 5000 is more than the 1437"):
        load_datasets(make_cfg(subset=5000))
    with pytest.raises(LandscapeError, match=r"data\.test_subset: 361 .* 360"):
        eval_dataset(make_cfg(test_subset=361), "test")
    with pytest.raises(LandscapeError, match=r"data\.resize: expected a positive integer"):
        load_datasets(make_cfg(resize=0))


def test_bad_split_and_unknown_name() -> None:
    with pytest.raises(LandscapeError, match=r"'valid'.*'train' or 'test'"):
        eval_dataset(make_cfg(), "valid")
    with pytest.raises(LandscapeError, match=r"data\.name: unknown data set 'digts'.*digits"):
        load_datasets(make_cfg(name="digts"))


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_data_set_describes_itself(name: str) -> None:
    info = data_info(make_cfg(name=name, resize=24))
    assert isinstance(info, DataInfo)
    assert info.name == name and info.image_size == 24 and info.num_classes >= 2
    assert len(info.mean) == len(info.std) == info.in_channels
    assert all(s > 0 for s in info.std)


# ----------------------------------------------------------------------------- CIFAR on disk


def _dump(path: Path, obj: dict[str, Any]) -> None:
    # str keys: the real files are Python 2 pickles whose byte-string keys torchvision reads back
    # as str (encoding="latin1"), so str keys reproduce exactly what it sees.
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """Tiny CIFAR-10 (20 train, 6 test) and CIFAR-100 (12 train, 5 test) in torchvision layout."""
    rng = np.random.default_rng(0)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        _dump(c10 / f"data_batch_{i}", {"data": _images(rng, 4), "labels": [i, 9, 0, i + 4]})
    _dump(c10 / "test_batch", {"data": _images(rng, 6), "labels": [0, 1, 2, 3, 4, 5]})
    _dump(c10 / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})

    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    for split, n in (("train", 12), ("test", 5)):
        fine = rng.integers(0, 100, size=n).tolist()
        _dump(
            c100 / split,
            {"data": _images(rng, n), "fine_labels": fine, "coarse_labels": [f // 5 for f in fine]},
        )
    _dump(
        c100 / "meta",
        {
            "fine_label_names": [f"f{i}" for i in range(100)],
            "coarse_label_names": [f"c{i}" for i in range(20)],
        },
    )
    return tmp_path


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip only torchvision's md5 comparison; a missing file still counts as missing."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def _raw_image(root: Path, batch: str, row: int) -> torch.Tensor:
    with open(root / "cifar-10-batches-py" / batch, "rb") as f:
        data = pickle.load(f)["data"]
    return torch.as_tensor(data[row].reshape(3, 32, 32), dtype=torch.float32) / 255


@pytest.mark.usefixtures("no_md5")
def test_cifar10_shapes_labels_and_normalization(cifar_root: Path) -> None:
    train, test, info = load_datasets(make_cfg(name="cifar10", root=str(cifar_root)))
    assert (len(train), len(test)) == (20, 6)
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 3, 32)
    x, y = test[2]
    assert x.shape == (3, 32, 32) and y == 2
    mean = torch.tensor(info.mean).view(3, 1, 1)
    std = torch.tensor(info.std).view(3, 1, 1)
    torch.testing.assert_close(x, (_raw_image(cifar_root, "test_batch", 2) - mean) / std)
    _, labels = dataset_to_tensors(
        eval_dataset(make_cfg(name="cifar10", root=str(cifar_root)), "train")
    )
    assert labels.tolist()[:4] == [1, 9, 0, 5]


@pytest.mark.usefixtures("no_md5")
def test_cifar_augments_the_training_set_only(cifar_root: Path) -> None:
    cfg = make_cfg(name="cifar10", root=str(cifar_root))
    train, test, _ = load_datasets(cfg)
    plain = eval_dataset(cfg, "train")
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(8)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    assert all(d.shape == (3, 32, 32) for d in draws)
    assert torch.equal(plain[0][0], plain[0][0])
    assert torch.equal(test[0][0], test[0][0])
    no_aug, _, _ = load_datasets(make_cfg(name="cifar10", root=str(cifar_root), augment=False))
    torch.testing.assert_close(no_aug[0][0], plain[0][0])


@pytest.mark.usefixtures("no_md5")
def test_cifar_resize_and_subsets(cifar_root: Path) -> None:
    cfg = make_cfg(name="cifar10", root=str(cifar_root), resize=16, subset=7, test_subset=3)
    train, test, info = load_datasets(cfg)
    assert (len(train), len(test), info.image_size) == (7, 3, 16)
    assert train[0][0].shape == test[0][0].shape == (3, 16, 16)
    x, y = dataset_to_tensors(eval_dataset(cfg, "train"))
    assert x.shape == (7, 3, 16, 16) and y.dtype == torch.int64
    with pytest.raises(LandscapeError, match=r"data\.subset: 21 .* 20"):
        load_datasets(make_cfg(name="cifar10", root=str(cifar_root), subset=21))


@pytest.mark.usefixtures("no_md5")
def test_cifar100(cifar_root: Path) -> None:
    train, test, info = load_datasets(make_cfg(name="cifar100", root=str(cifar_root)))
    assert (len(train), len(test), info.num_classes) == (12, 5, 100)
    x, y = dataset_to_tensors(test)
    assert x.shape == (5, 3, 32, 32)
    assert 0 <= int(y.min()) and int(y.max()) < 100


def test_cifar_missing_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError) as err:
        load_datasets(make_cfg(name="cifar10", root=str(tmp_path)))
    msg = str(err.value)
    assert "cifar10 not found under" in msg and str(tmp_path) in msg
    assert "cifar-10-batches-py/" in msg and "data.download: true" in msg


def test_cifar_failed_download_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args: Any, **kwargs: Any) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    cfg = make_cfg(name="cifar10", root=str(tmp_path), download=True)
    with pytest.raises(LandscapeError, match=r"download failed \(network is unreachable\)"):
        load_datasets(cfg)


def test_cifar_checksum_mismatch_is_reported(cifar_root: Path) -> None:
    # Without the md5 bypass the tiny files fail torchvision's checksum, as a corrupt copy would.
    with pytest.raises(LandscapeError, match="corrupted.*cifar-100-python/"):
        eval_dataset(make_cfg(name="cifar100", root=str(cifar_root)), "test")


def test_a_partial_cifar_folder_names_its_path(cifar_root: Path, monkeypatch: Any) -> None:
    import torchvision.datasets.cifar as tv_cifar

    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    folder = str(cifar_root / "cifar-10-batches-py")
    cfg = make_cfg(name="cifar10", root=str(cifar_root))
    with pytest.raises(LandscapeError, match=f"in '{folder}' is incomplete or corrupted"):
        load_datasets(cfg)
    # With download: true and no network, the folder is still there but broken, not missing.
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", _offline)
    with pytest.raises(LandscapeError) as err:
        load_datasets(make_cfg(name="cifar10", root=str(cifar_root), download=True))
    msg = str(err.value)
    assert "corrupted" in msg and "download failed (network is unreachable)" in msg
    assert "not found" not in msg


def test_a_root_inside_the_cifar_folder_says_to_go_up(cifar_root: Path) -> None:
    cfg = make_cfg(name="cifar10", root=str(cifar_root / "cifar-10-batches-py"))
    with pytest.raises(LandscapeError, match=r"is the data set's own folder: set data\.root to"):
        load_datasets(cfg)


def test_an_unextracted_cifar_archive_says_to_extract_it(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(LandscapeError, match=r"holds cifar-10-python\.tar\.gz: extract it there"):
        load_datasets(make_cfg(name="cifar10", root=str(tmp_path)))


def _offline(*args: Any, **kwargs: Any) -> None:
    raise OSError("network is unreachable")


# ----------------------------------------------------------------------------- import paths

USER_MODULE = """
import torch
from torch.utils.data import Dataset, TensorDataset

class Pairs(Dataset):
    num_classes = 7

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((2, 5, 5), float(i)), i % 3

def load(n_train=10, n_test=4, as_dict=False):
    g = torch.Generator().manual_seed(0)
    train = TensorDataset(torch.randn(n_train, 3, 6, 6, generator=g), torch.arange(n_train) % 4)
    test = TensorDataset(torch.randn(n_test, 3, 6, 6, generator=g), torch.arange(n_test) % 5)
    return {"train": train, "test": test} if as_dict else (train, test)

def with_attr():
    return Pairs(6), Pairs(3)

def wrong():
    return 42

def wrong_dict():
    return {"training": None}

def flat():
    return TensorDataset(torch.zeros(3, 4), torch.zeros(3)), TensorDataset(torch.zeros(1, 4),
                                                                         torch.zeros(1))
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway module on sys.path that provides data sets; returns its name."""
    name = "landscape_test_userdata"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name
    sys.modules.pop(name, None)


def test_import_path_with_args(user_module: str) -> None:
    cfg = make_cfg(name=f"{user_module}:load", args={"n_train": 12, "n_test": 5}, subset=8)
    train, test, info = load_datasets(cfg)
    assert (len(train), len(test)) == (8, 5)
    # num_classes = 1 + the largest label over both sets (test labels reach 4).
    assert info == DataInfo(cfg.name, 5, 3, 6, (0.0,) * 3, (1.0,) * 3)
    as_dict = make_cfg(name=f"{user_module}:load", args={"as_dict": True})
    assert len(eval_dataset(as_dict, "test")) == 4


def test_import_path_uses_num_classes_attribute(user_module: str) -> None:
    info = data_info(make_cfg(name=f"{user_module}:with_attr"))
    assert (info.num_classes, info.in_channels, info.image_size) == (7, 2, 5)
    x, y = dataset_to_tensors(eval_dataset(make_cfg(name=f"{user_module}:with_attr"), "train"))
    assert x.shape == (6, 2, 5, 5) and y.tolist() == [0, 1, 2, 0, 1, 2]


def test_import_path_flat_features(user_module: str) -> None:
    # Feature vectors (an MLP's input) are accepted: in_channels is the feature count.
    info = data_info(make_cfg(name=f"{user_module}:flat"))
    assert (info.in_channels, info.image_size) == (4, 0)


def test_resize_of_an_import_path_is_refused_not_ignored(user_module: str) -> None:
    # The function's 6x6 images came back unresized while data.resize said 16.
    cfg = make_cfg(name=f"{user_module}:load", resize=16)
    for call in (load_datasets, data_info, lambda c: eval_dataset(c, "train")):
        with pytest.raises(LandscapeError, match=r"data\.resize: resizes the bundled data sets"):
            call(cfg)


@pytest.mark.parametrize(
    ("name", "args", "pattern"),
    [
        ("no_such_module_xyz:load", {}, r"data\.name: cannot import 'no_such_module_xyz:load' \("),
        ("{m}:missing", {}, r"cannot import '{m}:missing' \(module has no 'missing'\)"),
        ("{m}:", {}, r"expected 'pkg\.module:function'"),
        ("{m}:load", {"bogus": 1}, r"data\.args: .*bogus"),
        ("{m}:wrong", {}, r"returned a int; expected \(train_dataset, test_dataset\)"),
        ("{m}:wrong_dict", {}, r"keys \['training'\]; expected"),
    ],
)
def test_import_path_errors(user_module: str, name: str, args: dict, pattern: str) -> None:
    cfg = make_cfg(name=name.format(m=user_module), args=args)
    with pytest.raises(LandscapeError, match=pattern.format(m=user_module)):
        load_datasets(cfg)


# ----------------------------------------------------------------------------- tensors


class _Plain(Dataset):
    """A data set with no TensorDataset inside, to force the generic path."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i].double(), int(self.y[i])


def test_dataset_to_tensors_fast_and_generic_paths_agree() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 1, 4, 4, generator=g)
    y = torch.arange(50) % 10
    tensor_ds = TensorDataset(x, y)
    nested = Subset(Subset(tensor_ds, list(range(5, 45))), list(range(0, 40, 2)))

    xa, ya = dataset_to_tensors(tensor_ds)
    assert xa.shape == (50, 1, 4, 4) and xa.dtype == torch.float32 and ya.dtype == torch.int64
    torch.testing.assert_close(xa, x)

    xs, ys = dataset_to_tensors(nested)
    torch.testing.assert_close(xs, x[5:45:2])
    torch.testing.assert_close(ys, y[5:45:2])

    for n, seed in ((12, 0), (12, 1), (50, 2)):
        fast = dataset_to_tensors(tensor_ds, n=n, seed=seed)
        slow = dataset_to_tensors(_Plain(x, y), n=n, seed=seed, batch_size=7)
        torch.testing.assert_close(fast, slow)
        assert slow[0].dtype == torch.float32 and slow[1].dtype == torch.int64


def test_dataset_to_tensors_subset_is_seeded() -> None:
    ds = TensorDataset(torch.arange(100, dtype=torch.float32).view(100, 1, 1, 1), torch.arange(100))
    a = dataset_to_tensors(ds, n=20, seed=5)[1]
    b = dataset_to_tensors(ds, n=20, seed=5)[1]
    c = dataset_to_tensors(ds, n=20, seed=6)[1]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 20
    with pytest.raises(LandscapeError, match="cannot take 101 examples from a data set of 100"):
        dataset_to_tensors(ds, n=101)


@pytest.mark.parametrize("seed", [-1, 2**64, True])
def test_a_seed_torch_cannot_take_is_a_config_error(seed: Any) -> None:
    from landscape.config import config_from_dict

    # Without the check, 2**64 reached torch.Generator.manual_seed as a bare ValueError traceback.
    pattern = r"data\.seed: expected a whole number from 0 to \d+, got"
    with pytest.raises(LandscapeError, match=pattern):
        load_datasets(make_cfg(seed=seed))
    config_pattern = r"data\.seed: expected (a whole number from 0 to \d+|an integer), got"
    with pytest.raises(LandscapeError, match=config_pattern):
        config_from_dict({"name": "t", "data": {"seed": seed}})


class _Bytes(Dataset):
    """uint8 images turned into float32 one by one, as torchvision's CIFAR does."""

    def __init__(self, n: int) -> None:
        self.x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i].float() / 255, i % 10


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) * 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc")
def test_dataset_to_tensors_holds_the_set_once() -> None:
    ds = _Bytes(6000)
    size = 6000 * 3 * 32 * 32 * 4  # 74 MB of float32
    dataset_to_tensors(ds, n=10, batch_size=500)  # warm up the loader's own allocations
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    before = _peak_rss_bytes()
    x, y = dataset_to_tensors(ds, batch_size=500)
    grown = _peak_rss_bytes() - before
    assert x.shape == (6000, 3, 32, 32) and x.dtype == torch.float32
    torch.testing.assert_close(x[123], ds[123][0])
    assert y[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    # Batches joined by torch.cat held the set twice at the peak (2.07 times here); now it is
    # held once, plus a batch and what the allocator keeps (1.3 times).
    assert grown < 1.6 * size, f"peak grew by {grown / size:.2f} times the set"
    with pytest.raises(LandscapeError, match="the data set is empty"):
        dataset_to_tensors(_Bytes(0))


def test_cifar10_is_normalized_as_in_the_papers_code() -> None:
    # The paper's cifar10/dataloader.py: Normalize(mean=[x/255.0 for x in [125.3, 123.0, 113.9]],
    # std=[x/255.0 for x in [63.0, 62.1, 66.7]]); 0.4822 and 0.4465 were 1.6e-4 off in G and B.
    info = data_info(make_cfg(name="cifar10"))
    assert info.mean == tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
    assert info.std == tuple(v / 255.0 for v in (63.0, 62.1, 66.7))


# ----------------------------------------------------------------------------- vs training


@pytest.mark.parametrize(
    ("now", "splits", "pattern"),
    [
        ({}, ["train", "test"], None),
        ({"subset": 32}, ["train"], None),  # a prefix of the same permutation: all seen
        ({"root": "elsewhere", "download": True, "augment": False}, ["train"], None),
        ({"resize": None}, ["test"], r"data\.resize: 16 in training, None now"),
        ({"name": "cifar10"}, ["train"], r"data\.name: 'digits' in training, 'cifar10' now"),
        ({"seed": 1}, ["test"], r"data\.seed: 0 in training, 1 now \(another train/test split\)"),
        ({"subset": None}, ["train"], r"data\.subset: 64 \(seed 0\) in training, None \(seed 0\)"),
        ({"subset": 65}, ["train"], r"data\.subset: 64 .* 65 .* not trained on"),
        ({"subset": None}, ["test"], None),  # the test split is the same either way
    ],
)
def test_differs_from_training(now: dict, splits: list[str], pattern: str | None) -> None:
    from landscape.data import differs_from_training

    trained = vars(make_cfg(subset=64, resize=16))
    diffs = differs_from_training(trained, make_cfg(**{**trained, **now}), splits)
    if pattern is None:
        assert diffs == []
    else:
        assert len(diffs) == 1 and re.search(pattern, diffs[0]), diffs


def test_a_smaller_subset_with_the_same_seed_was_seen_in_training() -> None:
    # What differs_from_training relies on to let data.subset shrink without a warning.
    big = load_datasets(make_cfg(subset=64, seed=5))[0]
    small = load_datasets(make_cfg(subset=32, seed=5))[0]
    assert set(small.indices) <= set(big.indices)


def test_a_surface_on_other_data_than_training_warns(make_config: Any) -> None:
    from landscape.surface import job_from_config
    from landscape.train import load_trained

    # The shared checkpoint was trained on 8x8 digits; 16x16 inputs are not what it learned.
    with pytest.warns(UserWarning, match=r"trained on other data .*data\.resize: None in training"):
        job_from_config(make_config(data={"resize": 16}))
    # Said once per checkpoint and difference: reproduce's trajectory and Hessian stages load
    # the same checkpoint again (load_trained warns for all three).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_trained(make_config(data={"resize": 16}), make_config().final_checkpoint, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job_from_config(make_config(data={"subset": 48}))
