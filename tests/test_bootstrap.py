"""scripts/bootstrap.sh: a Python older than the pinned packages need is refused at once."""

from __future__ import annotations

import os
import subprocess
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
