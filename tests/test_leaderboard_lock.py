"""The leaderboard's lock: one writer at a time, and no lock file left behind."""

import fcntl
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from helpers.evaluation import leaderboard
from helpers.evaluation.leaderboard import append_leaderboard


def test_a_written_board_leaves_no_lock_file_beside_it(tmp_path: Path) -> None:
    board = tmp_path / "reports" / "leaderboard.csv"
    append_leaderboard(tmp_path / "run", pd.DataFrame({"model": ["a"]}), "smoke", "abc", board)
    append_leaderboard(tmp_path / "run2", pd.DataFrame({"model": ["b"]}), "smoke", "abc", board)
    assert sorted(p.name for p in board.parent.iterdir()) == ["leaderboard.csv"]
    assert list(pd.read_csv(board)["model"]) == ["a", "b"]


def test_a_writer_that_waited_on_a_removed_lock_file_still_excludes_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writer removes the lock file as it releases it; the one that waited on that
    file locks the new one, so a third, coming then, waits for it rather than writing too."""
    board = tmp_path / "leaderboard.csv"
    waiting, inside, leave = threading.Event(), threading.Event(), threading.Event()
    flock = fcntl.flock

    def noted(fd: int, operation: int) -> None:
        if threading.current_thread().name == "second":
            waiting.set()  # the second writer is about to wait on the first's lock
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", noted)

    def second() -> None:
        with leaderboard._locked(board):
            inside.set()
            leave.wait(60)

    with leaderboard._locked(board):
        writer = threading.Thread(target=second, name="second", daemon=True)
        writer.start()
        assert waiting.wait(60)
    assert inside.wait(60)  # the first released: the second writes now
    lock = board.with_name("leaderboard.csv.lock")
    third = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with pytest.raises(BlockingIOError):
            flock(third, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(third)
        leave.set()
        writer.join(60)
    assert not lock.exists()


def test_the_board_gets_the_mode_of_every_other_output_under_the_umask(tmp_path: Path) -> None:
    """A board kept across runs is read by others (a group, a web server) as results.csv is:
    0644 under umask 022, not the 0600 a private temporary file has."""
    board = tmp_path / "leaderboard.csv"
    before = os.umask(0o022)
    try:
        append_leaderboard(tmp_path / "run", pd.DataFrame({"model": ["a"]}), "smoke", "abc", board)
        beside = tmp_path / "results.csv"
        pd.DataFrame({"model": ["a"]}).to_csv(beside, index=False)
    finally:
        os.umask(before)
    assert oct(board.stat().st_mode & 0o777) == oct(beside.stat().st_mode & 0o777) == "0o644"
