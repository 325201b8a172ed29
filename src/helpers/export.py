"""TFLite export (float, or int8 calibrated on training images) and a runner with Keras's outputs.

TFLite orders a multi-output model's outputs its own way, so every export writes a sidecar
`<file>.tflite.json` next to it: output names, shapes, tensor indices and quantisation, plus
helpers.models.model_metadata, which TFLiteModel (and so the predictor) needs to run it.

    path = export_tflite("run/models/custom_cnn.keras", "custom_cnn.int8.tflite",
                         quantize="int8", calibration_images=train_images)
    model = TFLiteModel(path)          # model(batch) -> {"expression": ..., "valence": ...}
    compare_backends("run/models/custom_cnn.keras", model, test_images)
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from helpers.errors import ConfigError, DataError
from helpers.images import read_image
from helpers.metrics import HEADS
from helpers.predict import Backend, open_model, to_model_input

QUANTIZE = (None, "int8")
SIGNATURE = "serving_default"
SIDECAR_SUFFIX = ".json"  # appended: model.tflite -> model.tflite.json (no clash with cards)


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the output names and metadata of a .tflite file live."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _one_line(error: BaseException) -> str:
    """Converter and interpreter errors span lines; messages stay one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- calibration

def _calibration_inputs(images: Any, n: int, size: int, channels: int) -> list[np.ndarray]:
    """Up to n model inputs: evenly spaced over an array (class-sorted arrays stay balanced),
    the first n of an iterator. Items may be arrays or image paths / zip URIs."""
    if isinstance(images, np.ndarray) and images.ndim >= 3 and len(images):
        picked: Iterable[Any] = images[np.unique(np.linspace(0, len(images) - 1, n).astype(int))]
    else:
        picked = islice(iter(images), n)
    prepared = []
    for item in picked:
        if isinstance(item, (str, os.PathLike)):
            item = read_image(os.fspath(item), mode="rgb")
        prepared.append(to_model_input(np.asarray(item), size, channels))
    if not prepared:
        raise ConfigError("calibration_images is empty: int8 needs training images to calibrate")
    return prepared


# --------------------------------------------------------------------------- export

def _float32_config(value: Any) -> Any:
    """A model config with every float16 / mixed-precision dtype replaced by float32."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and str(
                value.get("config", {}).get("name", "")).startswith("mixed_"):
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {k: ("float32" if k == "dtype" and v in ("float16", "bfloat16")
                    else _float32_config(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    return value


def _float32_model(model: Any) -> Any:
    """The TFLite builtins have no float16 kernels, so a model trained with mixed precision
    (training.py's default on a GPU) is rebuilt in float32 with the same weights."""
    config = model.get_config()
    converted = _float32_config(config)
    if converted == config:
        return model
    clone = type(model).from_config(converted)
    clone.set_weights(model.get_weights())  # mixed precision keeps its variables in float32
    return clone


def _convert(model: Any, quantize: str | None, calibration: list[np.ndarray] | None) -> bytes:
    """SavedModel route: Keras 3 exports a frozen serving signature the converter accepts."""
    import tensorflow as tf

    model = _float32_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        model.export(os.path.join(tmp, "saved"), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(os.path.join(tmp, "saved"))
        if quantize == "int8":
            # Full-integer post-training quantisation with int8 input and output (what
            # microcontrollers and NPUs need); the activation ranges come from `calibration`.
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x[None]] for x in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            return converter.convert()
        except Exception as error:  # the converter raises ConverterError, RuntimeError, ...
            raise ConfigError(f"TFLite conversion of {model.name!r} failed "
                              f"(quantize={quantize!r}): {_one_line(error)}") from error


def _tensor_info(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Shape (batch -1), dtype, index and quantisation of one interpreter tensor, JSON-ready."""
    scale, zero_point = detail["quantization"]
    return {"index": int(detail["index"]),
            "shape": [int(v) for v in detail.get("shape_signature", detail["shape"])],
            "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point)}


def _describe(content: bytes) -> dict[str, Any]:
    """Input and outputs by name, read back from the converted model's serving signature."""
    runner = _interpreter(content, num_threads=1).get_signature_runner(SIGNATURE)
    inputs = {k: _tensor_info(v) for k, v in runner.get_input_details().items()}
    outputs = {k: _tensor_info(v) for k, v in runner.get_output_details().items()}
    (name, info), = inputs.items()
    return {"input": {"name": name, **info}, "outputs": outputs}


def export_tflite(model_path_or_model: Any, out_path: str | os.PathLike, *,
                  quantize: str | None = None, calibration_images: Any = None,
                  n_calibration: int = 100) -> Path:
    """Write a .tflite file and its sidecar; int8 is calibrated on raw 0-255 training images.

    calibration_images: an array (N, H, W[, C]) or an iterable of arrays or image paths, any
    size (resized like the predictor's crops); n_calibration of them are used.
    """
    import tensorflow as tf

    from helpers.models import model_metadata
    from helpers.training import load_trained

    if quantize not in QUANTIZE:
        raise ConfigError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if not isinstance(n_calibration, int) or isinstance(n_calibration, bool) or n_calibration < 1:
        raise ConfigError(f"n_calibration must be an integer >= 1, got {n_calibration!r}")
    if quantize == "int8" and calibration_images is None:
        raise ConfigError("quantize='int8' needs calibration_images (about 100 training images, "
                          "raw 0-255) to set the activation ranges")
    source = None
    model = model_path_or_model
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        model = load_trained(model)
    meta = model_metadata(model)
    calibration = (_calibration_inputs(calibration_images, n_calibration, meta["image_size"],
                                       meta["channels"]) if quantize == "int8" else None)
    content = _convert(model, quantize, calibration)
    described = _describe(content)
    missing = set(meta["heads"]) - set(described["outputs"])
    if missing:
        raise ConfigError(f"TFLite model lost outputs {sorted(missing)}; has "
                          f"{sorted(described['outputs'])}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(content)
    sidecar = {
        "format": "tflite", "file": out.name, "signature": SIGNATURE, "quantize": quantize,
        **described,
        "calibration_images": len(calibration) if calibration is not None else None,
        "source_model": source, "tensorflow": tf.__version__, "metadata": meta,
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=1, default=str) + "\n")
    return out


# --------------------------------------------------------------------------- running

def _interpreter(content: bytes, num_threads: int | None) -> Any:
    """LiteRT's interpreter when installed (tf.lite.Interpreter's successor), else TF's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TF's interpreter warns that it moves to LiteRT
        return Interpreter(model_content=content, num_threads=num_threads)


def _check_sidecar(info: Any, side: Path) -> None:
    """Every field the predictor reads, present and of its type; the error names the field."""
    def fail(field: str, problem: str) -> None:
        raise DataError(side, f"damaged sidecar: {field} {problem}")

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def tensor(block: Any, field: str) -> None:
        if not isinstance(block, Mapping):
            fail(field, "is missing or not an object")
        dtype = block.get("dtype")
        try:
            ok = isinstance(dtype, str) and np.dtype(dtype).kind in "iuf"
        except TypeError:
            ok = False
        if not ok:
            fail(f"{field}.dtype", f"is not a numeric type name (got {dtype!r})")
        if not number(block.get("scale")) or not number(block.get("zero_point")):
            fail(field, "needs numeric scale and zero_point")

    if not isinstance(info, Mapping):
        fail("", "is not a JSON object")
    meta = info.get("metadata")
    if not isinstance(meta, Mapping):
        fail("metadata", "is missing or not an object")
    heads = meta.get("heads")
    if not isinstance(heads, list) or not heads or not set(heads) <= set(HEADS):
        fail("metadata.heads", f"must list heads from {list(HEADS)} (got {heads!r})")
    for field, low in (("image_size", 1), ("channels", 1)):
        value = meta.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            fail(f"metadata.{field}", f"must be a positive integer (got {value!r})")
    if "expression" in heads and not (isinstance(meta.get("labels"), list) and meta["labels"]):
        fail("metadata.labels", "must list the class names of the expression head")
    tensor(info.get("input"), "input")
    if not isinstance(info["input"].get("name"), str):
        fail("input.name", f"must be the input's name (got {info['input'].get('name')!r})")
    outputs = info.get("outputs")
    if not isinstance(outputs, Mapping):
        fail("outputs", "is missing or not an object")
    for head in heads:
        tensor(outputs.get(head), f"outputs.{head}")


class TFLiteModel:
    """A .tflite file as a callable with the Keras model's dict outputs (float, dequantised).

    `metadata` is the Keras model's (from the sidecar), so the predictor treats both alike.
    Not thread-safe: one interpreter per thread.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "TFLite model file not found")
        side = sidecar_path(self.path)
        if not side.is_file():
            raise DataError(side, "sidecar with output names and model metadata not found; "
                                  "export with helpers.export.export_tflite, which writes it")
        try:
            self.info = json.loads(side.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise DataError(side, f"damaged sidecar: {_one_line(error)}") from error
        _check_sidecar(self.info, side)
        self.metadata = dict(self.info["metadata"])
        input_info, self.outputs = self.info["input"], dict(self.info["outputs"])
        content = self.path.read_bytes()
        try:
            interpreter = _interpreter(content, num_threads or os.cpu_count())
            self._runner = interpreter.get_signature_runner(self.info.get("signature", SIGNATURE))
            names = set(self._runner.get_output_details())
        except (ValueError, RuntimeError) as error:
            raise DataError(self.path,
                            f"not a readable TFLite model: {_one_line(error)}") from error
        if names != set(self.outputs) or not set(self.metadata["heads"]) <= names:
            raise DataError(side, f"does not match {self.path.name}: outputs {sorted(names)} "
                                  f"vs sidecar {sorted(self.outputs)}")
        self.input_name = input_info["name"]
        shape = [int(v) for v in
                 self._runner.get_input_details().get(self.input_name, {}).get("shape", [])]
        want = [self.metadata["image_size"], self.metadata["image_size"], self.metadata["channels"]]
        if shape[1:] != want:
            raise DataError(side, f"metadata says input {want[0]}x{want[1]}x{want[2]}, but "
                                  f"{self.path.name} takes {shape[1:] or 'no such input'} "
                                  f"(input {self.input_name!r})")
        self.input_dtype = np.dtype(input_info["dtype"])
        self.input_scale, self.input_zero_point = input_info["scale"], input_info["zero_point"]
        self.quantize = self.info.get("quantize")
        self.size_bytes = len(content)

    def _quantized_input(self, images: np.ndarray) -> np.ndarray:
        """Float pixels in the input's integer grid, where the model wants integers."""
        x = np.asarray(images, dtype=np.float32)
        if self.input_dtype.kind not in "iu":
            return x
        limits = np.iinfo(self.input_dtype)
        q = np.rint(x / self.input_scale + self.input_zero_point)
        return np.clip(q, limits.min, limits.max).astype(self.input_dtype)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Batch (N, S, S, C) of raw 0-255 floats -> {head: float32 array}, like the Keras model."""
        raw = self._runner(**{self.input_name: self._quantized_input(images)})
        out = {}
        for head in self.metadata["heads"]:
            value, info = raw[head], self.outputs[head]
            if np.dtype(info["dtype"]).kind in "iu":
                value = (value.astype(np.float32) - info["zero_point"]) * info["scale"]
            out[head] = np.asarray(value, dtype=np.float32)
        return out


# --------------------------------------------------------------------------- comparison

def _stack_inputs(images: Any, size: int, channels: int) -> np.ndarray:
    """A model-ready float batch from model-sized arrays or any images (resized like crops)."""
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:] == (
            size, size, channels):
        return images.astype(np.float32)
    return np.stack([to_model_input(np.asarray(im), size, channels) for im in images])


def _chunks(x: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive batches of at most batch_size rows."""
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


def _timed(model: Backend, x: np.ndarray, batch_size: int) -> tuple[dict[str, np.ndarray], float]:
    """Outputs over all of x and milliseconds per image, after one warm-up call."""
    model(x[:batch_size])
    start = time.perf_counter()
    parts = [model(chunk) for chunk in _chunks(x, batch_size)]
    ms = (time.perf_counter() - start) * 1000.0 / len(x)
    return {h: np.concatenate([p[h] for p in parts]) for h in parts[0]}, ms


def compare_backends(keras_model: Any, tflite_model: Any, images: Any, *, batch_size: int = 64,
                     n_single: int = 32) -> dict[str, Any]:
    """How far a TFLite model strays from its Keras source, and how fast each runs.

    Per head: max and mean absolute difference (probabilities for expression, plus argmax
    agreement, also over the `n_decided` images whose Keras top-2 margin exceeds two int8
    output steps, since a near-uniform softmax makes argmax a coin toss). Latency in ms per
    image batched (batch_size) and one at a time (the first n_single images), and images/s
    batched; timings cover only the model calls, after a warm-up call.
    """
    reference, candidate = open_model(keras_model, "keras"), open_model(tflite_model, "tflite")
    meta = reference.metadata
    x = _stack_inputs(images, meta["image_size"], meta["channels"])
    if not len(x):
        raise ConfigError("compare_backends needs at least one image")
    result: dict[str, Any] = {"n": int(len(x)), "batch_size": batch_size,
                              "n_single": int(min(n_single, len(x))),
                              "quantize": getattr(candidate, "quantize", None),
                              "tflite_bytes": getattr(candidate, "size_bytes", None)}
    outputs, latency = {}, {}
    for name, model in (("keras", reference), ("tflite", candidate)):
        outputs[name], batched = _timed(model, x, batch_size)
        _, single = _timed(model, x[:n_single], 1)
        latency[name] = {"batched_ms": batched, "single_ms": single,
                         "images_per_s": 1000.0 / batched if batched > 0 else float("inf")}
    for head in meta["heads"]:
        a, b = outputs["keras"][head].astype(np.float64), outputs["tflite"][head].astype(np.float64)
        diff = np.abs(a - b)
        entry = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
        if head == "expression":
            same = a.argmax(1) == b.argmax(1)
            entry["argmax_agreement"] = float(np.mean(same))
            # int8 outputs move in steps of `scale`: closer calls are ties, not disagreements
            step = getattr(candidate, "outputs", {}).get(head, {}).get("scale", 0.0) or 0.0
            top2 = np.sort(a, axis=1)[:, -2:]
            decided = (top2[:, 1] - top2[:, 0]) > 2 * step
            entry["n_decided"] = int(decided.sum())
            entry["decided_argmax_agreement"] = (float(np.mean(same[decided]))
                                                 if decided.any() else None)
        result[head] = entry
    result["latency"] = latency
    return result


# --------------------------------------------------------------------------- deployment check

def deployment_check(model: Any, model_name: str, test_table: Any, calibration_table: Any,
                     out_dir: str | os.PathLike, *, n_calibration: int = 100,
                     max_images: int = 500, seed: int = 0) -> dict[str, Any]:
    """Export float and int8 TFLite files and measure what each costs on the test split.

    Accuracy (expression argmax against the labels) for Keras and both TFLite files on up to
    max_images test images, the change against Keras, agreement, latency and file size.
    Writes out_dir/<model>.float.tflite, <model>.int8.tflite (with sidecars) and <model>.json.
    """
    import pandas as pd

    from helpers.models import model_metadata
    from helpers.pipeline import model_inputs

    meta = model_metadata(model)
    size, channels = meta["image_size"], meta["channels"]
    rng = np.random.default_rng(seed)
    test = test_table.iloc[np.sort(rng.permutation(len(test_table))[:max_images])]
    calib = calibration_table.iloc[np.sort(rng.permutation(len(calibration_table))[:n_calibration])]
    x = model_inputs(test["image"].tolist(), size, channels)
    y = pd.to_numeric(test["expression"], errors="coerce").to_numpy()
    labelled = np.isfinite(y) & (y >= 0)
    out = Path(out_dir)
    result: dict[str, Any] = {"model": model_name, "n": int(len(x)), "n_calibration": int(len(calib))}
    keras_accuracy = None
    for quantize in (None, "int8"):
        kind = quantize or "float"
        path = export_tflite(model, out / f"{model_name}.{kind}.tflite", quantize=quantize,
                             calibration_images=model_inputs(calib["image"].tolist(), size, channels))
        tfl = TFLiteModel(path)
        compared = compare_backends(model, tfl, x)
        entry: dict[str, Any] = {"file": path.name, "size_bytes": path.stat().st_size,
                                 "latency": compared["latency"]["tflite"]}
        if "expression" in meta["heads"] and labelled.any():
            keras_pred = open_model(model, "keras")(x)["expression"].argmax(1)
            tfl_pred = tfl(x)["expression"].argmax(1)
            keras_accuracy = float(np.mean(keras_pred[labelled] == y[labelled]))
            entry["accuracy"] = float(np.mean(tfl_pred[labelled] == y[labelled]))
            entry["accuracy_change"] = entry["accuracy"] - keras_accuracy
            entry["argmax_agreement"] = compared["expression"]["argmax_agreement"]
        result[f"tflite_{kind}"] = entry
        result["keras"] = {"accuracy": keras_accuracy, "latency": compared["latency"]["keras"]}
    (out / f"{model_name}.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def deployment_table(run_dir: str | os.PathLike) -> Any:
    """One row per model from <run>/export/*.json, for the report."""
    import pandas as pd

    rows = []
    for path in sorted((Path(run_dir) / "export").glob("*.json")):
        if path.name.endswith(".tflite.json"):
            continue  # sidecars
        d = json.loads(path.read_text())
        row = {"model": d["model"], "keras_accuracy": d["keras"]["accuracy"],
               "keras_ms_batched": d["keras"]["latency"]["batched_ms"],
               "keras_ms_single": d["keras"]["latency"]["single_ms"]}
        for kind in ("float", "int8"):
            e = d.get(f"tflite_{kind}", {})
            row[f"{kind}_accuracy_change"] = e.get("accuracy_change")
            row[f"{kind}_ms_single"] = e.get("latency", {}).get("single_ms")
            row[f"{kind}_MB"] = e.get("size_bytes", 0) / 1e6
        rows.append(row)
    return pd.DataFrame(rows)
