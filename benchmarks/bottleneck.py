"""Input pipeline vs model: which of the two limits training, per backbone, at one input size.

Two rates at the same size and batch: the images/s the input pipeline delivers on its own
(make_dataset with online augmentation, decoded cache warm, no model) and the images/s of the
model's own training step on synthetic tensors already in memory (no input work at all).
Training runs at about the smaller of the two; where the model is faster, the pipeline is the
wall, and a faster GPU buys nothing until the pipeline keeps up.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np

from benchmarks.common import Context, comparison, per_second, table
from benchmarks.training import compiled_model, fit_rate

TITLE = "Input pipeline vs model: images/s each delivers alone, per backbone"


def pipeline_rates(ctx: Context, size: int) -> dict[str, float]:
    """Images/s of the training pipeline alone: the first pass (decodes) and the next (warm)."""
    from helpers.data.augment import AugmentConfig, make_online_augmenter
    from helpers.train.pipeline import benchmark, make_dataset

    dataset = make_dataset(
        ctx.records(),
        image_size=size,
        channels=3,
        batch_size=ctx.scale.batch_size,
        training=True,
        seed=ctx.seed,
        augmenter=make_online_augmenter(AugmentConfig(), ctx.seed),
        cache=True,
    )
    cold = benchmark(dataset)  # fills the decoded cache
    warm = benchmark(dataset)  # the next epoch: new order, new augmentation, cache warm
    del dataset
    gc.collect()
    return {
        "images": float(warm["images"]),
        "cold_images_per_s": cold["images_per_s"],
        "warm_images_per_s": warm["images_per_s"],
    }


def synthetic_batches(n: int, size: int, batch: int, seed: int) -> Any:
    """n random images and targets for every head, shaped as the pipeline's, as a tf.data set
    over tensors already in memory (nothing is decoded or augmented)."""
    import tensorflow as tf

    from helpers.core.landmarks import N_POINTS
    from helpers.train.pipeline import without_autotuning

    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    targets = {
        "expression": rng.integers(0, 8, n).astype(np.int32),
        "valence": rng.uniform(-1, 1, (n, 1)).astype(np.float32),
        "arousal": rng.uniform(-1, 1, (n, 1)).astype(np.float32),
        "landmarks": rng.uniform(0, 1, (n, N_POINTS * 2)).astype(np.float32),
    }
    return without_autotuning(tf.data.Dataset.from_tensor_slices((images, targets)).batch(batch))


def model_rate(ctx: Context, name: str, size: int) -> float:
    """Images/s of the model's training step alone, after the warm-up steps (tracing)."""
    import keras

    scale = ctx.scale
    batch, warmup, steps = (
        scale.batch_size,
        scale.bottleneck_warmup_steps,
        scale.bottleneck_timed_steps,
    )
    keras.backend.clear_session()
    model = compiled_model(name, size, ctx.seed)
    data = synthetic_batches((warmup + steps) * batch, size, batch, ctx.seed)
    return fit_rate(model, data, warmup, steps, batch)


def limit(pipeline: float, model: float) -> str:
    """Which side sets the training speed: the slower one."""
    return "input pipeline" if pipeline < model else "model"


def run(ctx: Context) -> dict[str, Any]:
    """The pipeline's rates once at the size, then each backbone's step rate against them."""
    scale = ctx.scale
    size, batch = scale.bottleneck_size, scale.batch_size
    ctx.log(f"bottleneck: input pipeline at {size} px")
    pipe = pipeline_rates(ctx, size)
    results: dict[str, Any] = {"image_size": size, "pipeline": pipe, "models": {}}
    rows, comparisons = [], []
    for name in scale.bottleneck_models:
        ctx.log(f"bottleneck: {name} training step at {size} px")
        rate = model_rate(ctx, name, size)
        side = limit(pipe["warm_images_per_s"], rate)
        results["models"][name] = {"model_images_per_s": rate, "limit": side}
        rows.append(
            [
                name,
                size,
                rate,
                pipe["warm_images_per_s"],
                pipe["cold_images_per_s"],
                per_second(pipe["warm_images_per_s"], rate),
                side,
            ]
        )
        comparisons.append(
            comparison(
                f"{name} at {size} px: input pipeline (cache warm) vs the model's training step",
                pipe["warm_images_per_s"],
                rate,
                "images/s",
                higher_is_better=True,
                baseline_name="model step on in-memory tensors",
                target="pipeline keeps up (>= 1x)",
                met=bool(pipe["warm_images_per_s"] >= rate),
            )
        )
    return {
        "title": TITLE,
        "params": {
            "image_size": size,
            "batch_size": batch,
            "models": list(scale.bottleneck_models),
            "pipeline_images": int(pipe["images"]),
            "warmup_steps": scale.bottleneck_warmup_steps,
            "timed_steps": scale.bottleneck_timed_steps,
        },
        "results": results,
        "comparisons": comparisons,
        "tables": [
            table(
                f"Images/s at {size} px, batch {batch} (headroom = pipeline / model; below 1 the "
                "pipeline is the wall)",
                [
                    "model",
                    "px",
                    "model step alone",
                    "pipeline alone, cache warm",
                    "pipeline, first epoch",
                    "headroom",
                    "limit",
                ],
                rows,
            )
        ],
        "notes": [
            "The model's rate is its train step (forward, backward, Adam) on random tensors "
            "already in memory, every head, randomly initialised; the pipeline's is make_dataset "
            "with the default online augmentation over the demo zip, decoded cache warm (every "
            "epoch after the first) and, for reference, the first epoch that decodes.",
            "Both share the machine's cores when training; on a CPU the two compete, so the "
            "real rate is below the smaller one. On a GPU the model's rate rises many times "
            "and the pipeline's stays where this machine's CPU puts it: run "
            "`python -m benchmarks --only bottleneck` on the GPU machine to see which wall it "
            "meets.",
        ],
    }
