"""The Keras backend that trains: what it sees (GPUs, devices), its versions, its data loader.

TensorFlow is the backend the project installs and the only one with tf.data and
MirroredStrategy; Keras 3 also trains the same models on JAX or PyTorch (KERAS_BACKEND), which a
machine may have where TensorFlow has no build for its CUDA. Nothing here imports TensorFlow
unless it is the backend.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
from collections.abc import Iterator
from typing import Any

import keras

from helpers.train import workers

INPUT_PIPELINES = ("auto", "tf.data", "python")
CPUINFO = "/proc/cpuinfo"  # Linux: the CPU's instruction set flags


def name() -> str:
    """ "tensorflow", "jax", "torch" or "numpy"."""
    return str(keras.backend.backend())


def input_pipeline(setting: str) -> str:
    """The loader a setting means: "auto" is tf.data on TensorFlow, a PyDataset elsewhere."""
    if setting == "auto":
        return "tf.data" if name() == "tensorflow" else "python"
    return setting


def input_processes(setting: int | str, augmenting: bool) -> int:
    """Worker processes a setting means: "auto" is every core but two on a GPU when training
    batches are augmented (helpers.train.workers), none on a CPU."""
    if setting == "auto":
        return workers.auto_processes(gpu=gpu_count() > 0, augmenting=augmenting)
    return int(setting)


def _devices() -> list[tuple[str, str]]:
    """(kind, name) of every device the backend computes on, kind "GPU" or "CPU"."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        return [
            (d.device_type, d.name)
            for d in tf.config.list_logical_devices()
            if d.device_type in ("GPU", "CPU")
        ]
    if backend == "jax":
        import jax

        return [
            ("GPU" if d.platform in ("gpu", "cuda", "rocm") else "CPU", str(d))
            for d in jax.devices()
        ]
    if backend == "torch":
        import torch

        gpus = [("GPU", f"cuda:{i}") for i in range(torch.cuda.device_count())]
        return gpus or [("CPU", "cpu")]
    return [("CPU", "cpu")]


def device_names() -> list[str]:
    """Names of the devices training runs on, for the model card."""
    return [device for _, device in _devices()]


def gpu_names() -> list[str]:
    """GPUs the backend can compute on (TensorFlow: physical ones, before any split)."""
    if name() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    return [device for kind, device in _devices() if kind == "GPU"]


def gpu_count() -> int:
    """How many: mixed precision and data parallelism depend on it."""
    return len(gpu_names())


def cpu_runs_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions (AMX or AVX512-BF16): there a bfloat16
    convolution is native and faster (1.3x on the custom CNN's step, benchmarks/RESULTS.md);
    elsewhere it is emulated and slower than float32."""
    try:
        with open(CPUINFO, encoding="utf-8") as info:
            flags = set(info.read().split())
    except OSError:  # not Linux: no way to tell, so no
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def cpu_name() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what the platform says), for the
    model card: a training time means little without the machine that gave it."""
    try:
        with open(CPUINFO, encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_models() -> list[str]:
    """The GPUs' model names (e.g. "NVIDIA H200") where the backend says them, else devices."""
    if name() == "tensorflow":
        import tensorflow as tf

        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                details = tf.config.experimental.get_device_details(gpu)
            except (RuntimeError, ValueError):
                details = {}
            found.append(str(details.get("device_name") or gpu.name))
        return found
    return gpu_names()


def memory_gib() -> float | None:
    """The machine's memory in GiB, as the operating system reports it, for the model card and
    the methods text; None where it cannot say (Windows)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def machine() -> dict[str, Any]:
    """What trained a model: CPU model and cores, memory, bfloat16 instructions, GPUs."""
    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": memory_gib(),
        "bfloat16_instructions": cpu_runs_bfloat16(),
        "gpus": gpu_models(),
    }


class SingleDevice:
    """The strategy of backends without tf.distribute: everything on the default device."""

    num_replicas_in_sync = 1

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Nothing to enter: variables go where the backend puts them."""
        yield


def strategy() -> Any:
    """Data parallelism over every visible GPU with TensorFlow, else one device."""
    if name() != "tensorflow":
        return SingleDevice()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def versions() -> dict[str, str]:
    """The backend's name and version (TensorFlow's under its own key, as cards always had)."""
    backend = name()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    version = importlib.import_module(module).__version__ if module else keras.__version__
    out = {"backend": backend, backend: str(version)}
    return out
