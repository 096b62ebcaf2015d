"""The harmonic source stage (sourcefilter.harmonic): the harmonic sum and its phase, the per-sample
controls, the F0 rule at voicing edges, and which objective trains which of its parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import SourceFilterConfig, mel_preset
from waveflow_py.sourcefilter import HarmonicSource, SourceFilter
from waveflow_py.sourcefilter.harmonic import _BLOCK, harmonic_sum, mel_band_centres, per_sample

SR = 16000


def test_band_centres_are_mel_spaced_inside_the_band() -> None:
    c = mel_band_centres(8, SR)
    assert c.shape == (8,) and bool((c[1:] > c[:-1]).all()) and 0 < float(c[0]) and float(c[-1]) < SR / 2
    widths = c[1:] - c[:-1]
    assert bool((widths[1:] > widths[:-1]).all())  # wider towards high frequencies


def test_per_sample_is_linear_between_boundaries() -> None:
    v = torch.tensor([[0.0, 4.0, 2.0]], dtype=torch.float64)
    out = per_sample(v, 7, 4)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 3.5, 3.0]], dtype=torch.float64))


def test_flat_harmonics_have_unit_power_and_the_right_frequencies() -> None:
    t = SR + 100  # several blocks of the harmonic sum: the phase runs on across them
    assert t > 3 * _BLOCK
    f0 = torch.full((1, t), 125.0, dtype=torch.float64)
    amp = torch.ones(1, 8, t, dtype=torch.float64)
    h, phase = harmonic_sum(f0, amp, mel_band_centres(8, SR), torch.zeros(1, dtype=torch.float64), SR)
    assert float(h.square().mean()) == pytest.approx(1.0, rel=0.02)
    spectrum = torch.fft.rfft(h[0, :SR]).abs()  # 1 Hz bins
    peaks = torch.topk(spectrum[:1000], 7).indices.sort().values
    assert peaks.tolist() == [125, 250, 375, 500, 625, 750, 875]
    assert float(phase) == pytest.approx(math.fmod(2 * math.pi * 125.0 * t / SR, 2 * math.pi), abs=1e-6)
    # chunks with the phase carried give the same signal
    a, pa = harmonic_sum(f0[:, :5000], amp[..., :5000], mel_band_centres(8, SR), torch.zeros(1).double(), SR)
    b, _ = harmonic_sum(f0[:, 5000:], amp[..., 5000:], mel_band_centres(8, SR), pa, SR)
    # (equal up to the rounding of a running phase of ~10^4 rad, times the harmonic number)
    torch.testing.assert_close(torch.cat([a, b], 1), h, atol=1e-7, rtol=0)


def test_the_harmonics_cosines_equal_a_direct_computation() -> None:
    from waveflow_py.sourcefilter.harmonic import _cos_multiples

    phase = torch.cumsum(torch.full((2, 3000), 2 * math.pi * 97.0 / SR, dtype=torch.float64), 1)
    phase = phase + torch.tensor([[0.3], [5000.0]], dtype=torch.float64)  # up to thousands of radians
    k = torch.arange(1, 161, dtype=torch.float64)
    direct = torch.cos(phase[..., None] * k)  # itself rounded by ~|k phase| * 1e-16
    torch.testing.assert_close(_cos_multiples(phase, 160), direct, atol=1e-10, rtol=0)


def _direct_harmonic_sum(f0: torch.Tensor, amp: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """The module docstring's formula, one sample at a time (float64): harmonics below Nyquist for that
    sample's own F0, amplitudes linear in frequency between the band centres, the taper's power count."""
    phase = torch.cumsum(f0 * (2 * math.pi / SR), dim=1)
    out = torch.zeros_like(f0)
    for b in range(f0.shape[0]):
        for n in range(f0.shape[1]):
            k = torch.arange(1, int(SR / 2 / float(f0[b, n])) + 2, dtype=torch.float64)
            fk = float(f0[b, n]) * k
            taper = ((SR / 2 - fk) / 500.0).clamp(0.0, 1.0)
            a = torch.from_numpy(np.interp(fk.numpy(), centres.numpy(), amp[b, :, n].numpy()))
            waves = taper * torch.cos(k * phase[b, n])
            out[b, n] = (a * waves).sum() / math.sqrt(max(float(taper.sum()), 1.0) / 2)
    return out


def test_unvoiced_samples_are_skipped_and_the_rest_equal_a_direct_computation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from waveflow_py.sourcefilter import harmonic

    t = 600  # two blocks: voiced (220-260 Hz) and unvoiced (F0 52 Hz, amplitudes 0) samples in both
    monkeypatch.setattr(harmonic, "_BLOCK", 400)
    gen = torch.Generator().manual_seed(0)
    f0 = torch.linspace(220.0, 260.0, t, dtype=torch.float64)[None].repeat(2, 1)
    amp = torch.rand(2, 8, t, generator=gen, dtype=torch.float64)
    unvoiced = torch.zeros(2, t, dtype=torch.bool)
    unvoiced[0, 100:250], unvoiced[1, 380:590] = True, True
    f0[unvoiced], amp.transpose(1, 2)[unvoiced] = 52.0, 0.0
    counts: list[int] = []
    real = harmonic._cos_multiples
    monkeypatch.setattr(harmonic, "_cos_multiples", lambda ph, k: counts.append(k) or real(ph, k))
    centres = mel_band_centres(8, SR)
    h, _ = harmonic_sum(f0, amp, centres, torch.zeros(2, dtype=torch.float64), SR)
    assert counts == [math.ceil(SR / 2 / 220.0), math.ceil(SR / 2 / f0[:, 400:][~unvoiced[:, 400:]].min())]
    assert float(h[unvoiced].abs().max()) == 0.0
    torch.testing.assert_close(h, _direct_harmonic_sum(f0, amp, centres), atol=1e-9, rtol=0)
    # a block with no voiced sample sums nothing
    counts.clear()
    silent, _ = harmonic_sum(f0, torch.zeros_like(amp), centres, torch.zeros(2, dtype=torch.float64), SR)
    assert counts == [] and float(silent.abs().max()) == 0.0


def test_band_amplitudes_shape_the_harmonics() -> None:
    t = SR
    f0 = torch.full((1, t), 200.0, dtype=torch.float64)
    amp = torch.zeros(1, 8, t, dtype=torch.float64)
    amp[:, 0] = 1.0  # only the lowest band (its centre ~119 Hz; beyond it the amplitude falls to 0)
    h, _ = harmonic_sum(f0, amp, mel_band_centres(8, SR), torch.zeros(1, dtype=torch.float64), SR)
    spectrum = torch.fft.rfft(h[0]).abs()
    assert float(spectrum[200]) > 10 * float(spectrum[1000])


def _stage(threshold: float = 0.45) -> tuple[HarmonicSource, torch.Tensor, torch.Tensor]:
    mel_cfg = mel_preset("16k")
    torch.manual_seed(0)
    stage = HarmonicSource(mel_cfg, bands=4, hidden=8, threshold=threshold)
    t = torch.arange(SR) / SR
    voiced = torch.sin(2 * math.pi * 150 * t) * (t < 0.5)  # voiced first half, noise second half
    x = (0.3 * voiced + 0.01 * torch.randn(SR, generator=torch.Generator().manual_seed(1)))[None]
    return stage, x, MelSpectrogram(mel_cfg)(x)


def test_voicing_edges_keep_the_voiced_f0() -> None:
    stage, x, mel = _stage()
    ctx = stage.context(mel, x.shape[1]).detach()
    voicing = ctx[0, :, 1]
    assert bool((voicing[5:25] > 0).all()) and bool((voicing[40:55] == 0).all())
    assert float(ctx[0, 10, 0]) == pytest.approx(150.0, rel=0.02)
    assert bool((ctx[0, 40:55, 3:] == 0).all())  # no harmonics where unvoiced
    # where a segment's end boundary is unvoiced, its F0 stays at the voiced start's (no glide)
    edge = int(torch.nonzero(voicing[5:] == 0)[0]) + 5 - 1  # last voiced boundary
    h_ctx = ctx[:, edge : edge + 2].clone()
    h_ctx[0, 1, 0] = 3000.0  # a meaningless lag at the unvoiced boundary
    w = torch.zeros(1, stage.hop)
    e1, _, _ = stage.synthesis(w, h_ctx)
    h_ctx[0, 1, 0] = h_ctx[0, 0, 0]
    e2, _, _ = stage.synthesis(w, h_ctx)
    torch.testing.assert_close(e1, e2)


def test_likelihood_trains_the_noise_gain_and_the_spectral_path_the_harmonics() -> None:
    stage, x, mel = _stage(threshold=0.0)
    last = stage.controls.net[-1]
    with torch.no_grad():
        last.weight.normal_(0.0, 0.1)
    ctx = stage.context(mel, x.shape[1])
    w, logdet, _ = stage.analysis(x, ctx)
    (w.square().sum() - logdet.sum()).backward()  # a Gaussian NLL through the analysis
    grad = last.weight.grad
    assert float(grad[:4].abs().sum()) == 0.0  # band amplitudes: constants in the likelihood
    assert float(grad[4].abs().sum()) > 0.0  # the noise gain: a scale, trained by the likelihood
    last.weight.grad = None
    e, _, _ = stage.synthesis(torch.zeros_like(x), stage.context(mel, x.shape[1]))
    e.square().mean().backward()  # any loss on the synthesised signal reaches the amplitudes
    assert float(last.weight.grad[:4].abs().sum()) > 0.0


def test_source_filter_config_builds_the_stage_and_state() -> None:
    sf = SourceFilter(mel_preset("16k"), SourceFilterConfig(envelope="lpc", source="harmonic"))
    assert isinstance(sf.harmonic, HarmonicSource)
    names = [name for name, _, _ in sf._stages()]
    assert names == ["lpc", "harmonic"]
    with pytest.raises(ValueError, match="source_filter.source: expected one of"):
        SourceFilterConfig(source="pulse")
    with pytest.raises(ValueError, match="source_filter.pitch_lag"):
        SourceFilterConfig(pitch_lag="lowest")
