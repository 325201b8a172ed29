"""The leaderboard: one CSV kept across runs, a row per model and run, so experiments with
other profiles or data can be compared later; appends are atomic and locked because several
runs may finish at once. `python -m helpers.leaderboard RUN [RUN ...]` merges run folders made
on several machines (one model each) into it."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core import paths
from helpers.core.errors import DataError
from helpers.core.jsonio import read_json, write_text
from helpers.core.run_folder import RunFolder, expand_series, recorded_data
from helpers.core.words import counted
from helpers.evaluation.comparison import (
    HEADLINE,
    STALE_REASON,
    collapsed,
    comparison_table,
    stale,
)

# Scores are those of the test-time augmentation in `tta` (each model's own, chosen on
# validation); the no_tta_ columns are one view per image, and so is the speed, as the report
# compares models.
LEADERBOARD_METRICS = (
    "n",
    "tta",
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
    "no_tta_expression_accuracy",
    "no_tta_expression_f1_macro",
    "no_tta_valence_ccc",
    "no_tta_arousal_ccc",
    "no_tta_landmarks_nme",
    "params",
    "train_seconds",
    "one_view_images_per_s",
    "collapsed_heads",
)
# Columns that count things: written as whole numbers.
COUNTS = ("n", "params")


def _column(table: pd.DataFrame, column: str) -> Any:
    """A table column for the board: counts as whole numbers (blank where unknown)."""
    if column not in table:
        return [math.nan] * len(table)
    if column in COUNTS:
        return pd.to_numeric(table[column], errors="coerce").round().astype("Int64").array
    return table[column].to_numpy()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside `path` (POSIX), its file removed as it is released, so
    a run leaves no `.lock` behind; elsewhere the rename alone protects. A writer that waited
    on a lock file its holder removed takes the new one (_held), so two never write at once."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; writes stay atomic, concurrent appends may race
        yield
        return
    lock = path.with_name(path.name + ".lock")
    while True:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        if _held(fd, lock):
            break
        os.close(fd)  # removed while this waited: lock the file there now
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # still held: a waiter finds its file gone and takes a new one
        os.close(fd)  # releases the lock


def _held(fd: int, lock: Path) -> bool:
    """Whether the locked descriptor is still the file at `lock` (not one unlinked since)."""
    try:
        there = os.stat(lock)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _without(old: pd.DataFrame, rows: pd.DataFrame, run: str, gone: list[str]) -> pd.DataFrame:
    """The board's rows less those of the same run folder and model as the new rows, and those
    of this run's models left out now (a row of an earlier training would outlive it)."""
    if not {"run", "model"} <= set(old.columns):
        return old
    replaced = set(zip(rows["run"].astype(str), rows["model"].astype(str), strict=True))
    replaced |= {(run, model) for model in gone}
    keep = [pair not in replaced for pair in zip(old["run"], old["model"], strict=True)]
    return old[keep]


def append_leaderboard(
    run_dir: str | os.PathLike,
    table: pd.DataFrame,
    profile: str,
    data_hash: str,
    path: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Add one row per model to a CSV kept across runs, so experiments can be compared later;
    rows the board already holds for the same run folder and model are replaced, so notebook 06
    run again updates the run's rows instead of adding a second set.

    A model whose metrics describe an earlier training (comparison_table's `stale`) gets no
    row, and loses the one an earlier notebook 06 gave it: its figures are not those of the
    model in the run folder. The file is rewritten whole
    to a temporary file and renamed over the old one, under a lock, so a crash or a concurrent
    run never leaves it half written. Returns the rows added; attrs["left_out"] names the
    models left out.
    """
    path = Path(path) if path is not None else paths.REPORTS_DIR / "leaderboard.csv"
    left_out = [str(m) for m in table.loc[stale(table), "model"]] if "model" in table else []
    table = table[~stale(table)]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = pd.DataFrame(
        {
            "timestamp": stamp,
            "run": str(run_dir),
            "profile": profile,
            "data_hash": data_hash,
            "model": table["model"].astype(str).to_numpy() if "model" in table else [],
            "dataset": (table["dataset"].to_numpy() if "dataset" in table else [None] * len(table)),
            **{c: _column(table, c) for c in LEADERBOARD_METRICS},
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if path.is_file() and path.stat().st_size > 0:
            try:  # as text, so earlier rows are written back exactly as they were
                old = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise DataError(path, f"leaderboard is not a readable CSV ({exc})") from exc
            kept = _without(old, rows, str(run_dir), left_out)
            merged = pd.concat([kept, rows.astype(object)], ignore_index=True)
        else:
            merged = rows
        # Written beside it and renamed (write_text): the mode of every other output (umask).
        write_text(path, merged.to_csv(index=False, lineterminator="\n"))
    rows.attrs["left_out"] = left_out
    return rows


def appended_line(rows: pd.DataFrame, path: str | os.PathLike) -> str:
    """What append_leaderboard did, in one line: the rows added and the models left out."""
    line = f"appended {counted(len(rows), 'row')} to {paths.shown(path)}"
    left_out = rows.attrs.get("left_out") or []
    if left_out:
        line += f"; left out {', '.join(left_out)} ({STALE_REASON}: run notebook 05 again)"
    return line


# Columns the merged ranking shows, best expression macro F1 first.
SHOWN = (
    "model",
    "run",
    "profile",
    "n",
    "tta",
    "expression_f1_macro",
    "expression_f1_macro_ci_low",
    "expression_f1_macro_ci_high",
    "expression_kappa",
    "valence_ccc",
    "arousal_ccc",
    "landmarks_nme",
    "train_seconds",
    "collapsed_heads",
)


def _on_board(path: Path) -> set[tuple[str, str]]:
    """(run, model) pairs the leaderboard already holds, so a merge repeated adds nothing."""
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    try:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(path, f"leaderboard is not a readable CSV ({exc})") from exc
    if not {"run", "model"} <= set(old.columns):
        return set()
    return set(zip(old["run"], old["model"], strict=True))


def _settings(run: RunFolder) -> dict[str, Any]:
    """Notebook 01's settings.json (the profile of a run made by hand), {} without one."""
    return read_json(run.settings) if run.settings.is_file() else {}


def _checked_run(folder: Path) -> tuple[RunFolder, pd.DataFrame, dict[str, Any]]:
    """A run folder given to merge, its test metrics and manifest; a DataError names a folder
    that is missing or holds no evaluated model."""
    run = RunFolder(folder)
    if not run.root.is_dir():
        raise DataError(run.root, "run folder not found")
    table = comparison_table(run)
    if table.empty:
        raise DataError(run.root, "no metrics/<model>.json: evaluate its models (notebook 05)")
    manifest = read_json(run.manifest) if run.manifest.is_file() else {}
    return run, table, manifest


def merge_runs(
    run_dirs: Sequence[str | os.PathLike], path: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Every model of several run folders (one per machine, say) on one leaderboard, ranked.

    A folder holding a --seeds or --folds series (seed-0/, fold-1/, ...) stands for its runs.
    Every folder is checked before the board is written, so a bad one leaves it as it was.
    Each run's models are appended as notebook 06 appends them (profile and data fingerprint
    from its manifest), except those the board already lists for that run folder. Returns the
    rows of these runs, best expression macro F1 first (a model that learned nothing for
    expression after the rest, named in attrs["unranked"]); attrs["notes"] warns when the runs were
    made from different data or seeds, or tested different folds of a cross-validation, whose
    test splits differ and whose scores do not compare; attrs["left_out"] names the models left
    out because their metrics describe an earlier training.
    """
    board = Path(path) if path is not None else paths.REPORTS_DIR / "leaderboard.csv"
    checked = [_checked_run(folder) for folder in dict.fromkeys(expand_series(list(run_dirs)))]
    rows, facts, left_out = [], {}, []
    known = _on_board(board)
    for run, table, manifest in checked:
        profile = str(
            manifest.get("profile", {}).get("name") or _settings(run).get("profile") or "unknown"
        )
        data_hash = str(recorded_data(run).get("sha256", "unknown"))
        facts[str(run.root)] = (data_hash, manifest.get("seed"), str(manifest.get("fold")))
        left_out += [
            f"{model} of {run.root} left out: {STALE_REASON} (run notebook 05 again)"
            for model in table.loc[stale(table), "model"]
        ]
        table = table[~stale(table)]
        new = table[[(str(run.root), str(m)) not in known for m in table["model"]]]
        if len(new):
            append_leaderboard(run.root, new, profile, data_hash, path=board)
        rows.append(table.assign(run=str(run.root), profile=profile, data_hash=data_hash))
    merged = pd.concat(rows, ignore_index=True)
    for column in COUNTS:
        if column in merged:
            merged[column] = _column(merged, column)
    # A model that learned nothing for expression is not ranked by it: listed after the rest.
    if "expression_f1_macro" in merged:
        merged = merged.assign(_unranked=collapsed(merged, "expression")).sort_values(
            ["_unranked", "expression_f1_macro"], ascending=[True, False], na_position="last"
        )
        merged = merged.drop(columns="_unranked")
    merged = merged.reset_index(drop=True)
    notes = []
    if len({data for data, _, _ in facts.values()}) > 1:
        notes.append("the runs were made from different data (sha256 in their manifests)")
    if len({seed for _, seed, _ in facts.values()}) > 1:
        notes.append("the runs used different seeds, so their test splits differ")
    if len({fold for _, _, fold in facts.values()}) > 1:
        notes.append(
            "the runs tested different folds of a cross-validation, or a fold and a whole test "
            "split (python -m helpers.folds sums folds up)"
        )
    merged.attrs["notes"] = notes
    merged.attrs["left_out"] = left_out
    merged.attrs["unranked"] = _unranked_lines(merged)
    return merged


def _unranked_lines(merged: pd.DataFrame) -> list[str]:
    """A line per model whose metrics flag heads that learned nothing (collapsed_heads); a row
    without the flag (NaN where a merged table lacks the column) flags none."""
    lines = []
    for _, row in merged.iterrows():
        flagged = row.get("collapsed_heads")
        heads = [h for h in (flagged if isinstance(flagged, str) else "").split(",") if h]
        if heads:
            lines.append(
                f"{row['model']} of {row['run']} learned nothing for {', '.join(heads)}: "
                f"not ranked for {'it' if len(heads) == 1 else 'them'} (its scores there blank)"
            )
    return lines


def ranking_text(merged: pd.DataFrame) -> str:
    """merge_runs' rows as the terminal shows them: a head that learned nothing left blank, so
    no model is ranked for a task it failed, counts as whole numbers."""
    shown = merged[[c for c in SHOWN if c in merged.columns]].copy()
    for task in HEADLINE:
        columns = [c for c in shown.columns if c.startswith(f"{task}_")]
        shown.loc[collapsed(merged, task), columns] = math.nan
    return shown.round(3).to_string(index=False, na_rep="")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m helpers.leaderboard RUN [RUN ...]`: merge run folders, print their ranking."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m helpers.leaderboard",
        description="Put the models of several run folders (e.g. one per machine, each run "
        "with ./run_all.sh --models X) on one leaderboard and print their ranking.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders to merge")
    parser.add_argument(
        "--board", default="", help="leaderboard CSV (default: reports/leaderboard.csv)"
    )
    args = parser.parse_args(argv)
    try:
        merged = merge_runs(args.runs, path=args.board or None)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(ranking_text(merged))
    for note in merged.attrs["notes"]:
        print(f"warning: {note}; their scores do not compare", file=sys.stderr)
    for line in merged.attrs["left_out"] + merged.attrs["unranked"]:
        print(f"warning: {line}", file=sys.stderr)
    return 0
