"""Model evaluation for notebooks 05 and 06: predictions, metrics files, comparisons, report.

Predictions table (predict_table, save_predictions/load_predictions), one row per image:
  id, image, source          copied from the records table (image is needed by the galleries)
  width, height              size of the STORED image, read from the decoded image; landmark
                             predictions are converted back to its pixels with them
  expression                 truth, int 0-7 in AffectNet order (-1 where missing)
  expression_pred            argmax of the model's softmax, in AffectNet order
  confidence                 that class's probability (restrict_table confines both to the
                             classes of a cross-dataset test set, as its metrics do)
  p_<Class>                  the softmax, one column per class the model has (p_Neutral, ...)
  valence, arousal           truth (NaN where missing); `<head>_pred` the model's output
  landmarks                  truth, (68, 2) float32 pixels of the stored image, or None
  landmarks_pred             prediction in the same pixels
A `<head>_pred` column exists only when the model has that head, so a missing head scores null.
Timings of the model calls are kept in `predictions.attrs["inference"]` (and in the parquet file).

Column names follow helpers.metrics.evaluate_predictions (`h` and `h_pred`), which scores them.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from helpers import health, metrics
from helpers.config import REPORTS_DIR
from helpers.errors import ConfigError, DataError
from helpers.labels import EXPRESSIONS, expression_index
from helpers.landmarks import N_POINTS
from helpers.records import landmarks_from_arrow, landmarks_to_arrow, read_parquet, write_parquet
from helpers.tta import check_tta
from helpers.tta import predict as tta_predict

PROBA_PREFIX = "p_"
LANDMARK_COLUMNS = ("landmarks", "landmarks_pred")
REGRESSION_HEADS = ("valence", "arousal")
# The metric that ranks models per task, and whether lower is better.
HEADLINE: dict[str, tuple[str, bool]] = {
    "expression": ("f1_macro", False),
    "valence": ("ccc", False),
    "arousal": ("ccc", False),
    "landmarks": ("nme", True),
}
HEADLINE_LABELS = {"f1_macro": "macro F1", "ccc": "CCC", "nme": "NME"}
LEADERBOARD_METRICS = (
    "n", "expression_accuracy", "expression_f1_macro", "expression_f1_macro_ci_low",
    "expression_f1_macro_ci_high", "expression_kappa", "valence_ccc", "valence_rmse",
    "arousal_ccc", "arousal_rmse", "landmarks_nme", "params", "train_seconds",
    "inference_images_per_s", "collapsed_heads",
)
# Model cards are written by the training notebook; these are the names each fact may go by.
CARD_KEYS: dict[str, tuple[str, ...]] = {
    "params": ("params", "n_params", "param_count", "total_params", "count_params",
               "parameter_count", "parameters"),
    "train_seconds": ("training_time_s", "train_seconds", "training_seconds", "train_time_s",
                      "fit_seconds", "wall_time_s"),
    "train_images_per_s": ("train_images_per_s", "images_per_s", "training_images_per_s",
                           "throughput_images_per_s"),
    "epochs": ("epochs_run", "epochs_trained", "epochs"),
}
_PARQUET_ATTRS_KEY = b"helpers.predictions.attrs"
# Keys of a head's metrics that describe the scoring rather than measure the model.
_NOT_METRICS = frozenset({"restricted_to", "n_dropped", "n_pred_outside_labels",
                          "failure_threshold"})


# --------------------------------------------------------------------------- prediction

def proba_column(name: str) -> str:
    """Column holding a class's probability, e.g. p_Happy."""
    return f"{PROBA_PREFIX}{name}"


def proba_classes(predictions: pd.DataFrame) -> list[int]:
    """AffectNet indices of the classes whose probabilities the table holds, in column order."""
    found = []
    for column in predictions.columns:
        if str(column).startswith(PROBA_PREFIX):
            name = str(column)[len(PROBA_PREFIX):]
            if name in EXPRESSIONS:
                found.append(EXPRESSIONS.index(name))
    return found


def _batches(uris: Sequence[str], image_size: int, channels: int, batch_size: int,
             workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images float 0-255, stored sizes as (width, height) rows) per batch, in table order.

    Decoding and resizing are helpers.pipeline's, so the model sees what it saw in training;
    threads overlap it (OpenCV and Pillow release the GIL).
    """
    from helpers.pipeline import _decode

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(uris), batch_size):
            loaded = list(pool.map(lambda uri: _decode(uri, image_size, channels),
                                   uris[start:start + batch_size]))
            yield (np.stack([image for image, _ in loaded]).astype(np.float32),
                   np.array([(w, h) for _, (h, w) in loaded], dtype=np.float64))


def _as_dict(outputs: Any, model: Any) -> dict[str, np.ndarray]:
    """Model outputs keyed by head name, whether the model returns a dict or a list."""
    if isinstance(outputs, Mapping):
        return {str(k): np.asarray(v) for k, v in outputs.items()}
    names = list(getattr(model, "output_names", None) or [])
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    if len(names) != len(outputs):
        raise ValueError(f"cannot tell which head is which: outputs {len(outputs)}, "
                         f"names {names}")
    return {n: np.asarray(o) for n, o in zip(names, outputs)}


def landmarks_to_pixels(normalised: Any, width: Any, height: Any,
                        image_size: int) -> np.ndarray:
    """(N, 68, 2) pixels of each stored image from the model's 136 values x0/S, y0/S, ...

    Exact inverse of the training targets (helpers.pipeline.scale_landmarks, then / S): the
    model input is the whole stored image resized to S x S with the pixel-centre convention,
    so x = (x_norm * S + 0.5) * width / S - 0.5, likewise y with height.
    """
    size = float(image_size)
    pts = np.asarray(normalised, dtype=np.float64).reshape(-1, N_POINTS, 2)
    wh = np.stack([np.asarray(width, np.float64).reshape(-1),
                   np.asarray(height, np.float64).reshape(-1)], axis=-1).reshape(-1, 1, 2)
    return ((pts * size + 0.5) * wh / size - 0.5).astype(np.float32)


def predict_table(model: Any, table: pd.DataFrame, *, batch_size: int = 64,
                  progress: bool = True, workers: int = 4, tta: str = "none") -> pd.DataFrame:
    """Every row's predictions next to its truth, batched, in the layout the module doc gives.

    Image size, channels, heads and class names come from helpers.models.model_metadata, so
    any model the factory built works; `workers` threads decode the images. tta: "none" or
    "flip" (outputs averaged with the mirror image's, helpers.tta).
    """
    from helpers.models import model_metadata  # keras: imported only when predicting
    from helpers.pipeline import check_images

    tta = check_tta(tta)
    meta = model_metadata(model)
    if len(table):
        check_images(table)  # a missing file fails now, named, not after minutes of work
    size, channels, heads = meta["image_size"], meta["channels"], meta["heads"]
    labels = list(meta["labels"] or [])
    uris = table["image"].astype(str).tolist()
    collected: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    sizes: list[np.ndarray] = []
    timings: list[tuple[int, float]] = []  # (images, seconds) per model call
    started = time.perf_counter()
    with tqdm(total=len(uris), desc=f"predicting ({meta['name']})", unit="img",
              disable=not progress) as bar:
        for images, wh in _batches(uris, size, channels, batch_size, workers):
            k = len(images)
            if k < batch_size:  # pad the last batch: one input shape, no second graph trace
                images = np.concatenate([images, np.zeros((batch_size - k, *images.shape[1:]),
                                                          images.dtype)])
            t0 = time.perf_counter()
            outputs = tta_predict(lambda x: _as_dict(model.predict_on_batch(x), model),
                                  images, tta)
            timings.append((k, time.perf_counter() - t0))
            for head in heads:
                collected[head].append(outputs[head][:k].reshape(k, -1))
            sizes.append(wh)
            bar.update(k)
    total_seconds = time.perf_counter() - started
    wh = np.concatenate(sizes) if sizes else np.empty((0, 2))

    out = pd.DataFrame({
        "id": table["id"].astype(str).to_numpy(),
        "image": uris,
        "source": (table["source"].astype(str).to_numpy() if "source" in table
                   else np.full(len(table), "", dtype=object)),
        "width": wh[:, 0].astype(np.int64),
        "height": wh[:, 1].astype(np.int64),
        "expression": (pd.to_numeric(table["expression"], errors="coerce").fillna(-1)
                       .astype(np.int64).to_numpy() if "expression" in table
                       else np.full(len(table), -1, dtype=np.int64)),
    })
    n = len(out)
    units = {"expression": len(labels) or 1, "landmarks": 2 * N_POINTS}
    stacked = {h: (np.concatenate(v) if v else np.empty((0, units.get(h, 1))))
               for h, v in collected.items()}
    if "expression" in heads:
        proba = stacked["expression"]
        names = labels or list(EXPRESSIONS[:proba.shape[1]])
        ids = [EXPRESSIONS.index(c) for c in names]
        best = proba.argmax(axis=1) if n else np.empty(0, dtype=np.int64)
        out["expression_pred"] = np.asarray(ids, dtype=np.int64)[best]
        out["confidence"] = proba.max(axis=1) if n else np.empty(0)
        for column, name in enumerate(names):
            out[proba_column(name)] = proba[:, column].astype(np.float64)
    for head in REGRESSION_HEADS:
        out[head] = (pd.to_numeric(table[head], errors="coerce").to_numpy(dtype=np.float64)
                     if head in table else np.full(n, np.nan))
        if head in heads:
            out[f"{head}_pred"] = stacked[head].reshape(n).astype(np.float64)
    out["landmarks"] = pd.Series(
        list(table["landmarks"]) if "landmarks" in table else [None] * n, dtype=object)
    if "landmarks" in heads:
        pixels = landmarks_to_pixels(stacked["landmarks"], wh[:, 0], wh[:, 1], size)
        out["landmarks_pred"] = pd.Series(list(pixels), dtype=object)
    # Speed of the model calls alone (decoding is in total_seconds), leaving out the first
    # call, which traces the graph, whenever there is more than one.
    steady = timings[1:] if len(timings) > 1 else timings
    steady_images, steady_seconds = sum(k for k, _ in steady), sum(t for _, t in steady)
    out.attrs["inference"] = {
        "images": n,
        "tta": tta,
        "batch_size": int(batch_size),
        "model_seconds": sum(t for _, t in timings),
        "total_seconds": total_seconds,
        "images_per_s": steady_images / steady_seconds if steady_seconds > 0 else None,
    }
    return out


def save_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Parquet with landmarks as 136 float32 per row (as helpers.records stores them)."""
    path = Path(path)
    present = [c for c in LANDMARK_COLUMNS if c in predictions.columns]
    table = pa.Table.from_pandas(predictions.drop(columns=present), preserve_index=False)
    for column in present:
        position = list(predictions.columns).index(column)
        table = table.add_column(min(position, table.num_columns), column,
                                 landmarks_to_arrow(predictions[column]))
    attrs = json.dumps(metrics.json_ready(predictions.attrs)).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _PARQUET_ATTRS_KEY: attrs})
    write_parquet(table, path, "predictions")
    return path


def load_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read what save_predictions wrote: (68, 2) landmark arrays and attrs restored."""
    path = Path(path)
    table = read_parquet(path, "predictions")
    landmarks = {c: landmarks_from_arrow(table.column(c), str(path))
                 for c in LANDMARK_COLUMNS if c in table.column_names}
    positions = {c: table.column_names.index(c) for c in landmarks}
    df = table.drop_columns(list(landmarks)).to_pandas()
    for column in sorted(landmarks, key=positions.get):
        df.insert(positions[column], column, pd.Series(landmarks[column], dtype=object))
    raw = (table.schema.metadata or {}).get(_PARQUET_ATTRS_KEY)
    df.attrs = json.loads(raw) if raw else {}
    return df


# --------------------------------------------------------------------------- metrics

def _class_id(label: Any) -> int | None:
    """AffectNet index of a class given by index or by (any common) name; None if unknown."""
    if isinstance(label, str):
        return expression_index(label)
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None
    if math.isfinite(value) and value == int(value) and 0 <= value < len(EXPRESSIONS):
        return int(value)
    return None


def _names(ids: Iterable[int]) -> str:
    """Class names for notes."""
    return ", ".join(EXPRESSIONS[i] for i in ids)


def shared_classes(model_labels: Iterable[Any],
                   data_expressions: Iterable[Any]) -> tuple[list[int], list[str]]:
    """The classes both the model and a test set have (AffectNet indices), and notes on the rest.

    model_labels: the model's classes (names as in model_metadata()["labels"], or indices);
    data_expressions: the test set's classes, or its whole expression column (indices or names;
    missing values ignored). The choice made for the rest, and written in the notes: a class the
    test set lacks (Contempt in a 7-class FER-2013 set) is taken out of the model's choice, so
    predictions are the argmax over the shared classes with probabilities renormalised over
    them (helpers.metrics.restrict_predictions); a class the model lacks cannot be predicted, so
    its images are left out of the expression metrics.
    """
    model = {c for c in map(_class_id, model_labels) if c is not None}
    values = pd.Series(list(data_expressions), dtype=object).dropna().unique()
    data = {c for c in map(_class_id, values) if c is not None}
    shared = sorted(model & data)
    notes = []
    if not shared:
        notes.append("the model and the test set share no expression class: expression "
                     "is not scored")
        return shared, notes
    if model - data:
        notes.append(f"the test set has no {_names(sorted(model - data))}: predictions are "
                     f"the argmax over the {len(shared)} shared classes, probabilities "
                     "renormalised over them")
    if data - model:
        notes.append(f"the model does not predict {_names(sorted(data - model))}: those "
                     "test images are left out of the expression metrics")
    return shared, notes


def restrict_table(predictions: pd.DataFrame, classes: Sequence[int]) -> pd.DataFrame:
    """A copy whose expression_pred, confidence and p_ columns are confined to `classes`
    (argmax over them, renormalised), so galleries of a cross-dataset run match its metrics."""
    model_classes = proba_classes(predictions)
    keep = [c for c in model_classes if c in set(classes)]
    out = predictions.copy()
    if not keep:
        return out
    columns = [proba_column(EXPRESSIONS[c]) for c in model_classes]
    pred, proba = metrics.restrict_predictions(out[columns].to_numpy(np.float64),
                                               [model_classes.index(c) for c in keep])
    out[columns] = proba
    out["expression_pred"] = np.asarray(model_classes, dtype=np.int64)[pred]
    out["confidence"] = proba.max(axis=1)
    return out


def _metric_inputs(predictions: pd.DataFrame, classes: list[int] | None) -> dict[str, Any]:
    """Columns for metrics.evaluate_predictions, probabilities as one (N, K) array."""
    cols: dict[str, Any] = {}
    model_classes = proba_classes(predictions)
    if "expression" in predictions and classes != []:
        cols["expression"] = predictions["expression"].to_numpy()
        if model_classes:
            # Columns in AffectNet order; a class the model lacks gets probability 0.
            proba = np.zeros((len(predictions), max(model_classes) + 1))
            for c in model_classes:
                proba[:, c] = predictions[proba_column(EXPRESSIONS[c])].to_numpy(np.float64)
            cols["expression_proba"] = proba
        if "expression_pred" in predictions:
            cols["expression_pred"] = predictions["expression_pred"].to_numpy()
        if len(cols) == 1:
            del cols["expression"]
    for head in (*REGRESSION_HEADS, "landmarks"):
        for column in (head, f"{head}_pred"):
            if column in predictions:
                cols[column] = predictions[column].to_numpy()
    return cols


def evaluate(model_name: str, predictions: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
             classes: Iterable[Any] | None = None, *, dataset: str | None = None,
             notes: Sequence[str] = ()) -> dict:
    """The metrics JSON (DESIGN.md contract) with 95% bootstrap CIs on the headline metrics.

    classes: None scores the model's own label space (the test split of its own data set);
    otherwise the test set's classes (e.g. 0-6 for FER-2013), and only the classes both sides
    have are scored, as shared_classes explains; what was done is listed under "notes".
    """
    notes = list(notes)
    model_classes = proba_classes(predictions)
    has_expression = bool(model_classes) or "expression_pred" in predictions
    shared = None
    if classes is not None and has_expression:
        shared, more = shared_classes([EXPRESSIONS[c] for c in model_classes] or EXPRESSIONS,
                                      classes)
        notes += more
    elif model_classes and "expression" in predictions:
        lacking = sorted(set(predictions["expression"][predictions["expression"] >= 0])
                         - set(model_classes))
        if lacking:
            notes.append(f"the model does not predict {_names(lacking)}: those test images "
                         "are left out of the expression metrics")
    # Probabilities with a gap (a class the model lacks) would otherwise let argmax pick it.
    restrict = shared if shared is not None else (
        model_classes if model_classes and len(model_classes) <= max(model_classes) else None)
    result = metrics.evaluate_predictions(_metric_inputs(predictions, shared), model_name,
                                          data_classes=restrict, n_boot=n_boot, seed=seed)
    result["dataset"] = dataset
    result["notes"] = notes
    expression = result.get("expression") or {}
    scored = (restrict_table(predictions, shared) if shared else predictions)
    result["health"] = health.prediction_health(
        scored, expression.get("label_ids"), expression.get("f1_macro"))
    if n_boot > 0:
        result["ci"] = {"level": 0.95, "n_boot": int(n_boot), "seed": int(seed),
                        "method": "percentile bootstrap over images"}
    inference = predictions.attrs.get("inference")
    if inference:
        result["inference"] = dict(inference)
    return metrics.json_ready(result)


TTA_HEADLINE = {"expression": ("accuracy", "f1_macro"), "valence": ("ccc",),
                "arousal": ("ccc",), "landmarks": ("nme",)}


def evaluate_model(model: Any, model_name: str, table: pd.DataFrame, *, tta: str = "none",
                   batch_size: int = 64, n_boot: int = 1000, seed: int = 0,
                   classes: Iterable[Any] | None = None, dataset: str | None = None,
                   notes: Sequence[str] = ()) -> tuple[dict, pd.DataFrame]:
    """Metrics JSON and predictions of a model on a table, with test-time augmentation `tta`.

    With tta other than "none" the headline metrics without it are kept too, under
    `without_tta`, so the report shows what the augmentation bought.
    """
    tta = check_tta(tta)
    predictions = predict_table(model, table, batch_size=batch_size, tta=tta)
    scores = evaluate(model_name, predictions, n_boot=n_boot, seed=seed, classes=classes,
                      dataset=dataset, notes=notes)
    scores["tta"] = tta
    if tta != "none":
        plain = evaluate(model_name, predict_table(model, table, batch_size=batch_size,
                                                   progress=False),
                         n_boot=0, classes=classes, dataset=dataset)
        scores["without_tta"] = {head: {k: (plain.get(head) or {}).get(k) for k in keys}
                                 for head, keys in TTA_HEADLINE.items() if plain.get(head)}
    return metrics.json_ready(scores), predictions


HEADLINE_ROWS = {"accuracy": ("expression", "accuracy"), "macro F1": ("expression", "f1_macro"),
                 "kappa": ("expression", "kappa"), "valence CCC": ("valence", "ccc"),
                 "arousal CCC": ("arousal", "ccc"), "landmark NME": ("landmarks", "nme")}


def headline_table(scores: Mapping[str, Any]) -> pd.DataFrame:
    """The metrics a reader looks at first, with CIs (and without TTA when it was used)."""
    without = scores.get("without_tta") or {}
    rows = []
    for name, (head, key) in HEADLINE_ROWS.items():
        block = scores.get(head) or {}
        row = {"metric": name, "value": block.get(key), "95% CI": block.get(f"{key}_ci")}
        if without:
            row["without TTA"] = (without.get(head) or {}).get(key)
        rows.append(row)
    return pd.DataFrame(rows)


def write_metrics(d: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a metrics dict as strict JSON (NaN -> null) atomically, so a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics.json_ready(d), indent=2, allow_nan=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def dataset_name(source_path: str | os.PathLike) -> str:
    """Short file-name-safe name of a test set, for metrics/<model>.<name>.json (no dots)."""
    name = Path(str(source_path).rstrip("/\\")).name.lower()
    for suffix in (".tar.gz", ".tgz", ".zip", ".csv", ".lst", ".txt", ".parquet", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    name = re.sub(r"[^a-z0-9_-]+", "_", name).strip("_-")[:40].strip("_-")
    return name or "external"


def confident_mistakes(predictions: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """The wrong predictions the model was surest of: where to look for label noise and biases."""
    if not {"expression", "expression_pred", "confidence"} <= set(predictions.columns):
        return predictions.iloc[0:0]
    wrong = predictions[(predictions["expression"] >= 0)
                        & (predictions["expression"] != predictions["expression_pred"])]
    return wrong.sort_values("confidence", ascending=False, kind="stable").head(n)


# --------------------------------------------------------------------------- comparison

def _read_json(path: Path) -> dict:
    """A JSON object from a file, or a DataError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


def _number(value: Any) -> float:
    """A float for a table cell; NaN for null or anything non-numeric."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def flatten_metrics(d: Mapping[str, Any]) -> dict[str, Any]:
    """One table row from a metrics JSON: <head>_<metric>, CIs as <..>_ci_low/_ci_high."""
    row: dict[str, Any] = {"model": d.get("model"), "dataset": d.get("dataset"),
                           "n": _number(d.get("n"))}
    for head in metrics.HEADS:
        block = d.get(head)
        if not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            if key.endswith("_ci") and isinstance(value, (list, tuple)) and len(value) == 2:
                row[f"{head}_{key}_low"] = _number(value[0])
                row[f"{head}_{key}_high"] = _number(value[1])
            elif key not in _NOT_METRICS and (value is None or (
                    isinstance(value, (int, float)) and not isinstance(value, bool))):
                row[f"{head}_{key}"] = _number(value)
    inference = d.get("inference")
    if isinstance(inference, Mapping):
        row["inference_images_per_s"] = _number(inference.get("images_per_s"))
    row["tta"] = d.get("tta") or "none"
    without = d.get("without_tta")
    for head, block in (without.items() if isinstance(without, Mapping) else ()):
        for key, value in (block.items() if isinstance(block, Mapping) else ()):
            row[f"no_tta_{head}_{key}"] = _number(value)
    state = d.get("health")
    heads = state.get("collapsed_heads") if isinstance(state, Mapping) else None
    row["collapsed_heads"] = ",".join(str(h) for h in heads) if isinstance(heads, list) else ""
    return row


def _card_facts(card: Mapping[str, Any]) -> dict[str, float]:
    """Parameters, training time and speed from a model card, whatever names it uses."""
    flat = dict(card)
    for nested in ("training", "model", "timing", "stats"):
        if isinstance(card.get(nested), Mapping):
            flat = {**card[nested], **flat}
    facts = {}
    for fact, keys in CARD_KEYS.items():
        # The first of the names that holds a number ("parameters" may be the settings dict).
        values = (_number(flat.get(k)) for k in keys)
        facts[fact] = next((v for v in values if not math.isnan(v)), math.nan)
    return facts


def comparison_table(run_dir: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One row per model: metrics (+ CIs) from <run>/metrics, size and speed from <run>/models.

    dataset None reads the test-split files <model>.json; a name reads <model>.<name>.json.
    """
    run_dir = Path(run_dir)
    rows = []
    for path in sorted((run_dir / "metrics").glob("*.json")):
        model, _, name = path.stem.partition(".")
        if (name or None) != dataset:
            continue
        d = _read_json(path)
        row = flatten_metrics(d)
        row["model"] = d.get("model") or model
        row["dataset"] = name or None
        card = run_dir / "models" / f"{model}.json"
        row.update(_card_facts(_read_json(card)) if card.is_file()
                   else {k: math.nan for k in CARD_KEYS})
        state = d.get("health")
        row["health"] = (health_note(run_dir, row["model"], state)
                         if isinstance(state, Mapping) and state.get("collapsed") else "")
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["model", "dataset", "n"])
    first = ["model", "dataset", "n"]
    return table[first + [c for c in table.columns if c not in first]].reset_index(drop=True)


def health_note(run_dir: str | os.PathLike, model: str, state: Any) -> str:
    """Whether a model learned; if it collapsed, what it predicts and why (from its history)."""
    if not isinstance(state, Mapping):
        return health.health_text(model, None)
    history_path = Path(run_dir) / "history" / f"{model}.csv"
    history = None
    if state.get("collapsed") and history_path.is_file():
        from helpers.training import read_history  # keras: only when a model collapsed

        history = read_history(history_path)
    return health.health_text(model, state, history)


def validation_health(model: Any, table: pd.DataFrame, batch_size: int = 64) -> dict[str, Any]:
    """helpers.health on a model's predictions for a table (notebook 04: the validation split)."""
    if not len(table):
        return {}
    return health.prediction_health(predict_table(model, table, batch_size=batch_size,
                                                  progress=False))


def collapsed(table: pd.DataFrame, task: str) -> pd.Series:
    """Rows whose `task` head collapsed (helpers.health): never ranked for that task."""
    if "collapsed_heads" not in table:
        return pd.Series(False, index=table.index)
    return table["collapsed_heads"].fillna("").astype(str).str.split(",").map(
        lambda heads: task in heads)


def _headline(task: str) -> tuple[str, bool, str]:
    """Column, lower-is-better and metric name of a task's headline metric."""
    metric, lower = HEADLINE[task]
    return f"{task}_{metric}", lower, metric


def best_models(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Best model per task by its headline metric (tasks nobody scored are left out)."""
    best = {}
    for task in HEADLINE:
        column, lower, metric = _headline(task)
        if column not in table:
            continue
        scores = pd.to_numeric(table[column], errors="coerce").where(~collapsed(table, task))
        if scores.isna().all():
            continue
        row = table.loc[scores.idxmin() if lower else scores.idxmax()]
        ci = [row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")]
        best[task] = {"model": row["model"], "metric": metric, "value": float(row[column]),
                      "lower_is_better": lower,
                      "ci": [float(v) for v in ci] if all(pd.notna(v) for v in ci) else None}
    return best


def model_to_use(table: pd.DataFrame) -> str:
    """The model to predict with: best expression macro-F1 among those that learned, else the
    best of those that did not (a tiny run may have only collapsed models), else the first."""
    if table.empty:
        raise ConfigError("no evaluated model in this run: run notebook 05 first")
    best = best_models(table).get("expression")
    if best:
        return str(best["model"])
    column = "expression_f1_macro"
    if column in table and pd.to_numeric(table[column], errors="coerce").notna().any():
        return str(table.loc[pd.to_numeric(table[column], errors="coerce").idxmax(), "model"])
    return str(table["model"].iloc[0])


def _fmt(value: float) -> str:
    """Three significant decimals for metrics in the summary."""
    return f"{value:.3f}"


def summary_text(table: pd.DataFrame) -> str:
    """A few sentences naming the winners, whether their lead is beyond the CI, size and speed."""
    if table.empty:
        return "No model metrics found."
    n = table["n"].dropna()
    lines = [f"{len(table)} model(s) compared"
             + (f" on {int(n.max()):,} test images." if len(n) else ".")]
    for task, info in best_models(table).items():
        column, lower, metric = _headline(task)
        label = HEADLINE_LABELS.get(metric, metric)
        text = f"{task.capitalize()}: {info['model']} is best, {label} {_fmt(info['value'])}"
        if info["ci"]:
            text += f" (95% CI {_fmt(info['ci'][0])}-{_fmt(info['ci'][1])})"
        others = table[(table["model"] != info["model"]) & ~collapsed(table, task)
                       ].dropna(subset=[column])
        if not others.empty:
            runner = others.loc[others[column].idxmin() if lower else others[column].idxmax()]
            text += f"; next {runner['model']} {_fmt(runner[column])}"
            low, high = runner.get(f"{column}_ci_low"), runner.get(f"{column}_ci_high")
            if info["ci"] and pd.notna(low) and pd.notna(high):
                overlap = info["ci"][0] <= high and low <= info["ci"][1]
                text += (", the CIs overlap, so the lead may be noise" if overlap
                         else ", a lead beyond both CIs")
        lines.append(text + (" (lower is better)." if lower else "."))
    if "health" in table:
        lines += [note for note in table["health"].fillna("") if note]
    for column, what, pick, unit in (
            ("inference_images_per_s", "Fastest at inference", "max", " images/s"),
            ("params", "Smallest", "min", " parameters")):
        if column in table and table[column].notna().any():
            row = table.loc[getattr(table[column], f"idx{pick}")()]
            lines.append(f"{what}: {row['model']} ({row[column]:,.0f}{unit}).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- leaderboard

@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside `path` (POSIX); elsewhere the rename alone protects."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; writes stay atomic, concurrent appends may race
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_leaderboard(run_dir: str | os.PathLike, table: pd.DataFrame, profile: str,
                       data_hash: str, path: str | os.PathLike = REPORTS_DIR / "leaderboard.csv",
                       ) -> pd.DataFrame:
    """Add one row per model to a CSV kept across runs, so experiments can be compared later.

    The file is rewritten whole to a temporary file and renamed over the old one, under a lock,
    so a crash or a concurrent run never leaves it half written. Returns the rows added.
    """
    path = Path(path)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = pd.DataFrame({
        "timestamp": stamp, "run": str(run_dir), "profile": profile, "data_hash": data_hash,
        "model": table["model"].astype(str).to_numpy() if "model" in table else [],
        "dataset": (table["dataset"].to_numpy() if "dataset" in table
                    else [None] * len(table)),
        **{c: (table[c].to_numpy() if c in table else [math.nan] * len(table))
           for c in LEADERBOARD_METRICS},
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if path.is_file() and path.stat().st_size > 0:
            try:  # as text, so earlier rows are written back exactly as they were
                old = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise DataError(path, f"leaderboard is not a readable CSV ({exc})") from exc
            merged = pd.concat([old, rows.astype(object)], ignore_index=True)
        else:
            merged = rows
        handle, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
                merged.to_csv(out, index=False)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return rows


# --------------------------------------------------------------------------- HTML report

def _external_images(html: str) -> list[str]:
    """<img> sources that are not embedded data: URIs (they would break offline)."""
    sources = re.findall(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']*)[\"']", html, flags=re.I)
    return [s for s in sources if not s.startswith("data:")]


def export_report(executed_notebook: str | os.PathLike, out_html: str | os.PathLike,
                  title: str | None = None) -> Path:
    """One self-contained HTML file of an executed notebook: outputs only, figures embedded.

    Code and prompts are hidden; PNG outputs are base64 data URIs already and images that
    markdown cells link to are embedded too (embed_images). A DataError lists any image that
    still points outside the file. nbconvert's CDN scripts (MathJax, require.js) are removed,
    so opening the file fetches nothing.
    """
    import nbformat
    from nbconvert import HTMLExporter

    src = Path(executed_notebook)
    if not src.is_file():
        raise DataError(src, "executed notebook not found")
    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for bad files
        raise DataError(src, f"not a readable notebook ({exc})") from exc
    title = title or src.stem.replace("_", " ")
    nb.metadata["title"] = title
    for cell in nb.cells:  # library chatter on stderr (TensorFlow's logs) is not the report
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.get("name") == "stderr")]
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": title, "path": str(src.parent.resolve())}})
    # The report has no maths or widgets: drop the CDN scripts so nothing is fetched offline.
    body = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
    external = _external_images(body)
    if external:
        raise DataError(src, f"report would link {len(external)} image(s) outside the file, "
                             f"e.g. {external[:3]}; embed them in the notebook instead")
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out


def evaluate_external(model: Any, model_name: str, source: str | os.PathLike, metrics_dir: str | os.PathLike,
                      *, n_boot: int = 1000, seed: int = 0, batch_size: int = 64,
                      reader: str | None = None, tta: str = "none") -> tuple[dict, pd.DataFrame]:
    """Cross-dataset check: score a trained model on another source, in the shared label space.

    Writes metrics_dir/<model>.<dataset>.json; classes only one side has are handled and
    explained in the JSON's notes (see shared_classes).
    """
    from helpers.datasets import read_source
    from helpers.models import model_metadata

    external = read_source(source, reader=reader).records
    name = dataset_name(source)
    classes, notes = shared_classes(model_metadata(model)["labels"], external["expression"])
    scores, preds = evaluate_model(model, model_name, external, tta=tta, batch_size=batch_size,
                                   n_boot=n_boot, seed=seed, classes=classes, dataset=name,
                                   notes=notes)
    write_metrics(scores, Path(metrics_dir) / f"{model_name}.{name}.json")
    return scores, preds


def load_metrics(run_dir: str | os.PathLike, dataset: str | None = None) -> dict[str, dict]:
    """Metrics JSONs of a run by model: the test split (dataset None) or one external set."""
    found = {}
    for path in sorted((Path(run_dir) / "metrics").glob("*.json")):
        model, _, name = path.stem.partition(".")
        if (name or None) == dataset:
            found[model] = _read_json(path)
    return found


def external_datasets(run_dir: str | os.PathLike) -> list[str]:
    """Names of the external test sets a run was evaluated on (metrics/<model>.<name>.json)."""
    names = {p.stem.partition(".")[2] for p in (Path(run_dir) / "metrics").glob("*.*.json")}
    return sorted(n for n in names if n)


def confusion_matrices(run_dir: str | os.PathLike, dataset: str | None = None) -> dict[str, tuple]:
    """(matrix, labels) per model, for plots.plot_confusion_grid."""
    return {m: (d["expression"]["confusion_matrix"], d["expression"]["labels"])
            for m, d in load_metrics(run_dir, dataset).items() if d.get("expression")}


# --------------------------------------------------------------------------- recorded results

RECORDED_METRICS = ("expression_accuracy", "expression_f1_macro", "valence_ccc", "arousal_ccc",
                    "landmarks_nme")
RECORDED_TOLERANCE = 0.15  # absolute; the smoke test split is small (one image = 0.03)


def record_results(run_dir: str | os.PathLike, path: str | os.PathLike,
                   tolerance: float = RECORDED_TOLERANCE) -> dict[str, Any]:
    """Keep a run's headline metrics per model, so a later run can show it reproduces them."""
    table = comparison_table(run_dir)
    models = {str(row["model"]): {k: float(row[k]) for k in RECORDED_METRICS
                                  if k in row and pd.notna(row[k])}
              for _, row in table.iterrows()}
    recorded = {"tolerance": float(tolerance), "models": models}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return recorded


def compare_recorded(scores: Mapping[str, Any], path: str | os.PathLike | None) -> str:
    """One line: does this model's metrics JSON match the recorded results within tolerance?

    The line names metrics, never values, when everything matches (so a notebook check that
    prints it holds for every model); a mismatch names the value, the record and the tolerance.
    """
    if not path:
        return "no recorded results to compare with (set `recorded` to a file from record_results)"
    recorded = _read_json(Path(path))
    model = str(scores.get("model"))
    expected = (recorded.get("models") or {}).get(model)
    tolerance = _number(recorded.get("tolerance", RECORDED_TOLERANCE))
    if not isinstance(expected, Mapping) or not expected:
        return f"no recorded results for {model} in {Path(path).name}"
    row = flatten_metrics(scores)
    off = [f"{key} {_number(row.get(key)):.3f} (recorded {float(value):.3f} ± {tolerance:.2f})"
           for key, value in sorted(expected.items())
           if not abs(_number(row.get(key)) - float(value)) <= tolerance]
    if off:
        return "differs from the recorded results: " + "; ".join(off)
    return "matches the recorded results within tolerance: " + ", ".join(sorted(expected))


def check_recorded(scores: Mapping[str, Any], path: str | os.PathLike | None) -> str:
    """compare_recorded's line, or a DataError naming the record when the metrics differ: a
    notebook run with `recorded` set (as the regression checks do) stops there."""
    line = compare_recorded(scores, path)
    if line.startswith("differs"):
        raise DataError(path, line)
    return line
