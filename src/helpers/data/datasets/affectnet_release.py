"""Reader for AffectNet as its authors release it (the manually annotated part): the file lists
`Manually_Annotated_file_lists/training.csv` and `validation.csv` beside the images
`Manually_Annotated_Images/<folder>/<file>.jpg`, the release's archives extracted into one folder.

Each CSV row: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks
(68 points as 136 numbers joined by `;`, in the photo's pixels), expression, valence, arousal.
Expression codes 0-7 are the shared eight classes in the same order (neutral ... contempt); 8
(none), 9 (uncertain) and 10 (no face) are left out and counted. Valence and arousal are in
[-1, 1]; -2 marks none, and is read as missing. The photos are whole scenes: each face is cropped
once by its box into the cache (the landmarks moved with it), as the ExpW reader does. training.csv
is the train split (notebook 03 carves validation from it), validation.csv the test split: the
release's test set is not public, so papers report on its validation set. The release's
validation.csv has no header line; either file is read with or without one. The automatically
annotated part is not read.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from pathlib import Path

import numpy as np

from helpers.core.errors import DataError
from helpers.core.labels import N_EXPRESSIONS
from helpers.core.landmarks import N_POINTS
from helpers.core.records import make_records
from helpers.data.datasets import ReadResult, Tally, check_workers
from helpers.data.datasets.csv_boxes import (
    Face,
    cache_folder,
    crop_faces,
    file_sha256,
    no_records,
)

READER = "affectnet_release"
LISTS = "Manually_Annotated_file_lists"
IMAGES = "Manually_Annotated_Images"
SPLITS = {"training.csv": "train", "validation.csv": "test"}
COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
LEFT_OUT = {8: "expression 8 (none)", 9: "expression 9 (uncertain)", 10: "expression 10 (no face)"}
NO_RATING = -2.0  # valence or arousal of a face the annotators gave none
_SEARCH_DEPTH = 3  # folders below the source where the file lists and images may sit


def _find(root: Path, name: str, want_dir: bool) -> Path | None:
    """The first folder or file called `name` at most _SEARCH_DEPTH levels below root."""
    for depth in range(_SEARCH_DEPTH + 1):
        for candidate in sorted(root.glob("/".join(["*"] * depth + [name]))):
            if candidate.is_dir() == want_dir:
                return candidate
    return None


def _file_lists(root: Path) -> list[Path]:
    """training.csv and validation.csv, in the file-list folder or wherever they sit."""
    lists = _find(root, LISTS, want_dir=True) if root.is_dir() else None
    folder = lists or root
    return [folder / name for name in SPLITS if (folder / name).is_file()]


def looks_like_affectnet_release(path: str | os.PathLike) -> bool:
    """A folder whose training.csv or validation.csv starts like the release's file lists."""
    path = Path(path)
    if not path.is_dir():
        return False
    for csv_path in _file_lists(path):
        try:
            with open(csv_path, encoding="utf-8-sig", errors="replace") as handle:
                first = next(csv.reader(handle), [])
        except OSError:
            continue
        if first[:1] == [COLUMNS[0]] or (len(first) == len(COLUMNS) and ";" in first[5]):
            return True
    return False


def _rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a file list, its header line skipped where it has one."""
    try:
        with open(csv_path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            lines = list(enumerate(csv.reader(handle), start=1))
    except OSError as exc:
        raise DataError(csv_path, f"cannot read ({exc.strerror or exc})") from exc
    if lines and lines[0][1][:1] == [COLUMNS[0]]:
        lines = lines[1:]
    return lines


def _rating(text: str, what: str, where: str, tally: Tally) -> float:
    """A valence or arousal value; NaN (counted) for the release's -2 or one outside [-1, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value == NO_RATING:
        tally.null(f"{what} -2 (no rating)", where)
        return math.nan
    if not -1.0 <= value <= 1.0:  # NaN fails too
        tally.null(f"{what} not a number in [-1, 1]", where)
        return math.nan
    return value


def _landmarks(text: str, box: tuple[int, int, int, int], where: str, tally: Tally) -> object:
    """68 points moved into the crop's pixels, or None (counted) when they are not 136 numbers."""
    try:
        values = np.array([float(v) for v in text.split(";") if v.strip()], dtype=np.float64)
    except ValueError:
        values = np.array([])
    if values.size != 2 * N_POINTS or not np.isfinite(values).all():
        tally.null("landmarks not 136 numbers", where)
        return None
    return (values.reshape(N_POINTS, 2) - np.array(box[:2], dtype=np.float64)).astype(np.float32)


def _parse(
    lines: list[tuple[int, list[str]]], csv_path: Path, images: Path, split: str, tally: Tally
) -> tuple[list[Face], dict[str, dict[str, object]]]:
    """Faces to crop and each one's valence, arousal and landmarks; other rows counted."""
    faces: list[Face] = []
    extra: dict[str, dict[str, object]] = {}
    for number, fields in lines:
        where = f"{csv_path.name}:{number}"
        if not "".join(fields).strip():
            continue
        try:
            if len(fields) != len(COLUMNS):
                raise ValueError(where)
            x, y, w, h = (int(float(v)) for v in fields[1:5])
            expression = int(float(fields[6]))
        except (ValueError, OverflowError):
            tally.drop("malformed line (not the release's nine columns)", where)
            continue
        name, lnd = fields[0], fields[5]
        if expression in LEFT_OUT:
            tally.drop(LEFT_OUT[expression], where)
            continue
        if not 0 <= expression < N_EXPRESSIONS:
            tally.drop("expression code not 0-10", where)
            continue
        ident = f"{split}/{Path(name).with_suffix('').as_posix()}"
        if ident in extra:
            tally.drop("face listed twice", where)
            continue
        box = (x, y, x + w, y + h)
        faces.append(Face(ident, images / name, box, expression, f"{where} {name}", split))
        extra[ident] = {
            "valence": _rating(fields[7], "valence", where, tally),
            "arousal": _rating(fields[8], "arousal", where, tally),
            "landmarks": _landmarks(lnd, box, where, tally),
        }
    return faces, extra


def read_affectnet_release(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ReadResult:
    """Records (one per face, cropped by its box into the cache, with its valence, arousal and
    landmarks) from the release's file lists and images."""
    check_workers(workers, READER)
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, f"expected the folder holding {LISTS}/ and {IMAGES}/ (extracted)")
    lists = _file_lists(path)
    if not lists:
        raise DataError(path, f"no training.csv or validation.csv (looked in {LISTS}/)")
    images = Path(images_dir) if images_dir is not None else _find(path, IMAGES, want_dir=True)
    if images is None or not images.is_dir():
        raise DataError(path, f"no {IMAGES}/ folder found below it; pass images_dir=")
    tally = Tally()
    faces: list[Face] = []
    extra: dict[str, dict[str, object]] = {}
    for csv_path in lists:
        more, values = _parse(_rows(csv_path), csv_path, images, SPLITS[csv_path.name], tally)
        faces += more
        extra.update(values)
    hashes = "\n".join([*(file_sha256(p) for p in lists), str(images.resolve())])
    cache = cache_folder(READER, hashlib.sha256(hashes.encode()).hexdigest(), cache_dir)
    rows = crop_faces(faces, cache, tally, READER, workers, progress, f"Cropping {path.name}")
    if not rows:
        raise no_records(path, tally, "faces")
    for row in rows:
        row.update(extra[row["id"]])
    if _find(path, "Automatically_Annotated_file_lists", want_dir=True):
        tally.note("the automatically annotated part is not read")
    return tally.result(make_records(rows, where=str(path)), READER, path)
