"""AffectNet as released: the file lists' rows read (header or none), faces cropped by their box
with the landmarks moved along, ratings of -2 read as missing, codes 8-10 left out and counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.core.errors import DataError
from helpers.core.images import read_image
from helpers.core.labels import SYNONYMS
from helpers.data.datasets import detect_source, read_source
from helpers.data.datasets.affectnet_release import COLUMNS, read_affectnet_release

BOX = (40, 30, 80, 90)  # x, y, width, height of every face below


def _landmarks(x: float, y: float) -> str:
    """68 points, the first at (x, y), each next one a pixel to the right."""
    return ";".join(f"{x + k:.2f};{y:.2f}" for k in range(68))


def _row(name: str, code: int, valence: float = 0.5, arousal: float = -0.25, lnd: str = "") -> str:
    x, y, w, h = BOX
    lnd = lnd or _landmarks(x + 5, y + 10)
    return f"{name},{x},{y},{w},{h},{lnd},{code},{valence},{arousal}\n"


def _photo(path: Path, shade: int) -> None:
    """A 200x160 photo whose face box is filled with one shade, the rest black."""
    pixels = np.zeros((160, 200, 3), np.uint8)
    x, y, w, h = BOX
    pixels[y : y + h, x : x + w] = shade
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _release(root: Path) -> Path:
    """The extracted release: file lists (training.csv with its header, validation.csv without)
    and photos, with the rows a reader must count."""
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    training = ",".join(COLUMNS) + "\n"
    training += _row("689/happy.jpg", 1, 0.75, 0.1)
    training += _row("689/contempt.JPG", 7, -2, -2)  # no rating: both missing
    training += _row("12/none.jpg", 8) + _row("12/uncertain.jpg", 9) + _row("12/noface.jpg", 10)
    training += _row("12/fewpoints.jpg", 2, lnd="1;2;3")
    training += _row("12/absent.jpg", 3)
    training += "12/short.jpg,1,2,3\n"
    training += _row("12/happy.jpg", 11)
    (lists / "training.csv").write_text(training)
    (lists / "validation.csv").write_text(_row("7/val.png", 6, 0.9, 1.5))
    images = root / "Manually_Annotated_Images"
    for name, shade in (
        ("689/happy.jpg", 200),
        ("689/contempt.JPG", 150),
        ("12/none.jpg", 10),
        ("12/uncertain.jpg", 10),
        ("12/noface.jpg", 10),
        ("12/fewpoints.jpg", 90),
        ("7/val.png", 60),
    ):
        _photo(images / name, shade)
    return root


def test_the_release_is_read_face_by_face(tmp_path: Path) -> None:
    source = _release(tmp_path / "AffectNet")
    assert detect_source(source) == "affectnet_release"
    result = read_source(source, cache_dir=tmp_path / "cache")
    records = result.records.set_index("id")
    assert sorted(records.index) == [
        "test/7/val",
        "train/12/fewpoints",
        "train/689/contempt",
        "train/689/happy",
    ]
    assert records.loc["train/689/happy", "expression"] == SYNONYMS["happy"]
    assert records.loc["train/689/contempt", "expression"] == SYNONYMS["contempt"]
    assert records.loc["test/7/val", "expression"] == SYNONYMS["anger"]
    assert records["split"].to_dict() == {i: i.split("/")[0] for i in records.index}
    happy = records.loc["train/689/happy"]
    assert (happy["valence"], happy["arousal"]) == (0.75, 0.1)
    assert np.isnan(records.loc["train/689/contempt", ["valence", "arousal"]].astype(float)).all()
    assert records.loc["test/7/val", "valence"] == 0.9
    assert np.isnan(records.loc["test/7/val", "arousal"])  # 1.5: outside [-1, 1]
    face = read_image(happy["image"])
    assert face.shape[:2] == (BOX[3], BOX[2]) and (face == 200).all()  # the box, nothing else
    points = happy["landmarks"]
    assert points.shape == (68, 2) and points[0].tolist() == [5.0, 10.0]  # in the crop's pixels
    assert points[67].tolist() == [72.0, 10.0]
    assert records.loc["train/12/fewpoints", "landmarks"] is None
    assert result.dropped == {
        "expression 8 (none)": 1,
        "expression 9 (uncertain)": 1,
        "expression 10 (no face)": 1,
        "missing image": 1,
        "malformed line (not the release's nine columns)": 1,
        "expression code not 0-10": 1,
    }
    assert result.examples["missing image"] == ["training.csv:8 12/absent.jpg"]
    assert result.nulled == {
        "valence -2 (no rating)": 1,
        "arousal -2 (no rating)": 1,
        "arousal not a number in [-1, 1]": 1,
        "landmarks not 136 numbers": 1,
    }


def test_the_images_folder_is_found_or_named(tmp_path: Path) -> None:
    source = _release(tmp_path / "a")
    moved = tmp_path / "elsewhere"
    (source / "Manually_Annotated_Images").rename(moved)
    with pytest.raises(DataError, match="no Manually_Annotated_Images/ folder found"):
        read_affectnet_release(source, cache_dir=tmp_path / "cache")
    result = read_affectnet_release(source, images_dir=moved, cache_dir=tmp_path / "cache")
    assert len(result.records) == 4


def test_other_folders_and_files_are_not_taken_for_the_release(tmp_path: Path) -> None:
    lists = tmp_path / "other" / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    (lists / "training.csv").write_text("image,label\na.jpg,happy\n")
    from helpers.data.datasets.affectnet_release import looks_like_affectnet_release

    assert not looks_like_affectnet_release(tmp_path / "other")
    assert not looks_like_affectnet_release(lists / "training.csv")
    with pytest.raises(DataError, match="expected the folder holding"):
        read_affectnet_release(lists / "training.csv")
    only_rare = tmp_path / "rare"
    (only_rare / "Manually_Annotated_file_lists").mkdir(parents=True)
    (only_rare / "Manually_Annotated_Images").mkdir()
    (only_rare / "Manually_Annotated_file_lists" / "validation.csv").write_text(_row("1/a.jpg", 9))
    assert looks_like_affectnet_release(only_rare)
    with pytest.raises(DataError, match=r"no usable faces \(dropped: 1 x expression 9"):
        read_affectnet_release(only_rare, cache_dir=tmp_path / "cache")
