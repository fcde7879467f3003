"""Tests of landscape.metrics on analytic surfaces whose statistics are known in closed form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.metrics import (
    Estimate,
    compare_table,
    direction_cosines,
    line_barrier,
    repeat_stats,
    stats_to_jsonable,
    surface_stats,
)
from landscape.storage import SurfaceData

A, B = 2.0, 5.0  # bowl z = 1 + A x^2 + B y^2, steeper along y
X = np.linspace(-1.0, 1.0, 41)  # step 0.05
Y = np.linspace(-1.0, 1.0, 21)  # step 0.1: a non-square grid


def surface(z: np.ndarray, x: np.ndarray = X, y: np.ndarray | None = Y) -> SurfaceData:
    z = np.asarray(z, dtype=np.float64)
    done = np.ones(z.shape[-2:] if y is not None else z.shape[-1:], dtype=bool)
    repeats = z.shape[0] if z.ndim == (3 if y is not None else 2) else 1
    if repeats > 1:
        done = np.broadcast_to(done, z.shape).copy()
    return SurfaceData(x=x, y=y, metrics={"train_loss": z}, done=done, repeats=repeats)


def bowl(a: float = A, b: float = B, offset: float = 1.0) -> np.ndarray:
    gx, gy = np.meshgrid(X, Y)  # (ny, nx), as the storage schema orders 2D metrics
    return offset + a * gx**2 + b * gy**2


def test_convex_bowl_on_non_square_grid() -> None:
    s = surface_stats(surface(bowl()), abs_thresholds=(100.0,))
    assert s["points"] == 41 * 21 and s["nonfinite_count"] == 0
    assert s["centre_loss"] == pytest.approx(1.0)
    assert s["curvature_d1"] == pytest.approx(2 * A, abs=1e-6)
    assert s["curvature_d2"] == pytest.approx(2 * B, abs=1e-6)
    assert s["rising_fraction"] == 0.0
    assert s["negative_curvature_fraction"] == 0.0
    assert s["local_minima"] == 1
    assert s["min_distance"] == 0.0
    # B > A: the highest point of a disc of radius r is (0, +-r), on the y grid for r = 0.5, 1.
    assert s["sharpness_r0.5"] == pytest.approx(B * 0.25)
    assert s["sharpness_r1"] == pytest.approx(B * 1.0)
    # r = 0.25 is off the y grid: the best grid point in the disc is (0.15, 0.2).
    assert s["sharpness_r0.25"] == pytest.approx(A * 0.15**2 + B * 0.2**2)


def test_basin_width_matches_the_ellipse() -> None:
    s = surface_stats(surface(bowl()), rel_thresholds=(1.0,), abs_thresholds=(100.0,))
    # Loss doubles where A x^2 + B y^2 = 1; grid rays step (+-1, 0), (0, +-1) and (+-1, +-1).
    diag = np.array([0.05, 0.1]) / np.hypot(0.05, 0.1)
    widths = [1 / math.sqrt(A)] * 2 + [1 / math.sqrt(B)] * 2
    widths += [1 / math.sqrt(A * diag[0] ** 2 + B * diag[1] ** 2)] * 4
    assert s["basin_width_rel1"] == pytest.approx(np.mean(widths), abs=5e-3)
    assert s["basin_censored_rel1"] == 0.0
    # Never exceeded: every ray counts its full length and is censored.
    lengths = [1.0, 1.0, 1.0, 1.0] + [math.hypot(0.5, 1.0)] * 4
    assert s["basin_censored_abs100"] == 1.0
    assert s["basin_width_abs100"] == pytest.approx(np.mean(lengths))


def test_planted_local_minima_are_counted() -> None:
    gx, gy = np.meshgrid(X, Y)
    z = bowl()
    for px, py in [(-0.6, 0.5), (0.5, -0.4), (0.75, 0.7)]:  # on the grid, away from the centre
        z = z - 2.0 * np.exp(-((gx - px) ** 2 + (gy - py) ** 2) / (2 * 0.03**2))
    assert surface_stats(surface(bowl()))["local_minima"] == 1
    s = surface_stats(surface(z))
    assert s["local_minima"] == 4
    assert s["rising_fraction"] > 0  # the dips make the loss fall on the way out


def test_saddle_has_negative_curvature_and_rising_points() -> None:
    gx, gy = np.meshgrid(X, Y)
    s = surface_stats(surface(1 + gx**2 - gy**2))
    assert s["curvature_d1"] == pytest.approx(2.0, abs=1e-6)
    assert s["curvature_d2"] == pytest.approx(-2.0, abs=1e-6)
    assert s["negative_curvature_fraction"] == 1.0
    assert s["rising_fraction"] > 0.4


def test_total_variation_of_a_plane() -> None:
    gx, gy = np.meshgrid(X, Y)
    s = surface_stats(surface(3 * gx + 0 * gy))
    nx_pairs, ny_pairs = 40 * 21, 41 * 20
    expected = (nx_pairs * 3 * 0.05) / (nx_pairs + ny_pairs)
    assert s["total_variation"] == pytest.approx(expected)
    assert s["negative_curvature_fraction"] == 0.0  # flat along y: rounding is not curvature


def test_one_dimensional_surface() -> None:
    x = np.linspace(-1.0, 2.0, 61)  # centre at index 20, asymmetric extent
    s = surface_stats(surface(1 + 3 * x**2, x=x, y=None), rel_thresholds=(1.0,))
    assert s["curvature_d1"] == pytest.approx(6.0, abs=1e-6)
    assert "curvature_d2" not in s
    assert s["local_minima"] == 1 and s["rising_fraction"] == 0.0
    assert s["sharpness_r0.5"] == pytest.approx(0.75)
    assert s["basin_width_rel1"] == pytest.approx(1 / math.sqrt(3), abs=5e-3)


def test_nonfinite_values_are_counted_not_hidden() -> None:
    z = bowl()
    z[0, 0] = np.nan  # a corner never computed
    z[-1, 5] = np.inf  # a diverged point
    z[10, 22] = np.nan  # next to the centre (10, 20): inside the r=0.25 disc
    s = surface_stats(surface(z))
    assert s["nonfinite_count"] == 3 and s["diverged_count"] == 1
    # Still computed on the finite pairs; the bowl stays convex there.
    assert s["rising_fraction"] == 0.0
    assert s["rising_pairs"] < 41 * 21 - 1
    assert s["local_minima"] == 1  # (10, 23) is lowest among its known neighbours: not counted
    assert math.isfinite(s["total_variation"])
    assert math.isnan(s["sharpness_r0.25"])  # the disc holds a NaN: its maximum is unknown
    assert math.isnan(s["curvature_d1"])  # the fit window on the x axis holds it too
    assert s["curvature_d2"] == pytest.approx(2 * B, abs=1e-6)
    assert math.isnan(s["basin_width_rel0.1"])  # the +x ray meets the NaN before the crossing


def test_nan_centre_leaves_centre_relative_numbers_unknown() -> None:
    z = bowl()
    z[10, 20] = np.nan
    s = surface_stats(surface(z))
    for key in ("centre_loss", "sharpness_r0.5", "basin_width_rel1", "curvature_d1"):
        assert math.isnan(s[key]), key
    assert s["min_loss"] == pytest.approx(1.0 + A * 0.05**2)  # over the finite points
    assert s["local_minima"] == 0  # its neighbours all touch the unknown centre


def test_diverged_point_makes_sharpness_infinite() -> None:
    z = bowl()
    z[10, 24] = np.inf  # 0.2 from the centre along x
    s = surface_stats(surface(z), rel_thresholds=(10.0,))
    assert s["sharpness_r0.25"] == math.inf
    assert s["basin_censored_rel10"] < 1.0


def test_hessian_ratio_fraction() -> None:
    ratio = np.array([[0.0, 0.05, 0.2], [-0.5, np.nan, 0.01]])
    s = surface_stats(surface(bowl()), hessian_ratio=ratio, curvature_ratio_threshold=0.1)
    assert s["hessian_points"] == 5
    assert s["hessian_nonconvex_fraction"] == pytest.approx(2 / 5)
    assert "hessian_nonconvex_fraction" not in surface_stats(surface(bowl()))


def test_line_barrier_of_a_planted_bump() -> None:
    t = np.linspace(-0.5, 1.5, 81)
    h = 0.7
    r = line_barrier(surface(1 + h * np.exp(-((t - 0.5) ** 2) / 0.01), x=t, y=None))
    assert r["barrier"] == pytest.approx(h, abs=1e-6)
    assert r["barrier_t"] == pytest.approx(0.5)
    # A convex line between two minima has no barrier.
    flat = line_barrier(surface((t - 0.5) ** 2, x=t, y=None))
    assert flat["barrier"] == pytest.approx(0.0, abs=1e-12)


def test_line_barrier_rejects_surfaces_and_short_lines() -> None:
    with pytest.raises(LandscapeError, match="1D line"):
        line_barrier(surface(bowl()))
    t = np.linspace(0.0, 0.8, 9)
    with pytest.raises(LandscapeError, match="cover"):
        line_barrier(surface(t**2, x=t, y=None))


def test_repeat_stats_on_noisy_bowls() -> None:
    rng = np.random.default_rng(0)
    a_k = A + 0.1 * rng.standard_normal(5)
    z = np.stack([bowl(a=a) for a in a_k])
    est = repeat_stats(surface(z), "train_loss")
    e = est["curvature_d1"]
    assert e.n == 5 and len(e.values) == 5
    assert e.mean == pytest.approx(2 * a_k.mean(), abs=1e-6)
    assert abs(e.mean - 2 * A) < 0.3
    assert e.low <= e.mean <= e.high and e.low < e.high
    assert e.std == pytest.approx(np.std(2 * a_k, ddof=1), abs=1e-6)
    # Identical draws: a zero-width interval at the value.
    d2 = est["curvature_d2"]
    assert d2.low == pytest.approx(2 * B) and d2.high == pytest.approx(2 * B)
    # Seeded: the same call gives the same interval.
    assert repeat_stats(surface(z), "train_loss")["curvature_d1"] == e


def test_estimate_overlap_and_format() -> None:
    a = Estimate.from_values([1.0, 1.1, 0.9, 1.05, 0.95])
    b = Estimate.from_values([1.02, 1.12, 0.92, 1.07, 0.97])
    c = Estimate.from_values([5.0, 5.1, 4.9, 5.05, 4.95])
    assert a.overlaps(b) and b.overlaps(a)
    assert not a.overlaps(c) and not c.overlaps(a)
    assert a.format() == f"{a.mean:.3f} [{a.low:.3f}, {a.high:.3f}]"
    one = Estimate.from_values([0.5])
    assert one.n == 1 and math.isnan(one.std) and one.low == one.high == 0.5
    partial = Estimate.from_values([1.0, np.nan, 2.0, np.inf])
    assert partial.n == 2 and partial.nonfinite == 2 and partial.mean == 1.5
    assert "2 of 4 draws not finite" in partial.format()
    assert not Estimate.from_values([np.nan]).overlaps(a)


def test_direction_cosines_of_random_high_dimensional_vectors() -> None:
    rng = np.random.default_rng(1)
    draws = [
        [{"w": rng.standard_normal((300, 300)), "b": rng.standard_normal(10_000)} for _ in range(2)]
        for _ in range(3)
    ]
    cos = direction_cosines(draws)
    assert cos.shape == (6, 6)
    np.testing.assert_allclose(np.diag(cos), 1.0)
    off = cos[~np.eye(6, dtype=bool)]
    assert np.max(np.abs(off)) < 0.02
    np.testing.assert_allclose(cos, cos.T)
    # A direction and its negative point opposite ways.
    d = draws[0][0]
    flipped = direction_cosines([[d, {k: -v for k, v in d.items()}]])
    assert flipped[0, 1] == pytest.approx(-1.0)


def test_direction_cosines_rejects_mismatched_parameters() -> None:
    with pytest.raises(LandscapeError, match="r1/d0"):
        direction_cosines([[{"w": np.ones(3)}], [{"v": np.ones(3)}]])
    with pytest.raises(LandscapeError, match="all zeros"):
        direction_cosines([[{"w": np.ones(3)}, {"w": np.zeros(3)}]])


def test_compare_table_says_overlap_or_separate() -> None:
    a = {
        "sharpness_r1": Estimate.from_values([1.0, 1.1, 0.9]),
        "local_minima": Estimate.from_values([1, 1, 1]),
    }
    b = {
        "sharpness_r1": Estimate.from_values([1.05, 1.15, 0.95]),
        "local_minima": Estimate.from_values([3, 4, 5]),
    }
    table = compare_table({"resnet56": a, "resnet56-noshort": b})
    lines = table.splitlines()
    assert "resnet56" in lines[0] and "resnet56-noshort" in lines[0]
    assert "overlap" in next(ln for ln in lines if ln.startswith("sharpness_r1"))
    assert "separate" in next(ln for ln in lines if ln.startswith("local_minima"))
    assert "1 [1, 1]" in table  # counts print without decimals
    with pytest.raises(LandscapeError, match="did you mean sharpness_r1"):
        compare_table({"a": a}, keys=["sharpness_r1.0"])


def test_stats_to_jsonable_round_trips_through_json() -> None:
    est = repeat_stats(surface(np.stack([bowl(), bowl(a=3.0)])), "train_loss")
    est_nan = {"x": Estimate.from_values([np.nan, np.inf]), "y": math.inf}
    out = json.loads(json.dumps(stats_to_jsonable({**est, **est_nan}), allow_nan=False))
    assert out["curvature_d1"]["n"] == 2
    assert out["curvature_d1"]["mean"] == pytest.approx(2 * (A + 3.0) / 2)
    assert out["x"]["mean"] is None and out["x"]["values"] == [None, "inf"]
    assert out["y"] == "inf"


def test_user_mistakes_raise_landscape_error() -> None:
    with pytest.raises(LandscapeError, match="did you mean train_loss"):
        surface_stats(surface(bowl()), "trian_loss")
    with pytest.raises(LandscapeError, match="repeat_stats"):
        surface_stats(surface(np.stack([bowl(), bowl()])))
    with pytest.raises(LandscapeError, match="radii"):
        surface_stats(surface(bowl()), radii=(-0.5,))
    with pytest.raises(LandscapeError, match="fit_radius"):
        surface_stats(surface(bowl()), fit_radius=0.0)
    with pytest.raises(LandscapeError, match="strictly increasing"):
        surface_stats(surface(bowl(), x=X[::-1]))
