"""AffectNet as released: the file lists' rows read (a header, a `#` header or none), faces
cropped by their own boxes with the landmarks moved along, boxes past the photo cut to it,
ratings of -2 read as missing, codes 8-10 left out and counted, a photo in both lists kept in
test, bad rows and paths named."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.core.errors import DataError
from helpers.core.images import read_image
from helpers.core.labels import SYNONYMS
from helpers.data.datasets import detect_source, read_source
from helpers.data.datasets.affectnet_release import (
    COLUMNS,
    looks_like_affectnet_release,
    read_affectnet_release,
)

PHOTO = (160, 200)  # height, width of every photo


def _landmarks(x: float, y: float) -> str:
    """68 points, the first at (x, y), each next one a pixel to the right."""
    return ";".join(f"{x + k:.2f};{y:.2f}" for k in range(68))


def _row(
    name: str,
    code: int,
    box: tuple[int, int, int, int] = (40, 30, 80, 90),
    valence: float = 0.5,
    arousal: float = -0.25,
    lnd: str = "",
) -> str:
    """A file-list line; the landmarks start 5 px right of and 10 px below the box's corner."""
    x, y, w, h = box
    lnd = lnd or _landmarks(x + 5, y + 10)
    return f"{name},{x},{y},{w},{h},{lnd},{code},{valence},{arousal}\n"


def _photo(path: Path, box: tuple[int, int, int, int], shade: int) -> None:
    """A photo whose face box (clipped to it) is filled with one shade, the rest black."""
    pixels = np.zeros((*PHOTO, 3), np.uint8)
    x, y, w, h = box
    pixels[max(y, 0) : y + h, max(x, 0) : x + w] = shade
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")  # lossless, whatever the name says


def _release(root: Path, header: str = "") -> Path:
    """The extracted release: file lists (training.csv with a header, validation.csv without)
    and photos, with the rows a reader must count."""
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    photos = root / "Manually_Annotated" / "Manually_Annotated_Images"  # one folder down
    listed = [
        ("689/happy.jpg", 1, (40, 30, 80, 90), 200),
        ("689/contempt.JPG", 7, (10, 20, 60, 70), 150),
        ("12/fewpoints.jpg", 2, (100, 50, 50, 60), 90),
        ("12/edge.jpg", 3, (150, 100, 60, 70), 120),  # 10 px past the right, 10 past the bottom
        ("12/away.jpg", 3, (180, 140, 60, 70), 120),  # mostly outside: dropped
        ("12/two.jpg", 4, (10, 10, 50, 50), 70),
    ]
    training = (header or ",".join(COLUMNS)) + "\n"
    for name, code, box, shade in listed:
        lnd = "1;2;3" if "fewpoints" in name else ""
        ratings = (0.75, 0.1) if code == 1 else (0.5, -0.25)
        training += _row(name, code, box, *ratings, lnd)
        _photo(photos / name, box, shade)
    training += _row("12/two.jpg", 5, (100, 60, 50, 50))  # a second face of the same photo
    training += _row("12/two.jpg", 5, (100, 60, 50, 50))  # ... listed twice
    training = training.replace(_row("689/contempt.JPG", 7, (10, 20, 60, 70)), "")
    training += _row("689/contempt.JPG", 7, (10, 20, 60, 70), -2, -2)  # no rating: both missing
    for code in (8, 9, 10):
        training += _row(f"12/code{code}.jpg", code)
    training += _row("12/absent.jpg", 3)
    training += "12/short.jpg,1,2,3\n"
    training += "12/null.jpg,NULL,1,2,3,1;2,1,0,0\n"
    training += _row("12/eleven.jpg", 11)
    training += _row("12/both.jpg", 0) + _row("..\\secret.jpg", 0) + _row("/etc/x.jpg", 0)
    (lists / "training.csv").write_text(training)
    validation = _row("7\\val.png", 6, valence=0.9, arousal=1.5) + _row("12/both.jpg", 0)
    (lists / "validation.csv").write_text((header + "\n" if header else "") + validation)
    _photo(photos / "7" / "val.png", (40, 30, 80, 90), 60)
    _photo(photos / "12" / "both.jpg", (40, 30, 80, 90), 30)
    return root


def test_the_release_is_read_face_by_face(tmp_path: Path) -> None:
    source = _release(tmp_path / "AffectNet")
    assert detect_source(source) == "affectnet_release"
    result = read_source(source, cache_dir=tmp_path / "cache")
    records = result.records.set_index("id")
    assert sorted(records.index) == [
        "test/12/both.jpg",
        "test/7/val.png",
        "train/12/edge.jpg",
        "train/12/fewpoints.jpg",
        "train/12/two.jpg",
        "train/12/two.jpg#2",
        "train/689/contempt.JPG",
        "train/689/happy.jpg",
    ]
    expected = {"happy.jpg": "happy", "contempt.JPG": "contempt", "val.png": "anger"}
    for ident, name in expected.items():
        row = records.loc[next(i for i in records.index if i.endswith(ident))]
        assert row["expression"] == SYNONYMS[name]
    splits = records["split"].to_dict()
    assert splits["test/7/val.png"] == "test" and splits["train/689/happy.jpg"] == "train"
    happy = records.loc["train/689/happy.jpg"]
    assert (happy["valence"], happy["arousal"]) == (0.75, 0.1)
    contempt = records.loc["train/689/contempt.JPG", ["valence", "arousal"]].astype(float)
    assert np.isnan(contempt).all()
    assert records.loc["test/7/val.png", "valence"] == 0.9
    assert np.isnan(records.loc["test/7/val.png", "arousal"])  # 1.5: outside [-1, 1]
    # each face is its own box and nothing else, the landmarks in the crop's pixels
    for ident, (w, h, shade) in {
        "train/689/happy.jpg": (80, 90, 200),
        "train/689/contempt.JPG": (60, 70, 150),
        "train/12/two.jpg": (50, 50, 70),
        "train/12/edge.jpg": (50, 60, 120),  # cut to the photo
    }.items():
        face = read_image(records.loc[ident, "image"])
        assert face.shape[:2] == (h, w) and (face == shade).all(), ident
        assert records.loc[ident, "landmarks"][0].tolist() == [5.0, 10.0], ident
    assert records.loc["train/689/happy.jpg", "landmarks"][67].tolist() == [72.0, 10.0]
    assert (read_image(records.loc["train/12/two.jpg#2", "image"]) == 0).all()  # the other box
    assert records.loc["train/12/fewpoints.jpg", "landmarks"] is None
    assert result.dropped == {
        "expression 8 (none)": 1,
        "expression 9 (uncertain)": 1,
        "expression 10 (no face)": 1,
        "missing image": 1,
        "malformed line (not the release's nine columns)": 1,
        "box or expression not a whole number": 1,
        "expression code not 0-10": 1,
        "box mostly outside the image": 1,
        "face listed twice": 1,
        "photo also in validation.csv (kept in test)": 1,
        "photo path outside the images folder": 2,
    }
    assert result.examples["missing image"] == ["training.csv:13"]
    assert result.repaired == {"box clipped to the image": 1}
    assert result.nulled == {
        "valence -2 (no rating)": 1,
        "arousal -2 (no rating)": 1,
        "arousal not a number in [-1, 1]": 1,
        "landmarks not 136 numbers": 1,
    }


def test_a_hash_header_in_both_lists_and_a_margin_around_each_box(tmp_path: Path) -> None:
    source = _release(tmp_path / "a", header="#" + ",".join(COLUMNS))
    assert looks_like_affectnet_release(source)
    result = read_affectnet_release(source, cache_dir=tmp_path / "cache", margin=0.25)
    # the `#` header lines are not rows: short.jpg is the one malformed line
    assert result.dropped["malformed line (not the release's nine columns)"] == 1
    happy = result.records.set_index("id").loc["train/689/happy.jpg"]
    assert read_image(happy["image"]).shape[:2] == (90 + 2 * 22, 80 + 2 * 20)
    assert happy["landmarks"][0].tolist() == [5.0 + 20, 10.0 + 22]


def test_a_second_read_reuses_the_crops(tmp_path: Path) -> None:
    source = _release(tmp_path / "a")
    first = read_affectnet_release(source, cache_dir=tmp_path / "cache", progress=False)
    crop = Path(first.records["image"].iloc[0])
    stamp = crop.stat().st_mtime_ns
    os.utime(crop, ns=(stamp, stamp))
    second = read_affectnet_release(source, cache_dir=tmp_path / "cache", progress=False)
    assert second.records["image"].tolist() == first.records["image"].tolist()
    assert crop.stat().st_mtime_ns == stamp  # not written again


def test_the_images_folder_is_found_or_named_and_the_automatic_part_noted(tmp_path: Path) -> None:
    source = _release(tmp_path / "a")
    moved = tmp_path / "elsewhere"
    (source / "Manually_Annotated" / "Manually_Annotated_Images").rename(moved)
    with pytest.raises(DataError, match="no Manually_Annotated_Images/ folder found"):
        read_affectnet_release(source, cache_dir=tmp_path / "cache")
    (source / "Automatically_annotated_file_list").mkdir()
    result = read_affectnet_release(source, images_dir=moved, cache_dir=tmp_path / "cache")
    assert len(result.records) == 8
    assert result.notes == [
        "the automatically annotated part (Automatically_annotated_file_list/) is not read"
    ]


def test_a_broken_line_is_named_and_other_folders_are_not_the_release(tmp_path: Path) -> None:
    source = _release(tmp_path / "a")
    lists = source / "Manually_Annotated_file_lists"
    text = (lists / "validation.csv").read_text()
    (lists / "validation.csv").write_text(text + '9/q.jpg,1,2,3,4,"' + "x" * 200_000 + "\n")
    with pytest.raises(DataError, match=r"validation\.csv: line 3: not CSV"):
        read_affectnet_release(source, cache_dir=tmp_path / "cache")
    other = tmp_path / "other" / "Manually_Annotated_file_lists"
    other.mkdir(parents=True)
    (other / "training.csv").write_text("image,label\na.jpg,happy\n")
    assert not looks_like_affectnet_release(tmp_path / "other")
    with pytest.raises(DataError, match="expected the folder holding"):
        read_affectnet_release(other / "training.csv")
    rare = tmp_path / "rare"
    (rare / "Manually_Annotated_file_lists").mkdir(parents=True)
    (rare / "Manually_Annotated_Images").mkdir()
    (rare / "Manually_Annotated_file_lists" / "validation.csv").write_text(_row("1/a.jpg", 9))
    assert looks_like_affectnet_release(rare)
    with pytest.raises(DataError, match=r"no usable faces \(dropped: 1 x expression 9"):
        read_affectnet_release(rare, cache_dir=tmp_path / "cache")
