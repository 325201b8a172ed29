"""The shared 8-class label space (AffectNet order), mappings from other label spaces, and
the names of the model's heads."""

from __future__ import annotations

import math
from collections.abc import Iterable

from helpers.core.errors import ConfigError

# The model's outputs, in the order every model, loss, table and metrics file uses.
HEADS: tuple[str, ...] = ("expression", "valence", "arousal", "landmarks")

EXPRESSIONS: tuple[str, ...] = (
    "Neutral",
    "Happy",
    "Sad",
    "Surprise",
    "Fear",
    "Disgust",
    "Anger",
    "Contempt",
)
N_EXPRESSIONS = len(EXPRESSIONS)

# One colour per class wherever a class is drawn (figures, the report, annotated photos, video
# timelines): Okabe-Ito, the colour-blind-safe qualitative palette, in this order (its black
# replaced by grey so Neutral stays visible on dark images).
EXPRESSION_COLORS: tuple[str, ...] = (
    "#999999",  # Neutral
    "#E69F00",  # Happy
    "#0072B2",  # Sad
    "#56B4E9",  # Surprise
    "#CC79A7",  # Fear
    "#009E73",  # Disgust
    "#D55E00",  # Anger
    "#F0E442",  # Contempt
)
OTHER_COLOR = "#777777"  # a class name outside the shared eight (a model's own labels)


def expression_color(name: str) -> str:
    """The class's colour in every figure and annotated photo; grey for a name not among the
    shared eight, so a model with its own labels still draws."""
    return EXPRESSION_COLORS[EXPRESSIONS.index(name)] if name in EXPRESSIONS else OTHER_COLOR


# FER-2013 / ExpW order: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER_TO_AFFECTNET: dict[int, int] = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}

# Names (lower case) users' folders and CSVs use for each class, mapped to the shared index.
SYNONYMS: dict[str, int] = {
    "neutral": 0,
    "calm": 0,
    "happy": 1,
    "happiness": 1,
    "joy": 1,
    "sad": 2,
    "sadness": 2,
    "surprise": 3,
    "surprised": 3,
    "fear": 4,
    "fearful": 4,
    "afraid": 4,
    "scared": 4,
    "disgust": 5,
    "disgusted": 5,
    "anger": 6,
    "angry": 6,
    "contempt": 7,
    "contemptuous": 7,
}


def expression_index(name: str) -> int | None:
    """Map a label name from any source to the shared index, or None when unknown."""
    return SYNONYMS.get(name.strip().lower())


def accepted_names() -> str:
    """The label names expression_index maps, grouped by class, for messages that refuse one:
    "neutral/calm, happy/happiness/joy, ..."."""
    groups: dict[int, list[str]] = {}
    for name, index in SYNONYMS.items():
        groups.setdefault(index, []).append(name)
    return ", ".join("/".join(groups[index]) for index in sorted(groups))


def check_heads(heads: str | Iterable[str], where: str = "heads") -> tuple[str, ...]:
    """Head names in the canonical order, or one ConfigError naming the valid ones."""
    given = (heads,) if isinstance(heads, str) else tuple(heads)
    unknown = [h for h in given if h not in HEADS]
    if unknown or not given or len(set(given)) != len(given):
        raise ConfigError(
            f"{where} must be a non-empty subset of {', '.join(HEADS)} without "
            f"repeats, got {list(given)!r}"
        )
    return tuple(h for h in HEADS if h in given)


# Valence and arousal lie in [-1, 1]; a value this close past an edge is float rounding
# (float32 1.0000001) and is clipped onto it.
AFFECT_TOLERANCE = 1e-6
NO_RATING = -2.0  # AffectNet's valence or arousal of a face the annotators gave none


def affect_value(value: float) -> tuple[float, str | None]:
    """(the value, clipped into [-1, 1], None), or (NaN, why): 'not finite', '-2 (no rating)' or
    'out of range', so every reader of valence and arousal counts one value alike."""
    if not math.isfinite(value):
        return math.nan, "not finite"
    if value == NO_RATING:
        return math.nan, "-2 (no rating)"
    if not -1.0 - AFFECT_TOLERANCE <= value <= 1.0 + AFFECT_TOLERANCE:
        return math.nan, "out of range"
    return min(max(value, -1.0), 1.0), None


def class_number(text: str) -> int | None:
    """A whole number written as '3', ' 3 ' or '3.0' (spreadsheets save numbers as floats), or
    None for '3.5', 'nan', '²' or text."""
    if not text.isascii() or "_" in text:  # float() reads '1_0' as 10 and Arabic-Indic digits
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None
