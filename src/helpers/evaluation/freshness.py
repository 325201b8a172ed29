"""Which training of a model a metrics JSON describes: notebook 05 records the model file's
sha256 and its card's `finished_at`, so a model trained again afterwards (notebook 04 rerun by
hand) is told apart from the one that was scored. Both are read from the files' contents, so a
run folder copied or moved elsewhere still matches; file times would not."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from helpers.core import paths, progress
from helpers.core.jsonio import read_json
from helpers.core.run_folder import RunFolder

KEY = "trained"  # the metrics JSON's block: {"model_sha256": ..., "card_finished_at": ...}


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256, read once per version of the file in this process (size and time key
    the cache only: the digest itself is of the contents)."""
    return paths.file_sha256(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a model file, so the metrics name the exact weights they scored."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def training_of(run_dir: str | os.PathLike, model: str) -> dict[str, Any]:
    """What identifies the trained model now in the run folder, for its metrics JSON."""
    run = RunFolder(run_dir)
    path = run.model_path(model)
    return {
        "model_sha256": file_sha256(path) if path.is_file() else None,
        "card_finished_at": run.card_finished_at(model),
    }


def stale_note(run_dir: str | os.PathLike, model: str, scores: Mapping[str, Any]) -> str | None:
    """A sentence when a metrics JSON scored another training of the model than the one now in
    the run folder; None when they match, or when the metrics (older ones) recorded nothing."""
    recorded = scores.get(KEY)
    if not isinstance(recorded, Mapping):
        return None
    run = RunFolder(run_dir)
    path = run.model_path(model)
    if recorded.get("model_sha256") and path.is_file():
        same = recorded["model_sha256"] == file_sha256(path)
    elif recorded.get("card_finished_at") and run.card_path(model).is_file():
        same = recorded["card_finished_at"] == run.card_finished_at(model)
    else:
        return None
    if same:
        return None
    return (
        f"metrics/{model}.json describes an earlier training of {model}: run notebook 05 "
        f"again (model = '{model}')"
    )


def stale_notes(run_dir: str | os.PathLike) -> dict[str, str]:
    """Each model whose test metrics describe an earlier training, with its sentence."""
    run = RunFolder(run_dir)
    notes = {}
    for path in run.metrics_files():
        scores = read_json(path)
        model = str(scores.get("model") or path.name.partition(".")[0])
        note = stale_note(run, model, scores)
        if note:
            notes[model] = note
    return notes


def warn_stale(run_dir: str | os.PathLike) -> list[str]:
    """Print (and send to the terminal of ./run_all.sh) a warning per model whose metrics
    describe an earlier training, so a report never passes old figures off as the model's."""
    lines = [f"warning: {note}" for note in stale_notes(run_dir).values()]
    for text in lines:
        print(text)
        progress.line(text)
    return lines
