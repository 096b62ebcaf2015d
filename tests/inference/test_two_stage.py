"""Every synthesis path equals the offline ``model.inverse`` also with an envelope stage (LPC + pre-emphasis,
and with the pitch filter after it):
streaming (the filter state carried across chunks), batched (each item alone), long inputs in chunks, and
the GPU entry point's CPU fallback. Also: long inputs are chunked and equal one-shot synthesis."""

from __future__ import annotations

import pytest
import torch

from tests.inference.conftest import close_to_peak as _close
from tests.inference.conftest import mel_and_noise as _inputs
from tests.inference.conftest import tiny_waveflow, tiny_waveglow
from waveflow_py.config import SourceFilterConfig
from waveflow_py.inference.cuda import fast_inverse
from waveflow_py.inference.receptive import context_frames
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.inference.synthesis import synthesize


@pytest.fixture(params=["waveflow", "waveglow", "waveflow+pitch", "waveglow+pitch"])
def lpc_model(request: pytest.FixtureRequest) -> torch.nn.Module:
    """An LPC envelope with pre-emphasis; ``+pitch``: and the pitch filter (lags 20..31, hop 16)."""
    factory = tiny_waveflow if request.param.startswith("waveflow") else tiny_waveglow
    pitch = {"pitch": "ltp", "pitch_strength": 3.0, "pitch_threshold": 0.0}
    pitch = pitch if "+pitch" in request.param else {}
    return factory(source_filter=SourceFilterConfig(envelope="lpc", lpc_order=4, preemphasis=0.5, **pitch))


def test_envelope_is_on_and_matters(lpc_model) -> None:
    mel, z = _inputs(lpc_model, 12)
    with torch.no_grad():
        audio, _ = lpc_model.inverse(z, mel)
        excitation, _ = lpc_model.inverse_excitation(z, mel)
    assert (audio - excitation).abs().max() > 1e-2 * float(audio.abs().max())
    periodicity = lpc_model.source_filter.periodicity
    if periodicity is not None:  # the pitch filter is on, with gains well above zero
        assert float(periodicity(mel)[1].max()) > 0.3


def test_streaming_equals_offline_inverse_with_lpc_envelope(lpc_model) -> None:
    hop, c = lpc_model.hop_length, context_frames(lpc_model)
    frames = 3 * c + 7
    mel, z = _inputs(lpc_model, frames)
    with torch.no_grad():
        offline, _ = lpc_model.inverse(z, mel)
    stream = StreamingSynthesizer(lpc_model, chunk_frames=3)
    parts = [stream.push(mel[:, :, a : a + 4], z[:, a * hop : (a + 4) * hop]) for a in range(0, frames, 4)]
    _close(torch.cat([*parts, stream.flush()], dim=1), offline)


def test_batched_equals_per_item_with_lpc_envelope(lpc_model) -> None:
    hop, c = lpc_model.hop_length, context_frames(lpc_model)
    lengths = [2 * c + 5, c + 2, 3]
    mel, z = _inputs(lpc_model, max(lengths), batch=3, seed=1)
    audio, _ = synthesize(lpc_model, mel, lengths, z=z)
    for i, f in enumerate(lengths):
        with torch.no_grad():
            alone, _ = lpc_model.inverse(z[i : i + 1, : f * hop], mel[i : i + 1, :, :f])
        _close(audio[i, : f * hop], alone[0])
        assert torch.all(audio[i, f * hop :] == 0)


def test_long_input_in_chunks_equals_one_shot_with_lpc_envelope(lpc_model) -> None:
    c = context_frames(lpc_model)
    mel, z = _inputs(lpc_model, 3 * c + 11, seed=2)
    one_shot, _ = synthesize(lpc_model, mel, z=z, max_frames=None)
    chunked, _ = synthesize(lpc_model, mel, [3 * c + 11, 2 * c], z=z, max_frames=5)
    _close(chunked[0], one_shot[0])
    alone, _ = synthesize(lpc_model, mel[1:, :, : 2 * c], z=z[1:], max_frames=None)
    _close(chunked[1, : alone.shape[1]], alone[0])


def test_fast_inverse_fallback_applies_the_envelope(lpc_model) -> None:
    mel, z = _inputs(lpc_model, 6, seed=3)
    with torch.no_grad():
        plain, _ = lpc_model.inverse(z, mel)
    _close(fast_inverse(lpc_model, z, mel), plain)


def test_long_inputs_are_chunked_and_equal_one_shot(monkeypatch) -> None:
    """Above ``max_frames`` synthesize streams (one window at a time), with the same audio."""
    import waveflow_py.inference.streaming as streaming

    model = tiny_waveflow()
    c = context_frames(model)
    mel, z = _inputs(model, 4 * c + 3, seed=4)
    widths: list[int] = []
    real = streaming.run_excitation

    def spy(m, zz, mm, **kw):
        widths.append(mm.shape[-1])
        return real(m, zz, mm, **kw)

    monkeypatch.setattr(streaming, "run_excitation", spy)
    chunked, _ = synthesize(model, mel, z=z, max_frames=4)
    assert widths and max(widths) <= 4 + 2 * c  # bounded windows, never the whole input
    one_shot, _ = synthesize(model, mel, z=z, max_frames=None)
    torch.testing.assert_close(chunked, one_shot, atol=2e-5, rtol=1e-5)


def test_chunked_noise_from_the_generator_equals_one_shot() -> None:
    """Long inputs draw their noise piece by piece: the same draws as one-shot synthesis, per item."""
    model = tiny_waveglow()
    c = context_frames(model)
    mel = torch.randn(2, 6, 3 * c + 2, generator=torch.Generator().manual_seed(5))
    lengths = [3 * c + 2, c + 1]
    seed = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    chunked, _ = synthesize(model, mel, lengths, 0.7, generator=seed(), max_frames=3)
    one_shot, _ = synthesize(model, mel, lengths, 0.7, generator=seed(), max_frames=None)
    torch.testing.assert_close(chunked, one_shot, atol=2e-5, rtol=1e-5)
    assert chunked[0].abs().max() > 1e-3
