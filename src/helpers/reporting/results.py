"""The run's results as a paper shows them: one row per model, each task's headline metric with
its 95% interval, the best model per task in bold, a head that learned nothing marked.

Written beside the methods section as results.csv (the numbers, for a spreadsheet or another
analysis) and results.tex (a booktabs table for `\\input{results}`), from the same comparison
table the report shows, so the paper's table and the report cannot disagree.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from helpers.core.jsonio import read_json, write_text
from helpers.core.run_folder import RunFolder, read_run
from helpers.data.datasets import READERS
from helpers.evaluation import comparison
from helpers.reporting import latex
from helpers.reporting.methods import TTA_WORDS

# (task, metric) in the order a table reads them, with their column titles.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("expression", "accuracy", "Accuracy"),
    ("expression", "f1_macro", "Macro-F1"),
    ("valence", "ccc", "Valence CCC"),
    ("arousal", "ccc", "Arousal CCC"),
    ("landmarks", "nme", "Landmark NME"),
)
DAGGER = "\u2020"  # marks a head that learned nothing
# The tasks over their metrics' columns in a LaTeX table's two-row header.
TASK_TITLES = {
    "expression": "Expression",
    "valence": "Valence",
    "arousal": "Arousal",
    "landmarks": "Landmarks",
}
METRIC_TITLES = {"accuracy": "Accuracy", "f1_macro": "Macro-F1", "ccc": "CCC", "nme": "NME"}
NME_UNIT = "a fraction of the distance between the outer eye corners"


def results_table(run_dir: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One row per model: its parameters, test-time augmentation and, per metric any model has,
    the value and its interval (columns `<task>_<metric>`, `..._ci_low`, `..._ci_high`), with
    `<task>_best` naming the task's best model and `<task>_learned` whether this one learned it.
    A model whose metrics describe an earlier training is left out, as the methods say. A
    folder that does not exist, holds no run or is a run's subfolder is a ConfigError."""
    run = read_run(run_dir, "results_table")
    table = comparison.comparison_table(run, dataset)
    table = table[~comparison.stale(table)]
    if table.empty:
        return table
    out = pd.DataFrame({"model": table["model"]})
    params = table["params"] if "params" in table else pd.Series(pd.NA, index=table.index)
    out["parameters"] = pd.to_numeric(params).round().astype("Int64")  # a count, not 1278450.0
    out["tta"] = table.get("tta", pd.Series("none", index=table.index)).fillna("none")
    best = comparison.best_models(table)
    for task, metric, _ in COLUMNS:
        column = f"{task}_{metric}"
        if column not in table or table[column].isna().all():
            continue
        out[column] = table[column]
        for side in ("ci_low", "ci_high"):
            out[f"{column}_{side}"] = table.get(f"{column}_{side}")
        out[f"{task}_learned"] = ~comparison.collapsed(table, task)
        out[f"{task}_best"] = table["model"] == (best.get(task) or {}).get("model")
    # The faces scored: last, as any column added later, so the older ones keep their places.
    out["n_test"] = pd.to_numeric(table["n"]).round().astype("Int64")
    out = out.reset_index(drop=True)
    out.attrs.update(name=run.name, data=data_name(run, dataset))
    return out


def data_name(run: RunFolder, dataset: str | None = None) -> str:
    """The test images' data set as the run records it, for a caption: a named test set, the
    synthetic demo set, the data set a reader reads (FER-2013), else the file read (`x.zip`,
    Markdown); "" where the run records none."""
    if dataset:
        return dataset
    data = (read_json(run.manifest).get("data") or {}) if run.manifest.is_file() else {}
    if data.get("demo"):
        return "the synthetic demo set"
    columns = set(pq.read_schema(run.splits).names) if run.splits.is_file() else set()
    if "source" in columns:
        faces = pd.read_parquet(run.splits, columns=sorted(columns & {"source", "split"}))
        test = faces[faces["split"] == "test"] if "split" in faces else faces
        names = {getattr(READERS.get(s), "dataset", None) for s in set(test["source"].astype(str))}
        if len(names) == 1 and None not in names:
            return str(names.pop())
    return f"`{Path(data['path']).name}`" if data.get("path") else ""


def _cell(row: pd.Series, task: str, metric: str) -> str:
    """ "0.687 [0.671, 0.701]", bold for the task's best, a dagger for a head that learned
    nothing; empty where the model has no such head."""
    column = f"{task}_{metric}"
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    text = comparison.fixed(value)
    if isinstance(low, float) and isinstance(high, float) and not math.isnan(low + high):
        text += f" [{comparison.fixed(low)}, {comparison.fixed(high)}]"
    if not row.get(f"{task}_learned", True):
        return text + DAGGER
    if _bold(row, task, metric):
        return f"**{text}**"
    return text


def _bold(row: pd.Series, task: str, metric: str) -> bool:
    """Whether the value is its task's best headline figure (a head that learned nothing is
    not ranked)."""
    learned = bool(row.get(f"{task}_learned", True))
    return learned and bool(row.get(f"{task}_best")) and metric == comparison.headline(task)[2]


def shown(results: pd.DataFrame) -> pd.DataFrame:
    """The table as text, with titled columns: what to_markdown shows."""
    rows = []
    for _, row in results.iterrows():
        cells = {"Model": row["model"], "Parameters": _parameters(row)}
        for task, metric, title in COLUMNS:
            if f"{task}_{metric}" in results:
                cells[title] = _cell(row, task, metric)
        cells["TTA"] = TTA_WORDS.get(str(row["tta"]), str(row["tta"]))
        rows.append(cells)
    return pd.DataFrame(rows)


def _parameters(row: pd.Series) -> str:
    """The parameter count with thousands separators, "" where the card has none."""
    params = row.get("parameters")
    return f"{int(params):,}" if isinstance(params, (int, float)) and not pd.isna(params) else ""


def to_markdown(results: pd.DataFrame) -> str:
    """`shown` as a Markdown table (bold kept), for the notebook and the report."""
    table = shown(results)
    if table.empty:
        return "No model has test metrics in this run."
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def metric_layout(
    lead: list[tuple[str, str]],
    table: pd.DataFrame,
    suffixes: tuple[str, ...] = ("",),
    tail: tuple[tuple[str, str], ...] = (),
) -> tuple[latex.Layout, list[tuple[str, str]]]:
    """A LaTeX table's columns: the `lead` (title, alignment) columns, then each metric of
    COLUMNS that `table` has (a column `<task>_<metric><suffix>`) under its task's title, right
    aligned, then the `tail` columns; and those metrics as (task, metric)."""
    metrics = [(t, m) for t, m, _ in COLUMNS if any(f"{t}_{m}{end}" in table for end in suffixes)]
    titles = [title for title, _ in lead] + [METRIC_TITLES[m] for _, m in metrics]
    titles += [title for title, _ in tail]
    groups: list[tuple[str, int]] = []
    for task, _ in metrics:
        if groups and groups[-1][0] == TASK_TITLES[task]:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((TASK_TITLES[task], 1))
    align = "".join(a for _, a in lead) + "r" * len(metrics) + "".join(a for _, a in tail)
    if tail:
        groups.append(("", len(tail)))
    return latex.Layout(titles, align, groups), metrics


def _latex_rows(
    results: pd.DataFrame, metrics: list[tuple[str, str]]
) -> tuple[list[list[str]], tuple[int, ...]]:
    """Each model on two rows: its values (the best in bold, a dagger for a head that learned
    nothing), then their intervals in small type; and the rows that end a model's block."""
    rows: list[list[str]] = []
    ends = []
    for _, row in results.iterrows():
        values = [latex.latex_escape(str(row["model"])), _parameters(row)]
        intervals = ["", ""]
        for task, metric in metrics:
            column = f"{task}_{metric}"
            value = latex.number(row.get(column))
            if value and _bold(row, task, metric):
                value = r"\textbf{" + value + "}"
            if value and not row.get(f"{task}_learned", True):
                value += r"$^\dagger$"
            values.append(value)
            low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
            interval = (
                f"[{latex.number(low)}, {latex.number(high)}]"
                if value and latex.number(low) and latex.number(high)
                else ""
            )
            intervals.append(latex.small(interval))
        tta = str(row["tta"])
        values.append(latex.latex_escape(TTA_WORDS.get(tta, tta)))
        intervals.append("")
        rows += [values, intervals] if any(intervals) else [values]
        ends.append(len(rows) - 1)
    return rows, tuple(ends)


def _caption(results: pd.DataFrame, caption: str = "") -> str:
    """The caption (LaTeX): the test images, how many and of what, what the intervals, the
    bold and NME are; `caption` (plain text) first."""
    counts = sorted(set(results["n_test"].dropna().astype(int))) if "n_test" in results else []
    images = f"{counts[0]:,} test images" if len(counts) == 1 else "Test images"
    data = results.attrs.get("data") or ""
    text = images[0].upper() + images[1:] + (f" of {data}" if data else "")
    if results.filter(like="_ci_low").notna().to_numpy().any():
        text += "; 95% bootstrap intervals beneath the values"
    text += "; the best model per task in bold (highest macro-F1 and CCC, lowest NME)"
    if "landmarks_nme" in results:
        text += f"; NME: mean landmark error as {NME_UNIT}"
    text += "; TTA: the test-time augmentation each model was scored with."
    return latex.latex_escape(caption) + (" " if caption else "") + latex.inline(text)


def to_latex(results: pd.DataFrame, caption: str = "") -> str:
    """A booktabs table of the results, each model's intervals on a row of their own, at a
    size that is read as printed (no box scaled to the line); the dagger explained under it.
    Labelled `tab:results-<run folder name>`, so two runs' tables can share a paper."""
    layout, metrics = metric_layout(
        [("Model", "l"), ("Parameters", "r")], results, tail=(("TTA", "l"),)
    )
    rows, ends = _latex_rows(results, metrics)
    learned = [results[f"{t}_learned"].all() for t, _ in metrics if f"{t}_learned" in results]
    notes = () if all(learned) else (r"$^\dagger$ a head that learned nothing, not ranked",)
    name = str(results.attrs.get("name", ""))
    return latex.booktabs(layout, rows, _caption(results, caption), "results", name, notes, ends)


def write_results(run_dir: str | os.PathLike, caption: str = "") -> tuple[Path, Path] | None:
    """<run>/results.csv and results.tex, whole or not at all; None for a run without metrics."""
    run = RunFolder(run_dir)
    results = results_table(run)
    if results.empty:
        return None
    return (
        write_text(run.results_csv, results.to_csv(index=False)),
        write_text(run.results_tex, to_latex(results, caption)),
    )
