"""The records table: canonical dtypes, validation of every rule, exact parquet round trip."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.core.errors import DataError
from helpers.core.records import (
    RECORD_COLUMNS,
    RECORD_DTYPES,
    empty_records,
    landmarks_array,
    load_records,
    make_records,
    save_records,
    validate_records,
)


def sample(n: int = 4, seed: int = 0) -> pd.DataFrame:
    """A small valid table with every kind of value, absent ones included."""
    rng = np.random.default_rng(seed)
    landmarks = [
        rng.uniform(0, 224, (68, 2)).astype(np.float32) if i % 2 == 0 else None for i in range(n)
    ]
    return make_records(
        {
            "id": [f"r{i}" for i in range(n)],
            "image": [f"zip:///data/a.zip!images/{i}.jpg" for i in range(n)],
            "source": ["affectnet"] * n,
            "expression": [i % 8 for i in range(n)],
            "valence": [np.nan if i == 1 else (i * 0.3) % 2 - 1 for i in range(n)],
            "arousal": rng.uniform(-1, 1, n),
            "landmarks": landmarks,
            "split": [["train", "val", "test", None][i % 4] for i in range(n)],
            "quality": np.arange(n, dtype=np.int32),  # an extra column
        }
    )


def test_canonical_columns_and_dtypes():
    df = sample()
    assert tuple(df.columns[: len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    assert df.columns[-1] == "quality"
    for column, dtype in RECORD_DTYPES.items():
        assert df[column].dtype == pd.Series([], dtype=dtype).dtype, column
    assert df["landmarks"][0].dtype == np.float32 and df["landmarks"][0].shape == (68, 2)
    assert df["landmarks"][1] is None
    assert df["split"].isna().tolist() == [False, False, False, True]


def test_make_records_fills_optional_columns_and_reshapes_flat_landmarks():
    flat = np.arange(136, dtype=np.float64)
    df = make_records(
        [
            {"id": "a", "image": "a.jpg", "source": "s", "expression": 3, "landmarks": flat},
            {"id": "b", "image": "b.jpg", "source": "s", "expression": 0},
        ]
    )
    assert np.isnan(df["valence"]).all() and np.isnan(df["arousal"]).all()
    assert df["split"].isna().all()
    np.testing.assert_array_equal(df["landmarks"][0], flat.reshape(68, 2))
    assert df["landmarks"][0].dtype == np.float32
    assert df["landmarks"][1] is None


def test_make_records_requires_the_label_columns():
    with pytest.raises(DataError, match="expression"):
        make_records({"id": ["a"], "image": ["a.jpg"], "source": ["s"]})


def test_empty_records_have_the_schema():
    df = empty_records()
    assert len(df) == 0 and tuple(df.columns) == RECORD_COLUMNS
    assert df["expression"].dtype == np.int64 and df["valence"].dtype == np.float64
    validate_records(df)


def test_round_trip_is_exact(tmp_path):
    df = sample(9)
    save_records(df, tmp_path / "r.parquet")
    back = load_records(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(back, df)
    for a, b in zip(df["landmarks"], back["landmarks"], strict=False):
        assert (a is None and b is None) or (
            a.dtype == b.dtype == np.float32 and a.tobytes() == b.tobytes()
        )


def test_in_memory_notes_are_not_written_and_raise_no_warning(tmp_path):
    df = sample(3)
    df.attrs["unreadable"] = pd.DataFrame({"id": ["x"], "problem": ["truncated"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_records(df, tmp_path / "r.parquet")
    back = load_records(tmp_path / "r.parquet")
    assert back.attrs == {} and len(back) == 3


def test_empty_round_trip(tmp_path):
    save_records(empty_records(), tmp_path / "e.parquet")
    pd.testing.assert_frame_equal(load_records(tmp_path / "e.parquet"), empty_records())


def test_parquet_layout(tmp_path):
    save_records(sample(), tmp_path / "r.parquet")
    table = pq.read_table(tmp_path / "r.parquet")
    # A plain list, which every pyarrow reads back (a null row holds no values); 136 a row.
    assert table.schema.field("landmarks").type == pa.list_(pa.float32())
    column = table.column("landmarks").combine_chunks()
    assert column.null_count == 2
    assert column.value_lengths().fill_null(0).to_pylist() == [
        0 if v is None else 136 for v in sample()["landmarks"]
    ]
    assert table.column_names[: len(RECORD_COLUMNS)] == list(RECORD_COLUMNS)


finite32 = st.floats(-1e6, 1e6, width=32, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 7),
            st.one_of(st.none(), st.floats(-1, 1)),
            st.booleans(),
            st.sampled_from(["train", "val", "test", None]),
            finite32,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_round_trip_property(tmp_path_factory, rows):
    df = make_records(
        {
            "id": [f"id{i}" for i in range(len(rows))],
            "image": [f"/p/{i}.png" for i in range(len(rows))],
            "source": ["prop"] * len(rows),
            "expression": [r[0] for r in rows],
            "valence": [np.nan if r[1] is None else r[1] for r in rows],
            "arousal": [np.nan] * len(rows),
            "landmarks": [np.full((68, 2), r[4], np.float32) if r[2] else None for r in rows],
            "split": [r[3] for r in rows],
        }
    )
    path = tmp_path_factory.mktemp("prop") / "r.parquet"
    save_records(df, path)
    pd.testing.assert_frame_equal(load_records(path), df)


def test_landmarks_array():
    df = sample(4)
    arr = landmarks_array(df)
    assert arr.shape == (4, 68, 2) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr[0], df["landmarks"][0])
    assert np.isnan(arr[1]).all() and np.isnan(arr[3]).all()
    assert landmarks_array(empty_records()).shape == (0, 68, 2)


def test_nan_as_absent_landmarks_after_concat():
    a = sample(2)
    b = sample(2, seed=1).assign(id=["x", "y"]).drop(columns=["quality"])
    both = pd.concat([a, b], ignore_index=True)
    both.loc[1, "landmarks"] = np.nan  # what pandas may leave in object columns
    validate_records(both)
    assert np.isnan(landmarks_array(both)[1]).all()


# ---- validation catches each problem ----------------------------------------------------


def test_valid_table_passes():
    validate_records(sample())


def test_missing_columns():
    with pytest.raises(DataError, match="missing columns: landmarks, split"):
        validate_records(sample().drop(columns=["landmarks", "split"]))


def test_duplicate_ids():
    df = sample().assign(id=["a", "b", "a", "c"])
    with pytest.raises(DataError, match="duplicate ids: 'a', 'a'"):
        validate_records(df)


@pytest.mark.parametrize("value", [8, -1, -2, 10])
def test_expression_out_of_range(value):
    df = sample()
    df.loc[2, "expression"] = value
    with pytest.raises(DataError, match=r"expression outside 0-7.*'r2'"):
        validate_records(df)


def test_expression_must_be_integer():
    with pytest.raises(DataError, match="integer"):
        validate_records(sample().astype({"expression": float}))


def test_expression_missing():
    df = sample().astype({"expression": "Int64"})
    validate_records(df)  # nullable ints are fine while complete
    df.loc[1, "expression"] = pd.NA
    with pytest.raises(DataError, match=r"expression missing.*'r1'"):
        validate_records(df)


@pytest.mark.parametrize(
    "column, value",
    [("valence", 1.5), ("valence", -1.01), ("arousal", np.inf), ("arousal", -np.inf)],
)
def test_affect_out_of_range(column, value):
    df = sample()
    df.loc[3, column] = value
    with pytest.raises(DataError, match=f"{column} outside.*'r3'"):
        validate_records(df)


@pytest.mark.parametrize(
    "value",
    [
        np.zeros((67, 2), np.float32),
        np.zeros(136, np.float32),
        np.full((68, 2), np.nan, np.float32),
        [[0.0, 0.0]] * 68,
        np.zeros((68, 2), dtype=object),
        "not landmarks",
    ],
)
def test_bad_landmarks(value):
    df = sample()
    df.at[1, "landmarks"] = value
    with pytest.raises(DataError, match=r"landmarks.*'r1'"):
        validate_records(df)


@pytest.mark.parametrize("value", ["training", "", "TEST", 1])
def test_bad_split(value):
    df = sample().astype({"split": object})
    df.at[0, "split"] = value
    with pytest.raises(DataError, match=r"split.*'r0'"):
        validate_records(df)


@pytest.mark.parametrize("column, value", [("id", ""), ("image", None), ("source", 3)])
def test_text_columns(column, value):
    df = sample().astype({column: object})
    df.at[2, column] = value
    with pytest.raises(DataError, match=column):
        validate_records(df)


def test_many_offenders_are_summarised():
    df = make_records(
        {
            "id": [f"r{i}" for i in range(20)],
            "image": ["x"] * 20,
            "source": ["s"] * 20,
            "expression": [0] * 20,
        }
    )
    df["valence"] = 2.0
    with pytest.raises(DataError, match=r"\(20 in all\)"):
        validate_records(df)


def test_not_a_dataframe():
    with pytest.raises(TypeError):
        validate_records([{"id": "a"}])


def test_error_names_where(tmp_path):
    df = sample()
    df.loc[0, "expression"] = 9
    with pytest.raises(DataError) as err:
        save_records(df, tmp_path / "bad.parquet")
    assert err.value.path == str(tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_records(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DataError, match="parquet"):
        load_records(junk)
    pd.DataFrame({"id": ["a"]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(DataError, match="landmarks"):
        load_records(tmp_path / "other.parquet")


def test_a_run_folder_still_works_after_it_is_moved(tmp_path):
    """Tables keep images inside the run folder relative to it; sources outside stay as given."""
    import shutil

    from PIL import Image

    from helpers.core.images import read_image
    from helpers.core.run_folder import RunFolder
    from helpers.data import augment
    from helpers.train.fit import load_training_inputs

    source = tmp_path / "photos"
    source.mkdir()
    rows = []
    for i in range(6):
        Image.new("RGB", (24, 24), (40 * i, 90, 200 - 30 * i)).save(source / f"{i}.png")
        rows.append(
            {
                "id": f"r{i}",
                "image": str(source / f"{i}.png"),
                "source": "s",
                "expression": i % 2,
                "split": "train" if i < 4 else "val",
            }
        )
    table = make_records(rows)
    run = RunFolder(tmp_path / "first" / "run")
    train = table[table["split"] == "train"]
    plan = augment.plan_balance(train, "upsample", target_per_class=4, seed=0)
    manifest = augment.materialize(
        plan, table, augment.AugmentConfig(), run.augmented_dir, progress=False, workers=1
    )
    save_records(table, run.splits)
    save_records(augment.balanced_training_table(table, plan, manifest), run.train_table)

    moved = RunFolder(tmp_path / "elsewhere" / "run")
    moved.root.parent.mkdir()
    shutil.move(run.root, moved.root)
    inputs = load_training_inputs(moved)
    copies = inputs.train[inputs.train["augmented"]]
    assert len(copies) == 4 and all(p.startswith(str(moved.root)) for p in copies["image"])
    assert set(inputs.train.loc[~inputs.train["augmented"], "image"]) <= set(table["image"])
    for image in inputs.train["image"]:
        assert read_image(image).shape[:2] == (24, 24)
    stored = load_records(moved.augmented_dir / "manifest.parquet")["image"]
    assert all(p.startswith(str(moved.augmented_dir)) for p in stored)


def test_the_preview_shows_names_not_this_machines_paths_and_no_empty_columns() -> None:
    from helpers.core.records import make_records, preview

    table = make_records(
        {
            "id": ["a", "b"],
            "image": ["zip:///home/me/data/set.zip!Dataset/images/a.jpg", "/home/me/faces/b.png"],
            "source": ["set", "set"],
            "expression": [1, 2],
            "landmarks": [np.zeros((68, 2)), None],
        }
    )
    shown = preview(table)
    assert shown["image"].tolist() == ["Dataset/images/a.jpg", "b.png"]
    assert shown["landmarks"].tolist() == ["68 points", ""]
    assert "split" in table and "split" not in shown  # no row has one before notebook 03
    assert "/home/me" not in shown.to_string()
