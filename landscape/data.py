"""Data sets for training and landscape evaluation: digits, CIFAR-10/100 and user import paths."""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from landscape.config import check_seed
from landscape.errors import ConfigError, LandscapeError, unknown_name_message

if TYPE_CHECKING:
    from landscape.config import DataConfig

SPLITS = ("train", "test")


@dataclass
class DataInfo:
    """What a model needs to know about a data set, and how its pixels were normalized."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


# A loader returns one whole split (before any subset); `augment` only matters for training.
Loader = Callable[["DataConfig", str, bool], Dataset]
InfoFn = Callable[["DataConfig"], DataInfo]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered data set: how to load a split and how to describe it without loading it."""

    load: Loader
    info: InfoFn


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, info: InfoFn) -> Callable[[Loader], Loader]:
    """Decorator that registers `loader(cfg, split, augment)` under `name`."""

    def wrap(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"data set {name!r} is registered twice")
        DATASETS[name] = DatasetEntry(loader, info)
        return loader

    return wrap


def list_datasets() -> list[str]:
    """Registered data set names, sorted (import paths 'pkg.module:function' also work)."""
    return sorted(DATASETS)


# ----------------------------------------------------------------------------- public API


def load_datasets(cfg: DataConfig) -> tuple[Dataset, Dataset, DataInfo]:
    """(train set for training, test set, info); the train set is augmented if cfg.augment."""
    _check_sizes(cfg)
    if _is_import_path(cfg.name):
        train, test = _call_user_function(cfg)
        info = _infer_info(cfg.name, train, test)
    else:
        entry = _entry(cfg.name)
        train = entry.load(cfg, "train", bool(cfg.augment))
        test = entry.load(cfg, "test", False)
        info = entry.info(cfg)
    return _subset(train, cfg, "train"), _subset(test, cfg, "test"), info


def eval_dataset(cfg: DataConfig, split: str) -> Dataset:
    """The 'train' or 'test' split without augmentation, with the same subset as load_datasets."""
    if split not in SPLITS:
        raise LandscapeError(f"unknown data split {split!r}; use 'train' or 'test'")
    _check_sizes(cfg)
    if _is_import_path(cfg.name):
        train, test = _call_user_function(cfg)
        ds = train if split == "train" else test
    else:
        ds = _entry(cfg.name).load(cfg, split, False)
    return _subset(ds, cfg, split)


def data_info(cfg: DataConfig) -> DataInfo:
    """Describe the data set; cheap for registered sets, calls the function for import paths."""
    _check_sizes(cfg)
    if _is_import_path(cfg.name):
        train, test = _call_user_function(cfg)
        return _infer_info(cfg.name, train, test)
    return _entry(cfg.name).info(cfg)


def differs_from_training(
    trained: Mapping[str, Any], now: DataConfig, splits: Sequence[str]
) -> list[str]:
    """How the data that `splits` of `now` hold differ from those a network was trained on
    (`trained`: the `data` section of its checkpoint's config): other inputs altogether, or a
    split holding examples it never saw in training. Empty when they agree.
    """
    was = {"name": "digits", "args": {}, "resize": None, "subset": None, "seed": 0, **trained}
    diffs = [
        f"data.{key}: {was[key]!r} in training, {getattr(now, key)!r} now"
        for key in ("name", "args", "resize")
        if (was[key] or None) != (getattr(now, key) or None)
    ]
    if diffs:
        return diffs
    if now.name == "digits" and was["seed"] != now.seed:
        # Digits ship without a split: the seed draws it, so the train split moves with it.
        return [f"data.seed: {was['seed']} in training, {now.seed} now (another train/test split)"]
    # A subset is a prefix of one seeded permutation, so a smaller one, same seed, was all seen.
    seen = was["subset"] is None or (
        now.subset is not None and now.subset <= was["subset"] and now.seed == was["seed"]
    )
    if "train" in splits and not seen:
        return [
            f"data.subset: {was['subset']} (seed {was['seed']}) in training, {now.subset} "
            f"(seed {now.seed}) now (the train split holds examples it was not trained on)"
        ]
    return []


def subset_indices(total: int, n: int | None, seed: int) -> Tensor:
    """Sorted indices of the seeded subset of n examples out of total (all when n is None).

    The one place this choice is made, so configs, streamed sets and the Python API evaluate
    the same examples.
    """
    if n is None:
        return torch.arange(total)
    if n < 1 or n > total:
        raise LandscapeError(
            f"cannot take {n} examples from a data set of {total}; use 1 to {total}, or all of it"
        )
    # Sorted so that gathering reads memory in order; the set chosen depends only on seed.
    return torch.randperm(total, generator=_generator(seed))[:n].sort().values


def is_integer(t: Tensor) -> bool:
    """Whether a tensor holds integers (class labels, token ids), not floats or booleans."""
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def as_eval_tensors(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs and targets as evaluation takes them: floating inputs in float32 (integer ones,
    such as token ids, as they are), integer labels in int64 (what the losses index with)."""
    if x.is_floating_point():
        x = x.to(torch.float32)
    return x, y.to(torch.int64) if is_integer(y) else y


def dataset_to_tensors(
    ds: Dataset, n: int | None = None, seed: int = 0, batch_size: int = 1000
) -> tuple[Tensor, Tensor]:
    """Materialize (x (N, ...), y (N,)) as `as_eval_tensors` gives them (float32 images, int64
    labels), optionally a seeded subset of n."""
    idx = subset_indices(len(ds), n, seed)  # type: ignore[arg-type]
    base, idx = _unwrap_subsets(ds, idx)
    if isinstance(base, TensorDataset):
        # Fast path: index the stored tensors instead of collating examples one by one.
        return as_eval_tensors(base.tensors[0][idx], base.tensors[1][idx])
    if len(idx) == 0:
        raise LandscapeError("the data set is empty")
    loader = DataLoader(Subset(base, idx.tolist()), batch_size=batch_size, shuffle=False)
    # Each batch is copied into tensors allocated once: a list of batches joined by torch.cat
    # would hold the set twice at its peak (1.2 GB instead of 0.6 for CIFAR-10's 50,000 images).
    x = y = torch.empty(0)
    start = 0
    for xb, yb in loader:
        xb, yb = as_eval_tensors(torch.as_tensor(xb), torch.as_tensor(yb))
        if start == 0:
            x = xb.new_empty((len(idx), *xb.shape[1:]))
            y = yb.new_empty((len(idx), *yb.shape[1:]))
        x[start : start + len(xb)] = xb
        y[start : start + len(yb)] = yb
        start += len(xb)
    return x, y


# ----------------------------------------------------------------------------- helpers


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _is_import_path(name: str) -> bool:
    return ":" in name


def _entry(name: str) -> DatasetEntry:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            unknown_name_message("data set", name, list_datasets())
            + ", or an import path 'pkg.module:function'",
            key="data.name",
        ) from None


def _check_sizes(cfg: DataConfig) -> None:
    """Reject sizes and seeds that could never work before any data is read."""
    for key in ("subset", "test_subset", "resize"):
        value = getattr(cfg, key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ConfigError(
                f"expected a positive integer or null, got {value!r}", key=f"data.{key}"
            )
    check_seed(cfg.seed, "data.seed")
    if cfg.resize is not None and _is_import_path(cfg.name):
        # A user's function returns its examples as they are; ignoring resize would be silent.
        raise ConfigError(
            f"resizes the bundled data sets only, not {cfg.name}: resize in that function "
            "(pass the size through data.args), or set data.resize: null",
            key="data.resize",
        )


def _subset(ds: Dataset, cfg: DataConfig, split: str) -> Dataset:
    """A seeded Subset of `ds` when the config asks for one; the same seed gives the same rows."""
    key = "subset" if split == "train" else "test_subset"
    n = getattr(cfg, key)
    if n is None:
        return ds
    total = len(ds)  # type: ignore[arg-type]
    if n > total:
        raise ConfigError(
            f"{n} is more than the {total} examples of the {split} set; "
            f"use at most {total}, or null for all",
            key=f"data.{key}",
        )
    return Subset(ds, torch.randperm(total, generator=_generator(cfg.seed))[:n].tolist())


def _unwrap_subsets(ds: Dataset, idx: Tensor) -> tuple[Dataset, Tensor]:
    """Follow (nested) Subsets down to the data set they index, composing the indices."""
    while isinstance(ds, Subset):
        idx = torch.as_tensor(ds.indices, dtype=torch.int64)[idx]
        ds = ds.dataset
    return ds, idx


# ----------------------------------------------------------------------------- digits

_DIGITS_TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=8)
def _digits_tensors(
    seed: int, resize: int | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, float, float]:
    """(x_train, y_train, x_test, y_test, mean, std), cached because tests load it often."""
    from sklearn.datasets import load_digits  # heavy import, only needed here

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=_generator(seed))
    # ceil, as scikit-learn's train_test_split does: 1797 -> 1437 train / 360 test.
    n_test = math.ceil(_DIGITS_TEST_FRACTION * len(x))
    test_idx, train_idx = perm[:n_test], perm[n_test:]

    # Statistics of the 8x8 train split only, so the test set does not leak into them. The
    # mean is 0 at any `resize` (bilinear interpolation commutes with this affine map); the
    # standard deviation drops below 1 when resizing smooths the images (0.85 at 16x16).
    mean = x[train_idx].mean().item()
    std = x[train_idx].std().item()
    x = (x - mean) / std
    if resize is not None:
        x = torch.nn.functional.interpolate(
            x, size=(resize, resize), mode="bilinear", align_corners=False
        )
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], mean, std


def _digits_info(cfg: DataConfig) -> DataInfo:
    *_, mean, std = _digits_tensors(int(cfg.seed), cfg.resize)
    return DataInfo("digits", 10, 1, cfg.resize or 8, (mean,), (std,))


@register_dataset("digits", info=_digits_info)
def _load_digits(cfg: DataConfig, split: str, augment: bool) -> Dataset:
    """scikit-learn's 1797 8x8 handwritten digits; never augmented (too small to crop)."""
    x_train, y_train, x_test, y_test, _, _ = _digits_tensors(int(cfg.seed), cfg.resize)
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    # Clones, so a caller that edits its tensors in place cannot corrupt the cache.
    return TensorDataset(x.clone(), y.clone())


# ----------------------------------------------------------------------------- CIFAR


def _register_cifar(
    name: str,
    class_name: str,
    folder: str,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> None:
    """Register one torchvision CIFAR variant; the two differ only in these values."""

    def info(cfg: DataConfig) -> DataInfo:
        return DataInfo(name, num_classes, 3, cfg.resize or 32, tuple(mean), tuple(std))

    def load(cfg: DataConfig, split: str, augment: bool) -> Dataset:
        from torchvision import datasets, transforms  # heavy import, only needed here

        size = cfg.resize or 32
        steps: list[Any] = []
        if cfg.resize is not None:
            steps.append(transforms.Resize(cfg.resize, antialias=True))
        if augment:
            steps += [transforms.RandomCrop(size, padding=4), transforms.RandomHorizontalFlip()]
        steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]

        root = os.path.expanduser(str(cfg.root))
        cls = getattr(datasets, class_name)
        try:
            return cls(
                root,
                train=split == "train",
                transform=transforms.Compose(steps),
                download=bool(cfg.download),
            )
        except (RuntimeError, OSError) as exc:
            raise _cifar_missing(name, root, folder, bool(cfg.download), exc) from exc

    register_dataset(name, info=info)(load)


def _cifar_missing(
    name: str, root: str, folder: str, download: bool, exc: Exception
) -> LandscapeError:
    """Say why torchvision could not open a CIFAR set and what to do about it."""
    root = os.path.abspath(root)
    path = os.path.join(root, folder)
    if os.path.basename(os.path.normpath(root)) == folder:
        return LandscapeError(
            f"data.root {root!r} is the data set's own folder: set data.root to the folder that "
            f"holds {folder}/ ({os.path.dirname(os.path.normpath(root))!r})"
        )
    if os.path.isdir(path):
        failed = f" and the download failed ({exc})" if download else ""
        return LandscapeError(
            f"data set {name} in {path!r} is incomplete or corrupted (a file is missing or its "
            f"checksum differs){failed}: replace {folder}/ with a fresh copy"
            + ("" if download else ", or delete it and set data.download: true")
        )
    if download:
        return LandscapeError(
            f"data set {name} not found under {root!r} and the download failed ({exc}): "
            f"put the python version ({folder}/) there by hand"
        )
    archive = next((f for f in _listdir(root) if f.endswith(".tar.gz") and "python" in f), None)
    if archive is not None:
        return LandscapeError(
            f"data set {name} not found under {root!r}, which holds {archive}: extract it there "
            f"(tar -xzf {archive}) so that {folder}/ appears, or set data.download: true"
        )
    return LandscapeError(
        f"data set {name} not found under {root!r}: put the python version ({folder}/) there, "
        "or set data.download: true to download it"
    )


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# CIFAR-10's channel statistics exactly as the paper's code normalizes with them (0-255 units).
CIFAR10_MEAN = tuple(v / 255 for v in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(v / 255 for v in (63.0, 62.1, 66.7))

_register_cifar("cifar10", "CIFAR10", "cifar-10-batches-py", 10, CIFAR10_MEAN, CIFAR10_STD)
_register_cifar(
    "cifar100",
    "CIFAR100",
    "cifar-100-python",
    100,
    (0.5071, 0.4865, 0.4409),
    (0.2673, 0.2564, 0.2762),
)


# ----------------------------------------------------------------------------- import paths


def _call_user_function(cfg: DataConfig) -> tuple[Dataset, Dataset]:
    """Import 'pkg.module:function', call it with cfg.args and check it gave two data sets."""
    path = cfg.name
    module_name, _, func_name = path.partition(":")
    if not module_name or not func_name:
        raise ConfigError(
            f"cannot import {path!r} (expected 'pkg.module:function')", key="data.name"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure while importing user code is a bad path for us
        raise ConfigError(
            f"cannot import {path!r} ({type(exc).__name__}: {exc})", key="data.name"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        reason = "not callable" if func is not None else f"module has no {func_name!r}"
        raise ConfigError(f"cannot import {path!r} ({reason})", key="data.name")

    args = dict(cfg.args or {})
    # Bind first, so a wrong data.args is reported as such while a TypeError raised inside the
    # user's function still surfaces with its own traceback.
    try:
        inspect.signature(func).bind(**args)
    except TypeError as exc:
        raise ConfigError(
            f"{path} does not accept these arguments ({exc})", key="data.args"
        ) from exc
    except ValueError:
        pass  # some builtins have no signature; let the call itself decide
    result = func(**args)

    expected = "expected (train_dataset, test_dataset) or {'train': ..., 'test': ...}"
    if isinstance(result, dict):
        if "train" not in result or "test" not in result:
            keys = sorted(map(str, result))
            raise LandscapeError(f"data.name: {path} returned a dict with keys {keys}; {expected}")
        pair = (result["train"], result["test"])
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        pair = (result[0], result[1])
    else:
        raise LandscapeError(f"data.name: {path} returned {_describe(result)}; {expected}")
    for split, ds in zip(SPLITS, pair, strict=True):
        if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
            raise LandscapeError(
                f"data.name: the {split} set from {path} is {_describe(ds)}; "
                "expected a data set with __len__ and __getitem__"
            )
        if len(ds) == 0:
            raise LandscapeError(f"data.name: the {split} set from {path} is empty")
    return pair


def _describe(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _infer_info(path: str, train: Dataset, test: Dataset) -> DataInfo:
    """Channels and size from the first example; classes from an attribute or the labels."""
    first = train[0]
    if not isinstance(first, (tuple, list)) or len(first) < 2:
        raise LandscapeError(
            f"data.name: examples of {path} are {_describe(first)}; expected (image, label) pairs"
        )
    shape = tuple(torch.as_tensor(first[0]).shape)
    if len(shape) == 0:
        raise LandscapeError(
            f"data.name: inputs of {path} are scalars; expected tensors such as (channels, height, "
            "width) images or (features,) vectors"
        )
    num_classes = getattr(train, "num_classes", None)
    if num_classes is None:
        num_classes = 1 + max(int(_labels(ds).max()) for ds in (train, test))
    # Images (C, H, W): channels and size; any other shape (e.g. (features,) for an MLP): the
    # first dimension is passed as in_channels and the size is 0.
    channels = shape[0]
    size = shape[1] if len(shape) == 3 else 0
    # User data is taken as already normalized; zero mean and unit std say "no further change".
    return DataInfo(path, int(num_classes), channels, size, (0.0,) * channels, (1.0,) * channels)


def _labels(ds: Dataset) -> Tensor:
    """All labels of a data set, without stacking its images where it can be avoided."""
    base, idx = _unwrap_subsets(ds, torch.arange(len(ds)))  # type: ignore[arg-type]
    if isinstance(base, TensorDataset):
        return base.tensors[1][idx].to(torch.int64)
    return torch.tensor([int(ds[i][1]) for i in range(len(ds))], dtype=torch.int64)  # type: ignore[arg-type]
