"""Directions in weight space: seeded random draws, normalizations, lines and planes.

A direction is a dict of tensors keyed by parameter name (state_dict name for `dir_type: states`),
shaped like the weights it perturbs.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .errors import LandscapeError

Direction = dict[str, Tensor]

EPS = 1e-10


def target_tensors(model: nn.Module, dir_type: str = "weights") -> dict[str, Tensor]:
    """The tensors a direction perturbs: parameters, or every float entry of the state_dict.

    `named_parameters` yields a tied (shared) parameter once, so it gets one direction.
    """
    if dir_type == "weights":
        return {name: p for name, p in model.named_parameters()}
    if dir_type == "states":
        seen: set[int] = set()
        out = {}
        for name, t in model.state_dict(keep_vars=True).items():
            if t.is_floating_point() and id(t) not in seen:
                seen.add(id(t))
                out[name] = t
        return out
    raise ValueError(f"dir_type must be 'weights' or 'states', not {dir_type!r}")


def random_direction(weights: Mapping[str, Tensor], generator: torch.Generator) -> Direction:
    """Gaussian noise shaped like each weight, drawn on the CPU so every device gets one draw."""
    return {
        name: torch.randn(w.shape, generator=generator, dtype=torch.float32).to(w.device, w.dtype)
        for name, w in weights.items()
    }


def filter_norms(t: Tensor) -> Tensor:
    """Norm of each output filter (row along dim 0); a 0-d or 1-d tensor counts as one filter."""
    if t.dim() <= 1:
        return t.detach().float().norm().reshape(1)
    return t.detach().float().reshape(t.shape[0], -1).norm(dim=1)


def normalize_direction(
    direction: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    norm: str = "filter",
    ignore: str = "biasbn",
) -> Direction:
    """Rescale a direction to the weights' scale.

    filter: each output filter of d gets the norm of the same filter of w (Li et al. 2018);
    layer: the whole tensor gets the norm of w; weight: d * w elementwise;
    dfilter / dlayer: unit norm per filter / per tensor; none: unchanged.
    With ignore='biasbn', 1-D tensors (biases, norm-layer weights) are zero.
    """
    out: Direction = {}
    for name, d in direction.items():
        w = weights[name].detach()
        if ignore == "biasbn" and w.dim() <= 1:
            out[name] = torch.zeros_like(d)
            continue
        out[name] = _normalize_one(d, w, norm)
    return out


def _normalize_one(d: Tensor, w: Tensor, norm: str) -> Tensor:
    if norm == "none":
        return d.clone()
    if norm == "weight":
        return d * w
    if norm in ("layer", "dlayer"):
        target = w.float().norm() if norm == "layer" else torch.tensor(1.0, device=d.device)
        return d * (target / (d.float().norm() + EPS)).to(d.dtype)
    if norm in ("filter", "dfilter"):
        dn = filter_norms(d)
        target = filter_norms(w) if norm == "filter" else torch.ones_like(dn)
        scale = (target / (dn + EPS)).to(d.dtype)
        shape = (-1,) + (1,) * (d.dim() - 1) if d.dim() > 1 else ()
        return d * (scale.reshape(shape) if d.dim() > 1 else scale.reshape(()))
    raise ValueError(f"unknown normalization {norm!r}")


def check_movable(weights: Mapping[str, Tensor], ignore: str = "biasbn") -> None:
    """Refuse directions that would be zero everywhere (a flat, meaningless surface)."""
    if not weights:
        raise LandscapeError(
            "directions: the model has no tensors to move; a surface needs parameters (for a "
            "model with only buffers, pass dir_type='states')"
        )
    if ignore == "biasbn" and all(w.dim() <= 1 for w in weights.values()):
        raise LandscapeError(
            "directions: every tensor of the model is 0-d or 1-d, and ignore 'biasbn' keeps "
            "those still, so the surface would be flat; pass ignore='none' (in a config, "
            "surface.directions.ignore: none)"
        )


def random_directions(
    weights: Mapping[str, Tensor],
    n: int = 2,
    norm: str = "filter",
    ignore: str = "biasbn",
    seed: int = 0,
) -> list[Direction]:
    """n normalized random directions; the same seed always gives the same directions."""
    check_movable(weights, ignore)
    g = torch.Generator().manual_seed(int(seed))
    return [
        normalize_direction(random_direction(weights, g), weights, norm, ignore) for _ in range(n)
    ]


def difference(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Direction:
    """b - a for every tensor of a (the line from A to B)."""
    missing = [k for k in a if k not in b]
    if missing:
        raise KeyError(f"second set of weights lacks {missing[0]!r}")
    return {k: (b[k].detach().to(a[k].device, a[k].dtype) - a[k].detach()) for k in a}


def plane_directions(
    w0: Mapping[str, Tensor], w1: Mapping[str, Tensor], w2: Mapping[str, Tensor]
) -> list[Direction]:
    """The plane through three weight sets, with origin w0: directions w1 - w0 and w2 - w0."""
    return [difference(w0, w1), difference(w0, w2)]


def inner(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Dot product of two directions over all their entries, in float64."""
    return float(sum((a[k].double() * b[k].double()).sum() for k in a))


def orthogonalize(d1: Mapping[str, Tensor], d2: Mapping[str, Tensor]) -> Direction:
    """d2 with its component along d1 removed (Gram-Schmidt), rescaled back to d2's norm."""
    n1 = inner(d1, d1)
    if n1 == 0:
        return dict(d2)
    c = inner(d1, d2) / n1
    out = {k: d2[k] - c * d1[k] for k in d2}
    scale = (inner(d2, d2) / max(inner(out, out), EPS)) ** 0.5
    return {k: v * scale for k, v in out.items()}


def cosine(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Cosine similarity between two directions."""
    return inner(a, b) / max((inner(a, a) * inner(b, b)) ** 0.5, EPS)
