"""Readers for FER-2013: the Kaggle image folders (zip or folder) and the original fer2013.csv.

Image folders: `train/<class>/*.jpg|png` and `test/<class>/*`, optionally under a wrapper folder
(`fer2013/train/...`), each face named by its row of the challenge's CSV as the Kaggle release
names it (`Training_10118481.jpg`, `PublicTest_10116449.jpg`, `PrivateTest_...`): detection asks
for those names, as folder names alone (angry/, happy/ ... under train/ and test/) are any
researcher's layout, which the class-folder reader reads and the methods section does not call
FER-2013 (`reader="fer2013"` forces this reader). Official splits are kept (train -> train, test -> test), class folders
map by their FER name (case-insensitive), other folders and non-image files are counted. Files
are not decoded; their first 16 bytes are checked (a fraction of a second for the 32,298-member
zip). See helpers.data.datasets.folders, which does the work.

fer2013.csv: columns emotion (FER order 0 Angry ... 6 Neutral), pixels (2304 space-separated
integers, a 48x48 grayscale face) and, optionally, Usage, separated by commas (or semicolons
or tabs, as the header line shows). Usage maps to splits by
`usage_splits`: "standard" (the default: Training -> train, PublicTest -> val, PrivateTest ->
test, the three-way protocol the challenge was built on) or "coursework" (PublicTest and
PrivateTest both -> test, as the Kaggle image-folder release and the coursework treat them;
03 then carves val from train), or a mapping of your own, which adds to or overrides the
standard one; Usage values named like split folders (train, val, validation, test,
holdout..., any case: folders.SPLIT_NAMES) map as they say. Faces are written once as PNGs
into `data/cache/fer2013_csv-<sha of the csv>/` (or under `cache_dir`) and records point there.
The CSV may sit inside a zip (e.g. Kaggle's download); it is read in place, with a per-member
size limit raised to 2 GiB (`limits=` to change). A folder holding it (at most two folders
down) works too. When a zip or folder holds several, the ones with a Usage column come first,
then the largest; `member=` (its path inside) picks another.

Both sources have seven classes: no record is ever Contempt (7).
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterable
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from helpers.core.progress import bar as progress_bar

from helpers.core.archive import GiB, ArchiveLimits, open_zip, read_head, read_member
from helpers.data.datasets import ReadResult, Tally
from helpers.data.datasets.csv_boxes import (cache_folder, csv_rows, delimiter_of, first_line,
                                        header_names, no_records, save_png)
from helpers.data.datasets.folders import (FER_USAGE_SPLITS, SPLIT_NAMES, class_groups,
                                      image_files, image_folders, is_junk, is_zip,
                                      read_class_tree, split_of)
from helpers.core.errors import ConfigError, DataError
from helpers.core.labels import FER_TO_AFFECTNET, class_number, expression_index
from helpers.core.records import make_records

READER = "fer2013"
CSV_READER = "fer2013_csv"
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_CLASS_INDEX: dict[str, int] = {name: FER_TO_AFFECTNET[i] for i, name in enumerate(FER_CLASSES)}
SIDE = 48
N_PIXELS = SIDE * SIDE
USAGE_SPLITS: dict[str, dict[str, str]] = {
    "standard": FER_USAGE_SPLITS,
    "coursework": {**FER_USAGE_SPLITS, "publictest": "test"},
}
CSV_LIMITS = ArchiveLimits(max_member_bytes=2 * GiB)
_MIN_FER_CLASSES = 4  # FER class folders under train/ before a tree counts as FER-2013
# A face's name in the Kaggle image-folder release: its Usage and a number.
FER_NAME = re.compile(r"^(Training|PublicTest|PrivateTest)_\d+$")
_FER_NAME_SHARE = 0.95  # of a tree's faces named as the release names them: FER-2013
_HEAD = 4096
_CSV_DEPTH = 2  # folders below a source folder searched for fer2013.csv
WRONG_COUNT = f"wrong pixel count (expected {N_PIXELS:,} = {SIDE}x{SIDE})"


# ---- image folders --------------------------------------------------------------------------

def fer_class_index(name: str) -> int | None:
    """Shared index of a FER class folder name ('Angry' -> 6), None for anything else."""
    return FER_CLASS_INDEX.get(name.strip().lower())


def fer_names(ids: Iterable[str]) -> bool:
    """Whether the faces are named as the FER-2013 release names its faces (a record's id or a
    file's stem ending in Training_<n>, PublicTest_<n> or PrivateTest_<n>): _FER_NAME_SHARE of
    them or more, so that a duplicate ('Training_1 (1)') or a face a user added does not undo
    the release; False for none."""
    share, _ = _fer_name_share(ids)
    return share >= _FER_NAME_SHARE


def _fer_name_share(ids: Iterable[str]) -> tuple[float, str | None]:
    """The share of the faces named as the release names them (0 for none), and one that is
    not (None when all are)."""
    named = total = 0
    other = None
    for ident in ids:
        total += 1
        if FER_NAME.match(str(ident).rsplit("/", 1)[-1]):
            named += 1
        elif other is None:
            other = str(ident)
    return (named / total if total else 0.0), other


def _fer_base(path: Path) -> tuple[str, ...] | None:
    """The folder holding train/ and test/ side by side whose expression-named folders are
    all FER names (at least _MIN_FER_CLASSES under train/), None where there is none."""
    groups = class_groups(image_folders(path))
    for base in sorted({base for base, _ in groups}):
        train, test = groups.get((base, "train"), set()), groups.get((base, "test"), set())
        if not train or not test:
            continue
        named = {n.strip().lower() for n in train | test if expression_index(n) is not None}
        fer_in_train = {n.strip().lower() for n in train} & set(FER_CLASSES)
        if named <= set(FER_CLASSES) and len(fer_in_train) >= _MIN_FER_CLASSES:
            return base
    return None


def looks_like_fer_folders(path: str | os.PathLike) -> bool:
    """train/ and test/ side by side whose expression-named folders are all FER names, and
    whose faces carry the release's names (Training_<n>.jpg, PublicTest_<n>.jpg): FER names
    on folders alone are a layout anyone's own faces can have."""
    path = Path(path)
    base = _fer_base(path)
    return base is not None and fer_names(_fer_stems(path, base))


def fer_layout_note(path: str | os.PathLike) -> str | None:
    """For the class-folder reader: a sentence when the tree has FER-2013's layout but too few
    of its faces carry the release's names to be read as FER-2013 (which a report names and
    cites), with the option that forces it; None otherwise."""
    path = Path(path)
    base = _fer_base(path)
    if base is None:
        return None
    share, other = _fer_name_share(_fer_stems(path, base))
    if share >= _FER_NAME_SHARE or other is None:
        return None
    return (f"train/ and test/ hold FER-2013's class folders, but {share:.0%} of their faces "
            f"carry the release's names (Training_<n>, PublicTest_<n>, PrivateTest_<n>; not "
            f"e.g. {other}), under the {_FER_NAME_SHARE:.0%} that makes them FER-2013: read as "
            f"your own class folders; if this is FER-2013, reader=\"fer2013\" reads it as such")


def _fer_stems(path: Path, base: tuple[str, ...]) -> list[str]:
    """The images in base's train/<class>/ and test/<class>/ folders of FER names, each as its
    path without the extension."""
    depth = len(base)
    return [
        "/".join((*parts[:-1], Path(parts[-1]).stem)) for parts in image_files(path)
        if len(parts) == depth + 3 and parts[:depth] == base
        and split_of(parts[depth]) in ("train", "test") and fer_class_index(parts[depth + 1])
        is not None
    ]


def read_fer_folders(path: str | os.PathLike, check_headers: bool = True,
                     limits: ArchiveLimits | None = None, progress: bool = True) -> ReadResult:
    """Records from the Kaggle image-folder layout, as a zip or a folder."""
    return read_class_tree(path, reader=READER, class_index=fer_class_index,
                           check_headers=check_headers, limits=limits, progress=progress)


# ---- fer2013.csv ----------------------------------------------------------------------------

def _is_fer_header(first_line: str) -> bool:
    """The header names emotion and pixels columns (comma-, semicolon- or tab-separated)."""
    return {"emotion", "pixels"} <= set(header_names(first_line))


def _first_line(data: bytes) -> str:
    """The first line of some leading bytes of a text file."""
    return data.decode("utf-8-sig", errors="replace").splitlines()[0] if data else ""


Candidate = tuple[bool, int, str]  # (no Usage column, -size, name): sorts the likeliest first


def _candidate(line: str, size: int, name: str) -> Candidate | None:
    """A FER-style CSV's sort key from its first line, or None when it is not one."""
    if not _is_fer_header(line):
        return None
    has_usage = "usage" in header_names(line)
    return (not has_usage, -size, name)


def _csv_members(zf: zipfile.ZipFile) -> list[str]:
    """Members of a zip that are FER-style CSVs, the ones with a Usage column first."""
    found = []
    for info in zf.infolist():
        parts = tuple(info.filename.split("/"))
        if info.is_dir() or is_junk(parts) or not info.filename.lower().endswith(".csv"):
            continue
        try:
            line = _first_line(read_head(zf, info.filename, _HEAD))
        except DataError:
            continue
        if key := _candidate(line, info.file_size, info.filename):
            found.append(key)
    return [name for *_, name in sorted(found)]


def _folder_csvs(folder: Path) -> list[str]:
    """FER-style CSVs in a folder or up to _CSV_DEPTH below ('/'-joined), likeliest first."""
    found = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder).parts
        keep = len(rel) < _CSV_DEPTH
        dirs[:] = [d for d in dirs if keep and not d.startswith(".") and d != "__MACOSX"]
        for name in files:
            parts = (*rel, name)
            file = Path(root, name)
            # is_file: a FIFO named like a CSV would block the open forever
            if is_junk(parts) or not name.lower().endswith(".csv") or not file.is_file():
                continue
            try:
                with open(file, "rb") as f:
                    line, size = _first_line(f.read(_HEAD)), os.fstat(f.fileno()).st_size
            except OSError:
                continue
            if key := _candidate(line, size, "/".join(parts)):
                found.append(key)
    return [name for *_, name in sorted(found)]


def looks_like_fer_csv(path: str | os.PathLike) -> bool:
    """A .csv with emotion and pixels columns, or a zip or folder holding one."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        with open(path, "rb") as f:
            return _is_fer_header(_first_line(f.read(_HEAD)))
    if path.is_dir():
        return bool(_folder_csvs(path))
    if is_zip(path):
        with open_zip(path, CSV_LIMITS) as zf:  # members are read only from a validated zip
            return bool(_csv_members(zf))
    return False


def _usage_map(usage_splits: str | Mapping[str, str]) -> dict[str, str]:
    """A preset name or a mapping Usage -> split, keys compared case-insensitively; the split
    names class folders may have (train, val, validation, test...) and the challenge's Usage
    values map as they do there; a mapping of one's own adds to that table or overrides it."""
    if isinstance(usage_splits, str):
        if usage_splits not in USAGE_SPLITS:
            raise ConfigError(f"usage_splits must be one of {sorted(USAGE_SPLITS)} or a "
                              f"mapping, got {usage_splits!r}")
        return {**SPLIT_NAMES, **USAGE_SPLITS[usage_splits]}
    mapping = {str(k).strip().lower(): v for k, v in usage_splits.items()}
    bad = sorted({v for v in mapping.values() if v not in ("train", "val", "test")})
    if bad:
        raise ConfigError(f"usage_splits values must be train/val/test, got {bad}")
    return {**SPLIT_NAMES, **mapping}


def _usage_note(values: list[str]) -> str:
    """How to map Usage values that name no split, for the result's notes and the error."""
    shown = ", ".join(map(repr, values[:5])) + (" ..." if len(values) > 5 else "")
    return (f"Usage values {shown} name no split (their rows are left out): map them with "
            f"usage_splits={{{values[0]!r}: 'train', ...}} (to train, val or test; split names "
            "such as train, val, validation and test are read as they say)")


def _read_file(path: Path, limits: ArchiveLimits) -> bytes:
    """A CSV file's bytes, after checking its size against the limit."""
    try:
        size = path.stat().st_size
        if size > limits.max_member_bytes:  # the real file is 0.3 GB; read whole below
            raise DataError(path, f"{size / GiB:.1f} GB is over the "
                                  f"{limits.max_member_bytes / GiB:.1f} GB limit for a "
                                  "FER-2013 CSV (the real one is 0.3 GB); pass limits="
                                  "ArchiveLimits(max_member_bytes=...) to read it anyway")
        return path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from exc


def _folder_csv(folder: Path, member: str | None) -> Path:
    """The FER-2013 CSV in a folder: `member` (relative to it) or the likeliest one found."""
    if member is None:
        found = _folder_csvs(folder)
        if not found:
            raise DataError(folder, "no CSV with emotion and pixels columns in the folder "
                                    f"(looked {_CSV_DEPTH} folders down)")
        member = found[0]
    target = (folder / member).resolve()
    if folder.resolve() not in target.parents or not target.is_file():
        raise ConfigError(f"member={member!r} is not a file inside {folder}")
    return target


def _load_csv(path: Path, member: str | None, limits: ArchiveLimits | None
              ) -> tuple[bytes, str]:
    """The CSV's bytes and a name for messages, from a file or from inside a zip or folder."""
    limits = limits or CSV_LIMITS
    if path.is_dir():
        path = _folder_csv(path, member)
        return _read_file(path, limits), str(path)
    if path.suffix.lower() == ".zip" and not is_zip(path):
        open_zip(path, limits).close()  # says what is wrong with it (not a zip, truncated)
    if not is_zip(path):
        if member is not None:
            raise ConfigError("member= applies only to a zip or folder source")
        return _read_file(path, limits), str(path)
    with open_zip(path, limits) as zf:
        if member is None:
            members = _csv_members(zf)
            if not members:
                raise DataError(path, "no CSV with emotion and pixels columns in the archive")
            member = members[0]
        return read_member(zf, member, limits), f"{path}!{member}"


def _pixels(text: str) -> np.ndarray | str:
    """A 48x48 uint8 face, or the reason the pixel string is unusable (for a wrong count,
    after a tab: how many values were found)."""
    tokens = text.split()
    if len(tokens) != N_PIXELS:
        return f"{WRONG_COUNT}\t{len(tokens):,} values"
    if max(map(len, tokens)) > 18:  # past int64 parsing (OverflowError); no pixel is that long
        return "pixel out of range"
    digits = "".join(tokens)
    if digits.isascii() and digits.isdigit():  # the common case: fromstring is ~4x faster
        values = np.fromstring(text, dtype=np.int64, sep=" ")
        if values.size == N_PIXELS and values.max() <= 255:
            return values.astype(np.uint8).reshape(SIDE, SIDE)
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        return "non-integer pixels"
    if values.min() < 0 or values.max() > 255:
        return "pixel out of range"
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def read_fer_csv(path: str | os.PathLike, usage_splits: str | Mapping[str, str] = "standard",
                 cache_dir: str | os.PathLike | None = None, member: str | None = None,
                 limits: ArchiveLimits | None = None, progress: bool = True) -> ReadResult:
    """Records from fer2013.csv (or a zip holding it); faces cached as 48x48 PNGs."""
    path = Path(path)
    splits = _usage_map(usage_splits)
    data, where = _load_csv(path, member, limits)
    text = data.decode("utf-8-sig", errors="replace")
    rows_in = csv.reader(io.StringIO(text), delimiter=delimiter_of(first_line(text)))
    del text
    header = [c.strip().lower() for c in next(rows_in, [])]
    if not {"emotion", "pixels"} <= set(header):
        raise DataError(where, f"not a FER-2013 CSV: expected emotion and pixels columns, "
                               f"found {header}")
    e, p = header.index("emotion"), header.index("pixels")
    u = header.index("usage") if "usage" in header else None
    cache = cache_folder(CSV_READER, hashlib.sha256(data).hexdigest(), cache_dir)
    del data
    tally, rows, n = Tally(), [], -1
    unknown_usage: list[str] = []
    for fields in progress_bar(csv_rows(rows_in), desc=f"Reading {path.name}", unit=" rows",
                       disable=not progress, mininterval=0.5):
        if fields is not None and not any(f.strip() for f in fields):
            continue
        n += 1  # ids count every data row, so they do not shift when rows are dropped
        ident = f"{n:05d}"
        if fields is None or len(fields) != len(header):
            tally.drop("malformed line", f"row {ident}")
            continue
        emotion = fields[e].strip()
        number = class_number(emotion)  # '3' and '3.0' alike, as spreadsheets save it
        if number is None or number not in FER_TO_AFFECTNET:
            tally.drop("unknown emotion", f"row {ident}: {emotion!r}")
            continue
        split = None
        if u is not None:
            split = splits.get(fields[u].strip().lower())
            if split is None:  # one example per value: the values are what usage_splits maps
                value = fields[u].strip()
                example = None if value in unknown_usage else f"row {ident}: {value!r}"
                tally.drop("unknown Usage", example)
                if value not in unknown_usage:
                    unknown_usage.append(value)
                continue
        face = _pixels(fields[p])
        if isinstance(face, str):
            reason, _, found = face.partition("\t")
            tally.drop(reason, f"row {ident}" + (f": {found}" if found else ""))
            continue
        target = cache / f"{ident}.png"
        if not target.is_file():  # the folder is named by the CSV's hash: present is current
            save_png(face, target)
        rows.append({"id": ident, "image": str(target), "source": CSV_READER,
                     "expression": FER_TO_AFFECTNET[number], "split": split})
    if unknown_usage:
        tally.note(_usage_note(unknown_usage))
    if not rows:
        raise no_records(where, tally, "rows")
    return tally.result(make_records(rows, where=where), CSV_READER, path)
