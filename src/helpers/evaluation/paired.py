"""Whether a best model's lead is real: each task's best model against every other model that
learned the task, on the same test images, with a paired bootstrap interval of the difference.
Two models' separate 95% intervals overlap long after one is reliably ahead, since both are
scored on the same faces; resampling the faces once for both (helpers.evaluation.bootstrap
.paired_difference) leaves only what differs between them in the interval."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import ConfigError
from helpers.core.records import load_records
from helpers.core.run_folder import RunFolder
from helpers.evaluation.bootstrap import paired_difference
from helpers.evaluation.comparison import (
    HEADLINE_LABELS,
    best_models,
    ci_range,
    comparison_table,
    headline,
    load_metrics,
    ranked_out,
)
from helpers.evaluation.predictions import load_predictions
from helpers.evaluation.scoring import person_groups, scored_pairs

COLUMNS = [
    "task",
    "metric",
    "best",
    "other",
    "best_value",
    "other_value",
    "lead",
    "lead_ci_low",
    "lead_ci_high",
    "p_value",
    "n",
    "verdict",
]
N_BOOT = 1000  # resamples of the test images for each lead (notebook 06, the methods text)
AHEAD = "ahead: the interval excludes 0"
LEVEL = "not told apart: the interval includes 0"


def paired_table(
    run_dir: str | os.PathLike,
    table: pd.DataFrame | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per task and other model: the best model's lead over it in the task's headline
    metric (positive: the best is better, also where lower is better), its paired 95%
    interval and p-value over the test images both were scored on, and the verdict. A folder
    that does not exist or holds no run (no settings, records, metrics or manifest) is a
    ConfigError: a mistyped path would otherwise read as "no model leads anything"."""
    run = RunFolder(run_dir)
    if not run.root.is_dir():
        raise ConfigError(f"paired_table: run folder {run_dir} does not exist")
    if not any(p.exists() for p in (run.settings, run.records, run.manifest, run / "metrics")):
        raise ConfigError(
            f"paired_table: {run_dir} is not a run folder (no settings.json, records.parquet, "
            "metrics/ or manifest.json): give a folder notebook 01 or ./run_all.sh wrote"
        )
    table = comparison_table(run) if table is None else table
    metrics = load_metrics(run)
    cache: dict[str, dict[str, Any] | str] = {}

    def pairs_of(model: str) -> dict[str, Any] | str:
        return _pairs(run, cache, model, metrics)

    return leads_table(table, metrics, pairs_of, _people(run), n_boot=n_boot, seed=seed)


def leads_table(
    table: pd.DataFrame,
    metrics: dict[str, dict],
    pairs_of: Callable[[str], dict[str, Any] | str],
    people: pd.DataFrame | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """paired_table's rows for any scored predictions: table (comparison_table's columns: one
    row per model), each model's metrics JSON, pairs_of(model) giving its `ids` and scored
    (truth, prediction) `heads` (or why there are none), people (records with `subject`, to
    draw a person's faces together)."""
    rows = []
    for task, info in best_models(table).items():
        column, lower, metric = headline(task)
        others = table[(table["model"] != info["model"]) & ~ranked_out(table, task)]
        for other in others.dropna(subset=[column])["model"]:
            row: dict[str, Any] = {
                "task": task,
                "metric": metric,
                "best": info["model"],
                "other": other,
                "best_value": info["value"],
                "other_value": float(others.loc[others["model"] == other, column].iloc[0]),
            }
            found = _lead(pairs_of, metrics, task, info["model"], other, n_boot, seed, people)
            if isinstance(found, str):
                row.update(lead=math.nan, verdict=f"not compared: {found}")
            else:
                sign = -1.0 if lower else 1.0
                low, high = sorted(sign * v for v in found["ci"])
                lead = sign * found["difference"]
                defined = all(math.isfinite(v) for v in (lead, low, high))
                row.update(
                    lead=lead if defined else math.nan,
                    lead_ci_low=low,
                    lead_ci_high=high,
                    p_value=found["p_value"],
                    n=found["n"],
                    verdict=(AHEAD if low > 0 else LEVEL)
                    if defined
                    else "not compared: no interval (no images both were scored on)",
                )
            rows.append(row)
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["n_boot"] = n_boot
    return out


def _lead(
    pairs_of: Callable[[str], dict[str, Any] | str],
    metrics: dict[str, dict],
    task: str,
    best: str,
    other: str,
    n_boot: int,
    seed: int,
    people: pd.DataFrame | None = None,
) -> dict[str, Any] | str:
    """paired_difference of best minus other on the task, or why the two cannot be paired."""
    a, b = pairs_of(best), pairs_of(other)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else b
    ids_a, ids_b = a["ids"], b["ids"]
    if set(ids_a) != set(ids_b):
        return "scored on different test images"
    if task not in a["heads"] or task not in b["heads"]:
        return f"no {task} predictions"
    order = pd.Index(ids_b).get_indexer(ids_a)
    truth_b, guess_b = (x[order] for x in b["heads"][task])
    if not np.array_equal(a["heads"][task][0], truth_b, equal_nan=True):
        return "scored on different labels"
    labels = None
    if task == "expression":
        labels = (metrics.get(best, {}).get("expression") or {}).get("label_ids")
        other_labels = (metrics.get(other, {}).get("expression") or {}).get("label_ids")
        if labels is None or labels != other_labels:
            return "scored on different classes"
    return paired_difference(
        task, headline(task)[2], a["heads"][task], (truth_b, guess_b),
        label_ids=labels, n_boot=n_boot, seed=seed, groups=_groups(people, ids_a),
    )  # fmt: skip


def _people(run: RunFolder) -> pd.DataFrame | None:
    """The run's records, whose `subject` (JAFFE, CK+) lets the paired bootstrap draw a
    person's faces together, as the models' own intervals do."""
    return load_records(run.splits) if run.splits.is_file() else None


def _groups(people: pd.DataFrame | None, ids: np.ndarray) -> np.ndarray | None:
    """The person of each of these images (person_groups; the bootstrap draws faces where
    that makes one group or one per face)."""
    return None if people is None else person_groups(people, pd.DataFrame({"id": ids}))


def scored_predictions(predictions: pd.DataFrame, expression: Any) -> dict[str, Any] | str:
    """A model's test ids and scored (truth, prediction) pairs per head, as `leads_table`'s
    pairs_of gives them, its predictions confined to the classes its metrics JSON scored."""
    ids = predictions["id"].astype(str).to_numpy()
    if len(set(ids)) != len(ids):
        return "repeated ids"
    return {"ids": ids, "heads": scored_pairs(predictions, expression)}


def _pairs(
    run: RunFolder, cache: dict[str, dict[str, Any] | str], model: str, metrics: dict[str, dict]
) -> dict[str, Any] | str:
    """A model's test-split ids and scored (truth, prediction) pairs per head, read once, its
    predictions confined to the classes its metrics JSON scored them on."""
    if model not in cache:
        path = run.predictions_path(model)
        if not path.is_file():
            cache[model] = f"no predictions/{path.name} (notebook 05)"
        else:
            expression = metrics.get(model, {}).get("expression")
            found = scored_predictions(load_predictions(path), expression)
            cache[model] = (
                f"{found} in predictions/{path.name}" if isinstance(found, str) else found
            )
    return cache[model]


def verdict_line(paired: pd.DataFrame) -> str:
    """One line per run for the terminal: each task's best model and whom it leads on the same
    test images, e.g. "leads on the same test images: expression: custom_cnn ahead of every
    other model; landmarks: mobilenetv2 ahead of vgg16, not told apart from resnet50"; "" when
    no two models learned the same task."""
    if paired.empty:
        return ""
    parts = []
    for task, rows in paired.groupby("task", sort=False):
        ahead = rows[rows["verdict"] == AHEAD]["other"].tolist()
        level = rows[rows["verdict"] == LEVEL]["other"].tolist()
        unpaired = rows[~rows["verdict"].isin([AHEAD, LEVEL])]["other"].tolist()
        said = []
        if ahead:
            said.append("ahead of every other model" if len(ahead) == len(rows) else
                        "ahead of " + ", ".join(ahead))  # fmt: skip
        if level:
            said.append("not told apart from " + ", ".join(level))
        if unpaired:
            said.append("not compared with " + ", ".join(unpaired))
        parts.append(f"{task}: {rows['best'].iloc[0]} " + ", ".join(said))
    return "leads on the same test images: " + "; ".join(parts)


def shown(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired table as the report shows it: scores to 3 decimals, the lead with its
    interval in one cell, a p-value of 0 as below the bootstrap's resolution."""
    if paired.empty:
        return pd.DataFrame(columns=["task", "metric", "best", "other", "lead (95% CI)", "p"])
    n_boot = int(paired.attrs.get("n_boot", 1000))

    def lead(row: pd.Series) -> str:
        if not np.isfinite(row["lead"]):
            return ""
        return f"{row['lead']:.3f} ({ci_range(row['lead_ci_low'], row['lead_ci_high'])})"

    def p(value: float) -> str:
        if not np.isfinite(value):
            return ""
        return f"<{2 / n_boot:.3g}" if value == 0 else f"{value:.3f}"  # doubled: two-sided

    return pd.DataFrame(
        {
            "task": paired["task"],
            "metric": paired["metric"].map(lambda m: HEADLINE_LABELS.get(m, m)),
            "best": paired["best"] + " " + paired["best_value"].map("{:.3f}".format),
            "other": paired["other"] + " " + paired["other_value"].map("{:.3f}".format),
            "lead (95% CI)": paired.apply(lead, axis=1),
            "p": paired["p_value"].map(p),
            "verdict": paired["verdict"],
        }
    )
