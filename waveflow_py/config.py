"""Typed configuration: dataclasses are the one schema; YAML/JSON load strictly (unknown keys are errors).

YAML files may start from another with ``extends: base.yaml`` (a path relative to the file) and then
override keys: recipes are a commented base plus small overlays. ``--set a.b=value`` overrides apply last.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "MelConfig",
    "MEL_PRESETS",
    "mel_preset",
    "WaveFlowConfig",
    "WaveGlowConfig",
    "from_dict",
    "to_dict",
    "load_yaml",
    "parse_overrides",
    "merge_dicts",
]

T = TypeVar("T")


# ----------------------------------------------------------------------------- mel front end
@dataclass
class MelConfig:
    """Log-mel spectrogram settings. ``preset`` names where the numbers come from (informational)."""

    preset: str = "tacotron2"
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    mel_scale: str = "slaney"  # "slaney" or "htk"
    mel_norm: str | None = "slaney"  # "slaney" (area normalisation) or None
    power: float = 1.0  # 1: magnitude, 2: power spectrogram
    log: str = "ln"  # "ln" (natural log) or "log10"
    clamp: float = 1e-5  # log(max(x, clamp))
    mag_eps: float = 0.0  # added inside the sqrt of the magnitude (hifigan: 1e-9)
    padding: str = "center"  # "center": reflect-pad n_fft//2 both sides; "hifigan": (n_fft-hop)//2
    pad_mode: str = "reflect"
    mean: list[float] | None = None  # optional per-bin normalisation stats (espnet)
    std: list[float] | None = None

    def __post_init__(self) -> None:
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale: expected 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.log not in ("ln", "log10"):
            raise ValueError(f"log: expected 'ln' or 'log10', got {self.log!r}")
        if self.padding not in ("center", "hifigan"):
            raise ValueError(f"padding: expected 'center' or 'hifigan', got {self.padding!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise ValueError(f"fmax ({self.fmax}) is above Nyquist ({self.sample_rate / 2})")
        for name in ("mean", "std"):
            stats = getattr(self, name)
            if stats is not None and len(stats) != self.n_mels:
                raise ValueError(f"{name}: expected {self.n_mels} values, got {len(stats)}")


MEL_PRESETS: dict[str, dict[str, Any]] = {
    # Tacotron 2 / WaveGlow / WaveFlow (NVIDIA): natural log, clamp 1e-5, centred reflect padding.
    "tacotron2": {},
    # HiFi-GAN (Kong et al. 2020) mel: same numbers, (n_fft - hop) / 2 reflect padding, no centring,
    # sqrt(|X|^2 + 1e-9) magnitude.
    "hifigan": {"padding": "hifigan", "mag_eps": 1e-9},
    # ESPnet / ParallelWaveGAN: log10, 80-7600 Hz, clamp 1e-10; optional mean/variance stats.
    "espnet": {"log": "log10", "fmin": 80.0, "fmax": 7600.0, "clamp": 1e-10},
    # 16 kHz (LibriSpeech / LibriTTS-style): 1024-point FFT, hop 256, 0-8000 Hz.
    "16k": {"sample_rate": 16000, "fmax": 8000.0},
    # 24 kHz, 100 mels (LibriTTS / Vocos-style): n_fft 1024, hop 256, 0-12000 Hz.
    "24k": {"sample_rate": 24000, "n_mels": 100, "fmax": 12000.0},
}


def mel_preset(name: str, **overrides: Any) -> MelConfig:
    """A :class:`MelConfig` from a named preset, optionally with some fields overridden."""
    if name not in MEL_PRESETS:
        raise ValueError(f"unknown mel preset {name!r}; available: {', '.join(sorted(MEL_PRESETS))}")
    return MelConfig(**{"preset": name, **MEL_PRESETS[name], **overrides})


# ----------------------------------------------------------------------------- models
@dataclass
class WaveFlowConfig:
    """WaveFlow (Ping et al. 2020). Defaults: the paper's main model (h=16, r=64, 8 flows x 8 layers)."""

    n_group: int = 16  # h: the height of the squeezed waveform
    n_flows: int = 8
    n_layers: int = 8
    residual_channels: int = 64
    kernel_size: tuple[int, int] = (3, 3)  # (height, width)
    height_dilations: list[int] | None = None  # None: the paper's cycle for n_group
    permutation: str = "bipartition"  # "reverse" or "bipartition" (reverse, then reverse halves)
    mel: MelConfig = field(default_factory=MelConfig)
    upsample_scales: list[int] | None = None  # None: factor hop_length into (16, 16) style scales
    sigma: float = 1.0  # sigma of the Gaussian prior used in training

    def __post_init__(self) -> None:
        if self.n_group < 2:
            raise ValueError(f"n_group (h) must be >= 2, got {self.n_group}")
        if self.height_dilations is not None and len(self.height_dilations) != self.n_layers:
            raise ValueError(
                f"height_dilations: expected {self.n_layers} values (one per layer), "
                f"got {len(self.height_dilations)}"
            )
        if self.permutation not in ("reverse", "bipartition"):
            raise ValueError(f"permutation: expected 'reverse' or 'bipartition', got {self.permutation!r}")


@dataclass
class WaveGlowConfig:
    """WaveGlow (Prenger et al. 2019): 12 flows, groups of 8, early outputs of 2 channels every 4 flows."""

    n_flows: int = 12
    n_group: int = 8
    n_early_every: int = 4
    n_early_size: int = 2
    n_layers: int = 8
    residual_channels: int = 256
    kernel_size: int = 3
    mel: MelConfig = field(default_factory=MelConfig)
    upsample_scales: list[int] | None = None
    sigma: float = 1.0


# ----------------------------------------------------------------------------- strict (de)serialisation
def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError(f"{path}: {value!r} does not fit {tp} ({'; '.join(errors)})")
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, path=path)
    if origin in (list, Sequence) or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: expected a list of {len(args)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{path}: expected {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and tp is type(None):
        if value is not None:
            raise ValueError(f"{path}: expected null, got {value!r}")
        return None
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from plain data; unknown keys and wrong types raise ``ValueError``."""
    if not _is_dataclass_type(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    where = path or cls.__name__
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) from a dataclass; tuples become lists (JSON/YAML safe)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def merge_dicts(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out


def _read_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: 'extends' cycle through {[str(p) for p in seen]}")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    data = data or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    parents = [parent] if isinstance(parent, str) else list(parent)
    merged: dict[str, Any] = {}
    for p in parents:
        merged = merge_dicts(merged, _read_yaml_chain(path.parent / p, (*seen, path)))
    return merge_dicts(merged, data)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "model.n_flows=4"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected key=value (e.g. train.lr=2e-4)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_yaml(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML/JSON file (following ``extends``), then apply ``key=value`` overrides."""
    data = _read_yaml_chain(Path(path))
    data = merge_dicts(data, parse_overrides(overrides))
    return from_dict(cls, data)
