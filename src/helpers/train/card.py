"""What a training run leaves behind: the history CSV and the model card."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from helpers.core.errors import DataError
from helpers.core.faces import measure_framing
from helpers.core.images import read_image
from helpers.core.jsonio import json_ready, read_json
from helpers.core.labels import EXPRESSIONS
from helpers.core.records import landmarks_array, load_records
from helpers.core.run_folder import RunFolder
from helpers.core.trained import weights_sha256
from helpers.data.augment import AugmentSettings
from helpers.train.resume import best_index

if TYPE_CHECKING:  # Keras and TensorFlow load only when a card is made, not when one is read
    import keras

    from helpers.train.config import Phase, TrainConfig


@dataclass(frozen=True)
class CardFacts:
    """The figures of a model card that comparisons and the report put side by side."""

    params: float = math.nan  # trainable and frozen weights (helpers.train.fit)
    training_time_s: float = math.nan  # every epoch, validation included
    images_per_s: float = math.nan  # training throughput, steady epochs
    epochs_run: float = math.nan

    @classmethod
    def read(cls, path: str | os.PathLike) -> CardFacts:
        """The facts of <run>/models/<model>.json; NaN for a missing card or field."""
        path = Path(path)
        if not path.is_file():
            return cls()
        card = read_json(path)
        return cls(**{f.name: _number(card.get(f.name)) for f in dataclasses.fields(cls)})


def _number(value: Any) -> float:
    """A card value as a float, NaN when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def outcome_table(card: dict[str, Any]) -> pd.DataFrame:
    """What a training run ended with, a row per fact: the epoch kept and the score that chose
    it, that epoch's validation scores, the weight average's verdict, time and speed (notebook
    04's last word, where the card itself nests them three deep)."""
    best = card.get("best") or {}
    rows: list[tuple[str, Any]] = [
        ("epochs run", card.get("epochs_run")),
        ("epoch kept", card.get("best_epoch")),
    ]
    if best.get("monitor") is not None and best.get("value") is not None:
        rows.append(("chosen by", f"{best['monitor']} {best['value']:.4f}"))
    rows += [
        (name, f"{value:.3f}")
        for name, value in sorted((best.get("metrics") or {}).items())
        if not name.endswith("_loss") and isinstance(value, (int, float))
    ]
    average = card.get("weight_average")
    if isinstance(average, dict):
        rows.append(("weight average", "kept" if average.get("kept") else "not kept"))
    rows += [
        ("training time (s)", _rounded(card.get("training_time_s"))),
        ("training images/s", _rounded(card.get("images_per_s"))),
    ]
    if card.get("weights_fallback"):
        rows.append(("weights", card["weights_fallback"]))
    elif card.get("weights_loaded"):
        rows.append(("weights", card["weights_loaded"]))
    return pd.DataFrame(rows, columns=["fact", "value"]).set_index("fact")


def _rounded(value: Any) -> Any:
    """Seconds and speeds to whole numbers; a missing one stays as it is."""
    number = _number(value)
    return value if math.isnan(number) else round(number)


FRAMING_SAMPLE = 100  # training faces the framing is measured on (2-4 s on 2 cores)


def face_framing(train_table: pd.DataFrame, seed: int, n: int = FRAMING_SAMPLE) -> dict | None:
    """How the training faces are framed (helpers.core.faces.measure_framing), for the card: the
    predictor and the readers of whole frames crop new faces the same way. Originals only, a
    seeded sample; None when too few faces are found to say."""
    rows = train_table
    if "augmented" in rows.columns:
        rows = rows[~rows["augmented"].astype(bool)]
    rows = rows.sample(n=min(n, len(rows)), random_state=seed) if len(rows) else rows
    images = []
    for uri in rows["image"]:
        try:
            images.append(read_image(str(uri)))
        except DataError:  # an unreadable image is the training pipeline's error to report
            continue
    framing = measure_framing(images)
    return framing.as_dict() if framing else None


def trained_classes(train_table: pd.DataFrame) -> list[str] | None:
    """The expression classes the training faces hold, by name in the head's order, for the
    card: a model trained on three of them chooses among those three wherever its file and
    card go (the predictor reads them when no metrics of its run are beside the file)."""
    if "expression" not in train_table.columns or not len(train_table):
        return None
    present = {int(code) for code in pd.unique(train_table["expression"])}
    return [name for code, name in enumerate(EXPRESSIONS) if code in present]


def read_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """A model card as notebook 04 wrote it, None where there is none, so a figure that marks
    the epoch kept can do without it."""
    path = Path(path)
    return read_json(path) if path.is_file() else None


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """History CSV as a DataFrame, one row per epoch (a repeated epoch keeps its last row)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame({"epoch": pd.Series(dtype=int)})
    history = pd.read_csv(path)
    return history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def write_history(history: pd.DataFrame, path: Path) -> None:
    """Rewrite the CSV (after dropping epochs a resume will redo)."""
    if history.empty:
        path.unlink(missing_ok=True)
    else:
        history.to_csv(path, index=False)


def augment_sha256(settings: AugmentSettings | Mapping[str, Any] | None) -> str | None:
    """sha256 of notebook 03's augmentation settings as training reads them, for the card."""
    if not settings:
        return None
    values = settings.to_dict() if isinstance(settings, AugmentSettings) else dict(settings)
    text = json.dumps(json_ready(values), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def trained_on_training_data(run: RunFolder, model: str) -> bool | None:
    """Whether the model now in the run folder trained on the training table and augmentation
    notebook 03 now leaves (train.parquet, augment.json): run again with other augmentation on
    the same split, its test figures still hold, but a report describing augment.json would
    describe another training; None where it cannot be told (no card, an older card, one
    trained without notebook 03's settings, or a card or table that cannot be read)."""
    card = run.card_path(model)
    if not card.is_file() or not run.train_table.is_file():
        return None
    try:
        data = read_json(card).get("data")
        if not isinstance(data, Mapping) or data.get("augment_sha256") is None:
            return None  # an older card, or training given no settings: nothing to compare
        if "train_hash" not in data:
            return None
        settings = (
            AugmentSettings.read(run.augment_settings) if run.augment_settings.is_file() else None
        )
        if data["augment_sha256"] != augment_sha256(settings):
            return False
        return bool(data["train_hash"] == train_table_hash(run.train_table))
    except DataError:
        return None  # a malformed card or settings file: not this sentence's to say


@lru_cache(maxsize=8)
def _table_hash(path: str, size: int, mtime_ns: int) -> str:
    """data_hash of a records table, read once per version of the file in this process (size
    and time key the cache only: the digest itself is of the contents)."""
    return data_hash(load_records(path))


def train_table_hash(path: Path) -> str:
    """data_hash of a run's train.parquet, computed once per version of the file, however many
    models' cards are compared with it."""
    stat = path.stat()
    return _table_hash(str(path), stat.st_size, stat.st_mtime_ns)


def data_hash(table: pd.DataFrame) -> str:
    """sha256 of ids and labels in id order: the same data gives the same hash on any machine."""
    order = np.argsort(table["id"].astype(str).to_numpy(), kind="stable")
    digest = hashlib.sha256()
    points = landmarks_array(table) if "landmarks" in table.columns else None
    columns = {
        c: table[c].to_numpy() for c in ("expression", "valence", "arousal") if c in table.columns
    }
    ids = table["id"].astype(str).to_numpy()
    for i in order:
        labels = "\t".join(f"{float(columns[c][i])!r}" for c in columns)
        digest.update(f"{ids[i]}\t{labels}\n".encode())
        if points is not None and not np.isnan(points[i]).all():
            digest.update(points[i].astype("<f4").tobytes())
    return digest.hexdigest()


def _throughput(history: pd.DataFrame) -> float | None:
    """Median training images/s, leaving out each phase's first epoch (graph tracing, cache
    fill)."""
    if "train_images_per_s" not in history.columns or history.empty:
        return None
    steady = history
    if "phase" in history.columns:
        later = history[history["phase"].duplicated()]
        steady = later if len(later) else history
    values = steady["train_images_per_s"].dropna()
    return float(statistics.median(values)) if len(values) else None


def make_card(
    cfg: TrainConfig,
    model: keras.Model,
    history: pd.DataFrame,
    monitor: str,
    phases: list[Phase],
    notes: dict[str, Any],
) -> dict[str, Any]:
    """The model card: how the model was made and how it did on validation."""
    import keras

    from helpers.models.factory import model_metadata
    from helpers.train import backend

    best: dict[str, Any] = {"monitor": monitor, "value": None, "epoch": None, "metrics": {}}
    if monitor in history.columns and np.isfinite(history[monitor].to_numpy(float)).any():
        row = history.iloc[best_index(history[monitor].to_numpy(float), monitor)]
        best.update(
            value=float(row[monitor]),
            epoch=int(row["epoch"]) + 1,
            metrics={
                k: float(row[k])
                for k in history.columns
                if k.startswith("val_") and pd.notna(row[k])
            },
        )
    return json_ready(
        {
            "model": cfg.model,
            "architecture": model_metadata(model),
            "parameters": cfg.to_dict(),
            "profile": cfg.profile,
            "seed": cfg.seed,
            "phases": [dataclasses.asdict(p) for p in phases],
            "epochs_run": len(history),
            "best_epoch": best["epoch"],  # 1-based, as Keras prints it
            "best": best,
            "training_time_s": float(history["time_s"].sum()) if "time_s" in history else None,
            "images_per_s": _throughput(history),
            "versions": {
                **backend.versions(),
                "keras": keras.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            # the weights alone: equal for the same training, where the file's sha256 is not
            "weights_sha256": weights_sha256(model.get_weights()),
            **notes,
        }
    )
