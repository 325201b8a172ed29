"""What a notebook's kernel run by hand shows: progress lines under the cell, and the project's
own errors as their message. One real IPython kernel runs a few small cells."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.core.progress import PROGRESS_ENV

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

CELLS = {
    "line": "from helpers.core import progress\n"
    "progress.line('scoring 31 test faces ...')\n"
    "progress.terminal('shown another way in the notebook')\n"
    "progress.say(['said once'])",
    "config": "from helpers.core.errors import ConfigError\n"
    "def deep():\n    raise ConfigError('model must be one of [...]')\n"
    "deep()",
    "tb": "%tb",
    "data": "from helpers.data.splits import LeakageError\n"
    "raise LeakageError('splits.parquet', 'ids in two splits')",
    "other": "def deep():\n    raise ValueError('not the project')\ndeep()",
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The cells run, in order, by one kernel started as a person's would be (no runner)."""
    patch = pytest.MonkeyPatch()
    patch.delenv(PROGRESS_ENV, raising=False)
    patch.setenv("PYTHONPATH", str(ROOT / "src"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS.values()]
    workdir = tmp_path_factory.mktemp("kernel")
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(workdir)}},
        ).execute()  # fmt: skip
    finally:
        patch.undo()
    return dict(zip(CELLS, nb.cells, strict=True))


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _error(cell) -> dict:
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    return {**error, "traceback": [ANSI.sub("", t) for t in error["traceback"]]}


def test_a_progress_line_prints_under_the_cell_once_and_a_terminal_line_not_at_all(executed):
    assert _text(executed["line"]) == "scoring 31 test faces ...\nsaid once\n"


@pytest.mark.parametrize("cell", ["config", "data"])
def test_the_projects_errors_show_as_their_message_not_a_traceback(executed, cell):
    error = _error(executed[cell])
    shown = "\n".join(error["traceback"]).strip()
    assert error["ename"] in ("ConfigError", "LeakageError")  # still an error: the cell fails
    assert "deep()" not in shown and "File " not in shown and "Traceback" not in shown
    assert shown.splitlines()[-1] == f"{error['ename']}: {error['evalue']}"
    assert "%tb" in shown  # IPython's hint: the traceback is a magic away


def test_the_traceback_of_the_projects_error_is_a_magic_away(executed):
    shown = "\n".join(_error(executed["tb"])["traceback"])
    assert "deep()" in shown and "ConfigError: model must be one of [...]" in shown


def test_other_errors_keep_their_traceback(executed):
    shown = "\n".join(_error(executed["other"])["traceback"])
    assert "deep()" in shown and "ValueError: not the project" in shown


class _Shell:
    """Enough of an IPython shell for the choices made before any cell runs."""

    custom_exceptions: tuple = ()

    def set_custom_exc(self, exceptions: tuple, handler) -> None:
        self.custom_exceptions, self.handler = exceptions, handler


def test_a_kernel_run_by_the_runner_writes_its_lines_to_the_terminal_alone(
    tmp_path, monkeypatch, capsys
):
    from helpers.core import progress

    monkeypatch.setattr(progress, "ipython_shell", _Shell)
    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "lines"))
    progress.line("training on 496 faces")
    assert (tmp_path / "lines").read_text() == "training on 496 faces\n"
    assert capsys.readouterr().out == ""  # the stage's log: not a second copy
    monkeypatch.setattr(progress, "ipython_shell", lambda: None)
    monkeypatch.delenv(PROGRESS_ENV)
    progress.line("a plain Python process")  # a command's output stays its own
    assert capsys.readouterr().out == ""


def test_a_kernel_run_by_the_runner_keeps_every_traceback(monkeypatch):
    """The executed notebook is where run_all's failure message sends the reader."""
    from helpers.core import kernel
    from helpers.core.errors import ConfigError, DataError

    shell = _Shell()
    monkeypatch.setattr(kernel, "ipython_shell", lambda: shell)
    monkeypatch.setenv(PROGRESS_ENV, "lines")
    assert not kernel.install() and shell.custom_exceptions == ()
    monkeypatch.delenv(PROGRESS_ENV)
    assert kernel.install() and shell.custom_exceptions == (ConfigError, DataError)
    assert not kernel.install()  # a handler already set is left alone
