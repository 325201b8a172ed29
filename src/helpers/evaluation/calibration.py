"""Fitting the expression head's temperature on the validation split (Guo et al., 2017), and
what it does there and on the test split, for the metrics JSON's `calibration` block. The
temperature is chosen on validation, as every other setting is; the test split only reports."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from helpers.evaluation.metrics import expected_calibration_error
from helpers.inference.calibration import TEMPERATURE_RANGE, range_edge, scale_probabilities

_FLOOR = 1e-12  # the smallest probability a log is taken of (float32 softmax underflows to 0)


def _nll(proba: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes at a temperature."""
    p = scale_probabilities(proba, temperature)[np.arange(truth.size), truth]
    return float(-np.log(np.maximum(p, _FLOOR)).mean())


def _scored(proba: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose true class is one the model has (its probability column is not all zero), as
    the expression metrics score them."""
    p = np.maximum(np.asarray(proba, dtype=np.float64), 0.0)
    t = np.asarray(truth).reshape(-1)
    if p.ndim != 2 or p.shape[0] != t.size:
        raise ValueError(f"calibration: probabilities {p.shape} for {t.size} labels")
    has = np.flatnonzero(p.max(axis=0) > 0) if p.size else np.empty(0, dtype=np.int64)
    keep = np.isin(t, has)
    return p[keep], t[keep].astype(np.int64)


def fit_temperature(proba: Any, truth: Any) -> float:
    """The temperature that minimises the negative log-likelihood of the true classes, searched
    on a log scale inside TEMPERATURE_RANGE (scipy's bounded Brent); NaN without scored rows."""
    p, t = _scored(proba, truth)
    if t.size == 0:
        return math.nan
    low, high = (math.log(v) for v in TEMPERATURE_RANGE)
    found = minimize_scalar(
        lambda log_t: _nll(p, t, math.exp(log_t)), bounds=(low, high), method="bounded"
    )
    return float(math.exp(found.x))


def _ece(proba: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    """ECE of the top probability after scaling (the prediction itself does not change)."""
    scaled = scale_probabilities(proba, temperature)
    return expected_calibration_error(scaled.argmax(axis=1) == truth, scaled.max(axis=1))


def calibration_block(
    val_proba: Any, val_truth: Any, test_proba: Any, test_truth: Any
) -> dict[str, Any] | None:
    """The metrics JSON's `calibration`: the temperature fitted on validation, the negative
    log-likelihood and ECE there before and after, and the test split's ECE after (its ECE
    before is the expression block's `ece`); `at_bound` "upper" or "lower" where the search
    stopped at an end of `range` rather than at an optimum (null inside it); None without
    validation rows to fit on."""
    vp, vt = _scored(val_proba, val_truth)
    if vt.size == 0:
        return None
    temperature = fit_temperature(vp, vt)
    tp, tt = _scored(test_proba, test_truth)
    return {
        "method": "temperature scaling",
        "fitted_on": "val",
        "n": int(vt.size),
        "temperature": temperature,
        "range": list(TEMPERATURE_RANGE),
        "at_bound": range_edge(temperature),
        "val_nll": [_nll(vp, vt, 1.0), _nll(vp, vt, temperature)],
        "val_ece": [_ece(vp, vt, 1.0), _ece(vp, vt, temperature)],
        "test_ece": [_ece(tp, tt, 1.0), _ece(tp, tt, temperature)] if tt.size else None,
    }
