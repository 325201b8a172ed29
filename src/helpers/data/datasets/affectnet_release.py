"""Reader for AffectNet as its authors release it (the manually annotated part): the file lists
`Manually_Annotated_file_lists/training.csv` and `validation.csv` and the photos
`Manually_Annotated_Images/<folder>/<file>.jpg`, the release's archives extracted into one folder
(the photos may sit one folder down, e.g. `Manually_Annotated/Manually_Annotated_Images/`).

Each CSV row: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks
(68 points as 136 numbers joined by `;`, in the photo's pixels), expression, valence, arousal.
Expression codes 0-7 are the shared eight classes in the same order (neutral ... contempt); 8
(none), 9 (uncertain) and 10 (no face) are left out and counted. Valence and arousal are in
[-1, 1]; -2 marks none, and is read as missing. The photos are whole scenes: each face is cropped
once by its box (plus `margin` of it on every side) into the cache, a box reaching past the photo
cut to it, and the landmarks move with the crop, as the ExpW reader does. training.csv is the
train split (notebook 03 carves validation from it), validation.csv the test split: the release's
test set is not public, so papers report on its validation set; a photo listed in both is kept
in test alone. The header line (`subDirectory_filePath,...`, `#subDirectory_filePath,...` in some
copies, none in others' validation.csv) is optional. The automatically annotated part is not read.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from helpers.core.errors import DataError, os_reason
from helpers.core.faces import MARGIN_RANGE
from helpers.core.labels import N_EXPRESSIONS, affect_value
from helpers.core.landmarks import N_POINTS
from helpers.core.records import make_records
from helpers.data.datasets import ReadResult, Tally, check_number, check_workers
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
MALFORMED = "malformed line (not the release's nine columns)"


def _children(folder: Path) -> list[Path]:
    """The folders directly in `folder` (files are not listed: detection stays cheap)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(
                Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")
            )
    except OSError:
        return []


def _near(root: Path) -> list[Path]:
    """root, its folders and theirs: where the release's folders sit once extracted."""
    first = _children(root)
    return [root, *first, *(grand for child in first for grand in _children(child))]


def _find_folder(near: list[Path], name: str) -> Path | None:
    """The folder called `name` (any case) among `near` (root's _near, root itself excluded)."""
    return next((p for p in near[1:] if p.name.lower() == name.lower()), None)


def _file_lists(near: list[Path]) -> list[Path]:
    """training.csv and validation.csv: in the file-list folder, else where they sit near root."""
    folders = [f for f in (_find_folder(near, LISTS),) if f] + near
    for folder in folders:
        found = [folder / name for name in SPLITS if (folder / name).is_file()]
        if found:
            return found
    return []


def _is_header(fields: list[str]) -> bool:
    """The file list's header line, with or without the `#` some copies start it with."""
    return bool(fields) and fields[0].strip().lstrip("#").strip().lower() == COLUMNS[0].lower()


def looks_like_affectnet_release(path: str | os.PathLike) -> bool:
    """A folder whose training.csv or validation.csv starts like the release's file lists."""
    path = Path(path)
    if not path.is_dir():
        return False
    for csv_path in _file_lists(_near(path)):
        try:
            with open(csv_path, encoding="utf-8-sig", errors="replace", newline="") as handle:
                first = next(csv.reader(handle), [])
        except (OSError, csv.Error):
            continue
        if _is_header(first) or (len(first) == len(COLUMNS) and ";" in first[5]):
            return True
    return False


def _rows(csv_path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a file list, streamed, its header line skipped; an unreadable
    file or line is a DataError naming the file and line."""
    number = 0
    try:
        with open(csv_path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.reader(handle)
            for fields in reader:
                number = reader.line_num
                if number == 1 and _is_header(fields):
                    continue
                yield number, fields
    except OSError as exc:
        raise DataError(csv_path, f"cannot read ({os_reason(exc)})") from exc
    except csv.Error as exc:
        raise DataError(csv_path, f"line {number + 1}: not CSV ({exc})") from None


def _whole(text: str) -> int:
    """A box coordinate: a whole number (`12` or `12.0`); ValueError otherwise."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _rating(text: str, what: str, where: str, tally: Tally) -> float:
    """A valence or arousal value; NaN (counted) for the release's -2 or one outside [-1, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    value, problem = affect_value(value)  # a hair past an edge is clipped onto it
    if problem == "-2 (no rating)":
        tally.null(f"{what} -2 (no rating)", where)
    elif problem is not None:
        tally.null(f"{what} not a number in [-1, 1]", where)
    return value


def _landmarks(text: str, where: str, tally: Tally) -> np.ndarray | None:
    """68 points in the photo's pixels, or None (counted) when they are not 136 numbers."""
    try:
        values = np.array(text.split(";"), dtype=np.float64)
    except ValueError:
        values = np.array([])
    if values.size != 2 * N_POINTS or not np.isfinite(values).all():
        tally.null("landmarks not 136 numbers", where)
        return None
    return values.reshape(N_POINTS, 2).astype(np.float32)  # half the memory of 290,000 rows


@dataclass
class _Row:
    """One usable file-list row, before its face is cropped."""

    name: str
    box: tuple[int, int, int, int]  # x, y, width, height as listed
    expression: int
    valence: float
    arousal: float
    landmarks: np.ndarray | None
    where: str


def _photo_name(text: str) -> str | None:
    """The photo's path inside the images folder ('\\' read as '/'); None for one that would
    leave it (absolute, or through '..')."""
    name = PurePosixPath(text.strip().replace("\\", "/"))
    return None if name.is_absolute() or ".." in name.parts or not name.parts else str(name)


def _parse_row(number: int, fields: list[str], csv_name: str, tally: Tally) -> _Row | None:
    """A row's face, or None with the reason counted."""
    where = f"{csv_name}:{number}"
    if len(fields) != len(COLUMNS):
        tally.drop(MALFORMED, where)
        return None
    try:
        x, y, w, h = (_whole(v) for v in fields[1:5])
        expression = _whole(fields[6])
    except (ValueError, OverflowError):
        tally.drop("box or expression not a whole number", where)
        return None
    if expression in LEFT_OUT:
        tally.drop(LEFT_OUT[expression], where)
        return None
    if not 0 <= expression < N_EXPRESSIONS:
        tally.drop("expression code not 0-10", where)
        return None
    name = _photo_name(fields[0])
    if name is None:
        tally.drop("photo path outside the images folder", where)
        return None
    valence = _rating(fields[7], "valence", where, tally)
    arousal = _rating(fields[8], "arousal", where, tally)
    points = _landmarks(fields[5], where, tally)
    return _Row(name, (x, y, w, h), expression, valence, arousal, points, where)


def _faces(
    rows: dict[str, list[_Row]], images: Path, margin: float, tally: Tally
) -> tuple[list[Face], dict[str, _Row]]:
    """Faces to crop (the box grown by `margin` a side) and the row of each face's id; a photo
    in both lists stays in test, a photo listed twice in one keeps its first face of that box."""
    in_test = {row.name for row in rows.get("test", [])}
    faces: list[Face] = []
    by_id: dict[str, _Row] = {}
    for split, listed in rows.items():
        boxes: dict[str, set[tuple[int, ...]]] = {}
        for row in listed:
            if split == "train" and row.name in in_test:
                tally.drop("photo also in validation.csv (kept in test)", row.where)
                continue
            seen = boxes.setdefault(row.name, set())
            if row.box in seen:
                tally.drop("face listed twice", row.where)
                continue
            seen.add(row.box)
            ident = f"{split}/{row.name}" + (f"#{len(seen)}" if len(seen) > 1 else "")
            x, y, w, h = row.box
            grow_x, grow_y = round(margin * w), round(margin * h)
            box = (x - grow_x, y - grow_y, x + w + grow_x, y + h + grow_y)
            faces.append(Face(ident, images / row.name, box, row.expression, row.where, split))
            by_id[ident] = row
    return faces, by_id


def read_affectnet_release(
    path: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    margin: float = 0.0,
    workers: int | None = None,
    progress: bool = True,
) -> ReadResult:
    """Records (one per face, cropped by its box into the cache, with its valence, arousal and
    landmarks) from the release's file lists and photos. margin: of the box, added on every
    side (0: the box as annotated; as --test-data, the model's training framing)."""
    check_workers(workers, READER)
    margin = check_number("margin", margin, READER, *MARGIN_RANGE)
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, f"expected the folder holding {LISTS}/ and {IMAGES}/ (extracted)")
    near = _near(path)  # one listing of the folders for every lookup below
    lists = _file_lists(near)
    if not lists:
        raise DataError(path, f"no training.csv or validation.csv (looked in {LISTS}/)")
    images = Path(images_dir) if images_dir is not None else _find_folder(near, IMAGES)
    if images is None or not images.is_dir():
        raise DataError(path, f"no {IMAGES}/ folder found below it; pass images_dir=")
    tally = Tally()
    rows: dict[str, list[_Row]] = {}
    for csv_path in lists:
        parsed = (_parse_row(n, fields, csv_path.name, tally) for n, fields in _rows(csv_path))
        rows[SPLITS[csv_path.name]] = [row for row in parsed if row is not None]
    faces, by_id = _faces(rows, images, margin, tally)
    hashes = "\n".join([*(file_sha256(p) for p in lists), str(images.resolve()), f"{margin:g}"])
    cache = cache_folder(READER, hashlib.sha256(hashes.encode()).hexdigest(), cache_dir)
    kept = crop_faces(faces, cache, tally, READER, workers, progress, f"Cropping {path.name}", True)
    if not kept:
        raise no_records(path, tally, "faces")
    for record in kept:
        row, (left, top, _, _) = by_id[record["id"]], record.pop("box")
        points = row.landmarks
        record.update(
            valence=row.valence,
            arousal=row.arousal,
            landmarks=None if points is None else points - np.float32([left, top]),
        )
    automatic = [p for p in near if p.name.lower().startswith("automatic")]
    if automatic:
        tally.note(f"the automatically annotated part ({automatic[0].name}/) is not read")
    return tally.result(make_records(kept, where=str(path)), READER, path)
