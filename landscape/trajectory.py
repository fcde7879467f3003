"""Optimizer trajectories: PCA directions of a training path and its coordinates in their plane.

Weights and directions are ``dict[str, Tensor]`` keyed by parameter name. Following Li et al.
(2018, Sec. 7), the path is described relative to the final weights: row t of the difference
matrix is ``w_t - w_final``, and the plane is spanned by its top principal directions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .errors import LandscapeError

Weights = Mapping[str, torch.Tensor]

IGNORE_CHOICES = ("biasbn", "none")


def select_names(weights: Weights, ignore: str = "biasbn") -> list[str]:
    """Names of the tensors a direction may move, in the order of ``weights``.

    ``ignore="biasbn"`` leaves out 1-D (and 0-D) tensors: biases and BatchNorm weights.
    Integer tensors (e.g. BatchNorm's ``num_batches_tracked``) are never directions.
    """
    if ignore not in IGNORE_CHOICES:
        raise LandscapeError(f"unknown ignore {ignore!r}; choose from: {', '.join(IGNORE_CHOICES)}")
    names = [
        name
        for name, t in weights.items()
        if t.is_floating_point() and (ignore == "none" or t.dim() > 1)
    ]
    if not names:
        raise LandscapeError(
            f"no tensors left to use with ignore={ignore!r}; use ignore='none' to include biases"
        )
    return names


def _check_names(weights: Weights, names: Sequence[str]) -> None:
    """Refuse names the weights lack, as happens with weights of another model."""
    missing = [n for n in names if n not in weights]
    if missing:
        raise LandscapeError(
            f"weights have no tensor {missing[0]!r}; pass weights of the same model "
            "(keys as in model.named_parameters())"
        )


def flatten(weights: Weights, names: Sequence[str]) -> torch.Tensor:
    """Concatenate the named tensors into one 1-D vector, in the order of ``names``."""
    _check_names(weights, names)
    return torch.cat([weights[n].reshape(-1) for n in names])


def unflatten(vec: torch.Tensor, like: Weights, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Split ``vec`` into tensors shaped as ``like``; keys of ``like`` not in ``names`` get zeros.

    The result has every key of ``like`` in its order, each with ``like``'s dtype and device, so it
    can be added to the weights directly.
    """
    _check_names(like, names)
    total = sum(like[n].numel() for n in names)
    if vec.dim() != 1 or vec.numel() != total:
        raise LandscapeError(
            f"vector of shape {tuple(vec.shape)} does not match the {total} selected weights; "
            "flatten it with the same names"
        )
    pieces: dict[str, torch.Tensor] = {}
    start = 0
    for n in names:
        size = like[n].numel()
        pieces[n] = vec[start : start + size]
        start += size
    return {
        # copy=True: the pieces must not share memory with ``vec`` or with each other.
        n: pieces[n].reshape(ref.shape).to(dtype=ref.dtype, device=ref.device, copy=True)
        if n in pieces
        else torch.zeros_like(ref)
        for n, ref in like.items()
    }


def _difference(w: Weights, final: Weights, names: Sequence[str]) -> torch.Tensor:
    """``w - final`` over ``names`` as one float64 vector.

    float64 keeps the small differences of float32 weights exact and the Gram sums accurate.
    """
    return flatten(w, names).to(torch.float64) - flatten(final, names).to(torch.float64)


def pca_directions(
    path: Sequence[Weights], final: Weights, ignore: str = "biasbn", n: int = 2
) -> tuple[list[dict[str, torch.Tensor]], np.ndarray]:
    """Top-``n`` principal directions of the path around ``final`` and their explained variance.

    The rows of the difference matrix M (T, P) are ``w_t - w_final``; like the paper's code (scikit-
    learn's PCA), M is centred on its mean row before the SVD, and the variance ratios are
    ``s_i^2 / sum(s^2)`` over the singular values s of the centred M. The final weights stay the
    origin of the plot. M is filled one checkpoint at a time (``path`` may load each on access)
    and the SVD is taken through the small (T, T) Gram matrix, centred there, so M in float64 is
    the one (T, P) array held. Each direction has unit norm over the selected tensors and zeros
    on the ignored ones; its sign is fixed so that the first checkpoint has a non-negative
    coordinate, which makes the plot reproducible.
    """
    if len(path) < 2:
        raise LandscapeError(
            f"a trajectory needs at least 2 checkpoints, got {len(path)}; save more checkpoints"
        )
    if n < 1:
        raise LandscapeError(f"number of PCA directions must be >= 1, got {n}")
    names = select_names(final, ignore)
    size = sum(final[k].numel() for k in names)
    rows = torch.empty(len(path), size, dtype=torch.float64, device=final[names[0]].device)
    for t in range(len(path)):  # (T, P), a row at a time
        rows[t] = _difference(path[t], final, names)
    if n > min(rows.shape):
        raise LandscapeError(
            f"asked for {n} PCA directions but the path has only {rows.shape[0]} checkpoints "
            f"of {rows.shape[1]} weights; ask for fewer"
        )
    # The centred matrix is H M with H = I - 11^T / T, so its Gram matrix is H (M M^T) H and its
    # right singular vectors are M^T H v / s: no centred copy of M is needed.
    steps = len(path)
    centring = torch.eye(steps, dtype=rows.dtype, device=rows.device) - 1.0 / steps
    gram = centring @ (rows @ rows.T) @ centring  # (T, T)
    evals, evecs = torch.linalg.eigh(gram)  # ascending
    evals = evals.flip(0).clamp_min(0.0)
    evecs = evecs.flip(1)
    total = float(torch.trace(gram))
    if total <= 0.0:
        raise LandscapeError("every checkpoint is the same point; the path does not move")
    # Below this the Gram eigenvalue is rounding noise and its direction is arbitrary.
    if float(evals[n - 1]) <= 1e-12 * float(evals[0]):
        raise LandscapeError(
            f"the path spans fewer than {n} dimensions; ask for fewer PCA directions"
        )
    sing = evals[:n].sqrt()
    flat_dirs = (rows.T @ (centring @ evecs[:, :n])) / sing  # (P, n): right singular vectors
    flat_dirs = flat_dirs / flat_dirs.norm(dim=0)  # undo the rounding of the Gram route
    first = rows[0] @ flat_dirs
    flat_dirs = flat_dirs * torch.where(first < 0, -1.0, 1.0)
    directions = [unflatten(flat_dirs[:, i], final, names) for i in range(n)]
    ratios = (evals[:n] / total).cpu().numpy()
    return directions, ratios


def _direction_matrix(
    directions: Sequence[Weights], final: Weights, names: Sequence[str]
) -> torch.Tensor:
    """Directions as the columns of a float64 (P, k) matrix; parallel ones are refused."""
    if not directions:
        raise LandscapeError("no directions given; pass at least one direction")
    device = final[names[0]].device
    columns = [flatten(d, names).to(device=device, dtype=torch.float64) for d in directions]
    mat = torch.stack(columns, dim=1)  # (P, k)
    sv = torch.linalg.svdvals(mat)
    if float(sv[-1]) <= 1e-10 * float(sv[0]):
        raise LandscapeError(
            "the directions are parallel (or zero) on the selected weights; "
            "pass linearly independent directions"
        )
    return mat


def project_path(
    path: Sequence[Weights],
    final: Weights,
    directions: Sequence[Weights],
    ignore: str = "biasbn",
) -> np.ndarray:
    """Coordinates (T, k) of each checkpoint in the plane of ``directions`` (k of them).

    Each row solves ``D c = w_t - w_final`` in the least-squares sense, with the directions as
    the columns of D; unlike dot products this is right for non-orthogonal directions too.
    Checkpoints are solved one at a time so memory stays at one (P, k) matrix.
    """
    names = select_names(final, ignore)
    mat = _direction_matrix(directions, final, names)
    coords = [
        torch.linalg.lstsq(mat, _difference(w, final, names).unsqueeze(1)).solution.squeeze(1)
        for w in path
    ]
    if not coords:
        return np.zeros((0, mat.shape[1]))
    return torch.stack(coords).cpu().numpy()


def path_residual(
    path: Sequence[Weights],
    final: Weights,
    directions: Sequence[Weights],
    coords: np.ndarray,
    ignore: str = "biasbn",
) -> np.ndarray:
    """Relative part of each checkpoint the plane misses: ``||w_t - w_f - D c_t|| / ||w_t - w_f||``.

    0 means the plotted point is the checkpoint; near 1 means the plot says little about it.
    A checkpoint equal to the final weights has residual 0 by definition.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape != (len(path), len(directions)):
        raise LandscapeError(
            f"coords of shape {coords.shape} do not match {len(path)} checkpoints and "
            f"{len(directions)} directions; pass the output of project_path"
        )
    names = select_names(final, ignore)
    mat = _direction_matrix(directions, final, names)
    c = torch.as_tensor(coords, dtype=torch.float64, device=mat.device)
    out = np.zeros(len(path))
    for t, w in enumerate(path):
        diff = _difference(w, final, names)
        norm = float(diff.norm())
        if norm > 0.0:
            out[t] = float((diff - mat @ c[t]).norm()) / norm
    return out


def plot_range(
    coords: np.ndarray, margin: float = 0.2
) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y ranges covering the path and the origin, widened by ``margin`` of each span."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise LandscapeError(
            f"coords must have shape (T, 2), got {coords.shape}; pass the output of project_path"
        )
    if margin < 0:
        raise LandscapeError(f"margin must be >= 0, got {margin}")
    finite = coords[np.isfinite(coords).all(axis=1)]
    ranges = []
    for axis in range(2):
        # Including 0 keeps the final weights (the origin) on the plot.
        lo = min(0.0, float(finite[:, axis].min())) if len(finite) else 0.0
        hi = max(0.0, float(finite[:, axis].max())) if len(finite) else 0.0
        # A path that never leaves this axis still needs a range a plot can show.
        pad = margin * (hi - lo) if hi > lo else 1.0
        ranges.append((lo - pad, hi + pad))
    return ranges[0], ranges[1]
