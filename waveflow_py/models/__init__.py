"""Vocoder models built from :mod:`waveflow_py.flows` and :mod:`waveflow_py.nn`.

The one model registry: ``MODELS`` maps a model type (as written in experiment and release configs) to
``(model class, config class)``; the config classes are :data:`waveflow_py.config.MODEL_CONFIGS`.
:func:`build_model` builds a model from a type and a config, or from a typed config alone; training,
export and releases all build through it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from waveflow_py.config import MODEL_CONFIGS, from_dict
from waveflow_py.models.base import MelFlowVocoder
from waveflow_py.models.waveflow import WaveFlow
from waveflow_py.models.waveglow import WaveGlow

__all__ = [
    "WaveFlow",
    "WaveGlow",
    "MODELS",
    "build_model",
    "model_type_of",
    "MelFlowVocoder",
]

_CLASSES: dict[str, type[nn.Module]] = {"waveflow": WaveFlow, "waveglow": WaveGlow}
MODELS: dict[str, tuple[type[nn.Module], type]] = {k: (_CLASSES[k], MODEL_CONFIGS[k]) for k in _CLASSES}


def model_type_of(config: Any) -> str:
    """The registry name of a typed model config (``WaveFlowConfig`` -> ``"waveflow"``)."""
    for name, (_cls, cfg_cls) in MODELS.items():
        if type(config) is cfg_cls:
            return name
    names = [c.__name__ for _, c in MODELS.values()]
    raise ValueError(f"config: expected one of {names}, got {type(config).__name__}")


def build_model(model_type: str | Any, config: Any = None) -> nn.Module:
    """A new model: ``build_model(typed_config)``, or ``build_model("waveflow", config)`` where ``config``
    is the typed config, a mapping of it (validated strictly) or ``None`` (the defaults)."""
    if not isinstance(model_type, str):
        if config is not None:
            raise ValueError("build_model: give a typed config alone, or a model type and its config")
        config, model_type = model_type, model_type_of(model_type)
    if model_type not in MODELS:
        raise ValueError(f"model_type: expected one of {sorted(MODELS)}, got {model_type!r}")
    cls, cfg_cls = MODELS[model_type]
    if config is None:
        config = cfg_cls()
    elif isinstance(config, dict):
        config = from_dict(cfg_cls, config, path="model")
    elif not isinstance(config, cfg_cls):
        raise ValueError(
            f"config: expected a {cfg_cls.__name__} for {model_type!r}, got {type(config).__name__}"
        )
    return cls(config)
