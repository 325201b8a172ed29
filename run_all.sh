#!/usr/bin/env bash
# Fresh clone -> virtual environment -> demo data -> every notebook -> a new run folder.
# Options: --profile smoke|cpu|gpu  --data SOURCE  --test-data SOURCE  --models a,b
#          --run-dir DIR  --seed N  --seeds 0,1,2  --folds K  --fold I/K  --set NAME=VALUE
#          --resume  --only 01,02  --log-output
#          (--help for details)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# What argparse answers without any package, answered before the setup (minutes on first use):
# --help, and an option it does not know. The text is the runner's --help (tests compare them).
help="$root/scripts/run_all_help.txt"
usage="$(sed '/^$/q' "$help")"  # the usage lines, which name every option
flags=" $(grep -o '\[--[a-z-]*\]' <<<"$usage" | tr -d '[]' | tr '\n' ' ')"
valued=" $(grep -o '\[--[a-z-]* ' <<<"$usage" | tr -d '[ ' | tr '\n' ' ')"
unknown="" value=0
for arg in "$@"; do
  if [ "$value" = 1 ]; then value=0; continue; fi
  case "$arg" in
    -h|--help) cat "$help"; exit 0 ;;
    --) break ;;
  esac
  if [[ "$flags" == *" $arg "* ]]; then continue; fi
  if [[ "$valued" == *" $arg "* ]]; then value=1; continue; fi
  if [[ "$arg" == --*=* && "$valued" == *" ${arg%%=*} "* ]]; then continue; fi
  unknown="$unknown $arg"
done
if [ -n "$unknown" ]; then
  printf '%s\nrun_all.sh: error: unrecognized arguments:%s\n' "$usage" "$unknown" >&2
  exit 2
fi
vpy="$("$root/scripts/bootstrap.sh")"
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
# This checkout's code, whichever checkout a shared environment was installed from.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
# oneDNN kernels on CPUs with AVX2 alone too (see src/helpers/__init__.py); =0 turns them off.
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-1}"
exec "$vpy" -m helpers.run.runner "$@"
