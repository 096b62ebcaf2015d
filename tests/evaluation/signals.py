"""Synthetic test signals for the evaluation tests (speech-like, tones, noise at a given SNR)."""

from __future__ import annotations

import numpy as np


def harmonic_tone(f0: float, sample_rate: int, seconds: float, n_harmonics: int = 10) -> np.ndarray:
    """A steady harmonic tone (1/k amplitudes), peak about 0.5."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, n_harmonics + 1) if k * f0 < sample_rate / 2)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float64)


def speech_like(sample_rate: int = 16000, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts (4 per second) of a gliding harmonic source through two moving formants."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    source = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 170 < sample_rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 2  # 4 syllables per second
    formant = 1 + 0.8 * np.sin(2 * np.pi * 3.3 * t + np.cos(phase / 50))
    x = source * envelope * formant + 0.002 * rng.standard_normal(n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float64)


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``x`` plus white Gaussian noise at ``snr_db`` (relative to x's mean power)."""
    noise = np.random.default_rng(seed).standard_normal(x.size)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return x + noise
