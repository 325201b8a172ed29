"""Reader for RAF-DB basic (the Real-world Affective Faces Database, seven classes), in either of
the two layouts it circulates in:

- as released: `basic/EmoLabel/list_patition_label.txt` (one `train_00001.jpg 5` per face, the
  file name's spelling is the release's) and the aligned faces `basic/Image/aligned/
  train_00001_aligned.jpg` (100x100, already cropped);
- the common redistribution: `DATASET/train/<1-7>/train_00001_aligned.jpg` and `DATASET/test/...`,
  the label in the folder's name.

Codes: 1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral (no contempt).
The official split is kept (train -> train, test -> test; notebook 03 carves validation from
train). A folder or a zip. Only the aligned faces are read: the original photos
(`Image/original/`) hold whole scenes, and the annotations' 5 or 37 landmarks are not the
records' 68. The compound set (eleven classes, codes up to 11) is refused by name, so its codes are
never read as basic ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers.core.archive import ArchiveLimits
from helpers.core.errors import DataError
from helpers.core.labels import SYNONYMS
from helpers.core.progress import bar as progress_bar
from helpers.core.records import make_records
from helpers.data.datasets import ReadResult, Tally
from helpers.data.datasets.folders import (
    IMAGE_EXTENSIONS,
    FileTree,
    class_groups,
    file_names,
    image_folders,
    is_zip,
    read_class_tree,
)

READER = "rafdb"
CODES: dict[int, str] = {
    1: "surprise",
    2: "fear",
    3: "disgust",
    4: "happy",
    5: "sad",
    6: "anger",
    7: "neutral",
}
LABEL_FILE = "list_patition_label.txt"  # sic: the release's spelling
# train_00001.jpg (the label file) and train_00001_aligned.jpg (the faces), case as released
FACE = re.compile(r"^(train|test)_(\d+)(_aligned)?\.[A-Za-z]+$", re.IGNORECASE)
_MIN_CODE_FOLDERS = 4  # folders named 1-7 in train/ and test/ before a tree counts as RAF-DB's
_MAX_LABEL_BYTES = 16 << 20  # the release's: 15,339 lines, about 280 kB


def raf_class_index(name: str) -> int | None:
    """Shared index of a redistribution's class folder ('4' -> happy), None for anything else."""
    code = name.strip()
    return SYNONYMS[CODES[int(code)]] if code.isdigit() and int(code) in CODES else None


def _is_face(name: str) -> bool:
    """An image named like a RAF-DB face (train_00001.jpg, test_0001_aligned.jpg)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and bool(FACE.match(name))


def _looks_like_redistribution(path: Path) -> bool:
    """train/ and test/ side by side whose class folders are RAF-DB codes, holding RAF-DB names."""
    groups = class_groups(image_folders(path))
    for base in {base for base, _ in groups}:
        train, test = groups.get((base, "train"), set()), groups.get((base, "test"), set())
        codes = {n for n in train | test if raf_class_index(n) is not None}
        if train and test and codes == train | test and len(codes) >= _MIN_CODE_FOLDERS:
            return True
    return False


def looks_like_rafdb(path: str | os.PathLike) -> bool:
    """RAF-DB's label file (its name is the release's alone), or its redistribution's numbered
    class folders holding faces named like RAF-DB's (train_00001_aligned.jpg)."""
    names = [n.rsplit("/", 1)[-1] for n in file_names(Path(path))]
    if any(n.lower() == LABEL_FILE for n in names):
        return True
    faces = sum(_is_face(n) for n in names)
    return faces * 2 > len(names) and _looks_like_redistribution(Path(path))


def _label_file(path: Path, members: list[str]) -> str:
    """The basic set's label file; a tree holding only the compound set's is refused by name."""
    found = [m for m in members if m.rsplit("/", 1)[-1].lower() == LABEL_FILE]
    if not found:  # listed, yet not a regular file (a dangling link, a FIFO)
        raise DataError(path, f"its {LABEL_FILE} cannot be read as a file")
    basic = [m for m in found if "compound" not in m.lower()]
    if not basic:
        raise DataError(
            f"{path} ({found[0]})",
            "the compound set's labels (eleven classes): this reader reads RAF-DB basic",
        )
    return basic[0]


def _labels(text: bytes, path: Path, member: str, tally: Tally) -> dict[str, tuple[int, str]]:
    """Face stem (train_00001) -> (shared label index, split) from the label file's lines."""
    try:
        lines = text.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"{path} ({member})", f"not a text file ({error.reason})") from None
    labels: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{member}:{number}"
        match = FACE.match(fields[0])
        code = fields[-1]
        if len(fields) not in (2, 3) or not match or not code.isdigit():
            tally.drop("label line not `train_00001.jpg 5`", where)
        elif int(code) not in CODES:
            if int(code) > max(CODES):
                raise DataError(
                    f"{path} ({where})",
                    f"code {code}: the compound set's labels (up to 11); this reader reads "
                    "RAF-DB basic (codes 1-7)",
                )
            tally.drop("code not 1-7", where)
        else:
            stem = f"{match.group(1).lower()}_{match.group(2)}"
            if stem in labels:
                tally.drop("face labelled twice", where)
                continue
            labels[stem] = (SYNONYMS[CODES[int(code)]], match.group(1).lower())
    return labels


def _aligned_faces(members: list[str], source: str, tally: Tally) -> dict[str, str]:
    """Face stem (train_00001) -> its aligned image; the original photos and the annotations are
    counted in a note each (expected, not read), anything else is dropped by name."""
    faces: dict[str, str] = {}
    originals = annotations = 0
    for member in members:
        name = member.rsplit("/", 1)[-1]
        match = FACE.match(name)
        if member == source or name.lower() == LABEL_FILE:
            continue
        if match and match.group(3) and _is_face(name):
            stem = f"{match.group(1).lower()}_{match.group(2)}"
            if stem in faces:  # the same face as .jpg and .png
                tally.drop("duplicate id", member)
            else:
                faces[stem] = member
        elif match and _is_face(name):
            originals += 1
        elif Path(name).suffix.lower() == ".txt":
            annotations += 1
        else:
            tally.drop("not a RAF-DB face or label file", member)
    if originals:
        tally.note(
            f"{originals:,} original photos (Image/original/) not read: the aligned faces are"
        )
    if annotations:
        tally.note(
            f"{annotations:,} annotation files not read (5 or 37 landmarks; records hold 68)"
        )
    return faces


def _read_release(path: Path, limits: ArchiveLimits, progress: bool) -> ReadResult:
    """The layout as released: the label file and Image/aligned/."""
    tally = Tally()
    with FileTree(path, limits) as tree:
        members = ["/".join(parts) for parts in tree.files(tally)]
        source = _label_file(path, members)
        try:
            text = tree.read(source)
        except OSError as error:
            raise DataError(f"{path} ({source})", f"cannot be read ({error})") from None
        if len(text) > _MAX_LABEL_BYTES:
            raise DataError(
                f"{path} ({source})",
                f"{len(text):,} bytes, not a label file (the release's is about 280 kB)",
            )
        labels = _labels(text, path, source, tally)
        faces = _aligned_faces(members, source, tally)
        rows = []
        for stem, (label, split) in progress_bar(
            sorted(labels.items()), desc=f"Reading {path.name}", unit=" faces", disable=not progress
        ):
            member = faces.pop(stem, None)
            if member is None:
                tally.drop("labelled face missing (no Image/aligned/ file)", stem)
                continue
            if not (ok := tree.looks_like_image(member)):
                tally.drop("unreadable image" if ok is None else "not an image", member)
                continue
            rows.append(
                {
                    "id": stem,
                    "image": tree.reference(member),
                    "source": READER,
                    "expression": label,
                    "split": split,
                }
            )
        for member in sorted(faces.values()):
            tally.drop("aligned face without a label", member)
    if not rows:
        packed = [m for m in members if m.rsplit("/", 1)[-1].lower() == "aligned.zip"]
        if packed:
            raise DataError(
                f"{path} ({packed[0]})",
                "the aligned faces are still in this zip: unzip it where it lies (with the "
                "password the RAF-DB team sends), so that Image/aligned/ holds the faces",
            )
        reasons = ", ".join(f"{n:,} x {r}" for r, n in tally.dropped.items())
        raise DataError(path, f"no RAF-DB face could be read (dropped: {reasons or 'none'})")
    return tally.result(make_records(rows, where=str(path)), READER, path)


def read_rafdb(
    path: str | os.PathLike,
    *,
    limits: ArchiveLimits | None = None,
    progress: bool = True,
) -> ReadResult:
    """Records (one per aligned face, the official split kept) from RAF-DB basic, released or
    redistributed in numbered class folders; a folder or a zip."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "not found")
    if not path.is_dir() and not is_zip(path):
        raise DataError(path, "expected a folder or a .zip holding RAF-DB basic")
    limits = limits or ArchiveLimits()
    if any(n.rsplit("/", 1)[-1].lower() == LABEL_FILE for n in file_names(path)):
        return _read_release(path, limits, progress)
    return read_class_tree(
        path, reader=READER, class_index=raf_class_index, limits=limits, progress=progress
    )
