"""How fast a model runs: the one measure behind every inference speed the project reports (the
metrics JSON's images/s, the report's fastest model, the deployment table's latency), so no
two tables rank models by two methods. One timed pass is at the mercy of whatever else the
machine does for those seconds, so a speed is the median of a few passes over the same full
batches, after a call that builds the graph, counting every row the model computed."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

TIMED_BATCHES = 2  # calls per timed pass
TIMED_PASSES = 3  # timed passes; their median is the speed
MEASURE = (
    f"the median of {TIMED_PASSES} timed passes of {TIMED_BATCHES} calls on one full batch of "
    "the first faces (zero-padded when fewer), after a warm-up call"
)


def padded(images: np.ndarray, batch_size: int) -> np.ndarray:
    """A batch of exactly batch_size rows, zeros after the images: one input shape, one trace."""
    if len(images) >= batch_size:
        return images[:batch_size]
    pad = np.zeros((batch_size - len(images), *images.shape[1:]), images.dtype)
    return np.concatenate([images, pad])


def throughput(
    call: Callable[[np.ndarray], Any],
    batches: Sequence[np.ndarray],
    *,
    passes: int = TIMED_PASSES,
) -> dict[str, Any]:
    """Rows per second of call over `batches`: one warm-up call, then `passes` timed passes
    over all of them, the median pass kept; every row computed counts (padding included)."""
    if not batches or passes < 1:
        raise ValueError("throughput needs at least one batch and one pass")
    call(batches[0])  # builds the graph: not part of any pass
    rows = sum(len(batch) for batch in batches)
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for batch in batches:
            call(batch)
        seconds = time.perf_counter() - start
        rates.append(rows / seconds if seconds > 0 else float("inf"))
    return {
        "images_per_s": float(statistics.median(rates)),
        "batch_size": len(batches[0]),
        "batches": len(batches),
        "passes": passes,
    }


def batch_throughput(
    call: Callable[[np.ndarray], Any],
    images: np.ndarray,
    batch_size: int,
    *,
    batches: int = TIMED_BATCHES,
    passes: int = TIMED_PASSES,
) -> dict[str, Any]:
    """throughput over `batches` calls on the first batch_size images (padded as predicting
    pads a short batch): the same work for every model, whatever the size of the test split."""
    batch = padded(np.asarray(images), batch_size)
    return throughput(call, [batch] * batches, passes=passes)
