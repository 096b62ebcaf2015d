#!/usr/bin/env bash
# Toy 2-D recipe: train every flow family on every toy data set; write results.md, densities.png and
# resolved_config.yaml into OUTDIR (default: this folder).
# Usage (from anywhere): recipes/toy2d/run.sh [OUTDIR] [extra `waveflow toy2d` arguments...]
# Single-threaded on purpose: the budget is ~15 min on one CPU core.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."   # repository root, so the recorded command is portable
out="${1:-recipes/toy2d}"
shift || true
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -z "${PY:-}" ]; then  # the repository's .venv (made by `make demo` / `make test`), else python
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
"$PY" -m waveflow_py toy2d --config recipes/toy2d/config.yaml -o "$out" "$@"
