"""Smoke test of the benchmark on a tiny model and grid: shape of the results, not speed."""

from __future__ import annotations

import json

import pytest

from landscape.bench import format_results, projected_minutes, run_benchmark, to_json_line

pytestmark = pytest.mark.usefixtures("single_thread")


def test_benchmark_reports_every_figure() -> None:
    messages: list[str] = []
    results = run_benchmark(
        models=("resnet20",),
        image_size=8,
        samples=24,
        grid=(2, 1),
        batch_sizes=(8, 24),
        precisions=("float32", "bf16"),
        device="cpu",
        points_per_call=(1, 2),
        progress=messages.append,
    )
    assert [(r["precision"], r["points_per_call"]) for r in results] == [
        ("float32", 1),
        ("bf16", 1),
        ("float32", 2),
    ]
    assert messages and all(m.startswith("resnet20: ") for m in messages)
    for r in results:
        for key in (
            "raw_images_per_s",
            "landscape_images_per_s",
            "baseline_images_per_s",
            "vs_raw",
            "vs_baseline",
            "projected_minutes_51x51_50k",
            "peak_rss_mb",
        ):
            assert r[key] > 0, key
        assert r["weights"].startswith("random-init") and r["cuda_peak_mb"] is None
        assert r["nonfinite_points"] == 0
        assert r["raw_batch_size"] in (8, 24)
        assert r["engine"]["fold_bn"] and r["engine"]["channels_last"]
        # The baseline computes the same losses by another route: a check of both.
        assert r["baseline_loss_max_rel_err"] < 1e-4
        assert json.loads(to_json_line(r)) == r
    f32, bf16, vmapped = results
    assert f32["loss_max_abs_err"] == 0.0 and vmapped["loss_max_rel_err"] < 1e-5
    assert 0 < bf16["loss_max_rel_err"] < 0.05
    table = format_results(results)
    assert table.count("resnet20") == 3 and "random-init" in table


def test_projection_is_points_times_images_over_rate() -> None:
    assert projected_minutes(1000.0) == pytest.approx(2601 * 50000 / 1000 / 60)
    assert projected_minutes(600.0, points=6, samples=100) == pytest.approx(1 / 60)


def test_bench_command_passes_the_memory_format_and_keeps_the_cpu_batch_default() -> None:
    from click.testing import CliRunner

    from landscape.cli import main

    args = "bench --models resnet20 --image-size 8 --samples 16 --grid 1x1 --precisions float32"
    args += " --raw-batch-sizes 8,16 --no-baseline --device cpu --quiet"
    for memory_format, nhwc in (("off", False), ("auto", True)):
        result = CliRunner().invoke(main, [*args.split(), "--channels-last", memory_format])
        assert result.exit_code == 0, result.output
        [line] = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
        assert line["engine"]["channels_last"] is nhwc
        assert line["engine"]["batch_size"] == 1000  # the surface's CPU default
        assert line["vs_raw"] > 0 and line["loss_max_abs_err"] == 0.0


def test_a_checkpoint_keeps_its_own_model_arguments(tmp_path) -> None:
    """A 100-class checkpoint with no stored config runs on the 10-class benchmark data: the
    benchmark's sizes are only for bare state_dicts."""
    from landscape.checkpoint import save_checkpoint
    from landscape.models import create_model

    args = {"num_classes": 100, "in_channels": 3}
    path = save_checkpoint(tmp_path / "c100.pt", create_model("resnet20", **args), "resnet20", args)
    (r,) = run_benchmark(
        models=("resnet20",), image_size=8, samples=8, grid=(1, 1), precisions=("float32",),
        baseline=False, trained_checkpoint=str(path), batch_sizes=(8,),
    )  # fmt: skip
    assert r["weights"] == "trained" and r["landscape_images_per_s"] > 0


def test_a_checkpoint_from_a_figure_config_reads_its_own_data(tmp_path) -> None:
    """A run of a two-run figure config stores the figure's compare section (two titles) with its
    config: the benchmark still reads that config for the run's own training data."""
    from landscape.checkpoint import save_checkpoint
    from landscape.config import config_from_dict, select_runs
    from landscape.models import create_model

    figure = config_from_dict(
        {
            "data": {"name": "digits", "subset": 40, "test_subset": 20},
            "runs": [{"name": "a", "model": {"name": "resnet20"}}, {"name": "b"}],
            "compare": {"titles": ["A", "B"]},
        }
    )
    (run,) = select_runs(figure, ["a"])
    args = {"num_classes": 10, "in_channels": 1}
    path = save_checkpoint(
        tmp_path / "a.pt", create_model("resnet20", **args), "resnet20", args,
        config=run.to_dict(),
    )  # fmt: skip
    (r,) = run_benchmark(
        models=("resnet20",), samples=16, grid=(1, 1), precisions=("float32",),
        baseline=False, trained_checkpoint=str(path), batch_sizes=(8,),
    )  # fmt: skip
    assert r["data"] == "16 training examples of digits" and r["weights"] == "trained"
