"""`.ci/run` installs every system program a test is skipped without, so CI skips none of them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _programs_tests_skip_without() -> set[str]:
    """Programs named in a test's `shutil.which(...)` skip condition, and Chromium's finder."""
    found: set[str] = set()
    for path in ROOT.joinpath("tests").rglob("*.py"):
        text = path.read_text()
        if "skip" not in text:
            continue
        found.update(re.findall(r"shutil\.which\(\"([\w.-]+)\"\)", text))
        if "find_chromium() is None" in text:
            found.add("chromium")
    return found


def _programs_ci_installs() -> set[str]:
    script = ROOT.joinpath(".ci", "run").read_text()
    return set(re.findall(r"^\s*install ([\w.-]+) ", script, flags=re.MULTILINE))


def test_the_tests_skip_without_chromium_pdflatex_and_bibtex() -> None:
    assert {"chromium", "pdflatex", "bibtex"} <= _programs_tests_skip_without()


def test_ci_installs_every_program_a_test_needs() -> None:
    installed = _programs_ci_installs()
    # bibtex comes in texlive-latex-base with pdflatex
    missing = _programs_tests_skip_without() - installed - {"bibtex"}
    assert not missing, f".ci/run does not install {sorted(missing)}"
    assert "pdflatex" in installed and "chromium" in installed
    assert "texlive-latex-base" in ROOT.joinpath(".ci", "run").read_text()
