"""Temperature scaling of the expression head's probabilities (Guo et al., 2017): one number,
fitted on the validation split by notebook 05 and kept in the model's metrics JSON, that divides
the log-probabilities so a model's confidence means what it says. Every prediction stays the
same (the order of a face's classes does not change); only how sure the model says it is."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from helpers.core.errors import ConfigError, DataError
from helpers.core.jsonio import read_json

# Temperatures a fit may return and a metrics file may hold: beyond them the probabilities are
# a one-hot or a uniform vector, and the fit has found a broken model, not a calibration.
TEMPERATURE_RANGE = (0.05, 20.0)


def scale_probabilities(proba: Any, temperature: float) -> np.ndarray:
    """Each row's softmax of log(p) / temperature: above 1 it flattens the probabilities, below
    1 it sharpens them; a class given probability 0 (one the model lacks) keeps 0."""
    p = np.asarray(proba, dtype=np.float64)
    if temperature == 1.0:
        return p
    with np.errstate(divide="ignore"):
        z = np.log(p) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def check_temperature(value: Any, source: str | None = None) -> float:
    """A temperature as a float inside TEMPERATURE_RANGE; anything else a DataError naming the
    file it was read from (source), or a ConfigError for an argument."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    low, high = TEMPERATURE_RANGE
    if number is None or not math.isfinite(number) or not low <= number <= high:
        problem = f"calibration temperature must be a number in [{low}, {high}], got {value!r}"
        raise DataError(source, problem) if source else ConfigError(problem)
    return float(number)


def fitted_temperature(metrics_path: str | os.PathLike, tta: str = "none") -> float | None:
    """The temperature notebook 05 fitted for a model under test-time augmentation `tta` (its
    metrics JSON's `calibration.temperatures`), or None where the file, the fit or a fit for
    that mode is absent; a malformed one is a DataError naming the file."""
    if not os.path.isfile(metrics_path):
        return None
    calibration = read_json(metrics_path).get("calibration")
    if not isinstance(calibration, dict):
        return None
    temperatures = calibration.get("temperatures")
    if temperatures is None:  # a fit without its modes: which views it holds for is unknown
        return None
    if not isinstance(temperatures, dict):
        raise DataError(str(metrics_path), "calibration.temperatures must map a test-time "
                        f"augmentation to its temperature, got {temperatures!r}")  # fmt: skip
    if temperatures.get(tta) is None:
        return None
    return check_temperature(temperatures[tta], str(metrics_path))


class CalibratedModel:
    """Any predictor backend (Keras, TFLite, with test-time augmentation) whose expression
    probabilities are temperature-scaled; the other heads pass through unchanged."""

    def __init__(self, backend: Any, temperature: float):
        self.backend, self.temperature = backend, check_temperature(temperature)
        self.metadata = {**backend.metadata, "temperature": self.temperature}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(self.backend(images))
        if "expression" in out:
            out["expression"] = scale_probabilities(out["expression"], self.temperature).astype(
                np.float32
            )
        return out
