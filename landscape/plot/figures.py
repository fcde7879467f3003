"""Figures of loss surfaces: contours, heat maps, 3D surfaces, 1D curves, comparisons, paths.

Every function returns a `matplotlib.figure.Figure` built without pyplot, so drawing works
headless and never touches a GUI backend; `save_figure` writes one to disk.  What is drawn (the
values, colour range, levels and 3D heights) is worked out in `scales`.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LightSource, Normalize
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.textpath import TextPath
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from ..errors import LandscapeError, unknown_name_message
from ..export import pick_metric
from ..storage import SurfaceData, distinct_titles, read_surface
from .scales import (
    Levels,
    band_range,
    color_range,
    contour_levels,
    diverged_above,
    extend_of,
    lower_is_better,
    masked_values,
    surface3d_heights,
)

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

KINDS_2D = ("contour", "contourf", "heatmap", "surface3d")
KINDS_1D = ("line",)
FIG_FORMATS = ("png", "pdf", "svg")
CMAP = "viridis"
# Sizes that stay readable when a figure is shrunk to one column of a paper.
_STYLE: dict[RcKeyType, Any] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
}
# Contour labels: their number format, font size and the gap left in the line on each side.
_LABEL_FMT = "%.3g"
_LABEL_SIZE = 7
_LABEL_SPACING = 3
# How far, in points, a contour label's end keeps from a marker's centre (a 10 pt star's radius).
_MARK_CLEARANCE = 7
# Fonts embedded as TrueType (Type 42): matplotlib's default Type 3 fonts in a PDF are refused
# by the PDF checks of ICML, IEEE and ACM submissions.  Read when a figure is saved.
_SAVE_STYLE: dict[RcKeyType, Any] = {"pdf.fonttype": 42, "ps.fonttype": 42}
# The least resolution, in dots per inch, of the parts of a PDF or SVG drawn as images (heat
# maps, 3D surfaces, colour bars): print asks for 300, while the default dpi suits a screen.
_VECTOR_RASTER_DPI = 300
# A 3D surface is seen from this elevation, in degrees.
_ELEVATION = 45
# Its x and y labels keep this far, in points, from their axes: at matplotlib's default of 4
# the y label runs into tick labels such as "-0.50" at this view.
_LABELPAD_3D = 10
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _styled(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Draw under the module's font sizes without changing the caller's rcParams."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context(_STYLE):
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- public figures


@_styled
def plot_surface(
    surf: SurfaceData,
    kind: str,
    metric: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    levels: Levels = None,
    log: bool = False,
    title: str | None = None,
    repeat: int = 0,
) -> Figure:
    """One figure of one surface: a 2D kind of KINDS_2D, or "line" for a 1D surface.

    For "line", no `metric` draws every loss (left axis) and accuracy (right axis); a 1D
    surface with several direction draws shows all of them (see `plot_repeats`).  A 2D surface
    with several draws shows draw `repeat`.
    """
    _check_kind(kind, surf.ndim)
    if surf.ndim == 1:
        if surf.repeats > 1:
            return plot_repeats(surf, metric, vmin=vmin, vmax=vmax, log=log, title=title)
        return _plot_line(surf, metric, vmin, vmax, log, title)

    one = surf.repeat(repeat)
    name = pick_metric(one, metric)
    label = metric_label(name, log)
    z = masked_values(one, name, log)
    lo, hi = color_range(z.compressed(), name, log, vmin, vmax, where=surf.path)
    lev = contour_levels(levels, lo, hi, log)
    ext = extend_of(z, *band_range(kind, lo, hi, lev))

    size = (6.4, 5.0) if kind == "surface3d" else (5.6, _flat_height(one.x, one.y, 4.6))
    fig = Figure(figsize=size, layout=_layout(kind))
    ax = _new_axes(fig, kind, 1, 0)
    mappable = _draw_2d(ax, kind, one, z, lo, hi, lev, ext, label, log=log)
    if kind != "contour":
        _colorbar(fig, mappable, [ax], label, kind, ext, log)
    if title is None:
        title = f"{surf.title}: {label}"
        if surf.repeats > 1:
            title += f" (draw {repeat + 1} of {surf.repeats})"
    ax.set_title(title)
    _label_contours(fig, log)
    return fig


@_styled
def plot_repeats(
    surf: SurfaceData,
    metric: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    title: str | None = None,
) -> Figure:
    """The curves of all direction draws of a 1D surface on one axis, with their median."""
    if surf.ndim != 1:
        raise LandscapeError(
            f"{surf.path}: plot_repeats draws 1D surfaces; plot one draw of a 2D surface with "
            "plot_surface(..., repeat=k)"
        )
    name = pick_metric(surf, metric)
    vals = np.asarray(surf.metrics[name], dtype=np.float64)
    if surf.repeats == 1:
        vals = vals[None]
    vals = np.where(np.isfinite(vals), vals, np.nan)  # (K, nx); gaps where not finite
    k = len(vals)

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[CMAP]
    for i, row in enumerate(vals):
        # Per-draw labels only while the legend stays short.
        ax.plot(
            surf.x,
            row,
            lw=0.9,
            alpha=0.75,
            color=cmap(i / max(k - 1, 1) * 0.9),
            label=f"draw {i + 1}" if k <= 8 else None,
        )
    with warnings.catch_warnings():
        # Columns where no draw is finite give NaN in the median, which is what we want.
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(vals, axis=0)
    ax.plot(surf.x, med, color="black", lw=2.0, label=f"median of {k} draws")
    _limit_y(ax, vals, name, log, vmin, vmax)
    _mark_unfinished(ax, "line", surf)
    ax.set_xlabel(surf.axis_label(0))
    ax.set_ylabel(metric_label(name))
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    ax.set_title(title if title is not None else f"{surf.title}: {k} direction draws")
    return fig


@_styled
def plot_compare(
    surfs: Sequence[SurfaceData],
    kind: str | None = None,
    metric: str | None = None,
    titles: Sequence[str] | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    levels: Levels = None,
    log: bool = False,
    repeat: int = 0,
) -> Figure:
    """Surfaces side by side on one colour scale and the same contour levels.

    `kind` defaults to "contour" for 2D and "line" for 1D surfaces; 1D surfaces are drawn as
    curves on one axis.  Surfaces with several direction draws contribute draw `repeat`.
    """
    if not surfs:
        raise LandscapeError("plot_compare needs at least one surface")
    dims = {s.ndim for s in surfs}
    if len(dims) > 1:
        which = ", ".join(f"{s.path or s.title} is {s.ndim}D" for s in surfs)
        raise LandscapeError(f"cannot compare 1D with 2D surfaces ({which}); pick one kind")
    ndim = dims.pop()
    kind = kind or ("contour" if ndim == 2 else "line")
    _check_kind(kind, ndim)
    if titles is None:
        titles = distinct_titles([s.title for s in surfs])
    elif len(titles) != len(surfs):
        raise LandscapeError(f"got {len(titles)} titles for {len(surfs)} surfaces; give one each")
    ones = [s.repeat(repeat) if s.repeats > 1 else s for s in surfs]
    name = pick_metric(ones[0], metric)
    for s in ones[1:]:
        pick_metric(s, name)  # every surface must hold the metric; the error names the file
    label = metric_label(name, log)

    if ndim == 1:
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
        curves = []
        for s, t in zip(ones, titles, strict=True):
            v = np.asarray(s.metrics[name], dtype=np.float64)
            v = np.where(np.isfinite(v), v, np.nan)
            curves.append(v)
            unfinished = _unfinished(s)
            if unfinished:  # a file still being computed
                t = f"{t} ({unfinished})"
            ax.plot(s.x, v, lw=1.5, label=t)
        _limit_y(ax, np.concatenate(curves), name, log, vmin, vmax)
        ax.set_xlabel(ones[0].axis_label(0))
        ax.set_ylabel(metric_label(name))
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        ax.set_title(label)
        return fig

    zs = [masked_values(s, name, log) for s in ones]
    union = np.concatenate([z.compressed() for z in zs])
    lo, hi = color_range(union, name, log, vmin, vmax, where="the compared surfaces")
    lev = contour_levels(levels, lo, hi, log)
    ext = extend_of(np.ma.concatenate([z.ravel() for z in zs]), *band_range(kind, lo, hi, lev))

    n = len(ones)
    size = (4.4 * n + 1.2, _flat_height(ones[0].x, ones[0].y, 4.4))
    fig = Figure(figsize=size, layout=_layout(kind))
    axes: list[Axes] = []
    mappables = []
    for i, (s, z, t) in enumerate(zip(ones, zs, titles, strict=True)):
        ax = _new_axes(fig, kind, n, i)
        mappables.append(_draw_2d(ax, kind, s, z, lo, hi, lev, ext, label, log=log))
        ax.set_title(t)
        axes.append(ax)
    if kind != "contour":
        # Every panel uses the same norm and levels, so one colour bar describes all of them.
        _colorbar(fig, mappables[0], axes, label, kind, ext, log)
    else:
        fig.suptitle(label)
    _label_contours(fig, log)
    return fig


@_styled
def plot_trajectory(
    surf: SurfaceData,
    path_xy: np.ndarray,
    epochs: Sequence[int] | None = None,
    metric: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    levels: Levels = None,
    log: bool = False,
    title: str | None = None,
) -> Figure:
    """Loss contours of a plane with the optimizer's path (n points in plane coordinates) on top."""
    if surf.ndim != 2:
        raise LandscapeError(f"{surf.path}: a trajectory is drawn over a 2D surface, this is 1D")
    p = np.asarray(path_xy, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
        raise LandscapeError(f"path_xy must have shape (n, 2) with n >= 1, got {p.shape}")
    if epochs is not None and len(epochs) != len(p):
        raise LandscapeError(f"got {len(epochs)} epochs for {len(p)} path points; give one each")
    one = surf.repeat(0) if surf.repeats > 1 else surf
    name = pick_metric(one, metric)
    label = metric_label(name, log)
    z = masked_values(one, name, log)
    lo, hi = color_range(z.compressed(), name, log, vmin, vmax, where=surf.path)
    lev = contour_levels(levels, lo, hi, log)

    # Lower for a wide, short plane, plus a row for the legend below it.
    fig = Figure(figsize=(5.8, _flat_height(one.x, one.y, 4.4) + 0.4), layout=_layout("contour"))
    ax = fig.add_subplot()
    # The path's own end marker stands for the trained model, so no separate origin marker.
    _draw_2d(ax, "contour", one, z, lo, hi, lev, "neither", label, mark_origin=False, log=log)
    ax.plot(p[:, 0], p[:, 1], "-o", color="C3", lw=1.5, ms=3, label="optimizer path", zorder=4)
    ax.plot(p[0, 0], p[0, 1], "o", ms=9, color="white", mec="black", label="start", zorder=5)
    ax.plot(p[-1, 0], p[-1, 1], "*", ms=14, color="C3", mec="black", label="end", zorder=5)
    if epochs is not None:
        # Label points that stand apart on the page: late epochs often bunch up at the end,
        # and labels on each of them would print over one another.
        for i in _spaced_indices(p, ax):
            ax.annotate(
                str(epochs[i]),
                (p[i, 0], p[i, 1]),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
                zorder=6,
            )
    ax.set_xlabel(xlabel if xlabel is not None else one.axis_label(0))
    ax.set_ylabel(ylabel if ylabel is not None else one.axis_label(1))
    # Below the axes: inside, "best" sees neither the contour lines nor their labels (placed
    # later) and covered them, or the path where it fills the plane.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3)
    ax.set_title(title if title is not None else f"{surf.title}: {label}")
    _label_contours(fig, log)
    return fig


def _spaced_indices(p: np.ndarray, ax: Any, max_labels: int = 6) -> list[int]:
    """Path points to label: the last one, then others at least 6 % of the view away from those."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    scale = np.array([max(x1 - x0, 1e-12), max(y1 - y0, 1e-12)])
    q = p / scale  # distances as fractions of the view
    chosen = [len(p) - 1]
    for i in range(len(p) - 1):
        if len(chosen) >= max_labels:
            break
        if min(np.hypot(*(q[i] - q[j])) for j in chosen) >= 0.06:
            chosen.append(i)
    return sorted(chosen)


@_styled
def plot_heatmap_array(
    x: np.ndarray,
    y: np.ndarray,
    values: np.ndarray,
    title: str,
    cbar_label: str,
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    xlabel: str = "direction 1",
    ylabel: str = "direction 2",
) -> Figure:
    """A heat map of any [iy, ix] array on the grid (e.g. Hessian |lambda_min / lambda_max|)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    v = np.ma.masked_invalid(np.asarray(values, dtype=np.float64))
    if v.shape != (len(y), len(x)):
        raise LandscapeError(
            f"values have shape {v.shape}, expected (len(y), len(x)) = ({len(y)}, {len(x)})"
        )
    fig = Figure(figsize=(5.6, _flat_height(x, y, 4.6)), layout=_layout("heatmap"))
    ax = fig.add_subplot()
    # Rasterized, as a surface's heat map: vector cells show light seams in PDF viewers.
    mesh = ax.pcolormesh(
        x, y, v, shading="nearest", cmap=CMAP, vmin=vmin, vmax=vmax, rasterized=True
    )
    # Values beyond a fixed scale are drawn in its end colours; the colour bar's arrows say so.
    below = vmin is not None and bool(np.any(v < vmin))
    above = vmax is not None and bool(np.any(v > vmax))
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (below, above), "neither"
    )
    fig.colorbar(mesh, ax=ax, label=cbar_label, extend=extend)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _set_aspect(ax, x, y)
    ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | Path, fmt: str | None = None, dpi: int = 150) -> Path:
    """Write `fig` as png, pdf or svg (from `fmt` or the suffix) and close it; returns the path.

    A suffix that is not a figure format (e.g. "run_lr=0.1") gets ".<fmt>" appended.  `dpi` is
    the resolution of a PNG; in a PDF or SVG, where text and lines are vectors, it is that of
    the parts drawn as images, and at least 300.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None:
        fmt = suffix
        if not fmt:
            raise LandscapeError(
                f"{path}: cannot tell the figure format from the suffix; end the name in "
                f"{', '.join('.' + f for f in FIG_FORMATS)} or pass fmt"
            )
    fmt = fmt.lower().lstrip(".")
    if fmt not in FIG_FORMATS:
        raise LandscapeError(unknown_name_message("figure format", fmt, FIG_FORMATS))
    if suffix in FIG_FORMATS and suffix != fmt:
        raise LandscapeError(
            f"{path}: suffix .{suffix} does not match format {fmt!r}; make them agree"
        )
    if suffix != fmt:
        path = path.with_name(f"{path.name}.{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt != "png":
        dpi = max(dpi, _VECTOR_RASTER_DPI)
    # A tight box keeps 3D axis labels that stick out of the axes' own box.
    with matplotlib.rc_context(_SAVE_STYLE):
        fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    # Our figures are not registered with pyplot and are freed when dropped; one made through
    # pyplot is held by it until closed.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(fig.canvas, "manager", None) is not None:
        pyplot.close(fig)
    return path


def plot_file(
    path: str | Path,
    kinds: Sequence[str] | None = None,
    metric: str | None = None,
    out_dir: str | Path | None = None,
    fmt: str | None = "png",
    dpi: int = 150,
    vmin: float | None = None,
    vmax: float | None = None,
    levels: Levels = None,
    log: bool = False,
    stem: str | None = None,
) -> list[Path]:
    """Draw the requested kinds of the surface in `path`; returns the written files.

    Files are named `<stem>_<metric>_<kind>.<fmt>` (stem: the file's own, unless given), with
    `_log` after the kind on a log scale, so that it does not replace the linear figure; a 2D
    file with several direction draws gets one figure per draw, `..._r<k>.<fmt>`; a 1D "line"
    of all metrics uses "all" as the metric.
    """
    fmt = (fmt or "png").lower().lstrip(".")
    if fmt not in FIG_FORMATS:
        raise LandscapeError(unknown_name_message("figure format", fmt, FIG_FORMATS))
    surf = read_surface(path)
    kinds = list(kinds) if kinds else list(KINDS_2D if surf.ndim == 2 else KINDS_1D)
    for kind in kinds:
        _check_kind(kind, surf.ndim)  # all checked before anything is drawn
    name = pick_metric(surf, metric)
    out = Path(out_dir) if out_dir is not None else Path(path).parent
    stem = stem or Path(path).stem
    draws = list(range(surf.repeats)) if surf.ndim == 2 and surf.repeats > 1 else [0]
    written = []
    for kind in kinds:
        # A plain 1D line without a chosen metric shows every metric at once.
        all_metrics = kind == "line" and metric is None and surf.repeats == 1
        tag = "all" if all_metrics else name
        for r in draws:
            fig = plot_surface(
                surf,
                kind,
                None if all_metrics else name,
                vmin=vmin,
                vmax=vmax,
                levels=levels,
                log=log,
                repeat=r,
            )
            suffix = ("_log" if log else "") + (f"_r{r}" if len(draws) > 1 else "")
            written.append(save_figure(fig, out / f"{stem}_{tag}_{kind}{suffix}.{fmt}", dpi=dpi))
    return written


# --------------------------------------------------------------------------- helpers


_LOG_SUFFIX = " (log scale)"


def metric_label(metric: str, log: bool = False) -> str:
    """'train_loss' -> 'train loss', 'test_acc' -> 'test acc (%)', with log: 'train loss (log
    scale)'."""
    label = metric.replace("_", " ")
    if metric.endswith("_acc"):
        label += " (%)"
    return label + _LOG_SUFFIX if log else label


def _value_text(v: float, log: bool, digits: int = 3) -> str:
    """A value of the drawn scale as the metric reads (on a log scale the data are log10 of it,
    and the value is rounded to `digits` significant digits: 10**0.2 reads 1.58, or 1.6 at 2)."""
    if not log:
        return _LABEL_FMT % v
    return f"{float(f'{10.0**v:.{digits}g}'):g}"


def _fewest_digits(values: Sequence[float], least: int, most: int) -> int:
    """The fewest significant digits, from least to most, that keep the log-scale values'
    texts apart (most where none does)."""
    return next(
        (
            d
            for d in range(least, most)
            if len({_value_text(v, True, d) for v in values}) == len(values)
        ),
        most,
    )


def _level_texts(levels: np.ndarray, log: bool) -> dict[float, str]:
    """Each contour level's label. On a log scale the levels are evenly spaced in log10, so
    their values are not round: the fewest significant digits (2 to 4) that keep the labelled
    (inner) levels apart."""
    inner = levels[1:-1] if len(levels) > 2 else levels
    digits = _fewest_digits(list(inner), 2, 4) if log else 3
    return {float(v): _value_text(v, log, digits) for v in levels}


def _log_ticks(lo: float, hi: float) -> np.ndarray:
    """Where to put ticks on a log10 scale from lo to hi: at round values of the metric (1, 2 and
    5 in each decade; only powers of ten over many decades; every digit, or evenly spaced ticks,
    over a short range)."""
    tol = 1e-9 * max(hi - lo, 1e-12)
    decades = np.arange(np.floor(lo), np.ceil(hi) + 1)

    def within(mantissas: Sequence[float]) -> np.ndarray:
        t = np.sort(np.log10(np.outer(10.0**decades, mantissas).ravel()))
        return t[(t >= lo - tol) & (t <= hi + tol)]

    ticks = within([1, 2, 5])
    if len(ticks) > 9:
        ticks = within([1])
        return ticks[:: -(-len(ticks) // 9)]
    if len(ticks) < 3:
        ticks = within(range(1, 10))
    if len(ticks) < 3:
        even = np.asarray(MaxNLocator(6).tick_values(lo, hi))
        ticks = even[(even >= lo - tol) & (even <= hi + tol)]
    return ticks


def _log_axis(axis: Any, ticks: np.ndarray) -> None:
    """A log10 axis ticked at `ticks` (_log_ticks), labelled in the metric's units with 3
    significant digits, or as many as keep the labels apart (a range of a fraction of a
    percent: 1.5802, 1.5811, ...)."""
    digits = _fewest_digits(list(ticks), 3, 9)
    axis.set_major_locator(FixedLocator(list(ticks)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _value_text(v, True, digits)))
    axis.set_minor_locator(NullLocator())


def _check_kind(kind: str, ndim: int) -> None:
    kinds = KINDS_2D if ndim == 2 else KINDS_1D
    if kind in kinds:
        return
    if kind in KINDS_1D + KINDS_2D:
        raise LandscapeError(
            f"plot kind {kind!r} does not fit a {ndim}D surface; choose from: {', '.join(kinds)}"
        )
    raise LandscapeError(unknown_name_message("plot kind", kind, kinds))


def _new_axes(fig: Figure, kind: str, n: int, i: int) -> Any:
    # Axes3D(fig) draws nothing since matplotlib 3.6; the projection keyword is the supported way.
    return fig.add_subplot(1, n, i + 1, projection="3d" if kind == "surface3d" else None)


def _draw_2d(
    ax: Any,
    kind: str,
    surf: SurfaceData,
    z: np.ma.MaskedArray,
    lo: float,
    hi: float,
    levels: np.ndarray,
    extend: str,
    label: str,
    *,
    mark_origin: bool = True,
    log: bool = False,
) -> Any:
    """Draw one panel and return its colour mapping artist (log: z is log10 of the metric)."""
    x = np.asarray(surf.x, dtype=np.float64)
    y = np.asarray(surf.y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise LandscapeError(f"{surf.path}: a 2D plot needs at least 2 points along each axis")
    if kind == "contour":
        # Its lines get their numbers once the figure is laid out (_label_contours).
        mappable = ax.contour(x, y, z, levels=levels, cmap=CMAP, vmin=lo, vmax=hi, linewidths=0.9)
        # A flat panel beside a steep one can fall between two shared levels (a level at its
        # minimum is a single point); say so rather than leave an empty square that reads as
        # missing data.
        lines = [seg for segs in mappable.allsegs for seg in segs if len(seg)]
        if not any(np.ptp(seg, axis=0).max() > 0 for seg in lines) and z.count():
            ax.text(
                0.5,
                0.04,
                f"no level crossed: {label.removesuffix(_LOG_SUFFIX)} "
                f"{_value_text(z.min(), log)} to {_value_text(z.max(), log)}",
                transform=ax.transAxes,
                ha="center",
                fontsize=8,
            )
    elif kind == "contourf":
        filled = diverged_above(z, lo, hi)
        mappable = ax.contourf(x, y, filled, levels=levels, cmap=CMAP, extend=extend)
        # Each band edged in its own colour: PDF viewers otherwise show a light seam between
        # neighbouring bands.
        mappable.set_edgecolor("face")  # a ContourSet is one Collection (matplotlib >= 3.8)
        mappable.set_linewidth(0.3)
    elif kind == "heatmap":
        # pcolormesh puts each value at its own coordinate, so uneven grids are drawn right
        # and y grows upwards (origin lower).
        filled = diverged_above(z, lo, hi)
        # Rasterized (axes and text stay vector): as vector quads, PDF viewers draw a light
        # seam around every cell.
        mappable = ax.pcolormesh(
            x, y, filled, shading="nearest", cmap=CMAP, vmin=lo, vmax=hi, rasterized=True
        )
    else:
        xf, yf, zf = surface3d_heights(x, y, np.ma.getdata(z).astype(float), lo, hi)
        # Shaded by a light from the upper left: flat colour alone hides the surface's form.
        # NaN (a hole) is shaded as the rim but drawn as a gap, since plot_surface drops it.
        light = LightSource(azdeg=315, altdeg=45)
        colors = light.shade(
            np.where(np.isnan(zf), hi, zf),
            cmap=matplotlib.colormaps[CMAP],
            vmin=lo,
            vmax=hi,
            blend_mode="soft",
            vert_exag=0.25 * float(np.ptp(x)) / ((hi - lo) or 1.0),
            dx=float(xf[1] - xf[0]),
            dy=float(yf[1] - yf[0]),
        )
        xx, yy = np.meshgrid(xf, yf)
        ax.plot_surface(
            xx,
            yy,
            zf,
            facecolors=colors,
            shade=False,
            linewidth=0,
            antialiased=False,
            rcount=min(len(yf), 200),  # the default 50 would blur grids finer than 50 x 50
            ccount=min(len(xf), 200),
            # As an image in PDF and SVG: 10,000 and more vector facets made files of a
            # megabyte, drawn with a light seam around every facet.
            rasterized=True,
        )
        mappable = ScalarMappable(norm=Normalize(lo, hi), cmap=CMAP)
        # From higher than matplotlib's 30 degrees: the basin shows, and fewer faces of the
        # walls overlap (matplotlib sorts faces by depth, with no z-buffer).
        ax.view_init(elev=_ELEVATION, azim=-60)
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(y.min(), y.max())
        ax.set_zlim(lo, hi)
        # Fewer ticks: the default crowds the foreshortened x and y axes.
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        if log:
            _log_axis(ax.zaxis, _log_ticks(lo, hi))
    _mark_unfinished(ax, kind, surf)
    # A 3D axis label sits at matplotlib's default pad across the slanted tick labels.
    pad = {"labelpad": _LABELPAD_3D} if kind == "surface3d" else {}
    ax.set_xlabel(surf.axis_label(0), **pad)
    ax.set_ylabel(surf.axis_label(1), **pad)
    if kind != "surface3d":
        if mark_origin and x.min() <= 0 <= x.max() and y.min() <= 0 <= y.max():
            ax.plot(0, 0, marker="*", ms=10, color="white", mec="black", zorder=5)
        _set_aspect(ax, x, y)
    return mappable


# Behind a filled panel: a point not computed yet is this grey, not the white of the page.
UNFINISHED_COLOR = "0.82"


def _unfinished(surf: SurfaceData) -> str:
    """'N of M points not computed yet' for a file still being computed (or interrupted), else
    ''."""
    missing = int(np.size(surf.done) - np.count_nonzero(surf.done))
    return f"{missing} of {np.size(surf.done)} points not computed yet" if missing else ""


def _mark_unfinished(ax: Any, kind: str, surf: SurfaceData) -> None:
    """A panel of a file still being computed (or interrupted) says how many points it lacks;
    filled kinds show those points as grey holes instead of white ones, which read as data."""
    text = _unfinished(surf)
    if not text:
        return
    if kind in ("contourf", "heatmap"):
        ax.set_facecolor(UNFINISHED_COLOR)
        text += " (grey)"
    place = ax.text2D if kind == "surface3d" else ax.text
    place(
        0.5,
        0.97,
        text,
        transform=ax.transAxes,
        ha="center",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
        zorder=6,
    )


def _label_contours(fig: Figure, log: bool = False) -> None:
    """Number about ten round levels of each contour panel, each label where it reads whole.

    matplotlib's own placement counts a label's width in path vertices, so on a coarse grid it
    puts labels on a line's end, where the axes cut them ("8.4" read "4"), and where short lines
    crowd (a basin's corners) it stacks them on one another.  Here each line gets its label at
    its straightest stretch that lies inside the axes and clear of the labels placed before,
    or none; this needs the laid-out figure, since labels keep their size as the axes shrink.
    With log, levels are log10 of the metric and labels read in its units.
    """
    panels = [
        (ax, cs)
        for ax in fig.axes
        for cs in ax.get_children()
        if isinstance(cs, ContourSet) and not cs.filled
    ]
    if not panels:
        return
    fig.draw_without_rendering()
    px = fig.dpi / 72.0  # display pixels per point
    for ax, cs in panels:
        levels = np.asarray(cs.levels)
        texts = _level_texts(levels, log)
        # Not the end levels: with default levels they are the data's own (unround) extremes
        # (so _level_texts keeps only the inner ones apart).
        inner = levels[1:-1] if len(levels) > 2 else levels
        chosen = inner[:: -(-len(inner) // 10)]  # every ceil(n / 10)th
        box = ax.get_window_extent()
        # Markers (the trained model's star, a path's points) stay uncovered.
        marks = [ax.transData.transform(ln.get_xydata()) for ln in ax.get_lines() if _marked(ln)]
        keep_off = (np.concatenate([*marks, _NONE]), _MARK_CLEARANCE * px)
        placed: list[np.ndarray] = []
        for level, segs in zip(levels, cs.allsegs, strict=True):
            if level not in chosen:
                continue
            width = TextPath((0, 0), texts[level], size=_LABEL_SIZE).get_extents().width
            width = width * px + 2 * _LABEL_SPACING * px
            for seg in segs:
                spot = _label_spot(ax.transData.transform(seg), width, box, placed, keep_off)
                if spot is not None:
                    placed.append(spot)
        if placed:
            data_xy = ax.transData.inverted().transform(np.array(placed))
            # Every level, not just `chosen`: matplotlib 3.8's manual placement reads the
            # label's level by its index among all levels (IndexError, or a wrong number, for
            # a subset).  Only the spots get labels, and each lies on its own level's line.
            ax.clabel(
                cs,
                levels,
                inline=True,
                inline_spacing=_LABEL_SPACING,
                fmt=texts,
                fontsize=_LABEL_SIZE,
                manual=[tuple(p) for p in data_xy],
            )


_NONE = np.zeros((0, 2))


def _marked(line: Any) -> bool:
    return line.get_marker() not in (None, "None", "none", "", " ")


def _label_spot(
    line: np.ndarray,
    width: float,
    box: Any,
    placed: list[np.ndarray],
    keep_off: tuple[np.ndarray, float],
) -> np.ndarray | None:
    """Where on `line` (n, 2 display points) a label `width` pixels long goes: the point whose
    stretch of `width` around it is straightest, with the label inside `box`, at least 1.2
    widths from every label in `placed` (matplotlib's spacing) and its ends a clearance away
    from the (m, 2) marker points of `keep_off` (points, clearance); None if the line has no
    room."""
    steps = np.hypot(*np.diff(line, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    if arc[-1] < 1.2 * width:
        return None
    s = np.arange(width / 2, arc[-1] - width / 2, 2.0)  # the label stays on its own line
    if s.size == 0:
        return None

    def at(t: np.ndarray) -> np.ndarray:  # the points at arc lengths t
        return np.column_stack([np.interp(t, arc, line[:, 0]), np.interp(t, arc, line[:, 1])])

    centre = at(s)
    # A label turns with its line, so keep half a width from every edge, whatever the angle.
    half = width / 2
    ok = (
        (centre[:, 0] >= box.x0 + half)
        & (centre[:, 0] <= box.x1 - half)
        & (centre[:, 1] >= box.y0 + half)
        & (centre[:, 1] <= box.y1 - half)
    )
    for p in placed:
        ok &= np.hypot(*(centre - p).T) >= 1.2 * width
    marks, clearance = keep_off
    for m in marks:
        ok &= np.hypot(*(centre - m).T) >= half + clearance
    if not ok.any():
        return None
    chord = np.hypot(*(at(s + half) - at(s - half)).T)  # == width where the line is straight
    best = np.flatnonzero(ok)[np.argmax(chord[ok])]
    return centre[best]


def _equal_scales(x: np.ndarray, y: np.ndarray) -> float | None:
    """The plane's height over its width when it is drawn at equal scales; None when the grid
    is so elongated that the plot would become a sliver (it then fills the axes)."""
    dx, dy = float(np.ptp(x)), float(np.ptp(y))
    return dy / dx if dx > 0 and dy > 0 and 1 / 3 <= dy / dx <= 3 else None


def _layout(kind: str) -> Literal["constrained", "compressed"]:
    """The layout engine of a figure of `kind`: "compressed" fits a colour bar and the panels
    beside it to planes drawn at equal scales (under "constrained" the bar fills the slot
    that a wide, short plane leaves half empty, and stands far above and below the panels)."""
    return "constrained" if kind == "surface3d" else "compressed"


def _flat_height(x: np.ndarray, y: np.ndarray | None, height: float) -> float:
    """A figure height for a plane drawn at equal scales: lower for a wide, short grid, so that
    little white is left above and below it."""
    ratio = None if y is None else _equal_scales(x, y)
    return height if ratio is None else min(height, 1.6 + 3.6 * ratio)


def _set_aspect(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    if _equal_scales(x, y) is not None:
        ax.set_aspect("equal", adjustable="box")


def _colorbar(
    fig: Figure, mappable: Any, axes: list[Any], label: str, kind: str, ext: str, log: bool = False
) -> None:
    kw: dict[str, Any] = {"ax": axes, "label": label}
    if kind == "surface3d":
        kw["shrink"] = 0.7  # 3D axes leave empty space above and below
    if kind != "contourf":
        kw["extend"] = ext  # a filled contour set carries its own extend
    bar = fig.colorbar(mappable, **kw)
    # Round ticks (the default for filled contours would be the unround level boundaries), and
    # only those inside the bar: a filled contour's bar maps a tick beyond its outer levels onto
    # the bar's end, so 0.1..9.6 would read "0.0" and "10.5" there.
    lo, hi = bar.ax.get_ylim()  # the bar's own range, vertical as it stands beside the axes
    if log:
        ticks = _log_ticks(lo, hi)
        bar.set_ticks(list(ticks))
        _log_axis(bar.ax.yaxis, ticks)
        return
    ticks = np.asarray(MaxNLocator(8).tick_values(lo, hi))
    tol = 1e-9 * (hi - lo)
    bar.set_ticks(list(ticks[(ticks >= lo - tol) & (ticks <= hi + tol)]))


def _limit_y(
    ax: Axes, vals: np.ndarray, metric: str, log: bool, vmin: float | None, vmax: float | None
) -> None:
    """y limits of a curve plot: log scale if asked, else the colour-range rule (robust cap)."""
    if log:
        ax.set_yscale("log")  # non-positive values are left out by the scale itself
        if vmin is not None or vmax is not None:
            ax.set_ylim(vmin, vmax)
        return
    finite = vals[np.isfinite(vals)]
    if finite.size == 0:
        return
    lo, hi = color_range(finite, metric, False, vmin, vmax, where=None)
    if vmin is not None or vmax is not None or hi < finite.max():
        pad = 0.03 * (hi - lo)
        ax.set_ylim(lo - pad if vmin is None else lo, hi + pad if vmax is None else hi)


def _plot_line(
    surf: SurfaceData,
    metric: str | None,
    vmin: float | None,
    vmax: float | None,
    log: bool,
    title: str | None,
) -> Figure:
    """A 1D surface: losses on the left axis, accuracies on a twin right axis."""
    names = [pick_metric(surf, metric)] if metric is not None else list(surf.metrics)
    losses = [n for n in names if lower_is_better(n)]
    accs = [n for n in names if not lower_is_better(n)]
    # Each split keeps one line style on both axes: train solid, test dashed, ...
    splits = list(dict.fromkeys(n.rsplit("_", 1)[0] for n in names))
    styles = ["-", "--", ":", "-."]

    def curve(ax: Axes, name: str, color: str) -> None:
        v = np.asarray(surf.metrics[name], dtype=np.float64)
        style = styles[splits.index(name.rsplit("_", 1)[0]) % len(styles)]
        ax.plot(
            surf.x,
            np.where(np.isfinite(v), v, np.nan),
            style,
            color=color,
            lw=1.6,
            label=metric_label(name),
        )

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    left, right = (losses, accs) if losses else (accs, [])
    for n in left:
        curve(ax, n, "C0")
    left_vals = np.concatenate([np.asarray(surf.metrics[n], dtype=np.float64) for n in left])
    _limit_y(ax, left_vals, left[0], log and bool(losses), vmin, vmax)
    ax.set_ylabel(
        metric_label(left[0]) if len(left) == 1 else ("loss" if losses else "accuracy (%)")
    )
    if losses:
        ax.yaxis.label.set_color("C0")
    handles, labels = ax.get_legend_handles_labels()
    if right:
        ax2 = ax.twinx()
        for n in right:
            curve(ax2, n, "C1")
        ax2.set_ylabel("accuracy (%)", color="C1")
        h2, l2 = ax2.get_legend_handles_labels()
        # Below the plot: "best" on one axis cannot see the curves of the twin axis.
        fig.legend(handles + h2, labels + l2, loc="outside lower center", ncol=min(4, len(names)))
    else:
        ax.legend(handles, labels, loc="best")
    _mark_unfinished(ax, "line", surf)
    ax.set_xlabel(surf.axis_label(0))
    ax.grid(alpha=0.3)
    ax.set_title(title if title is not None else surf.title)
    return fig
