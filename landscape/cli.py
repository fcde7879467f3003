"""The `landscape` command line: a thin click layer over the library.

Heavy imports (torch, matplotlib, h5py) happen inside the commands so that `--help` is instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .errors import ConfigError, LandscapeError, SharedError


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into a one-line message and exit code 1; Ctrl-C into exit 130 and
    SIGTERM, handled like it, into 143."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _terminate_as_interrupt(), _one_line_warnings():
            return _run_cleanly(fn, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as `warning: MESSAGE` lines, from rank 0 only under torchrun (the other ranks
    meet the same ones)."""
    import warnings

    def show(message: Warning | str, *_: object, **__: object) -> None:
        click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        if _rank() != 0:
            warnings.simplefilter("ignore")
        warnings.showwarning = show
        yield


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's cancel or preemption, torchrun stopping its workers), raised like
    Ctrl-C so that unfinished work is flushed and recorded the same way."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated()

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _run_cleanly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except LandscapeError as e:
        if _rank() != 0:
            # Rank 0 reports what every rank meets. The ranks of one node share its files and
            # fail alike, but another node's (data missing there, say) rank 0 cannot see: the
            # first rank of each other node reports its own error, unless it is the config's or
            # rank 0's refusal, which every rank shares.
            first_of_node = os.environ.get("LOCAL_RANK", "0") == "0"
            if first_of_node and not isinstance(e, (ConfigError, SharedError)):
                click.echo(f"Error (rank {_rank()}): {e}", err=True)
            sys.exit(1)
        raise click.ClickException(str(e)) from None
    except OSError as e:  # a folder that cannot be made, a file that cannot be written
        raise click.ClickException(_os_error_message(e)) from None
    except KeyboardInterrupt as e:
        if _rank() == 0:
            what = "terminated" if isinstance(e, Terminated) else "interrupted"
            click.echo(
                f"{what}: finished work is saved; run the same command again to resume",
                err=True,
            )
        sys.exit(143 if isinstance(e, Terminated) else 130)


def _os_error_message(e: OSError) -> str:
    """'PATH: reason', and where a file stands in the way of a folder (--out results.csv/figs),
    which file: the system says only 'File exists' or 'Not a directory'."""
    if e.filename and isinstance(e, (FileExistsError, NotADirectoryError)):
        path = Path(os.fsdecode(e.filename))
        blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocker == path:
            return f"{path} is a file, not a folder: move it or write elsewhere"
        if blocker is not None:
            return (
                f"cannot make {path}: {blocker} is a file, not a folder: move it or write elsewhere"
            )
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


@dataclasses.dataclass
class _Job:
    """What a config-driven command works on: the config, its selected runs and --quiet."""

    cfg: Any  # landscape.config.Config
    names: tuple[str, ...]  # the --run names (empty: every run)
    runs: list[Any]  # the selected runs, each a full Config
    quiet: bool

    @property
    def progress(self) -> bool:
        return _show_progress(self.quiet)

    def bars(self, desc: str) -> Callable[[int, int], Any] | None:
        return _bar_factory(self.quiet, desc)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _one_process(command: str) -> None:
    """Refuse a command that does not share its work among ranks when torchrun started it (each
    rank would do all of it and race on the same files); every rank refuses alike."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SharedError(
            f"{command} runs in one process: start it without torchrun (torchrun shares the "
            "points of `landscape surface`)"
        )


def _config_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """CONFIG plus the options every config-driven command shares; the command is called with
    the loaded _Job first, then its own options. Errors end cleanly (_fail_cleanly)."""

    @functools.wraps(fn)
    def load_then_run(
        config: str,
        overrides: tuple[str, ...],
        profile: str | None,
        runs: tuple[str, ...],
        out: str | None,
        device: str | None,
        quiet: bool,
        **options: Any,
    ) -> Any:
        import json

        from .config import load_config, select_runs

        # --out and --device are overrides that win over each run's own settings; JSON quoting
        # keeps a folder named like a number or a boolean (--out 2024) a string.
        flags = {"out": out, "device": device}
        given = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
        cfg = load_config(config, [*overrides, *given], profile)
        selected = select_runs(cfg, runs)
        for run in selected:
            _check_device(run.device)
        try:
            return fn(_Job(cfg, runs, selected, quiet), **options)
        except ConfigError as e:
            if e.file is None and cfg.source is not None:
                raise e.in_file(cfg.source) from None
            raise

    command = _fail_cleanly(load_then_run)
    shared = [
        click.argument("config", type=click.Path(dir_okay=False)),
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a config value, e.g. --set train.epochs=10 (repeatable).",
        ),
        click.option(
            "--profile", default=None, help="Apply a named profile of the config, e.g. quick."
        ),
        click.option(
            "--run", "runs", multiple=True, help="Only this run of a figure config (repeatable)."
        ),
        click.option(
            "--out",
            default=None,
            type=click.Path(file_okay=False),
            help="Base output folder (default: the config's `out`, normally outputs/).",
        ),
        click.option(
            "--device",
            default=None,
            type=click.Choice(["auto", "cpu", "cuda"]),
            help="Device (default: the config's, normally auto = CUDA when present).",
        ),
        click.option(
            "--quiet", "-q", is_flag=True, help="No progress bars, nor a line per training epoch."
        ),
    ]
    return _with_options(command, shared)


def _with_options(fn: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    """fn decorated with click options, listed in the order --help shows them."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LandscapeError(
                "device 'cuda' requested but no CUDA GPU is available: use --device cpu"
            )


def _int_list(text: str, option: str) -> tuple[int, ...]:
    """'1,4,8' as positive integers, else a usage error naming the option."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise click.BadParameter(
            f"expected positive integers separated by commas, got {text!r}", param_hint=option
        )
    return values


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line (not None), to override a config section with."""
    return {k: v for k, v in options.items() if v is not None}


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def _bar_factory(quiet: bool, desc: str) -> Callable[[int, int], Any] | None:
    if not _show_progress(quiet):
        return None
    from tqdm import tqdm

    def make(total: int, initial: int) -> Any:
        return tqdm(total=total, initial=initial, desc=desc, unit="pt", dynamic_ncols=True)

    return make


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landscape")
def main() -> None:
    """Visualize neural-network loss landscapes (Li et al., NeurIPS 2018).

    \b
    Typical use:
      landscape reproduce configs/quickstart.yaml   # train, surface, plots, comparison
      landscape train CONFIG; landscape surface CONFIG; landscape plot FILE.h5
    """


@main.command()
def models() -> None:
    """List the registered networks with their family and parameter count (10 classes, RGB).

    Example: landscape models
    """
    import torch

    from .models import count_parameters, create_model, list_models, model_family

    click.echo(f"{'name':<20} {'family':<10} {'parameters':>12}")
    for name in list_models():
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            n = count_parameters(create_model(name, num_classes=10, in_channels=3))
        click.echo(f"{name:<20} {model_family(name):<10} {n:>12,}")


@main.command()
@_config_command
@click.option(
    "--overwrite", is_flag=True, help="Discard earlier checkpoints of this run and start afresh."
)
def train(job: _Job, overwrite: bool) -> None:
    """Train the network(s) of CONFIG; an interrupted run resumes when run again.

    Example: landscape train configs/quickstart.yaml --set train.epochs=5
    """
    from .train import train as train_run

    _one_process("train")
    for run in job.runs:
        if run.checkpoint is not None:  # a run drawn around another run's (or a given) network
            _echo(f"[{run.run or run.name}] uses checkpoint {run.checkpoint}: nothing to train")
            continue
        path = train_run(
            run, progress=job.progress, log=_echo, overwrite=overwrite, epoch_lines=not job.quiet
        )
        click.echo(str(path))


@main.command()
@_config_command
@click.option("--overwrite", is_flag=True, help="Start the surface afresh instead of resuming.")
@click.option(
    "--launcher",
    type=click.Choice(["none", "torchrun"]),
    default="none",
    help="torchrun: join the process group torchrun set up and share the grid.",
)
def surface(job: _Job, overwrite: bool, launcher: str) -> None:
    """Compute the loss surface of CONFIG's trained checkpoint into an HDF5 file (resumable).

    Example: landscape surface configs/quickstart.yaml --set 'surface.x=[-1,1,11]'
    """
    from .surface import compute_surface

    with _process_group(launcher, job.cfg.device) as dist_info:
        for run in job.runs:
            bar = job.bars(f"surface {run.run or run.name}")
            path = compute_surface(run, overwrite=overwrite, progress=bar, dist_info=dist_info)
            if dist_info.rank == 0:
                click.echo(str(path))


class _process_group:
    """Join torch.distributed when launched by torchrun (gloo on CPU, nccl on GPU)."""

    def __init__(self, launcher: str, device: str):
        self.launcher, self.device = launcher, device

    def __enter__(self) -> Any:
        from .surface import Distributed

        if self.launcher != "torchrun" and "LOCAL_RANK" not in os.environ:
            return Distributed()
        import torch
        import torch.distributed as dist

        if "RANK" not in os.environ:
            raise LandscapeError(
                "--launcher torchrun: no RANK in the environment; start with "
                "torchrun --nproc-per-node N -m landscape surface CONFIG"
            )
        use_cuda = self.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_cuda else "gloo")
        return Distributed(dist.get_rank(), dist.get_world_size())

    def __exit__(self, *exc: object) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _names(
    _ctx: click.Context, _param: click.Parameter, given: tuple[str, ...]
) -> list[str] | None:
    """--titles "a,b" as ["a", "b"]; repeated (--titles "a, b" --titles c) one title each."""
    if len(given) == 1:
        return [t.strip() for t in given[0].split(",")]
    return list(given) or None


def _kinds(_ctx: click.Context, _param: click.Parameter, given: tuple[str, ...]) -> list[str]:
    """--kinds contour --kinds heatmap, or --kinds contour,heatmap."""
    return [k.strip() for text in given for k in text.split(",") if k.strip()]


_TITLES = click.option(
    "--titles",
    multiple=True,
    callback=_names,
    help="Names for the files, comma-separated, or one per --titles (a title with a comma).",
)
_KIND_HELP = "Plot kinds: contour, contourf, heatmap, surface3d (2D), line (1D); repeatable."


def _figure_options(
    kinds_help: str, format_help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """FILES plus the figure options plot and compare share; the scale ones arrive as **style."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False)),
            click.option("--kinds", "kinds", multiple=True, callback=_kinds, help=kinds_help),
            click.option(
                "--metric", default=None, help="train_loss, test_loss, train_acc, test_acc, ..."
            ),
            click.option("--vmin", type=float, default=None, help="Lowest value of the scale."),
            click.option("--vmax", type=float, default=None, help="Highest value of the scale."),
            click.option(
                "--levels", type=click.IntRange(min=2), default=None, help="Contour levels."
            ),
            click.option("--log", is_flag=True, help="Log10 color/height scale."),
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["png", "pdf", "svg"]),
                default=None,
                help=format_help,
            ),
            click.option("--dpi", type=click.IntRange(min=1), default=150),
        ]
        return _with_options(fn, options)

    return decorate


@main.command()
@_figure_options(_KIND_HELP, "Figure format [png].")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the figures, named <file>_<metric>_<kind>[_log] (default: beside the file).",
)
@_fail_cleanly
def plot(files: tuple[str, ...], kinds: list[str], out_dir: str | None, **style: Any) -> None:
    """Draw figures of surface FILES (ours or the original code's HDF5 files).

    Example: landscape plot outputs/quickstart/resnet56/surface.h5 --kinds contour --kinds surface3d
    """
    from .plot import plot_file

    suffix = Path(out_dir).suffix.lower().lstrip(".") if out_dir else ""
    if suffix in ("png", "pdf", "svg") and not Path(out_dir or "").is_dir():
        raise click.UsageError(
            f"--out {out_dir}: plot writes a folder of figures (one per kind), not one file; "
            f"give a folder and --format {suffix}"
        )

    for f, stem in zip(files, _figure_stems(files, out_dir), strict=True):
        for p in plot_file(f, kinds=kinds or None, out_dir=out_dir, stem=stem, **style):
            click.echo(str(p))
    _note_unfinished(files)


def _note_unfinished(files: tuple[str, ...]) -> None:
    """Say which files are not finished: their figures show only the points computed so far,
    which nothing in a figure tells from the grid's ends."""
    from .storage import read_surface

    for f in files:
        done = read_surface(f).done
        if not done.all():
            _echo(
                f"note: {f}: {int(done.sum())} of {done.size} points are computed so far (still "
                "running, or interrupted: run its command again to finish); the figure shows those"
            )


def _figure_stems(files: tuple[str, ...], out_dir: str | None) -> list[str]:
    """Each file's figure name stem: its own, or, where two files would write into one folder
    under one name (outputs/quickstart/*/surface.h5 --out figs), its folder's name before it."""
    paths = [Path(f) for f in files]
    places = [(Path(out_dir) if out_dir else p.parent).resolve() / p.stem for p in paths]
    return [
        f"{p.parent.resolve().name}_{p.stem}" if places.count(place) > 1 else p.stem
        for p, place in zip(paths, places, strict=True)
    ]


@main.command()
@_figure_options(
    _KIND_HELP + " Default: contour and surface3d.",
    "Figure format [the --out file's suffix, else png].",
)
@_TITLES
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default="outputs/compare.png",
    show_default=True,
    help="Figure path; the kind is added before the suffix.",
)
@_fail_cleanly
def compare(
    files: tuple[str, ...],
    kinds: list[str],
    titles: list[str] | None,
    out_path: str,
    **style: Any,
) -> None:
    """Draw surfaces side by side on one color scale and shared contour levels.

    Example: landscape compare a.h5 b.h5 --titles "ResNet-56,ResNet-56 no skip"
    """
    from .pipeline import compare_figures

    for p in compare_figures(list(files), titles, kinds or None, out_path=out_path, **style):
        click.echo(str(p))
    _note_unfinished(files)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["vtp", "csv", "npz"]), required=True)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output file (default: FILE with the format's suffix, beside it).",
)
@click.option(
    "--metric",
    default=None,
    help="One metric, e.g. test_loss [vtp: train_loss, else test_loss; csv, npz: all].",
)
@click.option(
    "--log",
    "log_scale",
    is_flag=True,
    help="VTP: natural-log heights, ln(value + 0.1), as the paper's renders.",
)
@click.option("--zmax", type=float, default=None, help="VTP: clip heights above this value.")
@click.option(
    "--repeat",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="VTP: which direction draw of a file with surface.repeats > 1.",
)
@_fail_cleanly
def export(
    file: str,
    fmt: str,
    out_path: str | None,
    metric: str | None,
    log_scale: bool,
    zmax: float | None,
    repeat: int,
) -> None:
    """Export a surface as VTK PolyData (ParaView), CSV or NPZ.

    Example: landscape export surface.h5 --format vtp --log --zmax 10
    """
    from .export import export_surface

    suffix = Path(out_path).suffix.lower().lstrip(".") if out_path else ""
    if suffix in ("vtp", "csv", "npz") and suffix != fmt:
        raise click.UsageError(
            f"--out {out_path} ends in .{suffix} but --format is {fmt}: make them agree"
        )
    written = export_surface(
        file, fmt, out_path, metric=metric, log=log_scale, zmax=zmax, repeat=repeat, note=_echo
    )
    click.echo(str(written))


@main.command()
@_config_command
def reproduce(job: _Job) -> None:
    """Run a figure config end to end: train, surface, plots and the comparison figure.

    Finished stages are skipped and interrupted ones resume when run again.

    Example: landscape reproduce configs/paper/fig5_resnet_depth.yaml --profile quick
    """
    from .pipeline import reproduce as run_pipeline

    _one_process("reproduce")
    figures = run_pipeline(
        job.cfg,
        runs=job.names,
        progress=job.progress,
        log=_echo,
        bar_factory=job.bars,
        epoch_lines=not job.quiet,
    )
    click.echo("figures:")
    for p in figures:
        click.echo(f"  {p}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--metric", default=None, help="Metric to analyse (default: train_loss, else test_loss)."
)
@_TITLES
@click.option(
    "--fit-radius",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Curvature: fit a parabola to the points within this distance of the centre [0.2].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_fail_cleanly
def stats(
    files: tuple[str, ...],
    metric: str | None,
    titles: list[str] | None,
    fit_radius: float | None,
    as_json: bool,
) -> None:
    """Numbers for surfaces: curvature, sharpness, basin width, non-convexity, roughness.

    With several files, a side-by-side table says where the intervals overlap.
    Definitions: docs/metrics.md.

    Example: landscape stats outputs/quickstart/*/surface.h5
    """
    import json

    from .metrics import stats_to_jsonable
    from .stats import StatsOptions, compare_stats, file_stats, format_stats

    options = StatsOptions() if fit_radius is None else StatsOptions(fit_radius=fit_radius)
    if len(files) == 1:
        if titles is not None and len(titles) != 1:
            raise LandscapeError(f"got {len(titles)} titles for 1 file; give one each")
        result = file_stats(files[0], metric=metric, options=options)
        if titles:
            result["title"] = titles[0]
        click.echo(
            json.dumps(stats_to_jsonable(result), indent=2) if as_json else format_stats(result)
        )
        return
    result, table = compare_stats(list(files), titles=titles, metric=metric, options=options)
    click.echo(json.dumps(stats_to_jsonable(result), indent=2) if as_json else table)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="HTML file (default: report.html beside the first file).",
)
@_TITLES
@click.option("--metric", default=None)
@_fail_cleanly
def report(
    files: tuple[str, ...], out_path: str | None, titles: list[str] | None, metric: str | None
) -> None:
    """Write one self-contained HTML page: figures, metrics with intervals, config, provenance.

    Example: landscape report outputs/quickstart/*/surface.h5 --out outputs/quickstart/report.html
    """
    from .report import write_report

    target = Path(out_path) if out_path else Path(files[0]).parent / "report.html"
    click.echo(str(write_report(list(files), target, titles=titles, metric=metric)))


@main.command()
@click.option(
    "--models",
    "model_names",
    default="resnet20,resnet56",
    show_default=True,
    help="Comma-separated model names.",
)
@click.option("--image-size", type=click.IntRange(min=8), default=32, show_default=True)
@click.option(
    "--samples", type=click.IntRange(min=1), default=2000, show_default=True, help="Images."
)
@click.option("--grid", default="3x3", show_default=True, help="Grid points, e.g. 3x3.")
@click.option(
    "--precisions",
    default="float32,bf16",
    show_default=True,
    help="Comma-separated: float32, tf32 (GPU), bf16, fp16 (GPU).",
)
@click.option(
    "--points-per-call",
    default="1",
    show_default=True,
    help="Comma-separated grid points per batched (vmap) call, measured at float32.",
)
@click.option("--compile", "compile_too", is_flag=True, help="Also measure torch.compile.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="landscape's evaluation batch size [CPU: 1000; GPU: the raw forward's best].",
)
@click.option(
    "--channels-last",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="landscape's memory format (engine.channels_last).",
)
@click.option(
    "--raw-batch-sizes",
    default=None,
    help="Comma-separated candidates for the raw forward [CPU: 128,256,500,1000; "
    "GPU: 500,1000,2000,4000].",
)
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
@click.option("--no-baseline", is_flag=True, help="Skip the research-code-style baseline.")
@click.option(
    "--baseline-workers",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="DataLoader workers of the baseline (2: the paper's code's default --threads).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="A trained checkpoint, for realistic precision errors.",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append the JSON result lines to this file.",
)
@_fail_cleanly
def bench(
    model_names: str,
    image_size: int,
    samples: int,
    grid: str,
    precisions: str,
    points_per_call: str,
    compile_too: bool,
    batch_size: int | None,
    channels_last: str,
    raw_batch_sizes: str | None,
    device: str,
    quiet: bool,
    no_baseline: bool,
    baseline_workers: int,
    checkpoint: str | None,
    json_out: str | None,
) -> None:
    """Measure surface throughput against the model's raw forward speed and a naive baseline.

    Prints a table and one JSON line per model and setting, for tracking.

    Example: landscape bench --models resnet20 --samples 1000
    """
    import json

    from .bench import format_results, run_benchmark

    try:
        nx, ny = (int(v) for v in grid.lower().split("x"))
    except ValueError:
        raise click.BadParameter(
            f"expected NxM like 3x3, got {grid!r}", param_hint="--grid"
        ) from None
    _check_device(device)
    if json_out:  # fail now, not after the benchmark has run
        Path(json_out).open("a").close()
    results = run_benchmark(
        models=tuple(m.strip() for m in model_names.split(",")),
        image_size=image_size,
        samples=samples,
        grid=(nx, ny),
        precisions=tuple(p.strip() for p in precisions.split(",")),
        points_per_call=_int_list(points_per_call, "--points-per-call"),
        compile_too=compile_too,
        batch_size=batch_size,
        channels_last=channels_last,
        batch_sizes=_int_list(raw_batch_sizes, "--raw-batch-sizes") if raw_batch_sizes else None,
        device=device,
        baseline=not no_baseline,
        progress=None if quiet else _echo,
        baseline_workers=baseline_workers,
        trained_checkpoint=checkpoint,
    )
    click.echo(format_results(results))
    lines = [json.dumps(r, default=str) for r in results]
    for line in lines:
        click.echo(line)
    if json_out:
        with open(json_out, "a") as f:
            f.write("\n".join(lines) + "\n")


@main.command()
@_config_command
@click.option(
    "--grid",
    type=click.IntRange(min=2),
    default=None,
    help="Points per axis of the loss grid on the PCA plane [config's trajectory.grid, 21].",
)
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=None,
    help="Share of the path's span added around it [trajectory.margin, 0.2].",
)
@click.option(
    "--ignore",
    type=click.Choice(["biasbn", "none"]),
    default=None,
    help="biasbn: biases and BN weights stay out of the PCA, as in the paper "
    "[trajectory.ignore, biasbn].",
)
@click.option(
    "--overwrite", is_flag=True, help="Start the trajectory file afresh instead of resuming."
)
def trajectory(
    job: _Job,
    grid: int | None,
    margin: float | None,
    ignore: str | None,
    overwrite: bool,
) -> None:
    """Draw the training path in the plane of its top two PCA directions, over the loss there.

    Reads the run's checkpoints/epoch_*.pt and final.pt; writes run_dir/trajectory.h5 (the
    plane's loss surface with the path under /extra, resumable) and figures/trajectory.png.

    Example: landscape trajectory configs/quickstart.yaml --run resnet56 --grid 21
    """
    from .pipeline import trajectory_stage

    _one_process("trajectory")
    given = _given(grid=grid, margin=margin, ignore=ignore)
    for run in job.runs:
        path, figure = trajectory_stage(
            run,
            _echo,
            job.bars,
            options=dataclasses.replace(run.trajectory, **given),
            overwrite=overwrite,
        )
        click.echo(str(path))
        click.echo(str(figure))


def _points_or_surface(
    _ctx: click.Context, _param: click.Parameter, text: str | None
) -> int | str | None:
    """hessian --grid: a number of points per axis, or 'surface'."""
    if text is None or text == "surface":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise click.BadParameter(f"expected a positive integer or surface, got {text!r}")


@main.command()
@_config_command
@click.option(
    "--grid",
    callback=_points_or_surface,
    default=None,
    help="Points per axis over surface.x/surface.y, or 'surface': the surface's own grid, "
    "which also puts the map into surface.h5 for `landscape stats` [hessian.grid, 11].",
)
@click.option(
    "--iters",
    type=click.IntRange(min=1),
    default=None,
    help="Most Lanczos steps per point [hessian.iters, 100].",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    default=None,
    help="After 20 steps, stop Lanczos at a point once lambda_max and lambda_min both have a "
    "residual within this fraction of the spectrum's scale [hessian.tol, 0.001].",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="Examples the Hessian is taken over [hessian.samples, else surface.samples].",
)
@click.option(
    "--probes",
    type=click.IntRange(min=2),
    default=None,
    help="Hutchinson probes for the trace at the trained weights [hessian.probes, 20].",
)
@click.option(
    "--overwrite", is_flag=True, help="Start the Hessian file afresh instead of resuming."
)
def hessian(
    job: _Job,
    grid: int | str | None,
    iters: int | None,
    tol: float | None,
    samples: int | None,
    probes: int | None,
    overwrite: bool,
) -> None:
    """Hessian eigenvalues at the trained weights and the map of |lambda_min / lambda_max|.

    The map follows the directions of the run's surface.h5 when it exists, and goes into
    run_dir/hessian.h5 (resumable) and figures/hessian_ratio.png; with --grid equal to the
    surface's grid it is also stored in surface.h5 as /extra/hessian_ratio.

    Example: landscape hessian configs/quickstart.yaml --run resnet56 --grid 11 --iters 50
    """
    from .pipeline import hessian_stage

    _one_process("hessian")
    given = _given(grid=grid, iters=iters, tol=tol, samples=samples, probes=probes)
    for run in job.runs:
        path, figure = hessian_stage(
            run,
            _echo,
            job.bars,
            options=dataclasses.replace(run.hessian, **given),
            overwrite=overwrite,
        )
        click.echo(str(path))
        if figure is not None:
            click.echo(str(figure))


if __name__ == "__main__":
    main()
