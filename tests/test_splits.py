"""Splitting happens before augmentation: stratified, seeded, official splits and groups kept."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers.core.errors import ConfigError, DataError
from helpers.core.records import make_records
from helpers.data.splits import (
    LeakageError,
    assign_splits,
    check_no_leakage,
    check_split_sizes,
    duplicate_groups,
    split_summary,
)

SHARES = np.array([0.3, 0.25, 0.12, 0.1, 0.08, 0.07, 0.05, 0.03])


def make_table(
    n: int = 2000, seed: int = 0, source: str = "demo", prefix: str = "r"
) -> pd.DataFrame:
    """An imbalanced records-like table without splits."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i}" for i in range(n)],
            "image": [f"/img/{prefix}{i}.png" for i in range(n)],
            "source": source,
            "expression": rng.choice(8, size=n, p=SHARES),
            "valence": rng.uniform(-1, 1, n),
            "arousal": rng.uniform(-1, 1, n),
            "landmarks": [None] * n,
            "split": [None] * n,
        }
    )


def test_fresh_split_sizes_and_class_shares_are_stratified():
    df = make_table()
    out = assign_splits(df, val_share=0.1, test_share=0.15, seed=3)
    counts = out["split"].value_counts()
    assert counts["test"] == pytest.approx(300, abs=2)
    assert counts["val"] == pytest.approx(200, abs=2)
    assert counts.sum() == len(df)
    # Each class keeps (almost) its overall share inside every split.
    for split, share in (("test", 0.15), ("val", 0.1)):
        per_class = out[out["split"] == split].groupby("expression").size()
        expected = df.groupby("expression").size() * share
        assert (per_class - expected).abs().max() <= 2
    # The input is not modified.
    assert df["split"].isna().all()


def test_same_seed_same_split_other_seed_differs():
    df = make_table(500)
    a = assign_splits(df, seed=7)["split"].tolist()
    b = assign_splits(df, seed=7)["split"].tolist()
    c = assign_splits(df, seed=8)["split"].tolist()
    assert a == b
    assert a != c


def test_official_splits_are_kept_and_missing_val_is_carved_from_train():
    full = make_table(300, seed=1, source="full", prefix="f")
    full["split"] = np.repeat(["train", "val", "test"], 100)
    partial = make_table(1000, seed=2, source="partial", prefix="p")
    partial["split"] = ["train"] * 800 + ["test"] * 200
    fresh = make_table(500, seed=3, source="fresh", prefix="n")
    df = pd.concat([full, partial, fresh], ignore_index=True)
    with pytest.warns(UserWarning, match="'partial'.*without val"):
        out = assign_splits(df, val_share=0.1, test_share=0.1, seed=0)

    assert out.loc[out.source == "full", "split"].tolist() == full["split"].tolist()
    p_out = out[out.source == "partial"]
    assert (p_out["split"].iloc[800:] == "test").all()  # official test untouched
    carved = p_out["split"].iloc[:800]
    assert set(carved) == {"train", "val"}
    assert (carved == "val").sum() == pytest.approx(80, abs=1)  # val_share of its train rows
    f_out = out[out.source == "fresh"]["split"].value_counts()
    assert f_out["val"] == 50 and f_out["test"] == 50


def test_keep_official_false_reassigns_everything():
    df = make_table(400)
    df["split"] = "train"
    out = assign_splits(df, keep_official=False, seed=0)
    assert set(out["split"]) == {"train", "val", "test"}


@pytest.mark.filterwarnings(
    "ignore:assign_splits"
)  # majority labels of triples leave rare classes tiny
def test_groups_stay_in_one_split():
    df = make_table(600, seed=4)
    groups = pd.Series(np.arange(600) // 3, index=df.index)  # triples of near-duplicates
    out = assign_splits(df, groups=groups, seed=5)
    assert (out.groupby(groups)["split"].nunique() == 1).all()
    assert set(out["split"]) == {"train", "val", "test"}


def test_unassigned_group_members_follow_their_official_split():
    df = make_table(200, seed=5)
    df.loc[0, "split"] = "test"
    df.loc[3, "split"] = "train"
    groups = pd.Series([0, 0, 0, 1, 1] + [np.nan] * 195, index=df.index)
    out = assign_splits(df, groups=groups, seed=0)
    assert out.loc[[0, 1, 2], "split"].tolist() == ["test"] * 3
    assert out.loc[[3, 4], "split"].tolist() == ["train"] * 2
    assert set(out.loc[5:, "split"]) == {"train", "val", "test"}


@pytest.mark.parametrize(
    "val_share,test_share,name",
    [
        (-0.1, 0.1, "val_share"),
        (0.1, 1.0, "test_share"),
        (0.5, 0.5, "val_share \\+ test_share"),
        (True, 0.1, "val_share"),
        ("0.1", 0.1, "val_share"),
    ],
)
def test_bad_shares_are_config_errors_naming_the_parameter(val_share, test_share, name):
    with pytest.raises(ConfigError, match=name):
        assign_splits(make_table(50), val_share=val_share, test_share=test_share)


def test_tiny_classes_do_not_crash_and_are_named_in_a_warning():
    df = make_table(60, seed=6)
    df["expression"] = [0] * 30 + [1] * 28 + [7] + [5]
    with pytest.warns(UserWarning, match=r"Disgust \(1\).*Contempt \(1\)"):
        out = assign_splits(df, seed=0)
    assert out.loc[58:, "split"].tolist() == ["train", "train"]
    assert set(out["split"]) == {"train", "val", "test"}


def test_too_few_rows_to_stratify_falls_back_with_warning():
    df = make_table(12, seed=7)
    df["expression"] = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = assign_splits(df, seed=0)
    assert out["split"].notna().all()
    assert any("stratify" in str(w.message) for w in caught)


def test_unknown_split_value_is_a_data_error():
    df = make_table(20)
    df.loc[3, "split"] = "validation"
    with pytest.raises(DataError, match="validation"):
        assign_splits(df)


def test_split_summary_counts_class_by_split():
    out = assign_splits(make_table(400), seed=0)
    table = split_summary(out)
    assert table.loc["total", "total"] == 400
    assert list(table.columns[:3]) == ["train", "val", "test"]
    assert table.loc["Happy", "total"] == (out["expression"] == 1).sum()
    assert table.loc["total", "test"] == (out["split"] == "test").sum()


def test_check_no_leakage_accepts_train_sources_and_rejects_others():
    df = assign_splits(make_table(300), seed=0)
    train_ids = df.loc[df.split == "train", "id"].tolist()
    test_id = df.loc[df.split == "test", "id"].iloc[0]
    ok = pd.DataFrame({"source": "demo", "source_id": train_ids[:10]})
    check_no_leakage(df, ok)
    check_no_leakage(df, ok.iloc[:0])
    for bad_id in (test_id, "no-such-id"):
        bad = pd.concat([ok, pd.DataFrame({"source": ["demo"], "source_id": [bad_id]})])
        with pytest.raises(LeakageError, match="outside the train split"):
            check_no_leakage(df, bad)
    # Same id in another source is a different image.
    other = pd.DataFrame({"source": ["elsewhere"], "source_id": [train_ids[0]]})
    with pytest.raises(LeakageError):
        check_no_leakage(df, other)
    with pytest.raises(LeakageError, match="source_id"):
        check_no_leakage(df, pd.DataFrame({"id": ["x"]}))


def test_one_persons_faces_stay_in_one_split():
    """JAFFE and CK+ records name the person (`subject`): ten people posing every expression
    split by person, so no test face shares a person with a training face."""
    rows = [
        {"id": f"{p}-{c}", "image": "x.png", "source": "jaffe", "expression": c, "subject": p}
        for p in [f"P{i}" for i in range(10)]
        for c in range(7)
    ]
    df = pd.DataFrame(rows)
    df.loc[0, "subject"] = None  # a face of nobody in particular stays alone
    groups = duplicate_groups(df, pd.DataFrame({"id_a": [], "id_b": []}))
    assert groups.nunique() == 11
    # A person is stratified by their most frequent class: P0, without a neutral face, is the
    # one Happy unit, too few to stratify, and stays in train (said, not silent).
    with pytest.warns(UserWarning, match=r"kept in train: Happy \(1\)"):
        out = assign_splits(df, val_share=0.2, test_share=0.2, seed=0, groups=groups)
    assert out.loc[out["subject"] == "P0", "split"].eq("train").all()
    per_person = out.dropna(subset=["subject"]).groupby("subject")["split"].nunique()
    assert (per_person == 1).all()
    assert {"train", "val", "test"} == set(out["split"])


def test_duplicate_groups_join_pairs_transitively():
    df = make_table(6)
    pairs = pd.DataFrame({"id_a": ["r0", "r1", "r4"], "id_b": ["r1", "r2", "zzz"]})
    groups = duplicate_groups(df, pairs)
    assert groups.iloc[0] == groups.iloc[1] == groups.iloc[2]
    assert len(set(groups.iloc[3:])) == 3 and groups.iloc[3] != groups.iloc[0]


def test_an_empty_test_split_is_an_error_that_names_the_cause():
    """One group holding every record (a single person, or duplicates joining all) cannot be
    split: 03 stops with why, not 05 with nothing to score."""
    df = make_table(20).assign(subject="P0")
    groups = duplicate_groups(df, pd.DataFrame({"id_a": [], "id_b": []}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = assign_splits(df, val_share=0.1, test_share=0.1, seed=0, groups=groups)
    with pytest.raises(
        DataError, match=r"no record landed in the test split.*20 records form 1 group "
    ):
        check_split_sizes(out, groups, 0.1, 0.1)
    with pytest.warns(UserWarning, match="no record landed in the validation split"):
        check_split_sizes(out, groups, 0.1, 0.0)
    fine = assign_splits(make_table(200), val_share=0.1, test_share=0.1, seed=0)
    check_split_sizes(fine, None, 0.1, 0.1)  # both splits there: silent


def test_a_split_carved_out_of_train_is_said_in_the_terminal(tmp_path, monkeypatch):
    """A FER-2013 CSV with Training and PublicTest rows but no PrivateTest: its test split
    comes out of Training, and the terminal of ./run_all.sh says so, not only a warning."""
    from helpers.core.progress import PROGRESS_ENV

    lines = tmp_path / "progress"
    monkeypatch.setenv(PROGRESS_ENV, str(lines))
    df = make_table(400, source="fer2013_csv")
    df["split"] = ["train"] * 300 + ["val"] * 100
    with pytest.warns(UserWarning, match="without test"):
        out = assign_splits(df, val_share=0.1, test_share=0.1, seed=0)
    n = int((out["split"] == "test").sum())
    assert n and lines.read_text().splitlines() == [
        "fer2013_csv: the data has no test split of its own; carved out of its train split, "
        f"stratified: test {n} faces"
    ]


def test_a_split_carved_out_of_train_is_said_once_in_a_kernel_run_by_hand(monkeypatch, capsys):
    """In a notebook run by hand the warning says it; no printed line says it again."""
    from helpers.core import progress

    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setattr(progress, "ipython_shell", lambda: object())
    df = make_table(400, source="fer2013_csv")
    df["split"] = ["train"] * 300 + ["val"] * 100
    with pytest.warns(UserWarning, match="without test"):
        assign_splits(df, val_share=0.1, test_share=0.1, seed=0)
    assert "carved" not in capsys.readouterr().out


def test_notebook_03s_split_fills_the_split_column_of_records_parquet(tmp_path):
    """The run folder's contract: records.parquet carries each record's split once 03 ran,
    the same as splits.parquet; the data's own split is kept (source_split), so 03 run again
    with another seed starts from it, not from the split drawn before."""
    from helpers.core.records import SOURCE_SPLIT, as_read, load_records, save_records
    from helpers.core.run_folder import RunFolder
    from helpers.data.splits import save_splits

    run = RunFolder(tmp_path / "run")
    read = make_table(300, source="fer2013_csv")
    read["split"] = ["train"] * 250 + ["test"] * 50  # the data's own train and test
    read = make_records(read)
    save_records(read, run.records)
    for seed in (0, 1):
        table = as_read(load_records(run.records))
        pd.testing.assert_frame_equal(table, read)  # nothing of 01's table lost
        with pytest.warns(UserWarning, match="without val"):
            drawn = assign_splits(table.iloc[1:], val_share=0.1, test_share=0.1, seed=seed)
        save_splits(run, drawn)
        records, splits = load_records(run.records), load_records(run.splits)
        by_id = splits.set_index("id")["split"]
        assert records["split"].iloc[1:].tolist() == by_id[records["id"].iloc[1:]].tolist()
        assert pd.isna(records["split"].iloc[0])  # a record 03 left out has no split
        assert set(records["split"].dropna()) == {"train", "val", "test"}
        assert records[SOURCE_SPLIT].tolist() == read["split"].tolist()


def _faces(counts: dict[int, int], split: dict[int, str] | None = None) -> pd.DataFrame:
    """A records table with `counts[c]` faces of class c, in the given split (None: unset)."""
    labels = [c for c, n in counts.items() for _ in range(n)]
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(labels))],
            "image": "x.png",
            "source": "faces",
            "expression": labels,
            "split": [None if split is None else split[c] for c in labels],
        }
    )


def test_two_faces_of_a_class_left_in_train_are_named_with_the_single_one():
    """Happy, Sad, Neutral 50 each, Fear 2, Disgust 1: neither small class reaches val or
    test, and both are named (the line and the warning), not only the one too few to stratify."""
    table = _faces({0: 50, 1: 50, 2: 50, 4: 2, 5: 1})
    with pytest.warns(UserWarning, match=r"kept in train: Fear \(2\), Disgust \(1\)"):
        out = assign_splits(table, val_share=0.1, test_share=0.1, seed=0)
    assert out.loc[out["expression"].isin([4, 5]), "split"].eq("train").all()


def test_classes_on_one_side_of_the_split_are_said(capsys):
    """A class trained on but never tested is not scored; one tested but never trained on is
    scored though the model cannot learn it: notebook 03 says both."""
    table = _faces({0: 20, 1: 20, 2: 20, 3: 20}, None)
    table["split"] = ["test" if i % 4 == 0 else "train" for i in range(len(table))]
    table.loc[table["expression"] == 3, "split"] = "train"  # Surprise: train only
    check_split_sizes(table, None, 0.0, 0.2)
    assert capsys.readouterr().out.splitlines() == [
        "Surprise: training faces but no test faces: the model learns it but it is not scored "
        "(no per-class F1; a test face predicted as it counts as an error)"
    ]
    table.loc[table["expression"] == 3, "split"] = "test"  # Surprise: test only
    check_split_sizes(table, None, 0.0, 0.2)
    assert capsys.readouterr().out.splitlines() == [
        "Surprise: 20 test faces and no training faces: the model never trains on it; its test "
        "faces are still scored, as errors unless the model happens to predict it, and its F1 "
        "(near 0) counts in the macro-F1"
    ]
