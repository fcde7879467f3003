"""Curvature of the loss: Hessian-vector products, Lanczos extreme eigenvalues, Hutchinson trace.

Li et al. (2018, Sec. 6 and Fig. 7) map ``|lambda_min / lambda_max|`` of the Hessian over a
surface to show where the landscape is locally convex; this module computes those numbers
without ever forming the Hessian, except in ``dense_hessian`` which is for tiny models and tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from .errors import LandscapeError
from .trajectory import flatten, select_names, unflatten

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MatVec = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run in eval mode (BatchNorm uses, and does not update, its running statistics).

    Every submodule's own flag is restored afterwards, so a model left in a mixed state stays so.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def _trainable(model: nn.Module, ignore: str) -> list[str]:
    """Names of the parameters that require grad and survive ``ignore``."""
    live = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not live:
        raise LandscapeError("the model has no parameters that require grad; unfreeze some")
    return select_names(live, ignore)


def _batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """Mini-batches on ``device`` with their share of the whole set (size / N)."""
    if batch_size < 1:
        raise LandscapeError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    if n == 0 or len(y) != n:
        raise LandscapeError(
            f"need as many targets as inputs and at least one of each, got {n} and {len(y)}"
        )
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        yield xb, yb, len(xb) / n


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Sequence[str] | None,
    v: dict[str, torch.Tensor],
    batch_size: int = 512,
) -> dict[str, torch.Tensor]:
    """Hessian of the mean loss over (x, y) times ``v``, for the named parameters.

    ``params`` defaults to every parameter that requires grad. The product is taken by double
    backward on each mini-batch, weighted by the batch's share of the data, so the result is
    that of the full-set mean loss. The model runs in eval mode and is left as it was found;
    its ``.grad`` fields are not touched.
    """
    named = dict(model.named_parameters())
    names = list(params) if params is not None else [n for n, p in named.items() if p.requires_grad]
    for n in names:
        if n not in named:
            raise LandscapeError(f"model has no parameter {n!r}; use names from named_parameters()")
        if not named[n].requires_grad:
            raise LandscapeError(f"parameter {n!r} is frozen (requires_grad=False); leave it out")
        if n not in v or v[n].shape != named[n].shape:
            got = tuple(v[n].shape) if n in v else "nothing"
            raise LandscapeError(
                f"vector for {n!r} has shape {got}, expected {tuple(named[n].shape)}; "
                "give v one tensor per parameter, shaped like it"
            )
    if not names:
        raise LandscapeError("no parameters to differentiate; pass params or unfreeze some")
    tensors = [named[n] for n in names]
    vecs = [v[n].to(dtype=p.dtype, device=p.device) for n, p in zip(names, tensors, strict=True)]
    out = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in tensors]
    with _eval_mode(model):
        for xb, yb, share in _batches(x, y, batch_size, tensors[0].device):
            loss = loss_fn(model(xb), yb)
            grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
            dot = sum(
                ((g * u).sum() for g, u in zip(grads, vecs, strict=True) if g is not None),
                start=torch.zeros((), dtype=loss.dtype, device=loss.device),
            )
            # A loss linear in the parameters has a gradient that does not depend on them.
            if not dot.requires_grad:
                continue
            hv = torch.autograd.grad(dot, tensors, allow_unused=True)
            for acc, h in zip(out, hv, strict=True):
                if h is not None:
                    acc.add_(h.detach(), alpha=share)
    return dict(zip(names, out, strict=True))


# Lanczos steps at most, relative residual to stop at, and steps before the residual is trusted:
# the defaults of the Hessian estimates here and of a config's `hessian` section.
LANCZOS_ITERS = 100
LANCZOS_TOL = 1e-3
LANCZOS_MIN_STEPS = 20


@dataclass(frozen=True)
class Lanczos:
    """Extreme Ritz values after ``steps`` Lanczos steps, and how well they have settled.

    ``residual`` is the larger of the two Ritz pairs' residual norms ``||H v - theta v||`` over
    the spectrum's scale ``max(|lambda_max|, |lambda_min|)``: each Ritz value lies within that
    fraction of the scale of an eigenvalue of H (Ritz values lie inside the spectrum). Whether
    that eigenvalue is the extreme one is not something a residual can tell; see ``lanczos``.
    """

    lambda_max: float
    lambda_min: float
    steps: int
    residual: float


def lanczos(
    matvec: MatVec,
    dim: int,
    iters: int = LANCZOS_ITERS,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    tol: float = LANCZOS_TOL,
    min_steps: int = LANCZOS_MIN_STEPS,
) -> Lanczos:
    """Largest and smallest Ritz values of a symmetric operator after at most ``iters`` Lanczos
    steps, stopping once both have a relative residual of at most ``tol`` after at least
    ``min_steps`` steps.

    Full re-orthogonalization (done twice, which suffices in floating point) keeps the basis
    orthonormal, so no spurious copies of converged eigenvalues appear. Stops early when the
    Krylov space becomes invariant; with ``iters >= dim`` the result is the exact spectrum's
    extremes up to rounding. The start vector is drawn on the CPU from ``seed``, so the result
    does not depend on the device. A small negative ``lambda_min`` beside a large
    ``lambda_max`` (a trained net's Hessian) converges slowly: ``tol`` spends the steps it needs.
    A residual only says that a Ritz value is near *some* eigenvalue: in the first steps the
    smallest one settles near the bulk of a trained net's spectrum before Lanczos has found a
    lone negative eigenvalue below it, hence ``min_steps`` before the residual is trusted.
    """
    if dim < 1:
        raise LandscapeError(f"dimension must be >= 1, got {dim}")
    if iters < 1:
        raise LandscapeError(f"Lanczos iterations must be >= 1, got {iters}")
    if not tol >= 0.0:
        raise LandscapeError(f"Lanczos tolerance must be >= 0, got {tol}")
    steps = min(iters, dim)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=dtype).to(device)
    q = q / q.norm()
    basis = torch.zeros(steps, dim, dtype=dtype, device=q.device)  # (steps, dim)
    alphas: list[float] = []
    betas: list[float] = []
    # Relative size of the residual below which the Krylov space counts as invariant.
    invariant = math.sqrt(torch.finfo(dtype).eps)
    scale = 0.0
    for j in range(steps):
        basis[j] = q
        w = matvec(q).to(dtype=dtype, device=q.device).reshape(-1)
        if w.numel() != dim:
            raise LandscapeError(f"matvec returned {w.numel()} values for a {dim}-vector")
        alpha = float(q @ w)
        alphas.append(alpha)
        active = basis[: j + 1]
        for _ in range(2):
            w = w - active.T @ (active @ w)
        beta = float(w.norm())
        scale = max(scale, abs(alpha), beta)
        if beta <= invariant * scale:
            beta = 0.0
        top, bottom, residual = _ritz_extremes(alphas, betas, beta)
        if j == steps - 1 or beta == 0.0 or (j + 1 >= min_steps and residual <= tol):
            return Lanczos(top, bottom, j + 1, residual)
        betas.append(beta)
        q = w / beta
    raise AssertionError("unreachable: the loop returns at its last step")


def _ritz_extremes(
    alphas: list[float], betas: list[float], beta: float
) -> tuple[float, float, float]:
    """The tridiagonal's extreme eigenvalues and their larger relative residual bound
    ``beta * |last component of the Ritz vector|`` (beta: the next off-diagonal)."""
    tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        tri = tri + torch.diag(off, 1) + torch.diag(off, -1)
    ritz, vecs = torch.linalg.eigh(tri)
    top, bottom = float(ritz[-1]), float(ritz[0])
    spread = max(abs(top), abs(bottom))
    bound = beta * float(max(vecs[-1, -1].abs(), vecs[-1, 0].abs()))
    residual = 0.0 if bound == 0.0 else (bound / spread if spread > 0 else math.inf)
    return top, bottom, residual


def _flat_hvp(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    names: list[str],
    batch_size: int,
) -> MatVec:
    """The Hessian over the named parameters as a map of flat float64 vectors."""
    like = {n: p for n, p in model.named_parameters() if n in names}

    def matvec(vec: torch.Tensor) -> torch.Tensor:
        hv = hvp(model, loss_fn, x, y, names, unflatten(vec, like, names), batch_size)
        return flatten(hv, names).to(torch.float64)

    return matvec


def hessian_extremes(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    ignore: str = "biasbn",
    iters: int = LANCZOS_ITERS,
    seed: int = 0,
    batch_size: int = 512,
    tol: float = LANCZOS_TOL,
) -> dict[str, float]:
    """``lambda_max``, ``lambda_min`` and the paper's ``ratio`` for the Hessian at the model.

    ``ratio`` is ``|lambda_min / lambda_max|`` when ``lambda_min < 0`` and 0.0 otherwise, so 0
    marks a locally convex point (Fig. 7). If ``lambda_max`` is 0 too, the ratio is ``inf``.
    Lanczos takes at most ``iters`` steps and stops once both values are within ``tol`` of the
    spectrum's scale; ``lanczos_steps`` and ``lanczos_residual`` say how it ended (see
    ``Lanczos``).
    """
    names = _trainable(model, ignore)
    params = dict(model.named_parameters())
    dim = sum(params[n].numel() for n in names)
    matvec = _flat_hvp(model, loss_fn, x, y, names, batch_size)
    r = lanczos(matvec, dim, iters, seed, device=params[names[0]].device, tol=tol)
    lmax, lmin = r.lambda_max, r.lambda_min
    if lmin >= 0.0:
        ratio = 0.0
    elif lmax == 0.0:
        ratio = math.inf
    else:
        ratio = abs(lmin / lmax)
    return {
        "lambda_max": lmax,
        "lambda_min": lmin,
        "ratio": ratio,
        "lanczos_steps": float(r.steps),
        "lanczos_residual": r.residual,
    }


def hutchinson_trace(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    ignore: str = "biasbn",
    samples: int = 20,
    seed: int = 0,
    batch_size: int = 512,
) -> tuple[float, float]:
    """Hutchinson's estimate of trace(H) and its standard error, from Rademacher probes z.

    Each probe gives ``z^T H z``, an unbiased draw of the trace; the error is the sample
    standard deviation over sqrt(samples).
    """
    if samples < 2:
        raise LandscapeError(f"samples must be >= 2 to give an error estimate, got {samples}")
    names = _trainable(model, ignore)
    params = dict(model.named_parameters())
    dim = sum(params[n].numel() for n in names)
    matvec = _flat_hvp(model, loss_fn, x, y, names, batch_size)
    gen = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(samples):
        z = torch.randint(0, 2, (dim,), generator=gen).to(torch.float64) * 2.0 - 1.0
        z = z.to(params[names[0]].device)
        draws.append(float(z @ matvec(z)))
    values = torch.tensor(draws, dtype=torch.float64)
    return float(values.mean()), float(values.std() / math.sqrt(samples))


def dense_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    ignore: str = "none",
) -> torch.Tensor:
    """The full (P, P) Hessian of the mean loss over the chosen parameters; tiny models only.

    Built by ``torch.autograd.functional.hessian`` on a functional call of the model, a route
    independent of ``hvp``, so the two can check each other. Rows follow ``flatten`` order.
    """
    names = _trainable(model, ignore)
    like = {n: p for n, p in model.named_parameters() if n in names}
    start = flatten(like, names).detach()

    def loss_of(vec: torch.Tensor) -> torch.Tensor:
        # Differentiable pieces (no copy) so the Hessian flows back to ``vec``.
        pieces, offset = {}, 0
        for n in names:
            size = like[n].numel()
            pieces[n] = vec[offset : offset + size].reshape(like[n].shape)
            offset += size
        return loss_fn(functional_call(model, pieces, (x.to(vec.device),)), y.to(vec.device))

    with _eval_mode(model):
        hess = torch.autograd.functional.hessian(loss_of, start)
    return hess.detach()
