#!/usr/bin/env bash
# LJ Speech 1.1 (22.05 kHz, single speaker). Stages: prepare (check the local copy), train, export, eval.
#   LJSPEECH=/data/LJSpeech-1.1 recipes/ljspeech/run.sh
#   LJSPEECH=/data/LJSpeech-1.1 NPROC=8 recipes/ljspeech/run.sh train
# Environment: PY, CONFIG, LJSPEECH (required), OUT, NPROC (GPUs, via torchrun), EXTRA (more train args).
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${CONFIG:-recipes/ljspeech/config.yaml}
: "${LJSPEECH:?set LJSPEECH=/path/to/LJSpeech-1.1 (metadata.csv + wavs/)}"
DATA=$LJSPEECH
OUT=${OUT:-out/ljspeech}
source recipes/stages.sh
stage_prepare() { "$PY" recipes/ljspeech/prepare.py "$LJSPEECH"; }
stage_eval() {  # the dev split is the last 100 ids; evaluate on their files
  tail -n 100 <(cut -d'|' -f1 "$LJSPEECH/metadata.csv" | sort) | sed "s#^#$LJSPEECH/wavs/#; s#\$#.wav#" \
    > "$OUT/dev_files.txt"
  mkdir -p "$OUT/dev_wavs" && xargs -a "$OUT/dev_files.txt" ln -sf -t "$OUT/dev_wavs"
  "$PY" -m waveflow_py eval --model "$OUT/release" --data "$OUT/dev_wavs" --max-clips 20 --output "$OUT/eval"
}
run_stages "$@"
