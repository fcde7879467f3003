"""Evaluating a model at points w + sum_i c_i d_i fast: a rewritten runner, channels-last, batches.

The user's model is moved in place (`move_to`) and restored bit for bit; the speed-ups run on a
private copy of its structure (the "runner"), refreshed from the model's tensors at every point, so
they never change the model itself. Evaluation data is either on the device (`EvalSet`) or read
batch by batch from a Dataset (`StreamSet`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from .data import as_eval_tensors, subset_indices
from .directions import Direction
from .errors import LandscapeError, first_line
from .rewrite import (
    FoldPair,
    bn_eps,
    can_fuse_on,
    copy_module,
    fold_into,
    fold_tensors,
    fuse_conv_pointwise,
    trace_fold_pairs,
)

if TYPE_CHECKING:
    from .config import EngineConfig

LossFn = Callable[[Tensor, Tensor], Tensor]

# Share of free host (or GPU) memory that evaluation tensors may take before they are streamed.
MEMORY_SHARE = 0.25

# Examples per forward call when the batch size is left to 'auto'. A CPU cuts every batch into
# cache-sized chunks (_chunks), so there the size only sets how often Python loops. A GPU runs a
# batch whole and needs thousands of images to be busy: on an H200 the raw forward of ResNet-20
# and ResNet-56 ran fastest at 4,000 of the candidates 500-4,000, and landscape's exact float32
# ResNet-56 ran 51,100 img/s at 4,000 (22,400 and 48,800 at 1,000 on two other H200s). A batch
# that does not fit in GPU memory is halved until it does (PointEvaluator).
AUTO_BATCH_SIZE = {"cpu": 1000, "cuda": 4000}


def resolve_batch_size(batch_size: int | str | None, device: torch.device) -> int:
    """A batch size as a number: 'auto' (or None) is AUTO_BATCH_SIZE of the device's type."""
    if batch_size is None or batch_size == "auto":
        return AUTO_BATCH_SIZE.get(device.type, AUTO_BATCH_SIZE["cpu"])
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LandscapeError(f"batch_size must be a positive integer or 'auto', not {batch_size!r}")
    return batch_size


def make_loss(name: str) -> LossFn:
    """A loss summed over the batch: 'crossentropy', or 'mse' of softmax against one-hot labels."""
    if name == "crossentropy":
        return lambda out, y: F.cross_entropy(out.float(), y, reduction="sum")
    if name == "mse":

        def mse(out: Tensor, y: Tensor) -> Tensor:
            probs = F.softmax(out.float(), dim=1)
            onehot = F.one_hot(y, probs.shape[1]).float()
            return ((probs - onehot) ** 2).mean(dim=1).sum()

        return mse
    raise ValueError(f"unknown loss {name!r}")


def logits(out: object, points: bool = False) -> Tensor:
    """The model's output as the built-in losses take it: (B, classes) logits, 2 classes or more
    ((P, B, classes) for several points per call); otherwise one line on passing a callable."""
    shape = "(batch, classes)"
    if not isinstance(out, Tensor):
        raise LandscapeError(
            f"loss: the built-in losses need the model to return {shape} logits, but it returns "
            f"a {type(out).__name__}; pass a callable (outputs, targets) -> mean loss that takes "
            "the model's output"
        )
    if out.dim() != 2 + points or out.shape[-1] < 2:
        got = tuple(out.shape[points:])
        raise LandscapeError(
            f"loss: the built-in losses need {shape} logits with 2 classes or more, but the "
            f"model returns {got}; pass a callable (outputs, targets) -> mean loss, e.g. for one "
            "logit lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())"
        )
    return out


def is_scores(out: object, n: int) -> bool:
    """Whether a model's output for n examples is (n, classes) scores, 2 classes or more: the
    outputs accuracy takes the argmax of."""
    return isinstance(out, Tensor) and out.dim() == 2 and len(out) == n and out.shape[1] > 1


def mean_loss(name: str) -> LossFn:
    """The named loss as a mean over the batch (make_loss sums, for exact accumulation)."""
    summed = make_loss(name)
    return lambda out, y: summed(out, y) / len(y)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU (or a name torch does not know) is
    one line suggesting 'cpu' or 'auto'."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LandscapeError(f"device: unknown {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LandscapeError(f"device {device!r}: no CUDA GPU is available here; use cpu or auto")
    return dev


def device_name(device: torch.device | None) -> str:
    """The GPU's model name, or the CPU's (its architecture where the platform names none)."""
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "unknown"


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse what cannot run: fp16 autocast and tf32 are for GPUs (the CPU's is bf16)."""
    if precision not in ("float32", "tf32", "bf16", "fp16"):
        raise LandscapeError(f"unknown precision {precision!r}; use float32, tf32, bf16 or fp16")
    if precision in ("fp16", "tf32") and device.type != "cuda":
        raise LandscapeError(f"precision {precision} needs a GPU; on the CPU use bf16 or float32")


@contextlib.contextmanager
def _tf32(allowed: bool) -> Iterator[None]:
    """Let (or forbid) CUDA convolutions and matrix products round their inputs to TF32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for the forward pass; tf32 lets a GPU's tensor cores round float32
    inputs; float32 is exact float32, TF32 off (PyTorch leaves it on for cuDNN by default)."""
    check_precision(device, precision)
    if precision in ("float32", "tf32"):
        return _tf32(precision == "tf32") if device.type == "cuda" else contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- evaluation data


@dataclass
class EvalSet:
    """Evaluation tensors on the device, prepared once (no augmentation, no per-point loader)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Consecutive slices (views, no copies) of at most batch_size examples."""
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size], self.y[start : start + batch_size]


class StreamSet:
    """Evaluation data read from a Dataset batch by batch, for sets larger than memory.

    The loader keeps its workers between passes (one pass per grid point) and pins host memory
    when the device is a GPU, so copies overlap with compute.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int = 1000,
        workers: int = 2,
        device: str | torch.device = "cpu",
    ) -> None:
        self.dataset = dataset
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
        )

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def host_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The loader's batches as evaluation takes them (`as_eval_tensors`), in host memory."""
        for xb, yb in self.loader:
            yield as_eval_tensors(torch.as_tensor(xb), torch.as_tensor(yb))

    def batches(self, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """The loader's batches on the device, cut to at most batch_size examples when given."""
        for x, y in self.host_batches():
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            step = batch_size or len(y)
            for start in range(0, len(y), step):
                yield x[start : start + step], y[start : start + step]


EvalData = EvalSet | StreamSet


def first_inputs(data: EvalData, n: int = 2) -> Tensor:
    """The first n inputs (fewer when the set is smaller), on the data's device."""
    if isinstance(data, EvalSet):
        return data.x[:n]
    count = min(n, len(data))
    x = torch.stack([torch.as_tensor(data.dataset[i][0]) for i in range(count)])
    return as_eval_tensors(x, torch.zeros(0, dtype=torch.int64))[0].to(data.device)


def memory_budget(device: torch.device) -> int:
    """Bytes that evaluation tensors may take on the device: a share of what is free now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_SHARE)
    return int(_available_host_memory() * MEMORY_SHARE)


def _available_host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def make_eval_set(
    dataset: Dataset,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    in_memory: str = "auto",
    batch_size: int | str | None = None,
    workers: int = 2,
    max_bytes: int | None = None,
) -> EvalData:
    """The seeded subset of n examples, in memory when it fits in max_bytes, else streamed.

    in_memory: 'auto' decides from the size (max_bytes defaults to a quarter of the free host or
    GPU memory); 'on' and 'off' force it. A subset larger than the data set is all of it.
    """
    if in_memory not in ("auto", "on", "off"):
        raise LandscapeError(f"in_memory must be auto, on or off, not {in_memory!r}")
    dev = torch.device(device)
    batch = resolve_batch_size(batch_size, dev)
    total = len(dataset)  # type: ignore[arg-type]
    if n is not None:
        n = min(n, total)
    count = total if n is None else n
    if in_memory == "auto":
        budget = memory_budget(dev) if max_bytes is None else max_bytes
        in_memory = "on" if count * _example_bytes(dataset) <= budget else "off"
    if in_memory == "on":
        from .data import dataset_to_tensors

        x, y = dataset_to_tensors(dataset, n=n, seed=seed, batch_size=batch)
        return EvalSet(x.to(dev), y.to(dev))
    idx = subset_indices(total, n, seed)
    subset = dataset if n is None else Subset(dataset, idx.tolist())
    return StreamSet(subset, batch_size=batch, workers=workers, device=dev)


def _example_bytes(dataset: Dataset) -> int:
    """Bytes one example takes as float32 input plus an int64 label."""
    x = torch.as_tensor(dataset[0][0])
    return x.numel() * 4 + 8


# ----------------------------------------------------------------------------- the forward loop


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest kernels for the fixed shapes, then put the flag back."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


# On a CPU a forward of more than ~3 MiB of float32 input (256 CIFAR images) runs slower per
# image: its activations no longer fit in cache (ResNet-20: 1,350 img/s at 128-256 images, 800
# at 1,000). Half-precision activations take half the bytes, so twice the images fit (ResNet-56
# in bf16, fused: 3,290 img/s at 256, 3,500-3,930 at 512, 2,480 at 1,024; float32 stays best at
# 256: 830 at 64, 910 at 128, 940 at 256, 860 at 512).
CPU_CHUNK_ELEMENTS = 256 * 3 * 32 * 32
MIN_CPU_CHUNK = 16


def _chunks(x: Tensor, y: Tensor, precision: str = "float32") -> Iterator[tuple[Tensor, Tensor]]:
    """A batch as is on a GPU; on a CPU, cut into cache-sized pieces (same results, faster)."""
    if x.device.type != "cpu" or x.dim() == 0 or len(x) == 0:
        yield x, y
        return
    per_example = max(1, x[0].numel())
    elements = CPU_CHUNK_ELEMENTS * (1 if precision == "float32" else 2)
    size = max(MIN_CPU_CHUNK, elements // per_example)
    for start in range(0, len(x), size):
        yield x[start : start + size], y[start : start + size]


def _to_format(x: Tensor, channels_last: bool) -> Tensor:
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _accumulate(
    forward: Callable[[Tensor], Tensor],
    data: EvalData,
    loss_fn: LossFn,
    batch_size: int,
    precision: str,
    channels_last: bool,
    points: int,
) -> list[tuple[float, float]]:
    """(mean loss, accuracy %) per point; forward maps (B, ...) to (points, B, classes).

    Sums stay on the device (float64 loss, int64 count), so a GPU is synchronized once per pass.
    """
    device = data.device
    total_loss = torch.zeros(points, dtype=torch.float64, device=device)
    correct = torch.zeros(points, dtype=torch.int64, device=device)
    with torch.inference_mode(), _cudnn_autotune(device), autocast_context(device, precision):
        for batch in data.batches(batch_size):
            for xb, yb in _chunks(*batch, precision):
                out = forward(_to_format(xb, channels_last))  # (P, B, classes)
                for p in range(points):
                    total_loss[p] += loss_fn(out[p], yb).double()
                    correct[p] += (out[p].argmax(dim=1) == yb).sum()
    n = len(data)
    losses, hits = total_loss.cpu().tolist(), correct.cpu().tolist()
    return [(loss / n, 100.0 * hit / n) for loss, hit in zip(losses, hits, strict=True)]


def evaluate(
    model: nn.Module,
    data: EvalData,
    loss_fn: LossFn,
    batch_size: int | str | None = None,
    precision: str = "float32",
    *,
    channels_last: bool = False,
) -> tuple[float, float]:
    """Mean loss and accuracy (percent) of the model as it is, accumulated in float64.

    batch_size None or 'auto' is the device's default (AUTO_BATCH_SIZE). channels_last feeds
    images in NHWC layout.
    """
    size = resolve_batch_size(batch_size, data.device)
    [result] = _accumulate(
        lambda x: logits(model(x)).unsqueeze(0), data, loss_fn, size, precision, channels_last, 1
    )
    return result


# ----------------------------------------------------------------------------- the evaluator

# engine.compile 'auto' compiles runs of at least this many evaluated examples (points x samples)
# per device type, unless the network is fused (CPU), or runs in exact float32 on a GPU. Measured
# for ResNet-56 at 32x32 (README, Speed): compiling took seconds to tens of seconds and then gained
# 14-42 % over the unfused network on 2 CPU cores (1M examples: about 20 minutes there), and on an
# H200 38 % in tf32 and 45 % in bf16 (50M examples: about 4 minutes in bf16 there) but lost 11 %
# in exact float32 (56,700 against 63,400 img/s, in NCHW).
COMPILE_AUTO_IMAGES = {"cpu": 1_000_000, "cuda": 50_000_000}


def auto_compile(device: torch.device, precision: str, work: int | None, fused: bool) -> bool:
    """Whether engine.compile 'auto' compiles: on long runs (COMPILE_AUTO_IMAGES), unless the
    network is fused or runs in exact float32 on a GPU."""
    bar = COMPILE_AUTO_IMAGES.get(device.type)
    long_run = work is not None and bar is not None and work >= bar
    exact_gpu = device.type == "cuda" and precision == "float32"
    return long_run and not fused and not exact_gpu


@dataclass(frozen=True)
class EngineChoice:
    """What the engine actually does for one model, after 'auto' is resolved."""

    channels_last: bool
    fold_bn: bool
    compile: bool
    points_per_call: int
    folded_pairs: int
    fused_convs: int = 0


def _state(model: nn.Module) -> dict[str, Tensor]:
    """Every parameter and buffer by qualified name, aliases of tied tensors included."""
    out: dict[str, Tensor] = dict(model.named_parameters(remove_duplicate=False))
    out.update(model.named_buffers(remove_duplicate=False))
    return out


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def auto_channels_last(model: nn.Module, device: torch.device, precision: str) -> bool:
    """Whether engine.channels_last 'auto' feeds NHWC images: for networks with 2D convolutions,
    except in exact float32 on a GPU.

    NHWC is the layout of the CPU's oneDNN kernels (and of the fusion) and of the GPU's tensor-core
    kernels (TF32, bf16, fp16). Without tensor cores cuDNN's NCHW kernels were the faster ones: on
    an H200 the raw forward's best layout in exact float32 was NCHW (ResNet-56, 63,900 img/s), and
    with PyTorch's default TF32 it was NHWC (135,500 img/s).
    """
    if not _has_conv2d(model):
        return False
    return not (device.type == "cuda" and precision == "float32")


# Why a model runs contiguous although channels-last was chosen (engine and training alike).
CHANNELS_LAST_FAILS = (
    "the model fails on channels-last (NHWC) inputs, e.g. x.view after a convolution"
)


def channels_last_works(model: nn.Module, x: Tensor, precision: str = "float32") -> bool:
    """Whether the model runs on these inputs in channels-last (NHWC) layout, its weights too
    (tried on a copy); False only when it runs on them contiguous and fails in NHWC (e.g. a
    `.view` after a convolution)."""
    if x.dim() != 4:
        return True
    # NHWC weights too: with one input channel the input's layout is ambiguous and the weights'
    # decides the convolution's output layout, as in the folded runner and in training.
    nhwc = copy_module(model).to(memory_format=torch.channels_last)
    with torch.no_grad(), autocast_context(x.device, precision):
        try:
            nhwc(x.contiguous(memory_format=torch.channels_last))
            return True
        except Exception:  # any failure here is a reason to try the other layout
            pass
        try:
            model(x.contiguous())
        except Exception:  # not a matter of layout: evaluation reports it
            return True
    return False


def _on(value: object, key: str) -> str:
    """A YAML boolean or 'auto'/'on'/'off' as one of the three words."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in ("auto", "on", "off"):
        raise LandscapeError(f"engine.{key} must be auto, on or off, not {value!r}")
    return str(value)


class PointEvaluator:
    """Moves a model to w + sum_i c_i d_i in place and measures it; `restore()` puts w back exactly.

    With an EngineConfig the measurement runs on a folded, channels-last and optionally compiled
    copy of the network, refreshed from the model's own tensors at each point, so perturbed BN
    weights and recomputed statistics are always taken into account.
    """

    def __init__(
        self,
        model: nn.Module,
        targets: Mapping[str, Tensor],
        directions: Sequence[Direction],
        *,
        loss: str = "crossentropy",
        batch_size: int | str | None = None,
        precision: str = "float32",
        bn_data: Tensor | None = None,
        bn_batch_size: int = 500,
        engine: EngineConfig | None = None,
        work: int | None = None,
        sample: Tensor | None = None,
    ):
        self.model = model.eval()
        self.targets = dict(targets)
        self.base = {k: t.detach().clone() for k, t in self.targets.items()}
        self.directions = [{k: d[k].to(self.base[k]) for k in self.targets} for d in directions]
        # move_to sets all targets in a few _foreach calls where they are distinct tensors on one
        # device (overlapping ones are set one by one, in order, as before).
        storages = {(t.device, t.untyped_storage().data_ptr()) for t in self.targets.values()}
        self._batched_move = len(storages) == len(self.targets) and (
            len({t.device for t in self.targets.values()}) <= 1
        )
        self.loss_fn = make_loss(loss)
        self.precision = precision
        self.bn_data = bn_data
        self.bn_batch_size = bn_batch_size
        self._buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
        self._buffer_objects = dict(model.named_buffers())
        self._live = _state(model)
        device = next(iter(self._live.values())).device if self._live else torch.device("cpu")
        check_precision(device, precision)
        self.batch_size = resolve_batch_size(batch_size, device)
        self._setup_engine(engine, device, work, sample)

    # ------------------------------------------------------------------ engine set-up

    def _setup_engine(
        self,
        engine: EngineConfig | None,
        device: torch.device,
        work: int | None,
        sample: Tensor | None,
    ) -> None:
        """Resolve 'auto' and build the runner (the network actually run at each point).

        work: the number of examples the run will evaluate (points x samples), which decides
        compile 'auto': compilation costs tens of seconds and pays only on long runs.
        sample: a few inputs to try channels-last on before choosing it.
        """
        channels_last = fold = compile_ = fuse = "off"
        per_call = 1
        if engine is not None:
            channels_last = _on(engine.channels_last, "channels_last")
            fold = _on(engine.fold_bn, "fold_bn")
            compile_ = _on(engine.compile, "compile")
            fuse = _on(engine.fuse, "fuse")
            per_call = int(engine.points_per_call)
        if channels_last == "auto":
            self.channels_last = auto_channels_last(self.model, device, self.precision)
        else:
            self.channels_last = channels_last == "on"
        if self.channels_last and sample is not None:
            self._check_channels_last(sample, explicit=channels_last == "on")

        self._pairs: list[FoldPair] = []
        self._runner: nn.Module = self.model
        if fold == "on" or (fold == "auto" and self.bn_data is None):
            traced = trace_fold_pairs(self.model)
            if traced is None and fold == "on":
                raise LandscapeError(
                    "fold_bn: on needs a model that torch.fx can trace; set engine.fold_bn to auto "
                    "or off"
                )
            if traced is not None and not traced[1] and fold == "on":
                warnings.warn(
                    "fold_bn: on, but no conv feeds an eval-mode BatchNorm alone; nothing to fold",
                    stacklevel=3,
                )
            if traced is not None and traced[1]:
                self._runner, self._pairs = traced
                if self.channels_last:
                    self._runner.to(memory_format=torch.channels_last)
        # Fusion beats compilation on a CPU (measured: README, Speed), and compiling the fused
        # network was slower still, so 'auto' takes one or the other, fusion first.
        fused = 0
        fusable = can_fuse_on(device) and self.channels_last and per_call == 1
        if self._pairs and (fuse == "on" or (fuse == "auto" and compile_ != "on")):
            if fusable:
                assert isinstance(self._runner, torch.fx.GraphModule)
                fused = fuse_conv_pointwise(self._runner)
            elif fuse == "on":
                warnings.warn(
                    "fuse: on needs a CPU with oneDNN, channels_last and points_per_call 1; "
                    "evaluating unfused",
                    stacklevel=3,
                )
        if compile_ == "auto":
            compile_ = "on" if auto_compile(device, self.precision, work, bool(fused)) else "off"
        do_compile = compile_ == "on"
        self._eps = {p.bn: bn_eps(self.model.get_submodule(p.bn)) for p in self._pairs}
        self._folded = {f"{p.conv}.{k}" for p in self._pairs for k in ("weight", "bias")}
        runner_state = _state(self._runner) if self._pairs else {}
        self._runner_state = runner_state
        # Runner tensors copied as they are from the model (tracing may add constants of its own).
        self._copied = [n for n in runner_state if n not in self._folded and n in self._live]

        self._forward: Callable[[Tensor], Tensor] = self._runner
        self.compiled = False
        if do_compile:
            try:
                self._forward = torch.compile(self._runner)
                self.compiled = True
            except Exception as exc:  # torch.compile unsupported here: run eagerly
                warnings.warn(f"torch.compile failed ({exc}); evaluating eagerly", stacklevel=3)
        self.points_per_call = max(1, per_call)
        self.choice = EngineChoice(
            channels_last=self.channels_last,
            fold_bn=bool(self._pairs),
            compile=self.compiled,
            points_per_call=self.points_per_call,
            folded_pairs=len(self._pairs),
            fused_convs=fused,
        )

    def _check_channels_last(self, sample: Tensor, explicit: bool) -> None:
        """Fall back to contiguous inputs (or refuse an explicit 'on') for a model that fails on
        channels-last ones."""
        if channels_last_works(self.model, sample, self.precision):
            return
        if explicit:
            raise LandscapeError(
                f"engine.channels_last: on, but {CHANNELS_LAST_FAILS}; set it to off"
            )
        warnings.warn(f"{CHANNELS_LAST_FAILS}: evaluating contiguous (NCHW) inputs", stacklevel=4)
        self.channels_last = False

    # ------------------------------------------------------------------ moving the weights

    @torch.no_grad()
    def move_to(self, coords: Sequence[float]) -> None:
        """Set every target tensor to base + sum_i coords[i] * direction_i."""
        if not self._batched_move:
            for k, t in self.targets.items():
                t.copy_(self._point_tensor(k, coords))
            return
        # The arithmetic of _point_tensor, in place: base, then each direction in turn.
        targets = list(self.targets.values())
        torch._foreach_copy_(targets, list(self.base.values()))
        for c, d in zip(coords, self.directions, strict=True):
            if c != 0:
                torch._foreach_add_(targets, list(d.values()), alpha=float(c))

    def _point_tensor(self, name: str, coords: Sequence[float]) -> Tensor:
        new = self.base[name].clone()
        for c, d in zip(coords, self.directions, strict=True):
            if c != 0:
                new.add_(d[name], alpha=float(c))
        return new

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the original weights and buffers, bit for bit."""
        for k, t in self.targets.items():
            t.copy_(self.base[k])
        for k, b in self._buffers.items():
            original = self._buffer_objects[k]
            prefix, _, leaf = k.rpartition(".")
            module = self.model.get_submodule(prefix)
            if module._buffers.get(leaf) is not original:
                # The forward replaced it (`self.last = out`), under inference mode at that.
                module._buffers[leaf] = original
            original.copy_(b)

    # ------------------------------------------------------------------ one point

    def evaluate(self, coords: Sequence[float], data: Mapping[str, EvalData]) -> dict[str, float]:
        """Loss and accuracy on each named split at one point of the grid."""
        self.move_to(coords)
        if self.bn_data is not None:
            self.recompute_bn()
        self._sync_runner()
        out = {}
        for split, ds in data.items():
            loss, acc = self._run(ds)
            out[f"{split}_loss"] = loss
            out[f"{split}_acc"] = acc
        return out

    @torch.no_grad()
    def _sync_runner(self) -> None:
        """Copy the model's current tensors into the folded runner, folding each conv -> BN."""
        if not self._pairs:
            return
        for name in self._copied:
            self._runner_state[name].copy_(self._live[name])
        fold_into(self._live, self._pairs, self._eps, self._runner_state)

    def _measure(
        self, forward: Callable[[Tensor], Tensor], ds: EvalData, points: int
    ) -> list[tuple[float, float]]:
        """_accumulate over ds, the batch halved for good while the GPU runs out of memory."""
        while True:
            try:
                return _accumulate(
                    forward,
                    ds,
                    self.loss_fn,
                    self.batch_size,
                    self.precision,
                    self.channels_last,
                    points,
                )
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
            # Out of the except block, the failed batch's tensors are free.
            self.batch_size = max(1, self.batch_size // 2)
            torch.cuda.empty_cache()
            warnings.warn(
                f"out of GPU memory: evaluating in batches of {self.batch_size} "
                "(surface.batch_size sets the size)",
                stacklevel=4,
            )

    def _run(self, ds: EvalData) -> tuple[float, float]:
        def forward(x: Tensor) -> Tensor:
            return logits(self._forward(x)).unsqueeze(0)

        try:
            [result] = self._measure(forward, ds, 1)
        except (torch.cuda.OutOfMemoryError, LandscapeError):
            raise
        except Exception as exc:
            if not self.compiled:
                raise
            # torch.compile fails lazily, at the first call: fall back to the eager runner.
            warnings.warn(f"torch.compile failed ({exc}); evaluating eagerly", stacklevel=3)
            self._forward, self.compiled = self._runner, False
            return self._run(ds)
        return result

    # ------------------------------------------------------------------ several points per call

    def evaluate_many(
        self, points: Sequence[Sequence[float]], data: Mapping[str, EvalData]
    ) -> list[dict[str, float]]:
        """Results of `evaluate` for each point, several points per forward call when
        points_per_call > 1 (torch.vmap over stacked weights; each batch is read once per group).

        Leaves the model at the origin. BN recomputation needs one point at a time.
        """
        if self.points_per_call == 1 or self.bn_data is not None:
            return [self.evaluate(c, data) for c in points]
        self.restore()
        self._sync_runner()
        results: list[dict[str, float]] = []
        for start in range(0, len(points), self.points_per_call):
            group = points[start : start + self.points_per_call]
            try:
                results.extend(self._evaluate_group(group, data))
            except (torch.cuda.OutOfMemoryError, LandscapeError):
                raise
            except (RuntimeError, NotImplementedError) as exc:
                # torch.vmap lacks rules for some layers (an LSTM): same numbers, a point a call.
                warnings.warn(
                    f"points_per_call {self.points_per_call} failed ({first_line(exc)}); "
                    "evaluating one point per call",
                    stacklevel=2,
                )
                self.points_per_call = 1
                self.choice = replace(self.choice, points_per_call=1)
                return results + [self.evaluate(c, data) for c in points[start:]]
        return results

    def _evaluate_group(
        self, group: Sequence[Sequence[float]], data: Mapping[str, EvalData]
    ) -> list[dict[str, float]]:
        """The results of a group of points, measured together by one vmapped forward."""
        forward = self._vmapped_forward(group)
        per_point: list[dict[str, float]] = [{} for _ in group]
        for split, ds in data.items():
            measured = self._measure(forward, ds, len(group))
            for r, (loss, acc) in zip(per_point, measured, strict=True):
                r[f"{split}_loss"], r[f"{split}_acc"] = loss, acc
        return per_point

    @torch.no_grad()
    def _vmapped_forward(self, group: Sequence[Sequence[float]]) -> Callable[[Tensor], Tensor]:
        """A forward over (B, ...) giving (P, B, classes) for the P points of the group.

        Only the runner tensors that depend on a target are stacked (one copy per point); the
        rest are the runner's own, already at the origin.
        """
        from torch.func import functional_call, vmap

        target_of = {id(t): k for k, t in self.targets.items()}
        varying = {n: target_of[id(t)] for n, t in self._live.items() if id(t) in target_of}
        runner_names = set(_state(self._runner))
        stacked: dict[str, Tensor] = {}
        for i, coords in enumerate(group):
            point = {n: self._point_tensor(k, coords) for n, k in varying.items()}
            tensors = {n: t for n, t in point.items() if n in runner_names}
            for p in self._pairs:
                touched = any(
                    f"{m}.{k}" in point
                    for m in (p.conv, p.bn)
                    for k in ("weight", "bias", "running_mean", "running_var")
                )
                if touched:
                    w, b = fold_tensors({**self._live, **point}, p, self._eps[p.bn])
                    tensors[f"{p.conv}.weight"], tensors[f"{p.conv}.bias"] = w, b
            for n, t in tensors.items():
                if n not in stacked:
                    stacked[n] = torch.empty((len(group), *t.shape), dtype=t.dtype, device=t.device)
                stacked[n][i].copy_(t)
        runner = self._runner

        def one(state: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(runner, state, (x,))

        batched = vmap(one, in_dims=(0, None))

        def forward(x: Tensor) -> Tensor:
            with warnings.catch_warnings():
                # Some pooling ops lack a vmap rule and fall back to a loop: slower, not wrong.
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                return logits(batched(stacked, x), points=True)

        return forward

    # ------------------------------------------------------------------ BN statistics

    @torch.no_grad()
    def recompute_bn(self) -> None:
        """Re-estimate BatchNorm running statistics at the current point (cumulative average)."""
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns or self.bn_data is None:
            return
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # None = exact average over all batches seen
        self.model.train()
        try:
            for start in range(0, len(self.bn_data), self.bn_batch_size):
                xb = self.bn_data[start : start + self.bn_batch_size]
                self.model(_to_format(xb, self.channels_last))
        finally:
            self.model.eval()
            for m, mom in zip(bns, saved, strict=True):
                m.momentum = mom

    @contextlib.contextmanager
    def session(self) -> Iterator[PointEvaluator]:
        """Use as `with ev.session():` so the weights are restored even on error."""
        try:
            yield self
        finally:
            self.restore()
