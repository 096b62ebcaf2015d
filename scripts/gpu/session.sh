#!/usr/bin/env bash
# One prepared GPU session (issue 10, section 3), about 8 minutes on one H200; rehearse it on the CPU first:
#   device:    run(command="bash scripts/gpu/session.sh", carry=[".whl", ".gpu"], timeout_s=560)
#   rehearsal: REHEARSAL=1 scripts/gpu/session.sh        (CPU, tiny budgets, the same steps)
# Needs scripts/gpu/prepare.sh run here once (.whl wheels, .gpu/shard data). Steps, each logged to $OUT:
#   1. the CUDA-only tests;  2. `waveflow bench` of the cached and fused (CUDA graph) inverses at batch 1
#   and 16;  3. training RECIPE (the long run's lineage) from INIT (the bundled default's weights; bf16,
#   batch BATCH, TRAIN_MIN minutes of wall clock) and its export to $OUT/release;  4. the training samples/s of the paper model (PAPER_MIN,
#   batch PAPER_BATCH x 16384 samples: gpu-bf16.yaml's 32 on the GPU).
# Every step runs even if an earlier one failed; the exit status is that of the worst step.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-out/gpu-session}"
mkdir -p "$OUT"
if [[ "${REHEARSAL:-0}" == 1 ]]; then
  PY="${PY:-.venv/bin/python}" DEV=cpu PREC=fp32 BATCH="${BATCH:-2}" TRAIN_MIN="${TRAIN_MIN:-0.3}"
  PAPER_MIN="${PAPER_MIN:-0.3}" PAPER_BATCH="${PAPER_BATCH:-1}"
  BENCH=(--quick --device cpu)
else
  PY="${PY:-python3}" DEV=cuda PREC=bf16 BATCH="${BATCH:-64}" TRAIN_MIN="${TRAIN_MIN:-4}"
  PAPER_MIN="${PAPER_MIN:-0.75}" PAPER_BATCH="${PAPER_BATCH:-32}"
  BENCH=(--device cuda --r 16 64 --h 16 --batch 1 16 --methods cached fused --dtype fp32 bf16 --seconds 1)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
status=0
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, keep the worst status
  local name=$1
  shift
  echo "== $name ($(date -u +%T))"
  "$@" 2>&1 | tee "$OUT/$name.log" | tail -n 25
  local rc=${PIPESTATUS[0]}
  echo "== exit $rc"
  ((rc > status)) && status=$rc
}
wf() { "$PY" -m waveflow_py "$@"; }
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
[[ -d .gpu/shard ]] || { echo ".gpu/shard missing: run scripts/gpu/prepare.sh first"; exit 1; }
data=(data.root=.gpu/shard data.dev_max_items=12 data.num_workers=0 train.device="$DEV" train.precision="$PREC"
  train.log_every=5)

step cuda-tests "$PY" -m pytest -q -p no:cacheprovider tests/inference/test_cuda.py
step bench wf bench "${BENCH[@]}" --results "$OUT/bench.md"
rm -rf /tmp/gpu-run
# the long run's lineage (docs/quality-per-compute.md sections 17-18): the bundled default's weights, the
# harmonic source with the hybrid pitch and the spectral objective through the sampling path, Adam 1e-4 and
# EMA weights (0.999; the release gets them) as the CPU continuation
# (RECIPE= / INIT= to train another candidate or start elsewhere)
RECIPE="${RECIPE:-recipes/librispeech-mini/spectral/wg64-harmonic-hybrid.yaml}"
INIT="${INIT:-pretrained/universal-16k}"
step train wf train "$RECIPE" --out /tmp/gpu-run \
  --init-from "$INIT" --minutes "$TRAIN_MIN" \
  --set "${data[@]}" train.batch_size="$BATCH" train.budget_clock=wall train.num_threads=null \
  train.lr=0.0001 train.ema_decay=0.999 train.warmup_steps=0 \
  train.val_every=100000 train.val_at_start=false train.val_clips=0 train.ckpt_every=100000
mkdir -p "$OUT/release" && cp /tmp/gpu-run/release/* "$OUT/release/" 2>/dev/null
grep '"train"' /tmp/gpu-run/metrics.jsonl | tail -n 3 > "$OUT/train-tail.jsonl" 2>/dev/null
rm -rf /tmp/gpu-paper
step paper wf train recipes/librispeech-mini/gpu-bf16.yaml --out /tmp/gpu-paper --minutes "$PAPER_MIN" \
  --set "${data[@]}" train.batch_size="$PAPER_BATCH" train.budget_clock=wall train.val_every=100000 \
  train.val_at_start=false train.val_clips=0 train.ckpt_every=100000 train.export_release=false
for run in gpu-run gpu-paper; do
  "$PY" - "$run" <<'PY'
import json, statistics, sys
rows = [json.loads(x) for x in open(f"/tmp/{sys.argv[1]}/metrics.jsonl") if '"train"' in x]
rates = [r["samples_per_s"] for r in rows[1:]] or [r["samples_per_s"] for r in rows]
print(f"{sys.argv[1]}: {len(rows)} logged steps, median {statistics.median(rates):,.0f} training samples/s" if rates else "no steps")
PY
done
echo "worst exit status: $status"
exit "$status"
