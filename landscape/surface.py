"""Computing a surface: the grid, the run loop, resuming from the file, sharing points among ranks.

One loop serves the CLI and the Python API: each builds a `SurfaceJob` (the model, its directions,
the grid and the data, all ready) and hands it to `run_job`, which fills a file or an in-memory
`SurfaceData`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from . import storage
from .checkpoint import file_sha256, load_checkpoint, load_state_into
from .config import Config, DirectionConfig, SurfaceConfig, data_settings
from .directions import (
    Direction,
    difference,
    orthogonalize,
    plane_directions,
    random_directions,
    target_tensors,
)
from .engine import (
    EvalData,
    EvalSet,
    PointEvaluator,
    autocast_context,
    device_name,
    first_inputs,
    is_scores,
    mean_loss,
    resolve_batch_size,
    resolve_device,
)
from .errors import START_AFRESH, LandscapeError, SharedError, differences, first_line
from .train import load_trained

if TYPE_CHECKING:
    from .config import EngineConfig

# Surface settings that change how fast points come, and their values at most by float rounding
# (the engine's rewrites, the batch size), or when the file is written: a run may resume with
# others, e.g. with a smaller batch on a smaller GPU.
SPEED_KEYS = ("engine", "batch_size", "flush_seconds")

# Attributes that must agree between a file and the run that resumes into it.
FINGERPRINT_KEYS = (
    "fingerprint_surface",
    "fingerprint_model",
    "fingerprint_data",
    "checkpoint_sha256",
    "state_sha256",
    "directions_sha256",
)

# (outputs, targets) -> the mean over the batch, as a 0-d tensor or a number.
MetricFn = Callable[[Tensor, Tensor], Any]
# One draw of directions: the origin weights and the directions from it.
Draw = tuple[dict[str, Tensor], list[Direction]]
# (total, initial) -> a progress bar with update(n) and close(); the CLI passes tqdm's.
ProgressFactory = Callable[[int, int], Any]
# Takes one line of news for the user (the CLI echoes it; the library never prints).
Log = Callable[[str], None]


def axis_coords(spec: Sequence[float]) -> np.ndarray:
    """Coordinates of one grid axis from [min, max, num]; one point is the middle of the range
    (the trained point on the usual symmetric range), not its lower end."""
    lo, hi, num = spec
    if int(num) == 1:
        return np.array([(float(lo) + float(hi)) / 2])
    return np.linspace(float(lo), float(hi), int(num))


def grid_axes(cfg: SurfaceConfig) -> tuple[np.ndarray, np.ndarray | None]:
    return axis_coords(cfg.x), (axis_coords(cfg.y) if cfg.y is not None else None)


def point_coords(x: np.ndarray, y: np.ndarray | None, index: tuple[int, ...]) -> tuple[float, ...]:
    """The direction coefficients of a grid index ([ix] or [iy, ix], repeat axis stripped)."""
    if y is None:
        return (float(x[index[-1]]),)
    return (float(x[index[-1]]), float(y[index[-2]]))


@dataclass
class Distributed:
    """This process's place among the ranks sharing a grid (1 rank when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_torch(cls) -> Distributed:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()


# ----------------------------------------------------------------------------- the job


@dataclass
class SurfaceJob:
    """Everything one surface run needs, built: the CLI makes one from a Config, the API from a
    module and data, and `run_job` runs either.

    `data` (split -> evaluation data) and `bn_data` may be zero-argument functions, called only
    when points remain, so that resuming a finished file reads no data. `loss` is a name of
    `engine.make_loss` or a callable giving the mean loss of a batch; `extra` are more such
    callables, recorded per split as `<split>_<name>`. `accuracy` records `<split>_acc`
    (classification outputs (B, classes) against integer labels).
    """

    model: nn.Module
    targets: dict[str, Tensor]
    draws: list[Draw]
    x: np.ndarray
    y: np.ndarray | None
    splits: list[str]
    data: Mapping[str, EvalData] | Callable[[], Mapping[str, EvalData]]
    loss: str | MetricFn = "crossentropy"
    extra: Mapping[str, MetricFn] = field(default_factory=dict)
    accuracy: bool = True
    batch_size: int | str | None = None  # None or 'auto': the device's default
    precision: str = "float32"
    bn_data: Tensor | Callable[[], Tensor | None] | None = None
    engine: EngineConfig | None = None
    flush_seconds: float = 5.0
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        """Names of the recorded arrays, split by split: loss, acc, then the extra metrics."""
        per_split = ["loss", *(["acc"] if self.accuracy else []), *self.extra]
        return [f"{s}_{m}" for s in self.splits for m in per_split]

    @property
    def fast(self) -> bool:
        """Whether the engine measures the points itself (a named loss, accuracy, no extras)."""
        return isinstance(self.loss, str) and self.accuracy and not self.extra


def run_job(
    job: SurfaceJob,
    path: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFactory | None = None,
    dist_info: Distributed | None = None,
) -> Path | storage.SurfaceData:
    """Evaluate every unfinished point of the job's grid.

    With a path, the points go to that HDF5 file (created, or resumed when its fingerprint
    attributes match the job's) and the path is returned; without one, they fill a
    `SurfaceData` in memory, which is returned. Only rank 0 writes; other ranks compute their
    share.
    """
    dist_info = dist_info or Distributed.from_torch()
    target: storage.SurfaceData | Path
    # What the finished points were computed on, to check this run's data against (rank 0).
    recorded: dict[str, str] = {}
    if path is None:
        target = _empty_surface(job)
        done: np.ndarray | None = target.done
    else:
        target = Path(path)
        if overwrite:
            # The data before the old file goes: a mistake in them (a subset larger than the
            # data set) must not cost the points --overwrite would delete.
            data, bn_data = _loaded_data(job)
            job = replace(job, data=data, bn_data=bn_data)
        refusal = None
        if dist_info.rank == 0:
            try:
                _prepare_file(job, target, overwrite)
            except LandscapeError as e:
                refusal = str(e)
        # Every rank learns rank 0's refusal (a file of other settings, say) and stops with it,
        # instead of waiting at a barrier rank 0 never reaches.
        refusal = _from_rank0(refusal, dist_info)
        if refusal is not None:
            raise SharedError(refusal)
        done = None
        if dist_info.rank == 0:
            finished = storage.read_surface(target)
            done, recorded = finished.done, _recorded_digests(finished.attrs)
    pending = _broadcast_pending(done, dist_info)
    if pending:
        writer: Any = None
        if dist_info.rank == 0:
            if isinstance(target, storage.SurfaceData):
                writer = _MemoryWriter(target)
            else:
                writer = storage.SurfaceWriter(target)
        started = timestamp()
        # Counted now: in memory, `done` is the array the run fills.
        done_before = int(np.sum(done)) if done is not None else 0
        try:
            _evaluate(job, pending, writer, progress, dist_info, target, recorded)
        finally:
            # Also after Ctrl-C: the points this run did finish are in the file.
            if dist_info.rank == 0:
                _record_run(job, target, started, done_before, dist_info.world)
    return target


def _loaded_data(job: SurfaceJob) -> tuple[Mapping[str, EvalData], Tensor | None]:
    """The job's data and BN data, loaded where they are given as functions."""
    data = job.data() if callable(job.data) else job.data
    bn_data = job.bn_data() if callable(job.bn_data) else job.bn_data
    return data, bn_data


def data_digests(data: Mapping[str, EvalData]) -> dict[str, str]:
    """sha256 of each split's examples (inputs, then labels, each after its dtype and shape), the
    same on any device and whether the split is held in memory or streamed (a streamed split costs
    one pass of its loader, without the network: less than one grid point)."""
    out = {}
    for split, ds in data.items():
        batches = [(ds.x, ds.y)] if isinstance(ds, EvalSet) else ds.host_batches()
        digest = _examples_sha256(batches, len(ds))
        if digest is not None:
            out[split] = digest
    return out


def _examples_sha256(batches: Iterable[tuple[Tensor, Tensor]], n: int) -> str | None:
    """The sha256 of the inputs and labels that the batches, joined, make (None if there are no
    batches): the digests of the inputs and of the labels, each after its dtype and shape, hashed
    together, so that neither is held whole."""
    parts = [hashlib.sha256(), hashlib.sha256()]
    seen = False
    for x, y in batches:
        for h, t in zip(parts, (x, y), strict=True):
            t = t.detach().cpu().contiguous()
            if not seen:
                h.update(f"{t.dtype} {(n, *t.shape[1:])};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        seen = True
    if not seen:
        return None
    return hashlib.sha256(b"".join(h.digest() for h in parts)).hexdigest()


def _recorded_digests(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The data digests a surface file's finished points were computed on, from its attributes
    ({} if none: a new file, or one from before they were recorded)."""
    text = attrs.get("data_sha256")
    try:
        recorded = json.loads(text) if isinstance(text, str) else {}
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def _other_data(target: Any, recorded: Mapping[str, str], now: Mapping[str, str]) -> str | None:
    """Why this run must not add points to the target: its examples differ from those of the
    finished points (the data files changed, or the subset drawn from the seed did)."""
    changed = [s for s in now if s in recorded and recorded[s] != now[s]]
    if not changed:
        return None
    which = ", ".join(changed)
    return (
        f"{target}: its finished points were measured on other {which} examples than this run "
        "would use (their sha256 differs: the data files changed, or the subset drawn from "
        f"data.seed did, e.g. under another torch version); {START_AFRESH}"
    )


def timestamp() -> str:
    """Local time with its UTC offset, as the files record it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_record(
    started: str, points: int, device: torch.device | None, precision: str, processes: int = 1
) -> dict[str, Any]:
    """One run's entry in a file's 'history': when, how many points, on what (device, its name,
    processes sharing the grid, CPU threads each), with which versions (the creation attributes
    describe only the run that made the file)."""
    from . import __version__

    return {
        "started": started,
        "finished": timestamp(),
        "points": points,
        "device": str(device) if device is not None else "unknown",
        "device_name": device_name(device),
        "processes": processes,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "torch_version": str(torch.__version__),
        "landscape_version": __version__,
    }


def _record_run(
    job: SurfaceJob,
    target: storage.SurfaceData | Path,
    started: str,
    done_before: int,
    processes: int = 1,
) -> None:
    """Append this run to the target's 'history' (run_record)."""
    tensor = next(iter(job.targets.values()), None)
    device = tensor.device if tensor is not None else None
    if isinstance(target, storage.SurfaceData):
        points = int(np.sum(target.done)) - done_before
        entry = run_record(started, points, device, job.precision, processes)
        target.attrs["history"] = storage.with_history(target.attrs.get("history"), entry)
        return
    record_history(target, started, done_before, device, job.precision, processes)


def record_history(
    path: Path,
    started: str,
    done_before: int,
    device: torch.device | None,
    precision: str,
    processes: int = 1,
) -> None:
    """Append a run that began at `started`, with `done_before` points done, to the history of
    the file at path; a warning, not an error, where the file cannot take it."""
    try:
        points = int(np.sum(storage.read_surface(path).done)) - done_before
        if points == 0:
            return  # refused, or stopped before its first point: the history lists work done
        with storage.SurfaceWriter(path) as writer:
            writer.add_history(run_record(started, points, device, precision, processes))
    except (OSError, LandscapeError) as e:
        # A record that cannot be written must not hide why the run stopped, nor lose points.
        warnings.warn(f"{path}: could not add this run to its history ({e})", stacklevel=3)


def _empty_surface(job: SurfaceJob) -> storage.SurfaceData:
    shape: tuple[int, ...] = (len(job.x),) if job.y is None else (len(job.y), len(job.x))
    if len(job.draws) > 1:
        shape = (len(job.draws), *shape)
    return storage.SurfaceData(
        x=np.asarray(job.x, dtype=np.float64),
        y=None if job.y is None else np.asarray(job.y, dtype=np.float64),
        metrics={n: np.full(shape, np.nan) for n in job.metric_names},
        done=np.zeros(shape, dtype=bool),
        attrs={
            "schema": storage.SCHEMA,
            "schema_version": storage.SCHEMA_VERSION,
            "axis_order": storage.AXIS_ORDER,
            "repeats": len(job.draws),
            "metrics": job.metric_names,
            **job.attrs,
        },
        repeats=len(job.draws),
    )


def _prepare_file(job: SurfaceJob, path: Path, overwrite: bool) -> None:
    """Start a fresh file, or check that an existing one is this job's to resume."""
    if overwrite:
        storage.remove_for_overwrite(path)
    if path.exists():
        check_resumable(path, job.attrs)
    else:
        dirs = [d for _, d in job.draws]
        storage.create_surface_file(path, job.x, job.y, job.metric_names, dirs, job.attrs)


class _MemoryWriter:
    """The `SurfaceWriter` interface over a SurfaceData in memory."""

    def __init__(self, surf: storage.SurfaceData):
        self.surf = surf

    def write(self, values: Mapping[str, np.ndarray], index: tuple[np.ndarray, ...]) -> None:
        for name, vals in values.items():
            self.surf.metrics[name][index] = storage.stored_values(name, vals)
        self.surf.done[index] = True

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        self.surf.attrs.update(attrs)

    def close(self) -> None:
        pass


def _evaluate(
    job: SurfaceJob,
    pending: list[tuple[int, ...]],
    writer: Any,
    progress: ProgressFactory | None,
    dist_info: Distributed,
    target: storage.SurfaceData | Path | None = None,
    recorded: Mapping[str, str] | None = None,
) -> None:
    """Measure the pending points draw by draw; the model is back at its weights afterwards.

    recorded: the data digests the target's finished points were computed on (rank 0).
    """
    recorded = recorded or {}
    loaded, bn_data = _loaded_data(job)
    data = dict(loaded)
    digests = data_digests(data) if writer is not None else {}
    refusal = _other_data(target, recorded, digests) if writer is not None else None
    refusal = _from_rank0(refusal, dist_info)
    if refusal is not None:
        raise SharedError(refusal)
    if writer is not None:
        # What each split held: `samples` may ask for more than a split has (then it is whole).
        writer.set_attrs(
            {
                "examples": [len(data[s]) for s in job.splits],
                "data_sha256": json.dumps({**recorded, **digests}, sort_keys=True),
            }
        )
    bar = progress(len(pending), 0) if progress is not None and writer is not None else None
    try:
        by_draw: dict[int, list[tuple[int, ...]]] = {}
        for idx in pending:
            by_draw.setdefault(idx[0] if len(job.draws) > 1 else 0, []).append(idx)
        sample = first_inputs(data[job.splits[0]]) if job.fast else None
        for k, indices in by_draw.items():
            origin, dirs = job.draws[k]
            with torch.no_grad():
                for name, t in job.targets.items():
                    t.copy_(origin[name])
            ev = PointEvaluator(
                job.model,
                job.targets,
                dirs,
                # A callable loss is measured here, on the model itself (see _measure_point).
                loss=job.loss if isinstance(job.loss, str) else "crossentropy",
                batch_size=job.batch_size,
                precision=job.precision,
                bn_data=bn_data,
                engine=job.engine if job.fast else None,
                work=len(indices) * sum(len(ds) for ds in data.values()),
                sample=sample,
            )
            if job.fast:
                measure = _engine_measure(ev, data)
            else:
                measure = _custom_measure(ev, data, job)
            per_call = getattr(ev, "points_per_call", 1) if job.fast and ev.bn_data is None else 1
            with ev.session():
                _run_points(measure, indices, job, writer, bar, dist_info, per_call)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()


# Measures the points of a list of coordinates, in order.
Measure = Callable[[list[tuple[float, ...]]], list[dict[str, float]]]


def _engine_measure(ev: PointEvaluator, data: Mapping[str, EvalData]) -> Measure:
    """The engine's own measurement, several points per forward call when it is set up so."""
    return lambda points: ev.evaluate_many(points, data)


def _custom_measure(ev: PointEvaluator, data: Mapping[str, EvalData], job: SurfaceJob) -> Measure:
    """Loss, accuracy and extra metrics of the model moved to each point, in one pass per split."""

    def one(coords: tuple[float, ...]) -> dict[str, float]:
        ev.move_to(coords)
        if ev.bn_data is not None:
            ev.recompute_bn()
        out = {}
        for split, ds in data.items():
            for name, value in _measure_split(ev.model, ds, job).items():
                out[f"{split}_{name}"] = value
        return out

    return lambda points: [one(c) for c in points]


def _measure_split(model: nn.Module, ds: EvalData, job: SurfaceJob) -> dict[str, float]:
    """Means over the split, weighting each batch by its size; sums in float64 on the device."""
    loss = mean_loss(job.loss) if isinstance(job.loss, str) else job.loss
    fns: dict[str, MetricFn] = {"loss": loss, **job.extra}
    sums = {name: torch.zeros((), dtype=torch.float64, device=ds.device) for name in fns}
    correct = torch.zeros((), dtype=torch.int64, device=ds.device)
    n, scored = 0, True
    with torch.inference_mode(), autocast_context(ds.device, job.precision):
        for xb, yb in ds.batches(resolve_batch_size(job.batch_size, ds.device)):
            out = model(xb)
            for name, fn in fns.items():
                sums[name] += _scalar(name, fn(out, yb)) * len(yb)
            scored = scored and is_scores(out, len(yb))
            if job.accuracy and scored:
                correct += (out.argmax(dim=1) == yb).sum()
            n += len(yb)
    result = {name: float(s) / n for name, s in sums.items()}
    if job.accuracy:
        # Outputs that are not (B, classes) scores have no accuracy.
        result["acc"] = 100.0 * int(correct) / n if scored else float("nan")
    return {k: result[k] for k in ("loss", *(["acc"] if job.accuracy else []), *job.extra)}


def _scalar(name: str, value: Any) -> Tensor:
    """A callable's result as a float64 0-d tensor, or one line saying what was expected."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    if isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point():
        return value.detach().reshape(()).double()
    what = (
        f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
        if isinstance(value, Tensor)
        else f"a {type(value).__name__}"
    )
    key = "loss" if name == "loss" else f"metrics[{name!r}]"
    raise LandscapeError(
        f"{key}: the callable returned {what}; expected a scalar, the mean over the batch "
        "(e.g. reduction='mean')"
    )


def _run_points(
    measure: Measure,
    indices: list[tuple[int, ...]],
    job: SurfaceJob,
    writer: Any,
    bar: Any,
    dist_info: Distributed,
    per_call: int = 1,
) -> None:
    """Evaluate `indices` (shared round-robin among ranks), flushing them to the writer."""
    buffer: list[tuple[tuple[int, ...], dict[str, float]]] = []
    last_flush = time.monotonic()
    # Ranks work in rounds of `per_call` points each, so that rank 0 can collect and write
    # each round.
    step = dist_info.world * per_call
    try:
        for start in range(0, len(indices), step):
            round_ = indices[start : start + step]
            mine = round_[dist_info.rank * per_call : (dist_info.rank + 1) * per_call]
            results = measure([point_coords(job.x, job.y, i) for i in mine]) if mine else []
            done = list(zip(mine, results, strict=True))
            if dist_info.enabled:
                done = [pair for part in _gather(done, dist_info) for pair in part]
            if writer is not None:
                buffer.extend(done)
                if bar is not None:
                    bar.update(len(round_))
                if time.monotonic() - last_flush >= job.flush_seconds:
                    _flush(writer, buffer)
                    buffer = []
                    last_flush = time.monotonic()
    finally:
        # Also on Ctrl-C or an error: finished points are kept, and a rerun resumes after them.
        if writer is not None:
            _flush(writer, buffer)


def _flush(writer: Any, buffer: list[tuple[tuple[int, ...], dict[str, float]]]) -> None:
    if not buffer:
        return
    index = tuple(np.array(axis) for axis in zip(*(i for i, _ in buffer), strict=True))
    names = buffer[0][1].keys()
    values = {n: np.array([r[n] for _, r in buffer], dtype=np.float64) for n in names}
    writer.write(values, index)


def _broadcast_pending(done: np.ndarray | None, dist_info: Distributed) -> list[tuple[int, ...]]:
    """The unfinished grid indices, in row-major order, agreed by all ranks."""
    pending = None
    if done is not None:
        pending = [tuple(int(v) for v in i) for i in np.argwhere(~done)]
    return _from_rank0(pending, dist_info) or []


def _from_rank0(item: Any, dist_info: Distributed) -> Any:
    """Rank 0's `item` on every rank (itself without torch.distributed)."""
    if not dist_info.enabled:
        return item
    import torch.distributed as dist

    box = [item]
    with _peers_lost():
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(item: Any, dist_info: Distributed) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * dist_info.world if dist_info.rank == 0 else []
    with _peers_lost():
        dist.gather_object(item, out if dist_info.rank == 0 else None, dst=0)
    return out if dist_info.rank == 0 else []


@contextlib.contextmanager
def _peers_lost() -> Iterator[None]:
    """A collective that fails because another rank died (killed, out of memory, its node lost)
    is one line: the backend's own message is a multi-line traceback from deep inside gloo or
    nccl. The points already gathered are flushed on the way out."""
    try:
        yield
    except RuntimeError as e:  # gloo raises RuntimeError, nccl its subclass DistBackendError
        # "[.../gloo/transport/tcp/pair.cc:545] Read error ...: Connection reset by peer. This
        # is typically caused by ..." says what happened in its first sentence.
        why = re.sub(r"^\[[^\]]*\]\s*", "", first_line(e)).split(". ")[0][:200]
        raise LandscapeError(
            f"another rank stopped ({why}); the points finished so far are saved: run the same "
            "command again to resume"
        ) from None


def check_resumable(path: Path, expected: Mapping[str, Any]) -> None:
    """Refuse to resume into a file made with another config, checkpoint or seed."""
    have = storage.read_attrs_to_resume(path)
    if "state_sha256" not in have and have.get("checkpoint") == "":
        # The API's files before state_sha256 held its state digest as checkpoint_sha256.
        have["state_sha256"] = have.pop("checkpoint_sha256", None)
    changed = []
    for key in FINGERPRINT_KEYS:
        mine, theirs = have.get(key), expected.get(key)
        if key == "fingerprint_surface":  # the API's files, and older ones, hold speed options
            mine, theirs = _value_settings(mine), _value_settings(theirs)
        elif key.startswith("fingerprint_"):
            mine, theirs = (yaml.safe_load(v) if isinstance(v, str) else v for v in (mine, theirs))
        if mine != theirs:
            names = {
                "checkpoint_sha256": _other_checkpoint(have, expected),
                "state_sha256": "other model weights",
                "directions_sha256": "another direction checkpoints file",
            }
            if key in names:
                changed.append(names[key])
            else:
                changed.append(differences(mine, theirs, key.replace("fingerprint_", "")))
    if changed:
        raise LandscapeError(
            f"{path} was made with other settings ({'; '.join(changed)}): {START_AFRESH}"
        )


def _other_checkpoint(have: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """How the checkpoint differs: another file, or the same path with other contents."""
    was, now = have.get("checkpoint"), expected.get("checkpoint")
    if was and was == now:
        old, new = (str(d.get("checkpoint_sha256") or "none")[:12] for d in (have, expected))
        return f"{now} has changed since (sha256 {old}... in the file, {new}... now; retrained?)"
    return f"another checkpoint file ({was} in the file, {now} now)"


# ----------------------------------------------------------------------------- from a config


def compute_surface(
    cfg: Config,
    *,
    path: str | Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
    progress: ProgressFactory | None = None,
    dist_info: Distributed | None = None,
) -> Path:
    """Evaluate the configured grid at the configured checkpoint, resuming an unfinished file.

    Returns the path of the surface file. Only rank 0 writes; other ranks compute their share.
    """
    job = job_from_config(cfg, device)
    out = Path(path) if path is not None else cfg.surface_path
    run_job(job, out, overwrite=overwrite, progress=progress, dist_info=dist_info)
    return out


def job_from_config(cfg: Config, device: str | None = None) -> SurfaceJob:
    """The job a Config describes: its checkpoint, directions, grid, splits and file attributes."""
    dev = resolve_device(device or cfg.device)
    scfg = cfg.surface
    ckpt_path = cfg.final_checkpoint
    model, ckpt = load_trained(cfg, ckpt_path, dev)
    sha = file_sha256(ckpt_path)
    x, y = grid_axes(scfg)
    ndir = 1 if y is None else 2
    refs = [cfg.resolve_checkpoint(c) for c in scfg.directions.checkpoints]
    if refs:
        # A line or plane starts at its first checkpoint, buffers (BN running statistics)
        # included, so that its origin is that network and not weights of one with stats of another.
        load_state_into(model, load_checkpoint(refs[0])["state_dict"], f"checkpoint {refs[0]}")
    targets = target_tensors(model, scfg.directions.effective_dir_type)
    draws = [build_directions(scfg.directions, model, k, ndir, refs) for k in range(scfg.repeats)]
    expected = fingerprint(cfg, sha)  # after loading refs: a missing one is a LandscapeError there
    attrs = {
        **expected,
        "config": cfg.to_yaml(),
        "title": cfg.run or cfg.name,
        "model": cfg.model.name,
        "checkpoint": str(ckpt_path),
        "checkpoint_epoch": int(ckpt.get("epoch", -1)),
        "dir_kind": scfg.directions.kind,
        "norm": scfg.directions.norm,
        "ignore": scfg.directions.ignore,
        "dir_type": scfg.directions.effective_dir_type,
        "direction_seed": scfg.directions.seed,
        "orthogonalize": scfg.directions.orthogonalize,
        **evaluation_attrs(cfg),
    }
    return SurfaceJob(
        model=model,
        targets=targets,
        draws=draws,
        x=x,
        y=y,
        splits=list(scfg.splits),
        data=lambda: eval_sets(cfg, dev),
        loss=scfg.loss,
        batch_size=scfg.batch_size,
        precision=scfg.precision,
        bn_data=lambda: bn_tensors(cfg, dev),
        engine=scfg.engine,
        flush_seconds=scfg.flush_seconds,
        attrs=attrs,
    )


def build_directions(
    dcfg: DirectionConfig,
    model: nn.Module,
    repeat: int,
    n: int,
    checkpoints: Sequence[str | Path] = (),
) -> Draw:
    """The origin weights and the n directions of one draw; lines and planes move the origin.

    `checkpoints` are the resolved paths of dcfg.checkpoints (for lines and planes).
    """
    targets = target_tensors(model, dcfg.effective_dir_type)
    if dcfg.kind == "random":
        dirs = random_directions(targets, n, dcfg.norm, dcfg.ignore, seed=dcfg.seed + repeat)
        origin = {k: t.detach().clone() for k, t in targets.items()}
    else:
        states = [_checkpoint_targets(str(p), model, dcfg.effective_dir_type) for p in checkpoints]
        origin = states[0]
        if dcfg.kind == "line":
            dirs = [difference(states[0], states[1])]
        else:
            dirs = plane_directions(*states)
    if dcfg.orthogonalize and len(dirs) == 2:
        dirs[1] = orthogonalize(dirs[0], dirs[1])
    return origin, dirs


def _checkpoint_targets(path: str, model: nn.Module, dir_type: str) -> dict[str, Tensor]:
    state = load_checkpoint(path)["state_dict"]
    names = target_tensors(model, dir_type)
    missing = [k for k in names if k not in state]
    if missing:
        raise LandscapeError(
            f"checkpoint {path} does not match the model (no {missing[0]!r}): "
            "surface.directions.checkpoints must come from the same network"
        )
    return {k: state[k].to(t.device, t.dtype) for k, t in names.items()}


def _value_settings(text: Any) -> Any:
    """Surface settings (a fingerprint's YAML) without SPEED_KEYS."""
    settings = yaml.safe_load(text) if isinstance(text, str) else text
    if isinstance(settings, dict):
        return {k: v for k, v in settings.items() if k not in SPEED_KEYS}
    return settings


def fingerprint(cfg: Config, sha: str) -> dict[str, str]:
    """What a resumed file must agree on: the surface settings, model, data and checkpoint."""
    s = cfg.to_dict()
    # What 'auto' stood for: a file made with the same directions resumes whichever was written.
    s["surface"]["directions"]["dir_type"] = cfg.surface.directions.effective_dir_type
    return {
        "fingerprint_surface": yaml.safe_dump(_value_settings(s["surface"]), sort_keys=True),
        "fingerprint_model": yaml.safe_dump(s["model"], sort_keys=True),
        "fingerprint_data": yaml.safe_dump(data_settings(s["data"]), sort_keys=True),
        "checkpoint_sha256": sha,
        # A line or plane is rebuilt from its checkpoints on resume: they must be the same files.
        "directions_sha256": ",".join(
            file_sha256(cfg.resolve_checkpoint(c)) for c in cfg.surface.directions.checkpoints
        ),
    }


def eval_sets(cfg: Config, device: torch.device) -> dict[str, EvalData]:
    """Each requested split on a seeded subset of `samples`: on the device, or streamed when it
    does not fit (surface.engine.in_memory)."""
    from .data import eval_dataset
    from .engine import make_eval_set

    scfg = cfg.surface
    return {
        split: make_eval_set(
            eval_dataset(cfg.data, split),
            n=scfg.samples,  # a subset larger than the split is the whole split
            seed=cfg.data.seed,
            device=device,
            in_memory=scfg.engine.in_memory,
            batch_size=scfg.batch_size,
            workers=scfg.engine.workers,
        )
        for split in scfg.splits
    }


def bn_tensors(cfg: Config, device: torch.device) -> Tensor | None:
    """Training images for `bn: recompute`, a seeded subset of bn_samples."""
    if cfg.surface.bn != "recompute":
        return None
    from .data import dataset_to_tensors, eval_dataset

    ds = eval_dataset(cfg.data, "train")
    if not isinstance(ds, Sized):
        raise LandscapeError(
            f"bn: recompute needs a data set with a length; {cfg.data.name!r} has none"
        )
    x, _ = dataset_to_tensors(ds, n=min(cfg.surface.bn_samples, len(ds)), seed=cfg.data.seed + 1)
    return x.to(device)


def evaluation_attrs(cfg: Config) -> dict[str, Any]:
    """File attributes saying how points were evaluated, and with which versions."""
    scfg = cfg.surface
    return {
        "loss": scfg.loss,
        "bn": scfg.bn,
        "precision": scfg.precision,
        "samples": scfg.samples if scfg.samples is not None else -1,
        "splits": list(scfg.splits),
        "data_seed": cfg.data.seed,
        **provenance_attrs(),
    }


def provenance_attrs() -> dict[str, str]:
    """When a file was made, and with which versions."""
    import platform

    from . import __version__

    return {
        "created": timestamp(),
        "landscape_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }


def _version() -> str:
    from . import __version__

    return __version__
