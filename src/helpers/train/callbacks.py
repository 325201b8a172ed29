"""Keras callbacks of train(): epoch timing, a time budget, early stopping carried over a resume."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from helpers.core.progress import line, say
from helpers.core.words import counted
from helpers.models.saving import publish


class EpochTimer(keras.callbacks.Callback):
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
    `epochs` is the run's epoch count over every phase: its last epoch ends the run anyway, so
    the budget does not claim that stop (nor print that another epoch would not fit).
    """

    def __init__(self, minutes: float, spent_s: float = 0.0, epochs: int | None = None):
        super().__init__()
        self.budget_s = minutes * 60.0
        self.spent_s = spent_s
        self.epochs = epochs
        self.stopped = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        last = time.perf_counter() - self._start
        self.spent_s += last
        if self.epochs is not None and epoch + 1 >= self.epochs:
            return
        if self.spent_s + last > self.budget_s:
            self.stopped = True
            self.model.stop_training = True
            message = (
                f"time budget: {self.spent_s / 60:.1f} of {self.budget_s / 60:g} min used; "
                "another epoch would not fit, stopping with the best model so far"
            )
            say([message])


def batches_between_updates(backend: str) -> int:
    """How often CosineAnneal sets the rate: every batch, but every 32nd on JAX, where a
    callback that touches the model mid-epoch writes the whole training state back to the
    variables and reads it in again (0.75 ms for the VGGNet on a CPU core, where an H200's
    batch-64 step took 4.6); 32 steps of a cosine over hundreds of epochs are one flat stretch."""
    return 32 if backend == "jax" else 1


class CosineAnneal(keras.callbacks.Callback):
    """Anneal the learning rate from its start to `floor` along a half cosine, per batch.

    Keras' CosineDecay counts steps, but a time budget fixes minutes, not steps (how many fit
    depends on the machine), so with a budget the position is the share of the budget spent,
    read from the TimeBudget (resumed runs included). Without one it is the share of
    `total_steps`; with both, whichever end comes first (a fast machine runs out of epochs
    before minutes, and its last epochs still get the low rate). Annealing to near zero by the
    end is what budgeted training needs: the last low-rate epochs are where most of the final
    accuracy comes from (Li et al. 2020). The rate is set every `every` batches (default:
    batches_between_updates). With `hold` (stochastic weight averaging), the cosine ends at
    `until` of the training at `hold` times the starting rate, which it then keeps.

    The budget stops training only between epochs, so an epoch under way runs to its end: where
    it would end past the budget (a budget shorter than one epoch), the minutes the cosine runs
    over are those to the epoch's end, estimated from the epoch's steps so far
    (`steps_per_epoch`, else Keras's count), and a line says so once; otherwise the cosine would
    sit at its floor for the rest of the epoch.
    """

    def __init__(
        self,
        floor: float,
        *,
        budget: TimeBudget | None = None,
        total_steps: int | None = None,
        first_step: int = 0,
        every: int | None = None,
        until: float = 1.0,
        hold: float | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__()
        if budget is None and not total_steps:
            raise ValueError("CosineAnneal needs a time budget or a number of steps")
        self.floor, self.budget, self.total = floor, budget, total_steps
        self.until, self.hold = until, hold
        self.step = first_step
        self.every = batches_between_updates(keras.backend.backend()) if every is None else every
        self.seen = 0
        self.start_lr: float | None = None
        self.steps_per_epoch = steps_per_epoch
        self.epoch_steps = 0  # batches begun in the epoch under way
        self.second_step_at: float | None = None  # the clock as its second batch began
        self.reached = 0.0  # the position never goes back as the estimate of an epoch moves
        self.warned = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.steps_per_epoch is None:
            self.steps_per_epoch = (getattr(self, "params", None) or {}).get("steps")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_steps, self.second_step_at = 0, None

    def fraction(self) -> float:
        """How far through the training this batch is, 0 to 1."""
        done = self.step / float(self.total) if self.total else 0.0
        if self.budget is not None:
            running = time.perf_counter() - getattr(self.budget, "_start", time.perf_counter())
            spent = self.budget.spent_s + running
            done = max(done, spent / self.horizon(spent))
        self.reached = max(self.reached, min(max(done, 0.0), 1.0))
        return self.reached

    def horizon(self, spent: float) -> float:
        """The seconds of training the cosine runs over: the budget, or where the epoch under
        way will end past it (the budget cannot stop it sooner), that end."""
        budget = self.budget
        assert budget is not None
        ends = self.epoch_end(spent)
        if ends is None or ends <= budget.budget_s:
            return budget.budget_s
        if not self.warned and ends > 1.05 * budget.budget_s:  # not the clock's jitter
            self.warned = True
            message = (
                f"time budget: this epoch ends past the {budget.budget_s / 60:g}-minute budget "
                f"(about {ends / 60:.1f} min in all), so the learning rate anneals to its end "
                "instead; a longer budget or fewer faces would train more"
            )
            say([message])
        return ends

    def epoch_end(self, spent: float) -> float | None:
        """Training seconds at the end of the epoch under way, from its steps so far (timed
        from its second, so the first's compilation is left out); None before two steps."""
        steps = self.steps_per_epoch
        if not steps or self.second_step_at is None or self.epoch_steps < 3:
            return None
        per_step = (time.perf_counter() - self.second_step_at) / (self.epoch_steps - 2)
        return spent + max(steps - self.epoch_steps + 1, 0) * per_step

    def rate(self, start: float) -> float:
        """The learning rate at this point of the training, from `start`."""
        end = self.floor if self.hold is None else max(self.floor, self.hold * start)
        progress = min(self.fraction() / self.until, 1.0)
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.epoch_steps += 1
        if self.epoch_steps == 2 and self.budget is not None:
            self.second_step_at = time.perf_counter()
        if self.seen % self.every == 0:  # self.model is touched only here (see the default)
            optimizer = self.model.optimizer
            if self.start_lr is None:
                self.start_lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            optimizer.learning_rate.assign(self.rate(self.start_lr))
        self.step += 1
        self.seen += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:  # the history shows the schedule, as with ReduceLROnPlateau
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


class EpochLine(keras.callbacks.Callback):
    """One line per epoch (helpers.core.progress.line: the terminal of `./run_all.sh`, or under
    a notebook's cell run by hand): loss, validation loss and accuracy, and the time left, so an
    hour of training is not an hour of silence; before it, what starts, and the first epoch's
    steps so far. Needs EpochTimer before it (time_s) and, if there is one, the TimeBudget after
    it."""

    def __init__(
        self,
        name: str,
        epochs: int,
        budget: TimeBudget | None = None,
        *,
        start: str | None = None,
        steps: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self.name, self.epochs, self.budget = name, epochs, budget
        self.start, self.steps, self.clock = start, steps, clock
        self.times: list[float] = []
        self.epoch_start = self.last_line = 0.0
        self.epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.start:  # what starts and how big it is, before the first epoch's minutes
            line(self.start)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.epoch_start = self.last_line = self.clock()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """The first epoch's steps so far, every STEP_LINE_EVERY_S (the first epoch alone: it
        has no time left to show yet). The clock is read after every batch, so slow steps
        (seconds each on a large backbone) cannot stretch the silence between two lines; this
        call costs under half a microsecond a batch on an AMD EPYC core (time.monotonic alone
        60 ns), nothing beside a training step's milliseconds."""
        if self.times:
            return
        now = self.clock()
        if now - self.last_line >= STEP_LINE_EVERY_S:
            self.last_line = now
            done, seconds = batch + 1, now - self.epoch_start
            line(
                steps_line(
                    f"{self.name} epoch {self.epoch + 1}/{self.epochs}", done, self.steps, seconds
                )
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        took = float(logs.get("time_s", 0.0))
        self.times.append(took)
        parts = [f"{self.name} epoch {epoch + 1}/{self.epochs}:"]
        # A model with one head names its metrics without the head: val_accuracy.
        accuracy = (
            "val_expression_accuracy" if "val_expression_accuracy" in logs else "val_accuracy"
        )
        for key, label in (("loss", "loss"), ("val_loss", "val loss"), (accuracy, "val accuracy")):
            if key in logs:
                parts.append(f"{label} {float(logs[key]):.3f},")
        left = sum(self.times) / len(self.times) * max(self.epochs - epoch - 1, 0)
        if self.budget is not None:
            left = min(left, max(self.budget.budget_s - self.budget.spent_s - took, 0.0))
        parts.append(f"{took:.0f} s" + (f", about {_duration(left)} left" if left else ""))
        line(" ".join(parts))


# A first epoch longer than this reports its steps so far, this often: at the first batch to end
# this many seconds after the last line (so at most one step late).
STEP_LINE_EVERY_S = 30.0


def start_line(
    name: str, faces: int, batch_size: int, epochs: int, minutes: float | None = None
) -> str:
    """What training starts and how big it is, for the terminal before the first epoch ends."""
    limit = f" or {minutes:g} minutes" if minutes is not None else ""
    return (
        f"{name}: training on {counted(faces, 'face')}, batch {batch_size}, "
        f"up to {counted(epochs, 'epoch')}{limit}"
    )


def steps_line(epoch: str, done: int, steps: int | None, seconds: float) -> str:
    """An epoch's progress so far: steps done of the total, and the time spent."""
    total = f" of {steps:,}" if steps else ""
    return f"{epoch}: {done:,}{total} steps, {_duration(seconds)} so far"


def _duration(seconds: float) -> str:
    """45 s, 3 min, 1 h 05 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class RestoreProgress(keras.callbacks.Callback):
    """After a resume, give EarlyStopping and ReduceLROnPlateau the best/wait they had.

    Both reset themselves in on_train_begin; this runs after them (later in the list).
    """

    def __init__(self, targets: Sequence[keras.callbacks.Callback], best: float | None, wait: int):
        super().__init__()
        self.targets, self.best, self.wait = targets, best, wait

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.best is None:
            return
        for callback in self.targets:
            callback.best, callback.wait = self.best, self.wait


class PublishModel(keras.callbacks.Callback):
    """After the checkpoint callback wrote an improved model beside its place (partial_path),
    rename it into place at once: a reader never loads a half-written model file."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        publish(self.path)

    def on_train_end(self, logs: dict | None = None) -> None:
        publish(self.path)
