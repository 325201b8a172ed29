"""Test-time augmentation: a model's outputs averaged over the image and its mirror image.

Faces are nearly symmetric and training flips them half the time, so a model's mistakes on an
image and on its mirror are partly independent and their average is steadier. Per head:
class probabilities and valence/arousal are averaged as they are; landmarks predicted on the
mirror image are mirrored back (x' = S - 1 - x in model pixels, the pixel-centre convention of
helpers.core.landmarks.flip_landmarks) and renumbered left <-> right before averaging.
Deterministic: no random transform, so the same image always gets the same prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from helpers.core.errors import ConfigError
from helpers.core.landmarks import FLIP_PERMUTATION, N_POINTS

TTA_MODES = ("none", "flip")
Predict = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def check_tta(mode: Any) -> str:
    """A valid mode, or a ConfigError listing them (before any image is read)."""
    if mode is None:
        return "none"
    if mode not in TTA_MODES:
        raise ConfigError(f"tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    return str(mode)


def unflip_landmarks(normalised: np.ndarray, image_size: int) -> np.ndarray:
    """Landmarks (N, 136; x0/S, y0/S, ...) predicted on mirrored inputs, back in the original."""
    pts = np.asarray(normalised, dtype=np.float64).reshape(-1, N_POINTS, 2).copy()
    pts[..., 0] = (image_size - 1) / image_size - pts[..., 0]
    return pts[:, FLIP_PERMUTATION].reshape(len(pts), N_POINTS * 2)


def predict(call: Predict, images: np.ndarray, mode: str = "none") -> dict[str, np.ndarray]:
    """Outputs per head for a batch (N, S, S, C), averaged over the mode's views."""
    out = {str(k): np.asarray(v) for k, v in call(images).items()}
    if check_tta(mode) == "none":
        return out
    mirrored = {
        str(k): np.asarray(v) for k, v in call(np.ascontiguousarray(images[:, :, ::-1, :])).items()
    }
    size = images.shape[2]
    averaged = {}
    for head, value in out.items():
        other = mirrored[head]
        if head == "landmarks":
            other = unflip_landmarks(other, size).reshape(value.shape)
        averaged[head] = ((value.astype(np.float64) + other.astype(np.float64)) / 2).astype(
            value.dtype
        )
    return averaged


class TTAModel:
    """Any predictor backend (Keras or TFLite) with test-time augmentation, same interface."""

    def __init__(self, backend: Any, mode: str):
        self.backend, self.mode = backend, check_tta(mode)
        self.metadata = {**backend.metadata, "tta": self.mode}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return predict(self.backend, np.asarray(images, dtype=np.float32), self.mode)
