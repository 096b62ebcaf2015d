"""Multi-resolution STFT, log-mel L1 and mel-cepstral distortion on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.signals import add_noise, harmonic_tone, speech_like
from waveflow_py.config import mel_preset
from waveflow_py.evaluation import log_mel_l1, mel_cepstral_distortion, multi_resolution_stft
from waveflow_py.evaluation.spectral import ln_magnitude_mel, log_mel, mel_cepstrum

SR = 16000
CFG = mel_preset("16k")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speech_like(SR, 2.0)


def test_mrstft_zero_for_identical_and_grows_with_noise(speech: np.ndarray) -> None:
    same = multi_resolution_stft(speech, speech)
    assert same == {"sc": 0.0, "log_mag": 0.0, "total": 0.0}
    totals = [multi_resolution_stft(speech, add_noise(speech, snr))["total"] for snr in (30, 10, 0)]
    assert 0 < totals[0] < totals[1] < totals[2]
    d = multi_resolution_stft(speech, add_noise(speech, 10))
    assert d["total"] == pytest.approx(d["sc"] + d["log_mag"])


def test_mrstft_spectral_convergence_of_a_scaled_copy(speech: np.ndarray) -> None:
    # |S(0.5 x)| = 0.5 |S(x)|: SC = 0.5 exactly; log-magnitude L1 = ln 2 wherever above the floor
    d = multi_resolution_stft(speech, 0.5 * speech)
    assert d["sc"] == pytest.approx(0.5, rel=1e-9)
    assert 0.6 < d["log_mag"] <= np.log(2) + 1e-9


def test_mrstft_silent_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="silent"):
        multi_resolution_stft(np.zeros(4000), np.ones(4000))


def test_log_mel_l1_zero_for_identical_positive_otherwise(speech: np.ndarray) -> None:
    assert log_mel_l1(speech, speech, SR, CFG) == 0.0
    low, high = (log_mel_l1(speech, add_noise(speech, snr), SR, CFG) for snr in (30, 0))
    assert 0 < low < high


def test_log_mel_l1_of_a_gain_change_is_the_log_gain() -> None:
    # a loud tone stays above the clamp in every bin: ln(0.5 * mel) - ln(mel) = ln 0.5 everywhere
    tone = harmonic_tone(200, SR, 1.0, n_harmonics=39) + 0.05 * np.random.default_rng(0).standard_normal(SR)
    assert log_mel_l1(tone, 0.5 * tone, SR, CFG) == pytest.approx(np.log(2), rel=1e-3)


def test_sample_rate_must_match_the_mel_config(speech: np.ndarray) -> None:
    with pytest.raises(ValueError, match="does not match"):
        log_mel_l1(speech, speech, 22050, CFG)


def test_mcd_zero_for_identical_and_grows_with_noise(speech: np.ndarray) -> None:
    assert mel_cepstral_distortion(speech, speech, SR, CFG) == 0.0
    low, high = (mel_cepstral_distortion(speech, add_noise(speech, snr), SR, CFG) for snr in (30, 0))
    assert 0 < low < high


def test_mcd_ignores_overall_gain_because_c0_is_excluded() -> None:
    tone = harmonic_tone(200, SR, 1.0, n_harmonics=39) + 0.05 * np.random.default_rng(0).standard_normal(SR)
    assert mel_cepstral_distortion(tone, 0.5 * tone, SR, CFG) == pytest.approx(0.0, abs=1e-3)  # float32 mel
    assert mel_cepstral_distortion(tone, add_noise(tone, 10), SR, CFG) > 1.0


def test_mcd_matches_the_formula_on_cepstra(speech: np.ndarray) -> None:
    noisy = add_noise(speech, 10)
    c_r = mel_cepstrum(log_mel(speech, CFG), CFG)
    c_d = mel_cepstrum(log_mel(noisy, CFG), CFG)
    assert c_r.shape[0] == 24
    expected = np.mean(10 / np.log(10) * np.sqrt(2 * np.sum((c_r - c_d) ** 2, axis=0)))
    assert mel_cepstral_distortion(speech, noisy, SR, CFG) == pytest.approx(expected)


def test_ln_magnitude_mel_undoes_log10_and_stats(speech: np.ndarray) -> None:
    base = log_mel(speech, CFG)  # ln, no stats
    stats = mel_preset("16k", log="log10", mean=[-2.0] * 80, std=[3.0] * 80)
    normalised = log_mel(speech, stats)
    assert not np.allclose(normalised, base)
    np.testing.assert_allclose(ln_magnitude_mel(normalised, stats), base, atol=1e-4)
    power2 = mel_preset("16k", power=2.0)
    np.testing.assert_allclose(ln_magnitude_mel(log_mel(speech, power2), power2), log_mel(speech, power2) / 2)
