"""The run's tables refuse a folder that is no run, as paired_table does: a mistyped path,
a run's own subfolder or an argument of the wrong type is one ConfigError, never an empty
table that reads as "no models"."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.core.errors import ConfigError
from helpers.core.jsonio import write_json
from helpers.inference.deploy import deployment_table
from helpers.reporting.results import results_table

TABLES = {"results_table": results_table, "deployment_table": deployment_table}


def _run(folder: Path) -> Path:
    """A run folder as ./run_all.sh leaves it: a manifest and a model's folder."""
    write_json(folder / "manifest.json", {"profile": {"name": "smoke"}, "seed": 0})
    (folder / "models").mkdir(parents=True)
    return folder


@pytest.mark.parametrize("name", TABLES)
def test_a_folder_that_does_not_exist_is_a_config_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}: run folder .*nowhere does not exist$"):
        TABLES[name](tmp_path / "nowhere")


@pytest.mark.parametrize("name", TABLES)
def test_a_folder_holding_no_run_is_a_config_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(ConfigError, match=rf"^{name}: .*photos is not a run folder \(no "):
        TABLES[name](tmp_path / "photos")


@pytest.mark.parametrize("name", TABLES)
def test_a_runs_subfolder_is_named_as_such(tmp_path: Path, name: str) -> None:
    run = _run(tmp_path / "run")
    with pytest.raises(ConfigError, match=rf"^{name}: .* is the models/ folder of the run "):
        TABLES[name](run / "models")


@pytest.mark.parametrize("name", TABLES)
@pytest.mark.parametrize("run_dir", [123, None, b"reports/run"])
def test_a_run_dir_of_the_wrong_type_is_a_config_error(name: str, run_dir: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}: run_dir must be a run folder path"):
        TABLES[name](run_dir)  # type: ignore[operator]


def test_a_run_without_metrics_or_exports_still_gives_an_empty_table(tmp_path: Path) -> None:
    """A run before notebook 05 (or without its TFLite export) is a run: no rows, no error."""
    run = _run(tmp_path / "run")
    assert results_table(run).empty and deployment_table(run).empty
