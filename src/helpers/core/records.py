"""The one records table every source produces: schema, checks, and exact parquet storage.

Columns (canonical dtypes, as make_records/empty_records/load_records return them):
  id, image, source   pandas "str"; id unique; image is a path or a zip:// URI (helpers.core.images)
  expression          int64, 0-7 in AffectNet order (helpers.core.labels); never missing
  valence, arousal    float64 in [-1, 1]; NaN where the source has none
  landmarks           object: float32 (68, 2) ndarray in pixels of the stored image, or None
  split               pandas "str": "train" / "val" / "test", or missing (NaN; test with isna())
Extra columns are allowed and kept by save/load. The index is not stored.

A run's records.parquet is the table as notebook 01 read it, `split` the data's own; notebook 03
fills `split` with the split it drew (as splits.parquet) and keeps the data's own as
`source_split` (with_split), so a reader of records.parquet finds each record's split there and
03 run again still starts from the data's own (as_read).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.core.errors import DataError
from helpers.core.images import ZIP_SCHEME, parse_uri
from helpers.core.labels import N_EXPRESSIONS
from helpers.core.landmarks import N_POINTS

RECORD_COLUMNS: tuple[str, ...] = (
    "id",
    "image",
    "source",
    "expression",
    "valence",
    "arousal",
    "landmarks",
    "split",
)
RECORD_DTYPES: dict[str, str] = {
    "id": "str",
    "image": "str",
    "source": "str",
    "expression": "int64",
    "valence": "float64",
    "arousal": "float64",
    "landmarks": "object",
    "split": "str",
}
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "image", "source", "expression")
SPLITS: tuple[str, ...] = ("train", "val", "test")
LANDMARK_VALUES = N_POINTS * 2
_SHOWN = 5  # offending ids quoted per problem


def _absent(value: object) -> bool:
    """Absent is None, or the NaN pandas leaves in object columns after reindex/concat."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def _as_landmarks(value: object) -> object:
    """Normalise one landmarks cell to float32 (68, 2), accepting 136 flat values x0,y0,x1,...;
    a value that is not numbers comes back as it is, for validate_records to report."""
    if _absent(value):
        return None
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return value  # left for validate_records to report with the row's id
    return arr.reshape(N_POINTS, 2) if arr.size == LANDMARK_VALUES else arr


def make_records(
    data: pd.DataFrame | Mapping[str, Iterable] | Iterable[Mapping], where: str = "records table"
) -> pd.DataFrame:
    """Build a validated table with canonical dtypes from columns, rows or a DataFrame;
    valence/arousal/landmarks/split may be left out and are then filled as missing."""
    df = (
        data.copy()
        if isinstance(data, pd.DataFrame)
        else pd.DataFrame(data if isinstance(data, Mapping) else list(data))
    )
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(where, f"missing required columns: {', '.join(missing)}")
    fill = {"valence": np.nan, "arousal": np.nan, "landmarks": None, "split": None}
    for column, value in fill.items():
        if column not in df.columns:
            df[column] = pd.Series([value] * len(df), index=df.index, dtype=RECORD_DTYPES[column])
    df["landmarks"] = pd.Series(
        [_as_landmarks(v) for v in df["landmarks"]], index=df.index, dtype=object
    )
    df = df[list(RECORD_COLUMNS) + [c for c in df.columns if c not in RECORD_COLUMNS]]
    if df.empty:  # pandas guesses float/object for empty columns
        df = df.astype(RECORD_DTYPES)
    validate_records(df, where)
    return _canonical(df.reset_index(drop=True))


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Cast the schema columns to their canonical dtypes (values already validated)."""
    return df.astype({c: t for c, t in RECORD_DTYPES.items() if c != "landmarks"})


def empty_records() -> pd.DataFrame:
    """A zero-row table with the canonical columns and dtypes."""
    return make_records({c: [] for c in REQUIRED_COLUMNS})


def _ids(df: pd.DataFrame, mask: np.ndarray | pd.Series) -> str:
    """Quote a few offending ids so the user can find the rows."""
    bad = df.loc[np.asarray(mask, dtype=bool), "id"].astype(object).tolist()
    more = f", ... ({len(bad)} in all)" if len(bad) > _SHOWN else ""
    return ", ".join(map(repr, bad[:_SHOWN])) + more


def _check_text(df: pd.DataFrame, column: str, where: str) -> None:
    """Text columns hold non-empty strings only."""
    bad = ~df[column].map(lambda v: isinstance(v, str) and v != "").to_numpy(dtype=bool)
    if bad.any():
        raise DataError(
            where, f"column {column!r} must hold non-empty strings; bad rows: {_ids(df, bad)}"
        )


def _check_labels(df: pd.DataFrame, where: str) -> None:
    """Expression is a complete integer 0-7; valence/arousal lie in [-1, 1] or are NaN."""
    expr = df["expression"]
    if not pd.api.types.is_integer_dtype(expr) or pd.api.types.is_bool_dtype(expr):
        raise DataError(where, f"column 'expression' must be integer, got dtype {expr.dtype}")
    if expr.isna().any():
        raise DataError(where, f"expression missing in rows: {_ids(df, expr.isna())}")
    out = ~expr.between(0, N_EXPRESSIONS - 1)
    if out.any():
        raise DataError(where, f"expression outside 0-{N_EXPRESSIONS - 1} in rows: {_ids(df, out)}")
    for column in ("valence", "arousal"):
        values = df[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise DataError(where, f"column {column!r} must be float, got dtype {values.dtype}")
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        out = ~np.isnan(values) & ~(np.abs(values) <= 1.0)
        if out.any():
            raise DataError(
                where, f"{column} outside [-1, 1] (or infinite) in rows: {_ids(df, out)}"
            )


def _check_landmarks(df: pd.DataFrame, where: str) -> None:
    """Each landmarks cell is absent or a finite numeric (68, 2) array."""

    def bad(v: object) -> bool:
        if _absent(v):
            return False
        return not (
            isinstance(v, np.ndarray)
            and v.shape == (N_POINTS, 2)
            and np.issubdtype(v.dtype, np.number)
            and np.isfinite(v).all()
        )

    mask = df["landmarks"].map(bad).to_numpy(dtype=bool)
    if mask.any():
        raise DataError(
            where,
            f"landmarks must be None or a finite ({N_POINTS}, 2) array; bad rows: {_ids(df, mask)}",
        )


def validate_records(df: pd.DataFrame, where: str = "records table") -> None:
    """Raise DataError naming the problem and a few offending ids; silent when valid."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in RECORD_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(where, f"missing columns: {', '.join(missing)}")
    if df.columns.duplicated().any():
        raise DataError(where, "duplicate column names")
    for column in ("id", "image", "source"):
        _check_text(df, column, where)
    dup = df["id"].duplicated(keep=False)
    if dup.any():
        raise DataError(where, f"duplicate ids: {_ids(df, dup)}")
    _check_labels(df, where)
    _check_landmarks(df, where)
    split = df["split"]
    bad = ~(split.isna() | split.isin(SPLITS))
    if bad.any():
        raise DataError(
            where,
            f"split must be one of {SPLITS} or missing; bad rows: "
            f"{_ids(df, bad)} (values: {sorted(set(split[bad].map(repr)))})",
        )


def landmarks_to_arrow(column: pd.Series) -> pa.Array:
    """Landmarks as list<float32> (136 values a row), null where absent.

    Not a fixed_size_list: pyarrow 25 cannot read back a null row of one that pyarrow 26 wrote
    ("Expected all lists to be of size=136"), and a run folder must open on a machine with
    another pyarrow (Colab, a GPU box). load_records checks the 136 values on reading.
    """
    present = ~column.map(_absent).to_numpy(dtype=bool)
    values = (
        np.stack([np.asarray(v, np.float32).reshape(-1) for v in column[present]])
        if present.any()
        else np.zeros((0, LANDMARK_VALUES), np.float32)
    )
    offsets = np.concatenate([[0], np.cumsum(present * LANDMARK_VALUES)]).astype(np.int32)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values.reshape(-1)), mask=pa.array(~present)
    )


def landmarks_from_arrow(column: pa.ChunkedArray, where: str) -> list[np.ndarray | None]:
    """Inverse of landmarks_to_arrow: (68, 2) float32 arrays or None."""
    target = pa.list_(pa.float32(), LANDMARK_VALUES)
    try:
        arr = (
            column.cast(target).combine_chunks()
            if column.type != target
            else column.combine_chunks()
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            where, f"column 'landmarks' is not {LANDMARK_VALUES} floats per row ({exc})"
        ) from exc
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    values = np.array(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    points = values.reshape(-1, N_POINTS, 2)
    out: list[np.ndarray | None] = [None] * len(arr)
    for row, k in zip(np.flatnonzero(valid), range(len(points)), strict=False):
        out[row] = points[k]
    return out


# Schema metadata of a table whose image paths inside its own folder are stored relative to it.
_RELATIVE_KEY = b"helpers.records.images_relative_to_folder"


def _inside(folder: Path) -> tuple[str, ...]:
    """Prefixes of paths inside a folder, as written (absolute) and with links resolved."""
    return tuple(
        dict.fromkeys(os.path.join(str(f), "") for f in (folder.absolute(), folder.resolve()))
    )


def relative_images(images: pd.Series, folder: Path) -> pd.Series:
    """Plain image paths inside `folder` made relative to it (POSIX separators), so a run
    folder still works after it is moved, copied to Drive or zipped; others stay as given."""
    prefixes = _inside(folder)

    def relative(value: object) -> object:
        if not isinstance(value, str):
            return value
        inside = (Path(value[len(p) :]).as_posix() for p in prefixes if value.startswith(p))
        return next(inside, value)

    return images.map(relative)


def absolute_images(images: pd.Series, folder: Path) -> pd.Series:
    """Inverse of relative_images: relative plain paths joined to the table's folder."""
    root = folder.absolute()

    def absolute(value: object) -> object:
        if not isinstance(value, str) or not value or value.startswith(ZIP_SCHEME):
            return value
        return value if os.path.isabs(value) else str(root / value)

    return images.map(absolute)


def save_records(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a validated table to parquet; load_records gives back an equal table (images in
    the table's own folder are stored relative to it, see relative_images)."""
    path = Path(path)
    validate_records(df, str(path))
    stored = df.drop(columns=["landmarks"]).assign(image=relative_images(df["image"], path.parent))
    # attrs are in-memory notes (e.g. eda's table of unreadable images), not records: pandas
    # would try to put them in the file's metadata and warn for any it cannot serialise.
    stored.attrs = {}
    table = pa.Table.from_pandas(stored, preserve_index=False)
    position = list(df.columns).index("landmarks")
    table = table.add_column(position, "landmarks", landmarks_to_arrow(df["landmarks"]))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _RELATIVE_KEY: b"1"})
    write_parquet(table, path, "records table")


def write_parquet(table: pa.Table, path: str | os.PathLike, what: str) -> None:
    """Written beside the target and renamed: a full disk or a kill never leaves half a file,
    and an earlier file at the same path survives a failed write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(path, f"cannot write the {what} ({exc.strerror or exc})") from exc


def read_parquet(path: str | os.PathLike, what: str) -> pa.Table:
    """A parquet table, or a DataError naming the file (missing, or not parquet)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} file not found")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable parquet file ({exc})") from exc


def load_records(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by save_records, restoring (68, 2) landmark arrays and dtypes."""
    path = Path(path)
    table = read_parquet(path, "records")
    if "landmarks" not in table.column_names:
        raise DataError(path, "missing columns: landmarks")
    position = table.column_names.index("landmarks")
    landmarks = landmarks_from_arrow(table.column("landmarks"), str(path))
    df = table.drop_columns(["landmarks"]).to_pandas()
    df.insert(position, "landmarks", pd.Series(landmarks, dtype=object))
    if (table.schema.metadata or {}).get(_RELATIVE_KEY) and "image" in df:
        df["image"] = absolute_images(df["image"], path.parent)
    validate_records(df, str(path))
    return _canonical(df)


# records.parquet's copy of the split the data came with, once notebook 03 has filled `split`.
SOURCE_SPLIT = "source_split"


def as_read(df: pd.DataFrame) -> pd.DataFrame:
    """The records as notebook 01 read them: `split` the data's own (its `source_split` copy
    where notebook 03 has filled `split` in records.parquet), so a split is never taken for
    one the data came with."""
    if SOURCE_SPLIT not in df.columns:
        return df
    return df.assign(split=df[SOURCE_SPLIT].astype("str")).drop(columns=SOURCE_SPLIT)


def with_split(records: pd.DataFrame, split_table: pd.DataFrame) -> pd.DataFrame:
    """records.parquet as notebook 03 leaves it: each record's `split` as split_table (its
    splits.parquet) gives it, none for a record it left out (unreadable), and the data's own
    split kept as `source_split`; every other column as 01 read it."""
    read = as_read(records)
    made = split_table.drop_duplicates("id").set_index("id")["split"]
    return read.assign(
        split=read["id"].map(made).astype("str"), **{SOURCE_SPLIT: read["split"].astype("str")}
    )


def preview(df: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The first rows as a reader wants them: each image by its name in the source (not this
    machine's path to it), landmarks as a point count, and the columns no row fills left out
    (`split` before notebook 03 assigns it)."""
    head = df.head(n).copy()
    if "image" in head:
        head["image"] = [
            member if archive else Path(member).name
            for archive, member in map(parse_uri, head["image"].astype(str))
        ]
    if "landmarks" in head:
        head["landmarks"] = [
            "" if _absent(v) else f"{np.asarray(v).size // 2} points" for v in head["landmarks"]
        ]
    return head[[c for c in head.columns if df[c].notna().any()]]


def landmarks_array(df: pd.DataFrame) -> np.ndarray:
    """All landmarks as one (N, 68, 2) float32 array, NaN rows where absent (for masking)."""
    out = np.full((len(df), N_POINTS, 2), np.nan, dtype=np.float32)
    for i, value in enumerate(df["landmarks"]):
        if not _absent(value):
            out[i] = np.asarray(value, dtype=np.float32).reshape(N_POINTS, 2)
    return out
