"""Computing a surface: the grid, the run loop, resume from the file, and sharing points among ranks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from . import storage
from .checkpoint import file_sha256, load_checkpoint, load_state_into, model_from_checkpoint
from .config import Config, DirectionConfig, SurfaceConfig
from .directions import (
    Direction,
    difference,
    orthogonalize,
    plane_directions,
    random_directions,
    target_tensors,
)
from .engine import EvalSet, PointEvaluator, resolve_device
from .errors import LandscapeError

# Attributes that must agree between a file and the run that resumes into it.
FINGERPRINT_KEYS = (
    "fingerprint_surface",
    "fingerprint_model",
    "fingerprint_data",
    "checkpoint_sha256",
    "directions_sha256",
)


def axis_coords(spec: Sequence[float]) -> np.ndarray:
    """Coordinates of one grid axis from [min, max, num]."""
    lo, hi, num = spec
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


def build_directions(
    dcfg: DirectionConfig,
    model: nn.Module,
    repeat: int,
    n: int,
    checkpoints: Sequence[str | Path] = (),
) -> tuple[dict[str, Tensor], list[Direction]]:
    """The origin weights and the n directions of one draw; lines and planes move the origin.

    `checkpoints` are the resolved paths of dcfg.checkpoints (for lines and planes).
    """
    targets = target_tensors(model, dcfg.dir_type)
    if dcfg.kind == "random":
        dirs = random_directions(targets, n, dcfg.norm, dcfg.ignore, seed=dcfg.seed + repeat)
        origin = {k: t.detach().clone() for k, t in targets.items()}
    else:
        states = [_checkpoint_targets(str(p), model, dcfg.dir_type) for p in checkpoints]
        origin = states[0]
        dirs = [difference(states[0], states[1])] if dcfg.kind == "line" else plane_directions(*states)
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


def fingerprint(cfg: Config, sha: str) -> dict[str, str]:
    """What a resumed file must agree on: the surface settings, model, data and checkpoint."""
    s = cfg.to_dict()
    surface = dict(s["surface"])
    surface.pop("flush_seconds", None)
    return {
        "fingerprint_surface": yaml.safe_dump(surface, sort_keys=True),
        "fingerprint_model": yaml.safe_dump(s["model"], sort_keys=True),
        "fingerprint_data": yaml.safe_dump(
            {k: v for k, v in s["data"].items() if k not in ("root", "download")}, sort_keys=True
        ),
        "checkpoint_sha256": sha,
        # A line or plane is rebuilt from its checkpoints on resume: they must be the same files.
        "directions_sha256": ",".join(
            file_sha256(cfg.resolve_checkpoint(c)) for c in cfg.surface.directions.checkpoints
        ),
    }


def check_resumable(path: Path, expected: dict[str, str]) -> None:
    """Refuse to resume into a file made with another config, checkpoint or seed."""
    have = storage.read_attrs(path)
    for key in FINGERPRINT_KEYS:
        if have.get(key) != expected[key]:
            names = {"checkpoint_sha256": "checkpoint", "directions_sha256": "direction checkpoint"}
            what = names.get(key, key.replace("fingerprint_", ""))
            raise LandscapeError(
                f"{path} was made with a different {what}: rerun with --overwrite to start afresh, "
                "or change the output path"
            )


def eval_sets(cfg: Config, device: torch.device) -> dict[str, EvalSet]:
    """Each requested split as tensors on the device, on a seeded subset of `samples`."""
    from .data import dataset_to_tensors, eval_dataset

    out = {}
    for split in cfg.surface.splits:
        ds = eval_dataset(cfg.data, split)
        n = cfg.surface.samples
        if n is not None and n > len(ds):
            n = len(ds)  # a subset larger than the split is the whole split
        x, y = dataset_to_tensors(ds, n=n, seed=cfg.data.seed)
        out[split] = EvalSet(x.to(device), y.to(device))
    return out


def bn_tensors(cfg: Config, device: torch.device) -> Tensor | None:
    """Training images for `bn: recompute`, a seeded subset of bn_samples."""
    if cfg.surface.bn != "recompute":
        return None
    from .data import dataset_to_tensors, eval_dataset

    ds = eval_dataset(cfg.data, "train")
    x, _ = dataset_to_tensors(ds, n=min(cfg.surface.bn_samples, len(ds)), seed=cfg.data.seed + 1)
    return x.to(device)


ProgressFactory = Callable[[int, int], Any]


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
    dist_info = dist_info or Distributed.from_torch()
    path = Path(path) if path is not None else cfg.surface_path
    dev = resolve_device(device or cfg.device)
    scfg = cfg.surface
    ckpt_path = cfg.final_checkpoint
    model, ckpt = model_from_checkpoint(ckpt_path, cfg.model.name, _model_args_hint(cfg))
    model.to(dev).eval()
    sha = file_sha256(ckpt_path)
    x, y = grid_axes(scfg)
    ndir = 1 if y is None else 2
    refs = [cfg.resolve_checkpoint(c) for c in scfg.directions.checkpoints]
    if refs:
        # A line or plane starts at its first checkpoint, buffers (BN running statistics)
        # included, so that its origin is that network and not weights of one with stats of another.
        load_state_into(model, load_checkpoint(refs[0])["state_dict"], f"checkpoint {refs[0]}")
    targets = target_tensors(model, scfg.directions.dir_type)
    draws = [build_directions(scfg.directions, model, k, ndir, refs) for k in range(scfg.repeats)]
    expected = fingerprint(cfg, sha)  # after loading refs: a missing one is a LandscapeError there

    if dist_info.rank == 0:
        if path.exists() and overwrite:
            path.unlink()
        if path.exists():
            check_resumable(path, expected)
        else:
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
                "dir_type": scfg.directions.dir_type,
                "direction_seed": scfg.directions.seed,
                "orthogonalize": scfg.directions.orthogonalize,
                "loss": scfg.loss,
                "bn": scfg.bn,
                "precision": scfg.precision,
                "samples": scfg.samples if scfg.samples is not None else -1,
                "splits": list(scfg.splits),
                "data_seed": cfg.data.seed,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "landscape_version": _version(),
                "torch_version": torch.__version__,
            }
            metrics = storage.metric_names(list(scfg.splits))
            storage.create_surface_file(path, x, y, metrics, [d for _, d in draws], attrs)
    _barrier(dist_info)

    done = storage.read_surface(path).done if dist_info.rank == 0 else None
    pending = _broadcast_pending(done, dist_info)
    if not pending:
        return path

    data = eval_sets(cfg, dev)
    bn_data = bn_tensors(cfg, dev)
    writer = storage.SurfaceWriter(path) if dist_info.rank == 0 else None
    bar = progress(len(pending), 0) if progress is not None and dist_info.rank == 0 else None
    try:
        by_repeat: dict[int, list[tuple[int, ...]]] = {}
        for idx in pending:
            by_repeat.setdefault(idx[0] if scfg.repeats > 1 else 0, []).append(idx)
        for k, indices in by_repeat.items():
            origin, dirs = draws[k]
            with torch.no_grad():
                for name, t in targets.items():
                    t.copy_(origin[name])
            ev = PointEvaluator(
                model,
                targets,
                dirs,
                loss=scfg.loss,
                batch_size=scfg.batch_size,
                precision=scfg.precision,
                bn_data=bn_data,
            )
            with ev.session():
                _run_points(ev, indices, x, y, data, writer, bar, scfg, dist_info)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    return path


def _run_points(
    ev: PointEvaluator,
    indices: list[tuple[int, ...]],
    x: np.ndarray,
    y: np.ndarray | None,
    data: dict[str, EvalSet],
    writer: storage.SurfaceWriter | None,
    bar: Any,
    scfg: SurfaceConfig,
    dist_info: Distributed,
) -> None:
    """Evaluate `indices` (shared round-robin among ranks), flushing to the file as they finish."""
    buffer: list[tuple[tuple[int, ...], dict[str, float]]] = []
    last_flush = time.monotonic()
    # Ranks work in rounds of `world` points so that rank 0 can collect and write each round.
    step = dist_info.world
    try:
        for start in range(0, len(indices), step):
            round_ = indices[start : start + step]
            mine = round_[dist_info.rank] if dist_info.rank < len(round_) else None
            result = ev.evaluate(point_coords(x, y, mine), data) if mine is not None else None
            if dist_info.enabled:
                gathered = _gather((mine, result), dist_info)
            else:
                gathered = [(mine, result)]
            if writer is not None:
                buffer.extend((i, r) for i, r in gathered if i is not None and r is not None)
                if bar is not None:
                    bar.update(len(round_))
                if time.monotonic() - last_flush >= scfg.flush_seconds:
                    _flush(writer, buffer)
                    buffer = []
                    last_flush = time.monotonic()
    finally:
        # Also on Ctrl-C or an error: finished points are kept, and a rerun resumes after them.
        if writer is not None:
            _flush(writer, buffer)


def _flush(writer: storage.SurfaceWriter, buffer: list[tuple[tuple[int, ...], dict[str, float]]]) -> None:
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
    if dist_info.enabled:
        import torch.distributed as dist

        box = [pending]
        dist.broadcast_object_list(box, src=0)
        pending = box[0]
    return pending or []


def _gather(item: Any, dist_info: Distributed) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * dist_info.world if dist_info.rank == 0 else []
    dist.gather_object(item, out if dist_info.rank == 0 else None, dst=0)
    return out if dist_info.rank == 0 else []


def _barrier(dist_info: Distributed) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def _model_args_hint(cfg: Config) -> dict[str, Any]:
    """Model arguments for a bare state_dict checkpoint: classes and channels from the data set."""
    from .data import data_info

    info = data_info(cfg.data)
    return {"num_classes": info.num_classes, "in_channels": info.in_channels, **cfg.model.args}


def _version() -> str:
    from . import __version__

    return __version__
