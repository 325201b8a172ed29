"""What a notebook's kernel run by hand shows: the project's own errors (ConfigError, DataError)
as their message, not a traceback through the helpers that found the problem.

A kernel that `./run_all.sh` runs (PROGRESS_ENV set) keeps every traceback: the executed notebook
is where its failure message sends the reader for the full story.
"""

from __future__ import annotations

import os
from typing import Any

from helpers.core.errors import ConfigError, DataError
from helpers.core.progress import PROGRESS_ENV, ipython_shell

BRIEF = (ConfigError, DataError)


def show_brief(
    ipython: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None
) -> None:
    """IPython's custom exception handler: the error's type and message with IPython's own
    hint that `%tb` shows the traceback, as an error output (the cell still fails)."""
    ipython.showtraceback((etype, value, tb), tb_offset=tb_offset, exception_only=True)


def install() -> bool:
    """Show BRIEF errors as their message in an IPython shell run by hand; True if installed.
    A handler the user set already is left alone."""
    ipython = ipython_shell()
    if ipython is None or os.environ.get(PROGRESS_ENV) or ipython.custom_exceptions:
        return False
    ipython.set_custom_exc(BRIEF, show_brief)
    return True
