"""Griffin-Lim and envelope baselines, and the confidence-interval summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.evaluation.signals import speech_like
from waveflow_py.config import mel_preset
from waveflow_py.evaluation import griffin_lim, log_mel_l1, summarize
from waveflow_py.evaluation.baselines import envelope_log_prob, envelope_noise
from waveflow_py.evaluation.spectral import log_mel

SR = 16000


@pytest.mark.parametrize("preset", ["16k", "hifigan16k"])
def test_griffin_lim_reconstructs_the_mel_time_aligned(preset: str) -> None:
    cfg = mel_preset("16k") if preset == "16k" else mel_preset("hifigan", sample_rate=SR, fmax=8000.0)
    x = speech_like(SR, 1.5)
    mel = log_mel(x, cfg)
    y = griffin_lim(mel, cfg, n_iter=32, length=x.size)
    assert y.shape == x.shape and y.dtype == np.float32
    noise = 0.1 * np.random.default_rng(0).standard_normal(x.size)
    # close to the reference's own mel, far closer than noise, and aligned: a one-hop shift is worse
    err = log_mel_l1(x, y, SR, cfg)
    assert err < 0.5 * log_mel_l1(x, noise, SR, cfg)
    shifted = np.concatenate([np.zeros(cfg.hop_length), y[: -cfg.hop_length]])
    assert err < log_mel_l1(x, shifted, SR, cfg)


def test_griffin_lim_is_seeded_and_checks_its_input() -> None:
    cfg = mel_preset("16k")
    mel = log_mel(speech_like(SR, 0.5), cfg)
    a, b = griffin_lim(mel, cfg, n_iter=4, seed=3), griffin_lim(mel, cfg, n_iter=4, seed=3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_iter"):
        griffin_lim(mel, cfg, n_iter=0)
    with pytest.raises(ValueError, match="80"):
        griffin_lim(mel[:40], cfg)


def test_envelope_baseline_likelihood_is_exact_for_its_own_samples() -> None:
    """Audio drawn from the baseline (unit noise e through the mel's LPC filter) scores exactly
    mean log N(e) - mean log g: whitening undoes the synthesis sample for sample."""
    import torch

    from waveflow_py.sourcefilter.envelope import SpectralEnvelope

    cfg = mel_preset("16k")
    mel = log_mel(speech_like(SR, 1.0), cfg)
    hop, frames = cfg.hop_length, mel.shape[1]
    y = envelope_noise(mel, cfg, seed=5)
    assert y.shape == (frames * hop,) and y.dtype == np.float32
    assert 0.3 < float(np.sqrt(np.mean(y**2) / np.mean(speech_like(SR, 1.0) ** 2))) < 3.0  # the mel's energy
    e = torch.randn(1, frames * hop, generator=torch.Generator().manual_seed(5)).double()
    _a, log_gain = SpectralEnvelope(cfg, 16)(torch.as_tensor(mel)[None], frames)
    want = float((-0.5 * e**2 - 0.5 * math.log(2 * math.pi)).mean() - log_gain.double().mean())
    assert envelope_log_prob(y.astype(np.float64), mel, cfg) == pytest.approx(want, abs=2e-3)
    # a global gain of the excitation shifts the likelihood of other audio: the unscaled model is best
    # for audio that is its own sample, a scale of 2x or 0.5x scores it lower
    base = envelope_log_prob(y, mel, cfg)
    assert envelope_log_prob(y, mel, cfg, log_scale=math.log(2.0)) < base
    assert envelope_log_prob(y, mel, cfg, log_scale=-math.log(2.0)) < base
    with pytest.raises(ValueError, match="80"):
        envelope_log_prob(y, mel[:40], cfg)


def test_summary_mean_and_t_interval() -> None:
    s = summarize([1.0, 2.0, 3.0, float("nan")])
    assert (s.mean, s.n, s.n_missing, s.minimum, s.maximum) == (2.0, 3, 1, 1.0, 3.0)
    assert s.std == pytest.approx(1.0)
    # t_{0.975, df=2} = 4.302652729911275 (tables); half-width = t * s / sqrt(n)
    assert s.ci95 == pytest.approx(4.302652729911275 / math.sqrt(3))
    one = summarize([5.0])
    assert one.mean == 5.0 and math.isnan(one.ci95)
    assert summarize([float("nan")]).n == 0
    assert summarize([float("nan")]).to_dict()["mean"] is None
    with pytest.raises(ValueError, match="level"):
        summarize([1.0], level=1.5)
