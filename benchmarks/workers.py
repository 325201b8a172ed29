"""Workers: the training pipeline's images/s with its batches built here (threads) and in
forked worker processes, both loaders, at the `fer2013-gpu` recipe's input.

    python -m benchmarks --only workers

Augmentation is Python per image, so threads build batches one core at a time under the GIL;
the `input_processes` setting forks worker processes that each take a core
(helpers.train.workers). This measures the pipeline alone (no model), its decoded cache warm,
over the demo zip at the recipe's 48 px grayscale with its augmentation (zoom crops, random
erasing, the default flips and warps) and batch 64: the rate that feeds a GPU, which is many
times faster than any CPU step at that size. Each setting is timed over whole passes after one
untimed pass, interleaved with the others so a shared machine's noise falls on all of them.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from benchmarks.common import Context, comparison, median, table
from helpers.run.profiles import PROFILES

TITLE = "Workers: training batches built in threads or in forked processes"
SIZE, CHANNELS, BATCH = 48, 1, 64  # the fer2013-gpu recipe's input
RECIPE = "fer2013-gpu"  # whose augmentation settings the batches get (helpers.run.profiles)


def process_counts(cpus: int | None = None) -> tuple[int, ...]:
    """0 (threads in this process), then 1, 2, 4, ... up to the machine's cores."""
    cpus = max(1, cpus if cpus is not None else os.cpu_count() or 1)
    counts = [0, 1]
    while counts[-1] * 2 <= cpus:
        counts.append(counts[-1] * 2)
    if counts[-1] != cpus:
        counts.append(cpus)
    return tuple(counts)


def _loader(ctx: Context, loader: str, processes: int) -> Any:
    """The training dataset as train() makes it with `processes` workers."""
    from helpers.data.augment import AugmentConfig, make_online_augmenter
    from helpers.train.pipeline import make_dataset, make_pydataset

    make = make_dataset if loader == "tf.data" else make_pydataset
    return make(
        ctx.records(),
        image_size=SIZE,
        channels=CHANNELS,
        batch_size=BATCH,
        training=True,
        seed=ctx.seed,
        augmenter=make_online_augmenter(AugmentConfig(**PROFILES[RECIPE].augment), ctx.seed),
        heads=("expression",),
        processes=processes,
    )


def _passes(dataset: Any, loader: str, passes: int) -> tuple[int, float]:
    """Images and seconds of whole passes, as fit() reads each loader."""
    if loader == "tf.data":
        batches: Any = lambda: dataset  # noqa: E731
    else:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        adapter = PyDatasetAdapter(dataset, shuffle=False)

        def batches() -> Any:
            adapter.on_epoch_begin()
            yield from adapter.get_numpy_iterator()
            adapter.on_epoch_end()

    images, start = 0, time.perf_counter()
    for _ in range(passes):
        for batch in batches():
            images += int(batch[0].shape[0])
    return images, time.perf_counter() - start


def run(ctx: Context) -> dict[str, Any]:
    """Every loader and process count: one untimed pass each, then interleaved timed passes."""
    counts = process_counts(2 if ctx.quick else None)
    passes = 1 if ctx.quick else 3
    repeats = 1 if ctx.quick else ctx.scale.repeats
    loaders = ("python", "tf.data")
    datasets = {}
    for loader in loaders:
        for n in counts:
            ctx.log(f"workers: {loader}, {n} processes, first pass")
            datasets[loader, n] = _loader(ctx, loader, n)
            _passes(datasets[loader, n], loader, 1)  # fills the cache, forks, warms up
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in datasets}
    for _ in range(repeats):
        for key, dataset in datasets.items():
            images, seconds = _passes(dataset, key[0], passes)
            rates[key].append(images / seconds)
    for dataset in datasets.values():
        source = getattr(dataset, "source", None)
        if source is not None and source.processes is not None:
            source.processes.close()
    datasets.clear()
    gc.collect()
    medians = {key: median(values) for key, values in rates.items()}
    rows = [
        [loader, n or "none (threads)", medians[loader, n], medians[loader, n] / medians[loader, 0]]
        for loader in loaders
        for n in counts
    ]
    best = max(counts, key=lambda n: medians["python", n])
    return {
        "title": TITLE,
        "params": {
            "images": len(ctx.records()),
            "image_size": SIZE,
            "channels": CHANNELS,
            "batch_size": BATCH,
            "augment": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in PROFILES[RECIPE].augment.items()
            },
            "process_counts": list(counts),
            "passes": passes,
            "repeats": repeats,
            "cpus": os.cpu_count(),
        },
        "results": {f"{loader}/{n}": medians[loader, n] for loader, n in medians},
        "comparisons": [
            comparison(
                f"PyDataset (Keras on JAX or PyTorch): {best} worker "
                f"process{'' if best == 1 else 'es'} vs threads",
                medians["python", best],
                medians["python", 0],
                "images/s",
                higher_is_better=True,
                baseline_name="threads in the training process",
            )
        ],
        "tables": [
            table(
                f"Training images per second, batch {BATCH}, {SIZE} px grayscale, the "
                "fer2013-gpu augmentation, decoded cache warm (median of repeats)",
                ["loader", "worker processes", "images/s", "vs threads"],
                rows,
            )
        ],
        "notes": [
            "No model runs: this is the rate at which the pipeline could feed a GPU. With "
            "processes, the training process only waits for finished batches, so its own "
            "Python (a GPU step's dispatch) no longer competes with augmentation for the GIL.",
            'input_processes = "auto" (a training setting) forks every core but two on a GPU '
            "when training batches are augmented, and none on a CPU, where the training step "
            "is the work.",
        ],
    }
