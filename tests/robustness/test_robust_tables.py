"""CSVs and label lists (face-box CSV, ExpW label.lst, fer2013.csv): a table that cannot be
used is refused naming the file; bad rows are dropped and counted; face crops go only to the
cache folder given, never beside the source."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from builders import encode
from helpers.core.errors import DataError
from helpers.data.datasets import read_source

PIXELS = " ".join(["128"] * 48 * 48)


@pytest.fixture
def source(tmp_path):
    """A folder with one 40x30 photo, as users keep beside their label files."""
    folder = tmp_path / "source"
    (folder / "image").mkdir(parents=True)
    photo = encode(Image.fromarray(np.full((30, 40, 3), 90, np.uint8)), "PNG")
    (folder / "image" / "p.png").write_bytes(photo)
    return folder


def write(path, text: str):
    """A text file, returned as its path."""
    path.write_text(text, encoding="utf-8")
    return path


def read(path, run, **kw):
    """Read through detection (or the reader named), caching crops inside the run folder."""
    return read_source(path, cache_dir=run / "cache", progress=False, **kw)


def test_missing_columns(tmp_path, source, untouched):
    run = tmp_path / "run"
    no_label = write(source / "faces.csv", "image,x,y,w,h\nimage/p.png,1,1,5,5\n")
    half_box = write(source / "half.csv", "image,label,x,y\nimage/p.png,happy,1,1\n")
    no_pixels = write(source / "fer.csv", "emotion,Usage\n3,Training\n")
    with untouched(allow=[run]):
        with pytest.raises(DataError, match="no reader recognises") as err:
            read(no_label, run)
        assert err.value.path == str(no_label)
        with pytest.raises(DataError, match=r"no label column \(looked for 'label'"):
            read(no_label, run, reader="csv_boxes")
        with pytest.raises(DataError, match=r"box columns incomplete for xywh: missing"):
            read(half_box, run)
        with pytest.raises(DataError, match="expected emotion and pixels columns"):
            read(no_pixels, run, reader="fer2013_csv")
    assert not run.exists()


def test_bad_boxes(tmp_path, source, untouched):
    run = tmp_path / "run"
    box_csv = write(
        source / "faces.csv",
        "image,label,x,y,w,h\n"
        + "\n".join(
            [
                "image/p.png,happy,2,2,10,10",  # fine
                "image/p.png,happy,35,2,10,10",  # past the right edge
                "image/p.png,happy,-1,2,10,10",  # negative
                "image/p.png,happy,2,2,0,10",  # zero area
                "image/p.png,happy,10,2,-5,10",  # inverted (negative width)
                "image/p.png,happy,nan,2,10,10",  # not a number
                "image/p.png,happy,inf,2,10,10",
                "image/p.png,happy,1e400,2,10,10",
            ]
        )
        + "\n",
    )
    label_lst = write(
        source / "label.lst",
        "\n".join(
            [
                "p.png 0 2 2 12 12 90 3",  # top left right bottom: fine
                "p.png 1 2 2 12 99 90 3",  # bottom past the edge
                "p.png 2 -3 2 12 12 90 3",
                "p.png 3 2 12 2 12 90 3",  # left == right
                "p.png 4 x 2 12 12 90 3",  # malformed
            ]
        )
        + "\n",
    )
    with untouched(allow=[run]):
        boxes = read(box_csv, run)
        expw = read(label_lst, run)
    assert len(boxes.records) == 1 and len(expw.records) == 1
    assert boxes.dropped == {
        "box outside the image": 1,
        "box has negative coordinates": 1,
        "box has zero area": 2,
        "unparseable box": 3,
    }
    assert expw.dropped == {
        "box outside the image": 1,
        "box has negative coordinates": 1,
        "box has zero area": 1,
        "malformed line": 1,
    }
    crops = {p.name for p in (run / "cache").rglob("*.png")}
    assert len(crops) == 2


def test_unknown_labels(tmp_path, source, untouched):
    run = tmp_path / "run"
    box_csv = write(
        source / "faces.csv",
        "image,label\n"
        + "\n".join(f"image/p.png,{label}" for label in ("Happiness", "bored", "", "7", "HAPPY "))
        + "\n",
    )
    label_lst = write(
        source / "label.lst",
        "p.png 0 2 2 12 12 90 3\np.png 1 2 2 12 12 90 7\np.png 2 2 2 12 12 90 -1\n",
    )
    fer_csv = write(
        source / "fer.csv",
        "emotion,pixels\n"
        + "\n".join(f"{e},{PIXELS}" for e in ("3", "7", "-1", "happy", "", "\u00b2"))
        + "\n",
    )
    # "\u00b2" (superscript two) is a digit to str.isdigit() but not to int()
    fer_digit = write(source / "fer2.csv", f"emotion,pixels\n\u00b2,{PIXELS}\n3,{PIXELS}\n")
    with untouched(allow=[run]):
        boxes, expw, fer = read(box_csv, run), read(label_lst, run), read(fer_csv, run)
        superscript = read(fer_digit, run)
    assert boxes.records["expression"].tolist() == [1, 1]
    assert boxes.dropped == {"unknown label": 3}
    assert boxes.examples["unknown label"] == ["row 1: 'bored'", "row 2: ''", "row 3: '7'"]
    assert expw.dropped == {"unknown label": 2}
    assert fer.records["expression"].tolist() == [1] and fer.dropped == {"unknown emotion": 5}
    assert superscript.examples["unknown emotion"] == ["row 00000: '\u00b2'"]


def test_fer_pixel_tokens_too_long_to_parse(tmp_path, source, untouched):
    run = tmp_path / "run"
    huge = " ".join(["1" * 23] + ["128"] * (48 * 48 - 1))
    padded = " ".join(["00128"] + ["128"] * (48 * 48 - 1))
    fer_csv = write(source / "fer.csv", f"emotion,pixels\n3,{PIXELS}\n3,{huge}\n3,{padded}\n")
    with untouched(allow=[run]):
        fer = read(fer_csv, run)
    assert fer.records["expression"].tolist() == [1, 1]  # zero-padded 128 is still 128
    assert fer.dropped == {"pixel out of range": 1}


def test_empty_files(tmp_path, source, untouched):
    run = tmp_path / "run"
    empty_csv = write(source / "faces.csv", "")
    header_only = write(source / "header.csv", "image,label,x,y,w,h\n")
    fer_header = write(source / "fer.csv", "emotion,pixels,Usage\n")
    empty_lst = write(source / "label.lst", "\n\n")
    with untouched(allow=[run]):
        with pytest.raises(DataError, match="no reader recognises"):
            read(empty_csv, run)
        with pytest.raises(DataError, match=r"not a readable CSV \(No columns to parse"):
            read(empty_csv, run, reader="csv_boxes")
        with pytest.raises(DataError, match="expected emotion and pixels columns, found"):
            read(empty_csv, run, reader="fer2013_csv")
        for path, what in ((header_only, "faces"), (fer_header, "rows"), (empty_lst, "faces")):
            with pytest.raises(DataError, match=rf"no usable {what} \(dropped: nothing found\)"):
                read(path, run)


def test_nul_byte_in_image_name(tmp_path, source, untouched):
    run = tmp_path / "run"
    path = write(source / "faces.csv", "image,label\nimage/p.png,happy\nimage/p\x00.png,sad\n")
    with untouched(allow=[run]):
        result = read(path, run)
    assert len(result.records) == 1 and sum(result.dropped.values()) == 1


def test_fer_csv_too_large_is_refused_before_reading(tmp_path, source, untouched):
    run = tmp_path / "run"
    huge = source / "fer2013.csv"
    with open(huge, "wb") as f:  # sparse: 3 GB on paper, a few bytes on disk
        f.write(f"emotion,pixels,Usage\n3,{PIXELS},Training\n".encode())
        f.truncate(3 * 1024**3)
    with (
        untouched(allow=[run]),
        pytest.raises(DataError, match=r"3\.0 GB is over the 2\.0 GB limit"),
    ):
        read(huge, run)
