"""Puts the models of a run side by side: one table row per model from its metrics JSON and
model card, the best model per task (never a collapsed one, nor one whose metrics describe an
earlier training) and the summary notebooks 06-07 read, so every comparison ranks models the
same way."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from helpers.core.errors import ConfigError, DataError
from helpers.core.jsonio import read_json
from helpers.core.labels import HEADS
from helpers.core.run_folder import RunFolder
from helpers.core.words import counted
from helpers.evaluation import freshness, health
from helpers.evaluation.metrics import confusion
from helpers.inference.speed import MEASURE
from helpers.train.card import CardFacts, read_card, read_history

# The metric that ranks models per task, and whether lower is better.
HEADLINE: dict[str, tuple[str, bool]] = {
    "expression": ("f1_macro", False),
    "valence": ("ccc", False),
    "arousal": ("ccc", False),
    "landmarks": ("nme", True),
}
NO_MODEL = "no model learned it"  # best_per_task: every model was flagged for the task
# The `stale` column's short form: the metrics describe an earlier training of the model.
STALE_REASON = "its metrics describe an earlier training"
# How every inference speed is measured (helpers.inference.speed), named where one is ranked.
SPEED_MEASURE = f"{MEASURE}, as the deployment table's latency"
HEADLINE_LABELS = {"f1_macro": "macro F1", "ccc": "CCC", "nme": "NME"}
# The metrics a test-time augmentation is compared on (a metrics JSON's `without_tta`).
TTA_HEADLINE: dict[str, tuple[str, ...]] = {
    "expression": ("accuracy", "f1_macro"),
    "valence": ("ccc",),
    "arousal": ("ccc",),
    "landmarks": ("nme",),
}
# Comparison column of each model-card fact (helpers.train.card.CardFacts).
CARD_COLUMNS: dict[str, str] = {
    "params": "params",
    "training_time_s": "train_seconds",
    "images_per_s": "train_images_per_s",
    "epochs_run": "epochs",
}
# Columns that count things: shown as whole numbers in the report's tables.
COUNT_COLUMNS = frozenset({"n", "params", "epochs"})
# Keys of a head's metrics that describe the scoring rather than measure the model.
_NOT_METRICS = frozenset(
    {"restricted_to", "n_dropped", "n_pred_outside_labels", "failure_threshold"}
)


def to_number(value: Any) -> float:
    """A float for a table cell; NaN for null or anything non-numeric."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class MetricsFile:
    """A metrics JSON (notebook 05's, the DESIGN.md contract) read back and checked: which
    model, on which data, how many images, and one block per head (None where the model has no
    such head or the data no such target); `data` keeps the whole file for the other keys."""

    model: str
    dataset: str | None
    n: int | None
    heads: dict[str, Mapping[str, Any] | None]
    data: dict[str, Any]

    @classmethod
    def read(cls, path: str | os.PathLike) -> MetricsFile:
        """The file at <run>/metrics/<model>[.<dataset>].json; a field of the wrong type is a
        DataError naming it (a file without `model` is named by its file name)."""
        path = Path(path)
        d = read_json(path)

        def fail(field: str, problem: str) -> NoReturn:
            raise DataError(path, f"metrics file: {field} {problem} (got {d.get(field)!r})")

        model = d.get("model", path.name.partition(".")[0])
        if not isinstance(model, str) or not model:
            fail("model", "must name the model")
        n = d.get("n")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            fail("n", "must be a count of images")
        dataset = d.get("dataset")
        if dataset is not None and not isinstance(dataset, str):
            fail("dataset", "must be a data set's name or null")
        heads: dict[str, Mapping[str, Any] | None] = {}
        for head in HEADS:
            block = d.get(head)
            if block is not None and not isinstance(block, Mapping):
                fail(head, "must be an object or null")
            heads[head] = block
        return cls(model, dataset, n, heads, d)

    def confusion(self) -> tuple[list, list] | None:
        """(matrix, class names) of the expression head, or None without one."""
        expr = self.heads["expression"]
        if not expr or "confusion_matrix" not in expr:
            return None
        return confusion(expr)


def tta_headline(scores: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics one test-time augmentation is compared on, per head the scores have."""
    return {
        head: {k: block.get(k) for k in keys}
        for head, keys in TTA_HEADLINE.items()
        if isinstance(block := scores.get(head), Mapping) and block
    }


def flatten_metrics(d: Mapping[str, Any]) -> dict[str, Any]:
    """One table row from a metrics JSON: <head>_<metric>, CIs as <..>_ci_low/_ci_high."""
    row: dict[str, Any] = {
        "model": d.get("model"),
        "dataset": d.get("dataset"),
        "n": to_number(d.get("n")),
    }
    for head in HEADS:
        block = d.get(head)
        if not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            if key.endswith("_ci") and isinstance(value, (list, tuple)) and len(value) == 2:
                row[f"{head}_{key}_low"] = to_number(value[0])
                row[f"{head}_{key}_high"] = to_number(value[1])
            elif key not in _NOT_METRICS and (
                value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            ):
                row[f"{head}_{key}"] = to_number(value)
    inference = d.get("inference")
    if isinstance(inference, Mapping):
        row["inference_images_per_s"] = to_number(inference.get("images_per_s"))
    explain = d.get("explain")
    if isinstance(explain, Mapping):  # Grad-CAM: share of the heatmap on the face (notebook 05)
        for key in ("on_face_share", "face_area_share"):
            row[f"explain_{key}"] = to_number(explain.get(key))
    calibration = d.get("calibration")
    if isinstance(calibration, Mapping):  # the expression head's temperature (notebook 05)
        row["calibration_temperature"] = to_number(calibration.get("temperature"))
        if "at_bound" in calibration:  # the search stopped at an end of its range: no optimum
            row["calibration_at_bound"] = calibration["at_bound"] or "no"
        after = calibration.get("test_ece")
        if isinstance(after, (list, tuple)) and len(after) == 2:
            row["calibrated_expression_ece"] = to_number(after[1])
    corrupted = d.get("corruptions")
    if isinstance(corrupted, Mapping):  # the test faces degraded, one view (notebook 05)
        for prefix, part in (("corrupted", "mean"), ("retained", "retained")):
            for head, block in (corrupted.get(part) or {}).items():
                for key, value in block.items() if isinstance(block, Mapping) else ():
                    row[f"{prefix}_{head}_{key}"] = to_number(value)
    row["tta"] = d.get("tta") or "none"
    without = d.get("without_tta")
    if row["tta"] == "none" and not isinstance(without, Mapping):  # its score is the one without
        without = tta_headline(d)
    for head, block in without.items() if isinstance(without, Mapping) else ():
        for key, value in block.items() if isinstance(block, Mapping) else ():
            row[f"no_tta_{head}_{key}"] = to_number(value)
    row["one_view_images_per_s"] = row.get(
        "inference_images_per_s" if row["tta"] == "none" else "no_tta_inference_images_per_s"
    )
    state = d.get("health")
    heads = state.get("collapsed_heads") if isinstance(state, Mapping) else None
    row["collapsed_heads"] = ",".join(str(h) for h in heads) if isinstance(heads, list) else ""
    return row


def _card_columns(path: os.PathLike) -> dict[str, float]:
    """Parameters, training time, speed and epochs from a model card (NaN where missing)."""
    facts = CardFacts.read(path)
    return {column: getattr(facts, fact) for fact, column in CARD_COLUMNS.items()}


def comparison_table(run_dir: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One row per model: metrics (+ CIs) from <run>/metrics, size and speed from <run>/models.

    dataset None reads the test-split files <model>.json; a name reads <model>.<name>.json.
    `stale` holds, for a model trained again since these metrics were written, the sentence
    saying so (helpers.evaluation.freshness), else "": such a row is not ranked.
    """
    run = RunFolder(run_dir)
    rows = []
    for path in run.metrics_files(dataset):
        model = path.stem.partition(".")[0]
        record = MetricsFile.read(path)
        d = record.data
        row = flatten_metrics(d)
        row["model"] = record.model
        row["dataset"] = dataset
        row.update(_card_columns(run.card_path(model)))
        row["stale"] = freshness.stale_note(run, record.model, d, dataset) or ""
        state = d.get("health")
        row["health"] = (
            health_note(run, row["model"], state)
            if isinstance(state, Mapping) and state.get("collapsed")
            else ""
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["model", "dataset", "n"])
    first = ["model", "dataset", "n"]
    return table[first + [c for c in table.columns if c not in first]].reset_index(drop=True)


def evaluated_line(run_dir: str | os.PathLike, table: pd.DataFrame, profile: str) -> str:
    """Notebook 06's first line: the run, its profile and how many models it compares; with
    none, or a model trained but not evaluated, which notebook gives it one to compare."""
    run, n = RunFolder(run_dir), len(table)
    said = f"run {run.name}: profile {profile}, {counted(n, 'model')} evaluated"
    trained = run.trained_models(finished_only=True)  # one in its first training: not yet
    if n:
        scored = set(table["model"]) if "model" in table else set()
        unscored = [m for m in trained if m not in scored]
        if not unscored:
            return said
        verb = "was" if len(unscored) == 1 else "were"
        return (
            f"{said}; {', '.join(unscored)} {verb} trained but not evaluated, so not in the "
            f"tables: run notebook 05 with model = {' / '.join(map(repr, unscored))}"
        )
    if trained:
        return f"{said}: run notebook 05 first (model = {', '.join(map(repr, trained))})"
    return f"{said}: train a model with notebook 04, then run notebook 05 first"


def by_model(table: pd.DataFrame, columns: list[str], digits: int = 3) -> pd.DataFrame:
    """The chosen columns as rows and a column per model, counts as whole numbers with
    thousands separators (1,278,450) and scores as text to `digits` decimals, a row with a
    value of 10 or over (seconds, speeds, sizes) to one decimal throughout, so every row reads
    at one precision: transposing mixes text and numbers into one column type, which pandas
    would show as stored (2806.0, 0.84412), and a rounded 0.85 beside 0.881 reads as less
    precise. Listed text gets a space after each comma, so a narrow column can wrap it (four
    collapsed heads were one 1,309 px word in the report)."""
    chosen = [c for c in columns if c in table.columns and c != "model"]

    def row(column: str) -> list[Any]:
        numbers = [to_number(v) for v in table[column]]
        large = any(abs(n) >= 10 for n in numbers if not math.isnan(n))
        return [
            cell(column, v, n, 1 if large else digits)
            for v, n in zip(table[column], numbers, strict=True)
        ]

    def cell(column: str, value: Any, number: float, places: int) -> Any:
        if not math.isnan(number):
            if column in COUNT_COLUMNS:
                return f"{round(number):,}"
            return fixed(number, places)
        if isinstance(value, str):  # a list such as the collapsed heads, wrapped where it is long
            return ", ".join(part.strip() for part in value.split(","))
        return None if value is None or isinstance(value, float) else value  # missing: blank

    return pd.DataFrame(
        [row(c) for c in chosen], index=chosen, columns=list(table["model"]), dtype=object
    )


def health_note(run_dir: str | os.PathLike, model: str, state: Any) -> str:
    """Whether a model learned; if it collapsed, what it predicts and why (from its history,
    and its card: one epoch, as the smoke profile trains, is too short to learn)."""
    if not isinstance(state, Mapping):
        return health.health_text(model, None)
    run = RunFolder(run_dir)
    history_path = run.history_path(model)
    history = None
    if state.get("collapsed") and history_path.is_file():
        history = read_history(history_path)
    return health.health_text(model, state, history, one_epoch_name(run.card_path(model)))


def one_epoch_name(card_path: Path) -> str | None:
    """'one epoch, profile smoke' for a model whose card plans one epoch (health.one_epoch), or
    whose time budget stopped it after one, else None."""
    card = read_card(card_path)
    if not isinstance(card, Mapping):
        return None
    ends = [p.get("end_epoch") for p in card.get("phases") or [] if isinstance(p, Mapping)]
    ran = card.get("epochs_run")
    planned = max((e for e in ends if isinstance(e, int)), default=ran)
    name = "one epoch"
    if not health.one_epoch(planned if isinstance(planned, int) else None):
        if not (card.get("stopped_by_time_budget") is True and isinstance(ran, int)):
            return None
        if not health.one_epoch(ran):
            return None
        name = f"one epoch (its time budget stopped it there, of {planned} planned)"
    profile = card.get("profile")
    return f"{name}, profile {profile}" if profile else name


def collapsed(table: pd.DataFrame, task: str) -> pd.Series:
    """Rows whose `task` head collapsed (helpers.evaluation.health): never ranked for that task."""
    if "collapsed_heads" not in table:
        return pd.Series(False, index=table.index)
    return (
        table["collapsed_heads"]
        .fillna("")
        .astype(str)
        .str.split(",")
        .map(lambda heads: task in heads)
    )


def stale(table: pd.DataFrame) -> pd.Series:
    """Rows whose metrics describe an earlier training of the model (comparison_table's
    `stale`): never ranked, for any task."""
    if "stale" not in table:
        return pd.Series(False, index=table.index)
    return table["stale"].fillna("").astype(str) != ""


def ranked_out(table: pd.DataFrame, task: str) -> pd.Series:
    """Rows not ranked for `task`: the head collapsed, or the metrics are of an earlier
    training of the model."""
    return collapsed(table, task) | stale(table)


def stale_lines(table: pd.DataFrame) -> list[str]:
    """A sentence per model left out of every ranking because its metrics are stale."""
    return [
        f"{row['model']} is not ranked: {row['stale']}."
        for _, row in table[stale(table)].iterrows()
    ]


def headline(task: str) -> tuple[str, bool, str]:
    """Column, lower-is-better and metric name of a task's headline metric."""
    metric, lower = HEADLINE[task]
    return f"{task}_{metric}", lower, metric


def best_models(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Best model per task by its headline metric (tasks nobody scored are left out)."""
    best = {}
    for task in HEADLINE:
        column, lower, metric = headline(task)
        if column not in table:
            continue
        scores = pd.to_numeric(table[column], errors="coerce").where(~ranked_out(table, task))
        if scores.isna().all():
            continue
        row = table.loc[scores.idxmin() if lower else scores.idxmax()]
        ci = [row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")]
        best[task] = {
            "model": row["model"],
            "metric": metric,
            "value": float(row[column]),
            "lower_is_better": lower,
            "ci": [float(v) for v in ci] if all(pd.notna(v) for v in ci) else None,
        }
    return best


def best_per_task(table: pd.DataFrame) -> dict[str, str]:
    """Each task scored by a model with current metrics: its best model, or NO_MODEL where
    every such model was flagged for it (models with stale metrics are left out)."""
    current = table[~stale(table)]
    best = best_models(current)
    scored = {
        task: best[task]["model"] if task in best else NO_MODEL
        for task in HEADLINE
        if (column := headline(task)[0]) in current
        and pd.to_numeric(current[column], errors="coerce").notna().any()
    }
    return dict(sorted(scored.items()))


def best_per_task_line(table: pd.DataFrame) -> str:
    """best_per_task in one line, as notebook 06 prints it and the terminal of a run shows it;
    models left out because their metrics are stale are named after it."""
    line = "best per task: " + (
        "; ".join(f"{task}: {name}" for task, name in best_per_task(table).items()) or "none"
    )
    left_out = [str(m) for m in table.loc[stale(table), "model"]] if "model" in table else []
    if left_out:
        line += f" (not ranked, {STALE_REASON}: {', '.join(left_out)})"
    return line


def model_to_use(table: pd.DataFrame) -> str:
    """The model to predict with: best expression macro-F1 among those that learned, else the
    best of those that did not (a tiny run may have only collapsed models), else the first.
    Models whose metrics describe an earlier training are passed over while any other has
    current metrics."""
    if table.empty:
        raise ConfigError("no evaluated model in this run: run notebook 05 first")
    # Every model stale: rank them by those figures anyway, still passing over collapsed ones.
    table = table[~stale(table)] if not stale(table).all() else table.assign(stale="")
    best = best_models(table).get("expression")
    if best:
        return str(best["model"])
    column = "expression_f1_macro"
    if column in table and pd.to_numeric(table[column], errors="coerce").notna().any():
        return str(table.loc[pd.to_numeric(table[column], errors="coerce").idxmax(), "model"])
    return str(table["model"].iloc[0])


def chosen_model(run_dir: str | os.PathLike, use_model: str = "") -> str:
    """The model notebook 07 predicts with: use_model, else model_to_use, with a line when no
    model's expression head learned, so a near-chance model is not taken for the best one, and
    one when every model's metrics are of an earlier training."""
    if use_model:
        freshness.check_model_name(run_dir, use_model, trainable=False)  # else: the run's models
        return use_model
    table = comparison_table(run_dir)
    model = model_to_use(table)
    if stale(table).all():
        print(
            f"every model's metrics describe an earlier training (run notebook 05 again): "
            f"using {model}, chosen by those figures"
        )
    elif "expression" not in best_models(table):
        print(
            f"no model in this run learned expression (notebook 05's health check): using "
            f"{model}, the best of those that did not; expect near-chance predictions"
        )
    return model


def fixed(value: float, digits: int = 3) -> str:
    """value to `digits` decimals, a value that rounds to zero as 0.000, never -0.000 (a mean
    CCC of -1e-10 is no negative score)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _fmt(value: float) -> str:
    """Three significant decimals for metrics in the summary."""
    return fixed(value)


def ci_range(low: float, high: float, digits: int = 3) -> str:
    """0.611-0.657, or -0.300 to 0.134 where a hyphen would read as a minus sign."""
    low_text, high_text = fixed(low, digits), fixed(high, digits)
    negative = low_text.startswith("-") or high_text.startswith("-")
    return f"{low_text}{' to ' if negative else '-'}{high_text}"


def ci_text(low: float, high: float) -> str:
    """The summary's "95% CI 0.611-0.657"."""
    return f"95% CI {ci_range(low, high)}"


def summary_text(table: pd.DataFrame, paired: pd.DataFrame | None = None) -> str:
    """A few sentences naming the winners, whether their lead is real, size and speed; a run
    of one model (as the FER profiles train) is described, not ranked against itself.

    paired: helpers.evaluation.paired.paired_table, whose interval of each lead over the same
    test images decides it; without it (or a row for the pair), whether the two models'
    own intervals overlap, which can only say that a lead may be noise."""
    if table.empty:
        return "No model metrics found."
    n = table["n"].dropna()
    alone = len(table) == 1
    lines = [
        ("1 model evaluated" if alone else f"{len(table)} models compared")
        + (f" on {int(n.max()):,} test images." if len(n) else ".")
    ]
    best = best_models(table)
    for task, name in best_per_task(table).items():
        if name == NO_MODEL:
            lines.append(
                f"{task.capitalize()}: "
                + ("the model learned nothing for it" if alone else "no model learned it")
                + " (below), so none is ranked."
            )
            continue
        info = best[task]
        column, lower, metric = headline(task)
        label = HEADLINE_LABELS.get(metric, metric)
        verdict = "" if alone else " is best"
        text = f"{task.capitalize()}: {info['model']}{verdict}, {label} {_fmt(info['value'])}"
        if info["ci"]:
            text += f" ({ci_text(*info['ci'])})"
        others = table[(table["model"] != info["model"]) & ~ranked_out(table, task)].dropna(
            subset=[column]
        )
        if not others.empty:
            runner = others.loc[others[column].idxmin() if lower else others[column].idxmax()]
            text += f"; next {runner['model']} {_fmt(runner[column])}"
            lead = _paired_row(paired, task, str(runner["model"]))
            low, high = runner.get(f"{column}_ci_low"), runner.get(f"{column}_ci_high")
            if lead is not None:
                text += f", {lead}"
            elif info["ci"] and pd.notna(low) and pd.notna(high):
                overlap = info["ci"][0] <= high and low <= info["ci"][1]
                text += (
                    ", the CIs overlap, so the lead may be noise"
                    if overlap
                    else ", a lead beyond both CIs"
                )
        lines.append(text + (" (lower is better)." if lower else "."))
    if "health" in table:
        lines += [note for note in table["health"].fillna("") if note]
    lines += stale_lines(table)
    facts = []
    for column, what, pick, unit, alone_unit in (
        (
            "one_view_images_per_s",
            "Fastest at inference (one view per image, without test-time augmentation)",
            "max",
            f"images/s: {SPEED_MEASURE}",
            f"images/s at inference (one view per image; {SPEED_MEASURE})",
        ),
        ("params", "Smallest", "min", "parameters", "parameters"),
    ):
        if column in table and table[column].notna().any():
            row = table.loc[getattr(table[column], f"idx{pick}")()]
            if alone:
                facts.append(f"{row[column]:,.0f} {alone_unit}")
            else:
                lines.append(f"{what}: {row['model']} ({row[column]:,.0f} {unit}).")
    if facts:
        lines.append(f"{table['model'].iloc[0]}: {', '.join(facts)}.")
    return "\n".join(lines)


def _paired_row(paired: pd.DataFrame | None, task: str, other: str) -> str | None:
    """The paired table's sentence on the best model's lead over `other`, if it compared them."""
    if paired is None or paired.empty:
        return None
    rows = paired[(paired["task"] == task) & (paired["other"] == other)]
    if rows.empty or not math.isfinite(to_number(rows["lead"].iloc[0])):
        return None
    row = rows.iloc[0]
    label = HEADLINE_LABELS.get(str(row["metric"]), str(row["metric"]))
    return (
        f"a lead of {float(row['lead']):.3f} in {label} (paired 95% CI "
        f"{ci_range(float(row['lead_ci_low']), float(row['lead_ci_high']))} over the same "
        f"{int(row['n']):,} test images): "
        + ("ahead" if row["lead_ci_low"] > 0 else "not told apart, the interval includes 0")
    )


def load_metrics(run_dir: str | os.PathLike, dataset: str | None = None) -> dict[str, dict]:
    """Metrics JSONs of a run by model: the test split (dataset None) or one external set."""
    return {
        path.stem.partition(".")[0]: MetricsFile.read(path).data
        for path in RunFolder(run_dir).metrics_files(dataset)
    }


def external_datasets(run_dir: str | os.PathLike) -> list[str]:
    """Names of the external test sets a run was evaluated on (metrics/<model>.<name>.json)."""
    return RunFolder(run_dir).external_datasets()


def confusion_matrices(run_dir: str | os.PathLike, dataset: str | None = None) -> dict[str, tuple]:
    """(matrix, labels) per model, for plots.plot_confusion_grid."""
    found = {}
    for path in RunFolder(run_dir).metrics_files(dataset):
        confusion = MetricsFile.read(path).confusion()
        if confusion is not None:
            found[path.stem.partition(".")[0]] = confusion
    return found


# The report's second table: what each metrics JSON holds beyond the headline columns, so no
# metric the methods section names as computed goes unshown.
SECONDARY_COLUMNS: list[str] = [
    "expression_f1_weighted",
    "expression_precision_macro",
    "expression_recall_macro",
    "expression_kappa_ci_low",
    "expression_kappa_ci_high",
    "expression_roc_auc_ovr",
    "expression_pr_auc_macro",
    *(
        f"{head}_{key}"
        for head in ("valence", "arousal")
        for key in ("rmse", "rmse_ci_low", "rmse_ci_high", "mae", "r2", "corr", "sagr")
    ),
    "landmarks_nme_median",
    "landmarks_failure_rate",
]


def per_class_scores(
    run_dir: str | os.PathLike, key: str = "f1", dataset: str | None = None
) -> pd.DataFrame:
    """Each model's `key` (precision, recall, f1 or support) per expression class: a row per
    model, a column per class in label order, NaN where a model did not score a class. Models
    whose metrics file predates `expression.per_class` (notebook 05 run again adds it) are
    named in `attrs["missing"]`."""
    rows: dict[str, dict[str, float]] = {}
    missing = []
    for model, scores in load_metrics(run_dir, dataset).items():
        block = scores.get("expression")
        if not isinstance(block, Mapping):
            continue
        per_class = block.get("per_class")
        if not isinstance(per_class, Mapping):
            missing.append(model)
            continue
        rows[model] = {
            str(name): to_number(values.get(key)) if isinstance(values, Mapping) else math.nan
            for name, values in per_class.items()
        }
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    table.index.name = "model"
    table.attrs["missing"] = missing
    return table
