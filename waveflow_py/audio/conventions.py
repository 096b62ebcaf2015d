"""Mel conventions of TTS front ends, adapters to the model's own convention, and the mel of silence.

A vocoder is conditioned on ``log_compress(mel_filter_bank @ |STFT|)`` exactly as its
:class:`~waveflow_py.config.MelConfig` says. Acoustic models emit the same *features* in other
*encodings*; this module converts between them (see ``docs/mel-formats.md`` for what is exact):

=========  ==============================================================  ==========================
format     encoding of the mel magnitude ``M``                             used by
=========  ==============================================================  ==========================
``model``  the model's own: ``cfg.log`` of ``max(M, cfg.clamp)``, stats    this package
``ln``     ``ln(max(M, floor))``                                           Tacotron 2, WaveGlow, HiFi-GAN
``log10``  ``log10(max(M, floor))``, optionally ``(x - mean) / std``       ESPnet, ParallelWaveGAN
``db``     ``20 log10(M) - ref_level_db`` range-normalised to [-k, k]      Coqui TTS (AudioProcessor)
=========  ==============================================================  ==========================

The encodings are exact transforms of each other (up to the floors). Different *features*
(sample rate, hop, FFT size, mel band edges or scale, power) are not: :func:`to_model_mel` refuses
them unless ``approximate=True``, which re-projects through the pseudo-inverse of the source filter
bank (same sample rate and hop only). A mel that is not log-compressed at all (linear magnitude or
power) is refused with the conversion to apply. Conversion runs on the mel's own device.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from waveflow_py.audio.mel import mel_filter_bank
from waveflow_py.audio.melcheck import as_mel_tensor, check_mel, check_raw_log_mel, mel_value_range
from waveflow_py.audio.stats import load_stats
from waveflow_py.config import MelConfig, from_dict, mel_preset

__all__ = [
    "MelSettingsError",
    "carried_to_model",
    "describe_mel",
    "MEL_FORMATS",
    "FORMAT_ALIASES",
    "check_format_params",
    "check_mel",
    "silent_mel",
    "from_model_mel",
    "load_stats",
    "mel_value_range",
    "resolve_format",
    "to_model_mel",
]

logger = logging.getLogger(__name__)

MEL_FORMATS: dict[str, str] = {
    "model": "already in the model's convention (its MelConfig: log base, clamp, stats)",
    "ln": "natural-log mel magnitude (Tacotron 2, WaveGlow, HiFi-GAN, NeMo)",
    "log10": "log10 mel magnitude, optional mean/std stats (ESPnet, ParallelWaveGAN)",
    "db": "dB mel, ref_level_db-shifted and range-normalised to [-max_norm, max_norm] (Coqui TTS)",
}
FORMAT_ALIASES: dict[str, str] = {
    "tacotron2": "ln",
    "waveglow": "ln",
    "hifigan": "ln",
    "natural": "ln",
    "natural_log": "ln",
    "espnet": "log10",
    "parallel_wavegan": "log10",
    "pwg": "log10",
    "coqui": "db",
    "mozilla": "db",
}
# Coqui TTS BaseAudioConfig defaults (signal_norm on, symmetric, max_norm 4, clipped, log10 and gain 20).
DB_DEFAULTS: dict[str, Any] = {
    "ref_level_db": 20.0,
    "min_level_db": -100.0,
    "spec_gain": 20.0,
    "signal_norm": True,
    "symmetric_norm": True,
    "max_norm": 4.0,
    "clip_norm": True,
    "log_base": 10.0,
}
# Fields that define the features themselves (not their encoding): a mismatch is not exactly convertible.
_FEATURE_FIELDS = (
    "sample_rate",
    "hop_length",
    "n_fft",
    "win_length",
    "n_mels",
    "fmin",
    "fmax",
    "mel_scale",
    "mel_norm",
    "power",
    "padding",
    "mag_eps",
)
# Fields that define the filter bank applied to |X|: when they agree, no re-projection is needed.
_FILTER_FIELDS = ("n_fft", "win_length", "n_mels", "fmin", "fmax", "mel_scale", "mel_norm")
_LN10 = math.log(10.0)


def resolve_format(fmt: str) -> str:
    """Canonical format name from a name or alias (``"espnet"`` -> ``"log10"``)."""
    key = fmt.lower().replace("-", "_")
    key = FORMAT_ALIASES.get(key, key)
    if key not in MEL_FORMATS:
        names = sorted([*MEL_FORMATS, *FORMAT_ALIASES])
        raise ValueError(f"unknown mel format {fmt!r}; expected one of {', '.join(names)}")
    return key


def _stats_pair(params: dict[str, Any], n_mels: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if params.get("stats") is not None:
        mean, std = load_stats(params["stats"])
    else:
        mean = None if params.get("mean") is None else np.asarray(params["mean"], np.float64).ravel()
        std = None if params.get("std") is None else np.asarray(params["std"], np.float64).ravel()
    for name, v in (("mean", mean), ("std", std)):
        if v is not None and v.shape != (n_mels,):
            raise ValueError(f"{name} stats: expected {n_mels} values (one per mel bin), got {v.shape[0]}")
    if std is not None and not (std > 0).all():
        raise ValueError("std stats: expected positive values")
    return mean, std


def _decode_ln(x: Tensor, fmt: str, n_mels: int, params: dict[str, Any], model: MelConfig) -> Tensor:
    """Format-encoded mel -> natural log of the mel magnitude (float64)."""
    if fmt == "model":
        mean, std = model.mean, model.std
        out = x * torch.tensor(std, dtype=x.dtype, device=x.device)[:, None] if std is not None else x
        if mean is not None:
            out = out + torch.tensor(mean, dtype=x.dtype, device=x.device)[:, None]
        return out * _LN10 if model.log == "log10" else out
    if fmt in ("ln", "log10"):
        mean, std = _stats_pair(params, n_mels)
        out = x * torch.from_numpy(std).to(x.device)[:, None] if std is not None else x
        out = out + torch.from_numpy(mean).to(x.device)[:, None] if mean is not None else out
        return out * _LN10 if fmt == "log10" else out
    p = {**DB_DEFAULTS, **params}
    db = x
    if p["signal_norm"]:
        k, lo = float(p["max_norm"]), float(p["min_level_db"])
        if p["symmetric_norm"]:
            db = db.clamp(-k, k) if p["clip_norm"] else db
            db = (db + k) * (-lo) / (2 * k) + lo
        else:
            db = db.clamp(0, k) if p["clip_norm"] else db
            db = db * (-lo) / k + lo
    db = db + float(p["ref_level_db"])
    return db / float(p["spec_gain"]) * math.log(float(p["log_base"]))


def _encode_ln(ln_mel: Tensor, fmt: str, n_mels: int, params: dict[str, Any], model: MelConfig) -> Tensor:
    """Natural log of the mel magnitude -> format encoding (inverse of :func:`_decode_ln`)."""
    if fmt == "model":
        out = ln_mel.clamp(min=math.log(model.clamp))
        out = out / _LN10 if model.log == "log10" else out
        if model.mean is not None:
            out = out - torch.tensor(model.mean, dtype=out.dtype, device=out.device)[:, None]
        if model.std is not None:
            out = out / torch.tensor(model.std, dtype=out.dtype, device=out.device)[:, None]
        return out
    if fmt in ("ln", "log10"):
        floor = float(params.get("clamp", 1e-5 if fmt == "ln" else 1e-10))
        out = ln_mel.clamp(min=math.log(floor))
        out = out / _LN10 if fmt == "log10" else out
        mean, std = _stats_pair(params, n_mels)
        out = out - torch.from_numpy(mean).to(out.device)[:, None] if mean is not None else out
        return out / torch.from_numpy(std).to(out.device)[:, None] if std is not None else out
    p = {**DB_DEFAULTS, **params}
    base = float(p["log_base"])
    floor = float(p.get("amp_floor", 1e-8))  # Coqui amp_to_db: gain * log(max(1e-8, x))
    db = float(p["spec_gain"]) * ln_mel.clamp(min=math.log(floor)) / math.log(base) - float(p["ref_level_db"])
    if not p["signal_norm"]:
        return db
    k, lo = float(p["max_norm"]), float(p["min_level_db"])
    norm = (db - lo) / (-lo)
    if p["symmetric_norm"]:
        out = 2 * k * norm - k
        return out.clamp(-k, k) if p["clip_norm"] else out
    out = k * norm
    return out.clamp(0, k) if p["clip_norm"] else out


def _as_mel_config(cfg: MelConfig | str | Mapping[str, Any] | None) -> MelConfig | None:
    if cfg is None or isinstance(cfg, MelConfig):
        return cfg
    if isinstance(cfg, str):
        return mel_preset(cfg)
    if isinstance(cfg, Mapping):
        return from_dict(MelConfig, cfg, path="source_cfg")
    raise ValueError(f"source_cfg: expected a MelConfig, preset name or mapping, got {type(cfg).__name__}")


def _feature_mismatch(source: MelConfig, model: MelConfig) -> list[str]:
    return [
        f"{f}: {getattr(source, f)!r} vs model {getattr(model, f)!r}"
        for f in _FEATURE_FIELDS
        if getattr(source, f) != getattr(model, f)
    ]


def describe_mel(cfg: MelConfig) -> str:
    """``"16k: 16000 Hz, hop 256, 80 mels 0-8000 Hz, ln"``: the settings that decide a mel's features."""
    fmax = cfg.fmax if cfg.fmax is not None else cfg.sample_rate / 2
    return (
        f"{cfg.preset or 'custom'}: {cfg.sample_rate} Hz, hop {cfg.hop_length}, {cfg.n_mels} mels "
        f"{cfg.fmin:g}-{fmax:g} Hz, {cfg.log}"
    )


class MelSettingsError(ValueError):
    """A mel's own settings have other features than the model's (rate, hop, bins, bands, ...): no exact
    conversion exists. ``approximable``: same frame rate and power, so ``approximate=True`` can
    re-project it through the filter banks."""

    def __init__(self, source: MelConfig, model: MelConfig) -> None:
        self.source, self.model = source, model
        self.differences = [f for f in _FEATURE_FIELDS if getattr(source, f) != getattr(model, f)]
        self.approximable = all(
            getattr(source, f) == getattr(model, f) for f in ("sample_rate", "hop_length", "power")
        )
        super().__init__(
            f"the mel was computed with {describe_mel(source)}, but the model needs {describe_mel(model)} "
            f"({', '.join(self.differences)} differ{'s' if len(self.differences) == 1 else ''}: no exact "
            "conversion)"
        )


def carried_to_model(mel: Any, source: MelConfig, model: MelConfig, *, approximate: bool = False) -> Tensor:
    """A mel in the model convention of its own settings ``source`` (what :func:`waveflow_py.audio.melfile.
    load_mel` reads from the file) -> the ``model``'s convention, ``(B, n_mels, F)`` float32, checked.

    Only the encoding differs (log base, clamp, stats): converted exactly. The features differ:
    :class:`MelSettingsError`, or with ``approximate`` (same rate, hop and power) re-projected.
    """
    x = as_mel_tensor(mel, source.n_mels)
    ln_mel = _decode_ln(x, "model", source.n_mels, {}, source)
    if _feature_mismatch(source, model):
        if not (approximate and (err := MelSettingsError(source, model)).approximable):
            raise MelSettingsError(source, model)
        logger.warning("approximating a mel of other features: %s", err.differences)
        ln_mel = _reproject(ln_mel, source, model)
    out = _encode_ln(ln_mel, "model", model.n_mels, {}, model)
    return check_mel(out.to(torch.float32), model)


def _reproject(ln_mel: Tensor, source: MelConfig, model: MelConfig) -> Tensor:
    """Approximate: source mel -> linear spectrum (pinv, clipped at 0) -> model filter bank.

    Different frame rates and powers are refused; an identical filter bank is passed through.
    """
    if source.sample_rate != model.sample_rate or source.hop_length != model.hop_length:
        raise ValueError(
            f"mel features at {source.sample_rate} Hz / hop {source.hop_length} cannot be converted to "
            f"{model.sample_rate} Hz / hop {model.hop_length} (different frame rate): resample the audio "
            "and recompute the mel with the model's front end"
        )
    if source.power != model.power:
        raise ValueError(
            f"mel power {source.power} vs model {model.power}: not convertible, even approximately"
        )
    if all(getattr(source, f) == getattr(model, f) for f in _FILTER_FIELDS):
        return ln_mel  # same filter bank: only padding / magnitude epsilon differ
    fb_s, fb_m = mel_filter_bank(source), mel_filter_bank(model)
    freqs_s = np.linspace(0, source.sample_rate / 2, fb_s.shape[1])
    freqs_m = np.linspace(0, model.sample_rate / 2, fb_m.shape[1])
    interp = np.stack([np.interp(freqs_m, freqs_s, row) for row in np.eye(fb_s.shape[1])], axis=1)
    interp *= model.win_length / source.win_length  # a tone's peak |X| scales with the window sum
    to_lin = torch.from_numpy(np.linalg.pinv(fb_s)).to(ln_mel.device)
    to_mel = torch.from_numpy(fb_m @ interp).to(ln_mel.device)
    lin = (to_lin @ ln_mel.exp()).clamp(min=0.0)
    return torch.log((to_mel @ lin).clamp(min=1e-30))


def to_model_mel(
    mel: Any,
    fmt: str,
    model_cfg: MelConfig,
    *,
    source_cfg: MelConfig | str | Mapping[str, Any] | None = None,
    approximate: bool = False,
    check: bool = True,
    **fmt_params: Any,
) -> Tensor:
    """Convert a front end's mel ``(n_mels, F)`` / ``(B, n_mels, F)`` to the model's convention.

    Args:
        mel: array or tensor in format ``fmt``.
        fmt: a name of :data:`MEL_FORMATS` or an alias (``"espnet"``, ``"coqui"``, ...).
        model_cfg: the vocoder's mel settings (the target convention).
        source_cfg: the front end's feature settings, when known: a MelConfig, a preset name or a
            mapping (so ``--mel-param source_cfg=espnet`` works). Features that differ from the
            model's (rate, hop, FFT, band edges, scale, ...) are refused unless ``approximate``.
        approximate: allow the pseudo-inverse re-projection for differing filter banks.
        check: validate the result with :func:`check_mel`.
        **fmt_params: ``log10``/``ln``: ``stats`` (path or (2, n_mels) array) or ``mean``/``std``;
            ``db``: ``ref_level_db``, ``min_level_db``, ``spec_gain``, ``signal_norm``,
            ``symmetric_norm``, ``max_norm``, ``clip_norm``, ``log_base`` (Coqui names, defaults
            in :data:`DB_DEFAULTS`).

    Returns:
        float32 tensor ``(B, n_mels_model, F)``.
    """
    fmt = resolve_format(fmt)
    check_format_params(fmt, fmt_params)
    source_cfg = _as_mel_config(source_cfg)
    n_in = source_cfg.n_mels if source_cfg is not None else model_cfg.n_mels
    plain = fmt == "model" and source_cfg is None  # no arithmetic: no float64 copy
    x = as_mel_tensor(mel, n_in, dtype=None if plain else torch.float64)
    if plain:
        out = x
    else:
        ln_mel = _decode_ln(x, fmt, n_in, fmt_params, model_cfg)
        if fmt in ("ln", "log10") and check:  # the values as given, before the model's floor clamps them
            check_raw_log_mel(ln_mel, source_cfg or model_cfg, fmt)
        if source_cfg is not None and (diffs := _feature_mismatch(source_cfg, model_cfg)):
            if not approximate:
                raise ValueError(
                    "the mel features differ from the model's, so no exact conversion exists ("
                    + "; ".join(diffs)
                    + "); recompute the mel with the model's front end, or pass approximate=True "
                    "(waveflow vocode --mel-approximate) to re-project through the filter banks"
                )
            logger.warning("approximating mel conversion across different features: %s", "; ".join(diffs))
            ln_mel = _reproject(ln_mel, source_cfg, model_cfg)
        out = _encode_ln(ln_mel, "model", model_cfg.n_mels, {}, model_cfg)
    out = out.to(torch.float32)
    return check_mel(out, model_cfg) if check else out


def from_model_mel(mel: Any, fmt: str, model_cfg: MelConfig, **fmt_params: Any) -> Tensor:
    """Encode a model-convention mel in another format (the inverse of :func:`to_model_mel`), float64."""
    fmt = resolve_format(fmt)
    check_format_params(fmt, fmt_params)
    x = as_mel_tensor(mel, model_cfg.n_mels)
    ln_mel = _decode_ln(x, "model", model_cfg.n_mels, {}, model_cfg)
    return _encode_ln(ln_mel, fmt, model_cfg.n_mels, fmt_params, model_cfg)


def check_format_params(fmt: str, params: dict[str, Any]) -> None:
    allowed = {
        "model": set(),
        "ln": {"stats", "mean", "std", "clamp"},
        "log10": {"stats", "mean", "std", "clamp"},
        "db": {*DB_DEFAULTS, "amp_floor"},
    }[fmt]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"mel format {fmt!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")


def silent_mel(
    cfg: MelConfig,
    frames: int,
    batch: int = 1,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The model-convention mel of digital silence, ``(batch, n_mels, frames)``.

    Every bin is ``log(clamp)`` (natural log or log10 as ``cfg.log`` says), normalised with
    ``cfg.mean``/``cfg.std`` when the config has them: what :class:`MelSpectrogram` gives for zeros.
    """
    if frames < 1 or batch < 1:
        raise ValueError(f"silent_mel: expected frames >= 1 and batch >= 1, got {frames}, {batch}")
    clamp = torch.tensor(cfg.clamp, dtype=torch.float64)
    value = torch.log(clamp) if cfg.log == "ln" else torch.log10(clamp)
    column = value.expand(cfg.n_mels).clone()
    if cfg.mean is not None:
        column = column - torch.tensor(cfg.mean, dtype=torch.float64)
    if cfg.std is not None:
        column = column / torch.tensor(cfg.std, dtype=torch.float64)
    return column.to(device=device, dtype=dtype)[None, :, None].expand(batch, cfg.n_mels, frames).contiguous()
