"""The learned pitch predictor (sourcefilter.pitchnet): bins, decoding, targets and losses, and the
harmonic source's use of it (voicing from its probability, fixed weights)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import SourceFilterConfig, mel_preset
from waveflow_py.sourcefilter import HarmonicSource
from waveflow_py.sourcefilter.pitchnet import (
    PITCH_CENTS,
    PITCH_FMAX,
    PITCH_FMIN,
    MelPitchNet,
    pitch_bins,
    pitch_loss,
    pitch_targets,
)


def _centre(k: int) -> float:
    return PITCH_FMIN * 2 ** (k * PITCH_CENTS / 1200)


def test_bins_span_the_pitch_range() -> None:
    n = pitch_bins()
    assert _centre(0) == PITCH_FMIN and _centre(n - 1) == pytest.approx(PITCH_FMAX, rel=1e-9)


def test_decode_gives_the_bin_centre_and_the_voicing_probability() -> None:
    n = pitch_bins()
    logits = torch.full((1, 1 + n, 3), -30.0)
    for frame, k in enumerate((0, 40, n - 1)):
        logits[0, 1 + k, frame] = 30.0
    logits[0, 0] = torch.tensor([-2.0, 0.0, 3.0])
    f0, prob = MelPitchNet.decode(logits)
    torch.testing.assert_close(
        f0[0], torch.tensor([_centre(0), _centre(40), _centre(n - 1)]), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(prob[0], torch.sigmoid(torch.tensor([-2.0, 0.0, 3.0])))
    # between two equally likely neighbours: the mean of their log-frequencies
    logits = torch.full((1, 1 + n, 1), -30.0)
    logits[0, 1 + 10, 0] = logits[0, 1 + 11, 0] = 5.0
    f0, _ = MelPitchNet.decode(logits)
    assert float(f0) == pytest.approx(math.sqrt(_centre(10) * _centre(11)), rel=1e-4)


def test_targets_and_losses_equal_a_direct_computation() -> None:
    f0 = torch.tensor([[100.0, 0.0, 220.0]])
    voiced = torch.tensor([[True, False, True]])
    t = pitch_targets(f0, voiced)
    assert t.shape == (2, pitch_bins())
    torch.testing.assert_close(t.sum(1), torch.ones(2))
    assert [int(i) for i in t.argmax(1)] == [
        round(1200 * math.log2(f / PITCH_FMIN) / PITCH_CENTS) for f in (100, 220)
    ]
    logits = torch.randn(1, 1 + pitch_bins(), 3)
    bce, ce = pitch_loss(logits, f0, voiced)
    torch.testing.assert_close(bce, F.binary_cross_entropy_with_logits(logits[0, 0], voiced[0].float()))
    log_p = torch.log_softmax(logits[0, 1:], dim=0)[:, [0, 2]].T
    torch.testing.assert_close(ce, -(t * log_p).sum(1).mean())
    _, none = pitch_loss(logits, f0, torch.zeros_like(voiced))
    assert float(none) == 0.0


def test_the_harmonic_source_takes_f0_and_voicing_from_the_predictor() -> None:
    mel_cfg = mel_preset("16k")
    stage = HarmonicSource(mel_cfg, bands=4, hidden=8, threshold=0.45, pitch="learned", pitch_hidden=8)
    net = stage.pitchnet
    assert net is not None and not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():  # a predictor that says 200 Hz, voiced in the first half of the frames only
        for p in net.parameters():
            p.zero_()
        k = round(1200 * math.log2(200 / PITCH_FMIN) / PITCH_CENTS)
        net.out.bias[1 + k] = 10.0
    frames = 12
    mel = torch.randn(1, mel_cfg.n_mels, frames) - 5.0
    real_forward = net.forward

    def forward(logmel: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        out = real_forward(logmel, rho).clone()
        out[:, 0] = torch.where(torch.arange(out.shape[-1]) < frames // 2, 4.0, -4.0)
        return out

    net.forward = forward  # type: ignore[method-assign]
    length = (frames - 1) * mel_cfg.hop_length
    ctx = stage.context(mel, length).detach()
    f0, voicing = ctx[0, :, 0], ctx[0, :, 1]
    torch.testing.assert_close(f0, torch.full_like(f0, _centre(k)), rtol=1e-4, atol=0)
    p = torch.sigmoid(torch.tensor(4.0))
    torch.testing.assert_close(voicing[: frames // 2], torch.full((frames // 2,), float(2 * p - 1)))
    assert (
        float(voicing[frames // 2 :].abs().max()) == 0.0
        and float(ctx[0, frames // 2 :, 3:].abs().max()) == 0.0
    )
    # a lower floor keeps harmonics where the predictor is unsure, scaled by (p - floor) / (1 - floor)
    stage.pitch_floor = 0.1
    soft = stage.context(mel, length).detach()[0, :, 1]
    torch.testing.assert_close(soft[: frames // 2], torch.full((frames // 2,), float((p - 0.1) / 0.9)))
    assert float(soft[frames // 2 :].abs().max()) == 0.0  # p = sigmoid(-4) = 0.018 is below it
    stage.pitch_floor = 0.5
    # a spectral loss reaches the controls but not the fixed predictor
    e, _, _ = stage.synthesis(torch.zeros(1, (frames - 1) * mel_cfg.hop_length), stage.context(mel, length))
    e.square().mean().backward()
    assert any(p.grad is not None for p in stage.controls.parameters())
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="pitch expected"):
        HarmonicSource(mel_cfg, pitch="pyin")
    with pytest.raises(ValueError, match="source_pitch_floor"):
        SourceFilterConfig(source="harmonic", source_pitch="learned", source_pitch_floor=1.0)


def test_the_hybrid_pitch_corrects_the_analysis_f0_and_fills_its_voicing_from_the_predictor() -> None:
    mel_cfg = mel_preset("16k")
    sr = mel_cfg.sample_rate
    hybrid = HarmonicSource(
        mel_cfg, bands=4, hidden=8, threshold=0.45, pitch="hybrid", pitch_hidden=8, pitch_floor=0.3
    )
    analysis = HarmonicSource(mel_cfg, bands=4, hidden=8, threshold=0.45)
    net = hybrid.pitchnet
    assert net is not None and analysis.pitchnet is None
    frames = 1 + sr // mel_cfg.hop_length  # 1 s of audio, centred frames
    index = torch.arange(frames)
    near = round(1200 * math.log2(130 / PITCH_FMIN) / PITCH_CENTS)  # within 20 % of the sawtooth's 120 Hz
    far = round(1200 * math.log2(200 / PITCH_FMIN) / PITCH_CENTS)  # 67 % above it
    bins = torch.where(index % 2 == 0, near, far)
    unsure = index % 3 == 0  # probability sigmoid(-2), under the floor; sigmoid(2) elsewhere

    def forward(logmel: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        out = torch.full((logmel.shape[0], 1 + pitch_bins(), frames), -30.0)
        out[:, 1 + bins, index] = 10.0
        out[:, 0] = torch.where(unsure, -2.0, 2.0)
        return out

    net.forward = forward  # type: ignore[method-assign]
    # 0.5 s of a 120 Hz sawtooth (the analysis hears it), then 0.5 s of white noise (it does not)
    t = torch.arange(sr // 2, dtype=torch.float64) / sr
    saw = 0.5 * (2 * torch.remainder(120 * t, 1.0) - 1)
    audio = torch.cat([saw, 0.3 * torch.randn(sr // 2, generator=torch.Generator().manual_seed(0))]).float()
    logmel = MelSpectrogram(mel_cfg)(audio[None])
    assert logmel.shape[-1] == frames
    with torch.no_grad():
        f0_a, v_a, peak_a = analysis.frame_pitch(logmel)
        f0_h, v_h, peak_h = hybrid.frame_pitch(logmel)
    f0_a, v_a, f0_h, v_h = f0_a[0], v_a[0], f0_h[0], v_h[0]
    voiced, heard = v_a > 0, ~unsure
    assert int(voiced.sum()) > 10 and int((~voiced).sum()) > 10  # both voicing branches are exercised
    assert float(f0_a[voiced].median()) == pytest.approx(120, rel=0.02)
    assert torch.equal(peak_h, peak_a)
    f0_net = torch.tensor([_centre(int(k)) for k in bins], dtype=f0_h.dtype)
    # F0: the analysis's where the predictor agrees within 20 % or hears nothing, the predictor's elsewhere
    keep = (voiced & (bins == near)) | unsure
    assert bool((voiced & heard & (bins == near)).any()) and bool((voiced & heard & (bins == far)).any())
    assert torch.equal(f0_h[keep], f0_a[keep])
    torch.testing.assert_close(f0_h[~keep], f0_net[~keep], rtol=1e-4, atol=0)
    # voicing: the analysis's where it hears a voice, the predictor's (p - floor) / (1 - floor) elsewhere
    assert torch.equal(v_h[voiced], v_a[voiced])
    p = float(torch.sigmoid(torch.tensor(2.0)))
    fill = ~voiced & heard
    torch.testing.assert_close(v_h[fill], torch.full_like(v_h[fill], (p - 0.3) / 0.7))
    assert float(v_h[~voiced & unsure].abs().max()) == 0.0
