"""Train/val/test assignment done BEFORE any augmentation, so no face is seen in two splits."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import (
    GroupKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from helpers.core import paths, progress, records, trained
from helpers.core.errors import ConfigError, DataError
from helpers.core.groups import group_codes
from helpers.core.labels import EXPRESSIONS
from helpers.core.records import load_records, save_records, with_split
from helpers.core.run_folder import RunFolder
from helpers.core.words import counted

SPLITS: tuple[str, ...] = ("train", "val", "test")
# sklearn's stratified splitter needs at least two members per class.
_MIN_TO_STRATIFY = 2


class LeakageError(DataError):
    """Augmented rows derived from images outside the training split."""


def assign_splits(
    df: pd.DataFrame,
    val_share: float = 0.1,
    test_share: float = 0.1,
    seed: int = 0,
    keep_official: bool = True,
    groups: pd.Series | Sequence | None = None,
) -> pd.DataFrame:
    """Fill `split` stratified by expression, honouring official splits and duplicate groups.

    Rows whose split is already set keep it (unless keep_official=False). A source that
    ships train but lacks val (or test), with every row assigned, gets it carved out of its
    own train rows: val_share (test_share) of them, stratified. Every other row is split afresh: test_share and
    val_share of those rows, the rest train. With `groups` (a label per row, NaN = alone),
    each group lands in a single split; shares then count groups rather than rows. Classes
    too small to stratify stay in train, with a warning that names them.
    """
    _check_shares(val_share, test_share)
    if "expression" not in df.columns:
        raise DataError("records table", "no 'expression' column to stratify by")
    out = df.copy()
    split = _initial_splits(out, keep_official)
    labels = pd.to_numeric(out["expression"], errors="coerce").fillna(-1).to_numpy(np.int64)
    units = _unit_codes(out, groups)
    tiny: dict[int, int] = {}

    split = _follow_assigned_group_members(split, units)
    sources = out["source"].astype(str).to_numpy() if "source" in out.columns else None
    if sources is not None:
        for src in pd.unique(sources[pd.notna(split)]):
            split = _carve_missing(split, labels, units, sources == src, str(src),
                                   val_share, test_share, seed, tiny)
    todo = pd.isna(split)
    if todo.any():
        rows = np.flatnonzero(todo)
        split[rows] = _stratified_assign(labels[rows], units[rows],
                                         [("test", test_share), ("val", val_share)], seed, tiny)
        _add_left_in_train(split, labels, units, todo, tiny)
    if tiny:
        named = ", ".join(f"{_class_name(c)} ({n})" for c, n in sorted(tiny.items()))
        warnings.warn("assign_splits: classes with too few rows (or groups) left to stratify "
                      f"were kept in train: {named}",
                      stacklevel=2)
        progress.terminal(tiny_classes_line(tiny, labels))
    out["split"] = pd.Series(split, index=out.index, dtype="str")  # records.py canonical dtype
    return out


def _add_left_in_train(split: np.ndarray, labels: np.ndarray, units: np.ndarray,
                       drawn: np.ndarray, tiny: dict[int, int]) -> None:
    """Add to `tiny` the classes drawn here whose every face stayed in train while others got
    validation or test faces: two faces of a class can both land in train by rounding, and are
    as unscored as one face too few to stratify."""
    if not (split != "train").any():
        return
    for code in np.unique(labels[drawn]):
        rows = labels == code
        if int(code) not in tiny and drawn[rows].all() and (split[rows] == "train").all():
            tiny[int(code)] = len(np.unique(units[rows]))


def coverage_lines(df: pd.DataFrame) -> list[str]:
    """What notebook 03 says of classes on one side of the split only: trained on but never
    tested (not scored), or tested but never trained on (scored, though unlearnable)."""
    split = df["split"].astype("string")
    codes = pd.to_numeric(df["expression"], errors="coerce")
    train, test = set(codes[split == "train"].dropna()), set(codes[split == "test"].dropna())
    if not train or not test:
        return []
    lines = []
    trained_only = [_class_name(c) for c in sorted(train - test)]
    if trained_only:
        one = len(trained_only) == 1
        lines.append(
            f"{', '.join(trained_only)}: training faces but no test faces: the model learns "
            f"{'it' if one else 'them'} but {'it is' if one else 'they are'} not scored (no "
            f"per-class F1; a test face predicted as {'it' if one else 'one of them'} counts "
            "as an error)"
        )
    for code in sorted(test - train):
        n = int(((split == "test") & (codes == code)).sum())
        lines.append(
            f"{_class_name(code)}: {counted(n, 'test face')} and no training faces: the model "
            "never trains on it; its test faces are still scored, as errors unless the model "
            "happens to predict it, and its F1 (near 0) counts in the macro-F1"
        )
    return lines


def tiny_classes_line(tiny: dict[int, int], labels: np.ndarray) -> str:
    """What the terminal of `./run_all.sh` says of classes too small to split: each class with
    its faces, kept in train, so none of its faces is validated or tested."""
    named = []
    for code, units in sorted(tiny.items()):
        faces = int((labels == code).sum())
        text = f"{_class_name(code)} {counted(faces, 'face')}"
        if units != faces:  # near-duplicates (or one person's faces) count once
            text += f" ({counted(units, 'group')} of near-duplicates or a person)"
        named.append(text)
    return (f"too few faces to split, kept in train only (no validation or test faces for "
            f"{'it' if len(named) == 1 else 'them'}): {', '.join(named)}")


def assign_fold(
    df: pd.DataFrame,
    folds: int,
    fold: int,
    val_share: float = 0.1,
    seed: int = 0,
    groups: pd.Series | Sequence | None = None,
) -> pd.DataFrame:
    """Fill `split` for k-fold cross-validation, the protocol small sets (JAFFE, CK+) are
    reported with: test is fold `fold` (1..folds) of `folds` folds over every record,
    stratified by expression with each group (near-duplicates, one person's faces) in one
    fold; the source's own splits are set aside, and val is drawn from the other folds as
    assign_splits draws it. One seed gives one set of folds, so the runs of folds 1..folds
    test every record once. Adds `fold` (each record's fold) and `group` (the unit it was
    dealt with), so the folds' runs can be checked alike and their intervals drawn by group."""
    check_fold(folds, fold)
    _check_shares(val_share, 0.0)
    if "expression" not in df.columns:
        raise DataError("records table", "no 'expression' column to stratify by")
    labels = pd.to_numeric(df["expression"], errors="coerce").fillna(-1).to_numpy(np.int64)
    units = _unit_codes(df, groups)
    numbers = fold_numbers(labels, units, folds, seed)
    test = numbers == fold
    rest = df.loc[~test].drop(columns="split", errors="ignore")
    drawn = assign_splits(
        rest, val_share=val_share, test_share=0.0, seed=seed, keep_official=False,
        groups=pd.Series(units[~test], index=rest.index),
    )  # fmt: skip
    split = np.full(len(df), "test", dtype=object)
    split[~test] = drawn["split"].to_numpy(dtype=object)
    out = df.copy()
    out["split"] = pd.Series(split, index=out.index, dtype="str")
    out["fold"], out["group"] = numbers, units
    return out


def save_splits(run: RunFolder, split_table: pd.DataFrame) -> None:
    """Notebook 03's split written where the run folder's contract puts it: splits.parquet, and
    the split column of records.parquet (the data's own split kept there as source_split)."""
    save_records(split_table, run.splits)
    save_records(with_split(load_records(run.records), split_table), run.records)


def split_records(
    df: pd.DataFrame,
    groups: pd.Series | Sequence | None,
    *,
    val_share: float,
    test_share: float,
    seed: int,
    folds: int = 0,
    fold: int = 1,
) -> tuple[pd.DataFrame, str | None]:
    """Notebook 03's split: assign_splits, or with `folds` one fold of a cross-validation
    (assign_fold) and the line that says which fold is tested."""
    if not folds:
        return assign_splits(df, val_share, test_share, seed, groups=groups), None
    table = assign_fold(df, folds, fold, val_share=val_share, seed=seed, groups=groups)
    return table, fold_note(df, table, folds, fold)


def check_fold(folds: int, fold: int) -> None:
    """Fold numbers a cross-validation can have: 2 or more folds, fold in 1..folds."""
    for name, value in (("folds", folds), ("fold", fold)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if folds < 2 or not 1 <= fold <= folds:
        raise ConfigError(f"fold {fold} of {folds}: two folds or more, the fold in 1..{folds}")


def fold_numbers(labels: np.ndarray, units: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each row's fold (1..folds), stratified by label, whole units at a time: scikit-learn's
    StratifiedGroupKFold, or StratifiedKFold where every unit is one row (the same folds'
    balance, without the grouped search's loop over every row). Where every class has fewer
    members than folds (leave-one-subject-out on CK+: a fold per person), nothing can be
    stratified: GroupKFold deals whole units alone, and a warning says so."""
    n_units = len(np.unique(units))
    if n_units < folds:
        raise DataError(
            "records table",
            f"{folds} folds need {folds} groups or more; the {len(units):,} records form "
            f"{n_units:,} (near-duplicates and one person's faces stay in one fold)",
        )
    placeholder = np.zeros((len(units), 1))
    if not stratifiable(labels, folds):
        warnings.warn(
            f"assign_fold: every class has fewer than {folds} records, so the folds are dealt "
            "by group alone, not stratified by expression",
            stacklevel=3,
        )
        parts = GroupKFold(folds, shuffle=True, random_state=seed).split(placeholder, labels, units)
    elif n_units == len(units):
        parts = StratifiedKFold(folds, shuffle=True, random_state=seed).split(placeholder, labels)
    else:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        parts = splitter.split(placeholder, labels, units)
    number = np.zeros(len(units), dtype=np.int64)
    try:
        for index, (_, test_rows) in enumerate(parts, start=1):
            number[test_rows] = index
    except ValueError as exc:  # scikit-learn's own checks
        raise DataError("records table", f"cannot deal {folds} folds: {exc}") from None
    return number


def stratifiable(labels: np.ndarray | pd.Series, folds: int) -> bool:
    """Whether folds can be stratified by these labels: scikit-learn needs a class with a member
    per fold at least; otherwise (a fold per person on CK+) they are dealt by group alone."""
    codes = pd.to_numeric(pd.Series(np.asarray(labels)), errors="coerce").fillna(-1)
    return bool(len(codes)) and int(codes.value_counts().max()) >= folds


def fold_note(records: pd.DataFrame, table: pd.DataFrame, folds: int, fold: int) -> str:
    """One line for notebook 03: which fold is the test split, and the source's own splits
    set aside where it had them."""
    n_test = int((table["split"] == "test").sum())
    note = (
        f"cross-validation: fold {fold} of {folds} is the test split "
        f"({n_test:,} of {len(table):,} records)"
    )
    own = records["split"].dropna().astype(str) if "split" in records.columns else pd.Series()
    own = [name for name in SPLITS if name in set(own)]
    if own:
        note += f"; the source's own {'/'.join(own)} splits are set aside"
    return note


def save_split(table: pd.DataFrame, run: RunFolder, discard_models: bool = False) -> None:
    """Write notebook 03's split to the run folder. One that differs from the split models here
    trained on is refused (scoring them on it would count faces they trained on as test
    faces), unless discard_models deletes those models and what was made from them; the same
    split again (same seed and settings) is written as before. A new split removes the training
    table of the one before, so notebook 04 cannot train on it before 03 writes its own."""
    models = run.trained_models()
    current = trained.split_sha256(run)
    new = trained.table_split_sha256(table["id"], table["split"])
    if models and current is not None and current != new:
        named = ", ".join(models)
        if not discard_models:
            raise ConfigError(
                f"{paths.shown(run.splits)}: {counted(len(models), 'model')} ({named}) "
                "trained on the split there, and this one differs (another seed, share or "
                "fold): start a new run with notebook 01 for another split, or set "
                "discard_models = True to delete those models and their metrics"
            )
        run.discard_models()
        print(f"deleted the models trained on the earlier split ({named}) and their metrics")
    if current is not None and current != new:  # the training table of the earlier split
        run.train_table.unlink(missing_ok=True)  # 04 waits for 03 to write it again
    save_splits(run, table)


def split_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Rows per class and split, with totals, to eyeball balance and stratification."""
    names = df["expression"].map(lambda c: _class_name(c) if pd.notna(c) else "(missing)")
    split = df["split"].astype(object).where(df["split"].notna(), "(none)")
    table = pd.crosstab(names, split)
    order = [c for c in SPLITS if c in table.columns] + [c for c in table.columns if c not in SPLITS]
    rows = [n for n in EXPRESSIONS] + sorted(set(table.index) - set(EXPRESSIONS))
    table = table.reindex(index=rows, columns=order, fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.index.name, table.columns.name = "expression", "split"
    return table.astype(int)


def check_split_sizes(
    df: pd.DataFrame, groups: pd.Series | None, val_share: float, test_share: float
) -> None:
    """A test split asked for but empty is a DataError before any training (notebook 05 would
    have nothing to score); an empty validation split a warning (training runs without it).
    The usual cause, named: too few groups, since each group stays in one split. Classes only
    in train, or only in test, are said (coverage_lines)."""
    split = df["split"].astype("string")
    units = groups.nunique() if groups is not None else len(df)
    largest = int(groups.value_counts().max()) if groups is not None and len(groups) else 1
    why = (
        f"the {len(df):,} records form {counted(units, 'group')} that each "
        "stay in one split "
        f"(near-duplicates, one person's faces; the largest holds {largest:,})"
    )
    if test_share > 0 and not (split == "test").any():
        raise DataError(
            "records table",
            f"no record landed in the test split (test_share {test_share:g}): {why}. Add "
            "records, or set test_share to 0 and score the model on another source (test_data)",
        )
    if val_share > 0 and not (split == "val").any():
        warnings.warn(
            f"no record landed in the validation split (val_share {val_share:g}): {why}; "
            "training runs without validation",
            stacklevel=2,
        )
    progress.say(coverage_lines(df))  # here and in the terminal of ./run_all.sh


def check_no_leakage(df: pd.DataFrame, derived: pd.DataFrame) -> None:
    """Refuse derived (augmented) rows whose source image is not in the training split."""
    if "source_id" not in derived.columns:
        raise LeakageError("derived table", "no 'source_id' column naming the original rows")
    if len(derived) == 0:
        return
    by_source = "source" in df.columns and "source" in derived.columns
    split_of = dict(zip(_keys(df, "id", by_source), df["split"]))
    derived_keys = _keys(derived, "source_id", by_source)
    bad = [k for k in derived_keys if split_of.get(k) != "train"]
    if bad:
        found = pd.Series([split_of.get(k, "(unknown id)") for k in bad]).fillna("(none)")
        counts = ", ".join(f"{s}: {n}" for s, n in found.value_counts().items())
        examples = ", ".join(str(k[-1] if isinstance(k, tuple) else k) for k in bad[:5])
        raise LeakageError(
            "derived table",
            f"{len(bad)} augmented rows come from images outside the train split ({counts}); "
            f"e.g. source ids {examples}",
        )


def duplicate_groups(df: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """Group ids joined by duplicate pairs (id_a, id_b), and rows of one person (a `subject`
    column, as the JAFFE and CK+ readers write), so assign_splits keeps each together: with a
    few people posing every expression, a face of the same person in train and test scores
    identity, not expression."""
    ids = df["id"].astype(str)
    pos = {v: i for i, v in enumerate(ids)}
    known = [(pos[a], pos[b]) for a, b in zip(pairs["id_a"].astype(str), pairs["id_b"].astype(str))
             if a in pos and b in pos]
    if "subject" in df.columns:
        subjects = pd.Series(df["subject"].to_numpy(), dtype="string")
        for rows in subjects.groupby(subjects, dropna=True).indices.values():
            known += [(int(rows[0]), int(r)) for r in rows[1:]]
    n = len(ids)
    if known:
        a, b = np.array(known).T
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    else:
        graph = coo_matrix((n, n))
    _, labels = connected_components(graph, directed=False)
    return pd.Series(labels, index=df.index, name="group")


def _check_shares(val_share: float, test_share: float) -> None:
    """Bad shares are a parameter mistake, caught before any work."""
    for name, value in (("val_share", val_share), ("test_share", test_share)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    if val_share + test_share >= 1:
        raise ConfigError(
            f"val_share + test_share must leave rows for training, got {val_share} + {test_share}")


def _initial_splits(df: pd.DataFrame, keep_official: bool) -> np.ndarray:
    """Existing split values (None where unset), validated."""
    if "split" not in df.columns or not keep_official:
        return np.full(len(df), None, dtype=object)
    split = df["split"].astype(object).where(df["split"].notna(), None).to_numpy(dtype=object, copy=True)
    split[split == ""] = None
    bad = sorted({str(s) for s in split if s is not None and s not in SPLITS})
    if bad:
        raise DataError("records table", f"unknown split values {bad}; expected {list(SPLITS)}")
    return split


def _unit_codes(df: pd.DataFrame, groups: pd.Series | Sequence | None) -> np.ndarray:
    """One integer per row naming the unit that must stay in one split (a group or the row)."""
    n = len(df)
    if groups is None:
        return np.arange(n)
    if isinstance(groups, pd.Series):
        if not groups.index.equals(df.index):
            if not df.index.isin(groups.index).all():
                raise ConfigError("groups must be a Series aligned to the records table's index")
            groups = groups.reindex(df.index)
        values = groups.to_numpy(dtype=object)
    else:
        values = np.asarray(groups, dtype=object)
        if len(values) != n:
            raise ConfigError(f"groups has {len(values)} entries for {n} rows")
    return group_codes(values)  # rows without a group are units of their own


def _follow_assigned_group_members(split: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Unassigned members of a group join the split its assigned members already have."""
    frame = pd.DataFrame({"unit": units, "split": split})
    assigned = frame.dropna(subset=["split"])
    per_unit = assigned.groupby("unit")["split"].agg(lambda s: s.mode().iloc[0])
    crossing = assigned.groupby("unit")["split"].nunique()
    if (crossing > 1).any():
        warnings.warn(
            f"assign_splits: {(crossing > 1).sum()} duplicate groups already span more than one "
            "split in the source's own split; left as the source set them", stacklevel=3)
    todo = pd.isna(split) & frame["unit"].isin(per_unit.index).to_numpy()
    split = split.copy()
    split[todo] = frame.loc[todo, "unit"].map(per_unit).to_numpy()
    return split


def _carve_missing(split: np.ndarray, labels: np.ndarray, units: np.ndarray, in_source: np.ndarray,
                   source: str, val_share: float, test_share: float, seed: int,
                   tiny: dict[int, int]) -> np.ndarray:
    """Give a source with official train but no val (or test) one, taken from its train rows."""
    if pd.isna(split[in_source]).any():
        return split  # partly unassigned: its fresh rows will supply val and test
    present = set(split[in_source])
    wanted = [(name, share) for name, share in (("test", test_share), ("val", val_share))
              if share > 0 and name not in present]
    if "train" not in present or not wanted:
        return split
    train_rows = in_source & (split == "train")
    # Units with members elsewhere stay in train: moving part of a group would split it.
    outside = np.unique(units[~train_rows])
    rows = np.flatnonzero(train_rows & ~np.isin(units, outside))
    split = split.copy()
    split[rows] = _stratified_assign(labels[rows], units[rows], wanted, seed, tiny)
    warnings.warn(
        f"assign_splits: source {source!r} has official splits without "
        f"{' or '.join(n for n, _ in wanted)}; carved out of its train rows (stratified)",
        stacklevel=3)
    progress.terminal(carved_line(source, split[rows], [n for n, _ in wanted]))
    return split


def carved_line(source: str, carved: np.ndarray, missing: list[str]) -> str:
    """What the terminal of `./run_all.sh` says of a split the data lacks (a FER-2013 CSV
    without PrivateTest rows has no test split): the faces taken for it from its train split."""
    taken = ", ".join(
        f"{name} {counted(int((carved == name).sum()), 'face')}" for name in reversed(missing)
    )
    return (
        f"{source}: the data has no {' or '.join(reversed(missing))} split of its own; "
        f"carved out of its train split, stratified: {taken}"
    )


def _stratified_assign(labels: np.ndarray, units: np.ndarray, shares: list[tuple[str, float]],
                       seed: int, tiny: dict[int, int]) -> np.ndarray:
    """Split rows into train plus each named share, stratified, whole units at a time."""
    codes, inverse = np.unique(units, return_inverse=True)
    unit_labels = _majority_label(labels, inverse, len(codes))
    result = np.full(len(codes), "train", dtype=object)
    pool = np.arange(len(codes))
    for step, (name, share) in enumerate(shares):
        if share <= 0:
            continue
        n_pick = int(round(share * len(codes)))
        picked = _pick(pool, unit_labels, n_pick, seed + step, tiny)
        result[picked] = name
        pool = np.setdiff1d(pool, picked)
    return result[inverse]


def _majority_label(labels: np.ndarray, inverse: np.ndarray, n_units: int) -> np.ndarray:
    """The most common class of each unit (ties: smallest index), to stratify units by."""
    frame = pd.DataFrame({"unit": inverse, "label": labels})
    counts = frame.groupby(["unit", "label"]).size().reset_index(name="n")
    counts = counts.sort_values(["unit", "n", "label"], ascending=[True, False, True])
    first = counts.drop_duplicates("unit").set_index("unit")["label"]
    return first.reindex(range(n_units)).to_numpy(np.int64)


def _pick(pool: np.ndarray, labels: np.ndarray, n_pick: int, seed: int,
          tiny: dict[int, int]) -> np.ndarray:
    """Draw n_pick units from the pool, stratified; tiny classes are never drawn."""
    pool_labels = labels[pool]
    classes, counts = np.unique(pool_labels, return_counts=True)
    small = classes[counts < _MIN_TO_STRATIFY]
    for c in small:
        tiny[int(c)] = max(tiny.get(int(c), 0), int(counts[classes == c][0]))
    candidates = pool[~np.isin(pool_labels, small)]
    n_pick = min(n_pick, len(candidates) - 1)
    if n_pick <= 0:
        return np.empty(0, dtype=np.int64)
    try:
        _, picked = train_test_split(candidates, test_size=n_pick, random_state=seed,
                                     stratify=labels[candidates])
    except ValueError as exc:
        warnings.warn(f"assign_splits: could not stratify ({exc}); used a plain seeded shuffle",
                      stacklevel=4)
        _, picked = train_test_split(candidates, test_size=n_pick, random_state=seed)
    return np.sort(picked)


def _keys(df: pd.DataFrame, column: str, by_source: bool) -> list:
    """Row keys: (source, id) when sources are known, since ids are unique only per source."""
    ids = df[column].astype(str)
    if by_source:
        return list(zip(df["source"].astype(str), ids))
    return list(ids)


def _class_name(code: object) -> str:
    """Expression name for a class index, or the raw value when out of range."""
    try:
        i = int(code)
    except (TypeError, ValueError):
        return str(code)
    return EXPRESSIONS[i] if 0 <= i < len(EXPRESSIONS) else str(code)
