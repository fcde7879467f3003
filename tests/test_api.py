"""Tests for the Python API (landscape.api): the same numbers as the CLI, any data form, files.

The must-show test: for one checkpoint, data, seed and grid, `loss_surface` gives the surface
`landscape surface` writes, value for value.
"""

from __future__ import annotations

import copy
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import landscape
from landscape import storage
from landscape.checkpoint import save_checkpoint
from landscape.data import dataset_to_tensors, eval_dataset
from landscape.errors import LandscapeError
from landscape.surface import compute_surface

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = Path(__file__).resolve().parents[1]
GRID = {"x": [-1, 1, 5], "y": [-1, 1, 3]}


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).eval()


def _data(n: int = 48, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


@torch.no_grad()
def _ce(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float(F.cross_entropy(model(x), y))


# ----------------------------------------------------------------------------- API == CLI


def test_api_surface_equals_the_cli_surface_value_for_value(
    make_config: Callable[..., Any],
) -> None:
    cfg = make_config(surface={**GRID, "splits": ["train", "test"], "samples": 32})
    cli = storage.read_surface(compute_surface(cfg))

    model = landscape.load_model(cfg.final_checkpoint)
    data = {}
    for split in ("train", "test"):
        ds = eval_dataset(cfg.data, split)
        data[split] = dataset_to_tensors(ds, n=min(32, len(ds)), seed=cfg.data.seed)
    api = landscape.loss_surface(
        model,
        data,
        x=tuple(cfg.surface.x),
        y=tuple(cfg.surface.y),
        seed=cfg.surface.directions.seed,
        batch_size=cfg.surface.batch_size,
        device="cpu",
    )
    assert api.complete and cli.complete
    assert sorted(api.metrics) == sorted(cli.metrics)
    np.testing.assert_array_equal(api.x, cli.x)
    np.testing.assert_array_equal(api.y, cli.y)
    for name in cli.metrics:
        np.testing.assert_array_equal(api.metrics[name], cli.metrics[name])
    stored = storage.read_directions(cfg.surface_path)
    for ours, theirs in zip(api.directions(), stored, strict=True):
        assert ours.keys() == theirs.keys()
        for k in theirs:
            np.testing.assert_array_equal(ours[k].numpy(), theirs[k])

    # The full (64-image) train split with samples=32 picks the rows the config picks.
    full = dataset_to_tensors(eval_dataset(cfg.data, "train"))
    sub = landscape.loss_surface(
        model, full, x=tuple(cfg.surface.x), y=tuple(cfg.surface.y), samples=32,
        data_seed=cfg.data.seed, batch_size=cfg.surface.batch_size, device="cpu",
    )  # fmt: skip
    np.testing.assert_allclose(
        sub.metrics["train_loss"], cli.metrics["train_loss"], rtol=0, atol=1e-7
    )


def test_speed_options_do_not_block_a_resume(make_config: Callable[..., Any]) -> None:
    grid = {"x": [-1, 1, 5], "y": None}
    cfg = make_config(surface=grid)
    path = compute_surface(cfg)
    with h5py.File(path, "r+") as f:
        f["done"][0] = False
    speed = {"engine": {"fold_bn": "off", "points_per_call": 2}, "batch_size": 3}
    fast = make_config(surface={**grid, **speed})
    compute_surface(fast)
    assert storage.read_surface(path).complete
    # A file whose fingerprint holds speed options (as earlier versions wrote) resumes too.
    with h5py.File(path, "r+") as f:
        settings = yaml.safe_load(f.attrs["fingerprint_surface"])
        assert "batch_size" not in settings and "engine" not in settings
        f.attrs["fingerprint_surface"] = yaml.safe_dump({**settings, "batch_size": 1000})
        f["done"][1] = False
    compute_surface(cfg)
    assert storage.read_surface(path).complete
    # Several points per forward call (5 points in calls of 2, 2, 1) give the same values.
    batched = storage.read_surface(compute_surface(fast, path=path.with_name("batched.h5")))
    np.testing.assert_allclose(
        batched.metrics["train_loss"], storage.read_surface(path).metrics["train_loss"], rtol=1e-5
    )


def test_a_file_written_by_the_api_resumes_and_saves_to_the_same_schema(tmp_path: Path) -> None:
    model, (x, y) = _mlp(), _data()
    path = tmp_path / "s.h5"
    first = landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 3), path=path)
    assert first.path == str(path) and storage.read_attrs(path)["schema"] == storage.SCHEMA
    with h5py.File(path, "r+") as f:
        done, loss = f["done"][...], f["train_loss"][...]
        done[0, 1] = done[2, 4] = False
        loss[0, 1] = loss[2, 4] = np.nan
        loss[1, 1] = 123.0  # a point marked done is kept, not recomputed
        f["done"][...], f["train_loss"][...] = done, loss
    resumed = landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 3), path=path)
    assert resumed.complete and resumed.metrics["train_loss"][1, 1] == 123.0
    for idx in ((0, 1), (2, 4)):
        assert resumed.metrics["train_loss"][idx] == first.metrics["train_loss"][idx]
    with pytest.raises(LandscapeError, match=r"\(surface.directions.seed: 0 in the file, 1 now\)"):
        landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 3), seed=1, path=path)

    # In memory, then saved: the same file a run with path= writes, and it resumes as one.
    memory = landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 3))
    assert memory.path is None
    saved = memory.save(tmp_path / "saved.h5")
    again = landscape.Surface.load(saved)
    np.testing.assert_array_equal(again.metrics["train_loss"], first.metrics["train_loss"])
    assert again.directions()[0].keys() == memory.directions()[0].keys()
    resume = landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 3), path=saved)
    np.testing.assert_array_equal(resume.metrics["train_loss"], first.metrics["train_loss"])


def test_a_diverged_loss_is_inf_in_memory_and_in_the_file(tmp_path: Path) -> None:
    # Far out the logits overflow and cross-entropy is NaN: stored as +inf ("diverged"), since
    # NaN in a loss means "not computed".
    model, (x, y) = _mlp(), _data()
    grid = {"x": (-1e30, 1e30, 5), "y": None}
    for path in (None, tmp_path / "far.h5"):
        surf = landscape.loss_surface(model, (x, y), **grid, path=path)  # type: ignore[arg-type]
        loss = surf.metrics["train_loss"]
        assert surf.complete and np.isfinite(loss[2])
        assert np.isposinf(loss[[0, 1, 3, 4]]).all(), loss
        assert np.isfinite(surf.metrics["train_acc"]).all()


def test_saving_one_draw_of_several_keeps_that_draws_directions(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 5)
    path = tmp_path / "two.h5"
    dirs = [[{"w": np.full(3, 10.0 * k + i)} for i in range(2)] for k in range(2)]
    storage.create_surface_file(path, x, x[:3], ["train_loss"], dirs, {"title": "two"})
    with storage.SurfaceWriter(path) as w:
        index = np.nonzero(np.ones((2, 3, 5), dtype=bool))
        w.write({"train_loss": np.arange(30.0)}, index)
    one = landscape.Surface(landscape.Surface.load(path).data.repeat(1))
    saved = landscape.Surface.load(one.save(tmp_path / "draw1.h5"))
    assert saved.data.repeats == 1 and saved.attrs["draw"] == 1
    np.testing.assert_array_equal(saved.metrics["train_loss"], np.arange(15.0, 30.0).reshape(3, 5))
    assert [d["w"][0] for d in saved.directions()] == [10.0, 11.0]


def test_a_bfloat16_models_surface_saves(tmp_path: Path) -> None:
    model, (x, y) = _mlp().to(torch.bfloat16), _data()
    surf = landscape.loss_surface(model, (x.to(torch.bfloat16), y), x=(-1, 1, 3), y=None)
    saved = landscape.Surface.load(surf.save(tmp_path / "bf16.h5"))
    assert saved.complete and saved.directions()[0]["0.weight"].dtype == np.float32


def test_the_state_digest_is_not_called_a_checkpoint_digest(tmp_path: Path) -> None:
    # The CLI's checkpoint_sha256 is a file's sha256; the API digests state_dict tensors.
    model, (x, y) = _mlp(), _data()
    path = tmp_path / "s.h5"
    landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, path=path)
    attrs = storage.read_attrs(path)
    assert "checkpoint_sha256" not in attrs and len(attrs["state_sha256"]) == 64
    with h5py.File(path, "r+") as f:  # as the API wrote it before
        f.attrs["checkpoint_sha256"] = f.attrs["state_sha256"]
        del f.attrs["state_sha256"]
        done = f["done"][...]
        done[1] = False
        f["done"][...] = done
    resumed = landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, path=path)
    assert resumed.complete
    with pytest.raises(LandscapeError, match="other model weights"):
        landscape.loss_surface(_mlp(1), (x, y), x=(-1, 1, 3), y=None, path=path)


# ----------------------------------------------------------------------------- data and losses


class _Pairs(Dataset):
    """A map-style data set that is not a TensorDataset."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]


def test_every_data_form_gives_the_same_surface() -> None:
    model, (x, y) = _mlp(), _data()
    forms: list[Any] = [
        (x, y),
        TensorDataset(x, y),
        _Pairs(x, y),
        DataLoader(_Pairs(x, y), batch_size=7),
        DataLoader(_Pairs(x, y), batch_size=7, shuffle=True),  # read in order all the same
        {"train": (x, y)},
    ]
    results = [landscape.loss_surface(model, f, x=(-1, 1, 3), y=None).metrics for f in forms]
    for r in results[1:]:
        np.testing.assert_array_equal(r["train_loss"], results[0]["train_loss"])
        np.testing.assert_array_equal(r["train_acc"], results[0]["train_acc"])
    assert results[0]["train_loss"][1] == pytest.approx(_ce(model, x, y), rel=1e-6)
    # Named splits are recorded as <split>_<metric>.
    two = landscape.loss_surface(model, {"train": (x, y), "val": (x[:10], y[:10])}, y=None)
    assert set(two.metrics) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert two.metrics["val_loss"][10] == pytest.approx(_ce(model, x[:10], y[:10]), rel=1e-6)


def test_a_list_of_three_coordinates_is_not_read_as_one_point() -> None:
    model, data = _mlp(), _data()
    with pytest.raises(LandscapeError, match=r"x: \[-1, 0, 1\] is \(min, max, num\)"):
        landscape.loss_surface(model, data, x=[-1, 0, 1], y=None)
    assert landscape.loss_surface(model, data, x=(0.5, 0.5, 1), y=None).x.tolist() == [0.5]


def test_a_callable_loss_and_extra_metrics() -> None:
    model, (x, y) = _mlp(), _data()
    named = landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=(-1, 1, 3), batch_size=10)
    custom = landscape.loss_surface(
        model,
        (x, y),
        x=(-1, 1, 3),
        y=(-1, 1, 3),
        batch_size=10,  # uneven last batch: means are weighted by batch size
        loss=lambda out, t: F.cross_entropy(out, t),
        metrics={"sq": lambda out, t: (out**2).mean()},
    )
    np.testing.assert_allclose(custom.metrics["train_loss"], named.metrics["train_loss"], rtol=1e-6)
    np.testing.assert_array_equal(custom.metrics["train_acc"], named.metrics["train_acc"])
    with torch.no_grad():
        assert custom.metrics["train_sq"][1, 1] == pytest.approx(float((model(x) ** 2).mean()))

    # Regression targets: no accuracy, the callable's own mean.
    target = torch.randn(len(x), 3)
    reg = landscape.loss_surface(
        model, (x, target), x=(-1, 1, 3), y=None, loss=lambda o, t: F.mse_loss(o, t)
    )
    assert set(reg.metrics) == {"train_loss"}
    with torch.no_grad():
        assert reg.metrics["train_loss"][1] == pytest.approx(float(F.mse_loss(model(x), target)))


def test_the_users_model_is_left_as_it_was() -> None:
    model, (x, y) = _mlp(), _data()
    model.train()
    before = copy.deepcopy(model.state_dict())
    landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=None, bn="recompute")
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_line_and_plane_from_modules_state_dicts_and_checkpoints(
    tiny_net: nn.Module, tmp_path: Path
) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 1, 8, 8, generator=g), torch.randint(0, 10, (24,), generator=g)
    b, c = copy.deepcopy(tiny_net), copy.deepcopy(tiny_net)
    with torch.no_grad():
        for net, scale in ((b, 0.3), (c, -0.2)):
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.add_(torch.randn(t.shape, generator=g).abs() * scale)
    b_file = save_checkpoint(tmp_path / "b.pt", b, "tiny", {})
    torch.save(c.state_dict(), tmp_path / "c.pt")  # a plain state_dict file

    # By default a line moves every state entry (BN statistics included): it lands exactly on b.
    line = landscape.line_directions(tiny_net, b_file)
    s = landscape.loss_surface(tiny_net, (x, y), x=(0, 1, 2), y=None, directions=line)
    assert s.attrs["dir_kind"] == "line" and s.attrs["dir_type"] == "states"
    assert s.metrics["train_loss"][0] == pytest.approx(_ce(tiny_net, x, y), rel=1e-5)
    assert s.metrics["train_loss"][1] == pytest.approx(_ce(b, x, y), rel=1e-5)

    plane = landscape.plane_directions(tiny_net.state_dict(), b, tmp_path / "c.pt")
    p = landscape.loss_surface(tiny_net, (x, y), x=(0, 1, 2), y=(0, 1, 2), directions=plane)
    assert p.metrics["train_loss"][0, 1] == pytest.approx(_ce(b, x, y), rel=1e-5)  # (x=1, y=0)
    assert p.metrics["train_loss"][1, 0] == pytest.approx(_ce(c, x, y), rel=1e-5)  # (x=0, y=1)
    # With the parameters alone, b's weights carry a's statistics: not b.
    w = landscape.loss_surface(tiny_net, (x, y), x=(0, 1, 2), y=None, directions=line,
                               dir_type="weights")  # fmt: skip
    assert w.metrics["train_loss"][1] != pytest.approx(_ce(b, x, y), rel=1e-3)

    # The line starts at a's buffers too: from b back to a, the origin is b, statistics and all.
    back = landscape.line_directions(b, tiny_net)
    r = landscape.loss_surface(tiny_net, (x, y), x=(0, 1, 2), y=None, directions=back)
    assert r.metrics["train_loss"][0] == pytest.approx(_ce(b, x, y), rel=1e-5)
    # A line needs no y=None: its one direction makes the curve 1D.
    assert repr(back).startswith("DirectionSet(1 direction(s) over ") and "\n" not in repr(back)
    auto = landscape.loss_surface(tiny_net, (x, y), x=(0, 1, 2), directions=back)
    assert auto.data.y is None
    np.testing.assert_array_equal(auto.metrics["train_loss"], r.metrics["train_loss"])


def test_surface_plot_compare_repr_and_the_original_codes_files(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    model, (x, y) = _mlp(), _data()
    surf = landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 3))
    text = repr(surf)
    assert text.startswith("Surface(x=[-1, 1] (5), y=[-1, 1] (3); 15/15 points; train_loss ")
    assert isinstance(surf.plot(), Figure)
    assert isinstance(surf.plot("heatmap", metric="train_acc"), Figure)
    curve = landscape.loss_surface(model, (x, y), x=(-1, 1, 5), y=None)
    assert isinstance(curve.plot(), Figure)  # 1D: a line by default

    original = tmp_path / "orig.h5"
    with h5py.File(original, "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, 5)
        f["ycoordinates"] = np.linspace(-1, 1, 3)
        f["train_loss"] = np.arange(15.0).reshape(5, 3)  # (nx, ny) allocated, filled [iy, ix]
    old = landscape.Surface.load(original)
    assert old.metrics["train_loss"].shape == (3, 5) and old.metrics["train_loss"][1, 0] == 5.0
    assert isinstance(surf.compare([old, original], titles=["api", "orig", "again"]), Figure)
    converted = landscape.Surface.load(old.save(tmp_path / "converted.h5"))
    assert converted.attrs["schema"] == storage.SCHEMA
    np.testing.assert_array_equal(converted.metrics["train_loss"], old.metrics["train_loss"])


# ----------------------------------------------------------------------------- bad input


def _mismatched_state(tmp_path: Path) -> None:
    torch.save(_mlp().state_dict(), tmp_path / "mlp.pt")
    landscape.load_model(tmp_path / "mlp.pt", "resnet20", num_classes=3, in_channels=1)


def _bad_loss(tmp_path: Path) -> None:
    landscape.loss_surface(
        _mlp(), _data(), y=None, loss=lambda o, t: F.cross_entropy(o, t, reduction="none")
    )


BAD: dict[str, tuple[Callable[[Path], Any], list[str]]] = {
    "import-path": (
        lambda _: landscape.load_model("no_such_pkg_xyz.nets:build_net"),
        ["model.name", "cannot import 'no_such_pkg_xyz.nets:build_net'", "expected"],
    ),
    "loss-not-scalar": (_bad_loss, ["loss:", "shape (48,)", "expected a scalar"]),
    "metric-not-scalar": (
        lambda _: landscape.loss_surface(_mlp(), _data(), y=None, metrics={"raw": lambda o, t: o}),
        ["metrics['raw']", "shape (48, 3)", "expected a scalar"],
    ),
    "state-dict": (_mismatched_state, ["does not match the model", "missing keys"]),
    "line-mismatch": (
        lambda _: landscape.line_directions(_mlp(), nn.Linear(6, 3)),
        ["b:", "expected the same network as a"],
    ),
    "direction-keys": (
        lambda _: landscape.loss_surface(
            _mlp(), _data(), y=None, directions=[{"0.weight": torch.zeros(12, 6)}]
        ),
        ["directions[0]", "no '0.bias'", "expected one tensor per parameter"],
    ),
    "axis": (
        lambda _: landscape.loss_surface(_mlp(), _data(), x=(-1, 1)),
        ["x:", "expected (min, max, num)"],
    ),
    "data": (
        lambda _: landscape.loss_surface(_mlp(), {"train": 3}),
        ["data['train']", "expected (inputs, targets) tensors"],
    ),
    "loss-name": (
        lambda _: landscape.loss_surface(_mlp(), _data(), loss="hinge"),
        ["loss:", "'hinge'", "crossentropy"],
    ),
    "float-labels": (
        lambda _: landscape.loss_surface(_mlp(), (torch.zeros(4, 6), torch.zeros(4, 3))),
        ["loss:", "integer class labels", "callable"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_what_was_expected(case: str, tmp_path: Path) -> None:
    call, words = BAD[case]
    with pytest.raises(LandscapeError) as exc:
        call(tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


# ----------------------------------------------------------------------------- the package


def test_the_example_script_writes_a_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "figs" / "landscape.png"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["custom_model.py", str(out)])
    runpy.run_path(str(ROOT / "examples" / "custom_model.py"), run_name="__main__")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000


def test_import_landscape_stays_light() -> None:
    code = (
        "import sys, landscape; assert 'torch' not in sys.modules; "
        "assert callable(landscape.loss_surface) and 'torch' in sys.modules; "
        "print(sorted(set(landscape.__all__) - set(dir(landscape))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        landscape.nope  # noqa: B018


def test_an_in_memory_surface_records_its_points_in_the_history() -> None:
    import json

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    surface = landscape.loss_surface(model, (x, y), x=(-1, 1, 3), y=(-1, 1, 2), device="cpu")
    (run,) = json.loads(surface.data.attrs["history"])
    assert run["points"] == 6 and run["device"] == "cpu"
