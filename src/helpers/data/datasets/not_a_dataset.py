"""What a path no reader takes holds, said plainly: a tar or RAR archive, an empty folder, one
photo, a video, a folder of zips. Cheap (a file's first bytes, a folder's listing), so a
caller can refuse such a path before any work starts.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from helpers.core.images import (
    HEIC_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    file_head,
    is_image_header,
    still_photo_format,
)
from helpers.core.paths import is_junk

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_OTHER_ARCHIVES = {b"Rar!\x1a\x07": "a RAR archive", b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive"}
_LISTED = 3
_UNPACK = "extract it and pass the folder, or re-pack it as a .zip"


def _is_tar(path: Path) -> bool:
    """A tar archive, plain or compressed, by its name or its contents."""
    if path.name.lower().endswith(TAR_SUFFIXES):
        return True
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError, ValueError):
        return False


def _file_problem(path: Path) -> str | None:
    """What a file that is no dataset holds: an archive no reader opens, a photo, a video."""
    head, suffix = file_head(path), path.suffix.lower()
    for magic, what in _OTHER_ARCHIVES.items():
        if head.startswith(magic):
            return f"{what}, which no reader opens: {_UNPACK}"
    if _is_tar(path):
        return f"a tar archive, which no reader opens: {_UNPACK}"
    photo = is_image_header(head) or still_photo_format(head) is not None
    if photo or (not head and suffix in IMAGE_EXTENSIONS | HEIC_EXTENSIONS):
        return "a single image, not a dataset (to predict its expression: python -m helpers.predict)"
    is_video = head[4:8] in (b"ftyp", b"moov", b"mdat") or head.startswith(b"\x1a\x45\xdf\xa3")
    if suffix in VIDEO_EXTENSIONS or is_video:
        return "a video, not a dataset (to predict its faces' expressions: python -m helpers.predict)"
    return None


def _folder_problem(path: Path) -> str | None:
    """What a folder that no reader takes holds: nothing, or zips and no images."""
    files: list[str] = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX"]
        rel = Path(folder).relative_to(path).parts
        files += ["/".join((*rel, n)) for n in names if not is_junk((*rel, n))]
    if not files:
        return "an empty folder (no files in it, hidden ones aside)"
    zips = sorted(f for f in files if f.lower().endswith(".zip"))
    images = [f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    if zips and not images:
        listed = ", ".join(zips[:_LISTED]) + (
            f" and {len(zips) - _LISTED} more" if len(zips) > _LISTED else ""
        )
        which = "the zip itself" if len(zips) == 1 else "one zip itself, or unzip them into one folder"
        return f"holds {listed} and no images: pass {which} (no reader opens a zip in a folder)"
    return None


def not_a_dataset(path: str | os.PathLike) -> str | None:
    """Why an existing path is no dataset any reader could take ('a tar archive, which no
    reader opens: extract it ...'), or None when it may be one."""
    path = Path(path)
    if path.is_dir():
        return _folder_problem(path)
    return _file_problem(path) if path.is_file() else None
