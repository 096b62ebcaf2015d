#!/usr/bin/env bash
# Tiny recipe. Stages: prepare (synthetic audio), train, export, eval.
#   recipes/tiny/run.sh                 # all stages
#   recipes/tiny/run.sh train export    # chosen stages
# Environment: PY (python to use), OUT (run directory), DATA (corpus directory), EXTRA (more train args).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
CONFIG=recipes/tiny/config.yaml
DATA=${DATA:-out/tiny/data}
OUT=${OUT:-out/tiny/run}
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(prepare train export eval)
for stage in "${stages[@]}"; do
  echo "== stage: $stage"
  case "$stage" in
    prepare) "$PY" recipes/tiny/prepare.py "$DATA" ;;
    train)   "$PY" -m waveflow_py train "$CONFIG" --set data.root="$DATA" --out "$OUT" ${EXTRA:-} ;;
    export)  "$PY" -m waveflow_py train "$CONFIG" --set data.root="$DATA" --out "$OUT" --export-only ;;
    eval)    "$PY" -m waveflow_py eval --model "$OUT/release" --data "$DATA/dev" --output "$OUT/eval" ;;
    *) echo "unknown stage '$stage' (expected prepare, train, export, eval)" >&2; exit 2 ;;
  esac
done
