"""Command lines taken apart: the runner's repeat and resume commands and the methods text's
seeds command drop options the same way, so the two cannot part."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def without_options(
    argv: Sequence[str], options: Collection[str], flags: Collection[str]
) -> list[str]:
    """argv less the named options (with their values, as `--x v` or `--x=v`) and flags."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif arg not in flags and arg.partition("=")[0] not in options:
            kept.append(arg)
    return kept
