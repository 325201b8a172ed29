"""scripts/bootstrap.sh: a Python older than the pinned packages need is refused at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.core.paths import REPO_ROOT

FAKE_310 = """#!/bin/sh
case "$2" in
  *version_info*) exit 1 ;;
  *python_version*) echo 3.10.12 ;;
  *) echo "unexpected call: $*" >&2; exit 3 ;;
esac
"""


def test_python_older_than_3_11_is_refused_before_anything_is_installed(tmp_path: Path) -> None:
    fake = tmp_path / "python3.10"
    fake.write_text(FAKE_310)
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "bootstrap.sh")],
        env={**os.environ, "PYTHON": str(fake), "AFFECT_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Python 3.11 or newer is needed" in done.stderr and "3.10.12" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not venv.exists()


FAKE_VENV_PYTHON = """#!/bin/sh
# Stands in for a virtual environment's python: records pip calls, "installs" TensorFlow.
here="$(dirname "$0")"
if [ "$1" = "-c" ]; then
  case "$2" in *tensorflow*) [ -f "$here/tf-installed" ]; exit $? ;; esac
  exit 0
fi
if [ "$1 $2" = "-m pip" ]; then
  shift 2
  echo "$*" >> "$here/pip-calls"
  echo "Collecting something (pip chatter)"
  case "$*" in *tensorflow*) touch "$here/tf-installed" ;; esac
  case "$*" in *requirements*)
    [ -z "$FAIL_REQUIREMENTS" ] || { echo "ERROR: no matching distribution for keras"; exit 1; } ;;
  esac
  exit 0
fi
exit 0
"""


def _fake_venv(tmp_path: Path) -> Path:
    """A venv folder whose python is FAKE_VENV_PYTHON, so bootstrap runs without the network."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(FAKE_VENV_PYTHON)
    python.chmod(0o755)
    return tmp_path / "venv"


def _bootstrap(venv: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "bootstrap.sh")],
        env={**os.environ, "AFFECT_VENV": str(venv), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_run_installs_nothing_and_pip_chatter_stays_in_the_log(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    first = _bootstrap(venv)
    assert first.returncode == 0 and first.stdout.strip() == str(venv / "bin" / "python")
    calls = (venv / "bin" / "pip-calls").read_text().splitlines()
    assert any("tensorflow" in c for c in calls) and any("requirements.txt" in c for c in calls)
    assert "Collecting" not in first.stderr and len(first.stderr.strip().splitlines()) <= 4
    assert "Collecting" in (venv / ".affect-install.log").read_text()

    second = _bootstrap(venv)  # TensorFlow is now "preinstalled": the stamp must still match
    assert second.returncode == 0 and "environment up to date" in second.stderr
    assert (venv / "bin" / "pip-calls").read_text().splitlines() == calls


def test_a_failed_pip_install_shows_its_last_lines_and_the_log(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    done = _bootstrap(venv, FAIL_REQUIREMENTS="1")
    assert done.returncode == 1
    assert "no matching distribution for keras" in done.stderr
    assert f"the whole log is {venv / '.affect-install.log'}" in done.stderr
    assert not (venv / ".affect-stamp").exists()


def test_test_extras_install_once_and_apart_from_the_main_packages(tmp_path: Path) -> None:
    """./run_tests.sh adds requirements-tests.txt (a second Keras backend); ./run_all.sh does
    not, and neither undoes the other's stamp."""
    venv = _fake_venv(tmp_path)
    plain = _bootstrap(venv)
    assert plain.returncode == 0
    calls = (venv / "bin" / "pip-calls").read_text().splitlines()
    assert not any("requirements-tests.txt" in c for c in calls)
    tests = _bootstrap(venv, AFFECT_TEST_EXTRAS="1")
    assert tests.returncode == 0 and "environment up to date" in tests.stderr
    added = (venv / "bin" / "pip-calls").read_text().splitlines()[len(calls) :]
    assert len(added) == 1 and "requirements-tests.txt" in added[0]
    again = [_bootstrap(venv, AFFECT_TEST_EXTRAS="1"), _bootstrap(venv)]
    assert all(d.returncode == 0 for d in again)
    assert len((venv / "bin" / "pip-calls").read_text().splitlines()) == len(calls) + 1


def test_both_commands_run_their_own_checkouts_code(tmp_path: Path) -> None:
    """A virtual environment shared by two checkouts has one of them installed; each command
    puts its own src/ first, so a clone runs the code it holds."""
    scripts = tmp_path / "clone" / "scripts"
    scripts.mkdir(parents=True)
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\necho "PYTHONPATH=$PYTHONPATH"\n')
    (scripts / "bootstrap.sh").write_text(f'#!/bin/sh\necho "{python}"\n')
    help_text = REPO_ROOT / "scripts" / "run_all_help.txt"
    (scripts / help_text.name).write_text(help_text.read_text())
    for path in (python, scripts / "bootstrap.sh"):
        path.chmod(0o755)
    for command in ("run_all.sh", "run_tests.sh"):
        copy = tmp_path / "clone" / command
        copy.write_text((REPO_ROOT / command).read_text())
        copy.chmod(0o755)
        done = subprocess.run(
            ["bash", str(copy), "--resume" if command == "run_all.sh" else "x"],
            env={**os.environ, "PYTHONPATH": "/elsewhere/src"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.strip() == f"PYTHONPATH={tmp_path / 'clone' / 'src'}:/elsewhere/src"


def test_python_is_needed_only_to_create_the_environment(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    assert _bootstrap(venv).returncode == 0
    done = _bootstrap(venv, PYTHON=str(tmp_path / "gone" / "python3.11"))
    assert done.returncode == 0 and done.stdout.strip() == str(venv / "bin" / "python")
    fresh = _bootstrap(tmp_path / "fresh venv", PYTHON=str(tmp_path / "gone" / "python3.11"))
    assert fresh.returncode == 1 and "python3.11 not found" in fresh.stderr


def _run_all(*args: str, venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "run_all.sh"), *args],
        env={**os.environ, "AFFECT_VENV": str(venv), "PYTHON": str(venv / "no python")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_all_help_answers_at_once_in_a_fresh_clone(tmp_path: Path) -> None:
    venv = tmp_path / "no venv yet"
    for flag in ("--help", "-h"):
        done = _run_all("--profile", "smoke", flag, venv=venv)
        assert done.returncode == 0 and done.stderr == ""
        assert done.stdout == (REPO_ROOT / "scripts" / "run_all_help.txt").read_text()
        assert done.stdout.startswith("usage: run_all.sh [-h]") and "examples:" in done.stdout
    assert not venv.exists()


def test_run_all_refuses_an_unknown_option_before_any_setup(tmp_path: Path) -> None:
    venv = tmp_path / "no venv yet"
    done = _run_all("--profile", "smoke", "--seed", "-1", "--set=a=1", "--prfile", "x", venv=venv)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("usage: run_all.sh [-h]")
    assert done.stderr.splitlines()[-1] == "run_all.sh: error: unrecognized arguments: --prfile x"
    assert not venv.exists()


def test_the_help_run_all_prints_before_any_setup_is_the_runners(monkeypatch, capsys) -> None:
    """scripts/run_all_help.txt is what the runner's argparse prints at 100 columns; after
    a change to its options: COLUMNS=100 python -m helpers.run.runner --help > that file."""
    import pytest

    from helpers.run import runner

    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        runner.parse_args(["--help"])
    assert capsys.readouterr().out == (REPO_ROOT / "scripts" / "run_all_help.txt").read_text()


def test_the_environment_imports_helpers_from_any_folder_as_the_readme_says(tmp_path: Path) -> None:
    """A script of the user's own, outside the clone, run with the environment's Python: the
    setup's editable install finds `helpers`, and the README says so, and what else to do."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "import helpers; print(helpers.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parts[-3:] == ("src", "helpers", "__init__.py")
    bootstrap = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text()
    assert 'pip_install --no-deps -e "$root"' in bootstrap
    readme = " ".join((REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    for words in (
        "`.venv/bin/python my_script.py` imports `helpers` from any folder",
        "`pip install -r <clone>/requirements.txt -e <clone>`",
        "`PYTHONPATH=<clone>/src` picks one",
    ):
        assert words in readme
