"""Synthesis speed benchmark: ``python benchmarks/bench_synthesis.py [waveflow bench options]``.

Runs ``waveflow bench`` (waveflow_py.inference.bench) and writes benchmarks/RESULTS.md unless
``--results`` is given. Example (about a minute on 2 CPU cores): ``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from waveflow_py.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--results" not in argv:
        argv += ["--results", str(Path(__file__).resolve().parent / "RESULTS.md")]
    sys.exit(main(["bench", *argv]))
