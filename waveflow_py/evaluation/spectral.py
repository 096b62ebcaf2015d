"""Spectral distances between a reference and a time-aligned degraded (e.g. vocoded) signal.

* Multi-resolution STFT distance (Yamamoto et al. 2020, Parallel WaveGAN): for each
  ``(n_fft, hop)`` in :data:`MRSTFT_RESOLUTIONS` = (512, 128), (1024, 256), (2048, 512) with a
  Hann window of length ``n_fft`` and centred (reflect-padded) frames, the spectral convergence
  ``||S_r - S_d||_F / ||S_r||_F`` and the log-magnitude L1 ``mean |ln max(S_r, 1e-7) - ln max(S_d, 1e-7)|``
  of the magnitude spectrograms; each is averaged over the resolutions and the distance is their sum.
  The same distance over :data:`MRSTFT_UNSEEN_RESOLUTIONS` = (256, 64), (4096, 1024) grades a model
  trained with a spectral loss on the usual three resolutions at resolutions that loss never saw.
* Log-mel L1: ``mean |M_r - M_d|`` of the model's own log-mel spectrogram (the model's
  :class:`~waveflow_py.config.MelConfig`, its log base and clamp), so it is in that mel's log units.
* Mel-cepstral distortion (Kubichek 1993), MFCC-style: the log-mel is first converted to the natural
  log of the mel *magnitude* (undoing log10, power 2 and mean/std normalisation when the config uses
  them), an orthonormal DCT-II over the mel axis gives the mel-cepstrum, coefficients 1..K are kept
  with K = min(24, n_mels - 1) (:func:`mcd_coefficients`; c0, the frame energy, is excluded) and per frame
  ``MCD = 10 / ln(10) * sqrt(2 * sum_d (c_r[d] - c_d[d])^2)`` dB, averaged over all frames, frames
  paired 1:1 (no DTW: vocoded audio is time-aligned). These values are not numerically comparable
  with SPTK mel-generalised-cepstrum MCDs from other papers; compare systems within one report.

All functions take numpy (or torch) 1-D float signals and trim both to the shorter length.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import scipy.fft
import torch

from waveflow_py.audio import MelSpectrogram, log_decompress
from waveflow_py.config import (
    DEFAULT_STFT_RESOLUTIONS,
    UNSEEN_STFT_RESOLUTIONS,
    MelConfig,
    from_dict,
    to_dict,
)
from waveflow_py.evaluation._signal import align_pair, check_sample_rate

__all__ = [
    "MRSTFT_RESOLUTIONS",
    "MRSTFT_UNSEEN_RESOLUTIONS",
    "MCD_COEFFICIENTS",
    "stft_magnitude",
    "multi_resolution_stft",
    "log_mel",
    "ln_magnitude_mel",
    "mcd_coefficients",
    "mel_cepstrum",
    "log_mel_l1",
    "mel_cepstral_distortion",
]

MRSTFT_RESOLUTIONS: tuple[tuple[int, int], ...] = DEFAULT_STFT_RESOLUTIONS  # the training loss's too
# (n_fft, hop) pairs a spectral training loss on MRSTFT_RESOLUTIONS does not use: 4x finer and 2x coarser
MRSTFT_UNSEEN_RESOLUTIONS: tuple[tuple[int, int], ...] = UNSEEN_STFT_RESOLUTIONS
MCD_COEFFICIENTS: int = 24  # c1..c24 (fewer for mels with fewer than 25 bins: see mcd_coefficients)
_LOG_FLOOR = 1e-7
_MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)


def stft_magnitude(signal: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``|STFT|`` of a 1-D signal, ``(n_fft // 2 + 1, frames)``: Hann window of n_fft, centred frames."""
    x = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float64))
    pad_mode = "reflect" if x.numel() > n_fft // 2 else "constant"
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft, dtype=x.dtype),
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )
    return spec.abs().numpy()


def multi_resolution_stft(
    reference: Any,
    degraded: Any,
    resolutions: tuple[tuple[int, int], ...] = MRSTFT_RESOLUTIONS,
) -> dict[str, float]:
    """``{"sc": ..., "log_mag": ..., "total": sc + log_mag}``, each averaged over ``resolutions``.

    Zero for identical signals, positive otherwise. Spectral convergence of a silent reference is
    undefined and raises ``ValueError``.
    """
    ref, deg = align_pair(reference, degraded)
    if not np.any(ref):
        raise ValueError("multi_resolution_stft: the reference is silent (spectral convergence undefined)")
    scs, lms = [], []
    for n_fft, hop in resolutions:
        if n_fft <= 0 or hop <= 0:
            raise ValueError(f"resolution (n_fft={n_fft}, hop={hop}): both must be positive")
        s_r = stft_magnitude(ref, n_fft, hop)
        s_d = stft_magnitude(deg, n_fft, hop)
        scs.append(float(np.linalg.norm(s_r - s_d) / np.linalg.norm(s_r)))
        lms.append(
            float(np.mean(np.abs(np.log(np.maximum(s_r, _LOG_FLOOR)) - np.log(np.maximum(s_d, _LOG_FLOOR)))))
        )
    sc, lm = float(np.mean(scs)), float(np.mean(lms))
    return {"sc": sc, "log_mag": lm, "total": sc + lm}


@functools.lru_cache(maxsize=8)
def _front_end(config_json: str) -> MelSpectrogram:
    """One MelSpectrogram per distinct config (building the filter bank costs ~0.1 s; it is pure)."""
    return MelSpectrogram(from_dict(MelConfig, json.loads(config_json)))


def log_mel(signal: np.ndarray, mel_config: MelConfig) -> np.ndarray:
    """The model's log-mel of a 1-D float signal, shape ``(n_mels, frames)`` (float64)."""
    module = _front_end(json.dumps(to_dict(mel_config), sort_keys=True))
    with torch.no_grad():
        mel = module(torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)))
    return mel.reshape(mel.shape[-2], mel.shape[-1]).double().numpy()


def ln_magnitude_mel(log_mel_spec: np.ndarray, mel_config: MelConfig) -> np.ndarray:
    """Natural log of the mel *magnitude* from the model's log-mel (undoes stats, log10 and power 2).

    Accepts ``(n_mels, frames)`` or ``(batch, n_mels, frames)``; the inverse of the front end's
    ``(log(max(mel, clamp)) - mean) / std`` up to the clamp.
    """
    x = np.asarray(log_mel_spec, dtype=np.float64)
    if x.ndim < 2 or x.shape[-2] != mel_config.n_mels:
        raise ValueError(f"log-mel: expected {mel_config.n_mels} mel bins on axis -2, got shape {x.shape}")
    linear = log_decompress(torch.from_numpy(x), mel_config).numpy()  # the front end's mel, >= clamp
    return np.log(linear) / mel_config.power


def mcd_coefficients(mel_config: MelConfig, n_coeffs: int = MCD_COEFFICIENTS) -> int:
    """How many cepstral coefficients (c1..cK) MCD uses for this mel: ``min(n_coeffs, n_mels - 1)``.

    An ``n_mels``-bin mel has ``n_mels`` cepstral coefficients, c0 (energy) excluded leaves ``n_mels - 1``:
    the usual 24 for the 80-bin presets, all there are for small (test, tiny-recipe) mels.
    """
    if n_coeffs < 1:
        raise ValueError(f"n_coeffs: expected >= 1, got {n_coeffs}")
    if mel_config.n_mels < 2:
        raise ValueError(f"MCD needs a mel with at least 2 bins, got n_mels={mel_config.n_mels}")
    return min(int(n_coeffs), mel_config.n_mels - 1)


def mel_cepstrum(log_mel_spec: np.ndarray, mel_config: MelConfig, n_coeffs: int | None = None) -> np.ndarray:
    """Mel-cepstrum c1..cK, ``(K, frames)``: orthonormal DCT-II of the ln-magnitude mel.

    ``n_coeffs`` (K) defaults to :func:`mcd_coefficients` of the config; an explicit value must be in
    ``1..n_mels - 1``.
    """
    if n_coeffs is None:
        n_coeffs = mcd_coefficients(mel_config)
    if not 1 <= n_coeffs < mel_config.n_mels:
        raise ValueError(f"n_coeffs: expected 1..{mel_config.n_mels - 1}, got {n_coeffs}")
    cep = scipy.fft.dct(ln_magnitude_mel(log_mel_spec, mel_config), type=2, norm="ortho", axis=0)
    return cep[1 : n_coeffs + 1]


def _check_rate(sample_rate: int, mel_config: MelConfig) -> None:
    sr = check_sample_rate(sample_rate)
    if sr != mel_config.sample_rate:
        raise ValueError(
            f"sample_rate {sr} Hz does not match the mel config's {mel_config.sample_rate} Hz; "
            "resample the audio first"
        )


def log_mel_l1(reference: Any, degraded: Any, sample_rate: int, mel_config: MelConfig) -> float:
    """Mean absolute difference of the two log-mel spectrograms (the model's mel settings and log units)."""
    _check_rate(sample_rate, mel_config)
    ref, deg = align_pair(reference, degraded)
    return float(np.mean(np.abs(log_mel(ref, mel_config) - log_mel(deg, mel_config))))


def mel_cepstral_distortion(
    reference: Any,
    degraded: Any,
    sample_rate: int,
    mel_config: MelConfig,
    n_coeffs: int | None = None,
) -> float:
    """Mel-cepstral distortion in dB (c1..cK, frames 1:1, mean over frames); 0 if identical.

    K is ``n_coeffs`` if given (``1..n_mels - 1``), else :func:`mcd_coefficients` (24, or ``n_mels - 1``
    for smaller mels).
    """
    _check_rate(sample_rate, mel_config)
    ref, deg = align_pair(reference, degraded)
    c_r = mel_cepstrum(log_mel(ref, mel_config), mel_config, n_coeffs)
    c_d = mel_cepstrum(log_mel(deg, mel_config), mel_config, n_coeffs)
    per_frame = _MCD_SCALE * np.sqrt(np.sum((c_r - c_d) ** 2, axis=0))
    return float(np.mean(per_frame))
