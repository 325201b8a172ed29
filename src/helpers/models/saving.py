"""Loading a saved model safely: the classes it may refer to, and a clear error for a bad file.

Importing this module registers the project's layers, losses and metrics with Keras, so plain
`keras.saving.load_model(path)` reads a run's model too (`import helpers` alone loads no Keras)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import keras

from helpers.core.archive import ArchiveLimits, GiB, open_zip
from helpers.core.errors import ConfigError, DataError, one_line
from helpers.models import backbones, losses, train_metrics


def custom_objects() -> dict[str, Any]:
    """Classes a saved model refers to (also registered; listed for safe_mode loading)."""
    return {
        "Preprocess": backbones.Preprocess,
        "MaskedSparseCategoricalCrossentropy": losses.MaskedSparseCategoricalCrossentropy,
        "MaskedMSE": losses.MaskedMSE,
        "MaskedCCCLoss": losses.MaskedCCCLoss,
        "MaskedLandmarkLoss": losses.MaskedLandmarkLoss,
        "MaskedAccuracy": train_metrics.MaskedAccuracy,
        "MaskedRMSE": train_metrics.MaskedRMSE,
        "MaskedCCC": train_metrics.MaskedCCC,
    }


# A .keras file is a zip: its weights (tens to hundreds of MB) barely compress, so a member
# that inflates 200-fold, or past these sizes, is not a model but a zip bomb.
MODEL_LIMITS = ArchiveLimits(max_members=1000, max_member_bytes=4 * GiB, max_total_bytes=8 * GiB)


def partial_path(path: str | os.PathLike) -> Path:
    """Where a model is written before it takes `path`'s place: the same folder, so the move
    is one atomic rename and a reader never meets half a file (a .keras name, as Keras asks)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def publish(path: str | os.PathLike) -> bool:
    """Move a model written to partial_path() into place; False when there was none."""
    partial = partial_path(path)
    if not partial.is_file():
        return False
    os.replace(partial, path)
    return True


def save_whole(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save a model beside `path` and rename it into place, so notebook 05 reading the file
    while notebook 04 trains loads a whole model, never a half-written one."""
    model.save(partial_path(path))
    publish(path)
    return Path(path)


def load_trained(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """A model saved by train(), loaded with safe_mode (no code from the file runs).

    A missing, damaged, altered or foreign file is a DataError naming the file; a path that is
    no str or Path a ConfigError. The model's `loaded_from` is the file's absolute path, so
    helpers.inference.predict.predict_images gives it the temperature, classes and face framing
    of its run folder, as it gives the file itself.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(
            "load_trained: path must be a .keras file path (str or Path), got "
            f"{type(path).__name__}"
        )
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "model file not found")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise DataError(path, "not a Keras .keras model file")
    open_zip(path, MODEL_LIMITS).close()  # every member checked before Keras inflates any
    try:
        model = keras.saving.load_model(
            path, custom_objects=custom_objects(), compile=compile, safe_mode=True
        )
    except Exception as error:  # Keras raises ValueError, KeyError, OSError, zip errors...
        raise DataError(
            path,
            "cannot load the model: the file is damaged, was altered, or "
            f"was not written by this project ({one_line(error)})",
        ) from error
    if not isinstance(model, keras.Model) or "preprocess" not in {
        layer.name for layer in model.layers
    }:
        raise DataError(path, "not a model built by helpers.models.factory (no 'preprocess' layer)")
    model.loaded_from = Path(os.path.abspath(path))
    return model
