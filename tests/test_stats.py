"""Tests of landscape.stats: the numbers of whole surface files, their table and their JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import write_surface_file

from landscape.errors import LandscapeError
from landscape.metrics import Estimate, stats_to_jsonable
from landscape.stats import StatsOptions, compare_stats, file_stats, format_stats
from landscape.storage import SurfaceWriter, create_surface_file, write_extra

X = np.linspace(-1.0, 1.0, 21)
Y = np.linspace(-0.5, 0.5, 11)  # not square, so a swapped axis shows up
FAST = StatsOptions(resamples=200)


def bowl(scale: float = 1.0) -> np.ndarray:
    xx, yy = np.meshgrid(X, Y)  # (ny, nx)
    return scale * (xx**2 + 2 * yy**2) + 0.1


def write_surface(
    path: Path,
    z: np.ndarray,
    x: np.ndarray = X,
    y: np.ndarray | None = Y,
    draws: int = 1,
    **attrs: object,
) -> Path:
    """A finished surface file: `z` as train_loss, z + 0.2 as test_loss, 100 - z as train_acc."""
    rng = np.random.default_rng(len(path.name))
    ndir = 1 if y is None else 2
    directions = [
        [
            {"conv.weight": rng.normal(size=(4, 3)), "fc.bias": rng.normal(size=5)}
            for _ in range(ndir)
        ]
        for _ in range(draws)
    ]
    attrs = {"title": path.stem, "model": "tiny", "checkpoint_sha256": "ab" * 32, **attrs}
    create_surface_file(path, x, y, ["train_loss", "test_loss", "train_acc"], directions, attrs)
    index = tuple(np.indices(z.shape).reshape(z.ndim, -1))
    with SurfaceWriter(path) as w:
        z = z.ravel()
        w.write({"train_loss": z, "test_loss": z + 0.2, "train_acc": 100 - z}, index)
    return path


def test_convex_bowl(tmp_path: Path) -> None:
    s = file_stats(write_surface(tmp_path / "bowl.h5", bowl()), options=FAST)
    assert s["metric"] == "train_loss"
    assert s["title"] == "bowl" and s["repeats"] == 1 and s["ndim"] == 2
    assert s["grid"] == {"x": [-1.0, 1.0, 21], "y": [-0.5, 0.5, 11]}
    st = s["stats"]
    assert all(isinstance(e, Estimate) for e in st.values())
    assert st["rising_fraction"].mean == 0.0 and st["rising_fraction"].n == 1
    assert st["local_minima"].mean == 1.0
    assert st["centre_loss"].mean == pytest.approx(0.1)
    assert st["curvature_d1"].mean == pytest.approx(2.0)
    assert st["curvature_d2"].mean == pytest.approx(4.0)
    assert "barrier" not in st and "hessian_nonconvex_fraction" not in st
    assert s["values"] == {"points": 231, "done": 231, "nonfinite": 0, "nan": 0, "inf": 0}
    assert s["provenance"]["model"] == "tiny"
    assert s["provenance"]["checkpoint_sha256"] == "ab" * 32
    assert s["provenance"]["torch_version"] is None  # absent attributes are None, not missing
    assert s["notes"] == []


def test_radii_and_metric_choice(tmp_path: Path) -> None:
    path = write_surface(tmp_path / "bowl.h5", bowl())
    s = file_stats(path, "test_loss", radii=[0.5, 2], options=FAST)
    assert s["metric"] == "test_loss"
    assert s["stats"]["centre_loss"].mean == pytest.approx(0.3)
    assert {"sharpness_r0.5", "sharpness_r2"} <= set(s["stats"])
    assert "sharpness_r1" not in s["stats"]
    # Radius 2 covers the whole grid: the highest corner is 1 + 2 * 0.25 above the centre.
    assert s["stats"]["sharpness_r2"].mean == pytest.approx(1.5)
    with pytest.raises(LandscapeError, match="did you mean"):
        file_stats(path, "train_los")


def test_accuracy_metric_gets_a_note(tmp_path: Path) -> None:
    path = write_surface(tmp_path / "bowl.h5", bowl())
    s = file_stats(path, "train_acc", options=FAST)
    assert s["metric"] == "train_acc"
    assert s["stats"]["curvature_d1"].mean == pytest.approx(-2.0)
    assert len(s["notes"]) == 1 and "train_acc is treated as a loss" in s["notes"][0]
    assert "note: train_acc is treated as a loss" in format_stats(s)


def test_repeats_give_estimates_over_draws(tmp_path: Path) -> None:
    z = np.stack([bowl(1.0), bowl(1.1), bowl(1.2)])  # (3, ny, nx)
    s = file_stats(write_surface(tmp_path / "rep.h5", z, draws=3), options=FAST)
    assert s["repeats"] == 3
    c = s["stats"]["curvature_d1"]
    assert c.n == 3 and c.values == pytest.approx([2.0, 2.2, 2.4])
    assert c.mean == pytest.approx(2.2)
    assert c.low <= c.mean <= c.high and c.high - c.low > 0
    assert s["stats"]["rising_fraction"].values == [0.0, 0.0, 0.0]
    assert s["values"]["points"] == 3 * 231
    # Same options, same interval: the bootstrap is seeded.
    again = file_stats(tmp_path / "rep.h5", options=FAST)["stats"]["curvature_d1"]
    assert (again.low, again.high) == (c.low, c.high)


def test_direction_cosines_summary(tmp_path: Path) -> None:
    z = np.stack([bowl(), bowl()])
    path = write_surface(tmp_path / "rep.h5", z, draws=2)
    d = file_stats(path, options=FAST)["directions"]
    assert d["count"] == 4 and d["parameters"] == 17
    # Unnormalized Gaussian directions: near 1/sqrt(parameters), from their own filter norms.
    assert 0.5 / math.sqrt(17) < d["random_scale"] < 2 / math.sqrt(17)
    # The same number computed by hand from the stored directions.
    from landscape.storage import read_directions

    flat = [
        np.concatenate([v.ravel() for _, v in sorted(dd.items())])
        for k in range(2)
        for dd in read_directions(path, k)
    ]
    cos = [
        abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b)
        for i, a in enumerate(flat)
        for b in flat[i + 1 :]
    ]
    assert d["max_abs_cosine"] == pytest.approx(max(cos))
    assert file_stats(path, options=StatsOptions(resamples=50, cosines=False))["directions"] is None


def test_line_barrier(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 1.5, 21)
    t = np.clip(x, 0, 1)
    z = 1.0 - 0.5 * t + 0.8 * np.sin(np.pi * t) + (x - t) ** 2
    path = write_surface(tmp_path / "line.h5", z, x=x, y=None, dir_kind="line")
    s = file_stats(path, options=FAST)
    st = s["stats"]
    assert st["barrier"].mean == pytest.approx(0.8)
    assert st["barrier_t"].mean == pytest.approx(0.5)
    assert st["loss_a"].mean == pytest.approx(1.0) and st["loss_b"].mean == pytest.approx(0.5)
    assert s["ndim"] == 1 and s["grid"]["y"] is None
    assert s["directions"] is None  # one direction: no pair, no angle (not a NaN in the table)


def test_line_that_misses_b_keeps_the_other_numbers(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, 11)
    path = write_surface(tmp_path / "short.h5", x**2, x=x, y=None, dir_kind="line")
    s = file_stats(path, options=FAST)
    assert "barrier" not in s["stats"]
    assert s["stats"]["curvature_d1"].mean == pytest.approx(2.0)
    assert any("no barrier" in n and "widen the grid" in n for n in s["notes"])


def test_hessian_ratio_and_nonfinite_values(tmp_path: Path) -> None:
    z = bowl()
    z[0, 0], z[0, 1], z[10, 20] = np.nan, np.inf, -np.inf
    path = write_surface(tmp_path / "hess.h5", z)
    ratio = np.zeros_like(z)
    ratio[:, :7] = 0.5  # 7 of 21 columns clearly non-convex
    write_extra(path, "hessian_ratio", ratio)
    s = file_stats(path, options=FAST)
    # A NaN loss at a computed point is read as diverged (+inf): NaN means "not computed".
    assert s["values"] == {"points": 231, "done": 231, "nonfinite": 3, "nan": 0, "inf": 3}
    assert s["stats"]["nonfinite_count"].mean == 3
    assert s["stats"]["hessian_nonconvex_fraction"].mean == pytest.approx(7 / 21)
    assert s["stats"]["hessian_points"].mean == 231

    write_extra(path, "hessian_ratio", np.zeros((3, 3)))  # another grid: left out, with a note
    s = file_stats(path, options=FAST)
    assert "hessian_nonconvex_fraction" not in s["stats"]
    assert any("hessian_ratio has shape (3, 3)" in n for n in s["notes"])


def test_compare_stats_table(tmp_path: Path) -> None:
    flat = write_surface(tmp_path / "a.h5", np.stack([bowl(s) for s in (1.0, 1.1, 1.2)]), draws=3)
    steep = write_surface(tmp_path / "b.h5", np.stack([bowl(s) for s in (3.0, 3.1, 3.2)]), draws=3)
    runs, table = compare_stats([flat, steep], titles=["flat run", "steep run"], options=FAST)
    assert list(runs) == ["flat run", "steep run"]
    assert runs["steep run"]["path"] == str(steep)
    assert runs["flat run"]["title"] == "flat run"
    assert runs["steep run"]["stats"]["curvature_d1"].mean == pytest.approx(6.2)
    header, _, *rows = table.splitlines()
    assert "flat run" in header and "steep run" in header and "flat run vs steep run" in header
    by_key = {r.split()[0]: r for r in rows}
    assert by_key["curvature_d1"].endswith("separate")
    assert by_key["points"].endswith("overlap")
    assert by_key["rising_fraction"].endswith("overlap")

    # Default titles come from the files; equal titles are told apart.
    runs, _ = compare_stats([flat, flat], options=FAST)
    assert list(runs) == ["a #1", "a #2"]


def test_compare_uses_one_metric(tmp_path: Path) -> None:
    a = write_surface(tmp_path / "a.h5", bowl())
    b = write_surface(tmp_path / "b.h5", bowl(2.0))
    runs, table = compare_stats([a, b], metric="test_loss", options=FAST)
    assert {r["metric"] for r in runs.values()} == {"test_loss"}
    assert "n/a" in table  # one draw each: no interval to compare, and the table says why
    assert "intervals need two or more direction draws per file; set surface.repeats" in table
    with pytest.raises(LandscapeError, match="2 titles for 1 files"):
        compare_stats([a], titles=["x", "y"])
    with pytest.raises(LandscapeError, match="titles must differ"):
        compare_stats([a, b], titles=["x", "x"])
    with pytest.raises(LandscapeError, match="no surface files"):
        compare_stats([])


def test_format_stats(tmp_path: Path) -> None:
    z = np.stack([bowl(1.0), bowl(1.1), bowl(1.2)])
    s = file_stats(write_surface(tmp_path / "rep.h5", z, draws=3, norm="filter"), options=FAST)
    text = format_stats(s)
    lines = text.splitlines()
    assert lines[0] == f"rep ({tmp_path / 'rep.h5'})"
    assert "train_loss on a 2D grid of 21 x 11 points" in text
    assert "3 direction draws" in text and "norm filter" in text
    assert "693 points, 693 computed, 0 not finite" in text
    assert "checkpoint_sha256 " + "ab" * 32 in text
    assert "95% bootstrap interval" in text
    row = next(line for line in lines if line.startswith("curvature_d1 "))
    assert s["stats"]["curvature_d1"].format() in row


def test_json_serializable(tmp_path: Path) -> None:
    z = bowl()
    z[2, 2] = np.inf
    s = file_stats(write_surface(tmp_path / "b.h5", z), options=FAST)
    text = json.dumps(stats_to_jsonable(s), allow_nan=False)
    back = json.loads(text)
    assert back["metric"] == "train_loss"
    assert back["stats"]["curvature_d1"]["mean"] == pytest.approx(2.0)
    assert back["stats"]["curvature_d1"]["n"] == 1
    assert back["stats"]["curvature_d1"]["std"] is None  # NaN for one draw becomes null
    assert back["values"]["inf"] == 1
    assert back["directions"]["count"] == 2


def test_a_grid_without_the_origin_says_where_its_centre_is(tmp_path: Path) -> None:
    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)  # y holds no 0
    path = write_surface_file(tmp_path / "off.h5", x, y, {"train_loss": np.add.outer(y**2, x**2)})
    s = file_stats(path)
    assert any("from (0, 0.3333)" in n for n in s["notes"]), s["notes"]


def test_a_line_without_points_at_a_and_b_says_so(tmp_path: Path) -> None:
    t = np.linspace(-0.5, 1.5, 12)  # neither 0 nor 1 on the grid
    path = write_surface_file(
        tmp_path / "line.h5", t, None, {"train_loss": 1 + 0.5 * t + 4 * t * (1 - t)},
        attrs={"dir_kind": "line"},
    )  # fmt: skip
    notes = file_stats(path, options=FAST)["notes"]
    assert any("no point at x = 0 or 1" in n and "0.04545 and 0.9545" in n for n in notes), notes


def test_an_original_codes_file_claims_no_direction_kind(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "orig.h5"
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = X
        f["train_loss"] = X**2
    text = format_stats(file_stats(path, options=FAST))
    assert "directions of unknown kind" in text
    assert "norm" not in text.splitlines()[1] and "random" not in text


def test_a_grid_too_coarse_for_curvature_says_why_and_the_radius_can_grow(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from landscape.cli import main

    x = y = np.linspace(-1, 1, 3)
    path = write_surface_file(tmp_path / "c.h5", x, y, {"train_loss": np.add.outer(2 * y**2, x**2)})
    s = file_stats(path)
    assert math.isnan(s["stats"]["curvature_d1"].mean)
    assert any("no curvature along direction 1" in n and "has 1 there" in n for n in s["notes"])
    wide = file_stats(path, options=StatsOptions(fit_radius=1.0))
    assert wide["stats"]["curvature_d1"].mean == pytest.approx(2.0)
    assert wide["stats"]["curvature_d2"].mean == pytest.approx(4.0)
    assert not any("no curvature" in n for n in wide["notes"])
    out = CliRunner().invoke(main, ["stats", str(path), "--fit-radius", "1", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["stats"]["curvature_d2"]["mean"] == pytest.approx(4.0)


def test_the_chance_cosine_is_the_spread_of_random_filter_normalized_pairs() -> None:
    """Two independent filter-normalized random directions: their cosines spread as
    chance_cosine says, far above 1/sqrt(parameters) where a few small filters hold most of the
    weights' norm (as in a plain net's first convolution); without normalization, about
    1/sqrt(parameters)."""
    import torch

    from landscape.directions import random_directions
    from landscape.metrics import chance_cosine

    g = torch.Generator().manual_seed(0)
    weights = {"first": torch.randn(4, 9, generator=g) * 30, "rest": torch.randn(32, 400)}
    params = 4 * 9 + 32 * 400

    def spread(norm: str) -> tuple[float, float]:
        cosines, chances = [], []
        for seed in range(300):
            a, b = (
                {k: v.numpy() for k, v in d.items()}
                for d in random_directions(weights, 2, norm=norm, ignore="none", seed=seed)
            )
            flat_a = np.concatenate([v.ravel() for v in a.values()])
            flat_b = np.concatenate([v.ravel() for v in b.values()])
            cosines.append(flat_a @ flat_b / np.linalg.norm(flat_a) / np.linalg.norm(flat_b))
            chances.append(chance_cosine(a, b))
        return float(np.std(cosines)), float(np.mean(chances))

    measured, predicted = spread("filter")
    assert measured == pytest.approx(predicted, rel=0.15)
    assert predicted > 10 / math.sqrt(params)
    measured, predicted = spread("none")
    assert measured == pytest.approx(predicted, rel=0.15)
    assert predicted == pytest.approx(1 / math.sqrt(params), rel=0.1)
