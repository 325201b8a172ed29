"""Which training of a model a metrics JSON describes: notebook 05 stamps its metrics with the
model file's sha256 and its card's `finished_at` (the `trained` block), so whoever reads the
metrics (the report, the predictor) can tell a model trained again afterwards from the one that
was scored. Both are read from the files' contents, so a run folder copied elsewhere still
matches; file times would not. The block also holds the weights' own sha256 (weights_sha256),
which, unlike the file's, is the same for two runs that trained the same weights."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core import paths
from helpers.core.run_folder import RunFolder

# the metrics JSON's block: {"model_sha256": ..., "card_finished_at": ..., "weights_sha256": ...}
KEY = "trained"


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256, read once per version of the file in this process (size and time key
    the cache only: the digest itself is of the contents)."""
    return paths.file_sha256(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a model file, so the metrics name the exact weights they scored."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def weights_sha256(arrays: Iterable[Any]) -> str:
    """sha256 of a model's weights alone (model.get_weights(): each array's dtype, shape and
    little-endian bytes, in order), so two runs that trained the same weights show the same
    digest where their .keras files' sha256s differ (the file records when it was saved)."""
    digest = hashlib.sha256()
    for array in arrays:
        values = np.ascontiguousarray(array)
        if values.dtype.byteorder == ">":
            values = values.astype(values.dtype.newbyteorder("<"))
        digest.update(f"{values.dtype.name} {values.shape}\n".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def same_training(run: RunFolder, model: str, scores: Mapping[str, Any]) -> bool | None:
    """Whether a metrics JSON scored the training of the model now in the run folder; None
    where it cannot be told (older metrics recorded nothing, or the files are missing)."""
    recorded = scores.get(KEY)
    if not isinstance(recorded, Mapping):
        return None
    path = run.model_path(model)
    if recorded.get("model_sha256") and path.is_file():
        return bool(recorded["model_sha256"] == file_sha256(path))
    if recorded.get("card_finished_at") and run.card_path(model).is_file():
        return bool(recorded["card_finished_at"] == run.card_finished_at(model))
    return None
