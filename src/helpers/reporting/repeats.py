"""Runs of one recipe summed up (several seeds, the folds of a cross-validation): the checks
that they are one recipe, each model's headline metrics per run and their spread, and the tables
a paper takes (Markdown, booktabs LaTeX), shared by helpers.reporting.seeds and .folds."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.errors import ConfigError, DataError, os_reason
from helpers.core.jsonio import read_json, write_text
from helpers.core.run_folder import expand_series
from helpers.evaluation import comparison
from helpers.reporting import latex
from helpers.reporting.results import COLUMNS


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
    values, and their manifests; a folder holding a --seeds or --folds series stands for its
    runs (seed-0/, fold-1/, ...). A ConfigError names the runs that differ and how."""
    runs = tuple(expand_series(list(run_dirs)))
    if len(runs) < 2:
        raise ConfigError(f"{what} needs two runs or more, got {len(runs)}")
    repeated = [str(run) for run in dict.fromkeys(runs) if runs.count(run) > 1]
    if repeated:
        raise ConfigError(
            f"a run folder is given twice: {', '.join(repeated)}"
            if len(repeated) == 1
            else f"run folders are given twice: {', '.join(repeated)}"
        )
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


def scored_runs(runs: tuple[Path, ...], key: str, values: tuple[int, ...]) -> pd.DataFrame:
    """Every run's test metrics (one row per model, `comparison_table`'s columns), the run's
    seed or fold in column `key`, and `<task>_collapsed` per headline task; a run whose metrics
    describe an earlier training of a model is a DataError naming the files to score again."""
    tables = []
    for run, value in zip(runs, values, strict=True):
        table = comparison.comparison_table(run)
        if table.empty:
            raise DataError(run, "no test metrics (notebook 05 has not run)")
        stale = comparison.stale(table)
        if stale.any():  # another training's figures would be summed up as this run's
            raise DataError(run, "; ".join(dict.fromkeys(table.loc[stale, "stale"])))
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


def markdown_table(text: pd.DataFrame, note: str) -> str:
    """A table of text cells as Markdown, its note beneath."""
    lines = ["| " + " | ".join(text.columns) + " |", "|" + "---|" * len(text.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in text.itertuples(index=False)]
    return "\n".join([*lines, "", note])


def latex_table(
    table: pd.DataFrame,
    layout: latex.Layout,
    rows: tuple[list[list[str]], tuple[int, ...]],
    note: str,
    caption: str,
    kind: str,
    notes: latex.Notes,
) -> str:
    """A summary's booktabs table (latex.booktabs) of its rows and the rows that end a model's
    block: `caption` (plain text), then `note` (Markdown) as its caption, the notes' marks
    explained under it, labelled `tab:<kind>-<the summary folder's name>`."""
    text = latex.latex_escape(caption) + (" " if caption else "") + latex.inline(note)
    name = str(table.attrs.get("name", ""))
    return latex.booktabs(layout, rows[0], text, kind, name, notes.lines(), rows[1])


def write_tables(
    folder: str | os.PathLike,
    names: tuple[str, str, str],
    table: pd.DataFrame,
    markdown: Callable[[pd.DataFrame], str],
    latex_of: Callable[[pd.DataFrame], str],
) -> list[Path]:
    """A summary's CSV (the numbers), Markdown and LaTeX files in folder (created), each whole
    or not at all."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{path}: cannot be created ({os_reason(error)})") from None
    csv, md, tex = (path / name for name in names)
    table.attrs["name"] = path.resolve().name  # the LaTeX table's label
    return [
        write_text(csv, table.to_csv(index=False)),
        write_text(md, markdown(table) + "\n"),
        write_text(tex, latex_of(table)),
    ]


def summary_command(
    argv: list[str] | None,
    prog: str,
    description: str,
    out_help: str,
    markdown_of: Callable[[list[str]], str],
    write: Callable[[list[str], str], list[Path]],
) -> int:
    """A summing-up command's command line (`prog RUN RUN ... [--out DIR]`): the Markdown table
    printed, and with --out the files written and named; 2 with one line for runs that do not
    make one summary."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders of ./run_all.sh")
    parser.add_argument("--out", default="", help=out_help)
    args = parser.parse_args(argv)
    try:
        if args.out:
            written = write(args.runs, args.out)
            print(written[1].read_text(encoding="utf-8"), end="")
            print("wrote " + ", ".join(str(p) for p in written))
        else:
            print(markdown_of(args.runs))
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
