"""Reader for JAFFE (the Japanese Female Facial Expression database): 213 grayscale frames whose
file names carry the labels, e.g. `KA.AN1.39.tiff` (subject KA, anger, first take, image 39).

The codes AN, DI, FE, HA, NE, SA, SU are the seven classes present (no contempt). The frames
are 256x256 with hair and background around the face, so each face is found and cropped once
into the cache (helpers.data.datasets.frames). A folder or a zip, the files at any depth (the
release's `jaffe/` or `jaffedbase/` wrapper); copies converted to PNG or JPEG under the same
names work too. Records have no split: as `--test-data` every frame is scored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers.core.archive import ArchiveLimits
from helpers.core.faces import DEFAULT_MARGIN
from helpers.core.labels import SYNONYMS
from helpers.data.datasets import ReadResult, Tally
from helpers.data.datasets.folders import IMAGE_EXTENSIONS, FileTree, file_names
from helpers.data.datasets.frames import (
    Frame,
    check_crop,
    fingerprint,
    frames_result,
    frames_source,
)

READER = "jaffe"
# subject . expression code + take . image number . extension
NAME = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d+)\.(\d+)\.[A-Za-z]+$")
CODES: dict[str, str] = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
_MIN_NAMED = 7  # detection: at least this many JAFFE names, and most of the images


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def looks_like_jaffe(path: str | os.PathLike) -> bool:
    """A folder or zip whose images are mostly named like JAFFE's (KA.AN1.39.tiff)."""
    images = [name for name in file_names(Path(path)) if _is_image(name)]
    named = sum(bool(NAME.match(name)) for name in images)
    return named >= _MIN_NAMED and named * 2 > len(images)


def read_jaffe(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    margin: float = DEFAULT_MARGIN,
    workers: int | None = None,
    limits: ArchiveLimits | None = None,
    progress: bool = True,
) -> ReadResult:
    """Records (one per frame, the face cropped into the cache) from a JAFFE folder or zip."""
    margin = check_crop(margin, workers, READER)
    path = frames_source(path, "of JAFFE images")
    tally = Tally()
    frames: list[Frame] = []
    seen: set[str] = set()
    with FileTree(path, limits or ArchiveLimits()) as tree:
        members = []
        for parts in tree.files(tally):
            member, name = "/".join(parts), parts[-1]
            if not _is_image(name):
                tally.drop("not an image extension", member)
            elif not (match := NAME.match(name)):
                tally.drop("not a JAFFE file name (like KA.AN1.39.tiff)", member)
            elif (code := match.group(2).upper()) not in CODES:
                tally.drop(f"unknown expression code {code}", member)
            else:
                ident = f"{match.group(1).upper()}.{code}{match.group(3)}.{match.group(4)}"
                if ident in seen:  # the same frame as .tiff and .png
                    tally.drop("duplicate id", member)
                    continue
                seen.add(ident)
                label = SYNONYMS[CODES[code]]
                subject = match.group(1).upper()
                frames.append(Frame(ident, tree.reference(member), label, member, subject))
                members.append(member)
        key = fingerprint(path, members, margin)
    return frames_result(
        path,
        frames,
        reader=READER,
        key=key,
        tally=tally,
        what="JAFFE frames",
        cache_dir=cache_dir,
        margin=margin,
        workers=workers,
        progress=progress,
    )
