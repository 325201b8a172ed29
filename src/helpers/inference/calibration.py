"""Temperature scaling of the expression head's probabilities (Guo et al., 2017): one number,
fitted on the validation split by notebook 05 and kept in the model's metrics JSON, that divides
the log-probabilities so a model's confidence means what it says. Every prediction stays the
same (the order of a face's classes does not change); only how sure the model says it is."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.core.errors import ConfigError, DataError
from helpers.core.jsonio import read_json
from helpers.core.labels import EXPRESSIONS

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


def confine(proba: Any, classes: Sequence[int]) -> np.ndarray:
    """Each row's probabilities over `classes` alone, renormalised, the rest 0: a model trained
    or scored on some of its head's classes (7-class FER-2013, a data set of four) chooses among
    those, in notebook 05's metrics and in the predictor alike."""
    p = np.asarray(proba, dtype=np.float64)
    keep = np.zeros(p.shape[-1], dtype=bool)
    keep[list(classes)] = True
    kept = np.where(keep, p, 0.0)
    total = kept.sum(axis=-1, keepdims=True)
    return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)


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


def calibration_fit(metrics_path: str | os.PathLike) -> dict[str, Any]:
    """What the predictor says about a fitted temperature: the validation faces it was fitted
    on (`n`) and the modes fitted (`modes`); empty where the metrics JSON holds no fit."""
    if not os.path.isfile(metrics_path):
        return {}
    calibration = read_json(metrics_path).get("calibration")
    if not isinstance(calibration, dict):
        return {}
    temperatures = calibration.get("temperatures")
    n = calibration.get("n")
    return {
        "n": n if isinstance(n, int) and not isinstance(n, bool) else None,
        "modes": sorted(temperatures) if isinstance(temperatures, dict) else [],
    }


def range_edge(temperature: float) -> str | None:
    """ "upper" or "lower" where a fitted temperature lies at an end of TEMPERATURE_RANGE
    (within 1%): the search stopped at the bound, not at an optimum; None inside it."""
    low, high = TEMPERATURE_RANGE
    if not math.isfinite(temperature):
        return None
    if temperature >= high * 0.99:
        return "upper"
    if temperature <= low * 1.01:
        return "lower"
    return None


def range_edge_note(temperature: float) -> str | None:
    """What a fit that ran into TEMPERATURE_RANGE means: at the top, the model did no better
    than a uniform guess on its validation faces; at the bottom, it was right about (nearly)
    all of them, so the fit sharpened as far as it may. Either way its confidences say little."""
    end = range_edge(temperature)
    if end == "upper":
        found = "on those faces the model did no better than a uniform guess"
    elif end == "lower":
        found = "the model was right about (nearly) every one of those faces"
    else:
        return None
    edge = list(TEMPERATURE_RANGE)
    return f"at the edge of its range {edge}: {found}, so its confidences say little"


def scored_classes(metrics_path: str | os.PathLike) -> list[int] | None:
    """The classes notebook 05 confined a model's expression predictions to (its metrics
    JSON's `expression.restricted_to`: the classes its data has), as indices of EXPRESSIONS;
    None where it scored every class (listed or not) or there is no file."""
    if not os.path.isfile(metrics_path):
        return None
    expression = read_json(metrics_path).get("expression")
    names = expression.get("restricted_to") if isinstance(expression, dict) else None
    classes = class_indices(names, metrics_path)
    return None if classes is not None and len(classes) == len(EXPRESSIONS) else classes


def class_indices(names: Any, source: str | os.PathLike) -> list[int] | None:
    """An expression block's `restricted_to` (expression names) as sorted indices of
    EXPRESSIONS; None where it names none; anything but a list of those names is a DataError
    naming `source` (the metrics file, or what holds the block)."""
    if not names:
        return None
    if not isinstance(names, list) or not all(
        isinstance(name, str) and name in EXPRESSIONS for name in names
    ):
        raise DataError(str(source), "expression.restricted_to must list expression "
                        f"names ({', '.join(EXPRESSIONS)}), got {names!r}")  # fmt: skip
    return sorted(EXPRESSIONS.index(name) for name in set(names))


class CalibratedModel:
    """Any predictor backend (Keras, TFLite, with test-time augmentation) whose expression
    probabilities are confined to `classes` (None: all) and temperature-scaled, as notebook 05
    scored and calibrated them; the other heads pass through unchanged."""

    def __init__(self, backend: Any, temperature: float, classes: Sequence[int] | None = None):
        self.backend, self.temperature = backend, check_temperature(temperature)
        self.classes = None if classes is None else sorted(set(classes))
        self.metadata = {**backend.metadata, "temperature": self.temperature}
        if self.classes is not None:
            self.metadata["classes"] = self.classes

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(self.backend(images))
        if "expression" in out:
            proba = out["expression"]
            if self.classes is not None:
                proba = confine(proba, self.classes)
            out["expression"] = scale_probabilities(proba, self.temperature).astype(np.float32)
        return out
