"""Local weights files (.keras, .weights.h5, legacy .h5) loaded into a built model by layer
name, with an error that says what did not match."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import keras
import numpy as np

from helpers.core.errors import DataError, one_line
from helpers.models.backbones import BACKBONE_LAYER

log = logging.getLogger(__name__)

# Keras' by-name loader names each layer it skips: "... layer #4 (named block1_conv2) ..."
_SKIPPED_LAYER = re.compile(r"\(named ([^)]+)\)")


def _walk(layer: keras.layers.Layer, prefix: str = "") -> dict[str, keras.layers.Layer]:
    """Every layer by its path ('backbone/block1_conv1'), so nested backbones match by name."""
    found = {}
    for child in getattr(layer, "layers", []):
        path = f"{prefix}{child.name}"
        found[path] = child
        found.update(_walk(child, path + "/"))
    return found


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    """A layer's weight shapes, short: the kernel's alone where it has one (3x3x1x32)."""
    return "x".join(map(str, shapes[0])) if shapes else "none"


def _copy_by_name(source: keras.Model, target: keras.Model) -> tuple[int, list[str]]:
    """Copy weights of same-named, same-shaped layers (a .keras file may have other heads);
    the count copied, and each layer left as initialised with why."""
    donors, copied, left = _walk(source), 0, []
    for path, layer in _walk(target).items():
        if getattr(layer, "layers", None) or not layer.weights:
            continue
        donor = donors.get(path)
        if donor is None:
            left.append(f"{path} (not in the file)")
            continue
        values = donor.get_weights()
        here = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] == here:
            layer.set_weights(values)
            copied += 1
        else:
            there = _shapes([v.shape for v in values])
            left.append(f"{path} ({there} in the file, {_shapes(here)} here)")
    return copied, left


def _fingerprint(model: keras.Model) -> float:
    """Cheap checksum to tell whether a lenient load changed anything."""
    return float(sum(np.abs(np.asarray(w)).sum() for w in model.weights))


def _load_weights_h5(model: keras.Model, backbone: keras.Model, path: Path) -> None:
    """A .weights.h5 from the same model (same arguments) or from its bare backbone.

    Keras matches these files by layer position, not name, so other heads need a .keras file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keras warns per skipped layer before it raises
        try:
            model.load_weights(path)
        except ValueError as whole_model_error:
            try:
                backbone.load_weights(path)
            except ValueError:
                raise DataError(
                    path,
                    f"does not fit {model.name} built with these arguments "
                    "(to change heads, load its .keras file instead): "
                    f"{one_line(whole_model_error)}",
                ) from whole_model_error


def _load_legacy_h5(backbone: keras.Model, model_name: str, path: Path) -> None:
    """A notop .h5 matched by layer name; Keras warns once per skipped layer, this says it once."""
    before = _fingerprint(backbone)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backbone.load_weights(path, by_name=True, skip_mismatch=True)
    skipped = []
    for warning in caught:
        named = _SKIPPED_LAYER.search(str(warning.message))
        if named and str(warning.message).startswith("Skipping loading"):
            skipped.append(named.group(1))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    listed = ", ".join(skipped[:4]) + (", ..." if len(skipped) > 4 else "")
    if _fingerprint(backbone) == before:
        other_shapes = f" ({len(skipped)} same-named layer(s) of other shapes: {listed})"
        raise DataError(
            path,
            f"no layer of the {model_name} backbone found in the file"
            + (other_shapes if skipped else ""),
        )
    if skipped:
        log.warning(
            "%s: %d layer(s) of the %s backbone keep their initial weights (other shapes "
            "in the file): %s",
            path,
            len(skipped),
            model_name,
            listed,
        )


LEFT = "; left as initialised: "  # in load_weights_file's line, before the layers it names


def left_layers(summary: str) -> list[str]:
    """The layers a load_weights_file line names as left as initialised (for the methods)."""
    listed = summary.partition(LEFT)[2]
    return [item.split(" (")[0] for item in listed.split("), ")] if listed else []


def load_weights_file(model: keras.Model, path: Path) -> str:
    """Load a local weights file: a .keras model, a .weights.h5 or a legacy (notop) .h5; one
    line says what was loaded, and for a .keras file (another run's model, say) which layers
    keep their initial weights and why (a head of other classes, a first convolution for
    other channels), since those train from scratch."""
    backbone = model.get_layer(BACKBONE_LAYER)
    suffix = path.name.lower()
    summary = f"{model.name}: weights from {path.name}"
    try:
        if suffix.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False)
            copied, left = _copy_by_name(source, model)
            if copied == 0:
                raise DataError(path, f"no layer matches model {model.name!r} by name and shape")
            summary = f"{model.name}: {copied} of {copied + len(left)} layers from {path.name}"
            if left:
                summary += LEFT + ", ".join(left)
        elif suffix.endswith(".weights.h5"):
            _load_weights_h5(model, backbone, path)
        elif suffix.endswith((".h5", ".hdf5")):
            _load_legacy_h5(backbone, model.name, path)
        else:
            raise DataError(path, "unknown weights format: use .keras, .weights.h5 or .h5")
    except DataError:
        raise
    except Exception as error:
        raise DataError(
            path,
            f"cannot load weights into {model.name} "
            f"(same name, image size, channels and heads?): {one_line(error)}",
        ) from error
    return summary
