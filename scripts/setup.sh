#!/usr/bin/env bash
# Create .venv and install waveflow_py with the given extras (default: train,eval,dev).
# Where this machine has the local CPU build of torch 2.13.0 (a find-links wheel), pin it so pip does
# not pull multi-GB CUDA wheels; elsewhere install torch from the registry as usual.
# Usage: scripts/setup.sh [EXTRAS]     env: PYTHON (default python3), VENV (default .venv), TORCH_SPEC
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${1:-train,eval,dev}
stamp="$VENV/.waveflow-installed-$EXTRAS"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip)
if [ -z "${TORCH_SPEC:-}" ]; then
  # a torch 2.13.0 reachable without an index means the local CPU build is here
  if "${pip[@]}" install --dry-run --no-index --no-deps -q "torch==2.13.0" >/dev/null 2>&1; then
    TORCH_SPEC="torch==2.13.0"
  else
    TORCH_SPEC="torch>=2.2"
  fi
fi
echo "setup: installing $TORCH_SPEC and waveflow_py[$EXTRAS] into $VENV" >&2
"${pip[@]}" install -q --disable-pip-version-check "$TORCH_SPEC"
"${pip[@]}" install -q --disable-pip-version-check -e ".[$EXTRAS]" "$TORCH_SPEC"
touch "$stamp"
