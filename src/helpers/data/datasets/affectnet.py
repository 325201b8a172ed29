"""Reader for AffectNet-layout zips: images/{id}.jpg beside annotations/{id}_{exp,val,aro,lnd}.npy.

Members are read straight from the zip. Only the small npy members are parsed; images are
checked by their first bytes, not decoded. Bad records are dropped and bad optional values
blanked, each counted by reason in the ReadResult.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
from helpers.core.progress import bar as progress_bar

from helpers.core.archive import ArchiveLimits, open_zip, read_head, read_member
from helpers.data.datasets import ReadResult, Tally, dropped_text
from helpers.core.errors import DataError
from helpers.core.images import header_size, is_image_header, make_uri
from helpers.core.labels import N_EXPRESSIONS, affect_value
from helpers.core.paths import is_junk
from helpers.core.landmarks import N_POINTS, landmark_problem
from helpers.core.records import make_records

READER = "affectnet"
_ANNOTATION = re.compile(r"^(?P<id>.+)_(?P<kind>exp|val|aro|lnd)\.npy$", re.IGNORECASE)
# Folder names of the real release; AffectNet's own validation set serves as the test set.
_SPLIT_FOLDERS = {"train_set": "train", "val_set": "test"}
_NAMES = {"val": "valence", "aro": "arousal"}
_NPY_MAGIC = b"\x93NUMPY"
_OPTIONAL = ("val", "aro")  # counted when missing for some records (not lnd: often absent)
_EXP_FILE = re.compile(r"_exp\.npy$", re.IGNORECASE)
_SIZE_HEAD = (2048, 1 << 17)  # bytes read for an image's size from its header

Key = tuple[str, str]  # (folder holding images/ and annotations/, id)


class _Invalid(Exception):
    """One annotation value is unusable; carries the reason it is counted under."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _parts(member: str) -> tuple[str, str, str] | None:
    """(prefix, folder, file name) of a member, or None for folders and OS junk."""
    parts = member.replace("\\", "/").split("/")
    if len(parts) < 2 or not parts[-1] or is_junk(tuple(parts)):
        return None
    name = parts[-1]
    return "/".join(parts[:-2]), parts[-2].lower(), name


def _layout(names: list[str], tally: Tally | None = None
            ) -> tuple[dict[Key, str], dict[Key, dict[str, str]]]:
    """Group members into images and annotation sets by (prefix, id)."""
    images: dict[Key, str] = {}
    annotations: dict[Key, dict[str, str]] = {}
    for member in sorted(names):
        parts = _parts(member)
        if parts is None:
            continue
        prefix, folder, name = parts
        if folder == "images":
            key = (prefix, name.rsplit(".", 1)[0] if "." in name else name)
            if key in images and tally is not None:
                tally.drop("duplicate id", member)  # e.g. 1.jpg and 1.png side by side
                continue
            images[key] = member
        elif folder == "annotations" and (m := _ANNOTATION.match(name)):
            kinds = annotations.setdefault((prefix, m["id"]), {})
            kind = m["kind"].lower()
            if kind in kinds and tally is not None:
                tally.drop("duplicate annotation", member)
                continue
            kinds[kind] = member
    return images, annotations


def _zip_names(path: str | os.PathLike) -> list[str] | None:
    """A zip's member names, None for a path that is not a readable zip (detection's probes)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def _kinds_beside_images(names: list[str]) -> set[str]:
    """The annotation kinds (exp, val, aro, lnd) under an annotations/ folder whose prefix also
    has an images/ folder: what a zip in AffectNet's layout holds, for detection's probes."""
    image_prefixes: set[str] = set()
    kinds: dict[str, set[str]] = {}
    for member in names:
        parts = _parts(member)
        if parts is None:
            continue
        prefix, folder, name = parts
        if folder == "images":
            image_prefixes.add(prefix)
        elif folder == "annotations" and (m := _ANNOTATION.match(name)):
            kinds.setdefault(prefix, set()).add(m["kind"].lower())
    return set().union(*(kinds[p] for p in image_prefixes & set(kinds)))


def looks_like_affectnet(path: str | os.PathLike) -> bool:
    """A zip with an images/ folder beside an annotations/ folder holding *_exp.npy files."""
    names = _zip_names(path)
    return names is not None and "exp" in _kinds_beside_images(names)


def unlabelled_layout(path: str | os.PathLike) -> str | None:
    """What to say of a zip in AffectNet's layout (images/ beside annotations/) whose
    annotations hold other kinds (val, aro, lnd) but no *_exp.npy: the reader needs expression
    labels, so detection passes it over; None for any other source."""
    names = _zip_names(path)
    if names is None:
        return None
    found = sorted(_kinds_beside_images(names))
    if not found or "exp" in found:
        return None
    listed = ", ".join(f"*_{kind}.npy" for kind in found)
    return (f"AffectNet layout found (images/ beside annotations/ with {listed}), but no "
            "expression labels (*_exp.npy): expression labels are required (data with only "
            "valence/arousal or landmarks is not supported)")


# npy header bytes -> (dtype, shape, order, data bytes) of an array np.load already accepted.
# A release holds ~4 headers (one per annotation kind) repeated over every id, and parsing
# the header (ast.literal_eval) was half of np.load's time.
_KNOWN_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], str, int]] = {}
_MAX_KNOWN_HEADERS = 256


def _header_end(data: bytes) -> int | None:
    """Offset of the array data in npy bytes (format versions 1-3), None if it is not clear."""
    if len(data) < 12:
        return None
    major = data[6]
    if major == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    if major in (2, 3):
        return 12 + int.from_bytes(data[8:12], "little")
    return None


def _remember_header(header: bytes, arr: np.ndarray) -> None:
    """Note how np.load read this header, so the next member with it skips the parse."""
    if arr.dtype.hasobject or arr.dtype.itemsize == 0 or arr.size == 0 \
            or len(_KNOWN_HEADERS) >= _MAX_KNOWN_HEADERS:
        return
    order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    _KNOWN_HEADERS[header] = (arr.dtype, arr.shape, order, arr.nbytes)


def _load_npy(data: bytes) -> np.ndarray:
    """Parse npy bytes without ever unpickling; reasons: 'pickled', 'unparseable'.

    A header np.load has accepted before is not parsed again: the data is read with
    np.frombuffer exactly as np.load would (same dtype, shape, order, trailing bytes ignored).
    """
    if not data.startswith(_NPY_MAGIC):
        # np.load would open it as an .npz archive or refuse it as a pickle; it is neither
        # an annotation, and only a pickle's protocol byte earns the 'pickled' reason.
        raise _Invalid("pickled" if data[:1] == b"\x80" else "unparseable")
    end = _header_end(data)
    known = _KNOWN_HEADERS.get(data[:end]) if end is not None else None
    if known is not None and len(data) - end >= known[3]:
        dtype, shape, order, _ = known
        count = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(data, dtype, count=count, offset=end).reshape(shape, order=order)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        # numpy's refusal of object arrays names allow_pickle.
        raise _Invalid("pickled" if "allow_pickle" in str(exc) else "unparseable") from exc
    except (OSError, EOFError, TypeError, SyntaxError, MemoryError) as exc:
        # MemoryError: a header declaring a shape far beyond the member's bytes.
        raise _Invalid("unparseable") from exc
    if not isinstance(arr, np.ndarray):  # an .npz would load as a mapping
        raise _Invalid("unparseable")
    if end is not None:
        _remember_header(data[:end], arr)
    return arr


def _scalar(arr: np.ndarray) -> float:
    """The single number in a 0-d/1-element array of text ('-0.25') or numbers."""
    if arr.size != 1 or arr.dtype.kind not in "USiuf":
        raise _Invalid("unparseable")
    value = arr.reshape(()).item()
    try:
        return float(value.decode("ascii") if isinstance(value, bytes) else value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Invalid("unparseable") from exc


def _expression(data: bytes) -> int:
    """Expression index 0-7, or _Invalid (out of range covers AffectNet's -2/8/9/10 markers)."""
    value = _scalar(_load_npy(data))
    if not value.is_integer():
        raise _Invalid("unparseable")
    if not 0 <= value < N_EXPRESSIONS:
        raise _Invalid("out of range")
    return int(value)


def _affect(data: bytes) -> float:
    """Valence or arousal in [-1, 1] (a hair past an edge clipped onto it), or _Invalid; -2 is
    the release's mark of no rating, counted as such (helpers.core.labels.affect_value)."""
    value, problem = affect_value(_scalar(_load_npy(data)))
    if problem is not None:
        raise _Invalid(problem)
    return value


def _landmarks(data: bytes) -> np.ndarray:
    """(136,) values x0,y0,x1,y1,... or (68, 2) rows of x, y, as (68, 2) float32 pixels, or
    _Invalid; extra axes of length 1, as in (1, 136), change nothing. Other shapes, (2, 68)
    among them, are refused: read as x0,y0,... they would scramble the points, and which
    layout was meant cannot be told from the values."""
    arr = _load_npy(data)
    if arr.dtype.kind not in "USiuf":  # complex, bool, dates, records: not coordinates
        raise _Invalid("unparseable")
    if arr.size != N_POINTS * 2:  # checked before converting, so a forged shape costs nothing
        raise _Invalid("wrong length")
    shape = tuple(n for n in arr.shape if n != 1)
    if shape not in ((N_POINTS * 2,), (N_POINTS, 2)):
        raise _Invalid("wrong shape")
    try:
        values = np.asarray(arr, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise _Invalid("unparseable") from exc
    if not np.isfinite(values).all():
        raise _Invalid("not finite")
    with np.errstate(over="ignore"):  # checked as stored: 1e39 is finite, not as float32
        stored = values.astype(np.float32)
    if not np.isfinite(stored).all():
        raise _Invalid("out of range")
    return stored.reshape(N_POINTS, 2)


def _reason(kind: str, problem: str) -> str:
    """Readable reason names: 'pickled val npy refused', 'valence out of range'..."""
    if problem == "pickled":
        return f"pickled {kind} npy refused"
    if problem in ("unparseable", "unreadable"):
        return f"{problem} {kind}"
    label = {"exp": "expression", "lnd": "landmarks"}.get(kind, _NAMES.get(kind, kind))
    return f"{label} {problem}"


def _split(prefix: str) -> str | None:
    """The official split a release folder stands for, if any."""
    for part in prefix.lower().split("/"):
        if part in _SPLIT_FOLDERS:
            return _SPLIT_FOLDERS[part]
    return None


def _sort_key(key: Key) -> tuple:
    """Deterministic, human order: numeric ids by value."""
    prefix, ident = key
    return (prefix, 0, int(ident), ident) if ident.isdigit() else (prefix, 1, 0, ident)


def _read_one(zf: zipfile.ZipFile, key: Key, image: str | None, ann: dict[str, str],
              tally: Tally, limits: ArchiveLimits) -> dict | None:
    """One record from its members, or None after counting why it was dropped."""
    if not ann:
        tally.drop("image without annotations", image)
        return None
    if image is None:
        tally.drop("missing image", ann.get("exp") or next(iter(ann.values())))
        return None
    if "exp" not in ann:
        tally.drop("missing exp", image)
        return None
    try:
        expression = _expression(read_member(zf, ann["exp"], limits))
    except DataError:
        tally.drop(_reason("exp", "unreadable"), ann["exp"])
        return None
    except _Invalid as bad:
        tally.drop(_reason("exp", bad.reason), ann["exp"])
        return None
    try:  # one read of the head serves both the format check and, below, the stored size
        head = read_head(zf, image, _SIZE_HEAD[0])
    except DataError:
        tally.drop(_reason("image", "unreadable"), image)
        return None
    if not is_image_header(head):
        tally.drop("not an image", image)
        return None
    record = {"id": key[1], "image": image, "expression": expression,
              "valence": np.nan, "arousal": np.nan, "landmarks": None, "split": _split(key[0])}
    for kind, parse, column in (("val", _affect, "valence"), ("aro", _affect, "arousal"),
                                ("lnd", _landmarks, "landmarks")):
        if kind in ann:
            try:
                record[column] = parse(read_member(zf, ann[kind], limits))
            except DataError:
                tally.null(_reason(kind, "unreadable"), ann[kind])
            except _Invalid as bad:
                tally.null(_reason(kind, bad.reason), ann[kind])
    points = record["landmarks"]
    size = _stored_size(zf, image, head) if points is not None else None
    if size is not None and (problem := landmark_problem(points, *size)):
        record["landmarks"] = None
        tally.null(_reason("lnd", problem), ann["lnd"])
    return record


def _stored_size(zf: zipfile.ZipFile, image: str, head: bytes) -> tuple[int, int] | None:
    """(height, width) from the image's header, the pixels its landmarks are in; None when the
    header cannot be read (the image is then left out when notebook 03 decodes it). `head` is
    the member's first bytes, already read: most headers fit them, and the member is read
    again, further, only for one whose size lies past them (a large EXIF or ICC block)."""
    size = header_size(head)
    if size is not None or len(head) < _SIZE_HEAD[0]:  # a short head is the whole member
        return size
    try:
        return header_size(read_head(zf, image, _SIZE_HEAD[1]))
    except DataError:
        return None


def _count_missing(kept: list[dict[str, str]], tally: Tally) -> None:
    """Valence or arousal files that some kept records have and others lack are
    counted as blanked (the file expected as the example): a copy missing part of a release
    says so. A kind no record has is the source's own choice, not counted."""
    for kind in _OPTIONAL:
        have = [kind in ann for ann in kept]
        if not any(have) or all(have):
            continue
        for ann in kept:
            if kind not in ann:
                tally.null(_reason(kind, "missing"), _EXP_FILE.sub(f"_{kind}.npy", ann["exp"]))


def read_affectnet_zip(path: str | os.PathLike, limits: ArchiveLimits | None = None,
                       progress: bool = True) -> ReadResult:
    """Records from an AffectNet-layout zip; raises DataError for unsafe/corrupt archives."""
    path = Path(path)
    limits = limits or ArchiveLimits()
    tally = Tally()
    with open_zip(path, limits) as zf:
        images, annotations = _layout(zf.namelist(), tally)
        if not images or not annotations:
            raise DataError(path, "not an AffectNet layout: expected an images/ folder beside "
                                  "an annotations/ folder of {id}_exp.npy files")
        keys = sorted(set(images) | set(annotations), key=_sort_key)
        rows, seen, kept = [], set(), []
        for key in progress_bar(keys, desc=f"Reading {path.name}", unit=" records",
                        disable=not progress, mininterval=0.5):
            record = _read_one(zf, key, images.get(key), annotations.get(key, {}), tally, limits)
            if record is None:
                continue
            if record["id"] in seen:  # same id under train_set/ and val_set/: keep the first
                tally.drop("duplicate id", record["image"])
                continue
            seen.add(record["id"])
            kept.append(annotations[key])
            record["image"] = make_uri(path, record["image"])
            rows.append(record)
    _count_missing(kept, tally)
    if not rows:
        reasons = dropped_text(tally.dropped, tally.examples)
        raise DataError(path, f"no usable records (dropped: {reasons or 'nothing found'})")
    records = make_records([{**row, "source": READER} for row in rows], where=str(path))
    return tally.result(records, READER, path)
