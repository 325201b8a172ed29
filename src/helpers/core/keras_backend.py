"""The Keras backend a process will run, known without importing Keras: the notebooks, their
Grad-CAM (tf.GradientTape) and the TFLite export need TensorFlow, so a command that runs them
refuses another backend at once instead of failing minutes later deep inside a stage."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.core.errors import ConfigError


def configured() -> str:
    """The backend Keras will load: $KERAS_BACKEND, else keras.json's (in $KERAS_HOME or
    ~/.keras), else TensorFlow, as Keras itself decides."""
    named = os.environ.get("KERAS_BACKEND")
    if named:
        return named
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        backend = json.loads((home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return str(backend) if backend else "tensorflow"


def need_tensorflow(what: str, needs: str) -> None:
    """A one-line ConfigError when the configured backend is not TensorFlow: `what` (the
    command) needs it for `needs`."""
    backend = configured()
    if backend != "tensorflow":
        raise ConfigError(
            f"{what} needs the TensorFlow Keras backend ({needs}), but Keras is set to "
            f"{backend} (KERAS_BACKEND or keras.json): unset KERAS_BACKEND to run it"
        )
