"""Masked multi-task losses: missing targets are skipped, never faked.

Conventions for missing targets: expression = -1, valence/arousal = NaN, landmarks = NaN
(a face without landmarks is a row of 136 NaNs). Every loss is the mean over the present targets
of the batch and exactly 0 (with finite gradients) when the batch has none, so a dataset without
valence still trains the expression head. Written with keras.ops: graph mode, any backend,
mixed precision (predictions are cast to float32).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from helpers.core.errors import ConfigError
from helpers.core.labels import HEADS, check_heads

VA_LOSSES = ("mse", "ccc")
LANDMARK_LOSSES = ("mse", "l1", "wing")
# Landmark errors are in image fractions (MSE ~1e-3 once trained) against a cross-entropy of
# ~1-2, so landmarks get a larger default weight to matter at all. In minutes of training from
# scratch even 10 left every main-job model at the faces' average shape: the `cpu` profile
# weighs them at 50 (custom CNN) and 300 (the ImageNet architectures; benchmarks/RESULTS.md).
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "expression": 1.0,
    "valence": 1.0,
    "arousal": 1.0,
    "landmarks": 10.0,
}
EPS = 1e-7


def present(y_true: Any) -> tuple[Any, Any]:
    """NaN-free targets and a 0/1 mask; NaNs are replaced BEFORE any arithmetic so that
    gradients through the masked-out entries are 0, not NaN."""
    y_true = ops.cast(y_true, "float32")
    mask = ops.logical_not(ops.isnan(y_true))
    return ops.where(mask, y_true, ops.zeros_like(y_true)), ops.cast(mask, "float32")


def weights_like(sample_weight: Any, like: Any) -> Any:
    """Per-sample weights broadcast to the target's shape (ones when none are given)."""
    if sample_weight is None:
        return ops.ones_like(like)
    w = ops.cast(sample_weight, "float32")
    w = ops.reshape(w, (-1,) + (1,) * (len(like.shape) - 1))
    return ops.broadcast_to(w, ops.shape(like))


def is_soft(y_true: Any, n_classes: int) -> bool:
    """Expression targets as class shares [B, n_classes] rather than indices [B] or [B, 1]."""
    shape = tuple(y_true.shape)
    return len(shape) == 2 and shape[-1] == n_classes and n_classes > 1


def _masked_mean(values: Any, mask: Any, weights: Any) -> Any:
    """Keras' sum_over_batch_size, counted over the present targets only; 0 when none."""
    return ops.sum(values * mask * weights) / ops.maximum(ops.sum(mask), 1.0)


def flat(x: Any) -> Any:
    """(B,) and (B, 1) both become (B,): avoids a silent (B, B) broadcast."""
    return ops.reshape(ops.cast(x, "float32"), (-1,))


def _ccc(t: Any, p: Any, w: Any) -> tuple[Any, Any]:
    """Concordance correlation with (weighted) population moments, and the weight total."""
    n = ops.sum(w)
    safe_n = ops.maximum(n, EPS)
    mean_t, mean_p = ops.sum(w * t) / safe_n, ops.sum(w * p) / safe_n
    var_t = ops.sum(w * (t - mean_t) ** 2) / safe_n
    var_p = ops.sum(w * (p - mean_p) ** 2) / safe_n
    cov = ops.sum(w * (t - mean_t) * (p - mean_p)) / safe_n
    return 2.0 * cov / (var_t + var_p + (mean_t - mean_p) ** 2 + EPS), n


class _MaskedLoss(keras.losses.Loss):
    """Base: subclasses return (values, mask) per target; the masked reduction is shared."""

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Reduce over present targets ourselves: Keras' reduction would divide by the batch."""
        return self.call(y_true, y_pred, sample_weight)

    def call(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Mean of the per-target loss over the present targets."""
        values, mask = self.elementwise(y_true, y_pred)
        return _masked_mean(values, mask, weights_like(sample_weight, values))


@keras.saving.register_keras_serializable(package="helpers")
class MaskedSparseCategoricalCrossentropy(_MaskedLoss):
    """Cross-entropy on integer labels; label -1 (or any negative) means 'no label'."""

    def __init__(
        self,
        label_smoothing: float = 0.0,
        n_classes: int = 8,
        name: str = "masked_sparse_categorical_crossentropy",
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing, self.n_classes = float(label_smoothing), int(n_classes)

    def elementwise(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        """Per-sample cross-entropy with smoothed one-hot targets, or with soft targets
        [B, n_classes] (blended batches: helpers.data.mixing), a row of zeros = no label."""
        if is_soft(y_true, self.n_classes):
            onehot = ops.cast(y_true, "float32")
            present = ops.sum(onehot, axis=-1) > 0
        else:
            labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            present = labels >= 0
            onehot = ops.one_hot(ops.where(present, labels, 0), self.n_classes)
        onehot = onehot * (1.0 - self.label_smoothing) + self.label_smoothing / self.n_classes
        probs = ops.clip(ops.cast(y_pred, "float32"), EPS, 1.0)
        return -ops.sum(onehot * ops.log(probs), axis=-1), ops.cast(present, "float32")

    def get_config(self) -> dict:
        """Smoothing and class count survive model.save / load."""
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "n_classes": self.n_classes,
        }


@keras.saving.register_keras_serializable(package="helpers")
class MaskedMSE(_MaskedLoss):
    """Squared error over the non-NaN targets (valence, arousal)."""

    def __init__(self, name: str = "masked_mse", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def elementwise(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        """Per-sample squared error."""
        target, mask = present(flat(y_true))
        return (flat(y_pred) - target) ** 2, mask


@keras.saving.register_keras_serializable(package="helpers")
class MaskedCCCLoss(_MaskedLoss):
    """1 - CCC over the present targets: rewards tracking the spread, not just the mean."""

    def __init__(self, name: str = "masked_ccc_loss", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Batch-level statistic, so no per-sample values: weights enter the moments."""
        target, mask = present(flat(y_true))
        pred = flat(y_pred)
        ccc, n = _ccc(target, pred, mask * weights_like(sample_weight, pred))
        return ops.where(n > 0, 1.0 - ccc, 0.0)


@keras.saving.register_keras_serializable(package="helpers")
class MaskedLandmarkLoss(_MaskedLoss):
    """MSE, L1 or wing loss over the present normalised coordinates (x/W, y/H).

    Wing (Feng et al. 2018) uses w=0.1, epsilon=0.02 by default: the paper's 10 and 2 pixels
    expressed as fractions of a ~100 px face, since coordinates here are normalised.
    """

    def __init__(
        self,
        kind: str = "mse",
        wing_w: float = 0.1,
        wing_epsilon: float = 0.02,
        name: str | None = None,
        **kwargs: Any,
    ):
        if kind not in LANDMARK_LOSSES:
            raise ConfigError(f"landmark loss must be one of {LANDMARK_LOSSES}, got {kind!r}")
        super().__init__(name=name or f"masked_landmark_{kind}", **kwargs)
        self.kind, self.wing_w, self.wing_epsilon = kind, float(wing_w), float(wing_epsilon)

    def elementwise(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        """Per-coordinate error; shape (B, 136)."""
        target, mask = present(y_true)
        diff = ops.abs(ops.cast(y_pred, "float32") - target)
        if self.kind == "mse":
            return diff**2, mask
        if self.kind == "l1":
            return diff, mask
        w, eps = self.wing_w, self.wing_epsilon
        c = w - w * math.log(1.0 + w / eps)
        return ops.where(diff < w, w * ops.log(1.0 + diff / eps), diff - c), mask

    def get_config(self) -> dict:
        """Kind and wing parameters survive model.save / load."""
        return {
            **super().get_config(),
            "kind": self.kind,
            "wing_w": self.wing_w,
            "wing_epsilon": self.wing_epsilon,
        }


def masked_sparse_categorical_crossentropy(
    label_smoothing: float = 0.0, n_classes: int = 8
) -> keras.losses.Loss:
    """Expression loss that ignores label -1."""
    return MaskedSparseCategoricalCrossentropy(label_smoothing, n_classes)


def masked_mse() -> keras.losses.Loss:
    """Valence/arousal loss that ignores NaN."""
    return MaskedMSE()


def masked_ccc_loss() -> keras.losses.Loss:
    """Valence/arousal loss 1 - CCC that ignores NaN (the AffectNet/AFEW-VA headline metric)."""
    return MaskedCCCLoss()


def masked_landmark_loss(kind: str = "mse") -> keras.losses.Loss:
    """Landmark loss on normalised coordinates that ignores NaN rows."""
    return MaskedLandmarkLoss(kind)


def build_losses(
    heads: Any = HEADS,
    va_loss: str = "mse",
    label_smoothing: float = 0.0,
    landmark_loss: str = "mse",
    n_classes: int = 8,
) -> dict[str, keras.losses.Loss]:
    """One masked loss per head, keyed like the model's output dict (for model.compile)."""
    heads = check_heads(heads)
    if va_loss not in VA_LOSSES:
        raise ConfigError(f"va_loss must be one of {VA_LOSSES}, got {va_loss!r}")
    if landmark_loss not in LANDMARK_LOSSES:
        raise ConfigError(f"landmark_loss must be one of {LANDMARK_LOSSES}, got {landmark_loss!r}")
    make = {
        "expression": lambda: masked_sparse_categorical_crossentropy(label_smoothing, n_classes),
        "valence": masked_mse if va_loss == "mse" else masked_ccc_loss,
        "arousal": masked_mse if va_loss == "mse" else masked_ccc_loss,
        "landmarks": lambda: masked_landmark_loss(landmark_loss),
    }
    return {h: make[h]() for h in heads}


def default_loss_weights(
    heads: Any = HEADS, overrides: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Per-head loss weights (model.compile loss_weights), defaults balanced for scale."""
    heads = check_heads(heads)
    overrides = dict(overrides or {})
    stray = [h for h in overrides if h not in heads]
    if stray:
        raise ConfigError(
            f"loss weight overrides for heads not in the model: {stray}; heads: {', '.join(heads)}"
        )
    weights = {h: float(overrides.get(h, DEFAULT_LOSS_WEIGHTS[h])) for h in heads}
    bad = {h: w for h, w in weights.items() if not (w >= 0.0 and math.isfinite(w))}
    if bad:
        raise ConfigError(f"loss weights must be finite and >= 0, got {bad}")
    return weights


# --------------------------------------------------------------------------- metrics
