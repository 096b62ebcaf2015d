#!/usr/bin/env bash
# Single speaker (44.1 kHz files, trained at 22.05 kHz). Stages: prepare (check the corpus), train, export, eval.
#   recipes/single-speaker/run.sh                                        # base config, all stages
#   CONFIG=recipes/single-speaker/cpu-smoke.yaml recipes/single-speaker/run.sh train
#   CONFIG=recipes/single-speaker/gpu-bf16.yaml NPROC=8 recipes/single-speaker/run.sh train
# Environment: PY, CONFIG, DATA (corpus root, default ../shared/data/single-speaker-44k), OUT, NPROC, EXTRA.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${CONFIG:-recipes/single-speaker/config.yaml}
DATA=${DATA:-../shared/data/single-speaker-44k}
OUT=${OUT:-out/single-speaker}
source recipes/stages.sh
stage_prepare() { check_metadata; }  # nothing to convert: read in place, resampled on load
stage_eval() {
  "$PY" -m waveflow_py eval --model "$OUT/release" --data "$DATA/metadata.csv" --split dev \
    --max-clips 20 --output "$OUT/eval"
}
run_stages "$@"
