"""The 68-point iBUG landmark layout: groups, left/right mirroring, normalisation."""

from __future__ import annotations

import numpy as np

N_POINTS = 68

# Index ranges of the iBUG 300-W layout. "Right"/"left" are the subject's, so the right eye
# (36-41) appears on the image's left in a frontal photo.
GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_lower": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lip": range(48, 60),
    "inner_lip": range(60, 68),
}
# Groups drawn as closed outlines.
CLOSED_GROUPS = frozenset({"right_eye", "left_eye", "outer_lip", "inner_lip"})

# Outer eye corners, the usual normaliser for NME.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45


def _flip_permutation() -> np.ndarray:
    """Point i of a mirrored face is point perm[i] of the original, x mirrored."""
    pairs = [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + k, 26 - k) for k in range(5)]  # brows
    pairs += [(27 + k, 27 + k) for k in range(4)]  # nose bridge
    pairs += [(31 + k, 35 - k) for k in range(5)]  # nostrils
    pairs += list(zip(range(36, 42), (45, 44, 43, 42, 47, 46), strict=False))  # eyes
    pairs += list(
        zip(range(48, 60), (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55), strict=False)
    )
    pairs += list(zip(range(60, 68), (64, 63, 62, 61, 60, 67, 66, 65), strict=False))
    perm = np.empty(N_POINTS, dtype=np.int64)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


FLIP_PERMUTATION: np.ndarray = _flip_permutation()


def flip_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """Mirror (68, 2) pixel landmarks horizontally and swap left/right indices to match."""
    pts = np.asarray(landmarks, dtype=np.float32).reshape(N_POINTS, 2)
    mirrored = pts.copy()
    # Pixel-centre convention: column c maps to width - 1 - c.
    mirrored[:, 0] = (width - 1) - pts[:, 0]
    return mirrored[FLIP_PERMUTATION]


def interocular_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between outer eye corners, for (68, 2) or (N, 68, 2) landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(pts[..., RIGHT_EYE_OUTER, :] - pts[..., LEFT_EYE_OUTER, :], axis=-1)


def to_model_space(points: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """Move (68, 2) pixel landmarks with a resize to size x size (pixel-centre convention).

    The same mapping as helpers.data.augment.resize_with_landmarks, applied to points alone
    because the training cache holds one image for many rows (balanced copies share a source).
    """
    if (height, width) == (size, size):
        return points
    scale = np.array([size / width, size / height], dtype=np.float32)
    return ((points + 0.5) * scale - 0.5).astype(np.float32)


def from_model_output(
    normalised: object, width: object, height: object, size: int, offset: object = (0.0, 0.0)
) -> np.ndarray:
    """(N, 68, 2) image pixels from the model's 136 values x/S, y/S, ... per face.

    Exact inverse of the training targets (to_model_space, then / S): the model input is the
    image (or the face crop at `offset`) resized to S x S with the pixel-centre convention, so
    x = x0 + (x_norm * S + 0.5) * width / S - 0.5, likewise y with height.
    """
    s = float(size)
    pts = np.asarray(normalised, dtype=np.float64).reshape(-1, N_POINTS, 2)
    wh = np.stack(
        [np.asarray(width, np.float64).reshape(-1), np.asarray(height, np.float64).reshape(-1)],
        axis=-1,
    ).reshape(-1, 1, 2)
    xy = np.asarray(offset, np.float64).reshape(-1, 1, 2)
    return (pts * s + 0.5) * wh / s - 0.5 + xy


# How far past an image's edge a landmark may lie, as a share of its side: a jaw or brow
# can leave a tight crop, a face cannot be mostly outside it.
OUTSIDE_TOLERANCE = 0.25


def landmark_problem(points: np.ndarray, height: int, width: int) -> str | None:
    """Why (68, 2) pixel landmarks cannot be a face on a height x width image, or None: points
    beyond OUTSIDE_TOLERANCE of the image past its edges, values all within [0, 1] on a larger
    image (normalised, not pixels), or no spread (all equal, or the outer eye corners at one
    point, which NME cannot normalise by either)."""
    pts = np.asarray(points, dtype=np.float64).reshape(N_POINTS, 2)
    if np.ptp(pts[:, 0]) == 0 or np.ptp(pts[:, 1]) == 0 or interocular_distance(pts) == 0:
        return "degenerate (no spread)"
    low = -OUTSIDE_TOLERANCE * np.array([width, height])
    high = np.array([width, height]) * (1 + OUTSIDE_TOLERANCE)
    if (pts < low).any() or (pts > high).any():
        return "outside the image"
    if max(height, width) > 2 and pts.min() >= 0 and pts.max() <= 1:
        return "normalised to [0, 1], not pixels"
    return None
