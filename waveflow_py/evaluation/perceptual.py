"""Intrusive perceptual-quality estimates: wide-band PESQ and STOI.

* **PESQ-WB** (ITU-T P.862.2) via the ``pesq`` package: both signals resampled to 16 kHz (soxr HQ),
  mode ``"wb"``; MOS-LQO scale, 1.04 (worst) .. 4.64 (identical signals).
* **STOI** (Taal et al. 2011) via ``pystoi`` at the signals' own rate (pystoi resamples to 10 kHz
  internally); 0..1, 1 for identical signals. ``extended=True`` gives ESTOI (Jensen & Taal 2016).

The metric packages are optional: install them with ``pip install waveflow-py[eval]``.
Both signals are trimmed to the shorter length first.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from waveflow_py.evaluation._signal import align_pair, check_sample_rate, resample

__all__ = ["PESQ_SAMPLE_RATE", "pesq_wb", "stoi", "require"]

PESQ_SAMPLE_RATE = 16000


def require(module: str, package: str) -> ModuleType:
    """Import an optional metric dependency, or raise ImportError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this metric needs the '{package}' package, which is not installed; "
            "install the evaluation extra: pip install waveflow-py[eval]"
        ) from e


def pesq_wb(reference: Any, degraded: Any, sample_rate: int) -> float:
    """Wide-band PESQ (MOS-LQO) of ``degraded`` against ``reference``, computed at 16 kHz.

    Raises ``ValueError`` when PESQ cannot score the pair (e.g. no speech found in the reference).
    """
    pesq_mod = require("pesq", "pesq")
    sr = check_sample_rate(sample_rate)
    ref, deg = align_pair(reference, degraded)
    ref = resample(ref, sr, PESQ_SAMPLE_RATE)
    deg = resample(deg, sr, PESQ_SAMPLE_RATE)
    n = min(ref.size, deg.size)
    try:
        return float(pesq_mod.pesq(PESQ_SAMPLE_RATE, ref[:n], deg[:n], "wb"))
    except Exception as e:  # the pesq package raises its own error classes (no utterances, too short)
        raise ValueError(f"PESQ could not score this pair: {type(e).__name__}: {e}") from e


def stoi(reference: Any, degraded: Any, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (``extended=True``: ESTOI) of ``degraded`` vs ``reference``."""
    pystoi = require("pystoi", "pystoi")
    sr = check_sample_rate(sample_rate)
    ref, deg = align_pair(reference, degraded)
    if not np.any(ref):
        raise ValueError("STOI: the reference is silent")
    return float(pystoi.stoi(ref, deg, sr, extended=extended))
