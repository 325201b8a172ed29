"""Training: files written, masked heads, resume after an interruption, two phases, safe loading."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core.errors import ConfigError, DataError
from helpers.core.labels import EXPRESSIONS
from helpers.core.trained import weights_sha256
from helpers.data.augment import AugmentSettings
from helpers.models.backbones import BACKBONE_LAYER
from helpers.models.saving import load_trained
from helpers.run import profiles
from helpers.train import fit as training
from helpers.train.card import data_hash, read_history
from helpers.train.config import TrainConfig, plan_phases
from helpers.train.fit import train
from helpers.train.resume import check_resumable

SIZE = 32


def _table(folder: Path, n: int = 40) -> pd.DataFrame:
    """n tiny faces-to-be: noise with a class-dependent brightness, 80/20 train/val."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = i % 8
        image = np.clip(rng.normal(30 * label, 20, (36, 36, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i}.png")
        rows.append(
            {
                "id": f"f{i}",
                "image": str(folder / f"{i}.png"),
                "source": "t",
                "expression": label,
                "valence": label / 8 - 0.5,
                "arousal": 0.1,
                "landmarks": rng.uniform(0, 35, (68, 2)).astype(np.float32),
                "split": "val" if i % 5 == 0 else "train",
            }
        )
    return pd.DataFrame(rows)


def _split(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        table[table["split"] == "train"].reset_index(drop=True),
        table[table["split"] == "val"].reset_index(drop=True),
    )


def _config(**overrides) -> TrainConfig:
    values = {
        "model": "custom_cnn",
        "image_size": SIZE,
        "channels": 3,
        "epochs": 2,
        "batch_size": 8,
        "verbose": 0,
        "shared_units": 16,
    }
    return TrainConfig(**{**values, **overrides})


class _Record(keras.callbacks.Callback):
    """What each epoch looked like from inside fit()."""

    def __init__(self):
        super().__init__()
        self.epochs, self.backbone_trainable, self.lr = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.backbone_trainable.append(self.model.get_layer(BACKBONE_LAYER).trainable)
        self.lr.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


class _Interrupt(keras.callbacks.Callback):
    """Simulates a crash once the given epoch has been written everywhere."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after:
            raise KeyboardInterrupt("simulated interruption")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished 2-epoch run, shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("run")
    train_rows, val_rows = _split(_table(root / "images"))
    settings = {
        "online": True,
        "config": {"rotate_limit": 5.0},
        "seed": 0,
        "class_weights": {str(c): 1.0 for c in range(8)},
    }
    result = train(_config(), train_rows, val_rows, root / "run", augment_settings=settings)
    return root, result


def test_fit_writes_model_history_and_card(trained):
    root, result = trained
    run = root / "run"
    assert (run / "models" / "custom_cnn.keras").is_file()
    assert not (run / "checkpoints" / "custom_cnn").exists()  # deleted once complete
    history = read_history(run / "history" / "custom_cnn.csv")
    assert history["epoch"].tolist() == [0, 1]
    assert {"loss", "val_loss", "val_expression_accuracy", "time_s"} <= set(history.columns)
    card = json.loads((run / "models" / "custom_cnn.json").read_text())
    assert card == result.card
    assert card["architecture"]["name"] == "custom_cnn" and card["epochs_run"] == 2
    assert card["parameters"]["image_size"] == SIZE and card["seed"] == 0
    assert len(card["data"]["train_hash"]) == 64 and card["data"]["online_augmentation"]
    assert card["images_per_s"] > 0 and card["training_time_s"] > 0
    assert card["best_epoch"] in (1, 2) and "val_loss" in card["best"]["metrics"]
    assert card["versions"]["keras"] == keras.__version__
    assert card["weights_fallback"] is None and card["mixed_precision"] is False
    assert card["face_framing"] is None  # noise images: no face to measure the framing on
    assert card["expression_classes"] == list(EXPRESSIONS)  # every class has training faces
    # the weights alone, as the model file holds them (its own sha256 varies with the save time)
    kept = load_trained(run / "models" / "custom_cnn.keras")
    assert card["weights_sha256"] == weights_sha256(kept.get_weights())
    assert card["from_scratch"] == {  # what methods.md cites, and only that
        "batchnorm_momentum": 0.9,
        "zero_gamma_branches": 0,
        "he_initialisation": False,
    }
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    again = load_trained(run / "models" / "custom_cnn.keras")
    np.testing.assert_allclose(
        again.predict(x, verbose=0)["expression"],
        result.model.predict(x, verbose=0)["expression"],
        atol=1e-6,
    )


def test_the_training_step_is_traced_once(tmp_path, monkeypatch):
    """The optimizer's and the loss trackers' variables exist before fit() traces its step, so
    TensorFlow traces it once, not twice (a second trace is tens of seconds for a big network)."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traced = []
    step = TensorFlowTrainer.train_step

    def counted(self, data):
        traced.append(1)  # Python runs the step's body only while tracing it
        return step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    weights = {"online": False, "class_weights": {str(c): 1.0 + c for c in range(8)}}
    result = train(
        _config(epochs=2, max_steps_per_epoch=2),
        train_rows,
        val_rows,
        tmp_path / "run",
        augment_settings=weights,
    )
    assert result.card["epochs_run"] == 2
    assert len(traced) == 1


def test_data_hash_depends_on_labels_not_row_order(trained):
    root, _ = trained
    table = _table(root / "images")
    assert data_hash(table) == data_hash(table.iloc[::-1])
    changed = table.copy()
    changed.loc[3, "expression"] = 7
    assert data_hash(changed) != data_hash(table)


def test_table_without_valence_still_trains(tmp_path):
    from helpers.core import progress

    table = _table(tmp_path / "images", n=24).assign(valence=np.nan, arousal=np.nan)
    train_rows, _ = _split(table)
    cfg = _config(epochs=1, max_steps_per_epoch=1, cache="disk")
    lines = tmp_path / "lines"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(progress.PROGRESS_ENV, str(lines))
        result = train(cfg, train_rows, None, tmp_path / "run")  # no validation: monitors loss
    # what happens before the first epoch's line (a minute for a large backbone), then it
    said = lines.read_text().splitlines()
    assert (
        said[0]
        == f"{cfg.model}: building the network and reading {len(train_rows)} training faces ..."
    )
    assert said[1].startswith(f"{cfg.model}: training on ")
    row = result.history.iloc[0]
    assert np.isfinite(row["loss"]) and np.isfinite(row["expression_loss"])
    assert row["valence_loss"] == 0.0 and row["arousal_loss"] == 0.0  # masked, nothing faked
    assert result.card["best"]["monitor"] == "loss"
    assert result.card["data"]["images_per_epoch"] == 8  # one batch of a fresh shuffle
    assert not (tmp_path / "run" / "cache").exists()


def test_interrupted_run_resumes_from_its_backup(tmp_path, capsys):
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(_config(epochs=3), train_rows, val_rows, out, callbacks=[_Interrupt(after=0)])
    assert (out / "checkpoints" / "custom_cnn" / "train" / "latest.weights.h5").is_file()
    assert read_history(out / "history" / "custom_cnn.csv")["epoch"].tolist() == [0]
    with pytest.raises(ConfigError, match="batch_size"):
        train(_config(epochs=3, batch_size=4), train_rows, val_rows, out)
    record = _Record()
    result = train(_config(epochs=3), train_rows, val_rows, out, callbacks=[record])
    assert record.epochs == [1, 2]  # no restart at epoch 0
    assert "custom_cnn: resuming from epoch 2 of 3" in capsys.readouterr().out.splitlines()
    assert result.history["epoch"].tolist() == [0, 1, 2]
    assert result.card["resumed"] is True and result.card["epochs_run"] == 3
    assert not (out / "checkpoints" / "custom_cnn").exists()


def test_two_phase_schedule_switches_trainability(trained, tmp_path):
    root, _ = trained
    weights = tmp_path / "pretrained.keras"  # a finished run's model is a pretrained backbone
    shutil.copy(root / "run" / "models" / "custom_cnn.keras", weights)
    train_rows, val_rows = _split(_table(root / "images"))
    record = _Record()

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if not record.epochs:
                self.before = self.model.get_layer(BACKBONE_LAYER).get_weights()

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.after = self.model.get_layer(BACKBONE_LAYER).get_weights()

    snapshot = Snapshot()
    cfg = _config(weights=str(weights), warmup_epochs=1, transfer="full", learning_rate=1e-3)
    result = train(cfg, train_rows, val_rows, tmp_path / "run", callbacks=[record, snapshot])
    assert [p["name"] for p in result.card["phases"]] == ["warmup", "finetune"]
    assert result.card["pretrained_backbone"] is True
    copied = result.card["weights_loaded"].split(": ")[1]
    assert copied.endswith(" layers from pretrained.keras") and "left" not in copied
    assert record.backbone_trainable == [False, True]
    np.testing.assert_allclose(record.lr, [1e-3, 1e-4], rtol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(snapshot.before, snapshot.after, strict=False))
    assert result.history["phase"].tolist() == [1, 2]


def test_load_trained_refuses_damaged_altered_and_foreign_files(trained, tmp_path):
    root, _ = trained
    good = root / "run" / "models" / "custom_cnn.keras"
    with pytest.raises(DataError, match="not found"):
        load_trained(tmp_path / "none.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(DataError) as caught:
        load_trained(truncated)
    assert caught.value.path == str(truncated)
    # altered: the config now asks for a Lambda layer (code from the file), refused by safe_mode
    altered = tmp_path / "altered.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(altered, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["class_name"] = "Lambda"
                config["config"]["layers"][1]["config"]["function"] = {
                    "class_name": "__lambda__",
                    "config": {"code": "print('x')"},
                }
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(DataError, match="cannot load"):
        load_trained(altered)
    foreign = tmp_path / "foreign.keras"
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(foreign)
    with pytest.raises(DataError, match=r"helpers\.models\.factory"):
        load_trained(foreign)
    renamed = tmp_path / "image.keras"
    renamed.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(DataError, match="not a Keras"):
        load_trained(renamed)


def test_load_training_inputs_reads_what_notebook_03_wrote(trained, tmp_path):
    from helpers.core.records import make_records, save_records

    root, _ = trained
    table = make_records(_table(root / "images"))
    save_records(table, tmp_path / "splits.parquet")
    save_records(table[table["split"] == "train"], tmp_path / "train.parquet")
    (tmp_path / "augment.json").write_text(json.dumps({"online": False, "class_weights": None}))
    inputs = training.load_training_inputs(tmp_path)
    assert len(inputs.train) == 32 and len(inputs.val) == 8 and set(inputs.val["split"]) == {"val"}
    assert inputs.augment == AugmentSettings(mode="none")
    (tmp_path / "augment.json").write_text("{broken")
    with pytest.raises(DataError, match=r"augment\.json"):
        training.load_training_inputs(tmp_path)


def test_train_config_checks_and_profiles():
    with pytest.raises(ConfigError, match=r"TrainConfig\.model"):
        TrainConfig(model="alexnet")
    with pytest.raises(ConfigError, match=r"TrainConfig\.epochs"):
        TrainConfig(model="custom_cnn", epochs=0)
    with pytest.raises(ConfigError, match=r"TrainConfig\.transfer"):
        TrainConfig(model="custom_cnn", transfer="half")
    with pytest.raises(ConfigError, match=r"TrainConfig\.loss_weights"):
        TrainConfig(model="custom_cnn", heads=["expression"], loss_weights={"valence": 1.0})
    smoke = profiles.train_config("smoke", "custom_cnn", epochs=None, batch_size=16)
    assert (smoke.image_size, smoke.epochs, smoke.batch_size, smoke.profile) == (48, 1, 16, "smoke")
    assert profiles.train_config("cpu", "vgg16").image_size == 32  # per-model entry
    gpu = profiles.train_config("gpu", "resnet50")
    assert gpu.weights == "imagenet" and gpu.warmup_epochs > 0 and gpu.transfer == "top_n"
    assert [p.name for p in plan_phases(gpu, pretrained=True)] == ["warmup", "finetune"]
    assert [p.transfer for p in plan_phases(gpu, pretrained=False)] == ["full"]
    with pytest.raises(ConfigError, match="unknown parameter"):
        profiles.train_config("cpu", "custom_cnn", epoch=3)


def test_time_budget_stops_before_an_epoch_would_overrun(monkeypatch):
    """'Train for at most an hour': stop when another epoch like the last would not fit."""
    from types import SimpleNamespace

    from helpers.train.callbacks import TimeBudget

    clock = iter([0.0, 25.0, 25.0, 50.0])
    monkeypatch.setattr("helpers.train.callbacks.time.perf_counter", lambda: next(clock))
    budget = TimeBudget(minutes=1.0)  # 60 s
    budget.set_model(SimpleNamespace(stop_training=False))
    budget.on_epoch_begin(0)
    budget.on_epoch_end(0)  # 25 s used, the next would end at 50 s: keep going
    assert not budget.stopped and not budget.model.stop_training
    budget.on_epoch_begin(1)
    budget.on_epoch_end(1)  # 50 s used, the next would end at 75 s: stop
    assert budget.stopped and budget.model.stop_training


def test_time_budget_does_not_claim_the_last_epochs_stop(monkeypatch, capsys):
    """When the epoch cap and the budget end together, the run ended by its epochs: the card
    must not say the budget stopped it, nor the terminal that another epoch would not fit."""
    from types import SimpleNamespace

    from helpers.train.callbacks import TimeBudget

    clock = iter([0.0, 25.0, 25.0, 50.0])
    monkeypatch.setattr("helpers.train.callbacks.time.perf_counter", lambda: next(clock))
    budget = TimeBudget(minutes=1.0, epochs=2)  # 60 s; the same clock stops at epoch 2 above
    budget.set_model(SimpleNamespace(stop_training=False))
    for epoch in (0, 1):
        budget.on_epoch_begin(epoch)
        budget.on_epoch_end(epoch)
    assert not budget.stopped and not budget.model.stop_training
    assert budget.spent_s == 50.0  # still counted, for a later phase or resume
    assert "another epoch would not fit" not in capsys.readouterr().out


def test_time_budget_line_shows_the_budget_as_set(monkeypatch, capsys):
    """A 5.5-minute budget reads 5.5 in the stop line, not a rounded 6."""
    from types import SimpleNamespace

    from helpers.train.callbacks import TimeBudget

    clock = iter([0.0, 200.0])
    monkeypatch.setattr("helpers.train.callbacks.time.perf_counter", lambda: next(clock))
    budget = TimeBudget(minutes=5.5)
    budget.set_model(SimpleNamespace(stop_training=False))
    budget.on_epoch_begin(0)
    budget.on_epoch_end(0)
    assert "time budget: 3.3 of 5.5 min used" in capsys.readouterr().out


def test_cosine_schedule_anneals_over_the_epochs(tmp_path):
    """lr_schedule='cosine' without a budget: a half cosine over every step of the run, to
    near min_lr by the last step, logged per epoch in the history."""
    import math

    train_rows, val_rows = _split(_table(tmp_path / "images", n=40))  # 32 train: 4 steps
    record = _Record()
    cfg = _config(epochs=3, lr_schedule="cosine", min_lr=1e-6)
    result = train(cfg, train_rows, val_rows, tmp_path / "run", callbacks=[record])

    def expected(step):
        return 1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * step / 12))

    assert record.lr[0] == pytest.approx(1e-3)
    assert record.lr[1:] == pytest.approx([expected(3), expected(7)], rel=1e-5)
    logged = result.history["learning_rate"].tolist()
    assert logged == pytest.approx([expected(3), expected(7), expected(11)], rel=1e-5)
    assert logged[-1] < 0.02 * 1e-3


@pytest.mark.parametrize(("schedule", "stops_early"), [("plateau", True), ("cosine", False)])
def test_early_stopping_watches_plateau_runs_only(tmp_path, monkeypatch, schedule, stops_early):
    """A cosine run ends where its schedule does: early stopping would fire on a plateau
    halfway down and cut the low-rate tail. The plateau schedule keeps it."""
    watching = []

    class Spy(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            watching.append(self.patience)
            super().on_train_begin(logs)

    monkeypatch.setattr(keras.callbacks, "EarlyStopping", Spy)
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    cfg = _config(lr_schedule=schedule, early_stopping_patience=3)
    result = train(cfg, train_rows, val_rows, tmp_path / "run")
    assert watching == ([3] if stops_early else [])
    assert result.card["epochs_run"] == 2


def test_cosine_schedule_follows_the_time_budget(monkeypatch):
    """With a time budget the position is the share of the budget spent (a resume included),
    since how many steps fit in the minutes is not known in advance."""
    from types import SimpleNamespace

    from helpers.train.callbacks import CosineAnneal, TimeBudget

    budget = TimeBudget(minutes=1.0, spent_s=30.0)  # half of it spent before a resume
    budget._start = 100.0
    now = {"t": 100.0}
    monkeypatch.setattr("helpers.train.callbacks.time.perf_counter", lambda: now["t"])
    lr = keras.Variable(0.01)
    schedule = CosineAnneal(0.0, budget=budget)
    schedule.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=lr)))
    schedule.on_train_batch_begin(0)
    assert float(lr.numpy()) == pytest.approx(0.005)  # halfway: half the starting rate
    now["t"] = 130.0  # the budget is used up
    schedule.on_train_batch_begin(1)
    assert float(lr.numpy()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match="lr_schedule"):
        TrainConfig(model="custom_cnn", lr_schedule="linear")


def test_cosine_schedule_ends_with_the_epochs_when_they_run_out_first(monkeypatch):
    """A machine fast enough to finish the epochs inside the budget still anneals to the floor
    by the last step: the position is whichever of steps and minutes is further along."""
    from types import SimpleNamespace

    from helpers.train.callbacks import CosineAnneal, TimeBudget

    budget = TimeBudget(minutes=10.0)
    budget._start = 0.0
    monkeypatch.setattr("helpers.train.callbacks.time.perf_counter", lambda: 0.0)  # no time used
    lr = keras.Variable(0.01)
    schedule = CosineAnneal(0.0, budget=budget, total_steps=4)
    schedule.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=lr)))
    rates = []
    for step in range(4):
        schedule.on_train_batch_begin(step)
        rates.append(float(lr.numpy()))
    assert rates == pytest.approx([0.01 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)])
    assert rates[2] == pytest.approx(0.005)  # halfway through the steps, none of the minutes


@pytest.mark.parametrize("by_hand", [False, True], ids=["plain", "kernel-by-hand"])
def test_a_budget_shorter_than_one_epoch_anneals_over_that_epoch(monkeypatch, capsys, by_hand):
    """The budget stops training only between epochs, so a first epoch of 200 s under a 60 s
    budget runs to its end: the cosine runs over those 200 s, estimated from the steps' pace,
    instead of sitting at its floor from 60 s on; a line says so once, in a notebook's kernel
    run by hand as well."""
    from types import SimpleNamespace

    from helpers.core import progress
    from helpers.train.callbacks import CosineAnneal, TimeBudget

    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    if by_hand:
        monkeypatch.setattr(progress, "ipython_shell", lambda: object())
    now = {"t": 0.0}
    monkeypatch.setattr("helpers.train.callbacks.time.perf_counter", lambda: now["t"])
    budget = TimeBudget(minutes=1.0)
    budget.set_model(SimpleNamespace(stop_training=False))
    lr = keras.Variable(0.01)
    schedule = CosineAnneal(1e-6, budget=budget, total_steps=300, steps_per_epoch=100, every=1)
    schedule.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=lr)))
    schedule.on_train_begin()
    budget.on_epoch_begin(0)
    schedule.on_epoch_begin(0)
    rates = []
    for step in range(100):
        now["t"] = 5.0 + 2.0 * step  # the first step compiles (5 s), then 2 s a step
        schedule.on_train_batch_begin(step)
        rates.append(float(lr.numpy()))
    assert rates[50] == pytest.approx(0.005, rel=0.1)  # halfway through the epoch
    assert rates[95] > 1e-5  # still annealing near the end, not at the floor since 60 s
    assert rates[-1] < 0.001
    assert sum(rate <= 2e-6 for rate in rates) <= 1
    shown = capsys.readouterr().out
    assert shown.count("time budget: this epoch ends past the 1-minute budget") == 1
    assert "about 3.4 min in all" in shown


def test_cosine_schedule_sets_the_rate_every_so_many_batches():
    """On JAX the rate is set every 32nd batch (touching the model mid-epoch syncs the whole
    training state there), elsewhere every batch; in between it stays where it was set."""
    from types import SimpleNamespace

    from helpers.train.callbacks import CosineAnneal, batches_between_updates

    assert (batches_between_updates("jax"), batches_between_updates("tensorflow")) == (32, 1)
    lr = keras.Variable(0.01)
    schedule = CosineAnneal(0.0, total_steps=8, every=4)
    schedule.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=lr)))
    rates = []
    for step in range(8):
        schedule.on_train_batch_begin(step)
        rates.append(float(lr.numpy()))
    assert rates == pytest.approx([0.01] * 4 + [0.005] * 4)


class _Weights(keras.callbacks.Callback):
    """The weights other callbacks see at each epoch's end, and the raw ones when the next
    epoch begins (after the averaged weights have been swapped out)."""

    def __init__(self):
        super().__init__()
        self.at_end, self.raw = {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch:
            self.raw[epoch - 1] = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        self.at_end[epoch] = self.model.get_weights()


def test_ema_keeps_and_validates_the_averaged_weights(tmp_path):
    """ema_momentum: the kept model is the moving average at the best epoch (the weights
    validation scored), and the average is not the weights as trained."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=40))
    seen = _Weights()
    cfg = _config(epochs=3, ema_momentum=0.9, early_stopping_patience=5)
    result = train(cfg, train_rows, val_rows, tmp_path / "run", callbacks=[seen])
    history = result.history
    best = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    saved = result.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, seen.at_end[best], strict=True))
    assert not all(np.allclose(a, b) for a, b in zip(seen.at_end[0], seen.raw[0], strict=True))
    assert result.card["parameters"]["ema_momentum"] == 0.9
    for bad in (0, 1, 1.5, "fast"):
        with pytest.raises(ConfigError, match="ema_momentum"):
            TrainConfig(model="custom_cnn", ema_momentum=bad)


def test_cosine_schedule_holds_a_share_of_the_rate_for_weight_averaging():
    """With `hold`, the cosine ends at `until` of the training at that share of the starting
    rate, and the rate stays there to the end (the averaged epochs)."""
    from types import SimpleNamespace

    from helpers.train.callbacks import CosineAnneal

    lr = keras.Variable(0.01)
    schedule = CosineAnneal(1e-6, total_steps=8, until=0.5, hold=0.1)
    schedule.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=lr)))
    rates = []
    for step in range(8):
        schedule.on_train_batch_begin(step)
        rates.append(float(lr.numpy()))
    cosine = [0.001 + 0.009 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert rates == pytest.approx(cosine + [0.001] * 4)


def test_weight_average_is_the_mean_of_the_epochs_past_its_start(tmp_path):
    """Epochs ending before `start` are left out, the rest averaged with equal weight; the
    file lets a run resumed after the last averaged epoch go on with the mean, and only that."""
    from helpers.train.averaging import WeightAverage

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    at = {"position": 0.0}
    path = tmp_path / "average.npz"
    average = WeightAverage(0.5, lambda: at["position"], path)
    average.set_model(model)
    for epoch, (position, value) in enumerate([(0.25, 100.0), (0.5, 1.0), (0.75, 2.0), (1, 6.0)]):
        at["position"] = position
        model.set_weights([np.full(w.shape, value, "float32") for w in model.get_weights()])
        average.on_epoch_end(epoch)
    assert average.epochs == [1, 2, 3] and average.count == 3
    average.apply()
    assert all(np.allclose(w, 3.0) for w in model.get_weights())
    resumed = WeightAverage(0.5, lambda: 1.0, path, resumed_after=3)
    assert resumed.epochs == [1, 2, 3]
    assert all(np.allclose(m, 3.0) for m in resumed.mean)
    assert WeightAverage(0.5, lambda: 1.0, path, resumed_after=2).count == 0  # a later file
    assert WeightAverage(0.5, lambda: 1.0, path).count == 0  # a fresh run starts over


@pytest.mark.parametrize("fused", [False, True])
def test_recompute_batchnorm_sets_the_exact_average_of_the_batches(fused):
    """Moving mean and variance become the plain average of the batches' own statistics
    (Keras's biased variance), whatever they were; the layer's momentum is put back."""
    from helpers.models.backbones import FusedBatchNormalization
    from helpers.train.averaging import recompute_batchnorm

    norm = (FusedBatchNormalization if fused else keras.layers.BatchNormalization)(momentum=0.9)
    model = keras.Sequential([keras.Input((2, 2, 3)), norm])
    rng = np.random.default_rng(0)
    batches = [(rng.normal(k, k + 1, (4, 2, 2, 3)).astype("float32"), None) for k in range(3)]
    norm.moving_mean.assign(np.full(3, 50.0, "float32"))
    assert recompute_batchnorm(model, batches) == 3
    means = [x.mean(axis=(0, 1, 2)) for x, _ in batches]
    variances = [x.var(axis=(0, 1, 2)) for x, _ in batches]
    np.testing.assert_allclose(np.array(norm.moving_mean), np.mean(means, 0), rtol=1e-5)
    np.testing.assert_allclose(np.array(norm.moving_variance), np.mean(variances, 0), rtol=1e-4)
    assert norm.momentum == 0.9
    assert recompute_batchnorm(model, []) == 0  # no batches: the statistics stay
    np.testing.assert_allclose(np.array(norm.moving_mean), np.mean(means, 0), rtol=1e-5)


def test_weight_averaging_keeps_whichever_validation_prefers(tmp_path):
    """swa_start: the rate is held over the averaged epochs, the average (BatchNorm recomputed)
    is compared with the best epoch on validation, and the saved model is the one that won;
    the card says which."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=40))
    cfg = _config(epochs=4, lr_schedule="cosine", swa_start=0.5, swa_rate=0.2)
    result = train(cfg, train_rows, val_rows, tmp_path / "run")
    facts = result.card["weight_average"]
    assert facts["epochs"] == [2, 4] and facts["count"] == 3 and facts["batchnorm_batches"] == 4
    rates = result.history["learning_rate"].tolist()  # each epoch's last batch's
    assert rates[1] > 2e-4 and rates[2:] == pytest.approx([2e-4] * 2)
    best = float(result.history["val_loss"].min())
    assert facts["best_epoch_value"] == pytest.approx(best)
    assert facts["kept"] == (facts["value"] < best)
    val_loss = result.model.evaluate(
        training._datasets(cfg, train_rows, val_rows, None, tmp_path / "cache")[1],
        verbose=0,
        return_dict=True,
    )["loss"]
    assert val_loss == pytest.approx(facts["value"] if facts["kept"] else best, rel=1e-4)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert train(_config(), train_rows, val_rows, tmp_path / "other").card["weight_average"] is None


def test_weight_averaging_goes_on_after_a_resume(tmp_path):
    """An interrupted run resumes with the mean it had: every epoch past the start counts."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    cfg = _config(epochs=4, lr_schedule="cosine", swa_start=0.5)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, train_rows, val_rows, out, callbacks=[_Interrupt(after=2)])
    assert (out / "checkpoints" / "custom_cnn" / "average.npz").is_file()
    result = train(cfg, train_rows, val_rows, out)
    assert result.card["weight_average"]["epochs"] == [2, 4]
    assert result.card["weight_average"]["count"] == 3


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"swa_start": 0.75}, "swa_start"),  # the plateau schedule
        ({"swa_start": 0.75, "lr_schedule": "cosine", "ema_momentum": 0.99}, "swa_start"),
        ({"swa_start": 1.0, "lr_schedule": "cosine"}, "swa_start"),
        ({"swa_start": 0, "lr_schedule": "cosine"}, "swa_start"),
        ({"swa_rate": 0}, "swa_rate"),
        ({"swa_rate": 1.5}, "swa_rate"),
        ({"swa_rate": "low"}, "swa_rate"),
    ],
)
def test_weight_averaging_settings_are_checked(values, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(model="custom_cnn", **values)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_weight_decay_shrinks_kernels_and_spares_biases_and_batchnorm(name):
    """weight_decay: each step takes lr * decay of every kernel, whatever the gradient, and
    leaves biases and BatchNorm's scale and offset alone; None keeps the optimizer's own."""
    inputs = keras.Input((4,))
    outputs = keras.layers.BatchNormalization()(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, outputs)
    for var in model.trainable_variables:
        var.assign(np.ones(var.shape, "float32"))
    optimizer = training._optimizer(name, 0.1, weight_decay=0.5)
    before = {v.path: np.array(v) for v in model.trainable_variables}
    zeros = [np.zeros(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply_gradients(zip(zeros, model.trainable_variables, strict=True))
    for var in model.trainable_variables:
        factor = 0.95 if var.name == "kernel" else 1.0
        np.testing.assert_allclose(np.array(var), before[var.path] * factor, rtol=1e-6)
    assert training._optimizer("adam", 0.1).weight_decay is None
    for bad in (-0.1, 1, "strong", True):
        with pytest.raises(ConfigError, match="weight_decay"):
            TrainConfig(model="custom_cnn", weight_decay=bad)


def test_weight_decay_reaches_training_and_its_card(tmp_path):
    """The setting reaches the kept model's optimizer and the model card."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    result = train(_config(epochs=1, weight_decay=0.05), train_rows, val_rows, tmp_path / "run")
    assert result.card["parameters"]["weight_decay"] == 0.05
    assert result.model.optimizer.weight_decay == pytest.approx(0.05)


def test_pooling_reaches_the_model_and_its_card(tmp_path):
    """pooling="flatten" is built, trained, saved and loaded back as a Flatten head."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    result = train(_config(epochs=1, pooling="flatten"), train_rows, val_rows, tmp_path / "run")
    assert isinstance(result.model.get_layer("pool"), keras.layers.Flatten)
    assert result.card["parameters"]["pooling"] == "flatten"
    saved = sorted((tmp_path / "run").rglob("*.keras"))
    assert saved and isinstance(
        keras.models.load_model(saved[0], compile=False).get_layer("pool"), keras.layers.Flatten
    )
    with pytest.raises(ConfigError, match=r"TrainConfig\.pooling"):
        TrainConfig(model="custom_cnn", pooling="max")


def test_backbone_options_reach_the_model_its_card_and_resume(tmp_path):
    """Options are built, recorded as JSON gives them back, and a backup made with other
    options is not resumed under these."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    cfg = _config(epochs=1, backbone_options={"convs": [1, 2, 2, 2]})
    assert cfg.backbone_options == {"convs": (1, 2, 2, 2)}
    result = train(cfg, train_rows, val_rows, tmp_path / "run")
    names = [layer.name for layer in result.model.get_layer("backbone").layers]
    assert "block1_conv1" in names and "block1_conv2" not in names and "block2_conv2" in names
    assert result.card["parameters"]["backbone_options"] == {"convs": [1, 2, 2, 2]}
    progress = {"config": json.loads(json.dumps(cfg.to_dict()))}
    check_resumable(progress, cfg, "data", tmp_path)  # its own backup: resumable
    with pytest.raises(ConfigError, match="backbone_options"):
        check_resumable(progress, _config(epochs=1), "data", tmp_path)
    with pytest.raises(ConfigError, match=r"TrainConfig\.backbone_options.*'widths'"):
        TrainConfig(model="custom_cnn", backbone_options={"width": (8, 8, 8, 8)})


def test_online_augment_off_feeds_the_images_as_they_are(tmp_path):
    """online_augment=False: notebook 03 asked for augmentation per batch, yet the batches are
    the images as they are (those of a run without augmentation), its class weights still
    apply, and the card's data facts say no augmentation ran."""
    train_rows, _ = _split(_table(tmp_path / "images", n=24))
    settings = {
        "online": True,
        "config": {"rotate_limit": 30.0, "affine_p": 1.0, "hflip_p": 0.5},
        "seed": 0,
        "class_weights": {str(c): 2.0 for c in range(8)},
    }

    def first_batch(cfg, augment):
        ds, _, _, facts = training._datasets(cfg, train_rows, None, augment, tmp_path / "c")
        return next(iter(ds)), facts

    (aug_x, _, _), aug_facts = first_batch(_config(), settings)
    (off_x, _, off_w), off_facts = first_batch(_config(online_augment=False), settings)
    (plain_x, _), _ = first_batch(_config(), None)
    assert np.array_equal(np.asarray(off_x), np.asarray(plain_x))
    assert not np.array_equal(np.asarray(aug_x), np.asarray(plain_x))
    assert np.allclose(np.asarray(off_w["expression"]), 2.0)  # the class weights kept
    assert aug_facts["online_augmentation"] and not off_facts["online_augmentation"]
    assert _config(online_augment=False).to_dict()["online_augment"] is False
    with pytest.raises(ConfigError, match=r"TrainConfig\.online_augment"):
        _config(online_augment="no")
    progress = {"config": json.loads(json.dumps(_config().to_dict()))}
    with pytest.raises(ConfigError, match="online_augment"):  # a resume key
        check_resumable(progress, _config(online_augment=False), "data", tmp_path)


def test_bfloat16_trains_where_the_cpu_runs_it_and_falls_back_where_it_does_not(
    tmp_path, monkeypatch, caplog
):
    """mixed_precision="bfloat16": a bfloat16 model on a CPU with bfloat16 instructions (its
    outputs still float32, the card naming the policy), float32 with one warning on any other
    CPU, where emulated bfloat16 would only slow training."""
    from helpers.train import backend

    train_rows, val_rows = _split(_table(tmp_path / "images", n=16))
    monkeypatch.setattr(backend, "cpu_runs_bfloat16", lambda: True)
    result = train(
        _config(epochs=1, mixed_precision="bfloat16"), train_rows, val_rows, tmp_path / "bf16"
    )
    assert result.card["mixed_precision"] == "mixed_bfloat16"
    convs = [
        layer
        for layer in result.model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert convs and {layer.compute_dtype for layer in convs} == {"bfloat16"}
    x = np.zeros((2, SIZE, SIZE, 3), "float32")
    assert result.model.predict(x, verbose=0)["expression"].dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"  # the global policy restored

    monkeypatch.setattr(backend, "cpu_runs_bfloat16", lambda: False)
    monkeypatch.setattr(backend, "gpu_count", lambda: 0)
    with caplog.at_level("WARNING", logger="helpers.train.fit"):
        assert training._mixed_policy("bfloat16") is None
    assert "no bfloat16 instructions" in caplog.text
    assert training._mixed_policy("auto") is None and training._mixed_policy(True)
    with pytest.raises(ConfigError, match="mixed_precision"):
        _config(mixed_precision="bf16")


def test_where_bfloat16_falls_back_the_profiles_float32_network_trains(
    tmp_path, monkeypatch, caplog
):
    """float32_backbone_options: on a CPU without bfloat16 instructions the run trains the
    lighter network given for the slower step, its card saying so; where bfloat16 runs, the
    network of backbone_options."""
    from helpers.train import backend

    train_rows, val_rows = _split(_table(tmp_path / "images", n=16))
    light = {"widths": [8, 16, 32, 64]}  # a list, as a papermill parameter gives it
    cfg = _config(epochs=1, mixed_precision="bfloat16", float32_backbone_options=light)
    monkeypatch.setattr(backend, "gpu_count", lambda: 0)
    trained = {}
    for native in (True, False):
        monkeypatch.setattr(backend, "cpu_runs_bfloat16", lambda native=native: native)
        with caplog.at_level("WARNING", logger="helpers.train.fit"):
            result = train(cfg, train_rows, val_rows, tmp_path / f"native{native}")
        first = result.model.get_layer("backbone").get_layer("block1_conv1")
        trained[native] = (
            first.filters,
            first.compute_dtype,
            result.card["parameters"]["backbone_options"],
        )
    assert trained[True] == (32, "bfloat16", None)
    assert trained[False] == (8, "float32", {"widths": [8, 16, 32, 64]})
    assert "the profile's network for float32: {'widths': (8, 16, 32, 64)}" in caplog.text
    assert cfg.in_float32().backbone_options == {"widths": (8, 16, 32, 64)}


def test_float32_backbone_options_are_checked_and_yield_to_the_callers_network():
    with pytest.raises(ConfigError, match=r"TrainConfig\.float32_backbone_options.*widthz"):
        _config(mixed_precision="bfloat16", float32_backbone_options={"widthz": [8]})
    with pytest.raises(ConfigError, match="needs mixed_precision='bfloat16'"):
        _config(float32_backbone_options={"widths": [8, 16, 32, 64]})
    resolved = {
        "name": "p",
        "epochs": 1,
        "mixed_precision": "bfloat16",
        "backbone_options": {"block_dropout": 0.05},
        "float32_backbone_options": {"widths": [8, 16, 32, 64]},
    }
    profile_cfg = TrainConfig.from_profile(resolved, "custom_cnn")
    assert profile_cfg.in_float32().backbone_options == {"widths": (8, 16, 32, 64)}
    # The caller's own network, or float32 asked for outright, trains as given on any CPU.
    own = TrainConfig.from_profile(resolved, "custom_cnn", backbone_options={"convs": 1})
    assert own.in_float32().backbone_options == {"convs": 1}
    in_float32 = TrainConfig.from_profile(resolved, "custom_cnn", mixed_precision=False)
    assert in_float32.in_float32().backbone_options == {"block_dropout": 0.05}
    # ... but a float32 network the caller asks for without bfloat16 has nothing to replace.
    with pytest.raises(ConfigError, match="needs mixed_precision='bfloat16'"):
        TrainConfig.from_profile(
            resolved, "custom_cnn", mixed_precision=False, float32_backbone_options={"convs": 1}
        )


def test_cpu_bfloat16_support_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    from helpers.train import backend

    info = tmp_path / "cpuinfo"
    monkeypatch.setattr(backend, "CPUINFO", str(info))
    info.write_text("flags\t\t: fpu avx2 avx512f\n")
    assert not backend.cpu_runs_bfloat16()
    info.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    assert backend.cpu_runs_bfloat16()
    monkeypatch.setattr(backend, "CPUINFO", str(tmp_path / "absent"))  # not Linux
    assert not backend.cpu_runs_bfloat16()


def test_python_input_pipeline_trains_as_tf_data_does(tmp_path):
    """input_pipeline="python" (the PyDataset JAX and PyTorch read) feeds the same batches, so
    the same seed gives the same losses; the card says which loader fed the model."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    settings = {"online": True, "config": {"rotate_limit": 10.0}, "seed": 0}
    runs = {
        loader: train(
            _config(epochs=2, input_pipeline=loader),
            train_rows,
            val_rows,
            tmp_path / loader.replace(".", "_"),
            augment_settings=settings,
        )
        for loader in ("tf.data", "python")
    }
    graph, python = runs["tf.data"], runs["python"]
    assert graph.card["data"]["input_pipeline"] == "tf.data"
    assert python.card["data"]["input_pipeline"] == "python"
    assert python.card["versions"]["backend"] == "tensorflow"
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(python.history[column], graph.history[column], rtol=1e-4)
    with pytest.raises(ConfigError, match=r"TrainConfig\.input_pipeline"):
        TrainConfig(model="custom_cnn", input_pipeline="torch")


def test_time_budget_must_be_positive():
    with pytest.raises(ConfigError, match="time_budget_minutes"):
        TrainConfig(model="custom_cnn", time_budget_minutes=0)


def test_learning_rate_defaults_to_the_backbones_own():
    """VGG16 (no BatchNorm) collapses from scratch at 1e-3: the registry gives it 1e-4."""
    vgg = TrainConfig(model="vgg16")
    assert vgg.learning_rate is None
    assert plan_phases(vgg, pretrained=False)[0].learning_rate == 1e-4
    assert plan_phases(vgg, pretrained=True)[0].learning_rate == 1e-3
    assert vgg.phase2_lr == 1e-4  # fine-tuning: a tenth of the head warm-up rate
    cnn = TrainConfig(model="custom_cnn")
    assert plan_phases(cnn, pretrained=False)[0].learning_rate == 1e-3
    given = TrainConfig(model="vgg16", learning_rate=5e-4)
    assert plan_phases(given, pretrained=False)[0].learning_rate == 5e-4
    with pytest.raises(ConfigError, match=r"TrainConfig\.learning_rate"):
        TrainConfig(model="vgg16", learning_rate=-1.0)


def test_card_facts_read_the_figures_a_comparison_shows(trained, tmp_path):
    import math

    from helpers.train.card import CardFacts

    root, result = trained
    facts = CardFacts.read(root / "run" / "models" / "custom_cnn.json")
    assert facts.epochs_run == result.card["epochs_run"] == 2 and facts.params > 1000
    assert facts.training_time_s > 0 and facts.images_per_s > 0
    assert math.isnan(CardFacts.read(tmp_path / "none.json").params)
    (tmp_path / "odd.json").write_text('{"params": "many", "epochs_run": true}')
    odd = CardFacts.read(tmp_path / "odd.json")
    assert math.isnan(odd.params) and math.isnan(odd.epochs_run)


def test_the_outcome_table_reads_the_kept_epoch_and_its_validation_scores(trained):
    from helpers.train.card import outcome_table

    _, result = trained
    table = outcome_table(result.card)["value"]
    best = result.card["best"]
    assert table["epochs run"] == 2 and table["epoch kept"] == result.card["best_epoch"]
    assert table["chosen by"] == f"{best['monitor']} {best['value']:.4f}"
    accuracy = best["metrics"]["val_expression_accuracy"]
    assert table["val_expression_accuracy"] == f"{accuracy:.3f}"
    assert not any(name.endswith("_loss") for name in table.index)  # the monitor says enough
    assert isinstance(table["training time (s)"], int)
    averaged = outcome_table({**result.card, "weight_average": {"kept": False}})["value"]
    assert averaged["weight average"] == "not kept"
    assert "weight average" not in table.index  # none was made


def test_each_epoch_sends_one_line_with_the_time_left(tmp_path, monkeypatch):
    from helpers.core import progress
    from helpers.train.callbacks import EpochLine, TimeBudget

    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "lines"))
    logs = {"loss": 1.0, "val_loss": 0.9, "val_expression_accuracy": 0.5, "time_s": 30.0}
    EpochLine("vgg16", 4).on_epoch_end(0, dict(logs))
    EpochLine("vgg16", 4, TimeBudget(1.0)).on_epoch_end(0, dict(logs))  # budget ends sooner
    EpochLine("vgg16", 4).on_epoch_end(3, {"loss": 0.5, "time_s": 200.0})
    EpochLine("vgg16", 4).on_epoch_end(3, {"loss": 0.5, "val_accuracy": 0.25, "time_s": 1.0})
    assert (tmp_path / "lines").read_text().splitlines() == [
        "vgg16 epoch 1/4: loss 1.000, val loss 0.900, val accuracy 0.500, 30 s, about 2 min left",
        "vgg16 epoch 1/4: loss 1.000, val loss 0.900, val accuracy 0.500, 30 s, about 30 s left",
        "vgg16 epoch 4/4: loss 0.500, 200 s",
        "vgg16 epoch 4/4: loss 0.500, val accuracy 0.250, 1 s",  # one head: val_accuracy
    ]


def test_training_says_what_starts_and_a_long_first_epoch_its_steps(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from helpers.core import progress
    from helpers.train.callbacks import EpochLine, start_line

    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "lines"))
    now = [0.0]

    class Tick(keras.callbacks.Callback):
        """A fake clock: each batch takes 2 s."""

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            now[0] += 2.0

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    start = start_line("custom_cnn", 25789, 64, 60, 55.0)
    shown = EpochLine("custom_cnn", 2, start=start, steps=40, clock=lambda: now[0])
    x, y = np.zeros((40, 2), "float32"), np.zeros((40, 1), "float32")
    model.fit(x, y, batch_size=1, epochs=2, verbose=0, callbacks=[Tick(), shown])
    lines = (tmp_path / "lines").read_text().splitlines()
    # a line every 30 s of the first epoch (the clock read after every batch), none after it
    assert lines[:3] == [
        "custom_cnn: training on 25,789 faces, batch 64, up to 60 epochs or 55 minutes",
        "custom_cnn epoch 1/2: 15 of 40 steps, 30 s so far",
        "custom_cnn epoch 1/2: 30 of 40 steps, 60 s so far",
    ]
    assert [text.split(":")[0] for text in lines[3:]] == [
        "custom_cnn epoch 1/2",
        "custom_cnn epoch 2/2",
    ]
    assert "steps" not in lines[3] and "epoch 2/2: loss" in lines[4]
    assert (
        start_line("vgg16", 500, 32, 3) == "vgg16: training on 500 faces, batch 32, up to 3 epochs"
    )


def test_slow_steps_leave_no_more_than_30_s_and_one_step_between_two_lines(tmp_path, monkeypatch):
    import itertools

    from helpers.core import progress
    from helpers.train.callbacks import STEP_LINE_EVERY_S, EpochLine

    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "lines"))
    now = [0.0]
    shown = EpochLine("vgg16", 1, steps=16, clock=lambda: now[0])
    shown.on_epoch_begin(0)
    for batch in range(16):  # a large backbone on a slow CPU: 12 s a step
        now[0] += 12.0
        shown.on_train_batch_end(batch)
    lines = (tmp_path / "lines").read_text().splitlines()
    assert lines[0] == "vgg16 epoch 1/1: 3 of 16 steps, 36 s so far"  # not 10 steps, 120 s
    said = [12.0 * int(text.split(": ")[1].split(" of ")[0]) for text in lines]  # seconds
    ends = [0.0, *said, 16 * 12.0]  # the epoch's start, each line, the epoch's end
    gaps = [later - earlier for earlier, later in itertools.pairwise(ends)]
    assert max(gaps) <= STEP_LINE_EVERY_S + 12.0, lines


# Run in a fresh interpreter: logical devices must be set before TensorFlow initialises its
# devices, which this test process did long ago.
_MIRRORED = """
import json, sys
import pandas as pd
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from helpers.train import backend, fit
from helpers.train.config import TrainConfig

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
backend.strategy = lambda: strategy  # what strategy() returns with two GPUs, on two CPU devices
table = pd.read_pickle(sys.argv[1])
train, val = (table[table["split"] == s].reset_index(drop=True) for s in ("train", "val"))
cfg = TrainConfig(model="custom_cnn", image_size=32, epochs=1, batch_size=8, verbose=0,
                  shared_units=16)
result = fit.train(cfg, train, val, sys.argv[2], resume=False,
                   augment_settings={"online": True, "config": {}})
print("RESULT " + json.dumps({"strategy": result.card["strategy"],
                              "replicas": result.card["replicas"],
                              "loss": float(result.history["loss"].iloc[-1])}))
"""


def test_training_step_under_mirrored_strategy_on_two_cpu_devices(tmp_path):
    """The multi-GPU path of train(): MirroredStrategy with two replicas (here two logical CPU
    devices) builds, compiles, fits with online augmentation and saves the model."""
    table_path = tmp_path / "table.pkl"
    _table(tmp_path / "images").to_pickle(table_path)
    done = subprocess.run(
        [sys.executable, "-c", _MIRRORED, str(table_path), str(tmp_path / "run")],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert np.isfinite(result["loss"])
    assert load_trained(tmp_path / "run" / "models" / "custom_cnn.keras") is not None


_ONEDNN = """
import helpers
from tensorflow.python.util import _pywrap_util_port
print("ONEDNN", _pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize(("setting", "enabled"), [(None, True), ("0", False)])
def test_tensorflow_runs_onednn_kernels_unless_told_not_to(setting, enabled):
    """TensorFlow enables them by itself only on CPUs with AVX-512 VNNI, bfloat16 or AMX; the
    project asks for them everywhere (ResNet50's step 5.5 times faster on an AVX2 CPU)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    done = subprocess.run(
        [sys.executable, "-c", _ONEDNN], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ONEDNN {enabled}" in done.stdout


@pytest.mark.parametrize(
    ("heads", "monitor"),
    [(("expression",), "val_accuracy"), (("expression", "valence"), "val_expression_accuracy")],
)
def test_checkpoint_metric_accuracy_keeps_the_most_accurate_epoch(
    tmp_path, monkeypatch, heads, monitor
):
    """checkpoint_metric='accuracy': the checkpoint, the schedule and the card all watch the
    expression accuracy and keep its highest epoch, not the lowest loss."""
    seen = {}

    class Spy(keras.callbacks.ModelCheckpoint):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["checkpoint"] = (self.monitor, self.mode)

    monkeypatch.setattr(keras.callbacks, "ModelCheckpoint", Spy)
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    cfg = _config(epochs=3, heads=heads, checkpoint_metric="accuracy")
    result = train(cfg, train_rows, val_rows, tmp_path / "run")
    assert seen["checkpoint"] == (monitor, "max")
    scores = result.history[monitor].to_numpy(float)
    assert result.card["best"]["monitor"] == monitor
    assert result.card["best"]["epoch"] == int(np.argmax(scores)) + 1


def test_best_epoch_is_the_highest_accuracy_or_the_lowest_loss():
    from helpers.train.resume import best_so_far

    history = pd.DataFrame({"val_loss": [1.0, 0.5, 0.7], "val_accuracy": [0.2, 0.5, 0.6]})
    assert best_so_far(history, "val_loss") == (0.5, 1)
    assert best_so_far(history, "val_accuracy") == (0.6, 0)
    with pytest.raises(ConfigError, match="checkpoint_metric"):
        _config(heads=("valence", "arousal"), checkpoint_metric="accuracy")
    with pytest.raises(ConfigError, match="checkpoint_metric"):
        _config(checkpoint_metric="f1")


def test_the_card_records_how_the_training_faces_are_framed(tmp_path):
    """The predictor and the frame readers crop new faces with it: measured on a seeded sample
    of the original training faces, augmented copies left out."""
    from helpers.data.synthetic import render_face, sample_face_params
    from helpers.train.card import face_framing

    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        face = render_face(sample_face_params(rng, i % 8, 96), 96)[0]
        augmented = i >= 50  # these copies are cut tight: they must not count
        path = tmp_path / f"{i}.png"
        Image.fromarray(face[14:82, 14:82] if augmented else face).save(path)
        rows.append({"image": str(path), "augmented": augmented})
    framing = face_framing(pd.DataFrame(rows), seed=0)
    assert framing is not None and framing["sampled"] == 50
    assert 0.12 <= framing["margin"] <= 0.28
    assert face_framing(pd.DataFrame(rows[50:]).assign(augmented=False), seed=0) is None


def test_the_model_file_is_replaced_whole_never_written_in_place(tmp_path, monkeypatch):
    """Notebook 05 may read the model while 04 still trains: each checkpoint is written beside
    it and renamed into place, so the file is always a whole model."""
    train_rows, val_rows = _split(_table(tmp_path / "images", n=24))
    model_path = tmp_path / "run" / "models" / "custom_cnn.keras"
    saved, seen = [], []
    original = keras.Model.save

    def save(self, filepath, *args, **kwargs):
        saved.append(Path(filepath))
        return original(self, filepath, *args, **kwargs)

    class _Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(zipfile.is_zipfile(model_path))

    monkeypatch.setattr(keras.Model, "save", save)
    cfg = _config(epochs=2, max_steps_per_epoch=1)
    train(cfg, train_rows, val_rows, tmp_path / "run", callbacks=[_Look()])
    assert saved and model_path not in saved and seen == [True, True]
    assert {p.parent for p in saved} == {model_path.parent}  # same folder: an atomic rename
    assert sorted(p.name for p in model_path.parent.iterdir()) == [
        "custom_cnn.json",
        "custom_cnn.keras",
    ]


def test_a_finished_training_run_again_with_its_settings_is_loaded_not_trained(tmp_path, capsys):
    """Notebook 04's fit cell run again (after a kernel restart its later cells need `result`):
    the model the run holds, trained to its end with these settings on this split, comes back
    with its history and card; other settings, or resume=False, train anew."""
    from helpers.core import records, trained
    from helpers.core.run_folder import RunFolder

    table = _table(tmp_path / "images")
    train_rows, val_rows = _split(table)
    out = tmp_path / "run"
    out.mkdir()
    records.save_records(table, out / "splits.parquet")
    first = train(_config(epochs=1), train_rows, val_rows, out)
    card = first.card
    assert card["data"]["split_sha256"] == trained.split_sha256(RunFolder(out))
    model_file = out / "models" / "custom_cnn.keras"
    stamp = model_file.stat().st_mtime_ns
    capsys.readouterr()

    again = train(_config(epochs=1), train_rows, val_rows, out)
    said = capsys.readouterr().out
    assert said == (
        f"custom_cnn: already trained in this run with these settings (finished "
        f"{card['finished_at']}): loaded, not trained again (resume = False trains it again)\n"
    )
    assert model_file.stat().st_mtime_ns == stamp and again.card == card
    pd.testing.assert_frame_equal(again.history, first.history)
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(
        again.model.predict(x, verbose=0)["expression"],
        first.model.predict(x, verbose=0)["expression"],
        atol=1e-6,
    )

    online = {"online": True, "config": {"rotate_limit": 5.0}, "seed": 0}
    train(_config(epochs=1), train_rows, val_rows, out, augment_settings=online)  # 03 changed
    assert "replacing the trained models/custom_cnn.keras" in capsys.readouterr().out
    train(_config(epochs=1), train_rows, val_rows, out, augment_settings=online)
    assert "already trained in this run" in capsys.readouterr().out
    train(_config(epochs=1, batch_size=4), train_rows, val_rows, out)  # other settings
    assert "replacing the trained models/custom_cnn.keras" in capsys.readouterr().out
    train(_config(epochs=1, batch_size=4), train_rows, val_rows, out, resume=False)
    assert "replacing the trained models/custom_cnn.keras" in capsys.readouterr().out
