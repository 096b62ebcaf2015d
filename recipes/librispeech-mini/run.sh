#!/usr/bin/env bash
# LibriSpeech-mini (16 kHz, multi-speaker). Stages: prepare (check the corpus), train, export, eval.
#   recipes/librispeech-mini/run.sh                                        # base config, all stages
#   CONFIG=recipes/librispeech-mini/cpu-smoke.yaml recipes/librispeech-mini/run.sh train
#   CONFIG=recipes/librispeech-mini/gpu-bf16.yaml NPROC=8 recipes/librispeech-mini/run.sh train
# Environment: PY, CONFIG, DATA (corpus root, default ../shared/data/librispeech-mini), OUT, NPROC, EXTRA.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${CONFIG:-recipes/librispeech-mini/config.yaml}
DATA=${DATA:-../shared/data/librispeech-mini}
OUT=${OUT:-out/librispeech-mini}
source recipes/stages.sh
stage_prepare() { check_metadata; }  # nothing to convert: the corpus is read in place
stage_eval() {
  "$PY" -m waveflow_py eval --model "$OUT/release" --data "$DATA/metadata.csv" --split dev \
    --max-clips 20 --output "$OUT/eval"
}
run_stages "$@"
