#!/usr/bin/env bash
# LJ Speech 1.1 (22.05 kHz, single speaker). Stages: prepare (check the local copy), train, export, eval.
#   LJSPEECH=/data/LJSpeech-1.1 recipes/ljspeech/run.sh
#   LJSPEECH=/data/LJSpeech-1.1 NPROC=8 recipes/ljspeech/run.sh train
# Environment: PY, CONFIG, LJSPEECH (required), OUT, NPROC (GPUs, via torchrun), EXTRA (more train args).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
CONFIG=${CONFIG:-recipes/ljspeech/config.yaml}
: "${LJSPEECH:?set LJSPEECH=/path/to/LJSpeech-1.1 (metadata.csv + wavs/)}"
OUT=${OUT:-out/ljspeech}
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
    prepare) "$PY" recipes/ljspeech/prepare.py "$LJSPEECH" ;;
    train)   train_cmd "$CONFIG" --set data.root="$LJSPEECH" --out "$OUT" ${EXTRA:-} ;;
    export)  "$PY" -m waveflow_py train "$CONFIG" --set data.root="$LJSPEECH" --out "$OUT" --export-only ;;
    eval)    # the dev split is the last 100 ids; evaluate on their files
      tail -n 100 <(cut -d'|' -f1 "$LJSPEECH/metadata.csv" | sort) | sed "s#^#$LJSPEECH/wavs/#; s#\$#.wav#" \
        > "$OUT/dev_files.txt"
      mkdir -p "$OUT/dev_wavs" && xargs -a "$OUT/dev_files.txt" ln -sf -t "$OUT/dev_wavs"
      "$PY" -m waveflow_py eval --model "$OUT/release" --data "$OUT/dev_wavs" --max-clips 20 --output "$OUT/eval" ;;
    *) echo "unknown stage '$stage' (expected prepare, train, export, eval)" >&2; exit 2 ;;
  esac
done
