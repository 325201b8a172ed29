"""helpers.data.eda on a small records table of PNG files with planted exact and near duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core import progress
from helpers.core.labels import EXPRESSIONS
from helpers.data import eda

N_NOISE = 19


def _write(path: Path, pixels: np.ndarray) -> str:
    Image.fromarray(pixels).save(path)
    return str(path)


def build_records(folder: Path) -> pd.DataFrame:
    """24 records: r00-r18 distinct noise images, r19 constant grey, r20 constant RGB, r21 and
    r22 exact copies of r00 and r01, r23 a near copy of r02; classes 0-6 used, Contempt absent."""
    rng = np.random.default_rng(42)
    paths = []
    for i in range(N_NOISE):
        # Blocky noise: distinct low frequencies, so phashes are far apart.
        coarse = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
        paths.append(_write(folder / f"img{i:02d}.png", np.kron(coarse, np.ones((4, 4), np.uint8))))
    paths.append(_write(folder / "grey.png", np.full((32, 32), 100, np.uint8)))
    paths.append(
        _write(
            folder / "rgb.png",
            np.broadcast_to(np.array([200, 100, 0], np.uint8), (32, 32, 3)).copy(),
        )
    )
    for src, name in ((0, "copy_of_00.png"), (1, "copy_of_01.png")):
        shutil.copyfile(paths[src], folder / name)
        paths.append(str(folder / name))
    near = np.asarray(Image.open(paths[2])).copy()
    near[0, 0] = near[0, 0] ^ 3  # two low bits of one pixel: new bytes, same look
    paths.append(_write(folder / "near_02.png", near))

    n = len(paths)
    valence = np.linspace(-0.9, 0.9, n)
    valence[::4] = np.nan
    return pd.DataFrame(
        {
            "id": [f"r{i:02d}" for i in range(n)],
            "image": paths,
            "source": "test",
            "expression": np.arange(n) % 7,
            "valence": valence,
            "arousal": np.where(np.isnan(valence), np.nan, -valence / 2),
            "landmarks": [None] * n,
            "split": [None] * n,
        }
    )


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return build_records(tmp_path_factory.mktemp("eda"))


@pytest.fixture(scope="module")
def hashes(records: pd.DataFrame) -> pd.DataFrame:
    return eda.image_hashes(records, progress=False)


def _split(
    records: pd.DataFrame, mapping: dict[str, str], default: str | None = "train"
) -> pd.DataFrame:
    out = records.copy()
    out["split"] = [mapping.get(rid, default) for rid in out["id"]]
    return out


# -- class distribution -------------------------------------------------------------------


def test_class_distribution_lists_all_classes_with_zeros(records):
    dist = eda.class_distribution(records)
    assert list(dist["name"]) == list(EXPRESSIONS)
    assert list(dist["expression"]) == list(range(8))
    assert list(dist["count"]) == [4, 4, 4, 3, 3, 3, 3, 0]
    assert dist["share"].sum() == pytest.approx(1.0)
    assert dist.loc[7, "share"] == 0.0
    assert dist.loc[0, "share"] == pytest.approx(4 / 24)


def test_class_distribution_by_split_orders_splits_and_shares_within_each(records):
    df = _split(records, {"r00": "test", "r01": "val", "r03": "test"}, default="train")
    df.loc[df["id"] == "r04", "split"] = None
    dist = eda.class_distribution(df, by_split=True)
    assert list(dict.fromkeys(dist["split"])) == ["train", "val", "test", eda.UNASSIGNED]
    assert len(dist) == 4 * 8
    for _, block in dist.groupby("split"):
        assert block["share"].sum() == pytest.approx(1.0)
        assert list(block["name"]) == list(EXPRESSIONS)
    test = dist[dist["split"] == "test"].set_index("expression")["count"]
    assert test[0] == 1 and test[3] == 1 and test.sum() == 2
    assert dist["count"].sum() == len(df)


def test_class_distribution_rejects_labels_outside_the_shared_space(records):
    bad = records.assign(expression=records["expression"].replace({3: 9}))
    with pytest.raises(ValueError, match="outside 0-7"):
        eda.class_distribution(bad)


def test_class_distribution_of_empty_table_is_all_zero(records):
    dist = eda.class_distribution(records.iloc[:0])
    assert list(dist["count"]) == [0] * 8 and list(dist["share"]) == [0.0] * 8


# -- image statistics ---------------------------------------------------------------------


def test_image_stats_on_known_images(records):
    stats = eda.image_stats(records, sample=None, progress=False).set_index("id")
    assert len(stats) == len(records)
    grey, rgb = stats.loc["r19"], stats.loc["r20"]
    assert grey["brightness"] == pytest.approx(100.0) and grey["contrast"] == pytest.approx(0.0)
    assert grey["channels"] == 1 and (grey["width"], grey["height"]) == (32, 32)
    assert rgb["channels"] == 3
    assert rgb["brightness"] == pytest.approx(0.299 * 200 + 0.587 * 100, abs=1e-6)
    assert rgb["contrast"] == pytest.approx(0.0, abs=1e-9)
    assert (stats.drop(["r19", "r20"])["contrast"] > 10).all()


def test_image_stats_sample_is_seeded_and_sized(records):
    a = eda.image_stats(records, sample=5, seed=3, progress=False)
    b = eda.image_stats(records, sample=5, seed=3, progress=False)
    c = eda.image_stats(records, sample=5, seed=4, progress=False)
    assert len(a) == 5
    pd.testing.assert_frame_equal(a, b)
    assert list(a["id"]) != list(c["id"])
    assert list(a["id"]) == sorted(a["id"])  # table order kept


# -- hashes and duplicates ----------------------------------------------------------------


def test_hashing_says_what_it_starts_in_the_terminal(records, tmp_path, monkeypatch):
    """Hashing decodes every image (minutes for a large set): notebooks 02 and 03 say so as it
    starts, not only once the bar has run 10 s; progress=False says nothing."""
    from helpers.core import progress

    lines = tmp_path / "lines"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(lines))
    eda.image_hashes(records.head(2), progress=False)
    assert not lines.exists()
    eda.image_hashes(records.head(2))
    assert lines.read_text().splitlines() == [
        "hashing 2 images to find copies and unreadable files ..."
    ]


def test_notebook_02_says_what_it_starts_on_in_the_terminal():
    """Its figures and its pass over every image take a minute on a busy CPU: one line says so
    as soon as the records are loaded, not a minute of silence after the stage's name."""
    import json

    from helpers.core import paths

    assert eda.overview_line(314) == (
        "looking at 314 records: class balance, sample faces, image statistics, copies and "
        "leaks ..."
    )
    cells = json.loads((paths.NOTEBOOKS_DIR / "02_eda.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (loading,) = [text for text in code if "records.load_records(" in text]
    assert "progress.line(eda.overview_line(len(table)))" in loading


def test_image_hashes_columns_and_types(records, hashes):
    assert list(hashes.columns) == ["id", "sha1", "phash"]
    assert hashes["phash"].dtype == np.uint64
    assert hashes["sha1"].str.fullmatch(r"[0-9a-f]{40}").all()
    by_id = hashes.set_index("id")
    assert by_id.loc["r21", "sha1"] == by_id.loc["r00", "sha1"]
    assert by_id.loc["r23", "sha1"] != by_id.loc["r02", "sha1"]


def test_find_duplicates_finds_exact_and_near_and_nothing_else(hashes):
    pairs = eda.find_duplicates(hashes, max_distance=4)
    assert list(pairs.columns) == ["id_a", "id_b", "distance", "kind"]
    found = {
        (a, b): k for a, b, k in zip(pairs["id_a"], pairs["id_b"], pairs["kind"], strict=False)
    }
    # The two flat images (grey and RGB) share a phash: blank images are rightly near copies.
    assert found == {
        ("r00", "r21"): "exact",
        ("r01", "r22"): "exact",
        ("r02", "r23"): "near",
        ("r19", "r20"): "near",
    }
    assert (pairs["distance"] <= 4).all()
    assert list(pairs["kind"][:2]) == ["exact", "exact"]  # closest first, exact before near


def test_find_duplicates_with_zero_distance_still_reports_exact_copies(hashes):
    pairs = eda.find_duplicates(hashes, max_distance=0)
    assert set(pairs["kind"]) <= {"exact", "near"}
    assert {("r00", "r21"), ("r01", "r22")} <= set(zip(pairs["id_a"], pairs["id_b"], strict=False))


def test_find_duplicates_accepts_hex_phash_and_rejects_bad_distance(hashes):
    as_hex = hashes.assign(phash=[f"{int(h):016x}" for h in hashes["phash"]])
    pd.testing.assert_frame_equal(eda.find_duplicates(as_hex), eda.find_duplicates(hashes))
    with pytest.raises(ValueError, match="0-64"):
        eda.find_duplicates(hashes, max_distance=65)


def test_find_duplicates_matches_brute_force_on_random_hashes():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    # Planted neighbours 1-6 bits away, so some fall inside and some outside the threshold.
    flips = [
        np.uint64(sum(1 << b for b in rng.choice(64, size=k, replace=False))) for k in range(1, 7)
    ]
    codes = np.concatenate([base, base[:6] ^ np.array(flips, dtype=np.uint64)])
    hashes = pd.DataFrame(
        {
            "id": [f"h{i}" for i in range(len(codes))],
            "sha1": [f"{i:040x}" for i in range(len(codes))],
            "phash": codes,
        }
    )
    got = set(
        zip(
            *eda.find_duplicates(hashes, max_distance=4)[["id_a", "id_b"]].T.to_numpy(),
            strict=False,
        )
    )
    expected = {
        (f"h{i}", f"h{j}")
        for i in range(len(codes))
        for j in range(i + 1, len(codes))
        if bin(int(codes[i]) ^ int(codes[j])).count("1") <= 4
    }
    assert got == expected and len(expected) >= 4


def _random_codes(n: int, seed: int) -> np.ndarray:
    """n random 64-bit codes, a quarter of them planted 0-11 bits from an earlier one."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, size=n, dtype=np.uint64) << np.uint64(1)
    flips = [sum(1 << int(b) for b in rng.choice(64, k, replace=False)) for k in range(12)]
    near = [base[rng.integers(n)] ^ np.uint64(flips[rng.integers(12)]) for _ in range(n // 4)]
    return np.concatenate([base, np.array(near, dtype=np.uint64)])


def _pairs_set(found: tuple[np.ndarray, ...]) -> set[tuple[int, int, int]]:
    return set(zip(*(a.tolist() for a in found), strict=True))


@pytest.mark.parametrize("max_distance", [0, 1, 4, 9, 10, 20])
def test_indexed_near_pairs_equal_comparing_every_pair(max_distance: int) -> None:
    codes = _random_codes(400, seed=max_distance)
    codes[7] = codes[3]  # an identical phash: distance 0 in every chunk, listed once
    found = eda._near_pairs(codes, max_distance)
    assert _pairs_set(found) == _pairs_set(eda._all_pairs(codes, max_distance))
    assert len(found[0]) == len(_pairs_set(found))  # no pair twice
    assert (found[0] < found[1]).all()


def test_near_duplicate_search_does_not_compare_every_pair(monkeypatch) -> None:
    """On 20,000 distinct hashes the search compares a few thousandths of the 2e8 pairs (all of
    them before), which is what keeps 290,000 AffectNet images to seconds."""
    compared = []
    count = np.bitwise_count
    monkeypatch.setattr(np, "bitwise_count", lambda x: compared.append(np.size(x)) or count(x))
    n = 20_000
    codes = np.random.default_rng(0).integers(0, 2**63, size=n, dtype=np.uint64)
    hashes = pd.DataFrame(
        {"id": [f"h{i}" for i in range(n)], "sha1": [f"{i:040x}" for i in range(n)], "phash": codes}
    )
    eda.find_duplicates(hashes, max_distance=4)
    assert sum(compared) < n * (n - 1) / 2 / 100


def test_find_duplicates_on_empty_table():
    empty = pd.DataFrame({"id": [], "sha1": [], "phash": np.array([], dtype=np.uint64)})
    assert eda.find_duplicates(empty).empty


# -- leakage ------------------------------------------------------------------------------


def test_leakage_found_when_duplicates_cross_splits(records, hashes):
    # r21 (copy of r00) in test, r02's near copy r23 in val; r01/r22 both train (no leak).
    df = _split(records, {"r21": "test", "r23": "val"})
    leaks = eda.leakage_check(df, hashes)
    assert leaks.attrs["checked"] is True
    rows = {
        (a, b, k, sa, sb)
        for a, b, k, sa, sb in leaks[["id_a", "id_b", "kind", "split_a", "split_b"]].itertuples(
            index=False
        )
    }
    assert rows == {
        ("r00", "r21", "exact", "train", "test"),
        ("r02", "r23", "near", "train", "val"),
    }
    summary = eda.leakage_summary(leaks)
    assert list(summary[["split_a", "split_b"]].itertuples(index=False, name=None)) == [
        ("train", "val"),
        ("train", "test"),
    ]
    assert list(summary["total"]) == [1, 1] and list(summary["records_b"]) == [1, 1]
    assert summary.set_index("split_b").loc["test", "exact"] == 1


def test_leakage_pairs_are_oriented_earlier_split_first(records, hashes):
    df = _split(records, {"r00": "test", "r21": "train"})
    leaks = eda.leakage_check(df, hashes)
    assert list(leaks[["id_a", "split_a", "id_b", "split_b"]].iloc[0]) == [
        "r21",
        "train",
        "r00",
        "test",
    ]


def test_no_leakage_when_duplicates_stay_in_one_split(records, hashes):
    df = _split(records, {"r05": "test", "r06": "val", "r07": "test"})
    leaks = eda.leakage_check(df, hashes)
    assert leaks.empty and leaks.attrs["checked"] is True
    assert "No leakage" in leaks.attrs["message"]
    summary = eda.leakage_summary(leaks)
    assert summary.empty and "total" in summary.columns


def _cell_value(source: str, namespace: dict) -> object:
    """What a notebook cell shows below its printed lines: its last expression's value, as
    IPython displays it (None: nothing)."""
    import ast

    tree = ast.parse(source)
    *body, last = tree.body
    exec(compile(ast.Module(body=body, type_ignores=[]), "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)


def test_notebook_02_shows_the_leakage_table_only_when_something_leaked(
    records, hashes, tmp_path, capsys
):
    import nbformat

    from helpers.core import paths
    from helpers.core.run_folder import RunFolder

    cell = nbformat.read(paths.NOTEBOOKS_DIR / "02_eda.ipynb", as_version=4).cells[19].source
    assert "eda.leakage_summary(leaks)" in cell
    namespace = {
        "eda": eda,
        "run": RunFolder(tmp_path),
        "hashes": hashes,
        "near_distance": eda.NEAR_DISTANCE,
        "pairs": eda.find_duplicates(hashes),
        "out": tmp_path,
    }
    namespace["table"] = _split(records, {"r05": "test", "r06": "val", "r07": "test"})
    assert _cell_value(cell, namespace) is None  # the sentence alone, no empty table
    assert "No leakage" in capsys.readouterr().out
    namespace["table"] = _split(records, {"r21": "test"})
    assert len(_cell_value(cell, namespace)) == 1


def test_same_id_in_two_splits_is_leakage(records, hashes):
    df = _split(records, {})
    twin = df[df["id"] == "r05"].assign(split="test")
    leaks = eda.leakage_check(pd.concat([df, twin], ignore_index=True), hashes)
    assert list(
        leaks[["id_a", "id_b", "kind", "split_a", "split_b"]].itertuples(index=False, name=None)
    ) == [("r05", "r05", "same_id", "train", "test")]


def test_leakage_without_splits_is_empty_and_says_so(records, hashes):
    leaks = eda.leakage_check(records, hashes)
    assert leaks.empty and leaks.attrs["checked"] is False
    assert "split" in leaks.attrs["message"]
    assert eda.leakage_summary(leaks).attrs["checked"] is False
    assert eda.leakage_check(records.drop(columns="split"), hashes).attrs["checked"] is False


def test_records_without_split_are_left_out_and_counted(records, hashes):
    df = _split(records, {"r21": None, "r23": "val"})
    leaks = eda.leakage_check(df, hashes)
    assert set(leaks["id_b"]) == {"r23"}
    assert (
        leaks.attrs["n_unassigned"] == 1 and "1 record(s) without a split" in leaks.attrs["message"]
    )


def test_leakage_reuses_given_pairs(records, hashes):
    df = _split(records, {"r21": "test"})
    pairs = eda.find_duplicates(hashes)
    pd.testing.assert_frame_equal(
        eda.leakage_check(df, None, pairs=pairs), eda.leakage_check(df, hashes)
    )


# -- valence / arousal --------------------------------------------------------------------


def test_valence_arousal_summary(records):
    summary = eda.valence_arousal_summary(records)
    assert list(summary["name"]) == list(EXPRESSIONS)
    assert summary.loc[7, "n"] == 0 and summary.loc[7, "va_share"] == 0.0
    assert np.isnan(summary.loc[7, "valence_mean"])
    has_va = records["valence"].notna()
    assert summary["n_va"].sum() == has_va.sum() and summary["n"].sum() == len(records)
    happy = records[(records["expression"] == 1) & has_va]
    row = summary.loc[1]
    assert row["valence_mean"] == pytest.approx(happy["valence"].mean())
    assert row["arousal_std"] == pytest.approx(happy["arousal"].std())
    assert row["va_share"] == pytest.approx(len(happy) / (records["expression"] == 1).sum())


def test_valence_arousal_summary_without_va_columns(records):
    summary = eda.valence_arousal_summary(records.drop(columns=["valence", "arousal"]))
    assert (summary["n_va"] == 0).all() and summary["valence_mean"].isna().all()


def test_undecodable_images_are_counted_and_dropped_not_fatal(tmp_path):
    """One truncated JPEG among many must not stop EDA or notebook 03: it is listed and left out."""
    from PIL import Image as PILImage

    from helpers.data import eda

    good = tmp_path / "good.png"
    PILImage.fromarray(np.full((16, 16), 128, np.uint8)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)  # a JPEG header, then nothing
    df = pd.DataFrame({"id": ["a", "b"], "image": [str(good), str(bad)], "expression": [0, 1]})
    hashes = eda.image_hashes(df, progress=False)
    assert list(hashes["id"]) == ["a"]
    assert list(hashes.attrs["unreadable"]["id"]) == ["b"]
    assert list(eda.drop_unreadable(df, hashes)["id"]) == ["a"]
    stats = eda.image_stats(df, sample=None, progress=False)
    assert list(stats["id"]) == ["a"] and list(stats.attrs["unreadable"]["id"]) == ["b"]


def test_the_balance_sentence_describes_this_data_not_the_demo():
    from helpers.core.records import make_records

    rows = [
        {"id": f"r{i}", "image": f"{i}.png", "source": "fer", "expression": e}
        for i, e in enumerate([1] * 6 + [6] * 3 + [4])
    ]
    text = eda.balance_text(eda.class_distribution(make_records(rows)))
    assert text.startswith(
        "Happy (60%) and Anger (30%) are the largest classes of these 10 faces; "
        "Fear (10%) is the smallest; absent: Neutral, Sad, Surprise, Disgust, "
        "Contempt. A model that always answers Happy scores 60% accuracy"
    )
    assert not eda.has_valence_arousal(make_records(rows))
    assert eda.has_valence_arousal(make_records([{**rows[0], "valence": 0.1, "arousal": 0.2}]))


def test_exact_copies_with_different_labels_are_named_and_left_out(tmp_path, monkeypatch):
    # The same bytes in two class folders (a copy, or a symlink) give contradictory targets:
    # 02 names them, 03 leaves all of them out, and both say so in the runner's terminal.
    df = build_records(tmp_path)
    df.loc[df["id"] == "r22", "expression"] = 5  # r22 is a copy of r01 (Happy): now Disgust
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(tmp_path / "phone.jpg", exif=exif)
    df.loc[len(df)] = {**df.iloc[0].to_dict(), "id": "phone", "image": str(tmp_path / "phone.jpg")}
    hashes = eda.image_hashes(df, progress=False)
    conflicts = eda.label_conflicts(df, hashes)
    assert conflicts.to_dict("records") == [
        {"id": "r01", "expression": "Happy", "copy_of": "r01"},
        {"id": "r22", "expression": "Disgust", "copy_of": "r01"},
    ]
    assert eda.label_conflicts(build_records(tmp_path), hashes).empty  # copies that agree
    unlabelled = df.astype({"expression": float})
    unlabelled.loc[unlabelled["id"] == "r01", "expression"] = np.nan  # a missing label
    assert eda.label_conflicts(unlabelled, hashes).empty
    unlabelled.loc[unlabelled["id"] == "r01", "expression"] = -1
    assert eda.label_conflicts(unlabelled, hashes).empty
    # r01 and r22 disagree; a third copy without a label is no part of it
    third = unlabelled.loc[unlabelled["id"] == "r01"].assign(id="r99", expression=np.nan)
    unlabelled.loc[unlabelled["id"] == "r01", "expression"] = 3
    with_third = pd.concat([unlabelled, third], ignore_index=True)
    copies = hashes[["id", "sha1"]].copy()
    copies.attrs = {}
    copies = pd.concat([copies, copies[copies["id"] == "r01"].assign(id="r99")])
    assert eda.label_conflicts(with_third, copies)["id"].tolist() == ["r01", "r22"]
    progress_file = tmp_path / "progress.txt"
    monkeypatch.setenv("AFFECT_PROGRESS_FILE", str(progress_file))
    progress.say(eda.hash_findings(hashes, conflicts))
    said = progress_file.read_text()
    assert (
        "2 record(s) are exact copies of one another with different labels, e.g. r22 = r01" in said
    )
    assert "1 image(s) carry an EXIF orientation, e.g. phone" in said
    kept = eda.drop_label_conflicts(eda.drop_unreadable(df, hashes), hashes)
    assert not kept["id"].isin(["r01", "r22"]).any() and len(kept) == len(df) - 2
    assert len(kept.attrs["unreadable"]) == 0 and len(kept.attrs["label_conflicts"]) == 2
    progress_file.unlink()
    progress.say(eda.left_out_lines(kept))
    assert progress_file.read_text() == (
        f"left out 2 exact copies with different labels, e.g. r01, r22; {len(kept)} records go "
        "on to the split\n"
    )


def test_notebook_02_after_03_checks_the_split_03_made(records, hashes, tmp_path):
    from helpers.core.records import make_records, save_records, with_split

    absent = tmp_path / "splits.parquet"
    assert eda.with_made_splits(records, absent) is records  # 03 has not run
    made = make_records(_split(records, {"r21": "test", "r23": "val"}).drop(index=[5]))
    save_records(made, absent)
    split_table = eda.with_made_splits(records, absent)
    pd.testing.assert_frame_equal(split_table, with_split(records, made))  # one mapping of it
    leaks = eda.leakage_check(split_table, hashes)
    assert leaks.attrs["checked"] is True and leaks.attrs["n_unassigned"] == 1  # r05 left out
    assert set(leaks["kind"]) == {"exact", "near"}


def test_exact_copies_labelled_otherwise_stay_in_the_datas_own_test_split(tmp_path, monkeypatch):
    # FER-2013's PublicTest holds copies of training faces under other labels: the training
    # copies are left out, the test split is scored as released (3,589 faces, as published),
    # and the terminal says how many conflicting test faces were kept.
    df = build_records(tmp_path)
    df.loc[df["id"] == "r22", "expression"] = 5  # r22 is a copy of r01 (Happy): now Disgust
    df["split"] = None
    df.loc[df["id"] == "r22", "split"] = "test"
    hashes = eda.image_hashes(df, progress=False)
    kept = eda.drop_label_conflicts(df, hashes)
    assert "r22" in set(kept["id"]) and "r01" not in set(kept["id"])
    assert kept.attrs["label_conflicts"]["id"].tolist() == ["r01"]
    assert kept.attrs["label_conflicts_tested"] == 1
    assert eda.left_out_lines(kept) == [
        f"left out 1 exact copies with different labels, e.g. r01; {len(kept)} records go on to "
        "the split",
        "kept 1 exact copies with different labels in the data's own test split: a benchmark's "
        "test set is scored as released",
    ]
    folds = eda.drop_label_conflicts(df, hashes, keep_test=False)  # k-fold: its own test folds
    assert not folds["id"].isin(["r01", "r22"]).any()
    assert folds.attrs["label_conflicts_tested"] == 0
