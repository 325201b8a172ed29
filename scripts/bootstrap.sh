#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install everything.
# Idempotent: a stamp records what was installed, so a second call takes a second.
# Usage: scripts/bootstrap.sh            (sourced or executed; prints the venv python path last)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AFFECT_VENV:-$root/.venv}"
tf_version="2.21.0"
py="${PYTHON:-python3}"

say() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  # PYTHON makes the environment; once made, its own python runs everything.
  command -v "$py" >/dev/null || { say "error: $py not found; install Python 3.11+ first."; exit 1; }
  # The pinned numpy, pandas, keras, scipy, scikit-learn, pillow and pyarrow need 3.11+:
  # say so now, not half-way through pip.
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    found="$("$py" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)"
    say "error: Python 3.11 or newer is needed, $py is $found; install 3.11+ and run again (or set PYTHON=/path/to/python3.11)."
    exit 1
  fi
  say "creating virtual environment in $venv"
  "$py" -m venv "$venv" || {
    say "error: could not create a virtual environment (on Debian/Ubuntu: apt-get install python3-venv)."
    exit 1; }
fi
vpy="$venv/bin/python"

# The stamp names what was installed from: the pinned requirements and the package metadata.
# It does not name the TensorFlow flavour, so a second call finds it unchanged and skips pip.
stamp="$venv/.affect-stamp"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -c1-16)"
log="$venv/.affect-install.log"
# pip's own output goes to the log; on a failure its last lines are shown, with the log's path.
pip_install() {
  if ! "$vpy" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
    tail -n 25 "$log" >&2
    say "error: pip install $* failed; the whole log is $log"
    exit 1
  fi
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "environment up to date ($venv)"
else
  : > "$log"
  say "installing packages into $venv (first run: a few minutes; pip's log: $log)"
  # Which TensorFlow: leave a working one alone (Colab, a user's own CUDA build), else by GPU.
  if "$vpy" -c "import tensorflow" >/dev/null 2>&1; then
    say "TensorFlow already installed in the environment; leaving it alone"
  else
    if [ "$(uname -s)" = "Darwin" ]; then
      tf_spec="tensorflow==$tf_version"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      tf_spec="tensorflow[and-cuda]==$tf_version"
    else
      tf_spec="tensorflow-cpu==$tf_version"
    fi
    say "TensorFlow flavour: $tf_spec"
    pip_install "$tf_spec"
  fi
  pip_install -r "$root/requirements.txt"
  pip_install --no-deps -e "$root"
  # The notebooks name the kernel "python3"; point it at this environment.
  "$vpy" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (facial affect)" >>"$log" 2>&1
  echo "$want" > "$stamp"
  say "environment ready"
fi
# ./run_tests.sh asks for the test-only packages too (AFFECT_TEST_EXTRAS=1), with their own stamp,
# so run_all.sh and run_tests.sh do not undo each other's installs.
if [ "${AFFECT_TEST_EXTRAS:-0}" = 1 ]; then
  test_stamp="$venv/.affect-stamp-tests"
  test_want="$(sha256sum < "$root/requirements-tests.txt" | cut -c1-16)"
  if [ ! -f "$test_stamp" ] || [ "$(cat "$test_stamp")" != "$test_want" ]; then
    say "installing the test-only packages (requirements-tests.txt)"
    pip_install -r "$root/requirements-tests.txt"
    echo "$test_want" > "$test_stamp"
  fi
fi
echo "$vpy"
