"""Open and read zip archives from users without trusting them (traversal, bombs, corruption)."""

from __future__ import annotations

import lzma
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

from helpers.core.errors import DataError

MiB = 1 << 20
GiB = 1 << 30

# Local file header size before the name; a lower bound on where a member's data ends.
_LOCAL_HEADER_BYTES = 30
_DRIVE = re.compile(r"^[A-Za-z]:")
_ENCRYPTED = 0x1  # general purpose flag bit 0: the member's data is encrypted
# Errors the zipfile/decompressor stack raises on damaged or unsupported data.
_READ_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that keep a hostile or broken archive from exhausting memory or disk."""

    max_members: int = 2_000_000
    max_member_bytes: int = 64 * MiB
    max_total_bytes: int = 20 * GiB
    max_ratio: float = 200.0
    # Small members compress absurdly well without harm; the ratio guard starts here.
    ratio_min_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        """Fail at construction, not halfway through reading an archive."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"ArchiveLimits.{f.name} must be a positive number, got {value!r}")


DEFAULT_LIMITS = ArchiveLimits()


def _printable(name: str) -> str:
    """Show NUL and other control characters in messages instead of cutting them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def unsafe_name_reason(name: str) -> str | None:
    """Why a member name could write or point outside the extraction folder, or None if safe."""
    if "\x00" in name:
        return "NUL byte in member name"
    if name.startswith(("/", "\\")):
        return "absolute path in member name"
    if _DRIVE.match(name):
        return "drive letter in member name"
    if ".." in re.split(r"[/\\]", name):
        return "'..' component in member name (path traversal)"
    return None


def _check_member(path: Path, info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """Refuse one member on its declared metadata alone, before any byte is inflated."""
    name = info.orig_filename  # zipfile cuts filename at NUL; the original keeps it
    reason = unsafe_name_reason(name)
    if reason:
        raise DataError(path, reason, _printable(name))
    if info.flag_bits & _ENCRYPTED:
        raise DataError(
            path,
            "encrypted (password-protected) archive: its members cannot be read; "
            "re-create it without a password",
            _printable(name),
        )
    if info.file_size > limits.max_member_bytes:
        raise DataError(
            path,
            f"declared size {info.file_size:,} bytes exceeds the per-member "
            f"limit of {limits.max_member_bytes:,}",
            _printable(name),
        )
    if info.file_size >= limits.ratio_min_bytes:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            raise DataError(
                path,
                f"compression ratio {ratio:,.0f}:1 exceeds the limit of "
                f"{limits.max_ratio:,.0f}:1 (zip bomb?)",
                _printable(name),
            )


def _check_layout(path: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse overlapping members (the non-recursive zip bomb) and data past the directory."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    if ordered[0].header_offset < 0:  # zipfile's offset correction went below the file start
        raise DataError(
            path,
            "member offsets point before the start of the file (bytes "
            "missing: truncated or corrupt archive)",
            _printable(ordered[0].orig_filename),
        )
    bounds = [i.header_offset for i in ordered[1:]] + [zf.start_dir]
    for info, next_start in zip(ordered, bounds, strict=False):
        if info.header_offset + _LOCAL_HEADER_BYTES + info.compress_size > next_start:
            raise DataError(
                path,
                "member data overlaps the next member or the central "
                "directory (corrupt archive or zip bomb)",
                _printable(info.orig_filename),
            )


def validate_zip(
    path: str | os.PathLike, zf: zipfile.ZipFile, limits: ArchiveLimits | None = None
) -> None:
    """Check every member of an open archive against the limits; raises DataError."""
    limits = limits or DEFAULT_LIMITS
    path = Path(path)
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise DataError(path, f"{len(infos):,} members exceed the limit of {limits.max_members:,}")
    if not any(not i.is_dir() for i in infos):
        raise DataError(path, "empty archive (no files in it)")
    seen: set[str] = set()
    total = 0
    for info in infos:
        _check_member(path, info, limits)
        if info.orig_filename in seen:
            raise DataError(
                path,
                "duplicate member name (ambiguous which one is meant)",
                _printable(info.orig_filename),
            )
        seen.add(info.orig_filename)
        total += info.file_size
    if total > limits.max_total_bytes:
        raise DataError(
            path,
            f"declared total size {total:,} bytes exceeds the limit of {limits.max_total_bytes:,}",
        )
    _check_layout(path, zf, infos)


def open_zip(path: str | os.PathLike, limits: ArchiveLimits | None = None) -> zipfile.ZipFile:
    """Open a zip only after every member passed the safety checks; raises DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a file (expected a .zip archive)")
    try:
        zf = zipfile.ZipFile(path)
    except UnicodeDecodeError as exc:
        raise DataError(
            path,
            "a member name is not valid UTF-8 although the archive says it "
            f"is (corrupt or mis-made archive: {exc})",
        ) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, UnicodeError) as exc:
        raise DataError(path, f"not a zip archive, or truncated/corrupt ({exc})") from exc
    except NotImplementedError as exc:  # e.g. a directory entry claiming a newer zip version
        raise DataError(
            path,
            f"uses a zip feature that cannot be read ({exc}); "
            "re-create the archive with a standard zip tool",
        ) from exc
    except OSError as exc:
        raise DataError(path, f"cannot read archive ({exc.strerror or exc})") from exc
    try:
        validate_zip(path, zf, limits)
    except BaseException:
        zf.close()
        raise
    return zf


def read_member(zf: zipfile.ZipFile, name: str, limits: ArchiveLimits | None = None) -> bytes:
    """Read one member whole, never inflating more than its declared size or the limit."""
    limits = limits or DEFAULT_LIMITS
    where = zf.filename or "<zip>"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise DataError(where, "no such member in the archive", name) from None
    cap = min(info.file_size, limits.max_member_bytes)
    if info.file_size > limits.max_member_bytes:
        raise DataError(
            where,
            f"declared size {info.file_size:,} bytes exceeds the per-member "
            f"limit of {limits.max_member_bytes:,}",
            name,
        )
    try:
        with zf.open(info) as f:
            data = f.read(cap + 1)
    except _READ_ERRORS as exc:
        raise DataError(where, f"cannot read member ({exc})", name) from exc
    if len(data) != info.file_size:
        # zipfile stops at the declared size, so a longer real payload surfaces as a CRC error.
        raise DataError(
            where, f"member holds {len(data):,} bytes but declares {info.file_size:,}", name
        )
    return data


def read_head(zf: zipfile.ZipFile, name: str, n: int = 32) -> bytes:
    """First bytes of a member, for cheap format checks without inflating the whole member."""
    where = zf.filename or "<zip>"
    try:
        with zf.open(name) as f:
            return f.read(n)
    except KeyError:
        raise DataError(where, "no such member in the archive", name) from None
    except _READ_ERRORS as exc:
        raise DataError(where, f"cannot read member ({exc})", name) from exc


def safe_extract(
    path: str | os.PathLike, dest: str | os.PathLike, limits: ArchiveLimits | None = None
) -> list[Path]:
    """Extract only after validating every member; writes regular files under dest only."""
    limits = limits or DEFAULT_LIMITS
    root = Path(dest).resolve()
    written: list[Path] = []
    with open_zip(path, limits) as zf:
        for info in zf.infolist():
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(path, "symbolic link member refused", info.filename)
            target = (root / info.filename.replace("\\", "/")).resolve()
            if target != root and root not in target.parents:
                raise DataError(
                    path, "member would be written outside the destination", info.filename
                )
        root.mkdir(parents=True, exist_ok=True)
        for info in zf.infolist():
            target = root / info.filename.replace("\\", "/")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # Re-check after mkdir: a symlinked folder already in dest could redirect the write.
            if root not in target.resolve().parents or target.is_symlink():
                raise DataError(
                    path, "member would be written outside the destination", info.filename
                )
            target.write_bytes(read_member(zf, info.filename, limits))
            written.append(target)
    return written
