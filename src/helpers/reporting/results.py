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

from helpers.core.jsonio import write_text
from helpers.core.run_folder import RunFolder
from helpers.evaluation import comparison
from helpers.reporting.methods import TTA_WORDS, latex_escape

# (task, metric) in the order a table reads them, with their column titles.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("expression", "accuracy", "Accuracy"),
    ("expression", "f1_macro", "Macro-F1"),
    ("valence", "ccc", "Valence CCC"),
    ("arousal", "ccc", "Arousal CCC"),
    ("landmarks", "nme", "Landmark NME"),
)
DAGGER = "\u2020"  # marks a head that learned nothing


def results_table(run_dir: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One row per model: its parameters, test-time augmentation and, per metric any model has,
    the value and its interval (columns `<task>_<metric>`, `..._ci_low`, `..._ci_high`), with
    `<task>_best` naming the task's best model and `<task>_learned` whether this one learned it.
    A model whose metrics describe an earlier training is left out, as the methods say."""
    table = comparison.comparison_table(run_dir, dataset)
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
    return out.reset_index(drop=True)


def _cell(row: pd.Series, task: str, metric: str) -> str:
    """ "0.687 [0.671, 0.701]", bold for the task's best, a dagger for a head that learned
    nothing; empty where the model has no such head."""
    column = f"{task}_{metric}"
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    text = f"{value:.3f}"
    if isinstance(low, float) and isinstance(high, float) and not math.isnan(low + high):
        text += f" [{low:.3f}, {high:.3f}]"
    if not row.get(f"{task}_learned", True):
        return text + DAGGER
    if row.get(f"{task}_best") and metric == comparison.headline(task)[2]:
        return f"**{text}**"
    return text


def shown(results: pd.DataFrame) -> pd.DataFrame:
    """The table as text, with titled columns: what results.tex typesets."""
    rows = []
    for _, row in results.iterrows():
        params = row.get("parameters")
        cells = {
            "Model": row["model"],
            "Parameters": f"{int(params):,}"
            if isinstance(params, (int, float)) and not math.isnan(params)
            else "",
        }
        for task, metric, title in COLUMNS:
            if f"{task}_{metric}" in results:
                cells[title] = _cell(row, task, metric)
        cells["TTA"] = TTA_WORDS.get(str(row["tta"]), str(row["tta"]))
        rows.append(cells)
    return pd.DataFrame(rows)


def to_markdown(results: pd.DataFrame) -> str:
    """`shown` as a Markdown table (bold kept), for the notebook and the report."""
    table = shown(results)
    if table.empty:
        return "No model has test metrics in this run."
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _latex_rows(text: pd.DataFrame) -> pd.DataFrame:
    """`shown` in LaTeX, each model on two rows: its values (bold as \\textbf, the dagger as a
    superscript), then their intervals in small type, so five metrics fit a page's width."""
    metrics = [title for _, _, title in COLUMNS if title in text.columns]
    rows = []
    for _, row in text.iterrows():
        values, intervals = {}, {}
        for column, cell in row.items():
            if column not in metrics:
                values[column], intervals[column] = latex_escape(str(cell)), ""
                continue
            bold = cell.startswith("**")
            cell = cell.strip("*")
            dagger = r"$^\dagger$" if cell.endswith(DAGGER) else ""
            value, _, interval = cell.rstrip(DAGGER).partition(" [")
            values[column] = (r"\textbf{" + value + "}" if bold else value) + dagger
            intervals[column] = r"{\footnotesize [" + interval + "}" if interval else ""
        rows += [values, intervals]
    return pd.DataFrame(rows, columns=text.columns)


def to_latex(results: pd.DataFrame, caption: str = "") -> str:
    """A booktabs table (pandas' to_latex) of `shown`, scaled to the line's width, each model's
    intervals on a row of their own, the dagger explained under it."""
    text = shown(results)
    table = _latex_rows(text)
    table.columns = [latex_escape(c) for c in table.columns]
    intervals = results.filter(like="_ci_low").notna().to_numpy().any()
    notes = "Test images" + ("; 95\\% bootstrap intervals in brackets" if intervals else "")
    notes += "; the best model per task in bold (highest macro-F1 and CCC, lowest NME)"
    notes += "; TTA: the test-time augmentation each model was scored with"
    if text.map(lambda t: DAGGER in t).to_numpy().any():
        notes += r"; $^\dagger$ a head that learned nothing, not ranked"
    latex = table.to_latex(
        index=False,
        escape=False,
        column_format="l" + "r" * (len(table.columns) - 1),
        caption=latex_escape(caption) + (" " if caption else "") + notes + ".",
        label="tab:results",
        position="t",
    )
    latex = latex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}")
    latex = latex.replace("\\end{tabular}", "\\end{tabular}}")
    return "% Needs \\usepackage{booktabs} and \\usepackage{graphicx}.\n" + latex


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
