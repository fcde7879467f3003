"""Numbers that summarise a loss surface (curvature, sharpness, basins, convexity) with intervals.

Everything here is plain numpy on a `SurfaceData`.  Non-finite values (NaN: not computed,
+-inf: diverged) are counted and reported, never replaced; docs/metrics.md defines each number
and says how it treats them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import LandscapeError, unknown_name_message
from .storage import SurfaceData

# Index steps (diy, dix) of the rays used for basin widths.  Grid rays only: every sample is a
# value that was actually evaluated, so no interpolation can invent a crossing.
RAYS_1D: tuple[tuple[int, int], ...] = ((0, 1), (0, -1))
RAYS_2D: tuple[tuple[int, int], ...] = (
    (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1),
)  # fmt: skip
_EPS = float(np.finfo(np.float64).eps)


@dataclass
class Estimate:
    """A statistic over K direction draws: mean, spread and a bootstrap interval of the mean.

    `values` holds every draw, non-finite ones included; `n` counts the finite draws that the
    mean, `std` and the interval are computed from.
    """

    mean: float
    std: float
    low: float
    high: float
    n: int
    values: list[float] = field(default_factory=list)

    @classmethod
    def from_values(
        cls,
        values: Sequence[float],
        *,
        resamples: int = 2000,
        seed: int = 0,
        level: float = 0.95,
    ) -> Estimate:
        """Mean of the finite values with a seeded percentile-bootstrap interval at `level`."""
        if resamples < 1:
            raise LandscapeError(f"resamples must be at least 1, got {resamples}")
        if not 0.0 < level < 1.0:
            raise LandscapeError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
        all_values = [float(v) for v in values]
        v = np.asarray(all_values, dtype=np.float64)
        v = v[np.isfinite(v)]
        n = int(v.size)
        if n == 0:
            return cls(math.nan, math.nan, math.nan, math.nan, 0, all_values)
        mean = float(v.mean())
        if n == 1:
            return cls(mean, math.nan, mean, mean, 1, all_values)
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
        tail = (1.0 - level) / 2.0 * 100.0
        low, high = np.percentile(means, [tail, 100.0 - tail])
        # Identical draws give resample means that differ from `mean` in the last bit; keep the
        # interval around the mean it describes.
        low, high = min(float(low), mean), max(float(high), mean)
        return cls(mean, float(v.std(ddof=1)), low, high, n, all_values)

    @property
    def nonfinite(self) -> int:
        """How many draws were NaN or infinite (left out of the mean and interval)."""
        return len(self.values) - self.n

    def overlaps(self, other: Estimate) -> bool:
        """True when the two intervals share at least one point (False if either is NaN)."""
        return bool(self.low <= other.high and other.low <= self.high)

    def format(self, digits: int = 3) -> str:
        """'0.123 [0.100, 0.150]', with a note when some draws were not finite."""
        nums = (self.mean, self.low, self.high)
        if all(math.isfinite(u) and u == round(u) and abs(u) < 1e15 for u in nums):
            # Counts (local minima, points) read better without decimals.
            text = f"{int(self.mean)} [{int(self.low)}, {int(self.high)}]"
        else:
            a, b, c = (_fmt(u, digits) for u in nums)
            text = f"{a} [{b}, {c}]"
        if self.nonfinite:
            text += f" ({self.nonfinite} of {len(self.values)} draws not finite)"
        return text


# inf - inf (two diverged neighbours) is NaN by design here: every metric keeps finite pairs only.
@np.errstate(invalid="ignore", over="ignore")
def surface_stats(
    surf: SurfaceData,
    metric: str = "train_loss",
    *,
    radii: Sequence[float] = (0.25, 0.5, 1.0),
    rel_thresholds: Sequence[float] = (0.1, 1.0),
    abs_thresholds: Sequence[float] = (),
    fit_radius: float = 0.2,
    curvature_ratio_threshold: float = 0.1,
    hessian_ratio: np.ndarray | None = None,
) -> dict[str, float]:
    """Summary numbers of one draw of a 1D or 2D surface; docs/metrics.md defines each key.

    Keys built from a number use its shortest form: radius 1.0 gives "sharpness_r1",
    threshold 0.1 gives "basin_width_rel0.1".
    """
    _check_positive("radii", radii)
    _check_positive("rel_thresholds", rel_thresholds)
    _check_positive("abs_thresholds", abs_thresholds)
    _check_positive("fit_radius", [fit_radius])
    if not (math.isfinite(curvature_ratio_threshold) and curvature_ratio_threshold >= 0):
        raise LandscapeError(
            f"curvature_ratio_threshold must be a number >= 0 (e.g. 0.1), "
            f"got {curvature_ratio_threshold}"
        )
    g = _Grid.from_surface(surf, metric)
    z, c = g.z, g.centre
    finite = np.isfinite(z)
    dist = g.distances()

    out: dict[str, float] = {
        "points": float(z.size),
        "nonfinite_count": float(z.size - finite.sum()),
        "diverged_count": float(np.isinf(z).sum()),
        "centre_loss": c,
    }
    if finite.any():
        i_min = np.unravel_index(np.argmin(np.where(finite, z, np.inf)), z.shape)
        out["min_loss"] = float(z[i_min])
        out["min_distance"] = float(dist[i_min])
    else:
        out["min_loss"] = out["min_distance"] = math.nan

    for axis in range(g.ndim):
        t, v = g.axis_line(axis)
        curv, used = _curvature(t, v, fit_radius)
        out[f"curvature_d{axis + 1}"] = curv
        out[f"curvature_points_d{axis + 1}"] = float(used)

    for r in radii:
        disc = z[dist <= _widen(r)]
        if not math.isfinite(c) or np.isnan(disc).any():
            out[f"sharpness_r{r:g}"] = math.nan
        else:
            # +inf in the disc (diverged) is a true maximum, so sharpness is +inf there.
            out[f"sharpness_r{r:g}"] = float(np.max(disc)) - c

    rays = g.rays()
    for kind, thresholds in (("rel", rel_thresholds), ("abs", abs_thresholds)):
        for thr in thresholds:
            level = c + thr * abs(c) if kind == "rel" else c + thr
            width, censored = _basin(rays, level, math.isfinite(c))
            out[f"basin_width_{kind}{thr:g}"] = width
            out[f"basin_censored_{kind}{thr:g}"] = censored

    out["rising_fraction"], out["rising_pairs"] = _rising(g)
    out["negative_curvature_fraction"] = _negative_curvature(g)
    out["local_minima"] = float(_strict_minima(z).sum())
    out["total_variation"] = _total_variation(z)

    if hessian_ratio is not None:
        h = np.asarray(hessian_ratio, dtype=np.float64)
        ok = np.isfinite(h)
        out["hessian_points"] = float(ok.sum())
        out["hessian_nonconvex_fraction"] = (
            float(np.mean(np.abs(h[ok]) > curvature_ratio_threshold)) if ok.any() else math.nan
        )
    return out


def line_barrier(surf: SurfaceData, metric: str = "train_loss") -> dict[str, float]:
    """Height of the loss above the straight chord between A (x=0) and B (x=1) on a 1D line.

    Returns "barrier" (max of loss(t) minus the chord, >= 0 since the chord meets the loss at
    the ends), "barrier_t" (where), "loss_a", "loss_b", "max_loss", "nonfinite_count", "points".
    """
    g = _Grid.from_surface(surf, metric)
    if g.ndim != 1:
        raise LandscapeError(
            f"{_where(surf)}line_barrier needs a 1D line between two checkpoints, "
            "got a 2D surface; compute a line with the grid's y axis left out"
        )
    x, z = g.x, g.z[0]
    if x[0] > 1e-9 or x[-1] < 1.0 - 1e-9:
        raise LandscapeError(
            f"{_where(surf)}the line runs from x={x[0]:g} to x={x[-1]:g} but must reach 0 (A) "
            "and 1 (B); widen the grid to cover [0, 1]"
        )
    ia, ib = int(np.argmin(np.abs(x))), int(np.argmin(np.abs(x - 1.0)))
    if ib <= ia:
        raise LandscapeError(
            f"{_where(surf)}the grid has {len(x)} points from {x[0]:g} to {x[-1]:g}, too coarse "
            "to tell A from B; use more points"
        )
    t, v = x[ia : ib + 1], z[ia : ib + 1]
    la, lb = float(z[ia]), float(z[ib])
    out = {
        "loss_a": la,
        "loss_b": lb,
        "points": float(z.size),
        "nonfinite_count": float(np.sum(~np.isfinite(z))),
    }
    if np.isnan(v).any() or np.isneginf(v).any() or not (math.isfinite(la) and math.isfinite(lb)):
        return {**out, "barrier": math.nan, "barrier_t": math.nan, "max_loss": math.nan}
    if np.isposinf(v).any():
        # A loss that diverged between A and B is an infinite barrier; report where it starts.
        i = int(np.argmax(np.isposinf(v)))
        return {**out, "barrier": math.inf, "barrier_t": float(t[i]), "max_loss": math.inf}
    chord = la + (t - t[0]) / (t[-1] - t[0]) * (lb - la)
    gap = v - chord
    i = int(np.argmax(gap))
    return {**out, "barrier": float(gap[i]), "barrier_t": float(t[i]), "max_loss": float(v.max())}


def repeat_stats(
    surf: SurfaceData,
    metric: str = "train_loss",
    *,
    resamples: int = 2000,
    seed: int = 0,
    **kw: Any,
) -> dict[str, Estimate]:
    """`surface_stats` of each of the K direction draws, combined into Estimates.

    `kw` goes to `surface_stats`; a `hessian_ratio` with a leading axis of length K is split
    so that draw k gets `hessian_ratio[k]`.
    """
    hess = kw.pop("hessian_ratio", None)
    per_draw: list[dict[str, float]] = []
    for k in range(surf.repeats):
        h = hess
        if hess is not None and surf.repeats > 1:
            arr = np.asarray(hess)
            if arr.ndim == surf.ndim + 1 and arr.shape[0] == surf.repeats:
                h = arr[k]
        per_draw.append(surface_stats(surf.repeat(k), metric, hessian_ratio=h, **kw))
    return {
        key: Estimate.from_values([d[key] for d in per_draw], resamples=resamples, seed=seed)
        for key in per_draw[0]
    }


def direction_cosines(directions: Sequence[Sequence[Mapping[str, Any]]]) -> np.ndarray:
    """Cosine similarity between all K*d directions, flattened over their parameters.

    Row and column k*d + i is direction i of draw k (draws may hold different numbers of
    directions; the order is then draw by draw).  The matrix is built one parameter at a time,
    so memory stays at one parameter's worth of vectors.
    """
    flat = [d for draw in directions for d in draw]
    labels = [f"r{k}/d{i}" for k, draw in enumerate(directions) for i in range(len(draw))]
    if not flat:
        raise LandscapeError("no directions given; pass at least one draw with one direction")
    names = list(flat[0])
    for label, d in zip(labels, flat, strict=True):
        if set(d) != set(names):
            extra = sorted(set(d) ^ set(names))
            raise LandscapeError(
                f"direction {label} has different parameters from r0/d0 ({', '.join(extra[:5])}); "
                "all directions must come from the same model"
            )
    gram = np.zeros((len(flat), len(flat)))
    for name in names:
        parts = [np.asarray(d[name], dtype=np.float64) for d in flat]
        for label, p in zip(labels, parts, strict=True):
            if p.shape != parts[0].shape:
                raise LandscapeError(
                    f"direction {label} parameter {name!r} has shape {p.shape}, r0/d0 has "
                    f"{parts[0].shape}; all directions must come from the same model"
                )
            if not np.all(np.isfinite(p)):
                raise LandscapeError(
                    f"direction {label} parameter {name!r} holds NaN or inf; regenerate it"
                )
        block = np.stack([p.ravel() for p in parts])  # (K*d, size of this parameter)
        gram += block @ block.T
    norms = np.sqrt(np.diag(gram))
    for label, nrm in zip(labels, norms, strict=True):
        if nrm == 0:
            raise LandscapeError(
                f"direction {label} is all zeros, so it has no angle; regenerate it"
            )
    cos = np.clip(gram / np.outer(norms, norms), -1.0, 1.0)
    np.fill_diagonal(cos, 1.0)
    return cos


def chance_cosine(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """The standard deviation of the cosine between two independent random directions that
    have the per-filter norms of a and b (a filter: a row along dim 0; a 0-d or 1-d tensor is
    one filter), each filter's entries Gaussian:

        sqrt(sum_f (|a_f| |b_f|)^2 / n_f) / (|a| |b|),  n_f the filter's number of entries.

    For directions drawn without normalization it is about 1/sqrt(parameters); filter
    normalization gives each filter the weights' norm, so where a few small filters hold much
    of the weights' norm (a first convolution of 9 entries per filter, say) it is far larger.
    """
    return chance_cosines([a, b])[0]


def chance_cosines(directions: Sequence[Mapping[str, Any]]) -> list[float]:
    """chance_cosine of every pair (i, j), i < j, in that order; each direction's per-filter
    norms are taken once."""
    norms = [_filter_norms(d) for d in directions]
    out = []
    for i, fa_all in enumerate(norms):
        for fb_all in norms[i + 1 :]:
            num = 0.0
            norm_a = norm_b = 0.0
            for name, (fa, entries) in fa_all.items():
                fb = fb_all[name][0]
                num += float(np.sum((fa * fb) ** 2)) / entries
                norm_a += float(np.sum(fa**2))
                norm_b += float(np.sum(fb**2))
            zero = norm_a == 0 or norm_b == 0
            out.append(math.nan if zero else math.sqrt(num) / math.sqrt(norm_a * norm_b))
    return out


def _filter_norms(d: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, int]]:
    """Per parameter: the norms of its filters (rows along dim 0; a 0-d or 1-d tensor is one
    filter), in float64, and each filter's number of entries."""
    out = {}
    for name, v in d.items():
        p = np.asarray(v, dtype=np.float64)
        rows = 1 if p.ndim <= 1 else p.shape[0]
        out[name] = (np.linalg.norm(p.reshape(rows, -1), axis=1), max(1, p.size // rows))
    return out


def compare_table(
    named: Mapping[str, Mapping[str, Estimate | float]],
    keys: Sequence[str] | None = None,
) -> str:
    """Plain-text table: one column per run, one row per statistic, "mean [low, high]".

    With two or more runs a last column says whether the intervals of the first two runs
    "overlap" or are "separate" ("n/a" when either has fewer than two finite draws).
    """
    runs = list(named)
    if not runs:
        raise LandscapeError("no runs to compare; pass a mapping of run name -> statistics")
    known: list[str] = []
    for stats in named.values():
        known += [k for k in stats if k not in known]
    if keys is None:
        keys = known
    for k in keys:
        if k not in known:
            raise LandscapeError(unknown_name_message("statistic", k, known))
    header = ["metric", *runs]
    if len(runs) >= 2:
        header.append(f"{runs[0]} vs {runs[1]}")
    rows = [header]
    for k in keys:
        ests = [_as_estimate(named[r].get(k)) for r in runs]
        row = [k, *("-" if e is None else e.format() for e in ests)]
        if len(runs) >= 2:
            a, b = ests[0], ests[1]
            if a is None or b is None or a.n < 2 or b.n < 2:
                row.append("n/a")
            else:
                row.append("overlap" if a.overlaps(b) else "separate")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(runs) >= 2 and all(r[-1] == "n/a" for r in rows[1:]):
        lines.append(
            f"({header[-1]}: intervals need two or more direction draws per file; "
            "set surface.repeats)"
        )
    return "\n".join(lines)


def stats_to_jsonable(stats: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy: Estimates become dicts, NaN becomes null, +-inf become "inf"/"-inf"."""
    return {str(k): _jsonable(v) for k, v in stats.items()}


@dataclass(frozen=True)
class _Grid:
    """One draw's values as [iy, ix] (a 1D line is a single row) and the centre's index."""

    z: np.ndarray  # (ny, nx); ny == 1 for a 1D line
    x: np.ndarray  # (nx,)
    y: np.ndarray  # (ny,); [0.0] for a 1D line
    iy0: int
    ix0: int
    ndim: int

    @classmethod
    def from_surface(cls, surf: SurfaceData, metric: str) -> _Grid:
        where = _where(surf)
        if metric not in surf.metrics:
            raise LandscapeError(where + unknown_name_message("metric", metric, surf.metrics))
        if surf.repeats != 1:
            raise LandscapeError(
                f"{where}has {surf.repeats} direction draws; use repeat_stats() for all of them "
                "or surf.repeat(k) for one"
            )
        z = np.asarray(surf.metrics[metric], dtype=np.float64)
        if z.shape != surf.shape:
            raise LandscapeError(
                f"{where}metric {metric!r} has shape {z.shape} but the grid is {surf.shape}; "
                "the file is damaged, recompute the surface"
            )
        x = _axis(surf.x, "x", where)
        y = np.zeros(1) if surf.y is None else _axis(surf.y, "y", where)
        if surf.y is None:
            z = z[None, :]
        return cls(z, x, y, int(np.argmin(np.abs(y))), int(np.argmin(np.abs(x))), surf.ndim)

    @property
    def centre(self) -> float:
        return float(self.z[self.iy0, self.ix0])

    def distances(self) -> np.ndarray:
        """Euclidean distance of every grid point from the centre point, (ny, nx)."""
        return np.hypot(self.x[None, :] - self.x[self.ix0], self.y[:, None] - self.y[self.iy0])

    def axis_line(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Offsets from the centre and values along direction `axis` through the centre."""
        if axis == 0:
            return self.x - self.x[self.ix0], self.z[self.iy0, :]
        return self.y - self.y[self.iy0], self.z[:, self.ix0]

    def rays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(distances, values) along each grid ray from the centre, the centre first."""
        ny, nx = self.z.shape
        out = []
        for sy, sx in RAYS_1D if self.ndim == 1 else RAYS_2D:
            steps = min(_room(self.iy0, ny, sy), _room(self.ix0, nx, sx))
            k = np.arange(steps + 1)
            iy, ix = self.iy0 + sy * k, self.ix0 + sx * k
            d = np.hypot(self.x[ix] - self.x[self.ix0], self.y[iy] - self.y[self.iy0])
            out.append((d, self.z[iy, ix]))
        return out


def _axis(a: np.ndarray, name: str, where: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)) or np.any(np.diff(a) <= 0):
        raise LandscapeError(
            f"{where}{name} coordinates must be finite and strictly increasing; "
            "rebuild the grid with linspace(min, max, num)"
        )
    return a


def _room(i0: int, n: int, step: int) -> int:
    """How many steps of `step` fit from index i0 inside 0..n-1."""
    if step > 0:
        return n - 1 - i0
    if step < 0:
        return i0
    return np.iinfo(np.int64).max  # no movement along this axis: the other axis decides


def _widen(r: float) -> float:
    # Grid coordinates come from linspace, so a point meant to sit exactly at radius r can be
    # a few ulps outside it; include those.
    return r * (1.0 + 1e-9) + 1e-12


def _curvature(t: np.ndarray, v: np.ndarray, fit_radius: float) -> tuple[float, int]:
    """2a of the least-squares a*t^2 + b*t + c over |t| <= fit_radius, and the points used."""
    win = np.abs(t) <= _widen(fit_radius)
    used = int(win.sum())
    # A non-finite value in the window means the quadratic model does not hold there.
    if used < 3 or not np.all(np.isfinite(v[win])):
        return math.nan, used
    u = t[win] / fit_radius  # scaled to [-1, 1] so the normal equations stay well conditioned
    a = np.stack([u * u, u, np.ones_like(u)], axis=1)
    coef, *_ = np.linalg.lstsq(a, v[win], rcond=None)
    return float(2.0 * coef[0] / fit_radius**2), used


def _basin(
    rays: list[tuple[np.ndarray, np.ndarray]], level: float, ok: bool
) -> tuple[float, float]:
    """Mean over rays of the distance where the values first exceed `level`; censored share."""
    if not ok:
        return math.nan, math.nan
    widths, censored = [], []
    for d, v in rays:
        if len(d) < 2:
            continue  # the centre sits on this edge: the ray holds no information
        above = v > level  # +inf (diverged) is above; NaN compares False and is caught below
        unknown = np.isnan(v) | np.isneginf(v)
        stop = above | unknown
        if not stop.any():
            widths.append(float(d[-1]))
            censored.append(True)
            continue
        i = int(np.argmax(stop))
        if unknown[i]:
            return math.nan, math.nan  # a gap before the crossing: the width is unknown
        if i == 0:
            widths.append(0.0)
        elif np.isposinf(v[i]):
            widths.append(float(d[i - 1] + d[i]) / 2.0)  # no slope to interpolate: midpoint
        else:
            frac = (level - v[i - 1]) / (v[i] - v[i - 1])
            widths.append(float(d[i - 1] + frac * (d[i] - d[i - 1])))
        censored.append(False)
    if not widths:
        return math.nan, math.nan
    return float(np.mean(widths)), float(np.mean(censored))


def _rising(g: _Grid) -> tuple[float, float]:
    """Share of finite (point, neighbour toward the centre) pairs where the neighbour is higher."""
    iy, ix = np.indices(g.z.shape)
    ny_, nx_ = iy - np.sign(iy - g.iy0), ix - np.sign(ix - g.ix0)
    off = (iy != g.iy0) | (ix != g.ix0)
    here, inner = g.z[off], g.z[ny_[off], nx_[off]]
    ok = np.isfinite(here) & np.isfinite(inner)
    pairs = int(ok.sum())
    if pairs == 0:
        return math.nan, 0.0
    return float(np.sum((inner > here) & ok) / pairs), float(pairs)


def _second_difference(z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At interior points of the last axis: a positive multiple of d2z/dc2, its rounding noise."""
    hl, hr = np.diff(c)[:-1], np.diff(c)[1:]
    zl, zc, zr = z[..., :-2], z[..., 1:-1], z[..., 2:]
    s = hr * zl - (hl + hr) * zc + hl * zr
    noise = 16 * _EPS * (hr * np.abs(zl) + (hl + hr) * np.abs(zc) + hl * np.abs(zr))
    return s, noise


def _negative_curvature(g: _Grid) -> float:
    """Share of interior points where the second difference along x or y is below zero."""
    ny, nx = g.z.shape
    if nx < 3 or (g.ndim == 2 and ny < 3):
        return math.nan
    sx, nsx = _second_difference(g.z, g.x)  # (ny, nx-2)
    neg = sx < -nsx
    ok = np.isfinite(sx)
    if g.ndim == 2:
        sy, nsy = _second_difference(g.z.T, g.y)  # (nx, ny-2)
        sy, nsy = sy.T[:, 1:-1], nsy.T[:, 1:-1]  # (ny-2, nx-2)
        neg = neg[1:-1] | (sy < -nsy)
        ok = ok[1:-1] & np.isfinite(sy)
    total = int(ok.sum())
    return float(np.sum(neg & ok) / total) if total else math.nan


def _strict_minima(z: np.ndarray) -> np.ndarray:
    """Mask of finite points strictly below each of their neighbours (8-neighbourhood).

    Neighbours off the grid are absent, so a 1-row grid compares its 2 x-neighbours.  A NaN
    neighbour leaves the answer unknown, so the point is not counted: a half-computed surface
    must not show minima along the edge of what has been computed.
    """
    ny, nx = z.shape
    pad = np.full((ny + 2, nx + 2), np.inf)  # off the grid: higher than anything
    pad[1:-1, 1:-1] = z
    is_min = np.isfinite(z)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            # z < NaN is False, so an unknown neighbour rules the point out.
            is_min &= z < pad[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]
    return is_min


def _total_variation(z: np.ndarray) -> float:
    """Mean |difference| over finite neighbour pairs along x and y."""
    diffs = [np.diff(z, axis=1).ravel(), np.diff(z, axis=0).ravel()]
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]  # a pair with a NaN or inf member gives a non-finite difference
    return float(np.mean(np.abs(d))) if d.size else math.nan


def _check_positive(name: str, values: Sequence[float]) -> None:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise LandscapeError(f"{name} must be a list of numbers, got {values!r}; e.g. [0.5, 1.0]")
    for v in values:
        if not (isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0):
            raise LandscapeError(f"{name} must hold positive numbers, got {v!r}; e.g. 0.5")


def _where(surf: SurfaceData) -> str:
    return f"{surf.path}: " if surf.path else ""


def _fmt(v: float, digits: int) -> str:
    if not math.isfinite(v):
        return str(v)
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}f}"
    return f"{v:.{max(digits - 1, 0)}e}"


def _as_estimate(v: Estimate | float | None) -> Estimate | None:
    if v is None or isinstance(v, Estimate):
        return v
    return Estimate.from_values([float(v)])


def _jsonable(v: Any) -> Any:
    if isinstance(v, Estimate):
        return {
            "mean": _jsonable(v.mean),
            "std": _jsonable(v.std),
            "low": _jsonable(v.low),
            "high": _jsonable(v.high),
            "n": v.n,
            "values": [_jsonable(u) for u in v.values],
        }
    if isinstance(v, Mapping):
        return {str(k): _jsonable(u) for k, u in v.items()}
    if isinstance(v, np.ndarray):
        return [_jsonable(u) for u in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return v
