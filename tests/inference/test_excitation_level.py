"""The per-frame excitation level (``SamplingConfig.excitation_rms``, :func:`level_frames`): its frames, every
synthesis path (one shot, batched, chunked, streaming, fast inverse) equal to the levelled offline
inverse, and its checks."""

from __future__ import annotations

import pytest
import torch

from tests.inference.conftest import close_to_peak, mel_and_noise, tiny_waveflow, tiny_waveglow
from waveflow_py.config import SourceFilterConfig
from waveflow_py.inference.core import check_excitation_rms, level_frames, run_envelope
from waveflow_py.inference.cuda import fast_inverse
from waveflow_py.inference.receptive import context_frames
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.inference.synthesis import synthesize
from waveflow_py.sampling import DEFAULT_SAMPLING, SamplingConfig

RMS = 1.3


def test_level_frames_sets_each_frame_and_keeps_its_shape() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5 * 8 + 3, generator=gen) * torch.rand(2, 43, generator=gen) * 4
    x[1, 8:16] = 0.0  # a silent frame stays silent
    y = level_frames(x, 8, RMS)
    frames = y[:, :40].reshape(2, 5, 8)
    power = frames.square().mean(-1)
    torch.testing.assert_close(power[0], torch.full((5,), RMS**2))
    torch.testing.assert_close(power[1, [0, 2, 3, 4]], torch.full((4,), RMS**2))
    assert bool((frames[1, 1] == 0).all())
    torch.testing.assert_close(y[:, 40:].square().mean(-1), torch.full((2,), RMS**2))  # the short last frame
    ratio = frames / x[:, :40].reshape(2, 5, 8)
    torch.testing.assert_close(ratio[0], ratio[0, :, :1].expand(5, 8))  # one gain per frame: shape kept
    assert level_frames(x.to(torch.float64), 8, RMS).dtype == torch.float64
    assert level_frames(x[:, :0], 8, RMS).shape == (2, 0)
    torch.testing.assert_close(level_frames(x[:, :5], 8, RMS).square().mean(-1), torch.full((2,), RMS**2))
    # piece by piece on frame boundaries == at once
    pieces = [level_frames(x[:, :16], 8, RMS), level_frames(x[:, 16:], 8, RMS)]
    torch.testing.assert_close(torch.cat(pieces, 1), y)


@pytest.fixture(params=["waveflow", "waveglow+pitch"])
def levelled(request: pytest.FixtureRequest) -> torch.nn.Module:
    if request.param == "waveflow":
        model = tiny_waveflow(source_filter=SourceFilterConfig(envelope="lpc", lpc_order=4, preemphasis=0.5))
    else:
        stages = SourceFilterConfig(envelope="gain", pitch="ltp", pitch_strength=3.0, pitch_threshold=0.0)
        model = tiny_waveglow(source_filter=stages)
    model.sampling = SamplingConfig(excitation_rms=RMS)
    return model


def _reference(model: torch.nn.Module, z: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """The offline inverse with the excitation levelled between the two stages."""
    with torch.no_grad():
        e, _ = model.inverse_excitation(z, mel)
        audio, _, _ = model.envelope_synthesis(
            level_frames(e, model.hop_length, RMS), mel, sampling=DEFAULT_SAMPLING
        )
    return audio


def test_every_path_equals_the_levelled_offline_inverse(levelled) -> None:
    model, hop, c = levelled, levelled.hop_length, context_frames(levelled)
    frames = 3 * c + 7
    mel, z = mel_and_noise(model, frames)
    want = _reference(model, z, mel)
    one_shot, _ = synthesize(model, mel, z=z, max_frames=None)
    close_to_peak(one_shot, want)
    chunked, _ = synthesize(model, mel, z=z, max_frames=5)
    close_to_peak(chunked, want)
    stream = StreamingSynthesizer(model, chunk_frames=3)
    parts = [stream.push(mel[:, :, a : a + 4], z[:, a * hop : (a + 4) * hop]) for a in range(0, frames, 4)]
    close_to_peak(torch.cat([*parts, stream.flush()], dim=1), want)
    close_to_peak(fast_inverse(model, z, mel), want)
    lengths = [frames, c + 2]
    batched, _ = synthesize(model, mel, lengths, z=z)
    short = (c + 2) * hop
    close_to_peak(batched[1, :short], _reference(model, z[1:, :short], mel[1:, :, : c + 2])[0])
    # the level is the one asked for: analysing the audio gives back frames of RMS 1.3
    with torch.no_grad():
        e_back, _ = model.envelope_analysis(one_shot, mel)
    power = e_back.reshape(2, frames, hop).square().mean(-1)
    torch.testing.assert_close(power, torch.full_like(power, RMS**2), rtol=1e-3, atol=1e-3)
    close_to_peak(model.inverse(z, mel)[0], want)  # model.inverse samples with the model's settings too
    plain, _ = synthesize(model, mel, z=z, max_frames=None, sampling=DEFAULT_SAMPLING)  # and it matters
    assert (plain - one_shot).abs().max() > 1e-2 * float(one_shot.abs().max())


def test_checks() -> None:
    plain = tiny_waveflow()
    mel, z = mel_and_noise(plain, 4)
    with pytest.raises(ValueError, match="excitation_rms: needs a model with an envelope prior"):
        run_envelope(plain, z, mel, sampling=SamplingConfig(excitation_rms=1.0))
    with pytest.raises(ValueError, match="excitation_rms: needs a model with an envelope prior"):
        plain.sampling = SamplingConfig(excitation_rms=1.0)
    for bad in (0, -1.0, float("inf"), float("nan"), "loud", True):
        with pytest.raises(ValueError, match="excitation_rms"):
            check_excitation_rms(bad)
    assert check_excitation_rms(None) is None and check_excitation_rms("1.5") == 1.5
