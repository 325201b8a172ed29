"""RAF-DB basic, as released and as redistributed in numbered class folders: codes mapped to the
shared order, the official split kept, the original photos and annotations left alone and said
so, the compound set refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import jpeg, write_zip
from helpers.core.errors import DataError
from helpers.core.images import close_archives, read_image
from helpers.core.labels import SYNONYMS
from helpers.data.datasets import detect_source, read_source
from helpers.data.datasets.rafdb import CODES, raf_class_index, read_rafdb

# (name in the label file, code): one face per code across both splits
LABELS = [
    ("train_00001.jpg", 1),
    ("train_00002.jpg", 2),
    ("train_00003.jpg", 3),
    ("train_00004.jpg", 4),
    ("test_0001.jpg", 5),
    ("test_0002.jpg", 6),
    ("test_0003.jpg", 7),
]


@pytest.fixture(autouse=True)
def _closed_archives():
    yield
    close_archives()


def _release(extra_lines: str = "", root: str = "RAF-DB/basic") -> dict[str, bytes]:
    """The released layout's members: labels, aligned faces, originals and annotations, and the
    oddities a reader must count: a face without a label, a label without a face, a bad line."""
    lines = "".join(f"{name} {code}\n" for name, code in LABELS)
    members = {f"{root}/EmoLabel/list_patition_label.txt": (lines + extra_lines).encode()}
    for name, code in LABELS:
        stem = name.split(".")[0]
        if stem != "test_0003":  # labelled, its face missing
            members[f"{root}/Image/aligned/{stem}_aligned.jpg"] = jpeg(30 * code, 100)
        members[f"{root}/Image/original/{stem}.jpg"] = jpeg(200, 300)
        members[f"{root}/Annotation/manual/{stem}_manu_attri.txt"] = b"12.0 30.5\n"
    members[f"{root}/Image/aligned/train_00099_aligned.jpg"] = jpeg(5, 100)  # no label
    members[f"{root}/Image/aligned/test_0002_aligned.png"] = jpeg(6, 100)  # the same face twice
    members[f"{root}/README.pdf"] = b"%PDF-1.4"
    return members


def _folder(members: dict[str, bytes], root: Path) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_the_codes_map_to_the_shared_classes() -> None:
    named = {code: SYNONYMS[name] for code, name in CODES.items()}
    assert named == {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}  # surprise ... neutral
    assert [raf_class_index(n) for n in ("4", " 7", "0", "8", "happy", "04x")] == [
        1,
        0,
        None,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize("as_zip", [False, True])
def test_the_release_is_read_face_by_face_with_its_split(tmp_path: Path, as_zip: bool) -> None:
    members = _release("train_00005.jpg 0\ntrain_00006.jpg\nnot a line at all 3\n")
    source = (
        write_zip(tmp_path / "raf.zip", members) if as_zip else _folder(members, tmp_path / "raf")
    )
    assert detect_source(source) == "rafdb"
    result = read_source(source)
    records = result.records.set_index("id")
    assert list(records.index) == [
        "test_0001",
        "test_0002",
        "train_00001",
        "train_00002",
        "train_00003",
        "train_00004",
    ]
    expected = {n.split(".")[0]: SYNONYMS[CODES[c]] for n, c in LABELS}
    assert records["expression"].to_dict() == {k: expected[k] for k in records.index}
    assert records.loc["train_00004", "expression"] == SYNONYMS["happy"]
    assert records["split"].to_dict() == {k: k.split("_")[0] for k in records.index}
    assert read_image(records.loc["train_00001", "image"]).shape[:2] == (100, 100)
    assert result.dropped == {
        "code not 1-7": 1,
        "label line not `train_00001.jpg 5`": 2,
        "labelled face missing (no Image/aligned/ file)": 1,
        "aligned face without a label": 1,
        "duplicate id": 1,
        "not a RAF-DB face or label file": 1,
    }
    assert result.examples["labelled face missing (no Image/aligned/ file)"] == ["test_0003"]
    assert any("7 original photos" in note for note in result.notes)
    assert any("7 annotation files not read" in note for note in result.notes)


def test_an_oversized_label_file_is_refused_by_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("helpers.data.datasets.rafdb._MAX_LABEL_BYTES", 50)
    with pytest.raises(DataError, match=r"list_patition_label\.txt\): 1\d\d bytes, not a label"):
        read_rafdb(_folder(_release(), tmp_path / "raf"))


def test_compound_labels_are_refused_by_name(tmp_path: Path) -> None:
    compound = _release("train_00007.jpg 11\n")
    with pytest.raises(
        DataError,
        match=r"a \(RAF-DB/basic/EmoLabel/list_patition_label\.txt:8\): code 11: the compound set",
    ):
        read_rafdb(_folder(compound, tmp_path / "a"))
    only = _release(root="RAF-DB/compound")
    with pytest.raises(DataError, match="compound set's labels"):
        read_rafdb(_folder(only, tmp_path / "b"))


def test_the_redistribution_reads_its_numbered_folders(tmp_path: Path) -> None:
    members = {}
    for split in ("train", "test"):
        for code in CODES:
            for k in range(2):
                name = f"DATASET/{split}/{code}/{split}_{code:03d}{k:02d}_aligned.jpg"
                members[name] = jpeg(20 * code, 100)
    members["train_labels.csv"] = b"image,label\ntrain_00100_aligned.jpg,1\n"
    source = write_zip(tmp_path / "rafdb.zip", members)
    assert detect_source(source) == "rafdb"
    result = read_source(source)
    records = result.records
    assert len(records) == 28 and set(records["split"]) == {"train", "test"}
    by_folder = records.set_index(records["id"].str.split("/").str[1])["expression"]
    assert {code: int(by_folder[str(code)].iloc[0]) for code in CODES} == {
        code: SYNONYMS[name] for code, name in CODES.items()
    }
    assert (by_folder.groupby(level=0).nunique() == 1).all()


def test_numbered_folders_of_other_images_are_not_taken_for_rafdb(tmp_path: Path) -> None:
    members = {
        f"data/{split}/{code}/img{k}.jpg": jpeg()
        for split in ("train", "test")
        for code in range(1, 8)
        for k in range(2)
    }
    source = write_zip(tmp_path / "numbers.zip", members)
    with pytest.raises(DataError, match="no reader recognises"):
        detect_source(source)


def test_a_release_without_its_faces_says_what_is_missing(tmp_path: Path) -> None:
    labels_only = {"basic/EmoLabel/list_patition_label.txt": b"train_00001.jpg 4\n"}
    folder = _folder(labels_only, tmp_path / "labels")
    assert detect_source(folder) == "rafdb"  # the label file's name is the release's alone
    with pytest.raises(DataError, match=r"no RAF-DB face could be read \(dropped: 1 x labelled"):
        read_rafdb(folder)
    packed = _folder({**labels_only, "basic/Image/aligned.zip": b"PK"}, tmp_path / "packed")
    with pytest.raises(DataError, match=r"aligned\.zip\): the aligned faces are still in this"):
        read_source(packed)
    with pytest.raises(DataError, match="not found"):
        read_rafdb(tmp_path / "nothing")
