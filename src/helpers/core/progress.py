"""Progress a person can follow: tqdm bars in a notebook, and under `./run_all.sh` plain lines
that the runner shows in the terminal while a stage runs (the kernel's own output goes to the
stage's log there, so TensorFlow's chatter stays out of sight).

The runner names a file in the environment variable PROGRESS_ENV; `line()` and `terminal()`
append to it and the runner prints what arrives. Without that file, `line()` (what a long step
starts, how far it is) prints in a notebook's cell instead, and `terminal()` (what the notebook
shows another way) says nothing; in a plain Python process neither prints.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

PROGRESS_ENV = "AFFECT_PROGRESS_FILE"
# A long loop reports at most this often; a loop shorter than this prints nothing at all.
LINE_EVERY_S = 10.0


def ipython_shell() -> Any | None:
    """The IPython shell this process runs (a notebook's kernel), or None; IPython is never
    imported here, so a plain Python process pays nothing to ask."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def line(text: str) -> None:
    """What a long step starts or how far it is: a line in the terminal of `./run_all.sh`, or
    under a notebook's cell run by hand, which would otherwise sit silent for minutes."""
    if not terminal(text) and ipython_shell() is not None:
        print(" ".join(text.split()), flush=True)


def terminal(text: str) -> bool:
    """One line for the terminal of `./run_all.sh` alone (the notebook shows it another way);
    False, and nothing done, when not running under it."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(" ".join(text.split()) + "\n")
    except OSError:
        pass  # progress is a courtesy: a full disk must not stop the work
    return True


def say(lines: list[str]) -> None:
    """Print each line here (a notebook's output) and in the terminal of `./run_all.sh`, which
    shows no notebook: what a stage left out or found wrong must reach both."""
    for text in lines:
        print(text)
        terminal(text)


class _Bar(tqdm):
    """tqdm that also reports to terminal() every LINE_EVERY_S seconds, and once more at the end."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._started = self._last = time.monotonic()
        self._reported: float | None = None  # the count last reported

    def _report(self) -> None:
        total = f"/{self.total:,}" if self.total else ""
        share = f"{self.n / self.total:.0%} " if self.total else ""
        seconds = max(time.monotonic() - self._started, 1e-9)
        rate = self.n / seconds
        # a slow loop (a pass of minutes) reads as seconds per step, not "0 pass/s"
        pace = (
            f"{rate:,.0f} {self.unit}/s"
            if rate >= 1 or not self.n
            else (f"{seconds / self.n:,.0f} s/{self.unit}")
        )
        terminal(f"{self.desc}: {share}({self.n:,}{total} {self.unit}, {pace})")
        self._last, self._reported = time.monotonic(), self.n

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        if time.monotonic() - self._last >= LINE_EVERY_S:
            self._report()
        return shown

    def close(self) -> None:
        if self._reported is not None and not self.disable and self.n != self._reported:
            self._report()  # where a long loop ended, unless that was just reported
        super().close()


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """tqdm(iterable, **kwargs); under the runner the bar is not drawn (it would be a red stderr
    box in the executed notebook and its HTML) and a long loop sends a line to the terminal
    every LINE_EVERY_S seconds instead."""
    if os.environ.get(PROGRESS_ENV) and not kwargs.get("disable"):
        kwargs.setdefault("file", _Hidden())  # not a red stderr box in the executed notebook
        return _Bar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)


class _Hidden:
    """Where a bar is drawn when it should not be seen."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
