"""The few lines a finished run closes with on how each model did, read from its results.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

# (column of results.csv, its words), in the order the line of 05's evaluation says them.
# A copy of helpers.reporting.results.COLUMNS, kept in step by a test: importing that module
# would load pandas and the reporting layer into the runner, whose `--help` and closing lines
# stay light.
FIGURES = (
    ("expression_accuracy", "accuracy"),
    ("expression_f1_macro", "macro F1"),
    ("valence_ccc", "valence CCC"),
    ("arousal_ccc", "arousal CCC"),
    ("landmarks_nme", "landmark NME"),
)
PREFIX = "[run_all]"


def recap_lines(results_csv: Path) -> list[str]:
    """Where the table is, then one line per model: its headline figures, the tasks it is best
    at and those it learned nothing for; none for a table that is missing or cannot be read."""
    try:
        with open(results_csv, encoding="utf-8", newline="") as source:
            rows = list(csv.DictReader(source))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    lines = [model_line(row) for row in rows if row.get("model")]
    return [f"{PREFIX} results: {results_csv}", *lines] if lines else []


def model_line(row: dict[str, str]) -> str:
    """`  custom_cnn: accuracy 0.512, macro F1 0.433; best for expression; learned nothing for
    landmarks`."""
    figures = [f"{words} {number}" for column, words in FIGURES if (number := figure(row, column))]
    tasks = [column.removesuffix("_learned") for column in row if column.endswith("_learned")]
    best = [t for t in tasks if row.get(f"{t}_best") == "True" and row[f"{t}_learned"] == "True"]
    nothing = [t for t in tasks if row[f"{t}_learned"] == "False"]
    parts = [", ".join(figures) or "no scores"]
    if best:
        parts.append(f"best for {', '.join(best)}")
    if nothing:
        parts.append(f"learned nothing for {', '.join(nothing)}")
    return f"{PREFIX}   {row['model']}: {'; '.join(parts)}"


def figure(row: dict[str, str], column: str) -> str:
    """A column's value with three decimals; "" where the model has none."""
    try:
        value = float(row.get(column) or "nan")
    except ValueError:
        return ""
    return "" if math.isnan(value) else f"{value:.3f}"
