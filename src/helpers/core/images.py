"""Image references (plain paths or zip members) and safe decoding to uint8 arrays."""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO, Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError, features

from helpers.core.archive import ArchiveLimits, open_zip, read_member
from helpers.core.errors import DataError

ZIP_SCHEME = "zip://"
MAX_PIXELS = 50_000_000
MODES = (None, "rgb", "gray")

# Reading one member at a time is bounded by the per-member cap in read_member, so opening
# checks only names and structure: a big CSV beside the images must not block them.
_HUGE = 1 << 62
_OPEN_LIMITS = ArchiveLimits(
    max_members=_HUGE, max_member_bytes=_HUGE, max_total_bytes=_HUGE, max_ratio=float("inf")
)
_READ_LIMITS = ArchiveLimits()
_MAX_OPEN_ARCHIVES = 8

# Formats that may hold several pages or frames (TIFF, GIF).
MULTI_FRAME_MAGIC: tuple[bytes, ...] = (b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_MAGIC: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",  # GIF
    b"II*\x00",
    b"MM\x00*",  # TIFF, both byte orders
)


def make_uri(archive: str | os.PathLike, member: str) -> str:
    """Reference a zip member as one string; the archive path is made absolute so notebooks
    running in another folder still find it. '%' and '!' in it are escaped, so the first '!'
    always ends the archive part and members may contain '!'."""
    path = os.path.abspath(os.fspath(archive))
    return f"{ZIP_SCHEME}{path.replace('%', '%25').replace('!', '%21')}!{member}"


def parse_uri(uri: str) -> tuple[str | None, str]:
    """Split a reference into (archive or None, member or plain path)."""
    if not uri.startswith(ZIP_SCHEME):
        return None, uri
    archive, sep, member = uri[len(ZIP_SCHEME) :].partition("!")
    if not sep or not archive or not member:
        raise DataError(uri, "zip reference must look like zip://<archive>!<member>")
    archive = re.sub(r"%2[15]", lambda m: "!" if m.group() == "%21" else "%", archive)
    return archive, member


def _error(where: str, problem: str) -> DataError:
    """Name archive and member separately when `where` is a zip reference."""
    if where.startswith(ZIP_SCHEME):
        try:
            archive, member = parse_uri(where)
            return DataError(archive, problem, member)
        except DataError:
            pass
    return DataError(where, problem)


class _ArchiveCache:
    """Per-process, thread-safe LRU of validated ZipFile handles, reopened if the file changes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.handles: OrderedDict[tuple, tuple[zipfile.ZipFile, threading.Lock]] = OrderedDict()
        self.pid = os.getpid()

    def get(self, archive: str) -> tuple[zipfile.ZipFile, threading.Lock]:
        """A handle on the archive as it is now on disk, plus the lock guarding its reads."""
        try:
            st = os.stat(archive)
        except OSError:
            raise DataError(archive, "file not found") from None
        # The path as given, not realpath(): that lstat()s every folder on each image read,
        # which cost more than reading the member. Two spellings of one file share nothing.
        key = (archive, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        with self.lock:
            if self.pid != os.getpid():  # forked child: never share the parent's file offsets
                self.handles, self.pid = OrderedDict(), os.getpid()
            if key in self.handles:
                self.handles.move_to_end(key)
                return self.handles[key]
            entry = (open_zip(archive, _OPEN_LIMITS), threading.Lock())
            for stale in [k for k in self.handles if k[0] == key[0]]:  # the file was rewritten
                del self.handles[stale]
            self.handles[key] = entry
            while len(self.handles) > self.size:
                # Not closed here: another thread may still read it; the last reference closes it.
                self.handles.popitem(last=False)
            return entry

    def clear(self) -> None:
        """Close every handle (after tests, or to release files on Windows)."""
        with self.lock:
            for zf, _ in self.handles.values():
                zf.close()
            self.handles.clear()


_CACHE = _ArchiveCache(_MAX_OPEN_ARCHIVES)


def close_archives() -> None:
    """Release the cached archive handles."""
    _CACHE.clear()


def read_image_bytes(uri: str) -> bytes:
    """Raw bytes of a referenced file, from disk or from inside a (validated) zip."""
    archive, member = parse_uri(uri)
    if archive is None:
        path = Path(member)
        if not path.is_file():
            raise DataError(path, "image file not found")
        if path.stat().st_size > _READ_LIMITS.max_member_bytes:
            raise DataError(path, f"file larger than {_READ_LIMITS.max_member_bytes:,} bytes")
        return path.read_bytes()
    zf, lock = _CACHE.get(archive)
    with lock:  # one reader at a time per handle; decoding happens outside the lock
        return read_member(zf, member, _READ_LIMITS)


def avif_decodes() -> bool:
    """Whether this Pillow decodes AVIF (11.3 and later wheels do); a Pillow that predates
    its AVIF module (before 11.2) says so by raising, and then simply does not read AVIF."""
    try:
        return bool(features.check_module("avif"))
    except ValueError:  # "Unknown module avif"
        return False


AVIF_DECODES = avif_decodes()
# The file extensions of the formats decode_image reads, for readers that list by name.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
    | ({".avif"} if AVIF_DECODES else set())
)
HEIC_EXTENSIONS = frozenset({".heic", ".heif"})
# The video files the predictor reads (OpenCV), and that readers of datasets refuse by name.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".wmv", ".mpg", ".mpeg", ".3gp"}
)
# ISO media brands of still images: an `ftyp` box starts them as it does an MP4.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
NOT_DECODED_HEIC = "HEIC/HEIF photo, not supported (convert it to JPEG or PNG)"
NOT_DECODED_AVIF = "AVIF photo, which this Pillow cannot decode (convert it to JPEG or PNG)"


HEAD_BYTES = 32  # enough for every file signature the readers and the predictor check


def file_head(path: str | os.PathLike, size: int = HEAD_BYTES) -> bytes:
    """A file's first bytes, to tell its kind by signature; b"" when it cannot be read (what
    reads it later says why)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def still_photo_format(data: bytes) -> str | None:
    """'avif' or 'heif' for bytes that start like an AVIF or HEIC/HEIF photo (an ISO media
    file of a still-image brand; a generic HEIF brand counts as AVIF when it lists `avif`
    among its compatible brands), None for anything else."""
    if data[4:8] != b"ftyp":
        return None
    brand = data[8:12]
    if brand in _AVIF_BRANDS:
        return "avif"
    if brand in _HEIF_BRANDS:
        size = int.from_bytes(data[:4], "big")
        compatible = data[16:size] if 16 <= size <= len(data) else data[16:]
        return "avif" if b"avif" in compatible else "heif"
    return None


def unsupported_image(data: bytes) -> str | None:
    """Why a photo in a known format is not read ('HEIC/HEIF photo, not supported (convert
    it ...)'), None for bytes that are no such photo: what readers say instead of 'not an
    image'."""
    kind = still_photo_format(data)
    if kind == "heif":
        return NOT_DECODED_HEIC
    return NOT_DECODED_AVIF if kind == "avif" and not AVIF_DECODES else None


def is_image_header(data: bytes) -> bool:
    """Cheap check that bytes start like a JPEG/PNG/BMP/GIF/WebP/TIFF file (or an AVIF photo,
    where this Pillow decodes AVIF)."""
    if data.startswith(_MAGIC):
        return True
    if AVIF_DECODES and still_photo_format(data) == "avif":
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    # BMP: 'BM' then a reserved zero word at bytes 6-9.
    return data[:2] == b"BM" and len(data) >= 10 and data[6:10] == b"\x00\x00\x00\x00"


def to_8bit(img: Image.Image, where: str) -> Image.Image:
    """Reduce any decoded mode to 8-bit 'L' or 'RGB', dropping alpha without compositing: one
    rule for a file and a Pillow image handed to the predictor."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in ("1", "LA", "La"):
        return img.convert("L")
    if mode.startswith("I"):
        # 16-bit greyscale (also 'I' from older PNG decoders): map 0..65535 onto 0..255, rounded.
        wide = np.asarray(img).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((wide + 128) // 257).astype(np.uint8), mode="L")
    if mode == "F":
        raise _error(where, "floating-point images are not supported")
    try:
        if mode in ("P", "PA"):  # via RGBA, so palette transparency is understood, then dropped
            img = img.convert("RGBA")
        return img.convert("RGB")  # RGBA, CMYK (PIL handles Adobe's inverted CMYK), YCbCr...
    except (ValueError, OSError) as exc:
        raise _error(where, f"unsupported colour mode {mode!r} ({exc})") from exc


TRUNCATED = "truncated image: the file ends before its image data does"


def _damage(exc: BaseException, what: str) -> str:
    """One wording for a file that ends early, whether it stops in its header or in its pixels
    (Pillow says 'truncated' in both); any other damage as `what (Pillow's reason)`."""
    return TRUNCATED if "truncated" in str(exc).lower() else f"{what} ({exc})"


def decode_image(
    data: bytes, where: str, mode: str | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode bytes to uint8 (H, W) or (H, W, 3) RGB; refuses bombs before decoding pixels."""
    return decode_image_reduced(data, where, mode=mode, max_pixels=max_pixels)[0]


def decode_image_reduced(
    data: bytes,
    where: str,
    mode: str | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """decode_image, plus the stored (height, width); with min_side a JPEG may decode smaller.

    JPEG decoders can scale by 1/2, 1/4 or 1/8 inside the DCT (Pillow's draft mode), which
    is 2-3x cheaper than decoding every pixel and resizing afterwards. The result keeps both
    sides >= min_side, so a later resize to min_side still only shrinks. The stored size is
    returned because landmarks are in its pixels, not the reduced image's.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not data:
        raise _error(where, "empty file (0 bytes), not an image")
    try:
        img: Image.Image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise _error(where, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise _error(where, f"image too large (decompression-bomb guard: {exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _error(where, _damage(exc, "corrupt image header")) from exc
    width, height = img.size
    if width * height > max_pixels:
        raise _error(
            where,
            f"image is {width}x{height} = {width * height:,} pixels, over the "
            f"limit of {max_pixels:,} (decompression-bomb guard)",
        )
    fast = _decode_jpeg_fast(data, img, mode, min_side)
    if fast is not None:
        return fast, (height, width)
    if min_side is not None and img.format == "JPEG" and min(width, height) >= 2 * min_side:
        # The file's own mode: a colour JPEG wanted as gray still goes through convert("L"),
        # the conversion the predictor applies to camera frames.
        img.draft(img.mode, (int(min_side), int(min_side)))
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise _error(where, _damage(exc, "corrupt image")) from exc
    img = to_8bit(img, where)
    if mode == "rgb" and img.mode != "RGB":
        img = img.convert("RGB")
    elif mode == "gray" and img.mode != "L":
        img = img.convert("L")
    return np.array(img, dtype=np.uint8), (height, width)


_CV2_COLOR = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_CV2_GRAY = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def _decode_jpeg_fast(
    data: bytes, img: Image.Image, mode: str | None, min_side: int | None
) -> np.ndarray | None:
    """A plain 8-bit RGB or gray JPEG through OpenCV's libjpeg-turbo; None means use Pillow.

    2-3x cheaper than Pillow for the images a training set is made of, decoded in one call
    that releases the GIL. Only well-formed files take this path (Pillow parsed the header
    and checked the size; the file ends with its end-of-image marker), since OpenCV returns
    a half-grey picture for a truncated file where Pillow raises. EXIF orientation is
    ignored, as Pillow does; a colour JPEG wanted as gray still goes through Pillow's
    convert("L"), the conversion the predictor applies to camera frames.
    """
    if (
        img.format != "JPEG"
        or img.mode not in ("RGB", "L")
        or not data.rstrip(b"\0").endswith(b"\xff\xd9")
    ):
        return None
    width, height = img.size
    factor = 1
    while min_side is not None and factor < 8 and min(width, height) // (2 * factor) >= min_side:
        factor *= 2
    as_gray = img.mode == "L" and mode != "rgb"
    flags = (_CV2_GRAY if as_gray else _CV2_COLOR)[factor] | cv2.IMREAD_IGNORE_ORIENTATION
    out = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    expected = (-(-height // factor), -(-width // factor))
    if out is None or out.shape[:2] != expected:
        return None
    if as_gray:
        return out
    out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    if mode == "gray":
        return np.asarray(Image.fromarray(out).convert("L"))
    return out


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size as training does everywhere (pipeline, offline copies, predictor).

    INTER_AREA when shrinking by 2x or more (it averages, so nothing aliases); bilinear for
    smaller steps, where both look alike and bilinear is 4x cheaper.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    area = size * 2 <= min(h, w)
    return cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR
    )


def read_image(uri: str, mode: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load a referenced image as a uint8 array (see decode_image for modes)."""
    return decode_image(read_image_bytes(uri), uri, mode=mode, max_pixels=max_pixels)


def read_image_reduced(
    uri: str, min_side: int, mode: str | None = None, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """Load a referenced image for a min_side model input, and its stored (height, width)."""
    return decode_image_reduced(
        read_image_bytes(uri), uri, mode=mode, max_pixels=max_pixels, min_side=min_side
    )


# EXIF orientation -> the PIL transpose that shows the photo upright (as ImageOps.exif_transpose).
UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation an opened image declares (2-8: viewers turn it), 1 when none: phone
    photos are stored sideways and shown upright, and boxes are drawn on what viewers show.
    A TIFF's is 1: Pillow's TIFF reader already turns its pixels (and size) upright, so turning
    them again would lay the photo on its side."""
    if img.format == "TIFF":
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; it is optional
            value = img.getexif().get(_ORIENTATION_TAG)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError):
        return 1
    return value if isinstance(value, int) and value in UPRIGHT else 1


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) as viewers show an image with this EXIF orientation (5-8 swap sides)."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def turn_upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels turned as their EXIF orientation says, so they match what viewers show."""
    method = UPRIGHT.get(orientation)
    return pixels if method is None else np.asarray(Image.fromarray(pixels).transpose(method))


def header_size(head: bytes) -> tuple[int, int] | None:
    """(height, width) an image's first bytes declare (Pillow decodes no pixels), or None when
    they hold no readable header: a cheap size for checking annotations against."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(head)) as img:
                width, height = img.size
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None
    return (height, width) if width > 0 and height > 0 else None


def frame_count(data: bytes) -> int:
    """Pages of a TIFF or frames of a GIF (other formats, or unreadable ones: 1): every reader
    and the predictor use the first alone, so readers say how many files hold more."""
    if not data.startswith(MULTI_FRAME_MAGIC):
        return 1
    return frames_in(io.BytesIO(data))


def tiff_next_page(head: bytes) -> int | None:
    """Where a TIFF's second page directory starts (0: it has one page), read from the first
    directory when `head`, the file's first bytes, holds it; None when it does not."""
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return None
    order: Literal["little", "big"] = "little" if head[:2] == b"II" else "big"
    first = int.from_bytes(head[4:8], order)
    if first < 8 or first + 2 > len(head):
        return None
    end = first + 2 + 12 * int.from_bytes(head[first : first + 2], order)  # 12 bytes an entry
    if end + 4 > len(head):
        return None
    return int.from_bytes(head[end : end + 4], order)


def frames_in(f: BinaryIO) -> int:
    """frame_count of an open, seekable file (a file or a zip member), read lazily: Pillow
    follows a TIFF's chain of page directories, or steps over a GIF's frames, without
    decoding pixels; a single-page TIFF costs its first directory alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(f) as img:
                return int(getattr(img, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return 1
