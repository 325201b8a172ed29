"""Shared by every test folder. pytest puts this file's folder (tests/) on sys.path, so test
modules anywhere below import the shared builders as `from builders import ...` and the figure
checks as `from figure_checks import ...`."""

from __future__ import annotations

from typing import Any

import pytest


def work_unit(nodeid: str) -> str:
    """What one pytest-xdist worker runs whole: a test file (its module fixtures run once), or
    every notebook, in order, since each reads the run folder the one before wrote."""
    path = nodeid.split("::", 1)[0]
    return "notebooks" if path.endswith(".ipynb") else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`./run_tests.sh` runs on every core (pytest-xdist); work is shared out by `work_unit`."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)
