"""Typed configuration: dataclasses are the one schema; YAML/JSON load strictly (unknown keys are errors).

YAML files may start from another with ``extends: base.yaml`` (a path relative to the file) and then
override keys: recipes are a commented base plus small overlays. ``--set a.b=value`` overrides apply last.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "MelConfig",
    "MEL_PRESETS",
    "mel_preset",
    "SourceFilterConfig",
    "SOURCE_FILTER_KEYS",
    "nest_source_filter",
    "nest_model_section",
    "source_filter_of",
    "WaveFlowConfig",
    "WaveGlowConfig",
    "from_dict",
    "to_dict",
    "load_yaml",
    "parse_overrides",
    "merge_dicts",
    "DataConfig",
    "TrainConfig",
    "ObjectiveConfig",
    "ExperimentConfig",
    "MODEL_CONFIGS",
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
        if self.pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode: expected 'reflect' or 'constant', got {self.pad_mode!r}")
        if self.mel_norm not in ("slaney", None):
            raise ValueError(f"mel_norm: expected 'slaney' or null, got {self.mel_norm!r}")
        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not (self.clamp > 0 and self.power > 0 and self.mag_eps >= 0):
            raise ValueError(
                "expected clamp > 0, power > 0 and mag_eps >= 0, "
                f"got {self.clamp}, {self.power}, {self.mag_eps}"
            )
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if self.fmin < 0 or (self.fmax is not None and self.fmax <= self.fmin):
            raise ValueError(f"expected 0 <= fmin < fmax, got fmin={self.fmin}, fmax={self.fmax}")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise ValueError(f"fmax ({self.fmax}) is above Nyquist ({self.sample_rate / 2})")
        for name in ("mean", "std"):
            stats = getattr(self, name)
            if stats is not None and len(stats) != self.n_mels:
                raise ValueError(f"{name}: expected {self.n_mels} values, got {len(stats)}")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"std: expected positive values, got min {min(self.std)}")


MEL_PRESETS: dict[str, dict[str, Any]] = {
    # Every preset is a set of overrides of the MelConfig defaults (which are "tacotron2"). Audio is float
    # in [-1, 1] (int16 PCM / 32768) in all of them. tests/test_audio.py checks each against a
    # librosa.stft + librosa.filters.mel reference.
    #
    # NVIDIA Tacotron 2 / WaveGlow (and WaveFlow on LJ Speech): 22050 Hz, n_fft 1024, hop 256, win 1024,
    # 80 slaney mels 0-8000 Hz, magnitude |X|, ln(max(x, 1e-5)), reflect padding n_fft // 2 (centred).
    "tacotron2": {},
    # HiFi-GAN (Kong et al. 2020, config v1): the same numbers, but reflect padding (n_fft - hop) // 2
    # on both sides without centring (F = T // hop), and magnitude sqrt(|X|^2 + 1e-9).
    "hifigan": {"padding": "hifigan", "mag_eps": 1e-9},
    # ParallelWaveGAN / ESPnet (logmelfilterbank): librosa.stft centred reflect, |X|, 80 mels 80-7600 Hz,
    # log10(max(x, 1e-10)); recipes then standardise with per-bin mean/scale stats (set mean/std here).
    # ESPnet2's LogMelFbank clamps |X|^2 at 1e-10 before the sqrt: identical except in digital silence.
    "espnet": {"log": "log10", "fmin": 80.0, "fmax": 7600.0, "clamp": 1e-10},
    # 16 kHz (SpeechBrain tts-hifigan-libritts-16kHz): n_fft 1024, hop 256, win 1024, 80 slaney mels
    # 0-8000 Hz, |X|, ln(max(x, 1e-5)), torchaudio centred reflect padding.
    "16k": {"sample_rate": 16000, "fmax": 8000.0},
    # 24 kHz, 100 mels (Vocos, Siuzdak 2023: torchaudio MelSpectrogram defaults): n_fft 1024, hop 256,
    # HTK mel scale without area normalisation, 0-12000 Hz, |X|, ln(max(x, 1e-7)), centred reflect.
    "24k": {
        "sample_rate": 24000,
        "n_mels": 100,
        "fmax": 12000.0,
        "mel_scale": "htk",
        "mel_norm": None,
        "clamp": 1e-7,
    },
    # 24 kHz, 100 mels (BigVGAN bigvgan_24khz_100band, HiFi-GAN front end): slaney mels 0-12000 Hz,
    # (n_fft - hop) // 2 reflect padding, sqrt(|X|^2 + 1e-9), ln(max(x, 1e-5)).
    "bigvgan-24k": {
        "sample_rate": 24000,
        "n_mels": 100,
        "fmax": 12000.0,
        "padding": "hifigan",
        "mag_eps": 1e-9,
    },
}


def mel_preset(name: str, **overrides: Any) -> MelConfig:
    """A :class:`MelConfig` from a named preset, optionally with some fields overridden."""
    if name not in MEL_PRESETS:
        raise ValueError(f"unknown mel preset {name!r}; available: {', '.join(sorted(MEL_PRESETS))}")
    return MelConfig(**{"preset": name, **MEL_PRESETS[name], **overrides})


# ----------------------------------------------------------------------------- source-filter stages
ENVELOPES = ("none", "gain", "lpc")
PITCH_PRIORS = ("none", "ltp")
SOURCES = ("none", "harmonic")
PITCH_LAGS = ("highest", "first")
SOURCE_PITCHES = ("analysis", "learned", "hybrid")
PITCH_NET_SOURCES = ("learned", "hybrid")  # the source pitches that run the learned predictor


@dataclass
class SourceFilterConfig:
    """The fixed, mel-derived source-filter stages in front of the flows (:mod:`waveflow_py.sourcefilter`),
    one block shared by every model config (``model.source_filter`` in YAML and releases). All off by
    default: the flows then model the waveform itself."""

    envelope: str = "none"  # "none", "gain" (per-frame RMS) or "lpc": flows model the mel-whitened excitation
    lpc_order: int = 16  # order of the "lpc" envelope filter
    preemphasis: float = 0.0  # x[n] - preemphasis * x[n-1] before the envelope (0: off)
    # "ltp": a mel-derived long-term (pitch) predictor after the envelope (sourcefilter.periodicity); its
    # gain is strength * (rho - threshold) / (1 - threshold) of the mel's low-band periodicity rho
    pitch: str = "none"
    pitch_strength: float = 1.0
    pitch_threshold: float = 0.3
    # which peak of the mel's periodicity is the pitch lag: "highest" (the argmax over the lag range; what
    # releases before this option used) or "first" (the shortest lag whose peak is within 15 % of the
    # highest, parabolic, fractional: no octave errors towards long lags; sourcefilter.periodicity)
    pitch_lag: str = "highest"
    # "harmonic": a learnable, mel-conditioned harmonic source added to the excitation before the envelope
    # filter (sourcefilter.harmonic): harmonics of the mel's F0 with per-band amplitudes and a noise gain
    # from a small per-frame network; the amplitudes are trained by the spectral objective (train.objective)
    source: str = "none"
    source_bands: int = 8  # harmonic amplitude bands (mel-spaced centres over 0 .. Nyquist)
    source_hidden: int = 64  # width of the per-frame control network
    source_threshold: float = 0.45  # periodicity peak below which a frame is unvoiced (no harmonics)
    # where the harmonic source's F0 and voicing come from: "analysis" (the periodicity's first peak and
    # source_threshold), "learned" (sourcefilter.pitchnet: a network on the mel and that periodicity,
    # trained on pYIN labels by `waveflow train-pitch`, loaded with train.pitch_net, fixed in training) or
    # "hybrid" (the analysis's voicing where it hears a voice, the predictor's elsewhere; the analysis's F0
    # unless the predictor hears a voice more than 20 % away: a low voice's periodicity falls under
    # source_threshold on a third of its voiced frames, and its first peak is at times a multiple of the F0)
    source_pitch: str = "analysis"
    source_pitch_hidden: int = 128  # channels of the learned pitch predictor
    # learned pitch: voicing clamp((p - floor) / (1 - floor), 0, 1) of its voicing probability p (0.5: the
    # predictor's decision; lower: harmonics, scaled by the controls, also where it is unsure)
    source_pitch_floor: float = 0.5

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source_filter.source: expected one of {SOURCES}, got {self.source!r}")
        if self.source_pitch not in SOURCE_PITCHES:
            raise ValueError(
                f"source_filter.source_pitch: expected one of {SOURCE_PITCHES}, got {self.source_pitch!r}"
            )
        if self.pitch_lag not in PITCH_LAGS:
            raise ValueError(f"source_filter.pitch_lag: expected one of {PITCH_LAGS}, got {self.pitch_lag!r}")
        for name in ("source_bands", "source_hidden", "source_pitch_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"source_filter.{name}: expected a positive integer, got {value!r}")
        floor = self.source_pitch_floor
        if isinstance(floor, bool) or not (isinstance(floor, (int, float)) and 0 <= floor < 1):
            raise ValueError(f"source_filter.source_pitch_floor: expected 0 <= floor < 1, got {floor!r}")
        if not (isinstance(self.source_threshold, (int, float)) and 0 <= self.source_threshold < 1):
            raise ValueError(
                f"source_filter.source_threshold: expected 0 <= threshold < 1, got {self.source_threshold!r}"
            )
        if self.envelope not in ENVELOPES:
            raise ValueError(f"source_filter.envelope: expected one of {ENVELOPES}, got {self.envelope!r}")
        order = self.lpc_order
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"source_filter.lpc_order: expected a positive integer, got {order!r}")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ValueError(
                f"source_filter.preemphasis: expected 0 <= preemphasis < 1 (0: off), got {self.preemphasis!r}"
            )
        if self.pitch not in PITCH_PRIORS:
            raise ValueError(f"source_filter.pitch: expected one of {PITCH_PRIORS}, got {self.pitch!r}")
        strength, threshold = self.pitch_strength, self.pitch_threshold
        if not (isinstance(strength, (int, float)) and strength >= 0):
            raise ValueError(f"source_filter.pitch_strength: expected a number >= 0, got {strength!r}")
        if not (isinstance(threshold, (int, float)) and 0 <= threshold < 1):
            raise ValueError(
                f"source_filter.pitch_threshold: expected 0 <= pitch_threshold < 1, got {threshold!r}"
            )

    def check_mel(self, mel: MelConfig) -> None:
        """What depends on the mel front end: an LPC order below ``n_fft / 2`` (the autocorrelation lags
        the mel's window can show)."""
        if self.envelope == "lpc" and self.lpc_order >= mel.n_fft // 2:
            raise ValueError(
                f"source_filter.lpc_order: expected < n_fft / 2 = {mel.n_fft // 2} for envelope 'lpc', "
                f"got {self.lpc_order}"
            )


# the keys of the block that model configs held flat (at the top of ``model``) before it existed; later
# keys exist only inside the block
SOURCE_FILTER_KEYS = ("envelope", "lpc_order", "preemphasis", "pitch", "pitch_strength", "pitch_threshold")


def nest_source_filter(model: Mapping[str, Any], where: str = "model") -> dict[str, Any]:
    """Plain model data with the old flat source-filter keys (``envelope``, ``pitch_strength``, ...)
    moved into the ``source_filter`` block; data without them is returned as is. One mapping may use one
    form: flat keys beside a ``source_filter`` block are a ``ValueError``."""
    flat = [k for k in SOURCE_FILTER_KEYS if k in model]
    if not flat:
        return dict(model)
    if "source_filter" in model:
        raise ValueError(
            f"{where}: flat source-filter key(s) {flat} (the old layout) beside a 'source_filter' block: "
            "give these settings in one place, inside source_filter"
        )
    out = {k: v for k, v in model.items() if k not in flat}
    out["source_filter"] = {k: model[k] for k in flat}
    return out


def nest_model_section(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Experiment data (one YAML file, one set of ``--set`` overrides, a checkpoint's config) with its
    ``model`` mapping in today's layout (:func:`nest_source_filter`), so the layers merge key by key."""
    out = dict(data)
    if isinstance(out.get("model"), Mapping):
        out["model"] = nest_source_filter(out["model"], f"{where}: model")
    return out


def source_filter_of(config: Any) -> SourceFilterConfig:
    """The source-filter block of a model config (all stages off for a config without one)."""
    block = getattr(config, "source_filter", None)
    return block if isinstance(block, SourceFilterConfig) else SourceFilterConfig()


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
    # soft tanh bound of the log-scale; None: unbounded exp(log_s) (imported L0SG/Parakeet checkpoints)
    scale_bound: float | None = 8.0
    # "transform": every row is transformed, row 0 from the mel only; "identity": row 0 is copied and
    # row i > 0 is conditioned on rows < i (the authors' Parakeet WaveFlow and L0SG's port)
    first_row: str = "transform"
    # the fixed envelope and pitch stages in front of the flows (off by default)
    source_filter: SourceFilterConfig = field(default_factory=SourceFilterConfig)

    def __post_init__(self) -> None:
        self.source_filter.check_mel(self.mel)
        if self.first_row not in ("transform", "identity"):
            raise ValueError(f"first_row: expected 'transform' or 'identity', got {self.first_row!r}")
        if self.scale_bound is not None and self.scale_bound <= 0:
            raise ValueError(f"scale_bound: expected a positive number or null, got {self.scale_bound}")
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
    # "stack": the 2-D transposed-conv stack (nn.upsample.MelUpsampler); "nvidia": NVIDIA's single
    # ConvTranspose1d(n_mels, n_mels, 4 * hop, stride=hop) (imported NVIDIA checkpoints)
    upsampler: str = "stack"
    # how the couplings see the upsampled mel: "squeeze" (WaveGlow: squeezed like the audio into
    # n_mels * n_group channels) or "pooled" (SqueezeWave-style: averaged over each group, n_mels channels;
    # far fewer conditioning weights and MACs for a large n_group)
    condition: str = "squeeze"
    # the fixed envelope and pitch stages in front of the flows (off by default)
    source_filter: SourceFilterConfig = field(default_factory=SourceFilterConfig)
    # soft bound b of the couplings' log-scale, log s = b tanh(raw / b) (the identity near 0, so exp(log s)
    # cannot overflow); null: WaveGlow's unbounded exp(raw), which releases written before this option use
    scale_bound: float | None = None

    def __post_init__(self) -> None:
        if self.condition not in ("squeeze", "pooled"):
            raise ValueError(f"condition: expected 'squeeze' or 'pooled', got {self.condition!r}")
        if self.scale_bound is not None and not (math.isfinite(self.scale_bound) and self.scale_bound > 0):
            raise ValueError(f"scale_bound: expected a positive number or null, got {self.scale_bound!r}")
        self.source_filter.check_mel(self.mel)
        if self.upsampler not in ("stack", "nvidia"):
            raise ValueError(f"upsampler: expected 'stack' or 'nvidia', got {self.upsampler!r}")


# ----------------------------------------------------------------------------- strict (de)serialisation
def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


# a decimal number with an exponent, which YAML 1.1 (PyYAML) leaves a string unless the mantissa has a dot
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
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
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot in the mantissa) as a string
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
    where = path or cls.__name__
    if hints.get("source_filter") is SourceFilterConfig:  # a model config: old flat keys still load
        data = nest_source_filter(data, where)
    unknown = sorted(set(data) - names)
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


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML parser error as one line: what is wrong and where (line/column, 1-based)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _read_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: 'extends' cycle through {[str(p) for p in seen]}")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e.reason} at byte {e.start})") from e
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML: {_yaml_problem(e)}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON: {e}") from e
    if data is None or data == {}:
        # an empty file (or only comments) would silently mean "every default": refuse it
        raise ValueError(f"{path}: the config is empty (no settings in it)")
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    data = nest_model_section(data, str(path))
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
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: invalid YAML value: {_yaml_problem(e)}") from e
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def read_yaml(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The plain data of a YAML/JSON file (following ``extends``) with ``key=value`` overrides applied.

    Each file and the overrides are one layer each: a layer's old flat ``model`` keys are nested
    (:func:`nest_model_section`) before the layers merge, so ``--set model.pitch_strength=1.2`` overrides
    a recipe written with the ``model.source_filter`` block."""
    overrides_data = nest_model_section(parse_overrides(overrides), "overrides")
    return merge_dicts(_read_yaml_chain(Path(path)), overrides_data)


def load_yaml(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML/JSON file (following ``extends``), then apply ``key=value`` overrides."""
    return from_dict(cls, read_yaml(path, overrides))


# ----------------------------------------------------------------------------- training experiments
DATA_SOURCES = ("auto", "folder", "csv", "ljspeech")
LR_SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class DataConfig:
    """Where the audio comes from and how training segments are cut.

    ``source``: ``"folder"`` (audio files under ``root/<split>/``), ``"csv"`` (``root/metadata.csv`` with a
    header ``path,split,...``, paths relative to ``root``), ``"ljspeech"`` (``root/metadata.csv`` with lines
    ``id|text|normalized`` and ``root/wavs/<id>.wav``; the last ``dev_count`` ids form the dev split) or
    ``"auto"`` (detected from ``metadata.csv``). A relative ``root`` is relative to the working directory.
    """

    source: str = "auto"
    root: str = ""
    train_split: str = "train"
    dev_split: str = "dev"
    dev_count: int = 100  # ljspeech layout only: how many of the last ids are held out for dev
    segment_length: int = 16384  # training segment in samples (a multiple of the mel hop)
    sample_rate: int | None = None  # None: the model's mel sample rate; other corpus rates are resampled
    min_seconds: float = 0.5  # shorter files are reported and skipped
    max_items: int | None = None  # cap on files per split (None: all)
    dev_max_items: int | None = 8  # dev utterances used for validation NLL (None: all)
    dev_max_seconds: float | None = 4.0  # dev utterances are cropped to this length (None: full)
    cache_audio: bool = True  # keep decoded audio in memory (False for corpora larger than RAM)
    peak_normalize: bool = False
    num_workers: int = 0  # DataLoader workers (mels are computed on the training device, not here)

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"data.source: expected one of {DATA_SOURCES}, got {self.source!r}")
        if self.segment_length <= 0:
            raise ValueError(f"data.segment_length: expected a positive integer, got {self.segment_length}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers: expected >= 0, got {self.num_workers}")


def _temperature(value: Any, where: str) -> float:
    """A temperature setting of the training config, by the one rule
    (:func:`waveflow_py.flows.distributions.check_temperature`); ``ValueError`` naming ``where``."""
    from waveflow_py.flows.distributions import check_temperature

    try:
        return check_temperature(value)
    except ValueError as e:
        raise ValueError(f"{where}: {str(e).removeprefix('temperature: ')} (or null)") from None


DEFAULT_STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
# (n_fft, hop) pairs the default loss does not use (4x finer, 2x coarser): validation and `waveflow eval`
# grade a spectral objective there too
UNSEEN_STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 64), (4096, 1024))


def _check_resolutions(name: str, value: Any, allow_empty: bool = False) -> tuple[tuple[int, int], ...]:
    """``value`` as a tuple of ``(n_fft, hop)`` pairs with ``0 < hop <= n_fft``, else a one-line error."""
    try:
        res = tuple(tuple(int(v) for v in r) for r in value)
    except (TypeError, ValueError):
        res = ((0, 0),)
    if (not res and not allow_empty) or any(len(r) != 2 or r[0] < 2 or not 0 < r[1] <= r[0] for r in res):
        raise ValueError(
            f"train.objective.{name}: expected a list of [n_fft, hop] with 0 < hop <= n_fft, got {value!r}"
        )
    return res


def _check_positive_ints(name: str, value: Any, allow_empty: bool = False) -> tuple[int, ...]:
    """``value`` as a tuple of positive integers, else a one-line error naming ``train.objective.<name>``."""
    items = tuple(value)
    if (not items and not allow_empty) or not all(isinstance(v, int) and v >= 1 for v in items):
        raise ValueError(f"train.objective.{name}: expected a list of positive integers, got {value!r}")
    return items


@dataclass
class ObjectiveConfig:
    """``train.objective``: what a training step minimises. The NLL (nats/sample) is always computed and
    logged, so the model stays an exact-likelihood flow; the spectral terms are computed on audio sampled
    through the model's own synthesis path, ``inverse(temperature * eps, mel)``, with gradients through the
    flows and the fixed stages (:mod:`waveflow_py.train.objective`). All weights 0 but ``nll``: plain
    maximum likelihood (the default; every recipe before this option trains that way).

    The adversarial terms (``adversarial``, ``feature_matching``; :mod:`waveflow_py.train.adversarial`) judge
    the same sampled crops with small multi-period and multi-resolution spectrogram discriminators,
    trained by their own Adam step after each generator step that has them. Turning them on turns the
    crop sampling on (on the steps ``s >= adversarial_from`` with ``s % every == 0``), with or without the
    spectral terms."""

    nll: float = 1.0  # weight of the NLL term (0: the NLL is still computed and logged, not trained)
    stft: float = 0.0  # weight of the multi-resolution STFT loss (spectral convergence + log-magnitude L1)
    mel: float = 0.0  # weight of the L1 distance of the model's log-mel (sampled vs reference)
    every: int = 1  # the sampled terms every k steps (the NLL every step)
    crop: int = 8192  # samples of each sampled crop (the first samples of a training segment)
    items: int = 2  # batch items whose crop goes through the sampling path
    temperature: float | None = None  # noise temperature of the sampled crops (None: the run's sampling)
    resolutions: tuple[tuple[int, int], ...] = DEFAULT_STFT_RESOLUTIONS  # (n_fft, hop) of the STFT loss
    adversarial: float = (
        0.0  # weight of the generator's least-squares GAN loss (0 and feature_matching 0: off)
    )
    feature_matching: float = 0.0  # weight of the L1 distance of the discriminators' features (real vs fake)
    adversarial_from: int = 0  # the step from which the adversarial terms and discriminator steps are on
    disc_lr: float = 2e-4  # Adam learning rate of the discriminators (constant)
    disc_betas: tuple[float, float] = (0.8, 0.99)  # Adam betas of the discriminators (HiFi-GAN's)
    disc_periods: tuple[int, ...] = (2, 3, 5, 7, 11)  # one period discriminator each ([]: none)
    disc_period_channels: tuple[int, ...] = (8, 16, 32, 32)  # channels of their (5, 1) convolutions
    disc_resolutions: tuple[tuple[int, int], ...] = (
        (256, 64),
        (512, 128),
        (1024, 256),
    )  # (n_fft, hop) ([]: none)
    disc_resolution_channels: tuple[int, ...] = (8, 16, 16, 16)  # channels of their (3, 9) convolutions

    @property
    def adversarial_on(self) -> bool:
        """Whether the run has discriminators (a generator adversarial or feature-matching weight > 0)."""
        return self.adversarial > 0 or self.feature_matching > 0

    @property
    def sampled(self) -> bool:
        """Whether any term needs audio sampled through the inverse."""
        return self.stft > 0 or self.mel > 0 or self.adversarial_on

    def adversarial_at(self, step: int) -> bool:
        """Whether step ``step`` has the adversarial terms (and a discriminator step)."""
        return self.adversarial_on and step >= self.adversarial_from and step % self.every == 0

    def sampled_at(self, step: int) -> bool:
        """Whether step ``step`` samples crops through the inverse (for the spectral or adversarial terms)."""
        spectral = (self.stft > 0 or self.mel > 0) and step % self.every == 0
        return spectral or self.adversarial_at(step)

    def first_adversarial_step(self) -> int:
        """The first step with the adversarial terms: the first multiple of ``every`` from
        ``adversarial_from`` on."""
        return -(-self.adversarial_from // self.every) * self.every

    def __post_init__(self) -> None:
        for name in ("nll", "stft", "mel", "adversarial", "feature_matching"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"train.objective.{name}: expected a finite weight >= 0, got {value!r}")
        if self.nll == 0 and not self.sampled:
            raise ValueError("train.objective: every weight is 0: nothing would be trained")
        if self.nll == 0 and self.stft == 0 and self.mel == 0 and self.adversarial_from > 0:
            raise ValueError(
                "train.objective.adversarial_from: the steps before it would train nothing "
                "(nll, stft and mel are 0)"
            )
        for name in ("every", "crop", "items"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"train.objective.{name}: expected a positive integer, got {getattr(self, name)}"
                )
        if self.temperature is not None:  # the one rule of a temperature (SamplingConfig's)
            self.temperature = _temperature(self.temperature, "train.objective.temperature")
        self.resolutions = _check_resolutions("resolutions", self.resolutions)
        self._check_discriminators()

    def _check_discriminators(self) -> None:
        if not self.adversarial_from >= 0:
            raise ValueError(
                f"train.objective.adversarial_from: expected a step >= 0, got {self.adversarial_from}"
            )
        if not (math.isfinite(self.disc_lr) and self.disc_lr > 0):
            raise ValueError(
                f"train.objective.disc_lr: expected a finite learning rate > 0, got {self.disc_lr}"
            )
        if len(self.disc_betas) != 2 or not all(0 <= b < 1 for b in self.disc_betas):
            raise ValueError(
                f"train.objective.disc_betas: expected two values in [0, 1), got {list(self.disc_betas)}"
            )
        self.disc_periods = _check_positive_ints("disc_periods", self.disc_periods, allow_empty=True)
        self.disc_period_channels = _check_positive_ints("disc_period_channels", self.disc_period_channels)
        self.disc_resolutions = _check_resolutions(
            "disc_resolutions", self.disc_resolutions, allow_empty=True
        )
        self.disc_resolution_channels = _check_positive_ints(
            "disc_resolution_channels", self.disc_resolution_channels
        )
        if self.adversarial_on and not (self.disc_periods or self.disc_resolutions):
            raise ValueError(
                "train.objective.disc_periods, disc_resolutions: both empty, but the adversarial terms need "
                "at least one discriminator"
            )


@dataclass
class TrainConfig:
    """Optimisation, precision, logging and checkpointing of one training run."""

    steps: int = 100000
    batch_size: int = 8  # per process (the global batch is batch_size * world size)
    lr: float = 2e-4
    lr_schedule: str = "constant"  # "constant", "step" (x lr_gamma every lr_step_size) or "cosine"
    warmup_steps: int = 0  # linear warm-up from 0 to lr (all schedules)
    lr_step_size: int = 200000
    lr_gamma: float = 0.5
    lr_min_ratio: float = 0.0  # cosine floor, as a fraction of lr
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max global grad norm (0: no clipping; the norm is logged either way)
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (autocast; CPU bf16: measure it first; fp16 CUDA only)
    compile: bool = False  # torch.compile the training module
    ema_decay: float = 0.0  # exponential moving average of the weights (0: off)
    seed: int = 1234
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    num_threads: int | None = None  # torch.set_num_threads on CPU (None: leave as is)
    out_dir: str = "runs/exp"
    log_every: int = 10
    val_every: int = 1000
    val_at_start: bool = False  # also validate before the first step (a step-0 point on the dev curve)
    val_clips: int = 2  # dev clips vocoded at validation (mel L1, audio and spectrograms)
    val_temperature: float | None = None  # the run's sampling temperature (None: init_from's, else 0.6)
    val_sigma: float | None = None  # deprecated name of val_temperature (accepted with a warning)
    ckpt_every: int = 1000
    keep_last_k: int = 3
    max_nonfinite: int = 10  # this many consecutive non-finite losses stop the run
    progress: bool = True  # tqdm bar on rank 0
    tensorboard: bool = True  # TensorBoard event files (if tensorboard is installed)
    export_release: bool = True  # write a release (pretrained.save_release) at the end
    max_minutes: float | None = None  # time budget: stop cleanly (checkpoint, validate, export) after it
    budget_clock: str = "wall"  # what max_minutes counts: "wall" (elapsed) or "cpu" (this process's CPU time)
    init_from: str | None = None  # a release (name or directory) whose weights start a new run (fine-tuning)
    # with init_from: the step the new run starts at (its learning-rate schedule, data order and step
    # count go on from there; a lineage continued from a resume point: the steps in its provenance)
    init_step: int = 0
    # the learned pitch predictor's weights (a `waveflow train-pitch` output directory) for a model whose
    # model.source_filter.source_pitch is "learned" or "hybrid"; loaded when a run starts (not on resume),
    # then fixed
    pitch_net: str | None = None
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)  # NLL and sampled spectral terms

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule: expected one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision: expected one of {PRECISIONS}, got {self.precision!r}")
        for name in (
            "steps",
            "batch_size",
            "log_every",
            "val_every",
            "ckpt_every",
            "keep_last_k",
            "max_nonfinite",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}: expected a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay: expected 0 <= decay < 1, got {self.ema_decay}")
        if self.lr <= 0:
            raise ValueError(f"train.lr: expected > 0, got {self.lr}")
        if not 0 <= self.init_step < self.steps:
            raise ValueError(
                f"train.init_step: expected 0 <= init_step < train.steps ({self.steps}), got {self.init_step}"
            )
        if self.init_step and not self.init_from:
            raise ValueError(
                "train.init_step: a run starts at a later step only from a release (train.init_from)"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"train.max_minutes: expected > 0 (or null: no budget), got {self.max_minutes}")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"train.budget_clock: expected 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.val_sigma is not None:
            warnings.warn(
                "train.val_sigma is deprecated: use train.val_temperature", FutureWarning, stacklevel=2
            )
            if self.val_temperature is None:
                self.val_temperature = self.val_sigma
            self.val_sigma = None
        if self.val_temperature is not None:
            self.val_temperature = _temperature(self.val_temperature, "train.val_temperature")


@dataclass
class ExperimentConfig:
    """One training experiment: ``model_type`` + ``model``, ``data`` and ``train``.

    ``model`` is given as a mapping (YAML/JSON) and resolved **once**, at construction, into the typed
    config of ``model_type`` (:data:`MODEL_CONFIGS`: ``WaveFlowConfig`` or ``WaveGlowConfig``);
    afterwards ``exp.model`` is that dataclass. ``mel_preset`` (optional) fills ``model.mel`` from
    :data:`MEL_PRESETS` before any explicit ``model.mel`` keys of the mapping are applied."""

    model_type: str = "waveflow"
    mel_preset: str | None = None
    model: Any = field(default_factory=dict)  # a mapping in, a WaveFlowConfig / WaveGlowConfig after init
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_CONFIGS:
            raise ValueError(f"model_type: expected one of {sorted(MODEL_CONFIGS)}, got {self.model_type!r}")
        cls = MODEL_CONFIGS[self.model_type]
        if isinstance(self.model, Mapping):
            data = dict(self.model)
            if self.mel_preset is not None:
                base = to_dict(mel_preset(self.mel_preset))
                data["mel"] = merge_dicts(base, data.get("mel") or {})
            self.model = from_dict(cls, data, path="model")
        elif not isinstance(self.model, cls):
            raise ValueError(
                f"model: expected a mapping or a {cls.__name__} for model_type {self.model_type!r}, "
                f"got {type(self.model).__name__}"
            )
        cfg = self.model
        hop = cfg.mel.hop_length
        if self.data.segment_length % hop:
            raise ValueError(
                f"data.segment_length ({self.data.segment_length}) must be a multiple of the mel hop ({hop})"
            )
        if self.data.sample_rate is not None and self.data.sample_rate != cfg.mel.sample_rate:
            raise ValueError(
                f"data.sample_rate ({self.data.sample_rate}) differs from model mel sample_rate "
                f"({cfg.mel.sample_rate}); leave it null to use the model's rate"
            )

    def model_config(self) -> WaveFlowConfig | WaveGlowConfig:
        """The typed model config (``self.model``, resolved once at construction)."""
        return self.model

    @property
    def sample_rate(self) -> int:
        return self.model.mel.sample_rate


MODEL_CONFIGS: dict[str, type] = {"waveflow": WaveFlowConfig, "waveglow": WaveGlowConfig}
