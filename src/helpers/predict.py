"""Predict expression, valence/arousal and landmarks of every face in photos, folders and videos.

    python -m helpers.predict --model MODEL.keras INPUT... [--out DIR] [--every N] [--no-detect]
                              [--annotate] [--margin 0.2] [--min-face 30] [--backend tflite]

Faces are found with OpenCV's bundled Haar cascade, cropped square with a margin and fed to the
model exactly as in training (helpers.pipeline): gray or RGB per the model, resized to its
image size, raw 0-255 floats (the model holds its own preprocessing). Faces from many images
share one batch. One row per face comes back; a file that cannot be read or has no face gets
one row saying so (`status`, `error`) and never stops the others.

Notebook API: `predict_images(model_or_path, inputs) -> DataFrame` and `annotate(image, rows)`.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from helpers.errors import ConfigError, DataError
from helpers.images import MAX_PIXELS, ZIP_SCHEME, fit_square, read_image
from helpers.labels import EXPRESSIONS
from helpers.landmarks import N_POINTS
from helpers.tta import TTA_MODES, TTAModel, check_tta

if TYPE_CHECKING:
    import keras

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv"})
CASCADE_FILE = "haarcascade_frontalface_default.xml"
BACKENDS = ("keras", "tflite")
STATUSES = ("ok", "no_face", "error")  # the `status` column
FORMATS = ("csv", "json")
# Haar boxes span brows to chin; a 0.2 margin on each side gives the framing of the demo data
# (measured: stored image side / detected box side = 1.36-1.40 on rendered faces).
DEFAULT_MARGIN = 0.2


# --------------------------------------------------------------------------- models

class Backend(Protocol):
    """What the predictor needs from a model: its metadata and a batch -> dict-of-heads call."""

    metadata: dict[str, Any]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


class KerasModel:
    """A Keras model behind the same call as TFLiteModel: float batch in, numpy dict out."""

    def __init__(self, model: keras.Model):
        from helpers.models import model_metadata

        self.model = model
        self.metadata = model_metadata(model)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """predict_on_batch: predict() builds a dataset per call, which dominates small batches."""
        out = self.model.predict_on_batch(np.asarray(images, dtype=np.float32))
        return {str(k): np.asarray(v) for k, v in out.items()}


def open_model(model_or_path: Any, backend: str | None = None) -> Backend:
    """A Keras model, a .keras file, a .tflite file, a TFLiteModel or any Backend, ready to call.

    backend None picks by type/suffix; "tflite" with a Keras model converts it (float) in memory.
    """
    from helpers.export import TFLiteModel, export_tflite

    if backend not in (None, *BACKENDS):
        raise ConfigError(f"backend must be one of {BACKENDS} (or None to infer), got {backend!r}")
    if isinstance(model_or_path, (KerasModel, TFLiteModel)):
        is_tflite = isinstance(model_or_path, TFLiteModel)
        if backend is not None and (backend == "tflite") != is_tflite:
            raise ConfigError(f"backend={backend!r} given a {type(model_or_path).__name__}")
        return model_or_path
    if isinstance(getattr(model_or_path, "metadata", None), Mapping) and callable(model_or_path):
        return model_or_path  # any other runtime that follows the Backend protocol
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if path.suffix.lower() == ".tflite":
            if backend == "keras":
                raise ConfigError(f"{path}: a .tflite file needs backend='tflite'")
            return TFLiteModel(path)
        from helpers.training import load_trained  # keras and TF load only when needed

        model = load_trained(path)  # safe mode; DataError naming the file when it cannot load
    else:
        import keras

        if not isinstance(model_or_path, keras.Model):
            raise ConfigError("expected a Keras model, a .keras or .tflite path, or a TFLiteModel; "
                              f"got {type(model_or_path).__name__}")
        model = model_or_path
    if backend != "tflite":
        return KerasModel(model)
    with tempfile.TemporaryDirectory() as tmp:  # TFLiteModel keeps the bytes, not the file
        return TFLiteModel(export_tflite(model, Path(tmp) / "model.tflite"))


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Source:
    """One input: a still image file, a video file, or an in-memory array (notebooks)."""

    name: str
    kind: str  # "image", "video", "array", "missing", "empty" (a folder with no media)
    array: np.ndarray | None = field(default=None, repr=False, compare=False)


def _kind(path: Path) -> str:
    """Videos by extension; anything else is tried as an image, so odd names still get a verdict."""
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def expand_inputs(inputs: Any) -> list[Source]:
    """Files, folders (recursive, image and video extensions, sorted), zip:// image references
    and arrays (one image, or a batch along the first axis), in order."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        inputs = list(inputs)
    elif isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    sources: list[Source] = []
    for i, item in enumerate(inputs):
        if isinstance(item, np.ndarray):
            sources.append(Source(f"<array {i}>", "array", item))
            continue
        if isinstance(item, str) and item.startswith(ZIP_SCHEME):
            sources.append(Source(item, "image"))  # read_image checks archive and member
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
            sources.extend(Source(str(p), _kind(p)) for p in found)
            if not found:
                sources.append(Source(str(path), "empty"))
        elif path.is_file():
            sources.append(Source(str(path), _kind(path)))
        else:
            sources.append(Source(str(path), _special(path)))
    return sources


def _special(path: Path) -> str:
    """What a path that is neither a file nor a folder is: missing, or a special file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing"
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def _check_pixels(image: np.ndarray, where: str) -> None:
    """The decompression-bomb limit of helpers.images, applied to arrays and video frames too."""
    h, w = image.shape[:2]
    if h * w > MAX_PIXELS:
        raise DataError(where, f"frame is {w}x{h} = {w * h:,} pixels, over the limit of "
                               f"{MAX_PIXELS:,}")


def _as_rgb(image: np.ndarray, where: str) -> np.ndarray:
    """uint8 (H, W, 3) from a gray, gray+1 or RGB(A) array of 0-255 values."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise DataError(where, f"expected an image array (H, W[, 1|3|4]), got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


# EXIF orientation -> the PIL transpose that shows the photo upright (as ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def upright(image: np.ndarray, path: str) -> np.ndarray:
    """A photo turned as its EXIF orientation says: a phone photo taken upright is stored
    sideways with orientation 6, and the face detector only finds upright faces."""
    if path.startswith(ZIP_SCHEME):
        return image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; it is optional
            with Image.open(path) as im:
                orientation = im.getexif().get(0x0112)
    except (OSError, ValueError, SyntaxError):
        return image
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else np.asarray(Image.fromarray(image).transpose(method))


def iter_frames(source: Source, every: int = 10) -> Iterator[tuple[int | None, np.ndarray]]:
    """(frame index or None for stills, RGB uint8 image); DataError when nothing is readable."""
    if source.kind == "missing":
        raise DataError(source.name, "file or folder not found")
    if source.kind not in ("empty", "array", "image", "video"):
        raise DataError(source.name, f"{source.kind}, not an image, video or folder: not read")
    if source.kind == "empty":
        raise DataError(source.name, "folder holds no image or video files (extensions: "
                                     f"{', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})")
    if source.kind == "array":
        image = _as_rgb(source.array, source.name)
        _check_pixels(image, source.name)
        yield None, image
        return
    if source.kind == "image":
        yield None, upright(read_image(source.name, mode="rgb"), source.name)
        return
    capture = cv2.VideoCapture(source.name)
    if not capture.isOpened():
        capture.release()
        raise DataError(source.name, "cannot open as a video (not a video, or a container/codec "
                                     "this OpenCV build cannot decode)")
    index = decoded = 0
    try:
        while True:
            if index % every:  # grab() skips decoding the frames we do not use
                if not capture.grab():
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                decoded += 1
                _check_pixels(frame, source.name)
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if not decoded:
        raise DataError(source.name, "no video frame could be decoded")


# --------------------------------------------------------------------------- detection

@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    """OpenCV's bundled frontal-face cascade, loaded once (opencv-python<5 wheels ship it)."""
    path = os.path.join(cv2.data.haarcascades, CASCADE_FILE)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ConfigError(f"cannot load the Haar cascade {path}: is opencv-python(-headless)<5 "
                          "installed (OpenCV 5 wheels no longer ship the cascades)?")
    return cascade


@dataclass(frozen=True)
class Detector:
    """Haar-cascade face finder; defaults measured on the demo faces pasted into noisy scenes.

    scale_factor 1.05 finds more faces than OpenCV's usual 1.1 (about 73% vs 55% of rendered
    faces rolled up to 15 degrees) for about twice the time; min_neighbors 5 keeps false
    positives rare. min_face is in pixels of the original image. Images with a side above
    max_side are searched at reduced size (the boxes are scaled back).
    """

    scale_factor: float = 1.05
    min_neighbors: int = 5
    min_face: int = 30
    max_side: int = 1600

    def __post_init__(self) -> None:
        if not (isinstance(self.scale_factor, (int, float)) and self.scale_factor > 1.0):
            raise ConfigError(f"scale_factor must be > 1, got {self.scale_factor!r}")
        for name in ("min_neighbors", "min_face", "max_side"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < (
                    0 if name == "min_neighbors" else 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(n, 4) int boxes x, y, w, h in image pixels, left to right, nested duplicates dropped."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        min_size = max(1, int(round(self.min_face * scale)))
        found = _cascade().detectMultiScale(gray, scaleFactor=float(self.scale_factor),
                                            minNeighbors=int(self.min_neighbors),
                                            minSize=(min_size, min_size))
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


# --------------------------------------------------------------------------- preprocessing

def crop_face(image: np.ndarray, box: Sequence[float],
              margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Square crop around a box, `margin` of its side added on every side; edges replicated
    where the crop leaves the image, so the face keeps its proportions. Returns the crop and
    its region (x0, y0, side, side) in image pixels (x0, y0 may be negative)."""
    x, y, w, h = (float(v) for v in box)
    side = max(1, int(round(max(w, h) * (1.0 + 2.0 * margin))))
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 - side / 2))
    height, width = image.shape[:2]
    ix0, iy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    ix1, iy1 = max(min(x0 + side, width), ix0 + 1), max(min(y0 + side, height), iy0 + 1)
    patch = image[iy0:iy1, ix0:ix1]
    pads = (iy0 - y0, y0 + side - iy1, ix0 - x0, x0 + side - ix1)
    if any(pads):
        patch = cv2.copyMakeBorder(patch, *(max(p, 0) for p in pads), cv2.BORDER_REPLICATE)
    return patch, (x0, y0, side, side)


def to_model_input(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """float32 (size, size, channels) raw 0-255 pixels, converted exactly as in training.

    helpers.pipeline._decode: Pillow's gray conversion ('L'), then helpers.images.fit_square.
    """
    image = _as_rgb(image, "<image>")
    if channels == 1:
        image = np.asarray(Image.fromarray(image).convert("L"))
    image = fit_square(image, size)
    return image.reshape(size, size, channels).astype(np.float32)


def landmarks_to_image(normalised: np.ndarray, region: Sequence[int], size: int) -> np.ndarray:
    """(68, 2) pixels of the original image from the model's x/S, y/S of its input.

    Inverse of training's pixel-centre resize (helpers.pipeline.scale_landmarks), then the
    crop's offset: x = x0 + (x_norm * S + 0.5) * crop_width / S - 0.5.
    """
    x0, y0, rw, rh = region
    pts = np.asarray(normalised, dtype=np.float64).reshape(N_POINTS, 2) * size
    return (pts + 0.5) * np.array([rw, rh]) / size - 0.5 + np.array([x0, y0])


# --------------------------------------------------------------------------- prediction

def _columns(meta: Mapping[str, Any]) -> list[str]:
    """Output columns for this model's heads, fixed so every table has the same layout."""
    heads = meta["heads"]
    cols = ["file", "frame", "face", "status", "error", "box_x", "box_y", "box_w", "box_h"]
    if "expression" in heads:
        cols += ["expression", "confidence"] + [f"p_{name}" for name in meta["labels"]]
    cols += [h for h in ("valence", "arousal") if h in heads]
    return cols + (["landmarks"] if "landmarks" in heads else [])


@dataclass
class _Pending:
    """Faces waiting for a batch: their inputs, the rows to fill and where the crops came from."""

    inputs: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    images: list[tuple[str, int | None, np.ndarray, list[dict[str, Any]]]] = field(
        default_factory=list)


def _fill(rows: list[dict[str, Any]], regions: list, out: Mapping[str, np.ndarray],
          meta: Mapping[str, Any]) -> None:
    """Write one batch of model outputs into its rows (probabilities, V/A, landmarks in pixels)."""
    size, labels = meta["image_size"], meta["labels"]
    for i, row in enumerate(rows):
        if "expression" in out:
            proba = np.asarray(out["expression"][i], dtype=np.float64)
            best = int(np.argmax(proba))
            row["expression"], row["confidence"] = labels[best], float(proba[best])
            row.update({f"p_{name}": float(p) for name, p in zip(labels, proba)})
        for head in ("valence", "arousal"):
            if head in out:
                row[head] = float(np.asarray(out[head][i]).reshape(-1)[0])
        if "landmarks" in out:
            pts = landmarks_to_image(out["landmarks"][i], regions[i], size)
            row["landmarks"] = np.round(pts, 2).tolist()


def _run(model: Backend, pending: _Pending, batch_size: int,
         annotate_dir: Path | None, names: dict[str, int]) -> None:
    """Predict every pending face in batches, then write the finished images' annotations."""
    for start in range(0, len(pending.inputs), batch_size):
        stop = start + batch_size
        out = model(np.stack(pending.inputs[start:stop]))
        _fill(pending.rows[start:stop], pending.regions[start:stop], out, model.metadata)
    if annotate_dir is not None:
        for name, frame, image, rows in pending.images:
            _save_annotated(annotate(image, rows), annotate_dir, name, frame, names)
    pending.inputs.clear(), pending.rows.clear(), pending.regions.clear(), pending.images.clear()


def _faces(image: np.ndarray, detector: Detector | None,
           margin: float) -> list[tuple[np.ndarray, tuple[int, ...], tuple[int, int, int, int]]]:
    """(crop, detected box, crop region) per face; the whole image when detection is off."""
    if detector is None:
        h, w = image.shape[:2]
        return [(image, (0, 0, w, h), (0, 0, w, h))]
    found = []
    for box in detector(image):
        crop, region = crop_face(image, box, margin)
        found.append((crop, tuple(int(v) for v in box), region))
    return found


def _check_args(margin: float, batch_size: int, every: int) -> None:
    """Bad settings fail before the model is loaded or any file is read."""
    if not isinstance(margin, (int, float)) or not 0.0 <= margin <= 2.0:
        raise ConfigError(f"margin must be a number in [0, 2] (share of the face box), "
                          f"got {margin!r}")
    for name, value in (("batch_size", batch_size), ("every", every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def predict_images(model_or_path: Any, inputs: Any, *, detect: bool = True,
                   margin: float = DEFAULT_MARGIN, batch_size: int = 64, every: int = 10,
                   backend: str | None = None, progress: bool = True,
                   detector: Detector | None = None,
                   annotate_dir: str | os.PathLike | None = None,
                   tta: str = "none") -> pd.DataFrame:
    """One row per face in images, folders, videos (every Nth frame) or arrays, batched.

    model_or_path: a Keras model, a .keras / .tflite file, or a TFLiteModel; backend None infers
    it, "tflite" with a Keras model converts it in memory. detect=False treats each image as
    one pre-cropped face. Unreadable inputs and images without a face come back as rows with
    status "error" / "no_face" and the reason in `error`; df.attrs["summary"] counts them.
    tta: "flip" averages each face's outputs with its mirror image's (helpers.tta).
    """
    _check_args(margin, batch_size, every)
    tta = check_tta(tta)
    detector = (detector or Detector()) if detect else None
    model = open_model(model_or_path, backend)
    if tta != "none":
        model = TTAModel(model, tta)
    meta = model.metadata
    size, channels = meta["image_size"], meta["channels"]
    out_dir = None if annotate_dir is None else Path(annotate_dir)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    sources = expand_inputs(inputs)
    rows: list[dict[str, Any]] = []
    pending, names = _Pending(), {}
    for source in tqdm(sources, desc="predicting", unit="file", disable=not progress):
        try:
            for frame, image in iter_frames(source, every):
                faces = _faces(image, detector, margin)
                if not faces:
                    rows.append({"file": source.name, "frame": frame, "status": "no_face",
                                 "error": "no face found"})
                    continue
                face_rows = []
                for k, (crop, box, region) in enumerate(faces):
                    row = {"file": source.name, "frame": frame, "face": k, "status": "ok",
                           "box_x": box[0], "box_y": box[1], "box_w": box[2], "box_h": box[3]}
                    rows.append(row)
                    face_rows.append(row)
                    pending.inputs.append(to_model_input(crop, size, channels))
                    pending.rows.append(row)
                    pending.regions.append(region)
                if out_dir is not None:
                    pending.images.append((source.name, frame, image, face_rows))
                if len(pending.inputs) >= batch_size:
                    _run(model, pending, batch_size, out_dir, names)
        except DataError as error:
            rows.append({"file": source.name, "status": "error", "error": str(error)})
        except OSError as error:  # EIO, permission denied: this file only
            why = error.strerror or type(error).__name__
            rows.append({"file": source.name, "status": "error",
                         "error": str(DataError(source.name, f"cannot be read ({why})"))})
        except cv2.error as error:  # a decoder/codec failure inside OpenCV: this file only
            problem = " ".join(str(error).split())[-200:]
            rows.append({"file": source.name, "status": "error",
                         "error": str(DataError(source.name, f"OpenCV failed: {problem}"))})
    _run(model, pending, batch_size, out_dir, names)
    table = _table(rows, meta)
    table.attrs["summary"] = summarize(table)
    table.attrs["model"] = dict(meta)
    return table


def _table(rows: list[dict[str, Any]], meta: Mapping[str, Any]) -> pd.DataFrame:
    """Rows in a frame with fixed columns and nullable integers (frame is None for stills)."""
    table = pd.DataFrame(rows, columns=_columns(meta))
    for col in ("frame", "face", "box_x", "box_y", "box_w", "box_h"):
        table[col] = pd.array(table[col], dtype="Int64")
    for col in ("file", "status"):
        table[col] = table[col].astype(object)
    if "landmarks" in table:
        table["landmarks"] = pd.Series([v if isinstance(v, list) else None
                                        for v in table["landmarks"]], dtype=object)
    return table


def summarize(table: pd.DataFrame) -> dict[str, int]:
    """Counts per input file (not per frame): read with a face, read without any, unreadable."""
    per_file = table.groupby("file", sort=False)["status"].agg(set)
    return {
        "files": int(len(per_file)),
        "with_faces": int(sum("ok" in s for s in per_file)),
        "without_faces": int(sum(s == {"no_face"} for s in per_file)),
        "errors": int(sum("error" in s for s in per_file)),
        "faces": int((table["status"] == "ok").sum()),
    }


def summary_line(summary: Mapping[str, int]) -> str:
    """One line for the CLI and notebooks."""
    return (f"{summary['files']} input(s): {summary['with_faces']} with faces "
            f"({summary['faces']} face(s)), {summary['without_faces']} without a face, "
            f"{summary['errors']} could not be read")


# --------------------------------------------------------------------------- annotation

def _colour(row: Mapping[str, Any]) -> tuple[int, int, int]:
    """A fixed colour per expression, so the same class looks the same across images."""
    palette = ((200, 200, 200), (255, 200, 0), (60, 120, 255), (255, 120, 255),
               (160, 80, 255), (60, 200, 60), (255, 60, 60), (0, 200, 200))
    name = row.get("expression")
    return palette[EXPRESSIONS.index(name)] if name in EXPRESSIONS else (255, 255, 0)


def annotate(image: np.ndarray, rows: Any) -> np.ndarray:
    """A copy of the RGB image with each face's box, label, confidence and landmarks drawn."""
    canvas = _as_rgb(image, "<image>").copy()
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    scale = max(canvas.shape[:2]) / 640.0
    thick = max(1, int(round(2 * scale)))
    for row in records:
        if row.get("status", "ok") != "ok" or pd.isna(row.get("box_x")):
            continue
        x, y, w, h = (int(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
        colour = _colour(row)
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thick)
        label = row.get("expression")
        if isinstance(label, str):
            text = f"{label} {float(row.get('confidence', math.nan)):.2f}"
            font = 0.5 * max(scale, 0.6)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
            ty = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
            cv2.rectangle(canvas, (x, ty - th - base), (x + tw, ty + base), colour, cv2.FILLED)
            cv2.putText(canvas, text, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick,
                        cv2.LINE_AA)
        points = row.get("landmarks")
        if isinstance(points, (list, np.ndarray)):
            for px, py in np.asarray(points, dtype=np.float64).reshape(-1, 2):
                if np.isfinite(px) and np.isfinite(py):
                    cv2.circle(canvas, (int(round(px)), int(round(py))), thick, colour, cv2.FILLED)
    return canvas


def _save_annotated(image: np.ndarray, out_dir: Path, name: str, frame: int | None,
                    used: dict[str, int]) -> Path:
    """<stem>[_f000123].jpg in out_dir; a repeated name gets -2, -3... (inputs come in order)."""
    stem = Path(name).stem.strip("<>").replace(" ", "_") or "image"
    stem = stem if frame is None else f"{stem}_f{frame:06d}"
    used[stem] = used.get(stem, 0) + 1
    if used[stem] > 1:
        stem = f"{stem}-{used[stem]}"
    path = out_dir / f"{stem}.jpg"
    Image.fromarray(image).save(path, quality=92)
    return path


# --------------------------------------------------------------------------- output files

def _json_value(value: Any) -> Any:
    """NaN/NA -> null and numpy scalars -> Python, so the JSON is standard."""
    if isinstance(value, (list, dict)):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def write_outputs(table: pd.DataFrame, out_dir: str | os.PathLike,
                  formats: Iterable[str] = FORMATS) -> list[Path]:
    """predictions.csv (landmarks as a JSON string) and/or predictions.json (a list of rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "csv" in formats:
        flat = table.copy()
        if "landmarks" in flat:
            flat["landmarks"] = [json.dumps(v) if isinstance(v, list) else None
                                 for v in flat["landmarks"]]
        flat.to_csv(out / "predictions.csv", index=False)
        written.append(out / "predictions.csv")
    if "json" in formats:
        records = [{k: _json_value(v) for k, v in row.items()}
                   for row in table.to_dict("records")]
        (out / "predictions.json").write_text(json.dumps(records, indent=1) + "\n")
        written.append(out / "predictions.json")
    return written


def check_out_dir(out_dir: str | os.PathLike, formats: Iterable[str] = FORMATS,
                  overwrite: bool = False) -> Path:
    """The output folder, usable before any prediction is made: an existing file, or a path
    under one, is a ConfigError now rather than a traceback after all the work; so is a folder
    already holding predictions, unless overwrite."""
    out = Path(out_dir)
    for part in (out, *out.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"--out {out}: {part} is a file, not a folder")
            break
    taken = [f"predictions.{f}" for f in formats if (out / f"predictions.{f}").exists()]
    if taken and not overwrite:
        raise ConfigError(f"--out {out} already holds {', '.join(taken)}; pass --overwrite to "
                          "replace it, or choose another folder")
    return out


# --------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    """Options of `python -m helpers.predict`."""
    p = argparse.ArgumentParser(
        prog="python -m helpers.predict",
        description="Expression, valence/arousal and landmarks for every face in images, "
                    "folders (recursive) and videos.")
    p.add_argument("--model", required=True, help="trained .keras file, or an exported .tflite")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder or video files")
    p.add_argument("--out", help="folder for predictions.csv/.json (and annotated/); "
                                 "without it a short table is printed")
    p.add_argument("--format", default="csv,json", help="csv, json or csv,json (default)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace predictions already in OUT (refused without it)")
    p.add_argument("--annotate", action="store_true",
                   help="also write annotated images to OUT/annotated/")
    p.add_argument("--every", type=int, default=10, help="video: every Nth frame (default 10)")
    p.add_argument("--no-detect", dest="detect", action="store_false",
                   help="each image is one pre-cropped face (FER-2013 style)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="crop margin per side, as a share of the face box (default 0.2)")
    d = Detector()
    p.add_argument("--min-face", type=int, default=d.min_face, help="smallest face side, px")
    p.add_argument("--scale-factor", type=float, default=d.scale_factor,
                   help="Haar pyramid step (smaller: more faces found, slower)")
    p.add_argument("--min-neighbors", type=int, default=d.min_neighbors,
                   help="Haar votes a face needs (larger: fewer false faces)")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: flip averages each face with its mirror image")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--backend", choices=BACKENDS, help="default: from the model file's suffix")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _print_table(table: pd.DataFrame) -> None:
    """The few columns a person reads, when no --out folder is given."""
    shown = [c for c in ("file", "frame", "face", "status", "expression", "confidence",
                         "valence", "arousal", "box_x", "box_y", "box_w", "box_h")
             if c in table]
    ok = table[table["status"] == "ok"]
    if len(ok):
        print(ok[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when at least one input was read, 1 when none was, 2 for bad options or model."""
    args = _parser().parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    try:
        if not formats or set(formats) - set(FORMATS):
            raise ConfigError(f"--format must be csv, json or csv,json, got {args.format!r}")
        detector = Detector(scale_factor=args.scale_factor, min_neighbors=args.min_neighbors,
                            min_face=args.min_face)
        _check_args(args.margin, args.batch_size, args.every)
        if args.out:
            check_out_dir(args.out, formats, args.overwrite)
        model = open_model(args.model, args.backend)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    table = predict_images(model, args.inputs, detect=args.detect, margin=args.margin,
                           batch_size=args.batch_size, every=args.every, progress=not args.quiet,
                           detector=detector, tta=args.tta,
                           annotate_dir=(out / "annotated") if out and args.annotate else None)
    for row in table[table["status"] == "error"].itertuples():
        print(f"skipped: {row.error}", file=sys.stderr)
    for name in table.loc[table["status"] == "no_face", "file"].unique():
        if not (table.loc[table["file"] == name, "status"] == "ok").any():
            print(f"no face found: {name}", file=sys.stderr)
    summary = table.attrs["summary"]
    if out is not None:
        written = write_outputs(table, out, formats)
        print("wrote " + ", ".join(str(p) for p in written)
              + (f", {out / 'annotated'}/" if args.annotate else ""))
    else:
        _print_table(table)
    print(summary_line(summary))
    return 0 if summary["with_faces"] + summary["without_faces"] else 1


if __name__ == "__main__":
    sys.exit(main())
