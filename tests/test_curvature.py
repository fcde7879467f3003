"""Tests for the Hessian map: zero on a convex quadratic, resumable, aligned with the surface."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from landscape.cli import main
from landscape.curvature import (
    HessianOptions,
    compute_hessian_map,
    curvature_grid,
    draw_hessian_ratio,
    read_center,
)
from landscape.engine import mean_loss
from landscape.errors import ConfigError, LandscapeError
from landscape.hessian import dense_hessian
from landscape.stats import HESSIAN_RATIO, file_stats
from landscape.storage import read_attrs, read_directions, read_extra, read_surface
from landscape.surface import compute_surface

pytestmark = pytest.mark.usefixtures("single_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = np.linspace(-1.0, 1.0, 3)


def _random_direction(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}


def test_mean_loss_is_the_batch_mean() -> None:
    out, y = torch.randn(7, 4), torch.randint(0, 4, (7,))
    torch.testing.assert_close(mean_loss("crossentropy")(out, y), F.cross_entropy(out, y))


def test_convex_quadratic_has_a_zero_ratio_everywhere() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(32, 3), torch.randn(32, 2)

    def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((out - target) ** 2).mean()

    before = {k: v.clone() for k, v in model.state_dict().items()}
    dirs = [_random_direction(model, 1), _random_direction(model, 2)]
    maps = curvature_grid(model, mse, x, y, dirs, GRID, GRID, ignore="none", iters=8, batch_size=10)
    assert maps["ratio"].shape == (3, 3)
    np.testing.assert_array_equal(maps["ratio"], 0.0)
    # The Hessian of a quadratic is the same everywhere, and Lanczos finds its spectrum's ends.
    spectrum = torch.linalg.eigvalsh(dense_hessian(model, mse, x, y)).double()
    np.testing.assert_allclose(maps["lambda_max"], float(spectrum[-1]), rtol=1e-5)
    np.testing.assert_allclose(maps["lambda_min"], float(spectrum[0]), rtol=1e-4)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_tiny_conv_map_is_finite_and_restores_the_model(tiny_net: nn.Module) -> None:
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    dirs = [_random_direction(tiny_net, 1), _random_direction(tiny_net, 2)]
    maps = curvature_grid(tiny_net, mean_loss("crossentropy"), x, y, dirs, GRID, GRID, iters=6)
    for name in ("lambda_max", "lambda_min", "ratio"):
        assert np.all(np.isfinite(maps[name])), name
    assert np.all(maps["lambda_max"] >= maps["lambda_min"])
    assert np.all(maps["ratio"] >= 0)
    for k, v in tiny_net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


@pytest.fixture
def surfaced(make_config: Callable[..., Any]) -> Any:
    """A config over the shared checkpoint with its 3 x 3 surface computed."""
    cfg = make_config(surface={"x": [-1, 1, 3], "y": [-1, 1, 3]})
    compute_surface(cfg)
    return cfg


def test_map_resumes_and_lines_up_with_the_surface(surfaced: Any, tmp_path: Path) -> None:
    cfg = surfaced
    opts = HessianOptions(grid=3, iters=4, probes=2)
    path = compute_hessian_map(cfg, options=opts, limit=4)
    part = read_surface(path)
    assert int(part.done.sum()) == 4 and HESSIAN_RATIO not in read_extra(cfg.surface_path)
    compute_hessian_map(cfg, options=opts)
    resumed = read_surface(path)
    full = read_surface(compute_hessian_map(cfg, options=opts, path=tmp_path / "full.h5"))
    assert resumed.complete
    # One history record per run that computed points: 4, then the other 5.
    history = json.loads(read_attrs(path)["history"])
    assert [r["points"] for r in history] == [4, 5]
    assert history[0]["device"] == "cpu" and history[0]["processes"] == 1
    for name in ("lambda_max", "lambda_min", "ratio", "train_loss"):
        assert np.all(np.isfinite(resumed.metrics[name])), name
        np.testing.assert_allclose(resumed.metrics[name], full.metrics[name], rtol=1e-6)

    # Same directions and the same points as the surface, so the same losses.
    surf = read_surface(cfg.surface_path)
    for mine, theirs in zip(read_directions(path), read_directions(cfg.surface_path), strict=True):
        for k in theirs:
            np.testing.assert_array_equal(mine[k], theirs[k])
    np.testing.assert_allclose(resumed.metrics["train_loss"], surf.metrics["train_loss"], rtol=1e-5)
    assert read_attrs(path)["directions_source"] == str(cfg.surface_path)

    # The grids match, so the map is in surface.h5 where stats finds it.
    stored, note = read_extra(cfg.surface_path)[HESSIAN_RATIO]
    np.testing.assert_array_equal(stored, resumed.metrics["ratio"])
    assert note["iters"] == 4
    assert file_stats(cfg.surface_path)["stats"]["hessian_points"].mean == 9
    assert file_stats(path)["stats"]["hessian_points"].mean == 9

    center = read_center(path)
    assert center["lambda_max"] > 0 and np.isfinite(center["trace"])
    with pytest.raises(LandscapeError, match="iters: 4 in the file, 5 now.*--overwrite"):
        compute_hessian_map(cfg, options=HessianOptions(grid=3, iters=5, probes=2))
    cfg.surface.batch_size = 7  # a speed option: the finished file is still this run's
    assert compute_hessian_map(cfg, options=opts) == path


def test_coarser_grid_stays_out_of_the_surface_file(surfaced: Any, tmp_path: Path) -> None:
    cfg = surfaced
    said: list[str] = []
    opts = HessianOptions(grid=2, iters=3, probes=2)
    path = compute_hessian_map(cfg, options=opts, log=said.append)
    surf = read_surface(path)
    assert surf.shape == (2, 2)
    # Three steps cannot settle a Hessian of this size: each point says how Lanczos ended.
    assert np.all(surf.metrics["lanczos_steps"] <= 3)
    unsettled = int(np.sum(surf.metrics["lanczos_residual"] > 1e-3))
    assert unsettled >= 1
    message = f"did not reach tolerance 0.001 in 3 steps at {unsettled} of 4 points"
    assert any(message in s for s in said)
    assert HESSIAN_RATIO in read_extra(path)
    assert HESSIAN_RATIO not in read_extra(cfg.surface_path)
    figure = draw_hessian_ratio(path, tmp_path / "ratio.png")
    assert figure is not None and figure.read_bytes()[:8] == PNG_MAGIC


def test_cli_hessian_writes_the_heat_map(
    trained_checkpoint: Path, write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_yaml(
        {
            "name": "h",
            "device": "cpu",
            "out": str(tmp_path / "out"),
            "checkpoint": str(trained_checkpoint),
            "model": {"name": "resnet20"},
            "data": {"name": "digits", "subset": 64, "test_subset": 32},
            "surface": {"x": [-1, 1, 5], "y": [-1, 1, 5], "samples": 32, "batch_size": 32},
        }
    )
    args = ["hessian", str(config), "--grid", "2", "--iters", "3", "--probes", "2", "-q"]
    result = CliRunner().invoke(main, [*args, "--samples", "16"])
    assert result.exit_code == 0, result.output
    assert "lambda_max" in result.stderr and "trace" in result.stderr
    run_dir = tmp_path / "out" / "h"
    figure = run_dir / "figures" / "hessian_ratio.png"
    assert str(figure) in result.stdout and figure.read_bytes()[:8] == PNG_MAGIC
    attrs = read_attrs(run_dir / "hessian.h5")
    assert attrs["samples"] == 16 and attrs["directions_source"].startswith("config")
    assert read_surface(run_dir / "hessian.h5").complete


def test_grid_surface_follows_a_non_square_surface_into_its_file(make_config: Any) -> None:
    cfg = make_config(surface={"x": [-1, 1, 3], "y": [-0.5, 0.5, 2]}, hessian={"grid": "surface"})
    compute_surface(cfg)
    path = compute_hessian_map(cfg, options=HessianOptions(grid="surface", iters=3, probes=2))
    ratio = read_surface(path).metrics["ratio"]
    assert ratio.shape == (2, 3)
    stored, _ = read_extra(cfg.surface_path)[HESSIAN_RATIO]
    np.testing.assert_array_equal(stored, ratio)
    with pytest.raises(
        ConfigError, match="hessian.grid: must be a number of points per axis or surface"
    ):
        HessianOptions(grid="surfce").validate("hessian")


def test_a_map_begun_before_lanczos_tolerances_resumes(surfaced: Any) -> None:
    import h5py
    import yaml

    cfg = surfaced
    opts = HessianOptions(grid=2, iters=3, tol=0.0, probes=2)
    path = compute_hessian_map(cfg, options=opts, limit=2)
    # Make it the file an older landscape wrote: no Lanczos metrics, no tol in its fingerprint.
    with h5py.File(path, "r+") as f:
        for name in ("lanczos_steps", "lanczos_residual"):
            del f[name]
        f.attrs["metrics"] = [m for m in f.attrs["metrics"] if not m.startswith("lanczos_")]
        settings = yaml.safe_load(f.attrs["hessian_fingerprint"])
        del settings["tol"]
        f.attrs["hessian_fingerprint"] = yaml.safe_dump(settings, sort_keys=True)
    compute_hessian_map(cfg, options=opts)  # resumes with the same settings
    surf = read_surface(path)
    assert surf.complete and "lanczos_steps" not in surf.metrics
    assert np.all(np.isfinite(surf.metrics["ratio"]))
    with pytest.raises(LandscapeError, match="tol: 0.0 in the file, 0.001 now"):
        compute_hessian_map(cfg, options=HessianOptions(grid=2, iters=3, probes=2))


def test_the_centre_numbers_are_the_maps_origin_with_recomputed_bn(
    make_config: Callable[..., Any],
) -> None:
    cfg = make_config(surface={"x": [-1, 1, 3], "y": [-1, 1, 3], "bn": "recompute"})
    path = compute_hessian_map(cfg, options=HessianOptions(grid=3, iters=6, tol=0.0, probes=2))
    center, surf = read_center(path), read_surface(path)
    for name in ("lambda_max", "lambda_min"):
        # The same weights and BatchNorm statistics: the same Hessian at (0, 0).
        assert center[name] == pytest.approx(surf.metrics[name][1, 1], rel=1e-5, abs=1e-8), name


def test_overwrite_with_data_that_fail_keeps_the_map(make_config: Any) -> None:
    """--overwrite deletes the old map only once the data have loaded: a mistake in them (here
    a train subset larger than the data, read for bn: recompute) leaves the map as it was."""
    over = {"surface": {"x": [-1, 1, 2], "y": [-1, 1, 2], "splits": ["test"], "bn": "recompute"}}
    opts = HessianOptions(grid=2, iters=3, probes=2)
    path = compute_hessian_map(make_config(**over), options=opts)
    before = path.read_bytes()
    bad = make_config(**over, data={"subset": 100_000})
    with pytest.raises(LandscapeError, match="subset"):
        compute_hessian_map(bad, options=opts, overwrite=True)
    assert path.read_bytes() == before
