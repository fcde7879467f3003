"""Tests of landscape.export: VTP structure and values, CSV order, NPZ round trip, errors."""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import write_surface_file

from landscape.errors import LandscapeError
from landscape.export import export_surface, height_field, pick_metric
from landscape.storage import read_surface

NX, NY = 7, 5  # not square, so swapped axes cannot pass


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, NX)
    y = np.linspace(-0.5, 0.5, NY)
    xx, yy = np.meshgrid(x, y)  # (NY, NX)
    return x, y, xx**2 + 2 * yy**2 + 0.3 * xx  # the tilt makes z differ between x and -x


@pytest.fixture
def surf2d(tmp_path: Path) -> Path:
    x, y, z = grid()
    metrics = {"train_loss": z, "train_acc": 100 - 10 * z}
    return write_surface_file(tmp_path / "bowl.h5", x, y, metrics)


@pytest.fixture
def broken2d(tmp_path: Path) -> Path:
    x, y, z = grid()
    z = z.copy()
    z[0, 0], z[2, 4], z[4, 6] = np.nan, np.inf, -np.inf
    path = write_surface_file(tmp_path / "broken.h5", x, y, {"train_loss": z})
    with h5py.File(path, "r+") as f:  # (0, 0) not computed yet; the infinite losses diverged
        done = f["done"][...]
        done[0, 0] = False
        f["done"][...] = done
        f["train_loss"][0, 0] = np.nan
    return path


def numbers(el: ET.Element) -> np.ndarray:
    return np.array([float(v) for v in (el.text or "").split()])


def parse_vtp(path: Path) -> dict[str, np.ndarray | int]:
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    piece = root.find("PolyData/Piece")
    assert piece is not None
    arrays = {a.get("Name"): numbers(a) for a in piece.iter("DataArray")}
    return {
        "npoints": int(piece.get("NumberOfPoints")),
        "npolys": int(piece.get("NumberOfPolys")),
        "points": arrays["Points"].reshape(-1, 3),
        "connectivity": arrays["connectivity"].astype(int),
        "offsets": arrays["offsets"].astype(int),
        "scalars": next(v for k, v in arrays.items() if k.startswith("train_loss")),
        "arrays": arrays,
    }


def test_vtp_is_a_well_formed_height_field(surf2d: Path) -> None:
    out = export_surface(surf2d, "vtp")
    assert out == surf2d.with_suffix(".vtp")
    v = parse_vtp(out)
    assert v["npoints"] == NX * NY and len(v["points"]) == NX * NY
    assert v["npolys"] == (NX - 1) * (NY - 1)
    assert len(v["connectivity"]) == 4 * v["npolys"] and v["offsets"][-1] == 4 * v["npolys"]
    assert v["connectivity"].min() == 0 and v["connectivity"].max() == NX * NY - 1
    x, y, z = grid()
    pts = v["points"]
    # Point iy * nx + ix sits at (x[ix], y[iy], z[iy, ix]), and the scalar equals its height.
    iy, ix = 3, 5
    np.testing.assert_allclose(pts[iy * NX + ix], [x[ix], y[iy], z[iy, ix]], rtol=1e-8)
    np.testing.assert_allclose(pts[:, 2], z.ravel(), rtol=1e-8)
    np.testing.assert_allclose(v["scalars"], pts[:, 2])


def test_vtp_clips_non_finite_and_zmax(broken2d: Path, tmp_path: Path) -> None:
    z = grid()[2]
    finite_max = np.delete(z.ravel(), [0, 2 * NX + 4, 4 * NX + 6]).max()
    v = parse_vtp(export_surface(broken2d, "vtp", tmp_path / "a.vtp"))
    heights = v["points"][:, 2]
    assert np.all(np.isfinite(heights))
    for i in (0, 2 * NX + 4, 4 * NX + 6):
        assert heights[i] == pytest.approx(finite_max)

    v = parse_vtp(export_surface(broken2d, "vtp", tmp_path / "b.vtp", zmax=1.0))
    heights = v["points"][:, 2]
    assert heights.max() == pytest.approx(1.0) and heights[0] == pytest.approx(1.0)

    v = parse_vtp(export_surface(broken2d, "vtp", tmp_path / "c.vtp", log=True, zmax=1.0))
    expect = np.log(np.minimum(np.where(np.isfinite(z), z, 1.0), 1.0) + 0.1)
    expect.ravel()[[0, 2 * NX + 4, 4 * NX + 6]] = math.log(1.1)
    np.testing.assert_allclose(v["points"][:, 2], expect.ravel(), rtol=1e-8)


def test_vtp_keeps_the_stored_values_and_marks_filled_points(
    broken2d: Path, tmp_path: Path
) -> None:
    # The mesh needs a height everywhere, but the array named like the metric must not hold
    # made-up values: it keeps what the file holds (NaN not computed, inf diverged).
    stored = read_surface(broken2d).metrics["train_loss"].ravel()
    notes: list[str] = []
    out = export_surface(broken2d, "vtp", tmp_path / "a.vtp", zmax=1.0, note=notes.append)
    arrays = parse_vtp(out)["arrays"]
    assert isinstance(arrays, dict)
    np.testing.assert_array_equal(arrays["train_loss"], stored)  # exact: %.17g, NaN/inf kept
    bad = ~np.isfinite(stored)
    assert bad.sum() == 3 and np.isnan(stored[0]) and np.isposinf(stored[bad][1:]).all()
    np.testing.assert_array_equal(arrays["valid"], (~bad).astype(float))
    np.testing.assert_array_equal(arrays["height"], np.minimum(np.where(bad, 1.0, stored), 1.0))
    assert len(notes) == 1 and "3 point(s) of train_loss" in notes[0]

    notes.clear()
    export_surface(broken2d, "vtp", tmp_path / "f.vtp", interpolate=2, note=notes.append)
    fine = parse_vtp(tmp_path / "f.vtp")["arrays"]
    assert isinstance(fine, dict)
    raw = fine["train_loss"].reshape(2 * NY - 1, 2 * NX - 1)
    np.testing.assert_array_equal(raw[::2, ::2].ravel(), stored)
    assert np.isnan(raw[0, 1]) and fine["valid"].reshape(raw.shape)[0, 1] == 0  # next to (0, 0)
    assert np.isfinite(raw[-1, 1]) and notes


def test_vtp_values_are_lossless_and_a_full_surface_needs_no_note(
    tmp_path: Path, surf2d: Path
) -> None:
    x, y, z = grid()
    z = z + 1e-13 * np.arange(z.size).reshape(z.shape)  # differs from z beyond 9 digits
    path = write_surface_file(tmp_path / "fine.h5", x, y, {"train_loss": z})
    notes: list[str] = []
    v = parse_vtp(export_surface(path, "vtp", note=notes.append))
    np.testing.assert_array_equal(v["points"][:, 2], z.ravel())
    assert not notes


@pytest.mark.parametrize("flip", ["x", "y", "xy"])
def test_vtp_normals_point_up_on_descending_grids(tmp_path: Path, flip: str) -> None:
    x, y, z = grid()
    if "x" in flip:
        x, z = x[::-1], z[:, ::-1]
    if "y" in flip:
        y, z = y[::-1], z[::-1]
    path = write_surface_file(tmp_path / "d.h5", x, y, {"train_loss": z})
    v = parse_vtp(export_surface(path, "vtp"))
    pts = v["points"]
    assert isinstance(pts, np.ndarray)
    quads = np.asarray(v["connectivity"]).reshape(-1, 4)
    a, b, c = pts[quads[:, 0]], pts[quads[:, 1]], pts[quads[:, 2]]
    normal_z = np.cross(b - a, c - b)[:, 2]
    assert (normal_z > 0).all()
    # Refined, the mesh keeps every measured point and its x, y (bilinear in between).
    fine = parse_vtp(export_surface(path, "vtp", tmp_path / "fine.vtp", interpolate=2))
    pts = fine["points"]
    assert isinstance(pts, np.ndarray)
    grid_pts = pts.reshape(2 * NY - 1, 2 * NX - 1, 3)[::2, ::2]
    np.testing.assert_array_equal(grid_pts[..., 2], z)
    np.testing.assert_array_equal(grid_pts[0, :, 0], x)
    np.testing.assert_array_equal(grid_pts[:, 0, 1], y)


def test_vtp_interpolation_keeps_the_grid_points(surf2d: Path, tmp_path: Path) -> None:
    v = parse_vtp(export_surface(surf2d, "vtp", tmp_path / "fine.vtp", interpolate=3))
    nx, ny = 3 * (NX - 1) + 1, 3 * (NY - 1) + 1
    assert v["npoints"] == nx * ny and v["npolys"] == (nx - 1) * (ny - 1)
    heights = v["points"][:, 2].reshape(ny, nx)
    np.testing.assert_allclose(heights[::3, ::3], grid()[2], rtol=1e-8)
    # Bilinear: a new point halfway along an edge... here a third of the way.
    z = grid()[2]
    np.testing.assert_allclose(heights[0, 1], z[0, 0] + (z[0, 1] - z[0, 0]) / 3, rtol=1e-8)


def test_csv_rows_follow_the_grid(broken2d: Path, surf2d: Path) -> None:
    out = export_surface(surf2d, "csv")
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["x", "y", "train_loss", "train_acc"]
    assert len(rows) == 1 + NX * NY
    x, y, z = grid()
    iy, ix = 1, 6
    row = rows[1 + iy * NX + ix]  # y is the outer loop
    assert float(row[0]) == x[ix] and float(row[1]) == y[iy]
    assert float(row[2]) == z[iy, ix] and float(row[3]) == pytest.approx(100 - 10 * z[iy, ix])

    out = export_surface(broken2d, "csv")
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][2] == "nan" and rows[1 + 2 * NX + 4][2] == "inf"
    assert rows[1 + 4 * NX + 6][2] == "inf"  # a computed loss of -inf is stored as diverged


def test_csv_1d_with_repeats(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 9)
    vals = np.stack([(k + 1) * x**2 for k in range(3)])
    src = write_surface_file(tmp_path / "rep.h5", x, None, {"train_loss": vals}, repeats=3)
    out = export_surface(src, "csv", tmp_path / "sub" / "rep.csv", metric="train_loss")
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["repeat", "x", "train_loss"]
    assert len(rows) == 1 + 3 * 9
    assert rows[1 + 2 * 9 + 8] == ["2", "1.0", "3.0"]  # draw 2 at x = 1: 3 * 1^2


def test_npz_round_trips(broken2d: Path, tmp_path: Path) -> None:
    out = export_surface(broken2d, "npz", tmp_path / "out.data")  # no numpy suffix added
    assert out.name == "out.data"
    surf = read_surface(broken2d)
    with np.load(out) as d:
        assert set(d.files) == {"x", "y", "train_loss", "done"}
        np.testing.assert_array_equal(d["x"], surf.x)
        np.testing.assert_array_equal(d["y"], surf.y)
        np.testing.assert_array_equal(d["train_loss"], surf.metrics["train_loss"])
        np.testing.assert_array_equal(d["done"], surf.done)


def test_errors(surf2d: Path, tmp_path: Path) -> None:
    x = np.linspace(0, 1, 4)
    line = write_surface_file(tmp_path / "line.h5", x, None, {"train_loss": x})
    with pytest.raises(LandscapeError, match="vtp needs a 2D surface"):
        export_surface(line, "vtp")
    with pytest.raises(LandscapeError, match="unknown export format 'obj'"):
        export_surface(surf2d, "obj")
    with pytest.raises(LandscapeError, match="vtp height field only"):
        export_surface(surf2d, "csv", log=True)
    with pytest.raises(LandscapeError, match="interpolate must be"):
        export_surface(surf2d, "vtp", interpolate=0)
    with pytest.raises(LandscapeError, match="did you mean train_loss"):
        export_surface(surf2d, "vtp", metric="train_los")
    with pytest.raises(LandscapeError, match="no such file"):
        export_surface(tmp_path / "missing.h5", "csv")


def test_pick_metric_and_height_field(surf2d: Path) -> None:
    surf = read_surface(surf2d)
    assert pick_metric(surf, None) == "train_loss"
    assert pick_metric(surf, "train_acc") == "train_acc"
    surf.metrics = {"test_acc": surf.metrics["train_acc"], "test_loss": surf.metrics["train_loss"]}
    assert pick_metric(surf, None) == "test_loss"
    surf.metrics["test_loss"] = np.full((NY, NX), np.nan)
    with pytest.raises(LandscapeError, match="no finite values"):
        height_field(surf, "test_loss")
