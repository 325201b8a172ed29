"""What deploying a model costs: TFLite against Keras on the test split, in accuracy, agreement,
latency and file size."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core import progress
from helpers.core.errors import ConfigError
from helpers.core.preprocess import model_inputs, to_model_input
from helpers.core.run_folder import read_run
from helpers.inference.export import export_tflite, saved_model
from helpers.inference.runtime import Backend, TFLiteModel, open_model
from helpers.inference.speed import MEASURE, batch_throughput, padded, throughput


def _stack_inputs(images: Any, size: int, channels: int) -> np.ndarray:
    """A model-ready float batch from model-sized arrays or any images (resized like crops)."""
    if (
        isinstance(images, np.ndarray)
        and images.ndim == 4
        and images.shape[1:] == (size, size, channels)
    ):
        return images.astype(np.float32)
    return np.stack([to_model_input(np.asarray(im), size, channels) for im in images])


def _chunks(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive batches of at most batch_size rows."""
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def _run_backend(
    model: Backend, x: np.ndarray, *, batch_size: int = 64, n_single: int = 16
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One backend's outputs over x and its latency: run once, so a comparison reuses both.

    Batched latency is helpers.inference.speed's measure, the one the metrics JSON's images/s
    and the report's fastest model use (full batches of the first images, the median of a
    few passes); one at a time, the same over the first n_single images."""
    parts = [model(padded(chunk, batch_size)) for chunk in _chunks(x, batch_size)]
    sizes = [len(chunk) for chunk in _chunks(x, batch_size)]
    outputs = {
        h: np.concatenate([p[h][:k] for p, k in zip(parts, sizes, strict=True)]) for h in parts[0]
    }
    batched = batch_throughput(model, x, batch_size)["images_per_s"]
    singles = [x[i : i + 1] for i in range(min(n_single, len(x)))]
    single = throughput(model, singles)["images_per_s"]
    latency = {
        "batched_ms": 1000.0 / batched,
        "single_ms": 1000.0 / single,
        "images_per_s": batched,
        "measure": MEASURE,
    }
    return outputs, latency


def compare_backends(
    keras_model: Any, tflite_model: Any, images: Any, *, batch_size: int = 64, n_single: int = 16
) -> dict[str, Any]:
    """How far a TFLite model strays from its Keras source, and how fast each runs.

    Per head: max and mean absolute difference (probabilities for expression, plus argmax
    agreement, also over the `n_decided` images whose Keras top-2 margin exceeds two int8
    output steps, since a near-uniform softmax makes argmax a coin toss). Latency in ms per
    image batched (batch_size) and one at a time (the first n_single images), and images/s
    batched; timings cover only the model calls (helpers.inference.speed's measure).
    """
    return _compare(
        open_model(keras_model, "keras"),
        open_model(tflite_model, "tflite"),
        images,
        batch_size=batch_size,
        n_single=n_single,
    )[0]


def _compare(
    reference_model: Backend,
    candidate: Backend,
    images: Any,
    *,
    batch_size: int = 64,
    n_single: int = 16,
    reference: tuple[dict[str, np.ndarray], dict[str, float]] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """compare_backends' report and the candidate's outputs; `reference`, the Keras model's
    _run_backend over the same images, spares running it again for each file compared."""
    meta = reference_model.metadata
    x = _stack_inputs(images, meta["image_size"], meta["channels"])
    if not len(x):
        raise ConfigError("compare_backends needs at least one image")
    result: dict[str, Any] = {
        "n": len(x),
        "batch_size": batch_size,
        "n_single": int(min(n_single, len(x))),
        "quantize": getattr(candidate, "quantize", None),
        "tflite_bytes": getattr(candidate, "size_bytes", None),
    }
    if reference is None:
        reference = _run_backend(reference_model, x, batch_size=batch_size, n_single=n_single)
    outputs = {"keras": reference[0]}
    outputs["tflite"], tflite_latency = _run_backend(
        candidate, x, batch_size=batch_size, n_single=n_single
    )
    latency = {"keras": reference[1], "tflite": tflite_latency}
    for head in meta["heads"]:
        a, b = outputs["keras"][head].astype(np.float64), outputs["tflite"][head].astype(np.float64)
        diff = np.abs(a - b)
        entry: dict[str, Any] = {
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
        }
        if head == "expression":
            same = a.argmax(1) == b.argmax(1)
            entry["argmax_agreement"] = float(np.mean(same))
            # int8 outputs move in steps of `scale`: closer calls are ties, not disagreements
            step = getattr(candidate, "outputs", {}).get(head, {}).get("scale", 0.0) or 0.0
            top2 = np.sort(a, axis=1)[:, -2:]
            decided = (top2[:, 1] - top2[:, 0]) > 2 * step
            entry["n_decided"] = int(decided.sum())
            entry["decided_argmax_agreement"] = (
                float(np.mean(same[decided])) if decided.any() else None
            )
        result[head] = entry
    result["latency"] = latency
    return result, outputs["tflite"]


def _accuracy(outputs: dict[str, np.ndarray], y: np.ndarray, labelled: np.ndarray) -> float:
    """Expression argmax against the labels, over the labelled images."""
    return float(np.mean(outputs["expression"].argmax(1)[labelled] == y[labelled]))


def deployment_check(
    model: Any,
    model_name: str,
    test_table: Any,
    calibration_table: Any,
    out_dir: str | os.PathLike,
    *,
    n_calibration: int = 100,
    max_images: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Export float and int8 TFLite files and measure what each costs on the test split.

    Accuracy (expression argmax against the labels) for Keras and both TFLite files on up to
    max_images test images, the change against Keras, agreement, latency and file size.
    Writes out_dir/<model>.float.tflite, <model>.int8.tflite (with sidecars) and <model>.json.
    """
    import pandas as pd

    from helpers.models.factory import model_metadata

    meta = model_metadata(model)
    size, channels = meta["image_size"], meta["channels"]
    rng = np.random.default_rng(seed)
    test = test_table.iloc[np.sort(rng.permutation(len(test_table))[:max_images])]
    calib = calibration_table.iloc[np.sort(rng.permutation(len(calibration_table))[:n_calibration])]
    x = model_inputs(test["image"].tolist(), size, channels)
    y = pd.to_numeric(test["expression"], errors="coerce").to_numpy()
    labelled = np.isfinite(y) & (y >= 0)
    out = Path(out_dir)
    result: dict[str, Any] = {"model": model_name, "n": len(x), "n_calibration": len(calib)}
    keras_accuracy = None
    progress.line(export_line(model_name, model.count_params(), len(calib), len(x)))
    calibration_images = model_inputs(calib["image"].tolist(), size, channels)
    with saved_model(model) as saved:
        paths = {
            quantize: export_tflite(
                model,
                out / f"{model_name}.{quantize or 'float'}.tflite",
                quantize=quantize,
                calibration_images=calibration_images,
                saved=saved,
            )
            for quantize in (None, "int8")
        }
    keras = open_model(model, "keras")
    reference = _run_backend(keras, x)
    scored = "expression" in meta["heads"] and labelled.any()
    if scored:
        keras_accuracy = _accuracy(reference[0], y, labelled)
    result["keras"] = {"accuracy": keras_accuracy, "latency": reference[1]}
    for quantize, path in paths.items():
        tfl = TFLiteModel(path)
        compared, tfl_outputs = _compare(keras, tfl, x, reference=reference)
        entry: dict[str, Any] = {
            "file": path.name,
            "size_bytes": path.stat().st_size,
            "latency": compared["latency"]["tflite"],
        }
        if scored:
            entry["accuracy"] = _accuracy(tfl_outputs, y, labelled)
            entry["accuracy_change"] = entry["accuracy"] - keras_accuracy
            entry["argmax_agreement"] = compared["expression"]["argmax_agreement"]
        result[f"tflite_{quantize or 'float'}"] = entry
    (out / f"{model_name}.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def export_line(model_name: str, parameters: int, n_calibration: int, n_test: int) -> str:
    """What the TFLite export starts, before its minutes of silence for a large backbone, and
    how to turn it off."""
    return (
        f"{model_name}: exporting TFLite (float, and int8 calibrated on {n_calibration:,} "
        f"training faces; {parameters / 1e6:.1f} M parameters: minutes for a large backbone), "
        f"then timing each on {n_test:,} test faces; export_tflite=False turns it off "
        "(./run_all.sh: --set export_tflite=False)"
    )


def deployment_table(run_dir: str | os.PathLike) -> Any:
    """One row per model from <run>/export/*.json, for the report; latencies are ms per image,
    batched and one at a time for Keras and each TFLite file alike, and keras_images_per_s the
    batched figure as images/s, all as helpers.inference.speed measures the report's inference
    speed. A folder that does not exist, holds no run or is a run's subfolder is a ConfigError:
    a mistyped path would otherwise read as a run without exports."""
    import pandas as pd

    run = read_run(run_dir, "deployment_table")
    rows = []
    for path in sorted(run.export_dir.glob("*.json")):
        if path.name.endswith(".tflite.json"):
            continue  # sidecars
        d = json.loads(path.read_text())
        row = {
            "model": d["model"],
            "n": d.get("n"),  # the test images scored here: a sample, not the whole split
            "keras_accuracy": d["keras"]["accuracy"],
            "keras_ms_batched": d["keras"]["latency"]["batched_ms"],
            # the measure of the metrics JSON's images/s (helpers.inference.speed), one view
            "keras_images_per_s": d["keras"]["latency"].get("images_per_s"),
            "keras_ms_single": d["keras"]["latency"]["single_ms"],
        }
        for kind in ("float", "int8"):
            e = d.get(f"tflite_{kind}", {})
            row[f"{kind}_accuracy_change"] = e.get("accuracy_change")
            # both latencies, as Keras's: batched beside batched, one at a time beside one
            row[f"{kind}_ms_batched"] = e.get("latency", {}).get("batched_ms")
            row[f"{kind}_ms_single"] = e.get("latency", {}).get("single_ms")
            row[f"{kind}_MB"] = e.get("size_bytes", 0) / 1e6
        rows.append(row)
    return pd.DataFrame(rows)
