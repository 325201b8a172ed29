"""Train one model on a run folder's tables: build, compile and fit it phase by phase.

train() ties the other train modules together: the settings and phase plan (config), the
callbacks, the resume bookkeeping in `<out_dir>/checkpoints/<model>/` (resume) and the files
it leaves behind (card). Calling `train` again with the same configuration continues from the
last finished epoch, or, once training ended, gives back the model it left without training it
again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import pandas as pd

from helpers.core import trained
from helpers.core.jsonio import json_ready, write_text
from helpers.core.progress import line, say
from helpers.core.records import load_records
from helpers.core.run_folder import RunFolder
from helpers.core.words import counted
from helpers.data.augment import AugmentSettings, make_online_augmenter
from helpers.models import factory, train_metrics, transfer
from helpers.models import losses as losses_module
from helpers.models.saving import load_trained, partial_path, save_whole
from helpers.train import backend
from helpers.train.averaging import (
    RECOMPUTE_BATCHES,
    WeightAverage,
    recompute_batchnorm,
    some_batches,
)
from helpers.train.callbacks import (
    CosineAnneal,
    EpochLine,
    EpochTimer,
    PublishModel,
    RestoreProgress,
    TimeBudget,
    start_line,
)
from helpers.train.card import (
    augment_sha256,
    data_hash,
    face_framing,
    make_card,
    read_card,
    read_history,
    trained_classes,
    write_history,
)
from helpers.train.config import Phase, TrainConfig, plan_phases
from helpers.train.pipeline import (
    EpochClock,
    cache_bytes,
    make_dataset,
    make_pydataset,
    surface_data_errors,
)
from helpers.train.resume import (
    backup_epoch,
    best_so_far,
    check_resumable,
    higher_is_better,
    read_progress,
    replacing_line,
    resuming_line,
)

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs


@dataclass
class TrainingInputs:
    """What notebook 03 left for training: the balanced train table, val rows, settings."""

    train: pd.DataFrame
    val: pd.DataFrame
    augment: AugmentSettings | None


def load_training_inputs(run_dir: str | os.PathLike) -> TrainingInputs:
    """train.parquet, the val rows of splits.parquet and augment.json (optional) of a run."""
    run = RunFolder(run_dir)
    splits = load_records(run.need(run.splits))  # missing: says to run notebook 03 first
    settings = (
        AugmentSettings.read(run.augment_settings) if run.augment_settings.is_file() else None
    )
    return TrainingInputs(
        load_records(run.need(run.train_table)),
        splits[splits["split"] == "val"].reset_index(drop=True),
        settings,
    )


def _augment_options(
    settings: AugmentSettings | Mapping[str, Any] | None, online: bool = True
) -> tuple[Any, dict[int, float] | None]:
    """Online augmenter and class weights from notebook 03's settings (either may be absent);
    online=False (TrainConfig.online_augment) keeps the class weights but not the augmenter."""
    if not settings:
        return None, None
    if not isinstance(settings, AugmentSettings):
        settings = AugmentSettings.from_dict(settings)
    augment = settings.online and online
    augmenter = make_online_augmenter(settings.config, settings.seed) if augment else None
    return augmenter, settings.class_weights


# --------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """The best model (reloaded from its file), the history, the model card and the paths."""

    model: keras.Model
    history: pd.DataFrame
    card: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------- environment


@contextlib.contextmanager
def dtype_policy(policy: str | None) -> Iterator[None]:
    """A mixed dtype policy for the model built inside, restoring the global one afterwards."""
    previous = keras.config.dtype_policy()
    if policy:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _mixed_policy(setting: str | bool) -> str | None:
    """The Keras policy a mixed_precision setting means here: float16 where a GPU runs it fast,
    bfloat16 only where the hardware has it (emulated on other CPUs, it slows training)."""
    gpu = backend.gpu_count() > 0
    if setting == "bfloat16":
        if gpu or backend.cpu_runs_bfloat16():
            return "mixed_bfloat16"
        log.warning(
            "mixed_precision 'bfloat16': this CPU has no bfloat16 instructions; training in float32"
        )
        return None
    if setting == "auto":
        return "mixed_float16" if gpu else None
    return "mixed_float16" if setting else None


class _Collect(logging.Handler):
    """Collects helpers.models.factory warnings (the ImageNet fallback message) for the model
    card."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _build(
    cfg: TrainConfig,
) -> tuple[keras.Model, bool, list[str], str | None, dict[str, Any] | None]:
    """The model, whether its backbone is pretrained, any fallback message, what a weights
    file gave it (which layers keep their initial weights), said in the notebook and terminal,
    and what preparing a randomly initialised backbone did (None for a pretrained one)."""
    collector, models_log = _Collect(), logging.getLogger("helpers.models")
    models_log.addHandler(collector)
    loaded: list[str] = []
    from_scratch: dict[str, Any] = {}
    try:
        model = factory.build_model(
            cfg.model,
            image_size=cfg.image_size,
            channels=cfg.channels,
            heads=cfg.heads,
            weights=cfg.weights,
            weights_fallback=cfg.weights_fallback,
            transfer=None,
            trainable_top_n=cfg.trainable_top_n,
            shared_units=cfg.shared_units,
            dropout=cfg.dropout,
            pooling=cfg.pooling,
            backbone_options=cfg.backbone_options,
            n_classes=cfg.n_classes,
            seed=cfg.seed,
            loaded=loaded,
            from_scratch=from_scratch,
        )
    finally:
        models_log.removeHandler(collector)
    say(loaded)
    # With transfer=None, build_model freezes the backbone exactly when weights were loaded.
    pretrained = transfer.transfer_mode(model) == "frozen"
    prepared = None if pretrained else (from_scratch or None)
    return model, pretrained, collector.messages, (loaded[0] if loaded else None), prepared


# Variables weight decay leaves alone: a bias or BatchNorm's scale and offset shrunk to zero
# only moves the layer's output, it does not simplify the function.
NO_DECAY = ("bias", "gamma", "beta")


def _optimizer(
    name: str,
    learning_rate: float,
    ema_momentum: float | None = None,
    weight_decay: float | None = None,
) -> keras.optimizers.Optimizer:
    """A fresh optimizer (each phase gets its own, since trainable weights change)."""
    kwargs: dict[str, Any] = (
        {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum is not None else {}
    )
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    if name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, **kwargs)
    else:
        optimizer = {
            "adam": keras.optimizers.Adam,
            "adamw": keras.optimizers.AdamW,
            "rmsprop": keras.optimizers.RMSprop,
        }[name](learning_rate, **kwargs)
    if weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer


def _compile(model: keras.Model, cfg: TrainConfig, learning_rate: float) -> None:
    """Masked losses and metrics per head (helpers.models.losses)."""
    model.compile(
        optimizer=_optimizer(cfg.optimizer, learning_rate, cfg.ema_momentum, cfg.weight_decay),
        loss=losses_module.build_losses(
            cfg.heads,
            va_loss=cfg.va_loss,
            label_smoothing=cfg.label_smoothing,
            landmark_loss=cfg.landmark_loss,
            n_classes=cfg.n_classes,
        ),
        loss_weights=losses_module.default_loss_weights(cfg.heads, cfg.loss_weights),
        metrics=train_metrics.build_metrics(cfg.heads),
    )


def build_step_state(model: keras.Model, dataset: Any) -> None:
    """Create the optimizer's slots and the loss and metric trackers before fit() traces its
    step: TensorFlow traces a function twice when its first trace creates variables, and Keras
    leaves them to that trace where no tf.distribute strategy is set (ResNet50's one-epoch smoke
    training: 97 s with the second trace, 68 s without, on a 2-core AVX2 CPU; the same history)."""
    if keras.backend.backend() != "tensorflow" or not hasattr(dataset, "element_spec"):
        return
    import tensorflow as tf

    if tf.distribute.has_strategy():  # Keras builds these itself under a strategy
        return
    batch = tf.nest.map_structure(
        lambda spec: tf.zeros([1 if d is None else d for d in spec.shape], spec.dtype),
        dataset.element_spec,
    )
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
    model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


# --------------------------------------------------------------------------- train


def _cache_targets(
    cfg: TrainConfig, tables: dict[str, pd.DataFrame], cache_dir: Path
) -> dict[str, bool | Path]:
    """Per table: memory (True), none (False) or a memory-mapped file under cache_dir."""
    need = sum(cache_bytes(t, cfg.image_size, cfg.channels) for t in tables.values())
    mode = cfg.cache
    if mode == "auto":
        mode = "memory" if need <= cfg.cache_memory_limit_gb * (1 << 30) else "disk"
    if mode == "disk":
        return {name: cache_dir / f"{name}.npy" for name in tables}
    return dict.fromkeys(tables, mode == "memory")


def _datasets(
    cfg: TrainConfig,
    train_table: pd.DataFrame,
    val_table: pd.DataFrame | None,
    augment_settings: AugmentSettings | Mapping[str, Any] | None,
    cache_dir: Path,
) -> tuple[Any, Any, EpochClock, dict[str, Any]]:
    """Training and validation batches (tf.data or a PyDataset: the same batches), the clock
    fit() drives, and facts for the card."""
    augmenter, class_weights = _augment_options(augment_settings, cfg.online_augment)
    has_val = val_table is not None and len(val_table) > 0
    tables = {"train": train_table, **({"val": val_table} if has_val else {})}
    caches = _cache_targets(cfg, tables, cache_dir)
    clock = EpochClock()
    common = {
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "batch_size": cfg.batch_size,
        "heads": cfg.heads,
        "seed": cfg.seed,
        "n_classes": cfg.n_classes,
    }
    loader = backend.input_pipeline(cfg.input_pipeline)
    make = make_dataset if loader == "tf.data" else make_pydataset
    processes = backend.input_processes(
        cfg.input_processes, augmenting=augmenter is not None or cfg.mixing is not None
    )
    train_ds = make(
        train_table,
        training=True,
        augmenter=augmenter,
        cache=caches["train"],
        class_weights=class_weights,
        epoch_clock=clock,
        mixing=cfg.mixing,
        processes=processes,
        **common,
    )
    n_seen = len(train_table)
    if cfg.max_steps_per_epoch is not None:  # a new random subset every epoch, same clock
        train_ds = train_ds.take(cfg.max_steps_per_epoch)
        n_seen = min(n_seen, cfg.max_steps_per_epoch * cfg.batch_size)
    val_ds = make(val_table, training=False, cache=caches["val"], **common) if has_val else None
    facts = {
        "input_pipeline": loader,
        "input_processes": processes,
        "train_rows": len(train_table),
        "images_per_epoch": n_seen,
        "val_rows": len(val_table) if has_val else 0,
        "val_hash": data_hash(val_table) if has_val else None,
        "cache": {
            k: str(v) if isinstance(v, Path) else ("memory" if v else "none")
            for k, v in caches.items()
        },
        "online_augmentation": augmenter is not None,
        "class_weights": class_weights,
    }
    return train_ds, val_ds, clock, facts


def train(
    cfg: TrainConfig,
    train_table: pd.DataFrame,
    val_table: pd.DataFrame | None,
    out_dir: str | os.PathLike,
    augment_settings: AugmentSettings | Mapping[str, Any] | None = None,
    resume: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Fit cfg.model and write model, history, card (and resume state while running).

    augment_settings: augment.json of notebook 03 (online augmentation, class weights).
    resume: continue an interrupted run from `<out_dir>/checkpoints/<model>/`, or give back the
    model trained to its end here with the same settings and data without training it again;
    False starts over. callbacks: extra Keras callbacks, given to every phase.
    """
    started = time.perf_counter()
    mixed = _mixed_policy(cfg.mixed_precision)
    if cfg.mixed_precision == "bfloat16" and mixed is None and cfg.float32_backbone_options:
        cfg = cfg.in_float32()
        log.warning("%s: the profile's network for float32: %s", cfg.model, cfg.backbone_options)
    run, name = RunFolder(out_dir), cfg.model
    paths = {
        "model": run.model_path(name),
        "card": run.card_path(name),
        "history": run.history_path(name),
        "tensorboard": run.tensorboard_dir(name),
        "checkpoints": run.checkpoints_dir(name),
        "cache": run.cache_dir(name),
    }
    for key in ("model", "history"):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
    partial_path(paths["model"]).unlink(missing_ok=True)  # half written when a run was killed
    ckpt = paths["checkpoints"]
    if not resume:
        shutil.rmtree(ckpt, ignore_errors=True)
    progress_path = ckpt / "progress.json"
    progress = read_progress(progress_path)
    train_hash = data_hash(train_table)
    check_resumable(progress, cfg, train_hash, ckpt)
    resuming = bool(progress)
    done = (
        None
        if resuming or not resume
        else _trained_already(cfg, run, train_hash, augment_sha256(augment_settings), paths)
    )
    if done is not None:  # the fit cell run again (after a kernel restart): nothing to train
        return done
    if not resuming:
        paths["history"].unlink(missing_ok=True)  # a fresh run owns its history
        replacing = replacing_line(run, name)
        if replacing:
            say([replacing])
        paths["card"].unlink(missing_ok=True)  # written when it ends: till then, still training

    # Building, reading the faces and compiling take a minute for a large backbone on a busy
    # CPU before the first epoch's line: say what happens meanwhile.
    line(
        f"{name}: building the network and reading {counted(len(train_table), 'training face')} ..."
    )
    keras.utils.set_random_seed(cfg.seed)
    strategy = backend.strategy()
    with dtype_policy(mixed), strategy.scope():
        model, pretrained, build_messages, weights_loaded, from_scratch = _build(cfg)
    phases = plan_phases(cfg, pretrained)
    notes: dict[str, Any] = {
        "from_scratch": from_scratch,
        "weights_fallback": " ".join(build_messages) or None,
        "pretrained_backbone": pretrained,
        "weights_loaded": weights_loaded,
        "mixed_precision": mixed or False,  # the policy's name, or False: float32
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "devices": backend.device_names(),
        "machine": backend.machine(),
        "resumed": resuming,
        "weight_average": None,
    }
    if not pretrained and (cfg.warmup_epochs or cfg.transfer != "full"):
        notes["schedule_note"] = (
            "the backbone is randomly initialised, so it trains whole "
            "from the first epoch (warm-up and transfer mode unused)"
        )
    tensorboard = cfg.tensorboard and importlib.util.find_spec("tensorboard") is not None
    if cfg.tensorboard and not tensorboard:
        notes["tensorboard_note"] = "tensorboard is not installed; no logs written"
        log.warning("tensorboard is not installed; the TensorBoard callback is skipped")

    train_ds, val_ds, clock, notes["data"] = _datasets(
        cfg, train_table, val_table, augment_settings, paths["cache"]
    )
    notes["data"]["train_hash"] = train_hash
    notes["data"][trained.SPLIT_KEY] = trained.split_sha256(run)  # 05 and 06 compare it
    notes["data"]["augment_sha256"] = augment_sha256(augment_settings)
    monitor = _monitor(cfg, validating=val_ds is not None)
    progress = {"config": cfg.to_dict(), "data_hash": train_hash, "done": progress.get("done", [])}
    ckpt.mkdir(parents=True, exist_ok=True)
    progress_path.write_text(json.dumps(json_ready(progress), indent=2))

    budget = None
    if cfg.time_budget_minutes is not None:
        spent = read_history(paths["history"])
        budget = TimeBudget(
            cfg.time_budget_minutes,
            float(spent["time_s"].sum()) if "time_s" in spent else 0.0,
            epochs=cfg.epochs,
        )
    averager = None
    starting = start_line(
        cfg.model,
        notes["data"]["images_per_epoch"],
        cfg.batch_size,
        cfg.epochs,
        cfg.time_budget_minutes,
    )
    announced = False
    try:
        for index, phase in enumerate(phases, start=1):
            phase_weights = ckpt / f"{phase.name}.weights.h5"
            if phase.name in progress["done"] and phase_weights.is_file():
                model.load_weights(phase_weights)
                continue
            if budget is not None and budget.stopped:
                break
            averager = _run_phase(
                model,
                cfg,
                phase,
                index,
                train_ds,
                val_ds,
                clock,
                monitor,
                paths,
                notes["data"]["images_per_epoch"],
                strategy,
                tensorboard,
                [
                    *callbacks,
                    EpochLine(
                        cfg.model,
                        cfg.epochs,
                        budget,
                        start=None if announced else starting,
                        steps=math.ceil(notes["data"]["images_per_epoch"] / cfg.batch_size),
                    ),
                    *([budget] if budget else []),
                ],
                budget,
                average=index == len(phases),
            )
            announced = True
            if index < len(phases):  # the next phase starts from these weights, even on resume
                model.save_weights(phase_weights)
                progress["done"].append(phase.name)
                progress_path.write_text(json.dumps(json_ready(progress), indent=2))
        if averager is not None and averager.count:
            notes["weight_average"] = _keep_average(
                model, averager, train_ds, val_ds, monitor, paths, cfg.model
            )
    finally:
        _remove(paths["cache"])

    if not paths["model"].is_file():  # no finite monitored value ever: keep the last state
        save_whole(model, paths["model"])
    history = read_history(paths["history"])
    best_model = load_trained(paths["model"])
    _compile(best_model, cfg, phases[-1].learning_rate)  # ready for evaluate(), fresh optimizer
    notes["face_framing"] = face_framing(train_table, cfg.seed)
    if "expression" in cfg.heads:
        notes["expression_classes"] = trained_classes(train_table)
    card = make_card(cfg, best_model, history, monitor, phases, notes)
    card["wall_time_s"] = time.perf_counter() - started
    card["params"] = int(best_model.count_params())
    if budget is not None:
        card["stopped_by_time_budget"] = budget.stopped
    write_text(paths["card"], json.dumps(card, indent=2, allow_nan=False))  # whole, at once
    _remove(ckpt)  # finished: nothing left to resume
    return TrainResult(best_model, history, card, paths)


def _trained_already(
    cfg: TrainConfig,
    run: RunFolder,
    train_hash: str,
    augment_hash: str | None,
    paths: dict[str, Path],
) -> TrainResult | None:
    """The model the run holds trained to its end with these settings on this training table,
    augmentation and split, loaded with its history and card, with a line saying so; None
    where there is none (or its card does not say), so training goes on."""
    card = read_card(paths["card"]) if paths["model"].is_file() else None
    if not card:
        return None
    settings = json.loads(json.dumps(json_ready(cfg.to_dict())))
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    if (
        card.get("parameters") != settings
        or data.get("train_hash") != train_hash
        or "augment_sha256" not in data
        or data["augment_sha256"] != augment_hash
        or trained.trained_on_split(run, cfg.model) is False
    ):
        return None
    model = load_trained(paths["model"])
    phases = card.get("phases") or [{}]
    _compile(model, cfg, float(phases[-1].get("learning_rate") or cfg.learning_rate or 1e-3))
    finished = f" (finished {card['finished_at']})" if card.get("finished_at") else ""
    say(
        [
            f"{cfg.model}: already trained in this run with these settings{finished}: loaded, "
            "not trained again (resume = False trains it again)"
        ]
    )
    return TrainResult(model, read_history(paths["history"]), card, paths)


def _remove(folder: Path) -> None:
    """Delete a per-model work folder, and its parent (checkpoints/, cache/) once empty."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()


def _monitor(cfg: TrainConfig, validating: bool) -> str:
    """The score that picks the kept epoch: the loss, or where the configuration asks, the
    expression accuracy (the loss can rise with the network's confidence while accuracy still
    climbs; benchmarks/RESULTS.md, recipe). Keras names a single head's metrics without it."""
    name = "loss"
    if cfg.checkpoint_metric == "accuracy":
        name = "accuracy" if tuple(cfg.heads) == ("expression",) else "expression_accuracy"
    return f"val_{name}" if validating else name


def _run_phase(
    model: keras.Model,
    cfg: TrainConfig,
    phase: Phase,
    index: int,
    train_ds: Any,
    val_ds: Any,
    clock: EpochClock,
    monitor: str,
    paths: dict[str, Path],
    n_train: int,
    strategy: tf.distribute.Strategy | backend.SingleDevice,
    tensorboard: bool,
    extra: Sequence[keras.callbacks.Callback],
    budget: TimeBudget | None = None,
    average: bool = False,
) -> WeightAverage | None:
    """One fit() with its own backup folder; resumes it if a backup is there. average: the
    phase whose weights cfg.swa_start averages (the last); returns the average."""
    backup_dir = paths["checkpoints"] / phase.name
    backed_up = backup_epoch(backup_dir)
    restart_at = backed_up or phase.first_epoch
    if backed_up:
        say([resuming_line(cfg.model, backed_up, cfg.epochs)])
    history = read_history(paths["history"])
    history = history[history["epoch"] < restart_at]  # epochs after the backup are redone
    write_history(history, paths["history"])
    best_overall, _ = best_so_far(history, monitor)
    mode = "max" if higher_is_better(monitor) else "min"
    best_here, wait_here = best_so_far(history[history["epoch"] >= phase.first_epoch], monitor)

    with strategy.scope():
        transfer.set_transfer_mode(model, phase.transfer, cfg.trainable_top_n)
        _compile(model, cfg, phase.learning_rate)
        build_step_state(model, train_ds)
    model._initial_epoch = None  # set by a previous phase's BackupAndRestore; Keras reads it

    schedule: keras.callbacks.Callback
    stopping: list[keras.callbacks.Callback] = []
    restored: list[keras.callbacks.Callback] = []  # what a resume gives back its best and wait
    averaging: list[WeightAverage] = []
    if cfg.lr_schedule == "cosine":
        steps = math.ceil(n_train / cfg.batch_size)
        swa = cfg.swa_start if average else None
        schedule = CosineAnneal(
            cfg.min_lr,
            budget=budget,
            total_steps=(phase.end_epoch - phase.first_epoch) * steps,
            first_step=(restart_at - phase.first_epoch) * steps,
            steps_per_epoch=steps,
            **({"until": swa, "hold": cfg.swa_rate} if swa is not None else {}),
        )
        if swa is not None:
            averaging = [
                WeightAverage(
                    swa,
                    schedule.fraction,
                    paths["checkpoints"] / "average.npz",
                    resumed_after=restart_at - 1 if backed_up else None,
                )
            ]
        # No early stopping: the cosine's end is the run's end, and a plateau halfway down
        # would cut the low-rate tail that gives most of the final accuracy.
    else:
        schedule = keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode=mode,
            factor=cfg.reduce_lr_factor,
            patience=cfg.reduce_lr_patience,
            min_lr=cfg.min_lr,
            verbose=int(cfg.verbose > 0),
        )
        stopping = [
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=cfg.early_stopping_patience,
                restore_best_weights=True,
                verbose=int(cfg.verbose > 0),
            )
        ]
        restored = [*stopping, schedule]
    # The averaged weights go in before validation and stay in for the epoch-end callbacks
    # (checkpoint, early stopping, backup), so the kept model is the averaged one.
    averaged = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema_momentum else []
    callbacks: list[keras.callbacks.Callback] = [
        *averaged,
        clock.callback(),
        EpochTimer(n_train, index),
        keras.callbacks.ModelCheckpoint(  # beside the model, then renamed into place
            partial_path(paths["model"]),
            monitor=monitor,
            save_best_only=True,
            mode=mode,
            initial_value_threshold=best_overall,
        ),
        PublishModel(paths["model"]),
        *stopping,
        schedule,
        *averaging,  # before the time budget's epoch end, which moves the schedule's clock
        RestoreProgress(restored, best_here, wait_here),
        keras.callbacks.CSVLogger(paths["history"], append=True),
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(paths["tensorboard"]))
    callbacks.extend(extra)
    with surface_data_errors():
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=phase.end_epoch,
            initial_epoch=phase.first_epoch,
            callbacks=callbacks,
            verbose=cfg.verbose,
            shuffle=False,
        )
    model._initial_epoch = None
    return averaging[0] if averaging else None


def _keep_average(
    model: keras.Model,
    averager: WeightAverage,
    train_ds: Any,
    val_ds: Any,
    monitor: str,
    paths: dict[str, Path],
    name: str,
) -> dict[str, Any]:
    """The averaged weights, BatchNorm's statistics recomputed on training batches, saved as
    the model when validation prefers them to the best single epoch (or there is no
    validation); what was compared, for the card and the terminal."""
    best, _ = best_so_far(read_history(paths["history"]), monitor)
    averager.apply(model)
    batches = recompute_batchnorm(model, some_batches(train_ds, RECOMPUTE_BATCHES))
    first, last = averager.epochs[0] + 1, averager.epochs[-1] + 1
    facts: dict[str, Any] = {
        "epochs": [first, last],  # 1-based, as Keras prints them
        "count": averager.count,
        "batchnorm_batches": batches,
        "monitor": monitor,
        "best_epoch_value": best,
        "value": None,
        "val": None,
    }
    if val_ds is not None:
        scores = model.evaluate(val_ds, verbose=0, return_dict=True)
        facts["val"] = {f"val_{k}": float(v) for k, v in scores.items()}
        facts["value"] = facts["val"].get(monitor)
    value = facts["value"]
    kept = value is None or best is None or not math.isfinite(best)
    if not kept:
        kept = value > best if higher_is_better(monitor) else value < best
    facts["kept"] = bool(kept)
    if kept:
        save_whole(model, paths["model"])
    compared = (
        f": {monitor} {value:.4f} against the best epoch's {best:.4f}"
        if value is not None and best is not None
        else ""
    )
    winner = "the average" if kept else "the best epoch"
    line(
        f"{name}: weights averaged over epochs {first}-{last} ({averager.count}){compared}; "
        f"kept {winner}"
    )
    return facts
