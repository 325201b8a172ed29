"""Reader for CK+ (the extended Cohn-Kanade dataset) as released: image sequences under
`cohn-kanade-images/S005/001/S005_001_00000001.png` and, for the 327 sequences with a validated
emotion, `Emotion/S005/001/S005_001_00000011_emotion.txt` naming the peak frame and its code.

Codes: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise. One
record per labelled sequence, its peak frame (the usual test protocol); `first_frame_neutral`
adds each labelled sequence's first frame as neutral (the 8-class protocol of many papers). The
frames are 640x490 with the shoulders and background, so each face is found and cropped once
into the cache (helpers.data.datasets.frames). One folder or zip holding both trees (the two
release zips unpacked side by side); the images are matched to the labels by file name, so the
wrappers above them do not matter. The 48x48 class-folder copies of CK+ need no cropping: the
class-folder reader reads them. Records have no split: as `--test-data` every frame is scored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers.core.archive import ArchiveLimits
from helpers.core.errors import DataError
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

READER = "ckplus"
EMOTION = re.compile(r"^(S\d+_\d+)_(\d+)_emotion\.txt$", re.IGNORECASE)
FRAME = re.compile(r"^(S\d+_\d+)_(\d+)$", re.IGNORECASE)
CODES: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sadness",
    7: "surprise",
}
_MAX_LABEL_BYTES = 256  # an emotion file holds one number


def looks_like_ckplus(path: str | os.PathLike) -> bool:
    """A folder or zip with CK+ emotion files (S005_001_00000011_emotion.txt) and images."""
    names = file_names(Path(path))
    return any(EMOTION.match(n) for n in names) and any(
        Path(n).suffix.lower() in IMAGE_EXTENSIONS and FRAME.match(Path(n).stem) for n in names
    )


def _code(text: bytes) -> int | None:
    """The emotion code of a label file ('   3.0000000e+00'), or None when it is not one."""
    try:
        value = float(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return int(value) if value.is_integer() and int(value) in CODES else None


def _sequences(tree: FileTree, tally: Tally) -> tuple[dict[str, dict[int, str]], list[str]]:
    """Images by sequence (S005_001 -> frame number -> member) and the emotion files."""
    frames: dict[str, dict[int, str]] = {}
    labels = []
    for parts in tree.files(tally):
        member, name = "/".join(parts), parts[-1]
        if EMOTION.match(name):
            labels.append(member)
        elif Path(name).suffix.lower() in IMAGE_EXTENSIONS and (m := FRAME.match(Path(name).stem)):
            frames.setdefault(m.group(1).upper(), {}).setdefault(int(m.group(2)), member)
        elif Path(name).suffix.lower() != ".txt":  # landmark and FACS files are expected
            tally.drop("not a CK+ frame or emotion file", member)
    return frames, labels


def read_ckplus(
    path: str | os.PathLike,
    *,
    first_frame_neutral: bool = False,
    cache_dir: str | os.PathLike | None = None,
    margin: float = DEFAULT_MARGIN,
    workers: int | None = None,
    limits: ArchiveLimits | None = None,
    progress: bool = True,
) -> ReadResult:
    """Records (the peak frame of each labelled sequence, its face cropped into the cache)."""
    margin = check_crop(margin, workers, READER)
    path = frames_source(path, "holding cohn-kanade-images/ and Emotion/")
    tally = Tally()
    chosen: list[Frame] = []
    with FileTree(path, limits or ArchiveLimits()) as tree:
        frames, labels = _sequences(tree, tally)
        for member in sorted(labels):
            match = EMOTION.match(member.rsplit("/", 1)[-1])
            assert match is not None  # _sequences kept matching names only
            sequence, peak = match.group(1).upper(), int(match.group(2))
            subject = sequence.split("_")[0]  # S005_001: subject S005, sequence 001
            try:
                code = _code(tree.read(member)[:_MAX_LABEL_BYTES])
            except (DataError, OSError):
                code = None
            if code is None:
                tally.drop("unreadable emotion file (one code, 0-7)", member)
                continue
            images = frames.get(sequence, {})
            if peak not in images:
                tally.drop("labelled frame missing", member)
                continue
            label = SYNONYMS[CODES[code]]
            chosen.append(
                Frame(
                    f"{sequence}_{peak:08d}",
                    tree.reference(images[peak]),
                    label,
                    images[peak],
                    subject,
                )
            )
            first = min(images)
            if first_frame_neutral and first != peak:
                chosen.append(
                    Frame(
                        f"{sequence}_{first:08d}",
                        tree.reference(images[first]),
                        SYNONYMS["neutral"],
                        images[first],
                        subject,
                    )
                )
        used = [frame.where for frame in chosen]
        key = fingerprint(path, [*used, *labels], margin)
    return frames_result(
        path,
        chosen,
        reader=READER,
        key=key,
        tally=tally,
        what="labelled CK+ frames",
        cache_dir=cache_dir,
        margin=margin,
        workers=workers,
        progress=progress,
    )
