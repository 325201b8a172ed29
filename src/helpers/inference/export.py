"""TFLite export: float, or int8 calibrated on training images, with a sidecar naming the outputs.

TFLite names and orders a multi-output model's outputs its own way, so each export names every
output tensor after its head, lists them in the Keras model's head order, and writes a sidecar
`<file>.tflite.json` next to it: output names, shapes, tensor indices and quantisation, plus
helpers.models.factory.model_metadata, which helpers.inference.runtime.TFLiteModel (and so
the predictor) needs to run it. README's "Deploying the TFLite files" says what a file takes
and gives, for running it without this project.

    path = export_tflite("run/models/custom_cnn.keras", "custom_cnn.int8.tflite",
                         quantize="int8", calibration_images=train_images)
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.errors import ConfigError, one_line
from helpers.core.images import read_image
from helpers.core.preprocess import to_model_input
from helpers.core.quiet_import import NOTICES, stderr_without

QUANTIZE = (None, "int8")
SIGNATURE = "serving_default"
SIDECAR_SUFFIX = ".json"  # appended: model.tflite -> model.tflite.json (no clash with cards)


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the output names and metadata of a .tflite file live."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


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
            value.get("config", {}).get("name", "")
        ).startswith("mixed_"):
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {
            k: ("float32" if k == "dtype" and v in ("float16", "bfloat16") else _float32_config(v))
            for k, v in value.items()
        }
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


@contextmanager
def saved_model(model: Any) -> Iterator[str]:
    """A temporary SavedModel of `model` (float32), for several conversions of one model: the
    export is half of a conversion's time (ResNet50: 11 of 23 s on a 2-core CPU)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "saved")
        with quiet_conversion():
            _float32_model(model).export(path, format="tf_saved_model", verbose=False)
        yield path


# What exporting and converting print on every model, with nothing a user can act on.
CONVERSION_NOTICES = (
    "Assets written to",
    "fully_quantize:",
    "Created TensorFlow Lite XNNPACK delegate",
)


@contextmanager
def quiet_conversion() -> Iterator[None]:
    """The block's TensorFlow INFO lines (Python logging and the C++ converter's, which only
    the stderr descriptor reaches) left out of the notebook and terminal; warnings kept."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with stderr_without((*NOTICES, *CONVERSION_NOTICES)):
            yield
    finally:
        logger.setLevel(level)


def _convert(
    model: Any, quantize: str | None, calibration: list[np.ndarray] | None, saved: str | None
) -> bytes:
    """SavedModel route: Keras 3 exports a frozen serving signature the converter accepts."""
    import tensorflow as tf

    if saved is None:
        with saved_model(model) as path:
            return _convert(model, quantize, calibration, path)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if quantize == "int8":
        # Full-integer post-training quantisation with int8 input and output (what
        # microcontrollers and NPUs need); the activation ranges come from `calibration`.
        if not calibration:
            raise ConfigError("quantize='int8' needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with quiet_conversion():
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError, RuntimeError, ...
        raise ConfigError(
            f"TFLite conversion of {model.name!r} failed (quantize={quantize!r}): {one_line(error)}"
        ) from error


# Where the schema (tensorflow/lite/schema/schema.fbs, version 3) keeps the fields renamed and
# reordered.
_TENSOR_NAME = 10  # Tensor.name, its fourth field
_SUBGRAPH_OUTPUTS = 8  # SubGraph.outputs, its third field


def _named_outputs(content: bytes, heads: list[str]) -> bytes:
    """The converted model with each output tensor named after its head (TFLite names them
    `StatefulPartitionedCall_1:0` ...) and listed in the Keras model's head order, so a plain
    interpreter's get_output_details() says which is which. Edited in place, every other byte
    (and so the weights' alignment) kept; a name or list not where the schema puts it is left
    as converted. The serving signature maps names to tensors by index, so it is unchanged."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = bytearray(content)
    model = schema.Model.GetRootAs(data, 0)
    if not model.SignatureDefsLength() or not model.SubgraphsLength():
        return content
    signature, graph = model.SignatureDefs(0), model.Subgraphs(0)
    tensors = {
        signature.Outputs(i).Name().decode(): signature.Outputs(i).TensorIndex()
        for i in range(signature.OutputsLength())
    }
    starts = [_string_start(graph.Tensors(i)) for i in range(graph.TensorsLength())]
    for head, index in tensors.items():
        start, name, old = starts[index], head.encode(), graph.Tensors(index).Name() or b""
        if (
            start is None
            or starts.count(start) > 1  # one string shared by two tensors: leave it
            or len(name) > len(old)
            or data[start + 4 : start + 4 + len(old)] != old
        ):
            continue
        data[start : start + 4] = len(name).to_bytes(4, "little")
        data[start + 4 : start + 5 + len(old)] = name + bytes(len(old) - len(name) + 1)
    field = graph._tab.Offset(_SUBGRAPH_OUTPUTS)
    listed = [int(v) for v in graph.OutputsAsNumpy()] if field else []
    order = [tensors[h] for h in heads if h in tensors]
    if field and sorted(order) == sorted(listed):
        at = graph._tab.Vector(field)
        words = [slice(at + 4 * i, at + 4 * i + 4) for i in range(len(listed))]
        if [int.from_bytes(data[w], "little") for w in words] == listed:
            for word, tensor in zip(words, order, strict=True):
                data[word] = tensor.to_bytes(4, "little")
    return bytes(data)


def _string_start(tensor: Any) -> int | None:
    """Where a tensor's name string (its length, then its bytes) lies in the model's bytes."""
    field = tensor._tab.Offset(_TENSOR_NAME)
    if not field:
        return None
    at = tensor._tab.Pos + field  # holds the string's offset from here (uint32, little-endian)
    return int(at + int.from_bytes(tensor._tab.Bytes[at : at + 4], "little"))


def _output_names(content: bytes) -> list[str]:
    """The outputs' names in the order a plain interpreter's get_output_details() lists them."""
    return [d["name"] for d in interpreter(content, num_threads=1).get_output_details()]


def _tensor_info(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Shape (batch -1), dtype, index and quantisation of one interpreter tensor, JSON-ready."""
    scale, zero_point = detail["quantization"]
    return {
        "index": int(detail["index"]),
        "shape": [int(v) for v in detail.get("shape_signature", detail["shape"])],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def _describe(content: bytes) -> dict[str, Any]:
    """Input and outputs by name, read back from the converted model's serving signature."""
    runner = interpreter(content, num_threads=1).get_signature_runner(SIGNATURE)
    inputs = {k: _tensor_info(v) for k, v in runner.get_input_details().items()}
    outputs = {k: _tensor_info(v) for k, v in runner.get_output_details().items()}
    ((name, info),) = inputs.items()
    return {"input": {"name": name, **info}, "outputs": outputs}


def export_tflite(
    model_path_or_model: Any,
    out_path: str | os.PathLike,
    *,
    quantize: str | None = None,
    calibration_images: Any = None,
    n_calibration: int = 100,
    saved: str | os.PathLike | None = None,
) -> Path:
    """Write a .tflite file and its sidecar; int8 is calibrated on raw 0-255 training images.

    calibration_images: an array (N, H, W[, C]) or an iterable of arrays or image paths, any
    size (resized like the predictor's crops); n_calibration of them are used. saved: a
    SavedModel of the same model from `saved_model`, to convert without exporting again.
    """
    import tensorflow as tf

    from helpers.models.factory import model_metadata
    from helpers.models.saving import load_trained

    if quantize not in QUANTIZE:
        raise ConfigError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if not isinstance(n_calibration, int) or isinstance(n_calibration, bool) or n_calibration < 1:
        raise ConfigError(f"n_calibration must be an integer >= 1, got {n_calibration!r}")
    if quantize == "int8" and calibration_images is None:
        raise ConfigError(
            "quantize='int8' needs calibration_images (about 100 training images, "
            "raw 0-255) to set the activation ranges"
        )
    source = None
    model = model_path_or_model
    if isinstance(model, (str, os.PathLike)):
        source = str(model)
        model = load_trained(model)
    meta = model_metadata(model)
    calibration = (
        _calibration_inputs(calibration_images, n_calibration, meta["image_size"], meta["channels"])
        if quantize == "int8"
        else None
    )
    content = _convert(model, quantize, calibration, os.fspath(saved) if saved else None)
    heads = list(meta["heads"])
    content = _named_outputs(content, heads)
    listed = _output_names(content)
    if listed != heads:  # the converter laid out names or outputs where _named_outputs skips
        warnings.warn(
            f"{Path(out_path).name}: get_output_details() lists the outputs as {listed}, not "
            f"the heads {heads} in the Keras model's order; read them by name through the "
            f"signature runner ({SIGNATURE!r}) or the sidecar",
            UserWarning,
            stacklevel=2,
        )
    described = _describe(content)
    missing = set(meta["heads"]) - set(described["outputs"])
    if missing:
        raise ConfigError(
            f"TFLite model lost outputs {sorted(missing)}; has {sorted(described['outputs'])}"
        )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(content)
    sidecar = {
        "format": "tflite",
        "file": out.name,
        "signature": SIGNATURE,
        "quantize": quantize,
        **described,
        "calibration_images": len(calibration) if calibration is not None else None,
        "source_model": source,
        "tensorflow": tf.__version__,
        "metadata": meta,
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=1, default=str) + "\n")
    return out


# --------------------------------------------------------------------------- running


# The start of tf.lite.Interpreter's warning (TF 2.18 on) that it is deprecated for LiteRT's.
DEPRECATED_INTERPRETER = r"\s*Warning: tf\.lite\.Interpreter is deprecated"


def interpreter(content: bytes, num_threads: int | None) -> Any:
    """LiteRT's interpreter when installed (tf.lite.Interpreter's successor), else TF's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings(), quiet_conversion():
        # TF's interpreter warns on every load, in 5 lines, that it moves to LiteRT: that one
        # warning is left out, any other kept
        warnings.filterwarnings("ignore", DEPRECATED_INTERPRETER, UserWarning)
        runtime = Interpreter(model_content=content, num_threads=num_threads)
        runtime.allocate_tensors()  # where it announces its XNNPACK delegate
        return runtime


# --------------------------------------------------------------------------- comparison


# --------------------------------------------------------------------------- deployment check
