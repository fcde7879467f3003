"""The HDF5 surface file: schema, writing as a run goes, reading ours and the original code's files.

Layout of a landscape surface file (schema version 1)::

    /x                 (nx,)   float64   coordinates along direction 1
    /y                 (ny,)   float64   coordinates along direction 2 (2D surfaces only)
    /<split>_<metric>  float64 values, NaN where not computed yet, +inf where the loss diverged
                       (a computed loss that is NaN or -inf is stored as +inf; another metric
                       may hold NaN at a computed point, so readers go by `done`)
                       1D: [ix]        2D: [iy, ix]   (rows are y, columns are x, as in meshgrid)
                       with repeats K > 1 a leading axis: [k, ix] or [k, iy, ix]
    /done              bool, same shape: True where the point has been evaluated
    /directions/r<k>/d<i>/<parameter name>   the directions, keyed by parameter name ('/' in a
                       name written '%2F', '%' as '%25')
    /extra/<name>      optional arrays added by other commands (trajectories, Hessian maps)
    attributes         schema, schema_version, config (YAML), checkpoint path and sha256,
                       seeds, normalization, precision, ...

h5py is imported only here.  The file is written with the default (oldest) HDF5 format so that a
process killed while writing leaves a file that still opens; values are written before the
`done` mask, so a point marked done always holds its value.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import START_AFRESH, LandscapeError, first_line

SCHEMA = "landscape-surface"
SCHEMA_VERSION = 1
AXIS_ORDER = (
    "2D metrics are [iy, ix] (rows y, columns x); 1D metrics are [ix]; repeats add a leading axis"
)
ORIGINAL_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


@dataclass
class SurfaceData:
    """A surface in memory: coordinates, metric arrays and the file's attributes."""

    x: np.ndarray
    y: np.ndarray | None
    metrics: dict[str, np.ndarray]
    done: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    repeats: int = 1
    # Which draw of the file at `path` this is: `repeat(k)` of a file of several draws is draw
    # k, whose directions are stored there as r<k>.
    draw: int = 0

    @property
    def title(self) -> str:
        """The run's title attribute, else the file's stem, else "surface"."""
        title = self.attrs.get("title")
        if title:
            return str(title)
        return Path(self.path).stem if self.path else "surface"

    @property
    def ndim(self) -> int:
        return 1 if self.y is None else 2

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.y), len(self.x))

    @property
    def complete(self) -> bool:
        return bool(np.all(self.done))

    def repeat(self, k: int) -> SurfaceData:
        """The k-th of several seeded direction draws as a single surface."""
        if self.repeats == 1:
            if k != 0:
                raise LandscapeError(f"{self.path}: has one draw of directions, not repeat {k}")
            return self
        if not 0 <= k < self.repeats:
            raise LandscapeError(f"{self.path}: repeat {k} out of range 0..{self.repeats - 1}")
        return replace(
            self,
            metrics={n: a[k] for n, a in self.metrics.items()},
            done=self.done[k],
            repeats=1,
            draw=k,
            attrs={**self.attrs, "draw": k},
        )

    def axis_label(self, axis: int) -> str:
        """What direction `axis` (0 or 1) is, for plot labels."""
        labels = self.attrs.get("axis_labels")
        if labels is not None and len(labels) > axis:
            return str(labels[axis])
        kind = self.attrs.get("dir_kind", "random")
        norm = self.attrs.get("norm", "filter")
        if norm in ("unknown", None):  # the original code's files do not say
            return f"direction {axis + 1}"
        if kind == "line":
            return "interpolation coefficient (0 = A, 1 = B)"
        if kind == "plane":
            return f"plane direction {axis + 1}"
        pretty = {
            "filter": "filter-normalized",
            "layer": "layer-normalized",
            "weight": "weight-scaled",
            "dfilter": "unit-filter",
            "dlayer": "unit-layer",
            "none": "unnormalized",
        }.get(str(norm), str(norm))
        return f"{pretty} direction {axis + 1}"


def is_loss(name: str) -> bool:
    """Whether metric `name` is a loss (`<split>_loss`), where non-finite means diverged."""
    return name == "loss" or name.endswith("_loss")


def stored_values(name: str, values: np.ndarray) -> np.ndarray:
    """Computed values as the file keeps them: a loss that is not finite (NaN from overflowing
    logits, or -inf) is +inf, "diverged", since NaN in a loss means "not computed"."""
    values = np.asarray(values, dtype=np.float64)
    if is_loss(name):
        values = np.where(np.isfinite(values), values, np.inf)
    return values


def diverged_as_inf(name: str, values: np.ndarray, done: np.ndarray) -> np.ndarray:
    """A loss read back with NaN or -inf at computed points (older files) as +inf there."""
    if not is_loss(name):
        return values
    values = np.asarray(values, dtype=np.float64)
    return np.where(done & ~np.isfinite(values), np.inf, values)


def metric_names(splits: list[str]) -> list[str]:
    """Dataset names for the metrics recorded on these splits."""
    return [f"{s}_{m}" for s in splits for m in ("loss", "acc")]


def create_surface_file(
    path: str | Path,
    x: np.ndarray,
    y: np.ndarray | None,
    metrics: Sequence[str],
    directions: Sequence[Sequence[Mapping[str, Any]]],
    attrs: Mapping[str, Any],
) -> None:
    """Write a new surface file with NaN metrics; written to a temporary name then renamed."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repeats = len(directions)
    shape: tuple[int, ...] = (len(x),) if y is None else (len(y), len(x))
    if repeats > 1:
        shape = (repeats, *shape)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=np.asarray(x, dtype=np.float64))
            if y is not None:
                f.create_dataset("y", data=np.asarray(y, dtype=np.float64))
            for name in metrics:
                f.create_dataset(name, data=np.full(shape, np.nan), track_times=False)
            f.create_dataset("done", data=np.zeros(shape, dtype=bool), track_times=False)
            for k, dirs in enumerate(directions):
                for i, d in enumerate(dirs):
                    g = f.create_group(f"directions/r{k}/d{i}")
                    for name, t in d.items():
                        g.create_dataset(escape_name(name), data=_to_numpy(t))
            for key, value in attrs.items():
                f.attrs[key] = _attr_value(value)
            # Last, so that a caller's attributes (copied from another file, say one of several
            # draws) never contradict what this file holds.
            f.attrs["schema"] = SCHEMA
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["axis_order"] = AXIS_ORDER
            f.attrs["repeats"] = repeats
            f.attrs["metrics"] = list(metrics)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
        raise
    os.replace(tmp, path)


def escape_name(name: str) -> str:
    """A parameter name as an HDF5 dataset name: '/' would make nested groups, so it is written
    %2F (and '%' as %25)."""
    return name.replace("%", "%25").replace("/", "%2F")


def unescape_name(name: str) -> str:
    """The parameter name `escape_name` wrote; names of older files, unescaped, pass as they are."""
    return re.sub(r"%(25|2F)", lambda m: "%" if m.group(1) == "25" else "/", name)


class UnreadableFile(LandscapeError):
    """A file that is not HDF5, or that HDF5 cannot read (cut short, damaged)."""


def read_attrs_to_resume(path: str | Path) -> dict[str, Any]:
    """read_attrs of a file that a run is about to add points to; one it cannot read says how
    to start afresh."""
    try:
        return read_attrs(path)
    except UnreadableFile as e:
        raise LandscapeError(f"{e}; {START_AFRESH}") from None


def _being_written(path: str | Path) -> LandscapeError:
    return LandscapeError(
        f"{path} is being written by another process: wait for it to finish, "
        "or choose another output path"
    )


def remove_for_overwrite(path: str | Path) -> None:
    """Delete a result file for --overwrite, unless another process is writing it (it holds
    HDF5's lock): its run would go on writing points into a deleted file and report success."""
    import h5py

    if not Path(path).exists():
        return
    try:
        h5py.File(str(path), "r+").close()
    except BlockingIOError:
        raise _being_written(path) from None
    except OSError:
        pass  # damaged, or not HDF5: no run writes it
    Path(path).unlink(missing_ok=True)


class SurfaceWriter:
    """Keeps a surface file open between flushes of newly computed points."""

    def __init__(self, path: str | Path):
        import h5py

        self.path = str(path)
        try:
            self._f = h5py.File(self.path, "r+")
        except BlockingIOError:
            # HDF5's lock: another process writes this file, and two writers would lose points.
            raise _being_written(path) from None

    def write(self, values: Mapping[str, np.ndarray], index: tuple[np.ndarray, ...]) -> None:
        """Store metric values at fancy `index`, then mark them done, then flush to disk."""
        if len(index[0]) == 0:
            return
        # h5py wants increasing indices along one axis; write through a read-modify-write of
        # the (small) metric arrays instead.
        for name, vals in values.items():
            arr = self._f[name][...]
            arr[index] = stored_values(name, vals)
            self._f[name][...] = arr
        done = self._f["done"][...]
        done[index] = True
        self._f.flush()
        self._f["done"][...] = done
        self._f.flush()

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        for key, value in attrs.items():
            self._f.attrs[key] = _attr_value(value)
        self._f.flush()

    def add_history(self, entry: Mapping[str, Any]) -> None:
        """Append one run's record to the 'history' attribute (a JSON list)."""
        self.set_attrs({"history": with_history(self._f.attrs.get("history"), entry)})

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SurfaceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_history(history: Any, entry: Mapping[str, Any]) -> str:
    """The 'history' attribute (a JSON list, one record per run that computed points) with
    `entry` appended; an unreadable earlier value is kept as the text it was."""
    import json

    if isinstance(history, bytes):
        history = history.decode(errors="replace")
    try:
        runs = json.loads(history) if isinstance(history, str) else []
    except ValueError:
        runs = None
    if not isinstance(runs, list):
        runs = [{"unreadable": str(history)}]
    return json.dumps([*runs, dict(entry)])


def distinct_titles(names: Sequence[str]) -> list[str]:
    """Titles as given, with " #2", " #3", ... added to repeats so that each panel or column is
    its own."""
    out: list[str] = []
    for i, n in enumerate(names):
        out.append(n if n not in out and list(names).count(n) == 1 else f"{n} #{i + 1}")
    return out


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The file's attributes only (cheap: no arrays are read)."""
    return _read(path, lambda f: {k: _from_attr(v) for k, v in f.attrs.items()})


def read_surface(path: str | Path) -> SurfaceData:
    """Read a landscape surface file, or one written by the paper's original code."""
    return _read(path, lambda f: _read_any(f, str(path)))


def _read_any(f: Any, path: str) -> SurfaceData:
    if f.attrs.get("schema") == SCHEMA:
        return _read_ours(f, path)
    if "xcoordinates" in f:
        return _read_original(f, path)
    raise LandscapeError(
        f"{path}: not a surface file (no 'schema' attribute and no 'xcoordinates' dataset)"
    )


def read_directions(path: str | Path, repeat: int = 0) -> list[dict[str, np.ndarray]]:
    """The stored directions of one draw, each a dict keyed by parameter name."""

    def read(f: Any) -> list[dict[str, np.ndarray]]:
        if f"directions/r{repeat}" not in f:
            raise LandscapeError(f"{path}: no stored directions for repeat {repeat}")
        g = f[f"directions/r{repeat}"]
        return [_named_arrays(g[f"d{i}"]) for i in range(len(g))]

    return _read(path, read)


def _named_arrays(group: Any) -> dict[str, np.ndarray]:
    """The datasets under `group` by parameter name; older files wrote a name with '/' as nested
    groups, which are walked."""
    import h5py

    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out[unescape_name(name)] = obj[...]

    group.visititems(visit)
    return out


def write_extra(
    path: str | Path, name: str, data: np.ndarray, attrs: Mapping[str, Any] | None = None
) -> None:
    """Add or replace an array under /extra (trajectories, curvature maps, ...)."""
    import h5py

    with h5py.File(str(path), "r+") as f:
        key = f"extra/{name}"
        if key in f:
            del f[key]
        ds = f.create_dataset(key, data=np.asarray(data))
        for k, v in (attrs or {}).items():
            ds.attrs[k] = _attr_value(v)


def read_extra(path: str | Path) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """All arrays under /extra with their attributes."""

    def read(f: Any) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        if "extra" not in f:
            return {}
        return {
            name: (ds[...], {k: _from_attr(v) for k, v in ds.attrs.items()})
            for name, ds in f["extra"].items()
        }

    return _read(path, read)


def _read_ours(f: Any, path: str) -> SurfaceData:
    attrs = {k: _from_attr(v) for k, v in f.attrs.items()}
    version = _schema_version(attrs.get("schema_version", 0), path)
    if version > SCHEMA_VERSION:
        raise LandscapeError(
            f"{path}: schema version {version} is newer than this landscape ({SCHEMA_VERSION}); "
            "upgrade landscape to read it"
        )
    repeats = _repeats(attrs.get("repeats", 1), path)
    names = [str(n) for n in attrs.get("metrics", [])]
    # `done` first: a writer stores values before marking them done, so a point read as done
    # while a run is still writing already holds its value.
    done = _dataset(f, "done", path, _RECOMPUTE).astype(bool)
    # A listed metric may be absent (a Surface saved after dropping one); the others are read.
    metrics = {n: _dataset(f, n, path, _RECOMPUTE) for n in names if n in f}
    x = _coordinates(f, "x", path, _RECOMPUTE)
    y = _coordinates(f, "y", path, _RECOMPUTE) if "y" in f else None
    shape: tuple[int, ...] = (len(x),) if y is None else (len(y), len(x))
    axes = ("nx",) if y is None else ("ny", "nx")
    if repeats > 1:
        shape, axes = (repeats, *shape), ("repeats", *axes)
    for name, arr in [*metrics.items(), ("done", done)]:
        if arr.shape != shape:
            raise _damaged(
                path,
                f"dataset {name!r} has shape {arr.shape}, expected {shape} = ({', '.join(axes)})",
                _RECOMPUTE,
            )
    # Files written before losses were stored as +inf on divergence hold NaN there.
    metrics = {n: diverged_as_inf(n, a, done) for n, a in metrics.items()}
    return SurfaceData(
        x=x, y=y, metrics=metrics, done=done, attrs=attrs, path=path, repeats=repeats
    )


def _read_original(f: Any, path: str) -> SurfaceData:
    """Files of the paper's code: metric[...] filled in meshgrid(x, y) order, i.e. [iy, ix]."""
    x = _coordinates(f, "xcoordinates", path, _RECOMPUTE_ORIGINAL)
    y = _coordinates(f, "ycoordinates", path, _RECOMPUTE_ORIGINAL) if "ycoordinates" in f else None
    shape = (len(x),) if y is None else (len(y), len(x))
    # What the original code allocates, for messages: (nx,) or (nx, ny).
    allocated = (len(x),) if y is None else (len(x), len(y))
    size = int(np.prod(shape))
    metrics: dict[str, np.ndarray] = {}
    for name in ORIGINAL_METRICS:
        if name in f:
            arr = np.asarray(_dataset(f, name, path, _RECOMPUTE_ORIGINAL), dtype=np.float64)
            if arr.size != size:
                raise _damaged(
                    path,
                    f"dataset {name!r} has shape {arr.shape} ({arr.size} values), expected {size} "
                    f"values, shape {allocated} = ({'nx' if y is None else 'nx, ny'})",
                    _RECOMPUTE_ORIGINAL,
                )
            # The original code allocates (nx, ny) but fills it by the flat index of a
            # (ny, nx) meshgrid, so reading the flat buffer as (ny, nx) is right for any shape.
            metrics[name] = arr.reshape(shape)
    if not metrics:
        raise LandscapeError(f"{path}: has coordinates but none of {', '.join(ORIGINAL_METRICS)}")
    # It initialises unfinished points to -1; a loss that diverged it stores as NaN.
    done = np.all([a != -1 for a in metrics.values()], axis=0)
    metrics = {n: diverged_as_inf(n, np.where(done, a, np.nan), done) for n, a in metrics.items()}
    return SurfaceData(x=x, y=y, metrics=metrics, done=done, attrs=_original_attrs(f), path=path)


def _original_attrs(f: Any) -> dict[str, Any]:
    """What an original file tells of its directions: its `dir_file` and what that name encodes
    (dir_type, xnorm=, xignore=); the rest is unknown, not guessed."""
    attrs: dict[str, Any] = {"source": "original", "dir_kind": "unknown", "norm": "unknown"}
    dir_file = f.attrs.get("dir_file")
    if dir_file is None and "dir_file" in f and getattr(f["dir_file"], "shape", None) == ():
        dir_file = f["dir_file"][()]
    if isinstance(dir_file, bytes):
        dir_file = dir_file.decode(errors="replace")
    if not isinstance(dir_file, str) or not dir_file:
        return attrs
    attrs["dir_file"] = dir_file
    name = Path(dir_file).name
    for key, pattern in (
        ("norm", r"xnorm=([A-Za-z0-9]+)"),
        ("ignore", r"xignore=([A-Za-z0-9]+)"),
        ("dir_type", r"dir_type=([A-Za-z0-9]+)|_(weights|states)(?=[_.]|$)"),
    ):
        m = re.search(pattern, name)
        if m:
            attrs[key] = next(g for g in m.groups() if g)
    return attrs


_RECOMPUTE = "rerun with --overwrite to compute it afresh"
_RECOMPUTE_ORIGINAL = "compute it again (with the original code, or with `landscape surface`)"


def _damaged(path: str, what: str, fix: str) -> LandscapeError:
    """The one error for a file whose structure is broken (cut short, hand-edited)."""
    return LandscapeError(f"{path}: damaged surface file: {what}; {fix}")


def _dataset(f: Any, name: str, path: str, fix: str) -> np.ndarray:
    """Dataset `name` read whole; a missing one, a group or non-numbers mean a damaged file."""
    import h5py

    obj = f.get(name)
    if obj is None:
        raise _damaged(path, f"dataset {name!r} is missing", fix)
    if not isinstance(obj, h5py.Dataset):
        raise _damaged(path, f"{name!r} is a group, not a dataset", fix)
    if obj.dtype.kind not in "biuf":
        raise _damaged(path, f"dataset {name!r} holds {obj.dtype}, not numbers", fix)
    return np.asarray(obj[...])


def _coordinates(f: Any, name: str, path: str, fix: str) -> np.ndarray:
    """A coordinate axis: a non-empty 1-D array of finite numbers."""
    arr = _dataset(f, name, path, fix)
    if arr.ndim != 1 or arr.size == 0:
        raise _damaged(
            path, f"dataset {name!r} has shape {arr.shape}, expected a non-empty 1-D array", fix
        )
    if not np.isfinite(arr).all():
        raise _damaged(path, f"dataset {name!r} holds non-finite coordinates", fix)
    return arr


def _repeats(value: Any, path: str) -> int:
    """The 'repeats' attribute: how many direction draws, a positive integer."""
    return _whole_attr("repeats", value, 1, "a positive integer", path)


def _schema_version(value: Any, path: str) -> int:
    """The 'schema_version' attribute, a whole number; anything else is not ours to read."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    expected = (
        f"a whole number (or the file is from a newer landscape than this one, schema version "
        f"{SCHEMA_VERSION}: upgrade to read it)"
    )
    return _whole_attr("schema_version", value, 0, expected, path, booleans=False)


def _whole_attr(
    name: str, value: Any, least: int, expected: str, path: str, booleans: bool = True
) -> int:
    """Attribute `name` as a whole number of at least `least` (a float such as 2.0 counts);
    anything else means a damaged file, `expected` saying what it should hold."""
    if (
        isinstance(value, (int, float))
        and (booleans or not isinstance(value, bool))
        and np.isfinite(value)
        and value >= least
        and value == int(value)
    ):
        return int(value)
    raise _damaged(path, f"attribute {name!r} is {value!r}, expected {expected}", _RECOMPUTE)


@contextmanager
def _open(path: str | Path) -> Iterator[Any]:
    """The file open for reading. A file without HDF5's signature is one line at once; an HDF5
    file that fails to open raises h5py's OSError, which _read tries again (its writer may be
    growing it)."""
    import h5py

    if not Path(path).exists():
        raise LandscapeError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise LandscapeError(f"{path}: not readable by this user (permission denied)")
    try:
        # Without HDF5's file lock: a run that is writing the file holds it, and readers (plots,
        # progress checks, the resume check) must still get in.
        f = h5py.File(str(path), "r", locking=False)
    except OSError as e:
        try:
            # HDF5 insists on the same locking flags when this process already has the file open
            # (a SurfaceWriter here); reading through that open file needs no lock of its own.
            f = h5py.File(str(path), "r")
        except OSError:
            # Files are created whole (written under another name, then renamed), so one without
            # the signature is not HDF5 and never will be; any other failure may be a writer's.
            if not h5py.is_hdf5(str(path)):
                raise UnreadableFile(
                    f"{path}: cannot open as HDF5 ({first_line(e)}); it is not an HDF5 file"
                ) from None
            raise e from None
    try:
        yield f
    finally:
        f.close()


# A reader that opens or reads a file while its writer grows it (new attributes: a run's start
# and its history at the end) can find the superblock already saying the new size and the end
# not yet written ("truncated file"), an address past the end it read ("addr overflow"), or the
# layout moved under it ("exceeds EOA"). Measured: 100 of 24,683 opens failed against a writer
# that did nothing else, each fine again within milliseconds; readers try again for this long.
TRUNCATED_RETRY_SECONDS = 2.0
_TRUNCATED = "truncated file"
_T = TypeVar("_T")


def _read(path: str | Path, read: Callable[[Any], _T]) -> _T:
    """read(f) on the file open for reading, tried again while h5py fails on a file that its
    writer is changing; a failure that lasts is one line."""
    deadline = time.monotonic() + TRUNCATED_RETRY_SECONDS
    while True:
        try:
            with _open(path) as f:
                return read(f)
        except OSError as e:
            if time.monotonic() > deadline:
                why = first_line(e)
                if _TRUNCATED in why:
                    why += (
                        "; the file is shorter than its header says: it was cut off while being "
                        "written (a crash, or a copy still in progress)"
                    )
                raise UnreadableFile(f"{path}: cannot read the file ({why})") from None
        time.sleep(0.02)


def _to_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16; float32 holds it exactly
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def _attr_value(value: Any) -> Any:
    if value is None:
        return "None"
    if isinstance(value, str):
        # str subclasses (torch.__version__ is a TorchVersion) would become a numpy '<U' array.
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        import h5py

        # A plain list of str becomes a numpy '<U' array, which HDF5 cannot store.
        return np.array([str(v) for v in value], dtype=h5py.string_dtype())
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def _from_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value == "None":
        return None
    return value
