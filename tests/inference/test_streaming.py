"""Streaming synthesis equals offline synthesis with the same noise (up to float rounding) and keeps a
bounded buffer."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.inference.receptive import context_frames
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.inference.synthesis import synthesize


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


def test_short_context_is_approximate_and_latency_is_the_context(factories) -> None:
    model = factories[1]()
    hop, c = model.hop_length, context_frames(model)
    frames = 4 * c
    mel, z = torch.randn(1, 6, frames), torch.randn(1, frames * hop)
    offline, _ = synthesize(model, mel, z=z)
    stream = StreamingSynthesizer(model, chunk_frames=2, context_frames=1)
    first = stream.push(mel[:, :, :4], z[:, : 4 * hop])
    assert first.shape[1] == 2 * hop  # 4 frames in, 1 frame of lookahead: one chunk of 2 is final
    audio = torch.cat([first, stream.push(mel[:, :, 4:], z[:, 4 * hop :]), stream.flush()], dim=1)
    assert (audio - offline).abs().max() > 1e-4


def test_streaming_draws_noise_and_validates(factories) -> None:
    model = factories[0]()
    s = StreamingSynthesizer(model, chunk_frames=4, sigma=0.5, generator=torch.Generator().manual_seed(0))
    out = torch.cat([s.push(torch.randn(1, 6, 9)), s.flush()], dim=1)
    assert out.shape == (1, 9 * model.hop_length) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="chunk_frames"):
        StreamingSynthesizer(model, chunk_frames=0)
    with pytest.raises(ValueError, match="mel"):
        s.push(torch.randn(6, 3))
    with pytest.raises(ValueError, match="z"):
        s.push(torch.randn(1, 6, 3), torch.randn(1, 5))
