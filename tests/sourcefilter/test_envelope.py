"""Spectral envelope from a log-mel (waveflow_py.sourcefilter.envelope): stability on every preset and on
hostile mels, frame/segment alignment, ten minutes in fp32, and on real speech: unit-variance, much
whiter excitation and the zero-parameter model's likelihood."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from waveflow_py.audio import MelSpectrogram, load_audio
from waveflow_py.config import MEL_PRESETS, mel_preset
from waveflow_py.sourcefilter.envelope import SpectralEnvelope, levinson_durbin, reflection_coefficients
from waveflow_py.sourcefilter.lpc import lpc_synthesize, lpc_whiten


def _cfg(name: str, **over: object):
    cfg = mel_preset(name, **over)
    if name == "espnet":  # standardised log-mels: also undo per-bin stats
        gen = np.random.default_rng(0)
        mean, std = gen.normal(-2, 0.5, cfg.n_mels), gen.uniform(0.5, 2, cfg.n_mels)
        cfg = mel_preset(name, mean=list(mean), std=list(std))
    return cfg


def hostile_mels(cfg, frames: int = 12) -> dict[str, torch.Tensor]:
    """Random, silent (the clamp value), clipped (saturated, flat and loud) and extreme log-mels,
    written in the preset's own log convention."""
    gen = torch.Generator().manual_seed(0)
    lg = math.log(cfg.clamp) if cfg.log == "ln" else math.log10(cfg.clamp)
    n = cfg.n_mels
    mels = {
        "random": lg / 2 + 3 * torch.randn(1, n, frames, generator=gen),
        "silent": torch.full((1, n, frames), lg),
        "clipped": torch.full((1, n, frames), 4.0),
        "extreme": torch.where(torch.rand(1, n, frames, generator=gen) < 0.5, 80.0, lg).float(),
        "tilted": torch.linspace(6, lg, n).view(1, n, 1).expand(1, n, frames).clone(),
    }
    if cfg.mean is not None:  # the model sees standardised values
        mean, std = torch.tensor(cfg.mean).view(1, -1, 1), torch.tensor(cfg.std).view(1, -1, 1)
        mels = {k: (v - mean) / std for k, v in mels.items()}
    return mels


@pytest.mark.parametrize("preset", sorted(MEL_PRESETS))
@pytest.mark.parametrize("order", [16, 0])
def test_stable_on_hostile_mels_for_every_preset(preset: str, order: int) -> None:
    cfg = _cfg(preset)
    env = SpectralEnvelope(cfg, order)
    for power in (1.0, 2.0):
        if power == 2.0:
            cfg = _cfg(preset, power=2.0)
            env = SpectralEnvelope(cfg, order)
        for what, mel in hostile_mels(cfg).items():
            a, lg = env(mel, n_segments=12)
            assert a.shape == (1, 12, order) and lg.shape == (1, 12), what
            assert bool(torch.isfinite(a).all() and torch.isfinite(lg).all()), what
            if order:
                assert float(reflection_coefficients(a).abs().max()) < 1.0, what
                # impulse response of the synthesis filter (unit gain) through all segments: bounded
                imp = torch.zeros(1, 12 * cfg.hop_length)
                imp[0, 0] = 1.0
                h, _, _ = lpc_synthesize(imp, a, torch.zeros_like(lg), cfg.hop_length)
                assert bool(torch.isfinite(h).all()), what
                assert float(h.abs().max()) < 1e4, (what, float(h.abs().max()))


def test_levinson_recovers_a_known_ar_process() -> None:
    """AR(2) with poles 0.9 e^{+-j pi/4}: the exact autocorrelation gives back the coefficients."""
    a_true = torch.tensor([2 * 0.9 * math.cos(math.pi / 4), -0.81], dtype=torch.float64)
    # autocorrelation by the Yule-Walker recursion from r0 = 1 (unnormalised is fine)
    rho1 = a_true[0] / (1 - a_true[1])
    r = [1.0, float(rho1)]
    for k in range(2, 6):
        r.append(float(a_true[0] * r[k - 1] + a_true[1] * r[k - 2]))
    a, err, k = levinson_durbin(torch.tensor([r], dtype=torch.float64))
    torch.testing.assert_close(a[0, :2], a_true)
    torch.testing.assert_close(a[0, 2:], torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(reflection_coefficients(a), k)
    assert float(err[0]) == pytest.approx(1 - float(rho1) * float(a_true[0]) - r[2] * float(a_true[1]))


@pytest.mark.parametrize("padding", ["center", "hifigan"])
def test_segments_align_with_frame_centres(padding: str) -> None:
    """Centred frames: segment i lies between frames i and i+1 (the mean of their powers); hifigan
    frames are centred on their segment. Checked with the gain envelope (r0 is linear in power)."""
    cfg = mel_preset("16k", padding=padding) if padding == "center" else mel_preset("hifigan")
    env = SpectralEnvelope(cfg, 0, noise_floor=0.0)
    mel = torch.randn(2, cfg.n_mels, 6) - 3.0
    _, lg = env(mel, n_segments=6)
    single = torch.stack([env(mel[:, :, f : f + 1], n_segments=1)[1][:, 0] for f in range(6)], dim=1)
    if padding == "center":
        nxt = torch.cat([single[:, 1:], single[:, -1:]], dim=1)
        want = 0.5 * torch.log(0.5 * (torch.exp(2 * single) + torch.exp(2 * nxt)))
    else:
        want = single
    torch.testing.assert_close(lg, want, atol=1e-5, rtol=0)
    # segments past the mel reuse the last one
    _, lg_long = env(mel, n_segments=9)
    torch.testing.assert_close(lg_long[:, 6:], lg[:, 5:6].expand(2, 3))


def test_rejects_bad_mels() -> None:
    env = SpectralEnvelope(mel_preset("16k"), 16)
    with pytest.raises(ValueError, match="shape"):
        env(torch.zeros(1, 79, 4))
    with pytest.raises(ValueError, match="NaN"):
        env(torch.full((1, 80, 4), float("nan")))
    with pytest.raises(ValueError, match="order"):
        SpectralEnvelope(mel_preset("16k", n_fft=32, win_length=32), 16)


def test_ten_minutes_of_frames_in_float32() -> None:
    """A 10-minute log-mel (slowly varying, as speech is): finite, stable coefficients; white noise
    through the synthesis filter in fp32 stays bounded and whitens back."""
    cfg = mel_preset("16k")
    frames = 600 * cfg.sample_rate // cfg.hop_length
    gen = torch.Generator().manual_seed(1)
    walk = torch.cumsum(0.3 * torch.randn(1, cfg.n_mels, frames, generator=gen), dim=-1)
    mel = -4.0 + 2.0 * torch.tanh(walk / 20.0) + 0.3 * torch.randn(1, cfg.n_mels, frames, generator=gen)
    a, lg = SpectralEnvelope(cfg, 16)(mel.float())
    assert a.dtype == torch.float32 and bool(torch.isfinite(a).all() and torch.isfinite(lg).all())
    assert float(reflection_coefficients(a).abs().max()) < 1.0
    e = torch.randn(1, frames * cfg.hop_length)
    x, _, _ = lpc_synthesize(e, a, lg, cfg.hop_length)
    assert bool(torch.isfinite(x).all())
    e_back, _, _ = lpc_whiten(x, a, lg, cfg.hop_length)
    assert float((e_back - e).abs().max()) < 1e-2


# ----------------------------------------------------------------------------- real speech
def _dev_clips(shared_data: Path, n: int) -> list[torch.Tensor]:
    root = shared_data / "librispeech-mini"
    files = sorted((root / "dev").glob("*.flac"))[:n]
    if len(files) < n:
        pytest.skip(f"fewer than {n} dev clips in {root}")
    return [load_audio(f)[0].reshape(1, -1) for f in files]


def _log_spectrum_std_db(x: torch.Tensor) -> float:
    """Std over frequency (dB) of the long-term power spectrum: 0 for white noise."""
    spec = torch.stft(x, 512, 128, window=torch.hann_window(512), return_complex=True).abs().square()
    psd = spec.mean(dim=-1)[0, 4:-4]  # away from DC and Nyquist
    return float((10 * torch.log10(psd)).std())


@pytest.mark.parametrize("order", [16, 0])
def test_real_speech_excitation_is_unit_variance_and_whiter(shared_data: Path, order: int) -> None:
    cfg = mel_preset("16k")
    mel_fn, env = MelSpectrogram(cfg), SpectralEnvelope(cfg, order)
    for x in _dev_clips(shared_data, 3):
        a, lg = env(mel_fn(x), n_segments=-(-x.shape[1] // cfg.hop_length))
        e, _, _ = lpc_whiten(x, a, lg, cfg.hop_length)
        assert 0.8 < float(e.square().mean()) < 1.25  # the gain is in waveform units: no calibration
        if order:
            assert _log_spectrum_std_db(e) < 0.5 * _log_spectrum_std_db(x)


def test_zero_parameter_lpc_model_likelihood_on_dev_clips(shared_data: Path) -> None:
    """Excitation ~ N(0, c^2) after the mel's LPC envelope (one global constant c fitted): ~4.6-4.7
    nats/sample on librispeech dev (the gain-only model: ~2.1)."""
    cfg = mel_preset("16k")
    mel_fn = MelSpectrogram(cfg)
    result = {}
    clips = _dev_clips(shared_data, 8)
    for order in (16, 0):
        env = SpectralEnvelope(cfg, order)
        sq, logdet, n = 0.0, 0.0, 0
        for x in clips:
            a, lg = env(mel_fn(x), n_segments=-(-x.shape[1] // cfg.hop_length))
            e, ld, _ = lpc_whiten(x.double(), a.double(), lg.double(), cfg.hop_length)
            sq, logdet, n = sq + float(e.square().sum()), logdet + float(ld.sum()), n + x.shape[1]
        result[order] = -0.5 * math.log(2 * math.pi * math.e * sq / n) + logdet / n
    assert 4.5 < result[16] < 5.0, result
    assert result[0] < result[16] - 1.0, result
