"""Resume bookkeeping: what an interrupted run left behind and whether it may continue.

Everything a run needs to be resumed lives in `<out_dir>/checkpoints/<model>/`: the Keras
BackupAndRestore state of the phase in progress, the final weights of finished phases and
`progress.json`. train() deletes the folder when training completes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import ConfigError, DataError
from helpers.core.run_folder import RunFolder
from helpers.train.config import RESUME_KEYS, TrainConfig


def read_progress(path: Path) -> dict[str, Any]:
    """progress.json of an interrupted run, or an empty record."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"damaged resume record ({exc}); pass resume=False to start over"
        ) from exc


def check_resumable(progress: dict[str, Any], cfg: TrainConfig, data: str, where: Path) -> None:
    """Refuse to continue a backup made with other settings or other data."""
    saved = progress.get("config", {})
    ours = cfg.to_dict()
    changed = [k for k in RESUME_KEYS if k in saved and saved[k] != ours[k]]
    if changed:
        raise ConfigError(
            f"{where} holds an interrupted run with other settings "
            f"({', '.join(changed)}); pass resume=False to start over"
        )
    if progress.get("data_hash") not in (None, data):
        raise ConfigError(
            f"{where} holds an interrupted run on other training data; "
            "pass resume=False to start over"
        )


def backup_epoch(backup_dir: Path) -> int | None:
    """The epoch BackupAndRestore will resume at, if it saved one."""
    meta = backup_dir / "training_metadata.json"
    if not meta.is_file():
        return None
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(meta, f"damaged backup ({exc}); pass resume=False to start over") from exc


def resuming_line(model: str, next_epoch: int, epochs: int) -> str:
    """What a resumed training says first, so the user sees its checkpoint was taken: the epoch
    it goes on with (0-based here), counted from 1 as the epoch lines count."""
    return f"{model}: resuming from epoch {next_epoch + 1} of {epochs}"


def higher_is_better(monitor: str) -> bool:
    """Accuracies are maximised, losses minimised (the mode of Keras's callbacks)."""
    return monitor.endswith("accuracy")


def best_index(values: np.ndarray, monitor: str) -> int:
    """Position of the best monitored value (NaN skipped; at least one must be finite)."""
    return int(np.nanargmax(values) if higher_is_better(monitor) else np.nanargmin(values))


def best_so_far(history: pd.DataFrame, monitor: str) -> tuple[float | None, int]:
    """Best monitored value in the history and the epochs since it (for a resumed phase)."""
    if monitor not in history.columns:
        return None, 0
    values = history[monitor].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return None, 0
    best = best_index(values, monitor)
    return float(values[best]), len(values) - 1 - best


def replacing_line(run: RunFolder, model: str) -> str | None:
    """One line when a fresh training is about to overwrite a model that finished training
    (notebook 04 run again), so its metrics and report are known to describe the old one."""
    path = run.model_path(model)
    if not path.is_file():
        return None
    finished = run.card_finished_at(model)
    when = f", finished {finished}" if finished else ""
    scored = (
        f"; metrics/{model}.json describes the old one until notebook 05 runs again"
        if run.metrics_path(model).is_file()
        else ""
    )
    return f"{model}: replacing the trained models/{path.name}{when}{scored}"
