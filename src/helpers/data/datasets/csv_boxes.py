"""Reader for CSVs of image names, face boxes, optional confidence and label names; and the
face-cropping cache it shares with the ExpW reader (and the FER-2013 CSV reader's PNG cache).

A face box is cropped once, when the source is read, and written as PNG to a cache folder, so
the records' image column stays a plain file path every later stage can open. The cache lives
under `data/cache/<reader>-<fingerprint>/` (or a `cache_dir` you pass): never inside the
source's folder, which may be read-only. A crop's name carries its source photo's exact size and
time, so a replaced photo is cropped again, and the crop of the photo it replaced is removed. The
cache can always be deleted: the next read crops again. Boxes are on the photo as viewers show
it: a photo with an EXIF orientation is turned upright before it is cropped.

CSV columns (matched case-insensitively; map your own names with `columns=`):
  image        file name, relative to `images_dir` (default: the CSV's folder, or an
               images/ or image/ folder beside the CSV when the names are found there);
               Windows separators (images\\a.jpg) read as folders
  label        expression name: neutral, happy/happiness, sad, surprise, fear, disgust,
               angry/anger, contempt (helpers.core.labels.SYNONYMS)
  x, y, w, h   the face box in pixels (or left, top, right, bottom; or xmin, ymin, xmax,
               ymax; or x1, y1, x2, y2); no box columns at all means whole images, not
               cropped (box-like columns left unused are noted in the result)
  confidence   optional; used with `min_confidence`
  split        optional: train/val/test (training, validation, testing accepted)

The separator (comma, semicolon, tab or bar) is the one that splits the header into the most
columns. Rows are read as text: a row with fewer fields than the header has the rest blank, one with
more is dropped as a malformed line (a trailing comma on every row is fine). The source must be
a .csv file (or a folder holding one): a zip is validated and refused, since the crops need its
images as files.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from helpers.core.progress import bar as progress_bar

from helpers.core import paths
from helpers.core.archive import open_zip
from helpers.data.datasets import ReadResult, Tally, check_number, check_workers, dropped_text
from helpers.data.datasets.folders import split_of
from helpers.core.errors import ConfigError, DataError
from helpers.core.images import exif_orientation, read_image, turn_upright, upright_size
from helpers.core.labels import accepted_names, expression_index
from helpers.core.records import make_records
from helpers.core.words import counted

READER = "csv_boxes"
DEFAULT_COLUMNS: dict[str, str] = {
    "image": "image", "label": "label", "confidence": "confidence", "split": "split",
    "x": "x", "y": "y", "w": "w", "h": "h",
    "left": "left", "top": "top", "right": "right", "bottom": "bottom",
}
BOX_FORMATS: dict[str, tuple[str, ...]] = {"xywh": ("x", "y", "w", "h"),
                                           "ltrb": ("left", "top", "right", "bottom")}
# Other common spellings of a left/top/right/bottom box, tried when no box column is found.
BOX_ALIASES: tuple[dict[str, str], ...] = (
    {"left": "xmin", "top": "ymin", "right": "xmax", "bottom": "ymax"},
    {"left": "x1", "top": "y1", "right": "x2", "bottom": "y2"},
)
# Column names that look like a face box; noted when a CSV has them but no usable box.
BOX_LIKE = frozenset({"x", "y", "w", "h", "left", "top", "right", "bottom", "width", "height",
                      "box", "bbox", "x0", "y0", "x1", "y1", "x2", "y2",
                      "xmin", "ymin", "xmax", "ymax"})
Box = tuple[int, int, int, int]  # left, top, right, bottom; right and bottom exclusive
Row = tuple[int, dict[str, str]]  # data row number (ids and examples), column -> text
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Column separators a CSV may use: Excel saves with semicolons in many locales.
DELIMITERS = (",", ";", "\t", "|")


# ---- the derived-image cache ----------------------------------------------------------------

def file_sha256(path: str | os.PathLike) -> str:
    """Content hash naming a cache folder, so an edited source never reuses stale images."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_folder(kind: str, fingerprint: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """<cache_dir or data/cache>/<kind>-<fingerprint>/, created; DataError if not writable."""
    root = Path(cache_dir) if cache_dir is not None else paths.DATA_DIR / "cache"
    folder = root / f"{kind}-{fingerprint[:16]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(folder, f"cannot create the image cache ({exc.strerror or exc}); "
                                "pass cache_dir= a writable folder") from exc
    return folder.resolve()


def save_png(pixels: np.ndarray, target: Path) -> None:
    """Write atomically, so an interrupted run never leaves a half file that looks cached."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(target, f"cannot write a cached image ({exc})") from exc


def safe_name(text: str) -> str:
    """A file-name-safe, bounded rendering of an id; a hash suffix keeps altered names unique."""
    safe = _UNSAFE.sub("_", text)[:100]
    if safe != text:
        safe += "-" + hashlib.sha1(text.encode()).hexdigest()[:10]
    return safe


# ---- faces and boxes ------------------------------------------------------------------------

@dataclass(frozen=True)
class Face:
    """One face to keep: its record fields, the box to crop (None: whole image) and where it
    came from (shown as the example when it is dropped)."""

    id: str
    image: Path
    box: Box | None
    expression: int
    where: str
    split: str | None = None


def box_problem(box: Box, width: int, height: int) -> str | None:
    """Why a box cannot be cropped from a width x height image, or None."""
    left, top, right, bottom = box
    if min(box) < 0:
        return "box has negative coordinates"
    if right <= left or bottom <= top:  # inverted boxes too
        return "box has zero area"
    if right > width or bottom > height:
        return "box outside the image"
    return None


def _image_size(path: Path) -> tuple[int, int, int] | None:
    """(width, height) as viewers show the image (its EXIF orientation applied) and that
    orientation, from the header alone; None when it is not a readable image."""
    try:
        with Image.open(path) as img:
            orientation = exif_orientation(img)
            return (*upright_size(*img.size, orientation), orientation)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def crop_name(ident: str, size: int, mtime_ns: int) -> str:
    """A crop's file name, keyed on its source's exact size and time: a photo replaced by
    another (even one with an older time, as unzip or cp -p leave) is cropped again."""
    stamp = hashlib.sha1(f"{size}:{mtime_ns}".encode()).hexdigest()[:10]
    return f"{safe_name(ident)}.{stamp}.png"


_CROP_NAME = re.compile(r"(.+)\.[0-9a-f]{10}\.png")  # crop_name's form: the face, then the stamp


def cached_crops(cache: Path) -> dict[str, list[str]]:
    """The crop files in a cache folder by the face they are of (its safe_name), listed once
    per read, so a face's crops of earlier versions of its photo can be found cheaply."""
    crops: dict[str, list[str]] = {}
    try:
        with os.scandir(cache) as entries:
            for entry in entries:
                if match := _CROP_NAME.fullmatch(entry.name):
                    crops.setdefault(match.group(1), []).append(entry.name)
    except OSError:
        pass  # a cache that cannot be listed is only not pruned
    return crops


def prune_crops(cache: Path, current: Path, earlier: list[str]) -> None:
    """Remove a face's crops of earlier versions of its photo (`earlier`, from cached_crops),
    keeping `current`: the cache holds one crop per face, not one per photo ever read."""
    for name in earlier:
        if name != current.name:
            try:
                (cache / name).unlink(missing_ok=True)
            except OSError:
                pass  # a crop that cannot be removed is only left over


# face position, image reference, drop reason, the box cropped (the given one, or clipped), and
# whether the photo has an EXIF orientation
Outcome = tuple[int, "str | None", "str | None", "Box | None", bool]
MIN_KEPT_SHARE = 0.5  # a clipped box keeps at least this share of its area, or the face is dropped


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """The box cut to the image, or None when less than MIN_KEPT_SHARE of it lies inside: boxes
    of some releases reach a few pixels past the photo, and the face is still there."""
    left, top, right, bottom = box
    inside = (max(left, 0), max(top, 0), min(right, width), min(bottom, height))
    area = max(right - left, 0) * max(bottom - top, 0)
    kept = max(inside[2] - inside[0], 0) * max(inside[3] - inside[1], 0)
    return inside if area and kept >= MIN_KEPT_SHARE * area else None


def _crop_one_image(
    image: Path, faces: list[tuple[int, Face]], cache: Path, clip: bool = False,
    upright: bool = False, cached: Mapping[str, list[str]] | None = None
) -> list[Outcome]:
    """Validate every box on one image (clip: cut boxes that reach past it to the image) and
    write the crops that are missing. upright: boxes are on the photo as viewers show it, so
    a photo with an EXIF orientation is turned upright before cropping. cached: the cache's
    crops by face (cached_crops); a face's crops of an earlier version of its photo are
    removed once its current crop is written."""
    try:
        info = image.stat()
    except OSError:
        return [(i, None, "missing image", None, False) for i, _ in faces]
    except ValueError:  # e.g. a NUL byte in the name: no such file can exist
        return [(i, None, "unusable image name", None, False) for i, _ in faces]
    found = _image_size(image) if image.is_file() else None
    if found is None:
        problem = "missing image" if not image.is_file() else "unreadable image"
        return [(i, None, problem, None, False) for i, _ in faces]
    width, height, orientation = found
    turned = orientation != 1
    if not upright:
        width, height = upright_size(width, height, orientation)  # back to the stored size
        orientation = 1
    out: list[Outcome] = []
    todo: list[tuple[int, Box, Path]] = []
    targets: dict[int, Path] = {}
    for i, face in faces:
        box = face.box
        if box is not None and clip:
            box = clip_box(box, width, height)
            if box is None:
                out.append((i, None, "box mostly outside the image", None, turned))
                continue
        if box is None:
            out.append((i, str(image.resolve()), None, None, turned))
        elif problem := box_problem(box, width, height):
            out.append((i, None, problem, None, turned))
        else:
            target = cache / crop_name(face.id, info.st_size, info.st_mtime_ns)
            targets[i] = target
            if not target.is_file():
                todo.append((i, box, target))
            out.append((i, str(target), None, box, turned))
    if todo:
        try:
            pixels = turn_upright(read_image(str(image)), orientation)
        except DataError:
            bad = {i for i, _, _ in todo}
            return [(o[0], None, "unreadable image", None, turned) if o[0] in bad else o
                    for o in out]
        for _, (left, top, right, bottom), target in todo:
            save_png(pixels[top:bottom, left:right], target)
    for i, face in faces:
        if cached and i in targets and (earlier := cached.get(safe_name(face.id))):
            prune_crops(cache, targets[i], earlier)
    return out


def case_twin(path: Path, listings: dict[Path, list[str]]) -> Path | None:
    """The file whose path differs from `path` only in letter case (a list made on Windows or
    macOS, whose file systems ignore case, read on Linux), or None. listings caches each
    folder's names, so a source whose every image is missing lists each folder once."""
    current = Path(path.parts[0])
    for part in path.parts[1:]:
        if not (current / part).exists():
            if current not in listings:
                try:
                    listings[current] = sorted(os.listdir(current))
                except OSError:
                    listings[current] = []
            twins = [name for name in listings[current] if name.lower() == part.lower()]
            if not twins:
                return None
            part = twins[0]
        current = current / part
    return current if current != path and current.is_file() else None


def crop_faces(faces: Sequence[Face], cache: Path | None, tally: Tally, reader: str,
               workers: int | None = None, progress: bool = True, desc: str = "Cropping",
               clip: bool = False, upright: bool = False) -> list[dict]:
    """Record rows for the faces whose image and box are good; the others counted in tally.
    Images are opened once each, in worker threads; the result does not depend on them.
    clip: a box reaching past the image is cut to it (counted as repaired) and each row gets
    the box cropped (`box`: left, top, right, bottom), for landmarks to follow it.
    upright: boxes are on photos as viewers show them (EXIF orientation applied); otherwise on
    the stored pixels, as a release's boxes and landmarks are. Either way the photos with an
    EXIF orientation are counted in a note."""
    groups: dict[Path, list[tuple[int, Face]]] = {}
    for i, face in enumerate(faces):
        groups.setdefault(face.image, []).append((i, face))
    if cache is None and any(face.box is not None for face in faces):
        raise ValueError("crop_faces needs a cache folder for faces with boxes")
    workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
    outcomes: list[Outcome | None] = [None] * len(faces)

    cached = cached_crops(cache) if cache is not None else {}

    def work(item: tuple[Path, list[tuple[int, Face]]]) -> list[Outcome]:
        return _crop_one_image(item[0], item[1], cache, clip, upright, cached)

    with ThreadPoolExecutor(workers) as pool:
        for result in progress_bar(pool.map(work, groups.items()), total=len(groups), desc=desc,
                           unit=" images", disable=not progress, mininterval=0.5):
            for outcome in result:
                outcomes[outcome[0]] = outcome
    rows = []
    turned_crops = turned_whole = 0
    listings: dict[Path, list[str]] = {}
    twins: list[str] = []
    for face, (_, image, reason, box, turned) in zip(faces, outcomes, strict=True):
        if reason is not None:
            if turned and reason.startswith("box"):
                reason += (" (the photo turned upright by its EXIF orientation)" if upright
                           else " (the photo has an EXIF orientation; boxes are on its stored "
                           "pixels)")
            where = face.where
            if reason == "missing image" and (twin := case_twin(face.image, listings)):
                where += f" (did you mean {twin.name}?)"
                twins.append(f"{face.image.name} is {twin.name}")
            tally.drop(reason, where)
            continue
        turned_crops += turned and box is not None
        turned_whole += turned and box is None
        row = {"id": face.id, "image": image, "source": reader,
               "expression": face.expression, "split": face.split}
        if clip:
            row["box"] = box
            if box != face.box:
                tally.repair("box clipped to the image", face.where)
        rows.append(row)
    _note_turned(tally, turned_crops, turned_whole, upright)
    if twins:
        exist = "exists" if len(twins) == 1 else "exist"
        tally.note(f"{counted(len(twins), 'missing image')} {exist} under a name that differs "
                   f"only in letter case, e.g. {twins[0]} on disk: names are case-sensitive "
                   "here, so correct the list or rename the files")
    return rows


def _note_turned(tally: Tally, crops: int, whole: int, upright: bool) -> None:
    """Say how faces from photos with an EXIF orientation were read (crops upright or as
    stored, whole images as stored), so a sideways training image is never a surprise."""
    if crops and upright:
        tally.note(f"{crops:,} face(s) cropped from photos with an EXIF orientation: turned "
                   "upright first, as viewers show them and as boxes are drawn")
    elif crops:
        tally.note(f"{crops:,} face(s) cropped from photos with an EXIF orientation: cropped "
                   "as stored, where the release's boxes are; look at a few in notebook 02")
    if whole:
        tally.note(f"{whole:,} whole image(s) have an EXIF orientation: training reads them as "
                   "stored, which may be sideways; the predictor turns photos upright")


def no_records(path: str | os.PathLike, tally: Tally, what: str) -> DataError:
    """The error for a source that yielded nothing: what was dropped and why, with examples,
    and the reader's notes (how to map what it did not recognise)."""
    reasons = dropped_text(tally.dropped, tally.examples)
    notes = "".join(f"; {note}" for note in tally.notes)
    return DataError(path, f"no usable {what} (dropped: {reasons or 'nothing found'}){notes}")


# ---- the CSV layout -------------------------------------------------------------------------

_LINE = re.compile(r"[^\r\n]*")
_FILLED_LINE = re.compile(r"[^\r\n]+")


def first_line(text: str, skip_blank: bool = False) -> str:
    """A text's first line (with skip_blank, its first line that is not blank), without its
    line break, found without splitting the rest: a 290 MB fer2013.csv read for its header is
    not copied."""
    if not skip_blank:
        found = _LINE.match(text)
        return found.group() if found else ""
    return next((m.group() for m in _FILLED_LINE.finditer(text) if m.group().strip()), "")


def delimiter_of(first_line: str) -> str:
    """The separator that splits a CSV's header into the most columns (a comma on a tie), so a
    semicolon- or tab-separated file reads like a comma-separated one."""
    best, most = ",", 1
    for delimiter in DELIMITERS:
        found = len(next(csv.reader([first_line], delimiter=delimiter), []))
        if found > most:
            best, most = delimiter, found
    return best


def header_names(first_line: str) -> list[str]:
    """A CSV's column names from its first line, lower-cased and stripped, any separator."""
    names = next(csv.reader([first_line], delimiter=delimiter_of(first_line)), [])
    return [c.strip().lower() for c in names]


def _header(path: Path) -> list[str]:
    """Column names of a CSV, lower-cased and stripped, from its first line only."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        first = f.readline(1 << 16)
    return header_names(first.rstrip("\r\n"))


def csv_rows(reader: Iterator[list[str]]) -> Iterator[list[str] | None]:
    """A CSV's rows, None for one the csv module cannot parse (a huge field, a NUL byte), so
    a bad row is counted and the rest are read."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield None


def _unique(header: list[str]) -> list[str]:
    """Header names made unique as pandas does ('x', 'x.1'), so no column hides another."""
    seen: set[str] = set()
    out = []
    for name in header:
        unique, n = name, 0
        while unique in seen:
            n += 1
            unique = f"{name}.{n}"
        seen.add(unique)
        out.append(unique)
    return out


def _fit(fields: list[str], width: int) -> list[str] | None:
    """A row as exactly `width` fields: missing ones blank, empty extras (a trailing comma)
    cut; None when an extra field holds text, so no value lands in the wrong column."""
    if len(fields) > width and any(f.strip() for f in fields[width:]):
        return None
    return (fields + [""] * width)[:width]


def _table(path: Path, tally: Tally) -> tuple[list[str], list[Row]]:
    """The header and the data rows as text; blank rows skipped, malformed ones counted."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from exc
    header: list[str] | None = None
    rows: list[Row] = []
    delimiter = delimiter_of(first_line(text, skip_blank=True))
    for fields in csv_rows(csv.reader(io.StringIO(text), skipinitialspace=True,
                                      delimiter=delimiter)):
        if fields is not None and not any(f.strip() for f in fields):
            continue
        if header is None:
            if fields is None:
                raise DataError(path, "not a readable CSV (the header line cannot be parsed)")
            header = _unique(fields)
            continue
        fitted = _fit(fields, len(header)) if fields is not None else None
        if fitted is None:
            tally.drop("malformed line", delimiter.join(fields or ["(unparseable)"])[:80])
        else:
            rows.append((len(rows), dict(zip(header, fitted))))
    if header is None:
        raise DataError(path, "not a readable CSV (No columns to parse from file)")
    return header, rows


def fields_of(rows: Sequence[Row], present: Mapping[str, str]) -> list[str]:
    """The image names of a CSV's rows, stripped as the faces' names are."""
    if "image" not in present:
        return []
    return [image_name(row[present["image"]]) for _, row in rows]


def image_name(text: str) -> str:
    """An image name from a cell, Windows separators ('images\\a.jpg') read as folders."""
    return text.strip().replace("\\", "/")


def _images_folder(csv_path: Path, names: list[str]) -> Path:
    """Where the CSV's image names resolve: its own folder, or an images/ (image/) beside it."""
    candidates = [csv_path.parent] + [csv_path.parent / d for d in ("images", "image", "imgs")]
    probe = [n.strip() for n in names[:20] if n.strip() and "\x00" not in n]
    for folder in candidates:
        if probe and any((folder / n).is_file() for n in probe):
            return folder
    return csv_path.parent


def _single_csv(folder: Path) -> Path | None:
    """The one face-box CSV directly in a folder, so users can pass the folder."""
    found = [p for p in folder.glob("*.csv") if looks_like_box_csv(p)]
    return found[0] if len(found) == 1 else None


def looks_like_box_csv(path: str | os.PathLike) -> bool:
    """A .csv whose header has the default image and label columns (or a folder with one)."""
    path = Path(path)
    if path.is_dir():
        return _single_csv(path) is not None
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    header = set(_header(path))
    return {DEFAULT_COLUMNS["image"], DEFAULT_COLUMNS["label"]} <= header


def _refuse_archive(path: Path) -> None:
    """A zip is checked like every archive (unsafe or corrupt ones say so), then refused: the
    crops need the images as files, and the CSV's names are relative to a folder."""
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        open_zip(path).close()
        raise DataError(path, "a zip archive: the face-box CSV reader reads a .csv file (or a "
                              "folder holding one) beside its images; unzip the archive first")


def _box_aliases(present: dict[str, str], actual: Mapping[str, str],
                 columns: Mapping[str, str] | None) -> dict[str, str]:
    """present plus the first complete alias set (xmin.., x1..) when no box column was found."""
    box_fields = {f for fields in BOX_FORMATS.values() for f in fields}
    if box_fields & (set(present) | set(columns or {})):
        return present
    for alias in BOX_ALIASES:
        if all(name in actual for name in alias.values()):
            return {**present, **{field: actual[name] for field, name in alias.items()}}
    return present


def _resolve_columns(path: Path, header: list[str], columns: Mapping[str, str] | None,
                     box_format: str | None) -> tuple[dict[str, str], str | None]:
    """Field -> actual column name for the fields present, and the box format in use."""
    unknown = set(columns or {}) - set(DEFAULT_COLUMNS)
    if unknown:
        raise ConfigError(f"unknown column fields {sorted(unknown)}; "
                          f"expected some of {sorted(DEFAULT_COLUMNS)}")
    if box_format not in (None, *BOX_FORMATS):
        raise ConfigError(f"box_format must be one of {sorted(BOX_FORMATS)} or None (detect), "
                          f"got {box_format!r}")
    wanted = {**DEFAULT_COLUMNS, **(columns or {})}
    actual = {c.strip().lower(): c for c in header}
    present = {field: actual[name.strip().lower()] for field, name in wanted.items()
               if name.strip().lower() in actual}
    for field in ("image", "label"):
        if field not in present:
            raise DataError(path, f"no {field} column (looked for {wanted[field]!r}; columns "
                                  f"are {list(header)}); map yours with columns="
                                  f"{{{field!r}: 'your name'}}")
    present = _box_aliases(present, actual, columns)
    formats = [box_format] if box_format else list(BOX_FORMATS)
    for name in formats:
        fields = BOX_FORMATS[name]
        found = [f for f in fields if f in present]
        if len(found) == len(fields):
            return present, name
        if found or box_format:
            missing = [wanted[f] for f in fields if f not in present]
            raise DataError(path, f"box columns incomplete for {name}: missing {missing}")
    return present, None


def _unused_box_note(header: list[str], present: Mapping[str, str]) -> str | None:
    """What to say when box-like columns are present but no box is used (whole images)."""
    used = set(present.values())
    unused = [c for c in header if c.strip().lower() in BOX_LIKE and c not in used]
    if not unused:
        return None
    return (f"box-like columns {unused} not used: whole images kept, not cropped; map them "
            "with columns={'x': ..., 'y': ..., 'w': ..., 'h': ...} (or left, top, right, "
            "bottom)")


def _number(text: str) -> float:
    """A finite float from a cell, or ValueError."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _box(row: Mapping[str, str], fields: tuple[str, ...], box_format: str) -> Box:
    """The row's box as integer left, top, right, bottom (detector floats rounded)."""
    a, b, c, d = (round(_number(row[f])) for f in fields)
    return (a, b, a + c, b + d) if box_format == "xywh" else (a, b, c, d)


def read_box_csv(path: str | os.PathLike, columns: Mapping[str, str] | None = None,
                 box_format: str | None = None, images_dir: str | os.PathLike | None = None,
                 min_confidence: float | None = None,
                 cache_dir: str | os.PathLike | None = None, workers: int | None = None,
                 progress: bool = True) -> ReadResult:
    """Records from a CSV of image names, boxes and label names; crops go to the cache.

    path may also be a folder holding one such CSV (and its images).
    """
    if min_confidence is not None:
        min_confidence = check_number("min_confidence", min_confidence, READER)
    check_workers(workers, READER)
    path = Path(path)
    if path.is_dir():
        path = _single_csv(path) or path
    if not path.is_file():
        raise DataError(path, "CSV file not found")
    _refuse_archive(path)
    tally = Tally()
    header, rows = _table(path, tally)
    present, fmt = _resolve_columns(path, header, columns, box_format)
    if min_confidence is not None and "confidence" not in present:
        raise DataError(path, "min_confidence given but the CSV has no confidence column "
                              f"(looked for {(columns or {}).get('confidence', 'confidence')!r})")
    folder = (Path(images_dir) if images_dir is not None
              else _images_folder(path, fields_of(rows, present)))
    cache = None
    if fmt is not None:
        fingerprint = hashlib.sha256("\n".join(
            [file_sha256(path), str(folder.resolve()), fmt, repr(sorted(present.items()))]
        ).encode()).hexdigest()
        cache = cache_folder(READER, fingerprint, cache_dir)
    elif note := _unused_box_note(header, present):
        tally.note(note)
    fields = [(n, {field: row[column] for field, column in present.items()}) for n, row in rows]
    faces = _faces(fields, folder, fmt, min_confidence, tally)
    found = crop_faces(faces, cache, tally, READER, workers, progress, f"Reading {path.name}",
                       upright=True)
    if not found:
        raise no_records(path, tally, "faces")
    return tally.result(make_records(found, where=str(path)), READER, path)


def _faces(rows: Sequence[Row], folder: Path, fmt: str | None, min_confidence: float | None,
           tally: Tally) -> list[Face]:
    """Faces from the rows (columns renamed to field names), bad rows counted."""
    faces: list[Face] = []
    fields = BOX_FORMATS.get(fmt, ())
    labels_seen: set[str] = set()
    for n, row in rows:
        name = image_name(row["image"])
        where = f"row {n}: {name or '(no name)'}"
        if not name:
            tally.drop("no image name", where)
            continue
        label = expression_index(row["label"])
        if label is None:  # one example per value: the values are what the user must map
            value = row["label"].strip()
            example = None if value in labels_seen else f"row {n}: {row['label']!r}"
            tally.drop("unknown label", example)
            labels_seen.add(value)
            continue
        if min_confidence is not None:
            try:
                confidence = _number(row["confidence"])
            except ValueError:
                tally.drop("unparseable confidence", where)
                continue
            if confidence < min_confidence:
                tally.drop(f"confidence below {min_confidence:g}", where)
                continue
        box = None
        if fmt is not None:
            try:
                box = _box(row, fields, fmt)
            except (ValueError, OverflowError):
                tally.drop("unparseable box", where)
                continue
        split = None
        if text := row.get("split", "").strip():
            split = split_of(text)
            if split is None:
                tally.null("unknown split value", f"row {n}: {text!r}")
        faces.append(Face(f"{n:06d}_{Path(name).stem}", folder / name, box, label, where, split))
    if labels_seen:
        tally.note(f"labels are expression names, in any case: {accepted_names()}")
    return faces
