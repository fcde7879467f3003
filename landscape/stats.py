"""The numbers of one or more surface files: metrics with intervals, barriers, cosines, provenance.

This is the library behind `landscape stats` and the tables of `landscape report`; both show
what `file_stats` and `compare_stats` return, so a page and a terminal never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LandscapeError
from .export import pick_metric
from .metrics import (
    Estimate,
    chance_cosines,
    compare_table,
    direction_cosines,
    line_barrier,
    repeat_stats,
    surface_stats,
)
from .storage import SurfaceData, distinct_titles, read_directions, read_extra, read_surface

# The extra array (under /extra) that holds a map of |lambda_min / lambda_max| on the grid.
HESSIAN_RATIO = "hessian_ratio"
# Attributes copied into "provenance"; a key the file lacks is None, so every run has them all.
PROVENANCE_KEYS = (
    "model",
    "checkpoint",
    "checkpoint_sha256",
    "state_sha256",
    "checkpoint_epoch",
    "dir_kind",
    "dir_type",
    "norm",
    "orthogonalize",
    "direction_seed",
    "data_seed",
    "precision",
    "bn",
    "loss",
    "samples",
    "examples",
    "created",
    "landscape_version",
    "torch_version",
    "numpy_version",
    "python_version",
    "schema_version",
    "source",
    "dir_file",
)
_BARRIER_KEYS = ("barrier", "barrier_t", "loss_a", "loss_b", "max_loss")


@dataclass(frozen=True)
class StatsOptions:
    """The knobs of the statistics; docs/metrics.md says what each one does."""

    radii: tuple[float, ...] = (0.25, 0.5, 1.0)
    rel_thresholds: tuple[float, ...] = (0.1, 1.0)
    abs_thresholds: tuple[float, ...] = ()
    fit_radius: float = 0.2
    curvature_ratio_threshold: float = 0.1
    resamples: int = 2000  # bootstrap resamples of the interval over direction draws
    seed: int = 0  # seed of the bootstrap, so the same file gives the same interval
    cosines: bool = True  # read every stored direction to measure their angles


def file_stats(
    path: str | Path,
    metric: str | None = None,
    radii: Sequence[float] | None = None,
    *,
    options: StatsOptions | None = None,
) -> dict[str, Any]:
    """Every number of one surface file, as a dict (see the keys below).

    `metric` defaults to train_loss, else test_loss; `radii` overrides `options.radii`.
    Keys: "title", "path", "metric", "ndim", "grid", "repeats", "stats" (statistic name ->
    Estimate, n=1 for a file with one draw of directions; a line between two checkpoints adds
    the barrier keys), "values" (counts of points, done and non-finite values), "directions"
    (cosine summary or None), "provenance" (attributes, None where absent) and "notes".
    """
    opts = options or StatsOptions()
    if radii is not None:
        opts = replace(opts, radii=tuple(float(r) for r in radii))
    surf = read_surface(path)
    name = pick_metric(surf, metric)
    notes: list[str] = []
    if not name.endswith("_loss"):
        notes.append(
            f"{name} is treated as a loss (lower is better); sharpness, basin widths and minima "
            "mean little for it"
        )
    hess = _hessian_ratio(path, surf, notes)
    axes = [surf.x] if surf.y is None else [surf.x, surf.y]
    nearest = [_nearest(a, 0.0) for a in axes]
    if any(nearest):
        notes.append(
            f"the grid has no point at the origin: distances and the centre values are taken "
            f"from ({', '.join(f'{c:.4g}' for c in nearest)}), the grid point nearest to it"
        )
    kw: dict[str, Any] = {
        "radii": opts.radii,
        "rel_thresholds": opts.rel_thresholds,
        "abs_thresholds": opts.abs_thresholds,
        "fit_radius": opts.fit_radius,
        "curvature_ratio_threshold": opts.curvature_ratio_threshold,
        "hessian_ratio": hess,
    }
    if surf.repeats > 1:
        stats = repeat_stats(surf, name, resamples=opts.resamples, seed=opts.seed, **kw)
    else:
        stats = {k: Estimate.from_values([v]) for k, v in surface_stats(surf, name, **kw).items()}
    if surf.attrs.get("dir_kind") == "line":
        stats.update(_barrier(surf, name, opts, notes))
    for axis in range(surf.ndim):
        used = stats.get(f"curvature_points_d{axis + 1}")
        if used is not None and used.mean < 3:
            notes.append(
                f"no curvature along direction {axis + 1}: the fit takes the grid points within "
                f"{opts.fit_radius:g} of the centre and this grid has {used.mean:.0f} there; "
                "refine the grid or raise the fit radius (--fit-radius)"
            )

    return {
        "title": surf.title,
        "path": str(path),
        "metric": name,
        "ndim": surf.ndim,
        "grid": _grid(surf),
        "repeats": surf.repeats,
        "stats": stats,
        "values": _value_counts(surf, name),
        "directions": _cosine_summary(path, surf, notes) if opts.cosines else None,
        "provenance": {k: surf.attrs.get(k) for k in PROVENANCE_KEYS},
        "notes": notes,
    }


def compare_stats(
    paths: Sequence[str | Path],
    titles: Sequence[str] | None = None,
    metric: str | None = None,
    radii: Sequence[float] | None = None,
    *,
    options: StatsOptions | None = None,
) -> tuple[dict[str, dict[str, Any]], str]:
    """`file_stats` of each file keyed by its title, and the side-by-side table of them.

    Every file is measured on the same metric: `metric`, or the first file's default.  The
    table (metrics.compare_table) says whether the first two runs' intervals overlap.
    """
    if not paths:
        raise LandscapeError("no surface files given; pass at least one .h5 file")
    if titles is not None and len(titles) != len(paths):
        raise LandscapeError(f"got {len(titles)} titles for {len(paths)} files; give one each")
    if titles is not None and len(set(titles)) != len(titles):
        raise LandscapeError(f"titles must differ from each other, got {list(titles)}")
    runs: list[dict[str, Any]] = []
    for p in paths:
        runs.append(file_stats(p, metric, radii, options=options))
        metric = runs[0]["metric"]  # the rest follow the first file's metric
    names = list(titles) if titles is not None else distinct_titles([r["title"] for r in runs])
    out: dict[str, dict[str, Any]] = {}
    for n, r in zip(names, runs, strict=True):
        r["title"] = n
        out[n] = r
    table = compare_table({n: r["stats"] for n, r in out.items()})
    return out, table


def format_stats(stats: dict[str, Any]) -> str:
    """A `file_stats` dict as text for a terminal: what was measured, then the table."""
    g = stats["grid"]
    ndim = stats["ndim"]
    size = f"{g['x'][2]}" if ndim == 1 else f"{g['x'][2]} x {g['y'][2]}"
    span = f"x {_num(g['x'][0])}..{_num(g['x'][1])}"
    if ndim == 2:
        span += f", y {_num(g['y'][0])}..{_num(g['y'][1])}"
    draws = stats["repeats"]
    prov = stats["provenance"]
    v = stats["values"]
    lines = [
        f"{stats['title']} ({stats['path']})",
        f"  {stats['metric']} on a {ndim}D grid of {size} points ({span}), "
        f"{draws} direction draw{'s' if draws != 1 else ''} of {_directions_kind(prov)}",
        f"  values: {v['points']} points, {v['done']} computed, {v['nonfinite']} not finite "
        f"({v['nan']} NaN, {v['inf']} inf)",
    ]
    d = stats["directions"]
    if d is not None:
        lines.append(
            f"  directions: {d['count']} over {d['parameters']} parameters, max |cosine| "
            f"{_num(d['max_abs_cosine'])} (independent random ones of the same per-filter norms: "
            f"about {_num(d['random_scale'])})"
        )
    # A line or plane between checkpoints draws nothing at random: its seed means nothing.
    seedless = {"direction_seed"} if prov.get("dir_kind") in ("line", "plane") else set()
    shown = [
        f"{k} {prov[k]}" for k in PROVENANCE_KEYS if prov.get(k) is not None and k not in seedless
    ]
    if shown:
        lines.append("  provenance: " + ", ".join(shown))
    lines += ["", compare_table({stats["title"]: stats["stats"]})]
    if draws > 1:
        lines.append(f"(mean [95% bootstrap interval of the mean] over {draws} direction draws)")
    lines += [f"note: {n}" for n in stats["notes"]]
    return "\n".join(lines)


def _nearest(axis: np.ndarray, value: float) -> float:
    """The grid coordinate nearest `value`, as the metrics pick their centre and line ends."""
    a = np.asarray(axis, dtype=np.float64)
    return float(a[np.argmin(np.abs(a - value))])


def _barrier(
    surf: SurfaceData, metric: str, opts: StatsOptions, notes: list[str]
) -> dict[str, Estimate]:
    try:
        per_draw = [line_barrier(surf.repeat(k), metric) for k in range(surf.repeats)]
    except LandscapeError as e:
        notes.append(f"no barrier: {e}")
        return {}
    ends = [_nearest(surf.x, end) for end in (0.0, 1.0)]
    if not np.allclose(ends, [0.0, 1.0], rtol=0, atol=1e-9):
        notes.append(
            f"the grid has no point at x = 0 or 1: A and B are read at x = {ends[0]:.4g} and "
            f"{ends[1]:.4g}, the nearest points; a grid such as [-0.5, 1.5, 41] holds both"
        )
    return {
        k: Estimate.from_values([d[k] for d in per_draw], resamples=opts.resamples, seed=opts.seed)
        for k in _BARRIER_KEYS
    }


def _hessian_ratio(path: str | Path, surf: SurfaceData, notes: list[str]) -> np.ndarray | None:
    """The Hessian ratio map when the file holds one on its own grid (per draw or shared)."""
    extra = read_extra(path)
    if HESSIAN_RATIO not in extra:
        return None
    arr = np.asarray(extra[HESSIAN_RATIO][0], dtype=np.float64)
    if arr.shape == surf.shape or arr.shape == (surf.repeats, *surf.shape):
        return arr
    notes.append(
        f"/extra/{HESSIAN_RATIO} has shape {arr.shape}, not the grid's {surf.shape}; "
        "its non-convex fraction is left out"
    )
    return None


def _cosine_summary(path: str | Path, surf: SurfaceData, notes: list[str]) -> dict[str, Any] | None:
    """The largest |cosine| between any two stored directions, beside the random-chance scale."""
    try:
        draws = [read_directions(path, k) for k in range(surf.repeats)]
    except LandscapeError:
        notes.append("the file stores no directions, so their angles are unknown")
        return None
    try:
        cos = direction_cosines(draws)
    except LandscapeError as e:
        notes.append(f"no direction cosines: {e}")
        return None
    n = cos.shape[0]
    if n < 2:  # one direction (a 1D random line) has no angle to another
        return None
    off = np.abs(cos[~np.eye(n, dtype=bool)])
    params = int(sum(a.size for a in draws[0][0].values()))
    # Two independent random directions of these per-filter norms: 1/sqrt(parameters) only
    # without normalization; the largest over the pairs, as the cosine reported is.
    flat = [d for draw in draws for d in draw]
    chance = chance_cosines(flat)
    return {
        "count": n,
        "parameters": params,
        "max_abs_cosine": float(off.max()) if off.size else math.nan,
        "random_scale": max(chance),
    }


def _value_counts(surf: SurfaceData, metric: str) -> dict[str, int]:
    z = np.asarray(surf.metrics[metric], dtype=np.float64)
    return {
        "points": int(z.size),
        "done": int(np.sum(surf.done)),
        "nonfinite": int(np.sum(~np.isfinite(z))),
        "nan": int(np.sum(np.isnan(z))),
        "inf": int(np.sum(np.isinf(z))),
    }


def _grid(surf: SurfaceData) -> dict[str, list[float] | None]:
    """Each axis as [min, max, num], the form a config's grid takes."""

    def axis(a: np.ndarray | None) -> list[float] | None:
        if a is None:
            return None
        return [float(a[0]), float(a[-1]), len(a)] if len(a) else [math.nan, math.nan, 0]

    return {"x": axis(surf.x), "y": axis(surf.y)}


def _directions_kind(prov: dict[str, Any]) -> str:
    """'random directions, norm filter'; the original code's files do not say which."""
    kind = prov.get("dir_kind") or "random"
    text = "directions of unknown kind" if kind == "unknown" else f"{kind} directions"
    norm = prov.get("norm")
    return text + (f", norm {norm}" if norm and norm != "unknown" else "")


def _num(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
