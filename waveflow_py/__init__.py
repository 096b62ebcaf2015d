"""waveflow_py: flow-based neural vocoders (WaveFlow, WaveGlow) and a normalizing-flow library.

Importing the package has no side effects; heavy modules load on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MelConfig": "waveflow_py.config",
    "WaveFlowConfig": "waveflow_py.config",
    "WaveGlowConfig": "waveflow_py.config",
    "mel_preset": "waveflow_py.config",
    "MelSpectrogram": "waveflow_py.audio",
    "WaveFlow": "waveflow_py.models",
    "WaveGlow": "waveflow_py.models",
    "Vocoder": "waveflow_py.vocoder",
    "SamplingConfig": "waveflow_py.sampling",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'waveflow_py' has no attribute {name!r}")
