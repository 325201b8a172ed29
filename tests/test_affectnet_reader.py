"""AffectNet-layout zips: real-format npy values, every drop reason, splits, hostile archives."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import ROOT, jpeg, npy, record, write_zip
from helpers.core.archive import ArchiveLimits
from helpers.core.errors import ConfigError, DataError
from helpers.core.images import close_archives, parse_uri, read_image
from helpers.core.records import load_records, save_records
from helpers.data.datasets import READERS, ReadResult, detect_source, read_source, register_reader
from helpers.data.datasets.affectnet import looks_like_affectnet, read_affectnet_zip


@pytest.fixture(autouse=True)
def _fresh_cache():
    yield
    close_archives()


def landmarks(seed: int) -> np.ndarray:
    """136 floats x0,y0,x1,y1,... as the release stores them, on the 12x12 test image."""
    return np.random.default_rng(seed).uniform(0, 12, 136)


def build(path: Path, *records: dict[str, bytes], extra: dict[str, bytes] | None = None) -> Path:
    """An AffectNet-layout zip of record() members, then any extra members."""
    return write_zip(path, *records, extra or {})


def read(path: Path, **kw) -> ReadResult:
    """Read quietly."""
    return read_affectnet_zip(path, progress=False, **kw)


# ---- the happy path ---------------------------------------------------------------------


def test_valid_archive(tmp_path):
    lnd = landmarks(1)
    path = build(
        tmp_path / "a.zip",
        record("10", exp="3", val="-0.25", aro="0.5", lnd=lnd),
        record("2", exp="0", val="0.75", aro="-1", lnd=None),
        record("7", exp="7", val=None, aro=None),
    )
    result = read(path)
    df = result.records
    assert result.reader == "affectnet" and result.source == str(path)
    assert result.dropped == {}
    # 7 lacks the valence and arousal files the others have: blanked, and said
    assert result.nulled == {"valence missing": 1, "arousal missing": 1}
    assert df["id"].tolist() == ["2", "7", "10"]  # numeric order
    assert df["expression"].tolist() == [0, 7, 3]
    assert df["expression"].dtype == np.int64
    np.testing.assert_array_equal(df["valence"], [0.75, np.nan, -0.25])
    np.testing.assert_array_equal(df["arousal"], [-1.0, np.nan, 0.5])
    assert df["landmarks"][0] is None and df["landmarks"][1] is None
    np.testing.assert_array_equal(df["landmarks"][2], lnd.astype(np.float32).reshape(68, 2))
    assert df["landmarks"][2][0].tolist() == pytest.approx(lnd[:2].tolist(), rel=1e-6)
    assert (df["source"] == "affectnet").all() and df["split"].isna().all()
    for uri, ident in zip(df["image"], df["id"], strict=False):
        archive, member = parse_uri(uri)
        assert archive == str(path.resolve()) and member == f"{ROOT}/images/{ident}.jpg"
        image = read_image(uri)
        assert image.shape == (12, 12, 3) and image.dtype == np.uint8


@pytest.mark.parametrize(
    "exp",
    [
        np.array(5),
        np.array([5]),
        np.array(5.0),
        np.array(b"5"),
        np.array(["5"]),
        np.array(" 5 "),
        np.array(np.int8(5)),
    ],
)
def test_exp_formats_accepted(tmp_path, exp):
    path = build(
        tmp_path / "a.zip",
        record("1", exp=exp, val=np.array([0.1]), aro=np.array(-0.2, np.float32)),
    )
    df = read(path).records
    assert df["expression"].tolist() == [5]
    assert df["valence"][0] == pytest.approx(0.1)
    assert df["arousal"][0] == pytest.approx(-0.2)


@pytest.mark.parametrize(
    "lnd", [landmarks(3).reshape(68, 2), landmarks(3).astype(np.float32), landmarks(3).astype(str)]
)
def test_lnd_shapes_and_text_accepted(tmp_path, lnd):
    df = read(build(tmp_path / "a.zip", record("1", lnd=lnd))).records
    np.testing.assert_allclose(df["landmarks"][0], landmarks(3).reshape(68, 2), rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 68), (4, 34)])
def test_lnd_in_other_shapes_is_blanked_not_scrambled(tmp_path, shape):
    lnd = landmarks(3).reshape(68, 2).T.reshape(shape)  # a row of x and a row of y, and others
    result = read(build(tmp_path / "a.zip", record("1", lnd=lnd)))
    assert result.records["landmarks"][0] is None and len(result.records) == 1
    assert result.nulled == {"landmarks wrong shape": 1}


@pytest.mark.parametrize("shape", [(1, 136), (136, 1), (1, 68, 2)])
def test_lnd_with_extra_axes_of_length_one_is_read(tmp_path, shape):
    result = read(build(tmp_path / "a.zip", record("1", lnd=landmarks(3).reshape(shape))))
    np.testing.assert_allclose(result.records["landmarks"][0], landmarks(3).reshape(68, 2), 1e-6)
    assert result.nulled == {}


def test_any_prefix_and_no_prefix(tmp_path):
    deep = read(build(tmp_path / "deep.zip", record("1", root="my/own folder"))).records
    bare = read(build(tmp_path / "bare.zip", record("1", root=""))).records
    assert deep["id"].tolist() == bare["id"].tolist() == ["1"]
    assert parse_uri(bare["image"][0])[1] == "images/1.jpg"


def test_release_folders_give_splits(tmp_path):
    path = build(
        tmp_path / "a.zip",
        record("1", root="AffectNet/train_set"),
        record("2", root="AffectNet/train_set"),
        record("3", root="AffectNet/val_set"),
        record("1", root="AffectNet/val_set"),
    )  # same id in both: a duplicate
    result = read(path)
    df = result.records
    assert dict(zip(df["id"], df["split"], strict=False)) == {
        "1": "train",
        "2": "train",
        "3": "test",
    }
    assert result.dropped == {"duplicate id": 1}
    assert result.examples["duplicate id"] == ["AffectNet/val_set/images/1.jpg"]


def test_macos_junk_is_ignored(tmp_path):
    path = build(
        tmp_path / "a.zip",
        record("1"),
        extra={
            f"__MACOSX/{ROOT}/images/._1.jpg": b"\x00\x05\x16\x07",
            f"{ROOT}/images/.DS_Store": b"junk",
            f"{ROOT}/images/Thumbs.db": b"junk",
        },
    )
    result = read(path)
    assert len(result.records) == 1 and result.dropped == {}


def test_a_dot_folder_prefix_is_read_and_a_hidden_folder_passed_over(tmp_path):
    # "./Dataset/..." is how some zip tools name members; ".Trash/" is an OS folder.
    path = build(tmp_path / "a.zip", record("1", root="./Dataset"), record("2", root=".Trash/x"))
    result = read(path)
    assert result.records["id"].tolist() == ["1"] and result.dropped == {}


def test_deterministic_and_round_trips(tmp_path):
    path = build(
        tmp_path / "a.zip", *[record(str(i), exp=str(i % 8), lnd=landmarks(i)) for i in range(12)]
    )
    first, second = read(path).records, read(path).records
    pd.testing.assert_frame_equal(first, second)
    save_records(first, tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(load_records(tmp_path / "r.parquet"), first)


# ---- drops and blanks, counted by reason ------------------------------------------------


def test_invalid_records_dropped_and_counted(tmp_path):
    text = b"this is not a picture"
    path = build(
        tmp_path / "a.zip",
        record("1"),  # fine
        record("2", exp="-2"),  # AffectNet's 'uncertain'
        record("3", exp="9"),  # non-face
        record("4", exp="8"),
        record("5", exp="abc"),
        record("6", exp=None),  # no exp file
        record("7", exp="2.5"),
        record("8", exp=np.array([1, 2])),  # not a single value
        record("9", image=False),  # annotations, no image
        record("10", image=text),  # text named .jpg
        record("11", image=b""),  # zero-byte image
        record("12", exp=np.array(["3", {"x": 1}], dtype=object)),  # pickled exp
        record("13", exp=b"\x93NUMPY garbage"),
        record("14", exp=pickle.dumps(3)),  # a raw pickle
        extra={f"{ROOT}/images/15.jpg": jpeg()},  # image, no annotations
    )
    result = read(path)
    assert result.records["id"].tolist() == ["1"]
    assert result.dropped == {
        "expression out of range": 3,
        "unparseable exp": 4,
        "missing exp": 1,
        "missing image": 1,
        "not an image": 2,
        "pickled exp npy refused": 2,
        "image without annotations": 1,
    }
    assert result.nulled == {}
    ex = result.examples
    assert ex["expression out of range"] == [f"{ROOT}/annotations/{i}_exp.npy" for i in (2, 3, 4)]
    assert ex["missing exp"] == [f"{ROOT}/images/6.jpg"]
    assert ex["missing image"] == [f"{ROOT}/annotations/9_exp.npy"]
    assert ex["not an image"] == [f"{ROOT}/images/10.jpg", f"{ROOT}/images/11.jpg"]
    assert ex["image without annotations"] == [f"{ROOT}/images/15.jpg"]
    summary = result.summary()
    assert list(summary.columns) == ["reason", "outcome", "count", "examples"]
    assert summary["count"].sum() == 14 and summary["count"].is_monotonic_decreasing
    assert "unparseable exp" in str(result)


def test_bad_optional_values_blanked_and_counted(tmp_path):
    path = build(
        tmp_path / "a.zip",
        record("1", val="3.0", aro="nan"),
        record("2", val="-1.5", aro="inf", lnd=np.arange(10.0)),
        record(
            "3",
            val="abc",
            aro=np.array([0.1], dtype=object),
            lnd=np.where(np.arange(136) == 5, np.nan, 1.0),
        ),
        record("4", val="1", aro="-1", lnd=landmarks(4)),
    )
    result = read(path)
    df = result.records.set_index("id")
    assert result.dropped == {}
    assert result.nulled == {
        "valence out of range": 2,
        "arousal not finite": 2,
        "unparseable val": 1,
        "pickled aro npy refused": 1,
        "landmarks wrong length": 1,
        "landmarks not finite": 1,
    }
    assert df["valence"].isna().tolist() == [True, True, True, False]
    assert df["arousal"].isna().tolist() == [True, True, True, False]
    assert df["landmarks"].map(lambda v: v is None).tolist() == [True, True, True, False]
    assert result.examples["landmarks wrong length"] == [f"{ROOT}/annotations/2_lnd.npy"]
    assert df.loc["4", "valence"] == 1.0 and df.loc["4", "arousal"] == -1.0


def test_examples_capped_at_five(tmp_path):
    path = build(tmp_path / "a.zip", record("0"), *[record(str(i), exp="-2") for i in range(1, 9)])
    result = read(path)
    assert result.dropped == {"expression out of range": 8}
    assert len(result.examples["expression out of range"]) == 5


def test_corrupt_member_counted_not_fatal(tmp_path):
    path = tmp_path / "a.zip"
    exp = npy(np.array("4"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in {**record("1"), **record("2", exp=exp)}.items():
            zf.writestr(name, data)
    raw = path.read_bytes()
    at = raw.rindex(exp)
    path.write_bytes(raw[: at + len(exp) - 1] + b"5" + raw[at + len(exp) :])  # CRC now wrong
    result = read(path)
    assert result.records["id"].tolist() == ["1"]
    assert result.dropped == {"unreadable exp": 1}


def test_no_usable_records(tmp_path):
    path = build(tmp_path / "a.zip", record("1", exp="-2"), record("2", exp=None))
    with pytest.raises(DataError, match=r"no usable records.*expression out of range"):
        read(path)


def test_not_affectnet_layout(tmp_path):
    path = build(tmp_path / "a.zip", extra={"photos/1.jpg": jpeg()})
    with pytest.raises(DataError, match="not an AffectNet layout"):
        read(path)


# ---- whole-archive problems -------------------------------------------------------------


def test_traversal_member_refused(tmp_path):
    path = build(tmp_path / "a.zip", record("1"), extra={"../evil.jpg": jpeg()})
    with pytest.raises(DataError, match="traversal") as err:
        read(path)
    assert err.value.member == "../evil.jpg"


def test_bomb_refused(tmp_path):
    path = build(tmp_path / "a.zip", record("1"), extra={f"{ROOT}/images/2.jpg": bytes(4 << 20)})
    with pytest.raises(DataError, match="ratio") as err:
        read(path)
    assert err.value.member == f"{ROOT}/images/2.jpg"


def test_limits_are_passed_through(tmp_path):
    path = build(tmp_path / "a.zip", record("1"), record("2"))
    with pytest.raises(DataError, match="members exceed"):
        read(path, limits=ArchiveLimits(max_members=5))


def test_corrupt_zip(tmp_path):
    good = build(tmp_path / "good.zip", record("1"))
    path = tmp_path / "bad.zip"
    path.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"not a zip|truncated") as err:
        read(path)
    assert err.value.path == str(path)


# ---- detection and the registry ---------------------------------------------------------


def test_looks_like_affectnet(tmp_path):
    assert looks_like_affectnet(build(tmp_path / "a.zip", record("1")))
    assert looks_like_affectnet(build(tmp_path / "b.zip", record("1", root="x/train_set")))
    assert not looks_like_affectnet(build(tmp_path / "c.zip", extra={"images/1.jpg": jpeg()}))
    assert not looks_like_affectnet(build(tmp_path / "d.zip", record("1", image=False)))
    # images/ and annotations/ under different parents are not siblings
    assert not looks_like_affectnet(
        build(
            tmp_path / "e.zip",
            extra={"a/images/1.jpg": jpeg(), "b/annotations/1_exp.npy": npy(np.array("1"))},
        )
    )
    (tmp_path / "t.zip").write_text("text")
    assert not looks_like_affectnet(tmp_path / "t.zip")
    assert not looks_like_affectnet(tmp_path / "missing.zip")
    assert not looks_like_affectnet(tmp_path)


def test_read_source_detects_and_says_so(tmp_path, capsys):
    path = build(tmp_path / "a.zip", record("1"))
    assert detect_source(path) == "affectnet"
    result = read_source(path, progress=False)
    assert result.reader == "affectnet" and len(result.records) == 1
    assert "'affectnet' reader" in capsys.readouterr().out
    assert read_source(path, reader="affectnet", progress=False).records.equals(result.records)


def test_progress_can_be_silenced(tmp_path, capsys):
    read(build(tmp_path / "a.zip", record("1")))
    assert capsys.readouterr().err == ""


def test_unknown_source_lists_formats(tmp_path):
    other = build(tmp_path / "other.zip", extra={"readme.txt": b"hello"})
    with pytest.raises(DataError, match="affectnet: AffectNet-layout zip"):
        detect_source(other)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataError, match="an empty folder"):
        detect_source(folder)
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="Supported formats"):
        detect_source(folder)
    with pytest.raises(DataError, match="not found"):
        detect_source(tmp_path / "nowhere.zip")


def test_broken_zip_explains_itself_in_detection(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 and then nothing useful")
    with pytest.raises(DataError, match=r"not a zip|truncated"):
        detect_source(path)


def test_unknown_reader_name(tmp_path):
    with pytest.raises(ConfigError, match="affectnet"):
        read_source(build(tmp_path / "a.zip", record("1")), reader="nonesuch")


def test_registry(tmp_path):
    assert "affectnet" in READERS
    with pytest.raises(ConfigError, match="already registered"):
        register_reader("affectnet", lambda p: False, read_affectnet_zip, "again")


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    "arr",
    [
        np.array("3"),
        np.array("-0.25"),
        np.array(b"1"),
        np.array(0.5),
        np.array(7, ">i4"),
        np.arange(136, dtype=np.float64),
        np.asfortranarray(np.arange(136.0).reshape(68, 2)),
        np.arange(136, dtype=">f4").reshape(68, 2),
    ],
    ids=lambda a: f"{a.dtype.str}{a.shape}",
)
def test_a_repeated_npy_header_reads_like_np_load(arr):
    """The second member with a known header skips the header parse and still matches np.load."""
    from helpers.data.datasets import affectnet

    data = _npy(arr)
    first = affectnet._load_npy(data)
    second = affectnet._load_npy(data)  # header now known: the fast path
    assert data[: affectnet._header_end(data)] in affectnet._KNOWN_HEADERS
    reference = np.load(io.BytesIO(data), allow_pickle=False)
    for got in (first, second):
        assert got.dtype == reference.dtype and got.shape == reference.shape
        np.testing.assert_array_equal(got, reference)
    with pytest.raises(affectnet._Invalid, match="unparseable"):
        affectnet._load_npy(data[:-1])  # same header, too few data bytes: np.load's refusal


def test_the_summary_counts_each_class_and_names_the_absent_ones(tmp_path):
    path = build(
        tmp_path / "a.zip", record("1", exp="1"), record("2", exp="1"), record("3", exp="6")
    )
    result = read(path)
    assert result.class_counts().to_dict() == {
        "Neutral": 0,
        "Happy": 2,
        "Sad": 0,
        "Surprise": 0,
        "Fear": 0,
        "Disgust": 0,
        "Anger": 1,
        "Contempt": 0,
    }
    text = str(result).splitlines()
    assert text[1] == "  per class: Happy 2, Anger 1"
    assert text[2] == "  absent: Neutral, Sad, Surprise, Fear, Disgust, Contempt"


def face_points(width: float, height: float) -> np.ndarray:
    """68 plausible points spread over a width x height image (eye corners apart)."""
    unit = np.random.default_rng(0).uniform(0.2, 0.8, (68, 2))
    return unit * np.array([width - 1, height - 1])


def test_landmarks_that_cannot_be_on_the_image_are_blanked_and_counted(tmp_path):
    # Points far past the edges, normalised to [0, 1], or with no spread cannot be a face on
    # the image; the stored size comes from the image's header alone.
    big = jpeg(size=96)
    path = build(
        tmp_path / "a.zip",
        record("1", lnd=face_points(96, 96).reshape(-1), image=big),  # good
        record("2", lnd=(face_points(96, 96) + 1000).reshape(-1), image=big),  # past the edge
        record("3", lnd=(face_points(96, 96) - 200).reshape(-1), image=big),
        record("4", lnd=face_points(2, 2).reshape(-1) / 1.0, image=big),  # within [0, 1]
        record("5", lnd=np.zeros(136), image=big),  # all equal
        record(
            "6", lnd=(face_points(96, 96) + np.array([110, 0])).reshape(-1), image=big
        ),  # > 25% out
        record(
            "7", lnd=(face_points(96, 96) + np.array([30, -25])).reshape(-1), image=big
        ),  # a bit out
        record("8", lnd=face_points(96, 96).reshape(-1)),  # 96-pixel points on a 12-pixel image
    )
    result = read(path)
    lnd = result.records.set_index("id")["landmarks"]
    assert lnd[["2", "3", "4", "5", "6", "8"]].isna().all()
    assert lnd[["1", "7"]].notna().all()
    assert result.nulled == {
        "landmarks outside the image": 4,
        "landmarks normalised to [0, 1], not pixels": 1,
        "landmarks degenerate (no spread)": 1,
    }
    assert result.examples["landmarks degenerate (no spread)"] == [f"{ROOT}/annotations/5_lnd.npy"]


def test_affect_values_agree_with_the_release_reader(tmp_path):
    # -2 is the release's mark of no rating; float32 rounding past 1 is clipped, not refused.
    path = build(
        tmp_path / "a.zip",
        record("1", val=np.float32(1.0000001), aro=np.float32(-1.0000001)),
        record("2", val="-2", aro="-2.0"),
        record("3", val="1.01", aro="0.5"),
    )
    result = read(path)
    df = result.records.set_index("id")
    assert (df.loc["1", "valence"], df.loc["1", "arousal"]) == (1.0, -1.0)
    assert df.loc[["2", "3"], "valence"].isna().all()
    assert result.nulled == {
        "valence -2 (no rating)": 1,
        "arousal -2 (no rating)": 1,
        "valence out of range": 1,
    }


def test_each_image_is_opened_once_and_again_only_for_a_size_past_its_head(tmp_path, monkeypatch):
    # The image's first bytes serve both the format check and the landmarks' stored size; only
    # a header whose size lies past them (a large ICC or EXIF block) costs one more read.
    from PIL import Image

    from builders import encode

    padded = encode(Image.new("RGB", (96, 96), (90, 60, 40)), "JPEG", icc_profile=b"\0" * 6000)
    points = face_points(96, 96).reshape(-1)
    path = build(
        tmp_path / "a.zip",
        record("1", lnd=points, image=jpeg(size=96)),
        record("2", lnd=points, image=padded),
        record("3", image=padded),  # no landmarks: no size needed
        record("4", lnd=(face_points(96, 96) + 1000).reshape(-1), image=padded),
    )
    opened: list[str] = []
    real = zipfile.ZipFile.open

    def counting(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting)
    result = read(path)
    images = {i: opened.count(f"{ROOT}/images/{i}.jpg") for i in "1234"}
    assert images == {"1": 1, "2": 2, "3": 1, "4": 2}
    lnd = result.records.set_index("id")["landmarks"]
    assert lnd[["1", "2"]].notna().all() and lnd[["3", "4"]].isna().all()
    assert result.nulled == {"landmarks outside the image": 1}
