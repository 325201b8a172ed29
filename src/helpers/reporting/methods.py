"""A run's methods section, written from what the run recorded: the manifest, the records and
their splits, augment.json, each model card and metrics JSON.

A paragraph for each step a reader needs to judge or repeat the work (data, splits,
augmentation, each model and its training, evaluation, results, software), every technique cited
where the run used it, with the BibTeX of those works; and a list of what the run cannot know
(whose faces an AffectNet-layout zip holds), for the author to check. Written rather than typed,
so the methods a report states are the ones that ran, to the number.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from helpers.core import paths
from helpers.core.argv import without_options
from helpers.core.errors import DataError
from helpers.core.jsonio import read_json, write_text
from helpers.core.labels import EXPRESSIONS
from helpers.core.records import as_read, load_records
from helpers.core.run_folder import RunFolder, recorded_code, recorded_data, series_members
from helpers.core.words import counted
from helpers.data import eda
from helpers.data.augment import AugmentSettings, describe_pipeline
from helpers.data.datasets import READERS
from helpers.data.splits import stratifiable
from helpers.evaluation import freshness, health, paired
from helpers.evaluation.comparison import MetricsFile
from helpers.evaluation.corruptions import LEVELS as CORRUPTION_LEVELS
from helpers.inference.calibration import TEMPERATURE_RANGE, range_edge
from helpers.inference.tta import CROP_SHARE
from helpers.models import registry
from helpers.models.losses import DEFAULT_LOSS_WEIGHTS
from helpers.models.weights import left_layers
from helpers.reporting import latex, notation, references
from helpers.reporting.references import Citations

SPLIT_ORDER = ("train", "val", "test")
OPTIMIZERS = {
    "adam": ("Adam", "kingma2015adam"),
    "adamw": ("AdamW", "loshchilov2019decoupled"),
    "sgd": ("SGD with Nesterov momentum 0.9", "sutskever2013importance"),
    "rmsprop": ("RMSprop", None),
}
HEAD_LOSSES = {
    "mse": "mean squared error",
    "ccc": f"1 {notation.MINUS} CCC",
    "l1": "mean absolute error",
    "wing": "the wing loss",
}
TTA_WORDS = {"none": "one view", "flip": "flip", "tencrop": "ten-crop"}


@dataclass(frozen=True)
class Methods:
    """The section (its citations as markers), the BibTeX of what it cites, and what the
    author must check; rendered as Markdown (`text`, `markdown`) or LaTeX (`latex`)."""

    source: str
    bibtex: str
    cited: tuple[str, ...]
    checks: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The paragraphs in Markdown, citations as (Author et al., 2016)."""
        return references.markdown(self.source)

    def markdown(self, table: str = "") -> str:
        """The section as methods.md holds it: the text, the checks, then the works it cites;
        `table` (the report's results table) goes after the text, so the references close it."""
        works = "\n\n" + references.reference_list(self.cited) if self.cited else "\n"
        text = self.text + (f"\n\n{table.strip()}" if table.strip() else "")
        if not self.checks:
            return text + works
        listed = "\n".join(f"- {check}" for check in self.checks)
        return f"{text}\n\n### Before you use this text\n\n{listed}" + works

    def latex(self) -> str:
        """The section as methods.tex holds it: paragraphs with natbib's \\citep, the checks
        as comments above them, for `\\input{methods}` beside `\\bibliography{references}`."""
        header = [
            "% The methods section of this run, written from its files by helpers.reporting.",
            "% Needs \\usepackage{natbib}, \\usepackage{url} (for the DOIs in references.bib)"
            " and \\bibliography{references}.",
        ]
        header += [f"% CHECK: {latex_comment(check)}" for check in self.checks]
        body = "\n\n".join(latex_paragraph(p) for p in self.source.split("\n\n"))
        body = f"{LATEX_STRETCH}\n{body}\n\\par\\endgroup"  # the stretch for these paragraphs only
        return "\n".join(header) + "\n\n" + body + "\n"

    def write(self, run_dir: str | os.PathLike) -> tuple[Path, Path, Path]:
        """<run>/methods.md, methods.tex and references.bib, each written whole or not at all."""
        run = RunFolder(run_dir)
        return (
            write_text(run.methods, self.markdown()),
            write_text(run.methods_tex, self.latex()),
            write_text(run.references, self.bibtex),
        )

    def note(self) -> str:
        """One line for the terminal: where the section is, and whether anything awaits a check."""
        checks = len(self.checks)
        return (
            f"methods section in methods.md and methods.tex, {len(self.cited)} works in "
            "references.bib"
            + (f"; {checks} thing{'s' if checks > 1 else ''} to check under it" if checks else "")
        )

    def headings(self) -> list[str]:
        """The paragraphs' bold lead words, in order: Data, Splits, ..., one per model."""
        return re.findall(r"^\*\*(.+?)\.?\*\*", self.source, flags=re.MULTILINE)


# A line with a long file name, hash or command in it may stretch its spaces rather than run
# into the margin (TeX's third pass; a primitive, so no package).
LATEX_STRETCH = r"\begingroup\emergencystretch=2em\relax"
_PIECES = re.compile(f"({references.MARKER}|`[^`]+`|\\*\\*[^*]+\\*\\*)")


def latex_prose(text: str) -> str:
    """Prose for LaTeX: the tables' escaping (latex.SPECIAL), and ±, ×, −, →, 10⁻⁶ as math."""
    out = []
    for index, piece in enumerate(notation.POWER.split(text)):
        if index % 2:  # the exponent of a power of ten
            out.append(notation.latex_power(piece))
        else:
            out.append(
                "".join(latex.SPECIAL.get(c, notation.LATEX_SYMBOLS.get(c, c)) for c in piece)
            )
    return "".join(out)


def latex_comment(text: str) -> str:
    """One line of text safe inside a LaTeX comment."""
    return " ".join(text.split())


# In \texttt: `--` would print as an en dash under T1 encoding, and \textless has no
# typewriter glyph under OT1; a long name may break after each separator, a hash (a commit, a
# sha256: 12 or more hex digits) every 8 characters; other words are left whole to TeX.
_CODE_WORDS = {"--": "-{}-", r"\textless{}": r"{\char60}", r"\textgreater{}": r"{\char62}"}
_CODE_SEPARATOR = re.compile(r"(\\_|(?<=\w)\.|/)(?=[^\s{}])")
_CODE_HASH = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,}(?![0-9A-Za-z])")
_HASH_PIECE = re.compile(r"([0-9a-f]{8})(?=[0-9a-f]{4})")
_NUMBER = r"(?:\$-\$)?\d(?:[\d.,]*\d)?"
_RANGE = re.compile(rf"({_NUMBER})--({_NUMBER})")


def latex_code(text: str) -> str:
    """Code or a file name as \\texttt that prints the same under any font encoding and can
    break after an underscore, a dot or a slash, and every 8 characters of a hex hash."""
    code = latex_prose(text)
    for word, replacement in _CODE_WORDS.items():
        code = code.replace(word, replacement)
    code = _CODE_SEPARATOR.sub(lambda found: found.group(1) + r"\allowbreak{}", code)
    code = _CODE_HASH.sub(
        lambda found: _HASH_PIECE.sub(lambda piece: piece.group(1) + r"\allowbreak{}", found[0]),
        code,
    )
    return r"\texttt{" + code + "}"


def latex_paragraph(paragraph: str) -> str:
    """A Markdown paragraph of the section in LaTeX: its bold lead as \\paragraph, `code` as
    \\texttt, citation markers as \\citep, a range kept on one line, everything else escaped."""
    out = []
    for index, piece in enumerate(_PIECES.split(paragraph)):
        if not piece:
            continue
        cited = references.CITE.fullmatch(piece)
        if cited:
            out.append("\\" + cited.group(1) + "{" + cited.group(2) + "}")
        elif piece.startswith("`") and piece.endswith("`"):
            out.append(latex_code(piece[1:-1]))
        elif piece.startswith("**") and piece.endswith("**"):
            command = r"\paragraph" if index == 1 and paragraph.startswith("**") else r"\textbf"
            out.append(command + "{" + latex_prose(piece[2:-2]) + "}")
        else:
            out.append(_RANGE.sub(lambda r: r"\mbox{" + r[0] + "}", latex_prose(piece)))
    return "".join(out)


@dataclass
class _Run:
    """What the writer reads from a run folder, each piece None where the run lacks it."""

    run: RunFolder
    manifest: dict[str, Any]
    data: dict[str, Any]  # the manifest's data, else notebook 01's record in settings.json
    records: pd.DataFrame | None
    splits: pd.DataFrame | None
    augment: AugmentSettings | None
    cards: dict[str, dict[str, Any]]
    metrics: dict[str, MetricsFile]
    checks: list[str] = field(default_factory=list)
    said_scratch: dict[str, Any] | None = None  # the last from-scratch preparation described

    @property
    def models(self) -> list[str]:
        """Every model with a card or metrics, in the run's order where it recorded one."""
        named = [
            m for m in self.manifest.get("models") or [] if m in self.cards or m in self.metrics
        ]
        return named + sorted((set(self.cards) | set(self.metrics)) - set(named))


def methods(run_dir: str | os.PathLike) -> Methods:
    """The methods section of a run folder (notebook 06); a DataError for a folder that is not
    a run (no records table)."""
    facts = _read(RunFolder(run_dir))
    cite = Citations()
    paragraphs = [
        _data(facts, cite),
        _splits(facts, cite),
        _augmentation(facts, cite),
        *(_model(facts, name, cite) for name in facts.models if name in facts.cards),
        _evaluation(facts, cite),
        _results(facts),
        _software(facts, cite),
    ]
    for name in facts.models:
        if name not in facts.metrics:
            facts.checks.append(
                f"{name} was trained but not evaluated (notebook 05): its results "
                "are missing from the text."
            )
    source = "\n\n".join(p for p in paragraphs if p)
    keys = references.cited(source)  # what the text cites, as worded
    return Methods(source, references.bibtex(keys), keys, tuple(facts.checks))


# ---------------------------------------------------------------------------------- reading


def _read(run: RunFolder) -> _Run:
    """The run's files, read and checked once; missing stages leave their piece out."""
    table = run.splits if run.splits.is_file() else run.records
    if not table.is_file():
        raise DataError(run.root, "no records table (notebook 01): not a run folder")
    manifest = read_json(run.manifest) if run.manifest.is_file() else {}
    data = recorded_data(run)
    checks = []
    if not manifest:
        checks.append(
            "No manifest.json: the command was not recorded (the notebooks ran by hand): "
            "state it yourself."
            if data
            else "No manifest.json: the command and the data's file and fingerprint were not "
            "recorded (the notebooks ran by hand): state them yourself."
        )
    cards = {p.stem: read_json(p) for p in sorted((run.root / "models").glob("*.json"))}
    metrics = {}
    for path in run.metrics_files():
        scores = MetricsFile.read(path)
        metrics[scores.model] = scores
    return _Run(
        run=run,
        manifest=manifest,
        data=data,
        records=as_read(load_records(run.records)) if run.records.is_file() else None,
        splits=load_records(run.splits) if run.splits.is_file() else None,
        augment=AugmentSettings.read(run.augment_settings)
        if run.augment_settings.is_file()
        else None,
        cards=cards,
        metrics=metrics,
        checks=checks,
    )


# ------------------------------------------------------------------------------- paragraphs


def _data(facts: _Run, cite: Citations) -> str:
    """Which faces, from which file, read how, with which labels; what was left out: by the
    reader, and by notebook 03 before the split (the faces the splits hold are fewer)."""
    table = facts.records if facts.records is not None else facts.splits
    assert table is not None  # _read refuses a run without one
    data = facts.data
    where = f"`{Path(data['path']).name}`" if data.get("path") else ""
    if where and data.get("sha256"):
        where += f" (SHA-256 `{data['sha256']}`)"
    sources = table["source"].astype(str).value_counts() if "source" in table else pd.Series()
    parts = []
    if data.get("demo"):
        parts.append(
            f"The faces are the project's synthetic demo set: {len(table):,} generated "
            f"images{f' read from {where}' if where else ''}, not photographs of people."
        )
        facts.checks.append(
            "The data is the synthetic demo set: its figures show that the "
            "pipeline works, not how a model does on real faces."
        )
    else:
        described = []
        for source, count in sources.items():
            reader = READERS.get(source)
            named = _profile_data_set(facts, str(source))
            if named is not None:
                name, key = named
                how = (
                    f"{count:,} faces of {name} {cite(key)}"
                    if key
                    else f"{count:,} faces of {name}"
                )
            elif reader is not None and reader.dataset:
                how = (
                    f"{count:,} faces of {reader.dataset} {cite(reader.reference)}"
                    if reader.reference
                    else f"{count:,} faces of {reader.dataset}"
                )
            else:
                how = f"{count:,} faces in the layout the `{source}` reader reads"
                facts.checks.append(
                    f"The `{source}` reader reads a layout, not one data set: name the data set "
                    f"behind {where or 'the run'} and cite it."
                )
            if reader is not None and reader.crops_faces:
                how += (
                    ", each face found in its frame by OpenCV's Haar cascade "
                    f"{cite('viola2001rapid')} and cropped"
                )
            described.append(how)
        parts.append(
            f"The data are {_join(described) or f'{len(table):,} faces'}"
            + (f", read from {where}." if where else ".")
        )
    dropped = _dropped(facts.run)
    if dropped:
        parts.append(f"Reading left out {dropped}.")
    parts.append(_labels(table))
    parts.append(_split_left_out_words(facts))
    return "**Data.** " + " ".join(part for part in parts if part)


@dataclass(frozen=True)
class _LeftOut:
    """What notebook 03 left out of notebook 01's records before the split, and the exact
    copies labelled otherwise it kept in the data's own test split."""

    conflicting: pd.Series  # faces left out, exact copies labelled otherwise, by own split
    other: int  # faces left out for another reason (an image that would not decode)
    kept_in_test: int  # exact copies labelled otherwise kept in the data's own test split
    remaining: int  # faces the splits hold
    known: bool  # whether notebook 02's label_conflicts.csv said which faces conflict


def _split_left_out(facts: _Run) -> _LeftOut | None:
    """The records notebook 01 read that notebook 03's splits lack, told apart by notebook
    02's list of exact copies labelled otherwise; None without both tables."""
    if facts.records is None or facts.splits is None or "id" not in facts.splits:
        return None
    records = facts.records.drop_duplicates("id")
    used = set(facts.splits["id"].astype(str))
    gone = records[~records["id"].astype(str).isin(used)]
    path = facts.run.eda_dir / "label_conflicts.csv"
    known = path.is_file()
    conflicts: set[str] = set()
    if known:
        listed = pd.read_csv(path, dtype=str)
        conflicts = set(listed["id"]) if "id" in listed else set()
    clash = gone["id"].astype(str).isin(conflicts)
    own = (
        gone.loc[clash, "split"].fillna("").astype(str)
        if "split" in gone
        else pd.Series([""] * int(clash.sum()), dtype=str)
    )
    return _LeftOut(
        conflicting=own.value_counts(),
        other=int((~clash).sum()),
        kept_in_test=len(conflicts & used),
        remaining=len(used),
        known=known,
    )


def _split_left_out_words(facts: _Run) -> str:
    """ "Before the split, 114 faces of the data's own training split were left out as exact
    copies of another face labelled otherwise ...; the 15 such faces of its test split were
    kept ...", so a reader can add up notebook 01's and 02's counts (all records) and the
    splits' (fewer)."""
    out = _split_left_out(facts)
    if out is None:
        return ""
    clash = "exact copies of another face labelled otherwise"
    n_conflicting = int(out.conflicting.sum())
    text = ""
    if not out.known and out.other:
        text = (
            f"Before the split, {out.other:,} faces were left out (images that would not decode "
            f"or {clash})"
        )
    elif n_conflicting:
        owned = {str(k): int(v) for k, v in out.conflicting.items() if k in SPLIT_ORDER}
        faces = counted(n_conflicting, "face")
        if len(owned) == 1 and sum(owned.values()) == n_conflicting:
            faces += f" of the data's own {_split_word(next(iter(owned)))} split"
        elif owned:
            faces += " (" + _join([f"{n:,} {_split_word(k)}" for k, n in owned.items()]) + ")"
        text = (
            f"Before the split, {faces} {'was' if n_conflicting == 1 else 'were'} left out as "
            f"{clash} (neither label can be "
            "trusted over the other)"
        )
        if out.other:
            text += f", and {out.other:,} whose image would not decode"
    elif out.other:
        text = f"Before the split, {out.other:,} faces whose image would not decode were left out"
    if text:
        text += f", so the splits hold {out.remaining:,} faces."
    if out.kept_in_test == 1:
        text += (
            f"{' ' if text else ''}The one face of the data's own test split that is an exact "
            "copy of another face labelled otherwise was kept, so the test split is scored as "
            "released; its conflicting label caps the accuracy any model can reach on it."
        )
    elif out.kept_in_test:
        text += (
            f"{' ' if text else ''}The {out.kept_in_test:,} faces of the data's own test split "
            f"that are {clash} were kept, so the test split is scored as released; their "
            "conflicting labels cap the accuracy any model can reach on it."
        )
    return text


def _profile_data_set(facts: _Run, source: str) -> tuple[str, str | None] | None:
    """The data set the run's profile names (FER+ for ferplus-cpu) and its paper's key, where
    the faces came through that profile's reader; None for any other data."""
    profile = facts.manifest.get("profile")
    recorded = profile if isinstance(profile, dict) else {}
    if not recorded.get("data_name") and facts.run.settings.is_file():  # a run made by hand
        recorded = read_json(facts.run.settings)
    name = recorded.get("data_name")
    if not name or recorded.get("data_reader") != source:
        return None
    key = recorded.get("data_reference")
    return str(name), str(key) if key in references.REFERENCES else None


def _dropped(run: RunFolder) -> str:
    """ "12 records (unreadable image: 10; no label: 2)" from notebook 01's ingest report."""
    if not run.ingest_report.is_file():
        return ""
    report = pd.read_csv(run.ingest_report)
    if not {"outcome", "reason", "count"} <= set(report.columns):
        return ""
    report = report[report["outcome"] == "dropped"]
    if report.empty:
        return ""
    reasons = "; ".join(f"{_reason_words(r.reason)}: {int(r.count):,}" for r in report.itertuples())
    return f"{int(report['count'].sum()):,} records ({reasons})"


# A reader's short names for its annotation files (AffectNet's <id>_exp.npy ...), in words.
_FILE_WORDS = {"exp": "expression label", "val": "valence", "aro": "arousal", "lnd": "landmarks"}


def _reason_words(reason: str) -> str:
    """A reason a record was left out, as a reader of the paper says it: "missing exp" is "no
    expression label"."""
    words = str(reason).split()
    if len(words) == 2 and words[0] == "missing" and words[1] in _FILE_WORDS:
        return f"no {_FILE_WORDS[words[1]]}"
    return " ".join(_FILE_WORDS.get(word, word) for word in words)


def _class_counts(table: pd.DataFrame) -> pd.Series:
    """Faces per expression class index, in class order."""
    counts = pd.to_numeric(table["expression"], errors="coerce").dropna().astype(int)
    return counts.value_counts().sort_index()


def _counts_words(counts: pd.Series) -> str:
    """ "Neutral 87, Happy 117, ..." """
    return ", ".join(
        f"{EXPRESSIONS[c] if 0 <= c < len(EXPRESSIONS) else c} {n:,}" for c, n in counts.items()
    )


def _labels(table: pd.DataFrame) -> str:
    """The classes with their counts, and the other targets where the data has them."""
    counts = _class_counts(table)
    text = f"Expression labels: {len(counts)} classes ({_counts_words(counts)})"
    missing = [name for c, name in enumerate(EXPRESSIONS) if c not in counts.index]
    if missing:
        text += f"; the data has no {_join(missing)}"
    extras = []
    for column, what in (("valence", "valence"), ("arousal", "arousal")):
        if column in table and table[column].notna().any():
            extras.append(f"{what} for {int(table[column].notna().sum()):,} faces")
    if "landmarks" in table and table["landmarks"].notna().any():
        extras.append(f"68 landmarks for {int(table['landmarks'].notna().sum()):,} faces")
    if extras:
        text += "; " + ", ".join(extras)
    return text + "."


def _splits(facts: _Run, cite: Citations) -> str:
    """How many faces each split holds and how they were drawn."""
    if facts.splits is None:
        return ""
    counts = facts.splits["split"].value_counts()
    n = {s: int(counts.get(s, 0)) for s in SPLIT_ORDER}
    given = pd.Series(dtype=int)
    if facts.records is not None and "split" in facts.records:
        given = facts.records["split"].dropna().astype(str).value_counts()
    chosen = ["the epoch kept"] if n["val"] else []
    scored = [m.data for m in facts.metrics.values()]
    if any((d.get("tta_validation") or {}).get("chosen") for d in scored):
        chosen.append("the test-time augmentation")
    if any((d.get("calibration") or {}).get("temperature") for d in scored):
        chosen.append("the calibration temperature")
    text = f"**Splits.** The training split held {n['train']:,} faces; "
    if n["val"]:
        text += f"{n['val']:,} were held out for validation"
        text += f" ({_join(chosen)} chosen on them)" if chosen else ""
    else:
        text += "none was held out for validation"
    tested = _class_counts(facts.splits[facts.splits["split"] == "test"])
    text += f" and {n['test']:,} for the test" + (
        f" ({_counts_words(tested)})." if len(tested) else "."
    )
    fold = facts.manifest.get("fold")
    if not isinstance(fold, dict) and "fold" in facts.splits:  # notebook 03 run by hand
        tested = facts.splits.loc[facts.splits["split"] == "test", "fold"]
        if len(tested):
            fold = {"fold": int(tested.mode().iloc[0]), "folds": int(facts.splits["fold"].max())}
    if isinstance(fold, dict):  # ./run_all.sh --fold I/K: the test split is one fold
        return text + _fold_text(facts, fold, given, cite)
    own = [s for s in SPLIT_ORDER if given.get(s, 0)]
    if "test" in own:
        text += _own_test_split(facts, int(given["test"]), n["test"])
    kept = [s for s in own if s != "test"]
    if kept:
        text += f" The data's own {_join([_split_word(s) for s in kept])} split"
        text += "s were kept" if len(kept) > 1 else " was kept"
        left = _split_left_out(facts)
        text += (
            ", less the faces left out before the split (above)."
            if left and (left.other or left.conflicting.sum())
            else "."
        )
    drawn = [s for s in ("val", "test") if n[s] and s not in own]
    if drawn:
        text += (
            f" The {_join([_split_word(s) for s in drawn])} faces were drawn from "
            f"{'the training images' if 'train' in own else 'all faces'}, stratified by "
            "expression"
        )
        seed = facts.augment.seed if facts.augment else facts.manifest.get("seed")
        text += f" with seed {seed}." if seed is not None else "."
        if "test" in drawn and "train" in own:  # e.g. a FER-2013 CSV without PrivateTest rows
            text += (
                " The data came with its own splits but no test split: the test faces were "
                "carved out of its training split."
            )
            facts.checks.append(
                "The data has no test split of its own (a FER-2013 CSV without PrivateTest "
                f"rows, say): the {n['test']:,} test faces were carved out of its training "
                "split, so the scores are not those on the data set's own test faces. Say so, "
                "or score its test faces (`--test-data`)."
            )
    grouped = _near_words(facts, cite)
    if facts.records is not None and "subject" in facts.records:
        grouped += " and each person's images"
    text += f" Splits were assigned before any augmentation, {grouped} kept together"
    crossing = _crossing_pairs(facts.run, facts.splits)
    if crossing is None:
        return text + " in the splits this run drew."
    if not crossing:
        return text + "; no duplicate pair crosses two splits (notebook 02's leakage check)."
    pairs = ", ".join(f"{count:,} {between}" for between, count in crossing.items())
    total = sum(crossing.values())
    these = f"{counted(total, 'pair')} of duplicate or near-duplicate images"
    cross = "crosses" if total == 1 else "cross"
    facts.checks.append(
        f"{these} {cross} the data's own splits ({pairs}; eda/leakage.csv): say so, or remove "
        f"{'it' if total == 1 else 'them'} and run again."
    )
    return (
        text + f" where the data's own splits allow it; {these} {cross} the splits the data "
        f"came with ({pairs})."
    )


def _own_test_split(facts: _Run, given: int, tested: int) -> str:
    """ "The test faces are the data's own test split, FER-2013's PublicTest faces (3,589)":
    the name a reader of the paper knows them by, where the data set has one."""
    assert facts.records is not None  # the data's own splits come from the records
    test = facts.records[facts.records["split"].astype(str) == "test"]
    sources = set(test["source"].astype(str)) if "source" in test else set()
    reader = READERS.get(sources.pop()) if len(sources) == 1 else None
    named = (
        f", {reader.dataset}'s {_test_split_name(reader.test_split, test['id'])} faces"
        if reader is not None and reader.dataset and reader.test_split
        else ""
    )
    count = f"{given:,} in the data" if given != tested else f"{given:,}"
    return f" The test faces are the data's own test split{named} ({count})."


def _test_split_name(name: str, ids: pd.Series) -> str:
    """The data set's name for its test split ("PublicTest"), with the other half where the
    faces' ids show it: a FER-2013 image release whose test/ folder holds PrivateTest_<n> faces
    too has "PublicTest and PrivateTest" faces."""
    others = ids.astype(str).str.extract(r"(?:^|/)(PublicTest|PrivateTest)_\d+$")[0].dropna()
    found = [n for n in ("PublicTest", "PrivateTest") if n in set(others)]
    return " and ".join(found) if name in found and len(found) > 1 else name


def _fold_text(facts: _Run, fold: dict[str, Any], given: pd.Series, cite: Citations) -> str:
    """How a cross-validation fold's splits were drawn: the folds over every face, then the
    validation faces from the other folds."""
    seed = facts.manifest.get("seed")
    grouped = _near_words(facts, cite)
    records = facts.records
    if records is not None and "subject" in records and records["subject"].notna().any():
        grouped += " and each person's images"
    dealt = "stratified by expression"
    if facts.splits is not None and not stratifiable(facts.splits["expression"], fold["folds"]):
        dealt = "by group alone (no class has a face for every fold)"
    text = (
        f" This run is fold {fold.get('fold')} of a {fold.get('folds')}-fold cross-validation: "
        f"all faces were dealt into {fold.get('folds')} folds {dealt} "
        f"with scikit-learn (seed {seed}), {grouped} kept in one fold, "
        f"fold {fold.get('fold')} is the test split, and the validation faces were drawn from "
        "the others, stratified by expression, before any augmentation."
    )
    own = [_split_word(s) for s in SPLIT_ORDER if given.get(s, 0)]
    if own:
        text += (
            f" The data's own {_join(own)} split{'s were' if len(own) > 1 else ' was'} set aside."
        )
    return text


def _near_words(facts: _Run, cite: Citations) -> str:
    """ "near-duplicate images (perceptual hashes at most 4 of their 64 bits apart)": the
    distance notebook 03 recorded, else the command's --set, else its default where run_all ran
    it; no number for a run by hand that did not record it."""
    near = facts.augment.near_distance if facts.augment else None
    given = (facts.manifest.get("parameters") or {}).get("near_distance")
    if near is None and isinstance(given, int) and not isinstance(given, bool):
        near = given
    if near is None and facts.manifest:
        near = eda.NEAR_DISTANCE
    if near is None:
        return f"near-duplicate images (perceptual hash; {cite.within('zauner2010implementation')})"
    return (
        f"near-duplicate images (perceptual hashes at most {near} of their 64 bits apart; "
        f"{cite.within('zauner2010implementation')})"
    )


def _crossing_pairs(run: RunFolder, used: pd.DataFrame | None = None) -> dict[str, int] | None:
    """Duplicate pairs across two splits by the splits they join ("train-test": 615), from
    notebook 02's leakage table, counting only pairs whose two faces are both in the splits
    used (`used`: notebook 03's, which may leave faces out after 02 ran); None where the run
    has no leakage table."""
    path = run.eda_dir / "leakage.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"id_a": str, "id_b": str})
    if table.empty or not {"split_a", "split_b"} <= set(table.columns):
        return {}
    if used is not None and "id" in used and {"id_a", "id_b"} <= set(table.columns):
        ids = set(used["id"].astype(str))
        table = table[table["id_a"].isin(ids) & table["id_b"].isin(ids)]
        if table.empty:
            return {}
    between = [
        "-".join(sorted((str(a), str(b)), key=lambda s: (*SPLIT_ORDER, s).index(s)))
        for a, b in zip(table["split_a"], table["split_b"], strict=True)
    ]
    return {str(k): int(v) for k, v in pd.Series(between).value_counts().items()}


def _split_word(split: str) -> str:
    """ "training", "validation", "test"."""
    return {"train": "training", "val": "validation"}.get(split, split)


def _augmentation(facts: _Run, cite: Citations) -> str:
    """What the training faces went through, model by model, and how the classes were
    balanced, from the counts the training table holds rather than the target asked for."""
    settings = facts.augment
    if settings is None:
        return ""
    for name in facts.models:  # trained before notebook 03 ran again: described, not its own
        other = freshness.training_note(facts.run, name)
        if other:
            facts.checks.append(f"{other}.")
    steps = describe_pipeline(settings.config)
    copies = _augmented_copies(facts.run)
    fresh, plain = _per_batch(facts) if settings.online else ([], [])
    online = ""
    if settings.online and (fresh or not plain):
        online = (
            "each training batch was augmented afresh"
            if not plain
            else f"the training batches of {_join(fresh)} were augmented afresh, those of "
            f"{_join(plain)} not (they trained on the faces "
            f"{'and the copies as written' if copies else 'as they are'})"
        )
    written = "Augmented copies of training faces were written once, before training"
    how = {
        "online": online,
        "offline": written if copies else "",
        "both": (f"Copies for balancing were written once and {online}" if online else written)
        if copies
        else online,
        "none": "",
    }[settings.mode]
    how = how[:1].upper() + how[1:]
    text = "**Augmentation.** "
    if how and len(steps):
        described = [
            f"{row.step} (p {row.p:g}; {notation.plain_notation(str(row.settings))})"
            for row in steps.itertuples()
        ]
        text += f"{how}: {_join(described)}."
        if (steps["step"] == "coarse dropout").any():
            text += (
                " Coarse dropout sets a rectangle to zero, as Cutout does "
                f"{cite('devries2017improved')}."
            )
        libraries = f"OpenCV {cite('bradski2000opencv')}"
        if steps["applied by"].str.contains("albumentations").any():
            libraries += f" and albumentations {cite('buslaev2020albumentations')}"
        text += f" Transforms by {libraries}, drawn from the run's seed."
    else:
        text += "The training faces were not augmented."
    if plain and not fresh:
        text += " No model's training batches were augmented afresh (`online_augment = False`)."
    copied = "augmented copies" if how else "repeated faces"
    counts = _training_counts(facts.run)
    text += f" {_balance(settings, counts, copied)}"
    if counts is not None and len(counts):
        counted = settings.balance in ("upsample", "downsample")
        text += (
            f" The training table{' these counts come from' if counted else ''} "
            f"(`{facts.run.train_table.name}`) held {int(counts.sum()):,} faces in all."
        )
    return text


def _per_batch(facts: _Run) -> tuple[list[str], list[str]]:
    """The models whose training batches were augmented afresh and those whose were not, as
    each card records it (a model can train without it, `online_augment = False`, where
    notebook 03 asked for it); a card that says neither is in neither list."""
    fresh, plain = [], []
    for name in facts.models:
        card = facts.cards.get(name) or {}
        data = card.get("data")
        done = data.get("online_augmentation") if isinstance(data, Mapping) else None
        if not isinstance(done, bool):  # a card written before training recorded it
            done = (card.get("parameters") or {}).get("online_augment")
        if isinstance(done, bool):
            (fresh if done else plain).append(name)
    return fresh, plain


def _training_counts(run: RunFolder) -> pd.Series | None:
    """Faces per class in the training table (originals and copies), by class name; None
    without one."""
    if not run.train_table.is_file():
        return None
    if "expression" not in pq.read_schema(run.train_table).names:
        return None
    labels = pd.read_parquet(run.train_table, columns=["expression"])["expression"]
    counts = pd.to_numeric(labels, errors="coerce").dropna().astype(int).value_counts()
    return pd.Series(
        {EXPRESSIONS[c] if 0 <= c < len(EXPRESSIONS) else str(c): int(n)
         for c, n in counts.sort_index().items()},
        dtype="int64",
    )  # fmt: skip


def _balance(settings: AugmentSettings, counts: pd.Series | None, copied: str) -> str:
    """How the classes were evened out, as the training table's counts show: a class already
    above the target keeps its own faces, and the text names it with its count."""
    if settings.balance == "class_weights":
        return "The expression loss weighted each class by its inverse frequency."
    if settings.balance not in ("upsample", "downsample"):
        return "The classes were not balanced."
    target = settings.target_per_class
    if not target:  # the largest class (upsample) or the smallest (downsample)
        if counts is None or not len(counts):
            return (
                f"The classes were balanced by {copied}."
                if settings.balance == "upsample"
                else "The classes were balanced by drawing as many faces as the smallest has."
            )
        target = int(counts.max() if settings.balance == "upsample" else counts.min())
    if counts is None or not len(counts):  # no training table to check the target against
        if settings.balance == "upsample":
            return (
                f"The classes under {target} faces were upsampled by {copied} to {target} "
                "each; larger classes kept their own."
            )
        return f"The classes above {target} faces were cut to {target} each, drawn at random."
    off = [f"{name} ({n:,})" for name, n in counts.items() if n != target]
    if not off:
        if settings.balance == "upsample":
            return f"The classes were balanced by {copied}, to {target} faces per class."
        return f"The classes were balanced by drawing {target} faces per class."
    kept = f"{_join(off)} kept {'its' if len(off) == 1 else 'their'} own"
    if settings.balance == "upsample":
        return f"The smaller classes were upsampled by {copied} to {target} faces each; {kept}."
    return f"The larger classes were cut to {target} faces each, drawn at random; {kept}."


def _augmented_copies(run: RunFolder) -> int:
    """How many augmented copies notebook 03 added to the training table."""
    if not run.train_table.is_file():
        return 0
    if "augmented" not in pq.read_schema(run.train_table).names:
        return 0
    return int(pd.read_parquet(run.train_table, columns=["augmented"])["augmented"].sum())


def _model(facts: _Run, name: str, cite: Citations) -> str:
    """One model: its network, initialisation, input, losses and how it trained."""
    card = facts.cards[name]
    params: Mapping[str, Any] = card.get("parameters") or {}
    arch: Mapping[str, Any] = card.get("architecture") or {}
    spec = registry.get(name) if name in registry.list_models() else None
    sentences = [_network(name, params, spec, card, cite)]
    uncited = _uncited(name, spec)
    if uncited:
        facts.checks.append(uncited)
    sentences.append(_start(name, card, facts, cite))
    sentences.append(_inputs(arch, params))
    table = facts.splits if facts.splits is not None else facts.records
    present = set(_class_counts(table).index) if table is not None else set()
    sentences.append(_losses(arch, params, cite, present))
    sentences.append(_optimisation(card, params, cite))
    sentences.append(_kept(card))
    if card.get("resumed"):
        facts.checks.append(
            f"{name} was trained in more than one sitting (resumed): its minutes, speed and "
            "machine are those of the last one."
        )
    return f"**{name}.** " + " ".join(s for s in sentences if s)


def _uncited(name: str, spec: registry.ModelSpec | None) -> str | None:
    """What to do where the text names an architecture without its paper; None where it cites
    one, or describes the project's own network in full (nothing to cite)."""
    if spec is None:
        return (
            f"{name} is not in this checkout's model registry, so the text names its "
            "architecture with no reference to cite: cite its paper yourself."
        )
    if spec.reference or spec.builder.endswith(":custom_cnn"):
        return None
    built = spec.builder.rpartition(":")[2]
    return (
        f"{name}: {built} has no reference to cite, so the text names it without its paper: "
        "cite it yourself, or give its `ModelSpec` in `helpers/models/registry.py` "
        "`reference=` with the key of its entry in `helpers/reporting/references.py` "
        "(`REFERENCES`: the short form and the BibTeX), then run notebook 06 again."
    )


def _network(
    name: str,
    params: Mapping[str, Any],
    spec: registry.ModelSpec | None,
    card: Mapping[str, Any],
    cite: Citations,
) -> str:
    """The architecture in a sentence, with its size."""
    size = card.get("params")
    weights = f", {int(size):,} parameters" if isinstance(size, (int, float)) else ""
    reference = f" {cite(spec.reference)}" if spec and spec.reference else ""
    if spec and spec.builder.endswith(":custom_cnn"):
        options = {**spec.builder_kwargs, **(params.get("backbone_options") or {})}
        widths = list(options.get("widths", (32, 64, 128, 256)))
        convs = options.get("convs", 2)
        per_block = f"{convs}" if isinstance(convs, int) else "/".join(str(c) for c in convs)
        text = (
            f"A VGG-style network{reference}{weights}: {len(widths)} blocks of {per_block} "
            f"3{notation.TIMES}3 convolutions ({_join([str(w) for w in widths])} filters), each "
            f"with batch normalisation {cite('ioffe2015batch')} and ReLU, then "
            f"2{notation.TIMES}2 max pooling"
        )
        rising = options.get("block_dropout", 0.1)
        text += f" and dropout rising by {rising:g} a block" if rising else " (no dropout)"
        if options.get("residual"):
            text += f", a 1{notation.TIMES}1 projection shortcut around each block"
        ratio = options.get("se_ratio", 0.0)
        if ratio if isinstance(ratio, (int, float)) else any(ratio):
            text += f", squeeze-and-excitation gates {cite('hu2018squeeze')}"
        if options.get("standardize"):
            text += (
                ", each face standardised to zero mean and unit variance over its own "
                f"pixels first {cite('tang2013deep')}"
            )
        text += "."
    else:
        built = spec.builder.rpartition(":")[2] if spec else name
        text = (
            f"{built}{reference} as `keras.applications` builds it, without its "
            f"classifier{weights}."
        )
    pooling = "global average pooling" if params.get("pooling", "avg") == "avg" else "flattening"
    dropout = params.get("dropout", 0.3)
    return (
        f"{text} Its features go through {pooling} and a shared "
        f"{params.get('shared_units', 256)}-unit layer"
        f"{f' with dropout {dropout:g}' if dropout else ''} to the heads."
    )


def _start(name: str, card: Mapping[str, Any], facts: _Run, cite: Citations) -> str:
    """Where its weights started."""
    weights = (card.get("parameters") or {}).get("weights")
    if card.get("weights_fallback") and card.get("pretrained_backbone"):
        facts.checks.append(
            f"{name} was to start from {weights} weights and started from a fallback "
            f"instead ({card['weights_fallback']}): name the weights it started from."
        )
        return "The backbone started from pretrained weights (see the model card)."
    if card.get("pretrained_backbone"):
        if weights == "imagenet":
            return f"The backbone started from ImageNet weights {cite('deng2009imagenet')}."
        kept = left_layers(str(card.get("weights_loaded") or ""))
        start = f"The backbone started from the weights in `{Path(str(weights)).name}`"
        if kept:
            return start + f"; {_join(kept)} started from their initial weights."
        return start + "."
    if card.get("weights_fallback"):
        facts.checks.append(
            f"{name} was to start from ImageNet weights and started from random "
            f"initialisation instead ({card['weights_fallback']})."
        )
    prepared = card.get("from_scratch")
    if not isinstance(prepared, Mapping):  # a card written before training recorded it
        facts.checks.append(
            f"{name}'s model card does not record how its randomly initialised network was "
            "prepared to learn from scratch: describe it, or train it again to record it."
        )
        return "It was randomly initialised."
    prepared = dict(prepared)
    if prepared == facts.said_scratch:
        return "It was randomly initialised and prepared as above."
    facts.said_scratch = prepared
    steps = []
    if prepared.get("batchnorm_momentum"):
        steps.append(f"BatchNorm statistics at momentum {prepared['batchnorm_momentum']:g}")
    if prepared.get("zero_gamma_branches"):
        steps.append(
            "the last BatchNorm of each residual branch at zero "
            f"{cite('goyal2017accurate')}, so each block starts as its shortcut"
        )
    if prepared.get("he_initialisation"):
        steps.append(
            f"He initialisation {cite('he2015delving')}, as it has no BatchNorm, the first "
            "layer scaled to the spread of its input pixels"
        )
    if not steps:
        return "It was randomly initialised."
    return f"It was randomly initialised and prepared to learn from scratch: {_join(steps)}."


def _inputs(arch: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """The faces it sees."""
    size, channels = arch.get("image_size"), arch.get("channels")
    if not size:
        return ""
    colour = "grayscale" if channels == 1 else "RGB"
    text = f"Input: {size}{notation.TIMES}{size} {colour} faces"
    preprocessing = str(arch.get("preprocessing") or "").removeprefix("inside the model: ")
    if preprocessing:
        text += f"; inside the model, {_preprocessing_words(preprocessing)}"
    crop = (params.get("backbone_options") or {}).get("train_crop")
    if crop:
        text += (
            f"; in training a random {crop}{notation.TIMES}{crop} window of each face, at "
            "inference the centre window"
        )
    if params.get("online_augment") is False:
        text += "; without augmentation per batch"
    return text + "."


def _preprocessing_words(preprocessing: str) -> str:
    """A model card's preprocessing as a paper writes it: the function as code, so a long name
    can break, and its arithmetic in symbols ("pixels / 255 → [0, 1]")."""
    parts = re.split(r"\b(keras(?:\.\w+)+)", preprocessing)
    return "".join(
        f"`{part}`" if index % 2 else notation.plain_notation(part)
        for index, part in enumerate(parts)
    )


def _losses(
    arch: Mapping[str, Any], params: Mapping[str, Any], cite: Citations, present: set[int]
) -> str:
    """Each head and its loss; an expression head wider than the data's classes says so."""
    heads = list(arch.get("heads") or params.get("heads") or [])
    if not heads:
        return ""
    parts = []
    if "expression" in heads:
        width = int(arch.get("n_classes") or len(EXPRESSIONS))
        loss = f"{width}-way softmax, cross-entropy"
        if params.get("label_smoothing"):
            loss += (
                f" with label smoothing {params['label_smoothing']:g} "
                f"{cite('szegedy2016rethinking')}"
            )
        parts.append(f"expression ({loss}{_absent_words(arch, width, present)})")
    va_loss = HEAD_LOSSES.get(str(params.get("va_loss", "mse")), str(params.get("va_loss")))
    parts += [f"{h} ({va_loss})" for h in ("valence", "arousal") if h in heads]
    if "landmarks" in heads:
        kind = str(params.get("landmark_loss", "mse"))
        parts.append(f"68 landmarks ({HEAD_LOSSES.get(kind, kind)})")
    text = f"Heads, each loss masked where a face has no target: {_join(parts)}"
    if len(heads) > 1:  # the defaults are not uniform (landmarks 10): always say them
        given = params.get("loss_weights") or {}
        weights = {h: given.get(h, DEFAULT_LOSS_WEIGHTS.get(h, 1.0)) for h in heads}
        text += "; loss weights " + ", ".join(f"{h} {w:g}" for h, w in weights.items())
    return text + "."


def _absent_words(arch: Mapping[str, Any], width: int, present: set[int]) -> str:
    """ "; the head keeps AffectNet's 8 classes, the data has 7: Contempt is never a target",
    where the data lacks some of the head's classes (FER-2013 has no Contempt); else ""."""
    labels = list(arch.get("labels") or EXPRESSIONS)[:width]
    absent = [label for index, label in enumerate(labels) if index not in present]
    if not present or not absent:
        return ""
    kept = "AffectNet's 8" if width == len(EXPRESSIONS) else f"its {width}"
    never = "is never a target" if len(absent) == 1 else "are never targets"
    return (
        f"; the head keeps {kept} classes, the data has {width - len(absent)}: "
        f"{_join(absent)} {never}"
    )


def _optimisation(card: Mapping[str, Any], params: Mapping[str, Any], cite: Citations) -> str:
    """Optimiser, rate, schedule, precision, regularisers, and what the training ran."""
    optimizer, key = OPTIMIZERS.get(
        str(params.get("optimizer", "adam")), (str(params.get("optimizer")), None)
    )
    phases = card.get("phases") or []
    text = f"Trained with {optimizer}{' ' + cite(key) if key else ''}"
    text += f", batch {params.get('batch_size', '?')}"
    if len(phases) > 1 or any(p.get("transfer") not in (None, "full") for p in phases):
        text += ", in phases: " + "; ".join(_phase(p, params) for p in phases)
    else:
        rate = phases[0].get("learning_rate") if phases else params.get("learning_rate")
        text += f", at a learning rate of {notation.general(rate)}" if rate else ""
    budget = params.get("time_budget_minutes")
    monitor = str((card.get("best") or {}).get("monitor") or "val_loss")
    if params.get("lr_schedule") == "cosine":
        over = (
            f"a {budget:g}-minute budget or {params.get('epochs')} epochs, whichever came first"
            if budget
            else f"{params.get('epochs')} epochs"
        )
        text += (
            f"; the rate annealed to {notation.general(params.get('min_lr', 1e-6))} along a cosine "
            f"{cite('loshchilov2017sgdr')} over {over}"
            + (" in each phase" if len(phases) > 1 else "")
        )
        if params.get("swa_start"):
            text += (
                f", held from {params['swa_start']:g} of the training at "
                f"{params.get('swa_rate', 0.1):g} of its start"
            )
    else:
        text += (
            f"; the rate multiplied by {params.get('reduce_lr_factor', 0.5):g} when "
            f"{_monitor_words(monitor)} stalled for {params.get('reduce_lr_patience', 2)} epochs, "
            f"early stopping after {params.get('early_stopping_patience', 5)}"
        )
        if budget:
            text += f", within a {budget:g}-minute budget"
    if params.get("max_steps_per_epoch"):
        text += f", at most {params['max_steps_per_epoch']} steps an epoch"
    extras = []
    if params.get("weight_decay"):
        extras.append(
            f"decoupled weight decay {notation.general(params['weight_decay'])} "
            f"{cite('loshchilov2019decoupled')}"
        )
    mixing = params.get("mixing") or {}
    if mixing.get("mode") in ("mixup", "cutmix"):
        key = "zhang2018mixup" if mixing["mode"] == "mixup" else "yun2019cutmix"
        extras.append(f"{'mixup' if mixing['mode'] == 'mixup' else 'CutMix'} {cite(key)}")
    if params.get("ema_momentum"):
        extras.append(
            f"a moving average of the weights (momentum {params['ema_momentum']:g}) "
            f"{cite('polyak1992acceleration')}"
        )
    if params.get("swa_start"):
        extras.append(
            f"stochastic weight averaging of the epochs from then on "
            f"{cite('izmailov2018averaging')}, BatchNorm's statistics recomputed"
        )
    precision = str(card.get("mixed_precision") or "")
    if "bfloat16" in precision:
        extras.append(f"mixed bfloat16 precision {cite('kalamkar2019study')}")
    elif "float16" in precision:
        extras.append(f"mixed float16 precision {cite('micikevicius2018mixed')}")
    if extras:
        text += "; " + ", ".join(extras)
    return text + ". " + _ran(card)


def _phase(phase: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """ "epochs 1-2, the backbone frozen, at 0.001"."""
    first, end = int(phase.get("first_epoch", 0)) + 1, int(phase.get("end_epoch", 0))
    transfer = {
        "frozen": "the backbone frozen",
        "top_n": f"the last {params.get('trainable_top_n', 20)} backbone layers trainable",
        "full": "the whole network trainable",
    }.get(str(phase.get("transfer")), str(phase.get("transfer")))
    rate = phase.get("learning_rate")
    epochs = f"epoch {first}" if first == end else f"epochs {first}{notation.EN_DASH}{end}"
    return f"{epochs}, {transfer}" + (f", at {notation.general(rate)}" if rate else "")


def _monitor_words(monitor: str) -> str:
    """ "the validation loss", "the validation expression accuracy", "the training loss"."""
    validation = monitor.startswith("val_")
    what = monitor.removeprefix("val_").replace("_", " ")
    return f"the {'validation' if validation else 'training'} {what}"


def _ran(card: Mapping[str, Any]) -> str:
    """How long it trained, how fast, on what."""
    epochs = card.get("epochs_run")
    if not epochs:
        return ""
    text = f"It ran {counted(epochs, 'epoch')}"
    seconds, speed = card.get("training_time_s"), card.get("images_per_s")
    budget = (card.get("parameters") or {}).get("time_budget_minutes")
    if (
        epochs == 1 and _is_number(budget) and _is_number(seconds) and seconds > 1.05 * 60 * budget
    ):  # an epoch runs whole: the budget cannot stop it
        text += f" (the {budget:g}-minute budget ended inside it, and it ran to its end)"
    elif card.get("stopped_by_time_budget"):
        text += " (stopped by the time budget)"
    if isinstance(seconds, (int, float)):
        text += f" in {seconds / 60:.1f} minutes"
    if isinstance(speed, (int, float)):
        text += f" at {speed:,.0f} images/s"
    return text + f" on {_machine(card)}."


def _machine(card: Mapping[str, Any]) -> str:
    """ "the CPU, AMD EPYC (2 logical CPUs, 7.8 GiB of memory, bfloat16 instructions)", "NVIDIA
    H200", or the devices where the card predates the machine."""
    machine = card.get("machine") or {}
    gpus = machine.get("gpus") or [d for d in card.get("devices") or [] if "GPU" in str(d)]
    if gpus:
        return _join(
            [
                f"{count} x {model}" if count > 1 else str(model)
                for model, count in pd.Series(gpus).value_counts().items()
            ]
        )
    if machine.get("cpu"):
        told = [f"{machine['cores']} logical CPUs"] if machine.get("cores") else []
        memory = machine.get("memory_gib")
        if isinstance(memory, (int, float)) and memory > 0:
            told.append(
                f"{memory:.1f} GiB of memory" if memory < 10 else f"{memory:.0f} GiB of memory"
            )
        bfloat16 = machine.get("bfloat16_instructions")
        if isinstance(bfloat16, bool):
            told.append(f"{'' if bfloat16 else 'no '}bfloat16 instructions")
        return f"the CPU, {machine['cpu']}" + (f" ({', '.join(told)})" if told else "")
    return "the CPU"


def _kept(card: Mapping[str, Any]) -> str:
    """Which epoch became the model, and why."""
    best = card.get("best") or {}
    if not best.get("epoch"):
        return ""
    monitor = str(best.get("monitor", "val_loss"))
    rule = ("lowest " if monitor.endswith("loss") else "highest ") + _monitor_words(monitor)[4:]
    scores = best.get("metrics") or {}
    accuracy = scores.get("val_expression_accuracy", scores.get("val_accuracy"))
    text = f"The epoch with the {rule} was kept: epoch {best['epoch']}"
    if isinstance(accuracy, (int, float)):
        text += f", validation accuracy {accuracy:.3f}"
    average = card.get("weight_average") or {}
    if isinstance(average, Mapping) and average.get("kept"):
        text += "; the weight average replaced it, " + (
            "scoring better on validation"
            if average.get("value") is not None
            else "there being no validation score to compare"
        )
    return text + "."


def _evaluation(facts: _Run, cite: Citations) -> str:
    """What was measured on the test faces, and how the intervals and choices were made."""
    scored = list(facts.metrics.values())
    if not scored:
        return ""
    n = max((m.n or 0) for m in scored)
    heads = {h for m in scored for h, block in m.heads.items() if block}
    parts = [f"**Evaluation.** Each model was scored once on the {n:,} test faces."]
    if "expression" in heads:
        text = (
            "Expression: accuracy, macro-averaged F1, precision and recall, Cohen's kappa "
            f"{cite('cohen1960coefficient')} and one-vs-rest ROC and precision-recall AUC with "
            f"scikit-learn {cite('pedregosa2011scikit')}, and Krippendorff's alpha "
            f"{cite('krippendorff2018content')} with the krippendorff package"
        )
        if any((m.heads.get("expression") or {}).get("labels_left_out") for m in scored):
            text += (
                ", over the classes the test faces have, a prediction being the most "
                "probable of those"
            )
        parts.append(text + ".")
    if heads & {"valence", "arousal"}:
        parts.append(
            f"Valence and arousal: the concordance correlation coefficient (CCC) "
            f"{cite('lin1989concordance')}, RMSE, MAE, Pearson correlation and the "
            f"share of predictions with the right sign (SAGR; {cite.within('kossaifi2017afew')})."
        )
    if "landmarks" in heads:
        parts.append(
            "Landmarks: the normalised mean error (NME), each face's mean "
            "point-to-point error over its inter-ocular distance (outer eye corners) "
            f"{cite('sagonas2016300')}, the share of faces above 0.1, and the NME of "
            "always predicting the faces' average shape beside it."
        )
    ci = next((m.data.get("ci") for m in scored if m.data.get("ci")), None)
    if ci:
        grouped = "groups" in str(ci.get("method", ""))
        people = f" {ci['groups']:,}" if isinstance(ci.get("groups"), int) else ""
        over = "the test images" if not grouped else (
            f"the{people} people of the test images, each person's faces drawn together"
        )  # fmt: skip
        parts.append(
            f"Intervals: {ci.get('level', 0.95):.0%}, percentile bootstrap over {over}, "
            f"{ci.get('n_boot', 1000):,} resamples with seed {ci.get('seed', 0)} "
            f"{cite('efron1993introduction')}."
        )
    modes = (
        f"one view, flip (the face and its mirror averaged) or ten-crop (four corner and "
        f"the centre crops of {round(CROP_SHARE * 100)}% of the side, and their mirrors, "
        f"averaged; {cite.within('krizhevsky2012imagenet')})"
    )
    chose = [m for m in scored if (m.data.get("tta_validation") or {}).get("chosen")]
    if chose:
        parts.append(_tta_rule(chose, len(scored), modes))
    elif any(str(m.data.get("tta") or "none") != "none" for m in scored):
        parts.append(f"Test-time augmentation as the results say: {modes}.")
    if any((m.data.get("calibration") or {}).get("temperature") for m in scored):
        parts.append(
            "Calibration: the expected calibration error of the top class over 15 "
            "equal-width confidence bins, and one temperature per model fitted on the "
            f"validation faces by negative log-likelihood {cite('guo2017calibration')}."
        )
    if sum(facts.run.predictions_path(name).is_file() for name in facts.metrics) > 1:
        parts.append(
            "Each task's best model was compared with every other on the same test "
            "faces by a paired bootstrap (both models' predictions resampled together, "
            f"{paired.N_BOOT:,} resamples; {cite.within('efron1993introduction')}): "
            "a lead counts where its 95% interval excludes zero."
        )
    flagged = []
    if "expression" in heads:
        flagged.append(
            f"an expression head when one class took {health.COLLAPSE_SHARE:.0%} or more of its "
            f"predictions, leaving the other classes under {health.OTHERS_KEPT:.0%} of their "
            "share of the true labels, or when its agreement with the true labels was near "
            f"chance (Cohen's kappa below {health.CHANCE_KAPPA:g})"
        )
        earlier = _earlier_collapse_rule(facts)
        if earlier:
            facts.checks.append(
                f"{_join(earlier)}: judged by an earlier collapse rule (its metrics file's "
                "health check has no Cohen's kappa): run notebook 05 again so that the rule "
                "stated is the one applied."
            )
    if heads & {"valence", "arousal"}:
        flagged.append(
            f"a valence or arousal head when its predictions spread less than "
            f"{health.FLAT_REGRESSION:.0%} of the truth's or its CCC was below "
            f"{health.NO_AGREEMENT:g}"
        )
    if "landmarks" in heads:
        flagged.append(
            f"a landmark head when its NME was above {health.LANDMARK_GAIN:g} times the "
            "average shape's"
        )
    if flagged:
        parts.append(
            "A head was flagged as having learned nothing, and left out of any ranking: "
            + "; ".join(flagged)
            + "."
        )
    degraded = next((m.data["corruptions"] for m in scored if m.data.get("corruptions")), None)
    if degraded:
        n_degraded, of = degraded.get("n", 0), degraded.get("of")
        which = (
            f"a seeded sample of {n_degraded:,} of the test images"
            if isinstance(of, int) and of > n_degraded
            else f"the {n_degraded:,} test images"
        )
        parts.append(
            f"Robustness: {which} were scored again, one view each, with the stored photo "
            f"degraded before each model's preprocessing: {_corruption_words(degraded)}, in "
            f"the manner of ImageNet-C {cite('hendrycks2019benchmarking')}."
        )
    if any(m.data.get("explain") for m in scored):
        parts.append(
            f"Grad-CAM {cite('selvaraju2017gradcam')} heatmaps of the predicted class "
            "show where each model looks, with the share of each heatmap on the face."
        )
    external = facts.run.external_datasets()
    if external:
        parts.append(
            f"Each model was also scored on {_join([f'`{e}`' for e in external])}, in "
            "the label space the two share."
        )
    return " ".join(parts)


# How `auto` chose before the metrics JSON recorded its rule (tta_validation.rule).
EARLIER_TTA_RULE = (
    "the mode with the best validation macro-F1 is used (accuracy breaks ties, then the "
    "cheaper mode)"
)


def _rule_key(rule: str) -> str:
    """A rule's words with spacing and digit grouping dropped ("1,000" is "1000"), so one rule
    recorded before and after its wording grouped the digits is one rule."""
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", " ".join(rule.split()))


def _tta_rule(chose: Sequence[MetricsFile], n_scored: int, modes: str) -> str:
    """How the test-time augmentation was chosen, in the words of the rule each model's metrics
    JSON records as applied (helpers.evaluation.scoring.TTA_RULE), so the text and the choice
    cannot part; a JSON from before the rule was recorded was chosen by the earlier one."""
    rules: dict[str, list[str]] = {}
    worded: dict[str, str] = {}  # one rule however its numbers were grouped: the latest wording
    for scores in chose:
        rule = str((scores.data.get("tta_validation") or {}).get("rule") or EARLIER_TTA_RULE)
        same = _rule_key(rule)
        worded[same] = max(worded.get(same, rule), rule, key=len)
        rules.setdefault(same, []).append(scores.model)
    rules = {worded[same]: models for same, models in rules.items()}
    text = f"Test-time augmentation, {modes}, was chosen"
    if len(rules) == 1:
        whose = "per model" if len(chose) == n_scored else f"for {_join([m.model for m in chose])}"
        text += f" {whose} on the validation faces, by the rule that {next(iter(rules))}."
    else:
        text += " on the validation faces. " + " ".join(
            f"For {_join(models)}, by the rule that {rule}." for rule, models in rules.items()
        )
    return (
        f"{text} The test faces were scored with the mode chosen, and on one view for comparison."
    )


def _corruption_words(block: Mapping[str, Any]) -> str:
    """Each corruption with its three settings, from the block's own levels."""
    levels = block.get("levels") or {}
    words = []
    for name, values in levels.items():
        what = CORRUPTION_LEVELS.get(name, (None, name))[1]
        shown = ", ".join(notation.general(v) for v in values)
        words.append(f"{name.replace('_', ' ')} ({what}: {shown})")
    return _join(words) or "seven corruptions at three severities"


def _results(facts: _Run) -> str:
    """Each model's headline figures on the test faces, as its metrics JSON holds them."""
    lines = []
    for name in facts.models:
        scores = facts.metrics.get(name)
        if scores is None:
            continue
        stale = freshness.stale_note(facts.run, name, scores.data)
        if stale:  # the figures are another model's: left out, and the author told why
            facts.checks.append(f"{name}: {stale}; its figures are left out.")
            lines.append(f"{name}: figures left out (its metrics describe an earlier training).")
            continue
        figures: list[str] = []
        expression = scores.heads.get("expression")
        if expression:
            figures.append(_figure("accuracy", expression, "accuracy"))
            figures.append(_figure("macro-F1", expression, "f1_macro"))
        for head in ("valence", "arousal"):
            if scores.heads.get(head):
                figures.append(_figure(f"{head} CCC", scores.heads[head], "ccc"))
        landmarks = scores.heads.get("landmarks")
        if landmarks:
            baseline = landmarks.get("baseline_nme")
            figures.append(
                _figure(
                    "landmark NME",
                    landmarks,
                    "nme",
                    f"the average shape {baseline:.3f}"
                    if isinstance(baseline, (int, float))
                    else "",
                )
            )
        figures = [f for f in figures if f]
        if not figures:
            continue
        mode = str(scores.data.get("tta") or "none")
        line = f"{name}{f', with {TTA_WORDS.get(mode, mode)}' if mode != 'none' else ''}: "
        line += ", ".join(figures) + _tta_note(scores.data) + _corruption_note(scores.data)
        line += _health_note(facts, name, scores.data)
        lines.append(line + ".")
    if not lines:
        return ""
    ci = next((m.data.get("ci") for m in facts.metrics.values() if m.data.get("ci")), None)
    level = f" ({ci.get('level', 0.95):.0%} intervals)" if ci else ""
    rest = " The other metrics named above are in the report's table of secondary metrics"
    if any((m.heads.get("expression") or {}).get("per_class") for m in facts.metrics.values()):
        rest += (
            ", each class's F1 in its per-class figure, and each class's precision, recall "
            "and F1 in `metrics/<model>.json`"
        )
    rest += "."
    return f"**Results on the test faces**{level}. " + " ".join(lines) + rest


def _figure(label: str, block: Mapping[str, Any], key: str, aside: str = "") -> str:
    """ "accuracy 0.687 (0.671–0.701)", an aside after the interval; "" without the value."""
    value = block.get(key)
    if not _is_number(value):
        return ""
    interval = block.get(f"{key}_ci")
    inside = []
    if isinstance(interval, Sequence) and len(interval) == 2 and all(map(_is_number, interval)):
        inside.append(notation.span(interval[0], interval[1]))
    if aside:
        inside.append(aside)
    return f"{label} {notation.fixed(value)}" + (f" ({'; '.join(inside)})" if inside else "")


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tta_note(data: Mapping[str, Any]) -> str:
    """The expression figures on one view where a test-time augmentation scored them, and the
    calibration error before and after the temperature."""
    mode = str(data.get("tta") or "none")
    plain = (data.get("without_tta") or {}).get("expression") or {}
    text = ""
    if mode != "none" and _is_number(plain.get("accuracy")):
        text += f"; on one view accuracy {notation.fixed(plain['accuracy'])}"
        if _is_number(plain.get("f1_macro")):
            text += f", macro-F1 {notation.fixed(plain['f1_macro'])}"
    return text + _calibration_note(data)


def _calibration_note(data: Mapping[str, Any]) -> str:
    """ "; expected calibration error 0.020 before and 0.014 after temperature scaling
    (T = 0.65)", and where the temperature fitted on the validation faces raised it on the
    test faces, that it did; a temperature at an end of its search range is said to be one."""
    calibration = data.get("calibration") or {}
    pair = calibration.get("test_ece")
    temperature = calibration.get("temperature")
    fitted = isinstance(pair, Sequence) and len(pair) == 2 and all(map(_is_number, pair))
    if fitted and _is_number(temperature):
        before, after = (notation.fixed(v) for v in pair)
        text = (
            f"; expected calibration error {before} before and {after} after temperature "
            f"scaling (T{notation.NBSP}={notation.NBSP}{temperature:.2f}"
        )
        edge = calibration.get("at_bound") or range_edge(float(temperature))
        if edge in ("upper", "lower"):
            low, high = calibration.get("range") or TEMPERATURE_RANGE
            text += (
                f", the {edge} end of the range searched, {notation.general(low)} to "
                f"{notation.general(high)}: the fit found no optimum inside it, so the error "
                "after is that of the bound"
            )
        elif round(pair[1], 3) > round(pair[0], 3):
            text += ", fitted on the validation faces: it raised the error on the test faces"
        return text + ")"
    ece = (data.get("expression") or {}).get("ece")
    return f"; expected calibration error {notation.fixed(ece)}" if _is_number(ece) else ""


def _corruption_note(data: Mapping[str, Any]) -> str:
    """The headline metric's mean under the corruptions, against the clean score it is a share
    of: each image's one view, which is not the headline score of a model with a test-time
    augmentation."""
    block = data.get("corruptions") or {}
    one_view = str(data.get("tta") or "none") != "none"
    sample, total = block.get("n"), block.get("of", data.get("n"))
    part = _is_number(sample) and _is_number(total) and 0 < sample < total
    # A sample's clean score differs from the headline's: said to be the sample's.
    where = f" ({int(sample):,} of the {int(total):,} test faces)" if part else ""
    on_them = " on those faces" if part else ""
    for head, key, label in (
        ("expression", "f1_macro", "macro-F1"),
        ("valence", "ccc", "valence CCC"),
        ("landmarks", "nme", "landmark NME"),
    ):
        mean = ((block.get("mean") or {}).get(head) or {}).get(key)
        kept = ((block.get("retained") or {}).get(head) or {}).get(key)
        clean = ((block.get("clean") or {}).get(head) or {}).get(key)
        if not _is_number(mean):
            continue
        text = f"; on the corrupted images{where}{', one view,' if one_view else ''} {label} "
        text += f"{notation.fixed(mean)} on average"
        base = f"{'one-view ' if one_view else ''}clean score{on_them}"
        if key == "nme":  # lower is better: the clean error beside it, not a share
            clean_text = f" against {notation.fixed(clean)} clean{on_them}"
            return text + (clean_text if _is_number(clean) else "")
        if _is_number(kept) and _is_number(clean):
            return text + f" ({kept:.0%} of its {base}, {notation.fixed(clean)})"
        if _is_number(kept):
            return text + f" ({kept:.0%} of its {base})"
        return text
    return ""


def _earlier_collapse_rule(facts: _Run) -> list[str]:
    """Models whose expression health predates the kappa rule (no `kappa` key): the text
    states the rule of the current code, which their verdict did not use."""
    return [
        name
        for name, m in facts.metrics.items()
        if isinstance(expression := (m.data.get("health") or {}).get("expression"), Mapping)
        and "kappa" not in expression
    ]


def _health_note(facts: _Run, name: str, data: Mapping[str, Any]) -> str:
    """What a head that learned nothing predicts; the author is asked to say so."""
    state = data.get("health") or {}
    heads = list(state.get("collapsed_heads") or [])
    if not heads:
        return ""
    facts.checks.append(
        f"{name}: its {_join(heads)} head{'s' if len(heads) > 1 else ''} "
        "learned nothing (see the report): say so wherever it is compared."
    )
    text = f" ({_join(heads)} learned nothing"
    expression = state.get("expression") or {}
    one_class = expression.get("one_class", expression.get("top_share", 0) >= health.COLLAPSE_SHARE)
    if "expression" in heads and one_class:
        text += (
            f": it predicts {expression['top_class']} for "
            f"{expression.get('top_share', 0):.0%} of the faces"
        )
    return text + ")"


def _software(facts: _Run, cite: Citations) -> str:
    """Versions, the commit and the command that repeat the run: the manifest's, or without
    one (notebooks run by hand) the versions a model card recorded; and what another machine
    changes."""
    manifest = facts.manifest
    packages: Mapping[str, Any] = manifest.get("packages") or next(
        (
            {k: v for k, v in card["versions"].items() if k != "backend"}
            for card in facts.cards.values()
            if isinstance(card.get("versions"), Mapping)
        ),
        {},
    )
    cited = {
        "tensorflow": "abadi2016tensorflow",
        "tensorflow-cpu": "abadi2016tensorflow",
        "keras": "chollet2015keras",
        "opencv-python-headless": "bradski2000opencv",
    }
    named = [
        f"{'Python' if name == 'python' else name} {version}"
        + (f" {cite(cited[name])}" if name in cited else "")
        for name, version in packages.items()
    ]
    sentences = [f"{_join(named)}."] if named else []
    unrecorded = [name for name in RELIED_ON if name not in packages]
    if unrecorded:
        facts.checks.append(
            f"The versions of {_join(unrecorded)}, which the text relies on, were not recorded "
            "with the run: requirements.txt pins them; state the versions the run used."
        )
    code = recorded_code(facts.run)  # the manifest's, or notebook 01's by hand
    commit = code.get("git_commit")
    command = manifest.get("repeat_command") or manifest.get("command")  # after any resume
    dirty = " with uncommitted changes" if code.get("git_dirty") else ""
    profile = _profile_name(facts)
    # Models the run reports that the command did not make: notebooks 04 and 05 run by hand
    recorded = manifest.get("models") or []
    outside = [m for m in facts.models if m not in recorded] if recorded else []
    if commit or command:
        sentences.append(
            "The pipeline"
            + (f" at commit {str(commit)[:12]}{dirty}" if commit else "")
            + (f", run as `{_portable(str(command), profile)}`" if command else "")
            + (
                f"; {_join(outside)} {'was' if len(outside) == 1 else 'were'} trained and "
                "scored outside that command (notebooks 04 and 05 run by hand)."
                if command and outside
                else "."
            )
        )
    if command and outside:
        facts.checks.append(
            f"{_join(outside)} {'was' if len(outside) == 1 else 'were'} trained outside the "
            "recorded command (notebooks 04 and 05 run by hand on this run folder): the command "
            f"does not make {'its' if len(outside) == 1 else 'their'} results; state the "
            "settings they were trained with, or train them with the command (`--models`)."
        )
    if commit and dirty:
        facts.checks.append(
            f"The code had uncommitted changes when the run was made: commit {str(commit)[:12]} "
            "alone does not repeat it; commit them and name that commit instead."
        )
    if manifest and not commit:
        facts.checks.append(
            "The code's commit was not recorded (not a git clone): name the "
            "version of the pipeline you ran."
        )
    seed = manifest.get("seed", facts.augment.seed if facts.augment else None)
    if seed is not None:
        sentences.append(
            f"Seed {seed} fixes the splits, the augmentation and the initialisation, not the "
            "order in which the arithmetic is summed: another CPU (with or without bfloat16 "
            "instructions), a GPU or other library versions can train other weights from the "
            "same seed, and so move figures beyond their intervals (which cover drawing other "
            "test images, not training again) and reorder the models."
        )
        sentences += _precision_notes(facts)
        if not _in_series(facts):
            facts.checks.append(
                "These figures come from a single seed: "
                f"`{_seeds_command(command, profile, int(seed))}` gives each metric's mean and "
                "standard deviation over three seeds, which a paper should report."
            )
    return "**Software and reproduction.** " + " ".join(sentences) if sentences else ""


# The packages whose work the text names beyond TensorFlow (helpers.run.runner.PACKAGES
# records them in the manifest): their versions belong in it.
RELIED_ON = (
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "albumentations",
    "opencv-python-headless",
    "pillow",
    "ImageHash",
    "krippendorff",
)

# Why a model's precision depends on the machine (helpers.train.fit: bfloat16 where the CPU
# has the instructions, float16 on a GPU), keyed by (precision set, precision used, on a GPU).
_PRECISION_WORDS = {
    ("bfloat16", "bfloat16", False): "trained in mixed bfloat16 precision, as this CPU has "
    "bfloat16 instructions; a CPU without them trains {it} in float32",
    ("bfloat16", "float32", False): "trained in float32, as this CPU has no bfloat16 "
    "instructions; a CPU with them trains {it} in mixed bfloat16 precision",
    ("bfloat16", "bfloat16", True): "trained in mixed bfloat16 precision on the GPU; a CPU "
    "without bfloat16 instructions trains {it} in float32",
    ("auto", "float16", True): "trained in mixed float16 precision on the GPU; a CPU trains "
    "{it} in float32",
}


def _precision_notes(facts: _Run) -> list[str]:
    """ "vgg16 trained in mixed bfloat16 precision, as this CPU has bfloat16 instructions; a
    CPU without them trains it in float32.": each precision that another machine changes."""
    groups: dict[str, list[str]] = {}
    for name in facts.models:
        card = facts.cards.get(name) or {}
        used = str(card.get("mixed_precision") or "")
        used = "bfloat16" if "bfloat16" in used else "float16" if "float16" in used else "float32"
        setting = (card.get("parameters") or {}).get("mixed_precision")
        if setting is None:  # a card that does not say what was asked: what was used
            setting = "bfloat16" if used == "bfloat16" else "auto"
        gpu = bool((card.get("machine") or {}).get("gpus"))
        words = _PRECISION_WORDS.get((str(setting), used, gpu))
        if words:
            groups.setdefault(words, []).append(name)
    return [
        f"{_join(names)} {words.format(it='it' if len(names) == 1 else 'them')}."
        for words, names in groups.items()
    ]


def _in_series(facts: _Run) -> bool:
    """Whether the run is one of a `--seeds` or `--folds` series, whose summary gives the
    spread over its runs."""
    if isinstance(facts.manifest.get("fold"), dict):
        return True
    root = facts.run.root.resolve()
    return root in series_members(root.parent)


def _profile_name(facts: _Run) -> str | None:
    """The profile the run used: the manifest's, else notebook 01's record."""
    profile = facts.manifest.get("profile")
    if isinstance(profile, Mapping):
        profile = profile.get("name")
    if not profile and facts.run.settings.is_file():
        profile = read_json(facts.run.settings).get("profile")
    return str(profile) if profile else None


def _portable(command: str, profile: str | None = None) -> str:
    """The command with this machine's folders taken out of its paths (paths.shown), as a
    reader elsewhere would type it, naming its profile where it left it to the default."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out = []
    for word in words:
        option, equals, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if os.path.isabs(value):
            value = paths.shown(value)
        out.append(f"{option}{equals}{value}")
    if profile and out and not any(w == "--profile" or w.startswith("--profile=") for w in out):
        out[1:1] = ["--profile", profile]
    return shlex.join(out)


def _seeds_command(command: str | None, profile: str | None, seed: int) -> str:
    """The command that repeats the run over three seeds, this one first, into a new folder."""
    try:
        words = shlex.split(_portable(command, profile)) if command else []
    except ValueError:  # a command that does not parse: the profile's alone
        words = []
    if not words:
        words = ["./run_all.sh", *(["--profile", profile] if profile else [])]
    kept = without_options(words, {"--run-dir", "--seed", "--only"}, {"--resume"})
    return shlex.join([*kept, "--seeds", ",".join(str(seed + i) for i in range(3))])


def _join(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    items = [str(i) for i in items]
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
