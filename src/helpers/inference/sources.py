"""The predictor's inputs: image files, folders, videos, zip references and arrays, each read
upright and checked, one verdict per input."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from helpers.core.errors import DataError
from helpers.core.images import MAX_PIXELS, ZIP_SCHEME, read_image
from helpers.core.preprocess import as_rgb

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
)


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
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
            )
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
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def check_pixels(image: np.ndarray, where: str) -> None:
    """The decompression-bomb limit of helpers.core.images, applied to arrays and video frames
    too."""
    h, w = image.shape[:2]
    if h * w > MAX_PIXELS:
        raise DataError(
            where, f"frame is {w}x{h} = {w * h:,} pixels, over the limit of {MAX_PIXELS:,}"
        )


# EXIF orientation -> the PIL transpose that shows the photo upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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
        raise DataError(
            source.name,
            "folder holds no image or video files (extensions: "
            f"{', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})",
        )
    if source.array is not None:  # kind "array"
        image = as_rgb(source.array, source.name)
        check_pixels(image, source.name)
        yield None, image
        return
    if source.kind == "image":
        yield None, upright(read_image(source.name, mode="rgb"), source.name)
        return
    capture = cv2.VideoCapture(source.name)
    if not capture.isOpened():
        capture.release()
        raise DataError(
            source.name,
            "cannot open as a video (not a video, or a container/codec "
            "this OpenCV build cannot decode)",
        )
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
                check_pixels(frame, source.name)
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if not decoded:
        raise DataError(source.name, "no video frame could be decoded")
