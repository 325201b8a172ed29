"""Fixtures for the robustness suite: the repo's data/ and reports/ swapped for empty
temporary folders, and a guard proving nothing outside the allowed folder changes on disk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from builders import listing
from helpers.core import paths
from helpers.core.images import close_archives


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Point the repo's data/ and reports/ at empty temporary folders, and drop cached zips:
    a robustness test that writes there fails the directory-listing checks instead of
    touching the real checkout."""
    repo = tmp_path / "_repo"
    monkeypatch.setattr(paths, "DATA_DIR", repo / "data")
    monkeypatch.setattr(paths, "DEMO_DIR", repo / "data" / "demo")
    monkeypatch.setattr(paths, "REPORTS_DIR", repo / "reports")
    close_archives()
    yield
    close_archives()


@pytest.fixture
def untouched(tmp_path):
    """`with untouched(allow=[run_dir]):` fails if anything else under tmp_path (inputs, the
    stand-in data/ and reports/, earlier runs) was created, changed or deleted."""

    @contextlib.contextmanager
    def guard(allow: Iterable[Path] = ()) -> Iterator[None]:
        allow = list(allow)
        before = listing(tmp_path, allow)
        yield
        after = listing(tmp_path, allow)
        assert after == before, (
            f"written outside {[str(a) for a in allow] or 'nothing allowed'}: "
            f"added {sorted(set(after) - set(before))}, "
            f"removed {sorted(set(before) - set(after))}, "
            f"changed {sorted(k for k in set(after) & set(before) if after[k] != before[k])}"
        )

    return guard
