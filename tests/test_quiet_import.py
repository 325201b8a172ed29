"""TensorFlow's import notices stay off the terminal; everything else written to stderr stays."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

from helpers.core import quiet_import

ROOT = Path(__file__).resolve().parents[1]


def _stderr_of(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_ENABLE_ONEDNN_OPTS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_importing_tensorflow_after_helpers_prints_no_onednn_notice():
    bare = _stderr_of("import tensorflow")
    assert "oneDNN custom operations are on" in bare  # what a plain import prints
    quiet = _stderr_of(
        "import sys, helpers, tensorflow as tf; "
        "print('still here', tf.constant(2.0).numpy(), file=sys.stderr)"
    )
    assert "oneDNN" not in quiet and "absl::InitializeLog" not in quiet
    assert "still here 2.0" in quiet


def test_stderr_without_keeps_every_other_line(capfd):
    with quiet_import.stderr_without():
        os.write(2, b"kept one\n")
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\n")
        os.write(2, b"kept two\n")
    assert capfd.readouterr().err == "kept one\nkept two\n"


def test_the_first_import_of_a_named_module_is_filtered_then_the_hook_leaves(
    tmp_path, monkeypatch, capfd
):
    (tmp_path / "noisy_module.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n')\n"
        "os.write(2, b'a real problem\\n')\n"
        "VALUE = 7\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "noisy_module", raising=False)
    quiet_import.install(["noisy_module"])
    module = importlib.import_module("noisy_module")
    assert module.VALUE == 7
    assert capfd.readouterr().err == "a real problem\n"
    assert type(module.__loader__).__name__ == "SourceFileLoader"  # its own loader, unwrapped
    assert not any("noisy_module" in getattr(f, "_names", ()) for f in sys.meta_path)
    monkeypatch.delitem(sys.modules, "noisy_module")
