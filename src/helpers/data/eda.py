"""Exploratory tables over the records table: class balance, image statistics, duplicates, leakage."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from helpers.core.progress import bar as progress_bar
from helpers.core.progress import line

from helpers.core.errors import DataError
from helpers.core.images import (
    decode_image,
    exif_orientation,
    is_image_header,
    read_image,
    read_image_bytes,
)
from helpers.core.labels import EXPRESSIONS, N_EXPRESSIONS
from helpers.core.words import counted

SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
# Perceptual hashes this many of their 64 bits apart, or fewer, count as one face: the default of
# notebooks 02 and 03 (`near_distance`), which the splits keep together.
NEAR_DISTANCE = 4
UNASSIGNED = "unassigned"  # label for records whose split is None in per-split tables
DUPLICATE_KINDS: tuple[str, ...] = ("exact", "near")
LEAK_KINDS: tuple[str, ...] = ("exact", "near", "same_id")

_PAIR_COLUMNS = ["id_a", "id_b", "distance", "kind"]
_LEAK_COLUMNS = ["id_a", "id_b", "distance", "kind", "split_a", "split_b"]
# Elements per block of the pairwise XOR: ~32 MB of uint64, small enough for a laptop.
_BLOCK_ELEMENTS = 4_000_000
# Largest distance the near-duplicate search indexes by chunks: 64 bits cut into 10 chunks of
# 6-7 bits; beyond it chunks are too short to separate codes and every pair is compared.
_MAX_INDEXED_DISTANCE = 9


UNREADABLE_COLUMNS = ["id", "image", "problem"]
CONFLICT_COLUMNS = ["id", "expression", "copy_of"]
ORIENTED_COLUMNS = ["id", "image", "orientation"]
_LISTED = 2  # examples named in a terminal line


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    """Fail early with the missing column names instead of a KeyError deep inside pandas."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def _expressions(df: pd.DataFrame) -> np.ndarray:
    """Expression labels as ints, refusing values outside the shared 8-class space."""
    _require(df, ["expression"], "records table")
    labels = pd.to_numeric(df["expression"], errors="coerce")
    bad = labels.isna() | (labels < 0) | (labels >= N_EXPRESSIONS) | (labels % 1 != 0)
    if bad.any():
        ids = df.loc[bad, "id"].head(5).tolist() if "id" in df.columns else []
        raise ValueError(
            f"{int(bad.sum())} record(s) have an expression outside 0-{N_EXPRESSIONS - 1} "
            f"(first ids: {ids}); the records table must use the shared AffectNet order"
        )
    return labels.to_numpy(dtype=np.int64)


def split_key(split: str) -> tuple[int, str]:
    """Sort train, val, test first and anything else after, alphabetically."""
    return (
        (SPLIT_ORDER.index(split), "") if split in SPLIT_ORDER else (len(SPLIT_ORDER), str(split))
    )


def _split_labels(df: pd.DataFrame) -> pd.Series:
    """The split column with None shown as 'unassigned' (all unassigned when the column is absent)."""
    if "split" not in df.columns:
        return pd.Series(UNASSIGNED, index=df.index, dtype=object)
    return df["split"].astype(object).where(df["split"].notna(), UNASSIGNED)


def _distribution(labels: np.ndarray) -> pd.DataFrame:
    """Counts and shares over all 8 classes, so missing classes show up as zeros."""
    counts = np.bincount(labels, minlength=N_EXPRESSIONS)
    total = counts.sum()
    shares = counts / total if total else np.zeros(N_EXPRESSIONS)
    return pd.DataFrame(
        {
            "expression": np.arange(N_EXPRESSIONS),
            "name": list(EXPRESSIONS),
            "count": counts.astype(np.int64),
            "share": shares.astype(np.float64),
        }
    )


def class_distribution(df: pd.DataFrame, by_split: bool = False) -> pd.DataFrame:
    """Class balance in AffectNet order, zeros included, optionally one block per split."""
    labels = _expressions(df)
    if not by_split:
        return _distribution(labels)
    splits = _split_labels(df).to_numpy()
    blocks = []
    for split in sorted(set(splits), key=split_key):
        block = _distribution(labels[splits == split])
        block.insert(0, "split", split)
        blocks.append(block)
    if not blocks:
        empty = _distribution(labels).iloc[:0].copy()
        empty.insert(0, "split", pd.Series(dtype=object))
        return empty
    return pd.concat(blocks, ignore_index=True)


def balance_text(dist: pd.DataFrame) -> str:
    """What class_distribution says about this data, in a sentence, whatever the data is."""
    present = dist[dist["count"] > 0].sort_values("count", ascending=False, kind="stable")
    if present.empty:
        return "No labelled faces."
    top, bottom = present.iloc[:2], present.iloc[-1]
    largest = " and ".join(f"{r.name} ({r.share:.0%})" for r in top.itertuples())
    text = (
        f"{largest} {'are the largest classes' if len(top) > 1 else 'is the only class'} "
        f"of these {int(dist['count'].sum()):,} faces"
    )
    if len(present) > 2:
        text += f"; {bottom['name']} ({bottom['share']:.0%}) is the smallest"
    absent = dist.loc[dist["count"] == 0, "name"].tolist()
    if absent:
        text += f"; absent: {', '.join(absent)}"
    return (
        f"{text}. A model that always answers {top.iloc[0]['name']} scores "
        f"{top.iloc[0]['share']:.0%} accuracy, which is why the training split is balanced "
        "(notebook 03) and models are compared by macro F1 and Cohen's kappa (05)."
    )


def has_valence_arousal(df: pd.DataFrame) -> bool:
    """Whether any record carries both valence and arousal (AffectNet does, FER-2013 does not)."""
    if not {"valence", "arousal"} <= set(df.columns):
        return False
    both = (
        pd.to_numeric(df["valence"], errors="coerce").notna()
        & pd.to_numeric(df["arousal"], errors="coerce").notna()
    )
    return bool(both.any())


def _sample(df: pd.DataFrame, sample: int | None, seed: int) -> pd.DataFrame:
    """A seeded subset in table order; the whole table when it is small enough."""
    if sample is None or sample >= len(df):
        return df
    if sample < 0:
        raise ValueError(f"sample must be a non-negative int or None, got {sample}")
    rng = np.random.default_rng(seed)
    return df.iloc[np.sort(rng.choice(len(df), size=sample, replace=False))]


def _luminance(image: np.ndarray) -> np.ndarray:
    """Grey level as PIL's 'L' conversion computes it (ITU-R 601), kept in float."""
    if image.ndim == 2:
        return image.astype(np.float64)
    return image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def overview_line(records: int) -> str:
    """What notebook 02 starts on, for the terminal of `./run_all.sh`: its figures and its pass
    over every image take a minute on a busy CPU, silent otherwise."""
    return (
        f"looking at {counted(records, 'record')}: class balance, sample faces, image "
        "statistics, copies and leaks ..."
    )


def image_stats(
    df: pd.DataFrame, sample: int | None = 500, seed: int = 0, progress: bool = True
) -> pd.DataFrame:
    """Size, channels, brightness and RMS contrast (0-255 grey levels) on a seeded sample."""
    _require(df, ["id", "image"], "records table")
    subset = _sample(df, sample, seed)
    rows, unreadable = [], []
    for rec in progress_bar(
        subset.itertuples(index=False), total=len(subset), desc="image stats", disable=not progress
    ):
        try:
            image = read_image(rec.image)
        except DataError as error:  # one bad file among thousands is counted, not fatal
            unreadable.append({"id": rec.id, "image": rec.image, "problem": error.problem})
            continue
        grey = _luminance(image)
        rows.append(
            {
                "id": rec.id,
                "expression": getattr(rec, "expression", None),
                "width": image.shape[1],
                "height": image.shape[0],
                "channels": 1 if image.ndim == 2 else image.shape[2],
                "brightness": float(grey.mean()),
                "contrast": float(grey.std()),
            }
        )
    columns = ["id", "expression", "width", "height", "channels", "brightness", "contrast"]
    stats = pd.DataFrame(rows, columns=columns)
    stats.attrs["unreadable"] = pd.DataFrame(unreadable, columns=UNREADABLE_COLUMNS)
    return stats


def phash_uint64(image: np.ndarray) -> int:
    """64-bit perceptual hash as one integer, so Hamming distances are a popcount of an XOR."""
    bits = imagehash.phash(Image.fromarray(image)).hash.reshape(-1)
    return int(np.packbits(bits).view(">u8")[0])


def image_hashes(df: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """sha1 of the stored bytes (exact copies) and phash of the pixels (near copies), per record."""
    _require(df, ["id", "image"], "records table")
    if progress:  # every image is decoded: minutes for a large set, silent until the bar reports
        line(f"hashing {counted(len(df), 'image')} to find copies and unreadable files ...")
    ids, sha1s, phashes, unreadable, oriented = [], [], [], [], []
    for rec in progress_bar(
        df.itertuples(index=False), total=len(df), desc="hashing", disable=not progress
    ):
        try:
            data = read_image_bytes(rec.image)  # read once: hashed as bytes, then decoded
            code = phash_uint64(decode_image(data, rec.image))
        except DataError as error:  # every image is decoded here: the place to catch bad ones
            unreadable.append({"id": rec.id, "image": rec.image, "problem": error.problem})
            continue
        if (turn := _orientation(data)) != 1:
            oriented.append({"id": rec.id, "image": rec.image, "orientation": turn})
        ids.append(rec.id)
        sha1s.append(hashlib.sha1(data).hexdigest())
        phashes.append(code)
    hashes = pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=object),
            "sha1": pd.Series(sha1s, dtype=object),
            "phash": np.array(phashes, dtype=np.uint64),
        }
    )
    hashes.attrs["unreadable"] = pd.DataFrame(unreadable, columns=UNREADABLE_COLUMNS)
    hashes.attrs["oriented"] = pd.DataFrame(oriented, columns=ORIENTED_COLUMNS)
    return hashes


def _orientation(data: bytes) -> int:
    """The EXIF orientation of image bytes that decoded (header only; 1 when none)."""
    if not is_image_header(data):
        return 1
    try:
        with Image.open(io.BytesIO(data)) as img:
            return exif_orientation(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 1


def drop_unreadable(df: pd.DataFrame, hashes: pd.DataFrame) -> pd.DataFrame:
    """Records whose image decoded when hashed; the rest would stop training at the first batch.

    The dropped ones are in the result's attrs["unreadable"] (id, image, problem).
    """
    bad = hashes.attrs.get("unreadable", pd.DataFrame(columns=UNREADABLE_COLUMNS))
    kept = df[~df["id"].isin(set(bad["id"]))].reset_index(drop=True)
    kept.attrs = {**df.attrs, "unreadable": bad}
    return kept


def label_conflicts(df: pd.DataFrame, hashes: pd.DataFrame) -> pd.DataFrame:
    """Records whose exact copies (the same bytes, under another name or class folder) carry
    another expression: contradictory targets, since which label is right cannot be told.

    One row per such record: id, expression (its name) and copy_of (the first id of its copies).
    A record without an expression (NaN or below 0) conflicts with nothing: a missing label is
    no other label.
    """
    _require(hashes, ["id", "sha1"], "hash table")
    merged = hashes[["id", "sha1"]].merge(
        df[["id", "expression"]].drop_duplicates("id"), on="id", how="inner"
    )
    labelled = pd.to_numeric(merged["expression"], errors="coerce") >= 0  # NaN compares False
    merged = merged[labelled.to_numpy()]
    labels = pd.to_numeric(merged["expression"], errors="coerce")
    kinds = labels.groupby(merged["sha1"]).transform("nunique")
    bad = merged[kinds.to_numpy() > 1]
    first = bad.groupby("sha1")["id"].transform("first")
    names = pd.to_numeric(bad["expression"]).map(lambda k: EXPRESSIONS[int(k)])
    out = pd.DataFrame(
        {"id": bad["id"].to_numpy(), "expression": names.to_numpy(), "copy_of": first.to_numpy()},
        columns=CONFLICT_COLUMNS,
    )
    return out.reset_index(drop=True)


def drop_label_conflicts(
    df: pd.DataFrame, hashes: pd.DataFrame, keep_test: bool = True
) -> pd.DataFrame:
    """Records without an exact copy labelled otherwise; those with one are left out, all of
    them, as none can be trusted over another. They are in attrs["label_conflicts"].

    With keep_test, those in the data's own test split (`split` "test": FER-2013's PublicTest)
    stay, so a benchmark's test set is scored as released, its label noise included, and figures
    compare with published ones; their count is attrs["label_conflicts_tested"]. A k-fold run
    draws its own test folds and passes keep_test=False."""
    bad = label_conflicts(df, hashes)
    tested = pd.Series(False, index=bad.index)
    if keep_test and "split" in df.columns:
        own_test = set(df.loc[df["split"].astype(str) == "test", "id"])
        tested = bad["id"].isin(own_test)
    dropped = bad[~tested.to_numpy()].reset_index(drop=True)
    kept = df[~df["id"].isin(set(dropped["id"]))].reset_index(drop=True)
    kept.attrs = {
        **df.attrs,
        "label_conflicts": dropped,
        "label_conflicts_tested": int(tested.sum()),
    }
    return kept


def _examples(ids: pd.Series) -> str:
    """', e.g. a, b' naming a few records, or nothing."""
    listed = ", ".join(map(str, ids.head(_LISTED)))
    return f", e.g. {listed}" if listed else ""


def hash_findings(hashes: pd.DataFrame, conflicts: pd.DataFrame) -> list[str]:
    """What hashing every image found that changes what is trained on: undecodable images,
    exact copies labelled otherwise (both left out by notebook 03), and photos with an EXIF
    orientation (read as stored, which may be sideways). Empty when there is none."""
    lines = []
    bad = hashes.attrs.get("unreadable", pd.DataFrame(columns=UNREADABLE_COLUMNS))
    if len(bad):
        first = f"{bad['id'].iloc[0]} ({bad['problem'].iloc[0]})"
        lines.append(
            f"{len(bad):,} image(s) could not be decoded, e.g. {first}; notebook 03 leaves them out"
        )
    if len(conflicts):
        pairs = conflicts[conflicts["id"] != conflicts["copy_of"]]
        said = [f"{r.id} = {r.copy_of}" for r in pairs.head(_LISTED).itertuples()]
        lines.append(
            f"{len(conflicts):,} record(s) are exact copies of one another with different "
            f"labels, e.g. {', '.join(said)}; notebook 03 leaves them out, except those in the "
            "data's own test split, which is scored as released"
        )
    oriented = hashes.attrs.get("oriented", pd.DataFrame(columns=ORIENTED_COLUMNS))
    if len(oriented):
        lines.append(
            f"{len(oriented):,} image(s) carry an EXIF orientation{_examples(oriented['id'])}: "
            "training reads them as stored, which may be sideways (the predictor turns photos "
            "upright); turn them upright in the source to train on them upright"
        )
    return lines


def left_out_lines(table: pd.DataFrame) -> list[str]:
    """What drop_unreadable and drop_label_conflicts left out of a table, for the terminal."""
    unreadable = table.attrs.get("unreadable", pd.DataFrame(columns=UNREADABLE_COLUMNS))
    conflicts = table.attrs.get("label_conflicts", pd.DataFrame(columns=CONFLICT_COLUMNS))
    parts = []
    if len(unreadable):
        parts.append(f"{len(unreadable):,} undecodable image(s){_examples(unreadable['id'])}")
    if len(conflicts):
        parts.append(
            f"{len(conflicts):,} exact copies with different labels{_examples(conflicts['id'])}"
        )
    lines = (
        [f"left out {'; '.join(parts)}; {len(table):,} records go on to the split"] if parts else []
    )
    tested = int(table.attrs.get("label_conflicts_tested", 0))
    if tested:
        lines.append(
            f"kept {tested:,} exact copies with different labels in the data's own test split: "
            "a benchmark's test set is scored as released"
        )
    return lines


def _phash_codes(hashes: pd.DataFrame) -> np.ndarray:
    """phash column as uint64, accepting the hex strings a CSV round trip leaves behind."""
    col = hashes["phash"]
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy().astype(np.uint64)
    return np.array([int(str(h), 16) for h in col], dtype=np.uint64)


def _all_pairs(codes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All i < j with Hamming(codes[i], codes[j]) <= max_distance, comparing every pair in blocks."""
    n = len(codes)
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    found_i, found_j, found_d = [], [], []
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        # Compare rows start..stop with columns start..n only; c > r below keeps j > i.
        dist = np.bitwise_count(codes[start:stop, None] ^ codes[None, start:])
        r, c = np.nonzero(dist <= max_distance)
        upper = c > r
        r, c = r[upper], c[upper]
        found_i.append(start + r)
        found_j.append(start + c)
        found_d.append(dist[r, c])
    return _joined(found_i, found_j, found_d)


def _joined(
    found_i: list[np.ndarray], found_j: list[np.ndarray], found_d: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blocks of (i, j, distance) as three int64 arrays, empty ones when nothing was found."""
    if not found_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return (
        np.concatenate(found_i).astype(np.int64),
        np.concatenate(found_j).astype(np.int64),
        np.concatenate(found_d).astype(np.int64),
    )


def _same_key_pairs(key: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair of positions whose keys are equal, in blocks of at most _BLOCK_ELEMENTS pairs.

    Sorting groups equal keys; each position is paired with the rest of its group after it, so
    the work is the number of such pairs, not n squared.
    """
    n = len(key)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]
    group_end = np.repeat(ends, ends - starts)
    partners = group_end - np.arange(n) - 1  # later members of the same group
    total_before = np.cumsum(partners)
    start = 0
    while start < n:
        base = total_before[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(total_before, base + _BLOCK_ELEMENTS, "right")))
        counts = partners[start:stop]
        total = int(counts.sum())
        if total:
            p = np.repeat(np.arange(start, stop), counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            q = p + 1 + (np.arange(total) - first)
            yield order[p], order[q]
        start = stop


def _near_pairs(codes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All i < j with Hamming(codes[i], codes[j]) <= max_distance, without comparing every pair.

    Multi-index hashing: cut the 64 bits into max_distance + 1 chunks; two codes within
    max_distance bits agree exactly on at least one chunk (pigeonhole), so only codes that share
    a chunk are compared, each pair once, in the first chunk they share. On a large data set
    this is a small fraction of the n^2 / 2 pairs; with chunks too short to separate anything
    (max_distance above _MAX_INDEXED_DISTANCE) every pair is compared.
    """
    if max_distance > _MAX_INDEXED_DISTANCE:
        return _all_pairs(codes, max_distance)
    bounds = np.linspace(0, 64, max_distance + 2).astype(np.uint64)
    keys = [
        (codes >> low) & np.uint64((1 << int(high - low)) - 1)
        for low, high in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    found_i, found_j, found_d = [], [], []
    for k, key in enumerate(keys):
        for a, b in _same_key_pairs(key):
            dist = np.bitwise_count(codes[a] ^ codes[b])
            keep = dist <= max_distance
            for earlier in keys[:k]:  # shared an earlier chunk: already compared there
                keep &= earlier[a] != earlier[b]
            a, b = a[keep], b[keep]
            found_i.append(np.minimum(a, b))
            found_j.append(np.maximum(a, b))
            found_d.append(dist[keep])
    return _joined(found_i, found_j, found_d)


def _exact_pairs(sha1: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """All i < j with identical sha1; the loop runs over duplicate groups, not over pairs."""
    codes, _ = pd.factorize(sha1)
    order = np.argsort(codes, kind="stable")
    _, starts, sizes = np.unique(codes[order], return_index=True, return_counts=True)
    found_i, found_j = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        members = order[start : start + size]
        a, b = np.triu_indices(size, k=1)
        found_i.append(members[a])
        found_j.append(members[b])
    return np.concatenate(found_i), np.concatenate(found_j)


def find_duplicates(hashes: pd.DataFrame, max_distance: int = NEAR_DISTANCE) -> pd.DataFrame:
    """Pairs of exact (same sha1) and near (phash within max_distance bits) copies, closest first."""
    _require(hashes, ["id", "sha1", "phash"], "hash table")
    if not 0 <= int(max_distance) <= 64:
        raise ValueError(f"max_distance is a number of differing bits in 0-64, got {max_distance}")
    codes = _phash_codes(hashes)
    ids = hashes["id"].to_numpy(dtype=object)
    sha1 = hashes["sha1"].to_numpy(dtype=object)

    ex_i, ex_j = _exact_pairs(hashes["sha1"])
    ex_d = np.bitwise_count(codes[ex_i] ^ codes[ex_j]).astype(np.int64)
    near_i, near_j, near_d = _near_pairs(codes, int(max_distance))
    differ = sha1[near_i] != sha1[near_j]  # same bytes are already listed as exact
    near_i, near_j, near_d = near_i[differ], near_j[differ], near_d[differ]

    i = np.concatenate([ex_i, near_i])
    j = np.concatenate([ex_j, near_j])
    kind_rank = np.concatenate([np.zeros(len(ex_i), np.int64), np.ones(len(near_i), np.int64)])
    dist = np.concatenate([ex_d, near_d])
    order = np.lexsort((j, i, kind_rank, dist))
    i, j, dist, kind_rank = i[order], j[order], dist[order], kind_rank[order]
    return pd.DataFrame(
        {
            "id_a": pd.Series(ids[i], dtype=object),
            "id_b": pd.Series(ids[j], dtype=object),
            "distance": dist.astype(np.int64),
            "kind": pd.Series(np.array(DUPLICATE_KINDS, dtype=object)[kind_rank], dtype=object),
        },
        columns=_PAIR_COLUMNS,
    )


def _empty_leaks() -> pd.DataFrame:
    """The leakage frame with no rows but the right columns and dtypes."""
    return pd.DataFrame(
        {
            "id_a": pd.Series(dtype=object),
            "id_b": pd.Series(dtype=object),
            "distance": pd.Series(dtype=np.int64),
            "kind": pd.Series(dtype=object),
            "split_a": pd.Series(dtype=object),
            "split_b": pd.Series(dtype=object),
        }
    )


def _orient(leaks: pd.DataFrame) -> pd.DataFrame:
    """Put the earlier split (train < val < test) on the a side so split pairs group together."""
    swap = np.array(
        [split_key(a) > split_key(b) for a, b in zip(leaks["split_a"], leaks["split_b"])],
        dtype=bool,
    )
    if not swap.any():
        return leaks
    out = leaks.copy()
    for left, right in (("id_a", "id_b"), ("split_a", "split_b")):
        out.loc[swap, left] = leaks.loc[swap, right].to_numpy()
        out.loc[swap, right] = leaks.loc[swap, left].to_numpy()
    return out


def with_made_splits(table: pd.DataFrame, splits: str | os.PathLike) -> pd.DataFrame:
    """The records with the split notebook 03 gave each (its splits.parquet) where it has run,
    so notebook 02 run after 03 checks that split for leakage; the records as they are before.
    As records.with_split puts it on records.parquet: a record 03 left out has no split."""
    from helpers.core.records import load_records, with_split

    if not Path(splits).is_file():
        return table
    return with_split(table, load_records(splits))


def leakage_check(
    df: pd.DataFrame,
    hashes: pd.DataFrame | None,
    max_distance: int = NEAR_DISTANCE,
    pairs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Duplicates and ids that cross splits; empty is good. attrs['checked'] is False without splits.

    `pairs` reuses a find_duplicates result instead of recomputing it. The result's attrs hold
    'checked' (bool), 'n_unassigned' (records without a split, left out) and 'message'.
    """
    _require(df, ["id"], "records table")
    split = df["split"] if "split" in df.columns else pd.Series(None, index=df.index, dtype=object)
    assigned = df.loc[split.notna(), ["id"]].assign(split=split[split.notna()].astype(object))
    n_unassigned = int(len(df) - len(assigned))
    leaks = _empty_leaks()
    if assigned.empty:
        leaks.attrs.update(
            checked=False,
            n_unassigned=n_unassigned,
            message="No record has a split, so there is nothing to check for leakage "
            "(splits are made in 03_augment, or come from the source).",
        )
        return leaks

    split_of = assigned.drop_duplicates()
    parts = []
    # One id in several splits: the same record is trained and tested on.
    repeated = split_of[split_of["id"].duplicated(keep=False)]
    for rid, group in repeated.groupby("id", sort=False):
        for a, b in combinations(sorted(group["split"], key=split_key), 2):
            parts.append(
                pd.DataFrame(
                    {
                        "id_a": [rid],
                        "id_b": [rid],
                        "distance": [0],
                        "kind": ["same_id"],
                        "split_a": [a],
                        "split_b": [b],
                    }
                )
            )

    if pairs is None:
        _require(hashes, ["id", "sha1", "phash"], "hash table")
        pairs = find_duplicates(hashes[hashes["id"].isin(split_of["id"])], max_distance)
    if len(pairs):
        merged = (
            pairs[_PAIR_COLUMNS]
            .merge(split_of.rename(columns={"id": "id_a", "split": "split_a"}), on="id_a")
            .merge(split_of.rename(columns={"id": "id_b", "split": "split_b"}), on="id_b")
        )
        parts.append(merged[merged["split_a"] != merged["split_b"]])

    parts = [p for p in parts if len(p)]
    if parts:
        leaks = _orient(pd.concat(parts, ignore_index=True)[_LEAK_COLUMNS])
        leaks = leaks.astype(
            {
                "id_a": object,
                "id_b": object,
                "distance": np.int64,
                "kind": object,
                "split_a": object,
                "split_b": object,
            }
        )
        leaks = leaks.sort_values(
            ["split_a", "split_b", "distance", "kind"],
            key=lambda s: s.map(split_key) if s.name.startswith("split") else s,
        ).reset_index(drop=True)
    message = (
        f"{len(leaks)} pair(s) cross splits: drop or move one side of each."
        if len(leaks)
        else "No leakage: no duplicate or repeated id crosses splits."
    )
    if n_unassigned:
        message += f" {n_unassigned} record(s) without a split were not checked."
    leaks.attrs.update(checked=True, n_unassigned=n_unassigned, message=message)
    return leaks


def leakage_summary(leaks: pd.DataFrame) -> pd.DataFrame:
    """Leaked pairs per split pair and kind, plus how many split_b records are involved."""
    columns = ["split_a", "split_b", *LEAK_KINDS, "total", "records_b"]
    if leaks.empty:
        out = pd.DataFrame(
            {c: pd.Series(dtype=object if c.startswith("split") else np.int64) for c in columns}
        )
    else:
        counts = pd.crosstab([leaks["split_a"], leaks["split_b"]], leaks["kind"]).reindex(
            columns=list(LEAK_KINDS), fill_value=0
        )
        counts["total"] = counts.sum(axis=1)
        counts["records_b"] = leaks.groupby(["split_a", "split_b"])["id_b"].nunique()
        out = counts.reset_index().rename_axis(columns=None)[columns]
        out = out.sort_values(["split_a", "split_b"], key=lambda s: s.map(split_key))
        out = out.reset_index(drop=True).astype({c: np.int64 for c in columns[2:]})
    out.attrs.update(leaks.attrs)
    return out


def valence_arousal_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per-class valence/arousal moments and how many records carry them (all 8 classes listed)."""
    labels = _expressions(df)
    frame = pd.DataFrame(
        {
            "expression": labels,
            "valence": pd.to_numeric(df["valence"], errors="coerce").to_numpy(dtype=np.float64)
            if "valence" in df.columns
            else np.nan,
            "arousal": pd.to_numeric(df["arousal"], errors="coerce").to_numpy(dtype=np.float64)
            if "arousal" in df.columns
            else np.nan,
        }
    )
    frame["has_va"] = frame["valence"].notna() & frame["arousal"].notna()
    grouped = frame.groupby("expression")
    out = pd.DataFrame(
        {
            "n": grouped.size(),
            "n_va": grouped["has_va"].sum(),
            "valence_mean": grouped["valence"].mean(),
            "valence_std": grouped["valence"].std(),
            "arousal_mean": grouped["arousal"].mean(),
            "arousal_std": grouped["arousal"].std(),
        }
    ).reindex(range(N_EXPRESSIONS))
    out[["n", "n_va"]] = out[["n", "n_va"]].fillna(0).astype(np.int64)
    out.insert(2, "va_share", np.where(out["n"] > 0, out["n_va"] / out["n"].clip(lower=1), 0.0))
    out.insert(0, "name", list(EXPRESSIONS))
    return out.rename_axis("expression").reset_index()
