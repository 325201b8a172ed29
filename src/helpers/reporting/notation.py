"""Numbers and symbols as a paper prints them: a minus sign for a negative number, an en dash
between the ends of a range ("to" where both ends are negative), ±, ×, →, powers of ten (10⁻⁶)
in Markdown, and their LaTeX forms.

One module, so the methods text and anything else written for a paper say -0.008 and 1e-06
alike, and the LaTeX of a symbol is the same wherever it appears.
"""

from __future__ import annotations

import re

from helpers.evaluation import comparison

MINUS = "\u2212"  # −, not the hyphen
EN_DASH = "\u2013"  # –, between the ends of a range
TIMES = "\u00d7"
PLUS_MINUS = "\u00b1"
NBSP = "\u00a0"  # a space no line breaks at: "T = 0.65", "1 ± 0.2"
_SUPERSCRIPTS = "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"  # ⁻⁰¹...⁹
_SUPERSCRIPT = str.maketrans("-0123456789", _SUPERSCRIPTS)
_PLAIN_DIGITS = str.maketrans(_SUPERSCRIPTS, "-0123456789")
POWER = re.compile("10([\u207b]?[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+)")

# Each symbol in LaTeX with no package beyond the README's (booktabs, graphicx, natbib).
LATEX_SYMBOLS = {
    PLUS_MINUS: r"$\pm$",
    TIMES: r"$\times$",
    MINUS: "$-$",
    "\u2192": r"$\rightarrow$",
    "\u2194": r"$\leftrightarrow$",
    "\u2032": "$'$",
    "\u00b0": r"$^{\circ}$",
    EN_DASH: "--",
    NBSP: "~",
}

# ASCII notation in recorded words (augmentation settings, a model's preprocessing), in order.
_PLAIN = (
    (re.compile(r"<->"), "\u2194"),
    (re.compile(r"->"), "\u2192"),
    (re.compile(r"(?<=\d) \+-(?=\d)"), f"{NBSP}{PLUS_MINUS}{NBSP}"),
    (re.compile(r"\+-"), PLUS_MINUS),
    (re.compile(r"(?<=\b[A-Za-z])'"), "\u2032"),
    (re.compile(r"(?<=[\w)\]]) - (?=[\w(\[])"), f"{NBSP}{MINUS}{NBSP}"),
    (re.compile(r"(?<=\d)-(?=\d)"), EN_DASH),
    (re.compile(r"(?<![\w)\]])-(?=\d)"), MINUS),
    (re.compile(r"(?<=\d)x(?=\d)"), TIMES),
    (re.compile(r"(?<= )x(?=[ (])"), TIMES),
    (re.compile(f" {TIMES} "), f"{NBSP}{TIMES}{NBSP}"),
    (re.compile(r"(?<=\d) deg\b"), "\u00b0"),
)


def fixed(value: float, digits: int = 3) -> str:
    """ "0.874", "−0.008": a minus sign, and a value that rounds to zero is 0.000, never
    −0.000."""
    return comparison.fixed(value, digits).replace("-", MINUS)


def span(low: float, high: float, digits: int = 3) -> str:
    """ "0.974–0.997", "−0.008–0.015": an en dash between the ends; "−0.075 to −0.024" where
    the upper end is negative too, since a dash before a minus sign reads as one mark."""
    upper = fixed(high, digits)
    joint = " to " if upper.startswith(MINUS) else EN_DASH
    return f"{fixed(low, digits)}{joint}{upper}"


def general(value: float) -> str:
    """ "0.001", "10⁻⁶", "5 × 10⁻⁵": the shortest form (:g), its exponent as a power of ten."""
    text = f"{value:g}"
    mantissa, marked, exponent = text.partition("e")
    if not marked:
        return text.replace("-", MINUS)
    power = "10" + str(int(exponent)).translate(_SUPERSCRIPT)
    if mantissa.lstrip("-") == "1":
        return ("-" in mantissa) * MINUS + power
    return f"{mantissa.replace('-', MINUS)}{NBSP}{TIMES}{NBSP}{power}"


def plain_notation(text: str) -> str:
    """ASCII notation (+-, ->, 3x3, 0.9-1.1, W - 1, 15 deg) in words the run recorded, as a
    paper writes it (±, →, 3×3, 0.9–1.1, W − 1, 15°)."""
    for pattern, symbol in _PLAIN:
        text = pattern.sub(symbol, text)
    return text


def latex_power(exponent: str) -> str:
    """The exponent of 10⁻⁶ ("⁻⁶") as LaTeX math: $10^{-6}$."""
    return "$10^{" + exponent.translate(_PLAIN_DIGITS) + "}$"
