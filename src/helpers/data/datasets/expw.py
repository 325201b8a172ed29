"""Reader for ExpW (Expression in-the-Wild): an image folder plus `label.lst`, one face per line.

label.lst lines: `image_name face_id top left right bottom confidence label`, label in the
FER order (0 Angry ... 6 Neutral), mapped into the shared order. The release unpacks to
`data/image/origin/*.jpg` beside `data/label/label.lst`; `image/`, `images/` or `origin/` next
to label.lst work too. Faces below `min_confidence` (default 30, the coursework's threshold;
kept when confidence >= threshold) are dropped and counted, and each kept face box is cropped
once into the cache (see helpers.data.datasets.csv_boxes), so records point at plain PNG files.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from helpers.data.datasets import ReadResult, Tally, check_number, check_workers
from helpers.data.datasets.csv_boxes import (Face, cache_folder, crop_faces, file_sha256,
                                        no_records)
from helpers.core.errors import DataError
from helpers.core.labels import FER_TO_AFFECTNET
from helpers.core.records import make_records

READER = "expw"
LABEL_FILE = "label.lst"
DEFAULT_MIN_CONFIDENCE = 30.0
# Where label.lst may sit below the source folder, and where images may sit beside it.
_LABEL_PLACES = (LABEL_FILE, f"label/{LABEL_FILE}", f"data/label/{LABEL_FILE}")
_IMAGE_PLACES = ("image/origin", "origin", "image", "images")
_FIELDS = 8


def find_label_file(path: str | os.PathLike) -> Path | None:
    """label.lst itself, or the first of the usual places below a folder."""
    path = Path(path)
    if path.is_file():
        return path if path.name.lower() == LABEL_FILE else None
    return next((path / p for p in _LABEL_PLACES if (path / p).is_file()), None)


def find_images_dir(label_file: Path) -> Path | None:
    """The image folder beside label.lst, or beside its label/ folder (the release layout)."""
    roots = [label_file.parent]
    if label_file.parent.name.lower() == "label":
        roots.append(label_file.parent.parent)
    return next((r / p for r in roots for p in _IMAGE_PLACES if (r / p).is_dir()), None)


def looks_like_expw(path: str | os.PathLike) -> bool:
    """A label.lst file, or a folder with one in the usual places."""
    return find_label_file(path) is not None


def _parse_line(line: str) -> tuple[str, int, tuple[int, int, int, int], float, int]:
    """(image, face id, box as left/top/right/bottom, confidence, FER label); ValueError."""
    parts = line.split()
    if len(parts) != _FIELDS:
        raise ValueError(line)
    name, face, top, left, right, bottom, confidence, label = parts
    return (name, int(face), (int(left), int(top), int(right), int(bottom)),
            float(confidence), int(label))


def _faces(lines: list[str], images: Path, min_confidence: float, tally: Tally) -> list[Face]:
    """Faces worth cropping, the other lines counted by reason."""
    faces: list[Face] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{LABEL_FILE}:{number}"
        try:
            name, face, box, confidence, label = _parse_line(line)
        except ValueError:
            tally.drop("malformed line", where)
            continue
        if label not in FER_TO_AFFECTNET:
            tally.drop("unknown label", f"{where} (label {label})")
            continue
        if not confidence >= min_confidence:  # NaN confidence fails too
            tally.drop(f"confidence below {min_confidence:g}", where)
            continue
        ident = f"{Path(name).stem}_{face}"
        if ident in seen:
            tally.drop("duplicate face", where)
            continue
        seen.add(ident)
        faces.append(Face(ident, images / name, box, FER_TO_AFFECTNET[label],
                          f"{where} {name}"))
    return faces


def read_expw(path: str | os.PathLike, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
              images_dir: str | os.PathLike | None = None,
              cache_dir: str | os.PathLike | None = None, workers: int | None = None,
              progress: bool = True) -> ReadResult:
    """Records (one per face, cropped into the cache) from an ExpW folder or its label.lst."""
    min_confidence = check_number("min_confidence", min_confidence, READER)
    check_workers(workers, READER)
    path = Path(path)
    label_file = find_label_file(path)
    if label_file is None:
        raise DataError(path, f"no {LABEL_FILE} found (looked for {', '.join(_LABEL_PLACES)})")
    images = Path(images_dir) if images_dir is not None else find_images_dir(label_file)
    if images is None or not images.is_dir():
        raise DataError(label_file, "no image folder found beside it (looked for "
                                    f"{', '.join(_IMAGE_PLACES)}); pass images_dir=")
    try:
        # utf-8-sig: a byte-order mark (Windows editors) must not cost the first line
        lines = label_file.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(label_file, f"cannot read ({exc.strerror or exc})") from exc
    tally = Tally()
    faces = _faces(lines, images, min_confidence, tally)
    fingerprint = hashlib.sha256(
        f"{file_sha256(label_file)}\n{images.resolve()}".encode()).hexdigest()
    cache = cache_folder(READER, fingerprint, cache_dir)
    rows = crop_faces(faces, cache, tally, READER, workers, progress, f"Cropping {path.name}")
    if not rows:
        raise no_records(label_file, tally, "faces")
    return tally.result(make_records(rows, where=str(label_file)), READER, path)
