"""The lists the docs give by hand match the code they describe: the profiles, the runner's
options, the profiles a new model joins, the parameters cell, the caches under data/."""

import json
import re

from helpers.core import paths
from helpers.models import registry
from helpers.run import profiles
from test_docs import _options, _parser

ROOT = paths.REPO_ROOT
TICKED = re.compile(r"`([^`\n]+)`")


def _text(relative: str) -> str:
    """A document, its lines joined, so a sentence is found across a line break."""
    return " ".join((ROOT / relative).read_text(encoding="utf-8").split())


def _after(text: str, start: str, end: str) -> str:
    """The text between the first `start` and the next `end` (an AssertionError if absent)."""
    assert start in text, f"{start!r} is no longer in the document"
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_architecture_table_names_every_profile():
    """docs/architecture.md's row for `run/profiles.py` lists each profile PROFILES defines."""
    row = _after(_text("docs/architecture.md"), "| Profiles (", ") |")
    assert set(TICKED.findall(row)) == set(profiles.PROFILES)


def test_scaling_names_every_run_all_option(monkeypatch):
    """docs/scaling.md's list of the runner's options leaves none out and names none extra."""
    listed = _after(_text("docs/scaling.md"), "Its options (`src/helpers/run/runner.py`", ". With")
    named = {m.split()[0] for m in TICKED.findall(listed) if m.startswith("--")}
    options = _options(_parser("helpers.run.runner", monkeypatch))
    assert named == {o for o in options if o.startswith("--")} - {"--help"}


def test_a_new_model_joins_the_profiles_the_docs_name():
    """README and docs/architecture.md name the profiles whose models are the registry's
    compared list, the ones a new `compared` entry joins."""
    joining = {
        name
        for name, profile in profiles.PROFILES.items()
        if tuple(profile.models) == tuple(registry.list_models(compared_only=True))
    }
    readme = _after(_text("README.md"), "every profile that does not name its models", "(")
    architecture = _after(
        _text("docs/architecture.md"), "every profile that does not name its models", ";"
    )
    assert set(TICKED.findall(readme)) == set(TICKED.findall(architecture)) == joining


def test_every_notebooks_first_code_cell_is_its_parameters_cell():
    """The README says where the parameters cell is; papermill injects after it."""
    assert "Every notebook's first code cell, below its title, is tagged `parameters`" in _text(
        "README.md"
    )
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert cells[0]["cell_type"] == "markdown", notebook.name
        assert "parameters" in code[0]["metadata"].get("tags", []), notebook.name


def test_the_readme_and_data_readme_list_the_same_caches():
    """What a run may write under data/cache/ is listed alike in both files."""
    start, end = "in `data/cache/`, faces decoded", " face-box CSV"
    readme = _after(_text("README.md"), start, end)
    data = _after(_text("data/README.md"), start, end)
    assert readme == data
    for reader in ("FER-2013 CSV", "ExpW", "JAFFE", "CK+", "AffectNet as released"):
        assert reader in readme


def test_notebook_04_names_every_architecture_the_registry_has():
    """Notebook 04's introduction names each model it can train (custom CNN: custom_cnn)."""
    import nbformat

    intro = nbformat.read(ROOT / "notebooks" / "04_train.ipynb", as_version=4).cells[0].source
    said = re.sub(r"[\s_]", "", intro.lower())
    assert [m for m in registry.list_models() if m.replace("_", "") not in said] == []


def test_notebook_04_says_what_the_learning_curves_of_one_epoch_look_like():
    """One epoch has no curve: plots.plot_learning_curves draws bars, and the prose says so."""
    import nbformat

    cells = nbformat.read(ROOT / "notebooks" / "04_train.ipynb", as_version=4).cells
    prose = next(c.source for c in cells if c.source.startswith("## Learning curves"))
    assert "one epoch" in prose and "bars" in prose


def test_the_readmes_face_box_csv_row_names_every_column_the_reader_reads():
    """Every column the face-box CSV reader takes (its optional split and confidence too) is
    named in README's row for it, so a user learns a split column keeps their test split."""
    from helpers.data.datasets import csv_boxes

    row = _after(_text("README.md"), "| face-box CSV |", "|")
    for column in csv_boxes.DEFAULT_COLUMNS:
        assert re.search(rf"\b{column}\b", row), f"README's face-box CSV row lacks {column!r}"
