"""End-to-end runs of a figure config: train, surface, plots, and the side-by-side comparison."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import Config, HessianConfig, TrajectoryConfig, select_runs
from .errors import EmptyRangeError, LandscapeError


def compare_figures(
    files: Sequence[str | Path],
    titles: Sequence[str] | None,
    kinds: Sequence[str] | None,
    metric: str | None,
    out_path: str | Path,
    fmt: str | None = None,
    dpi: int = 150,
    **style: Any,
) -> list[Path]:
    """One side-by-side figure per kind, panels on a shared scale; returns the written paths."""
    from .plot import plot_compare, save_figure
    from .storage import distinct_titles, read_surface

    surfs = [read_surface(f) for f in files]
    if titles is not None and len(titles) != len(surfs):
        raise LandscapeError(f"got {len(titles)} titles for {len(surfs)} files; give one each")
    names = list(titles) if titles else distinct_titles([s.title for s in surfs])
    if kinds is None:
        kinds = ["contour", "surface3d"] if surfs[0].ndim == 2 else ["line"]
    out_path = Path(out_path)
    if fmt and out_path.suffix and out_path.suffix.lower() != f".{fmt.lower()}":
        raise LandscapeError(f"{out_path} does not match format {fmt!r}: change one of them")
    suffix = f".{fmt}" if fmt else (out_path.suffix or ".png")
    written = []
    for kind in kinds:
        fig = plot_compare(surfs, kind=kind, metric=metric, titles=names, **style)
        target = out_path.with_name(f"{out_path.stem}_{kind}{suffix}")
        written.append(save_figure(fig, target, dpi=dpi))
    return written


def reproduce(
    cfg: Config,
    *,
    runs: Sequence[str] = (),
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    bar_factory: Callable[[str], Any] | None = None,
    epoch_lines: bool = True,
) -> list[Path]:
    """Train (or reuse) each run's checkpoint, then run the config's `stages` for it: its
    surface and plots, the PCA trajectory of its training (Fig. 9), the Hessian ratio map
    (Fig. 7); then compare the runs' surfaces side by side and write the report.

    Every stage skips finished work and resumes unfinished work, so running it again is cheap.
    """
    from .train import train

    log = log or (lambda s: None)
    figures: list[Path] = []
    surfaces: dict[str, Path] = {}
    unplottable: set[str] = set()
    selected = select_runs(cfg, runs)
    for run in selected:
        label = run.run or run.name
        if run.checkpoint is None:
            log(f"[{label}] training")
            train(run, progress=progress, log=log, epoch_lines=epoch_lines)
        if "surface" in run.stages:
            surfaces[label], drawn = _surface_stage(run, label, log, bar_factory)
            if drawn is None:
                unplottable.add(label)
            else:
                figures += drawn
        if "trajectory" in run.stages:
            figures.append(trajectory_stage(run, log, bar_factory)[1])
        if "hessian" in run.stages:
            figure = hessian_stage(run, log, bar_factory)[1]
            figures += [figure] if figure is not None else []
    c = cfg.compare
    names = [n for n in (c.runs or surfaces) if n in surfaces and n not in unplottable]
    chosen = [surfaces[n] for n in names]
    # compare.titles name compare.runs (else every run with a surface) in order, whichever of
    # them are drawn now.
    every = {r.run or r.name: r for r in select_runs(cfg) if "surface" in r.stages}
    title_of = dict(zip(c.runs or every, c.titles or [], strict=False))
    one_d = {every[n].surface.y is None for n in names}
    if len(chosen) > 1 and not c.runs and len(one_d) > 1:
        # The config lists no runs to compare and its runs make 1D and 2D surfaces: there is no
        # one figure for them (config validation refuses such a compare.runs).
        log("compare: the runs make 1D and 2D surfaces; list runs of one kind in compare.runs")
        chosen = []
    if len(chosen) > 1:
        base = Path(cfg.out) / cfg.name
        metric = c.metric or cfg.plot.metric or _default_metric(cfg)
        titles = [title_of.get(n, n) for n in names] if title_of else None
        target = base / f"compare_{metric}{'_log' if c.log else ''}.{cfg.plot.format}"
        draw = functools.partial(
            compare_figures,
            chosen,
            titles,
            c.kinds,
            metric,
            target,
            dpi=cfg.plot.dpi,
            levels=c.levels,
            log=c.log,
        )
        try:
            figures += draw(vmin=c.vmin, vmax=c.vmax)
        except EmptyRangeError as e:
            # The configured range suits trained nets; an untrained or diverged run may lie
            # entirely outside it, and a figure on an automatic scale is better than none.
            log(f"compare: {e}; drawing on an automatic scale instead")
            figures += draw()
    if any(n not in unplottable for n in surfaces):
        from .report import write_report
        from .stats import compare_stats, file_stats, format_stats

        shown = names if len(chosen) > 1 else [n for n in surfaces if n not in unplottable]
        paths = [surfaces[n] for n in shown]
        titles = [title_of.get(n, n) for n in shown] if title_of else None
        if len(paths) > 1:
            log(compare_stats(paths, titles=titles)[1])
        else:
            log(format_stats(file_stats(paths[0])))
        figures.append(write_report(paths, Path(cfg.out) / cfg.name / "report.html", titles=titles))
    return figures


def _surface_stage(
    run: Config, label: str, log: Callable[[str], None], bar_factory: Callable[[str], Any] | None
) -> tuple[Path, list[Path] | None]:
    """The run's surface file and its figures (None when nothing finite can be drawn)."""
    from .plot import plot_file
    from .surface import compute_surface

    log(f"[{label}] surface")
    bar = bar_factory(f"surface {label}") if bar_factory else None
    path = compute_surface(run, progress=bar)
    log(f"[{label}] plots")
    p = run.plot
    try:
        figures = plot_file(
            path,
            kinds=p.kinds,
            metric=p.metric,
            out_dir=run.run_dir / "figures",
            fmt=p.format,
            dpi=p.dpi,
            vmin=p.vmin,
            vmax=p.vmax,
            levels=p.levels,
            log=p.log,
        )
    except LandscapeError as e:
        # A surface with nothing finite to draw (e.g. a diverged plain net) is still a result:
        # keep it, say why there is no figure, and go on with the other runs.
        log(f"[{label}] no figures: {e}")
        return path, None
    return path, figures


def trajectory_stage(
    run: Config,
    log: Callable[[str], None],
    bar_factory: Callable[[str], Any] | None = None,
    *,
    options: TrajectoryConfig | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """The run's trajectory file (options: its `trajectory` section) and figure."""
    from .paths import compute_trajectory, draw_trajectory, trajectory_summary

    label = run.run or run.name
    log(f"[{label}] trajectory")
    bar = bar_factory(f"trajectory {label}") if bar_factory else None
    path = compute_trajectory(run, options=options, overwrite=overwrite, progress=bar, log=log)
    log(f"[{label}] {trajectory_summary(path)}")
    p = run.plot
    target = run.run_dir / "figures" / f"trajectory.{p.format}"
    style = {"vmin": p.vmin, "vmax": p.vmax, "levels": p.levels, "log": p.log}
    return path, draw_trajectory(path, target, metric=p.metric, dpi=p.dpi, **style)


def hessian_stage(
    run: Config,
    log: Callable[[str], None],
    bar_factory: Callable[[str], Any] | None = None,
    *,
    options: HessianConfig | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path | None]:
    """The run's Hessian file (options: its `hessian` section) and ratio figure (None when
    nothing finite can be drawn)."""
    from .curvature import center_summary, compute_hessian_map, draw_hessian_ratio

    label = run.run or run.name
    log(f"[{label}] Hessian")
    bar = bar_factory(f"hessian {label}") if bar_factory else None
    path = compute_hessian_map(run, options=options, overwrite=overwrite, progress=bar, log=log)
    log(f"[{label}] {center_summary(path)}")
    target = run.run_dir / "figures" / f"hessian_ratio.{run.plot.format}"
    return path, draw_hessian_ratio(path, target, dpi=run.plot.dpi)


def _default_metric(cfg: Config) -> str:
    return f"{cfg.surface.splits[0]}_loss"
