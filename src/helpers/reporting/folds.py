"""The runs of a k-fold cross-validation, summed up as small data sets (JAFFE, CK+) are
reported: each model scored on every face once, its K test folds' predictions pooled (with a
bootstrap interval over the faces), and the mean ± standard deviation over the folds.

    python -m helpers.folds RUN RUN ... [--out DIR]
    ./run_all.sh --folds 5 [options]      # the runs, then this summary

The runs must share the profile, the data, the seed (it draws the folds) and the --set values,
and be folds 1..K of one K (`./run_all.sh --fold I/K`). Written as folds.csv (the numbers),
folds.md and folds.tex (a booktabs table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.errors import ConfigError, DataError, os_reason
from helpers.core.jsonio import write_text
from helpers.core.records import load_records
from helpers.core.run_folder import RunFolder
from helpers.data.splits import stratifiable
from helpers.evaluation import comparison, paired, scoring
from helpers.evaluation.metrics import confusion
from helpers.evaluation.predictions import load_predictions
from helpers.reporting import latex
from helpers.reporting.methods import TTA_WORDS
from helpers.reporting.plots import plot_confusion_grid, save_figure
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

FOLD_FILES = ("folds.csv", "folds.md", "folds.tex")
CONFUSION_FIGURE = "folds_confusion.png"
LEADS_FILE = "folds_leads.csv"


@dataclass(frozen=True)
class FoldRuns:
    """The runs summed up, checked to be folds 1..K of one cross-validation."""

    runs: tuple[Path, ...]
    folds: tuple[int, ...]
    k: int
    profile: str
    seed: int
    demo: bool


def check_folds(run_dirs: list[str | os.PathLike]) -> FoldRuns:
    """The runs of folds 1..K of one cross-validation (one profile, data, seed and --set values),
    ordered by fold; a ConfigError names what differs or which folds are missing."""
    runs, manifests = check_recipe(run_dirs, "a cross-validation")
    pairs = list(zip(runs, manifests, strict=True))
    unmarked = [
        r.name
        for r, m in pairs
        if not (isinstance(m.get("fold"), dict) and {"fold", "folds"} <= set(m["fold"]))
    ]
    if unmarked:
        raise ConfigError(
            f"{', '.join(unmarked)}: not a fold's run (made without --fold or --folds)"
        )
    seeds = {int(m["seed"]) for m in manifests}
    if len(seeds) > 1:
        listed = ", ".join(f"{r.name}: {m['seed']}" for r, m in pairs)
        raise ConfigError(f"the runs have different seeds ({listed}), so different folds")
    ks = {int(m["fold"]["folds"]) for m in manifests}
    if len(ks) > 1:
        listed = ", ".join(f"{r.name}: {m['fold']['folds']}" for r, m in pairs)
        raise ConfigError(f"the runs split the data into different numbers of folds ({listed})")
    k = ks.pop()
    folds = [int(m["fold"]["fold"]) for m in manifests]
    twice = sorted({f for f in folds if folds.count(f) > 1})
    if twice:
        raise ConfigError(f"fold {twice[0]} is given twice")
    missing = sorted(set(range(1, k + 1)) - set(folds))
    if missing:
        named = f"folds {', '.join(map(str, missing))} of {k} are" if len(missing) > 1 else (
            f"fold {missing[0]} of {k} is"
        )  # fmt: skip
        raise ConfigError(f"{named} missing: every face is tested once only over all the folds")
    ordered = sorted(zip(folds, runs, strict=True))
    return FoldRuns(
        runs=tuple(run for _, run in ordered),
        folds=tuple(fold for fold, _ in ordered),
        k=k,
        profile=manifests[0]["profile"]["name"],
        seed=seeds.pop(),
        demo=all(bool(m["data"].get("demo")) for m in manifests),
    )


def dealt_folds(checked: FoldRuns) -> pd.DataFrame:
    """The records of the cross-validation (the first fold's splits), checked to be dealt into
    the same folds in every fold's run: other library versions or data would deal others."""
    tables = [load_records(RunFolder(run).splits) for run in checked.runs]
    first = tables[0]
    if "fold" not in first.columns:
        raise DataError(
            RunFolder(checked.runs[0]).splits, "no fold column (notebook 03 with folds)"
        )
    dealt = first.set_index(first["id"].astype(str))["fold"]
    for run, table in zip(checked.runs[1:], tables[1:], strict=True):
        other = table.set_index(table["id"].astype(str)).get("fold")
        if other is None or not other.sort_index().equals(dealt.sort_index()):
            raise ConfigError(
                f"{checked.runs[0].name} and {run.name} dealt the faces into different folds "
                "(other data or library versions): run every fold in one environment"
            )
    return first


def pooled_predictions(
    checked: FoldRuns, model: str, dealt: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """A model's test predictions of every fold together, checked to hold each face of the
    data once; None where a fold has no saved predictions for it."""
    dealt = dealt_folds(checked) if dealt is None else dealt
    tables = []
    for run in checked.runs:
        path = RunFolder(run).predictions_path(model)
        if not path.is_file():
            return None
        tables.append(load_predictions(path).assign(_fold=run.name))
    pooled = pd.concat(tables, ignore_index=True)
    ids = pooled["id"].astype(str)
    if ids.duplicated().any():
        face = ids[ids.duplicated()].iloc[0]
        runs = " and ".join(pooled.loc[ids == face, "_fold"])
        raise DataError(
            RunFolder(checked.runs[0]).predictions_path(model).name,
            f"face {face} is in the test predictions of {runs}",
        )
    untested = sorted(set(dealt["id"].astype(str)) - set(ids))
    if untested:
        raise DataError(
            RunFolder(checked.runs[0]).predictions_path(model).name,
            f"{len(untested):,} faces were tested in no fold (e.g. {untested[0]})",
        )
    return pooled.drop(columns="_fold")


def pooled_metrics(
    checked: FoldRuns,
    model: str,
    dealt: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
) -> dict[str, Any] | None:
    """A model's metrics JSON over every fold's test predictions together (each face once), as
    notebook 05 scores one test split (its classes, resamples and seed; the intervals drawing a
    person's faces together where the data names them); None where a fold has no saved
    predictions for it."""
    dealt = dealt_folds(checked) if dealt is None else dealt
    pooled = pooled_predictions(checked, model, dealt) if predictions is None else predictions
    if pooled is None:
        return None
    present = sorted(dealt["expression"].unique())  # as notebook 05 scores each fold
    ci = comparison.MetricsFile.read(RunFolder(checked.runs[0]).metrics_path(model)).data
    ci = ci.get("ci") or {}
    return scoring.evaluate(
        model,
        pooled,
        n_boot=int(ci.get("n_boot", 0)),  # none where notebook 05 computed none
        seed=int(ci.get("seed", checked.seed)),
        classes=present,
        groups=scoring.person_groups(dealt, pooled),
    )


def pooled_leads(
    metrics: dict[str, dict[str, Any]],
    predictions: dict[str, pd.DataFrame],
    dealt: pd.DataFrame,
    seed: int = 0,
) -> pd.DataFrame:
    """Each task's best model over every face against every other model that learned the
    task, on the same faces (helpers.evaluation.paired): the comparison one fold's few faces
    cannot settle."""
    rows = [{**comparison.flatten_metrics(d), "model": model} for model, d in metrics.items()]
    table = pd.DataFrame(rows)

    scored = {
        model: paired.scored_predictions(found, metrics[model].get("expression"))
        for model, found in predictions.items()
    }  # once per model, not once per pair
    n_boot = int((next(iter(metrics.values())).get("ci") or {}).get("n_boot", 0))
    return paired.leads_table(table, metrics, scored.__getitem__, dealt, n_boot=n_boot, seed=seed)


def folds_table(run_dirs: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per model: its folds, per headline metric the pooled figure over every face
    (`<metric>_pooled`, with `_ci_low`/`_ci_high` and `faces`) and the spread over the folds
    (`spread`'s `_n`, `_mean`, `_sd`, `_min`, `_max`)."""
    checked = check_folds(run_dirs)
    scores = scored_runs(checked.runs, "fold", checked.folds)
    out = spread(scores, "fold")
    out.insert(2, "tta", out["model"].map(_modes(scores)))
    dealt = dealt_folds(checked)
    pooled, predictions = {}, {}
    for index, model in out["model"].items():
        faces = pooled_predictions(checked, str(model), dealt)
        found = None if faces is None else pooled_metrics(checked, str(model), dealt, faces)
        if faces is None or found is None:
            continue
        pooled[str(model)], predictions[str(model)] = found, faces
        row = comparison.flatten_metrics(found)
        out.loc[index, "faces"] = row.get("n")
        for task, metric, _ in COLUMNS:
            column = f"{task}_{metric}"
            for suffix in ("", "_ci_low", "_ci_high"):
                if row.get(column + suffix) is not None:
                    out.loc[index, f"{column}_pooled{suffix}"] = row[column + suffix]
    if "faces" in out:
        out["faces"] = (
            pd.to_numeric(out["faces"]).round().astype("Int64")
        )  # a count: 314, not 314.0
    out.insert(1, "profile", checked.profile)
    out.attrs.update(
        runs=len(checked.runs), k=checked.k, profile=checked.profile, seed=checked.seed,
        demo=checked.demo, pooled=pooled,
        leads=pooled_leads(pooled, predictions, dealt, checked.seed)
        if len(pooled) > 1 and all(d.get("ci") for d in pooled.values())
        else None,
        stratified=stratifiable(dealt["expression"], checked.k),
        people="subject" in dealt.columns and bool(dealt["subject"].notna().any()),
    )  # fmt: skip
    return out


def _modes(scores: pd.DataFrame) -> dict[str, str]:
    """Each model's test-time augmentation over its folds ("flip", or "flip in 3, none in 2"
    where the folds chose differently on their validation faces)."""
    modes = {}
    for model, group in scores.groupby("model", sort=False):
        counts = group["tta"].fillna("none").value_counts()
        modes[str(model)] = (
            str(counts.index[0])
            if len(counts) == 1
            else ", ".join(f"{mode} in {n}" for mode, n in counts.items())
        )  # keys, as the CSV keeps them; `tta_words` for the tables
    return modes


def tta_words(modes: str) -> str:
    """A `_modes` text in the tables' words: "one view" for none, "ten-crop" for tencrop."""
    return ", ".join(
        " in ".join([TTA_WORDS.get(mode, mode), *count])
        for mode, *count in (part.split(" in ") for part in modes.split(", "))
    )


def _cell(row: pd.Series, column: str, task: str, k: int) -> str:
    """ "0.842 [0.801, 0.879]; folds 0.840 ± 0.051", with the folds a head learned nothing in."""
    pooled, mean = row.get(f"{column}_pooled"), row.get(f"{column}_mean")
    parts = []
    if pooled is not None and pd.notna(pooled):
        low, high = row.get(f"{column}_pooled_ci_low"), row.get(f"{column}_pooled_ci_high")
        interval = (
            f" [{comparison.fixed(low)}, {comparison.fixed(high)}]"
            if pd.notna(low) and pd.notna(high)
            else ""
        )
        parts.append(f"{comparison.fixed(pooled)}{interval}")
    if mean is not None and pd.notna(mean):
        sd = row.get(f"{column}_sd")
        counted = int(row.get(f"{column}_n", k))
        text = f"folds {comparison.fixed(mean)}" + (
            "" if sd is None or pd.isna(sd) else f" ± {comparison.fixed(sd)}"
        )
        parts.append(text + (f" ({counted} of {k})" if counted < k else ""))
    failed = int(row.get(f"{task}_collapsed", 0) or 0)
    if parts and failed:
        parts[-1] += f" (learned nothing in {failed})"
    return "; ".join(parts)


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text: model, faces and a cell per metric any model has."""
    k = int(table.attrs.get("k", table["runs"].max()))
    rows = []
    for _, row in table.iterrows():
        faces = row.get("faces")
        cells = {"Model": row["model"], "Faces": "" if pd.isna(faces) else f"{int(faces):,}"}
        cells["TTA"] = tta_words(row.get("tta") or "none")
        for task, metric, title in COLUMNS:
            column = f"{task}_{metric}"
            if f"{column}_mean" in table or f"{column}_pooled" in table:
                cells[title] = _cell(row, column, task, k)
        rows.append(cells)
    return pd.DataFrame(rows)


def _note(table: pd.DataFrame, rows: bool = False) -> str:
    """What the figures are: the folds pooled, then the spread over them; the protocol; `rows`
    where a model's pooled figure, its interval and the spread are on rows of their own."""
    k, people = table.attrs.get("k"), table.attrs.get("people")
    together = "each person's faces and near-duplicate images" if people else (
        "near-duplicate images"
    )  # fmt: skip
    drawn = "drawing a person's faces together" if people else "over the faces"
    dealt = "stratified by expression" if table.attrs.get("stratified", True) else (
        "dealt by group alone (no class has a face for every fold)"
    )  # fmt: skip
    interval = f"95% bootstrap interval {drawn}" + (", beneath it" if rows else "")
    where = ", on the row \u201cfolds\u201d, " if rows else " "
    note = (
        f"{k}-fold cross-validation of the `{table.attrs.get('profile')}` profile, seed "
        f"{table.attrs.get('seed')}: folds {dealt}, "
        f"{together} in one fold. First each model's test predictions of all "
        f"{k} folds pooled, every face tested once ({interval}), then{where}the mean ± "
        f"standard deviation over the {k} folds. TTA: the test-time augmentation each fold "
        "chose on its validation faces."
    )
    if table.attrs.get("demo"):
        note += " The generated demo set is drawn from the seed."
    return note


def to_markdown(table: pd.DataFrame) -> str:
    """`shown` as a Markdown table with its note beneath, then each task's best model's leads
    over every face where two models or more were pooled."""
    text = markdown_table(shown(table), _note(table))
    leads = table.attrs.get("leads")
    if leads is None or leads.empty:
        return text
    lines = markdown_table(paired.shown(leads).astype(str), "")
    return (
        f"{text}\n\nEach task's best model over every face against every other model that "
        "learned it, on the same faces (a paired bootstrap"
        f"{', a person drawn whole' if table.attrs.get('people') else ''}): the lead in its "
        f"headline metric, its 95% interval and p-value.\n\n{lines.rstrip()}\n\n"
        f"{paired.verdict_line(leads).replace('on the same test images', 'over every face')}."
    )


def _latex_block(
    row: pd.Series, metrics: list[tuple[str, str]], k: int, notes: latex.Notes
) -> list[list[str]]:
    """A model's rows: its pooled figures (marked where the head learned nothing in some
    folds), their intervals in small type, and the row "folds": mean ± sd over the folds; the
    folds' test-time augmentations one to a row, so that the column stays narrow."""
    faces = row.get("faces")
    pooled = [
        latex.latex_escape(str(row["model"])),
        "" if faces is None or pd.isna(faces) else f"{int(faces):,}",
        "",
    ]
    intervals, spreads = ["", "", ""], [r"\quad folds", "", ""]
    for task, metric in metrics:
        column = f"{task}_{metric}"
        failed = int(row.get(f"{task}_collapsed", 0) or 0)
        said = [f"the head learned nothing in {failed} of {k} folds"] if failed else []
        value = latex.number(row.get(f"{column}_pooled"))
        low, high = (latex.number(row.get(f"{column}_pooled_ci_{s}")) for s in ("low", "high"))
        pooled.append(value + notes.mark(said) if value else "")
        intervals.append(latex.small(f"[{low}, {high}]") if value and low and high else "")
        mean, sd = latex.number(row.get(f"{column}_mean")), latex.number(row.get(f"{column}_sd"))
        counted = int(row.get(f"{column}_n", k))
        said = ([] if value else said) + (
            [f"scored in {counted} of {k} folds"] if mean and counted < k else []
        )
        spread = mean + (r" $\pm$ " + sd if sd else "") if mean else ""
        spreads.append(latex.small(spread + notes.mark(said) if spread else ""))
    block = [pooled, *([intervals] if any(intervals[3:]) else []), spreads]
    modes = tta_words(row.get("tta") or "none").split(", ")
    modes = [*modes[: len(block) - 1], ", ".join(modes[len(block) - 1 :])]
    modes = [mode for mode in modes if mode]
    for index, (line, mode) in enumerate(zip(block, modes, strict=False)):
        line[2] = latex.latex_escape(mode + ("," if index < len(modes) - 1 else ""))
    return block


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs table: per model its pooled figures, their intervals beneath, then the mean
    ± standard deviation over the folds on a row of its own; notes as marks under the table."""
    k = int(table.attrs.get("k", table["runs"].max()))
    lead = [("Model", "l"), ("Faces", "r"), ("TTA", "l")]
    layout, metrics = metric_layout(lead, table, ("_mean", "_pooled"))
    notes, rows, ends = latex.Notes(), [], []
    for _, row in table.iterrows():
        rows += _latex_block(row, metrics, k, notes)
        ends.append(len(rows) - 1)
    note = _note(table, rows=True)
    return latex_table(table, layout, (rows, tuple(ends)), note, caption, "folds", notes)


def write_folds(run_dirs: list[str | os.PathLike], out: str | os.PathLike) -> list[Path]:
    """folds.csv, folds.md and folds.tex in out (created), each whole or not at all; then the
    best models' leads over every face (folds_leads.csv), each model's pooled metrics JSON
    (pooled/<model>.json: per class, the confusion matrix) and their confusion matrices side by
    side, for print (folds_confusion.pdf and a 300-dpi .png, as the report's figures)."""
    table = folds_table(run_dirs)
    folder = Path(out)
    written = write_tables(folder, FOLD_FILES, table, to_markdown, to_latex)
    leads = table.attrs.get("leads")
    if leads is not None and not leads.empty:
        written.append(write_text(folder / LEADS_FILE, leads.to_csv(index=False)))
    pooled: dict[str, dict[str, Any]] = table.attrs.get("pooled") or {}
    written += [
        scoring.write_metrics(metrics, folder / "pooled" / f"{model}.json")
        for model, metrics in pooled.items()
    ]
    matrices = {
        model: confusion(block)
        for model, metrics in pooled.items()
        if (block := metrics.get("expression") or {}).get("confusion_matrix")
    }
    if matrices:
        stem = Path(CONFUSION_FIGURE).stem
        try:
            written += save_figure(plot_confusion_grid(matrices), folder, stem)
        except OSError as error:
            raise ConfigError(f"{folder / stem}: cannot be written ({os_reason(error)})") from None
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.folds RUN RUN ... [--out DIR]`: 0, or 2 with one line for bad runs."""
    return summary_command(
        argv,
        "python -m helpers.folds",
        "Each model's test metrics over the folds of a cross-validation: every face's "
        "prediction pooled, and the mean ± standard deviation over the folds.",
        "folder for folds.csv/.md/.tex, folds_leads.csv, folds_confusion.pdf/.png and "
        "pooled/<model>.json (default: the table printed, nothing written)",
        lambda runs: to_markdown(folds_table(runs)),
        write_folds,
    )
