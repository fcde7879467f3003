"""Weight initialisation shared by the model families: the paper's code's."""

from __future__ import annotations

from torch import nn

# Standard deviation of Linear weights at initialisation, as in the paper's code.
LINEAR_STD = 1e-3


def paper_init(model: nn.Module) -> None:
    """The initialisation of the paper's training code (its ``init_params``).

    Convolutions: Kaiming normal over fan-in with the ReLU gain and zero bias, which keeps the
    activation variance steady through deep plain nets (the no-shortcut models); BatchNorm: the
    identity; Linear: N(0, 1e-3) weights and zero bias, so the first logits are near zero.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=LINEAR_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
