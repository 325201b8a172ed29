"""Runs that differ only in their seed, summed up: each model's headline metrics as the mean and
standard deviation over the runs, the form a paper reports (a single run's bootstrap interval
says how sure one model's score is; the spread over seeds says how much the same recipe's
models differ).

    python -m helpers.seeds RUN RUN [RUN ...] [--out DIR]
    ./run_all.sh --seeds 0,1,2 [options]      # the runs, then this summary

The runs must share the profile and the data (the generated demo set excepted: it is drawn
from each run's seed, so there the spread includes the data's) and have different seeds.
Written as seeds.csv (the numbers), seeds.md and seeds.tex (a booktabs table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers.core.errors import ConfigError
from helpers.evaluation.comparison import fixed
from helpers.reporting import latex, notation
from helpers.reporting.repeats import (
    check_recipe,
    latex_table,
    markdown_table,
    scored_runs,
    spread,
    summary_command,
    write_tables,
)
from helpers.reporting.results import COLUMNS, metric_layout

SEED_FILES = ("seeds.csv", "seeds.md", "seeds.tex")


@dataclass(frozen=True)
class SeedRuns:
    """The runs summed up, checked to be one recipe under several seeds."""

    runs: tuple[Path, ...]
    seeds: tuple[int, ...]
    profile: str
    demo: bool


def check_runs(run_dirs: list[str | os.PathLike]) -> SeedRuns:
    """Two or more run folders of one profile on one data set with different seeds; a
    ConfigError names the runs that differ and how."""
    runs, manifests = check_recipe(run_dirs, "a spread over seeds")
    seeds = tuple(int(m["seed"]) for m in manifests)
    for seed in sorted({s for s in seeds if seeds.count(s) > 1}):
        named = ", ".join(r.name for r, s in zip(runs, seeds, strict=True) if s == seed)
        raise ConfigError(
            f"runs {named} share seed {seed}: on one machine a seed trains the same models, so "
            "the spread would be understated"
        )
    demo = all(bool(m["data"].get("demo")) for m in manifests)
    return SeedRuns(runs, seeds, manifests[0]["profile"]["name"], demo)


def seeds_table(run_dirs: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per model: the profile, the runs it was scored in, their seeds, and per headline
    metric over the runs as `spread` gives them."""
    checked = check_runs(run_dirs)
    out = spread(scored_runs(checked.runs, "seed", checked.seeds), "seed")
    out.insert(1, "profile", checked.profile)
    out.attrs.update(runs=len(checked.runs), profile=checked.profile, demo=checked.demo)
    return out


def _cell(row: pd.Series, column: str, task: str, runs: int) -> str:
    """ "0.662 ± 0.004", "−0.025 ± 0.039" (a minus sign, as methods.md writes it), with the
    runs it covers where fewer than all, and how many of them had the head learn nothing."""
    mean = row.get(f"{column}_mean")
    if mean is None or pd.isna(mean):
        return ""
    sd = row.get(f"{column}_sd")
    text = notation.fixed(mean) + ("" if sd is None or pd.isna(sd) else f" ± {fixed(sd)}")
    counted = int(row.get(f"{column}_n", row["runs"]))
    if counted < runs:
        text += f" ({counted} of {runs} runs)"
    failed = int(row.get(f"{task}_collapsed", 0) or 0)
    return text + (f" ({failed} learned nothing)" if failed else "")


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text: model, seeds and a `mean ± sd` cell per metric any model has."""
    runs = int(table.attrs.get("runs", table["runs"].max()))
    rows = []
    for _, row in table.iterrows():
        cells = {"Model": row["model"], "Seeds": row["seeds"]}
        for task, metric, title in COLUMNS:
            if f"{task}_{metric}_mean" in table:
                cells[title] = _cell(row, f"{task}_{metric}", task, runs)
        rows.append(cells)
    return pd.DataFrame(rows)


def _note(table: pd.DataFrame, beneath: bool = False) -> str:
    """What the figures are: test images, mean ± standard deviation over n runs, the data;
    `beneath` where each standard deviation is on the row under its mean."""
    note = (
        f"Test images; mean ± standard deviation over {table.attrs.get('runs')} runs of the "
        f"`{table.attrs.get('profile')}` profile with different seeds"
    )
    if beneath:
        note += ", each standard deviation beneath its mean"
    if table.attrs.get("demo"):
        note += " (the generated demo set is drawn from each run's seed, so the spread includes it)"
    return note + "."


def to_markdown(table: pd.DataFrame) -> str:
    """`shown` as a Markdown table with its note beneath."""
    return markdown_table(shown(table), _note(table))


def _latex_cells(
    row: pd.Series, column: str, task: str, runs: int, notes: latex.Notes
) -> tuple[str, str]:
    """A metric's mean, marked where fewer runs than all scored it or its head learned nothing
    in some, and its standard deviation for the row beneath ("" where there is none)."""
    mean = row.get(f"{column}_mean")
    if mean is None or pd.isna(mean):
        return "", ""
    counted = int(row.get(f"{column}_n", row["runs"]))
    failed = int(row.get(f"{task}_collapsed", 0) or 0)
    said = [f"scored in {counted} of {runs} runs"] if counted < runs else []
    said += [f"the head learned nothing in {failed} of {counted} runs"] if failed else []
    sd = row.get(f"{column}_sd")
    spread = "" if sd is None or pd.isna(sd) else r"$\pm$ " + latex.number(sd)
    return latex.number(mean) + notes.mark(said), spread


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs table: per model its means, then their standard deviations in small type;
    the notes as marks explained under the table."""
    runs = int(table.attrs.get("runs", table["runs"].max()))
    layout, metrics = metric_layout([("Model", "l"), ("Seeds", "l")], table, ("_mean",))
    notes, rows, ends = latex.Notes(), [], []
    for _, row in table.iterrows():
        means = [latex.latex_escape(str(row["model"])), latex.latex_escape(str(row["seeds"]))]
        spreads = ["", ""]
        for task, metric in metrics:
            mean, spread = _latex_cells(row, f"{task}_{metric}", task, runs, notes)
            means.append(mean)
            spreads.append(latex.small(spread))
        rows += [means, spreads] if any(spreads) else [means]
        ends.append(len(rows) - 1)
    note = _note(table, beneath=True)
    return latex_table(table, layout, (rows, tuple(ends)), note, caption, "seeds", notes)


def write_seeds(run_dirs: list[str | os.PathLike], out: str | os.PathLike) -> list[Path]:
    """seeds.csv, seeds.md and seeds.tex in out (created), each whole or not at all."""
    return write_tables(out, SEED_FILES, seeds_table(run_dirs), to_markdown, to_latex)


def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.seeds RUN RUN ... [--out DIR]`: 0, or 2 with one line for bad runs."""
    return summary_command(
        argv,
        "python -m helpers.seeds",
        "Each model's test metrics as mean ± standard deviation over runs that differ only in "
        "their seed.",
        "folder for seeds.csv/.md/.tex (default: the table printed, nothing written)",
        lambda runs: to_markdown(seeds_table(runs)),
        write_seeds,
    )
