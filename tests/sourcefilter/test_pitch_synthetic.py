"""The pitch context is honest on synthetic voices: pulse trains and sawtooths through formant filters,
F0 80-400 Hz, with jitter, glides, additive noise and a weak or missing fundamental, give a lag (the
periodicity's first peak, ``pitch_lag="first"``) within +-2 % of the true period on >= 98 % of frames;
white and coloured noise get no voicing at the harmonic source's threshold.

Below about 75 Hz the 16 kHz mel (Slaney bands 37 Hz apart below 1 kHz) aliases the harmonic ripple, so
no estimator on this mel can find the period there (docs/quality-per-compute.md, "pitch"); the range
tested is the one the mel resolves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import SourceFilterConfig, mel_preset
from waveflow_py.sourcefilter import MelPeriodicity, lag_range

SR = 16000
MEL = mel_preset("16k")
FORMANTS = ((700, 80), (1200, 90), (2600, 120))
THRESHOLD = SourceFilterConfig().source_threshold


def _formants(x: np.ndarray) -> np.ndarray:
    for f, bw in FORMANTS:
        r = np.exp(-np.pi * bw / SR)
        x = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return x


def voice(f0: float, kind: str = "pulse", seconds: float = 1.0, seed: int = 0, **how: float) -> tuple:
    """A voiced test signal and its true F0 per sample. ``how``: ``jitter`` (relative, per 5 ms),
    ``glide`` (F0 ratio end / start), ``snr_db`` (white noise), ``fundamental`` (gain of everything below
    1.5 F0: 0.1 weak, 0 missing)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    track = f0 * np.exp(np.linspace(0.0, np.log(how.get("glide", 1.0)), n))
    if how.get("jitter"):
        track = track * (1 + how["jitter"] * rng.standard_normal(n // 80 + 1).repeat(80)[:n])
    phase = np.cumsum(track / SR)
    if kind == "saw":
        x = 2 * (phase % 1) - 1
    else:
        x = np.zeros(n)
        x[np.nonzero(np.diff(np.floor(phase)) > 0)[0] + 1] = 1.0
    if "fundamental" in how:
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(n, 1 / SR) < 1.5 * track.mean()] *= how["fundamental"]
        x = np.fft.irfft(spec, n)
    x = _formants(x)
    if "snr_db" in how:
        x = x + rng.standard_normal(n) * x.std() * 10 ** (-how["snr_db"] / 20)
    return (0.5 * x / np.abs(x).max()).astype(np.float32), track


def _analysis() -> MelPeriodicity:
    lo, hi = lag_range(MEL)
    return MelPeriodicity(MEL, lo, hi, lag="first")


def _frame_lags(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mel = MelSpectrogram(MEL)(torch.from_numpy(x)[None])
    lag, peak = _analysis().frame_pitch(mel)
    return lag[0].double().numpy(), peak[0].double().numpy()


CONDITIONS = {
    "pulse": ("pulse", {}),
    "sawtooth": ("saw", {}),
    "jitter 1 %": ("pulse", {"jitter": 0.01}),
    "glide": ("pulse", {"glide": 1.25}),
    "noise 10 dB SNR": ("pulse", {"snr_db": 10.0}),
    "weak fundamental": ("pulse", {"fundamental": 0.1}),
    "missing fundamental": ("saw", {"fundamental": 0.0}),
}


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_lag_within_two_percent_of_the_period(condition: str) -> None:
    kind, how = CONDITIONS[condition]
    frames_ok, frames = 0, 0
    for f0 in (80, 100, 120, 150, 200, 250, 300, 350, 400):
        if how.get("glide") and f0 * how["glide"] > 400:
            how = {**how, "glide": 1 / how["glide"]}  # glide down from the top of the range
        x, track = voice(f0, kind, **how)
        lag, _ = _frame_lags(x)
        centre = np.clip(np.arange(lag.size) * MEL.hop_length, 0, track.size - 1)
        inner = slice(2, lag.size - 2)  # frames whose window lies inside the signal
        true_lag = SR / track[centre][inner]
        ok = np.abs(lag[inner] / true_lag - 1) <= 0.02
        frames_ok, frames = frames_ok + int(ok.sum()), frames + ok.size
        assert ok.mean() >= 0.85, f"{condition}, F0 {f0} Hz: {ok.mean():.1%} of frames within 2 %"
    assert frames_ok / frames >= 0.98, f"{condition}: {frames_ok / frames:.1%} of frames within 2 %"


@pytest.mark.parametrize("colour", [0.0, 0.5, -0.5])
def test_noise_gets_no_voicing(colour: float) -> None:
    """White and coloured (one-pole, +-0.5) noise: the first peak stays under the harmonic source's
    threshold (measured over 6 seeds: at most 0.39). Strongly low-passed noise (a pole at 0.9 or more)
    reaches 0.5-0.85: its slope survives the low band's normalisation; unvoiced speech is not like it."""
    rng = np.random.default_rng(3)
    for seed in range(4):
        noise = scipy.signal.lfilter(
            [1.0], [1.0, -colour], np.random.default_rng(seed).standard_normal(2 * SR)
        )
        x = (0.1 * noise / noise.std() * rng.uniform(0.3, 1.0)).astype(np.float32)
        _, peak = _frame_lags(x)
        assert peak[2:-2].max() < THRESHOLD, f"noise (pole {colour}, seed {seed}): peak {peak.max():.3f}"
