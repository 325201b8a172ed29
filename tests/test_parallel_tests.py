"""`./run_tests.sh` shares the tests out over the cores (pytest-xdist): a test file runs whole
on one worker, and every notebook runs on one worker in order (each reads the run folder the one
before wrote). tests/conftest.py's scheduler does that; these tests hold it to it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core.paths import REPO_ROOT

pytest.importorskip("xdist")
CONFTEST = Path(__file__).with_name("conftest.py")


def test_notebooks_form_one_work_unit_and_test_files_one_each() -> None:
    spec = importlib.util.spec_from_file_location("project_conftest", CONFTEST)
    assert spec and spec.loader
    project = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(project)
    work_unit = project.work_unit
    cells = ["build/nbval/01_extract.ipynb::Cell 2", "build/nbval/07_predict.ipynb::Cell 9"]
    assert {work_unit(c) for c in cells} == {"notebooks"}
    assert work_unit("tests/test_x.py::test_a[1::2]") == "tests/test_x.py"
    assert work_unit("tests/test_x.py::Suite::test_b") == "tests/test_x.py"
    assert work_unit("tests/robustness/test_y.py::test_c") == "tests/robustness/test_y.py"


# A conftest for the scratch suite that takes the project's scheduler, as tests/ does.
SCRATCH_CONFTEST = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("project_conftest", {str(CONFTEST)!r})
project = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project)
pytest_xdist_make_scheduler = project.pytest_xdist_make_scheduler
"""

# Each test and notebook cell appends (what ran, which worker) to one log.
RECORD = (
    "import os; open({log!r}, 'a').write("
    "'{what} ' + os.environ.get('PYTEST_XDIST_WORKER', '-') + chr(10))"
)

SCRATCH_TESTS = """
import pytest

@pytest.fixture(scope="module")
def once():
    {record_fixture}

@pytest.mark.parametrize("k", range(4))
def test_it(once, k):
    {record_test}
"""


def _notebook(path: Path, sources: list[str]) -> None:
    """A minimal nbformat-4 notebook with one code cell per source."""
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for s in sources
    ]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


def test_two_workers_keep_notebooks_in_order_and_files_whole(tmp_path: Path) -> None:
    """Under `-n 2` the notebooks' cells all ran on one worker, in order, and each file's tests on
    one worker with its module fixture built once."""
    log = tmp_path / "ran.log"
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(SCRATCH_CONFTEST)
    for name in ("a", "b", "c"):
        (suite / f"test_{name}.py").write_text(
            SCRATCH_TESTS.format(
                record_fixture=RECORD.format(log=str(log), what=f"fixture-{name}"),
                record_test=RECORD.format(log=str(log), what=f"test-{name}"),
            )
        )
    for n in (1, 2, 3):
        _notebook(
            suite / f"0{n}_step.ipynb",
            [RECORD.format(log=str(log), what=f"nb{n}-cell{c}") for c in (1, 2)],
        )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider"),
            *("--nbval-lax", "--nbval-current-env", "--rootdir", str(suite), str(suite)),
        ],
        cwd=suite,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(suite)])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = [line.split() for line in log.read_text().splitlines()]
    assert {worker for _, worker in ran} == {"gw0", "gw1"}  # both workers had work
    cells = [(what, worker) for what, worker in ran if what.startswith("nb")]
    assert [what for what, _ in cells] == [f"nb{n}-cell{c}" for n in (1, 2, 3) for c in (1, 2)]
    assert len({worker for _, worker in cells}) == 1
    for name in ("a", "b", "c"):
        mine = [(what, worker) for what, worker in ran if what.endswith(f"-{name}")]
        assert [what for what, _ in mine].count(f"fixture-{name}") == 1
        assert len({worker for _, worker in mine}) == 1
