"""Hessian curvature over a grid: |lambda_min / lambda_max| maps that line up with a loss surface.

Li et al. (2018, Fig. 7) colour a surface by ``|lambda_min / lambda_max|``: near 0 the loss is
locally convex, larger values mark saddles and non-convex regions. ``curvature_grid`` computes
the map in memory for any model and mean loss; ``compute_hessian_map`` does it for a run, into a
resumable file ``run_dir/hessian.h5`` (surface schema) with the metrics

    <split>_loss, <split>_acc   loss and accuracy on the Hessian's examples (--samples) there
    lambda_max, lambda_min      Lanczos estimates of the extreme Hessian eigenvalues
    ratio                       |lambda_min / lambda_max| where lambda_min < 0, else 0
    lanczos_steps               Lanczos steps taken there (at most hessian.iters)
    lanczos_residual            the relative residual bound it ended with (<= hessian.tol:
                                converged)

and ``/extra/hessian_ratio`` (the ratio map on its own grid, so ``landscape stats hessian.h5``
reports its non-convex fraction). The grid covers surface.x / surface.y with ``grid`` points per
axis, along the directions of the run's ``surface.h5`` when it exists (else the configured
seeded directions, which for random directions are the ones ``landscape surface`` would draw).
When the grid equals the surface's own grid, the finished map is also written into
``surface.h5`` as ``/extra/hessian_ratio``, where ``landscape stats`` and ``report`` find it.
The Hessian at the trained weights (extremes and Hutchinson trace) is stored as ``center_*``
attributes of hessian.h5.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from . import storage
from .checkpoint import file_sha256, load_checkpoint, load_state_into
from .config import Config, HessianConfig, data_settings
from .directions import Direction, target_tensors
from .engine import (
    EvalSet,
    LossFn,
    PointEvaluator,
    evaluate,
    make_eval_set,
    make_loss,
    mean_loss,
    resolve_device,
)
from .errors import LandscapeError, check_same_settings
from .hessian import LANCZOS_ITERS, LANCZOS_TOL, hessian_extremes, hutchinson_trace
from .rewrite import copy_module
from .stats import HESSIAN_RATIO
from .surface import (
    Log,
    ProgressFactory,
    axis_coords,
    bn_tensors,
    record_history,
    timestamp,
)
from .train import load_trained

HESSIAN_FILE = "hessian.h5"
CURVATURE_METRICS = ("lambda_max", "lambda_min", "ratio")
# How Lanczos ended at each point: its steps and relative residual (converged: <= hessian.tol).
LANCZOS_METRICS = ("lanczos_steps", "lanczos_residual")
CENTER_KEYS = ("lambda_max", "lambda_min", "ratio", "trace", "trace_stderr")
# Examples per Hessian-vector product when surface.batch_size is auto: a product keeps the
# activations of two backward passes, so the surface's GPU batch (4,000) would not fit where the
# forward alone does.
HVP_BATCH_SIZE = 1000


# The ratio map's colour scale, as the paper's code draws it: 0 (convex) to 0.5 and above.
RATIO_SCALE = (0.0, 0.5)

# How the curvature map is sampled and estimated: a config's `hessian` section.
HessianOptions = HessianConfig


def iter_curvature(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    directions: Sequence[Mapping[str, Tensor]],
    points: Sequence[Sequence[float]],
    *,
    targets: Mapping[str, Tensor] | None = None,
    bn_data: Tensor | None = None,
    ignore: str = "biasbn",
    iters: int = LANCZOS_ITERS,
    seed: int = 0,
    batch_size: int = 512,
    tol: float = LANCZOS_TOL,
) -> Iterator[dict[str, float]]:
    """Curvature at each point ``w + sum_i c_i d_i``; the model is put back when done or closed.

    ``targets`` are the tensors the directions move (default: the parameters); with ``bn_data``
    the BatchNorm statistics are re-estimated at each point, as ``bn: recompute`` surfaces do.
    The same Lanczos seed is used at every point, so neighbouring values are comparable.
    """
    targets = dict(targets) if targets is not None else target_tensors(model, "weights")
    ev = PointEvaluator(model, targets, [dict(d) for d in directions], bn_data=bn_data)
    with ev.session():
        for coords in points:
            ev.move_to(coords)
            if bn_data is not None:
                ev.recompute_bn()
            yield hessian_extremes(
                model,
                loss_fn,
                x,
                y,
                ignore=ignore,
                iters=iters,
                seed=seed,
                batch_size=batch_size,
                tol=tol,
            )


def curvature_grid(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    directions: Sequence[Mapping[str, Tensor]],
    xs: np.ndarray,
    ys: np.ndarray | None = None,
    **kw: Any,
) -> dict[str, np.ndarray]:
    """Maps of lambda_max, lambda_min, ratio, lanczos_steps and lanczos_residual over the grid,
    [iy, ix] (or [ix] without ys).

    ``kw`` goes to ``iter_curvature`` (targets, bn_data, ignore, iters, seed, batch_size, tol).
    """
    shape = (len(xs),) if ys is None else (len(ys), len(xs))
    indices = list(np.ndindex(*shape))
    points = [_coords(xs, ys, i) for i in indices]
    names = (*CURVATURE_METRICS, *LANCZOS_METRICS)
    out = {k: np.full(shape, np.nan) for k in names}
    results = iter_curvature(model, loss_fn, x, y, directions, points, **kw)
    for index, r in zip(indices, results, strict=True):
        for k in names:
            out[k][index] = r[k]
    return out


def compute_hessian_map(
    cfg: Config,
    *,
    options: HessianOptions | None = None,
    path: str | Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
    progress: ProgressFactory | None = None,
    limit: int | None = None,
    log: Log | None = None,
) -> Path:
    """The Hessian at the trained weights and its map over the grid, into a resumable file.

    ``limit`` caps the grid points computed by this call (the rest wait for the next one).
    Returns the path of the file (default ``run_dir/hessian.h5``).
    """
    opts = options or cfg.hessian
    opts.validate("hessian")
    log = log or (lambda s: None)
    path = Path(path) if path is not None else cfg.run_dir / HESSIAN_FILE
    dev = resolve_device(device or cfg.device)
    scfg = cfg.surface
    seed = scfg.directions.seed if opts.seed is None else opts.seed
    samples = opts.samples if opts.samples is not None else scfg.samples
    ckpt_path = cfg.final_checkpoint
    sha = file_sha256(ckpt_path)
    model, ckpt = load_trained(cfg, ckpt_path, dev)
    split = scfg.splits[0]
    data = _eval_set(cfg, split, samples, dev)
    loss_fn = mean_loss(scfg.loss)
    ignore = scfg.directions.ignore
    est: dict[str, Any] = {
        "ignore": ignore,
        "iters": opts.iters,
        "tol": opts.tol,
        "seed": seed,
        "batch_size": HVP_BATCH_SIZE if scfg.batch_size == "auto" else scfg.batch_size,
    }

    trained = {k: t.detach().clone() for k, t in model.state_dict().items()}
    refs = [cfg.resolve_checkpoint(c) for c in scfg.directions.checkpoints]
    if refs:
        # A line or plane is drawn around its first checkpoint, as landscape surface does.
        load_state_into(model, load_checkpoint(refs[0])["state_dict"], f"checkpoint {refs[0]}")
    dirs, dir_type, source = _directions(cfg, model, sha, log)
    targets = target_tensors(model, dir_type)
    nx, ny = (scfg.x[2], scfg.y[2] if scfg.y else 1) if opts.grid == "surface" else (opts.grid,) * 2
    xs = axis_coords((scfg.x[0], scfg.x[1], nx))
    ys = axis_coords((scfg.y[0], scfg.y[1], ny)) if scfg.y is not None else None
    expected = _fingerprint(cfg, opts, seed, samples, sha, dirs, xs, ys)

    # Before the old file goes: a mistake in the data (a train subset larger than the data set)
    # must not cost the map --overwrite would delete.
    bn_data = bn_tensors(cfg, dev)
    if overwrite:
        storage.remove_for_overwrite(path)
    if path.exists():
        stored = storage.read_attrs_to_resume(path).get("hessian_fingerprint")
        check_same_settings(path, _comparable(stored), _comparable(expected))
    else:
        metrics = [f"{split}_loss", f"{split}_acc", *CURVATURE_METRICS, *LANCZOS_METRICS]
        attrs = {
            "hessian_fingerprint": expected,
            "config": cfg.to_yaml(),
            "title": f"{cfg.run or cfg.name} Hessian",
            "model": cfg.model.name,
            "checkpoint": str(ckpt_path),
            "checkpoint_sha256": sha,
            "checkpoint_epoch": int(ckpt.get("epoch", -1)),
            "dir_kind": scfg.directions.kind,
            "norm": scfg.directions.norm,
            "ignore": ignore,
            "dir_type": dir_type,
            "directions_source": source,
            "loss": scfg.loss,
            "bn": scfg.bn,
            "split": split,
            "samples": samples if samples is not None else -1,
            "iters": opts.iters,
            "tol": opts.tol,
            "lanczos_seed": seed,
            "data_seed": cfg.data.seed,
            "created": timestamp(),
            "torch_version": torch.__version__,
        }
        storage.create_surface_file(path, xs, ys, metrics, [dirs], attrs)

    if "center_trace" not in storage.read_attrs(path):
        log(
            f"Hessian at the trained weights ({len(data)} examples, at most {opts.iters} Lanczos "
            f"steps, tolerance {opts.tol:g})"
        )
        center = _center(model, trained, loss_fn, data, opts.probes, est, bn_data)
        with storage.SurfaceWriter(path) as w:
            w.set_attrs({f"center_{k}": v for k, v in center.items()})

    plain = make_loss(scfg.loss)
    ev = PointEvaluator(model, targets, dirs, bn_data=bn_data)
    with ev.session():

        def work(index: tuple[int, ...]) -> dict[str, float]:
            ev.move_to(_coords(xs, ys, index))
            if bn_data is not None:
                ev.recompute_bn()
            out = hessian_extremes(model, loss_fn, data.x, data.y, **est)
            loss, acc = evaluate(model, data, plain, scfg.batch_size)
            return {**out, f"{split}_loss": loss, f"{split}_acc": acc}

        started, done_before = timestamp(), int(storage.read_surface(path).done.sum())
        try:
            fill_grid(path, work, flush_seconds=scfg.flush_seconds, limit=limit, progress=progress)
        finally:
            # Also after Ctrl-C: the points this run did finish are in the file (record_history
            # adds nothing when it finished none).
            record_history(path, started, done_before, dev, "float32")

    surf = storage.read_surface(path)
    unconverged = _unconverged(surf, opts.tol)
    if unconverged:
        log(
            f"Lanczos did not reach tolerance {opts.tol:g} in {opts.iters} steps at "
            f"{unconverged} of {surf.done.sum()} points (lanczos_residual in {path}); "
            "raise hessian.iters for a surer map"
        )
    if surf.complete:
        ratio = surf.metrics["ratio"]
        note = {
            "source": str(path),
            "iters": opts.iters,
            "tol": opts.tol,
            "samples": len(data),
            "seed": seed,
        }
        storage.write_extra(path, HESSIAN_RATIO, ratio, note)
        if _same_grid(cfg.surface_path, source, surf):
            storage.write_extra(cfg.surface_path, HESSIAN_RATIO, ratio, note)
            log(f"wrote /extra/{HESSIAN_RATIO} into {cfg.surface_path}")
    return path


def center_summary(path: str | Path) -> str:
    """One line on the Hessian at the trained weights, from a Hessian file."""
    c = read_center(path)
    return (
        f"at the trained weights: lambda_max {c['lambda_max']:.4g}, "
        f"lambda_min {c['lambda_min']:.4g}, |lambda_min/lambda_max| {c['ratio']:.4g}, "
        f"trace {c['trace']:.4g} +- {c['trace_stderr']:.2g}"
    )


def read_center(path: str | Path) -> dict[str, float]:
    """The Hessian numbers at the trained weights stored by ``compute_hessian_map``."""
    attrs = storage.read_attrs(path)
    return {k: float(attrs[f"center_{k}"]) for k in CENTER_KEYS if f"center_{k}" in attrs}


def draw_hessian_ratio(path: str | Path, out: str | Path, *, dpi: int = 150) -> Path | None:
    """Heat map of the ratio map of a hessian file (None for a 1D map, which has no heat map)."""
    from .plot import plot_heatmap_array, save_figure

    surf = storage.read_surface(path)
    if surf.y is None:
        return None
    fig = plot_heatmap_array(
        surf.x,
        surf.y,
        surf.metrics["ratio"],
        f"{surf.attrs.get('title', 'Hessian')}: curvature ratio",
        "|λmin / λmax|",
        *RATIO_SCALE,
        xlabel=surf.axis_label(0),
        ylabel=surf.axis_label(1),
    )
    return save_figure(fig, out, dpi=dpi)


def fill_grid(
    path: str | Path,
    work: Callable[[tuple[int, ...]], dict[str, float]],
    *,
    flush_seconds: float = 5.0,
    limit: int | None = None,
    progress: ProgressFactory | None = None,
) -> int:
    """Run ``work`` on each unfinished index of a surface file, writing results as they come.

    Results are flushed with the done-mask every ``flush_seconds`` and on any exit, Ctrl-C
    included, so a rerun continues after the last flushed point. ``limit`` caps the points of
    this call. Returns the number of points computed.
    """
    surf = storage.read_surface(path)
    done, kept = surf.done, set(surf.metrics)
    pending = [tuple(int(v) for v in i) for i in np.argwhere(~done)]
    if limit is not None:
        pending = pending[: max(0, limit)]
    if not pending:
        return 0
    bar = progress(int(done.size), int(done.sum())) if progress is not None else None
    buffer: list[tuple[tuple[int, ...], dict[str, float]]] = []
    last = time.monotonic()
    count = 0
    try:
        with storage.SurfaceWriter(path) as writer:
            try:
                for index in pending:
                    # A file from an older version may hold fewer metrics than work gives.
                    values = {k: v for k, v in work(index).items() if k in kept}
                    buffer.append((index, values))
                    count += 1
                    if bar is not None:
                        bar.update(1)
                    if time.monotonic() - last >= flush_seconds:
                        _flush(writer, buffer)
                        buffer, last = [], time.monotonic()
            finally:
                _flush(writer, buffer)
    finally:
        if bar is not None:
            bar.close()
    return count


def _flush(writer: storage.SurfaceWriter, buffer: list[tuple[tuple[int, ...], Any]]) -> None:
    if not buffer:
        return
    index = tuple(np.array(axis) for axis in zip(*(i for i, _ in buffer), strict=True))
    values = {n: np.array([r[n] for _, r in buffer], dtype=np.float64) for n in buffer[0][1]}
    writer.write(values, index)


def _center(
    model: nn.Module,
    trained: Mapping[str, Tensor],
    loss_fn: LossFn,
    data: EvalSet,
    probes: int,
    est: dict[str, Any],
    bn_data: Tensor | None = None,
) -> dict[str, float]:
    """Extremes and trace at the trained weights (on a copy, so the grid's origin stays put),
    with BatchNorm statistics re-estimated there when the grid's points have theirs
    (``bn_data``, for ``bn: recompute``)."""
    at = copy_module(model)
    at.load_state_dict(trained)
    if bn_data is not None:
        PointEvaluator(at, target_tensors(at, "weights"), [], bn_data=bn_data).recompute_bn()
    out = hessian_extremes(at, loss_fn, data.x, data.y, **est)
    trace, err = hutchinson_trace(
        at,
        loss_fn,
        data.x,
        data.y,
        ignore=est["ignore"],
        samples=probes,
        seed=est["seed"],
        batch_size=est["batch_size"],
    )
    return {**out, "trace": trace, "trace_stderr": err}


def _directions(
    cfg: Config, model: nn.Module, sha: str, log: Log
) -> tuple[list[Direction], str, str]:
    """The surface file's first draw of directions when it belongs to this checkpoint, else the
    configured ones; with their dir_type and where they came from."""
    surface_path = cfg.surface_path
    if surface_path.exists():
        attrs = storage.read_attrs(surface_path)
        if attrs.get("checkpoint_sha256") == sha:
            stored = storage.read_directions(surface_path, 0)
            dirs = [{k: torch.as_tensor(v) for k, v in d.items()} for d in stored]
            return dirs, str(attrs.get("dir_type", "weights")), str(surface_path)
        log(f"{surface_path} was made at another checkpoint; using the configured directions")
    from .surface import build_directions

    dcfg = cfg.surface.directions
    ndir = 1 if cfg.surface.y is None else 2
    refs = [cfg.resolve_checkpoint(c) for c in dcfg.checkpoints]
    _, dirs = build_directions(dcfg, model, 0, ndir, refs)
    cpu = [{k: t.detach().cpu() for k, t in d.items()} for d in dirs]
    return cpu, dcfg.effective_dir_type, f"config ({dcfg.kind}, seed {dcfg.seed})"


def _same_grid(surface_path: Path, source: str, surf: storage.SurfaceData) -> bool:
    """Whether a finished map lines up point for point with the run's surface file."""
    if source != str(surface_path) or not surface_path.exists():
        return False
    other = storage.read_surface(surface_path)
    return (
        other.repeats == 1
        and other.shape == surf.shape
        and np.allclose(other.x, surf.x)
        and (other.y is None or surf.y is None or np.allclose(other.y, surf.y))
    )


def _coords(xs: np.ndarray, ys: np.ndarray | None, index: tuple[int, ...]) -> tuple[float, ...]:
    if ys is None:
        return (float(xs[index[-1]]),)
    return (float(xs[index[-1]]), float(ys[index[-2]]))


def _digest(dirs: Sequence[Mapping[str, Tensor]]) -> str:
    h = hashlib.sha256()
    for d in dirs:
        for k in sorted(d):
            h.update(k.encode())
            h.update(d[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _comparable(fingerprint: str | None) -> dict[str, Any]:
    """A fingerprint as resumes compare it: without the batch size, a speed option that older
    files hold, and with ``tol`` 0 for files from before it (they ran all their ``iters``)."""
    settings = yaml.safe_load(fingerprint or "{}")
    settings.get("surface", {}).pop("batch_size", None)
    if settings:
        settings.setdefault("tol", 0.0)
    return settings


def _unconverged(surf: storage.SurfaceData, tol: float) -> int:
    """Finished points whose Lanczos residual stayed above ``tol`` (0 for older files)."""
    residual = surf.metrics.get("lanczos_residual")
    if residual is None:
        return 0
    return int(np.sum(surf.done & ~(residual <= tol)))


def _fingerprint(
    cfg: Config,
    opts: HessianOptions,
    seed: int,
    samples: int | None,
    sha: str,
    dirs: Sequence[Mapping[str, Tensor]],
    xs: np.ndarray,
    ys: np.ndarray | None,
) -> str:
    """What a resumed hessian file must agree on, as one YAML string."""
    d = cfg.to_dict()
    s = d["surface"]
    return yaml.safe_dump(
        {
            "model": d["model"],
            "data": data_settings(d["data"]),
            "surface": {k: s[k] for k in ("splits", "loss", "bn", "bn_samples")},
            "ignore": s["directions"]["ignore"],
            "samples": samples,
            "iters": opts.iters,
            "tol": opts.tol,
            "probes": opts.probes,
            "seed": seed,
            "checkpoint_sha256": sha,
            "directions_sha256": _digest(dirs),
            "x": [float(v) for v in xs],
            "y": None if ys is None else [float(v) for v in ys],
        },
        sort_keys=True,
    )


def _eval_set(cfg: Config, split: str, samples: int | None, device: torch.device) -> EvalSet:
    """One split on the seeded subset of ``samples`` examples that the surface uses, in memory
    (the Hessian-vector products slice it into batches)."""
    from .data import eval_dataset

    data = make_eval_set(
        eval_dataset(cfg.data, split),
        n=samples,
        seed=cfg.data.seed,
        device=device,
        in_memory="on",
        batch_size=cfg.surface.batch_size,
    )
    if not isinstance(data, EvalSet):  # in_memory="on" always gives one
        raise LandscapeError("the Hessian map needs its examples in memory")
    return data
