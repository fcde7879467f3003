"""Tests for landscape.directions: normalizations, seeds, names, tied weights, lines, planes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from landscape.directions import (
    difference,
    filter_norms,
    inner,
    normalize_direction,
    orthogonalize,
    plane_directions,
    random_direction,
    random_directions,
    target_tensors,
)

pytestmark = pytest.mark.usefixtures("single_thread")

conv_shapes = st.tuples(*(st.integers(1, n) for n in (6, 4, 3, 3)))
linear_shapes = st.tuples(st.integers(1, 8), st.integers(1, 8))
vector_shapes = st.tuples(st.integers(1, 12))


def _weights(shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Filters of very different scales, so a norm copied from the wrong filter shows.
    scale = torch.logspace(-2, 2, shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
    return {"w": torch.randn(shape, generator=g) * scale}


@settings(max_examples=60, deadline=None)
@given(shape=st.one_of(conv_shapes, linear_shapes, vector_shapes), seed=st.integers(0, 2**16))
def test_filter_direction_has_the_weights_filter_norms(shape: tuple[int, ...], seed: int) -> None:
    w = _weights(shape, seed)
    (d,) = random_directions(w, n=1, norm="filter", ignore="none", seed=seed)
    assert d["w"].shape == w["w"].shape
    if len(shape) == 1:
        # A 1-D tensor is one filter: the whole direction gets the tensor's norm.
        assert_close(d["w"].norm(), w["w"].norm(), rtol=1e-5, atol=0)
    else:
        rows = d["w"].reshape(shape[0], -1).norm(dim=1)
        assert_close(rows, w["w"].reshape(shape[0], -1).norm(dim=1), rtol=1e-5, atol=0)
    assert_close(filter_norms(d["w"]), filter_norms(w["w"]), rtol=1e-5, atol=0)


def test_biasbn_zeroes_every_1d_tensor_and_nothing_else(tiny_net: nn.Module) -> None:
    weights = target_tensors(tiny_net)
    (d,) = random_directions(weights, n=1, ignore="biasbn", seed=3)
    assert set(d) == {"conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"}
    for name, t in d.items():
        if weights[name].dim() <= 1:
            assert torch.equal(t, torch.zeros_like(t)), name
        else:
            assert bool((t != 0).all()), name
    # Without ignore, a 1-D tensor is one filter scaled to its weights' norm (bn.bias starts at 0).
    (kept,) = random_directions(weights, n=1, ignore="none", seed=3)
    for name in ("conv.bias", "bn.weight", "bn.bias", "fc.bias"):
        assert_close(kept[name].norm(), weights[name].detach().norm(), rtol=1e-5, atol=1e-12)
    assert bool((kept["bn.weight"] != 0).all())


@pytest.mark.parametrize("norm", ["layer", "weight", "dfilter", "dlayer", "none"])
def test_other_normalizations(norm: str, tiny_net: nn.Module) -> None:
    weights = {k: v for k, v in target_tensors(tiny_net).items() if v.dim() > 1}
    (d,) = random_directions(weights, n=1, norm=norm, ignore="biasbn", seed=7)
    # random_directions draws from a generator seeded with `seed`: the raw draw is reproducible.
    raw = random_direction(weights, torch.Generator().manual_seed(7))
    for name, w in weights.items():
        w = w.detach()
        if norm == "layer":
            assert_close(d[name].norm(), w.norm(), rtol=1e-5, atol=0)
            assert_close(d[name] / d[name].norm(), raw[name] / raw[name].norm())
        elif norm == "weight":
            assert torch.equal(d[name], raw[name] * w)
        elif norm == "dfilter":
            assert_close(filter_norms(d[name]), torch.ones(w.shape[0]), rtol=1e-5, atol=0)
        elif norm == "dlayer":
            assert_close(d[name].norm(), torch.tensor(1.0), rtol=1e-5, atol=0)
        else:
            assert torch.equal(d[name], raw[name])


def test_unknown_normalization_is_an_error(tiny_net: nn.Module) -> None:
    with pytest.raises(ValueError, match="filtre"):
        random_directions(target_tensors(tiny_net), norm="filtre")
    with pytest.raises(ValueError, match="dir_type"):
        target_tensors(tiny_net, "buffers")


def test_same_seed_same_directions_other_seed_other(tiny_net: nn.Module) -> None:
    weights = target_tensors(tiny_net)
    a = random_directions(weights, n=2, seed=11)
    b = random_directions(weights, n=2, seed=11)
    c = random_directions(weights, n=2, seed=12)
    for da, db in zip(a, b, strict=True):
        assert all(torch.equal(da[k], db[k]) for k in da)
    assert not torch.equal(a[0]["conv.weight"], c[0]["conv.weight"])
    # The two directions of one draw are different draws, not copies.
    assert not torch.equal(a[0]["conv.weight"], a[1]["conv.weight"])


def test_directions_are_keyed_by_parameter_name(tiny_net: nn.Module) -> None:
    (d,) = random_directions(target_tensors(tiny_net), n=1)
    params = dict(tiny_net.named_parameters())
    assert list(d) == list(params)
    for name, p in params.items():
        assert d[name].shape == p.shape and d[name].dtype == p.dtype


class _Tied(nn.Module):
    """An encoder and decoder that share one weight matrix (as tied embeddings do)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(5, 5, bias=False)
        self.dec = nn.Linear(5, 5, bias=True)
        self.dec.weight = self.enc.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


@pytest.mark.parametrize("dir_type", ["weights", "states"])
def test_a_tied_parameter_gets_one_direction(dir_type: str) -> None:
    model = _Tied()
    targets = target_tensors(model, dir_type)
    assert sorted(targets) == ["dec.bias", "enc.weight"]
    assert targets["enc.weight"] is model.dec.weight
    (d,) = random_directions(targets, n=1, norm="filter", ignore="none")
    assert sorted(d) == ["dec.bias", "enc.weight"]


def test_states_include_running_stats_but_not_the_batch_counter(tiny_net: nn.Module) -> None:
    states = target_tensors(tiny_net, "states")
    assert "bn.running_mean" in states and "bn.running_var" in states
    assert "bn.num_batches_tracked" not in states
    assert set(dict(tiny_net.named_parameters())) < set(states)
    # The targets are the model's own tensors, so moving them moves the model.
    assert states["bn.running_mean"] is tiny_net.bn.running_mean
    (d,) = random_directions(states, n=1, ignore="biasbn", seed=1)
    assert torch.equal(d["bn.running_var"], torch.zeros(4))
    (d,) = random_directions(states, n=1, ignore="none", seed=1)
    assert bool((d["bn.running_var"] != 0).all())


def test_orthogonalize_removes_the_shared_component_and_keeps_the_norm(tiny_net: nn.Module) -> None:
    weights = target_tensors(tiny_net)
    d1, d2 = random_directions(weights, n=2, seed=5)
    # Make d2 strongly aligned with d1 so that the test means something.
    d2 = {k: d2[k] + 3 * d1[k] for k in d2}
    assert abs(inner(d1, d2)) > 0.5 * (inner(d1, d1) * inner(d2, d2)) ** 0.5
    o = orthogonalize(d1, d2)
    assert abs(inner(d1, o)) < 1e-5 * (inner(d1, d1) * inner(o, o)) ** 0.5
    assert inner(o, o) == pytest.approx(inner(d2, d2), rel=1e-6)
    # Entries that biasbn zeroed stay zero.
    assert torch.equal(o["bn.weight"], torch.zeros(4))


def test_orthogonalize_against_zero_returns_d2(tiny_net: nn.Module) -> None:
    (d2,) = random_directions(target_tensors(tiny_net), n=1)
    zero = {k: torch.zeros_like(v) for k, v in d2.items()}
    out = orthogonalize(zero, d2)
    assert all(torch.equal(out[k], d2[k]) for k in d2)


def test_line_and_plane_from_weight_sets() -> None:
    g = torch.Generator().manual_seed(0)
    w0, w1, w2 = (
        {"a": torch.randn(3, 2, generator=g), "b": torch.randn(4, generator=g)} for _ in range(3)
    )
    line = difference(w0, w1)
    assert set(line) == {"a", "b"}
    assert torch.equal(line["a"], w1["a"] - w0["a"])
    # Walking the whole line from w0 lands exactly on w1.
    assert_close(w0["b"] + line["b"], w1["b"])
    p1, p2 = plane_directions(w0, w1, w2)
    assert torch.equal(p1["b"], w1["b"] - w0["b"])
    assert torch.equal(p2["a"], w2["a"] - w0["a"])
    with pytest.raises(KeyError, match="b"):
        difference(w0, {"a": w1["a"]})


def test_normalize_leaves_its_inputs_alone(tiny_net: nn.Module) -> None:
    weights = target_tensors(tiny_net)
    before = {k: v.detach().clone() for k, v in weights.items()}
    raw = random_direction(weights, torch.Generator().manual_seed(0))
    raw_before = {k: v.clone() for k, v in raw.items()}
    normalize_direction(raw, weights, "filter", "biasbn")
    assert all(torch.equal(weights[k], before[k]) for k in weights)
    assert all(torch.equal(raw[k], raw_before[k]) for k in raw)
