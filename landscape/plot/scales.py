"""The numbers behind the figures: which values are drawn, the colour range, the contour levels
and the heights of a 3D surface.

Colour range defaults (all values in the metric's own units; with `log` they are mapped by
log10 like the data):

* vmin: the smallest finite value.
* vmax: the largest finite value; for a loss (without `log`) the largest finite value not
  above ``min + 5 * (median - min)``, so that a few diverged points do not flatten the basin.
  (The paper fixed vmax = 10 for CIFAR-10 losses, about four times the chance-level loss;
  the cap is the same idea measured on the data.)
* levels: evenly spaced round values between vmin and vmax (15 to 30 of them for the
  default 30: the step is 1, 2, 2.5 or 5 times a power of ten), plus vmin and vmax
  themselves, so that every finite value inside the range falls in a band and the labels
  on contour lines read 0.5, 1, 1.5 rather than 0.4717.

Points never computed (NaN) are gaps.  Diverged points (+inf) take the colour beyond the top of
the scale in heat maps and filled contours (the colour bar gets an arrow), form the rim of a 3D
surface, and are gaps in contour lines and curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..errors import EmptyRangeError, LandscapeError
from ..storage import SurfaceData

DEFAULT_LEVELS = 30
# How far above the minimum, in multiples of (median - minimum), the default loss scale reaches.
_ROBUST_SPAN = 5.0
# A 3D surface is drawn through a grid at least this fine (see surface3d_heights).
_SURFACE3D_POINTS = 100

Levels = int | Sequence[float] | None


def lower_is_better(metric: str) -> bool:
    """Every metric but an accuracy reads like a loss: low is good, high is clipped."""
    return not metric.endswith("_acc")


def masked_values(surf: SurfaceData, metric: str, log: bool) -> np.ma.MaskedArray:
    """The metric as a float array with non-finite (and, with `log`, non-positive) masked."""
    z = np.asarray(surf.metrics[metric], dtype=np.float64)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)
    return np.ma.masked_invalid(z)


def scaled(value: float, log: bool, what: str) -> float:
    """A user bound given in the metric's units, mapped like the data."""
    if not log:
        return float(value)
    if value <= 0:
        raise LandscapeError(
            f"{what} {value} is not positive, so it has no log; drop log or raise it"
        )
    return float(np.log10(value))


def color_range(
    finite: np.ndarray,
    metric: str,
    log: bool,
    vmin: float | None,
    vmax: float | None,
    where: str | None,
) -> tuple[float, float]:
    """(lo, hi) of the colour scale in plotted units; see the module docstring for defaults."""
    finite = np.asarray(finite, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise LandscapeError(
            f"{where}: metric {metric!r} has no finite{' positive' if log else ''} values to plot"
        )
    dmin, dmax = float(finite.min()), float(finite.max())
    lo = scaled(vmin, log, "vmin") if vmin is not None else dmin
    if vmax is not None:
        hi = scaled(vmax, log, "vmax")
    else:
        hi = dmax
        if lower_is_better(metric) and not log:
            cap = dmin + _ROBUST_SPAN * (float(np.median(finite)) - dmin)
            if cap > lo:
                # The largest value under the cap: a smooth rim ends near the cap, while a
                # few outliers above it do not stretch the scale at all.
                hi = float(finite[finite <= cap].max())
    if hi <= lo:
        if vmin is not None or vmax is not None:
            raise EmptyRangeError(
                f"colour range is empty: vmin {lo:.4g} is not below vmax {hi:.4g} "
                f"(data span {dmin:.4g}..{dmax:.4g}); change vmin or vmax"
            )
        # A flat surface: widen the range so that it still gets one colour and a colour bar.
        pad = 0.5 * abs(lo) or 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def contour_levels(levels: Levels, lo: float, hi: float, log: bool) -> np.ndarray:
    if levels is None:
        levels = DEFAULT_LEVELS
    if isinstance(levels, int | np.integer):
        if levels < 2:
            raise LandscapeError(f"levels must be at least 2, got {levels}")
        locator = MaxNLocator(nbins=max(int(levels) - 1, 1), steps=[1, 2, 2.5, 5, 10])
        ticks = np.asarray(locator.tick_values(lo, hi))
        tol = 1e-9 * (hi - lo)
        inner = ticks[(ticks > lo + tol) & (ticks < hi - tol)]
        return np.concatenate([[lo], inner, [hi]])
    arr = np.array([scaled(v, log, "level") for v in levels], dtype=np.float64)
    if arr.size < 2 or np.any(np.diff(arr) <= 0):
        raise LandscapeError(f"levels must be 2 or more increasing numbers, got {list(levels)}")
    return arr


def band_range(kind: str, lo: float, hi: float, levels: np.ndarray) -> tuple[float, float]:
    """The values a panel colours: filled contours stop at their outer levels."""
    return (float(levels[0]), float(levels[-1])) if kind == "contourf" else (lo, hi)


def extend_of(z: np.ma.MaskedArray, lo: float, hi: float) -> str:
    """Which ends of the colour bar need arrows for values beyond the range."""
    v = z.compressed()
    diverged = bool(np.isposinf(np.ma.getdata(z)).any())  # masked, but drawn above the range
    below, above = bool((v < lo).any()), bool((v > hi).any()) or diverged
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (below, above), "both"
    )


def surface3d_heights(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The heights a 3D surface is drawn with: z (ny, nx) clipped to [lo, hi] and refined to
    at least _SURFACE3D_POINTS per axis by a monotone cubic through every point, along x and
    then along y.

    Values above the range, diverged ones (+inf) included, form a flat rim at the top as in the
    paper's renders; values below it sit on the floor.  The refined surface passes through
    every measured value and, being monotone between neighbours, neither overshoots nor dips
    between them: it only replaces a coarse grid's flat facets and the zigzag where they meet
    the rim by a smooth surface.  NaN (never computed) stays a hole over the cells around its
    point (filled with the mean for the cubic's sake in the cells beyond).
    """
    with np.errstate(invalid="ignore"):
        clipped = np.where(np.isnan(z), np.nan, np.clip(z, lo, hi))
    factors = [max(1, -(-(_SURFACE3D_POINTS - 1) // (len(v) - 1))) for v in (y, x)]  # ceil
    holes = np.isnan(clipped)
    filled = np.where(holes, np.nanmean(clipped) if not holes.all() else hi, clipped)
    fine = _monotone_cubic(_monotone_cubic(filled, factors[1]).T, factors[0]).T
    # A hole covers the cells that touch its point, as plot_surface leaves a coarse one.
    ly, lx = (_linear_weights(len(v), f) for v, f in zip((y, x), factors, strict=True))
    fine[(ly != 0) @ holes @ (lx != 0).T > 0] = np.nan
    return lx @ x, ly @ y, np.clip(fine, lo, hi)


def _monotone_cubic(z: np.ndarray, factor: int) -> np.ndarray:
    """Rows of z (evenly spaced samples) with `factor` steps between neighbours, on the
    monotone piecewise cubic of Fritsch and Carlson (as scipy's PCHIP): exact at the samples,
    and between two of them it stays within their values."""
    if factor == 1:
        return z.copy()
    d = np.diff(z, axis=-1)  # (rows, n - 1) slopes of the chords
    m = np.zeros_like(z)  # slopes at the samples
    inner = d[:, :-1] * d[:, 1:] > 0  # same sign on both sides, else a flat tangent
    with np.errstate(divide="ignore", invalid="ignore"):
        m[:, 1:-1] = np.where(inner, 2 * d[:, :-1] * d[:, 1:] / (d[:, :-1] + d[:, 1:]), 0.0)
    if z.shape[-1] == 2:
        m[:, 0] = m[:, -1] = d[:, 0]
    else:
        for end, (d0, d1) in ((0, (d[:, 0], d[:, 1])), (-1, (d[:, -1], d[:, -2]))):
            e = (3 * d0 - d1) / 2  # the three-point end slope, kept shape-preserving
            e = np.where(np.sign(e) != np.sign(d0), 0.0, e)
            m[:, end] = np.where((np.sign(d0) != np.sign(d1)) & (abs(e) > 3 * abs(d0)), 3 * d0, e)
    n = z.shape[-1]
    k = np.minimum(np.arange((n - 1) * factor + 1) // factor, n - 2)  # the cell of each point
    t = np.arange((n - 1) * factor + 1) / factor - k
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * z[:, k] + h10 * m[:, k] + h01 * z[:, k + 1] + h11 * m[:, k + 1]


def _linear_weights(n: int, factor: int) -> np.ndarray:
    """Weights ((n - 1) * factor + 1, n) of the straight lines between neighbouring samples."""
    rows = np.zeros(((n - 1) * factor + 1, n))
    for i in range(len(rows)):
        k, step = divmod(i, factor)
        if k == n - 1:
            rows[i, k] = 1.0
        else:
            rows[i, k], rows[i, k + 1] = 1.0 - step / factor, step / factor
    return rows


def diverged_above(z: np.ma.MaskedArray, lo: float, hi: float) -> np.ma.MaskedArray:
    """z with its diverged (+inf) points unmasked at a value above the range, so that they take
    the colour beyond the top of the scale; points never computed (NaN) stay gaps."""
    data = np.ma.getdata(z)
    diverged = np.isposinf(data)
    if not diverged.any():
        return z
    return np.ma.masked_array(
        np.where(diverged, hi + (hi - lo), data), np.ma.getmaskarray(z) & ~diverged
    )
