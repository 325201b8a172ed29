"""Image references and decoding: modes, odd formats, corrupt data and bombs."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers.core.errors import DataError
from helpers.core.images import (
    close_archives,
    decode_image,
    is_image_header,
    make_uri,
    parse_uri,
    read_image,
    read_image_bytes,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    close_archives()
    yield
    close_archives()


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    """Image to file bytes in the given format."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(h: int = 6, w: int = 5) -> np.ndarray:
    """A small RGB image with distinct pixels, to catch channel/axis mix-ups."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 40, y * 30, (x + y) * 10 + 5], axis=-1).astype(np.uint8)


# ---- references -------------------------------------------------------------------------


def test_uri_round_trip(tmp_path):
    uri = make_uri(tmp_path / "a.zip", "Dataset/images/1.jpg")
    assert uri.startswith("zip://")
    assert parse_uri(uri) == (str(tmp_path / "a.zip"), "Dataset/images/1.jpg")


def test_uri_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archive, member = parse_uri(make_uri("data/x.zip", "m.png"))
    assert archive == str(tmp_path / "data" / "x.zip")
    assert member == "m.png"


@pytest.mark.parametrize(
    "archive, member",
    [
        ("/data/wow!.zip", "images/1.jpg"),
        ("/data/100%.zip", "a!b/c!.jpg"),
        ("/data/%21odd%25!.zip", "x%21.png"),
    ],
)
def test_uri_with_bangs_and_percents(archive, member):
    assert parse_uri(make_uri(archive, member)) == (archive, member)


def test_plain_path_is_its_own_reference():
    assert parse_uri("/some/where/img.png") == (None, "/some/where/img.png")
    assert parse_uri("relative/img.png") == (None, "relative/img.png")


@pytest.mark.parametrize("bad", ["zip:///a.zip", "zip://!member", "zip:///a.zip!"])
def test_malformed_zip_uri(bad):
    with pytest.raises(DataError, match="zip://"):
        parse_uri(bad)


# ---- reading ----------------------------------------------------------------------------


def test_read_plain_and_zip_images(tmp_path):
    pixels = gradient()
    png = encode(Image.fromarray(pixels), "PNG")
    plain = tmp_path / "img.png"
    plain.write_bytes(png)
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/img.png", png)
    np.testing.assert_array_equal(read_image(str(plain)), pixels)
    zipped = read_image(make_uri(archive, "images/img.png"))
    np.testing.assert_array_equal(zipped, pixels)
    assert zipped.dtype == np.uint8 and zipped.flags.writeable
    assert read_image_bytes(make_uri(archive, "images/img.png")) == png


def test_missing_files_and_members(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_image(str(tmp_path / "nope.png"))
    with pytest.raises(DataError, match="not found"):
        read_image(make_uri(tmp_path / "nope.zip", "a.png"))
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", encode(Image.new("L", (2, 2)), "PNG"))
    with pytest.raises(DataError, match="no such member") as err:
        read_image(make_uri(archive, "b.png"))
    assert err.value.member == "b.png"


def test_hostile_archive_refused_on_first_read(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.png", encode(Image.new("L", (2, 2)), "PNG"))
        zf.writestr("../evil.png", b"x")
    with pytest.raises(DataError, match="traversal"):
        read_image(make_uri(archive, "ok.png"))


def test_big_neighbour_member_does_not_block_images(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("huge.csv", b"a,b\n1,2\n")
        zf.writestr("img.png", encode(Image.new("L", (2, 2), 9), "PNG"))
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")  # huge.csv's directory entry: claim 100 MiB
    data[central + 24 : central + 28] = struct.pack("<I", 100 << 20)
    archive.write_bytes(bytes(data))
    assert read_image(make_uri(archive, "img.png"))[0, 0] == 9
    with pytest.raises(DataError, match="limit") as err:
        read_image_bytes(make_uri(archive, "huge.csv"))
    assert err.value.member == "huge.csv"


def test_cache_sees_a_rewritten_archive(tmp_path):
    archive = tmp_path / "a.zip"
    for value in (10, 200):
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("pad.bin", bytes(value))  # different size, so a different file
            zf.writestr("img.png", encode(Image.new("L", (3, 3), value), "PNG"))
        assert read_image(make_uri(archive, "img.png"))[0, 0] == value


def test_concurrent_reads_from_one_archive(tmp_path):
    archive = tmp_path / "many.zip"
    expected = {}
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(120):
            img = np.full((4, 4, 3), i, dtype=np.uint8)
            img[0, 0] = (i, 255 - i, 7)
            expected[f"img/{i}.png"] = img
            zf.writestr(f"img/{i}.png", encode(Image.fromarray(img), "PNG"))
    names = list(expected) * 3
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda n: read_image(make_uri(archive, n)), names))
    for name, got in zip(names, results, strict=False):
        np.testing.assert_array_equal(got, expected[name])


# ---- decoding: bad data -----------------------------------------------------------------


def test_truncated_jpeg(tmp_path):
    data = encode(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
        "JPEG",
    )
    with pytest.raises(DataError, match=r"truncated|corrupt") as err:
        decode_image(data[: len(data) // 2], "face.jpg")
    assert err.value.path == "face.jpg"


@pytest.mark.parametrize(("fmt", "in_header"), [("JPEG", 200), ("PNG", 20), ("BMP", 20)])
def test_a_file_cut_short_reads_as_truncated_wherever_it_ends(fmt, in_header):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encode(image, fmt)
    for cut in (in_header, len(data) // 2):
        with pytest.raises(DataError) as err:
            decode_image(data[:cut], "face")
        assert err.value.problem == "truncated image: the file ends before its image data does"


def test_zero_bytes():
    with pytest.raises(DataError, match="empty"):
        decode_image(b"", "zero.jpg")


def test_text_named_jpg_in_zip_names_member(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/1.jpg", b"this is not a picture\n")
    with pytest.raises(DataError, match="not an image") as err:
        read_image(make_uri(archive, "images/1.jpg"))
    assert err.value.path == str(archive)
    assert err.value.member == "images/1.jpg"


def test_header_larger_than_max_pixels():
    data = encode(Image.new("RGB", (100, 80)), "PNG")
    with pytest.raises(DataError, match="decompression-bomb"):
        decode_image(data, "big.png", max_pixels=7999)
    assert decode_image(data, "big.png", max_pixels=8000).shape == (80, 100, 3)


def forged_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size; only the header is ever needed."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("side", [8_000, 100_000])  # under and over PIL's own bomb limit
def test_forged_huge_header_refused_before_decoding(side):
    with pytest.raises(DataError, match="decompression-bomb") as err:
        decode_image(forged_png(side, side), "bomb.png")
    assert err.value.path == "bomb.png"


def test_float_images_refused():
    data = encode(Image.new("F", (3, 3), 0.5), "TIFF")
    with pytest.raises(DataError, match="floating-point"):
        decode_image(data, "f.tif")


def test_bad_mode_argument():
    with pytest.raises(ValueError, match="mode"):
        decode_image(encode(Image.new("L", (1, 1)), "PNG"), "x.png", mode="bgr")


# ---- decoding: modes and bit depths -----------------------------------------------------


def test_one_by_one():
    out = decode_image(encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), "1x1.png")
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [1, 2, 3]


def test_rgba_drops_alpha():
    rgb = gradient()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    out = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), "a.png")
    np.testing.assert_array_equal(out, rgb)


def test_la_drops_alpha():
    la = Image.merge("LA", [Image.new("L", (3, 2), 90), Image.new("L", (3, 2), 0)])
    out = decode_image(encode(la, "PNG"), "la.png")
    assert out.shape == (2, 3) and (out == 90).all()


def test_grayscale_keeps_one_channel_unless_asked():
    gray = gradient()[..., 0]
    data = encode(Image.fromarray(gray, "L"), "PNG")
    np.testing.assert_array_equal(decode_image(data, "g.png"), gray)
    np.testing.assert_array_equal(decode_image(data, "g.png", mode="gray"), gray)
    rgb = decode_image(data, "g.png", mode="rgb")
    assert rgb.shape == (*gray.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


def test_colour_to_gray_uses_luma():
    rgb = gradient()
    out = decode_image(encode(Image.fromarray(rgb), "PNG"), "c.png", mode="gray")
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(rgb).convert("L")))


def test_16bit_gray_png_scaled_to_8bit():
    values = np.array([[0, 257 * 100, 65535], [128, 32896, 65407]], dtype=np.uint16)
    ok, png = cv2.imencode(".png", values)
    assert ok
    out = decode_image(png.tobytes(), "deep.png")
    assert out.dtype == np.uint8 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, np.round(values / 257).astype(np.uint8))


def test_16bit_rgb_png_scaled_to_8bit():
    rgb16 = gradient().astype(np.uint16) * 257
    ok, png = cv2.imencode(".png", rgb16[..., ::-1])  # OpenCV writes BGR order
    assert ok
    out = decode_image(png.tobytes(), "deep_rgb.png")
    np.testing.assert_array_equal(out, gradient())


def test_cmyk_jpeg_becomes_rgb():
    red = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    out = decode_image(encode(red, "JPEG", quality=95), "cmyk.jpg")
    assert out.shape == (8, 8, 3)
    assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 12


def test_palette_with_transparency_becomes_rgb():
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    data = encode(pal, "PNG", transparency=0)
    out = decode_image(data, "p.png")
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [10, 200, 30]


def test_bilevel_becomes_gray():
    out = decode_image(encode(Image.new("1", (3, 3), 1), "PNG"), "bw.png")
    assert out.shape == (3, 3) and (out == 255).all()


# ---- magic numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, mode",
    [
        ("JPEG", "RGB"),
        ("PNG", "RGB"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("WEBP", "RGB"),
        ("TIFF", "RGB"),
    ],
)
def test_is_image_header_true_for_real_files(fmt, mode):
    data = encode(Image.new(mode, (4, 4)), fmt)
    assert is_image_header(data[:16])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world, plain text",
        b"BM",
        b"RIFF1234WAVE",
        b"\x93NUMPY\x01\x00",
        b"PK\x03\x04rest",
    ],
)
def test_is_image_header_false_otherwise(data):
    assert not is_image_header(data)


def test_decoded_file_path_from_disk(tmp_path):
    path = Path(tmp_path / "t.jpg")
    path.write_text("text with a jpg name")
    with pytest.raises(DataError, match="not an image") as err:
        read_image(str(path))
    assert err.value.path == str(path) and err.value.member is None


def test_reduced_decode_scales_jpegs_in_the_dct_and_reports_the_stored_size():
    from helpers.core.images import decode_image_reduced
    from helpers.data.synthetic import render_face, sample_face_params

    face, _ = render_face(sample_face_params(np.random.default_rng(0), 1, 224), 224)
    jpeg = encode(Image.fromarray(face), "JPEG", quality=95)
    full = decode_image(jpeg, "face.jpg", mode="rgb")
    for min_side, side in ((96, 112), (48, 56), (112, 112), (113, 224), (224, 224)):
        reduced, stored = decode_image_reduced(jpeg, "face.jpg", mode="rgb", min_side=min_side)
        assert stored == (224, 224) and reduced.shape == (side, side, 3)
    # Same picture as decoding everything and shrinking with INTER_AREA, to a grey level or two.
    reduced, _ = decode_image_reduced(jpeg, "face.jpg", mode="rgb", min_side=96)
    area = cv2.resize(full, (112, 112), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - area).mean() < 2.0
    gray, _ = decode_image_reduced(jpeg, "face.jpg", mode="gray", min_side=48)
    assert gray.shape == (56, 56)
    # Other formats decode whole; the guard against bombs still runs first.
    png = encode(Image.fromarray(face), "PNG")
    assert decode_image_reduced(png, "face.png", min_side=48)[0].shape == (224, 224, 3)
    with pytest.raises(DataError, match="decompression-bomb"):
        decode_image_reduced(jpeg, "face.jpg", min_side=48, max_pixels=1000)


def test_fit_square_averages_big_shrinks_and_interpolates_small_steps():
    from helpers.core.images import fit_square

    image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    square = image[:64, :64]
    assert fit_square(square, 64) is square  # already the size: untouched
    np.testing.assert_array_equal(
        fit_square(image, 50), cv2.resize(image, (50, 50), interpolation=cv2.INTER_AREA)
    )
    np.testing.assert_array_equal(
        fit_square(image, 64), cv2.resize(image, (64, 64), interpolation=cv2.INTER_LINEAR)
    )
    np.testing.assert_array_equal(
        fit_square(image, 224), cv2.resize(image, (224, 224), interpolation=cv2.INTER_LINEAR)
    )


def test_fast_jpeg_path_matches_pillow_and_leaves_odd_files_to_it():
    from helpers.core.images import decode_image_reduced

    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8), (5, 5), 0)
    jpeg = encode(Image.fromarray(rgb), "JPEG", quality=90)
    pillow = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    fast = decode_image(jpeg, "a.jpg", mode="rgb")
    assert np.abs(fast.astype(int) - pillow).max() <= 1
    gray_pillow = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    assert np.abs(decode_image(jpeg, "a.jpg", mode="gray").astype(int) - gray_pillow).max() <= 1
    gray_jpeg = encode(Image.fromarray(rgb).convert("L"), "JPEG", quality=90)
    assert decode_image(gray_jpeg, "g.jpg").ndim == 2
    assert decode_image(gray_jpeg, "g.jpg", mode="rgb").shape == (64, 48, 3)
    assert decode_image_reduced(jpeg, "a.jpg", min_side=16)[0].shape == (32, 24, 3)
    # A truncated file has no end-of-image marker: Pillow decodes it and refuses it.
    with pytest.raises(DataError, match=r"truncated|corrupt"):
        decode_image(jpeg[: len(jpeg) // 2], "cut.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_a_photo_with_an_exif_orientation_comes_out_upright_once(tmp_path, fmt):
    """Stored 40 wide and 80 high with orientation 6 (turn 90 degrees): shown 80 wide, 40 high,
    whether the decoder turns it (TIFF) or the caller does (JPEG)."""
    from helpers.core.images import exif_orientation, turn_upright

    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"phone.{fmt.lower()}"
    Image.fromarray(np.zeros((80, 40, 3), np.uint8)).save(path, format=fmt, exif=exif)
    with Image.open(path) as img:
        orientation = exif_orientation(img)
    shown = turn_upright(read_image(str(path), mode="rgb"), orientation)
    assert shown.shape[:2] == (40, 80)
