"""Weight initialisation shared by the model families."""

from __future__ import annotations

from torch import nn


def kaiming_init(model: nn.Module) -> None:
    """Kaiming (fan_out, ReLU) for convolutions, identity for BatchNorm.

    Kaiming keeps activation variance steady through deep plain nets, which matters for the
    no-shortcut models; BN starting as the identity leaves that scale alone.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
