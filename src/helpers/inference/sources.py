"""The predictor's inputs: image files, folders, videos, zip references and arrays, each read
upright and checked, one verdict per input."""

from __future__ import annotations

import math
import os
import re
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from helpers.core.archive import ArchiveLimits, open_zip, read_head
from helpers.core.errors import DataError
from helpers.core.images import (
    HEAD_BYTES,
    HEIC_EXTENSIONS,
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    NOT_DECODED_HEIC,
    VIDEO_EXTENSIONS,
    ZIP_SCHEME,
    exif_orientation,
    file_head,
    is_image_header,
    make_uri,
    read_image,
    read_image_bytes,
    still_photo_format,
    to_8bit,
    turn_upright,
    unsupported_image,
)
from helpers.core.paths import is_junk
from helpers.core.preprocess import as_rgb
from helpers.core.quiet_import import stderr_without

BROKEN_LINK = "broken link"  # a Source's kind: a symbolic link whose target does not exist
UNREADABLE = "unreadable"  # a Source's kind: known not to be readable, its `problem` says why

# A zip given as an input is opened after its names and layout are checked (no member is
# extracted); each member read is bounded by read_image's own per-member limit.
_HUGE = 1 << 62
ZIP_LIMITS = ArchiveLimits(
    max_members=_HUGE, max_member_bytes=_HUGE, max_total_bytes=_HUGE, max_ratio=float("inf")
)

MAX_FPS = 1000.0  # above it a stated frame rate is a container's placeholder, not a camera's

# Lines the decoders (libjpeg, libtiff, FFmpeg) print on descriptor 2 while reading a damaged
# file: the file's own row already says whether it was read.
DECODER_NOISE = (
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Invalid SOS parameters",
    "Unsupported marker type",
    "libpng warning",
    "TIFFRead",
    "TIFFFetch",
    "TIFFFillStrip",
    "TIFFFillTile",
    "moov atom not found",
    "[mov,mp4,m4a,3gp,3g2,mj2 @",
    "[avi @",
    "[mjpeg @",
    "[matroska,webm @",
    "[h264 @",
    "[hevc @",
    "[mpeg4 @",
    "global cap_ffmpeg",
    "global cap.cpp",
)


def printable(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (kept by surrogateescape) become
    U+FFFD, so the name can go into the table, the output files and the terminal."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class Source:
    """One input: a still image file, a video file, or an in-memory array or Pillow image
    (notebooks, scripts)."""

    name: str
    # "image", "video", "array" (an array or a Pillow image), "missing", BROKEN_LINK, "empty"
    # (a folder with no media), UNREADABLE (what is wrong in `problem`)
    kind: str
    array: np.ndarray | None = field(default=None, repr=False, compare=False)
    problem: str | None = None
    picture: Image.Image | None = field(default=None, repr=False, compare=False)


def is_heic_header(data: bytes) -> bool:
    """Whether bytes start like a HEIC/HEIF/AVIF photo (an ISO media file of a still brand),
    so that it is taken as a photo, not as an MP4 video."""
    return still_photo_format(data) is not None


def is_video_header(data: bytes) -> bool:
    """Whether bytes start like a video container OpenCV may read: MP4/MOV (ISO media), AVI,
    Matroska/WebM, MPEG program stream, ASF (WMV)."""
    return (
        (data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide") and not is_heic_header(data))
        or (data[:4] == b"RIFF" and data[8:12] == b"AVI ")
        or data.startswith((b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))
        or data.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")
    )


def _kind(path: Path) -> str | None:
    """What a file holds, judged by its first bytes, so a JPEG named .heic or .mp4 is read as
    a photo and a video named .jpg as a video; by its extension where the bytes say neither
    (a damaged or empty file then gets its verdict); None for a file that is neither."""
    return _kind_of(file_head(path), path.suffix.lower())


def _kind_of(head: bytes, suffix: str) -> str | None:
    """_kind of a file or zip member from its first bytes and its lower-case extension."""
    if is_image_header(head) or is_heic_header(head):
        return "image"
    if is_video_header(head):
        return "video"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "image" if suffix in IMAGE_EXTENSIONS else None


def _is_under(path: Path, folders: tuple[Path, ...]) -> bool:
    """Whether a resolved path lies in one of the (resolved) folders."""
    return any(path == f or f in path.parents for f in folders)


def _walk(folder: Path, exclude: tuple[Path, ...]) -> Iterator[Path]:
    """Every file (and link to nothing) under a folder, through linked sub-folders too (an
    external drive or a cloud folder linked into a photo folder), each real folder once, so a
    link to a folder above it is no loop; OS junk and excluded paths passed over."""
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        here = Path(root)
        for name in files:
            p = here / name
            if not is_junk(p.relative_to(folder).parts) and not _is_under(p.resolve(), exclude):
                yield p
        kept = [
            d
            for d in dirs
            if not is_junk((here / d).relative_to(folder).parts)
            and not _is_under((here / d).resolve(), exclude)
        ]
        dirs[:] = sorted(kept, key=lambda d: ((here / d).is_symlink(), d))  # real ones first


def _folder_files(
    folder: Path, exclude: tuple[Path, ...]
) -> tuple[list[tuple[Path, str]], list[Path]]:
    """A folder's inputs (sorted) with their kind, and the files that hold no image or video, the
    excluded files and folders left out: the predictor's own outputs in an input folder are not
    read back as input. OS junk (`._name`, .DS_Store, hidden folders) is passed over as the
    dataset readers pass it over; a link to nothing is an input, so its row says so."""
    media: list[tuple[Path, str]] = []
    other: list[Path] = []
    for p in sorted(_walk(folder, exclude)):
        if p.is_symlink() and not p.exists():
            media.append((p, BROKEN_LINK))
        elif p.is_file():
            kind = _kind(p)
            if kind is None:
                other.append(p)
            else:
                media.append((p, kind))
    return media, other


def _media_note() -> str:
    """What makes a file an input, for a folder or archive that holds none."""
    return (
        "image or video files (by their first bytes, or extensions "
        f"{', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})"
    )


def _zip_members(path: Path) -> tuple[list[Source], list[str]]:
    """A zip's photos as zip:// inputs (sorted, each judged by its first bytes as a file is),
    and its other members; the archive is checked first (member names that point outside it,
    encryption, overlapping members), as the dataset readers check theirs. A video inside
    cannot be decoded from the archive and gets a row saying to extract it; a bad archive, or
    one with no image, is one row saying so."""
    try:
        with open_zip(path, ZIP_LIMITS) as archive:
            found: list[Source] = []
            other: list[str] = []
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                name = info.filename
                if info.is_dir() or is_junk(tuple(re.split(r"[/\\]", name))):
                    continue
                uri = make_uri(path, name)
                kind = _kind_of(read_head(archive, name, HEAD_BYTES), Path(name).suffix.lower())
                if kind == "image":
                    found.append(Source(uri, "image"))
                elif kind == "video":
                    found.append(Source(uri, UNREADABLE, problem=ZIPPED_VIDEO))
                else:
                    other.append(uri)
    except DataError as error:
        member = f" ({error.member})" if error.member else ""
        return [Source(str(path), UNREADABLE, problem=f"{error.problem}{member}")], []
    if not found:
        found = [Source(str(path), UNREADABLE, problem=f"zip archive holds no {_media_note()}")]
    return found, other


ZIPPED_VIDEO = "a video inside a zip archive cannot be decoded from it: extract it first"


def _is_zip(path: Path) -> bool:
    """Whether an input file is a zip archive to read the photos of (by its .zip extension,
    so an office document, itself a zip, stays a file that is not an image)."""
    return path.suffix.lower() == ".zip"


def expand_inputs(
    inputs: Any,
    exclude: Iterable[str | os.PathLike] = (),
    left_out: list[str | Path] | None = None,
) -> list[Source]:
    """Files, folders (recursive, sorted; their images and videos judged by their first bytes,
    by their extension where the bytes say neither), zip archives (their photos), zip:// image
    references, arrays (one RGB image, or a batch along the first axis) and Pillow images,
    in order.

    A file named twice (or reached twice through folders and links) is read once, where it
    first appears; linked sub-folders are searched too, each real folder once. Files and
    folders under `exclude` are left out; a folder's files that are neither an image nor a
    video are appended to `left_out` when it is given."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        inputs = list(inputs)
    elif isinstance(inputs, (str, os.PathLike, np.ndarray, Image.Image)):
        inputs = [inputs]
    skip = tuple(Path(p).resolve() for p in exclude)
    sources: list[Source] = []
    seen: set[str | Path] = set()

    def add(source: Source, key: str | Path) -> None:
        if key not in seen:
            seen.add(key)
            sources.append(source)

    for i, item in enumerate(inputs):
        if isinstance(item, np.ndarray):
            sources.append(Source(f"<array {i}>", "array", item))
            continue
        if isinstance(item, Image.Image):
            sources.append(Source(f"<image {i}>", "array", picture=item))
            continue
        if isinstance(item, str) and item.startswith(ZIP_SCHEME):
            add(Source(item, "image"), item)  # read_image checks archive and member
            continue
        path = Path(item)
        if path.is_dir():
            found, other = _folder_files(path, skip)
            for p, kind in found:
                add(Source(str(p), kind), p.absolute() if kind == BROKEN_LINK else p.resolve())
            if left_out is not None:
                left_out.extend(other)
            if not found:
                add(Source(str(path), "empty"), path.resolve())
        elif path.is_file() and _is_zip(path):
            members, others = _zip_members(path)
            for member in members:
                add(member, member.name)
            if left_out is not None:
                left_out.extend(others)
        elif path.is_file():
            add(Source(str(path), _kind(path) or "image"), path.resolve())
        else:
            add(Source(str(path), _special(path)), path.absolute())
    return sources


def _special(path: Path) -> str:
    """What a path that is neither a file nor a folder is: missing, a link to nothing, or a
    special file."""
    if path.is_symlink() and not path.exists():
        return BROKEN_LINK
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing"
    for test, what in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def _target(name: str) -> str:
    """Where a symbolic link points, as it was written."""
    try:
        return os.readlink(name)
    except OSError:
        return "?"


def check_pixels(image: np.ndarray, where: str) -> None:
    """The decompression-bomb limit of helpers.core.images, applied to arrays and video frames
    too."""
    h, w = image.shape[:2]
    if h * w > MAX_PIXELS:
        raise DataError(
            where, f"frame is {w}x{h} = {w * h:,} pixels, over the limit of {MAX_PIXELS:,}"
        )


def still_facts(name: str) -> tuple[int, int, str | None]:
    """(EXIF orientation, pages or frames, format) of a still image file, from one Pillow open
    of its header (no pixels decoded); (1, 1, None) for a zip member or where it cannot be
    told. A phone photo taken upright is stored sideways with orientation 6, and the face
    detector only finds upright faces."""
    if name.startswith(ZIP_SCHEME):
        return 1, 1, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(name) as im:
                orientation, kind = exif_orientation(im), im.format
                try:
                    count = int(getattr(im, "n_frames", 1))
                except (OSError, ValueError, SyntaxError, EOFError):
                    count = 1
    except (OSError, ValueError, SyntaxError, EOFError):
        return 1, 1, None
    return orientation, count, kind


def _picture_levels(picture: Image.Image, where: str) -> np.ndarray:
    """A Pillow image's pixels by its mode, as helpers.core.images reads a file of that mode
    (to_8bit); F as floats, for as_rgb's float rule."""
    if picture.mode == "F":
        return np.asarray(picture, np.float32)
    return np.asarray(to_8bit(picture, where))


def picture_pixels(picture: Image.Image, where: str) -> np.ndarray:
    """A Pillow image's pixels as a file of its mode is read (_picture_levels), turned upright
    by its EXIF orientation, as a photo file is; its size checked before any pixel is decoded,
    and one that cannot be decoded (a truncated file opened lazily) a DataError."""
    width, height = picture.size
    check_pixels(np.empty((height, width, 0), np.uint8), where)  # shape alone, no pixels
    try:
        orientation = exif_orientation(picture)
        pixels = _picture_levels(picture, where)
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise DataError(
            where, f"Pillow image of mode {picture.mode} cannot be read ({error})"
        ) from error
    return turn_upright(pixels, orientation)


def _read_still(name: str) -> np.ndarray:
    """An image file or zip member as RGB; a HEIC/HEIF photo (by its bytes or its name), or an
    AVIF one this Pillow cannot decode, says what it is and what to do, as the readers say."""
    try:
        return read_image(name, mode="rgb")
    except DataError as error:
        said = unsupported_image(_still_head(name))
        if said is None and Path(name).suffix.lower() in HEIC_EXTENSIONS:
            said = NOT_DECODED_HEIC
        if said is None:
            raise
        raise DataError(name, said) from error


def _still_head(name: str) -> bytes:
    """The first bytes of a file or zip member; b"" where it cannot be read."""
    if not name.startswith(ZIP_SCHEME):
        return file_head(name)
    try:
        return read_image_bytes(name)[:HEAD_BYTES]
    except DataError:
        return b""


def read_quietly(frames: Iterator[Any]) -> Iterator[Any]:
    """Each step of a reader with the decoders' own lines (DECODER_NOISE) kept off the
    terminal; everything else they print still shows."""
    end = object()
    while True:
        with stderr_without(DECODER_NOISE):
            item = next(frames, end)
        if item is end:
            return
        yield item


def video_fps(capture: Any) -> float | None:
    """The frames per second a video's container states; None where it states none or a value
    no camera records (some streams say 0 or 90,000), so times are left empty, not wrong."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.0 < fps <= MAX_FPS else None


def _size(name: str) -> int | None:
    """A file's size in bytes; None where it cannot be told (OpenCV then says what it can)."""
    try:
        return os.path.getsize(name)
    except OSError:
        return None


def still_note(count: int, kind: str | None) -> str | None:
    """What a still image file holds beyond the picture the predictor reads (its frame count
    and format, from still_facts): a multi-page TIFF or an animated GIF, WebP or PNG is read by
    its first page or frame alone."""
    if count < 2:
        return None
    what = "pages" if kind == "TIFF" else "frames"
    return f"holds {count} {what}: the first alone was read"


def stated_frames(capture: Any) -> int | None:
    """The frame count a video's container states; None where it states none."""
    count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
    return int(count) if math.isfinite(count) and count > 0 else None


def iter_frames(
    source: Source, every: int = 10, notes: list[str] | None = None
) -> Iterator[tuple[int | None, float | None, np.ndarray]]:
    """(frame index or None for stills, its time in seconds or None, RGB uint8 image);
    DataError when nothing is readable. `notes` gets a line for an input read in part: a
    multi-page or animated image read by its first frame, a video that ends before the frame
    count its container states (cut short or damaged)."""
    if source.kind == "missing":
        raise DataError(source.name, "file or folder not found")
    if source.kind == BROKEN_LINK:
        raise DataError(source.name, f"broken symbolic link (to {_target(source.name)}, not found)")
    if source.kind == UNREADABLE:
        raise DataError(source.name, source.problem or "cannot be read")
    if source.kind not in ("empty", "array", "image", "video"):
        raise DataError(source.name, f"{source.kind}, not an image, video or folder: not read")
    if source.kind == "empty":
        raise DataError(source.name, f"folder holds no {_media_note()}")
    if source.picture is not None:  # kind "array": a Pillow image
        image = as_rgb(picture_pixels(source.picture, source.name), source.name)
        check_pixels(image, source.name)
        yield None, None, image
        return
    if source.array is not None:  # kind "array"
        image = as_rgb(source.array, source.name)
        check_pixels(image, source.name)
        yield None, None, image
        return
    if source.kind == "image":
        image = _read_still(source.name)
        orientation, count, kind = still_facts(source.name)
        image = turn_upright(image, orientation)
        if notes is not None and (note := still_note(count, kind)):
            notes.append(note)
        yield None, None, image
        return
    if _size(source.name) == 0:
        raise DataError(source.name, "empty file (0 bytes), not a video")
    capture = cv2.VideoCapture(source.name)
    if not capture.isOpened():
        capture.release()
        raise DataError(
            source.name,
            "cannot open as a video (not a video, or a container/codec "
            "this OpenCV build cannot decode)",
        )
    index = decoded = 0
    fps, stated = video_fps(capture), stated_frames(capture)
    try:
        while True:
            if index % every:  # grab() skips decoding the frames we do not use
                if not capture.grab():
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                decoded += 1
                check_pixels(frame, source.name)
                time = None if fps is None else round(index / fps, 3)
                yield index, time, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if not decoded:
        raise DataError(source.name, "no video frame could be decoded")
    # A container's count may be an estimate from its duration: a frame or 1% short is not news.
    if notes is not None and stated is not None and stated - index > max(1, stated // 100):
        notes.append(f"decoded {index} of {stated} stated frames: cut short or damaged")
