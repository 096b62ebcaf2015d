"""Multi-resolution STFT, log-mel L1 and mel-cepstral distortion on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.signals import add_noise, harmonic_tone, speech_like
from waveflow_py.config import mel_preset
from waveflow_py.evaluation import log_mel_l1, mel_cepstral_distortion, multi_resolution_stft
from waveflow_py.evaluation.spectral import ln_magnitude_mel, log_mel, mcd_coefficients, mel_cepstrum

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


def _dct_ii_ortho(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix written out: row k is sqrt(2/N) cos(pi k (2m + 1) / 2N), row 0 / sqrt2"""
    k, m = np.arange(n)[:, None], np.arange(n)[None, :]
    mat = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * m + 1) / (2 * n))
    mat[0] /= np.sqrt(2.0)
    return mat


def _mcd_closed_form(ref: np.ndarray, deg: np.ndarray, cfg, k: int) -> float:
    """Kubichek's MCD from the ln-mel by an explicit DCT matrix (no code of the module's cepstrum)."""
    c_r = _dct_ii_ortho(cfg.n_mels) @ log_mel(ref, cfg)
    c_d = _dct_ii_ortho(cfg.n_mels) @ log_mel(deg, cfg)
    diff = (c_r - c_d)[1 : k + 1]  # c1..ck: c0 (energy) excluded
    return float(np.mean(10 / np.log(10) * np.sqrt(2 * np.sum(diff**2, axis=0))))


def test_mcd_matches_an_independent_closed_form(speech: np.ndarray) -> None:
    assert CFG.log == "ln" and CFG.power == 1.0 and CFG.mean is None  # log_mel is the ln mel magnitude
    noisy = add_noise(speech, 10)
    assert mel_cepstrum(log_mel(speech, CFG), CFG).shape[0] == 24
    expected = _mcd_closed_form(speech, noisy, CFG, 24)
    assert mel_cepstral_distortion(speech, noisy, SR, CFG) == pytest.approx(expected, rel=1e-9)
    assert mel_cepstral_distortion(speech, noisy, SR, CFG, n_coeffs=10) == pytest.approx(
        _mcd_closed_form(speech, noisy, CFG, 10), rel=1e-9
    )


@pytest.mark.parametrize("n_mels", [2, 8, 16, 24, 25])
def test_mcd_works_for_small_mels_with_the_coefficients_they_have(speech: np.ndarray, n_mels: int) -> None:
    """A mel under 25 bins (tests, the tiny recipe) uses c1..c(n_mels-1) instead of failing."""
    cfg = mel_preset("16k", n_mels=n_mels)
    k = mcd_coefficients(cfg)
    assert k == min(24, n_mels - 1)
    noisy = add_noise(speech, 10)
    assert mel_cepstrum(log_mel(speech, cfg), cfg).shape[0] == k
    value = mel_cepstral_distortion(speech, noisy, SR, cfg)
    assert value > 0 and value == pytest.approx(_mcd_closed_form(speech, noisy, cfg, k), rel=1e-9)
    with pytest.raises(ValueError, match="n_coeffs"):
        mel_cepstral_distortion(speech, noisy, SR, cfg, n_coeffs=n_mels)  # an explicit K must fit


def test_ln_magnitude_mel_undoes_log10_and_stats(speech: np.ndarray) -> None:
    base = log_mel(speech, CFG)  # ln, no stats
    stats = mel_preset("16k", log="log10", mean=[-2.0] * 80, std=[3.0] * 80)
    normalised = log_mel(speech, stats)
    assert not np.allclose(normalised, base)
    np.testing.assert_allclose(ln_magnitude_mel(normalised, stats), base, atol=1e-4)
    power2 = mel_preset("16k", power=2.0)
    np.testing.assert_allclose(ln_magnitude_mel(log_mel(speech, power2), power2), log_mel(speech, power2) / 2)


def test_metrics_and_report_of_a_small_mel_state_the_mcd_range(speech: np.ndarray) -> None:
    """The tiny recipe's 16-bin mel: compute_metrics gives a finite MCD (not NaN + "n_coeffs: expected
    1..15, got 24") and the report's settings say which coefficients were used."""
    from waveflow_py.config import to_dict
    from waveflow_py.evaluation.markdown import _settings_lines
    from waveflow_py.evaluation.metrics import compute_metrics

    cfg = mel_preset("16k", n_mels=16)
    result = compute_metrics(speech, add_noise(speech, 10), SR, cfg)
    assert "mcd" not in result.errors and np.isfinite(result.values["mcd"]) and result.values["mcd"] > 0

    class _Result:  # the fields _settings_lines reads
        settings = {
            "data": "d",
            "sample_rate": SR,
            "sigma": 0.6,
            "seed": 0,
            "griffin_lim_iters": 1,
            "mel": to_dict(cfg),
            "pitch": {"description": "pYIN"},
        }
        clips: list = []
        failed: list = []
        model: dict = {"truncation": 2.5, "excitation_rms": 1.25}

    text = "\n".join(_settings_lines(_Result()))  # type: ignore[arg-type]
    assert "c1..c15 (all that a 16-bin mel has" in text
    assert "noise truncated to +-2.5 standard deviations, excitation frames set to RMS 1.25" in text
    _Result.settings["mel"] = to_dict(CFG)
    assert "c1..c24," in "\n".join(_settings_lines(_Result()))  # type: ignore[arg-type]


def test_unseen_mrstft_is_the_same_distance_at_256_64_and_4096_1024(speech: np.ndarray) -> None:
    from waveflow_py.evaluation.metrics import compute_metrics
    from waveflow_py.evaluation.spectral import MRSTFT_RESOLUTIONS, MRSTFT_UNSEEN_RESOLUTIONS

    assert MRSTFT_RESOLUTIONS == ((512, 128), (1024, 256), (2048, 512))  # unchanged: old numbers compare
    assert MRSTFT_UNSEEN_RESOLUTIONS == ((256, 64), (4096, 1024))
    ref = speech[:SR]
    noisy = add_noise(ref, 10)
    values = compute_metrics(ref, noisy, SR, CFG).values
    unseen = multi_resolution_stft(ref, noisy, ((256, 64), (4096, 1024)))
    assert values["mrstft_unseen"] == unseen["total"]
    assert values["mrstft"] == multi_resolution_stft(ref, noisy, MRSTFT_RESOLUTIONS)["total"]
    assert values["mrstft_unseen"] != values["mrstft"]
    for n, h in MRSTFT_RESOLUTIONS + MRSTFT_UNSEEN_RESOLUTIONS:  # and each resolution alone
        assert values[f"mrstft_{n}_{h}"] == multi_resolution_stft(ref, noisy, ((n, h),))["total"]
