"""Sampling settings: one typed object, one validator, one resolution rule.

How a flow vocoder turns noise into audio is set by a few numbers that are not weights:

* ``temperature``: the noise is ``temperature * sigma * N(0, 1)`` (``sigma``: the prior's training scale);
* ``truncation``: the noise drawn from the normal truncated to ``+-truncation`` standard deviations
  (:class:`~waveflow_py.flows.distributions.StandardNormal`; ``None``: untruncated);
* ``excitation_rms``: each ``hop``-sample frame of the flows' output set to this RMS before the envelope
  filter (:func:`~waveflow_py.sourcefilter.level.level_frames`; envelope priors only; ``None``: off);
* ``pitch_strength``: the gain of the mel-derived pitch predictor at synthesis (``None``: the strength the
  model was built with, ``model.source_filter.pitch_strength``; pitch priors only);
* ``mel_projection``: the strength in [0, 1] of the mel projection, a post-filter that moves the output's
  STFT magnitude onto the one the mel describes and keeps its phase
  (:func:`~waveflow_py.inference.projection.project_to_mel`; centred mels only; ``None`` or 0: off). It
  acts on the sample, after the flow: ``log_prob`` and the training objective never see it;
* ``projection_iters``: Griffin-Lim iterations after the mel projection, started from the sample's phase
  (0: none; inert without ``mel_projection``);
* ``projection_fit``: how the projection finds the magnitude it gives the output: 0, the mel's smooth
  magnitude (its filter bank's pseudo-inverse), fixed, with the sample's phase kept below 600 Hz (the
  releases before it); ``n >= 1``, a magnitude fitted to the mel from the output's own, again after
  every iteration by ``n`` multiplicative updates (keeps the harmonics the model put there:
  mel-constrained Griffin-Lim), with the sample's phase kept below 150 Hz; inert without
  ``mel_projection``.

:class:`SamplingConfig` holds them, validated by :meth:`SamplingConfig.__post_init__` (the one validator;
every reader of a temperature, truncation, level or strength goes through it). The one rule,
:func:`resolve_sampling`: **an explicit argument beats the release, which beats the library default**
(:data:`DEFAULT_SAMPLING`). A release stores its settings as one ``sampling`` block of ``config.json``;
:func:`~waveflow_py.pretrained.load_release` puts them on the model (``model.sampling``), which is the
"release" level every sampler reads when it is given no explicit settings (``synthesize``,
``model.inverse``, streaming, the training objective, validation, evaluation).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waveflow_py.config import source_filter_of
from waveflow_py.flows.distributions import check_positive, check_temperature

__all__ = [
    "DEFAULT_TEMPERATURE",
    "SamplingConfig",
    "DEFAULT_SAMPLING",
    "KEEP",
    "resolve_sampling",
    "sampling_of",
    "check_for_model",
    "pitch_strength_of",
    "inert_settings",
    "describe_sampling",
    "check_mel_projection",
    "check_projection_iters",
    "check_projection_fit",
    "MAX_PROJECTION_ITERS",
    "MAX_PROJECTION_FIT",
]

# Flow vocoders are trained with the prior N(0, sigma^2) and synthesise speech from a narrower one:
# z ~ N(0, (temperature * sigma)^2) with temperature 0.6 (WaveGlow, Prenger et al. 2019; WaveFlow, Ping
# et al. 2020). The library default; a release's sampling block overrides it.
DEFAULT_TEMPERATURE = 0.6

# the value of an override that is not given (the level below applies); "release" is its spelling in
# the CLI and in the keyword arguments of Vocoder / EvalModel
KEEP = "release"

FIELDS = (
    "temperature",
    "truncation",
    "excitation_rms",
    "pitch_strength",
    "mel_projection",
    "projection_iters",
    "projection_fit",
)


def _number(value: Any) -> float:
    """``value`` as a float; NaN for a bool or anything that is not a number (the checks reject NaN)."""
    try:
        return math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return math.nan


def _check_strength(value: Any) -> float | None:
    """``pitch_strength``: a finite number >= 0 (a bool is not one), or ``None`` (as the model was built)."""
    if value is None:
        return None
    v = _number(value)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"pitch_strength: expected a finite number >= 0 or none, got {value!r}")
    return v


def check_mel_projection(value: Any) -> float | None:
    """``mel_projection``: a finite number in [0, 1] (a bool is not one), or ``None``; 0 is stored as
    ``None`` (off)."""
    if value is None:
        return None
    v = _number(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"mel_projection: expected a strength in [0, 1] or none (0: off), got {value!r}")
    return v or None


# Griffin-Lim iterations a projection may ask for (each costs two STFTs of the output and widens the
# streaming lag by n_fft samples)
MAX_PROJECTION_ITERS = 256


# multiplicative updates per fit a projection may ask for (each costs two products with the filter bank)
MAX_PROJECTION_FIT = 64


def _count(value: Any, name: str, top: int, zero: str) -> int:
    """A whole number in [0, top] (``None``: 0), else a ``ValueError`` naming ``name``."""
    if value is None:
        return 0
    v = _number(value)
    if not (0 <= v <= top and v == int(v)):
        raise ValueError(f"{name}: expected a whole number in [0, {top}] (0: {zero}), got {value!r}")
    return int(v)


def check_projection_iters(value: Any) -> int:
    """``projection_iters``: a whole number in [0, :data:`MAX_PROJECTION_ITERS`] (``None``: 0)."""
    return _count(value, "projection_iters", MAX_PROJECTION_ITERS, "none")


def check_projection_fit(value: Any) -> int:
    """``projection_fit``: a whole number in [0, :data:`MAX_PROJECTION_FIT`] (``None``: 0)."""
    return _count(value, "projection_fit", MAX_PROJECTION_FIT, "the mel's smooth magnitude, fixed")


@dataclass(frozen=True)
class SamplingConfig:
    """The sampling settings (module docstring). Frozen: change one with :func:`resolve_sampling` or
    ``dataclasses.replace`` (both validate). ``None`` turns ``truncation`` and ``excitation_rms`` off and
    leaves ``pitch_strength`` as the model was built."""

    temperature: float = DEFAULT_TEMPERATURE
    truncation: float | None = None
    excitation_rms: float | None = None
    pitch_strength: float | None = None
    mel_projection: float | None = None
    projection_iters: int = 0
    projection_fit: int = 0

    def __post_init__(self) -> None:
        checked = {
            "temperature": check_temperature(self.temperature),
            "truncation": check_positive(self.truncation, "truncation", "standard deviations"),
            "excitation_rms": check_positive(self.excitation_rms, "excitation_rms"),
            "pitch_strength": _check_strength(self.pitch_strength),
            "mel_projection": check_mel_projection(self.mel_projection),
            "projection_iters": check_projection_iters(self.projection_iters),
            "projection_fit": check_projection_fit(self.projection_fit),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, float | None]:
        """Plain data (a release's ``sampling`` block): every field, ``None`` as null."""
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sampling") -> SamplingConfig:
        """Strictly from plain data: unknown keys and non-numbers are ``ValueError`` naming ``where.key``;
        missing keys take the library default."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping of {list(FIELDS)}, got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {list(FIELDS)}")
        for key, value in data.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{where}.{key}: expected a number or null, got {value!r}")
        try:
            return cls(**dict(data))
        except ValueError as e:
            raise ValueError(f"{where}.{e}") from None


DEFAULT_SAMPLING = SamplingConfig()


def resolve_sampling(
    base: SamplingConfig | None = None, sampling: SamplingConfig | None = None, **overrides: Any
) -> SamplingConfig:
    """THE rule: explicit beats release beats library default.

    ``base``: the release level (``None``: :data:`DEFAULT_SAMPLING`); ``sampling``: an explicit whole
    object (replaces ``base``); ``overrides``: explicit single fields (an override of ``None`` means
    "not given" for ``temperature``, and :data:`KEEP` (``"release"``) means "not given" for every field;
    ``"none"``/``"off"`` turn ``truncation``/``excitation_rms``/``mel_projection`` off; ``"model"`` is
    ``pitch_strength`` as the model was built, as on the command line). Returns the validated settings."""
    out = sampling if sampling is not None else (base if base is not None else DEFAULT_SAMPLING)
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise TypeError(f"resolve_sampling: unknown setting(s) {unknown}; expected some of {list(FIELDS)}")
    given = {}
    for name, value in overrides.items():
        if isinstance(value, str) and value.strip().lower() == KEEP:
            continue
        if value is None and name == "temperature":
            continue
        if isinstance(value, str) and value.strip().lower() in ("none", "off"):
            value = None
        elif name == "pitch_strength" and isinstance(value, str) and value.strip().lower() == "model":
            value = None
        given[name] = value
    return dataclasses.replace(out, **given) if given else out


def sampling_of(model: Any) -> SamplingConfig:
    """The release level of a model: ``model.sampling`` (set by ``load_release``; a model built in code
    has the library default)."""
    value = getattr(model, "sampling", None)
    return value if isinstance(value, SamplingConfig) else DEFAULT_SAMPLING


def check_for_model(sampling: SamplingConfig, config: Any) -> SamplingConfig:
    """``sampling`` if it fits a model of ``config``: ``excitation_rms`` needs an envelope prior (gain or
    lpc: only they calibrate the excitation's level), ``pitch_strength`` a pitch prior (ltp),
    ``mel_projection`` centred mel frames; else a ``ValueError`` naming the setting and the model's
    stage."""
    stages = source_filter_of(config)
    if sampling.excitation_rms is not None and stages.envelope not in ("gain", "lpc"):
        raise ValueError(
            f"excitation_rms: needs a model with an envelope prior (gain or lpc), this one has "
            f"envelope {stages.envelope!r}"
        )
    if sampling.pitch_strength is not None and stages.pitch == "none":
        raise ValueError(
            "pitch_strength: needs a model with a pitch prior (source_filter.pitch: ltp), this one has none"
        )
    padding = getattr(getattr(config, "mel", None), "padding", "center")
    if sampling.mel_projection is not None and padding != "center":
        raise ValueError(
            f"mel_projection: needs centred mel frames (padding 'center'), this model's are {padding!r}"
        )
    return sampling


def pitch_strength_of(sampling: SamplingConfig, config: Any) -> float | None:
    """The pitch strength synthesis uses: the setting, else the model's built one (``None``: no pitch
    prior)."""
    stages = source_filter_of(config)
    if stages.pitch == "none":
        return None
    return stages.pitch_strength if sampling.pitch_strength is None else sampling.pitch_strength


def inert_settings(sampling: SamplingConfig) -> list[str]:
    """Settings that another setting makes inert, one sentence each (callers report them once)."""
    out = []
    if sampling.temperature == 0 and sampling.truncation is not None:
        out.append(f"truncation {sampling.truncation:g} has no effect at temperature 0 (the noise is zero)")
    for name in ("projection_iters", "projection_fit"):
        if getattr(sampling, name) and sampling.mel_projection is None:
            out.append(f"{name} {getattr(sampling, name)} has no effect without mel_projection")
    return out


def describe_sampling(sampling: SamplingConfig, config: Any) -> dict[str, Any]:
    """The resolved settings as shown by ``waveflow info`` and eval reports: every field, with the
    pitch strength filled in from the model where the setting leaves it as built."""
    out: dict[str, Any] = sampling.to_dict()
    out["pitch_strength"] = pitch_strength_of(sampling, config)
    return out
