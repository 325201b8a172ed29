"""Worker processes that build training batches, so augmentation takes every core.

Augmentation runs image by image in Python (albumentations over numpy). Threads take turns at
it under the GIL, which the training loop's own Python (Keras's step dispatch, JAX's above all)
needs too: on a GPU the accelerator then waits for one core's worth of augmented images. Forked
processes each take a core and hand back finished batches; the parent's threads only wait.

The processes are forked once, after the decoded cache is filled, so they read its pixels
without copying them (copy-on-write) and need nothing pickled but the rows of a batch. A batch
depends only on (seed, epoch, row), so processes give the batches threads give, in the order
asked. Where fork is not available (Windows), batches are built in the training process.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cv2
import numpy as np
import threadpoolctl

from helpers.core.errors import ConfigError

MAX_PROCESSES = 16  # beyond this, copying batches back costs more than another core adds

# What forked workers call: filled just before each pool forks, emptied right after (each child
# keeps its own copy of the dictionary as it was at the fork).
_TARGETS: dict[int, Callable[[np.ndarray, np.ndarray], Any]] = {}
_keys = itertools.count()
_fork_lock = threading.Lock()


def can_fork() -> bool:
    """Whether this platform forks (Linux, macOS); Windows only spawns."""
    return "fork" in multiprocessing.get_all_start_methods()


def auto_processes(gpu: bool, augmenting: bool, cpus: int | None = None) -> int:
    """Processes the "auto" setting gives: on a GPU with augmentation, every core but two (one
    for the training loop, one for the rest), at most MAX_PROCESSES; none on a CPU, where the
    training step is the work (at 48 px the pipeline costs about 1% of it), and none off Linux
    (macOS's system libraries are not safe to fork once threads run; a number still forks)."""
    cpus = os.cpu_count() if cpus is None else cpus
    if not (gpu and augmenting and can_fork() and sys.platform.startswith("linux")):
        return 0
    return max(0, min(MAX_PROCESSES, (cpus or 1) - 2))


def check_processes(value: Any, where: str = "input_processes") -> int | str:
    """ "auto" or a whole number of processes >= 0, else a ConfigError naming the setting."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f'{where} must be "auto" or an integer >= 0, got {value!r}')
    return int(value)


def _run(key: int, rows: np.ndarray, epochs: np.ndarray) -> Any:
    """In a worker: the batch from the target this process inherited."""
    return _TARGETS[key](rows, epochs)


def _ready() -> int:
    """In a worker: proves it started."""
    return os.getpid()


def _start_worker() -> None:
    """A worker leaves Ctrl-C to its parent, which shuts it down, and never collects what it
    inherited.

    The parent's objects are frozen out of the worker's garbage collector: a finaliser run here
    (a tf.data iterator's, say) would wait for the parent's threads, which a forked child does
    not have. Thread counts are set before the fork for the same reason (_one_thread_each).
    """
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _one_thread_each() -> Iterator[None]:
    """OpenCV and BLAS (OpenMP too) at one thread while the workers fork, so that each inherits
    one thread instead of pools as large as the machine (14 sets on 16 cores); restored in the
    parent after. Set in the parent because there the pools' threads exist: a forked child
    resizing its inherited OpenCV pool waits for threads it does not have, and one setting its
    BLAS count starts a fresh pool of every core first."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpoolctl.threadpool_limits(1):
            yield
    finally:
        cv2.setNumThreads(before)


class BatchProcesses:
    """`target(rows, epochs)` run in forked processes; build() from any thread, like the target.

    Made after the target's inputs are final (the decoded cache filled): each process sees them
    as they were at the fork.
    """

    def __init__(self, target: Callable[[np.ndarray, np.ndarray], Any], processes: int):
        if not can_fork():
            raise ConfigError("input processes need fork, which this platform lacks; use 0")
        self.processes = int(processes)
        self.key = next(_keys)
        with _fork_lock, warnings.catch_warnings(), _one_thread_each():
            # Forking beside the backend's threads warns (Python 3.12+, JAX); the children run
            # only numpy, OpenCV and albumentations, never the backend.
            warnings.filterwarnings("ignore", message=r".*fork\(\).*")
            _TARGETS[self.key] = target
            # Garbage is collected here, where the threads its finalisers wait for exist; what
            # is left is frozen through the fork, so the workers' collectors skip it.
            gc.collect()
            gc.freeze()
            try:
                self.pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_start_worker,
                )
                # The first task forks every process at once (fork pools do not grow later).
                self.pool.submit(_ready).result()
            finally:
                gc.unfreeze()
                del _TARGETS[self.key]
        self._close = weakref.finalize(self, self.pool.shutdown, wait=False, cancel_futures=True)

    def build(self, rows: np.ndarray, epochs: np.ndarray) -> Any:
        """One batch from a worker; its error (a DataError naming the file) raised here."""
        try:
            return self.pool.submit(_run, self.key, rows, epochs).result()
        except BrokenProcessPool as error:
            raise RuntimeError(
                "a process building training batches died (out of memory?); "
                "train with input_processes=0 to build them in this process"
            ) from error

    def close(self) -> None:
        """Stop the processes now (also when this object is collected, and at exit)."""
        with contextlib.suppress(Exception):
            self._close()
