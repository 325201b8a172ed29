"""`.ci/run` installs every system program a test is skipped without, so CI skips none of them."""

import os
import re
import subprocess
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


def _run_install(tmp_path: Path, apt_get: str) -> tuple[str, str]:
    """Run .ci/run's install function as root with a stand-in apt-get; its output, and what
    the stand-in saw (its environment's DEBIAN_FRONTEND and its stdin)."""
    script = ROOT.joinpath(".ci", "run").read_text()
    function = re.search(r"^install\(\) \{.*?^\}$", script, flags=re.MULTILINE | re.DOTALL)
    assert function is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    record = f'echo "$DEBIAN_FRONTEND $(readlink /proc/self/fd/0)" >> {seen}'
    for name, body in (("id", "echo 0"), ("apt-get", f"{record}\n{apt_get}")):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    shell = f"{function.group(0)}\ninstall no-such-program-here 'a test' some-package\n"
    done = subprocess.run(
        ["bash", "-c", shell], input="y\n", capture_output=True, text=True, check=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    return done.stdout, seen.read_text()


def test_apt_get_asks_nothing_and_its_output_is_shown_only_when_it_fails(tmp_path) -> None:
    out, seen = _run_install(tmp_path, "echo 'E: Unable to locate package some-package'; exit 100")
    assert set(seen.splitlines()) == {"noninteractive /dev/null"}  # install, update, install
    assert "[ci] could not install some-package: a test will be skipped" in out
    assert "[ci]   E: Unable to locate package some-package" in out


def test_a_working_apt_get_install_keeps_its_output_in_the_log(tmp_path) -> None:
    out, seen = _run_install(tmp_path, "echo 'Setting up some-package'")
    assert seen.splitlines() == ["noninteractive /dev/null"]
    assert "Setting up" not in out and "could not" not in out
