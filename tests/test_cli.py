"""Tests for the command line: instant help, real training, and one-line errors with exit code 1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from conftest import write_surface_file
from torch import nn

from landscape.checkpoint import load_checkpoint, model_from_checkpoint
from landscape.cli import main
from landscape.models import count_parameters, list_models, model_family

LANDSCAPE = Path(sys.executable).with_name("landscape")

# Two epochs in the file so that a test can see --set take effect.
TINY = """\
name: tiny
device: cpu
model: {name: resnet20}
data: {name: digits, subset: 64, test_subset: 32}
train: {epochs: 2, batch_size: 32}
surface: {x: [-1, 1, 3], y: null, samples: 32, batch_size: 32}
profiles:
  quick: {train: {epochs: 1}}
"""

FIGURE = TINY.replace("name: tiny", "name: fig") + "runs: [{name: a}, {name: b}]\n"

# One torch thread: on the shared 2-core machine, more threads spin and wait (8x slower).
pytestmark = pytest.mark.usefixtures("single_thread")


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_clean_error(result: Result, *words: str) -> str:
    """Exit 1 through click (not a crash), and one 'Error: ...' line with every word in it."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for w in words:
        assert w in lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- help


def test_help_lists_every_command() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    for name in main.commands:
        assert name in result.output
    assert set(main.commands) >= {"models", "train", "surface", "plot", "compare", "export"}


@pytest.mark.parametrize("command", sorted(main.commands))
def test_command_help(command: str) -> None:
    result = _invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: main {command}" in result.output
    assert "Example" in result.output  # the docstring is the help, with an example


def test_help_is_instant_in_a_real_process() -> None:
    # Best of three, so one scheduling hiccup on a busy machine does not fail the test.
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        proc = subprocess.run([LANDSCAPE, "--help"], capture_output=True, text=True, timeout=60)
        times.append(time.perf_counter() - tic)
        assert proc.returncode == 0 and "Usage:" in proc.stdout, proc.stderr
    assert min(times) < 1.0, times


def test_cli_import_is_light() -> None:
    code = (
        "import sys, landscape.cli\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'h5py', 'numpy') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "landscape", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "train" in proc.stdout


# ----------------------------------------------------------------------------- models


def test_models_lists_every_registered_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building the 54M-parameter wide ResNets takes seconds; a stand-in keeps this test fast.
    built: list[tuple[str, int, int]] = []

    def stand_in(name: str, num_classes: int, in_channels: int) -> nn.Module:
        built.append((name, num_classes, in_channels))
        return nn.Linear(in_channels, len(name))

    monkeypatch.setattr("landscape.models.create_model", stand_in)
    result = _invoke("models")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert sorted(rows) == list_models()
    assert built == [(name, 10, 3) for name in list_models()]
    for name, (_, family, params) in rows.items():
        assert family == model_family(name)
        assert int(params.replace(",", "")) == count_parameters(nn.Linear(3, len(name)))


@pytest.mark.slow
def test_models_real_counts() -> None:
    from landscape.models import create_model

    result = _invoke("models")
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if line.startswith("resnet20 "))
    expected = count_parameters(create_model("resnet20", num_classes=10, in_channels=3))
    assert row.split()[-1] == f"{expected:,}"


# ----------------------------------------------------------------------------- train


def test_train_prints_the_final_checkpoint(write_yaml: Callable[..., Path], tmp_path: Path) -> None:
    config = write_yaml(TINY)
    out = tmp_path / "out"
    result = _invoke("train", config, "--out", out, "--quiet", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    final = out / "tiny" / "checkpoints" / "final.pt"
    assert result.stdout.splitlines() == [str(final)]
    assert "epoch 1/1" not in result.stderr  # --quiet: no line per epoch either
    model, ckpt = model_from_checkpoint(final)
    assert ckpt["epoch"] == 1  # --set won over the file's 2 epochs
    assert ckpt["model_name"] == "resnet20"
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)

    again = _invoke("train", config, "--out", out, "--quiet", "--set", "train.epochs=1")
    assert again.exit_code == 0 and again.stdout.splitlines() == [str(final)]
    assert "already trained" in again.stderr
    # Without a terminal (no bar) and without --quiet, each epoch says how it went.
    logged = _invoke("train", config, "--out", tmp_path / "logged", "--set", "train.epochs=1")
    assert logged.exit_code == 0 and "epoch 1/1 loss" in logged.stderr


def test_train_on_a_full_disk_is_one_line(
    write_yaml: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    import landscape.checkpoint

    def full_for_last(f: Path, mode: str) -> object:  # /dev/full: ENOSPC, as a full disk
        return builtins.open("/dev/full" if f.name == "last.pt.tmp" else f, mode)

    monkeypatch.setattr(landscape.checkpoint, "open", full_for_last, raising=False)
    result = _invoke("train", write_yaml(TINY), "--out", tmp_path, "-q")
    last = tmp_path / "tiny" / "checkpoints" / "last.pt"
    _assert_clean_error(result, f"{last}: No space left on device")
    assert sorted(p.name for p in last.parent.iterdir()) == ["epoch_000.pt"]


def test_train_only_the_named_run(write_yaml: Callable[..., Path], tmp_path: Path) -> None:
    config = write_yaml(FIGURE)
    result = _invoke("train", config, "--out", tmp_path, "-q", "--run", "b", "--profile", "quick")
    assert result.exit_code == 0, result.output
    final = tmp_path / "fig" / "b" / "checkpoints" / "final.pt"
    assert result.stdout.splitlines() == [str(final)]
    assert load_checkpoint(final)["epoch"] == 1
    assert not (tmp_path / "fig" / "a").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_flags_win_over_a_runs_own_settings(
    write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    # Run b asks for a GPU and its own folder; --device and --out must still hold for it, in
    # reproduce too, which selects the runs again inside the pipeline.
    config = write_yaml(FIGURE.replace("{name: b}", "{name: b, device: cuda, out: elsewhere}"))
    args = ["--run", "b", "--profile", "quick", "--device", "cpu", "--out", tmp_path, "-q"]
    result = _invoke("reproduce", config, *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig" / "b" / "surface.h5").is_file()
    _assert_clean_error(_invoke("train", config, "--run", "b"), "no CUDA GPU")


def test_train_skips_runs_drawn_around_another_runs_network(
    write_yaml: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_yaml(FIGURE.replace("{name: b}", "{name: b, checkpoint: 'run:a'}"))
    result = _invoke("train", config, "--out", tmp_path, "-q", "--profile", "quick")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(tmp_path / "fig" / "a" / "checkpoints" / "final.pt")]
    assert "[b] uses checkpoint run:a: nothing to train" in result.stderr
    assert not (tmp_path / "fig" / "b").exists()
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    _assert_clean_error(_invoke("train", config, "--out", tmp_path), "without torchrun")
    # Commands that do not share their points refuse too, before any work (they raced).
    for command in ("reproduce", "trajectory", "hessian"):
        line = _assert_clean_error(_invoke(command, config, "--out", tmp_path), "without torchrun")
        assert line.startswith(f"Error: {command} runs in one process")


def test_under_torchrun_each_other_node_reports_its_own_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rank 0 reports what every rank meets; the first rank of another node also reports an
    error of its own (data missing there), the other ranks of a node stay silent, and no rank
    but 0 repeats what all ranks share (rank 0's refusal, a config error)."""
    import click

    from landscape.cli import _run_cleanly
    from landscape.errors import ConfigError, LandscapeError, SharedError

    def fail(error: Exception) -> None:
        raise error

    monkeypatch.setenv("WORLD_SIZE", "4")
    own = LandscapeError("data.root: no CIFAR-10 at /data")
    for rank, local_rank, said in ((2, 0, "Error (rank 2): data.root"), (3, 1, "")):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))
        with pytest.raises(SystemExit) as stop:
            _run_cleanly(fail, own)
        assert stop.value.code == 1 and capsys.readouterr().err.startswith(said)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    for shared in (SharedError("refused"), ConfigError("bad", key="surface.samples")):
        with pytest.raises(SystemExit):
            _run_cleanly(fail, shared)
        assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(click.ClickException, match="no CIFAR-10"):
        _run_cleanly(fail, own)  # rank 0: click prints it as `Error: ...`


def test_ctrl_c_exits_130(
    write_yaml: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("landscape.train.train", interrupted)
    result = _invoke("train", write_yaml(TINY), "--out", tmp_path)
    assert result.exit_code == 130
    assert "run the same command again to resume" in result.stderr


def test_sigterm_is_handled_like_ctrl_c_and_exits_143(
    write_yaml: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    saved: list[str] = []

    def terminated(*args: object, **kwargs: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler cancelling the job
            time.sleep(5)
        finally:
            saved.append("flushed")  # the finally blocks that save finished points run

    monkeypatch.setattr("landscape.train.train", terminated)
    result = _invoke("train", write_yaml(TINY), "--out", tmp_path)
    assert result.exit_code == 143 and saved == ["flushed"]
    assert "terminated: finished work is saved" in result.stderr
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back afterwards


def test_warnings_are_one_line(
    write_yaml: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    def warns(*args: object, **kwargs: object) -> None:
        warnings.warn("something to know", stacklevel=1)

    monkeypatch.setattr("landscape.train.train", warns)
    result = _invoke("train", write_yaml(TINY), "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["warning: something to know"]
    monkeypatch.setenv("RANK", "1")  # other ranks under torchrun stay quiet
    assert _invoke("train", write_yaml(TINY), "--out", tmp_path).stderr == ""


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("train: {epoch: 3}\n", "train.epoch", ["'epochs'"]),
        ("train: {lr: fast}\n", "train.lr", ["expected a number"]),
        ("surface: {x: [-1, 1]}\n", "surface.x", ["expected 3 numbers"]),
        ("surface: {directions: {norm: filtr}}\n", "surface.directions.norm", ["filter"]),
    ],
)
def test_config_error_is_one_line(
    write_yaml: Callable[..., Path], text: str, key: str, words: list[str]
) -> None:
    config = write_yaml(text)
    line = _assert_clean_error(_invoke("train", config), *words)
    assert line.startswith(f"Error: {config}: {key}: ")


def test_invalid_yaml(write_yaml: Callable[..., Path]) -> None:
    config = write_yaml("train:\n  epochs: [1\n")
    _assert_clean_error(_invoke("surface", config), str(config), "invalid YAML at line")


def test_bad_set(write_yaml: Callable[..., Path]) -> None:
    config = write_yaml(TINY)
    _assert_clean_error(_invoke("train", config, "--set", "train.epochs"), "key.path=value")
    _assert_clean_error(
        _invoke("train", config, "--set", "train.epochs=0"), "train.epochs", "positive"
    )


def test_config_error_in_a_real_process(write_yaml: Callable[..., Path]) -> None:
    config = write_yaml("train: {epoch: 3}\n")
    proc = subprocess.run([LANDSCAPE, "train", config], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"Error: {config}: train.epoch: unknown key (did you mean 'epochs'?)"
    ]


def test_unknown_model_names_its_key(write_yaml: Callable[..., Path]) -> None:
    config = write_yaml(TINY.replace("resnet20", "resnet21"))
    line = _assert_clean_error(_invoke("train", config), "unknown model 'resnet21'", "resnet20")
    assert line.startswith(f"Error: {config}: model.name: ")


def test_missing_config_file(tmp_path: Path) -> None:
    _assert_clean_error(_invoke("train", tmp_path / "nope.yaml"), "nope.yaml", "no such")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(write_yaml: Callable[..., Path]) -> None:
    result = _invoke("train", write_yaml(TINY), "--device", "cuda")
    _assert_clean_error(result, "no CUDA GPU", "--device cpu")


def test_unknown_run(write_yaml: Callable[..., Path]) -> None:
    result = _invoke("train", write_yaml(FIGURE), "--run", "c")
    _assert_clean_error(result, "no run 'c'", "runs are: a, b")


def test_unknown_profile(write_yaml: Callable[..., Path]) -> None:
    result = _invoke("surface", write_yaml(TINY), "--profile", "quik")
    _assert_clean_error(result, "no profile 'quik'", "did you mean quick")


@pytest.mark.parametrize(
    "item, words",
    [
        ("data.name=cifar", ["data.name: unknown data set 'cifar'", "did you mean cifar10"]),
        ("data.subset=100000", ["data.subset: 100000 is more than the"]),
    ],
)
def test_a_data_error_found_while_loading_names_the_config(
    write_yaml: Callable[..., Path], tmp_path: Path, item: str, words: list[str]
) -> None:
    # The data module checks these when it loads, where the config's file is not known.
    config = write_yaml(TINY)
    result = _invoke("train", config, "--set", item, "--out", tmp_path, "-q")
    line = _assert_clean_error(result, *words)
    assert line.startswith(f"Error: {config}: data.")


def test_surface_before_training(write_yaml: Callable[..., Path], tmp_path: Path) -> None:
    result = _invoke("surface", write_yaml(TINY), "--out", tmp_path, "-q")
    _assert_clean_error(result, "final.pt", "not found", "train")


def test_hessian_before_training(write_yaml: Callable[..., Path], tmp_path: Path) -> None:
    result = _invoke("hessian", write_yaml(TINY), "--out", tmp_path, "-q")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr.splitlines() == [
        "[tiny] Hessian",
        f"Error: checkpoint {tmp_path}/tiny/checkpoints/final.pt not found: train first or fix "
        "the path",
    ]


def test_out_is_taken_literally(
    write_yaml: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_yaml(FIGURE)
    monkeypatch.chdir(tmp_path)
    # --run c fails after loading, so nothing trains whether or not the bug is fixed.
    _assert_clean_error(_invoke("train", config, "--out", "2024", "--run", "c"), "no run 'c'")


# ----------------------------------------------------------------------------- figures from files


@pytest.fixture
def two_surfaces(tmp_path: Path) -> tuple[Path, Path]:
    """A 7x5 bowl and the same bowl with ripples, as finished surface files."""
    x, y = np.linspace(-1, 1, 7), np.linspace(-0.5, 0.5, 5)
    xx, yy = np.meshgrid(x, y)
    bowl = xx**2 + 2 * yy**2
    ripples = bowl + 0.3 * np.sin(9 * xx)
    return (
        write_surface_file(tmp_path / "a.h5", x, y, {"train_loss": bowl, "train_acc": 90 - bowl}),
        write_surface_file(
            tmp_path / "b.h5", x, y, {"train_loss": ripples, "train_acc": 90 - bowl}
        ),
    )


def _written(result: Result) -> list[Path]:
    """The paths a figure command printed, one per line, after checking it succeeded."""
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert paths and all(p.is_file() and p.stat().st_size > 0 for p in paths), paths
    return paths


def test_plot_command(two_surfaces: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = two_surfaces
    args = ["--kinds", "heatmap", "--kinds", "contour", "--format", "svg", "--log", "--vmax", "3"]
    paths = _written(_invoke("plot", a, *args, "--out", tmp_path / "figs", "--levels", "8"))
    # On a log scale the names say so: a log figure never replaces the linear one.
    assert [p.name for p in paths] == [
        "a_train_loss_heatmap_log.svg",
        "a_train_loss_contour_log.svg",
    ]
    assert {p.parent for p in paths} == {tmp_path / "figs"}
    (linear,) = _written(_invoke("plot", a, "--kinds", "heatmap", "--out", tmp_path / "figs"))
    assert linear.name == "a_train_loss_heatmap.png"
    # plot --out is a folder: a figure file name is refused, pointing to --format.
    result = _invoke("plot", a, "--out", tmp_path / "fig.pdf")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--format pdf" in result.stderr and not (tmp_path / "fig.pdf").exists()
    plot_help = _invoke("plot", "--help").output
    assert "--out file's suffix" not in plot_help and "Figure format [png]" in plot_help
    assert "--out file's suffix" in _invoke("compare", "--help").output
    (acc,) = _written(_invoke("plot", a, "--kinds", "contourf", "--metric", "train_acc"))
    assert acc == a.with_name("a_train_acc_contourf.png")


def test_compare_command(two_surfaces: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp" / "both.png"
    result = _invoke("compare", *two_surfaces, "--titles", "skip, no skip", "--out", out)
    assert _written(result) == [out.with_name(f"both_{k}.png") for k in ("contour", "surface3d")]
    result = _invoke("compare", *two_surfaces, "--titles", "one", "--out", out)
    _assert_clean_error(result, "got 1 titles for 2 files")
    pdf = tmp_path / "cmp.pdf"  # the suffix chooses the format, and a contradiction is an error
    assert _written(_invoke("compare", *two_surfaces, "--kinds", "heatmap", "--out", pdf)) == [
        tmp_path / "cmp_heatmap.pdf"
    ]
    result = _invoke("compare", *two_surfaces, "--out", pdf, "--format", "png")
    _assert_clean_error(result, "does not match format 'png'")


def test_export_stats_and_report_commands(two_surfaces: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_surfaces
    (csv_path,) = _written(_invoke("export", a, "--format", "csv", "--out", tmp_path / "a.csv"))
    assert len(csv_path.read_text().splitlines()) == 1 + 7 * 5
    result = _invoke("stats", a, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats"]["points"]["mean"] == 35
    result = _invoke("stats", a, b, "--titles", "smooth,rippled")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split()[1:3] == ["smooth", "rippled"]
    (html,) = _written(
        _invoke("report", a, b, "--titles", "smooth,rippled", "--out", tmp_path / "r.html")
    )
    assert "rippled" in html.read_text()


def test_export_refuses_a_suffix_of_another_format(
    two_surfaces: tuple[Path, Path], tmp_path: Path
) -> None:
    # NPZ bytes in a file named .csv would be read as text by whatever opens it next.
    out = tmp_path / "a.csv"
    result = _invoke("export", two_surfaces[0], "--format", "npz", "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"--out {out} ends in .csv but --format is npz: make them agree" in result.stderr
    assert not out.exists()
    # A suffix that is no export format is the user's choice.
    (data,) = _written(
        _invoke("export", two_surfaces[0], "--format", "npz", "--out", out.with_suffix(".data"))
    )
    assert data.suffix == ".data"


@pytest.mark.parametrize(
    "args, words",
    [
        (["plot", "{missing}"], ["missing.h5", "no such file"]),
        (["plot", "{a}", "--metric", "test_loss"], ["unknown metric 'test_loss'", "train_loss"]),
        (["plot", "{a}", "--kinds", "line"], ["line"]),
        (["export", "{a}", "--format", "csv", "--metric", "loss"], ["'loss'"]),
        (["stats", "{a}", "{a}", "--titles", "x,x"], ["titles must differ"]),
    ],
)
def test_figure_commands_fail_cleanly(
    two_surfaces: tuple[Path, Path], tmp_path: Path, args: list[str], words: list[str]
) -> None:
    where = {"a": two_surfaces[0], "missing": tmp_path / "missing.h5"}
    _assert_clean_error(_invoke(*(arg.format(**where) for arg in args)), *words)


def test_plot_of_an_unfinished_file_says_so(
    two_surfaces: tuple[Path, Path], tmp_path: Path
) -> None:
    from landscape.storage import SurfaceWriter, create_surface_file

    # A surface still being computed: 3 of its 4 x 3 points are in the file.
    x, y = np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)
    path = tmp_path / "running.h5"
    create_surface_file(path, x, y, ["train_loss"], [[{"w": np.zeros(2)}] * 2], {})
    with SurfaceWriter(path) as w:
        w.write({"train_loss": np.array([1.0, 0.5, 1.0])}, (np.array([1, 1, 1]), np.arange(3)))
    finished = two_surfaces[0]
    for command in (["plot", path], ["compare", finished, path, "--out", tmp_path / "c.png"]):
        result = _invoke(*command, "--kinds", "heatmap")
        _written(result)
        assert result.stderr.splitlines() == [
            f"note: {path}: 3 of 12 points are computed so far (still running, or interrupted: "
            "run its command again to finish); the figure shows those"
        ]
    assert _invoke("plot", finished, "--kinds", "heatmap").stderr == ""


def test_plot_keeps_the_figures_of_files_with_one_name(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 5)
    files = []
    for run, scale in (("skip", 1.0), ("noskip", 2.0)):
        (tmp_path / run).mkdir()
        files.append(
            write_surface_file(
                tmp_path / run / "surface.h5",
                x,
                x,
                {"train_loss": scale * np.add.outer(x**2, x**2)},
            )
        )
    figs = tmp_path / "figs"
    paths = _written(_invoke("plot", *files, "--kinds", "heatmap,contour", "--out", figs))
    assert sorted(p.name for p in paths) == sorted(
        f"{run}_surface_train_loss_{k}.png"
        for run in ("skip", "noskip")
        for k in ("heatmap", "contour")
    )
    # Beside their own files, the names stay plain.
    assert [p.name for p in _written(_invoke("plot", *files, "--kinds", "heatmap"))] == [
        "surface_train_loss_heatmap.png"
    ] * 2


def test_titles_with_commas_and_outputs_that_would_destroy_an_input(
    two_surfaces: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_surfaces
    result = _invoke("stats", a, b, "--titles", "ResNet-56", "--titles", "ResNet-56, no skips")
    assert result.exit_code == 0, result.output
    assert "ResNet-56, no skips" in result.stdout.splitlines()[0]
    before = a.read_bytes()
    _assert_clean_error(_invoke("export", a, "--format", "csv", "--out", a), "is an input file")
    _assert_clean_error(_invoke("report", a, b, "--out", b), "is an input file")
    assert a.read_bytes() == before
    out = tmp_path / "r.txt"
    _assert_clean_error(_invoke("report", a, b, "--out", out), "HTML page; name it *.html")
    assert not out.exists()
    _assert_clean_error(_invoke("stats", a, "--titles", "x,y"), "2 titles for 1 file")
    assert _invoke("stats", a, "--titles", "smooth").stdout.startswith("smooth (")


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "--out", "c.png"],
        ["export", "--format", "csv", "--out", "x.csv"],
        ["report", "--out", "r.html"],
    ],
    ids=lambda c: c[0],
)
def test_a_file_in_the_way_of_a_folder_is_named(
    two_surfaces: tuple[Path, Path], tmp_path: Path, command: list[str]
) -> None:
    # The system says only "File exists" (or "Not a directory"), naming what cannot be made.
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    result = _invoke(command[0], two_surfaces[0], *command[1:-1], blocker / "sub" / command[-1])
    _assert_clean_error(result, f"{blocker} is a file, not a folder", "write elsewhere")
    assert blocker.read_text() == "not a folder"


def test_an_unwritable_output_is_one_line(two_surfaces: tuple[Path, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    _assert_clean_error(_invoke("plot", two_surfaces[0], "--out", blocker / "figs"), str(blocker))
    _assert_clean_error(
        _invoke("export", two_surfaces[0], "--format", "csv", "--out", blocker / "x.csv"),
        str(blocker),
    )
