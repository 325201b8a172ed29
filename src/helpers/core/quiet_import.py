"""TensorFlow's import-time notices dropped from the terminal, every other line kept.

TensorFlow logs "oneDNN custom operations are on ..." twice while it imports, through C++
logging that runs before absl is initialised, so neither `TF_CPP_MIN_LOG_LEVEL` nor Python's
warnings filters reach it: the only lever is the process's stderr file descriptor. Turning
oneDNN off would silence it but costs 1.2-5.5 times the training speed on a CPU with AVX2 alone
(benchmarks/RESULTS.md), so the import runs with descriptor 2 sent to a temporary file and
whatever else it wrote is written back afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType

# Lines TensorFlow prints on every import that tell a user nothing they can act on.
NOTICES = (
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog() is called are written to STDERR",
)
QUIET_MODULES = ("tensorflow",)


@contextlib.contextmanager
def stderr_without(notices: Sequence[str] = NOTICES) -> Iterator[None]:
    """Descriptor 2 into a temporary file for the block; its lines back, less the notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().splitlines(keepends=True)
                if not any(n.encode() in line for n in notices)
            ]
            if kept:
                os.write(2, b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """The module's own loader, run with its notices filtered out of stderr."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)  # resource readers and the like: the real loader's

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # the module sees its own loader, as if never wrapped
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with stderr_without():
            self._loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds the named modules through the other finders and wraps their loaders, once each."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = set(names)

    def add(self, names: Sequence[str]) -> None:
        self._names.update(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names:
            return None
        self._names.discard(fullname)
        if not self._names and self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def install(names: Sequence[str] = QUIET_MODULES) -> None:
    """Filter the notices of the named modules' first import (nothing for one already loaded)."""
    pending = [n for n in names if n not in sys.modules]
    installed = [f for f in sys.meta_path if isinstance(f, _QuietFinder)]
    if installed:
        installed[0].add(pending)
    elif pending:
        sys.meta_path.insert(0, _QuietFinder(pending))
