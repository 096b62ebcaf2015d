"""Fixtures for the evaluation tests: real speech from ../shared/data when present."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def real_speech(shared_data: Path) -> tuple[np.ndarray, int]:
    """The first 4 s of the first dev clip of librispeech-mini (16 kHz); skips when it is absent."""
    import soundfile as sf

    root = shared_data / "librispeech-mini"
    meta = root / "metadata.csv"
    if not meta.is_file():
        pytest.skip(f"{meta} not found")
    with open(meta, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "dev"]
    audio, sr = sf.read(root / rows[0]["path"], dtype="float64")
    return audio[: 4 * sr], int(sr)
