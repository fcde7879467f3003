"""CIFAR-style ResNets: plain, without shortcuts, wide and pre-activation, from one class.

State-dict keys (conv1, bn1, layer1..3, shortcut.0/.1, linear) follow the original loss-landscape
code, so its published ResNet checkpoints load into these models.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import LandscapeError, did_you_mean
from landscape.models.init import kaiming_init
from landscape.models.registry import register_model

ShortcutKind = Literal["conv", "resnet_d"]
SHORTCUT_KINDS: tuple[str, ...] = ("conv", "resnet_d")


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1; no bias because a BatchNorm always follows or precedes it."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def make_shortcut(in_ch: int, out_ch: int, stride: int, kind: str, norm: bool) -> nn.Sequential:
    """Projection shortcut for a block that changes shape.

    "conv" is a strided 1x1 conv (+ BN), He et al.'s option B. "resnet_d" average-pools first so the
    projection sees every input pixel rather than one in four (Bag of Tricks, He et al. 2019).
    The layers are indexed, not named, so the two kinds have different state-dict keys and a
    checkpoint of one kind cannot load silently into the other.
    """
    layers: list[nn.Module] = []
    if kind == "resnet_d" and stride != 1:
        # ceil_mode and count_include_pad=False keep odd sizes (e.g. 1x1) from shrinking to 0x0.
        layers.append(nn.AvgPool2d(2, stride=stride, ceil_mode=True, count_include_pad=False))
        stride = 1
    layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False))
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut when skip is on, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, skip: bool, shortcut: str) -> None:
        super().__init__()
        self.skip = skip
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        # None means identity (or, with skip off, no shortcut at all): nothing in the state dict.
        self.shortcut: nn.Sequential | None = None
        if skip and (stride != 1 or in_ch != out_ch):
            self.shortcut = make_shortcut(in_ch, out_ch, stride, shortcut, norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, out_ch, H/s, W/s)
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return F.relu(out)


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv, plus the shortcut when skip is on (He et al. 2016b)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, skip: bool, shortcut: str) -> None:
        super().__init__()
        self.skip = skip
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        # No BN in the projection: the sum is normalized by the next block's bn1.
        self.shortcut: nn.Sequential | None = None
        if skip and (stride != 1 or in_ch != out_ch):
            self.shortcut = make_shortcut(in_ch, out_ch, stride, shortcut, norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))  # (B, in_ch, H, W)
        out = self.conv1(pre)  # (B, out_ch, H/s, W/s)
        out = self.conv2(F.relu(self.bn2(out)))
        if self.skip:
            # A projection sees the pre-activated input; an identity carries the raw one.
            out = out + (x if self.shortcut is None else self.shortcut(pre))
        return out


class ResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2: a 3x3 stem, three stages of n blocks at 16k/32k/64k channels."""

    def __init__(
        self,
        depth: int = 20,
        width: int = 1,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        skip: bool = True,
        preact: bool = False,
        shortcut: ShortcutKind = "conv",
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise LandscapeError(f"ResNet depth must be 6n+2 (20, 56, 110, ...), got {depth}")
        if width < 1:
            raise LandscapeError(f"ResNet width must be a positive integer, got {width}")
        if shortcut not in SHORTCUT_KINDS:
            hint = did_you_mean(shortcut, SHORTCUT_KINDS)
            raise LandscapeError(
                f"unknown shortcut {shortcut!r}{hint}; choose from: {', '.join(SHORTCUT_KINDS)}"
            )
        self.preact = preact
        n = (depth - 2) // 6
        channels = [16 * width, 32 * width, 64 * width]
        block = PreActBlock if preact else BasicBlock

        self.conv1 = conv3x3(in_channels, channels[0])
        # A pre-activation stem is a bare conv: the first block's bn1 normalizes its output.
        self.bn1 = None if preact else nn.BatchNorm2d(channels[0])
        in_ch = channels[0]
        stages = []
        for i, out_ch in enumerate(channels):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_ch, out_ch, stride, skip, shortcut))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        # Pre-activation blocks end on a sum, so the head needs its own BN-ReLU.
        self.bn = nn.BatchNorm2d(in_ch) if preact else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_ch, num_classes)

        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, 16k, H, W)
        if self.bn1 is not None:
            out = F.relu(self.bn1(out))
        out = self.layer1(out)  # (B, 16k, H, W)
        out = self.layer2(out)  # (B, 32k, H/2, W/2)
        out = self.layer3(out)  # (B, 64k, H/4, W/4)
        if self.bn is not None:
            out = F.relu(self.bn(out))
        out = self.pool(out).flatten(1)  # (B, 64k)
        return self.linear(out)  # (B, num_classes)


@register_model
def resnet20(**kwargs: Any) -> ResNet:
    """ResNet-20 (0.27M parameters)."""
    return ResNet(20, **kwargs)


@register_model
def resnet56(**kwargs: Any) -> ResNet:
    """ResNet-56 (0.86M parameters)."""
    return ResNet(56, **kwargs)


@register_model
def resnet110(**kwargs: Any) -> ResNet:
    """ResNet-110 (1.7M parameters)."""
    return ResNet(110, **kwargs)


@register_model
def resnet20_noshort(**kwargs: Any) -> ResNet:
    """ResNet-20 with every skip connection removed."""
    return ResNet(20, skip=False, **kwargs)


@register_model
def resnet56_noshort(**kwargs: Any) -> ResNet:
    """ResNet-56 with every skip connection removed."""
    return ResNet(56, skip=False, **kwargs)


@register_model
def resnet110_noshort(**kwargs: Any) -> ResNet:
    """ResNet-110 with every skip connection removed."""
    return ResNet(110, skip=False, **kwargs)


@register_model
def wrn56_2(**kwargs: Any) -> ResNet:
    """Wide ResNet-56, twice the channels."""
    return ResNet(56, 2, **kwargs)


@register_model
def wrn56_4(**kwargs: Any) -> ResNet:
    """Wide ResNet-56, four times the channels."""
    return ResNet(56, 4, **kwargs)


@register_model
def wrn56_8(**kwargs: Any) -> ResNet:
    """Wide ResNet-56, eight times the channels."""
    return ResNet(56, 8, **kwargs)


@register_model
def wrn56_2_noshort(**kwargs: Any) -> ResNet:
    """Wide ResNet-56 (x2) without skip connections."""
    return ResNet(56, 2, skip=False, **kwargs)


@register_model
def wrn56_4_noshort(**kwargs: Any) -> ResNet:
    """Wide ResNet-56 (x4) without skip connections."""
    return ResNet(56, 4, skip=False, **kwargs)


@register_model
def wrn56_8_noshort(**kwargs: Any) -> ResNet:
    """Wide ResNet-56 (x8) without skip connections."""
    return ResNet(56, 8, skip=False, **kwargs)


@register_model
def preresnet20(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-20."""
    return ResNet(20, preact=True, **kwargs)


@register_model
def preresnet56(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-56."""
    return ResNet(56, preact=True, **kwargs)


@register_model
def preresnet110(**kwargs: Any) -> ResNet:
    """Pre-activation ResNet-110."""
    return ResNet(110, preact=True, **kwargs)
