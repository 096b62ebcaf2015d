"""A long waveform's mel is computed in chunks cut with the STFT overlap: the same mel as one shot."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.audio import MelSpectrogram
from waveflow_py.config import mel_preset


@pytest.mark.parametrize("preset", ["tacotron2", "hifigan", "espnet"])
@pytest.mark.parametrize("extra", [0, 1, 255])
def test_chunked_mel_equals_one_shot(preset: str, extra: int) -> None:
    front = MelSpectrogram(mel_preset(preset))
    x = 0.3 * torch.randn(2, 256 * 300 + extra, generator=torch.Generator().manual_seed(extra))
    one = front(x, chunk_frames=None)
    for chunk in (1, 37, 100):
        torch.testing.assert_close(front(x, chunk_frames=chunk), one, rtol=0, atol=1e-5)


def test_chunks_bound_the_stft_size(monkeypatch) -> None:
    front = MelSpectrogram(mel_preset("tacotron2"))
    sizes: list[int] = []
    real = torch.stft

    def spy(x, *a, **k):
        sizes.append(x.shape[-1])
        return real(x, *a, **k)

    monkeypatch.setattr(torch, "stft", spy)
    front(torch.randn(256 * 500), chunk_frames=64)
    assert len(sizes) > 5 and max(sizes) < 256 * 80  # never the whole 128000-sample waveform
    with pytest.raises(ValueError, match="chunk_frames"):
        front(torch.randn(4096), chunk_frames=0)
