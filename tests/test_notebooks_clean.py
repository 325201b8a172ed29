"""Committed notebooks stay clean: kernel python3, a parameters cell, outputs only where checked."""

import re

import nbformat
import pytest

from helpers.core import paths
from helpers.run import nbtools

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    assert nbtools.problems(path) == []


def test_notebooks_are_numbered_in_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == sorted(numbers) and numbers[0] == 1


def test_clean_keeps_only_checked_outputs():
    nb = nbformat.v4.new_notebook()
    plain = nbformat.v4.new_code_cell("1")
    checked = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n1")
    for cell in (plain, checked):
        cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
        cell.execution_count = 3
    nb.cells = [plain, checked]
    nbtools.clean(nb)
    assert plain.outputs == [] and len(checked.outputs) == 1
    assert plain.execution_count is None and checked.execution_count == 1  # nbval needs it
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_parameter(path):
    """A parameter papermill cannot parse is silently never overridden by run_all.sh."""
    import ast

    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {
        t.id
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert set(pm.inspect_notebook(str(path))) == assigned


def test_the_readme_training_settings_are_notebook_04_parameters():
    """Every setting the README's training-settings table names can be set where it says."""
    import re

    import papermill as pm

    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Training settings", 1)[1].split("\n### ", 1)[0]
    named = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`(\w+)`", row.split("|")[1])
    }
    assert {"backbone_options", "weight_decay", "mixed_precision"} <= named
    assert named <= set(pm.inspect_notebook(str(paths.NOTEBOOKS_DIR / "04_train.ipynb")))


def test_notebook_04_names_the_files_it_wrote_not_a_placeholder():
    """It prints the model's own file names, and its checked output holds none, so the copy of
    the notebook nbval runs for every model checks the same lines."""
    notebook = nbformat.read(paths.NOTEBOOKS_DIR / "04_train.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert any('f"{p.parent.name}/{p.name}" for p in written' in c.source for c in code)
    assert not any("<model>" in c.source for c in code)
    checked = [
        "".join(o.get("text", ""))
        for c in code
        if c.source.startswith("# NBVAL_CHECK_OUTPUT")
        for o in c.get("outputs", [])
    ]
    assert "model, card and history written: True" in "".join(checked)
    models = ("custom_cnn", "vgg16", "resnet50", "mobilenetv2")
    assert not [text for text in checked if any(m in text for m in models)]


def test_notebook_03_writes_its_split_through_the_guard_alone():
    """It saves once, through splits.save_split with its parameter passed (records.parquet's
    split column too, as the run folder's contract says; refused under models of another
    split), writes neither table another way, and starts from the data's own split
    (records.as_read) when run again."""
    notebook = nbformat.read(paths.NOTEBOOKS_DIR / "03_augment.ipynb", as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "discard_models = False" in notebook.cells[1].source
    assert code.count("splits.save_split(split_table, run, discard_models=discard_models)") == 1
    written = re.findall(r"save_records\([^)]*\)|to_parquet\([^)]*\)", code)
    assert written == ["save_records(train_table, run.train_table)"], written
    assert "records.as_read(records.load_records(run.need(run.records)))" in code


def test_the_notebooks_that_load_tensorflow_say_so_before_they_import_it():
    """Importing TensorFlow takes a minute on a busy CPU: notebooks 04-07 send a line to the
    terminal of ./run_all.sh before their imports (a light module first), not after."""
    import json

    from helpers.core import paths

    said = 'progress.line("loading TensorFlow and Keras ...")'
    for name in ("04_train", "05_evaluate", "06_report", "07_predict"):
        cells = json.loads((paths.NOTEBOOKS_DIR / f"{name}.ipynb").read_text())["cells"]
        imports = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][1]
        first = min(
            imports.index(f"from helpers.{package}")
            for package in ("train", "evaluation", "inference", "reporting", "run")
            if f"from helpers.{package}" in imports
        )
        assert said in imports and imports.index(said) < first, name
