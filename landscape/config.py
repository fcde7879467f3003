"""Typed experiment configs: YAML (safe_load) into dataclasses, --set overrides and profiles."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, did_you_mean

LOSSES = ("crossentropy", "mse")
NORMS = ("filter", "layer", "weight", "dfilter", "dlayer", "none")
PRECISIONS = ("float32", "tf32", "bf16", "fp16")
# The figure kinds of plot.KINDS_2D and plot.KINDS_1D, named here so that reading a config does
# not import matplotlib (a test keeps the two in step).
KINDS_2D = ("contour", "contourf", "heatmap", "surface3d")
KINDS_1D = ("line",)
# More points per axis than anyone evaluates; a typo such as 1e9 would otherwise allocate (and
# then try to fill) a grid that does not fit in memory.
MAX_AXIS_POINTS = 100_001
# torch.Generator takes seeds below 2**64; data.seed + 1 seeds the bn subset, so one short of 2**63.
MAX_SEED = 2**63 - 2
# Training reseeds each epoch from train.seed * 100_003 + epoch (train.py), which must stay a seed.
MAX_TRAIN_SEED = 2**32 - 1


def _choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        hint = did_you_mean(value, choices)
        raise ConfigError(f"{value!r} is not one of {', '.join(choices)}{hint}", key=key)


def _finite(value: float, key: str) -> None:
    # NaN passes every bound check (nan <= 0 is False), so it is refused before them.
    if not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value}", key=key)


def check_seed(seed: Any, key: str, most: int = MAX_SEED) -> None:
    """A seed that torch.Generator takes: a whole number from 0 to `most`."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= most:
        raise ConfigError(f"expected a whole number from 0 to {most}, got {seed!r}", key=key)


def _at_most_axis_points(num: int | float, key: str) -> None:
    if num > MAX_AXIS_POINTS:
        raise ConfigError(f"at most {MAX_AXIS_POINTS} points per axis, got {int(num)}", key=key)


def _check_figure_style(
    key: str,
    vmin: float | None,
    vmax: float | None,
    levels: Any,
    log: bool = False,
) -> None:
    """The colour range and contour levels of a `plot` or `compare` section."""
    for name, v in (("vmin", vmin), ("vmax", vmax)):
        if v is None:
            continue
        _finite(v, f"{key}.{name}")
        if log and v <= 0:
            raise ConfigError(
                f"must be positive with log: true (it is mapped by log10), got {v}",
                key=f"{key}.{name}",
            )
    if vmin is not None and vmax is not None and vmin >= vmax:
        raise ConfigError(f"must be below vmax {vmax}, got {vmin}", key=f"{key}.vmin")
    if levels is None:
        return
    if isinstance(levels, int) and not isinstance(levels, bool):
        if levels < 2:
            raise ConfigError(f"must be at least 2, got {levels}", key=f"{key}.levels")
        return
    numbers = isinstance(levels, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in levels
    )
    if not numbers or len(levels) < 2 or any(b <= a for a, b in itertools.pairwise(levels)):
        raise ConfigError(
            f"must be a number of levels (at least 2) or a list of 2 or more increasing numbers, "
            f"got {levels!r}",
            key=f"{key}.levels",
        )
    if log and levels[0] <= 0:
        raise ConfigError(
            f"must be positive with log: true (they are mapped by log10), got {levels[0]}",
            key=f"{key}.levels",
        )


def _check_kinds_fit(kinds: Sequence[str], ndim: int, why: str, key: str) -> None:
    """Every figure kind in `kinds` draws a surface of `ndim` dimensions (`why` says whose)."""
    fit = KINDS_2D if ndim == 2 else KINDS_1D
    for kind in kinds:
        if kind not in fit:
            raise ConfigError(
                f"{kind!r} does not draw a {ndim}D surface ({why}); choose from: {', '.join(fit)}",
                key=key,
            )


@dataclass
class ModelConfig:
    """Which network to build: a registered name or 'pkg.module:function', with its arguments."""

    name: str = "resnet20"
    args: dict[str, Any] = field(default_factory=dict)


# Where the data live and whether they may be downloaded: no result depends on them, so files
# and checkpoints made elsewhere still resume.
DATA_LOCATION_KEYS = ("root", "download")


def data_settings(data: dict[str, Any]) -> dict[str, Any]:
    """A `data` section (as a dict) without DATA_LOCATION_KEYS: what a resume must agree on."""
    return {k: v for k, v in data.items() if k not in DATA_LOCATION_KEYS}


@dataclass
class DataConfig:
    """Which data set, where it lives, and how it is cut and resized."""

    name: str = "digits"
    root: str = "data"
    download: bool = False
    subset: int | None = None
    test_subset: int | None = None
    resize: int | None = None
    augment: bool = True
    # Seeds the subsets and, for digits (which ship without a split), the train/test split.
    seed: int = 0
    args: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        for name in ("subset", "test_subset", "resize"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"must be a positive integer, got {v}", key=f"{key}.{name}")
        check_seed(self.seed, f"{key}.seed")


@dataclass
class TrainConfig:
    """The training recipe; defaults follow the paper (SGD-Nesterov, lr 0.1, 300 epochs)."""

    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: list[int] = field(default_factory=lambda: [150, 225, 275])
    gamma: float = 0.1
    save_every: int = 10
    seed: int = 0
    workers: int = 0
    precision: str = "float32"  # float32 | bf16 (autocast) | auto (bf16 where the device has it)
    channels_last: bool = True
    # The initial weights: the model's own (Kaiming for the bundled nets), or "paper": the
    # paper's code's (models.init.paper_init; Kaiming fan-in, N(0, 1e-3) Linear).
    init: str = "model"

    def validate(self, key: str) -> None:
        _choice(self.optimizer, ("sgd", "adam"), f"{key}.optimizer")
        _choice(self.init, ("model", "paper"), f"{key}.init")
        _choice(self.precision, ("float32", "bf16", "auto"), f"{key}.precision")
        _choice(self.schedule, ("step", "cosine", "constant"), f"{key}.schedule")
        for name in ("epochs", "batch_size", "save_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"must be a positive integer, got {getattr(self, name)}", key=f"{key}.{name}"
                )
        for name in ("lr", "gamma"):
            _finite(getattr(self, name), f"{key}.{name}")
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"must be positive, got {getattr(self, name)}", key=f"{key}.{name}"
                )
        # torch.optim rejects these with a traceback; say which key is wrong instead.
        for name in ("momentum", "weight_decay"):
            _finite(getattr(self, name), f"{key}.{name}")
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", key=f"{key}.{name}")
        # The step schedule counts the milestones passed; one at or below 0, or out of order,
        # silently cuts the rate from the first epoch on.
        m = self.milestones
        if any(e <= 0 for e in m) or any(a >= b for a, b in itertools.pairwise(m)):
            raise ConfigError(
                f"must be positive epochs in increasing order, got {m}", key=f"{key}.milestones"
            )
        if self.workers < 0:
            raise ConfigError(f"must be >= 0, got {self.workers}", key=f"{key}.workers")
        check_seed(self.seed, f"{key}.seed", most=MAX_TRAIN_SEED)


DIR_TYPES = ("auto", "weights", "states")


def resolve_dir_type(dir_type: str, kind: str) -> str:
    """'auto': the full state ('states') for a line or plane between networks, so that its
    points carry interpolated BN statistics and its ends are the networks themselves (as in
    the paper's 1D interpolation); the parameters ('weights') for random and given directions,
    which move a trained network away from its own statistics."""
    if dir_type != "auto":
        return dir_type
    return "states" if kind in ("line", "plane") else "weights"


@dataclass
class DirectionConfig:
    """How the plotting directions are made and normalized."""

    kind: str = "random"
    norm: str = "filter"
    ignore: str = "biasbn"
    dir_type: str = "auto"  # see effective_dir_type
    seed: int = 0
    orthogonalize: bool = False
    checkpoints: list[str] = field(default_factory=list)

    @property
    def effective_dir_type(self) -> str:
        """The dir_type in effect: 'auto' resolved for this kind (resolve_dir_type). Kept
        unresolved in the config itself, since a run may change the kind it inherits."""
        return resolve_dir_type(self.dir_type, self.kind)

    def validate(self, key: str) -> None:
        _choice(self.kind, ("random", "line", "plane"), f"{key}.kind")
        _choice(self.norm, NORMS, f"{key}.norm")
        _choice(self.ignore, ("biasbn", "none"), f"{key}.ignore")
        _choice(self.dir_type, DIR_TYPES, f"{key}.dir_type")
        # Draw k of surface.repeats takes seed + k: still far below torch's 2**64.
        check_seed(self.seed, f"{key}.seed")
        need = {"random": 0, "line": 2, "plane": 3}[self.kind]
        if len(self.checkpoints) != need:
            raise ConfigError(
                f"kind {self.kind!r} needs {need} checkpoint paths, got {len(self.checkpoints)}",
                key=f"{key}.checkpoints",
            )


@dataclass
class EngineConfig:
    """Speed options of the evaluation engine; 'auto' picks what is fastest and exact."""

    channels_last: Any = "auto"  # auto (NHWC, but NCHW in exact float32 on a GPU) | on | off
    fold_bn: Any = "auto"
    compile: Any = "auto"  # auto: long runs (engine.auto_compile), not exact float32 on a GPU
    fuse: Any = "auto"  # conv + residual add + ReLU in one oneDNN call (CPU, folded, channels-last)
    points_per_call: int = 1
    in_memory: Any = "auto"
    workers: int = 2

    def validate(self, key: str) -> None:
        for name in ("channels_last", "fold_bn", "compile", "fuse", "in_memory"):
            v = getattr(self, name)
            if isinstance(v, bool):
                v = "on" if v else "off"
                setattr(self, name, v)
            _choice(v, ("auto", "on", "off"), f"{key}.{name}")
        if self.points_per_call < 1:
            raise ConfigError(
                f"must be a positive integer, got {self.points_per_call}",
                key=f"{key}.points_per_call",
            )
        if self.workers < 0:
            raise ConfigError(f"must be >= 0, got {self.workers}", key=f"{key}.workers")


@dataclass
class SurfaceConfig:
    """The grid, the data it is evaluated on, and how."""

    x: list[float] = field(default_factory=lambda: [-1.0, 1.0, 51])
    y: list[float] | None = field(default_factory=lambda: [-1.0, 1.0, 51])
    splits: list[str] = field(default_factory=lambda: ["train"])
    loss: str = "crossentropy"
    samples: int | None = None
    batch_size: Any = "auto"  # examples per forward call; auto: 1,000 on a CPU, 4,000 on a GPU
    bn: str = "eval"
    bn_samples: int = 1000
    precision: str = "float32"
    repeats: int = 1
    flush_seconds: float = 5.0
    directions: DirectionConfig = field(default_factory=DirectionConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def validate(self, key: str) -> None:
        self.engine.validate(f"{key}.engine")
        for axis in ("x", "y"):
            spec = getattr(self, axis)
            if spec is None:
                if axis == "x":
                    raise ConfigError("is required: [min, max, num]", key=f"{key}.x")
                continue
            if len(spec) != 3:
                raise ConfigError(
                    f"expected 3 numbers [min, max, num], got {spec}", key=f"{key}.{axis}"
                )
            if not all(math.isfinite(v) for v in spec):
                raise ConfigError(f"expected finite numbers, got {spec}", key=f"{key}.{axis}")
            lo, hi, num = spec
            if int(num) != num or num < 1:
                raise ConfigError(
                    f"num (the third number) must be a positive integer, got {num}",
                    key=f"{key}.{axis}",
                )
            _at_most_axis_points(num, f"{key}.{axis}")
            if lo > hi or (lo == hi and num > 1):
                raise ConfigError(f"min {lo} must be below max {hi}", key=f"{key}.{axis}")
        for s in self.splits:
            _choice(s, ("train", "test"), f"{key}.splits")
        if not self.splits:
            raise ConfigError("needs at least one of train, test", key=f"{key}.splits")
        _choice(self.loss, LOSSES, f"{key}.loss")
        _choice(self.bn, ("eval", "recompute"), f"{key}.bn")
        _choice(self.precision, PRECISIONS, f"{key}.precision")
        if self.batch_size != "auto" and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ConfigError(
                f"must be a positive integer or auto, got {self.batch_size!r}",
                key=f"{key}.batch_size",
            )
        for name in ("samples", "bn_samples", "repeats"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"must be a positive integer, got {v}", key=f"{key}.{name}")
        _finite(self.flush_seconds, f"{key}.flush_seconds")
        if self.flush_seconds < 0:
            raise ConfigError(f"must be >= 0, got {self.flush_seconds}", key=f"{key}.flush_seconds")
        if self.directions.kind == "line" and self.y is not None:
            raise ConfigError(
                "a line between two checkpoints is 1D: set surface.y to null", key=f"{key}.y"
            )
        self.directions.validate(f"{key}.directions")


@dataclass
class PlotConfig:
    """Which figures to draw and how."""

    kinds: list[str] | None = None
    metric: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    levels: Any = None  # how many contour levels, or the levels themselves: [0.1, 0.6, ...]
    log: bool = False
    format: str = "png"
    dpi: int = 150

    def validate(self, key: str) -> None:
        for kind in self.kinds or []:
            _choice(kind, KINDS_2D + KINDS_1D, f"{key}.kinds")
        _check_figure_style(key, self.vmin, self.vmax, self.levels, log=self.log)
        if self.dpi < 1:
            raise ConfigError(f"must be a positive integer, got {self.dpi}", key=f"{key}.dpi")
        _choice(self.format, ("png", "pdf", "svg"), f"{key}.format")


@dataclass
class CompareConfig:
    """The side-by-side figure over the runs of a config (all of them, or those listed)."""

    runs: list[str] | None = None
    kinds: list[str] | None = None  # None: contour and surface3d for 2D runs, line for 1D ones
    metric: str | None = None
    titles: list[str] | None = None
    vmin: float | None = None
    vmax: float | None = None
    levels: Any = None  # as in plot
    log: bool = False

    def validate(self, key: str) -> None:
        """The section alone; its runs and titles are checked against the runs (_check_compare)."""
        if self.kinds is not None and not self.kinds:
            raise ConfigError(
                f"name at least one of {', '.join(KINDS_2D + KINDS_1D)}, or leave it out",
                key=f"{key}.kinds",
            )
        for kind in self.kinds or []:
            _choice(kind, KINDS_2D + KINDS_1D, f"{key}.kinds")
        _check_figure_style(key, self.vmin, self.vmax, self.levels, log=self.log)


@dataclass
class TrajectoryConfig:
    """The training path in the plane of its top two PCA directions (the paper's Fig. 9)."""

    grid: int = 21  # points per axis of the loss grid on the plane
    margin: float = 0.2  # share of the path's span added on each side of the grid
    ignore: str = "biasbn"  # leave biases and BN weights out of the PCA, as in the paper

    def validate(self, key: str) -> None:
        if self.grid < 2:
            raise ConfigError(f"must be at least 2, got {self.grid}", key=f"{key}.grid")
        _at_most_axis_points(self.grid, f"{key}.grid")
        _finite(self.margin, f"{key}.margin")
        if self.margin < 0:
            raise ConfigError(f"must be >= 0, got {self.margin}", key=f"{key}.margin")
        _choice(self.ignore, ("biasbn", "none"), f"{key}.ignore")


@dataclass
class HessianConfig:
    """The map of |lambda_min / lambda_max| over the surface's plane (the paper's Fig. 7)."""

    # Points per axis over the ranges of surface.x and surface.y, or "surface": the surface's
    # own grid (non-square ones too), so that the map also goes into surface.h5.
    grid: Any = 11
    # Lanczos steps per point at most; after 20 it stops once lambda_max and lambda_min both have
    # a residual within tol of the spectrum's scale (hessian.LANCZOS_ITERS, LANCZOS_TOL).
    iters: int = 100
    tol: float = 1e-3
    samples: int | None = None  # examples the Hessian is taken over; None: surface.samples
    probes: int = 20  # Hutchinson probes for the trace at the trained weights
    seed: int | None = None  # Lanczos and Hutchinson seed; None: surface.directions.seed

    def validate(self, key: str) -> None:
        if self.grid != "surface" and (
            isinstance(self.grid, bool) or not isinstance(self.grid, int)
        ):
            hint = did_you_mean(self.grid, ["surface"]) if isinstance(self.grid, str) else ""
            raise ConfigError(
                f"must be a number of points per axis or surface, got {self.grid!r}{hint}",
                key=f"{key}.grid",
            )
        for name, least in (("grid", 1), ("iters", 1), ("samples", 1), ("probes", 2)):
            v = getattr(self, name)
            if v is not None and v != "surface" and v < least:
                raise ConfigError(f"must be at least {least}, got {v}", key=f"{key}.{name}")
        if not 0.0 <= self.tol < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.tol}", key=f"{key}.tol")
        if self.grid != "surface":
            _at_most_axis_points(self.grid, f"{key}.grid")
        if self.seed is not None:
            check_seed(self.seed, f"{key}.seed")


STAGES = ("surface", "trajectory", "hessian")


@dataclass
class Config:
    """One experiment: a model on a data set, trained, then its landscape computed and drawn.

    A figure config may list several `runs`, each a partial config merged over this one.
    """

    name: str = "experiment"
    out: str = "outputs"
    device: str = "auto"
    checkpoint: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    surface: SurfaceConfig = field(default_factory=SurfaceConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    hessian: HessianConfig = field(default_factory=HessianConfig)
    stages: list[str] = field(default_factory=lambda: ["surface"])  # what reproduce computes
    runs: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: str | None = None  # set on each expanded run
    source: str | None = None  # the file the config came from
    active_profile: dict[str, Any] = field(default_factory=dict)  # re-applied over every run

    def validate(self, key: str) -> None:
        _choice(self.device, ("auto", "cpu", "cuda"), f"{key}device".lstrip("."))
        # An empty name would write into the output folder itself (out/checkpoints/...), where
        # every other nameless config would resume its files.
        if not self.name.strip():
            raise ConfigError("must not be empty: it names the run's folder OUT/NAME", key="name")
        # An empty checkpoint reads as "none" to the surface but as "given" to `train`, which
        # would then train nothing.
        if self.checkpoint is not None and not self.checkpoint.strip():
            raise ConfigError(
                f"must be a checkpoint file or run:NAME, got {self.checkpoint!r}; leave it out "
                "to use the run's own final.pt",
                key="checkpoint",
            )
        self.data.validate("data")
        self.train.validate("train")
        self.surface.validate("surface")
        self.plot.validate("plot")
        self.compare.validate("compare")
        self.trajectory.validate("trajectory")
        self.hessian.validate("hessian")
        if not self.stages:
            raise ConfigError(f"name at least one of {', '.join(STAGES)}", key="stages")
        for stage in self.stages:
            _choice(stage, STAGES, "stages")

    @property
    def run_dir(self) -> Path:
        """Where this run writes: out/NAME, or out/NAME/RUN for a run of a figure config."""
        base = Path(self.out) / self.name
        return base / self.run if self.run else base

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def final_checkpoint(self) -> Path:
        """The checkpoint the surface is computed at: a given one, or this run's final one."""
        return (
            self.resolve_checkpoint(self.checkpoint)
            if self.checkpoint
            else self.checkpoint_dir / "final.pt"
        )

    def resolve_checkpoint(self, ref: str) -> Path:
        """A checkpoint path, or `run:NAME` for the final checkpoint of another run."""
        run = run_reference(ref)
        if run is not None:
            return Path(self.out) / self.name / run / "checkpoints" / "final.pt"
        return Path(ref)

    @property
    def surface_path(self) -> Path:
        return self.run_dir / "surface.h5"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("runs", "profiles", "source", "active_profile"):
            d.pop(k)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
) -> Config:
    """Read a YAML config, apply a profile and `key.path=value` overrides, and validate it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("no such config file", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        message = f"cannot read the file ({type(e).__name__}: {e})"
        raise ConfigError(message, file=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"invalid YAML{where}: {getattr(e, 'problem', e)}", file=str(path)
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of keys at the top level", file=str(path))
    return config_from_dict(raw, overrides=overrides, profile=profile, file=str(path))


# Config fields the program sets, not the user: the run's name within a figure config, the file
# it came from, the profile re-applied over every run. Never suggested for a typo; `--set` and a
# config file may not set `source` and `active_profile`, and `--set` not `run` (use --run).
_INTERNAL = ("run", "source", "active_profile")


def _refuse_internal(key: str, file: str | None, also_run: bool, top: str | None = None) -> None:
    """Refuse `key` (named so in the error) when its first part, or `top`, is internal."""
    top = top if top is not None else key.split(".", 1)[0]
    if top in _INTERNAL[0 if also_run else 1 :]:
        public = [f.name for f in dataclasses.fields(Config) if f.name not in _INTERNAL]
        hint = did_you_mean(top, public, quote=True)
        raise ConfigError(f"unknown key{hint}", file=file, key=key)


def _profile(profiles: Any, name: str, file: str | None) -> dict[str, Any]:
    """The named profile, its keys and types checked where they are written
    (profiles.NAME.train.epochs), not where they land once merged (train.epochs)."""
    if not isinstance(profiles, dict):
        raise ConfigError(
            f"expected a mapping of profile names, got {profiles!r}", file=file, key="profiles"
        )
    if name not in profiles:
        hint = did_you_mean(name, map(str, profiles))
        have = ", ".join(map(str, profiles)) or "none"
        raise ConfigError(
            f"no profile {name!r}{hint}; this file has: {have}", file=file, key="profiles"
        )
    chosen = profiles[name]
    where = f"profiles.{name}"
    try:
        if not isinstance(chosen, dict):
            raise ConfigError(f"expected a mapping of settings, got {chosen!r}", key=where)
        for key in chosen:
            _refuse_internal(f"{where}.{key}", None, also_run=False, top=str(key))
        _build(Config, chosen, where)
    except ConfigError as e:
        raise _relocate(e, file) from None
    return chosen


def config_from_dict(
    raw: dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
    file: str | None = None,
) -> Config:
    """Build and validate a Config from a plain dict (as read from YAML)."""
    raw = copy.deepcopy(raw)
    for key in raw:
        _refuse_internal(str(key), file, also_run=False)
    raw.setdefault("name", Path(file).stem if file else "experiment")
    if profile is not None:
        chosen = _profile(raw.get("profiles") or {}, profile, file)
        raw = shrink(raw, chosen)
        raw["active_profile"] = {k: v for k, v in chosen.items() if k != "runs"}
    # Overrides from the command line win over everything, each run's own settings included.
    over: dict[str, Any] = {}
    for item in overrides:
        raw = apply_override(raw, item, file=file)
        over = apply_override(over, item, file=file)
    over = {k: v for k, v in over.items() if k not in ("runs", "profiles")}
    if over:
        raw["active_profile"] = deep_merge(raw.get("active_profile") or {}, over)
    try:
        cfg = _build(Config, raw, "")
        cfg.source = file
        cfg.validate("")
        seen: set[str] = set()
        for i, run in enumerate(cfg.runs):
            if not isinstance(run, dict) or "name" not in run:
                raise ConfigError("each run needs a 'name'", key=f"runs[{i}]")
            if run["name"] is None or not str(run["name"]).strip():
                raise ConfigError(
                    f"must name the run's folder OUT/NAME/RUN, got {run['name']!r}",
                    key=f"runs[{i}].name",
                )
            if str(run["name"]) in seen:
                raise ConfigError(
                    f"run name {run['name']!r} is used twice; each run needs its own folder",
                    key=f"runs[{i}].name",
                )
            seen.add(str(run["name"]))
        runs = expand_runs(cfg)  # [cfg] itself when the config has no runs
        for i, run in enumerate(runs):
            try:
                if cfg.runs:
                    run.validate("")
                _check_plot_kinds(run)
                _check_run_references(run, runs if cfg.runs else [])
            except ConfigError as e:
                raise _relocate(e, None, run=i if cfg.runs else None) from None
        _check_compare(cfg.compare, runs)
    except ConfigError as e:
        if e.file is None and file is not None:
            raise _relocate(e, file) from None
        raise
    return cfg


def _ndim(run: Config) -> int:
    return 1 if run.surface.y is None else 2


def _metrics(run: Config) -> list[str]:
    """The metrics a run's surface file holds."""
    return [f"{split}_{m}" for split in run.surface.splits for m in ("loss", "acc")]


def _check_metric(metric: str | None, have: list[str], key: str) -> None:
    if metric is not None and metric not in have:
        hint = did_you_mean(metric, have)
        raise ConfigError(
            f"no metric {metric!r}{hint}; surface.splits give: {', '.join(have)}", key=key
        )


def _check_plot_kinds(run: Config) -> None:
    """plot.kinds fit the run's surface and plot.metric is one of its metrics: plot_file would
    refuse them after the surface is made."""
    if "surface" not in run.stages:
        return
    if run.plot.kinds:
        why = "surface.y is null" if _ndim(run) == 1 else "surface.y is set"
        _check_kinds_fit(run.plot.kinds, _ndim(run), why, "plot.kinds")
    _check_metric(run.plot.metric, _metrics(run), "plot.metric")


def run_reference(ref: str) -> str | None:
    """The NAME of a `run:NAME` checkpoint reference; None for a checkpoint path."""
    return ref.removeprefix("run:") if ref.startswith("run:") else None


def _check_run_references(run: Config, runs: list[Config]) -> None:
    """Each `run:NAME` of a run's checkpoint or line/plane ends names a run of the config that
    trains, so that its final.pt will exist; else `train` would skip the run and the surface
    fail only later, on a missing file."""
    trains = [str(r.run) for r in runs if r.checkpoint is None]
    refs = [("checkpoint", run.checkpoint or "")]
    refs += [("surface.directions.checkpoints", c) for c in run.surface.directions.checkpoints]
    for key, ref in refs:
        name = run_reference(ref)
        if name is None:
            continue
        if not runs:
            raise ConfigError(
                f"{ref!r} names a run of this config's runs:, and it lists none; give a "
                "checkpoint file instead",
                key=key,
            )
        if name not in trains:
            why = (
                f"run {name!r} trains nothing (it has a checkpoint of its own)"
                if any(r.run == name for r in runs)
                else f"no run {name!r}{did_you_mean(name, trains)}"
            )
            raise ConfigError(
                f"{ref!r}: {why}; runs that train are: {', '.join(trains) or 'none'}",
                key=key,
            )


def _check_compare(c: CompareConfig, runs: list[Config]) -> None:
    """compare.runs name runs that make surfaces of one dimension, and titles match them.

    reproduce would otherwise drop unknown names and wrong-length titles without a word, or fail
    on the figure only after every run has been trained.
    """
    names = [r.run or r.name for r in runs]
    for n in c.runs or []:
        if n not in names:
            hint = did_you_mean(n, names)
            raise ConfigError(
                f"no run {n!r}{hint}; runs are: {', '.join(names)}", key="compare.runs"
            )
        if c.runs and c.runs.count(n) > 1:
            raise ConfigError(f"run {n!r} is listed twice", key="compare.runs")
        run = runs[names.index(n)]
        if "surface" not in run.stages:
            raise ConfigError(
                f"run {n!r} computes no surface (its stages are: {', '.join(run.stages)})",
                key="compare.runs",
            )
    chosen = c.runs or [n for n, r in zip(names, runs, strict=True) if "surface" in r.stages]
    if c.titles and chosen and len(c.titles) != len(chosen):
        want = f"{len(chosen)} title{'s' if len(chosen) > 1 else ''}"
        raise ConfigError(
            f"expected {want}, one per compared run ({', '.join(chosen)}), got {len(c.titles)}",
            key="compare.titles",
        )
    if len(chosen) < 2:
        return  # nothing is drawn side by side
    shared = [m for m in _metrics(runs[names.index(chosen[0])])
              if all(m in _metrics(runs[names.index(n)]) for n in chosen)]  # fmt: skip
    _check_metric(c.metric, shared, "compare.metric")
    dims = {n: _ndim(runs[names.index(n)]) for n in chosen}
    if len(set(dims.values())) > 1:
        if not c.runs:
            # A figure config may mix 1D and 2D runs for training alone; only reproduce's
            # side-by-side figure needs them listed, and it says so.
            return
        which = ", ".join(f"{n} is {d}D" for n, d in dims.items())
        raise ConfigError(
            f"cannot compare 1D with 2D surfaces ({which}); list runs of one dimension",
            key="compare.runs",
        )
    ndim = next(iter(dims.values()))
    if c.kinds is not None:
        _check_kinds_fit(c.kinds, ndim, f"the compared runs are {ndim}D", "compare.kinds")


def _relocate(e: ConfigError, file: str | None, run: int | None = None) -> ConfigError:
    """The same error located in `file`, and under runs[run] when a run's settings caused it."""
    where = ": ".join(p for p in (e.file, e.key) if p)
    message = str(e)[len(where) + 2 :] if where else str(e)
    key = e.key
    if run is not None:
        key = f"runs[{run}].{key}" if key else f"runs[{run}]"
    return ConfigError(message, file=e.file or file, key=key)


def expand_runs(cfg: Config) -> list[Config]:
    """The runs of a figure config, each a full Config; a config without runs is its own run."""
    if not cfg.runs:
        return [cfg]
    base = cfg.to_dict()
    out = []
    for i, run in enumerate(cfg.runs):
        merged = deep_merge(base, {k: v for k, v in run.items() if k != "name"})
        # A profile (e.g. quick) wins over a run's own settings, so it shrinks every run.
        merged = shrink(merged, cfg.active_profile)
        merged["run"] = str(run["name"])
        try:
            r = _build(Config, merged, "")
        except ConfigError as e:
            raise _relocate(e, cfg.source, run=i) from None
        r.source = cfg.source
        out.append(r)
    return out


def select_runs(cfg: Config, names: Sequence[str] = ()) -> list[Config]:
    """The expanded runs, restricted to `names` when given."""
    runs = expand_runs(cfg)
    if not names:
        return runs
    have = [r.run or r.name for r in runs]
    for n in names:
        if n not in have:
            hint = did_you_mean(n, have)
            raise ConfigError(f"no run {n!r}{hint}; runs are: {', '.join(have)}", file=cfg.source)
    return [r for r in runs if (r.run or r.name) in names]


def shrink(settings: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """A profile merged over one config's or run's settings; its surface.y shrinks 2D grids and
    leaves a 1D surface (surface.y: null) 1D, so one profile fits a config that has both."""
    surface = settings.get("surface")
    one_d = isinstance(surface, dict) and "y" in surface and surface["y"] is None
    if one_d and isinstance(profile.get("surface"), dict) and "y" in profile["surface"]:
        profile = {**profile, "surface": {k: v for k, v in profile["surface"].items() if k != "y"}}
    return deep_merge(settings, profile)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("args",):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(raw: dict[str, Any], item: str, file: str | None = None) -> dict[str, Any]:
    """Apply one `dotted.key=value` (value parsed as YAML) to a raw config dict."""
    if "=" not in item:
        raise ConfigError(f"--set expects key.path=value, got {item!r}", file=file)
    key, _, text = item.partition("=")
    key = key.strip()
    if not all(p.strip() for p in key.split(".")):
        raise ConfigError(
            f"--set expects key.path=value with a name between the dots, got {item!r}", file=file
        )
    _refuse_internal(key, file, also_run=True)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"cannot parse value {text!r}", file=file, key=key) from None
    out = copy.deepcopy(raw)
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        if node.get(p) is None:  # absent, or `section: null` in the file
            node[p] = {}
        if not isinstance(node[p], dict):
            raise ConfigError(f"{p!r} is not a section", file=file, key=key)
        node = node[p]
    node[parts[-1]] = value
    return out


def _build(cls: type, data: Any, key: str) -> Any:
    """Instantiate dataclass `cls` from `data`, checking keys and types with dotted-path errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {data!r}", key=key or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        sub = f"{key}.{k}" if key else str(k)
        if k not in fields:
            hint = did_you_mean(str(k), [f for f in fields if f not in _INTERNAL], quote=True)
            raise ConfigError(f"unknown key{hint}", key=sub)
        kwargs[k] = _coerce(hints[k], v, sub)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, key)
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {value!r}", key=key)
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", key=key)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"expected an integer, got {value!r}", key=key)
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as a string; it is a number to anyone writing a config.
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", key=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", key=key)
        return value
    return value
