#!/usr/bin/env bash
# Prepare what the GPU session (scripts/gpu/session.sh) carries to the device machine, here, once:
#   .whl/         wheels of the packages the device image lacks (librosa, soundfile and their needs),
#                 for its Python 3.12 (device README: "carry a missing Python package as wheels")
#   .gpu/shard/   a compact training shard of librispeech-mini (FLAC copies of whole train utterances up
#                 to SHARD_MB, plus 12 dev utterances, with a metadata.csv): the device cannot reach
#                 ../shared. Both folders are git-ignored and deleted with `rm -rf .whl .gpu`.
# Usage: scripts/gpu/prepare.sh [SHARD_MB (default 36)]
set -euo pipefail
cd "$(dirname "$0")/../.."
shard_mb="${1:-36}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p .whl
# on the device image (KINDS.md): numpy, scipy, scikit-learn, joblib, numba, lazy-loader, msgpack, pyyaml,
# tqdm, safetensors, typing-extensions, requests are there; these are not
for spec in librosa==0.11.0 soundfile==0.13.1 soxr==1.1.0 audioread==3.0.1 decorator==5.2.1 \
    pooch==1.8.2 platformdirs==4.3.8 cffi==1.17.1 pycparser==2.22; do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
done
"$py" - "$shard_mb" <<'PY'
import csv, shutil, sys
from pathlib import Path
src, dst = Path("../shared/data/librispeech-mini"), Path(".gpu/shard")
budget = float(sys.argv[1]) * 2**20
rows = list(csv.DictReader(open(src / "metadata.csv")))
shutil.rmtree(dst, ignore_errors=True)
picked, used = [], 0
dev = [r for r in rows if r["split"] == "dev"]
dev = [dev[i * len(dev) // 12] for i in range(12)]  # 12 spread over the 6 dev speakers
for r in dev + [r for r in rows if r["split"] == "train"]:
    size = (src / r["path"]).stat().st_size
    if r["split"] == "train" and used + size > budget:
        continue
    (dst / r["path"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / r["path"], dst / r["path"])
    picked.append(r)
    used += size
with open(dst / "metadata.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(picked)
n_train = sum(r["split"] == "train" for r in picked)
secs = sum(float(r["seconds"]) for r in picked if r["split"] == "train")
print(f"shard: {n_train} train utterances ({secs / 60:.1f} min), 12 dev, {used / 2**20:.1f} MiB in {dst}")
PY
du -sh .whl .gpu
