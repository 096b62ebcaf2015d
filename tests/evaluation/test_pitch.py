"""pYIN-based F0 RMSE (cents), gross pitch error, periodicity RMSE and V/UV F1 on known cases."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from tests.evaluation.signals import harmonic_tone
from waveflow_py.evaluation import PitchConfig, pitch_metrics, track_pitch
from waveflow_py.evaluation.pitch import (
    NO_SHARED_VOICING,
    PitchTrack,
    f0_rmse_cents,
    f1_from_counts,
    gross_pitch_error,
    periodicity_rmse,
    pitch_metrics_from_tracks,
    vuv_f1,
)

SR = 16000


def test_identical_signals_give_the_ceilings() -> None:
    tone = harmonic_tone(180, SR, 1.0)
    m = pitch_metrics(tone, tone, SR)
    assert m == {"f0_rmse_cents": 0.0, "gpe": 0.0, "periodicity_rmse": 0.0, "vuv_f1": 1.0}


def test_a_tone_100_cents_up_gives_100_cents_error() -> None:
    tone = harmonic_tone(180, SR, 1.0)
    # play the tone 2**(100/1200) times faster: read it as sampled at SR * ratio, resample that to SR
    ratio = 2 ** (100 / 1200)
    up = soxr.resample(harmonic_tone(180, SR, 1.2), SR * ratio, SR)[: tone.size]
    assert up.size == tone.size
    m = pitch_metrics(tone, up, SR)
    assert m["f0_rmse_cents"] == pytest.approx(100, abs=10)
    assert m["vuv_f1"] > 0.95


def test_the_tracker_finds_the_tone_f0_at_other_rates() -> None:
    track = track_pitch(harmonic_tone(220, 22050, 1.0), 22050)
    voiced = track.f0[track.voiced]
    assert voiced.size > 50
    assert np.median(voiced) == pytest.approx(220, rel=0.01)


def test_noise_against_a_tone_loses_voicing() -> None:
    tone = harmonic_tone(180, SR, 1.0)
    noise = 0.3 * np.random.default_rng(0).standard_normal(tone.size)
    m = pitch_metrics(tone, noise, SR)
    assert m["vuv_f1"] < 0.5
    assert m["periodicity_rmse"] > 0.3


def test_frame_scores_on_hand_made_tracks() -> None:
    ref = PitchTrack(
        f0=np.array([100.0, 100.0, np.nan, 200.0]),
        voiced=np.array([True, True, False, True]),
        voiced_prob=np.array([0.9, 0.8, 0.1, 0.9]),
    )
    deg = PitchTrack(
        f0=np.array([200.0, 100.0, 150.0, np.nan]),
        voiced=np.array([True, True, True, False]),
        voiced_prob=np.array([0.9, 0.8, 0.5, 0.1]),
    )
    # frames voiced in both: 0 (1200 cents off) and 1 (0 cents)
    assert f0_rmse_cents(ref, deg) == pytest.approx(np.sqrt((1200**2 + 0) / 2))
    assert periodicity_rmse(ref, deg) == pytest.approx(np.sqrt((0.4**2 + 0.8**2) / 4))
    # tp = 2, fp = 1, fn = 1 -> F1 = 4 / 6
    assert vuv_f1(ref, deg) == pytest.approx(4 / 6)
    unvoiced = PitchTrack(np.full(4, np.nan), np.zeros(4, bool), np.zeros(4))
    assert np.isnan(f0_rmse_cents(ref, unvoiced))
    assert vuv_f1(unvoiced, unvoiced) == 1.0


def test_bad_pitch_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="two periods"):
        PitchConfig(fmin=20.0)
    with pytest.raises(ValueError, match="fmin < fmax"):
        PitchConfig(fmin=300.0, fmax=200.0)


def _track(f0: list[float], voiced: list[int]) -> PitchTrack:
    on = np.array(voiced, dtype=bool)
    return PitchTrack(np.array(f0, dtype=float), on, np.where(on, 0.9, 0.1))


def test_gpe_counts_octave_and_large_errors_but_not_19_percent() -> None:
    nan = np.nan
    # frame:          0 octave up, 1 octave down, 2 +19 %, 3 -19 %, 4 +21 %, 5 exact, 6 unvoiced ref,
    #                 7 unvoiced output, 8 NaN F0 marked voiced in the output (left out)
    ref = _track([100, 100, 100, 100, 100, 100, nan, 100, 100], [1, 1, 1, 1, 1, 1, 0, 1, 1])
    deg = _track([200, 50, 119, 81, 121, 100, 300, nan, nan], [1, 1, 1, 1, 1, 1, 1, 0, 1])
    both = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0], bool)
    direct = np.mean(np.abs(deg.f0[both] / ref.f0[both] - 1) > 0.2)
    assert direct == pytest.approx(3 / 6)  # frames 0, 1 and 4 of the six voiced in both
    assert gross_pitch_error(ref, deg) == direct
    assert pitch_metrics_from_tracks(ref, deg)["gpe"] == direct
    assert gross_pitch_error(ref, deg, threshold=0.18) == pytest.approx(5 / 6)  # now +-19 % count too
    assert gross_pitch_error(ref, ref) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        gross_pitch_error(ref, deg, threshold=0.0)


def test_gpe_is_nan_when_no_frame_is_voiced_in_both() -> None:
    ref = _track([100, 100, np.nan], [1, 1, 0])
    deg = _track([np.nan, np.nan, 100], [0, 0, 1])
    assert np.isnan(gross_pitch_error(ref, deg)) and np.isnan(f0_rmse_cents(ref, deg))


def test_compute_metrics_gives_gpe_from_the_cached_reference_track_and_names_why_it_is_missing() -> None:
    from waveflow_py.config import mel_preset
    from waveflow_py.evaluation.metrics import compute_metrics

    cfg = mel_preset("16k")
    tone = harmonic_tone(180, SR, 0.5)
    track = track_pitch(tone, SR)
    assert track.voiced.mean() > 0.5
    # a cached reference track one octave above the tone: every frame voiced in both is a gross error,
    # which only happens when GPE reads the cache rather than tracking the reference again
    octave = PitchTrack(2 * track.f0, track.voiced, track.voiced_prob)
    off = compute_metrics(tone, 0.9 * tone, SR, cfg, reference_tracks={tone.size: octave})
    assert off.values["gpe"] == 1.0 and "gpe" not in off.errors
    silent = compute_metrics(tone, np.zeros_like(tone), SR, cfg, reference_tracks={tone.size: track})
    assert np.isnan(silent.values["gpe"]) and np.isnan(silent.values["f0_rmse_cents"])
    assert silent.errors["gpe"] == NO_SHARED_VOICING == silent.errors["f0_rmse_cents"]
    assert "no frame is voiced" in NO_SHARED_VOICING


def test_f1_from_counts_is_the_usual_f1() -> None:
    # precision 3/4, recall 3/5: F1 = 2 p r / (p + r) = 2/3
    assert f1_from_counts(3, 1, 2) == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    assert f1_from_counts(0, 0, 0) == 1.0  # nothing voiced on either side: agreement
    assert np.isnan(f1_from_counts(0, 0, 0, empty=float("nan")))
    ref = PitchTrack(
        f0=np.array([100.0, 100.0, np.nan, 100.0]),
        voiced=np.array([True, True, False, True]),
        voiced_prob=np.ones(4),
    )
    deg = PitchTrack(
        f0=np.array([100.0, np.nan, 100.0, 100.0]),
        voiced=np.array([True, False, True, True]),
        voiced_prob=np.ones(4),
    )
    assert vuv_f1(ref, deg) == pytest.approx(f1_from_counts(2, 1, 1))
