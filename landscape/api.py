"""The Python API for notebooks: load a model, make directions, compute and draw a loss surface.

    import landscape
    surf = landscape.loss_surface(model, (x, y), x=(-1, 1, 21), y=(-1, 1, 21))
    surf.plot().savefig("contour.png")

The surface is computed by the same run loop as `landscape surface` (surface.run_job), so the
same model, data, seed and grid give the same numbers, and a file saved here resumes there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from . import directions as _dirs
from . import storage
from .checkpoint import load_checkpoint, load_state_into, model_from_checkpoint
from .config import DIR_TYPES, LOSSES, NORMS, PRECISIONS, EngineConfig, resolve_dir_type
from .data import is_integer, subset_indices
from .directions import Direction, target_tensors
from .engine import EvalSet, is_scores, logits, resolve_device
from .errors import LandscapeError
from .rewrite import copy_module
from .surface import MetricFn, SurfaceJob, axis_coords, provenance_attrs, run_job

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# A model, a state_dict, or the path of a checkpoint holding one.
WeightsLike = nn.Module | Mapping[str, Tensor] | str | Path
# One split: (inputs, targets) tensors, a Dataset of (input, target) pairs, or a DataLoader.
SplitData = tuple[Tensor, Tensor] | Dataset | DataLoader
# An axis as (min, max, num), num points from min to max; not a list of coordinates.
AxisSpec = tuple[float, float, int] | Sequence[float]

_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


class DirectionSet(NamedTuple):
    """A line (one direction) or plane (two) through weight space, and the state it starts at.

    `origin` is a full state_dict (buffers such as BN statistics included); the directions hold
    every floating-point entry and are cut down to the perturbed tensors by `loss_surface`.
    """

    origin: dict[str, Tensor]
    directions: list[Direction]

    def __repr__(self) -> str:  # the tensors themselves would fill a notebook
        values = sum(t.numel() for t in self.directions[0].values()) if self.directions else 0
        tensors = len(self.directions[0]) if self.directions else 0
        return (
            f"DirectionSet({len(self.directions)} direction(s) over {tensors} tensors, "
            f"{values:,} values each; origin: {len(self.origin)} state entries)"
        )


# ----------------------------------------------------------------------------- models


def load_model(
    source: str | Path,
    model: str | None = None,
    *,
    device: str | torch.device = "cpu",
    **model_args: Any,
) -> nn.Module:
    """A model in eval mode, from a checkpoint or a model name.

    `source` is a landscape checkpoint, or a plain state_dict file together with `model` (a
    registered name or 'pkg.module:function', as model.name in a config) and its arguments;
    or, when it is not a file, a registered name or import path to build with fresh weights.
    """
    path = Path(source)
    if path.is_file() or _looks_like_file(str(source)):
        net, _ = model_from_checkpoint(path, model, model_args or None)
    elif model is not None:
        raise LandscapeError(f"load_model: no checkpoint file {str(source)!r}")
    else:
        from .models import create_model

        net = create_model(str(source), **model_args)
    return net.to(device).eval()


def _looks_like_file(source: str) -> bool:
    return source.endswith(_CHECKPOINT_SUFFIXES) or ("/" in source and ":" not in source)


# ----------------------------------------------------------------------------- directions


def random_directions(
    model: nn.Module,
    n: int = 2,
    norm: str = "filter",
    ignore: str = "biasbn",
    seed: int = 0,
    dir_type: str = "weights",
) -> list[Direction]:
    """n seeded random directions, normalized to the model's weights (filter-wise by default).

    The same seed gives the directions `landscape surface` draws for surface.directions.seed.
    """
    _check_direction_options(norm, ignore, dir_type)
    targets = target_tensors(model, resolve_dir_type(dir_type, "random"))
    return _dirs.random_directions(targets, n, norm, ignore, seed=seed)


def line_directions(a: WeightsLike, b: WeightsLike) -> DirectionSet:
    """The line from a to b (a model, state_dict or checkpoint path each): origin a, b - a."""
    sa, sb = _state(a, "a"), _state(b, "b")
    return DirectionSet(sa, [_difference(sa, sb, "b")])


def plane_directions(a: WeightsLike, b: WeightsLike, c: WeightsLike) -> DirectionSet:
    """The plane through a, b and c: origin a, directions b - a and c - a."""
    sa, sb, sc = _state(a, "a"), _state(b, "b"), _state(c, "c")
    return DirectionSet(sa, [_difference(sa, sb, "b"), _difference(sa, sc, "c")])


def _state(source: WeightsLike, arg: str) -> dict[str, Tensor]:
    """A detached copy of the state_dict of a module, a mapping or a checkpoint file."""
    if isinstance(source, nn.Module):
        state: Mapping[str, Any] = source.state_dict()
    elif isinstance(source, (str, Path)):
        state = load_checkpoint(source)["state_dict"]
    elif isinstance(source, Mapping):
        state = source
    else:
        raise LandscapeError(
            f"{arg}: got {_a(type(source).__name__)}; expected an nn.Module, a state_dict or a "
            "checkpoint path"
        )
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise LandscapeError(f"{arg}: entry {bad[0]!r} is not a tensor; expected a state_dict")
    return {k: v.detach().clone() for k, v in state.items()}


def _difference(a: Mapping[str, Tensor], b: Mapping[str, Tensor], arg: str) -> Direction:
    """b - a over a's floating-point entries, refusing weights of another network."""
    for k, t in a.items():
        if not t.is_floating_point():
            continue
        if k not in b:
            raise LandscapeError(f"{arg}: has no {k!r}; expected the same network as a")
        if b[k].shape != t.shape:
            raise LandscapeError(
                f"{arg}: {k!r} has shape {tuple(b[k].shape)}, not {tuple(t.shape)} as in a; "
                "expected the same network as a"
            )
    floats = {k: t for k, t in a.items() if t.is_floating_point()}
    return _dirs.difference(floats, b)


# ----------------------------------------------------------------------------- the surface


def loss_surface(
    model: nn.Module,
    data: SplitData | Mapping[str, SplitData],
    *,
    x: AxisSpec = (-1.0, 1.0, 21),
    y: AxisSpec | None | Literal["auto"] = "auto",
    directions: Sequence[Direction] | DirectionSet | None = None,
    norm: str = "filter",
    ignore: str = "biasbn",
    dir_type: str = "auto",
    seed: int = 0,
    orthogonalize: bool = False,
    loss: str | MetricFn = "crossentropy",
    metrics: Mapping[str, MetricFn] | None = None,
    samples: int | None = None,
    data_seed: int = 0,
    batch_size: int | None = None,
    precision: str = "float32",
    device: str | torch.device = "auto",
    bn: str = "eval",
    engine: EngineConfig | None = None,
    path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Surface:
    """The loss (and accuracy) of `model` on a grid of points w + a d1 + b d2 around its weights.

    data: (inputs, targets) tensors, a Dataset, a DataLoader, or a dict of those by split name
      ({"train": ..., "test": ...}); one value alone is the split "train". `samples` takes a
      seeded subset (data_seed) of each split.
    x, y: (min, max, num) of each axis; y=None for a 1D curve. y='auto' (the default) is
      (-1, 1, 21), or None when `directions` holds one direction (a line).
    directions: None for seeded random ones (norm, ignore, dir_type, seed as in a config),
      a list of direction dicts (e.g. from random_directions), or a DirectionSet from
      line_directions / plane_directions.
    dir_type: 'weights' (parameters), 'states' (every float state_dict entry, BN statistics
      included), or 'auto': states along a DirectionSet, so that its ends are the networks
      themselves, else weights.
    loss: 'crossentropy', 'mse', or a callable (outputs, targets) -> mean loss of the batch;
      metrics: more such callables, recorded per split as <split>_<name>. Accuracy is recorded
      when the targets are integer class labels and the model returns (batch, classes) scores.
    batch_size: examples per forward call; None: 1,000 on a CPU, 4,000 on a GPU, halved while a
      GPU runs out of memory.
    bn: 'eval' keeps BN running statistics; 'recompute' re-estimates them at every point on up
      to 1000 examples of the train split (or the first split).
    path: write the surface to this HDF5 file, resuming it if it holds an unfinished run of the
      same settings; None computes in memory (`Surface.save` writes the same file later).

    The model itself is left untouched: the surface is computed on a copy moved to `device`.
    """
    metrics = dict(metrics or {})
    _check_options(loss, metrics, norm, ignore, dir_type, precision, bn, batch_size, samples)
    if y == "auto":
        given = directions.directions if isinstance(directions, DirectionSet) else directions
        y = None if given is not None and len(given) == 1 else (-1.0, 1.0, 21)
    xs = _axis("x", x)
    ys = None if y is None else _axis("y", y)
    dev = resolve_device(str(device))
    net = copy_module(model).to(dev).eval()
    model_sha = _sha256(net.state_dict().items())

    splits = _inputs_for(net, _eval_tensors(data, samples, data_seed, batch_size))
    labels = all(_is_labels(t) for _, t in splits.values())
    if isinstance(loss, str) and not labels:
        raise LandscapeError(
            f"loss: {loss!r} needs integer class labels as targets; for other targets pass a "
            "callable (outputs, targets) -> mean loss"
        )
    accuracy = labels and _gives_scores(net, next(iter(splits.values()))[0][:2].to(dev), loss)
    dir_type = resolve_dir_type(
        dir_type, "line" if isinstance(directions, DirectionSet) else "random"
    )
    draw, kind, dirs_sha = _draw(net, directions, ys is not None, norm, ignore, dir_type, seed)
    if orthogonalize and len(draw[1]) == 2:
        draw[1][1] = _dirs.orthogonalize(draw[1][0], draw[1][1])
    targets = target_tensors(net, dir_type)

    settings = {
        "x": [float(v) for v in (xs[0], xs[-1])] + [len(xs)],
        "y": None if ys is None else [float(v) for v in (ys[0], ys[-1])] + [len(ys)],
        "splits": list(splits),
        "loss": _callable_name(loss),
        "metrics": {k: _callable_name(f) for k, f in metrics.items()},
        "samples": samples,
        "data_seed": data_seed,
        "batch_size": batch_size,
        "precision": precision,
        "bn": bn,
        "directions": {
            "kind": kind,
            "norm": norm,
            "ignore": ignore,
            "dir_type": dir_type,
            "seed": seed,
            "orthogonalize": orthogonalize,
        },
    }
    attrs = _attrs(settings, model, net, splits, model_sha, dirs_sha)
    bn_split = splits.get("train", next(iter(splits.values())))[0]
    job = SurfaceJob(
        model=net,
        targets=targets,
        draws=[draw],
        x=xs,
        y=ys,
        splits=list(splits),
        data={s: EvalSet(a.to(dev), b.to(dev)) for s, (a, b) in splits.items()},
        loss=loss,
        extra=metrics,
        accuracy=accuracy,
        batch_size=batch_size,
        precision=precision,
        bn_data=_subset(bn_split, 1000, data_seed + 1).to(dev) if bn == "recompute" else None,
        engine=engine if engine is not None else EngineConfig(),
        attrs=attrs,
    )
    result = run_job(job, path, overwrite=overwrite, progress=_bar if progress else None)
    if isinstance(result, Path):
        return Surface.load(result)
    return Surface(result, [[{k: v.detach().cpu() for k, v in d.items()} for d in draw[1]]])


def _draw(
    net: nn.Module,
    given: Sequence[Direction] | DirectionSet | None,
    two_d: bool,
    norm: str,
    ignore: str,
    dir_type: str,
    seed: int,
) -> tuple[tuple[dict[str, Tensor], list[Direction]], str, str]:
    """((origin, directions), dir_kind, sha256 of given directions) on the copy `net`."""
    need = 2 if two_d else 1
    if given is None:
        targets = target_tensors(net, dir_type)
        dirs = _dirs.random_directions(targets, need, norm, ignore, seed=seed)
        return ({k: t.detach().clone() for k, t in targets.items()}, dirs), "random", ""
    if isinstance(given, DirectionSet):
        kind = "line" if len(given.directions) == 1 else "plane"
        # Like a line or plane of checkpoints: start at a's full state, BN statistics included.
        load_state_into(net, dict(given.origin), "directions (the origin a)")
        dirs = [_cut(d, net, dir_type, f"directions[{i}]") for i, d in enumerate(given.directions)]
    elif isinstance(given, Mapping):
        raise LandscapeError(
            "directions: got one dict; expected a list of direction dicts ([d] for y=None)"
        )
    else:
        kind = "custom"
        dirs = [_match(d, net, dir_type, f"directions[{i}]") for i, d in enumerate(given)]
    if len(dirs) != need:
        want = "a 2D surface needs 2 (or pass y=None)" if two_d else "a 1D surface (y=None) needs 1"
        raise LandscapeError(f"directions: got {len(dirs)}; {want}")
    targets = target_tensors(net, dir_type)
    origin = {k: t.detach().clone() for k, t in targets.items()}
    # A resumed run must start from the same weights and move along the same directions.
    named = [(f"origin.{k}", t) for k, t in sorted(origin.items())]
    named += [(f"d{i}.{k}", t) for i, d in enumerate(dirs) for k, t in sorted(d.items())]
    return (origin, dirs), kind, _sha256(named)


def _cut(d: Mapping[str, Tensor], net: nn.Module, dir_type: str, key: str) -> Direction:
    """The entries of a line/plane direction that dir_type perturbs."""
    targets = target_tensors(net, dir_type)
    return _match({k: v for k, v in d.items() if k in targets}, net, dir_type, key)


def _match(d: Mapping[str, Any], net: nn.Module, dir_type: str, key: str) -> Direction:
    """A direction checked against the tensors it perturbs: the same names and shapes."""
    if not isinstance(d, Mapping):
        raise LandscapeError(
            f"{key}: got {_a(type(d).__name__)}; expected a dict of tensors by parameter name"
        )
    targets = target_tensors(net, dir_type)
    for name, t in targets.items():
        if name not in d:
            raise LandscapeError(
                f"{key}: has no {name!r}; expected one tensor per "
                f"{'parameter' if dir_type == 'weights' else 'state_dict entry'} of the model"
            )
        v = d[name]
        if not isinstance(v, Tensor) or v.shape != t.shape:
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise LandscapeError(f"{key}: {name!r} is {got}; expected shape {tuple(t.shape)}")
    extra = [k for k in d if k not in targets]
    if extra:
        hint = (
            "; it is not a parameter: pass dir_type='states'"
            if dir_type == "weights" and extra[0] in net.state_dict()
            else ""
        )
        raise LandscapeError(f"{key}: {extra[0]!r} is not in the model{hint}")
    return {k: d[k].detach().to(t.device, t.dtype) for k, t in targets.items()}


# ----------------------------------------------------------------------------- data


def _eval_tensors(
    data: SplitData | Mapping[str, SplitData],
    samples: int | None,
    seed: int,
    batch_size: int | None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """(inputs, targets) per split, on the CPU, each a seeded subset of `samples`."""
    named = data if isinstance(data, Mapping) else {"train": data}
    if not named:
        raise LandscapeError("data: the dict is empty; expected splits such as {'train': ...}")
    out = {}
    for split, value in named.items():
        key = f"data[{split!r}]" if isinstance(data, Mapping) else "data"
        if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split):
            raise LandscapeError(
                f"{key}: split names must be letters, digits and '-' (e.g. 'train', 'test')"
            )
        xs, ys = _as_tensors(value, key, batch_size)
        if len(xs) != len(ys):
            raise LandscapeError(f"{key}: {len(xs)} inputs but {len(ys)} targets")
        if len(ys) == 0:
            raise LandscapeError(f"{key}: is empty")
        if samples is not None and samples < len(ys):
            idx = subset_indices(len(ys), samples, seed)
            xs, ys = xs[idx], ys[idx]
        if _is_labels(ys):
            ys = ys.long()  # what the losses index with (int32 and uint8 labels included)
        out[split] = (xs, ys)
    return out


def _as_tensors(value: Any, key: str, batch_size: int | None) -> tuple[Tensor, Tensor]:
    expected = "expected (inputs, targets) tensors, a Dataset or a DataLoader"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            what = f"{_a(type(value).__name__)} of {len(value)}"
            raise LandscapeError(f"{key}: got {what}; {expected}")
        try:
            return torch.as_tensor(value[0]), torch.as_tensor(value[1])
        except (TypeError, ValueError, RuntimeError):
            raise LandscapeError(f"{key}: cannot make tensors of the pair; {expected}") from None
    if isinstance(value, TensorDataset) and len(value.tensors) >= 2:
        return value.tensors[0], value.tensors[1]
    if isinstance(value, DataLoader) and isinstance(value.sampler, RandomSampler):
        # The loss does not depend on the order, but a seeded subset (samples) and a resumed
        # file (its data hash) need the same examples in the same order on every call.
        batches: Iterable[Any] = DataLoader(
            value.dataset,
            batch_size=value.batch_size or batch_size or 1000,
            shuffle=False,
            num_workers=value.num_workers,
            collate_fn=value.collate_fn,
        )
    elif isinstance(value, DataLoader):
        batches = value
    elif hasattr(value, "__getitem__") and hasattr(value, "__len__"):
        batches = DataLoader(value, batch_size=batch_size or 1000, shuffle=False)
    else:
        raise LandscapeError(f"{key}: got {_a(type(value).__name__)}; {expected}")
    xs, ys = [], []
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise LandscapeError(f"{key}: a batch is not an (inputs, targets) pair; {expected}")
        xs.append(_batch_tensor(batch[0], key, "inputs"))
        ys.append(_batch_tensor(batch[1], key, "targets"))
    if not xs:
        raise LandscapeError(f"{key}: is empty")
    return _concat(xs, key, "inputs"), _concat(ys, key, "targets")


def _batch_tensor(value: Any, key: str, what: str) -> Tensor:
    """One batch's inputs or targets as one tensor; several (a model of two inputs) is one
    line: the model is called as model(inputs)."""
    try:
        return value if isinstance(value, Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise LandscapeError(
            f"{key}: a batch's {what} are {_a(type(value).__name__)}, not one tensor; the model "
            f"is called as model(inputs): wrap a model of several inputs in a module that takes "
            "one tensor"
        ) from None


def _concat(parts: list[Tensor], key: str, what: str) -> Tensor:
    """The batches joined into one tensor; batches of other shapes are one line."""
    shapes = [tuple(t.shape[1:]) for t in parts]
    other = next((s for s in shapes if s != shapes[0]), None)
    if other is not None:
        raise LandscapeError(
            f"{key}: batches have {what} of shapes {shapes[0]} and {other} per example; all "
            "examples are evaluated together, so pad them to one length (e.g. in the collate_fn)"
        )
    return torch.cat(parts)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _subset(t: Tensor, n: int, seed: int) -> Tensor:
    """The seeded subset a config would take, so a config and the API evaluate the same rows."""
    return t if n >= len(t) else t[subset_indices(len(t), n, seed)]


def _inputs_for(
    net: nn.Module, splits: Mapping[str, tuple[Tensor, Tensor]]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Floating inputs in the model's floating dtype (float64 data for a float64 model)."""
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), None)
    if dtype is None:
        return dict(splits)
    return {s: (x.to(dtype) if x.is_floating_point() else x, y) for s, (x, y) in splits.items()}


def _gives_scores(net: nn.Module, x: Tensor, loss: Any) -> bool:
    """Whether the model's outputs on x are (B, classes) scores, so that accuracy is recorded;
    a built-in loss refuses other outputs here, before any point is evaluated."""
    with torch.no_grad():
        out = net(x)
    if isinstance(loss, str):
        logits(out)
    return is_scores(out, len(x))


def _is_labels(t: Tensor) -> bool:
    return t.dim() == 1 and is_integer(t)


# ----------------------------------------------------------------------------- checks


def _check_options(
    loss: Any,
    metrics: Mapping[str, Any],
    norm: str,
    ignore: str,
    dir_type: str,
    precision: str,
    bn: str,
    batch_size: int | None,
    samples: int | None,
) -> None:
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise LandscapeError(
                f"loss: unknown {loss!r}; use {', '.join(LOSSES)} or a callable "
                "(outputs, targets) -> mean loss"
            )
    elif not callable(loss):
        raise LandscapeError(f"loss: got {_a(type(loss).__name__)}; expected a name or a callable")
    for name, fn in metrics.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise LandscapeError(f"metrics: name {name!r} must be letters, digits and '_'")
        if name in ("loss", "acc"):
            raise LandscapeError(f"metrics: {name!r} is recorded already; choose another name")
        if not callable(fn):
            raise LandscapeError(
                f"metrics[{name!r}]: got {_a(type(fn).__name__)}; expected a callable "
                "(outputs, targets) -> mean over the batch"
            )
    _check_direction_options(norm, ignore, dir_type)
    _one_of("precision", precision, PRECISIONS)
    _one_of("bn", bn, ("eval", "recompute"))
    for name, v in (("batch_size", batch_size), ("samples", samples)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise LandscapeError(f"{name}: expected a positive integer, got {v!r}")


def _check_direction_options(norm: str, ignore: str, dir_type: str) -> None:
    _one_of("norm", norm, NORMS)
    _one_of("ignore", ignore, ("biasbn", "none"))
    _one_of("dir_type", dir_type, DIR_TYPES)


def _one_of(key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise LandscapeError(f"{key}: unknown {value!r}; use one of {', '.join(choices)}")


def _axis(key: str, spec: Any) -> np.ndarray:
    """Coordinates from (min, max, num), checked."""
    try:
        lo, hi, num = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise LandscapeError(f"{key}: expected (min, max, num), got {spec!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or num != int(num) or num < 1:
        raise LandscapeError(f"{key}: expected finite min, max and a positive num, got {spec!r}")
    if lo > hi or (lo == hi and num > 1):
        raise LandscapeError(f"{key}: min {lo} must be below max {hi}")
    if num == 1 and lo != hi:
        # [-1, 0, 1] reads as (min -1, max 0, one point): most likely meant as coordinates.
        raise LandscapeError(
            f"{key}: {spec!r} is (min, max, num) with one point between different ends; for "
            f"one point give (v, v, 1), for a grid (min, max, num)"
        )
    return axis_coords((lo, hi, num))


# ----------------------------------------------------------------------------- fingerprints


def _attrs(
    settings: dict[str, Any],
    model: nn.Module,
    net: nn.Module,
    splits: Mapping[str, tuple[Tensor, Tensor]],
    model_sha: str,
    dirs_sha: str,
) -> dict[str, Any]:
    """The file attributes: the fingerprint a resumed run must match, and the provenance that
    `landscape surface` records, filled from the API's settings."""
    d = settings["directions"]
    return {
        "fingerprint_surface": yaml.safe_dump(settings, sort_keys=True),
        "fingerprint_model": yaml.safe_dump(_model_summary(net), sort_keys=True),
        "fingerprint_data": _sha256(
            (f"{s}.{i}", t) for s, pair in splits.items() for i, t in enumerate(pair)
        ),
        # A digest of the state_dict's tensors, not of a file as the CLI's checkpoint_sha256.
        "state_sha256": model_sha,
        "directions_sha256": dirs_sha,
        "config": yaml.safe_dump({"api": settings}, sort_keys=False),
        "title": type(model).__name__,
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "checkpoint": "",
        "checkpoint_epoch": -1,
        "dir_kind": d["kind"],
        "norm": d["norm"] if d["kind"] == "random" else "given",
        "ignore": d["ignore"],
        "dir_type": d["dir_type"],
        "direction_seed": d["seed"],
        "orthogonalize": d["orthogonalize"],
        "loss": settings["loss"],
        "bn": settings["bn"],
        "precision": settings["precision"],
        "samples": settings["samples"] if settings["samples"] is not None else -1,
        "splits": list(splits),
        "data_seed": settings["data_seed"],
        **provenance_attrs(),
    }


def _sha256(items: Iterable[tuple[str, Tensor]]) -> str:
    """A digest of named tensors: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name, t in items:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _model_summary(net: nn.Module) -> dict[str, Any]:
    return {
        "class": f"{type(net).__module__}.{type(net).__qualname__}",
        "state": {k: list(v.shape) for k, v in net.state_dict().items()},
    }


def _callable_name(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _bar(total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="surface", unit="pt")


# ----------------------------------------------------------------------------- the result


class Surface:
    """A loss surface: coordinates, metric arrays ([iy, ix]; [ix] in 1D) and the run's attributes.

    Wraps `storage.SurfaceData` (`.data`); draw it with `.plot()` and `.compare()`.
    """

    def __init__(
        self, data: storage.SurfaceData, directions: list[list[Direction]] | None = None
    ) -> None:
        self.data = data
        self._directions = directions

    @classmethod
    def load(cls, path: str | Path) -> Surface:
        """Read a surface file: landscape's own, or one written by the paper's original code."""
        return cls(storage.read_surface(path))

    @property
    def x(self) -> np.ndarray:
        return self.data.x

    @property
    def y(self) -> np.ndarray | None:
        return self.data.y

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        return self.data.metrics

    @property
    def attrs(self) -> dict[str, Any]:
        return self.data.attrs

    @property
    def done(self) -> np.ndarray:
        return self.data.done

    @property
    def complete(self) -> bool:
        return self.data.complete

    @property
    def path(self) -> str | None:
        return self.data.path

    def directions(self, repeat: int = 0) -> list[dict[str, Any]]:
        """The directions of draw `repeat`, by parameter name (empty for the original's files)."""
        if self._directions is not None:
            return self._directions[repeat]
        if self.data.path is None or self.data.attrs.get("schema") != storage.SCHEMA:
            return []
        # One draw taken from a file of several (`data.repeat(k)`) is draw k of that file.
        return storage.read_directions(self.data.path, self.data.draw + repeat)

    def save(self, path: str | Path) -> Path:
        """Write the landscape HDF5 file (the schema `landscape surface` writes, resumable)."""
        path = Path(path)
        dirs = [self.directions(k) for k in range(self.data.repeats)]
        names = list(self.data.metrics)
        storage.create_surface_file(path, self.x, self.y, names, dirs, self.data.attrs)
        index = np.nonzero(self.data.done)
        values = {n: np.asarray(a, dtype=np.float64)[index] for n, a in self.data.metrics.items()}
        with storage.SurfaceWriter(path) as writer:
            writer.write(values, index)
        return path

    def plot(self, kind: str | None = None, metric: str | None = None, **kw: Any) -> Figure:
        """A figure of one metric: 'contour' (2D default), 'contourf', 'heatmap', 'surface3d'
        or 'line' (1D); keywords go to `plot.plot_surface` (vmin, vmax, levels, log, title)."""
        from .plot import plot_surface

        kind = kind or ("contour" if self.data.ndim == 2 else "line")
        return plot_surface(self.data, kind, metric, **kw)

    def compare(
        self,
        others: Surface | str | Path | Sequence[Surface | str | Path],
        kind: str | None = None,
        metric: str | None = None,
        titles: Sequence[str] | None = None,
        **kw: Any,
    ) -> Figure:
        """This surface beside others (surfaces or file paths) on one colour scale."""
        from .plot import plot_compare

        if isinstance(others, (Surface, str, Path)):
            others = [others]
        surfs = [self.data] + [
            o.data if isinstance(o, Surface) else storage.read_surface(o) for o in others
        ]
        return plot_compare(surfs, kind, metric, titles, **kw)

    def __repr__(self) -> str:
        def axis(v: np.ndarray) -> str:
            return f"[{v[0]:g}, {v[-1]:g}] ({len(v)})"

        grid = f"x={axis(self.x)}" + (f", y={axis(self.y)}" if self.y is not None else "")
        if self.data.repeats > 1:
            grid += f", {self.data.repeats} draws"
        ranges = []
        for name, arr in self.metrics.items():
            finite = np.asarray(arr, dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            span = f"{finite.min():.4g}..{finite.max():.4g}" if finite.size else "-"
            ranges.append(f"{name} {span}")
        done = f"{int(self.done.sum())}/{self.done.size} points"
        return f"Surface({grid}; {done}; {', '.join(ranges)})"
