"""Tests for landscape.trajectory: a planted 2-D path is found, projected and reconstructed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.errors import LandscapeError
from landscape.trajectory import (
    flatten,
    path_residual,
    pca_directions,
    plot_range,
    project_path,
    select_names,
    unflatten,
)

# 1800 + 200 = 2000 selected weights, plus two 1-D tensors that "biasbn" ignores.
SHAPES = {
    "conv.weight": (20, 10, 3, 3),
    "bn.weight": (20,),
    "fc.weight": (10, 20),
    "fc.bias": (10,),
}
NAMES = ["conv.weight", "fc.weight"]
T = 25


def _spiral() -> tuple[np.ndarray, np.ndarray]:
    """a_t, b_t of a spiral that winds into the origin (the final weights) at t = T - 1."""
    t = np.linspace(0.0, 1.0, T)
    radius = 3.0 * (1.0 - t) ** 1.5
    return radius * np.cos(5 * t), radius * np.sin(5 * t)


def _planted(noise: float = 1e-7, seed: int = 0) -> dict:
    """w_t = w_final + a_t u + b_t v (+ noise) on the selected weights; 1-D tensors wander."""
    gen = torch.Generator().manual_seed(seed)
    final = {n: torch.randn(s, generator=gen, dtype=torch.float64) for n, s in SHAPES.items()}
    basis, _ = torch.linalg.qr(torch.randn(2000, 3, generator=gen, dtype=torch.float64))
    u, v, w = basis.T
    a, b = _spiral()
    flat_final = flatten(final, NAMES)
    path = []
    for t in range(T):
        flat = flat_final + a[t] * u + b[t] * v
        if t < T - 1:
            flat = flat + noise * torch.randn(2000, generator=gen, dtype=torch.float64)
        point = unflatten(flat, final, NAMES)
        for n in ("bn.weight", "fc.bias"):  # large moves the plane must not see
            point[n] = final[n] + torch.randn(SHAPES[n], generator=gen, dtype=torch.float64)
        path.append(point)
    as_dict = lambda vec: unflatten(vec, final, NAMES)  # noqa: E731
    return {"final": final, "path": path, "u": u, "v": v, "w": w, "a": a, "b": b, "d": as_dict}


def test_pca_recovers_the_planted_plane() -> None:
    case = _planted()
    dirs, ratios = pca_directions(case["path"], case["final"])
    assert len(dirs) == 2 and ratios.shape == (2,)
    mat = torch.stack([flatten(d, NAMES) for d in dirs], dim=1)  # (2000, 2)
    torch.testing.assert_close(mat.T @ mat, torch.eye(2, dtype=torch.float64))
    overlap = mat.T @ torch.stack([case["u"], case["v"]], dim=1)
    # |det| = product of the cosines of the principal angles between the two planes.
    assert abs(float(torch.linalg.det(overlap))) == pytest.approx(1.0, abs=1e-9)
    assert ratios.sum() == pytest.approx(1.0, abs=1e-9)
    assert ratios[0] >= ratios[1] > 0


def test_ignored_tensors_get_zero_directions_of_the_right_shape() -> None:
    case = _planted()
    dirs, _ = pca_directions(case["path"], case["final"], n=1)
    assert list(dirs[0]) == list(SHAPES)
    for n, shape in SHAPES.items():
        assert dirs[0][n].shape == shape
    assert not dirs[0]["bn.weight"].any() and not dirs[0]["fc.bias"].any()
    assert dirs[0]["conv.weight"].any()


def test_ignore_none_sees_the_wandering_biases() -> None:
    case = _planted()
    dirs, ratios = pca_directions(case["path"], case["final"], ignore="none")
    assert dirs[0]["fc.bias"].any()
    # The random moves of the 1-D tensors are not in any 2-D plane.
    assert ratios.sum() < 0.99


def test_project_path_reconstructs_the_spiral() -> None:
    case = _planted()
    dirs, _ = pca_directions(case["path"], case["final"])
    coords = project_path(case["path"], case["final"], dirs)
    assert coords.shape == (T, 2)
    # PCA fixes the plane, not the axes: compare rotation-invariant quantities.
    radius = np.hypot(case["a"], case["b"])
    np.testing.assert_allclose(np.linalg.norm(coords, axis=1), radius, atol=1e-5)
    mat = torch.stack([flatten(d, NAMES) for d in dirs], dim=1)
    for t, w in enumerate(case["path"]):
        diff = flatten(w, NAMES) - flatten(case["final"], NAMES)
        recon = mat @ torch.as_tensor(coords[t])
        assert float((diff - recon).norm()) <= 1e-5
    np.testing.assert_allclose(coords[-1], 0.0, atol=1e-12)
    assert (coords[0] >= 0).all()  # the sign convention of pca_directions


def test_project_path_handles_non_orthogonal_directions() -> None:
    case = _planted(noise=0.0)
    u, v = case["u"], case["v"]
    dirs = [case["d"](u), case["d"](u + v)]
    coords = project_path(case["path"], case["final"], dirs)
    # a u + b v = (a - b) u + b (u + v)
    expected = np.stack([case["a"] - case["b"], case["b"]], axis=1)
    np.testing.assert_allclose(coords, expected, atol=1e-10)
    residual = path_residual(case["path"], case["final"], dirs, coords)
    np.testing.assert_allclose(residual, 0.0, atol=1e-10)


def test_path_residual_is_small_in_plane_and_one_off_it() -> None:
    case = _planted()
    dirs, _ = pca_directions(case["path"], case["final"])
    coords = project_path(case["path"], case["final"], dirs)
    residual = path_residual(case["path"], case["final"], dirs, coords)
    assert residual.shape == (T,)
    assert residual[-1] == 0.0  # the final point, by definition
    # What the plane misses is the planted noise, about 1e-7 * sqrt(2000) in norm.
    for t, w in enumerate(case["path"][:-1]):
        dist = float((flatten(w, NAMES) - flatten(case["final"], NAMES)).norm())
        assert residual[t] * dist < 1e-7 * math.sqrt(2000) * 1.5
    assert residual[0] < 1e-5
    # A path along the third basis vector, orthogonal to the plane, is missed entirely.
    final = case["final"]
    off = [case["d"](flatten(final, NAMES) + s * case["w"]) for s in (1.0, -2.0)]
    for point in off:
        for n in ("bn.weight", "fc.bias"):
            point[n] = final[n]
    off_coords = project_path(off, final, dirs)
    # Not exactly 0: the PCA plane carries a trace of the planted noise.
    np.testing.assert_allclose(off_coords, 0.0, atol=1e-6)
    np.testing.assert_allclose(path_residual(off, final, dirs, off_coords), 1.0, rtol=1e-9)


def test_trajectory_mistakes_raise_landscape_error() -> None:
    case = _planted()
    final, path = case["final"], case["path"]
    with pytest.raises(LandscapeError, match="at least 2 checkpoints"):
        pca_directions(path[:1], final)
    with pytest.raises(LandscapeError, match="does not move"):
        pca_directions([final, final], final)
    with pytest.raises(LandscapeError, match="fewer than 2"):
        pca_directions([path[0], final], final)
    parallel = [case["d"](case["u"]), case["d"](2 * case["u"])]
    with pytest.raises(LandscapeError, match="parallel"):
        project_path(path, final, parallel)
    with pytest.raises(LandscapeError, match="coords"):
        path_residual(path, final, parallel[:1], np.zeros((3, 1)))
    with pytest.raises(LandscapeError, match="fc.weight"):
        flatten({"conv.weight": final["conv.weight"]}, NAMES)


def test_select_names() -> None:
    weights = {
        "conv.weight": torch.zeros(2, 3, 3, 3),
        "conv.bias": torch.zeros(2),
        "bn.num_batches_tracked": torch.tensor(0),
        "fc.weight": torch.zeros(4, 2),
    }
    assert select_names(weights) == ["conv.weight", "fc.weight"]
    assert select_names(weights, "none") == ["conv.weight", "conv.bias", "fc.weight"]
    with pytest.raises(LandscapeError, match="choose from: biasbn, none"):
        select_names(weights, "bias")
    with pytest.raises(LandscapeError, match="ignore='none'"):
        select_names({"b": torch.zeros(3)})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=4))
def test_flatten_unflatten_round_trip(shapes: list[list[int]]) -> None:
    gen = torch.Generator().manual_seed(len(shapes))
    weights = {f"t{i}": torch.randn(*s, generator=gen) for i, s in enumerate(shapes)}
    names = list(weights)[::-1]  # any order of names works
    vec = flatten(weights, names)
    assert vec.numel() == sum(math.prod(s) for s in shapes)
    back = unflatten(vec, weights, names)
    for n in weights:
        assert torch.equal(back[n], weights[n])
        assert back[n].data_ptr() != vec.data_ptr()


def test_plot_range_covers_path_and_origin() -> None:
    coords = np.array([[1.0, -2.0], [3.0, -1.0], [2.0, -1.5]])
    (x0, x1), (y0, y1) = plot_range(coords, margin=0.2)
    assert (x0, x1) == pytest.approx((-0.6, 3.6))  # span [0, 3] widened by 0.6
    assert (y0, y1) == pytest.approx((-2.4, 0.4))  # span [-2, 0] widened by 0.4
    (x0, x1), (y0, y1) = plot_range(np.zeros((4, 2)))
    assert x0 < 0 < x1 and y0 < 0 < y1
    with pytest.raises(LandscapeError, match="margin"):
        plot_range(coords, margin=-1)
    with pytest.raises(LandscapeError, match=r"\(T, 2\)"):
        plot_range(np.zeros((4, 3)))


def test_explained_variance_is_the_papers_code_s() -> None:
    """The paper's code takes scikit-learn's PCA of the differences, which centres them."""
    from sklearn.decomposition import PCA

    p = _planted(noise=1e-2)
    dirs, ratios = pca_directions(p["path"], p["final"], n=2)
    rows = np.stack([(flatten(w, NAMES) - flatten(p["final"], NAMES)).numpy() for w in p["path"]])
    reference = PCA(n_components=2).fit(rows)
    np.testing.assert_allclose(ratios, reference.explained_variance_ratio_, rtol=1e-6)
    for d, component in zip(dirs, reference.components_, strict=True):
        assert abs(float(flatten(d, NAMES).numpy() @ component)) == pytest.approx(1.0, abs=1e-6)
