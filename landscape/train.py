"""Training from a config: seeded, checkpointed every few epochs, resumable to the same weights."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_checkpoint, load_state_into, model_from_checkpoint, save_checkpoint
from .config import DATA_LOCATION_KEYS, Config, TrainConfig
from .engine import (
    CHANNELS_LAST_FAILS,
    EvalSet,
    autocast_context,
    channels_last_works,
    evaluate,
    make_loss,
    resolve_device,
)
from .errors import ConfigError, LandscapeError, check_same_settings, unknown_name_message

CSV_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]


def model_args(cfg: Config) -> dict[str, Any]:
    """Model arguments: classes and channels from the data, then the config's own; first
    checks that model.name is a registered model or an import path."""
    from .data import data_info
    from .models import list_models
    from .models.registry import is_import_path

    name = cfg.model.name
    if not is_import_path(name) and name not in list_models():
        message = unknown_name_message("model", name, list_models())
        raise ConfigError(message, file=cfg.source, key="model.name")

    info = data_info(cfg.data)
    return {"num_classes": info.num_classes, "in_channels": info.in_channels, **cfg.model.args}


def load_trained(
    cfg: Config, path: str | Path, device: torch.device
) -> tuple[nn.Module, dict[str, Any]]:
    """The config's model with a checkpoint's weights (device, eval mode) and the checkpoint dict.

    A bare state_dict is rebuilt from the config's model name and arguments. Warns (once per
    checkpoint and difference) when the config's data are not those it was trained on: the
    surface, trajectory and Hessian map all measure the config's data.
    """
    model, ckpt = model_from_checkpoint(path, cfg.model.name, model_args(cfg))
    _warn_other_data(ckpt, Path(path), cfg)
    return model.to(device).eval(), ckpt


_WARNED_DATA: set[tuple[str, str]] = set()


def _warn_other_data(ckpt: Mapping[str, Any], path: Path, cfg: Config) -> None:
    """Say so when a run measures other data than the checkpoint was trained on."""
    from .data import differs_from_training

    trained = (ckpt.get("config") or {}).get("data")
    if not isinstance(trained, dict):
        return  # a bare state_dict, or a checkpoint from elsewhere: nothing to compare with
    diffs = "; ".join(differs_from_training(trained, cfg.data, cfg.surface.splits))
    if diffs and (str(path), diffs) not in _WARNED_DATA:
        _WARNED_DATA.add((str(path), diffs))
        warnings.warn(
            f"{path} was trained on other data than this run measures ({diffs})", stacklevel=4
        )


def build_model(cfg: Config, args: dict[str, Any] | None = None) -> nn.Module:
    """The config's model, freshly initialized; args: model_args(cfg) when already known."""
    from .models import create_model

    return create_model(cfg.model.name, **(args if args is not None else model_args(cfg)))


def make_optimizer(model: nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    if t.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=t.lr,
        momentum=t.momentum,
        nesterov=t.nesterov and t.momentum > 0,
        weight_decay=t.weight_decay,
    )


def lr_at(epoch: int, t: TrainConfig) -> float:
    """The learning rate for (0-based) `epoch`: step decay at milestones, cosine, or constant."""
    if t.schedule == "cosine":
        return 0.5 * t.lr * (1 + math.cos(math.pi * epoch / t.epochs))
    if t.schedule == "step":
        return t.lr * t.gamma ** sum(epoch >= m for m in t.milestones)
    return t.lr


# Settings that do not change the weights: where the data live (DATA_LOCATION_KEYS), the test
# subset (test metrics only), loader workers and how often checkpoints are kept.
_NOT_WEIGHTS = {
    "data": (*DATA_LOCATION_KEYS, "test_subset"),
    "train": ("workers", "save_every"),
}


def _train_fingerprint(cfg: Config) -> dict[str, Any]:
    d = cfg.to_dict()
    return _weights_settings({"model": d["model"], "data": d["data"], "train": d["train"]})


def _weights_settings(fp: dict[str, Any]) -> dict[str, Any]:
    """A training fingerprint without _NOT_WEIGHTS (also those that older checkpoints hold)."""
    return {
        section: {k: v for k, v in values.items() if k not in _NOT_WEIGHTS.get(section, ())}
        if isinstance(values, dict)
        else values
        for section, values in fp.items()
    }


def train(
    cfg: Config,
    *,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
    epoch_lines: bool = True,
) -> Path:
    """Train the configured model; resume from `last.pt` if an earlier run was interrupted.

    Returns the final checkpoint's path. A finished run with the same config is not retrained.
    Where no progress bar shows, each epoch logs a line (a log without a terminal), unless
    epoch_lines is False (--quiet).
    """
    with _only_trainer(cfg.run_dir):
        return _train(cfg, device, progress, log, overwrite, epoch_lines)


@contextlib.contextmanager
def _only_trainer(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's training lock: two processes training into one folder would
    interleave their checkpoints and metrics rows. The operating system drops the lock when its
    process ends, however it ends."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(run_dir / ".train.lock", "a")  # noqa: SIM115 (held across the yield)
    except OSError:
        # A folder this process cannot write: a finished run is still read from it, and
        # training fails on its first checkpoint with the folder's own error.
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LandscapeError(
                f"{run_dir} is being trained by another process: wait for it to finish, or "
                "train into another folder (--out)"
            ) from None
        yield


def _train(
    cfg: Config,
    device: str | None,
    progress: bool,
    log: Callable[[str], None] | None,
    overwrite: bool,
    epoch_lines: bool,
) -> Path:
    from .data import eval_dataset, load_datasets

    log = log or (lambda s: None)
    t = cfg.train
    dev = resolve_device(device or cfg.device)
    ckdir = cfg.checkpoint_dir
    final, last = ckdir / "final.pt", ckdir / "last.pt"
    fp = _train_fingerprint(cfg)
    # --overwrite replaces the run, so what it holds need not agree with the new settings.
    if not overwrite:
        for existing in (final, last):
            if existing.exists():
                stored = load_checkpoint(existing).get("train_fingerprint")
                if stored is not None:
                    # Checkpoints from before train.init began from the model's own weights.
                    stored.get("train", {}).setdefault("init", "model")
                    check_same_settings(existing, _weights_settings(stored), fp, made="trained")
        if final.exists():
            last.unlink(missing_ok=True)  # left by a kill between writing final.pt and removing it
            log(f"already trained: {final}")
            return final

    train_set, test_set, _ = load_datasets(cfg.data)
    from .data import dataset_to_tensors

    tx, ty = dataset_to_tensors(eval_dataset(cfg.data, "test"))
    test = EvalSet(tx.to(dev), ty.to(dev))
    margs = model_args(cfg)
    torch.manual_seed(t.seed)
    # Nothing between the seed and the model: a data function called here could draw from the
    # random generator and change the initial weights.
    model = build_model(cfg, margs).to(dev)
    if t.init == "paper":
        from .models.init import paper_init

        paper_init(model)
    channels_last = t.channels_last
    if channels_last and not channels_last_works(model.eval(), tx[:2].to(dev)):
        log(f"{CHANNELS_LAST_FAILS}: training on contiguous (NCHW) inputs")
        channels_last = False
    if channels_last:
        # Faster convolutions on CPUs and GPUs; checkpoints store ordinary (contiguous) tensors.
        model = model.to(memory_format=torch.channels_last)
    precision = training_precision(t, dev)
    opt = make_optimizer(model, t)
    if overwrite:
        # Only once the new settings' data and model have loaded: a mistake in them must not
        # cost the trained run.
        for p in list(ckdir.glob("*.pt")) + [cfg.run_dir / "metrics.csv"]:
            p.unlink(missing_ok=True)
    start = 0
    # Kept from last.pt: an interruption after the last epoch leaves no epoch to recompute them.
    metrics: dict[str, float] = {}
    if last.exists():
        ck = load_checkpoint(last)
        load_state_into(model, ck["state_dict"], str(last))
        opt.load_state_dict(ck["optimizer"])
        start = int(ck["epoch"])
        metrics = dict(ck.get("metrics") or {})
        log(f"resuming from {last} at epoch {start}")
        began = ck.get("precision")
        if t.precision == "auto" and began is not None and began != precision:
            # The same arithmetic as before the interruption, so that the run ends where an
            # uninterrupted one would (on another machine, auto may resolve otherwise).
            log(f"training on in {began}, as the run began (auto here would be {precision})")
            precision = began
    # Every checkpoint records the precision the run trains in: `auto` in its config does not
    # say which, and bf16 and float32 reach other weights.
    kept = {"precision": precision}
    if start == 0:
        _save(ckdir / "epoch_000.pt", model, cfg, margs, 0, {}, fp, kept)
    _rewrite_csv(cfg.run_dir / "metrics.csv", start)
    loss_fn = make_loss("crossentropy")
    # Closed on Ctrl-C too, so that the message that follows starts a line of its own.
    with _progress(start, t.epochs, progress, cfg.run or cfg.name) as bar:
        for epoch in range(start, t.epochs):
            tic = time.perf_counter()
            lr = lr_at(epoch, t)
            for group in opt.param_groups:
                group["lr"] = lr
            # Reseeding from (seed, epoch) makes shuffling and augmentation independent of
            # where a run was interrupted, so a resumed run reaches the same weights;
            # SeededExamples makes augmentation independent of the number of loader workers.
            seed = t.seed * 100_003 + epoch
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            loader = DataLoader(
                SeededExamples(train_set, seed),
                batch_size=t.batch_size,
                shuffle=True,
                generator=gen,
                num_workers=t.workers,
                drop_last=False,
            )
            train_loss, train_acc = _train_epoch(model, loader, opt, dev, precision, channels_last)
            test_loss, test_acc = evaluate(model.eval(), test, loss_fn)
            metrics = {
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
            }
            row = {"epoch": epoch + 1, "lr": lr, **metrics, "seconds": time.perf_counter() - tic}
            _append_csv(cfg.run_dir / "metrics.csv", row)
            done = epoch + 1
            if done % t.save_every == 0 and done != t.epochs:
                _save(ckdir / f"epoch_{done:03d}.pt", model, cfg, margs, done, metrics, fp, kept)
            extra = {"optimizer": opt.state_dict(), **kept}
            _save(last, model, cfg, margs, done, metrics, fp, extra)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{train_loss:.3f}", acc=f"{train_acc:.1f}", test_acc=f"{test_acc:.1f}"
                )
            elif epoch_lines:
                log(
                    f"epoch {done}/{t.epochs} loss {train_loss:.4f} acc {train_acc:.2f} "
                    f"test_loss {test_loss:.4f} test_acc {test_acc:.2f}"
                )
    _save(ckdir / f"epoch_{t.epochs:03d}.pt", model, cfg, margs, t.epochs, metrics, fp, kept)
    _save(final, model, cfg, margs, t.epochs, metrics, fp, kept)
    last.unlink(missing_ok=True)
    return final


def training_precision(t: TrainConfig, dev: torch.device) -> str:
    """'auto' is bf16 where the device computes it natively (recent GPUs and CPUs), else float32."""
    if t.precision != "auto":
        return t.precision
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "float32"
    native = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return "bf16" if native is not None and native() else "float32"


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    opt: torch.optim.Optimizer,
    dev: torch.device,
    precision: str = "float32",
    channels_last: bool = False,
) -> tuple[float, float]:
    model.train()
    total, correct, n = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        if channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast_context(dev, precision):
            out = model(xb)  # (B, classes)
        # The loss is taken in float32 whatever the forward pass ran in.
        loss = nn.functional.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(yb)
        correct += int((out.argmax(1) == yb).sum())
        n += len(yb)
    return total / n, 100.0 * correct / n


class SeededExamples(Dataset):
    """A data set whose example i draws its random augmentation from torch's generator seeded
    by (seed, i): the weights then do not depend on train.workers (each loader worker process
    has a random stream of its own, and which worker loads which batch varies with their number).
    """

    def __init__(self, data: Dataset, seed: int) -> None:
        self.data, self.seed = data, seed

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        gen = torch.default_generator
        state = gen.get_state()  # the stream the training step draws from (dropout) goes on
        gen.manual_seed((self.seed * 1_000_003 + i) % 2**63)
        try:
            return self.data[i]
        finally:
            gen.set_state(state)


def _save(
    path: Path,
    model: nn.Module,
    cfg: Config,
    margs: dict[str, Any],
    epoch: int,
    metrics: dict[str, float],
    fp: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    save_checkpoint(
        path,
        model,
        cfg.model.name,
        margs,
        config=cfg.to_dict(),
        epoch=epoch,
        metrics=metrics,
        extra={"train_fingerprint": fp, **(extra or {})},
    )


def _rewrite_csv(path: Path, keep_epochs: int) -> None:
    """Drop rows past the epoch we resume from (they belong to the interrupted attempt), and
    rows cut short by a crash or a full disk ("1" of "12,0.1,..." would read as epoch 1); an
    epoch written twice keeps its last row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    by_epoch: dict[int, dict[str, Any]] = {}
    if path.exists():
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                whole = all(r.get(k) not in (None, "") for k in CSV_FIELDS)
                epoch = r.get("epoch") or ""
                if whole and epoch.isdigit() and 0 < int(epoch) <= keep_epochs:
                    by_epoch[int(epoch)] = r
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    # Written aside and moved in, so that a kill here leaves the old rows, not half of them.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    try:
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow(row)
    except OSError as e:  # a full disk: say which file (the row is rewritten on resume)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None


def _progress(start: int, total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar over epochs to use in a `with` block, or a context of None when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=f"train {desc}", unit="epoch", dynamic_ncols=True)
