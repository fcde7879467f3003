"""Tests for landscape.storage: our schema round-trips; the original code's files read right."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from landscape import storage
from landscape.errors import LandscapeError

X = np.linspace(-1.0, 1.0, 5)  # nx = 5
Y = np.linspace(-0.5, 0.5, 3)  # ny = 3: non-square, so a transposed read cannot pass


def value(x: float, y: float) -> float:
    """A surface whose every point is distinguishable and whose axes are not symmetric."""
    return 10.0 + 3.0 * x + 7.0 * y + x * y


def _original_2d(path: Path, unfinished: tuple[int, ...] = ()) -> None:
    """A file as the paper's code writes it: (nx, ny) arrays filled by meshgrid(x, y) flat index."""
    xm, ym = np.meshgrid(X, Y)  # (ny, nx)
    losses = -np.ones((len(X), len(Y)))
    accs = -np.ones((len(X), len(Y)))
    for i, (xv, yv) in enumerate(zip(xm.ravel(), ym.ravel(), strict=True)):
        if i in unfinished:
            continue
        losses.ravel()[i] = value(xv, yv)
        accs.ravel()[i] = 50.0 + xv
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = X
        f["ycoordinates"] = Y
        f["train_loss"] = losses
        f["train_acc"] = accs


def test_original_2d_file_reads_as_iy_ix(tmp_path: Path) -> None:
    path = tmp_path / "orig.h5"
    _original_2d(path)
    s = storage.read_surface(path)
    assert s.ndim == 2 and s.shape == (3, 5)
    assert s.metrics["train_loss"].shape == (3, 5)
    for iy, yv in enumerate(Y):
        for ix, xv in enumerate(X):
            assert s.metrics["train_loss"][iy, ix] == value(xv, yv)
            assert s.metrics["train_acc"][iy, ix] == 50.0 + xv
    assert s.complete
    assert s.attrs["source"] == "original"


def test_original_unfinished_points_become_nan(tmp_path: Path) -> None:
    path = tmp_path / "orig.h5"
    _original_2d(path, unfinished=(6, 14))  # flat 6 = (iy 1, ix 1); flat 14 = (iy 2, ix 4)
    s = storage.read_surface(path)
    loss = s.metrics["train_loss"]
    assert np.isnan(loss[1, 1]) and np.isnan(loss[2, 4])
    assert np.isfinite(loss).sum() == 13
    expected_done = np.ones((3, 5), dtype=bool)
    expected_done[1, 1] = expected_done[2, 4] = False
    np.testing.assert_array_equal(s.done, expected_done)
    assert not s.complete


def test_original_1d_file(tmp_path: Path) -> None:
    path = tmp_path / "orig1d.h5"
    x = np.linspace(-1, 1, 7)
    loss = np.array([value(v, 0.0) for v in x])
    loss[3] = -1
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        f["train_loss"] = loss
        f["test_loss"] = loss + 1
    s = storage.read_surface(path)
    assert s.ndim == 1 and s.y is None and s.shape == (7,)
    np.testing.assert_array_equal(s.x, x)
    assert np.isnan(s.metrics["train_loss"][3])
    assert s.metrics["test_loss"][0] == value(-1.0, 0.0) + 1
    assert s.done.tolist() == [True, True, True, False, True, True, True]


def test_original_nan_loss_is_diverged_and_provenance_is_not_invented(tmp_path: Path) -> None:
    path = tmp_path / "orig_interp.h5"
    x = np.linspace(-0.5, 1.5, 5)
    loss = (x - 0.5) ** 2
    loss[-1], loss[1] = np.nan, -1  # the original: NaN diverged, -1 not computed yet
    with h5py.File(path, "w") as f:
        f["dir_file"] = "cifar10/resnet56.t7_weights_xignore=biasbn_xnorm=filter.h5"
        f["xcoordinates"] = x
        f["train_loss"] = loss
    s = storage.read_surface(path)
    assert np.isposinf(s.metrics["train_loss"][-1]) and np.isnan(s.metrics["train_loss"][1])
    assert s.done.tolist() == [True, False, True, True, True]
    assert s.attrs["dir_kind"] == "unknown"
    assert s.attrs["dir_file"].endswith("xnorm=filter.h5")
    assert (s.attrs["norm"], s.attrs["ignore"], s.attrs["dir_type"]) == (
        "filter",
        "biasbn",
        "weights",
    )


def test_original_file_without_dir_file_claims_no_normalization(tmp_path: Path) -> None:
    path = tmp_path / "orig.h5"
    _original_2d(path)
    s = storage.read_surface(path)
    assert s.attrs["dir_kind"] == "unknown" and s.attrs["norm"] == "unknown"
    assert s.axis_label(0) == "direction 1" and s.axis_label(1) == "direction 2"


def test_original_file_without_metrics_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "coords_only.h5"
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = X
    with pytest.raises(LandscapeError, match="train_loss"):
        storage.read_surface(path)


def _ours(
    path: Path, repeats: int = 1, y: np.ndarray | None = Y
) -> list[list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    dirs = [
        [
            {
                "layer1.0.conv1.weight": torch.randn(4, 2, 3, 3, generator=g),
                "linear.bias": torch.zeros(10),
            }
            for _ in range(2 if y is not None else 1)
        ]
        for _ in range(repeats)
    ]
    attrs = {
        "title": "tiny",
        "direction_seed": 3,
        "orthogonalize": False,
        "splits": ["train", "test"],
        "samples": -1,
        "note": None,
        "created": "2025-01-01",
    }
    metrics = storage.metric_names(["train", "test"])
    storage.create_surface_file(path, X, y, metrics, dirs, attrs)
    return dirs


def test_our_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    dirs = _ours(path)
    s = storage.read_surface(path)
    assert s.attrs["schema"] == storage.SCHEMA
    assert s.attrs["schema_version"] == storage.SCHEMA_VERSION
    assert s.attrs["axis_order"] == storage.AXIS_ORDER
    assert s.attrs["title"] == "tiny" and s.attrs["direction_seed"] == 3
    assert s.attrs["orthogonalize"] is False
    assert s.attrs["splits"] == ["train", "test"]
    assert s.attrs["note"] is None
    assert sorted(s.metrics) == ["test_acc", "test_loss", "train_acc", "train_loss"]
    for a in s.metrics.values():
        assert a.shape == (3, 5) and np.isnan(a).all()
    assert s.done.shape == (3, 5) and not s.done.any()
    np.testing.assert_array_equal(s.x, X)
    np.testing.assert_array_equal(s.y, Y)
    assert storage.read_attrs(path)["title"] == "tiny"
    stored = storage.read_directions(path)
    assert len(stored) == 2
    for got, want in zip(stored, dirs[0], strict=True):
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name].numpy())
    assert not (tmp_path / "surface.h5.tmp").exists()


def test_repeats_add_a_leading_axis(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    dirs = _ours(path, repeats=3, y=None)
    s = storage.read_surface(path)
    assert s.repeats == 3 and s.ndim == 1
    assert s.metrics["train_loss"].shape == (3, 5) and s.done.shape == (3, 5)
    with storage.SurfaceWriter(path) as w:
        w.write({"train_loss": np.array([1.0, 2.0])}, (np.array([2, 0]), np.array([4, 1])))
    one = storage.read_surface(path).repeat(2)
    assert one.repeats == 1 and one.metrics["train_loss"][4] == 1.0 and one.done.sum() == 1
    assert storage.read_surface(path).repeat(0).metrics["train_loss"][1] == 2.0
    with pytest.raises(LandscapeError, match="out of range"):
        s.repeat(3)
    d1 = storage.read_directions(path, repeat=1)
    np.testing.assert_array_equal(
        d1[0]["layer1.0.conv1.weight"], dirs[1][0]["layer1.0.conv1.weight"].numpy()
    )
    with pytest.raises(LandscapeError, match="repeat 5"):
        storage.read_directions(path, repeat=5)


def test_writer_puts_values_at_iy_ix_and_marks_them_done(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    iy, ix = np.array([2, 0, 1]), np.array([4, 3, 0])  # unsorted, as rounds of ranks arrive
    vals = np.array([value(X[i], Y[j]) for j, i in zip(iy, ix, strict=True)])
    with storage.SurfaceWriter(path) as w:
        w.write({"train_loss": vals, "train_acc": vals / 100}, (iy, ix))
        w.write({"train_loss": np.array([])}, (np.array([], dtype=int), np.array([], dtype=int)))
        w.set_attrs({"finished": True})
    s = storage.read_surface(path)
    for j, i in zip(iy, ix, strict=True):
        assert s.metrics["train_loss"][j, i] == value(X[i], Y[j])
        assert s.metrics["train_acc"][j, i] == value(X[i], Y[j]) / 100
        assert s.done[j, i]
    assert s.done.sum() == 3
    assert np.isnan(s.metrics["train_loss"][~s.done]).all()
    assert s.attrs["finished"] is True


def test_a_non_finite_loss_is_stored_as_diverged(tmp_path: Path) -> None:
    # NaN means "not computed": a computed loss that came out NaN (overflowing logits) or -inf
    # is +inf, "diverged"; other metrics keep what was measured, and `done` says computed.
    path = tmp_path / "surface.h5"
    _ours(path)
    index = (np.array([0, 0, 0]), np.array([0, 1, 2]))
    with storage.SurfaceWriter(path) as w:
        w.write(
            {
                "train_loss": np.array([np.inf, np.nan, -np.inf]),
                "train_acc": np.array([10.0, np.nan, 30.0]),
            },
            index,
        )
    s = storage.read_surface(path)
    assert np.isposinf(s.metrics["train_loss"][0, :3]).all()
    np.testing.assert_array_equal(s.metrics["train_acc"][0, :3], [10.0, np.nan, 30.0])
    assert s.done[0, :3].all() and not s.done[0, 3:].any()
    assert np.isnan(s.metrics["train_loss"][0, 3:]).all()


def test_an_older_files_nan_loss_at_a_done_point_reads_as_diverged(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    with h5py.File(path, "r+") as f:  # as earlier versions wrote a diverged point
        f["train_loss"][0, 0] = np.nan
        f["train_acc"][0, 0] = np.nan
        done = f["done"][...]
        done[0, 0] = True
        f["done"][...] = done
    s = storage.read_surface(path)
    assert np.isposinf(s.metrics["train_loss"][0, 0]) and np.isnan(s.metrics["train_acc"][0, 0])
    assert np.isnan(s.metrics["train_loss"][1, 1])  # not done: still "not computed"


def test_extra_arrays(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    assert storage.read_extra(path) == {}
    path_xy = np.arange(12.0).reshape(6, 2)
    storage.write_extra(path, "trajectory", path_xy, {"epochs": [0, 1, 2], "kind": "pca"})
    storage.write_extra(path, "curvature", np.ones((3, 5)))
    storage.write_extra(path, "curvature", np.zeros((3, 5)))  # replaces
    extra = storage.read_extra(path)
    assert sorted(extra) == ["curvature", "trajectory"]
    np.testing.assert_array_equal(extra["trajectory"][0], path_xy)
    assert extra["trajectory"][1]["kind"] == "pca"
    np.testing.assert_array_equal(extra["trajectory"][1]["epochs"], [0, 1, 2])
    assert not extra["curvature"][0].any()
    # The surface itself is untouched.
    assert storage.read_surface(path).metrics["train_loss"].shape == (3, 5)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = storage.SCHEMA_VERSION + 1
    with pytest.raises(LandscapeError, match="upgrade"):
        storage.read_surface(path)


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all\n" * 10])
def test_empty_or_foreign_file_is_a_landscape_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    with pytest.raises(LandscapeError, match="bad.h5"):
        storage.read_surface(path)
    with pytest.raises(LandscapeError, match="bad.h5"):
        storage.read_attrs(path)


def test_missing_file_and_unrelated_hdf5(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="no such file"):
        storage.read_surface(tmp_path / "nope.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["weights"] = np.ones(3)
    with pytest.raises(LandscapeError, match="not a surface file"):
        storage.read_surface(other)


def test_file_is_readable_but_not_writable_while_a_writer_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    reader = textwrap.dedent(
        f"""
        from landscape.errors import LandscapeError
        from landscape.storage import SurfaceWriter, read_surface
        s = read_surface({str(path)!r})
        print(int(s.done.sum()), float(s.metrics["train_loss"][1, 2]))
        try:
            SurfaceWriter({str(path)!r})
        except LandscapeError as e:
            print("refused" if "another process" in str(e) else e)
        """
    )
    with storage.SurfaceWriter(path) as w:
        w.write({"train_loss": np.array([4.5])}, (np.array([1]), np.array([2])))
        # In this process, and from another one (as `landscape plot` while a run goes on).
        assert storage.read_surface(path).metrics["train_loss"][1, 2] == 4.5
        out = subprocess.run(
            [sys.executable, "-c", reader], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        # Reading is fine; a second writer is refused (two would overwrite each other's points).
        assert out.stdout.split() == ["1", "4.5", "refused"]


# ----------------------------------------------------------------------------- damaged files


def _put(f: h5py.File, name: str, data: np.ndarray | None) -> None:
    """Replace (or, with None, delete) dataset `name`, as a hand edit would."""
    del f[name]
    if data is not None:
        f[name] = data


def _metric_group(f: h5py.File) -> None:
    del f["train_loss"]
    f.create_group("train_loss")


# (damage to an _ours file: 2D, 3 x 5 grid, repeats 1 unless the id says so; words of the error)
DAMAGED_OURS = {
    "x missing": (lambda f: _put(f, "x", None), ["'x'", "missing"]),
    "done missing": (lambda f: _put(f, "done", None), ["'done'", "missing"]),
    "x 2-D": (lambda f: _put(f, "x", X[:, None]), ["'x'", "(5, 1)"]),
    "y empty": (lambda f: _put(f, "y", np.array([])), ["'y'", "(0,)"]),
    "x not finite": (lambda f: _put(f, "x", np.r_[X[:4], np.nan]), ["'x'", "non-finite"]),
    "y as text": (lambda f: _put(f, "y", np.array([b"a", b"b"])), ["'y'", "not numbers"]),
    "metric rows": (
        lambda f: _put(f, "train_loss", np.zeros((2, 5))),
        ["'train_loss'", "(2, 5)", "(3, 5)", "(ny, nx)"],
    ),
    "metric transposed": (
        lambda f: _put(f, "test_acc", np.zeros((5, 3))),
        ["'test_acc'", "(5, 3)", "(3, 5)"],
    ),
    "metric a group": (_metric_group, ["'train_loss'", "group"]),
    "done shape": (lambda f: _put(f, "done", np.zeros(15, dtype=bool)), ["'done'", "(15,)"]),
    "repeats attribute": (
        lambda f: f.attrs.__setitem__("repeats", 0),
        ["'repeats'", "positive integer"],
    ),
}


@pytest.mark.parametrize("damage, words", DAMAGED_OURS.values(), ids=DAMAGED_OURS.keys())
def test_damaged_file_is_one_error_naming_file_and_dataset(
    tmp_path: Path, damage: Any, words: list[str]
) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    with h5py.File(path, "r+") as f:
        damage(f)
    _assert_damaged(path, *words, "--overwrite")


def test_damaged_1d_and_repeats_files(tmp_path: Path) -> None:
    one_d = tmp_path / "line.h5"
    _ours(one_d, y=None)
    with h5py.File(one_d, "r+") as f:
        _put(f, "train_loss", np.zeros(4))
    _assert_damaged(one_d, "'train_loss'", "(4,)", "(5,) = (nx)")
    # With repeats, every metric and `done` carries the leading repeat axis.
    draws = tmp_path / "draws.h5"
    _ours(draws, repeats=2)
    with h5py.File(draws, "r+") as f:
        _put(f, "done", np.zeros((3, 5), dtype=bool))
    _assert_damaged(draws, "'done'", "(3, 5)", "(2, 3, 5) = (repeats, ny, nx)")


def test_damaged_original_files(tmp_path: Path) -> None:
    path = tmp_path / "orig.h5"
    _original_2d(path)
    with h5py.File(path, "r+") as f:
        _put(f, "train_loss", np.zeros(7))
    _assert_damaged(path, "'train_loss'", "(7,)", "15 values", "(5, 3) = (nx, ny)", "original code")
    with h5py.File(path, "r+") as f:
        _put(f, "train_loss", np.zeros((5, 3)))
        _put(f, "ycoordinates", np.array([0.0, np.inf, 1.0]))
    _assert_damaged(path, "'ycoordinates'", "non-finite")
    line = tmp_path / "orig1d.h5"
    with h5py.File(line, "w") as f:
        f["xcoordinates"] = X
        f["test_loss"] = np.zeros(6)
    _assert_damaged(line, "'test_loss'", "(6,)", "6 values", "(5,) = (nx)")


def _assert_damaged(path: Path, *words: str) -> None:
    with pytest.raises(LandscapeError) as info:
        storage.read_surface(path)
    message = str(info.value)
    assert message.startswith(f"{path}: damaged surface file: "), message
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)


def test_valid_variants_still_read(tmp_path: Path) -> None:
    # Partly computed, 2D repeats: shapes check out and values stay where they were written.
    draws = tmp_path / "draws.h5"
    _ours(draws, repeats=2)
    with storage.SurfaceWriter(draws) as w:
        w.write({"train_loss": np.array([7.0])}, (np.array([1]), np.array([2]), np.array([4])))
    s = storage.read_surface(draws)
    assert s.repeats == 2 and s.shape == (3, 5) and s.done.shape == (2, 3, 5)
    assert s.done.sum() == 1 and s.repeat(1).metrics["train_loss"][2, 4] == 7.0
    # A listed metric that is absent is left out, not an error (as before).
    with h5py.File(draws, "r+") as f:
        del f["test_acc"]
    assert "test_acc" not in storage.read_surface(draws).metrics
    # The original code's metrics are read by their flat buffer, whatever shape holds it.
    orig = tmp_path / "orig.h5"
    _original_2d(orig)
    want = storage.read_surface(orig).metrics["train_loss"]
    with h5py.File(orig, "r+") as f:
        _put(f, "train_loss", f["train_loss"][...].ravel())
    np.testing.assert_array_equal(storage.read_surface(orig).metrics["train_loss"], want)


def test_plot_of_a_damaged_file_is_a_clean_cli_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from landscape.cli import main

    path = tmp_path / "surface.h5"
    _ours(path)
    with h5py.File(path, "r+") as f:
        _put(f, "train_loss", np.zeros((2, 5)))
    result = CliRunner().invoke(main, ["plot", str(path), "--out", str(tmp_path / "figs")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {path}: damaged surface file: ")
    assert "'train_loss'" in lines[0] and "(2, 5)" in lines[0]


def test_callers_attributes_never_override_the_structure(tmp_path: Path) -> None:
    # e.g. attributes copied from a file of two draws onto one draw of it
    path = tmp_path / "one.h5"
    attrs = {"repeats": 2, "schema_version": 7, "metrics": ["gone"], "schema": "x", "title": "t"}
    storage.create_surface_file(path, X, Y, ["train_loss"], [[{"w": np.ones(3)}] * 2], attrs)
    s = storage.read_surface(path)
    assert s.repeats == 1 and s.attrs["schema_version"] == storage.SCHEMA_VERSION
    assert list(s.metrics) == ["train_loss"] and s.title == "t"


@pytest.mark.parametrize("version", ["1.1", "two", 1.5, -1])
def test_a_malformed_schema_version_is_one_damaged_file_error(tmp_path: Path, version: Any) -> None:
    path = tmp_path / "surface.h5"
    _ours(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = version
    with pytest.raises(LandscapeError, match=r"surface.h5: damaged .*'schema_version' is"):
        storage.read_surface(path)


def test_bfloat16_directions_are_stored_as_float32(tmp_path: Path) -> None:
    path = tmp_path / "bf16.h5"
    d = torch.randn(4, 3).to(torch.bfloat16)
    storage.create_surface_file(path, X, None, ["train_loss"], [[{"w": d}]], {})
    got = storage.read_directions(path)[0]["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, d.float().numpy())


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with pytest.raises(TypeError):
        storage.create_surface_file(path, X, None, ["train_loss"], [], {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_parameter_names_with_a_slash_round_trip(tmp_path: Path) -> None:
    # nn.ModuleDict({"enc/0": ...}) is legal: its names must not become nested HDF5 groups.
    path = tmp_path / "slash.h5"
    names = ["enc/0.weight", "enc/0.bias", "odd%2Fname", "plain.weight"]
    dirs = [{n: np.full(2, float(i)) for i, n in enumerate(names)}]
    storage.create_surface_file(path, X, None, ["train_loss"], [dirs], {})
    got = storage.read_directions(path)[0]
    assert sorted(got) == sorted(names)
    for i, n in enumerate(names):
        np.testing.assert_array_equal(got[n], np.full(2, float(i)))
    with h5py.File(path) as f:
        assert isinstance(f["directions/r0/d0/enc%2F0.weight"], h5py.Dataset)


def test_older_files_directions_still_read(tmp_path: Path) -> None:
    # Written before names were escaped: plain names, and a '/' name as nested groups.
    path = tmp_path / "old.h5"
    _ours(path, y=None)
    with h5py.File(path, "r+") as f:
        f["directions/r0/d0/enc/0.weight"] = np.arange(3.0)
    got = storage.read_directions(path)[0]
    assert sorted(got) == ["enc/0.weight", "layer1.0.conv1.weight", "linear.bias"]
    np.testing.assert_array_equal(got["enc/0.weight"], np.arange(3.0))


GROW_ATTRIBUTES = textwrap.dedent(
    """
    import json, sys
    from landscape.storage import SurfaceWriter

    w = SurfaceWriter(sys.argv[1])
    for i in range(600):  # the file grows with each longer attribute, as at a run's start
        w.set_attrs({"history": json.dumps(["x" * (10 * i)])})
    w.close()
    """
)


def test_readers_wait_out_a_writer_growing_the_file(tmp_path: Path) -> None:
    """While a writer grows the file (new attributes: a run's start, its history at the end), a
    reader may briefly find it shorter than its header says; reads wait that out. A file that
    stays cut short is one line saying so."""
    path = tmp_path / "surface.h5"
    _ours(path)
    script = tmp_path / "grow.py"
    script.write_text(GROW_ATTRIBUTES)
    writer = subprocess.Popen([sys.executable, str(script), str(path)])
    reads = 0
    try:
        while writer.poll() is None:
            assert storage.read_surface(path).done.shape == (3, 5)
            reads += 1
    finally:
        writer.wait()
    assert writer.returncode == 0 and reads > 0
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LandscapeError, match="truncated file.*cut off while being written"):
        storage.read_surface(cut)


@pytest.mark.parametrize(
    "why",
    [
        "Unable to synchronously open file (truncated file: eof = 2048, sblock->base_addr = 0)",
        "Unable to synchronously open file (addr overflow, addr = 2243112, size = 1560, eoa = 1)",
        "Unable to synchronously open file (bad object header version number)",
    ],
)
def test_a_failed_open_of_an_hdf5_file_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """Whatever HDF5 says while a writer grows the file (CI saw 'addr overflow', not only
    'truncated file'), a reader tries again instead of failing at once."""
    path = tmp_path / "surface.h5"
    _ours(path)
    real = h5py.File
    failures = {"left": 4}

    def flaky(name: Any, mode: str = "r", **kwargs: Any) -> Any:
        if mode == "r" and failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(why)
        return real(name, mode, **kwargs)

    monkeypatch.setattr(h5py, "File", flaky)
    assert storage.read_surface(path).done.shape == (3, 5)
    assert failures["left"] == 0


HOLD_OPEN = textwrap.dedent(
    """
    import sys, time, h5py
    f = h5py.File(sys.argv[1], "r+")  # a run writing the file holds HDF5's lock
    print("open", flush=True)
    time.sleep(60)
    """
)


def test_overwrite_leaves_a_file_that_another_process_writes(tmp_path: Path) -> None:
    """--overwrite must not delete a file under a running writer (its points would go into the
    deleted file); a file nobody writes, damaged or not, is deleted."""
    path = tmp_path / "surface.h5"
    _ours(path)
    script = tmp_path / "hold.py"
    script.write_text(HOLD_OPEN)
    writer = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"open"
        with pytest.raises(LandscapeError, match="being written by another process"):
            storage.remove_for_overwrite(path)
        assert path.exists()
    finally:
        writer.kill()
        writer.wait()
    storage.remove_for_overwrite(path)
    assert not path.exists()
    path.write_bytes(b"not an hdf5 file")
    storage.remove_for_overwrite(path)
    assert not path.exists()
    storage.remove_for_overwrite(path)  # nothing there: nothing to do


def test_an_unreadable_file_is_one_line_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied is said at once, not after the retries meant for a growing file (the
    check is faked: CI runs as root, who may read anything)."""
    path = tmp_path / "surface.h5"
    _ours(path)
    monkeypatch.setattr(storage.os, "access", lambda p, mode: False)
    start = time.monotonic()
    with pytest.raises(LandscapeError, match="surface.h5: not readable.*permission denied"):
        storage.read_surface(path)
    assert time.monotonic() - start < 1.0
