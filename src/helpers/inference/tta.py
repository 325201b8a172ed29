"""Test-time augmentation: a model's outputs averaged over several views of each image.

- flip: the image and its mirror. Faces are nearly symmetric and training flips them half the
  time, so a model's mistakes on an image and on its mirror are partly independent and their
  average is steadier.
- tencrop: five crops (four corners and the centre, each CROP_SHARE of the side, resized back
  to the input size) and their mirrors, the FER-2013 recipe of Khaireddin & Chen (2021); training
  zooms in by up to 1.2, so the crops are views it has seen.

Per head: class probabilities and valence/arousal are averaged as they are; landmarks predicted
on a view are mapped back to the image first (mirrored back with x' = S - 1 - x in model pixels
and renumbered left <-> right, the convention of helpers.core.landmarks.flip_landmarks; a crop's
points moved and scaled back with the pixel-centre convention). Deterministic: no random
transform, so the same image always gets the same prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import cv2
import numpy as np

from helpers.core.errors import ConfigError
from helpers.core.landmarks import FLIP_PERMUTATION, N_POINTS

TTA_MODES = ("none", "flip", "tencrop")
# A setting, not a mode: evaluation (notebook 05) uses the mode that leads on the validation
# split, and the predictor the mode its model's evaluation chose.
AUTO = "auto"
TTA_SETTINGS = (*TTA_MODES, AUTO)
CROP_SHARE = 44 / 48  # ten-crop's crop side: 44 of FER-2013's 48 pixels
Predict = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def check_tta(mode: Any, allowed: tuple[str, ...] = TTA_MODES) -> str:
    """A valid mode (None is "none"), or a ConfigError listing them (before any image is read)."""
    if mode is None:
        return "none"
    if mode not in allowed:
        raise ConfigError(f"tta must be one of {', '.join(allowed)}, got {mode!r}")
    return str(mode)


def check_tta_setting(setting: Any) -> str:
    """A mode or "auto" (a profile's or notebook 05's setting)."""
    return check_tta(setting, TTA_SETTINGS)


def unflip_landmarks(normalised: np.ndarray, image_size: int) -> np.ndarray:
    """Landmarks (N, 136; x0/S, y0/S, ...) predicted on mirrored inputs, back in the original."""
    pts = np.asarray(normalised, dtype=np.float64).reshape(-1, N_POINTS, 2).copy()
    pts[..., 0] = (image_size - 1) / image_size - pts[..., 0]
    return pts[:, FLIP_PERMUTATION].reshape(len(pts), N_POINTS * 2)


def crop_boxes(size: int) -> list[tuple[int, int, int]]:
    """(x0, y0, side) of ten-crop's five crops: four corners, then the centre."""
    side = max(1, round(size * CROP_SHARE))
    far, mid = size - side, (size - side) // 2
    return [(0, 0, side), (far, 0, side), (0, far, side), (far, far, side), (mid, mid, side)]


def _crop(images: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """One crop of every image, resized back to the input size (bilinear: it enlarges)."""
    x0, y0, side = box
    n, size, _, channels = images.shape
    patch = images[:, y0 : y0 + side, x0 : x0 + side, :]
    out = np.empty_like(images)
    for i in range(n):
        resized = cv2.resize(patch[i], (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = resized.reshape(size, size, channels)
    return out


def uncrop_landmarks(normalised: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """Landmarks (N, 136) predicted on a crop resized to S, back in the image's x/S, y/S."""
    x0, y0, side = box
    pts = np.asarray(normalised, dtype=np.float64).reshape(-1, N_POINTS, 2) * size
    pts = (pts + 0.5) * side / size - 0.5 + np.array([x0, y0], dtype=np.float64)
    return (pts / size).reshape(len(pts), N_POINTS * 2)


Transform = Callable[[np.ndarray], np.ndarray]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _mirror(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images[:, :, ::-1, :])


def _then(first: Transform, second: Transform) -> Transform:
    """second(first(x))."""

    def both(x: np.ndarray) -> np.ndarray:
        return second(first(x))

    return both


def _views(mode: str, size: int) -> list[tuple[Transform, Transform]]:
    """(make the view from the batch, map its landmarks back) for each view of a mode."""
    unmirror = partial(unflip_landmarks, image_size=size)
    if mode == "flip":
        return [(_identity, _identity), (_mirror, unmirror)]
    views: list[tuple[Transform, Transform]] = []
    for box in crop_boxes(size):
        crop: Transform = partial(_crop, box=box)
        uncrop: Transform = partial(uncrop_landmarks, box=box, size=size)
        views += [(crop, uncrop), (_then(crop, _mirror), _then(unmirror, uncrop))]
    return views


def predict(call: Predict, images: np.ndarray, mode: str = "none") -> dict[str, np.ndarray]:
    """Outputs per head for a batch (N, S, S, C), averaged over the mode's views."""
    if check_tta(mode) == "none":
        return {str(k): np.asarray(v) for k, v in call(images).items()}
    size = images.shape[2]
    totals: dict[str, np.ndarray] = {}
    dtypes: dict[str, np.dtype] = {}
    views = _views(mode, size)
    for make, back in views:
        for head, value in call(make(images)).items():
            value = np.asarray(value)
            dtypes.setdefault(str(head), value.dtype)
            if head == "landmarks":
                value = back(value).reshape(value.shape)
            totals[str(head)] = totals.get(str(head), 0.0) + value.astype(np.float64)
    return {head: (total / len(views)).astype(dtypes[head]) for head, total in totals.items()}


class TTAModel:
    """Any predictor backend (Keras or TFLite) with test-time augmentation, same interface."""

    def __init__(self, backend: Any, mode: str):
        self.backend, self.mode = backend, check_tta(mode)
        self.metadata = {**backend.metadata, "tta": self.mode}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return predict(self.backend, np.asarray(images, dtype=np.float32), self.mode)
