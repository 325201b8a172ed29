"""Reader for class-per-folder image trees: <class>/<image>, optionally under train/val/test/.

Works on a folder or a zip (members read in place). Class folder names map to the shared label
space by name (helpers.core.labels.expression_index, so 'happiness' and 'Angry' both work). Images
are not decoded: each file's first bytes are checked against known image signatures, which
costs well under a second for FER-2013's 32,298 files. The FER-2013 image-folder reader
(helpers.data.datasets.fer2013) is this reader with the seven FER names and its own detection.
"""
from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from helpers.core.progress import bar as progress_bar

from helpers.core.archive import ArchiveLimits, open_zip, read_head, read_member
from helpers.data.datasets import ReadResult, Tally, dropped_text
from helpers.core.errors import DataError
from helpers.core.images import (IMAGE_EXTENSIONS, MULTI_FRAME_MAGIC, frame_count, frames_in,
                                  header_size, is_image_header, make_uri, tiff_next_page,
                                  unsupported_image)
from helpers.core.labels import EXPRESSIONS, accepted_names, expression_index
from helpers.core.paths import is_junk
from helpers.core.records import make_records
from helpers.core.words import counted

READER = "folders"
# IMAGE_EXTENSIONS: the formats helpers.core.images decodes (AVIF where Pillow does); anything
# else is counted, not crashed on, and a HEIC photo is named as one.

# FER-2013's Usage values (any case), read as the challenge's three-way protocol: the one
# table for split folders named so and for the CSV reader's "standard" preset.
FER_USAGE_SPLITS: dict[str, str] = {"training": "train", "publictest": "val", "privatetest": "test"}
# Split folder names (any case) for every reader: the usual words, FER-2013's Usage values
# and the `_set` names of AffectNet-style trees. A folder of class folders beside these under
# another name is refused (_check_split_folders), so a held-out set is never re-split into
# training.
SPLIT_NAMES: dict[str, str] = {
    "train": "train", "train_set": "train", "trainset": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "val_set": "val",
    "valset": "val", "validation_set": "val",
    "test": "test", "testing": "test", "test_set": "test", "testset": "test",
    "holdout": "test", "heldout": "test", "held_out": "test",
    **FER_USAGE_SPLITS,
}
_DETECT_DEPTH = 4  # folders below the root looked at by detection (wrapper/split/class/...)
_HEAD_BYTES = 32  # an image signature, or an ISO media file's brands (AVIF or HEIC)
_TIFF_HEAD_BYTES = 4096  # holds the first page directory of most TIFFs that put it first
# A class folder numbered in front of its name: '0_disgust', '3-happy', '07 neutral'.
_INDEXED = re.compile(r"^\d{1,2}\s*[-_. ]\s*(?P<name>\D.*)$")
# Whole photos among face crops: of every image whose header the reader read (and, where it
# read none, check_headers=False, of up to _PHOTO_SAMPLE images spread over the source), those
# whose header declares a long side of _PHOTO_SIDE px or more, _PHOTO_RATIO times the short one
# (a 3:4 phone photo; face crops are about square). Most headers fit in a few KB; a JPEG's size
# may sit after an EXIF block (its thumbnail), up to 64 KB in.
_PHOTO_SAMPLE = 64
_PHOTO_SIDE = 400
_PHOTO_RATIO = 1.25
_SIZE_HEAD = 4096
_JPEG_SIZE_HEAD = 64 * 1024
_LISTED = 8  # folder names quoted in the message of a tree no reader recognises
_NAMING = ("class folders are named, in any case and optionally after an index (0_disgust, "
           f"3-happy): {accepted_names()}")

ClassIndex = Callable[[str], "int | None"]
Parts = tuple[str, ...]


def split_of(folder: str | None) -> str | None:
    """The split a folder name stands for ('Training' -> 'train'), or None."""
    return SPLIT_NAMES.get(folder.strip().lower()) if folder else None


def split_names_text() -> str:
    """The split names known, grouped by split, for messages: 'train (training, ...); ...'."""
    return "; ".join(
        f"{split} ({', '.join(n for n, s in SPLIT_NAMES.items() if s == split and n != split)})"
        for split in ("train", "val", "test")
    )


def is_zip(path: Path) -> bool:
    """A regular file that zipfile recognises (cheap: reads the end of the file)."""
    return path.is_file() and zipfile.is_zipfile(path)


def _tidy(found: Iterable[Parts]) -> list[Parts]:
    """Sorted file paths without OS junk."""
    return sorted(p for p in found if p and p[-1] and not is_junk(p))


def image_folders(path: Path) -> set[Parts]:
    """Folders (as parts) directly holding an image-extension file; cheap enough for detect."""
    if path.is_dir():
        found: set[Parts] = set()
        for folder, dirs, files in os.walk(path):
            rel = Path(folder).relative_to(path).parts
            if len(rel) >= _DETECT_DEPTH:
                dirs.clear()
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX"]
            if rel and any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in files):
                found.add(rel)
        return found
    if not is_zip(path):
        return set()
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return {parts[:-1] for n in names
            if len(parts := tuple(n.replace("\\", "/").split("/"))) >= 2
            and not is_junk(parts) and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS}


def _listed(path: Path) -> list[Parts]:
    """Every non-junk file under a folder or in a zip, as parts, from the listing alone (no file
    opened): cheap enough for a reader's detect; [] for anything else."""
    if path.is_dir():
        found: list[Parts] = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX"]
            rel = Path(folder).relative_to(path).parts
            found += [(*rel, name) for name in files]
    elif is_zip(path):
        with zipfile.ZipFile(path) as zf:
            found = [tuple(n.replace("\\", "/").split("/")) for n in zf.namelist()]
    else:
        return []
    return _tidy(found)


def image_files(path: Path) -> list[Parts]:
    """Every image-extension file under a folder or in a zip, as parts (_listed)."""
    return [p for p in _listed(path) if Path(p[-1]).suffix.lower() in IMAGE_EXTENSIONS]


def file_names(path: Path) -> list[str]:
    """The names (last part) of every non-junk file under a folder or in a zip (_listed)."""
    return [parts[-1] for parts in _listed(path)]


def class_groups(folders: Iterable[Parts]) -> dict[tuple[Parts, str | None], set[str]]:
    """Image folders grouped as (wrapper parts, split or None) -> class folder names."""
    groups: dict[tuple[Parts, str | None], set[str]] = {}
    for parts in folders:
        parent = parts[:-1]
        split = split_of(parent[-1]) if parent else None
        base = parent[:-1] if split else parent
        groups.setdefault((base, split), set()).add(parts[-1])
    return groups


def folder_class_index(name: str) -> int | None:
    """Shared index of a class folder: an expression name, or one after an index ('0_disgust',
    '3-happy'). The name decides; the number is ignored, as datasets order classes differently."""
    index = expression_index(name)
    if index is None and (match := _INDEXED.match(name.strip())):
        index = expression_index(match["name"])
    return index


def _up_to_class(parts: Parts) -> Parts:
    """A folder's parts up to the deepest one named after an expression (happy/person01 ->
    happy), where the images of its sub-folders are read as its class."""
    for position in range(len(parts) - 1, -1, -1):
        if folder_class_index(parts[position]) is not None:
            return parts[:position + 1]
    return parts


def looks_like_class_folders(path: str | os.PathLike) -> bool:
    """At least two folders named after expressions side by side, holding images (directly or
    in sub-folders)."""
    path = Path(path)
    groups = class_groups({_up_to_class(parts) for parts in image_folders(path)})
    return any(sum(folder_class_index(name) is not None for name in names) >= 2
               for names in groups.values())


def unmapped_class_folders(path: str | os.PathLike) -> str | None:
    """Why folders of images are not read as class folders (names that are no expression, or a
    single class), with the names accepted; None when the source holds no folders of images."""
    groups = class_groups(image_folders(Path(path)))
    if not groups:
        return None
    names = sorted(min(groups.values(), key=lambda found: (-len(found), sorted(found))))
    known = [f"{n}/" for n in names if folder_class_index(n) is not None]
    unknown = [f"{n}/" for n in names if folder_class_index(n) is None]
    if len(known) >= 2:
        return None
    if unknown:
        more = f" and {len(unknown) - _LISTED} more" if len(unknown) > _LISTED else ""
        said = (f"folders of images whose names are not expressions: "
                f"{', '.join(unknown[:_LISTED])}{more}"
                + (f" (only {known[0]} is one)" if known else ""))
    else:
        said = (f"a single class folder ({known[0]}): detection needs two or more side by "
                "side (reader='folders' reads one class)")
    return f"{said}; {_NAMING}"


def _common_prefix(entries: list[Parts]) -> int:
    """How many leading folders every kept file shares (a wrapper like 'fer2013/')."""
    if not entries:
        return 0
    first = entries[0][:-1]
    n = len(first)
    for parts in entries[1:]:
        folders = parts[:-1]
        n = min(n, len(folders))
        while n and folders[:n] != first[:n]:
            n -= 1
        if not n:
            break
    return n


class FileTree:
    """The files of a folder or of a validated zip: listing, contents, references (the readers
    of class folders, JAFFE and CK+ share it)."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.path = path
        self.root = path.resolve()
        self.zf = None if path.is_dir() else open_zip(path, limits)
        self.members: dict[str, str] = {}  # '/'-joined parts -> the zip's own member name

    def __enter__(self) -> FileTree:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zf is not None:
            self.zf.close()

    def files(self, tally: Tally) -> list[Parts]:
        """Every non-junk file as path parts, sorted ('\\' separators from Windows zips too).

        Folders: symlinked folders are followed (each real folder read once, so a link loop
        ends); anything that is not a regular file (a FIFO, a socket, a device) is counted, not
        opened: reading a FIFO would wait forever.
        """
        if self.zf is not None:
            self.members = {n.replace("\\", "/"): n for n in self.zf.namelist()
                            if not n.endswith(("/", "\\"))}
            return _tidy(tuple(n.split("/")) for n in self.members)
        found, visited = [], set()
        for folder, dirs, files in os.walk(self.path, followlinks=True):
            rel = Path(folder).relative_to(self.path).parts
            real = os.path.realpath(folder)
            if real in visited:
                dirs.clear()
                tally.drop("folder reached twice through a symlink", "/".join(rel) + "/")
                continue
            visited.add(real)
            for name in files:
                parts = rel + (name,)
                try:
                    regular = stat.S_ISREG(os.stat(os.path.join(folder, name)).st_mode)
                except OSError:  # a dangling symlink
                    tally.drop("unreadable image", "/".join(parts))
                    continue
                if regular:
                    found.append(parts)
                elif not is_junk(parts):
                    tally.drop("not a regular file", "/".join(parts))
        return _tidy(found)

    def head(self, member: str, n: int = _HEAD_BYTES) -> bytes | None:
        """The file's first n bytes; None when it cannot be read."""
        try:
            if self.zf is not None:
                return read_head(self.zf, self.members.get(member, member), n)
            with open(self.path / member, "rb") as f:
                return f.read(n)
        except (DataError, OSError):
            return None

    def looks_like_image(self, member: str) -> bool | None:
        """Whether the file starts like an image; None when it cannot be read."""
        head = self.head(member)
        return None if head is None else is_image_header(head)

    def frames(self, member: str, head: bytes) -> int:
        """How many pages or frames a TIFF or GIF holds (other files: 1). A TIFF whose first
        page directory, near its start, says there is no second costs a few KB; otherwise a
        file is opened lazily (Pillow follows the page directories or steps over the GIF
        frames) and a zip member, which cannot seek back without inflating again, read once."""
        if not head.startswith(MULTI_FRAME_MAGIC):
            return 1
        if not head.startswith((b"GIF87a", b"GIF89a")):
            longer = self.head(member, _TIFF_HEAD_BYTES)
            if longer is not None and tiff_next_page(longer) == 0:
                return 1
        try:
            if self.zf is not None:
                return frame_count(self.read(member))
            with open(self.path / member, "rb") as f:
                return frames_in(f)
        except (DataError, OSError):
            return 1

    def read(self, member: str) -> bytes:
        """A whole (small) file, from the folder or the validated zip; DataError or OSError."""
        if self.zf is not None:
            return read_member(self.zf, self.members.get(member, member))
        return (self.path / member).read_bytes()

    def reference(self, member: str) -> str:
        """The records' image column: a zip URI or an absolute file path."""
        if self.zf is not None:
            return make_uri(self.path, self.members.get(member, member))
        return str(self.root / member)


def _class_folder(parts: Parts, class_index: ClassIndex) -> tuple[int, int] | None:
    """(position in parts, label) of the deepest folder named after a class, so that images
    sorted further by person or shoot (happy/person01/x.jpg) are read as that class."""
    for position in range(len(parts) - 2, -1, -1):
        label = class_index(parts[position])
        if label is not None:
            return position, label
    return None


Kept = tuple[Parts, int, "str | None", int]  # (parts, label, split, class folder's position)


def _classify(files: list[Parts], class_index: ClassIndex, tally: Tally) -> list[Kept]:
    """(parts, label, split, position of the class folder in parts) of the files in known
    class folders or their sub-folders; the others counted. A file with another extension in
    a class folder is kept for its first bytes to decide (a JPEG named .heic is an image)."""
    kept: list[Kept] = []
    unknown_folders: set[Parts] = set()
    for parts in files:
        member = "/".join(parts)
        named = Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS
        found = _class_folder(parts, class_index)
        if not named and found is None:
            tally.drop("not an image extension", member)
        elif len(parts) < 2:
            tally.drop("file outside a class folder", member)
        elif found is None:
            # One example per folder: the folder name is what the user needs to see.
            new = parts[:-1] not in unknown_folders
            unknown_folders.add(parts[:-1])
            tally.drop("unknown class folder", "/".join(parts[:-1]) + "/" if new else None)
        else:
            position, label = found
            split = split_of(parts[position - 1]) if position else None
            kept.append((parts, label, split, position))
    return kept


def _check_split_folders(path: Path, kept: list[Kept], tally: Tally) -> None:
    """Folders of class folders side by side (or beside class folders) are split folders: one
    with a name no split has, beside known ones, is refused (its faces would be re-split into
    training, though it is most likely a held-out set); others no split names are noted."""
    levels: dict[Parts, set[str]] = {}  # the folder above split folders -> their names
    holds_classes: set[Parts] = set()  # folders holding class folders directly
    for parts, _, _, position in kept:
        holds_classes.add(parts[:position])
        if position:
            levels.setdefault(parts[:position - 1], set()).add(parts[position - 1])
    for above, names in sorted(levels.items()):
        unknown = sorted(n for n in names if split_of(n) is None)
        if not unknown or (len(names) < 2 and above not in holds_classes):
            continue  # a lone wrapper folder ('fer2013/') names no split
        where = "/".join(above) + "/" if above else ""
        listed = ", ".join(f"{where}{n}/" for n in unknown)
        known = sorted(n for n in names if split_of(n) is not None)
        verb, name, it = (("holds", "its name is", "it") if len(unknown) == 1
                          else ("hold", "their names are", "them"))
        if known:
            beside = ", ".join(f"{n}/" for n in known)
            raise DataError(path, f"{listed} {verb} class folders beside the split folders "
                                  f"{beside} but {name} no split's: rename {it} to train/, val/ "
                                  f"or test/ (or move {it} out), or the faces would be re-split "
                                  f"into training; split names: {split_names_text()}")
        tally.note(f"{listed} {verb} class folders but {name} no split's: notebook 03 draws "
                   f"the split for {'its' if it == 'it' else 'their'} images; split names: "
                   f"{split_names_text()}")


def note_read_by_content(tally: Tally, members: list[str]) -> None:
    """Say which images were kept by their first bytes though their extension is another."""
    if members:
        tally.note(f"{len(members):,} image(s) named with another extension read by their "
                   f"content, e.g. {', '.join(members[:2])}")


def note_multi_frame(tally: Tally, members: list[str]) -> None:
    """Say which files hold several pages or frames, of which training uses the first."""
    if members:
        tally.note(f"{len(members):,} multi-page TIFF or animated GIF file(s): the first page "
                   f"or frame is used, e.g. {', '.join(members[:2])}")


def note_nested(tally: Tally, folders: list[str]) -> None:
    """Say how many images were read from sub-folders of class folders, and where."""
    if folders:
        shown = ", ".join(list(dict.fromkeys(folders))[:2])
        tally.note(f"{counted(len(folders), 'image')} in sub-folders of class folders read as "
                   f"that class, e.g. {shown}")


PHOTO_REASON = "whole photo, not a face crop"


_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                       0xCE, 0xCF})  # start-of-frame markers: the frame's size follows


def quick_size(head: bytes) -> tuple[int, int] | None:
    """(height, width) of a PNG or JPEG read from its header bytes by hand (Pillow's open costs
    ~0.1 ms a file, which over every image of a large set adds up); None for other formats, or
    a JPEG whose frame header lies past `head`."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_SOF:
            return (int.from_bytes(head[at + 5:at + 7], "big"),
                    int.from_bytes(head[at + 7:at + 9], "big"))
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        at += 2 + int.from_bytes(head[at + 2:at + 4], "big")
    return None


def image_size(tree: FileTree, member: str, head: bytes | None = None) -> tuple[int, int] | None:
    """(height, width) from an image's header (its first _SIZE_HEAD bytes, read here unless
    given), None where it does not say."""
    if head is None:  # one given is the file's first _SIZE_HEAD bytes, or the whole file
        head = tree.head(member, _SIZE_HEAD)
    size = (quick_size(head) or header_size(head)) if head else None
    if size is None and head and head.startswith(b"\xff\xd8") and len(head) == _SIZE_HEAD:
        longer = tree.head(member, _JPEG_SIZE_HEAD)
        size = header_size(longer) if longer else None
    return size


def note_whole_photos(tree: FileTree, members: list[str], tally: Tally,
                      sizes: dict[str, tuple[int, int] | None] | None = None) -> None:
    """Say when class folders hold whole photos rather than face crops: they are trained on as
    they are, while the predictor crops each face, so training and use would see different
    framings. `sizes`: the sizes of the images whose headers were read already, by member; of
    the rest, a sample of up to _PHOTO_SAMPLE is read (a few KB each), so that a reader told not
    to open its files opens few. Each photo is listed among the kept records' flags."""
    sizes = sizes or {}
    unread = [member for member in members if member not in sizes]
    sample = set(unread[::max(1, -(-len(unread) // _PHOTO_SAMPLE))])  # spread over them all
    checked = [member for member in members if member in sizes or member in sample]
    photos = []
    for member in checked:
        size = sizes[member] if member in sizes else image_size(tree, member)
        if size and max(size) >= _PHOTO_SIDE and max(size) >= _PHOTO_RATIO * min(size):
            photos.append((member, size))
            tally.flag(PHOTO_REASON, member)
    if photos:
        member, (height, width) = photos[0]
        of = (f"{len(members):,}" if len(checked) == len(members)
              else f"{len(checked):,} checked (a sample of {len(members):,})")
        look = ("looks like a whole photo, not a face crop" if len(photos) == 1
                else "look like whole photos, not face crops")
        tally.note(f"{counted(len(photos), 'image')} of {of} {look} "
                   f"(e.g. {member}, {width}x{height}: large and far from square; all listed in "
                   "ingest_report.csv); class folders are trained on as they are: crop the faces "
                   "first, or list each face's box in a face-box CSV, whose reader crops them")


def note_merged_folders(kept: list[Kept], tally: Tally) -> None:
    """Say which differently named class folders were read as one class (joy/ and happiness/
    as Happy, Happy/ and happy/): folders a researcher meant as two classes are pooled."""
    names: dict[int, set[str]] = {}
    for parts, label, _, position in kept:
        names.setdefault(label, set()).add(parts[position])
    merged = [
        f"{', '.join(f'{n}/' for n in sorted(found))} as {EXPRESSIONS[label]}"
        for label, found in sorted(names.items())
        if len(found) > 1
    ]
    if merged:
        tally.note(f"folders of different names read as one class: {'; '.join(merged)} (move "
                   "one out if they are different classes)")


def read_class_tree(path: str | os.PathLike, *, reader: str = READER,
                    class_index: ClassIndex = folder_class_index, check_headers: bool = True,
                    limits: ArchiveLimits | None = None, progress: bool = True) -> ReadResult:
    """Records from a class-per-folder tree (folder or zip); raises DataError if none usable."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "not found")
    if not path.is_dir() and not is_zip(path):
        raise DataError(path, "expected a folder or a .zip of class folders")
    tally = Tally()
    with FileTree(path, limits or ArchiveLimits()) as tree:
        kept = _classify(tree.files(tally), class_index, tally)
        _check_split_folders(path, kept, tally)
        note_merged_folders(kept, tally)
        skip = _common_prefix([parts for parts, _, _, _ in kept])
        rows, seen = [], set()
        renamed: list[str] = []
        multi: list[str] = []
        nested: list[str] = []
        read: list[str] = []
        sizes: dict[str, tuple[int, int] | None] = {}
        for parts, label, split, position in progress_bar(kept, desc=f"Reading {path.name}", unit=" files",
                                        disable=not progress, mininterval=0.5):
            member = "/".join(parts)
            named = Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS
            # enough bytes for the signature and, for the whole-photo check, the image's size
            head = tree.head(member, _SIZE_HEAD) if check_headers or not named else b""
            image = head is not None and is_image_header(head)
            if (check_headers or not named) and not image:
                said = unsupported_image(head) if head else None
                tally.drop(said or ("not an image extension" if not named else
                                    "unreadable image" if head is None else "not an image"),
                           member)
                continue
            if not named:
                renamed.append(member)
            if head and tree.frames(member, head) > 1:
                multi.append(member)
            ident = "/".join(parts[skip:-1] + (Path(parts[-1]).stem,))
            if ident in seen:  # a.jpg beside a.png
                tally.drop("duplicate id", member)
                continue
            seen.add(ident)
            if position < len(parts) - 2:  # in a sub-folder of its class folder
                nested.append("/".join(parts[:-1]) + "/")
            rows.append({"id": ident, "image": tree.reference(member), "source": reader,
                         "expression": label, "split": split})
            read.append(member)
            if head:  # its size now, from the bytes read: no second read, no bytes kept
                sizes[member] = image_size(tree, member, head)
        note_whole_photos(tree, read, tally, sizes)
    if "unknown class folder" in tally.dropped and class_index is folder_class_index:
        tally.note(_NAMING)
    note_read_by_content(tally, renamed)
    note_multi_frame(tally, multi)
    note_nested(tally, nested)
    if not rows:
        reasons = dropped_text(tally.dropped, tally.examples)
        raise DataError(path, "no usable images in class folders (dropped: "
                              f"{reasons or 'no files found'})")
    return tally.result(make_records(rows, where=str(path)), reader, path)
