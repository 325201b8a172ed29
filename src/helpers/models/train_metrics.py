"""What Keras reports each epoch: per-head accuracy, RMSE and CCC that skip missing labels, as the
losses do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from helpers.core.labels import HEADS, check_heads
from helpers.models.losses import EPS, flat, is_soft, present, weights_like


@keras.saving.register_keras_serializable(package="helpers")
class MaskedAccuracy(keras.metrics.Metric):
    """Expression accuracy over labelled samples only; NaN when the epoch had none."""

    def __init__(self, name: str = "accuracy", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate hits among present labels (a soft target's label: its largest share)."""
        if is_soft(y_true, int(y_pred.shape[-1])):
            shares = ops.cast(y_true, "float32")
            labels = ops.where(
                ops.sum(shares, axis=-1) > 0, ops.cast(ops.argmax(shares, axis=-1), "int32"), -1
            )
        else:
            labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        present = ops.cast(labels >= 0, "float32") * flat(weights_like(sample_weight, flat(labels)))
        hits = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), labels), "float32")
        self.correct.assign_add(ops.sum(hits * present))
        self.count.assign_add(ops.sum(present))

    def result(self) -> Any:
        """NaN rather than a made-up number when nothing was labelled."""
        return ops.where(self.count > 0, self.correct / ops.maximum(self.count, EPS), float("nan"))


@keras.saving.register_keras_serializable(package="helpers")
class MaskedRMSE(keras.metrics.Metric):
    """RMSE over non-NaN targets, accumulated over the epoch; NaN when there were none."""

    def __init__(self, name: str = "rmse", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.sse = self.add_variable((), initializer="zeros", name="sse")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate squared errors of present targets."""
        target, mask = present(flat(y_true))
        mask = mask * weights_like(sample_weight, target)
        self.sse.assign_add(ops.sum(mask * (flat(y_pred) - target) ** 2))
        self.count.assign_add(ops.sum(mask))

    def result(self) -> Any:
        """sqrt(mean squared error) over everything seen."""
        return ops.where(
            self.count > 0, ops.sqrt(self.sse / ops.maximum(self.count, EPS)), float("nan")
        )


@keras.saving.register_keras_serializable(package="helpers")
class MaskedCCC(keras.metrics.Metric):
    """Epoch-level CCC (population moments) over non-NaN targets; NaN when there were none."""

    def __init__(self, name: str = "ccc", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.sums = self.add_variable((6,), initializer="zeros", name="sums")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate n, sums and cross sums: the epoch CCC is not a mean of batch CCCs."""
        t, mask = present(flat(y_true))
        w = mask * weights_like(sample_weight, t)
        p = ops.where(mask > 0, flat(y_pred), 0.0)
        self.sums.assign_add(
            ops.stack(
                [
                    ops.sum(w),
                    ops.sum(w * t),
                    ops.sum(w * p),
                    ops.sum(w * t * t),
                    ops.sum(w * p * p),
                    ops.sum(w * t * p),
                ]
            )
        )

    def result(self) -> Any:
        """CCC from the accumulated moments."""
        n, st, sp, stt, spp, stp = (self.sums[i] for i in range(6))
        safe_n = ops.maximum(n, EPS)
        mt, mp = st / safe_n, sp / safe_n
        var_t, var_p, cov = stt / safe_n - mt**2, spp / safe_n - mp**2, stp / safe_n - mt * mp
        ccc = 2.0 * cov / (var_t + var_p + (mt - mp) ** 2 + EPS)
        return ops.where(n > 0, ccc, float("nan"))


def build_metrics(heads: Any = HEADS) -> dict[str, list[keras.metrics.Metric]]:
    """Masked progress metrics per head (model.compile metrics); landmarks get none here."""
    heads = check_heads(heads)
    make: dict[str, Callable[[], list[keras.metrics.Metric]]] = {
        "expression": lambda: [MaskedAccuracy()],
        "valence": lambda: [MaskedRMSE(), MaskedCCC()],
        "arousal": lambda: [MaskedRMSE(), MaskedCCC()],
        "landmarks": lambda: [],
    }
    return {h: metrics for h in heads if (metrics := make[h]())}
