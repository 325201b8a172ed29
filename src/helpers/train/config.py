"""The settings of one training run, checked on creation, and the phase schedule they imply."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import ConfigError
from helpers.core.labels import HEADS, check_heads
from helpers.data.mixing import MixSettings
from helpers.models import factory, registry, transfer
from helpers.models import losses as losses_module
from helpers.models.losses import LANDMARK_LOSSES, VA_LOSSES
from helpers.train.backend import INPUT_PIPELINES
from helpers.train.limits import check_numbers
from helpers.train.workers import check_processes

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
# plateau: cut the learning rate when validation stalls; cosine: anneal it to min_lr over the
# time budget (or over the epochs without one).
LR_SCHEDULES = ("plateau", "cosine")
# The validation score that picks the kept epoch (and that the plateau schedule and early
# stopping watch): loss, or the expression head's accuracy.
CHECKPOINT_METRICS = ("loss", "accuracy")
CACHE_MODES = ("auto", "memory", "disk", "none")
# Fields that must match a backup for it to be resumed (the rest may change between calls).
RESUME_KEYS = (
    "model",
    "image_size",
    "channels",
    "heads",
    "batch_size",
    "learning_rate",
    "optimizer",
    "lr_schedule",
    "ema_momentum",
    "swa_start",
    "swa_rate",
    "weight_decay",
    "mixing",
    "va_loss",
    "label_smoothing",
    "landmark_loss",
    "loss_weights",
    "transfer",
    "trainable_top_n",
    "warmup_epochs",
    "finetune_lr",
    "weights",
    "shared_units",
    "dropout",
    "pooling",
    "backbone_options",
    "online_augment",
    "n_classes",
    "seed",
)


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
    learning_rate: float | None = None  # None: the model's (registry.default_learning_rate)
    optimizer: str = "adam"
    lr_schedule: str = "plateau"  # plateau | cosine (LR_SCHEDULES)
    checkpoint_metric: str = "loss"  # loss | accuracy (CHECKPOINT_METRICS)
    # Polyak averaging: validation, checkpoints and the saved model use an exponential moving
    # average of the weights with this momentum (e.g. 0.999); None: the weights as trained.
    ema_momentum: float | None = None
    # Stochastic weight averaging (helpers.train.averaging), with the cosine schedule: from this
    # share of the training on (e.g. 0.75) the rate is held at swa_rate times the starting one
    # and each epoch's weights join an equal-weight mean, kept (BatchNorm's statistics
    # recomputed) when it beats the best single epoch on validation; None: no averaging.
    swa_start: float | None = None
    swa_rate: float = 0.1
    # Decoupled weight decay of the kernels (biases and BatchNorm's scale and offset kept), a
    # share of the learning rate per step, e.g. 0.05 with Adam; None: the optimizer's own
    # (AdamW 0.004, none for the others).
    weight_decay: float | None = None
    # Blend training faces in pairs, targets alike (helpers.data.mixing): e.g. {"mode": "mixup",
    # "alpha": 0.2} or {"mode": "cutmix", "alpha": 1.0, "p": 0.5}; None: no blending.
    mixing: dict[str, Any] | None = None
    va_loss: str = "mse"
    label_smoothing: float = 0.0
    landmark_loss: str = "mse"
    loss_weights: dict[str, float] | None = None
    transfer: str = "full"
    trainable_top_n: int = 20
    warmup_epochs: int = 0
    finetune_lr: float | None = None
    weights: str | None = None  # None | "imagenet" | path to a weights file
    weights_fallback: str = "random"  # when ImageNet is unavailable: random | error | path
    shared_units: int = 256
    dropout: float = 0.3
    pooling: str = "avg"  # avg | flatten (helpers.models.factory.POOLINGS)
    # The backbone builder's own arguments, e.g. {"convs": (1, 2, 3, 3)} for the custom CNN
    backbone_options: dict[str, Any] | None = None
    # Where mixed_precision "bfloat16" falls back to float32 (a CPU without bfloat16
    # instructions), these replace backbone_options: a lighter network for the slower step, so
    # that a time budget still holds its epochs; None: the same network in float32.
    float32_backbone_options: dict[str, Any] | None = None
    # Augment each batch as notebook 03's settings say (when they ask for it). False: train on
    # the split's images and notebook 03's offline copies as they are, for budgets of minutes,
    # where a network still leaving chance learns faster from the images it will be tested on.
    online_augment: bool = True
    n_classes: int = 8
    early_stopping_patience: int = 5  # plateau schedule only: a cosine runs to its end
    reduce_lr_patience: int = 2
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-6
    max_steps_per_epoch: int | None = None  # each epoch: this many batches of a fresh shuffle
    time_budget_minutes: float | None = None  # stop before an epoch would end past this budget
    seed: int = 0
    # "auto": float16 on a GPU, float32 elsewhere; True: float16; "bfloat16": bfloat16 on a GPU
    # or a CPU with bfloat16 instructions (AMX, AVX512-BF16), float32 on any other CPU
    mixed_precision: str | bool = "auto"
    tensorboard: bool = False
    cache: str = "auto"  # auto | memory | disk | none (decoded images)
    cache_memory_limit_gb: float = 2.0  # "auto" caches in memory up to this size, else on disk
    # auto: tf.data with TensorFlow, a Keras PyDataset on JAX or PyTorch (the same batches)
    input_pipeline: str = "auto"  # auto | tf.data | python
    # Forked processes that build augmented training batches (helpers.train.workers): "auto" is
    # every core but two on a GPU, none on a CPU (where the training step is the work); 0: none
    input_processes: int | str = "auto"
    profile: str | None = None
    verbose: int = 2  # Keras: 0 silent, 1 progress bar, 2 one line per epoch

    def __post_init__(self) -> None:
        """Normalise (lists from papermill become tuples) and reject bad values by field name."""
        object.__setattr__(self, "heads", check_heads(self.heads, where="TrainConfig.heads"))
        registry.check_names([self.model], given_as="TrainConfig.model")
        registry.check(self.model)  # a mistyped entry named now, not by the build in fit
        check_numbers({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        smallest = registry.get(self.model).min_size  # the fit would refuse it: now, not then
        if self.image_size < smallest:
            self._fail("image_size", f"must be an integer >= {smallest} for {self.model}")
        if self.channels not in (1, 3):
            self._fail("channels", "must be 1 (grayscale) or 3 (RGB)")
        if self.swa_start is not None and self.lr_schedule != "cosine":
            self._fail(
                "swa_start",
                "holds the rate where the cosine schedule ends: needs lr_schedule='cosine'",
            )
        if self.swa_start is not None and self.ema_momentum is not None:
            self._fail("swa_start", "and ema_momentum are two averages of the weights: set one")
        choices = {
            "optimizer": OPTIMIZERS,
            "lr_schedule": LR_SCHEDULES,
            "checkpoint_metric": CHECKPOINT_METRICS,
            "va_loss": VA_LOSSES,
            "landmark_loss": LANDMARK_LOSSES,
            "transfer": transfer.TRANSFER_MODES,
            "pooling": factory.POOLINGS,
            "cache": CACHE_MODES,
            "input_pipeline": INPUT_PIPELINES,
            "mixed_precision": ("auto", True, False, "bfloat16"),
            "verbose": (0, 1, 2),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed or isinstance(getattr(self, name), float):
                self._fail(name, f"must be one of {list(allowed)}")
        try:
            check_processes(self.input_processes)
        except ConfigError:
            self._fail("input_processes", 'must be "auto" or an integer >= 0')
        if not isinstance(self.online_augment, (bool, np.bool_)):
            self._fail("online_augment", "must be True or False")
        if self.loss_weights is not None:
            object.__setattr__(self, "loss_weights", dict(self.loss_weights))
            try:
                losses_module.default_loss_weights(self.heads, self.loss_weights)
            except ConfigError as error:
                self._fail("loss_weights", str(error))
        if self.mixing is not None:
            try:
                settings = MixSettings.from_value(self.mixing)
            except ConfigError as error:
                self._fail("mixing", str(error))
            if "expression" not in self.heads:
                self._fail("mixing", "blends expression targets; the model has no expression head")
            object.__setattr__(self, "mixing", settings.to_dict())  # type: ignore[union-attr]
        if self.checkpoint_metric == "accuracy" and "expression" not in self.heads:
            self._fail("checkpoint_metric", "accuracy is the expression head's; the model has none")
        if self.weights not in (None, "imagenet"):
            if not isinstance(self.weights, (str, os.PathLike)):
                self._fail("weights", "must be None, 'imagenet' or a weights file's path")
            object.__setattr__(self, "weights", os.fspath(self.weights))
        fallback = self.weights_fallback
        if fallback not in factory.WEIGHTS_FALLBACKS and not isinstance(
            fallback, (str, os.PathLike)
        ):
            self._fail(
                "weights_fallback", f"must be one of {list(factory.WEIGHTS_FALLBACKS)} or a path"
            )
        for name in ("backbone_options", "float32_backbone_options"):
            if getattr(self, name) is not None:
                try:
                    options = factory.builder_options(self.model, getattr(self, name))
                except ConfigError as error:
                    self._fail(name, str(error))
                object.__setattr__(self, name, options)
        if self.float32_backbone_options is not None and self.mixed_precision != "bfloat16":
            self._fail(
                "float32_backbone_options",
                "replace backbone_options where bfloat16 falls back to float32: needs "
                "mixed_precision='bfloat16'",
            )

    def _fail(self, name: str, problem: str) -> None:
        """Every error names the field, so a notebook user knows which parameter to fix."""
        raise ConfigError(f"TrainConfig.{name} {problem} (got {getattr(self, name)!r})")

    @classmethod
    def from_profile(cls, resolved: Mapping[str, Any], model: str, **overrides: Any) -> TrainConfig:
        """Resolved profile values (helpers.run.profiles.train_config), then non-None overrides.

        resolved: helpers.run.profiles.resolve(profile, model=model), per-model values included.
        Pretrained profiles (weights set) default to a 2-epoch warm-up and top_n fine-tuning.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"TrainConfig: unknown parameter(s) {unknown}; known: {sorted(known)}"
            )
        values: dict[str, Any] = {"profile": resolved["name"]}
        if resolved.get("weights") is not None:
            values.update(transfer="top_n", warmup_epochs=min(2, max(resolved["epochs"] - 1, 0)))
        values.update({k: v for k, v in resolved.items() if k in known and k != "model"})
        values.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("backbone_options") is not None:  # the caller's network, on any CPU
            values["float32_backbone_options"] = overrides.get("float32_backbone_options")
        if values.get("mixed_precision") != "bfloat16" and (
            overrides.get("float32_backbone_options") is None
        ):  # nothing to fall back from; the caller's own is checked by __post_init__
            values["float32_backbone_options"] = None
        return cls(model=model, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values for the model card."""
        d = dataclasses.asdict(self)
        d["heads"] = list(self.heads)
        for name in ("backbone_options", "float32_backbone_options"):
            options = getattr(self, name)
            if options is not None:  # as JSON gives them back, for resume's check
                d[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        return d

    def in_float32(self) -> TrainConfig:
        """This run where bfloat16 falls back to float32: the lighter network the profile gives
        for the slower step in place of its own (the same config where it gives none)."""
        if self.float32_backbone_options is None:
            return self
        return dataclasses.replace(self, backbone_options=self.float32_backbone_options)

    def first_lr(self, pretrained: bool) -> float:
        """The learning rate training starts at: the one given, or the backbone's default."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return registry.default_learning_rate(self.model, pretrained)

    @property
    def phase2_lr(self) -> float:
        """Fine-tuning learning rate (pretrained backbones)."""
        return (
            self.finetune_lr
            if self.finetune_lr is not None
            else self.first_lr(pretrained=True) / 10
        )


# Settings that say how the run is reported, not what it trains.
NOT_SHOWN = ("model", "profile", "verbose")


def settings_table(cfg: TrainConfig) -> pd.DataFrame:
    """The settings this run changes from TrainConfig's defaults, each beside its default: what
    the profile and the notebook's parameters decided, readable where the whole config is not."""
    defaults = {
        f.name: f.default for f in dataclasses.fields(cfg) if f.default is not dataclasses.MISSING
    }
    defaults["heads"] = list(HEADS)
    rows = [
        {"setting": name, "value": _shown(value), "default": _shown(defaults[name])}
        for name, value in cfg.to_dict().items()
        if name in defaults and name not in NOT_SHOWN and value != defaults[name]
    ]
    return pd.DataFrame(rows, columns=["setting", "value", "default"])


def _shown(value: Any, nested: bool = False) -> str:
    """A setting as a reader writes it: heads and options without Python's quotes."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_shown(v, True)}" for k, v in value.items()) or "{}"
    if isinstance(value, (list, tuple)):
        listed = ", ".join(_shown(v, True) for v in value)
        return f"[{listed}]" if nested else listed
    return str(value)


@dataclass(frozen=True)
class Phase:
    """One fit() call: which epochs, what the backbone may change, at which learning rate."""

    name: str
    transfer: str
    learning_rate: float
    first_epoch: int  # 0-based, inclusive
    end_epoch: int  # exclusive


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
