"""Tests of the evaluation engine: every speed-up must give the plain model's numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close
from torch.utils.data import TensorDataset

from landscape.config import EngineConfig
from landscape.directions import random_directions, target_tensors
from landscape.engine import (
    AUTO_BATCH_SIZE,
    COMPILE_AUTO_IMAGES,
    EvalSet,
    PointEvaluator,
    StreamSet,
    auto_channels_last,
    auto_compile,
    evaluate,
    make_eval_set,
    make_loss,
    resolve_batch_size,
)
from landscape.errors import LandscapeError
from landscape.models import create_model
from landscape.rewrite import can_fuse_on, fold_tensors, trace_fold_pairs

pytestmark = pytest.mark.usefixtures("single_thread")


PLAIN = EngineConfig(channels_last="off", fold_bn="off")
POINTS = [(0.0, 0.0), (0.3, -0.2), (-0.5, 0.4)]


def _model(name: str, seed: int = 0) -> nn.Module:
    """A model whose BN layers are far from the identity, so folding really changes the weights."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=10, in_channels=3).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return model


def _data(n: int = 24, size: int = 8, seed: int = 1) -> EvalSet:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    return EvalSet(x, torch.randint(0, 10, (n,), generator=g))


def _evaluator(model: nn.Module, engine: EngineConfig | None, dir_type: str = "weights", **kw):
    targets = target_tensors(model, dir_type)
    ignore = "none" if dir_type == "states" else "biasbn"
    dirs = random_directions(targets, 2, norm="filter", ignore=ignore, seed=3)
    return PointEvaluator(model, targets, dirs, batch_size=10, engine=engine, **kw)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_results(a: list[dict[str, float]], b: list[dict[str, float]], n: int) -> None:
    for ra, rb in zip(a, b, strict=True):
        assert_close(ra["train_loss"], rb["train_loss"], rtol=1e-5, atol=1e-6)
        # A near-tie in the logits may flip one example, nothing more.
        assert abs(ra["train_acc"] - rb["train_acc"]) <= 100.0 / n + 1e-9


def _run(ev: PointEvaluator, data: EvalSet, points=POINTS) -> list[dict[str, float]]:
    with ev.session():
        return [ev.evaluate(c, {"train": data}) for c in points]


# ----------------------------------------------------------------------------- BN folding


@pytest.mark.parametrize("name", ["resnet20", "resnet20_noshort", "vgg9", "preresnet20"])
def test_folded_equals_unfolded(name: str) -> None:
    model, data = _model(name), _data()
    folded = _evaluator(model, EngineConfig(fold_bn="on", channels_last="off"))
    assert folded.choice.fold_bn and folded.choice.folded_pairs > 0
    _assert_same_results(_run(folded, data), _run(_evaluator(model, PLAIN), data), len(data))


@pytest.mark.parametrize(
    ("name", "fused"),
    [
        ("resnet20", 21),  # every conv: 9 conv-ReLU, 9 conv-add-ReLU, stem, 2 shortcuts
        ("resnet20_noshort", 19),
        ("vgg9", 7),
        ("preresnet20", None),  # pre-activation: only conv1 -> bn2 folds
        ("densenet40_bc", None),
    ],
)
def test_fused_convolutions_equal_the_plain_network(name: str, fused: int | None) -> None:
    """conv (+ residual) (+ ReLU) in one oneDNN call: the same numbers as the plain model."""
    if not can_fuse_on(torch.device("cpu")):
        pytest.skip("this PyTorch build has no oneDNN fused convolutions")
    model, data = _model(name), _data()
    ev = _evaluator(model, EngineConfig(fuse="on"))
    if fused is not None:
        assert ev.choice.fused_convs == fused
    plain = _run(_evaluator(model, PLAIN), data)
    _assert_same_results(_run(ev, data), plain, len(data))
    # In float32 the fused calls compute exactly what conv, add and ReLU do one by one.
    unfused = _run(_evaluator(model, EngineConfig(fuse="off")), data)
    fused_results = _run(ev, data)
    for a, b in zip(fused_results, unfused, strict=True):
        assert_close(a["train_loss"], b["train_loss"], rtol=1e-6, atol=1e-7)


def test_fusion_keeps_a_broadcast_add_unfused_and_follows_the_points() -> None:
    """A conv plus a per-channel offset (not a residual of the output's shape) takes the plain
    route at run time; the weights the fused calls read move with the grid point."""
    if not can_fuse_on(torch.device("cpu")):
        pytest.skip("this PyTorch build has no oneDNN fused convolutions")

    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4).eval()
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.offset = nn.Parameter(torch.randn(1, 4, 1, 1))
            self.head = nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.bn(self.conv(x)))
            h = F.relu(self.conv2(h) + self.offset)
            return self.head(h.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model, data = Offset().eval(), _data()
    ev = _evaluator(model, EngineConfig(fuse="on"))
    assert ev.choice.fused_convs == 2
    _assert_same_results(_run(ev, data), _run(_evaluator(model, PLAIN), data), len(data))


def test_fusion_stays_off_where_it_cannot_run() -> None:
    model = _model("resnet20")
    assert _evaluator(model, EngineConfig(points_per_call=2)).choice.fused_convs == 0
    assert _evaluator(model, EngineConfig(channels_last="off")).choice.fused_convs == 0
    assert _evaluator(model, EngineConfig(fuse="off")).choice.fused_convs == 0
    with pytest.warns(UserWarning, match="fuse: on needs"):
        _evaluator(model, EngineConfig(fuse="on", points_per_call=2))


def test_fused_bf16_is_close_to_float32() -> None:
    model, data = _model("resnet20"), _data(n=40)
    exact = _run(_evaluator(model, EngineConfig(fuse="off")), data)
    ev = _evaluator(model, EngineConfig(), precision="bf16")
    assert ev.choice.fused_convs > 0 or not can_fuse_on(torch.device("cpu"))
    for a, b in zip(_run(ev, data), exact, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 0.03 * abs(b["train_loss"])


def test_folding_finds_only_conv_then_bn() -> None:
    """ResNet folds every conv/BN pair; PreResNet only conv1 -> bn2 (its bn1 precedes a conv)."""
    _, pairs = trace_fold_pairs(_model("resnet20"))
    assert len(pairs) == 1 + 9 * 2 + 2  # stem, two per block, two projection shortcuts
    assert ("layer2.0.shortcut.0", "layer2.0.shortcut.1") in {(p.conv, p.bn) for p in pairs}
    _, pre = trace_fold_pairs(_model("preresnet20"))
    assert {(p.conv.rsplit(".", 1)[1], p.bn.rsplit(".", 1)[1]) for p in pre} == {("conv1", "bn2")}
    assert len(pre) == 9


def test_densenet_pre_activation_bns_are_not_folded() -> None:
    """DenseNet's bn1 / transition bn / head bn come before a conv (or after a concat): kept.

    Only the bottleneck's conv1 -> bn2 is a true conv-then-BN pair, and folding it is exact.
    """
    model, data = _model("densenet40_bc"), _data(n=12)
    folded = _evaluator(model, EngineConfig(fold_bn="on", channels_last="on"))
    runner_bns = {n for n, m in folded._runner.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert "bn" in runner_bns and "trans1.bn" in runner_bns and "dense1.0.bn1" in runner_bns
    assert not any(n.endswith("bn2") for n in runner_bns)
    assert folded.choice.folded_pairs == 18
    _assert_same_results(_run(folded, data), _run(_evaluator(model, PLAIN), data), len(data))


def test_folding_follows_perturbed_bn_tensors() -> None:
    """dir_type states with ignore none moves BN weights and statistics: folding sees them."""
    model, data = _model("resnet20"), _data()
    points = [(0.0, 0.0), (0.1, -0.05), (-0.05, 0.1)]
    folded = _evaluator(model, EngineConfig(fold_bn="on"), dir_type="states")
    plain = _evaluator(model, PLAIN, dir_type="states")
    results = _run(folded, data, points)
    assert len({r["train_loss"] for r in results}) == 3  # the points really differ
    _assert_same_results(results, _run(plain, data, points), len(data))


def test_batched_move_and_fold_are_the_per_tensor_arithmetic_bit_for_bit() -> None:
    """move_to and the folding of the runner run as a few _foreach calls: the same numbers as
    one tensor at a time (base + each direction in turn; fold_tensors per pair), including pairs
    of other structures (a conv with a bias, a BN without affine, another epsilon) folded alone
    or in their own group."""

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
            self.b, self.bn_b = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
            self.c, self.bn_c = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, affine=False)
            self.d, self.bn_d = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4, eps=1e-3)
            self.head = nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.bn_b(self.b(self.bn_a(self.a(x)).relu())).relu()
            x = self.bn_d(self.d(self.bn_c(self.c(x))))
            return self.head(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Mixed().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    ev = _evaluator(model, EngineConfig(fold_bn="on", fuse="off"), dir_type="states")
    assert ev.choice.folded_pairs == 4 and ev._batched_move
    coords = (0.03, -0.07)  # small: a BN variance moved far goes negative (NaN folds)
    ev.move_to(coords)
    ev._sync_runner()
    assert all(torch.isfinite(t).all() for t in ev._runner_state.values())
    for k, t in ev.targets.items():
        expected = ev.base[k].clone()
        for c, d in zip(coords, ev.directions, strict=True):
            expected.add_(d[k], alpha=c)
        assert torch.equal(t, expected), k
    for p in ev._pairs:
        w, b = fold_tensors(ev._live, p, ev._eps[p.bn])
        assert torch.equal(ev._runner_state[f"{p.conv}.weight"], w), p
        assert torch.equal(ev._runner_state[f"{p.conv}.bias"], b), p
    ev.restore()  # the plain evaluator starts from the model's own weights
    data, points = _data(), [(0.0, 0.0), coords, (-0.05, 0.02)]
    plain = _evaluator(model, PLAIN, "states")
    _assert_same_results(_run(ev, data, points), _run(plain, data, points), 24)


def test_overlapping_targets_are_moved_one_by_one() -> None:
    """Two targets that are views of one tensor: each is set from its own base in turn, as
    before batching (adding each direction to both views would count the overlap twice)."""
    flat = torch.zeros(6)
    targets = {"all": flat, "head": flat[:3]}
    dirs = [{"all": torch.ones(6), "head": torch.full((3,), 2.0)}]
    ev = PointEvaluator(nn.Identity(), targets, dirs)
    assert not ev._batched_move
    ev.move_to((1.0,))
    assert flat.tolist() == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]


def test_a_conv_used_twice_is_not_folded() -> None:
    """One conv feeding a BN in one place and nothing in another: its weights must stay."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.bn(self.conv(x))).mean(dim=(2, 3))

    model = Shared().eval()
    traced = trace_fold_pairs(model)
    assert traced is not None and traced[1] == []
    with pytest.warns(UserWarning, match="nothing to fold"):
        ev = _evaluator(model, EngineConfig(fold_bn="on"))
    assert not ev.choice.fold_bn
    with pytest.raises(LandscapeError, match="channels_last must be auto, on or off"):
        _evaluator(model, EngineConfig(channels_last="yes"))


def test_fold_auto_skips_bn_recompute_and_untraceable_models() -> None:
    model = _model("resnet20")
    assert _evaluator(model, EngineConfig()).choice.fold_bn
    bn_data = torch.randn(8, 3, 8, 8)
    assert not _evaluator(model, EngineConfig(), bn_data=bn_data).choice.fold_bn

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
                x = -x
            return self.bn(self.conv(x)).mean(dim=(2, 3))

    branchy = Branchy().eval()
    assert not _evaluator(branchy, EngineConfig()).choice.fold_bn
    with pytest.raises(LandscapeError, match="fold_bn"):
        _evaluator(branchy, EngineConfig(fold_bn="on"))


def test_folding_after_bn_recompute_matches_unfolded() -> None:
    model, data = _model("resnet20"), _data()
    bn_data = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    folded = _evaluator(model, EngineConfig(fold_bn="on"), bn_data=bn_data)
    plain = _evaluator(model, PLAIN, bn_data=bn_data)
    _assert_same_results(_run(folded, data), _run(plain, data), len(data))


# ----------------------------------------------------------------------------- formats, points


def test_channels_last_equals_default() -> None:
    model, data = _model("resnet20"), _data()
    cl = _evaluator(model, EngineConfig(channels_last="on", fold_bn="off"))
    assert cl.choice.channels_last and not cl.choice.fold_bn
    _assert_same_results(_run(cl, data), _run(_evaluator(model, PLAIN), data), len(data))


@pytest.mark.parametrize("fold", ["on", "off"])
def test_evaluate_many_equals_a_loop(fold: str) -> None:
    """Four points in groups of three (vmap over stacked weights) equal four single calls."""
    model, data = _model("resnet20"), _data()
    points = [*POINTS, (0.2, 0.2)]
    many = _evaluator(model, EngineConfig(points_per_call=3, fold_bn=fold))
    with many.session():
        batched = many.evaluate_many(points, {"train": data})
    _assert_same_results(batched, _run(_evaluator(model, PLAIN), data, points), len(data))


def test_bf16_is_close_to_float32() -> None:
    model, data = _model("resnet20"), _data(n=40)
    low = _run(_evaluator(model, EngineConfig(), precision="bf16"), data)
    exact = _run(_evaluator(model, EngineConfig()), data)
    for a, b in zip(low, exact, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 0.05 * abs(b["train_loss"])


def test_fp16_on_cpu_is_a_clear_error() -> None:
    with pytest.raises(LandscapeError, match="fp16 needs a GPU.*bf16"):
        _evaluator(_model("resnet20"), None, precision="fp16")


@pytest.mark.parametrize(
    ("setting", "fuse", "work", "compiled"),
    [
        ("auto", "off", None, False),
        ("auto", "off", COMPILE_AUTO_IMAGES["cpu"] - 1, False),
        ("auto", "off", COMPILE_AUTO_IMAGES["cpu"], True),
        ("auto", "auto", COMPILE_AUTO_IMAGES["cpu"], False),  # fused instead: faster on a CPU
        (False, "off", COMPILE_AUTO_IMAGES["cpu"], False),
        (True, "auto", 10, True),  # asked for: compiled, and then not fused
        ("tf32 and bf16 are not compile settings", "off", 10, None),
    ],
)
def test_compile_auto_pays_only_on_long_unfused_runs(
    setting: object, fuse: str, work: int | None, compiled: object
) -> None:
    engine = EngineConfig(compile=setting, fuse=fuse)
    if compiled is None:
        with pytest.raises(LandscapeError, match="engine.compile must be auto, on or off"):
            _evaluator(_model("resnet20"), engine, work=work)
        return
    ev = _evaluator(_model("resnet20"), engine, work=work)  # torch.compile is lazy: cheap here
    if fuse == "auto" and not can_fuse_on(torch.device("cpu")):
        pytest.skip("no oneDNN fusion in this build: compile auto decides alone")
    assert ev.choice.compile is compiled
    assert (ev.choice.fused_convs > 0) is (fuse == "auto" and not compiled)


def test_compile_auto_leaves_exact_float32_on_a_gpu_eager() -> None:
    """Measured on an H200 (README, Speed): compiling lost 11 % in exact float32 and gained
    38-45 % in tf32 and bf16; on a CPU float32 compiles when nothing is fused."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    long_gpu = COMPILE_AUTO_IMAGES["cuda"]
    assert not auto_compile(cuda, "float32", long_gpu, fused=False)
    assert auto_compile(cuda, "tf32", long_gpu, fused=False)
    assert auto_compile(cuda, "bf16", long_gpu, fused=False)
    assert not auto_compile(cuda, "bf16", long_gpu - 1, fused=False)
    assert auto_compile(cpu, "float32", COMPILE_AUTO_IMAGES["cpu"], fused=False)
    assert not auto_compile(cpu, "float32", COMPILE_AUTO_IMAGES["cpu"], fused=True)


def test_compile_failure_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile fails lazily, at the first call: the engine warns and runs eagerly."""

    def broken_compile(module: nn.Module, **_: object):
        def fail(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    model, data = _model("resnet20"), _data()
    ev = _evaluator(model, EngineConfig(compile=True))
    assert ev.compiled
    with pytest.warns(UserWarning, match="torch.compile failed"):
        results = _run(ev, data)
    assert not ev.compiled
    _assert_same_results(results, _run(_evaluator(model, PLAIN), data), len(data))


# ----------------------------------------------------------------------------- restore


@pytest.mark.parametrize(
    "engine, bn",
    [
        (EngineConfig(fold_bn="on", channels_last="on"), False),
        (EngineConfig(points_per_call=2), False),
        (EngineConfig(fold_bn="on"), True),
    ],
    ids=["folded", "vmapped", "bn-recompute"],
)
def test_restore_is_bit_exact(engine: EngineConfig, bn: bool) -> None:
    model, data = _model("resnet20"), _data()
    before = _snapshot(model)
    modules_before = [type(m) for m in model.modules()]
    bn_data = torch.randn(16, 3, 8, 8) if bn else None
    ev = _evaluator(model, engine, dir_type="states", bn_data=bn_data)
    with ev.session():
        ev.evaluate_many(POINTS, {"train": data})
        ev.evaluate((0.4, 0.1), {"train": data})
    after = _snapshot(model)
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
        assert after[k].is_contiguous(), k  # the memory format is the model's own
    assert [type(m) for m in model.modules()] == modules_before  # no BN removed, no conv changed


def test_restore_puts_back_a_buffer_that_the_forward_replaces() -> None:
    """`self.last = out` in forward replaces the buffer with an inference tensor; restore puts
    the original object back, bit for bit, and the model still trains."""

    class Cache(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3 * 8 * 8, 10)
            self.register_buffer("last", torch.zeros(10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.fc(x.flatten(1))  # (B, classes)
            self.last = out.mean(dim=0).detach()
            return out

    model = Cache().eval()
    before, buffer = _snapshot(model), model.last
    _run(_evaluator(model, EngineConfig()), _data())
    assert model.last is buffer and not model.last.is_inference()
    after = _snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    F.cross_entropy(model.train()(torch.randn(4, 3, 8, 8)), torch.arange(4)).backward()


# ----------------------------------------------------------------------------- data


def _dataset(n: int = 30) -> TensorDataset:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 3, 8, 8, generator=g)
    return TensorDataset(x, torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_set_gives_the_eval_set_loss(workers: int) -> None:
    ds, model = _dataset(), _model("resnet20")
    memory = make_eval_set(ds, n=20, seed=3, in_memory="on", batch_size=7)
    stream = make_eval_set(ds, n=20, seed=3, in_memory="off", batch_size=7, workers=workers)
    assert isinstance(memory, EvalSet) and isinstance(stream, StreamSet)
    assert len(stream) == len(memory) == 20
    streamed_x = torch.cat([x for x, _ in stream.batches()])
    assert torch.equal(streamed_x, memory.x)  # the same seeded subset, in the same order
    ev = _evaluator(model, EngineConfig())
    with ev.session():
        a = ev.evaluate((0.2, -0.1), {"train": memory})
        b = ev.evaluate((0.2, -0.1), {"train": stream})
    assert_close(a["train_loss"], b["train_loss"], rtol=1e-6, atol=0)
    assert a["train_acc"] == b["train_acc"]


def test_make_eval_set_decides_from_the_size() -> None:
    ds = _dataset()
    example = 3 * 8 * 8 * 4 + 8
    assert isinstance(make_eval_set(ds, n=10, max_bytes=10 * example), EvalSet)
    assert isinstance(make_eval_set(ds, n=10, max_bytes=10 * example - 1, workers=0), StreamSet)
    assert isinstance(make_eval_set(ds, n=10, in_memory="off", workers=0), StreamSet)
    assert isinstance(make_eval_set(ds, n=10, in_memory="on", max_bytes=1), EvalSet)
    whole = make_eval_set(ds, n=1000)  # a subset larger than the set is all of it
    assert len(whole) == 30
    with pytest.raises(LandscapeError, match="in_memory"):
        make_eval_set(ds, in_memory="maybe")


def test_plain_evaluate_matches_a_hand_computed_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU a batch runs in cache-sized pieces; the loss is the one of the whole batch."""
    import landscape.engine as engine

    monkeypatch.setattr(engine, "CPU_CHUNK_ELEMENTS", 3 * 8 * 8 * 5)
    monkeypatch.setattr(engine, "MIN_CPU_CHUNK", 1)
    model, data = _model("resnet20"), _data()
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: sizes.append(len(args[0])))
    loss, acc = evaluate(model, data, make_loss("crossentropy"), batch_size=7, channels_last=True)
    assert sizes == [5, 2] * 3 + [3]  # batches of 7 (the last of 3), each cut into pieces of 5
    sizes.clear()
    with torch.no_grad():
        out = model(data.x)
    assert_close(loss, nn.functional.cross_entropy(out, data.y).item(), rtol=1e-5, atol=1e-6)
    assert acc == pytest.approx(100.0 * (out.argmax(1) == data.y).float().mean().item())


# ----------------------------------------------------------------------------- per-device defaults


def test_batch_size_auto_is_the_devices_default() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_batch_size("auto", cpu) == resolve_batch_size(None, cpu) == 1000
    assert resolve_batch_size("auto", cuda) == AUTO_BATCH_SIZE["cuda"] > AUTO_BATCH_SIZE["cpu"]
    assert resolve_batch_size(64, cuda) == 64
    for bad in (0, -5, True, "big", 2.5):
        with pytest.raises(LandscapeError, match="batch_size must be a positive integer"):
            resolve_batch_size(bad, cpu)  # type: ignore[arg-type]
    ev = _evaluator(_model("resnet20"), None)
    assert ev.batch_size == 10
    assert PointEvaluator(ev.model, ev.targets, ev.directions).batch_size == 1000


def test_channels_last_auto_skips_exact_float32_on_a_gpu() -> None:
    conv, mlp = _model("resnet20"), nn.Sequential(nn.Linear(4, 3))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert auto_channels_last(conv, cpu, "float32") and auto_channels_last(conv, cpu, "bf16")
    assert not auto_channels_last(conv, cuda, "float32")  # cuDNN's NCHW kernels, no tensor cores
    assert all(auto_channels_last(conv, cuda, p) for p in ("tf32", "bf16", "fp16"))
    assert not auto_channels_last(mlp, cpu, "float32")
    assert _evaluator(conv, EngineConfig()).choice.channels_last  # on this CPU: NHWC


def _oom_above(limit: int, sizes: list[int], forward):
    """forward, raising CUDA's out-of-memory error for batches above `limit`."""

    def failing(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        if len(x) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(x)

    return failing


def _failing_above(ev: PointEvaluator, limit: int, sizes: list[int]) -> None:
    """Make ev's forward, one point or several per call, fail for batches above `limit`."""
    ev._forward = _oom_above(limit, sizes, ev._forward)
    vmapped = ev._vmapped_forward
    ev._vmapped_forward = lambda group: _oom_above(limit, sizes, vmapped(group))


def _halvings(caught: pytest.WarningsRecorder) -> list[int]:
    """The batch sizes the engine fell back to, from its warnings."""
    return [int(str(w.message).split("batches of ")[1].split()[0]) for w in caught]


def test_a_batch_that_runs_out_of_gpu_memory_is_halved() -> None:
    """The point restarts in halves until a batch fits, and the results are those of the plain
    model; the smaller size is kept for the points after it."""
    model, data = _model("resnet20"), _data(n=24)
    ev = _evaluator(model, EngineConfig())
    ev.batch_size = 24
    sizes: list[int] = []
    _failing_above(ev, 7, sizes)
    with pytest.warns(UserWarning, match="out of GPU memory") as caught:
        results = _run(ev, data)
    assert _halvings(caught) == [12, 6] and ev.batch_size == 6
    assert sizes[:3] == [24, 12, 6] and set(sizes[3:]) == {6}
    _assert_same_results(results, _run(_evaluator(model, PLAIN), data), len(data))


def test_out_of_memory_at_batch_one_is_raised_and_never_taken_for_a_compile_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch, "compile", lambda module, **_: module)
    model, data = _model("resnet20"), _data(n=4)
    ev = _evaluator(model, EngineConfig(compile=True))
    ev.batch_size = 2
    _failing_above(ev, 0, [])
    with (
        pytest.warns(UserWarning, match="batches of 1"),
        pytest.raises(torch.cuda.OutOfMemoryError),
    ):
        _run(ev, data)
    assert ev.compiled  # not mistaken for a torch.compile failure


def test_evaluate_many_halves_a_batch_too() -> None:
    model, data = _model("resnet20"), _data(n=20)
    ev = _evaluator(model, EngineConfig(points_per_call=2))
    ev.batch_size = 20
    sizes: list[int] = []
    _failing_above(ev, 5, sizes)
    with pytest.warns(UserWarning, match="out of GPU memory") as caught, ev.session():
        many = ev.evaluate_many(POINTS, {"train": data})
    assert _halvings(caught) == [10, 5] and ev.batch_size == 5 and sizes[:3] == [20, 10, 5]
    _assert_same_results(many, _run(_evaluator(model, PLAIN), data), len(data))


def test_stream_set_cuts_the_loaders_batches_to_the_batch_size() -> None:
    stream = make_eval_set(_dataset(), n=20, seed=3, in_memory="off", batch_size=7, workers=0)
    assert [len(y) for _, y in stream.batches()] == [7, 7, 6]
    assert [len(y) for _, y in stream.batches(3)] == [3, 3, 1, 3, 3, 1, 3, 3]
