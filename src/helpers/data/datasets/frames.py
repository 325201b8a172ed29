"""Datasets of whole frames (JAFFE, CK+): each frame's face found by the Haar cascade and cropped
once into the cache, so the records hold faces framed like the training data's.

A model trained on FER-2013 or AffectNet sees a face filling the image; a JAFFE or CK+ frame
resized whole gives it a small face with hair, shoulders and background, and scores it on
something it never saw. The crop is the predictor's (helpers.core.faces: the largest face, a
`margin` of its side added on every side, by default a fifth; notebook 05 passes the model's
training framing), kept inside the frame. A frame without a detected face keeps its centre
square and is counted as repaired, by name, so a test set never loses images silently. Crops
are cached under `data/cache/<reader>-<fingerprint>/` (or `cache_dir`), keyed by the source's
files, sizes and times and by the crop settings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.errors import DataError
from helpers.core.faces import (DEFAULT_MARGIN, MARGIN_RANGE, Detector, centre_square,
                                 face_square)
from helpers.core.images import read_image
from helpers.core.progress import bar as progress_bar
from helpers.core.records import make_records
from helpers.data.datasets import (
    ReadResult,
    Tally,
    check_number,
    check_workers,
)
from helpers.data.datasets.csv_boxes import cache_folder, no_records, safe_name, save_png
from helpers.data.datasets.folders import is_zip

NO_FACE = "no face found: the centre square of the frame kept"
_FACE, _CENTRE = "face", "centre"  # the cached crop's suffix says which it was


@dataclass(frozen=True)
class Frame:
    """One labelled frame: its record id, image reference (path or zip URI), expression and the
    member name shown when it is dropped or repaired."""

    id: str
    image: str
    expression: int
    where: str
    subject: str | None = None  # the person: splits keep one person's faces together


def frames_source(path: str | os.PathLike, what: str) -> Path:
    """The source as a Path: a folder or a zip, else a DataError saying what was expected."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "not found")
    if not (path.is_dir() or is_zip(path)):
        raise DataError(path, f"expected a folder or a .zip {what}")
    return path


def check_crop(margin: object, workers: object, reader: str) -> float:
    """The crop margin as a float after checking it and workers: bad settings fail before any
    frame is read, not as a 1-pixel crop or an error inside a worker thread."""
    check_workers(workers, reader)
    return check_number("margin", margin, reader, *MARGIN_RANGE)


def fingerprint(path: Path, members: Sequence[str], margin: float = DEFAULT_MARGIN) -> str:
    """A cache key from the source's files (a zip's size and time, a folder's files' names,
    sizes and times) and the crop settings: an edited source or setting never reuses a crop."""
    digest = hashlib.sha256(f"{path.resolve()}\n{margin}\n{Detector()}\n".encode())
    if path.is_dir():
        for member in sorted(members):
            info = (path / member).stat()
            digest.update(f"{member}\t{info.st_size}\t{info.st_mtime_ns}\n".encode())
    else:
        info = path.stat()
        digest.update(f"{info.st_size}\t{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cached(cache: Path, ident: str) -> tuple[Path, bool] | None:
    """The crop already in the cache and whether it is a detected face."""
    for kind in (_FACE, _CENTRE):
        target = cache / f"{safe_name(ident)}.{kind}.png"
        if target.is_file():
            return target, kind == _FACE
    return None


def _crop(frame: Frame, cache: Path, margin: float) -> tuple[str | None, bool, str | None]:
    """(cached crop, face found, why dropped) for one frame."""
    if found := _cached(cache, frame.id):
        return str(found[0]), found[1], None
    try:
        pixels = read_image(frame.image)
    except DataError:
        return None, False, "unreadable image"
    box = face_square(pixels, margin=margin)
    left, top, right, bottom = box or centre_square(pixels.shape[1], pixels.shape[0])
    target = cache / f"{safe_name(frame.id)}.{_FACE if box else _CENTRE}.png"
    save_png(np.ascontiguousarray(pixels[top:bottom, left:right]), target)
    return str(target), box is not None, None


def crop_frames(
    frames: Sequence[Frame],
    *,
    reader: str,
    key: str,
    tally: Tally,
    cache_dir: str | os.PathLike | None = None,
    margin: float = DEFAULT_MARGIN,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "Finding faces",
) -> list[dict]:
    """Record rows for the frames, each pointing at its face crop; unreadable frames dropped
    and frames without a face repaired (centre square), both counted in tally. Frames are
    decoded in worker threads (OpenCV releases the GIL); the result does not depend on them."""
    margin = check_crop(margin, workers, reader)
    cache = cache_folder(reader, key, cache_dir)
    workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(
            progress_bar(
                pool.map(lambda frame: _crop(frame, cache, margin), frames),
                total=len(frames),
                desc=desc,
                unit=" frames",
                disable=not progress,
                mininterval=0.5,
            )
        )
    rows = []
    for frame, (image, face, problem) in zip(frames, outcomes, strict=True):
        if problem is not None:
            tally.drop(problem, frame.where)
            continue
        if not face:
            tally.repair(NO_FACE, frame.where)
        rows.append(
            {
                "id": frame.id,
                "image": image,
                "source": reader,
                "expression": frame.expression,
                "subject": frame.subject,
            }
        )
    return rows


def frames_result(
    path: Path,
    frames: Sequence[Frame],
    *,
    reader: str,
    key: str,
    tally: Tally,
    what: str,
    **crop: Any,
) -> ReadResult:
    """A frame reader's result: the frames cropped (crop_frames' options), a DataError naming
    what was dropped when none is left."""
    rows = crop_frames(
        frames, reader=reader, key=key, tally=tally, desc=f"Finding faces in {path.name}", **crop
    )
    if not rows:
        raise no_records(path, tally, what)
    return tally.result(make_records(rows, where=str(path)), reader, path)
