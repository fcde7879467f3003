"""Rewrites of a traced network that keep what it computes and make it faster to evaluate.

BN folding merges each eval-mode BatchNorm into the convolution that alone feeds it (the folded
weights are recomputed from the model at every grid point by `fold_tensors`); oneDNN fusion turns
a convolution with the residual add and ReLU after it into one call on a CPU. Both work on a
private `torch.fx` copy of the user's model (the engine's "runner") and keep parameter names.
"""

from __future__ import annotations

import copy
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of the model, also of one holding computed tensors as attributes (the legacy
    `nn.utils.weight_norm` keeps its weight so; the copy gets it detached, and recomputes it)."""
    memo: dict[int, object] = {}
    for m in model.modules():
        for value in vars(m).values():
            if isinstance(value, Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


# ----------------------------------------------------------------------------- BN folding


@dataclass(frozen=True)
class FoldPair:
    """A convolution whose only consumer is an eval-mode BatchNorm, by qualified module name."""

    conv: str
    bn: str


def _foldable_bn(bn: nn.Module, channels: int) -> bool:
    return (
        isinstance(bn, nn.modules.batchnorm._BatchNorm)
        and not bn.training
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == channels
    )


def trace_fold_pairs(model: nn.Module) -> tuple[torch.fx.GraphModule, list[FoldPair]] | None:
    """A traced copy of the model with each conv -> BN pair merged into one conv with a bias.

    Pairs come from the traced graph, not from the order of definition: a conv qualifies only when
    the BN is its sole consumer, so pre-activation BNs (BN before conv, as in DenseNet's bn1 or
    PreResNet's bn1) and convs whose output also feeds a shortcut or a concat stay as they are.
    Returns None when the model cannot be traced (data-dependent control flow).
    """
    import torch.fx as fx

    runner = copy_module(model)
    try:
        gm = fx.symbolic_trace(runner)
    except Exception:  # any tracing failure only means no folding
        return None
    modules = dict(gm.named_modules())
    # A module called from two places (shared weights) cannot take one BN's scale.
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    private = _private_tensors(gm)
    pairs = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        if calls[src.target] != 1 or calls[node.target] != 1:
            continue
        conv, bn = modules[src.target], modules[node.target]
        if not (isinstance(conv, nn.modules.conv._ConvNd) and not conv.transposed):
            continue
        if not isinstance(conv._parameters.get("weight"), Tensor):  # e.g. legacy weight_norm
            continue
        if not _foldable_bn(bn, conv.out_channels):
            continue
        if not _owns_tensors(conv, str(src.target), private) or not _owns_tensors(
            bn, str(node.target), private
        ):
            continue
        if conv.bias is None:
            w = conv.weight
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=w.dtype, device=w.device))
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        pairs.append(FoldPair(str(src.target), str(node.target)))
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    gm.requires_grad_(False)
    return gm, pairs


def _private_tensors(gm: torch.fx.GraphModule) -> set[str]:
    """Names of the parameters and buffers that are reachable under that one name and that the
    graph never reads directly (get_attr), so that only their own module's call uses them."""
    named: list[tuple[str, Tensor]] = [*gm.named_parameters(remove_duplicate=False)]
    named += gm.named_buffers(remove_duplicate=False)
    count = Counter(id(t) for _, t in named)
    read = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    return {name for name, t in named if count[id(t)] == 1 and name not in read}


def _owns_tensors(module: nn.Module, name: str, private: set[str]) -> bool:
    """Whether folding may rewrite the module's tensors: plain ones (not parametrized), used
    only by its own call. Rewriting a tied or directly read weight would change other uses."""
    if parametrize.is_parametrized(module):
        return False
    own = [k for k, t in (*module._parameters.items(), *module._buffers.items()) if t is not None]
    return all(f"{name}.{k}" in private for k in own)


def fold_tensors(state: Mapping[str, Tensor], pair: FoldPair, eps: float) -> tuple[Tensor, Tensor]:
    """The folded conv weight and bias from the model's current tensors:

    w' = w * gamma / sqrt(var + eps),  b' = beta + (b - mean) * gamma / sqrt(var + eps).
    """
    w = state[f"{pair.conv}.weight"]
    mean, var = state[f"{pair.bn}.running_mean"], state[f"{pair.bn}.running_var"]
    scale = torch.rsqrt(var + eps)
    gamma = state.get(f"{pair.bn}.weight")
    if gamma is not None:
        scale = scale * gamma
    b = state.get(f"{pair.conv}.bias")
    shift = -mean if b is None else b - mean
    beta = state.get(f"{pair.bn}.bias")
    bias = shift * scale if beta is None else torch.addcmul(beta, shift, scale)
    return w * scale.reshape(-1, *([1] * (w.dim() - 1))), bias


def fold_into(
    state: Mapping[str, Tensor],
    pairs: Sequence[FoldPair],
    eps: Mapping[str, float],
    out: Mapping[str, Tensor],
) -> None:
    """Write fold_tensors of every pair into out[conv.weight] and out[conv.bias], bit for bit.

    Pairs alike (the same optional tensors, epsilon, dtype and device as their outputs) are
    folded together by torch's _foreach ops, the same arithmetic in the same order as
    fold_tensors in a few calls instead of about eight per pair (on a GPU, a few kernel
    launches instead of hundreds per grid point); any other pair alone.
    """
    groups: dict[tuple[object, ...], list[FoldPair]] = {}
    for p in pairs:
        tensors = [state[f"{p.conv}.weight"], out[f"{p.conv}.weight"], out[f"{p.conv}.bias"]]
        tensors += [state[f"{p.bn}.running_mean"], state[f"{p.bn}.running_var"]]
        optional = [state.get(f"{p.bn}.weight"), state.get(f"{p.conv}.bias")]
        optional += [state.get(f"{p.bn}.bias")]
        tensors += [t for t in optional if t is not None]
        alike = len({(t.dtype, t.device) for t in tensors}) == 1
        key = (*(t is None for t in optional), eps[p.bn], tensors[0].dtype, tensors[0].device)
        groups.setdefault(key if alike else (p,), []).append(p)
    for group in groups.values():
        if len(group) == 1:
            p = group[0]
            w, b = fold_tensors(state, p, eps[p.bn])
            out[f"{p.conv}.weight"].copy_(w)
            out[f"{p.conv}.bias"].copy_(b)
        else:
            _fold_alike(state, group, eps[group[0].bn], out)


def _fold_alike(
    state: Mapping[str, Tensor], pairs: Sequence[FoldPair], eps: float, out: Mapping[str, Tensor]
) -> None:
    """fold_tensors over pairs of one structure, dtype and device, with _foreach ops."""

    def each(fmt: str) -> list[Tensor]:
        return [state[fmt.format(conv=p.conv, bn=p.bn)] for p in pairs]

    first = pairs[0]
    scale = torch._foreach_add(each("{bn}.running_var"), eps)
    torch._foreach_rsqrt_(scale)
    if f"{first.bn}.weight" in state:
        torch._foreach_mul_(scale, each("{bn}.weight"))
    mean = each("{bn}.running_mean")
    if f"{first.conv}.bias" in state:
        shift = torch._foreach_sub(each("{conv}.bias"), mean)
    else:
        shift = torch._foreach_neg(mean)
    bias = [out[f"{p.conv}.bias"] for p in pairs]
    if f"{first.bn}.bias" in state:
        torch._foreach_copy_(bias, each("{bn}.bias"))
        torch._foreach_addcmul_(bias, shift, scale)
    else:
        torch._foreach_copy_(bias, torch._foreach_mul(shift, scale))
    weight = [out[f"{p.conv}.weight"] for p in pairs]
    torch._foreach_copy_(weight, each("{conv}.weight"))
    shaped = [s.reshape(-1, *([1] * (w.dim() - 1))) for s, w in zip(scale, weight, strict=True)]
    torch._foreach_mul_(weight, shaped)


# ----------------------------------------------------------------------------- oneDNN fusion (CPU)


def _fused_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    other: Tensor | None,
    padding: list[int],
    stride: list[int],
    dilation: list[int],
    groups: int,
    relu: bool,
) -> Tensor:
    """conv2d(x) [+ other] [then ReLU] as one oneDNN call: the output is written once.

    Under CPU autocast the call runs in the autocast dtype, as conv2d would. A residual that
    does not have the output's shape (a broadcast add) takes the unfused route.
    """
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        other = None if other is None else other.to(dtype)
    unary = "relu" if relu else "none"
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, padding, stride, dilation, groups, unary, [], ""
        )
    h, w = (
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, p, d, k, s in zip(
            x.shape[2:], padding, dilation, weight.shape[2:], stride, strict=True
        )
    )
    if other.shape != (x.shape[0], weight.shape[0], h, w):
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups) + other
        return F.relu(out) if relu else out
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, weight, bias, padding, stride, dilation, groups, "add", 1.0,
        "relu" if relu else None, [], "",
    )  # fmt: skip


def can_fuse_on(device: torch.device) -> bool:
    """oneDNN's fused convolutions exist in this build, for this (CPU) device."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        op = torch.ops.mkldnn._convolution_pointwise
        return hasattr(op, "binary") and hasattr(torch, "get_autocast_dtype")
    except (AttributeError, RuntimeError):  # a build without these oneDNN ops
        return False


def _is_relu(node: torch.fx.Node, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_function":
        return node.target in (F.relu, torch.relu, torch.relu_)
    return node.op == "call_module" and isinstance(modules.get(str(node.target)), nn.ReLU)


def fuse_conv_pointwise(gm: torch.fx.GraphModule) -> int:
    """Rewrite each float32 Conv2d of a traced network, with the residual add and the ReLU that
    follow it alone, into one `_fused_conv` call; returns the number rewritten.

    The weights are read from the conv modules at every call (get_attr), so refreshing them in
    place per grid point still works; parameter names do not change.
    """
    graph, modules = gm.graph, dict(gm.named_modules())
    count = 0
    for node in list(graph.nodes):
        conv = modules.get(str(node.target)) if node.op == "call_module" else None
        if not isinstance(conv, nn.Conv2d) or len(node.args) != 1 or node.kwargs:
            continue
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        if conv.weight.dtype != torch.float32:
            continue
        chain, other = [node], None  # the nodes the fused call replaces, in order
        users = list(node.users)
        add = users[0] if len(users) == 1 else None
        if (
            add is not None
            and add.op == "call_function"
            and add.target in (operator.add, torch.add)
            and len(add.args) == 2
            and not add.kwargs
        ):
            a, b = add.args
            candidate = b if a is node else a
            if isinstance(candidate, torch.fx.Node) and candidate is not node:
                chain, other = [node, add], candidate
        follow = list(chain[-1].users)
        relu = len(follow) == 1 and _is_relu(follow[0], modules)
        if relu:
            chain.append(follow[0])
        with graph.inserting_before(chain[-1]):
            weight = graph.get_attr(f"{node.target}.weight")
            bias = graph.get_attr(f"{node.target}.bias") if conv.bias is not None else None
            args = (node.args[0], weight, bias, other, list(conv.padding), list(conv.stride))
            fused = graph.call_function(
                _fused_conv, (*args, list(conv.dilation), conv.groups, relu)
            )
        chain[-1].replace_all_uses_with(fused)
        for dead in reversed(chain):
            graph.erase_node(dead)
        count += 1
    graph.lint()
    gm.recompile()
    return count


def bn_eps(bn: nn.Module) -> float:
    """The epsilon of a BatchNorm that folding merges into its convolution."""
    assert isinstance(bn, nn.modules.batchnorm._BatchNorm)  # only BNs are folded
    return float(bn.eps)
