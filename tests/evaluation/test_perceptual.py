"""PESQ-WB and STOI: ceilings for identical signals, monotonic in SNR, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.evaluation.signals import add_noise, speech_like
from waveflow_py.evaluation import pesq_wb, stoi


def test_identical_signals_reach_the_ceilings(real_speech: tuple[np.ndarray, int]) -> None:
    x, sr = real_speech
    assert pesq_wb(x, x, sr) == pytest.approx(4.64, abs=0.01)
    assert stoi(x, x, sr) == pytest.approx(1.0, abs=1e-6)


def test_quality_drops_monotonically_with_snr(real_speech: tuple[np.ndarray, int]) -> None:
    x, sr = real_speech
    pesqs = [pesq_wb(x, add_noise(x, snr), sr) for snr in (30, 10, 0)]
    stois = [stoi(x, add_noise(x, snr), sr) for snr in (30, 10, 0)]
    assert pesqs[0] > pesqs[1] > pesqs[2] >= 1.0
    assert stois[0] > stois[1] > stois[2] > 0.0
    assert pesqs[0] < 4.64 and stois[0] < 1.0


def test_synthetic_speech_like_signal_is_scored_and_ordered() -> None:
    x = speech_like(16000, 3.0)
    assert stoi(x, x, 16000) == pytest.approx(1.0, abs=1e-6)
    assert stoi(x, add_noise(x, 20), 16000) > stoi(x, add_noise(x, -5), 16000)
    assert pesq_wb(x, add_noise(x, 20), 16000) > pesq_wb(x, add_noise(x, 0), 16000)


def test_other_rates_are_resampled_for_pesq() -> None:
    x = speech_like(22050, 3.0)
    assert pesq_wb(x, x, 22050) == pytest.approx(4.64, abs=0.01)


def test_length_mismatch_is_trimmed_to_the_shorter() -> None:
    x = speech_like(16000, 3.0)
    longer = np.concatenate([x, np.random.default_rng(1).standard_normal(4000)])
    assert stoi(x, longer, 16000) == pytest.approx(1.0, abs=1e-6)


def test_bad_input_is_a_value_error() -> None:
    x = speech_like(16000, 1.0)
    with pytest.raises(ValueError, match="1-D"):
        stoi(np.stack([x, x]), x, 16000)
    with pytest.raises(ValueError, match="NaN"):
        stoi(x, np.full_like(x, np.nan), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        pesq_wb(x, x, 0)
    with pytest.raises(ValueError, match="PESQ could not score"):
        pesq_wb(np.zeros(16000), np.zeros(16000) + 1e-9, 16000)


@pytest.mark.parametrize(("module", "fn"), [("pesq", pesq_wb), ("pystoi", stoi)])
def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str, fn) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    x = speech_like(16000, 1.0)
    with pytest.raises(ImportError, match=r"pip install waveflow-py\[eval\]"):
        fn(x, x, 16000)
