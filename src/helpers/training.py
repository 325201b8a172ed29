"""Train one model on a run folder's tables: compile, two-phase fit, callbacks, history, card.

Everything a run needs to be resumed lives in `<out_dir>/checkpoints/<model>/`: the Keras
BackupAndRestore state of the phase in progress, the final weights of finished phases and
`progress.json`. Calling `train` again with the same configuration continues from the last
finished epoch; the folder is deleted when training completes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import platform
import shutil
import statistics
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers import config as config_module
from helpers import losses as losses_module
from helpers import models as models_module
from helpers.augment import AugmentConfig, make_online_augmenter
from helpers.errors import ConfigError, DataError
from helpers.losses import HEADS, LANDMARK_LOSSES, VA_LOSSES
from helpers.pipeline import (
    EpochClock, cache_bytes, make_dataset, surface_data_errors,
)
from helpers.metrics import json_ready
from helpers.records import landmarks_array, load_records

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
CACHE_MODES = ("auto", "memory", "disk", "none")
# Fields that must match a backup for it to be resumed (the rest may change between calls).
_RESUME_KEYS = ("model", "image_size", "channels", "heads", "batch_size", "learning_rate",
                "optimizer", "va_loss", "label_smoothing", "landmark_loss", "loss_weights",
                "transfer", "trainable_top_n", "warmup_epochs", "finetune_lr", "weights",
                "shared_units", "dropout", "n_classes", "seed")


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; validated on creation, saved in the model card.

    transfer is the backbone's trainability after the warm-up: "frozen", "top_n" (the last
    trainable_top_n backbone layers) or "full". With pretrained weights and warmup_epochs > 0,
    phase 1 trains the heads on a frozen backbone at learning_rate, phase 2 unfreezes at
    finetune_lr (default learning_rate / 10). A randomly initialised backbone has nothing to
    protect: it trains whole, in a single phase at learning_rate.
    """

    model: str
    image_size: int = 96
    channels: int = 3
    heads: tuple[str, ...] = HEADS
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float | None = None   # None: the backbone's (models.default_learning_rate)
    optimizer: str = "adam"
    va_loss: str = "mse"
    label_smoothing: float = 0.0
    landmark_loss: str = "mse"
    loss_weights: dict[str, float] | None = None
    transfer: str = "full"
    trainable_top_n: int = 20
    warmup_epochs: int = 0
    finetune_lr: float | None = None
    weights: str | None = None           # None | "imagenet" | path to a weights file
    weights_fallback: str = "random"     # when ImageNet is unavailable: random | error | path
    shared_units: int = 256
    dropout: float = 0.3
    n_classes: int = 8
    early_stopping_patience: int = 5
    reduce_lr_patience: int = 2
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-6
    max_steps_per_epoch: int | None = None  # each epoch: this many batches of a fresh shuffle
    time_budget_minutes: float | None = None  # stop before an epoch would end past this budget
    seed: int = 0
    mixed_precision: str | bool = "auto"  # "auto": on when a GPU is present
    tensorboard: bool = False
    cache: str = "auto"                  # auto | memory | disk | none (decoded images)
    cache_memory_limit_gb: float = 2.0   # "auto" caches in memory up to this size, else on disk
    profile: str | None = None
    verbose: int = 2                     # Keras: 0 silent, 1 progress bar, 2 one line per epoch

    def __post_init__(self) -> None:
        """Normalise (lists from papermill become tuples) and reject bad values by field name."""
        heads = (self.heads,) if isinstance(self.heads, str) else tuple(self.heads)
        object.__setattr__(self, "heads", tuple(h for h in HEADS if h in heads))
        if not heads or set(heads) - set(HEADS) or len(set(heads)) != len(heads):
            self._fail("heads", f"must be a non-empty subset of {HEADS}", heads)
        if self.model not in models_module.available_models():
            self._fail("model", f"must be one of {models_module.available_models()}")
        for name, low in (("image_size", 8), ("channels", 1), ("epochs", 1), ("batch_size", 1),
                          ("trainable_top_n", 0), ("warmup_epochs", 0), ("shared_units", 1),
                          ("n_classes", 2), ("early_stopping_patience", 0),
                          ("reduce_lr_patience", 0), ("seed", 0)) + (
                              (("max_steps_per_epoch", 1),)
                              if self.max_steps_per_epoch is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                self._fail(name, f"must be an integer >= {low}")
        if self.channels not in (1, 3):
            self._fail("channels", "must be 1 (grayscale) or 3 (RGB)")
        for name in ("min_lr", "cache_memory_limit_gb") + (
                ("learning_rate",) if self.learning_rate is not None else ()) + (
                ("finetune_lr",) if self.finetune_lr is not None else ()) + (
                ("time_budget_minutes",) if self.time_budget_minutes is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                self._fail(name, "must be a positive number")
        for name, low, high in (("label_smoothing", 0.0, 1.0), ("dropout", 0.0, 1.0),
                                ("reduce_lr_factor", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    low <= value < high) or (name == "reduce_lr_factor" and value == 0):
                self._fail(name, f"must be a number in [{low}, {high})")
        choices = {"optimizer": OPTIMIZERS, "va_loss": VA_LOSSES, "landmark_loss": LANDMARK_LOSSES,
                   "transfer": models_module.TRANSFER_MODES, "cache": CACHE_MODES,
                   "mixed_precision": ("auto", True, False), "verbose": (0, 1, 2)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed or isinstance(getattr(self, name), float):
                self._fail(name, f"must be one of {list(allowed)}")
        if self.loss_weights is not None:
            object.__setattr__(self, "loss_weights", dict(self.loss_weights))
            try:
                losses_module.default_loss_weights(self.heads, self.loss_weights)
            except ConfigError as error:
                self._fail("loss_weights", str(error))
        if self.weights not in (None, "imagenet"):
            object.__setattr__(self, "weights", os.fspath(self.weights))

    def _fail(self, name: str, problem: str, value: Any = dataclasses.MISSING) -> None:
        """Every error names the field, so a notebook user knows which parameter to fix."""
        shown = getattr(self, name) if value is dataclasses.MISSING else value
        raise ConfigError(f"TrainConfig.{name} {problem} (got {shown!r})")

    @classmethod
    def from_profile(cls, profile: str, model: str, **overrides: Any) -> TrainConfig:
        """Profile values (with its per-model values, config.resolve), then non-None overrides.

        Pretrained profiles (weights set) default to a 2-epoch warm-up and top_n fine-tuning.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown parameter(s) {unknown}; known: {sorted(known)}")
        resolved = config_module.resolve(profile, model=model)
        values: dict[str, Any] = {"profile": resolved["name"]}
        if resolved.get("weights") is not None:
            values.update(transfer="top_n", warmup_epochs=min(2, max(resolved["epochs"] - 1, 0)))
        values.update({k: v for k, v in resolved.items() if k in known and k != "model"})
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(model=model, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values for the model card."""
        d = dataclasses.asdict(self)
        d["heads"] = list(self.heads)
        return d

    def first_lr(self, pretrained: bool) -> float:
        """The learning rate training starts at: the one given, or the backbone's default."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return models_module.default_learning_rate(self.model, pretrained)

    @property
    def phase2_lr(self) -> float:
        """Fine-tuning learning rate (pretrained backbones)."""
        return (self.finetune_lr if self.finetune_lr is not None
                else self.first_lr(pretrained=True) / 10)


@dataclass(frozen=True)
class Phase:
    """One fit() call: which epochs, what the backbone may change, at which learning rate."""

    name: str
    transfer: str
    learning_rate: float
    first_epoch: int   # 0-based, inclusive
    end_epoch: int     # exclusive


def plan_phases(cfg: TrainConfig, pretrained: bool) -> list[Phase]:
    """The schedule: warm-up on a frozen backbone then fine-tuning, or a single phase.

    A randomly initialised backbone always trains whole: frozen random layers only hold back.
    """
    lr = cfg.first_lr(pretrained)
    if not pretrained:
        return [Phase("train", "full", lr, 0, cfg.epochs)]
    if cfg.warmup_epochs > 0 and cfg.transfer != "frozen":
        warm = min(cfg.warmup_epochs, cfg.epochs)
        phases = [Phase("warmup", "frozen", lr, 0, warm)]
        if cfg.epochs > warm:
            phases.append(Phase("finetune", cfg.transfer, cfg.phase2_lr, warm, cfg.epochs))
        return phases
    return [Phase("train", cfg.transfer, lr, 0, cfg.epochs)]


# --------------------------------------------------------------------------- inputs

@dataclass
class TrainingInputs:
    """What notebook 03 left for training: the balanced train table, val rows, settings."""

    train: pd.DataFrame
    val: pd.DataFrame
    augment: dict[str, Any] | None


def load_training_inputs(run_dir: str | os.PathLike) -> TrainingInputs:
    """train.parquet, the val rows of splits.parquet and augment.json (optional) of a run."""
    run = Path(run_dir)
    splits = load_records(run / "splits.parquet")
    settings_path = run / "augment.json"
    settings = None
    if settings_path.is_file():
        try:
            settings = json.loads(settings_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(settings_path, f"not valid JSON ({exc})") from exc
    return TrainingInputs(load_records(run / "train.parquet"),
                          splits[splits["split"] == "val"].reset_index(drop=True), settings)


def _augment_options(settings: Mapping[str, Any] | None,
                     seed: int) -> tuple[Any, dict[int, float] | None]:
    """Online augmenter and class weights from augment.json (either may be absent)."""
    if not settings:
        return None, None
    augmenter = None
    if settings.get("online"):
        cfg = AugmentConfig.from_dict(settings.get("config") or {})
        augmenter = make_online_augmenter(cfg, int(settings.get("seed", seed)))
    weights = settings.get("class_weights")
    return augmenter, ({int(k): float(v) for k, v in weights.items()} if weights else None)


def data_hash(table: pd.DataFrame) -> str:
    """sha256 of ids and labels in id order: the same data gives the same hash on any machine."""
    order = np.argsort(table["id"].astype(str).to_numpy(), kind="stable")
    digest = hashlib.sha256()
    points = landmarks_array(table) if "landmarks" in table.columns else None
    columns = {c: table[c].to_numpy() for c in ("expression", "valence", "arousal")
               if c in table.columns}
    ids = table["id"].astype(str).to_numpy()
    for i in order:
        labels = "\t".join(f"{float(columns[c][i])!r}" for c in columns)
        digest.update(f"{ids[i]}\t{labels}\n".encode())
        if points is not None and not np.isnan(points[i]).all():
            digest.update(points[i].astype("<f4").tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- callbacks

class _EpochTimer(keras.callbacks.Callback):
    """Adds time_s (whole epoch) and train_images_per_s (training steps only) to the logs."""

    def __init__(self, images_per_epoch: int, phase: int):
        super().__init__()
        self.images, self.phase = images_per_epoch, phase
        self.start = self.train_end = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start, self.train_end = time.perf_counter(), 0.0

    def on_test_begin(self, logs: dict | None = None) -> None:
        if not self.train_end:  # validation starts when the epoch's training steps end
            self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        train_s = (self.train_end or now) - self.start
        if logs is not None:
            logs["time_s"] = now - self.start
            logs["train_images_per_s"] = self.images / train_s if train_s > 0 else float("nan")
            logs["phase"] = self.phase


class TimeBudget(keras.callbacks.Callback):
    """Stop before the next epoch would end past the budget; the best checkpoint is kept.

    Counts training time across phases and resumed runs (`spent_s` from the history), so a
    laptop user can say "train for at most an hour" and get the best model found in that hour.
    """

    def __init__(self, minutes: float, spent_s: float = 0.0):
        super().__init__()
        self.budget_s = minutes * 60.0
        self.spent_s = spent_s
        self.stopped = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        last = time.perf_counter() - self._start
        self.spent_s += last
        if self.spent_s + last > self.budget_s:
            self.stopped = True
            self.model.stop_training = True
            print(f"time budget: {self.spent_s / 60:.1f} of {self.budget_s / 60:.0f} min used; "
                  "another epoch would not fit, stopping with the best model so far")


class _RestoreProgress(keras.callbacks.Callback):
    """After a resume, give EarlyStopping and ReduceLROnPlateau the best/wait they had.

    Both reset themselves in on_train_begin; this runs after them (later in the list).
    """

    def __init__(self, targets: Sequence[keras.callbacks.Callback], best: float | None,
                 wait: int):
        super().__init__()
        self.targets, self.best, self.wait = targets, best, wait

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.best is None:
            return
        for callback in self.targets:
            callback.best, callback.wait = self.best, self.wait


# --------------------------------------------------------------------------- results

@dataclass
class TrainResult:
    """The best model (reloaded from its file), the history, the model card and the paths."""

    model: keras.Model
    history: pd.DataFrame
    card: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def run_paths(out_dir: str | os.PathLike, model: str) -> dict[str, Path]:
    """Where train() writes for one model name."""
    out = Path(out_dir)
    return {"model": out / "models" / f"{model}.keras", "card": out / "models" / f"{model}.json",
            "history": out / "history" / f"{model}.csv",
            "tensorboard": out / "tensorboard" / model,
            "checkpoints": out / "checkpoints" / model, "cache": out / "cache" / model}


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """History CSV as a DataFrame, one row per epoch (a repeated epoch keeps its last row)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame({"epoch": pd.Series(dtype=int)})
    history = pd.read_csv(path)
    return history.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def _write_history(history: pd.DataFrame, path: Path) -> None:
    """Rewrite the CSV (after dropping epochs a resume will redo)."""
    if history.empty:
        path.unlink(missing_ok=True)
    else:
        history.to_csv(path, index=False)


# --------------------------------------------------------------------------- environment

@contextlib.contextmanager
def _dtype_policy(mixed: bool) -> Iterator[None]:
    """mixed_float16 for the model built inside, restoring the global policy afterwards."""
    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _use_mixed_precision(setting: str | bool) -> bool:
    """"auto": on with a GPU, where float16 is fast; on a CPU it only slows things down."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(setting)


def _strategy() -> tf.distribute.Strategy:
    """Data parallelism over every visible GPU, else the default (single device) strategy."""
    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


class _Collect(logging.Handler):
    """Collects helpers.models warnings (the ImageNet fallback message) for the model card."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _build(cfg: TrainConfig) -> tuple[keras.Model, bool, list[str]]:
    """The model, whether its backbone is pretrained, and any fallback message."""
    collector, models_log = _Collect(), logging.getLogger(models_module.__name__)
    models_log.addHandler(collector)
    try:
        model = models_module.build_model(
            cfg.model, image_size=cfg.image_size, channels=cfg.channels, heads=cfg.heads,
            weights=cfg.weights, weights_fallback=cfg.weights_fallback, transfer=None,
            trainable_top_n=cfg.trainable_top_n, shared_units=cfg.shared_units,
            dropout=cfg.dropout, n_classes=cfg.n_classes, seed=cfg.seed)
    finally:
        models_log.removeHandler(collector)
    # With transfer=None, build_model freezes the backbone exactly when weights were loaded.
    return model, models_module.transfer_mode(model) == "frozen", collector.messages


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer (each phase gets its own, since trainable weights change)."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    return {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
            "rmsprop": keras.optimizers.RMSprop}[name](learning_rate)


def _compile(model: keras.Model, cfg: TrainConfig, learning_rate: float) -> None:
    """Masked losses and metrics per head (helpers.losses)."""
    model.compile(
        optimizer=_optimizer(cfg.optimizer, learning_rate),
        loss=losses_module.build_losses(cfg.heads, va_loss=cfg.va_loss,
                                        label_smoothing=cfg.label_smoothing,
                                        landmark_loss=cfg.landmark_loss, n_classes=cfg.n_classes),
        loss_weights=losses_module.default_loss_weights(cfg.heads, cfg.loss_weights),
        metrics=losses_module.build_metrics(cfg.heads))


# --------------------------------------------------------------------------- resume bookkeeping

def _read_progress(path: Path) -> dict[str, Any]:
    """progress.json of an interrupted run, or an empty record."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(path, f"damaged resume record ({exc}); pass resume=False to start over"
                        ) from exc


def _check_resumable(progress: dict[str, Any], cfg: TrainConfig, data: str, where: Path) -> None:
    """Refuse to continue a backup made with other settings or other data."""
    saved = progress.get("config", {})
    ours = cfg.to_dict()
    changed = [k for k in _RESUME_KEYS if k in saved and saved[k] != ours[k]]
    if changed:
        raise ConfigError(f"{where} holds an interrupted run with other settings "
                          f"({', '.join(changed)}); pass resume=False to start over")
    if progress.get("data_hash") not in (None, data):
        raise ConfigError(f"{where} holds an interrupted run on other training data; "
                          "pass resume=False to start over")


def _backup_epoch(backup_dir: Path) -> int | None:
    """The epoch BackupAndRestore will resume at, if it saved one."""
    meta = backup_dir / "training_metadata.json"
    if not meta.is_file():
        return None
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(meta, f"damaged backup ({exc}); pass resume=False to start over") from exc


def _best_so_far(history: pd.DataFrame, monitor: str) -> tuple[float | None, int]:
    """Best monitored value in the history and the epochs since it (for a resumed phase)."""
    if monitor not in history.columns:
        return None, 0
    values = history[monitor].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return None, 0
    best = int(np.nanargmin(values))
    return float(values[best]), len(values) - 1 - best


# --------------------------------------------------------------------------- card

def _throughput(history: pd.DataFrame) -> float | None:
    """Median training images/s, leaving out each phase's first epoch (graph tracing, cache fill)."""
    if "train_images_per_s" not in history.columns or history.empty:
        return None
    steady = history
    if "phase" in history.columns:
        later = history[history["phase"].duplicated()]
        steady = later if len(later) else history
    values = steady["train_images_per_s"].dropna()
    return float(statistics.median(values)) if len(values) else None


def _make_card(cfg: TrainConfig, model: keras.Model, history: pd.DataFrame, monitor: str,
               phases: list[Phase], notes: dict[str, Any]) -> dict[str, Any]:
    """The model card: how the model was made and how it did on validation."""
    best: dict[str, Any] = {"monitor": monitor, "value": None, "epoch": None, "metrics": {}}
    if monitor in history.columns and np.isfinite(history[monitor].to_numpy(float)).any():
        row = history.iloc[int(np.nanargmin(history[monitor].to_numpy(float)))]
        best.update(value=float(row[monitor]), epoch=int(row["epoch"]) + 1,
                    metrics={k: float(row[k]) for k in history.columns
                             if k.startswith("val_") and pd.notna(row[k])})
    return json_ready({
        "model": cfg.model,
        "architecture": models_module.model_metadata(model),
        "parameters": cfg.to_dict(),
        "profile": cfg.profile,
        "seed": cfg.seed,
        "phases": [dataclasses.asdict(p) for p in phases],
        "epochs_run": int(len(history)),
        "best_epoch": best["epoch"],  # 1-based, as Keras prints it
        "best": best,
        "training_time_s": float(history["time_s"].sum()) if "time_s" in history else None,
        "images_per_s": _throughput(history),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **notes,
    })


# --------------------------------------------------------------------------- train

def _cache_targets(cfg: TrainConfig, tables: dict[str, pd.DataFrame],
                   cache_dir: Path) -> dict[str, bool | Path]:
    """Per table: memory (True), none (False) or a memory-mapped file under cache_dir."""
    need = sum(cache_bytes(t, cfg.image_size, cfg.channels) for t in tables.values())
    mode = cfg.cache
    if mode == "auto":
        mode = "memory" if need <= cfg.cache_memory_limit_gb * (1 << 30) else "disk"
    if mode == "disk":
        return {name: cache_dir / f"{name}.npy" for name in tables}
    return {name: mode == "memory" for name in tables}


def _datasets(cfg: TrainConfig, train_table: pd.DataFrame, val_table: pd.DataFrame | None,
              augment_settings: Mapping[str, Any] | None, cache_dir: Path
              ) -> tuple[tf.data.Dataset, tf.data.Dataset | None, EpochClock, dict[str, Any]]:
    """Training and validation pipelines, the clock fit() drives, and facts for the card."""
    augmenter, class_weights = _augment_options(augment_settings, cfg.seed)
    has_val = val_table is not None and len(val_table) > 0
    tables = {"train": train_table, **({"val": val_table} if has_val else {})}
    caches = _cache_targets(cfg, tables, cache_dir)
    clock = EpochClock()
    common = dict(image_size=cfg.image_size, channels=cfg.channels,
                  batch_size=cfg.batch_size, heads=cfg.heads, seed=cfg.seed)
    train_ds = make_dataset(train_table, training=True, augmenter=augmenter,
                            cache=caches["train"], class_weights=class_weights,
                            epoch_clock=clock, **common)
    n_seen = len(train_table)
    if cfg.max_steps_per_epoch is not None:  # a new random subset every epoch, same clock
        train_ds = train_ds.take(cfg.max_steps_per_epoch)
        n_seen = min(n_seen, cfg.max_steps_per_epoch * cfg.batch_size)
    val_ds = make_dataset(val_table, training=False, cache=caches["val"],
                          **common) if has_val else None
    facts = {"train_rows": len(train_table), "images_per_epoch": n_seen,
             "val_rows": len(val_table) if has_val else 0,
             "val_hash": data_hash(val_table) if has_val else None,
             "cache": {k: str(v) if isinstance(v, Path) else ("memory" if v else "none")
                       for k, v in caches.items()},
             "online_augmentation": augmenter is not None, "class_weights": class_weights}
    return train_ds, val_ds, clock, facts


def train(cfg: TrainConfig, train_table: pd.DataFrame, val_table: pd.DataFrame | None,
          out_dir: str | os.PathLike, augment_settings: Mapping[str, Any] | None = None,
          resume: bool = True,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Fit cfg.model and write model, history, card (and resume state while running).

    augment_settings: augment.json of notebook 03 (online augmentation, class weights).
    resume: continue an interrupted run from `<out_dir>/checkpoints/<model>/`; False starts
    over. callbacks: extra Keras callbacks, given to every phase.
    """
    started = time.perf_counter()
    paths = run_paths(out_dir, cfg.model)
    for key in ("model", "history"):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
    ckpt = paths["checkpoints"]
    if not resume:
        shutil.rmtree(ckpt, ignore_errors=True)
    progress_path = ckpt / "progress.json"
    progress = _read_progress(progress_path)
    train_hash = data_hash(train_table)
    _check_resumable(progress, cfg, train_hash, ckpt)
    resuming = bool(progress)
    if not resuming:
        paths["history"].unlink(missing_ok=True)  # a fresh run owns its history

    keras.utils.set_random_seed(cfg.seed)
    mixed = _use_mixed_precision(cfg.mixed_precision)
    strategy = _strategy()
    with _dtype_policy(mixed), strategy.scope():
        model, pretrained, build_messages = _build(cfg)
    phases = plan_phases(cfg, pretrained)
    notes: dict[str, Any] = {
        "weights_fallback": " ".join(build_messages) or None,
        "pretrained_backbone": pretrained,
        "mixed_precision": mixed,
        "strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
        "devices": [d.name for d in tf.config.list_logical_devices()
                    if d.device_type in ("GPU", "CPU")],
        "resumed": resuming,
    }
    if not pretrained and (cfg.warmup_epochs or cfg.transfer != "full"):
        notes["schedule_note"] = ("the backbone is randomly initialised, so it trains whole "
                                  "from the first epoch (warm-up and transfer mode unused)")
    tensorboard = cfg.tensorboard and importlib.util.find_spec("tensorboard") is not None
    if cfg.tensorboard and not tensorboard:
        notes["tensorboard_note"] = "tensorboard is not installed; no logs written"
        log.warning("tensorboard is not installed; the TensorBoard callback is skipped")

    train_ds, val_ds, clock, notes["data"] = _datasets(cfg, train_table, val_table,
                                                       augment_settings, paths["cache"])
    notes["data"]["train_hash"] = train_hash
    monitor = "val_loss" if val_ds is not None else "loss"
    progress = {"config": cfg.to_dict(), "data_hash": train_hash,
                "done": progress.get("done", [])}
    ckpt.mkdir(parents=True, exist_ok=True)
    progress_path.write_text(json.dumps(json_ready(progress), indent=2))

    budget = None
    if cfg.time_budget_minutes is not None:
        spent = read_history(paths["history"])
        budget = TimeBudget(cfg.time_budget_minutes,
                            float(spent["time_s"].sum()) if "time_s" in spent else 0.0)
    try:
        for index, phase in enumerate(phases, start=1):
            phase_weights = ckpt / f"{phase.name}.weights.h5"
            if phase.name in progress["done"] and phase_weights.is_file():
                model.load_weights(phase_weights)
                continue
            if budget is not None and budget.stopped:
                break
            _run_phase(model, cfg, phase, index, train_ds, val_ds, clock, monitor, paths,
                       notes["data"]["images_per_epoch"], strategy, tensorboard,
                       [*callbacks, *([budget] if budget else [])])
            if index < len(phases):  # the next phase starts from these weights, even on resume
                model.save_weights(phase_weights)
                progress["done"].append(phase.name)
                progress_path.write_text(json.dumps(json_ready(progress), indent=2))
    finally:
        _remove(paths["cache"])

    if not paths["model"].is_file():  # no finite monitored value ever: keep the last state
        model.save(paths["model"])
    history = read_history(paths["history"])
    best_model = load_trained(paths["model"])
    _compile(best_model, cfg, phases[-1].learning_rate)  # ready for evaluate(), fresh optimizer
    card = _make_card(cfg, best_model, history, monitor, phases, notes)
    card["wall_time_s"] = time.perf_counter() - started
    card["params"] = int(best_model.count_params())
    if budget is not None:
        card["stopped_by_time_budget"] = budget.stopped
    paths["card"].write_text(json.dumps(card, indent=2, allow_nan=False))
    _remove(ckpt)  # finished: nothing left to resume
    return TrainResult(best_model, history, card, paths)


def _remove(folder: Path) -> None:
    """Delete a per-model work folder, and its parent (checkpoints/, cache/) once empty."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()


def _run_phase(model: keras.Model, cfg: TrainConfig, phase: Phase, index: int,
               train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None, clock: EpochClock,
               monitor: str, paths: dict[str, Path], n_train: int,
               strategy: tf.distribute.Strategy, tensorboard: bool,
               extra: Sequence[keras.callbacks.Callback]) -> None:
    """One fit() with its own backup folder; resumes it if a backup is there."""
    backup_dir = paths["checkpoints"] / phase.name
    restart_at = _backup_epoch(backup_dir) or phase.first_epoch
    history = read_history(paths["history"])
    history = history[history["epoch"] < restart_at]  # epochs after the backup are redone
    _write_history(history, paths["history"])
    best_overall, _ = _best_so_far(history, monitor)
    best_here, wait_here = _best_so_far(history[history["epoch"] >= phase.first_epoch], monitor)

    with strategy.scope():
        models_module.set_transfer_mode(model, phase.transfer, cfg.trainable_top_n)
        _compile(model, cfg, phase.learning_rate)
    model._initial_epoch = None  # set by a previous phase's BackupAndRestore; Keras reads it

    early = keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.early_stopping_patience,
                                          restore_best_weights=True, verbose=int(cfg.verbose > 0))
    plateau = keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=cfg.reduce_lr_factor,
                                                patience=cfg.reduce_lr_patience, min_lr=cfg.min_lr,
                                                verbose=int(cfg.verbose > 0))
    callbacks: list[keras.callbacks.Callback] = [
        clock.callback(),
        _EpochTimer(n_train, index),
        keras.callbacks.ModelCheckpoint(paths["model"], monitor=monitor, save_best_only=True,
                                        initial_value_threshold=best_overall),
        early, plateau, _RestoreProgress([early, plateau], best_here, wait_here),
        keras.callbacks.CSVLogger(paths["history"], append=True),
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(paths["tensorboard"]))
    callbacks.extend(extra)
    with surface_data_errors():
        model.fit(train_ds, validation_data=val_ds, epochs=phase.end_epoch,
                  initial_epoch=phase.first_epoch, callbacks=callbacks, verbose=cfg.verbose,
                  shuffle=False)
    model._initial_epoch = None


# --------------------------------------------------------------------------- loading

def custom_objects() -> dict[str, Any]:
    """Classes a saved model refers to (also registered; listed for safe_mode loading)."""
    objects: dict[str, Any] = {"Preprocess": models_module.Preprocess}
    for name in ("MaskedSparseCategoricalCrossentropy", "MaskedMSE", "MaskedCCCLoss",
                 "MaskedLandmarkLoss", "MaskedAccuracy", "MaskedRMSE", "MaskedCCC"):
        objects[name] = getattr(losses_module, name)
    return objects


def _one_line(error: BaseException) -> str:
    """Keras errors span lines and quote configs; a DataError message stays short."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_trained(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """A model saved by train(), loaded with safe_mode (no code from the file runs).

    A missing, damaged, altered or foreign file is a DataError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "model file not found")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise DataError(path, "not a Keras .keras model file")
    try:
        model = keras.saving.load_model(path, custom_objects=custom_objects(), compile=compile,
                                        safe_mode=True)
    except Exception as error:  # Keras raises ValueError, KeyError, OSError, zip errors...
        raise DataError(path, "cannot load the model: the file is damaged, was altered, or "
                              f"was not written by this project ({_one_line(error)})") from error
    if not isinstance(model, keras.Model) or "preprocess" not in {
            layer.name for layer in model.layers}:
        raise DataError(path, "not a model built by helpers.models (no 'preprocess' layer)")
    return model
