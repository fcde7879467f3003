"""Tests for landscape.surface: every grid value checked against an independent evaluation.

Also: resume after a real SIGKILL, the fingerprint check, options, and two ranks equal to one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import one_thread
from torch import nn
from torch.testing import assert_close

from landscape import storage
from landscape.checkpoint import model_from_checkpoint
from landscape.data import eval_dataset
from landscape.directions import random_directions, target_tensors
from landscape.engine import EvalSet, PointEvaluator
from landscape.errors import LandscapeError
from landscape.surface import axis_coords, compute_surface

pytestmark = pytest.mark.usefixtures("single_thread")

# A 3 x 5 grid (ny = 3, nx = 5) whose axes hold 0 exactly: the origin is [iy=1, ix=2].
GRID = {"x": [-1, 1, 5], "y": [-1, 1, 3]}
ORIGIN = (1, 2)


def _split(cfg: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a split (the config's subset), stacked one by one, not via the surface code."""
    ds = eval_dataset(cfg.data, split)
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(xs), torch.stack(ys)


@torch.no_grad()
def _plain_eval(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "crossentropy"
) -> tuple[float, float]:
    """Mean loss and accuracy (%) by a plain loop in batches of 16 (the surface uses others)."""
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(y), 16):
        out = model(x[i : i + 16])
        if loss == "crossentropy":
            per = F.cross_entropy(out, y[i : i + 16], reduction="none")
        else:
            per = ((F.softmax(out, 1) - F.one_hot(y[i : i + 16], out.shape[1])) ** 2).mean(1)
        total += float(per.double().sum())
        correct += int((out.argmax(1) == y[i : i + 16]).sum())
    return total / len(y), 100.0 * correct / len(y)


def _model(cfg: Any) -> nn.Module:
    model, _ = model_from_checkpoint(cfg.final_checkpoint)
    return model.eval()


def _copy_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict({k: v.clone() for k, v in state.items()})


@pytest.fixture(scope="module")
def grid_surface(
    make_config_at: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path]:
    """The 3 x 5 surface on all 64 train and 32 test images, computed once for this module."""
    cfg = make_config_at(
        tmp_path_factory.mktemp("grid"),
        surface={**GRID, "samples": None, "splits": ["train", "test"]},
    )
    with one_thread():
        return cfg, compute_surface(cfg)


def test_origin_is_the_models_own_loss_and_accuracy(grid_surface: tuple[Any, Path]) -> None:
    cfg, path = grid_surface
    s = storage.read_surface(path)
    assert s.x[ORIGIN[1]] == 0.0 and s.y[ORIGIN[0]] == 0.0
    assert s.attrs["samples"] == -1 and list(s.attrs["examples"]) == [64, 32]  # what each held
    model = _model(cfg)
    for split in ("train", "test"):
        loss, acc = _plain_eval(model, *_split(cfg, split))
        assert s.metrics[f"{split}_loss"][ORIGIN] == pytest.approx(loss, rel=1e-6, abs=1e-6)
        assert s.metrics[f"{split}_acc"][ORIGIN] == pytest.approx(acc, abs=1e-6)


def test_every_point_matches_an_independent_evaluation(grid_surface: tuple[Any, Path]) -> None:
    cfg, path = grid_surface
    s = storage.read_surface(path)
    assert s.complete and s.metrics["train_loss"].shape == (3, 5)
    d1, d2 = storage.read_directions(path)
    model = _model(cfg)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    assert set(d1) == {name for name, _ in model.named_parameters()}
    x, y = _split(cfg, "train")
    for iy, yv in enumerate(s.y):
        for ix, xv in enumerate(s.x):
            state = dict(base)
            for name in d1:
                state[name] = (
                    base[name]
                    + float(xv) * torch.from_numpy(d1[name])
                    + float(yv) * torch.from_numpy(d2[name])
                )
            _copy_weights(model, state)
            loss, acc = _plain_eval(model, x, y)
            assert s.metrics["train_loss"][iy, ix] == pytest.approx(loss, rel=1e-5), (iy, ix)
            # One image may flip on a near-tie of logits that differ in the last bit.
            assert abs(s.metrics["train_acc"][iy, ix] - acc) <= 100.0 / len(y) + 1e-9, (iy, ix)


def test_axis_order_is_the_documented_one(grid_surface: tuple[Any, Path]) -> None:
    _, path = grid_surface
    s = storage.read_surface(path)
    assert s.attrs["axis_order"] == storage.AXIS_ORDER
    assert "[iy, ix]" in storage.AXIS_ORDER
    assert s.metrics["train_loss"].shape == (len(s.y), len(s.x)) == (3, 5)
    # Filter-normalized random directions are not symmetric, so the x-row and y-column differ.
    loss = s.metrics["train_loss"]
    assert not np.allclose(loss[ORIGIN[0], [1, 3]], loss[[0, 2], ORIGIN[1]])


def test_resume_refuses_a_changed_config_and_overwrite_starts_afresh(
    make_config: Callable[..., Any],
) -> None:
    cfg = make_config(surface={"x": [-1, 1, 3], "y": None})
    path = compute_surface(cfg)
    first = storage.read_surface(path)
    other = make_config(surface={"x": [-1, 1, 3], "y": None, "directions": {"seed": 1}})
    with pytest.raises(LandscapeError, match="directions.seed: 0 in the file, 1 now.*--overwrite"):
        compute_surface(other)
    # The refusal left the file alone.
    np.testing.assert_array_equal(
        storage.read_surface(path).metrics["train_loss"], first.metrics["train_loss"]
    )
    compute_surface(other, overwrite=True)
    second = storage.read_surface(path)
    assert second.attrs["direction_seed"] == 1 and second.complete
    assert second.metrics["train_loss"][1] == first.metrics["train_loss"][1]  # the origin
    assert second.metrics["train_loss"][0] != first.metrics["train_loss"][0]


def test_resume_computes_only_the_missing_points(make_config: Callable[..., Any]) -> None:
    cfg = make_config(surface=GRID)
    path = compute_surface(cfg)
    full = storage.read_surface(path)
    with h5py.File(path, "r+") as f:
        done = f["done"][...]
        loss = f["train_loss"][...]
        done[0, 1] = done[2, 4] = False
        loss[0, 1] = loss[2, 4] = np.nan
        loss[1, 1] = 123.0  # a point marked done is trusted, not recomputed
        f["done"][...] = done
        f["train_loss"][...] = loss
    # flush_seconds is not part of the fingerprint: changing it still resumes.
    compute_surface(make_config(surface={**GRID, "flush_seconds": 0}))
    s = storage.read_surface(path)
    assert s.complete
    assert s.metrics["train_loss"][0, 1] == full.metrics["train_loss"][0, 1]
    assert s.metrics["train_loss"][2, 4] == full.metrics["train_loss"][2, 4]
    assert s.metrics["train_loss"][1, 1] == 123.0


def test_each_run_that_computes_points_adds_to_the_history(
    make_config: Callable[..., Any],
) -> None:
    cfg = make_config(surface=GRID)
    path = compute_surface(cfg)
    (first,) = json.loads(storage.read_attrs(path)["history"])
    assert first["points"] == 15 and first["device"] == "cpu"
    assert first["precision"] == "float32" and first["landscape_version"]
    assert first["started"] <= first["finished"] and first["torch_version"] == torch.__version__
    assert first["processes"] == 1 and first["threads"] == torch.get_num_threads()
    assert first["device_name"]
    with h5py.File(path, "r+") as f:
        done = f["done"][...]
        done[0, 1] = False
        f["done"][...] = done
    compute_surface(cfg)
    compute_surface(cfg)  # nothing left to compute: no record
    runs = json.loads(storage.read_attrs(path)["history"])
    assert [r["points"] for r in runs] == [15, 1]


def _undo_a_point_of_other_data(path: Path) -> None:
    """Point (0, 1) left to compute, and the file's digest made that of other examples."""
    with h5py.File(path, "r+") as f:
        f["done"][0, 1] = False
        f.attrs["data_sha256"] = json.dumps({"train": "0" * 64})


def test_a_resume_on_other_examples_is_refused(make_config: Callable[..., Any]) -> None:
    """The file records a digest of the examples its points were measured on; a resume whose
    data differ (changed files, another subset drawn from the seed) stops instead of mixing."""
    cfg = make_config(surface=GRID)
    path = compute_surface(cfg)
    recorded = json.loads(storage.read_attrs(path)["data_sha256"])
    assert set(recorded) == {"train"} and len(recorded["train"]) == 64
    with h5py.File(path, "r+") as f:
        done = f["done"][...]
        done[0, 1] = False
        f["done"][...] = done
    compute_surface(cfg)  # the same examples: resumes
    assert storage.read_surface(path).complete
    _undo_a_point_of_other_data(path)
    with pytest.raises(LandscapeError, match="other train examples than this run.*--overwrite"):
        compute_surface(cfg)
    assert not storage.read_surface(path).done[0, 1]
    assert [r["points"] for r in json.loads(storage.read_attrs(path)["history"])] == [15, 1]
    with h5py.File(path, "r+") as f:
        del f.attrs["data_sha256"]  # a file from before digests: resumes, and records one
    compute_surface(cfg)
    assert json.loads(storage.read_attrs(path)["data_sha256"]) == recorded


def test_a_streamed_split_records_the_digest_of_its_examples(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    """Streamed from a DataLoader or held in memory, the same examples have the same digest, so a
    resume on changed data is refused either way, and a run may resume in the other mode."""
    streamed = {"engine": {"in_memory": "off", "workers": 0}}
    memory = compute_surface(make_config(surface=GRID), path=tmp_path / "memory.h5")
    cfg = make_config(surface={**GRID, **streamed})
    path = compute_surface(cfg)
    digests = [json.loads(storage.read_attrs(p)["data_sha256"]) for p in (memory, path)]
    assert digests[0] == digests[1] and len(digests[0]["train"]) == 64
    _undo_a_point_of_other_data(path)
    with pytest.raises(LandscapeError, match="other train examples than this run"):
        compute_surface(cfg)
    assert not storage.read_surface(path).done[0, 1]
    with h5py.File(path, "r+") as f:
        f.attrs["data_sha256"] = json.dumps(digests[0])
    compute_surface(make_config(surface=GRID))  # resumed with the split in memory
    assert storage.read_surface(path).complete


def test_a_damaged_file_to_resume_says_how_to_start_afresh(
    make_config: Callable[..., Any],
) -> None:
    cfg = make_config(surface=GRID)
    path = compute_surface(cfg)
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not an hdf5 file"):
        path.write_bytes(damaged)
        with pytest.raises(LandscapeError, match=f"{path.name}.*--overwrite") as info:
            compute_surface(cfg)
        assert "\n" not in str(info.value)
    assert storage.read_surface(compute_surface(cfg, overwrite=True)).complete


def test_an_interrupted_run_keeps_the_points_it_finished(make_config: Callable[..., Any]) -> None:
    class Interrupt:
        """A progress bar whose fourth update is a Ctrl-C."""

        def __init__(self, total: int, initial: int) -> None:
            self.calls = 0

        def update(self, n: int) -> None:
            self.calls += 1
            if self.calls == 4:
                raise KeyboardInterrupt

        def close(self) -> None:
            pass

    # Nothing would be flushed before the end of the run: the interrupt must flush.
    cfg = make_config(surface={**GRID, "flush_seconds": 1e9})
    with pytest.raises(KeyboardInterrupt):
        compute_surface(cfg, progress=Interrupt)
    partial = storage.read_surface(cfg.surface_path)
    assert partial.done.sum() == 4
    compute_surface(cfg)
    full = storage.read_surface(cfg.surface_path)
    fresh = storage.read_surface(compute_surface(cfg, path=cfg.surface_path.with_name("fresh.h5")))
    assert full.complete
    np.testing.assert_array_equal(full.metrics["train_loss"], fresh.metrics["train_loss"])
    np.testing.assert_array_equal(
        full.metrics["train_loss"][partial.done], partial.metrics["train_loss"][partial.done]
    )


def test_resume_refuses_a_line_whose_checkpoint_changed(
    make_config: Callable[..., Any], trained_checkpoint: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    shutil.copy(trained_checkpoint.parent / "epoch_000.pt", a)
    shutil.copy(trained_checkpoint, b)
    line = {"kind": "line", "checkpoints": [str(a), str(b)]}
    cfg = make_config(surface={"x": [0, 1, 3], "y": None, "directions": line})
    path = compute_surface(cfg)
    with h5py.File(path, "r+") as f:
        f["done"][2] = False
    shutil.copy(a, b)  # B retrained (here: replaced) under the same name
    with pytest.raises(LandscapeError, match="another direction checkpoints file.*--overwrite"):
        compute_surface(cfg)


def test_one_dimensional_surface(make_config: Callable[..., Any]) -> None:
    cfg = make_config(surface={"x": [-1, 1, 5], "y": None, "samples": None})
    s = storage.read_surface(compute_surface(cfg))
    assert s.ndim == 1 and s.y is None and s.metrics["train_loss"].shape == (5,)
    assert len(storage.read_directions(cfg.surface_path)) == 1
    loss, _ = _plain_eval(_model(cfg), *_split(cfg, "train"))
    assert s.metrics["train_loss"][2] == pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize(("threshold", "compiled"), [(15 * 32, True), (15 * 32 + 1, False)])
def test_compile_auto_counts_the_runs_examples(
    make_config: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, threshold: int, compiled: bool
) -> None:
    """A 5x3 grid on 32 samples is 480 examples: compiled exactly when that reaches the bar."""
    import landscape.engine

    calls: list[nn.Module] = []

    def spy(module: nn.Module, **_: object) -> nn.Module:
        calls.append(module)
        return module  # run eagerly: the decision is under test, not the compiler

    monkeypatch.setitem(landscape.engine.COMPILE_AUTO_IMAGES, "cpu", threshold)
    monkeypatch.setattr(torch, "compile", spy)
    compute_surface(make_config(surface={"engine": {"fuse": "off"}}))  # fused runs never compile
    assert bool(calls) is compiled


def test_repeats_draw_different_directions(make_config: Callable[..., Any]) -> None:
    small = {"x": [-1, 1, 3], "y": [-1, 1, 3]}
    cfg = make_config(surface={**small, "repeats": 3})
    s = storage.read_surface(compute_surface(cfg))
    loss = s.metrics["train_loss"]
    assert s.repeats == 3 and loss.shape == (3, 3, 3) and s.complete
    assert loss[0, 1, 1] == loss[1, 1, 1] == loss[2, 1, 1]  # the shared origin
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not np.allclose(loss[a], loss[b])
        da, db = (
            storage.read_directions(cfg.surface_path, a),
            storage.read_directions(cfg.surface_path, b),
        )
        assert not np.array_equal(da[0]["conv1.weight"], db[0]["conv1.weight"])
    # The first draw is the single draw of the same seed.
    single = make_config(surface=small, name="single")
    np.testing.assert_array_equal(
        storage.read_surface(compute_surface(single)).metrics["train_loss"], loss[0]
    )


@pytest.mark.parametrize(
    "option",
    [
        {"directions": {"dir_type": "states"}},
        {"bn": "recompute", "bn_samples": 64},
        {"loss": "mse"},
        {"precision": "bf16"},
        {"splits": ["train", "test"]},
    ],
    ids=["states", "bn-recompute", "mse", "bf16", "train-and-test"],
)
def test_surface_options_run_and_stay_finite_near_the_origin(
    option: dict[str, Any], make_config: Callable[..., Any]
) -> None:
    cfg = make_config(surface={"x": [-0.1, 0.1, 3], "y": None, "samples": None, **option})
    path = compute_surface(cfg)
    s = storage.read_surface(path)
    assert s.complete
    assert sorted(s.metrics) == sorted(storage.metric_names(cfg.surface.splits))
    for values in s.metrics.values():
        assert np.isfinite(values).all()
    model = _model(cfg)
    loss_name = cfg.surface.loss
    own, _ = _plain_eval(model, *_split(cfg, "train"), loss=loss_name)
    origin = s.metrics["train_loss"][1]
    if option.get("bn") == "recompute":
        # Statistics re-estimated on the train images, not the checkpoint's running averages.
        assert origin != pytest.approx(own, rel=1e-3)
        assert s.attrs["bn"] == "recompute"
    elif option.get("precision") == "bf16":
        assert origin == pytest.approx(own, rel=0.05)
        assert origin != own  # it did run in bf16
    else:
        assert origin == pytest.approx(own, rel=1e-6)
    if "directions" in option:
        (d,) = storage.read_directions(path)
        assert "bn1.running_mean" in d and "bn1.running_var" in d
        assert not any(k.endswith("num_batches_tracked") for k in d)
    if "test" in cfg.surface.splits:
        test_own, _ = _plain_eval(model, *_split(cfg, "test"))
        assert s.metrics["test_loss"][1] == pytest.approx(test_own, rel=1e-6)


def test_a_diverged_point_is_recorded_not_fatal(make_config: Callable[..., Any]) -> None:
    cfg = make_config(surface={"x": [0, 1e6, 2], "y": None})
    s = storage.read_surface(compute_surface(cfg))
    assert s.complete
    assert np.isfinite(s.metrics["train_loss"][0])
    assert not np.isfinite(s.metrics["train_loss"][1])


@pytest.mark.parametrize("dir_type", ["auto", "weights", "states"])
def test_line_between_checkpoints_starts_at_the_first(
    dir_type: str, make_config: Callable[..., Any], trained_checkpoint: Path
) -> None:
    start = trained_checkpoint.parent / "epoch_000.pt"  # the untrained network
    cfg = make_config(
        surface={
            "x": [0, 1, 2],
            "y": None,
            "samples": None,
            "directions": {
                "kind": "line",
                "dir_type": dir_type,
                "checkpoints": [str(start), str(trained_checkpoint)],
            },
        }
    )
    s = storage.read_surface(compute_surface(cfg))
    data = _split(cfg, "train")
    a, _ = model_from_checkpoint(start)
    assert s.metrics["train_loss"][0] == pytest.approx(_plain_eval(a, *data)[0], rel=1e-6)
    b, _ = model_from_checkpoint(trained_checkpoint)
    b_loss = _plain_eval(b, *data)[0]
    assert s.attrs["dir_type"] == ("weights" if dir_type == "weights" else "states")
    if dir_type == "weights":
        # b's weights with a's BN statistics: not the second network.
        assert s.metrics["train_loss"][1] != pytest.approx(b_loss, rel=1e-3)
    else:
        # Moving every state entry (weights and BN statistics) lands exactly on the second network.
        assert s.metrics["train_loss"][1] == pytest.approx(b_loss, rel=1e-5)


def test_point_evaluator_restores_weights_bit_for_bit(tiny_net: nn.Module) -> None:
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    targets = target_tensors(tiny_net, "states")
    dirs = random_directions(targets, n=2, ignore="none", seed=0)
    g = torch.Generator().manual_seed(0)
    data = {
        "train": EvalSet(
            torch.randn(12, 1, 8, 8, generator=g), torch.randint(0, 10, (12,), generator=g)
        )
    }
    ev = PointEvaluator(tiny_net, targets, dirs, bn_data=torch.randn(8, 1, 8, 8, generator=g))
    for point in ((0.3, -0.7), (1e-3, 2.0), (-1.1, 0.0)):
        ev.evaluate(point, data)
    assert not torch.equal(tiny_net.conv.weight, before["conv.weight"])  # it did move
    ev.restore()
    for k, v in tiny_net.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(RuntimeError, match="boom"), ev.session():
        ev.move_to((0.5, 0.5))
        raise RuntimeError("boom")
    for k, v in tiny_net.state_dict().items():
        assert torch.equal(v, before[k]), k


# ----------------------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("LOCAL_RANK", None)
    env.pop("RANK", None)
    return env


def _reference(cfg: Any, path: Path) -> storage.SurfaceData:
    """An uninterrupted one-process run, on one thread like the subprocesses."""
    with one_thread():
        return storage.read_surface(compute_surface(cfg, path=path))


# Slowed down through the public progress hook so that the kill lands in the middle of the grid.
PACED_RUN = textwrap.dedent(
    """
    import sys, time
    from landscape.config import load_config
    from landscape.surface import compute_surface

    class Pace:
        def __init__(self, total, initial):
            pass
        def update(self, n):
            time.sleep(0.1)
        def close(self):
            pass

    compute_surface(load_config(sys.argv[1]), progress=Pace)
    """
)


def test_sigkill_then_resume_equals_an_uninterrupted_run(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    cfg = make_config(surface={"x": [-1, 1, 9], "y": [-1, 1, 7], "flush_seconds": 0})
    config = tmp_path / "cfg.yaml"
    config.write_text(cfg.to_yaml())
    script = tmp_path / "paced.py"
    script.write_text(PACED_RUN)
    path = cfg.surface_path
    proc = subprocess.Popen(
        [sys.executable, str(script), str(config)], env=_env(), stderr=subprocess.PIPE
    )
    seen = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists():
                seen = int(storage.read_surface(path).done.sum())  # readable while being written
                if seen >= 4:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, (
            f"run ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = storage.read_surface(path)  # opens fine right after the kill
    assert seen <= killed.done.sum() < killed.done.size
    reference = _reference(cfg, tmp_path / "reference.h5")
    for name, values in killed.metrics.items():
        assert np.isnan(values[~killed.done]).all()
        np.testing.assert_array_equal(values[killed.done], reference.metrics[name][killed.done])
    # Resume through the command line, as a user would.
    out = subprocess.run(
        [sys.executable, "-m", "landscape", "surface", str(config), "-q"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    resumed = storage.read_surface(path)
    assert resumed.complete
    for name in reference.metrics:
        np.testing.assert_array_equal(resumed.metrics[name], reference.metrics[name])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _distributed_config(make_config: Callable[..., Any], tmp_path: Path) -> tuple[Any, Path]:
    # 15 points on 2 ranks: the last round leaves rank 1 idle.
    cfg = make_config(surface={**GRID, "flush_seconds": 0})
    config = tmp_path / "cfg.yaml"
    config.write_text(cfg.to_yaml())
    return cfg, config


def _compare_with_one_process(cfg: Any, tmp_path: Path) -> None:
    two = storage.read_surface(cfg.surface_path)
    one = _reference(cfg, tmp_path / "one.h5")
    assert two.complete
    for name in one.metrics:
        assert_close(two.metrics[name], one.metrics[name], rtol=1e-6, atol=0)


def _two_ranks(config: Path, *args: str) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of two CLI processes joined as torchrun would join them
    (env:// on loopback, gloo)."""
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(
            _env(),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        cmd = [sys.executable, "-m", "landscape", "surface", str(config), "-q", "--device", "cpu"]
        procs.append(
            subprocess.Popen(
                [*cmd, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


def test_two_ranks_equal_one_process(make_config: Callable[..., Any], tmp_path: Path) -> None:
    cfg, config = _distributed_config(make_config, tmp_path)
    (rc0, out0, err0), (rc1, out1, err1) = _two_ranks(config)
    assert rc0 == 0 and rc1 == 0, err0 + err1
    assert out0.strip() == str(cfg.surface_path)  # only rank 0 reports the file
    assert out1.strip() == ""
    _compare_with_one_process(cfg, tmp_path)
    (record,) = json.loads(storage.read_attrs(cfg.surface_path)["history"])
    assert record["processes"] == 2
    # A refusal to resume stops both ranks; rank 0 alone says why, in one line.
    (rc0, _, err0), (rc1, _, err1) = _two_ranks(config, "--set", "surface.directions.seed=7")
    assert rc0 == rc1 == 1
    assert err0.startswith("Error: ") and "directions.seed: 0 in the file, 7 now" in err0
    assert len(err0.splitlines()) == 1 and err1 == ""


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not installed",
)
def test_torchrun_two_ranks_equal_one_process(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    cfg, config = _distributed_config(make_config, tmp_path)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "landscape",
        "surface",
        str(config),
        "-q",
        "--device",
        "cpu",
        "--launcher",
        "torchrun",
    ]
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    _compare_with_one_process(cfg, tmp_path)


def test_a_one_point_axis_is_the_middle_of_its_range() -> None:
    assert axis_coords([-1, 1, 1]).tolist() == [0.0]
    assert axis_coords([0.5, 0.5, 1]).tolist() == [0.5]
    assert axis_coords([-1, 1, 3]).tolist() == [-1.0, 0.0, 1.0]


def test_a_retrained_checkpoint_at_the_same_path_is_named_in_the_refusal(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    shared = make_config().final_checkpoint
    mine = tmp_path / "mine.pt"
    shutil.copy(shared, mine)
    cfg = make_config(surface={"x": [-1, 1, 3], "y": None}, checkpoint=str(mine))
    compute_surface(cfg)
    ck = torch.load(mine, weights_only=True)
    first = next(k for k, t in ck["state_dict"].items() if t.is_floating_point())
    ck["state_dict"][first] = ck["state_dict"][first] + 1.0  # "retrained"
    torch.save(ck, mine)
    with pytest.raises(LandscapeError, match=f"{mine} has changed since .*retrained"):
        compute_surface(cfg)
    moved = tmp_path / "other.pt"
    shutil.copy(mine, moved)
    with pytest.raises(LandscapeError, match=f"another checkpoint file \\({mine} in the file"):
        compute_surface(make_config(surface={"x": [-1, 1, 3], "y": None}, checkpoint=str(moved)))


def test_a_lost_rank_is_one_line_saying_the_points_are_saved() -> None:
    """gloo's error when another rank died (measured: killing rank 1 of 2 mid-run) becomes one
    line; the finished points were flushed by then (40 of 441 in that run, and a rerun resumed)."""
    from landscape.surface import _peers_lost

    gloo = (
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
        "[127.0.0.1]:60590: Connection reset by peer. This is typically caused by a remote "
        "worker hanging or bugs in the application.\nmore"
    )
    with pytest.raises(LandscapeError) as raised, _peers_lost():
        raise RuntimeError(gloo)
    message = str(raised.value)
    assert message.startswith(
        "another rank stopped (Read error [127.0.0.1]:60590: Connection reset by peer); "
    )
    assert "run the same command again to resume" in message and "\n" not in message


def test_overwrite_with_data_that_fail_keeps_the_surface(make_config: Callable[..., Any]) -> None:
    """--overwrite deletes the old file only once the new settings' data have loaded: a mistake
    in them (here a subset larger than the data) leaves the finished surface as it was."""
    path = compute_surface(make_config(surface=GRID))
    before = path.read_bytes()
    with (
        pytest.raises(LandscapeError, match="subset"),
        pytest.warns(UserWarning, match="trained on other data"),  # the checkpoint's own 64
    ):
        compute_surface(make_config(surface=GRID, data={"subset": 100_000}), overwrite=True)
    assert path.read_bytes() == before
