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

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.errors import ConfigError, DataError
from helpers.core.jsonio import read_json, write_text
from helpers.evaluation import comparison
from helpers.reporting.methods import latex_escape
from helpers.reporting.results import COLUMNS

SEED_FILES = ("seeds.csv", "seeds.md", "seeds.tex")


@dataclass(frozen=True)
class SeedRuns:
    """The runs summed up, checked to be one recipe under several seeds."""

    runs: tuple[Path, ...]
    seeds: tuple[int, ...]
    profile: str
    demo: bool


def run_manifest(run: Path) -> dict[str, Any]:
    """A run's manifest.json, the profile, seed and data it records checked present."""
    path = run / "manifest.json"
    if not path.is_file():
        raise DataError(run, "no manifest.json: not a run folder of ./run_all.sh")
    manifest = read_json(path)
    try:
        _ = manifest["profile"]["name"], int(manifest["seed"]), manifest["data"]["sha256"]
    except (KeyError, TypeError, ValueError):
        raise DataError(path, "no profile name, seed or data sha256 in it") from None
    return manifest


def check_recipe(
    run_dirs: list[str | os.PathLike], what: str
) -> tuple[tuple[Path, ...], list[dict[str, Any]]]:
    """Two or more different run folders of one profile on one data set with the same --set
    values, and their manifests; a ConfigError names the runs that differ and how."""
    runs = tuple(Path(r).expanduser().resolve() for r in run_dirs)
    if len(runs) < 2:
        raise ConfigError(f"{what} needs two runs or more, got {len(runs)}")
    if len(set(runs)) < len(runs):
        raise ConfigError("a run folder is given twice: " + ", ".join(map(str, runs)))
    manifests = [run_manifest(run) for run in runs]
    pairs = list(zip(runs, manifests, strict=True))
    profiles = {m["profile"]["name"] for m in manifests}
    if len(profiles) > 1:
        listed = ", ".join(f"{r.name}: {m['profile']['name']}" for r, m in pairs)
        raise ConfigError(f"the runs have different profiles ({listed}); one recipe, please")
    demo = all(bool(m["data"].get("demo")) for m in manifests)
    if not demo and len({m["data"]["sha256"] for m in manifests}) > 1:
        listed = ", ".join(f"{r.name}: {m['data'].get('path')}" for r, m in pairs)
        raise ConfigError(f"the runs read different data ({listed})")
    settings = {json.dumps(m.get("parameters") or {}, sort_keys=True) for m in manifests}
    if len(settings) > 1:
        listed = "; ".join(f"{r.name}: {m.get('parameters') or 'none'}" for r, m in pairs)
        raise ConfigError(f"the runs were given different --set parameters ({listed})")
    return runs, manifests


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


def scored_runs(runs: tuple[Path, ...], key: str, values: tuple[int, ...]) -> pd.DataFrame:
    """Every run's test metrics (one row per model, `comparison_table`'s columns), the run's
    seed or fold in column `key`, and `<task>_collapsed` per headline task."""
    tables = []
    for run, value in zip(runs, values, strict=True):
        table = comparison.comparison_table(run)
        if table.empty:
            raise DataError(run, "no test metrics (notebook 05 has not run)")
        table[key] = value
        for task in comparison.HEADLINE:
            table[f"{task}_collapsed"] = comparison.collapsed(table, task)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def spread(scores: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per model: the runs it was scored in, their `key` values (column `<key>s`), and
    per headline metric the runs that scored it (`_n`), mean, standard deviation (n - 1),
    lowest and highest; `<task>_collapsed` counts the runs whose head for the task learned
    nothing (their scores are in the figures, and said so)."""
    rows = []
    for model, group in scores.groupby("model", sort=False):
        row: dict[str, Any] = {
            "model": model,
            "runs": len(group),
            f"{key}s": ", ".join(str(s) for s in sorted(group[key])),
        }
        for task, metric, _ in COLUMNS:
            column = f"{task}_{metric}"
            if column not in group:
                continue
            values = pd.to_numeric(group[column], errors="coerce").dropna()
            if values.empty:
                continue
            row.update(
                {
                    f"{column}_n": len(values),
                    f"{column}_mean": values.mean(),
                    f"{column}_sd": values.std(ddof=1) if len(values) > 1 else math.nan,
                    f"{column}_min": values.min(),
                    f"{column}_max": values.max(),
                }
            )
            row[f"{task}_collapsed"] = int(group[f"{task}_collapsed"].sum())
        rows.append(row)
    out = pd.DataFrame(rows)
    for column in out.columns:
        if column.endswith(("_collapsed", "_n")):
            out[column] = out[column].fillna(0).astype(int)
    return out


def seeds_table(run_dirs: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per model: the profile, the runs it was scored in, their seeds, and per headline
    metric over the runs as `spread` gives them."""
    checked = check_runs(run_dirs)
    out = spread(scored_runs(checked.runs, "seed", checked.seeds), "seed")
    out.insert(1, "profile", checked.profile)
    out.attrs.update(runs=len(checked.runs), profile=checked.profile, demo=checked.demo)
    return out


def _cell(row: pd.Series, column: str, task: str, runs: int) -> str:
    """ "0.662 ± 0.004", with the runs it covers where fewer than all, and how many of them had
    the head learn nothing."""
    mean = row.get(f"{column}_mean")
    if mean is None or pd.isna(mean):
        return ""
    sd = row.get(f"{column}_sd")
    text = f"{mean:.3f}" + ("" if sd is None or pd.isna(sd) else f" ± {sd:.3f}")
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


def _note(table: pd.DataFrame) -> str:
    """What the figures are: test images, mean ± standard deviation over n runs, the data."""
    note = (
        f"Test images; mean ± standard deviation over {table.attrs.get('runs')} runs of the "
        f"`{table.attrs.get('profile')}` profile with different seeds"
    )
    if table.attrs.get("demo"):
        note += " (the generated demo set is drawn from each run's seed, so the spread includes it)"
    return note + "."


def markdown_table(text: pd.DataFrame, note: str) -> str:
    """A table of text cells as Markdown, its note beneath."""
    lines = ["| " + " | ".join(text.columns) + " |", "|" + "---|" * len(text.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in text.itertuples(index=False)]
    return "\n".join([*lines, "", note])


def latex_table(text: pd.DataFrame, note: str, caption: str, label: str, first: int = 2) -> str:
    """A booktabs table (pandas' to_latex) of text cells, ± typeset as $\\pm$, scaled to the
    line; the first `first` columns left-aligned."""
    text = text.map(lambda cell: latex_escape(str(cell)).replace("±", r"$\pm$"))
    text.columns = [latex_escape(c) for c in text.columns]
    note = latex_escape(note.replace("±", "+/-")).replace("+/-", r"$\pm$")
    latex = text.to_latex(
        index=False,
        escape=False,
        column_format="l" * first + "r" * (len(text.columns) - first),
        caption=latex_escape(caption) + (" " if caption else "") + note,
        label=label,
        position="t",
    )
    latex = latex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}")
    latex = latex.replace("\\end{tabular}", "\\end{tabular}}")
    return "% Needs \\usepackage{booktabs} and \\usepackage{graphicx}.\n" + latex


def to_markdown(table: pd.DataFrame) -> str:
    """`shown` as a Markdown table with its note beneath."""
    return markdown_table(shown(table), _note(table))


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """`shown` as a booktabs table, its note in the caption."""
    return latex_table(shown(table), _note(table), caption, "tab:seeds")


def write_seeds(run_dirs: list[str | os.PathLike], out: str | os.PathLike) -> list[Path]:
    """seeds.csv, seeds.md and seeds.tex in out (created), each whole or not at all."""
    table = seeds_table(run_dirs)
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{folder}: cannot be created ({error.strerror or error})") from None
    csv, md, tex = (folder / name for name in SEED_FILES)
    return [
        write_text(csv, table.to_csv(index=False)),
        write_text(md, to_markdown(table) + "\n"),
        write_text(tex, to_latex(table)),
    ]


def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.seeds RUN RUN ... [--out DIR]`: 0, or 2 with one line for bad runs."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.seeds",
        description="Each model's test metrics as mean ± standard deviation over runs that "
        "differ only in their seed.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders of ./run_all.sh")
    parser.add_argument("--out", default="", help="folder for seeds.csv/.md/.tex (default: none)")
    args = parser.parse_args(argv)
    try:
        if args.out:
            written = write_seeds(args.runs, args.out)
            print(written[1].read_text(encoding="utf-8"), end="")
            print("wrote " + ", ".join(str(p) for p in written))
        else:
            print(to_markdown(seeds_table(args.runs)))
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
