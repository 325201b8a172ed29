"""Folder layouts users give the readers: split folder names, nested folders, whole photos,
image formats, and sources no reader takes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from builders import faces, png, write_tree, write_zip
from helpers.core.errors import DataError
from helpers.core.images import (
    AVIF_DECODES,
    NOT_DECODED_HEIC,
    is_image_header,
    read_image,
    still_photo_format,
    unsupported_image,
)
from helpers.data.datasets import read_source
from helpers.data.datasets.folders import read_class_tree, split_of


def splits_of(result) -> dict[str, str | None]:
    """Each record's top folder -> its split (None when it has none)."""
    tops = result.records["id"].str.split("/").str[0]
    splits = result.records["split"].where(result.records["split"].notna(), None)
    return dict(zip(tops, splits, strict=True))


# ---- split folders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "split"),
    [("PrivateTest", "test"), ("PublicTest", "val"), ("Training", "train"),
     ("train_set", "train"), ("val_set", "val"), ("test_set", "test"), ("holdout", "test")],
)  # fmt: skip
def test_split_folders_named_as_fer_usage_or_set_names_keep_their_split(name, split):
    assert split_of(name) == split


def test_a_held_out_folder_named_as_fer_usage_is_kept_as_test(tmp_path):
    tree = faces("Train/happy", "Train/sad", "PrivateTest/happy", "PrivateTest/sad")
    result = read_source(write_zip(tmp_path / "splits.zip", tree), progress=False)
    assert splits_of(result) == {"Train": "train", "PrivateTest": "test"}


def test_a_folder_of_class_folders_beside_split_folders_under_another_name_is_refused(tmp_path):
    tree = faces("train/happy", "train/sad", "eval/happy", "eval/sad")
    with pytest.raises(DataError) as err:
        read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    text = str(err.value)
    assert "eval/ holds class folders beside the split folders train/" in text
    assert "privatetest" in text and "\n" not in text


def test_folders_of_class_folders_none_a_split_are_named_in_a_note(tmp_path):
    tree = faces("studio/happy", "studio/sad", "street/happy", "street/sad")
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert len(result.records) == 8 and result.records["split"].isna().all()
    assert any(n.startswith("street/, studio/ hold class folders but their names are no split's")
               for n in result.notes)  # fmt: skip


def test_a_folder_of_class_folders_beside_class_folders_is_named_in_a_note(tmp_path):
    tree = faces("happy", "sad", "extra/happy", "extra/sad")
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert len(result.records) == 8
    said = "extra/ holds class folders but its name is no split's"
    assert any(n.startswith(said) for n in result.notes)


def test_one_wrapper_folder_needs_no_note(tmp_path):
    result = read_class_tree(write_tree(tmp_path / "mine", faces("data/happy", "data/sad")),
                             progress=False)  # fmt: skip
    assert len(result.records) == 4 and not result.notes


# ---- sub-folders of class folders ------------------------------------------------------------


def test_images_in_sub_folders_of_a_class_folder_are_read_as_that_class(tmp_path):
    tree = faces("happy/person01", "happy/person02", "sad", "sad/2019 trip/été", "misc")
    root = write_tree(tmp_path / "mine", tree)
    result = read_source(root, progress=False)
    assert result.reader == "folders"
    assert result.class_counts()[["Happy", "Sad"]].tolist() == [4, 4]
    assert result.dropped == {"unknown class folder": 2}
    assert "6 images in sub-folders of class folders read as that class, e.g. " \
           "happy/person01/, happy/person02/" in result.notes  # fmt: skip


def test_class_folders_holding_only_sub_folders_are_detected(tmp_path):
    root = write_tree(tmp_path / "mine", faces("happy/person01", "sad/person02", "sad/person03"))
    result = read_source(root, progress=False)
    assert result.reader == "folders" and len(result.records) == 6


# ---- whole photos ----------------------------------------------------------------------------


def photo(width: int, height: int) -> bytes:
    """A plain JPEG of the given size (only its header is read)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 100, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_whole_photos_in_class_folders_are_said_to_be_no_face_crops(tmp_path):
    tree = {**faces("happy", "sad"), "happy/selfie.jpg": photo(480, 640),
            "sad/street.jpg": photo(800, 600)}  # fmt: skip
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert len(result.records) == 6
    assert any(n.startswith("2 images of 6 look like whole photos, not face crops (e.g. "
                            "happy/selfie.jpg, 480x640: large and far from square")
               and "face-box CSV" in n for n in result.notes)  # fmt: skip


def test_every_whole_photo_is_counted_and_listed_in_the_ingest_report(tmp_path):
    """Photos past the first images read are counted too, each named in the report's row."""
    tree = {**{f"{folder}/{k}.png": png(k) for folder in ("happy", "sad") for k in range(40)},
            **{f"sad/z_photo{k:02d}.jpg": photo(640, 480) for k in range(20)}}  # fmt: skip
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert any(n.startswith("20 images of 100 look like whole photos") for n in result.notes)
    row = result.summary().set_index("reason").loc["whole photo, not a face crop"]
    assert row["outcome"] == "kept" and row["count"] == 20
    assert row["examples"].split(", ") == [f"sad/z_photo{k:02d}.jpg" for k in range(20)]
    assert not any("whole photo" in problem for problem in result.problems())  # the note says it


def test_without_header_checks_only_a_sample_is_opened_for_the_photo_check(tmp_path, monkeypatch):
    """check_headers=False opens at most 64 images, and the note says it is of a sample."""
    from helpers.data.datasets.folders import FileTree

    tree = {**{f"{folder}/{k}.png": png(k) for folder in ("happy", "sad") for k in range(100)},
            **{f"sad/z_photo{k:02d}.jpg": photo(640, 480) for k in range(40)}}  # fmt: skip
    heads = []
    real_head = FileTree.head
    monkeypatch.setattr(FileTree, "head", lambda self, member, n=32: heads.append(member)
                        or real_head(self, member, n))  # fmt: skip
    source = write_tree(tmp_path / "mine", tree)
    result = read_class_tree(source, check_headers=False, progress=False)
    assert len(result.records) == 240 and len(heads) <= 64
    assert any(n.startswith("10 images of 60 checked (a sample of 240) look like whole photos")
               for n in result.notes)  # fmt: skip
    heads.clear()
    read_class_tree(source, progress=False)
    assert len(heads) == 240  # with the checks: each header read once, for both


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"exif": b"E" * 9000})],
)
def test_sizes_read_by_hand_match_pillows(fmt, options):
    from helpers.core.images import header_size
    from helpers.data.datasets.folders import quick_size

    for shape in ((48, 40), (480, 640, 3)):
        buf = io.BytesIO()
        Image.fromarray(np.zeros(shape, np.uint8)).save(buf, fmt, **options)
        head = buf.getvalue()[:4096]
        assert quick_size(head) in (header_size(head), None)  # None: past the bytes given
        if "exif" not in options:
            assert quick_size(head) == shape[:2]


def test_large_square_face_crops_are_not_taken_for_photos(tmp_path):
    tree = {**faces("happy", "sad"), "happy/big.jpg": photo(512, 512),
            "sad/wide_small.jpg": photo(160, 90)}  # fmt: skip
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert len(result.records) == 6 and not result.notes


# ---- folders merged into one class -----------------------------------------------------------


@pytest.mark.parametrize("pair", [("joy", "happiness"), ("Happy", "happy")])
def test_differently_named_folders_read_as_one_class_are_named(tmp_path, pair):
    tree = faces(*pair, "sad", "neutral")
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert result.class_counts()["Happy"] == 4
    merged = f"{pair[1]}/, {pair[0]}/" if pair[0] == "joy" else f"{pair[0]}/, {pair[1]}/"
    assert (f"folders of different names read as one class: {merged} as Happy (move one "
            "out if they are different classes)") in result.notes  # fmt: skip


def test_one_name_in_several_splits_is_no_merge(tmp_path):
    tree = {f"{split}/{name}": data for split in ("train", "test")
            for name, data in faces("happy", "sad").items()}  # fmt: skip
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert not any("different names" in note for note in result.notes)


# ---- face-box CSV ----------------------------------------------------------------------------


def test_a_listed_image_whose_name_differs_only_in_case_is_named(tmp_path):
    write_tree(tmp_path, {"Images/B.JPG": png(), "images2/c.png": png()})
    (tmp_path / "labels.csv").write_text(
        "image,label\nimages/b.jpg,happy\nimages2/c.png,sad\nimages/none.jpg,sad\n"
    )
    result = read_source(tmp_path / "labels.csv", cache_dir=tmp_path / "c", progress=False)
    assert result.dropped == {"missing image": 2}
    assert result.examples["missing image"] == [
        "row 0: images/b.jpg (did you mean B.JPG?)", "row 2: images/none.jpg",
    ]  # fmt: skip
    assert any(
        n.startswith(
            "1 missing image exists under a name that differs only in "
            "letter case, e.g. b.jpg is B.JPG on disk"
        )
        for n in result.notes
    )


# ---- photo formats ---------------------------------------------------------------------------

HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(40)
AVIF_HEAD = b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miafMA1B" + bytes(40)
AVIF_AS_HEIF_HEAD = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf" + bytes(40)


def avif(size: int = 16) -> bytes:
    """A small real AVIF photo (where this Pillow writes AVIF)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 120, np.uint8)).save(buf, format="AVIF")
    return buf.getvalue()


def test_heic_and_avif_photos_are_told_apart_by_their_first_bytes():
    assert still_photo_format(AVIF_HEAD) == still_photo_format(AVIF_AS_HEIF_HEAD) == "avif"
    assert still_photo_format(HEIC_HEAD) == "heif" and still_photo_format(png()) is None
    assert unsupported_image(HEIC_HEAD) == NOT_DECODED_HEIC and unsupported_image(png()) is None
    assert is_image_header(AVIF_HEAD) == AVIF_DECODES


def test_heic_photos_in_class_folders_are_dropped_with_the_advice(tmp_path):
    tree = {**faces("happy", "sad"), "happy/y.heic": HEIC_HEAD, "sad/phone.jpg": HEIC_HEAD}
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert result.dropped == {NOT_DECODED_HEIC: 2}
    assert "convert it to JPEG or PNG" in NOT_DECODED_HEIC


@pytest.mark.skipif(not AVIF_DECODES, reason="this Pillow has no AVIF plugin")
def test_avif_photos_are_read_by_the_readers_as_the_predictor_reads_them(tmp_path):
    tree = {**faces("happy", "sad"), "happy/x.avif": avif(), "sad/named.jpg": avif()}
    result = read_class_tree(write_tree(tmp_path / "mine", tree), progress=False)
    assert len(result.records) == 6 and result.dropped == {}
    for image in result.records["image"]:
        assert read_image(image, mode="rgb").shape[2] == 3


# ---- paths that are no dataset ---------------------------------------------------------------


def _tar(path):
    """A .tar.gz of class folders."""
    import tarfile

    folder = write_tree(path.parent / "to_tar", faces("happy", "sad"))
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder, arcname="faces")
    return path


def _zip_in_folder(folder):
    """A folder holding a dataset's zip and nothing else."""
    folder.mkdir()
    write_zip(folder / "aff.zip", faces("happy", "sad"))
    return folder


def _file(folder, name, data):
    """One file in a folder."""
    return write_tree(folder, {name: data}) / name


MP4_HEAD = b"\x00\x00\x00\x18ftypisom" + bytes(64)
RAR_HEAD = b"Rar!\x1a\x07\x00" + bytes(64)
NO_DATASETS = {
    "tar": (lambda p: _tar(p / "faces.tar.gz"), "a tar archive, which no reader opens: extract"),
    "empty folder": (lambda p: (p / "empty").mkdir() or p / "empty", "an empty folder"),
    "one photo": (lambda p: _file(p, "base.jpg", png()), "a single image, not a dataset"),
    "video": (lambda p: _file(p, "clip.mp4", MP4_HEAD), "a video, not a dataset"),
    "rar named zip": (lambda p: _file(p, "data.zip", RAR_HEAD), "a RAR archive, which no reader"),
    "folder of a zip": (lambda p: _zip_in_folder(p / "holder"), "holds aff.zip and no images: "),
}


@pytest.mark.parametrize("case", NO_DATASETS)
def test_a_path_no_reader_takes_is_said_in_one_line_without_the_format_list(tmp_path, case):
    make, said = NO_DATASETS[case]
    with pytest.raises(DataError) as err:
        read_source(make(tmp_path), progress=False)
    text = str(err.value)
    assert said in text and "\n" not in text and "Supported formats" not in text
    assert "The readers take a folder or a .zip of class folders" in text
