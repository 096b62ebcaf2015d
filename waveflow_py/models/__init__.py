"""Vocoder models built from :mod:`waveflow_py.flows` and :mod:`waveflow_py.nn`.

``MODELS`` maps a model type (as written in release configs) to ``(model class, config class)``.
"""

from __future__ import annotations

from typing import Any

from waveflow_py.config import WaveFlowConfig, WaveGlowConfig
from waveflow_py.models.waveflow import WaveFlow

__all__ = ["WaveFlow", "WaveGlow", "MODELS"]

MODELS: dict[str, tuple[type, type]] = {"waveflow": (WaveFlow, WaveFlowConfig)}

try:  # WaveGlow lives in its own module (written in parallel); keep WaveFlow usable meanwhile
    from waveflow_py.models.waveglow import WaveGlow
except ModuleNotFoundError as _err:  # pragma: no cover - only while the module does not exist yet
    if _err.name != "waveflow_py.models.waveglow":
        raise

    def __getattr__(name: str) -> Any:
        if name == "WaveGlow":
            raise ImportError("waveflow_py.models.waveglow is not available")
        raise AttributeError(f"module 'waveflow_py.models' has no attribute {name!r}")
else:
    MODELS["waveglow"] = (WaveGlow, WaveGlowConfig)
