#!/usr/bin/env bash
# Unit tests + nbval regression checks of every notebook in the smoke profile.
# Sets itself up from nothing (virtual environment, packages, demo data) like run_all.sh.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k reader   or   ./run_tests.sh tests/
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
# The script's own usage, before any setup: pytest's help is `.venv/bin/python -m pytest --help`.
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  cat <<'USAGE'
usage: ./run_tests.sh [PYTEST ARGUMENTS...]

Sets up .venv first where needed, like ./run_all.sh, with the test-only packages of
requirements-tests.txt too (JAX's CPU build, pytest-xdist): this script asks scripts/bootstrap.sh
for them with AFFECT_TEST_EXTRAS=1.

Without arguments: the code checks (ruff lint and format, the import layers of
docs/architecture.md, mypy on helpers.core and helpers.inference; one line when they pass), then
every test in tests/ and every notebook under nbval in the smoke profile (cells marked
# NBVAL_CHECK_OUTPUT must reproduce their committed output), shared out over the cores.

With arguments: pytest alone, in one process, on what they name; no checks, no notebooks.

environment:
  AFFECT_TEST_WORKERS=N   pytest-xdist workers for the whole run (default: every core, up to 4;
                          1 for one worker, 0 for none: in this process)
  AFFECT_VENV=DIR         the virtual environment to set up and use (default: .venv)
  TF_ENABLE_ONEDNN_OPTS=0 turn TensorFlow's oneDNN kernels off (default 1)

examples:
  ./run_tests.sh                                  # checks, unit tests and notebooks (11-13 min, 2 cores)
  ./run_tests.sh tests/test_records.py            # one file (and sets up .venv on first use)
  ./run_tests.sh tests/test_predict.py -k video -x  # any pytest arguments
  ./run_tests.sh tests/ -n 2                      # unit tests only, on two workers
  AFFECT_TEST_WORKERS=1 ./run_tests.sh            # the whole run on one worker
USAGE
  exit 0
fi
vpy="$(AFFECT_TEST_EXTRAS=1 scripts/bootstrap.sh)"
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0
# This checkout's code, whichever checkout a shared environment was installed from.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
# oneDNN kernels on CPUs with AVX2 alone too (see src/helpers/__init__.py).
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-1}"
# Code checks first (seconds): style and format (ruff), the layers contract (import-linter,
# docs/architecture.md) and types (mypy on core and inference). One line when they pass.
check() {
  local name="$1"; shift
  local out
  if ! out="$("$@" 2>&1)"; then
    printf '%s\n[checks] %s failed: %s\n' "$out" "$name" "$*" >&2
    exit 1
  fi
}
bin="$(dirname "$vpy")"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  check "ruff lint" "$bin/ruff" check --quiet .
  check "ruff format" "$bin/ruff" format --check --quiet .
  check "import layers" "$bin/lint-imports" --no-cache
  check "types" "$bin/mypy" --no-incremental
  echo "[checks] ruff, import layers and types: ok"
  # nbval runs parameterised copies (smoke profile, a scratch run folder) of notebooks/*.ipynb;
  # a second demo set (another seed) is the external test set for cross-dataset evaluation.
  "$vpy" -m helpers.synthetic --out build/nbval-data/demo_seed1.zip --n 64 --seed 1 --size 96 --force --quiet >/dev/null
  "$vpy" -m helpers.run.nbtools prepare --profile smoke --out build/nbval --test-data build/nbval-data/demo_seed1.zip >/dev/null
  # Every core, up to 4 (AFFECT_TEST_WORKERS to choose; 0 runs in this process): pytest-xdist
  # gives each worker a whole test file, and one worker all the notebooks, in order
  # (tests/conftest.py). On 2 cores: 8-16 min, against 23 in one process. The notebooks come
  # first: the work unit of the most items starts first.
  workers="${AFFECT_TEST_WORKERS:-$("$vpy" -c 'import os; n = os.cpu_count() or 1; print(min(n, 4) if n > 1 else 0)')}"
  targets=(-n "$workers" build/nbval tests)
fi
exec "$vpy" -m pytest --nbval-lax --nbval-current-env -q "${targets[@]}"
