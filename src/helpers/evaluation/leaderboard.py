"""The leaderboard: one CSV kept across runs, a row per model and run, so experiments with
other profiles or data can be compared later; appends are atomic and locked because several
runs may finish at once."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from helpers.core import paths
from helpers.core.errors import DataError

LEADERBOARD_METRICS = (
    "n",
    "expression_accuracy",
    "expression_f1_macro",
    "expression_f1_macro_ci_low",
    "expression_f1_macro_ci_high",
    "expression_kappa",
    "valence_ccc",
    "valence_rmse",
    "arousal_ccc",
    "arousal_rmse",
    "landmarks_nme",
    "params",
    "train_seconds",
    "inference_images_per_s",
    "collapsed_heads",
)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside `path` (POSIX); elsewhere the rename alone protects."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; writes stay atomic, concurrent appends may race
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_leaderboard(
    run_dir: str | os.PathLike,
    table: pd.DataFrame,
    profile: str,
    data_hash: str,
    path: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Add one row per model to a CSV kept across runs, so experiments can be compared later.

    The file is rewritten whole to a temporary file and renamed over the old one, under a lock,
    so a crash or a concurrent run never leaves it half written. Returns the rows added.
    """
    path = Path(path) if path is not None else paths.REPORTS_DIR / "leaderboard.csv"
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = pd.DataFrame(
        {
            "timestamp": stamp,
            "run": str(run_dir),
            "profile": profile,
            "data_hash": data_hash,
            "model": table["model"].astype(str).to_numpy() if "model" in table else [],
            "dataset": (table["dataset"].to_numpy() if "dataset" in table else [None] * len(table)),
            **{
                c: (table[c].to_numpy() if c in table else [math.nan] * len(table))
                for c in LEADERBOARD_METRICS
            },
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if path.is_file() and path.stat().st_size > 0:
            try:  # as text, so earlier rows are written back exactly as they were
                old = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise DataError(path, f"leaderboard is not a readable CSV ({exc})") from exc
            merged = pd.concat([old, rows.astype(object)], ignore_index=True)
        else:
            merged = rows
        handle, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
                merged.to_csv(out, index=False)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return rows
