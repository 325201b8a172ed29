"""Confidence intervals for the headline metrics: a seeded percentile bootstrap over images,
vectorised across resamples (no Python loop per resample), so intervals stay cheap on large
test sets and each one can be reproduced from its seed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from helpers.core.errors import ConfigError
from helpers.core.groups import group_codes
from helpers.evaluation.metrics import (
    as_float,
    ccc,
    classification_rows,
    per_image_nme,
    present_pairs,
    scored_rows,
)

# The headline metrics that get a bootstrap confidence interval, per kind of head.
CI_KEYS: dict[str, tuple[str, ...]] = {
    "expression": ("accuracy", "f1_macro", "kappa"),
    "regression": ("ccc", "rmse"),
    "landmarks": ("nme",),
}
# Cap on resampled index cells held at once (n_boot x n), so large test sets stay in memory.
_MAX_INDEX_CELLS = 1 << 22


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: Any,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    batched: bool = False,
    groups: Any = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval: rows of all arrays resampled jointly, seeded.

    With batched=True, metric_fn receives arrays with a leading resample axis (n_boot, n, ...)
    and returns one value per resample, which avoids a Python loop. Resamples where the
    metric is undefined (NaN/None) are left out; (NaN, NaN) when all are. groups (one label per
    row): whole groups are drawn (a cluster bootstrap), so rows that are alike (one person's
    faces) do not count as independent evidence.
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
    if groups is not None and len(groups) != n:
        raise ValueError(f"bootstrap_ci: {len(groups)} group labels for {n} rows")
    values = []
    for idx in _resample_indices(n, n_boot, seed, groups):
        if batched:
            out = np.asarray(metric_fn(*(a[idx] for a in arrays)), dtype=np.float64)
            values.append(out.reshape(-1))
        else:
            values.append(np.array([as_float(metric_fn(*(a[i] for a in arrays))) for i in idx]))
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
    groups: Any = None,
) -> dict | None:
    """A copy of a head's metrics with `<key>_ci: [low, high]` for its headline metrics.

    kind: "expression" (arrays y_true, y_pred; metrics from classification_metrics, whose
    label_ids fix the scored classes), "regression"/"valence"/"arousal" (y_true, y_pred) or
    "landmarks" (true, pred). The same rows are scored as for the point estimates. groups: one
    label per row of the arrays, to draw whole groups (bootstrap_ci).
    """
    if metrics is None:
        return None
    kind = "regression" if kind in ("valence", "arousal") else kind
    if kind not in CI_KEYS:
        raise ConfigError(
            f"with_confidence_intervals: kind must be one of "
            f"{[*sorted(CI_KEYS), 'valence', 'arousal']}, got {kind!r}"
        )
    fns, data = _batched_metrics(metrics, kind, arrays)
    if groups is not None:
        labels = metrics.get("label_ids") if kind == "expression" else None
        if len(groups) != len(arrays[0]):
            raise ValueError(f"{len(groups)} group labels for {len(arrays[0])} rows")
        groups = np.asarray(groups, dtype=object)[scored_rows(kind, arrays, labels)]
    out = dict(metrics)
    for key in keys if keys is not None else CI_KEYS[kind]:
        if key not in fns:
            raise ConfigError(
                f"with_confidence_intervals: no bootstrap for {kind} metric "
                f"{key!r}; choose from {sorted(fns)}"
            )
        out[f"{key}_ci"] = list(
            bootstrap_ci(
                fns[key], *data, n_boot=n_boot, ci=ci, seed=seed, batched=True, groups=groups
            )
        )
    return out


def paired_difference(
    kind: str,
    key: str,
    a: tuple[Any, ...],
    b: tuple[Any, ...],
    *,
    label_ids: Sequence[int] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    groups: Any = None,
) -> dict[str, Any]:
    """Metric `key` of model a minus model b on the same images, with a paired percentile
    bootstrap: each resample draws the images once for both models, so the faces both find
    hard cancel out of the interval of the difference, which two separate intervals cannot
    show (they overlap long after one model is reliably ahead).

    a, b: the arrays `with_confidence_intervals` takes for `kind` (truth first), over the same
    rows in the same order; label_ids: the scored classes (expression). Returns the
    difference, its interval `ci` and `p_value`, the share of resamples on the far side of
    zero, doubled (two-sided; 0 means none of n_boot), and `n`, the images compared. groups:
    one label per row, to draw whole groups (a person's faces) as bootstrap_ci does.
    """
    kind = "regression" if kind in ("valence", "arousal") else kind
    if kind not in CI_KEYS:
        raise ConfigError(f"paired_difference: kind must be one of {sorted(CI_KEYS)}, got {kind!r}")
    if not 0 < ci < 1 or n_boot < 1:
        raise ValueError(f"paired_difference: need 0 < ci < 1 and n_boot >= 1, got {ci}, {n_boot}")
    if len(a) != len(b) or any(np.shape(x) != np.shape(y) for x, y in zip(a, b, strict=True)):
        raise ValueError("paired_difference: the two models' arrays differ in shape")
    if not np.array_equal(np.asarray(a[0]), np.asarray(b[0]), equal_nan=True):
        raise ValueError("paired_difference: the two models were scored on different truths")
    if kind == "expression" and label_ids is None:
        raise ConfigError("paired_difference: expression needs label_ids, the scored classes")
    metrics = {"label_ids": list(label_ids or [])}
    fns, data_a = _batched_metrics(metrics, kind, a)
    _, data_b = _batched_metrics(metrics, kind, b)
    if key not in fns:
        raise ConfigError(f"paired_difference: no {kind} metric {key!r}; choose from {sorted(fns)}")
    fn, n = fns[key], len(data_a[0])
    if n == 0 or any(len(x) != n for x in data_b):
        return {"difference": math.nan, "ci": [math.nan, math.nan], "p_value": math.nan, "n": n}
    if groups is not None:
        if len(groups) != len(a[0]):
            raise ValueError(f"paired_difference: {len(groups)} group labels for {len(a[0])} rows")
        keep = scored_rows(kind, a, metrics["label_ids"] or None)
        groups = np.asarray(groups, dtype=object)[keep]
    whole = np.arange(n)[None]
    point = float(fn(*(x[whole] for x in data_a))[0] - fn(*(x[whole] for x in data_b))[0])
    diffs = np.concatenate(
        [
            np.asarray(fn(*(x[idx] for x in data_a)) - fn(*(x[idx] for x in data_b)), float)
            for idx in _resample_indices(n, n_boot, seed, groups)
        ]
    )
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return {"difference": point, "ci": [math.nan, math.nan], "p_value": math.nan, "n": n}
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    p_value = min(1.0, 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    return {"difference": point, "ci": [float(low), float(high)], "p_value": p_value, "n": n}


def _batched_metrics(
    metrics: dict, kind: str, arrays: tuple[Any, ...]
) -> tuple[dict[str, Callable], tuple[np.ndarray, ...]]:
    """Per-kind metric functions over a resample axis, and the rows they resample."""
    if kind == "expression":
        labels = np.asarray(metrics["label_ids"], dtype=np.int64)
        t, p, *_ = classification_rows(arrays[0], arrays[1], None, labels)
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
        }, present_pairs(*arrays)
    # Landmarks: resample the per-image values, not the (N, 68, 2) arrays (memory).
    return {"nme": lambda e: e.mean(axis=-1)}, (per_image_nme(*arrays),)


def _resample_indices(n: int, n_boot: int, seed: int, groups: Any = None) -> Iterator[np.ndarray]:
    """Bootstrap row indices, in chunks of resamples, the same for a given seed; with groups,
    one resample at a time of whole groups drawn with replacement (its length varies). Groups
    that are each one row, or one group for all (no spread over groups to draw: every resample
    would be the same), resample rows."""
    rng = np.random.default_rng(seed)
    codes = None if groups is None else group_codes(groups)
    if codes is None or codes.max(initial=0) + 1 in (1, n):
        chunk = max(1, _MAX_INDEX_CELLS // n)
        for start in range(0, n_boot, chunk):
            yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        return
    order = np.argsort(codes, kind="stable")  # rows of group g: order[starts[g]:+sizes[g]]
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    for _ in range(n_boot):
        drawn = rng.integers(0, sizes.size, size=sizes.size)
        counts = sizes[drawn]
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        yield order[np.repeat(starts[drawn], counts) + within][None]


def _confusions(t: np.ndarray, p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(B, K, K) confusion counts, scored labels first, then every other predicted class."""
    classes = np.concatenate([labels, np.setdiff1d(np.unique(p), labels)])
    order = np.argsort(classes)
    code_t = order[np.searchsorted(classes[order], t)]
    code_p = order[np.searchsorted(classes[order], p)]
    k = classes.size
    b = t.reshape(-1, t.shape[-1]).shape[0]
    flat = np.arange(b)[:, None] * k * k + code_t.reshape(b, -1) * k + code_p.reshape(b, -1)
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
