"""The mel front end against a librosa reference for every preset, and audio I/O error handling."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow_py.audio import (
    AudioError,
    MelSpectrogram,
    find_audio_files,
    load_audio,
    log_compress,
    log_decompress,
    save_audio,
)
from waveflow_py.config import MEL_PRESETS, MelConfig, mel_preset


def chirp_and_noise(sr: int, length: int, seed: int = 0) -> np.ndarray:
    """A float64 test signal: a 100 Hz -> 0.9 * Nyquist chirp plus white noise."""
    rng = np.random.default_rng(seed)
    chirp = librosa.chirp(fmin=100.0, fmax=0.45 * sr, sr=sr, length=length)
    return 0.5 * chirp + 0.05 * rng.standard_normal(length)


def librosa_log_mel(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Reference (n_mels, F): explicit padding, librosa.stft, librosa.filters.mel, clamp, log, stats."""
    pad = cfg.n_fft // 2 if cfg.padding == "center" else (cfg.n_fft - cfg.hop_length) // 2
    padded = np.pad(y, (pad, pad), mode="reflect")
    spec = librosa.stft(
        padded, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, center=False
    )
    mag = (np.abs(spec) ** 2 + cfg.mag_eps) ** (cfg.power / 2)
    fb = librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk",
        norm=cfg.mel_norm,
    )
    mel = np.maximum(fb @ mag, cfg.clamp)
    out = np.log(mel) if cfg.log == "ln" else np.log10(mel)
    if cfg.mean is not None:
        out = out - np.asarray(cfg.mean)[:, None]
    if cfg.std is not None:
        out = out / np.asarray(cfg.std)[:, None]
    return out


# ----------------------------------------------------------------------------- MelSpectrogram
@pytest.mark.parametrize("name", sorted(MEL_PRESETS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_preset_matches_librosa_reference(name: str, dtype: torch.dtype) -> None:
    cfg = mel_preset(name)
    y = chirp_and_noise(cfg.sample_rate, cfg.sample_rate // 2 + 124)
    expected = librosa_log_mel(y, cfg)
    out = MelSpectrogram(cfg)(torch.from_numpy(y).to(dtype))
    assert out.dtype == dtype
    assert out.shape == (1, cfg.n_mels, expected.shape[1])
    assert np.abs(out[0].double().numpy() - expected).max() < 1e-4


def test_stats_normalisation_matches_reference() -> None:
    rng = np.random.default_rng(1)
    cfg = mel_preset("espnet", mean=rng.normal(-2, 0.5, 80).tolist(), std=rng.uniform(0.5, 2, 80).tolist())
    y = chirp_and_noise(cfg.sample_rate, 8000)
    out = MelSpectrogram(cfg)(torch.from_numpy(y))[0].numpy()
    assert np.abs(out - librosa_log_mel(y, cfg)).max() < 1e-4


@pytest.mark.parametrize("name", ["tacotron2", "hifigan"])
def test_frame_counts(name: str) -> None:
    cfg = mel_preset(name)
    mel = MelSpectrogram(cfg)
    for length in (1000, 4096, 5000, 22050):
        out = mel(torch.randn(length) * 0.1)
        assert out.shape[-1] == mel.num_frames(length)
        if name == "tacotron2":
            assert out.shape[-1] == length // cfg.hop_length + 1
        else:
            assert out.shape[-1] == length // cfg.hop_length


def test_batch_equals_single() -> None:
    mel = MelSpectrogram(mel_preset("tacotron2"))
    batch = torch.randn(3, 6000) * 0.2
    together = mel(batch)
    for i in range(3):
        assert torch.allclose(together[i], mel(batch[i])[0], atol=1e-5)


def test_low_precision_input_keeps_dtype() -> None:
    mel = MelSpectrogram(mel_preset("tacotron2"))
    x = torch.randn(4000) * 0.2
    out = mel(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert (out.float() - mel(x)).abs().max() < 0.1


def test_buffers_follow_module_but_stay_out_of_state_dict() -> None:
    mel = MelSpectrogram(mel_preset("16k"))
    assert mel.state_dict() == {}
    assert mel.mel_basis.shape == (80, 513) and mel.window.shape == (1024,)
    mel = mel.double()
    assert mel.mel_basis.dtype == torch.float64


def test_short_window_is_centred_in_n_fft() -> None:
    cfg = mel_preset("tacotron2", win_length=800)
    y = chirp_and_noise(cfg.sample_rate, 6000)
    out = MelSpectrogram(cfg)(torch.from_numpy(y))[0].numpy()
    assert np.abs(out - librosa_log_mel(y, cfg)).max() < 1e-4


def test_gradient_through_the_mel_is_finite_on_digital_silence() -> None:
    """A spectral loss through the mel of generated audio with exact zeros (a bin of zero power): the
    gradient is finite (0 there), not sqrt's inf * 0 = nan, and the mel of speech is unchanged."""
    cfg = mel_preset("16k")
    assert cfg.mag_eps == 0 and cfg.log == "ln" and cfg.mean is None
    mel_fn = MelSpectrogram(cfg)
    x = torch.zeros(1, 4096, dtype=torch.float64)
    x[0, 2048:] = torch.randn(2048, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x.requires_grad_(True)
    mel_fn(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert float(x.grad[0, 2048:].abs().sum()) > 0
    silent = mel_fn(x.detach())[0, :, :4]  # frames wholly inside the zeros: the log floor, as before
    assert torch.equal(silent, torch.full_like(silent, math.log(cfg.clamp)))


def test_log_compress_decompress_round_trip() -> None:
    cfg = mel_preset("espnet", mean=[0.5] * 80, std=[2.0] * 80)
    lin = torch.rand(2, 80, 7, dtype=torch.float64) + 1e-12
    back = log_decompress(log_compress(lin, cfg), cfg)
    assert torch.allclose(back, lin.clamp(min=cfg.clamp), rtol=1e-10)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(3, 2, 4000), "shape"),
        (torch.zeros(0), "empty"),
        (torch.full((4000,), float("nan")), "NaN"),
        (torch.zeros(4000, dtype=torch.int16), "floating"),
        (torch.zeros(100), "too short"),
    ],
)
def test_bad_audio_is_a_value_error(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MelSpectrogram(mel_preset("tacotron2"))(bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mel_scale": "bark"}, "mel_scale"),
        ({"log": "log2"}, "log"),
        ({"win_length": 2048}, "win_length"),
        ({"fmax": 20000.0}, "Nyquist"),
        ({"fmin": 9000.0}, "fmin"),
        ({"clamp": 0.0}, "clamp"),
        ({"pad_mode": "wrap"}, "pad_mode"),
        ({"std": [0.0] * 80}, "std"),
        ({"mean": [0.0] * 3}, "mean"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mel_preset("tacotron2", **kwargs)


# ----------------------------------------------------------------------------- I/O
def _tone(sr: int = 16000, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    x = _tone()
    path = save_audio(tmp_path / f"a{suffix}", torch.from_numpy(x), 16000)
    y, sr = load_audio(path)
    assert sr == 16000 and y.dtype == torch.float32 and y.dim() == 1
    if suffix == ".ogg":  # lossy: compare the waveform loosely
        n = min(len(x), len(y))
        assert np.corrcoef(x[:n], y[:n].numpy())[0, 1] > 0.99
    else:
        assert y.shape == (len(x),) and np.abs(y.numpy() - x).max() < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [f"a{suffix}"]  # no temp file left behind


def test_stereo_mixdown_and_channels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    left, right = _tone(freq=440.0), _tone(freq=660.0)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "m.wav", left, 16000, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="waveflow_py.audio.io"):
        mono, _ = load_audio(tmp_path / "s.wav")
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [f"{tmp_path / 's.wav'}: 2 channels averaged to mono"]  # said once, naming it
        caplog.clear()
        both, _ = load_audio(tmp_path / "s.wav", mono=False)
        load_audio(tmp_path / "m.wav")
        assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # nothing averaged: silent
    assert both.shape == (2, len(left))
    assert torch.allclose(mono, torch.from_numpy((left + right) / 2), atol=1e-6)


def test_peak_normalize(tmp_path: Path) -> None:
    sf.write(tmp_path / "q.wav", 0.1 * _tone(), 16000)
    y, _ = load_audio(tmp_path / "q.wav", peak_normalize=True)
    assert abs(float(y.abs().max()) - 0.95) < 1e-6


def test_wrong_rate_and_resample(tmp_path: Path) -> None:
    sf.write(tmp_path / "r.wav", _tone(sr=22050, freq=1000.0), 22050)
    with pytest.raises(AudioError, match=r"22050 Hz.*16000 Hz.*resample=True"):
        load_audio(tmp_path / "r.wav", 16000)
    y, sr = load_audio(tmp_path / "r.wav", 16000, resample=True)
    assert sr == 16000 and abs(len(y) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(y.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 1000.0) < 5.0  # the tone keeps its pitch


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        load_audio(tmp_path / "empty.wav")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(tmp_path / "zero.wav")


def test_silent_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    sf.write(tmp_path / "quiet.flac", np.zeros(1600, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        load_audio(tmp_path / "quiet.flac")
    y, _ = load_audio(tmp_path / "quiet.flac", allow_silent=True)
    assert y.shape == (1600,) and float(y.abs().max()) == 0.0


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    full = tmp_path / f"full{suffix}"
    sf.write(full, _tone(seconds=1.0), 16000)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioError, match=rf"cut\{suffix}.*(truncated|corrupt)"):
        load_audio(cut)


def test_garbage_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioError, match="garbage.wav: cannot decode"):
        load_audio(bad)


def test_non_finite_samples(tmp_path: Path) -> None:
    x = _tone()
    x[100] = np.nan
    x[200] = np.inf
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="2 sample"):
        load_audio(tmp_path / "nan.wav")


def test_save_audio_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        save_audio(tmp_path / "x.wav", np.zeros((2, 2, 2), np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.full(10, np.nan, np.float32), 16000)
    with pytest.raises(ValueError, match="float"):
        save_audio(tmp_path / "x.wav", np.zeros(10, np.int16), 16000)
    with pytest.raises(ValueError, match="format"):
        save_audio(tmp_path / "x.xyz", np.zeros(10, np.float32), 16000)


def test_find_audio_files(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.wav", "d/sub/a.flac", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = find_audio_files([tmp_path / "d", tmp_path / "explicit.txt"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["d/b.wav", "d/sub/a.flac", "explicit.txt"]


def test_real_speech_file(shared_data: Path) -> None:
    root = shared_data / "librispeech-mini"
    with open(root / "metadata.csv", newline="") as f:
        row = next(csv.DictReader(f))
    audio, sr = load_audio(root / row["path"], 16000)
    assert sr == int(row["sample_rate"]) == 16000
    assert abs(len(audio) / sr - float(row["seconds"])) < 0.05
    mel = MelSpectrogram(mel_preset("16k"))(audio)
    assert mel.shape == (1, 80, len(audio) // 256 + 1)
    assert torch.isfinite(mel).all() and mel.max() > -5.0  # speech, not silence
