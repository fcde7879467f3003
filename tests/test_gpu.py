"""Checks that need a CUDA GPU: they skip on machines without one (CI has none).

They were run on a lent GPU machine; see the README's speed section for the figures measured there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import landscape
from landscape.bench import calibrate_bn, run_benchmark
from landscape.cli import main
from landscape.config import EngineConfig
from landscape.directions import random_directions, target_tensors
from landscape.engine import AUTO_BATCH_SIZE, PointEvaluator
from landscape.models import create_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

GRID: dict[str, Any] = {"x": (-1.0, 1.0, 3), "y": (-1.0, 1.0, 3)}


def _net_and_data(device: str, n: int = 384) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """resnet20 on random 3x16x16 images, BN statistics of the data (a sane eval-mode net)."""
    torch.manual_seed(0)
    x = torch.randn(n, 3, 16, 16)
    y = torch.randint(0, 10, (n,))
    model = create_model("resnet20", num_classes=10, in_channels=3)
    calibrate_bn(model, x)
    return model.to(device).eval(), (x.to(device), y.to(device))


def _surface(device: str, **options: Any) -> Any:
    model, data = _net_and_data(device)
    return landscape.loss_surface(model, data, device=device, **GRID, **options)


def test_float32_on_the_gpu_equals_the_cpu_to_rounding() -> None:
    cpu = _surface("cpu").metrics["train_loss"]
    gpu = _surface("cuda").metrics["train_loss"]
    # Exact float32 (TF32 off): only summation order differs.
    np.testing.assert_allclose(gpu, cpu, rtol=2e-5)


def test_tf32_is_off_for_float32_and_restored_after() -> None:
    saved = torch.backends.cudnn.allow_tf32
    _surface("cuda", precision="tf32")
    assert torch.backends.cudnn.allow_tf32 == saved


def test_origin_is_the_models_own_loss_on_the_gpu() -> None:
    model, (x, y) = _net_and_data("cuda")
    reference = copy.deepcopy(model).cpu().double()
    with torch.no_grad():
        own = float(F.cross_entropy(reference(x.cpu().double()), y.cpu()))
    surface = landscape.loss_surface(model, (x, y), device="cuda", **GRID)
    assert surface.metrics["train_loss"][1, 1] == pytest.approx(own, rel=1e-5)


@pytest.mark.parametrize(
    ("precision", "tolerance"), [("tf32", 5e-3), ("bf16", 3e-2), ("fp16", 5e-3)]
)
def test_reduced_precisions_stay_close_and_are_recorded(
    precision: str, tolerance: float, tmp_path: Path
) -> None:
    # Near the origin: far out a random-init net's logits overflow fp16's range (65,504).
    near = {"x": (-0.2, 0.2, 3), "y": (-0.2, 0.2, 3)}
    model, data = _net_and_data("cuda")
    exact = landscape.loss_surface(model, data, device="cuda", **near).metrics["train_loss"]
    path = tmp_path / f"{precision}.h5"
    low = landscape.loss_surface(model, data, device="cuda", precision=precision, path=path, **near)
    np.testing.assert_allclose(low.metrics["train_loss"], exact, rtol=tolerance)
    assert landscape.Surface.load(path).attrs["precision"] == precision


@pytest.mark.parametrize(
    "engine",
    [
        EngineConfig(points_per_call=4),
        EngineConfig(fold_bn="off", channels_last="off"),
        EngineConfig(in_memory="off", workers=2),
        EngineConfig(channels_last="on"),
    ],
    ids=["vmap", "plain", "streamed", "nhwc"],
)
def test_engine_paths_agree_on_the_gpu(engine: EngineConfig) -> None:
    model, (x, y) = _net_and_data("cuda")
    default = landscape.loss_surface(model, (x, y), device="cuda", **GRID)
    data: Any = (x, y)
    if engine.in_memory == "off":  # a CPU dataset, read through a pinned-memory DataLoader
        data = torch.utils.data.TensorDataset(x.cpu(), y.cpu())
    other = landscape.loss_surface(model, data, device="cuda", engine=engine, **GRID)
    np.testing.assert_allclose(
        other.metrics["train_loss"], default.metrics["train_loss"], rtol=2e-5
    )
    np.testing.assert_array_equal(other.metrics["train_acc"], default.metrics["train_acc"])


def test_gpu_defaults_are_large_batches_and_nchw_in_exact_float32() -> None:
    model, _ = _net_and_data("cuda")
    targets = target_tensors(model, "weights")
    dirs = random_directions(targets, 2, seed=0)
    f32 = PointEvaluator(model, targets, dirs, engine=EngineConfig())
    bf16 = PointEvaluator(model, targets, dirs, precision="bf16", engine=EngineConfig())
    assert f32.batch_size == bf16.batch_size == AUTO_BATCH_SIZE["cuda"]
    assert not f32.choice.channels_last and bf16.choice.channels_last


def test_train_surface_and_plot_from_the_cli_on_the_gpu(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_yaml(
        {
            "name": "gpu",
            "device": "cuda",
            "out": str(tmp_path),
            "model": {"name": "resnet20"},
            "data": {"name": "digits", "subset": 256, "test_subset": 64},
            "train": {"epochs": 2, "batch_size": 64},
            "surface": {"x": [-1, 1, 5], "y": [-1, 1, 3], "samples": 128, "precision": "bf16"},
        }
    )
    runner = CliRunner()
    for command in ("train", "surface"):
        result = runner.invoke(main, [command, str(config), "--quiet"])
        assert result.exit_code == 0, result.output
    [h5] = tmp_path.rglob("*.h5")
    result = runner.invoke(main, ["plot", str(h5)])
    assert result.exit_code == 0, result.output
    surface = landscape.Surface.load(h5)
    assert surface.complete and surface.attrs["precision"] == "bf16"
    assert np.isfinite(surface.metrics["train_loss"]).all()
    assert list(tmp_path.rglob("*.png"))


def test_the_benchmark_on_the_gpu_reports_gpu_memory() -> None:
    results = run_benchmark(
        models=("resnet20",),
        image_size=16,
        samples=512,
        grid=(2, 2),
        batch_sizes=(256, 512),
        precisions=("float32", "tf32", "bf16", "fp16"),
        device="cuda",
        baseline_workers=0,
    )
    assert [r["precision"] for r in results] == ["float32", "tf32", "bf16", "fp16"]
    for r in results:
        assert r["cuda_peak_mb"] > 0 and r["landscape_images_per_s"] > 0
        # The baseline runs with PyTorch's defaults, TF32 convolutions included.
        assert r["baseline_loss_max_rel_err"] < 2e-3
    # fp16 may overflow far from the origin of a random-init net; that is reported, not hidden.
    assert all(r["loss_max_rel_err"] < 0.05 for r in results if r["precision"] != "fp16")
    assert all(r["nonfinite_points"] == 0 for r in results if r["precision"] != "fp16")
