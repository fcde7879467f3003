"""`stages` of a config: reproduce runs the PCA trajectory (Fig. 9) and the Hessian ratio map
(Fig. 7) from the config's `trajectory` and `hessian` sections; the CLI flags override them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import TINY_RAW

from landscape.cli import main
from landscape.config import config_from_dict, deep_merge
from landscape.errors import ConfigError
from landscape.pipeline import reproduce
from landscape.storage import read_surface

pytestmark = pytest.mark.usefixtures("single_thread")

# Three epochs, a checkpoint after each: a path of 4 points (epochs 0-2 and the final weights).
STAGED: dict[str, Any] = deep_merge(
    copy.deepcopy(TINY_RAW),
    {
        "train": {"epochs": 3, "save_every": 1},
        "stages": ["trajectory", "hessian"],
        "trajectory": {"grid": 3},
        "hessian": {"grid": 2, "iters": 3, "samples": 16, "probes": 2},
    },
)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (["surface", "hessain"], "stages: 'hessain' is not one of .*did you mean hessian"),
        ([], "stages: name at least one of surface, trajectory, hessian"),
    ],
)
def test_unknown_or_no_stages_are_one_line_errors(stages: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        config_from_dict({**TINY_RAW, "stages": stages})
    assert "\n" not in str(err.value)


def test_hessian_section_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="hessian.probes: must be at least 2, got 1"):
        config_from_dict({**TINY_RAW, "hessian": {"probes": 1}})


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Path]]:
    out = tmp_path_factory.mktemp("staged")
    cfg = config_from_dict({**STAGED, "out": str(out)})
    return cfg, reproduce(cfg, progress=False)


def test_reproduce_runs_the_configured_stages_only(staged_run: tuple[Any, list[Path]]) -> None:
    cfg, figures = staged_run
    names = sorted(p.name for p in figures)
    assert names == ["hessian_ratio.png", "trajectory.png"]
    assert all(p.stat().st_size > 0 for p in figures)
    assert not cfg.surface_path.exists()  # no surface stage, so no surface and no report
    assert not (Path(cfg.out) / cfg.name / "report.html").exists()
    trajectory = read_surface(cfg.run_dir / "trajectory.h5")
    assert trajectory.complete and trajectory.metrics["train_loss"].shape == (3, 3)
    hessian = read_surface(cfg.run_dir / "hessian.h5")
    assert hessian.complete and hessian.metrics["ratio"].shape == (2, 2)
    assert hessian.attrs["iters"] == 3


def test_cli_flags_override_the_config_section(
    staged_run: tuple[Any, list[Path]], tmp_path: Path, write_yaml: Callable[..., Path]
) -> None:
    cfg, _ = staged_run
    config = write_yaml(yaml.safe_dump({**STAGED, "out": cfg.out}))
    runner = CliRunner()
    # Same settings as the config: the finished file is reused, not recomputed.
    same = runner.invoke(main, ["trajectory", str(config), "--quiet"])
    assert same.exit_code == 0, same.output
    assert read_surface(cfg.run_dir / "trajectory.h5").metrics["train_loss"].shape == (3, 3)
    # A flag wins over the section; the changed grid needs --overwrite to replace the file.
    wider = runner.invoke(main, ["trajectory", str(config), "--grid", "4", "--overwrite", "-q"])
    assert wider.exit_code == 0, wider.output
    assert read_surface(cfg.run_dir / "trajectory.h5").metrics["train_loss"].shape == (4, 4)


def test_compare_titles_follow_their_runs_and_a_range_without_data_falls_back(
    tmp_path: Path,
) -> None:
    raw = deep_merge(
        copy.deepcopy(TINY_RAW),
        {
            "out": str(tmp_path),
            "runs": [{"name": "a"}, {"name": "b", "train": {"lr": 0.05}}],
            # Listed b first: each title must stay with its run. No loss is as low as vmax.
            "compare": {
                "runs": ["b", "a"],
                "titles": ["title-b", "title-a"],
                "vmax": 1e-6,
            },
        },
    )
    said: list[str] = []
    figures = reproduce(config_from_dict(raw), progress=False, log=said.append)
    assert any("drawing on an automatic scale instead" in line for line in said)
    assert any(p.name.startswith("compare_train_loss") for p in figures)
    (table,) = [line for line in said if "title-a" in line]
    assert table.index("title-b") < table.index("title-a")


def test_runs_of_1d_and_2d_surfaces_skip_the_comparison_not_the_run(tmp_path: Path) -> None:
    raw = deep_merge(
        copy.deepcopy(TINY_RAW),
        {
            "out": str(tmp_path),
            "runs": [{"name": "plane"}, {"name": "line", "surface": {"y": None}}],
        },
    )
    said: list[str] = []
    figures = reproduce(config_from_dict(raw), progress=False, log=said.append)
    assert any("the runs make 1D and 2D surfaces" in line for line in said)
    assert not any(p.name.startswith("compare_") for p in figures)
    assert (tmp_path / "t" / "report.html").is_file()


def _spy_on_plot(monkeypatch: pytest.MonkeyPatch, name: str) -> list[dict[str, Any]]:
    """The keyword arguments of every call of landscape.plot.<name>, which still draws."""
    import landscape.plot as plot_module

    drawn: list[dict[str, Any]] = []
    real = getattr(plot_module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        drawn.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(plot_module, name, spy)
    return drawn


def test_compare_section_draws_log_panels_at_the_given_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = _spy_on_plot(monkeypatch, "plot_compare")
    levels = [0.1, 0.6, 1.1, 1.6]
    raw = deep_merge(
        copy.deepcopy(TINY_RAW),
        {
            "out": str(tmp_path),
            "runs": [{"name": "a"}, {"name": "b", "train": {"lr": 0.05}}],
            "compare": {"kinds": ["contour"], "log": True, "levels": levels},
        },
    )
    figures = reproduce(config_from_dict(raw), progress=False)
    assert (tmp_path / "t" / "compare_train_loss_log_contour.png") in figures
    assert any(d.get("log") is True and d.get("levels") == levels for d in drawn)


def test_the_trajectory_figure_follows_the_plot_section(
    staged_run: tuple[Any, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from landscape.pipeline import trajectory_stage

    cfg, _ = staged_run
    drawn = _spy_on_plot(monkeypatch, "plot_trajectory")
    styled = {"levels": [0.5, 1.0, 2.0], "vmax": 10.0, "metric": "train_loss"}
    run = config_from_dict({**STAGED, "out": cfg.out, "plot": styled})
    _, figure = trajectory_stage(run, lambda s: None, overwrite=True)
    assert figure.exists()
    (kw,) = drawn
    assert kw["levels"] == [0.5, 1.0, 2.0] and kw["vmax"] == 10.0
    assert kw["metric"] == "train_loss" and kw["log"] is False
