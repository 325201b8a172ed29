"""TrainConfig's numeric fields and their ranges, in a module that imports nothing heavy: the
runner refuses a --set value out of range (learning_rate=abc) in a second, before Keras loads."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from numbers import Integral
from typing import Any

from helpers.core.errors import ConfigError

# Whole numbers and the least each may be; those of OPTIONAL may also be None.
INTEGERS = (
    ("image_size", 8),
    ("channels", 1),
    ("epochs", 1),
    ("batch_size", 1),
    ("trainable_top_n", 0),
    ("warmup_epochs", 0),
    ("shared_units", 1),
    ("n_classes", 2),
    ("early_stopping_patience", 0),
    ("reduce_lr_patience", 0),
    ("seed", 0),
    ("max_steps_per_epoch", 1),
)
# Numbers above 0 (finite).
POSITIVE = (
    "min_lr",
    "cache_memory_limit_gb",
    "learning_rate",
    "finetune_lr",
    "time_budget_minutes",
)
# Numbers in [low, high); those of NOT_ZERO above low.
SHARES = (
    ("label_smoothing", 0.0, 1.0),
    ("weight_decay", 0.0, 1.0),
    ("ema_momentum", 0.0, 1.0),
    ("swa_start", 0.0, 1.0),
    ("dropout", 0.0, 1.0),
    ("reduce_lr_factor", 0.0, 1.0),
)
NOT_ZERO = ("reduce_lr_factor", "ema_momentum", "swa_start")
# None means "the default" (the model's learning rate, no averaging, no budget ...).
OPTIONAL = (
    "max_steps_per_epoch",
    "learning_rate",
    "finetune_lr",
    "time_budget_minutes",
    "weight_decay",
    "ema_momentum",
    "swa_start",
)


def check_numbers(values: Mapping[str, Any]) -> None:
    """A ConfigError naming the first field here out of its range (TrainConfig's own wording);
    fields absent from `values`, and None where OPTIONAL allows it, are not checked."""
    given = {k: v for k, v in values.items() if not (v is None and k in OPTIONAL)}
    for name, wrong, must in _checks():
        if name in given and wrong(given[name]):
            raise ConfigError(f"TrainConfig.{name} {must} (got {given[name]!r})")


Check = tuple[str, Callable[[Any], bool], str]  # field, is it wrong, what it must be


def _checks() -> list[Check]:
    """Every field's check, in the order TrainConfig checks them."""
    checks: list[Check] = [
        (name, functools.partial(_bad_integer, low=low), f"must be an integer >= {low}")
        for name, low in INTEGERS
    ]
    checks += [(name, _bad_positive, "must be a positive number") for name in POSITIVE]
    checks += [
        (
            name,
            functools.partial(_bad_share, low=low, high=high, open_low=name in NOT_ZERO),
            f"must be a number in [{low}, {high})",
        )
        for name, low, high in SHARES
    ]
    swa = functools.partial(_bad_share, low=0.0, high=1.0, open_low=True, closed_high=True)
    checks.append(("swa_rate", swa, "must be a share of the starting rate in (0, 1]"))
    return checks


def _bad_integer(value: Any, low: int) -> bool:
    """Not a whole number (True is an int to Python, not a count to a user), or below low."""
    return isinstance(value, bool) or not isinstance(value, Integral) or value < low


def _bad_positive(value: Any) -> bool:
    """Not a finite number above 0."""
    return not _number(value) or not (math.isfinite(value) and value > 0)


def _bad_share(
    value: Any, low: float, high: float, open_low: bool = False, closed_high: bool = False
) -> bool:
    """Not a number in [low, high), or (low, high) with open_low, or up to high with closed_high."""
    if not _number(value):
        return True
    above = value > low if open_low else value >= low
    below = value <= high if closed_high else value < high
    return not (above and below)


def _number(value: Any) -> bool:
    """An int or a float, not a bool (True is an int to Python, not a rate to a user)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
