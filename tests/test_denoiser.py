"""Bias-spectrum denoiser: removes a stationary bias tone, keeps the rest, keeps shapes and dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from waveflow_py.audio.conventions import silent_mel
from waveflow_py.config import MelConfig
from waveflow_py.inference.denoiser import Denoiser

SR = 22050


def tone(freq: float, seconds: float = 1.0, amp: float = 0.1, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return amp * torch.sin(2 * math.pi * freq * t + phase)


def band_energy(audio: torch.Tensor, freq: float, width: float = 30.0) -> float:
    spec = torch.fft.rfft(audio.double() * torch.hann_window(audio.numel(), dtype=torch.float64)).abs() ** 2
    freqs = torch.fft.rfftfreq(audio.numel(), 1 / SR)
    return float(spec[(freqs - freq).abs() < width].sum())


def numpy_mean_magnitude(audio: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """Mean over frames of |STFT| written out in numpy: centred frames (reflect padding of n_fft // 2),
    a periodic Hann window of ``win`` samples zero-padded to n_fft in the middle, one-sided FFT."""
    x = np.pad(np.asarray(audio, dtype=np.float64), n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    starts = range(0, len(x) - n_fft + 1, hop)
    frames = np.stack([x[s : s + n_fft] * window for s in starts])
    return np.abs(np.fft.rfft(frames, axis=-1)).mean(axis=0)


@pytest.mark.parametrize("n_fft, hop, win", [(1024, 256, 1024), (512, 128, 400)])
def test_bias_spectrum_is_the_mean_stft_magnitude(n_fft: int, hop: int, win: int) -> None:
    bias = tone(440.0, amp=0.05) + 0.01 * torch.randn(SR)
    denoiser = Denoiser(bias, n_fft=n_fft, hop_length=hop, win_length=win)
    expected = numpy_mean_magnitude(bias.double().numpy(), n_fft, hop, win)
    np.testing.assert_allclose(denoiser.bias_spectrum.double().numpy(), expected, rtol=1e-4, atol=1e-6)


def test_removes_a_stationary_bias_tone_and_keeps_the_signal() -> None:
    bias = tone(440.0, amp=0.05)
    denoiser = Denoiser(bias, n_fft=1024, hop_length=256)
    signal = tone(1500.0, amp=0.3)
    noisy = signal + tone(440.0, amp=0.05, phase=1.0)  # same bias, a different phase
    cleaned = denoiser(noisy, strength=1.0)
    assert cleaned.shape == noisy.shape and cleaned.dtype == noisy.dtype
    before, after = band_energy(noisy, 440.0), band_energy(cleaned, 440.0)
    assert after < 0.05 * before  # the bias tone is mostly gone (> 13 dB down)
    kept = band_energy(cleaned, 1500.0) / band_energy(signal, 1500.0)
    assert 0.8 < kept < 1.2  # the wanted tone is kept


def test_strength_scales_the_reduction_and_zero_is_identity() -> None:
    denoiser = Denoiser(tone(440.0, amp=0.05), n_fft=512, hop_length=128)
    noisy = tone(1000.0, amp=0.2) + tone(440.0, amp=0.05)
    assert torch.equal(denoiser(noisy, strength=0.0), noisy)
    half = band_energy(denoiser(noisy, strength=0.5), 440.0)
    full = band_energy(denoiser(noisy, strength=1.0), 440.0)
    assert full < half < band_energy(noisy, 440.0)


def test_batches_short_inputs_and_bad_arguments() -> None:
    denoiser = Denoiser(tone(440.0, amp=0.05), n_fft=512, hop_length=128)
    batch = torch.stack([tone(440.0, 0.5), tone(880.0, 0.5)])
    out = denoiser(batch, strength=0.5)
    assert out.shape == batch.shape and torch.isfinite(out).all()
    for i in range(2):  # each batch item is denoised as if alone
        torch.testing.assert_close(out[i], denoiser(batch[i], strength=0.5), rtol=1e-5, atol=1e-6)
    short = torch.randn(100)  # shorter than n_fft // 2: padded inside, trimmed back
    assert denoiser(short, strength=0.1).shape == (100,)
    with pytest.raises(ValueError, match="strength"):
        denoiser(batch, strength=-1.0)
    with pytest.raises(ValueError, match="expected a non-empty"):
        denoiser(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="bias_audio"):
        Denoiser(torch.full((2048,), float("nan")), n_fft=512, hop_length=128)


@pytest.mark.parametrize("log", ["ln", "log10"])
def test_silent_mel_is_log_of_clamp_with_stats(log: str) -> None:
    cfg = MelConfig(log=log, n_mels=4, clamp=1e-5, mean=[1.0, 0.0, -1.0, 2.0], std=[2.0, 1.0, 1.0, 0.5])
    mel = silent_mel(cfg, frames=3, batch=2)
    base = math.log(1e-5) if log == "ln" else math.log10(1e-5)
    want = torch.tensor([(base - m) / s for m, s in zip(cfg.mean, cfg.std, strict=True)])
    assert mel.shape == (2, 4, 3)
    torch.testing.assert_close(mel[1, :, 2], want.float())


@pytest.mark.parametrize("model_type", ["waveflow", "waveglow"])
def test_from_model_measures_the_models_bias_and_removes_it(model_type: str, tmp_path) -> None:
    """The bias is measured on the model's output for digital silence at zero noise: computed here
    independently (the mel of an all-zero signal, the plain reference inverse at z = 0, a numpy STFT)."""
    from waveflow_py.audio import MelSpectrogram
    from waveflow_py.pretrained import build_random_release, load_release

    model, _ = load_release(build_random_release(tmp_path / model_type, model_type))
    frames = 40
    denoiser = Denoiser.from_model(model, frames=frames)
    cfg = model.config.mel
    hop = cfg.hop_length
    with torch.inference_mode():
        silence_mel = MelSpectrogram(cfg)(torch.zeros(frames * hop))[..., :frames]  # (1, n_mels, frames)
        bias, _ = model.inverse(torch.zeros(1, frames * hop), silence_mel)
    bias = bias[0]
    assert float(bias.abs().max()) > 0  # a random model has a bias to remove
    expected = numpy_mean_magnitude(bias.double().numpy(), cfg.n_fft, hop, cfg.win_length)
    np.testing.assert_allclose(denoiser.bias_spectrum.double().numpy(), expected, rtol=1e-3, atol=1e-6)
    cleaned = denoiser(bias, strength=1.0)
    assert cleaned.pow(2).sum() < 0.5 * bias.pow(2).sum()
