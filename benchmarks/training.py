"""Training: images/s of each model fed by the real pipeline vs fed in-memory tensors."""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Context, comparison, pct, per_second, table
from helpers.run import profiles as config

TITLE = "Training: pipeline overhead per model"
TARGET_OVERHEAD = 0.10


def step_clock() -> Any:
    """Keras callback stamping the end of every training step, per epoch."""
    import keras

    class StepClock(keras.callbacks.Callback):
        """Step end times; the warm-up steps of an epoch are left out when rating it."""

        def __init__(self) -> None:
            super().__init__()
            self.ends: list[list[float]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.ends.append([])

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.ends[-1].append(time.perf_counter())

        def images_per_s(self, warmup: int, steps: int, batch: int) -> float:
            """Images/s over the last epoch's steps after the warm-up (tracing, prefetch fill)."""
            ends = self.ends[-1]
            if len(ends) < warmup + steps or warmup < 1:
                raise ValueError(
                    f"an epoch ran {len(ends)} steps; timing needs warm-up (>= 1) "
                    f"+ {steps} timed steps"
                )
            return per_second(steps * batch, ends[warmup + steps - 1] - ends[warmup - 1])

    return StepClock()


def compiled_model(
    name: str, size: int, seed: int, channels: int = 3, heads: tuple[str, ...] | None = None
) -> Any:
    """The model as train() compiles it: the heads (default every one), masked losses, Adam."""
    import keras

    from helpers.core.labels import HEADS
    from helpers.models import losses, train_metrics
    from helpers.models.factory import build_model

    heads = heads or HEADS
    model = build_model(
        name, image_size=size, channels=channels, heads=heads, weights=None, seed=seed
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=losses.build_losses(heads),
        loss_weights=losses.default_loss_weights(heads),
        metrics=train_metrics.build_metrics(heads),
    )
    return model


def fit_rate(model: Any, data: Any, warmup: int, steps: int, batch: int) -> float:
    """Images/s of fit()'s training step over `data` after the warm-up steps (tracing), then
    the Keras session cleared for the next model."""
    import keras

    from helpers.train.fit import build_step_state

    build_step_state(model, data)  # one trace of the step, as in train()
    clock = step_clock()
    model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    rate = clock.images_per_s(warmup, steps, batch)
    keras.backend.clear_session()
    gc.collect()
    return rate


def _in_memory(rows: pd.DataFrame, size: int, batch: int) -> Any:
    """Every image and target of `rows` decoded once up front, batched from memory tensors.

    Same element structure as the pipeline's batches, so the model's traced train step is
    shared and neither side pays a retrace inside its timed steps.
    """
    import tensorflow as tf

    from helpers.train.pipeline import make_dataset, without_autotuning

    dataset = make_dataset(
        rows, image_size=size, channels=3, batch_size=batch, training=False, cache=False
    )
    images, targets = [], {}
    for x, y in dataset:
        images.append(x.numpy())
        for head, value in y.items():
            targets.setdefault(head, []).append(value.numpy())
    tensors = (
        tf.constant(np.concatenate(images)),
        {h: tf.constant(np.concatenate(v)) for h, v in targets.items()},
    )
    return without_autotuning(tf.data.Dataset.from_tensor_slices(tensors).batch(batch))


def measure_model(ctx: Context, name: str) -> dict[str, Any]:
    """In-memory, cached pipeline, streamed pipeline, in-memory again (ABA against drift)."""
    import keras

    from helpers.data.augment import AugmentConfig, make_online_augmenter
    from helpers.train.fit import build_step_state
    from helpers.train.pipeline import make_dataset

    scale = ctx.scale
    size = scale.train_size or config.resolve("cpu", model=name)["image_size"]
    batch, warmup, steps = scale.batch_size, scale.warmup_steps, scale.timed_steps
    rows = ctx.records().iloc[: (warmup + steps) * batch].reset_index(drop=True)
    if len(rows) < (warmup + steps) * batch:
        raise ValueError(
            f"training benchmark needs {(warmup + steps) * batch} records, "
            f"the demo zip has {len(rows)}"
        )
    keras.backend.clear_session()
    model = compiled_model(name, size, ctx.seed)
    in_memory = _in_memory(rows, size, batch)
    build_step_state(model, in_memory)
    augmenter = make_online_augmenter(AugmentConfig(), ctx.seed)

    def fit_in_memory() -> float:
        """The baseline: the same batches from tensors already in memory."""
        clock = step_clock()
        model.fit(in_memory, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
        return clock.images_per_s(warmup, steps, batch)

    def fit_pipeline(cache: bool, epochs: int) -> float:
        """The real pipeline; rated on its last epoch."""
        dataset = make_dataset(
            rows,
            image_size=size,
            channels=3,
            batch_size=batch,
            training=True,
            seed=ctx.seed,
            augmenter=augmenter,
            cache=cache,
        )
        clock = step_clock()
        model.fit(dataset, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
        return clock.images_per_s(warmup, steps, batch)

    memory_first = fit_in_memory()
    cached = fit_pipeline(cache=True, epochs=2)  # epoch 1 fills the decoded cache
    streamed = fit_pipeline(cache=False, epochs=1)
    memory_last = fit_in_memory()
    model = None  # freed before clear_session (the closures above hold the name)
    keras.backend.clear_session()
    gc.collect()
    memory = (memory_first + memory_last) / 2
    return {
        "image_size": size,
        "batch_size": batch,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "in_memory_images_per_s": memory,
        "in_memory_samples": [memory_first, memory_last],
        "cached_images_per_s": cached,
        "streamed_images_per_s": streamed,
        "cached_overhead": 1 - cached / memory,
        "streamed_overhead": 1 - streamed / memory,
    }


def run(ctx: Context) -> dict[str, Any]:
    """Every model of this mode; the target is the steady-state (cached) overhead."""
    results: dict[str, Any] = {}
    rows, comparisons = [], []
    for name in ctx.scale.train_models:
        ctx.log(f"training: {name}")
        r = measure_model(ctx, name)
        results[name] = r
        rows.append(
            [
                name,
                r["image_size"],
                r["in_memory_images_per_s"],
                r["cached_images_per_s"],
                pct(r["cached_overhead"]),
                r["streamed_images_per_s"],
                pct(r["streamed_overhead"]),
            ]
        )
        comparisons.append(
            comparison(
                f"{name} training images/s, pipeline (cache warm) vs in-memory",
                r["cached_images_per_s"],
                r["in_memory_images_per_s"],
                "images/s",
                higher_is_better=True,
                baseline_name="in-memory tensors",
                target=f"overhead < {TARGET_OVERHEAD:.0%}",
                met=bool(r["cached_overhead"] < TARGET_OVERHEAD),
            )
        )
    scale = ctx.scale
    return {
        "title": TITLE,
        "params": {
            "models": list(scale.train_models),
            "batch_size": scale.batch_size,
            "warmup_steps": scale.warmup_steps,
            "timed_steps": scale.timed_steps,
            "image_size": scale.train_size or "the cpu profile's per model",
            "timing": "steps after the warm-up steps of an epoch; in-memory measured "
            "before and after the pipeline runs, averaged",
        },
        "results": results,
        "comparisons": comparisons,
        "tables": [
            table(
                "Training images/s (overhead = 1 - pipeline / in-memory)",
                [
                    "model",
                    "px",
                    "in-memory",
                    "pipeline, cache warm",
                    "overhead",
                    "pipeline, streamed",
                    "overhead",
                ],
                rows,
            )
        ],
        "notes": [
            "Same compiled model, same rows, same batch size. The pipeline also augments every "
            "image online (the in-memory tensors are not augmented), so its overhead includes "
            "augmentation.",
            "'cache warm' is every epoch after the first; 'streamed' (cache none) decodes every "
            "step, as the first epoch does; on few cores decoding competes with the model.",
        ],
    }
