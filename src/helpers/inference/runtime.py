"""One way to run a trained model: a Keras model or an exported TFLite file behind the same call,
batch in, a dict of heads out."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from helpers.core.errors import ConfigError, DataError, one_line
from helpers.core.labels import HEADS
from helpers.inference.export import SIGNATURE, export_tflite, interpreter, sidecar_path

if TYPE_CHECKING:
    import keras


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
    if "expression" in heads:
        shape = outputs["expression"].get("shape")
        if isinstance(shape, list) and shape and shape[-1] != len(meta["labels"]):
            fail(
                "metadata.labels",
                f"names {len(meta['labels'])} classes but outputs.expression has "
                f"{shape[-1]!r} (shape {shape!r})",
            )


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
            raise DataError(
                side,
                "sidecar with output names and model metadata not found; "
                "export with helpers.inference.export.export_tflite, which writes it",
            )
        try:
            self.info = json.loads(side.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise DataError(side, f"damaged sidecar: {one_line(error)}") from error
        _check_sidecar(self.info, side)
        self.metadata = dict(self.info["metadata"])
        input_info, self.outputs = self.info["input"], dict(self.info["outputs"])
        content = self.path.read_bytes()
        try:
            runtime = interpreter(content, num_threads or os.cpu_count())
            self._runner = runtime.get_signature_runner(self.info.get("signature", SIGNATURE))
            names = set(self._runner.get_output_details())
        except (ValueError, RuntimeError) as error:
            raise DataError(self.path, f"not a readable TFLite model: {one_line(error)}") from error
        if names != set(self.outputs) or not set(self.metadata["heads"]) <= names:
            raise DataError(
                side,
                f"does not match {self.path.name}: outputs {sorted(names)} "
                f"vs sidecar {sorted(self.outputs)}",
            )
        self._check_classes(side)
        self.input_name = input_info["name"]
        shape = [
            int(v)
            for v in self._runner.get_input_details().get(self.input_name, {}).get("shape", [])
        ]
        want = [self.metadata["image_size"], self.metadata["image_size"], self.metadata["channels"]]
        if shape[1:] != want:
            raise DataError(
                side,
                f"metadata says input {want[0]}x{want[1]}x{want[2]}, but "
                f"{self.path.name} takes {shape[1:] or 'no such input'} "
                f"(input {self.input_name!r})",
            )
        self.input_dtype = np.dtype(input_info["dtype"])
        self.input_scale, self.input_zero_point = input_info["scale"], input_info["zero_point"]
        self.quantize = self.info.get("quantize")
        self.size_bytes = len(content)

    def _check_classes(self, side: Path) -> None:
        """The expression output as wide as the sidecar's label list, so every class has a
        name: a sidecar from another export would otherwise mislabel or crash the table."""
        if "expression" not in self.metadata["heads"]:
            return
        detail = self._runner.get_output_details().get("expression", {})
        shape = [int(v) for v in detail.get("shape", [])]
        if not shape or shape[-1] != len(self.metadata["labels"]):
            raise DataError(
                side,
                f"damaged sidecar: metadata.labels names {len(self.metadata['labels'])} "
                f"classes but {self.path.name}'s expression output has shape {shape}",
            )

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


BACKENDS = ("keras", "tflite")


class Backend(Protocol):
    """What the predictor needs from a model: its metadata and a batch -> dict-of-heads call."""

    metadata: dict[str, Any]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


def head_outputs(outputs: Any, model: Any) -> dict[str, np.ndarray]:
    """Model outputs keyed by head name, whether the model returns a dict or a list."""
    if isinstance(outputs, Mapping):
        return {str(k): np.asarray(v) for k, v in outputs.items()}
    names = list(getattr(model, "output_names", None) or [])
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    if len(names) != len(outputs):
        raise ValueError(f"cannot tell which head is which: outputs {len(outputs)}, names {names}")
    return {n: np.asarray(o) for n, o in zip(names, outputs, strict=False)}


class KerasModel:
    """A Keras model behind the same call as TFLiteModel: float batch in, numpy dict out.

    The one way a Keras model is run: the predictor, predict_table (the metrics JSON's
    images/s) and the deployment table's latency all call it, so every speed times one path.
    """

    def __init__(self, model: keras.Model):
        from helpers.models.factory import model_metadata

        self.model = model
        self.metadata = model_metadata(model)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """predict_on_batch, Keras's compiled predict step: one tf.function per model that
        relaxes to any batch size after a second one (so a model traces at most twice).
        predict() builds a dataset per call, and calling the model directly runs eagerly,
        several times slower one image at a time."""
        out = self.model.predict_on_batch(np.asarray(images, dtype=np.float32))
        return head_outputs(out, self.model)


OPENED_KEPT = 2  # .keras files kept loaded, so a loop predicting with one file loads it once
_opened: dict[tuple[str, int, int, int], keras.Model] = {}


def _open_keras(path: Path) -> keras.Model:
    """_load_keras, reusing the model last loaded from this file while the file is unchanged
    (same size, modification time and inode): loading again would trace its predict step
    again, and a notebook looping over photos would warn of retracing."""
    try:
        stat = path.stat()
    except OSError:
        return _load_keras(path)  # missing: _load_keras names the file
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _opened:
        model = _load_keras(path)
        while len(_opened) >= OPENED_KEPT:
            del _opened[next(iter(_opened))]
        _opened[key] = model
    return _opened[key]


def _load_keras(path: Path) -> keras.Model:
    """A .keras file, its suffix in any case (Keras itself reads only a lower-case .keras, so an
    upper-case one is read through a link); DataError naming the file when it cannot load."""
    from helpers.models.saving import load_trained  # keras and TF load only when needed

    if path.suffix == ".keras" or path.suffix.lower() != ".keras" or not path.is_file():
        return load_trained(path)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / f"{path.stem}.keras"
        link.symlink_to(path.resolve())
        try:
            return load_trained(link)
        except DataError as error:
            raise DataError(path, error.problem) from error


def open_model(model_or_path: Any, backend: str | None = None) -> Backend:
    """A Keras model, a .keras file, a .tflite file, a TFLiteModel or any Backend, ready to call.

    backend None picks by type/suffix; "tflite" with a Keras model converts it (float) in memory.
    """
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"backend must be one of {BACKENDS} (or None to infer), got {backend!r}")
    if isinstance(model_or_path, (KerasModel, TFLiteModel)):
        is_tflite = isinstance(model_or_path, TFLiteModel)
        if backend is not None and (backend == "tflite") != is_tflite:
            raise ConfigError(f"backend={backend!r} given a {type(model_or_path).__name__}")
        return model_or_path
    if isinstance(getattr(model_or_path, "metadata", None), Mapping) and callable(model_or_path):
        return model_or_path  # any other runtime that follows the Backend protocol
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if path.is_dir():
            raise DataError(path, "is a folder, not a model file (give its .keras or .tflite file)")
        if path.suffix.lower() == ".tflite":
            if backend == "keras":
                raise ConfigError(f"{path}: a .tflite file needs backend='tflite'")
            return TFLiteModel(path)
        model = _open_keras(path)
    else:
        import keras

        if not isinstance(model_or_path, keras.Model):
            raise ConfigError(
                "expected a Keras model, a .keras or .tflite path, or a TFLiteModel; "
                f"got {type(model_or_path).__name__}"
            )
        model = model_or_path
    if backend != "tflite":
        return KerasModel(model)
    with tempfile.TemporaryDirectory() as tmp:  # TFLiteModel keeps the bytes, not the file
        return TFLiteModel(export_tflite(model, Path(tmp) / "model.tflite"))
