#!/usr/bin/env bash
# Fresh clone -> virtual environment -> demo data -> every notebook -> a new run folder.
# Options: --profile smoke|cpu|gpu  --data SOURCE  --test-data SOURCE  --models a,b
#          --run-dir DIR  --seed N  --seeds 0,1,2  --folds K  --fold I/K  --set NAME=VALUE
#          --resume  --only 01,02  --log-output
#          (--help for details)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
vpy="$("$root/scripts/bootstrap.sh")"
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
# This checkout's code, whichever checkout a shared environment was installed from.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
# oneDNN kernels on CPUs with AVX2 alone too (see src/helpers/__init__.py); =0 turns them off.
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-1}"
exec "$vpy" -m helpers.run.runner "$@"
