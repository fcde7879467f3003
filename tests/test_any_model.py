"""Tests that any network works: MLPs, attention, tied weights, no BatchNorm, import-path models.

Each model's surface is checked at the origin (the model's own loss) and at a point off it
(an independent evaluation with the weights moved by hand); per-filter norms are checked for
every layer type.
"""

from __future__ import annotations

import copy
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import landscape
from landscape import storage
from landscape.checkpoint import load_checkpoint
from landscape.data import dataset_to_tensors, eval_dataset
from landscape.directions import filter_norms, normalize_direction, random_directions
from landscape.errors import ConfigError, LandscapeError
from landscape.models import create_model
from landscape.surface import compute_surface
from landscape.train import train

pytestmark = pytest.mark.usefixtures("single_thread")

CLASSES = 5


class MLP(nn.Module):
    """Linear-ReLU-Linear-ReLU-Linear on (B, 12) features."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, CLASSES)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, classes)


class AttentionBlock(nn.Module):
    """Self-attention with a residual, LayerNorm and a linear head, on (B, T, E) sequences."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.attn(x, x, x, need_weights=False)  # (B, T, E)
        h = self.norm(x + h)
        return self.head(h.mean(dim=1))  # (B, classes)


class TiedLM(nn.Module):
    """Bag of token embeddings read out by the same matrix (weight tying, as in GPT-2)."""

    def __init__(self, vocab: int = CLASSES, dim: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight  # one tensor, two uses

    def forward(self, tokens: Tensor) -> Tensor:
        h = torch.tanh(self.proj(self.embed(tokens).mean(dim=1)))  # (B, dim)
        return self.out(h)  # (B, vocab)


class DepthwiseNet(nn.Module):
    """Grouped and depthwise convolutions with GroupNorm: no BatchNorm anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(2, 6, 3, padding=1, groups=2)  # (6, 1, 3, 3)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)  # (6, 1, 3, 3)
        self.pointwise = nn.Conv2d(6, 4, 1)
        self.norm = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.depthwise(F.relu(self.grouped(x))))  # (B, 6, H, W)
        h = F.relu(self.norm(self.pointwise(h)))  # (B, 4, H, W)
        return self.head(h.mean(dim=(2, 3)))  # (B, classes)


def _inputs(name: str, n: int, g: torch.Generator) -> Tensor:
    if name == "mlp":
        return torch.randn(n, 12, generator=g)
    if name == "attention":
        return torch.randn(n, 4, 8, generator=g)  # (B, T, E)
    if name == "tied":
        return torch.randint(0, CLASSES, (n, 3), generator=g)  # token ids (B, T)
    return torch.randn(n, 2, 6, 6, generator=g)


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": MLP,
    "attention": AttentionBlock,
    "tied": TiedLM,
    "depthwise": DepthwiseNet,
}


@pytest.fixture(params=sorted(MODELS))
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module, tuple[Tensor, Tensor]]:
    """(name, a seeded model in eval mode, 40 (input, label) pairs)."""
    torch.manual_seed(0)
    model = MODELS[request.param]().eval()
    g = torch.Generator().manual_seed(1)
    data = (_inputs(request.param, 40, g), torch.randint(0, CLASSES, (40,), generator=g))
    return request.param, model, data


@torch.no_grad()
def _loss_at(
    model: nn.Module, dirs: list[dict[str, Tensor]], coords: tuple[float, ...], x: Tensor, y: Tensor
) -> float:
    """Cross-entropy of a copy moved to w + sum c_i d_i by hand (tied tensors move once)."""
    moved = copy.deepcopy(model)
    for name, p in moved.named_parameters():
        for c, d in zip(coords, dirs, strict=True):
            p.add_(d[name].to(p), alpha=c)
    return float(F.cross_entropy(moved(x), y, reduction="sum").double() / len(y))


def test_surface_of_any_model_matches_a_hand_evaluation(
    case: tuple[str, nn.Module, tuple[Tensor, Tensor]],
) -> None:
    name, model, (x, y) = case
    surf = landscape.loss_surface(
        model, (x, y), x=(-1, 1, 3), y=(-0.5, 0.5, 3), batch_size=16, device="cpu"
    )
    assert surf.complete and surf.metrics["train_loss"].shape == (3, 3)
    with torch.no_grad():
        own = float(F.cross_entropy(model(x), y))
    assert surf.metrics["train_loss"][1, 1] == pytest.approx(own, rel=1e-6)
    dirs = surf.directions()
    assert len(dirs) == 2
    assert set(dirs[0]) == {n for n, _ in model.named_parameters()}  # one per unique tensor
    for iy, ix in ((0, 0), (2, 2), (0, 2)):
        coords = (float(surf.x[ix]), float(surf.y[iy]))  # type: ignore[index]
        expected = _loss_at(model, dirs, coords, x, y)
        assert surf.metrics["train_loss"][iy, ix] == pytest.approx(expected, rel=1e-5), name


def test_per_filter_norms_hold_for_every_layer_type(
    case: tuple[str, nn.Module, tuple[Tensor, Tensor]],
) -> None:
    _, model, _ = case
    params = dict(model.named_parameters())
    (d,) = landscape.random_directions(model, n=1, seed=3)
    assert d.keys() == params.keys()
    for name, w in params.items():
        if w.dim() <= 1:
            # Biases and LayerNorm/GroupNorm weights are left still under ignore='biasbn'.
            assert not d[name].any(), name
        else:
            # One norm per output row: conv output channels (grouped/depthwise included),
            # Linear rows, MultiheadAttention in_proj/out_proj rows, embedding rows.
            torch.testing.assert_close(filter_norms(d[name]), filter_norms(w), rtol=1e-5, atol=1e-6)
    (d_all,) = landscape.random_directions(model, n=1, seed=3, ignore="none")
    for name, w in params.items():
        if w.dim() <= 1:
            assert float(d_all[name].norm()) == pytest.approx(float(w.detach().norm()), rel=1e-5)


def test_attention_projections_are_normalized_row_by_row() -> None:
    block = AttentionBlock(dim=8)
    (d,) = landscape.random_directions(block, n=1)
    w = block.attn.in_proj_weight
    assert d["attn.in_proj_weight"].shape == w.shape == (24, 8)  # q, k, v stacked: 3E rows
    torch.testing.assert_close(
        d["attn.in_proj_weight"].norm(dim=1), w.detach().norm(dim=1), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        d["attn.out_proj.weight"].norm(dim=1),
        block.attn.out_proj.weight.detach().norm(dim=1),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_tied_tensor_gets_one_direction_and_moves_both_uses() -> None:
    torch.manual_seed(0)
    model = TiedLM().eval()
    (d,) = landscape.random_directions(model, n=1)
    assert "embed.weight" in d and "out.weight" not in d
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, CLASSES, (30, 3), generator=g)
    labels = torch.randint(0, CLASSES, (30,), generator=g)
    surf = landscape.loss_surface(model, (tokens, labels), x=(0, 1, 2), y=None, directions=[d])
    both = _loss_at(model, [d], (1.0,), tokens, labels)
    # Moving only the embedding's use (the read-out left at the origin) is a different loss.
    untied = copy.deepcopy(model)
    untied.out.weight = nn.Parameter(model.embed.weight.detach().clone())
    one = _loss_at(
        untied, [{**d, "out.weight": torch.zeros_like(d["embed.weight"])}], (1.0,), tokens, labels
    )
    assert surf.metrics["train_loss"][1] == pytest.approx(both, rel=1e-5)
    assert abs(both - one) > 1e-4


@settings(max_examples=25, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 4]),
    per_group_in=st.integers(1, 3),
    per_group_out=st.integers(1, 3),
    kernel=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_filter_norms_of_grouped_convolutions(
    groups: int, per_group_in: int, per_group_out: int, kernel: int, seed: int
) -> None:
    conv = nn.Conv2d(groups * per_group_in, groups * per_group_out, kernel, groups=groups)
    weights = {"w": conv.weight.detach()}
    g = torch.Generator().manual_seed(seed)
    raw = {"w": torch.randn(conv.weight.shape, generator=g)}
    d = normalize_direction(raw, weights, "filter", "biasbn")["w"]
    torch.testing.assert_close(filter_norms(d), filter_norms(conv.weight), rtol=1e-5, atol=1e-6)
    # Each output channel is only rescaled: the direction within a filter is the random one.
    cos = F.cosine_similarity(d.reshape(len(d), -1), raw["w"].reshape(len(d), -1), dim=1)
    torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-5)


def test_models_without_batchnorm_support_states_directions() -> None:
    torch.manual_seed(0)
    model = DepthwiseNet().eval()
    (d,) = random_directions(dict(model.state_dict()), n=1)
    assert not any("running" in k for k in d)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 2, 6, 6, generator=g), torch.randint(0, CLASSES, (20,), generator=g)
    surf = landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, dir_type="states")
    assert np.isfinite(surf.metrics["train_loss"]).all()
    with torch.no_grad():
        own = float(F.cross_entropy(model(x), y))
    assert surf.metrics["train_loss"][1] == pytest.approx(own, rel=1e-6)


# ----------------------------------------------------------------------------- import paths

USER_MODELS = """
import torch
from torch import nn
from torch.utils.data import TensorDataset


class SmallConv(nn.Module):
    def __init__(self, in_channels, num_classes, width):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def build_net(num_classes, in_channels, width=4):
    return SmallConv(in_channels, num_classes, width)


class ViewNet(nn.Module):
    # Flattens with .view after a convolution: fails on channels-last inputs.

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, num_classes)

    def forward(self, x):
        h = torch.relu(self.conv(x))  # (B, 2, 6, 6)
        return self.fc(h.view(h.size(0), -1))


def build_viewnet(num_classes, in_channels):
    return ViewNet(in_channels, num_classes)


class Bag(nn.Module):
    # Mean of token embeddings: integer inputs (B, T).

    def __init__(self, num_classes):
        super().__init__()
        self.embed = nn.Embedding(30, 4)
        self.head = nn.Linear(4, num_classes)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(dim=1))


def build_bag(num_classes=3):
    return Bag(num_classes)


def load_tokens():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 30, (40, 5), generator=g)
    y = x[:, 0] % 3
    return TensorDataset(x[:30], y[:30]), TensorDataset(x[30:], y[30:])


def build_mlp(width=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def not_a_model():
    return {"weights": 1}


WIDTH = 3
"""


@pytest.fixture
def user_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throwaway module on sys.path defining model builders; yields its name."""
    name = "landscape_test_usermodels"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name
    sys.modules.pop(name, None)


def test_create_model_from_an_import_path(user_models: str) -> None:
    net = create_model(f"{user_models}:build_net", num_classes=7, in_channels=1, width=5)
    assert net.conv.in_channels == 1 and net.conv.out_channels == 5
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    # A builder without num_classes/in_channels is called without them.
    mlp = create_model(f"{user_models}:build_mlp", num_classes=10, in_channels=1, width=6)
    assert mlp(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    fresh = landscape.load_model(f"{user_models}:build_mlp", width=6)
    assert fresh(torch.zeros(1, 64)).shape == (1, 10) and not fresh.training


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("nope", ["model.name", "no 'nope'", "expected 'pkg.module:function'"]),
        ("WIDTH", ["model.name", "not callable", "expected"]),
        ("not_a_model", ["model.name", "returned a dict", "expected a torch.nn.Module"]),
    ],
)
def test_bad_model_import_paths_name_the_key(
    user_models: str, target: str, words: list[str]
) -> None:
    with pytest.raises(ConfigError) as exc:
        create_model(f"{user_models}:{target}")
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_an_unimportable_module_is_one_line_naming_model_name() -> None:
    with pytest.raises(ConfigError) as exc:
        create_model("no_such_package_xyz.nets:build")
    msg = str(exc.value)
    assert msg.startswith("model.name: cannot import 'no_such_package_xyz.nets:build'")
    assert "ModuleNotFoundError" in msg and "\n" not in msg


def _config(out: Path, **over: Any) -> Any:
    from landscape.config import config_from_dict, deep_merge

    raw = {
        "name": "user",
        "out": str(out),
        "device": "cpu",
        "data": {"name": "digits", "subset": 48, "test_subset": 24},
        "train": {"epochs": 1, "batch_size": 16, "save_every": 1},
        "surface": {"x": [-1, 1, 3], "y": None, "batch_size": 32},
    }
    return config_from_dict(deep_merge(raw, over))


def test_configs_train_and_compute_surfaces_of_import_path_models(
    user_models: str, tmp_path: Path
) -> None:
    model_spec = {"name": f"{user_models}:build_net", "args": {"width": 3}}
    cfg = _config(tmp_path, model=model_spec)
    ckpt = train(cfg, progress=False)
    assert load_checkpoint(ckpt)["model_name"] == f"{user_models}:build_net"
    s = storage.read_surface(compute_surface(cfg))
    assert s.complete and np.isfinite(s.metrics["train_loss"]).all()
    model = landscape.load_model(ckpt)
    assert model.conv.out_channels == 3
    x, y = dataset_to_tensors(eval_dataset(cfg.data, "train"))
    with torch.no_grad():
        own = float(F.cross_entropy(model(x), y))
    assert s.metrics["train_loss"][1] == pytest.approx(own, rel=1e-6)


def test_a_plain_state_dict_loads_through_the_config(user_models: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = create_model(f"{user_models}:build_net", num_classes=10, in_channels=1, width=4).eval()
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)  # not written by landscape: no model name inside
    cfg = _config(
        tmp_path,
        checkpoint=str(plain),
        model={"name": f"{user_models}:build_net", "args": {"width": 4}},
    )
    s = storage.read_surface(compute_surface(cfg))
    x, y = dataset_to_tensors(eval_dataset(cfg.data, "train"))
    with torch.no_grad():
        own = float(F.cross_entropy(net(x), y))
    assert s.metrics["train_loss"][1] == pytest.approx(own, rel=1e-6)
    # The same file with the wrong model arguments is one line naming the mismatch.
    bad = _config(
        tmp_path / "bad",
        checkpoint=str(plain),
        model={"name": f"{user_models}:build_net", "args": {"width": 5}},
    )
    with pytest.raises(LandscapeError) as exc:
        compute_surface(bad)
    msg = str(exc.value)
    assert "does not match the model" in msg and "shape mismatch" in msg and "\n" not in msg


# ------------------------------------------------------------------- beyond the bundled nets


def _own_loss(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


class TiedConvs(nn.Module):
    """Two convs sharing one weight; only one feeds a BatchNorm (a shared stem)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.b = nn.Conv2d(3, 4, 3, padding=1)
        self.b.weight = self.a.weight  # tied
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        u = F.relu(self.bn(self.a(x))).mean(dim=(2, 3))  # (B, 4)
        v = F.relu(self.b(x)).mean(dim=(2, 3))  # (B, 4)
        return self.head(torch.cat([u, v], dim=1))  # (B, classes)


class ReadsConvWeight(nn.Module):
    """A conv -> BN whose weight the forward also reads directly (a weight-dependent scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.head = nn.Linear(4, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn(self.conv(x))).mean(dim=(2, 3))  # (B, 4)
        return self.head(h) * self.conv.weight.abs().mean() * 10


def _far_bn(model: nn.Module) -> nn.Module:
    """BN statistics far from the identity, so that folding really changes the conv weights."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.1, 0.5)
                m.weight.uniform_(2, 3)
    return model.eval()


@pytest.mark.parametrize(
    "build",
    [
        TiedConvs,
        ReadsConvWeight,
        lambda: nn.Sequential(
            torch.nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 4, 3, padding=1)),
            nn.BatchNorm2d(4),
            nn.Flatten(),
            nn.LazyLinear(CLASSES),
        ),
    ],
    ids=["tied", "read-elsewhere", "weight-norm"],
)
def test_bn_folding_leaves_convs_whose_weight_is_used_elsewhere(
    build: Callable[[], nn.Module],
) -> None:
    """Folding writes the conv weight: a tied, directly read or parametrized one stays as is."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 5, 5), torch.randint(0, CLASSES, (16,))
    model = build()
    model(x)  # materializes a lazy layer
    model = _far_bn(model)
    surf = landscape.loss_surface(model, (x, y), x=(0, 0, 1), y=None, device="cpu")
    assert surf.metrics["train_loss"][0] == pytest.approx(_own_loss(model, x, y), rel=1e-6)


def test_a_model_that_flattens_with_view_runs_on_contiguous_inputs(
    user_models: str, tmp_path: Path
) -> None:
    """channels-last inputs break `.view` after a conv: 'auto' falls back (train too), 'on'
    refuses in one line."""
    from landscape.config import EngineConfig

    cfg = _config(tmp_path, model={"name": f"{user_models}:build_viewnet"})
    lines: list[str] = []
    ckpt = train(cfg, progress=False, log=lines.append)
    assert any("channels-last" in line for line in lines)
    model = landscape.load_model(ckpt)
    x, y = dataset_to_tensors(eval_dataset(cfg.data, "train"))
    with pytest.warns(UserWarning, match="channels-last"):
        surf = landscape.loss_surface(model, (x, y), x=(0, 0, 1), y=None, device="cpu")
    assert surf.metrics["train_loss"][0] == pytest.approx(_own_loss(model, x, y), rel=1e-6)
    with pytest.raises(LandscapeError, match="channels_last: on, but") as exc:
        landscape.loss_surface(
            model, (x, y), x=(0, 0, 1), y=None, engine=EngineConfig(channels_last="on")
        )
    assert "\n" not in str(exc.value)
    with pytest.warns(UserWarning, match="channels-last"):
        assert storage.read_surface(compute_surface(cfg)).complete


@pytest.mark.parametrize("in_memory", ["on", "off"])
def test_token_inputs_stay_integers_through_the_config(
    user_models: str, tmp_path: Path, in_memory: str
) -> None:
    cfg = _config(
        tmp_path,
        model={"name": f"{user_models}:build_bag"},
        data={"name": f"{user_models}:load_tokens", "subset": None, "test_subset": None},
        surface={"engine": {"in_memory": in_memory, "workers": 0}},
    )
    ckpt = train(cfg, progress=False)
    s = storage.read_surface(compute_surface(cfg))
    x, y = dataset_to_tensors(eval_dataset(cfg.data, "train"))
    assert x.dtype == torch.int64
    model = landscape.load_model(ckpt)
    assert s.metrics["train_loss"][1] == pytest.approx(_own_loss(model, x, y), rel=1e-6)


class TupleOut(nn.Module):
    """(logits, probabilities), as models with auxiliary outputs return."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.fc(x)  # (B, classes)
        return out, out.softmax(dim=1)


def _features(n: int = 24) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 12, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def test_a_model_returning_a_tuple_needs_a_loss_that_takes_it() -> None:
    """A built-in loss refuses in one line; a callable loss works, and accuracy is left out."""
    from landscape.engine import EvalSet, evaluate, make_loss

    torch.manual_seed(0)
    model, (x, y) = TupleOut().eval(), _features()
    with pytest.raises(LandscapeError, match="pass a callable") as exc:
        landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, device="cpu")
    assert "returns a tuple" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(LandscapeError, match="returns a tuple"):
        evaluate(model, EvalSet(x, y), make_loss("crossentropy"))

    def first(out: tuple[Tensor, Tensor], t: Tensor) -> Tensor:
        return F.cross_entropy(out[0], t)

    surf = landscape.loss_surface(model, (x, y), x=(0, 0, 1), y=None, device="cpu", loss=first)
    assert set(surf.metrics) == {"train_loss"}
    with torch.no_grad():
        own = float(first(model(x), y))
    assert surf.metrics["train_loss"][0] == pytest.approx(own, rel=1e-6)


def test_one_logit_under_crossentropy_suggests_a_binary_loss() -> None:
    x, y = _features()
    with pytest.raises(LandscapeError, match="binary_cross_entropy_with_logits") as exc:
        landscape.loss_surface(nn.Linear(12, 1), (x, y % 2), x=(-1, 1, 3), y=None, device="cpu")
    assert ", 1)" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_labels_of_any_integer_type_give_the_int64_surface(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model, (x, y) = MLP().eval(), _features()
    reference = landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, device="cpu")
    surf = landscape.loss_surface(model, (x, y.to(dtype)), x=(-1, 1, 3), y=None, device="cpu")
    np.testing.assert_array_equal(surf.metrics["train_loss"], reference.metrics["train_loss"])
    np.testing.assert_array_equal(surf.metrics["train_acc"], reference.metrics["train_acc"])


class TemperatureScale(nn.Module):
    """Only a 0-d temperature and a 1-d bias are parameters: ignore='biasbn' moves nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Parameter(torch.tensor(1.5))
        self.b = nn.Parameter(torch.zeros(CLASSES))
        self.register_buffer("w", torch.randn(12, CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        return (x @ self.w) * self.t + self.b  # (B, classes)


def test_directions_that_would_move_nothing_are_refused_before_any_point() -> None:
    torch.manual_seed(0)
    x, y = _features()
    with pytest.raises(LandscapeError, match="ignore='none'") as exc:
        landscape.loss_surface(TemperatureScale(), (x, y), x=(-1, 1, 3), y=None, device="cpu")
    assert "0-d or 1-d" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(LandscapeError, match="no tensors to move"):
        landscape.loss_surface(nn.Flatten(), (x, y), x=(-1, 1, 3), y=None, device="cpu")
    surf = landscape.loss_surface(
        TemperatureScale(), (x, y), x=(-1, 1, 3), y=None, device="cpu", ignore="none"
    )
    assert len(set(surf.metrics["train_loss"].round(6))) == 3


def test_data_the_model_cannot_take_whole_is_one_line() -> None:
    """Two inputs per example, or batches padded to different lengths, cannot be stacked."""
    from torch.utils.data import DataLoader

    x, y = _features(16)
    pairs = [((x[i], torch.ones(3)), y[i]) for i in range(16)]
    with pytest.raises(LandscapeError, match="not one tensor") as exc:
        landscape.loss_surface(MLP(), DataLoader(pairs, batch_size=8), x=(-1, 1, 3), y=None)
    assert "\n" not in str(exc.value)

    def pad(batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        longest = max(len(t) for t, _ in batch)
        return torch.stack([F.pad(t, (0, longest - len(t))) for t, _ in batch]), torch.stack(
            [label for _, label in batch]
        )

    seqs = [(torch.randint(0, 9, (3 + i // 8,)), y[i]) for i in range(16)]
    loader = DataLoader(seqs, batch_size=8, collate_fn=pad)
    with pytest.raises(LandscapeError, match=r"\(3,\) and \(4,\).*pad them"):
        landscape.loss_surface(nn.EmbeddingBag(9, CLASSES), loader, x=(-1, 1, 3), y=None)


def _legacy_weight_norm() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, and still in use
        return nn.utils.weight_norm(nn.Linear(12, CLASSES))


@pytest.mark.parametrize(
    "build", [lambda: MLP().double(), _legacy_weight_norm], ids=["float64", "legacy-weight-norm"]
)
def test_models_of_other_dtypes_or_computed_weights_give_their_own_loss(
    build: Callable[[], nn.Module],
) -> None:
    """float32 data meets a float64 model in its dtype; a legacy weight_norm model copies."""
    torch.manual_seed(0)
    model = build().eval()
    x, y = _features()
    surf = landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, device="cpu")
    dtype = next(model.parameters()).dtype
    assert surf.metrics["train_loss"][1] == pytest.approx(_own_loss(model, x.to(dtype), y))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", torch.device("cuda:0")], ids=str)
def test_a_gpu_device_without_a_gpu_is_one_line(device: str | torch.device) -> None:
    with pytest.raises(LandscapeError, match="no CUDA GPU is available here; use cpu or auto"):
        landscape.loss_surface(MLP(), _features(), x=(-1, 1, 3), y=None, device=device)


def test_layers_without_a_vmap_rule_fall_back_to_one_point_per_call() -> None:
    """torch.vmap has no rule for an LSTM: points_per_call > 1 warns and gives the same numbers."""
    from landscape.config import EngineConfig

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.lstm = nn.Embedding(9, 4), nn.LSTM(4, 4, batch_first=True)
            self.head = nn.Linear(4, CLASSES)

        def forward(self, tokens: Tensor) -> Tensor:
            return self.head(self.lstm(self.embed(tokens))[0][:, -1])  # (B, classes)

    torch.manual_seed(0)
    model, y = Recurrent().eval(), _features()[1]
    x = torch.randint(0, 9, (len(y), 4))
    grid = {"x": (-1, 1, 3), "y": None, "device": "cpu"}
    with pytest.warns(UserWarning, match="one point per call"):
        many = landscape.loss_surface(model, (x, y), engine=EngineConfig(points_per_call=2), **grid)
    one = landscape.loss_surface(model, (x, y), **grid)
    np.testing.assert_allclose(many.metrics["train_loss"], one.metrics["train_loss"], rtol=1e-6)
