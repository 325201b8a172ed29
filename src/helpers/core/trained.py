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


SPLIT_KEY = "split_sha256"  # the model card's data block: the split its model trained on


def table_split_sha256(ids: Iterable[Any], splits: Iterable[Any]) -> str:
    """sha256 of which face is in which split (id and split, in id order): the same assignment
    gives the same digest on any machine, whatever order the rows are in."""
    import hashlib

    pairs = sorted(zip(map(str, ids), map(str, splits), strict=True))
    digest = hashlib.sha256()
    for face, split in pairs:
        digest.update(f"{face}\t{split}\n".encode())
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _split_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The digest of a splits.parquet, read once per version of the file in this process."""
    import pandas as pd  # only where a split is read: importing this module stays light

    table = pd.read_parquet(path, columns=["id", "split"])
    return table_split_sha256(table["id"], table["split"])


def split_sha256(run: RunFolder) -> str | None:
    """The digest of the split notebook 03 left in the run folder (splits.parquet), None
    without one, so a model card can name the split its model trained on."""
    path = run.splits
    if not path.is_file():
        return None
    stat = path.stat()
    return _split_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def trained_on_split(run: RunFolder, model: str) -> bool | None:
    """Whether the model now in the run folder trained on the split splits.parquet holds; None
    where it cannot be told (no card, a card from before cards named the split, no split)."""
    from helpers.core.errors import DataError
    from helpers.core.jsonio import read_json

    card = run.card_path(model)
    if not card.is_file():
        return None
    try:
        data = read_json(card).get("data")
    except (DataError, AttributeError):  # a damaged card, or not an object: cannot be told
        return None
    recorded = data.get(SPLIT_KEY) if isinstance(data, Mapping) else None
    current = split_sha256(run)
    if not recorded or current is None:
        return None
    return bool(recorded == current)
