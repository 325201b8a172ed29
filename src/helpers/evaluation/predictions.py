"""Runs a model over a records table once and keeps what it said, one row per image, as a
parquet file, so scoring, galleries and cross-dataset checks (notebooks 05-06) all read the
same predictions instead of predicting again."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.core.jsonio import json_ready
from helpers.core.labels import EXPRESSIONS, expression_index
from helpers.core.landmarks import N_POINTS, from_model_output
from helpers.core.preprocess import decode_changed, decode_for_model
from helpers.core.progress import bar as progress_bar
from helpers.core.records import (
    landmarks_from_arrow,
    landmarks_to_arrow,
    read_parquet,
    write_parquet,
)
from helpers.evaluation.metrics import restrict_predictions
from helpers.inference.speed import MEASURE, batch_throughput, padded
from helpers.inference.tta import check_tta
from helpers.inference.tta import predict as tta_predict

PROBA_PREFIX = "p_"
LANDMARK_COLUMNS = ("landmarks", "landmarks_pred")
REGRESSION_HEADS = ("valence", "arousal")
_PARQUET_ATTRS_KEY = b"helpers.predictions.attrs"


def proba_column(name: str) -> str:
    """Column holding a class's probability, e.g. p_Happy."""
    return f"{PROBA_PREFIX}{name}"


def proba_classes(predictions: pd.DataFrame) -> list[int]:
    """AffectNet indices of the classes whose probabilities the table holds, in column order."""
    found = []
    for column in predictions.columns:
        if str(column).startswith(PROBA_PREFIX):
            name = str(column)[len(PROBA_PREFIX) :]
            if name in EXPRESSIONS:
                found.append(EXPRESSIONS.index(name))
    return found


def _batches(
    uris: Sequence[str],
    image_size: int,
    channels: int,
    batch_size: int,
    workers: int,
    transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images float 0-255, stored sizes as (width, height) rows) per batch, in table order.

    Decoding and resizing are helpers.core.preprocess's, so the model sees what it saw in training;
    threads overlap it (OpenCV and Pillow release the GIL). transform(image, row), where given,
    changes each stored image at its own resolution before it is fitted to the model's input
    (helpers.evaluation.corruptions: the photo degraded, the same for every model).
    """

    def load(row: int) -> tuple[np.ndarray, tuple[int, int]]:
        if transform is None:
            return decode_for_model(uris[row], image_size, channels)
        return decode_changed(uris[row], image_size, channels, lambda image: transform(image, row))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(uris), batch_size):
            loaded = list(pool.map(load, range(start, min(start + batch_size, len(uris)))))
            yield (
                np.stack([image for image, _ in loaded]).astype(np.float32),
                np.array([(w, h) for _, (h, w) in loaded], dtype=np.float64),
            )


def predict_table(
    model: Any,
    table: pd.DataFrame,
    *,
    batch_size: int = 64,
    progress: bool = True,
    workers: int = 4,
    tta: str = "none",
    transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
    timed: bool = False,
) -> pd.DataFrame:
    """Every row's predictions next to its truth, batched, one row per image:

      id, image, source          copied from the records table (image is needed by the galleries)
      width, height              size of the STORED image, read from the decoded image; landmark
                                 predictions are converted back to its pixels with them
      expression                 truth, int 0-7 in AffectNet order (-1 where missing)
      expression_pred            argmax of the model's softmax, in AffectNet order
      confidence                 that class's probability (restrict_table confines both to the
                                 classes of a cross-dataset test set, as its metrics do)
      p_<Class>                  the softmax, one column per class the model has (p_Neutral, ...),
                                 uncalibrated (the predictor divides by the fitted temperature)
      valence, arousal           truth (NaN where missing); `<head>_pred` the model's output
      landmarks                  truth, (68, 2) float32 pixels of the stored image, or None
      landmarks_pred             prediction in the same pixels

    A `<head>_pred` column exists only when the model has that head, so a missing head scores
    null; column names follow helpers.evaluation.scoring.evaluate_predictions (`h`, `h_pred`).
    What the pass cost is kept in `attrs["inference"]` (and in the parquet file); with timed,
    also the speed in images/s, measured as helpers.inference.speed measures every speed (the
    median of a few passes over full batches of the first images, with the same `tta`).

    Image size, channels, heads and class names come from helpers.models.factory.model_metadata, so
    any model the factory built works; `workers` threads decode the images. tta: "none",
    "flip" (outputs averaged with the mirror image's) or "tencrop" (ten crops and their mirrors,
    helpers.inference.tta). transform(image, row): each stored image (uint8, H x W x channels)
    changed at its own resolution before it is fitted to the model's input (a corruption), None
    for the images as they are.
    """
    # keras: imported only when predicting
    from helpers.inference.runtime import KerasModel
    from helpers.models.factory import model_metadata
    from helpers.train.pipeline import check_images

    tta = check_tta(tta)
    meta = model_metadata(model)
    if len(table):
        check_images(table)  # a missing file fails now, named, not after minutes of work
    size, channels, heads = meta["image_size"], meta["channels"], meta["heads"]
    labels = list(meta["labels"] or [])
    uris = table["image"].astype(str).tolist()
    collected: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    sizes: list[np.ndarray] = []
    first: np.ndarray | None = None  # the first batch, for the timed speed
    model_seconds = 0.0

    runner = KerasModel(model)  # the call the predictor and the deployment table time too

    def call(images: np.ndarray) -> dict[str, np.ndarray]:
        return tta_predict(runner, images, tta)

    started = time.perf_counter()
    with progress_bar(
        total=len(uris), desc=f"predicting ({meta['name']})", unit="img", disable=not progress
    ) as bar:
        for images, wh in _batches(uris, size, channels, batch_size, workers, transform):
            k = len(images)
            images = padded(images, batch_size)  # one input shape, no second graph trace
            first = images if first is None else first
            t0 = time.perf_counter()
            outputs = call(images)
            model_seconds += time.perf_counter() - t0
            for head in heads:
                collected[head].append(outputs[head][:k].reshape(k, -1))
            sizes.append(wh)
            bar.update(k)
    total_seconds = time.perf_counter() - started
    wh = np.concatenate(sizes) if sizes else np.empty((0, 2))

    out = pd.DataFrame(
        {
            "id": table["id"].astype(str).to_numpy(),
            "image": uris,
            "source": (
                table["source"].astype(str).to_numpy()
                if "source" in table
                else np.full(len(table), "", dtype=object)
            ),
            "width": wh[:, 0].astype(np.int64),
            "height": wh[:, 1].astype(np.int64),
            "expression": (
                pd.to_numeric(table["expression"], errors="coerce")
                .fillna(-1)
                .astype(np.int64)
                .to_numpy()
                if "expression" in table
                else np.full(len(table), -1, dtype=np.int64)
            ),
        }
    )
    n = len(out)
    units = {"expression": len(labels) or 1, "landmarks": 2 * N_POINTS}
    stacked = {
        h: (np.concatenate(v) if v else np.empty((0, units.get(h, 1))))
        for h, v in collected.items()
    }
    if "expression" in heads:
        proba = stacked["expression"]
        names = labels or list(EXPRESSIONS[: proba.shape[1]])
        ids = [EXPRESSIONS.index(c) for c in names]
        best = proba.argmax(axis=1) if n else np.empty(0, dtype=np.int64)
        out["expression_pred"] = np.asarray(ids, dtype=np.int64)[best]
        out["confidence"] = proba.max(axis=1) if n else np.empty(0)
        for column, name in enumerate(names):
            out[proba_column(name)] = proba[:, column].astype(np.float64)
    for head in REGRESSION_HEADS:
        out[head] = (
            pd.to_numeric(table[head], errors="coerce").to_numpy(dtype=np.float64)
            if head in table
            else np.full(n, np.nan)
        )
        if head in heads:
            out[f"{head}_pred"] = stacked[head].reshape(n).astype(np.float64)
    out["landmarks"] = pd.Series(
        list(table["landmarks"]) if "landmarks" in table else [None] * n, dtype=object
    )
    if "landmarks" in heads:
        pixels = from_model_output(stacked["landmarks"], wh[:, 0], wh[:, 1], size)
        pixels = pixels.astype(np.float32)
        out["landmarks_pred"] = pd.Series(list(pixels), dtype=object)
    out.attrs["inference"] = {
        "images": n,
        "tta": tta,
        "batch_size": int(batch_size),
        "model_seconds": model_seconds,  # this pass, the first call's graph building included
        "total_seconds": total_seconds,  # decoding too
    }
    if timed and first is not None:  # the model calls alone, on full batches, repeated
        speed = batch_throughput(call, first, batch_size)
        out.attrs["inference"].update(speed, measure=MEASURE)
    return out


def save_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Parquet with landmarks as 136 float32 per row (as helpers.core.records stores them)."""
    path = Path(path)
    present = [c for c in LANDMARK_COLUMNS if c in predictions.columns]
    table = pa.Table.from_pandas(predictions.drop(columns=present), preserve_index=False)
    for column in present:
        position = list(predictions.columns).index(column)
        table = table.add_column(
            min(position, table.num_columns), column, landmarks_to_arrow(predictions[column])
        )
    attrs = json.dumps(json_ready(predictions.attrs)).encode()
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _PARQUET_ATTRS_KEY: attrs}
    )
    write_parquet(table, path, "predictions")
    return path


def load_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """Read what save_predictions wrote: (68, 2) landmark arrays and attrs restored."""
    path = Path(path)
    table = read_parquet(path, "predictions")
    landmarks = {
        c: landmarks_from_arrow(table.column(c), str(path))
        for c in LANDMARK_COLUMNS
        if c in table.column_names
    }
    positions = {c: table.column_names.index(c) for c in landmarks}
    df = table.drop_columns(list(landmarks)).to_pandas()
    for column in sorted(landmarks, key=positions.get):
        df.insert(positions[column], column, pd.Series(landmarks[column], dtype=object))
    raw = (table.schema.metadata or {}).get(_PARQUET_ATTRS_KEY)
    df.attrs = json.loads(raw) if raw else {}
    return df


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


def class_names_text(ids: Iterable[int]) -> str:
    """Class names for notes."""
    return ", ".join(EXPRESSIONS[i] for i in ids)


def shared_classes(
    model_labels: Iterable[Any], data_expressions: Iterable[Any]
) -> tuple[list[int], list[str]]:
    """The classes both the model and a test set have (AffectNet indices), and notes on the rest.

    model_labels: the model's classes (names as in model_metadata()["labels"], or indices);
    data_expressions: the test set's classes, or its whole expression column (indices or names;
    missing values ignored). The choice made for the rest, and written in the notes: a class the
    test set lacks (Contempt in a 7-class FER-2013 set) is taken out of the model's choice, so
    predictions are the argmax over the shared classes with probabilities renormalised over
    them (helpers.evaluation.metrics.restrict_predictions); a class the model lacks cannot be
    predicted, so its images are left out of the expression metrics.
    """
    model = {c for c in map(_class_id, model_labels) if c is not None}
    values = pd.Series(list(data_expressions), dtype=object).dropna().unique()
    data = {c for c in map(_class_id, values) if c is not None}
    shared = sorted(model & data)
    notes = []
    if not shared:
        notes.append(
            "the model and the test set share no expression class: expression is not scored"
        )
        return shared, notes
    if model - data:
        notes.append(
            f"the test set has no {class_names_text(sorted(model - data))}: "
            f"predictions are the argmax over the {len(shared)} shared classes, "
            "probabilities renormalised over them"
        )
    if data - model:
        notes.append(
            f"the model does not predict {class_names_text(sorted(data - model))}: "
            "those test images are left out of the expression metrics"
        )
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
    pred, proba = restrict_predictions(
        out[columns].to_numpy(np.float64), [model_classes.index(c) for c in keep]
    )
    out[columns] = proba
    out["expression_pred"] = np.asarray(model_classes, dtype=np.int64)[pred]
    out["confidence"] = proba.max(axis=1)
    return out


def confident_mistakes(predictions: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """The wrong predictions the model was surest of: where to look for label noise and biases."""
    if not {"expression", "expression_pred", "confidence"} <= set(predictions.columns):
        return predictions.iloc[0:0]
    wrong = predictions[
        (predictions["expression"] >= 0)
        & (predictions["expression"] != predictions["expression_pred"])
    ]
    return wrong.sort_values("confidence", ascending=False, kind="stable").head(n)
