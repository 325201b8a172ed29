"""Every evaluation metric in one place, computed by scikit-learn, SciPy and `krippendorff`.

Heads and their missing targets (as in helpers.losses): expression < 0 or NaN, valence/arousal
NaN, landmarks with any NaN. Missing targets are dropped; a head with nothing left to score is
None (JSON null), never a made-up number. Undefined values (Pearson r of a constant series,
R2 of one sample, ...) are NaN here and null after json_ready.

Prediction tables (evaluate_predictions) are a DataFrame or a mapping of arrays holding, per
head h, the truth in column `h` and the prediction in `h_pred`; the expression head may add
`expression_proba` (an (N, K) array of class probabilities in AffectNet order, or in a
DataFrame an object column of length-K arrays), from which `expression_pred` is derived when
absent. Landmarks are (N, 68, 2) or (N, 136), truth and prediction in the same units (pixels,
or image fractions for square images only: NME is invariant to uniform scaling alone).
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from helpers.errors import ConfigError
from helpers.labels import EXPRESSIONS, FER_TO_AFFECTNET, N_EXPRESSIONS
from helpers.landmarks import N_POINTS, interocular_distance

HEADS: tuple[str, ...] = ("expression", "valence", "arousal", "landmarks")
# The headline metrics that get a bootstrap confidence interval, per kind of head.
CI_KEYS: dict[str, tuple[str, ...]] = {
    "expression": ("accuracy", "f1_macro", "kappa"),
    "regression": ("ccc", "rmse"),
    "landmarks": ("nme",),
}
NME_FAILURE_THRESHOLD = 0.1
# Label spaces, each as a map into the shared AffectNet order (helpers.labels).
LABEL_SPACES: dict[str, dict[int, int]] = {
    "affectnet": {i: i for i in range(N_EXPRESSIONS)},
    "fer": FER_TO_AFFECTNET,
    "fer2013": FER_TO_AFFECTNET,
    "expw": FER_TO_AFFECTNET,
}
# Cap on resampled index cells held at once (n_boot x n), so large test sets stay in memory.
_MAX_INDEX_CELLS = 1 << 22


# --------------------------------------------------------------------------- classification

def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    labels: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
) -> dict | None:
    """Expression scores on the classes the model and the data share, never a made-up class.

    `labels` are class indices (default: every class the model has, i.e. proba's columns, or
    all 8); only those also present in y_true are scored, the others are listed in
    `labels_left_out`. Rows whose truth is missing (< 0) or outside the scored labels are
    dropped (`n_dropped`). Predictions outside them stay, as errors (`n_pred_outside_labels`).
    `label_names` name classes by index (default helpers.labels.EXPRESSIONS). ROC-AUC and
    PR-AUC are one-vs-rest macro averages over the scored classes (raw proba columns);
    model classes not scored are listed in `auc_skipped`.
    """
    t, p, proba, labels, space = _classification_rows(y_true, y_pred, proba, labels)
    names = _names(label_names, space)
    if t.size == 0:
        return None
    n_rows = np.asarray(y_true).size
    scores = _ovr_auc(t, proba, labels)
    return {
        "n": int(t.size),
        "accuracy": float(accuracy_score(t, p)),
        "f1_macro": _f(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": _f(f1_score(t, p, labels=labels, average="weighted", zero_division=0)),
        "precision_macro": _f(precision_score(t, p, labels=labels, average="macro",
                                              zero_division=0)),
        "recall_macro": _f(recall_score(t, p, labels=labels, average="macro", zero_division=0)),
        # No `labels` here: a prediction outside them is a disagreement, not a dropped row.
        "kappa": _cohen_kappa(t, p),
        "krippendorff_alpha": krippendorff_alpha(t, p),
        **scores,
        "auc_skipped": ([names[c] for c in range(proba.shape[1]) if c not in labels]
                        if proba is not None else []),
        "confusion_matrix": _confusion_matrix(t, p, labels),
        "labels": [names[c] for c in labels],
        "label_ids": [int(c) for c in labels],
        "labels_left_out": [names[c] for c in space if c not in labels],
        "n_dropped": int(n_rows - t.size),
        "n_pred_outside_labels": int(np.count_nonzero(~np.isin(p, labels))),
    }


def per_class_report(
    y_true: Any,
    y_pred: Any,
    labels: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-class precision/recall/F1/support, on the same rows and classes as the summary."""
    t, p, _, labels, space = _classification_rows(y_true, y_pred, None, labels)
    names = _names(label_names, space)
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, labels=labels, average=None, zero_division=0)
    return pd.DataFrame(
        {"precision": prec, "recall": rec, "f1": f1, "support": support.astype(np.int64)},
        index=pd.Index([names[c] for c in labels], name="class"))


def _confusion_matrix(t: np.ndarray, p: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Rows true, columns predicted, over the scored labels only."""
    with warnings.catch_warnings():
        # sklearn warns about a single label even when `labels` fixes the shape.
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return confusion_matrix(t, p, labels=labels).tolist()


def _cohen_kappa(t: np.ndarray, p: np.ndarray) -> float:
    """sklearn's kappa over every class either side uses; NaN when only one class occurs."""
    if np.union1d(t, p).size < 2:
        return math.nan  # chance agreement is total: kappa is 0/0
    return float(cohen_kappa_score(t, p))


def krippendorff_alpha(y_true: Any, y_pred: Any) -> float:
    """Nominal alpha with truth and prediction as two raters; NaN when only one value occurs."""
    data = np.vstack([np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)])
    if np.unique(data[np.isfinite(data)]).size < 2:
        return math.nan  # the package raises: agreement on a single value says nothing
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def map_label_space(y: Any, from_space: str, to_space: str = "affectnet") -> np.ndarray:
    """Move labels between label spaces via the AffectNet order; classes the target lacks
    (Contempt in FER order) and missing labels (< 0) become -1."""
    to_shared, from_shared = _space(from_space), {v: k for k, v in _space(to_space).items()}
    y = _labels_array(y, "y")
    unknown = sorted(set(np.unique(y[y >= 0]).tolist()) - set(to_shared))
    if unknown:
        raise ValueError(f"map_label_space: labels {unknown} do not exist in the "
                         f"{from_space!r} space (classes {sorted(to_shared)})")
    lookup = np.full(max(to_shared) + 1, -1, dtype=np.int64)
    for src, shared in to_shared.items():
        lookup[src] = from_shared.get(shared, -1)
    return np.where(y >= 0, lookup[np.clip(y, 0, None)], -1)


def restrict_predictions(proba: Any, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of a model confined to a data set's label space (argmax over `classes`),
    with the probabilities renormalised over them; other columns become 0."""
    proba = np.asarray(proba, dtype=np.float64)
    keep = np.zeros(proba.shape[1], dtype=bool)
    keep[list(classes)] = True
    kept = np.where(keep, proba, 0.0)
    total = kept.sum(axis=1, keepdims=True)
    kept = np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)
    return kept.argmax(axis=1), kept


# --------------------------------------------------------------------------- regression

def regression_metrics(y_true: Any, y_pred: Any) -> dict | None:
    """Valence/arousal scores on the present targets; None when none is present.

    SAGR uses numpy's sign, so 0 is its own sign: a 0 target matches only a 0 prediction.
    CCC uses population moments (ddof=0).
    """
    t, p = _present_pairs(y_true, y_pred)
    if t.size == 0:
        return None
    constant = t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0
    return {
        "n": int(t.size),
        "rmse": float(root_mean_squared_error(t, p)),
        "mae": float(mean_absolute_error(t, p)),
        # A constant truth leaves R2 undefined: NaN (null), not sklearn's stand-in 0 or 1.
        "r2": math.nan if t.size < 2 or np.ptp(t) == 0 else float(r2_score(t, p)),
        "corr": math.nan if constant else float(stats.pearsonr(t, p).statistic),
        "sagr": float(np.mean(np.sign(t) == np.sign(p))),
        "ccc": float(ccc(t, p)),
    }


def ccc(y_true: Any, y_pred: Any) -> np.ndarray:
    """Lin's concordance correlation (population moments) along the last axis, so a whole
    stack of bootstrap resamples is scored at once; NaN where both series are equal constants."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    mt, mp = t.mean(axis=-1, keepdims=True), p.mean(axis=-1, keepdims=True)
    cov = ((t - mt) * (p - mp)).mean(axis=-1)
    denom = t.var(axis=-1) + p.var(axis=-1) + (mt - mp)[..., 0] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * cov / denom, np.nan)


# --------------------------------------------------------------------------- landmarks

def landmark_nme(true: Any, pred: Any, threshold: float = NME_FAILURE_THRESHOLD) -> dict | None:
    """NME normalised by the outer-eye-corner distance: mean, median and failure rate
    (share of images above `threshold`); images without (complete) truth are skipped."""
    per_image = per_image_nme(true, pred)
    if per_image.size == 0:
        return None
    return {
        "n": int(per_image.size),
        "nme": float(per_image.mean()),
        "nme_median": float(np.median(per_image)),
        "failure_rate": float(np.mean(per_image > threshold)),
        "failure_threshold": float(threshold),
    }


def per_image_nme(true: Any, pred: Any) -> np.ndarray:
    """Mean point-to-point error over inter-ocular distance, one value per scorable image."""
    t, p = _landmark_array(true, "true"), _landmark_array(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"landmark_nme: truth {t.shape} and prediction {p.shape} differ in shape")
    iod = interocular_distance(t)
    # Rows without truth, or with both eye corners on one point, cannot be normalised.
    keep = np.isfinite(t).all(axis=(1, 2)) & (iod > 0)
    if not np.isfinite(p[keep]).all():
        raise ValueError("landmark_nme: predictions are NaN/inf where the truth is present")
    err = np.linalg.norm(t[keep] - p[keep], axis=-1).mean(axis=-1)
    return err / iod[keep]


# --------------------------------------------------------------------------- uncertainty

def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: Any,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    batched: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap interval: rows of all arrays resampled jointly, seeded.

    With batched=True, metric_fn receives arrays with a leading resample axis (n_boot, n, ...)
    and returns one value per resample, which avoids a Python loop. Resamples where the
    metric is undefined (NaN/None) are left out; (NaN, NaN) when all are.
    """
    if not 0 < ci < 1:
        raise ValueError(f"bootstrap_ci: ci must be in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"bootstrap_ci: n_boot must be at least 1, got {n_boot}")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0]) if arrays else 0
    if any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap_ci: arrays differ in length {[len(a) for a in arrays]}")
    if n == 0:
        return math.nan, math.nan
    values = []
    for idx in _resample_indices(n, n_boot, seed):
        if batched:
            out = np.asarray(metric_fn(*(a[idx] for a in arrays)), dtype=np.float64)
            values.append(out.reshape(-1))
        else:
            values.append(np.array([_f(metric_fn(*(a[i] for a in arrays))) for i in idx]))
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(v, [tail, 100 - tail])
    return float(low), float(high)


def with_confidence_intervals(
    metrics: dict | None,
    kind: str,
    *arrays: Any,
    keys: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict | None:
    """A copy of a head's metrics with `<key>_ci: [low, high]` for its headline metrics.

    kind: "expression" (arrays y_true, y_pred; metrics from classification_metrics, whose
    label_ids fix the scored classes), "regression"/"valence"/"arousal" (y_true, y_pred) or
    "landmarks" (true, pred). The same rows are scored as for the point estimates.
    """
    if metrics is None:
        return None
    kind = "regression" if kind in ("valence", "arousal") else kind
    if kind not in CI_KEYS:
        raise ConfigError(f"with_confidence_intervals: kind must be one of "
                          f"{sorted(CI_KEYS) + ['valence', 'arousal']}, got {kind!r}")
    fns, data = _batched_metrics(metrics, kind, arrays)
    out = dict(metrics)
    for key in keys if keys is not None else CI_KEYS[kind]:
        if key not in fns:
            raise ConfigError(f"with_confidence_intervals: no bootstrap for {kind} metric "
                              f"{key!r}; choose from {sorted(fns)}")
        out[f"{key}_ci"] = list(bootstrap_ci(fns[key], *data, n_boot=n_boot, ci=ci, seed=seed,
                                             batched=True))
    return out


def _batched_metrics(metrics: dict, kind: str,
                     arrays: tuple[Any, ...]) -> tuple[dict[str, Callable], tuple[np.ndarray, ...]]:
    """Per-kind metric functions over a resample axis, and the rows they resample."""
    if kind == "expression":
        labels = np.asarray(metrics["label_ids"], dtype=np.int64)
        t, p, *_ = _classification_rows(arrays[0], arrays[1], None, labels)
        return {
            "accuracy": lambda t, p: (t == p).mean(axis=-1),
            "f1_macro": lambda t, p: _f1_macro(_confusions(t, p, labels), np.arange(labels.size)),
            "kappa": lambda t, p: _kappa(_confusions(t, p, labels)),
        }, (t, p)
    if kind == "regression":
        return {
            "rmse": lambda t, p: np.sqrt(((t - p) ** 2).mean(axis=-1)),
            "mae": lambda t, p: np.abs(t - p).mean(axis=-1),
            "ccc": ccc,
            "sagr": lambda t, p: (np.sign(t) == np.sign(p)).mean(axis=-1),
        }, _present_pairs(*arrays)
    # Landmarks: resample the per-image values, not the (N, 68, 2) arrays (memory).
    return {"nme": lambda e: e.mean(axis=-1)}, (per_image_nme(*arrays),)


def _resample_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap row indices, in chunks of resamples, the same for a given seed."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_INDEX_CELLS // n)
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def _confusions(t: np.ndarray, p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(B, K, K) confusion counts, scored labels first, then every other predicted class."""
    classes = np.concatenate([labels, np.setdiff1d(np.unique(p), labels)])
    order = np.argsort(classes)
    code_t = order[np.searchsorted(classes[order], t)]
    code_p = order[np.searchsorted(classes[order], p)]
    k = classes.size
    b = t.reshape(-1, t.shape[-1]).shape[0]
    flat = (np.arange(b)[:, None] * k * k + code_t.reshape(b, -1) * k + code_p.reshape(b, -1))
    return np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)


def _f1_macro(conf: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Macro F1 over the scored classes, as sklearn with zero_division=0."""
    tp = np.diagonal(conf, axis1=1, axis2=2)[:, scored]
    denom = conf.sum(axis=2)[:, scored] + conf.sum(axis=1)[:, scored]
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    return f1.mean(axis=1)


def _kappa(conf: np.ndarray) -> np.ndarray:
    """Cohen's kappa per confusion matrix; NaN where chance agreement is total."""
    n = conf.sum(axis=(1, 2)).astype(np.float64)
    agree = np.trace(conf, axis1=1, axis2=2) / n
    chance = (conf.sum(axis=2) * conf.sum(axis=1)).sum(axis=1) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(chance < 1, (agree - chance) / (1 - chance), np.nan)


# --------------------------------------------------------------------------- whole model

def evaluate_predictions(
    table: pd.DataFrame | Mapping[str, Any],
    model: str = "model",
    *,
    data_classes: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict:
    """The metrics JSON contract for one model on one data set (see the module docstring).

    data_classes: the data set's label space in AffectNet order (e.g. 0-6 for FER-2013);
    when given with probabilities, predictions are confined to it (`restricted_to`), so a
    7-class set never sees Contempt predicted. n_boot=0 skips confidence intervals.
    """
    cols = _columns(table)
    n = _n_rows(cols)
    result: dict[str, Any] = {"model": model, "n": n}

    result["expression"] = _expression_head(cols, data_classes, label_names, n_boot, ci, seed)
    for head in ("valence", "arousal"):
        result[head] = None
        if head in cols and f"{head}_pred" in cols:
            t = np.asarray(cols[head], dtype=np.float64).reshape(-1)
            p = np.asarray(cols[f"{head}_pred"], dtype=np.float64).reshape(-1)
            result[head] = _maybe_ci(regression_metrics(t, p), head, (t, p), n_boot, ci, seed)
    result["landmarks"] = None
    if "landmarks" in cols and "landmarks_pred" in cols:
        t, p = _stack_landmarks(cols["landmarks"]), _stack_landmarks(cols["landmarks_pred"])
        result["landmarks"] = _maybe_ci(landmark_nme(t, p), "landmarks", (t, p), n_boot, ci, seed)
    return result


def json_ready(value: Any) -> Any:
    """Plain JSON types all the way down: numpy scalars/arrays unwrapped, NaN/inf -> None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [json_ready(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is pd.NA:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _expression_head(cols: dict[str, Any], data_classes: Sequence[int] | None,
                     label_names: Sequence[str] | None, n_boot: int, ci: float,
                     seed: int) -> dict | None:
    """Expression metrics (with CIs) from predicted labels and/or probabilities."""
    if "expression" not in cols:
        return None
    proba = cols.get("expression_proba")
    proba = None if proba is None else _stack_rows(proba).astype(np.float64)
    pred = cols.get("expression_pred")
    if proba is None and pred is None:
        return None
    if proba is not None and data_classes is not None:
        pred, proba = restrict_predictions(proba, data_classes)
    elif pred is None:
        pred = proba.argmax(axis=1)
    metrics = classification_metrics(cols["expression"], pred, proba, data_classes, label_names)
    if metrics is not None:
        metrics["restricted_to"] = (None if data_classes is None or proba is None else
                                    [_names(label_names, range(proba.shape[1]))[c]
                                     for c in sorted(data_classes)])
    return _maybe_ci(metrics, "expression", (cols["expression"], pred), n_boot, ci, seed)


def _maybe_ci(metrics: dict | None, kind: str, arrays: tuple, n_boot: int, ci: float,
              seed: int) -> dict | None:
    """Confidence intervals unless switched off (n_boot=0)."""
    if metrics is None or n_boot <= 0:
        return metrics
    return with_confidence_intervals(metrics, kind, *arrays, n_boot=n_boot, ci=ci, seed=seed)


# --------------------------------------------------------------------------- input shaping

def _classification_rows(y_true: Any, y_pred: Any, proba: Any,
                         labels: Sequence[int] | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, range]:
    """Rows and classes to score: truth present and in (labels present in the truth)."""
    t, p = _labels_array(y_true, "y_true"), _labels_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"classification_metrics: y_true {t.shape} and y_pred {p.shape} differ")
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != t.size:
            raise ValueError(f"classification_metrics: proba must be (n, classes) = "
                             f"({t.size}, K), got {proba.shape}")
    space = range(proba.shape[1] if proba is not None
                  else max(N_EXPRESSIONS, int(max(t.max(initial=-1), p.max(initial=-1))) + 1))
    wanted = np.asarray(space if labels is None else labels, dtype=np.int64)
    labels = np.intersect1d(wanted, t[t >= 0])
    keep = np.isin(t, labels)
    return t[keep], p[keep], None if proba is None else proba[keep], labels, space


def _ovr_auc(t: np.ndarray, proba: np.ndarray | None, labels: np.ndarray) -> dict:
    """One-vs-rest macro ROC-AUC and PR-AUC (average precision); None below two classes."""
    if proba is None or labels.size < 2:
        return {"roc_auc_ovr": None, "pr_auc_macro": None}
    roc, pr = [], []
    for c in labels:
        positive = t == c
        roc.append(roc_auc_score(positive, proba[:, c]))
        pr.append(average_precision_score(positive, proba[:, c]))
    return {"roc_auc_ovr": float(np.mean(roc)), "pr_auc_macro": float(np.mean(pr))}


def _labels_array(y: Any, what: str) -> np.ndarray:
    """Integer class labels, NaN (missing) as -1; non-integral values are refused."""
    arr = np.asarray(y).reshape(-1)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    arr = arr.astype(np.float64)
    present = np.isfinite(arr)
    if not np.all(arr[present] == np.round(arr[present])):
        raise ValueError(f"{what}: class labels must be whole numbers")
    return np.where(present, arr, -1).astype(np.int64)


def _present_pairs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Target/prediction pairs whose target is present; a NaN prediction there is a bug."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"regression_metrics: y_true {t.shape} and y_pred {p.shape} differ")
    keep = np.isfinite(t)
    if not np.isfinite(p[keep]).all():
        raise ValueError("regression_metrics: predictions are NaN/inf where the target is present")
    return t[keep], p[keep]


def _landmark_array(x: Any, what: str) -> np.ndarray:
    """(N, 68, 2) float64 from (N, 68, 2) or (N, 136) x0, y0, x1, ..."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2 * N_POINTS:
        arr = arr.reshape(-1, N_POINTS, 2)
    if arr.ndim != 3 or arr.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"landmark_nme: {what} must be (N, 68, 2) or (N, 136), got {arr.shape}")
    return arr


def _stack_rows(values: Any) -> np.ndarray:
    """A 2-D array from an array, or from a column of equal-length arrays."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values
    return np.stack([np.asarray(v, dtype=np.float64) for v in values])


def _stack_landmarks(values: Any) -> np.ndarray:
    """(N, 68, 2) with NaN rows where a table cell holds None (no landmarks)."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return _landmark_array(values, "landmarks")
    nan = np.full((N_POINTS, 2), np.nan)
    rows = [nan if v is None or (isinstance(v, float) and np.isnan(v))
            else np.asarray(v, dtype=np.float64).reshape(N_POINTS, 2) for v in values]
    return np.stack(rows) if rows else np.empty((0, N_POINTS, 2))


def _columns(table: pd.DataFrame | Mapping[str, Any]) -> dict[str, Any]:
    """Column name -> values, from a DataFrame or a mapping of arrays."""
    if isinstance(table, pd.DataFrame):
        return {str(c): table[c].to_numpy() for c in table.columns}
    return dict(table)


def _n_rows(cols: dict[str, Any]) -> int:
    """Row count, the same for every column."""
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"evaluate_predictions: columns differ in length {lengths}")
    return next(iter(lengths.values()), 0)


def _names(label_names: Sequence[str] | None, space: range) -> list[str]:
    """Class names by index: the given ones, AffectNet's, or the index itself."""
    if label_names is not None:
        return list(label_names)
    return [EXPRESSIONS[c] if c < N_EXPRESSIONS else str(c) for c in space]


def _space(name: str) -> dict[int, int]:
    """A label space by name."""
    try:
        return LABEL_SPACES[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown label space {name!r}; known: {sorted(LABEL_SPACES)}") from None


def _f(x: Any) -> float:
    """A float from a metric value, NaN for None."""
    return math.nan if x is None else float(x)
