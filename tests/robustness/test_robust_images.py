"""Images: what reading a source catches (first bytes only) and what decoding catches, always
naming the archive and member; odd but valid images decode to uint8 without surprises."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from builders import ROOT, encode, noisy_jpeg, record, write_zip
from helpers.core.errors import DataError
from helpers.core.images import decode_image, make_uri, read_image
from helpers.data.datasets import read_source


def image_member(ident: str) -> str:
    """Where record ident's image lives in the zip."""
    return f"{ROOT}/images/{ident}.jpg"


def forged_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (valid CRC, so only the size is wrong)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    at = data.index(b"IHDR")
    data[at + 4 : at + 12] = struct.pack(">II", width, height)
    data[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 17])))
    return bytes(data)


def forged_jpeg(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header claims width x height."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_truncated_jpeg(tmp_path, untouched):
    whole = noisy_jpeg()
    path = write_zip(
        tmp_path / "a.zip", record("1", image=whole), record("2", image=whole[: len(whole) // 2])
    )
    plain = tmp_path / "cut.jpg"
    plain.write_bytes(whole[: len(whole) // 3])
    with untouched():
        result = read_source(path, progress=False)
        # Reading checks the first bytes only, so the record is kept ...
        assert result.records["id"].tolist() == ["1", "2"] and result.dropped == {}
        assert read_image(result.records["image"][0]).shape == (48, 48, 3)
        # ... and the first stage that decodes it stops on a message naming archive and member.
        with pytest.raises(DataError, match="truncated image: the file ends before") as err:
            read_image(result.records["image"][1])
        assert (err.value.path, err.value.member) == (str(path.resolve()), image_member("2"))
        with pytest.raises(DataError, match="truncated") as err:
            read_image(str(plain))
        assert err.value.path == str(plain) and err.value.member is None
        # Notebooks 02 and 03 decode every image once (hashing): it is counted and left out there,
        # so training never meets it.
        from helpers.data import eda

        hashes = eda.image_hashes(result.records, progress=False)
        kept = eda.drop_unreadable(result.records, hashes)
        assert kept["id"].tolist() == ["1"]
        assert kept.attrs["unreadable"]["problem"].str.contains("truncated").all()


def test_text_file_named_jpg(tmp_path, untouched):
    html = b"<!DOCTYPE html><title>403 Forbidden</title>"
    path = write_zip(tmp_path / "a.zip", record("1"), record("2", image=html))
    with untouched():
        result = read_source(path, progress=False)
        assert result.records["id"].tolist() == ["1"]
        assert result.dropped == {"not an image": 1}
        assert result.examples["not an image"] == [image_member("2")]
        with pytest.raises(DataError, match=r"not an image \(unrecognised format\)") as err:
            read_image(make_uri(path, image_member("2")))
        assert err.value.member == image_member("2")


def test_zero_byte_image(tmp_path, untouched):
    path = write_zip(tmp_path / "a.zip", record("1"), record("2", image=b""))
    (tmp_path / "zero.jpg").write_bytes(b"")
    with untouched():
        result = read_source(path, progress=False)
        assert result.dropped == {"not an image": 1}
        for uri in (make_uri(path, image_member("2")), str(tmp_path / "zero.jpg")):
            with pytest.raises(DataError, match=r"empty file \(0 bytes\)"):
                read_image(uri)


def test_one_by_one_image(tmp_path, untouched):
    tiny = encode(Image.new("RGB", (1, 1), (10, 20, 30)), "JPEG", quality=100)
    path = write_zip(tmp_path / "a.zip", record("1", image=tiny))
    with untouched():
        uri = read_source(path, progress=False).records["image"][0]
        pixels = read_image(uri)
    assert pixels.shape == (1, 1, 3) and pixels.dtype == np.uint8
    assert np.abs(pixels[0, 0].astype(int) - [10, 20, 30]).max() <= 3


@pytest.mark.parametrize(
    "data, name",
    [
        (forged_png(100_000, 100_000), "png over PIL's own limit"),
        (forged_png(8_000, 8_000), "png over ours (64 Mpx > 50 Mpx)"),
        (forged_jpeg(65_000, 65_000), "jpeg"),
    ],
)
def test_enormous_dimensions(tmp_path, untouched, data, name):
    path = write_zip(tmp_path / "a.zip", record("1", image=data))
    with untouched():
        uri = read_source(path, progress=False).records["image"][0]  # header looks fine
        with pytest.raises(DataError, match="decompression-bomb") as err:
            read_image(uri)
    assert err.value.member == image_member("1"), name
    # The guard is a parameter: a small budget refuses an ordinary image before decoding it.
    with pytest.raises(DataError, match="over the limit of 100"):
        decode_image(noisy_jpeg(), "face.jpg", max_pixels=100)


def sixteen_bit_png() -> bytes:
    """A 16-bit greyscale PNG, as medical and scientific exports write them."""
    ok, data = cv2.imencode(".png", np.linspace(0, 65535, 48, dtype=np.uint16).reshape(6, 8))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    "data, channels",
    [
        (encode(Image.new("L", (8, 6), 77), "JPEG"), 1),
        (encode(Image.new("RGBA", (8, 6), (1, 2, 3, 0)), "PNG"), 3),
        (encode(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "JPEG"), 3),
        (sixteen_bit_png(), 1),
        (encode(Image.new("P", (8, 6), 3), "GIF"), 3),
        (encode(Image.new("LA", (8, 6), (50, 0)), "PNG"), 1),
    ],
    ids=["gray", "rgba", "cmyk", "16bit", "palette", "gray+alpha"],
)
def test_grayscale_rgba_cmyk_16bit(tmp_path, untouched, data, channels):
    path = write_zip(tmp_path / "a.zip", record("1", image=data))
    with untouched():
        uri = read_source(path, progress=False).records["image"][0]
        native, rgb, gray = (read_image(uri, mode=m) for m in (None, "rgb", "gray"))
    assert native.dtype == rgb.dtype == gray.dtype == np.uint8
    assert native.shape == ((6, 8) if channels == 1 else (6, 8, 3))
    assert rgb.shape == (6, 8, 3) and gray.shape == (6, 8)


def _class_tree(root, faces=("happy/a.png", "sad/b.png")):
    """A class-folder dataset of small PNGs."""
    for name in faces:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 20), 100, np.uint8)).save(root / name)
    return root


def test_special_files_in_class_folders(tmp_path, untouched):
    import os
    import threading

    source = _class_tree(tmp_path / "faces")
    os.mkfifo(source / "sad" / "fifo.jpg")  # opening it to read would wait forever
    result: dict = {}
    with untouched():
        reader = threading.Thread(
            target=lambda: result.setdefault(
                "read", read_source(source, reader="folders", progress=False)
            ),
            daemon=True,
        )
        reader.start()
        reader.join(timeout=60)
    assert not reader.is_alive(), "reading a FIFO hung"
    read = result["read"]
    assert sorted(read.records["id"]) == ["happy/a", "sad/b"]
    assert read.dropped == {"not a regular file": 1}
    assert read.examples["not a regular file"] == ["sad/fifo.jpg"]


def test_symlinked_class_folders_are_followed_once(tmp_path, untouched):
    import os

    elsewhere = _class_tree(tmp_path / "elsewhere", faces=("neutral/c.png", "neutral/d.png"))
    source = _class_tree(tmp_path / "faces")
    os.symlink(elsewhere / "neutral", source / "neutral")
    os.symlink(source, source / "happy" / "loop")  # a link back up: must not loop forever
    with untouched():
        read = read_source(source, reader="folders", progress=False)
    assert sorted(read.records["id"]) == ["happy/a", "neutral/c", "neutral/d", "sad/b"]
    assert read.dropped == {"folder reached twice through a symlink": 1}
