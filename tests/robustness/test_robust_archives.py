"""Archives: hostile or broken zips are refused whole, naming the file (and member); damage
confined to one record drops that record with a count. Nothing is ever written."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from builders import OFFSET, ROOT, USIZE, jpeg, npy, patch_central, record, write_zip
from helpers.core.archive import ArchiveLimits, open_zip, safe_extract
from helpers.core.errors import DataError
from helpers.core.images import make_uri, parse_uri, read_image
from helpers.data.datasets import read_source
from helpers.data.datasets.affectnet import read_affectnet_zip


def refused(path, **kw) -> DataError:
    """The DataError that both entry points raise for a whole-archive problem."""
    with pytest.raises(DataError) as direct:
        read_affectnet_zip(path, progress=False, **kw)
    with pytest.raises(DataError) as detected:
        read_source(path, progress=False, **kw)
    assert str(direct.value) == str(detected.value)
    assert direct.value.path == str(path)
    return direct.value


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../evil.jpg", "traversal"),
        (f"{ROOT}/images/../../../../evil.jpg", "traversal"),
        ("..\\..\\evil.jpg", "traversal"),
        ("/etc/cron.d/evil", "absolute path"),
        ("\\\\server\\share\\evil.jpg", "absolute path"),
        ("C:/Windows/evil.dll", "drive letter"),
    ],
)
def test_zip_slip_member_paths(tmp_path, untouched, name, problem):
    path = write_zip(tmp_path / "slip.zip", record("1"), {name: jpeg()})
    with untouched():
        error = refused(path)
        assert problem in error.problem and error.member == name
        with pytest.raises(DataError, match=problem):  # records made earlier point into it
            read_image(make_uri(path, f"{ROOT}/images/1.jpg"))
        with pytest.raises(DataError, match=problem):
            safe_extract(path, tmp_path / "extracted")
    assert not (tmp_path / "extracted").exists()


def test_zip_bomb(tmp_path, untouched):
    real = write_zip(tmp_path / "real.zip", record("1"), {f"{ROOT}/images/2.jpg": bytes(8 << 20)})
    forged = write_zip(tmp_path / "forged.zip", record("1"), compression=zipfile.ZIP_STORED)
    patch_central(forged, 0, USIZE, 0xFFFF_FFF0)  # claims 4 GiB for a 600-byte JPEG
    overlapping = write_zip(
        tmp_path / "overlap.zip", record("1"), record("2"), compression=zipfile.ZIP_STORED
    )
    patch_central(overlapping, 1, OFFSET, 0)  # non-recursive bomb: members share their data
    liar = write_zip(
        tmp_path / "liar.zip", record("1"), record("2", exp=npy(np.array(["3"] * 5000)))
    )
    patch_central(liar, 5, USIZE, 200)  # 2_exp.npy: declares 200 bytes, inflates to 20 kB
    fine = write_zip(tmp_path / "fine.zip", *[record(str(i)) for i in range(3)])
    with untouched():
        assert "compression ratio" in refused(real).problem
        assert "declared size" in refused(forged).problem
        assert "overlaps" in refused(overlapping).problem
        # Limits are parameters: a stricter budget refuses an archive the defaults accept.
        assert (
            "per-member limit of 100"
            in refused(fine, limits=ArchiveLimits(max_member_bytes=100)).problem
        )
        assert "total size" in refused(fine, limits=ArchiveLimits(max_total_bytes=1000)).problem
        assert "members exceed" in refused(fine, limits=ArchiveLimits(max_members=5)).problem
        assert (
            "ratio"
            in refused(fine, limits=ArchiveLimits(max_ratio=1.01, ratio_min_bytes=1)).problem
        )
        # A member lying about its size is caught while reading: that record only is dropped.
        result = read_source(liar, progress=False)
    assert result.records["id"].tolist() == ["1"]
    assert result.dropped == {"unreadable exp": 1}
    assert result.examples["unreadable exp"] == [f"{ROOT}/annotations/2_exp.npy"]


def test_truncated_or_corrupt_zip(tmp_path, untouched):
    good = write_zip(tmp_path / "good.zip", *[record(str(i)) for i in range(4)])
    data = good.read_bytes()
    broken = {}
    for keep in (0.1, 0.5, 0.95):
        broken[f"cut{keep}.zip"] = data[: int(len(data) * keep)]
    broken["holed.zip"] = data[:300] + data[700:]  # bytes lost mid-file
    central = data.rindex(b"PK\x01\x02")
    broken["newer.zip"] = data[: central + 6] + b"\x44" + data[central + 7 :]  # "needs zip 6.8"
    broken["text.zip"] = b"<html>404 Not Found</html>\n"  # a failed download
    broken["zero.zip"] = b""
    for name, payload in broken.items():
        (tmp_path / name).write_bytes(payload)
    with untouched():
        for name in broken:
            path = tmp_path / name
            with pytest.raises(DataError) as err:
                read_source(path, progress=False)
            assert err.value.path == str(path), name
            assert any(
                word in err.value.problem
                for word in ("truncated", "corrupt", "not a zip", "zip feature", "no reader")
            ), name
            with pytest.raises(DataError):
                open_zip(path)


def test_empty_zip(tmp_path, untouched):
    empty = write_zip(tmp_path / "empty.zip")
    folders = write_zip(
        tmp_path / "folders.zip", {f"{ROOT}/images/": b"", f"{ROOT}/annotations/": b""}
    )
    with untouched():
        for path in (empty, folders):
            with pytest.raises(DataError, match="empty archive") as err:
                read_source(path, progress=False)
            assert err.value.path == str(path)
            assert "empty archive" in refused(path).problem


def test_zip_of_the_wrong_layout(tmp_path, untouched):
    texts = write_zip(tmp_path / "texts.zip", {"readme.txt": b"hello", "data/a.csv": b"1,2"})
    images_only = write_zip(tmp_path / "images.zip", {f"{ROOT}/images/1.jpg": jpeg()})
    unusable = write_zip(tmp_path / "unusable.zip", record("1", exp="-2"), record("2", exp=None))
    with untouched():
        with pytest.raises(DataError, match="no reader recognises this source") as err:
            read_source(texts, progress=False)
        assert "- affectnet:" in str(err.value) and "- folders:" in str(err.value)
        for path in (texts, images_only):
            with pytest.raises(DataError, match="not an AffectNet layout"):
                read_affectnet_zip(path, progress=False)
        with pytest.raises(DataError) as err:
            read_source(unusable, progress=False)
        assert str(err.value).endswith(  # each reason with the member to look at
            "no usable records (dropped: 1 x expression out of range, e.g. "
            f"{ROOT}/annotations/1_exp.npy; 1 x missing exp, e.g. {ROOT}/images/2.jpg)"
        )


def test_duplicate_ids(tmp_path, untouched):
    same_name = tmp_path / "same_name.zip"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(same_name, "w") as zf:
        for name, data in {**record("1"), f"{ROOT}/images/1.jpg": jpeg(200)}.items():
            zf.writestr(name, data)
        zf.writestr(f"{ROOT}/images/1.jpg", jpeg(10))
    twins = write_zip(
        tmp_path / "twins.zip",
        record("1"),
        record("2"),
        {
            f"{ROOT}/images/1.png": jpeg(),  # 1.jpg and 1.png
            f"{ROOT}/annotations/2_EXP.npy": npy(np.array("5")),  # 2_exp and 2_EXP
        },
        record("2", root="Other/train_set"),
    )  # id 2 in another folder
    with untouched():
        error = refused(same_name)
        assert "duplicate member name" in error.problem
        assert error.member == f"{ROOT}/images/1.jpg"
        result = read_source(twins, progress=False)
    assert result.records["id"].tolist() == ["1", "2"]
    assert parse_uri(result.records["image"][0])[1] == f"{ROOT}/images/1.jpg"
    # The first in code-point order wins, whatever order the zip stores them in.
    assert result.records["expression"].tolist() == [3, 5]  # 2_EXP sorts before 2_exp
    assert result.dropped == {"duplicate id": 2, "duplicate annotation": 1}


def test_member_names_in_any_encoding(tmp_path, untouched):
    idents = ["日本語", "café", "a b!c%21", "Ωmega"]
    unicode = write_zip(tmp_path / "unicode.zip", *[record(i) for i in idents])
    legacy = write_zip(tmp_path / "legacy.zip", record("XY"))  # no UTF-8 flag: cp437 bytes
    legacy.write_bytes(legacy.read_bytes().replace(b"XY", b"\x82\xe9"))
    lying = write_zip(tmp_path / "lying.zip", record("é"))  # UTF-8 flag, then bad bytes
    lying.write_bytes(lying.read_bytes().replace("é".encode(), b"\xff\xfe"))
    with untouched():
        df = read_source(unicode, progress=False).records
        assert sorted(df["id"]) == sorted(idents)
        old = read_source(legacy, progress=False).records
        assert old["id"].tolist() == ["éΘ"]
        for uri in [*df["image"], *old["image"]]:
            assert read_image(uri).shape == (12, 12, 3)
        error = refused(lying)
    assert "not valid UTF-8" in error.problem
    assert os.path.basename(error.path) == "lying.zip"
