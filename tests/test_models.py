"""Tests for the model zoo: every registered model runs; the registry reports mistakes clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models import (
    count_parameters,
    create_model,
    list_models,
    model_family,
    register_model,
)
from landscape.models.registry import _BUILDERS, _FAMILIES

# 50M+ parameters: building and running them at 32x32 costs seconds on a shared 2-core machine.
BIG = {"wrn56_8", "wrn56_8_noshort"}


def _forward(
    name: str, in_channels: int, size: int, num_classes: int = 10, **kwargs: object
) -> torch.Tensor:
    """Logits of a fresh model in eval mode on a random batch of 2."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs).eval()
    with torch.inference_mode():
        return model(torch.randn(2, in_channels, size, size))


@pytest.mark.parametrize("name", list_models())
def test_forward_tiny_grayscale(name: str) -> None:
    out = _forward(name, in_channels=1, size=8, num_classes=7)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in list_models()],
)
def test_forward_cifar_shape(name: str) -> None:
    out = _forward(name, in_channels=3, size=32)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_odd_input_size_runs() -> None:
    # 9x9 gives odd maps after pooling; ceil-mode pools must not drop to 0x0 or mismatch shapes.
    for name in ("resnet20", "vgg9", "densenet40_bc"):
        assert _forward(name, in_channels=3, size=9).shape == (2, 10)


def test_train_mode_backward() -> None:
    model = create_model("resnet20", in_channels=1, num_classes=3)
    loss = model(torch.randn(4, 1, 8, 8)).logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    ("name", "expected"), [("resnet20", 0.27e6), ("resnet56", 0.85e6), ("resnet110", 1.7e6)]
)
def test_resnet_parameter_counts(name: str, expected: float) -> None:
    n = count_parameters(create_model(name))
    assert abs(n - expected) / expected < 0.03, n


def test_count_parameters_matches_hand_count() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert count_parameters(model) == 3 * 4 + 4 + 4 + 4  # BN running stats are buffers


@pytest.mark.parametrize("name", [n for n in list_models() if n.endswith("_noshort")])
def test_noshort_has_no_shortcuts(name: str) -> None:
    model = create_model(name)
    twin = create_model(name.removesuffix("_noshort"))
    names = [n for n, _ in model.named_modules()]
    assert not any("shortcut" in n for n in names)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.kernel_size == (3, 3) for m in convs)
    assert count_parameters(model) <= count_parameters(twin)
    # The twin does have projections, so the comparison above is not vacuous.
    assert any("shortcut" in n for n, _ in twin.named_modules())


def test_noshort_block_has_no_identity_path() -> None:
    # With skip off, zeroing a block's second BN must zero its output (no x added back in).
    block = create_model("resnet20_noshort").layer1[0].eval()
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    with torch.inference_mode():
        assert torch.count_nonzero(block(torch.randn(1, 16, 8, 8))) == 0
    skip_block = create_model("resnet20").layer1[0].eval()
    nn.init.zeros_(skip_block.bn2.weight)
    nn.init.zeros_(skip_block.bn2.bias)
    x = torch.randn(1, 16, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(skip_block(x), torch.relu(x))


def test_wide_multiplies_all_channels() -> None:
    model = create_model("wrn56_4")
    assert model.conv1.out_channels == 64
    assert model.linear.in_features == 256


def test_preresnet_has_final_bn_and_bare_stem() -> None:
    model = create_model("preresnet20")
    assert model.bn1 is None and isinstance(model.bn, nn.BatchNorm2d)
    assert model.bn.num_features == 64


def test_resnet_d_shortcut_differs_in_keys() -> None:
    plain = set(create_model("resnet56").state_dict())
    resnet_d = create_model("resnet56", shortcut="resnet_d")
    keys = set(resnet_d.state_dict())
    assert keys != plain
    assert any(isinstance(m, nn.AvgPool2d) for m in resnet_d.modules())
    assert len(keys) == len(plain)  # same layers, only their positions in the shortcut move
    out = _forward("resnet20", 3, 9, shortcut="resnet_d")  # odd sizes exercise ceil_mode
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_state_dict_keys_match_original_layout() -> None:
    # Key names follow the original loss-landscape code so its checkpoints load by name.
    keys = set(create_model("resnet20").state_dict())
    assert {"conv1.weight", "layer2.0.shortcut.0.weight", "linear.weight"} <= keys
    keys = set(create_model("vgg9").state_dict())
    assert {"features.0.weight", "fc.0.weight", "fc.1.running_var", "classifier.weight"} <= keys
    assert create_model("vgg9").fc[0].in_features == 4096


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(LandscapeError, match="did you mean resnet20") as info:
        create_model("resnet2")
    assert "choose from" in str(info.value) and "densenet121" in str(info.value)
    with pytest.raises(LandscapeError, match="'resnt56'"):
        model_family("resnt56")


def test_bad_kwarg_names_model_and_argument() -> None:
    with pytest.raises(LandscapeError, match=r"'resnet56'.*'shortcutt'.*did you mean shortcut"):
        create_model("resnet56", shortcutt="conv")
    with pytest.raises(LandscapeError, match=r"'resnet20' fixes argument 'depth'"):
        create_model("resnet20", depth=32)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"shortcut": "resnetd"}, "did you mean resnet_d"),
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"in_channels": 2.5}, "in_channels must be a positive integer"),
    ],
)
def test_bad_values_raise_landscape_error(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(LandscapeError, match=pattern):
        create_model("resnet20", **kwargs)


@pytest.mark.parametrize(
    ("name", "family"),
    [("resnet56", "resnet"), ("wrn56_2_noshort", "resnet"), ("vgg9", "vgg")]
    + [("densenet121", "densenet"), ("preresnet20", "resnet")],
)
def test_model_family(name: str, family: str) -> None:
    assert model_family(name) == family


def test_every_model_has_a_known_family() -> None:
    assert {model_family(n) for n in list_models()} == {"resnet", "vgg", "densenet"}
    assert list_models() == sorted(list_models())


def test_register_model_adds_a_builder() -> None:
    def tiny_mlp(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    try:
        assert register_model(tiny_mlp) is tiny_mlp
        assert "tiny_mlp" in list_models()
        assert model_family("tiny_mlp") == "test_models"
        out = create_model("tiny_mlp", num_classes=4)(torch.randn(2, 1, 8, 8))
        assert out.shape == (2, 4)
        with pytest.raises(LandscapeError, match="no argument 'width'"):
            create_model("tiny_mlp", width=2)
    finally:
        _BUILDERS.pop("tiny_mlp", None)
        _FAMILIES.pop("tiny_mlp", None)


def test_register_model_rejects_a_clash() -> None:
    def resnet20() -> nn.Module:
        return nn.Identity()

    with pytest.raises(LandscapeError, match="already registered"):
        register_model(resnet20)
    assert model_family("resnet20") == "resnet"


def test_bad_architecture_arguments() -> None:
    from landscape.models.densenet import DenseNet
    from landscape.models.resnet import ResNet
    from landscape.models.vgg import VGG

    with pytest.raises(LandscapeError, match="6n\\+2"):
        ResNet(depth=21)
    with pytest.raises(LandscapeError, match="'X'"):
        VGG([64, "X"])
    with pytest.raises(LandscapeError, match="compression"):
        DenseNet([2, 2], compression=0.0)
