"""Evaluating a model at points w + sum_i c_i d_i: weights set in place, data already on the device."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .directions import Direction

LossFn = Callable[[Tensor, Tensor], Tensor]


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


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is an error for the caller to report."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for the forward pass; float32 runs as is."""
    if precision == "float32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class EvalSet:
    """Evaluation tensors on the device, prepared once (no augmentation, no per-point loader)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: EvalSet,
    loss_fn: LossFn,
    batch_size: int = 1000,
    precision: str = "float32",
) -> tuple[float, float]:
    """Mean loss and accuracy (percent) of the model as it is, accumulated in float64."""
    device = data.x.device
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with autocast_context(device, precision):
        for start in range(0, len(data), batch_size):
            xb = data.x[start : start + batch_size]
            yb = data.y[start : start + batch_size]
            out = model(xb)  # (B, classes)
            total_loss += loss_fn(out, yb).double()
            correct += (out.argmax(dim=1) == yb).sum()
    n = len(data)
    return float(total_loss) / n, 100.0 * float(correct) / n


class PointEvaluator:
    """Moves a model to w + sum_i c_i d_i in place and measures it; `restore()` puts w back exactly."""

    def __init__(
        self,
        model: nn.Module,
        targets: Mapping[str, Tensor],
        directions: Sequence[Direction],
        *,
        loss: str = "crossentropy",
        batch_size: int = 1000,
        precision: str = "float32",
        bn_data: Tensor | None = None,
        bn_batch_size: int = 500,
    ):
        self.model = model.eval()
        self.targets = dict(targets)
        self.base = {k: t.detach().clone() for k, t in self.targets.items()}
        self.directions = [{k: d[k].to(self.base[k]) for k in self.targets} for d in directions]
        self.loss_fn = make_loss(loss)
        self.batch_size = batch_size
        self.precision = precision
        self.bn_data = bn_data
        self.bn_batch_size = bn_batch_size
        self._buffers = {k: b.detach().clone() for k, b in model.named_buffers()}

    @torch.no_grad()
    def move_to(self, coords: Sequence[float]) -> None:
        """Set every target tensor to base + sum_i coords[i] * direction_i."""
        for k, t in self.targets.items():
            new = self.base[k].clone()
            for c, d in zip(coords, self.directions, strict=True):
                if c != 0:
                    new.add_(d[k], alpha=float(c))
            t.copy_(new)

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the original weights and buffers, bit for bit."""
        for k, t in self.targets.items():
            t.copy_(self.base[k])
        own = dict(self.model.named_buffers())
        for k, b in self._buffers.items():
            own[k].copy_(b)

    def evaluate(self, coords: Sequence[float], data: Mapping[str, EvalSet]) -> dict[str, float]:
        """Loss and accuracy on each named split at one point of the grid."""
        self.move_to(coords)
        if self.bn_data is not None:
            self.recompute_bn()
        out = {}
        for split, ds in data.items():
            loss, acc = evaluate(self.model, ds, self.loss_fn, self.batch_size, self.precision)
            out[f"{split}_loss"] = loss
            out[f"{split}_acc"] = acc
        return out

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
        for start in range(0, len(self.bn_data), self.bn_batch_size):
            self.model(self.bn_data[start : start + self.bn_batch_size])
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
