"""CIFAR-style VGG nets built from a channel list, with the BN'd hidden layer of the paper's VGG-9.

State-dict keys (features.i, fc.0/.1, classifier) follow the original loss-landscape code, so its
published VGG checkpoints load into these models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models.init import kaiming_init
from landscape.models.registry import register_model

POOL = "M"
CONFIGS: dict[str, list[int | str]] = {
    "vgg9": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL],
    "vgg16": [
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
        512, 512, 512, POOL,
    ],
    "vgg19": [
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
        512, 512, 512, 512, POOL,
    ],
}  # fmt: skip


class VGG(nn.Module):
    """conv3x3-BN-ReLU layers and 2x2 max pools from `cfg`, then Linear-BN-ReLU-Linear.

    The conv feature map is average-pooled to `grid` x `grid` before the hidden layer: a no-op for
    32x32 inputs to VGG-9 (the paper's 256*4*4 = 4096 inputs), and it lets any input size work.
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        grid: int = 4,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch, convs = in_channels, 0
        for item in cfg:
            if item == POOL:
                # ceil_mode keeps a 1x1 map at 1x1 instead of 0x0 when inputs are small.
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
                # The conv keeps its bias (redundant before BN) to match the original weights.
                layers += [nn.Conv2d(ch, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
                ch, convs = item, convs + 1
            else:
                raise LandscapeError(
                    f"VGG config entry {item!r} is neither a positive channel count nor {POOL!r}"
                )
        if convs == 0:
            raise LandscapeError(f"VGG config {list(cfg)!r} has no conv layer; add channel counts")
        if grid < 1:
            raise LandscapeError(f"VGG grid must be a positive integer, got {grid}")
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((grid, grid))
        self.fc = nn.Sequential(nn.Linear(ch * grid * grid, ch), nn.BatchNorm1d(ch), nn.ReLU())
        self.classifier = nn.Linear(ch, num_classes)

        kaiming_init(self)  # as in the ResNets; BN starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)  # (B, C, H/2^p, W/2^p), p = number of pools
        out = self.pool(out).flatten(1)  # (B, C * grid * grid)
        out = self.fc(out)  # (B, C)
        return self.classifier(out)  # (B, num_classes)


@register_model
def vgg9(**kwargs: Any) -> VGG:
    """VGG-9 of Li et al. (2018): 7 convs, a 256-unit BN hidden layer, then the classifier."""
    return VGG(CONFIGS["vgg9"], **kwargs)


@register_model
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (13 convs); its five pools leave 1x1 of a 32x32 input, hence grid=1."""
    return VGG(CONFIGS["vgg16"], grid=1, **kwargs)


@register_model
def vgg19(**kwargs: Any) -> VGG:
    """VGG-19 (16 convs); its five pools leave 1x1 of a 32x32 input, hence grid=1."""
    return VGG(CONFIGS["vgg19"], grid=1, **kwargs)
