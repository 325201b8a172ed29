"""Every metric a model is scored by, in one place (scikit-learn, SciPy, `krippendorff`), so all
heads treat missing targets alike: rows without a target (expression < 0 or NaN, valence/arousal
NaN, landmarks with any NaN, as in helpers.models.losses) are dropped, a head with nothing left
is None, and an undefined value is NaN (null in JSON), never a made-up number."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from pandas.api.types import is_scalar
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

from helpers.core.errors import ConfigError
from helpers.core.labels import EXPRESSIONS, FER_TO_AFFECTNET, N_EXPRESSIONS
from helpers.core.landmarks import N_POINTS, interocular_distance
from helpers.inference.calibration import confine

NME_FAILURE_THRESHOLD = 0.1
# Each class's scores in a metrics JSON's `expression.per_class` (and per_class_report's columns).
PER_CLASS_KEYS = ("precision", "recall", "f1", "support")
ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017
# Label spaces, each as a map into the shared AffectNet order (helpers.core.labels).
LABEL_SPACES: dict[str, dict[int, int]] = {
    "affectnet": {i: i for i in range(N_EXPRESSIONS)},
    "fer": FER_TO_AFFECTNET,
    "fer2013": FER_TO_AFFECTNET,
    "expw": FER_TO_AFFECTNET,
}


# --------------------------------------------------------------------------- classification


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    labels: Sequence[int | str] | None = None,
    label_names: Sequence[str] | None = None,
    scores: Any = None,
) -> dict | None:
    """Expression scores on the classes the model and the data share, never a made-up class.

    `labels` are class indices or names, as in y_true/y_pred (default: every class the model
    has, i.e. proba's columns, or all 8); only those also present in y_true are scored, the
    others are listed in `labels_left_out`. Rows whose truth is missing (< 0) or outside the
    scored labels are dropped (`n_dropped`). Predictions outside them stay, as errors
    (`n_pred_outside_labels`). `label_names` name classes by index (default
    helpers.core.labels.EXPRESSIONS). ROC-AUC and PR-AUC are one-vs-rest macro averages over the
    scored classes of `scores` (default proba), each class's column as it is: the predictions
    file's p_<Class> columns, so sklearn's roc_auc_score and average_precision_score on them
    give the same figures, but for None where those columns are constant but for float
    rounding (constant_proba): sklearn would rank faces by rounding. Model classes not scored
    are listed in `auc_skipped`. `confusion_matrix` counts every scored face: its classes,
    `confusion_labels`, are the scored labels and any other class predicted (a row of zeros).
    `ece` is the top-label expected calibration error of proba's top probability, the
    confidence of the class predicted (None without probabilities).
    """
    t, p, proba, labels, space = classification_rows(y_true, y_pred, proba, labels)
    names = class_names(label_names, space)
    if t.size == 0:
        return None
    n_rows = np.asarray(y_true).size
    ranked = proba if scores is None else classification_rows(y_true, y_pred, scores, labels)[2]
    auc = _ovr_auc(t, ranked, labels)
    return {
        "n": int(t.size),
        "accuracy": float(accuracy_score(t, p)),
        "f1_macro": as_float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": as_float(f1_score(t, p, labels=labels, average="weighted", zero_division=0)),
        "precision_macro": as_float(
            precision_score(t, p, labels=labels, average="macro", zero_division=0)
        ),
        "recall_macro": as_float(
            recall_score(t, p, labels=labels, average="macro", zero_division=0)
        ),
        # No `labels` here: a prediction outside them is a disagreement, not a dropped row.
        "kappa": cohen_kappa(t, p),
        "krippendorff_alpha": krippendorff_alpha(t, p),
        **auc,
        "ece": None if proba is None else expected_calibration_error(p == t, proba.max(axis=1)),
        "auc_skipped": (
            [names[c] for c in range(proba.shape[1]) if c not in labels]
            if proba is not None
            else []
        ),
        "confusion_matrix": _confusion_matrix(t, p, shown := _confusion_classes(p, labels, space)),
        "confusion_labels": [names[c] for c in shown],
        "per_class": _per_class(t, p, labels, names),
        "labels": [names[c] for c in labels],
        "label_ids": [int(c) for c in labels],
        "labels_left_out": [names[c] for c in space if c not in labels],
        "n_dropped": int(n_rows - t.size),
        "n_pred_outside_labels": int(np.count_nonzero(~np.isin(p, labels))),
    }


def per_class_report(
    y_true: Any,
    y_pred: Any,
    labels: Sequence[int | str] | None = None,
    label_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-class precision/recall/F1/support, on the same rows and classes as the summary."""
    t, p, _, labels, space = classification_rows(y_true, y_pred, None, labels)
    scores = _per_class(t, p, labels, class_names(label_names, space))
    table = pd.DataFrame.from_dict(scores, orient="index", columns=list(PER_CLASS_KEYS))
    table.index.name = "class"
    return table.astype({"support": np.int64})


def _per_class(
    t: np.ndarray, p: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each scored class, by name in label order: what
    a macro average hides (a rare class a model never predicts), kept in the metrics JSON."""
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, labels=labels, average=None, zero_division=0
    )
    return {
        names[c]: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(labels)
    }


def _confusion_classes(p: np.ndarray, labels: np.ndarray, space: range) -> np.ndarray:
    """The confusion matrix's classes: the scored labels and any other class predicted (one the
    model trained on that the test set lacks), so every scored face is in a cell."""
    return np.union1d(labels, p[(p >= space.start) & (p < space.stop)])


def _confusion_matrix(t: np.ndarray, p: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Rows true, columns predicted, over `labels` (_confusion_classes)."""
    with warnings.catch_warnings():
        # sklearn warns about a single label even when `labels` fixes the shape.
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return confusion_matrix(t, p, labels=labels).tolist()


def confusion(block: Mapping[str, Any] | None) -> tuple[list, list]:
    """(matrix, class names) of an expression metrics block, empty without one: a file from
    before `confusion_labels` has its matrix over `labels`."""
    block = block or {}
    return block.get("confusion_matrix") or [], block.get(
        "confusion_labels", block.get("labels") or []
    )


def cohen_kappa(y_true: Any, y_pred: Any) -> float:
    """sklearn's kappa over every class either side uses; NaN when only one class occurs: the
    one kappa of the metrics, their bootstrap (bootstrap._kappa) and the collapse check."""
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
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
        raise ValueError(
            f"map_label_space: labels {unknown} do not exist in the "
            f"{from_space!r} space (classes {sorted(to_shared)})"
        )
    lookup = np.full(max(to_shared) + 1, -1, dtype=np.int64)
    for src, shared in to_shared.items():
        lookup[src] = from_shared.get(shared, -1)
    return np.where(y >= 0, lookup[np.clip(y, 0, None)], -1)


def restrict_predictions(proba: Any, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of a model confined to a data set's label space (argmax over `classes`),
    with the probabilities renormalised over them; other columns become 0."""
    kept = confine(proba, classes)
    return kept.argmax(axis=1), kept


# --------------------------------------------------------------------------- regression


# One rule for "constant but for float rounding" (a saturated tanh, a collapsed softmax): outputs
# whose spread is at most this share of the scale they are read against (a regression head's
# targets' spread, a probability column's mean). float32 resolves about 1.2e-7 of a value, so
# 1e-5 leaves rounding a hundredfold margin while a weak head that still ranks faces (its
# outputs moving by 0.05 %) keeps its scores. Statistics of such outputs (correlation, sign
# agreement, AUC) measure rounding, not the model. (The health check's FLAT_REGRESSION, far
# above it, flags a head that barely varies.)
NEGLIGIBLE_SPREAD = 1e-5


def rounding_only(spread: Any, scale: Any) -> bool:
    """Whether every spread is float rounding beside its scale (the rule of NEGLIGIBLE_SPREAD)."""
    return bool(np.all(np.asarray(spread) <= NEGLIGIBLE_SPREAD * np.asarray(scale)))


def spread_ratio(y_true: Any, y_pred: Any) -> float:
    """Standard deviation of the predictions over the targets'; NaN where the targets are
    constant: the one measure of how much a regression head's outputs vary."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    spread = float(t.std()) if t.size else 0.0
    return float(p.std()) / spread if spread > 0 else math.nan


def constant_predictions(y_true: Any, y_pred: Any) -> bool:
    """Whether predictions are constant: equal, or their spread negligible beside the targets'."""
    p = np.asarray(y_pred, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0:
        return True
    ratio = spread_ratio(y_true, p)
    return not math.isnan(ratio) and rounding_only(ratio, 1.0)


def regression_metrics(y_true: Any, y_pred: Any) -> dict | None:
    """Valence/arousal scores on the present targets; None when none is present.

    SAGR uses numpy's sign, so 0 is its own sign: a 0 target matches only a 0 prediction.
    CCC uses population moments (ddof=0). Pearson's r and SAGR of constant predictions
    (constant_predictions) are missing (NaN, null in the JSON), not numbers made of rounding.
    """
    t, p = present_pairs(y_true, y_pred)
    if t.size == 0:
        return None
    flat = constant_predictions(t, p)
    constant = t.size < 2 or np.ptp(t) == 0 or flat
    return {
        "n": int(t.size),
        "rmse": float(root_mean_squared_error(t, p)),
        "mae": float(mean_absolute_error(t, p)),
        # A constant truth leaves R2 undefined: NaN (null), not sklearn's stand-in 0 or 1.
        "r2": math.nan if t.size < 2 or np.ptp(t) == 0 else float(r2_score(t, p)),
        "corr": math.nan if constant else float(stats.pearsonr(t, p).statistic),
        "sagr": math.nan if flat else float(np.mean(np.sign(t) == np.sign(p))),
        "ccc": float(ccc(t, p)),
        "constant": flat,  # why corr and SAGR are null (undefined_notes)
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


def mean_shape_nme(true: Any, sizes: Any | None = None) -> float | None:
    """NME of always predicting these faces' average shape (in fractions of each image's width
    and height when `sizes` (N, 2) is given): what a landmark head must beat to have learned
    anything from the pixels. None without scorable truth."""
    t = landmark_array(true, "true")
    scale = np.ones((len(t), 1, 2)) if sizes is None else np.asarray(sizes, np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = t / scale
    present = np.isfinite(fractions).all(axis=(1, 2))
    if not present.any():
        return None
    guess = np.where(present[:, None, None], fractions[present].mean(axis=0) * scale, np.nan)
    per_image = per_image_nme(np.where(present[:, None, None], t, np.nan), guess)
    return float(per_image.mean()) if per_image.size else None


def per_image_nme(true: Any, pred: Any) -> np.ndarray:
    """Mean point-to-point error over inter-ocular distance, one value per scorable image."""
    t, p = landmark_array(true, "true"), landmark_array(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"landmark_nme: truth {t.shape} and prediction {p.shape} differ in shape")
    iod, keep = _normalisable(t)
    if not np.isfinite(p[keep]).all():
        raise ValueError("landmark_nme: predictions are NaN/inf where the truth is present")
    err = np.linalg.norm(t[keep] - p[keep], axis=-1).mean(axis=-1)
    return err / iod[keep]


# --------------------------------------------------------------------------- input shaping


def classification_rows(
    y_true: Any, y_pred: Any, proba: Any, labels: Sequence[int | str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, range]:
    """Rows and classes to score: truth present and in (labels present in the truth)."""
    t, p = _labels_array(y_true, "y_true"), _labels_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"classification_metrics: y_true {t.shape} and y_pred {p.shape} differ")
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != t.size:
            raise ValueError(
                f"classification_metrics: proba must be (n, classes) = "
                f"({t.size}, K), got {proba.shape}"
            )
    space = range(
        proba.shape[1]
        if proba is not None
        else max(N_EXPRESSIONS, int(max(t.max(initial=-1), p.max(initial=-1))) + 1)
    )
    labels, keep = _scored_classes(t, space if labels is None else labels)
    return t[keep], p[keep], None if proba is None else proba[keep], labels, space


def _scored_classes(t: np.ndarray, wanted: Any) -> tuple[np.ndarray, np.ndarray]:
    """The classes scored (those wanted that the truth holds) and the rows whose truth is one;
    `wanted` names classes as y_true may, so an unknown name is refused by name."""
    labels = np.intersect1d(_labels_array(list(wanted), "labels"), t[t >= 0])
    return labels, np.isin(t, labels)


def _normalisable(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inter-ocular distances, and the faces with truth whose eye corners are apart: the others
    cannot be normalised."""
    iod = interocular_distance(t)
    return iod, np.isfinite(t).all(axis=(1, 2)) & (iod > 0)


def scored_rows(kind: str, arrays: tuple[Any, ...], labels: Sequence[int | str] | None = None
                ) -> np.ndarray:  # fmt: skip
    """Which input rows a head's metrics score (truth present; for expression, in `labels`;
    for landmarks, eyes apart), as a mask: the rows a grouped bootstrap draws groups of."""
    if kind == "expression":
        t = _labels_array(arrays[0], "y_true")
        return _scored_classes(t, labels if labels is not None else np.unique(t[t >= 0]))[1]
    if kind == "landmarks":
        return _normalisable(landmark_array(arrays[0], "true"))[1]
    return np.isfinite(np.asarray(arrays[0], dtype=np.float64).reshape(-1))  # present_pairs


def constant_proba(proba: Any, classes: Sequence[int]) -> bool:
    """Whether every column of `classes` is constant across the rows but for float rounding:
    its spread at most NEGLIGIBLE_SPREAD of its mean (rounding_only; a collapsed head varies by
    ~1e-7 of it)."""
    p = np.asarray(proba, dtype=np.float64)[:, list(classes)]
    if p.shape[0] < 2:
        return False
    spread, level = p.std(axis=0), np.abs(p.mean(axis=0))
    return rounding_only(spread, level)


def _ovr_auc(t: np.ndarray, proba: np.ndarray | None, labels: np.ndarray) -> dict:
    """One-vs-rest macro ROC-AUC and PR-AUC (average precision); None without probabilities,
    below two classes or for probabilities constant but for rounding (`constant_proba`, the
    one of these undefined_notes explains)."""
    constant = proba is not None and labels.size > 1 and constant_proba(proba, labels)
    if proba is None or labels.size < 2 or constant:
        return {"roc_auc_ovr": None, "pr_auc_macro": None, "constant_proba": constant}
    roc, pr = [], []
    for c in labels:
        positive = t == c
        roc.append(roc_auc_score(positive, proba[:, c]))
        pr.append(average_precision_score(positive, proba[:, c]))
    return {
        "roc_auc_ovr": float(np.mean(roc)),
        "pr_auc_macro": float(np.mean(pr)),
        "constant_proba": False,
    }


def undefined_notes(result: Mapping[str, Any]) -> list[str]:
    """Why a statistic is null in a metrics dict: a head whose outputs are constant but for float
    rounding (metrics.constant_proba, constant_predictions) has no AUC, correlation or SAGR,
    which would measure rounding; said in `notes` so that a null is not read as a failure."""
    out = []
    expression = result.get("expression") or {}
    # Files without `constant_proba` had probabilities when they had an ECE.
    constant = expression.get("constant_proba", expression.get("ece") is not None)
    if (
        len(expression.get("labels") or []) > 1
        and expression.get("roc_auc_ovr") is None
        and constant
    ):
        out.append(
            "expression: the class probabilities are the same for every face but for float "
            "rounding, so ROC-AUC and PR-AUC are null (they would rank faces by rounding)"
        )
    for head in ("valence", "arousal"):
        block = result.get(head) or {}
        sagr = block.get("sagr", 0.0)
        # Files without `constant` had a null SAGR only for a constant head.
        if block and block.get(
            "constant", sagr is None or (isinstance(sagr, float) and math.isnan(sagr))
        ):
            out.append(
                f"{head}: the predictions are the same for every face but for float rounding, "
                "so Pearson r and SAGR are null"
            )
    return out


def expected_calibration_error(correct: Any, confidence: Any, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE, by hand: sklearn's calibration_curve is binary-only, without bin weights."""
    bins = reliability_bins(correct, confidence, n_bins, caller="expected_calibration_error")
    n = int(bins["count"].sum())
    if n == 0:
        return math.nan
    filled = bins[bins["count"] > 0]
    gaps = (filled["accuracy"] - filled["confidence"]).abs()
    return float((filled["count"] / n * gaps).sum())


def reliability_bins(
    correct: Any, confidence: Any, n_bins: int = ECE_BINS, caller: str = "reliability_bins"
) -> pd.DataFrame:
    """Count, accuracy, mean confidence per (low, high] bin: the data of ECE and its diagram;
    a bad argument is a ConfigError naming `caller`, the function the user called."""
    hit = np.asarray(correct, dtype=bool).reshape(-1)
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    if hit.shape != conf.shape:
        raise ConfigError(f"{caller}: correct {hit.shape} and confidence {conf.shape} differ")
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ConfigError(f"{caller}: n_bins must be an integer >= 1, got {n_bins!r}")
    bad = conf[~((conf > -1e-6) & (conf < 1 + 1e-6))]  # NaN refused too
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:3]) + (
            f" and {bad.size - 3} more" if bad.size > 3 else ""
        )
        raise ConfigError(f"{caller}: confidences must be in [0, 1], got {shown}")
    conf = np.clip(conf, 0.0, 1.0)  # float32 softmax rounding
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are right-closed, as in Guo et al.: 1.0 lands in the last one, 0 in the first.
    index = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.bincount(index, weights=hit, minlength=n_bins) / count
        mean_conf = np.bincount(index, weights=conf, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "count": count.astype(np.int64),
            "accuracy": accuracy,
            "confidence": mean_conf,
        }
    )


def _labels_array(y: Any, what: str) -> np.ndarray:
    """Integer class labels, NaN (missing) as -1; class names (helpers.core.labels.EXPRESSIONS;
    None, NaN or pandas' NA for a missing one) as their indices; non-integral values are
    refused."""
    arr = np.asarray(y).reshape(-1)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind in "USO" and any(isinstance(v, str) for v in arr.tolist()):
        values = arr.tolist()
        missing = [not isinstance(v, str) and is_scalar(v) and bool(pd.isna(v)) for v in values]
        unknown = sorted(
            {str(v) for v, gone in zip(values, missing, strict=True) if not gone} - set(EXPRESSIONS)
        )
        if unknown:
            raise ConfigError(
                f"{what}: class labels must be indices or names among {', '.join(EXPRESSIONS)}; "
                f"got {', '.join(map(repr, unknown[:3]))}"
            )
        return np.array(
            [-1 if gone else EXPRESSIONS.index(v) for v, gone in zip(values, missing, strict=True)]
        )
    arr = arr.astype(np.float64)
    present = np.isfinite(arr)
    if not np.all(arr[present] == np.round(arr[present])):
        raise ValueError(f"{what}: class labels must be whole numbers")
    return np.where(present, arr, -1).astype(np.int64)


def present_pairs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Target/prediction pairs whose target is present; a NaN prediction there is a bug."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"regression_metrics: y_true {t.shape} and y_pred {p.shape} differ")
    keep = np.isfinite(t)
    if not np.isfinite(p[keep]).all():
        raise ValueError("regression_metrics: predictions are NaN/inf where the target is present")
    return t[keep], p[keep]


def image_sizes(cols: Mapping[str, Any]) -> np.ndarray | None:
    """(N, 2) width and height of each stored image, where a prediction table has them."""
    if "width" not in cols or "height" not in cols:
        return None
    return np.stack([np.asarray(cols[c], dtype=np.float64) for c in ("width", "height")], axis=1)


def stack_landmarks(values: Any) -> np.ndarray:
    """(N, 68, 2) with NaN rows where a table cell holds None (no landmarks)."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return landmark_array(values, "landmarks")
    nan = np.full((N_POINTS, 2), np.nan)
    rows = [
        nan
        if v is None or (isinstance(v, float) and np.isnan(v))
        else np.asarray(v, dtype=np.float64).reshape(N_POINTS, 2)
        for v in values
    ]
    return np.stack(rows) if rows else np.empty((0, N_POINTS, 2))


def landmark_array(x: Any, what: str) -> np.ndarray:
    """(N, 68, 2) float64 from (N, 68, 2) or (N, 136) x0, y0, x1, ..."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2 * N_POINTS:
        arr = arr.reshape(-1, N_POINTS, 2)
    if arr.ndim != 3 or arr.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"landmark_nme: {what} must be (N, 68, 2) or (N, 136), got {arr.shape}")
    return arr


def class_names(label_names: Sequence[str] | None, space: range) -> list[str]:
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


def as_float(x: Any) -> float:
    """A float from a metric value, NaN for None."""
    return math.nan if x is None else float(x)
