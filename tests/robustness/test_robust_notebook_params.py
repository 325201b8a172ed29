"""A notebook run directly by papermill with a wrongly typed parameter stops in its first cell
with one clear error naming the parameter, before any work."""

from __future__ import annotations

import papermill as pm
import pytest

from helpers.core.paths import NOTEBOOKS_DIR
from helpers.core.records import make_records, save_records
from helpers.core.run_folder import RunFolder


def _fails(notebook: str, out, **parameters) -> pm.PapermillExecutionError:
    with pytest.raises(pm.PapermillExecutionError) as caught:
        pm.execute_notebook(
            str(NOTEBOOKS_DIR / notebook),
            str(out),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=False,
        )
    return caught.value


def test_a_wrong_type_is_named_by_the_parameters_check(tmp_path):
    (tmp_path / "run").mkdir()  # notebook 01 made it; 02 checks its parameters first
    error = _fails(
        "02_eda.ipynb",
        tmp_path / "02.ipynb",
        run_dir=str(tmp_path / "run"),
        profile="smoke",
        eda_sample="abc",
    )
    assert (error.ename, error.evalue) == (
        "ConfigError",
        "parameter eda_sample='abc' should be int",
    )
    assert "profiles.resolve(profile, eda_sample=eda_sample)" in error.source  # first cell


def test_a_mistyped_run_folder_is_named_not_made(tmp_path):
    error = _fails("02_eda.ipynb", tmp_path / "02.ipynb", run_dir=str(tmp_path / "rnu"))
    assert error.ename == "ConfigError" and "does not exist" in error.evalue
    assert not (tmp_path / "rnu").exists()


def test_training_parameters_are_checked_before_any_training(tmp_path):
    run = RunFolder(tmp_path / "run")
    rows = [
        {
            "id": f"r{i}",
            "image": f"/nowhere/{i}.png",
            "source": "s",
            "expression": i % 2,
            "split": ("train", "val")[i % 2],
        }
        for i in range(4)
    ]
    table = make_records(rows)
    save_records(table, run.splits)
    save_records(table[table["split"] == "train"].assign(augmented=False), run.train_table)
    error = _fails(
        "04_train.ipynb", tmp_path / "04a.ipynb", run_dir=str(run), profile="smoke", epochs="abc"
    )
    assert (error.ename, error.evalue) == (
        "ConfigError",
        "TrainConfig.epochs must be an integer >= 1 (got 'abc')",
    )
    error = _fails(
        "04_train.ipynb", tmp_path / "04b.ipynb", run_dir=str(run), profile="smoke", image_size=-1
    )
    assert error.ename == "ConfigError" and error.evalue.startswith("TrainConfig.image_size")
    error = _fails(
        "04_train.ipynb", tmp_path / "04c.ipynb", run_dir=str(run), profile="smoke", weight_decay=2
    )
    assert error.ename == "ConfigError" and error.evalue.startswith("TrainConfig.weight_decay")
    assert not run.model_path("custom_cnn").exists()
