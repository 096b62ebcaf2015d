#!/usr/bin/env bash
# LibriSpeech-mini (16 kHz, multi-speaker). Stages: prepare (check the corpus), train, export, eval.
#   recipes/librispeech-mini/run.sh                                        # base config, all stages
#   CONFIG=recipes/librispeech-mini/cpu-smoke.yaml recipes/librispeech-mini/run.sh train
#   CONFIG=recipes/librispeech-mini/gpu-bf16.yaml NPROC=8 recipes/librispeech-mini/run.sh train
# Environment: PY, CONFIG, DATA (corpus root, default ../shared/data/librispeech-mini), OUT, NPROC, EXTRA.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
CONFIG=${CONFIG:-recipes/librispeech-mini/config.yaml}
DATA=${DATA:-../shared/data/librispeech-mini}
OUT=${OUT:-out/librispeech-mini}
NPROC=${NPROC:-1}
train_cmd() {
  if [ "$NPROC" -gt 1 ]; then
    "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m waveflow_py train "$@"
  else
    "$PY" -m waveflow_py train "$@"
  fi
}
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(prepare train export eval)
for stage in "${stages[@]}"; do
  echo "== stage: $stage"
  case "$stage" in
    prepare)  # nothing to convert: the corpus is read in place (metadata.csv path,split,...)
      [ -f "$DATA/metadata.csv" ] || { echo "no $DATA/metadata.csv (set DATA=...)" >&2; exit 1; }
      echo "corpus: $(grep -c ',train,' "$DATA/metadata.csv") train, $(grep -c ',dev,' "$DATA/metadata.csv") dev files" ;;
    train)  train_cmd "$CONFIG" --set data.root="$DATA" --out "$OUT" ${EXTRA:-} ;;
    export) "$PY" -m waveflow_py train "$CONFIG" --set data.root="$DATA" --out "$OUT" --export-only ;;
    eval)   "$PY" -m waveflow_py eval --model "$OUT/release" --data "$DATA/metadata.csv" --split dev \
              --max-clips 20 --output "$OUT/eval" ;;
    *) echo "unknown stage '$stage' (expected prepare, train, export, eval)" >&2; exit 2 ;;
  esac
done
