"""Tests for the trajectory run: a planted path is recovered, the file resumes, the CLI draws it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_RAW

from landscape.checkpoint import save_checkpoint
from landscape.cli import main
from landscape.config import Config, config_from_dict, deep_merge
from landscape.errors import LandscapeError
from landscape.paths import (
    PATH_EXTRAS,
    TrajectoryOptions,
    compute_trajectory,
    draw_trajectory,
    path_checkpoints,
)
from landscape.storage import read_directions, read_extra, read_surface
from landscape.train import build_model, model_args

pytestmark = pytest.mark.usefixtures("single_thread")

# Plane coordinates of the planted checkpoints; the last is the final weights.
PLANTED = np.array([[3.0, 1.0], [2.0, 1.6], [1.2, 1.1], [0.5, 0.3], [0.0, 0.0]])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _raw(out: Path) -> dict[str, Any]:
    return deep_merge(copy.deepcopy(TINY_RAW), {"out": str(out)})


def _plant(cfg: Config, coords: np.ndarray = PLANTED) -> list[torch.Tensor]:
    """Checkpoints final + c1 d1 + c2 d2 with orthonormal d1, d2 on the conv/linear weights only.

    Biases, BN weights and BN statistics are the same in every checkpoint, so the plane holds the
    whole path. Returns d1 and d2 flattened over the weights of dimension > 1.
    """
    torch.manual_seed(0)
    model = build_model(cfg)
    names = [n for n, p in model.named_parameters() if p.dim() > 1]
    params = dict(model.named_parameters())
    sizes = [params[n].numel() for n in names]
    basis, _ = torch.linalg.qr(torch.randn(sum(sizes), 2, dtype=torch.float64))  # (P, 2)
    final = {n: params[n].detach().clone() for n in names}
    margs = model_args(cfg)
    for t, c in enumerate(coords):
        flat = basis @ torch.as_tensor(c, dtype=torch.float64)  # (P,)
        with torch.no_grad():
            for n, piece in zip(names, flat.split(sizes), strict=True):
                params[n].copy_(final[n] + piece.reshape(final[n].shape).float())
        files = [f"epoch_{t:03d}.pt"] + (["final.pt"] if t == len(coords) - 1 else [])
        for f in files:
            save_checkpoint(cfg.checkpoint_dir / f, model, cfg.model.name, margs, epoch=t)
    return [basis[:, 0], basis[:, 1]]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path, list[torch.Tensor]]:
    """A planted run and its trajectory file on a 5 x 5 grid."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = config_from_dict(_raw(tmp_path_factory.mktemp("planted")))
        basis = _plant(cfg)
        path = compute_trajectory(cfg, options=TrajectoryOptions(grid=5))
    finally:
        torch.set_num_threads(threads)
    return cfg, path, basis


def test_path_checkpoints_end_at_final_without_its_copy(
    planted: tuple[Config, Path, list[torch.Tensor]],
) -> None:
    cfg, _, _ = planted
    found = path_checkpoints(cfg.checkpoint_dir)
    assert [e for e, _ in found] == [0, 1, 2, 3, 4]
    assert found[-1][1].name == "final.pt"


def test_planted_path_is_recovered(planted: tuple[Config, Path, list[torch.Tensor]]) -> None:
    _, path, basis = planted
    extra = {k: v for k, (v, _) in read_extra(path).items()}
    assert set(PATH_EXTRAS) <= set(extra)
    xy = extra["path_xy"]
    assert xy.shape == (len(PLANTED), 2)
    np.testing.assert_allclose(xy[-1], 0.0, atol=1e-9)
    # The plane is found up to a rotation within it: distances from the final point survive.
    np.testing.assert_allclose(
        np.linalg.norm(xy, axis=1), np.linalg.norm(PLANTED, axis=1), rtol=1e-5
    )
    np.testing.assert_allclose(extra["path_residual"], 0.0, atol=1e-5)
    ev = extra["explained_variance"]
    assert ev.shape == (2,) and np.all((ev >= 0) & (ev <= 1))
    assert ev[0] >= ev[1] and ev.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_array_equal(extra["path_epochs"], np.arange(len(PLANTED)))
    # Stored directions span the planted plane: projecting them onto it loses nothing.
    plane = torch.stack(basis, dim=1)  # (P, 2)
    for d in read_directions(path):
        flat = torch.cat(
            [torch.as_tensor(v).reshape(-1).double() for v in d.values() if v.ndim > 1]
        )
        assert float((flat - plane @ (plane.T @ flat)).norm()) < 1e-5


def test_loss_along_the_planted_path_is_the_same_on_the_plane(
    planted: tuple[Config, Path, list[torch.Tensor]],
) -> None:
    _, path, _ = planted
    extra = read_extra(path)
    projected, note = extra["path_loss_projected"]
    actual, _ = extra["path_loss_actual"]
    assert note["metric"] == "train_loss"
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(projected, actual, rtol=1e-4)


def test_grid_covers_the_path_and_is_complete(
    planted: tuple[Config, Path, list[torch.Tensor]],
) -> None:
    _, path, _ = planted
    surf = read_surface(path)
    xy = read_extra(path)["path_xy"][0]
    assert surf.complete and surf.shape == (5, 5)
    assert np.all(np.isfinite(surf.metrics["train_loss"]))
    assert surf.x.min() < xy[:, 0].min() and surf.x.max() > xy[:, 0].max()
    assert surf.y.min() < xy[:, 1].min() and surf.y.max() > xy[:, 1].max()
    assert surf.axis_label(0).startswith("PC1: ") and surf.axis_label(0).endswith(" %")


def test_figure_is_a_png(planted: tuple[Config, Path, list[torch.Tensor]], tmp_path: Path) -> None:
    _, path, _ = planted
    fig = draw_trajectory(path, tmp_path / "trajectory.png")
    assert fig.read_bytes()[:8] == PNG_MAGIC


def test_interrupted_grid_resumes_to_the_same_surface(tmp_path: Path) -> None:
    cfg = config_from_dict(_raw(tmp_path))
    _plant(cfg)
    opts = TrajectoryOptions(grid=3)
    calls: list[tuple[int, int]] = []

    class Stop:
        """A progress bar that interrupts the run after two points, like Ctrl-C."""

        def __init__(self, total: int, initial: int) -> None:
            calls.append((total, initial))
            self.n = 0

        def update(self, k: int) -> None:
            self.n += k
            if self.n == 2 and len(calls) == 1:
                raise KeyboardInterrupt

        def close(self) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        compute_trajectory(cfg, options=opts, progress=Stop)
    assert int(read_surface(cfg.run_dir / "trajectory.h5").done.sum()) == 2
    path = compute_trajectory(cfg, options=opts, progress=Stop)
    assert calls == [(9, 0), (7, 0)]  # the second run computes only the 7 points left
    fresh = compute_trajectory(cfg, options=opts, path=tmp_path / "fresh.h5")
    np.testing.assert_allclose(
        read_surface(path).metrics["train_loss"], read_surface(fresh).metrics["train_loss"]
    )
    # A finished file is not computed again, and other settings are refused.
    compute_trajectory(cfg, options=opts, progress=Stop)
    assert len(calls) == 2
    with pytest.raises(LandscapeError, match="grid: 3 in the file, 4 now.*--overwrite"):
        compute_trajectory(cfg, options=TrajectoryOptions(grid=4))


def test_too_short_a_path_is_a_clear_error(tmp_path: Path) -> None:
    cfg = config_from_dict(_raw(tmp_path))
    _plant(cfg, PLANTED[-2:])
    with pytest.raises(LandscapeError, match="save_every"):
        compute_trajectory(cfg)


def test_cli_trajectory_of_a_real_training_run(
    tmp_path: Path, write_yaml: Callable[..., Path]
) -> None:
    raw = _raw(tmp_path / "out")
    raw["train"] = {**raw["train"], "epochs": 3, "save_every": 1}
    config = write_yaml(raw)
    runner = CliRunner()
    trained = runner.invoke(main, ["train", str(config), "-q"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(main, ["trajectory", str(config), "--grid", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert "PC1" in result.stderr and "explained" in result.stderr
    run_dir = tmp_path / "out" / "t"
    figure = run_dir / "figures" / "trajectory.png"
    assert str(figure) in result.stdout and figure.read_bytes()[:8] == PNG_MAGIC
    extra = read_extra(run_dir / "trajectory.h5")
    xy = extra["path_xy"][0]
    assert xy.shape == (4, 2)  # epochs 0, 1, 2 and final
    np.testing.assert_allclose(xy[-1], 0.0, atol=1e-9)
    ev = extra["explained_variance"][0]
    assert np.all((ev >= 0) & (ev <= 1)) and ev.sum() <= 1 + 1e-9
    # At the final weights the plane and the checkpoint are the same network.
    assert extra["path_loss_projected"][0][-1] == pytest.approx(
        extra["path_loss_actual"][0][-1], rel=1e-5
    )


def test_repeats_plot_one_curve_per_draw(make_config: Callable[..., Any]) -> None:
    from landscape.plot import plot_repeats
    from landscape.surface import compute_surface

    cfg = make_config(surface={"x": [-1, 1, 3], "y": None, "repeats": 3})
    surf = read_surface(compute_surface(cfg))
    assert surf.repeats == 3 and surf.metrics["train_loss"].shape == (3, 3)
    fig = plot_repeats(surf)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert [lab for lab in labels if lab.startswith("draw ")] == ["draw 1", "draw 2", "draw 3"]
    assert "median of 3 draws" in labels
    # Different seeds give different curves.
    curves = surf.metrics["train_loss"]
    assert not np.allclose(curves[0], curves[1])


def test_overwrite_with_data_that_fail_keeps_the_trajectory(tmp_path: Path) -> None:
    """--overwrite deletes the old file only once the data have loaded: a mistake in them (here
    a subset larger than the data) leaves the finished trajectory as it was."""
    cfg = config_from_dict(_raw(tmp_path))
    _plant(cfg)
    path = compute_trajectory(cfg, options=TrajectoryOptions(grid=2))
    before = path.read_bytes()
    bad = config_from_dict(deep_merge(_raw(tmp_path), {"data": {"subset": 100_000}}))
    with pytest.raises(LandscapeError, match="subset"):
        compute_trajectory(bad, options=TrajectoryOptions(grid=2), overwrite=True)
    assert path.read_bytes() == before
