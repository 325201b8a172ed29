"""The LaTeX a run's tables are written in: text escaped so that it prints as written in any
font encoding, numbers with a true minus sign and never -0.000, and booktabs tables laid out to
be read at full size (no box scaled to the line: values on one row, their intervals or spreads
in small type on the next, notes as marks explained under the table)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from helpers.evaluation.comparison import fixed

# LaTeX's special characters as text; the methods text escapes its prose with the same table.
SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\^{}",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "%": r"\%",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "`": r"\textasciigrave{}",
    "±": r"$\pm$",
}
_CODE = re.compile(r"`([^`]+)`")
MARKS = "abcdefghijklmnopqrstuvwxyz"


def latex_escape(text: str) -> str:
    """Plain text with LaTeX's special characters escaped, and `--` kept two hyphens: in the
    T1 encoding most papers load, TeX would join them into an en dash (--set, --run-dir)."""
    escaped = "".join(SPECIAL.get(c, c) for c in text)
    return re.sub(r"-(?=-)", "-{}", escaped)


def texttt(text: str) -> str:
    """Text in the typewriter font, escaped: a command or a profile's name as typed."""
    return r"\texttt{" + latex_escape(text) + "}"


def inline(text: str) -> str:
    """A line of a table's Markdown note in LaTeX: `code` as \\texttt, the rest escaped (a
    backtick is an opening quote in LaTeX, so `smoke` would print as two of them)."""
    pieces = _CODE.split(text)
    return "".join(texttt(p) if i % 2 else latex_escape(p) for i, p in enumerate(pieces))


def number(value: float | None, digits: int = 3) -> str:
    """value to `digits` decimals in text mode, never -0.000 (comparison.fixed, as every table
    writes it) and a negative one with a minus sign rather than a hyphen; "" for a missing
    value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = fixed(float(value), digits)
    return "$-$" + text[1:] if text.startswith("-") else text


def label(kind: str, name: str) -> str:
    """`tab:<kind>-<name>` with the name reduced to letters, digits and hyphens, so that the
    tables of two runs in one paper have labels of their own."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"tab:{kind}-{slug}" if slug else f"tab:{kind}"


@dataclass
class Notes:
    """Notes that would widen a cell, as marks (a, b, ...) explained under the table, one mark
    per distinct note."""

    texts: list[str] = field(default_factory=list)

    def _letter(self, note: str) -> str:
        """The note's letter, given in the order the notes first appear."""
        if note not in self.texts:
            self.texts.append(note)
        return MARKS[self.texts.index(note) % len(MARKS)]

    def mark(self, notes: list[str]) -> str:
        """The superscript mark of a cell's notes (LaTeX), "" for none."""
        letters = ",".join(self._letter(note) for note in notes)
        return r"$^{\mathrm{" + letters + "}}$" if letters else ""

    def lines(self) -> tuple[str, ...]:
        """Each mark with its note, escaped, for under the table."""
        return tuple(self.mark([text]) + " " + latex_escape(text) for text in self.texts)


def small(cell: str) -> str:
    """A cell in \\footnotesize: an interval or spread on the row under its value."""
    return r"{\footnotesize " + cell + "}" if cell else ""


@dataclass(frozen=True)
class Layout:
    """A table's columns: titles (LaTeX) and alignment (l for text, r for numbers), and the
    groups over them as (title, number of columns); the leading columns have no group."""

    titles: list[str]
    align: str
    groups: list[tuple[str, int]]


def _header(layout: Layout) -> list[str]:
    """The group row with a rule under each group, then the column titles."""
    if not layout.groups:
        return [" & ".join(layout.titles) + r" \\"]
    lead = len(layout.titles) - sum(n for _, n in layout.groups)
    cells, rules, start = [""] * lead, [], lead + 1
    for title, n in layout.groups:
        cells += (
            [title if n == 1 else rf"\multicolumn{{{n}}}{{c}}{{{title}}}"] if title else [""] * n
        )
        if title:
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    return [" & ".join(cells) + r" \\", " ".join(rules), " & ".join(layout.titles) + r" \\"]


def booktabs(
    layout: Layout,
    rows: list[list[str]],
    caption: str,
    kind: str,
    name: str,
    notes: tuple[str, ...] = (),
    breaks: tuple[int, ...] = (),
) -> str:
    """`<kind>.tex`: a booktabs table at the document's size less one step (\\small), never
    scaled, in `table*` so that a two-column page gives it the whole width, labelled
    `tab:<kind>-<name>`; `breaks` are the rows after which a model's block ends (a little
    space, not a rule); notes go under the table in \\footnotesize."""
    tab_label = label(kind, name)
    body = [
        " & ".join(row) + r" \\" + (r"\addlinespace" if i in breaks and i < len(rows) - 1 else "")
        for i, row in enumerate(rows)
    ]
    lines = [
        rf"% Needs \usepackage{{booktabs}}. Refer to it as \ref{{{tab_label}}}.",
        "% Set at full size: table* spans both columns of a two-column page; a one-column page",
        r"% narrower than the table takes it sideways: \usepackage{pdflscape}, then",
        rf"% \begin{{landscape}}\input{{{kind}}}\end{{landscape}}.",
        r"\begin{table*}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        r"\setlength{\belowcaptionskip}{6pt}",  # the caption is above: a gap before the rule
        r"\caption{" + caption + "}",
        r"\label{" + tab_label + "}",
        r"\begin{tabular}{" + layout.align + "}",
        r"\toprule",
        *_header(layout),
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if notes:
        lines += [r"\par\smallskip", r"{\raggedright\footnotesize " + "; ".join(notes) + r".\par}"]
    return "\n".join([*lines, r"\end{table*}", ""])
