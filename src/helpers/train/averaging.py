"""Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights the last part of
a training passes through, with BatchNorm's statistics recomputed for it, kept when validation
prefers it to the best single epoch.

Keras has an exponential moving average (`use_ema`) but no equal-weight average over chosen
epochs, and neither recomputes BatchNorm's moving statistics, which follow the trained weights,
not their average; so both parts are written here.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

# Training batches whose statistics BatchNorm averages for the averaged weights: 8,192 faces
# at batch 64, as many as measured exact enough (benchmarks/RESULTS.md, "precise BN").
RECOMPUTE_BATCHES = 128


class WeightAverage(keras.callbacks.Callback):
    """A running mean of the trainable weights at the end of each epoch from `start` of the
    training on (`position()` is how far through it is, 0 to 1: the schedule's own measure).

    Kept in `path` (a .npz) after every epoch, so a resumed run goes on with the mean it had;
    a file from another epoch than the one the run resumes after is ignored.
    """

    def __init__(
        self,
        start: float,
        position: Callable[[], float],
        path: str | os.PathLike | None = None,
        resumed_after: int | None = None,
    ):
        super().__init__()
        self.start, self.position = start, position
        self.path = Path(path) if path is not None else None
        self.mean: list[np.ndarray] = []
        self.epochs: list[int] = []  # 0-based, the epochs averaged
        if self.path is not None and resumed_after is not None and self.path.is_file():
            self._load(resumed_after)

    @property
    def count(self) -> int:
        """How many epochs' weights the mean holds."""
        return len(self.epochs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.position() < self.start:
            return
        # float32, as the variables are kept (mixed precision too): the file a resume reads is
        # the weights' own size, rewritten each epoch like the backup's.
        weights = [np.asarray(keras.ops.convert_to_numpy(v), np.float32) for v in self._variables()]
        n = self.count
        if not n:
            self.mean = weights
        else:
            self.mean = [m + (w - m) / (n + 1) for m, w in zip(self.mean, weights, strict=True)]
        self.epochs.append(int(epoch))
        self._save()

    def apply(self, model: keras.Model | None = None) -> None:
        """Set the model's trainable weights to the mean."""
        variables = self._variables(model)
        for variable, value in zip(variables, self.mean, strict=True):
            variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))

    def _variables(self, model: keras.Model | None = None) -> list[Any]:
        return list((model or self.model).trainable_variables)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": m for i, m in enumerate(self.mean)}
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, epochs=np.asarray(self.epochs, np.int64), **arrays)
        tmp.replace(self.path)

    def _load(self, resumed_after: int) -> None:
        with np.load(self.path, allow_pickle=False) as data:
            epochs = [int(e) for e in data["epochs"]]
            if not epochs or epochs[-1] != resumed_after:
                return
            self.epochs = epochs
            self.mean = [data[f"w{i}"] for i in range(len(data.files) - 1)]


def _norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNorm layer, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def recompute_batchnorm(model: keras.Model, batches: Iterable[Any]) -> int:
    """Replace each BatchNorm's moving mean and variance by their exact average over the
    batches' (x, ...) in training mode ("precise BN"), for weights the moving averages never
    followed. Returns how many batches were averaged (0: no BatchNorm or no batches, the
    statistics as they were)."""
    norms = _norms(model)
    if not norms:
        return 0
    momenta = [layer.momentum for layer in norms]
    seen = 0
    try:
        for batch in batches:
            x = keras.utils.unpack_x_y_sample_weight(batch)[0]
            for layer in norms:  # the new batch's share of the running mean: 1 / (seen + 1)
                layer.momentum = seen / (seen + 1.0)
            model(x, training=True)
            seen += 1
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
    return seen


def some_batches(dataset: Any, n: int) -> Iterator[Any]:
    """The first n batches of a tf.data dataset or a Keras PyDataset."""
    if hasattr(dataset, "element_spec"):
        yield from itertools.islice(iter(dataset), n)
        return
    for index in range(min(n, len(dataset))):
        yield dataset[index]
