"""Source readers: each turns one data format into the records table, and says what it dropped.

A reader is registered with a cheap `detect(path) -> bool` and a `read(path, **options) ->
ReadResult`; `read_source` picks the first reader whose detect accepts the path.
A new format: add a module here and a register_reader call at the bottom of this file.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
import os
import zipfile
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from helpers.core import paths, progress
from helpers.core.errors import ConfigError, DataError
from helpers.core.faces import MARGIN_RANGE
from helpers.core.labels import EXPRESSIONS
from helpers.core.records import validate_records

log = logging.getLogger(__name__)
MAX_EXAMPLES = 5
PRINTED_EXAMPLES = 2  # examples per reason in a printed result or the terminal
ERROR_EXAMPLES = 3  # examples per reason in the error of a source that yielded nothing
# Options read_source takes for every reader: passed on where the reader uses them.
COMMON_OPTIONS = ("face_margin", "cache_dir")


@dataclass
class ReadResult:
    """A reader's records plus an account of every member it dropped or blanked, and why."""

    records: pd.DataFrame
    reader: str
    source: str
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> records/files left out
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few members
    nulled: dict[str, int] = field(default_factory=dict)  # reason -> values set to NaN/None
    repaired: dict[str, int] = field(default_factory=dict)  # reason -> records kept, mended
    notes: list[str] = field(default_factory=list)  # what the reader did that users should know
    flagged: dict[str, int] = field(default_factory=dict)  # reason -> records kept, worth a look

    def summary(self) -> pd.DataFrame:
        """One row per reason, most frequent first, for display in notebooks."""
        rows = [
            {
                "reason": reason,
                "outcome": outcome,
                "count": count,
                "examples": ", ".join(self.examples.get(reason, [])),
            }
            for outcome, tally in (
                ("dropped", self.dropped),
                ("nulled", self.nulled),
                ("repaired", self.repaired),
                ("kept", self.flagged),
            )
            for reason, count in tally.items()
        ]
        table = pd.DataFrame(rows, columns=["reason", "outcome", "count", "examples"])
        return table.sort_values(["count", "reason"], ascending=[False, True], ignore_index=True)

    def class_counts(self) -> pd.Series:
        """Records per expression class in the shared order, 0 for a class the source lacks."""
        labels = pd.to_numeric(self.records.get("expression"), errors="coerce")
        counts = labels.value_counts().reindex(range(len(EXPRESSIONS)), fill_value=0)
        return pd.Series(counts.to_numpy(), index=list(EXPRESSIONS), name="records")

    def __str__(self) -> str:
        """What a notebook prints after reading: what was kept, per class, and what was not."""
        kept = f"{self.reader}: {len(self.records):,} records from {self.source}"
        counts = self.class_counts()
        per_class = "  per class: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)
        absent = [k for k, v in counts.items() if not v]
        lines = [kept, per_class] + ([f"  absent: {', '.join(absent)}"] if absent else [])
        notes = [f"  note: {note}" for note in self.notes]
        return "\n".join([*lines, *(f"  {problem}" for problem in self.problems()), *notes])

    def problems(self) -> list[str]:
        """Each reason with its outcome, count and an example or two: what to look at first."""
        return [
            f"{r.outcome} {reason_text(r.count, r.reason, self.examples.get(r.reason, []))}"
            for r in self.summary().itertuples()
            if r.outcome != "kept"  # a note of the reader's says what these are
        ]

    def terminal_lines(self) -> list[str]:
        """One to three lines on what was read, for a terminal that shows no notebook: records
        per split and per class, absent classes, what was left out and why, and the reader's
        notes (such as the class-folder names it accepts, or the usage_splits= option)."""
        counts = self.class_counts()
        per_split = self.records["split"].fillna("no split").value_counts()
        if per_split.index.tolist() == ["no split"]:
            splits = "no split given: notebook 03 draws one"
        else:
            order = ["train", "val", "test", "no split"]
            splits = ", ".join(f"{k} {per_split[k]:,}" for k in order if k in per_split)
        first = (
            f"{self.reader}: {len(self.records):,} records from {Path(self.source).name} "
            f"({splits}); per class: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)
        )
        absent = [k for k, v in counts.items() if not v]
        if absent:
            first += f"; absent: {', '.join(absent)}"
        problems = self.problems()
        notes = ["note: " + "; ".join(self.notes)] if self.notes else []
        return [first] + (["; ".join(problems)] if problems else []) + notes


def reason_text(count: int, reason: str, examples: list[str], shown: int = PRINTED_EXAMPLES) -> str:
    """'40 x unknown class folder, e.g. Freude/, suprise/': a reason with members to look at."""
    listed = ", ".join(examples[:shown])
    return f"{count:,} x {reason}" + (f", e.g. {listed}" if listed else "")


def dropped_text(dropped: dict[str, int], examples: dict[str, list[str]]) -> str:
    """Every drop reason, most frequent first, with examples: what the error of a source that
    yielded nothing says, so the user sees which files, labels or values failed."""
    ranked = sorted(dropped.items(), key=lambda kv: -kv[1])
    return "; ".join(
        reason_text(n, reason, examples.get(reason, []), ERROR_EXAMPLES) for reason, n in ranked
    )


def announce(result: ReadResult) -> None:
    """ReadResult.terminal_lines in the terminal of `./run_all.sh` (nothing elsewhere)."""
    for text in result.terminal_lines():
        progress.terminal(text)


class Tally:
    """Counts problems by reason while a reader runs, keeping a few examples of each."""

    def __init__(self) -> None:
        self.dropped: dict[str, int] = {}
        self.nulled: dict[str, int] = {}
        self.repaired: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.flagged: dict[str, int] = {}

    def _note(self, counts: dict[str, int], reason: str, example: str | None) -> None:
        """Count one occurrence and keep the example if there is room."""
        counts[reason] = counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if example is not None and len(shown) < MAX_EXAMPLES:
            shown.append(example)

    def drop(self, reason: str, example: str | None = None) -> None:
        """A record or file left out."""
        self._note(self.dropped, reason, example)

    def null(self, reason: str, example: str | None = None) -> None:
        """A value blanked (NaN/None) while its record is kept."""
        self._note(self.nulled, reason, example)

    def repair(self, reason: str, example: str | None = None) -> None:
        """A record kept after mending (e.g. no face found: the centre of the image used)."""
        self._note(self.repaired, reason, example)

    def flag(self, reason: str, member: str) -> None:
        """A record kept as it is but worth a look (a whole photo among face crops): every one
        is listed, so ingest_report.csv names them all."""
        self.flagged[reason] = self.flagged.get(reason, 0) + 1
        self.examples.setdefault(reason, []).append(member)

    def note(self, text: str) -> None:
        """Something about the whole source worth saying (e.g. columns left unused)."""
        if text not in self.notes:
            self.notes.append(text)

    def result(self, records: pd.DataFrame, reader: str, source: str | os.PathLike) -> ReadResult:
        """Package the records with this tally."""
        return ReadResult(
            records,
            reader,
            str(source),
            dict(self.dropped),
            {k: list(v) for k, v in self.examples.items()},
            dict(self.nulled),
            dict(self.repaired),
            list(self.notes),
            dict(self.flagged),
        )


def check_number(
    name: str,
    value: object,
    reader: str,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """A reader's numeric option as a float, or a ConfigError naming it, before any reading."""
    number = math.nan  # not a number at all ('0.3', None, True): refused below like NaN
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    within = (low is None or number >= low) and (high is None or number <= high)
    if not (math.isfinite(number) and within):
        bounds = f" in [{low:g}, {high:g}]" if low is not None and high is not None else ""
        raise ConfigError(
            f"{name} must be a finite number{bounds} for the {reader!r} reader, got {value!r}"
        )
    return number


def check_workers(workers: object, reader: str) -> None:
    """workers is None (automatic) or a whole number >= 1; a ConfigError otherwise."""
    if workers is None:
        return
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ConfigError(
            f"workers must be a whole number >= 1 (or None) for the {reader!r} reader, "
            f"got {workers!r}"
        )


@dataclass(frozen=True)
class Reader:
    """One registered source format."""

    name: str
    detect: Callable[[Path], bool]
    read: Callable[..., ReadResult]
    description: str
    crops_faces: bool = False  # whole frames: read() takes the crop `margin`
    dataset: str | None = None  # the data set, where the format is one data set's own
    reference: str | None = None  # its paper, for a methods section (helpers.reporting)
    test_split: str | None = None  # the data set's name for the faces of its own test split


READERS: dict[str, Reader] = {}


def register_reader(
    name: str,
    detect: Callable[[Path], bool],
    read: Callable[..., ReadResult],
    description: str,
    crops_faces: bool = False,
    dataset: str | None = None,
    reference: str | None = None,
    test_split: str | None = None,
) -> None:
    """Make a format available to detect_source/read_source; first registered, first tried."""
    if name in READERS:
        raise ConfigError(f"a reader named {name!r} is already registered")
    READERS[name] = Reader(
        name, detect, read, description, crops_faces, dataset, reference, test_split
    )


def _formats() -> str:
    """The supported formats, one per line, for error messages."""
    return "\n".join(f"  - {r.name}: {r.description}" for r in READERS.values())


def _detects(reader: Reader, path: Path) -> bool:
    """A detect that crashes means 'not this format': one buggy reader must not block others."""
    try:
        return bool(reader.detect(path))
    except Exception:
        log.debug("detect of reader %s failed on %s", reader.name, path, exc_info=True)
        return False


class UnrecognisedSource(DataError):
    """A source that exists and opens but that no reader recognises (detect_source)."""


def check_reader(name: str) -> str:
    """A registered reader's name, or a ConfigError listing the formats."""
    if name not in READERS:
        raise ConfigError(f"unknown reader {name!r}. Supported formats:\n{_formats()}")
    return name


def check_exists(path: str | os.PathLike) -> Path:
    """A source path that exists, or a DataError saying where a relative one was looked for:
    notebook 01 checks it before it makes a run folder. `~` is expanded, as the readers do."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"data must be a file or folder path, got {type(path).__name__}")
    if not Path(path).expanduser().exists():
        raise DataError(path, paths.not_found(path))
    return Path(path).expanduser()


def detect_source(path: str | os.PathLike) -> str:
    """Name of the first reader that recognises the source; UnrecognisedSource, a DataError
    listing the formats, if none does (or saying in one line what the path holds, where it is
    plainly no dataset: a tar archive, an empty folder, one photo, a folder of zips); `~` is
    expanded."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(path, paths.not_found(path))
    for reader in READERS.values():
        if _detects(reader, path):
            return reader.name
    if problem := _not_a_dataset.not_a_dataset(path):  # what was given, not 10 formats
        raise UnrecognisedSource(
            path,
            f"{problem}. The readers take a folder or a .zip of class folders (<class>/*.jpg), "
            f"a CSV, or another layout of README's 'Your own data' ({', '.join(READERS)})",
        )
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        from helpers.core.archive import open_zip

        open_zip(path).close()  # a broken or hostile zip says so here, more useful than "unknown"
        _refuse_zip_in_zip(path)
    if unlabelled := _affectnet.unlabelled_layout(path):  # not "folders named images/"
        raise UnrecognisedSource(path, unlabelled)
    hint = _folders.unmapped_class_folders(path)
    said = f": {hint}" if hint else ""
    raise UnrecognisedSource(
        path, f"no reader recognises this source{said}. Supported formats:\n{_formats()}"
    )


def _refuse_zip_in_zip(path: Path) -> None:
    """A zip holding zips and no images is a data set zipped twice: say to unzip it, rather
    than that no reader knows it."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    parts = [tuple(n.replace("\\", "/").split("/")) for n in names]
    inner = [
        "/".join(p) for p in parts if not _folders.is_junk(p) and p[-1].lower().endswith(".zip")
    ]
    if inner and not _folders.image_folders(path):
        listed = ", ".join(inner[:3]) + (f" and {len(inner) - 3} more" if len(inner) > 3 else "")
        which = "it" if len(inner) == 1 else "one of them"
        raise DataError(
            path,
            f"holds another zip ({listed}): unzip it, and pass {which} (no reader looks inside "
            "a zip within a zip)",
        )


def reader_options(reader: Reader) -> list[str]:
    """The options a reader's read() takes, by name (the source path excluded)."""
    params = list(inspect.signature(reader.read).parameters.values())[1:]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds]


def _option_names(reader: Reader) -> list[str]:
    """The options a caller may pass through read_source's **options to this reader."""
    return [name for name in reader_options(reader) if name not in ("reader", "cache_dir")]


def _check_options(reader: Reader, options: dict) -> None:
    """Every option is one the reader takes: a ConfigError naming it and those it accepts."""
    accepted = _option_names(reader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "none"
        raise ConfigError(
            f"the {reader.name!r} reader takes no option {', '.join(map(repr, unknown))}; "
            f"it accepts: {takes} (and read_source's {', '.join(COMMON_OPTIONS)})"
        )


def check_reader_options(options: object, reader: str | None = None) -> dict[str, Any]:
    """Notebook 01's `reader_options` (`./run_all.sh --set 'reader_options={...}'`): a dict of
    options some reader takes (the named reader's, where `reader` names one), checked before a
    run folder is made; the values themselves are checked by the reader that reads."""
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ConfigError(
            "reader_options must be a dict of a reader's options by name, e.g. "
            f"{{'usage_splits': 'coursework'}}, got {options!r}"
        )
    given = {k: v for k, v in options.items() if k not in COMMON_OPTIONS}
    if reader:
        _check_options(READERS[check_reader(reader)], given)
        return dict(options)
    known = sorted({name for r in READERS.values() for name in _option_names(r)})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(
            f"reader_options: no reader takes {', '.join(map(repr, unknown))}; the readers' "
            f"options are {', '.join(known)} (and {', '.join(COMMON_OPTIONS)})"
        )
    return dict(options)


def _choose(path: str | os.PathLike, options: dict) -> tuple[str, str]:
    """The reader detected for the source or, when none is, the one reader that takes every
    option given (columns= is the face-box CSV reader's alone); with how it was chosen. A
    source missing, or a zip that is broken or holds zips, is said as such, not passed on."""
    try:
        return detect_source(path), "detected"
    except UnrecognisedSource:
        takers = [r.name for r in READERS.values() if set(options) <= set(_option_names(r))]
        if not options or len(takers) != 1:
            raise
        return takers[0], f"the only reader taking {', '.join(f'{o}=' for o in options)}"


def read_source(
    path: str | os.PathLike,
    reader: str | None = None,
    face_margin: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    **options,
) -> ReadResult:
    """Read any supported source into records, with the reader named or detected.

    face_margin: for sources of whole frames (JAFFE, CK+), the crop margin around each face
    (a model's training framing, so its test faces look like its training faces), a number in
    [0, 2]; other readers take their images as they are and ignore it.
    cache_dir: where readers that write derived images (crops, decoded faces) keep them;
    readers that write none ignore it. Any other option must be one the chosen reader takes
    (a ConfigError lists them); where no reader recognises the source, options only one reader
    takes choose it (columns=: the face-box CSV reader)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(
            f"read_source: path must be a file or folder path (str or Path), got {type(path).__name__}"
        )
    path = Path(path).expanduser()  # '~/data/x.zip' as a shell would read it
    if reader is None:
        reader, how = _choose(path, options)
    else:
        reader, how = check_reader(reader), "requested"
    chosen = READERS[reader]
    _check_options(chosen, options)
    if face_margin is not None:
        face_margin = check_number("face_margin", face_margin, chosen.name, *MARGIN_RANGE)
    if cache_dir is not None and "cache_dir" in reader_options(chosen):
        options = {"cache_dir": cache_dir, **options}
    message = f"Reading {path} with the {chosen.name!r} reader ({how}: {chosen.description})"
    if chosen.crops_faces and face_margin is not None:
        options = {"margin": face_margin, **options}
        message += f"; faces cropped with margin {face_margin:g} of the face box"
    log.info(message)
    print(message)
    result = chosen.read(Path(path), **options)
    if chosen.name == "folders" and (note := _fer2013.fer_layout_note(path)):
        result.notes.append(note)  # FER-2013's layout with other names: why not read as it
    validate_records(result.records, str(path))
    return result


# Registration lives here so that importing helpers.data.datasets is enough to get every reader.
from helpers.data.datasets import affectnet as _affectnet  # noqa: E402

register_reader(
    "affectnet",
    _affectnet.looks_like_affectnet,
    _affectnet.read_affectnet_zip,
    "AffectNet-layout zip: .../images/{id}.jpg and .../annotations/{id}_{exp,val,aro,lnd}.npy",
)

from helpers.data.datasets import affectnet_release as _affectnet_release  # noqa: E402

register_reader(
    "affectnet_release",
    _affectnet_release.looks_like_affectnet_release,
    _affectnet_release.read_affectnet_release,
    "AffectNet as released (a folder): Manually_Annotated_file_lists/{training,validation}.csv "
    "and Manually_Annotated_Images/; each face cropped by its box, with valence, arousal and "
    "landmarks",
    crops_faces=True,
    dataset="AffectNet",
    reference="mollahosseini2019affectnet",
)

# More sources. Order matters: the FER-2013 folder layout before the generic
# class-folder tree, which comes last because almost any labelled image tree matches it.
from helpers.data.datasets import ckplus as _ckplus  # noqa: E402
from helpers.data.datasets import csv_boxes as _csv_boxes  # noqa: E402
from helpers.data.datasets import expw as _expw  # noqa: E402
from helpers.data.datasets import fer2013 as _fer2013  # noqa: E402
from helpers.data.datasets import folders as _folders  # noqa: E402
from helpers.data.datasets import jaffe as _jaffe  # noqa: E402
from helpers.data.datasets import not_a_dataset as _not_a_dataset  # noqa: E402
from helpers.data.datasets import rafdb as _rafdb  # noqa: E402

register_reader(
    "fer2013",
    _fer2013.looks_like_fer_folders,
    _fer2013.read_fer_folders,
    "FER-2013 image folders (zip or folder): train/<class>/*.jpg|png and "
    "test/<class>/*, class folders named angry, disgust, fear, happy, neutral, "
    "sad, surprise",
    dataset="FER-2013",
    reference="goodfellow2013challenges",
    test_split="PublicTest",  # the Kaggle release's test/ folder: PublicTest_*.jpg, 3,589 faces
)
register_reader(
    "fer2013_csv",
    _fer2013.looks_like_fer_csv,
    _fer2013.read_fer_csv,
    "FER-2013 CSV (fer2013.csv, or a zip or folder holding it): emotion, pixels "
    "(2304 integers) and optional Usage columns",
    dataset="FER-2013",
    reference="goodfellow2013challenges",
)
register_reader(
    "expw",
    _expw.looks_like_expw,
    _expw.read_expw,
    "ExpW: a folder with label.lst (image face_id top left right bottom "
    "confidence label) and image/origin/ (or image/, images/, origin/)",
    dataset="ExpW",
    reference="zhang2018expw",
)
register_reader(
    "jaffe",
    _jaffe.looks_like_jaffe,
    _jaffe.read_jaffe,
    "JAFFE (folder or zip): frames named like KA.AN1.39.tiff, the label in the name; "
    "each face found and cropped",
    crops_faces=True,
    dataset="JAFFE",
    reference="lyons1998coding",
)
register_reader(
    "ckplus",
    _ckplus.looks_like_ckplus,
    _ckplus.read_ckplus,
    "CK+ (folder or zip): cohn-kanade-images/ sequences and Emotion/*_emotion.txt; "
    "each labelled sequence's peak frame, the face found and cropped",
    crops_faces=True,
    dataset="CK+",
    reference="lucey2010extended",
)
register_reader(  # before csv_boxes: the redistribution's train_labels.csv is not a box CSV
    "rafdb",
    _rafdb.looks_like_rafdb,
    _rafdb.read_rafdb,
    "RAF-DB basic (folder or zip): EmoLabel/list_patition_label.txt and Image/aligned/, or "
    "train/ and test/ with class folders 1-7; the aligned faces, the official split kept",
    dataset="RAF-DB",
    reference="li2017reliable",
)
register_reader(
    "csv_boxes",
    _csv_boxes.looks_like_box_csv,
    _csv_boxes.read_box_csv,
    "CSV of face boxes: image, label (expression name) and optional x, y, w, h "
    "(or left, top, right, bottom; xmin, ymin, xmax, ymax; x1, y1, x2, y2), confidence, "
    "split columns",
)
register_reader(
    "folders",
    _folders.looks_like_class_folders,
    _folders.read_class_tree,
    "class-per-folder images (folder or zip): <expression name>/*.jpg, "
    "optionally under train/, val/, test/",
)
