"""How fast surfaces are evaluated: raw forward speed, landscape's grid speed, a research baseline.

For each model, one run on the same weights, data and grid measures
  (a) raw forward throughput of the plain model (best batch size and memory format, exact
      float32: no TF32 on a GPU),
  (b) landscape's grid throughput (grid points x samples / wall time, warm-up timed apart) per
      precision, points per call and compilation, with the largest loss error against float32,
  (c) a baseline written the way research code does it: a DataLoader with per-image transforms
      (PIL, ToTensor, Normalize; batch 128; PyTorch's default TF32 on a GPU) and weights rebuilt
      from numpy at every grid point.
The data are seeded random CIFAR-shaped uint8 images, so the benchmark runs offline, or the
training set a landscape checkpoint records, for the precision errors of a trained net.
"""

from __future__ import annotations

import contextlib
import copy
import json
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from .config import PRECISIONS, EngineConfig
from .data import CIFAR10_MEAN as MEAN  # the channel statistics research scripts normalize with
from .data import CIFAR10_STD as STD
from .directions import Direction, random_directions, target_tensors
from .engine import EvalSet, PointEvaluator, autocast_context, device_name, resolve_device
from .errors import LandscapeError, unknown_name_message
from .surface import Log

NUM_CLASSES = 10
BASELINE_BATCH = 128


def projected_minutes(throughput: float, points: int = 2601, samples: int = 50000) -> float:
    """Minutes for `points` grid points on `samples` images (51x51 on CIFAR-10's train set)."""
    return points * samples / throughput / 60.0


# ----------------------------------------------------------------------------- data and weights


def synthetic_images(samples: int, image_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random uint8 images (N, H, W, 3), as CIFAR stores them, and labels (N,)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(samples, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=samples, dtype=np.int64)
    return images, labels


def normalized_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[Tensor, Tensor]:
    """All images at once, with the same arithmetic as ToTensor + Normalize per image."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float().div(255)
    mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(STD).reshape(1, 3, 1, 1)
    return x.sub(mean).div(std), torch.from_numpy(labels)


@dataclass
class BenchData:
    """What every measurement of one run shares: the evaluation tensors and the baseline's set."""

    x: Tensor  # (N, C, H, W) float32, normalized
    y: Tensor  # (N,) int64
    dataset: Dataset  # the same examples, read one by one by the baseline's DataLoader
    description: str
    config: Any = None  # the checkpoint's Config when the data come from it


def synthetic_data(samples: int, image_size: int, seed: int) -> BenchData:
    images, labels = synthetic_images(samples, image_size, seed)
    x, y = normalized_tensors(images, labels)
    return BenchData(
        x, y, _UInt8Images(images, labels), f"{samples} random images of {image_size}x{image_size}"
    )


def checkpoint_data(
    ckpt: dict[str, Any], checkpoint: str, samples: int, seed: int
) -> BenchData | None:
    """The train split a landscape checkpoint (ckpt, read from checkpoint) was trained on, a
    seeded subset; None when it records no config."""
    from .config import config_from_dict
    from .data import dataset_to_tensors, eval_dataset, subset_indices

    stored = ckpt.get("config") or {}
    if not stored.get("data"):
        return None
    # A run of a figure config stores the figure's compare section too, whose titles name every
    # run of the figure: it says nothing of this run, and would not validate on its own.
    stored = {k: v for k, v in stored.items() if k != "compare"}
    cfg = config_from_dict(stored, file=f"{checkpoint} (its stored config)")
    ds = eval_dataset(cfg.data, "train")
    n = min(samples, len(ds))  # type: ignore[arg-type]
    x, y = dataset_to_tensors(ds, n=n, seed=seed)
    subset = Subset(ds, subset_indices(len(ds), n, seed).tolist())  # type: ignore[arg-type]
    return BenchData(x, y, subset, f"{n} training examples of {cfg.data.name}", cfg)


def _bench_model(
    name: str,
    trained: tuple[dict[str, Any], str] | None,
    models: Sequence[str],
    data: BenchData,
) -> tuple[nn.Module, str]:
    """The model, trained when the checkpoint (read, and its path) is for it, else freshly
    initialized (seeded)."""
    from .checkpoint import model_from_loaded
    from .models import create_model

    if trained is not None:
        ckpt, checkpoint = trained
        described = ckpt.get("model_name")
        if described is None and len(models) > 1:
            raise LandscapeError(
                f"checkpoint {checkpoint} does not name its model; benchmark one model with it"
            )
        if described in (None, name):
            # Sizes for a bare state_dict only: a checkpoint's own arguments are not overridden
            # (model_from_loaded refuses arguments that contradict them).
            args = None if ckpt.get("model_args") else {
                "num_classes": NUM_CLASSES, "in_channels": data.x.shape[1]
            }  # fmt: skip
            return model_from_loaded(ckpt, checkpoint, name, args), "trained"
        if data.config is not None:  # its data fit no other model
            raise LandscapeError(
                f"checkpoint {checkpoint} holds a {described!r}, not {name!r}: "
                f"pass --models {described}"
            )
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, in_channels=data.x.shape[1]), "random-init"


def _grid(grid: Sequence[int]) -> list[tuple[float, float]]:
    xs, ys = (np.linspace(-1.0, 1.0, int(n)) for n in grid)
    return [(float(x), float(y)) for y in ys for x in xs]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- (a) raw forward


class RawForward:
    """The plain model's forward over all images, in one batch size and memory format."""

    def __init__(self, model: nn.Module, x: Tensor, batch_size: int, memory_format: str) -> None:
        self.batch_size, self.memory_format = batch_size, memory_format
        self.net = model
        batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        if memory_format == "channels_last":
            self.net = copy.deepcopy(model).to(memory_format=torch.channels_last)
            batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
        self.batches = batches

    def __call__(self, limit: int | None = None) -> None:
        # Exact float32: on a GPU this turns off the TF32 that PyTorch allows cuDNN by default.
        with torch.inference_mode(), autocast_context(self.batches[0].device, "float32"):
            for b in self.batches[:limit]:
                self.net(b)


def best_raw_forward(model: nn.Module, x: Tensor, batch_sizes: Sequence[int]) -> RawForward:
    """The fastest batch size and memory format, each timed on about max(batch_sizes) images."""
    if not batch_sizes or min(batch_sizes) < 1:
        raise LandscapeError(f"batch sizes must be positive, got {list(batch_sizes)}")
    timed: list[tuple[float, RawForward]] = []
    for fmt in ("contiguous", "channels_last"):
        for bs in batch_sizes:
            raw = RawForward(model, x, bs, fmt)
            n = max(1, max(batch_sizes) // bs)
            raw(1)  # warm-up: allocator, kernel choice
            _sync(x.device)
            start = time.perf_counter()
            raw(n)
            _sync(x.device)
            rate = sum(len(b) for b in raw.batches[:n]) / (time.perf_counter() - start)
            timed.append((rate, raw))
    return max(timed, key=lambda t: t[0])[1]


# ----------------------------------------------------------------------------- (c) baseline


class _UInt8Images(Dataset):
    """Images kept as uint8 HWC arrays and transformed one by one, like torchvision's CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class Baseline:
    """The research-code recipe, on a private copy of the model.

    At every point the weights are rebuilt from numpy (state dict -> numpy -> tensors -> load,
    then the directions added) and the images go through a DataLoader with per-image transforms.
    """

    def __init__(
        self,
        model: nn.Module,
        dirs: list[Direction],
        dataset: Dataset,
        device: torch.device,
        workers: int = 0,
    ) -> None:
        self.net = copy.deepcopy(model).eval()
        self.device = device
        self.loader = DataLoader(dataset, batch_size=BASELINE_BATCH, num_workers=workers)
        self.origin = {k: v.detach().cpu().numpy().copy() for k, v in self.net.state_dict().items()}
        self.dx, self.dy = ({k: v.detach().cpu().numpy() for k, v in d.items()} for d in dirs)
        self.criterion = nn.CrossEntropyLoss()

    def loss_at(self, x: float, y: float) -> float:
        self.net.load_state_dict({k: torch.tensor(v) for k, v in self.origin.items()})
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                p.copy_(torch.tensor(self.origin[name] + x * self.dx[name] + y * self.dy[name]))
        total, count = 0.0, 0
        with torch.no_grad():
            for inputs, targets in self.loader:
                inputs, targets = inputs.to(self.device), targets.to(self.device)
                out = self.net(inputs)
                total += self.criterion(out, targets).item() * len(targets)
                count += len(targets)
        return total / count

    def warm_up(self) -> None:
        with torch.no_grad():
            self.net(next(iter(self.loader))[0].to(self.device))


# ----------------------------------------------------------------------------- the benchmark


def _errors(
    losses: list[float], reference: list[float] | None
) -> tuple[float | None, float | None]:
    """Largest absolute and relative loss error against the reference (float32) losses."""
    if reference is None:
        return None, None
    a, r = np.asarray(losses, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    diff = np.abs(a - r)
    return float(diff.max()), float((diff / np.maximum(np.abs(r), 1e-12)).max())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


@torch.no_grad()
def calibrate_bn(model: nn.Module, x: Tensor, batch_size: int = 500) -> None:
    """Set BN running statistics to those of x, so a random-init net has sane eval activations."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # an exact average over the batches
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    model.eval()
    for m, momentum in zip(bns, saved, strict=True):
        m.momentum = momentum


class _Clock:
    """Wall seconds accumulated per measured configuration."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[Any, float] = {}

    @contextlib.contextmanager
    def time(self, key: Any) -> Iterator[None]:
        _sync(self.device)
        start = time.perf_counter()
        yield
        _sync(self.device)
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start


CPU_BATCH_SIZES = (128, 256, 500, 1000)
GPU_BATCH_SIZES = (500, 1000, 2000, 4000)


def run_benchmark(
    models: Sequence[str] = ("resnet20", "resnet56"),
    image_size: int = 32,
    samples: int = 2000,
    grid: Sequence[int] = (3, 3),
    batch_sizes: Sequence[int] | None = None,
    precisions: Sequence[str] = ("float32", "bf16"),
    device: str = "auto",
    baseline: bool = True,
    trained_checkpoint: str | None = None,
    progress: Log | None = None,
    *,
    points_per_call: Sequence[int] = (1,),
    compile_too: bool = False,
    batch_size: int | None = None,
    channels_last: str = "auto",
    baseline_workers: int = 2,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One result per model and landscape setting: each precision at one point per call, then
    float32 at each larger points_per_call, then (compile_too) each precision compiled.

    batch_sizes are the raw forward's candidates (None: a CPU or GPU default); batch_size is
    landscape's (None: the surface default on a CPU, the raw forward's best on a GPU), and
    channels_last its engine.channels_last. With a landscape checkpoint that records its config,
    the data are its training set (realistic precision errors); otherwise seeded random
    CIFAR-shaped images.

    The measurements are interleaved point by point (raw forward, each landscape setting, the
    baseline), so a change in the machine's load touches them alike and the ratios hold. Each
    result holds the three throughputs, their ratios, the loss error against float32, the
    51x51-on-50k projection and the peak memory.
    """
    say = progress or (lambda _msg: None)
    dev = resolve_device(device)
    if len(grid) != 2 or min(grid) < 1:
        raise LandscapeError(f"grid must be two positive sizes (nx, ny), got {tuple(grid)}")
    for p in precisions:  # before minutes of measuring
        if p not in PRECISIONS:
            raise LandscapeError(unknown_name_message("precision", p, PRECISIONS))
    if batch_sizes is None:
        batch_sizes = GPU_BATCH_SIZES if dev.type == "cuda" else CPU_BATCH_SIZES
    trained = None
    if trained_checkpoint is not None:
        from .checkpoint import load_checkpoint

        trained = load_checkpoint(trained_checkpoint), trained_checkpoint
    source = checkpoint_data(*trained, samples, seed) if trained else None
    source = source or synthetic_data(samples, image_size, seed)
    data = {"train": EvalSet(source.x.to(dev), source.y.to(dev))}
    samples = len(source.y)
    points = _grid(grid)
    settings = [(p, 1, False) for p in precisions]
    if "float32" in precisions:
        settings += [("float32", k, False) for k in points_per_call if k > 1]
    if compile_too:
        settings += [(p, 1, True) for p in precisions]
    results = []
    for name in models:
        model, weights = _bench_model(name, trained, models, source)
        model.to(dev).eval()
        if weights == "random-init":
            calibrate_bn(model, data["train"].x)
            weights = "random-init, BN statistics of the data"
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        targets = target_tensors(model, "weights")
        dirs = random_directions(targets, 2, norm="filter", ignore="biasbn", seed=seed)

        say(f"{name}: choosing the raw forward's batch size and memory format")
        raw = best_raw_forward(model, data["train"].x, batch_sizes)
        chunk = max(k for _, k, _ in settings)
        evaluators = {
            s: PointEvaluator(
                model,
                targets,
                dirs,
                batch_size=batch_size or (raw.batch_size if dev.type == "cuda" else None),
                precision=s[0],
                engine=EngineConfig(
                    channels_last=channels_last, points_per_call=s[1], compile=s[2]
                ),
            )
            for s in settings
        }
        base = Baseline(model, dirs, source.dataset, dev, baseline_workers) if baseline else None
        warmup: dict[Any, float] = {}
        for key, ev in evaluators.items():  # warm-up (compilation, kernel choice), timed apart
            say(f"{name}: warming up {_label(key)}")
            start = time.perf_counter()
            with ev.session():
                ev.evaluate_many(points[:chunk], data)
            _sync(dev)
            warmup[key] = time.perf_counter() - start
        if base is not None:
            base.warm_up()

        clock = _Clock(dev)
        losses: dict[Any, list[float]] = {key: [] for key in [*settings, "baseline"]}
        for start in range(0, len(points), chunk):
            group = points[start : start + chunk]
            say(f"{name}: points {start + 1}-{start + len(group)} of {len(points)}")
            with clock.time("raw"):
                for _ in group:
                    raw()
            for key, ev in evaluators.items():
                with ev.session(), clock.time(key):
                    losses[key] += [r["train_loss"] for r in ev.evaluate_many(group, data)]
            if base is not None:
                with clock.time("baseline"):
                    losses["baseline"] += [base.loss_at(px, py) for px, py in group]

        work = len(points) * samples
        raw_rate = work / clock.seconds["raw"]
        base_rate = work / clock.seconds["baseline"] if base is not None else None
        reference = losses.get(("float32", 1, False))
        base_abs, base_rel = _errors(losses["baseline"], reference) if base else (None, None)
        cuda_peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        for key, ev in evaluators.items():
            rate = work / clock.seconds[key]
            abs_err, rel_err = _errors(losses[key], reference)
            results.append(
                {
                    "model": name,
                    "weights": weights,
                    "data": source.description,
                    "device": str(dev),
                    "device_name": device_name(dev),
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "image_size": int(source.x.shape[-1]),
                    "samples": samples,
                    "grid": [int(g) for g in grid],
                    "precision": key[0],
                    "points_per_call": key[1],
                    "engine": {
                        "channels_last": ev.choice.channels_last,
                        "fold_bn": ev.choice.fold_bn,
                        "folded_pairs": ev.choice.folded_pairs,
                        "fused_convs": ev.choice.fused_convs,
                        "compile": ev.choice.compile,
                        "batch_size": ev.batch_size,
                    },
                    "raw_images_per_s": raw_rate,
                    "raw_batch_size": raw.batch_size,
                    "raw_memory_format": raw.memory_format,
                    "landscape_images_per_s": rate,
                    "baseline_images_per_s": base_rate,
                    "baseline_workers": baseline_workers if baseline else None,
                    "vs_raw": rate / raw_rate,
                    "vs_baseline": rate / base_rate if base_rate else None,
                    "loss_max_abs_err": abs_err,
                    "loss_max_rel_err": rel_err,
                    "nonfinite_points": int((~np.isfinite(losses[key])).sum()),
                    "baseline_loss_max_abs_err": base_abs,
                    "baseline_loss_max_rel_err": base_rel,
                    "projected_minutes_51x51_50k": projected_minutes(rate),
                    "warmup_s": warmup[key],
                    "peak_rss_mb": _peak_rss_mb(),
                    "cuda_peak_mb": cuda_peak,
                }
            )
    return results


def _label(key: tuple[str, int, bool]) -> str:
    precision, per_call, compiled = key
    return (
        precision
        + (f", {per_call} points per call" if per_call > 1 else "")
        + (", compiled" if compiled else "")
    )


def _result_label(result: dict[str, Any]) -> str:
    return _label((result["precision"], result["points_per_call"], result["engine"]["compile"]))


def to_json_line(result: dict[str, Any]) -> str:
    """One result as one line of JSON."""
    return json.dumps(result, sort_keys=True)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_results(results: Sequence[dict[str, Any]]) -> str:
    """A table for people: throughputs in images/s, ratios, loss errors and projected minutes."""
    gpu = any(r.get("cuda_peak_mb") is not None for r in results)
    header = (
        f"{'model':<12} {'setting':<24} {'raw':>8} {'landscape':>9} {'baseline':>8} {'b/a':>5} "
        f"{'b/c':>5} {'max|dloss|':>10} {'max rel':>8} {'51x51 min':>9} {'RSS MB':>7}"
        + (f" {'GPU MB':>7}" if gpu else "")
    )
    lines = [header, "-" * len(header)]
    for r in results:
        setting = _result_label(r)
        lines.append(
            f"{r['model']:<12} {setting:<24} "
            f"{r['raw_images_per_s']:>8.0f} {r['landscape_images_per_s']:>9.0f} "
            f"{_fmt(r['baseline_images_per_s'], '>8.0f'):>8} {r['vs_raw']:>5.2f} "
            f"{_fmt(r['vs_baseline'], '>5.2f'):>5} {_fmt(r['loss_max_abs_err'], '>10.2e'):>10} "
            f"{_fmt(r['loss_max_rel_err'], '>8.1e'):>8} "
            f"{r['projected_minutes_51x51_50k']:>9.1f} {r['peak_rss_mb']:>7.0f}"
            + (f" {_fmt(r.get('cuda_peak_mb'), '>7.0f'):>7}" if gpu else "")
        )
    if results:
        r0 = results[0]
        kinds = sorted({r["weights"] for r in results})
        caveat = " (loss errors on random-init weights only hint at a trained net's)"
        random_init = any(k.startswith("random-init") for k in kinds)
        lines += [
            "",
            f"device {r0['device']} ({r0.get('device_name', '?')}), {r0['threads']} threads, "
            f"torch {r0.get('torch', '?')}; {r0.get('data', '')}, "
            f"grid {r0['grid'][0]}x{r0['grid'][1]}; "
            f"weights: {', '.join(kinds)}{caveat if random_init else ''}",
            "raw = plain model forward, best batch and memory format; landscape = grid points x "
            "images / wall time; baseline = per-image DataLoader + numpy weights at every point",
            "51x51 min = projected minutes for 2601 points on 50,000 images at landscape's rate",
        ]
        for r in results:
            if r.get("nonfinite_points"):
                setting = _result_label(r)
                fp16 = r["precision"] == "fp16"
                why = " (fp16 overflow; bf16 has float32's range)" if fp16 else ""
                lines.append(
                    f"{r['model']} {setting}: {r['nonfinite_points']} of "
                    f"{r['grid'][0] * r['grid'][1]} points gave a non-finite loss{why}"
                )
    return "\n".join(lines)
