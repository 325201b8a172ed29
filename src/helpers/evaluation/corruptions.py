"""How a model holds up on degraded faces: the test images blurred, noisy, dark, flat,
JPEG-compressed, at low resolution or partly covered, each at three severities.

Test sets are clean crops; faces from a webcam, a phone at night or a video call are not. Scoring
the same test faces after each corruption (in the spirit of ImageNet-C, Hendrycks & Dietterich
2019) says which model degrades gracefully, which a single accuracy on clean faces cannot.

Each corruption degrades the stored photo at its own resolution, with OpenCV and numpy, before
each model fits it to its input size as usual: models fed 32 px and 224 px meet the same
degraded pixels. Blur and the covered square are set relative to the image's side and low
resolution as the pixels left across the face; noise, darkening, contrast and JPEG act on each
stored pixel (noise on a 224 px photo is partly averaged away when a model shrinks it, as it
would be for a real photo).
Deterministic: the noise and the covered square of each image are drawn from a seed made of the
corruption, severity and the image's row, and the test images scored are a seeded sample of at
most `n` of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import cv2
import numpy as np
import pandas as pd

from helpers.core.progress import bar as progress_bar
from helpers.core.progress import line
from helpers.evaluation.comparison import tta_headline
from helpers.evaluation.metrics import constant_predictions, present_pairs
from helpers.evaluation.predictions import REGRESSION_HEADS, predict_table
from helpers.evaluation.scoring import evaluate

SEVERITIES = (1, 2, 3)
# Per corruption, its setting at severities 1, 2 and 3, and what the setting is.
LEVELS: dict[str, tuple[tuple[float, float, float], str]] = {
    "blur": ((0.01, 0.02, 0.04), "Gaussian blur, sigma as a share of the side"),
    "noise": ((8.0, 16.0, 32.0), "Gaussian noise, standard deviation in grey levels"),
    "dark": ((0.6, 0.4, 0.25), "brightness multiplied by"),
    "low_contrast": ((0.6, 0.4, 0.25), "contrast about the image's mean multiplied by"),
    "jpeg": ((30, 15, 8), "JPEG quality"),
    "low_resolution": ((24, 16, 12), "the face this many pixels across, then back to size"),
    "occlusion": ((0.1, 0.2, 0.3), "a grey square over this share of the image"),
}
CORRUPTIONS = tuple(LEVELS)
DEFAULT_N = 2000  # test images per corruption and severity: seconds per model on a CPU


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """The image (H, W, C; uint8 or float 0-255) with one corruption at severity 1-3, same
    shape and dtype (rounded for an integer dtype); a ValueError names an unknown corruption or
    severity."""
    if name not in LEVELS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    level = LEVELS[name][0][severity - 1]
    height, width = image.shape[:2]
    pixels = np.clip(image, 0, 255).astype(np.float32)
    rng = np.random.default_rng([CORRUPTIONS.index(name), severity, seed])
    if name == "blur":
        out = cv2.GaussianBlur(pixels, (0, 0), sigmaX=level * max(height, width))
    elif name == "noise":
        out = pixels + rng.normal(0.0, level, pixels.shape)
    elif name == "dark":
        out = pixels * level
    elif name == "low_contrast":
        out = (pixels - pixels.mean()) * level + pixels.mean()
    elif name == "jpeg":
        grey = pixels.shape[-1] == 1
        encoded = np.clip(pixels[..., 0] if grey else pixels[..., ::-1], 0, 255).astype(np.uint8)
        _, data = cv2.imencode(".jpg", encoded, [cv2.IMWRITE_JPEG_QUALITY, int(level)])
        decoded = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        out = decoded[..., None] if grey else decoded[..., ::-1]
    elif name == "low_resolution":
        scale = min(1.0, level / max(height, width))
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        out = cv2.resize(
            cv2.resize(pixels, small, interpolation=cv2.INTER_AREA),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        )
    else:  # occlusion
        side = max(1, round(np.sqrt(level * height * width)))
        top = int(rng.integers(0, max(1, height - side + 1)))
        left = int(rng.integers(0, max(1, width - side + 1)))
        out = pixels.copy()
        out[top : top + side, left : left + side] = 128.0
    out = np.clip(np.asarray(out, dtype=np.float32).reshape(image.shape), 0, 255)
    if np.issubdtype(image.dtype, np.integer):
        out = np.rint(out)
    return out.astype(image.dtype, copy=False)


def corruption_line(n: int, passes: int) -> str:
    """What scoring under corruptions does before its first progress line: faces and passes."""
    return f"corruptions: scoring {n:,} test faces in {passes} passes (clean, then corrupted) ..."


def corruption_scores(
    model: Any,
    table: pd.DataFrame,
    *,
    n: int = DEFAULT_N,
    batch_size: int = 64,
    classes: Iterable[Any] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The model's headline metrics on (a seeded sample of `n` of) the test images, clean and
    under every corruption and severity, on one view each: the metrics JSON's `corruptions`
    block ({} for an empty table or n = 0). `retained` is each headline metric's mean over
    corruptions and severities as a share of its clean value (NME: clean over corrupted, so 1
    is no loss and less is worse for every metric), null for a valence or arousal head whose
    clean outputs are constant but for rounding (constant_heads)."""
    if n <= 0 or not len(table):
        return {}
    sample = table.sample(min(n, len(table)), random_state=seed) if len(table) > n else table
    sample = sample.reset_index(drop=True)
    classes = list(classes) if classes is not None else None

    flat: list[str] = []  # heads whose clean outputs are constant but for rounding

    def scored(transform: Callable[[np.ndarray, int], np.ndarray] | None) -> dict[str, Any]:
        """Headline metrics of one pass over the sample."""
        predicted = predict_table(
            model, sample, batch_size=batch_size, progress=False, transform=transform
        )
        if transform is None:
            flat.extend(constant_heads(predicted))
        return tta_headline(evaluate("corrupted", predicted, n_boot=0, classes=classes))

    steps = [(name, severity) for name in CORRUPTIONS for severity in SEVERITIES]
    if progress:
        line(corruption_line(len(sample), len(steps) + 1))
    results: dict[str, dict[str, Any]] = {}
    with progress_bar(
        total=len(steps) + 1, desc="corruptions", unit="pass", disable=not progress
    ) as bar:
        clean = scored(None)
        bar.update(1)
        for name, severity in steps:

            def transform(image: np.ndarray, row: int, name=name, severity=severity) -> np.ndarray:
                return corrupt(image, name, severity, seed=seed * 1_000_003 + row)

            results.setdefault(name, {})[str(severity)] = scored(transform)
            bar.update(1)
    return {
        "n": len(sample),
        "of": len(table),  # test images: n is all of them or a seeded sample
        "tta": "none",
        "severities": list(SEVERITIES),
        "levels": {name: list(levels) for name, (levels, _) in LEVELS.items()},
        "clean": clean,
        "results": results,
        "mean": (mean := _mean(results)),
        "retained": _retained(clean, mean, flat),
    }


def constant_heads(predicted: pd.DataFrame) -> list[str]:
    """The valence and arousal heads whose predictions are constant but for float rounding
    (metrics.constant_predictions): their CCC is rounding, and so is any share of it."""
    heads = []
    for head in REGRESSION_HEADS:
        if head in predicted and f"{head}_pred" in predicted:
            truth, guess = present_pairs(predicted[head], predicted[f"{head}_pred"])
            if truth.size and constant_predictions(truth, guess):
                heads.append(head)
    return heads


def _values(results: Mapping[str, Any], head: str, key: str) -> list[float]:
    """One headline metric over every corruption and severity."""
    found = []
    for by_severity in results.values():
        for heads in by_severity.values():
            value = (heads.get(head) or {}).get(key)
            if isinstance(value, (int, float)) and np.isfinite(value):
                found.append(float(value))
    return found


def _headline_keys(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (head, metric) pairs the passes scored."""
    keys = set()
    for by_severity in results.values():
        for heads in by_severity.values():
            keys |= {(head, key) for head, block in heads.items() for key in (block or {})}
    return sorted(keys)


def _mean(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Each headline metric averaged over corruptions and severities."""
    out: dict[str, dict[str, float]] = {}
    for head, key in _headline_keys(results):
        values = _values(results, head, key)
        if values:
            out.setdefault(head, {})[key] = float(np.mean(values))
    return out


def _retained(
    clean: Mapping[str, Any], mean: Mapping[str, Any], constant: Iterable[str] = ()
) -> dict[str, dict[str, float | None]]:
    """The mean under corruption as a share of the clean value (NME inverted: lower is better);
    null for a head whose clean outputs are constant (a share of rounding is no number)."""
    out: dict[str, dict[str, float | None]] = {}
    for head, block in mean.items():
        for key, value in block.items():
            if head in constant:
                out.setdefault(head, {})[key] = None
                continue
            base = (clean.get(head) or {}).get(key)
            # a share of a score at or below 0 (a CCC, an accuracy of 0) means nothing
            if not isinstance(base, (int, float)) or base <= 0 or value is None:
                continue
            if key == "nme" and value <= 0:
                continue
            share = base / value if key == "nme" else value / base
            out.setdefault(head, {})[key] = float(share)
    return out


def corruption_table(
    block: Mapping[str, Any], head: str = "expression", key: str = "f1_macro"
) -> pd.DataFrame:
    """One row per corruption, one column per severity (clean beside them): one metric of a
    `corruptions` block, for a notebook to show."""
    rows = []
    clean = ((block.get("clean") or {}).get(head) or {}).get(key)
    for name, by_severity in (block.get("results") or {}).items():
        row: dict[str, Any] = {"corruption": name, "clean": clean}
        for severity, heads in by_severity.items():
            row[f"severity {severity}"] = ((heads or {}).get(head) or {}).get(key)
        rows.append(row)
    return pd.DataFrame(rows)
