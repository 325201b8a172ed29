"""What the readers read, and say, when a user's data is almost right."""

from __future__ import annotations

import pytest
from PIL import Image

from builders import ROOT, faces, png, record, write_tree, write_zip
from helpers.core.errors import DataError
from helpers.core.images import close_archives
from helpers.data.datasets import detect_source, read_source
from helpers.data.datasets.affectnet import read_affectnet_zip
from helpers.data.datasets.csv_boxes import read_box_csv
from helpers.data.datasets.fer2013 import read_fer_csv


@pytest.fixture(autouse=True)
def _fresh_cache():
    yield
    close_archives()


def test_class_folders_not_named_after_expressions_are_named_with_the_accepted_names(tmp_path):
    tree = write_tree(tmp_path / "lang", faces("glücklich", "traurig", "suprise", "happy"))
    with pytest.raises(DataError, match="no reader recognises this source") as err:
        detect_source(tree)
    text = str(err.value)
    assert "names are not expressions: glücklich/, suprise/, traurig/ (only happy/ is one)" in text
    assert "neutral/calm, happy/happiness/joy" in text and "0_disgust" in text
    assert "- folders:" in text  # the formats are still listed
    one = write_zip(tmp_path / "one.zip", faces("My Faces/happy"))
    with pytest.raises(DataError, match=r"a single class folder \(happy/\)"):
        read_source(one)
    assert len(read_source(one, reader="folders", progress=False).records) == 2


def test_index_before_a_class_name_maps_by_the_name(tmp_path):
    tree = write_tree(tmp_path / "numbered", faces("0_disgust", "3-happy", "07 neutral", "5"))
    result = read_source(tree, progress=False)
    assert result.reader == "folders"
    folders = result.records["id"].str.split("/").str[0]
    by_folder = dict(zip(folders, result.records["expression"], strict=True))
    assert by_folder == {"0_disgust": 5, "3-happy": 1, "07 neutral": 0}
    assert result.dropped == {"unknown class folder": 2}  # a bare number names no class
    assert any("0_disgust" in note and "neutral/calm" in note for note in result.notes)


def test_a_printed_result_shows_examples_of_each_reason(tmp_path):
    tree = write_tree(tmp_path / "typo", faces("happy", "sad", "Freude", "suprise"))
    text = str(read_source(tree, progress=False))
    assert "  dropped 4 x unknown class folder, e.g. Freude/, suprise/" in text.splitlines()


def test_a_zip_holding_only_another_zip_says_to_unzip_it(tmp_path):
    inner = write_zip(tmp_path / "split.zip", faces("happy", "sad"))
    outer = write_zip(
        tmp_path / "nested.zip",
        {"dataset/split.zip": inner.read_bytes(), "__MACOSX/dataset/._split.zip": b"x"},
    )
    with pytest.raises(DataError, match=r"holds another zip \(dataset/split.zip\): unzip it"):
        read_source(outer)


def fer_lines(usages: list[str], sep: str = ",") -> str:
    """A FER-2013 CSV with one happy face per Usage value."""
    pixels = " ".join(["7"] * 48 * 48)
    rows = [sep.join(["emotion", "pixels", "Usage"])]
    rows += [sep.join(["3", pixels, usage]) for usage in usages]
    return "\n".join(rows) + "\n"


def test_fer_csv_reads_split_names_in_its_usage_column(tmp_path):
    usages = ["train", "Train", "val", "validation", "test", "TEST", "Training", "PublicTest",
              "holdout"]  # fmt: skip
    path = tmp_path / "fer.csv"
    path.write_text(fer_lines(usages))
    result = read_fer_csv(path, cache_dir=tmp_path / "c", progress=False)
    assert result.records["split"].tolist() == [
        "train", "train", "val", "val", "test", "test", "train", "val", "test",
    ]  # fmt: skip
    assert result.dropped == {}


def test_fer_csv_names_usage_values_it_cannot_map_and_the_option(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text(fer_lines(["train", "spare", "extra", "spare"]))
    result = read_fer_csv(path, cache_dir=tmp_path / "c", progress=False)
    assert result.dropped == {"unknown Usage": 3}
    assert result.examples["unknown Usage"] == ["row 00001: 'spare'", "row 00002: 'extra'"]
    assert "usage_splits={'spare': 'train', ...}" in " ".join(result.notes)
    path.write_text(fer_lines(["spare", "extra"]))
    with pytest.raises(DataError) as err:
        read_fer_csv(path, cache_dir=tmp_path / "c", progress=False)
    assert "2 x unknown Usage, e.g. row 00000: 'spare', row 00001: 'extra'" in str(err.value)
    assert "usage_splits=" in str(err.value)


# ---- separators -----------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_csvs_are_read(tmp_path, sep):
    write_tree(tmp_path, {"images/a.png": png(size=20)})
    boxes = tmp_path / "faces.csv"
    boxes.write_text(
        "\n".join(sep.join(row) for row in [["image", "label", "x", "y", "w", "h"],
                                            ["images/a.png", "happy", "2", "2", "10", "10"]])
    )  # fmt: skip
    assert detect_source(boxes) == "csv_boxes"
    result = read_source(boxes, cache_dir=tmp_path / "c", progress=False)
    assert len(result.records) == 1 and Image.open(result.records["image"][0]).size == (10, 10)
    fer = tmp_path / "fer" / "fer2013.csv"
    fer.parent.mkdir()
    fer.write_text(fer_lines(["Training", "PrivateTest"], sep))
    assert detect_source(fer) == "fer2013_csv"
    result = read_source(fer, cache_dir=tmp_path / "c", progress=False)
    assert result.records["split"].tolist() == ["train", "test"]


def test_box_csv_that_keeps_nothing_shows_examples(tmp_path):
    write_tree(tmp_path, {"images/a.png": png()})
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("image,label\nimages/a.png,3\nimages/a.png,3\nimages/a.png,4\n")
    with pytest.raises(DataError) as err:
        read_box_csv(numbers, cache_dir=tmp_path / "c", progress=False)
    # each value once, so the values to map show even when the first rows share one
    assert "(dropped: 3 x unknown label, e.g. row 0: '3', row 2: '4')" in str(err.value)
    assert "happy/happiness/joy" in str(err.value)
    missing = tmp_path / "missing.csv"
    missing.write_text("image,label\nimages/b.png,happy\nimages/c.png,sad\n")
    with pytest.raises(DataError) as err:
        read_box_csv(missing, cache_dir=tmp_path / "c", progress=False)
    assert "2 x missing image, e.g. row 0: images/b.png, row 1: images/c.png" in str(err.value)


def test_box_csv_reads_windows_separators_in_image_names(tmp_path):
    write_tree(tmp_path, {"images/a.png": png(size=20)})
    path = tmp_path / "faces.csv"
    path.write_bytes(b"image,label,x,y,w,h\r\nimages\\a.png,sad,1,1,8,8\r\n")
    result = read_box_csv(path, cache_dir=tmp_path / "c", progress=False)
    assert result.dropped == {} and result.records["id"].tolist() == ["000000_a"]


def test_columns_without_a_reader_choose_the_box_csv_reader(tmp_path):
    write_tree(tmp_path, {"images/a.png": png()})
    path = tmp_path / "faces.csv"
    path.write_text("filename,emotion\nimages/a.png,happy\n")
    with pytest.raises(DataError, match="no reader recognises"):
        detect_source(path)
    result = read_source(path, columns={"image": "filename", "label": "emotion"}, progress=False)
    assert result.reader == "csv_boxes" and result.records["expression"].tolist() == [1]


def test_affectnet_counts_valence_and_arousal_files_missing_for_some_records(tmp_path):
    path = write_zip(
        tmp_path / "a.zip",
        record("1"),
        record("2", val=None),
        record("3", val=None, aro=None),
    )
    result = read_affectnet_zip(path, progress=False)
    assert len(result.records) == 3
    assert result.nulled == {"valence missing": 2, "arousal missing": 1}
    assert result.examples["valence missing"] == [
        f"{ROOT}/annotations/2_val.npy",
        f"{ROOT}/annotations/3_val.npy",
    ]
    assert "nulled 2 x valence missing" in str(result)


def test_the_terminal_lines_carry_the_readers_notes(tmp_path):
    tree = write_tree(tmp_path / "typo", faces("happy", "sad", "Freude"))
    result = read_source(tree, progress=False)
    lines = result.terminal_lines()
    assert lines[1] == "dropped 2 x unknown class folder, e.g. Freude/"
    assert lines[2] == f"note: {'; '.join(result.notes)}" and "happy/happiness/joy" in lines[2]
    path = tmp_path / "fer.csv"
    path.write_text(fer_lines(["train", "spare"]))
    lines = read_fer_csv(path, cache_dir=tmp_path / "c", progress=False).terminal_lines()
    assert lines[-1].startswith("note: ") and "usage_splits={'spare': 'train', ...}" in lines[-1]
    kept = read_source(write_tree(tmp_path / "fine", faces("happy", "sad")), progress=False)
    assert len(kept.terminal_lines()) == 1  # nothing left out, nothing to note


def test_columns_choose_the_box_csv_reader_only_for_a_source_no_reader_recognises(tmp_path):
    """A missing path, or a zip of zips, is said as such rather than read as a face-box CSV."""
    columns = {"image": "filename", "label": "emotion"}
    with pytest.raises(DataError, match=r"missing\.csv: not found$"):
        read_source(tmp_path / "missing.csv", columns=columns, progress=False)
    inner = write_zip(tmp_path / "split.zip", faces("happy", "sad"))
    outer = write_zip(tmp_path / "nested.zip", {"dataset/split.zip": inner.read_bytes()})
    with pytest.raises(DataError, match=r"holds another zip \(dataset/split.zip\): unzip it"):
        read_source(outer, columns=columns, progress=False)


def test_the_first_line_of_a_csv_is_found_without_copying_the_text():
    import tracemalloc

    from helpers.data.datasets.csv_boxes import first_line

    assert first_line("emotion,pixels\r\n3,1 2\n") == "emotion,pixels"
    assert first_line("emotion;pixels") == "emotion;pixels" and first_line("") == ""
    assert first_line("\n  \r\n image\tlabel\n", skip_blank=True) == " image\tlabel"
    assert first_line("\n \n", skip_blank=True) == "" and first_line("\nx") == ""
    text = "emotion,pixels,Usage\n" + "3," + "7 " * 5_000_000 + ",Training\n"  # 10 MB
    tracemalloc.start()
    try:
        assert first_line(text) == first_line(text, skip_blank=True) == "emotion,pixels,Usage"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the rest of the text is not copied
