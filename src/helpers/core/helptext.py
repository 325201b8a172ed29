"""How the project's commands lay out --help: every option's default said, and the description
and examples kept as written, so a reader need not open the README to learn either."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help with `(default: X)` after each option whose text does not say its
    default already; flags (off unless given) and options without a default are left as they
    are. An option needs help text for its default to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        """The option's help, its default appended where it has one worth saying."""
        text = action.help or ""
        flag = action.nargs == 0  # store_true/false, count: off (or on) unless given
        unsaid = action.default in (None, argparse.SUPPRESS, "", [])
        if not action.option_strings or flag or unsaid or "default" in text:
            return text
        return f"{text} (default: %(default)s)"
