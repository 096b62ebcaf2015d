# Shared stage runner of the recipes' run.sh scripts (sourced, not run).
# A recipe sets CONFIG, DATA (the corpus root given to data.root), OUT, and defines stage_prepare and
# stage_eval; train and export are the same everywhere. Then: run_stages "$@".
# Environment for every recipe: PY (python; default: the repository's .venv/bin/python that `make demo` /
# `make test` create, else python), NPROC (>1: torchrun with that many processes, one per GPU), EXTRA
# (more `waveflow train` arguments, e.g. --resume). The scripts cd to the repository root first.
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
NPROC=${NPROC:-1}

stage_train() {
  local cmd=("$PY" -m waveflow_py train)
  if [ "$NPROC" -gt 1 ]; then
    cmd=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m waveflow_py train)
  fi
  # shellcheck disable=SC2086  # EXTRA is a list of words
  "${cmd[@]}" "$CONFIG" --set data.root="$DATA" --out "$OUT" ${EXTRA:-}
}

stage_export() {  # a release (OUT/release) from the latest checkpoint
  "$PY" -m waveflow_py train "$CONFIG" --set data.root="$DATA" --out "$OUT" --export-only
}

check_metadata() {  # a corpus read in place through its metadata.csv (path,split,...)
  [ -f "$DATA/metadata.csv" ] || { echo "no $DATA/metadata.csv (set DATA=...)" >&2; exit 1; }
  echo "corpus: $(grep -c ',train,' "$DATA/metadata.csv") train, $(grep -c ',dev,' "$DATA/metadata.csv") dev files"
}

run_stages() {
  local stages=("$@") stage
  [ ${#stages[@]} -eq 0 ] && stages=(prepare train export eval)
  for stage in "${stages[@]}"; do
    echo "== stage: $stage"
    case "$stage" in
      prepare | train | export | eval) "stage_$stage" ;;
      *) echo "unknown stage '$stage' (expected prepare, train, export, eval)" >&2; exit 2 ;;
    esac
  done
}
