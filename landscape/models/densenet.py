"""CIFAR-style DenseNet-BC (bottleneck + compression) as one class parameterized by block sizes.

State-dict keys (conv1, dense1.0.bn1, trans1.conv, bn, linear) and the order of concatenation
(new features first) follow the original loss-landscape code, so its DenseNet weights load as-is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import LandscapeError
from landscape.models.init import kaiming_init
from landscape.models.registry import register_model


class Bottleneck(nn.Module):
    """BN-ReLU-1x1 conv to 4*growth, BN-ReLU-3x3 conv to growth; output is [new, input]."""

    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, 4 * growth, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))  # (B, 4g, H, W)
        out = self.conv2(F.relu(self.bn2(out)))  # (B, g, H, W)
        return torch.cat([out, x], dim=1)  # (B, in_ch + g, H, W)


class Transition(nn.Module):
    """BN-ReLU-1x1 conv that compresses channels, then a 2x2 average pool."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_ch)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False)
        # ceil_mode turns a 1x1 map into 1x1 (not 0x0), so 8x8 inputs survive three transitions;
        # on even sizes it equals the plain 2x2 pool.
        self.pool = nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.relu(self.bn(x)))  # (B, out_ch, H, W)
        return self.pool(out)  # (B, out_ch, ceil(H/2), ceil(W/2))


class DenseNet(nn.Module):
    """DenseNet-BC: a 3x3 stem of 2*growth channels, dense blocks joined by transitions, BN-ReLU."""

    def __init__(
        self,
        block_sizes: Sequence[int],
        growth: int = 12,
        *,
        compression: float = 0.5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if not block_sizes or any(isinstance(n, bool) or n < 1 for n in block_sizes):
            raise LandscapeError(
                f"DenseNet block_sizes must be positive layer counts, got {list(block_sizes)!r}"
            )
        if growth < 1:
            raise LandscapeError(f"DenseNet growth must be a positive integer, got {growth}")
        if not 0 < compression <= 1:
            raise LandscapeError(f"DenseNet compression must be in (0, 1], got {compression}")
        self.num_blocks = len(block_sizes)

        ch = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, ch, kernel_size=3, padding=1, bias=False)
        # Numbered attributes (dense1, trans1, ...) rather than a list give readable keys.
        for i, n in enumerate(block_sizes, start=1):
            layers = []
            for _ in range(n):
                layers.append(Bottleneck(ch, growth))
                ch += growth
            self.add_module(f"dense{i}", nn.Sequential(*layers))
            if i < self.num_blocks:
                out_ch = max(1, int(ch * compression))
                self.add_module(f"trans{i}", Transition(ch, out_ch))
                ch = out_ch
        self.bn = nn.BatchNorm2d(ch)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(ch, num_classes)

        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, 2g, H, W)
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"dense{i}")(out)  # (B, C_i, H_i, W_i)
            if i < self.num_blocks:
                out = getattr(self, f"trans{i}")(out)  # (B, C_i * compression, H_i/2, W_i/2)
        out = F.relu(self.bn(out))
        out = self.pool(out).flatten(1)  # (B, C)
        return self.linear(out)  # (B, num_classes)


@register_model
def densenet121(**kwargs: Any) -> DenseNet:
    """DenseNet-121 for 32x32 inputs: growth 32, blocks of 6, 12, 24 and 16 layers."""
    return DenseNet([6, 12, 24, 16], 32, **kwargs)


@register_model
def densenet40_bc(**kwargs: Any) -> DenseNet:
    """DenseNet-BC-40: growth 12, three blocks of 6 bottleneck layers."""
    return DenseNet([6, 6, 6], 12, **kwargs)


@register_model
def densenet100_bc(**kwargs: Any) -> DenseNet:
    """DenseNet-BC-100: growth 12, three blocks of 16 bottleneck layers (0.77M parameters)."""
    return DenseNet([16, 16, 16], 12, **kwargs)
