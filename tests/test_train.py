"""Tests for training: checkpoints and metrics on disk, determinism, and resume == uninterrupted."""

from __future__ import annotations

import csv
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import landscape.train as train_module
from landscape.checkpoint import load_checkpoint, model_from_checkpoint
from landscape.config import Config, TrainConfig
from landscape.data import dataset_to_tensors, eval_dataset
from landscape.engine import EvalSet, evaluate, make_loss
from landscape.errors import LandscapeError
from landscape.train import CSV_FIELDS, build_model, lr_at, make_optimizer, train

# One torch thread: on the shared 2-core machine, more threads spin and wait (8x slower).
pytestmark = pytest.mark.usefixtures("single_thread")


def _rows(cfg: Config) -> list[dict[str, str]]:
    with open(cfg.run_dir / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_FIELDS
        return list(reader)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


def _interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, stop: int) -> None:
    """Raise KeyboardInterrupt as (0-based) epoch `stop` starts, like Ctrl-C between epochs."""
    real = train_module.lr_at

    def lr_or_interrupt(epoch: int, t: TrainConfig) -> float:
        if epoch == stop:
            raise KeyboardInterrupt
        return real(epoch, t)

    monkeypatch.setattr(train_module, "lr_at", lr_or_interrupt)


def _interrupt_saving(monkeypatch: pytest.MonkeyPatch, name: str, epoch: int) -> None:
    """Raise KeyboardInterrupt instead of writing checkpoint `name` at `epoch`."""
    real = train_module._save

    def save_or_interrupt(path: Path, *args: Any, **kwargs: Any) -> None:
        if path.name == name and args[3] == epoch:
            raise KeyboardInterrupt
        real(path, *args, **kwargs)

    monkeypatch.setattr(train_module, "_save", save_or_interrupt)


# ----------------------------------------------------------------------------- a short run


def test_short_run_writes_checkpoints_and_metrics(train_config: Callable[..., Config]) -> None:
    cfg = train_config(train={"schedule": "cosine"})
    final = train(cfg, progress=False)
    assert final == cfg.checkpoint_dir / "final.pt"
    names = sorted(p.name for p in cfg.checkpoint_dir.iterdir())
    # epoch_000 (the start), every save_every=2, the last epoch, final; last.pt is gone when done.
    assert names == ["epoch_000.pt", "epoch_002.pt", "epoch_003.pt", "final.pt"]
    for name, epoch in [("epoch_000.pt", 0), ("epoch_002.pt", 2), ("final.pt", 3)]:
        assert load_checkpoint(cfg.checkpoint_dir / name)["epoch"] == epoch

    rows = _rows(cfg)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for i, r in enumerate(rows):
        assert float(r["lr"]) == pytest.approx(lr_at(i, cfg.train))
        assert all(math.isfinite(float(r[k])) for k in ("train_loss", "test_loss", "seconds"))
        assert 0 <= float(r["train_acc"]) <= 100 and 0 <= float(r["test_acc"]) <= 100
    ckpt = load_checkpoint(final)
    assert ckpt["metrics"]["test_acc"] == pytest.approx(float(rows[-1]["test_acc"]))
    assert ckpt["config"] == cfg.to_dict()
    assert ckpt["model_args"] == {"num_classes": 10, "in_channels": 1}


def test_epoch_000_is_the_seeded_initialisation(train_config: Callable[..., Config]) -> None:
    cfg = train_config()
    final = train(cfg, progress=False)
    torch.manual_seed(cfg.train.seed)
    init = build_model(cfg).state_dict()
    start = _weights(cfg.checkpoint_dir / "epoch_000.pt")
    assert all(torch.equal(init[k], start[k]) for k in init)
    assert not torch.equal(_weights(final)["conv1.weight"], start["conv1.weight"])


def test_final_checkpoint_rebuilds_and_matches_its_metrics(
    train_config: Callable[..., Config],
) -> None:
    cfg = train_config()
    model, ckpt = model_from_checkpoint(train(cfg, progress=False))
    x, y = dataset_to_tensors(eval_dataset(cfg.data, "test"))
    loss, acc = evaluate(model.eval(), EvalSet(x, y), make_loss("crossentropy"))
    assert acc == pytest.approx(ckpt["metrics"]["test_acc"])
    assert loss == pytest.approx(ckpt["metrics"]["test_loss"], rel=1e-5)


def test_deterministic_on_cpu(train_config: Callable[..., Config]) -> None:
    a = train(train_config("a"), progress=False)
    b = train(train_config("b"), progress=False)
    _assert_same_weights(a, b)


class _Shifted(torch.utils.data.Dataset):
    """Each example rolled by a random pixel and flipped at random, drawn from torch's
    generator as torchvision's RandomCrop and RandomHorizontalFlip draw."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        x, y = self.data[i]
        dy, dx = torch.randint(-1, 2, (2,)).tolist()
        x = torch.roll(x, (dy, dx), (1, 2))
        return (x.flip(2) if torch.rand(()) < 0.5 else x), y


def test_augmentation_does_not_depend_on_the_workers(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    # train.workers may change between runs (it is not part of the run's settings), so the
    # random augmentation must come out the same in loader workers as in the main process.
    import landscape.data

    real = landscape.data.load_datasets
    monkeypatch.setattr(
        landscape.data, "load_datasets", lambda c: (_Shifted(real(c)[0]), *real(c)[1:])
    )
    one = {"epochs": 1, "save_every": 1}
    a = train(train_config("a", train={**one, "workers": 0}), progress=False)
    b = train(train_config("b", train={**one, "workers": 2}), progress=False)
    _assert_same_weights(a, b)


# ----------------------------------------------------------------------------- resume


def test_resume_equals_uninterrupted(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train(train_config("a"), progress=False)

    cfg = train_config("b")
    _interrupt_at_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    last = cfg.checkpoint_dir / "last.pt"
    assert load_checkpoint(last)["epoch"] == 1
    assert "optimizer" in load_checkpoint(last)
    assert not (cfg.checkpoint_dir / "final.pt").exists()
    assert len(_rows(cfg)) == 1

    logs: list[str] = []
    resumed = train(cfg, progress=False, log=logs.append)
    assert any("resuming" in line and "epoch 1" in line for line in logs)
    _assert_same_weights(whole, resumed)
    _assert_same_weights(
        train_config("a").checkpoint_dir / "epoch_002.pt", cfg.checkpoint_dir / "epoch_002.pt"
    )
    assert [int(r["epoch"]) for r in _rows(cfg)] == [1, 2, 3]
    assert not last.exists()


def test_an_interrupted_bar_ends_its_line(
    train_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Otherwise the CLI's "interrupted: ..." message, written while it holds the exception
    # (whose traceback keeps the bar alive), lands on the bar's own line.
    _interrupt_at_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt) as info:
        train(train_config(), progress=True)
    err = capsys.readouterr().err
    assert info.value is not None  # held until here, as the CLI holds it
    assert "1/3" in err and err.endswith("\n")


def test_rows_of_an_unsaved_epoch_are_not_duplicated(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed after epoch 2's row was written but before last.pt was: epoch 2 is trained again.
    cfg = train_config()
    _interrupt_saving(monkeypatch, "last.pt", 2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    assert [int(r["epoch"]) for r in _rows(cfg)] == [1, 2]
    train(cfg, progress=False)
    assert [int(r["epoch"]) for r in _rows(cfg)] == [1, 2, 3]


def test_a_row_cut_short_is_dropped_on_resume(tmp_path: Path) -> None:
    """A crash or a full disk mid-row leaves e.g. '1' of '12,0.1,...': it must not come back as
    a second epoch 1, nor an unreadable epoch stop the resume."""
    from landscape.train import _rewrite_csv

    path = tmp_path / "metrics.csv"
    full = "{},0.1,1.0,50.0,1.1,49.0,2.0\n"
    path.write_text(
        ",".join(CSV_FIELDS) + "\n" + full.format(1) + full.format(2) + "1\n" + "x,0.1\n"
    )
    _rewrite_csv(path, keep_epochs=2)
    with open(path, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    _rewrite_csv(path, keep_epochs=1)
    with open(path, newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]


def test_interrupted_before_the_final_save_keeps_the_metrics(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train(train_config("a"), progress=False)
    cfg = train_config("b")
    _interrupt_saving(monkeypatch, "epoch_003.pt", 3)  # last.pt already holds epoch 3
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    resumed = train(cfg, progress=False)
    _assert_same_weights(whole, resumed)
    assert load_checkpoint(resumed)["metrics"] == load_checkpoint(whole)["metrics"]


def test_rerunning_a_finished_run_is_a_no_op(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = train_config()
    final = train(cfg, progress=False)
    stamp = final.stat().st_mtime_ns

    def no_data(*args: object) -> None:
        raise AssertionError("a finished run must not load data")

    monkeypatch.setattr("landscape.data.load_datasets", no_data)
    logs: list[str] = []
    # A kill between writing final.pt and removing last.pt leaves both: last.pt goes now.
    shutil.copy(final, cfg.checkpoint_dir / "last.pt")
    assert train(cfg, progress=False, log=logs.append) == final
    assert final.stat().st_mtime_ns == stamp
    assert not (cfg.checkpoint_dir / "last.pt").exists()
    assert any("already trained" in line for line in logs)
    # Settings that cannot change the weights do not make it a different run.
    same = train_config(
        surface={"x": [-2, 2, 3]},
        train={"workers": 1, "save_every": 1},
        data={"root": "x", "download": True, "test_subset": 8},
    )
    assert train(same, progress=False) == final
    # A checkpoint of an older version holds those settings in its fingerprint: still the same.
    ckpt = load_checkpoint(final)
    ckpt["train_fingerprint"]["train"]["save_every"] = 7
    torch.save(ckpt, final)
    assert train(same, progress=False) == final


@pytest.mark.skipif(sys.platform == "win32", reason="advisory file locks are POSIX")
def test_a_second_trainer_of_one_folder_is_refused(train_config: Callable[..., Config]) -> None:
    """While one process trains into a run folder (it holds the folder's lock), another is
    refused in one line; the lock goes with its holder, so training then proceeds."""
    import fcntl

    cfg = train_config()
    cfg.run_dir.mkdir(parents=True)
    with open(cfg.run_dir / ".train.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LandscapeError, match="being trained by another process"):
            train(cfg, progress=False)
        assert not cfg.checkpoint_dir.exists()
    assert train(cfg, progress=False).exists()


def test_changed_config_needs_overwrite(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    train(train_config(), progress=False)
    changed = train_config(train={"lr": 0.05})
    with pytest.raises(LandscapeError) as info:
        train(changed, progress=False)
    assert "--overwrite" in str(info.value) and "\n" not in str(info.value)
    assert "train.lr: 0.1 in the file, 0.05 now" in str(info.value)

    final = train(changed, progress=False, overwrite=True)
    assert load_checkpoint(final)["config"]["train"]["lr"] == 0.05
    assert [int(r["epoch"]) for r in _rows(changed)] == [1, 2, 3]

    # The same holds for an interrupted run: its last.pt belongs to the other config.
    _interrupt_at_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(train_config("b"), progress=False)
    monkeypatch.undo()
    with pytest.raises(LandscapeError, match="--overwrite"):
        train(train_config("b", train={"lr": 0.05}), progress=False)


def test_overwrite_with_settings_that_fail_keeps_the_trained_run(
    train_config: Callable[..., Config],
) -> None:
    """--overwrite deletes the old run only once the new settings' data and model have loaded:
    a mistake in them (here a subset larger than the data) leaves the trained run as it was."""
    final = train(train_config(), progress=False)
    before = final.read_bytes(), (final.parent.parent / "metrics.csv").read_text()
    with pytest.raises(LandscapeError, match="subset"):
        train(train_config(data={"subset": 100_000}), progress=False, overwrite=True)
    assert (final.read_bytes(), (final.parent.parent / "metrics.csv").read_text()) == before
    assert len(list(final.parent.glob("epoch_*.pt"))) >= 2


def test_resume_keeps_the_precision_auto_began_with(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    auto = {"precision": "auto"}
    whole = train(train_config("a", train=auto), progress=False)
    began = train_module.training_precision(
        train_config("a", train=auto).train, torch.device("cpu")
    )
    cfg = train_config("b", train=auto)
    _interrupt_at_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    # Resumed on a machine where auto resolves otherwise: the run goes on as it began.
    other = "float32" if began == "bf16" else "bf16"
    monkeypatch.setattr(train_module, "training_precision", lambda t, dev: other)
    logs: list[str] = []
    resumed = train(cfg, progress=False, log=logs.append)
    assert f"training on in {began}, as the run began (auto here would be {other})" in logs
    _assert_same_weights(whole, resumed)
    # Every checkpoint says what auto resolved to; the config says only "auto".
    for path in sorted(cfg.checkpoint_dir.glob("*.pt")):
        assert load_checkpoint(path)["precision"] == began, path.name


# ----------------------------------------------------------------------------- recipe


def test_step_schedule() -> None:
    t = TrainConfig(epochs=6, lr=0.1, schedule="step", milestones=[2, 4], gamma=0.1)
    lrs = [lr_at(e, t) for e in range(6)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_schedule() -> None:
    t = TrainConfig(epochs=10, lr=0.2, schedule="cosine")
    lrs = [lr_at(e, t) for e in range(10)]
    assert lrs[0] == pytest.approx(0.2)
    assert lr_at(5, t) == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] > 0  # the last epoch still learns


def test_constant_schedule() -> None:
    t = TrainConfig(epochs=5, lr=0.03, schedule="constant", milestones=[1])
    assert [lr_at(e, t) for e in range(5)] == [0.03] * 5


def test_optimizers(train_config: Callable[..., Config]) -> None:
    model = torch.nn.Linear(2, 2)
    sgd = make_optimizer(model, TrainConfig(lr=0.1, momentum=0.9, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["nesterov"] is True and sgd.defaults["momentum"] == 0.9
    plain = make_optimizer(model, TrainConfig(momentum=0.0))
    assert plain.defaults["nesterov"] is False  # torch refuses Nesterov without momentum
    adam = make_optimizer(model, TrainConfig(optimizer="adam", lr=1e-3, weight_decay=0.0))
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 1e-3


def test_adam_trains_and_differs_from_sgd(train_config: Callable[..., Config]) -> None:
    adam_cfg = train_config("adam", train={"epochs": 1, "optimizer": "adam", "lr": 1e-3})
    adam = _weights(train(adam_cfg, progress=False))
    sgd = _weights(train(train_config("sgd", train={"epochs": 1}), progress=False))
    assert all(torch.isfinite(v.float()).all() for v in adam.values())
    assert not torch.equal(adam["conv1.weight"], sgd["conv1.weight"])
    assert [int(r["epoch"]) for r in _rows(adam_cfg)] == [1]


def test_paper_init_starts_from_the_papers_code_weights(
    train_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch import nn

    mine = train_config("own", train={"epochs": 1})
    train(mine, progress=False)
    own = _weights(mine.checkpoint_dir / "epoch_000.pt")
    cfg = train_config("paper", train={"init": "paper", "epochs": 1})
    train(cfg, progress=False)
    start = _weights(cfg.checkpoint_dir / "epoch_000.pt")
    model = build_model(cfg)
    model.load_state_dict(start)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.weight.std().item() == pytest.approx(1e-3, rel=0.3) for m in linears)
    assert all(m.bias is None or not m.bias.any() for m in linears)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for m in convs:  # Kaiming over fan-in: std sqrt(2 / fan_in)
        fan_in = m.weight[0].numel()
        assert m.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.3)
    # The model's own initialisation (the default) is another one.
    assert not all(torch.equal(start[k], own[k]) for k in start)

    # A checkpoint from before train.init (no init in its fingerprint) resumes as "model".
    _interrupt_at_epoch(monkeypatch, 1)
    old = train_config("old", train={"epochs": 2})
    with pytest.raises(KeyboardInterrupt):
        train(old, progress=False)
    monkeypatch.undo()
    last = old.checkpoint_dir / "last.pt"
    ck = torch.load(last, weights_only=True)
    del ck["train_fingerprint"]["train"]["init"]
    torch.save(ck, last)
    assert train(old, progress=False).exists()
