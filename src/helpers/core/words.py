"""Counts in words as a person reads them: "1 epoch", "3 epochs", "1,200 faces"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n noun` with the noun plural unless n is 1 (thousands separated), so a printed count
    never says "1 epochs"; plural: where adding an s is wrong ("1 copy", "2 copies")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
