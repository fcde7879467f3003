"""The training path of a run in its PCA plane: directions, projected path, and the loss there.

``compute_trajectory`` reads a run's ``epoch_*.pt`` and ``final.pt``, finds the top two principal
directions of ``w_epoch - w_final`` (Li et al. 2018, Sec. 7), projects the path onto them, and
evaluates the loss on a grid of that plane into a resumable surface file (``trajectory.h5``).
The file's ``/extra`` group holds the path::

    path_xy             (T, 2)  least-squares coordinates of each checkpoint in the plane
    path_epochs         (T,)    the epoch of each checkpoint (the last one is final.pt: origin)
    path_residual       (T,)    ||w_t - w_f - D c_t|| / ||w_t - w_f||: what the plane misses of
                                the weights the PCA takes (with ignore "biasbn", not the biases
                                and BN weights: the path losses show what those change)
    explained_variance  (2,)    share of the path's squared distance each direction explains
    path_loss_projected (T,)    loss at w_f + c1 d1 + c2 d2 (what the figure shows)
    path_loss_actual    (T,)    loss at the checkpoint itself (its own biases, and its own BN
                                statistics with bn: eval; re-estimated, as on the plane, with
                                bn: recompute)

The plane is evaluated with the final checkpoint's BatchNorm statistics and, with ignore
"biasbn", its biases and BN weights; the two path losses show how much that and the residual
change the loss along the path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
import yaml
from torch import Tensor

from . import storage
from .checkpoint import file_sha256, load_checkpoint, load_state_into
from .config import Config, TrajectoryConfig, data_settings
from .directions import target_tensors
from .engine import PointEvaluator, resolve_device
from .errors import LandscapeError, check_same_settings
from .rewrite import copy_module
from .surface import (
    Log,
    ProgressFactory,
    SurfaceJob,
    bn_tensors,
    eval_sets,
    evaluation_attrs,
    run_job,
)
from .train import load_trained
from .trajectory import path_residual, pca_directions, plot_range, project_path

TRAJECTORY_FILE = "trajectory.h5"
PATH_EXTRAS = (
    "path_xy",
    "path_epochs",
    "path_residual",
    "explained_variance",
    "path_loss_projected",
    "path_loss_actual",
)
# Surface settings that change the trajectory file's values.
_SURFACE_KEYS = ("splits", "loss", "samples", "bn", "bn_samples", "precision")
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


# How the plane is chosen and sampled: a config's `trajectory` section.
TrajectoryOptions = TrajectoryConfig


def path_checkpoints(ckdir: str | Path) -> list[tuple[int, Path]]:
    """(epoch, file) of ``epoch_*.pt`` sorted by epoch, ending with ``final.pt``.

    Training saves the last epoch twice (``epoch_E.pt`` and ``final.pt``); the copy is left out,
    so the path ends exactly at the final weights.
    """
    ckdir = Path(ckdir)
    final = ckdir / "final.pt"
    if not final.exists():
        raise LandscapeError(f"{final} not found: train the run first (landscape train CONFIG)")
    found = []
    for p in ckdir.iterdir():
        m = _EPOCH_FILE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    final_epoch = int(load_checkpoint(final).get("epoch", -1))
    if final_epoch < 0:  # a bare state_dict: its epoch copy is the file with the same bytes
        same = file_sha256(final)
        final_epoch = next((e for e, p in found if file_sha256(p) == same), -1)
    path = [(e, p) for e, p in found if e != final_epoch]
    path.append((final_epoch, final))
    if len(path) < 3:
        raise LandscapeError(
            f"{ckdir} holds {len(path)} checkpoints of the path; two PCA directions need at "
            "least 3: train with a smaller train.save_every"
        )
    return path


def compute_trajectory(
    cfg: Config,
    *,
    options: TrajectoryOptions | None = None,
    path: str | Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
    progress: ProgressFactory | None = None,
    log: Log | None = None,
) -> Path:
    """PCA plane of the run's path, the path in it, and the loss on it; resumes an unfinished file.

    Returns the path of the surface file (default ``run_dir/trajectory.h5``).
    """
    opts = options or cfg.trajectory
    if opts.grid < 2:
        raise LandscapeError(f"the trajectory grid needs >= 2 points per axis, got {opts.grid}")
    log = log or (lambda s: None)
    path = Path(path) if path is not None else cfg.run_dir / TRAJECTORY_FILE
    dev = resolve_device(device or cfg.device)
    ckpts = path_checkpoints(cfg.checkpoint_dir)
    final_path = ckpts[-1][1]
    model, final_ckpt = load_trained(cfg, final_path, dev)
    expected = _fingerprint(cfg, opts, ckpts)

    data = functools.cache(lambda: eval_sets(cfg, dev))
    bn_data = functools.cache(lambda: bn_tensors(cfg, dev))

    if overwrite:
        # The data before the old file goes: a mistake in them (a subset larger than the data
        # set) must not cost the file --overwrite would delete.
        data(), bn_data()
        storage.remove_for_overwrite(path)
    if path.exists():
        have = storage.read_attrs_to_resume(path).get("trajectory_fingerprint")
        check_same_settings(path, yaml.safe_load(have or "{}"), yaml.safe_load(expected))
        extra = storage.read_extra(path)
        if "explained_variance" not in extra:  # killed between creating the file and the path
            path.unlink()
    if not path.exists():
        log(f"PCA of {len(ckpts)} checkpoints in {cfg.checkpoint_dir}")
        names = [n for n, _ in model.named_parameters()]
        _create(path, cfg, opts, ckpts, final_ckpt, names, expected)

    extra = storage.read_extra(path)
    surf = storage.read_surface(path)
    if surf.complete and "path_loss_actual" in extra:
        return path
    dirs = [{k: torch.as_tensor(v) for k, v in d.items()} for d in storage.read_directions(path)]
    targets = target_tensors(model, "weights")
    scfg = cfg.surface

    if "path_loss_actual" not in extra:
        log(f"loss along the path ({len(ckpts)} checkpoints, projected and actual)")
        metric = f"{scfg.splits[0]}_loss"
        # Both on the plain engine (no BN folding), so that at the final weights they agree
        # to the last bit and any gap is the plane's.
        evaluator: dict[str, Any] = {
            "loss": scfg.loss,
            "batch_size": scfg.batch_size,
            "precision": scfg.precision,
            "bn_data": bn_data(),
        }
        ev = PointEvaluator(model, targets, dirs, **evaluator)
        with ev.session():
            projected = [ev.evaluate(tuple(c), data())[metric] for c in extra["path_xy"][0]]
        probe = copy_module(model)
        actual = []
        for _, p in ckpts:
            load_state_into(probe, load_checkpoint(p)["state_dict"], f"checkpoint {p}")
            at = PointEvaluator(probe, target_tensors(probe, "weights"), [], **evaluator)
            actual.append(at.evaluate((), data())[metric])
        note = {"metric": metric}
        storage.write_extra(path, "path_loss_projected", np.array(projected), note)
        storage.write_extra(path, "path_loss_actual", np.array(actual), note)

    # The plane's grid runs like any surface (engine speed-ups, flushes, resume).
    job = SurfaceJob(
        model=model,
        targets=targets,
        draws=[({k: t.detach().clone() for k, t in targets.items()}, dirs)],
        x=surf.x,
        y=surf.y,
        splits=list(scfg.splits),
        data=data,
        loss=scfg.loss,
        batch_size=scfg.batch_size,
        precision=scfg.precision,
        bn_data=bn_data,
        engine=scfg.engine,
        flush_seconds=scfg.flush_seconds,
        attrs=surf.attrs,
    )
    run_job(job, path, progress=progress)
    return path


def draw_trajectory(
    path: str | Path,
    out: str | Path,
    *,
    metric: str | None = None,
    dpi: int = 150,
    **style: Any,
) -> Path:
    """Loss contours of the plane with the path on top, axes labelled with explained variance;
    ``style``: vmin, vmax, levels, log (as a config's `plot` section)."""
    from .plot import plot_trajectory, save_figure

    surf = storage.read_surface(path)
    extra = storage.read_extra(path)
    missing = [k for k in ("path_xy", "path_epochs") if k not in extra]
    if missing:
        raise LandscapeError(f"{path}: no /extra/{missing[0]}; run landscape trajectory first")
    labels = surf.attrs.get("axis_labels") or ["PC1", "PC2"]
    fig = plot_trajectory(
        surf,
        extra["path_xy"][0],
        [int(e) for e in extra["path_epochs"][0]],
        metric=metric,
        xlabel=str(labels[0]),
        ylabel=str(labels[1]),
        **style,
    )
    return save_figure(fig, out, dpi=dpi)


def _create(
    path: Path,
    cfg: Config,
    opts: TrajectoryOptions,
    ckpts: Sequence[tuple[int, Path]],
    final_ckpt: dict[str, Any],
    names: Sequence[str],
    fingerprint: str,
) -> None:
    """PCA and projection of the path over the named parameters, then a new surface file
    holding them (no losses yet)."""
    final = {n: final_ckpt["state_dict"][n] for n in names}
    # Loaded on each use, one at a time: a Fig. 9 path holds 301 checkpoints of VGG-9.
    weights = _Checkpoints([p for _, p in ckpts], names, final)
    dirs, ratios = pca_directions(weights, final, opts.ignore, n=2)
    coords = project_path(weights, final, dirs, opts.ignore)  # (T, 2)
    residual = path_residual(weights, final, dirs, coords, opts.ignore)
    (x0, x1), (y0, y1) = plot_range(coords, opts.margin)
    x, y = np.linspace(x0, x1, opts.grid), np.linspace(y0, y1, opts.grid)
    scfg = cfg.surface
    labels = [f"PC{i + 1}: {100 * r:.1f} %" for i, r in enumerate(ratios)]
    attrs = {
        "trajectory_fingerprint": fingerprint,
        "config": cfg.to_yaml(),
        "title": f"{cfg.run or cfg.name} trajectory",
        "model": cfg.model.name,
        "checkpoint": str(ckpts[-1][1]),
        "checkpoint_sha256": file_sha256(ckpts[-1][1]),
        "checkpoint_epoch": int(final_ckpt.get("epoch", -1)),
        "path_checkpoints": [str(p) for _, p in ckpts],
        "dir_kind": "pca",
        "norm": "none",
        "ignore": opts.ignore,
        "dir_type": "weights",
        "margin": opts.margin,
        "axis_labels": labels,
        **evaluation_attrs(cfg),
    }
    storage.create_surface_file(path, x, y, storage.metric_names(list(scfg.splits)), [dirs], attrs)
    storage.write_extra(path, "path_xy", coords)
    storage.write_extra(path, "path_epochs", np.array([e for e, _ in ckpts], dtype=np.int64))
    storage.write_extra(path, "path_residual", residual)
    # Written last: its presence marks the path as complete (see the resume check).
    storage.write_extra(path, "explained_variance", np.asarray(ratios, dtype=np.float64))


class _Checkpoints(Sequence[dict[str, Tensor]]):
    """The named parameters of each checkpoint of a path, read from disk when asked for (the
    last one is the final weights, already in memory)."""

    def __init__(self, paths: Sequence[Path], names: Sequence[str], final: dict[str, Tensor]):
        self.paths, self.names, self.final = list(paths), list(names), final

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, i: int) -> dict[str, Tensor]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Tensor]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self.paths[i] == self.paths[-1]:
            return self.final
        return _parameters(self.paths[i], self.names)


def _parameters(path: Path, names: Sequence[str]) -> dict[str, Tensor]:
    state = load_checkpoint(path)["state_dict"]
    missing = [n for n in names if n not in state]
    if missing:
        raise LandscapeError(f"checkpoint {path} lacks {missing[0]!r}: it is of another network")
    return {n: state[n] for n in names}


def _fingerprint(cfg: Config, opts: TrajectoryOptions, ckpts: Sequence[tuple[int, Path]]) -> str:
    """What a resumed trajectory file must agree on, as one YAML string."""
    d = cfg.to_dict()
    s = d["surface"]
    return yaml.safe_dump(
        {
            "model": d["model"],
            "data": data_settings(d["data"]),
            "surface": {k: s[k] for k in _SURFACE_KEYS},
            "grid": opts.grid,
            "margin": opts.margin,
            "ignore": opts.ignore,
            "checkpoints": [[p.name, file_sha256(p)] for _, p in ckpts],
        },
        sort_keys=True,
    )


def trajectory_summary(path: str | Path) -> str:
    """One line on a trajectory file: explained variance, path residual, loss gap."""
    extra = {k: v for k, (v, _) in storage.read_extra(path).items()}
    ratios = ", ".join(
        f"PC{i + 1} {100 * r:.1f} %" for i, r in enumerate(extra["explained_variance"])
    )
    gap = abs(extra["path_loss_projected"] - extra["path_loss_actual"]).max()
    return (
        f"explained variance: {ratios}; largest path residual (PCA weights) "
        f"{extra['path_residual'].max():.3f}; largest loss gap plane vs checkpoints {gap:.4g}"
    )
