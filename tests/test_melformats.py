"""Mel format adapters: exact round trips from MelSpectrogram output, and the validation errors."""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.audio.conventions import (
    check_mel,
    from_model_mel,
    load_stats,
    mel_value_range,
    resolve_format,
    to_model_mel,
)
from waveflow_py.config import mel_preset


def _signal(sr: int = 22050, length: int = 22050) -> np.ndarray:
    rng = np.random.default_rng(0)
    y = 0.5 * librosa.chirp(fmin=100.0, fmax=0.4 * sr, sr=sr, length=length) + 0.05 * rng.standard_normal(
        length
    )
    y[length // 4 : length // 3] = 0.0  # digital silence: frames at the clamp floor
    return y


@pytest.fixture(scope="module")
def model_mel() -> torch.Tensor:
    return MelSpectrogram(mel_preset("tacotron2"))(torch.from_numpy(_signal()))  # (1, 80, F) float64


@pytest.mark.parametrize(
    "fmt, params",
    [
        ("ln", {}),
        ("hifigan", {}),
        ("log10", {}),
        ("espnet", {"mean": np.linspace(-3, -1, 80), "std": np.linspace(0.5, 1.5, 80)}),
        ("model", {}),
    ],
)
def test_log_formats_round_trip_exactly(model_mel: torch.Tensor, fmt: str, params: dict) -> None:
    cfg = mel_preset("tacotron2")
    encoded = from_model_mel(model_mel, fmt, cfg, **params)
    back = to_model_mel(encoded, fmt, cfg, **params)
    assert back.dtype == torch.float32 and back.shape == model_mel.shape
    assert (back.double() - model_mel).abs().max() < 1e-5


def test_log10_is_an_exact_rescaling(model_mel: torch.Tensor) -> None:
    cfg = mel_preset("tacotron2")
    log10 = from_model_mel(model_mel, "log10", cfg)
    assert torch.allclose(log10, model_mel / math.log(10.0), atol=1e-12)


def test_log10_model_convention_with_stats_matches_its_front_end() -> None:
    """An ESPnet-convention model (log10 + stats): a plain log10 mel plus its stats maps exactly onto
    what MelSpectrogram computes for that model."""
    mean, std = np.linspace(-3, -1, 80), np.linspace(0.5, 1.5, 80)
    plain, model = mel_preset("espnet"), mel_preset("espnet", mean=mean.tolist(), std=std.tolist())
    y = torch.from_numpy(_signal())
    raw = MelSpectrogram(plain)(y)
    converted = to_model_mel(raw, "log10", model)
    assert (converted.double() - MelSpectrogram(model)(y)).abs().max() < 1e-5


def coqui_normalize_numpy(
    ln_mel: np.ndarray, ref_level_db: float, min_level_db: float, symmetric: bool, max_norm: float
) -> np.ndarray:
    """Coqui TTS AudioProcessor, written out in numpy: ``_amp_to_db`` (20 log10(max(1e-8, M))) minus
    ref_level_db, then ``normalize`` ((S - min) / -min mapped to [-k, k] or [0, k], clipped)."""
    amp = np.exp(ln_mel)
    db = 20.0 * np.log10(np.maximum(1e-8, amp)) - ref_level_db
    norm = (db - min_level_db) / -min_level_db
    if symmetric:
        return np.clip(2 * max_norm * norm - max_norm, -max_norm, max_norm)
    return np.clip(max_norm * norm, 0.0, max_norm)


@pytest.mark.parametrize("symmetric", [True, False])
def test_coqui_db_matches_the_numpy_closed_form(model_mel: torch.Tensor, symmetric: bool) -> None:
    """Encoding equals Coqui's formulas computed in numpy, and decoding a numpy-encoded mel gives back
    the model mel wherever the encoding was not clipped."""
    cfg = mel_preset("tacotron2")
    params = {"ref_level_db": 20.0, "min_level_db": -100.0, "symmetric_norm": symmetric, "max_norm": 4.0}
    ln_mel = model_mel.double().numpy()
    expected = coqui_normalize_numpy(ln_mel, 20.0, -100.0, symmetric, 4.0)
    encoded = from_model_mel(model_mel, "coqui", cfg, **params).double().numpy()
    np.testing.assert_allclose(encoded, expected, atol=1e-5)
    decoded = to_model_mel(torch.from_numpy(expected), "db", cfg, **params).double().numpy()
    inside = (expected > (-4.0 if symmetric else 0.0) + 1e-9) & (expected < 4.0 - 1e-9)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(decoded[inside], ln_mel[inside], atol=1e-5)
    # the clipped floor decodes to the dB floor: ln(10 ** ((min_level_db + ref_level_db) / 20))
    low = expected <= (-4.0 if symmetric else 0.0) + 1e-9
    np.testing.assert_allclose(decoded[low], math.log(10 ** (-80 / 20)), atol=1e-5)


@pytest.mark.parametrize("symmetric", [True, False])
def test_coqui_db_round_trip_is_exact_above_the_floor(model_mel: torch.Tensor, symmetric: bool) -> None:
    cfg = mel_preset("tacotron2")
    params = {"ref_level_db": 20.0, "min_level_db": -100.0, "symmetric_norm": symmetric, "max_norm": 4.0}
    encoded = from_model_mel(model_mel, "coqui", cfg, **params)
    k = 4.0
    assert float(encoded.min()) >= (-k if symmetric else 0.0) and float(encoded.max()) <= k
    back = to_model_mel(encoded, "db", cfg, **params).double()
    # dB below min_level_db (after the ref shift) is clipped: amplitude floor 10 ** ((-100 + 20) / 20)
    floor = math.log(10 ** ((params["min_level_db"] + params["ref_level_db"]) / 20))
    above = model_mel > floor + 1e-6
    assert above.float().mean() > 0.5
    assert (back - model_mel)[above].abs().max() < 1e-5
    assert torch.allclose(back[~above], torch.full_like(back[~above], floor), atol=1e-5)


def test_approximate_conversion_between_filter_banks() -> None:
    model = mel_preset("tacotron2")
    source = mel_preset("espnet", log="ln", clamp=1e-5)  # 80-7600 Hz band instead of 0-8000
    y = torch.from_numpy(_signal())
    src_mel = MelSpectrogram(source)(y)
    with pytest.raises(ValueError, match=r"fmin: 80.0 vs model 0.0.*approximate=True"):
        to_model_mel(src_mel, "ln", model, source_cfg=source)
    approx = to_model_mel(src_mel, "ln", model, source_cfg=source, approximate=True).double()
    target = MelSpectrogram(model)(y)
    centres = librosa.mel_frequencies(n_mels=82, fmin=0.0, fmax=8000.0, htk=False)[1:-1]
    inside = torch.from_numpy((centres > 200) & (centres < 7000))
    loud = target[0][inside] > -8.0  # the re-projection cannot recover what sits at the floor
    err = (approx[0][inside] - target[0][inside])[loud].abs()
    assert float(err.median()) < 0.1 and float(err.mean()) < 0.3


def test_different_frame_rates_are_refused_even_approximately() -> None:
    model, source = mel_preset("tacotron2"), mel_preset("16k")
    mel = MelSpectrogram(source)(torch.from_numpy(_signal(16000, 16000)))
    with pytest.raises(ValueError, match="frame rate"):
        to_model_mel(mel, "ln", model, source_cfg=source, approximate=True)


def test_value_range_follows_config() -> None:
    lo, hi = mel_value_range(mel_preset("tacotron2"))
    assert lo == pytest.approx(math.log(1e-5)) and 2.5 < hi < 4.0
    lo10, hi10 = mel_value_range(mel_preset("espnet"))
    assert lo10 == pytest.approx(-10.0) and 1.0 < hi10 < 2.0


def test_check_mel_accepts_model_mel_and_arrays(model_mel: torch.Tensor) -> None:
    cfg = mel_preset("tacotron2")
    out = check_mel(model_mel[0].numpy(), cfg)
    assert out.shape == (1, 80, model_mel.shape[-1]) and out.dtype == torch.float32
    assert check_mel(model_mel, cfg).dtype == torch.float64
    with pytest.raises(ValueError, match="fewer than"):
        check_mel(model_mel, cfg, audio_length=model_mel.shape[-1] * 256 + 1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m: m[0].T, r"looks transposed \(frames, n_mels\).*mel.T"),
        (lambda m: m[:, :40], r"expected 80 mel bins on axis -2, got 40"),
        (lambda m: m[0, 0], r"shape \(n_mels, frames\)"),
        (lambda m: m.unsqueeze(0), r"shape \(n_mels, frames\)"),
        (lambda m: torch.where(m > 0, float("nan"), m), "NaN"),
        (lambda m: m.long(), "float"),
        (lambda m: m[..., :0], "no frames"),
    ],
)
def test_check_mel_shape_errors(model_mel: torch.Tensor, make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_mel(make(model_mel), mel_preset("tacotron2"))


@pytest.mark.parametrize(
    "fmt, params, match",
    [
        ("db", {"signal_norm": False}, "--mel-format db"),  # raw dB: far out of range
        ("db", {}, "--mel-format db"),  # [-4, 4] floor
        ("db", {"symmetric_norm": False}, "--mel-format db"),  # [0, 4] floor
        ("log10", {}, "--mel-format log10"),  # floor at log10(1e-5)
    ],
)
def test_check_mel_suggests_the_format(model_mel: torch.Tensor, fmt: str, params: dict, match: str) -> None:
    cfg = mel_preset("tacotron2")
    with pytest.raises(ValueError, match=match):
        check_mel(from_model_mel(model_mel, fmt, cfg, **params), cfg)


def test_check_mel_on_log10_model_suggests_ln(model_mel: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="--mel-format ln"):
        check_mel(model_mel.clamp(max=1.0), mel_preset("espnet", clamp=1e-5))


def test_format_names_and_parameters() -> None:
    assert resolve_format("ESPnet") == "log10" and resolve_format("coqui") == "db"
    with pytest.raises(ValueError, match="unknown mel format 'mp3'"):
        resolve_format("mp3")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['ref_level_db'\]"):
        to_model_mel(torch.zeros(80, 3), "ln", mel_preset("tacotron2"), ref_level_db=20)
    with pytest.raises(ValueError, match="expected 80 values"):
        to_model_mel(torch.zeros(80, 3), "log10", mel_preset("tacotron2"), mean=np.zeros(3))


def test_stats_files(tmp_path: Path) -> None:
    mean, std = np.linspace(-2, 0, 80), np.linspace(0.5, 1, 80)
    np.save(tmp_path / "stats.npy", np.stack([mean, std]))
    np.savez(tmp_path / "stats.npz", mean=mean, scale=std)
    x = np.random.default_rng(0).normal(size=(50, 80))
    np.savez(tmp_path / "feats_stats.npz", count=np.array(50), sum=x.sum(0), sum_square=(x**2).sum(0))
    for name in ("stats.npy", "stats.npz"):
        m, s = load_stats(tmp_path / name)
        assert np.allclose(m, mean) and np.allclose(s, std)
    m, s = load_stats(tmp_path / "feats_stats.npz")
    assert np.allclose(m, x.mean(0)) and np.allclose(s, x.std(0))
    np.save(tmp_path / "pickled.npy", np.array({"mel_mean": mean}, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="unpickling"):
        load_stats(tmp_path / "pickled.npy")
    with pytest.raises(FileNotFoundError):
        load_stats(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match=r"\(2, n_mels\)"):
        load_stats(np.zeros((3, 80)))


def test_padding_difference_passes_through_when_approximate() -> None:
    model, source = mel_preset("tacotron2"), mel_preset("hifigan")
    mel = MelSpectrogram(source)(torch.from_numpy(_signal()))
    with pytest.raises(ValueError, match="padding: 'hifigan' vs model 'center'"):
        to_model_mel(mel, "hifigan", model, source_cfg=source)
    out = to_model_mel(mel, "hifigan", model, source_cfg=source, approximate=True)
    assert (out.double() - mel).abs().max() < 1e-5  # same filter bank: values kept, frames not shifted


def test_power_difference_is_refused_even_approximately() -> None:
    model, source = mel_preset("tacotron2"), mel_preset("tacotron2", power=2.0)
    mel = MelSpectrogram(source)(torch.from_numpy(_signal()))
    with pytest.raises(ValueError, match="power 2.0 vs model 1.0"):
        to_model_mel(mel, "ln", model, source_cfg=source, approximate=True, check=False)


def test_source_cfg_by_preset_name_or_mapping() -> None:
    model = mel_preset("tacotron2")
    mel = MelSpectrogram(mel_preset("hifigan"))(torch.from_numpy(_signal()))
    a = to_model_mel(mel, "ln", model, source_cfg="hifigan", approximate=True)
    b = to_model_mel(mel, "ln", model, source_cfg={"padding": "hifigan", "mag_eps": 1e-9}, approximate=True)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown mel preset"):
        to_model_mel(mel, "ln", model, source_cfg="nope")


def test_compressed_encodings_of_real_speech_warn(
    shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from waveflow_py.audio import load_audio

    cfg = mel_preset("16k")
    files = sorted((shared_data / "librispeech-mini" / "dev").glob("*.flac"))[:3]
    if not files:
        pytest.skip("no dev files in librispeech-mini")
    module = MelSpectrogram(cfg)
    for f in files:
        mel = module(load_audio(f, 16000)[0])
        caplog.clear()
        check_mel(mel, cfg)
        assert "look compressed" not in caplog.text  # genuine ln speech: no warning
        for fmt in ("log10", "db"):
            caplog.clear()
            try:
                check_mel(from_model_mel(mel, fmt, cfg), cfg)
            except ValueError as e:  # a conclusive floor is an error instead
                assert f"--mel-format {fmt}" in str(e)
            else:
                assert "look compressed" in caplog.text


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_linear_mel_is_refused_with_the_conversion(model_mel: torch.Tensor, power: float) -> None:
    """A mel that was never log-compressed (linear magnitude or power) is refused, naming the fix."""
    cfg = mel_preset("tacotron2")
    linear = model_mel.exp().pow(power).float()  # what a front end without the log step writes
    with pytest.raises(ValueError, match=r"linear-magnitude or power mel.*ln\(max\(mel, 1e-5\)\)"):
        to_model_mel(linear, "ln", cfg)
    fixed = torch.log(linear.clamp(min=1e-5)) / power  # the conversion the message gives
    to_model_mel(fixed, "ln", cfg)  # accepted


def test_conversion_stays_on_the_mel_device(model_mel: torch.Tensor) -> None:
    cfg = mel_preset("espnet", mean=[-2.0] * 80, std=[1.5] * 80)
    out = to_model_mel(from_model_mel(model_mel, "model", cfg), "model", cfg)
    assert out.device == model_mel.device
