"""Safe zip access: hostile names, bombs, corruption and limits are refused with named errors."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest

from helpers.core.archive import ArchiveLimits, open_zip, read_head, read_member, safe_extract
from helpers.core.errors import DataError

CENTRAL = b"PK\x01\x02"


def make_zip(
    path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """Write a zip with the given members."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def central_entries(data: bytes) -> list[int]:
    """Offsets of the central directory headers in raw zip bytes."""
    out, pos = [], data.find(CENTRAL)
    while pos >= 0:
        out.append(pos)
        pos = data.find(CENTRAL, pos + 4)
    return out


def patch_central(path: Path, index: int, field_offset: int, value: int) -> None:
    """Overwrite one 4-byte field of the index-th central directory header (forging metadata)."""
    data = bytearray(path.read_bytes())
    at = central_entries(bytes(data))[index] + field_offset
    data[at : at + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


USIZE, CSIZE, OFFSET = 24, 20, 42  # central header field offsets


def test_valid_archive_reads_back(tmp_path):
    path = make_zip(tmp_path / "ok.zip", {"a/x.txt": b"hello", "a/y.bin": bytes(range(256))})
    with open_zip(path) as zf:
        assert read_member(zf, "a/x.txt") == b"hello"
        assert read_member(zf, "a/y.bin") == bytes(range(256))
        assert read_head(zf, "a/y.bin", 4) == bytes(range(4))


@pytest.mark.parametrize(
    "field", ["max_members", "max_member_bytes", "max_total_bytes", "max_ratio", "ratio_min_bytes"]
)
@pytest.mark.parametrize("value", [0, -1, True, "10"])
def test_limits_must_be_positive(field, value):
    with pytest.raises(ValueError, match=field):
        ArchiveLimits(**{field: value})


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found") as err:
        open_zip(tmp_path / "nope.zip")
    assert err.value.path.endswith("nope.zip")


def test_directory_is_not_a_zip(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        open_zip(tmp_path)


def test_text_file_is_not_a_zip(tmp_path):
    path = tmp_path / "notes.zip"
    path.write_text("just some text, not an archive\n")
    with pytest.raises(DataError, match="not a zip") as err:
        open_zip(path)
    assert err.value.path == str(path)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_truncated_zip(tmp_path, keep):
    full = make_zip(tmp_path / "full.zip", {f"m{i}.bin": os.urandom(500) for i in range(5)})
    data = full.read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError) as err:
        open_zip(path)
    assert err.value.path == str(path)


def test_bytes_cut_from_the_middle(tmp_path):
    full = make_zip(
        tmp_path / "full.zip", {f"m{i}.bin": os.urandom(500) for i in range(5)}, zipfile.ZIP_STORED
    )
    data = full.read_bytes()
    path = tmp_path / "holed.zip"
    path.write_bytes(data[:1000] + data[1300:])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        open_zip(path)
    assert err.value.path == str(path)


def test_empty_zip(tmp_path):
    path = make_zip(tmp_path / "empty.zip", {})
    with pytest.raises(DataError, match="empty"):
        open_zip(path)


def test_zip_with_only_folders_is_empty(tmp_path):
    path = make_zip(tmp_path / "dirs.zip", {"a/": b"", "a/b/": b""})
    with pytest.raises(DataError, match="empty"):
        open_zip(path)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../evil.jpg", "traversal"),
        ("images/../../evil.jpg", "traversal"),
        ("a\\..\\b", "traversal"),
        ("..\\evil.jpg", "traversal"),
        ("/abs/x.jpg", "absolute"),
        ("\\abs\\x.jpg", "absolute"),
        ("C:/windows/x.jpg", "drive letter"),
        ("c:x.jpg", "drive letter"),
    ],
)
def test_hostile_names_are_refused_with_the_member(tmp_path, name, problem):
    path = make_zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"payload"})
    with pytest.raises(DataError, match=problem) as err:
        open_zip(path)
    assert err.value.member == name
    assert err.value.path == str(path)


def test_nul_byte_in_name(tmp_path):
    path = make_zip(tmp_path / "nul.zip", {"fine.txt": b"ok", "evilX.jpg": b"payload"})
    # zipfile cuts names at NUL when writing, so forge it in the raw bytes.
    path.write_bytes(path.read_bytes().replace(b"evilX.jpg", b"evil\x00.jpg"))
    with pytest.raises(DataError, match="NUL") as err:
        open_zip(path)
    assert err.value.member == "evil\\x00.jpg"


def test_dots_inside_names_are_fine(tmp_path):
    path = make_zip(tmp_path / "ok.zip", {"a..b/c...jpg": b"x", "./d.txt": b"y"})
    with open_zip(path) as zf:
        assert read_member(zf, "a..b/c...jpg") == b"x"


def test_encrypted_archive_refused_before_reading(tmp_path):
    path = make_zip(tmp_path / "locked.zip", {"a.txt": b"hello", "b.txt": b"world"})
    data = bytearray(path.read_bytes())
    at = central_entries(bytes(data))[1] + 8  # general purpose flags; bit 0: encrypted
    data[at] |= 0x1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"encrypted \(password-protected\) archive") as err:
        open_zip(path)
    assert err.value.path == str(path) and err.value.member == "b.txt"


def test_member_over_size_limit(tmp_path):
    path = make_zip(tmp_path / "big.zip", {"small.txt": b"x", "big.bin": os.urandom(5000)})
    with pytest.raises(DataError, match="declared size") as err:
        open_zip(path, ArchiveLimits(max_member_bytes=1000))
    assert err.value.member == "big.bin"


def test_forged_absurd_declared_size(tmp_path):
    path = make_zip(tmp_path / "forged.zip", {"a.txt": b"a", "b.txt": b"b"}, zipfile.ZIP_STORED)
    patch_central(path, 1, USIZE, 0x7FFF_FFFF)
    with pytest.raises(DataError, match="declared size") as err:
        open_zip(path)
    assert err.value.member == "b.txt"


def test_total_over_limit(tmp_path):
    path = make_zip(tmp_path / "total.zip", {f"m{i}": os.urandom(600) for i in range(4)})
    with pytest.raises(DataError, match="total"):
        open_zip(path, ArchiveLimits(max_total_bytes=2000))


def test_too_many_members(tmp_path):
    path = make_zip(tmp_path / "many.zip", {f"m{i}": b"x" for i in range(5)})
    with pytest.raises(DataError, match="members exceed"):
        open_zip(path, ArchiveLimits(max_members=4))


def test_high_ratio_member_of_zeros(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", {"ok.txt": b"fine", "zeros.bin": bytes(4 << 20)})
    with pytest.raises(DataError, match="compression ratio") as err:
        open_zip(path)
    assert err.value.member == "zeros.bin"


def test_small_compressible_members_are_not_bombs(tmp_path):
    path = make_zip(tmp_path / "small.zip", {"zeros.bin": bytes(100_000)})
    with open_zip(path) as zf:
        assert read_member(zf, "zeros.bin") == bytes(100_000)


def test_overlapping_members_refused(tmp_path):
    path = make_zip(
        tmp_path / "overlap.zip",
        {"a.bin": os.urandom(300), "b.bin": os.urandom(300)},
        zipfile.ZIP_STORED,
    )
    patch_central(path, 1, OFFSET, 0)  # b's data "starts" where a's does
    with pytest.raises(DataError, match="overlaps"):
        open_zip(path)


def test_duplicate_member_names_refused(tmp_path):
    path = tmp_path / "dup.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "w") as zf:
        zf.writestr("same.txt", b"one")
        zf.writestr("same.txt", b"two")
    with pytest.raises(DataError, match="duplicate") as err:
        open_zip(path)
    assert err.value.member == "same.txt"


def test_crc_error_names_member(tmp_path):
    payload = b"A" * 200 + b"B" * 200
    path = make_zip(
        tmp_path / "crc.zip", {"ok.txt": b"fine", "data.bin": payload}, zipfile.ZIP_STORED
    )
    raw = path.read_bytes()
    path.write_bytes(raw.replace(payload, b"A" * 200 + b"C" + b"B" * 199))
    with open_zip(path) as zf:
        assert read_member(zf, "ok.txt") == b"fine"
        with pytest.raises(DataError, match="CRC") as err:
            read_member(zf, "data.bin")
    assert err.value.member == "data.bin"


def test_real_size_larger_than_declared(tmp_path):
    payload = os.urandom(2000)
    path = make_zip(tmp_path / "liar.zip", {"data.bin": payload})
    patch_central(path, 0, USIZE, 100)  # claims 100 bytes, inflates to 2000
    with open_zip(path) as zf, pytest.raises(DataError) as err:
        read_member(zf, "data.bin")
    assert err.value.member == "data.bin"


def test_real_size_smaller_than_declared(tmp_path):
    path = make_zip(tmp_path / "short.zip", {"data.bin": os.urandom(2000)})
    patch_central(path, 0, USIZE, 5000)
    with open_zip(path) as zf, pytest.raises(DataError) as err:
        read_member(zf, "data.bin")
    assert err.value.member == "data.bin"


def test_read_member_limit_and_missing(tmp_path):
    path = make_zip(tmp_path / "m.zip", {"big.bin": os.urandom(3000)})
    with open_zip(path) as zf:
        with pytest.raises(DataError, match="limit"):
            read_member(zf, "big.bin", ArchiveLimits(max_member_bytes=1000))
        with pytest.raises(DataError, match="no such member") as err:
            read_member(zf, "other.bin")
    assert err.value.member == "other.bin"


def test_safe_extract_writes_only_under_dest(tmp_path):
    path = make_zip(tmp_path / "ok.zip", {"a/b.txt": b"one", "c.txt": b"two", "d/": b""})
    dest = tmp_path / "out"
    written = safe_extract(path, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["a/b.txt", "c.txt"]
    assert (dest / "a/b.txt").read_bytes() == b"one"
    assert (dest / "d").is_dir()


def test_safe_extract_refuses_traversal_before_writing(tmp_path):
    path = make_zip(tmp_path / "bad.zip", {"first.txt": b"x", "../escape.txt": b"y"})
    dest = tmp_path / "out"
    with pytest.raises(DataError):
        safe_extract(path, dest)
    assert not dest.exists()
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_refuses_symlink_members(tmp_path):
    path = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(path, tmp_path / "out")


def test_safe_extract_does_not_follow_symlinked_folders(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    path = make_zip(tmp_path / "z.zip", {"sub/x.txt": b"x"})
    with pytest.raises(DataError, match="outside"):
        safe_extract(path, dest)
    assert not (outside / "x.txt").exists()
