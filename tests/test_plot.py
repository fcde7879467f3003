"""Tests of landscape.plot: every kind renders, scales are shared, bad data is masked."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import h5py
import matplotlib.colors
import numpy as np
import pytest
from conftest import write_surface_file
from matplotlib.collections import QuadMesh
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.text import Annotation
from numpy.testing import assert_allclose

from landscape import plot
from landscape.errors import LandscapeError
from landscape.storage import SurfaceData, read_surface

NX, NY = 7, 5  # deliberately not square, so a swapped axis shows up as a shape error
DPI = 60  # small images keep the tests fast; content checks do not need more


def bowl_values() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, NX)
    y = np.linspace(-0.5, 0.5, NY)
    xx, yy = np.meshgrid(x, y)  # (NY, NX): rows are y
    return x, y, xx**2 + 2 * yy**2


def surface(z: np.ndarray, name: str, **metrics: np.ndarray) -> SurfaceData:
    x, y, _ = bowl_values()
    return SurfaceData(
        x=x, y=y, metrics={"train_loss": z, **metrics}, done=~np.isnan(z), path=f"/tmp/{name}.h5"
    )


@pytest.fixture
def bowl() -> SurfaceData:
    z = bowl_values()[2]
    return surface(z, "bowl", train_acc=100 - 20 * z)


@pytest.fixture
def broken() -> SurfaceData:
    """The bowl with a point not computed (NaN), one diverged (inf) and one huge."""
    z = bowl_values()[2].copy()
    z[0, 0] = np.nan
    z[1, 5] = np.inf
    z[4, 6] = 1e30
    return surface(z, "broken")


@pytest.fixture
def line() -> SurfaceData:
    x = np.linspace(-1.0, 1.0, 11)
    metrics = {
        "train_loss": x**2,
        "test_loss": x**2 + 0.3,
        "train_acc": 100 - 30 * x**2,
        "test_acc": 90 - 30 * x**2,
    }
    return SurfaceData(x=x, y=None, metrics=metrics, done=np.ones(11, bool), path="/tmp/line.h5")


@pytest.fixture
def repeats() -> SurfaceData:
    x = np.linspace(-1.0, 1.0, 11)
    vals = np.stack([(1 + 0.2 * k) * x**2 for k in range(3)])  # (K, nx)
    return SurfaceData(
        x=x,
        y=None,
        metrics={"train_loss": vals},
        done=np.ones((3, 11), bool),
        path="/tmp/rep.h5",
        repeats=3,
    )


def check_png(path: Path, min_colors: int = 2) -> np.ndarray:
    """The file is a readable, non-empty PNG that is not one flat colour."""
    assert path.suffix == ".png" and path.stat().st_size > 0
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    colors = np.unique(img[..., :3].reshape(-1, 3), axis=0)
    assert len(colors) >= min_colors, f"{path.name}: only {len(colors)} colours"
    return img


def main_axes(fig: Figure) -> list:
    """Panels without colour bars (a colour bar axes carries the `_colorbar` attribute)."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def artists_of(ax, cls: type) -> list:
    return [c for c in ax.get_children() if isinstance(c, cls)]


@pytest.mark.parametrize("kind", plot.KINDS_2D)
@pytest.mark.parametrize("which", ["bowl", "broken"])
def test_every_2d_kind_renders(kind: str, which: str, request, tmp_path: Path) -> None:
    surf = request.getfixturevalue(which)
    fig = plot.plot_surface(surf, kind)
    n_cbar = 0 if kind == "contour" else 1
    assert len(main_axes(fig)) == 1 and len(fig.axes) == 1 + n_cbar
    assert main_axes(fig)[0].get_title() == f"{which}: train loss"
    if n_cbar:
        assert fig.axes[1].get_ylabel() == "train loss"
    out = plot.save_figure(fig, tmp_path / f"{kind}.png", dpi=DPI)
    # A 3D surface is shaded face by face, so a real render has many distinct colours.
    check_png(out, min_colors=40 if kind == "surface3d" else 3)


def test_surface3d_uses_a_real_3d_axes_and_clips(broken: SurfaceData) -> None:
    fig = plot.plot_surface(broken, "surface3d")
    ax = main_axes(fig)[0]
    assert ax.name == "3d"
    lo, hi = ax.get_zlim()
    # The huge 1e30 point must not set the scale: the robust vmax keeps the basin visible.
    assert hi < 10
    assert len(ax.collections[0].get_facecolor()) > 0


def test_surface3d_heights_pass_through_the_points_and_clip() -> None:
    x, y = np.linspace(-1, 1, NX), np.linspace(-0.5, 0.5, NY)
    xx, yy = np.meshgrid(x, y)
    z = 1 + xx**2 + 3 * yy**2
    z[2, 3], z[0, 0] = np.nan, np.inf  # a hole and a diverged point
    xf, yf, zf = plot.surface3d_heights(x, y, z, 1.0, 2.0)
    fx, fy = (len(xf) - 1) // (NX - 1), (len(yf) - 1) // (NY - 1)
    assert fx > 1 and fy > 1 and 100 <= len(xf) < 200 and 100 <= len(yf) < 200
    assert_allclose(xf[::fx], x) and assert_allclose(yf[::fy], y)
    measured = zf[::fy, ::fx]
    assert_allclose(measured[np.isfinite(z)], np.clip(z[np.isfinite(z)], 1, 2))
    assert measured[0, 0] == 2.0  # inf sits on the rim
    assert np.isnan(measured[2, 3]) and np.isfinite(measured[0, 1])
    assert np.nanmin(zf) >= 1.0 and np.nanmax(zf) <= 2.0
    holes = np.argwhere(np.isnan(zf))  # the four cells around the missing point, open
    assert (holes.min(0) == [fy + 1, 2 * fx + 1]).all() and (
        holes.max(0) == [3 * fy - 1, 4 * fx - 1]
    ).all()
    # A plane is reproduced exactly between the points.
    plane = 1.5 + 0.1 * xx + 0.2 * yy
    xf, yf, zf = plot.surface3d_heights(x, y, plane, 0.0, 3.0)
    assert_allclose(zf, 1.5 + 0.1 * xf[None, :] + 0.2 * yf[:, None])
    # A step (a rim) neither overshoots nor dips: monotone between the samples.
    step = np.repeat([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]], NY, axis=0)
    rows = plot.surface3d_heights(x, y, step, -5.0, 5.0)[2]
    assert rows.min() == 0.0 and rows.max() == 1.0 and np.all(np.diff(rows, axis=1) >= 0)
    # A grid as fine as the drawing is drawn as it is.
    fine = np.linspace(0, 1, 120)
    assert plot.surface3d_heights(fine, fine, np.ones((120, 120)), 0, 2)[2].shape == (120, 120)


def test_heatmap_leaves_out_nan_and_draws_diverged_above_the_scale(broken: SurfaceData) -> None:
    fig = plot.plot_surface(broken, "heatmap")
    (mesh,) = artists_of(main_axes(fig)[0], QuadMesh)
    arr = mesh.get_array()
    assert arr.shape == (NY, NX)
    z = broken.metrics["train_loss"]
    np.testing.assert_array_equal(np.ma.getmaskarray(arr), np.isnan(z))  # only NaN is a gap
    assert arr[1, 5] > mesh.norm.vmax  # +inf: the colour beyond the top
    assert fig.axes[1].get_ylabel() == "train loss" and mesh.colorbar.extend in ("max", "both")


@pytest.mark.parametrize("kind", plot.KINDS_2D)
def test_a_file_still_being_computed_says_so_and_greys_its_holes(
    kind: str, bowl: SurfaceData, broken: SurfaceData
) -> None:
    """NaN (not computed yet) is a hole; on a filled panel a white one reads as data, so the
    panel is grey behind and says how many points are missing. A diverged point is computed."""
    fig = plot.plot_surface(broken, kind)
    ax = main_axes(fig)[0]
    notes = [t.get_text() for t in ax.texts if "not computed" in t.get_text()]
    filled = kind in ("contourf", "heatmap")
    assert notes == [f"1 of {NX * NY} points not computed yet" + (" (grey)" if filled else "")]
    grey = matplotlib.colors.to_rgba(plot.figures.UNFINISHED_COLOR)
    assert (ax.get_facecolor() == grey) == filled
    ax = main_axes(plot.plot_surface(bowl, kind))[0]
    assert not [t for t in ax.texts if "not computed" in t.get_text()]
    assert ax.get_facecolor() != grey


def test_a_1d_file_still_being_computed_says_so(line: SurfaceData, repeats: SurfaceData) -> None:
    """A 1D curve of an unfinished file ends where its computed points do, which reads as a
    finished shorter line: its panel counts the missing points too, as a 2D panel does."""
    for surf in (line, repeats):
        for name in surf.metrics:
            surf.metrics[name][..., 8:] = np.nan
        surf.done[..., 8:] = False
        fig = plot.plot_surface(surf, "line")
        missing, total = int(np.sum(~surf.done)), surf.done.size
        notes = [t.get_text() for t in fig.axes[0].texts]
        assert notes == [f"{missing} of {total} points not computed yet"], notes


def test_contour_default_levels_are_robust_and_labelled(broken: SurfaceData) -> None:
    fig = plot.plot_surface(broken, "contour")
    ax = main_axes(fig)[0]
    (cs,) = artists_of(ax, ContourSet)
    finite = broken.metrics["train_loss"][np.isfinite(broken.metrics["train_loss"])]
    assert cs.levels[0] == pytest.approx(finite.min())
    assert cs.levels[-1] < 10  # not stretched to 1e30
    assert 15 <= len(cs.levels) <= 32  # round steps: between half and all of the 30 asked
    assert len(cs.labelTexts) > 0
    assert ax.get_xlabel() == "filter-normalized direction 1"
    assert ax.get_ylabel() == "filter-normalized direction 2"


def test_explicit_levels_and_log(bowl: SurfaceData) -> None:
    fig = plot.plot_surface(bowl, "contour", levels=[0.5, 1.0, 1.5], vmax=2.0)
    (cs,) = artists_of(main_axes(fig)[0], ContourSet)
    np.testing.assert_allclose(cs.levels, [0.5, 1.0, 1.5])

    fig = plot.plot_surface(bowl, "heatmap", log=True)
    (mesh,) = artists_of(main_axes(fig)[0], QuadMesh)
    arr = mesh.get_array()
    # The bowl is 0 at the origin: log10 of it is masked, everything else is log10(z).
    z = bowl.metrics["train_loss"]
    np.testing.assert_array_equal(np.ma.getmaskarray(arr), z <= 0)
    np.testing.assert_allclose(arr.compressed(), np.log10(z[z > 0]))
    assert fig.axes[1].get_ylabel() == "train loss (log scale)"


@pytest.mark.parametrize("kind", ["heatmap", "contourf", "surface3d"])
def test_a_log_scale_reads_in_the_metric_s_own_units(kind: str, bowl: SurfaceData) -> None:
    """The data are drawn as log10 of the loss; ticks sit at round losses and name them."""
    steep = surface(np.exp(6 * bowl.metrics["train_loss"]), "steep")  # 1 to about 1e5
    fig = plot.plot_surface(steep, kind, log=True)
    bar = fig.axes[-1]
    fig.draw_without_rendering()
    axes = [bar.yaxis] + ([main_axes(fig)[0].zaxis] if kind == "surface3d" else [])
    for axis in axes:
        ticks = [(t.get_loc(), t.label1.get_text()) for t in axis.get_major_ticks()]
        shown = [(loc, text) for loc, text in ticks if text]
        assert 3 <= len(shown) <= 9
        for loc, text in shown:
            assert float(text) == pytest.approx(10**loc, rel=1e-9)  # the label is the loss there
            assert float(text) / 10 ** np.floor(np.log10(float(text))) in (1, 2, 5)


def test_log_contour_labels_name_their_line_s_loss(bowl: SurfaceData) -> None:
    steep = surface(np.exp(3 * bowl.metrics["train_loss"]), "steep")
    fig = plot.plot_surface(steep, "contour", log=True)
    (cs,) = artists_of(main_axes(fig)[0], ContourSet)
    texts = [t.get_text() for t in cs.labelTexts]
    assert len(set(texts)) >= 2
    inner = np.asarray(cs.levels)[1:-1]
    for text in texts:
        # 2 significant digits are enough to tell levels a tenth of a decade apart.
        assert np.min(np.abs(float(text) / 10**inner - 1)) < 0.05, text
    assert fig.axes[0].get_title().endswith("train loss (log scale)")


@pytest.mark.parametrize("kind", ["heatmap", "surface3d"])
def test_log_tick_labels_stay_apart_over_a_narrow_range(kind: str, bowl: SurfaceData) -> None:
    """A log scale over a fraction of a percent (losses 1.58 to 1.585) ticks at evenly spaced
    values; at 3 significant digits every label read '1.58', so labels get the digits they need."""
    narrow = surface(1.58 + 0.005 * bowl.metrics["train_loss"] / 1.5, "narrow")
    fig = plot.plot_surface(narrow, kind, log=True)
    fig.draw_without_rendering()
    axes = [fig.axes[-1].yaxis] + ([main_axes(fig)[0].zaxis] if kind == "surface3d" else [])
    for axis in axes:
        shown = [t.label1.get_text() for t in axis.get_major_ticks() if t.label1.get_text()]
        assert len(shown) >= 3 and len(set(shown)) == len(shown), shown


def test_log_ticks_stay_few_and_round_over_any_range() -> None:
    ticks = plot.figures._log_ticks
    assert np.allclose(ticks(-1.3, 1.27), np.log10([0.1, 0.2, 0.5, 1, 2, 5, 10]))
    many = 10 ** ticks(-12, 12)  # 24 decades: powers of ten, at most 9 of them
    assert len(many) <= 9 and np.allclose(np.log10(many), np.round(np.log10(many)))
    short = ticks(0.05, 0.5)  # 1.12 to 3.16: only 2 and 3 are round digits inside
    assert len(short) >= 3 and short.min() >= 0.05 and short.max() <= 0.5
    narrow = ticks(0.0, 0.02)  # 1 to 1.047: no round digit inside but 1, evenly spaced ticks
    assert len(narrow) >= 3 and narrow.min() >= 0.0 and narrow.max() <= 0.02 + 1e-12


def test_metric_choice_and_errors(bowl: SurfaceData, line: SurfaceData) -> None:
    fig = plot.plot_surface(bowl, "heatmap", "train_acc")
    assert fig.axes[1].get_ylabel() == "train acc (%)"
    with pytest.raises(LandscapeError, match="did you mean train_loss"):
        plot.plot_surface(bowl, "contour", "trian_loss")
    with pytest.raises(LandscapeError, match="does not fit a 2D surface"):
        plot.plot_surface(bowl, "line")
    with pytest.raises(LandscapeError, match="does not fit a 1D surface"):
        plot.plot_surface(line, "contour")
    with pytest.raises(LandscapeError, match="unknown plot kind 'contours'"):
        plot.plot_surface(bowl, "contours")
    with pytest.raises(LandscapeError, match="vmin"):
        plot.plot_surface(bowl, "contour", vmin=2.0, vmax=1.0)
    with pytest.raises(LandscapeError, match="levels"):
        plot.plot_surface(bowl, "contour", levels=[1.0, 0.5])
    empty = surface(np.full((NY, NX), np.nan), "empty")
    with pytest.raises(LandscapeError, match="empty.h5: metric 'train_loss' has no finite values"):
        plot.plot_surface(empty, "heatmap")


def test_line_has_loss_and_accuracy_axes(line: SurfaceData, tmp_path: Path) -> None:
    fig = plot.plot_surface(line, "line")
    ax, twin = fig.axes
    assert [ln.get_label() for ln in ax.get_lines()] == ["train loss", "test loss"]
    assert [ln.get_label() for ln in twin.get_lines()] == ["train acc (%)", "test acc (%)"]
    assert [ln.get_linestyle() for ln in ax.get_lines()] == ["-", "--"]
    assert twin.get_ylabel() == "accuracy (%)"
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 4
    check_png(plot.save_figure(fig, tmp_path / "line.png", dpi=DPI), min_colors=3)


def test_line_with_repeats_overlays_every_draw(repeats: SurfaceData, tmp_path: Path) -> None:
    fig = plot.plot_surface(repeats, "line")
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 4  # three draws and their median
    np.testing.assert_allclose(lines[2].get_ydata(), repeats.metrics["train_loss"][2])
    np.testing.assert_allclose(lines[3].get_ydata(), repeats.metrics["train_loss"][1])
    check_png(plot.save_figure(fig, tmp_path / "rep.png", dpi=DPI), min_colors=3)


@pytest.mark.parametrize("kind", plot.KINDS_2D)
def test_compare_shares_one_scale(
    kind: str, bowl: SurfaceData, broken: SurfaceData, tmp_path: Path
) -> None:
    fig = plot.plot_compare([bowl, broken, bowl], kind, titles=["a", "b", "c"])
    panels = main_axes(fig)
    assert len(panels) == 3
    assert len(fig.axes) == 3 + (0 if kind == "contour" else 1)  # one shared colour bar
    assert [ax.get_title() for ax in panels] == ["a", "b", "c"]
    if kind in ("contour", "contourf"):
        sets = [artists_of(ax, ContourSet)[0] for ax in panels]
        for cs in sets[1:]:
            np.testing.assert_array_equal(cs.levels, sets[0].levels)
    elif kind == "heatmap":
        clims = {artists_of(ax, QuadMesh)[0].get_clim() for ax in panels}
        assert len(clims) == 1
    else:
        assert len({ax.get_zlim() for ax in panels}) == 1
    if kind == "contourf":
        check_png(plot.save_figure(fig, tmp_path / "cmp.png", dpi=DPI), min_colors=10)


def test_compare_levels_come_from_the_union(bowl: SurfaceData) -> None:
    steep = surface(3 * bowl.metrics["train_loss"], "steep")
    fig = plot.plot_compare([bowl, steep], "contour")
    first, second = (artists_of(ax, ContourSet)[0] for ax in main_axes(fig))
    np.testing.assert_array_equal(first.levels, second.levels)
    # The bowl's own panel reaches levels only the steeper surface has.
    assert first.levels[0] == 0.0 and first.levels[-1] > 2 * bowl.metrics["train_loss"].max()


def test_compare_1d_and_errors(line: SurfaceData, bowl: SurfaceData) -> None:
    fig = plot.plot_compare([line, line], titles=["sgd", "adam"])
    (ax,) = fig.axes
    assert [ln.get_label() for ln in ax.get_lines()] == ["sgd", "adam"]
    partial = dataclasses.replace(line, done=np.arange(len(line.x)) < 4)  # 4 of 11 so far
    (ax,) = plot.plot_compare([line, partial], titles=["sgd", "adam"]).axes
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels == ["sgd", f"adam ({len(line.x) - 4} of {len(line.x)} points not computed yet)"]
    with pytest.raises(LandscapeError, match="cannot compare 1D with 2D"):
        plot.plot_compare([line, bowl])
    with pytest.raises(LandscapeError, match="2 titles for 1 surfaces"):
        plot.plot_compare([bowl], titles=["a", "b"])
    with pytest.raises(LandscapeError, match="at least one"):
        plot.plot_compare([])


def test_trajectory_draws_path_and_epochs(bowl: SurfaceData, tmp_path: Path) -> None:
    path = np.column_stack([np.linspace(0.9, 0.0, 10), np.linspace(0.4, 0.0, 10)])
    epochs = list(range(0, 100, 10))
    fig = plot.plot_trajectory(bowl, path, epochs, xlabel="PC1", ylabel="PC2")
    (ax,) = fig.axes
    (track,) = [ln for ln in ax.get_lines() if ln.get_label() == "optimizer path"]
    np.testing.assert_allclose(track.get_xydata(), path)
    notes = [t.get_text() for t in ax.texts if isinstance(t, Annotation)]  # not contour labels
    assert notes[0] == "0" and notes[-1] == "90" and 2 <= len(notes) <= 6
    assert ax.get_xlabel() == "PC1" and ax.get_ylabel() == "PC2"
    check_png(plot.save_figure(fig, tmp_path / "traj.png", dpi=DPI), min_colors=5)
    with pytest.raises(LandscapeError, match=r"shape \(n, 2\)"):
        plot.plot_trajectory(bowl, np.zeros((4, 3)))
    with pytest.raises(LandscapeError, match="3 epochs for 10"):
        plot.plot_trajectory(bowl, path, [1, 2, 3])


def test_trajectory_labels_do_not_pile_up_where_epochs_bunch(bowl: SurfaceData) -> None:
    # Late epochs often sit on top of each other at the end of training.
    spread = np.column_stack([np.linspace(0.9, 0.3, 5), np.linspace(0.4, 0.1, 5)])
    bunched = np.tile([[0.0, 0.0]], (5, 1)) + np.linspace(0, 0.01, 5)[:, None]
    path = np.vstack([spread, bunched])
    fig = plot.plot_trajectory(bowl, path, list(range(10)))
    (ax,) = fig.axes
    notes = [t for t in ax.texts if isinstance(t, Annotation)]
    labelled = [int(t.get_text()) for t in notes]
    assert labelled[-1] == 9 and not any(5 <= e <= 8 for e in labelled)


def test_heatmap_array(tmp_path: Path) -> None:
    x, y, z = bowl_values()
    ratio = z / 3
    ratio[2, 2] = np.nan
    fig = plot.plot_heatmap_array(x, y, ratio, "curvature", "|lambda_min / lambda_max|")
    mesh = artists_of(fig.axes[0], QuadMesh)[0]
    assert np.ma.getmaskarray(mesh.get_array()).sum() == 1
    assert fig.axes[1].get_ylabel() == "|lambda_min / lambda_max|"
    check_png(plot.save_figure(fig, tmp_path / "h.png", dpi=DPI), min_colors=3)
    with pytest.raises(LandscapeError, match=r"expected \(len\(y\), len\(x\)\) = \(5, 7\)"):
        plot.plot_heatmap_array(x, y, z.T, "t", "c")


def test_save_figure_formats(bowl: SurfaceData, tmp_path: Path) -> None:
    for fmt in ("pdf", "svg"):
        out = plot.save_figure(plot.plot_surface(bowl, "heatmap"), tmp_path / "deep" / f"f.{fmt}")
        assert out.exists() and out.parent.name == "deep"
    pdf = (tmp_path / "deep" / "f.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # Embedded TrueType, not Type 3 fonts, which conference PDF checks refuse.
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf
    out = plot.save_figure(plot.plot_surface(bowl, "heatmap"), tmp_path / "run_lr=0.1", "png", DPI)
    assert out.name == "run_lr=0.1.png"
    check_png(out)
    with pytest.raises(LandscapeError, match="unknown figure format 'jpg'"):
        plot.save_figure(Figure(), tmp_path / "a.jpg")
    with pytest.raises(LandscapeError, match="does not match format 'pdf'"):
        plot.save_figure(Figure(), tmp_path / "a.png", fmt="pdf")
    with pytest.raises(LandscapeError, match="cannot tell the figure format"):
        plot.save_figure(Figure(), tmp_path / "a")


def test_plot_file_on_our_file(tmp_path: Path) -> None:
    x, y, z = bowl_values()
    src = tmp_path / "run" / "surf.h5"
    src.parent.mkdir()
    write_surface_file(src, x, y, {"train_loss": z, "train_acc": 100 - 20 * z})
    written = plot.plot_file(src, dpi=DPI)
    assert [p.name for p in written] == [f"surf_train_loss_{k}.png" for k in plot.KINDS_2D]
    for p in written:
        assert p.parent == src.parent
        check_png(p, min_colors=3)
    written = plot.plot_file(src, ["heatmap"], "train_acc", out_dir=tmp_path / "figs", fmt="svg")
    assert written == [tmp_path / "figs" / "surf_train_acc_heatmap.svg"] and written[0].exists()
    with pytest.raises(LandscapeError, match="does not fit a 2D surface"):
        plot.plot_file(src, ["line"])
    (log,) = plot.plot_file(src, ["heatmap"], "train_acc", out_dir=tmp_path / "figs", log=True)
    assert log.name == "surf_train_acc_heatmap_log.png"  # beside the linear one, not over it
    assert written[0].exists()


def test_plot_file_draws_every_repeat_of_a_2d_file(tmp_path: Path) -> None:
    x, y, z = bowl_values()
    src = tmp_path / "rep2d.h5"
    write_surface_file(src, x, y, {"train_loss": np.stack([z, 2 * z])}, repeats=2)
    written = plot.plot_file(src, ["heatmap"], dpi=DPI)
    assert [p.name for p in written] == [
        "rep2d_train_loss_heatmap_r0.png",
        "rep2d_train_loss_heatmap_r1.png",
    ]
    assert all(p.exists() for p in written)


def test_plot_file_on_1d_file(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 9)
    src = tmp_path / "line.h5"
    write_surface_file(src, x, None, {"train_loss": x**2, "train_acc": 100 - x**2})
    (out,) = plot.plot_file(src, dpi=DPI)
    assert out.name == "line_all_line.png"
    check_png(out, min_colors=3)


def test_plot_file_on_original_layout(tmp_path: Path) -> None:
    x, y, z = bowl_values()
    src = tmp_path / "orig.h5"
    xx, yy = np.meshgrid(x, y)
    with h5py.File(src, "w") as f:
        f["xcoordinates"] = x
        f["ycoordinates"] = y
        # The original code allocates (nx, ny) and fills it by the flat index of meshgrid(x, y).
        loss = xx**2 + 2 * yy**2  # (NY, NX)
        for name, v in (("train_loss", loss), ("train_acc", 100 - 20 * loss)):
            f[name] = v.ravel().reshape(NX, NY)
    np.testing.assert_allclose(read_surface(src).metrics["train_loss"], z)
    written = plot.plot_file(src, ["contour", "surface3d"], out_dir=tmp_path / "o", dpi=DPI)
    assert [p.name for p in written] == [
        "orig_train_loss_contour.png",
        "orig_train_loss_surface3d.png",
    ]
    for p in written:
        check_png(p, min_colors=3)


def test_surface_title_prefers_the_attribute_and_compare_keeps_panels_apart(
    bowl: SurfaceData,
) -> None:
    assert bowl.title == "bowl"
    panels = plot.plot_compare([bowl, bowl], "heatmap").axes[:2]
    assert [ax.get_title() for ax in panels] == ["bowl #1", "bowl #2"]
    bowl.attrs["title"] = "ResNet-56"
    assert bowl.title == "ResNet-56"
    assert plot.plot_surface(bowl, "contour").axes[0].get_title() == "ResNet-56: train loss"


@pytest.mark.parametrize("draw", ["surface", "heatmap_array", "trajectory"])
def test_public_figures_use_the_module_font_sizes(draw: str, bowl: SurfaceData) -> None:
    """Every public figure is drawn under the paper-ready sizes, whatever the caller's rcParams."""
    import matplotlib

    with matplotlib.rc_context({"axes.titlesize": 5}):
        if draw == "surface":
            fig = plot.plot_surface(bowl, "contour")
        elif draw == "heatmap_array":
            values = np.ones((len(bowl.y), len(bowl.x)))
            fig = plot.plot_heatmap_array(bowl.x, bowl.y, values, "t", "c")
        else:
            fig = plot.plot_trajectory(bowl, np.zeros((3, 2)), epochs=[1, 2, 3])
    assert fig.axes[0].title.get_fontsize() == plot._STYLE["axes.titlesize"]


def test_filled_contour_colour_bar_ticks_stay_inside_its_levels(bowl: SurfaceData) -> None:
    # The paper's levels 0.1, 0.6, ..., 9.6: a filled contour's bar drew round ticks beyond
    # them (0 and 10.5) at its ends, labelling the 0.1 band "0.0".
    levels = list(np.arange(0.1, 10.0, 0.5))
    fig = plot.plot_surface(surface(4 * bowl.metrics["train_loss"], "b"), "contourf", levels=levels)
    bar = fig.axes[1]._colorbar
    ticks = bar.get_ticks()
    assert len(ticks) >= 3
    assert (bar.vmin, bar.vmax) == (0.1, levels[-1])
    assert ticks.min() >= bar.vmin and ticks.max() <= bar.vmax


def label_boxes(fig: Figure) -> list:
    """The window extents of every panel's contour labels, after drawing."""
    fig.draw_without_rendering()
    return [
        (ax.get_window_extent(), [t.get_window_extent() for t in cs.labelTexts])
        for ax in main_axes(fig)
        for cs in artists_of(ax, ContourSet)
    ]


def test_contour_labels_are_whole_and_apart() -> None:
    # A 5x5 ResNet-56 surface from the quickstart's quick profile: matplotlib put "8.4" on the
    # left edge, where the axes cut it to "4", and labels at the corners on one another.
    z = np.array(
        [
            [8.805, 7.852, 7.393, 7.388, 7.47],
            [7.375, 5.93, 4.099, 4.69, 6.636],
            [7.552, 3.809, 3.037, 3.73, 6.056],
            [7.851, 4.642, 3.683, 4.454, 5.591],
            [7.714, 6.18, 5.281, 5.303, 5.78],
        ]
    )
    x = np.linspace(-1, 1, 5)
    coarse = SurfaceData(x=x, y=x, metrics={"train_loss": z}, done=np.ones((5, 5), bool))
    x, y, bowl = bowl_values()
    steep = surface(np.exp(3 * bowl), "steep")  # lines crowd at the corners
    figs = [plot.plot_surface(s, "contour") for s in (coarse, steep)]
    figs.append(plot.plot_compare([coarse, coarse], "contour"))
    for fig in figs:
        for box, labels in label_boxes(fig):
            assert len(labels) >= 2
            for i, a in enumerate(labels):
                assert box.x0 <= a.x0 and a.x1 <= box.x1 and box.y0 <= a.y0 and a.y1 <= box.y1
                assert not any(a.overlaps(b) for b in labels[:i])
    # The trained model's star stays uncovered.
    (ax,) = main_axes(figs[0])
    star = ax.transData.transform((0, 0))
    assert not any(t.get_window_extent().contains(*star) for t in ax.texts)


def test_vector_figures_have_no_seams_between_cells(bowl: SurfaceData, tmp_path: Path) -> None:
    # In a PDF, vector cells and facets are drawn with a light seam around each one (and a
    # 3D surface of 10,000 facets made a file of a megabyte): heat maps and 3D surfaces go in
    # as images, filled contour bands are edged in their own colour.
    for kind in ("heatmap", "surface3d"):
        pdf = plot.save_figure(plot.plot_surface(bowl, kind), tmp_path / f"{kind}.pdf").read_bytes()
        assert b"/Subtype /Image" in pdf and len(pdf) < 500_000  # images of 300 dpi
    x, y, z = bowl_values()
    fig = plot.plot_heatmap_array(x, y, z, "Hessian", "ratio")  # the curvature map
    pdf = plot.save_figure(fig, tmp_path / "h.pdf").read_bytes()
    widths = [int(w) for w in re.findall(rb"/Subtype /Image[^>]*?/Width (\d+)", pdf)]
    # An image as wide as the axes, not only the colour bar's narrow one.
    assert max(widths) >= 0.9 * 300 * main_axes(fig)[0].get_window_extent().width / fig.dpi
    fig = plot.plot_surface(bowl, "contourf")
    (bands,) = artists_of(main_axes(fig)[0], ContourSet)
    assert_allclose(bands.get_edgecolor(), bands.get_facecolor())


def test_a_panel_that_no_level_crosses_says_so(bowl: SurfaceData) -> None:
    # The quickstart's quick profile: the plain net's panel (2.26..2.47) fell between two of
    # the levels it shared with a steep one, and came out an empty square.
    flat = surface(2.32 + 0.01 * bowl.metrics["train_loss"], "flat")  # levels 2.3, 2.35
    steep = surface(2 + 10 * bowl.metrics["train_loss"], "steep")
    # The lowest level below the flat panel, or at its minimum, where it is a single point.
    for levels in (None, [2.32, 2.5, 5.0, 10.0]):
        fig = plot.plot_compare([steep, flat], "contour", levels=levels)
        texts = [[t.get_text() for t in ax.texts if "level" in t.get_text()] for ax in fig.axes]
        assert texts == [[], ["no level crossed: train loss 2.32 to 2.33"]]


def test_contour_labels_name_the_level_of_their_line(bowl: SurfaceData) -> None:
    # matplotlib 3.8 read a manually placed label's level by its index among all levels, so
    # labelling a subset of them failed (IndexError) or printed another level's number.
    steep = surface(np.exp(3 * bowl.metrics["train_loss"]), "steep")
    fig = plot.plot_surface(steep, "contour")
    (cs,) = artists_of(main_axes(fig)[0], ContourSet)
    assert len(cs.labelTexts) >= 2
    for text in cs.labelTexts:
        level = float(text.get_text())
        (i,) = np.flatnonzero(np.isclose(cs.levels, level, rtol=1e-3))
        x, y = text.get_position()
        # The label's centre lies on a line of its own level (its gap cut out around it).
        ends = np.concatenate([seg for seg in cs.allsegs[i] if len(seg)])
        assert np.hypot(*(ends - (x, y)).T).min() < 0.1


def test_trajectory_legend_covers_nothing_in_the_plane(bowl: SurfaceData) -> None:
    # Inside the axes, loc "best" ignores contour lines and their labels, so it hid some.
    path = np.column_stack([np.linspace(-0.9, 0.0, 8), np.linspace(0.4, 0.0, 8)])
    fig = plot.plot_trajectory(bowl, path, list(range(8)))
    (ax,) = fig.axes
    fig.draw_without_rendering()
    legends = [ax.get_legend(), *fig.legends]
    (legend,) = [lg for lg in legends if lg is not None]
    assert [t.get_text() for t in legend.get_texts()] == ["optimizer path", "start", "end"]
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())


@pytest.mark.parametrize("kind", ["heatmap", "surface3d"])
def test_vector_figures_draw_their_images_at_print_resolution(
    kind: str, bowl: SurfaceData, tmp_path: Path
) -> None:
    # Text and lines stay vectors; the parts drawn as images came out at the default 150 dpi,
    # soft in print.  A dpi above 300 is kept.
    def image_width(dpi: int | None) -> tuple[float, int]:
        fig = plot.plot_surface(bowl, kind)
        out = tmp_path / f"{dpi}.pdf"
        pdf = plot.save_figure(fig, out) if dpi is None else plot.save_figure(fig, out, dpi=dpi)
        pdf = pdf.read_bytes()
        assert b"/FontFile2" in pdf  # text as text
        inches = main_axes(fig)[0].get_window_extent().width / fig.dpi
        return inches, max(int(w) for w in re.findall(rb"/Subtype /Image[^>]*?/Width (\d+)", pdf))

    inches, pixels = image_width(None)
    if kind == "heatmap":  # the image fills the axes
        assert pixels >= 0.95 * 300 * inches
    assert image_width(150)[1] == pixels == pytest.approx(image_width(300)[1], abs=2)
    assert image_width(600)[1] == pytest.approx(2 * pixels, abs=4)


def test_3d_axis_labels_clear_their_tick_labels() -> None:
    # At matplotlib's default pad the y label ran into the "-0.50" tick label at this view.
    from matplotlib.textpath import TextPath

    x, y = np.linspace(-1, 1, 9), np.linspace(-0.6, 0.6, 7)
    xx, yy = np.meshgrid(x, y)
    flat = SurfaceData(x=x, y=y, metrics={"train_loss": xx**2 + yy**2}, done=np.ones((7, 9), bool))
    fig = plot.plot_surface(flat, "surface3d")
    fig.draw_without_rendering()
    (ax,) = main_axes(fig)
    px = fig.dpi / 72
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        ticks = [
            t.label1.get_window_extent()
            for t in axis.get_major_ticks()
            if lo - 1e-9 <= t.get_loc() <= hi + 1e-9 and t.label1.get_text()
        ]
        assert len(ticks) >= 3
        # Points over the label's own slanted rectangle (its window extent is an upright box).
        label = axis.label
        ext = TextPath((0, 0), label.get_text(), size=label.get_fontsize()).get_extents()
        angle = np.deg2rad(label.get_rotation())
        along, across = [np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]
        s, t = np.meshgrid(
            np.linspace(-ext.width / 2, ext.width / 2, 60),
            np.linspace(-ext.height / 2, 0.5 * ext.height, 7),
        )
        centre = label.get_window_extent().get_points().mean(0)
        pts = centre + px * (s.reshape(-1, 1) * along + t.reshape(-1, 1) * across)
        for box in ticks:
            dx = np.maximum(0, np.maximum(box.x0 - pts[:, 0], pts[:, 0] - box.x1))
            dy = np.maximum(0, np.maximum(box.y0 - pts[:, 1], pts[:, 1] - box.y1))
            gap = np.hypot(dx, dy).min() / px
            assert gap >= 3, f"{label.get_text()!r} is {gap:.1f} pt from a tick label"


def test_colour_bars_are_as_tall_as_the_panels_of_a_wide_plane(bowl: SurfaceData) -> None:
    # A plane drawn at equal scales leaves its slot taller than itself; the colour bar filled
    # the slot and stood far above and below the panels (twice their height for a 2:1 grid).
    x, y, z = bowl_values()
    figs = [
        plot.plot_surface(bowl, "heatmap"),
        plot.plot_compare([bowl, bowl], "contourf"),
        plot.plot_heatmap_array(x, y, z, "t", "c"),
    ]
    for fig in figs:
        fig.draw_without_rendering()
        (bar,) = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
        for panel in main_axes(fig):
            ratio = bar.get_position().height / panel.get_position().height
            assert 0.9 <= ratio <= 1.01
