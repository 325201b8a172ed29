"""Finding faces: OpenCV's bundled Haar cascade, overlapping boxes merged, square crops with a
margin. In core because both the predictor and the readers of datasets whose images are whole
frames (JAFFE, CK+) crop faces with it, the same way."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from helpers.core.errors import ConfigError

CASCADE_FILE = "haarcascade_frontalface_default.xml"


# Haar boxes span brows to chin; a 0.2 margin on each side gives the framing of the demo data
# (measured: stored image side / detected box side = 1.36-1.40 on rendered faces).
DEFAULT_MARGIN = 0.2
MARGIN_RANGE = (0.0, 2.0)  # the margins the predictor and the frame readers accept

# The predictor's (CLI and notebook 07 alike) smallest face: a fifth of the image's shorter side.
# The cascade's false faces are small (39 px in a 240 px demo clip, 61 px in a 480 px scene,
# where the real faces are found at 101-147 px), and a share keeps the number of small windows
# searched, so the false faces, the same at any resolution. A group photo's small faces need
# less: --min-face-share 0 (or predict_images(detector=Detector())) leaves min_face alone.
MIN_FACE_SHARE = 0.2


_LOCAL = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """OpenCV's bundled frontal-face cascade, loaded once per thread (opencv-python<5 wheels
    ship it): one classifier shared by threads returns wrong boxes (measured: 4 threads over 7
    frames missed a face and moved four boxes)."""
    cascade = getattr(_LOCAL, "cascade", None)
    if cascade is not None:
        return cascade
    path = os.path.join(os.path.dirname(cv2.__file__), "data", CASCADE_FILE)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ConfigError(
            f"cannot load the Haar cascade {path}: is opencv-python(-headless)<5 "
            "installed (OpenCV 5 wheels no longer ship the cascades)?"
        )
    _LOCAL.cascade = cascade
    return cascade


# Bounds of the Detector's settings: past them OpenCV fails inside detectMultiScale (out of
# memory, or an int overflow) and the failure would be blamed on the image being searched. A
# pyramid step above 2 skips most face sizes; no image the readers accept has a side of 1e6 px.
MAX_SCALE_FACTOR = 2.0
MAX_SIDE_PX = 1_000_000
MAX_NEIGHBORS = 10_000


def setting_problem(name: str, value: object) -> str | None:
    """What is wrong with one Detector setting (None when it is usable): checked when the
    detector is made, before any image is searched."""
    if name == "scale_factor":
        ok = (
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool)
            and 1.0 < float(value) <= MAX_SCALE_FACTOR
        )
        return None if ok else f"must be a number in (1, {MAX_SCALE_FACTOR:g}], got {value!r}"
    if name == "min_face_share":
        ok = (
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool)
            and 0.0 <= float(value) <= 1.0
        )
        return None if ok else f"must be a number in [0, 1], got {value!r}"
    low, high = (0, MAX_NEIGHBORS) if name == "min_neighbors" else (1, MAX_SIDE_PX)
    if (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and low <= value <= high
    ):
        return None
    return f"must be an integer in [{low}, {high:,}], got {value!r}"


@dataclass(frozen=True)
class Detector:
    """Haar-cascade face finder; defaults measured on the demo faces pasted into noisy scenes.

    scale_factor 1.05 finds more faces than OpenCV's usual 1.1 (about 73% vs 55% of rendered
    faces rolled up to 15 degrees) for about twice the time; min_neighbors 5 keeps false
    positives rare. min_face is in pixels of the original image; min_face_share raises it to a
    share of the image's shorter side (MIN_FACE_SHARE). Images with a side above max_side are
    searched at reduced size (the boxes are scaled back). Bounds: scale_factor in (1, 2],
    min_neighbors in [0, 10,000], min_face and max_side in [1, 1,000,000] px, min_face_share in
    [0, 1].
    """

    scale_factor: float = 1.05
    min_neighbors: int = 5
    min_face: int = 30
    max_side: int = 1600
    min_face_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("scale_factor", "min_neighbors", "min_face", "max_side", "min_face_share"):
            problem = setting_problem(name, getattr(self, name))
            if problem:
                raise ConfigError(f"{name} {problem}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(n, 4) int boxes x, y, w, h in image pixels, left to right, nested duplicates dropped."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        smallest = max(self.min_face, self.min_face_share * min(image.shape[:2]))
        min_size = max(1, round(smallest * scale))
        found = _cascade().detectMultiScale(
            gray,
            scaleFactor=float(self.scale_factor),
            minNeighbors=int(self.min_neighbors),
            minSize=(min_size, min_size),
        )
        boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4) / scale
        boxes = np.rint(_drop_nested(boxes)).astype(np.int64)
        return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))] if len(boxes) else boxes


def _drop_nested(boxes: np.ndarray, overlap: float = 0.5) -> np.ndarray:
    """The cascade sometimes reports a face twice (a box inside a box): keep the larger one."""
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
    kept: list[np.ndarray] = []
    for box in boxes[order]:
        if all(_intersection(box, k) <= overlap * box[2] * box[3] for k in kept):
            kept.append(box)
    return np.array(kept).reshape(-1, 4)


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Area shared by two x, y, w, h boxes."""
    dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return float(max(dx, 0) * max(dy, 0))


def crop_face(
    image: np.ndarray, box: Sequence[float], margin: float = DEFAULT_MARGIN
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Square crop around a box, `margin` of its side added on every side; edges replicated
    where the crop leaves the image, so the face keeps its proportions. Returns the crop and
    its region (x0, y0, side, side) in image pixels (x0, y0 may be negative)."""
    x, y, w, h = (float(v) for v in box)
    side = max(1, round(max(w, h) * (1.0 + 2.0 * margin)))
    x0 = round(x + w / 2 - side / 2)
    y0 = round(y + h / 2 - side / 2)
    height, width = image.shape[:2]
    ix0, iy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    ix1, iy1 = max(min(x0 + side, width), ix0 + 1), max(min(y0 + side, height), iy0 + 1)
    patch = image[iy0:iy1, ix0:ix1]
    pads = (iy0 - y0, y0 + side - iy1, ix0 - x0, x0 + side - ix1)
    if any(pads):
        top, bottom, left, right = (max(p, 0) for p in pads)
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return patch, (x0, y0, side, side)


def largest_face(boxes: np.ndarray) -> np.ndarray | None:
    """The largest of a detector's x, y, w, h boxes (the subject of a portrait), or None."""
    return boxes[int(np.argmax(boxes[:, 2] * boxes[:, 3]))] if len(boxes) else None


def face_square(
    image: np.ndarray, detector: Detector | None = None, margin: float = DEFAULT_MARGIN
) -> tuple[int, int, int, int] | None:
    """The largest face's square crop (margin on every side) as left, top, right, bottom, kept
    inside the image (shrunk to its shorter side if need be, so no edge is invented); None when
    no face is found."""
    box = largest_face((detector or Detector())(image))
    if box is None:
        return None
    x, y, w, h = (int(v) for v in box)
    height, width = image.shape[:2]
    side = min(max(1, round(max(w, h) * (1.0 + 2.0 * margin))), width, height)
    left = min(max(round(x + w / 2 - side / 2), 0), width - side)
    top = min(max(round(y + h / 2 - side / 2), 0), height - side)
    return left, top, left + side, top + side


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a width x height image, as left, top, right, bottom."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


FRAMING_SIDE = 192  # px a stored face is scaled to before in_frame sets it in a frame
_MIN_FRAMED = 20  # faces found before a framing is trusted


def in_frame(image: np.ndarray, side: int = FRAMING_SIDE) -> np.ndarray:
    """A stored face scaled to `side` and set in a frame of twice that, its edges replicated:
    a face that fills its image (FER-2013) is then found whole, at a size the cascade sees
    well, with room around it for any margin."""
    scaled = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)
    pad = side // 2
    return cv2.copyMakeBorder(scaled, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class Framing:
    """How a dataset's stored faces are framed: the crop margin that reproduces them."""

    margin: float  # per side, as a share of the Haar box (the predictor's `margin`)
    side_over_box: float  # median stored-image side / detected box side
    found: int
    sampled: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "margin": self.margin,
            "side_over_box": self.side_over_box,
            "found": self.found,
            "sampled": self.sampled,
        }


def measure_framing(images: Sequence[np.ndarray]) -> Framing | None:
    """The margin at which the predictor's crops frame a face as these stored faces are framed;
    None when the cascade finds fewer than 20 of them.

    A model sees faces as its training data framed them: FER-2013's faces fill the image (the
    Haar box is 1.02 of the side; margin 0.01), the demo faces have brow-to-chin at 1.4 (0.2).
    Cropped at the demo's 0.2, FER-2013 test faces shrink to 71% and an hour's FER-2013 model
    scored 0.585 on them against 0.637 at its training framing (0.643 as stored; 816 faces,
    `python -m benchmarks --only framing`).
    """
    ratios = []
    detector = Detector(min_face=FRAMING_SIDE // 5)
    for image in images:
        largest = largest_face(detector(in_frame(image)))
        if largest is not None:
            ratios.append(FRAMING_SIDE / float(max(largest[2], largest[3])))
    if len(ratios) < _MIN_FRAMED:
        return None
    ratio = float(np.median(ratios))
    margin = round(min(max((ratio - 1.0) / 2.0, 0.0), 1.0), 2)
    return Framing(margin, round(ratio, 3), len(ratios), len(images))
