"""Streaming synthesis equals offline synthesis with the same noise (up to float rounding) and keeps a
bounded buffer."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.inference.receptive import context_frames
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.inference.synthesis import synthesize
from waveflow_py.sampling import SamplingConfig


def _pieces(total: int, sizes: list[int]) -> list[tuple[int, int]]:
    out, pos, k = [], 0, 0
    while pos < total:
        n = min(sizes[k % len(sizes)], total - pos)
        out.append((pos, pos + n))
        pos, k = pos + n, k + 1
    return out


@pytest.mark.parametrize("chunk", [1, 5])
def test_streaming_equals_offline(tiny_model, chunk: int) -> None:
    hop = tiny_model.hop_length
    c = context_frames(tiny_model)
    frames = 3 * c + 7
    mel, z = torch.randn(2, 6, frames), torch.randn(2, frames * hop)
    offline, _ = synthesize(tiny_model, mel, z=z)
    stream = StreamingSynthesizer(tiny_model, chunk_frames=chunk)
    parts, most = [], 0
    for a, b in _pieces(frames, [3, 1, 7, 2]):
        parts.append(stream.push(mel[:, :, a:b], z[:, a * hop : b * hop]))
        assert parts[-1].shape[1] % (chunk * hop) == 0
        most = max(most, stream.buffered_frames)
    parts.append(stream.flush())
    audio = torch.cat(parts, dim=1)
    assert audio.shape == offline.shape
    torch.testing.assert_close(audio, offline, atol=2e-5, rtol=1e-5)
    assert most <= 2 * c + chunk + 7  # bounded by context + chunk + the largest push
    assert stream.buffered_frames == 0  # flush resets


def _stream(model, mel, z, chunk: int, context: int | None) -> torch.Tensor:
    hop = model.hop_length
    s = StreamingSynthesizer(model, chunk_frames=chunk, context_frames=context)
    parts = [s.push(mel[:, :, a:b], z[:, a * hop : b * hop]) for a, b in _pieces(mel.shape[-1], [5, 3])]
    return torch.cat([*parts, s.flush()], dim=1)


def test_short_context_error_is_bounded_and_shrinks_with_context(factories) -> None:
    model = factories[1]()
    hop, c = model.hop_length, context_frames(model)
    frames = 4 * c
    gen = torch.Generator().manual_seed(3)
    mel, z = torch.randn(1, 6, frames, generator=gen), torch.randn(1, frames * hop, generator=gen)
    offline, _ = synthesize(model, mel, z=z)
    rms = float(offline.pow(2).mean().sqrt())
    contexts = [0, 1, c // 2, c]
    errors = [float((_stream(model, mel, z, 2, k) - offline).abs().max()) / rms for k in contexts]
    assert errors[0] > 1e-3  # no context: the chunk edges are audibly wrong
    assert all(e < 10.0 for e in errors)  # bounded: a few times the RMS at worst, never a blow-up
    assert all(b <= a + 1e-6 for a, b in zip(errors, errors[1:], strict=False)), errors  # shrinks
    assert errors[-1] < 1e-5  # the receptive field: exact up to float rounding


def test_latency_is_the_context(factories) -> None:
    model = factories[1]()
    hop = model.hop_length
    mel, z = torch.randn(1, 6, 8), torch.randn(1, 8 * hop)
    stream = StreamingSynthesizer(model, chunk_frames=2, context_frames=1)
    first = stream.push(mel[:, :, :4], z[:, : 4 * hop])
    assert first.shape[1] == 2 * hop  # 4 frames in, 1 frame of lookahead: one chunk of 2 is final


def test_streaming_noise_from_the_generator_equals_offline(factories) -> None:
    model = factories[0]()
    mel = torch.randn(1, 6, 9)
    gen = torch.Generator().manual_seed(0)
    s = StreamingSynthesizer(model, chunk_frames=4, temperature=0.5, generator=gen)
    out = torch.cat([s.push(mel[:, :, :2]), s.push(mel[:, :, 2:7]), s.push(mel[:, :, 7:]), s.flush()], dim=1)
    offline, _ = synthesize(model, mel, temperature=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, offline, atol=2e-5, rtol=1e-5)  # the same draws of the prior
    other, _ = synthesize(model, mel, temperature=0.5, generator=torch.Generator().manual_seed(1))
    assert (other - out).abs().max() > 1e-3  # and they are the seed's, not fixed


def test_streaming_validates(factories) -> None:
    model = factories[0]()
    s = StreamingSynthesizer(model, chunk_frames=4)
    with pytest.raises(ValueError, match="chunk_frames"):
        StreamingSynthesizer(model, chunk_frames=0)
    with pytest.raises(ValueError, match="temperature"):
        StreamingSynthesizer(model, temperature=-1.0)
    with pytest.raises(ValueError, match="mel"):
        s.push(torch.randn(6, 3))
    with pytest.raises(ValueError, match="mel"):
        s.push(torch.randn(1, 5, 3))
    with pytest.raises(ValueError, match="z"):
        s.push(torch.randn(1, 6, 3), torch.randn(1, 5))


def test_streaming_truncated_noise_equals_offline(factories) -> None:
    """The truncation is part of the one noise stream: streaming draws what offline draws, whether it is
    the model's (release) setting or given explicitly."""
    model = factories[0]()
    model.sampling = SamplingConfig(truncation=1.5)
    mel = torch.randn(1, 6, 9)
    gen = torch.Generator().manual_seed(2)
    s = StreamingSynthesizer(model, chunk_frames=3, temperature=0.7, generator=gen)
    out = torch.cat([s.push(mel[:, :, :4]), s.push(mel[:, :, 4:]), s.flush()], dim=1)
    offline, _ = synthesize(model, mel, temperature=0.7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, offline, atol=2e-5, rtol=1e-5)
    explicit = SamplingConfig(temperature=0.7, truncation=1.5)
    s = StreamingSynthesizer(
        model, chunk_frames=3, sampling=explicit, generator=torch.Generator().manual_seed(2)
    )
    out = torch.cat([s.push(mel[:, :, :4]), s.push(mel[:, :, 4:]), s.flush()], dim=1)
    torch.testing.assert_close(out, offline, atol=2e-5, rtol=1e-5)
    model.sampling = SamplingConfig()
    plain, _ = synthesize(model, mel, temperature=0.7, generator=torch.Generator().manual_seed(2))
    assert (plain - offline).abs().max() > 1e-4  # the truncated draws differ from the plain ones


@pytest.mark.parametrize("pitch", ["learned", "hybrid"])
def test_streaming_with_the_learned_pitch_predictor_equals_offline(factories, pitch: str) -> None:
    """The learned pitch predictor reads +-16 mel frames: the stream gives the source-filter stages its
    buffered left context (``mel_offset``) and lookahead, so chunks still equal one pass (alone and in the
    hybrid pitch)."""
    from waveflow_py.config import SourceFilterConfig
    from waveflow_py.sourcefilter.pitchnet import RECEPTIVE_FRAMES

    stages = SourceFilterConfig(
        envelope="lpc", lpc_order=4, source="harmonic", source_pitch=pitch, source_pitch_hidden=8
    )
    model = factories[1](source_filter=stages)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.source_filter.harmonic.pitchnet.parameters():
            p.normal_(0.0, 0.3)
    c = context_frames(model)
    assert c > RECEPTIVE_FRAMES
    frames = 2 * c + 9
    mel, z = torch.randn(1, 6, frames), torch.randn(1, frames * model.hop_length)
    mel = mel + torch.linspace(-2.0, 2.0, frames)  # the voicing changes along the clip
    voicing = model.source_filter.harmonic.context(mel, frames * model.hop_length)[..., 1]
    assert bool((voicing > 0).any()) and bool((voicing == 0).any())
    offline, _ = synthesize(model, mel, z=z)
    audio = _stream(model, mel, z, chunk=4, context=None)
    torch.testing.assert_close(audio, offline, atol=2e-5 * float(offline.abs().max()), rtol=1e-5)
