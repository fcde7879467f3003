"""Tests for configs: every shipped YAML loads; each mistake is one line naming the file and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from landscape import config as config_module
from landscape.config import (
    MAX_AXIS_POINTS,
    Config,
    HessianConfig,
    SurfaceConfig,
    TrajectoryConfig,
    config_from_dict,
    expand_runs,
    load_config,
    select_runs,
)
from landscape.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
# Globbed, so a new paper config is covered the moment it is added.
SHIPPED = sorted(ROOT.glob("configs/**/*.yaml"))


def _profiles(path: Path) -> list[str | None]:
    return [None, *load_config(path).profiles]


def _error(path: Path, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)  # type: ignore[arg-type]
    return info.value


def _assert_one_line(e: ConfigError, path: Path, key: str | None) -> str:
    """The message is one line that starts with 'FILE: KEY: ' and carries both as attributes."""
    msg = str(e)
    assert "\n" not in msg
    assert e.file == str(path)
    assert e.key == key
    prefix = f"{path}: {key}: " if key else f"{path}: "
    assert msg.startswith(prefix), msg
    return msg


# ----------------------------------------------------------------------------- shipped configs


def test_shipped_configs_exist() -> None:
    assert ROOT / "configs" / "quickstart.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_shipped_config_and_its_profiles_validate(path: Path) -> None:
    for profile in _profiles(path):
        cfg = load_config(path, profile=profile)
        runs = expand_runs(cfg)
        assert runs, f"{path} with profile {profile} has no runs"
        names = [r.run or r.name for r in runs]
        assert len(set(names)) == len(names)
        for run in runs:
            run.validate("")  # expanded runs are full, valid configs
            assert run.run_dir.parts[: len(Path(cfg.out).parts)] == Path(cfg.out).parts


def test_quick_profile_shrinks_every_run() -> None:
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", profile="quick")
    runs = expand_runs(cfg)
    assert [r.run for r in runs] == ["resnet56", "resnet56_noshort"]
    assert {r.model.name for r in runs} == {"resnet56", "resnet56_noshort"}
    for r in runs:
        assert r.train.epochs == 2
        assert r.data.subset == 200
        assert r.surface.x == [-1.0, 1.0, 5.0]


# ----------------------------------------------------------------------------- errors

# (YAML text, dotted key, words the message must contain)
BAD = {
    "typo_with_suggestion": ("train: {epoch: 3}\n", "train.epoch", ["unknown key", "'epochs'"]),
    "wrong_type": ("train: {lr: fast}\n", "train.lr", ["expected a number", "'fast'"]),
    "int_not_float": ("train: {epochs: 1.5}\n", "train.epochs", ["expected an integer"]),
    "zero_epochs": ("train: {epochs: 0}\n", "train.epochs", ["positive", "0"]),
    "negative_momentum": ("train: {momentum: -0.5}\n", "train.momentum", [">= 0"]),
    "negative_weight_decay": ("train: {weight_decay: -1}\n", "train.weight_decay", [">= 0"]),
    "zero_points": ("surface: {x: [-1, 1, 0]}\n", "surface.x", ["positive integer", "0"]),
    "fractional_points": ("surface: {y: [-1, 1, 2.5]}\n", "surface.y", ["positive integer"]),
    "min_above_max": ("surface: {x: [1, -1, 5]}\n", "surface.x", ["min 1.0", "below max -1.0"]),
    "two_numbers": ("surface: {x: [-1, 1]}\n", "surface.x", ["expected 3 numbers"]),
    "not_finite": ("surface: {x: [.nan, 1, 5]}\n", "surface.x", ["finite"]),
    "bad_choice": (
        "surface: {directions: {norm: filtr}}\n",
        "surface.directions.norm",
        ["'filtr'", "did you mean filter"],
    ),
    "batch_size_word": (
        "surface: {batch_size: big}\n",
        "surface.batch_size",
        ["positive integer or auto", "'big'"],
    ),
    "zero_batch_size": (
        "surface: {batch_size: 0}\n",
        "surface.batch_size",
        ["positive integer or auto", "0"],
    ),
    "bad_device": ("device: gpu\n", "device", ["'gpu'", "auto, cpu, cuda"]),
    "section_not_mapping": ("train: 3\n", "train", ["expected a mapping"]),
    "list_not_list": ("surface: {splits: train}\n", "surface.splits", ["expected a list"]),
    "line_needs_two_checkpoints": (
        "surface: {y: null, directions: {kind: line}}\n",
        "surface.directions.checkpoints",
        ["needs 2 checkpoint paths"],
    ),
    "run_without_name": ("runs: [{model: {name: resnet20}}]\n", "runs[0]", ["needs a 'name'"]),
    "run_typo": (
        "runs: [{name: a, trian: {epochs: 2}}]\n",
        "runs[0].trian",
        ["unknown key", "'train'"],
    ),
    "run_invalid_after_merge": (
        "runs: [{name: a}, {name: b, train: {epochs: 0}}]\n",
        "runs[1].train.epochs",
        ["positive"],
    ),
    "duplicate_run_names": ("runs: [{name: a}, {name: a}]\n", "runs[1].name", ["twice"]),
    # Numbers: NaN passes every bound (nan <= 0 is False), so each is refused on its own.
    "nan_lr": ("train: {lr: .nan}\n", "train.lr", ["finite number", "nan"]),
    "inf_lr": ("train: {lr: .inf}\n", "train.lr", ["finite number", "inf"]),
    "nan_gamma": ("train: {gamma: .nan}\n", "train.gamma", ["finite number"]),
    "nan_momentum": ("train: {momentum: .nan}\n", "train.momentum", ["finite number"]),
    "inf_weight_decay": ("train: {weight_decay: .inf}\n", "train.weight_decay", ["finite"]),
    "negative_milestone": (
        "train: {milestones: [-1, 5]}\n",
        "train.milestones",
        ["positive epochs in increasing order", "[-1, 5]"],
    ),
    "zero_milestone": ("train: {milestones: [0]}\n", "train.milestones", ["positive epochs"]),
    "decreasing_milestones": ("train: {milestones: [5, 3]}\n", "train.milestones", ["increasing"]),
    "repeated_milestone": ("train: {milestones: [5, 5]}\n", "train.milestones", ["increasing"]),
    "too_many_points": (
        "surface: {x: [-1, 1, 1e9]}\n",
        "surface.x",
        ["at most 100001 points per axis", "1000000000"],
    ),
    "nan_flush_seconds": ("surface: {flush_seconds: .nan}\n", "surface.flush_seconds", ["finite"]),
    "negative_flush_seconds": ("surface: {flush_seconds: -1}\n", "surface.flush_seconds", [">= 0"]),
    "negative_engine_workers": (
        "surface: {engine: {workers: -1}}\n",
        "surface.engine.workers",
        [">= 0", "-1"],
    ),
    "nan_margin": ("trajectory: {margin: .nan}\n", "trajectory.margin", ["finite number"]),
    "trajectory_grid_too_big": (
        "trajectory: {grid: 1000000}\n",
        "trajectory.grid",
        ["at most 100001 points per axis"],
    ),
    "hessian_grid_too_big": (
        "hessian: {grid: 1000000}\n",
        "hessian.grid",
        ["at most 100001 points per axis"],
    ),
    # seeds: torch overflowed with a traceback on a seed beyond 2**64
    "train_seed_too_big": (
        "train: {seed: 1180591620717411303424}\n",
        "train.seed",
        ["whole number from 0 to 4294967295"],
    ),
    "train_seed_negative": ("train: {seed: -1}\n", "train.seed", ["got -1"]),
    "direction_seed_too_big": (
        "surface: {directions: {seed: 1180591620717411303424}}\n",
        "surface.directions.seed",
        ["whole number from 0 to"],
    ),
    "hessian_seed_negative": ("hessian: {seed: -5}\n", "hessian.seed", ["got -5"]),
    "hessian_grid_typo": (
        "hessian: {grid: surfce}\n",
        "hessian.grid",
        ["got 'surfce'", "did you mean surface"],
    ),
    "run_nan_lr": ("runs: [{name: a, train: {lr: .nan}}]\n", "runs[0].train.lr", ["finite"]),
    # plot: checked before anything is computed, not after (where a bad value meant "no figures").
    "plot_kind_typo": (
        "plot: {kinds: [contur]}\n",
        "plot.kinds",
        ["'contur'", "did you mean contour"],
    ),
    "plot_levels_below_two": ("plot: {levels: -2}\n", "plot.levels", ["at least 2", "-2"]),
    "plot_levels_unsorted": ("plot: {levels: [2, 1]}\n", "plot.levels", ["increasing", "[2, 1]"]),
    "plot_levels_text": ("plot: {levels: [1, a]}\n", "plot.levels", ["increasing numbers"]),
    "plot_levels_string": ("plot: {levels: many}\n", "plot.levels", ["number of levels"]),
    "compare_levels_log": (
        "compare: {levels: [0, 1], log: true}\n",
        "compare.levels",
        ["positive with log"],
    ),
    "plot_zero_dpi": ("plot: {dpi: 0}\n", "plot.dpi", ["positive integer", "0"]),
    "plot_vmin_not_below_vmax": (
        "plot: {vmin: 2, vmax: 1}\n",
        "plot.vmin",
        ["must be below vmax 1.0", "2.0"],
    ),
    "plot_nan_vmax": ("plot: {vmax: .nan}\n", "plot.vmax", ["finite number", "nan"]),
    "plot_log_vmin_not_positive": (
        "plot: {log: true, vmin: 0}\n",
        "plot.vmin",
        ["positive with log: true", "0"],
    ),
    "plot_format": ("plot: {format: jpg}\n", "plot.format", ["'jpg'", "png, pdf, svg"]),
    "plot_kind_of_other_dimension": (
        "surface: {y: null}\nplot: {kinds: [contour]}\n",
        "plot.kinds",
        ["'contour' does not draw a 1D surface", "surface.y is null", "choose from: line"],
    ),
    "run_plot_kind_of_other_dimension": (
        "plot: {kinds: [heatmap]}\nruns: [{name: a}, {name: b, surface: {y: null}}]\n",
        "runs[1].plot.kinds",
        ["'heatmap' does not draw a 1D surface"],
    ),
    "run_plot_dpi": ("runs: [{name: a, plot: {dpi: -1}}]\n", "runs[0].plot.dpi", ["positive"]),
    "plot_metric_typo": (
        "plot: {metric: train_los}\n",
        "plot.metric",
        ["no metric 'train_los'", "did you mean train_loss", "train_acc"],
    ),
    "compare_metric_of_one_run_only": (
        "compare: {metric: test_loss}\nruns: [{name: a}, {name: b, surface: {splits: [train]}}]\n",
        "compare.metric",
        ["no metric 'test_loss'", "train_loss, train_acc"],
    ),
    # compare
    "compare_kind_typo": (
        "compare: {kinds: [surface3]}\n",
        "compare.kinds",
        ["'surface3'", "did you mean surface3d"],
    ),
    "compare_no_kinds": ("compare: {kinds: []}\n", "compare.kinds", ["name at least one of"]),
    "compare_levels_below_two": ("compare: {levels: 1}\n", "compare.levels", ["at least 2"]),
    "compare_vmin_not_below_vmax": (
        "compare: {vmin: 10, vmax: 10}\n",
        "compare.vmin",
        ["must be below vmax 10.0"],
    ),
    "compare_inf_vmax": ("compare: {vmax: .inf}\n", "compare.vmax", ["finite number", "inf"]),
    "compare_unknown_run": (
        "runs: [{name: deep}, {name: wide}]\ncompare: {runs: [dep]}\n",
        "compare.runs",
        ["no run 'dep'", "did you mean deep", "runs are: deep, wide"],
    ),
    "compare_run_listed_twice": (
        "runs: [{name: a}, {name: b}]\ncompare: {runs: [a, a]}\n",
        "compare.runs",
        ["'a' is listed twice"],
    ),
    "compare_run_without_surface": (
        "runs: [{name: a}, {name: b, stages: [trajectory]}]\ncompare: {runs: [a, b]}\n",
        "compare.runs",
        ["'b' computes no surface", "trajectory"],
    ),
    "compare_titles_for_listed_runs": (
        "runs: [{name: a}, {name: b}, {name: c}]\ncompare: {runs: [a, c], titles: [A, B, C]}\n",
        "compare.titles",
        ["expected 2 titles", "(a, c)", "got 3"],
    ),
    "compare_titles_for_all_runs": (
        "runs: [{name: a}, {name: b}]\ncompare: {titles: [A]}\n",
        "compare.titles",
        ["expected 2 titles", "got 1"],
    ),
    "compare_1d_with_2d": (
        "runs: [{name: a}, {name: b, surface: {y: null}}]\ncompare: {runs: [a, b]}\n",
        "compare.runs",
        ["cannot compare 1D with 2D", "a is 2D, b is 1D"],
    ),
    "compare_kind_of_other_dimension": (
        "surface: {y: null}\nruns: [{name: a}, {name: b}]\ncompare: {kinds: [line, contour]}\n",
        "compare.kinds",
        ["'contour' does not draw a 1D surface"],
    ),
    # names and checkpoints
    "empty_name": ('name: ""\n', "name", ["must not be empty", "OUT/NAME"]),
    "empty_checkpoint": ('checkpoint: ""\n', "checkpoint", ["got ''", "leave it out"]),
    "blank_checkpoint": ('checkpoint: "  "\n', "checkpoint", ["got '  '", "leave it out"]),
    "run_empty_name": ('runs: [{name: ""}]\n', "runs[0].name", ["OUT/NAME/RUN", "got ''"]),
    "run_null_name": ("runs: [{name: null}]\n", "runs[0].name", ["got None"]),
    "run_checkpoint_of_no_run": (
        "runs: [{name: deep}, {name: b, checkpoint: 'run:dep'}]\n",
        "runs[1].checkpoint",
        ["'run:dep'", "no run 'dep'", "did you mean deep", "runs that train are: deep"],
    ),
    "run_checkpoint_of_itself": (
        "runs: [{name: a}, {name: b, checkpoint: 'run:b'}]\n",
        "runs[1].checkpoint",
        ["run 'b' trains nothing", "runs that train are: a"],
    ),
    "line_end_of_no_run": (
        "runs: [{name: a}, {name: l, checkpoint: 'run:a', surface: {y: null, directions: "
        "{kind: line, checkpoints: ['run:a', 'run:c']}}}]\n",
        "runs[1].surface.directions.checkpoints",
        ["no run 'c'", "runs that train are: a"],
    ),
    "run_checkpoint_without_runs": ("checkpoint: 'run:a'\n", "checkpoint", ["lists none"]),
}


@pytest.mark.parametrize("text, key, words", BAD.values(), ids=BAD.keys())
def test_bad_value_is_one_line_naming_file_and_key(
    write_yaml: Callable[..., Path], text: str, key: str, words: list[str]
) -> None:
    path = write_yaml(text)
    msg = _assert_one_line(_error(path), path, key)
    for w in words:
        assert w in msg


def test_invalid_yaml_names_the_line(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("name: x\ntrain:\n  epochs: 3\n  lr: [0.1\nsurface: {}\n")
    msg = _assert_one_line(_error(path), path, None)
    assert "invalid YAML at line" in msg


def test_top_level_must_be_a_mapping(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("- 1\n- 2\n")
    assert "mapping" in _assert_one_line(_error(path), path, None)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert "no such config file" in _assert_one_line(_error(path), path, None)


def test_unknown_profile_suggests_and_lists(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("profiles: {quick: {train: {epochs: 1}}, tiny: {}}\n")
    msg = _assert_one_line(_error(path, profile="quik"), path, "profiles")
    assert "did you mean quick" in msg
    assert "quick, tiny" in msg


def test_empty_file_gives_the_defaults_named_after_the_file(
    write_yaml: Callable[..., Path],
) -> None:
    cfg = load_config(write_yaml("", name="my_exp.yaml"))
    assert cfg.name == "my_exp"
    assert cfg.train == Config().train


def test_batch_size_is_auto_unless_given(write_yaml: Callable[..., Path]) -> None:
    assert load_config(write_yaml("")).surface.batch_size == "auto"
    assert load_config(write_yaml("surface: {batch_size: 256}\n")).surface.batch_size == 256


def test_float_in_exponent_notation(write_yaml: Callable[..., Path]) -> None:
    # YAML 1.1 reads `1e-3` (no dot) as a string; configs and --set write it that way all the time.
    cfg = load_config(write_yaml("train: {lr: 1e-3, weight_decay: 5e-4}\n"))
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.weight_decay == pytest.approx(5e-4)


# ----------------------------------------------------------------------------- --set and profiles


def test_set_overrides_nested_keys_with_yaml_values(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("train: {epochs: 5}\n")
    cfg = load_config(
        path,
        [
            "train.epochs=7",
            "surface.x=[-2, 2, 11]",
            "surface.y=null",
            "surface.directions.norm=layer",
            "model.args.width=2",
            "data.augment=false",
            "train.lr=1e-2",
        ],
    )
    assert cfg.train.epochs == 7
    assert cfg.surface.x == [-2.0, 2.0, 11.0]
    assert cfg.surface.y is None
    assert cfg.surface.directions.norm == "layer"
    assert cfg.model.args == {"width": 2}
    assert cfg.data.augment is False
    assert cfg.train.lr == pytest.approx(0.01)


def test_set_applies_after_the_profile(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("profiles: {quick: {train: {epochs: 2, lr: 0.5}}}\n")
    cfg = load_config(path, ["train.epochs=4"], profile="quick")
    assert (cfg.train.epochs, cfg.train.lr) == (4, 0.5)


def test_set_into_a_null_section(write_yaml: Callable[..., Path]) -> None:
    cfg = load_config(write_yaml("plot: null\n"), ["plot.format=pdf"])
    assert cfg.plot.format == "pdf"


@pytest.mark.parametrize(
    "item, key, words",
    [
        ("train.epoch=3", "train.epoch", ["unknown key", "'epochs'"]),
        ("train.epochs=zero", "train.epochs", ["expected an integer"]),
        ("surface.x=[1", "surface.x", ["cannot parse"]),
        ("train.epochs.max=3", "train.epochs", ["expected an integer"]),
        ("name.sub=3", "name.sub", ["not a section"]),
        ("train.lr=.nan", "train.lr", ["finite number"]),
        ("train.milestones=[10, -5]", "train.milestones", ["positive epochs"]),
        ("surface.x=[-1, 1, 1e9]", "surface.x", ["at most 100001 points per axis"]),
        ("plot.kinds=[contur]", "plot.kinds", ["did you mean contour"]),
        ("plot.levels=-2", "plot.levels", ["at least 2"]),
        ("plot.dpi=0", "plot.dpi", ["positive integer"]),
        ("compare.vmin=.nan", "compare.vmin", ["finite number"]),
        ("compare.runs=[nope]", "compare.runs", ["no run 'nope'", "runs are: x"]),
        ("compare.titles=[a, b]", "compare.titles", ["expected 1 title,", "got 2"]),
    ],
)
def test_bad_set_is_one_line(
    write_yaml: Callable[..., Path], item: str, key: str, words: list[str]
) -> None:
    path = write_yaml("name: x\n")
    msg = _assert_one_line(_error(path, overrides=[item]), path, key)
    for w in words:
        assert w in msg


def test_set_reaches_checks_that_need_the_runs(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("runs: [{name: deep}, {name: wide, surface: {y: null}}]\n")
    msg = _assert_one_line(
        _error(path, overrides=["plot.kinds=[contour]"]), path, "runs[1].plot.kinds"
    )
    assert "1D" in msg
    msg = _assert_one_line(
        _error(path, overrides=["compare.runs=[deep, wid]"]), path, "compare.runs"
    )
    assert "did you mean wide" in msg


def test_profile_reaches_the_new_checks(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("profiles: {quick: {plot: {dpi: 0}, train: {lr: .inf}}}\n")
    msg = _assert_one_line(_error(path, profile="quick"), path, "train.lr")
    assert "finite number" in msg


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("profiles: {quick: 3}\n", "profiles.quick", ["expected a mapping of settings", "3"]),
        ("profiles: [quick]\n", "profiles", ["expected a mapping of profile names"]),
        (
            "profiles: {quick: {trian: {epochs: 1}}}\n",
            "profiles.quick.trian",
            ["unknown key", "did you mean 'train'"],
        ),
        (
            "train: {epochs: 5}\nprofiles: {quick: {train: {epochs: one}}}\n",
            "profiles.quick.train.epochs",
            ["expected an integer", "'one'"],
        ),
        ("profiles: {quick: {source: x}}\n", "profiles.quick.source", ["unknown key"]),
    ],
    ids=["not_a_mapping", "profiles_a_list", "key_typo", "wrong_type", "internal_key"],
)
def test_bad_profile_is_one_line_naming_the_profiles_key(
    write_yaml: Callable[..., Path], text: str, key: str, words: list[str]
) -> None:
    # Named where it is written: train.epochs alone would send the reader to the wrong line.
    path = write_yaml(text)
    msg = _assert_one_line(_error(path, profile="quick"), path, key)
    for w in words:
        assert w in msg


def test_set_without_equals(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("{}\n")
    msg = _assert_one_line(_error(path, overrides=["train.epochs"]), path, None)
    assert "key.path=value" in msg


@pytest.mark.parametrize("item", ["=3", "train..epochs=3", ".epochs=3", "train.=3"])
def test_set_with_an_empty_key_part(write_yaml: Callable[..., Path], item: str) -> None:
    path = write_yaml("{}\n")
    msg = _assert_one_line(_error(path, overrides=[item]), path, None)
    assert "key.path=value with a name between the dots" in msg and repr(item) in msg


def test_set_wins_over_each_run(write_yaml: Callable[..., Path]) -> None:
    # A command-line override is the last word, even on a key a run sets for itself.
    path = write_yaml("runs: [{name: a, train: {epochs: 9}}, {name: b}]\n")
    runs = expand_runs(load_config(path, ["train.epochs=2"]))
    assert [r.train.epochs for r in runs] == [2, 2]


# ----------------------------------------------------------------------------- runs and layout


FIGURE = """
name: fig
out: results
train: {epochs: 4, lr: 0.05}
model: {name: resnet20, args: {width: 2}}
runs:
  - {name: plain}
  - {name: deep, model: {name: resnet56}, train: {epochs: 6}}
  - {name: noskip, model: {args: {shortcut: false}}}
"""


def test_runs_merge_over_the_base(write_yaml: Callable[..., Path]) -> None:
    cfg = load_config(write_yaml(FIGURE))
    plain, deep, noskip = expand_runs(cfg)
    assert (plain.run, plain.model.name, plain.train.epochs) == ("plain", "resnet20", 4)
    assert plain.model.args == {"width": 2}
    # A run replaces the keys it names and keeps every other one from the base.
    assert (deep.model.name, deep.train.epochs, deep.train.lr) == ("resnet56", 6, 0.05)
    assert deep.model.args == {"width": 2}
    # model.args is replaced as a whole, never merged: a run's args are the run's args.
    assert noskip.model.args == {"shortcut": False}
    assert noskip.model.name == "resnet20"


def test_run_dir_layout(write_yaml: Callable[..., Path]) -> None:
    cfg = load_config(write_yaml(FIGURE))
    assert cfg.run_dir == Path("results/fig")
    deep = expand_runs(cfg)[1]
    assert deep.run_dir == Path("results/fig/deep")
    assert deep.checkpoint_dir == Path("results/fig/deep/checkpoints")
    assert deep.final_checkpoint == Path("results/fig/deep/checkpoints/final.pt")
    assert deep.surface_path == Path("results/fig/deep/surface.h5")

    single = load_config(write_yaml("{}\n", name="solo.yaml"))
    assert single.run_dir == Path("outputs/solo")
    assert single.final_checkpoint == Path("outputs/solo/checkpoints/final.pt")
    given = config_from_dict({"checkpoint": "elsewhere/model.pt"})
    assert given.final_checkpoint == Path("elsewhere/model.pt")


def test_select_runs(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(FIGURE)
    cfg = load_config(path)
    assert [r.run for r in select_runs(cfg)] == ["plain", "deep", "noskip"]
    assert [r.run for r in select_runs(cfg, ["noskip", "plain"])] == ["plain", "noskip"]
    with pytest.raises(ConfigError) as info:
        select_runs(cfg, ["dep"])
    msg = _assert_one_line(info.value, path, None)
    assert "no run 'dep'" in msg and "did you mean deep" in msg


def test_config_without_runs_is_its_own_single_run(write_yaml: Callable[..., Path]) -> None:
    cfg = load_config(write_yaml("name: solo\n"))
    assert expand_runs(cfg) == [cfg]
    assert select_runs(cfg, ["solo"]) == [cfg]


def test_to_dict_round_trips(write_yaml: Callable[..., Path]) -> None:
    # Checkpoints and surface files store to_dict(); it must rebuild the same config.
    run = expand_runs(load_config(write_yaml(FIGURE)))[1]
    again = config_from_dict(run.to_dict())
    assert again.to_dict() == run.to_dict()
    assert again.run_dir == run.run_dir


def test_figure_settings_within_the_rules_load(write_yaml: Callable[..., Path]) -> None:
    cfg = load_config(
        write_yaml(
            "train: {milestones: [1, 2]}\n"
            "plot: {kinds: [contour, heatmap], levels: 2, dpi: 1, vmin: 0, vmax: 10, format: svg}\n"
            "runs: [{name: a}, {name: b}, {name: c}, {name: path, stages: [trajectory]}]\n"
            "compare: {runs: [c, a], titles: [C, A], kinds: [contourf], vmin: -1, vmax: 1e2}\n"
        )
    )
    assert cfg.compare.runs == ["c", "a"]
    assert cfg.plot.levels == 2


def test_titles_count_only_runs_that_make_a_surface(write_yaml: Callable[..., Path]) -> None:
    # As in reproduce: a run without the surface stage is not in the side-by-side figure.
    path = write_yaml("runs: [{name: a}, {name: b}, {name: t, stages: [trajectory]}]\n")
    assert load_config(path, ["compare.titles=[A, B]"]).compare.titles == ["A", "B"]


def test_one_run_config_compares_under_its_own_name(write_yaml: Callable[..., Path]) -> None:
    cfg = load_config(write_yaml("name: solo\ncompare: {runs: [solo], titles: [Solo]}\n"))
    assert cfg.compare.runs == ["solo"]


def test_compare_kinds_default_to_the_runs_dimension(write_yaml: Callable[..., Path]) -> None:
    # None lets compare_figures pick contour and surface3d for 2D runs, line for 1D ones; a fixed
    # 2D default would make every config of 1D runs invalid.
    cfg = load_config(write_yaml("surface: {y: null}\nruns: [{name: a}, {name: b}]\n"))
    assert cfg.compare.kinds is None
    # Runs of both dimensions may be trained together; only a listed comparison must agree.
    load_config(write_yaml("runs: [{name: a}, {name: b, surface: {y: null}}]\n"))


def test_figure_kinds_match_the_plot_module() -> None:
    # config.py names the kinds itself so that loading a config does not import matplotlib.
    from landscape import plot

    assert config_module.KINDS_2D == plot.KINDS_2D
    assert config_module.KINDS_1D == plot.KINDS_1D


@pytest.mark.parametrize(
    "section",
    [
        lambda n: SurfaceConfig(x=[-1.0, 1.0, n], y=None),
        lambda n: TrajectoryConfig(grid=n),
        lambda n: HessianConfig(grid=n),
    ],
    ids=["surface", "trajectory", "hessian"],
)
def test_points_per_axis_cap_is_inclusive(
    section: Callable[[int], SurfaceConfig | TrajectoryConfig | HessianConfig],
) -> None:
    section(MAX_AXIS_POINTS).validate("s")
    with pytest.raises(ConfigError, match="at most 100001 points per axis"):
        section(MAX_AXIS_POINTS + 1).validate("s")


# ----------------------------------------------------------------------------- grid property


@given(
    lo=st.floats(-10, 10, allow_nan=False),
    hi=st.floats(-10, 10, allow_nan=False),
    num=st.integers(-2, 60),
)
def test_axis_accepted_exactly_when_it_makes_a_grid(lo: float, hi: float, num: int) -> None:
    ok = num >= 1 and (lo < hi or (lo == hi and num == 1))
    cfg = SurfaceConfig(x=[lo, hi, num], y=None)
    if ok:
        cfg.validate("surface")
    else:
        with pytest.raises(ConfigError) as info:
            cfg.validate("surface")
        assert info.value.key == "surface.x"


PAPER_LEVELS = [round(0.1 + 0.5 * i, 1) for i in range(20)]  # np.arange(0.1, 10, 0.5)


def test_quick_profile_shrinks_2d_runs_and_keeps_1d_runs_1d() -> None:
    cfg = load_config(ROOT / "configs" / "paper" / "fig3_vgg9_batch_size.yaml", profile="quick")
    runs = {r.run: r for r in expand_runs(cfg)}
    assert runs["interp_wd0"].surface.y is None and runs["interp_wd0"].surface.x[2] == 3
    assert runs["bs128_wd0"].surface.y is None
    for name in ("bs128_wd0_2d", "bs8192_wd5e-4_2d"):
        assert runs[name].surface.x[2] == 3 and runs[name].surface.y[2] == 3, name
    full = {r.run: r for r in expand_runs(load_config(cfg.source))}
    assert full["interp_wd0"].surface.x[2] == 401 and full["bs128_wd0_2d"].surface.y[2] == 51


@pytest.mark.parametrize(
    "name",
    ["fig1_resnet56_skip", "fig4_noshort_densenet", "fig5_resnet_depth", "fig7_hessian_ratio"],
)
def test_paper_configs_follow_the_papers_code(name: str) -> None:
    cfg = load_config(ROOT / "configs" / "paper" / f"{name}.yaml")
    assert cfg.compare.levels == PAPER_LEVELS and cfg.compare.vmax == 10
    for run in expand_runs(cfg):
        assert run.plot.levels == PAPER_LEVELS
        assert run.train.init == "paper", run.run
        # The deepest plain net trained at 0.01 in the paper; the others at 0.1.
        assert run.train.lr == (0.01 if run.model.name == "resnet110_noshort" else 0.1), run.run


@pytest.mark.parametrize("item", ["active_profile=1", "source=x", "run=x", "nosuch=1"])
def test_set_cannot_reach_the_programs_own_fields(item: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, [item])
    message = str(info.value)
    assert "unknown key" in message and "\n" not in message
    assert not any(f"'{k}'" in message for k in ("source", "active_profile", "run"))


def test_a_config_file_cannot_set_the_programs_own_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nactive_profile: {train: {epochs: 1}}\n")
    with pytest.raises(ConfigError, match="active_profile: unknown key"):
        load_config(path)
    path.write_text("name: c\nrun: r1\n")  # a run's saved config names its run: it loads
    assert load_config(path).run == "r1"
