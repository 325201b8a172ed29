"""Annotations: bad npy files in an otherwise sound archive cost only their own record (a bad
exp) or their own value (a bad val/aro/lnd), each counted by reason with example members."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from builders import ROOT, jpeg, npy, record, write_zip
from helpers.core.errors import DataError
from helpers.core.records import load_records, make_records, save_records
from helpers.data.datasets import read_source


class Payload:
    """Unpickling this creates a file: proof that a loader ran code from the data."""

    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        return open, (self.sentinel, "w")


def read(path):
    """Read through detection, as notebook 01 does."""
    return read_source(path, progress=False)


def member(ident: str, kind: str) -> str:
    """Name of an annotation member."""
    return f"{ROOT}/annotations/{ident}_{kind}.npy"


def forged_shape(value: np.ndarray, shape: str) -> bytes:
    """An npy whose header declares a far larger array than the bytes that follow."""
    data = npy(value)
    return data.replace(str(value.shape).encode(), shape.encode(), 1)


def test_pickled_npy_refused_never_loaded(tmp_path, untouched):
    sentinel = tmp_path / "code_ran.txt"
    evil = np.array([Payload(str(sentinel))], dtype=object)
    path = write_zip(
        tmp_path / "a.zip",
        record("1"),
        record("2", exp=npy(evil)),
        record("3", exp=pickle.dumps(Payload(str(sentinel)))),
        record("4", val=npy(evil), lnd=npy(np.array([Payload(str(sentinel))] * 136, dtype=object))),
    )
    with untouched():
        result = read(path)
    assert not sentinel.exists()
    assert result.records["id"].tolist() == ["1", "4"]
    assert result.dropped == {"pickled exp npy refused": 2}
    assert result.nulled == {"pickled val npy refused": 1, "pickled lnd npy refused": 1}
    assert result.examples["pickled exp npy refused"] == [member("2", "exp"), member("3", "exp")]


def test_wrong_shapes_or_dtypes(tmp_path, untouched):
    bad_exp = {
        "2": np.array([3, 4]),
        "3": np.array(3 + 1j),
        "4": np.array(True),
        "5": np.zeros((), dtype=[("a", "i4")]),
        "6": np.array("2024-01-01", dtype="M8[D]"),
        "7": forged_shape(np.array([1.0, 2.0]), "(1000000000000,)"),  # would need 8 TB
        "8": b"3\n",  # text named .npy
        "9": b"PK\x03\x04not an npz",
    }
    bad_lnd = {
        "10": np.zeros((68, 3)),
        "11": np.zeros(136, dtype=complex),
        "12": np.zeros(136, dtype=bool),
        "13": forged_shape(np.zeros(2, dtype="V0"), "(1000000000000,)"),
        "14": np.zeros(136, dtype=[("x", "f4")]),
    }
    path = write_zip(
        tmp_path / "a.zip",
        record("1", lnd=(np.arange(136.0) % 12).reshape(68, 2).astype(">f8")),  # on the image
        *[record(i, exp=v) for i, v in bad_exp.items()],
        *[record(i, lnd=v) for i, v in bad_lnd.items()],
        record("15", val=np.array([0.1, 0.2]), aro=np.array(["a", "b"])),
    )
    with untouched():
        result = read(path)
    df = result.records.set_index("id")
    assert df.index.tolist() == ["1", *bad_lnd, "15"]
    assert result.dropped == {"unparseable exp": len(bad_exp)}
    assert result.nulled == {
        "landmarks wrong length": 1,
        "unparseable lnd": 4,
        "unparseable val": 1,
        "unparseable aro": 1,
    }
    assert df.loc["1", "landmarks"].dtype == np.float32  # big-endian input is fine
    assert df.loc[list(bad_lnd), "landmarks"].isna().all()


def test_nan_and_inf(tmp_path, untouched):
    lnd = np.where(np.arange(136) == 7, np.inf, 5.0)
    path = write_zip(
        tmp_path / "a.zip",
        record("1", exp="nan"),
        record("2", exp="inf"),
        record("3", val="nan", aro="-inf", lnd=lnd),
        record("4", val="1e400"),
    )
    with untouched():
        result = read(path)
    df = result.records.set_index("id")
    assert result.dropped == {"unparseable exp": 2}
    assert result.nulled == {
        "valence not finite": 2,
        "arousal not finite": 1,
        "landmarks not finite": 1,
    }
    assert df["valence"].isna().all() and np.isnan(df.loc["3", "arousal"])
    assert df.loc["4", "arousal"] == 0.5 and df.loc["3", "landmarks"] is None
    with pytest.raises(DataError, match=r"valence outside \[-1, 1\] \(or infinite\).*'x'"):
        make_records(
            {
                "id": ["x"],
                "image": ["x.png"],
                "source": ["s"],
                "expression": [1],
                "valence": [np.inf],
            }
        )


def test_out_of_range_values(tmp_path, untouched):
    path = write_zip(
        tmp_path / "a.zip",
        record("1", val="1", aro="-1"),  # the edges are fine
        record("2", exp="-2"),
        record("3", exp="8"),
        record("4", exp="11"),
        record("5", val="3.0", aro="-1.0001"),
        record("6", exp="2.5"),
    )
    with untouched():
        result = read(path)
    df = result.records.set_index("id")
    assert df.index.tolist() == ["1", "5"]
    assert (df.loc["1", "valence"], df.loc["1", "arousal"]) == (1.0, -1.0)
    assert np.isnan(df.loc["5", "valence"]) and np.isnan(df.loc["5", "arousal"])
    assert result.dropped == {"expression out of range": 3, "unparseable exp": 1}
    assert result.nulled == {"valence out of range": 1, "arousal out of range": 1}
    # Any other route into the table (a reader bug, a hand-made table) is refused by id.
    with pytest.raises(DataError, match=r"expression outside 0-7 in rows: 'b'"):
        make_records(
            {"id": ["a", "b"], "image": ["a", "b"], "source": ["s", "s"], "expression": [1, -2]}
        )


def test_a_value_is_checked_in_the_form_it_is_stored(tmp_path, untouched):
    """1e39 is a finite float64 but infinite as the float32 the table stores: checked as
    float64 alone, one such landmark file refused the whole source when the table was built."""
    huge = np.full(136, 1e39)
    big = jpeg(size=128)  # 100-pixel points lie on it
    path = write_zip(
        tmp_path / "a.zip",
        record("1", lnd=huge, image=big),
        record("2", lnd=huge * 1e-37 - np.arange(136) % 7, image=big),
    )
    with untouched():
        result = read(path)
    lnd = result.records.set_index("id")["landmarks"]
    assert lnd["1"] is None and np.allclose(lnd["2"], 100.0 - np.arange(136).reshape(68, 2) % 7)
    assert result.nulled == {"landmarks out of range": 1}


def test_landmarks_of_the_wrong_length(tmp_path, untouched):
    path = write_zip(
        tmp_path / "a.zip",
        record("1", lnd=np.arange(136.0) % 12),  # points on the 12x12 image
        record("2", lnd=np.arange(134.0)),
        record("3", lnd=np.arange(138.0)),
        record("4", lnd=np.zeros(0)),
        record("5", lnd=np.zeros((68, 2, 2))),
    )
    with untouched():
        result = read(path)
    lnd = result.records.set_index("id")["landmarks"]
    assert lnd["1"].shape == (68, 2) and lnd[["2", "3", "4", "5"]].isna().all()
    assert result.nulled == {"landmarks wrong length": 4}
    assert result.examples["landmarks wrong length"] == [member(i, "lnd") for i in "2345"]
    with pytest.raises(DataError, match=r"landmarks must be None or a finite \(68, 2\) array"):
        make_records(
            {
                "id": ["a"],
                "image": ["a"],
                "source": ["s"],
                "expression": [1],
                "landmarks": [np.zeros((5, 2))],
            }
        )


def test_missing_files(tmp_path, untouched):
    path = write_zip(
        tmp_path / "a.zip",
        record("1", val=None, aro=None, lnd=None),
        record("2", exp=None),
        record("3", image=False),
        {f"{ROOT}/images/4.jpg": record("4")[f"{ROOT}/images/4.jpg"]},
    )
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with untouched():
        result = read(path)
        for name, problem in (
            ("nowhere.parquet", "records file not found"),
            ("broken.parquet", "not a readable parquet file"),
        ):
            with pytest.raises(DataError, match=problem) as err:
                load_records(tmp_path / name)
            assert err.value.path == str(tmp_path / name)
    row = result.records.iloc[0]
    assert row["id"] == "1" and np.isnan(row["valence"]) and row["landmarks"] is None
    assert result.dropped == {"missing exp": 1, "missing image": 1, "image without annotations": 1}
    assert result.nulled == {}  # optional files that are absent are not problems
    # A table missing a column (an older run, a hand edit) is refused by name on load.
    save_records(result.records, tmp_path / "ok.parquet")
    pd.read_parquet(tmp_path / "ok.parquet").drop(columns=["source"]).to_parquet(
        tmp_path / "old.parquet"
    )
    with pytest.raises(DataError, match="missing columns: source") as err:
        load_records(tmp_path / "old.parquet")
    assert err.value.path == str(tmp_path / "old.parquet")
