#!/usr/bin/env bash
# Tiny recipe. Stages: prepare (synthetic audio), train, export, eval.
#   recipes/tiny/run.sh                 # all stages
#   recipes/tiny/run.sh train export    # chosen stages
# Environment: PY (python to use), OUT (run directory), DATA (corpus directory), EXTRA (more train args).
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=recipes/tiny/config.yaml
DATA=${DATA:-out/tiny/data}
OUT=${OUT:-out/tiny/run}
source recipes/stages.sh
stage_prepare() { "$PY" recipes/tiny/prepare.py "$DATA"; }
stage_eval() { "$PY" -m waveflow_py eval --model "$OUT/release" --data "$DATA/dev" --output "$OUT/eval"; }
run_stages "$@"
