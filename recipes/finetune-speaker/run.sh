#!/usr/bin/env bash
# Fine-tune a release on one speaker and report dev metrics before and after (waveflow eval).
#   recipes/finetune-speaker/run.sh                        # prepare, eval-before, train, eval (after)
#   RELEASE=path/to/release MINUTES=60 recipes/finetune-speaker/run.sh
#   recipes/finetune-speaker/run.sh train                  # (again: resumes the run)
# Environment: PY, RELEASE (default pretrained/universal-16k), DATA (corpus root, default
# ../shared/data/single-speaker-44k), OUT (default out/finetune-speaker), MINUTES, CLIPS (dev clips, 10),
# EXTRA (more `waveflow train` arguments, e.g. "--set train.num_threads=1").
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${CONFIG:-recipes/finetune-speaker/config.yaml}
RELEASE=${RELEASE:-pretrained/universal-16k}
DATA=${DATA:-../shared/data/single-speaker-44k}
OUT=${OUT:-out/finetune-speaker}
CLIPS=${CLIPS:-10}
source recipes/stages.sh
minutes=()
[ -n "${MINUTES:-}" ] && minutes=(--minutes "$MINUTES")

stage_prepare() {
  check_metadata
  [ -f "$RELEASE/config.json" ] || { echo "no release at $RELEASE (set RELEASE=...)" >&2; exit 1; }
  if [ ! -d "$OUT/before" ]; then  # the release as it is, on this speaker's dev clips
    "$PY" -m waveflow_py eval --model "$RELEASE" --data "$DATA/metadata.csv" --split dev \
      --max-clips "$CLIPS" --output "$OUT/before"
  fi
}
stage_train() {  # a new run from the release's weights, or the run's own checkpoint when there is one
  if [ -d "$OUT/checkpoints" ]; then
    # shellcheck disable=SC2086  # EXTRA is a list of words
    "$PY" -m waveflow_py train "$CONFIG" --set data.root="$DATA" --out "$OUT" --resume "${minutes[@]}" ${EXTRA:-}
  else
    # shellcheck disable=SC2086
    "$PY" -m waveflow_py train "$CONFIG" --set data.root="$DATA" --out "$OUT" --init-from "$RELEASE" \
      "${minutes[@]}" ${EXTRA:-}
  fi
}
stage_eval() {
  "$PY" -m waveflow_py eval --model "$OUT/release" --data "$DATA/metadata.csv" --split dev \
    --max-clips "$CLIPS" --output "$OUT/after"
  "$PY" recipes/finetune-speaker/compare.py "$OUT/before" "$OUT/after"
}
run_stages "$@"
