"""Baselines without a learned model: Griffin-Lim, and the zero-parameter envelope model.

**Envelope baseline** (:func:`envelope_noise`): unit Gaussian noise through the time-varying LPC
synthesis filter and gain that the log-mel itself gives (:class:`~waveflow_py.sourcefilter.envelope.
SpectralEnvelope`, order 16 by default): the formants and the energy contour are right, there is no
periodicity. It is what a flow with an ``lpc`` envelope prior produces before any training, so a trained
model must beat it. ``log_scale`` is the global excitation scale (a release's calibrated value; 0 in
``waveflow eval``, where the baseline has no parameter at all). :func:`envelope_log_prob` is its exact
log-likelihood of a waveform (whitening by the same filter, Gaussian excitation, log-det of the gains).

**Griffin-Lim**:

The model's log-mel (:class:`~waveflow_py.config.MelConfig`) is undone step by step: mean/std
normalisation, ``log``/``log10`` (``exp`` / ``10**``), then the mel filter bank is inverted by
non-negative least squares (``librosa.feature.inverse.mel_to_stft``, librosa's Slaney/HTK filters
with the config's ``fmin``, ``fmax``, ``mel_scale`` and ``mel_norm``), giving a linear magnitude
spectrogram. Phase comes from fast Griffin-Lim (Griffin & Lim 1984; Perraudin et al. 2013:
``librosa.griffinlim``, momentum 0.99, random initial phase from ``seed``) with the config's
``n_fft``, ``hop_length``, ``win_length`` and a Hann window; :data:`DEFAULT_GL_ITERS` = 60 iterations.
Frames are centred for ``padding="center"``; for ``padding="hifigan"`` the ``(n_fft - hop) // 2``
reflect padding is undone so the output stays time-aligned with the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from waveflow_py.audio import log_decompress
from waveflow_py.config import MelConfig

__all__ = [
    "DEFAULT_GL_ITERS",
    "ENVELOPE_ORDER",
    "mel_to_linear",
    "griffin_lim",
    "envelope_noise",
    "envelope_log_prob",
]

DEFAULT_GL_ITERS = 60
ENVELOPE_ORDER = 16  # LPC order of the envelope baseline (the `lpc` prior's default)


def mel_to_linear(log_mel_spec: Any, mel_config: MelConfig) -> np.ndarray:
    """Linear STFT magnitude ``(n_fft // 2 + 1, frames)`` from one log-mel ``(n_mels, frames)`` (NNLS)."""
    import librosa

    if hasattr(log_mel_spec, "detach"):
        log_mel_spec = log_mel_spec.detach().cpu().numpy()
    x = np.asarray(log_mel_spec, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2 or x.shape[0] != mel_config.n_mels:
        raise ValueError(f"log-mel: expected shape ({mel_config.n_mels}, frames), got {x.shape}")
    mel = log_decompress(torch.from_numpy(x), mel_config).numpy()  # the front end's linear mel
    return librosa.feature.inverse.mel_to_stft(
        mel,
        sr=mel_config.sample_rate,
        n_fft=mel_config.n_fft,
        power=mel_config.power,
        fmin=mel_config.fmin,
        fmax=mel_config.fmax,
        htk=mel_config.mel_scale == "htk",
        norm=mel_config.mel_norm,
    )


def griffin_lim(
    log_mel_spec: Any,
    mel_config: MelConfig,
    n_iter: int = DEFAULT_GL_ITERS,
    length: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Audio ``(T,)`` float32 from a log-mel ``(n_mels, frames)``; ``length`` trims/pads to T samples."""
    import librosa

    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter: expected a positive integer, got {n_iter!r}")
    magnitude = mel_to_linear(log_mel_spec, mel_config)
    frames = magnitude.shape[1]
    common = {
        "n_iter": n_iter,
        "hop_length": mel_config.hop_length,
        "win_length": mel_config.win_length,
        "window": "hann",
        "momentum": 0.99,
        "init": "random",
        "random_state": np.random.default_rng(seed),
    }
    if mel_config.padding == "center":
        audio = librosa.griffinlim(magnitude, center=True, length=length, **common)
    else:  # "hifigan": frames of the signal reflect-padded by (n_fft - hop) // 2 on both sides, not centred
        pad = (mel_config.n_fft - mel_config.hop_length) // 2
        full = librosa.griffinlim(magnitude, center=False, n_fft=mel_config.n_fft, **common)
        audio = full[pad:]
        target = length if length is not None else frames * mel_config.hop_length
        audio = audio[:target] if audio.size >= target else np.pad(audio, (0, target - audio.size))
    return np.asarray(audio, dtype=np.float32)


def _envelope(log_mel_spec: Any, mel_config: MelConfig, order: int, segments: int | None = None) -> Any:
    from waveflow_py.sourcefilter.envelope import SpectralEnvelope

    mel = torch.as_tensor(np.asarray(log_mel_spec, dtype=np.float32))
    if mel.dim() == 2:
        mel = mel[None]
    if mel.dim() != 3 or mel.shape[0] != 1 or mel.shape[1] != mel_config.n_mels:
        raise ValueError(f"log-mel: expected shape ({mel_config.n_mels}, frames), got {tuple(mel.shape)}")
    with torch.no_grad():
        return SpectralEnvelope(mel_config, order)(mel, mel.shape[-1] if segments is None else segments)


def envelope_log_prob(
    audio: Any, log_mel_spec: Any, mel_config: MelConfig, order: int = ENVELOPE_ORDER, log_scale: float = 0.0
) -> float:
    """Mean log-likelihood (nats/sample) of ``audio (T,)`` under the envelope baseline of its log-mel:
    ``e = A(z) x / g`` (per hop segment) is scored as N(0, 1), plus ``-sum log g`` (float64)."""
    from waveflow_py.sourcefilter.lpc import lpc_whiten

    x = torch.as_tensor(np.asarray(audio, dtype=np.float64)).reshape(1, -1)
    hop = mel_config.hop_length
    a, log_gain = _envelope(log_mel_spec, mel_config, order, -(-x.shape[1] // hop))
    with torch.no_grad():
        e, logdet, _ = lpc_whiten(x, a.double(), log_gain.double() + float(log_scale), hop)
    ll = -0.5 * (e**2).sum() - 0.5 * x.shape[1] * np.log(2 * np.pi) + logdet.sum()
    return float(ll) / x.shape[1]


def envelope_noise(
    log_mel_spec: Any,
    mel_config: MelConfig,
    order: int = ENVELOPE_ORDER,
    length: int | None = None,
    seed: int = 0,
    log_scale: float = 0.0,
    temperature: float = 1.0,
) -> np.ndarray:
    """Audio ``(T,)`` float32: ``temperature * N(0, 1)`` noise through the log-mel's LPC envelope filter
    (``order`` 0: the frame gain only). ``length`` trims/pads to T samples (default frames * hop)."""
    from waveflow_py.sourcefilter.lpc import lpc_synthesize

    a, log_gain = _envelope(log_mel_spec, mel_config, order)
    hop = mel_config.hop_length
    total = a.shape[1] * hop
    target = total if length is None else int(length)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(int(seed))
        e = temperature * torch.randn(1, total, generator=gen, dtype=torch.float32)
        audio, _, _ = lpc_synthesize(e, a, log_gain + float(log_scale), hop)
    out = audio[0].numpy().astype(np.float32)
    return out[:target] if out.size >= target else np.pad(out, (0, target - out.size))
