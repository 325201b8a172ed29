"""Errors that carry the offending file and the problem, for messages users can act on."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(Exception):
    """Bad input: names the file (and member, if inside an archive) and what is wrong."""

    def __init__(self, path: object, problem: str, member: str | None = None):
        self.path = str(path)
        self.member = member
        self.problem = problem
        where = f"{self.path}!{member}" if member else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple:
        """Pickles whole, so a worker process's error reaches its parent naming the file."""
        return (type(self), (self.path, self.problem, self.member))


class ConfigError(Exception):
    """Bad parameters (unknown profile, model name, wrong type), raised before any work."""


def did_you_mean(name: object, names: Iterable[str]) -> str:
    """'; did you mean a, b?' for a mistyped name (difflib's closest, up to three), or '' when
    none is close: the end of a refusal, so the fix is in the message."""
    close = difflib.get_close_matches(str(name), sorted(names), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def one_line(error: BaseException, limit: int = 300) -> str:
    """Library errors (urllib, Keras, the TFLite converter) span lines; messages stay one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def os_reason(error: OSError) -> str:
    """An OS error's reason in a few words (No space left on device, Permission denied)."""
    return error.strerror or one_line(error)
