"""The shared 8-class label space (AffectNet order) and mappings from other label spaces."""
from __future__ import annotations

EXPRESSIONS: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)
N_EXPRESSIONS = len(EXPRESSIONS)

# FER-2013 / ExpW order: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER_TO_AFFECTNET: dict[int, int] = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}

# Names (lower case) users' folders and CSVs use for each class, mapped to the shared index.
SYNONYMS: dict[str, int] = {
    "neutral": 0, "calm": 0,
    "happy": 1, "happiness": 1, "joy": 1,
    "sad": 2, "sadness": 2,
    "surprise": 3, "surprised": 3,
    "fear": 4, "fearful": 4, "afraid": 4, "scared": 4,
    "disgust": 5, "disgusted": 5,
    "anger": 6, "angry": 6,
    "contempt": 7, "contemptuous": 7,
}


def expression_index(name: str) -> int | None:
    """Map a label name from any source to the shared index, or None when unknown."""
    return SYNONYMS.get(name.strip().lower())
