"""Tests for landscape.hessian: HVPs, Lanczos and Hutchinson agree with a dense Hessian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import LandscapeError
from landscape.hessian import (
    dense_hessian,
    hessian_extremes,
    hutchinson_trace,
    hvp,
    lanczos,
)
from landscape.trajectory import flatten, select_names


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Linear(4,3) -> tanh -> Linear(3,2) in float64 (23 parameters) on random 2-class data."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    x = torch.randn(37, 4, dtype=torch.float64)
    y = torch.randint(0, 2, (37,))
    return model, x, y


def _random_like(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        n: torch.randn(p.shape, generator=gen, dtype=p.dtype) for n, p in model.named_parameters()
    }


def test_hvp_matches_dense_hessian_with_uneven_batches() -> None:
    model, x, y = _tiny()
    names = select_names(dict(model.named_parameters()), "none")
    dense = dense_hessian(model, F.cross_entropy, x, y)
    v = _random_like(model, 1)
    # 37 samples in batches of 8: the last batch is short, so batch weighting matters.
    hv = hvp(model, F.cross_entropy, x, y, None, v, batch_size=8)
    torch.testing.assert_close(flatten(hv, names), dense @ flatten(v, names))
    assert dense.shape == (23, 23)
    torch.testing.assert_close(dense, dense.T)


def test_hvp_on_a_subset_is_the_matching_block() -> None:
    model, x, y = _tiny()
    names = select_names(dict(model.named_parameters()), "none")
    dense = dense_hessian(model, F.cross_entropy, x, y)
    v = _random_like(model, 2)
    hv = hvp(model, F.cross_entropy, x, y, ["0.weight"], v)
    assert list(hv) == ["0.weight"]
    block = dense[:12, :12]  # 0.weight is first in flatten order, 3*4 entries
    assert names[0] == "0.weight"
    torch.testing.assert_close(hv["0.weight"].reshape(-1), block @ v["0.weight"].reshape(-1))


def test_dense_hessian_biasbn_drops_bias_rows() -> None:
    model, x, y = _tiny()
    full = dense_hessian(model, F.cross_entropy, x, y, ignore="none")
    weights_only = dense_hessian(model, F.cross_entropy, x, y, ignore="biasbn")
    # 0.weight (12) then 2.weight (6); in the full order 0.bias (3) sits between them.
    keep = list(range(12)) + list(range(15, 21))
    torch.testing.assert_close(weights_only, full[keep][:, keep])


def test_lanczos_matches_eigvalsh_on_a_matrix() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    sym = a + a.T
    evals = torch.linalg.eigvalsh(sym)
    full = lanczos(lambda q: sym @ q, 40, iters=40)
    assert full.lambda_max == pytest.approx(float(evals[-1]), rel=1e-8)
    assert full.lambda_min == pytest.approx(float(evals[0]), rel=1e-8)
    # Few iterations: Ritz values lie inside the spectrum (interlacing).
    five = lanczos(lambda q: sym @ q, 40, iters=5)
    assert evals[0] - 1e-9 <= five.lambda_min <= five.lambda_max <= evals[-1] + 1e-9


def test_lanczos_stops_on_breakdown_and_is_deterministic() -> None:
    # Three distinct eigenvalues: the Krylov space is invariant after 3 steps.
    diag = torch.tensor([1.0, 1.0, 2.0, 2.0, 5.0, 5.0], dtype=torch.float64)
    calls: list[int] = []

    def matvec(q: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return diag * q

    result = lanczos(matvec, 6, iters=30, seed=7)
    assert (result.lambda_max, result.lambda_min) == pytest.approx((5.0, 1.0), rel=1e-10)
    assert result.steps == 3 and result.residual == 0.0
    assert len(calls) == 3
    assert lanczos(matvec, 6, iters=30, seed=7) == result


def _trained_like_spectrum(lambda_min: float, n: int = 800) -> torch.Tensor:
    """A symmetric matrix with a trained net's kind of spectrum: a few large eigenvalues, a bulk
    in [0, 8] and one small negative eigenvalue."""
    gen = torch.Generator().manual_seed(0)
    top = torch.tensor([100.0, 60.0, 30.0, lambda_min], dtype=torch.float64)
    evals = torch.cat([top, 8 * torch.rand(n - 4, generator=gen, dtype=torch.float64)])
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (basis * evals) @ basis.T


@pytest.mark.parametrize("lambda_min", [-0.3, -3.0, -10.0])
def test_lanczos_tolerance_finds_the_lone_negative_eigenvalue(lambda_min: float) -> None:
    sym = _trained_like_spectrum(lambda_min)
    for seed in range(3):
        r = lanczos(lambda q: sym @ q, sym.shape[0], seed=seed)  # the defaults
        assert 20 <= r.steps <= 100 and r.residual <= 1e-3
        assert abs(r.lambda_max - 100.0) <= 1e-3 * 100
        # The ratio map's number: close to the truth, not a convex-looking 0.
        assert abs(r.lambda_min / r.lambda_max) == pytest.approx(-lambda_min / 100, abs=1e-3)


def test_lanczos_stops_at_its_tolerance_after_its_minimum_steps() -> None:
    sym = _trained_like_spectrum(-0.3)
    loose = lanczos(lambda q: sym @ q, 800, iters=400, tol=1e-2)
    tight = lanczos(lambda q: sym @ q, 800, iters=400, tol=1e-8)
    assert loose.steps == 20 and loose.residual <= 1e-2
    assert 20 < tight.steps < 400 and tight.residual <= 1e-8
    few = lanczos(lambda q: sym @ q, 800, iters=5, tol=1e-2)
    assert few.steps == 5 and few.residual > 1e-2  # cut short, and it says so
    assert lanczos(lambda q: sym @ q, 800, iters=400, tol=1e-8) == tight
    with pytest.raises(LandscapeError, match="tolerance"):
        lanczos(lambda q: q, 3, tol=-1.0)


def test_hessian_extremes_match_dense_spectrum() -> None:
    model, x, y = _tiny()
    evals = torch.linalg.eigvalsh(dense_hessian(model, F.cross_entropy, x, y, ignore="none"))
    out = hessian_extremes(model, F.cross_entropy, x, y, ignore="none", iters=23)
    scale = float(evals.abs().max())
    assert abs(out["lambda_max"] - float(evals[-1])) <= 1e-3 * scale
    assert abs(out["lambda_min"] - float(evals[0])) <= 1e-3 * scale
    if out["lambda_min"] < 0:
        assert out["ratio"] == pytest.approx(abs(out["lambda_min"] / out["lambda_max"]))
    else:
        assert out["ratio"] == 0.0
    assert set(out) == {"lambda_max", "lambda_min", "ratio", "lanczos_steps", "lanczos_residual"}
    assert 1 <= out["lanczos_steps"] <= 23


def test_hessian_extremes_biasbn_matches_weight_block() -> None:
    model, x, y = _tiny()
    evals = torch.linalg.eigvalsh(dense_hessian(model, F.cross_entropy, x, y, ignore="biasbn"))
    out = hessian_extremes(model, F.cross_entropy, x, y, iters=18, batch_size=10)
    scale = float(evals.abs().max())
    assert abs(out["lambda_max"] - float(evals[-1])) <= 1e-3 * scale
    assert abs(out["lambda_min"] - float(evals[0])) <= 1e-3 * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_regression_is_locally_convex(seed: int) -> None:
    torch.manual_seed(seed)
    model = nn.Linear(5, 2).double()
    with torch.no_grad():  # a random point, far from the optimum
        for p in model.parameters():
            p.mul_(10 * (seed + 1))
    x = torch.randn(50, 5, dtype=torch.float64)
    y = torch.randn(50, 2, dtype=torch.float64)
    out = hessian_extremes(model, F.mse_loss, x, y, ignore="none", iters=12)
    assert out["lambda_min"] >= -1e-8
    assert out["lambda_max"] > 0
    assert out["ratio"] == 0.0


def test_hutchinson_trace_within_three_standard_errors() -> None:
    model, x, y = _tiny()
    for ignore in ("none", "biasbn"):
        exact = float(torch.trace(dense_hessian(model, F.cross_entropy, x, y, ignore=ignore)))
        est, err = hutchinson_trace(model, F.cross_entropy, x, y, ignore=ignore, samples=40)
        assert err > 0
        assert abs(est - exact) <= 3 * err
    again = hutchinson_trace(model, F.cross_entropy, x, y, ignore="biasbn", samples=40)
    assert again == (est, err)


def test_calls_leave_the_model_as_found() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).double()
    model.train()
    model[3].eval()  # a mixed state must survive too
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    before = {k: t.clone() for k, t in model.state_dict().items()}
    hvp(model, F.cross_entropy, x, y, None, _random_like(model, 0), batch_size=7)
    hessian_extremes(model, F.cross_entropy, x, y, iters=5)
    hutchinson_trace(model, F.cross_entropy, x, y, samples=3)
    dense_hessian(model, F.cross_entropy, x, y)
    after = model.state_dict()
    for k, t in before.items():  # weights and BN running statistics
        assert torch.equal(after[k], t), k
    assert model.training and model[1].training and not model[3].training
    assert all(p.grad is None for p in model.parameters())


def test_eval_mode_bn_hessian_is_batch_size_independent() -> None:
    # In eval mode BN is a fixed affine map, so the mean-loss Hessian cannot depend on batching.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(24, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (24,))
    v = _random_like(model, 5)
    small = hvp(model, F.cross_entropy, x, y, None, v, batch_size=5)
    whole = hvp(model, F.cross_entropy, x, y, None, v, batch_size=24)
    for n in small:
        torch.testing.assert_close(small[n], whole[n])


def test_user_mistakes_raise_landscape_error() -> None:
    model, x, y = _tiny()
    v = _random_like(model, 0)
    with pytest.raises(LandscapeError, match="0.weight"):
        hvp(model, F.cross_entropy, x, y, None, {k: t for k, t in v.items() if k != "0.weight"})
    with pytest.raises(LandscapeError, match="nope"):
        hvp(model, F.cross_entropy, x, y, ["nope"], v)
    with pytest.raises(LandscapeError, match="batch_size"):
        hvp(model, F.cross_entropy, x, y, None, v, batch_size=0)
    with pytest.raises(LandscapeError, match="iterations"):
        lanczos(lambda q: q, 3, iters=0)
    with pytest.raises(LandscapeError, match="samples"):
        hutchinson_trace(model, F.cross_entropy, x, y, samples=1)
    with pytest.raises(LandscapeError, match="ignore"):
        hessian_extremes(model, F.cross_entropy, x, y, ignore="bias")
